//! chorus-loadtest: opens many WebSocket connections to a Chorus hub (or a Pusher-protocol
//! server such as Sockudo), publishes through the server's HTTP API, and measures delivery
//! latency, loss, throughput and the server's memory and CPU per connection and per delivery.
//!
//! The coordinator process plans the run and publishes; connections live in worker processes
//! (the same binary, `chorus-loadtest worker`) because one process may hold at most its
//! open-file limit of sockets. They talk over stdin/stdout in JSON lines.
//!
//! - [`cli`]: the command line.
//! - [`plan`]: scenarios turned into channels and a channel per connection.
//! - [`coordinator`]: spawns workers, runs the phases, gathers the report.
//! - [`worker`]: one worker process: connects at a rate, tracks what arrives.
//! - [`conn`]: one connection's task.
//! - [`wire`]: the two client protocols, Centrifugo v2 JSON and Pusher.
//! - [`payload`]: what every publication carries (send time and sequence number).
//! - [`token`]: connection JWTs minted per connection.
//! - [`track`]: per-connection sequence tracking (lost, duplicated, reordered).
//! - [`stats`]: per-worker histograms and per-second series.
//! - [`ipc`]: the messages between coordinator and workers.
//! - [`publisher`]: the pluggable publishers (Centrifugo server API, Pusher HTTP API).
//! - [`schedule`]: publishes at a fixed rate, in order per channel.
//! - [`sampler`]: reads the server's RSS and CPU time from `/proc`.
//! - [`report`]: the JSON result, the Markdown summary and the PNG chart.
//! - [`fdlimit`]: raises the open-file limit and says how many sockets a process may hold.
//! - [`floor`]: the Kafka latency floor, a bare consumer timing the same records.
//! - [`floor_server`]: the fan-out floor, a minimal server that `scripts/bench` measures
//!   the hub against.

pub mod cli;
pub mod conn;
pub mod coordinator;
pub mod fdlimit;
pub mod floor;
pub mod floor_server;
pub mod ipc;
pub mod payload;
pub mod plan;
pub mod produce;
pub mod publisher;
pub mod report;
pub mod sampler;
pub mod schedule;
pub mod stats;
pub mod token;
pub mod track;
pub mod wire;
pub mod worker;
