//! A sink's `allowed_destinations`: whether the destination a template filled (a Kafka
//! topic, a CloudWatch log group) is one the sink may send a pod's records to.
//!
//! Checked once per chunk, never per record. A refused destination is counted in
//! `shiplog_destinations_refused_total{sink}` (by records) and logged once per value; the
//! sink sends the chunk to its default destination instead.

use std::collections::HashSet;
use std::sync::Arc;

use crate::metrics::{Metrics, SinkLabel};
use crate::route::RouteValues;
use crate::route::allow::AllowList;

/// Values logged at most; past it refusals are still counted, not logged again.
const LOGGED_VALUES: usize = 1024;

/// One sink's allow-list and what it has said about refusals.
#[derive(Debug)]
pub struct Destinations {
    /// `None`: every destination is allowed.
    allowed: Option<AllowList>,
    /// `(namespace, value)` pairs already logged.
    logged: HashSet<(String, String)>,
    metrics: Arc<Metrics>,
    label: SinkLabel,
}

impl Destinations {
    /// The allow-list of the sink `name`.
    pub fn new(allowed: Option<AllowList>, metrics: Arc<Metrics>, name: &str) -> Destinations {
        Destinations {
            allowed,
            logged: HashSet::new(),
            metrics,
            label: SinkLabel {
                sink: name.to_owned(),
            },
        }
    }

    /// Whether `value`, filled for a chunk of `records` records of `route`'s pod, may be
    /// sent to; when not, the refusal is counted and logged (once per namespace and value)
    /// saying where the records go instead (`fallback`).
    pub fn allows(
        &mut self,
        value: &str,
        route: &RouteValues,
        records: usize,
        fallback: &str,
    ) -> bool {
        let Some(allowed) = &self.allowed else {
            return true;
        };
        if allowed.allows(value, &route.namespace) {
            return true;
        }
        self.metrics
            .destinations_refused
            .get_or_create(&self.label)
            .inc_by(records as u64);
        let key = (route.namespace.clone(), value.to_owned());
        if self.logged.len() < LOGGED_VALUES && self.logged.insert(key) {
            tracing::warn!(
                sink = %self.label.sink, namespace = %route.namespace, pod = %route.pod,
                destination = value, rule = %allowed, fallback,
                "destination filled from the pod's labels or annotations is not in allowed_destinations; its records go to the fallback"
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(namespace: &str) -> RouteValues {
        RouteValues {
            namespace: namespace.to_owned(),
            pod: "web-1".to_owned(),
            ..RouteValues::default()
        }
    }

    #[test]
    fn a_refused_destination_is_counted_by_records_and_anything_goes_without_a_list() {
        let metrics = Arc::new(Metrics::new());
        let list = AllowList::compile(&["{namespace}-*".to_owned()]).expect("valid");
        let mut restricted = Destinations::new(Some(list), Arc::clone(&metrics), "bus");
        assert!(restricted.allows("dev-audit", &route("dev"), 5, "unknown"));
        assert!(!restricted.allows("payments", &route("dev"), 7, "unknown"));
        assert!(!restricted.allows("payments", &route("dev"), 3, "unknown"));
        assert!(!restricted.allows("dev-audit", &route("prod"), 1, "unknown"));
        assert_eq!(restricted.logged.len(), 2, "once per namespace and value");
        let text = metrics.encode();
        assert!(
            text.contains("shiplog_destinations_refused_total{sink=\"bus\"} 11"),
            "{text}"
        );
        let mut free = Destinations::new(None, metrics, "cw");
        assert!(free.allows("payments", &route("dev"), 1, "unknown"));
    }
}
