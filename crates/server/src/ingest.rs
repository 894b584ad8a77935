//! The write endpoints: remote write 1.0 (`POST /api/v1/write`) and the
//! text exposition import (`POST /api/v1/import/prometheus`).
//!
//! Both are all or nothing: a request is decoded and validated completely
//! before its first sample is staged, all samples go into one appender and
//! one commit, and the client hears success only after the commit, which
//! makes them durable, returned `Ok`.

use std::pin::Pin;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::Labels;
use model::storage::Storage;

use crate::remote::{RemoteWriteError, ValidatedSeries, decode_remote_write};
use crate::{ApiError, AppState, ErrorType, blocking};

/// Reads a request body, refusing (413) once it grows past `limit` bytes.
pub(crate) async fn read_body_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) =
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await
    {
        let chunk = chunk.map_err(|e| ApiError::bad_data(format!("reading request body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorType::TooLarge,
                format!("request body exceeds the limit of {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Stages every sample in one appender and commits once. On any error the
/// appender is rolled back, so nothing of the batch is stored.
pub(crate) fn append_all<'a>(
    storage: &dyn Storage,
    batch: impl IntoIterator<Item = (&'a Labels, i64, f64)>,
) -> Result<(), ApiError> {
    let mut appender = storage.appender();
    for (labels, t, v) in batch {
        if let Err(e) = appender.append(labels, t, v) {
            appender.rollback();
            return Err(ApiError::from_write(e));
        }
    }
    appender.commit().map_err(ApiError::from_write)
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

/// `POST /api/v1/write`: snappy-compressed protobuf `WriteRequest`.
/// Answers 204 once the batch is committed.
pub(crate) async fn remote_write(State(state): State<AppState>, request: Request) -> Response {
    let config = state.config();
    let max_decompressed = config.max_remote_write_decompressed_bytes;
    let result = async {
        let body =
            read_body_limited(request.into_body(), config.max_remote_write_body_bytes).await?;
        let storage = state.storage().clone();
        blocking(move || {
            let series = decode_remote_write(&body, max_decompressed)?;
            drop(body);
            let batch = series
                .iter()
                .flat_map(|ValidatedSeries { labels, samples }| {
                    samples.iter().map(move |&(t, v)| (labels, t, v))
                });
            append_all(storage.as_ref(), batch)
        })
        .await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
