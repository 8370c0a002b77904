//! A real Kafka-protocol broker for tests: tansu, started per test on a free loopback port
//! with its own sqlite store, so it can be stopped and restarted with its data.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

pub struct Tansu {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The broker binary: `CHORUS_TANSU_BIN`, else where `scripts/lib/tansu.sh` installs it.
pub fn binary() -> PathBuf {
    crate::cached(
        "CHORUS_TANSU_BIN",
        "tools/tansu-0.6.0/bin/tansu",
        "the tansu broker",
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Tansu {
    pub async fn start() -> Tansu {
        let dir = std::env::temp_dir().join(unique("chorus-tansu"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = Tansu {
            port: free_port(),
            dir,
            child: None,
        };
        t.spawn().await;
        t
    }

    async fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        // The sqlite path is relative to the working directory (an absolute one is doubled).
        let child = Command::new(binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        if crate::listening(self.port, 200).await {
            return;
        }
        panic!(
            "tansu did not listen on {}; see {}",
            self.port,
            self.dir.display()
        );
    }

    /// The broker's own log, across restarts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open and nothing answers, as with a
    /// broker that hangs.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("tansu is running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers());
        c
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let r = admin
            .create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
        assert!(r.iter().all(|r| r.is_ok()), "creating {name}: {r:?}");
    }

    /// A consumer of `topic` from its first record, in a group of its own.
    pub fn reader(&self, topic: &str) -> StreamConsumer {
        let consumer: StreamConsumer = self
            .config()
            .set("group.id", unique("reader"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        consumer
    }

    /// Every record of `topic` (one partition), read from the start up to its high
    /// watermark: all of them, so a count can come out too high as well as too low.
    pub async fn read_all(&self, topic: &str) -> Vec<Vec<u8>> {
        use rdkafka::Message;
        let consumer = self.reader(topic);
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(5))
            .unwrap();
        let mut out = Vec::new();
        while (out.len() as i64) < high {
            let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {high} records on {topic}", out.len()))
                .unwrap();
            out.push(m.payload().unwrap_or_default().to_vec());
        }
        out
    }

    pub fn producer(&self) -> FutureProducer {
        self.config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "60000")
            .create()
            .unwrap()
    }

    /// Produces one record and waits until the broker has it.
    pub async fn produce(
        &self,
        producer: &FutureProducer,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        payload: &str,
        headers: &[(&str, &str)],
    ) {
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut r = FutureRecord::to(topic).key(key).payload(payload).headers(h);
        if let Some(p) = partition {
            r = r.partition(p);
        }
        producer
            .send(r, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A ULID-shaped id (Crockford base32, 26 characters) from a number, for chat events.
pub fn ulid(n: u64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut out = vec![b'0'; 26];
    let mut v = n;
    for slot in out.iter_mut().rev().take(13) {
        *slot = ALPHABET[(v % 32) as usize];
        v /= 32;
    }
    out[1] = b'1';
    String::from_utf8(out).unwrap()
}

/// A `message.created` chat event whose text is `seq`.
pub fn chat_event(chat: &str, seq: u64) -> String {
    serde_json::json!({
        "v": 1, "event_id": ulid(seq * 2 + 1), "chat_id": chat, "ts": 1,
        "type": "message.created",
        "data": {"message_id": ulid(seq * 2), "author": {"id": "u1"}, "text": seq.to_string()}
    })
    .to_string()
}
