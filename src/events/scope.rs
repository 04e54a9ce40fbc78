//! One scope's event stream (a namespace, or the whole cluster): where it resumes, what
//! is sent and not yet delivered, and what it asks the API server for.
//!
//! A scope watches from the resourceVersion after the last delivered event. Without one
//! (the first leader ever) or when the API server has compacted past it (410 Gone), it
//! lists instead: after a 410 only events last seen at or after the newest one already
//! sent are shipped, so the replay costs at most the events of that one instant, while
//! events that changed during the gap are all shipped.

use std::collections::BTreeMap;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};

use super::lease::ResumePoint;
use super::record::last_seen;

/// How long one watch request lasts before it is made again (the API server's own limit
/// is about 30 minutes; shorter keeps connections fresh through load balancers).
const WATCH_SECONDS: u32 = 290;

/// How long a list, or the start of a watch, may take.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A watch's items, or the end of the watch.
pub type Watch = BoxStream<'static, Result<WatchEvent<Event>, kube::Error>>;

/// One scope's bookkeeping.
#[derive(Debug)]
pub struct Scope {
    /// The namespace, or `""` for every namespace.
    pub name: String,
    api: Api<Event>,
    /// Delivered: where the next leader resumes.
    pub resume: ResumePoint,
    /// Received: where this watch resumes when it ends.
    received: Option<String>,
    /// The newest last-seen time sent.
    newest_sent: Option<Timestamp>,
    /// Chunks sent and not yet delivered by every sink, with the point each one's
    /// delivery moves `resume` to.
    pending: BTreeMap<u64, ResumePoint>,
}

impl Scope {
    /// A scope over `api`, resuming at `resume`.
    pub fn new(name: &str, api: Api<Event>, resume: ResumePoint) -> Scope {
        Scope {
            name: name.to_owned(),
            api,
            received: resume.resource_version.clone(),
            newest_sent: resume.last_seen,
            resume,
            pending: BTreeMap::new(),
        }
    }

    /// A watch from the last event received; `None` when there is none to watch from and
    /// the scope must [`Scope::relist`] first.
    pub async fn watch(&self) -> Option<Result<Watch, kube::Error>> {
        let from = self.received.as_deref()?;
        let params = WatchParams::default().timeout(WATCH_SECONDS);
        let started = bounded(self.api.watch(&params, from)).await;
        Some(started.map(|watch| watch.boxed()))
    }

    /// The events to ship instead of a watch's backlog, and the list's resourceVersion to
    /// watch from after them: all events when nothing was ever sent, else those seen at
    /// or after the newest one sent; oldest first.
    pub async fn relist(&mut self) -> Result<(Vec<Event>, Option<String>), kube::Error> {
        let list = bounded(self.api.list(&ListParams::default())).await?;
        let since = self.newest_sent;
        let mut events: Vec<Event> = list
            .items
            .into_iter()
            .filter(|event| since.is_none_or(|since| last_seen(event).is_some_and(|t| t >= since)))
            .collect();
        events.sort_by_key(last_seen);
        Ok((events, list.metadata.resource_version))
    }

    /// `event` is sent as chunk `seq`; once delivered, the stream resumes after it. A
    /// `listed` event has no place in the watch order: until the whole list is delivered
    /// the resume point has no resourceVersion, so a leader taking over relists from the
    /// event's last-seen time (events are listed oldest first).
    pub fn sent(&mut self, seq: u64, event: &Event, listed: bool) {
        if let Some(seen) = last_seen(event) {
            self.newest_sent = Some(self.newest_sent.map_or(seen, |newest| newest.max(seen)));
        }
        let version = if listed {
            None
        } else {
            event.metadata.resource_version.clone()
        };
        if version.is_some() {
            self.received.clone_from(&version);
        }
        let point = ResumePoint {
            resource_version: version,
            last_seen: self.newest_sent,
        };
        self.pending.insert(seq, point);
    }

    /// The watch position is too old (410 Gone): the next [`Scope::watch`] must relist.
    pub fn forget_position(&mut self) {
        self.received = None;
    }

    /// The stream reached `version` without anything to ship (a bookmark, a deletion, the
    /// end of a list): the resume point moves there once what was sent before is delivered.
    pub fn reached(&mut self, version: String) {
        self.received = Some(version.clone());
        match self.pending.values_mut().next_back() {
            Some(last) => last.resource_version = Some(version),
            None => self.resume.resource_version = Some(version),
        }
    }

    /// Chunks up to `seq` are delivered by every sink; true when the resume point moved.
    pub fn delivered(&mut self, seq: u64) -> bool {
        let rest = self.pending.split_off(&(seq + 1));
        let done = std::mem::replace(&mut self.pending, rest);
        match done.into_values().next_back() {
            Some(point) => {
                self.resume = point;
                true
            }
            None => false,
        }
    }
}

/// `call`, failed when the API server has not answered within [`REQUEST_TIMEOUT`]: a
/// request that hangs must not stop the shipper from seeing its term end.
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(kube::Error::Service("no answer in time".into())))
}

/// Whether a watch's error means its resourceVersion is too old (410 Gone, `Expired`).
pub fn is_gone(status: &kube::core::Status) -> bool {
    status.code == 410 || status.reason == "Expired" || status.reason == "Gone"
}

/// A watch stream that ends at its first error, so that every failure is handled as an
/// end: watched again from the last event received.
pub fn until_error(watch: Watch) -> Watch {
    watch
        .into_stream()
        .scan(false, |failed, item| {
            let stop = *failed;
            *failed = item.is_err();
            futures::future::ready((!stop).then_some(item))
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(version: &str, seen: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("e{version}"), "resourceVersion": version},
            "eventTime": seen
        }))
        .expect("a valid Event")
    }

    fn scope(resume: ResumePoint) -> Scope {
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:9".parse().expect("a URL"),
        ))
        .expect("a client");
        Scope::new("", Api::all(client), resume)
    }

    #[tokio::test]
    async fn the_resume_point_moves_only_over_delivered_chunks_in_order() {
        let mut scope = scope(ResumePoint {
            resource_version: Some("10".to_owned()),
            last_seen: None,
        });
        scope.sent(0, &event("11", "2026-12-02T10:00:01Z"), false);
        scope.sent(1, &event("12", "2026-12-02T10:00:02Z"), false);
        scope.reached("15".to_owned());
        assert_eq!(scope.resume.resource_version.as_deref(), Some("10"));
        assert!(scope.delivered(0));
        assert_eq!(scope.resume.resource_version.as_deref(), Some("11"));
        assert!(scope.delivered(1));
        assert_eq!(
            scope.resume.resource_version.as_deref(),
            Some("15"),
            "the bookmark after the last chunk counts once that chunk is delivered"
        );
        assert_eq!(scope.resume.last_seen, "2026-12-02T10:00:02Z".parse().ok());
        assert!(!scope.delivered(1), "nothing left to deliver");
        scope.reached("20".to_owned());
        assert_eq!(scope.resume.resource_version.as_deref(), Some("20"));
    }
}
