//! The memory budget, `pipeline.memory_limit`: rendered-but-undelivered records, plus the
//! lines still being reassembled, which hold at most a share of it.
//!
//! A plain `Mutex` + `Condvar`, not a tokio `Semaphore`: the one that waits is the
//! processing thread, which blocks anyway, and the lock is never held across an `.await`.
//! Bytes are taken when a chunk is rendered and given back when every sink has delivered
//! it; while the budget is spent the processor waits, its input channel fills, and the
//! tail engine blocks on it: backpressure all the way to the files, nothing dropped.
//!
//! Unfinished lines cannot wait for room: only more input ends them. So they are not
//! taken but reported ([`MemoryBudget::set_pending`]), count against the limit for what
//! chunks may take, and are kept under [`MemoryBudget::pending_limit`] by the processor,
//! which ships the oldest as a flagged piece past it (issue 17). The tail engine holds no
//! unfinished line in memory at all: its reader reads such bytes again from the file.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;

/// The share of the limit unfinished lines may hold: one part in this many.
const PENDING_SHARE: u64 = 4;

/// Bytes in flight and held for unfinished lines, up to a limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: Mutex<Used>,
    freed: Condvar,
    /// `shiplog_inflight_bytes`, kept equal to all the bytes counted: in flight and pending.
    gauge: Gauge,
}

#[derive(Debug, Default)]
struct Used {
    /// Rendered chunks not yet delivered by every sink.
    in_flight: u64,
    /// Held for lines still being reassembled.
    pending: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64, gauge: Gauge) -> Self {
        MemoryBudget {
            limit,
            gauge,
            used: Mutex::new(Used::default()),
            freed: Condvar::new(),
        }
    }

    /// What unfinished lines may hold: a quarter of the limit.
    pub fn pending_limit(&self) -> u64 {
        self.limit / PENDING_SHARE
    }

    /// Takes `bytes`, waiting while that would pass the limit. A chunk larger than what
    /// the limit leaves is let through when nothing else is in flight, so it cannot wait
    /// forever. Returns false when `stop` says to give up waiting (checked every 100 ms).
    pub fn acquire(&self, bytes: u64, stop: &dyn Fn() -> bool) -> bool {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while used.in_flight > 0 && used.total().saturating_add(bytes) > self.limit {
            if stop() {
                return false;
            }
            let waited = self.freed.wait_timeout(used, Duration::from_millis(100));
            used = waited.unwrap_or_else(PoisonError::into_inner).0;
        }
        used.in_flight += bytes;
        self.publish(&used);
        true
    }

    /// Gives back `bytes` taken by [`MemoryBudget::acquire`].
    pub fn release(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.in_flight = used.in_flight.saturating_sub(bytes);
        self.publish(&used);
        self.freed.notify_all();
    }

    /// Says how many bytes unfinished lines hold now.
    pub fn set_pending(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.pending = bytes;
        self.publish(&used);
        self.freed.notify_all();
    }

    /// Bytes in flight now, unfinished lines included (the `shiplog_inflight_bytes` gauge).
    pub fn in_flight(&self) -> u64 {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total()
    }

    fn publish(&self, used: &Used) {
        self.gauge
            .set(i64::try_from(used.total()).unwrap_or(i64::MAX));
    }
}

impl Used {
    fn total(&self) -> u64 {
        self.in_flight.saturating_add(self.pending)
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
    fn unfinished_lines_count_against_the_limit_but_never_block_a_chunk_alone() {
        let budget = MemoryBudget::new(100, Gauge::default());
        budget.set_pending(25);
        assert_eq!(budget.pending_limit(), 25);
        assert!(budget.acquire(70, &|| false));
        assert_eq!(budget.in_flight(), 95);
        assert!(
            !budget.acquire(10, &|| true),
            "70 in flight + 25 pending + 10 passes 100: it waits"
        );
        budget.release(70);
        assert!(
            budget.acquire(200, &|| false),
            "with nothing in flight a chunk passes, pending lines or not"
        );
    }

    #[test]
    fn a_chunk_larger_than_the_limit_passes_when_nothing_is_in_flight() {
        let budget = MemoryBudget::new(10, Gauge::default());
        assert!(budget.acquire(1000, &|| false));
        assert!(!budget.acquire(1, &|| true), "a stop request ends the wait");
    }
}
