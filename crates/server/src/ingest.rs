//! The write endpoints: remote write 1.0 and 2.0 (`POST /api/v1/write`) and the
//! text exposition import (`POST /api/v1/import/prometheus`).
//!
//! Both are all or nothing: a request is decoded and validated completely
//! before its first sample is staged, all samples go into one appender and
//! one commit, and the client hears success only after the commit, which
//! makes them durable, returned `Ok`. One exception: remote write stores
//! what the series limits let through (`docs/limits.md`) and then answers
//! for the series they refused, so that one sender's new series cannot
//! hold back the samples of its existing ones.

use std::collections::HashMap;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use model::exposition::{
    Format, LazyEntry, LazySample, ParseError, Parser, sample_labels, split_at_lines,
};
use model::labels::FastBuildHasher;
use model::limits::WriteOrigin;
use model::storage::{Appendable, PairsBatch, PairsBatchSpace, StorageError, StorageErrorKind};
use model::{Labels, LabelsBuilder, METRIC_NAME};
use remote::{
    RawExemplar, RawHistogram, RemoteWriteError, decompress_snappy, visit_write_request_full,
    visit_write_request_v2,
};

use crate::params::Params;
use crate::{ApiError, AppState, ErrorType};

/// At most this much of a body's announced length is reserved before its
/// bytes arrive: a client that announces the limit and sends nothing holds
/// no more than this.
const RESERVE_AT_ONCE: usize = 4 << 20;

/// Bodies announced at least this long are read into a mapping of their
/// own (see [`BodyBytes`]).
const MAP_AT: usize = 4 << 20;

/// Reads a request body, refusing (413) once it grows past `limit` bytes.
pub(crate) async fn read_body_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    Ok(read_body_bytes(body, limit, false).await?.into_vec())
}

/// A request body's bytes. One announced at [`MAP_AT`] or more (a text
/// import of tens of megabytes) goes into an anonymous mapping that asks
/// the kernel for huge pages: the heap would hand a body that large its
/// own mapping of small pages anyway, a page fault each 4 KiB on first
/// write (about a tenth of a text import's CPU), and unmap it after the
/// request, so every request paid them again.
pub(crate) struct BodyBytes {
    inner: Inner,
}

enum Inner {
    Heap(Vec<u8>),
    Mapped { map: memmap2::MmapMut, len: usize },
}

impl BodyBytes {
    fn into_vec(self) -> Vec<u8> {
        match self.inner {
            Inner::Heap(bytes) => bytes,
            Inner::Mapped { map, len } => map[..len].to_vec(),
        }
    }
}

impl std::ops::Deref for BodyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Heap(bytes) => bytes,
            Inner::Mapped { map, len } => &map[..*len],
        }
    }
}

/// [`read_body_limited`], a large announced body in a mapping of its own
/// when `map_large`.
pub(crate) async fn read_body_bytes(
    body: Body,
    limit: usize,
    map_large: bool,
) -> Result<BodyBytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorType::TooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let announced = http_body::Body::size_hint(&body)
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    if announced > limit {
        return Err(too_large());
    }
    let mut inner = Inner::Heap(Vec::new());
    if map_large && announced >= MAP_AT {
        // A failed mapping (address space exhausted) leaves the heap to try.
        if let Ok(map) = memmap2::MmapOptions::new().len(announced).map_anon() {
            // Advice only: without huge pages the mapping works as is.
            let _ = map.advise(memmap2::Advice::HugePage);
            inner = Inner::Mapped { map, len: 0 };
        }
    }
    if let Inner::Heap(bytes) = &mut inner {
        // The announced length (capped at RESERVE_AT_ONCE) is reserved at
        // once, so a body is not copied again each time the buffer grows;
        // a client that announces the limit and sends nothing holds no more.
        bytes.reserve_exact(announced.min(RESERVE_AT_ONCE));
    }
    let mut stream = body.into_data_stream();
    while let Some(chunk) =
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await
    {
        let chunk = chunk.map_err(|e| ApiError::bad_data(format!("reading request body: {e}")))?;
        match &mut inner {
            Inner::Heap(bytes) => {
                if bytes.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            Inner::Mapped { map, len } => {
                // The mapping is as long as the announced length, which the
                // HTTP layer holds the body to; more is refused all the same.
                let end = *len + chunk.len();
                let Some(slot) = map.get_mut(*len..end) else {
                    return Err(ApiError::bad_data(
                        "request body longer than its Content-Length",
                    ));
                };
                slot.copy_from_slice(&chunk);
                *len = end;
            }
        }
    }
    Ok(BodyBytes { inner })
}

/// Who sent a write request, for the series limits: the authenticated
/// user when the listener has authentication, else the `X-Scope-OrgID`
/// header (the tenant header Mimir, Cortex and Thanos senders are already
/// configured with), else the empty name.
pub(crate) fn sender_origin(request: &Request) -> WriteOrigin {
    if let Some(principal) = request.extensions().get::<crate::auth::Principal>()
        && !principal.name.is_empty()
        && !matches!(
            principal.how,
            crate::auth::Credential::Open | crate::auth::Credential::Nobody
        )
    {
        return WriteOrigin::Sender(principal.name.clone());
    }
    let header = request
        .headers()
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    WriteOrigin::Sender(header.to_string())
}

/// The series the limits refused in one request, for its answer.
#[derive(Default)]
pub(crate) struct Refusals {
    count: u64,
    /// Whether a hard limit (not a rate) refused one.
    hard: bool,
    first: Option<String>,
}

impl Refusals {
    /// Counts `error` if a series limit raised it; gives any other error
    /// back.
    pub(crate) fn note(&mut self, error: StorageError) -> Result<(), StorageError> {
        match error.kind() {
            StorageErrorKind::Limit => self.hard = true,
            StorageErrorKind::RateLimit => {}
            _ => return Err(error),
        }
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(error.to_string());
        }
        Ok(())
    }

    /// The error to answer, if anything was refused: 400 when a hard limit
    /// refused a series (retrying cannot help, so senders should drop the
    /// batch), else 429 with `Retry-After`.
    pub(crate) fn into_error(self) -> Option<ApiError> {
        let first = self.first?;
        let kind = if self.hard {
            ErrorType::BadData
        } else {
            ErrorType::TooManyRequests
        };
        Some(ApiError::new(
            kind,
            format!(
                "{} samples of new series refused by the series limits (the others were stored): {first}",
                self.count
            ),
        ))
    }
}

impl From<RemoteWriteError> for ApiError {
    fn from(e: RemoteWriteError) -> ApiError {
        let kind = match e {
            RemoteWriteError::TooLarge { .. } => ErrorType::TooLarge,
            _ => ErrorType::BadData,
        };
        ApiError::new(kind, e.to_string())
    }
}

/// The remote-write message a request carries, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteProto {
    /// `prometheus.WriteRequest` (1.0; also without `proto=`).
    V1,
    /// `io.prometheus.write.v2.Request` (2.0).
    V2,
}

/// Reads `Content-Type` and `Content-Encoding` as Prometheus's receiver
/// does: no content type means 1.0; `application/x-protobuf` with an
/// optional `proto=` parameter naming 1.0 or 2.0; anything else, or an
/// encoding other than snappy, is 415.
fn write_proto(request: &Request) -> Result<WriteProto, ApiError> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_string())
    };
    if let Some(encoding) = header("content-encoding")
        && !encoding.is_empty()
        && !encoding.eq_ignore_ascii_case("snappy")
    {
        return Err(ApiError::new(
            ErrorType::Unsupported,
            format!(
                "{encoding:?} encoding (compression) is not accepted by this server; only \"snappy\" is acceptable"
            ),
        ));
    }
    let content_type = header("content-type").unwrap_or_default();
    if content_type.is_empty() {
        return Ok(WriteProto::V1);
    }
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim();
    if media != "application/x-protobuf" {
        return Err(ApiError::new(
            ErrorType::Unsupported,
            format!(
                "expected application/x-protobuf as the first (media) part, got {content_type} content-type"
            ),
        ));
    }
    for parameter in parts {
        let Some((key, value)) = parameter.split_once('=') else {
            return Err(ApiError::new(
                ErrorType::Unsupported,
                format!(
                    "expected parameters to be key-values, got {parameter:?} in {content_type} content-type"
                ),
            ));
        };
        if key.trim() == "proto" {
            return match value.trim() {
                "prometheus.WriteRequest" => Ok(WriteProto::V1),
                "io.prometheus.write.v2.Request" => Ok(WriteProto::V2),
                other => Err(ApiError::new(
                    ErrorType::Unsupported,
                    format!(
                        "got {content_type} content type; unknown remote write protobuf message {other}, supported: prometheus.WriteRequest, io.prometheus.write.v2.Request"
                    ),
                )),
            };
        }
    }
    Ok(WriteProto::V1)
}

/// What a request stored, for 2.0's `X-Prometheus-Remote-Write-*-Written`
/// headers.
#[derive(Clone, Copy, Default)]
struct Written {
    samples: u64,
    histograms: u64,
    exemplars: u64,
}

/// `POST /api/v1/write`: snappy-compressed protobuf, remote write 1.0
/// (`WriteRequest`) or 2.0 (`io.prometheus.write.v2.Request`), chosen by
/// `Content-Type`. Answers 204 once the batch is committed; 400 or 429
/// once what the series limits let through is committed, naming what
/// they refused; 415 for a message or encoding it does not read. A 2.0
/// answer carries how many samples, histograms and exemplars were
/// written.
pub(crate) async fn remote_write(State(state): State<AppState>, request: Request) -> Response {
    let proto = match write_proto(&request) {
        Ok(proto) => proto,
        Err(e) => return e.into_response(),
    };
    let origin = sender_origin(&request);
    let config = state.config();
    let max_decompressed = config.max_remote_write_decompressed_bytes;
    let created_timestamps = config.created_timestamp_zero_ingestion;
    let result = async {
        let body =
            read_body_limited(request.into_body(), config.max_remote_write_body_bytes).await?;
        let storage = state.appendable();
        crate::write_pool::run(move || {
            let raw = decompress_snappy(&body, max_decompressed)?;
            drop(body);
            Ok(stage_write(
                storage.as_ref(),
                &origin,
                proto,
                &raw,
                created_timestamps,
            ))
        })
        .await
    }
    .await;
    let (mut response, written) = match result {
        Ok(Ok(written)) => (StatusCode::NO_CONTENT.into_response(), written),
        Ok(Err((e, written))) => (e.into_response(), written),
        Err(e) => (e.into_response(), Written::default()),
    };
    if proto == WriteProto::V2 {
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-prometheus-remote-write-samples-written", written.samples),
            (
                "x-prometheus-remote-write-histograms-written",
                written.histograms,
            ),
            (
                "x-prometheus-remote-write-exemplars-written",
                written.exemplars,
            ),
        ] {
            headers.insert(name, axum::http::HeaderValue::from(value));
        }
    }
    response
}

/// Decodes a decompressed request and stages and commits its series.
/// Stages straight from the decoded bytes: no label strings are
/// allocated for series the storage already holds. Dropping the appender
/// without commit (on any error) stores nothing. The error carries what
/// was written anyway (only series-limit refusals leave anything).
///
/// With `created_timestamps` (`created-timestamp-zero-ingestion`), a 2.0
/// series' `created_timestamp` becomes a zero sample ahead of its first
/// sample and ahead of each histogram, as Prometheus 3's receiver writes
/// it; one the store skips (not newer than the series' newest sample) or
/// cannot take is no error.
fn stage_write<'r>(
    storage: &dyn Appendable,
    origin: &WriteOrigin,
    proto: WriteProto,
    raw: &'r [u8],
    created_timestamps: bool,
) -> Result<Written, (ApiError, Written)> {
    let mut appender = storage.appender();
    appender.set_origin(origin);
    let mut refusals = Refusals::default();
    let mut written = Written::default();
    // Series with nothing but float samples, staged together (see
    // `Appender::append_pairs_batch`); staged before any other series, so
    // every series is staged in the request's order.
    let mut batch = PairsBatch::with_space(BATCH_SPACE.take());
    let mut on_series = |labels: &[(&'r str, &'r str)],
                         samples: &[(i64, f64)],
                         exemplars: &[RawExemplar<'_>],
                         histograms: &[RawHistogram],
                         created: CreatedTimestamps<'_>|
     -> Result<(), ApiError> {
        let with_created = created_timestamps && created.any();
        if !with_created && exemplars.is_empty() && histograms.is_empty() {
            batch.push(labels, samples);
            if batch.len() >= BATCH_SERIES {
                stage_batch(appender.as_mut(), &mut batch, &mut written, &mut refusals)?;
            }
            return Ok(());
        }
        stage_batch(appender.as_mut(), &mut batch, &mut written, &mut refusals)?;
        if with_created {
            append_created_zeros(appender.as_mut(), labels, samples, histograms, created);
        }
        // Prometheus's 1.0 sender puts exemplars in entries of
        // their own, without samples, so they are kept unless
        // the limits refused this entry's series.
        let mut refused = false;
        for &(t, v) in samples {
            match appender.append_pairs(labels, t, v) {
                Ok(_) => written.samples += 1,
                Err(e) => {
                    refusals.note(e).map_err(ApiError::from_write)?;
                    refused = true;
                }
            }
        }
        if !histograms.is_empty() {
            let (stored, any_refused) =
                append_histograms(appender.as_mut(), labels, histograms, &mut refusals)?;
            written.histograms += stored;
            refused |= any_refused;
        }
        if !refused && !exemplars.is_empty() {
            written.exemplars += append_exemplars(appender.as_mut(), labels, exemplars);
        }
        Ok(())
    };
    let walked = match proto {
        WriteProto::V1 => {
            visit_write_request_full::<ApiError>(raw, |labels, samples, exemplars, histograms| {
                on_series(
                    labels,
                    samples,
                    exemplars,
                    histograms,
                    CreatedTimestamps::default(),
                )
            })
        }
        WriteProto::V2 => visit_write_request_v2::<ApiError>(
            raw,
            |labels, samples, exemplars, histograms, extras| {
                // Metadata is checked by the decoder and not stored.
                on_series(
                    labels,
                    samples,
                    exemplars,
                    histograms,
                    CreatedTimestamps {
                        series: extras.created_timestamp,
                        samples: extras.sample_start_timestamps,
                        histograms: extras.histogram_start_timestamps,
                    },
                )
            },
        ),
    };
    let staged = walked
        .and_then(|()| stage_batch(appender.as_mut(), &mut batch, &mut written, &mut refusals));
    let space = batch.into_space();
    if space.capacity_bytes() <= MAX_KEPT_BATCH_SPACE {
        BATCH_SPACE.set(space);
    }
    if let Err(error) = staged {
        return Err((error, Written::default()));
    }
    if let Err(error) = appender.commit() {
        return Err((ApiError::from_write(error), Written::default()));
    }
    match refusals.into_error() {
        Some(error) => Err((error, written)),
        None => Ok(written),
    }
}

/// The most series [`stage_write`] gathers before staging them together.
const BATCH_SERIES: usize = 4096;

thread_local! {
    /// The vectors of the write thread's last batch, kept for its next
    /// request: growing them anew for every request of a few thousand
    /// series took about 2% of remote-write ingest CPU.
    static BATCH_SPACE: std::cell::Cell<PairsBatchSpace> =
        std::cell::Cell::new(PairsBatchSpace::default());
}

/// The largest batch space a write thread keeps between requests: a full
/// batch of [`BATCH_SERIES`] series with a dozen labels and a sample each
/// takes about 1.6 MiB. A larger one (a series with many thousands of
/// samples) is freed, so the write threads together hold a few MiB at most.
const MAX_KEPT_BATCH_SPACE: usize = 2 << 20;

/// Stages and empties `batch`, counting what was stored and what the
/// series limits refused; any other error stops the request.
fn stage_batch(
    appender: &mut dyn model::storage::Appender,
    batch: &mut PairsBatch<'_>,
    written: &mut Written,
    refusals: &mut Refusals,
) -> Result<(), ApiError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut refused = 0u64;
    appender
        .append_pairs_batch(batch, &mut |_, error| {
            refused += 1;
            refusals.note(error)
        })
        .map_err(ApiError::from_write)?;
    written.samples += (batch.samples() as u64).saturating_sub(refused);
    batch.clear();
    Ok(())
}

/// A 2.0 series' created timestamps (milliseconds, 0 for none): the
/// series' `created_timestamp` (field 6 of the spec's first schema) and
/// the per-sample and per-histogram `start_timestamp` of its later one.
#[derive(Clone, Copy, Default)]
struct CreatedTimestamps<'s> {
    series: i64,
    samples: &'s [i64],
    histograms: &'s [i64],
}

impl CreatedTimestamps<'_> {
    fn any(&self) -> bool {
        self.series != 0
            || self.samples.iter().any(|t| *t != 0)
            || self.histograms.iter().any(|t| *t != 0)
    }
}

/// Stages the zero samples of a 2.0 series' created timestamps, as
/// Prometheus 3's receiver (`AppendCTZeroSample`): the series'
/// `created_timestamp` ahead of its first sample and of each histogram,
/// a sample's or histogram's own `start_timestamp` ahead of it. A sample
/// with timestamp 0 gets none, and neither does one whose created
/// timestamp was just handed over or is not after the series' previous
/// sample in the request (the store checks against what is stored, not
/// against what this request staged). What the store skips or refuses
/// is logged at debug level and fails nothing.
fn append_created_zeros(
    appender: &mut dyn model::storage::Appender,
    labels: &[(&str, &str)],
    samples: &[(i64, f64)],
    histograms: &[RawHistogram],
    created: CreatedTimestamps<'_>,
) {
    let series = Labels::from_pairs(labels.iter().copied());
    let log = |result: model::storage::Result<bool>, created: i64| {
        if let Err(error) = result {
            tracing::debug!(%error, %series, created, "created timestamp not stored");
        }
    };
    let mut handed = 0;
    let mut previous = i64::MIN;
    for (index, &(t, _)) in samples.iter().enumerate() {
        let own = created.samples.get(index).copied().unwrap_or(0);
        let start = if own != 0 {
            own
        } else if index == 0 {
            created.series
        } else {
            0
        };
        if start != 0 && t != 0 && start != handed && start > previous {
            log(appender.append_created_zero(&series, t, start), start);
            handed = start;
        }
        previous = t;
    }
    let mut handed = 0;
    let mut previous = i64::MIN;
    for (index, h) in histograms.iter().enumerate() {
        let own = created.histograms.get(index).copied().unwrap_or(0);
        let start = if own != 0 { own } else { created.series };
        let t = match h {
            RawHistogram::Integer { timestamp, .. } | RawHistogram::Float { timestamp, .. } => {
                *timestamp
            }
        };
        if start != 0 && t != 0 && start != handed && start > previous {
            let result = match h {
                RawHistogram::Integer { histogram, .. } => {
                    appender.append_histogram_created_zero(&series, t, start, &histogram.to_float())
                }
                RawHistogram::Float { histogram, .. } => {
                    appender.append_histogram_created_zero(&series, t, start, histogram)
                }
            };
            log(result, start);
            handed = start;
        }
        previous = t;
    }
}

/// Stages a remote-write series' native histograms (integer ones checked
/// with Prometheus's rules, then stored in float form). An invalid
/// histogram fails the request with 400, as Prometheus 3 answers; one
/// the series limits refuse is noted in `refusals`. Returns how many were
/// staged and whether any was refused.
fn append_histograms(
    appender: &mut dyn model::storage::Appender,
    labels: &[(&str, &str)],
    histograms: &[RawHistogram],
    refusals: &mut Refusals,
) -> Result<(u64, bool), ApiError> {
    let series = Labels::from_pairs(labels.iter().copied());
    let mut refused = false;
    let mut stored = 0;
    for h in histograms {
        let result = match h {
            RawHistogram::Integer {
                timestamp,
                histogram,
            } => appender.append_int_histogram(&series, *timestamp, histogram),
            RawHistogram::Float {
                timestamp,
                histogram,
            } => appender.append_histogram(&series, *timestamp, histogram),
        };
        // A series limit refuses the series, as for its floats.
        if result.is_ok() {
            stored += 1;
        }
        if let Err(e) = result {
            refusals.note(e).map_err(|e| {
                ApiError::from_write(model::storage::StorageError::new(
                    e.kind(),
                    format!("{e} (series {series})"),
                ))
            })?;
            refused = true;
        }
    }
    Ok((stored, refused))
}

/// Stages a remote-write series' exemplars, as Prometheus's receiver: an
/// exemplar without a timestamp (0) has none of its own, and one that is
/// refused (out of order, labels too long, series unknown) is logged and
/// fails nothing, since exemplars never fail their samples. Returns how
/// many were staged.
fn append_exemplars(
    appender: &mut dyn model::storage::Appender,
    labels: &[(&str, &str)],
    exemplars: &[RawExemplar<'_>],
) -> u64 {
    let series = Labels::from_pairs(labels.iter().copied());
    let mut stored = 0;
    for raw in exemplars {
        let exemplar = model::exemplar::Exemplar {
            labels: Labels::from_pairs(raw.labels.iter().copied()),
            value: raw.value,
            timestamp_ms: raw.timestamp,
            has_timestamp: raw.timestamp != 0,
        };
        match appender.append_exemplar(&series, exemplar) {
            Ok(()) => stored += 1,
            Err(error) => tracing::debug!(%error, %series, "exemplar not stored"),
        }
    }
    stored
}

/// Labels added to (or replacing those of) every imported series, from
/// repeated `extra_label=name=value` parameters (VictoriaMetrics' form).
fn parse_extra_labels(params: &Params) -> Result<Vec<(String, String)>, ApiError> {
    let mut extra = Vec::new();
    for raw in params.all("extra_label") {
        let Some((name, value)) = raw.split_once('=') else {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"extra_label\": missing '=' in {raw:?}"
            )));
        };
        if name.is_empty() {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"extra_label\": empty label name in {raw:?}"
            )));
        }
        extra.push((name.to_string(), value.to_string()));
    }
    Ok(extra)
}

/// One imported series: its labels and its samples in body order.
pub type ImportSeries = (Labels, Vec<(i64, f64)>);

/// A text import body, parsed: each series once, and the samples in body
/// order, each naming its series by its place in `series`.
#[derive(Debug, Default)]
pub struct ParsedImport {
    pub series: Vec<Labels>,
    /// One list per piece of the body, in body order.
    pub samples: Vec<Vec<(u32, i64, f64)>>,
}

impl ParsedImport {
    /// Every series with its samples in body order, in order of first
    /// appearance (for tests and the fuzz target).
    pub fn grouped(&self) -> Vec<ImportSeries> {
        let mut out: Vec<ImportSeries> = self
            .series
            .iter()
            .map(|labels| (labels.clone(), Vec::new()))
            .collect();
        for &(i, t, v) in self.samples.iter().flatten() {
            out[i as usize].1.push((t, v));
        }
        out
    }

    /// How many samples the body holds.
    pub fn len(&self) -> usize {
        self.samples.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The smallest piece of an import body worth a thread of its own.
const MIN_IMPORT_PIECE_BYTES: usize = 1 << 20;

/// Parses a whole text exposition body into its series and samples:
/// timestamps are milliseconds, absent ones become `now_ms`; metadata and
/// exemplars are skipped. Any error refuses the whole body; it is the
/// first one in the body, with its line counted from the body's start.
///
/// A large body is cut at line ends into pieces that threads parse at
/// once (as many as `available_parallelism` says). Each piece looks a
/// sample's series up by its text as written, so the labels of a series
/// are parsed and checked once per piece, not once per line.
pub fn parse_import(
    body: &[u8],
    extra_labels: &[(String, String)],
    now_ms: i64,
) -> Result<ParsedImport, ApiError> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The request's own thread parses one piece; extra threads come from
    // a budget shared by all imports, one per CPU, so concurrent imports
    // do not multiply the server's threads.
    let extra = ParseThreads::take(cpus.saturating_sub(1));
    parse_import_on(
        body,
        extra_labels,
        now_ms,
        1 + extra.count,
        MIN_IMPORT_PIECE_BYTES,
    )
}

/// Extra parse threads in use by all imports at once.
static PARSE_THREADS_IN_USE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Extra parse threads taken from the shared budget (one per CPU less
/// one), given back on drop.
struct ParseThreads {
    count: usize,
}

impl ParseThreads {
    /// Up to `wanted` threads, as many as the budget has left (maybe none).
    fn take(wanted: usize) -> ParseThreads {
        use std::sync::atomic::Ordering;
        let mut count = 0;
        let _ = PARSE_THREADS_IN_USE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            count = wanted.saturating_sub(used);
            Some(used + count)
        });
        ParseThreads { count }
    }
}

impl Drop for ParseThreads {
    fn drop(&mut self) {
        PARSE_THREADS_IN_USE.fetch_sub(self.count, std::sync::atomic::Ordering::AcqRel);
    }
}

/// [`parse_import`] on up to `threads` threads, in pieces of at least
/// `min_piece` bytes (public for the fuzz target, which checks that the
/// pieces give what the whole body gives).
pub fn parse_import_on(
    body: &[u8],
    extra_labels: &[(String, String)],
    now_ms: i64,
    threads: usize,
    min_piece: usize,
) -> Result<ParsedImport, ApiError> {
    let pieces = split_at_lines(body, threads.min(body.len() / min_piece.max(1) + 1));
    if pieces.len() <= 1 {
        return parse_import_piece(body, false, extra_labels, now_ms)
            .map_err(|e| e.into_api_error(0));
    }
    let results: Vec<Result<ParsedImport, PieceError>> = std::thread::scope(|scope| {
        let others: Vec<_> = pieces[1..]
            .iter()
            .map(|piece| {
                let input = &body[piece.clone()];
                let more_follows = piece.end < body.len();
                scope.spawn(move || parse_import_piece(input, more_follows, extra_labels, now_ms))
            })
            .collect();
        let first = parse_import_piece(&body[pieces[0].clone()], true, extra_labels, now_ms);
        std::iter::once(first)
            .chain(
                others
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            )
            .collect()
    });
    // Number the pieces' series once across the body; the samples stay
    // in their pieces, in body order.
    let mut joined = ParsedImport::default();
    let mut index: HashMap<Labels, u32, FastBuildHasher> = HashMap::default();
    for (piece, result) in pieces.iter().zip(results) {
        let parsed = match result {
            Ok(parsed) => parsed,
            Err(error) => {
                let before = body[..piece.start].iter().filter(|&&b| b == b'\n').count();
                return Err(error.into_api_error(before));
            }
        };
        let mut numbers = Vec::with_capacity(parsed.series.len());
        for labels in parsed.series {
            let number = match index.get(&labels) {
                Some(&number) => number,
                None => {
                    let number = series_number(joined.series.len())?;
                    index.insert(labels.clone(), number);
                    joined.series.push(labels);
                    number
                }
            };
            numbers.push(number);
        }
        for mut samples in parsed.samples {
            for sample in &mut samples {
                sample.0 = numbers[sample.0 as usize];
            }
            joined.samples.push(samples);
        }
    }
    Ok(joined)
}

/// The number of the next series, refusing a body of more than 2^32 of
/// them.
fn series_number(count: usize) -> Result<u32, ApiError> {
    u32::try_from(count)
        .map_err(|_| ApiError::bad_data("cannot parse body: more than 4294967295 series"))
}

/// Why a piece of an import body was refused.
enum PieceError {
    /// A syntax error, its line counted within the piece.
    Parse(ParseError),
    /// A series the syntax allows but the store does not.
    Series(String),
}

impl PieceError {
    /// The answer, `before` being the lines of the body before the piece.
    fn into_api_error(self, before: usize) -> ApiError {
        match self {
            PieceError::Parse(mut e) => {
                e.line += before;
                ApiError::bad_data(format!("cannot parse body: {e}"))
            }
            PieceError::Series(message) => ApiError::bad_data(message),
        }
    }
}

/// Parses one piece of an import body (see [`Parser::fragment`]): its
/// series in order of first appearance and its samples in order.
fn parse_import_piece(
    input: &[u8],
    more_follows: bool,
    extra_labels: &[(String, String)],
    now_ms: i64,
) -> Result<ParsedImport, PieceError> {
    let mut parser = Parser::fragment(input, Format::Text, more_follows).reuse_series();
    // Series text as written -> series number; two spellings of one label
    // set (label order, or labels an extra label replaces) share a number
    // through `by_labels`.
    let mut by_text: HashMap<&[u8], u32, FastBuildHasher> = HashMap::default();
    let mut by_labels: HashMap<Labels, u32, FastBuildHasher> = HashMap::default();
    let mut series: Vec<Labels> = Vec::new();
    // Sized for lines of 64 bytes: pages never written cost nothing, and
    // the list rarely has to move.
    let mut samples: Vec<(u32, i64, f64)> = Vec::with_capacity(input.len() / 64);
    let mut last: Option<(&[u8], u32)> = None;
    while let Some(entry) = parser.next_lazy() {
        let LazyEntry::Sample(sample) = entry.map_err(PieceError::Parse)? else {
            continue;
        };
        let text = sample.series();
        // Lines of one series often come one after another: compare with
        // the last line's series before hashing.
        let cached = match last {
            Some((last_text, i)) if last_text == text => Some(i),
            _ => by_text.get(text).copied(),
        };
        let i = match cached {
            Some(i) => i,
            None => {
                let labels = import_labels(&sample, extra_labels)?;
                let i = match by_labels.get(&labels) {
                    Some(&i) => i,
                    None => {
                        let i = u32::try_from(series.len()).map_err(|_| {
                            PieceError::Series(
                                "cannot parse body: more than 4294967295 series".to_string(),
                            )
                        })?;
                        by_labels.insert(labels.clone(), i);
                        series.push(labels);
                        i
                    }
                };
                by_text.insert(text, i);
                i
            }
        };
        last = Some((text, i));
        samples.push((i, sample.timestamp_ms.unwrap_or(now_ms), sample.value));
    }
    Ok(ParsedImport {
        series,
        samples: vec![samples],
    })
}

/// Parses and checks a sample's series, the first time its text is met,
/// and applies the extra labels.
fn import_labels(
    sample: &LazySample<'_>,
    extra_labels: &[(String, String)],
) -> Result<Labels, PieceError> {
    let (name, labels) = sample.parse_series().map_err(PieceError::Parse)?;
    let mut names: Vec<&str> = labels.iter().map(|(n, _)| n.as_ref()).collect();
    names.push(METRIC_NAME);
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(PieceError::Series(format!(
            "cannot parse body: duplicate label name {:?} in series {name:?}",
            pair[0]
        )));
    }
    let mut series = sample_labels(&name, &labels);
    if !extra_labels.is_empty() {
        let mut builder = LabelsBuilder::from_labels(&series);
        for (n, v) in extra_labels {
            builder.set(n.clone(), v.clone());
        }
        series = builder.build();
    }
    if series.metric_name().is_none_or(str::is_empty) {
        return Err(PieceError::Series(format!(
            "cannot parse body: series {series} has no metric name"
        )));
    }
    Ok(series)
}

/// How an import stages a series' next sample.
enum Staging {
    /// Not staged yet: the first sample goes by labels, which gives the
    /// handle.
    First,
    /// By the store's handle (no label lookup).
    Handle(model::storage::SeriesHandle),
    /// By labels: the store gives no handles.
    Labels,
}

/// Stages every imported sample in one appender, in body order, and
/// commits once: a series' first sample by its labels, the rest by the
/// handle the store gave for it. On any error the appender is rolled
/// back, so nothing of the body is stored.
fn append_import(
    storage: &dyn Appendable,
    origin: &WriteOrigin,
    parsed: &ParsedImport,
) -> Result<(), ApiError> {
    let mut appender = storage.appender();
    appender.set_origin(origin);
    appender.reserve(parsed.len());
    let mut staging: Vec<Staging> = parsed.series.iter().map(|_| Staging::First).collect();
    let mut stage = || -> Result<(), StorageError> {
        for &(i, t, v) in parsed.samples.iter().flatten() {
            let i = i as usize;
            let labels = &parsed.series[i];
            match &staging[i] {
                Staging::Handle(handle) => {
                    if !appender.append_handle(handle, t, v)? {
                        appender.append(labels, t, v)?;
                        staging[i] = Staging::Labels;
                    }
                }
                Staging::Labels => appender.append(labels, t, v)?,
                Staging::First => {
                    staging[i] = match appender.append_with_handle(labels, t, v)? {
                        Some(handle) => Staging::Handle(handle),
                        None => Staging::Labels,
                    };
                }
            }
        }
        Ok(())
    };
    if let Err(e) = stage() {
        appender.rollback();
        return Err(ApiError::from_write(e));
    }
    appender.commit().map_err(ApiError::from_write)
}

/// `POST /api/v1/import/prometheus`: Prometheus text exposition with
/// optional millisecond timestamps (VictoriaMetrics' convention). Answers
/// 204 once everything is committed, 400 naming line and column on a parse
/// error, with nothing stored.
pub(crate) async fn import_prometheus(State(state): State<AppState>, request: Request) -> Response {
    let params = Params::parse(request.uri().query(), None);
    let origin = sender_origin(&request);
    let result = async {
        let extra_labels = parse_extra_labels(&params)?;
        let body = read_body_bytes(
            request.into_body(),
            state.config().max_import_body_bytes,
            true,
        )
        .await?;
        let now_ms = state.now_ms();
        let storage = state.appendable();
        crate::write_pool::run(move || {
            let parsed = parse_import(&body, &extra_labels, now_ms)?;
            drop(body);
            append_import(storage.as_ref(), &origin, &parsed)
        })
        .await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::exposition::Entry;

    /// What the import must give: every sample parsed by the iterator, its
    /// labels built in full, grouped per label set in order of first
    /// appearance.
    fn reference(body: &[u8], extra: &[(String, String)], now_ms: i64) -> Vec<ImportSeries> {
        let mut out: Vec<ImportSeries> = Vec::new();
        for entry in Parser::new(body, Format::Text) {
            let Entry::Sample {
                name,
                labels,
                value,
                timestamp_ms,
                ..
            } = entry.unwrap()
            else {
                continue;
            };
            let mut builder = LabelsBuilder::from_labels(&sample_labels(&name, &labels));
            for (n, v) in extra {
                builder.set(n.clone(), v.clone());
            }
            let series = builder.build();
            let sample = (timestamp_ms.unwrap_or(now_ms), value);
            match out.iter_mut().find(|(l, _)| *l == series) {
                Some((_, samples)) => samples.push(sample),
                None => out.push((series, vec![sample])),
            }
        }
        out
    }

    /// A body with series written line after line, series interleaved per
    /// timestamp, one label set in two spellings, escapes, metadata,
    /// comments, `\r\n` ends and samples without a timestamp.
    fn body() -> String {
        let mut body = String::from("# HELP m A metric.\n# TYPE m counter\n");
        for k in 0..40 {
            for t in 0..30 {
                body.push_str(&format!("m{{k=\"{k}\",a=\"x\"}} {t}.5 {}\n", 1000 + t * 15));
            }
        }
        for t in 0..200 {
            for cpu in 0..8 {
                body.push_str(&format!(
                    "cpu{{cpu=\"{cpu}\",mode=\"a\\\"b\\\\c\\n\"}} {} {}\r\n",
                    t * cpu,
                    t * 1000
                ));
            }
            // The same series in the other label order.
            body.push_str(&format!("pair{{b=\"2\",a=\"1\"}} {t} {}\n", 2 * t));
            body.push_str(&format!("pair{{a=\"1\",b=\"2\"}} -{t} {}\n", 2 * t + 1));
            if t % 50 == 0 {
                body.push_str("# a comment\n\nnow_sample 7\n");
            }
        }
        body
    }

    #[test]
    fn pieces_give_the_entries_of_the_whole_body() {
        let body = body();
        let extra = [("env".to_string(), "prod".to_string())];
        for extra in [&[][..], &extra[..]] {
            let want = reference(body.as_bytes(), extra, 42);
            assert!(want.len() > 40, "{}", want.len());
            for (threads, min_piece) in [(1, 1 << 20), (2, 64), (4, 64), (7, 1000), (64, 1)] {
                let got = parse_import_on(body.as_bytes(), extra, 42, threads, min_piece)
                    .unwrap()
                    .grouped();
                // The same series, each with the same samples in order.
                assert_eq!(got.len(), want.len(), "{threads} threads");
                for (series, samples) in &want {
                    let found = got.iter().find(|(l, _)| l == series).unwrap();
                    let bits = |s: &[(i64, f64)]| -> Vec<(i64, u64)> {
                        s.iter().map(|&(t, v)| (t, v.to_bits())).collect()
                    };
                    assert_eq!(bits(&found.1), bits(samples), "{series}, {threads} threads");
                }
            }
        }
    }

    #[test]
    fn the_first_error_of_the_body_is_reported_with_its_line() {
        let good = body();
        let lines = good.lines().count();
        // A syntax error late in the body, after a duplicate label early in
        // a later piece: each is found, in body order, with its line.
        let with_syntax = format!("{good}ok 1\nbad{{ 1\n{good}");
        let with_both = format!("{good}x{{a=\"1\",a=\"2\"}} 1\n{with_syntax}");
        for (threads, min_piece) in [(1, 1 << 20), (2, 64), (4, 64), (64, 1)] {
            let e = parse_import_on(with_syntax.as_bytes(), &[], 0, threads, min_piece)
                .err()
                .unwrap();
            assert!(
                e.message
                    .starts_with(&format!("cannot parse body: line {}, column", lines + 2)),
                "{threads}: {}",
                e.message
            );
            let e = parse_import_on(with_both.as_bytes(), &[], 0, threads, min_piece)
                .err()
                .unwrap();
            assert!(
                e.message
                    .starts_with(&format!("cannot parse body: line {}, column", lines + 1))
                    && e.message.contains("duplicate label name \"a\""),
                "{threads}: {}",
                e.message
            );
        }
        // A `__name__` label beside the name is a duplicate.
        let e = parse_import_on(b"m{__name__=\"n\"} 1\n", &[], 0, 1, 1)
            .err()
            .unwrap();
        assert!(
            e.message.contains("duplicate label name \"__name__\""),
            "{}",
            e.message
        );
    }
}
