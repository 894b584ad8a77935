//! `GET|POST /api/v1/query_exemplars`: the stored exemplars of the series
//! that a PromQL expression's selectors match, in Prometheus's JSON shape
//! (`docs/exemplars.md`).
//!
//! As Prometheus's `queryExemplars`: `start` and `end` default to all of
//! time; the expression must parse, and its selectors (every vector
//! selector's matchers, `Expr::selectors`) are the union asked of the
//! store; an expression without selectors (`1 + 1`) answers 204 with no
//! body, as Prometheus answers an API call without data.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::exemplar::ExemplarSeries;

use crate::api::read_params;
use crate::params::{MAX_TIME_MS, MIN_TIME_MS, Params, parse_time};
use crate::query::{write_go_float, write_labels, write_timestamp};
use crate::{ApiError, AppState, blocking};

/// `GET|POST /api/v1/query_exemplars`.
pub(crate) async fn query_exemplars(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let start = time_param(&params, "start", MIN_TIME_MS)?;
        let end = time_param(&params, "end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start timestamp",
            ));
        }
        let query = params.get("query").unwrap_or("").to_string();
        let expr = promql::parse_with(&query, state.engine().parse_options())
            .map_err(|e| ApiError::bad_data(e.to_string()))?;
        let selectors = expr.selectors();
        if selectors.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let storage = state.storage().clone();
        let found = blocking(move || {
            storage
                .select_exemplars(start, end, &selectors)
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
        Ok::<_, ApiError>(render(&found))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Prometheus's `parseTimeParam`: absent or empty is the default.
fn time_param(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(default),
        Some(text) => parse_time(text).map_err(|e| {
            ApiError::bad_data(format!(
                "invalid parameter \"{name}\": Invalid time value for '{name}': {e}"
            ))
        }),
    }
}

/// `{"status":"success","data":[{"seriesLabels":{…},"exemplars":[{"labels":
/// {…},"value":"…","timestamp":…}]}]}`, numbers as Prometheus writes them.
fn render(list: &[ExemplarSeries]) -> Response {
    let mut body = String::from("{\"status\":\"success\",\"data\":[");
    for (i, series) in list.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str("{\"seriesLabels\":");
        write_labels(&mut body, &series.series_labels);
        body.push_str(",\"exemplars\":[");
        for (j, e) in series.exemplars.iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            body.push_str("{\"labels\":");
            write_labels(&mut body, &e.labels);
            body.push_str(",\"value\":\"");
            write_go_float(&mut body, e.value);
            body.push_str("\",\"timestamp\":");
            write_timestamp(&mut body, e.timestamp_ms);
            body.push('}');
        }
        body.push_str("]}");
    }
    body.push_str("]}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
