//! Owns `deploy/`, validated offline: every kustomization lists files that exist, every
//! manifest is a Kubernetes object with no field its type does not know, the objects of
//! each deployment (the base and every example overlay, rendered the way kustomize would)
//! agree with each other and with the shiplog config they mount, the base config passes
//! the real `shiplog check`, and the image's `Dockerfile` runs what the DaemonSet expects.
//!
//! No cluster and no kustomize binary: rendering is done here for the few kustomize
//! features `deploy/` uses (resources, patches of maps, images), and a kustomization
//! using any other refuses to load, so the test never checks something else than what
//! `kubectl apply -k` would apply.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The part of shiplog's memory that is not in-flight records, for the memory limit check:
/// about 20 MiB measured at a small `memory_limit` (README, Performance), a full pod cache
/// (under 9 MiB), the API client, rounded up.
const MEMORY_BESIDES_RECORDS: u64 = 64 << 20;

// ---------------------------------------------------------------------------------------
// The files

/// `deploy/` in this checkout.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// `path` relative to the repository, for messages.
fn shown(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `deploy/` and every folder below it, `deploy/` first.
fn folders() -> Vec<PathBuf> {
    let mut folders = Vec::new();
    let mut pending = vec![deploy_dir()];
    while let Some(dir) = pending.pop() {
        let mut children: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("deploy/ is readable")
            .map(|entry| entry.expect("deploy/ is readable").path())
            .filter(|path| path.is_dir())
            .collect();
        children.sort();
        pending.extend(children.into_iter().rev());
        folders.push(dir);
    }
    folders
}

/// Every folder under `deploy/` holding a `kustomization.yaml`, `deploy/` first.
fn kustomization_dirs() -> Vec<PathBuf> {
    let folders = folders().into_iter();
    folders
        .filter(|dir| dir.join("kustomization.yaml").is_file())
        .collect()
}

/// Every `*.yaml` file under `deploy/`.
fn yaml_files() -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for dir in folders() {
        for entry in fs::read_dir(&dir).expect("deploy/ is readable") {
            let path = entry.expect("deploy/ is readable").path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                files.insert(path);
            }
        }
    }
    files
}

/// The YAML documents of `path`, as JSON values (empty documents skipped).
fn documents(path: &Path) -> Vec<Value> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: cannot read: {e}", shown(path)));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", shown(path)))
        })
        .filter(|document| !document.is_null())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Kustomizations, as far as deploy/ uses them

/// A `kustomization.yaml`. Unknown fields are refused: a feature this test does not
/// render would make it check something else than what kustomize applies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    patches: Vec<PatchRef>,
    #[serde(default)]
    images: Vec<ImageRef>,
}

/// A strategic merge patch, by file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRef {
    path: String,
}

/// An `images:` entry: the image `name` containers use, given another name or tag.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImageRef {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
}

fn kustomization(dir: &Path) -> Kustomization {
    let path = dir.join("kustomization.yaml");
    let [document] = <[Value; 1]>::try_from(documents(&path))
        .unwrap_or_else(|_| panic!("{}: expected one document", shown(&path)));
    let kustomization: Kustomization =
        serde_json::from_value(document).unwrap_or_else(|e| panic!("{}: {e}", shown(&path)));
    assert_eq!(
        (
            kustomization.api_version.as_str(),
            kustomization.kind.as_str()
        ),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
        "{}",
        shown(&path)
    );
    kustomization
}

/// A resource entry: a manifest file, or a folder holding a kustomization (a base).
enum Resource {
    File(PathBuf),
    Base(PathBuf),
}

/// Resolves `entry` of the kustomization in `dir`, insisting that it exists and that a
/// base does not contain the overlay (kustomize refuses that as a cycle).
fn resource(dir: &Path, entry: &str) -> Resource {
    let path = dir.join(entry);
    let listed = format!(
        "{}: resource {entry:?}",
        shown(&dir.join("kustomization.yaml"))
    );
    let canonical = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{listed}: {e}"));
    if canonical.is_file() {
        return Resource::File(canonical);
    }
    assert!(
        canonical.join("kustomization.yaml").is_file(),
        "{listed}: a folder without kustomization.yaml"
    );
    assert!(
        !dir.canonicalize()
            .expect("an existing folder")
            .starts_with(&canonical),
        "{listed}: a base that contains its overlay (kustomize refuses the cycle)"
    );
    Resource::Base(canonical)
}

/// The files `dir`'s kustomization lists (resources and patches), each checked to exist.
fn listed_files(dir: &Path) -> Vec<PathBuf> {
    let kustomization = kustomization(dir);
    let mut files = Vec::new();
    for entry in &kustomization.resources {
        if let Resource::File(path) = resource(dir, entry) {
            files.push(path);
        }
    }
    for patch in &kustomization.patches {
        let path = dir.join(&patch.path);
        assert!(
            path.is_file(),
            "{}: patch {:?} does not exist",
            shown(&dir.join("kustomization.yaml")),
            patch.path
        );
        files.push(path.canonicalize().expect("an existing file"));
    }
    files
}

/// The objects `kubectl apply -k dir` would apply: resources in order, bases rendered
/// first, then this kustomization's patches and images.
fn render(dir: &Path) -> Vec<Value> {
    let kustomization = kustomization(dir);
    let mut objects = Vec::new();
    for entry in &kustomization.resources {
        match resource(dir, entry) {
            Resource::Base(base) => objects.extend(render(&base)),
            Resource::File(file) => {
                for object in documents(&file) {
                    check_object(&object, &shown(&file));
                    objects.push(object);
                }
            }
        }
    }
    for patch in &kustomization.patches {
        let file = dir.join(&patch.path);
        for object in documents(&file) {
            check_object(&object, &shown(&file));
            apply_patch(&mut objects, &object, &shown(&file));
        }
    }
    for image in &kustomization.images {
        set_image(&mut objects, image);
    }
    objects
}

/// Merges a strategic merge patch into the object of the same kind, name and namespace.
/// Maps merge alike in a strategic merge patch and a JSON merge patch, which this does;
/// lists do not (kustomize merges some by key), so a patch holding a list is refused.
fn apply_patch(objects: &mut [Value], patch: &Value, origin: &str) {
    let identity = |object: &Value| {
        (
            object["kind"].clone(),
            object["metadata"]["name"].clone(),
            object["metadata"]["namespace"].clone(),
        )
    };
    let target = objects
        .iter_mut()
        .find(|object| identity(object) == identity(patch))
        .unwrap_or_else(|| panic!("{origin}: patches no object of the base"));
    merge(target, patch, origin);
    check_object(target, &format!("{origin}, applied"));
}

fn merge(target: &mut Value, patch: &Value, origin: &str) {
    let (Value::Object(target), Value::Object(patch)) = (target, patch) else {
        unreachable!("merge is called on objects only");
    };
    for (key, value) in patch {
        match (target.get_mut(key), value) {
            (_, Value::Array(_)) => panic!(
                "{origin}: {key:?} is a list; this test merges maps only (extend apply_patch)"
            ),
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                merge(existing, value, origin);
            }
            (_, Value::Null) => {
                target.remove(key);
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The image's name without its tag or digest.
fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => without_digest,
    }
}

/// Applies an `images:` entry to the DaemonSets' containers, as kustomize does.
fn set_image(objects: &mut [Value], image: &ImageRef) {
    for object in objects.iter_mut().filter(|o| o["kind"] == "DaemonSet") {
        let containers = &mut object["spec"]["template"]["spec"]["containers"];
        for container in containers.as_array_mut().into_iter().flatten() {
            let current = container["image"].as_str().unwrap_or_default().to_owned();
            if image_name(&current) != image.name {
                continue;
            }
            let name = image.new_name.as_deref().unwrap_or(&image.name);
            let tag = match (&image.new_tag, current.rsplit_once(':')) {
                (Some(tag), _) => format!(":{tag}"),
                (None, Some((_, tag))) if !tag.contains('/') => format!(":{tag}"),
                (None, _) => String::new(),
            };
            container["image"] = Value::String(format!("{name}{tag}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Objects, typed, with unknown fields detected

/// Deserializes `object` into the k8s-openapi type of its `kind` and insists that
/// serializing it gives the same document back. k8s-openapi ignores fields it does not
/// know, so a misspelt field (`readOnlyRootFilsystem`) would otherwise pass unseen.
fn check_object(object: &Value, origin: &str) {
    let kind = object["kind"].as_str().unwrap_or_default();
    let origin = format!("{origin}: {kind} {}", object["metadata"]["name"]);
    match kind {
        "Namespace" => round_trip::<Namespace>(object, &origin),
        "ServiceAccount" => round_trip::<ServiceAccount>(object, &origin),
        "ClusterRole" => round_trip::<ClusterRole>(object, &origin),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(object, &origin),
        "Role" => round_trip::<Role>(object, &origin),
        "RoleBinding" => round_trip::<RoleBinding>(object, &origin),
        "ConfigMap" => round_trip::<ConfigMap>(object, &origin),
        "DaemonSet" => round_trip::<DaemonSet>(object, &origin),
        other => panic!("{origin}: kind {other:?} is not one deploy/ is expected to hold"),
    }
}

fn round_trip<T: DeserializeOwned + serde::Serialize>(object: &Value, origin: &str) {
    let typed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{origin}: does not fit its type: {e}"));
    let back = serde_json::to_value(&typed).expect("a typed object serializes");
    if let Some(difference) = first_difference(object, &back, "") {
        panic!("{origin}: {difference}");
    }
}

/// Where `written` and `typed` (the same document through its type) first differ.
fn first_difference(written: &Value, typed: &Value, at: &str) -> Option<String> {
    match (written, typed) {
        (Value::Object(w), Value::Object(t)) => {
            for (key, value) in w {
                let here = format!("{at}.{key}");
                match t.get(key) {
                    None => return Some(format!("{here}: a field its type does not know")),
                    Some(typed) => {
                        if let Some(found) = first_difference(value, typed, &here) {
                            return Some(found);
                        }
                    }
                }
            }
            let added = t.keys().find(|key| !w.contains_key(*key))?;
            Some(format!("{at}.{added}: added by its type"))
        }
        (Value::Array(w), Value::Array(t)) if w.len() == t.len() => {
            let mut pairs = w.iter().zip(t).enumerate();
            pairs.find_map(|(i, (w, t))| first_difference(w, t, &format!("{at}[{i}]")))
        }
        _ if written == typed => None,
        _ => Some(format!("{at}: written {written}, read as {typed}")),
    }
}

// ---------------------------------------------------------------------------------------
// A deployment: the rendered objects of one kustomization, and what they say

struct Deployment {
    /// The kustomization's folder, for messages.
    name: String,
    objects: Vec<Value>,
}

/// Every kustomization under `deploy/`, rendered: `deploy/`, its base, every example.
fn deployments() -> Vec<Deployment> {
    kustomization_dirs()
        .iter()
        .map(|dir| Deployment {
            name: shown(dir),
            objects: render(dir),
        })
        .collect()
}

impl Deployment {
    fn all<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        let objects = self.objects.iter().filter(|object| object["kind"] == kind);
        objects
            .map(|object| serde_json::from_value(object.clone()).expect("checked when rendered"))
            .collect()
    }

    fn only<T: DeserializeOwned>(&self, kind: &str) -> T {
        let mut all = self.all::<T>(kind);
        assert_eq!(all.len(), 1, "{}: expected one {kind}", self.name);
        all.remove(0)
    }

    fn daemonset(&self) -> DaemonSet {
        self.only("DaemonSet")
    }

    fn namespace(&self) -> String {
        let daemonset = self.daemonset();
        daemonset
            .metadata
            .namespace
            .expect("the DaemonSet names its namespace")
    }

    fn pod(&self) -> PodSpec {
        let spec = self.daemonset().spec.expect("a spec");
        spec.template.spec.expect("a pod spec")
    }

    /// The pod's one container.
    fn container(&self) -> Container {
        let [container] = <[Container; 1]>::try_from(self.pod().containers)
            .unwrap_or_else(|_| panic!("{}: expected one container", self.name));
        container
    }

    fn config_map(&self, name: &str) -> ConfigMap {
        self.all::<ConfigMap>("ConfigMap")
            .into_iter()
            .find(|map| map.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no ConfigMap {name:?}", self.name))
    }

    /// The container's mount at `path` and its volume.
    fn mount_at(&self, path: &Path) -> Option<(VolumeMount, Volume)> {
        let mounts = self.container().volume_mounts.unwrap_or_default();
        let mount = mounts
            .into_iter()
            .find(|mount| Path::new(&mount.mount_path) == path)?;
        let volume = self
            .pod()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|volume| volume.name == mount.name)
            .unwrap_or_else(|| panic!("{}: no volume {:?}", self.name, mount.name));
        Some((mount, volume))
    }

    /// The ConfigMap mounted at `path`.
    fn config_map_at(&self, path: &Path) -> ConfigMap {
        let (_, volume) = self
            .mount_at(path)
            .unwrap_or_else(|| panic!("{}: nothing is mounted at {}", self.name, path.display()));
        let source = volume
            .config_map
            .unwrap_or_else(|| panic!("{}: {} is not a ConfigMap", self.name, path.display()));
        self.config_map(&source.name)
    }

    /// Where `--config` points in the container's arguments.
    fn config_path(&self) -> PathBuf {
        let args = self.container().args.unwrap_or_default();
        let at = args.iter().position(|arg| arg == "--config");
        let path = at.and_then(|at| args.get(at + 1));
        PathBuf::from(path.unwrap_or_else(|| panic!("{}: no --config argument", self.name)))
    }

    /// The text of the config file the container reads.
    fn config_text(&self) -> String {
        let path = self.config_path();
        let file = path.file_name().and_then(|name| name.to_str());
        let file = file.unwrap_or_else(|| panic!("{}: --config names no file", self.name));
        let map = self.config_map_at(path.parent().expect("a file has a folder"));
        let data = map.data.unwrap_or_default();
        data.get(file)
            .unwrap_or_else(|| panic!("{}: the config ConfigMap has no key {file:?}", self.name))
            .clone()
    }

    fn config(&self) -> ShiplogConfig {
        let table = toml::from_str(&self.config_text())
            .unwrap_or_else(|e| panic!("{}: the config is not TOML: {e}", self.name));
        ShiplogConfig {
            deployment: self.name.clone(),
            table,
        }
    }
}

/// The keys of a deployed config the manifests depend on. Deployed configs set each of
/// them explicitly, so whoever edits one sees the key the DaemonSet is sized from.
struct ShiplogConfig {
    deployment: String,
    table: toml::Table,
}

impl ShiplogConfig {
    /// The value at `dotted`, when the config sets it.
    fn value_opt(&self, dotted: &str) -> Option<&toml::Value> {
        let mut keys = dotted.split('.');
        let first = keys.next().and_then(|key| self.table.get(key));
        keys.fold(first, |value, key| value.and_then(|v| v.get(key)))
    }

    fn value(&self, dotted: &str) -> &toml::Value {
        self.value_opt(dotted).unwrap_or_else(|| {
            panic!(
                "{}: the config must set {dotted} itself: the DaemonSet depends on it",
                self.deployment
            )
        })
    }

    fn text(&self, dotted: &str) -> &str {
        self.value(dotted).as_str().expect("a string")
    }

    fn strings(&self, dotted: &str) -> Vec<String> {
        let list = self.value(dotted).as_array().expect("a list");
        list.iter()
            .map(|value| value.as_str().expect("strings").to_owned())
            .collect()
    }

    fn duration(&self, dotted: &str) -> Duration {
        humantime::parse_duration(self.text(dotted)).expect("a duration")
    }

    fn size(&self, dotted: &str) -> u64 {
        let text = self.text(dotted);
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let scale = match unit {
            "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => panic!(
                "{}: {dotted}: unit {other:?} not understood here",
                self.deployment
            ),
        };
        number.parse::<u64>().expect("a whole number") * scale
    }

    /// Every `${NAME}` (or `${NAME:-default}`) the config file reads.
    fn variables(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let escaped = rest[..start].ends_with('$');
            let after = &rest[start + 2..];
            let end = after.find('}').expect("a closed ${...}");
            if !escaped {
                let name = after[..end].split(":-").next().unwrap_or_default();
                names.insert(name.to_owned());
            }
            rest = &after[end..];
        }
        names
    }
}

/// A Kubernetes memory quantity (`256Mi`, `1Gi`, `100000000`) in bytes.
fn quantity_bytes(quantity: &str) -> u64 {
    let split = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, unit) = quantity.split_at(split);
    let scale: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        other => panic!("memory unit {other:?} not understood here"),
    };
    number.parse::<u64>().expect("a whole number") * scale
}

// ---------------------------------------------------------------------------------------
// The files and the objects

#[test]
fn every_file_a_kustomization_lists_exists_and_every_manifest_is_listed() {
    let mut listed = BTreeSet::new();
    for dir in kustomization_dirs() {
        listed.insert(dir.join("kustomization.yaml").canonicalize().unwrap());
        listed.extend(listed_files(&dir));
    }
    let files: BTreeSet<PathBuf> = yaml_files()
        .iter()
        .map(|file| file.canonicalize().unwrap())
        .collect();
    let unlisted: Vec<String> = files.difference(&listed).map(|f| shown(f)).collect();
    assert!(
        unlisted.is_empty(),
        "YAML files no kustomization applies: {unlisted:?}"
    );
    let dirs: Vec<String> = kustomization_dirs().iter().map(|d| shown(d)).collect();
    for expected in [
        "deploy",
        "deploy/examples/kafka",
        "deploy/examples/cloudwatch",
    ] {
        assert!(
            dirs.iter().any(|d| d == expected),
            "no kustomization in {expected}"
        );
    }
}

#[test]
fn every_manifest_is_a_kubernetes_object_without_unknown_fields() {
    for file in yaml_files() {
        if file.ends_with("kustomization.yaml") {
            continue;
        }
        let objects = documents(&file);
        assert!(!objects.is_empty(), "{}: no object", shown(&file));
        for object in &objects {
            check_object(object, &shown(&file));
        }
    }
}

#[test]
fn a_misspelt_field_is_caught_by_the_round_trip() {
    let written: Value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "shiplog", "namespace": "shiplog"},
        "automountServiceAccountTokn": true,
    });
    let typed: ServiceAccount = serde_json::from_value(written.clone()).unwrap();
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        first_difference(&written, &back, ""),
        Some(".automountServiceAccountTokn: a field its type does not know".to_owned())
    );
}

#[test]
fn every_deployment_holds_the_objects_shiplog_needs_and_nothing_else() {
    for deployment in deployments() {
        let kinds: Vec<&str> = deployment
            .objects
            .iter()
            .map(|object| object["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "ConfigMap",
                "ConfigMap",
                "DaemonSet"
            ],
            "{}",
            deployment.name
        );
        let namespace: Namespace = deployment.only("Namespace");
        assert_eq!(
            namespace.metadata.name,
            Some(deployment.namespace()),
            "{}: the DaemonSet lives in the Namespace it creates",
            deployment.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// The DaemonSet and the config

#[test]
fn the_node_log_folders_are_mounted_read_only_where_the_node_has_them() {
    for deployment in deployments() {
        for folder in ["/var/log", "/var/lib/docker/containers"] {
            let (mount, volume) = deployment
                .mount_at(Path::new(folder))
                .unwrap_or_else(|| panic!("{}: {folder} is not mounted", deployment.name));
            let host = volume.host_path.expect("a hostPath volume");
            // Log links are absolute: the folder must sit at the node's path.
            assert_eq!(host.path, folder, "{}", deployment.name);
            assert_eq!(mount.read_only, Some(true), "{}: {folder}", deployment.name);
        }
        for glob in deployment.config().strings("tail.include") {
            assert!(
                glob.starts_with("/var/log/"),
                "{}: tail.include {glob:?} is outside the mounted /var/log",
                deployment.name
            );
        }
    }
}

#[test]
fn the_state_database_lives_in_a_host_folder_mounted_read_write() {
    for deployment in deployments() {
        let config = deployment.config();
        let state = PathBuf::from(config.text("state.path"));
        let folder = state.parent().expect("state.path is a file in a folder");
        let (mount, volume) = deployment.mount_at(folder).unwrap_or_else(|| {
            panic!(
                "{}: the folder of state.path ({}) is not mounted",
                deployment.name,
                folder.display()
            )
        });
        let host = volume
            .host_path
            .expect("a hostPath volume, to outlive the pod");
        assert_eq!(
            host.type_.as_deref(),
            Some("DirectoryOrCreate"),
            "{}",
            deployment.name
        );
        assert_ne!(mount.read_only, Some(true), "{}", deployment.name);
    }
}

#[test]
fn node_and_pod_names_come_from_the_downward_api() {
    let expected = [
        ("NODE_NAME", "spec.nodeName"),
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ];
    for deployment in deployments() {
        let env = deployment.container().env.unwrap_or_default();
        for (name, field) in expected {
            let var = env.iter().find(|var| var.name == name);
            let path = var
                .and_then(|var| var.value_from.as_ref())
                .and_then(|from| from.field_ref.as_ref())
                .map(|field_ref| field_ref.field_path.as_str());
            assert_eq!(path, Some(field), "{}: {name}", deployment.name);
        }
        let config = deployment.config();
        assert_eq!(config.text("kubernetes.node_name"), "${NODE_NAME}");
        let set: BTreeSet<&str> = env.iter().map(|var| var.name.as_str()).collect();
        for variable in ShiplogConfig::variables(&deployment.config_text()) {
            assert!(
                set.contains(variable.as_str()),
                "{}: the config reads ${{{variable}}}, which the container does not set",
                deployment.name
            );
        }
    }
}

#[test]
fn shiplogs_own_pods_are_excluded_by_an_annotation_the_config_recognises() {
    for deployment in deployments() {
        let config = deployment.config();
        let prefixes = match config.value_opt("kubernetes.annotation_prefixes") {
            Some(_) => config.strings("kubernetes.annotation_prefixes"),
            None => vec!["shiplog.io".to_owned(), "fluentbit.io".to_owned()],
        };
        let annotations = deployment
            .daemonset()
            .spec
            .and_then(|spec| spec.template.metadata)
            .and_then(|metadata| metadata.annotations)
            .unwrap_or_default();
        assert!(
            prefixes.iter().any(|prefix| {
                annotations
                    .get(&format!("{prefix}/exclude"))
                    .map(String::as_str)
                    == Some("true")
            }),
            "{}: the pod template has no <prefix>/exclude: \"true\" for prefixes {prefixes:?}",
            deployment.name
        );
    }
}

#[test]
fn the_probes_reach_the_server_on_the_port_the_config_listens_on() {
    for deployment in deployments() {
        let config = deployment.config();
        let listen: SocketAddr = config.text("server.listen").parse().expect("IP:PORT");
        assert!(
            listen.ip().is_unspecified(),
            "{}: the kubelet probes the pod's IP, so server.listen must be 0.0.0.0",
            deployment.name
        );
        let container = deployment.container();
        let ports = container.ports.clone().unwrap_or_default();
        let port = ports
            .iter()
            .find(|port| port.name.as_deref() == Some("http-metrics"))
            .unwrap_or_else(|| panic!("{}: no port named http-metrics", deployment.name));
        assert_eq!(
            port.container_port,
            i32::from(listen.port()),
            "{}",
            deployment.name
        );
        let probes = [
            ("liveness", container.liveness_probe, "/healthz"),
            ("readiness", container.readiness_probe, "/readyz"),
        ];
        for (which, probe, path) in probes {
            let get = probe
                .and_then(|probe| probe.http_get)
                .unwrap_or_else(|| panic!("{}: no HTTP {which} probe", deployment.name));
            assert_eq!(
                get.path.as_deref(),
                Some(path),
                "{}: {which}",
                deployment.name
            );
            assert_eq!(
                get.port,
                IntOrString::String("http-metrics".into()),
                "{}: {which}",
                deployment.name
            );
        }
    }
}

#[test]
fn the_container_is_not_privileged_and_holds_no_capability() {
    for deployment in deployments() {
        let security = deployment
            .container()
            .security_context
            .unwrap_or_else(|| panic!("{}: no securityContext", deployment.name));
        assert_eq!(security.privileged, Some(false), "{}", deployment.name);
        assert_eq!(
            security.allow_privilege_escalation,
            Some(false),
            "{}",
            deployment.name
        );
        assert_eq!(
            security.read_only_root_filesystem,
            Some(true),
            "{}",
            deployment.name
        );
        let capabilities = security.capabilities.unwrap_or_default();
        assert_eq!(
            capabilities.drop,
            Some(vec!["ALL".to_owned()]),
            "{}",
            deployment.name
        );
        // uid 0 reads the root-owned log files as their owner: no capability is needed
        // (the reasoning is beside the securityContext in daemonset.yaml).
        assert_eq!(capabilities.add.unwrap_or_default(), Vec::<String>::new());
        assert_eq!(security.run_as_user, Some(0), "{}", deployment.name);
    }
}

#[test]
fn the_grace_period_outlasts_the_shutdown_drain() {
    for deployment in deployments() {
        let drain = deployment.config().duration("pipeline.shutdown_timeout");
        let grace = deployment
            .pod()
            .termination_grace_period_seconds
            .unwrap_or(30);
        assert!(
            Duration::from_secs(u64::try_from(grace).unwrap()) > drain,
            "{}: terminationGracePeriodSeconds {grace} must exceed shutdown_timeout {drain:?}",
            deployment.name
        );
    }
}

#[test]
fn the_memory_limit_holds_the_in_flight_budget_twice_over_and_the_rest() {
    for deployment in deployments() {
        let budget = deployment.config().size("pipeline.memory_limit");
        let resources = deployment.container().resources.unwrap_or_default();
        let limit = resources.limits.unwrap_or_default();
        let request = resources.requests.unwrap_or_default();
        let limit = quantity_bytes(&limit.get("memory").expect("a memory limit").0);
        let request = quantity_bytes(&request.get("memory").expect("a memory request").0);
        // Records in flight may be held twice: by the pipeline and by a sink client's own
        // copy until delivery (librdkafka's).
        let needed = 2 * budget + MEMORY_BESIDES_RECORDS;
        assert!(
            limit >= needed,
            "{}: a memory limit of {limit} bytes; pipeline.memory_limit {budget} needs {needed}",
            deployment.name
        );
        assert!(request <= limit, "{}", deployment.name);
    }
}

#[test]
fn it_runs_on_every_node_first_and_one_at_a_time() {
    for deployment in deployments() {
        let pod = deployment.pod();
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical"),
            "{}",
            deployment.name
        );
        let tolerations = pod.tolerations.unwrap_or_default();
        for effect in ["NoSchedule", "NoExecute"] {
            let tolerated = tolerations.iter().any(|t| {
                t.operator.as_deref() == Some("Exists")
                    && t.key.as_deref().unwrap_or_default().is_empty()
                    && t.effect
                        .as_deref()
                        .is_none_or(|e| e.is_empty() || e == effect)
                    && t.toleration_seconds.is_none()
            });
            assert!(
                tolerated,
                "{}: every {effect} taint is tolerated",
                deployment.name
            );
        }
        let strategy = deployment
            .daemonset()
            .spec
            .unwrap()
            .update_strategy
            .unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let rolling = strategy.rolling_update.expect("rollingUpdate");
        assert!(rolling.max_unavailable.is_some(), "{}", deployment.name);
        // Two shiplogs on one node would both ship every line.
        assert!(
            matches!(rolling.max_surge, None | Some(IntOrString::Int(0))),
            "{}: maxSurge must be 0",
            deployment.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// RBAC, config mounts, image

/// Every (API group, resource, verb) `rules` grant; a rule naming objects or URLs fails.
fn grants(rules: Vec<PolicyRule>, origin: &str) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in rules {
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{origin}: rules name resources, not objects or URLs"
        );
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    granted
}

fn grant(group: &str, resource: &str, verbs: &[&str]) -> Vec<(String, String, String)> {
    verbs
        .iter()
        .map(|verb| (group.to_owned(), resource.to_owned(), (*verb).to_owned()))
        .collect()
}

#[test]
fn the_cluster_role_grants_only_reading_pods_namespaces_and_events() {
    for deployment in deployments() {
        let role: ClusterRole = deployment.only("ClusterRole");
        assert!(role.aggregation_rule.is_none(), "{}", deployment.name);
        let granted = grants(role.rules.unwrap_or_default(), &deployment.name);
        let read = ["get", "list", "watch"];
        let expected: BTreeSet<_> = [
            grant("", "pods", &read),
            grant("", "namespaces", &read),
            grant("events.k8s.io", "events", &read),
        ]
        .concat()
        .into_iter()
        .collect();
        assert_eq!(granted, expected, "{}", deployment.name);
    }
}

#[test]
fn the_lease_that_elects_the_events_shipper_is_writable_only_in_shiplogs_namespace() {
    for deployment in deployments() {
        let role: Role = deployment.only("Role");
        assert_eq!(role.metadata.namespace, Some(deployment.namespace()));
        let granted = grants(role.rules.unwrap_or_default(), &deployment.name);
        let expected: BTreeSet<_> = grant(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update"],
        )
        .into_iter()
        .collect();
        assert_eq!(granted, expected, "{}", deployment.name);
        let binding: RoleBinding = deployment.only("RoleBinding");
        let account: ServiceAccount = deployment.only("ServiceAccount");
        assert_eq!(binding.metadata.namespace, Some(deployment.namespace()));
        assert_eq!(
            (binding.role_ref.kind.as_str(), Some(&binding.role_ref.name)),
            ("Role", role.metadata.name.as_ref())
        );
        let bound = binding.subjects.unwrap_or_default().iter().any(|subject| {
            subject.kind == "ServiceAccount"
                && Some(&subject.name) == account.metadata.name.as_ref()
                && subject.namespace == account.metadata.namespace
        });
        assert!(
            bound,
            "{}: the ServiceAccount is not bound",
            deployment.name
        );
        // The events side elects over a Lease in the namespace this Role covers.
        let config = deployment.config();
        if let Some(namespace) = config.value_opt("events.lease_namespace") {
            assert_eq!(namespace.as_str(), Some(deployment.namespace().as_str()));
        }
    }
}

#[test]
fn the_binding_grants_the_role_to_the_service_account_the_pods_run_as() {
    for deployment in deployments() {
        let role: ClusterRole = deployment.only("ClusterRole");
        let binding: ClusterRoleBinding = deployment.only("ClusterRoleBinding");
        let account: ServiceAccount = deployment.only("ServiceAccount");
        let pod_account = deployment.pod().service_account_name;
        assert_eq!(pod_account, account.metadata.name, "{}", deployment.name);
        assert_eq!(account.metadata.namespace, Some(deployment.namespace()));
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
        assert_eq!(Some(binding.role_ref.name), role.metadata.name);
        let subjects = binding.subjects.unwrap_or_default();
        let bound = subjects.iter().any(|subject| {
            subject.kind == "ServiceAccount"
                && Some(&subject.name) == account.metadata.name.as_ref()
                && subject.namespace == account.metadata.namespace
        });
        assert!(
            bound,
            "{}: the ServiceAccount is not bound",
            deployment.name
        );
    }
}

#[test]
fn the_config_and_parser_maps_are_mounted_where_shiplog_looks() {
    for deployment in deployments() {
        let config_path = deployment.config_path();
        assert!(config_path.is_absolute(), "{}", deployment.name);
        let folder = config_path.parent().unwrap();
        let (mount, _) = deployment.mount_at(folder).unwrap();
        assert_eq!(mount.read_only, Some(true), "{}", deployment.name);
        // config_text() finds the file through the mount at --config's folder.
        assert!(!deployment.config_text().is_empty());
        // Relative parser folders are read from the config file's folder.
        for dir in deployment.config().strings("parsers.dirs") {
            let at = folder.join(&dir);
            let map = deployment.config_map_at(&at);
            for key in map.data.unwrap_or_default().keys() {
                assert!(
                    key.ends_with(".toml"),
                    "{}: parser file {key:?}",
                    deployment.name
                );
            }
        }
    }
}

#[test]
fn the_image_is_named_in_kustomize_images_and_runs_the_daemonsets_config() {
    let base = deploy_dir().join("base");
    let images = kustomization(&base).images;
    let manifest: DaemonSet = documents(&base.join("daemonset.yaml"))
        .into_iter()
        .find(|object| object["kind"] == "DaemonSet")
        .map(|object| serde_json::from_value(object).unwrap())
        .unwrap();
    let written = manifest.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert!(
        images
            .iter()
            .any(|image| image.name == image_name(&written)),
        "kustomize images: must name {written:?}, or it never sets the tag"
    );
    let dockerfile = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
        .expect("a Dockerfile");
    let instruction = |name: &str| -> Vec<String> {
        let line = dockerfile
            .lines()
            .rfind(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("Dockerfile: no {name}"));
        serde_json::from_str(&line[name.len()..]).expect("exec form: a JSON list")
    };
    assert_eq!(instruction("ENTRYPOINT"), ["/usr/local/bin/shiplog"]);
    for deployment in deployments() {
        let args = deployment.container().args.unwrap_or_default();
        assert_eq!(
            instruction("CMD"),
            args,
            "{}: the image's default arguments and the DaemonSet's differ",
            deployment.name
        );
        assert!(
            deployment.container().command.is_none(),
            "{}",
            deployment.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// The real binary

/// The environment the container gets: its literal values, and a stand-in for each
/// downward-API field.
fn pod_environment(deployment: &Deployment) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for var in deployment.container().env.unwrap_or_default() {
        let field = var
            .value_from
            .and_then(|from| from.field_ref)
            .map(|field_ref| field_ref.field_path);
        let value = match field.as_deref() {
            None => var.value.unwrap_or_default(),
            Some("spec.nodeName") => "node-1".to_owned(),
            Some("metadata.name") => "shiplog-x7k2p".to_owned(),
            Some("metadata.namespace") => deployment.namespace(),
            Some(other) => panic!("{}: no stand-in for field {other}", deployment.name),
        };
        vars.insert(var.name, value);
    }
    vars
}

#[test]
fn every_config_passes_shiplog_check_in_the_pods_file_layout() {
    for deployment in deployments() {
        check_in_pod_layout(&deployment);
    }
}

/// Runs `shiplog check` on `deployment`'s config laid out as its pod sees it.
fn check_in_pod_layout(deployment: &Deployment) {
    // What the pod has under the config's folder: each ConfigMap mounted there or below,
    // its keys as files. `check` makes the checks a start makes, so the other mounts (the
    // node's log and state folders) must exist too: they are made under a stand-in root,
    // and the config's paths into them are moved there. The API is not contacted; a
    // kubeconfig naming the in-cluster address stands in for the service account.
    let pod_root = tempfile::tempdir().expect("temp dir");
    let config_path = deployment.config_path();
    let config_dir = config_path.parent().expect("a folder");
    let mut host_mounts = Vec::new();
    for mount in deployment.container().volume_mounts.unwrap_or_default() {
        let Ok(below) = Path::new(&mount.mount_path).strip_prefix(config_dir) else {
            host_mounts.push(mount.mount_path);
            continue;
        };
        let here = pod_root.path().join(below);
        fs::create_dir_all(&here).expect("mkdir");
        let map = deployment.config_map_at(Path::new(&mount.mount_path));
        for (key, text) in map.data.unwrap_or_default() {
            fs::write(here.join(key), text).expect("write");
        }
    }
    let config = pod_root
        .path()
        .join(config_path.file_name().expect("a file name"));
    let node_root = pod_root.path().join("node");
    let mut text = fs::read_to_string(&config).expect("the config");
    for mount in host_mounts {
        fs::create_dir_all(node_root.join(mount.trim_start_matches('/'))).expect("mkdir");
        let moved = format!("\"{}{mount}", node_root.display());
        text = text
            .replace(&format!("\"{mount}/"), &format!("{moved}/"))
            .replace(&format!("\"{mount}\""), &format!("{moved}\""));
    }
    fs::write(&config, text).expect("write");
    let kubeconfig = pod_root.path().join("in-cluster.kubeconfig");
    fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: pod\n\
         clusters: [{name: pod, cluster: {server: \"https://kubernetes.default.svc\"}}]\n\
         users: [{name: pod, user: {token: stand-in}}]\n\
         contexts: [{name: pod, context: {cluster: pod, user: pod}}]\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["check", "--config", config.to_str().expect("UTF-8")])
        .env_clear()
        .envs(pod_environment(deployment))
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("shiplog runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "shiplog check refused the config of {}: {}\n{stdout}",
        deployment.name,
        util::stderr(&output)
    );
    assert!(stdout.contains("metadata: from the Kubernetes API, pods of node \"node-1\""));
    assert!(
        stdout.contains("server:   http://0.0.0.0:2020/metrics"),
        "{stdout}"
    );
}
