//! The container exporter: cAdvisor's metric and label names for every
//! cgroup on the host (each container, each systemd service and slice,
//! and the root), read from the cgroup v2 tree or the v1 trees, with the
//! `name`, `image` and `container_label_*` labels of Docker's or
//! containerd's metadata when a runtime describes the cgroup, and GPU use
//! per container from the GPU exporter's per-process NVML figures.
//!
//! [`ContainerExporter::collect`] lists the cgroups, reads each one's
//! files ([`cgroup`]), looks up its runtime metadata ([`meta`]), and writes
//! one family at a time. As in cAdvisor, every series carries the union of
//! the base labels any container has (`id` always; `name`, `image` and
//! `container_label_*` once some container has them), empty where a
//! container lacks one.
//!
//! What is read, per cgroup: CPU time (total, per CPU where v1 keeps it,
//! user, system), CFS throttling and the CPU spec (period, quota, shares),
//! memory (usage, peak, working set, cache, RSS, mapped files, kernel,
//! swap, fault counters, OOM kills, hits of the limit) and its limits,
//! block I/O per device. Network counters come from the container's own
//! network namespace (`/proc/<pid>/net/dev`) and, for the root cgroup,
//! the host's. Filesystem usage and disk counters are reported for the
//! root cgroup, per mounted block device, as cAdvisor's raw handler does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::SystemTime;

use crate::gpu::GpuReading;
use crate::sys;
use crate::text::{Family, Kind};

pub mod cgroup;
pub mod meta;
pub mod parse;

use cgroup::{CgroupStats, Layout};
use meta::Meta;

/// Where the container exporter reads from, and what it reports.
#[derive(Clone, Debug)]
pub struct ContainerOptions {
    /// The cgroup mount (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// procfs (`/proc`): processes' cgroups and network namespaces, the
    /// mount table, disk counters.
    pub proc_root: PathBuf,
    /// sysfs (`/sys`): block device names.
    pub sys_root: PathBuf,
    /// Docker's data directory (`/var/lib/docker`).
    pub docker_root: PathBuf,
    /// containerd's state directory (`/run/containerd`).
    pub containerd_state: PathBuf,
    /// Report only cgroups a runtime describes, plus the root (cAdvisor's
    /// `--docker_only`).
    pub docker_only: bool,
    /// Add each container's labels as `container_label_<name>`
    /// (cAdvisor's `--store_container_labels`, on by default).
    pub store_container_labels: bool,
}

impl ContainerOptions {
    /// The standard Linux locations, every cgroup reported, labels stored.
    pub fn linux_defaults() -> ContainerOptions {
        ContainerOptions {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            docker_root: PathBuf::from("/var/lib/docker"),
            containerd_state: PathBuf::from("/run/containerd"),
            docker_only: false,
            store_container_labels: true,
        }
    }
}

/// Reads the cgroup tree on every [`collect`](ContainerExporter::collect).
pub struct ContainerExporter {
    options: ContainerOptions,
    clock_ticks: f64,
}

/// One cgroup being reported.
struct Container {
    id: String,
    meta: Option<Meta>,
    stats: CgroupStats,
    network: Vec<Interface>,
    gpus: Vec<GpuSum>,
    /// Base label values, aligned with the exporter's base label names.
    label_values: Vec<String>,
}

/// One network interface's counters.
struct Interface {
    name: String,
    receive_bytes: f64,
    receive_packets: f64,
    receive_dropped: f64,
    receive_errors: f64,
    transmit_bytes: f64,
    transmit_packets: f64,
    transmit_dropped: f64,
    transmit_errors: f64,
}

/// One mounted block-device filesystem of the host (the root cgroup's
/// `container_fs_*`).
struct HostFilesystem {
    device: String,
    limit: f64,
    usage: f64,
    inodes: f64,
    inodes_free: f64,
    /// The device's `/proc/diskstats` counters.
    disk: Option<Vec<u64>>,
}

/// Interfaces cAdvisor leaves out of container network stats: loopback,
/// the host ends of veth pairs, and the runtimes' bridges.
const IGNORED_INTERFACE_PREFIXES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];

/// Filesystem types whose usage cAdvisor reports for the host.
const FS_TYPES: [&str; 6] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs"];

/// A memory figure past this is "unlimited" and reported as 0, as
/// cAdvisor does (the kernel rounds its unlimited values down from 2^63).
const UNLIMITED_MEMORY: f64 = (1u64 << 62) as f64;

impl ContainerExporter {
    pub fn new(options: ContainerOptions) -> ContainerExporter {
        ContainerExporter {
            options,
            clock_ticks: sys::clock_ticks_per_second(),
        }
    }

    pub fn options(&self) -> &ContainerOptions {
        &self.options
    }

    /// Writes the container metrics into `out`. `gpus` are the GPU
    /// exporter's readings, when there is a GPU; their per-process figures
    /// become `container_accelerator_*` of the process's cgroup.
    pub fn collect(&self, gpus: Option<&[GpuReading]>, out: &mut String) {
        let Some(layout) = Layout::detect(&self.options.cgroup_root) else {
            tracing::debug!(
                root = %self.options.cgroup_root.display(),
                "no cgroup hierarchy to read"
            );
            scrape_error(out, 1.0);
            return;
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as f64)
            .unwrap_or(0.0);
        let boot_time = sys::boot_time_seconds(&self.options.proc_root).ok();
        let host_net_ns = std::fs::read_link(self.options.proc_root.join("self/ns/net")).ok();
        let gpu_use = gpus.map(|g| self.gpu_use_by_cgroup(&layout, g));

        let mut device_names: HashMap<(u32, u32), String> = HashMap::new();
        let mut containers = Vec::new();
        for id in layout.cgroups() {
            let meta = meta::container_id(&id).and_then(|container| {
                meta::lookup(
                    &self.options.docker_root,
                    &self.options.containerd_state,
                    container,
                )
            });
            if self.options.docker_only && id != "/" && meta.is_none() {
                continue;
            }
            let mut stats = cgroup::read_stats(&layout, &id, self.clock_ticks);
            for device in &mut stats.io {
                device.device = device_names
                    .entry((device.major, device.minor))
                    .or_insert_with(|| self.device_name(device.major, device.minor))
                    .clone();
            }
            // The creation time: the runtime's, else the oldest directory
            // time, never before boot (cAdvisor's rule for raw cgroups).
            if let (Some(modified), Some(boot)) = (stats.modified_seconds, boot_time) {
                stats.modified_seconds = Some(modified.max(boot));
            }
            let network = self.network(&id, meta.as_ref(), host_net_ns.as_deref());
            let gpus = gpu_use
                .as_ref()
                .and_then(|by_cgroup| by_cgroup.get(&id))
                .map(|g| g.values().cloned().collect())
                .unwrap_or_default();
            containers.push(Container {
                id,
                meta,
                stats,
                network,
                gpus,
                label_values: Vec::new(),
            });
        }
        let label_names = self.base_labels(&mut containers);
        let filesystems = self.host_filesystems();
        write_families(&containers, &label_names, &filesystems, now, out);
        scrape_error(out, 0.0);
    }

    /// The base label names over all containers, and each container's
    /// values for them: `id`, then `image` and `name` when any container
    /// has one, then the sanitised `container_label_*` names. Names that
    /// sanitise to the same text keep the first.
    fn base_labels(&self, containers: &mut [Container]) -> Vec<String> {
        let mut per_container: Vec<BTreeMap<String, String>> = Vec::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for c in containers.iter() {
            let mut labels = BTreeMap::new();
            labels.insert("id".to_string(), c.id.clone());
            if let Some(meta) = &c.meta {
                if !meta.name.is_empty() {
                    labels.insert("name".to_string(), meta.name.clone());
                }
                if !meta.image.is_empty() {
                    labels.insert("image".to_string(), meta.image.clone());
                }
                if self.options.store_container_labels {
                    for (k, v) in &meta.labels {
                        labels.insert(format!("container_label_{k}"), v.clone());
                    }
                }
            }
            names.extend(labels.keys().cloned());
            per_container.push(labels);
        }
        let mut raw_names: Vec<String> = names.into_iter().collect();
        // id, image, name first, then the container labels by name.
        raw_names.sort_by_key(|n| (!matches!(n.as_str(), "id" | "image" | "name"), n.clone()));
        let mut sanitised: Vec<String> = Vec::new();
        let mut kept: Vec<String> = Vec::new();
        for raw in raw_names {
            let clean = sanitize_label_name(&raw);
            if !sanitised.contains(&clean) {
                sanitised.push(clean);
                kept.push(raw);
            }
        }
        for (c, labels) in containers.iter_mut().zip(per_container) {
            c.label_values = kept
                .iter()
                .map(|raw| labels.get(raw).cloned().unwrap_or_default())
                .collect();
        }
        sanitised
    }

    /// The network interfaces of a cgroup: the host's for the root, the
    /// container's own namespace for a runtime's container that has one
    /// (seen through its main process), none for other cgroups.
    fn network(
        &self,
        id: &str,
        meta: Option<&Meta>,
        host_ns: Option<&std::path::Path>,
    ) -> Vec<Interface> {
        let file = if id == "/" {
            self.options.proc_root.join("net/dev")
        } else {
            let Some((pid, true)) = meta.and_then(|m| Some((m.pid?, m.owns_network))) else {
                return Vec::new();
            };
            let process = self.options.proc_root.join(pid.to_string());
            // A container on the host's namespace would repeat the host's
            // interfaces.
            if let (Some(host), Ok(own)) = (host_ns, std::fs::read_link(process.join("ns/net")))
                && host == own
            {
                return Vec::new();
            }
            process.join("net/dev")
        };
        let Ok(text) = std::fs::read_to_string(file) else {
            return Vec::new();
        };
        let mut interfaces: Vec<Interface> = parse::net_dev(&text)
            .into_iter()
            .filter(|l| {
                !IGNORED_INTERFACE_PREFIXES
                    .iter()
                    .any(|p| l.interface.starts_with(p))
            })
            .map(|l| Interface {
                name: l.interface.to_string(),
                receive_bytes: l.receive_bytes() as f64,
                receive_packets: l.receive_packets() as f64,
                receive_dropped: l.receive_dropped() as f64,
                receive_errors: l.receive_errors() as f64,
                transmit_bytes: l.transmit_bytes() as f64,
                transmit_packets: l.transmit_packets() as f64,
                transmit_dropped: l.transmit_dropped() as f64,
                transmit_errors: l.transmit_errors() as f64,
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        interfaces
    }

    /// GPU use per cgroup: each GPU process is found in its cgroup
    /// (`/proc/<pid>/cgroup`) and its memory and SM utilisation summed
    /// there, per GPU. A process counts in its own cgroup only, not its
    /// ancestors'.
    fn gpu_use_by_cgroup(
        &self,
        layout: &Layout,
        readings: &[GpuReading],
    ) -> HashMap<String, BTreeMap<String, GpuSum>> {
        let mut by_cgroup: HashMap<String, BTreeMap<String, GpuSum>> = HashMap::new();
        for reading in readings {
            for process in &reading.processes {
                let Ok(text) = std::fs::read_to_string(
                    self.options
                        .proc_root
                        .join(process.pid.to_string())
                        .join("cgroup"),
                ) else {
                    continue;
                };
                let path = if layout.is_v2() {
                    parse::proc_cgroup_path(&text, None)
                } else {
                    parse::proc_cgroup_path(&text, Some("memory"))
                        .or_else(|| parse::proc_cgroup_path(&text, Some("cpuacct")))
                };
                let Some(path) = path else { continue };
                let sum = by_cgroup
                    .entry(path.to_string())
                    .or_default()
                    .entry(reading.uuid.clone())
                    .or_insert_with(|| GpuSum {
                        model: reading.name.clone(),
                        uuid: reading.uuid.clone(),
                        memory_total_bytes: reading.memory_total_bytes.map(|v| v as f64),
                        memory_used_bytes: None,
                        sm_utilization_percent: None,
                    });
                if let Some(bytes) = process.used_memory_bytes {
                    *sum.memory_used_bytes.get_or_insert(0.0) += bytes as f64;
                }
                if let Some(util) = process.sm_utilization_percent {
                    let total = sum.sm_utilization_percent.get_or_insert(0.0);
                    *total = (*total + f64::from(util)).min(100.0);
                }
            }
        }
        by_cgroup
    }

    /// The host's block-device filesystems, from init's mount table (this
    /// process's when init's is not readable), with their sizes and disk
    /// counters.
    fn host_filesystems(&self) -> Vec<HostFilesystem> {
        let proc = &self.options.proc_root;
        let Ok(table) = std::fs::read_to_string(proc.join("1/mountinfo"))
            .or_else(|_| std::fs::read_to_string(proc.join("self/mountinfo")))
        else {
            return Vec::new();
        };
        let disks = std::fs::read_to_string(proc.join("diskstats")).unwrap_or_default();
        let disks = parse::diskstats(&disks);
        let mut seen = BTreeSet::new();
        let mut filesystems = Vec::new();
        for mount in parse::mountinfo(&table) {
            if !mount.source.starts_with("/dev/")
                || !FS_TYPES.contains(&mount.fs_type)
                || !seen.insert((mount.major, mount.minor))
            {
                continue;
            }
            let mount_point = unescape_octal(mount.mount_point);
            let Ok(fs) = sys::statfs(std::path::Path::new(&mount_point)) else {
                continue;
            };
            let block = fs.block_size as f64;
            filesystems.push(HostFilesystem {
                device: mount.source.to_string(),
                limit: fs.blocks as f64 * block,
                usage: fs.blocks.saturating_sub(fs.blocks_free) as f64 * block,
                inodes: fs.files as f64,
                inodes_free: fs.files_free as f64,
                disk: disks
                    .iter()
                    .find(|d| d.major == mount.major && d.minor == mount.minor)
                    .map(|d| d.counters.clone()),
            });
        }
        filesystems.sort_by(|a, b| a.device.cmp(&b.device));
        filesystems
    }

    /// `/dev/<name>` of a block device number, from sysfs; empty when
    /// sysfs does not know it (as cAdvisor leaves unknown devices).
    fn device_name(&self, major: u32, minor: u32) -> String {
        std::fs::read_to_string(
            self.options
                .sys_root
                .join(format!("dev/block/{major}:{minor}/uevent")),
        )
        .ok()
        .and_then(|t| parse::uevent_devname(&t).map(|n| format!("/dev/{n}")))
        .unwrap_or_default()
    }
}

/// A cgroup's use of one GPU, summed over its processes.
#[derive(Clone, Debug)]
struct GpuSum {
    model: String,
    uuid: String,
    memory_total_bytes: Option<f64>,
    memory_used_bytes: Option<f64>,
    sm_utilization_percent: Option<f64>,
}

/// Replaces every character a label name may not have with `_`, as
/// cAdvisor does for `container_label_*`.
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Decodes the mount table's octal escapes (`\040` for a space).
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn scrape_error(out: &mut String, value: f64) {
    crate::text::single(
        out,
        "container_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise.",
        Kind::Gauge,
        value,
    );
}

/// A container's samples of one family: (extra label values, value).
type Rows = Vec<(Vec<String>, f64)>;

/// Writes one family over every container: `values` gives a container's
/// samples.
fn family<'c, F>(
    out: &mut String,
    containers: &'c [Container],
    label_names: &[String],
    (name, help, kind): (&str, &str, Kind),
    extra_names: &[&str],
    values: F,
) where
    F: Fn(&'c Container) -> Rows,
{
    let rows: Vec<(&Container, Rows)> = containers
        .iter()
        .map(|c| (c, values(c)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if rows.is_empty() {
        return;
    }
    let mut f = Family::new(out, name, help, kind);
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(label_names.len() + extra_names.len());
    for (c, samples) in &rows {
        for (extra, value) in samples {
            pairs.clear();
            for (n, v) in label_names.iter().zip(&c.label_values) {
                pairs.push((n, v));
            }
            for (n, v) in extra_names.iter().zip(extra) {
                pairs.push((n, v));
            }
            f.sample(&pairs, *value);
        }
    }
}

/// One unlabelled sample when `value` is known.
fn one(value: Option<f64>) -> Rows {
    value.map(|v| vec![(Vec::new(), v)]).unwrap_or_default()
}

fn spec_memory(value: Option<f64>) -> Option<f64> {
    value.map(|v| if v > UNLIMITED_MEMORY { 0.0 } else { v })
}

fn write_families(
    containers: &[Container],
    labels: &[String],
    filesystems: &[HostFilesystem],
    now: f64,
    out: &mut String,
) {
    use Kind::{Counter, Gauge};
    let mem = |c: &Container| c.stats.memory.clone();

    family(
        out,
        containers,
        labels,
        (
            "container_start_time_seconds",
            "Start time of the container since unix epoch in seconds.",
            Gauge,
        ),
        &[],
        |c| {
            one(c
                .meta
                .as_ref()
                .and_then(|m| m.created_seconds)
                .or(c.stats.modified_seconds)
                .map(f64::floor))
        },
    );
    family(
        out,
        containers,
        labels,
        (
            "container_spec_cpu_period",
            "CPU period of the container.",
            Gauge,
        ),
        &[],
        |c| one(c.stats.cpu_period.filter(|_| c.stats.has_cpu)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_spec_cpu_quota",
            "CPU quota of the container.",
            Gauge,
        ),
        &[],
        |c| one(c.stats.cpu_quota.filter(|_| c.stats.has_cpu)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_spec_cpu_shares",
            "CPU share of the container.",
            Gauge,
        ),
        &[],
        |c| one(c.stats.cpu_shares.filter(|_| c.stats.has_cpu)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_spec_memory_limit_bytes",
            "Memory limit for the container.",
            Gauge,
        ),
        &[],
        |c| one(spec_memory(c.stats.memory_limit)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_spec_memory_swap_limit_bytes",
            "Memory swap limit for the container.",
            Gauge,
        ),
        &[],
        |c| one(spec_memory(c.stats.memory_swap_limit)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_spec_memory_reservation_limit_bytes",
            "Memory reservation limit for the container.",
            Gauge,
        ),
        &[],
        |c| one(spec_memory(c.stats.memory_reservation)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_last_seen",
            "Last time a container was seen by the exporter.",
            Gauge,
        ),
        &[],
        |_| one(Some(now)),
    );

    // CPU.
    family(
        out,
        containers,
        labels,
        (
            "container_cpu_user_seconds_total",
            "Cumulative user cpu time consumed in seconds.",
            Counter,
        ),
        &[],
        |c| one(c.stats.cpu_user_seconds),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_cpu_system_seconds_total",
            "Cumulative system cpu time consumed in seconds.",
            Counter,
        ),
        &[],
        |c| one(c.stats.cpu_system_seconds),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_cpu_usage_seconds_total",
            "Cumulative cpu time consumed in seconds.",
            Counter,
        ),
        &["cpu"],
        |c| {
            // Per CPU where the kernel keeps it (v1), else the total; CPUs
            // that never ran the cgroup are left out, as in cAdvisor.
            if c.stats.per_cpu_seconds.iter().any(|&v| v > 0.0) {
                c.stats
                    .per_cpu_seconds
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(i, v)| (vec![format!("cpu{i:02}")], *v))
                    .collect()
            } else {
                c.stats
                    .cpu_usage_seconds
                    .filter(|&v| v > 0.0)
                    .map(|v| vec![(vec!["total".to_string()], v)])
                    .unwrap_or_default()
            }
        },
    );
    let cfs = |c: &Container| c.stats.cfs.clone().filter(|_| c.stats.cpu_quota.is_some());
    family(
        out,
        containers,
        labels,
        (
            "container_cpu_cfs_periods_total",
            "Number of elapsed enforcement period intervals.",
            Counter,
        ),
        &[],
        |c| one(cfs(c).map(|x| x.periods)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_cpu_cfs_throttled_periods_total",
            "Number of throttled period intervals.",
            Counter,
        ),
        &[],
        |c| one(cfs(c).map(|x| x.throttled_periods)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_cpu_cfs_throttled_seconds_total",
            "Total time duration the container has been throttled.",
            Counter,
        ),
        &[],
        |c| one(cfs(c).map(|x| x.throttled_seconds)),
    );

    // Memory.
    family(
        out,
        containers,
        labels,
        (
            "container_memory_cache",
            "Number of bytes of page cache memory.",
            Gauge,
        ),
        &[],
        |c| one(mem(c).and_then(|m| m.cache)),
    );
    family(
        out,
        containers,
        labels,
        ("container_memory_rss", "Size of RSS in bytes.", Gauge),
        &[],
        |c| one(mem(c).and_then(|m| m.rss)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_kernel_usage",
            "Size of kernel memory allocated in bytes.",
            Gauge,
        ),
        &[],
        |c| one(mem(c).and_then(|m| m.kernel)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_mapped_file",
            "Size of memory mapped files in bytes.",
            Gauge,
        ),
        &[],
        |c| one(mem(c).and_then(|m| m.mapped_file)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_swap",
            "Container swap usage in bytes.",
            Gauge,
        ),
        &[],
        |c| one(mem(c).and_then(|m| m.swap)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_failcnt",
            "Number of memory usage hits limits.",
            Counter,
        ),
        &[],
        |c| one(mem(c).and_then(|m| m.failcnt)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_usage_bytes",
            "Current memory usage in bytes, including all memory regardless of when it was accessed.",
            Gauge,
        ),
        &[],
        |c| one(mem(c).map(|m| m.usage)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_max_usage_bytes",
            "Maximum memory usage recorded in bytes.",
            Gauge,
        ),
        &[],
        |c| one(mem(c).and_then(|m| m.max_usage)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_working_set_bytes",
            "Current working set in bytes.",
            Gauge,
        ),
        &[],
        |c| one(mem(c).map(|m| m.working_set)),
    );
    family(
        out,
        containers,
        labels,
        (
            "container_memory_failures_total",
            "Cumulative count of memory allocation failures.",
            Counter,
        ),
        &["failure_type", "scope"],
        |c| {
            let Some(m) = mem(c) else { return Vec::new() };
            let mut rows = Vec::new();
            for (kind, counts) in [("pgfault", m.pgfault), ("pgmajfault", m.pgmajfault)] {
                if let Some((own, hierarchy)) = counts {
                    rows.push((vec![kind.to_string(), "container".to_string()], own));
                    rows.push((vec![kind.to_string(), "hierarchy".to_string()], hierarchy));
                }
            }
            rows
        },
    );
    family(
        out,
        containers,
        labels,
        (
            "container_oom_events_total",
            "Count of out of memory events observed for the container.",
            Counter,
        ),
        &[],
        |c| one(mem(c).and_then(|m| m.oom_kills)),
    );

    // Block I/O per device (the cgroup's), then the host's filesystems
    // and disks for the root cgroup.
    write_io(containers, labels, filesystems, out);

    // Network.
    type NetField = fn(&Interface) -> f64;
    let net: [(&str, &str, NetField); 8] = [
        (
            "container_network_receive_bytes_total",
            "Cumulative count of bytes received.",
            |i| i.receive_bytes,
        ),
        (
            "container_network_receive_packets_total",
            "Cumulative count of packets received.",
            |i| i.receive_packets,
        ),
        (
            "container_network_receive_packets_dropped_total",
            "Cumulative count of packets dropped while receiving.",
            |i| i.receive_dropped,
        ),
        (
            "container_network_receive_errors_total",
            "Cumulative count of errors encountered while receiving.",
            |i| i.receive_errors,
        ),
        (
            "container_network_transmit_bytes_total",
            "Cumulative count of bytes transmitted.",
            |i| i.transmit_bytes,
        ),
        (
            "container_network_transmit_packets_total",
            "Cumulative count of packets transmitted.",
            |i| i.transmit_packets,
        ),
        (
            "container_network_transmit_packets_dropped_total",
            "Cumulative count of packets dropped while transmitting.",
            |i| i.transmit_dropped,
        ),
        (
            "container_network_transmit_errors_total",
            "Cumulative count of errors encountered while transmitting.",
            |i| i.transmit_errors,
        ),
    ];
    for (name, help, field) in net {
        family(
            out,
            containers,
            labels,
            (name, help, Counter),
            &["interface"],
            |c| {
                c.network
                    .iter()
                    .map(|i| (vec![i.name.clone()], field(i)))
                    .collect()
            },
        );
    }

    // GPUs, under cAdvisor's former accelerator names.
    type GpuField = fn(&GpuSum) -> Option<f64>;
    let gpu: [(&str, &str, GpuField); 3] = [
        (
            "container_accelerator_memory_total_bytes",
            "Total accelerator memory.",
            |g| g.memory_total_bytes,
        ),
        (
            "container_accelerator_memory_used_bytes",
            "Accelerator memory used by the container's processes.",
            |g| g.memory_used_bytes,
        ),
        (
            "container_accelerator_duty_cycle",
            "Percent of time over the past sample period during which the container's processes ran kernels on the accelerator.",
            |g| g.sm_utilization_percent,
        ),
    ];
    for (name, help, field) in gpu {
        family(
            out,
            containers,
            labels,
            (name, help, Gauge),
            &["make", "model", "acc_id"],
            |c| {
                c.gpus
                    .iter()
                    .filter_map(|g| {
                        Some((
                            vec!["nvidia".to_string(), g.model.clone(), g.uuid.clone()],
                            field(g)?,
                        ))
                    })
                    .collect()
            },
        );
    }
}

/// Milliseconds in `/proc/diskstats` time columns.
const DISK_MS: f64 = 1e-3;

type IoField = fn(&cgroup::DeviceIo) -> Option<f64>;
type DiskField = fn(&[u64]) -> Option<f64>;
/// Name, help, type, and where the value comes from.
type IoFamily = (
    &'static str,
    &'static str,
    Kind,
    Option<IoField>,
    Option<DiskField>,
);

/// The per-device I/O families: name, help, type, the value from a
/// cgroup's block I/O files (when they have it) and the value from a host
/// disk's `/proc/diskstats` counters (reported for the root cgroup, per
/// mounted filesystem, as cAdvisor does).
const IO_FAMILIES: [IoFamily; 13] = [
    (
        "container_fs_reads_bytes_total",
        "Cumulative count of bytes read.",
        Kind::Counter,
        Some(|d| d.bytes_of("Read")),
        None,
    ),
    (
        "container_fs_reads_total",
        "Cumulative count of reads completed.",
        Kind::Counter,
        Some(|d| d.requests_of("Read")),
        Some(|k| disk_counter(k, 0, 1.0)),
    ),
    (
        "container_fs_sector_reads_total",
        "Cumulative count of sector reads completed.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 2, 1.0)),
    ),
    (
        "container_fs_reads_merged_total",
        "Cumulative count of reads merged.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 1, 1.0)),
    ),
    (
        "container_fs_read_seconds_total",
        "Cumulative count of seconds spent reading.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 3, DISK_MS)),
    ),
    (
        "container_fs_writes_bytes_total",
        "Cumulative count of bytes written.",
        Kind::Counter,
        Some(|d| d.bytes_of("Write")),
        None,
    ),
    (
        "container_fs_writes_total",
        "Cumulative count of writes completed.",
        Kind::Counter,
        Some(|d| d.requests_of("Write")),
        Some(|k| disk_counter(k, 4, 1.0)),
    ),
    (
        "container_fs_sector_writes_total",
        "Cumulative count of sector writes completed.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 6, 1.0)),
    ),
    (
        "container_fs_writes_merged_total",
        "Cumulative count of writes merged.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 5, 1.0)),
    ),
    (
        "container_fs_write_seconds_total",
        "Cumulative count of seconds spent writing.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 7, DISK_MS)),
    ),
    (
        "container_fs_io_current",
        "Number of I/Os currently in progress.",
        Kind::Gauge,
        None,
        Some(|k| disk_counter(k, 8, 1.0)),
    ),
    (
        "container_fs_io_time_seconds_total",
        "Cumulative count of seconds spent doing I/Os.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 9, DISK_MS)),
    ),
    (
        "container_fs_io_time_weighted_seconds_total",
        "Cumulative weighted I/O time in seconds.",
        Kind::Counter,
        None,
        Some(|k| disk_counter(k, 10, DISK_MS)),
    ),
];

fn disk_counter(counters: &[u64], column: usize, factor: f64) -> Option<f64> {
    counters.get(column).map(|&v| v as f64 * factor)
}

type FsField = fn(&HostFilesystem) -> f64;

/// The host filesystems' usage families (root cgroup only).
const FS_FAMILIES: [(&str, &str, FsField); 4] = [
    (
        "container_fs_inodes_free",
        "Number of available Inodes.",
        |f| f.inodes_free,
    ),
    ("container_fs_inodes_total", "Number of Inodes.", |f| {
        f.inodes
    }),
    (
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        |f| f.limit,
    ),
    (
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        |f| f.usage,
    ),
];

fn write_io(
    containers: &[Container],
    labels: &[String],
    filesystems: &[HostFilesystem],
    out: &mut String,
) {
    for (name, help, field) in FS_FAMILIES {
        family(
            out,
            containers,
            labels,
            (name, help, Kind::Gauge),
            &["device"],
            |c| {
                if c.id != "/" {
                    return Vec::new();
                }
                filesystems
                    .iter()
                    .map(|f| (vec![f.device.clone()], field(f)))
                    .collect()
            },
        );
    }
    for (name, help, kind, io_field, disk_field) in IO_FAMILIES {
        family(
            out,
            containers,
            labels,
            (name, help, kind),
            &["device"],
            |c| {
                let mut rows = Vec::new();
                if let Some(field) = io_field {
                    for d in &c.stats.io {
                        if let Some(v) = field(d) {
                            rows.push((vec![d.device.clone()], v));
                        }
                    }
                }
                if let (Some(field), "/") = (disk_field, c.id.as_str()) {
                    for f in filesystems {
                        if let Some(v) = f.disk.as_deref().and_then(field) {
                            rows.push((vec![f.device.clone()], v));
                        }
                    }
                }
                rows
            },
        );
    }
    family(
        out,
        containers,
        labels,
        (
            "container_blkio_device_usage_total",
            "Blkio device bytes usage.",
            Kind::Counter,
        ),
        &["device", "major", "minor", "operation"],
        |c| {
            let mut rows = Vec::new();
            for d in &c.stats.io {
                for (operation, v) in &d.bytes {
                    rows.push((
                        vec![
                            d.device.clone(),
                            d.major.to_string(),
                            d.minor.to_string(),
                            operation.clone(),
                        ],
                        *v,
                    ));
                }
            }
            rows
        },
    );
}
