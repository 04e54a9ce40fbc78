//! The API side of `metadata = "api"`: the client, the one pod watch of this node feeding
//! the cache, and the single GET a cache miss may ask for.
//!
//! The watch is kube-runtime's `watcher` on `spec.nodeName=<node>` (resumes with the last
//! resourceVersion, relists on 410 Gone, asks for bookmarks) with its default backoff, so
//! an API that is slow or down delays metadata, never log shipping: nothing here is awaited
//! by the pipeline, and a lookup waits at most `lookup_timeout` (see [`Lookups`]).

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config};
use tokio::sync::{mpsc, oneshot};

use super::cache::{CacheWriter, PodCache, pod_cache};
use super::namespaces::{NamespaceMeta, Namespaces, watch_namespaces};
use super::outage::{Outage, rounded};
use super::{Missing, PodMeta};

/// Why the API client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file is unreadable or invalid.
    #[error("cannot use kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither in-cluster config nor KUBECONFIG / ~/.kube/config is usable.
    #[error("no API config: not in a cluster, and no usable KUBECONFIG or ~/.kube/config: {0}")]
    Infer(String),
    /// The config is readable but no client can be built from it.
    #[error("cannot build an API client: {0}")]
    Client(String),
}

/// The client for `kubeconfig` if given, else in-cluster config, then KUBECONFIG /
/// `~/.kube/config` (`kube::Config::infer`). In-cluster, kube re-reads the rotated
/// service-account token by itself. Failed calls are not retried by the client.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let error = |reason: String| ClientError::Kubeconfig {
                path: path.display().to_string(),
                reason,
            };
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
            let options = kube::config::KubeConfigOptions::default();
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| error(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| ClientError::Infer(e.to_string()))?,
    };
    // kube retries 429/503/504 itself by default, up to 15 times with backoff growing to
    // minutes: one call to an API server that is down would then block that long. Every
    // caller here retries on its own terms (the watchers' backoff, the lookup bound, the
    // Lease's renew deadline), so a call fails at once instead.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| ClientError::Client(e.to_string()))
}

/// What the API source needs, validated.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// This node's name: only its pods are watched.
    pub node_name: String,
    /// Pods the cache holds at most.
    pub capacity: NonZeroUsize,
    /// How long a deleted pod stays cached.
    pub deleted_pod_grace: Duration,
    /// How long a miss waits for its GET.
    pub lookup_timeout: Duration,
    /// Watch namespaces too, and add their labels to pods (`kubernetes.namespace_labels`).
    pub namespace_labels: bool,
    /// Watch namespaces too, for their `<prefix>/exclude` (`kubernetes.namespace_exclude`).
    pub namespace_exclude: bool,
    /// The steering annotations' prefixes: of a namespace's annotations, only these are
    /// kept.
    pub annotation_prefixes: Vec<String>,
}

/// Starts the watch and the lookup task on the current runtime; returns the lookups handle
/// the pipeline reads through. Both tasks run until the process ends.
///
/// Waits at most `lookup_timeout` for the first lists (pods, and namespaces when they are
/// watched), so that the files present at start find their pods in the cache rather than
/// costing one GET each, and a namespace excluded is excluded from the first line; an API
/// that is down delays the start by that bound only.
pub async fn start(client: Client, settings: &ApiSettings) -> Lookups {
    let (cache, writer) = pod_cache(settings.capacity, settings.deleted_pod_grace);
    let (namespaces, namespaces_listed) = if settings.namespace_labels || settings.namespace_exclude
    {
        let (namespaces, listed) = watch_namespaces(client.clone(), &settings.annotation_prefixes);
        (Some(namespaces), Some(listed))
    } else {
        (None, None)
    };
    let pods: Api<Pod> = Api::all(client.clone());
    let (listed, first_list) = oneshot::channel();
    tokio::spawn(watch(pods, settings.node_name.clone(), writer, listed));
    let (requests, receiver) = mpsc::unbounded_channel();
    tokio::spawn(serve_lookups(client, receiver, settings.lookup_timeout));
    let first_lists = async {
        // A watch that ended (it never does) counts as listed: nothing more to wait for.
        first_list.await.ok();
        if let Some(listed) = namespaces_listed {
            listed.await.ok();
        }
    };
    if tokio::time::timeout(settings.lookup_timeout, first_lists)
        .await
        .is_err()
    {
        tracing::warn!(
            "the first pod (or namespace) list did not come within kubernetes.lookup_timeout; starting without it"
        );
    }
    Lookups {
        cache,
        requests,
        timeout: settings.lookup_timeout,
        namespaces,
        namespace_labels: settings.namespace_labels,
    }
}

/// Keeps the cache in step with this node's pods until the process ends; `listed` fires
/// when the first list is in the cache.
async fn watch(
    pods: Api<Pod>,
    node_name: String,
    mut writer: CacheWriter,
    listed: oneshot::Sender<()>,
) {
    let mut listed = Some(listed);
    // Bookmarks are on in the default config. Managed fields are not stripped as in
    // kube's pod_reflector example: that saves memory for a store of whole `Pod`s, and
    // each `Pod` here is reduced to a `PodMeta` and dropped at once.
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let stream = watcher::watcher(pods, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut outage = Outage::default();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if let Some(lasted) = outage.event(&event, Instant::now()) {
                    tracing::info!(outage = %rounded(lasted), "pod watch recovered");
                }
                let done = matches!(event, Event::InitDone);
                apply(&mut writer, event);
                if let Some(listed) = listed.take_if(|_| done) {
                    // `start` may have stopped waiting; nothing else listens.
                    listed.send(()).ok();
                }
            }
            // Every watcher error is retried with backoff; say so once per outage.
            Err(error) if outage.failed(Instant::now()) => {
                tracing::warn!(%error, "pod watch failed; retrying with backoff (pods not cached get file-name metadata meanwhile)");
            }
            Err(error) => tracing::debug!(%error, "pod watch still failing"),
        }
    }
}

fn apply(writer: &mut CacheWriter, event: Event<Pod>) {
    match event {
        Event::Init => writer.relist_started(),
        Event::InitApply(pod) | Event::Apply(pod) => {
            if let Some(meta) = PodMeta::from_pod(&pod) {
                writer.upsert(meta);
            }
        }
        Event::Delete(pod) => {
            if let Some(meta) = PodMeta::from_pod(&pod) {
                writer.delete(meta);
            }
        }
        Event::InitDone => writer.relist_done(),
    }
}

/// One pod a cache miss asks for, and where to answer.
#[derive(Debug)]
struct Lookup {
    namespace: String,
    name: String,
    reply: std_mpsc::SyncSender<Result<Option<PodMeta>, String>>,
}

/// Serves lookups, each GET on its own task so a slow one holds up no other.
async fn serve_lookups(
    client: Client,
    mut requests: mpsc::UnboundedReceiver<Lookup>,
    timeout: Duration,
) {
    while let Some(lookup) = requests.recv().await {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lookup.namespace);
        tokio::spawn(async move {
            // Past the caller's wait nobody reads the answer; the bound also ends GETs to
            // an API that does not answer at all.
            let got = tokio::time::timeout(timeout, pods.get_opt(&lookup.name)).await;
            let meta = match got {
                Ok(Ok(pod)) => Ok(pod.as_ref().and_then(PodMeta::from_pod)),
                Ok(Err(error)) => {
                    tracing::debug!(%error, pod = %lookup.name, "pod lookup failed");
                    Err(error.to_string())
                }
                Err(_) => Ok(None),
            };
            // The caller may have stopped waiting; then the answer is not needed.
            drop(lookup.reply.send(meta));
        });
    }
}

/// The pipeline's handle on the API source: the cache, and one GET per miss.
#[derive(Debug, Clone)]
pub struct Lookups {
    cache: PodCache,
    requests: mpsc::UnboundedSender<Lookup>,
    timeout: Duration,
    /// Namespaces, when `kubernetes.namespace_labels` or `namespace_exclude` asks for them.
    namespaces: Option<Namespaces>,
    /// Pods carry their namespace's labels.
    namespace_labels: bool,
}

impl Lookups {
    /// The pod from the cache; on a miss one GET, waited for at most `lookup_timeout` (not
    /// at all while the API is known unreachable), or why there is none. Blocks: call it
    /// off the runtime.
    pub fn pod(&self, namespace: &str, name: &str) -> Result<Arc<PodMeta>, Missing> {
        self.fetch(namespace, name)
            .map(|meta| self.with_namespace_labels(meta))
    }

    /// The namespace `name`, when namespaces are watched and it is known.
    pub fn namespace(&self, name: &str) -> Option<Arc<NamespaceMeta>> {
        self.namespaces.as_ref()?.get(name)
    }

    /// The pod with its namespace's labels, when they are asked for and known: a copy of
    /// the cached metadata, once per file opened.
    fn with_namespace_labels(&self, meta: Arc<PodMeta>) -> Arc<PodMeta> {
        let Some(labels) = self
            .namespaces
            .as_ref()
            .filter(|_| self.namespace_labels)
            .and_then(|namespaces| namespaces.labels(&meta.namespace))
        else {
            return meta;
        };
        Arc::new(PodMeta {
            namespace_labels: Some(labels),
            ..(*meta).clone()
        })
    }

    fn fetch(&self, namespace: &str, name: &str) -> Result<Arc<PodMeta>, Missing> {
        if let Some(meta) = self.cache.get(namespace, name) {
            return Ok(meta);
        }
        if self.cache.unreachable() {
            return Err(Missing::ApiUnreachable);
        }
        if self.timeout.is_zero() {
            return Err(Missing::NotWatchedYet);
        }
        let (reply, answer) = std_mpsc::sync_channel(1);
        let lookup = Lookup {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reply,
        };
        let stopped = || Missing::LookupFailed("the lookup task stopped".to_owned());
        self.requests.send(lookup).map_err(|_| stopped())?;
        match answer.recv_timeout(self.timeout) {
            Ok(Ok(Some(meta))) => Ok(self.cache.fetched(meta)),
            Ok(Ok(None)) => Err(Missing::NotFound),
            Ok(Err(reason)) => Err(Missing::LookupFailed(reason)),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                self.cache.lookup_timed_out();
                Err(Missing::TimedOut)
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(stopped()),
        }
    }

    /// The pod if cached; never waits.
    pub fn cached(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.cache
            .get(namespace, name)
            .map(|meta| self.with_namespace_labels(meta))
    }

    /// A counter that moves at every change of a pod or of a namespace (both counters
    /// only grow, so their sum moves whenever either does).
    pub fn version(&self) -> u64 {
        let namespaces = self.namespaces.as_ref().map_or(0, Namespaces::version);
        self.cache.version().wrapping_add(namespaces)
    }

    /// Whether the watch has listed the node's pods at least once.
    pub fn synced(&self) -> bool {
        self.cache.synced()
    }
}
