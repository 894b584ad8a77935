//! The config file in the running server: start, reload, stop.
//!
//! There is one reload ([`AppState::reload`]), behind both `POST
//! /-/reload` and SIGHUP. It has two phases:
//!
//! 1. **Prepare** ([`Prepared::load`]): read the whole file with the
//!    `config` crate (every section checked, the alert manager's file and
//!    `scrape_config_files` included), read the rule files and the SLO
//!    specs (generating the SLOs' rule groups), load the alert manager's
//!    templates and build every HTTP client the config names (scrape
//!    jobs, Alertmanagers, receivers). Anything wrong fails here,
//!    with the file, line and field, and nothing has changed yet.
//! 2. **Apply** ([`AppState::apply`]): hand each subsystem its part:
//!    the exporters' settings (blackbox modules, GPU names, containers,
//!    Redis and PostgreSQL instances), the `models:` settings, rules (the
//!    SLOs' and each configured model's starter rules with them), the
//!    alert sender, the embedded alert manager
//!    (started, reconfigured or stopped as the `alertmanager:` section
//!    comes, changes or goes), and scraping (the file's jobs plus the
//!    `redis` and `postgres` jobs of the configured instances). None of
//!    these can fail.
//!
//! So a reload applies to every subsystem or to none, and
//! `prometheus_config_last_reload_successful` says which happened.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scrape::{ScrapeManager, ScrapeManagerOptions};

use crate::AppState;
use notifier::PreparedAlerting;

/// Where the configuration comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A `prometheus.yml` (or osprey superset), re-read on every reload.
    File(PathBuf),
    /// Text built in (the default when no file is given).
    Embedded {
        name: String,
        text: String,
        /// Rule files built in, as (name, text), loaded besides any
        /// `rule_files` of `text`.
        rules: Vec<(String, String)>,
    },
}

impl ConfigSource {
    /// The file, when the configuration comes from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::File(path) => Some(path),
            ConfigSource::Embedded { .. } => None,
        }
    }

    /// Built-in rule files, as (name, text).
    pub fn embedded_rules(&self) -> &[(String, String)] {
        match self {
            ConfigSource::File(_) => &[],
            ConfigSource::Embedded { rules, .. } => rules,
        }
    }

    /// Reads and parses the configuration; errors name file, line and
    /// field.
    pub fn load(&self) -> Result<config::Config, String> {
        let config = match self {
            ConfigSource::File(path) => config::load_file(path),
            ConfigSource::Embedded { name, text, .. } => config::parse(name, text, None),
        }
        .map_err(|e| e.to_string())?;
        for warning in &config.warnings {
            tracing::warn!(config = %config.name, "{warning}");
        }
        Ok(config)
    }
}

/// osprey's starter alert rules, loaded with the embedded default.
pub const STARTER_RULES: &str = include_str!("starter_rules.yml");

/// osprey's starter anomaly rules (`docs/anomaly.md`, "Starter rules"),
/// loaded when the config says `anomaly_rules: true`.
pub const ANOMALY_RULES: &str = include_str!("anomaly_rules.yml");

/// The name rule errors and the rules API give the starter anomaly rules.
pub const ANOMALY_RULES_NAME: &str = "<starter anomaly rules>";

/// The embedded default: osprey scrapes its own `/metrics` and its
/// built-in host, GPU and container exporters every 15 s (the container
/// exporter reads the local cgroup tree, always there), runs the starter alert
/// rules, and runs the alert manager with one route, so alerts show in the
/// UI, `amtool` and silences, and notify nobody until a configuration
/// names receivers. OTLP is served on 127.0.0.1:4317 (gRPC) and :4318 (HTTP)
/// too, where OpenTelemetry SDKs send by default, unless a port is taken.
pub fn default_config(listen: std::net::SocketAddr) -> ConfigSource {
    ConfigSource::Embedded {
        name: "<embedded default>".to_string(),
        rules: vec![(
            "<embedded starter rules>".to_string(),
            STARTER_RULES.to_string(),
        )],
        text: format!(
            "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nscrape_configs:\n  - job_name: osprey\n    static_configs:\n      - targets: ['{listen}']\n  - job_name: host\n    metrics_path: /exporters/host/metrics\n    static_configs:\n      - targets: ['{listen}']\n  - job_name: gpu\n    metrics_path: /exporters/gpu/metrics\n    static_configs:\n      - targets: ['{listen}']\n  - job_name: containers\n    metrics_path: /exporters/container/metrics\n    static_configs:\n      - targets: ['{listen}']\nalertmanager:\n  route:\n    receiver: default\n    group_by: ['alertname']\n  receivers:\n    - name: default\notlp:\n  grpc_listen_address: 127.0.0.1:4317\n  http_listen_address: 127.0.0.1:4318\n"
        ),
    }
}

/// How long a clean shutdown waits for the `remote_write` queues to send
/// what their WAL holds; the rest is sent after the next start. As the
/// agent's.
pub const REMOTE_WRITE_FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A configuration read, checked and made ready: applying it cannot fail.
pub struct Prepared {
    config: Arc<config::Config>,
    rule_groups: Vec<rules::GroupSpec>,
    slos: crate::slos::PreparedSlos,
    alerting: PreparedAlerting,
    alertmanager: Option<alert::PreparedConfig>,
}

impl Prepared {
    /// Phase one of a (re)load: everything that can fail.
    /// `features`: the PromQL features rule expressions are checked with.
    pub fn load(source: &ConfigSource, features: promql::ParseOptions) -> Result<Prepared, String> {
        let config = source.load()?;
        let mut rule_groups =
            crate::rules::read_rule_groups(&config, source.embedded_rules(), features)?;
        let slos = crate::slos::PreparedSlos::load(&config)?;
        rule_groups.extend(slos.rule_groups());
        let (alerting, alertmanager) = prepare_connections(&config)?;
        Ok(Prepared {
            config: Arc::new(config),
            rule_groups,
            slos,
            alerting,
            alertmanager,
        })
    }
}

/// Checks what a parsed config needs besides its own text and the rule
/// files: the alert manager's templates, and every HTTP client it names
/// (TLS files, proxies). `osprey check config` runs this too.
pub fn check_connections(config: &config::Config) -> Result<(), String> {
    prepare_connections(config).map(|_| ())
}

fn prepare_connections(
    config: &config::Config,
) -> Result<(PreparedAlerting, Option<alert::PreparedConfig>), String> {
    // A PostgreSQL instance whose data source name does not parse would
    // only ever be pg_up 0; say so now, naming the instance.
    for instance in &config.exporters.postgres.instances {
        let dsn = instance.data_source_name.read().map_err(|e| {
            format!(
                "{}: exporters.postgres instance {:?}: {e}",
                config.name, instance.name
            )
        })?;
        exporters::postgres::check_dsn(&dsn).map_err(|e| {
            format!(
                "{}: exporters.postgres instance {:?}: {e}",
                config.name, instance.name
            )
        })?;
    }
    // Scrape pools build their own clients from the same settings; building
    // them here finds a bad TLS file or proxy before anything is applied.
    for job in &config.scrape_configs {
        config::HttpClient::new(&job.http, config::ClientOptions::new("osprey"))
            .map_err(|e| format!("{}: scrape job {:?}: {e}", config.name, job.job_name))?;
    }
    for (index, remote) in config.remote_write.iter().enumerate() {
        config::HttpClient::new(&remote.http, config::ClientOptions::new("osprey"))
            .map_err(|e| format!("{}: remote_write[{index}]: {e}", config.name))?;
    }
    let alerting = PreparedAlerting::new(&config.alerting, &config.global.external_labels)
        .map_err(|e| format!("{}: {e}", config.name))?;
    let alertmanager = match &config.alertmanager {
        Some(section) => Some(
            alert::PreparedConfig::new(section.config.clone(), section.text.clone())
                .map_err(|e| format!("{}: alertmanager: {e}", config.name))?,
        ),
        None => None,
    };
    Ok((alerting, alertmanager))
}

/// The running configuration.
pub(crate) struct Lifecycle {
    source: ConfigSource,
    scrape: ScrapeManager,
    /// The configuration in effect.
    config: RwLock<Arc<config::Config>>,
    /// One reload at a time.
    reload_lock: tokio::sync::Mutex<()>,
}

impl Lifecycle {
    pub(crate) fn scrape(&self) -> &ScrapeManager {
        &self.scrape
    }
}

impl AppState {
    /// Loads the configuration and starts everything it describes. Call
    /// once, inside the runtime, before serving. A bad configuration is an
    /// error naming the file, line and field, and nothing is started.
    pub async fn start(&self, source: ConfigSource) -> Result<(), String> {
        let loading = source.clone();
        let features = self.engine().parse_options();
        let prepared = tokio::task::spawn_blocking(move || Prepared::load(&loading, features))
            .await
            .map_err(|e| format!("loading the configuration: {e}"))??;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        let lifecycle = Lifecycle {
            source,
            scrape: ScrapeManager::new(
                self.appendable(),
                ScrapeManagerOptions {
                    hostname,
                    native_histograms: self.config().native_histograms,
                    created_timestamp_zero_ingestion: self
                        .config()
                        .created_timestamp_zero_ingestion,
                },
            ),
            config: RwLock::new(prepared.config.clone()),
            reload_lock: tokio::sync::Mutex::new(()),
        };
        if self.inner.lifecycle.set(lifecycle).is_err() {
            return Err("the configuration was already started".to_string());
        }
        // remote_write sends the scrape targets' metadata (metadata_config).
        if let Some(forwarder) = &self.inner.forwarder {
            let state = Arc::downgrade(&self.inner);
            forwarder.set_metadata_source(Arc::new(move || {
                let Some(inner) = state.upgrade() else {
                    return Vec::new();
                };
                let Some(lifecycle) = inner.lifecycle.get() else {
                    return Vec::new();
                };
                lifecycle
                    .scrape
                    .metadata()
                    .values()
                    .flatten()
                    .map(|m| remote::metadata_entry(&m.metric, m.metric_type, &m.help, &m.unit))
                    .collect()
            }));
        }
        // The models' logs are replayed before anything is served.
        let data_dir = self.config().data_dir.clone();
        let configs = prepared.config.models.clone();
        let opened = tokio::task::spawn_blocking(move || models::Models::open(data_dir, &configs))
            .await
            .map_err(|e| format!("opening the model logs: {e}"))?
            .map_err(|e| format!("opening the model logs: {e}"))?;
        let _ = self.inner.models.set(Arc::new(opened));
        // The pushed groups are read before anything is served, and stored
        // once at start so they are queryable before the first interval.
        if let Some(dir) = self.config().data_dir.clone() {
            let gateway = tokio::task::spawn_blocking(move || {
                crate::push::PushGateway::open(&dir.join("pushgateway"))
            })
            .await
            .map_err(|e| format!("opening the pushed groups: {e}"))?
            .map_err(|e| format!("opening the pushed groups: {e}"))?;
            // The gauge counts the groups held from the start, not only
            // after the first push since this start.
            self.metrics()
                .set_push_groups(gateway.store().group_count());
            if self.inner.push.set(Arc::new(gateway)).is_err() {
                return Err("the pushed groups were opened already".to_string());
            }
        }
        // The trace store's WAL is replayed before anything is served.
        if let Some(dir) = self.config().data_dir.clone() {
            let options = crate::traces::store_options(&prepared.config.traces);
            let store = tokio::task::spawn_blocking(move || {
                ::traces::Store::open(&dir.join("traces"), options)
            })
            .await
            .map_err(|e| format!("opening the trace store: {e}"))?
            .map_err(|e| format!("opening the trace store: {e}"))?;
            let _ = self.inner.trace_store.set(Arc::new(store));
            if let Some(maintenance) = crate::traces::start_loop(self) {
                *self
                    .inner
                    .trace_loop
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(maintenance);
            }
        }
        self.apply(prepared).await?;
        let evaluations = crate::models_api::start_loop(self);
        *self
            .inner
            .models_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(evaluations);
        let cost_steps = crate::costs::start_loop(self);
        *self
            .inner
            .costs_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(cost_steps);
        let gateway = self.push_gateway().clone();
        let storage = self.appendable();
        let now_ms = self.now_ms();
        if let Ok(Err(error)) =
            tokio::task::spawn_blocking(move || gateway.ingest(storage.as_ref(), now_ms)).await
        {
            tracing::warn!(%error, "storing pushed series failed");
        }
        let pushes = crate::push::start_loop(self);
        *self
            .inner
            .push_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(pushes);
        self.metrics().config_reloaded(true);
        Ok(())
    }

    /// Re-reads the configuration and applies it to every subsystem; on
    /// any error nothing changes. Unchanged scrape loops and rule groups
    /// keep running.
    pub async fn reload(&self) -> Result<(), String> {
        let Some(lifecycle) = self.inner.lifecycle.get() else {
            return Ok(());
        };
        let _one = lifecycle.reload_lock.lock().await;
        let source = lifecycle.source.clone();
        let features = self.engine().parse_options();
        let prepared = tokio::task::spawn_blocking(move || Prepared::load(&source, features))
            .await
            .map_err(|e| format!("loading the configuration: {e}"));
        let result = match prepared {
            Ok(Ok(prepared)) => self.apply(prepared).await,
            Ok(Err(e)) | Err(e) => Err(e),
        };
        self.metrics().config_reloaded(result.is_ok());
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(error) => {
                tracing::error!(%error, "reloading the configuration failed; keeping the old one")
            }
        }
        result
    }

    /// Phase two: hands every subsystem its part. Three steps can still
    /// fail on the machine (building the remote-read clients, opening the
    /// remote-write WAL, creating the alert manager's state directory);
    /// they come first, and a failure of
    /// the second undoes the first, so a failure changes nothing.
    async fn apply(&self, prepared: Prepared) -> Result<(), String> {
        let Some(lifecycle) = self.inner.lifecycle.get() else {
            return Err("the configuration was not started".to_string());
        };
        let Prepared {
            config,
            rule_groups,
            slos,
            alerting,
            alertmanager,
        } = prepared;
        let previous = lifecycle
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let remote_reads = crate::fanout::RemoteReads::prepare(
            &config.remote_read,
            &config.global.external_labels,
        )?;
        self.apply_remote_write(&config).await?;
        // The embedded alert manager: started, reconfigured or stopped.
        let running = self.alertmanager();
        let next = match (alertmanager, running) {
            (Some(prepared), Some(running)) => {
                running.apply_prepared(prepared);
                Some(running)
            }
            (Some(prepared), None) => {
                let options = alert::Options {
                    state_dir: self
                        .config()
                        .data_dir
                        .as_ref()
                        .map(|dir| dir.join("alertmanager")),
                    external_url: self.config().external_url.clone(),
                    retention_ms: alert::DEFAULT_RETENTION_MS,
                    cluster: self.config().alertmanager_cluster.clone(),
                };
                match alert::Alertmanager::start_prepared(prepared, options) {
                    Ok(started) => {
                        tracing::info!("alert manager started");
                        Some(started)
                    }
                    Err(error) => {
                        if !Arc::ptr_eq(&previous, &config) {
                            let _ = self.apply_remote_write(&previous).await;
                        }
                        return Err(format!("starting the alert manager: {error}"));
                    }
                }
            }
            (None, Some(running)) => {
                running.shutdown().await;
                tracing::info!("alert manager stopped: the alertmanager section is gone");
                None
            }
            (None, None) => None,
        };
        self.set_alertmanager(next.clone());

        self.exporters().apply(&config.exporters);
        // A model whose window, reference or task changes replays its log.
        let models = self.models().clone();
        let model_configs = config.models.clone();
        // Past the steps that may fail: a panic here is logged, not a
        // half-applied reload.
        if let Err(error) =
            tokio::task::spawn_blocking(move || models.configure(&model_configs)).await
        {
            tracing::error!(%error, "applying the models section failed");
        }
        self.costs().apply(config.costs.as_ref());
        self.dashboard_paths().set(config.dashboard_paths.clone());

        let slo_warnings = slos.retention_warnings(self.config().retention_ms);
        for warning in &slo_warnings {
            tracing::warn!("{warning}");
        }
        self.slos().set(slos, slo_warnings);

        let rules = self.rules_or_init(&config);
        rules.sender.set_local(next.map(local_sink));
        rules.sender.configure(alerting);
        rules
            .manager
            .apply_with_settings(rule_groups, &crate::rules::rule_settings(&config));

        let mut jobs = config.scrape_configs.clone();
        jobs.extend(
            config
                .exporters
                .scrape_jobs(&self_address(self.config().listen), &config.global),
        );
        lifecycle.scrape.apply_config(&jobs).await;
        self.inner.remote_reads.install(remote_reads);
        let rules: Vec<(Vec<model::Matcher>, i64)> = config
            .storage
            .retention_rules
            .iter()
            .map(|r| (r.matchers.clone(), r.retention_ms))
            .collect();
        let any_rules = !rules.is_empty();
        if !self.storage().set_retention_rules(rules) && any_rules {
            tracing::warn!(
                "storage.retention_rules are ignored: this store has no per-series retention"
            );
        }
        // Prometheus's `ApplyConfig` of its exemplar storage: a resize that
        // keeps the newest exemplars that fit.
        self.storage()
            .set_max_exemplars(config.storage.max_exemplars);
        if !self.storage().set_series_limits(&config.limits) && !config.limits.is_empty() {
            tracing::warn!("limits: are ignored: this store has no series limits");
        }
        let tiers: Vec<(i64, i64)> = config
            .storage
            .tiers
            .iter()
            .map(|t| (t.resolution_ms, t.retention_ms))
            .collect();
        match self.storage().set_tiers(&tiers) {
            Ok(true) => {}
            Ok(false) if !tiers.is_empty() => {
                tracing::warn!("storage.tiers are ignored: this store keeps no tiers")
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot load the resolution tiers"),
        }
        self.otlp_translator()
            .set_options(crate::otlp::translation_options(&config.otlp));
        if let Some(store) = self.trace_store() {
            store.set_options(crate::traces::store_options(&config.traces));
        }
        self.inner.span_metrics_enabled.store(
            config.traces.span_metrics,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.apply_otlp_listeners(
            config.otlp.http_listen_address,
            config.otlp.grpc_listen_address,
        )
        .await;
        *lifecycle.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Starts, changes or stops forwarding to the `remote_write` entries.
    /// Without a data directory they are ignored with a warning.
    async fn apply_remote_write(&self, config: &config::Config) -> Result<(), String> {
        match &self.inner.forwarder {
            Some(forwarder) => {
                forwarder
                    .apply(&config.remote_write, &config.global.external_labels)
                    .await
            }
            None => {
                if !config.remote_write.is_empty() {
                    tracing::warn!(
                        "remote_write is ignored: this server has no data directory for its queue"
                    );
                }
                Ok(())
            }
        }
    }

    /// Stops the rules and every scrape loop (writing staleness markers),
    /// then lets the `remote_write` queues send what they hold for at most
    /// [`REMOTE_WRITE_FLUSH_DEADLINE`] (the rest is sent after the next
    /// start), and stops the embedded alert manager.
    pub async fn stop(&self) {
        let flush_deadline = REMOTE_WRITE_FLUSH_DEADLINE;
        if let Some(evaluations) = self
            .inner
            .models_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            evaluations.abort();
        }
        if let Some(cost_steps) = self
            .inner
            .costs_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            cost_steps.abort();
        }
        if let Some(pushes) = self
            .inner
            .push_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            pushes.abort();
        }
        if let Some(maintenance) = self
            .inner
            .trace_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            maintenance.abort();
        }
        self.stop_rules();
        if let Some(lifecycle) = self.inner.lifecycle.get() {
            lifecycle.scrape.stop().await;
        }
        if let Some(forwarder) = &self.inner.forwarder {
            forwarder.stop(flush_deadline).await;
        }
        if let Some(alertmanager) = self.alertmanager() {
            alertmanager.shutdown().await;
        }
        self.apply_otlp_listeners(None, None).await;
    }

    /// The configuration in effect, once started.
    pub fn current_config(&self) -> Option<Arc<config::Config>> {
        self.inner
            .lifecycle
            .get()
            .map(|l| l.config.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// The configuration text in effect.
    pub(crate) fn config_text(&self) -> String {
        match self.current_config() {
            Some(config) => config.text.clone(),
            None => self.config().config_yaml.clone(),
        }
    }
}

/// The address the server scrapes itself at: its listen address, with a
/// wildcard IP replaced by loopback.
fn self_address(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port()).to_string()
}

/// The rule engine's alerts go straight into the embedded alert manager,
/// as if POSTed to its API.
fn local_sink(alertmanager: alert::Alertmanager) -> notifier::LocalAlertSink {
    Arc::new(move |alerts: Vec<notifier::SentAlert>| {
        let posted = alerts
            .into_iter()
            .map(|sent| alert::PostableAlert {
                labels: sent.labels.into_iter().collect(),
                annotations: sent.annotations.into_iter().collect(),
                starts_at_ms: Some(sent.starts_at_ms),
                ends_at_ms: Some(sent.ends_at_ms),
                generator_url: sent.generator_url,
            })
            .collect();
        if let Err(error) = alertmanager.put_alerts(posted) {
            tracing::warn!(%error, "the rule engine sent invalid alerts");
        }
    })
}

/// `POST|PUT /-/reload`.
pub(crate) async fn reload(State(state): State<AppState>) -> Response {
    match state.reload().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}
