//! The web UI end to end: the real `osprey` binary with an hour of host,
//! GPU, serving and training data, driven by `ui/test/e2e.mjs` in headless
//! Chromium (Debian's `chromium` through playwright-core). Screenshots go to
//! `target/ui-screenshots/`. A second server is fed through the prediction
//! API as `tests/models.rs` does, and the Models pages, the A/B view, the
//! home page and the "Model quality" dashboard are checked on it (with
//! the distribution endpoint and Grafana's `/api/health` over plain
//! HTTP). The embedded default's home page must show every key figure
//! from the first scrapes. Also the dashboards API over HTTP: saving,
//! refusing bad input, provisioning from the config and re-reading
//! provisioned files when they change.
//!
//! `ui/test/unit.mjs` (the UI's pure functions: units, variables,
//! autocomplete context, Grafana conversion) runs under `node --test`.
//!
//! The browser test needs `node`, `chromium` and `ui/node_modules`
//! (`npm ci` in `ui/`); without them it prints why and returns, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where it fails.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{ChildGuard, Server, free_addr, http};

/// The repository root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Skips (returns false) or fails when an outside program is missing.
fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("{what} is required (OSPREY_REQUIRE_EXTERNAL=1)");
    }
    eprintln!("skipping the browser test: {what}");
    false
}

fn command_works(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Alert rules over the test data: one fires at once, one stays pending.
const RULES: &str = r#"groups:
  - name: ui-test
    interval: 1s
    rules:
      - alert: GpuHot
        expr: DCGM_FI_DEV_GPU_TEMP > 40
        labels:
          severity: page
        annotations:
          summary: "GPU {{ $labels.gpu }} is at {{ $value }} degrees"
      - alert: GpuHotForAnHour
        expr: DCGM_FI_DEV_GPU_TEMP > 40
        for: 1h
        labels:
          severity: ticket
        annotations:
          summary: "GPU {{ $labels.gpu }} has been hot for a while"
      - record: job:dcgm_gpu_util:avg
        expr: avg by (job) (DCGM_FI_DEV_GPU_UTIL)
"#;

/// An SLO over the test data's inference API: 98 % of requests succeed.
/// The data's 500s are 0.8 of every 50.8 requests at every moment, so by
/// hand the budget remaining is 1 - (0.8 / 50.8) / 0.02.
const SLOS: &str = r#"version: "prometheus/v1"
service: inference-api
slos:
  - name: availability
    objective: 98
    description: 98 % of inference API requests succeed.
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="inference-api",status=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="inference-api"}[{{.window}}]))
    alerting:
      name: InferenceApiAvailabilityBurn
"#;

/// The SLO's ID and its budget remaining computed by hand.
const SLO_ID: &str = "inference-api-availability";
const SLO_BUDGET_BY_HAND: f64 = 1.0 - (0.8 / 50.8) / 0.02;

/// A configuration that scrapes the server itself (every 2 s, so `up` is
/// there before the pages are checked), evaluates [`RULES`] and the SLO
/// of [`SLOS`] (every 2 s), runs the built-in alert manager (for the
/// Silences page) and provisions the dashboards in `provisioned/` next to
/// it.
fn write_config(dir: &Path, addr: SocketAddr) -> PathBuf {
    let path = dir.join("osprey.yml");
    std::fs::write(dir.join("rules.yml"), RULES).expect("write rules");
    std::fs::write(dir.join("slos.yml"), SLOS).expect("write SLOs");
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files:\n  - rules.yml\nslos: [slos.yml]\nscrape_configs:\n  - job_name: osprey\n    static_configs:\n      - targets: ['{addr}']\ndashboards:\n  paths:\n    - provisioned\nlimits:\n  max_series_per_metric: 100000\nalertmanager:\n  route:\n    receiver: default\n  receivers:\n    - name: default\n"
        ),
    )
    .expect("write config");
    std::fs::create_dir_all(dir.join("provisioned")).expect("mkdir provisioned");
    path
}

/// One hour of samples every 15 s, ending now, in the text format with
/// millisecond timestamps (`/api/v1/import/prometheus`). Counters grow by
/// positive steps, so rates are what a real exporter would give.
fn sample_data(now_ms: i64) -> String {
    const POINTS: i64 = 240;
    const STEP_MS: i64 = 15_000;
    let mut out = String::new();
    let mut series = |name: &str, labels: &str, value: &dyn Fn(i64) -> f64| {
        for i in 0..POINTS {
            let t = now_ms - (POINTS - 1 - i) * STEP_MS;
            out.push_str(&format!("{name}{{{labels}}} {} {t}\n", value(i)));
        }
    };
    let wave = |i: i64, period: f64, phase: f64| (i as f64 / period + phase).sin();
    // A counter whose rate per second is `rate(i)`: the running sum.
    let counter =
        |rate: &dyn Fn(i64) -> f64, i: i64| -> f64 { (0..=i).map(|k| rate(k) * 15.0).sum() };

    let host = r#"instance="host-1:9100",job="node""#;
    for cpu in 0..4 {
        for (mode, share) in [("user", 0.30), ("system", 0.10), ("iowait", 0.05)] {
            let c = cpu as f64;
            let rate = move |k: i64| share * (1.0 + 0.5 * wave(k, 20.0, c));
            series(
                "node_cpu_seconds_total",
                &format!(r#"{host},cpu="{cpu}",mode="{mode}""#),
                &|i| counter(&rate, i),
            );
        }
        let c = cpu as f64;
        let busy = move |k: i64| 0.45 * (1.0 + 0.5 * wave(k, 20.0, c));
        series(
            "node_cpu_seconds_total",
            &format!(r#"{host},cpu="{cpu}",mode="idle""#),
            &|i| counter(&|k| 1.0 - busy(k), i),
        );
    }
    let gib = 1024.0 * 1024.0 * 1024.0;
    series("node_memory_MemTotal_bytes", host, &|_| 16.0 * gib);
    series("node_memory_MemAvailable_bytes", host, &|i| {
        (8.0 * gib + gib * wave(i, 30.0, 0.0)).round()
    });
    for (name, base) in [
        ("node_load1", 1.5),
        ("node_load5", 1.4),
        ("node_load15", 1.3),
    ] {
        series(name, host, &|i| base + 0.8 * wave(i, 15.0, 0.0));
    }
    let fs = r#"device="/dev/sda1",fstype="ext4",mountpoint="/""#;
    series(
        "node_filesystem_size_bytes",
        &format!("{host},{fs}"),
        &|_| 500.0 * gib,
    );
    series(
        "node_filesystem_avail_bytes",
        &format!("{host},{fs}"),
        &|i| 200.0 * gib - i as f64 * 1048576.0,
    );
    series(
        "node_disk_read_bytes_total",
        &format!(r#"{host},device="sda""#),
        &|i| counter(&|k| 5e6 * (1.0 + 0.6 * wave(k, 9.0, 0.0)), i),
    );
    series(
        "node_disk_written_bytes_total",
        &format!(r#"{host},device="sda""#),
        &|i| counter(&|k| 8e6 * (1.0 + 0.6 * wave(k, 13.0, 1.0)), i),
    );
    series(
        "node_network_receive_bytes_total",
        &format!(r#"{host},device="eth0""#),
        &|i| counter(&|k| 2e6 * (1.0 + 0.7 * wave(k, 11.0, 0.0)), i),
    );
    series(
        "node_network_transmit_bytes_total",
        &format!(r#"{host},device="eth0""#),
        &|i| counter(&|k| 6e5 * (1.0 + 0.7 * wave(k, 7.0, 2.0)), i),
    );

    for gpu in 0..2 {
        let g = gpu as f64;
        let labels =
            format!(r#"instance="host-1:9400",job="dcgm",gpu="{gpu}",modelName="NVIDIA H100""#);
        series("DCGM_FI_DEV_GPU_UTIL", &labels, &|i| {
            (55.0 + 40.0 * wave(i, 12.0, g)).round()
        });
        series("DCGM_FI_DEV_FB_USED", &labels, &|i| {
            (40000.0 + 10000.0 * wave(i, 25.0, g)).round()
        });
        series("DCGM_FI_DEV_FB_FREE", &labels, &|i| {
            (41000.0 - 10000.0 * wave(i, 25.0, g)).round()
        });
        series("DCGM_FI_DEV_GPU_TEMP", &labels, &|i| {
            (62.0 + 12.0 * wave(i, 30.0, g)).round()
        });
        series("DCGM_FI_DEV_POWER_USAGE", &labels, &|i| {
            300.0 + 150.0 * wave(i, 12.0, g)
        });
    }

    let api = r#"instance="api-1:8000",job="inference-api""#;
    for (status, rps) in [("200", 50.0), ("500", 0.8)] {
        series(
            "http_requests_total",
            &format!(r#"{api},handler="/predict",method="POST",status="{status}""#),
            &|i| counter(&|k| rps * (1.0 + 0.4 * wave(k, 17.0, 0.0)), i),
        );
    }
    // Latency buckets: a distribution that drifts slower and faster.
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf",
    ];
    for name in [
        "http_request_duration_seconds",
        "model_inference_duration_seconds",
    ] {
        for (j, le) in les.iter().enumerate() {
            let share = move |k: i64| {
                let shift = 2.0 + 1.5 * wave(k, 25.0, 0.0);
                (1.0 / (1.0 + (-(j as f64 - shift) * 1.3).exp())).min(1.0)
            };
            let share = move |k: i64| if j + 1 == les.len() { 1.0 } else { share(k) };
            series(
                &format!("{name}_bucket"),
                &format!(r#"{api},model="resnet",le="{le}""#),
                &|i| counter(&|k| 50.0 * share(k), i).round(),
            );
        }
        series(
            &format!("{name}_count"),
            &format!(r#"{api},model="resnet""#),
            &|i| counter(&|_| 50.0, i).round(),
        );
        series(
            &format!("{name}_sum"),
            &format!(r#"{api},model="resnet""#),
            &|i| counter(&|_| 4.0, i),
        );
    }
    for (outcome, rps) in [("ok", 45.0), ("rejected", 3.0), ("error", 0.5)] {
        series(
            "model_predictions_total",
            &format!(r#"{api},model="resnet",version="3",outcome="{outcome}""#),
            &|i| counter(&|k| rps * (1.0 + 0.3 * wave(k, 10.0, 1.0)), i),
        );
    }
    series(
        "model_queue_depth",
        &format!(r#"{api},model="resnet""#),
        &|i| (10.0 + 8.0 * wave(i, 6.0, 0.0)).round(),
    );

    let train = r#"instance="trainer:8000",job="training",model="resnet""#;
    series("training_loss", train, &|i| {
        2.5 * (-(i as f64) / 80.0).exp() + 0.1 + 0.03 * wave(i, 1.0, 0.0)
    });
    series("validation_loss", train, &|i| {
        2.6 * (-(i as f64) / 80.0).exp() + 0.15
    });
    series("training_accuracy", train, &|i| {
        1.0 - 0.9 * (-(i as f64) / 60.0).exp()
    });
    series("validation_accuracy", train, &|i| {
        1.0 - 0.92 * (-(i as f64) / 60.0).exp()
    });
    series("samples_processed_total", train, &|i| {
        counter(&|k| 1200.0 + 100.0 * wave(k, 5.0, 0.0), i)
    });
    series("epoch_duration_seconds", train, &|i| {
        300.0 + 20.0 * wave(i, 7.0, 0.0)
    });
    let batch_les = ["0.05", "0.1", "0.2", "0.5", "1", "+Inf"];
    for (j, le) in batch_les.iter().enumerate() {
        // Batches slow down as the job goes on: the mass moves up the buckets.
        let share = move |k: i64| {
            if j + 1 == batch_les.len() {
                return 1.0;
            }
            let shift = 1.0 + 2.5 * k as f64 / POINTS as f64;
            1.0 / (1.0 + (-(j as f64 - shift) * 1.6).exp())
        };
        series(
            "batch_processing_seconds_bucket",
            &format!(r#"{train},le="{le}""#),
            &|i| counter(&|k| 10.0 * share(k), i).round(),
        );
    }

    // The cost series of the `costs:` section (docs/costs.md), for the
    // Training dashboard's Cost row: a trainer with an H100 and CPU, its
    // cost per step, and a monthly budget with its forecast.
    for (resource, gpu_model, per_hour) in [
        ("gpu", r#",gpu_model="NVIDIA H100 80GB HBM3""#, 3.0),
        ("cpu", "", 0.4),
    ] {
        series(
            "osprey_cost_dollars_total",
            &format!(r#"{train},resource="{resource}"{gpu_model}"#),
            &|i| counter(&|k| per_hour / 3600.0 * (1.0 + 0.1 * wave(k, 9.0, 0.0)), i),
        );
    }
    series("osprey_cost_per_step_dollars", train, &|i| {
        0.0021 + 0.0002 * wave(i, 9.0, 0.0)
    });
    let budget = r#"budget="training""#;
    series("osprey_cost_budget_dollars", budget, &|_| 5000.0);
    series("osprey_cost_budget_spent_dollars", budget, &|i| {
        3100.0 + 0.0142 * i as f64
    });
    series("osprey_cost_budget_remaining_dollars", budget, &|i| {
        1900.0 - 0.0142 * i as f64
    });
    let end_s = (now_ms / 1000 + 12 * 86_400) as f64;
    series(
        "osprey_cost_budget_period_end_timestamp_seconds",
        budget,
        &|_| end_s,
    );
    series(
        "osprey_cost_budget_exhaustion_timestamp_seconds",
        budget,
        &|_| end_s - 3.0 * 86_400.0,
    );
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn import(addr: SocketAddr, text: &str) {
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/import/prometheus",
        &[],
        text.as_bytes(),
    )
    .expect("import request");
    assert_eq!(status, 204, "import: {}", String::from_utf8_lossy(&body));
}

/// A counter with three exemplars over the last hour, by remote write
/// (docs/exemplars.md): two with a `trace_id`, one without, for the
/// explorer's "Show exemplars".
fn write_exemplars(addr: SocketAddr, now_ms: i64) {
    use prost::Message;
    use remote::{Exemplar, Label, Sample, TimeSeries, WriteRequest};
    let label = |n: &str, v: &str| Label {
        name: n.to_string(),
        value: v.to_string(),
    };
    let samples = (0..240)
        .map(|i| Sample {
            value: 10.0 * i as f64,
            timestamp: now_ms - (239 - i) * 15_000,
        })
        .collect();
    let exemplar = |labels: Vec<Label>, value: f64, minutes_ago: i64| Exemplar {
        labels,
        value,
        timestamp: now_ms - minutes_ago * 60_000,
    };
    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "ui_requests_total"), label("job", "ui")],
            samples,
            exemplars: vec![
                exemplar(
                    vec![label("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")],
                    900.0,
                    40,
                ),
                exemplar(vec![label("user", "ada")], 1500.0, 30),
                exemplar(
                    vec![
                        label("span_id", "00f067aa0ba902b7"),
                        label("trace_id", "a3ce929d0e0e4736a3ce929d0e0e4736"),
                    ],
                    2100.0,
                    20,
                ),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy");
    assert_eq!(
        support::remote_write(addr, &body).expect("remote write"),
        204
    );
}

/// Native histograms over the last hour by remote write
/// (docs/native-histograms.md), for the heatmaps and the table view:
/// `ui_latency_seconds` on two instances (exponential schema 2, a zero
/// bucket, counts moving up and down the buckets; instance `b` also has
/// negative buckets) and `ui_custom_seconds` (custom bounds, schema -53,
/// a gauge histogram).
fn write_histograms(addr: SocketAddr, now_ms: i64) {
    use model::histogram::{CounterResetHint, FloatHistogram, Span};
    use prost::Message;
    use remote::{Histogram, Label, TimeSeries, WriteRequest};
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect::<Vec<_>>()
    };
    let times: Vec<i64> = (0..240).map(|i| now_ms - (239 - i) * 15_000).collect();
    let mut positive = [0.0f64; 12];
    let mut negative = [0.0f64; 3];
    let mut zero = 0.0;
    let (mut a, mut b, mut custom) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &t) in times.iter().enumerate() {
        let centre = 3.0 + 2.0 * (i as f64 / 25.0).sin();
        for (j, c) in positive.iter_mut().enumerate() {
            *c += 10.0 * (-((j as f64 - centre).powi(2)) / 3.0).exp();
        }
        zero += 0.5;
        for (j, c) in negative.iter_mut().enumerate() {
            *c += 0.2 * (3 - j) as f64;
        }
        let exponential = |with_negative: bool| {
            let negatives: f64 = if with_negative {
                negative.iter().sum()
            } else {
                0.0
            };
            let count = positive.iter().sum::<f64>() + zero + negatives;
            FloatHistogram {
                counter_reset_hint: CounterResetHint::Unknown,
                schema: 2,
                zero_threshold: 0.001,
                zero_count: zero,
                count,
                sum: count * 0.8,
                positive_spans: vec![Span {
                    offset: -4,
                    length: 12,
                }],
                positive_buckets: positive.to_vec(),
                negative_spans: if with_negative {
                    vec![Span {
                        offset: 0,
                        length: 3,
                    }]
                } else {
                    vec![]
                },
                negative_buckets: if with_negative {
                    negative.to_vec()
                } else {
                    vec![]
                },
                ..FloatHistogram::default()
            }
        };
        a.push(Histogram::from_float(t, &exponential(false)));
        b.push(Histogram::from_float(t, &exponential(true)));
        let counts = vec![
            1.0 + (i % 5) as f64,
            4.0,
            2.0 + ((i / 30) % 4) as f64,
            1.0,
            0.5,
        ];
        custom.push(Histogram::from_float(
            t,
            &FloatHistogram {
                counter_reset_hint: CounterResetHint::Gauge,
                schema: -53,
                count: counts.iter().sum(),
                sum: 3.0,
                positive_spans: vec![Span {
                    offset: 0,
                    length: 5,
                }],
                positive_buckets: counts,
                custom_values: vec![0.1, 0.25, 0.5, 1.0],
                ..FloatHistogram::default()
            },
        ));
    }
    let request = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: labels(&[
                    ("__name__", "ui_latency_seconds"),
                    ("instance", "a"),
                    ("job", "api"),
                ]),
                histograms: a,
                ..Default::default()
            },
            TimeSeries {
                labels: labels(&[
                    ("__name__", "ui_latency_seconds"),
                    ("instance", "b"),
                    ("job", "api"),
                ]),
                histograms: b,
                ..Default::default()
            },
            TimeSeries {
                labels: labels(&[("__name__", "ui_custom_seconds"), ("job", "api")]),
                histograms: custom,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy");
    assert_eq!(
        support::remote_write(addr, &body).expect("remote write"),
        204
    );
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("request");
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[test]
fn browser_end_to_end() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let Some(chromium_path) = browser_prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let config = write_config(dir.path(), addr);
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &["--config", config.to_str().expect("utf-8 path")],
    );
    import(addr, &sample_data(now_ms()));
    write_exemplars(addr, now_ms());
    write_histograms(addr, now_ms());
    // Grafana JSON provisioned as a file (dashboards as code) renders too.
    let grafana = std::fs::read_to_string(root.join("ui/test/grafana-dashboard.json"))
        .expect("read grafana dashboard");
    std::fs::write(
        dir.path().join("provisioned/from-grafana.json"),
        grafana.replace("\"ml-service-grafana\"", "\"grafana-provisioned\""),
    )
    .expect("write provisioned dashboard");

    let screenshots = root.join("target/ui-screenshots");
    let provisioned = ["--provisioned", "grafana-provisioned"];
    let grafana = root.join("ui/test/grafana-dashboard.json");
    let budget = SLO_BUDGET_BY_HAND.to_string();
    let extra: Vec<&std::ffi::OsStr> = vec![
        "--grafana".as_ref(),
        grafana.as_os_str(),
        provisioned[0].as_ref(),
        provisioned[1].as_ref(),
        "--slo".as_ref(),
        SLO_ID.as_ref(),
        "--slo-budget".as_ref(),
        budget.as_ref(),
    ];
    let (ok, stdout) = run_e2e(addr, &chromium_path, &screenshots, &extra);
    let log = server.log_text();
    server.kill();
    assert!(ok, "browser checks failed:\n{stdout}\nserver log:\n{log}");
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .expect("a SUMMARY line");
    let summary: serde_json::Value = serde_json::from_str(summary).expect("summary JSON");
    assert!(summary["checks"].as_u64().unwrap_or(0) >= 15, "{summary}");
    assert_eq!(summary["systemDashboard"]["panels"], 12, "{summary}");
    assert_eq!(summary["slo"]["id"], SLO_ID, "{summary}");
    assert_eq!(summary["slo"]["dashboardPanels"], 11, "{summary}");
    // Native histograms: the table, one heatmap per series, the Grafana heatmaps.
    assert_eq!(summary["histogramTable"]["series"], 2, "{summary}");
    assert_eq!(
        summary["histogramHeatmap"]["maps"].as_array().map(Vec::len),
        Some(2),
        "{summary}"
    );
    assert_eq!(summary["grafanaHeatmaps"]["classicRows"], 9, "{summary}");
    assert!(
        screenshots.join("explorer-graph.png").is_file(),
        "no screenshot written"
    );
}

#[test]
fn ui_unit_tests_in_node() {
    if !require("node (Node.js)", command_works("node", "--version")) {
        return;
    }
    let root = repo_root();
    // Every module parses (a syntax error would blank its pages).
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root.join("ui/src"))
        .expect("ui/src")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "js"))
        .collect();
    sources.sort();
    assert!(!sources.is_empty());
    for source in &sources {
        let out = Command::new("node")
            .arg("--check")
            .arg(source)
            .output()
            .expect("node --check");
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = ChildGuard::output(
        Command::new("node")
            .args(["--test", "test/unit.mjs"])
            .current_dir(root.join("ui")),
        Duration::from_secs(60),
    )
    .expect("run node --test");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "UI unit tests failed:\n{output}");
    assert!(output.contains("# fail 0"), "{output}");
}

/// Runs `ui/test/e2e.mjs` against the server at `addr` (at most four
/// minutes); returns whether every check passed, and its output.
fn run_e2e(
    addr: SocketAddr,
    chromium: &Path,
    screenshots: &Path,
    extra: &[&std::ffi::OsStr],
) -> (bool, String) {
    let root = repo_root();
    // The browser checks take under a minute; four minutes bound a hang.
    let finished = ChildGuard::run(
        Command::new("node")
            .arg(root.join("ui/test/e2e.mjs"))
            .args(["--base", &format!("http://{addr}")])
            .arg("--out")
            .arg(screenshots)
            .arg("--chromium")
            .arg(chromium)
            .args(extra)
            .current_dir(root.join("ui")),
        Duration::from_secs(240),
    )
    .expect("spawn node");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    );
    let status = finished.status;
    println!("{output}");
    match status {
        Some(status) => (status.success(), output),
        None => (
            false,
            format!("{output}\n(the browser test did not finish in 4 minutes)"),
        ),
    }
}

/// The browser test's prerequisites: the path of chromium, or None (after
/// printing why) when something is missing.
fn browser_prerequisites() -> Option<PathBuf> {
    if !require("node (Node.js)", command_works("node", "--version")) {
        return None;
    }
    let chromium = std::env::var("OSPREY_CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    if !require(
        "chromium (apt-get install chromium)",
        command_works(&chromium, "--version"),
    ) {
        return None;
    }
    if !require(
        "ui/node_modules/playwright-core (run `npm ci` in ui/)",
        repo_root()
            .join("ui/node_modules/playwright-core/package.json")
            .is_file(),
    ) {
        return None;
    }
    Some(which(&chromium).unwrap_or_else(|| PathBuf::from(&chromium)))
}

/// One browser test at a time: two Chromiums on two cores would skew the
/// timings the end-to-end test reports.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn browser_on_the_embedded_default() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(chromium) = browser_prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    // The home page must show values from the first scrapes: the browser
    // measures from this moment.
    let started = now_ms().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
    );
    let screenshots = repo_root().join("target/ui-screenshots");
    let (ok, output) = run_e2e(
        addr,
        &chromium,
        &screenshots,
        &[
            "--smoke".as_ref(),
            "1".as_ref(),
            "--started".as_ref(),
            started.as_ref(),
        ],
    );
    let log = server.log_text();
    server.kill();
    assert!(ok, "browser checks failed:\n{output}\nserver log:\n{log}");
}

/// A deterministic normal variate (Box–Muller over a SplitMix64 stream).
fn normal(state: &mut u64, mean: f64, sd: f64) -> f64 {
    let mut uniform = || {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (u, v) = (uniform().max(1e-300), uniform());
    mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) {
    let (status, answer) = http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .expect("post");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&answer));
}

/// The model of `crates/osprey/tests/models.rs`, fed through the API in four waves a few
/// evaluations apart so the drift heatmap has a history: a reference of
/// 1,200 records with outcomes; then per wave 400 records of v1 (right
/// 90 % of the time) and 200 of v2 (60 %), the age feature shifted 4
/// years more each wave and the city mix moving with it, 80 % of them with
/// an actual 10 minutes later.
fn feed_model(addr: SocketAddr) {
    let now = now_ms() as f64 / 1000.0;
    let mut rng = 5u64;
    let cities = ["Oslo", "Bergen", "Tromso"];
    let mut record = |id: String, version: &str, shift: f64, skill: f64, t: f64| {
        let age = normal(&mut rng, 40.0 + shift, 10.0);
        let income = normal(&mut rng, 50.0, 15.0);
        let pick = normal(&mut rng, 0.0, 1.0).abs();
        let city = cities[((pick * 1.3 + shift / 10.0) as usize).min(2)];
        let truth = if age + 0.3 * income > 55.0 {
            "yes"
        } else {
            "no"
        };
        let right = normal(&mut rng, 0.0, 1.0).abs() < skill;
        let predicted = match (right, truth) {
            (true, t) => t,
            (false, "yes") => "no",
            _ => "yes",
        };
        (
            serde_json::json!({
                "id": id, "version": version, "timestamp": t,
                "features": {"age": age, "income": income, "city": city},
                "prediction": predicted,
                "scores": {"yes": if predicted == "yes" { 0.8 } else { 0.2 }, "no": if predicted == "yes" { 0.2 } else { 0.8 }},
                "shap": {"age": (age - 40.0) / 20.0, "income": (income - 50.0) / 40.0, "city": if city == "Oslo" { 0.05 } else { -0.05 }},
            }),
            truth,
        )
    };
    let reference: Vec<serde_json::Value> = (0..1200)
        .map(|i| {
            let (mut r, truth) = record(format!("r{i}"), "train", 0.0, 1.64, 0.0);
            let o = r.as_object_mut().expect("object");
            for k in ["id", "version", "timestamp"] {
                o.remove(k);
            }
            o.insert("actual".into(), serde_json::json!(truth));
            r
        })
        .collect();
    post_json(
        addr,
        "/api/v1/models/churn/reference",
        &serde_json::json!({"records": reference}),
    );
    for wave in 0..4 {
        let (mut predictions, mut actuals) = (Vec::new(), Vec::new());
        for (version, n, skill) in [("v1", 400, 1.64), ("v2", 200, 0.84)] {
            for i in 0..n {
                let t = now - 1800.0 + 225.0 * (wave as f64 + i as f64 / n as f64);
                let (r, truth) = record(
                    format!("{version}-{wave}-{i}"),
                    version,
                    4.0 * (wave + 1) as f64,
                    skill,
                    t,
                );
                if i % 5 != 0 {
                    actuals.push(
                        serde_json::json!({"id": r["id"], "actual": truth, "timestamp": t + 600.0}),
                    );
                }
                predictions.push(r);
            }
        }
        post_json(
            addr,
            "/api/v1/models/churn/predictions",
            &serde_json::json!({"records": predictions}),
        );
        post_json(
            addr,
            "/api/v1/models/churn/actuals",
            &serde_json::json!({"records": actuals}),
        );
        // A few evaluations (every second) before the next wave.
        std::thread::sleep(Duration::from_millis(2500));
    }
}

#[test]
fn browser_models_pages_and_home() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: osprey\n    static_configs:\n      - targets: ['{addr}']\n  - job_name: host\n    metrics_path: /exporters/host/metrics\n    static_configs:\n      - targets: ['{addr}']\nmodels:\n  - name: churn\n    task: classification\n    window: 1h\n    evaluation_interval: 1s\n    alerts: {{accuracy_below: 0.8, for: 0s}}\nalertmanager:\n  route:\n    receiver: default\n  receivers:\n    - name: default\n"
        ),
    )
    .expect("write config");
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &["--config", config.to_str().expect("utf-8 path")],
    );
    // Grafana's health check, on the main port and without credentials.
    let (status, health) = get_json(addr, "/api/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["database"], "ok", "{health}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
    assert!(health["commit"].is_string(), "{health}");

    feed_model(addr);
    // The comparison and the worse version's alert are there before the
    // browser looks.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, p) = get_json(
            addr,
            "/api/v1/query?query=osprey_model_version_comparison_pvalue",
        );
        let (_, alerts) = get_json(
            addr,
            "/api/v1/query?query=ALERTS%7Balertname%3D%22ModelAccuracyLow%22%2Calertstate%3D%22firing%22%7D",
        );
        let has = |v: &serde_json::Value| {
            v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        };
        if has(&p) && has(&alerts) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no comparison or alert: {p} {alerts}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The distribution endpoint answers what the page draws, and refuses
    // bad input in Prometheus's error shape.
    let (status, d) = get_json(
        addr,
        "/api/v1/models/churn/distribution?feature=age&version=v1",
    );
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["data"]["kind"], "numeric", "{d}");
    assert_eq!(d["data"]["current_count"], 1600.0, "{d}");
    let (status, e) = get_json(addr, "/api/v1/models/churn/distribution?feature=nope");
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["errorType"], "bad_data", "{e}");
    let (status, e) = get_json(addr, "/api/v1/models/churn/distribution");
    assert_eq!(status, 400, "{e}");
    let (status, c) = get_json(addr, "/api/v1/models/churn/compare?a=v1&b=v2");
    assert_eq!(status, 200, "{c}");
    let accuracy = c["data"]["figures"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["metric"] == "accuracy"))
        .cloned()
        .unwrap_or_default();
    assert!(
        accuracy["p_value"].as_f64().is_some_and(|p| p < 0.05),
        "{c}"
    );
    assert!(
        accuracy["difference"].as_f64().is_some_and(|d| d < 0.0),
        "{c}"
    );
    let (status, e) = get_json(addr, "/api/v1/models/churn/compare?a=v1");
    assert_eq!(status, 400, "{e}");

    // The server checks above run everywhere; the browser's need chromium.
    let Some(chromium) = browser_prerequisites() else {
        server.kill();
        return;
    };
    let screenshots = repo_root().join("target/ui-screenshots");
    let (ok, stdout) = run_e2e(
        addr,
        &chromium,
        &screenshots,
        &[
            "--models".as_ref(),
            "churn".as_ref(),
            "--models-better".as_ref(),
            "v1".as_ref(),
        ],
    );
    let log = server.log_text();
    server.kill();
    assert!(ok, "browser checks failed:\n{stdout}\nserver log:\n{log}");
    for shot in ["models-list", "model-page", "model-compare", "home"] {
        assert!(
            screenshots.join(format!("{shot}.png")).is_file(),
            "no {shot}.png"
        );
    }
}

#[test]
fn browser_login_as_viewer_and_editor() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(chromium) = browser_prerequisites() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = |password: &str| bcrypt::hash(password, 4).expect("bcrypt");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  vera: '{}'\n  ed: '{}'\nuser_roles:\n  vera: viewer\n  ed: editor\n",
            hash("pw-vera"),
            hash("pw-ed")
        ),
    )
    .expect("web config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &["--web.config.file", web.to_str().expect("utf-8 path")],
    );
    let screenshots = repo_root().join("target/ui-screenshots");
    let (ok, output) = run_e2e(
        addr,
        &chromium,
        &screenshots,
        &["--auth".as_ref(), "vera:pw-vera,ed:pw-ed".as_ref()],
    );
    let log = server.log_text();
    server.kill();
    assert!(ok, "browser checks failed:\n{output}\nserver log:\n{log}");
    // Every sign-in, refusal and change is in the audit log.
    let audit = std::fs::read_to_string(dir.path().join("data/audit.log")).expect("audit log");
    assert!(audit.contains("\"action\":\"login\""), "{audit}");
    assert!(audit.contains("denied"), "{audit}");
    assert!(audit.contains("POST /api/v2/silences"), "{audit}");
    assert!(
        !audit.contains("pw-vera") && !audit.contains("pw-ed"),
        "{audit}"
    );
}

/// The absolute path of a program on PATH.
fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[test]
fn dashboards_api_saves_provisions_and_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let config = write_config(dir.path(), addr);
    let provisioned = dir.path().join("provisioned");
    std::fs::write(
        provisioned.join("fleet.json"),
        r#"{"uid":"fleet","title":"Fleet v1","rows":[]}"#,
    )
    .expect("write provisioned");
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &["--config", config.to_str().expect("utf-8 path")],
    );

    // Built-ins and the provisioned file are listed.
    let (status, list) = get_json(addr, "/api/osprey/dashboards");
    assert_eq!(status, 200, "{list}");
    let uids: Vec<&str> = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    for uid in [
        "system", "gpu", "serving", "training", "alerts", "slos", "fleet",
    ] {
        assert!(uids.contains(&uid), "{uid} missing from {uids:?}");
    }

    // A provisioned file is re-read when it changes: no reload needed.
    std::fs::write(
        provisioned.join("fleet.json"),
        r#"{"uid":"fleet","title":"Fleet v2","rows":[]}"#,
    )
    .expect("rewrite provisioned");
    let (status, fleet) = get_json(addr, "/api/osprey/dashboards/fleet");
    assert_eq!(status, 200, "{fleet}");
    assert_eq!(fleet["data"]["dashboard"]["title"], "Fleet v2");
    assert_eq!(fleet["data"]["meta"]["readOnly"], true);

    // A broken provisioned file is listed with its error, not a failure.
    std::fs::write(provisioned.join("broken.json"), "{ not json").expect("write");
    let (_, list) = get_json(addr, "/api/osprey/dashboards");
    let broken = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["uid"] == "broken")
        .cloned()
        .expect("broken listed");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid JSON")),
        "{broken}"
    );

    // Saving: stored in the data dir, read back, deletable.
    let body = br#"{"title":"Mine","rows":[{"title":"","panels":[]}]}"#;
    let (status, resp) = http(addr, "PUT", "/api/osprey/dashboards/mine", &[], body).expect("put");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert!(dir.path().join("data/dashboards/mine.json").is_file());
    let (status, mine) = get_json(addr, "/api/osprey/dashboards/mine");
    assert_eq!(status, 200);
    assert_eq!(mine["data"]["dashboard"]["uid"], "mine");
    assert_eq!(mine["data"]["meta"]["source"], "saved");

    // Refusals, in the Prometheus error shape.
    for (method, path, body, want) in [
        ("PUT", "/api/osprey/dashboards/system", &body[..], 409),
        ("PUT", "/api/osprey/dashboards/fleet", &body[..], 409),
        ("PUT", "/api/osprey/dashboards/bad%20uid", &body[..], 400),
        ("PUT", "/api/osprey/dashboards/x", &b"[1,2]"[..], 400),
        (
            "PUT",
            "/api/osprey/dashboards/x",
            &b"{\"rows\":[]}"[..],
            400,
        ),
        ("PUT", "/api/osprey/dashboards/x", &b"{oops"[..], 400),
        ("DELETE", "/api/osprey/dashboards/system", &b""[..], 409),
        ("GET", "/api/osprey/dashboards/nope", &b""[..], 404),
    ] {
        let (status, resp) = http(addr, method, path, &[], body).expect("request");
        assert_eq!(
            status,
            want,
            "{method} {path}: {}",
            String::from_utf8_lossy(&resp)
        );
        let v: serde_json::Value = serde_json::from_slice(&resp).expect("error JSON");
        assert_eq!(v["status"], "error", "{v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }

    // A mistake in the config's dashboards section fails the reload, naming
    // the file and the field, and the dashboards in effect stay.
    let (_, before) = get_json(addr, "/api/osprey/dashboards");
    let text = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(&config, text.replace("  paths:", "  pathz:")).expect("rewrite config");
    let (status, reply) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 500);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.contains("osprey.yml") && reply.contains("dashboards.pathz"),
        "{reply}"
    );
    let (_, after) = get_json(addr, "/api/osprey/dashboards");
    assert_eq!(before, after);
    std::fs::write(&config, text).expect("restore config");

    let (status, _) =
        http(addr, "DELETE", "/api/osprey/dashboards/mine", &[], &[]).expect("delete");
    assert_eq!(status, 200);
    let (status, _) = get_json(addr, "/api/osprey/dashboards/mine");
    assert_eq!(status, 404);

    // The UI itself: every page path answers the app; assets are gzipped
    // for clients that take it and revalidate with an ETag.
    for page in [
        "/",
        "/graph",
        "/query",
        "/targets",
        "/d/system",
        "/silences",
        "/slos",
        "/slos/inference-api-availability",
        "/tsdb-status",
    ] {
        let (status, body) = http(addr, "GET", page, &[], &[]).expect("page");
        assert_eq!(status, 200, "{page}");
        assert!(
            String::from_utf8_lossy(&body).contains("/app.js\""),
            "{page}"
        );
    }
    let (status, body) =
        http(addr, "GET", "/ui/vendor/uPlot.iife.min.js", &[], &[]).expect("uplot");
    assert_eq!(status, 200);
    assert!(body.len() > 20_000, "uPlot is {} bytes", body.len());
    let (status, _) = http(addr, "GET", "/ui/nope.js", &[], &[]).expect("missing asset");
    assert_eq!(status, 404);
    // index.html names the versioned asset prefix; files under it exist.
    let (_, index) = http(addr, "GET", "/", &[], &[]).expect("index");
    let index = String::from_utf8_lossy(&index).to_string();
    let start = index
        .find("/ui/v-")
        .expect("versioned asset prefix in index.html");
    let id: String = index[start + "/ui/v-".len()..]
        .chars()
        .take_while(|c| *c != '/')
        .collect();
    let prefix = format!("/ui/v-{id}/");
    let (status, _) = http(addr, "GET", &format!("{prefix}app.js"), &[], &[]).expect("versioned");
    assert_eq!(status, 200, "{prefix}app.js");
    let gzip = [("Accept-Encoding", "gzip")];
    let (status, body) = http(addr, "GET", "/ui/app.js", &gzip, &[]).expect("gzip asset");
    assert_eq!(status, 200);
    assert!(body.starts_with(&[0x1f, 0x8b]), "app.js not gzipped");
    let (status, body) =
        http(addr, "GET", "/api/v1/status/buildinfo", &gzip, &[]).expect("gzip api");
    assert_eq!(status, 200);
    assert!(body.starts_with(&[0x1f, 0x8b]), "API answer not gzipped");
    let (status, body) = http(addr, "GET", "/api/v1/status/buildinfo", &[], &[]).expect("api");
    assert_eq!(status, 200);
    assert!(
        body.starts_with(b"{"),
        "API answer gzipped without Accept-Encoding"
    );
    server.kill();
}
