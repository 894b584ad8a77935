//! Created timestamps through the real `osprey` binary, started with and
//! without `--enable-feature=created-timestamp-zero-ingestion`, read back
//! through `/api/v1/query` and `/api/v1/query_range`:
//!
//! - an app on Python's `prometheus_client`, scraped in OpenMetrics (it
//!   writes each counter's and histogram's `_created` line);
//! - remote write 2.0 with `created_timestamp` set;
//! - OTLP cumulative points' `start_time_unix_nano`, by hand (JSON) and
//!   from the Python OpenTelemetry SDK.
//!
//! The reference is Prometheus 3's documented behaviour, since the Debian
//! Prometheus 2.42 predates the flag (added in 2.50): `docs/feature_flags.md`
//! ("Created Timestamps Zero Injection": a zero sample at the created
//! timestamp; OpenMetrics `_created` lines read as created timestamps
//! instead of series), `scrape/scrape.go`, the remote write handler
//! (`storage/remote/write_handler.go`: a zero before a series' first
//! sample and before each histogram) and the OTLP receiver's
//! `combinedAppender` (a zero at each point's start time when it is before
//! the point, once per series and start time). Without the flag Prometheus
//! 3 (and 2.42) store OpenMetrics `_created` lines as series: that part
//! is checked against a real Prometheus 2.42 scraping the same app.
//!
//! What the zero sample buys: `increase` over a window that holds the
//! counter's start counts from zero, so the first scrape's value is not
//! lost. PromQL's extrapolation stops at a first sample of 0 (Prometheus's
//! `extrapolatedRate` limits the start to where the counter was zero), so
//! at the last sample's time the answer is exact.
//!
//! A missing python3 or Python package skips the part that needs it, with
//! a reason, unless `OSPREY_REQUIRE_EXTERNAL=1`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use model::histogram::{CounterResetHint, FloatHistogram, Span};
use prost::Message as _;
use remote::codec::v2;
use serde_json::Value;
use support::{ChildGuard, Server, free_addr, http, http_with_headers, urlencode};

const FLAG: &str = "--enable-feature=created-timestamp-zero-ingestion";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn python_has(modules: &str) -> bool {
    let ok = ChildGuard::run(
        Command::new("python3").args(["-c", &format!("import {modules}")]),
        Duration::from_secs(60),
    )
    .is_ok_and(|f| f.status.is_some_and(|s| s.success()));
    if !ok {
        let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
        let reason = format!("python3 with {modules} is needed");
        assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
        let _ = writeln!(std::io::stdout().lock(), "skipped: {reason}");
    }
    ok
}

/// Two servers, with the flag and without, on `config` when given.
fn servers(dir: &Path, config: Option<&Path>) -> (Server, Server) {
    let start = |name: &str, flag: bool| {
        let mut args: Vec<String> = Vec::new();
        if let Some(config) = config {
            args.push("--config".into());
            args.push(config.display().to_string());
        }
        if flag {
            args.push(FLAG.into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_with_args(
            &dir.join(name),
            free_addr(),
            &dir.join(format!("{name}.log")),
            &args,
        )
    };
    (start("on", true), start("off", false))
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("query");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("json")
}

fn query(addr: SocketAddr, q: &str, time_ms: i64) -> Value {
    let path = format!(
        "/api/v1/query?query={}&time={:.3}",
        urlencode(q),
        time_ms as f64 / 1000.0
    );
    get_json(addr, &path)["data"]["result"].clone()
}

/// The one instant value of `q` at `time_ms`, if any.
fn value(addr: SocketAddr, q: &str, time_ms: i64) -> Option<f64> {
    let result = query(addr, q, time_ms);
    let list = result.as_array().expect("vector");
    assert!(list.len() <= 1, "{q}: {result}");
    list.first()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

fn point(v: &Value) -> (i64, f64) {
    (
        (v[0].as_f64().unwrap() * 1000.0).round() as i64,
        v[1].as_str().unwrap().parse().unwrap(),
    )
}

/// The raw float samples of the one series `selector` selects, over the
/// 15 minutes before `time_ms`.
fn samples(addr: SocketAddr, selector: &str, time_ms: i64) -> Vec<(i64, f64)> {
    let result = query(addr, &format!("{selector}[15m]"), time_ms);
    let list = result.as_array().expect("matrix");
    assert!(list.len() <= 1, "{selector}: {result}");
    list.first()
        .map(|r| r["values"].as_array().unwrap().iter().map(point).collect())
        .unwrap_or_default()
}

/// The raw histogram samples' times and counts.
fn histogram_counts(addr: SocketAddr, selector: &str, time_ms: i64) -> Vec<(i64, f64)> {
    let result = query(addr, &format!("{selector}[15m]"), time_ms);
    result[0]["histograms"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|h| {
                    (
                        (h[0].as_f64().unwrap() * 1000.0).round() as i64,
                        h[1]["count"].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const PYTHON_APP: &str = r#"
import sys, time
from prometheus_client import Counter, Histogram, start_http_server
port = int(sys.argv[1])
requests = Counter("app_requests", "Requests handled.", ["method"])
requests.labels("get").inc(5)
latency = Histogram("app_latency_seconds", "Latency.", buckets=[0.5, 1.0])
latency.observe(0.3)
latency.observe(0.7)
# The first scrape comes well after the created timestamps.
time.sleep(1.5)
start_http_server(port, addr="127.0.0.1")
while True:
    time.sleep(1)
"#;

/// The value of the OpenMetrics line that starts with `series ` in the
/// app's exposition.
fn exposed(app: SocketAddr, series: &str) -> f64 {
    let (status, body) = http(
        app,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
        &[],
    )
    .expect("fetch the app");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let prefix = format!("{series} ");
    let line = text
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{series} not in\n{text}"));
    line[prefix.len()..].trim().parse().unwrap()
}

#[test]
fn prometheus_client_created_lines_with_and_without_the_flag() {
    if !python_has("prometheus_client") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = free_addr();
    let script = dir.path().join("app.py");
    std::fs::write(&script, PYTHON_APP).unwrap();
    let _app = ChildGuard::spawn_ready(
        Command::new("python3")
            .arg(&script)
            .arg(app.port().to_string()),
        &dir.path().join("app.log"),
        Duration::from_secs(30),
        || http(app, "GET", "/metrics", &[], &[]).is_ok(),
    );
    // As Prometheus converts them: seconds times 1000, truncated.
    let requests_created = (exposed(app, "app_requests_created{method=\"get\"}") * 1000.0) as i64;
    let latency_created = (exposed(app, "app_latency_seconds_created") * 1000.0) as i64;
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "scrape_configs:\n  - job_name: app\n    scrape_interval: 500ms\n    scrape_timeout: 400ms\n    static_configs:\n      - targets: ['{app}']\n"
        ),
    )
    .unwrap();
    let (on, off) = servers(dir.path(), Some(&config));
    let get = "app_requests_total{method=\"get\"}";
    wait_until("three scrapes in each server", || {
        let now = now_ms();
        samples(on.addr, get, now).len() >= 4 && samples(off.addr, get, now).len() >= 3
    });
    let now = now_ms();

    // With the flag: a zero at the created timestamp, then the counter.
    let stored = samples(on.addr, get, now);
    assert_eq!(stored[0], (requests_created, 0.0), "{stored:?}");
    assert!(
        stored[1..]
            .iter()
            .all(|(t, v)| *v == 5.0 && *t > requests_created + 1000)
    );
    let bucket = samples(on.addr, "app_latency_seconds_bucket{le=\"0.5\"}", now);
    assert_eq!(bucket[0], (latency_created, 0.0), "{bucket:?}");
    assert_eq!(bucket[1].1, 1.0);
    // `_created` is not a series then.
    assert!(
        query(on.addr, "{__name__=~\"app_.*_created\"}", now)
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Without it: the counter alone, and `_created` as series (seconds).
    let plain = samples(off.addr, get, now);
    assert!(plain.iter().all(|(_, v)| *v == 5.0), "{plain:?}");
    assert_eq!(
        value(off.addr, "app_requests_created{method=\"get\"}", now),
        Some(exposed(app, "app_requests_created{method=\"get\"}"))
    );

    // query_range from just after the created timestamp: the zero is the
    // counter's value until the first scrape with the flag; without it
    // there is nothing before the first scrape.
    let last = *stored.last().unwrap();
    let range = |addr: SocketAddr| {
        let path = format!(
            "/api/v1/query_range?query={}&start={:.3}&end={:.3}&step=0.25",
            urlencode(get),
            (requests_created + 100) as f64 / 1000.0,
            last.0 as f64 / 1000.0
        );
        let json = get_json(addr, &path);
        json["data"]["result"][0]["values"]
            .as_array()
            .map(|v| v.iter().map(point).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let with = range(on.addr);
    assert_eq!(with[0], (requests_created + 100, 0.0), "{with:?}");
    assert_eq!(with.last().unwrap().1, 5.0);
    let without = range(off.addr);
    assert!(
        without[0].0 >= plain[0].0 && without[0].1 == 5.0,
        "{without:?}"
    );

    // increase and rate over a window that holds the start, at the last
    // sample: 5 from the zero with the flag; 0 without (the first
    // scrape's 5 is lost).
    let increase = format!("increase({get}[10m])");
    assert_eq!(value(on.addr, &increase, last.0), Some(5.0));
    let rate = value(on.addr, &format!("rate({get}[10m])"), last.0).unwrap();
    assert!((rate - 5.0 / 600.0).abs() < 1e-12, "{rate}");
    let plain_last = plain.last().unwrap().0;
    assert_eq!(value(off.addr, &increase, plain_last), Some(0.0));

    // The reference for the flag's absence: Prometheus 2.42 stores the
    // `_created` lines as series too, with the same values, and no zero.
    if !support::prometheus::available() {
        return;
    }
    let scrape_config = std::fs::read_to_string(&config).unwrap();
    let (_prometheus, prometheus) = support::prometheus::start(dir.path(), &scrape_config);
    wait_until("Prometheus scraped twice", || {
        samples(prometheus, get, now_ms()).len() >= 2
    });
    let now = now_ms();
    for series in [
        "app_requests_created{method=\"get\"}",
        "app_latency_seconds_created",
    ] {
        assert_eq!(
            value(prometheus, series, now),
            value(off.addr, series, now),
            "{series}"
        );
    }
    assert!(samples(prometheus, get, now).iter().all(|(_, v)| *v == 5.0));
}

/// A 2.0 request: `requests_total` (3 samples a second apart up to `t`)
/// and `latency_seconds` (a float histogram at `t`), both created at
/// `created`.
fn rw2_request(t: i64, created: i64) -> Vec<u8> {
    let mut symbols = v2::Symbols::new();
    let counter = v2::TimeSeries {
        labels_refs: symbols.label_refs([("__name__", "requests_total"), ("job", "v2")]),
        samples: (0..3)
            .map(|i| v2::Sample {
                value: 10.0 + i as f64,
                timestamp: t - (2 - i) * 1000,
                start_timestamp: 0,
            })
            .collect(),
        created_timestamp: created,
        ..Default::default()
    };
    let histogram = FloatHistogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: 2,
        zero_threshold: 0.001,
        count: 4.0,
        sum: 3.0,
        positive_spans: vec![Span {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![1.0, 3.0],
        ..FloatHistogram::default()
    };
    let latency = v2::TimeSeries {
        labels_refs: symbols.label_refs([("__name__", "latency_seconds"), ("job", "v2")]),
        histograms: vec![remote::Histogram::from_float(t, &histogram)],
        created_timestamp: created,
        ..Default::default()
    };
    let request = v2::Request {
        symbols: symbols.into_table(),
        timeseries: vec![counter, latency],
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

fn write_v2(addr: SocketAddr, body: &[u8]) {
    let (status, _, answer) = http_with_headers(
        addr,
        "POST",
        "/api/v1/write",
        &[
            (
                "Content-Type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            ),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "2.0.0"),
        ],
        body,
    )
    .expect("write");
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
}

#[test]
fn remote_write_2_created_timestamps_with_and_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (on, off) = servers(dir.path(), None);
    let t = now_ms() / 1000 * 1000 - 10_000;
    let created = t - 60_000;
    for server in [&on, &off] {
        write_v2(server.addr, &rw2_request(t, created));
    }
    let selector = "requests_total{job=\"v2\"}";
    assert_eq!(
        samples(on.addr, selector, t),
        vec![
            (created, 0.0),
            (t - 2000, 10.0),
            (t - 1000, 11.0),
            (t, 12.0)
        ]
    );
    assert_eq!(samples(off.addr, selector, t).len(), 3);
    // An empty histogram of the same schema at the created timestamp.
    assert_eq!(
        histogram_counts(on.addr, "latency_seconds", t),
        vec![(created, 0.0), (t, 4.0)]
    );
    let zero = query(on.addr, "latency_seconds", created);
    assert_eq!(zero[0]["histogram"][1]["count"], "0", "{zero}");
    assert_eq!(
        histogram_counts(off.addr, "latency_seconds", t),
        vec![(t, 4.0)]
    );
    // increase at `t` over 5 minutes: 12 from the zero; without it 2
    // extrapolated by half a sample interval (2.5).
    let increase = format!("increase({selector}[5m])");
    assert_eq!(value(on.addr, &increase, t), Some(12.0));
    assert_eq!(value(off.addr, &increase, t), Some(2.5));

    // The next request repeats the created timestamp: nothing is added.
    write_v2(on.addr, &rw2_request(t + 5000, created));
    assert_eq!(samples(on.addr, selector, t + 5000).len(), 7);
    // One older than the newest sample (a sender's mistake or a replay)
    // is skipped, never stored out of order.
    write_v2(on.addr, &rw2_request(t + 10_000, t));
    let stored = samples(on.addr, selector, t + 10_000);
    assert_eq!(stored.len(), 10);
    assert_eq!(stored.iter().filter(|(_, v)| *v == 0.0).count(), 1);

    // The spec's later schema: a start timestamp on each sample (here a
    // counter that restarts between two samples of one request).
    let mut symbols = v2::Symbols::new();
    let restarting = v2::TimeSeries {
        labels_refs: symbols.label_refs([("__name__", "restarts_total"), ("job", "v2")]),
        samples: [
            (t - 2000, 10.0, t - 30_000),
            (t - 1000, 11.0, t - 30_000),
            (t, 1.0, t - 500),
        ]
        .into_iter()
        .map(|(timestamp, value, start_timestamp)| v2::Sample {
            value,
            timestamp,
            start_timestamp,
        })
        .collect(),
        ..Default::default()
    };
    let request = v2::Request {
        symbols: symbols.into_table(),
        timeseries: vec![restarting],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    for server in [&on, &off] {
        write_v2(server.addr, &body);
    }
    assert_eq!(
        samples(on.addr, "restarts_total", t),
        vec![
            (t - 30_000, 0.0),
            (t - 2000, 10.0),
            (t - 1000, 11.0),
            (t - 500, 0.0),
            (t, 1.0)
        ]
    );
    assert_eq!(samples(off.addr, "restarts_total", t).len(), 3);
    // increase over both runs: 11 before the restart, 1 after.
    assert_eq!(
        value(on.addr, "increase(restarts_total[5m])", t),
        Some(12.0)
    );

    // Zero samples go through the WAL: they are there after a restart
    // without a clean shutdown.
    let data = dir.path().join("on");
    on.kill();
    let on = Server::start_with_args(&data, free_addr(), &dir.path().join("on2.log"), &[FLAG]);
    let replayed = samples(on.addr, selector, t + 10_000);
    assert_eq!(replayed, stored);
    assert_eq!(replayed[0], (created, 0.0));
}

const OTEL_APP: &str = r#"
import sys, time
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

exporters = [OTLPMetricExporter(endpoint=f"http://{addr}/v1/metrics") for addr in sys.argv[1:]]
readers = [PeriodicExportingMetricReader(e, export_interval_millis=3600000) for e in exporters]
provider = MeterProvider(resource=Resource.create({"service.name": "trainer"}), metric_readers=readers)
meter = provider.get_meter("osprey.test")
steps = meter.create_counter("training.steps", unit="{step}")
steps.add(3)
time.sleep(1)
ok = all(r.force_flush() for r in readers)
provider.shutdown()
if not ok:
    sys.exit("export failed")
"#;

#[test]
fn otlp_start_times_with_and_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (on, off) = servers(dir.path(), None);
    let t = now_ms() / 1000 * 1000 - 10_000;
    let start = t - 50_000;
    let ns = |ms: i64| (ms as u128 * 1_000_000).to_string();
    let point = |value: f64| {
        serde_json::json!({
            "startTimeUnixNano": ns(start), "timeUnixNano": ns(t), "asDouble": value,
            "attributes": [{"key": "path", "value": {"stringValue": "/a"}}]
        })
    };
    let body = serde_json::json!({"resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
    "scopeMetrics": [{"metrics": [
        {"name": "served", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
            "dataPoints": [point(4.0)]}},
        {"name": "served.delta", "sum": {"aggregationTemporality": 1, "isMonotonic": true,
            "dataPoints": [point(2.0)]}},
        {"name": "wait", "unit": "s", "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "startTimeUnixNano": ns(start), "timeUnixNano": ns(t), "count": "2", "sum": 1.5,
            "bucketCounts": ["1", "1"], "explicitBounds": [1.0]}]}},
        // Unknown start time, as OpenTelemetry writes it: the same as
        // the point's time. No zero.
        {"name": "unknown.start", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
            "dataPoints": [{"startTimeUnixNano": ns(t), "timeUnixNano": ns(t), "asDouble": 1.0}]}}
    ]}]}]});
    for server in [&on, &off] {
        let (status, answer) = http(
            server.addr,
            "POST",
            "/v1/metrics",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .expect("post");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    for (selector, last) in [
        ("served_total{path=\"/a\"}", 4.0),
        ("wait_seconds_bucket{le=\"1\"}", 1.0),
        ("wait_seconds_bucket{le=\"+Inf\"}", 2.0),
        ("wait_seconds_count", 2.0),
        ("wait_seconds_sum", 1.5),
    ] {
        assert_eq!(
            samples(on.addr, selector, t),
            vec![(start, 0.0), (t, last)],
            "{selector}"
        );
        assert_eq!(
            samples(off.addr, selector, t),
            vec![(t, last)],
            "{selector}"
        );
    }
    // A delta point's start is its interval's, not the running total's.
    assert_eq!(samples(on.addr, "served_delta_total", t), vec![(t, 2.0)]);
    assert_eq!(samples(on.addr, "unknown_start_total", t), vec![(t, 1.0)]);

    // The Python SDK's cumulative counter: a zero at its start time,
    // before the point, with the flag only.
    if !python_has(
        "opentelemetry.sdk.metrics, opentelemetry.exporter.otlp.proto.http.metric_exporter",
    ) {
        return;
    }
    let script = dir.path().join("otel.py");
    std::fs::write(&script, OTEL_APP).unwrap();
    let before = now_ms();
    let out = ChildGuard::output(
        Command::new("python3")
            .arg(&script)
            .arg(on.addr.to_string())
            .arg(off.addr.to_string()),
        Duration::from_secs(60),
    )
    .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = now_ms();
    // The SDK exports on `force_flush` and again on `shutdown`, with the
    // same start time: one zero.
    let with = samples(on.addr, "training_steps_total", now);
    assert!(with.len() >= 2, "{with:?}");
    assert_eq!(with[0].1, 0.0);
    assert!(with[0].0 >= before && with[0].0 < with[1].0, "{with:?}");
    assert!(with[1..].iter().all(|(_, v)| *v == 3.0), "{with:?}");
    // Each reader collects at its own time: the same values, no zero.
    let without = samples(off.addr, "training_steps_total", now);
    assert_eq!(without.len(), with.len() - 1, "{without:?}");
    assert!(without.iter().all(|(_, v)| *v == 3.0), "{without:?}");
}

/// `osprey agent` with the flag: the scraped created timestamps are
/// logged as zero samples and remote-written as samples, as Prometheus's
/// agent sends the zero samples of its WAL; without it, none.
#[test]
fn the_agent_sends_created_zero_samples_as_samples() {
    if !python_has("prometheus_client") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = free_addr();
    let script = dir.path().join("app.py");
    std::fs::write(&script, PYTHON_APP).unwrap();
    let _app = ChildGuard::spawn_ready(
        Command::new("python3")
            .arg(&script)
            .arg(app.port().to_string()),
        &dir.path().join("app.log"),
        Duration::from_secs(30),
        || http(app, "GET", "/metrics", &[], &[]).is_ok(),
    );
    let created = (exposed(app, "app_requests_created{method=\"get\"}") * 1000.0) as i64;
    let receiver = Server::start(
        &dir.path().join("receiver"),
        free_addr(),
        &dir.path().join("receiver.log"),
    );
    let start_agent = |name: &str, flag: bool| {
        let config = dir.path().join(format!("{name}.yml"));
        std::fs::write(
            &config,
            format!(
                "global:\n  external_labels:\n    agent: {name}\nscrape_configs:\n  - job_name: app\n    scrape_interval: 500ms\n    scrape_timeout: 400ms\n    static_configs:\n      - targets: ['{app}']\nremote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 100ms\n",
                receiver.addr
            ),
        )
        .unwrap();
        let addr = free_addr();
        let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
        command
            .args(["agent", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join(format!("{name}-data")))
            .args(["--listen", &addr.to_string()]);
        if flag {
            command.arg(FLAG);
        }
        ChildGuard::spawn_ready(
            &mut command,
            &dir.path().join(format!("{name}.log")),
            Duration::from_secs(30),
            || support::is_ready(addr),
        )
    };
    let mut flagged_agent = start_agent("flagged", true);
    let _plain_agent = start_agent("plain", false);
    let flagged = "app_requests_total{method=\"get\",agent=\"flagged\"}";
    let plain = "app_requests_total{method=\"get\",agent=\"plain\"}";
    wait_until("samples from both agents", || {
        let now = now_ms();
        samples(receiver.addr, flagged, now).len() >= 3
            && samples(receiver.addr, plain, now).len() >= 2
    });
    let now = now_ms();
    let received = samples(receiver.addr, flagged, now);
    assert_eq!(received[0], (created, 0.0), "{received:?}");
    assert!(received[1..].iter().all(|(_, v)| *v == 5.0), "{received:?}");
    let received = samples(receiver.addr, plain, now);
    assert!(received.iter().all(|(_, v)| *v == 5.0), "{received:?}");
    // The flagged agent does not send `_created` series; the plain one
    // sends them, as Prometheus 3 without the flag.
    assert!(
        query(
            receiver.addr,
            "app_requests_created{agent=\"flagged\"}",
            now
        )
        .as_array()
        .unwrap()
        .is_empty()
    );
    assert!(value(receiver.addr, "app_requests_created{agent=\"plain\"}", now).is_some());

    // Restarted, the agent does not send the zero again: the created
    // timestamp is before its WAL's last write.
    flagged_agent.kill();
    let before = samples(receiver.addr, flagged, now_ms()).len();
    let _flagged_agent = start_agent("flagged", true);
    wait_until("samples after the restart", || {
        samples(receiver.addr, flagged, now_ms()).len() >= before + 3
    });
    let received = samples(receiver.addr, flagged, now_ms());
    assert_eq!(
        received.iter().filter(|(_, v)| *v == 0.0).count(),
        1,
        "{received:?}"
    );
}

/// `osprey server` with the flag and `remote_write`: the zero samples it
/// stored are forwarded as samples, as Prometheus's queues send the zero
/// samples of its WAL.
#[test]
fn the_server_forwards_created_zero_samples_as_samples() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Server::start(
        &dir.path().join("receiver"),
        free_addr(),
        &dir.path().join("receiver.log"),
    );
    let config = dir.path().join("forwarder.yml");
    std::fs::write(
        &config,
        format!(
            "remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 100ms\n",
            receiver.addr
        ),
    )
    .unwrap();
    let forwarder = Server::start_with_args(
        &dir.path().join("forwarder"),
        free_addr(),
        &dir.path().join("forwarder.log"),
        &["--config", &config.display().to_string(), FLAG],
    );
    let t = now_ms() / 1000 * 1000 - 10_000;
    let created = t - 60_000;
    write_v2(forwarder.addr, &rw2_request(t, created));
    let selector = "requests_total{job=\"v2\"}";
    wait_until("the forwarded samples", || {
        samples(receiver.addr, selector, t).len() >= 4
    });
    assert_eq!(
        samples(receiver.addr, selector, t),
        samples(forwarder.addr, selector, t)
    );
    assert_eq!(samples(receiver.addr, selector, t)[0], (created, 0.0));
}
