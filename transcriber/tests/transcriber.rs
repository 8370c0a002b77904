//! The transcriber against a real broker (tansu) and a real Whisper model: the model converted
//! from the PyPI wheel hears espeak-ng's speech; a clip that will not decode is dead-lettered
//! and the chat told, and the next clip is transcribed; a worker killed mid-job leaves the clip
//! to the next one, and a client on the hub sees exactly one transcript; images get thumbnails
//! and a decompression bomb is dead-lettered by its header.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chorus_media::audio;
use chorus_protocol::event::{ChatEvent, EventBody};
use chorus_testkit::wer::word_error_rate;
use chorus_transcriber::engine::Engine;
use chorus_transcriber::model::ggml::WeightType;
use common::start_transcriber;
use common::tansu::{ulid, unique, Tansu};
use common::{eventually, speech, voice_event};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

const SENTENCE: &str = "Please send me the report before the meeting tomorrow morning.";

fn hear(model: &std::path::Path, clip: Vec<u8>) -> String {
    let decoded = audio::decode(clip, 60).unwrap();
    let samples = audio::to_whisper_rate(&decoded.samples, decoded.sample_rate);
    Engine::load(model, 2, Some(5_000))
        .unwrap()
        .transcribe(&samples)
        .unwrap()
        .text
}

/// Every container the API accepts decodes and is heard: WAV, FLAC, MP3 and OGG/Vorbis through
/// symphonia; OGG/Opus and WebM/Opus (as a browser's MediaRecorder writes it: 48 kHz, clusters
/// of unknown size) through libopus. The checked-in clips are the test kit's (`libs/testkit/fixtures/make.sh`).
#[test]
fn every_accepted_container_is_decoded_and_heard() {
    const FIXTURE_SENTENCE: &str = "We should book the flights for the conference next month.";
    let fixture = |name: &str| std::fs::read(chorus_testkit::fixture(name)).unwrap();
    let model = speech::model();
    for (sentence, clip, mime) in [
        (SENTENCE, speech::wav(SENTENCE), "audio/wav"),
        (SENTENCE, speech::ogg_opus(SENTENCE), "audio/ogg"),
        (FIXTURE_SENTENCE, fixture("speech.flac"), "audio/flac"),
        (FIXTURE_SENTENCE, fixture("speech.mp3"), "audio/mpeg"),
        (FIXTURE_SENTENCE, fixture("speech.vorbis.ogg"), "audio/ogg"),
        (FIXTURE_SENTENCE, fixture("speech.webm"), "audio/webm"),
    ] {
        let decoded = audio::decode(clip.clone(), 60).unwrap();
        assert_eq!(decoded.container.mime(), mime);
        assert!(
            (3_000..4_500).contains(&decoded.duration_ms()),
            "{mime}: {} ms",
            decoded.duration_ms()
        );
        let heard = hear(&model, clip);
        let wer = word_error_rate(sentence, &heard);
        assert!(wer <= 0.2, "{mime}: heard {heard:?}: WER {wer:.2}");
    }
}

#[test]
fn prepare_model_converts_the_registry_wheel_into_a_model_that_hears_speech() {
    let from = speech::unpacked_wheel();
    let clip = speech::wav(SENTENCE);
    for weights in [WeightType::F16, WeightType::Q8_0] {
        let to = std::env::temp_dir().join(unique("ggml-model"));
        chorus_transcriber::model::prepare(&from, &to, weights, false).unwrap();
        let heard = hear(&to, clip.clone());
        let wer = word_error_rate(SENTENCE, &heard);
        assert!(wer <= 0.2, "{weights:?} heard {heard:?}: WER {wer:.2}");
        std::fs::remove_file(&to).unwrap();
    }
    // A model file that is not CTranslate2's is refused with a reason, not a panic.
    let bad = std::env::temp_dir().join(unique("bad-model"));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("model.bin"), b"\x06\0\0\0garbage").unwrap();
    std::fs::write(bad.join("vocabulary.txt"), "a\n").unwrap();
    let err =
        chorus_transcriber::model::prepare(&bad, &bad.join("out.bin"), WeightType::F16, false)
            .unwrap_err();
    assert!(err.to_string().contains("model.bin"), "{err:#}");
    assert!(!bad.join("out.bin").exists());
}

/// Reads `topic` from its start until `n` records pass `keep`, and returns those.
async fn read_topic(
    t: &Tansu,
    topic: &str,
    n: usize,
    keep: impl Fn(&OwnedMessage) -> bool,
) -> Vec<OwnedMessage> {
    let consumer = t.reader(topic);
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{n} records on {topic} within 60 s"))
            .unwrap()
            .detach();
        if keep(&m) {
            out.push(m);
        }
    }
    out
}

fn event_of(m: &OwnedMessage) -> ChatEvent {
    ChatEvent::decode(m.payload().unwrap()).unwrap()
}

/// A dead letter's payload and its `chorus-dlq-reason`.
fn dead_letter(m: &OwnedMessage) -> (String, String) {
    let reason = m
        .headers()
        .unwrap()
        .iter()
        .find(|h| h.key == "chorus-dlq-reason")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    (
        String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
        reason,
    )
}

/// Reads the chat topic from the start until `n` outcome events (transcribed or failed).
async fn outcomes(t: &Tansu, topic: &str, n: usize) -> Vec<ChatEvent> {
    let kept = read_topic(t, topic, n, |m| {
        matches!(
            event_of(m).body,
            EventBody::MessageTranscribed { .. } | EventBody::TranscriptionFailed { .. }
        )
    })
    .await;
    kept.iter().map(event_of).collect()
}

struct Topics {
    audio: String,
    images: String,
    chat: String,
    media: std::path::PathBuf,
}

async fn topics(t: &Tansu) -> Topics {
    let topics = Topics {
        audio: unique("chat-audio"),
        images: unique("chat-images"),
        chat: unique("chat-events"),
        media: std::env::temp_dir().join(unique("media")),
    };
    t.create_topic(&topics.audio, 1).await;
    t.create_topic(&topics.chat, 1).await;
    t.create_topic(&topics.images, 1).await;
    topics
}

/// Stores `clip` at `chats/<chat>/<id>.wav` and queues it as the API would.
async fn queue(t: &Tansu, x: &Topics, chat: &str, id: &str, clip: &[u8]) {
    let key = format!("chats/{chat}/{id}.wav");
    let path = x.media.join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, clip).unwrap();
    let event = voice_event(chat, id, &key, clip.len()).encode();
    let payload = String::from_utf8(event).unwrap();
    t.produce(&t.producer(), &x.audio, None, chat, &payload, &[])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clip_that_will_not_decode_is_dead_lettered_the_chat_told_and_the_next_transcribed() {
    let t = Tansu::start().await;
    let x = topics(&t).await;
    let (bad, good) = (ulid(11), ulid(12));
    // RIFF/WAVE, then garbage where the format chunk should be. (Garbage after a whole header
    // would be valid PCM: noise, which Whisper hears as nothing.)
    let mut corrupt = speech::wav("corrupt");
    corrupt.truncate(12);
    corrupt.extend((0..8_000u32).map(|i| (i * 7919 % 251) as u8));
    // A record that is no event at all, a corrupt clip, then a good one.
    t.produce(&t.producer(), &x.audio, None, "1", "{not an event", &[])
        .await;
    queue(&t, &x, "1", &bad, &corrupt).await;
    queue(&t, &x, "1", &good, &speech::wav(SENTENCE)).await;

    let mut c = chorus_transcriber::config::Config::default();
    c.kafka.brokers = t.brokers();
    c.kafka.audio_topic = x.audio.clone();
    c.kafka.messages_topic = x.chat.clone();
    c.kafka.group = unique("transcriber");
    c.model.path = speech::model();
    c.media.path = x.media.clone();
    c.kafka.image_topic = x.images.clone();
    c.validate().unwrap();
    let stop = CancellationToken::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let running = tokio::spawn(chorus_transcriber::run(c.clone(), tcp, stop.clone()));

    let events = outcomes(&t, &x.chat, 2).await;
    assert!(
        matches!(&events[0].body, EventBody::TranscriptionFailed { message_id, reason }
            if *message_id == bad && reason.contains("decode")),
        "{:?}",
        events[0]
    );
    match &events[1].body {
        EventBody::MessageTranscribed {
            message_id,
            transcript,
            ..
        } => {
            assert_eq!(*message_id, good);
            let wer = word_error_rate(SENTENCE, transcript);
            assert!(wer <= 0.2, "heard {transcript:?}: WER {wer:.2}");
        }
        other => panic!("{other:?}"),
    }

    // The dead-letter topic holds both bad records as read, with the reason.
    let reasons: Vec<_> = read_topic(&t, &format!("{}.dlq", x.audio), 2, |_| true)
        .await
        .iter()
        .map(dead_letter)
        .collect();
    assert_eq!(reasons[0].0, "{not an event", "{reasons:?}");
    assert!(reasons[0].1.contains("not a chat event"), "{reasons:?}");
    assert!(
        reasons[1].0.contains(&bad) && reasons[1].1.contains("decode"),
        "{reasons:?}"
    );

    // /metrics counts what happened.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "chorus_transcriber_jobs_total{outcome=\"failed\"} 1",
        "chorus_transcriber_jobs_total{outcome=\"transcribed\"} 1",
        "chorus_transcriber_jobs_total{outcome=\"unparsable\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_job_leaves_it_to_the_next_and_the_client_sees_one_transcript() {
    let t = Tansu::start().await;
    let x = topics(&t).await;
    let hub = common::HubProcess::live(&t.brokers(), &x.chat, &unique("hub")).await;
    let url = hub.url();
    let (mut client, _) = common::client::Client::connect(&url, "u1").await;
    client
        .send(serde_json::json!({"id": 2, "subscribe": {"channel": "chat:9"}}))
        .await;
    let r = client.reply(2).await;
    assert!(r.get("error").is_none(), "{r}");

    // A longer clip, so the first worker is surely still inside Whisper when it dies.
    let long = [SENTENCE; 3].join(" ");
    let id = ulid(21);
    queue(&t, &x, "9", &id, &speech::wav(&long)).await;
    let settings = [
        ("KAFKA__BROKERS", t.brokers()),
        ("KAFKA__AUDIO_TOPIC", x.audio.clone()),
        ("KAFKA__MESSAGES_TOPIC", x.chat.clone()),
        ("KAFKA__GROUP", unique("transcriber")),
        ("MODEL__PATH", speech::model().display().to_string()),
        ("MODEL__THREADS", "1".to_owned()),
        ("MEDIA__PATH", x.media.display().to_string()),
        ("KAFKA__IMAGE_TOPIC", x.images.clone()),
        // The second worker is the first one restarted at once, with the same instance id
        // (static membership): it takes the dead one's place without waiting out its session.
        // tansu 0.6 gave static members with a 6 s session no partition at all; 45 s works.
        ("KAFKA__SESSION_TIMEOUT_MS", "45000".to_owned()),
        ("KAFKA__INSTANCE_ID", unique("worker")),
    ];
    let mut first = start_transcriber(&settings).await;
    eventually("the first worker to start the job", 60, || async {
        first.log_text().contains("transcribing")
    })
    .await;
    first.kill9();
    assert!(
        !first.log_text().contains("transcribed"),
        "the first worker finished before it was killed: {}",
        first.log_text()
    );

    let second = start_transcriber(&settings).await;
    eventually("the second worker to transcribe it", 90, || async {
        second.log_text().contains("transcribed")
    })
    .await;
    let transcript = loop {
        let data = client.next_pub().await["push"]["pub"]["data"].clone();
        if data["type"] == "message.transcribed" {
            break data;
        }
    };
    assert_eq!(
        transcript["data"]["message_id"],
        id.as_str(),
        "{transcript}"
    );
    let heard = transcript["data"]["transcript"].as_str().unwrap();
    assert!(word_error_rate(&long, heard) <= 0.2, "heard {heard:?}");
    assert!(second.log_text().contains(&id), "{}", second.log_text());

    // Exactly once as the client sees it: nothing more arrives (a repeat would carry the same
    // event id, which the hub drops).
    while let Ok(more) = tokio::time::timeout(Duration::from_secs(3), client.next_pub()).await {
        assert_ne!(
            more["push"]["pub"]["data"]["type"], "message.transcribed",
            "{more}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn images_get_thumbnails_and_a_decompression_bomb_is_refused_unread() {
    let t = Tansu::start().await;
    let x = topics(&t).await;
    let (bomb_id, photo_id) = (ulid(31), ulid(32));
    // A PNG header claiming 100000×100000 pixels (40 GB decoded) in 33 bytes.
    let mut bomb = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
    bomb.extend_from_slice(b"IHDR");
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut photo = Vec::new();
    image::RgbImage::from_fn(800, 600, |x, y| image::Rgb([x as u8, y as u8, 90]))
        .write_to(
            &mut std::io::Cursor::new(&mut photo),
            image::ImageFormat::Png,
        )
        .unwrap();
    for (id, bytes) in [(&bomb_id, &bomb), (&photo_id, &photo)] {
        let key = format!("chats/5/{id}.png");
        let path = x.media.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let event = common::attachment_event(
            "5",
            id,
            &key,
            bytes.len(),
            chorus_protocol::event::AttachmentKind::Image,
        );
        let payload = String::from_utf8(event.encode()).unwrap();
        t.produce(&t.producer(), &x.images, None, "5", &payload, &[])
            .await;
    }
    let mut c = chorus_transcriber::config::Config::default();
    c.kafka.brokers = t.brokers();
    c.kafka.audio_topic = x.audio.clone();
    c.kafka.image_topic = x.images.clone();
    c.kafka.messages_topic = x.chat.clone();
    c.kafka.group = unique("workers");
    c.model.path = speech::model();
    c.media.path = x.media.clone();
    let stop = CancellationToken::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = tokio::spawn(chorus_transcriber::run(c, tcp, stop.clone()));

    let seen: Vec<_> = read_topic(&t, &x.chat, 2, |_| true)
        .await
        .iter()
        .map(event_of)
        .collect();
    assert!(
        matches!(&seen[0].body, EventBody::AttachmentFailed { message_id, reason }
            if *message_id == bomb_id && reason.contains("over the limit")),
        "{:?}",
        seen[0]
    );
    let EventBody::AttachmentProcessed {
        message_id,
        thumbnail,
    } = &seen[1].body
    else {
        panic!("{:?}", seen[1]);
    };
    assert_eq!(*message_id, photo_id);
    assert_eq!((thumbnail.width, thumbnail.height), (320, 240));
    assert_eq!(thumbnail.mime, "image/jpeg");
    let stored = std::fs::read(x.media.join(&thumbnail.key)).unwrap();
    assert_eq!(stored.len() as u64, thumbnail.size);
    let back = image::load_from_memory(&stored).unwrap();
    assert_eq!((back.width(), back.height()), (320, 240));

    // The bomb is in the image topic's dead letters, with the reason.
    let letters = read_topic(&t, &format!("{}.dlq", x.images), 1, |_| true).await;
    let (payload, reason) = dead_letter(&letters[0]);
    assert!(payload.contains(&bomb_id), "{payload}");
    assert!(reason.contains("over the limit"), "{reason}");
    stop.cancel();
    running.await.unwrap().unwrap();
}
