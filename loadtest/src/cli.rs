//! The command line: `chorus-loadtest <idle|broadcast|rooms> --url WS_URL --connections N ...`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "chorus-loadtest",
    version,
    about = "Connection-scale load harness for Chorus"
)]
pub struct Cli {
    /// Runtime threads in this process (coordinator or worker).
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// N connections, each subscribed to a channel; measures memory per connection.
    Idle(Box<RunArgs>),
    /// One channel, N subscribers, publishes at --publish-rate per second.
    Broadcast(Box<RunArgs>),
    /// Chat-like: rooms of --room-min..=--room-max members, publishes spread over them.
    Rooms(Box<RunArgs>),
    /// Compares JSON results of two servers (by their --label) as a Markdown table.
    Compare {
        /// Result files written with --json.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "chorus")]
        ours: String,
        #[arg(long, default_value = "sockudo")]
        theirs: String,
    },
    /// Produces each line of standard input as one Kafka record (acknowledged, in order).
    Produce {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        key: Option<String>,
        /// NAME=VALUE, repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// The fan-out floor: a minimal server speaking just what the harness uses of
    /// Centrifugo's protocol, writing each publication to its subscribers as cheaply as this
    /// machine allows. A yardstick for a hub, not a product: tokens and keys are not checked.
    FloorServer {
        /// Address to listen on (loopback).
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Internal: a worker process; reads its plan on stdin.
    #[command(hide = true)]
    Worker,
}

impl Mode {
    /// Splits the mode into its scenario and arguments.
    pub fn into_run(self) -> Option<(Scenario, RunArgs)> {
        match self {
            Mode::Idle(a) => Some((Scenario::Idle, *a)),
            Mode::Broadcast(a) => Some((Scenario::Broadcast, *a)),
            Mode::Rooms(a) => Some((Scenario::Rooms, *a)),
            Mode::Worker
            | Mode::Compare { .. }
            | Mode::Produce { .. }
            | Mode::FloorServer { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Idle,
    Broadcast,
    Rooms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Centrifugo client protocol v2 (JSON): Chorus, Centrifugo.
    Centrifugo,
    /// The same protocol in Protobuf (the `centrifuge-protobuf` subprotocol).
    CentrifugoProtobuf,
    /// Pusher Channels protocol 7: Sockudo, Soketi, Pusher.
    Pusher,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// WebSocket URL of a server; repeat to spread connections round-robin over several nodes.
    /// For --protocol pusher give the base (ws://host:port); the harness adds /app/<key>.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// Connections to open in total.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// New connections per second, over all workers.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Publications per second, over all channels.
    #[arg(long, default_value_t = 10.0)]
    pub publish_rate: f64,
    /// Seconds to publish (broadcast, rooms) or to hold the connections (idle).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop publishing after this many publications, even before --duration.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Bytes per publication payload.
    #[arg(long, default_value_t = 128)]
    pub payload_size: usize,
    /// Server process to sample from /proc (RSS, CPU time); repeat for several nodes.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<i32>,
    /// Client protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Centrifugo)]
    pub protocol: Protocol,
    /// HMAC secret for the connection JWTs the harness mints (one per connection).
    #[arg(long)]
    pub hmac_secret: Option<String>,
    /// Server HTTP API: http://host:port (for Chorus, http://host:port/api works too).
    #[arg(long)]
    pub api_url: Option<String>,
    /// Publish through Kafka instead of the HTTP API: records in publication data mode, for a
    /// hub consuming --kafka-topic.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    #[arg(long, default_value = "chorus-loadtest")]
    pub kafka_topic: String,
    /// The Kafka producer's linger.ms (batching); the floor consumer sees the same records.
    #[arg(long, default_value_t = 0)]
    pub kafka_linger_ms: u32,
    /// With --kafka-brokers: also time a bare Kafka consumer on the topic (the latency floor).
    #[arg(long)]
    pub kafka_floor: bool,
    /// Chorus/Centrifugo server API key.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Subscribe with fossil delta compression (Centrifugo protocols; the server's namespace
    /// must allow it): publications arrive as deltas the harness applies.
    #[arg(long)]
    pub delta: bool,
    /// Pusher app id, key and secret (for --protocol pusher).
    #[arg(long)]
    pub pusher_app_id: Option<String>,
    #[arg(long)]
    pub pusher_key: Option<String>,
    #[arg(long)]
    pub pusher_secret: Option<String>,
    /// Worker processes holding the connections; by default as few as the open-file limit allows.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Runtime threads per worker process.
    #[arg(long, default_value_t = 1)]
    pub worker_threads: usize,
    /// Concurrent publisher lanes (each channel always goes through the same lane, in order).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Idle: number of channels (default: one per connection).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Rooms: smallest and largest room.
    #[arg(long, default_value_t = 2)]
    pub room_min: usize,
    #[arg(long, default_value_t = 50)]
    pub room_max: usize,
    /// Seed for the room layout and the publisher's room choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix of every channel name.
    #[arg(long, default_value = "lt")]
    pub channel_prefix: String,
    /// Source addresses 127.0.0.1..=127.0.0.K to spread connections over (loopback targets).
    #[arg(long, default_value_t = 200)]
    pub source_ips: u8,
    /// Seconds to let the server settle after the last connection before sampling memory.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Seconds to wait for in-flight deliveries after the last publication.
    #[arg(long, default_value_t = 15.0)]
    pub drain_timeout: f64,
    /// Seconds a connection may take to connect and subscribe.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Write the JSON result here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the PNG chart here.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// TrueType font for the chart's text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    pub font: PathBuf,
    /// A label for this run in the reports (e.g. "chorus", "sockudo").
    #[arg(long, default_value = "")]
    pub label: String,
}
