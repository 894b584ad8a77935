//! Process metrics (`process_*`) with the names and meanings of Prometheus's
//! Go client: CPU time, memory, file descriptors, threads and start time,
//! read from `/proc/self`.

use std::io;
use std::path::Path;

use crate::sys;
use crate::text::{Kind, single};

/// One reading of a process's resource use.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time in seconds.
    pub cpu_seconds: f64,
    pub resident_memory_bytes: f64,
    pub virtual_memory_bytes: f64,
    pub open_fds: f64,
    /// The soft `RLIMIT_NOFILE`.
    pub max_fds: f64,
    /// Seconds since the Unix epoch.
    pub start_time_seconds: f64,
    pub threads: f64,
}

impl ProcessStats {
    /// Reads the calling process's numbers.
    pub fn read_self() -> io::Result<ProcessStats> {
        let proc_root = Path::new("/proc");
        let stat = std::fs::read_to_string(proc_root.join("self/stat"))?;
        let fields = StatFields::parse(&stat)?;
        let clock_ticks = sys::clock_ticks_per_second();
        let boot_time = sys::boot_time_seconds(proc_root)?;
        let open_fds = std::fs::read_dir(proc_root.join("self/fd"))?.count();
        Ok(ProcessStats {
            cpu_seconds: (fields.utime + fields.stime) as f64 / clock_ticks,
            resident_memory_bytes: fields.rss_pages as f64 * sys::page_size(),
            virtual_memory_bytes: fields.vsize_bytes as f64,
            open_fds: open_fds as f64,
            max_fds: sys::max_open_files(),
            start_time_seconds: boot_time + fields.starttime as f64 / clock_ticks,
            threads: fields.threads as f64,
        })
    }

    /// Writes the seven `process_*` families in the text format.
    pub fn write_text(&self, out: &mut String) {
        single(
            out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            Kind::Counter,
            self.cpu_seconds,
        );
        single(
            out,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            Kind::Gauge,
            self.max_fds,
        );
        single(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
            self.open_fds,
        );
        single(
            out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
            self.resident_memory_bytes,
        );
        single(
            out,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Kind::Gauge,
            self.start_time_seconds,
        );
        single(
            out,
            "process_threads",
            "Number of OS threads in the process.",
            Kind::Gauge,
            self.threads,
        );
        single(
            out,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Kind::Gauge,
            self.virtual_memory_bytes,
        );
    }
}

/// The fields of `/proc/<pid>/stat` this module uses.
struct StatFields {
    utime: u64,
    stime: u64,
    threads: u64,
    starttime: u64,
    vsize_bytes: u64,
    rss_pages: u64,
}

impl StatFields {
    fn parse(stat: &str) -> io::Result<StatFields> {
        // The command name is in parentheses and may itself contain spaces
        // and parentheses, so fields are counted from the last `)`.
        let after = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 1..))
            .ok_or_else(|| invalid("no ')' in /proc/self/stat"))?;
        // `fields[0]` is field 3 (state) of proc(5).
        let fields: Vec<&str> = after.split_ascii_whitespace().collect();
        let field = |n: usize| -> io::Result<u64> {
            fields
                .get(n - 3)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid(&format!("field {n} of /proc/self/stat")))
        };
        Ok(StatFields {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            starttime: field(22)?,
            vsize_bytes: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let stats = ProcessStats::read_self().unwrap();
        assert!(stats.resident_memory_bytes > 0.0);
        assert!(stats.virtual_memory_bytes >= stats.resident_memory_bytes);
        assert!(stats.threads >= 1.0);
        assert!(stats.open_fds >= 1.0 && stats.open_fds <= stats.max_fds);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stats.start_time_seconds <= now + 1.0);
        assert!(stats.start_time_seconds > now - 86_400.0);
    }

    #[test]
    fn command_names_with_parentheses() {
        let line = "12 (a) b) S 1 2 3 4 5 6 7 8 9 10 200 300 0 0 20 0 7 0 5000 4096 10 x";
        let f = StatFields::parse(line).unwrap();
        assert_eq!((f.utime, f.stime, f.threads), (200, 300, 7));
        assert_eq!((f.starttime, f.vsize_bytes, f.rss_pages), (5000, 4096, 10));
    }
}
