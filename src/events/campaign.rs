//! The elector's task: stands for election every `retry_period`, announces each term of
//! leadership to the shipper with the resume points it begins from, and writes the
//! shipper's delivered resume points into the Lease at every renewal and at release.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::lease::{Attempt, Elector, ResumePoints};
use super::stopped;
use crate::metrics::Metrics;

/// The elector's loop.
pub(super) struct Campaign {
    pub(super) elector: Elector,
    pub(super) retry_period: Duration,
    pub(super) renew_deadline: Duration,
    /// What the shipper has delivered; written into the Lease at each renewal.
    pub(super) resume: Arc<Mutex<ResumePoints>>,
    /// `Some` while leading: the term, and the resume points the Lease held as it began.
    pub(super) leading: watch::Sender<Option<Lead>>,
    /// Terms begun so far.
    pub(super) terms: u64,
    pub(super) metrics: Arc<Metrics>,
}

impl Campaign {
    /// Tries every `retry_period` until the shipper is done, then releases the Lease.
    pub(super) async fn run(mut self, mut shipped: watch::Receiver<bool>) {
        let mut renewed: Option<Instant> = None;
        let mut tick = tokio::time::interval(self.retry_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stopped(&mut shipped) => break,
            }
            let writing = renewed.map(|_| self.points());
            // A call that hangs must not keep a leader leading past its deadline.
            let attempt = self.elector.try_acquire_or_renew(writing.as_ref());
            let attempt = tokio::time::timeout(self.renew_deadline, attempt)
                .await
                .unwrap_or_else(|_| Err(kube::Error::Service("timed out".into())));
            match attempt {
                Ok(Attempt::Leading { stored, new_term }) => {
                    if renewed.is_none() || new_term {
                        tracing::info!("leading: shipping Kubernetes events");
                        let resume = self.begin_term(stored, new_term);
                        self.terms += 1;
                        let lead = Lead {
                            term: self.terms,
                            resume,
                        };
                        self.leading.send_replace(Some(lead));
                    }
                    renewed = Some(Instant::now());
                }
                Ok(Attempt::Following(holder)) => {
                    if renewed.take().is_some() {
                        tracing::warn!(%holder, "lost the events lease");
                    }
                    self.leading.send_replace(None);
                }
                Err(error) => {
                    tracing::warn!(%error, "the events lease could not be read or renewed");
                    if renewed.is_some_and(|at| at.elapsed() > self.renew_deadline) {
                        tracing::warn!("renew deadline passed: no longer shipping events");
                        renewed = None;
                        self.leading.send_replace(None);
                    }
                }
            }
            self.metrics.events_leader.set(i64::from(renewed.is_some()));
        }
        if renewed.is_some() {
            let points = self.points();
            match self.elector.release(&points).await {
                Ok(()) => tracing::info!("released the events lease"),
                Err(error) => tracing::warn!(%error, "could not release the events lease"),
            }
        }
        self.metrics.events_leader.set(0);
    }

    /// Where a new term resumes. When another held the Lease since this process last
    /// wrote it, the Lease's points; when it was still this process's (it stepped down,
    /// unable to renew, and nobody took over), its own, which may be newer than the last
    /// it managed to write. A process that has none (just started) takes the Lease's.
    fn begin_term(&self, stored: ResumePoints, new_term: bool) -> ResumePoints {
        let mut own = self.resume.lock().unwrap_or_else(PoisonError::into_inner);
        if new_term || own.is_empty() {
            *own = stored;
        }
        own.clone()
    }

    fn points(&self) -> ResumePoints {
        self.resume
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A term of leadership as the elector announces it.
#[derive(Debug, Clone)]
pub(super) struct Lead {
    /// Counts the terms of this process.
    pub(super) term: u64,
    /// Where each scope resumes.
    pub(super) resume: ResumePoints,
}
