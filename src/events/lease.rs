//! Leader election on a `coordination.k8s.io/v1` Lease, client-go's algorithm, and the
//! events' resume point kept in the Lease's annotations.
//!
//! Our own, small: kube-leader-election pins kube 0.96 and kube-lease-manager kube 4 (we
//! are on kube 5), and neither lets the holder write its own annotations in the update
//! that renews its claim, which is how the events' resume point survives a change of
//! leader without a shared volume.
//!
//! As in client-go, a candidate never compares its clock with the holder's: a claim is
//! valid for `lease_duration` from the moment this process saw it change. Every write is
//! a replace with the `resourceVersion` last read, so two candidates cannot both win.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

use crate::config::LeaseTimings;

/// The annotation holding the resume point of every event stream, as JSON.
pub const RESUME_ANNOTATION: &str = "shiplog.io/events-resume";

/// Where each event stream resumes, by scope (a namespace, or `""` for all): the
/// resourceVersion after the last delivered event, and when that event was last seen.
pub type ResumePoints = BTreeMap<String, ResumePoint>;

/// Where one event stream resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumePoint {
    /// Watch from here: everything up to it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The newest last-seen time delivered, RFC 3339: after a 410 Gone, the relist ships
    /// only events seen at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
}

/// Stands for election on one Lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    /// The claim last seen, and when it was first seen so.
    observed: Option<(Claim, Instant)>,
}

/// A Lease's claim as a candidate compares it: its holder and its last renewal.
type Claim = (Option<String>, Option<Timestamp>);

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This process holds the Lease.
    Leading {
        /// The resume points the Lease held before this write.
        stored: ResumePoints,
        /// This write began a new term: the Lease was free, expired or another's.
        new_term: bool,
    },
    /// Another holds it, validly.
    Following(String),
}

impl Elector {
    /// A candidate named `identity` for the Lease `name` of `api`'s namespace.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timings: LeaseTimings) -> Elector {
        Elector {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            observed: None,
        }
    }

    /// Acquires the Lease, or renews it when held, writing `resume` into it when given.
    pub async fn try_acquire_or_renew(
        &mut self,
        resume: Option<&ResumePoints>,
    ) -> Result<Attempt, kube::Error> {
        let now = Instant::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = self.claim(Lease::default(), resume, true);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading {
                    stored: ResumePoints::new(),
                    new_term: true,
                }),
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    Ok(Attempt::Following(String::new()))
                }
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let claim = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0));
        let seen_at = match &self.observed {
            Some((seen, at)) if *seen == claim => *at,
            _ => now,
        };
        self.observed = Some((claim, seen_at));
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timings.lease_duration, Duration::from_secs);
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = holder.filter(|_| !mine && now < seen_at + duration) {
            return Ok(Attempt::Following(holder));
        }
        let stored = stored_resume(&lease);
        lease = self.claim(lease, resume, !mine);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leading {
                stored,
                new_term: !mine,
            }),
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                Ok(Attempt::Following(String::new()))
            }
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up (at shutdown), leaving `resume` in it, so that another candidate
    /// takes over at its next try instead of after `lease_duration`.
    pub async fn release(&mut self, resume: &ResumePoints) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        write_resume(&mut lease.metadata, resume);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(drop)
    }

    /// `lease` claimed by this process now; `taking_over` starts a new term.
    fn claim(&self, mut lease: Lease, resume: Option<&ResumePoints>, taking_over: bool) -> Lease {
        let now = MicroTime(Timestamp::now());
        lease.metadata.name = Some(self.name.clone());
        if let Some(resume) = resume {
            write_resume(&mut lease.metadata, resume);
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let seconds = self.timings.lease_duration.as_secs().max(1);
        spec.lease_duration_seconds = Some(i32::try_from(seconds).unwrap_or(i32::MAX));
        if taking_over {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(now);
        lease
    }
}

/// The resume points a Lease holds; none when it holds none or they do not parse (then
/// the next leader relists: duplicates, never a loss).
fn stored_resume(lease: &Lease) -> ResumePoints {
    let text = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(RESUME_ANNOTATION));
    match text.map(|text| serde_json::from_str(text)) {
        Some(Ok(points)) => points,
        Some(Err(error)) => {
            tracing::warn!(%error, "the Lease's events resume point does not parse; relisting");
            ResumePoints::new()
        }
        None => ResumePoints::new(),
    }
}

fn write_resume(metadata: &mut ObjectMeta, resume: &ResumePoints) {
    // A map of strings serializes.
    let text = serde_json::to_string(resume).unwrap_or_default();
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(RESUME_ANNOTATION.to_owned(), text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points_round_trip_through_the_annotation() {
        let points = ResumePoints::from([
            (
                String::new(),
                ResumePoint {
                    resource_version: Some("42".to_owned()),
                    last_seen: "2026-12-02T10:00:00.5Z".parse().ok(),
                },
            ),
            ("shop".to_owned(), ResumePoint::default()),
        ]);
        let mut lease = Lease::default();
        write_resume(&mut lease.metadata, &points);
        assert_eq!(stored_resume(&lease), points);
        let text = &lease.metadata.annotations.as_ref().expect("annotated")[RESUME_ANNOTATION];
        assert_eq!(
            text,
            r#"{"":{"resource_version":"42","last_seen":"2026-12-02T10:00:00.5Z"},"shop":{}}"#
        );
    }

    #[test]
    fn an_unreadable_resume_point_means_relisting() {
        let mut lease = Lease::default();
        lease.metadata.annotations = Some(BTreeMap::from([(
            RESUME_ANNOTATION.to_owned(),
            "not json".to_owned(),
        )]));
        assert_eq!(stored_resume(&lease), ResumePoints::new());
    }
}
