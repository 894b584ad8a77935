//! What the PostgreSQL exporter asks and how rows become metrics, with
//! postgres_exporter 0.11's names: its built-in query namespaces
//! (`pg_stat_database`, `pg_stat_database_conflicts`, `pg_locks`,
//! `pg_stat_replication`, `pg_replication_slots`, `pg_stat_archiver`,
//! `pg_stat_activity`), its two collectors (`database`, `bgwriter`), and
//! `pg_settings`.
//!
//! A namespace's metrics are `<namespace>_<column>`: the columns listed in
//! it are labels, counters or gauges (or dropped); a column it does not
//! list becomes an untyped metric when its value is a number, so a newer
//! server's new columns show up as they do in postgres_exporter. The
//! queries are written for PostgreSQL 10 and later.

use crate::text::Kind;

/// What a column becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Discard,
    Label,
    Counter,
    Gauge,
}

/// A column a namespace knows.
pub struct Column {
    pub name: &'static str,
    pub usage: Usage,
    pub help: &'static str,
}

/// One query namespace.
pub struct Namespace {
    pub name: &'static str,
    pub query: &'static str,
    pub columns: &'static [Column],
}

impl Namespace {
    /// The label columns, in order.
    pub fn labels(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns
            .iter()
            .filter(|c| c.usage == Usage::Label)
            .map(|c| c.name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl Usage {
    pub fn kind(self) -> Option<Kind> {
        match self {
            Usage::Counter => Some(Kind::Counter),
            Usage::Gauge => Some(Kind::Gauge),
            Usage::Discard | Usage::Label => None,
        }
    }
}

const fn col(name: &'static str, usage: Usage, help: &'static str) -> Column {
    Column { name, usage, help }
}

use Usage::{Counter, Discard, Gauge, Label};

/// The namespaces, in the order they are queried.
pub const NAMESPACES: [Namespace; 7] = [
    Namespace {
        name: "pg_stat_database",
        query: "SELECT * FROM pg_stat_database",
        columns: &[
            col("datid", Label, "OID of a database."),
            col("datname", Label, "Name of this database."),
            col(
                "numbackends",
                Gauge,
                "Number of backends currently connected to this database.",
            ),
            col(
                "xact_commit",
                Counter,
                "Number of transactions in this database that have been committed.",
            ),
            col(
                "xact_rollback",
                Counter,
                "Number of transactions in this database that have been rolled back.",
            ),
            col(
                "blks_read",
                Counter,
                "Number of disk blocks read in this database.",
            ),
            col(
                "blks_hit",
                Counter,
                "Number of times disk blocks were found already in the buffer cache.",
            ),
            col(
                "tup_returned",
                Counter,
                "Number of rows returned by queries in this database.",
            ),
            col(
                "tup_fetched",
                Counter,
                "Number of rows fetched by queries in this database.",
            ),
            col(
                "tup_inserted",
                Counter,
                "Number of rows inserted by queries in this database.",
            ),
            col(
                "tup_updated",
                Counter,
                "Number of rows updated by queries in this database.",
            ),
            col(
                "tup_deleted",
                Counter,
                "Number of rows deleted by queries in this database.",
            ),
            col(
                "conflicts",
                Counter,
                "Number of queries canceled due to conflicts with recovery in this database.",
            ),
            col(
                "temp_files",
                Counter,
                "Number of temporary files created by queries in this database.",
            ),
            col(
                "temp_bytes",
                Counter,
                "Total amount of data written to temporary files by queries in this database.",
            ),
            col(
                "deadlocks",
                Counter,
                "Number of deadlocks detected in this database.",
            ),
            col(
                "blk_read_time",
                Counter,
                "Time spent reading data file blocks by backends in this database, in milliseconds.",
            ),
            col(
                "blk_write_time",
                Counter,
                "Time spent writing data file blocks by backends in this database, in milliseconds.",
            ),
            col(
                "stats_reset",
                Counter,
                "Time at which these statistics were last reset.",
            ),
        ],
    },
    Namespace {
        name: "pg_stat_database_conflicts",
        query: "SELECT * FROM pg_stat_database_conflicts",
        columns: &[
            col("datid", Label, "OID of a database."),
            col("datname", Label, "Name of this database."),
            col(
                "confl_tablespace",
                Counter,
                "Number of queries in this database that have been canceled due to dropped tablespaces.",
            ),
            col(
                "confl_lock",
                Counter,
                "Number of queries in this database that have been canceled due to lock timeouts.",
            ),
            col(
                "confl_snapshot",
                Counter,
                "Number of queries in this database that have been canceled due to old snapshots.",
            ),
            col(
                "confl_bufferpin",
                Counter,
                "Number of queries in this database that have been canceled due to pinned buffers.",
            ),
            col(
                "confl_deadlock",
                Counter,
                "Number of queries in this database that have been canceled due to deadlocks.",
            ),
        ],
    },
    Namespace {
        name: "pg_locks",
        // Every lock mode for every database, 0 where none is held.
        query: "SELECT d.datname, m.mode, COALESCE(l.count, 0) AS count \
                FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), \
                      ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'), \
                      ('exclusivelock'), ('accessexclusivelock'), ('sireadlock')) AS m(mode) \
                CROSS JOIN pg_database d \
                LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count \
                           FROM pg_locks WHERE database IS NOT NULL \
                           GROUP BY database, lower(mode)) AS l \
                  ON l.mode = m.mode AND l.database = d.oid \
                ORDER BY 1",
        columns: &[
            col("datname", Label, "Name of this database."),
            col("mode", Label, "Type of lock."),
            col("count", Gauge, "Number of locks."),
        ],
    },
    Namespace {
        name: "pg_stat_replication",
        // The WAL senders, with the slot each one streams from and the
        // primary's WAL position; NULL positions on a standby.
        query: "SELECT r.*, \
                  (SELECT s.slot_name FROM pg_replication_slots s WHERE s.active_pid = r.pid LIMIT 1) AS slot_name, \
                  (CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END) AS pg_current_wal_lsn, \
                  (CASE WHEN pg_is_in_recovery() THEN NULL \
                        ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), pg_lsn('0/0'))::float8 END) AS pg_current_wal_lsn_bytes, \
                  (CASE WHEN pg_is_in_recovery() THEN NULL \
                        ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::float8 END) AS pg_wal_lsn_diff \
                FROM pg_stat_replication r",
        columns: &[
            col("pid", Discard, ""),
            col("usesysid", Discard, ""),
            col("usename", Discard, ""),
            col(
                "application_name",
                Label,
                "Name of the application that is connected to this WAL sender.",
            ),
            col(
                "client_addr",
                Label,
                "IP address of the client connected to this WAL sender.",
            ),
            col("client_hostname", Discard, ""),
            col("client_port", Discard, ""),
            col("backend_start", Discard, ""),
            col("backend_xmin", Discard, ""),
            col("state", Label, "Current WAL sender state."),
            col("sent_lsn", Discard, ""),
            col("write_lsn", Discard, ""),
            col("flush_lsn", Discard, ""),
            col("replay_lsn", Discard, ""),
            col("write_lag", Discard, ""),
            col("flush_lag", Discard, ""),
            col("replay_lag", Discard, ""),
            col("sync_priority", Discard, ""),
            col("sync_state", Discard, ""),
            col(
                "slot_name",
                Label,
                "The replication slot this WAL sender streams from.",
            ),
            col("pg_current_wal_lsn", Discard, ""),
            col("pg_current_wal_lsn_bytes", Gauge, "WAL position in bytes."),
            col(
                "pg_wal_lsn_diff",
                Gauge,
                "Lag in bytes between master and slave.",
            ),
        ],
    },
    Namespace {
        name: "pg_replication_slots",
        query: "SELECT slot_name, database, active, \
                  (CASE WHEN pg_is_in_recovery() THEN NULL \
                        ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) END) AS pg_wal_lsn_diff \
                FROM pg_replication_slots",
        columns: &[
            col("slot_name", Label, "Name of the replication slot."),
            col("database", Label, "Name of the database."),
            col("active", Gauge, "Flag indicating if the slot is active."),
            col("pg_wal_lsn_diff", Gauge, "Replication lag in bytes."),
        ],
    },
    Namespace {
        name: "pg_stat_archiver",
        query: "SELECT *, extract(epoch from now() - last_archived_time) AS last_archive_age \
                FROM pg_stat_archiver",
        columns: &[
            col(
                "archived_count",
                Counter,
                "Number of WAL files that have been successfully archived.",
            ),
            col("last_archived_wal", Discard, ""),
            col("last_archived_time", Discard, ""),
            col(
                "failed_count",
                Counter,
                "Number of failed attempts for archiving WAL files.",
            ),
            col("last_failed_wal", Discard, ""),
            col("last_failed_time", Discard, ""),
            col("stats_reset", Discard, ""),
            col(
                "last_archive_age",
                Gauge,
                "Time in seconds since last WAL segment was successfully archived.",
            ),
        ],
    },
    Namespace {
        name: "pg_stat_activity",
        // Every state for every database, 0 where no backend is in it.
        query: "SELECT d.datname, s.state, COALESCE(a.count, 0) AS count, \
                  COALESCE(a.max_tx_duration, 0) AS max_tx_duration \
                FROM (VALUES ('active'), ('idle'), ('idle in transaction'), \
                      ('idle in transaction (aborted)'), ('fastpath function call'), ('disabled')) AS s(state) \
                CROSS JOIN pg_database d \
                LEFT JOIN (SELECT datname, state, count(*) AS count, \
                             MAX(EXTRACT(EPOCH FROM now() - xact_start))::float8 AS max_tx_duration \
                           FROM pg_stat_activity GROUP BY datname, state) AS a \
                  ON a.state = s.state AND a.datname = d.datname",
        columns: &[
            col("datname", Label, "Name of this database."),
            col("state", Label, "Connection state."),
            col("count", Gauge, "Number of connections in this state."),
            col(
                "max_tx_duration",
                Gauge,
                "Maximum duration in seconds any active transaction has been running.",
            ),
        ],
    },
];

/// The bgwriter collector's columns, each exported as
/// `pg_stat_bgwriter_<column>_total` (a counter).
pub const BGWRITER_COLUMNS: [(&str, &str); 11] = [
    (
        "checkpoints_timed",
        "Number of scheduled checkpoints that have been performed.",
    ),
    (
        "checkpoints_req",
        "Number of requested checkpoints that have been performed.",
    ),
    (
        "checkpoint_write_time",
        "Time spent writing files to disk during checkpoints, in milliseconds.",
    ),
    (
        "checkpoint_sync_time",
        "Time spent synchronizing files to disk during checkpoints, in milliseconds.",
    ),
    (
        "buffers_checkpoint",
        "Number of buffers written during checkpoints.",
    ),
    (
        "buffers_clean",
        "Number of buffers written by the background writer.",
    ),
    (
        "maxwritten_clean",
        "Number of times the background writer stopped a cleaning scan because it had written too many buffers.",
    ),
    (
        "buffers_backend",
        "Number of buffers written directly by a backend.",
    ),
    (
        "buffers_backend_fsync",
        "Number of times a backend had to execute its own fsync call.",
    ),
    ("buffers_alloc", "Number of buffers allocated."),
    (
        "stats_reset",
        "Time at which these statistics were last reset.",
    ),
];

/// The settings query: numeric and boolean settings.
pub const SETTINGS_QUERY: &str = "SELECT name, setting, COALESCE(unit, ''), short_desc, vartype \
     FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real') \
     AND name != 'sync_commit_cancel_wait'";

/// One setting as `pg_settings_<name>[_seconds|_bytes]`: the metric name,
/// its help and value, or `None` for a value or unit that does not parse
/// (postgres_exporter stops there; osprey skips the setting).
pub fn setting_metric(
    name: &str,
    setting: &str,
    unit: &str,
    short_desc: &str,
    vartype: &str,
) -> Option<(String, String, f64)> {
    let mut metric = format!("pg_settings_{}", name.replace('.', "_"));
    let mut help = short_desc.to_string();
    let value = match vartype {
        "bool" => {
            if setting == "on" {
                1.0
            } else {
                0.0
            }
        }
        "integer" | "real" => {
            // A unit written into the value (Aurora) is dropped.
            let number = ["ms", "s", "min", "h", "d", "B", "kB", "MB", "GB", "TB"]
                .iter()
                .find_map(|u| setting.strip_suffix(u))
                .map(str::trim_end)
                .unwrap_or(setting);
            let value: f64 = number.parse().ok()?;
            let (base, factor) = match unit {
                "" => ("", 1.0),
                "ms" => ("seconds", 1e-3),
                "s" => ("seconds", 1.0),
                "min" => ("seconds", 60.0),
                "h" => ("seconds", 3600.0),
                "d" => ("seconds", 86400.0),
                "B" => ("bytes", 1.0),
                "kB" => ("bytes", 1024.0),
                "MB" => ("bytes", 1024.0 * 1024.0),
                "GB" => ("bytes", 1024.0 * 1024.0 * 1024.0),
                "TB" => ("bytes", 1024.0 * 1024.0 * 1024.0 * 1024.0),
                "8kB" => ("bytes", 8192.0),
                "16kB" => ("bytes", 16384.0),
                "32kB" => ("bytes", 32768.0),
                "16MB" => ("bytes", 16.0 * 1024.0 * 1024.0),
                "32MB" => ("bytes", 32.0 * 1024.0 * 1024.0),
                "64MB" => ("bytes", 64.0 * 1024.0 * 1024.0),
                _ => return None,
            };
            if !base.is_empty() {
                metric.push('_');
                metric.push_str(base);
                help = format!("{short_desc} [Units converted to {base}.]");
            }
            // -1 means "off" and is kept as it is.
            if value == -1.0 { value } else { value * factor }
        }
        _ => return None,
    };
    Some((metric, help, value))
}

/// The short version postgres_exporter labels `pg_static` with: the first
/// `N[.N[.N]]` after the product name, padded to three parts
/// (`PostgreSQL 15.4 (Debian ...)` gives `15.4.0`).
pub fn short_version(version: &str) -> Option<String> {
    let mut words = version.split_whitespace();
    let product = words.next()?;
    if product.is_empty() || !product.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let number = words.next()?;
    let digits: String = number
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let parts: Vec<u64> = digits
        .split('.')
        .take(3)
        .map_while(|p| p.parse().ok())
        .collect();
    if parts.is_empty() {
        return None;
    }
    let part = |i: usize| parts.get(i).copied().unwrap_or(0);
    Some(format!("{}.{}.{}", part(0), part(1), part(2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_in_base_units() {
        assert_eq!(
            setting_metric("work_mem", "4096", "kB", "Sets work memory.", "integer"),
            Some((
                "pg_settings_work_mem_bytes".into(),
                "Sets work memory. [Units converted to bytes.]".into(),
                4_194_304.0
            ))
        );
        let (name, _, v) =
            setting_metric("statement_timeout", "1500", "ms", "", "integer").unwrap();
        assert_eq!(
            (name.as_str(), v),
            ("pg_settings_statement_timeout_seconds", 1.5)
        );
        assert_eq!(
            setting_metric("x", "-1", "min", "", "integer").unwrap().2,
            -1.0
        );
        assert_eq!(
            setting_metric("fsync", "on", "", "", "bool").unwrap().2,
            1.0
        );
        assert_eq!(
            setting_metric("a.b", "2", "", "", "real").unwrap().0,
            "pg_settings_a_b"
        );
        assert_eq!(
            setting_metric("wal_buffers", "512", "8kB", "", "integer")
                .unwrap()
                .2,
            4_194_304.0
        );
        assert_eq!(
            setting_metric("x", "10ms", "ms", "", "integer").unwrap().2,
            0.01
        );
        assert_eq!(setting_metric("x", "abc", "", "", "integer"), None);
        assert_eq!(setting_metric("x", "1", "furlong", "", "integer"), None);
    }

    #[test]
    fn versions() {
        assert_eq!(
            short_version("PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64").as_deref(),
            Some("15.18.0")
        );
        assert_eq!(
            short_version("PostgreSQL 9.6.24 on x").as_deref(),
            Some("9.6.24")
        );
        assert_eq!(
            short_version("PostgreSQL 17beta1").as_deref(),
            Some("17.0.0")
        );
        assert_eq!(short_version("PostgreSQL beta").as_deref(), None);
        assert_eq!(
            short_version("PostgreSQL 16devel on").as_deref(),
            Some("16.0.0")
        );
        assert_eq!(short_version(""), None);
    }
}
