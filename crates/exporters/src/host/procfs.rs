//! The collectors that read procfs: `cpu`, `stat`, `meminfo`, `loadavg`,
//! `pressure`, `netdev` and `diskstats`.

use std::io;
use std::path::Path;

use super::{HostOptions, invalid};
use crate::sys;
use crate::text::{Family, Kind, single};

/// The modes of a `cpu<N>` line of `/proc/stat`, in column order;
/// `guest` and `guest_nice` follow and go to their own family.
const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// `node_cpu_seconds_total` and `node_cpu_guest_seconds_total` from the
/// per-CPU lines of `/proc/stat`.
pub fn cpu(proc_path: &Path, out: &mut String) -> io::Result<()> {
    let stat = std::fs::read_to_string(proc_path.join("stat"))?;
    let ticks = sys::clock_ticks_per_second();
    let mut cpus: Vec<(&str, [f64; 10])> = Vec::new();
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_ascii_whitespace();
        // The aggregate `cpu` line has no number right after `cpu`.
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let Some(id) = fields.next() else { continue };
        let mut values = [0.0; 10];
        for (slot, field) in values.iter_mut().zip(fields) {
            let v: u64 = field.parse().map_err(|_| invalid("stat", line))?;
            *slot = v as f64 / ticks;
        }
        cpus.push((id, values));
    }
    let mut f = Family::new(
        out,
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent running guests, by mode.",
        Kind::Counter,
    );
    for (id, values) in &cpus {
        f.sample(&[("cpu", id), ("mode", "user")], values[8]);
        f.sample(&[("cpu", id), ("mode", "nice")], values[9]);
    }
    let mut f = Family::new(
        out,
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
        Kind::Counter,
    );
    for (id, values) in &cpus {
        for (mode, value) in CPU_MODES.iter().zip(values) {
            f.sample(&[("cpu", id), ("mode", mode)], *value);
        }
    }
    Ok(())
}

/// Boot time, context switches, forks, interrupts and process states from
/// `/proc/stat`.
pub fn stat(proc_path: &Path, out: &mut String) -> io::Result<()> {
    let stat = std::fs::read_to_string(proc_path.join("stat"))?;
    let field = |key: &str| -> io::Result<f64> {
        stat.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| invalid("stat", key))
    };
    let families: [(&str, &str, Kind, f64); 6] = [
        (
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            Kind::Gauge,
            field("btime")?,
        ),
        (
            "node_context_switches_total",
            "Context switches since boot.",
            Kind::Counter,
            field("ctxt")?,
        ),
        (
            "node_forks_total",
            "Processes and threads created since boot.",
            Kind::Counter,
            field("processes")?,
        ),
        (
            "node_intr_total",
            "Interrupts serviced since boot.",
            Kind::Counter,
            field("intr")?,
        ),
        (
            "node_procs_blocked",
            "Processes blocked waiting for I/O.",
            Kind::Gauge,
            field("procs_blocked")?,
        ),
        (
            "node_procs_running",
            "Processes in a runnable state.",
            Kind::Gauge,
            field("procs_running")?,
        ),
    ];
    for (name, help, kind, value) in families {
        single(out, name, help, kind, value);
    }
    Ok(())
}

/// `node_memory_<Field>_bytes` (fields in kB) and `node_memory_<Field>`
/// (unitless counts) for every line of `/proc/meminfo`.
pub fn meminfo(proc_path: &Path, out: &mut String) -> io::Result<()> {
    let text = std::fs::read_to_string(proc_path.join("meminfo"))?;
    let mut name = String::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let value: f64 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid("meminfo", line))?;
        let (value, suffix) = match parts.next() {
            Some("kB") => (value * 1024.0, "_bytes"),
            _ => (value, ""),
        };
        // `Active(anon)` becomes `Active_anon`, as node_exporter spells it.
        name.clear();
        name.push_str("node_memory_");
        for c in key.chars() {
            match c {
                '(' => name.push('_'),
                ')' => {}
                c => name.push(c),
            }
        }
        name.push_str(suffix);
        let help = format!("Memory information field {key} from /proc/meminfo.");
        single(out, &name, &help, Kind::Gauge, value);
    }
    Ok(())
}

/// `node_load1`, `node_load5` and `node_load15` from `/proc/loadavg`.
pub fn loadavg(proc_path: &Path, out: &mut String) -> io::Result<()> {
    let text = std::fs::read_to_string(proc_path.join("loadavg"))?;
    let mut fields = text.split_ascii_whitespace();
    for (name, help) in [
        ("node_load1", "1m load average."),
        ("node_load5", "5m load average."),
        ("node_load15", "15m load average."),
    ] {
        let value: f64 = fields
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid("loadavg", name))?;
        single(out, name, help, Kind::Gauge, value);
    }
    Ok(())
}

/// Pressure stall totals from `/proc/pressure/{cpu,io,memory}`, with
/// node_exporter 1.5's names: `some` is "waiting", `full` is "stalled", and
/// the CPU `full` line (all zeros at the system level) is not exported.
pub fn pressure(proc_path: &Path, out: &mut String) -> io::Result<()> {
    let total = |resource: &str, kind: &str| -> io::Result<f64> {
        let text = std::fs::read_to_string(proc_path.join("pressure").join(resource))?;
        text.lines()
            .find_map(|line| line.strip_prefix(kind)?.strip_prefix(' '))
            .and_then(|rest| {
                rest.split_ascii_whitespace()
                    .find_map(|kv| kv.strip_prefix("total="))
            })
            .and_then(|v| v.parse::<f64>().ok())
            .map(|micros| micros / 1e6)
            .ok_or_else(|| invalid("pressure", resource))
    };
    let families = [
        (
            "node_pressure_cpu_waiting_seconds_total",
            "Seconds processes have waited for CPU time.",
            total("cpu", "some")?,
        ),
        (
            "node_pressure_io_stalled_seconds_total",
            "Seconds no process could make progress because of I/O.",
            total("io", "full")?,
        ),
        (
            "node_pressure_io_waiting_seconds_total",
            "Seconds processes have waited for I/O.",
            total("io", "some")?,
        ),
        (
            "node_pressure_memory_stalled_seconds_total",
            "Seconds no process could make progress because of memory.",
            total("memory", "full")?,
        ),
        (
            "node_pressure_memory_waiting_seconds_total",
            "Seconds processes have waited for memory.",
            total("memory", "some")?,
        ),
    ];
    for (name, help, value) in families {
        single(out, name, help, Kind::Counter, value);
    }
    Ok(())
}

/// The columns of `/proc/net/dev`, in order, as node_exporter names them.
const NETDEV_COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// `node_network_<column>_total` per device from `/proc/net/dev`, plus
/// `receive_nohandler` from sysfs.
pub fn netdev(options: &HostOptions, out: &mut String) -> io::Result<()> {
    let text = std::fs::read_to_string(options.proc_path.join("net/dev"))?;
    let mut devices: Vec<(&str, [f64; 16], Option<f64>)> = Vec::new();
    // The first two lines are headers.
    for line in text.lines().skip(2) {
        let Some((device, rest)) = line.split_once(':') else {
            continue;
        };
        let device = device.trim();
        if options.netdev_device_exclude.is_match(device) {
            continue;
        }
        let mut values = [0.0; 16];
        let mut fields = rest.split_ascii_whitespace();
        for slot in &mut values {
            *slot = fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| invalid("net/dev", line))? as f64;
        }
        let nohandler = std::fs::read_to_string(
            options
                .sys_path
                .join("class/net")
                .join(device)
                .join("statistics/rx_nohandler"),
        )
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok());
        devices.push((device, values, nohandler));
    }
    devices.sort_by(|a, b| a.0.cmp(b.0));
    let mut name = String::new();
    for (column_index, column) in NETDEV_COLUMNS.iter().enumerate() {
        name.clear();
        name.push_str("node_network_");
        name.push_str(column);
        name.push_str("_total");
        let help = format!("Network device statistic {column}.");
        let mut f = Family::new(out, &name, &help, Kind::Counter);
        for (device, values, _) in &devices {
            f.sample(&[("device", device)], values[column_index]);
        }
    }
    if devices.iter().any(|d| d.2.is_some()) {
        let mut f = Family::new(
            out,
            "node_network_receive_nohandler_total",
            "Network device statistic receive_nohandler.",
            Kind::Counter,
        );
        for (device, _, nohandler) in &devices {
            if let Some(v) = nohandler {
                f.sample(&[("device", device)], *v);
            }
        }
    }
    Ok(())
}

/// Bytes per sector in `/proc/diskstats`, fixed by the kernel whatever the
/// device's own sector size.
const SECTOR_BYTES: f64 = 512.0;

/// One diskstats family: name, help, type, the column it reads (counted
/// after major, minor and name) and the factor applied.
struct DiskColumn {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    column: usize,
    factor: f64,
}

const fn disk(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    column: usize,
    factor: f64,
) -> DiskColumn {
    DiskColumn {
        name,
        help,
        kind,
        column,
        factor,
    }
}

const DISK_COLUMNS: [DiskColumn; 17] = [
    disk(
        "node_disk_reads_completed_total",
        "Reads completed.",
        Kind::Counter,
        0,
        1.0,
    ),
    disk(
        "node_disk_reads_merged_total",
        "Reads merged.",
        Kind::Counter,
        1,
        1.0,
    ),
    disk(
        "node_disk_read_bytes_total",
        "Bytes read.",
        Kind::Counter,
        2,
        SECTOR_BYTES,
    ),
    disk(
        "node_disk_read_time_seconds_total",
        "Seconds spent reading.",
        Kind::Counter,
        3,
        0.001,
    ),
    disk(
        "node_disk_writes_completed_total",
        "Writes completed.",
        Kind::Counter,
        4,
        1.0,
    ),
    disk(
        "node_disk_writes_merged_total",
        "Writes merged.",
        Kind::Counter,
        5,
        1.0,
    ),
    disk(
        "node_disk_written_bytes_total",
        "Bytes written.",
        Kind::Counter,
        6,
        SECTOR_BYTES,
    ),
    disk(
        "node_disk_write_time_seconds_total",
        "Seconds spent writing.",
        Kind::Counter,
        7,
        0.001,
    ),
    disk("node_disk_io_now", "I/Os in progress.", Kind::Gauge, 8, 1.0),
    disk(
        "node_disk_io_time_seconds_total",
        "Seconds spent doing I/Os.",
        Kind::Counter,
        9,
        0.001,
    ),
    disk(
        "node_disk_io_time_weighted_seconds_total",
        "Seconds spent doing I/Os, weighted by the number in progress.",
        Kind::Counter,
        10,
        0.001,
    ),
    disk(
        "node_disk_discards_completed_total",
        "Discards completed.",
        Kind::Counter,
        11,
        1.0,
    ),
    disk(
        "node_disk_discards_merged_total",
        "Discards merged.",
        Kind::Counter,
        12,
        1.0,
    ),
    disk(
        "node_disk_discarded_sectors_total",
        "Sectors discarded.",
        Kind::Counter,
        13,
        1.0,
    ),
    disk(
        "node_disk_discard_time_seconds_total",
        "Seconds spent discarding.",
        Kind::Counter,
        14,
        0.001,
    ),
    disk(
        "node_disk_flush_requests_total",
        "Flush requests completed.",
        Kind::Counter,
        15,
        1.0,
    ),
    disk(
        "node_disk_flush_requests_time_seconds_total",
        "Seconds spent flushing.",
        Kind::Counter,
        16,
        0.001,
    ),
];

/// One block device's line of `/proc/diskstats`.
struct Disk<'a> {
    major: &'a str,
    minor: &'a str,
    name: &'a str,
    values: Vec<f64>,
}

/// `node_disk_*` per block device from `/proc/diskstats`, and
/// `node_disk_info` with the udev database's identity labels when present.
pub fn diskstats(options: &HostOptions, out: &mut String) -> io::Result<()> {
    let text = std::fs::read_to_string(options.proc_path.join("diskstats"))?;
    let mut disks = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if options.diskstats_device_exclude.is_match(name) {
            continue;
        }
        let values = fields
            .map(|v| v.parse::<u64>().map(|v| v as f64))
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|_| invalid("diskstats", line))?;
        disks.push(Disk {
            major,
            minor,
            name,
            values,
        });
    }
    disks.sort_by(|a, b| a.name.cmp(b.name));
    for c in &DISK_COLUMNS {
        // Older kernels have fewer columns; a family with no device is left
        // out entirely.
        if !disks.iter().any(|d| d.values.len() > c.column) {
            continue;
        }
        let mut f = Family::new(out, c.name, c.help, c.kind);
        for d in &disks {
            if let Some(v) = d.values.get(c.column) {
                f.sample(&[("device", d.name)], v * c.factor);
            }
        }
    }
    let mut f = Family::new(
        out,
        "node_disk_info",
        "Identity of a block device from /sys/block and the udev database.",
        Kind::Gauge,
    );
    for d in &disks {
        let udev = std::fs::read_to_string(
            options
                .udev_data_path
                .join(format!("b{}:{}", d.major, d.minor)),
        )
        .unwrap_or_default();
        let property = |key: &str| -> &str {
            udev.lines()
                .find_map(|line| {
                    line.strip_prefix("E:")?
                        .strip_prefix(key)?
                        .strip_prefix('=')
                })
                .unwrap_or("")
        };
        f.sample(
            &[
                ("device", d.name),
                ("major", d.major),
                ("minor", d.minor),
                ("model", property("ID_MODEL")),
                ("path", property("ID_PATH")),
                ("revision", property("ID_REVISION")),
                ("serial", property("ID_SERIAL_SHORT")),
                ("wwn", property("ID_WWN")),
            ],
            1.0,
        );
    }
    Ok(())
}
