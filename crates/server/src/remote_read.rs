//! `POST /api/v1/read`: Prometheus's remote read, so a Prometheus (or
//! Thanos, or any remote-read client) can use osprey as a `remote_read`
//! store. The wire formats are `remote::read`'s; this is the policy:
//!
//! - Matchers equal to one of the configuration's `external_labels` are
//!   dropped before selecting (osprey's series do not carry them), and the
//!   external labels are added to every series returned, the series's own
//!   value winning, as Prometheus's read handler does.
//! - `SAMPLES`: every sample in `[start, end]` (staleness markers
//!   included), float and native histogram (in float form), at most
//!   [`SAMPLE_LIMIT`] of both over the request, as one snappy-compressed
//!   `ReadResponse`.
//! - `STREAMED_XOR_CHUNKS`: per query, per series (sorted by labels), XOR
//!   chunks of at most [`SAMPLES_PER_CHUNK`] samples, grouped into frames
//!   of about [`FRAME_BYTES`]; a series larger than that spans several
//!   frames. Streamed from a blocking task, so memory stays bounded.
//!   Native histograms go as Prometheus's own histogram chunk encodings
//!   (`HISTOGRAM`, `FLOAT_HISTOGRAM`), written by
//!   `tsdb::chunkenc::prom_hist`; a series's histograms are held in memory
//!   while its chunks are written.

use std::io;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use model::storage::{Series, Storage};
use model::{Labels, MatchOp, Matcher};
use remote::read::{
    Chunk, ChunkEncoding, ChunkedReadResponse, ChunkedSeries, QueryResult, ReadRequest,
    ReadResponse, ReadSeries, RemoteReadError, ResponseType,
};
use remote::{Label, RemoteWriteError, Sample};
use tokio::sync::{mpsc, oneshot};
use tsdb::chunkenc::XorAppender;

use crate::export::ChunkStream;
use crate::ingest::read_body_limited;
use crate::{ApiError, AppState, ErrorType};

/// Most samples one `SAMPLES` request may return (Prometheus's
/// `--storage.remote.read-sample-limit` default); 0 would mean no limit.
pub const SAMPLE_LIMIT: usize = 50_000_000;

/// Samples per XOR chunk of a streamed answer, as Prometheus's head cuts.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// A streamed frame is sent once its chunks reach this many bytes
/// (Prometheus's `--storage.remote.read-max-bytes-in-frame` default).
pub const FRAME_BYTES: usize = 1 << 20;

/// Frames buffered between the storage task and the socket.
const CHANNEL_FRAMES: usize = 4;

impl From<RemoteReadError> for ApiError {
    fn from(e: RemoteReadError) -> ApiError {
        match e {
            RemoteReadError::Body(RemoteWriteError::TooLarge { .. }) => {
                ApiError::new(ErrorType::TooLarge, e.to_string())
            }
            other => ApiError::bad_data(other.to_string()),
        }
    }
}

/// A decoded request, ready to run.
struct Prepared {
    /// Per query: range and matchers (external-label matchers removed).
    queries: Vec<(i64, i64, Vec<Matcher>)>,
    response_type: ResponseType,
    /// Sorted by name.
    external: Vec<(String, String)>,
}

/// `POST /api/v1/read`.
pub(crate) async fn read(State(state): State<AppState>, request: Request) -> Response {
    let prepared = async {
        let config = state.config();
        let body =
            read_body_limited(request.into_body(), config.max_remote_write_body_bytes).await?;
        let request =
            remote::read::decode_read_request(&body, config.max_remote_write_decompressed_bytes)?;
        let mut external = state
            .current_config()
            .map(|c| c.global.external_labels.clone())
            .unwrap_or_default();
        external.sort();
        prepare(&request, external).map_err(ApiError::from)
    }
    .await;
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let storage = state.storage().clone();
    match prepared.response_type {
        ResponseType::Samples => {
            let answered =
                tokio::task::spawn_blocking(move || samples_response(storage.as_ref(), &prepared))
                    .await;
            match answered {
                Ok(Ok(body)) => (
                    [
                        (header::CONTENT_TYPE, remote::read::SAMPLES_CONTENT_TYPE),
                        (header::CONTENT_ENCODING, "snappy"),
                    ],
                    body,
                )
                    .into_response(),
                Ok(Err(e)) => e.into_response(),
                Err(e) => {
                    ApiError::internal(format!("remote read task failed: {e}")).into_response()
                }
            }
        }
        ResponseType::StreamedXorChunks => {
            let (ready_sender, ready_receiver) = oneshot::channel();
            let (frame_sender, frame_receiver) = mpsc::channel(CHANNEL_FRAMES);
            tokio::task::spawn_blocking(move || {
                stream_chunks(storage.as_ref(), &prepared, ready_sender, frame_sender);
            });
            match ready_receiver.await {
                Ok(Ok(())) => (
                    [(header::CONTENT_TYPE, remote::read::STREAMED_CONTENT_TYPE)],
                    Body::from_stream(ChunkStream::new(frame_receiver)),
                )
                    .into_response(),
                Ok(Err(e)) => e.into_response(),
                Err(_) => {
                    ApiError::internal("remote read task ended before starting").into_response()
                }
            }
        }
    }
}

fn prepare(
    request: &ReadRequest,
    external: Vec<(String, String)>,
) -> Result<Prepared, RemoteReadError> {
    let response_type = remote::read::negotiate(request)?;
    let mut queries = Vec::with_capacity(request.queries.len());
    for (i, query) in request.queries.iter().enumerate() {
        let matchers = remote::read::query_matchers(query, i)?
            .into_iter()
            .filter(|m| {
                let is_external = m.op() == MatchOp::Equal
                    && external
                        .iter()
                        .any(|(name, value)| m.name() == name && m.value() == value);
                !is_external
            })
            .collect();
        queries.push((query.start_timestamp_ms, query.end_timestamp_ms, matchers));
    }
    Ok(Prepared {
        queries,
        response_type,
        external,
    })
}

/// `labels` with `external` added where missing, sorted by name.
fn with_external(labels: &Labels, external: &[(String, String)]) -> Vec<Label> {
    let mut out: Vec<Label> = labels
        .iter()
        .map(|l| Label {
            name: l.name.as_str().to_string(),
            value: l.value.as_str().to_string(),
        })
        .collect();
    for (name, value) in external {
        if labels.get(name).is_none() {
            out.push(Label {
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn sample_limit_exceeded() -> ApiError {
    ApiError::bad_data(format!("exceeded sample limit ({SAMPLE_LIMIT})"))
}

/// Runs every query and encodes the `SAMPLES` answer.
fn samples_response(storage: &dyn Storage, prepared: &Prepared) -> Result<Vec<u8>, ApiError> {
    let mut response = ReadResponse::default();
    let mut total = 0usize;
    for (start, end, matchers) in &prepared.queries {
        let querier = storage.querier(*start, *end).map_err(ApiError::from_read)?;
        let mut result = QueryResult::default();
        for series in querier.select(matchers).map_err(ApiError::from_read)? {
            let series = series.map_err(ApiError::from_read)?;
            let mut samples = Vec::new();
            for (t, v) in series.samples {
                total += 1;
                if SAMPLE_LIMIT > 0 && total > SAMPLE_LIMIT {
                    return Err(sample_limit_exceeded());
                }
                samples.push(Sample {
                    value: v,
                    timestamp: t,
                });
            }
            let mut histograms = Vec::new();
            for (t, h) in series.histograms {
                total += 1;
                if SAMPLE_LIMIT > 0 && total > SAMPLE_LIMIT {
                    return Err(sample_limit_exceeded());
                }
                histograms.push(remote::Histogram::from_float(t, &h));
            }
            result.timeseries.push(ReadSeries {
                labels: with_external(&series.labels, &prepared.external),
                samples,
                histograms,
            });
        }
        response.results.push(result);
    }
    Ok(remote::read::encode_read_response(&response))
}

/// Runs every query, reports on `ready` whether the first could be
/// selected, then sends the frames until done or the client goes away.
fn stream_chunks(
    storage: &dyn Storage,
    prepared: &Prepared,
    ready: oneshot::Sender<Result<(), ApiError>>,
    frames: mpsc::Sender<Result<Bytes, io::Error>>,
) {
    let mut ready = Some(ready);
    for (index, (start, end, matchers)) in prepared.queries.iter().enumerate() {
        let selected = storage
            .querier(*start, *end)
            .map_err(ApiError::from_read)
            .and_then(|querier| {
                let set = querier.select(matchers).map_err(ApiError::from_read)?;
                Ok((querier, set))
            });
        let (_querier, set) = match selected {
            Ok(s) => s,
            Err(e) => {
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Err(e));
                    }
                    None => {
                        let _ = frames.blocking_send(Err(io::Error::other(e.to_string())));
                    }
                }
                return;
            }
        };
        if let Some(ready) = ready.take()
            && ready.send(Ok(())).is_err()
        {
            return;
        }
        for series in set {
            let sent = series
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|series| send_series(series, index as i64, &prepared.external, &frames));
            match sent {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "remote read aborted by a storage error");
                    let _ = frames.blocking_send(Err(e));
                    return;
                }
            }
        }
    }
    if let Some(ready) = ready.take() {
        // No queries: an empty, successful stream.
        let _ = ready.send(Ok(()));
    }
}

/// Moves the samples of `appender` into a new chunk at the end of
/// `chunks`, leaving it empty; returns the chunk's size in bytes.
fn close_chunk(appender: &mut XorAppender, chunk_start: i64, chunks: &mut Vec<Chunk>) -> usize {
    let full = std::mem::take(appender);
    let data = full.bytes().to_vec();
    let size = data.len();
    chunks.push(Chunk {
        min_time_ms: chunk_start,
        max_time_ms: full.last_time().unwrap_or(chunk_start),
        r#type: ChunkEncoding::Xor as i32,
        data,
    });
    size
}

/// Sends one series as frames; `Ok(false)` when the client went away.
/// Floats go as XOR chunks, streamed as they are read; histograms as
/// Prometheus's histogram chunks (`tsdb::chunkenc::prom_hist`), encoded
/// once the series's histograms are read. A series holding both kinds
/// (its type changed) has all its chunks sorted by start time first.
fn send_series(
    series: Series,
    query_index: i64,
    external: &[(String, String)],
    frames: &mpsc::Sender<Result<Bytes, io::Error>>,
) -> Result<bool, io::Error> {
    let labels = with_external(&series.labels, external);
    let histograms: Vec<(i64, model::histogram::FloatHistogram)> = series.histograms.collect();
    let histogram_chunks = tsdb::chunkenc::prom_hist::encode(&histograms);
    drop(histograms);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut chunk_bytes = 0usize;
    let mut appender = XorAppender::new();
    let mut chunk_start = 0i64;
    let send = |chunks: Vec<Chunk>| -> bool {
        let mut out = Vec::new();
        remote::read::write_frame(
            &ChunkedReadResponse {
                chunked_series: vec![ChunkedSeries {
                    labels: labels.clone(),
                    chunks,
                }],
                query_index,
            },
            &mut out,
        );
        frames.blocking_send(Ok(Bytes::from(out))).is_ok()
    };
    // Floats alone stream frame by frame; with histograms beside them
    // every chunk is held until the order is known.
    let hold = !histogram_chunks.is_empty();
    for (t, v) in series.samples {
        if appender.num_samples() == 0 {
            chunk_start = t;
        }
        appender.append(t, v);
        if appender.num_samples() == SAMPLES_PER_CHUNK {
            chunk_bytes += close_chunk(&mut appender, chunk_start, &mut chunks);
            if !hold && chunk_bytes >= FRAME_BYTES {
                if !send(std::mem::take(&mut chunks)) {
                    return Ok(false);
                }
                chunk_bytes = 0;
            }
        }
    }
    if appender.num_samples() > 0 {
        close_chunk(&mut appender, chunk_start, &mut chunks);
    }
    if hold {
        let mixed = !chunks.is_empty();
        chunks.extend(histogram_chunks.into_iter().map(|c| Chunk {
            min_time_ms: c.min_time,
            max_time_ms: c.max_time,
            r#type: match c.encoding {
                tsdb::chunkenc::prom_hist::PromHistEncoding::Histogram => {
                    ChunkEncoding::Histogram as i32
                }
                tsdb::chunkenc::prom_hist::PromHistEncoding::FloatHistogram => {
                    ChunkEncoding::FloatHistogram as i32
                }
            },
            data: c.bytes,
        }));
        if mixed {
            chunks.sort_by_key(|c| c.min_time_ms);
        }
        // Frames of about FRAME_BYTES each.
        let mut frame: Vec<Chunk> = Vec::new();
        let mut frame_bytes = 0usize;
        for chunk in chunks {
            frame_bytes += chunk.data.len();
            frame.push(chunk);
            if frame_bytes >= FRAME_BYTES {
                if !send(std::mem::take(&mut frame)) {
                    return Ok(false);
                }
                frame_bytes = 0;
            }
        }
        chunks = frame;
    }
    if !chunks.is_empty() && !send(chunks) {
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::storage::Appendable;
    use remote::read::{LabelMatcher, MatcherType, Query};
    use tsdb::chunkenc::{Encoding, decode_all};

    fn request(types: Vec<i32>, matchers: Vec<LabelMatcher>, start: i64, end: i64) -> ReadRequest {
        ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: start,
                end_timestamp_ms: end,
                matchers,
                hints: None,
            }],
            accepted_response_types: types,
        }
    }

    fn matcher(kind: MatcherType, name: &str, value: &str) -> LabelMatcher {
        LabelMatcher {
            r#type: kind as i32,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn external_label_matchers_are_dropped_and_labels_added() {
        let external = vec![("site".to_string(), "lab".to_string())];
        let req = request(
            vec![],
            vec![
                matcher(MatcherType::Eq, "site", "lab"),
                matcher(MatcherType::Eq, "__name__", "up"),
            ],
            0,
            10,
        );
        let prepared = prepare(&req, external.clone()).unwrap();
        assert_eq!(prepared.queries[0].2.len(), 1);
        assert_eq!(prepared.queries[0].2[0].name(), "__name__");
        let labels = Labels::from_pairs([("__name__", "up"), ("zone", "z")]);
        let names: Vec<String> = with_external(&labels, &external)
            .into_iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect();
        assert_eq!(names, ["__name__=up", "site=lab", "zone=z"]);
        // A matcher on the external label with another value stays, and
        // selects nothing from osprey's own series.
        let other = request(vec![], vec![matcher(MatcherType::Eq, "site", "x")], 0, 10);
        assert_eq!(prepare(&other, external).unwrap().queries[0].2.len(), 1);
    }

    /// Streams 1,000 samples of two series and decodes the frames back.
    #[test]
    fn streamed_chunks_hold_every_sample() {
        let storage = crate::testing::test_storage();
        let mut appender = storage.appender();
        let mut expected = Vec::new();
        for i in 0..1000i64 {
            let v = (i as f64).sin() * 1e3;
            appender
                .append(
                    &Labels::from_pairs([("__name__", "a"), ("k", "1")]),
                    i * 15_000,
                    v,
                )
                .unwrap();
            expected.push((i * 15_000, v));
        }
        appender
            .append(&Labels::from_pairs([("__name__", "a"), ("k", "2")]), 5, 1.0)
            .unwrap();
        appender.commit().unwrap();
        drop(appender);
        let req = request(
            vec![ResponseType::StreamedXorChunks as i32],
            vec![matcher(MatcherType::Eq, "__name__", "a")],
            0,
            i64::MAX,
        );
        let prepared = prepare(&req, Vec::new()).unwrap();
        let (ready, ready_rx) = oneshot::channel();
        let (frames, mut frames_rx) = mpsc::channel(10_000);
        stream_chunks(storage.as_ref(), &prepared, ready, frames);
        assert!(matches!(ready_rx.blocking_recv(), Ok(Ok(()))));
        let mut body = Vec::new();
        while let Ok(frame) = frames_rx.try_recv() {
            body.extend_from_slice(&frame.unwrap());
        }
        let frames = remote::read::read_frames(&body).unwrap();
        // Per series: its labels, its samples, its number of chunks.
        type Decoded = (String, Vec<(i64, f64)>, usize);
        let mut by_series: Vec<Decoded> = Vec::new();
        for frame in frames {
            assert_eq!(frame.query_index, 0);
            for series in frame.chunked_series {
                let key = series
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect::<Vec<_>>()
                    .join(",");
                if by_series.last().is_none_or(|s| s.0 != key) {
                    by_series.push((key, Vec::new(), 0));
                }
                let entry = by_series.last_mut().unwrap();
                for chunk in series.chunks {
                    let samples = decode_all(Encoding::Xor, &chunk.data).unwrap();
                    assert!(samples.len() <= SAMPLES_PER_CHUNK);
                    assert_eq!(chunk.min_time_ms, samples[0].0);
                    assert_eq!(chunk.max_time_ms, samples[samples.len() - 1].0);
                    entry.1.extend(samples);
                    entry.2 += 1;
                }
            }
        }
        assert_eq!(by_series.len(), 2);
        assert_eq!(by_series[0].0, "__name__=a,k=1");
        assert_eq!(by_series[0].1, expected);
        assert_eq!(by_series[0].2, 1000usize.div_ceil(SAMPLES_PER_CHUNK));
        assert_eq!(by_series[1].1, vec![(5, 1.0)]);
    }

    #[test]
    fn sample_answers_carry_every_query() {
        let storage = crate::testing::test_storage();
        let mut appender = storage.appender();
        for t in 0..5 {
            appender
                .append(&Labels::from_pairs([("__name__", "b")]), t, t as f64)
                .unwrap();
        }
        appender.commit().unwrap();
        drop(appender);
        let mut req = request(
            vec![],
            vec![matcher(MatcherType::Eq, "__name__", "b")],
            1,
            3,
        );
        req.queries.push(Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 0,
            matchers: vec![matcher(MatcherType::Re, "__name__", "b|c")],
            hints: None,
        });
        let prepared = prepare(&req, Vec::new()).unwrap();
        let body = samples_response(storage.as_ref(), &prepared).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let response = <ReadResponse as prost::Message>::decode(raw.as_slice()).unwrap();
        let times: Vec<Vec<i64>> = response
            .results
            .iter()
            .map(|r| {
                r.timeseries
                    .iter()
                    .flat_map(|s| s.samples.iter().map(|x| x.timestamp))
                    .collect()
            })
            .collect();
        assert_eq!(times, vec![vec![1, 2, 3], vec![0]]);
    }

    /// A TSDB (the test storage keeps floats only) holding the histogram
    /// series `latency` at 1 s, 2 s and 3 s, and what it hands out.
    fn histogram_db(
        dir: &std::path::Path,
    ) -> (tsdb::Db, Vec<(i64, model::histogram::FloatHistogram)>) {
        use model::histogram::{CounterResetHint, FloatHistogram, Span};
        use model::storage::Queryable;
        let storage = tsdb::Db::open(
            dir,
            tsdb::DbOptions {
                retention_time_ms: None,
                retention_size_bytes: None,
                block_range_ms: 7_200_000,
                wal_segment_size: 1 << 16,
                fsync: false,
            },
        )
        .unwrap();
        let labels = Labels::from_pairs([("__name__", "latency")]);
        let mut appender = storage.appender();
        for t in 1..=3i64 {
            let h = FloatHistogram {
                counter_reset_hint: CounterResetHint::Unknown,
                schema: 0,
                zero_threshold: 0.001,
                zero_count: 1.0,
                count: 1.0 + 3.0 * t as f64,
                sum: 2.5 * t as f64,
                positive_spans: vec![Span {
                    offset: 0,
                    length: 2,
                }],
                positive_buckets: vec![t as f64, 2.0 * t as f64],
                ..FloatHistogram::default()
            };
            appender.append_histogram(&labels, t * 1000, &h).unwrap();
        }
        // A float series beside it.
        appender
            .append(
                &Labels::from_pairs([("__name__", "latency_floats")]),
                1000,
                1.0,
            )
            .unwrap();
        appender.commit().unwrap();
        drop(appender);
        let stored: Vec<(i64, FloatHistogram)> = storage
            .querier(0, 10_000)
            .unwrap()
            .select(&[model::Matcher::equal("__name__", "latency")])
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .histograms
            .collect();
        assert_eq!(stored.len(), 3);
        (storage, stored)
    }

    fn latency_request(kind: ResponseType) -> Prepared {
        let req = request(
            vec![kind as i32],
            vec![matcher(MatcherType::Re, "__name__", "latency.*")],
            0,
            10_000,
        );
        prepare(&req, Vec::new()).unwrap()
    }

    /// A `SAMPLES` answer carries a series's histograms beside its floats,
    /// and osprey's own client reads them back unchanged.
    #[test]
    fn sample_answers_carry_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, stored) = histogram_db(dir.path());
        let body = samples_response(&storage, &latency_request(ResponseType::Samples)).unwrap();
        let decoded = remote::read_client::decode_samples(&body).unwrap();
        assert_eq!(decoded.len(), 2);
        assert!(decoded[0].samples.is_empty());
        assert_eq!(decoded[0].histograms, stored);
        assert_eq!(decoded[1].samples, vec![(1000, 1.0)]);
    }

    /// A streamed answer carries histograms as Prometheus's histogram
    /// chunks, which osprey's client reads back to what the store holds
    /// (the hints as Prometheus's chunk reader hands them out).
    #[test]
    fn streamed_answers_carry_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, stored) = histogram_db(dir.path());
        let (ready, ready_rx) = oneshot::channel();
        let (frames, mut frames_rx) = mpsc::channel(100);
        stream_chunks(
            &storage,
            &latency_request(ResponseType::StreamedXorChunks),
            ready,
            frames,
        );
        assert!(matches!(ready_rx.blocking_recv(), Ok(Ok(()))));
        let mut body = Vec::new();
        while let Ok(frame) = frames_rx.try_recv() {
            body.extend_from_slice(&frame.unwrap());
        }
        let types: Vec<i32> = remote::read::read_frames(&body)
            .unwrap()
            .iter()
            .flat_map(|f| {
                f.chunked_series
                    .iter()
                    .flat_map(|s| s.chunks.iter().map(|c| c.r#type))
            })
            .collect();
        assert_eq!(
            types,
            vec![ChunkEncoding::Histogram as i32, ChunkEncoding::Xor as i32]
        );
        let decoded = remote::read_client::decode_streamed(&body).unwrap();
        assert_eq!(decoded.len(), 2);
        let strip = |v: &[(i64, model::histogram::FloatHistogram)]| {
            v.iter()
                .map(|(t, h)| {
                    let mut h = h.clone();
                    h.counter_reset_hint = model::histogram::CounterResetHint::Unknown;
                    (*t, h)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&decoded[0].histograms), strip(&stored));
        assert_eq!(decoded[1].samples, vec![(1000, 1.0)]);
    }
}
