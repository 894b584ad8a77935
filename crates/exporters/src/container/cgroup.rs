//! The cgroup tree: which layout the host has (v2's one unified tree, or
//! v1's tree per controller), every cgroup in it, and what each one's
//! files say, in the units cAdvisor reports (seconds, bytes).
//!
//! A file that is missing or does not parse leaves its fields `None`, and
//! the families they feed are left out for that cgroup rather than written
//! as zero (a cgroup v1 cgroup that exists only in the memory hierarchy
//! has no CPU figures, not zero CPU).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::parse;

/// The controllers whose v1 hierarchies are walked and read.
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "blkio", "pids"];

/// How deep below the root the walk goes, and how many cgroups it lists:
/// bounds on a tree that something keeps growing. Real trees are a few
/// levels deep (kubepods/burstable/pod/container) with hundreds of nodes.
const MAX_DEPTH: usize = 32;
const MAX_CGROUPS: usize = 20_000;

/// The host's cgroup layout.
#[derive(Clone, Debug)]
pub enum Layout {
    /// cgroup v2: one tree, every controller's files in each directory.
    V2(PathBuf),
    /// cgroup v1 (also the hybrid layout, whose v2 tree holds no
    /// controllers): one tree per controller, as (controller, root).
    V1(Vec<(&'static str, PathBuf)>),
}

impl Layout {
    /// The layout under `root` (normally `/sys/fs/cgroup`); `None` when no
    /// cgroup hierarchy is mounted there.
    pub fn detect(root: &Path) -> Option<Layout> {
        if root.join("cgroup.controllers").is_file() {
            return Some(Layout::V2(root.to_path_buf()));
        }
        let controllers: Vec<(&'static str, PathBuf)> = V1_CONTROLLERS
            .iter()
            .map(|c| (*c, root.join(c)))
            .filter(|(_, dir)| dir.is_dir())
            .collect();
        (!controllers.is_empty()).then_some(Layout::V1(controllers))
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, Layout::V2(_))
    }

    /// Every cgroup, as paths from the root (`/`, `/system.slice`, ...),
    /// sorted; for v1 the union over the controllers' trees, as cAdvisor
    /// lists them.
    pub fn cgroups(&self) -> Vec<String> {
        let mut paths = Vec::new();
        match self {
            Layout::V2(root) => walk(root, "", 0, &mut paths),
            Layout::V1(controllers) => {
                for (_, root) in controllers {
                    walk(root, "", 0, &mut paths);
                }
            }
        }
        paths.sort();
        paths.dedup();
        paths
    }

    /// The directory of `cgroup` in `controller`'s hierarchy (v1), or in
    /// the one tree (v2).
    fn dir(&self, controller: &str, cgroup: &str) -> Option<PathBuf> {
        let relative = cgroup.trim_start_matches('/');
        let root = match self {
            Layout::V2(root) => root,
            Layout::V1(controllers) => &controllers.iter().find(|(c, _)| *c == controller)?.1,
        };
        let dir = if relative.is_empty() {
            root.clone()
        } else {
            root.join(relative)
        };
        dir.is_dir().then_some(dir)
    }
}

/// Lists `dir` and its descendants as cgroup paths. Symbolic links are
/// not followed (v1 roots such as `cpu -> cpu,cpuacct` are already
/// resolved by the caller's join).
fn walk(dir: &Path, relative: &str, depth: usize, out: &mut Vec<String>) {
    if out.len() >= MAX_CGROUPS {
        return;
    }
    out.push(if relative.is_empty() {
        "/".to_string()
    } else {
        relative.to_string()
    });
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    children.sort();
    for (name, path) in children {
        walk(&path, &format!("{relative}/{name}"), depth + 1, out);
    }
}

/// CFS bandwidth counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cfs {
    pub periods: f64,
    pub throttled_periods: f64,
    pub throttled_seconds: f64,
}

/// Memory figures in bytes (counts for the fault counters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    pub usage: f64,
    pub max_usage: Option<f64>,
    pub failcnt: Option<f64>,
    pub cache: Option<f64>,
    pub rss: Option<f64>,
    pub kernel: Option<f64>,
    pub mapped_file: Option<f64>,
    pub swap: Option<f64>,
    pub working_set: f64,
    /// Page faults of the cgroup itself and of its whole subtree.
    pub pgfault: Option<(f64, f64)>,
    pub pgmajfault: Option<(f64, f64)>,
    pub oom_kills: Option<f64>,
}

/// One block device's I/O as a cgroup saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceIo {
    pub major: u32,
    pub minor: u32,
    /// `/dev/<name>`, filled in by the exporter from sysfs; empty when
    /// unknown.
    pub device: String,
    /// Bytes per operation (`Read`, `Write`, ...), as blkio names them.
    pub bytes: Vec<(String, f64)>,
    /// Requests per operation.
    pub requests: Vec<(String, f64)>,
}

impl DeviceIo {
    pub fn bytes_of(&self, operation: &str) -> Option<f64> {
        self.bytes
            .iter()
            .find_map(|(op, v)| (op == operation).then_some(*v))
    }
    pub fn requests_of(&self, operation: &str) -> Option<f64> {
        self.requests
            .iter()
            .find_map(|(op, v)| (op == operation).then_some(*v))
    }
}

/// What one cgroup's files say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupStats {
    /// The oldest modification time of the cgroup's directories, the
    /// creation time cAdvisor reports for cgroups no runtime describes.
    pub modified_seconds: Option<f64>,
    /// Whether the cgroup has the CPU controller (its spec is reported).
    pub has_cpu: bool,
    pub cpu_usage_seconds: Option<f64>,
    /// Seconds per CPU (cgroup v1 `cpuacct.usage_percpu`).
    pub per_cpu_seconds: Vec<f64>,
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
    pub cfs: Option<Cfs>,
    /// CFS period and quota in microseconds (quota `None`: unlimited);
    /// the share weight in cgroup v1 units.
    pub cpu_period: Option<f64>,
    pub cpu_quota: Option<f64>,
    pub cpu_shares: Option<f64>,
    pub memory: Option<Memory>,
    /// Limits in bytes; `u64::MAX` (`max`, or v1's huge "unlimited") is
    /// kept and reported as 0, as cAdvisor does.
    pub memory_limit: Option<f64>,
    pub memory_swap_limit: Option<f64>,
    pub memory_reservation: Option<f64>,
    pub io: Vec<DeviceIo>,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn modified_seconds(dir: &Path) -> Option<f64> {
    let modified = std::fs::metadata(dir).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs_f64(),
    )
}

/// Reads one cgroup. `clock_ticks` is `sysconf(_SC_CLK_TCK)`, the unit of
/// v1's `cpuacct.stat`.
pub fn read_stats(layout: &Layout, cgroup: &str, clock_ticks: f64) -> CgroupStats {
    let mut stats = CgroupStats::default();
    match layout {
        Layout::V2(_) => {
            if let Some(dir) = layout.dir("", cgroup) {
                stats.modified_seconds = modified_seconds(&dir);
                read_v2(&dir, &mut stats);
            }
        }
        Layout::V1(controllers) => {
            for (controller, _) in controllers {
                if let Some(dir) = layout.dir(controller, cgroup) {
                    let modified = modified_seconds(&dir);
                    stats.modified_seconds = match (stats.modified_seconds, modified) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    read_v1(controller, &dir, clock_ticks, &mut stats);
                }
            }
        }
    }
    stats
}

fn read_v2(dir: &Path, stats: &mut CgroupStats) {
    if let Some(cpu) = read(dir, "cpu.stat") {
        let value = |key| parse::keyed_value(&cpu, key).map(|v| v as f64 / 1e6);
        stats.cpu_usage_seconds = value("usage_usec");
        stats.cpu_user_seconds = value("user_usec");
        stats.cpu_system_seconds = value("system_usec");
        if let (Some(periods), Some(throttled), Some(usec)) = (
            parse::keyed_value(&cpu, "nr_periods"),
            parse::keyed_value(&cpu, "nr_throttled"),
            parse::keyed_value(&cpu, "throttled_usec"),
        ) {
            stats.cfs = Some(Cfs {
                periods: periods as f64,
                throttled_periods: throttled as f64,
                throttled_seconds: usec as f64 / 1e6,
            });
        }
    }
    // The CPU controller's own files exist only where it is enabled.
    let weight = read(dir, "cpu.weight").and_then(|t| parse::single_value(&t));
    let max = read(dir, "cpu.max").and_then(|t| parse::cpu_max(&t));
    stats.has_cpu = weight.is_some() || max.is_some();
    if let Some(weight) = weight.filter(|w| (1..=10_000).contains(w)) {
        // cAdvisor's conversion of a v2 weight to v1 shares.
        stats.cpu_shares = Some((2 + (weight - 1) * 262_142 / 9_999) as f64);
    }
    if let Some((quota, period)) = max {
        stats.cpu_period = Some(period as f64);
        stats.cpu_quota = quota.map(|q| q as f64);
    }

    if let Some(usage) = read(dir, "memory.current").and_then(|t| parse::single_value(&t)) {
        let stat = read(dir, "memory.stat").unwrap_or_default();
        let events = read(dir, "memory.events").unwrap_or_default();
        let value = |key| parse::keyed_value(&stat, key).map(|v| v as f64);
        let usage = usage as f64;
        let inactive_file = value("inactive_file").unwrap_or(0.0);
        let pgfault = value("pgfault");
        let pgmajfault = value("pgmajfault");
        stats.memory = Some(Memory {
            usage,
            max_usage: read(dir, "memory.peak")
                .and_then(|t| parse::single_value(&t))
                .map(|v| v as f64),
            failcnt: parse::keyed_value(&events, "max").map(|v| v as f64),
            cache: value("file"),
            rss: value("anon"),
            kernel: value("kernel"),
            mapped_file: value("file_mapped"),
            swap: read(dir, "memory.swap.current")
                .and_then(|t| parse::single_value(&t))
                .map(|v| v as f64),
            working_set: (usage - inactive_file).max(0.0),
            // v2's memory.stat covers the subtree; both scopes are it.
            pgfault: pgfault.map(|v| (v, v)),
            pgmajfault: pgmajfault.map(|v| (v, v)),
            oom_kills: parse::keyed_value(&events, "oom_kill").map(|v| v as f64),
        });
        let limit = |file| {
            read(dir, file)
                .and_then(|t| parse::single_value(&t))
                .map(|v| v as f64)
        };
        stats.memory_limit = limit("memory.max");
        stats.memory_swap_limit = limit("memory.swap.max");
        stats.memory_reservation = limit("memory.min");
    }

    if let Some(io) = read(dir, "io.stat") {
        for line in parse::io_stat(&io) {
            let value = |key: &str| {
                line.values
                    .iter()
                    .find_map(|(k, v)| (*k == key).then_some(*v as f64))
            };
            let mut device = DeviceIo {
                major: line.major,
                minor: line.minor,
                ..DeviceIo::default()
            };
            for (key, operation) in [
                ("rbytes", "Read"),
                ("wbytes", "Write"),
                ("dbytes", "Discard"),
            ] {
                if let Some(v) = value(key) {
                    device.bytes.push((operation.to_string(), v));
                }
            }
            for (key, operation) in [("rios", "Read"), ("wios", "Write"), ("dios", "Discard")] {
                if let Some(v) = value(key) {
                    device.requests.push((operation.to_string(), v));
                }
            }
            stats.io.push(device);
        }
    }
}

fn read_v1(controller: &str, dir: &Path, clock_ticks: f64, stats: &mut CgroupStats) {
    match controller {
        "cpu" => {
            stats.has_cpu = true;
            stats.cpu_shares = read(dir, "cpu.shares")
                .and_then(|t| parse::single_value(&t))
                .map(|v| v as f64);
            stats.cpu_period = read(dir, "cpu.cfs_period_us")
                .and_then(|t| parse::single_value(&t))
                .map(|v| v as f64);
            stats.cpu_quota = read(dir, "cpu.cfs_quota_us")
                .and_then(|t| parse::single_signed(&t))
                .filter(|&q| q > 0)
                .map(|q| q as f64);
            if let Some(cpu) = read(dir, "cpu.stat")
                && let (Some(periods), Some(throttled), Some(ns)) = (
                    parse::keyed_value(&cpu, "nr_periods"),
                    parse::keyed_value(&cpu, "nr_throttled"),
                    parse::keyed_value(&cpu, "throttled_time"),
                )
            {
                stats.cfs = Some(Cfs {
                    periods: periods as f64,
                    throttled_periods: throttled as f64,
                    throttled_seconds: ns as f64 / 1e9,
                });
            }
        }
        "cpuacct" => {
            stats.cpu_usage_seconds = read(dir, "cpuacct.usage")
                .and_then(|t| parse::single_value(&t))
                .map(|ns| ns as f64 / 1e9);
            stats.per_cpu_seconds = read(dir, "cpuacct.usage_percpu")
                .map(|t| {
                    parse::per_cpu(&t)
                        .into_iter()
                        .map(|ns| ns as f64 / 1e9)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(stat) = read(dir, "cpuacct.stat") {
                stats.cpu_user_seconds =
                    parse::keyed_value(&stat, "user").map(|t| t as f64 / clock_ticks);
                stats.cpu_system_seconds =
                    parse::keyed_value(&stat, "system").map(|t| t as f64 / clock_ticks);
            }
        }
        "memory" => {
            let Some(usage) =
                read(dir, "memory.usage_in_bytes").and_then(|t| parse::single_value(&t))
            else {
                return;
            };
            let stat = read(dir, "memory.stat").unwrap_or_default();
            // With use_hierarchy (always on since Linux 5.x) the total_*
            // keys cover the subtree; cAdvisor reports those.
            let value = |key: &str| {
                parse::keyed_value(&stat, &format!("total_{key}"))
                    .or_else(|| parse::keyed_value(&stat, key))
                    .map(|v| v as f64)
            };
            let own = |key: &str| parse::keyed_value(&stat, key).map(|v| v as f64);
            let usage = usage as f64;
            let both = |key: &str| own(key).map(|v| (v, value(key).unwrap_or(v)));
            let number = |file| {
                read(dir, file)
                    .and_then(|t| parse::single_value(&t))
                    .map(|v| v as f64)
            };
            stats.memory = Some(Memory {
                usage,
                max_usage: number("memory.max_usage_in_bytes"),
                failcnt: number("memory.failcnt"),
                cache: value("cache"),
                rss: value("rss"),
                kernel: number("memory.kmem.usage_in_bytes"),
                mapped_file: value("mapped_file"),
                swap: value("swap"),
                working_set: (usage - value("inactive_file").unwrap_or(0.0)).max(0.0),
                pgfault: both("pgfault"),
                pgmajfault: both("pgmajfault"),
                oom_kills: read(dir, "memory.oom_control")
                    .and_then(|t| parse::keyed_value(&t, "oom_kill"))
                    .map(|v| v as f64),
            });
            stats.memory_limit = number("memory.limit_in_bytes");
            stats.memory_swap_limit = number("memory.memsw.limit_in_bytes");
            stats.memory_reservation = number("memory.soft_limit_in_bytes");
        }
        "blkio" => {
            // The proportional-weight files (CFQ/BFQ) when they say
            // anything, else the throttle layer's, as runc reads them.
            let pick = |files: [&str; 2]| {
                files
                    .iter()
                    .filter_map(|f| read(dir, f))
                    .find(|t| !parse::blkio_v1(t).is_empty())
                    .unwrap_or_default()
            };
            let bytes = pick([
                "blkio.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes",
            ]);
            let requests = pick(["blkio.io_serviced_recursive", "blkio.throttle.io_serviced"]);
            for (text, is_bytes) in [(&bytes, true), (&requests, false)] {
                for line in parse::blkio_v1(text) {
                    let index = match stats
                        .io
                        .iter()
                        .position(|d| d.major == line.major && d.minor == line.minor)
                    {
                        Some(i) => i,
                        None => {
                            stats.io.push(DeviceIo {
                                major: line.major,
                                minor: line.minor,
                                ..DeviceIo::default()
                            });
                            stats.io.len() - 1
                        }
                    };
                    let entry = (line.operation.to_string(), line.value as f64);
                    if is_bytes {
                        stats.io[index].bytes.push(entry);
                    } else {
                        stats.io[index].requests.push(entry);
                    }
                }
            }
        }
        _ => {}
    }
}
