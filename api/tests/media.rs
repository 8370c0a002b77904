//! Image attachments against real PostgreSQL, Redis and tansu, with the local-filesystem
//! object store: upload, the message event on Kafka, members-only reads with byte ranges,
//! and refusals (wrong type, pixel bomb, oversize) that store nothing and send nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chorus_protocol::event::{ChatEvent, EventBody};
use common::tansu::{unique, Tansu};
use common::{png, TestApi};
use http_body_util::BodyExt;
use rdkafka::Message;
use serde_json::json;
use tower::ServiceExt;

fn form(file: &[u8], text: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "chorus-test-boundary";
    let mut body = Vec::new();
    if let Some(t) = text {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{t}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    api: &TestApi,
    chat: &str,
    token: &str,
    file: &[u8],
    text: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let (ctype, body) = form(file, text);
    let (s, b, _) = api
        .call(
            Request::post(format!("/chats/{chat}/images"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", ctype)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    (s, b)
}

/// GET /media/<key> with an optional Range: status, headers, bytes.
async fn fetch(
    api: &TestApi,
    key: &str,
    token: &str,
    range: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut r =
        Request::get(format!("/media/{key}")).header("authorization", format!("Bearer {token}"));
    if let Some(range) = range {
        r = r.header("range", range);
    }
    let resp = chorus_api::app::app(api.state.clone())
        .oneshot(r.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_is_stored_sent_and_served_to_members_only_with_ranges() {
    let t = Tansu::start().await;
    let topic = unique("chat-events");
    t.create_topic(&topic, 1).await;
    let (brokers, mt) = (t.brokers(), topic.clone());
    let api = TestApi::start(move |c| {
        c.kafka.brokers = brokers;
        c.kafka.messages_topic = mt;
        c.media.max_image_bytes = 100_000;
    })
    .await;
    let (_, ann) = api.user("ann").await;
    let (_, eve) = api.user("eve").await;
    let (s, chat) = api
        .req("POST", "/chats", Some(&ann), Some(json!({"title": "pics"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let chat = chat["id"].as_str().unwrap().to_owned();

    let image = png(640, 480, 5000);
    let (s, sent) = upload(&api, &chat, &ann, &image, Some("a view")).await;
    assert_eq!(s, StatusCode::CREATED, "{sent}");
    let message_id = sent["message_id"].as_str().unwrap().to_owned();

    // The message on Kafka carries the attachment.
    let consumer = t.reader(&topic);
    let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    let event = ChatEvent::decode(m.payload().unwrap()).unwrap();
    let EventBody::MessageCreated(msg) = event.body else {
        panic!("a created message")
    };
    assert_eq!(msg.message_id, message_id);
    assert_eq!(msg.text.as_deref(), Some("a view"));
    let a = msg.attachment.unwrap();
    assert_eq!(
        (a.mime.as_str(), a.size, a.width, a.height),
        ("image/png", image.len() as u64, Some(640), Some(480))
    );
    assert_eq!(a.key, format!("chats/{chat}/{message_id}.png"));

    // Members read it whole or by range; others get 404.
    let (s, h, body) = fetch(&api, &a.key, &ann, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, image);
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["accept-ranges"], "bytes");
    let (s, h, body) = fetch(&api, &a.key, &ann, Some("bytes=100-199")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, image[100..200]);
    assert_eq!(h["content-range"], format!("bytes 100-199/{}", image.len()));
    let (s, _, body) = fetch(&api, &a.key, &ann, Some("bytes=-10")).await;
    assert_eq!(
        (s, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &image[image.len() - 10..])
    );
    let (s, h, _) = fetch(&api, &a.key, &ann, Some("bytes=999999-")).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h["content-range"], format!("bytes */{}", image.len()));
    let (s, _, _) = fetch(&api, &a.key, &eve, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for bad in [
        "chats/../etc/passwd",
        "other/x.png",
        &format!("chats/{chat}/missing.png"),
    ] {
        let (s, _, _) = fetch(&api, bad, &ann, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{bad}");
    }

    // Refused: not an image (415), a pixel bomb and an oversize file (413), a non-member (404).
    let (s, b) = upload(&api, &chat, &ann, b"just some text, not an image", None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let (s, b) = upload(&api, &chat, &ann, &png(100_000, 100_000, 10), None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")),
        "{b}"
    );
    let (s, b) = upload(&api, &chat, &ann, &png(10, 10, 120_000), None).await;
    assert!(s == StatusCode::PAYLOAD_TOO_LARGE, "{s} {b}");
    let (s, _) = upload(&api, &chat, &eve, &image, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing else was stored or sent.
    let stored = std::fs::read_dir(
        std::path::Path::new(&api.state.config.media.path).join(format!("chats/{chat}")),
    )
    .unwrap()
    .count();
    assert_eq!(stored, 1);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), consumer.recv())
            .await
            .is_err(),
        "no second message"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_s3_blobs_land_in_the_bucket_and_members_get_presigned_urls() {
    let moto = chorus_testkit::moto::Moto::start().await;
    let endpoint = moto.endpoint();
    let bucket = unique("media").to_lowercase();
    moto.create_bucket(&bucket).await;
    let http = reqwest::Client::new();

    let t = Tansu::start().await;
    let topic = unique("chat-events");
    t.create_topic(&topic, 1).await;
    let (brokers, mt, ep, b) = (t.brokers(), topic.clone(), endpoint.clone(), bucket.clone());
    let api = TestApi::start(move |c| {
        c.kafka.brokers = brokers;
        c.kafka.messages_topic = mt;
        c.media.s3.bucket = b;
        c.media.s3.endpoint = ep;
        c.media.s3.allow_http = true;
        c.media.s3.access_key_id = "test".into();
        c.media.s3.secret_access_key = "test".into();
        c.media.s3.presign_secs = 60;
    })
    .await;
    let (_, ann) = api.user("ann").await;
    let (_, eve) = api.user("eve").await;
    let (s, chat) = api
        .req("POST", "/chats", Some(&ann), Some(json!({"title": "s3"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let chat = chat["id"].as_str().unwrap().to_owned();
    let image = png(64, 48, 3000);
    let (s, sent) = upload(&api, &chat, &ann, &image, None).await;
    assert_eq!(s, StatusCode::CREATED, "{sent}");
    let key = format!("chats/{chat}/{}.png", sent["message_id"].as_str().unwrap());

    // The blob is in the bucket and private: no anonymous read.
    let anonymous = http
        .get(format!("{endpoint}/{bucket}/{key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);

    // A member is redirected to a presigned URL, which serves byte ranges itself.
    let (s, h, body) = fetch(&api, &key, &ann, None).await;
    assert_eq!(s, StatusCode::TEMPORARY_REDIRECT);
    let url = h["location"].to_str().unwrap().to_owned();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["url"], url.as_str());
    assert_eq!(body["expires_in"], 60);
    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap(), image);
    let part = http
        .get(&url)
        .header("range", "bytes=0-7")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), image[..8]);
    // (moto does not check signatures, only that a request carries one: a forged URL is
    // refused by real S3, not here.)

    // A non-member gets nothing to follow.
    let (s, h, _) = fetch(&api, &key, &eve, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(h.get("location").is_none());
    api.stop().await;
}
