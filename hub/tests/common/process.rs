//! `chorus-hub` as its own process, so a test can run several nodes and kill one.

pub struct HubProcess {
    child: std::process::Child,
    pub port: u16,
}

impl HubProcess {
    pub async fn start(config: &std::path::Path) -> HubProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chorus-hub"))
            .arg("--config")
            .arg(config)
            .env("CHORUS_HUB__HTTP_SERVER__PORT", port.to_string())
            .env("CHORUS_HUB__HTTP_SERVER__ADDRESS", "127.0.0.1")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The port opens once the node is ready (consumers replayed, engine connected).
        if super::listening(port, 600).await {
            return HubProcess { child, port };
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("chorus-hub did not open port {port}");
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye, no commit, presence left to expire.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
