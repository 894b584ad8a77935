//! Redis's `INFO` text, `CONFIG GET *` pairs and `CLUSTER INFO` turned
//! into redis_exporter 1.45's metric names.
//!
//! `INFO` is `# Section` headers and `field:value` lines. A field becomes
//! a metric when redis_exporter knows it ([`FIELDS`], named there as it
//! names them) or its name starts with `db`, `cmdstat_` or `cluster_`, as
//! in redis_exporter; `ok`/`true` read as 1 and `err`/`fail`/`false` as
//! 0. Some sections have their own shapes: `Keyspace`
//! (`db0:keys=1,expires=0,avg_ttl=0`), `Commandstats`
//! (`cmdstat_get:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0`),
//! `Latencystats` (`latency_percentiles_usec_get:p50=1.003,p99=2.007`),
//! `Errorstats` (`errorstat_ERR:count=3`) and `Replication`'s replica
//! lines (`slave0:ip=...,port=...,state=online,offset=...,lag=0`).
//!
//! Everything here is a pure function of the text, so the fuzz target
//! `redis_info` can drive it.

use crate::text::{Families, Kind};

/// The `INFO` fields redis_exporter exports, each with the name it gives
/// the metric (after `redis_`) and its type.
pub const FIELDS: &[(&str, &str, Kind)] = &[
    // Server.
    ("uptime_in_seconds", "uptime_in_seconds", Kind::Gauge),
    ("process_id", "process_id", Kind::Gauge),
    ("io_threads_active", "io_threads_active", Kind::Gauge),
    // Clients.
    ("connected_clients", "connected_clients", Kind::Gauge),
    ("blocked_clients", "blocked_clients", Kind::Gauge),
    ("tracking_clients", "tracking_clients", Kind::Gauge),
    (
        "clients_in_timeout_table",
        "clients_in_timeout_table",
        Kind::Gauge,
    ),
    (
        "client_longest_output_list",
        "client_longest_output_list",
        Kind::Gauge,
    ),
    (
        "client_biggest_input_buf",
        "client_biggest_input_buf",
        Kind::Gauge,
    ),
    (
        "client_recent_max_output_buffer",
        "client_recent_max_output_buffer_bytes",
        Kind::Gauge,
    ),
    (
        "client_recent_max_input_buffer",
        "client_recent_max_input_buffer_bytes",
        Kind::Gauge,
    ),
    // Memory.
    ("allocator_active", "allocator_active_bytes", Kind::Gauge),
    (
        "allocator_allocated",
        "allocator_allocated_bytes",
        Kind::Gauge,
    ),
    (
        "allocator_resident",
        "allocator_resident_bytes",
        Kind::Gauge,
    ),
    ("allocator_frag_ratio", "allocator_frag_ratio", Kind::Gauge),
    ("allocator_frag_bytes", "allocator_frag_bytes", Kind::Gauge),
    ("allocator_rss_ratio", "allocator_rss_ratio", Kind::Gauge),
    ("allocator_rss_bytes", "allocator_rss_bytes", Kind::Gauge),
    ("used_memory", "memory_used_bytes", Kind::Gauge),
    ("used_memory_rss", "memory_used_rss_bytes", Kind::Gauge),
    ("used_memory_peak", "memory_used_peak_bytes", Kind::Gauge),
    ("used_memory_lua", "memory_used_lua_bytes", Kind::Gauge),
    (
        "used_memory_overhead",
        "memory_used_overhead_bytes",
        Kind::Gauge,
    ),
    (
        "used_memory_startup",
        "memory_used_startup_bytes",
        Kind::Gauge,
    ),
    (
        "used_memory_dataset",
        "memory_used_dataset_bytes",
        Kind::Gauge,
    ),
    (
        "used_memory_scripts",
        "memory_used_scripts_bytes",
        Kind::Gauge,
    ),
    (
        "number_of_cached_scripts",
        "number_of_cached_scripts",
        Kind::Gauge,
    ),
    ("maxmemory", "memory_max_bytes", Kind::Gauge),
    (
        "maxmemory_reservation",
        "memory_max_reservation_bytes",
        Kind::Gauge,
    ),
    (
        "maxmemory_desired_reservation",
        "memory_max_reservation_desired_bytes",
        Kind::Gauge,
    ),
    (
        "maxfragmentationmemory_reservation",
        "memory_max_fragmentation_reservation_bytes",
        Kind::Gauge,
    ),
    (
        "maxfragmentationmemory_desired_reservation",
        "memory_max_fragmentation_reservation_desired_bytes",
        Kind::Gauge,
    ),
    (
        "mem_fragmentation_ratio",
        "mem_fragmentation_ratio",
        Kind::Gauge,
    ),
    (
        "mem_fragmentation_bytes",
        "mem_fragmentation_bytes",
        Kind::Gauge,
    ),
    ("mem_clients_slaves", "mem_clients_slaves", Kind::Gauge),
    ("mem_clients_normal", "mem_clients_normal", Kind::Gauge),
    (
        "expired_stale_perc",
        "expired_stale_percentage",
        Kind::Gauge,
    ),
    (
        "mem_not_counted_for_evict",
        "mem_not_counted_for_eviction_bytes",
        Kind::Gauge,
    ),
    (
        "lazyfree_pending_objects",
        "lazyfree_pending_objects",
        Kind::Gauge,
    ),
    (
        "active_defrag_running",
        "active_defrag_running",
        Kind::Gauge,
    ),
    (
        "migrate_cached_sockets",
        "migrate_cached_sockets_total",
        Kind::Gauge,
    ),
    ("active_defrag_hits", "defrag_hits", Kind::Gauge),
    ("active_defrag_misses", "defrag_misses", Kind::Gauge),
    ("active_defrag_key_hits", "defrag_key_hits", Kind::Gauge),
    ("active_defrag_key_misses", "defrag_key_misses", Kind::Gauge),
    (
        "expired_time_cap_reached_count",
        "expired_time_cap_reached_total",
        Kind::Gauge,
    ),
    // Persistence.
    ("loading", "loading_dump_file", Kind::Gauge),
    (
        "rdb_changes_since_last_save",
        "rdb_changes_since_last_save",
        Kind::Gauge,
    ),
    (
        "rdb_bgsave_in_progress",
        "rdb_bgsave_in_progress",
        Kind::Gauge,
    ),
    (
        "rdb_last_save_time",
        "rdb_last_save_timestamp_seconds",
        Kind::Gauge,
    ),
    (
        "rdb_last_bgsave_status",
        "rdb_last_bgsave_status",
        Kind::Gauge,
    ),
    (
        "rdb_last_bgsave_time_sec",
        "rdb_last_bgsave_duration_sec",
        Kind::Gauge,
    ),
    (
        "rdb_current_bgsave_time_sec",
        "rdb_current_bgsave_duration_sec",
        Kind::Gauge,
    ),
    ("rdb_last_cow_size", "rdb_last_cow_size_bytes", Kind::Gauge),
    ("aof_enabled", "aof_enabled", Kind::Gauge),
    (
        "aof_rewrite_in_progress",
        "aof_rewrite_in_progress",
        Kind::Gauge,
    ),
    (
        "aof_rewrite_scheduled",
        "aof_rewrite_scheduled",
        Kind::Gauge,
    ),
    (
        "aof_last_rewrite_time_sec",
        "aof_last_rewrite_duration_sec",
        Kind::Gauge,
    ),
    (
        "aof_current_rewrite_time_sec",
        "aof_current_rewrite_duration_sec",
        Kind::Gauge,
    ),
    ("aof_last_cow_size", "aof_last_cow_size_bytes", Kind::Gauge),
    ("aof_current_size", "aof_current_size_bytes", Kind::Gauge),
    ("aof_base_size", "aof_base_size_bytes", Kind::Gauge),
    ("aof_pending_rewrite", "aof_pending_rewrite", Kind::Gauge),
    ("aof_buffer_length", "aof_buffer_length", Kind::Gauge),
    (
        "aof_rewrite_buffer_length",
        "aof_rewrite_buffer_length",
        Kind::Gauge,
    ),
    (
        "aof_pending_bio_fsync",
        "aof_pending_bio_fsync",
        Kind::Gauge,
    ),
    ("aof_delayed_fsync", "aof_delayed_fsync", Kind::Gauge),
    (
        "aof_last_bgrewrite_status",
        "aof_last_bgrewrite_status",
        Kind::Gauge,
    ),
    (
        "aof_last_write_status",
        "aof_last_write_status",
        Kind::Gauge,
    ),
    (
        "module_fork_in_progress",
        "module_fork_in_progress",
        Kind::Gauge,
    ),
    (
        "module_fork_last_cow_size",
        "module_fork_last_cow_size",
        Kind::Gauge,
    ),
    // Stats.
    ("pubsub_channels", "pubsub_channels", Kind::Gauge),
    ("pubsub_patterns", "pubsub_patterns", Kind::Gauge),
    ("latest_fork_usec", "latest_fork_seconds", Kind::Gauge),
    ("tracking_total_keys", "tracking_total_keys", Kind::Gauge),
    ("tracking_total_items", "tracking_total_items", Kind::Gauge),
    (
        "tracking_total_prefixes",
        "tracking_total_prefixes",
        Kind::Gauge,
    ),
    (
        "total_connections_received",
        "connections_received_total",
        Kind::Counter,
    ),
    (
        "total_commands_processed",
        "commands_processed_total",
        Kind::Counter,
    ),
    (
        "rejected_connections",
        "rejected_connections_total",
        Kind::Counter,
    ),
    (
        "total_net_input_bytes",
        "net_input_bytes_total",
        Kind::Counter,
    ),
    (
        "total_net_output_bytes",
        "net_output_bytes_total",
        Kind::Counter,
    ),
    ("expired_keys", "expired_keys_total", Kind::Counter),
    ("cached_keys", "cached_keys_total", Kind::Counter),
    ("evicted_keys", "evicted_keys_total", Kind::Counter),
    ("keyspace_hits", "keyspace_hits_total", Kind::Counter),
    ("keyspace_misses", "keyspace_misses_total", Kind::Counter),
    (
        "unexpected_error_replies",
        "unexpected_error_replies",
        Kind::Counter,
    ),
    ("total_error_replies", "total_error_replies", Kind::Counter),
    (
        "total_reads_processed",
        "total_reads_processed",
        Kind::Counter,
    ),
    (
        "total_writes_processed",
        "total_writes_processed",
        Kind::Counter,
    ),
    (
        "io_threaded_reads_processed",
        "io_threaded_reads_processed",
        Kind::Counter,
    ),
    (
        "io_threaded_writes_processed",
        "io_threaded_writes_processed",
        Kind::Counter,
    ),
    (
        "dump_payload_sanitizations",
        "dump_payload_sanitizations",
        Kind::Counter,
    ),
    (
        "storage_provider_read_hits",
        "storage_provider_read_hits",
        Kind::Counter,
    ),
    (
        "storage_provider_read_misses",
        "storage_provider_read_misses",
        Kind::Counter,
    ),
    // Replication.
    ("connected_slaves", "connected_slaves", Kind::Gauge),
    (
        "repl_backlog_size",
        "replication_backlog_bytes",
        Kind::Gauge,
    ),
    ("repl_backlog_active", "repl_backlog_is_active", Kind::Gauge),
    (
        "repl_backlog_first_byte_offset",
        "repl_backlog_first_byte_offset",
        Kind::Gauge,
    ),
    (
        "repl_backlog_histlen",
        "repl_backlog_history_bytes",
        Kind::Gauge,
    ),
    ("master_repl_offset", "master_repl_offset", Kind::Gauge),
    ("second_repl_offset", "second_repl_offset", Kind::Gauge),
    (
        "slave_expires_tracked_keys",
        "slave_expires_tracked_keys",
        Kind::Gauge,
    ),
    ("slave_priority", "slave_priority", Kind::Gauge),
    ("sync_full", "replica_resyncs_full", Kind::Gauge),
    (
        "sync_partial_ok",
        "replica_partial_resync_accepted",
        Kind::Gauge,
    ),
    (
        "sync_partial_err",
        "replica_partial_resync_denied",
        Kind::Gauge,
    ),
    // CPU.
    ("used_cpu_sys", "cpu_sys_seconds_total", Kind::Counter),
    ("used_cpu_user", "cpu_user_seconds_total", Kind::Counter),
    (
        "used_cpu_sys_children",
        "cpu_sys_children_seconds_total",
        Kind::Counter,
    ),
    (
        "used_cpu_user_children",
        "cpu_user_children_seconds_total",
        Kind::Counter,
    ),
    (
        "used_cpu_sys_main_thread",
        "cpu_sys_main_thread_seconds_total",
        Kind::Counter,
    ),
    (
        "used_cpu_user_main_thread",
        "cpu_user_main_thread_seconds_total",
        Kind::Counter,
    ),
    // Cluster.
    (
        "cluster_stats_messages_sent",
        "cluster_messages_sent_total",
        Kind::Gauge,
    ),
    (
        "cluster_stats_messages_received",
        "cluster_messages_received_total",
        Kind::Gauge,
    ),
    // KeyDB.
    ("server_threads", "server_threads_total", Kind::Gauge),
    ("long_lock_waits", "long_lock_waits_total", Kind::Gauge),
    (
        "current_client_thread",
        "current_client_thread",
        Kind::Gauge,
    ),
];

/// The `CONFIG` settings exported as `redis_config_<name>` (dashes become
/// underscores).
pub const CONFIG_SETTINGS: [&str; 3] = ["io-threads", "maxclients", "maxmemory"];

/// Metric names are `redis_` and the field, any character outside
/// `[a-zA-Z0-9_]` made `_`.
fn metric_name(field: &str) -> String {
    let mut name = String::with_capacity(6 + field.len());
    name.push_str("redis_");
    name.extend(field.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// A field's value as a number: `ok`/`true` are 1, `err`/`fail`/`false`
/// 0; anything else that is not a number is 0, as redis_exporter writes
/// it.
fn field_value(text: &str) -> f64 {
    match text {
        "ok" | "true" => 1.0,
        "err" | "fail" | "false" => 0.0,
        other => other.parse().unwrap_or(0.0),
    }
}

/// `k=v,k=v` pairs.
fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(',').filter_map(|pair| pair.split_once('='))
}

fn pair_number(text: &str, key: &str) -> Option<f64> {
    pairs(text).find_map(|(k, v)| (k == key).then(|| v.parse().ok()).flatten())
}

/// What `INFO` says besides its metrics: what `instance_info` and
/// `slave_info` carry.
#[derive(Debug, Default)]
struct Identity<'a> {
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Identity<'a> {
    fn get(&self, key: &str) -> &'a str {
        self.fields
            .iter()
            .rev()
            .find_map(|(k, v)| (*k == key).then_some(*v))
            .unwrap_or("")
    }
}

/// Writes the metrics of an `INFO` text into `families`. `db_count` is
/// the number of databases (`CONFIG GET databases`; 16 when unknown, 1 in
/// cluster mode): every database below it has `redis_db_keys` and
/// `redis_db_keys_expiring`, 0 when `INFO` does not list it. `now` is the
/// scrape time in seconds (for `redis_start_time_seconds`).
pub fn info_metrics(info: &str, db_count: u32, now: f64, families: &mut Families) {
    let mut section = "";
    let mut identity = Identity::default();
    let mut master_host = "";
    let mut master_port = "";
    let mut seen_dbs: Vec<&str> = Vec::new();
    // Command calls and time per command, for the latency summaries.
    let mut command_totals: Vec<(&str, f64, f64)> = Vec::new();
    let mut latencies: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();

    for line in info.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("# ") {
            section = name;
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if line.len() < 2 {
            continue;
        }
        identity.fields.push((key, value));
        if is_master_field(key, "host") {
            master_host = value;
        }
        if is_master_field(key, "port") {
            master_port = value;
        }
        match section {
            "Replication" if replication_line(key, value, master_host, master_port, families) => {
                continue;
            }
            "Server" => {
                if key == "uptime_in_seconds"
                    && let Ok(uptime) = value.parse::<f64>()
                {
                    families.add(
                        "redis_start_time_seconds",
                        "Start time of the Redis instance since unix epoch in seconds.",
                        Kind::Gauge,
                        &[],
                        (now - uptime).floor(),
                    );
                }
            }
            "Commandstats" => {
                if let Some((command, calls, usec)) = command_stats(key, value, families) {
                    command_totals.push((command, calls, usec));
                }
                continue;
            }
            "Latencystats" => {
                if let Some(command) = key.strip_prefix("latency_percentiles_usec_") {
                    let mut percentiles = Vec::new();
                    let mut valid = true;
                    for part in value.split(',') {
                        let parsed = part.split_once('=').and_then(|(p, v)| {
                            Some((
                                p.strip_prefix('p')?.parse::<f64>().ok()?,
                                v.parse::<f64>().ok()?,
                            ))
                        });
                        match parsed {
                            Some(pair) => percentiles.push(pair),
                            None => valid = false,
                        }
                    }
                    if valid {
                        latencies.push((command, percentiles));
                    }
                }
                continue;
            }
            "Errorstats" => {
                if let (Some(kind), Some(count)) =
                    (key.strip_prefix("errorstat_"), pair_number(value, "count"))
                {
                    families.add(
                        "redis_errors_total",
                        "Total number of errors per error type.",
                        Kind::Counter,
                        &[("err", kind)],
                        count,
                    );
                }
                continue;
            }
            "Keyspace" if keyspace_line(key, value, families) => {
                seen_dbs.push(key);
                continue;
            }
            _ => {}
        }
        field_metric(key, value, families);
    }

    // A summary per command that has both call totals and percentiles.
    // The quantile label is the percentile as Redis writes it (`99.9`,
    // not `0.999`), as redis_exporter labels it.
    for (command, percentiles) in &latencies {
        let Some((_, calls, usec)) = command_totals.iter().find(|(c, _, _)| c == command) else {
            continue;
        };
        let help = "A summary of latency percentile distribution per command.";
        let name = "redis_latency_percentiles_usec";
        for (percentile, v) in percentiles {
            let quantile = percentile.to_string();
            families.add(
                name,
                help,
                Kind::Summary,
                &[("cmd", command), ("quantile", &quantile)],
                *v,
            );
        }
        families.add_suffixed(
            name,
            help,
            Kind::Summary,
            "_sum",
            &[("cmd", command)],
            *usec,
        );
        families.add_suffixed(
            name,
            help,
            Kind::Summary,
            "_count",
            &[("cmd", command)],
            *calls,
        );
    }

    for db in 0..db_count {
        let name = format!("db{db}");
        if !seen_dbs.contains(&name.as_str()) {
            families.add(
                "redis_db_keys",
                DB_KEYS_HELP,
                Kind::Gauge,
                &[("db", &name)],
                0.0,
            );
            families.add(
                "redis_db_keys_expiring",
                DB_EXPIRING_HELP,
                Kind::Gauge,
                &[("db", &name)],
                0.0,
            );
        }
    }

    families.add(
        "redis_instance_info",
        "Information about the Redis instance.",
        Kind::Gauge,
        &[
            ("role", identity.get("role")),
            ("redis_version", identity.get("redis_version")),
            ("redis_build_id", identity.get("redis_build_id")),
            ("redis_mode", identity.get("redis_mode")),
            ("os", identity.get("os")),
            ("maxmemory_policy", identity.get("maxmemory_policy")),
            ("tcp_port", identity.get("tcp_port")),
            ("run_id", identity.get("run_id")),
            ("process_id", identity.get("process_id")),
        ],
        1.0,
    );
    if identity.get("role") == "slave" {
        families.add(
            "redis_slave_info",
            "Information about the Redis replica.",
            Kind::Gauge,
            &[
                ("master_host", identity.get("master_host")),
                ("master_port", identity.get("master_port")),
                ("read_only", identity.get("slave_read_only")),
            ],
            1.0,
        );
    }
}

const DB_KEYS_HELP: &str = "Total number of keys by DB.";
const DB_EXPIRING_HELP: &str = "Total number of expiring keys by DB.";

/// `master_host`, `master_1_host` (KeyDB's active replicas), ...
fn is_master_field(key: &str, what: &str) -> bool {
    let Some(rest) = key.strip_prefix("master") else {
        return false;
    };
    let rest = match rest.strip_prefix('_') {
        Some(r) => r,
        None => return false,
    };
    if let Some(tail) = rest.strip_prefix(what) {
        return tail.is_empty() || !tail.starts_with(|c: char| c.is_ascii_alphanumeric());
    }
    // master_<digits>_<what>
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0
        && rest[digits..]
            .strip_prefix('_')
            .is_some_and(|t| t.starts_with(what))
}

/// A field redis_exporter exports by name or by prefix.
fn field_metric(key: &str, value: &str, families: &mut Families) {
    let known = FIELDS.iter().find(|(field, _, _)| *field == key);
    let (name, kind) = match known {
        Some((_, name, kind)) => (format!("redis_{name}"), *kind),
        None if key.starts_with("db")
            || key.starts_with("cmdstat_")
            || key.starts_with("cluster_") =>
        {
            (metric_name(key), Kind::Gauge)
        }
        None => return,
    };
    let mut v = field_value(value);
    if key == "latest_fork_usec" {
        v /= 1e6;
    }
    let help = format!("{} (INFO field {key}).", name.trim_start_matches("redis_"));
    families.add(&name, &help, kind, &[], v);
}

/// Replication lines with labels: a replica's view of its master, and a
/// master's `slaveN` lines. `true` when the line was one of them.
fn replication_line(
    key: &str,
    value: &str,
    master_host: &str,
    master_port: &str,
    families: &mut Families,
) -> bool {
    let master = [("master_host", master_host), ("master_port", master_port)];
    if is_master_field(key, "link_status") {
        families.add(
            "redis_master_link_up",
            "Master link status on Redis replica.",
            Kind::Gauge,
            &master,
            if value == "up" { 1.0 } else { 0.0 },
        );
        return true;
    }
    let direct = if key == "slave_repl_offset" {
        Some("redis_slave_repl_offset")
    } else if is_master_field(key, "last_io_seconds_ago") {
        Some("redis_master_last_io_seconds_ago")
    } else if is_master_field(key, "sync_in_progress") {
        Some("redis_master_sync_in_progress")
    } else {
        None
    };
    if let Some(name) = direct {
        // Whole numbers, as redis_exporter reads them (0 otherwise).
        let v = value.parse::<i64>().map(|v| v as f64).unwrap_or(0.0);
        families.add(
            name,
            "Replication state of a Redis replica.",
            Kind::Gauge,
            &master,
            v,
        );
        return true;
    }
    let is_replica_line = key
        .strip_prefix("slave")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if is_replica_line {
        let mut ip = "";
        let mut port = "";
        let mut state = "";
        let mut offset = None;
        let mut lag = None;
        for part in value.split(',') {
            let Some((k, v)) = part.split_once('=') else {
                return false;
            };
            match k {
                "ip" => ip = v,
                "port" => port = v,
                "state" => state = v,
                "offset" => offset = v.parse::<f64>().ok(),
                "lag" => match v.parse::<f64>() {
                    Ok(l) => lag = Some(l),
                    Err(_) => return false,
                },
                _ => {}
            }
        }
        let Some(offset) = offset else {
            return false;
        };
        let labels = [
            ("slave_ip", ip),
            ("slave_port", port),
            ("slave_state", state),
        ];
        families.add(
            "redis_connected_slave_offset_bytes",
            "Offset of a connected replica.",
            Kind::Gauge,
            &labels,
            offset,
        );
        if let Some(lag) = lag {
            families.add(
                "redis_connected_slave_lag_seconds",
                "Lag of a connected replica.",
                Kind::Gauge,
                &labels,
                lag,
            );
        }
        return true;
    }
    false
}

/// `cmdstat_<cmd>:calls=..,usec=..,usec_per_call=..[,rejected_calls=..,failed_calls=..]`:
/// the per-command families; the command, calls and microseconds back.
fn command_stats<'a>(
    key: &'a str,
    value: &str,
    families: &mut Families,
) -> Option<(&'a str, f64, f64)> {
    let command = key.strip_prefix("cmdstat_")?;
    let calls = pair_number(value, "calls")?;
    let usec = pair_number(value, "usec")?;
    let cmd = [("cmd", command)];
    families.add(
        "redis_commands_total",
        "Total number of calls per command.",
        Kind::Counter,
        &cmd,
        calls,
    );
    families.add(
        "redis_commands_duration_seconds_total",
        "Total amount of time in seconds spent per command.",
        Kind::Counter,
        &cmd,
        usec / 1e6,
    );
    // Redis 6.2 and later.
    if let (Some(rejected), Some(failed)) = (
        pair_number(value, "rejected_calls"),
        pair_number(value, "failed_calls"),
    ) {
        families.add(
            "redis_commands_rejected_calls_total",
            "Total number of errors within command execution per command.",
            Kind::Counter,
            &cmd,
            rejected,
        );
        families.add(
            "redis_commands_failed_calls_total",
            "Total number of errors prior command execution per command.",
            Kind::Counter,
            &cmd,
            failed,
        );
    }
    Some((command, calls, usec))
}

/// `db0:keys=1,expires=0,avg_ttl=0[,cached_keys=0]`. `true` when the line
/// was a database's.
fn keyspace_line(key: &str, value: &str, families: &mut Families) -> bool {
    if !key.starts_with("db") {
        return false;
    }
    let parts: Vec<(&str, &str)> = pairs(value).collect();
    if !(2..=4).contains(&parts.len()) || value.split(',').count() != parts.len() {
        return false;
    }
    let number = |i: usize| parts.get(i).and_then(|(_, v)| v.parse::<f64>().ok());
    let (Some(keys), Some(expiring)) = (number(0), number(1)) else {
        return false;
    };
    let avg_ttl = if parts.len() > 2 {
        match number(2) {
            Some(ms) => Some(ms / 1000.0),
            None => return false,
        }
    } else {
        None
    };
    let cached = if parts.len() > 3 {
        match number(3) {
            Some(c) => Some(c),
            None => return false,
        }
    } else {
        None
    };
    let db = [("db", key)];
    families.add("redis_db_keys", DB_KEYS_HELP, Kind::Gauge, &db, keys);
    families.add(
        "redis_db_keys_expiring",
        DB_EXPIRING_HELP,
        Kind::Gauge,
        &db,
        expiring,
    );
    if let Some(cached) = cached {
        families.add(
            "redis_db_keys_cached",
            "Total number of cached keys by DB.",
            Kind::Gauge,
            &db,
            cached,
        );
    }
    if let Some(ttl) = avg_ttl {
        families.add(
            "redis_db_avg_ttl_seconds",
            "Average TTL in seconds.",
            Kind::Gauge,
            &db,
            ttl,
        );
    }
    true
}

/// `CONFIG GET *` as name/value pairs: the number of databases (0 when
/// not said) and `redis_config_*` for the settings redis_exporter exports.
pub fn config_metrics(pairs: &[(String, String)], families: &mut Families) -> u32 {
    let mut databases = 0;
    for (key, value) in pairs {
        if key == "databases" {
            databases = value.parse().unwrap_or(0);
        }
        if CONFIG_SETTINGS.contains(&key.as_str())
            && let Ok(v) = value.parse::<f64>()
        {
            let name = format!("redis_config_{}", key.replace('-', "_"));
            families.add(&name, "A Redis CONFIG setting.", Kind::Gauge, &[], v);
        }
    }
    databases
}

/// `CLUSTER INFO` (`cluster_state:ok\r\n...`): every `cluster_*` field.
pub fn cluster_metrics(text: &str, families: &mut Families) {
    for line in text.split("\r\n") {
        let mut parts = line.split(':');
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        field_metric(key, value, families);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(info: &str, db_count: u32) -> String {
        let mut families = Families::new();
        info_metrics(info, db_count, 1_000_000.0, &mut families);
        let mut out = String::new();
        families.write(&mut out);
        out
    }

    #[test]
    fn sections_become_redis_exporter_names() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux\r\ntcp_port:6379\r\nrun_id:abc\r\nprocess_id:42\r\nuptime_in_seconds:100\r\n\
            # Clients\r\nconnected_clients:3\r\ncluster_connections:0\r\n\
            # Memory\r\nused_memory:1024\r\nmaxmemory_policy:noeviction\r\n\
            # Persistence\r\nrdb_last_bgsave_status:ok\r\naof_last_write_status:err\r\n\
            # Stats\r\ntotal_commands_processed:77\r\nlatest_fork_usec:2500\r\nkeyspace_hits:5\r\n\
            # Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=99,lag=1\r\n\
            # Commandstats\r\ncmdstat_get:calls=4,usec=20,usec_per_call=5.00,rejected_calls=1,failed_calls=2\r\ncmdstat_config|get:calls=1,usec=7,usec_per_call=7.00\r\n\
            # Errorstats\r\nerrorstat_ERR:count=3\r\n\
            # Latencystats\r\nlatency_percentiles_usec_get:p50=1.003,p99=2.007,p99.9=3.5\r\n\
            # Cluster\r\ncluster_enabled:0\r\n\
            # Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=5000\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";
        let out = render(info, 4);
        for line in [
            "redis_start_time_seconds 999900\n",
            "redis_uptime_in_seconds 100\n",
            "redis_process_id 42\n",
            "redis_connected_clients 3\n",
            "redis_cluster_connections 0\n",
            "redis_memory_used_bytes 1024\n",
            "redis_rdb_last_bgsave_status 1\n",
            "redis_aof_last_write_status 0\n",
            "redis_commands_processed_total 77\n",
            "redis_latest_fork_seconds 0.0025\n",
            "redis_keyspace_hits_total 5\n",
            "redis_connected_slaves 1\n",
            "redis_connected_slave_offset_bytes{slave_ip=\"10.0.0.2\",slave_port=\"6380\",slave_state=\"online\"} 99\n",
            "redis_connected_slave_lag_seconds{slave_ip=\"10.0.0.2\",slave_port=\"6380\",slave_state=\"online\"} 1\n",
            "redis_commands_total{cmd=\"get\"} 4\n",
            "redis_commands_duration_seconds_total{cmd=\"get\"} 0.00002\n",
            "redis_commands_rejected_calls_total{cmd=\"get\"} 1\n",
            "redis_commands_failed_calls_total{cmd=\"get\"} 2\n",
            "redis_commands_total{cmd=\"config|get\"} 1\n",
            "redis_errors_total{err=\"ERR\"} 3\n",
            "redis_latency_percentiles_usec{cmd=\"get\",quantile=\"50\"} 1.003\n",
            "redis_latency_percentiles_usec{cmd=\"get\",quantile=\"99.9\"} 3.5\n",
            "redis_latency_percentiles_usec_sum{cmd=\"get\"} 20\n",
            "redis_latency_percentiles_usec_count{cmd=\"get\"} 4\n",
            "redis_cluster_enabled 0\n",
            "redis_db_keys{db=\"db0\"} 10\n",
            "redis_db_keys_expiring{db=\"db0\"} 2\n",
            "redis_db_avg_ttl_seconds{db=\"db0\"} 5\n",
            "redis_db_keys{db=\"db1\"} 0\n",
            "redis_db_keys_expiring{db=\"db2\"} 0\n",
            "redis_db_keys{db=\"db3\"} 1\n",
            "redis_instance_info{role=\"master\",redis_version=\"7.0.15\",redis_build_id=\"\",redis_mode=\"standalone\",os=\"Linux\",maxmemory_policy=\"noeviction\",tcp_port=\"6379\",run_id=\"abc\",process_id=\"42\"} 1\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        assert!(out.contains("# TYPE redis_commands_processed_total counter\n"));
        assert!(out.contains("# TYPE redis_latency_percentiles_usec summary\n"));
        // Fields redis_exporter does not export.
        assert!(!out.contains("redis_redis_version") && !out.contains("redis_role"));
        assert!(!out.contains("redis_db_keys{db=\"db4\"}"));
        for entry in model::exposition::Parser::new(out.as_bytes(), model::exposition::Format::Text)
        {
            entry.unwrap();
        }
    }

    #[test]
    fn a_replica() {
        let info = "# Replication\nrole:slave\nmaster_host:10.0.0.1\nmaster_port:6379\nmaster_link_status:down\nmaster_last_io_seconds_ago:-1\nmaster_sync_in_progress:0\nslave_repl_offset:55\nslave_read_only:1\nconnected_slaves:0\n";
        let out = render(info, 0);
        let master = "master_host=\"10.0.0.1\",master_port=\"6379\"";
        for line in [
            format!("redis_master_link_up{{{master}}} 0\n"),
            format!("redis_master_last_io_seconds_ago{{{master}}} -1\n"),
            format!("redis_master_sync_in_progress{{{master}}} 0\n"),
            format!("redis_slave_repl_offset{{{master}}} 55\n"),
            format!("redis_slave_info{{{master},read_only=\"1\"}} 1\n"),
        ] {
            assert!(out.contains(&line), "missing {line:?} in\n{out}");
        }
        assert!(is_master_field("master_1_host", "host"));
        assert!(!is_master_field("master_repl_offset", "host"));
        assert!(!is_master_field("master_hostname", "host"));
    }

    #[test]
    fn config_and_cluster() {
        let mut families = Families::new();
        let pairs = [
            ("databases".to_string(), "8".to_string()),
            ("maxclients".to_string(), "10000".to_string()),
            ("io-threads".to_string(), "1".to_string()),
            ("maxmemory".to_string(), "0".to_string()),
            ("requirepass".to_string(), "secret".to_string()),
        ];
        assert_eq!(config_metrics(&pairs, &mut families), 8);
        cluster_metrics(
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_stats_messages_sent:12\r\n",
            &mut families,
        );
        let mut out = String::new();
        families.write(&mut out);
        for line in [
            "redis_config_maxclients 10000\n",
            "redis_config_io_threads 1\n",
            "redis_config_maxmemory 0\n",
            "redis_cluster_state 1\n",
            "redis_cluster_slots_assigned 16384\n",
            "redis_cluster_messages_sent_total 12\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        assert!(!out.contains("secret"));
    }
}
