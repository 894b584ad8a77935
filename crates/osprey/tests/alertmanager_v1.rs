//! Alertmanager's API v1 reads (`/api/v1/status`, `/api/v1/alerts`,
//! `/api/v1/silences`) on `osprey alertmanager`, against Debian's
//! `prometheus-alertmanager` 0.25 fed the same alerts and silences: the
//! same alerts (labels, annotations, times, state, receivers,
//! fingerprints) and silences in the same order under the same filters,
//! the same status fields and the same errors. `osprey server` keeps
//! `/api/v1/alerts` as Prometheus's rule alerts and has no v1 status.
//!
//! A missing `prometheus-alertmanager` skips the comparison with a printed
//! reason (a failure under `OSPREY_REQUIRE_EXTERNAL=1`).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod amsupport;

use amsupport::*;
use serde_json::{Value, json};

const CONFIG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
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
inhibit_rules:
  - source_matchers: [alertname=NodeDown]
    target_matchers: [alertname=DiskFull]
    equal: [instance]
"#;

fn get(process: &Process, path: &str) -> (u16, Value) {
    let (status, body) = http(process.addr, "GET", path, b"").unwrap();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&body)));
    (status, value)
}

fn post(process: &Process, path: &str, body: &Value) -> Value {
    let (status, reply) = http(
        process.addr,
        "POST",
        path,
        &serde_json::to_vec(body).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&reply));
    serde_json::from_slice(&reply).unwrap_or(Value::Null)
}

fn millis(text: &Value) -> i64 {
    alert::notify::parse_time(text.as_str().unwrap()).unwrap()
}

/// One v1 alert with times as milliseconds and silence ids counted (each
/// side makes its own ids).
fn alert_key(a: &Value) -> Value {
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    json!({
        "labels": a["labels"],
        "annotations": a["annotations"],
        "startsAt": millis(&a["startsAt"]),
        "endsAt": millis(&a["endsAt"]),
        "generatorURL": a["generatorURL"],
        "state": a["status"]["state"],
        "silencedBy": count(&a["status"]["silencedBy"]),
        "silencedByNull": a["status"]["silencedBy"].is_null(),
        "inhibitedBy": count(&a["status"]["inhibitedBy"]),
        "inhibitedByNull": a["status"]["inhibitedBy"].is_null(),
        "receivers": a["receivers"],
        "fingerprint": a["fingerprint"],
        "keys": a.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
    })
}

fn silence_key(s: &Value, now: i64) -> Value {
    // A start in the past becomes the time of creation on both sides.
    let start = millis(&s["startsAt"]);
    json!({
        "matchers": s["matchers"],
        "startsAt": if start > now + 60_000 { json!(start) } else { json!("at creation") },
        "endsAt": millis(&s["endsAt"]),
        "createdBy": s["createdBy"],
        "comment": s["comment"],
        "status": s["status"],
        "keys": s.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn v1_reads_match_prometheus_alertmanager() {
    if !available("prometheus-alertmanager", "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let theirs = start_alertmanager(&config, &dir.path().join("am"), &dir.path().join("am.log"));
    let ours = start_osprey(
        &config,
        &dir.path().join("osprey"),
        &dir.path().join("osprey.log"),
    );
    let now = now_ms();
    let time = |ms: i64| alert::notify::format_time_api(ms);
    // Times to the millisecond so both sides keep them exactly.
    let start = now - now % 1000 - 60_000 + 123;
    let alerts = json!([
        {"labels": {"alertname": "ModelDrift", "team": "ml", "severity": "critical"},
         "annotations": {"summary": "drift"}, "startsAt": time(start),
         "endsAt": time(start + 7_200_000), "generatorURL": "http://gen/1"},
        {"labels": {"alertname": "ModelSlow", "team": "ml"},
         "startsAt": time(start), "endsAt": time(start + 7_200_000)},
        {"labels": {"alertname": "NodeDown", "instance": "a"},
         "startsAt": time(start), "endsAt": time(start + 7_200_000)},
        {"labels": {"alertname": "DiskFull", "instance": "a"},
         "startsAt": time(start), "endsAt": time(start + 7_200_000)},
        {"labels": {"alertname": "Quiet", "env": "test"},
         "startsAt": time(start), "endsAt": time(start + 7_200_000)},
        {"labels": {"alertname": "Resolved"},
         "startsAt": time(start - 60_000), "endsAt": time(start)},
    ]);
    let silence = |matchers: Value, from: i64, to: i64, comment: &str| {
        json!({"matchers": matchers, "startsAt": time(from), "endsAt": time(to),
               "createdBy": "v1-test", "comment": comment})
    };
    let silences = [
        silence(
            json!([{"name": "env", "value": "test", "isRegex": false, "isEqual": true}]),
            now - 1000,
            now + 3_600_000,
            "active",
        ),
        silence(
            json!([{"name": "team", "value": "m.*", "isRegex": true, "isEqual": true}]),
            now + 1_800_000,
            now + 3_600_000,
            "pending",
        ),
        silence(
            json!([
                {"name": "instance", "value": "b", "isRegex": false, "isEqual": true},
                {"name": "alertname", "value": "Other", "isRegex": false, "isEqual": false},
            ]),
            now - 1000,
            now + 1_200_000,
            "active, ends sooner",
        ),
    ];
    // The inhibiting alert goes first: Alertmanager's inhibitor learns of
    // alerts asynchronously, and a target flushed before it knows the
    // source stays unmarked until the next group interval.
    let (sources, rest): (Vec<Value>, Vec<Value>) = alerts
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .partition(|a| a["labels"]["alertname"] == "NodeDown");
    for side in [&theirs, &ours] {
        for s in &silences {
            post(side, "/api/v2/silences", s);
        }
        post(side, "/api/v2/alerts", &Value::Array(sources.clone()));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    for side in [&theirs, &ours] {
        post(side, "/api/v2/alerts", &Value::Array(rest.clone()));
    }
    // Alertmanager marks silences and inhibitions when it processes the
    // alerts (group_wait 1s); wait until both sides show them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let settled = [&theirs, &ours].iter().all(|side| {
            let (_, body) = get(side, "/api/v1/alerts");
            let list = body["data"].as_array().cloned().unwrap_or_default();
            list.len() == 5
                && list
                    .iter()
                    .filter(|a| a["status"]["state"] == "suppressed")
                    .count()
                    == 2
        });
        if settled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alerts never settled:\nosprey {}\nalertmanager {}",
            get(&ours, "/api/v1/alerts").1,
            get(&theirs, "/api/v1/alerts").1
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let filters = [
        "",
        "?silenced=false",
        "?inhibited=false",
        "?active=false",
        "?receiver=pager",
        "?receiver=sl.*",
        "?filter=%7Bteam%3D%22ml%22%7D",
        "?filter=alertname%3D~%22Model.%2A%22,severity!%3D%22critical%22",
    ];
    for f in filters {
        let path = format!("/api/v1/alerts{f}");
        let (s1, a) = get(&theirs, &path);
        let (s2, b) = get(&ours, &path);
        assert_eq!((s1, s2), (200, 200), "{path}");
        assert_eq!(a["status"], b["status"]);
        let keys = |v: &Value| -> Vec<Value> {
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(alert_key)
                .collect()
        };
        assert_eq!(keys(&b), keys(&a), "{path}\nosprey: {b}\nalertmanager: {a}");
    }

    for f in [
        "",
        "?filter=%7Benv%3D%22test%22%7D",
        "?filter=team%3D~%22m.%2A%22",
    ] {
        let path = format!("/api/v1/silences{f}");
        let (s1, a) = get(&theirs, &path);
        let (s2, b) = get(&ours, &path);
        assert_eq!((s1, s2), (200, 200), "{path}");
        let keys = |v: &Value| -> Vec<Value> {
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| silence_key(s, now))
                .collect()
        };
        assert_eq!(keys(&b), keys(&a), "{path}\nosprey: {b}\nalertmanager: {a}");
        assert!(!keys(&b).is_empty() || !f.is_empty());
    }

    let (_, a) = get(&theirs, "/api/v1/status");
    let (_, b) = get(&ours, "/api/v1/status");
    let fields = |v: &Value| {
        v["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&b), fields(&a));
    assert_eq!(b["data"]["clusterStatus"], a["data"]["clusterStatus"]);
    assert_eq!(
        b["data"]["versionInfo"]["version"],
        a["data"]["versionInfo"]["version"]
    );
    let ours_yaml = yaml::parse_document(b["data"]["configYAML"].as_str().unwrap()).unwrap();
    assert!(ours_yaml.as_mapping().is_ok());
    // Alertmanager fills every default in; the configuration as written is
    // a part of it: same routes and receivers.
    for key in ["route", "receivers"] {
        assert_eq!(
            b["data"]["configJSON"][key]["receiver"], a["data"]["configJSON"][key]["receiver"],
            "{key}"
        );
    }
    assert_eq!(
        b["data"]["configJSON"]["receivers"],
        a["data"]["configJSON"]["receivers"]
    );
    assert!(millis(&b["data"]["uptime"]) <= now_ms());

    for path in [
        "/api/v1/alerts?filter=bad",
        "/api/v1/alerts?active=maybe",
        "/api/v1/silences?filter=bad",
    ] {
        let (s1, a) = get(&theirs, path);
        let (s2, b) = get(&ours, path);
        assert_eq!((s2, s1), (400, 400), "{path}: {b} / {a}");
        assert_eq!(b["status"], a["status"], "{path}");
        assert_eq!(b["errorType"], a["errorType"], "{path}");
        assert!(b["error"].is_string(), "{path}");
    }
}

#[test]
fn osprey_server_keeps_prometheus_alerts_at_api_v1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        "alertmanager:\n  route:\n    receiver: default\n  receivers:\n    - name: default\n",
    )
    .unwrap();
    let server = start_osprey_server(
        &config,
        &dir.path().join("data"),
        &dir.path().join("server.log"),
    );
    let (status, body) = get(&server, "/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["alerts"].is_array(),
        "Prometheus's shape: {body}"
    );
    for path in ["/api/v1/status", "/api/v1/silences"] {
        let (status, _) = http(server.addr, "GET", path, b"").unwrap();
        assert_eq!(status, 404, "{path} is osprey alertmanager's only");
    }
}
