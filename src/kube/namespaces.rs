//! Namespaces for `kubernetes.namespace_labels` (their labels in records) and
//! `kubernetes.namespace_exclude` (their steering annotations, `<prefix>/exclude`): one
//! watch on every namespace of the cluster, feeding a map the pipeline reads.
//!
//! Like the pod watch, it is kube-runtime's `watcher` with its default backoff: resumed
//! with the last resourceVersion, relisted on 410 Gone, never awaited by the pipeline. A
//! relist builds a new map and swaps it in whole at its end, so namespaces deleted while
//! the watch was away do not linger. Every change moves a version counter, so files
//! already open pick the change up at their next chunk. Of a namespace's annotations only
//! those under the steering prefixes are kept: the rest (a `last-applied-configuration`
//! can be the whole object) would cost memory for nothing. A file read before its
//! namespace is known, or while the API is down, carries no `namespace_labels` and is not
//! excluded by its namespace.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::oneshot;

use super::outage::{Outage, rounded};

/// What shiplog keeps of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceMeta {
    /// `metadata.labels`, shared with the pods' records.
    pub labels: Arc<BTreeMap<String, String>>,
    /// The annotations under the steering prefixes (`shiplog.io/exclude`, ...).
    pub annotations: BTreeMap<String, String>,
}

/// Namespaces by name.
type NamespaceMap = HashMap<String, Arc<NamespaceMeta>>;

/// Every namespace, as last watched. Cheap to clone; reads never wait on the API.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    // A std lock: held only to copy an `Arc` out or to apply one event, never across an
    // await.
    live: Arc<RwLock<NamespaceMap>>,
    /// Moves at every change, so that readers holding an older answer ask again.
    version: Arc<AtomicU64>,
    /// The annotation prefixes whose annotations are kept.
    prefixes: Arc<[String]>,
}

impl Namespaces {
    /// An empty map keeping the annotations under `prefixes`.
    pub fn new(prefixes: &[String]) -> Namespaces {
        Namespaces {
            prefixes: prefixes.into(),
            ..Namespaces::default()
        }
    }

    /// The namespace `name`, when it is known.
    pub fn get(&self, name: &str) -> Option<Arc<NamespaceMeta>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.get(name).cloned()
    }

    /// The labels of `namespace`, when it is known.
    pub fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self.get(namespace).map(|meta| Arc::clone(&meta.labels))
    }

    /// Changes so far.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, NamespaceMap> {
        self.live.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    /// What is kept of `namespace`: its name, its labels, its steering annotations.
    fn entry(&self, namespace: &Namespace) -> Option<(String, Arc<NamespaceMeta>)> {
        let name = namespace.metadata.name.clone()?;
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        let annotations = namespace
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(key, _)| {
                key.split_once('/')
                    .is_some_and(|(prefix, _)| self.prefixes.iter().any(|p| p == prefix))
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let meta = NamespaceMeta {
            labels: Arc::new(labels),
            annotations,
        };
        Some((name, Arc::new(meta)))
    }
}

/// Starts the namespace watch on the current runtime, keeping the annotations under
/// `prefixes`; it runs until the process ends. The receiver fires when the first list is
/// in the map.
pub fn watch_namespaces(
    client: Client,
    prefixes: &[String],
) -> (Namespaces, oneshot::Receiver<()>) {
    let namespaces = Namespaces::new(prefixes);
    let (listed, first_list) = oneshot::channel();
    tokio::spawn(watch(Api::all(client), namespaces.clone(), listed));
    (namespaces, first_list)
}

async fn watch(api: Api<Namespace>, namespaces: Namespaces, listed: oneshot::Sender<()>) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut relist: Option<NamespaceMap> = None;
    let mut listed = Some(listed);
    let mut outage = Outage::default();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if let Some(lasted) = outage.event(&event, Instant::now()) {
                    tracing::info!(outage = %rounded(lasted), "namespace watch recovered");
                }
                let done = matches!(event, Event::InitDone);
                apply(&namespaces, &mut relist, event);
                if let Some(listed) = listed.take_if(|_| done) {
                    // The start may have stopped waiting; nothing else listens.
                    listed.send(()).ok();
                }
            }
            Err(error) if outage.failed(Instant::now()) => {
                tracing::warn!(%error, "namespace watch failed; retrying with backoff");
            }
            Err(error) => tracing::debug!(%error, "namespace watch still failing"),
        }
    }
}

/// Applies one watch event; a relist gathers into `relist` until it is done.
fn apply(namespaces: &Namespaces, relist: &mut Option<NamespaceMap>, event: Event<Namespace>) {
    match event {
        Event::Init => *relist = Some(NamespaceMap::new()),
        Event::InitApply(namespace) => {
            if let (Some(map), Some((name, meta))) = (relist.as_mut(), namespaces.entry(&namespace))
            {
                map.insert(name, meta);
            }
            return;
        }
        Event::InitDone => {
            if let Some(map) = relist.take() {
                *namespaces.write() = map;
            }
        }
        Event::Apply(namespace) => {
            if let Some((name, meta)) = namespaces.entry(&namespace) {
                namespaces.write().insert(name, meta);
            }
        }
        Event::Delete(namespace) => {
            if let Some(name) = namespace.metadata.name {
                namespaces.write().remove(&name);
            }
        }
    }
    namespaces.changed();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(name: &str, team: &str) -> Namespace {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"team": team}}
        }))
        .expect("a Namespace")
    }

    fn team(labels: &Namespaces, namespace: &str) -> Option<String> {
        labels
            .labels(namespace)
            .and_then(|map| map.get("team").cloned())
    }

    #[test]
    fn a_relist_replaces_the_map_whole_and_events_update_it() {
        let labels = Namespaces::new(&["shiplog.io".to_owned()]);
        let mut relist = None;
        for event in [
            Event::Init,
            Event::InitApply(namespace("shop", "web")),
            Event::InitApply(namespace("gone", "old")),
            Event::InitDone,
        ] {
            apply(&labels, &mut relist, event);
        }
        assert_eq!(team(&labels, "shop").as_deref(), Some("web"));
        apply(
            &labels,
            &mut relist,
            Event::Apply(namespace("shop", "payments")),
        );
        assert_eq!(team(&labels, "shop").as_deref(), Some("payments"));

        apply(&labels, &mut relist, Event::Init);
        apply(
            &labels,
            &mut relist,
            Event::InitApply(namespace("shop", "payments")),
        );
        assert_eq!(
            team(&labels, "gone").as_deref(),
            Some("old"),
            "until the relist is done"
        );
        apply(&labels, &mut relist, Event::InitDone);
        assert_eq!(
            team(&labels, "gone"),
            None,
            "deleted while the watch was away"
        );
        apply(
            &labels,
            &mut relist,
            Event::Delete(namespace("shop", "payments")),
        );
        assert_eq!(team(&labels, "shop"), None);
    }

    #[test]
    fn only_steering_annotations_are_kept_and_every_change_moves_the_version() {
        let namespaces = Namespaces::new(&["shiplog.io".to_owned()]);
        let annotated: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "noisy", "annotations": {
                "shiplog.io/exclude": "true",
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "shiplog.io.evil/exclude": "true"}}
        }))
        .expect("a Namespace");
        let before = namespaces.version();
        apply(&namespaces, &mut None, Event::Apply(annotated));
        assert_ne!(namespaces.version(), before);
        let meta = namespaces.get("noisy").expect("known");
        assert_eq!(
            meta.annotations,
            BTreeMap::from([("shiplog.io/exclude".to_owned(), "true".to_owned())])
        );
    }
}
