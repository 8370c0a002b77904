//! The server's own lifetime: it serves until shut down, however long that is.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chorus_hub::listener::FdBudgetListener;

#[tokio::test]
async fn serving_outlives_the_shutdown_grace_period() {
    let hub = common::start("", 10_000).await;
    let node = hub.node.clone();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = FdBudgetListener::new(tcp, 100, node.metrics.connections_refused.clone());
    let grace = Duration::from_millis(200);
    let task = tokio::spawn(chorus_hub::server::run(node.clone(), listener, grace));
    // Several grace periods pass with no shutdown: the server must still be serving.
    tokio::time::sleep(grace * 5).await;
    assert!(
        !task.is_finished(),
        "the server stopped without being shut down"
    );
    let (_c, reply) =
        common::Client::connect(&format!("ws://{addr}/connection/websocket"), "u1").await;
    assert!(reply.get("connect").is_some(), "{reply}");
    node.shutdown.cancel();
    task.await.unwrap().unwrap();
}
