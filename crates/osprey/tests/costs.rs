//! Training and serving cost end to end (`docs/costs.md`), through the
//! real binary: two GPUs of different models on a training node and a CPU
//! job, fed by remote write with known timestamps, give the dollars their
//! prices say over a known interval, to the cent (and to a millionth),
//! across a `kill -9` and restart in the middle of that interval; the
//! budget follows, the cost-per-step rule records, and the generated
//! rules pass `promtool check rules`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

/// The prices: scaled up so that a minute costs dollars. An H100 at
/// $360/h is 10 cents a second; an A100 at $150/h, 25/6 cents; a CPU
/// core at $60/h, 5/3 cents.
const CONFIG: &str = "costs:
  interval: 1s
  delay: 0s
  gpu:
    hour:
      NVIDIA H100 80GB HBM3: 360
      NVIDIA A100-SXM4-40GB: 150
  cpu:
    core_hour: 60
  steps:
    - {job: trainer, metric: training_steps_total, window: 1m}
  budgets:
    - name: research
      amount: 1000000
      period: month
      forecast_window: 1m
      alert_at: [0.5]
    - name: tiny
      amount: 1
      period: day
      forecast_window: 1m
      alert_at: [1]
      for: 0s
";

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("time")
}

/// Two GPUs and a step counter on the trainer node, a CPU job at three
/// cores, every 15 s over `[from, to]`: the CPU counter and the steps
/// count from `from`.
fn feed(addr: SocketAddr, from: i64, to: i64) {
    let times: Vec<i64> = (from..=to).step_by(15_000).collect();
    let series =
        |labels: Vec<(&'static str, String)>, f: &dyn Fn(i64) -> f64| -> WriteSeries<'static> {
            (labels, times.iter().map(|&t| (t, f(t))).collect())
        };
    let gpu = |model: &str, index: &str| {
        vec![
            ("__name__", "DCGM_FI_DEV_GPU_UTIL".to_string()),
            ("job", "trainer".to_string()),
            ("instance", "gpu-node:9400".to_string()),
            ("gpu", index.to_string()),
            ("modelName", model.to_string()),
        ]
    };
    let body = remote_write_body(&[
        series(gpu("NVIDIA H100 80GB HBM3", "0"), &|_| 90.0),
        series(gpu("NVIDIA A100-SXM4-40GB", "1"), &|_| 40.0),
        series(
            vec![
                ("__name__", "training_steps_total".to_string()),
                ("job", "trainer".to_string()),
                ("instance", "gpu-node:9400".to_string()),
            ],
            &|t| 10.0 * ((t - from) / 1000) as f64,
        ),
        series(
            vec![
                ("__name__", "process_cpu_seconds_total".to_string()),
                ("job", "etl".to_string()),
                ("instance", "etl-1:8000".to_string()),
            ],
            &|t| 3.0 * ((t - from) / 1000) as f64,
        ),
    ]);
    assert_eq!(remote_write(addr, &body).expect("remote write"), 204);
}

/// One series read back: sorted label pairs and (timestamp, value) pairs.
type Samples = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Every sample of the series matching `selector`.
fn samples(addr: SocketAddr, selector: &str) -> Vec<Samples> {
    export(addr, selector)
        .into_iter()
        .map(|(labels, ts, values)| {
            let values = ts
                .into_iter()
                .zip(values.iter().map(|v| v.as_f64().expect("number")))
                .collect();
            (labels, values)
        })
        .collect()
}

fn value_at(series: &[(i64, f64)], t: i64) -> f64 {
    series
        .iter()
        .find(|(ts, _)| *ts == t)
        .unwrap_or_else(|| panic!("no sample at {t}"))
        .1
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

fn wait_for_step(addr: SocketAddr, at_least: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let newest = samples(addr, "osprey_cost_budget_spent_dollars_total")
            .first()
            .and_then(|(_, s)| s.last().map(|(t, _)| *t));
        if newest.is_some_and(|t| t >= at_least) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no cost step at {at_least} yet (newest {newest:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start(dir: &Path, addr: SocketAddr) -> Server {
    Server::start_with_args(
        &dir.join("data"),
        addr,
        &dir.join("osprey.log"),
        &["--config", &dir.join("osprey.yml").display().to_string()],
    )
}

#[test]
fn two_gpus_and_a_cpu_job_cost_what_their_prices_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("osprey.yml"), CONFIG).expect("config");
    let addr = free_addr();
    let server = start(dir.path(), addr);
    // The data: from ten minutes ago to five minutes ahead, on 15 s
    // boundaries, so the known interval below sits inside it.
    let from = (now_ms() / 15_000 - 40) * 15_000;
    feed(addr, from, from + 60 * 15_000);

    // The interval: from the next 15 s boundary at least two seconds
    // ahead, for a minute.
    let a = ((now_ms() + 2_000) / 15_000 + 1) * 15_000;
    let b = a + 60_000;
    wait_for_step(addr, a + 5_000, Duration::from_secs(60));
    // Killed in the middle of the interval, started again 8 s later: the
    // steps missed meanwhile are evaluated from the stored samples.
    server.kill();
    std::thread::sleep(Duration::from_secs(8));
    let server = start(dir.path(), addr);
    wait_for_step(addr, b, Duration::from_secs(90));

    let costs = samples(addr, "osprey_cost_dollars_total");
    let mut seen = 0;
    for (labels, series) in &costs {
        let spent = value_at(series, b) - value_at(series, a);
        let expected = match (label(labels, "resource"), label(labels, "gpu_model")) {
            // 60 s × 10 cents.
            ("gpu", "NVIDIA H100 80GB HBM3") => 6.00,
            // 60 s × $150/h.
            ("gpu", "NVIDIA A100-SXM4-40GB") => 2.50,
            // 3 cores × 60 s = 0.05 core-hours × $60.
            ("cpu", "") => 3.00,
            other => panic!("unexpected cost series {labels:?} ({other:?})"),
        };
        assert!(
            (spent - expected).abs() < 1e-6,
            "{labels:?}: {spent} dollars from {a} to {b}, expected {expected}"
        );
        assert_eq!((spent * 100.0).round(), (expected * 100.0_f64).round());
        // A step every second through the restart, never decreasing.
        let steps: Vec<&(i64, f64)> = series.iter().filter(|(t, _)| *t > a && *t <= b).collect();
        assert_eq!(steps.len(), 60, "{labels:?}");
        assert!(
            series
                .windows(2)
                .all(|w| w[1].1 >= w[0].1 && w[1].0 > w[0].0)
        );
        seen += 1;
    }
    assert_eq!(seen, 3, "{costs:?}");
    // The budget counts all of it: $11.50 in the minute.
    let research = "{budget=\"research\"}";
    let budget = samples(
        addr,
        &format!("osprey_cost_budget_spent_dollars_total{research}"),
    );
    let spent = value_at(&budget[0].1, b) - value_at(&budget[0].1, a);
    assert!((spent - 11.5).abs() < 1e-6, "{spent}");
    let remaining = samples(
        addr,
        &format!("osprey_cost_budget_remaining_dollars{research}"),
    );
    let spent_period = samples(addr, &format!("osprey_cost_budget_spent_dollars{research}"));
    assert!(
        (value_at(&remaining[0].1, b) + value_at(&spent_period[0].1, b) - 1_000_000.0).abs() < 1e-6
    );

    // The rules. Cost per step: the trainer's cost over its steps in
    // the rule's 1 m window, recomputed here from the raw samples (the
    // rule may have run just before the step at its own timestamp was
    // written, so either of the two newest cost steps may close its
    // window), once the window lies wholly after the first cost step
    // (before, `increase()` extrapolates the two counters differently:
    // docs/costs.md). About $510/h over 10 steps a second, 1.42 cents a
    // step, but the step counter moves every 15 s, so any one window is
    // off by up to 15 s / 45 s. And the forecast.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let per_step = samples(addr, "osprey_cost_per_step_dollars");
        let forecast = samples(
            addr,
            &format!("osprey_cost_budget_exhaustion_timestamp_seconds{research}"),
        );
        if let (Some((_, p)), Some((_, f))) = (per_step.first(), forecast.first())
            && let (Some(&(t_rule, p)), Some(&(_, f))) = (p.last(), f.last())
        {
            let gpus = samples(addr, "osprey_cost_dollars_total{job=\"trainer\"}");
            let steps = samples(addr, "osprey_cost_training_steps_total");
            if steps[0].1[0].0 + 2_000 > t_rule - 60_000 {
                assert!(Instant::now() < deadline, "the rule's window never filled");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let change = |series: &[(i64, f64)], end: i64| -> f64 {
                let w: Vec<f64> = series
                    .iter()
                    .filter(|(t, _)| *t > t_rule - 60_000 && *t <= end)
                    .map(|(_, v)| *v)
                    .collect();
                w[w.len() - 1] - w[0]
            };
            let candidates: Vec<f64> = [t_rule, t_rule - 1_000]
                .iter()
                .map(|&end| {
                    let cost: f64 = gpus.iter().map(|(_, s)| change(s, end)).sum();
                    cost / change(&steps[0].1, end)
                })
                .collect();
            assert!(
                candidates.iter().any(|c| (p - c).abs() <= 1e-9 * c),
                "{p} at {t_rule}, recomputed {candidates:?}"
            );
            assert!((p / (510.0 / 36000.0) - 1.0).abs() < 0.35, "{p}");
            // $1,000,000 at about $690/h runs out in some 60 days.
            let days = (f - now_ms() as f64 / 1000.0) / 86_400.0;
            assert!((40.0..90.0).contains(&days), "{days}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cost rule output:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The generated group runs, and the $1 budget is spent and forecast
    // to run out before its day ends: both alerts fire.
    let (status, body) = http(addr, "GET", "/api/v1/rules", &[], &[]).expect("rules");
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let group = body["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "osprey-costs")
        .expect("the osprey-costs group");
    for rule in group["rules"].as_array().expect("rules") {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http(addr, "GET", "/api/v1/alerts", &[], &[]).expect("alerts");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let firing: Vec<String> = body["data"]["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter(|a| a["state"] == "firing" && a["labels"]["budget"] == "tiny")
            .map(|a| {
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if firing.contains(&"CostBudgetSpent".to_string())
            && firing.contains(&"CostBudgetForecastExhausted".to_string())
        {
            assert!(
                !body.to_string().contains("\"research\""),
                "the large budget alerts: {body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "budget alerts not firing: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every query of the Training dashboard's cost row answers with data.
    let dashboard: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ui/dashboards/training.json"
    )))
    .expect("dashboard json");
    let row = dashboard["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["title"] == "Cost")
        .expect("a Cost row");
    let mut queries = 0;
    for panel in row["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "1m")
                .replace("$job", ".+");
            let path = format!("/api/v1/query?query={}", urlencode(&expr));
            let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(status, 200, "{expr}: {body}");
            assert!(
                !body["data"]["result"]
                    .as_array()
                    .expect("vector")
                    .is_empty(),
                "{}: {expr} gives nothing",
                panel["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries}");
}

#[test]
fn generated_rules_pass_promtool() {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            !required,
            "OSPREY_REQUIRE_EXTERNAL=1 but promtool is missing"
        );
        println!("skipped: promtool is not installed (apt-get install prometheus)");
        return;
    }
    let config = config::parse("costs.yml", CONFIG, None).expect("config");
    let text = cost::rule_file(config.costs.as_ref().expect("costs"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("costs.yml");
    std::fs::write(&file, &text).expect("write");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}\n{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_counts_the_generated_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("osprey.yml");
    std::fs::write(&file, CONFIG).expect("config");
    let out = ChildGuard::output(
        Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(["check", "config"])
            .arg(&file),
        Duration::from_secs(60),
    )
    .expect("osprey check config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // Cost per step, and per budget its forecast, one CostBudgetSpent per
    // share and CostBudgetForecastExhausted: 1 + 3 + 3.
    assert!(
        stdout.contains("SUCCESS: 7 cost rules generated"),
        "{stdout}"
    );
}
