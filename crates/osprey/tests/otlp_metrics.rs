//! OTLP metrics over HTTP end to end: the real Python OpenTelemetry SDK
//! (`opentelemetry-sdk` with `opentelemetry-exporter-otlp-proto-http`)
//! exports counters, up-down counters, histograms and gauges to a real
//! osprey on `/v1/metrics` and on Prometheus 3's
//! `/api/v1/otlp/v1/metrics`, gzipped and not, cumulative and delta; the
//! queried names and labels match the table below, written from
//! Prometheus's documentation of its OTLP receiver (docs/otlp.md). JSON
//! bodies, partial success and the error answers are checked over raw
//! HTTP, and an acknowledged point survives `kill -9`.
//!
//! Without python3 and those packages the SDK part prints why and is
//! skipped, unless `OSPREY_REQUIRE_EXTERNAL=1`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{ChildGuard, Server, free_addr, http, instant_values as query, python_imports};

const SDK_APP: &str = r#"
import sys
from opentelemetry.sdk.metrics import MeterProvider, Counter
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader, AggregationTemporality
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.metrics import Observation

addr, path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
resource = Resource.create({
    "service.name": "trainer",
    "service.namespace": "ml",
    "service.instance.id": "worker-1",
    "deployment.environment": "test",
})
kwargs = {"endpoint": f"http://{addr}{path}"}
if mode == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
    from grpc import Compression as GrpcCompression
    exporter = GrpcExporter(endpoint=addr, insecure=True, compression=GrpcCompression.Gzip)
elif mode == "delta":
    kwargs["preferred_temporality"] = {Counter: AggregationTemporality.DELTA}
    kwargs["compression"] = Compression.Gzip
if mode != "grpc":
    exporter = OTLPMetricExporter(**kwargs)
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3600000)
provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = provider.get_meter("osprey.test", "1.0")
if mode == "cumulative":
    samples = meter.create_counter("training.samples", unit="{sample}", description="Samples seen.")
    samples.add(100, {"model.name": "resnet", "split": "train"})
    samples.add(20, {"model.name": "resnet", "split": "eval"})
    queue = meter.create_up_down_counter("queue.size", unit="{item}")
    queue.add(5)
    queue.add(-2)
    step = meter.create_histogram("step.duration", unit="s")
    for v in [0.5, 3, 7, 30]:
        step.record(v)
    meter.create_observable_gauge(
        "gpu.utilization", unit="1",
        callbacks=[lambda options: [Observation(0.75, {"gpu": 0})]])
    ok = reader.force_flush()
elif mode == "grpc":
    meter.create_counter("grpc.calls", unit="{call}").add(11, {"rpc.method": "Export"})
    meter.create_histogram("grpc.latency", unit="ms").record(12)
    ok = reader.force_flush()
else:
    sent = meter.create_counter("network.sent", unit="By")
    sent.add(300)
    ok = reader.force_flush()
    sent.add(200)
    ok = ok and reader.force_flush()
provider.shutdown()
if not ok:
    sys.exit("export failed")
"#;

fn sdk_available() -> bool {
    python_imports(
        "opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "python3 with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http",
    )
}

fn run_sdk(script: &Path, addr: SocketAddr, path: &str, mode: &str) {
    let out = ChildGuard::output(
        Command::new("python3")
            .arg(script)
            .arg(addr.to_string())
            .arg(path)
            .arg(mode),
        Duration::from_secs(60),
    )
    .expect("run python3");
    assert!(
        out.status.success(),
        "SDK app ({mode}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const JI: &str = "instance=worker-1,job=ml/trainer";

#[test]
fn the_python_sdk_exports_metrics_named_and_labelled_as_prometheus_translates_them() {
    if !sdk_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("app.py");
    std::fs::write(&script, SDK_APP).expect("write app");
    let addr = free_addr();
    let server = Server::start(&dir.path().join("data"), addr, &dir.path().join("log"));
    run_sdk(&script, addr, "/v1/metrics", "cumulative");
    run_sdk(&script, addr, "/api/v1/otlp/v1/metrics", "delta");

    // The table: (query, expected series), from Prometheus's documented
    // translation (UnderscoreEscapingWithSuffixes, the default).
    let table: Vec<(&str, Vec<(String, f64)>)> = vec![
        // A monotonic cumulative sum is a counter: `_total`; `{sample}`
        // is an annotation and adds no unit; `model.name` is `model_name`;
        // service.namespace/service.name is `job`, service.instance.id
        // `instance`.
        (
            "training_samples_total",
            vec![
                (
                    format!("__name__=training_samples_total,{JI},model_name=resnet,split=eval"),
                    20.0,
                ),
                (
                    format!("__name__=training_samples_total,{JI},model_name=resnet,split=train"),
                    100.0,
                ),
            ],
        ),
        // A non-monotonic sum (up-down counter) is a gauge: no `_total`.
        (
            "queue_size",
            vec![(format!("__name__=queue_size,{JI}"), 3.0)],
        ),
        // A histogram's unit `s` is `_seconds`; classic buckets.
        (
            "step_duration_seconds_count",
            vec![(format!("__name__=step_duration_seconds_count,{JI}"), 4.0)],
        ),
        (
            "step_duration_seconds_sum",
            vec![(format!("__name__=step_duration_seconds_sum,{JI}"), 40.5)],
        ),
        (
            r#"step_duration_seconds_bucket{le=~"5|10|\\+Inf"}"#,
            vec![
                (
                    format!("__name__=step_duration_seconds_bucket,{JI},le=+Inf"),
                    4.0,
                ),
                (
                    format!("__name__=step_duration_seconds_bucket,{JI},le=10"),
                    3.0,
                ),
                (
                    format!("__name__=step_duration_seconds_bucket,{JI},le=5"),
                    2.0,
                ),
            ],
        ),
        // A gauge with unit "1" gets `_ratio`; an int attribute is text.
        (
            "gpu_utilization_ratio",
            vec![(format!("__name__=gpu_utilization_ratio,gpu=0,{JI}"), 0.75)],
        ),
        // Delta counter exports (300 then 200), made cumulative; unit `By`
        // is `_bytes`, before `_total`.
        (
            "network_sent_bytes_total",
            vec![(format!("__name__=network_sent_bytes_total,{JI}"), 500.0)],
        ),
    ];
    for (q, want) in &table {
        assert_eq!(&query(addr, q), want, "{q}");
    }
    // target_info carries the other resource attributes, not the three
    // that became job and instance.
    let info = query(addr, "target_info");
    assert_eq!(info.len(), 1, "{info:?}");
    let (labels, value) = &info[0];
    assert_eq!(*value, 1.0);
    assert!(labels.contains("deployment_environment=test"), "{labels}");
    assert!(labels.contains("telemetry_sdk_language=python"), "{labels}");
    assert!(labels.contains(JI), "{labels}");
    assert!(!labels.contains("service_name"), "{labels}");
    // The histogram's quantile from its buckets, as PromQL computes it.
    let q = query(
        addr,
        "histogram_quantile(0.5, step_duration_seconds_bucket)",
    );
    assert_eq!(q.len(), 1, "{q:?}");
    // Rank 2 of 4 lies in (0, 5] holding 2: 0 + 5 * (2 - 0) / 2 = 5.
    assert_eq!(q[0].1, 5.0);
    server.terminate();
}

#[test]
fn json_bodies_partial_success_and_errors_answer_as_otlp_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = Server::start(&dir.path().join("data"), addr, &dir.path().join("log"));
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"json-svc"}}}}]}},
        "scopeMetrics":[{{"metrics":[
          {{"name":"json.gauge","unit":"By","gauge":{{"dataPoints":[{{"timeUnixNano":"{now_ns}","asDouble":2.5}}]}}}},
          {{"name":"...","gauge":{{"dataPoints":[{{"timeUnixNano":"{now_ns}","asDouble":1}}]}}}}
        ]}}]}}]}}"#
    );
    let (status, answer) = http(
        addr,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("post");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("json answer");
    assert_eq!(answer["partialSuccess"]["rejectedDataPoints"], "1");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("empty name")),
        "{answer}"
    );
    assert_eq!(
        query(addr, "json_gauge_bytes"),
        [("__name__=json_gauge_bytes,job=json-svc".to_string(), 2.5)]
    );

    // The self-metrics count the stored samples and the refused point.
    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("osprey_otlp_data_points_rejected_total{protocol=\"http\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("osprey_otlp_samples_appended_total{protocol=\"http\"} 1"),
        "{metrics}"
    );

    // A body that is not OTLP: 400 with a Status, never retried.
    let (status, answer) = http(
        addr,
        "POST",
        "/api/v1/otlp/v1/metrics",
        &[("Content-Type", "application/json")],
        b"{\"resourceMetrics\":5}",
    )
    .expect("post");
    assert_eq!(status, 400);
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("json status");
    assert_eq!(answer["code"], 3);
    let (status, _) = http(
        addr,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        b"\x0a\xff\xff\xff",
    )
    .expect("post");
    assert_eq!(status, 400);
    let (status, _) = http(
        addr,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "text/plain")],
        b"x",
    )
    .expect("post");
    assert_eq!(status, 415);
    // An empty protobuf request is a success with an empty answer.
    let (status, answer) = http(
        addr,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        b"",
    )
    .expect("post");
    assert_eq!((status, answer.len()), (200, 0));

    // 200 means durable: the point is there after a kill -9.
    server.kill();
    let server = Server::start(&dir.path().join("data"), addr, &dir.path().join("log2"));
    assert_eq!(
        query(addr, "json_gauge_bytes"),
        [("__name__=json_gauge_bytes,job=json-svc".to_string(), 2.5)]
    );
    server.terminate();
}

#[test]
fn the_otlp_section_sets_the_translation_and_the_dedicated_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let otlp_addr = free_addr();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "otlp:\n  translation_strategy: NoUTF8EscapingWithSuffixes\n  promote_resource_attributes: [deployment.environment]\n  http_listen_address: {otlp_addr}\n"
        ),
    )
    .expect("write config");
    let addr = free_addr();
    let config_arg = config.display().to_string();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("log"),
        &["--config", &config_arg],
    );
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}},{{"key":"deployment.environment","value":{{"stringValue":"prod"}}}}]}},
        "scopeMetrics":[{{"metrics":[{{"name":"http.requests","unit":"1","sum":{{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{{"timeUnixNano":"{now_ns}","asInt":"9","attributes":[{{"key":"http.method","value":{{"stringValue":"GET"}}}}]}}]}}}}]}}]}}]}}"#
    );
    // The dedicated listener serves /v1/metrics and nothing else.
    let (status, answer) = http(
        otlp_addr,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("post to the OTLP listener");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let (status, _) = http(otlp_addr, "GET", "/api/v1/query?query=up", &[], &[]).expect("get");
    assert_eq!(status, 404);
    // UTF-8 names kept with suffixes; the promoted attribute on the series.
    assert_eq!(
        query(addr, r#"{"http.requests_total"}"#),
        [(
            "__name__=http.requests_total,deployment.environment=prod,http.method=GET,job=svc"
                .to_string(),
            9.0
        )]
    );
    server.terminate();

    // A taken port is logged and the server carries on.
    let taken = std::net::TcpListener::bind(otlp_addr).expect("hold the port");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data2"),
        addr,
        &dir.path().join("log2"),
        &["--config", &config_arg],
    );
    assert!(
        server.log_text().contains("cannot listen for OTLP/HTTP"),
        "{}",
        server.log_text()
    );
    drop(taken);
    server.terminate();
}

#[test]
fn the_python_grpc_exporter_sends_to_the_otlp_grpc_listener() {
    if !python_imports(
        "opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc.metric_exporter, opentelemetry.exporter.otlp.proto.http",
        "python3 with opentelemetry-sdk, opentelemetry-exporter-otlp-proto-grpc and -http",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("app.py");
    std::fs::write(&script, SDK_APP).expect("write app");
    let grpc_addr = free_addr();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!("otlp:\n  grpc_listen_address: {grpc_addr}\n"),
    )
    .expect("write config");
    let addr = free_addr();
    let config_arg = config.display().to_string();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("log"),
        &["--config", &config_arg],
    );
    run_sdk(&script, grpc_addr, "", "grpc");
    assert_eq!(
        query(addr, "grpc_calls_total"),
        [(
            format!("__name__=grpc_calls_total,{JI},rpc_method=Export"),
            11.0
        )]
    );
    assert_eq!(
        query(addr, "grpc_latency_milliseconds_count"),
        [(
            format!("__name__=grpc_latency_milliseconds_count,{JI}"),
            1.0
        )]
    );
    assert_eq!(
        query(addr, "grpc_latency_milliseconds_sum"),
        [(format!("__name__=grpc_latency_milliseconds_sum,{JI}"), 12.0)]
    );
    server.terminate();
}
