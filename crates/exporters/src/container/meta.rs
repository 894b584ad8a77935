//! Who a cgroup belongs to: Docker's and containerd's metadata for the
//! containers they run, read from their state files (no daemon API).
//!
//! - Docker: `<docker_root>/containers/<id>/config.v2.json` gives the name
//!   (`Name`, without its leading `/`), the image (`Config.Image`), the
//!   labels (`Config.Labels`), the creation time (`Created`) and the main
//!   process (`State.Pid`). cAdvisor's Docker handler reads the same
//!   fields through the Docker API.
//! - containerd: the OCI bundle of a running task,
//!   `<state>/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`,
//!   and its `init.pid`. containerd keeps a container's image and labels in
//!   its own database, which only its API reads; the bundle carries the
//!   CRI plugin's annotations instead, from which the Kubernetes labels
//!   cAdvisor shows are rebuilt (`io.kubernetes.container.name`,
//!   `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace`,
//!   `io.kubernetes.pod.uid`, `io.cri-containerd.kind`) and the image is
//!   `io.kubernetes.cri.image-name`. As in cAdvisor, a containerd
//!   container's `name` is its id.

use std::collections::BTreeMap;
use std::path::Path;

/// What the runtime says about a container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// cAdvisor's `name` label: Docker's container name, containerd's id.
    pub name: String,
    pub image: String,
    /// The container's labels (`container_label_<name>` in the output).
    pub labels: BTreeMap<String, String>,
    /// When the container was created, in seconds since the epoch.
    pub created_seconds: Option<f64>,
    /// The container's main process, when running.
    pub pid: Option<u32>,
    /// Whether the container has a network namespace of its own whose
    /// interfaces are its network (not true of a Kubernetes container
    /// that shares its pod sandbox's namespace).
    pub owns_network: bool,
}

/// The container id a cgroup's last path element names, for the runtimes'
/// naming schemes: `docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `nerdctl-<id>.scope` (systemd driver), or the bare 64-hex id (cgroupfs
/// driver: `/docker/<id>`, `/<namespace>/<id>`).
pub fn container_id(cgroup_path: &str) -> Option<&str> {
    let last = cgroup_path.rsplit('/').next()?;
    let last = last.strip_suffix(".scope").unwrap_or(last);
    let id = ["docker-", "cri-containerd-", "nerdctl-", "crio-"]
        .iter()
        .find_map(|prefix| last.strip_prefix(prefix))
        .unwrap_or(last);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Looks the container up in Docker's state, then containerd's.
pub fn lookup(docker_root: &Path, containerd_state: &Path, id: &str) -> Option<Meta> {
    let docker = docker_root
        .join("containers")
        .join(id)
        .join("config.v2.json");
    if let Ok(text) = std::fs::read_to_string(&docker) {
        return docker_config(&text);
    }
    let tasks = containerd_state.join("io.containerd.runtime.v2.task");
    for namespace in std::fs::read_dir(&tasks).ok()?.flatten() {
        let bundle = namespace.path().join(id);
        let Ok(text) = std::fs::read_to_string(bundle.join("config.json")) else {
            continue;
        };
        let mut meta = oci_bundle(id, &text)?;
        meta.pid = std::fs::read_to_string(bundle.join("init.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        return Some(meta);
    }
    None
}

/// Docker's `config.v2.json`.
pub fn docker_config(text: &str) -> Option<Meta> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let config = value.get("Config");
    let string = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = string(value.get("Name"));
    let labels = config
        .and_then(|c| c.get("Labels"))
        .and_then(serde_json::Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let created_seconds = value
        .get("Created")
        .and_then(serde_json::Value::as_str)
        .and_then(|t| model::time::parse_rfc3339(t, model::time::Rfc3339Grammar::Go))
        .map(|(secs, nanos)| secs as f64 + f64::from(nanos) / 1e9);
    let pid = value
        .get("State")
        .and_then(|s| s.get("Pid"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .filter(|&p| p > 0);
    let network_mode = string(config.and_then(|_| value.get("HostConfig")?.get("NetworkMode")));
    Some(Meta {
        name: name.strip_prefix('/').unwrap_or(&name).to_string(),
        image: string(config.and_then(|c| c.get("Image"))),
        labels,
        created_seconds,
        pid,
        // A container on the host's network, or joined to another's, has
        // no interfaces of its own to report.
        owns_network: network_mode != "host" && !network_mode.starts_with("container:"),
    })
}

/// The CRI annotations of an OCI bundle and the Kubernetes labels they
/// stand for.
const CRI_LABELS: [(&str, &str); 5] = [
    (
        "io.kubernetes.cri.container-name",
        "io.kubernetes.container.name",
    ),
    ("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"),
    (
        "io.kubernetes.cri.sandbox-namespace",
        "io.kubernetes.pod.namespace",
    ),
    ("io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"),
    ("io.kubernetes.cri.container-type", "io.cri-containerd.kind"),
];

/// A containerd task's OCI `config.json`.
pub fn oci_bundle(id: &str, text: &str) -> Option<Meta> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let annotations = value
        .get("annotations")
        .and_then(serde_json::Value::as_object);
    let annotation = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .and_then(serde_json::Value::as_str)
    };
    let labels: BTreeMap<String, String> = CRI_LABELS
        .iter()
        .filter_map(|(annotation_key, label)| {
            Some((label.to_string(), annotation(annotation_key)?.to_string()))
        })
        .collect();
    // Kubernetes containers share their sandbox's network namespace; only
    // the sandbox (and plain containerd/nerdctl containers) report it.
    let kind = annotation("io.kubernetes.cri.container-type");
    Some(Meta {
        name: id.to_string(),
        image: annotation("io.kubernetes.cri.image-name")
            .unwrap_or("")
            .to_string(),
        labels,
        created_seconds: None,
        pid: None,
        owns_network: kind.is_none_or(|k| k == "sandbox"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c0a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

    #[test]
    fn ids_from_cgroup_paths() {
        assert_eq!(
            container_id(&format!("/system.slice/docker-{ID}.scope")),
            Some(ID)
        );
        assert_eq!(container_id(&format!("/docker/{ID}")), Some(ID));
        assert_eq!(
            container_id(&format!(
                "/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope"
            )),
            Some(ID)
        );
        assert_eq!(container_id("/system.slice/ssh.service"), None);
        assert_eq!(container_id("/"), None);
    }

    #[test]
    fn docker_state() {
        let text = r#"{"Name":"/web","Created":"2024-03-01T10:00:00.5Z",
            "Config":{"Image":"nginx:1.25","Labels":{"com.example.team":"ml","n":1}},
            "State":{"Pid":4242},"HostConfig":{"NetworkMode":"bridge"}}"#;
        let meta = docker_config(text).unwrap();
        assert_eq!(meta.name, "web");
        assert_eq!(meta.image, "nginx:1.25");
        assert_eq!(meta.labels.len(), 1);
        assert_eq!(meta.labels["com.example.team"], "ml");
        assert_eq!(meta.created_seconds, Some(1_709_287_200.5));
        assert_eq!(meta.pid, Some(4242));
        assert!(meta.owns_network);
        let host =
            docker_config(r#"{"Name":"/h","Config":{},"HostConfig":{"NetworkMode":"host"}}"#)
                .unwrap();
        assert!(!host.owns_network);
        assert_eq!(docker_config("not json"), None);
    }

    #[test]
    fn containerd_bundle() {
        let text = r#"{"annotations":{"io.kubernetes.cri.container-name":"trainer",
            "io.kubernetes.cri.sandbox-name":"job-0","io.kubernetes.cri.sandbox-namespace":"ml",
            "io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.image-name":"registry/trainer:3"}}"#;
        let meta = oci_bundle(ID, text).unwrap();
        assert_eq!(meta.name, ID);
        assert_eq!(meta.image, "registry/trainer:3");
        assert_eq!(meta.labels["io.kubernetes.pod.namespace"], "ml");
        assert_eq!(meta.labels["io.cri-containerd.kind"], "container");
        assert!(!meta.owns_network);
        let plain = oci_bundle(ID, "{}").unwrap();
        assert!(plain.owns_network && plain.labels.is_empty());
    }
}
