//! The collectors that read sysfs or call the kernel directly:
//! `filesystem`, `hwmon`, `time` and `uname`.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::HostOptions;
use crate::sys;
use crate::text::{Family, Kind, single};

/// One mounted filesystem from the mount table.
struct Mount {
    device: String,
    mount_point: String,
    fs_type: String,
    read_only: bool,
}

/// Decodes the octal escapes (`\040` for a space) of the mount table.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
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

/// `node_filesystem_*` per mounted filesystem: sizes and inodes from
/// `statfs(2)`, read-only state from the mount options. The mount table is
/// init's (`/proc/1/mounts`) when readable, as node_exporter reads it, else
/// this process's.
pub fn filesystem(options: &HostOptions, out: &mut String) -> io::Result<()> {
    let table = std::fs::read_to_string(options.proc_path.join("1/mounts"))
        .or_else(|_| std::fs::read_to_string(options.proc_path.join("mounts")))?;
    let mut seen = BTreeSet::new();
    let mut mounts = Vec::new();
    for line in table.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type), Some(mount_options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mount = Mount {
            device: unescape_mount_field(device),
            mount_point: unescape_mount_field(mount_point),
            fs_type: fs_type.to_string(),
            read_only: mount_options.split(',').any(|o| o == "ro"),
        };
        if options
            .filesystem_mount_points_exclude
            .is_match(&mount.mount_point)
            || options.filesystem_fs_types_exclude.is_match(&mount.fs_type)
        {
            continue;
        }
        // A filesystem mounted twice at one place (bind mounts over each
        // other) would give duplicate series.
        if seen.insert((
            mount.device.clone(),
            mount.mount_point.clone(),
            mount.fs_type.clone(),
        )) {
            mounts.push(mount);
        }
    }
    mounts.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    let stats: Vec<Option<sys::FsStats>> = mounts.iter().map(statfs_with_limit).collect();
    type Value = fn(&sys::FsStats) -> f64;
    let families: [(&str, &str, Value); 5] = [
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            |s| (s.blocks_available as f64) * s.block_size as f64,
        ),
        (
            "node_filesystem_files",
            "Filesystem total file nodes.",
            |s| s.files as f64,
        ),
        (
            "node_filesystem_files_free",
            "Filesystem free file nodes.",
            |s| s.files_free as f64,
        ),
        (
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            |s| (s.blocks_free as f64) * s.block_size as f64,
        ),
        (
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
            |s| (s.blocks as f64) * s.block_size as f64,
        ),
    ];
    let labels = |m: &Mount| -> [(&'static str, String); 3] {
        [
            ("device", m.device.clone()),
            ("fstype", m.fs_type.clone()),
            ("mountpoint", m.mount_point.clone()),
        ]
    };
    let write = |f: &mut Family<'_>, m: &Mount, value: f64| {
        let l = labels(m);
        f.sample(
            &[(l[0].0, &l[0].1), (l[1].0, &l[1].1), (l[2].0, &l[2].1)],
            value,
        );
    };
    for (name, help, value) in families {
        let mut f = Family::new(out, name, help, Kind::Gauge);
        for (m, s) in mounts.iter().zip(&stats) {
            if let Some(s) = s {
                write(&mut f, m, value(s));
            }
        }
    }
    let mut f = Family::new(
        out,
        "node_filesystem_device_error",
        "Whether statfs failed for the filesystem.",
        Kind::Gauge,
    );
    for (m, s) in mounts.iter().zip(&stats) {
        write(&mut f, m, if s.is_some() { 0.0 } else { 1.0 });
    }
    let mut f = Family::new(
        out,
        "node_filesystem_readonly",
        "Whether the filesystem is mounted read-only.",
        Kind::Gauge,
    );
    for m in &mounts {
        write(&mut f, m, if m.read_only { 1.0 } else { 0.0 });
    }
    Ok(())
}

/// Filesystem types whose `statfs` can hang on a lost server.
const NETWORK_FS_TYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "lustre",
    "9p",
    "afs",
];

/// How long `statfs` on a network filesystem may take before the mount is
/// reported as an error and skipped until that call returns
/// (node_exporter's `--collector.filesystem.mount-timeout` default).
const NETWORK_STATFS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Mount points whose `statfs` is still hanging on a helper thread.
static STUCK_MOUNTS: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

/// `statfs` on a mount; `None` on error. Network filesystems are asked on a
/// helper thread with [`NETWORK_STATFS_TIMEOUT`], so a hung server costs
/// one parked thread per mount, not a hung scrape per scrape.
fn statfs_with_limit(m: &Mount) -> Option<sys::FsStats> {
    let is_network =
        NETWORK_FS_TYPES.contains(&m.fs_type.as_str()) || m.fs_type.starts_with("fuse.");
    if !is_network {
        return sys::statfs(Path::new(&m.mount_point)).ok();
    }
    // Marked before asking and unmarked by the helper when statfs returns,
    // so a call that outlives the timeout keeps the mount skipped.
    if !STUCK_MOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(m.mount_point.clone())
    {
        return None;
    }
    let (send, receive) = std::sync::mpsc::channel();
    let mount_point = m.mount_point.clone();
    let spawned = std::thread::Builder::new()
        .name("statfs".into())
        .spawn(move || {
            let result = sys::statfs(Path::new(&mount_point)).ok();
            STUCK_MOUNTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&mount_point);
            let _ = send.send(result);
        });
    if spawned.is_err() {
        STUCK_MOUNTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&m.mount_point);
        return None;
    }
    match receive.recv_timeout(NETWORK_STATFS_TIMEOUT) {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(mount_point = %m.mount_point, "statfs did not return; skipping the mount until it does");
            None
        }
    }
}

/// A chip's name as node_exporter derives it: `<parent dir>_<device dir>`
/// of the resolved `device` link, else the `name` file, else the hwmon
/// directory's own name; lower-cased with anything but `[a-z0-9:_]` made
/// `_` and `_` trimmed at both ends.
fn hwmon_chip_name(dir: &Path) -> String {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let device_name = device
            .file_name()
            .map(|n| clean_name(&n.to_string_lossy()))
            .unwrap_or_default();
        let device_type = device
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| clean_name(&n.to_string_lossy()))
            .unwrap_or_default();
        if !device_type.is_empty() && !device_name.is_empty() {
            return format!("{device_type}_{device_name}");
        }
        if !device_name.is_empty() {
            return device_name;
        }
    }
    if let Ok(name) = std::fs::read_to_string(dir.join("name")) {
        let name = clean_name(name.trim());
        if !name.is_empty() {
            return name;
        }
    }
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    real.file_name()
        .map(|n| clean_name(&n.to_string_lossy()))
        .unwrap_or_default()
}

fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_matches('_').to_string()
}

/// One temperature sensor of a chip.
struct TempSensor {
    chip: String,
    sensor: String,
    input: Option<f64>,
    crit: Option<f64>,
    max: Option<f64>,
    label: Option<String>,
}

/// Temperature sensors from `/sys/class/hwmon`: `node_hwmon_temp_celsius`,
/// `..._crit_celsius`, `..._max_celsius`, the chip names and the sensor
/// labels. Hosts without hwmon (most VMs) export nothing, as node_exporter.
pub fn hwmon(sys_path: &Path, out: &mut String) -> io::Result<()> {
    let class = sys_path.join("class/hwmon");
    let entries = match std::fs::read_dir(&class) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut chips: Vec<(String, Option<String>)> = Vec::new();
    let mut sensors = Vec::new();
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for dir in dirs {
        let chip = hwmon_chip_name(&dir);
        let chip_label = std::fs::read_to_string(dir.join("name"))
            .ok()
            .map(|n| n.trim().to_string());
        // Older drivers put the sensor files under `device/`.
        let mut names = BTreeSet::new();
        for base in [dir.clone(), dir.join("device")] {
            if let Ok(files) = std::fs::read_dir(&base) {
                for file in files.flatten() {
                    let name = file.file_name().to_string_lossy().into_owned();
                    if let Some(sensor) = name.strip_suffix("_input")
                        && sensor.starts_with("temp")
                    {
                        names.insert((base.clone(), sensor.to_string()));
                    }
                }
            }
        }
        let read = |base: &Path, file: String| -> Option<String> {
            std::fs::read_to_string(base.join(file))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let milli = |base: &Path, file: String| -> Option<f64> {
            read(base, file)?.parse::<f64>().ok().map(|v| v / 1000.0)
        };
        for (base, sensor) in names {
            sensors.push(TempSensor {
                chip: chip.clone(),
                input: milli(&base, format!("{sensor}_input")),
                crit: milli(&base, format!("{sensor}_crit")),
                max: milli(&base, format!("{sensor}_max")),
                label: read(&base, format!("{sensor}_label")),
                sensor,
            });
        }
        chips.push((chip, chip_label));
    }
    if chips.is_empty() {
        return Ok(());
    }
    let mut f = Family::new(
        out,
        "node_hwmon_chip_names",
        "Annotation metric for human-readable chip names.",
        Kind::Gauge,
    );
    for (chip, name) in &chips {
        if let Some(name) = name {
            f.sample(&[("chip", chip), ("chip_name", name)], 1.0);
        }
    }
    let mut f = Family::new(
        out,
        "node_hwmon_sensor_label",
        "Label of a hardware sensor, as the driver names it.",
        Kind::Gauge,
    );
    for s in &sensors {
        if let Some(label) = &s.label {
            f.sample(
                &[("chip", &s.chip), ("label", label), ("sensor", &s.sensor)],
                1.0,
            );
        }
    }
    type Reading = fn(&TempSensor) -> Option<f64>;
    let families: [(&str, &str, Reading); 3] = [
        (
            "node_hwmon_temp_celsius",
            "Hardware monitor temperature (input).",
            |s| s.input,
        ),
        (
            "node_hwmon_temp_crit_celsius",
            "Hardware monitor temperature (crit).",
            |s| s.crit,
        ),
        (
            "node_hwmon_temp_max_celsius",
            "Hardware monitor temperature (max).",
            |s| s.max,
        ),
    ];
    for (name, help, reading) in families {
        if !sensors.iter().any(|s| reading(s).is_some()) {
            continue;
        }
        let mut f = Family::new(out, name, help, Kind::Gauge);
        for s in &sensors {
            if let Some(v) = reading(s) {
                f.sample(&[("chip", &s.chip), ("sensor", &s.sensor)], v);
            }
        }
    }
    Ok(())
}

/// Thermal throttling counts per core and per package from
/// `/sys/devices/system/cpu/cpu<N>/thermal_throttle` (Intel CPUs with the
/// `therm_throt` driver; absent elsewhere, which exports nothing). Sibling
/// threads of one core share a counter, so each core and each package is
/// counted once.
pub fn cpu_throttles(sys_path: &Path, out: &mut String) -> io::Result<()> {
    let entries = match std::fs::read_dir(sys_path.join("devices/system/cpu")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut cpus: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    cpus.sort();
    let read = |path: PathBuf| -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut packages: std::collections::BTreeMap<String, f64> = Default::default();
    let mut cores: std::collections::BTreeMap<(String, String), f64> = Default::default();
    for cpu in cpus {
        let (Some(package), Some(core)) = (
            read(cpu.join("topology/physical_package_id")),
            read(cpu.join("topology/core_id")),
        ) else {
            continue;
        };
        let throttle = cpu.join("thermal_throttle");
        if !packages.contains_key(&package)
            && let Some(v) =
                read(throttle.join("package_throttle_count")).and_then(|v| v.parse().ok())
        {
            packages.insert(package.clone(), v);
        }
        if !cores.contains_key(&(package.clone(), core.clone()))
            && let Some(v) = read(throttle.join("core_throttle_count")).and_then(|v| v.parse().ok())
        {
            cores.insert((package, core), v);
        }
    }
    if !cores.is_empty() {
        let mut f = Family::new(
            out,
            "node_cpu_core_throttles_total",
            "Times this CPU core was throttled for temperature.",
            Kind::Counter,
        );
        for ((package, core), v) in &cores {
            f.sample(&[("core", core), ("package", package)], *v);
        }
    }
    if !packages.is_empty() {
        let mut f = Family::new(
            out,
            "node_cpu_package_throttles_total",
            "Times this CPU package was throttled for temperature.",
            Kind::Counter,
        );
        for (package, v) in &packages {
            f.sample(&[("package", package)], *v);
        }
    }
    Ok(())
}

/// `node_time_seconds`, the local time zone's offset, and the clock
/// sources from `/sys/devices/system/clocksource`.
pub fn time(sys_path: &Path, out: &mut String) -> io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut clock_sources: Vec<(String, Vec<String>, String)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(sys_path.join("devices/system/clocksource")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(device) = name.strip_prefix("clocksource") else {
                continue;
            };
            let read =
                |file: &str| std::fs::read_to_string(entry.path().join(file)).unwrap_or_default();
            let available = read("available_clocksource")
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect();
            let current = read("current_clocksource").trim().to_string();
            clock_sources.push((device.to_string(), available, current));
        }
    }
    clock_sources.sort();
    if !clock_sources.is_empty() {
        let mut f = Family::new(
            out,
            "node_time_clocksource_available_info",
            "Available clock sources from /sys/devices/system/clocksource.",
            Kind::Gauge,
        );
        for (device, available, _) in &clock_sources {
            for source in available {
                f.sample(&[("clocksource", source), ("device", device)], 1.0);
            }
        }
        let mut f = Family::new(
            out,
            "node_time_clocksource_current_info",
            "Current clock source from /sys/devices/system/clocksource.",
            Kind::Gauge,
        );
        for (device, _, current) in &clock_sources {
            if !current.is_empty() {
                f.sample(&[("clocksource", current), ("device", device)], 1.0);
            }
        }
    }
    single(
        out,
        "node_time_seconds",
        "System time in seconds since epoch (1970).",
        Kind::Gauge,
        now,
    );
    let (zone, offset) = sys::local_time_zone(now as i64);
    Family::new(
        out,
        "node_time_zone_offset_seconds",
        "System time zone offset in seconds.",
        Kind::Gauge,
    )
    .sample(&[("time_zone", &zone)], offset as f64);
    Ok(())
}

/// `node_uname_info` from `uname(2)`.
pub fn uname(out: &mut String) -> io::Result<()> {
    let u = sys::uname()?;
    Family::new(
        out,
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        Kind::Gauge,
    )
    .sample(
        &[
            ("domainname", &u.domainname),
            ("machine", &u.machine),
            ("nodename", &u.nodename),
            ("release", &u.release),
            ("sysname", &u.sysname),
            ("version", &u.version),
        ],
        1.0,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_escapes() {
        assert_eq!(unescape_mount_field("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mount_field("/x\\"), "/x\\");
        assert_eq!(unescape_mount_field("/x\\09"), "/x\\09");
    }

    #[test]
    fn chip_names_are_cleaned() {
        assert_eq!(clean_name("Platform.Coretemp-0"), "platform_coretemp_0");
        assert_eq!(clean_name("__a b__"), "a_b");
    }
}
