//! Voice messages end to end against real services (PostgreSQL, Redis, tansu, DynamoDB
//! Local) and a real Whisper model (tiny.en, converted by `chorus-transcriber prepare-model`
//! from the PyPI wheel): espeak-ng speaks a known sentence, the API takes it as WAV and as
//! OGG/Opus, a member subscribed on the hub receives the voice message and then its
//! transcript, and the sink stores the transcript with the message.
#![allow(clippy::unwrap_used)]

mod common;

use chorus_testkit::wer::word_error_rate;
use common::client::Client;
use common::eventually;
use common::speech;
use common::stack::Stack;
use serde_json::{json, Value};

/// Sentences tiny.en hears right when espeak-ng says them at 150 words a minute.
const WAV_SENTENCE: &str = "Please send me the report before the meeting tomorrow morning.";
const OPUS_SENTENCE: &str = "I will call you when I get home tonight.";
const WEBM_SENTENCE: &str = "We should book the flights for the conference next month.";

/// A chat of Ann's with Bob in it; Bob's socket subscribed to it.
async fn chat_with_listener(stack: &Stack) -> (String, String, String, Client) {
    let (_, ann) = stack.user("ann").await;
    let (bob_id, bob) = stack.user("bob").await;
    let chat_id = stack.chat_with(&ann, "voice", &bob_id).await;
    let mut ws = stack.connect(&bob).await;
    ws.send(json!({"id": 2, "subscribe": {"channel": format!("chat:{chat_id}")}}))
        .await;
    let r = ws.reply(2).await;
    assert!(r.get("error").is_none(), "{r}");
    (chat_id, ann, bob, ws)
}

/// The next event on the socket about `message_id`.
async fn next_about(ws: &mut Client, message_id: &str) -> Value {
    loop {
        let v = ws.next_pub().await;
        let data = v["push"]["pub"]["data"].clone();
        if data["data"]["message_id"] == message_id {
            return data;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spoken_wav_ogg_opus_and_webm_opus_arrive_live_then_their_transcripts() {
    let stack = Stack::start().await;
    stack.start_transcriber().await;
    let (chat_id, ann, bob, mut ws) = chat_with_listener(&stack).await;
    let (_, eve) = stack.user("eve").await;
    let webm = std::fs::read(chorus_testkit::fixture("speech.webm")).unwrap();

    for (sentence, clip, mime) in [
        (WAV_SENTENCE, speech::wav(WAV_SENTENCE), "audio/wav"),
        (OPUS_SENTENCE, speech::ogg_opus(OPUS_SENTENCE), "audio/ogg"),
        // As a browser's MediaRecorder sends it (libs/testkit/fixtures/make.sh).
        (WEBM_SENTENCE, webm, "audio/webm"),
    ] {
        let (s, sent) = stack
            .upload(&format!("/chats/{chat_id}/voice"), &ann, &clip)
            .await;
        assert_eq!(s, 201, "{sent}");
        let id = sent["message_id"].as_str().unwrap().to_owned();

        // First the voice message itself, with what a player needs.
        let created = next_about(&mut ws, &id).await;
        assert_eq!(created["type"], "message.created", "{created}");
        let a = &created["data"]["attachment"];
        assert_eq!(a["kind"], "voice", "{created}");
        assert_eq!(a["mime"], mime, "{created}");
        assert_eq!(a["size"], clip.len(), "{created}");
        let duration = a["duration_ms"].as_u64().unwrap();
        assert!((1_500..8_000).contains(&duration), "{created}");

        // Then its transcript, close to the sentence.
        let done = next_about(&mut ws, &id).await;
        assert_eq!(done["type"], "message.transcribed", "{done}");
        let heard = done["data"]["transcript"].as_str().unwrap();
        let wer = word_error_rate(sentence, heard);
        assert!(wer <= 0.2, "heard {heard:?} for {sentence:?}: WER {wer:.2}");

        // The blob plays for members, seekable; not for anyone else.
        let url = format!("{}/media/{}", stack.api_url, a["key"].as_str().unwrap());
        let got = reqwest::Client::new()
            .get(&url)
            .header("authorization", format!("Bearer {bob}"))
            .header("range", "bytes=0-3")
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 206);
        assert_eq!(got.headers()["content-type"], mime);
        assert_eq!(got.bytes().await.unwrap(), clip[..4]);
        let refused = reqwest::Client::new()
            .get(&url)
            .header("authorization", format!("Bearer {eve}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 404);

        // History has the transcript with the message.
        let path = format!("/chats/{chat_id}/messages?limit=10");
        eventually("the transcript in history", 15, || async {
            let (_, page, _) = stack.http("GET", &path, Some(&bob), None, &[]).await;
            page["messages"].as_array().is_some_and(|m| {
                m.iter()
                    .any(|m| m["message_id"] == id && m["transcript"] == heard)
            })
        })
        .await;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_audio_is_refused_at_the_door_and_nothing_is_sent() {
    let stack = Stack::start().await;
    let (chat_id, ann, _bob, mut ws) = chat_with_listener(&stack).await;
    let path = format!("/chats/{chat_id}/voice");

    // Not audio at all, and audio in a container Chorus does not take (MP4/AAC).
    for junk in [
        &b"hello, I am not a sound"[..],
        b"\0\0\0\x20ftypM4A \0\0\0\0",
    ] {
        let (s, b) = stack.upload(&path, &ann, junk).await;
        assert_eq!(s, 415, "{b}");
        assert_eq!(b["error"]["code"], "unsupported_media_type", "{b}");
    }
    // A WAV header over garbage, and an OGG page header over garbage.
    let mut wav = speech::wav("corrupt");
    wav.truncate(12);
    wav.extend((0..5_000u32).map(|i| (i * 7919 % 251) as u8));
    let mut ogg = speech::ogg_opus("corrupt");
    ogg.truncate(30);
    ogg.extend((0..5_000u32).map(|i| (i * 7919 % 251) as u8));
    for corrupt in [wav, ogg] {
        let (s, b) = stack.upload(&path, &ann, &corrupt).await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(b["error"]["code"], "unprocessable", "{b}");
    }
    // A non-member cannot upload. The body is refused unread, so the connection closes and
    // the response says so: a pooled connection reused after it would fail the next request.
    let (_, eve) = stack.user("eve").await;
    let (s, _, headers) = stack
        .upload_with_headers(&path, &eve, &speech::wav("hello"))
        .await;
    assert_eq!(s, 404);
    assert_eq!(headers["connection"], "close");

    // Nothing of that reached the chat: the next thing Bob sees is the next real message.
    let (s, sent, _) = stack
        .http(
            "POST",
            &format!("/chats/{chat_id}/messages"),
            Some(&ann),
            Some(json!({"text": "after"})),
            &[],
        )
        .await;
    assert_eq!(s, 201, "{sent}");
    loop {
        let data = ws.next_pub().await["push"]["pub"]["data"].clone();
        if data["type"] == "chat.updated" {
            continue;
        }
        assert_eq!(data["data"]["message_id"], sent["message_id"], "{data}");
        break;
    }
    stack.stop().await;
}
