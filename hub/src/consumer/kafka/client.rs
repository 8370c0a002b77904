//! This consumer's librdkafka settings: Chorus' common client (`chorus_runtime::kafka`) plus
//! SASL, no Nagle, and fetches tuned to hand each record over at once.

use rdkafka::config::ClientConfig;

use crate::config::consumers::Consumer;

pub(super) fn client_config(cfg: &Consumer) -> ClientConfig {
    let k = &cfg.kafka;
    let mut c =
        chorus_runtime::kafka::client(&k.brokers.join(","), &format!("chorus-hub-{}", cfg.name));
    c.set("socket.nagle.disable", "true");
    if k.sasl_mechanism.eq_ignore_ascii_case("plain") {
        c.set("security.protocol", "sasl_plaintext")
            .set("sasl.mechanisms", "PLAIN")
            .set("sasl.username", &k.sasl_user)
            .set("sasl.password", &k.sasl_password);
    }
    c
}

pub(super) fn consumer_config(cfg: &Consumer) -> ClientConfig {
    let k = &cfg.kafka;
    let mut c = client_config(cfg);
    c.set("group.id", &k.consumer_group)
        .set("enable.auto.commit", "true")
        // Offsets are stored by hand, after the record was handed to the hub's broker.
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "100")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // The defaults wait up to 500 ms for a fetch to fill; a chat wants each record now.
        .set(
            "fetch.wait.max.ms",
            k.fetch_max_wait.0.as_millis().max(1).to_string(),
        )
        .set("fetch.min.bytes", "1")
        .set("fetch.error.backoff.ms", "50");
    if k.fetch_max_bytes > 0 {
        c.set("fetch.max.bytes", k.fetch_max_bytes.to_string());
    }
    chorus_runtime::kafka::passthrough(&mut c, &k.librdkafka);
    c
}
