//! `GET|POST /api/v1/export`: raw samples as newline-delimited JSON, one
//! object per series, in VictoriaMetrics' shape:
//!
//! ```text
//! {"metric":{"__name__":"up","job":"a"},"values":[1,0.5],"timestamps":[1700000000000,1700000015000]}
//! ```
//!
//! Values must read back bit for bit, so they are written as follows:
//! finite values as JSON numbers in the shortest form that parses back to
//! the same `f64` (`0.30000000000000004`, `1e-300`, `-0.0`); non-finite
//! values as strings: `"NaN"`, `"+Inf"`, `"-Inf"`, and `"StaleNaN"` for
//! Prometheus's staleness marker (bits `0x7ff0000000000002`). Every other
//! NaN payload is written as `"NaN"` and reads back as the canonical NaN.
//! [`parse_export_value`] is the inverse.
//!
//! The body is streamed: a blocking task walks the series and hands chunks
//! of about 64 KiB to the response through a channel of four, so memory is
//! bounded however much is exported (plus the timestamps of one series,
//! held back while its values are written).

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use model::storage::{Series, SeriesSet, Storage};
use model::{Matcher, STALE_NAN, is_stale_nan};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::api::read_params;
use crate::{ApiError, AppState};

/// Size at which a chunk is handed to the response. Big enough that the
/// per-chunk overhead of a channel send and an HTTP chunk is negligible,
/// small enough that four in flight take little memory.
const CHUNK_BYTES: usize = 64 << 10;

/// Chunks buffered between the storage task and the socket.
const CHANNEL_CHUNKS: usize = 4;

/// Content type VictoriaMetrics uses for this format.
const EXPORT_CONTENT_TYPE: &str = "application/stream+json";

/// Appends the export representation of `v` to `out`.
pub fn write_export_value(v: f64, out: &mut Vec<u8>) {
    if v.is_finite() {
        // serde_json writes finite floats in ryu's shortest round-trip form.
        if serde_json::to_writer(&mut *out, &v).is_err() {
            out.extend_from_slice(b"null");
        }
    } else if is_stale_nan(v) {
        out.extend_from_slice(b"\"StaleNaN\"");
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"+Inf\"");
    } else {
        out.extend_from_slice(b"\"-Inf\"");
    }
}

/// Reads a value written by [`write_export_value`] back.
pub fn parse_export_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "StaleNaN" => Some(STALE_NAN),
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A response body fed by a blocking task through a channel.
pub(crate) struct ChunkStream {
    receiver: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl ChunkStream {
    pub(crate) fn new(receiver: mpsc::Receiver<Result<Bytes, io::Error>>) -> ChunkStream {
        ChunkStream { receiver }
    }
}

impl futures_core::Stream for ChunkStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

/// `GET|POST /api/v1/export`.
pub(crate) async fn export(State(state): State<AppState>, request: Request) -> Response {
    let prepared = async {
        let params = read_params(request).await?;
        let sets = params.matcher_sets(true)?;
        let (start, end) = params.time_range()?;
        Ok::<_, ApiError>((sets, start, end))
    }
    .await;
    let (sets, start, end) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (ready_sender, ready_receiver) = oneshot::channel();
    let (chunk_sender, chunk_receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let storage = state.storage().clone();
    tokio::task::spawn_blocking(move || {
        export_blocking(
            storage.as_ref(),
            &sets,
            start,
            end,
            ready_sender,
            chunk_sender,
        );
    });
    match ready_receiver.await {
        Ok(Ok(())) => (
            [(header::CONTENT_TYPE, EXPORT_CONTENT_TYPE)],
            Body::from_stream(ChunkStream {
                receiver: chunk_receiver,
            }),
        )
            .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::internal("export task ended before starting").into_response(),
    }
}

/// Selects the series, reports whether that worked on `ready`, then writes
/// them chunk by chunk until done or until the client goes away.
fn export_blocking(
    storage: &dyn Storage,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
    ready: oneshot::Sender<Result<(), ApiError>>,
    chunks: mpsc::Sender<Result<Bytes, io::Error>>,
) {
    let selected = storage
        .querier(start, end)
        .map_err(ApiError::from_read)
        .and_then(|querier| {
            let mut series_sets = Vec::with_capacity(sets.len());
            for set in sets {
                series_sets.push(querier.select(set).map_err(ApiError::from_read)?);
            }
            // The querier must outlive the series sets it produced.
            Ok((querier, series_sets))
        });
    let (_querier, series_sets) = match selected {
        Ok(s) => {
            if ready.send(Ok(())).is_err() {
                return;
            }
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut buffer = Vec::with_capacity(CHUNK_BYTES * 2);
    let mut timestamps = Vec::new();
    let flush = |buffer: &mut Vec<u8>| -> bool {
        let chunk = Bytes::from(std::mem::replace(
            buffer,
            Vec::with_capacity(CHUNK_BYTES * 2),
        ));
        chunks.blocking_send(Ok(chunk)).is_ok()
    };
    for series in MergedSeries::new(series_sets) {
        let series = match series {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "export aborted by a storage error");
                let _ = chunks.blocking_send(Err(io::Error::other(e.to_string())));
                return;
            }
        };
        buffer.extend_from_slice(b"{\"metric\":");
        if serde_json::to_writer(&mut buffer, &crate::api::labels_json(&series.labels)).is_err() {
            return;
        }
        buffer.extend_from_slice(b",\"values\":[");
        timestamps.clear();
        for (i, (t, v)) in series.samples.enumerate() {
            if i > 0 {
                buffer.push(b',');
            }
            write_export_value(v, &mut buffer);
            timestamps.push(t);
            if buffer.len() >= CHUNK_BYTES && !flush(&mut buffer) {
                return;
            }
        }
        buffer.extend_from_slice(b"],\"timestamps\":[");
        for (i, t) in timestamps.iter().enumerate() {
            if i > 0 {
                buffer.push(b',');
            }
            // Writing into a Vec cannot fail.
            let _ = write!(buffer, "{t}");
            if buffer.len() >= CHUNK_BYTES && !flush(&mut buffer) {
                return;
            }
        }
        buffer.extend_from_slice(b"]}\n");
        if buffer.len() >= CHUNK_BYTES && !flush(&mut buffer) {
            return;
        }
    }
    if !buffer.is_empty() {
        flush(&mut buffer);
    }
}

/// The union of several sorted series sets, sorted, each series once. Sets
/// from one querier hold identical samples for identical labels, so a
/// duplicate is simply dropped.
pub(crate) struct MergedSeries {
    sets: Vec<SeriesSet>,
    heads: Vec<Option<Series>>,
    primed: bool,
    failed: bool,
}

impl MergedSeries {
    pub(crate) fn new(sets: Vec<SeriesSet>) -> MergedSeries {
        let heads = sets.iter().map(|_| None).collect();
        MergedSeries {
            sets,
            heads,
            primed: false,
            failed: false,
        }
    }

    fn advance(&mut self, i: usize) -> Result<(), model::storage::StorageError> {
        self.heads[i] = self.sets[i].next().transpose()?;
        Ok(())
    }
}

impl Iterator for MergedSeries {
    type Item = Result<Series, model::storage::StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if !self.primed {
            self.primed = true;
            for i in 0..self.sets.len() {
                if let Err(e) = self.advance(i) {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let smallest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|s| (i, s)))
            .min_by(|a, b| a.1.labels.cmp(&b.1.labels))
            .map(|(i, _)| i)?;
        let chosen = self.heads[smallest].take()?;
        for i in 0..self.heads.len() {
            let duplicate = i == smallest
                || self.heads[i]
                    .as_ref()
                    .is_some_and(|s| s.labels == chosen.labels);
            if duplicate && let Err(e) = self.advance(i) {
                self.failed = true;
                return Some(Err(e));
            }
        }
        Some(Ok(chosen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_exactly() {
        for v in [
            0.0,
            -0.0,
            1.0,
            1.5,
            0.1 + 0.2,
            1e-300,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            STALE_NAN,
        ] {
            let mut out = Vec::new();
            write_export_value(v, &mut out);
            let parsed: Value = serde_json::from_slice(&out).unwrap();
            let back = parse_export_value(&parsed).unwrap();
            assert_eq!(
                back.to_bits(),
                v.to_bits(),
                "{v:?} written as {}",
                String::from_utf8_lossy(&out)
            );
        }
        let mut out = Vec::new();
        write_export_value(f64::NAN, &mut out);
        assert_eq!(out, b"\"NaN\"");
        assert!(
            parse_export_value(&serde_json::from_slice(&out).unwrap())
                .unwrap()
                .is_nan()
        );
        assert!(!is_stale_nan(
            parse_export_value(&Value::String("NaN".into())).unwrap()
        ));
    }
}
