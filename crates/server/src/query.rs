//! The PromQL side of the API: `query`, `query_range`, `format_query`,
//! and the `status/buildinfo`, `status/config` and `status/flags` pages.
//!
//! Results are written straight into the response body rather than built
//! as a `serde_json::Value` tree: a range query over every series returns
//! hundreds of thousands of points, and the tree would cost more than the
//! evaluation. The shapes and number formats are Prometheus's: timestamps
//! as Unix seconds with up to millisecond decimals, values as strings in
//! the shortest form without exponent (`"NaN"`, `"+Inf"`, `"-Inf"`).

use std::fmt::Write as _;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use model::Labels;
use promql::{QueryError, QueryErrorKind, QueryOutput, Value};
use serde_json::json;

use crate::api::{read_params, success};
use crate::params::{Params, parse_duration_ms, parse_time};
use crate::{ApiError, AppState, ErrorType};

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let kind = match e.kind() {
            QueryErrorKind::BadData => ErrorType::BadData,
            QueryErrorKind::Timeout => ErrorType::Timeout,
            QueryErrorKind::Canceled => ErrorType::Canceled,
            _ => ErrorType::Execution,
        };
        ApiError::new(kind, e.to_string())
    }
}

fn query_param(params: &Params) -> Result<String, ApiError> {
    match params.get("query") {
        Some(q) => Ok(q.to_string()),
        None => Err(ApiError::bad_data(
            "invalid parameter \"query\": 1:1: parse error: no expression found in input",
        )),
    }
}

/// Wraps a parse error the way Prometheus's API does.
fn as_param_error(e: QueryError) -> ApiError {
    if e.kind() == QueryErrorKind::BadData {
        ApiError::bad_data(format!("invalid parameter \"query\": {e}"))
    } else {
        e.into()
    }
}

/// An error from the engine once the query has parsed. Prometheus refuses
/// a range query of the wrong type as a bad `query` parameter (400), but
/// answers anything that fails while evaluating (a NaN `topk` parameter,
/// an invalid `count_values` label) as an execution error (422).
fn as_evaluation_error(e: QueryError) -> ApiError {
    if e.kind() != QueryErrorKind::BadData {
        return e.into();
    }
    if e.message().starts_with("invalid expression type") {
        return as_param_error(e);
    }
    ApiError::new(ErrorType::Execution, e.to_string())
}

fn invalid_param(name: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_data(format!("invalid parameter \"{name}\": {message}"))
}

/// Parses the query and evaluates it with `run`: parse errors are bad
/// `query` parameters, evaluation errors are mapped by
/// [`as_evaluation_error`]. The query is parsed here, and once more by the
/// engine, because only this separates the two kinds of error; parsing
/// costs microseconds.
fn parse_then_run(
    query: &str,
    features: promql::ParseOptions,
    run: impl FnOnce() -> Result<QueryOutput, QueryError>,
) -> Result<QueryOutput, ApiError> {
    promql::parse_with(query, features).map_err(as_param_error)?;
    run().map_err(as_evaluation_error)
}

/// `GET|POST /api/v1/query`.
pub(crate) async fn query(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let now = state.now_ms();
        let time = match params.get("time") {
            None => now,
            Some(s) => parse_time(s).map_err(|e| {
                invalid_param("time", format!("invalid time value for 'time': {e}"))
            })?,
        };
        let options = query_options(&params, state.config().request_timeout)?;
        let query = query_param(&params)?;
        let with_stats = params.get("stats").is_some();
        let storage = state.queryable().clone();
        let engine = state.engine().clone();
        let features = engine.parse_options();
        let output = crate::blocking_inline(move || {
            parse_then_run(&query, features, || {
                engine.instant_query_with(storage.as_ref(), &query, time, options)
            })
        })
        .await?;
        Ok::<_, ApiError>(render(&output, with_stats))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /api/v1/query_range`. Parameters are checked in Prometheus's
/// order (start, end, their order, step, its sign, the point count,
/// timeout) before the query is parsed, with Prometheus's messages.
pub(crate) async fn query_range(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let start = required_time(&params, "start")?;
        let end = required_time(&params, "end")?;
        if end < start {
            return Err(invalid_param(
                "end",
                "end timestamp must not be before start time",
            ));
        }
        let step = parse_duration_ms(params.get("step").unwrap_or(""))
            .map_err(|e| invalid_param("step", e))?;
        if step <= 0 {
            return Err(invalid_param(
                "step",
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        // Prometheus divides whole durations; so does this, in i128 so a
        // range across all of time cannot overflow.
        if (i128::from(end) - i128::from(start)) / i128::from(step) > MAX_POINTS_PER_SERIES {
            return Err(ApiError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let options = query_options(&params, state.config().request_timeout)?;
        let query = query_param(&params)?;
        let with_stats = params.get("stats").is_some();
        let storage = state.queryable().clone();
        let engine = state.engine().clone();
        let features = engine.parse_options();
        let output = crate::blocking_inline(move || {
            parse_then_run(&query, features, || {
                engine.range_query_with(storage.as_ref(), &query, start, end, step, options)
            })
        })
        .await?;
        Ok::<_, ApiError>(render(&output, with_stats))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Prometheus's limit on the steps of a range query.
const MAX_POINTS_PER_SERIES: i128 = 11_000;

/// `GET|POST /api/v1/format_query`.
pub(crate) async fn format_query(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let query = query_param(&params)?;
        let expr =
            promql::parse_with(&query, state.engine().parse_options()).map_err(as_param_error)?;
        Ok::<_, ApiError>(success(json!(promql::format(&expr)), &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/status/buildinfo`.
pub(crate) async fn buildinfo() -> Response {
    success(
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("OSPREY_GIT_REVISION").unwrap_or("unknown"),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "none (osprey is written in Rust)",
        }),
        &[],
    )
}

/// `GET /api/v1/status/config`: the configuration file as loaded.
pub(crate) async fn status_config(State(state): State<AppState>) -> Response {
    let text = state.config_text();
    let shown = if text.is_empty() {
        text
    } else {
        config::mask::masked_yaml(&text)
    };
    success(json!({"yaml": shown}), &[])
}

/// `GET /api/v1/status/flags`: the command-line flags in effect.
pub(crate) async fn status_flags(State(state): State<AppState>) -> Response {
    let flags: serde_json::Map<String, serde_json::Value> = state
        .config()
        .flags
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    success(serde_json::Value::Object(flags), &[])
}

/// `start` or `end` of a range query: required, and an absent one is
/// reported as Prometheus reports it, as an unparsable empty string.
fn required_time(params: &Params, name: &str) -> Result<i64, ApiError> {
    parse_time(params.get(name).unwrap_or("")).map_err(|e| invalid_param(name, e))
}

/// `options` with a deadline no later than `limit`, the request timeout:
/// a query runs on the handler's own thread (`blocking_inline`), where
/// the timeout middleware cannot answer for it, so the engine's deadline
/// has to end it in time.
fn within(mut options: promql::QueryOptions, limit: std::time::Duration) -> promql::QueryOptions {
    options.timeout = Some(options.timeout.map_or(limit, |t| t.min(limit)));
    options
}

/// `timeout` (a duration that shortens the engine's limit for this query)
/// and `lookback_delta` (replaces the 5 m lookback for this query),
/// `max_source_resolution` (Thanos's: `raw` or `0s` for raw data only, a
/// duration for the coarsest tier allowed, `auto` or absent to let the
/// step and ranges choose). The deadline is capped at `request_timeout`
/// ([`within`]).
fn query_options(
    params: &Params,
    request_timeout: std::time::Duration,
) -> Result<promql::QueryOptions, ApiError> {
    let mut options = promql::QueryOptions::default();
    if let Some(t) = params.get("timeout") {
        let ms = parse_duration_ms(t).map_err(|e| invalid_param("timeout", e))?;
        if ms > 0 {
            options.timeout = Some(std::time::Duration::from_millis(ms as u64));
        }
    }
    if let Some(d) = params.get("lookback_delta") {
        let ms = parse_duration_ms(d).map_err(|e| invalid_param("lookback_delta", e))?;
        options.lookback_delta_ms = Some(ms);
    }
    if let Some(r) = params.get("max_source_resolution") {
        options.max_source_resolution_ms = match r {
            "" | "auto" => None,
            "raw" => Some(0),
            other => {
                let ms = parse_duration_ms(other)
                    .map_err(|e| invalid_param("max_source_resolution", e))?;
                if ms < 0 {
                    return Err(invalid_param(
                        "max_source_resolution",
                        "must not be negative".to_string(),
                    ));
                }
                Some(ms)
            }
        };
    }
    Ok(within(options, request_timeout))
}

fn render(output: &QueryOutput, with_stats: bool) -> Response {
    let mut body = String::with_capacity(256);
    body.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    match &output.value {
        Value::Scalar { t, v } => {
            body.push_str("scalar\",\"result\":");
            write_scalar_point(&mut body, *t, *v);
        }
        Value::String { t, v } => {
            body.push_str("string\",\"result\":[");
            write_json_seconds(&mut body, *t);
            body.push(',');
            write_json_string(&mut body, v);
            body.push(']');
        }
        Value::Vector(samples) => {
            body.push_str("vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str("{\"metric\":");
                write_labels(&mut body, &s.labels);
                match &s.h {
                    Some(h) => {
                        body.push_str(",\"histogram\":");
                        write_histogram_point(&mut body, s.t, h);
                    }
                    None => {
                        body.push_str(",\"value\":");
                        write_point(&mut body, s.t, s.v);
                    }
                }
                body.push('}');
            }
            body.push(']');
        }
        Value::Matrix(series) => {
            body.push_str("matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str("{\"metric\":");
                write_labels(&mut body, &s.labels);
                // As Prometheus: each list only when it has points.
                if !s.points.is_empty() || s.histograms.is_empty() {
                    body.push_str(",\"values\":[");
                    for (j, (t, v)) in s.points.iter().enumerate() {
                        if j > 0 {
                            body.push(',');
                        }
                        write_point(&mut body, *t, *v);
                    }
                    body.push(']');
                }
                if !s.histograms.is_empty() {
                    body.push_str(",\"histograms\":[");
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            body.push(',');
                        }
                        write_histogram_point(&mut body, *t, h);
                    }
                    body.push(']');
                }
                body.push('}');
            }
            body.push(']');
        }
    }
    if with_stats {
        let st = &output.stats;
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let _ = write!(
            body,
            ",\"stats\":{{\"timings\":{{\"evalTotalTime\":{},\"resultSortTime\":0,\"queryPreparationTime\":{},\"innerEvalTime\":{},\"execQueueTime\":{},\"execTotalTime\":{}}},\"samples\":{{\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
            secs(st.eval_time),
            secs(st.parse_time),
            secs(st.eval_time),
            secs(st.queue_time),
            secs(st.queue_time + st.parse_time + st.eval_time),
            st.total_samples,
            st.peak_samples,
        );
    }
    body.push('}');
    for (key, list) in [("warnings", &output.warnings), ("infos", &output.infos)] {
        if !list.is_empty() {
            let _ = write!(body, ",\"{key}\":[");
            for (i, w) in list.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                write_json_string(&mut body, w);
            }
            body.push(']');
        }
    }
    body.push('}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `[<seconds>,"<value>"]`.
/// `[t, {"count": "..", "sum": "..", "buckets": [[rule, "lower", "upper",
/// "count"], ..]}]`, Prometheus's JSON for a native histogram sample:
/// numbers as strings, buckets with a count above zero in ascending order,
/// `buckets` left out when there is none.
pub(crate) fn write_histogram_point(
    out: &mut String,
    t: i64,
    h: &model::histogram::FloatHistogram,
) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",{\"count\":\"");
    write_go_float(out, h.count);
    out.push_str("\",\"sum\":\"");
    write_go_float(out, h.sum);
    out.push('"');
    let buckets = h.buckets();
    if !buckets.is_empty() {
        out.push_str(",\"buckets\":[");
        for (i, b) in buckets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{},\"", b.boundary_rule());
            write_go_float(out, b.lower);
            out.push_str("\",\"");
            write_go_float(out, b.upper);
            out.push_str("\",\"");
            write_go_float(out, b.count);
            out.push_str("\"]");
        }
        out.push(']');
    }
    out.push_str("}]");
}

/// Prometheus's `jsonutil.MarshalFloat` text for a number of a histogram:
/// Go's shortest `'f'` form, but `'e'` (`2.5e-07`, `1e+21`: a signed,
/// at least two-digit exponent) below 1e-6 and from 1e21 in magnitude.
pub(crate) fn write_go_float(out: &mut String, v: f64) {
    let magnitude = v.abs();
    if v.is_finite() && magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        if let Some(decimal) = model::float::Decimal::shortest(v) {
            decimal.write_exponent(out);
        }
    } else {
        write_value(out, v);
    }
}

/// A vector or matrix point as Prometheus's `marshalPointJSON` writes it:
/// `jsonutil.MarshalTimestamp` and `jsonutil.MarshalValue`.
fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",\"");
    write_go_float(out, v);
    out.push_str("\"]");
}

/// A scalar result as Prometheus's `Scalar.MarshalJSON` writes it: the
/// time as a JSON float (Go's shortest form: `1.5`, not `1.500`) and the
/// value in Go's `'f'` form at every magnitude.
fn write_scalar_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_json_seconds(out, t);
    out.push_str(",\"");
    write_value(out, v);
    out.push_str("\"]");
}

/// Prometheus's `jsonutil.MarshalTimestamp`: Unix seconds, then the
/// milliseconds as three decimals when there are any: 1500 ms is `1.500`,
/// 1000 ms is `1`, -1 ms is `-0.001`.
pub(crate) fn write_timestamp(out: &mut String, t_ms: i64) {
    let abs = t_ms.unsigned_abs();
    let (secs, ms) = (abs / 1000, abs % 1000);
    if t_ms < 0 {
        out.push('-');
    }
    out.push_str(itoa::Buffer::new().format(secs));
    if ms != 0 {
        out.push('.');
        for d in [ms / 100, ms / 10 % 10, ms % 10] {
            out.push(char::from(b'0' + d as u8));
        }
    }
}

/// Milliseconds as Go's `encoding/json` writes `float64(t) / 1000` (scalar
/// and string results): Unix seconds with the decimals, trailing zeros
/// dropped: 1500 ms is `1.5`, 1000 ms is `1`, -1 ms is `-0.001`.
pub(crate) fn write_json_seconds(out: &mut String, t_ms: i64) {
    write_timestamp(out, t_ms);
    if t_ms % 1000 != 0 {
        // The three decimals hold a non-zero digit, which stops the trim.
        while out.ends_with('0') {
            out.pop();
        }
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, which Prometheus uses for
/// scalar results (points use [`write_go_float`]): the shortest digits
/// that read back exactly, never an exponent.
pub(crate) fn write_value(out: &mut String, v: f64) {
    model::float::write_fixed(out, v);
}

pub(crate) fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, l.name);
        out.push(':');
        write_json_string(out, l.value);
    }
    out.push('}');
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    // Runs of bytes that need no escape are copied whole; every byte that
    // does is ASCII, so the cuts fall on character boundaries.
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_query_deadline_never_passes_the_request_timeout() {
        let limit = Duration::from_secs(120);
        let with = |t: Option<u64>| {
            let options = promql::QueryOptions {
                timeout: t.map(Duration::from_secs),
                ..Default::default()
            };
            super::within(options, limit).timeout
        };
        assert_eq!(with(None), Some(limit));
        assert_eq!(with(Some(300)), Some(limit));
        assert_eq!(with(Some(5)), Some(Duration::from_secs(5)));
    }

    #[test]
    fn histogram_numbers_as_go_marshals_them() {
        let text = |v: f64| {
            let mut out = String::new();
            super::write_go_float(&mut out, v);
            out
        };
        assert_eq!(text(2.3283064365386963e-10), "2.3283064365386963e-10");
        assert_eq!(text(0.0000152587890625), "0.0000152587890625");
        assert_eq!(text(1e21), "1e+21");
        assert_eq!(text(-2.5e-7), "-2.5e-07");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(f64::INFINITY), "+Inf");
        assert_eq!(text(123.5), "123.5");
    }

    use super::*;

    /// Label names and values read back exactly by a JSON parser, escapes
    /// and multi-byte characters included.
    #[test]
    fn json_strings_read_back_as_written() {
        for text in [
            "",
            "plain",
            "quote\" and \\ back",
            "\n\r\t\u{1}\u{1f} controls",
            "ünïcödé ✓ 🦅",
            "\"",
            "ends with \\",
            "é\"é\\é\u{7}",
        ] {
            let mut out = String::new();
            write_json_string(&mut out, text);
            let back: String = serde_json::from_str(&out).expect(&out);
            assert_eq!(back, text, "{out}");
        }
    }

    #[test]
    fn timestamps_like_prometheus() {
        // Points: jsonutil.MarshalTimestamp, three decimals when any.
        for (ms, want) in [
            (1500, "1.500"),
            (1050, "1.050"),
            (1000, "1"),
            (1001, "1.001"),
            (-1, "-0.001"),
            (-1500, "-1.500"),
            (0, "0"),
            (1435781451781, "1435781451.781"),
        ] {
            let mut s = String::new();
            write_timestamp(&mut s, ms);
            assert_eq!(s, want, "{ms}");
        }
        // Scalar and string results: encoding/json's float64, shortest.
        for (ms, want) in [
            (1500, "1.5"),
            (1050, "1.05"),
            (1000, "1"),
            (1001, "1.001"),
            (-1, "-0.001"),
            (0, "0"),
            (1435781451781, "1435781451.781"),
        ] {
            let mut s = String::new();
            write_json_seconds(&mut s, ms);
            assert_eq!(s, want, "{ms}");
        }
    }

    #[test]
    fn values_like_go_format_float_f() {
        for (v, want) in [
            (1.0, "1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1000000000000000000000"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (1.5e-7, "0.00000015"),
        ] {
            let mut s = String::new();
            write_value(&mut s, v);
            assert_eq!(s, want);
        }
    }

    /// Timestamps as Prometheus writes them, by the hand-written digit
    /// paths (numbers: `model::float`'s tests).
    #[test]
    fn timestamps_write_what_the_formatter_writes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let ms = next() as i64 >> (next() % 60);
            let (abs, sign) = (ms.unsigned_abs(), if ms < 0 { "-" } else { "" });
            let full = format!("{sign}{}.{:03}", abs / 1000, abs % 1000);
            let mut s = String::new();
            write_timestamp(&mut s, ms);
            let want = if abs % 1000 == 0 {
                format!("{sign}{}", abs / 1000)
            } else {
                full.clone()
            };
            assert_eq!(s, want, "{ms}");
            let mut s = String::new();
            write_json_seconds(&mut s, ms);
            let want = full.trim_end_matches('0').trim_end_matches('.');
            assert_eq!(s, want, "{ms}");
        }
    }

    #[test]
    fn json_strings_escape_controls() {
        let mut s = String::new();
        write_json_string(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, r#""a\"b\\c\nd\u0001""#);
    }
}
