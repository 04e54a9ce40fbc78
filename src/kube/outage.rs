//! One watch's outages, for its log: one WARN when it starts failing, one INFO with the
//! outage's length once it delivers again, nothing per retry in between.
//!
//! kube-runtime's watcher emits [`Event::Init`] at the start of every relist attempt,
//! before it has listed anything; during an outage that is every backoff step. So an
//! `Init` is no sign of recovery: only what the API actually sent (a listed or watched
//! object, the end of a list) is.

use std::time::{Duration, Instant};

use kube::runtime::watcher::Event;

/// Whether a watch is failing, and since when.
#[derive(Debug, Default)]
pub struct Outage {
    since: Option<Instant>,
}

impl Outage {
    /// The watch failed at `now`; true when this starts an outage (log it), false while
    /// one goes on.
    pub fn failed(&mut self, now: Instant) -> bool {
        if self.since.is_some() {
            return false;
        }
        self.since = Some(now);
        true
    }

    /// The watch yielded `event` at `now`; the outage's length when this ends one.
    pub fn event<K>(&mut self, event: &Event<K>, now: Instant) -> Option<Duration> {
        if matches!(event, Event::Init) {
            return None;
        }
        self.since
            .take()
            .map(|since| now.saturating_duration_since(since))
    }
}

/// A duration for a log line, to the second: `"1m 12s"`.
pub fn rounded(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_reported_once_and_ends_only_with_what_the_api_sent() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut outage = Outage::default();
        assert_eq!(
            outage.event(&Event::<()>::InitDone, at(0)),
            None,
            "no outage"
        );
        assert!(outage.failed(at(1)), "the outage starts");
        for step in 2..10 {
            // Every backoff step: Init, then the list fails again.
            assert_eq!(outage.event(&Event::<()>::Init, at(step)), None);
            assert!(!outage.failed(at(step)), "still the same outage");
        }
        assert_eq!(
            outage.event(&Event::InitApply(()), at(13)),
            Some(Duration::from_secs(12))
        );
        assert_eq!(outage.event(&Event::<()>::InitDone, at(13)), None, "over");
        assert!(outage.failed(at(20)), "a new outage");
    }

    #[test]
    fn outages_are_logged_to_the_second() {
        assert_eq!(rounded(Duration::from_millis(72_600)), "1m 12s");
        assert_eq!(rounded(Duration::from_millis(400)), "0s");
    }
}
