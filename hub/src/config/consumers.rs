//! `consumers`: Centrifugo v6's asynchronous consumers, of which Chorus runs the `kafka` type.
//!
//! Key names and defaults follow Centrifugo's, so a Centrifugo `consumers` block works as is.
//! Chorus adds `chat_event_mode` (the chat event envelope), `dead_letter_topic`,
//! `fetch_max_wait` and `librdkafka` (raw client properties, the operator's escape hatch).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::HumanDuration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Consumer {
    pub enabled: bool,
    /// `^[a-zA-Z0-9_]{2,}`; names the consumer in logs, metrics and `/health`.
    pub name: String,
    /// Only `kafka` is implemented.
    #[serde(rename = "type")]
    pub kind: String,
    pub kafka: KafkaConsumer,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConsumer {
    pub brokers: Vec<String>,
    pub topics: Vec<String>,
    pub consumer_group: String,
    /// Accepted for Centrifugo compatibility; librdkafka sizes fetches in bytes instead.
    pub max_poll_records: usize,
    /// Bytes one fetch may return; 0 keeps librdkafka's 50 MiB.
    pub fetch_max_bytes: i32,
    /// How long the broker may hold a fetch open waiting for data. librdkafka's 500 ms default
    /// is added to every record's latency on a quiet topic; Chorus defaults to 5 ms.
    pub fetch_max_wait: HumanDuration,
    /// `plain` or empty.
    pub sasl_mechanism: String,
    pub sasl_user: String,
    pub sasl_password: String,
    pub tls: KafkaTls,
    /// When a record carries this header, its value is the API method and the payload is
    /// that method's params.
    pub method_header: String,
    pub publication_data_mode: PublicationDataMode,
    pub chat_event_mode: ChatEventMode,
    /// Where records that cannot be processed are written; empty means `<source topic>.dlq`.
    pub dead_letter_topic: String,
    /// Extra librdkafka properties, applied last (for example `"statistics.interval.ms"`).
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaConsumer {
    fn default() -> Self {
        KafkaConsumer {
            brokers: Vec::new(),
            topics: Vec::new(),
            consumer_group: String::new(),
            max_poll_records: 100,
            fetch_max_bytes: 0,
            fetch_max_wait: HumanDuration(std::time::Duration::from_millis(5)),
            sasl_mechanism: String::new(),
            sasl_user: String::new(),
            sasl_password: String::new(),
            tls: KafkaTls::default(),
            method_header: "centrifugo-method".into(),
            publication_data_mode: PublicationDataMode::default(),
            chat_event_mode: ChatEventMode::default(),
            dead_letter_topic: String::new(),
            librdkafka: BTreeMap::new(),
        }
    }
}

/// Only `enabled` is read: TLS to Kafka is refused at startup until it is built.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaTls {
    pub enabled: bool,
}

/// Records whose payload is the publication data itself; headers name the channels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PublicationDataMode {
    pub enabled: bool,
    /// Comma-separated channel names.
    pub channels_header: String,
    pub idempotency_key_header: String,
    /// Headers with this prefix become publication tags (prefix stripped).
    pub tags_header_prefix: String,
}

impl Default for PublicationDataMode {
    fn default() -> Self {
        PublicationDataMode {
            enabled: false,
            channels_header: "centrifugo-channels".into(),
            idempotency_key_header: "centrifugo-idempotency-key".into(),
            tags_header_prefix: "centrifugo-tag-".into(),
        }
    }
}

/// Records are Chorus chat events (`chorus_protocol::event`); each goes to `chat:<chat_id>`.
///
/// The topic must be keyed by chat id, so that one chat lives in one partition: a chat
/// channel's stream position is then its partition's offset, which survives a hub restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatEventMode {
    pub enabled: bool,
    /// Records per partition re-read at startup to rebuild channel history for recovery.
    pub replay_records: u64,
}

impl Default for ChatEventMode {
    fn default() -> Self {
        ChatEventMode {
            enabled: false,
            replay_records: 1000,
        }
    }
}

/// Checks one consumer entry; errors are appended as full sentences.
pub fn check(i: usize, c: &Consumer, errors: &mut Vec<String>) {
    let at = format!("consumers[{i}] ({})", c.name);
    let valid_name = c.name.len() >= 2
        && c.name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !valid_name {
        errors.push(format!(
            "consumers[{i}].name {:?} must be 2+ latin letters, digits or underscores",
            c.name
        ));
    }
    if !c.enabled {
        return;
    }
    if c.kind != "kafka" {
        errors.push(format!(
            "{at}: type {:?} is not supported (only \"kafka\")",
            c.kind
        ));
        return;
    }
    let k = &c.kafka;
    if k.brokers.is_empty() || k.brokers.iter().any(|b| b.trim().is_empty()) {
        errors.push(format!("{at}: kafka.brokers is required"));
    }
    if k.topics.is_empty() || k.topics.iter().any(|t| t.trim().is_empty()) {
        errors.push(format!("{at}: kafka.topics is required"));
    }
    if k.consumer_group.is_empty() {
        errors.push(format!("{at}: kafka.consumer_group is required"));
    }
    if k.tls.enabled {
        errors.push(format!("{at}: kafka.tls is not supported yet"));
    }
    if !matches!(k.sasl_mechanism.to_ascii_lowercase().as_str(), "" | "plain") {
        errors.push(format!(
            "{at}: kafka.sasl_mechanism {:?} is not supported (only \"plain\")",
            k.sasl_mechanism
        ));
    }
    if k.publication_data_mode.enabled && k.chat_event_mode.enabled {
        errors.push(format!(
            "{at}: publication_data_mode and chat_event_mode cannot both be enabled"
        ));
    }
    if k.publication_data_mode.enabled && k.publication_data_mode.channels_header.is_empty() {
        errors.push(format!("{at}: publication_data_mode needs channels_header"));
    }
    if k.fetch_max_wait.is_zero() {
        errors.push(format!("{at}: kafka.fetch_max_wait must be positive"));
    }
}
