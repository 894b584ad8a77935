//! Debian's `amtool` driving osprey's Alertmanager API v2, standalone
//! (`osprey alertmanager`) and inside `osprey server`: alert add and
//! query, silence add, query and expire, config routes test.
//!
//! When `amtool` is not installed the tests print why and pass, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where a missing `amtool` fails them.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod amsupport;

use amsupport::*;

const CONFIG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['team="ml"', 'severity=~"crit.*"']
      receiver: pager
      continue: true
    - matchers: [team=ml]
      receiver: slack
receivers:
  - name: default
  - name: pager
  - name: slack
"#;

/// The ids `amtool silence query -q` lists.
fn silence_ids(url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["silence", "query", "-q"];
    args.extend_from_slice(extra);
    let (ok, out) = amtool(url, &args);
    assert!(ok, "{out}");
    out.lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn drive_with_amtool(url: &str) {
    // Alert add and query.
    let (ok, out) = amtool(
        url,
        &[
            "alert",
            "add",
            "ModelDrift",
            "team=ml",
            "severity=critical",
            "--annotation=summary=drift detected",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = amtool(url, &["alert", "query"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ModelDrift") && out.contains("drift detected") && out.contains("active"),
        "{out}"
    );
    let (ok, out) = amtool(url, &["alert", "query", "-o", "json"]);
    assert!(ok, "{out}");
    let alerts: serde_json::Value = serde_json::from_str(&out).expect("amtool json");
    assert_eq!(alerts[0]["labels"]["alertname"], "ModelDrift");
    let receivers: Vec<&str> = alerts[0]["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(receivers, ["pager", "slack"]);
    // A label matcher that selects nothing.
    let (ok, out) = amtool(url, &["alert", "query", "team=web"]);
    assert!(ok && !out.contains("ModelDrift"), "{out}");

    // Silence add, query, and its effect on the alert.
    let (ok, out) = amtool(
        url,
        &[
            "silence",
            "add",
            "team=ml",
            "--comment=maintenance",
            "--author=tester",
            "--duration=1h",
        ],
    );
    assert!(ok, "{out}");
    let id = out.trim().to_string();
    assert_eq!(silence_ids(url, &[]), vec![id.clone()]);
    let (ok, out) = amtool(url, &["silence", "query"]);
    assert!(
        ok && out.contains("maintenance") && out.contains("tester") && out.contains("team=\"ml\""),
        "{out}"
    );
    assert!(silence_ids(url, &["team=web"]).is_empty());
    let (ok, out) = amtool(url, &["alert", "query"]);
    assert!(
        ok && !out.contains("ModelDrift"),
        "silenced alerts are not active: {out}"
    );
    let (ok, out) = amtool(url, &["alert", "query", "--silenced"]);
    assert!(
        ok && out.contains("ModelDrift") && out.contains("suppressed"),
        "{out}"
    );

    // Expire: gone from the default query, listed with --expired, and the
    // alert is active again.
    let (ok, out) = amtool(url, &["silence", "expire", &id]);
    assert!(ok, "{out}");
    assert!(silence_ids(url, &[]).is_empty());
    assert_eq!(silence_ids(url, &["--expired"]), vec![id.clone()]);
    let (ok, out) = amtool(url, &["alert", "query"]);
    assert!(
        ok && out.contains("ModelDrift") && out.contains("active"),
        "{out}"
    );
    let (ok, out) = amtool(url, &["silence", "expire", "no-such-id"]);
    assert!(!ok, "{out}");

    // Routes test reads the configuration through /api/v2/status.
    let (ok, out) = amtool(
        url,
        &["config", "routes", "test", "team=ml", "severity=critical"],
    );
    assert!(ok, "{out}");
    assert_eq!(out.lines().last(), Some("pager,slack"), "{out}");
    let (ok, out) = amtool(url, &["config", "routes", "test", "team=web"]);
    assert!(ok && out.lines().last() == Some("default"), "{out}");
}

#[test]
fn amtool_against_osprey_alertmanager() {
    if !available("amtool", "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let am = start_osprey(
        &config,
        &dir.path().join("data"),
        &dir.path().join("am.log"),
    );
    drive_with_amtool(&am.url());
    // The alert sits in one group per receiver it reaches.
    let (status, body) = http(am.addr, "GET", "/api/v2/alerts/groups", b"").unwrap();
    assert_eq!(status, 200);
    let groups: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut seen: Vec<String> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert_eq!(g["labels"], serde_json::json!({"alertname": "ModelDrift"}));
            assert_eq!(g["alerts"][0]["labels"]["alertname"], "ModelDrift");
            g["receiver"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["pager", "slack"]);
    let (status, body) = http(am.addr, "GET", "/api/v2/status", b"").unwrap();
    assert_eq!(status, 200);
    let status_body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // Like Alertmanager, the status writes the loaded configuration back
    // out (with secrets as `<secret>`), so the text differs in layout but
    // must hold the same document.
    let original = status_body["config"]["original"]
        .as_str()
        .expect("config.original");
    assert_eq!(
        without_lines(&yaml::parse_document(original).expect("status YAML")),
        without_lines(&yaml::parse_document(CONFIG).expect("test YAML")),
        "{original}"
    );
    assert_eq!(status_body["cluster"]["status"], "disabled");
    let (status, body) = http(am.addr, "GET", "/metrics", b"").unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        text.contains("alertmanager_alerts_received_total{status=\"firing\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("alertmanager_silences{state=\"expired\"} 1"),
        "{text}"
    );
}

#[test]
fn amtool_against_osprey_server() {
    if !available("amtool", "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The alert manager as a path named by the server's config file.
    std::fs::write(dir.path().join("alertmanager.yml"), CONFIG).unwrap();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        "alertmanager: alertmanager.yml\nscrape_configs: []\n",
    )
    .unwrap();
    let server = start_osprey_server(
        &config,
        &dir.path().join("data"),
        &dir.path().join("server.log"),
    );
    drive_with_amtool(&server.url());
    let (_, body) = http(server.addr, "GET", "/metrics", b"").unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("alertmanager_silences{state=\"expired\"} 1"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[test]
fn api_without_an_alertmanager_section_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("osprey.yml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    let server = start_osprey_server(
        &config,
        &dir.path().join("data"),
        &dir.path().join("server.log"),
    );
    let (status, body) = http(server.addr, "GET", "/api/v2/alerts", b"").unwrap();
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("alertmanager"));
}

#[test]
fn bad_requests_get_alertmanager_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let am = start_osprey(
        &config,
        &dir.path().join("data"),
        &dir.path().join("am.log"),
    );
    for (method, path, body) in [
        ("POST", "/api/v2/alerts", &b"not json"[..]),
        ("POST", "/api/v2/alerts", br#"[{"labels":{}}]"#),
        (
            "POST",
            "/api/v2/alerts",
            br#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#,
        ),
        ("POST", "/api/v2/silences", br#"{"matchers":[]}"#),
        ("GET", "/api/v2/alerts?filter=bad", b""),
    ] {
        let (status, body) = http(am.addr, method, path, body).unwrap();
        assert_eq!(
            status,
            400,
            "{method} {path}: {}",
            String::from_utf8_lossy(&body)
        );
        let message: serde_json::Value = serde_json::from_slice(&body).expect("a JSON string");
        assert!(message.is_string(), "{message}");
    }
    let (status, _) = http(am.addr, "GET", "/api/v2/silence/nope", b"").unwrap();
    assert_eq!(status, 404);
    // Partly valid posts keep the valid alerts.
    let (status, _) = http(
        am.addr,
        "POST",
        "/api/v2/alerts",
        br#"[{"labels":{"alertname":"ok"}},{"labels":{}}]"#,
    )
    .unwrap();
    assert_eq!(status, 400);
    let (_, body) = http(am.addr, "GET", "/api/v2/alerts", b"").unwrap();
    let alerts: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(alerts.as_array().map(Vec::len), Some(1));
}

#[test]
fn rule_alerts_reach_the_builtin_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n        labels: {severity: page}\n        annotations: {summary: 'always on'}\n",
    )
    .unwrap();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nscrape_configs: []\nalertmanager:\n  route:\n    receiver: hook\n    group_wait: 200ms\n    group_interval: 1s\n  receivers:\n    - name: hook\n      webhook_configs: [{{url: '{}'}}]\n",
            sink.url("/hook")
        ),
    )
    .unwrap();
    let server = start_osprey_server(
        &config,
        &dir.path().join("data"),
        &dir.path().join("server.log"),
    );
    let got = sink.wait_for(1, std::time::Duration::from_secs(20));
    assert!(
        !got.is_empty(),
        "no notification; log:\n{}",
        server.log_text()
    );
    let body = &got[0].1;
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "AlwaysOn");
    assert_eq!(body["alerts"][0]["labels"]["severity"], "page");
    assert_eq!(body["alerts"][0]["annotations"]["summary"], "always on");
    assert_eq!(body["status"], "firing");
}

#[test]
fn sighup_reloads_the_standalone_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let am = start_osprey(
        &config,
        &dir.path().join("data"),
        &dir.path().join("am.log"),
    );
    let receivers = |am: &Process| -> Vec<String> {
        let (_, body) = http(am.addr, "GET", "/api/v2/receivers", b"").unwrap();
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(receivers(&am), ["default", "pager", "slack"]);
    std::fs::write(
        &config,
        CONFIG.replace("  - name: slack\n", "  - name: slack\n  - name: email\n"),
    )
    .unwrap();
    am.child.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while receivers(&am).len() != 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload; log:\n{}",
            am.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A broken file keeps the running configuration.
    std::fs::write(&config, "route: [\n").unwrap();
    am.child.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(receivers(&am).len(), 4);
}

/// A YAML tree without the line numbers, to compare documents.
fn without_lines(node: &yaml::Node) -> yaml::NodeValue {
    use yaml::NodeValue;
    let bare = |n: &yaml::Node| yaml::Node {
        line: 0,
        value: without_lines(n),
    };
    match &node.value {
        NodeValue::Sequence(items) => NodeValue::Sequence(items.iter().map(bare).collect()),
        NodeValue::Mapping(entries) => {
            NodeValue::Mapping(entries.iter().map(|(k, v)| (bare(k), bare(v))).collect())
        }
        other => other.clone(),
    }
}
