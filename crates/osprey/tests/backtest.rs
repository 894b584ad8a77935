//! `osprey rules backtest` end to end: history imported into a data
//! directory, backtested offline (`--data-dir`) and through a running
//! server (`--url`, i.e. `/api/v1/rules/backtest`); both must print the
//! same JSON, whose intervals are worked out by hand from the data. Bad
//! input is one line on the command line and a Prometheus error body from
//! the API.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::{ChildGuard, Server, free_addr, http, urlencode};

/// The first sample and first evaluation (Unix seconds).
const T0: i64 = 1_700_000_000;

/// `load{instance="a"}` is 10 during minutes 10 to 29 and 0 otherwise, one
/// sample a minute for an hour.
fn history() -> String {
    let mut text = String::from("# TYPE load gauge\n");
    for minute in 0..=60 {
        let v = if (10..30).contains(&minute) { 10 } else { 0 };
        text.push_str(&format!(
            "load{{instance=\"a\"}} {v} {}\n",
            T0 + minute * 60
        ));
    }
    text.push_str("# EOF\n");
    text
}

const RULES: &str = "groups:
  - name: g
    interval: 1m
    rules:
      - alert: High
        expr: load > 5
        for: 2m
      - alert: Always
        expr: load >= 0
";

const LOOSER: &str = "groups:
  - name: g
    interval: 1m
    rules:
      - alert: High
        expr: load > 5
        for: 30m
";

fn osprey() -> Command {
    Command::new(env!("CARGO_BIN_EXE_osprey"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = ChildGuard::output(osprey().args(args), Duration::from_secs(120)).expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn backtest_offline_and_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let input = dir.path().join("history.om");
    std::fs::write(&input, history()).expect("write history");
    let (ok, _, err) = run(&[
        "import",
        "--data-dir",
        data.to_str().expect("utf-8"),
        input.to_str().expect("utf-8"),
    ]);
    assert!(ok, "import failed: {err}");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("write rules");
    let looser = dir.path().join("looser.yml");
    std::fs::write(&looser, LOOSER).expect("write rules");
    let from = T0.to_string();
    let to = "2023-11-14T23:13:20Z"; // T0 + 1h in RFC 3339
    let (ok, offline, err) = run(&[
        "rules",
        "backtest",
        "--from",
        &from,
        "--to",
        to,
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--format",
        "json",
        rules.to_str().expect("utf-8"),
    ]);
    assert!(ok, "backtest failed: {err}");
    let offline: Value = serde_json::from_str(&offline).expect("json");
    let t = |minute: i64| json!((T0 + minute * 60) as f64);
    let rules_json = offline["rules"].as_array().expect("rules");
    assert_eq!(rules_json.len(), 2, "{offline}");
    assert_eq!(rules_json[0]["name"], "High");
    assert_eq!(
        rules_json[0]["alerts"],
        json!([{
            "labels": {"alertname": "High", "instance": "a"},
            "intervals": [
                {"state": "pending", "start": t(10), "end": t(12)},
                {"state": "firing", "start": t(12), "end": t(30)},
            ],
        }])
    );
    assert_eq!(rules_json[1]["name"], "Always");
    assert_eq!(
        rules_json[1]["alerts"],
        json!([{
            "labels": {"alertname": "Always", "instance": "a"},
            "intervals": [{"state": "firing", "start": t(0), "end": null}],
        }])
    );
    assert_eq!(rules_json[0]["flapping"]["episodes"], 1);

    // The text output names both versions when comparing.
    let (ok, text, err) = run(&[
        "rules",
        "backtest",
        "--from",
        &from,
        "--to",
        to,
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--compare",
        looser.to_str().expect("utf-8"),
        rules.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    assert!(text.contains("High (group g"), "{text}");
    assert!(
        text.contains("compared version: 1 alerts, 0 firing episodes"),
        "{text}"
    );
    assert!(
        text.contains("firing  2023-11-14T22:25:20Z .. 2023-11-14T22:43:20Z"),
        "{text}"
    );

    // With the server's config, its alert manager's route and grouping
    // give the notification counts, all rules simulated together. Grouped
    // by alertname, the two rules never share a group: High pages at
    // 12m30s (group_wait) and resolves at the first flush after 30m;
    // Always pages once (the repeat interval is longer than the range);
    // the run sent 3.
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        "global:\n  evaluation_interval: 1m\nalertmanager:\n  route:\n    receiver: team\n    group_by: [alertname]\n    group_wait: 30s\n    group_interval: 5m\n    repeat_interval: 4h\n  receivers:\n    - name: team\n      webhook_configs:\n        - url: http://127.0.0.1:9/\n",
    )
    .expect("write config");
    let (ok, with_config, err) = run(&[
        "rules",
        "backtest",
        "--from",
        &from,
        "--to",
        to,
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--format",
        "json",
        rules.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let with_config: Value = serde_json::from_str(&with_config).expect("json");
    assert_eq!(
        with_config["rules"][0]["notifications"],
        json!({"total": 2, "byReceiver": {"team": 2}})
    );
    assert_eq!(
        with_config["rules"][1]["notifications"],
        json!({"total": 1, "byReceiver": {"team": 1}})
    );
    assert_eq!(
        with_config["notifications"],
        json!({"total": 3, "byReceiver": {"team": 3}})
    );

    // Grouped by instance, both rules' alerts (instance a) share one
    // group: Always pages at 30 s; High (sent at 12m, after the group's
    // first flush) joins it at the 15m30s flush, a second notification
    // carrying both; its resolution (30m) goes out at 30m30s with Always
    // still firing, a third carrying both. After that the group is
    // unchanged and the repeat interval is not reached. So High counts 2,
    // Always 3 (every notification carries it), the run 3.
    std::fs::write(
        &config,
        "global:\n  evaluation_interval: 1m\nalertmanager:\n  route:\n    receiver: team\n    group_by: [instance]\n    group_wait: 30s\n    group_interval: 5m\n    repeat_interval: 4h\n  receivers:\n    - name: team\n      webhook_configs:\n        - url: http://127.0.0.1:9/\n",
    )
    .expect("write config");
    let (ok, grouped, err) = run(&[
        "rules",
        "backtest",
        "--from",
        &from,
        "--to",
        to,
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--format",
        "json",
        rules.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let grouped: Value = serde_json::from_str(&grouped).expect("json");
    let counts: Vec<&Value> = [
        &grouped["rules"][0]["notifications"],
        &grouped["rules"][1]["notifications"],
        &grouped["notifications"],
    ]
    .into_iter()
    .map(|n| &n["total"])
    .collect();
    assert_eq!(counts, [&json!(2), &json!(3), &json!(3)], "{grouped}");
    // Compared with LOOSER (High with `for: 30m`, which never fires: load
    // is high for 20 minutes), High's sends are replaced by none and
    // Always's kept: High counts 0. The compared version's run figure
    // is its own rules together (High alone): 0.
    let (ok, grouped, err) = run(&[
        "rules",
        "backtest",
        "--from",
        &from,
        "--to",
        to,
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--format",
        "json",
        "--compare",
        looser.to_str().expect("utf-8"),
        rules.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let grouped: Value = serde_json::from_str(&grouped).expect("json");
    assert_eq!(
        grouped["rules"][1]["notifications"]["total"], 3,
        "{grouped}"
    );
    assert_eq!(
        grouped["compare"]["rules"][0]["notifications"],
        json!({"total": 0, "byReceiver": {}})
    );
    assert_eq!(grouped["compare"]["notifications"]["total"], 0);

    // Bad input: one line naming the cause, exit 1.
    let (ok, _, err) = run(&[
        "rules",
        "backtest",
        "--from",
        "yesterday",
        "--to",
        to,
        "--data-dir",
        data.to_str().expect("utf-8"),
        rules.to_str().expect("utf-8"),
    ]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("osprey: --from"), "{err}");

    // The same through a server on the same data.
    let addr = free_addr();
    let server = Server::start(&data, addr, &dir.path().join("server.log"));
    let url = format!("http://{addr}");
    let (ok, remote, err) = run(&[
        "rules",
        "backtest",
        "--from",
        &from,
        "--to",
        to,
        "--url",
        &url,
        "--format",
        "json",
        rules.to_str().expect("utf-8"),
    ]);
    assert!(ok, "backtest through the API failed: {err}");
    let remote: Value = serde_json::from_str(&remote).expect("json");
    let strip = |mut v: Value| {
        // The file name is the path either way; nothing else may differ.
        // The server's embedded alert manager notifies nobody (0
        // notifications, per rule and for the run); offline, without
        // --config, none is simulated.
        for rule in v["rules"].as_array_mut().expect("rules") {
            rule["file"] = Value::Null;
            rule["notifications"] = Value::Null;
        }
        v["notifications"] = Value::Null;
        v
    };
    assert_eq!(strip(remote), strip(offline));

    // API errors: 400 with Prometheus's error body.
    let cases = [
        format!("/api/v1/rules/backtest?from=x&to={from}"),
        format!("/api/v1/rules/backtest?from={from}"),
        format!("/api/v1/rules/backtest?from={from}&to=1"),
        format!(
            "/api/v1/rules/backtest?from={from}&to={from}&rules={}",
            urlencode("groups: [{name: g, rules: [{alert: A, expr: 'sum('}]}]")
        ),
    ];
    for path in cases {
        let (status, body) = http(addr, "GET", &path, &[], &[]).expect("request");
        assert_eq!(status, 400, "{path}: {}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).expect("json error");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "bad_data");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Without `rules`, the server's own rules (the starter pack) run.
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/rules/backtest?from={from}&to={}", T0 + 600),
        &[],
        &[],
    )
    .expect("request");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert!(!body["data"]["rules"].as_array().expect("rules").is_empty());
    // The embedded alert manager is configured, so notifications are counted.
    assert!(body["data"]["rules"][0]["notifications"]["total"].is_number());
    server.terminate();
}
