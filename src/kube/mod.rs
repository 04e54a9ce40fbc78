//! Pod metadata: who a log file belongs to, and what records say about that pod.
//!
//! Knows file names, the Kubernetes API types and the metadata sources; nothing of reading
//! files or of sinks. The source is chosen once by `kubernetes.metadata`.

mod log_path;
mod pod_meta;
mod pods_file;

use std::sync::Arc;

pub use log_path::LogFileInfo;
pub use pod_meta::{ContainerMeta, FragmentOptions, PodMeta, render_fragment};
pub use pods_file::{PodIndex, PodsFileError};

/// Where pod metadata comes from, fixed at start-up.
#[derive(Debug, Clone)]
pub enum Metadata {
    /// Pods read from a PodList file.
    File(PodIndex),
    /// None: records carry what the file name says.
    Off,
}

impl Metadata {
    /// The pod the file `info` belongs to, when known.
    pub fn pod(&self, info: &LogFileInfo) -> Option<Arc<PodMeta>> {
        match self {
            Metadata::File(index) => index.get(&info.namespace, &info.pod_name),
            Metadata::Off => None,
        }
    }
}
