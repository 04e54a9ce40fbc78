//! What a container log file's path says about its pod, by the kubelet's naming rules.
//!
//! `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log` is a symlink to
//! `/var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<restart>.log`; see the kubelet's
//! `BuildContainerLogsDirectory` and `buildContainerLogsPath` (pkg/kubelet/kuberuntime/
//! helpers.go). Pod and namespace names cannot contain `_`, which makes both forms
//! unambiguous. Pure: this reads names, never the file system.

use std::path::Path;

/// The pod identity a log file's path carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFileInfo {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The container's name.
    pub container_name: String,
    /// The runtime's 64-hex container id (from the `/var/log/containers` name only).
    pub container_id: Option<String>,
    /// The pod's uid (from the `/var/log/pods` path only).
    pub pod_uid: Option<String>,
}

impl LogFileInfo {
    /// Reads the identity from the path a file was found at and the file it resolves to.
    /// Each form fills what it knows; `None` when neither follows the kubelet's naming.
    pub fn from_paths(found: &Path, target: &Path) -> Option<LogFileInfo> {
        let by_link = Self::from_container_link(found);
        let by_pods = Self::from_pods_path(target).or_else(|| Self::from_pods_path(found));
        match (by_link, by_pods) {
            (Some(mut link), Some(pods)) => {
                if link.namespace == pods.namespace && link.pod_name == pods.pod_name {
                    link.pod_uid = pods.pod_uid;
                }
                Some(link)
            }
            (link, pods) => link.or(pods),
        }
    }

    /// `<pod>_<namespace>_<container>-<64 hex>.log`.
    pub fn from_container_link(path: &Path) -> Option<LogFileInfo> {
        let name = path.file_name()?.to_str()?.strip_suffix(".log")?;
        let (rest, id) = name.rsplit_once('-')?;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (pod, namespace, container) = three_fields(rest)?;
        Some(LogFileInfo {
            namespace: namespace.to_owned(),
            pod_name: pod.to_owned(),
            container_name: container.to_owned(),
            container_id: Some(id.to_owned()),
            pod_uid: None,
        })
    }

    /// `.../<namespace>_<pod>_<uid>/<container>/<N>.log` (also `<N>.log.<timestamp>` after
    /// rotation).
    pub fn from_pods_path(path: &Path) -> Option<LogFileInfo> {
        let file = path.file_name()?.to_str()?;
        if !file.contains(".log") {
            return None;
        }
        let container_dir = path.parent()?;
        let container = container_dir.file_name()?.to_str()?;
        let pod_dir = container_dir.parent()?.file_name()?.to_str()?;
        let (namespace, pod, uid) = three_fields(pod_dir)?;
        if container.is_empty() {
            return None;
        }
        Some(LogFileInfo {
            namespace: namespace.to_owned(),
            pod_name: pod.to_owned(),
            container_name: container.to_owned(),
            container_id: None,
            pod_uid: Some(uid.to_owned()),
        })
    }
}

/// `a_b_c` as three non-empty fields; the third may hold further `_`.
fn three_fields(text: &str) -> Option<(&str, &str, &str)> {
    let mut fields = text.splitn(3, '_');
    let fields = (fields.next()?, fields.next()?, fields.next()?);
    let all_named = !fields.0.is_empty() && !fields.1.is_empty() && !fields.2.is_empty();
    all_named.then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn container_link_names_give_pod_namespace_container_and_id() {
        let link = format!("/var/log/containers/web-6b8d9c7f4-abcde_shop_nginx-{ID}.log");
        let info = LogFileInfo::from_container_link(Path::new(&link)).expect("kubelet name");
        assert_eq!(info.pod_name, "web-6b8d9c7f4-abcde");
        assert_eq!(info.namespace, "shop");
        assert_eq!(info.container_name, "nginx");
        assert_eq!(info.container_id.as_deref(), Some(ID));
    }

    #[test]
    fn container_names_may_hold_dashes_and_underscores_after_the_namespace() {
        let link = format!("api-1_payments_istio-proxy-{ID}.log");
        let info = LogFileInfo::from_container_link(Path::new(&link)).expect("kubelet name");
        assert_eq!(info.container_name, "istio-proxy");
    }

    #[test]
    fn names_off_the_kubelet_convention_are_not_guessed() {
        let short_id = "web_shop_nginx-0123.log".to_owned();
        let no_namespace = format!("web_nginx-{ID}.log");
        let not_hex = format!("web_shop_nginx-{}.log", "z".repeat(64));
        let empty_pod = format!("_shop_nginx-{ID}.log");
        for name in [
            "syslog",
            "app.log",
            &short_id,
            &no_namespace,
            &not_hex,
            &empty_pod,
        ] {
            assert_eq!(
                LogFileInfo::from_container_link(Path::new(name)),
                None,
                "{name}"
            );
        }
    }

    #[test]
    fn pods_paths_give_the_uid_and_rotated_files_keep_their_identity() {
        for file in ["0.log", "3.log", "0.log.20261125-090000"] {
            let path = format!("/var/log/pods/shop_web-1_5f1c-77aa/nginx/{file}");
            let info = LogFileInfo::from_pods_path(Path::new(&path)).expect(file);
            assert_eq!(
                (
                    info.namespace.as_str(),
                    info.pod_name.as_str(),
                    info.container_name.as_str()
                ),
                ("shop", "web-1", "nginx")
            );
            assert_eq!(info.pod_uid.as_deref(), Some("5f1c-77aa"));
        }
    }

    #[test]
    fn a_link_and_its_target_together_give_the_id_and_the_uid() {
        let link = format!("/var/log/containers/web-1_shop_nginx-{ID}.log");
        let target = "/var/log/pods/shop_web-1_5f1c-77aa/nginx/0.log";
        let info = LogFileInfo::from_paths(Path::new(&link), Path::new(target)).expect("both");
        assert_eq!(info.container_id.as_deref(), Some(ID));
        assert_eq!(info.pod_uid.as_deref(), Some("5f1c-77aa"));
    }
}
