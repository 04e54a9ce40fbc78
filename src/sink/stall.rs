//! When a sink's records have waited too long: a sink that delivers nothing must say so in
//! shiplog's log, not only in its metrics. Pure: the caller passes the time and logs.

use std::time::{Duration, Instant};

/// Records waiting longer than this make a sink stalled.
pub const STALLED_AFTER: Duration = Duration::from_secs(60);

/// A stalled sink says so at most this often.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// One sink's stall warnings: when it last warned about the batch it is delivering.
#[derive(Debug, Default)]
pub struct Stall {
    last_warning: Option<Instant>,
}

/// What to warn about: the records waiting undelivered, and the age of the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    /// Records of the batch being delivered.
    pub waiting: usize,
    /// How long the oldest of them has waited.
    pub oldest: Duration,
}

impl Stall {
    /// Whether to warn at `now` about `waiting` records, the oldest of which arrived at
    /// `since`: once they have waited [`STALLED_AFTER`], then every [`WARN_EVERY`].
    pub fn check(
        &mut self,
        waiting: usize,
        since: Option<Instant>,
        now: Instant,
    ) -> Option<Stalled> {
        let oldest = now.saturating_duration_since(since?);
        if waiting == 0 || oldest < STALLED_AFTER {
            return None;
        }
        if self
            .last_warning
            .is_some_and(|last| now.saturating_duration_since(last) < WARN_EVERY)
        {
            return None;
        }
        self.last_warning = Some(now);
        Some(Stalled { waiting, oldest })
    }

    /// The batch was delivered. Returns whether the sink had warned that it was stalled
    /// (then it says it delivers again).
    pub fn delivered(&mut self) -> bool {
        self.last_warning.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_warns_once_its_oldest_record_waited_a_minute_then_once_a_minute() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut stall = Stall::default();
        let mut warned = Vec::new();
        for second in (0..=200).step_by(5) {
            if let Some(stalled) = stall.check(40, Some(start), at(second)) {
                assert_eq!(stalled.waiting, 40);
                warned.push(stalled.oldest.as_secs());
            }
        }
        assert_eq!(warned, [60, 120, 180]);
        assert!(stall.delivered(), "it had warned");
        assert!(!stall.delivered());
    }

    #[test]
    fn nothing_waiting_or_waiting_briefly_is_no_stall() {
        let start = Instant::now();
        let mut stall = Stall::default();
        let late = start + Duration::from_secs(600);
        assert_eq!(stall.check(0, Some(start), late), None);
        assert_eq!(stall.check(5, None, late), None);
        assert_eq!(
            stall.check(5, Some(start), start + Duration::from_secs(59)),
            None
        );
        assert!(!stall.delivered());
    }

    #[test]
    fn after_a_delivery_a_new_stall_warns_as_soon_as_it_is_one() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut stall = Stall::default();
        assert!(stall.check(1, Some(start), at(61)).is_some());
        assert!(stall.delivered());
        assert!(stall.check(1, Some(at(70)), at(131)).is_some());
    }
}
