//! moto's S3-compatible server (PyPI, `scripts/test` installs it) on a free loopback port.

pub struct Moto {
    child: std::process::Child,
    pub port: u16,
}

impl Moto {
    pub async fn start() -> Moto {
        let bin = crate::cached(
            "CHORUS_MOTO_BIN",
            "tools/moto-5.2.5/bin/moto_server",
            "moto",
        );
        let port = crate::free_port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        assert!(
            crate::listening(port, 400).await,
            "moto_server did not listen"
        );
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (S3's `PUT /bucket`).
    pub async fn create_bucket(&self, bucket: &str) {
        let made = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("moto answers");
        assert!(
            made.status().is_success(),
            "creating the bucket: {}",
            made.status()
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
