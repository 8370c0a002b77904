//! The pod the network faults stand on: a server inside it is reached on the host's
//! 127.0.0.1, a cut stops its packets without closing the connection, healing lets the same
//! connection go on, and a delay holds every packet at least as long as asked. Needs root, as
//! the fault suite does.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use chorus_testkit::pod::{Impairment, Link, Pod, Way};

/// An echo server on 127.0.0.1:`port` inside the pod: a thread that joins the pod's network
/// namespace (as the latency shim does), says first whether its peer is on loopback (`L`) or
/// not (`X`), then answers every byte.
fn echo_in(pod: &Pod) -> u16 {
    let path = format!("/run/netns/{}", pod.name());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(path).unwrap();
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let peer = conn.peer_addr().unwrap().ip();
            let tag: &[u8] = if peer.is_loopback() { b"L" } else { b"X" };
            conn.write_all(tag).unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let port = rx.recv().unwrap();
    pod.expose(port);
    port
}

/// One byte there and back: the round trip, or `None` when nothing came back in `wait`.
fn round_trip(conn: &mut TcpStream, wait: Duration) -> Option<Duration> {
    conn.set_read_timeout(Some(wait)).unwrap();
    let start = Instant::now();
    conn.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    match conn.read(&mut b) {
        Ok(1) => Some(start.elapsed()),
        _ => None,
    }
}

#[test]
fn a_pod_is_reached_on_loopback_and_its_link_can_be_cut_healed_and_slowed() {
    let mut pod = Pod::create();
    let port = echo_in(&pod);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tag = [0u8; 1];
    conn.read_exact(&mut tag).unwrap();
    assert_eq!(
        &tag, b"L",
        "a server in the pod sees a peer that is not on loopback"
    );
    let plain = round_trip(&mut conn, Duration::from_secs(5)).expect("the pod's echo answers");

    // Cut one way: the byte reaches the pod, the answer does not come back.
    pod.impair(Link::FromHost(port), Way::Out, Impairment::Cut);
    assert_eq!(
        round_trip(&mut conn, Duration::from_secs(1)),
        None,
        "an answer came back through a cut link"
    );
    pod.heal();
    // The same connection goes on: TCP resends what the cut dropped.
    let mut b = [0u8; 1];
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.read_exact(&mut b)
        .expect("the answer held by the cut arrives once healed");
    assert!(round_trip(&mut conn, Duration::from_secs(5)).is_some());

    // 200 ms on what the pod sends: every round trip takes at least that.
    pod.impair(Link::FromHost(port), Way::Out, Impairment::Delay(200));
    for _ in 0..3 {
        let slow = round_trip(&mut conn, Duration::from_secs(5)).expect("a delayed answer");
        assert!(
            slow >= Duration::from_millis(200) && slow > plain,
            "a round trip of {slow:?} through a 200 ms delay (without it: {plain:?})"
        );
    }
    pod.heal();
    assert!(round_trip(&mut conn, Duration::from_secs(5)).is_some());
}
