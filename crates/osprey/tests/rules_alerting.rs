//! Rules in a running server: `/api/v1/rules` and `/api/v1/alerts` show
//! the rule state, and firing alerts reach a real Alertmanager (Debian's
//! `prometheus-alertmanager`) through its API v2 with external labels,
//! `alert_relabel_configs` and expanded templates applied. A reload with a
//! bad rule file keeps the running rules.
//!
//! Without `prometheus-alertmanager` the delivery part is skipped with a
//! reason (the API part still runs), unless `OSPREY_REQUIRE_EXTERNAL=1`.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("http");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("json")
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts Debian's Alertmanager on `addr`, or says why it cannot.
fn start_alertmanager(dir: &std::path::Path, addr: SocketAddr) -> Option<ChildGuard> {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .expect("write alertmanager.yml");
    let child = ChildGuard::spawn(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    match child {
        Ok(am) => {
            wait_for(
                "the Alertmanager to be ready",
                Duration::from_secs(30),
                || matches!(http(addr, "GET", "/-/ready", &[], &[]), Ok((200, _))).then_some(()),
            );
            Some(am)
        }
        Err(e) => {
            let reason = format!(
                "prometheus-alertmanager is not installed ({e}); apt-get install prometheus-alertmanager"
            );
            assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping delivery to a real Alertmanager: {reason}");
            None
        }
    }
}

const RULES: &str = r#"groups:
  - name: gpu
    rules:
      - record: instance:gpu_temp:max
        expr: max by (instance) (gpu_temp_celsius)
      - alert: GpuTooHot
        expr: gpu_temp_celsius > 85
        labels:
          severity: critical
        annotations:
          summary: 'GPU {{ $labels.gpu }} at {{ $value }}C in {{ $externalLabels.cluster }}'
      - alert: GpuWarm
        expr: gpu_temp_celsius > 60
        for: 1h
"#;

#[test]
fn rules_run_and_alerts_reach_an_alertmanager() {
    let dir = tempfile::tempdir().expect("tempdir");
    let am_addr = free_addr();
    let alertmanager = start_alertmanager(dir.path(), am_addr);
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("gpu.yml"), RULES).expect("write rules");
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 1s\n  external_labels:\n    cluster: lab\n\
             rule_files: ['rules/*.yml']\n\
             alerting:\n  alert_relabel_configs:\n    - target_label: via\n      replacement: osprey\n  \
             alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n\
             scrape_configs: []\n"
        ),
    )
    .expect("write config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--web.external-url",
            "http://osprey.test:9090/",
        ],
    );
    let (status, _) = http(
        addr,
        "POST",
        "/api/v1/import/prometheus",
        &[],
        b"gpu_temp_celsius{gpu=\"0\",instance=\"node1\"} 95\ngpu_temp_celsius{gpu=\"1\",instance=\"node1\"} 70\n",
    )
    .expect("import");
    assert_eq!(status, 204);

    // /api/v1/alerts: one firing, one pending.
    let alerts = wait_for("both alerts", Duration::from_secs(20), || {
        let v = get_json(addr, "/api/v1/alerts");
        let alerts = v["data"]["alerts"].as_array()?.clone();
        (alerts.len() == 3).then_some(alerts)
    });
    let hot = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "GpuTooHot")
        .expect("GpuTooHot");
    assert_eq!(hot["state"], "firing");
    assert_eq!(hot["value"], "9.5e+01");
    assert_eq!(hot["annotations"]["summary"], "GPU 0 at 95C in lab");
    assert_eq!(hot["labels"]["severity"], "critical");
    let warm: Vec<_> = alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "GpuWarm")
        .collect();
    assert_eq!(warm.len(), 2);
    assert!(warm.iter().all(|a| a["state"] == "pending"));

    // /api/v1/rules: shapes and filters.
    let rules = get_json(addr, "/api/v1/rules");
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "gpu");
    assert!(
        group["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("rules/gpu.yml"))
    );
    assert_eq!(group["interval"], 1.0);
    let kinds: Vec<&str> = group["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["recording", "alerting", "alerting"]);
    assert_eq!(group["rules"][0]["health"], "ok");
    assert_eq!(group["rules"][1]["state"], "firing");
    assert_eq!(group["rules"][2]["state"], "pending");
    assert_eq!(group["rules"][2]["duration"], 3600.0);
    let only_recording = get_json(addr, "/api/v1/rules?type=record");
    assert_eq!(
        only_recording["data"]["groups"][0]["rules"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let by_name = get_json(
        addr,
        "/api/v1/rules?rule_name[]=GpuWarm&exclude_alerts=true",
    );
    let rule = &by_name["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["name"], "GpuWarm");
    assert!(rule.get("alerts").is_none());
    let (status, body) = http(addr, "GET", "/api/v1/rules?type=bogus", &[], &[]).expect("http");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // The recording rule wrote its series.
    let recorded = get_json(addr, "/api/v1/query?query=instance:gpu_temp:max");
    assert_eq!(recorded["data"]["result"][0]["value"][1], "95");

    // A reload with a broken rule file fails and keeps the rules running.
    std::fs::write(
        rules_dir.join("broken.yml"),
        "groups:\n  - name: x\n    rules:\n      - record: a\n        expr: sum(\n",
    )
    .expect("write");
    let (status, body) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 500);
    assert!(
        String::from_utf8_lossy(&body).contains("broken.yml"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let still = get_json(addr, "/api/v1/alerts");
    assert_eq!(still["data"]["alerts"].as_array().map(Vec::len), Some(3));

    // A good reload that adds a group keeps the unchanged group's alerts
    // (same activeAt), and the new group runs.
    let active_at = |v: &serde_json::Value| -> Vec<String> {
        let mut at: Vec<String> = v["data"]["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| format!("{}{}", x["labels"], x["activeAt"]))
                    .collect()
            })
            .unwrap_or_default();
        at.sort();
        at
    };
    let before = active_at(&still);
    std::fs::write(
        rules_dir.join("broken.yml"),
        "groups:\n  - name: extra\n    rules:\n      - record: gpu:count\n        expr: count(gpu_temp_celsius)\n",
    )
    .expect("write");
    let (status, body) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let after = get_json(addr, "/api/v1/alerts");
    assert_eq!(active_at(&after), before, "alerts changed across a reload");
    wait_for("the new group's series", Duration::from_secs(10), || {
        let v = get_json(addr, "/api/v1/query?query=gpu:count");
        (v["data"]["result"][0]["value"][1] == "2").then_some(())
    });

    if alertmanager.is_some() {
        let received = wait_for(
            "the alert at the Alertmanager",
            Duration::from_secs(30),
            || {
                let v = get_json(am_addr, "/api/v2/alerts");
                v.as_array()?
                    .iter()
                    .find(|a| a["labels"]["alertname"] == "GpuTooHot")
                    .cloned()
            },
        );
        assert_eq!(received["labels"]["cluster"], "lab", "{received}");
        assert_eq!(received["labels"]["via"], "osprey", "{received}");
        assert_eq!(received["labels"]["gpu"], "0");
        assert_eq!(received["annotations"]["summary"], "GPU 0 at 95C in lab");
        assert!(
            received["generatorURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("http://osprey.test:9090/graph?g0.expr=")),
            "{received}"
        );
        assert_eq!(received["status"]["state"], "active");
        // Pending alerts are not sent.
        let all = get_json(am_addr, "/api/v2/alerts");
        assert!(
            all.as_array()
                .is_some_and(|a| a.iter().all(|x| x["labels"]["alertname"] != "GpuWarm")),
            "{all}"
        );
    }
    server.kill();
}

#[test]
fn embedded_default_runs_the_starter_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = Server::start(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
    );
    let v = get_json(addr, "/api/v1/rules");
    let group = &v["data"]["groups"][0];
    assert_eq!(group["name"], "osprey-starter", "{v}");
    assert_eq!(group["file"], "<embedded starter rules>");
    let names: Vec<&str> = group["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for expected in [
        "TargetDown",
        "DiskFillingUp",
        "HighCpuUsage",
        "HighMemoryUsage",
        "GpuTooHot",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    server.kill();
}

/// Requests a stand-in Alertmanager received: (path, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A stand-in Alertmanager: records the path and body of every request and
/// answers 200.
fn fake_alertmanager() -> (SocketAddr, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            if let Ok(mut received) = record.lock() {
                received.push((path, String::from_utf8_lossy(&body).into_owned()));
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, received)
}

/// Alertmanagers found through `file_sd_configs`: a target written into the
/// discovery file after the server started receives the firing alert, with
/// `__meta_filepath` available to relabelling.
#[test]
fn alertmanagers_from_file_discovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (am_addr, received) = fake_alertmanager();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: always\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n",
    )
    .expect("write rules");
    let targets = dir.path().join("alertmanagers.json");
    std::fs::write(&targets, "[]").expect("write empty targets");
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        "global:\n  evaluation_interval: 1s\n\
         rule_files: ['rules.yml']\n\
         alerting:\n  alertmanagers:\n    - file_sd_configs:\n        - files: ['alertmanagers.json']\n          refresh_interval: 1s\n      \
         relabel_configs:\n        - source_labels: [__meta_filepath]\n          regex: '.*alertmanagers.json'\n          action: keep\n\
         scrape_configs: []\n",
    )
    .expect("write config");
    let addr = free_addr();
    let _server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        // Alerts already sent (here: to no one) go out again after the
        // resend delay, which is when a newly found Alertmanager gets them.
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--rules.alert.resend-delay",
            "1s",
        ],
    );
    wait_for("the alert firing", Duration::from_secs(20), || {
        let alerts = get_json(addr, "/api/v1/alerts");
        (alerts["data"]["alerts"][0]["state"] == "firing").then_some(())
    });
    // No Alertmanager is known yet.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(received.lock().expect("received").is_empty());

    std::fs::write(&targets, format!("[{{\"targets\": [\"{am_addr}\"]}}]")).expect("write targets");
    let (path, body) = wait_for(
        "the alert at the discovered Alertmanager",
        Duration::from_secs(20),
        || received.lock().ok().and_then(|r| r.first().cloned()),
    );
    assert_eq!(path, "/api/v2/alerts");
    assert!(body.contains("\"alertname\":\"AlwaysFiring\""), "{body}");
}
