//! The web client in a real Chromium against the whole stack (`web/e2e/chat.mjs`, driven by
//! playwright-core): two users register, chat live, reload into history, page back through
//! 130 messages, keep working after their 3-second access token expired, come back from a hub
//! restart with every message once and in order, send a voice message recorded through
//! Chromium's fake microphone (espeak's sentence) whose transcript both see, and an image whose
//! thumbnail both see; then one removes the other, whose chat closes at once. `scripts/test`
//! installs Debian's chromium and builds the client first.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use chorus_testkit::wer::word_error_rate;
use common::speech;
use common::stack::{web_dist, Stack};

const SENTENCE: &str = "Please send me the report before the meeting tomorrow morning.";

#[tokio::test(flavor = "multi_thread")]
async fn two_users_chat_in_chromium() {
    assert!(
        web_dist().join("index.html").is_file(),
        "the web client is not built (scripts/test builds it; or npm ci && npm run build in web/)"
    );
    let mut stack = Stack::start_with(|c| {
        // Every step past the third second runs on a refreshed token.
        c.access_ttl = Duration::from_secs(3);
        c.limits.send_burst = 200;
        c.limits.send_per_second = 100;
    })
    .await;
    let shots = std::env::var_os("CHORUS_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(chorus_testkit::unique("chorus-shots")));
    std::fs::create_dir_all(&shots).unwrap();
    stack.start_transcriber().await;
    // Chromium's microphone: the sentence as espeak says it (22.05 kHz mono WAV).
    let wav = speech::wav(SENTENCE);
    let spoken_ms = (wav.len() - 44) as u64 * 1000 / (22_050 * 2);
    let wav_path = shots.join("speech.wav");
    std::fs::write(&wav_path, &wav).unwrap();
    let mut child = Command::new("node")
        .arg("e2e/chat.mjs")
        .arg(format!("{}/", stack.api_url))
        .arg(&shots)
        .arg(&wav_path)
        .arg(spoken_ms.to_string())
        .current_dir(web_dist().join(".."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The script's lines, read on a thread of their own.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut said = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(300), rx.recv())
        .await
        .expect("the browser test said nothing for five minutes")
    {
        eprintln!("{line}");
        if line == "restart-hub" {
            stack.hub.restart().await;
            writeln!(stdin, "restarted").unwrap();
        }
        said.push(line);
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let said = said.join("\n");
    assert!(status.success(), "the browser test failed:\n{said}");
    assert!(said.contains("browser: every step passed"), "{said}");
    let transcripts: Vec<&str> = said
        .lines()
        .filter_map(|l| l.strip_prefix("transcript: "))
        .collect();
    assert_eq!(transcripts.len(), 2, "one transcript in each page: {said}");
    for heard in transcripts {
        let wer = word_error_rate(SENTENCE, heard);
        assert!(wer <= 0.2, "heard {heard:?} (WER {wer:.2})");
    }
    stack.stop().await;
}
