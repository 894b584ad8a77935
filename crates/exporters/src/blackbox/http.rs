//! The `http` prober: one request (following redirects unless told not
//! to), checked against the module's status codes, versions, TLS
//! requirements and body and header patterns.
//!
//! reqwest does the HTTP work, over a rustls configuration from [`tls`]
//! so the certificate metrics come from the verified chain. reqwest does
//! not report when the connection and the TLS handshake end, so
//! `probe_http_duration_seconds` has the phases `resolve`, `processing`
//! (request sent to headers received, connection and handshake included)
//! and `transfer`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::tls::{self, TlsRecord};
use super::{HeaderMatch, HttpProbe, ProbeMetrics, resolve};

const PHASE_HELP: &str = "Seconds spent in each phase of the HTTP request, over all redirects.";
const REGEX_HELP: &str = "Whether the probe failed because of a regular expression check.";

pub(crate) async fn probe(p: &HttpProbe, target: &str, m: &mut ProbeMetrics) -> bool {
    // Every run reports these, zero until measured, as blackbox_exporter does.
    for phase in ["resolve", "processing", "transfer"] {
        m.set(
            "probe_http_duration_seconds",
            PHASE_HELP,
            vec![("phase", phase.to_string())],
            0.0,
        );
    }
    m.gauge(
        "probe_http_content_length",
        "Length of the response body as the server declared it (-1 when it did not).",
        0.0,
    );
    m.gauge(
        "probe_http_uncompressed_body_length",
        "Bytes of the response body received.",
        0.0,
    );
    m.gauge("probe_http_redirects", "Redirects followed.", 0.0);
    m.gauge(
        "probe_http_ssl",
        "Whether the final response came over TLS.",
        0.0,
    );
    m.gauge(
        "probe_http_status_code",
        "Status code of the final response (0 when there was none).",
        0.0,
    );
    m.gauge(
        "probe_http_version",
        "HTTP version of the final response.",
        0.0,
    );
    m.gauge("probe_failed_due_to_regex", REGEX_HELP, 0.0);

    let url_text = if target.contains("://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    let url = match reqwest::Url::parse(&url_text) {
        Ok(url) => url,
        Err(e) => {
            tracing::debug!(target, error = %e, "bad probe target URL");
            return false;
        }
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        tracing::debug!(target, "probe target URL has no host");
        return false;
    };
    let resolve_started = Instant::now();
    let Some(addr) = resolve(host, p.ip, m).await else {
        return false;
    };
    m.add(
        "probe_http_duration_seconds",
        PHASE_HELP,
        vec![("phase", "resolve".to_string())],
        resolve_started.elapsed().as_secs_f64(),
    );

    let record = Arc::new(Mutex::new(TlsRecord::default()));
    let alpn: &[&[u8]] = if p.http.enable_http2 {
        &[b"h2", b"http/1.1"]
    } else {
        &[b"http/1.1"]
    };
    let tls_config = match tls::client_config(&p.tls, record.clone(), alpn) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(target, "{e}");
            return false;
        }
    };
    let redirects = Arc::new(AtomicU32::new(0));
    let follow = p.follow_redirects();
    let resolved = (host.parse::<std::net::IpAddr>().is_err())
        .then(|| (host.to_string(), SocketAddr::new(addr, port)));
    // The module's client settings (authentication, proxy, HTTP/2,
    // headers) come from the shared builder; TLS (which records the
    // chain), redirect counting and the address resolved above are the
    // prober's own.
    let customize = {
        let redirects = redirects.clone();
        move |builder: reqwest::ClientBuilder| {
            let policy = if follow {
                let redirects = redirects.clone();
                reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() > 10 {
                        attempt.error("stopped after 10 redirects")
                    } else {
                        redirects.fetch_add(1, Ordering::Relaxed);
                        attempt.follow()
                    }
                })
            } else {
                reqwest::redirect::Policy::none()
            };
            let mut builder = builder
                .tls_backend_preconfigured(tls_config.clone())
                .redirect(policy);
            if let Some((name, address)) = &resolved {
                builder = builder.resolve(name, *address);
            }
            builder
        }
    };
    let mut options = config::ClientOptions::new("osprey blackbox prober");
    options.gzip = false;
    options.customize = Some(Arc::new(customize));
    let client = match config::HttpClient::new(&p.http, options) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(target, error = %e, "building the HTTP client failed");
            return false;
        }
    };
    let method = match reqwest::Method::from_bytes(p.method.as_bytes()) {
        Ok(method) => method,
        Err(_) => return false,
    };
    let mut request = match client.request(method, url.as_str()).await {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(target, error = %e, "preparing the probe request failed");
            return false;
        }
    };
    for (name, value) in &p.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &p.body {
        request = request.body(body.clone());
    }

    let processing_started = Instant::now();
    let sent = request.send().await;
    m.add(
        "probe_http_duration_seconds",
        PHASE_HELP,
        vec![("phase", "processing".to_string())],
        processing_started.elapsed().as_secs_f64(),
    );
    m.gauge(
        "probe_http_redirects",
        "Redirects followed.",
        f64::from(redirects.load(Ordering::Relaxed)),
    );
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(target, error = %e, "HTTP probe request failed");
            tls::record_metrics(&record.lock().unwrap_or_else(|e| e.into_inner()), m);
            return false;
        }
    };
    let is_tls = response.url().scheme() == "https";
    m.gauge(
        "probe_http_ssl",
        "Whether the final response came over TLS.",
        if is_tls { 1.0 } else { 0.0 },
    );
    if is_tls {
        tls::record_metrics(&record.lock().unwrap_or_else(|e| e.into_inner()), m);
    }
    let status = response.status().as_u16();
    m.gauge(
        "probe_http_status_code",
        "Status code of the final response (0 when there was none).",
        f64::from(status),
    );
    m.gauge(
        "probe_http_content_length",
        "Length of the response body as the server declared it (-1 when it did not).",
        response.content_length().map_or(-1.0, |n| n as f64),
    );
    let (version_number, version_name) = match response.version() {
        reqwest::Version::HTTP_09 => (0.9, "HTTP/0.9"),
        reqwest::Version::HTTP_10 => (1.0, "HTTP/1.0"),
        reqwest::Version::HTTP_11 => (1.1, "HTTP/1.1"),
        reqwest::Version::HTTP_2 => (2.0, "HTTP/2.0"),
        reqwest::Version::HTTP_3 => (3.0, "HTTP/3.0"),
        _ => (0.0, ""),
    };
    m.gauge(
        "probe_http_version",
        "HTTP version of the final response.",
        version_number,
    );
    let mut success = if p.valid_status_codes.is_empty() {
        (200..300).contains(&status)
    } else {
        p.valid_status_codes.contains(&status)
    };
    if !p.valid_http_versions.is_empty() && !p.valid_http_versions.iter().any(|v| v == version_name)
    {
        success = false;
    }
    if (p.fail_if_ssl && is_tls) || (p.fail_if_not_ssl && !is_tls) {
        success = false;
    }
    let headers = response.headers().clone();
    let header_ok = |checks: &[HeaderMatch], fail_on_match: bool| -> bool {
        checks.iter().all(|check| {
            let values: Vec<&str> = headers
                .get_all(check.header.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                return check.allow_missing;
            }
            let matched = values.iter().any(|v| check.regexp.is_match(v));
            matched != fail_on_match
        })
    };
    let mut regex_failed = !header_ok(&p.fail_if_header_matches, true)
        || !header_ok(&p.fail_if_header_not_matches, false);

    let keep_body =
        !p.fail_if_body_matches_regexp.is_empty() || !p.fail_if_body_not_matches_regexp.is_empty();
    let transfer_started = Instant::now();
    let mut body = Vec::new();
    let mut body_length: u64 = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body_length += chunk.len() as u64;
                if p.body_size_limit.is_some_and(|limit| body_length > limit) {
                    tracing::debug!(target, "response body over body_size_limit");
                    success = false;
                    break;
                }
                if keep_body {
                    body.extend_from_slice(&chunk);
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(target, error = %e, "reading the response body failed");
                success = false;
                break;
            }
        }
    }
    m.add(
        "probe_http_duration_seconds",
        PHASE_HELP,
        vec![("phase", "transfer".to_string())],
        transfer_started.elapsed().as_secs_f64(),
    );
    m.gauge(
        "probe_http_uncompressed_body_length",
        "Bytes of the response body received.",
        body_length as f64,
    );
    if keep_body {
        let text = String::from_utf8_lossy(&body);
        if p.fail_if_body_matches_regexp
            .iter()
            .any(|r| r.is_match(&text))
            || p.fail_if_body_not_matches_regexp
                .iter()
                .any(|r| !r.is_match(&text))
        {
            regex_failed = true;
        }
    }
    m.gauge(
        "probe_failed_due_to_regex",
        REGEX_HELP,
        if regex_failed { 1.0 } else { 0.0 },
    );
    success && !regex_failed
}
