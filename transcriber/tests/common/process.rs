//! `chorus-transcriber serve` as its own process, configured through `CHORUS_TRANSCRIBER__*`
//! variables, logging to a file the test can watch.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct TranscriberProcess {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl TranscriberProcess {
    /// Starts it with these `CHORUS_TRANSCRIBER__*` settings (keys without the prefix).
    pub async fn start(settings: &[(&str, String)]) -> TranscriberProcess {
        let port = super::free_port();
        let log = std::env::temp_dir().join(super::tansu::unique("chorus-transcriber-log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chorus-transcriber"))
            .arg("serve")
            .envs(
                settings
                    .iter()
                    .map(|(k, v)| (format!("CHORUS_TRANSCRIBER__{k}"), v.clone())),
            )
            .env(
                "CHORUS_TRANSCRIBER__HTTP__ADDRESS",
                format!("127.0.0.1:{port}"),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let p = TranscriberProcess {
            child: Some(child),
            port,
            log,
        };
        assert!(
            super::listening(port, 600).await,
            "chorus-transcriber did not listen; log in {}",
            p.log.display()
        );
        p
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for TranscriberProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
