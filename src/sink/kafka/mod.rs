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
//! TLS files named in the librdkafka properties are looked at before each batch and, while
//! a batch waits on its delivery reports, every [`producer::TLS_LOOK_INTERVAL`]: when they
//! changed into a usable pair ([`tls`]), a new producer takes over at once, and the
//! records the old one had not acknowledged are sent again through it ([`producer`]). That
//! is what makes a certificate renewed after the brokers refused the old one work at once,
//! instead of after `message.timeout.ms`. Deliveries that time out attempt after attempt
//! on one producer get a new one too.

mod check;
mod producer;
mod properties;
mod tls;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureRecord};

pub use self::check::check;
use self::producer::{AttemptReport, Producer, TLS_LOOK_INTERVAL, dispose};
use self::properties::client_config;
use self::tls::TlsFiles;
use super::destinations::Destinations;
use super::{AckId, Batch, SendError, Sent};
use crate::config::KafkaConfig;
use crate::metrics::{Metrics, SinkLabel};
use crate::route::{RouteValues, Template};

/// How long a topic the cluster said does not exist is left alone before its records are
/// sent to it again (it may have been created meanwhile).
pub const MISSING_TOPIC_RECHECK: Duration = Duration::from_secs(300);

/// Sends batches to Kafka.
pub struct KafkaSink {
    producer: Producer,
    topic: Template,
    key: Option<Template>,
    default_topic: String,
    /// `allowed_destinations`: the topics the template may fill in.
    destinations: Destinations,
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
    /// librdkafka called the producer unusable.
    fatal: Option<String>,
    report: AttemptReport,
    /// Reports to come, oldest first.
    pending: VecDeque<Pending>,
}

/// A record handed to the producer, waiting for its delivery report.
struct Pending {
    /// The record's index in the batch.
    index: usize,
    /// Its chunk's index in the batch (for its topic).
    chunk: usize,
    report: DeliveryFuture,
}

/// How an attempt ended.
enum Ended {
    /// Every record is delivered or refused for good.
    Sent,
    /// Some record must be tried again, later.
    Failed(String),
    /// A new producer took over while records waited: send those again through it, now.
    ProducerReplaced,
}

/// What waiting for the oldest report came to.
enum Waited {
    /// A report arrived and is noted (or the TLS files were looked at).
    Noted,
    /// Nothing is pending.
    Nothing,
    /// A new producer took over; the old one is disposed of.
    ProducerReplaced,
}

/// How one record's attempt ended.
enum Outcome {
    Delivered,
    /// Never deliverable: give up on this record alone.
    Rejected(String),
    /// Its topic does not exist.
    MissingTopic(String),
    /// `message.timeout.ms` passed: try again later (and mind the producer).
    TimedOut(String),
    /// Try again later.
    Retry(String),
    /// The producer is unusable: build a new one, then try again.
    Fatal(String),
}

impl KafkaSink {
    /// A producer for `config`; librdkafka checks every property here, so a misspelt one
    /// fails at start-up.
    pub fn open(config: &KafkaConfig, metrics: Arc<Metrics>, name: &str) -> Result<Self, String> {
        let label = SinkLabel {
            sink: name.to_owned(),
        };
        let producer = Producer::new(
            client_config(config),
            TlsFiles::new(&config.librdkafka),
            Arc::clone(&metrics),
            label.clone(),
        )?;
        Ok(KafkaSink {
            producer,
            topic: config.topic.clone(),
            key: config.key.clone(),
            default_topic: config.default_topic.clone(),
            destinations: Destinations::new(
                config.allowed_destinations.clone(),
                Arc::clone(&metrics),
                name,
            ),
            missing: HashMap::new(),
            progress: None,
            metrics,
            label,
        })
    }

    /// Sends every record of `batch` not yet delivered and waits for their reports. When a
    /// new producer takes over meanwhile, the records not yet acknowledged go again
    /// through it at once.
    pub async fn send(&mut self, batch: &Batch) -> Result<Sent, SendError> {
        if let Some(old) = self.producer.renew_if_tls_changed() {
            dispose(old).await;
        }
        let mut progress = self.progress_of(batch);
        loop {
            let (after, ended) = self.attempt(batch, progress).await;
            progress = after;
            match ended {
                Ended::Sent => {
                    return Ok(Sent {
                        rejected: progress.rejected,
                    });
                }
                Ended::Failed(reason) => {
                    self.progress = Some(progress);
                    return Err(SendError::Retry(reason));
                }
                Ended::ProducerReplaced => {}
            }
        }
    }

    /// One attempt: hands the undelivered records to the producer and waits for their
    /// reports.
    async fn attempt(&mut self, batch: &Batch, progress: Progress) -> (Progress, Ended) {
        let mut attempt = Attempt {
            progress,
            failure: None,
            fatal: None,
            report: AttemptReport::default(),
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
                    let waited = self
                        .produce(record, key.as_deref(), at, &topics, &mut attempt)
                        .await;
                    if let Waited::ProducerReplaced = waited {
                        return (attempt.progress, Ended::ProducerReplaced);
                    }
                }
                index += 1;
            }
        }
        loop {
            match self.wait_for_report(&topics, &mut attempt).await {
                Waited::Noted => {}
                Waited::Nothing => break,
                Waited::ProducerReplaced => return (attempt.progress, Ended::ProducerReplaced),
            }
        }
        if let Some(old) = self
            .producer
            .replace_if_stuck(attempt.report, attempt.fatal.as_deref())
        {
            dispose(old).await;
        }
        let ended = match attempt.failure {
            None => Ended::Sent,
            Some(reason) => Ended::Failed(reason),
        };
        (attempt.progress, ended)
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
    ) -> Waited {
        let topic = &topics[chunk_index];
        let mut message = FutureRecord::to(topic).payload(record);
        if let Some(key) = key {
            message = message.key(key);
        }
        loop {
            match self.producer.current().send_result(message) {
                Ok(report) => {
                    attempt.pending.push_back(Pending {
                        index,
                        chunk: chunk_index,
                        report,
                    });
                    return Waited::Noted;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                    message = m;
                    match self.wait_for_report(topics, attempt).await {
                        Waited::Noted => {}
                        Waited::Nothing => tokio::time::sleep(Duration::from_millis(10)).await,
                        Waited::ProducerReplaced => return Waited::ProducerReplaced,
                    }
                }
                Err((error, _)) => {
                    self.note(classify(&error), index, topic, attempt);
                    return Waited::Noted;
                }
            }
        }
    }

    /// Waits for the oldest pending report and notes it. With TLS files to watch, they are
    /// looked at every [`TLS_LOOK_INTERVAL`] meanwhile: when a new producer takes over,
    /// the reports already in are noted, the old producer is disposed of, and the rest
    /// of the records are left undelivered, to be sent again.
    async fn wait_for_report(&mut self, topics: &[String], attempt: &mut Attempt) -> Waited {
        let Some(oldest) = attempt.pending.front_mut() else {
            return Waited::Nothing;
        };
        let report = if self.producer.watches_tls() {
            tokio::select! {
                report = &mut oldest.report => Some(report),
                () = tokio::time::sleep(TLS_LOOK_INTERVAL) => None,
            }
        } else {
            Some((&mut oldest.report).await)
        };
        if let Some(report) = report {
            if let Some(done) = attempt.pending.pop_front() {
                self.note(settle(report), done.index, &topics[done.chunk], attempt);
            }
            return Waited::Noted;
        }
        let Some(old) = self.producer.renew_if_tls_changed() else {
            return Waited::Noted;
        };
        for waiting in std::mem::take(&mut attempt.pending) {
            if let Some(report) = waiting.report.now_or_never() {
                self.note(
                    settle(report),
                    waiting.index,
                    &topics[waiting.chunk],
                    attempt,
                );
            }
        }
        dispose(old).await;
        Waited::ProducerReplaced
    }

    /// The topic of a chunk's records: the template filled, unless the cluster said that
    /// topic does not exist (lately) or the template cannot be filled; then the default
    /// topic, and the `records` about to be sent there are counted as rerouted.
    fn topic_of(&mut self, route: &RouteValues, records: usize) -> String {
        let topic = self.topic.render(route);
        // `default_topic` is where refused records go: it is never refused itself.
        if let Some(topic) = &topic
            && *topic != self.default_topic
            && !self
                .destinations
                .allows(topic, route, records, &self.default_topic)
        {
            return self.default_topic.clone();
        }
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
            progress,
            failure,
            fatal,
            report,
            ..
        } = attempt;
        match outcome {
            Outcome::Delivered => {
                progress.delivered[index] = true;
                report.delivered = true;
            }
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
            Outcome::TimedOut(reason) => {
                report.timed_out = true;
                failure.get_or_insert(reason);
            }
            Outcome::Retry(reason) => {
                failure.get_or_insert(reason);
            }
            Outcome::Fatal(reason) => {
                fatal.get_or_insert_with(|| reason.clone());
                failure.get_or_insert(reason);
            }
        }
    }
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
/// "no such topic" or "new producer", and timeouts (counted per producer); everything else (broker down, timeouts, leader
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
        Some(RDKafkaErrorCode::MessageTimedOut) => Outcome::TimedOut(reason),
        Some(RDKafkaErrorCode::Fatal) => Outcome::Fatal(reason),
        _ => Outcome::Retry(reason),
    }
}
