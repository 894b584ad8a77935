//! The model-quality API (`docs/models.md`): `POST
//! /api/v1/models/{model}/predictions`, `.../actuals` and `.../reference`
//! (JSON, optionally gzip), `GET /api/v1/models`,
//! `GET /api/v1/models/{model}/distribution` and `.../compare`, and the evaluation loop
//! that writes the model-quality series through the server's appendable.
//!
//! A request is answered `200` only after its records are in the model's
//! log and synced; a bad record is a `400` naming the record and field,
//! with nothing of the request stored.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use models::distribution::DistributionError;
use models::{ErrorKind, IngestError, Models};

use crate::ingest::read_body_limited;
use crate::params::Params;
use crate::{ApiError, AppState, ErrorType, blocking};

/// Largest body accepted, compressed or not (64 MiB, as the other write
/// endpoints).
const MAX_BODY_BYTES: usize = 64 << 20;

/// How often the loop looks for models whose evaluation is due. Each
/// model keeps its own `evaluation_interval`; this only bounds how late an
/// evaluation may start.
const TICK: Duration = Duration::from_secs(1);

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        let kind = match e.kind {
            ErrorKind::BadData => ErrorType::BadData,
            ErrorKind::TooLarge => ErrorType::TooLarge,
            _ => ErrorType::Internal,
        };
        ApiError::new(kind, e.message)
    }
}

#[derive(Clone, Copy)]
enum Endpoint {
    Predictions,
    Actuals,
    Reference,
}

async fn handle(state: AppState, model: String, request: Request, endpoint: Endpoint) -> Response {
    let gzip = request
        .headers()
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let result = async {
        let body = read_body_limited(request.into_body(), MAX_BODY_BYTES).await?;
        let models = state.models().clone();
        blocking(move || {
            let body = models::decode_body(&body, gzip, MAX_BODY_BYTES)?;
            let accepted = match endpoint {
                Endpoint::Predictions => models.ingest_predictions(&model, &body),
                Endpoint::Actuals => models.ingest_actuals(&model, &body),
                Endpoint::Reference => models.set_reference(&model, &body),
            }?;
            Ok(accepted)
        })
        .await
    }
    .await;
    match result {
        Ok(a) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            format!(
                "{{\"status\":\"success\",\"data\":{{\"records\":{},\"joined\":{},\"waiting\":{}}}}}",
                a.records, a.joined, a.waiting
            ),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn predictions(
    State(state): State<AppState>,
    Path(model): Path<String>,
    request: Request,
) -> Response {
    handle(state, model, request, Endpoint::Predictions).await
}

pub(crate) async fn actuals(
    State(state): State<AppState>,
    Path(model): Path<String>,
    request: Request,
) -> Response {
    handle(state, model, request, Endpoint::Actuals).await
}

pub(crate) async fn reference(
    State(state): State<AppState>,
    Path(model): Path<String>,
    request: Request,
) -> Response {
    handle(state, model, request, Endpoint::Reference).await
}

/// `GET /api/v1/models`: the names of the models known.
pub(crate) async fn list(State(state): State<AppState>) -> Response {
    let names = state.models().names();
    let body = serde_json::json!({"status": "success", "data": names});
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /api/v1/models/{model}/distribution?feature=F[&version=V]`: one
/// feature's reference and current distributions (`docs/models.md`).
pub(crate) async fn distribution(
    State(state): State<AppState>,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.as_deref(), None);
    let Some(feature) = params.get("feature").map(str::to_string) else {
        return ApiError::new(ErrorType::BadData, "the feature parameter is required")
            .into_response();
    };
    let version = params.get("version").map(str::to_string);
    let models = state.models().clone();
    let now_ms = state.now_ms();
    let result = blocking(move || {
        models
            .distribution(&model, &feature, version.as_deref(), now_ms)
            .map_err(|e| match e {
                DistributionError::Unknown(m) => ApiError::new(ErrorType::BadData, m),
                DistributionError::NotYet(m) => ApiError::new(ErrorType::Execution, m),
            })
    })
    .await;
    match result {
        Ok(d) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"status": "success", "data": d}).to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/models/{model}/compare?a=V&b=W`: two versions' figures
/// side by side with their differences and tests (`docs/models.md`).
pub(crate) async fn compare(
    State(state): State<AppState>,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.as_deref(), None);
    let (Some(a), Some(b)) = (
        params.get("a").map(str::to_string),
        params.get("b").map(str::to_string),
    ) else {
        return ApiError::new(
            ErrorType::BadData,
            "the a and b parameters (two versions) are required",
        )
        .into_response();
    };
    let models = state.models().clone();
    let result = blocking(move || {
        models.compare(&model, &a, &b).map_err(|e| match e {
            DistributionError::Unknown(m) => ApiError::new(ErrorType::BadData, m),
            DistributionError::NotYet(m) => ApiError::new(ErrorType::Execution, m),
        })
    })
    .await;
    match result {
        Ok(c) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"status": "success", "data": c}).to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Evaluates every due model at `now_ms` and appends its series in one
/// commit.
pub fn evaluate_and_write(
    models: &Models,
    appendable: &dyn model::storage::Appendable,
    now_ms: i64,
) -> Result<usize, String> {
    let samples = models.evaluate_due(now_ms);
    if samples.is_empty() {
        return Ok(0);
    }
    let mut appender = appendable.appender();
    for (labels, value) in &samples {
        if let Err(e) = appender.append(labels, now_ms, *value) {
            appender.rollback();
            return Err(e.to_string());
        }
    }
    appender.commit().map_err(|e| e.to_string())?;
    Ok(samples.len())
}

/// Runs evaluations until the returned handle is aborted.
pub(crate) fn start_loop(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let models: Arc<Models> = state.models().clone();
            let appendable = state.appendable();
            let now_ms = state.now_ms();
            let done = tokio::task::spawn_blocking(move || {
                evaluate_and_write(&models, appendable.as_ref(), now_ms)
            })
            .await;
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "writing model-quality series failed"),
                Err(error) => tracing::warn!(%error, "model evaluation task failed"),
            }
        }
    })
}
