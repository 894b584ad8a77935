//! The scrape endpoints: `/api/v1/targets`, `/api/v1/metadata` and
//! `/api/v1/targets/metadata`, over the scrape manager the configuration
//! started (`lifecycle.rs`).

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::api::{labels_json, read_params, success};
use crate::{ApiError, AppState};

/// The dashboard files named by the `dashboards:` section of the
/// configuration in effect (the config crate resolved them against the
/// configuration file's directory). Set on every load and reload; cloning
/// shares it, so the UI's dashboard store can ask for the paths in effect
/// without holding the server's state.
#[derive(Clone, Debug, Default)]
pub struct DashboardPaths {
    paths: std::sync::Arc<std::sync::RwLock<Vec<std::path::PathBuf>>>,
}

impl DashboardPaths {
    /// The paths in effect (each a file, a directory or a `*` pattern).
    pub fn get(&self) -> Result<Vec<std::path::PathBuf>, String> {
        Ok(self.paths.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    pub(crate) fn set(&self, paths: Vec<std::path::PathBuf>) {
        *self.paths.write().unwrap_or_else(|e| e.into_inner()) = paths;
    }
}

/// `GET /api/v1/targets` with optional `state` (active, dropped, any) and
/// `scrapePool`.
pub(crate) async fn targets(State(state): State<AppState>, request: Request) -> Response {
    let params = match read_params(request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // As in Prometheus, a list that was not asked for (or an unknown
    // `state`) is still present, empty, and the dropped counts are `null`
    // unless dropped targets were asked for.
    let which = params.get("state").unwrap_or("any").to_ascii_lowercase();
    let show_active = which == "any" || which == "active";
    let show_dropped = which == "any" || which == "dropped";
    let pool = params.get("scrapePool").map(str::to_string);
    let snapshot = state.scrape().map(|s| s.targets());
    let (active, dropped) = match snapshot {
        Some(s) => (s.active, s.dropped),
        None => (Vec::new(), Vec::new()),
    };
    let in_pool = |p: &str| pool.as_deref().is_none_or(|want| want == p);
    let mut data = Map::new();
    let active_list: Vec<Value> = if show_active {
        active
            .iter()
            .filter(|t| in_pool(&t.scrape_pool))
            .map(|t| {
                json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.scrape_pool,
                    "scrapeUrl": t.scrape_url,
                    "globalUrl": t.global_url,
                    "lastError": t.last_error,
                    "lastScrape": t.last_scrape.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string()),
                    "lastScrapeDuration": t.last_scrape_duration_seconds,
                    "health": t.health.as_str(),
                    "scrapeInterval": t.scrape_interval,
                    "scrapeTimeout": t.scrape_timeout,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    data.insert("activeTargets".into(), Value::Array(active_list));
    if show_dropped {
        // The counts cover every pool, whatever `scrapePool` filters.
        let mut counts: Map<String, Value> = Map::new();
        for t in &dropped {
            let n = counts
                .get(&t.scrape_pool)
                .and_then(Value::as_u64)
                .unwrap_or(0);
            counts.insert(t.scrape_pool.clone(), json!(n + 1));
        }
        let list: Vec<Value> = dropped
            .iter()
            .filter(|t| in_pool(&t.scrape_pool))
            .map(|t| {
                json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "scrapePool": t.scrape_pool,
                })
            })
            .collect();
        data.insert("droppedTargets".into(), Value::Array(list));
        data.insert("droppedTargetCounts".into(), Value::Object(counts));
    } else {
        data.insert("droppedTargets".into(), Value::Array(Vec::new()));
        data.insert("droppedTargetCounts".into(), Value::Null);
    }
    success(Value::Object(data), &[])
}

/// `GET /api/v1/metadata` with optional `metric`, `limit`,
/// `limit_per_metric`.
pub(crate) async fn metadata(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let limit = metadata_limit(&params, "limit")?;
        let per_metric = metadata_limit(&params, "limit_per_metric")?.filter(|&n| n > 0);
        let all = state.scrape().map(|s| s.metadata()).unwrap_or_default();
        let mut data = Map::new();
        for (metric, entries) in all {
            if params.get("metric").is_some_and(|m| m != metric) {
                continue;
            }
            if limit.is_some_and(|l| data.len() >= l) {
                break;
            }
            let mut list: Vec<Value> = Vec::new();
            for m in entries {
                let v = json!({"type": m.metric_type.as_str(), "help": m.help, "unit": m.unit});
                if !list.contains(&v) {
                    list.push(v);
                }
            }
            if let Some(n) = per_metric {
                list.truncate(n);
            }
            data.insert(metric, Value::Array(list));
        }
        Ok::<_, ApiError>(success(Value::Object(data), &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/targets/metadata` with optional `match_target` (a label
/// selector over target labels), `metric` and `limit`.
pub(crate) async fn targets_metadata(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let limit = metadata_limit(&params, "limit")?;
        let matchers = match params.get("match_target") {
            Some(s) => promql::parse_series_selector(s).map_err(|e| {
                ApiError::bad_data(format!("invalid parameter \"match_target\": {e}"))
            })?,
            None => Vec::new(),
        };
        let all = state
            .scrape()
            .map(|s| s.target_metadata())
            .unwrap_or_default();
        let list: Vec<Value> = all
            .iter()
            .filter(|m| model::matcher::matches_all(&m.target, &matchers))
            .filter(|m| {
                params
                    .get("metric")
                    .is_none_or(|want| want == m.metadata.metric)
            })
            .take(limit.unwrap_or(usize::MAX))
            .map(|m| {
                let mut entry = json!({
                    "target": labels_json(&m.target),
                    "metric": m.metadata.metric,
                    "type": m.metadata.metric_type.as_str(),
                    "help": m.metadata.help,
                    "unit": m.metadata.unit,
                });
                // Prometheus leaves out the metric name it was asked for.
                if params.get("metric").is_some()
                    && let Some(object) = entry.as_object_mut()
                {
                    object.remove("metric");
                }
                entry
            })
            .collect();
        Ok::<_, ApiError>(success(Value::Array(list), &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `limit` and `limit_per_metric` of the metadata endpoints, read as
/// Prometheus reads them there (unlike the series endpoints): a negative
/// value means no limit, 0 an empty answer, and anything not an integer is
/// `<name> must be a number`.
fn metadata_limit(params: &crate::params::Params, name: &str) -> Result<Option<usize>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n < 0 => Ok(None),
            Ok(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Err(_) => Err(ApiError::bad_data(format!("{name} must be a number"))),
        },
    }
}

/// RFC 3339 in UTC with nanoseconds, as Prometheus prints `lastScrape`.
fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    model::time::format_rfc3339(secs, d.subsec_nanos(), model::time::Fraction::Nanos)
}

/// Milliseconds since the epoch as Go's RFC 3339 with nanoseconds prints
/// a `time.Time` in JSON: UTC, fraction without trailing zeros.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    model::time::format_rfc3339_ms(ms, model::time::Fraction::Trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000000Z"
        );
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }
}
