//! The Pushgateway API on the main port (`docs/pushgateway.md`):
//! `PUT`/`POST`/`DELETE /metrics/job/<job>{/<label>/<value>}`.
//!
//! - [`path`] reads the grouping key from the URL (fuzzed).
//! - [`store`] parses push bodies, applies the Pushgateway's replacement
//!   and consistency rules and keeps the groups in
//!   `<data-dir>/pushgateway/groups.json`, written before a push is
//!   answered.
//! - [`PushGateway::ingest`] writes every pushed series into the store as
//!   one scrape of a Pushgateway with `honor_labels: true` would: after
//!   each change and then every global `scrape_interval`, so pushed series
//!   never go stale while they are held, and a series that leaves (a
//!   `DELETE`, a `PUT` without it) gets a staleness marker.

pub mod path;
pub mod protobuf;
pub mod store;

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::Labels;
use model::storage::Appendable;

use crate::ingest::read_body_limited;
use crate::{ApiError, AppState, ErrorType, blocking};
pub use path::{Grouping, parse_grouping_path};
pub use store::{PushBody, PushError, PushMode, PushStore, parse_push_body};

/// The pushed groups and what of them was last written to storage.
pub struct PushGateway {
    store: PushStore,
    /// The series the last [`PushGateway::ingest`] wrote, to mark those
    /// that leave as stale.
    exposed: Mutex<HashSet<Labels>>,
}

impl PushGateway {
    /// Groups kept in memory only.
    pub fn in_memory() -> PushGateway {
        PushGateway::over(PushStore::in_memory())
    }

    /// Opens the groups file in `dir` (`<data-dir>/pushgateway`).
    pub fn open(dir: &Path) -> Result<PushGateway, String> {
        Ok(PushGateway::over(PushStore::open(dir)?))
    }

    fn over(store: PushStore) -> PushGateway {
        PushGateway {
            store,
            exposed: Mutex::new(HashSet::new()),
        }
    }

    pub fn store(&self) -> &PushStore {
        &self.store
    }

    /// Writes every pushed series at `now_ms` in one commit, and a
    /// staleness marker for each series the previous call wrote that is no
    /// longer pushed. A series the storage refuses is skipped (logged), as
    /// a scrape skips it. Blocks: call on the blocking pool.
    pub fn ingest(&self, storage: &dyn Appendable, now_ms: i64) -> Result<(), String> {
        let mut exposed = self.exposed.lock().unwrap_or_else(|e| e.into_inner());
        let series = self.store.series();
        let mut appender = storage.appender();
        appender.reserve(series.len());
        let mut next = HashSet::with_capacity(series.len());
        for (labels, value) in series {
            match appender.append(&labels, now_ms, value) {
                Ok(()) => {
                    next.insert(labels);
                }
                Err(error) => {
                    tracing::warn!(series = %labels, %error, "pushed series not stored");
                }
            }
        }
        for gone in exposed.difference(&next) {
            // A refused marker only means the series cannot go stale now.
            let _ = appender.append(gone, now_ms, model::STALE_NAN);
        }
        appender.commit().map_err(|e| e.to_string())?;
        *exposed = next;
        Ok(())
    }
}

/// `PUT`, `POST` and `DELETE /metrics/job/<job>{/<label>/<value>}`.
///
/// `PUT` replaces the group, `POST` the pushed families in it (both answer
/// 200 once the groups file is written and the series stored), `DELETE`
/// removes the group (202). Bad paths and bodies answer 400; a push that
/// breaks the consistency rules answers 400 and sets the group's
/// `push_failure_time_seconds`.
pub(crate) async fn push_handler(State(state): State<AppState>, request: Request) -> Response {
    match push_request(&state, request).await {
        Ok(status) => status.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn push_request(state: &AppState, request: Request) -> Result<StatusCode, ApiError> {
    let raw = request
        .uri()
        .path()
        .strip_prefix("/metrics/")
        .unwrap_or_default()
        .to_string();
    let grouping = parse_grouping_path(&raw).map_err(ApiError::bad_data)?;
    let gateway = state.push_gateway().clone();
    let method = request.method().clone();
    if method == Method::DELETE {
        let storage = state.appendable();
        let now_ms = state.now_ms();
        let state = state.clone();
        return blocking(move || {
            gateway.store().delete(&grouping).map_err(api_error)?;
            ingest_after_change(&state, &gateway, storage.as_ref(), now_ms);
            Ok(StatusCode::ACCEPTED)
        })
        .await;
    }
    let mode = if method == Method::PUT {
        PushMode::Replace
    } else {
        PushMode::Merge
    };
    let protobuf = is_protobuf(&header_text(&request, header::CONTENT_TYPE));
    let encoding = header_text(&request, header::CONTENT_ENCODING);
    let limit = state.config().max_import_body_bytes;
    let body = read_body_limited(request.into_body(), limit).await?;
    let storage = state.appendable();
    let now_ms = state.now_ms();
    let state = state.clone();
    blocking(move || {
        let body = decode_content(body, &encoding, limit)?;
        let parsed = if protobuf {
            protobuf::parse_protobuf_body(&body, &grouping)
        } else {
            parse_push_body(&body, &grouping)
        }
        .map_err(ApiError::bad_data)?;
        let result = gateway.store().push(grouping, parsed, mode, now_ms);
        // A refused push changes the group's failure time: store that too.
        if !matches!(result, Err(PushError::Persist(_))) {
            ingest_after_change(&state, &gateway, storage.as_ref(), now_ms);
        }
        result.map_err(api_error)?;
        Ok(StatusCode::OK)
    })
    .await
}

/// Stores the groups right after a change, so a query sees a push at
/// once. The change itself is already durable in the groups file; a
/// storage error here is logged and the next round writes it again.
fn ingest_after_change(
    state: &AppState,
    gateway: &PushGateway,
    storage: &dyn Appendable,
    now_ms: i64,
) {
    state
        .metrics()
        .set_push_groups(gateway.store().group_count());
    if let Err(error) = gateway.ingest(storage, now_ms) {
        tracing::warn!(%error, "storing pushed series failed; retrying at the next interval");
    }
}

fn api_error(e: PushError) -> ApiError {
    match e {
        PushError::Inconsistent(_) => ApiError::bad_data(e.to_string()),
        PushError::Persist(_) => ApiError::internal(e.to_string()),
    }
}

fn header_text(request: &Request, name: header::HeaderName) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Whether a `Content-Type` names the delimited protobuf format.
fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/vnd.google.protobuf")
}

/// Undoes `Content-Encoding: gzip` (bounded by `limit`); identity passes.
pub(crate) fn decode_content(
    body: Vec<u8>,
    encoding: &str,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let encoding = encoding.trim();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(body);
    }
    if !encoding.eq_ignore_ascii_case("gzip") {
        return Err(ApiError::new(
            ErrorType::Unsupported,
            format!("unsupported Content-Encoding {encoding:?}; send gzip or none"),
        ));
    }
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body.as_slice())
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_data(format!("cannot gunzip the body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::new(
            ErrorType::TooLarge,
            format!("decompressed body exceeds the limit of {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Re-stores the pushed series every global `scrape_interval` (read at
/// each round, so a reload changes it), until aborted.
pub(crate) fn start_loop(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            let interval_ms = state
                .current_config()
                .map(|c| c.global.scrape_interval_ms)
                .unwrap_or(15_000)
                .max(1_000);
            tokio::time::sleep(std::time::Duration::from_millis(
                u64::try_from(interval_ms).unwrap_or(15_000),
            ))
            .await;
            let gateway = state.push_gateway().clone();
            let storage = state.appendable();
            let now_ms = state.now_ms();
            let result =
                tokio::task::spawn_blocking(move || gateway.ingest(storage.as_ref(), now_ms)).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "storing pushed series failed"),
                Err(error) => tracing::warn!(%error, "storing pushed series failed"),
            }
        }
    })
}
