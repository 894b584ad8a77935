//! The line formats of the cgroup and procfs files the container exporter
//! reads, each parsed by one pure function over the file's text (so the
//! fuzz target `container_files` drives them all without a machine).
//!
//! Lines that do not parse are skipped rather than failing the file: the
//! kernel adds keys over time, and one odd line must not hide the rest.

/// `key value` lines: `cpu.stat`, `memory.stat`, `memory.events`,
/// `cpuacct.stat`, `memory.oom_control`. Values that are not unsigned
/// integers are skipped.
pub fn flat_keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let key = fields.next()?;
        let value = fields.next()?.parse::<u64>().ok()?;
        Some((key, value))
    })
}

/// The value of `key` in a `key value` file.
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    flat_keyed(text).find_map(|(k, v)| (k == key).then_some(v))
}

/// A file holding one number (`memory.current`, `cpu.shares`, ...);
/// `max` (cgroup v2's "no limit") is `u64::MAX`.
pub fn single_value(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(u64::MAX),
        number => number.parse().ok(),
    }
}

/// A file holding one signed number (`cpu.cfs_quota_us`, where -1 means
/// no quota).
pub fn single_signed(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

/// cgroup v2 `cpu.max`: the quota (`None` for `max`) and the period, both
/// in microseconds.
pub fn cpu_max(text: &str) -> Option<(Option<u64>, u64)> {
    let mut fields = text.split_ascii_whitespace();
    let quota = match fields.next()? {
        "max" => None,
        number => Some(number.parse().ok()?),
    };
    let period = fields.next()?.parse().ok()?;
    Some((quota, period))
}

/// cgroup v1 `cpuacct.usage_percpu`: nanoseconds per CPU, in CPU order.
pub fn per_cpu(text: &str) -> Vec<u64> {
    text.split_ascii_whitespace()
        .map_while(|v| v.parse().ok())
        .collect()
}

/// One device's line of cgroup v2 `io.stat`: `8:0 rbytes=1 wbytes=2 ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoStatLine<'a> {
    pub major: u32,
    pub minor: u32,
    pub values: Vec<(&'a str, u64)>,
}

/// cgroup v2 `io.stat`.
pub fn io_stat(text: &str) -> Vec<IoStatLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (major, minor) = device_number(fields.next()?)?;
            let values = fields
                .filter_map(|field| {
                    let (key, value) = field.split_once('=')?;
                    Some((key, value.parse().ok()?))
                })
                .collect();
            Some(IoStatLine {
                major,
                minor,
                values,
            })
        })
        .collect()
}

/// One line of a cgroup v1 blkio file (`blkio.throttle.io_service_bytes`,
/// `blkio.io_serviced_recursive`, ...): device, operation, value. The
/// closing `Total N` line (no device) is left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlkioLine<'a> {
    pub major: u32,
    pub minor: u32,
    pub operation: &'a str,
    pub value: u64,
}

/// A cgroup v1 blkio file.
pub fn blkio_v1(text: &str) -> Vec<BlkioLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (major, minor) = device_number(fields.next()?)?;
            let operation = fields.next()?;
            let value = fields.next()?.parse().ok()?;
            Some(BlkioLine {
                major,
                minor,
                operation,
                value,
            })
        })
        .collect()
}

/// `MAJOR:MINOR`.
pub fn device_number(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The cgroup of a process from `/proc/<pid>/cgroup`: the v2 line
/// (`0::/path`) when `controller` is `None`, else the v1 line listing that
/// controller (`4:memory:/path`, or `2:cpu,cpuacct:/path`).
pub fn proc_cgroup_path<'a>(text: &'a str, controller: Option<&str>) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _hierarchy = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let wanted = match controller {
            None => controllers.is_empty(),
            Some(name) => controllers.split(',').any(|c| c == name),
        };
        wanted.then_some(path)
    })
}

/// One interface of `/proc/<pid>/net/dev`: its name and the 16 counters
/// (receive bytes, packets, errs, drop, fifo, frame, compressed,
/// multicast, then transmit bytes, packets, errs, drop, fifo, colls,
/// carrier, compressed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDevLine<'a> {
    pub interface: &'a str,
    pub counters: [u64; 16],
}

impl NetDevLine<'_> {
    pub fn receive_bytes(&self) -> u64 {
        self.counters[0]
    }
    pub fn receive_packets(&self) -> u64 {
        self.counters[1]
    }
    pub fn receive_errors(&self) -> u64 {
        self.counters[2]
    }
    pub fn receive_dropped(&self) -> u64 {
        self.counters[3]
    }
    pub fn transmit_bytes(&self) -> u64 {
        self.counters[8]
    }
    pub fn transmit_packets(&self) -> u64 {
        self.counters[9]
    }
    pub fn transmit_errors(&self) -> u64 {
        self.counters[10]
    }
    pub fn transmit_dropped(&self) -> u64 {
        self.counters[11]
    }
}

/// `/proc/<pid>/net/dev` (its two header lines have no counters and are
/// skipped with any other line that does not parse).
pub fn net_dev(text: &str) -> Vec<NetDevLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let (interface, rest) = line.split_once(':')?;
            let mut counters = [0u64; 16];
            let mut fields = rest.split_ascii_whitespace();
            for slot in &mut counters {
                *slot = fields.next()?.parse().ok()?;
            }
            Some(NetDevLine {
                interface: interface.trim(),
                counters,
            })
        })
        .collect()
}

/// One line of `/proc/<pid>/mountinfo`: the device number, mount point,
/// filesystem type and source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfoLine<'a> {
    pub major: u32,
    pub minor: u32,
    /// As written, with the kernel's octal escapes (`\040`).
    pub mount_point: &'a str,
    pub fs_type: &'a str,
    pub source: &'a str,
}

/// `/proc/<pid>/mountinfo`: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 -
/// ext3 /dev/root rw,errors=continue` (optional fields end at `-`).
pub fn mountinfo(text: &str) -> Vec<MountInfoLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut fields = before.split_ascii_whitespace();
            let _id = fields.next()?;
            let _parent = fields.next()?;
            let (major, minor) = device_number(fields.next()?)?;
            let _root = fields.next()?;
            let mount_point = fields.next()?;
            let mut tail = after.split_ascii_whitespace();
            let fs_type = tail.next()?;
            let source = tail.next()?;
            Some(MountInfoLine {
                major,
                minor,
                mount_point,
                fs_type,
                source,
            })
        })
        .collect()
}

/// One block device's line of `/proc/diskstats`: its number, name and
/// counters (reads completed, reads merged, sectors read, ms reading,
/// writes completed, writes merged, sectors written, ms writing, I/Os in
/// progress, ms doing I/O, weighted ms doing I/O, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskStatsLine<'a> {
    pub major: u32,
    pub minor: u32,
    pub name: &'a str,
    pub counters: Vec<u64>,
}

/// `/proc/diskstats`; lines with fewer than the 11 classic counters are
/// skipped.
pub fn diskstats(text: &str) -> Vec<DiskStatsLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let major = fields.next()?.parse().ok()?;
            let minor = fields.next()?.parse().ok()?;
            let name = fields.next()?;
            let counters: Vec<u64> = fields.map_while(|v| v.parse().ok()).collect();
            (counters.len() >= 11).then_some(DiskStatsLine {
                major,
                minor,
                name,
                counters,
            })
        })
        .collect()
}

/// The `DEVNAME=` of a sysfs `uevent` file (`sda`, `nvme0n1p1`).
pub fn uevent_devname(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("DEVNAME="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let text = "usage_usec 123\nuser_usec 100\nbad line\nsystem_usec x\nnr_periods 4\n";
        let pairs: Vec<_> = flat_keyed(text).collect();
        assert_eq!(
            pairs,
            [("usage_usec", 123), ("user_usec", 100), ("nr_periods", 4)]
        );
        assert_eq!(keyed_value(text, "nr_periods"), Some(4));
        assert_eq!(keyed_value(text, "system_usec"), None);
        assert_eq!(single_value("max\n"), Some(u64::MAX));
        assert_eq!(single_value(" 42\n"), Some(42));
        assert_eq!(single_value(""), None);
        assert_eq!(single_signed("-1\n"), Some(-1));
    }

    #[test]
    fn cpu_max_forms() {
        assert_eq!(cpu_max("max 100000\n"), Some((None, 100000)));
        assert_eq!(cpu_max("50000 100000\n"), Some((Some(50000), 100000)));
        assert_eq!(cpu_max("max\n"), None);
        assert_eq!(cpu_max("x 1"), None);
    }

    #[test]
    fn io_files() {
        let v2 = io_stat(
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=1\nbad\n",
        );
        assert_eq!(v2.len(), 2);
        assert_eq!((v2[0].major, v2[0].minor), (8, 0));
        assert_eq!(v2[0].values[1], ("wbytes", 8192));
        let v1 = blkio_v1("8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n");
        assert_eq!(v1.len(), 3);
        assert_eq!(v1[1].operation, "Write");
        assert_eq!(device_number("8:16"), Some((8, 16)));
        assert_eq!(device_number("8"), None);
    }

    #[test]
    fn proc_files() {
        let v1 = "12:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        assert_eq!(proc_cgroup_path(v1, Some("cpuacct")), Some("/docker/abc"));
        assert_eq!(proc_cgroup_path(v1, Some("memory")), Some("/docker/abc"));
        assert_eq!(proc_cgroup_path(v1, None), Some("/"));
        assert_eq!(proc_cgroup_path("0::/a/b:c\n", None), Some("/a/b:c"));
        let net = net_dev(
            "Inter-|   Receive\n face |bytes\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n    lo: 1 2\n",
        );
        assert_eq!(net.len(), 1);
        assert_eq!(net[0].interface, "eth0");
        assert_eq!((net[0].receive_bytes(), net[0].transmit_bytes()), (1, 9));
        let mounts = mountinfo(
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n23 22 0:21 / /proc rw - proc proc rw\n",
        );
        assert_eq!(mounts.len(), 2);
        assert_eq!(
            (mounts[0].major, mounts[0].fs_type, mounts[0].source),
            (8, "ext4", "/dev/sda1")
        );
        let disks =
            diskstats("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n 7 0 loop0 1 2\n");
        assert_eq!(disks.len(), 1);
        assert_eq!(disks[0].counters[4], 5);
        assert_eq!(uevent_devname("MAJOR=8\nDEVNAME=sda\n"), Some("sda"));
        assert_eq!(per_cpu("10 20 30 \n"), [10, 20, 30]);
    }
}
