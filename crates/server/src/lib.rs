//! osprey's HTTP server: the Prometheus HTTP API, the ingestion endpoints,
//! osprey's own metrics and the listener's lifecycle.
//!
//! - [`router`] builds the whole [`axum::Router`] from an [`AppState`]; tests
//!   drive it with `tower::ServiceExt::oneshot`, no socket needed.
//! - [`serve`] binds [`ServerConfig::listen`], serves the router and shuts
//!   down gracefully when the given future resolves.
//! - [`ingest`] receives remote write 1.0 (decoded by the `remote` crate)
//!   and text imports; [`params`] parses the API's time, limit and form
//!   parameters like Prometheus does (`match[]` selectors through
//!   `promql`).
//! - [`push`] serves the Pushgateway API (`/metrics/job/...`) and keeps
//!   the pushed groups, re-stored like a scrape of a Pushgateway.
//! - [`lifecycle`] owns the configuration in the running server: start,
//!   the one reload (`POST /-/reload` and SIGHUP) that applies to every
//!   subsystem or none, and stop.
//! - [`exporters`] serves the built-in host, GPU and blackbox exporters.
//! - `admin` serves Prometheus's TSDB admin API (`delete_series`,
//!   `clean_tombstones`, `snapshot`) through the store's
//!   [`model::storage::StorageAdmin`].
//! - [`testing`] holds an in-memory [`Storage`] for tests only.
//!
//! This crate is the only one that knows JSON wire shapes and HTTP. It reads
//! and writes through [`model::storage::Storage`] and never sees TSDB
//! internals. Storage calls block, so every handler runs them on tokio's
//! blocking pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use model::storage::Storage;

mod admin;
pub mod alertmanager_api;
mod api;
pub mod arena_keys;
pub use api::StatsQuery;
pub mod auth;
pub mod backtest;
mod costs;
mod error;
mod exemplars;
pub mod export;
pub mod exporters;
pub mod fanout;
pub mod federate;
pub mod ingest;
pub mod lifecycle;
pub mod listen;
pub mod metrics;
pub mod models_api;
mod otlp;
pub mod params;
pub mod push;
mod query;
pub mod remote_read;
pub mod rules;
pub mod scraping;
pub mod slos;
pub mod testing;
pub mod trace_api;
pub mod traces;
mod write_pool;

pub use error::{ApiError, ErrorType};

/// How the server listens and which limits it enforces. Every field is a
/// plain value; [`ServerConfig::new`] fills in the defaults documented on
/// each field.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:9090`.
    pub listen: SocketAddr,
    /// Longest time a request may take before it is answered with 503
    /// (default 2 minutes, Prometheus's default query timeout). A streaming
    /// export only needs to start within this time. A PromQL query's own
    /// deadline is capped at it (its answer is then the engine's timeout
    /// error, also 503).
    pub request_timeout: Duration,
    /// Largest compressed remote write body accepted (default 32 MiB).
    pub max_remote_write_body_bytes: usize,
    /// Largest decompressed remote write body accepted (default 64 MiB).
    ///
    /// Prometheus sends batches of `max_samples_per_send` (2,000 by default),
    /// about 100-300 KiB of protobuf; 64 MiB leaves two orders of magnitude
    /// of headroom for agents configured with large batches, while bounding
    /// the memory one request can take (the decoded request is about three
    /// times its protobuf size) before anything is allocated: the snappy
    /// header states the decompressed length and is checked first.
    pub max_remote_write_decompressed_bytes: usize,
    /// Largest text import body accepted (default 64 MiB, the same bound).
    pub max_import_body_bytes: usize,
    /// PromQL limits (defaults: Prometheus's, see `promql::EngineOptions`).
    pub engine: promql::EngineOptions,
    /// PromQL's experimental syntax the engine accepts, from
    /// `--enable-feature` (Prometheus's names).
    pub promql_features: promql::ParseOptions,
    /// `--enable-feature=native-histograms`: scrape jobs that do not set
    /// `scrape_native_histograms` store native histograms (and ask for the
    /// protobuf format first).
    pub native_histograms: bool,
    /// `--enable-feature=created-timestamp-zero-ingestion`: created
    /// timestamps from scrapes, remote write 2.0 and OTLP are stored as
    /// zero samples (Prometheus 3's feature; see `docs/configuration.md`).
    pub created_timestamp_zero_ingestion: bool,
    /// The configuration file's text, for `/api/v1/status/config`.
    pub config_yaml: String,
    /// Command-line flags in effect, for `/api/v1/status/flags`.
    pub flags: Vec<(String, String)>,
    /// The URL under which osprey is reached (`--web.external-url`), for
    /// alert links and templates; default `http://<listen>`.
    pub external_url: String,
    /// Alert timing (`--rules.alert.*`).
    pub rule_flags: rules::RuleFlags,
    /// The data directory: the embedded alert manager keeps its state in
    /// `<data-dir>/alertmanager` and the `remote_write` queues their WAL
    /// and positions in `<data-dir>/remote-write`. `None` (the default)
    /// keeps the alert manager's state in memory and refuses
    /// `remote_write`.
    pub data_dir: Option<std::path::PathBuf>,
    /// The web configuration (`--web.config.file`): TLS, users, roles,
    /// tokens, rate limits. Without one nothing is protected.
    pub web: listen::WebConfigHandle,
    /// How long storage keeps samples (`--retention.time`); `None` when
    /// it keeps them forever. SLOs whose period is longer get a warning.
    pub retention_ms: Option<i64>,
    /// The embedded alert manager's peers (`--cluster.*`,
    /// `docs/alertmanager-ha.md`); `None` runs it alone.
    pub alertmanager_cluster: Option<alert::cluster::ClusterOptions>,
}

impl ServerConfig {
    /// A configuration listening on `listen` with the default limits.
    pub fn new(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            request_timeout: Duration::from_secs(120),
            max_remote_write_body_bytes: 32 << 20,
            max_remote_write_decompressed_bytes: 64 << 20,
            max_import_body_bytes: 64 << 20,
            engine: promql::EngineOptions::prometheus_defaults(),
            promql_features: promql::ParseOptions::OSPREY,
            native_histograms: false,
            created_timestamp_zero_ingestion: false,
            config_yaml: String::new(),
            flags: Vec::new(),
            external_url: format!("http://{listen}"),
            rule_flags: rules::RuleFlags::osprey_defaults(),
            data_dir: None,
            web: listen::WebConfigHandle::open(),
            retention_ms: None,
            alertmanager_cluster: None,
        }
    }
}

/// Everything the handlers share: the store, the limits and the metrics.
/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<AppStateInner>,
}

struct AppStateInner {
    storage: Arc<dyn Storage>,
    /// What queries read: the store, plus the `remote_read` stores while
    /// any are configured.
    queryable: Arc<dyn model::storage::Queryable>,
    remote_reads: Arc<fanout::RemoteReads>,
    /// What writers append to: the store, through a forwarder when the
    /// server has a `remote_write` directory.
    forwarder: Option<Arc<remote::Forwarder>>,
    config: ServerConfig,
    metrics: metrics::ServerMetrics,
    clock: Clock,
    engine: Arc<promql::Engine>,
    lifecycle: std::sync::OnceLock<lifecycle::Lifecycle>,
    /// The embedded alert manager, while the config has one.
    alertmanager: std::sync::RwLock<Option<alert::Alertmanager>>,
    rules: std::sync::OnceLock<rules::RulesState>,
    exporters: Arc<exporters::ExporterState>,
    dashboard_paths: scraping::DashboardPaths,
    /// The SLOs of the configuration in effect.
    slos: slos::SloState,
    /// Routes other crates add ([`AppState::mount`]), e.g. the web UI,
    /// with their paths.
    mounted: std::sync::Mutex<Vec<(Router<AppState>, Vec<&'static str>)>>,
    auth: Arc<auth::Auth>,
    /// The monitored models; opened over the data directory by
    /// [`AppState::start`], in memory when a test never starts one.
    models: std::sync::OnceLock<Arc<models::Models>>,
    /// The model evaluation loop, while running.
    models_loop: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The cost engine of the `costs:` section (`docs/costs.md`).
    costs: Arc<costs::CostState>,
    /// The cost loop, while running.
    costs_loop: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The Pushgateway API's groups; opened over the data directory by
    /// [`AppState::start`], in memory when a test never starts one.
    push: std::sync::OnceLock<Arc<push::PushGateway>>,
    /// The loop that re-stores pushed series, while running.
    push_loop: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// OTLP metrics translation (settings from the `otlp:` section) and
    /// its running delta-to-cumulative totals.
    otlp: Arc<::otlp::Translator>,
    /// OTLP requests being handled, bounded by [`OTLP_MAX_IN_FLIGHT`].
    otlp_in_flight: std::sync::atomic::AtomicUsize,
    /// The dedicated OTLP/HTTP and OTLP/gRPC listeners, while they run.
    otlp_http_listener: std::sync::Mutex<Option<otlp::OtlpListener>>,
    otlp_grpc_listener: std::sync::Mutex<Option<otlp::OtlpListener>>,
    /// The trace store; opened over the data directory by
    /// [`AppState::start`] (none without one).
    trace_store: std::sync::OnceLock<Arc<::traces::Store>>,
    /// The loop that cuts trace blocks and applies retention.
    trace_loop: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    span_metrics: traces::SpanMetrics,
    span_metrics_enabled: std::sync::atomic::AtomicBool,
}

/// OTLP requests handled at once; more are answered 429 with
/// `Retry-After`, which OTLP exporters honour. Each request holds its
/// decoded body and translation (a few times the body) until its commit,
/// so this bounds that memory; exporters send one request at a time per
/// process, so 64 is many clients.
pub const OTLP_MAX_IN_FLIGHT: usize = 64;

/// Milliseconds since the Unix epoch; injectable so tests can pin "now".
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in milliseconds since the Unix epoch.
pub fn system_clock_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl axum::extract::FromRef<AppState> for Arc<auth::Auth> {
    fn from_ref(state: &AppState) -> Arc<auth::Auth> {
        state.inner.auth.clone()
    }
}

impl AppState {
    /// State over `storage` with the limits of `config` and the system clock.
    pub fn new(storage: Arc<dyn Storage>, config: ServerConfig) -> AppState {
        AppState::with_clock(storage, config, Arc::new(system_clock_ms))
    }

    /// Like [`AppState::new`] with a custom clock (used for samples without
    /// a timestamp in `/api/v1/import/prometheus`).
    pub fn with_clock(storage: Arc<dyn Storage>, config: ServerConfig, clock: Clock) -> AppState {
        let remote_metrics = remote::RemoteMetrics::default();
        let metrics = metrics::ServerMetrics::new(storage.clone(), &remote_metrics);
        let remote_write_dir = config.data_dir.as_ref().map(|dir| dir.join("remote-write"));
        let forwarder = remote_write_dir.as_deref().map(|dir| {
            let primary: Arc<dyn model::storage::Appendable> = storage.clone();
            Arc::new(remote::Forwarder::new(primary, dir, remote_metrics))
        });
        let config_engine = config.engine.clone();
        let promql_features = config.promql_features;
        let auth = auth::Auth::new(
            config.web.clone(),
            auth::server_policy,
            config.data_dir.as_deref(),
        );
        let dashboard_paths = scraping::DashboardPaths::default();
        let remote_reads = Arc::new(fanout::RemoteReads::default());
        let queryable = Arc::new(fanout::Fanout::new(storage.clone(), remote_reads.clone()));
        AppState {
            inner: Arc::new(AppStateInner {
                storage,
                queryable,
                remote_reads,
                forwarder,
                config,
                metrics,
                clock,
                engine: Arc::new(
                    promql::Engine::new(config_engine).with_parse_options(promql_features),
                ),
                lifecycle: std::sync::OnceLock::new(),
                alertmanager: std::sync::RwLock::new(None),
                rules: std::sync::OnceLock::new(),
                exporters: Arc::new(exporters::ExporterState::default()),
                dashboard_paths,
                slos: slos::SloState::default(),
                mounted: std::sync::Mutex::new(Vec::new()),
                auth,
                models: std::sync::OnceLock::new(),
                models_loop: std::sync::Mutex::new(None),
                costs: Arc::new(costs::CostState::default()),
                costs_loop: std::sync::Mutex::new(None),
                push: std::sync::OnceLock::new(),
                push_loop: std::sync::Mutex::new(None),
                otlp: Arc::new(::otlp::Translator::new(
                    ::otlp::TranslationOptions::prometheus_defaults(),
                )),
                otlp_in_flight: std::sync::atomic::AtomicUsize::new(0),
                otlp_http_listener: std::sync::Mutex::new(None),
                otlp_grpc_listener: std::sync::Mutex::new(None),
                trace_store: std::sync::OnceLock::new(),
                trace_loop: std::sync::Mutex::new(None),
                span_metrics: traces::SpanMetrics::default(),
                span_metrics_enabled: std::sync::atomic::AtomicBool::new(true),
            }),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// What PromQL reads (the query API, rules): the store, plus the
    /// `remote_read` stores while any are configured.
    pub fn queryable(&self) -> &Arc<dyn model::storage::Queryable> {
        &self.inner.queryable
    }

    /// Where writers (scraping, rules, the write endpoints) append: the
    /// store, and the `remote_write` queues while any are configured.
    pub fn appendable(&self) -> Arc<dyn model::storage::Appendable> {
        match &self.inner.forwarder {
            Some(forwarder) => forwarder.clone(),
            None => self.inner.storage.clone(),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &metrics::ServerMetrics {
        &self.inner.metrics
    }

    /// The scrape manager, once the configuration started.
    pub(crate) fn scrape(&self) -> Option<&scrape::ScrapeManager> {
        self.inner.lifecycle.get().map(lifecycle::Lifecycle::scrape)
    }

    /// The built-in exporters (host, GPU, blackbox modules).
    pub fn exporters(&self) -> &Arc<exporters::ExporterState> {
        &self.inner.exporters
    }

    /// Serves the Alertmanager API v2 and metrics from this alert manager
    /// (`None`: no alert manager). The configuration sets it; tests may
    /// set one directly.
    pub fn set_alertmanager(&self, alertmanager: Option<alert::Alertmanager>) {
        *self
            .inner
            .alertmanager
            .write()
            .unwrap_or_else(|e| e.into_inner()) = alertmanager;
    }

    /// The alert manager in effect, if any.
    pub fn alertmanager(&self) -> Option<alert::Alertmanager> {
        self.inner
            .alertmanager
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The dashboard paths of the configuration in effect; clone it to
    /// follow reloads.
    pub fn dashboard_paths(&self) -> &scraping::DashboardPaths {
        &self.inner.dashboard_paths
    }

    pub(crate) fn slos(&self) -> &slos::SloState {
        &self.inner.slos
    }

    /// Adds `routes` to what [`router`] serves, inside the same middleware
    /// (request metrics, timeout, compression). The binary mounts the web
    /// UI this way, so this crate builds without it. Call before serving;
    /// a path already routed is a programming error and panics in
    /// [`router`], as axum's `merge` does.
    pub fn mount(&self, routes: Router<AppState>, paths: Vec<&'static str>) {
        self.inner
            .mounted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((routes, paths));
    }

    /// Authentication, roles, rate limits and the audit log of this
    /// server's listener.
    pub fn auth(&self) -> &Arc<auth::Auth> {
        &self.inner.auth
    }

    /// The monitored models.
    pub fn models(&self) -> &Arc<models::Models> {
        self.inner
            .models
            .get_or_init(|| Arc::new(models::Models::in_memory()))
    }

    /// The cost engine.
    pub(crate) fn costs(&self) -> &Arc<costs::CostState> {
        &self.inner.costs
    }

    /// The OTLP metrics translator.
    pub fn otlp_translator(&self) -> &Arc<::otlp::Translator> {
        &self.inner.otlp
    }

    pub(crate) fn otlp_listener_slot(
        &self,
        kind: otlp::ListenerKind,
    ) -> &std::sync::Mutex<Option<otlp::OtlpListener>> {
        match kind {
            otlp::ListenerKind::Http => &self.inner.otlp_http_listener,
            otlp::ListenerKind::Grpc => &self.inner.otlp_grpc_listener,
        }
    }

    /// The trace store, once opened.
    pub fn trace_store(&self) -> Option<&Arc<::traces::Store>> {
        self.inner.trace_store.get()
    }

    /// Serves traces from `store` (tests without a started configuration).
    pub fn set_trace_store(&self, store: Arc<::traces::Store>) -> bool {
        self.inner.trace_store.set(store).is_ok()
    }

    pub(crate) fn span_metrics(&self) -> &traces::SpanMetrics {
        &self.inner.span_metrics
    }

    pub(crate) fn span_metrics_enabled(&self) -> bool {
        self.inner
            .span_metrics_enabled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn otlp_in_flight(&self) -> &std::sync::atomic::AtomicUsize {
        &self.inner.otlp_in_flight
    }

    /// The groups pushed through the Pushgateway API.
    pub fn push_gateway(&self) -> &Arc<push::PushGateway> {
        self.inner
            .push
            .get_or_init(|| Arc::new(push::PushGateway::in_memory()))
    }

    pub(crate) fn engine(&self) -> &Arc<promql::Engine> {
        &self.inner.engine
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.inner.clock)()
    }
}

/// The complete HTTP API. Unknown paths answer 404, known paths with the
/// wrong method 405.
pub fn router(state: AppState) -> Router {
    // Bodies are read with explicit limits inside the ingest handlers, so
    // axum's own 2 MiB default must not cut them short; the form-encoded
    // API parameters keep a small limit.
    let routes = build_routes(&state);
    let api = routes
        .router
        .route_layer(axum::middleware::from_fn_with_state(
            state.inner.auth.clone(),
            auth::middleware,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::observe_request,
        ));
    api.fallback(api::not_found)
        // Clients that accept gzip (browsers, Prometheus, promtool) get API
        // answers compressed, as Prometheus sends them: JSON of range
        // queries shrinks about four times.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::timeout,
        ))
        .with_state(state)
}

/// Every route of the server, each path recorded.
fn build_routes(state: &AppState) -> Routes {
    let ingest_limit = DefaultBodyLimit::disable();
    let mut routes = Routes::new()
        .route("/-/healthy", get(api::healthy).head(api::healthy))
        .route("/-/ready", get(api::ready).head(api::ready))
        .route(
            "/api/health",
            get(api::grafana_health).head(api::grafana_health),
        )
        .route(
            "/api/v1/write",
            post(ingest::remote_write).layer(ingest_limit),
        )
        .route(
            "/api/v1/import/prometheus",
            post(ingest::import_prometheus).layer(ingest_limit),
        )
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(exemplars::query_exemplars).post(exemplars::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(query::buildinfo))
        .route("/api/v1/status/config", get(query::status_config))
        .route("/api/v1/status/flags", get(query::status_flags))
        .route("/-/reload", post(lifecycle::reload).put(lifecycle::reload))
        .route("/api/v1/targets", get(scraping::targets))
        .route(
            "/api/v1/rules",
            get(rules::rules_api).post(rules::rules_api),
        )
        .route(
            "/api/v1/alerts",
            get(rules::alerts_api).post(rules::alerts_api),
        )
        .route(
            "/api/v1/rules/backtest",
            get(backtest::backtest_api).post(backtest::backtest_api),
        )
        .route("/api/v1/targets/metadata", get(scraping::targets_metadata))
        .route("/api/osprey/slos", get(slos::slos_api))
        .route("/api/v1/metadata", get(scraping::metadata))
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/status/tsdb", get(api::status_tsdb))
        .route("/api/v1/export", get(export::export).post(export::export))
        .route("/federate", get(federate::federate))
        .route("/api/v1/read", post(remote_read::read))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(admin::delete_series).put(admin::delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(admin::clean_tombstones).put(admin::clean_tombstones),
        )
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(admin::snapshot).put(admin::snapshot),
        )
        .route("/metrics", get(metrics::metrics_handler))
        .route("/api/osprey/login", post(auth::login))
        .route("/api/osprey/logout", post(auth::logout))
        .route("/api/osprey/whoami", get(auth::whoami))
        .route("/api/osprey/audit", get(auth::audit_tail))
        .route("/api/v1/models", get(models_api::list))
        .route(
            "/api/v1/models/{model}/distribution",
            get(models_api::distribution),
        )
        .route("/api/v1/models/{model}/compare", get(models_api::compare))
        .route(
            "/api/v1/models/{model}/predictions",
            post(models_api::predictions).layer(ingest_limit),
        )
        .route(
            "/api/v1/models/{model}/actuals",
            post(models_api::actuals).layer(ingest_limit),
        )
        .route(
            "/api/v1/models/{model}/reference",
            post(models_api::reference).layer(ingest_limit),
        )
        .route("/v1/metrics", post(otlp::metrics).layer(ingest_limit))
        .route(
            "/api/v1/otlp/v1/metrics",
            post(otlp::metrics).layer(ingest_limit),
        )
        .route("/v1/traces", post(traces::http_traces).layer(ingest_limit))
        .route("/api/services", get(trace_api::services))
        .route(
            "/api/services/{service}/operations",
            get(trace_api::service_operations),
        )
        .route("/api/operations", get(trace_api::operations))
        .route("/api/traces", get(trace_api::jaeger_search))
        .route("/api/traces/{trace_id}", get(trace_api::trace_by_id))
        .route("/api/v2/traces/{trace_id}", get(trace_api::tempo_trace_v2))
        .route("/api/dependencies", get(trace_api::dependencies))
        .route("/api/search", get(trace_api::tempo_search))
        .route("/api/search/tags", get(trace_api::tempo_tags))
        .route("/api/v2/search/tags", get(trace_api::tempo_tags_v2))
        .route(
            "/api/search/tag/{tag}/values",
            get(trace_api::tempo_tag_values),
        )
        .route(
            "/api/v2/search/tag/{tag}/values",
            get(trace_api::tempo_tag_values_v2),
        )
        .route("/api/echo", get(trace_api::tempo_echo))
        .route(
            "/metrics/{*grouping}",
            axum::routing::put(push::push_handler)
                .post(push::push_handler)
                .delete(push::push_handler)
                .layer(ingest_limit),
        )
        .merge(exporters::routes(), exporters::PATHS)
        .merge(alertmanager_api::routes(), alertmanager_api::PATHS);
    let mounted = state
        .inner
        .mounted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (router, paths) in mounted {
        routes = routes.merge(router, &paths);
    }
    routes
}

/// Every path [`router`] serves: the access-rule test walks them, so a
/// route added without a rule in [`auth::server_policy`] fails it.
pub fn route_paths(state: &AppState) -> Vec<&'static str> {
    build_routes(state).paths
}

/// The routes [`router`] builds, recording each path as it is added.
struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    fn route(
        mut self,
        path: &'static str,
        method: axum::routing::MethodRouter<AppState>,
    ) -> Routes {
        self.paths.push(path);
        self.router = self.router.route(path, method);
        self
    }

    fn merge(mut self, router: Router<AppState>, paths: &[&'static str]) -> Routes {
        self.paths.extend(paths);
        self.router = self.router.merge(router);
        self
    }
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds `config.listen`, serves the API over `storage`, and returns once
/// `shutdown` has resolved and in-flight requests have finished.
pub async fn serve(
    config: ServerConfig,
    storage: Arc<dyn Storage>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    serve_listener(listener, AppState::new(storage, config), shutdown).await
}

/// Serves on an already bound listener; [`serve`] without the bind. Useful
/// when the caller needs the bound address (port 0) before serving.
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening");
    }
    let web = state.config().web.clone();
    listen::serve(listener, router(state), web, shutdown)
        .await
        .map_err(ServerError::Serve)
}

/// Runs a query on the calling worker thread, which first hands its
/// scheduler and other tasks to a blocking-pool thread (`block_in_place`):
/// the query starts without a hand-over and its answer is written without
/// waking the worker again. On tokio's blocking pool when the runtime has
/// a single thread (tests). The request timeout cannot cut the caller
/// short meanwhile: the query's own deadline must.
async fn blocking_inline<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if tokio::runtime::Handle::current().runtime_flavor()
        != tokio::runtime::RuntimeFlavor::MultiThread
    {
        return blocking(f).await;
    }
    match tokio::task::block_in_place(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
    {
        Ok(result) => result,
        Err(_) => Err(ApiError::internal(
            "storage task failed: panicked".to_owned(),
        )),
    }
}

/// Runs a blocking storage call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(ApiError::internal(format!("storage task failed: {e}"))),
    }
}
