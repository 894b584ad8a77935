//! The Redis exporter: redis_exporter 1.45's metric names for one Redis
//! instance per scrape, read over the Redis protocol with redis-rs.
//!
//! A scrape opens a connection (TCP, or TLS for `rediss://`), names the
//! client, and asks `CONFIG GET *`, `INFO ALL` (plain `INFO` when `ALL` is
//! refused), `CLUSTER INFO` in cluster mode, `LATENCY LATEST`, `SLOWLOG
//! LEN` and `SLOWLOG GET 1`, as redis_exporter does; [`info`] turns the
//! answers into metrics. `redis_up` says whether the instance answered;
//! when it did not, the scrape is `redis_up 0` with the error in
//! `redis_exporter_last_scrape_error{err}`, and one log line when the
//! instance goes away (another when it is back), not one per scrape.
//!
//! [`RedisExporter`] holds what lasts between scrapes (the scrape counter,
//! durations, whether each target answered last time); it is shared by
//! every target, as redis_exporter's one process serves `/metrics` and
//! `/scrape?target=`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use redis::{AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo, Value};

use crate::text::{Families, Kind};

pub mod info;

/// One Redis instance to scrape and how to reach it.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    /// `redis://host:port[/db]` or `rediss://...` (TLS); `host:port`
    /// alone means `redis://host:port`. User and password may be in the
    /// URL.
    pub address: String,
    /// An ACL user (Redis 6 and later); overrides the URL's.
    pub user: Option<String>,
    /// The password; overrides the URL's.
    pub password: Option<String>,
    pub tls: RedisTls,
}

/// TLS settings for `rediss://` targets.
#[derive(Clone, Debug, Default)]
pub struct RedisTls {
    /// PEM certificates to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its key, both PEM.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// Accept any server certificate (redis_exporter's
    /// `--skip-tls-verification`).
    pub insecure_skip_verify: bool,
}

impl RedisTarget {
    /// A target with no credentials and default TLS settings.
    pub fn plain(address: &str) -> RedisTarget {
        RedisTarget {
            address: address.to_string(),
            user: None,
            password: None,
            tls: RedisTls::default(),
        }
    }
}

/// `address` with a scheme: `host:port` becomes `redis://host:port`.
pub fn normalize_address(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("redis://{address}")
    }
}

/// `address` without user or password, for labels and logs.
pub fn redact_address(address: &str) -> String {
    let normalized = normalize_address(address);
    let Some((scheme, rest)) = normalized.split_once("://") else {
        return normalized;
    };
    // The authority ends at the first '/', '?' or '#'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{tail}"),
        None => normalized,
    }
}

/// Scrape state that lasts between scrapes.
pub struct RedisExporter {
    scrapes: AtomicU64,
    request_errors: AtomicU64,
    /// Scrape durations: (count, sum of seconds).
    durations: Mutex<(u64, f64)>,
    /// Whether each target (redacted address) answered its last scrape.
    up: Mutex<HashMap<String, bool>>,
}

impl Default for RedisExporter {
    fn default() -> RedisExporter {
        RedisExporter::new()
    }
}

/// How long connecting and each command may take at most
/// (redis_exporter's `--connection-timeout` default).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

impl RedisExporter {
    pub fn new() -> RedisExporter {
        RedisExporter {
            scrapes: AtomicU64::new(0),
            request_errors: AtomicU64::new(0),
            durations: Mutex::new((0, 0.0)),
            up: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a `/scrape` request that was refused (no `target`, a bad
    /// one): `redis_target_scrape_request_errors_total`.
    pub fn count_request_error(&self) {
        self.request_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Scrapes `target` and writes its metrics into `out`. `timeout`
    /// bounds connecting and each command (at most
    /// [`CONNECTION_TIMEOUT`]).
    pub async fn scrape(&self, target: &RedisTarget, timeout: Duration, out: &mut String) {
        let timeout = timeout.min(CONNECTION_TIMEOUT);
        let started = Instant::now();
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut families = Families::new();
        let redacted = redact_address(&target.address);
        let result = scrape_instance(target, timeout, &mut families).await;
        let up = result.is_ok();
        families.add(
            "redis_exporter_last_scrape_error",
            "The last scrape error status.",
            Kind::Gauge,
            &[(
                "err",
                result.as_ref().err().map(String::as_str).unwrap_or(""),
            )],
            if up { 0.0 } else { 1.0 },
        );
        families.add(
            "redis_up",
            "Whether the Redis instance answered (1) or not (0).",
            Kind::Gauge,
            &[],
            if up { 1.0 } else { 0.0 },
        );
        let took = started.elapsed().as_secs_f64();
        families.add(
            "redis_exporter_last_scrape_duration_seconds",
            "How long the last scrape took.",
            Kind::Gauge,
            &[],
            took,
        );
        let (count, sum) = {
            let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
            d.0 += 1;
            d.1 += took;
            *d
        };
        families.add(
            "redis_exporter_scrapes_total",
            "Scrapes of Redis instances by this exporter.",
            Kind::Counter,
            &[],
            self.scrapes.load(Ordering::Relaxed) as f64,
        );
        let help = "Durations of scrapes by the exporter.";
        let name = "redis_exporter_scrape_duration_seconds";
        families.add_suffixed(name, help, Kind::Summary, "_sum", &[], sum);
        families.add_suffixed(name, help, Kind::Summary, "_count", &[], count as f64);
        families.add(
            "redis_target_scrape_request_errors_total",
            "Errors in requests to the exporter.",
            Kind::Counter,
            &[],
            self.request_errors.load(Ordering::Relaxed) as f64,
        );
        families.add(
            "redis_exporter_build_info",
            "The osprey build that exports Redis metrics.",
            Kind::Gauge,
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit_sha", ""),
                ("build_date", ""),
                ("golang_version", ""),
            ],
            1.0,
        );
        families.write(out);

        let was_up = self
            .up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(redacted.clone(), up);
        match (&result, was_up) {
            (Err(error), Some(true) | None) => {
                tracing::warn!(target = %redacted, %error, "redis is not answering: redis_up 0");
            }
            (Ok(()), Some(false)) => tracing::info!(target = %redacted, "redis answers again"),
            _ => {}
        }
    }
}

/// The connection settings of `target`.
fn connection(target: &RedisTarget) -> Result<redis::Client, String> {
    let mut address = normalize_address(&target.address);
    let tls = address.starts_with("rediss://");
    if tls && target.tls.insecure_skip_verify && !address.contains('#') {
        address.push_str("#insecure");
    }
    let info: ConnectionInfo = address
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("bad address {}: {e}", redact_address(&target.address)))?;
    let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
    if let Some(user) = &target.user {
        settings = settings.set_username(user);
    }
    if let Some(password) = target.password.as_ref().filter(|p| !p.is_empty()) {
        settings = settings.set_password(password);
    }
    let info = info.set_redis_settings(settings);
    let custom_tls = target.tls.ca_pem.is_some() || target.tls.client_cert_pem.is_some();
    if !custom_tls {
        return redis::Client::open(info).map_err(|e| e.to_string());
    }
    if !tls {
        return Err("TLS files are set but the address is not rediss://".to_string());
    }
    let client_tls = match (&target.tls.client_cert_pem, &target.tls.client_key_pem) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        }),
        (None, None) => None,
        _ => return Err("a client certificate needs its key, and a key its certificate".into()),
    };
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert: target.tls.ca_pem.clone(),
        },
    )
    .map_err(|e| e.to_string())
}

/// Runs one command, bounded by the connection's response timeout.
async fn command(
    connection: &mut redis::aio::MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<Value, String> {
    cmd.query_async::<Value>(connection)
        .await
        .map_err(|e| e.to_string())
}

/// A reply's text (bulk or simple string, or RESP3 verbatim text).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

async fn scrape_instance(
    target: &RedisTarget,
    timeout: Duration,
    families: &mut Families,
) -> Result<(), String> {
    let client = connection(target)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let started = Instant::now();
    let connected = client
        .get_multiplexed_async_connection_with_config(&config)
        .await;
    families.add(
        "redis_exporter_last_scrape_connect_time_seconds",
        "How long connecting to Redis took.",
        Kind::Gauge,
        &[],
        started.elapsed().as_secs_f64(),
    );
    let mut c = connected.map_err(|e| format!("connecting: {e}"))?;

    // A name in CLIENT LIST; refused by some managed offerings, harmless.
    let _ = command(&mut c, redis::cmd("CLIENT").arg("SETNAME").arg("osprey")).await;

    let mut db_count = 0;
    if let Ok(reply) = command(&mut c, redis::cmd("CONFIG").arg("GET").arg("*")).await {
        let pairs = config_pairs(&reply);
        db_count = info::config_metrics(&pairs, families);
    }
    let info = match command(&mut c, redis::cmd("INFO").arg("ALL")).await {
        Ok(reply) if text(&reply).is_some_and(|t| !t.is_empty()) => {
            text(&reply).unwrap_or_default()
        }
        _ => {
            let reply = command(&mut c, &redis::cmd("INFO")).await?;
            text(&reply).ok_or("INFO gave no text")?
        }
    };
    if info.contains("cluster_enabled:1") {
        if let Ok(reply) = command(&mut c, redis::cmd("CLUSTER").arg("INFO")).await
            && let Some(cluster) = text(&reply)
        {
            info::cluster_metrics(&cluster, families);
        }
        // Cluster mode has one database.
        db_count = 1;
    } else if db_count == 0 {
        db_count = 16;
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    info::info_metrics(&info, db_count, now, families);

    // LATENCY LATEST: [event, last spike time, last spike ms, max ms].
    if let Ok(reply) = command(&mut c, redis::cmd("LATENCY").arg("LATEST")).await {
        for event in items(&reply) {
            let fields = items(event);
            let (Some(name), Some(last), Some(duration_ms)) = (
                fields.first().and_then(text),
                fields.get(1).and_then(integer),
                fields.get(2).and_then(integer),
            ) else {
                continue;
            };
            families.add(
                "redis_latency_spike_last",
                "When the latency spike last occurred.",
                Kind::Gauge,
                &[("event_name", &name)],
                last as f64,
            );
            families.add(
                "redis_latency_spike_duration_seconds",
                "Length of the last latency spike in seconds.",
                Kind::Gauge,
                &[("event_name", &name)],
                duration_ms as f64 / 1e3,
            );
        }
    }

    if let Ok(reply) = command(&mut c, redis::cmd("SLOWLOG").arg("LEN")).await
        && let Some(length) = integer(&reply)
    {
        families.add(
            "redis_slowlog_length",
            "Entries in the slow log.",
            Kind::Gauge,
            &[],
            length as f64,
        );
    }
    if let Ok(reply) = command(&mut c, redis::cmd("SLOWLOG").arg("GET").arg(1)).await {
        // [[id, time, microseconds, ...]]: 0 and 0 when the log is empty.
        let last = items(&reply).first().map(items).unwrap_or(&[]);
        let id = last.first().and_then(integer).unwrap_or(0);
        let micros = last.get(2).and_then(integer).unwrap_or(0);
        families.add(
            "redis_slowlog_last_id",
            "Last id of the slow log.",
            Kind::Gauge,
            &[],
            id as f64,
        );
        families.add(
            "redis_last_slow_execution_duration_seconds",
            "The amount of time needed for the last slow execution, in seconds.",
            Kind::Gauge,
            &[],
            micros as f64 / 1e6,
        );
    }
    Ok(())
}

/// `CONFIG GET *` as pairs, from a RESP2 array or a RESP3 map.
fn config_pairs(reply: &Value) -> Vec<(String, String)> {
    match reply {
        Value::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        other => items(other)
            .chunks_exact(2)
            .filter_map(|pair| Some((text(&pair[0])?, text(&pair[1])?)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(normalize_address("cache:6379"), "redis://cache:6379");
        assert_eq!(
            normalize_address("rediss://cache:6380"),
            "rediss://cache:6380"
        );
        assert_eq!(
            redact_address("redis://user:pw@cache:6379/2"),
            "redis://cache:6379/2"
        );
        assert_eq!(redact_address("cache:6379"), "redis://cache:6379");
        assert_eq!(redact_address("redis://:p@ss@h:1"), "redis://h:1");
    }

    #[test]
    fn config_replies() {
        let resp2 = Value::Array(vec![
            Value::BulkString(b"databases".to_vec()),
            Value::BulkString(b"16".to_vec()),
            Value::BulkString(b"odd".to_vec()),
        ]);
        assert_eq!(
            config_pairs(&resp2),
            [("databases".to_string(), "16".to_string())]
        );
        let resp3 = Value::Map(vec![(
            Value::SimpleString("maxclients".into()),
            Value::BulkString(b"100".to_vec()),
        )]);
        assert_eq!(
            config_pairs(&resp3),
            [("maxclients".to_string(), "100".to_string())]
        );
    }

    #[tokio::test]
    async fn an_absent_instance_is_redis_up_0_with_the_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let exporter = RedisExporter::new();
        let mut out = String::new();
        exporter
            .scrape(
                &RedisTarget::plain(&format!("127.0.0.1:{port}")),
                Duration::from_secs(2),
                &mut out,
            )
            .await;
        assert!(out.contains("\nredis_up 0\n"), "{out}");
        assert!(
            out.contains("redis_exporter_last_scrape_error{err=\"connecting: "),
            "{out}"
        );
        assert!(out.contains("\nredis_exporter_scrapes_total 1\n"));
        assert!(!out.contains("redis_instance_info"));
    }
}
