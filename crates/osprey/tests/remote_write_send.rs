//! The server's remote-write sender with native histograms: samples and
//! histograms remote-written into one osprey (A) are forwarded by its
//! `remote_write` queues
//!
//! - to a second osprey (B) in remote write 2.0 (`protobuf_message:
//!   io.prometheus.write.v2.Request`),
//! - to Prometheus 2.42 (`--web.enable-remote-write-receiver`,
//!   `--enable-feature=native-histograms`) in 1.0 with
//!   `send_native_histograms`,
//! - and to the same Prometheus configured for 2.0, which 2.42 does not
//!   speak: the queue falls back to 1.0 (its series carry `via="fallback"`
//!   from write relabelling),
//!
//! and every receiver answers the same instant queries as A. A missing
//! `prometheus` skips that part with a reason, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where it fails.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span};
use prost::Message as _;
use support::{Server, free_addr, http, remote_write, urlencode};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// 10 samples a second apart ending at `end`: an integer counter
/// histogram, a float gauge histogram and a float counter.
fn request(end: i64) -> Vec<u8> {
    let labels = |name: &str| {
        vec![
            remote::Label {
                name: "__name__".into(),
                value: name.into(),
            },
            remote::Label {
                name: "job".into(),
                value: "model".into(),
            },
        ]
    };
    let times: Vec<i64> = (0..10).map(|i| end - (9 - i) * 1000).collect();
    let integer = |i: u64| Histogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: 2,
        zero_threshold: 0.001,
        zero_count: i,
        count: 4 * i,
        sum: i as f64 * 1.5,
        positive_spans: vec![
            Span {
                offset: -2,
                length: 1,
            },
            Span {
                offset: 3,
                length: 1,
            },
        ],
        positive_buckets: vec![i as i64, 0],
        negative_spans: vec![Span {
            offset: 1,
            length: 1,
        }],
        negative_buckets: vec![i as i64],
        custom_values: vec![],
    };
    let float = |i: u64| FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: 0,
        count: 2.5 + i as f64,
        sum: -1.25,
        positive_spans: vec![Span {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![2.5, i as f64],
        ..FloatHistogram::default()
    };
    let req = remote::WriteRequest {
        timeseries: vec![
            remote::TimeSeries {
                labels: labels("latency_seconds"),
                histograms: times
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| remote::Histogram::from_integer(t, &integer(i as u64 + 1)))
                    .collect(),
                ..Default::default()
            },
            remote::TimeSeries {
                labels: labels("queue_depth"),
                histograms: times
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| remote::Histogram::from_float(t, &float(i as u64)))
                    .collect(),
                ..Default::default()
            },
            remote::TimeSeries {
                labels: labels("requests_total"),
                samples: times
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| remote::Sample {
                        value: i as f64 * 2.0,
                        timestamp: t,
                    })
                    .collect(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

/// Instant (at `end`) and range (over the samples) answers of `selector`.
fn answers(addr: SocketAddr, selector: &str, end: i64) -> Vec<serde_json::Value> {
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    [
        format!(
            "/api/v1/query?query={}&time={}",
            urlencode(selector),
            secs(end)
        ),
        format!(
            "/api/v1/query?query={}&time={}",
            urlencode(&format!("{selector}[20s]")),
            secs(end)
        ),
    ]
    .iter()
    .map(|path| {
        let (status, body) = http(addr, "GET", path, &[], &[]).expect("query");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let mut result = json["data"]["result"].clone();
        // The fallback queue's series carry `via`; drop it to compare.
        if let Some(series) = result.as_array_mut() {
            for s in series.iter_mut() {
                if let Some(metric) = s["metric"].as_object_mut() {
                    metric.remove("via");
                }
            }
            series.sort_by_key(|s| s["metric"].to_string());
        }
        result
    })
    .collect()
}

const SELECTORS: [&str; 3] = [
    "latency_seconds",
    "queue_depth",
    "{__name__=~\"latency_seconds|queue_depth|requests_total\"}",
];

/// Waits (at most a minute) until `receiver` answers what `source`
/// answers for every selector (the `extra` matcher added on the
/// receiver's side).
fn converge(what: &str, source: SocketAddr, receiver: SocketAddr, extra: &str, end: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut difference = None;
        for selector in SELECTORS {
            let theirs_selector = if extra.is_empty() {
                selector.to_string()
            } else if let Some(inner) = selector.strip_suffix('}') {
                format!("{inner},{extra}}}")
            } else {
                format!("{selector}{{{extra}}}")
            };
            let ours = answers(source, selector, end);
            let theirs = answers(receiver, &theirs_selector, end);
            if ours != theirs {
                difference = Some(format!(
                    "{selector}:\nsource:   {}\nreceiver: {}",
                    serde_json::Value::from(ours),
                    serde_json::Value::from(theirs)
                ));
                break;
            }
        }
        match difference {
            None => return,
            Some(d) if Instant::now() > deadline => panic!("{what}: {d}"),
            Some(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
fn histograms_are_forwarded_in_1_0_and_2_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Server::start(
        &dir.path().join("b"),
        free_addr(),
        &dir.path().join("b.log"),
    );
    let prometheus = if support::prometheus::available() {
        Some(support::prometheus::start(
            dir.path(),
            "global:\n  scrape_interval: 1h\n",
        ))
    } else {
        None
    };
    let mut config = format!(
        "remote_write:\n  - url: http://{}/api/v1/write\n    protobuf_message: io.prometheus.write.v2.Request\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 1s}}\n",
        b.addr
    );
    if let Some((_, p)) = &prometheus {
        config.push_str(&format!(
            "  - url: http://{p}/api/v1/write\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 1s}}\n  - url: http://{p}/api/v1/write\n    name: fallback\n    protobuf_message: io.prometheus.write.v2.Request\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 1s}}\n    write_relabel_configs:\n      - target_label: via\n        replacement: fallback\n"
        ));
    }
    let config_path = dir.path().join("a.yml");
    std::fs::write(&config_path, &config).expect("config");
    let a = Server::start_with_args(
        &dir.path().join("a"),
        free_addr(),
        &dir.path().join("a.log"),
        &["--config", config_path.to_str().expect("path")],
    );
    let end = now_ms() / 1000 * 1000 - 30_000;
    assert_eq!(
        remote_write(a.addr, &request(end)).expect("write"),
        204,
        "{}",
        a.log_text()
    );
    // A answers with the histograms themselves.
    let latency = answers(a.addr, "latency_seconds", end);
    assert_eq!(latency[0][0]["histogram"][1]["count"], "40", "{latency:?}");

    converge("osprey to osprey in 2.0", a.addr, b.addr, "", end);
    if let Some((_, p)) = &prometheus {
        converge("osprey to Prometheus in 1.0", a.addr, *p, "via=\"\"", end);
        converge(
            "osprey to Prometheus, 2.0 falling back to 1.0",
            a.addr,
            *p,
            "via=\"fallback\"",
            end,
        );
        assert!(
            a.log_text().contains("sending 1.0 from now on"),
            "{}",
            a.log_text()
        );
    }
}
