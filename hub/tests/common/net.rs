//! Waiting for a port: shared by the hub's tests and, through a `#[path]` module, the sink's.

use std::time::Duration;

/// Waits until something listens on 127.0.0.1:`port`; false after `tries` × 50 ms.
pub async fn listening(port: u16, tries: u32) -> bool {
    for _ in 0..tries {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
