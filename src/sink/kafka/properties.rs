//! The Kafka sink's librdkafka properties: ours from the sink's keys, bounds on
//! librdkafka's own queue, then the passthrough.

use rdkafka::ClientConfig;

use crate::config::{Acks, KafkaConfig};

/// librdkafka's local queue, in KiB, unless the passthrough sets
/// `queue.buffering.max.kbytes`: its default (1 GiB) is far beyond `memory_limit`. The sink
/// hands librdkafka one batch at a time (`batch_max_bytes`, 1 MiB by default) and waits for
/// its reports, so this is room for 16 such batches; a full queue makes the sink wait for
/// the oldest report, never drop. Never less than two of the largest message
/// (`message.max.bytes`), which must fit an empty queue.
const QUEUE_MAX_KBYTES: u64 = 16 * 1024;
/// The same in messages (librdkafka's default is 100,000): 20 batches of the default
/// `batch_max_events`.
const QUEUE_MAX_MESSAGES: &str = "20000";

/// The producer's properties: ours from the sink's keys, then the passthrough (which the
/// config has already checked sets none of ours).
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    let largest = config
        .librdkafka
        .get("message.max.bytes")
        .and_then(|bytes| bytes.parse::<u64>().ok())
        .unwrap_or(1_000_000);
    let queue_kbytes = QUEUE_MAX_KBYTES.max(largest.div_ceil(1024) * 2);
    let acks = match config.acks {
        Acks::All => "all",
        Acks::Leader => "1",
        Acks::None => "0",
    };
    client
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", "shiplog")
        .set("compression.codec", &config.compression)
        .set("acks", acks)
        .set("enable.idempotence", (config.acks == Acks::All).to_string())
        .set("allow.auto.create.topics", config.create_topics.to_string())
        .set("queue.buffering.max.kbytes", queue_kbytes.to_string())
        .set("queue.buffering.max.messages", QUEUE_MAX_MESSAGES);
    for (property, value) in &config.librdkafka {
        client.set(property, value);
    }
    client
}
