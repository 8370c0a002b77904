//! Test fixtures: real DynamoDB Local and tansu processes on free loopback ports, the sink as
//! its own process (so a test can `kill -9` it), and the hub's raw protocol client.
#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../hub/tests/common/client.rs"]
pub mod client;
pub mod dynamodb;
#[path = "../../../hub/tests/common/live.rs"]
pub mod live;
#[path = "../../../hub/tests/common/net.rs"]
pub mod net;
pub mod sink;
#[path = "../../../hub/tests/common/tansu.rs"]
pub mod tansu;

pub use net::{eventually, listening};
pub use tansu::free_port;
