//! Model quality end to end, through the real binary:
//!
//! - real `prometheus_client` histograms scraped from a Python app, the
//!   drift functions over them equal to scipy and Evidently on the same
//!   bucket counts, and a drift alert rule firing at the alert manager,
//!   whose webhook receiver gets it;
//! - the prediction API with late actuals, a drifted feature and a worse
//!   version: the drift, accuracy and comparison series, the model's
//!   starter alerts firing at the alert manager and reaching a webhook
//!   (the retraining recipe of docs/models.md), and the records still
//!   there after a `kill -9`.
//!
//! Without python3 and its packages the tests are skipped with a reason,
//! unless `OSPREY_REQUIRE_EXTERNAL=1`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn python_has(modules: &str) -> bool {
    python_imports(modules, &format!("python3 with {modules} (see .ci/run)"))
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn query(addr: SocketAddr, q: &str, time: Option<f64>) -> serde_json::Value {
    let mut path = format!("/api/v1/query?query={}", urlencode(q));
    if let Some(t) = time {
        path.push_str(&format!("&time={t}"));
    }
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["data"]["result"].clone()
}

fn first_value(result: &serde_json::Value) -> Option<f64> {
    result.as_array()?.first()?["value"][1]
        .as_str()?
        .parse()
        .ok()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// The value of the newest sample of `selector` (one series) if that
/// sample was written after `after` (Unix seconds). An instant query's
/// `value[0]` is the query's own time, not the sample's, so this reads the
/// raw samples of the last minute, each with the time it was written at.
fn value_written_after(addr: SocketAddr, selector: &str, after: f64) -> Option<f64> {
    let r = query(addr, &format!("{selector}[1m]"), None);
    let [t, v] = r.as_array()?.first()?["values"]
        .as_array()?
        .last()?
        .as_array()?
        .as_slice()
    else {
        return None;
    };
    (t.as_f64()? > after).then_some(v.as_str()?.parse().ok()?)
}

/// A webhook receiver: records every request body and answers 200. The
/// thread ends with the test process.
fn webhook() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(clone);
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            if let Ok(mut r) = record.lock() {
                r.push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, received)
}

fn alertmanager_section(hook: SocketAddr) -> String {
    format!(
        "alertmanager:\n  route:\n    receiver: retrain\n    group_by: [alertname, model]\n    group_wait: 1s\n    group_interval: 1s\n    repeat_interval: 1h\n  receivers:\n    - name: retrain\n      webhook_configs:\n        - url: http://{hook}/retrain\n"
    )
}

/// Waits until the webhook got a firing alert named `name`.
fn wait_for_webhook(received: &std::sync::Arc<std::sync::Mutex<Vec<String>>>, name: &str) {
    wait_for(
        &format!("{name} at the webhook"),
        Duration::from_secs(60),
        || {
            let bodies = received.lock().ok()?.clone();
            bodies
                .iter()
                .any(|b| {
                    b.contains(&format!("\"alertname\":\"{name}\""))
                        && b.contains("\"status\":\"firing\"")
                })
                .then_some(())
        },
    );
}

/// Whether the alert manager lists an active alert named `name`.
fn active_at_alertmanager(addr: SocketAddr, name: &str) -> bool {
    let Ok((200, body)) = http(addr, "GET", "/api/v2/alerts", &[], &[]) else {
        return false;
    };
    let alerts: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    alerts.as_array().is_some_and(|list| {
        list.iter()
            .any(|a| a["labels"]["alertname"] == name && a["status"]["state"] == "active")
    })
}

const HISTOGRAM_APP: &str = r#"
import random, sys, time
from prometheus_client import Histogram, start_http_server

score = Histogram("model_score", "Scores of the model, by data split.", ["split"],
                  buckets=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
rng = random.Random(14)
for _ in range(4000):
    score.labels("reference").observe(rng.betavariate(2, 5))
for _ in range(3000):
    score.labels("current").observe(rng.betavariate(3, 3))
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
while True:
    time.sleep(1)
"#;

#[test]
fn prometheus_client_histograms_drift_and_alert() {
    if !python_has("prometheus_client, numpy, pandas, scipy, sklearn, statsmodels, evidently") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let app_addr = free_addr();
    let script = dir.path().join("app.py");
    std::fs::write(&script, HISTOGRAM_APP).expect("write app");
    let _app = ChildGuard::spawn_ready(
        Command::new("python3")
            .arg(&script)
            .arg(app_addr.port().to_string()),
        &dir.path().join("app.log"),
        Duration::from_secs(30),
        || std::net::TcpStream::connect(app_addr).is_ok(),
    );
    let (hook, received) = webhook();
    let current = r#"sum by (le) (model_score_bucket{split="current"})"#;
    let reference = r#"sum by (le) (model_score_bucket{split="reference"})"#;
    std::fs::write(
        dir.path().join("drift.yml"),
        format!(
            "groups:\n  - name: score-drift\n    rules:\n      - alert: ScoreDrift\n        expr: drift_psi({current}, {reference}) > 0.1\n        labels:\n          severity: warning\n"
        ),
    )
    .expect("write rules");
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{app_addr}']\nrule_files: [drift.yml]\n{}",
            alertmanager_section(hook)
        ),
    )
    .expect("write config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("osprey.log"),
        &["--config", &config.display().to_string()],
    );

    // The drift at one instant, and the buckets it was computed from.
    let t = wait_for(
        "the histograms to be scraped",
        Duration::from_secs(30),
        || {
            let r = query(addr, &format!("drift_psi({current}, {reference})"), None);
            r.as_array()?.first()?["value"][0].as_f64()
        },
    );
    let buckets = |q: &str| -> Vec<(f64, u64)> {
        let mut out: Vec<(f64, u64)> = query(addr, q, Some(t))
            .as_array()
            .expect("buckets")
            .iter()
            .map(|s| {
                let le = s["metric"]["le"].as_str().expect("le");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le")
                };
                let v: f64 = s["value"][1]
                    .as_str()
                    .expect("value")
                    .parse()
                    .expect("number");
                (le, v as u64)
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    };
    let (cur, refs) = (buckets(current), buckets(reference));
    assert_eq!(cur.len(), 10, "{cur:?}");
    let per_bucket = |cumulative: &[(f64, u64)]| -> Vec<u64> {
        let mut previous = 0;
        cumulative
            .iter()
            .map(|(_, c)| {
                let n = c - previous;
                previous = *c;
                n
            })
            .collect()
    };
    let input = serde_json::json!([{
        "bounds": cur.iter().map(|(le, _)| if le.is_finite() { Some(*le) } else { None }).collect::<Vec<_>>(),
        "current": per_bucket(&cur),
        "reference": per_bucket(&refs),
    }]);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../promql/tests/reference/drift_histograms.py");
    let input_file = dir.path().join("buckets.json");
    std::fs::write(&input_file, input.to_string()).expect("write buckets");
    let finished = ChildGuard::run(
        Command::new("python3").arg(&script).stdin(Stdio::from(
            std::fs::File::open(&input_file).expect("open buckets"),
        )),
        Duration::from_secs(120),
    )
    .expect("run python3");
    assert!(
        finished.status.is_some_and(|s| s.success()),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&finished.stdout).expect("reference JSON");
    for f in ["psi", "kl", "js", "hellinger", "ks", "wasserstein"] {
        let got = first_value(&query(
            addr,
            &format!("drift_{f}({current}, {reference})"),
            Some(t),
        ))
        .unwrap_or_else(|| panic!("no drift_{f}"));
        let reference_value = want[0][f].as_f64().expect("number");
        assert!(
            (got - reference_value).abs() <= 1e-9 * reference_value.abs().max(1e-12),
            "drift_{f}: osprey {got} scipy/Evidently {reference_value}"
        );
    }
    assert!(
        first_value(&query(
            addr,
            &format!("drift_psi({current}, {reference})"),
            Some(t)
        ))
        .expect("psi")
            > 0.1
    );

    // The rule fires, the alert manager holds it and its webhook gets it.
    wait_for_webhook(&received, "ScoreDrift");
    assert!(active_at_alertmanager(addr, "ScoreDrift"));
    server.kill();
}

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

fn post(addr: SocketAddr, path: &str, body: &serde_json::Value, gzip: bool) -> (u16, String) {
    let text = body.to_string();
    let (bytes, headers): (Vec<u8>, Vec<(&str, &str)>) = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).expect("gzip");
        (
            e.finish().expect("gzip"),
            vec![("Content-Encoding", "gzip")],
        )
    } else {
        (text.into_bytes(), vec![])
    };
    let mut headers = headers;
    headers.push(("Content-Type", "application/json"));
    let (status, body) = http(addr, "POST", path, &headers, &bytes).expect("post");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn prediction_api_late_actuals_drift_worse_version_and_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hook, received) = webhook();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 1s\nmodels:\n  - name: churn\n    task: classification\n    window: 1h\n    evaluation_interval: 1s\n    alerts: {{accuracy_below: 0.8, for: 0s}}\n{}",
            alertmanager_section(hook)
        ),
    )
    .expect("write config");
    let addr = free_addr();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("osprey.log");
    let server = Server::start_with_args(
        &data_dir,
        addr,
        &log,
        &["--config", &config.display().to_string()],
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut rng = 5u64;
    let cities = ["Oslo", "Bergen", "Tromso"];
    let mut record = |i: usize, version: &str, shift: f64, skill: f64, t: f64| {
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
        let predicted = if right {
            truth
        } else if truth == "yes" {
            "no"
        } else {
            "yes"
        };
        (
            serde_json::json!({
                "id": format!("{version}-{i}"), "version": version, "timestamp": t,
                "features": {"age": age, "income": income, "city": city},
                "prediction": predicted,
                "scores": {"yes": if predicted == "yes" { 0.8 } else { 0.2 }, "no": if predicted == "yes" { 0.2 } else { 0.8 }},
                "shap": {"age": (age - 40.0) / 20.0, "income": (income - 50.0) / 40.0},
            }),
            truth,
        )
    };
    // The training sample: no shift, with known outcomes.
    let reference: Vec<serde_json::Value> = (0..1200)
        .map(|i| {
            let (mut r, truth) = record(i, "train", 0.0, 1.64, 0.0);
            let o = r.as_object_mut().expect("object");
            for k in ["id", "version", "timestamp"] {
                o.remove(k);
            }
            o.insert("actual".into(), serde_json::json!(truth));
            r
        })
        .collect();
    let (status, text) = post(
        addr,
        "/api/v1/models/churn/reference",
        &serde_json::json!({"records": reference}),
        false,
    );
    assert_eq!(status, 200, "{text}");

    // Production: age drifted by 10 years; v2 is worse than v1
    // (|N(0,1)| < 1.64 is right 90% of the time, < 0.84 60%).
    let (mut predictions, mut actuals) = (Vec::new(), Vec::new());
    for (version, n, skill) in [("v1", 2000, 1.64), ("v2", 1000, 0.84)] {
        for i in 0..n {
            let t = now - 1800.0 + 900.0 * i as f64 / n as f64;
            let (r, truth) = record(i, version, 10.0, skill, t);
            if i % 5 != 0 {
                actuals.push(
                    serde_json::json!({"id": r["id"], "actual": truth, "timestamp": t + 600.0}),
                );
            }
            predictions.push(r);
        }
    }
    // A request with one bad record is refused whole, naming it.
    let mut bad = predictions[..10].to_vec();
    bad[7]["features"]["income"] = serde_json::json!({"nested": 1});
    let (status, text) = post(
        addr,
        "/api/v1/models/churn/predictions",
        &serde_json::json!({"records": bad}),
        false,
    );
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("records[7].features.income: invalid type"),
        "{text}"
    );

    for (i, chunk) in predictions.chunks(500).enumerate() {
        let (status, text) = post(
            addr,
            "/api/v1/models/churn/predictions",
            &serde_json::json!({"records": chunk}),
            i % 2 == 1,
        );
        assert_eq!(status, 200, "{text}");
    }
    // The actuals come later, all at once.
    let (status, text) = post(
        addr,
        "/api/v1/models/churn/actuals",
        &serde_json::json!({"records": actuals}),
        true,
    );
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&format!("\"joined\":{}", actuals.len())),
        "{text}"
    );

    // The server evaluates the model about once a second (TICK in
    // models_api.rs), so an evaluation may have run between two of the
    // posts above and written, say, 1000 records. Only an evaluation that
    // started after the last post has answered saw every record.
    let posted = unix_now();
    let series = |q: &str| {
        wait_for(q, Duration::from_secs(30), || {
            value_written_after(addr, q, posted)
        })
    };
    let records = series(r#"osprey_model_records{model="churn",version="v1"}"#);
    assert_eq!(records, 2000.0);
    let psi_age = series(
        r#"osprey_model_feature_drift{model="churn",version="v1",feature="age",method="psi"}"#,
    );
    let psi_income = series(
        r#"osprey_model_feature_drift{model="churn",version="v1",feature="income",method="psi"}"#,
    );
    assert!(
        psi_age > 0.1 && psi_income < 0.1,
        "age {psi_age}, income {psi_income}"
    );
    let acc1 = series(r#"osprey_model_accuracy{model="churn",version="v1"}"#);
    let acc2 = series(r#"osprey_model_accuracy{model="churn",version="v2"}"#);
    assert!(acc1 > 0.8 && acc2 < 0.8, "v1 {acc1}, v2 {acc2}");
    let diff = series(
        r#"osprey_model_version_comparison{model="churn",version="v2",baseline="v1",metric="accuracy"}"#,
    );
    let p = series(
        r#"osprey_model_version_comparison_pvalue{model="churn",version="v2",baseline="v1",metric="accuracy"}"#,
    );
    assert!(
        (diff - (acc2 - acc1)).abs() < 1e-12 && p < 0.05,
        "diff {diff}, p {p}"
    );
    let delay = series(r#"osprey_model_actuals_delay_seconds{model="churn",version="v1"}"#);
    assert!((delay - 600.0).abs() < 1e-6, "{delay}");

    // The starter alerts fire at the alert manager and reach the webhook.
    for alert in ["ModelDataDrift", "ModelAccuracyLow", "ModelVersionWorse"] {
        wait_for_webhook(&received, alert);
        assert!(active_at_alertmanager(addr, alert), "{alert} not active");
    }
    let (status, body) = http(addr, "GET", "/api/v1/rules", &[], &[]).expect("rules");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("osprey-model-churn"));

    // Acknowledged records survive SIGKILL: the evaluations after the
    // restart count them again.
    server.kill();
    let killed_at = unix_now();
    let server = Server::start_with_args(
        &data_dir,
        addr,
        &log,
        &["--config", &config.display().to_string()],
    );
    let count = |version: &str| {
        let q = format!("osprey_model_records{{model=\"churn\",version=\"{version}\"}}");
        // An evaluation after the restart: the samples written before the
        // kill say 2000 and 1000 too.
        wait_for(&q, Duration::from_secs(30), || {
            value_written_after(addr, &q, killed_at)
        })
    };
    assert_eq!(count("v1"), 2000.0);
    assert_eq!(count("v2"), 1000.0);
    server.kill();
}
