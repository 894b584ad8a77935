//! OTLP traces end to end: the real Python OpenTelemetry SDK (the OTLP
//! gRPC and HTTP span exporters) sends nested spans (`training_step` →
//! `forward_pass`, `backward_pass`) to a real osprey; the Jaeger API
//! (`/api/services`, `/api/operations`, `/api/traces`, `/api/traces/{id}`)
//! and the Tempo API (`/api/search`, `/api/traces/{id}` as protobuf, read
//! back with the reference `opentelemetry-proto` decoder) return them in
//! the shapes Grafana's data sources parse; the span metrics answer a
//! PromQL query; OTLP's error answers; and no acknowledged span is lost to
//! `kill -9` under load.
//!
//! Without python3 and those packages the SDK part prints why and is
//! skipped, unless `OSPREY_REQUIRE_EXTERNAL=1`.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::{
    ChildGuard, Server, free_addr, http, instant_values as query, python_imports, urlencode,
};

const SDK_APP: &str = r#"
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Status, StatusCode, SpanKind

addr, mode = sys.argv[1], sys.argv[2]
if mode == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from grpc import Compression
    exporter = OTLPSpanExporter(endpoint=addr, insecure=True, compression=Compression.Gzip)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http import Compression
    exporter = OTLPSpanExporter(endpoint=f"http://{addr}/v1/traces", compression=Compression.Gzip)
provider = TracerProvider(resource=Resource.create({"service.name": f"trainer-{mode}", "host.name": "gpu-7"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("osprey.test", "1.0")
ids = []
for step in range(3):
    with tracer.start_as_current_span("training_step", kind=SpanKind.SERVER, attributes={"step": step}) as root:
        ids.append(format(root.get_span_context().trace_id, "032x"))
        with tracer.start_as_current_span("forward_pass", attributes={"batch.size": 32}) as fwd:
            fwd.add_event("batch_loaded", {"size": 32})
        with tracer.start_as_current_span("backward_pass") as bwd:
            if step == 2:
                bwd.set_status(Status(StatusCode.ERROR, "nan loss"))
ok = provider.force_flush()
provider.shutdown()
if not ok:
    sys.exit("export failed")
print(" ".join(ids))
"#;

const DECODE_TEMPO: &str = r#"
import sys, json
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
data = TracesData()
data.ParseFromString(open(sys.argv[1], "rb").read())
spans = []
for rs in data.resource_spans:
    service = [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"][0]
    for ss in rs.scope_spans:
        for s in ss.spans:
            spans.append({"service": service, "name": s.name, "trace_id": s.trace_id.hex(),
                          "parent": s.parent_span_id.hex(), "status": s.status.code,
                          "events": [e.name for e in s.events]})
print(json.dumps(sorted(spans, key=lambda s: s["name"])))
"#;

fn sdk_available() -> bool {
    python_imports(
        "opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "python3 with opentelemetry-sdk and the OTLP proto-grpc and proto-http exporters",
    )
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("get");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("json")
}

fn names(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect();
    out.sort();
    out
}

/// The fields Grafana's Jaeger data source reads from one trace
/// (`transformToDataFrame`: traceID, spanID, operationName, references,
/// startTime and duration in microseconds, processID → processes
/// serviceName and tags, tags, logs).
fn check_jaeger_trace(trace: &Value, trace_id: &str, service: &str, step: i64) {
    assert_eq!(trace["traceID"], trace_id);
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 3, "{trace}");
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s["operationName"] == n)
            .unwrap_or_else(|| panic!("no {n} in {trace}"))
    };
    let root = by_name("training_step");
    assert_eq!(root["references"], serde_json::json!([]));
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    let start = root["startTime"].as_i64().expect("µs integer");
    assert!(
        (now_us - start).abs() < 600_000_000,
        "startTime {start} is µs"
    );
    assert!(root["duration"].as_i64().expect("duration") >= 0);
    let process = &trace["processes"][root["processID"].as_str().expect("processID")];
    assert_eq!(process["serviceName"], service);
    assert!(
        process["tags"]
            .as_array()
            .expect("process tags")
            .iter()
            .any(|t| t["key"] == "host.name" && t["value"] == "gpu-7" && t["type"] == "string")
    );
    let tags = root["tags"].as_array().expect("tags");
    assert!(
        tags.iter()
            .any(|t| t["key"] == "step" && t["type"] == "int64" && t["value"] == step),
        "{tags:?}"
    );
    assert!(
        tags.iter()
            .any(|t| t["key"] == "span.kind" && t["value"] == "server")
    );
    for child in ["forward_pass", "backward_pass"] {
        let c = by_name(child);
        assert_eq!(c["traceID"], trace_id);
        assert_eq!(
            c["references"],
            serde_json::json!([{"refType": "CHILD_OF", "traceID": trace_id, "spanID": root["spanID"]}])
        );
        assert!(c["startTime"].as_i64().expect("start") >= start);
    }
    let log = &by_name("forward_pass")["logs"][0];
    assert!(log["timestamp"].as_i64().expect("log µs") >= start);
    assert!(
        log["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["key"] == "event" && f["value"] == "batch_loaded")
    );
    let error = by_name("backward_pass")["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .any(|t| t["key"] == "error" && t["value"] == true);
    assert_eq!(error, step == 2);
}

#[test]
fn the_python_sdk_sends_spans_that_jaeger_and_tempo_clients_read() {
    if !sdk_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let grpc_addr = free_addr();
    let otlp_http_addr = free_addr();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "otlp:\n  grpc_listen_address: {grpc_addr}\n  http_listen_address: {otlp_http_addr}\n"
        ),
    )
    .expect("config");
    let addr = free_addr();
    let config_arg = config.display().to_string();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("log"),
        &["--config", &config_arg],
    );
    let script = dir.path().join("app.py");
    std::fs::write(&script, SDK_APP).expect("script");
    let mut ids = std::collections::BTreeMap::new();
    for (mode, target) in [
        ("grpc", grpc_addr),
        ("http", addr),
        ("http4318", otlp_http_addr),
    ] {
        let sdk_mode = if mode == "grpc" { "grpc" } else { "http" };
        let out = ChildGuard::output(
            Command::new("python3")
                .arg(&script)
                .arg(target.to_string())
                .arg(sdk_mode),
            Duration::from_secs(60),
        )
        .expect("python3");
        assert!(
            out.status.success(),
            "SDK ({mode}) failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        ids.insert(
            mode,
            text.split(' ').map(str::to_string).collect::<Vec<_>>(),
        );
    }
    // Jaeger.
    let services = get_json(addr, "/api/services");
    assert_eq!(names(&services["data"]), ["trainer-grpc", "trainer-http"]);
    assert_eq!(services["total"], 2);
    let ops = get_json(addr, "/api/services/trainer-grpc/operations");
    assert_eq!(
        names(&ops["data"]),
        ["backward_pass", "forward_pass", "training_step"]
    );
    let ops = get_json(addr, "/api/operations?service=trainer-grpc&spanKind=server");
    assert_eq!(
        ops["data"],
        serde_json::json!([{"name": "training_step", "spanKind": "server"}])
    );
    for (mode, service) in [("grpc", "trainer-grpc"), ("http", "trainer-http")] {
        let found = get_json(
            addr,
            &format!("/api/traces?service={service}&operation=training_step&limit=20&lookback=1h"),
        );
        let data = found["data"].as_array().expect("data");
        let want = if mode == "grpc" { 3 } else { 6 };
        assert_eq!(data.len(), want, "{found}");
        for (step, id) in ids[mode].iter().enumerate() {
            let one = get_json(addr, &format!("/api/traces/{id}"));
            check_jaeger_trace(&one["data"][0], id, service, step as i64);
        }
    }
    // Several traces by ID, as the Jaeger UI compares them.
    let both = get_json(
        addr,
        &format!(
            "/api/traces?traceID={}&traceID={}",
            ids["grpc"][0], ids["http"][0]
        ),
    );
    assert_eq!(both["data"].as_array().expect("data").len(), 2);
    // Tags (JSON), durations and the time range in microseconds.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros();
    let tags = urlencode(r#"{"step":"1"}"#);
    let found = get_json(
        addr,
        &format!(
            "/api/traces?service=trainer-grpc&tags={tags}&start={}&end={now_us}&minDuration=0ms&maxDuration=1h",
            now_us - 600_000_000
        ),
    );
    let data = found["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["traceID"], ids["grpc"][1].as_str());
    let tags = urlencode(r#"{"error":"true"}"#);
    let found = get_json(
        addr,
        &format!("/api/traces?service=trainer-grpc&tags={tags}"),
    );
    assert_eq!(found["data"][0]["traceID"], ids["grpc"][2].as_str());
    let found = get_json(addr, "/api/traces?service=trainer-grpc&minDuration=1h");
    assert_eq!(found["data"], serde_json::json!([]));
    let (status, body) = http(
        addr,
        "GET",
        "/api/traces?service=x&minDuration=soon",
        &[],
        &[],
    )
    .expect("get");
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["errorType"], "bad_data");
    assert_eq!(body["errors"][0]["code"], 400);
    let (status, _) = http(
        addr,
        "GET",
        "/api/traces/00000000000000000000000000000001",
        &[],
        &[],
    )
    .expect("get");
    assert_eq!(status, 404);
    // Tempo: search by tags (logfmt) and by TraceQL, as Grafana sends them.
    let now_s = now_us / 1_000_000;
    let found = get_json(
        addr,
        &format!(
            "/api/search?tags={}&limit=20&start={}&end={now_s}",
            urlencode("service.name=trainer-grpc"),
            now_s - 600
        ),
    );
    let traces = found["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 3, "{found}");
    for t in traces {
        assert_eq!(t["rootServiceName"], "trainer-grpc");
        assert_eq!(t["rootTraceName"], "training_step");
        assert!(
            t["startTimeUnixNano"]
                .as_str()
                .expect("string")
                .parse::<u64>()
                .is_ok()
        );
        assert!(t["durationMs"].is_u64());
        assert!(ids["grpc"].contains(&t["traceID"].as_str().expect("id").to_string()));
    }
    let q = urlencode(
        r#"{resource.service.name="trainer-http" && name="backward_pass" && status=error}"#,
    );
    let found = get_json(addr, &format!("/api/search?q={q}"));
    let traces = found["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 2);
    let set = &traces[0]["spanSets"][0];
    assert_eq!(set["matched"], 1);
    assert_eq!(set["spans"][0]["name"], "backward_pass");
    assert!(
        set["spans"][0]["durationNanos"]
            .as_str()
            .expect("string")
            .parse::<u64>()
            .is_ok()
    );
    let tags = get_json(addr, "/api/v2/search/tags");
    assert!(
        tags["scopes"][1]["tags"]
            .as_array()
            .expect("resource")
            .contains(&"host.name".into())
    );
    let values = get_json(addr, "/api/v2/search/tag/resource.service.name/values");
    assert_eq!(
        values["tagValues"],
        serde_json::json!([{"type": "string", "value": "trainer-grpc"}, {"type": "string", "value": "trainer-http"}])
    );
    // Tempo's trace by ID in protobuf, decoded by the reference library.
    let id = &ids["grpc"][2];
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/traces/{id}"),
        &[("Accept", "application/protobuf")],
        &[],
    )
    .expect("get");
    assert_eq!(status, 200);
    let file = dir.path().join("trace.pb");
    std::fs::write(&file, &body).expect("write");
    let decoder = dir.path().join("decode.py");
    std::fs::write(&decoder, DECODE_TEMPO).expect("decoder");
    let out = ChildGuard::output(
        Command::new("python3").arg(&decoder).arg(&file),
        Duration::from_secs(60),
    )
    .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans: Value = serde_json::from_slice(&out.stdout).expect("json");
    let spans = spans.as_array().expect("spans");
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0]["name"], "backward_pass");
    assert_eq!(spans[0]["status"], 2);
    assert_eq!(spans[1]["events"], serde_json::json!(["batch_loaded"]));
    assert!(
        spans
            .iter()
            .all(|s| s["trace_id"] == id.as_str() && s["service"] == "trainer-grpc")
    );
    assert_eq!(spans[2]["parent"], "");
    // Span metrics, as the spanmetrics connector names them.
    assert_eq!(
        query(
            addr,
            r#"sum by (span_name, status_code) (traces_span_metrics_calls_total{service_name="trainer-http"})"#
        ),
        [
            (
                "span_name=backward_pass,status_code=STATUS_CODE_ERROR".to_string(),
                2.0
            ),
            (
                "span_name=backward_pass,status_code=STATUS_CODE_UNSET".to_string(),
                4.0
            ),
            (
                "span_name=forward_pass,status_code=STATUS_CODE_UNSET".to_string(),
                6.0
            ),
            (
                "span_name=training_step,status_code=STATUS_CODE_UNSET".to_string(),
                6.0
            ),
        ]
    );
    assert_eq!(
        query(
            addr,
            r#"traces_span_metrics_duration_seconds_count{service_name="trainer-grpc",span_name="training_step",span_kind="SPAN_KIND_SERVER"}"#
        )
        .len(),
        1
    );
    let le = query(
        addr,
        r#"traces_span_metrics_duration_seconds_bucket{service_name="trainer-grpc",span_name="forward_pass",le="15"}"#,
    );
    assert_eq!(le.len(), 1);
    assert_eq!(le[0].1, 3.0);
    // Self-metrics: spans stored per protocol, and the store's gauges.
    let (status, body) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    for want in [
        r#"osprey_otlp_spans_stored_total{protocol="grpc"} 9"#,
        r#"osprey_otlp_spans_stored_total{protocol="http"} 18"#,
    ] {
        assert!(text.contains(want), "{want} not in /metrics");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
        if String::from_utf8_lossy(&body).contains("osprey_traces_head_spans 27") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "osprey_traces_head_spans never 27"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.terminate();
}

fn trace_json(trace: u64, now_ns: u128) -> String {
    let tid = format!("{trace:032x}");
    let span = |id: u64, parent: &str, name: &str| {
        format!(
            r#"{{"traceId":"{tid}","spanId":"{id:016x}","parentSpanId":"{parent}","name":"{name}","kind":2,"startTimeUnixNano":"{now_ns}","endTimeUnixNano":"{}","attributes":[{{"key":"step","value":{{"intValue":"{trace}"}}}}]}}"#,
            now_ns + 1_000_000
        )
    };
    let root = format!("{:016x}", trace * 4 + 1);
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"load"}}}}]}},"scopeSpans":[{{"spans":[{},{},{}]}}]}}]}}"#,
        span(trace * 4 + 1, "", "training_step"),
        span(trace * 4 + 2, &root, "forward_pass"),
        span(trace * 4 + 3, &root, "backward_pass"),
    )
}

#[test]
fn errors_answer_as_otlp_says_and_no_acknowledged_span_is_lost_to_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = Server::start(&dir.path().join("data"), addr, &dir.path().join("log"));
    let json = [("Content-Type", "application/json")];
    let (status, _) = http(addr, "POST", "/v1/traces", &json, b"{not json").expect("post");
    assert_eq!(status, 400, "an unreadable body is not retried");
    let (status, _) = http(
        addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "text/plain")],
        b"x",
    )
    .expect("post");
    assert_eq!(status, 415);
    let bad = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00","spanId":"0000000000000001","name":"x"}]}]}]}"#;
    let (status, body) = http(addr, "POST", "/v1/traces", &json, bad.as_bytes()).expect("post");
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");

    // Load from four writers; kill -9 while they send.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let trace = (w << 32) | (n + 1);
                n += 1;
                let now_ns = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_nanos();
                let body = trace_json(trace, now_ns);
                if let Ok((200, _)) = http(addr, "POST", "/v1/traces", &json, body.as_bytes()) {
                    acked.lock().expect("lock").push(trace);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 20,
        "only {} requests acknowledged",
        acked.len()
    );
    let server = Server::start(&dir.path().join("data"), addr, &dir.path().join("log2"));
    for trace in &acked {
        let v = get_json(addr, &format!("/api/traces/{trace:032x}"));
        assert_eq!(
            v["data"][0]["spans"].as_array().expect("spans").len(),
            3,
            "trace {trace:x}"
        );
    }
    eprintln!(
        "{} acknowledged traces all there after kill -9",
        acked.len()
    );
    server.terminate();
}
