//! OTLP metrics over HTTP (`docs/otlp.md`): `POST /v1/metrics` and
//! Prometheus 3's `POST /api/v1/otlp/v1/metrics`, protobuf or JSON,
//! optionally gzipped, translated by the `otlp` crate.
//!
//! Answers follow the OTLP/HTTP specification: 200 with an
//! `ExportMetricsServiceResponse` (and `partial_success` naming the points
//! refused) once the accepted points are committed, which syncs the WAL;
//! 400 with a `google.rpc.Status` for a body that cannot be read (clients
//! do not retry it); 415 for another content type; 503 with `Retry-After`
//! when the storage cannot take writes now (clients retry).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::storage::{StorageErrorKind, validate_labels};

use crate::ingest::read_body_limited;
use crate::{AppState, ErrorType};

/// gRPC status codes used in `google.rpc.Status` bodies.
pub(crate) const CODE_INVALID_ARGUMENT: i32 = 3;
pub(crate) const CODE_RESOURCE_EXHAUSTED: i32 = 8;
pub(crate) const CODE_INTERNAL: i32 = 13;
pub(crate) const CODE_UNAVAILABLE: i32 = 14;

/// Seconds a client is asked to wait before retrying a 503.
pub(crate) const RETRY_AFTER_SECONDS: &str = "1";

/// `POST /v1/metrics` and `POST /api/v1/otlp/v1/metrics`.
pub(crate) async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let Some(_slot) = Slot::take(&state) else {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        return too_many(json);
    };
    handle(&state, request).await
}

/// Holds one of the OTLP in-flight slots (metrics and traces share them),
/// released on every path, a dropped request (timeout, client gone)
/// included; `None` when all are taken.
pub(crate) struct Slot<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Slot<'a> {
    pub(crate) fn take(state: &'a AppState) -> Option<Slot<'a>> {
        use std::sync::atomic::Ordering;
        let in_flight = state.otlp_in_flight();
        if in_flight.fetch_add(1, Ordering::AcqRel) >= crate::OTLP_MAX_IN_FLIGHT {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(in_flight))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// OTLP/HTTP's answer when every in-flight slot is taken: 429 with
/// `Retry-After`.
pub(crate) fn too_many(json: bool) -> Response {
    let mut response = answer(
        StatusCode::TOO_MANY_REQUESTS,
        json,
        otlp::encode_status(
            CODE_RESOURCE_EXHAUSTED,
            "too many OTLP requests in flight; retry later",
            json,
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

/// An OTLP/HTTP request's body format from its `Content-Type`: `Ok(true)`
/// for JSON, `Ok(false)` for protobuf, otherwise the 415 answer.
pub(crate) fn http_format(request: &Request) -> Result<bool, Box<Response>> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(false),
        "application/json" => Ok(true),
        other => Err(Box::new(answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            false,
            otlp::encode_status(
                CODE_INVALID_ARGUMENT,
                &format!(
                    "unsupported Content-Type {other:?}: send application/x-protobuf or application/json"
                ),
                false,
            ),
        ))),
    }
}

/// A request header as text, `""` when missing or not text.
pub(crate) fn header_text(
    request: &Request,
    name: impl axum::http::header::AsHeaderName,
) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// A gRPC request's `grpc-encoding`, or the 415 answer when the request is
/// not gRPC.
pub(crate) fn grpc_encoding(request: &Request) -> Result<String, Box<Response>> {
    let content_type = header_text(request, header::CONTENT_TYPE);
    if !content_type.starts_with("application/grpc") {
        return Err(Box::new(
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("not a gRPC request (Content-Type {content_type:?})"),
            )
                .into_response(),
        ));
    }
    let encoding = header_text(request, "grpc-encoding");
    Ok(if encoding.is_empty() {
        "identity".to_string()
    } else {
        encoding
    })
}

/// The gRPC status answering a failed export.
pub(crate) fn grpc_error(kind: ErrorType, message: &str) -> Response {
    let code = match kind {
        ErrorType::BadData | ErrorType::Unsupported => CODE_INVALID_ARGUMENT,
        ErrorType::TooLarge => CODE_RESOURCE_EXHAUSTED,
        ErrorType::Unavailable | ErrorType::Timeout => CODE_UNAVAILABLE,
        _ => CODE_INTERNAL,
    };
    grpc_status(code, message)
}

async fn handle(state: &AppState, request: Request) -> Response {
    let json = match http_format(&request) {
        Ok(json) => json,
        Err(response) => return *response,
    };
    let encoding = header_text(&request, header::CONTENT_ENCODING);
    let origin = crate::ingest::sender_origin(&request);
    let limit = state.config().max_remote_write_decompressed_bytes;
    let body = match read_body_limited(request.into_body(), limit).await {
        Ok(body) => body,
        Err(e) => return error_answer(e.kind, &e.message, json),
    };
    let translator = state.otlp_translator().clone();
    let storage = state.appendable();
    let created_timestamps = state.config().created_timestamp_zero_ingestion;
    let result = crate::write_pool::run_job(move || {
        let body =
            crate::push::decode_content(body, &encoding, limit).map_err(|e| (e.kind, e.message))?;
        let request = if json {
            otlp::decode_json(&body)
        } else {
            otlp::decode_protobuf(&body)
        }
        .map_err(|e| (ErrorType::BadData, e.to_string()))?;
        drop(body);
        store(
            &translator,
            storage.as_ref(),
            &origin,
            &request,
            created_timestamps,
        )
    })
    .await;
    match result {
        Ok(Ok(stored)) => {
            state.metrics().observe_otlp(
                "http",
                stored.samples,
                u64::try_from(stored.rejected_points).unwrap_or(0),
            );
            answer(
                StatusCode::OK,
                json,
                otlp::encode_response(stored.rejected_points, &stored.message, json),
            )
        }
        Ok(Err((kind, message))) => error_answer(kind, &message, json),
        Err(e) => error_answer(ErrorType::Internal, &format!("OTLP task failed: {e}"), json),
    }
}

/// Translates `request`, stages every valid sample in one appender and
/// commits once (which syncs the WAL); returns the points refused and why.
/// Points of new series the series limits refuse are refused points too
/// (`partial_success`, which exporters do not retry), as are invalid ones.
///
/// With `created_timestamps` (`created-timestamp-zero-ingestion`), a
/// point's start time becomes a zero sample ahead of its samples when it
/// is before them, as Prometheus 3's receiver stores it (its
/// `combinedAppender`): once per series and start time in a request; one
/// the store skips (not newer than the series' newest sample, as when a
/// start time repeats across requests) or refuses is no refused point.
fn store(
    translator: &::otlp::Translator,
    storage: &dyn model::storage::Appendable,
    origin: &model::limits::WriteOrigin,
    request: &::otlp::proto::ExportMetricsServiceRequest,
    created_timestamps: bool,
) -> Result<Stored, (ErrorType, String)> {
    let mut translated = translator.translate(request);
    let mut appender = storage.appender();
    appender.set_origin(origin);
    appender.reserve(translated.samples.len());
    let mut staged_samples = 0u64;
    let mut created = translated.created.iter().copied().peekable();
    let mut created_sent: std::collections::HashMap<&model::Labels, i64> =
        std::collections::HashMap::new();
    // The newest sample staged per series in this request: a created
    // timestamp at or before it would put its zero out of order (the
    // store checks only what is committed), as remote write 2.0 checks.
    let mut staged_newest: std::collections::HashMap<&model::Labels, i64> =
        std::collections::HashMap::new();
    for (index, (labels, t, v)) in translated.samples.iter().enumerate() {
        let mut sample_created = None;
        while let Some((at, ms)) = created.next_if(|(at, _)| *at <= index) {
            if at == index {
                sample_created = Some(ms);
            }
        }
        if created_timestamps
            && let Some(ms) = sample_created
            && ms < *t
            && created_sent.get(labels) != Some(&ms)
            && staged_newest.get(labels).is_none_or(|&newest| ms > newest)
            && validate_labels(labels).is_ok()
        {
            created_sent.insert(labels, ms);
            if let Err(error) = appender.append_created_zero(labels, *t, ms) {
                tracing::debug!(%error, %labels, created = ms, "created timestamp not stored");
            }
        }
        let staged = validate_labels(labels).and_then(|()| appender.append(labels, *t, *v));
        match staged {
            Ok(()) => {
                staged_samples += 1;
                let newest = staged_newest.entry(labels).or_insert(*t);
                *newest = (*newest).max(*t);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    StorageErrorKind::InvalidInput
                        | StorageErrorKind::Limit
                        | StorageErrorKind::RateLimit
                ) =>
            {
                translated.rejected_points += 1;
                if translated.errors.len() < 10 {
                    translated.errors.push(format!("{labels}: {e}"));
                }
            }
            Err(e) => {
                appender.rollback();
                return Err(storage_error(&e));
            }
        }
    }
    // Exemplars after every sample, so their series exist; a refused
    // exemplar (out of order, labels too long) is logged, as Prometheus's
    // receiver does, and is not a refused point.
    for (labels, exemplar) in translated.exemplars.drain(..) {
        if let Err(error) = appender.append_exemplar(&labels, exemplar) {
            tracing::debug!(%error, %labels, "exemplar not stored");
        }
    }
    appender.commit().map_err(|e| storage_error(&e))?;
    translator.apply(&mut translated);
    Ok(Stored {
        samples: staged_samples,
        rejected_points: translated.rejected_points,
        message: translated.errors.join("; "),
    })
}

/// What [`store`] kept and refused.
struct Stored {
    samples: u64,
    rejected_points: i64,
    message: String,
}

fn storage_error(e: &model::storage::StorageError) -> (ErrorType, String) {
    match e.kind() {
        StorageErrorKind::Limit | StorageErrorKind::Closed => {
            (ErrorType::Unavailable, e.to_string())
        }
        _ => (ErrorType::Internal, e.to_string()),
    }
}

pub(crate) fn error_answer(kind: ErrorType, message: &str, json: bool) -> Response {
    let (status, code) = match kind {
        ErrorType::BadData => (StatusCode::BAD_REQUEST, CODE_INVALID_ARGUMENT),
        ErrorType::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, CODE_INVALID_ARGUMENT),
        ErrorType::Unsupported => (StatusCode::UNSUPPORTED_MEDIA_TYPE, CODE_INVALID_ARGUMENT),
        ErrorType::Unavailable | ErrorType::Timeout => {
            (StatusCode::SERVICE_UNAVAILABLE, CODE_UNAVAILABLE)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, CODE_INTERNAL),
    };
    let mut response = answer(status, json, otlp::encode_status(code, message, json));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

pub(crate) fn answer(status: StatusCode, json: bool, body: Vec<u8>) -> Response {
    let content_type = if json {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The translation settings of the `otlp:` section.
pub(crate) fn translation_options(config: &config::otlp::OtlpConfig) -> ::otlp::TranslationOptions {
    use ::otlp::TranslationStrategy as To;
    use config::otlp::TranslationStrategy as From;
    ::otlp::TranslationOptions {
        strategy: match config.translation_strategy {
            From::UnderscoreEscapingWithSuffixes => To::UnderscoreEscapingWithSuffixes,
            From::UnderscoreEscapingWithoutSuffixes => To::UnderscoreEscapingWithoutSuffixes,
            From::NoUTF8EscapingWithSuffixes => To::NoUTF8EscapingWithSuffixes,
            From::NoTranslation => To::NoTranslation,
        },
        promote_resource_attributes: config.promote_resource_attributes.clone(),
        promote_all_resource_attributes: config.promote_all_resource_attributes,
        ignore_resource_attributes: config.ignore_resource_attributes.clone(),
        promote_scope_metadata: config.promote_scope_metadata,
        keep_identifying_resource_attributes: config.keep_identifying_resource_attributes,
        label_name_underscore_sanitization: config.label_name_underscore_sanitization,
        label_name_preserve_multiple_underscores: config.label_name_preserve_multiple_underscores,
    }
}

/// The dedicated OTLP/HTTP listener (`otlp.http_listen_address`): only
/// the OTLP paths, with the main port's authentication and TLS.
pub(crate) struct OtlpListener {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for OtlpListener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The router of the dedicated listener.
fn listener_router(state: &AppState) -> axum::Router {
    let ingest_limit = axum::extract::DefaultBodyLimit::disable();
    axum::Router::new()
        .route(
            "/v1/metrics",
            axum::routing::post(metrics).layer(ingest_limit),
        )
        .route(
            "/v1/traces",
            axum::routing::post(crate::traces::http_traces).layer(ingest_limit),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth().clone(),
            crate::auth::middleware,
        ))
        .with_state(state.clone())
}

/// Which dedicated listener.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    Http,
    Grpc,
}

impl AppState {
    /// Starts, moves or stops the dedicated OTLP/HTTP and OTLP/gRPC
    /// listeners to match `http` and `grpc`.
    pub(crate) async fn apply_otlp_listeners(
        &self,
        http: Option<std::net::SocketAddr>,
        grpc: Option<std::net::SocketAddr>,
    ) {
        self.apply_otlp_listener(ListenerKind::Http, http).await;
        self.apply_otlp_listener(ListenerKind::Grpc, grpc).await;
    }

    /// Starts, moves or stops one dedicated listener to match `wanted`.
    /// A port that cannot be bound (taken by an OpenTelemetry collector,
    /// say) is logged and the server carries on without it: the main port
    /// serves OTLP/HTTP all the same.
    async fn apply_otlp_listener(&self, kind: ListenerKind, wanted: Option<std::net::SocketAddr>) {
        let slot = self.otlp_listener_slot(kind);
        let mut current = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if current.as_ref().map(|l| l.addr) == wanted {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = current;
            return;
        }
        // Stop the old one first: the new address may be the same port
        // on another interface.
        drop(current.take());
        let Some(addr) = wanted else {
            return;
        };
        let what = match kind {
            ListenerKind::Http => "OTLP/HTTP",
            ListenerKind::Grpc => "OTLP/gRPC",
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(
                    %addr, %error,
                    "cannot listen for {what}; carrying on without it (the main port serves OTLP/HTTP on /v1/metrics)"
                );
                return;
            }
        };
        tracing::info!(%addr, "listening for {what}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = match kind {
            ListenerKind::Http => listener_router(self),
            ListenerKind::Grpc => grpc_router(self),
        };
        let web = self.config().web.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = crate::listen::serve(listener, router, web, shutdown).await {
                tracing::warn!(%addr, %error, "the {what} listener failed");
            }
        });
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(OtlpListener {
            addr,
            stop: Some(stop),
        });
    }
}

/// The gRPC method OTLP metrics exporters call.
pub const GRPC_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// gRPC status codes.
const GRPC_OK: i32 = 0;

/// The router of the dedicated gRPC listener: the one unary method.
fn grpc_router(state: &AppState) -> axum::Router {
    let ingest_limit = axum::extract::DefaultBodyLimit::disable();
    axum::Router::new()
        .route(
            GRPC_EXPORT_PATH,
            axum::routing::post(grpc_export).layer(ingest_limit),
        )
        .route(
            crate::traces::GRPC_TRACES_PATH,
            axum::routing::post(crate::traces::grpc_traces).layer(ingest_limit),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth().clone(),
            crate::auth::middleware,
        ))
        .with_state(state.clone())
}

/// `MetricsService/Export` over gRPC (HTTP/2; a unary call is one
/// length-prefixed message each way and the status in the trailers):
/// the same translation and commit as OTLP/HTTP. Refused points are in
/// the answer's `partial_success`; an unreadable request is
/// `INVALID_ARGUMENT`, too many in flight or storage refusing writes
/// `UNAVAILABLE` (which exporters retry).
async fn grpc_export(State(state): State<AppState>, request: Request) -> Response {
    let Some(_slot) = Slot::take(&state) else {
        return grpc_status(
            CODE_UNAVAILABLE,
            "too many OTLP requests in flight; retry later",
        );
    };
    let encoding = match grpc_encoding(&request) {
        Ok(encoding) => encoding,
        Err(response) => return *response,
    };
    let origin = crate::ingest::sender_origin(&request);
    let limit = state.config().max_remote_write_decompressed_bytes;
    let body = match read_body_limited(request.into_body(), limit).await {
        Ok(body) => body,
        Err(e) => return grpc_status(CODE_RESOURCE_EXHAUSTED, &e.message),
    };
    let translator = state.otlp_translator().clone();
    let storage = state.appendable();
    let created_timestamps = state.config().created_timestamp_zero_ingestion;
    let result = crate::write_pool::run_job(move || {
        let message = grpc_message(&body, &encoding, limit)?;
        let request =
            otlp::decode_protobuf(&message).map_err(|e| (ErrorType::BadData, e.to_string()))?;
        drop(message);
        store(
            &translator,
            storage.as_ref(),
            &origin,
            &request,
            created_timestamps,
        )
    })
    .await;
    match result {
        Ok(Ok(stored)) => {
            state.metrics().observe_otlp(
                "grpc",
                stored.samples,
                u64::try_from(stored.rejected_points).unwrap_or(0),
            );
            grpc_ok(otlp::encode_response(
                stored.rejected_points,
                &stored.message,
                false,
            ))
        }
        Ok(Err((kind, message))) => grpc_error(kind, &message),
        Err(e) => grpc_status(CODE_INTERNAL, &format!("OTLP task failed: {e}")),
    }
}

/// A successful unary answer: `message` framed, then `grpc-status: 0`.
pub(crate) fn grpc_ok(message: Vec<u8>) -> Response {
    let frame = otlp::encode_grpc_frame(&message);
    let mut trailers = axum::http::HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(GRPC_OK));
    let body = axum::body::Body::new(GrpcBody {
        data: Some(bytes::Bytes::from(frame)),
        trailers: Some(trailers),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/grpc")],
        body,
    )
        .into_response()
}

/// The one message of a unary call's body, gunzipped for
/// `grpc-encoding: gzip`.
pub(crate) fn grpc_message(
    body: &[u8],
    encoding: &str,
    limit: usize,
) -> Result<Vec<u8>, (ErrorType, String)> {
    let frame = otlp::decode_grpc_frame(body).map_err(|e| (ErrorType::BadData, e.to_string()))?;
    if !frame.compressed {
        return Ok(frame.message.to_vec());
    }
    if !encoding.eq_ignore_ascii_case("gzip") {
        return Err((
            ErrorType::Unsupported,
            format!("compressed message with grpc-encoding {encoding:?}; gzip is supported"),
        ));
    }
    crate::push::decode_content(frame.message.to_vec(), "gzip", limit)
        .map_err(|e| (e.kind, e.message))
}

/// A trailers-only gRPC answer carrying an error status.
pub(crate) fn grpc_status(code: i32, message: &str) -> Response {
    // grpc-message is percent-encoded; keep it to printable ASCII.
    let mut encoded = String::with_capacity(message.len());
    for b in message.bytes().take(1024) {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let mut response =
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/grpc")]).into_response();
    response
        .headers_mut()
        .insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        response.headers_mut().insert("grpc-message", value);
    }
    response
}

/// One data frame, then the trailers.
struct GrpcBody {
    data: Option<bytes::Bytes>,
    trailers: Option<axum::http::HeaderMap>,
}

impl http_body::Body for GrpcBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        if let Some(trailers) = self.trailers.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        std::task::Poll::Ready(None)
    }
}
