//! The `kafka` sink: each record one message, counted delivered only on its delivery report.
//!
//! One librdkafka producer per sink (idempotent with `acks = all`, so its own retries
//! neither duplicate nor reorder). A batch is enqueued record by record; a full local queue
//! waits for the oldest delivery report (backpressure, not loss). The batch is delivered
//! only once every record's report says so; a failed attempt is retried by the sink task,
//! and the retry sends only the records not yet delivered, so a partial failure repeats
//! nothing.
//!
//! Topics that do not exist: librdkafka reports them after
//! `topic.metadata.propagation.max.ms` (30 s by default), or at once when it already knows.
//! Their records then go to `default_topic`, counted in
//! `shiplog_kafka_rerouted_records_total`, and the topic is tried again every
//! [`MISSING_TOPIC_RECHECK`], so one namespace without a topic never holds back the others
//! for longer than that first wait. With `create_topics = true` the brokers are asked to
//! create it (librdkafka's `allow.auto.create.topics`; the brokers must allow it).
//!
//! A record the brokers can never take (larger than `message.max.bytes`) is counted in
//! `shiplog_records_failed_total`, logged with its topic and size, and not retried: it
//! would otherwise hold back every record behind it for ever.
//!
//! TLS files named in the librdkafka properties are looked at before each batch
//! ([`tls`]); when one changed, a new producer takes over for the next batch. The old one
//! has nothing left to deliver (each batch waits for all its reports), so the swap loses
//! and repeats nothing.

mod tls;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use self::tls::TlsFiles;
use super::{AckId, Batch, SendError, Sent};
use crate::config::{Acks, KafkaConfig};
use crate::metrics::{Metrics, PathLabel, SinkLabel};
use crate::route::{RouteValues, Template};

/// How long a topic the cluster said does not exist is left alone before its records are
/// sent to it again (it may have been created meanwhile).
pub const MISSING_TOPIC_RECHECK: Duration = Duration::from_secs(300);

/// Sends batches to Kafka.
pub struct KafkaSink {
    producer: FutureProducer,
    /// Kept to build a new producer when librdkafka reports the old one unusable, or
    /// when its TLS files change.
    client: ClientConfig,
    tls: TlsFiles,
    /// The TLS files changed and no new producer could be built yet.
    renew_pending: bool,
    topic: Template,
    key: Option<Template>,
    default_topic: String,
    /// Topics the cluster said do not exist, and when it said so.
    missing: HashMap<String, Instant>,
    /// The batch being sent and which of its records are delivered, across retries.
    progress: Option<Progress>,
    metrics: Arc<Metrics>,
    label: SinkLabel,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic.to_string())
            .field("default_topic", &self.default_topic)
            .finish_non_exhaustive()
    }
}

/// Which records of one batch are delivered. A batch is known by its first chunk and its
/// size: the sink task sends the same batch again until it goes through.
#[derive(Debug)]
struct Progress {
    batch: (AckId, usize),
    delivered: Vec<bool>,
    /// Records the brokers refused for good: acknowledged, counted as failed.
    rejected: usize,
}

/// One attempt at sending a batch.
struct Attempt {
    progress: Progress,
    /// Why the attempt must be retried, once a record's report says so (the first reason).
    failure: Option<String>,
    /// Each record's index in the batch, its chunk's index (for its topic) and its report
    /// to come.
    pending: VecDeque<(usize, usize, DeliveryFuture)>,
}

/// How one record's attempt ended.
enum Outcome {
    Delivered,
    /// Never deliverable: give up on this record alone.
    Rejected(String),
    /// Its topic does not exist.
    MissingTopic(String),
    /// Try again later.
    Retry(String),
    /// The producer is unusable: build a new one, then try again.
    Fatal(String),
}

impl KafkaSink {
    /// A producer for `config`; librdkafka checks every property here, so a misspelt one
    /// fails at start-up.
    pub fn open(config: &KafkaConfig, metrics: Arc<Metrics>, name: &str) -> Result<Self, String> {
        let client = client_config(config);
        let producer = create(&client)?;
        let sink = KafkaSink {
            producer,
            client,
            tls: TlsFiles::new(&config.librdkafka),
            renew_pending: false,
            topic: config.topic.clone(),
            key: config.key.clone(),
            default_topic: config.default_topic.clone(),
            missing: HashMap::new(),
            progress: None,
            metrics,
            label: SinkLabel {
                sink: name.to_owned(),
            },
        };
        sink.publish_certificate_expiry();
        Ok(sink)
    }

    /// Builds a new producer when a TLS file changed since the last batch. A new producer
    /// that cannot be built (a certificate caught half-written) leaves the old one in use
    /// and is tried again at the next batch.
    fn renew_if_tls_changed(&mut self) {
        self.renew_pending |= self.tls.changed();
        if !self.renew_pending {
            return;
        }
        match create(&self.client) {
            Ok(producer) => {
                tracing::info!(sink = %self.label.sink, "TLS files changed; a new producer takes over");
                self.producer = producer;
                self.renew_pending = false;
                self.publish_certificate_expiry();
            }
            Err(reason) => {
                tracing::warn!(sink = %self.label.sink, %reason, "TLS files changed but no new producer yet; the old one stays");
            }
        }
    }

    /// Sets the expiry gauge of the client certificate, when one is configured.
    fn publish_certificate_expiry(&self) {
        let Some((path, expiry)) = self.tls.certificate_expiry() else {
            return;
        };
        match expiry {
            Ok(seconds) => {
                let label = PathLabel {
                    path: path.display().to_string(),
                };
                self.metrics
                    .tls_cert_expiry
                    .get_or_create(&label)
                    .set(seconds);
            }
            Err(reason) => {
                tracing::warn!(sink = %self.label.sink, %reason, "no certificate expiry")
            }
        }
    }

    /// Sends every record of `batch` not yet delivered and waits for their reports.
    pub async fn send(&mut self, batch: &Batch) -> Result<Sent, SendError> {
        self.renew_if_tls_changed();
        let mut attempt = Attempt {
            progress: self.progress_of(batch),
            failure: None,
            pending: VecDeque::new(),
        };
        // A topic is one allocation per chunk, not per record; each chunk's is worked out
        // when its turn comes, so a topic found missing reroutes the chunks after it.
        let mut topics: Vec<String> = Vec::with_capacity(batch.chunks().len());
        let mut index = 0;
        for (chunk_index, chunk) in batch.chunks().iter().enumerate() {
            // Records delivered by an earlier attempt are neither sent nor counted again.
            let delivered = &attempt.progress.delivered[index..index + chunk.ends.len()];
            let undelivered = delivered.iter().filter(|done| !**done).count();
            topics.push(self.topic_of(&chunk.route, undelivered));
            let key = self.key.as_ref().and_then(|key| key.render(&chunk.route));
            for record in chunk.records() {
                if !attempt.progress.delivered[index] {
                    let at = (index, chunk_index);
                    self.produce(record, key.as_deref(), at, &topics, &mut attempt)
                        .await;
                }
                index += 1;
            }
        }
        while let Some((i, c, future)) = attempt.pending.pop_front() {
            let outcome = settle(future.await);
            self.note(outcome, i, &topics[c], &mut attempt);
        }
        match attempt.failure {
            None => Ok(Sent {
                rejected: attempt.progress.rejected,
            }),
            Some(reason) => {
                self.progress = Some(attempt.progress);
                Err(SendError::Retry(reason))
            }
        }
    }

    /// What an earlier attempt at `batch` delivered, or a fresh start for a new batch.
    fn progress_of(&mut self, batch: &Batch) -> Progress {
        let identity = (batch.chunks()[0].ack, batch.events());
        match self.progress.take() {
            Some(progress) if progress.batch == identity => progress,
            _ => Progress {
                batch: identity,
                delivered: vec![false; batch.events()],
                rejected: 0,
            },
        }
    }

    /// Hands one record, the batch's record `index` of chunk `chunk_index`, to the producer.
    /// While the producer's local queue is full, the oldest report is waited for first.
    async fn produce(
        &mut self,
        record: &[u8],
        key: Option<&str>,
        (index, chunk_index): (usize, usize),
        topics: &[String],
        attempt: &mut Attempt,
    ) {
        let topic = &topics[chunk_index];
        let mut message = FutureRecord::to(topic).payload(record);
        if let Some(key) = key {
            message = message.key(key);
        }
        loop {
            match self.producer.send_result(message) {
                Ok(future) => {
                    attempt.pending.push_back((index, chunk_index, future));
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                    message = m;
                    match attempt.pending.pop_front() {
                        Some((i, c, future)) => {
                            let outcome = settle(future.await);
                            self.note(outcome, i, &topics[c], attempt);
                        }
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((error, _)) => {
                    self.note(classify(&error), index, topic, attempt);
                    return;
                }
            }
        }
    }

    /// The topic of a chunk's records: the template filled, unless the cluster said that
    /// topic does not exist (lately) or the template cannot be filled; then the default
    /// topic, and the `records` about to be sent there are counted as rerouted.
    fn topic_of(&mut self, route: &RouteValues, records: usize) -> String {
        let topic = self.topic.render(route);
        if let Some(topic) = &topic
            && let Some(since) = self.missing.get(topic)
            && since.elapsed() >= MISSING_TOPIC_RECHECK
        {
            self.missing.remove(topic);
        }
        match topic {
            Some(topic) if !self.missing.contains_key(&topic) => topic,
            _ => {
                self.metrics
                    .kafka_rerouted_records
                    .get_or_create(&self.label)
                    .inc_by(records as u64);
                self.default_topic.clone()
            }
        }
    }

    /// Records how one record's attempt ended.
    fn note(&mut self, outcome: Outcome, index: usize, topic: &str, attempt: &mut Attempt) {
        let Attempt {
            progress, failure, ..
        } = attempt;
        match outcome {
            Outcome::Delivered => progress.delivered[index] = true,
            Outcome::Rejected(reason) => {
                tracing::error!(sink = %self.label.sink, topic, %reason, "record refused for good; not retried");
                progress.delivered[index] = true;
                progress.rejected += 1;
            }
            Outcome::MissingTopic(reason) if topic == self.default_topic => {
                failure.get_or_insert(format!(
                    "default_topic {topic:?} does not exist either: {reason}"
                ));
            }
            Outcome::MissingTopic(reason) => {
                if self
                    .missing
                    .insert(topic.to_owned(), Instant::now())
                    .is_none()
                {
                    tracing::warn!(
                        sink = %self.label.sink, topic, default_topic = %self.default_topic, %reason,
                        "topic does not exist; its records go to default_topic (create it, or set create_topics = true)"
                    );
                }
                failure.get_or_insert(format!("topic {topic:?} does not exist"));
            }
            Outcome::Retry(reason) => {
                failure.get_or_insert(reason);
            }
            Outcome::Fatal(reason) => {
                tracing::error!(sink = %self.label.sink, %reason, "producer failed; starting a new one");
                match create(&self.client) {
                    Ok(producer) => self.producer = producer,
                    Err(error) => {
                        tracing::error!(sink = %self.label.sink, %error, "no new producer")
                    }
                }
                failure.get_or_insert(reason);
            }
        }
    }
}

/// The producer's properties: ours from the sink's keys, then the passthrough (which the
/// config has already checked sets none of ours).
fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
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
        .set("allow.auto.create.topics", config.create_topics.to_string());
    for (property, value) in &config.librdkafka {
        client.set(property, value);
    }
    client
}

fn create(client: &ClientConfig) -> Result<FutureProducer, String> {
    client.create().map_err(|error| match error {
        KafkaError::ClientCreation(reason) => reason,
        other => other.to_string(),
    })
}

/// What a delivery report says.
fn settle<Canceled>(report: Result<OwnedDeliveryResult, Canceled>) -> Outcome {
    match report {
        Ok(Ok(_)) => Outcome::Delivered,
        Ok(Err((error, _))) => classify(&error),
        Err(_) => Outcome::Retry("the producer dropped the message".to_owned()),
    }
}

/// librdkafka's error codes sorted by what to do about them: the few that mean "never" or
/// "no such topic" or "new producer"; everything else (broker down, timeouts, leader
/// changes, throttling) is worth another try.
fn classify(error: &KafkaError) -> Outcome {
    let reason = error.to_string();
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            Outcome::Rejected(reason)
        }
        Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition) => {
            Outcome::MissingTopic(reason)
        }
        Some(RDKafkaErrorCode::Fatal) => Outcome::Fatal(reason),
        _ => Outcome::Retry(reason),
    }
}
