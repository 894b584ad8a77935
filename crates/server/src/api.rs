//! The read side of the Prometheus HTTP API that needs no PromQL: health,
//! `series`, `labels`, `label/{name}/values` and `status/tsdb`, plus the
//! shared request plumbing (parameters, success JSON, timeouts, 404).

use std::collections::BTreeSet;

use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use model::storage::{CardinalityTally, StatsRequest, StatsSelection};
use model::{Labels, MatchOp, Matcher};
use serde_json::{Map, Value, json};

use crate::params::Params;
use crate::{ApiError, AppState, ErrorType, blocking};

/// Largest form-encoded body accepted for API parameters. Long `match[]`
/// lists are the reason clients POST; 8 MiB holds tens of thousands.
const MAX_FORM_BODY_BYTES: usize = 8 << 20;

/// The warning Prometheus adds when a `limit` cut the result.
const TRUNCATED_WARNING: &str = "results truncated due to limit";

/// Reads parameters from the query string and a form-encoded POST or PUT
/// body (Go's `ParseForm` reads the body of both).
pub(crate) async fn read_params(request: Request) -> Result<Params, ApiError> {
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().map(str::to_string);
    let is_form = (parts.method == Method::POST || parts.method == Method::PUT)
        && parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = if is_form {
        Some(
            axum::body::to_bytes(body, MAX_FORM_BODY_BYTES)
                .await
                .map_err(|e| {
                    ApiError::new(ErrorType::TooLarge, format!("reading form body: {e}"))
                })?,
        )
    } else {
        None
    };
    Ok(Params::parse(query.as_deref(), body.as_deref()))
}

/// `{"status":"success","data":...}`, with `warnings` when there are any.
pub(crate) fn success(data: Value, warnings: &[&str]) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    axum::Json(body).into_response()
}

/// Prometheus's JSON for a label set: an object with keys in label order.
pub(crate) fn labels_json(labels: &Labels) -> Value {
    let mut object = Map::new();
    for l in labels {
        object.insert(l.name.to_string(), Value::String(l.value.to_string()));
    }
    Value::Object(object)
}

pub(crate) async fn healthy() -> &'static str {
    "osprey Server is Healthy.\n"
}

pub(crate) async fn ready() -> &'static str {
    "osprey Server is Ready.\n"
}

/// `GET /api/health` in Grafana's shape, for health checks written
/// against Grafana (README). osprey's storage is in-process, so a
/// server that answers has its database; like `/-/ready`, it needs no
/// credentials.
pub(crate) async fn grafana_health() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({
            "commit": option_env!("OSPREY_GIT_REVISION").unwrap_or("unknown"),
            "database": "ok",
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string(),
    )
        .into_response()
}

pub(crate) async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found\n")
}

/// Answers 503 when a handler takes longer than the configured timeout.
/// Blocking storage work already started runs to its end in the background.
/// The two query endpoints run their query on the handler's thread
/// (`blocking_inline`), where this cannot answer for them: their query's
/// own deadline is capped at the same timeout instead.
pub(crate) async fn timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.config().request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorType::Unavailable,
            format!("request timed out after {}s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

/// Applies `limit`: keeps at most `limit` items and says whether any were cut.
fn apply_limit<T>(items: &mut Vec<T>, limit: Option<usize>) -> bool {
    match limit {
        Some(n) if items.len() > n => {
            items.truncate(n);
            true
        }
        _ => false,
    }
}

fn warnings_for(truncated: bool) -> &'static [&'static str] {
    if truncated { &[TRUNCATED_WARNING] } else { &[] }
}

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let sets = params.matcher_sets(true)?;
        let (start, end) = params.time_range()?;
        let limit = params.limit()?;
        let storage = state.storage().clone();
        blocking(move || {
            let querier = storage.querier(start, end).map_err(ApiError::from_read)?;
            let mut all = BTreeSet::new();
            for set in &sets {
                for series in querier.select(set).map_err(ApiError::from_read)? {
                    all.insert(series.map_err(ApiError::from_read)?.labels);
                    // Stop early when one set alone overflows the limit.
                    if sets.len() == 1 && limit.is_some_and(|n| all.len() > n) {
                        break;
                    }
                }
            }
            let mut list: Vec<Labels> = all.into_iter().collect();
            let truncated = apply_limit(&mut list, limit);
            Ok((list, truncated))
        })
        .await
    }
    .await;
    match result {
        Ok((list, truncated)) => success(
            Value::Array(list.iter().map(labels_json).collect()),
            warnings_for(truncated),
        ),
        Err(e) => e.into_response(),
    }
}

/// The union of `lookup` over every matcher set (or over no matchers).
fn union_over_sets(
    sets: &[Vec<Matcher>],
    mut lookup: impl FnMut(&[Matcher]) -> Result<Vec<String>, ApiError>,
) -> Result<Vec<String>, ApiError> {
    if sets.is_empty() {
        return lookup(&[]);
    }
    if let [only] = sets {
        return lookup(only);
    }
    let mut all = BTreeSet::new();
    for set in sets {
        all.extend(lookup(set)?);
    }
    Ok(all.into_iter().collect())
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn labels(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let sets = params.matcher_sets(false)?;
        let (start, end) = params.time_range()?;
        let limit = params.limit()?;
        let storage = state.storage().clone();
        blocking(move || {
            let querier = storage.querier(start, end).map_err(ApiError::from_read)?;
            let mut names = union_over_sets(&sets, |m| {
                querier.label_names(m).map_err(ApiError::from_read)
            })?;
            let truncated = apply_limit(&mut names, limit);
            Ok((names, truncated))
        })
        .await
    }
    .await;
    match result {
        Ok((names, truncated)) => success(json!(names), warnings_for(truncated)),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/label/{name}/values`.
pub(crate) async fn label_values(
    State(state): State<AppState>,
    Path(raw_name): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let name = unescape_label_name(&raw_name);
        if name.is_empty() {
            return Err(ApiError::bad_data(format!(
                "invalid label name: {raw_name:?}"
            )));
        }
        let params = read_params(request).await?;
        let sets = params.matcher_sets(false)?;
        let (start, end) = params.time_range()?;
        let limit = params.limit()?;
        let storage = state.storage().clone();
        blocking(move || {
            let querier = storage.querier(start, end).map_err(ApiError::from_read)?;
            let mut values = union_over_sets(&sets, |m| {
                querier.label_values(&name, m).map_err(ApiError::from_read)
            })?;
            let truncated = apply_limit(&mut values, limit);
            Ok((values, truncated))
        })
        .await
    }
    .await;
    match result {
        Ok((values, truncated)) => success(json!(values), warnings_for(truncated)),
        Err(e) => e.into_response(),
    }
}

/// Undoes Prometheus's `U__` value-encoding escape for label names that
/// are not plain identifiers: after the prefix, `__` is `_` and `_HEX_` is
/// the character with that code point. Names without the prefix, or with a
/// malformed escape, are taken as they are (as Prometheus does).
pub fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            if !(c.is_ascii_alphanumeric() || c == ':') {
                return name.to_string();
            }
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() && hex.len() < 8 => hex.push(h),
                _ => return name.to_string(),
            }
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(decoded) => out.push(decoded),
            None => return name.to_string(),
        }
    }
    out
}

/// `GET /api/v1/status/tsdb`: Prometheus's head statistics, with
/// VictoriaMetrics's cardinality parameters (`topN`, `date`, `match[]`,
/// `focusLabel`) and extra fields.
pub(crate) async fn status_tsdb(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let StatsQuery {
            limit,
            sets,
            focus_label,
            day,
        } = StatsQuery::from_params(&params)?;
        let storage = state.storage().clone();
        blocking(move || {
            let selection = if sets.is_empty() {
                StatsSelection::All
            } else {
                StatsSelection::Matching(sets.clone())
            };
            let Some((mint, maxt)) = day else {
                return Ok(storage.head_stats(&StatsRequest {
                    limit,
                    selection,
                    focus_label,
                }));
            };
            // A day: the series with samples in it, from the head and the
            // blocks alike; the head summary alone comes from the head.
            let mut stats = storage.head_stats(&StatsRequest {
                limit,
                selection: StatsSelection::Matching(Vec::new()),
                focus_label: None,
            });
            let sets = if sets.is_empty() {
                vec![vec![
                    Matcher::new(MatchOp::RegexMatch, model::METRIC_NAME, ".+")
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                ]]
            } else {
                sets
            };
            let querier = storage.querier(mint, maxt).map_err(ApiError::from_read)?;
            let mut all = std::collections::HashSet::new();
            for set in &sets {
                for series in querier.select(set).map_err(ApiError::from_read)? {
                    all.insert(series.map_err(ApiError::from_read)?.labels);
                }
            }
            let mut tally = CardinalityTally::new();
            for labels in &all {
                tally.add(labels);
            }
            stats.cardinality = tally.finish(limit, focus_label.as_deref());
            Ok(stats)
        })
        .await
    }
    .await;
    let stats = match result {
        Ok(stats) => stats,
        Err(e) => return e.into_response(),
    };
    let limits = series_limits_json(&state.storage().series_limit_stats());
    let pairs = |list: &[(String, u64)]| -> Value {
        Value::Array(
            list.iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect(),
        )
    };
    let c = &stats.cardinality;
    success(
        json!({
            "headStats": {
                "numSeries": stats.num_series,
                "numLabelPairs": stats.num_label_pairs,
                "chunkCount": stats.num_chunks,
                "minTime": stats.min_time,
                "maxTime": stats.max_time,
            },
            "totalSeries": c.total_series,
            "totalLabelValuePairs": c.total_label_value_pairs,
            "seriesCountByMetricName": pairs(&c.series_count_by_metric_name),
            "seriesCountByLabelName": pairs(&c.series_count_by_label_name),
            "seriesCountByFocusLabelValue": pairs(&c.series_count_by_focus_label_value),
            "labelValueCountByLabelName": pairs(&c.label_value_count_by_label_name),
            "memoryInBytesByLabelName": pairs(&c.memory_in_bytes_by_label_name),
            "seriesCountByLabelValuePair": pairs(&c.series_count_by_label_value_pair),
            "seriesLimits": limits,
        }),
        &[],
    )
}

/// osprey's extra `seriesLimits` field of `/api/v1/status/tsdb`
/// (`docs/limits.md`): the limits in force (global ones with `kind` and
/// `name` empty), the head's count and each writer's own count where it
/// has a limit, and the refusals.
fn series_limits_json(stats: &model::limits::LimitStats) -> Value {
    let limits: Vec<Value> = stats
        .spec
        .configured()
        .into_iter()
        .map(|(kind, name, limit, value)| {
            json!({"limit": limit.name(), "kind": kind, "name": name, "value": value})
        })
        .collect();
    let rejections: Vec<Value> = stats
        .rejections
        .iter()
        .map(|r| {
            let (kind, name) = r.origin.as_ref().map_or(("", ""), |o| (o.kind(), o.name()));
            json!({"limit": r.limit.name(), "kind": kind, "name": name, "count": r.count})
        })
        .collect();
    let own: Vec<Value> = stats
        .origin_head_series
        .iter()
        .map(|(o, n)| json!({"kind": o.kind(), "name": o.name(), "headSeries": n}))
        .collect();
    json!({
        "headSeries": stats.head_series,
        "limits": limits,
        "writerHeadSeries": own,
        "rejections": rejections,
    })
}

/// The parameters of `/api/v1/status/tsdb`.
#[derive(Debug)]
pub struct StatsQuery {
    /// Length of each top list, at least 1.
    pub limit: usize,
    /// `match[]` selectors; empty: every series.
    pub sets: Vec<Vec<Matcher>>,
    pub focus_label: Option<String>,
    /// `date`: the UTC day's first and last millisecond.
    pub day: Option<(i64, i64)>,
}

impl StatsQuery {
    pub fn from_params(params: &Params) -> Result<StatsQuery, ApiError> {
        Ok(StatsQuery {
            limit: stats_limit(params)?,
            sets: params.matcher_sets(false)?,
            focus_label: params.get("focusLabel").map(str::to_string),
            day: params.get("date").map(parse_stats_date).transpose()?,
        })
    }
}

/// The length of each top list: VictoriaMetrics's `topN` (below 1 counts as
/// 1, as VictoriaMetrics does), else
/// Prometheus's `limit` (a positive number), else 10.
fn stats_limit(params: &Params) -> Result<usize, ApiError> {
    if let Some(s) = params.get("topN") {
        let n: i64 = s
            .parse()
            .map_err(|_| ApiError::bad_data(format!("cannot parse topN {s:?}: not an integer")))?;
        return Ok(usize::try_from(n.max(1)).unwrap_or(usize::MAX));
    }
    match params.get("limit") {
        None => Ok(10),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| ApiError::bad_data("limit must be a positive number")),
    }
}

/// `date=YYYY-MM-DD` as the milliseconds of that UTC day, both ends
/// inclusive.
fn parse_stats_date(s: &str) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::bad_data(format!("cannot parse date {s:?}: want YYYY-MM-DD"));
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| -> Result<u32, ApiError> {
        let part = &s[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let days = model::time::days_from_civil(i64::from(year), month, day);
    if !(1..=12).contains(&month)
        || model::time::civil_from_days(days) != (i64::from(year), month, day)
    {
        return Err(bad());
    }
    let start = days * 86_400_000;
    Ok((start, start + 86_400_000 - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_u_prefixed_names() {
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__http_2e_status"), "http.status");
        assert_eq!(unescape_label_name("U__my__name_2e__1f600_"), "my_name.😀");
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_");
        assert_eq!(unescape_label_name("U__open_2e"), "U__open_2e");
    }

    #[test]
    fn stats_dates_are_whole_utc_days() {
        assert_eq!(
            parse_stats_date("1970-01-02").ok(),
            Some((86_400_000, 172_799_999))
        );
        let day = parse_stats_date("2024-02-29").ok().unwrap();
        assert_eq!(day.0, 1_709_164_800_000);
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "24-01-01",
            "2024-1-011",
            "2024/01/01",
            "+024-01-01",
        ] {
            assert!(parse_stats_date(bad).is_err(), "{bad}");
        }
    }
}
