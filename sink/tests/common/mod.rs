//! Test fixtures: real DynamoDB Local and tansu processes on free loopback ports (the shared
//! test kit's), a hub process delivering the topic live, and the sink as its own process, so
//! a test can `kill -9` it.
#![allow(dead_code, clippy::unwrap_used)]

pub use chorus_testkit::hub::HubProcess;
pub use chorus_testkit::process::ServiceProcess as SinkProcess;
pub use chorus_testkit::{client, dynamodb, eventually, tansu};

/// `chorus-sink` with these `CHORUS_SINK__*` settings (keys without the prefix).
pub async fn start_sink(settings: &[(&str, String)]) -> SinkProcess {
    SinkProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_chorus-sink")),
        &[],
        "CHORUS_SINK__",
        settings,
    )
    .await
}
