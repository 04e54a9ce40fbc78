//! Pod metadata: who a log file belongs to, and what records say about that pod.
//!
//! Knows file names, the Kubernetes API types and the metadata sources; nothing of reading
//! files or of sinks. The source is chosen once by `kubernetes.metadata`: a watch on the
//! API feeding a cache (`watch.rs`, `cache.rs`), a PodList file, or none.

mod cache;
mod log_path;
mod namespaces;
mod pod_meta;
mod pods_file;
mod watch;

use std::sync::Arc;

pub use cache::{CacheWriter, PodCache, pod_cache};
pub use log_path::LogFileInfo;
pub use namespaces::{NamespaceLabels, watch_namespaces};
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
    /// The pod the file `info` belongs to, when known. With the API source a pod not
    /// cached yet costs one GET, waited for at most `lookup_timeout`: call this off the
    /// async runtime.
    pub fn pod(&self, info: &LogFileInfo) -> Option<Arc<PodMeta>> {
        match self {
            Metadata::Api(lookups) => lookups.pod(&info.namespace, &info.pod_name),
            Metadata::File(index) => index.get(&info.namespace, &info.pod_name),
            Metadata::Off => None,
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

    /// A counter that moves whenever pods may have been learnt; constant for sources that
    /// never change. A file opened without its pod at version `v` may find it once the
    /// version differs.
    pub fn version(&self) -> u64 {
        match self {
            Metadata::Api(lookups) => lookups.version(),
            Metadata::File(_) | Metadata::Off => 0,
        }
    }
}
