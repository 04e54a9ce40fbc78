//! `[events]` (beyond CONTRACT): Kubernetes events shipped by one elected shiplog of the
//! DaemonSet. Its keys, their defaults, and the checks that would otherwise fail later.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::resolve::Origin;
use super::units::deserialize_duration;
use super::{ConfigError, EventsConfig, LeaseTimings};
use crate::route::is_valid_topic;

/// Record fields events records have already; `tags` may not name them.
const EVENT_FIELDS: [&str; 4] = ["time", "log", "event", "topic"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct EventsFile {
    enabled: bool,
    namespaces: Vec<String>,
    topic: String,
    lease_name: String,
    lease_namespace: Option<String>,
    identity: Option<String>,
    #[serde(deserialize_with = "deserialize_duration")]
    lease_duration: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    renew_deadline: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    retry_period: Duration,
    tags: BTreeMap<String, String>,
}

impl Default for EventsFile {
    fn default() -> Self {
        // client-go's leader election defaults.
        EventsFile {
            enabled: false,
            namespaces: Vec::new(),
            topic: "k8s-events".to_owned(),
            lease_name: "shiplog-events".to_owned(),
            lease_namespace: None,
            identity: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            tags: BTreeMap::new(),
        }
    }
}

/// Checks `[events]`. The lease's namespace defaults to `POD_NAMESPACE` (else `shiplog`),
/// the holder's identity to `POD_NAME` (else `HOSTNAME`), as the DaemonSet sets them.
pub(super) fn events(file: EventsFile, origin: &Origin<'_>) -> Result<EventsConfig, ConfigError> {
    let lease = timings(&file, origin)?;
    let env = |name: &str| origin.env(name).filter(|value| !value.is_empty());
    let lease_namespace = file
        .lease_namespace
        .or_else(|| env("POD_NAMESPACE"))
        .unwrap_or_else(|| "shiplog".to_owned());
    let identity = file
        .identity
        .or_else(|| env("POD_NAME"))
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_default();
    if file.enabled && identity.is_empty() {
        let reason = "the leader's identity is required: set POD_NAME or events.identity";
        return Err(origin.error("events.identity", reason));
    }
    if !is_valid_topic(&file.topic) {
        let reason = format!(
            "{:?} is not a legal topic name (1 to 249 of a-z A-Z 0-9 . _ -)",
            file.topic
        );
        return Err(origin.error("events.topic", reason));
    }
    for (key, value) in [
        ("events.lease_name", &file.lease_name),
        ("events.lease_namespace", &lease_namespace),
    ] {
        if value.is_empty() {
            return Err(origin.error(key, "must not be empty"));
        }
    }
    if let Some((index, _)) = file
        .namespaces
        .iter()
        .enumerate()
        .find(|(_, n)| n.is_empty())
    {
        return Err(origin.error(format!("events.namespaces[{index}]"), "must not be empty"));
    }
    if let Some(name) = file
        .tags
        .keys()
        .find(|name| EVENT_FIELDS.contains(&name.as_str()))
    {
        let reason = format!(
            "{name:?} is a field events records have already ({})",
            EVENT_FIELDS.join(", ")
        );
        return Err(origin.error(format!("events.tags.{name}"), reason));
    }
    Ok(EventsConfig {
        enabled: file.enabled,
        namespaces: file.namespaces,
        topic: file.topic,
        lease_name: file.lease_name,
        lease_namespace,
        identity,
        lease,
        tags: file.tags,
    })
}

/// client-go's rule: the lease outlasts the renew deadline, which outlasts a retry (with
/// room for its jitter), so a leader gives up before anyone else may take over.
fn timings(file: &EventsFile, origin: &Origin<'_>) -> Result<LeaseTimings, ConfigError> {
    if file.retry_period.is_zero() {
        return Err(origin.error("events.retry_period", "must be at least 1ms"));
    }
    if file.renew_deadline <= file.retry_period.mul_f64(1.2) {
        let reason = format!(
            "must be more than 1.2 × retry_period ({:?})",
            file.retry_period
        );
        return Err(origin.error("events.renew_deadline", reason));
    }
    if file.lease_duration <= file.renew_deadline {
        let reason = format!(
            "must be more than renew_deadline ({:?})",
            file.renew_deadline
        );
        return Err(origin.error("events.lease_duration", reason));
    }
    if file.lease_duration < Duration::from_secs(1) {
        return Err(origin.error("events.lease_duration", "must be at least 1s"));
    }
    Ok(LeaseTimings {
        lease_duration: file.lease_duration,
        renew_deadline: file.renew_deadline,
        retry_period: file.retry_period,
    })
}
