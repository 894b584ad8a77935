//! `osprey server --config`: the server scrapes what the file says,
//! reloads on SIGHUP and `POST /-/reload`, keeps the old configuration
//! when a new one is broken, and refuses to start on a bad file.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn config(addr: std::net::SocketAddr, jobs: &[&str]) -> String {
    let mut s = String::from(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n",
    );
    for job in jobs {
        s.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
        ));
    }
    s
}

/// The value of `up{job=...}` at the latest sample, if any.
fn up(addr: std::net::SocketAddr, job: &str) -> Option<f64> {
    let q = urlencode(&format!("up{{job=\"{job}\"}}"));
    let (status, body) = http(addr, "GET", &format!("/api/v1/query?query={q}"), &[], &[]).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn scrapes_reloads_and_keeps_a_good_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config(addr, &["self"])).expect("write config");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let server = Server::start_with_args(
        &data,
        addr,
        &log,
        &["--config", cfg.to_str().expect("utf8")],
    );

    wait_for("up{job=self} = 1", || up(addr, "self") == Some(1.0));

    // SIGHUP with a second job.
    std::fs::write(&cfg, config(addr, &["self", "again"])).expect("write config");
    server.child.signal("HUP");
    wait_for("up{job=again} = 1 after SIGHUP", || {
        up(addr, "again") == Some(1.0)
    });

    // A broken file is refused by /-/reload; the running config stays.
    std::fs::write(
        &cfg,
        "scrape_configs:\n  - job_name: x\n    scrape_interval: 5x\n",
    )
    .expect("write config");
    let (status, body) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 500);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("scrape_interval"), "{body}");
    let (_, targets) = http(addr, "GET", "/api/v1/targets", &[], &[]).expect("targets");
    let targets: serde_json::Value = serde_json::from_slice(&targets).expect("json");
    let pools: Vec<&str> = targets["data"]["activeTargets"]
        .as_array()
        .expect("active")
        .iter()
        .filter_map(|t| t["scrapePool"].as_str())
        .collect();
    assert!(
        pools.contains(&"self") && pools.contains(&"again"),
        "{pools:?}"
    );
    assert!(targets["data"]["activeTargets"][0]["health"].as_str() == Some("up"));
    server.kill();

    // Starting on the broken file fails with file, line and field.
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["server", "--data-dir"])
        .arg(dir.path().join("data2"))
        .args(["--listen", &free_addr().to_string(), "--config"])
        .arg(&cfg);
    let out = ChildGuard::output(&mut command, Duration::from_secs(30)).expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prometheus.yml:3") && err.contains("scrape_interval"),
        "{err}"
    );
}

#[test]
fn default_config_scrapes_osprey_itself_and_its_exporters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = Server::start(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
    );
    let (_, targets) = http(addr, "GET", "/api/v1/targets", &[], &[]).expect("targets");
    let targets: serde_json::Value = serde_json::from_slice(&targets).expect("json");
    let active = targets["data"]["activeTargets"]
        .as_array()
        .expect("targets");
    let pool = |name: &str| {
        active
            .iter()
            .find(|t| t["scrapePool"] == name)
            .unwrap_or_else(|| panic!("no {name} pool in {targets}"))
    };
    assert_eq!(
        pool("osprey")["scrapeUrl"],
        format!("http://{addr}/metrics")
    );
    assert_eq!(pool("osprey")["scrapeInterval"], "15s");
    // The built-in host and GPU exporters are scraped like any target.
    assert_eq!(
        pool("host")["scrapeUrl"],
        format!("http://{addr}/exporters/host/metrics")
    );
    assert_eq!(
        pool("gpu")["scrapeUrl"],
        format!("http://{addr}/exporters/gpu/metrics")
    );
    // The container exporter reads the local cgroup tree, always there.
    assert_eq!(
        pool("containers")["scrapeUrl"],
        format!("http://{addr}/exporters/container/metrics")
    );
    server.kill();
}
