//! Exemplars end to end (docs/exemplars.md) against the real binary:
//!
//! - Prometheus 2.42 remote-writing its samples and exemplars to osprey
//!   (`send_exemplars`): osprey then answers as Prometheus;
//! - the same OpenMetrics targets (a hand-written one that walks through
//!   in-order, duplicate, out-of-order and over-long exemplars, and an app
//!   on the Python `prometheus_client`) scraped by osprey and by a real
//!   Prometheus 2.42 with `--enable-feature=exemplar-storage`: their
//!   `/api/v1/query_exemplars` answers must be the same, errors included;
//! - remote write 1.0 with exemplars, a restart (`kill -9`) keeping them,
//!   the size limit evicting the oldest, the metrics;
//! - OTLP from the Python OpenTelemetry SDK with exemplars recorded under
//!   a span, so `trace_id`/`span_id` are the span's.
//!
//! A missing `prometheus`, python3 or Python package skips the part that
//! needs it with a reason, unless `OSPREY_REQUIRE_EXTERNAL=1`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{ChildGuard, Server, free_addr, http, urlencode};

fn required() -> bool {
    std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

fn skip(reason: &str) {
    assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
    eprintln!("skipping: {reason}");
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn prometheus_available() -> bool {
    match Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) => {
            skip(&format!(
                "prometheus is not installed ({e}); apt-get install prometheus"
            ));
            false
        }
    }
}

fn python_has(module: &str) -> bool {
    let ok = ChildGuard::run(
        Command::new("python3").args(["-c", &format!("import {module}")]),
        Duration::from_secs(60),
    )
    .is_ok_and(|f| f.status.is_some_and(|s| s.success()));
    if !ok {
        skip(&format!("python3 with {module} is missing"));
    }
    ok
}

/// The scrapers a [`Target`] tells apart (by User-Agent).
const PROMETHEUS: usize = 0;
const OSPREY: usize = 1;

/// What the hand-written target serves: the test moves it through stages
/// and counts, per scraper, the scrapes of the current stage.
struct Target {
    addr: SocketAddr,
    stage: Arc<Mutex<String>>,
    /// Scrapes of the current stage by Prometheus and by osprey.
    seen: Arc<[AtomicU64; 2]>,
    stop: Arc<AtomicBool>,
}

impl Target {
    fn start() -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stage = Arc::new(Mutex::new(String::from("# EOF\n")));
        let seen: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (stage, seen, stop) = (stage.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    let body = stage.lock().unwrap().clone();
                    let scraper = if text.contains("user-agent: prometheus/") {
                        PROMETHEUS
                    } else {
                        OSPREY
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes());
                    seen[scraper].fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        Target {
            addr,
            stage,
            seen,
            stop,
        }
    }

    /// Serves `body` until both scrapers fetched it twice (so the first
    /// of those scrapes is surely committed).
    fn serve_until_scraped(&self, body: String) {
        self.serve_until_scraped_by(body, &[PROMETHEUS, OSPREY]);
    }

    /// Like [`Target::serve_until_scraped`] for the scrapers named.
    fn serve_until_scraped_by(&self, body: String, scrapers: &[usize]) {
        *self.stage.lock().unwrap() = body;
        for s in self.seen.iter() {
            s.store(0, Ordering::SeqCst);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while scrapers
            .iter()
            .any(|&s| self.seen[s].load(Ordering::SeqCst) < 2)
        {
            assert!(Instant::now() < deadline, "a scraper stopped scraping");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Stage `k` of the hand-written target: exemplars newer each stage on
/// `requests_total{path="a"}` and the buckets, one without a timestamp
/// that never changes (`path="b"`: stored once), one that goes back in
/// time (`odd_total`: out of order from stage 2), one over 128 runes
/// (`long_total`: never stored), and a gauge without exemplars.
fn stage(k: i64, base: i64) -> String {
    let long = "x".repeat(130);
    format!(
        "# TYPE requests counter\n\
         # HELP requests Requests served.\n\
         requests_total{{path=\"a\"}} {k} # {{trace_id=\"a{k}\",user=\"zoë\"}} {k}.5 {a}\n\
         requests_total{{path=\"b\"}} {k} # {{trace_id=\"b\",span_id=\"s\"}} 0.25\n\
         # TYPE latency histogram\n\
         latency_bucket{{le=\"0.1\"}} {k} # {{trace_id=\"l{k}\"}} 0.05 {l}.123\n\
         latency_bucket{{le=\"1\"}} {k2} # {{trace_id=\"m{k}\"}} 0.7 {a}\n\
         latency_bucket{{le=\"+Inf\"}} {k2}\n\
         latency_sum {k}\n\
         latency_count {k2}\n\
         # TYPE odd counter\n\
         odd_total {k} # {{trace_id=\"o{k}\"}} 1 {o}\n\
         # TYPE long counter\n\
         long_total {k} # {{trace_id=\"{long}\"}} 1 {a}\n\
         # TYPE temperature gauge\n\
         temperature 21.5\n\
         # EOF\n",
        k2 = 2 * k,
        a = base + k,
        l = base + k,
        o = base - k,
    )
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("request");
    if status == 204 {
        assert!(body.is_empty(), "{path}: 204 with a body");
        return (status, Value::Null);
    }
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

fn query_exemplars(addr: SocketAddr, query: &str, start: i64, end: i64) -> (u16, Value) {
    get(
        addr,
        &format!(
            "/api/v1/query_exemplars?query={}&start={start}&end={end}",
            urlencode(query)
        ),
    )
}

/// Exemplars without a timestamp of their own take each scraper's scrape
/// time, which differs: those series' times are left out of comparisons.
fn without_scrape_times(mut answer: Value) -> Value {
    if let Some(list) = answer["data"].as_array_mut() {
        for series in list {
            if series["seriesLabels"]["path"] == "b" {
                for e in series["exemplars"].as_array_mut().unwrap() {
                    e.as_object_mut().unwrap().remove("timestamp");
                }
            }
        }
    }
    answer
}

fn start_prometheus(dir: &Path, config: &str) -> (ChildGuard, SocketAddr) {
    let addr = free_addr();
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("write prometheus config");
    let child = ChildGuard::spawn_ready(
        Command::new("prometheus")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage"),
        &dir.join("prometheus.log"),
        Duration::from_secs(60),
        || matches!(http(addr, "GET", "/-/ready", &[], &[]), Ok((200, _))),
    );
    (child, addr)
}

const PYTHON_APP: &str = r#"
import sys, time
from prometheus_client import Counter, Histogram, start_http_server
port = int(sys.argv[1])
jobs = Counter("jobs", "Jobs run.", ["queue"])
jobs.labels("gpu").inc(3, exemplar={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
jobs.labels("cpu").inc(1)
step = Histogram("step_seconds", "Training step time.", buckets=[0.1, 1, 10])
step.observe(0.05, exemplar={"trace_id": "00f067aa0ba902b7", "step": "1"})
step.observe(4.2, exemplar={"trace_id": "a3ce929d0e0e4736"})
start_http_server(port, addr="127.0.0.1")
print("ready", flush=True)
while True:
    time.sleep(1)
"#;

#[test]
fn prometheus_and_osprey_scrape_the_same_exemplars() {
    if !prometheus_available() {
        return;
    }
    let python = python_has("prometheus_client");
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::start();
    let base = now_s() - 600;

    let mut _app = None;
    let app_addr = free_addr();
    if python {
        let script = dir.path().join("app.py");
        std::fs::write(&script, PYTHON_APP).expect("write app");
        _app = Some(ChildGuard::spawn_ready(
            Command::new("python3")
                .arg(&script)
                .arg(app_addr.port().to_string()),
            &dir.path().join("app.log"),
            Duration::from_secs(30),
            || http(app_addr, "GET", "/metrics", &[], &[]).is_ok(),
        ));
    }
    let mut jobs = format!(
        "scrape_configs:\n  - job_name: om\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{}']\n",
        target.addr
    );
    if python {
        jobs.push_str(&format!(
            "  - job_name: app\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{app_addr}']\n"
        ));
    }
    let config = format!("global:\n  scrape_interval: 1s\n{jobs}");
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let (_prometheus, prometheus) = start_prometheus(&prometheus_dir, &config);
    let osprey_config = dir.path().join("osprey.yml");
    std::fs::write(&osprey_config, &config).unwrap();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        free_addr(),
        &dir.path().join("osprey.log"),
        &["--config", &osprey_config.display().to_string()],
    );

    for k in 1..=4 {
        target.serve_until_scraped(stage(k, base));
    }
    if python {
        // Both have scraped the app by now (it started first); wait for
        // its exemplars in each.
        let deadline = Instant::now() + Duration::from_secs(30);
        for addr in [prometheus, server.addr] {
            loop {
                let (_, answer) = query_exemplars(addr, "jobs_total", 0, now_s() + 60);
                if answer["data"].as_array().is_some_and(|a| !a.is_empty()) {
                    break;
                }
                assert!(Instant::now() < deadline, "no exemplars of the Python app");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    let (start, end) = (base - 100, base + 100);
    let queries = [
        "requests_total or latency_bucket or odd_total or long_total or temperature",
        "rate(latency_bucket{le=\"1\"}[5m])",
        "sum by (path) (requests_total{path=~\"a|b\"})",
        "{__name__=~\"odd_total|requests_total\", path!=\"b\"}",
        "histogram_quantile(0.9, sum by (le) (rate(latency_bucket[1m])))",
        "temperature",
        "1 + 1",
        "nothing_here",
    ];
    let mut compared = 0;
    for q in queries {
        let (ps, p) = query_exemplars(prometheus, q, start, end);
        let (os, o) = query_exemplars(server.addr, q, start, end);
        assert_eq!(
            (os, without_scrape_times(o)),
            (ps, without_scrape_times(p)),
            "{q}"
        );
        compared += 1;
    }
    // Narrower ranges cut each series' list at both ends.
    for (s, e) in [
        (base + 2, base + 3),
        (base + 4, base + 4),
        (base - 3, base - 1),
    ] {
        let q = "requests_total{path=\"a\"} or latency_bucket or odd_total";
        let (ps, p) = query_exemplars(prometheus, q, s, e);
        let (os, o) = query_exemplars(server.addr, q, s, e);
        assert_eq!((os, o), (ps, p), "{q} over [{s}, {e}]");
        compared += 1;
    }
    // What was stored, spelled out once: in order, one per stage; the
    // timestamp-less exemplar once; out of order only the first; the long
    // one never.
    // (The exemplar without a timestamp has the scrape's: now.)
    let (_, all) = query_exemplars(server.addr, "{job=\"om\"}", start, now_s() + 60);
    let counts: Vec<(String, usize)> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = &s["seriesLabels"];
            let name = format!(
                "{}{}{}",
                labels["__name__"].as_str().unwrap(),
                labels["path"].as_str().unwrap_or(""),
                labels["le"].as_str().unwrap_or("")
            );
            (name, s["exemplars"].as_array().unwrap().len())
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("latency_bucket0.1".to_string(), 4),
            ("latency_bucket1".to_string(), 4),
            ("odd_total".to_string(), 1),
            ("requests_totala".to_string(), 4),
            ("requests_totalb".to_string(), 1),
        ]
    );
    let first = &all["data"][3]["exemplars"][0];
    assert_eq!(first["labels"]["user"], "zoë");
    assert_eq!(first["value"], "1.5");
    assert_eq!(first["timestamp"], base + 1);
    let bucket = &all["data"][0]["exemplars"][1];
    assert_eq!(bucket["timestamp"].to_string(), format!("{}.123", base + 2));

    if python {
        for q in ["jobs_total", "step_seconds_bucket", "{job=\"app\"}"] {
            let (ps, p) = query_exemplars(prometheus, q, 0, now_s() + 60);
            let (os, o) = query_exemplars(server.addr, q, 0, now_s() + 60);
            assert_eq!((os, &o), (ps, &p), "{q}");
            compared += 1;
        }
        let (_, jobs) = query_exemplars(server.addr, "jobs_total", 0, now_s() + 60);
        assert_eq!(
            jobs["data"][0]["exemplars"][0]["labels"]["trace_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    // Errors, as Prometheus words them.
    for path in [
        "/api/v1/query_exemplars?query=up&start=abc",
        "/api/v1/query_exemplars?query=up&start=10&end=5",
        "/api/v1/query_exemplars?query=up&end=2023-13-01T00:00:00Z",
    ] {
        let (ps, p) = get(prometheus, path);
        let (os, o) = get(server.addr, path);
        assert_eq!((os, &o), (ps, &p), "{path}");
        compared += 1;
    }
    // A parse error: the same status, error type and text.
    let (ps, p) = get(prometheus, "/api/v1/query_exemplars?query=sum(");
    let (os, o) = get(server.addr, "/api/v1/query_exemplars?query=sum(");
    assert_eq!(
        (os, &o["status"], &o["errorType"], &o["error"]),
        (ps, &p["status"], &p["errorType"], &p["error"])
    );
    // POST with a form body answers as GET.
    let form = format!("query={}&start={start}&end={end}", urlencode("odd_total"));
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/v1/query_exemplars",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .expect("post");
    assert_eq!(status, 200);
    let posted: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        posted,
        query_exemplars(server.addr, "odd_total", start, end).1
    );
    eprintln!("compared {compared} answers with Prometheus 2.42");

    // The store's figures, as Prometheus's own for the same scrapes. (Its
    // out-of-order counter counts only refusals at commit, after the check
    // at staging passed, so both stay at 0 here.)
    let metric = |addr: SocketAddr, name: &str| -> f64 {
        let (_, text) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
        let text = String::from_utf8_lossy(&text).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing at {addr}:\n{text}"))
    };
    let stored = if python { 14.0 + 3.0 } else { 14.0 };
    let series = if python { 5.0 + 3.0 } else { 5.0 };
    for (name, want) in [
        ("prometheus_tsdb_exemplar_exemplars_appended_total", stored),
        ("prometheus_tsdb_exemplar_exemplars_in_storage", stored),
        (
            "prometheus_tsdb_exemplar_series_with_exemplars_in_storage",
            series,
        ),
        ("prometheus_tsdb_exemplar_max_exemplars", 100_000.0),
        ("prometheus_tsdb_exemplar_out_of_order_exemplars_total", 0.0),
    ] {
        assert_eq!(
            metric(server.addr, name),
            metric(prometheus, name),
            "{name}"
        );
        assert_eq!(metric(server.addr, name), want, "{name}");
    }
}

/// Prometheus 2.42 as a remote-write client: it scrapes the target and
/// sends its samples and exemplars (`send_exemplars: true`, exemplars in
/// series of their own) to an osprey that scrapes nothing; osprey's
/// `query_exemplars` must then answer as Prometheus's own.
#[test]
fn prometheus_remote_writes_its_exemplars_to_osprey() {
    if !prometheus_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A config without scrape jobs: osprey holds only what Prometheus sends.
    let osprey_config = dir.path().join("osprey.yml");
    std::fs::write(&osprey_config, "global:\n  scrape_interval: 1m\n").unwrap();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        free_addr(),
        &dir.path().join("osprey.log"),
        &["--config", &osprey_config.display().to_string()],
    );
    let target = Target::start();
    let base = now_s() - 600;
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: om\n    static_configs:\n      - targets: ['{}']\nremote_write:\n  - url: http://{}/api/v1/write\n    send_exemplars: true\n    queue_config:\n      batch_send_deadline: 1s\n",
        target.addr, server.addr
    );
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let (_prometheus, prometheus) = start_prometheus(&prometheus_dir, &config);
    for k in 1..=4 {
        target.serve_until_scraped_by(stage(k, base), &[PROMETHEUS]);
    }
    let (start, end) = (base - 100, now_s() + 60);
    let query = "{job=\"om\"}";
    let (_, want) = query_exemplars(prometheus, query, start, end);
    assert_eq!(want["data"].as_array().map(Vec::len), Some(5), "{want}");
    // The queue sends within a second or two; wait for all of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, got) = query_exemplars(server.addr, query, start, end);
        if (status, &got) == (200, &want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "osprey has {got}\nPrometheus has {want}\nosprey log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A remote-write body of series with samples and exemplars (remote
/// write 1.0's `TimeSeries.exemplars`).
/// One series to write: labels, samples, and exemplars as (trace_id,
/// value, timestamp ms).
type WriteSeries<'a> = (
    &'a [(&'a str, &'a str)],
    Vec<(i64, f64)>,
    Vec<(&'a str, f64, i64)>,
);

fn write_body(series: &[WriteSeries<'_>]) -> Vec<u8> {
    use prost::Message;
    use remote::{Exemplar, Label, Sample, TimeSeries, WriteRequest};
    let label = |n: &str, v: &str| Label {
        name: n.to_string(),
        value: v.to_string(),
    };
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples, exemplars)| TimeSeries {
                labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                exemplars: exemplars
                    .iter()
                    .map(|&(trace, value, timestamp)| Exemplar {
                        labels: vec![label("trace_id", trace)],
                        value,
                        timestamp,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy")
}

/// (trace_id, timestamp ms) of every exemplar of `query`.
fn traces(addr: SocketAddr, query: &str) -> Vec<(String, i64)> {
    let (status, answer) = query_exemplars(addr, query, 0, now_s() + 3600);
    assert_eq!(status, 200, "{answer}");
    answer["data"]
        .as_array()
        .map(|list| {
            list.iter()
                .flat_map(|s| s["exemplars"].as_array().unwrap().iter())
                .map(|e| {
                    let t = e["timestamp"].as_f64().unwrap();
                    (
                        e["labels"]["trace_id"].as_str().unwrap_or("").to_string(),
                        (t * 1000.0).round() as i64,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn remote_write_exemplars_survive_kill_and_the_limit_evicts_the_oldest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("osprey.yml");
    std::fs::write(&config, "storage:\n  exemplars:\n    max_exemplars: 4\n").unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("data");
    let server = Server::start_with_args(&data, free_addr(), &dir.path().join("1.log"), &args);
    let t = (now_s() - 60) * 1000;
    let series: &[(&str, &str)] = &[("__name__", "rpc_seconds_bucket"), ("le", "0.5")];
    let body = write_body(&[
        (series, vec![(t, 1.0)], vec![("t1", 0.2, t)]),
        // Exemplars in a series of their own, as Prometheus sends them.
        (
            series,
            vec![],
            vec![("t2", 0.3, t + 1000), ("t3", 0.4, t + 2000)],
        ),
        // An out-of-order one: refused, and the request still succeeds.
        (series, vec![], vec![("t0", 0.1, t - 1000)]),
    ]);
    let status = support::remote_write(server.addr, &body).expect("write");
    assert_eq!(status, 204);
    let stored = traces(server.addr, "rpc_seconds_bucket");
    assert_eq!(
        stored,
        [
            ("t1".into(), t),
            ("t2".into(), t + 1000),
            ("t3".into(), t + 2000)
        ]
    );
    // An exemplar of an unknown series is dropped, its request accepted.
    let unknown: &[(&str, &str)] = &[("__name__", "never_written")];
    let body = write_body(&[(unknown, vec![], vec![("u", 1.0, t)])]);
    assert_eq!(
        support::remote_write(server.addr, &body).expect("write"),
        204
    );
    assert!(traces(server.addr, "never_written").is_empty());

    // kill -9: the WAL brings them back.
    server.kill();
    let server = Server::start_with_args(&data, free_addr(), &dir.path().join("2.log"), &args);
    assert_eq!(traces(server.addr, "rpc_seconds_bucket"), stored);

    // Two more in a store of four: the two oldest go.
    let body = write_body(&[(
        series,
        vec![(t + 5000, 2.0)],
        vec![("t4", 0.2, t + 3000), ("t5", 0.2, t + 4000)],
    )]);
    assert_eq!(
        support::remote_write(server.addr, &body).expect("write"),
        204
    );
    let traces_now: Vec<String> = traces(server.addr, "rpc_seconds_bucket")
        .into_iter()
        .map(|(trace, _)| trace)
        .collect();
    assert_eq!(traces_now, ["t2", "t3", "t4", "t5"]);

    // A reload to 2 keeps the newest two; to 0 forgets them all.
    std::fs::write(&config, "storage:\n  exemplars:\n    max_exemplars: 2\n").unwrap();
    let (status, _) = http(server.addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200);
    let traces_now: Vec<String> = traces(server.addr, "rpc_seconds_bucket")
        .into_iter()
        .map(|(trace, _)| trace)
        .collect();
    assert_eq!(traces_now, ["t4", "t5"]);
    let (_, metrics) = http(server.addr, "GET", "/metrics", &[], &[]).expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("prometheus_tsdb_exemplar_max_exemplars 2"),
        "{metrics}"
    );
    std::fs::write(&config, "storage:\n  exemplars:\n    max_exemplars: 0\n").unwrap();
    let (status, _) = http(server.addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200);
    assert!(traces(server.addr, "rpc_seconds_bucket").is_empty());
    let (status, answer) = query_exemplars(server.addr, "1 + 1", 0, 1);
    assert_eq!((status, answer), (204, Value::Null));
}

const OTEL_APP: &str = r#"
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

addr = sys.argv[1]
resource = Resource.create({"service.name": "trainer"})
tracer = TracerProvider(resource=resource).get_tracer("osprey.test")
exporter = OTLPMetricExporter(endpoint=f"http://{addr}/v1/metrics")
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3600000)
provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = provider.get_meter("osprey.test")
steps = meter.create_counter("training.steps", unit="{step}")
duration = meter.create_histogram("step.duration", unit="s")
with tracer.start_as_current_span("training_step") as span:
    steps.add(1)
    duration.record(0.3)
    context = span.get_span_context()
    print(format(context.trace_id, "032x"), format(context.span_id, "016x"))
ok = reader.force_flush()
provider.shutdown()
if not ok:
    sys.exit("export failed")
"#;

#[test]
fn otlp_exemplars_carry_the_span_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &dir.path().join("data"),
        free_addr(),
        &dir.path().join("o.log"),
    );

    // OTLP/JSON by hand: ids in hex; a histogram's exemplars go to the
    // buckets their values fall in.
    let now_ns = (now_s() as u128 - 30) * 1_000_000_000;
    let body = serde_json::json!({"resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
    "scopeMetrics": [{"metrics": [{
        "name": "request.latency", "unit": "s",
        "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "timeUnixNano": now_ns.to_string(), "count": "3", "sum": 3.5,
            "bucketCounts": ["1", "1", "1"], "explicitBounds": [0.5, 1.0],
            "exemplars": [
                {"timeUnixNano": now_ns.to_string(), "asDouble": 2.5,
                 "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174"},
                {"timeUnixNano": now_ns.to_string(), "asDouble": 0.2,
                 "traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175",
                 "filteredAttributes": [{"key": "user", "value": {"stringValue": "ada"}}]}
            ]}]}}]}]}]});
    let (status, answer) = http(
        server.addr,
        "POST",
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .expect("post");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let (_, found) = query_exemplars(server.addr, "request_latency_seconds_bucket", 0, now_s());
    let list = found["data"].as_array().expect("list");
    assert_eq!(list.len(), 2, "{found}");
    assert_eq!(list[0]["seriesLabels"]["le"], "+Inf");
    assert_eq!(
        list[0]["exemplars"][0]["labels"],
        serde_json::json!({"span_id": "eee19b7ec3c1b174", "trace_id": "5b8efff798038103d269b633813fc60c"})
    );
    assert_eq!(list[1]["seriesLabels"]["le"], "0.5");
    assert_eq!(list[1]["exemplars"][0]["labels"]["user"], "ada");
    assert_eq!(list[1]["exemplars"][0]["value"], "0.2");

    if !python_has(
        "opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.metric_exporter",
    ) {
        return;
    }
    let script = dir.path().join("otel.py");
    std::fs::write(&script, OTEL_APP).unwrap();
    let out = ChildGuard::output(
        Command::new("python3")
            .arg(&script)
            .arg(server.addr.to_string()),
        Duration::from_secs(60),
    )
    .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let mut ids = printed.split_whitespace();
    let (trace_id, span_id) = (ids.next().unwrap(), ids.next().unwrap());
    // The SDK's default buckets put 0.3 under `le="5"`.
    for q in [
        "training_steps_total",
        "step_duration_seconds_bucket{le=\"5\"}",
    ] {
        let (_, found) = query_exemplars(server.addr, q, 0, now_s() + 60);
        let exemplar = &found["data"][0]["exemplars"][0];
        assert_eq!(exemplar["labels"]["trace_id"], trace_id, "{q}: {found}");
        assert_eq!(exemplar["labels"]["span_id"], span_id, "{q}: {found}");
    }
}
