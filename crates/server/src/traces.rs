//! OTLP traces in (`docs/traces.md`): `POST /v1/traces` on the main port
//! and the OTLP/HTTP listener, `TraceService/Export` on the OTLP/gRPC
//! listener. Spans are converted into the trace store's [`Span`]s, logged
//! (fsynced) before the answer, and counted into the spanmetrics
//! connector's series ([`SpanMetrics`]).
//!
//! Answers as for OTLP metrics (`otlp.rs`): 200 with `partial_success`
//! naming spans refused (bad IDs), 400 for an unreadable body, 415 for
//! another content type, 429 past the in-flight limit and 503 when the
//! store cannot write, both with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use model::labels::Labels;
use traces::{Attribute, Event, Link, Span, Value};

use crate::ingest::read_body_limited;
use crate::otlp::{
    CODE_INTERNAL, CODE_RESOURCE_EXHAUSTED, CODE_UNAVAILABLE, Slot, answer, error_answer,
    grpc_encoding, grpc_error, grpc_message, grpc_ok, grpc_status, header_text, http_format,
    too_many,
};
use crate::{AppState, ErrorType};

/// The gRPC method OTLP trace exporters call.
pub const GRPC_TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// What a request's spans became.
pub struct Converted {
    pub spans: Vec<Span>,
    pub rejected: i64,
    pub errors: Vec<String>,
}

fn value(v: &otlp::proto::AnyValue) -> Value {
    use otlp::proto::any_value::Value as V;
    match &v.value {
        Some(V::StringValue(s)) => Value::Str(s.clone()),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::Int(*i),
        Some(V::DoubleValue(d)) => Value::Double(*d),
        Some(V::BytesValue(b)) => Value::Bytes(b.clone()),
        Some(V::ArrayValue(a)) => Value::Json(json_of_array(a).to_string()),
        Some(V::KvlistValue(kv)) => Value::Json(json_of_kvlist(kv).to_string()),
        None => Value::Str(String::new()),
    }
}

fn json_of(v: &otlp::proto::AnyValue) -> serde_json::Value {
    match value(v) {
        Value::Str(s) => s.into(),
        Value::Bool(b) => b.into(),
        Value::Int(i) => i.into(),
        Value::Double(d) => d.into(),
        Value::Bytes(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        Value::Json(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::Null),
    }
}

fn json_of_array(a: &otlp::proto::ArrayValue) -> serde_json::Value {
    a.values.iter().map(json_of).collect()
}

fn json_of_kvlist(kv: &otlp::proto::KeyValueList) -> serde_json::Value {
    kv.values
        .iter()
        .map(|k| {
            (
                k.key.clone(),
                k.value.as_ref().map_or(serde_json::Value::Null, json_of),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn attributes(kvs: &[otlp::proto::KeyValue]) -> Vec<Attribute> {
    kvs.iter()
        .map(|kv| Attribute {
            key: kv.key.clone(),
            value: kv.value.as_ref().map_or(Value::Str(String::new()), value),
        })
        .collect()
}

fn id<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let id: [u8; N] = bytes.try_into().ok()?;
    (id != [0; N]).then_some(id)
}

/// Converts an export request into stored spans; spans with a missing or
/// malformed trace or span ID are refused and counted.
pub fn convert(request: &otlp::proto_trace::ExportTraceServiceRequest) -> Converted {
    let mut out = Converted {
        spans: Vec::new(),
        rejected: 0,
        errors: Vec::new(),
    };
    for rs in &request.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource
            .iter()
            .find(|a| a.key == "service.name")
            .map(|a| a.value.to_text())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown_service".to_string());
        for ss in &rs.scope_spans {
            let (scope_name, scope_version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.clone(), s.version.clone()))
                .unwrap_or_default();
            for s in &ss.spans {
                let (Some(trace_id), Some(span_id)) = (id::<16>(&s.trace_id), id::<8>(&s.span_id))
                else {
                    out.rejected += 1;
                    if out.errors.len() < 10 {
                        out.errors.push(format!(
                            "span {:?}: the trace ID must be 16 bytes and the span ID 8, not all zero",
                            s.name
                        ));
                    }
                    continue;
                };
                let parent_span_id = match s.parent_span_id.len() {
                    0 => [0; 8],
                    8 => id::<8>(&s.parent_span_id).unwrap_or([0; 8]),
                    _ => {
                        out.rejected += 1;
                        if out.errors.len() < 10 {
                            out.errors.push(format!(
                                "span {:?}: the parent span ID must be 8 bytes",
                                s.name
                            ));
                        }
                        continue;
                    }
                };
                let status = s.status.as_ref();
                out.spans.push(Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    start_unix_nano: s.start_time_unix_nano,
                    duration_nano: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
                    kind: u8::try_from(s.kind).ok().filter(|k| *k <= 5).unwrap_or(0),
                    status_code: status
                        .and_then(|st| u8::try_from(st.code).ok())
                        .filter(|c| *c <= 2)
                        .unwrap_or(0),
                    service: service.clone(),
                    name: s.name.clone(),
                    status_message: status.map(|st| st.message.clone()).unwrap_or_default(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    attributes: attributes(&s.attributes),
                    resource: resource.clone(),
                    events: s
                        .events
                        .iter()
                        .map(|e| Event {
                            time_unix_nano: e.time_unix_nano,
                            name: e.name.clone(),
                            attributes: attributes(&e.attributes),
                        })
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .filter_map(|l| {
                            Some(Link {
                                trace_id: id::<16>(&l.trace_id)?,
                                span_id: id::<8>(&l.span_id)?,
                                attributes: attributes(&l.attributes),
                            })
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

/// The spanmetrics connector's default histogram buckets (2ms ... 15s),
/// in seconds.
pub const SPAN_METRICS_BUCKETS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// The spanmetrics connector's series, as Prometheus names them from its
/// default namespace `traces.span.metrics` with `histogram.unit: s`:
/// `traces_span_metrics_calls_total` and
/// `traces_span_metrics_duration_seconds_{bucket,sum,count}`, labelled
/// `service_name`, `span_name`, `span_kind`, `status_code`. Running totals
/// since the process started (a restart is a counter reset).
#[derive(Default)]
pub struct SpanMetrics {
    /// service → span name → totals per kind and status
    /// (`kind * 3 + status`), so that counting a span allocates nothing
    /// once its series exist.
    totals: Mutex<SpanTotals>,
}

#[derive(Default)]
struct SpanTotals {
    by_service: HashMap<String, HashMap<String, Box<[Totals; 18]>>>,
    /// Bumped per [`SpanMetrics::observe`] call to find the series it
    /// touched.
    generation: u64,
}

#[derive(Clone, Default)]
struct Totals {
    calls: u64,
    buckets: [u64; SPAN_METRICS_BUCKETS.len()],
    sum_seconds: f64,
    generation: u64,
}

impl SpanMetrics {
    /// Counts `spans` and returns the samples (at `t_ms`) of every series
    /// they touched.
    pub fn observe(&self, spans: &[Span], t_ms: i64) -> Vec<(Labels, i64, f64)> {
        let mut guard = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let totals = &mut *guard;
        totals.generation += 1;
        let generation = totals.generation;
        let mut touched: Vec<(String, String, usize)> = Vec::new();
        for s in spans {
            let names = match totals.by_service.get_mut(s.service.as_str()) {
                Some(names) => names,
                None => totals.by_service.entry(s.service.clone()).or_default(),
            };
            let all = match names.get_mut(s.name.as_str()) {
                Some(all) => all,
                None => names.entry(s.name.clone()).or_default(),
            };
            let slot = usize::from(s.kind.min(5)) * 3 + usize::from(s.status_code.min(2));
            let t = &mut all[slot];
            if t.generation != generation {
                t.generation = generation;
                touched.push((s.service.clone(), s.name.clone(), slot));
            }
            let seconds = s.duration_nano as f64 / 1e9;
            t.calls += 1;
            t.sum_seconds += seconds;
            let first = SPAN_METRICS_BUCKETS.partition_point(|le| *le < seconds);
            for b in &mut t.buckets[first..] {
                *b += 1;
            }
        }
        let mut samples = Vec::with_capacity(touched.len() * (SPAN_METRICS_BUCKETS.len() + 4));
        for (service, name, slot) in touched {
            let Some(t) = totals
                .by_service
                .get(&service)
                .and_then(|n| n.get(&name))
                .map(|all| &all[slot])
            else {
                continue;
            };
            let kind = traces::KIND_NAMES[slot / 3];
            let status = traces::STATUS_NAMES[slot % 3];
            let series = |metric: &str, le: Option<String>| {
                let mut pairs = vec![
                    ("__name__", metric.to_string()),
                    ("service_name", service.clone()),
                    ("span_name", name.clone()),
                    ("span_kind", kind.to_string()),
                    ("status_code", status.to_string()),
                ];
                if let Some(le) = le {
                    pairs.push(("le", le));
                }
                pairs.retain(|(_, v)| !v.is_empty());
                Labels::from_pairs(pairs)
            };
            samples.push((
                series("traces_span_metrics_calls_total", None),
                t_ms,
                t.calls as f64,
            ));
            for (i, le) in SPAN_METRICS_BUCKETS.iter().enumerate() {
                samples.push((
                    series(
                        "traces_span_metrics_duration_seconds_bucket",
                        Some(le.to_string()),
                    ),
                    t_ms,
                    t.buckets[i] as f64,
                ));
            }
            samples.push((
                series(
                    "traces_span_metrics_duration_seconds_bucket",
                    Some("+Inf".to_string()),
                ),
                t_ms,
                t.calls as f64,
            ));
            samples.push((
                series("traces_span_metrics_duration_seconds_sum", None),
                t_ms,
                t.sum_seconds,
            ));
            samples.push((
                series("traces_span_metrics_duration_seconds_count", None),
                t_ms,
                t.calls as f64,
            ));
        }
        samples
    }
}

/// What [`store`] kept and refused.
pub(crate) struct Stored {
    pub spans: u64,
    pub rejected: i64,
    pub message: String,
}

/// Converts `request`, logs the spans (returning once fsynced), then
/// writes their span metrics. The spans are acknowledged once logged: a
/// failure to write the metrics is logged, not answered.
pub(crate) fn store(
    state: &AppState,
    request: &otlp::proto_trace::ExportTraceServiceRequest,
) -> Result<Stored, (ErrorType, String)> {
    let Some(store) = state.trace_store() else {
        return Err((
            ErrorType::Unavailable,
            "no trace store: osprey runs without a data directory".to_string(),
        ));
    };
    let converted = convert(request);
    let n = converted.spans.len() as u64;
    let metrics = state.span_metrics_enabled().then(|| {
        state
            .span_metrics()
            .observe(&converted.spans, state.now_ms())
    });
    store
        .append(converted.spans)
        .map_err(|e| (ErrorType::Unavailable, e.to_string()))?;
    if let Some(samples) = metrics.filter(|s| !s.is_empty()) {
        let storage = state.appendable();
        let mut appender = storage.appender();
        let mut failed = None;
        for (labels, t, v) in &samples {
            if let Err(e) = appender.append(labels, *t, *v) {
                failed = Some(e.to_string());
                break;
            }
        }
        let result = match failed {
            Some(e) => {
                appender.rollback();
                Err(e)
            }
            None => appender.commit().map_err(|e| e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "writing span metrics failed");
        }
    }
    Ok(Stored {
        spans: n,
        rejected: converted.rejected,
        message: converted.errors.join("; "),
    })
}

/// `POST /v1/traces`.
pub(crate) async fn http_traces(State(state): State<AppState>, request: Request) -> Response {
    let json = match http_format(&request) {
        Ok(json) => json,
        Err(response) => return *response,
    };
    let Some(_slot) = Slot::take(&state) else {
        return too_many(json);
    };
    let encoding = header_text(&request, header::CONTENT_ENCODING);
    let limit = state.config().max_remote_write_decompressed_bytes;
    let body = match read_body_limited(request.into_body(), limit).await {
        Ok(body) => body,
        Err(e) => return error_answer(e.kind, &e.message, json),
    };
    let task_state = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let body =
            crate::push::decode_content(body, &encoding, limit).map_err(|e| (e.kind, e.message))?;
        let request = if json {
            otlp::decode_traces_json(&body)
        } else {
            otlp::decode_traces_protobuf(&body)
        }
        .map_err(|e| (ErrorType::BadData, e.to_string()))?;
        drop(body);
        store(&task_state, &request)
    })
    .await;
    match result {
        Ok(Ok(stored)) => {
            state.metrics().observe_otlp_spans(
                "http",
                stored.spans,
                u64::try_from(stored.rejected).unwrap_or(0),
            );
            answer(
                StatusCode::OK,
                json,
                otlp::encode_traces_response(stored.rejected, &stored.message, json),
            )
        }
        Ok(Err((kind, message))) => error_answer(kind, &message, json),
        Err(e) => error_answer(ErrorType::Internal, &format!("OTLP task failed: {e}"), json),
    }
}

/// `TraceService/Export` over gRPC.
pub(crate) async fn grpc_traces(State(state): State<AppState>, request: Request) -> Response {
    let Some(_slot) = Slot::take(&state) else {
        return grpc_status(
            CODE_UNAVAILABLE,
            "too many OTLP requests in flight; retry later",
        );
    };
    let encoding = match grpc_encoding(&request) {
        Ok(encoding) => encoding,
        Err(response) => return *response,
    };
    let limit = state.config().max_remote_write_decompressed_bytes;
    let body = match read_body_limited(request.into_body(), limit).await {
        Ok(body) => body,
        Err(e) => return grpc_status(CODE_RESOURCE_EXHAUSTED, &e.message),
    };
    let task_state = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let message = grpc_message(&body, &encoding, limit)?;
        let request = otlp::decode_traces_protobuf(&message)
            .map_err(|e| (ErrorType::BadData, e.to_string()))?;
        drop(message);
        store(&task_state, &request)
    })
    .await;
    match result {
        Ok(Ok(stored)) => {
            state.metrics().observe_otlp_spans(
                "grpc",
                stored.spans,
                u64::try_from(stored.rejected).unwrap_or(0),
            );
            grpc_ok(otlp::encode_traces_response(
                stored.rejected,
                &stored.message,
                false,
            ))
        }
        Ok(Err((kind, message))) => grpc_error(kind, &message),
        Err(e) => grpc_status(CODE_INTERNAL, &format!("OTLP task failed: {e}")),
    }
}

/// The store's options from the `traces:` section.
pub(crate) fn store_options(config: &config::traces::TracesConfig) -> traces::Options {
    traces::Options {
        retention: (config.retention_time_ms > 0).then(|| {
            std::time::Duration::from_millis(u64::try_from(config.retention_time_ms).unwrap_or(0))
        }),
        retention_bytes: (config.retention_size_bytes > 0).then_some(config.retention_size_bytes),
        ..traces::Options::defaults()
    }
}

/// Cuts blocks and applies retention every second: a cheap check when
/// nothing is due, and often enough that the head stays near
/// `block_spans` under a heavy ingest.
pub(crate) fn start_loop(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let store = state.trace_store()?.clone();
    let state = state.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let store = store.clone();
            let now_ns = u64::try_from(state.now_ms())
                .unwrap_or(0)
                .saturating_mul(1_000_000);
            match tokio::task::spawn_blocking(move || {
                let result = store.maintain(now_ns, false);
                (result, store.stats())
            })
            .await
            {
                Ok((result, stats)) => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "trace store maintenance failed");
                    }
                    state.metrics().set_trace_store(&stats);
                }
                Err(error) => tracing::warn!(%error, "trace store maintenance panicked"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(service: &str, name: &str, kind: u8, status: u8, duration_nano: u64) -> Span {
        Span {
            service: service.to_string(),
            name: name.to_string(),
            kind,
            status_code: status,
            duration_nano,
            ..Span::default()
        }
    }

    fn value(samples: &[(Labels, i64, f64)], metric: &str, le: Option<&str>) -> Option<f64> {
        samples
            .iter()
            .find(|(l, _, _)| l.metric_name() == Some(metric) && l.get("le") == le)
            .map(|(_, _, v)| *v)
    }

    /// Buckets are cumulative with `le` inclusive, as the connector's
    /// explicit-bucket histogram counts them.
    #[test]
    fn span_metrics_count_calls_and_durations_per_series() {
        let metrics = SpanMetrics::default();
        let first = metrics.observe(
            &[
                span("svc", "op", 2, 0, 2_000_000),
                span("svc", "op", 2, 0, 50_000_000),
                span("svc", "op", 2, 2, 20_000_000_000),
            ],
            1000,
        );
        // Two series touched: (server, unset) and (server, error).
        assert_eq!(first.len(), 2 * (SPAN_METRICS_BUCKETS.len() + 4));
        let ok: Vec<_> = first
            .iter()
            .filter(|(l, _, _)| l.get("status_code") == Some("STATUS_CODE_UNSET"))
            .cloned()
            .collect();
        assert_eq!(
            value(&ok, "traces_span_metrics_calls_total", None),
            Some(2.0)
        );
        assert_eq!(
            value(
                &ok,
                "traces_span_metrics_duration_seconds_bucket",
                Some("0.002")
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &ok,
                "traces_span_metrics_duration_seconds_bucket",
                Some("0.01")
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &ok,
                "traces_span_metrics_duration_seconds_bucket",
                Some("0.05")
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &ok,
                "traces_span_metrics_duration_seconds_bucket",
                Some("+Inf")
            ),
            Some(2.0)
        );
        let sum = value(&ok, "traces_span_metrics_duration_seconds_sum", None).expect("sum");
        assert!((sum - 0.052).abs() < 1e-12, "{sum}");
        let labels = &ok[0].0;
        assert_eq!(labels.get("span_kind"), Some("SPAN_KIND_SERVER"));
        assert_eq!(labels.get("service_name"), Some("svc"));
        assert_eq!(labels.get("span_name"), Some("op"));
        let err: Vec<_> = first
            .iter()
            .filter(|(l, _, _)| l.get("status_code") == Some("STATUS_CODE_ERROR"))
            .cloned()
            .collect();
        assert_eq!(
            value(
                &err,
                "traces_span_metrics_duration_seconds_bucket",
                Some("15")
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&err, "traces_span_metrics_duration_seconds_count", None),
            Some(1.0)
        );
        // Totals run on; only touched series are written again.
        let second = metrics.observe(&[span("svc", "op", 2, 0, 1)], 2000);
        assert_eq!(second.len(), SPAN_METRICS_BUCKETS.len() + 4);
        assert_eq!(
            value(&second, "traces_span_metrics_calls_total", None),
            Some(3.0)
        );
    }
}
