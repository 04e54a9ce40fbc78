//! `shiplog check` (and a reload) for a Kafka sink: its properties checked the way building a
//! producer checks them, without connecting anywhere.

use rdkafka::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};

use super::properties::client_config;
use crate::config::KafkaConfig;

/// Checks `config`'s properties the way building a producer does (librdkafka refuses unknown
/// properties, bad values and conflicting settings there), without connecting anywhere:
/// the producer is built without bootstrap servers and dropped at once. `shiplog check`
/// and a reload use this; a run builds the real producer.
pub fn check(config: &KafkaConfig) -> Result<(), String> {
    let mut client = client_config(config);
    client.remove("bootstrap.servers");
    client
        .create_with_context::<_, BaseProducer<Unconnected>>(Unconnected)
        .map(drop)
        .map_err(|error| match error {
            KafkaError::ClientCreation(reason) => reason,
            other => other.to_string(),
        })
}

/// The context of [`check`]'s producer: librdkafka's log lines as usual, except its notice
/// that a producer without bootstrap servers cannot connect, which is the point.
struct Unconnected;

impl ClientContext for Unconnected {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if !log_message.contains("bootstrap.servers") {
            DefaultClientContext.log(level, fac, log_message);
        }
    }
}

impl ProducerContext for Unconnected {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, (): ()) {}
}
