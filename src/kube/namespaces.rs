//! Namespace labels for `kubernetes.namespace_labels`: one watch on every namespace of the
//! cluster, feeding a map the pipeline reads when it opens a file.
//!
//! Like the pod watch, it is kube-runtime's `watcher` with its default backoff: resumed
//! with the last resourceVersion, relisted on 410 Gone, never awaited by the pipeline. A
//! relist builds a new map and swaps it in whole at its end, so namespaces deleted while
//! the watch was away do not linger. A file opened before its namespace is known, or while
//! the API is down, carries no `namespace_labels`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

/// Labels by namespace name.
type LabelMap = HashMap<String, Arc<BTreeMap<String, String>>>;

/// The labels of every namespace, as last watched. Cheap to clone; reads never wait on
/// the API.
#[derive(Debug, Clone, Default)]
pub struct NamespaceLabels {
    // A std lock: held only to copy an `Arc` out or to apply one event, never across an
    // await.
    live: Arc<RwLock<LabelMap>>,
}

impl NamespaceLabels {
    /// The labels of `namespace`, when it is known.
    pub fn get(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.get(namespace).cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, LabelMap> {
        self.live.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the namespace watch on the current runtime; it runs until the process ends.
pub fn watch_namespaces(client: Client) -> NamespaceLabels {
    let labels = NamespaceLabels::default();
    tokio::spawn(watch(Api::all(client), labels.clone()));
    labels
}

async fn watch(namespaces: Api<Namespace>, labels: NamespaceLabels) {
    let stream = watcher::watcher(namespaces, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut relist: Option<LabelMap> = None;
    let mut failing = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                failing = false;
                apply(&labels, &mut relist, event);
            }
            Err(error) if !failing => {
                tracing::warn!(%error, "namespace watch failed; retrying with backoff");
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "namespace watch still failing"),
        }
    }
}

/// Applies one watch event; a relist gathers into `relist` until it is done.
fn apply(labels: &NamespaceLabels, relist: &mut Option<LabelMap>, event: Event<Namespace>) {
    let entry = |namespace: &Namespace| {
        let name = namespace.metadata.name.clone()?;
        let map = namespace.metadata.labels.clone().unwrap_or_default();
        Some((name, Arc::new(map)))
    };
    match event {
        Event::Init => *relist = Some(LabelMap::new()),
        Event::InitApply(namespace) => {
            if let (Some(map), Some((name, labels))) = (relist.as_mut(), entry(&namespace)) {
                map.insert(name, labels);
            }
        }
        Event::InitDone => {
            if let Some(map) = relist.take() {
                *labels.write() = map;
            }
        }
        Event::Apply(namespace) => {
            if let Some((name, map)) = entry(&namespace) {
                labels.write().insert(name, map);
            }
        }
        Event::Delete(namespace) => {
            if let Some(name) = namespace.metadata.name {
                labels.write().remove(&name);
            }
        }
    }
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

    fn team(labels: &NamespaceLabels, namespace: &str) -> Option<String> {
        labels
            .get(namespace)
            .and_then(|map| map.get("team").cloned())
    }

    #[test]
    fn a_relist_replaces_the_map_whole_and_events_update_it() {
        let labels = NamespaceLabels::default();
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
}
