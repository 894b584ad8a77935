//! The trace query APIs over the trace store (`docs/traces.md`):
//! Jaeger's HTTP API as the Jaeger UI and Grafana's Jaeger data source call
//! it (`/api/services`, `/api/services/{service}/operations`,
//! `/api/operations`, `/api/traces`, `/api/traces/{id}`,
//! `/api/dependencies`) and Tempo's (`/api/traces/{id}` in protobuf,
//! `/api/v2/traces/{id}`, `/api/search` with tags or a simple TraceQL
//! `q`, `/api/search/tags`, `/api/search/tag/{tag}/values` and their v2
//! forms, `/api/echo`).
//!
//! `/api/traces/{id}` is both Jaeger's and Tempo's path: a request whose
//! `Accept` names `application/protobuf` gets Tempo's `tempopb.Trace` (what
//! Grafana's Tempo data source asks for); any other gets Jaeger's JSON.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use serde_json::{Value as Json, json};
use traces::{Attribute, Span, Value};

use crate::AppState;

type Params = Vec<(String, String)>;

fn params(query: Option<String>) -> Params {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// An error both a Jaeger client (`errors`) and a Prometheus-style client
/// (`status`, `errorType`, `error`) can read.
fn error(status: StatusCode, message: &str) -> Response {
    let error_type = match status {
        StatusCode::BAD_REQUEST => "bad_data",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal",
    };
    (
        status,
        axum::Json(json!({
            "status": "error", "errorType": error_type, "error": message,
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": status.as_u16(), "msg": message}],
        })),
    )
        .into_response()
}

fn jaeger_ok(data: Json, total: usize) -> Response {
    axum::Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

fn no_store() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no trace store: osprey runs without a data directory",
    )
}

async fn with_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&traces::Store) -> T + Send + 'static,
) -> Result<T, Response> {
    let Some(store) = state.trace_store().cloned() else {
        return Err(no_store());
    };
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A trace ID in hex (Jaeger and Tempo accept 1 to 32 digits, left-padded).
pub fn parse_trace_id(text: &str) -> Result<[u8; 16], String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{text:?} is not a trace ID (1 to 32 hex digits)"));
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("{text:?} is not a trace ID"))?;
    }
    Ok(id)
}

/// A Go duration (`1.5s`, `100ms`, `10us`, `1m30s`) in nanoseconds, as
/// Jaeger's `minDuration`/`maxDuration` and TraceQL take them.
pub fn parse_go_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration such as 100ms or 1.5s");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[u..];
    }
    if !total.is_finite() || total < 0.0 || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total as u64)
}

fn kind_name(kind: u8) -> &'static str {
    [
        "unspecified",
        "internal",
        "server",
        "client",
        "producer",
        "consumer",
    ][usize::from(kind.min(5))]
}

fn jaeger_tag(a: &Attribute) -> Json {
    let (t, v) = match &a.value {
        Value::Str(s) | Value::Json(s) => ("string", json!(s)),
        Value::Bool(b) => ("bool", json!(b)),
        Value::Int(i) => ("int64", json!(i)),
        Value::Double(d) => ("float64", json!(d)),
        Value::Bytes(b) => ("binary", json!(hex(b))),
    };
    json!({"key": a.key, "type": t, "value": v})
}

fn str_tag(key: &str, value: &str) -> Json {
    json!({"key": key, "type": "string", "value": value})
}

/// One trace in Jaeger's JSON (`model/json`): spans with microsecond times
/// and `references`, and one process per distinct service and resource.
fn jaeger_trace(trace_id: &[u8; 16], spans: &[Span]) -> Json {
    let mut processes: Vec<(&str, &[Attribute])> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let p = match processes
            .iter()
            .position(|(svc, res)| *svc == s.service && *res == s.resource.as_slice())
        {
            Some(p) => p,
            None => {
                processes.push((&s.service, &s.resource));
                processes.len() - 1
            }
        };
        let mut tags: Vec<Json> = s.attributes.iter().map(jaeger_tag).collect();
        if !s.scope_name.is_empty() {
            tags.push(str_tag("otel.scope.name", &s.scope_name));
        }
        if !s.scope_version.is_empty() {
            tags.push(str_tag("otel.scope.version", &s.scope_version));
        }
        if s.kind > 1 {
            tags.push(str_tag("span.kind", kind_name(s.kind)));
        }
        match s.status_code {
            1 => tags.push(str_tag("otel.status_code", "OK")),
            2 => {
                tags.push(str_tag("otel.status_code", "ERROR"));
                tags.push(json!({"key": "error", "type": "bool", "value": true}));
            }
            _ => {}
        }
        if !s.status_message.is_empty() {
            tags.push(str_tag("otel.status_description", &s.status_message));
        }
        let mut references = Vec::new();
        if !s.is_root() {
            references.push(json!({"refType": "CHILD_OF", "traceID": hex(&s.trace_id), "spanID": hex(&s.parent_span_id)}));
        }
        for l in &s.links {
            references.push(json!({"refType": "FOLLOWS_FROM", "traceID": hex(&l.trace_id), "spanID": hex(&l.span_id)}));
        }
        let logs: Vec<Json> = s
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![str_tag("event", &e.name)];
                fields.extend(e.attributes.iter().map(jaeger_tag));
                json!({"timestamp": e.time_unix_nano / 1000, "fields": fields})
            })
            .collect();
        out.push(json!({
            "traceID": hex(&s.trace_id),
            "spanID": hex(&s.span_id),
            "operationName": s.name,
            "references": references,
            "flags": 1,
            "startTime": s.start_unix_nano / 1000,
            "duration": s.duration_nano / 1000,
            "tags": tags,
            "logs": logs,
            "processID": format!("p{}", p + 1),
            "warnings": null,
        }));
    }
    let processes: serde_json::Map<String, Json> = processes
        .iter()
        .enumerate()
        .map(|(i, (service, resource))| {
            let tags: Vec<Json> = resource
                .iter()
                .filter(|a| a.key != "service.name")
                .map(jaeger_tag)
                .collect();
            (
                format!("p{}", i + 1),
                json!({"serviceName": service, "tags": tags}),
            )
        })
        .collect();
    json!({"traceID": hex(trace_id), "spans": out, "processes": processes, "warnings": null})
}

/// `GET /api/services`.
pub(crate) async fn services(State(state): State<AppState>) -> Response {
    match with_store(&state, |s| s.services()).await {
        Ok(services) => {
            let n = services.len();
            jaeger_ok(json!(services), n)
        }
        Err(r) => r,
    }
}

/// `GET /api/services/{service}/operations`: operation names.
pub(crate) async fn service_operations(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Response {
    match with_store(&state, move |s| s.operations(Some(&service))).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|(_, n, _)| n).collect();
            names.dedup();
            let n = names.len();
            jaeger_ok(json!(names), n)
        }
        Err(r) => r,
    }
}

/// `GET /api/operations?service=&spanKind=`: names with their kinds.
pub(crate) async fn operations(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = params(query);
    let Some(service) = param(&params, "service").map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let kind = param(&params, "spanKind").map(str::to_string);
    match with_store(&state, move |s| s.operations(Some(&service))).await {
        Ok(ops) => {
            let data: Vec<Json> = ops
                .into_iter()
                .filter(|(_, _, k)| kind.as_deref().is_none_or(|want| want == kind_name(*k)))
                .map(|(_, name, k)| {
                    json!({"name": name, "spanKind": if k > 1 { kind_name(k) } else { "" }})
                })
                .collect();
            let n = data.len();
            jaeger_ok(json!(data), n)
        }
        Err(r) => r,
    }
}

fn now_us(state: &AppState) -> u64 {
    u64::try_from(state.now_ms())
        .unwrap_or(0)
        .saturating_mul(1000)
}

fn parse_u64(params: &Params, name: &str) -> Result<Option<u64>, String> {
    param(params, name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("parameter '{name}': {v:?} is not a whole number"))
        })
        .transpose()
}

/// Jaeger's search parameters as a store query.
fn jaeger_query(params: &Params, now_us: u64) -> Result<traces::Query, String> {
    let lookback_us = match param(params, "lookback") {
        Some("custom") | None => None,
        Some(l) => Some(parse_go_duration(l)? / 1000),
    };
    let end_us = parse_u64(params, "end")?.unwrap_or(now_us);
    let start_us = match parse_u64(params, "start")? {
        Some(s) => s,
        None => end_us.saturating_sub(lookback_us.unwrap_or(3600 * 1_000_000)),
    };
    if start_us > end_us {
        return Err("parameter 'start' is after 'end'".to_string());
    }
    let mut tags = Vec::new();
    if let Some(text) = param(params, "tags") {
        let map: BTreeMap<String, Json> = serde_json::from_str(text)
            .map_err(|e| format!("parameter 'tags' must be a JSON object of strings: {e}"))?;
        for (k, v) in map {
            let v = match v {
                Json::String(s) => s,
                other => other.to_string(),
            };
            tags.push((k, v));
        }
    }
    for (k, v) in params {
        if k == "tag" {
            let (key, value) = v
                .split_once(':')
                .ok_or_else(|| format!("parameter 'tag': {v:?} is not key:value"))?;
            tags.push((key.to_string(), value.to_string()));
        }
    }
    let limit = match parse_u64(params, "limit")? {
        Some(0) | None => 20,
        Some(n) => usize::try_from(n.min(10_000)).unwrap_or(10_000),
    };
    Ok(traces::Query {
        service: param(params, "service").map(str::to_string),
        operation: param(params, "operation")
            .filter(|o| *o != "all")
            .map(str::to_string),
        tags,
        min_duration_nano: param(params, "minDuration")
            .map(parse_go_duration)
            .transpose()?,
        max_duration_nano: param(params, "maxDuration")
            .map(parse_go_duration)
            .transpose()?,
        start_unix_nano: start_us.saturating_mul(1000),
        end_unix_nano: end_us.saturating_mul(1000),
        limit,
    })
}

/// `GET /api/traces`: Jaeger's search.
pub(crate) async fn jaeger_search(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = params(query);
    // `traceID=a&traceID=b`: those traces (the Jaeger UI's comparison view).
    let ids: Result<Vec<[u8; 16]>, String> = params
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| parse_trace_id(v))
        .collect();
    match ids {
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        Ok(ids) if !ids.is_empty() => {
            let result = with_store(&state, move |s| {
                let traces = s.traces(&ids);
                ids.iter()
                    .filter_map(|id| traces.get(id).map(|spans| jaeger_trace(id, spans)))
                    .collect::<Vec<Json>>()
            })
            .await;
            return match result {
                Ok(data) => {
                    let n = data.len();
                    jaeger_ok(json!(data), n)
                }
                Err(r) => r,
            };
        }
        Ok(_) => {}
    }
    let query = match jaeger_query(&params, now_us(&state)) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    if query.service.is_none() && query.tags.is_empty() {
        return error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    }
    let result = with_store(&state, move |s| {
        let found = s.search(&query);
        let ids: Vec<[u8; 16]> = found.iter().map(|f| f.trace_id).collect();
        let traces = s.traces(&ids);
        ids.iter()
            .filter_map(|id| traces.get(id).map(|spans| jaeger_trace(id, spans)))
            .collect::<Vec<Json>>()
    })
    .await;
    match result {
        Ok(data) => {
            let n = data.len();
            jaeger_ok(json!(data), n)
        }
        Err(r) => r,
    }
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/protobuf") || a.contains("application/x-protobuf"))
}

async fn load_trace(state: &AppState, id: &str) -> Result<([u8; 16], Vec<Span>), Response> {
    let trace_id = parse_trace_id(id).map_err(|e| error(StatusCode::BAD_REQUEST, &e))?;
    let mut traces = with_store(state, move |s| s.traces(&[trace_id])).await?;
    match traces.remove(&trace_id) {
        Some(spans) if !spans.is_empty() => Ok((trace_id, spans)),
        _ => Err(error(StatusCode::NOT_FOUND, "trace not found")),
    }
}

/// `GET /api/traces/{id}`: Jaeger's JSON, or Tempo's protobuf when asked.
pub(crate) async fn trace_by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (trace_id, spans) = match load_trace(&state, &id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if wants_protobuf(&headers) {
        let body = otlp::proto_trace::TempoTrace {
            batches: otlp_batches(&spans),
        }
        .encode_to_vec();
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/protobuf")],
            body,
        )
            .into_response();
    }
    jaeger_ok(json!([jaeger_trace(&trace_id, &spans)]), 1)
}

/// `GET /api/v2/traces/{id}`: Tempo's `TraceByIDResponse`, protobuf or
/// OTLP/JSON per `Accept`.
pub(crate) async fn tempo_trace_v2(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_, spans) = match load_trace(&state, &id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if wants_protobuf(&headers) {
        let body = otlp::proto_trace::TempoTraceByIdResponse {
            trace: Some(otlp::proto_trace::TempoTrace {
                batches: otlp_batches(&spans),
            }),
        }
        .encode_to_vec();
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/protobuf")],
            body,
        )
            .into_response();
    }
    axum::Json(json!({"trace": {"resourceSpans": otlp_json(&spans)}})).into_response()
}

fn any_value(v: &Value) -> otlp::proto::AnyValue {
    use otlp::proto::any_value::Value as V;
    otlp::proto::AnyValue {
        value: Some(match v {
            Value::Str(s) | Value::Json(s) => V::StringValue(s.clone()),
            Value::Bool(b) => V::BoolValue(*b),
            Value::Int(i) => V::IntValue(*i),
            Value::Double(d) => V::DoubleValue(*d),
            Value::Bytes(b) => V::BytesValue(b.clone()),
        }),
    }
}

fn key_values(attrs: &[Attribute]) -> Vec<otlp::proto::KeyValue> {
    attrs
        .iter()
        .map(|a| otlp::proto::KeyValue {
            key: a.key.clone(),
            value: Some(any_value(&a.value)),
        })
        .collect()
}

/// Spans grouped by resource then scope, as OTLP `ResourceSpans`.
fn otlp_batches(spans: &[Span]) -> Vec<otlp::proto_trace::ResourceSpans> {
    use otlp::proto_trace as pt;
    let mut out: Vec<(Vec<Attribute>, pt::ResourceSpans)> = Vec::new();
    for s in spans {
        let i = match out.iter().position(|(r, _)| *r == s.resource) {
            Some(i) => i,
            None => {
                out.push((
                    s.resource.clone(),
                    pt::ResourceSpans {
                        resource: Some(otlp::proto::Resource {
                            attributes: key_values(&s.resource),
                        }),
                        scope_spans: Vec::new(),
                        schema_url: String::new(),
                    },
                ));
                out.len() - 1
            }
        };
        let rs = &mut out[i].1;
        let j = match rs.scope_spans.iter().position(|ss| {
            ss.scope
                .as_ref()
                .is_some_and(|sc| sc.name == s.scope_name && sc.version == s.scope_version)
        }) {
            Some(j) => j,
            None => {
                rs.scope_spans.push(pt::ScopeSpans {
                    scope: Some(otlp::proto::InstrumentationScope {
                        name: s.scope_name.clone(),
                        version: s.scope_version.clone(),
                        attributes: Vec::new(),
                    }),
                    spans: Vec::new(),
                    schema_url: String::new(),
                });
                rs.scope_spans.len() - 1
            }
        };
        rs.scope_spans[j].spans.push(pt::Span {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            trace_state: String::new(),
            parent_span_id: if s.is_root() {
                Vec::new()
            } else {
                s.parent_span_id.to_vec()
            },
            flags: 0,
            name: s.name.clone(),
            kind: i32::from(s.kind),
            start_time_unix_nano: s.start_unix_nano,
            end_time_unix_nano: s.end_unix_nano(),
            attributes: key_values(&s.attributes),
            dropped_attributes_count: 0,
            events: s
                .events
                .iter()
                .map(|e| pt::Event {
                    time_unix_nano: e.time_unix_nano,
                    name: e.name.clone(),
                    attributes: key_values(&e.attributes),
                    dropped_attributes_count: 0,
                })
                .collect(),
            dropped_events_count: 0,
            links: s
                .links
                .iter()
                .map(|l| pt::Link {
                    trace_id: l.trace_id.to_vec(),
                    span_id: l.span_id.to_vec(),
                    trace_state: String::new(),
                    attributes: key_values(&l.attributes),
                    dropped_attributes_count: 0,
                    flags: 0,
                })
                .collect(),
            dropped_links_count: 0,
            status: Some(pt::Status {
                message: s.status_message.clone(),
                code: i32::from(s.status_code),
            }),
        });
    }
    out.into_iter().map(|(_, rs)| rs).collect()
}

fn json_value(v: &Value) -> Json {
    match v {
        Value::Str(s) | Value::Json(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Int(i) => json!({"intValue": i.to_string()}),
        Value::Double(d) => json!({"doubleValue": d}),
        Value::Bytes(b) => {
            use base64::Engine as _;
            json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)})
        }
    }
}

fn json_attrs(attrs: &[Attribute]) -> Json {
    attrs
        .iter()
        .map(|a| json!({"key": a.key, "value": json_value(&a.value)}))
        .collect()
}

/// OTLP/JSON `resourceSpans` (hex IDs, string nanoseconds).
fn otlp_json(spans: &[Span]) -> Json {
    otlp_batches(spans)
        .iter()
        .map(|rs| {
            json!({
                "resource": {"attributes": json_attrs(&to_attrs(rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[])))},
                "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
                    "scope": {"name": ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                              "version": ss.scope.as_ref().map(|s| s.version.clone()).unwrap_or_default()},
                    "spans": ss.spans.iter().map(|s| json!({
                        "traceId": hex(&s.trace_id),
                        "spanId": hex(&s.span_id),
                        "parentSpanId": hex(&s.parent_span_id),
                        "name": s.name,
                        "kind": s.kind,
                        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                        "attributes": json_attrs(&to_attrs(&s.attributes)),
                        "events": s.events.iter().map(|e| json!({
                            "timeUnixNano": e.time_unix_nano.to_string(),
                            "name": e.name,
                            "attributes": json_attrs(&to_attrs(&e.attributes)),
                        })).collect::<Vec<_>>(),
                        "status": s.status.as_ref().map(|st| json!({"code": st.code, "message": st.message})),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn to_attrs(kvs: &[otlp::proto::KeyValue]) -> Vec<Attribute> {
    use otlp::proto::any_value::Value as V;
    kvs.iter()
        .map(|kv| Attribute {
            key: kv.key.clone(),
            value: match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(V::StringValue(s)) => Value::Str(s.clone()),
                Some(V::BoolValue(b)) => Value::Bool(*b),
                Some(V::IntValue(i)) => Value::Int(*i),
                Some(V::DoubleValue(d)) => Value::Double(*d),
                Some(V::BytesValue(b)) => Value::Bytes(b.clone()),
                _ => Value::Str(String::new()),
            },
        })
        .collect()
}

/// `GET /api/dependencies?endTs=&lookback=` (milliseconds).
pub(crate) async fn dependencies(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = params(query);
    let (end_ms, lookback_ms) = match (parse_u64(&params, "endTs"), parse_u64(&params, "lookback"))
    {
        (Ok(e), Ok(l)) => (
            e.unwrap_or(now_us(&state) / 1000),
            l.unwrap_or(24 * 3600 * 1000),
        ),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let start = end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000);
    let end = end_ms.saturating_mul(1_000_000);
    match with_store(&state, move |s| s.dependencies(start, end)).await {
        Ok(deps) => {
            let data: Vec<Json> = deps
                .into_iter()
                .map(|(parent, child, n)| json!({"parent": parent, "child": child, "callCount": n}))
                .collect();
            let n = data.len();
            jaeger_ok(json!(data), n)
        }
        Err(r) => r,
    }
}

/// One condition of the TraceQL subset [`parse_traceql`] reads.
fn traceql_condition(cond: &str, q: &mut traces::Query) -> Result<(), String> {
    let unsupported = || {
        format!(
            "unsupported TraceQL condition {cond:?}: osprey reads {{ a = \"v\" && duration > 10ms && status = error ... }}"
        )
    };
    for op in [">=", "<=", ">", "<"] {
        if let Some((k, v)) = cond.split_once(op) {
            if k.trim() != "duration" && k.trim() != "traceDuration" {
                return Err(unsupported());
            }
            let d = parse_go_duration(v.trim())?;
            match op {
                ">" => q.min_duration_nano = Some(d.saturating_add(1)),
                ">=" => q.min_duration_nano = Some(d),
                "<" => q.max_duration_nano = Some(d.saturating_sub(1)),
                _ => q.max_duration_nano = Some(d),
            }
            return Ok(());
        }
    }
    let (k, v) = cond.split_once('=').ok_or_else(unsupported)?;
    if k.ends_with('!') || v.starts_with('~') {
        return Err(unsupported());
    }
    let k = k.trim();
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string();
    let key = k
        .strip_prefix("resource.")
        .or_else(|| k.strip_prefix("span."))
        .or_else(|| k.strip_prefix('.'))
        .unwrap_or(k);
    match key {
        "service.name" => q.service = Some(v),
        "name" => q.operation = Some(v),
        "status" => q.tags.push(("status".to_string(), v)),
        "kind" => q.tags.push(("kind".to_string(), v)),
        _ => q.tags.push((key.to_string(), v)),
    }
    Ok(())
}

/// The TraceQL that Grafana's Tempo search builder writes: one spanset,
/// conditions joined by `&&` (`{}` matches every trace).
pub fn parse_traceql(text: &str, q: &mut traces::Query) -> Result<(), String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("unsupported TraceQL {text:?}: one {{ ... }} spanset"))?;
    if inner.contains("||") || inner.contains('{') {
        return Err(format!(
            "unsupported TraceQL {text:?}: conditions joined by && only"
        ));
    }
    for cond in inner.split("&&") {
        if !cond.trim().is_empty() {
            traceql_condition(cond.trim(), q)?;
        }
    }
    Ok(())
}

/// `GET /api/search`: Tempo's search (seconds for `start`/`end`).
pub(crate) async fn tempo_search(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = params(query);
    let now_s = now_us(&state) / 1_000_000;
    let mut q = traces::Query::default();
    let parsed = (|| -> Result<(), String> {
        let end = parse_u64(&params, "end")?.unwrap_or(now_s);
        let start = parse_u64(&params, "start")?.unwrap_or(end.saturating_sub(3600));
        q.start_unix_nano = start.saturating_mul(1_000_000_000);
        q.end_unix_nano = end.saturating_add(1).saturating_mul(1_000_000_000);
        q.limit = match parse_u64(&params, "limit")? {
            Some(0) | None => 20,
            Some(n) => usize::try_from(n.min(10_000)).unwrap_or(10_000),
        };
        q.min_duration_nano = param(&params, "minDuration")
            .map(parse_go_duration)
            .transpose()?;
        q.max_duration_nano = param(&params, "maxDuration")
            .map(parse_go_duration)
            .transpose()?;
        if let Some(tags) = param(&params, "tags") {
            // logfmt: key=value, values optionally quoted.
            for pair in tags.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("parameter 'tags': {pair:?} is not key=value"))?;
                let v = v.trim_matches('"').to_string();
                match k {
                    "service.name" => q.service = Some(v),
                    "name" => q.operation = Some(v),
                    _ => q.tags.push((k.to_string(), v)),
                }
            }
        }
        if let Some(text) = param(&params, "q") {
            parse_traceql(text, &mut q)?;
        }
        Ok(())
    })();
    if let Err(e) = parsed {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let result = with_store(&state, move |s| {
        let found = s.search(&q);
        let ids: Vec<[u8; 16]> = found.iter().map(|f| f.trace_id).collect();
        let traces = s.traces(&ids);
        ids.iter()
            .filter_map(|id| {
                let spans = traces.get(id)?;
                let root = spans.iter().find(|s| s.is_root()).or(spans.first())?;
                let start = spans.iter().map(|s| s.start_unix_nano).min()?;
                let end = spans.iter().map(Span::end_unix_nano).max()?;
                // The matching spans, at most 3 as Tempo's `spss` default.
                let matching: Vec<&Span> = spans
                    .iter()
                    .filter(|s| traces::span_matches(&q, s))
                    .collect();
                let shown: Vec<Json> = matching
                    .iter()
                    .take(3)
                    .map(|s| {
                        let attributes: Vec<Json> = s
                            .attributes
                            .iter()
                            .chain(&s.resource)
                            .filter(|a| {
                                a.key == "service.name" || q.tags.iter().any(|(k, _)| *k == a.key)
                            })
                            .map(|a| json!({"key": a.key, "value": json_value(&a.value)}))
                            .collect();
                        json!({
                            "spanID": hex(&s.span_id),
                            "name": s.name,
                            "startTimeUnixNano": s.start_unix_nano.to_string(),
                            "durationNanos": s.duration_nano.to_string(),
                            "attributes": attributes,
                        })
                    })
                    .collect();
                let span_set = json!({"spans": shown, "matched": matching.len()});
                Some(json!({
                    "traceID": hex(id),
                    "rootServiceName": root.service,
                    "rootTraceName": root.name,
                    "startTimeUnixNano": start.to_string(),
                    "durationMs": (end - start) / 1_000_000,
                    "spanSet": span_set,
                    "spanSets": [span_set],
                }))
            })
            .collect::<Vec<Json>>()
    })
    .await;
    match result {
        Ok(traces) => {
            let n = traces.len();
            axum::Json(json!({"traces": traces, "metrics": {"inspectedTraces": n, "completedJobs": 1, "totalJobs": 1}}))
                .into_response()
        }
        Err(r) => r,
    }
}

/// `GET /api/search/tags`.
pub(crate) async fn tempo_tags(State(state): State<AppState>) -> Response {
    match with_store(&state, |s| s.tag_names()).await {
        Ok((span, resource)) => {
            let mut all: Vec<String> = span.into_iter().chain(resource).collect();
            all.sort();
            all.dedup();
            axum::Json(json!({"tagNames": all})).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /api/v2/search/tags`: by scope.
pub(crate) async fn tempo_tags_v2(State(state): State<AppState>) -> Response {
    match with_store(&state, |s| s.tag_names()).await {
        Ok((span, resource)) => axum::Json(json!({"scopes": [
            {"name": "span", "tags": span},
            {"name": "resource", "tags": resource},
            {"name": "intrinsic", "tags": ["duration", "kind", "name", "status", "statusMessage"]},
        ]}))
        .into_response(),
        Err(r) => r,
    }
}

fn tag_key(tag: &str) -> String {
    tag.strip_prefix("resource.")
        .or_else(|| tag.strip_prefix("span."))
        .or_else(|| tag.strip_prefix('.'))
        .unwrap_or(tag)
        .to_string()
}

async fn values_of(state: &AppState, tag: &str) -> Result<Vec<String>, Response> {
    let key = tag_key(tag);
    match key.as_str() {
        "status" => Ok(vec!["error".into(), "ok".into(), "unset".into()]),
        "kind" => Ok([
            "client",
            "consumer",
            "internal",
            "producer",
            "server",
            "unspecified",
        ]
        .map(String::from)
        .to_vec()),
        _ => with_store(state, move |s| s.tag_values(&key, 1000)).await,
    }
}

/// `GET /api/search/tag/{tag}/values`.
pub(crate) async fn tempo_tag_values(
    State(state): State<AppState>,
    Path(tag): Path<String>,
) -> Response {
    match values_of(&state, &tag).await {
        Ok(values) => axum::Json(json!({"tagValues": values})).into_response(),
        Err(r) => r,
    }
}

/// `GET /api/v2/search/tag/{tag}/values`: typed values.
pub(crate) async fn tempo_tag_values_v2(
    State(state): State<AppState>,
    Path(tag): Path<String>,
) -> Response {
    let keyword = matches!(tag_key(&tag).as_str(), "status" | "kind");
    match values_of(&state, &tag).await {
        Ok(values) => {
            let typed: Vec<Json> = values
                .into_iter()
                .map(|v| json!({"type": if keyword { "keyword" } else { "string" }, "value": v}))
                .collect();
            axum::Json(json!({"tagValues": typed})).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /api/echo`: Tempo's liveness answer, which Grafana's data source
/// test calls.
pub(crate) async fn tempo_echo() -> Response {
    (StatusCode::OK, "echo").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_ids_and_traceql() {
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("100us"), Ok(100_000));
        assert!(parse_go_duration("10 parsecs").is_err());
        assert!(parse_go_duration("").is_err());
        let mut id = [0u8; 16];
        id[15] = 0xab;
        assert_eq!(parse_trace_id("ab"), Ok(id));
        assert!(parse_trace_id("xyz").is_err());
        assert!(parse_trace_id(&"a".repeat(33)).is_err());
        let mut q = traces::Query::default();
        parse_traceql(
            r#"{resource.service.name="trainer" && name="forward_pass" && duration>10ms && span.step=3 && status=error}"#,
            &mut q,
        )
        .expect("traceql");
        assert_eq!(q.service.as_deref(), Some("trainer"));
        assert_eq!(q.operation.as_deref(), Some("forward_pass"));
        assert_eq!(q.min_duration_nano, Some(10_000_001));
        assert_eq!(
            q.tags,
            [
                ("step".to_string(), "3".to_string()),
                ("status".to_string(), "error".to_string())
            ]
        );
        assert!(parse_traceql("{a=1 || b=2}", &mut q).is_err());
        assert!(parse_traceql("{a != 1}", &mut q).is_err());
        parse_traceql("{}", &mut traces::Query::default()).expect("empty");
    }
}
