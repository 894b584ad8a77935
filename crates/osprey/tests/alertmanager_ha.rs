//! Alert manager high availability (issue 22 point 1): two real
//! `osprey alertmanager` processes peered with `--cluster.*`, fed the same
//! alerts, notifying a webhook sink on loopback.
//!
//! - One notification per group: the peer at position 0 sends, the other
//!   waits its peer timeout, finds the replicated log entry and does not.
//! - A silence made with `amtool` on one mutes on the other, and expiring
//!   it on the other reaches the first; `amtool cluster show` works
//!   against each.
//! - With the first peer killed before it sends, the second sends after
//!   its peer timeout, and then sees the first leave.
//! - The alert manager embedded in `osprey server` takes the same flags
//!   and peers with a standalone one.
//! - An `osprey server` rule engine with both peers configured sends its
//!   alert to each, and the pair notifies once.
//! - The cluster metric names and the status's `cluster` keys are those of
//!   Debian's `prometheus-alertmanager` run with a cluster address.
//!
//! Peer timeouts and intervals are short so each test takes seconds.
//! Tests that need `amtool` or `prometheus-alertmanager` skip with a
//! printed reason when it is missing (a failure under
//! `OSPREY_REQUIRE_EXTERNAL=1`).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod amsupport;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use amsupport::*;
use serde_json::{Value, json};

/// Each peer waits this long per position before it notifies.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);
const GROUP_WAIT: Duration = Duration::from_secs(1);

fn config(sink: &Sink) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1m\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: '{}'\n",
        sink.url("/hook")
    )
}

/// The `--cluster.*` flags of one peer.
fn cluster_flags(name: &str, listen: SocketAddr, peer: SocketAddr) -> Vec<String> {
    vec![
        format!("--cluster.listen-address={listen}"),
        format!("--cluster.peer={peer}"),
        format!("--cluster.peer-name={name}"),
        format!("--cluster.peer-timeout={}s", PEER_TIMEOUT.as_secs()),
        "--cluster.gossip-interval=50ms".to_string(),
        "--cluster.pushpull-interval=5s".to_string(),
    ]
}

fn start_peer(
    dir: &Path,
    config: &Path,
    name: &str,
    listen: SocketAddr,
    peer: SocketAddr,
) -> Process {
    let addr = free_addr();
    let log = dir.join(format!("{name}.log"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["alertmanager", "--config"])
        .arg(config)
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.join(name))
        .args(cluster_flags(name, listen, peer));
    let child = ChildGuard::spawn_ready(&mut command, &log, Duration::from_secs(30), || {
        matches!(http(addr, "GET", "/-/ready", b""), Ok((200, _)))
    });
    Process { child, addr, log }
}

/// Two peers, `am-a` (position 0) and `am-b` (position 1), settled.
fn start_pair(dir: &Path, config: &Path) -> (Process, Process) {
    let (cluster_a, cluster_b) = (free_addr(), free_addr());
    let a = start_peer(dir, config, "am-a", cluster_a, cluster_b);
    let b = start_peer(dir, config, "am-b", cluster_b, cluster_a);
    wait_ready_pair(&a, &b);
    (a, b)
}

fn wait_ready_pair(a: &Process, b: &Process) {
    for process in [a, b] {
        wait_until(
            Duration::from_secs(20),
            process,
            "a ready cluster of two",
            || {
                let status = get(process, "/api/v2/status")["cluster"].clone();
                (status["status"] == "ready" && status["peers"].as_array().map_or(0, Vec::len) == 2)
                    .then_some(())
            },
        );
    }
}

fn get(process: &Process, path: &str) -> Value {
    let (status, body) = http(process.addr, "GET", path, b"").unwrap();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn metrics(process: &Process) -> String {
    let (status, body) = http(process.addr, "GET", "/metrics", b"").unwrap();
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

/// The value of an unlabelled (or fully written) sample in `/metrics`.
fn metric(process: &Process, series: &str) -> f64 {
    let text = metrics(process);
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

/// Polls `check` until it gives a value, failing with the peer's log at
/// the deadline.
fn wait_until<T>(
    timeout: Duration,
    process: &Process,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}; log:\n{}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post_alerts(process: &Process, names: &[&str]) {
    let alerts: Vec<Value> = names
        .iter()
        .map(|name| json!({"labels": {"alertname": name, "instance": "i1"}}))
        .collect();
    let (status, body) = http(
        process.addr,
        "POST",
        "/api/v2/alerts",
        &serde_json::to_vec(&alerts).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// The alert names of each notification, with the sender's external URL.
fn notifications(sink: &Sink) -> Vec<(String, String)> {
    sink.bodies()
        .iter()
        .map(|(_, body)| {
            (
                body["groupLabels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                body["externalURL"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn two_peers_send_one_notification_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config(&sink)).unwrap();
    let (a, b) = start_pair(dir.path(), &config_path);
    assert_eq!(metric(&a, "alertmanager_peer_position"), 0.0);
    assert_eq!(metric(&b, "alertmanager_peer_position"), 1.0);
    for process in [&a, &b] {
        assert_eq!(metric(process, "alertmanager_cluster_enabled"), 1.0);
        assert_eq!(metric(process, "alertmanager_cluster_members"), 2.0);
    }

    let groups = ["DiskFull", "NodeDown", "GpuHot"];
    let posted = Instant::now();
    post_alerts(&a, &groups);
    post_alerts(&b, &groups);
    let first = sink.wait_for(groups.len(), Duration::from_secs(15));
    assert_eq!(first.len(), groups.len(), "{:?}", notifications(&sink));
    // Past the second peer's turn (group wait + one peer timeout) with
    // room to spare: still one notification per group, all from am-a.
    let quiet_until = posted + GROUP_WAIT + PEER_TIMEOUT * 2 + Duration::from_secs(1);
    std::thread::sleep(quiet_until.saturating_duration_since(Instant::now()));
    let mut sent = notifications(&sink);
    sent.sort();
    let mut expected: Vec<(String, String)> = groups
        .iter()
        .map(|name| (name.to_string(), a.url()))
        .collect();
    expected.sort();
    assert_eq!(sent, expected);

    // The second peer holds the first's log entries and got them as
    // updates.
    assert_eq!(metric(&b, "alertmanager_nflog_entries"), 3.0);
    assert!(
        metric(
            &b,
            "alertmanager_cluster_messages_received_total{msg_type=\"update\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &a,
            "alertmanager_cluster_messages_sent_total{msg_type=\"update\"}"
        ) >= 1.0
    );

    // A clean shutdown tells the other peer, which takes over position 0
    // at once instead of after five failed pings.
    let mut a = a;
    let stopped = Instant::now();
    a.child.terminate(Duration::from_secs(30));
    wait_until(
        Duration::from_secs(10),
        &b,
        "the left peer's removal",
        || {
            let peers = get(&b, "/api/v2/status")["cluster"]["peers"].clone();
            (peers.as_array().map_or(0, Vec::len) == 1).then_some(())
        },
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "the peer left after {:?}, as if it had failed",
        stopped.elapsed()
    );
    assert_eq!(metric(&b, "alertmanager_peer_position"), 0.0);
}

#[test]
fn a_silence_made_on_one_peer_mutes_on_the_other() {
    if !available("amtool", "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config(&sink)).unwrap();
    let (a, b) = start_pair(dir.path(), &config_path);

    // amtool's cluster view of each.
    for process in [&a, &b] {
        let (ok, out) = amtool(&process.url(), &["cluster", "show", "-o", "extended"]);
        assert!(ok, "{out}");
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert!(
            lines.contains(&vec!["Cluster", "Status:", "ready"]),
            "{out}"
        );
        for name in ["am-a", "am-b"] {
            assert!(
                lines.iter().any(|line| line.len() == 2 && line[1] == name),
                "{name} not listed: {out}"
            );
        }
    }

    // A silence made on the second peer, which never notifies first.
    let (ok, out) = amtool(
        &b.url(),
        &[
            "silence",
            "add",
            "alertname=Maintenance",
            "--comment=planned",
            "--duration=1h",
        ],
    );
    assert!(ok, "{out}");
    let id = out.trim().to_string();
    wait_until(Duration::from_secs(10), &a, "replicated silence", || {
        let (ok, out) = amtool(&a.url(), &["silence", "query", "-q"]);
        (ok && out.lines().any(|line| line == id)).then_some(())
    });

    post_alerts(&a, &["Maintenance", "Loud"]);
    post_alerts(&b, &["Maintenance", "Loud"]);
    let posted = Instant::now();
    // The alert is suppressed by the same silence on both.
    for process in [&a, &b] {
        let alerts = get(
            process,
            "/api/v2/alerts?filter=alertname%3D%22Maintenance%22",
        );
        assert_eq!(alerts[0]["status"]["state"], "suppressed", "{alerts}");
        assert_eq!(alerts[0]["status"]["silencedBy"], json!([id]), "{alerts}");
    }
    sink.wait_for(1, Duration::from_secs(15));
    let quiet_until = posted + GROUP_WAIT + PEER_TIMEOUT * 2 + Duration::from_secs(1);
    std::thread::sleep(quiet_until.saturating_duration_since(Instant::now()));
    assert_eq!(
        notifications(&sink),
        vec![("Loud".to_string(), a.url())],
        "only the unsilenced group notifies, once"
    );

    // Expired on the first peer, it is expired on the second.
    let (ok, out) = amtool(&a.url(), &["silence", "expire", &id]);
    assert!(ok, "{out}");
    wait_until(Duration::from_secs(10), &b, "replicated expiry", || {
        let silence = get(&b, &format!("/api/v2/silence/{id}"));
        (silence["status"]["state"] == "expired").then_some(())
    });
    let (ok, out) = amtool(&b.url(), &["silence", "query", "-q"]);
    assert!(ok, "{out}");
    assert!(!out.lines().any(|line| line == id), "{out}");
}

#[test]
fn the_second_peer_sends_after_the_peer_timeout_when_the_first_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config(&sink)).unwrap();
    let (a_cluster, b_cluster) = (free_addr(), free_addr());
    let mut a = start_peer(dir.path(), &config_path, "am-a", a_cluster, b_cluster);
    let b = start_peer(dir.path(), &config_path, "am-b", b_cluster, a_cluster);
    wait_ready_pair(&a, &b);

    // Each peer's group wait starts when it has the alert, inside its
    // post: a time taken before the post is no later than that start.
    let to_a = Instant::now();
    post_alerts(&a, &["NodeDown"]);
    let to_b = Instant::now();
    post_alerts(&b, &["NodeDown"]);
    // Killed within its group wait, before it sends.
    a.kill();
    assert!(to_a.elapsed() < GROUP_WAIT, "killed too late to test");
    let got = sink.wait_for(1, Duration::from_secs(15));
    let waited = to_b.elapsed();
    assert_eq!(
        notifications(&sink),
        vec![("NodeDown".to_string(), b.url())],
        "{got:?}"
    );
    assert!(
        waited >= GROUP_WAIT + PEER_TIMEOUT - Duration::from_millis(300),
        "the second peer sent after {waited:?}, before its turn"
    );
    // Failure detection: the first peer leaves the member list.
    wait_until(
        Duration::from_secs(15),
        &b,
        "the dead peer's removal",
        || {
            let peers = get(&b, "/api/v2/status")["cluster"]["peers"].clone();
            (peers.as_array().map_or(0, Vec::len) == 1).then_some(())
        },
    );
    assert_eq!(metric(&b, "alertmanager_peer_position"), 0.0);
    assert_eq!(metric(&b, "alertmanager_cluster_members"), 1.0);
    assert_eq!(sink.bodies().len(), 1);

    // The first peer comes back with an empty data directory: the
    // full-state exchange of its join brings the log over before it
    // settles, so the same alert does not notify again.
    std::fs::create_dir_all(dir.path().join("again")).unwrap();
    let a = start_peer(
        &dir.path().join("again"),
        &config_path,
        "am-a",
        a_cluster,
        b_cluster,
    );
    wait_until(Duration::from_secs(20), &a, "the rejoined cluster", || {
        let cluster = get(&a, "/api/v2/status")["cluster"].clone();
        (cluster["status"] == "ready" && cluster["peers"].as_array().map_or(0, Vec::len) == 2)
            .then_some(())
    });
    assert_eq!(metric(&a, "alertmanager_nflog_entries"), 1.0);
    assert!(
        metric(
            &a,
            "alertmanager_cluster_messages_received_total{msg_type=\"full_state\"}"
        ) >= 1.0
    );
    post_alerts(&a, &["NodeDown"]);
    std::thread::sleep(GROUP_WAIT + Duration::from_secs(1));
    assert_eq!(sink.bodies().len(), 1, "{:?}", notifications(&sink));
}

#[test]
fn the_embedded_alert_manager_peers_with_a_standalone_one() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(&am_config, config(&sink)).unwrap();
    let server_config = dir.path().join("osprey.yml");
    std::fs::write(
        &server_config,
        "alertmanager: alertmanager.yml\nscrape_configs: []\n",
    )
    .unwrap();
    let (cluster_server, cluster_standalone) = (free_addr(), free_addr());
    let standalone = start_peer(
        dir.path(),
        &am_config,
        "am-b",
        cluster_standalone,
        cluster_server,
    );
    let addr = free_addr();
    let log = dir.path().join("server.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["server", "--config"])
        .arg(&server_config)
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.path().join("server-data"))
        .args(cluster_flags("am-a", cluster_server, cluster_standalone));
    let child = ChildGuard::spawn_ready(&mut command, &log, Duration::from_secs(30), || {
        matches!(http(addr, "GET", "/-/ready", b""), Ok((200, _)))
    });
    let server = Process { child, addr, log };
    for process in [&server, &standalone] {
        let cluster = wait_until(Duration::from_secs(20), process, "a cluster of two", || {
            let cluster = get(process, "/api/v2/status")["cluster"].clone();
            (cluster["status"] == "ready" && cluster["peers"].as_array().map_or(0, Vec::len) == 2)
                .then_some(cluster)
        });
        let names: Vec<&str> = cluster["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|peer| peer["name"].as_str())
            .collect();
        assert_eq!(names, ["am-a", "am-b"]);
    }
    // A silence posted to the server reaches the standalone peer.
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "X", "isRegex": false, "isEqual": true}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2999-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": "c",
    });
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/v2/silences",
        &serde_json::to_vec(&silence).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let id = serde_json::from_slice::<Value>(&body).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(Duration::from_secs(10), &standalone, "the silence", || {
        let (status, body) = http(
            standalone.addr,
            "GET",
            &format!("/api/v2/silence/{id}"),
            b"",
        )
        .ok()?;
        let silence: Value = serde_json::from_slice(&body).ok()?;
        (status == 200 && silence["status"]["state"] == "active").then_some(())
    });
}

/// An `osprey server` rule engine with both peers under
/// `alerting.alertmanagers` sends its alert to each; the pair notifies
/// once.
#[test]
fn a_rule_engine_sends_to_both_peers_and_the_pair_notifies_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(&am_config, config(&sink)).unwrap();
    let (a, b) = start_pair(dir.path(), &am_config);
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n",
    )
    .unwrap();
    let server_config = dir.path().join("osprey.yml");
    std::fs::write(
        &server_config,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nscrape_configs: []\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n    - static_configs:\n        - targets: ['{}']\n",
            a.addr, b.addr
        ),
    )
    .unwrap();
    let addr = free_addr();
    let log = dir.path().join("server.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["server", "--config"])
        .arg(&server_config)
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.path().join("server-data"));
    let child = ChildGuard::spawn_ready(&mut command, &log, Duration::from_secs(30), || {
        matches!(http(addr, "GET", "/-/ready", b""), Ok((200, _)))
    });
    let server = Process { child, addr, log };

    for process in [&a, &b] {
        wait_until(
            Duration::from_secs(20),
            &server,
            "the alert at both peers",
            || {
                let alerts = get(process, "/api/v2/alerts?filter=alertname%3D%22AlwaysOn%22");
                (alerts.as_array().map_or(0, Vec::len) == 1).then_some(())
            },
        );
    }
    let arrived = Instant::now();
    sink.wait_for(1, Duration::from_secs(15));
    let quiet_until = arrived + GROUP_WAIT + PEER_TIMEOUT * 2 + Duration::from_secs(1);
    std::thread::sleep(quiet_until.saturating_duration_since(Instant::now()));
    assert_eq!(
        notifications(&sink),
        vec![("AlwaysOn".to_string(), a.url())]
    );
}

/// The cluster metric names and the status's `cluster` shape are
/// Alertmanager's: checked against Debian's `prometheus-alertmanager`
/// running with a cluster listen address.
#[test]
fn cluster_metrics_and_status_match_prometheus_alertmanager() {
    if !available("prometheus-alertmanager", "prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config(&sink)).unwrap();
    let (a, _b) = start_pair(dir.path(), &config_path);

    let addr = free_addr();
    let mut command = Command::new("prometheus-alertmanager");
    command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("theirs").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--cluster.listen-address={}", free_addr()));
    let log = dir.path().join("theirs.log");
    let child = ChildGuard::spawn_ready(&mut command, &log, Duration::from_secs(30), || {
        matches!(http(addr, "GET", "/-/ready", b""), Ok((200, _)))
    });
    let theirs = Process { child, addr, log };

    let cluster_names = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| {
                name.starts_with("alertmanager_cluster_") || *name == "alertmanager_peer_position"
            })
            .map(|name| name.strip_suffix("_total").unwrap_or(name).to_string())
            .collect()
    };
    let ours = cluster_names(&metrics(&a));
    let mut osprey_only = ours.clone();
    for name in cluster_names(&metrics(&theirs)) {
        osprey_only.remove(&name);
    }
    assert_eq!(
        osprey_only,
        ["alertmanager_cluster_settled".to_string()].into(),
        "cluster metrics Alertmanager does not have"
    );
    for name in [
        "alertmanager_cluster_enabled",
        "alertmanager_cluster_members",
        "alertmanager_peer_position",
        "alertmanager_cluster_messages_received",
        "alertmanager_cluster_messages_sent",
    ] {
        assert!(ours.contains(name), "{name} missing");
    }

    // The same keys in the status's cluster object and its peers.
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let our_cluster = get(&a, "/api/v2/status")["cluster"].clone();
    let their_cluster = get(&theirs, "/api/v2/status")["cluster"].clone();
    assert_eq!(keys(&our_cluster), keys(&their_cluster));
    assert_eq!(
        keys(&our_cluster["peers"][0]),
        keys(&their_cluster["peers"][0])
    );
}
