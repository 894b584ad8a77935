//! The built-in exporters over HTTP, and their configuration.
//!
//! On the main server: `GET /exporters/host/metrics` (node_exporter's
//! `collect[]` parameter works), `GET /exporters/gpu/metrics` and
//! `GET /probe?target=...&module=...` (blackbox_exporter's endpoint). The
//! embedded default configuration scrapes the first two like any target,
//! so their samples take the one ingestion path.
//!
//! [`serve_standalone`] runs one exporter alone for the other hosts of a
//! fleet (`osprey exporter host|gpu|blackbox --listen ADDR`): its metrics,
//! plus `process_*` for the exporter process, on `/metrics`, and `/probe`
//! for blackbox.
//!
//! Blackbox modules are written in blackbox_exporter's module format,
//! either in a blackbox.yml (`modules:` at the top) for the standalone
//! exporter or under `exporters: {blackbox: {modules: ...}}` in the osprey
//! configuration; `config::blackbox` reads both. Without modules the
//! prober offers `http_2xx` and `tcp_connect`, as blackbox_exporter's
//! example configuration does.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use exporters::blackbox;
use exporters::gpu::GpuExporter;
use exporters::host::{Collector, HostExporter, HostOptions};

use crate::{AppState, ServerError};

/// Blackbox modules by name.
pub use config::blackbox::{Modules, default_modules};

/// The exporters' shared state: the host reader, the GPU (NVML is opened
/// on first use, so a server that never scrapes it never loads the
/// library) and the blackbox modules in effect.
pub struct ExporterState {
    host: HostExporter,
    gpu: OnceLock<GpuExporter>,
    modules: RwLock<Arc<Modules>>,
}

impl Default for ExporterState {
    fn default() -> ExporterState {
        ExporterState::new(default_modules())
    }
}

impl ExporterState {
    pub fn new(modules: Modules) -> ExporterState {
        ExporterState {
            host: HostExporter::new(HostOptions::linux_defaults()),
            gpu: OnceLock::new(),
            modules: RwLock::new(Arc::new(modules)),
        }
    }

    /// Replaces the blackbox modules (on configuration load and reload).
    pub fn set_modules(&self, modules: Modules) {
        *self.modules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(modules);
    }

    fn modules(&self) -> Arc<Modules> {
        self.modules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn gpu(&self) -> &GpuExporter {
        self.gpu.get_or_init(GpuExporter::open_nvml)
    }
}

/// The routes the main server mounts.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/exporters/host/metrics", get(host_handler))
        .route("/exporters/gpu/metrics", get(gpu_handler))
        .route("/probe", get(probe_handler))
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

async fn host_metrics(
    exporters: Arc<ExporterState>,
    query: Option<String>,
    process: bool,
) -> Response {
    let collectors = match requested_collectors(query.as_deref()) {
        Ok(c) => c,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let body = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(64 * 1024);
        exporters.host.collect(&collectors, &mut out);
        if process {
            append_process_metrics(&mut out);
        }
        out
    })
    .await;
    match body {
        Ok(body) => text_response(body),
        Err(e) => text_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("host exporter failed: {e}\n"),
        ),
    }
}

async fn gpu_metrics(exporters: Arc<ExporterState>, process: bool) -> Response {
    let body = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(8 * 1024);
        exporters
            .gpu()
            .collect(exporters::gpu::GpuNames::BOTH, &mut out);
        if process {
            append_process_metrics(&mut out);
        }
        out
    })
    .await;
    match body {
        Ok(body) => text_response(body),
        Err(e) => text_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("GPU exporter failed: {e}\n"),
        ),
    }
}

fn append_process_metrics(out: &mut String) {
    match exporters::process::ProcessStats::read_self() {
        Ok(stats) => stats.write_text(out),
        Err(e) => tracing::debug!(error = %e, "reading process metrics failed"),
    }
}

/// How long a probe may take: the scrape timeout Prometheus sends
/// (`X-Prometheus-Scrape-Timeout-Seconds`) less half a second for the
/// answer to travel, as blackbox_exporter does; 10 s (Prometheus's default
/// scrape timeout) without the header.
fn probe_limit(headers: &HeaderMap) -> Duration {
    let header_seconds = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0);
    match header_seconds {
        Some(s) => Duration::from_secs_f64((s - 0.5).max(0.1)),
        None => Duration::from_secs(10),
    }
}

async fn probe_metrics(
    exporters: Arc<ExporterState>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let mut target = None;
    let mut module_name = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "target" => target = Some(value.into_owned()),
            "module" => module_name = Some(value.into_owned()),
            _ => {}
        }
    }
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return text_error(
            StatusCode::BAD_REQUEST,
            "Target parameter is missing\n".into(),
        );
    };
    let module_name = module_name.unwrap_or_else(|| "http_2xx".to_string());
    let modules = exporters.modules();
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

async fn host_handler(State(state): State<AppState>, request: Request) -> Response {
    let query = request.uri().query().map(str::to_string);
    host_metrics(state.exporters().clone(), query, false).await
}

async fn gpu_handler(State(state): State<AppState>) -> Response {
    gpu_metrics(state.exporters().clone(), false).await
}

async fn probe_handler(State(state): State<AppState>, request: Request) -> Response {
    probe_metrics(
        state.exporters().clone(),
        request.uri().query(),
        request.headers(),
    )
    .await
}

/// Which exporter [`serve_standalone`] runs.
pub enum StandaloneExporter {
    Host,
    Gpu,
    Blackbox(Modules),
}

/// Serves one exporter alone on `listen` until `shutdown` resolves:
/// `/metrics` (the exporter's metrics and the process's own), `/probe` for
/// blackbox, and `/-/healthy`.
pub async fn serve_standalone(
    exporter: StandaloneExporter,
    listen: SocketAddr,
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
        StandaloneExporter::Gpu => {
            let state = Arc::new(ExporterState::default());
            // Open NVML now, so its one log line comes at start.
            state.gpu();
            Router::new().route("/metrics", get(move || gpu_metrics(state.clone(), true)))
        }
        StandaloneExporter::Blackbox(modules) => {
            let state = Arc::new(ExporterState::new(modules));
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
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
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
}
