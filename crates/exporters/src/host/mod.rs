//! The host exporter: node_exporter's metric and label names for the
//! collectors ML hosts need, read straight from procfs and sysfs.
//!
//! [`HostExporter::collect`] writes the chosen [`Collector`]s into a
//! caller's buffer, plus node_exporter's `node_scrape_collector_success`
//! and `node_scrape_collector_duration_seconds` per collector. A collector
//! that fails (a missing file, say `/proc/pressure` on an old kernel)
//! writes nothing of its own and reports success 0; the others go on.
//!
//! The collectors are named like node_exporter's, so the
//! `collect[]=<name>` URL parameter means the same in both. Boot time is
//! in `stat`, as in node_exporter.

use std::path::PathBuf;
use std::time::Instant;

use regex::Regex;

use crate::text::{Family, Kind};

mod procfs;
mod sysfs;

/// One group of host metrics, named like node_exporter's collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Collector {
    Cpu,
    Diskstats,
    Filesystem,
    Hwmon,
    Loadavg,
    Meminfo,
    Netdev,
    Pressure,
    Stat,
    Time,
    Uname,
}

impl Collector {
    /// Every collector, in name order.
    pub const ALL: [Collector; 11] = [
        Collector::Cpu,
        Collector::Diskstats,
        Collector::Filesystem,
        Collector::Hwmon,
        Collector::Loadavg,
        Collector::Meminfo,
        Collector::Netdev,
        Collector::Pressure,
        Collector::Stat,
        Collector::Time,
        Collector::Uname,
    ];

    /// node_exporter's name for the collector.
    pub fn name(self) -> &'static str {
        match self {
            Collector::Cpu => "cpu",
            Collector::Diskstats => "diskstats",
            Collector::Filesystem => "filesystem",
            Collector::Hwmon => "hwmon",
            Collector::Loadavg => "loadavg",
            Collector::Meminfo => "meminfo",
            Collector::Netdev => "netdev",
            Collector::Pressure => "pressure",
            Collector::Stat => "stat",
            Collector::Time => "time",
            Collector::Uname => "uname",
        }
    }

    /// The collector with node_exporter's name `name`.
    pub fn from_name(name: &str) -> Option<Collector> {
        Collector::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Where the host exporter reads from and what it leaves out.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The procfs mount (`/proc`).
    pub proc_path: PathBuf,
    /// The sysfs mount (`/sys`).
    pub sys_path: PathBuf,
    /// The udev database (`/run/udev/data`), for `node_disk_info` labels.
    pub udev_data_path: PathBuf,
    /// Mount points the filesystem collector skips.
    pub filesystem_mount_points_exclude: Regex,
    /// Filesystem types the filesystem collector skips.
    pub filesystem_fs_types_exclude: Regex,
    /// Block devices the diskstats collector skips.
    pub diskstats_device_exclude: Regex,
    /// Network devices the netdev collector skips.
    pub netdev_device_exclude: Regex,
}

impl HostOptions {
    /// The real system with node_exporter 1.5's default exclusions.
    pub fn linux_defaults() -> HostOptions {
        // These are node_exporter 1.5's default flag values; the patterns
        // are constants, so building them cannot fail at run time.
        let regex = |pattern: &str| match Regex::new(pattern) {
            Ok(r) => r,
            Err(e) => unreachable!("built-in pattern {pattern}: {e}"),
        };
        HostOptions {
            proc_path: PathBuf::from("/proc"),
            sys_path: PathBuf::from("/sys"),
            udev_data_path: PathBuf::from("/run/udev/data"),
            filesystem_mount_points_exclude: regex(
                "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
            ),
            filesystem_fs_types_exclude: regex(
                "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$",
            ),
            diskstats_device_exclude: regex("^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$"),
            netdev_device_exclude: regex("^lo$"),
        }
    }
}

/// Reads host metrics on demand; holds no state between scrapes.
#[derive(Clone, Debug)]
pub struct HostExporter {
    options: HostOptions,
}

impl HostExporter {
    pub fn new(options: HostOptions) -> HostExporter {
        HostExporter { options }
    }

    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// Writes the metrics of `collectors` (every collector when empty) into
    /// `out` in the text exposition format.
    pub fn collect(&self, collectors: &[Collector], out: &mut String) {
        let chosen: &[Collector] = if collectors.is_empty() {
            &Collector::ALL
        } else {
            collectors
        };
        let mut outcomes = Vec::with_capacity(chosen.len());
        for &collector in chosen {
            let start = out.len();
            let started = Instant::now();
            let result = self.run(collector, out);
            let seconds = started.elapsed().as_secs_f64();
            if let Err(e) = &result {
                // A collector's partial output would be inconsistent.
                out.truncate(start);
                tracing::debug!(collector = collector.name(), error = %e, "collector failed");
            }
            outcomes.push((collector, seconds, result.is_ok()));
        }
        let mut f = Family::new(
            out,
            "node_scrape_collector_duration_seconds",
            "Seconds a host collector took.",
            Kind::Gauge,
        );
        for (collector, seconds, _) in &outcomes {
            f.sample(&[("collector", collector.name())], *seconds);
        }
        let mut f = Family::new(
            out,
            "node_scrape_collector_success",
            "Whether a host collector succeeded.",
            Kind::Gauge,
        );
        for (collector, _, ok) in &outcomes {
            f.sample(&[("collector", collector.name())], f64::from(u8::from(*ok)));
        }
    }

    fn run(&self, collector: Collector, out: &mut String) -> std::io::Result<()> {
        let o = &self.options;
        match collector {
            Collector::Cpu => {
                procfs::cpu(&o.proc_path, out).and_then(|()| sysfs::cpu_throttles(&o.sys_path, out))
            }
            Collector::Diskstats => procfs::diskstats(o, out),
            Collector::Filesystem => sysfs::filesystem(o, out),
            Collector::Hwmon => sysfs::hwmon(&o.sys_path, out),
            Collector::Loadavg => procfs::loadavg(&o.proc_path, out),
            Collector::Meminfo => procfs::meminfo(&o.proc_path, out),
            Collector::Netdev => procfs::netdev(o, out),
            Collector::Pressure => procfs::pressure(&o.proc_path, out),
            Collector::Stat => procfs::stat(&o.proc_path, out),
            Collector::Time => sysfs::time(&o.sys_path, out),
            Collector::Uname => sysfs::uname(out),
        }
    }
}

/// A parse failure in a procfs or sysfs file, as an I/O error.
fn invalid(file: &str, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{file}: cannot parse {what}"),
    )
}
