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
//! configuration. Without modules the prober offers `http_2xx` and
//! `tcp_connect`, as blackbox_exporter's example configuration does.

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
use exporters::blackbox::{self, Module};
use exporters::gpu::GpuExporter;
use exporters::host::{Collector, HostExporter, HostOptions};
use serde::Deserialize;

use crate::{AppState, ServerError};

/// Blackbox modules by name.
pub type Modules = BTreeMap<String, Module>;

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

/// blackbox_exporter's two basic example modules.
pub fn default_modules() -> Modules {
    let mut modules = Modules::new();
    modules.insert(
        "http_2xx".to_string(),
        Module {
            timeout: None,
            prober: blackbox::Prober::Http(Box::new(blackbox::HttpProbe::blackbox_defaults())),
        },
    );
    modules.insert(
        "tcp_connect".to_string(),
        Module {
            timeout: None,
            prober: blackbox::Prober::Tcp(blackbox::TcpProbe {
                tls: false,
                tls_config: blackbox::TlsOptions::default(),
                query_response: Vec::new(),
                ip: blackbox::IpOptions::blackbox_defaults(),
            }),
        },
    );
    modules
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
        exporters.gpu().collect(&mut out);
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

// ---------------------------------------------------------------------------
// Configuration: blackbox_exporter's module format.
// ---------------------------------------------------------------------------

/// A blackbox.yml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlackboxFile {
    #[serde(default)]
    modules: BTreeMap<String, ModuleYaml>,
}

/// The osprey configuration's `exporters` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportersSection {
    #[serde(default)]
    blackbox: Option<BlackboxFile>,
}

#[derive(Deserialize)]
struct ExportersDocument {
    exporters: Option<ExportersSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleYaml {
    prober: String,
    timeout: Option<String>,
    http: Option<HttpYaml>,
    tcp: Option<TcpYaml>,
    dns: Option<DnsYaml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsYaml {
    #[serde(default)]
    insecure_skip_verify: bool,
    ca_file: Option<String>,
    server_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderMatchYaml {
    header: String,
    regexp: String,
    #[serde(default)]
    allow_missing: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpYaml {
    #[serde(default)]
    valid_status_codes: Vec<u16>,
    #[serde(default)]
    valid_http_versions: Vec<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    follow_redirects: Option<bool>,
    no_follow_redirects: Option<bool>,
    #[serde(default)]
    fail_if_ssl: bool,
    #[serde(default)]
    fail_if_not_ssl: bool,
    #[serde(default)]
    fail_if_body_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_body_not_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_header_matches: Vec<HeaderMatchYaml>,
    #[serde(default)]
    fail_if_header_not_matches: Vec<HeaderMatchYaml>,
    tls_config: Option<TlsYaml>,
    preferred_ip_protocol: Option<String>,
    ip_protocol_fallback: Option<bool>,
    body_size_limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryResponseYaml {
    expect: Option<String>,
    send: Option<String>,
    #[serde(default)]
    starttls: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TcpYaml {
    #[serde(default)]
    tls: bool,
    tls_config: Option<TlsYaml>,
    #[serde(default)]
    query_response: Vec<QueryResponseYaml>,
    preferred_ip_protocol: Option<String>,
    ip_protocol_fallback: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsYaml {
    query_name: String,
    query_type: Option<String>,
    transport_protocol: Option<String>,
    #[serde(default)]
    valid_rcodes: Vec<String>,
    recursion_desired: Option<bool>,
    preferred_ip_protocol: Option<String>,
    ip_protocol_fallback: Option<bool>,
}

fn parse_yaml<T: for<'de> Deserialize<'de>>(
    file: &str,
    text: &str,
    line_offset: u64,
) -> Result<T, String> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<T>(text, options).map_err(|e| {
        let line = e.location().map(|l| l.line() + line_offset);
        let message = e.to_string();
        // The message may end with its own location; the prefix says it.
        let message = message.split(" at line ").next().unwrap_or(&message);
        match line {
            Some(line) => format!("{file}:{line}: {message}"),
            None => format!("{file}: {message}"),
        }
    })
}

/// Reads a blackbox.yml (blackbox_exporter's format). `ca_file` paths are
/// read relative to the working directory.
pub fn parse_blackbox_file(file: &str, text: &str) -> Result<Modules, String> {
    let parsed: BlackboxFile = parse_yaml(file, text, 0)?;
    convert_modules(file, parsed.modules)
}

/// The blackbox modules of an osprey configuration (its `exporters`
/// section), or the defaults when it has none. Errors name the file and
/// line.
pub fn modules_from_config(
    file: &str,
    text: &str,
    config: &scrape::Config,
) -> Result<Modules, String> {
    let Some(section) = config.other_sections.get("exporters") else {
        return Ok(default_modules());
    };
    // The section is kept as its own lines; find where it starts so error
    // lines point into the whole file.
    let line_offset = text
        .lines()
        .position(|l| l.starts_with("exporters:"))
        .unwrap_or(0) as u64;
    let document: ExportersDocument = parse_yaml(file, section, line_offset)?;
    match document.exporters.and_then(|e| e.blackbox) {
        Some(blackbox) => convert_modules(file, blackbox.modules),
        None => Ok(default_modules()),
    }
}

fn convert_modules(file: &str, modules: BTreeMap<String, ModuleYaml>) -> Result<Modules, String> {
    modules
        .into_iter()
        .map(|(name, m)| {
            let module =
                convert_module(m).map_err(|e| format!("{file}: blackbox module {name:?}: {e}"))?;
            Ok((name, module))
        })
        .collect()
}

fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("bad regexp {pattern:?}: {e}"))
}

fn ip_options(
    preferred: Option<String>,
    fallback: Option<bool>,
) -> Result<blackbox::IpOptions, String> {
    let mut ip = blackbox::IpOptions::blackbox_defaults();
    match preferred.as_deref() {
        None | Some("") | Some("ip6") => {}
        Some("ip4") => ip.preferred = blackbox::IpProtocol::Ip4,
        Some(other) => return Err(format!("preferred_ip_protocol {other:?}: want ip4 or ip6")),
    }
    if let Some(fallback) = fallback {
        ip.fallback = fallback;
    }
    Ok(ip)
}

fn tls_options(tls: Option<TlsYaml>) -> Result<blackbox::TlsOptions, String> {
    let tls = tls.unwrap_or_default();
    let ca_pem = match &tls.ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| format!("tls_config.ca_file {path}: {e}"))?)
        }
        None => None,
    };
    Ok(blackbox::TlsOptions {
        insecure_skip_verify: tls.insecure_skip_verify,
        ca_pem,
        server_name: tls.server_name,
    })
}

fn header_matches(list: Vec<HeaderMatchYaml>) -> Result<Vec<blackbox::HeaderMatch>, String> {
    list.into_iter()
        .map(|h| {
            Ok(blackbox::HeaderMatch {
                header: h.header,
                regexp: regex(&h.regexp)?,
                allow_missing: h.allow_missing,
            })
        })
        .collect()
}

fn convert_module(m: ModuleYaml) -> Result<Module, String> {
    let timeout = match &m.timeout {
        Some(t) => {
            let ms = model::duration::parse_duration_ms(t).map_err(|e| format!("timeout: {e}"))?;
            Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        }
        None => None,
    };
    let prober = match m.prober.as_str() {
        "http" => {
            let h = m.http.unwrap_or_default();
            let mut p = blackbox::HttpProbe::blackbox_defaults();
            p.valid_status_codes = h.valid_status_codes;
            p.valid_http_versions = h.valid_http_versions;
            if let Some(method) = h.method {
                p.method = method.to_ascii_uppercase();
            }
            p.headers = h.headers.into_iter().collect();
            p.body = h.body;
            p.follow_redirects = match (h.follow_redirects, h.no_follow_redirects) {
                (Some(follow), _) => follow,
                (None, Some(no_follow)) => !no_follow,
                (None, None) => true,
            };
            p.fail_if_ssl = h.fail_if_ssl;
            p.fail_if_not_ssl = h.fail_if_not_ssl;
            p.fail_if_body_matches_regexp = h
                .fail_if_body_matches_regexp
                .iter()
                .map(|r| regex(r))
                .collect::<Result<_, _>>()?;
            p.fail_if_body_not_matches_regexp = h
                .fail_if_body_not_matches_regexp
                .iter()
                .map(|r| regex(r))
                .collect::<Result<_, _>>()?;
            p.fail_if_header_matches = header_matches(h.fail_if_header_matches)?;
            p.fail_if_header_not_matches = header_matches(h.fail_if_header_not_matches)?;
            p.tls = tls_options(h.tls_config)?;
            p.ip = ip_options(h.preferred_ip_protocol, h.ip_protocol_fallback)?;
            p.body_size_limit = h.body_size_limit.filter(|&l| l > 0);
            blackbox::Prober::Http(Box::new(p))
        }
        "tcp" => {
            let t = m.tcp.unwrap_or_default();
            let query_response = t
                .query_response
                .into_iter()
                .map(|q| {
                    Ok(blackbox::QueryResponse {
                        expect: q.expect.as_deref().map(regex).transpose()?,
                        send: q.send,
                        starttls: q.starttls,
                    })
                })
                .collect::<Result<_, String>>()?;
            blackbox::Prober::Tcp(blackbox::TcpProbe {
                tls: t.tls,
                tls_config: tls_options(t.tls_config)?,
                query_response,
                ip: ip_options(t.preferred_ip_protocol, t.ip_protocol_fallback)?,
            })
        }
        "dns" => {
            let d = m
                .dns
                .ok_or("the dns prober needs a dns section with query_name")?;
            let type_name = d.query_type.unwrap_or_else(|| "ANY".to_string());
            let query_type = blackbox::dns_type_from_name(&type_name)
                .ok_or_else(|| format!("query_type {type_name:?} is not supported"))?;
            let transport = match d.transport_protocol.as_deref() {
                None | Some("") | Some("udp") => blackbox::DnsTransport::Udp,
                Some("tcp") => blackbox::DnsTransport::Tcp,
                Some(other) => {
                    return Err(format!("transport_protocol {other:?}: want udp or tcp"));
                }
            };
            let valid_rcodes = d
                .valid_rcodes
                .iter()
                .map(|r| blackbox::rcode_from_name(r).ok_or_else(|| format!("unknown rcode {r:?}")))
                .collect::<Result<_, _>>()?;
            blackbox::Prober::Dns(blackbox::DnsProbe {
                query_name: d.query_name,
                query_type,
                transport,
                valid_rcodes,
                recursion_desired: d.recursion_desired.unwrap_or(true),
                ip: ip_options(d.preferred_ip_protocol, d.ip_protocol_fallback)?,
            })
        }
        other => {
            return Err(format!(
                "prober {other:?} is not supported (osprey has http, tcp and dns)"
            ));
        }
    };
    Ok(Module { timeout, prober })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blackbox_file_with_every_prober() {
        let text = r#"
modules:
  http_post:
    prober: http
    timeout: 5s
    http:
      method: post
      valid_status_codes: [200, 201]
      headers: {X-Key: k}
      body: ping
      no_follow_redirects: true
      fail_if_body_not_matches_regexp: ["pong"]
      fail_if_header_matches:
        - header: Server
          regexp: "nginx"
          allow_missing: true
      tls_config: {insecure_skip_verify: true, server_name: example.org}
      preferred_ip_protocol: ip4
  smtp:
    prober: tcp
    tcp:
      query_response:
        - expect: "^220"
        - send: "EHLO osprey"
        - starttls: true
  dns_ok:
    prober: dns
    dns:
      query_name: example.org
      query_type: AAAA
      transport_protocol: tcp
      valid_rcodes: [NOERROR, NXDOMAIN]
"#;
        let modules = parse_blackbox_file("blackbox.yml", text).unwrap();
        assert_eq!(modules.len(), 3);
        let Module {
            timeout,
            prober: blackbox::Prober::Http(h),
        } = &modules["http_post"]
        else {
            panic!("http_post");
        };
        assert_eq!(*timeout, Some(Duration::from_secs(5)));
        assert_eq!(h.method, "POST");
        assert_eq!(h.valid_status_codes, [200, 201]);
        assert!(!h.follow_redirects);
        assert!(h.tls.insecure_skip_verify);
        assert_eq!(h.ip.preferred, blackbox::IpProtocol::Ip4);
        let blackbox::Prober::Tcp(t) = &modules["smtp"].prober else {
            panic!("smtp");
        };
        assert_eq!(t.query_response.len(), 3);
        assert!(t.query_response[2].starttls);
        let blackbox::Prober::Dns(d) = &modules["dns_ok"].prober else {
            panic!("dns");
        };
        assert_eq!((d.query_type, d.valid_rcodes.clone()), (28, vec![0, 3]));
        assert_eq!(d.transport, blackbox::DnsTransport::Tcp);
    }

    #[test]
    fn errors_name_file_line_and_module() {
        let err = parse_blackbox_file(
            "bb.yml",
            "modules:\n  a:\n    prober: http\n    http:\n      methd: GET\n",
        )
        .unwrap_err();
        assert!(err.starts_with("bb.yml:5:"), "{err}");
        assert!(err.contains("methd"), "{err}");
        let err = parse_blackbox_file("bb.yml", "modules:\n  a:\n    prober: icmp\n").unwrap_err();
        assert!(err.contains("\"a\"") && err.contains("icmp"), "{err}");
        let err = parse_blackbox_file(
            "bb.yml",
            "modules:\n  a:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: ['(']\n",
        )
        .unwrap_err();
        assert!(err.contains("bad regexp"), "{err}");
    }

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
