//! The Kafka sink's producer, and when a new one takes over: its TLS files changed into a
//! usable pair, librdkafka called it unusable (a fatal error), or its deliveries timed out
//! attempt after attempt.
//!
//! A producer replaced while records wait on it is disposed of before anything is sent
//! through the new one (its queues purged, its connections closed), so the old one cannot
//! deliver a record after the new one delivered a later one. The sink sends the records
//! the old one had not acknowledged again: those are the ones that can repeat.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

use super::tls::{Broken, TlsFiles, utc};
use crate::metrics::{Metrics, PathLabel, SinkLabel};

/// How often the TLS files are looked at while a batch waits on its delivery reports.
pub const TLS_LOOK_INTERVAL: Duration = Duration::from_millis(500);

/// Attempts in a row whose deliveries timed out on one producer before a new one takes
/// over. A cluster that lost the producer's state can leave it stuck for ever (issue 18:
/// UNKNOWN_PRODUCER_ID on every request), while a new producer starts clean.
pub const TIMED_OUT_ATTEMPTS: u32 = 2;

/// A client certificate expiring within this long is warned about, once a day.
const EXPIRY_WARNING: i64 = 7 * 24 * 3600;
const EXPIRY_WARNING_REPEAT: Duration = Duration::from_secs(24 * 3600);

/// The producer in use and what it was built from.
pub struct Producer {
    current: FutureProducer,
    /// Kept to build the next producer.
    client: ClientConfig,
    tls: TlsFiles,
    /// The TLS files changed and no new producer took over yet.
    renewal: Option<Renewal>,
    /// Attempts in a row that ended with timed-out deliveries on `current`.
    timed_out_attempts: u32,
    /// The client certificate's notAfter (Unix seconds) and when its nearing was last
    /// warned about.
    expiry: Option<(i64, Option<Instant>)>,
    metrics: Arc<Metrics>,
    label: SinkLabel,
}

/// TLS files that changed but made no producer yet.
struct Renewal {
    /// The problem was already logged (once per change of the files).
    warned: bool,
    /// librdkafka refused the files our check passed; only another change can help.
    refused: bool,
}

/// How an attempt at a batch went, as far as replacing the producer goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptReport {
    /// Some record was delivered.
    pub delivered: bool,
    /// Some record's delivery timed out.
    pub timed_out: bool,
}

impl Producer {
    /// A producer for `client`; librdkafka checks every property here.
    pub fn new(
        client: ClientConfig,
        tls: TlsFiles,
        metrics: Arc<Metrics>,
        label: SinkLabel,
    ) -> Result<Producer, String> {
        let mut producer = Producer {
            current: create(&client)?,
            client,
            tls,
            renewal: None,
            timed_out_attempts: 0,
            expiry: None,
            metrics,
            label,
        };
        producer.publish_expiry();
        Ok(producer)
    }

    /// The producer in use.
    pub fn current(&self) -> &FutureProducer {
        &self.current
    }

    /// Whether there are TLS files to look at while waiting.
    pub fn watches_tls(&self) -> bool {
        !self.tls.is_empty()
    }

    /// Looks at the TLS files; when they changed into a usable pair, a new producer takes
    /// over and the old one is returned, for the caller to settle its reports and
    /// [`dispose`] of it. A pair that is not usable keeps the old producer, with one
    /// warning per change of the files. Also warns when the client certificate nears its
    /// end.
    pub fn renew_if_tls_changed(&mut self) -> Option<FutureProducer> {
        self.warn_if_expiring();
        if self.tls.changed() {
            self.renewal = Some(Renewal {
                warned: false,
                refused: false,
            });
        } else if self.renewal.as_ref().is_none_or(|r| r.refused) {
            return None;
        }
        let renewal = self.renewal.as_mut()?;
        if let Err(broken) = self.tls.check(unix_now()) {
            if !renewal.warned {
                let Broken { path, reason } = broken;
                tracing::warn!(
                    sink = %self.label.sink, path = %path.display(), %reason,
                    "TLS files changed but are not usable; the producer in use stays until they change again"
                );
                renewal.warned = true;
            }
            return None;
        }
        match create(&self.client) {
            Ok(new) => {
                tracing::info!(sink = %self.label.sink, "TLS files changed; a new producer takes over");
                self.renewal = None;
                self.publish_expiry();
                Some(self.take_over(new))
            }
            Err(reason) => {
                if !renewal.warned {
                    tracing::warn!(
                        sink = %self.label.sink, %reason,
                        "TLS files changed but librdkafka refuses them; the producer in use stays until they change again"
                    );
                }
                renewal.warned = true;
                renewal.refused = true;
                None
            }
        }
    }

    /// Replaces the producer after an attempt when librdkafka called it unusable
    /// (`fatal`), or when this was the [`TIMED_OUT_ATTEMPTS`]th attempt in a row whose
    /// deliveries timed out on it; returns the old one to [`dispose`] of.
    pub fn replace_if_stuck(
        &mut self,
        report: AttemptReport,
        fatal: Option<&str>,
    ) -> Option<FutureProducer> {
        if report.delivered {
            self.timed_out_attempts = 0;
        }
        if report.timed_out && !report.delivered {
            self.timed_out_attempts += 1;
        }
        let reason = match fatal {
            Some(reason) => format!("librdkafka says the producer is unusable: {reason}"),
            None if self.timed_out_attempts >= TIMED_OUT_ATTEMPTS => format!(
                "deliveries timed out in {} attempts in a row on this producer",
                self.timed_out_attempts
            ),
            None => return None,
        };
        match create(&self.client) {
            Ok(new) => {
                tracing::warn!(sink = %self.label.sink, %reason, "a new producer takes over");
                Some(self.take_over(new))
            }
            Err(error) => {
                tracing::error!(sink = %self.label.sink, %reason, %error, "no new producer; the old one stays");
                None
            }
        }
    }

    fn take_over(&mut self, new: FutureProducer) -> FutureProducer {
        self.timed_out_attempts = 0;
        std::mem::replace(&mut self.current, new)
    }

    /// Sets the expiry gauges of the client certificate and the CA file.
    fn publish_expiry(&mut self) {
        let certificate = self.tls.certificate().map(ToOwned::to_owned);
        self.expiry = None;
        for (path, expiry) in self.tls.expiries() {
            match expiry {
                Ok(seconds) => {
                    let label = PathLabel {
                        path: path.display().to_string(),
                    };
                    self.metrics
                        .tls_cert_expiry
                        .get_or_create(&label)
                        .set(seconds);
                    if certificate.as_deref() == Some(path) {
                        self.expiry = Some((seconds, None));
                    }
                }
                Err(broken) => {
                    tracing::warn!(sink = %self.label.sink, path = %broken.path.display(), reason = %broken.reason, "no certificate expiry")
                }
            }
        }
    }

    /// Warns, once a day, while the client certificate expires within 7 days.
    fn warn_if_expiring(&mut self) {
        let Some((not_after, warned)) = &mut self.expiry else {
            return;
        };
        if !expiry_warning_due(*not_after, unix_now(), *warned) {
            return;
        }
        *warned = Some(Instant::now());
        let path = self.tls.certificate().map(|p| p.display().to_string());
        tracing::warn!(
            sink = %self.label.sink, path = path.as_deref().unwrap_or(""), not_after = %utc(*not_after),
            "the client certificate expires within 7 days (or has expired); is its renewal (cert-manager) working?"
        );
    }
}

/// Whether a certificate ending at `not_after` is to be warned about at `now` (Unix
/// seconds), when the last warning was at `last`.
fn expiry_warning_due(not_after: i64, now: i64, last: Option<Instant>) -> bool {
    not_after - now < EXPIRY_WARNING && last.is_none_or(|at| at.elapsed() >= EXPIRY_WARNING_REPEAT)
}

/// Drops a producer that has been replaced, off the async threads: librdkafka purges its
/// queues and closes its connections, which can take a moment. Its undelivered records'
/// reports resolve as failed.
pub async fn dispose(old: FutureProducer) {
    if let Err(error) = tokio::task::spawn_blocking(move || drop(old)).await {
        tracing::debug!(%error, "dropping the old producer failed");
    }
}

fn create(client: &ClientConfig) -> Result<FutureProducer, String> {
    client.create().map_err(|error| match error {
        KafkaError::ClientCreation(reason) => reason,
        other => other.to_string(),
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_near_its_end_is_warned_about_once_a_day() {
        let day = 24 * 3600;
        let now = 1_800_000_000;
        assert!(!expiry_warning_due(now + 8 * day, now, None), "8 days left");
        assert!(expiry_warning_due(now + 6 * day, now, None), "6 days left");
        assert!(expiry_warning_due(now - day, now, None), "expired");
        let just_now = Some(Instant::now());
        assert!(
            !expiry_warning_due(now + day, now, just_now),
            "warned today"
        );
        if let Some(yesterday) = Instant::now().checked_sub(EXPIRY_WARNING_REPEAT) {
            assert!(expiry_warning_due(now + day, now, Some(yesterday)));
        }
    }
}
