//! The `throttle` transform's token buckets: one per pod (or namespace), `rate` lines a
//! second, holding at most `burst`.
//!
//! Pure: the time is passed in. A bucket starts full. Buckets of pods gone quiet are
//! forgotten once there are many (a full bucket is the same as a new one).

use std::collections::HashMap;
use std::time::Instant;

/// What a throttle counts lines by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// Each pod has its own bucket.
    Pod,
    /// All pods of a namespace share one.
    Namespace,
}

/// A throttle's settings, from the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// What lines are counted by.
    pub per: Per,
    /// Lines a second that pass, on average.
    pub rate: f64,
    /// Lines that may pass at once after a quiet spell; at least 1.
    pub burst: f64,
}

/// Buckets kept before full ones are forgotten.
const KEPT_BUCKETS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of one `throttle` transform.
#[derive(Debug)]
pub struct Throttle {
    limit: Limit,
    buckets: HashMap<(String, String), Bucket>,
}

impl Throttle {
    /// A throttle with every bucket full.
    pub fn new(limit: Limit) -> Self {
        Throttle {
            limit,
            buckets: HashMap::new(),
        }
    }

    /// How many of `lines` lines of `pod` in `namespace`, arriving at `now`, may pass (the
    /// first ones pass, the rest are dropped).
    pub fn admit(&mut self, namespace: &str, pod: &str, lines: usize, now: Instant) -> usize {
        let Limit { per, rate, burst } = self.limit;
        let pod = match per {
            Per::Pod => pod,
            Per::Namespace => "",
        };
        if self.buckets.len() >= KEPT_BUCKETS {
            self.forget_full(now);
        }
        let key = (namespace.to_owned(), pod.to_owned());
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        let passed = (bucket.tokens.floor().max(0.0) as usize).min(lines);
        bucket.tokens -= passed as f64;
        passed
    }

    fn forget_full(&mut self, now: Instant) {
        let Limit { rate, burst, .. } = self.limit;
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens + elapsed * rate < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_only_the_rate_and_other_pods_are_untouched() {
        let mut throttle = Throttle::new(Limit {
            per: Per::Pod,
            rate: 100.0,
            burst: 50.0,
        });
        let start = Instant::now();
        assert_eq!(throttle.admit("ns", "a", 80, start), 50);
        assert_eq!(throttle.admit("ns", "a", 80, start), 0);
        assert_eq!(throttle.admit("ns", "b", 80, start), 50, "another pod");
        let later = start + Duration::from_millis(100);
        assert_eq!(throttle.admit("ns", "a", 80, later), 10, "rate x 0.1 s");
        let much_later = start + Duration::from_secs(60);
        assert_eq!(
            throttle.admit("ns", "a", 80, much_later),
            50,
            "never past burst"
        );
    }

    #[test]
    fn per_namespace_pods_share_one_bucket() {
        let mut throttle = Throttle::new(Limit {
            per: Per::Namespace,
            rate: 1.0,
            burst: 10.0,
        });
        let now = Instant::now();
        assert_eq!(throttle.admit("ns", "a", 6, now), 6);
        assert_eq!(throttle.admit("ns", "b", 6, now), 4);
        assert_eq!(throttle.admit("other", "b", 6, now), 6);
    }
}
