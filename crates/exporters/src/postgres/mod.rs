//! The PostgreSQL exporter: postgres_exporter 0.11's default metrics for
//! one or more servers, read over the PostgreSQL protocol with
//! rust-postgres.
//!
//! A scrape of a data source name runs postgres_exporter's default work:
//! `SELECT version()` (`pg_static`), the settings (`pg_settings_*`), the
//! built-in query namespaces and the `database` and `bgwriter` collectors
//! ([`queries`]), and adds `pg_postmaster_start_time_seconds`, which the
//! issue asks for and postgres_exporter 0.11 only has as an example query.
//! Every metric of a server carries `server="host:port"`, as there.
//!
//! The connection to each server is kept between scrapes (postgres_exporter
//! keeps one too) and made again when it breaks. A server that cannot be
//! reached is `pg_up 0` and one log line when it goes away (another when it
//! is back), not one per scrape; `pg_exporter_last_scrape_error` is 1 when
//! any query failed.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::config::Host;

use crate::text::{Families, Kind};

pub mod dsn;
pub mod queries;
mod tls;
pub mod value;

use queries::{NAMESPACES, Namespace};
use value::PgValue;

/// Which of postgres_exporter's default metrics are collected (its
/// `--disable-default-metrics`, `--disable-settings-metrics` and
/// `--[no-]collector.database|bgwriter` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The built-in query namespaces and `pg_static`.
    pub default_metrics: bool,
    pub settings_metrics: bool,
    pub database_collector: bool,
    pub bgwriter_collector: bool,
}

impl PostgresOptions {
    /// postgres_exporter's defaults: everything on.
    pub const DEFAULTS: PostgresOptions = PostgresOptions {
        default_metrics: true,
        settings_metrics: true,
        database_collector: true,
        bgwriter_collector: true,
    };
}

/// Scrape state that lasts between scrapes: connections, counters and
/// which servers answered last time.
pub struct PostgresExporter {
    options: PostgresOptions,
    scrapes: AtomicU64,
    connections: tokio::sync::Mutex<HashMap<String, tokio_postgres::Client>>,
    up: Mutex<HashMap<String, bool>>,
}

/// A connection error or a query error.
enum ScrapeError {
    Connect(String),
    Query(String),
}

impl PostgresExporter {
    pub fn new(options: PostgresOptions) -> PostgresExporter {
        PostgresExporter {
            options,
            scrapes: AtomicU64::new(0),
            connections: tokio::sync::Mutex::new(HashMap::new()),
            up: Mutex::new(HashMap::new()),
        }
    }

    /// Scrapes the servers of `dsns` (postgres_exporter's comma-separated
    /// `DATA_SOURCE_NAME`) and writes their metrics into `out`. `timeout`
    /// bounds each server's scrape.
    pub async fn scrape(&self, dsns: &[String], timeout: Duration, out: &mut String) {
        let started = Instant::now();
        let scrapes = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        let mut families = Families::new();
        let mut connect_failures = 0;
        let mut errors = 0;
        for dsn in dsns {
            let result =
                match tokio::time::timeout(timeout, self.scrape_dsn(dsn, &mut families)).await {
                    Ok(result) => result,
                    Err(_) => Err(ScrapeError::Connect(format!(
                        "no answer within {:.1} s",
                        timeout.as_secs_f64()
                    ))),
                };
            let redacted = dsn::redact(dsn);
            let reached = !matches!(result, Err(ScrapeError::Connect(_)));
            let was_up = self
                .up
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(redacted.clone(), reached);
            match result {
                Ok(()) => {
                    if was_up == Some(false) {
                        tracing::info!(dsn = %redacted, "postgres answers again");
                    }
                }
                Err(ScrapeError::Connect(error)) => {
                    connect_failures += 1;
                    errors += 1;
                    if was_up != Some(false) {
                        tracing::warn!(dsn = %redacted, %error, "postgres is not answering: pg_up 0");
                    }
                }
                Err(ScrapeError::Query(error)) => {
                    errors += 1;
                    tracing::warn!(dsn = %redacted, %error, "a postgres query failed");
                }
            }
        }
        families.add(
            "pg_exporter_last_scrape_duration_seconds",
            "Duration of the last scrape of metrics from PostgreSQL.",
            Kind::Gauge,
            &[],
            started.elapsed().as_secs_f64(),
        );
        families.add(
            "pg_exporter_scrapes_total",
            "Total number of times PostgreSQL was scraped for metrics.",
            Kind::Counter,
            &[],
            scrapes as f64,
        );
        families.add(
            "pg_exporter_last_scrape_error",
            "Whether the last scrape of metrics from PostgreSQL resulted in an error (1 for error, 0 for success).",
            Kind::Gauge,
            &[],
            if errors > 0 { 1.0 } else { 0.0 },
        );
        families.add(
            "pg_up",
            "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).",
            Kind::Gauge,
            &[],
            if connect_failures >= dsns.len() { 0.0 } else { 1.0 },
        );
        families.add(
            "postgres_exporter_build_info",
            "The osprey build that exports PostgreSQL metrics.",
            Kind::Gauge,
            &[
                ("branch", ""),
                ("goarch", std::env::consts::ARCH),
                ("goos", std::env::consts::OS),
                ("goversion", ""),
                ("revision", ""),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        );
        families.write(out);
    }

    /// A connection to `dsn`: the kept one while it works, else a new one.
    async fn client(&self, dsn: &str, server: &Server) -> Result<tokio_postgres::Client, String> {
        if let Some(client) = self.connections.lock().await.remove(dsn)
            && !client.is_closed()
        {
            return Ok(client);
        }
        let connect = async {
            if server.ssl.mode == dsn::SslMode::Disable {
                let (client, connection) = server
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "postgres connection ended");
                    }
                });
                Ok(client)
            } else {
                let tls = tls::PgTls::new(&server.ssl)?;
                let (client, connection) = server
                    .config
                    .connect(tls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "postgres connection ended");
                    }
                });
                Ok(client)
            }
        };
        connect.await
    }

    async fn scrape_dsn(&self, dsn: &str, families: &mut Families) -> Result<(), ScrapeError> {
        let server = Server::parse(dsn).map_err(ScrapeError::Connect)?;
        let client = self
            .client(dsn, &server)
            .await
            .map_err(ScrapeError::Connect)?;
        let label = server.label.as_str();
        let mut first_error: Option<String> = None;
        let mut note = |error: String| {
            if first_error.is_none() {
                first_error = Some(error);
            }
        };

        if self.options.default_metrics {
            match client.query_one("SELECT version()", &[]).await {
                Ok(row) => {
                    let version: String = row.try_get(0).unwrap_or_default();
                    let short = queries::short_version(&version).unwrap_or_default();
                    families.add(
                        "pg_static",
                        "Version string as reported by postgres.",
                        Kind::Untyped,
                        &[
                            ("server", label),
                            ("short_version", &short),
                            ("version", &version),
                        ],
                        1.0,
                    );
                }
                Err(e) => {
                    // A connection that broke since the last scrape.
                    if client.is_closed() {
                        return Err(ScrapeError::Connect(e.to_string()));
                    }
                    note(format!("version: {e}"));
                }
            }
        }
        if self.options.settings_metrics
            && let Err(e) = settings(&client, label, families).await
        {
            note(format!("settings: {e}"));
        }
        if self.options.default_metrics {
            for namespace in &NAMESPACES {
                if let Err(e) = namespace_metrics(&client, namespace, label, families).await {
                    note(format!("{}: {e}", namespace.name));
                }
            }
        }
        match client
            .query_one(
                "SELECT extract(epoch from pg_postmaster_start_time())::float8",
                &[],
            )
            .await
        {
            Ok(row) => {
                if let Ok(seconds) = row.try_get::<_, f64>(0) {
                    families.add(
                        "pg_postmaster_start_time_seconds",
                        "Time at which the postmaster started, in seconds since the epoch.",
                        Kind::Gauge,
                        &[("server", label)],
                        seconds,
                    );
                }
            }
            Err(e) => note(format!("postmaster start time: {e}")),
        }
        let collectors: [(&str, bool); 2] = [
            ("bgwriter", self.options.bgwriter_collector),
            ("database", self.options.database_collector),
        ];
        for (name, enabled) in collectors {
            if !enabled {
                continue;
            }
            let started = Instant::now();
            let result = match name {
                "bgwriter" => bgwriter(&client, label, families).await,
                _ => database_sizes(&client, label, families).await,
            };
            let labels = [("collector", name)];
            families.add(
                "pg_scrape_collector_duration_seconds",
                "postgres_exporter: Duration of a collector scrape.",
                Kind::Gauge,
                &labels,
                started.elapsed().as_secs_f64(),
            );
            families.add(
                "pg_scrape_collector_success",
                "postgres_exporter: Whether a collector succeeded.",
                Kind::Gauge,
                &labels,
                if result.is_ok() { 1.0 } else { 0.0 },
            );
            if let Err(e) = result {
                note(format!("collector {name}: {e}"));
            }
        }

        if !client.is_closed() {
            self.connections
                .lock()
                .await
                .insert(dsn.to_string(), client);
        }
        match first_error {
            None => Ok(()),
            Some(error) => Err(ScrapeError::Query(error)),
        }
    }
}

/// A parsed data source name.
struct Server {
    config: tokio_postgres::Config,
    ssl: dsn::SslSettings,
    /// `host:port`, the `server` label.
    label: String,
}

impl Server {
    fn parse(text: &str) -> Result<Server, String> {
        let split = dsn::split(text)?;
        let mut config = tokio_postgres::Config::from_str(&split.rest)
            .map_err(|e| format!("bad data source name {}: {e}", dsn::redact(text)))?;
        // lib/pq's defaults for what the DSN leaves out.
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".to_string());
            config.user(&user);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.ssl_mode(match split.ssl.mode {
            dsn::SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            dsn::SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        config.application_name("osprey");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Ok(Server {
            config,
            ssl: split.ssl,
            label: format!("{host}:{port}"),
        })
    }
}

/// Whether `dsn` is a data source name the exporter can use; the error
/// says what is wrong (with any password removed).
pub fn check_dsn(dsn: &str) -> Result<(), String> {
    let server = Server::parse(dsn)?;
    if server.ssl.mode != dsn::SslMode::Disable {
        tls::PgTls::new(&server.ssl)?;
    }
    Ok(())
}

/// The `server` label of a DSN (`host:port`), or `None` when it does not
/// parse.
pub fn server_label(dsn: &str) -> Option<String> {
    Server::parse(dsn).ok().map(|s| s.label)
}

async fn settings(
    client: &tokio_postgres::Client,
    server: &str,
    families: &mut Families,
) -> Result<(), tokio_postgres::Error> {
    for row in client.query(queries::SETTINGS_QUERY, &[]).await? {
        let text = |i: usize| row.try_get::<_, String>(i).unwrap_or_default();
        if let Some((name, help, value)) =
            queries::setting_metric(&text(0), &text(1), &text(2), &text(3), &text(4))
        {
            families.add(&name, &help, Kind::Gauge, &[("server", server)], value);
        }
    }
    Ok(())
}

/// One namespace's rows as metrics.
async fn namespace_metrics(
    client: &tokio_postgres::Client,
    namespace: &Namespace,
    server: &str,
    families: &mut Families,
) -> Result<(), tokio_postgres::Error> {
    let rows = client.query(namespace.query, &[]).await?;
    let label_names: Vec<&str> = namespace.labels().collect();
    for row in rows {
        let columns = row.columns();
        let value_of = |name: &str| -> PgValue {
            columns
                .iter()
                .position(|c| c.name() == name)
                .and_then(|i| row.try_get::<_, PgValue>(i).ok())
                .unwrap_or(PgValue::Null)
        };
        let label_values: Vec<String> =
            label_names.iter().map(|l| value_of(l).as_label()).collect();
        let mut labels: Vec<(&str, &str)> = label_names
            .iter()
            .copied()
            .zip(label_values.iter().map(String::as_str))
            .collect();
        labels.push(("server", server));
        for (index, column) in columns.iter().enumerate() {
            let (kind, help) = match namespace.column(column.name()) {
                Some(known) => match known.usage.kind() {
                    Some(kind) => (kind, known.help.to_string()),
                    None => continue,
                },
                None => (
                    Kind::Untyped,
                    format!("Unknown metric from {}.", namespace.name),
                ),
            };
            let Some(value) = row
                .try_get::<_, PgValue>(index)
                .ok()
                .and_then(|v| v.as_f64())
            else {
                continue;
            };
            let name = format!("{}_{}", namespace.name, column.name());
            families.add(&name, &help, kind, &labels, value);
        }
    }
    Ok(())
}

async fn bgwriter(
    client: &tokio_postgres::Client,
    server: &str,
    families: &mut Families,
) -> Result<(), tokio_postgres::Error> {
    let columns: Vec<&str> = queries::BGWRITER_COLUMNS.iter().map(|(c, _)| *c).collect();
    let query = format!("SELECT {} FROM pg_stat_bgwriter", columns.join(", "));
    let row = client.query_one(&query, &[]).await?;
    for (index, (column, help)) in queries::BGWRITER_COLUMNS.iter().enumerate() {
        let value = row
            .try_get::<_, PgValue>(index)
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN);
        families.add(
            &format!("pg_stat_bgwriter_{column}_total"),
            help,
            Kind::Counter,
            &[("server", server)],
            value,
        );
    }
    Ok(())
}

async fn database_sizes(
    client: &tokio_postgres::Client,
    server: &str,
    families: &mut Families,
) -> Result<(), tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT datname, pg_database_size(datname) FROM pg_database",
            &[],
        )
        .await?;
    for row in rows {
        let name = row
            .try_get::<_, PgValue>(0)
            .map(|v| v.as_label())
            .unwrap_or_default();
        let size = row
            .try_get::<_, i64>(1)
            .map(|v| v as f64)
            .unwrap_or(f64::NAN);
        families.add(
            "pg_database_size_bytes",
            "Disk space used by the database.",
            Kind::Gauge,
            &[("datname", &name), ("server", server)],
            size,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_labels() {
        assert_eq!(
            server_label("postgresql://u:p@db.example:6543/app?sslmode=disable").as_deref(),
            Some("db.example:6543")
        );
        assert_eq!(
            server_label("user=postgres dbname=x").as_deref(),
            Some("localhost:5432")
        );
        assert_eq!(
            server_label("host=/var/run/postgresql user=postgres").as_deref(),
            Some("/var/run/postgresql:5432")
        );
        assert_eq!(server_label("postgresql://db?sslmode=nope"), None);
    }

    #[tokio::test]
    async fn an_absent_server_is_pg_up_0() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exporter = PostgresExporter::new(PostgresOptions::DEFAULTS);
        let mut out = String::new();
        let dsn = format!("postgresql://postgres:secret@127.0.0.1:{port}/postgres?sslmode=disable");
        exporter
            .scrape(&[dsn], Duration::from_secs(5), &mut out)
            .await;
        assert!(out.contains("\npg_up 0\n"), "{out}");
        assert!(out.contains("\npg_exporter_last_scrape_error 1\n"), "{out}");
        assert!(!out.contains("secret"));
    }
}
