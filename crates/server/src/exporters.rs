//! The built-in exporters over HTTP, and their configuration.
//!
//! On the main server:
//! - `GET /exporters/host/metrics` (node_exporter's `collect[]` parameter
//!   works), `GET /exporters/gpu/metrics`,
//!   `GET /exporters/container/metrics` (cAdvisor's names, GPU use per
//!   container from the same NVML reading);
//! - `GET /exporters/redis/scrape?target=redis://host:port`
//!   (redis_exporter's multi-target endpoint; a configured instance's
//!   user, password and TLS settings apply to its address);
//! - `GET /exporters/postgres/metrics[?target=<instance name>]` (the
//!   configured PostgreSQL instances, all of them without `target`);
//! - `GET /probe?target=...&module=...` (blackbox_exporter's endpoint).
//!
//! The embedded default configuration scrapes the host, GPU and container
//! routes like any target, and the configured Redis and PostgreSQL
//! instances are scraped as the jobs `config::blackbox::ExportersConfig::
//! scrape_jobs` adds, so every sample takes the one ingestion path.
//!
//! [`serve_standalone`] runs one exporter alone for the other hosts of a
//! fleet (`osprey exporter host|gpu|container|redis|postgres|blackbox
//! --listen ADDR`): its metrics, plus `process_*` for the exporter process,
//! on `/metrics`, `/scrape?target=` for Redis and `/probe` for blackbox.
//!
//! What the exporters read comes from the configuration's `exporters`
//! section (`config::blackbox`): blackbox modules, the GPU name switches,
//! the container exporter's paths, the Redis and PostgreSQL instances. A
//! reload replaces it all at once ([`ExporterState::apply`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use config::blackbox::{ExportersConfig, PostgresInstance, RedisInstance};
use exporters::blackbox;
use exporters::container::ContainerExporter;
use exporters::gpu::GpuExporter;
use exporters::host::{Collector, HostExporter, HostOptions};
use exporters::postgres::PostgresExporter;
use exporters::redis::{RedisExporter, RedisTarget};

use crate::{AppState, ServerError};

/// Blackbox modules by name.
pub use config::blackbox::{Modules, default_modules};
/// The exporters' option types the binary's `osprey exporter` flags set.
pub use exporters::container::ContainerOptions;
pub use exporters::gpu::GpuNames;
pub use exporters::postgres::{PostgresOptions, check_dsn};
pub use exporters::redis::RedisTls;

/// What the `exporters` section in effect says, ready for the exporters.
struct Settings {
    modules: Arc<Modules>,
    gpu_names: GpuNames,
    containers: Arc<ContainerExporter>,
    redis: Vec<RedisInstance>,
    postgres: Vec<PostgresInstance>,
}

impl Settings {
    fn of(config: &ExportersConfig) -> Settings {
        let c = &config.containers;
        Settings {
            modules: Arc::new(config.modules()),
            gpu_names: GpuNames {
                dcgm: config.gpu.dcgm_names,
                nvidia_gpu_exporter: config.gpu.nvidia_gpu_exporter_names,
            },
            containers: Arc::new(ContainerExporter::new(ContainerOptions {
                cgroup_root: c.cgroup_root.clone(),
                docker_root: c.docker_root.clone(),
                containerd_state: c.containerd_state.clone(),
                docker_only: c.docker_only,
                store_container_labels: c.store_container_labels,
                ..ContainerOptions::linux_defaults()
            })),
            redis: config.redis.instances.clone(),
            postgres: config.postgres.instances.clone(),
        }
    }
}

/// The exporters' shared state: the host reader, the GPU (NVML is opened
/// on first use, so a server that never scrapes it never loads the
/// library), the Redis and PostgreSQL scrape state, and the settings in
/// effect.
pub struct ExporterState {
    host: HostExporter,
    gpu: OnceLock<GpuExporter>,
    redis: RedisExporter,
    postgres: PostgresExporter,
    settings: RwLock<Arc<Settings>>,
}

impl Default for ExporterState {
    fn default() -> ExporterState {
        ExporterState::new(&ExportersConfig::default())
    }
}

impl ExporterState {
    pub fn new(config: &ExportersConfig) -> ExporterState {
        ExporterState::with_postgres(config, PostgresOptions::DEFAULTS)
    }

    fn with_postgres(config: &ExportersConfig, postgres: PostgresOptions) -> ExporterState {
        ExporterState {
            host: HostExporter::new(HostOptions::linux_defaults()),
            gpu: OnceLock::new(),
            redis: RedisExporter::new(),
            postgres: PostgresExporter::new(postgres),
            settings: RwLock::new(Arc::new(Settings::of(config))),
        }
    }

    /// Applies an `exporters` section (on configuration load and reload).
    pub fn apply(&self, config: &ExportersConfig) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Settings::of(config));
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn gpu(&self) -> &GpuExporter {
        self.gpu.get_or_init(GpuExporter::open_nvml)
    }
}

/// The paths [`routes`] serves. The router is built from this list, so a
/// route cannot be served without being listed (the access test walks
/// the list).
pub const PATHS: &[&str] = &[
    "/exporters/host/metrics",
    "/exporters/gpu/metrics",
    "/exporters/container/metrics",
    "/exporters/redis/scrape",
    "/exporters/postgres/metrics",
    "/probe",
];

/// The routes the main server mounts: one per entry of [`PATHS`].
pub(crate) fn routes() -> Router<AppState> {
    PATHS.iter().fold(Router::new(), |router, &path| {
        let handler = match path {
            "/exporters/host/metrics" => get(host_handler),
            "/exporters/gpu/metrics" => get(gpu_handler),
            "/exporters/container/metrics" => get(container_handler),
            "/exporters/redis/scrape" => get(redis_handler),
            "/exporters/postgres/metrics" => get(postgres_handler),
            "/probe" => get(probe_handler),
            // A listed path without a handler is not served; the access
            // test then finds it answering 404 instead of its rule.
            _ => return router,
        };
        router.route(path, handler)
    })
}

fn text_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, exporters::TEXT_CONTENT_TYPE)], body).into_response()
}

/// A plain-text error, as node_exporter and blackbox_exporter answer.
fn text_error(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// The `collect[]` values of a query string, checked against the
/// collector names.
fn requested_collectors(query: Option<&str>) -> Result<Vec<Collector>, String> {
    let mut collectors = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "collect[]" {
            match Collector::from_name(&value) {
                Some(c) => collectors.push(c),
                None => return Err(format!("unknown collector {value:?}")),
            }
        }
    }
    Ok(collectors)
}

/// One query parameter.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Runs a blocking collection on tokio's blocking pool.
async fn blocking_text(what: &str, collect: impl FnOnce(&mut String) + Send + 'static) -> Response {
    let body = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(64 * 1024);
        collect(&mut out);
        out
    })
    .await;
    match body {
        Ok(body) => text_response(body),
        Err(e) => text_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} exporter failed: {e}\n"),
        ),
    }
}

async fn host_metrics(
    exporters: Arc<ExporterState>,
    query: Option<String>,
    process: bool,
) -> Response {
    let collectors = match requested_collectors(query.as_deref()) {
        Ok(c) => c,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    blocking_text("host", move |out| {
        exporters.host.collect(&collectors, out);
        if process {
            append_process_metrics(out);
        }
    })
    .await
}

async fn gpu_metrics(exporters: Arc<ExporterState>, process: bool) -> Response {
    blocking_text("GPU", move |out| {
        let names = exporters.settings().gpu_names;
        exporters.gpu().collect(names, out);
        if process {
            append_process_metrics(out);
        }
    })
    .await
}

async fn container_metrics(exporters: Arc<ExporterState>, process: bool) -> Response {
    blocking_text("container", move |out| {
        let containers = exporters.settings().containers.clone();
        // GPU use per container comes from the GPU exporter's reading.
        let gpus = exporters.gpu().read();
        containers.collect(gpus.as_deref(), out);
        if process {
            append_process_metrics(out);
        }
    })
    .await
}

fn append_process_metrics(out: &mut String) {
    match exporters::process::ProcessStats::read_self() {
        Ok(stats) => stats.write_text(out),
        Err(e) => tracing::debug!(error = %e, "reading process metrics failed"),
    }
}

/// The scrape timeout Prometheus sends
/// (`X-Prometheus-Scrape-Timeout-Seconds`) less half a second for the
/// answer to travel; `default` without the header.
fn scrape_limit(headers: &HeaderMap, default: Duration) -> Duration {
    let header_seconds = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0);
    match header_seconds {
        Some(s) => Duration::from_secs_f64((s - 0.5).max(0.1)),
        None => default,
    }
}

/// How long a probe may take: the scrape's limit, or 10 s (Prometheus's
/// default scrape timeout) without the header, as blackbox_exporter does.
fn probe_limit(headers: &HeaderMap) -> Duration {
    scrape_limit(headers, Duration::from_secs(10))
}

async fn probe_metrics(
    exporters: Arc<ExporterState>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let Some(target) = query_param(query, "target").filter(|t| !t.is_empty()) else {
        return text_error(
            StatusCode::BAD_REQUEST,
            "Target parameter is missing\n".into(),
        );
    };
    let module_name = query_param(query, "module").unwrap_or_else(|| "http_2xx".to_string());
    let modules = exporters.settings().modules.clone();
    let Some(module) = modules.get(&module_name) else {
        return text_error(
            StatusCode::BAD_REQUEST,
            format!("Unknown module {module_name:?}\n"),
        );
    };
    let mut out = String::with_capacity(4 * 1024);
    blackbox::probe(module, &target, probe_limit(headers), &mut out).await;
    text_response(out)
}

/// The target of a configured Redis instance.
fn redis_target(instance: &RedisInstance) -> Result<RedisTarget, String> {
    let password = match &instance.password {
        Some(secret) => Some(secret.read()?),
        None => None,
    };
    let tls = instance
        .tls
        .as_ref()
        .map(|t| {
            // `identity_pem` is the certificate chain followed by its key.
            RedisTls {
                ca_pem: t.ca_pem.clone(),
                client_cert_pem: t.identity_pem.clone(),
                client_key_pem: t.identity_pem.clone(),
                insecure_skip_verify: t.insecure_skip_verify,
            }
        })
        .unwrap_or_default();
    Ok(RedisTarget {
        address: instance.address.clone(),
        user: instance.user.clone(),
        password,
        tls,
    })
}

/// `/exporters/redis/scrape?target=`: a configured instance's address
/// uses its settings; any other address is scraped without credentials,
/// as redis_exporter scrapes a target missing from its password file.
async fn redis_metrics(
    exporters: Arc<ExporterState>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let Some(target) = query_param(query, "target").filter(|t| !t.is_empty()) else {
        exporters.redis.count_request_error();
        return text_error(
            StatusCode::BAD_REQUEST,
            "'target' parameter must be specified\n".into(),
        );
    };
    let address = exporters::redis::redact_address(&target);
    let settings = exporters.settings();
    let target = match settings.redis.iter().find(|i| i.address == address) {
        Some(instance) => match redis_target(instance) {
            Ok(target) => target,
            Err(e) => {
                exporters.redis.count_request_error();
                return text_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the password of {address}: {e}\n"),
                );
            }
        },
        None => RedisTarget::plain(&address),
    };
    let mut out = String::with_capacity(16 * 1024);
    exporters
        .redis
        .scrape(
            &target,
            scrape_limit(headers, exporters::redis::CONNECTION_TIMEOUT),
            &mut out,
        )
        .await;
    text_response(out)
}

/// `/exporters/postgres/metrics[?target=<name>]`.
async fn postgres_metrics(
    exporters: Arc<ExporterState>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let settings = exporters.settings();
    let wanted = query_param(query, "target");
    let instances: Vec<&PostgresInstance> = settings
        .postgres
        .iter()
        .filter(|i| wanted.as_ref().is_none_or(|w| *w == i.name))
        .collect();
    if instances.is_empty() {
        let message = match wanted {
            Some(name) => format!("no PostgreSQL instance named {name:?} in exporters.postgres\n"),
            None => "no PostgreSQL instance in exporters.postgres\n".to_string(),
        };
        return text_error(StatusCode::BAD_REQUEST, message);
    }
    let mut dsns = Vec::with_capacity(instances.len());
    for instance in instances {
        match instance.data_source_name.read() {
            Ok(dsn) => dsns.push(dsn),
            Err(e) => {
                return text_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the data source name of {}: {e}\n", instance.name),
                );
            }
        }
    }
    let mut out = String::with_capacity(64 * 1024);
    exporters
        .postgres
        .scrape(
            &dsns,
            scrape_limit(headers, Duration::from_secs(10)),
            &mut out,
        )
        .await;
    text_response(out)
}

async fn host_handler(State(state): State<AppState>, request: Request) -> Response {
    let query = request.uri().query().map(str::to_string);
    host_metrics(state.exporters().clone(), query, false).await
}

async fn gpu_handler(State(state): State<AppState>) -> Response {
    gpu_metrics(state.exporters().clone(), false).await
}

async fn container_handler(State(state): State<AppState>) -> Response {
    container_metrics(state.exporters().clone(), false).await
}

async fn redis_handler(State(state): State<AppState>, request: Request) -> Response {
    redis_metrics(
        state.exporters().clone(),
        request.uri().query(),
        request.headers(),
    )
    .await
}

async fn postgres_handler(State(state): State<AppState>, request: Request) -> Response {
    postgres_metrics(
        state.exporters().clone(),
        request.uri().query(),
        request.headers(),
    )
    .await
}

async fn probe_handler(State(state): State<AppState>, request: Request) -> Response {
    probe_metrics(
        state.exporters().clone(),
        request.uri().query(),
        request.headers(),
    )
    .await
}

/// What `osprey exporter redis` scrapes: redis_exporter's flags.
#[derive(Clone, Debug)]
pub struct StandaloneRedis {
    /// `--redis.addr`: what `/metrics` scrapes; empty for none (then only
    /// `/scrape?target=` works).
    pub address: String,
    /// `--redis.user`, `--redis.password`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// `--redis.password-file`: a password per Redis URI, used when no
    /// `--redis.password` is given.
    pub passwords: BTreeMap<String, String>,
    /// `--tls-*` and `--skip-tls-verification`, for every target.
    pub tls: RedisTls,
}

impl StandaloneRedis {
    fn target(&self, address: &str) -> RedisTarget {
        let redacted = exporters::redis::redact_address(address);
        RedisTarget {
            // The address as given keeps credentials written into it.
            address: address.to_string(),
            user: self.user.clone(),
            password: self
                .password
                .clone()
                .filter(|p| !p.is_empty())
                .or_else(|| self.passwords.get(&redacted).cloned()),
            tls: self.tls.clone(),
        }
    }
}

/// Which exporter [`serve_standalone`] runs.
pub enum StandaloneExporter {
    Host,
    Gpu(GpuNames),
    Container(ContainerOptions),
    Redis(StandaloneRedis),
    /// postgres_exporter's data source names (comma-separated in
    /// `DATA_SOURCE_NAME`) and default-metric switches.
    Postgres(Vec<String>, PostgresOptions),
    Blackbox(Modules),
}

/// Serves one exporter alone on `listen` until `shutdown` resolves:
/// `/metrics` (the exporter's metrics and the process's own), `/probe` for
/// blackbox, `/scrape?target=` for Redis, and `/-/healthy` (and Redis's
/// `/health`).
pub async fn serve_standalone(
    exporter: StandaloneExporter,
    listen: SocketAddr,
    web: crate::listen::WebConfigHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let router = match exporter {
        StandaloneExporter::Host => {
            let state = Arc::new(ExporterState::default());
            Router::new().route(
                "/metrics",
                get(move |request: Request| {
                    let query = request.uri().query().map(str::to_string);
                    host_metrics(state.clone(), query, true)
                }),
            )
        }
        StandaloneExporter::Gpu(names) => {
            let mut config = ExportersConfig::default();
            config.gpu.dcgm_names = names.dcgm;
            config.gpu.nvidia_gpu_exporter_names = names.nvidia_gpu_exporter;
            let state = Arc::new(ExporterState::new(&config));
            // Open NVML now, so its one log line comes at start.
            state.gpu();
            Router::new().route("/metrics", get(move || gpu_metrics(state.clone(), true)))
        }
        StandaloneExporter::Container(options) => {
            let state = Arc::new(ExporterState::default());
            {
                let mut settings = Settings::of(&ExportersConfig::default());
                settings.containers = Arc::new(ContainerExporter::new(options));
                *state.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
            }
            state.gpu();
            Router::new().route(
                "/metrics",
                get(move || container_metrics(state.clone(), true)),
            )
        }
        StandaloneExporter::Redis(redis) => {
            let state = Arc::new(ExporterState::default());
            let redis = Arc::new(redis);
            let (metrics_state, metrics_redis) = (state.clone(), redis.clone());
            Router::new()
                .route(
                    "/metrics",
                    get(move |headers: HeaderMap| {
                        let (state, redis) = (metrics_state.clone(), metrics_redis.clone());
                        async move {
                            let mut out = String::with_capacity(16 * 1024);
                            if !redis.address.is_empty() {
                                let limit =
                                    scrape_limit(&headers, exporters::redis::CONNECTION_TIMEOUT);
                                state
                                    .redis
                                    .scrape(&redis.target(&redis.address), limit, &mut out)
                                    .await;
                            }
                            append_process_metrics(&mut out);
                            text_response(out)
                        }
                    }),
                )
                .route(
                    "/scrape",
                    get(move |request: Request| {
                        let (state, redis) = (state.clone(), redis.clone());
                        async move {
                            let query = request.uri().query();
                            let Some(target) =
                                query_param(query, "target").filter(|t| !t.is_empty())
                            else {
                                state.redis.count_request_error();
                                return text_error(
                                    StatusCode::BAD_REQUEST,
                                    "'target' parameter must be specified\n".into(),
                                );
                            };
                            // As redis_exporter: credentials in the URL are
                            // dropped, so none travel in scrape URLs.
                            let target = redis.target(&exporters::redis::redact_address(&target));
                            let limit = scrape_limit(
                                request.headers(),
                                exporters::redis::CONNECTION_TIMEOUT,
                            );
                            let mut out = String::with_capacity(16 * 1024);
                            state.redis.scrape(&target, limit, &mut out).await;
                            text_response(out)
                        }
                    }),
                )
                .route("/health", get(|| async { "ok" }))
        }
        StandaloneExporter::Postgres(dsns, options) => {
            let state = Arc::new(ExporterState::with_postgres(
                &ExportersConfig::default(),
                options,
            ));
            let dsns = Arc::new(dsns);
            Router::new().route(
                "/metrics",
                get(move |headers: HeaderMap| {
                    let (state, dsns) = (state.clone(), dsns.clone());
                    async move {
                        let mut out = String::with_capacity(64 * 1024);
                        let limit = scrape_limit(&headers, Duration::from_secs(10));
                        state.postgres.scrape(&dsns, limit, &mut out).await;
                        append_process_metrics(&mut out);
                        text_response(out)
                    }
                }),
            )
        }
        StandaloneExporter::Blackbox(modules) => {
            let config = ExportersConfig {
                blackbox_modules: Some(modules),
                ..ExportersConfig::default()
            };
            let state = Arc::new(ExporterState::new(&config));
            Router::new()
                .route(
                    "/metrics",
                    get(|| async {
                        let mut out = String::new();
                        append_process_metrics(&mut out);
                        text_response(out)
                    }),
                )
                .route(
                    "/probe",
                    get(move |request: Request| {
                        let state = state.clone();
                        async move {
                            probe_metrics(state, request.uri().query(), request.headers()).await
                        }
                    }),
                )
        }
    };
    let router = router.route("/-/healthy", get(|| async { "OK\n" }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "exporter listening");
    }
    crate::listen::serve_protected(listener, router, web, None, shutdown)
        .await
        .map_err(ServerError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_parameter() {
        assert_eq!(
            requested_collectors(Some("collect[]=cpu&collect%5B%5D=meminfo")).unwrap(),
            [Collector::Cpu, Collector::Meminfo]
        );
        assert!(requested_collectors(Some("collect[]=nope")).is_err());
        assert!(requested_collectors(None).unwrap().is_empty());
    }

    #[test]
    fn configured_redis_instances_read_their_password_file_per_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "first\n").unwrap();
        let instance = RedisInstance {
            address: "rediss://cache:6380".into(),
            user: Some("metrics".into()),
            password: Some(config::blackbox::Secret::File(file.display().to_string())),
            tls: Some(config::blackbox::TlsOptions {
                insecure_skip_verify: true,
                ..Default::default()
            }),
        };
        let target = redis_target(&instance).unwrap();
        assert_eq!(target.password.as_deref(), Some("first"));
        assert_eq!(target.user.as_deref(), Some("metrics"));
        assert!(target.tls.insecure_skip_verify);
        // A rotated secret applies at the next scrape.
        std::fs::write(&file, "second").unwrap();
        assert_eq!(
            redis_target(&instance).unwrap().password.as_deref(),
            Some("second")
        );
    }

    #[test]
    fn standalone_redis_passwords() {
        let redis = StandaloneRedis {
            address: "redis://a:6379".into(),
            user: None,
            password: None,
            passwords: [("redis://a:6379".to_string(), "pa".to_string())].into(),
            tls: RedisTls::default(),
        };
        assert_eq!(
            redis.target("redis://a:6379").password.as_deref(),
            Some("pa")
        );
        assert_eq!(redis.target("a:6379").password.as_deref(), Some("pa"));
        assert_eq!(redis.target("redis://b:6379").password, None);
        let flag = StandaloneRedis {
            password: Some("flag".into()),
            ..redis
        };
        assert_eq!(
            flag.target("redis://a:6379").password.as_deref(),
            Some("flag")
        );
    }
}
