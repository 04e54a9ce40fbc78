//! The `metadata = "file"` source: pods read once from a PodList file, JSON or YAML.
//!
//! Serves tests, benchmarks and the local demo. Accepts what `kubectl get pods -o json`
//! (or `-o yaml`) prints: a `List` or `PodList` whose `items` are v1 Pods.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::PodMeta;

/// Why the pods file cannot be used. A start-up error: the collector does not run on a
/// metadata file it cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PodsFileError {
    /// The pods file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Deserialize)]
struct PodList {
    items: Vec<Pod>,
}

/// Pods by (namespace, name).
#[derive(Debug, Clone, Default)]
pub struct PodIndex {
    pods: HashMap<(String, String), Arc<PodMeta>>,
}

impl PodIndex {
    /// Reads `path`: YAML when it ends in `.yaml`/`.yml`, JSON otherwise.
    pub fn load(path: &Path) -> Result<PodIndex, PodsFileError> {
        let error = |reason: String| PodsFileError {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let list: PodList = if is_yaml {
            serde_yaml_ng::from_str(&text).map_err(|e| error(format!("not a v1 PodList: {e}")))?
        } else {
            serde_json::from_str(&text).map_err(|e| error(format!("not a v1 PodList: {e}")))?
        };
        Ok(PodIndex::from_pods(&list.items))
    }

    /// Indexes `pods`, skipping any without a name or namespace.
    pub fn from_pods(pods: &[Pod]) -> PodIndex {
        let pods = pods
            .iter()
            .filter_map(PodMeta::from_pod)
            .map(|meta| ((meta.namespace.clone(), meta.name.clone()), Arc::new(meta)))
            .collect();
        PodIndex { pods }
    }

    /// The pod `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// How many pods are indexed.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// True when no pod is indexed.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const YAML: &str = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, uid: u1, labels: {app: web}}
  spec: {nodeName: node-a, containers: [{name: nginx, image: nginx:1.27}]}
- metadata: {name: nameless-namespace}
  spec: {containers: []}
";

    fn write(suffix: &str, text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new()
            .suffix(suffix)
            .tempfile()
            .expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    #[test]
    fn a_yaml_pod_list_is_indexed_by_namespace_and_name() {
        let file = write(".yaml", YAML);
        let index = PodIndex::load(file.path()).expect("valid list");
        assert_eq!(index.len(), 1, "the pod without a namespace is skipped");
        let pod = index.get("shop", "web-1").expect("indexed");
        assert_eq!(pod.host, "node-a");
        assert_eq!(pod.labels.get("app").map(String::as_str), Some("web"));
        assert!(index.get("default", "web-1").is_none());
    }

    #[test]
    fn a_json_pod_list_loads_too() {
        let json = r#"{"kind":"PodList","apiVersion":"v1","items":[
            {"metadata":{"name":"a","namespace":"n"},"spec":{"containers":[]}}]}"#;
        let file = write(".json", json);
        assert!(
            PodIndex::load(file.path())
                .expect("valid list")
                .get("n", "a")
                .is_some()
        );
    }

    #[test]
    fn a_file_that_is_not_a_pod_list_names_the_path_and_the_reason() {
        let file = write(".json", r#"{"items": "nope"}"#);
        let error = PodIndex::load(file.path())
            .expect_err("not a list")
            .to_string();
        assert!(
            error.starts_with(&file.path().display().to_string()),
            "{error}"
        );
        assert!(error.contains("not a v1 PodList"), "{error}");
        let missing = PodIndex::load(Path::new("/nonexistent/pods.json")).expect_err("missing");
        assert!(
            missing.to_string().contains("/nonexistent/pods.json"),
            "{missing}"
        );
    }
}
