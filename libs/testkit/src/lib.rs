//! `chorus-testkit`: the fixtures every crate's tests share, so no test reaches into another
//! crate's `tests/` folder. A dev-dependency only; it panics on failure, as tests want.
//!
//! | module | fixture |
//! |---|---|
//! | [`net`] | waiting for a port, or for a condition |
//! | [`tansu`] | a real Kafka-protocol broker per test (tansu), free ports, unique names |
//! | [`dynamodb`] | Amazon's DynamoDB Local per test |
//! | [`postgres`] | a database of a test's own in the machine's PostgreSQL |
//! | [`pg_server`] | a PostgreSQL server of a test's own, that a test can stop and start again |
//! | [`redis`] | a redis-server per test, that a test can kill and restart |
//! | [`redis_topology`] | a Redis Cluster (3 masters, 3 replicas) and a Sentinel-watched master with a replica |
//! | [`client`] | a raw Centrifugo-protocol WebSocket client and HS256 connection tokens |
//! | [`process`] | a service binary as its own process: `kill -9`, SIGTERM, `/health`, `/metrics`; another service's binary |
//! | [`pod`] | a network namespace for one service, its link to the rest cut, lossy or slow ([`delay`]: latency through NFQUEUE) |
//! | [`hub`] | `chorus-hub` as its own process: cluster nodes, or a hub delivering a chat topic live |
//! | [`speech`] | spoken sentences (espeak-ng, opusenc) and the Whisper model `scripts/test` prepares |
//! | [`wer`] | word error rate, for what the model heard |
//! | [`fixture`] | checked-in spoken clips: FLAC, MP3, OGG/Vorbis, browser-style WebM/Opus |
#![allow(clippy::unwrap_used)]

pub mod api;
pub mod client;
pub mod delay;
pub mod dynamodb;
pub mod hub;
pub mod moto;
pub mod net;
pub mod pg_server;
pub mod pod;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod redis_topology;
pub mod speech;
pub mod tansu;
pub mod wer;

pub use net::{eventually, listening};

/// Something the scripts install or prepare once under `~/.cache/chorus/`: `$var` when set,
/// else `~/.cache/chorus/<rel>`; a panic that says how to get it when it is not there.
pub fn cached(var: &str, rel: &str, what: &str) -> std::path::PathBuf {
    let path = std::env::var_os(var)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            std::path::PathBuf::from(home)
                .join(".cache/chorus")
                .join(rel)
        });
    assert!(
        path.exists(),
        "{what} is not at {} (scripts/test prepares it; or set {var})",
        path.display()
    );
    path
}

/// A checked-in clip of `fixtures/` (spoken audio in the containers uploads come in, made by
/// `fixtures/make.sh`).
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}
pub use tansu::{free_port, unique};
