//! Kafka as every service talks to it: the client config they all start from, the
//! producer settings that make a send safe to retry, static membership, the group-liveness
//! watch ([`group`]) and the one dead-letter writer ([`dlq`]).

pub mod dlq;
pub mod group;

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;

/// What every client of a service starts from: the bootstrap brokers, a client id that names
/// the service in the broker's logs, and reconnects from 100 ms up to 5 s, so a restarted
/// broker is found again within seconds rather than librdkafka's default 10 s.
pub fn client(brokers: &str, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000");
    c
}

/// A producer on top of `base`: acks=all and idempotence, so a send is answered only once
/// every in-sync replica has it, and librdkafka's own retries never duplicate or reorder a
/// partition.
pub fn reliable_producer(base: &ClientConfig) -> ClientConfig {
    let mut c = base.clone();
    c.set("acks", "all").set("enable.idempotence", "true");
    c
}

/// Static group membership when `instance_id` is set (unique per process and group; a second
/// one with the same id fences the first); dynamic when it is empty.
pub fn static_member(c: &mut ClientConfig, instance_id: &str) {
    if !instance_id.is_empty() {
        c.set("group.instance.id", instance_id);
    }
}

/// The operator's own librdkafka properties, set last so they win over Chorus' defaults.
pub fn passthrough(c: &mut ClientConfig, properties: &BTreeMap<String, String>) {
    for (key, value) in properties {
        c.set(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_wins_and_static_membership_needs_an_id() {
        let mut c = reliable_producer(&client("127.0.0.1:9092", "chorus-test"));
        static_member(&mut c, "");
        assert_eq!(c.get("group.instance.id"), None);
        static_member(&mut c, "sink-0");
        passthrough(
            &mut c,
            &BTreeMap::from([("reconnect.backoff.max.ms".to_owned(), "900".to_owned())]),
        );
        assert_eq!(c.get("group.instance.id"), Some("sink-0"));
        assert_eq!(c.get("reconnect.backoff.max.ms"), Some("900"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("client.id"), Some("chorus-test"));
    }
}
