//! The one backoff: exponential with full jitter, capped, for retrying a sink forever.
//!
//! Same shape as linkerd2-proxy's `exp-backoff`: the bounds are checked once, at
//! construction, and each delay is a random point below the current ceiling so that many
//! nodes retrying the same outage do not all come back in step.

use std::time::Duration;

/// Delays between attempts: `min`, doubling up to `max`, each jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff from `min` to `max`; `max` below `min` is raised to `min`.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let fraction = (self.next_random() % 1024) as u32;
        half + (ceiling - half) * fraction / 1024
    }

    /// Starts over from `min`, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// xorshift64: jitter needs spread, not cryptographic quality.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_half_to_full_ceiling() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::new(min, max, 42);
        let mut ceiling = min;
        for _ in 0..30 {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(max);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }
}
