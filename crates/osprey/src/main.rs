//! The `osprey` command: one binary for the whole monitoring stack.
//!
//! Subcommands:
//! - `server`: the TSDB behind the Prometheus HTTP API.
//! - `import`: offline backfill of OpenMetrics files into blocks.
//! - `agent`: scrape and forward with remote write (Prometheus agent mode).
//! - `exporter host|gpu|container|redis|postgres|blackbox`: one built-in
//!   exporter alone, for the other hosts of a fleet, taking the reference
//!   exporters' flags (`exporter.rs`).
//! - `alertmanager`: the alert manager alone, and `routes test`.
//! - `check alertmanager`: validates alertmanager.yml files.
//! - `slo generate` and `check slo`: SLO specs (Sloth, OpenSLO) into
//!   Prometheus rule files, and their validation.
//! - `rules backtest`: what rule files would have done over stored history.
//! - `tsdb backup` / `tsdb restore`: copies of the blocks with a checked
//!   manifest, and their way back into an empty data directory
//!   (`tsdb_cli.rs`).
//!
//! This is the only crate that uses `anyhow`; every error leaves here as one
//! line on stderr and a non-zero exit code.

mod agent;
mod alertmanager;
mod backtest;
mod check;
mod exporter;
mod import;
mod slo;
mod tsdb_cli;
mod units;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "osprey",
    version,
    about = "One binary for the monitoring stack an ML team runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: storage, ingestion and the Prometheus HTTP API.
    Server(ServerArgs),
    /// Backfill OpenMetrics files (timestamps in seconds) into blocks.
    Import(ImportArgs),
    /// Scrape targets and forward the samples with remote write (no local queries).
    Agent(AgentArgs),
    /// Check configuration or rule files, as promtool does.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run unit tests, as promtool does.
    #[command(subcommand)]
    Test(TestCommand),
    /// Run one built-in exporter alone (host, gpu, container, redis, postgres or blackbox).
    Exporter(exporter::ExporterArgs),
    /// Run the alert manager alone, or test its routing tree.
    Alertmanager(AlertmanagerArgs),
    /// SLO specs (Sloth prometheus/v1, OpenSLO v1): generate their rules.
    #[command(subcommand)]
    Slo(SloCommand),
    /// Work with rule files against stored history.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Work with a data directory: backups and restores.
    #[command(subcommand)]
    Tsdb(tsdb_cli::TsdbCommand),
}

#[derive(Subcommand)]
enum SloCommand {
    /// Print the recording and alerting rules of SLO specs as a Prometheus
    /// rule file (Sloth's rules, plus osprey's budget rules).
    Generate(slo::GenerateArgs),
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Evaluate rule files over a past time range and report when each
    /// alert would have been pending and firing, and what it would have sent.
    Backtest(backtest::BacktestArgs),
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Validate alertmanager.yml files, like `amtool check-config`.
    Alertmanager {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check a prometheus.yml (or osprey config) and the rule files it names.
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check rule files.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Experimental PromQL features by Prometheus's names, as for
        /// `osprey server`.
        #[arg(long = "enable-feature", value_delimiter = ',')]
        enable_feature: Vec<String>,
    },
    /// Check SLO spec files (Sloth prometheus/v1, OpenSLO v1).
    Slo(slo::CheckArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AlertmanagerArgs {
    #[command(subcommand)]
    command: Option<AlertmanagerCommand>,
    /// The alertmanager.yml to run.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for the Alertmanager API v2.
    #[arg(long, default_value = "127.0.0.1:9093")]
    listen: SocketAddr,
    /// Web configuration (exporter-toolkit format): TLS, users, roles,
    /// tokens, rate limits; re-read when it or its files change.
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// Where silences and the notification log are kept.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// The URL the alert manager is reached under, for links in
    /// notifications (default http://<listen>).
    #[arg(long = "web.external-url")]
    external_url: Option<String>,
    #[command(flatten)]
    cluster: alertmanager::ClusterArgs,
}

#[derive(Subcommand)]
enum AlertmanagerCommand {
    /// The routing tree.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Print the receivers a label set reaches, like `amtool config routes test`.
    Test(alertmanager::RoutesTestArgs),
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run rule unit tests written in promtool's test file format.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Experimental PromQL features by Prometheus's names, as for
        /// `osprey server`.
        #[arg(long = "enable-feature", value_delimiter = ',')]
        enable_feature: Vec<String>,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Configuration file (a prometheus.yml, optionally with osprey sections).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the database lives.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Address for the HTTP API and UI.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Web configuration (exporter-toolkit format): TLS, users, roles,
    /// tokens, rate limits; re-read when it or its files change.
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// How long to keep samples (Prometheus duration, e.g. 30d, 12h); 0 keeps forever.
    #[arg(long = "retention.time", default_value = "30d")]
    retention_time: String,
    /// Maximum bytes of blocks and WAL (e.g. 512MB, 100GB); 0 means no limit.
    #[arg(long = "retention.size", default_value = "0")]
    retention_size: String,
    /// The URL osprey is reached under, for links in alerts (default http://<listen>).
    #[arg(long = "web.external-url")]
    external_url: Option<String>,
    /// Minimum time before an unchanged firing alert is sent again.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m")]
    resend_delay: String,
    /// Longest outage after which the `for` state of alerts is still restored.
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h")]
    for_outage_tolerance: String,
    /// Minimum wait after a restart before a restored alert fires (Prometheus: 10m).
    #[arg(long = "rules.alert.for-grace-period", default_value = "0s")]
    for_grace_period: String,

    /// Experimental features by Prometheus's names, repeated or
    /// comma-separated: native-histograms (scrape them, asking for the
    /// protobuf format first), promql-experimental-functions,
    /// promql-duration-expr, promql-extended-range-selectors,
    /// promql-binop-fill-modifiers. Other names are ignored with a warning,
    /// as Prometheus does.
    #[arg(long = "enable-feature", value_delimiter = ',')]
    enable_feature: Vec<String>,
    /// The embedded alert manager's peers (Alertmanager's flags).
    #[command(flatten)]
    cluster: alertmanager::ClusterArgs,
    /// Most queries evaluated at once; more wait in a queue (until their timeout).
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    query_max_concurrency: usize,
    /// Most samples one query may hold in memory at once.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    query_max_samples: usize,
    /// Longest time a query may run, queueing included.
    #[arg(long = "query.timeout", default_value = "2m")]
    query_timeout: String,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// Configuration file: scrape_configs and remote_write, as in prometheus.yml.
    #[arg(long)]
    config: PathBuf,
    /// Where the WAL of unsent samples and the queue positions live.
    #[arg(long = "data-dir", default_value = "./data-agent")]
    data_dir: PathBuf,
    /// Address for /metrics, /-/healthy, /-/ready and /-/reload.
    #[arg(long, default_value = "127.0.0.1:9095")]
    listen: SocketAddr,
    /// Web configuration (exporter-toolkit format): TLS, users, roles,
    /// tokens, rate limits; re-read when it or its files change.
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// Features by Prometheus's names: `created-timestamp-zero-ingestion`
    /// (others are warned about and ignored).
    #[arg(long = "enable-feature", value_delimiter = ',')]
    enable_feature: Vec<String>,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Database directory to write blocks into.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Largest time span of one written block (Prometheus duration).
    #[arg(long = "max-block-duration", default_value = "744h")]
    max_block_duration: String,
    /// OpenMetrics files, `# EOF` terminated, timestamps in seconds.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() {
    let cli = Cli::parse_from(exporter::go_style_flags(std::env::args_os().collect()));
    // The checkers print their own findings; the store they open for unit
    // tests must not add log lines to them.
    let verdict = match &cli.command {
        Command::Check(CheckCommand::Config { files }) => Some(check::check_config(files)),
        Command::Check(CheckCommand::Rules {
            files,
            enable_feature,
        }) => Some(check::check_rules(files, enable_feature)),
        Command::Test(TestCommand::Rules {
            files,
            enable_feature,
        }) => Some(check::test_rules(files, enable_feature)),
        Command::Check(CheckCommand::Slo(args)) => Some(slo::check(args)),
        _ => None,
    };
    if let Some(passed) = verdict {
        std::process::exit(if passed { 0 } else { 1 });
    }
    init_logging();
    let result = match cli.command {
        Command::Server(args) => run_server(args),
        Command::Agent(args) => run_agent(args),
        Command::Import(args) => units::parse_duration_ms(&args.max_block_duration)
            .map_err(anyhow::Error::msg)
            .context("--max-block-duration")
            .and_then(|window| import::run(&args.data_dir, &args.files, window)),
        Command::Check(CheckCommand::Alertmanager { files }) => alertmanager::check(&files),
        Command::Alertmanager(args) => match args.command {
            Some(AlertmanagerCommand::Routes {
                command: RoutesCommand::Test(test),
            }) => alertmanager::routes_test(&test),
            None => load_web_config(args.web_config_file.as_deref()).and_then(|web| {
                alertmanager::run(
                    args.config,
                    args.listen,
                    args.data_dir,
                    args.external_url,
                    web,
                    args.cluster.options()?,
                )
            }),
        },
        Command::Check(_) | Command::Test(_) => Ok(()),
        Command::Exporter(args) => exporter::run(args),
        Command::Slo(SloCommand::Generate(args)) => slo::generate(&args),
        Command::Rules(RulesCommand::Backtest(args)) => backtest::run(&args),
        Command::Tsdb(command) => tsdb_cli::run(command),
    };
    if let Err(e) = result {
        eprintln!("osprey: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OSPREY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// How often maintenance (head cut, compaction, retention) runs. A head cut
/// is due every two hours of data; a minute keeps the head within a minute
/// of its target size without measurable cost when there is nothing to do.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let web = load_web_config(args.web_config_file.as_deref())?;
    let retention_ms = units::parse_duration_ms(&args.retention_time)
        .map_err(anyhow::Error::msg)
        .context("--retention.time")?;
    let retention_bytes = units::parse_size_bytes(&args.retention_size)
        .map_err(anyhow::Error::msg)
        .context("--retention.size")?;
    let opts = tsdb::DbOptions::with_retention(
        (retention_ms > 0).then_some(retention_ms),
        (retention_bytes > 0).then_some(retention_bytes),
    );
    fix_allocator_thresholds();
    let db = Arc::new(tsdb::Db::open(&args.data_dir, opts).context("opening the database")?);

    let stop = Arc::new(AtomicBool::new(false));
    let maintenance = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("maintenance".into())
            .spawn(move || maintenance_loop(&db, &stop))
            .context("starting the maintenance thread")?
    };
    let memory_return = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("memory-return".into())
            .spawn(move || memory_return_loop(&db, &stop))
            .context("starting the memory return thread")?
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A worker reads request bodies into its own arena, whose free top
        // `return_free_memory` gives back through the worker's key.
        .on_thread_unpark(server::arena_keys::hold)
        .build()
        .context("starting the async runtime")?;
    let mut config = server::ServerConfig::new(args.listen);
    let flag_ms = |text: &str, flag: &str| {
        units::parse_duration_ms(text)
            .map_err(anyhow::Error::msg)
            .with_context(|| flag.to_string())
    };
    config.rule_flags = server::rules::RuleFlags {
        resend_delay_ms: flag_ms(&args.resend_delay, "--rules.alert.resend-delay")?,
        outage_tolerance_ms: flag_ms(
            &args.for_outage_tolerance,
            "--rules.alert.for-outage-tolerance",
        )?,
        for_grace_period_ms: flag_ms(&args.for_grace_period, "--rules.alert.for-grace-period")?,
    };
    if let Some(url) = &args.external_url {
        config.external_url = url.trim_end_matches('/').to_string();
    }
    if args.query_max_concurrency == 0 || args.query_max_samples == 0 {
        anyhow::bail!("--query.max-concurrency and --query.max-samples must be at least 1");
    }
    config.engine.max_concurrent = args.query_max_concurrency;
    config.engine.max_samples = args.query_max_samples;
    let query_timeout_ms = flag_ms(&args.query_timeout, "--query.timeout")?;
    if query_timeout_ms <= 0 {
        anyhow::bail!(
            "--query.timeout must be positive, got {}",
            args.query_timeout
        );
    }
    config.engine.timeout = std::time::Duration::from_millis(query_timeout_ms as u64);
    config.alertmanager_cluster = args.cluster.options()?;
    for feature in &args.enable_feature {
        if feature.trim() == "native-histograms" {
            config.native_histograms = true;
        } else if feature.trim() == "created-timestamp-zero-ingestion" {
            config.created_timestamp_zero_ingestion = true;
        } else if !config.promql_features.enable_feature(feature.trim()) {
            tracing::warn!(feature = %feature, "unknown option for --enable-feature");
        }
    }
    config.flags = vec![
        (
            "config.file".into(),
            args.config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        (
            "storage.tsdb.path".into(),
            args.data_dir.display().to_string(),
        ),
        ("web.listen-address".into(), args.listen.to_string()),
        ("web.external-url".into(), config.external_url.clone()),
        ("rules.alert.resend-delay".into(), args.resend_delay.clone()),
        (
            "rules.alert.for-outage-tolerance".into(),
            args.for_outage_tolerance.clone(),
        ),
        (
            "rules.alert.for-grace-period".into(),
            args.for_grace_period.clone(),
        ),
        (
            "storage.tsdb.retention.time".into(),
            args.retention_time.clone(),
        ),
        (
            "storage.tsdb.retention.size".into(),
            args.retention_size.clone(),
        ),
        ("enable-feature".into(), args.enable_feature.join(",")),
        (
            "query.max-concurrency".into(),
            args.query_max_concurrency.to_string(),
        ),
        (
            "query.max-samples".into(),
            args.query_max_samples.to_string(),
        ),
        ("query.timeout".into(), args.query_timeout.clone()),
    ];
    config.data_dir = Some(args.data_dir.clone());
    config.web = web;
    config.retention_ms = (retention_ms > 0).then_some(retention_ms);
    let source = match &args.config {
        Some(path) => server::lifecycle::ConfigSource::File(path.clone()),
        None => server::lifecycle::default_config(args.listen),
    };
    let served: anyhow::Result<()> = runtime.block_on(async {
        let state = server::AppState::new(db.clone(), config);
        let dashboard_paths = state.dashboard_paths().clone();
        let dashboards =
            ui::DashboardStore::new(Some(args.data_dir.join("dashboards")), move || {
                dashboard_paths.get()
            });
        state.mount(ui::router(Arc::new(dashboards)), ui::paths());
        state.start(source).await.map_err(anyhow::Error::msg)?;
        maintenance.thread().unpark();
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let reloader = state.clone();
        tokio::spawn(async move { reload_on_sighup(reloader).await });
        let result = server::serve_listener(listener, state.clone(), shutdown_signal()).await;
        state.stop().await;
        result.context("serving HTTP")
    });
    stop.store(true, Ordering::Relaxed);
    maintenance.thread().unpark();
    memory_return.thread().unpark();
    let _ = maintenance.join();
    let _ = memory_return.join();
    served?;
    tracing::info!("stopped");
    Ok(())
}

fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let web = load_web_config(args.web_config_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let source = server::lifecycle::ConfigSource::File(args.config.clone());
        let mut features = agent::AgentFeatures {
            created_timestamp_zero_ingestion: false,
        };
        for feature in &args.enable_feature {
            match feature.trim() {
                "created-timestamp-zero-ingestion" => {
                    features.created_timestamp_zero_ingestion = true;
                }
                other => {
                    tracing::warn!(feature = %other, "unknown option for --enable-feature");
                }
            }
        }
        let agent = agent::Agent::start(source, &args.data_dir, features)
            .await
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(addr = %args.listen, "agent listening");
        let reloader = agent.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::error!("cannot listen for SIGHUP; reload with POST /-/reload");
                return;
            };
            while hup.recv().await.is_some() {
                if let Err(e) = reloader.reload().await {
                    tracing::error!(error = %e, "reloading the configuration failed; keeping the old one");
                }
            }
        });
        let served = agent::serve(listener, agent.router(), web, &args.data_dir, shutdown_signal()).await;
        agent.stop().await;
        served.context("serving HTTP")
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// The web configuration a `--web.config.file` names (or none: plain
/// HTTP, nothing protected). A bad file stops the start with its field.
fn load_web_config(
    path: Option<&std::path::Path>,
) -> anyhow::Result<server::listen::WebConfigHandle> {
    match path {
        Some(path) => server::listen::WebConfigHandle::load(path)
            .map_err(anyhow::Error::msg)
            .context("--web.config.file"),
        None => Ok(server::listen::WebConfigHandle::open()),
    }
}

/// Reloads the configuration on every SIGHUP, as Prometheus does: the
/// same reload as `POST /-/reload` (it logs its own outcome).
async fn reload_on_sighup(state: server::AppState) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP; reload with POST /-/reload");
        return;
    };
    while hup.recv().await.is_some() {
        let _ = state.reload().await;
    }
}

fn maintenance_loop(db: &tsdb::Db, stop: &AtomicBool) {
    // The server unparks this thread once the configuration is in effect,
    // so the first round (with its retention rules) runs at once.
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(MAINTENANCE_INTERVAL);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        if let Err(e) = db.maintain(now_ms) {
            tracing::error!(error = %e, "maintenance failed; will retry");
        }
    }
}

/// How often the memory return thread looks whether samples are still
/// coming in: a burst's end is noticed within this time.
const MEMORY_RETURN_POLL: Duration = Duration::from_millis(250);

/// While samples keep coming in without a pause, freed memory is still
/// handed back this often.
const MEMORY_RETURN_EVERY: Duration = Duration::from_secs(60);

/// Hands heap memory that is free again back to the system when a burst
/// of writes ends (and at least every [`MEMORY_RETURN_EVERY`] under
/// steady writes). A write request's decoded body and staging buffers are
/// freed when it is committed, but they lay between the series records it
/// created, and glibc returns only the top of a heap on its own: after the
/// wide profile's remote-write ingest that left about a fifth of the
/// resident memory free but resident (150k-series run, see
/// ARCHITECTURE.md).
fn memory_return_loop(db: &tsdb::Db, stop: &AtomicBool) {
    let mut seen = db.samples_appended_total();
    let mut writing = false;
    let mut last_return = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(MEMORY_RETURN_POLL);
        let now = db.samples_appended_total();
        let burst_ended = now == seen && writing;
        writing = now != seen;
        seen = now;
        if burst_ended || (writing && last_return.elapsed() >= MEMORY_RETURN_EVERY) {
            return_free_memory();
            last_return = std::time::Instant::now();
        }
    }
}

/// glibc's mmap threshold while the server runs: its own ceiling for the
/// threshold it moves (which starts at 128 KiB and rises to the largest
/// block freed since), so request buffers come from the arenas as they do
/// once glibc has seen a large request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// glibc's trim threshold during bursts of writes: the ceiling of the one
/// it moves, twice the mmap threshold. A lower one trims an arena's top
/// after each request and the next one faults its pages in again: 1 MiB
/// cost a tenth more ingest CPU (ARCHITECTURE.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// The trim threshold while [`return_free_memory`] frees the arena keys:
/// every top past it is given back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_RETURNING: libc::c_int = 128 << 10;

/// Sets glibc's mmap and trim thresholds once, before any thread starts.
/// Setting one stops glibc from moving both, and [`return_free_memory`]
/// sets the trim threshold after every burst: fixed here first, the mmap
/// threshold cannot stay at 128 KiB when the first burst was small.
fn fix_allocator_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes glibc's allocation parameters; it
        // takes the main arena's lock and may be called from any thread.
        let set = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                & libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        };
        if set != 1 {
            tracing::warn!("glibc refused the allocator thresholds; free memory returns later");
        }
    }
}

/// Asks the allocator to give free pages back to the system: the free tops
/// of the request threads' arenas (through their keys,
/// [`server::arena_keys`]), then free pages inside every arena.
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        let keys = server::arena_keys::take_all();
        let arenas = keys.len();
        // SAFETY: as in `fix_allocator_thresholds`. Other threads' frees
        // meanwhile may trim their arenas too, which is all it changes.
        unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_RETURNING) };
        drop(keys);
        // SAFETY: as above.
        unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
        // SAFETY: `malloc_trim` only releases memory that glibc's allocator
        // holds free; it may be called at any time from any thread.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            arenas,
            released = released != 0,
            millis = started.elapsed().as_millis() as u64,
            "returned free heap memory to the system"
        );
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}
