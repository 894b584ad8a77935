//! The same `alertmanager.yml` and the same timed sequence of alerts and
//! silences go to Debian's `prometheus-alertmanager` (0.25) and to
//! `osprey alertmanager`; both notify one webhook sink on loopback (under
//! different paths), and the notifications must match: which groups (by
//! group key), which alerts, firing or resolved, in which order and how
//! many. The sequence covers grouping (`group_by` lists and `...`),
//! `continue`, inhibition, silences (create and expire), mute and active
//! time intervals, `send_resolved: false`, `resolve_timeout` and
//! `repeat_interval`.
//!
//! Timers are short (group_wait 1s, group_interval 2s): every change is
//! made at an even second after the start, and groups flush at odd ones,
//! so both sides see each change in the same interval.
//!
//! Also here: silences and the notification log survive a SIGKILL of
//! `osprey alertmanager` with no duplicate notification after restart.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod amsupport;

use amsupport::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const RECEIVERS: &[(&str, bool)] = &[
    ("default", true),
    ("ml", false),
    ("ops", true),
    ("muted", true),
    ("inactive", true),
    ("office", true),
];

fn config(sink: &Sink, prefix: &str) -> String {
    let mut receivers = String::new();
    for (name, send_resolved) in RECEIVERS {
        receivers.push_str(&format!(
            "  - name: {name}\n    webhook_configs: [{{url: '{}', send_resolved: {send_resolved}}}]\n",
            sink.url(&format!("/{prefix}/{name}"))
        ));
    }
    format!(
        r#"
global:
  resolve_timeout: 4s
route:
  receiver: default
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 3s
  routes:
    - matchers: ['team="ml"']
      receiver: ml
      continue: true
    - matchers: ['team=~"ml|infra"']
      receiver: ops
      group_by: ['...']
    - matchers: [team=muted]
      receiver: muted
      mute_time_intervals: [always]
    - matchers: [team=inactive]
      receiver: inactive
      active_time_intervals: [never]
    - matchers: [team=office]
      receiver: office
      active_time_intervals: [always]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
time_intervals:
  - name: always
    time_intervals: [{{times: [{{start_time: '00:00', end_time: '24:00'}}]}}]
  - name: never
    time_intervals: [{{years: ['2001']}}]
receivers:
{receivers}"#
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    // Formats through the alert crate, which the API tests cover.
    alert::notify::format_time_api(ms)
}

/// An alert body: labels, and an end time (`None`: use resolve_timeout).
fn alert(labels: &[(&str, &str)], ends_at_ms: Option<i64>) -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(n, v)| (n.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let mut value = serde_json::json!({"labels": labels, "annotations": {"summary": "s"}});
    if let Some(end) = ends_at_ms {
        value["endsAt"] = serde_json::Value::String(rfc3339(end));
    }
    value
}

fn post_alerts(targets: &[&Process], alerts: &[serde_json::Value]) {
    let body = serde_json::to_vec(alerts).unwrap();
    for target in targets {
        let (status, reply) = http(target.addr, "POST", "/api/v2/alerts", &body).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }
}

fn add_silence(target: &Process, matcher: (&str, &str)) -> String {
    let body = serde_json::json!({
        "matchers": [{"name": matcher.0, "value": matcher.1, "isRegex": false, "isEqual": true}],
        "startsAt": rfc3339(now_ms()),
        "endsAt": rfc3339(now_ms() + 3_600_000),
        "createdBy": "diff-test",
        "comment": "maintenance",
    });
    let (status, reply) = http(
        target.addr,
        "POST",
        "/api/v2/silences",
        &serde_json::to_vec(&body).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    reply["silenceID"].as_str().unwrap().to_string()
}

fn expire_silence(target: &Process, id: &str) {
    let (status, reply) =
        http(target.addr, "DELETE", &format!("/api/v2/silence/{id}"), b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
}

/// Notifications of one implementation: per (receiver, group key), the
/// sequence of (status, [alert labels and status]) in arrival order.
type Notifications = BTreeMap<(String, String), Vec<String>>;

fn notifications(bodies: &[(String, serde_json::Value)], prefix: &str) -> Notifications {
    let mut out: Notifications = BTreeMap::new();
    for (path, body) in bodies {
        let Some(receiver) = path.strip_prefix(&format!("/{prefix}/")) else {
            continue;
        };
        assert_eq!(body["receiver"], receiver);
        assert_eq!(body["version"], "4");
        let alerts: Vec<String> = body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let labels: Vec<String> = a["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect();
                format!("{}({})", a["status"].as_str().unwrap(), labels.join(","))
            })
            .collect();
        let group_key = body["groupKey"].as_str().unwrap().to_string();
        out.entry((receiver.to_string(), group_key))
            .or_default()
            .push(format!(
                "{} groupLabels={} [{}]",
                body["status"].as_str().unwrap(),
                body["groupLabels"],
                alerts.join(" ")
            ));
    }
    out
}

fn sleep_until(start: Instant, seconds: f64) {
    let target = start + Duration::from_secs_f64(seconds);
    if let Some(wait) = target.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

#[test]
fn notifications_match_prometheus_alertmanager() {
    if !available("prometheus-alertmanager", "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let theirs_config = dir.path().join("theirs.yml");
    let ours_config = dir.path().join("ours.yml");
    std::fs::write(&theirs_config, config(&sink, "theirs")).unwrap();
    std::fs::write(&ours_config, config(&sink, "ours")).unwrap();
    let theirs = start_alertmanager(
        &theirs_config,
        &dir.path().join("theirs-data"),
        &dir.path().join("theirs.log"),
    );
    let ours = start_osprey(
        &ours_config,
        &dir.path().join("ours-data"),
        &dir.path().join("ours.log"),
    );
    let both = [&theirs, &ours];
    let far = now_ms() + 3_600_000;
    let a1 = [
        ("alertname", "Drift"),
        ("team", "ml"),
        ("cluster", "c1"),
        ("severity", "warning"),
        ("instance", "i1"),
    ];
    let a2 = [
        ("alertname", "Drift"),
        ("team", "ml"),
        ("cluster", "c1"),
        ("severity", "warning"),
        ("instance", "i2"),
    ];
    let a3 = [
        ("alertname", "Drift"),
        ("team", "ml"),
        ("cluster", "c1"),
        ("severity", "warning"),
        ("instance", "i3"),
    ];
    let b1 = [
        ("alertname", "Disk"),
        ("team", "infra"),
        ("cluster", "c2"),
        ("severity", "warning"),
        ("instance", "x"),
    ];
    let c1 = [
        ("alertname", "Crit"),
        ("team", "infra"),
        ("cluster", "c1"),
        ("severity", "critical"),
    ];
    let m1 = [("alertname", "Muted"), ("team", "muted")];
    let n1 = [("alertname", "Inactive"), ("team", "inactive")];
    let o1 = [("alertname", "Office"), ("team", "office")];
    let r1 = [("alertname", "Timeout"), ("team", "other")];
    let s1 = [
        ("alertname", "Silenced"),
        ("team", "other"),
        ("instance", "s"),
    ];
    let d1 = [("alertname", "Late"), ("team", "other")];

    let start = Instant::now();
    // t=0: the first alerts; R1 has no end, so resolve_timeout (4s) ends it.
    post_alerts(
        &both,
        &[
            alert(&a1, Some(far)),
            alert(&a2, Some(far)),
            alert(&b1, Some(far)),
            alert(&m1, Some(far)),
            alert(&n1, Some(far)),
            alert(&o1, Some(far)),
            alert(&r1, None),
            alert(&s1, Some(far)),
        ],
    );
    // t=2: silence S1; a critical C1 inhibits the c1 warnings (A1, A2 and
    // the new A3).
    sleep_until(start, 2.0);
    let silence_ids: Vec<String> = both
        .iter()
        .map(|t| add_silence(t, ("alertname", "Silenced")))
        .collect();
    post_alerts(&both, &[alert(&c1, Some(far)), alert(&a3, Some(far))]);
    // t=4: C1 and A1 resolve.
    sleep_until(start, 4.0);
    let now = now_ms();
    post_alerts(&both, &[alert(&c1, Some(now)), alert(&a1, Some(now))]);
    // t=6: the silence expires; a new group appears.
    sleep_until(start, 6.0);
    for (target, id) in both.iter().zip(&silence_ids) {
        expire_silence(target, id);
    }
    post_alerts(&both, &[alert(&d1, Some(far))]);
    // t=8: everything resolves.
    sleep_until(start, 8.0);
    let now = now_ms();
    let everything: Vec<serde_json::Value> = [&a2[..], &a3, &b1, &m1, &n1, &o1, &s1, &d1]
        .iter()
        .map(|labels| alert(labels, Some(now)))
        .collect();
    post_alerts(&both, &everything);
    sleep_until(start, 11.0);

    let bodies = sink.bodies();
    let their = notifications(&bodies, "theirs");
    let our = notifications(&bodies, "ours");
    let show = |n: &Notifications| {
        n.iter()
            .map(|((receiver, key), list)| format!("{receiver} {key}\n    {}", list.join("\n    ")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let total = |n: &Notifications| n.values().map(Vec::len).sum::<usize>();
    assert!(
        total(&their) >= 10,
        "the reference sent too little to compare:\n{}",
        show(&their)
    );
    assert_eq!(
        show(&our),
        show(&their),
        "osprey (left) and Alertmanager (right) differ; osprey log:\n{}",
        ours.log_text()
    );
    // Spot checks that the sequence exercised what it claims to.
    let receivers: Vec<&str> = our.keys().map(|(r, _)| r.as_str()).collect();
    assert!(!receivers.contains(&"muted") && !receivers.contains(&"inactive"));
    assert!(
        receivers.contains(&"office") && receivers.contains(&"ml") && receivers.contains(&"ops")
    );
    eprintln!("{} notifications matched:\n{}", total(&our), show(&our));
}

#[test]
fn silences_and_the_log_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let config = dir.path().join("am.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 500ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs: [{{url: '{}'}}]\n",
            sink.url("/hook")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("am.log");
    let mut am = start_osprey(&config, &data, &log);
    let addr = am.addr;
    let far = now_ms() + 3_600_000;
    let firing = alert(&[("alertname", "Down"), ("instance", "a")], Some(far));
    let quiet = alert(&[("alertname", "Quiet"), ("instance", "q")], Some(far));
    let silence = add_silence(&am, ("alertname", "Quiet"));
    post_alerts(&[&am], &[firing.clone(), quiet.clone()]);
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "{got:?}");
    // The sink has the body before the log entry is on disk: wait for it
    // (a crash between the two would send again, as in Alertmanager).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http(am.addr, "GET", "/metrics", b"").unwrap();
        if String::from_utf8_lossy(&body).contains("alertmanager_nflog_entries 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "the log entry was never written");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give a second flush the chance to (wrongly) send again, then kill.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.bodies().len(), 1);
    am.kill();

    // Restart on the same port and data; the client resends its alerts.
    let am = start_osprey_at(&config, &data, &log, addr);
    post_alerts(&[&am], &[firing.clone(), quiet.clone()]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        sink.bodies().len(),
        1,
        "a duplicate after restart: {:?}",
        sink.bodies()
    );
    let (_, body) = http(am.addr, "GET", &format!("/api/v2/silence/{silence}"), b"").unwrap();
    let restored: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(restored["status"]["state"], "active", "{restored}");
    let (_, body) = http(
        am.addr,
        "GET",
        "/api/v2/alerts?filter=alertname%3DQuiet",
        b"",
    )
    .unwrap();
    let alerts: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(alerts[0]["status"]["silencedBy"][0], silence.as_str());
    // Something new in the group is still notified.
    post_alerts(
        &[&am],
        &[alert(
            &[("alertname", "Down"), ("instance", "b")],
            Some(far),
        )],
    );
    let got = sink.wait_for(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1["alerts"].as_array().unwrap().len(), 2);
}
