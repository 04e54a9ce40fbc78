//! The in-flight byte budget: reading pauses while rendered-but-undelivered data exceeds
//! `pipeline.memory_limit`.
//!
//! A plain `Mutex` + `Condvar`, not a tokio `Semaphore`: the one that waits is the
//! processing thread, which blocks anyway, and the lock is never held across an `.await`.
//! Bytes are taken when a chunk is rendered and given back when every sink has delivered
//! it; while the budget is spent the processor waits, its input channel fills, and the
//! tail engine blocks on it: backpressure all the way to the files, nothing dropped.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;

/// Bytes in flight, up to a limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: Mutex<u64>,
    freed: Condvar,
    /// `shiplog_inflight_bytes`, kept equal to `used`.
    gauge: Gauge,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64, gauge: Gauge) -> Self {
        MemoryBudget {
            limit,
            gauge,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Takes `bytes`, waiting while that would pass the limit. A chunk larger than the
    /// whole limit is let through when nothing else is in flight, so it cannot wait
    /// forever. Returns false when `stop` says to give up waiting (checked every 100 ms).
    pub fn acquire(&self, bytes: u64, stop: &dyn Fn() -> bool) -> bool {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while *used > 0 && used.saturating_add(bytes) > self.limit {
            if stop() {
                return false;
            }
            let waited = self.freed.wait_timeout(used, Duration::from_millis(100));
            used = waited.unwrap_or_else(PoisonError::into_inner).0;
        }
        *used += bytes;
        self.gauge.set(i64::try_from(*used).unwrap_or(i64::MAX));
        true
    }

    /// Gives back `bytes` taken by [`MemoryBudget::acquire`].
    pub fn release(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        *used = used.saturating_sub(bytes);
        self.gauge.set(i64::try_from(*used).unwrap_or(i64::MAX));
        self.freed.notify_all();
    }

    /// Bytes in flight now (the `shiplog_inflight_bytes` gauge).
    pub fn in_flight(&self) -> u64 {
        *self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    #[test]
    fn acquiring_past_the_limit_waits_for_a_release() {
        let budget = Arc::new(MemoryBudget::new(100, Gauge::default()));
        assert!(budget.acquire(80, &|| false));
        let (done_tx, done_rx) = mpsc::channel();
        let waiter = Arc::clone(&budget);
        let thread = std::thread::spawn(move || {
            let acquired = waiter.acquire(50, &|| false);
            done_tx.send(acquired).expect("test is listening");
        });
        assert!(
            done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "must wait"
        );
        budget.release(80);
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)), Ok(true));
        thread.join().expect("no panic");
        assert_eq!(budget.in_flight(), 50);
    }

    #[test]
    fn a_chunk_larger_than_the_limit_passes_when_nothing_is_in_flight() {
        let budget = MemoryBudget::new(10, Gauge::default());
        assert!(budget.acquire(1000, &|| false));
        assert!(!budget.acquire(1, &|| true), "a stop request ends the wait");
    }
}
