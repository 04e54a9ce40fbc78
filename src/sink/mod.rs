//! Destinations for records, and the machinery they share: batching, retry, acknowledgement.
//!
//! Knows rendered records and where they go; nothing of tailing. A sink only encodes, sends
//! and classifies its errors ([`SendError`]); batching ([`batch`]) and retrying forever with
//! backoff ([`retry`]) are written once, in [`task::run`]. A batch is acknowledged only once
//! the sink says it is delivered, and only acknowledged chunks let file offsets advance.

pub mod batch;
pub mod cloudwatch;
pub mod destinations;
mod file;
mod kafka;
pub mod retry;
pub mod stall;
mod stdout;
pub mod task;

use std::sync::Arc;

use crate::config::{SinkConfig, SinkKind};

pub use batch::{AckId, Batch, BatchLimits, Rendered, SinkSet};
pub use cloudwatch::CloudwatchSink;
pub use file::FileSink;
pub use kafka::{KafkaSink, MISSING_TOPIC_RECHECK};
pub use stdout::StdoutSink;

use crate::metrics::Metrics;

/// A destination. A closed set: adding one means adding a variant and a file.
#[derive(Debug)]
pub enum Sink {
    /// One JSON record per line on standard output.
    Stdout(StdoutSink),
    /// One JSON record per line appended to a file.
    File(FileSink),
    /// Discards records and acknowledges them at once (benchmarks).
    Null,
    /// Each record one message to a Kafka topic.
    Kafka(Box<KafkaSink>),
    /// Each record one log event of a CloudWatch Logs stream.
    Cloudwatch(Box<CloudwatchSink>),
}

/// A batch delivered: every record is where it belongs, or refused for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Records the destination refused for good (too large, say): not delivered, never
    /// retried, counted in `shiplog_records_failed_total` and logged by the sink.
    pub rejected: usize,
}

/// Why a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A passing failure (disk full, network, throttling): send the same batch again later.
    #[error("{0} (will retry)")]
    Retry(String),
    /// The sink can never deliver again (its output was closed): stop the pipeline without
    /// acknowledging, so nothing undelivered is committed.
    #[error("{0}")]
    Fatal(String),
}

/// A sink that could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
#[error("sinks.{name}: {reason}")]
pub struct OpenError {
    /// The sink's name.
    pub name: String,
    /// What went wrong.
    pub reason: String,
}

impl Sink {
    /// Sets up the sink `config` describes; it counts what is its own in `metrics`.
    pub fn open(config: &SinkConfig, metrics: &Arc<Metrics>) -> Result<Sink, OpenError> {
        let failed = |reason| OpenError {
            name: config.name.clone(),
            reason,
        };
        match &config.kind {
            SinkKind::Stdout => Ok(Sink::Stdout(StdoutSink::new())),
            SinkKind::File { path } => {
                FileSink::open(path)
                    .map(Sink::File)
                    .map_err(|reason| OpenError {
                        name: config.name.clone(),
                        reason,
                    })
            }
            SinkKind::Null => Ok(Sink::Null),
            SinkKind::Kafka(kafka) => KafkaSink::open(kafka, Arc::clone(metrics), &config.name)
                .map(|sink| Sink::Kafka(Box::new(sink)))
                .map_err(failed),
            SinkKind::Cloudwatch(cloudwatch) => Ok(Sink::Cloudwatch(Box::new(
                CloudwatchSink::open(cloudwatch, Arc::clone(metrics), &config.name),
            ))),
        }
    }

    /// Checks what can be checked of `config` without sending anything: a file sink's file
    /// can be opened for appending (a missing one is created and removed again); a Kafka
    /// sink's librdkafka properties are valid (checked without connecting). `shiplog check`,
    /// the start and every reload run this before a sink is opened.
    pub fn check(config: &SinkConfig) -> Result<(), OpenError> {
        let checked = match &config.kind {
            SinkKind::File { path } => file::check(path),
            SinkKind::Kafka(kafka) => kafka::check(kafka),
            // The config has checked all a CloudWatch sink's keys; its region and
            // credentials come from the environment chain only when it first sends.
            SinkKind::Stdout | SinkKind::Null | SinkKind::Cloudwatch(_) => Ok(()),
        };
        checked.map_err(|reason| OpenError {
            name: config.name.clone(),
            reason,
        })
    }

    /// Delivers `batch`; `Ok` means durably delivered, as far as this destination allows.
    pub async fn send(&mut self, batch: &Batch) -> Result<Sent, SendError> {
        match self {
            // Local writes of one batch are short; block_in_place keeps other tasks running.
            Sink::Stdout(sink) => tokio::task::block_in_place(|| sink.send(batch)),
            Sink::File(sink) => tokio::task::block_in_place(|| sink.send(batch)),
            Sink::Null => Ok(()),
            Sink::Kafka(sink) => return sink.send(batch).await,
            Sink::Cloudwatch(sink) => return sink.send(batch).await,
        }
        .map(|()| Sent::default())
    }
}

/// The chunks a sink has delivered, reported back to whoever tracks acknowledgements.
pub type Delivered = Vec<Arc<Rendered>>;
