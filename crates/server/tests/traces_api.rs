//! OTLP traces and the trace query APIs through `router()` and `oneshot`:
//! without a trace store both answer 503 with `Retry-After` (exporters
//! retry); with one, a protobuf export across two services is answered
//! with an `ExportTraceServiceResponse`, the dependency between the
//! services is counted, Tempo's v2 trace comes back as a
//! `TraceByIDResponse` holding the exported spans, span metrics are
//! written to the metrics store, and bad requests answer 400/415.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use model::storage::Queryable;
use otlp::proto::{AnyValue, KeyValue, Resource, any_value};
use otlp::proto_trace as pt;
use prost::Message as _;
use server::testing::test_storage;
use server::{AppState, ServerConfig, router};

mod common;
use common::*;

const NOW_MS: i64 = 1_700_000_000_000;

fn state() -> (Arc<server::testing::MemoryStorage>, AppState) {
    let storage = test_storage();
    let config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    let state = AppState::with_clock(storage.clone(), config, Arc::new(|| NOW_MS));
    (storage, state)
}

async fn post(
    app: &Router,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (Reply, Option<String>) {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (
        Reply {
            status,
            content_type: String::new(),
            body,
        },
        retry_after,
    )
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(service.into())),
            }),
        }],
    })
}

fn span(id: u8, parent: Option<u8>, name: &str, start_ms: u64, end_ms: u64) -> pt::Span {
    let ns = |ms: u64| (NOW_MS as u64 + ms) * 1_000_000;
    pt::Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: ns(start_ms),
        end_time_unix_nano: ns(end_ms),
        ..Default::default()
    }
}

fn export() -> pt::ExportTraceServiceRequest {
    let scope = |spans| pt::ScopeSpans {
        spans,
        ..Default::default()
    };
    pt::ExportTraceServiceRequest {
        resource_spans: vec![
            pt::ResourceSpans {
                resource: resource("gateway"),
                scope_spans: vec![scope(vec![span(1, None, "POST /predict", 0, 30)])],
                schema_url: String::new(),
            },
            pt::ResourceSpans {
                resource: resource("model"),
                scope_spans: vec![scope(vec![
                    span(2, Some(1), "predict", 5, 25),
                    // A span without a valid ID is refused, the others kept.
                    pt::Span {
                        span_id: vec![1, 2, 3],
                        ..span(3, Some(2), "bad", 6, 7)
                    },
                ])],
                schema_url: String::new(),
            },
        ],
    }
}

#[tokio::test]
async fn without_a_store_exports_and_queries_answer_503_with_retry_after() {
    let (_, state) = state();
    let app = router(state);
    let (reply, retry) = post(
        &app,
        "/v1/traces",
        "application/x-protobuf",
        export().encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("1"));
    let status = otlp::proto::Status::decode(reply.body.as_slice()).unwrap();
    assert_eq!(status.code, 14, "UNAVAILABLE");
    let reply = get(&app, "/api/services").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["errorType"], "unavailable");
}

#[tokio::test]
async fn exports_are_stored_counted_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, state) = state();
    let store = traces::Store::open(dir.path(), traces::Options::defaults()).unwrap();
    assert!(state.set_trace_store(Arc::new(store)));
    let app = router(state);
    let (reply, _) = post(
        &app,
        "/v1/traces",
        "application/x-protobuf",
        export().encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = pt::ExportTraceServiceResponse::decode(reply.body.as_slice()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("\"bad\""),
        "{}",
        partial.error_message
    );
    // Dependencies (milliseconds), around the spans' time.
    let deps = get(
        &app,
        &format!("/api/dependencies?endTs={}&lookback=60000", NOW_MS + 1000),
    )
    .await;
    assert_eq!(deps.status, StatusCode::OK, "{}", deps.text());
    assert_eq!(
        deps.json()["data"],
        serde_json::json!([{"parent": "gateway", "child": "model", "callCount": 1}])
    );
    // Tempo v2 in protobuf: the two stored spans, by resource.
    let request = Request::get(format!("/api/v2/traces/{}", "07".repeat(16)))
        .header(header::ACCEPT, "application/protobuf")
        .body(Body::empty())
        .unwrap();
    let reply = send(&app, request).await;
    assert_eq!(reply.status, StatusCode::OK);
    let trace = pt::TempoTraceByIdResponse::decode(reply.body.as_slice())
        .unwrap()
        .trace
        .unwrap();
    let names: Vec<(String, String)> = trace
        .batches
        .iter()
        .flat_map(|rs| {
            let service = match &rs.resource.as_ref().unwrap().attributes[0]
                .value
                .as_ref()
                .unwrap()
                .value
            {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => String::new(),
            };
            rs.scope_spans
                .iter()
                .flat_map(|ss| ss.spans.iter())
                .map(move |s| (service.clone(), s.name.clone()))
        })
        .collect();
    assert_eq!(
        names,
        [
            ("gateway".to_string(), "POST /predict".to_string()),
            ("model".to_string(), "predict".to_string())
        ]
    );
    // OTLP/JSON of v2 otherwise.
    let json = get(&app, &format!("/api/v2/traces/{}", "07".repeat(16))).await;
    let spans = &json.json()["trace"]["resourceSpans"][1]["scopeSpans"][0]["spans"];
    assert_eq!(spans[0]["parentSpanId"], "0101010101010101");
    // Span metrics in the metrics store at the request's time.
    let querier = storage.querier(0, NOW_MS + 1).unwrap();
    let matchers = [model::Matcher::equal(
        "__name__",
        "traces_span_metrics_calls_total",
    )];
    let mut found: Vec<String> = querier
        .select(&matchers)
        .unwrap()
        .map(|series| {
            series
                .unwrap()
                .labels
                .get("service_name")
                .unwrap()
                .to_string()
        })
        .collect();
    found.sort();
    assert_eq!(found, ["gateway", "model"]);
    // Bad requests.
    let (reply, _) = post(
        &app,
        "/v1/traces",
        "application/x-protobuf",
        b"\xff\xff".to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (reply, _) = post(&app, "/v1/traces", "text/plain", b"{}".to_vec()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = get(&app, "/api/traces/not-hex").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = get(&app, "/api/search?q=%7Ba%3D1%20%7C%7C%20b%3D2%7D").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"].as_str().unwrap().contains("&& only"));
}
