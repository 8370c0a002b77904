//! The Protobuf protocol (`centrifuge-protobuf` subprotocol) against a real hub: the same
//! commands as JSON, binary length-delimited frames, and a JSON and a Protobuf subscriber of
//! one channel each getting the publication in its own encoding.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use chorus_protocol::proto::client::{
    Command, ConnectRequest, PublishRequest, Reply, SubscribeRequest,
};
use common::*;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str) -> Socket {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "centrifuge-protobuf".parse().unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "centrifuge-protobuf",
        "the hub agrees to the subprotocol"
    );
    ws
}

async fn send(ws: &mut Socket, commands: &[Command]) {
    let mut buf = Vec::new();
    for c in commands {
        c.encode_length_delimited(&mut buf).unwrap();
    }
    ws.send(Message::Binary(buf.into())).await.unwrap();
}

/// The replies of the next data message (pings skipped), or the close code.
async fn next(ws: &mut Socket) -> Result<Vec<Reply>, u16> {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s");
        match msg {
            Some(Ok(Message::Binary(b))) => {
                let mut buf = &b[..];
                let mut out = Vec::new();
                while !buf.is_empty() {
                    out.push(Reply::decode_length_delimited(&mut buf).unwrap());
                }
                out.retain(|r| *r != Reply::default());
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            Some(Ok(Message::Close(Some(f)))) => return Err(f.code.into()),
            Some(Ok(Message::Text(t))) => panic!("text on a protobuf connection: {t}"),
            Some(Ok(_)) => {}
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    }
}

fn connect(user: &str) -> Command {
    Command {
        id: 1,
        connect: Some(ConnectRequest {
            token: token(json!({ "sub": user })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn subscribe(id: u32, channel: &str) -> Command {
    Command {
        id,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn protobuf_and_json_subscribers_each_get_their_encoding() {
    let hub = common::start("", usize::MAX).await;
    let mut p = open(&hub.url).await;
    // Connect and subscribe batched in one message, as the SDKs do.
    send(&mut p, &[connect("42"), subscribe(2, "chat:pb")]).await;
    let mut replies = next(&mut p).await.unwrap();
    if replies.len() == 1 {
        replies.extend(next(&mut p).await.unwrap());
    }
    let connect_result = replies[0].connect.as_ref().unwrap();
    assert!(connect_result.client.len() > 10);
    assert!(connect_result.pong);
    assert_eq!(replies[1].id, 2);
    let sub = replies[1].subscribe.as_ref().unwrap();
    assert!(sub.recoverable, "chat: has history and force_recovery");

    let (mut j, _) = Client::connect(&hub.url, "43").await;
    j.send(json!({"id": 2, "subscribe": {"channel": "chat:pb"}}))
        .await;
    j.reply(2).await;

    // A Protobuf client publishes; both get it, the JSON one as JSON.
    send(
        &mut p,
        &[Command {
            id: 3,
            publish: Some(PublishRequest {
                channel: "chat:pb".into(),
                data: Bytes::from_static(br#"{"text":"from protobuf"}"#),
                ..Default::default()
            }),
            ..Default::default()
        }],
    )
    .await;
    // Also a join push (the namespace forces them) of the JSON client, in Protobuf.
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(next(&mut p).await.unwrap());
    }
    let join = got
        .iter()
        .find_map(|r| r.push.as_ref()?.join.as_ref())
        .unwrap();
    assert_eq!(join.info.as_ref().unwrap().user, "43");
    let publish_reply = got.iter().find(|r| r.id == 3).unwrap();
    assert!(publish_reply.publish.is_some() && publish_reply.error.is_none());
    let push = got
        .iter()
        .filter_map(|r| r.push.as_ref())
        .find(|p| p.r#pub.is_some())
        .unwrap();
    assert_eq!(push.channel, "chat:pb");
    let publication = push.r#pub.as_ref().unwrap();
    assert_eq!(&publication.data[..], br#"{"text":"from protobuf"}"#);
    assert_eq!(publication.offset, 1);
    assert_eq!(publication.info.as_ref().unwrap().user, "42");

    let json_pub = j.next_pub().await["push"]["pub"].clone();
    assert_eq!(json_pub["data"], json!({"text": "from protobuf"}));
    assert_eq!(json_pub["offset"], json!(1));

    // A server API publication reaches the Protobuf client with its offset.
    api(
        &hub,
        "publish",
        json!({"channel": "chat:pb", "data": {"n": 2}}),
    )
    .await;
    let push = next(&mut p).await.unwrap().remove(0).push.unwrap();
    let publication = push.r#pub.unwrap();
    assert_eq!(
        (&publication.data[..], publication.offset),
        (&br#"{"n":2}"#[..], 2)
    );
}

#[tokio::test]
async fn bad_protobuf_input_is_refused_with_bad_request() {
    let hub = common::start("", usize::MAX).await;
    // Garbage bytes.
    let mut p = open(&hub.url).await;
    p.send(Message::Binary(vec![0xff, 0xff, 0xff].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut p).await, Err(3501));
    // Text on a Protobuf connection.
    let mut p = open(&hub.url).await;
    p.send(Message::Text("{}".into())).await.unwrap();
    assert_eq!(next(&mut p).await, Err(3501));
    // A payload that is not a JSON document: Chorus carries JSON, so the command is refused.
    let mut p = open(&hub.url).await;
    send(&mut p, &[connect("7"), subscribe(2, "chat:x")]).await;
    let mut n = 0;
    while n < 2 {
        n += next(&mut p).await.unwrap().len();
    }
    let bad = Command {
        id: 3,
        publish: Some(PublishRequest {
            channel: "chat:x".into(),
            data: Bytes::from_static(&[0, 159, 146, 150]),
            ..Default::default()
        }),
        ..Default::default()
    };
    send(&mut p, &[bad]).await;
    assert_eq!(next(&mut p).await, Err(3501), "undecodable command");
}
