//! The starter anomaly rules (`docs/anomaly.md`, "Starter rules"): they
//! load in the rule engine, pass `promtool check rules` but for osprey's
//! own functions (fails instead of skipping under
//! `OSPREY_REQUIRE_EXTERNAL=1`), fire on synthetic anomalies of their
//! signals (a backtest over generated series), and `anomaly_rules: true`
//! adds them at reload while the default does not.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "../../promql/tests/python/mod.rs"]
mod python;

mod common;
use common::*;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use server::lifecycle::{ANOMALY_RULES, ANOMALY_RULES_NAME, ConfigSource};
use server::testing::test_storage;
use server::{AppState, ServerConfig, router};

const NOW_MS: i64 = 1_700_000_000_000;

const ALERTS: [&str; 6] = [
    "RequestRateAnomalous",
    "ErrorRatioAnomalous",
    "LatencyAnomalous",
    "GpuUtilizationDropped",
    "TrainingLossSpike",
    "TrainingLossStalled",
];

/// osprey's functions that Prometheus does not have.
const OSPREY_FUNCTIONS: [&str; 2] = ["anomaly_score_seasonal", "anomaly_score"];

/// `text` with each call of an osprey function replaced by
/// `avg_over_time` of its range argument: the same types, so promtool
/// checks everything else of the expression.
fn with_prometheus_functions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    'next: while !rest.is_empty() {
        for name in OSPREY_FUNCTIONS {
            let call = format!("{name}(");
            if let Some(tail) = rest.strip_prefix(call.as_str()) {
                // The first argument ends at the first comma or closing
                // parenthesis at depth zero; the call at its parenthesis.
                let (mut depth, mut first_end, mut call_end) = (0usize, None, None);
                for (i, c) in tail.char_indices() {
                    match c {
                        '(' | '[' | '{' => depth += 1,
                        ')' if depth == 0 => {
                            first_end.get_or_insert(i);
                            call_end = Some(i);
                            break;
                        }
                        ',' if depth == 0 => {
                            first_end.get_or_insert(i);
                        }
                        ')' | ']' | '}' => depth -= 1,
                        _ => {}
                    }
                }
                let (first_end, call_end) = (first_end.unwrap(), call_end.unwrap());
                out.push_str("avg_over_time(");
                out.push_str(&tail[..first_end]);
                out.push(')');
                rest = &tail[call_end + 1..];
                continue 'next;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[test]
fn starter_anomaly_rules_load_in_the_rule_engine_and_in_promtool() {
    let groups = rules::parse_rule_file(ANOMALY_RULES_NAME, ANOMALY_RULES)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "osprey-anomaly");
    for alert in ALERTS {
        assert!(
            ANOMALY_RULES.contains(&format!("alert: {alert}\n")),
            "{alert}"
        );
    }
    let rewritten = with_prometheus_functions(ANOMALY_RULES);
    assert!(!rewritten.contains("anomaly_score"), "{rewritten}");
    // The rewrite keeps the rules valid for osprey too.
    rules::parse_rule_file("rewritten.yml", &rewritten).unwrap_or_else(|e| panic!("{e:?}"));

    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("anomaly.yml");
    let plain = dir.path().join("plain.yml");
    std::fs::write(&original, ANOMALY_RULES).unwrap();
    std::fs::write(&plain, &rewritten).unwrap();
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let check = |file: &std::path::Path| {
        python::capture(
            Command::new("promtool").args(["check", "rules"]).arg(file),
            "",
        )
    };
    match check(&plain) {
        Ok((ok, stdout, stderr)) => {
            assert!(ok, "promtool check rules:\n{stdout}{stderr}\n{rewritten}");
            // The file as shipped fails in promtool only for osprey's
            // functions, once per rule that calls them.
            let (ok, stdout, stderr) = check(&original).unwrap();
            assert!(!ok);
            let errors: Vec<&str> = stdout
                .lines()
                .chain(stderr.lines())
                .filter(|l| l.contains("could not parse expression"))
                .collect();
            assert_eq!(errors.len(), 5, "{stdout}{stderr}");
            for error in errors {
                assert!(
                    error.contains("unknown function with name \"anomaly_score"),
                    "{error}"
                );
            }
        }
        Err(e) => {
            assert!(
                !required,
                "OSPREY_REQUIRE_EXTERNAL=1 but promtool is missing: {e}"
            );
            println!("promtool check skipped: promtool is not installed ({e})");
        }
    }
}

#[test]
fn the_key_must_be_true_or_false() {
    let error = config::parse(
        "osprey.yml",
        "global: {}\nanomaly_rules: yes please\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("osprey.yml:2: anomaly_rules: expected true or false"),
        "{error}"
    );
    assert!(
        !config::parse("osprey.yml", "global: {}\n", None)
            .unwrap()
            .anomaly_rules
    );
}

async fn group_names(app: &axum::Router) -> Vec<String> {
    let data = get(app, "/api/v1/rules").await.data();
    data["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn enabling_the_key_adds_the_rules_at_reload_and_the_default_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("osprey.yml");
    let base = "global:\n  evaluation_interval: 1h\n";
    std::fs::write(&file, base).unwrap();
    let state = AppState::with_clock(
        test_storage(),
        ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))),
        Arc::new(|| NOW_MS),
    );
    state.start(ConfigSource::File(file.clone())).await.unwrap();
    let app = router(state.clone());
    assert!(group_names(&app).await.is_empty());

    std::fs::write(&file, format!("{base}anomaly_rules: true\n")).unwrap();
    state.reload().await.unwrap();
    let data = get(&app, "/api/v1/rules").await.data();
    let groups = data["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{data}");
    assert_eq!(groups[0]["name"], "osprey-anomaly");
    assert_eq!(groups[0]["file"], ANOMALY_RULES_NAME);
    assert_eq!(groups[0]["interval"], 60.0);
    let names: Vec<&str> = groups[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for alert in ALERTS {
        assert!(names.contains(&alert), "{alert}: {names:?}");
    }

    // Turned off again, they go at the next reload.
    std::fs::write(&file, format!("{base}anomaly_rules: false\n")).unwrap();
    state.reload().await.unwrap();
    assert!(group_names(&app).await.is_empty());
    state.stop().await;
}

const MINUTE: i64 = 60_000;

/// The firing intervals of `alert` in a backtest, as (start, end) minutes.
fn firing(result: &rules::backtest::Backtest, alert: &str) -> Vec<(i64, Option<i64>)> {
    let rule = result
        .rules
        .iter()
        .find(|r| r.name == alert)
        .unwrap_or_else(|| panic!("{alert} not backtested"));
    assert_eq!(rule.error, None, "{alert}");
    rule.alerts
        .iter()
        .flat_map(|a| a.intervals.iter())
        .filter(|i| i.state == rules::AlertState::Firing)
        .map(|i| (i.start_ms / MINUTE, i.end_ms.map(|e| e / MINUTE)))
        .collect()
}

#[test]
fn starter_anomaly_rules_fire_on_synthetic_anomalies() {
    use model::Labels;
    use model::storage::Queryable;

    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        tsdb::Db::open(
            dir.path(),
            tsdb::DbOptions {
                retention_time_ms: None,
                retention_size_bytes: None,
                block_range_ms: 7_200_000,
                wal_segment_size: 1 << 20,
                fsync: false,
            },
        )
        .unwrap(),
    );
    // Two days, a sample a minute. Requests: a daily cycle whose noise
    // repeats every day, a drop to a fifth for an hour at 10:00 on day two.
    // GPU: busy at 95 to 97 %, idle from minute 300 of day two. Loss (day
    // two only): falling, a spike of ten minutes at minute 150, flat from
    // minute 300.
    const DAY: i64 = 1440;
    const DROP: i64 = DAY + 600;
    let requests = Labels::from_pairs([("__name__", "http_requests_total"), ("job", "api")]);
    let gpu = Labels::from_pairs([
        ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
        ("gpu", "0"),
        ("instance", "h"),
    ]);
    let loss = Labels::from_pairs([("__name__", "training_loss"), ("model", "m")]);
    let mut app = model::storage::Appendable::appender(db.as_ref());
    let mut counter = 0.0;
    for m in 0..2 * DAY {
        let day_phase = (m % DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
        let mut rate = 100.0 + 50.0 * day_phase.sin() + (m % 6) as f64;
        if (DROP..DROP + 60).contains(&m) {
            rate /= 5.0;
        }
        counter += rate * 60.0;
        app.append(&requests, m * MINUTE, counter).unwrap();
        let util = if m < DAY + 300 {
            95.0 + (m % 3) as f64
        } else {
            10.0
        };
        app.append(&gpu, m * MINUTE, util).unwrap();
        if m >= DAY {
            let t = m - DAY;
            let value = if (150..160).contains(&t) {
                5.0
            } else if t < 300 {
                1.0 + (300 - t) as f64 * 0.005
            } else {
                1.0 + (t % 4) as f64 * 0.001
            };
            app.append(&loss, m * MINUTE, value).unwrap();
        }
    }
    app.commit().unwrap();
    drop(app);

    let engine = Arc::new(promql::Engine::new(
        promql::EngineOptions::prometheus_defaults(),
    ));
    let groups = rules::parse_rule_file(ANOMALY_RULES_NAME, ANOMALY_RULES).unwrap();
    let result = rules::backtest::backtest(
        &engine,
        db.clone() as Arc<dyn Queryable>,
        groups,
        &rules::backtest::BacktestOptions {
            from_ms: 0,
            to_ms: (2 * DAY - 1) * MINUTE,
            group: rules::GroupOptions {
                default_interval_ms: MINUTE,
                default_query_offset_ms: 0,
                resend_delay_ms: MINUTE,
                outage_tolerance_ms: 3_600_000,
                for_grace_period_ms: 0,
            },
            external_labels: Vec::new(),
            external_url: "http://osprey".to_string(),
        },
    )
    .unwrap();
    assert!(
        result.recording_errors.is_empty(),
        "{:?}",
        result.recording_errors
    );

    // The request rate: only the drop, firing 10 minutes after the
    // 5-minute rate has fallen, until the 5-minute rate is back.
    let rate = firing(&result, "RequestRateAnomalous");
    assert_eq!(rate.len(), 1, "{rate:?}");
    assert!((DROP + 10..=DROP + 16).contains(&rate[0].0), "{rate:?}");
    assert!(
        rate[0]
            .1
            .is_some_and(|end| (DROP + 60..=DROP + 66).contains(&end)),
        "{rate:?}"
    );
    // No errors or latency histogram in the data: nothing.
    assert_eq!(firing(&result, "ErrorRatioAnomalous"), Vec::new());
    assert_eq!(firing(&result, "LatencyAnomalous"), Vec::new());
    // The GPU: 15 minutes after its 5-minute average fell 20 points.
    let idle = firing(&result, "GpuUtilizationDropped");
    assert_eq!(idle.len(), 1, "{idle:?}");
    assert!(
        (DAY + 300 + 15..=DAY + 300 + 20).contains(&idle[0].0),
        "{idle:?}"
    );
    // The loss spike: 5 minutes in, until it ends.
    let spike = firing(&result, "TrainingLossSpike");
    assert_eq!(spike, vec![(DAY + 155, Some(DAY + 160))]);
    // The stall: the last hour no better than the three before once the
    // flat part's lowest value is in both windows (minute 360: the window
    // before ends at minute 300, which has it), plus `for: 30m`.
    let stalled = firing(&result, "TrainingLossStalled");
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    assert!(
        (DAY + 360 + 30..=DAY + 360 + 32).contains(&stalled[0].0),
        "{stalled:?}"
    );
}
