//! `PodMeta`: what shiplog keeps of a pod, and the `kubernetes` fragment records embed.
//!
//! A `Pod` from the API (or a PodList file) is reduced to the few fields records show, and
//! the fragment for one of its containers is rendered to JSON once per file, so that
//! enriching a record is a copy of bytes (Fluent Bit's `lookup_pod_meta` does the same).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Serialize;

use super::LogFileInfo;

/// The parts of a pod that records carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.nodeName`.
    pub host: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// One entry per container (regular, init and ephemeral).
    pub containers: Vec<ContainerMeta>,
    /// The controlling owner, a ReplicaSet of a Deployment named as its Deployment.
    pub owner: Option<Owner>,
    /// The labels of the pod's namespace, when `kubernetes.namespace_labels` asks for them
    /// (shared by every pod of the namespace).
    pub namespace_labels: Option<Arc<BTreeMap<String, String>>>,
}

/// The controller a pod belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `ReplicaSet`, ...
    pub kind: String,
    /// The owner's name.
    pub name: String,
}

impl Owner {
    /// The controlling owner of a pod (`controller: true` in its owner references). A
    /// ReplicaSet named `<deployment>-<pod-template-hash>` (the pod carries that hash as
    /// its `pod-template-hash` label) is reported as the Deployment: the name the
    /// Deployment controller gives its ReplicaSets, so no lookup of the ReplicaSet is
    /// needed.
    fn of(pod: &Pod) -> Option<Owner> {
        let reference = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|reference| reference.controller == Some(true))?;
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get("pod-template-hash"));
        let deployment = match (reference.kind.as_str(), hash) {
            ("ReplicaSet", Some(hash)) => reference
                .name
                .strip_suffix(hash.as_str())
                .and_then(|name| name.strip_suffix('-'))
                .filter(|name| !name.is_empty()),
            _ => None,
        };
        Some(match deployment {
            Some(name) => Owner {
                kind: "Deployment".to_owned(),
                name: name.to_owned(),
            },
            None => Owner {
                kind: reference.kind.clone(),
                name: reference.name.clone(),
            },
        })
    }
}

/// What records show of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    /// The container's name in the pod spec.
    pub name: String,
    /// The image as the status reports it (else as the spec names it).
    pub image: String,
    /// The image digest reference (`status.imageID`), `docker-pullable://` removed.
    pub image_id: String,
    /// The runtime's container id without its `containerd://` or `docker://` scheme.
    pub container_id: String,
}

impl PodMeta {
    /// Reduces an API `Pod`; `None` when it has no name or namespace.
    pub fn from_pod(pod: &Pod) -> Option<PodMeta> {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let mut containers: Vec<ContainerMeta> = spec
            .into_iter()
            .flat_map(|spec| {
                spec.containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
            })
            .map(|container| ContainerMeta {
                name: container.name.clone(),
                image: container.image.clone().unwrap_or_default(),
                ..ContainerMeta::default()
            })
            .collect();
        let statuses = pod.status.iter().flat_map(|status| {
            let lists = [
                &status.container_statuses,
                &status.init_container_statuses,
                &status.ephemeral_container_statuses,
            ];
            lists.into_iter().flatten().flatten()
        });
        for status in statuses {
            apply_status(&mut containers, status);
        }
        Some(PodMeta {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            uid: meta.uid.clone().unwrap_or_default(),
            host: spec
                .and_then(|spec| spec.node_name.clone())
                .unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            containers,
            owner: Owner::of(pod),
            namespace_labels: None,
        })
    }

    /// The container named `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerMeta> {
        self.containers
            .iter()
            .find(|container| container.name == name)
    }
}

fn apply_status(containers: &mut Vec<ContainerMeta>, status: &ContainerStatus) {
    let index = match containers.iter().position(|c| c.name == status.name) {
        Some(index) => index,
        None => {
            containers.push(ContainerMeta {
                name: status.name.clone(),
                ..Default::default()
            });
            containers.len() - 1
        }
    };
    let container = &mut containers[index];
    if !status.image.is_empty() {
        container.image.clone_from(&status.image);
    }
    let image_id = status
        .image_id
        .strip_prefix("docker-pullable://")
        .unwrap_or(&status.image_id);
    container.image_id = image_id.to_owned();
    let id = status.container_id.as_deref().unwrap_or_default();
    container.container_id = id.split_once("://").map_or(id, |(_, id)| id).to_owned();
}

/// What of the pod a record's `kubernetes` object includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentOptions {
    /// Include `labels`.
    pub labels: bool,
    /// Include `annotations`.
    pub annotations: bool,
}

#[derive(Serialize)]
struct Fragment<'a> {
    pod_name: &'a str,
    namespace_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    container_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    docker_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_labels: Option<&'a BTreeMap<String, String>>,
}

/// Renders the `kubernetes` object for the file `info` describes. With `pod = None` (not
/// known, or metadata off) it holds what the file name carries; fields with no value are
/// left out rather than sent empty.
pub fn render_fragment(
    info: &LogFileInfo,
    pod: Option<&PodMeta>,
    options: FragmentOptions,
) -> String {
    let non_empty = |s: &'_ str| -> bool { !s.is_empty() };
    let container = pod.and_then(|pod| pod.container(&info.container_name));
    let fragment = Fragment {
        pod_name: &info.pod_name,
        namespace_name: &info.namespace,
        pod_id: pod
            .map(|p| p.uid.as_str())
            .or(info.pod_uid.as_deref())
            .filter(|s| non_empty(s)),
        host: pod.map(|p| p.host.as_str()).filter(|s| non_empty(s)),
        container_name: &info.container_name,
        docker_id: info
            .container_id
            .as_deref()
            .or(container.map(|c| c.container_id.as_str()))
            .filter(|s| non_empty(s)),
        container_hash: container
            .map(|c| c.image_id.as_str())
            .filter(|s| non_empty(s)),
        container_image: container.map(|c| c.image.as_str()).filter(|s| non_empty(s)),
        owner: pod.and_then(|p| p.owner.as_ref()),
        labels: pod
            .map(|p| &p.labels)
            .filter(|l| options.labels && !l.is_empty()),
        annotations: pod
            .map(|p| &p.annotations)
            .filter(|a| options.annotations && !a.is_empty()),
        namespace_labels: pod
            .and_then(|p| p.namespace_labels.as_deref())
            .filter(|l| !l.is_empty()),
    };
    // Serializing borrowed strings and string maps cannot fail; the fallback keeps the
    // record valid JSON even so.
    serde_json::to_string(&fragment).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "shop", "uid": "5f1c-77aa",
                "labels": {"app": "web"}, "annotations": {"shiplog.io/parser": "nginx"}
            },
            "spec": {"nodeName": "node-a", "containers": [{"name": "nginx", "image": "nginx:1.27"}]},
            "status": {"containerStatuses": [{
                "name": "nginx", "image": "docker.io/library/nginx:1.27",
                "imageID": "docker-pullable://docker.io/library/nginx@sha256:abc",
                "containerID": "containerd://0123abcd", "ready": true, "restartCount": 0
            }]}
        }))
        .expect("a valid Pod")
    }

    fn info() -> LogFileInfo {
        LogFileInfo {
            namespace: "shop".into(),
            pod_name: "web-1".into(),
            container_name: "nginx".into(),
            container_id: Some("0123abcd".into()),
            pod_uid: None,
        }
    }

    const ALL: FragmentOptions = FragmentOptions {
        labels: true,
        annotations: true,
    };

    #[test]
    fn a_known_pod_fills_every_field_from_spec_and_status() {
        let meta = PodMeta::from_pod(&pod()).expect("named pod");
        let fragment: Value = serde_json::from_str(&render_fragment(&info(), Some(&meta), ALL))
            .expect("fragment is JSON");
        assert_eq!(
            fragment,
            json!({
                "pod_name": "web-1", "namespace_name": "shop", "pod_id": "5f1c-77aa",
                "host": "node-a", "container_name": "nginx", "docker_id": "0123abcd",
                "container_hash": "docker.io/library/nginx@sha256:abc",
                "container_image": "docker.io/library/nginx:1.27",
                "labels": {"app": "web"}, "annotations": {"shiplog.io/parser": "nginx"}
            })
        );
    }

    #[test]
    fn an_unknown_pod_gets_what_the_file_name_carries() {
        let fragment: Value =
            serde_json::from_str(&render_fragment(&info(), None, ALL)).expect("fragment is JSON");
        assert_eq!(
            fragment,
            json!({"pod_name": "web-1", "namespace_name": "shop",
                   "container_name": "nginx", "docker_id": "0123abcd"})
        );
    }

    #[test]
    fn labels_and_annotations_can_be_left_out() {
        let meta = PodMeta::from_pod(&pod()).expect("named pod");
        let none = FragmentOptions {
            labels: false,
            annotations: false,
        };
        let fragment: Value = serde_json::from_str(&render_fragment(&info(), Some(&meta), none))
            .expect("fragment is JSON");
        assert!(fragment.get("labels").is_none() && fragment.get("annotations").is_none());
    }

    #[test]
    fn the_controlling_owner_is_named_and_a_deployments_replica_set_resolves_to_it() {
        let cases = [
            // (owner kind, owner name, controller, pod-template-hash label, want)
            (
                "ReplicaSet",
                "web-7d9f8b6c5",
                true,
                Some("7d9f8b6c5"),
                Some(("Deployment", "web")),
            ),
            (
                "ReplicaSet",
                "my-api-7d9f8b6c5",
                true,
                Some("7d9f8b6c5"),
                Some(("Deployment", "my-api")),
            ),
            (
                "ReplicaSet",
                "standalone",
                true,
                None,
                Some(("ReplicaSet", "standalone")),
            ),
            (
                "ReplicaSet",
                "web-abc",
                true,
                Some("other"),
                Some(("ReplicaSet", "web-abc")),
            ),
            ("StatefulSet", "db", true, None, Some(("StatefulSet", "db"))),
            (
                "DaemonSet",
                "agent",
                true,
                Some("ignored"),
                Some(("DaemonSet", "agent")),
            ),
            ("ConfigMap", "not-a-controller", false, None, None),
        ];
        for (kind, name, controller, hash, want) in cases {
            let mut pod = pod();
            pod.metadata.owner_references = Some(vec![
                serde_json::from_value(json!({
                    "apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u",
                    "controller": controller
                }))
                .expect("a valid owner reference"),
            ]);
            if let Some(hash) = hash {
                let labels = pod.metadata.labels.get_or_insert_default();
                labels.insert("pod-template-hash".into(), hash.into());
            }
            let owner = PodMeta::from_pod(&pod).and_then(|meta| meta.owner);
            let got = owner.as_ref().map(|o| (o.kind.as_str(), o.name.as_str()));
            assert_eq!(got, want, "{kind} {name}");
        }
    }

    #[test]
    fn the_owner_appears_in_the_fragment() {
        let mut meta = PodMeta::from_pod(&pod()).expect("named pod");
        meta.owner = Some(Owner {
            kind: "Deployment".into(),
            name: "web".into(),
        });
        let fragment: Value = serde_json::from_str(&render_fragment(&info(), Some(&meta), ALL))
            .expect("fragment is JSON");
        assert_eq!(
            fragment["owner"],
            json!({"kind": "Deployment", "name": "web"})
        );
    }

    #[test]
    fn a_pod_without_status_still_names_its_images_from_the_spec() {
        let mut pod = pod();
        pod.status = None;
        let meta = PodMeta::from_pod(&pod).expect("named pod");
        assert_eq!(
            meta.container("nginx").map(|c| c.image.as_str()),
            Some("nginx:1.27")
        );
    }
}
