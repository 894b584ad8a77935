//! Scraping the protobuf exposition format with native histograms, against
//! Prometheus 2.42 (`--enable-feature=native-histograms`) on the same
//! target:
//!
//! - osprey (started with `--enable-feature=native-histograms`) asks for
//!   the protobuf format first and stores what Prometheus stores: the
//!   instant query of every scraped series (floats, classic histogram and
//!   summary series with Prometheus's `le`/`quantile` spelling, integer and
//!   float native histograms) answers the same JSON, timestamps aside;
//! - Prometheus scrapes the target and remote-writes to osprey
//!   (`send_native_histograms`); osprey's answers for those series equal
//!   Prometheus's own, timestamps included;
//! - `osprey agent` (job setting `scrape_native_histograms: true`)
//!   scrapes it and forwards to osprey in remote write 2.0: the same
//!   answers as osprey's own scrape, timestamps aside.
//!
//! A missing `prometheus` skips the comparisons with a reason, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where it fails.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;
use scrape::protobuf::{
    Bucket, BucketSpan, COUNTER, Counter, GAUGE, GAUGE_HISTOGRAM, HISTOGRAM, Histogram, LabelPair,
    Metric, MetricFamily, Quantile, SUMMARY, SingleValue, Summary, UNTYPED,
};
use support::{ChildGuard, Server, free_addr, http, is_ready, urlencode};

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn label(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: Some(name.to_string()),
        value: Some(value.to_string()),
    }
}

fn span(offset: i32, length: u32) -> BucketSpan {
    BucketSpan {
        offset: Some(offset),
        length: Some(length),
    }
}

fn family(name: &str, kind: i32, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        help: Some(format!("{name} help.")),
        r#type: Some(kind),
        metric,
        unit: None,
    }
}

/// The exposition: one family of every kind, classic bounds that need an
/// exponent or a `.0`, native histograms (integer with both signs and a
/// zero bucket at schema 3, float gauge at schema 0, one with no
/// observations yet).
fn exposition() -> Vec<u8> {
    let classic = Histogram {
        sample_count: Some(9),
        sample_sum: Some(1234.5),
        bucket: [(0.00001, 1), (0.1, 2), (1.0, 4), (10.0, 4), (1e6, 8)]
            .iter()
            .map(|&(bound, n)| Bucket {
                cumulative_count: Some(n),
                upper_bound: Some(bound),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let native = Histogram {
        sample_count: Some(17),
        sample_sum: Some(-3.25),
        schema: Some(3),
        zero_threshold: Some(0.001),
        zero_count: Some(2),
        positive_span: vec![span(-2, 3), span(5, 2)],
        positive_delta: vec![1, 2, -1, 0, 3],
        negative_span: vec![span(4, 2)],
        negative_delta: vec![1, 0],
        ..Default::default()
    };
    let float = Histogram {
        sample_count_float: Some(7.5),
        sample_sum: Some(10.0),
        schema: Some(0),
        zero_threshold: Some(1e-128),
        positive_span: vec![span(0, 2), span(1, 1)],
        positive_count: vec![2.5, 1.0, 4.0],
        ..Default::default()
    };
    let empty = Histogram {
        sample_count: Some(0),
        sample_sum: Some(0.0),
        schema: Some(2),
        zero_threshold: Some(1e-128),
        positive_span: vec![span(0, 0)],
        ..Default::default()
    };
    let families = [
        family(
            "requests_total",
            COUNTER,
            ["200", "500"]
                .iter()
                .zip([42.0, 3.0])
                .map(|(code, value)| Metric {
                    label: vec![label("code", code)],
                    counter: Some(Counter {
                        value: Some(value),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        family(
            "temperature_celsius",
            GAUGE,
            vec![Metric {
                gauge: Some(SingleValue { value: Some(21.5) }),
                ..Default::default()
            }],
        ),
        family(
            "build_info",
            UNTYPED,
            vec![Metric {
                label: vec![label("version", "1.2.3")],
                untyped: Some(SingleValue { value: Some(1.0) }),
                ..Default::default()
            }],
        ),
        family(
            "rpc_seconds",
            SUMMARY,
            vec![Metric {
                summary: Some(Summary {
                    sample_count: Some(12),
                    sample_sum: Some(3.5),
                    quantile: [(0.5, 0.2), (0.99, 1.5), (1.0, 2.0)]
                        .iter()
                        .map(|&(q, v)| Quantile {
                            quantile: Some(q),
                            value: Some(v),
                        })
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        ),
        family(
            "classic_seconds",
            HISTOGRAM,
            vec![Metric {
                histogram: Some(classic),
                ..Default::default()
            }],
        ),
        family(
            "latency_seconds",
            HISTOGRAM,
            vec![Metric {
                label: vec![label("path", "/a")],
                histogram: Some(native),
                ..Default::default()
            }],
        ),
        family(
            "load_ratio",
            GAUGE_HISTOGRAM,
            vec![Metric {
                histogram: Some(float),
                ..Default::default()
            }],
        ),
        family(
            "idle_seconds",
            HISTOGRAM,
            vec![Metric {
                histogram: Some(empty),
                ..Default::default()
            }],
        ),
    ];
    let mut body = Vec::new();
    for f in families {
        f.encode_length_delimited(&mut body).expect("encode");
    }
    body
}

/// A target serving `body` as protobuf on 127.0.0.1; it records each
/// request's `Accept` and `User-Agent`. The thread ends with the test
/// process.
/// The (User-Agent, Accept) of each request a target saw.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn serve(body: Vec<u8>) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            let header = |name: &str| {
                text.lines()
                    .find_map(|line| {
                        let (key, value) = line.split_once(':')?;
                        key.eq_ignore_ascii_case(name)
                            .then(|| value.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            record
                .lock()
                .expect("lock")
                .push((header("user-agent"), header("accept")));
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {PROTOBUF}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (addr, seen)
}

/// The result of an instant query of `selector` at `time` (seconds), each
/// series as (metric, value or histogram), sorted; with `strip`, the
/// sample timestamps are zeroed and `job` is dropped, so that two
/// scrapers of one target compare.
fn instant(addr: SocketAddr, selector: &str, time: f64, strip: bool) -> Vec<serde_json::Value> {
    let path = format!("/api/v1/query?query={}&time={time:.3}", urlencode(selector));
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{selector}: {text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let mut out: Vec<serde_json::Value> = json["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .cloned()
        .map(|mut series| {
            if strip {
                if let Some(metric) = series["metric"].as_object_mut() {
                    metric.remove("job");
                }
                for key in ["value", "histogram"] {
                    if series[key].is_array() {
                        series[key][0] = serde_json::json!(0);
                    }
                }
            }
            series
        })
        .collect();
    out.sort_by_key(|series| series["metric"].to_string());
    out
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Retries `check` for up to a minute: scrapes and remote writes land
/// over a few seconds.
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check() {
            Ok(()) => return,
            Err(error) if Instant::now() > deadline => panic!("{what}: {error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn differ(ours: &[serde_json::Value], theirs: &[serde_json::Value]) -> Result<(), String> {
    if ours == theirs {
        return Ok(());
    }
    Err(format!(
        "answers differ:\nosprey:     {}\nprometheus: {}",
        serde_json::Value::from(ours.to_vec()),
        serde_json::Value::from(theirs.to_vec())
    ))
}

/// The scraped series, without the scrape's own `up` and `scrape_*`.
const SCRAPED: &str = "{__name__!~\"up|scrape_.*\",job=\"JOB\"}";

#[test]
fn protobuf_scrapes_store_what_prometheus_stores() {
    let (target, seen) = serve(exposition());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: direct\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    )
    .expect("config");
    let osprey = Server::start_with_args(
        &dir.path().join("data"),
        free_addr(),
        &dir.path().join("osprey.log"),
        &[
            "--config",
            config.to_str().expect("path"),
            "--enable-feature=native-histograms",
        ],
    );
    let direct = SCRAPED.replace("JOB", "direct");
    eventually("osprey scrapes the native histogram", || {
        let got = instant(osprey.addr, "latency_seconds", now_s(), false);
        if got.len() == 1 && got[0]["histogram"].is_array() {
            Ok(())
        } else {
            let targets = http(osprey.addr, "GET", "/api/v1/targets", &[], &[])
                .map(|(_, body)| String::from_utf8_lossy(&body).into_owned());
            Err(format!("{got:?}\n{targets:?}\n{}", osprey.log_text()))
        }
    });
    // osprey asked for the protobuf format first, as Prometheus 3 does.
    let accept = seen
        .lock()
        .expect("lock")
        .iter()
        .find(|(agent, _)| !agent.starts_with("Prometheus"))
        .map(|(_, accept)| accept.clone())
        .expect("osprey's request");
    assert!(
        accept.starts_with(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,"
        ),
        "{accept}"
    );
    let ours = instant(osprey.addr, &direct, now_s(), true);
    // Every family is there: 2 counters, gauge, untyped, 5 summary series,
    // 8 classic series (6 buckets), 3 native histograms.
    assert_eq!(ours.len(), 20, "{ours:?}");
    let le: Vec<&str> = ours
        .iter()
        .filter(|s| s["metric"]["__name__"] == "classic_seconds_bucket")
        .filter_map(|s| s["metric"]["le"].as_str())
        .collect();
    assert!(le.contains(&"1.0") && le.contains(&"+Inf"), "{le:?}");

    // The agent scrapes the target and forwards in 2.0, histograms
    // included.
    let agent_config = dir.path().join("agent.yml");
    std::fs::write(
        &agent_config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: agent\n    scrape_native_histograms: true\n    static_configs: [{{targets: ['{target}']}}]\nremote_write:\n  - url: http://{}/api/v1/write\n    protobuf_message: io.prometheus.write.v2.Request\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 1s}}\n",
            osprey.addr
        ),
    )
    .expect("agent config");
    let agent_addr = free_addr();
    let _agent = ChildGuard::spawn_ready(
        std::process::Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(["agent", "--config"])
            .arg(&agent_config)
            .arg("--data-dir")
            .arg(dir.path().join("agent-data"))
            .args(["--listen", &agent_addr.to_string()]),
        &dir.path().join("agent.log"),
        Duration::from_secs(30),
        || is_ready(agent_addr),
    );
    let via_agent = SCRAPED.replace("JOB", "agent");
    eventually("the agent's forwarded scrape equals osprey's own", || {
        let time = now_s();
        let forwarded = instant(osprey.addr, &via_agent, time, true);
        let own = instant(osprey.addr, &direct, time, true);
        differ(&forwarded, &own)
    });

    if !support::prometheus::available() {
        return;
    }
    let (_prometheus, prometheus) = support::prometheus::start(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fromprom\n    static_configs: [{{targets: ['{target}']}}]\nremote_write:\n  - url: http://{}/api/v1/write\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 1s}}\n",
            osprey.addr
        ),
    );
    let fromprom = SCRAPED.replace("JOB", "fromprom");
    // The same target scraped by both: the same series and values.
    eventually("osprey's scrape equals Prometheus's", || {
        let time = now_s();
        let theirs = instant(prometheus, &fromprom, time, true);
        let ours = instant(osprey.addr, &direct, time, true);
        differ(&ours, &theirs)
    });
    // Prometheus's scrape, remote-written to osprey: equal answers,
    // timestamps included, a few seconds back (so that the writes are in).
    eventually("remote-written series equal Prometheus's", || {
        let time = now_s() - 3.0;
        let theirs = instant(prometheus, &fromprom, time, false);
        let ours = instant(osprey.addr, &fromprom, time, false);
        if theirs.len() != 20 {
            return Err(format!("prometheus has {} series", theirs.len()));
        }
        differ(&ours, &theirs)
    });
}
