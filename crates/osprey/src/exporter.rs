//! `osprey exporter host|gpu|container|redis|postgres|blackbox --listen
//! ADDR`: one built-in exporter alone, taking the reference exporters' own
//! flags and environment variables for what it scrapes, so it replaces
//! them in an existing unit file or container spec:
//!
//! - redis: redis_exporter's `--redis.addr` (`REDIS_ADDR`), `--redis.user`
//!   (`REDIS_USER`), `--redis.password` (`REDIS_PASSWORD`),
//!   `--redis.password-file` (`REDIS_PASSWORD_FILE`, a JSON object of URI
//!   to password), `--tls-ca-cert-file`, `--tls-client-cert-file`,
//!   `--tls-client-key-file`, `--skip-tls-verification` (with their
//!   `REDIS_EXPORTER_*` variables);
//! - postgres: postgres_exporter's `DATA_SOURCE_NAME` (comma-separated), or
//!   `DATA_SOURCE_URI` with `DATA_SOURCE_USER` and `DATA_SOURCE_PASS` (each
//!   also as a `_FILE` variable, which wins), `--disable-default-metrics`,
//!   `--disable-settings-metrics`, `--[no-]collector.database`,
//!   `--[no-]collector.bgwriter`;
//! - container: cAdvisor's `--docker_only` and `--store_container_labels`;
//! - every kind: `--web.listen-address` as another name for `--listen`.
//!
//! Go's flag package, which redis_exporter and cAdvisor use, also takes
//! single-dash flags (`-redis.addr=...`); [`go_style_flags`] rewrites those
//! to clap's double dash before parsing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::builder::BoolishValueParser;
use server::exporters::{
    ContainerOptions, GpuNames, PostgresOptions, RedisTls, StandaloneExporter, StandaloneRedis,
};

#[derive(clap::Args)]
pub struct ExporterArgs {
    /// Which exporter: host (node_exporter names), gpu (DCGM and
    /// nvidia_gpu_prometheus_exporter names), container (cAdvisor names),
    /// redis (redis_exporter names), postgres (postgres_exporter names) or
    /// blackbox (probes on /probe).
    #[arg(value_enum)]
    kind: ExporterKind,
    /// Address to serve /metrics (and /probe, /scrape) on.
    #[arg(long, visible_alias = "web.listen-address")]
    listen: SocketAddr,
    /// Web configuration (exporter-toolkit format): TLS, users, roles,
    /// tokens, rate limits; re-read when it or its files change.
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// blackbox only: modules in blackbox_exporter's format (default:
    /// http_2xx and tcp_connect).
    #[arg(long)]
    config: Option<PathBuf>,

    /// gpu: leave out DCGM exporter's DCGM_FI_DEV_* names.
    #[arg(long = "no-dcgm-names")]
    no_dcgm_names: bool,
    /// gpu: leave out nvidia_gpu_prometheus_exporter's nvidia_gpu_* names.
    #[arg(long = "no-nvidia-gpu-exporter-names")]
    no_nvidia_gpu_exporter_names: bool,

    /// container: only containers a runtime describes, and the root.
    #[arg(long = "docker_only", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    docker_only: bool,
    /// container: add container labels as container_label_<name>.
    #[arg(long = "store_container_labels", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    store_container_labels: bool,

    /// redis: the instance /metrics scrapes.
    #[arg(
        long = "redis.addr",
        env = "REDIS_ADDR",
        default_value = "redis://localhost:6379"
    )]
    redis_addr: String,
    /// redis: ACL user (Redis 6 and later).
    #[arg(long = "redis.user", env = "REDIS_USER")]
    redis_user: Option<String>,
    /// redis: password.
    #[arg(
        long = "redis.password",
        env = "REDIS_PASSWORD",
        hide_env_values = true
    )]
    redis_password: Option<String>,
    /// redis: JSON object of Redis URI to password, used without --redis.password.
    #[arg(long = "redis.password-file", env = "REDIS_PASSWORD_FILE")]
    redis_password_file: Option<String>,
    /// redis: CA certificates for rediss:// targets.
    #[arg(long = "tls-ca-cert-file", env = "REDIS_EXPORTER_TLS_CA_CERT_FILE")]
    tls_ca_cert_file: Option<PathBuf>,
    /// redis: client certificate for rediss:// targets.
    #[arg(
        long = "tls-client-cert-file",
        env = "REDIS_EXPORTER_TLS_CLIENT_CERT_FILE"
    )]
    tls_client_cert_file: Option<PathBuf>,
    /// redis: the client certificate's key.
    #[arg(
        long = "tls-client-key-file",
        env = "REDIS_EXPORTER_TLS_CLIENT_KEY_FILE"
    )]
    tls_client_key_file: Option<PathBuf>,
    /// redis: accept any server certificate.
    #[arg(long = "skip-tls-verification", env = "REDIS_EXPORTER_SKIP_TLS_VERIFICATION",
          num_args = 0..=1, require_equals = true, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    skip_tls_verification: bool,

    /// postgres: leave out the built-in query namespaces and pg_static.
    #[arg(
        long = "disable-default-metrics",
        env = "PG_EXPORTER_DISABLE_DEFAULT_METRICS"
    )]
    disable_default_metrics: bool,
    /// postgres: leave out pg_settings_*.
    #[arg(
        long = "disable-settings-metrics",
        env = "PG_EXPORTER_DISABLE_SETTINGS_METRICS"
    )]
    disable_settings_metrics: bool,
    /// postgres: the database collector (pg_database_size_bytes).
    #[arg(long = "collector.database", overrides_with = "no_collector_database")]
    collector_database: bool,
    #[arg(long = "no-collector.database", hide = true)]
    no_collector_database: bool,
    /// postgres: the bgwriter collector (pg_stat_bgwriter_*).
    #[arg(long = "collector.bgwriter", overrides_with = "no_collector_bgwriter")]
    collector_bgwriter: bool,
    #[arg(long = "no-collector.bgwriter", hide = true)]
    no_collector_bgwriter: bool,
    /// postgres: user queries (not supported by osprey; an error when set).
    #[arg(
        long = "extend.query-path",
        env = "PG_EXPORTER_EXTEND_QUERY_PATH",
        hide = true
    )]
    extend_query_path: Option<String>,
    /// postgres: database discovery (not supported by osprey; an error when set).
    #[arg(
        long = "auto-discover-databases",
        env = "PG_EXPORTER_AUTO_DISCOVER_DATABASES",
        hide = true
    )]
    auto_discover_databases: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExporterKind {
    Host,
    Gpu,
    Container,
    Redis,
    Postgres,
    Blackbox,
}

/// The long flags Go's flag package would also take with one dash.
const GO_FLAGS: [&str; 12] = [
    "redis.addr",
    "redis.user",
    "redis.password",
    "redis.password-file",
    "tls-ca-cert-file",
    "tls-client-cert-file",
    "tls-client-key-file",
    "skip-tls-verification",
    "web.listen-address",
    "docker_only",
    "store_container_labels",
    "listen",
];

/// The command line with `-flag` and `-flag=value` of [`GO_FLAGS`] turned
/// into `--flag...`, for `osprey exporter` only.
pub fn go_style_flags(args: Vec<OsString>) -> Vec<OsString> {
    if args.get(1).and_then(|a| a.to_str()) != Some("exporter") {
        return args;
    }
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else {
                return arg;
            };
            let Some(rest) = text.strip_prefix('-').filter(|r| !r.starts_with('-')) else {
                return arg;
            };
            let name = rest.split('=').next().unwrap_or(rest);
            if GO_FLAGS.contains(&name) {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
}

fn read_file(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{what} {}", path.display()))
}

/// postgres_exporter's data sources: `DATA_SOURCE_NAME` (comma-separated)
/// wins; else `postgresql://USER:PASS@URI` from `DATA_SOURCE_URI`,
/// `DATA_SOURCE_USER` and `DATA_SOURCE_PASS`, a `_FILE` variable winning
/// over its plain one.
fn postgres_data_sources() -> anyhow::Result<Vec<String>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(dsn) = var("DATA_SOURCE_NAME") {
        return Ok(dsn.split(',').map(str::to_string).collect());
    }
    let from_file_or_var = |name: &str| -> anyhow::Result<Option<String>> {
        match var(&format!("{name}_FILE")) {
            Some(path) => config::secret::read_secret(&path)
                .map(Some)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{name}_FILE")),
            None => Ok(var(name)),
        }
    };
    let Some(uri) = from_file_or_var("DATA_SOURCE_URI")? else {
        bail!(
            "no data source: set DATA_SOURCE_NAME, or DATA_SOURCE_URI with DATA_SOURCE_USER and DATA_SOURCE_PASS"
        );
    };
    let user = from_file_or_var("DATA_SOURCE_USER")?.unwrap_or_default();
    let pass = from_file_or_var("DATA_SOURCE_PASS")?.unwrap_or_default();
    Ok(vec![format!(
        "postgresql://{}:{}@{uri}",
        escape_user_info(&user),
        escape_user_info(&pass)
    )])
}

/// Percent-encodes a URL's user or password (everything but RFC 3986's
/// unreserved characters).
fn escape_user_info(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Builds the chosen exporter from the flags and serves it until SIGINT
/// or SIGTERM.
pub fn run(args: ExporterArgs) -> anyhow::Result<()> {
    if args.config.is_some() && args.kind != ExporterKind::Blackbox {
        bail!("--config is for the blackbox exporter only");
    }
    let exporter = match args.kind {
        ExporterKind::Host => StandaloneExporter::Host,
        ExporterKind::Gpu => StandaloneExporter::Gpu(GpuNames {
            dcgm: !args.no_dcgm_names,
            nvidia_gpu_exporter: !args.no_nvidia_gpu_exporter_names,
        }),
        ExporterKind::Container => StandaloneExporter::Container(ContainerOptions {
            docker_only: args.docker_only,
            store_container_labels: args.store_container_labels,
            ..ContainerOptions::linux_defaults()
        }),
        ExporterKind::Redis => {
            let passwords: BTreeMap<String, String> = match &args.redis_password_file {
                Some(path) if args.redis_password.is_none() => {
                    config::secret::read_redis_password_map(path).map_err(anyhow::Error::msg)?
                }
                _ => BTreeMap::new(),
            };
            if args.tls_client_cert_file.is_some() != args.tls_client_key_file.is_some() {
                bail!("--tls-client-cert-file and --tls-client-key-file go together");
            }
            let tls = RedisTls {
                ca_pem: args
                    .tls_ca_cert_file
                    .as_deref()
                    .map(|p| read_file(p, "--tls-ca-cert-file"))
                    .transpose()?,
                client_cert_pem: args
                    .tls_client_cert_file
                    .as_deref()
                    .map(|p| read_file(p, "--tls-client-cert-file"))
                    .transpose()?,
                client_key_pem: args
                    .tls_client_key_file
                    .as_deref()
                    .map(|p| read_file(p, "--tls-client-key-file"))
                    .transpose()?,
                insecure_skip_verify: args.skip_tls_verification,
            };
            StandaloneExporter::Redis(StandaloneRedis {
                address: args.redis_addr,
                user: args.redis_user.filter(|u| !u.is_empty()),
                password: args.redis_password,
                passwords,
                tls,
            })
        }
        ExporterKind::Postgres => {
            if args.extend_query_path.is_some() {
                bail!("--extend.query-path: not supported by osprey (user queries)");
            }
            if args.auto_discover_databases {
                bail!("--auto-discover-databases: not supported by osprey");
            }
            let dsns = postgres_data_sources()?;
            for dsn in &dsns {
                server::exporters::check_dsn(dsn).map_err(anyhow::Error::msg)?;
            }
            StandaloneExporter::Postgres(
                dsns,
                PostgresOptions {
                    default_metrics: !args.disable_default_metrics,
                    settings_metrics: !args.disable_settings_metrics,
                    database_collector: !args.no_collector_database || args.collector_database,
                    bgwriter_collector: !args.no_collector_bgwriter || args.collector_bgwriter,
                },
            )
        }
        ExporterKind::Blackbox => match &args.config {
            None => StandaloneExporter::Blackbox(server::exporters::default_modules()),
            Some(path) => StandaloneExporter::Blackbox(config::blackbox::load_blackbox_file(path)?),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let web = crate::load_web_config(args.web_config_file.as_deref())?;
    runtime
        .block_on(server::exporters::serve_standalone(
            exporter,
            args.listen,
            web,
            crate::shutdown_signal(),
        ))
        .context("serving the exporter")?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_go_flags() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            go_style_flags(args(&[
                "osprey",
                "exporter",
                "redis",
                "-redis.addr=x",
                "-redis.password-file",
                "f",
                "-v",
                "--listen",
                "a"
            ])),
            args(&[
                "osprey",
                "exporter",
                "redis",
                "--redis.addr=x",
                "--redis.password-file",
                "f",
                "-v",
                "--listen",
                "a"
            ])
        );
        assert_eq!(
            go_style_flags(args(&["osprey", "server", "-redis.addr=x"])),
            args(&["osprey", "server", "-redis.addr=x"])
        );
        assert_eq!(escape_user_info("a b@c:d"), "a%20b%40c%3Ad");
    }
}
