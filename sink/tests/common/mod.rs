//! Test fixtures: real DynamoDB Local and tansu processes on free loopback ports, the sink as
//! its own process (so a test can `kill -9` it), and the hub's raw protocol client.
#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../hub/tests/common/client.rs"]
pub mod client;
pub mod dynamodb;
#[path = "../../../hub/tests/common/net.rs"]
pub mod net;
pub mod sink;
#[path = "../../../hub/tests/common/tansu.rs"]
pub mod tansu;

pub use net::listening;
pub use tansu::free_port;

/// Polls `f` every 100 ms for up to `secs` seconds.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}
