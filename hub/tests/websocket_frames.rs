//! The hub frames WebSockets itself (`client::websocket`) and lets the fan-out write
//! publications straight to sockets: what a client sees of that, over a real socket. Frames
//! arrive whole and in order whoever wrote them, a slow client's last frame is finished
//! before its close code, fragments and pings are understood, and `client.write_delay` with
//! `client.max_messages_in_frame` batches as configured.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{api, Client, Closed};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// Every data message until the server closes: the lines of each, and how the read ended.
async fn read_until_close(c: &mut Client) -> (Vec<Vec<Value>>, Closed) {
    let mut messages = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), c.ws.next())
            .await
            .expect("the hub closes within 30 s");
        match next {
            Some(Ok(Message::Text(t))) => messages.push(
                t.as_str()
                    .split('\n')
                    .map(|l| serde_json::from_str(l).expect("every line is whole JSON"))
                    .collect(),
            ),
            Some(Ok(Message::Close(Some(f)))) => return (messages, Closed::Code(f.code.into())),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("not a clean WebSocket stream: {e}"),
            None => return (messages, Closed::NoFrame),
        }
    }
}

/// The sequence numbers of the publications among `lines`.
fn sequence(lines: impl IntoIterator<Item = Value>) -> Vec<u64> {
    lines
        .into_iter()
        .filter_map(|v| v["push"]["pub"]["data"]["n"].as_u64())
        .collect()
}

#[tokio::test]
async fn a_slow_client_gets_whole_frames_in_order_then_its_close_code() {
    // A queue of 64 KiB, and a write timeout long enough for the client to drain later.
    let config = common::config_json(r#", "queue_max_size": 65536"#).replace(
        r#""websocket": {"message_size_limit": 4096}"#,
        r#""websocket": {"message_size_limit": 4096, "write_timeout": "60s"}"#,
    );
    let hub = common::start_with(&config, usize::MAX).await;
    let (mut slow, _) = Client::connect(&hub.url, "slow").await;
    slow.send(json!({"id": 2, "subscribe": {"channel": "firehose"}}))
        .await;
    slow.reply(2).await;
    // Not reading: the fan-out's direct writes fill the socket, the last of them only
    // part-way (large frames make that all but certain), then the queue overflows.
    // 400 × 30 KB is far past both.
    let blob = "y".repeat(30_000);
    for n in 1..=400u64 {
        let (_, r) = api(
            &hub,
            "publish",
            json!({"channel": "firehose", "data": {"n": n, "blob": blob}}),
        )
        .await;
        assert_eq!(r, json!({"result": {}}));
    }
    let (messages, end) = read_until_close(&mut slow).await;
    assert_eq!(end, Closed::Code(3008), "closed as slow, with its code");
    let got = sequence(messages.into_iter().flatten());
    assert!(
        !got.is_empty() && got.len() < 400,
        "{} delivered",
        got.len()
    );
    let expected: Vec<u64> = (1..=got.len() as u64).collect();
    assert_eq!(got, expected, "a gapless, ordered prefix, each once");
}

#[tokio::test]
async fn direct_writes_and_queued_replies_keep_their_order() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "news"}}))
        .await;
    c.reply(2).await;
    // Publications written by the fan-out race replies written by the connection task; a
    // reply's id must come back for every command, and every publication once, in order.
    let publish = async {
        for n in 1..=2000u64 {
            api(
                &hub,
                "publish",
                json!({"channel": "news", "data": {"n": n}}),
            )
            .await;
            if n % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    };
    let talk = async {
        for id in 10..60u64 {
            c.send(json!({"id": id, "presence_stats": {"channel": "news"}}))
                .await;
        }
        let (mut pubs, mut replies) = (Vec::new(), Vec::new());
        while pubs.len() < 2000 || replies.len() < 50 {
            let v = c.next().await.unwrap();
            match v["id"].as_u64() {
                Some(id) => replies.push(id),
                None => pubs.extend(sequence([v])),
            }
        }
        (pubs, replies)
    };
    let ((), (pubs, replies)) = tokio::join!(publish, talk);
    assert_eq!(pubs, (1..=2000).collect::<Vec<u64>>());
    assert_eq!(replies, (10..60).collect::<Vec<u64>>());
}

#[tokio::test]
async fn fragments_pings_and_close_are_understood() {
    let hub = common::start("", usize::MAX).await;
    let mut c = Client::open(&hub.url).await;
    let connect =
        json!({"id": 1, "connect": {"token": common::token(json!({"sub": "7"}))}}).to_string();
    let (head, tail) = connect.split_at(10);
    let part = |bytes: &str, op, fin| Message::Frame(Frame::message(bytes.to_string(), op, fin));
    c.ws.send(part(head, OpCode::Data(Data::Text), false))
        .await
        .unwrap();
    // A control frame may come between the fragments of a message.
    c.ws.send(Message::Ping(b"between".to_vec().into()))
        .await
        .unwrap();
    c.ws.send(part(tail, OpCode::Data(Data::Continue), true))
        .await
        .unwrap();
    let mut pong = None;
    let reply = loop {
        match c.ws.next().await.unwrap().unwrap() {
            Message::Pong(p) => pong = Some(p.to_vec()),
            Message::Text(t) => break serde_json::from_str::<Value>(t.as_str()).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        pong.as_deref(),
        Some(&b"between"[..]),
        "the ping answered first"
    );
    assert_eq!(reply["id"], 1);
    assert!(reply["connect"]["client"].is_string(), "{reply}");

    // The client closes: its code comes back (RFC 6455 §5.5.1).
    c.ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    match c.ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4000),
        other => panic!("expected the close echoed, got {other:?}"),
    }

    // Fragments adding up past websocket.message_size_limit (4096 here) close with 1009.
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    let chunk = "x".repeat(3000);
    c.ws.send(part(&chunk, OpCode::Data(Data::Text), false))
        .await
        .unwrap();
    c.ws.send(part(&chunk, OpCode::Data(Data::Continue), true))
        .await
        .unwrap();
    assert_eq!(c.next().await, Err(Closed::Code(1009)));
}

#[tokio::test]
async fn write_delay_batches_up_to_max_messages_in_frame() {
    let hub = common::start(
        r#", "write_delay": "500ms", "max_messages_in_frame": 4"#,
        usize::MAX,
    )
    .await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "news"}}))
        .await;
    c.reply(2).await;
    for n in 1..=10u64 {
        api(
            &hub,
            "publish",
            json!({"channel": "news", "data": {"n": n}}),
        )
        .await;
    }
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    while got.len() < 10 {
        let msg = tokio::time::timeout(Duration::from_secs(10), c.ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let lines: Vec<Value> = t
                .as_str()
                .split('\n')
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            sizes.push(lines.len());
            got.extend(sequence(lines));
        }
    }
    assert_eq!(got, (1..=10).collect::<Vec<u64>>());
    assert!(
        sizes.iter().all(|&s| s <= 4),
        "at most 4 per frame: {sizes:?}"
    );
    assert!(
        sizes.iter().any(|&s| s > 1),
        "the delay let publications share frames: {sizes:?}"
    );
}
