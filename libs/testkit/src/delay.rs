//! Latency for a [`crate::pod::Pod`]'s link, since this kernel has no `sch_netem`: a thread
//! in the pod's network namespace takes the packets iptables sends to an NFQUEUE and lets each
//! go on (`Accept`) once it has waited its delay. One queue keeps packets in order, as a
//! fixed delay does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Delay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delay {
    /// Binds NFQUEUE `queue` in namespace `netns` and holds each packet `ms` milliseconds.
    /// Returns once bound, so the rule that feeds it can follow.
    pub fn start(netns: &str, queue: u16, ms: u64) -> Delay {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/run/netns/{netns}");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bound = bind(&path, queue);
            let mut q = match bound {
                Ok(q) => {
                    ready_tx.send(Ok(())).unwrap();
                    q
                }
                Err(e) => {
                    ready_tx.send(Err(e)).unwrap();
                    return;
                }
            };
            hold(&mut q, Duration::from_millis(ms), &flag);
        });
        if let Err(e) = ready_rx.recv().unwrap() {
            panic!("the latency shim could not bind NFQUEUE {queue} in {netns}: {e}");
        }
        Delay {
            stop,
            thread: Some(thread),
        }
    }

    /// Lets every held packet go and ends the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// This thread joins the namespace (setns changes only the calling thread's), then opens and
/// binds the queue there: a netlink socket belongs to the namespace it was made in.
fn bind(netns_path: &str, queue: u16) -> std::io::Result<nfq::Queue> {
    let ns = std::fs::File::open(netns_path)?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let mut q = nfq::Queue::open()?;
    q.bind(queue)?;
    // Headers are enough: the verdict does not rewrite the packet.
    q.set_copy_range(queue, 64)?;
    q.set_queue_max_len(queue, 65_536)?;
    // A full queue lets packets through rather than dropping them: loss is Loss's job.
    q.set_fail_open(queue, true)?;
    q.set_nonblocking(true);
    Ok(q)
}

fn hold(q: &mut nfq::Queue, delay: Duration, stop: &AtomicBool) {
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // Everything that came in, stamped with when it may go.
        loop {
            match q.recv() {
                Ok(msg) => held.push_back((Instant::now() + delay, msg)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("the latency shim's queue failed: {e}"),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| stopping || *due <= now) {
            let (_, mut msg) = held.pop_front().unwrap();
            msg.set_verdict(nfq::Verdict::Accept);
            // A packet whose connection is gone is no longer the kernel's to take.
            let _ = q.verdict(msg);
        }
        if stopping && held.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
