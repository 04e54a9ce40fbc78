//! Pod metadata: who a log file belongs to, and what records say about that pod.
//!
//! Knows file names, the Kubernetes API types and the metadata sources; nothing of reading
//! files or of sinks. The source is chosen once by `kubernetes.metadata`: a watch on the
//! API feeding a cache (`watch.rs`, `cache.rs`), a PodList file, or none.

mod cache;
mod log_path;
mod namespaces;
mod outage;
mod pod_meta;
mod pods_file;
mod watch;

use std::sync::Arc;

pub use cache::{CacheWriter, PodCache, pod_cache};
pub use log_path::LogFileInfo;
pub use namespaces::{NamespaceMeta, Namespaces, watch_namespaces};
pub use pod_meta::{ContainerMeta, FragmentOptions, Owner, PodMeta, render_fragment};
pub use pods_file::{PodIndex, PodsFileError};
pub use watch::{ApiSettings, ClientError, Lookups, client, start};

/// Where pod metadata comes from, fixed at start-up.
#[derive(Debug, Clone)]
pub enum Metadata {
    /// This node's pods, watched on the API server.
    Api(Lookups),
    /// Pods read from a PodList file.
    File(PodIndex),
    /// None: records carry what the file name says.
    Off,
}

impl Metadata {
    /// The pod the file `info` belongs to, or why it is not known. With the API source a
    /// pod not cached yet costs one GET, waited for at most `lookup_timeout`: call this off
    /// the async runtime.
    pub fn pod(&self, info: &LogFileInfo) -> Result<Arc<PodMeta>, Missing> {
        match self {
            Metadata::Api(lookups) => lookups.pod(&info.namespace, &info.pod_name),
            Metadata::File(index) => index
                .get(&info.namespace, &info.pod_name)
                .ok_or(Missing::NotInPodsFile),
            Metadata::Off => Err(Missing::Off),
        }
    }

    /// The namespace `name`, when namespaces are watched and it is known; never waits.
    pub fn namespace(&self, name: &str) -> Option<Arc<NamespaceMeta>> {
        match self {
            Metadata::Api(lookups) => lookups.namespace(name),
            Metadata::File(_) | Metadata::Off => None,
        }
    }

    /// The pod if already known; never waits.
    pub fn cached(&self, info: &LogFileInfo) -> Option<Arc<PodMeta>> {
        match self {
            Metadata::Api(lookups) => lookups.cached(&info.namespace, &info.pod_name),
            Metadata::File(index) => index.get(&info.namespace, &info.pod_name),
            Metadata::Off => None,
        }
    }

    /// Whether the source knows the node's pods: the API watch has listed them at least
    /// once (`/readyz` says ready only then); always true for a file or for none.
    pub fn synced(&self) -> bool {
        match self {
            Metadata::Api(lookups) => lookups.synced(),
            Metadata::File(_) | Metadata::Off => true,
        }
    }

    /// A counter that moves whenever a pod or a namespace may have been learnt or changed;
    /// constant for sources that never change. A file whose context was worked out at
    /// version `v` need not look again while the version is `v`.
    pub fn version(&self) -> u64 {
        match self {
            Metadata::Api(lookups) => lookups.version(),
            Metadata::File(_) | Metadata::Off => 0,
        }
    }
}

/// Why a file's records go out without their pod's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// `kubernetes.metadata = "off"`: by choice, not worth a word.
    Off,
    /// The file's name is not the kubelet's: no pod can be looked up.
    NotKubeletPath,
    /// The pods file has no such pod.
    NotInPodsFile,
    /// The API has no such pod (yet): a static pod before its mirror pod is created, or a
    /// pod deleted long enough ago.
    NotFound,
    /// The watch has not delivered the pod, and `lookup_timeout = 0` forbids a GET.
    NotWatchedYet,
    /// The API did not answer the pod's GET within `lookup_timeout`.
    TimedOut,
    /// A recent lookup timed out and the API has not been heard from since.
    ApiUnreachable,
    /// The pod's GET failed.
    LookupFailed(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Off => f.write_str("kubernetes.metadata is off"),
            Missing::NotKubeletPath => {
                f.write_str("the file name does not follow the kubelet's naming")
            }
            Missing::NotInPodsFile => f.write_str("the pod is not in kubernetes.pods_file"),
            Missing::NotFound => f.write_str(
                "the API has no such pod yet (a static pod before its mirror pod, or a pod deleted long ago)",
            ),
            Missing::NotWatchedYet => {
                f.write_str("the pod watch has not delivered the pod yet (lookup_timeout is 0)")
            }
            Missing::TimedOut => f.write_str(
                "the API did not answer the pod's GET within kubernetes.lookup_timeout",
            ),
            Missing::ApiUnreachable => f.write_str("the API is unreachable"),
            Missing::LookupFailed(reason) => write!(f, "the pod's GET failed: {reason}"),
        }
    }
}
