//! Whether the pipeline is wedged, for `/healthz`.
//!
//! The stages that can stall a node's logs report here. The reading and processing threads
//! say when they go to wait (for a file to change, for input, for room downstream, for the
//! memory budget) and when they are back at work; the checkpoint task ticks every
//! `commit_interval`. A stage is wedged when one piece of work has run longer than the
//! bound, or when the ticks stop (the task, or the async runtime under it, is stuck).
//!
//! Waiting is never wedged. A sink that is down or retrying makes the stages before it wait
//! on full channels: that is backpressure, and restarting the agent for it would only
//! re-read what it holds. A sink itself is alive while its retry loop turns, which the
//! runtime's ticks vouch for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A stage that reports its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The tail engine's thread: discovery and reading.
    Tail,
    /// The processor thread: decoding, enrichment, rendering.
    Process,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Tail => "tail",
            Stage::Process => "process",
        }
    }
}

/// The stages' clocks. All times are milliseconds since `origin`; a busy clock holds the
/// start of its current work plus one, so that zero means waiting.
#[derive(Debug)]
pub struct Liveness {
    origin: Instant,
    tail: AtomicU64,
    process: AtomicU64,
    /// The checkpoint task's last tick. Zero is `origin`: a run starts alive.
    tick: AtomicU64,
}

impl Liveness {
    /// Every stage waiting, the tick at now.
    pub fn new() -> Liveness {
        Liveness {
            origin: Instant::now(),
            tail: AtomicU64::new(0),
            process: AtomicU64::new(0),
            tick: AtomicU64::new(0),
        }
    }

    /// `stage` starts a piece of work now.
    pub fn begin(&self, stage: Stage) {
        self.clock(stage)
            .store(self.millis(Instant::now()) + 1, Ordering::Relaxed);
    }

    /// `stage` has stopped for good (its input closed): it can no longer wedge.
    pub fn end(&self, stage: Stage) {
        self.clock(stage).store(0, Ordering::Relaxed);
    }

    /// `stage` waits until the returned guard drops, then begins its next piece of work.
    pub fn wait(&self, stage: Stage) -> Waiting<'_> {
        self.end(stage);
        Waiting {
            liveness: self,
            stage,
        }
    }

    /// The checkpoint task ticked.
    pub fn tick(&self) {
        self.tick
            .store(self.millis(Instant::now()), Ordering::Relaxed);
    }

    /// What is wedged at `now`, each named with how long it has been stuck; empty when
    /// everything is alive. `within`: how long one piece of work, or the gap between two
    /// ticks, may take.
    pub fn wedged(&self, now: Instant, within: Duration) -> Vec<String> {
        let now = self.millis(now);
        let bound = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        let mut wedged = Vec::new();
        for stage in [Stage::Tail, Stage::Process] {
            let busy_since = self.clock(stage).load(Ordering::Relaxed);
            if busy_since == 0 {
                continue;
            }
            let busy = now.saturating_sub(busy_since - 1);
            if busy > bound {
                wedged.push(format!("{} busy for {}", stage.name(), seconds(busy)));
            }
        }
        let quiet = now.saturating_sub(self.tick.load(Ordering::Relaxed));
        if quiet > bound {
            wedged.push(format!("checkpoint silent for {}", seconds(quiet)));
        }
        wedged
    }

    fn clock(&self, stage: Stage) -> &AtomicU64 {
        match stage {
            Stage::Tail => &self.tail,
            Stage::Process => &self.process,
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness::new()
    }
}

/// A stage waiting; dropping it begins the stage's next piece of work.
#[derive(Debug)]
#[must_use = "the stage begins work again when this drops"]
pub struct Waiting<'a> {
    liveness: &'a Liveness,
    stage: Stage,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.liveness.begin(self.stage);
    }
}

fn seconds(millis: u64) -> String {
    format!("{:.1} s", millis as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(10);

    #[test]
    fn a_run_starts_alive_with_every_stage_waiting() {
        let liveness = Liveness::new();
        let soon = Instant::now() + Duration::from_secs(9);
        assert!(liveness.wedged(soon, BOUND).is_empty());
    }

    #[test]
    fn work_longer_than_the_bound_is_wedged_and_names_its_stage() {
        let liveness = Liveness::new();
        liveness.begin(Stage::Process);
        let start = Instant::now();
        liveness.tick();
        assert!(
            liveness
                .wedged(start + Duration::from_secs(5), BOUND)
                .is_empty()
        );
        let later = start + Duration::from_secs(12);
        let wedged = liveness.wedged(later, BOUND);
        assert_eq!(wedged.len(), 2, "{wedged:?}");
        assert!(wedged[0].starts_with("process busy for 12."), "{wedged:?}");
        assert!(
            wedged[1].starts_with("checkpoint silent for 12."),
            "{wedged:?}"
        );
    }

    #[test]
    fn waiting_however_long_is_alive_and_work_resumes_when_the_wait_ends() {
        let liveness = Liveness::new();
        liveness.begin(Stage::Tail);
        {
            let _waiting = liveness.wait(Stage::Tail);
            let much_later = Instant::now() + Duration::from_secs(60);
            let wedged = liveness.wedged(much_later, BOUND);
            assert!(!wedged.iter().any(|w| w.starts_with("tail")), "{wedged:?}");
        }
        let resumed = Instant::now();
        let wedged = liveness.wedged(resumed + Duration::from_secs(11), BOUND);
        assert!(wedged.iter().any(|w| w.starts_with("tail")), "{wedged:?}");
        liveness.end(Stage::Tail);
        let wedged = liveness.wedged(resumed + Duration::from_secs(11), BOUND);
        assert!(!wedged.iter().any(|w| w.starts_with("tail")), "{wedged:?}");
    }

    #[test]
    fn ticks_keep_the_checkpoint_alive() {
        let liveness = Liveness::new();
        let start = Instant::now();
        assert!(
            !liveness
                .wedged(start + Duration::from_secs(11), BOUND)
                .is_empty()
        );
        liveness.tick();
        assert!(
            liveness
                .wedged(Instant::now() + Duration::from_secs(9), BOUND)
                .is_empty()
        );
    }
}
