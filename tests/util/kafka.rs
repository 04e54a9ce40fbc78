//! Kafka for tests: librdkafka's mock cluster (the real protocol over 127.0.0.1 sockets,
//! in the test process) and a real consumer reading back what arrived.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

pub const PARTITIONS: i32 = 3;

/// A mock cluster of three brokers with `topics` created.
pub fn cluster(topics: &[&str]) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(3).expect("mock cluster");
    for topic in topics {
        cluster
            .create_topic(topic, PARTITIONS, 1)
            .expect("create topic");
    }
    cluster
}

/// One message as read back: its partition, key and record.
#[derive(Debug, Clone)]
pub struct Received {
    /// The partition it was read from.
    pub partition: i32,
    /// Its key, as text.
    pub key: Option<String>,
    /// Its value, parsed.
    pub record: Value,
}

impl Received {
    /// The `(file, seq)` a numbered line carries in its `log`.
    pub fn numbered(&self) -> (usize, usize) {
        let log = self.record["log"].as_str().expect("log");
        let (file, seq) = log.split_once(':').expect("numbered line");
        (file.parse().expect("file"), seq.parse().expect("sequence"))
    }
}

/// Reads every partition of `topics` from the beginning until `expected` messages arrived
/// in all (or a minute passed); returns them by topic, in partition order.
pub fn consume(brokers: &str, topics: &[&str], expected: usize) -> BTreeMap<String, Vec<Received>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "shiplog-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        // Topics the brokers created on demand have their default partition count.
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut received: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count < expected && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("a message, not an error");
        let record = serde_json::from_slice(message.payload().expect("payload")).expect("JSON");
        received
            .entry(message.topic().to_owned())
            .or_default()
            .push(Received {
                partition: message.partition(),
                key: message
                    .key()
                    .map(|key| String::from_utf8_lossy(key).into_owned()),
                record,
            });
        count += 1;
    }
    received
}

/// Reads every partition of `topic` from the beginning until `done` holds for what arrived,
/// or `timeout` passes; returns what arrived, in partition order.
pub fn consume_until(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Received]) -> bool,
) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "shiplog-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut received = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut checked = Instant::now();
    while Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            if done(&received) {
                break;
            }
            continue;
        };
        let message = message.expect("a message, not an error");
        let record = serde_json::from_slice(message.payload().expect("payload")).expect("JSON");
        received.push(Received {
            partition: message.partition(),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            record,
        });
        if checked.elapsed() > Duration::from_secs(1) {
            checked = Instant::now();
            if done(&received) {
                break;
            }
        }
    }
    received
}
