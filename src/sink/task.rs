//! The loop every sink runs: gather chunks into batches, send, retry forever, report.
//!
//! One task per sink. It owns its [`Sink`]; chunks arrive on a bounded channel (a slow sink
//! fills it and so slows reading: backpressure, not loss), and delivered chunks go back on
//! `delivered` so their offsets may advance. A batch that fails with
//! [`SendError::Retry`] is sent again, after a backoff, until it goes through.
//!
//! A batch whose oldest record has waited longer than a minute is logged as a WARN with
//! the count and age, once a minute until it is delivered ([`super::stall`]), whether the
//! sink is failing or its send just never returns; the sink's
//! `shiplog_sink_last_delivery_timestamp_seconds` stops moving meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::batch::BatchLimits;
use super::retry::Backoff;
use super::stall::Stall;
use super::{Batch, Delivered, Rendered, SendError, Sink};
use crate::metrics::{Metrics, SinkLabel};

/// The first retry waits about this long; each further one twice as long.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Retries never wait longer than this, so a sink that recovers is used again within
/// seconds, while a long outage costs one attempt per this period.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// How often a batch being delivered is looked at for a stall.
const STALL_CHECK: Duration = Duration::from_secs(5);

/// A sink with its batching and the channels around it.
#[derive(Debug)]
pub struct SinkTask {
    /// The sink's name, for logs and errors.
    pub name: String,
    /// The destination.
    pub sink: Sink,
    /// When a batch is sent.
    pub limits: BatchLimits,
    /// Chunks to deliver, in file order.
    pub input: mpsc::Receiver<Arc<Rendered>>,
    /// Where delivered chunks are reported.
    pub delivered: mpsc::Sender<Delivered>,
    /// Where `records_sent`, `records_failed` and `sink_retries` are counted.
    pub metrics: Arc<Metrics>,
}

/// What a sink did, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// Records delivered.
    pub records: u64,
    /// Records the destination refused for good (acknowledged, not delivered).
    pub rejected: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

/// A sink that stopped for good.
#[derive(Debug, thiserror::Error)]
#[error("sink {name}: {reason}")]
pub struct SinkFailed {
    /// The sink's name.
    pub name: String,
    /// Why it stopped.
    pub reason: String,
}

impl SinkTask {
    /// Runs until `input` is closed and everything received has been delivered.
    pub async fn run(mut self) -> Result<SinkStats, SinkFailed> {
        self.metrics.register_sink(&self.name);
        let mut batch = Batch::default();
        let mut stats = SinkStats {
            name: self.name.clone(),
            ..SinkStats::default()
        };
        let seed = Instant::now().elapsed().subsec_nanos().into();
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX, seed);
        loop {
            let deadline = batch.deadline(&self.limits);
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                chunk = self.input.recv() => match chunk {
                    Some(chunk) => batch.push(chunk, Instant::now()),
                    None => break,
                },
                () = sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() => {
                    self.deliver(&mut batch, &mut backoff, &mut stats).await?;
                }
            }
            if batch.is_full(&self.limits) {
                self.deliver(&mut batch, &mut backoff, &mut stats).await?;
            }
        }
        self.deliver(&mut batch, &mut backoff, &mut stats).await?;
        Ok(stats)
    }

    /// Sends `batch` until it is delivered, then reports its chunks.
    async fn deliver(
        &mut self,
        batch: &mut Batch,
        backoff: &mut Backoff,
        stats: &mut SinkStats,
    ) -> Result<(), SinkFailed> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut stall = Stall::default();
        let sent = loop {
            let attempt = self.sink.send(batch);
            match watching_stall(attempt, &mut stall, &self.name, batch).await {
                Ok(sent) => break sent,
                Err(SendError::Retry(reason)) => {
                    stats.retries += 1;
                    self.metrics.sink_retries.get_or_create(&self.label()).inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(sink = %self.name, %reason, ?delay, "send failed, retrying");
                    let pause = tokio::time::sleep(delay);
                    watching_stall(pause, &mut stall, &self.name, batch).await;
                }
                Err(SendError::Fatal(reason)) => {
                    self.metrics
                        .records_failed
                        .get_or_create(&self.label())
                        .inc_by(batch.events() as u64);
                    return Err(self.failed(reason));
                }
            }
        };
        backoff.reset();
        if stall.delivered() {
            let waited = batch
                .oldest()
                .map(|since| since.elapsed())
                .unwrap_or_default();
            tracing::info!(sink = %self.name, waited = %seconds(waited), "the sink delivers again");
        }
        let delivered = (batch.events() - sent.rejected) as u64;
        stats.records += delivered;
        stats.rejected += sent.rejected as u64;
        let label = self.label();
        self.metrics
            .records_sent
            .get_or_create(&label)
            .inc_by(delivered);
        self.metrics
            .records_failed
            .get_or_create(&label)
            .inc_by(sent.rejected as u64);
        self.metrics.sink_delivered(&label);
        let chunks = batch.take();
        self.delivered
            .send(chunks)
            .await
            .map_err(|_| self.failed("acknowledgements are no longer read".to_owned()))
    }

    fn label(&self) -> SinkLabel {
        SinkLabel {
            sink: self.name.clone(),
        }
    }

    fn failed(&self, reason: String) -> SinkFailed {
        SinkFailed {
            name: self.name.clone(),
            reason,
        }
    }
}

/// Runs `work` (an attempt, or the pause before the next), warning meanwhile, as
/// [`Stall`] decides, that `batch` has waited too long.
async fn watching_stall<T>(
    work: impl Future<Output = T>,
    stall: &mut Stall,
    sink: &str,
    batch: &Batch,
) -> T {
    let mut checks = tokio::time::interval(STALL_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = checks.tick() => {
                if let Some(stalled) = stall.check(batch.events(), batch.oldest(), Instant::now()) {
                    tracing::warn!(
                        sink,
                        waiting = stalled.waiting,
                        oldest = %seconds(stalled.oldest),
                        "records wait undelivered: the sink has delivered nothing of them"
                    );
                }
            }
        }
    }
}

/// A duration as whole seconds, `"75s"`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}
