//! Prometheus's TSDB admin API under `/api/v1/admin/tsdb/`: `delete_series`,
//! `clean_tombstones` and `snapshot`, each by POST or PUT, with Prometheus's
//! parameters, statuses and error bodies. Only admins reach them
//! (`auth::server_policy`), and the audit log records every call.
//!
//! The store does the work through [`model::storage::StorageAdmin`]; a
//! store without one answers 503. No parameter names a file: a snapshot's
//! directory is named and placed by the store, and `match[]`, `start`,
//! `end` and `skip_head` are parsed as selectors, times and a boolean.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::storage::{SnapshotHead, Storage, StorageAdmin};
use serde_json::json;

use crate::api::{read_params, success};
use crate::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use crate::{ApiError, AppState, ErrorType, blocking};

/// `POST|PUT /api/v1/admin/tsdb/delete_series`: deletes the samples in
/// `[start, end]` (default: all time) of the series each `match[]` selects;
/// 204 when done.
pub(crate) async fn delete_series(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        // Prometheus's order: a missing match[] first, then the times, then
        // each selector.
        if params.all("match[]").is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let start = time_param(&params, "start", MIN_TIME_MS)?;
        let end = time_param(&params, "end", MAX_TIME_MS)?;
        let sets = params.matcher_sets(true)?;
        let storage = state.storage().clone();
        blocking(move || {
            let admin = admin_of(&*storage)?;
            for set in &sets {
                admin
                    .delete_series(set, start, end)
                    .map_err(ApiError::from_read)?;
            }
            Ok(())
        })
        .await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: writes the blocks with
/// deleted samples again without them; 204 when done.
pub(crate) async fn clean_tombstones(State(state): State<AppState>) -> Response {
    let storage = state.storage().clone();
    let result = blocking(move || {
        admin_of(&*storage)?
            .clean_tombstones()
            .map_err(ApiError::from_read)
    })
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot[?skip_head=<bool>]`: writes a
/// snapshot to `<data-dir>/snapshots/<name>` and answers
/// `{"status":"success","data":{"name":"<name>"}}`.
pub(crate) async fn snapshot(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let skip_head = match params.get("skip_head") {
            None => false,
            Some(text) => parse_go_bool(text).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter \"skip_head\": unable to parse boolean: \
                     strconv.ParseBool: parsing {text:?}: invalid syntax"
                ))
            })?,
        };
        let head = if skip_head {
            SnapshotHead::Skip
        } else {
            SnapshotHead::Include
        };
        let storage = state.storage().clone();
        blocking(move || {
            admin_of(&*storage)?
                .snapshot(head)
                .map_err(|e| ApiError::internal(format!("create snapshot: {e}")))
        })
        .await
    }
    .await;
    match result {
        Ok(name) => success(json!({ "name": name }), &[]),
        Err(e) => e.into_response(),
    }
}

/// The store's administration, or the 503 for a store without one.
fn admin_of(storage: &dyn Storage) -> Result<&dyn StorageAdmin, ApiError> {
    storage.admin().ok_or_else(|| {
        ApiError::new(
            ErrorType::Unavailable,
            "admin APIs disabled: this store has no TSDB administration",
        )
    })
}

/// Time parameter `name`, in Prometheus's words when it does not parse.
fn time_param(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    params
        .time_or(name, default)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {}", e.message)))
}

/// A boolean as Go's `strconv.ParseBool` reads it.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_go_booleans() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(text), Some(true), "{text}");
        }
        for text in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(text), Some(false), "{text}");
        }
        for text in ["yes", "tRUE", "", " true", "../true"] {
            assert_eq!(parse_go_bool(text), None, "{text}");
        }
    }
}
