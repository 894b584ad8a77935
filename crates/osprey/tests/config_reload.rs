//! One reload for every subsystem: `POST /-/reload` and SIGHUP apply a
//! changed file to scraping, rules and the embedded alert manager alike,
//! and a broken file changes nothing and sets
//! `prometheus_config_last_reload_successful` to 0.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{Server, free_addr, http};

fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("GET");
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, value)
}

fn get_text(addr: SocketAddr, path: &str) -> String {
    let (_, body) = http(addr, "GET", path, &[], &[]).expect("GET");
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of an unlabelled sample in an exposition text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The receiver of the alert manager's root route, read back from
/// `/api/v2/status` (the config as loaded).
fn root_receiver(addr: SocketAddr) -> Option<String> {
    let (status, value) = get_json(addr, "/api/v2/status");
    if status != 200 {
        return None;
    }
    let original = value["config"]["original"].as_str()?;
    original.lines().find_map(|line| {
        line.trim()
            .strip_prefix("receiver: ")
            .map(|name| name.trim().to_string())
    })
}

fn config_text(scrape_interval: &str, receiver: &str) -> String {
    format!(
        "global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:1']\nalertmanager:\n  route:\n    receiver: {receiver}\n  receivers:\n    - name: first\n    - name: second\n    - name: third\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write file");
}

#[test]
fn one_reload_applies_everything_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: vector(1)\n",
    );
    let config = dir.path().join("osprey.yml");
    std::fs::write(&config, config_text("5s", "first")).expect("write config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("log"),
        &["--config", &config.display().to_string()],
    );
    assert_eq!(root_receiver(addr).as_deref(), Some("first"));
    let metrics = get_text(addr, "/metrics");
    assert_eq!(
        metric(&metrics, "prometheus_config_last_reload_successful"),
        Some(1.0),
        "{metrics}"
    );
    let first_success = metric(
        &metrics,
        "prometheus_config_last_reload_success_timestamp_seconds",
    )
    .expect("success timestamp");
    assert!(first_success > 1.6e9, "{first_success}");

    // A changed route and scrape interval, applied by POST /-/reload.
    std::fs::write(&config, config_text("7s", "second")).expect("write config");
    let (status, body) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(root_receiver(addr).as_deref(), Some("second"));
    let (_, targets) = get_json(addr, "/api/v1/targets");
    assert_eq!(targets["data"]["activeTargets"][0]["scrapeInterval"], "7s");

    // A broken file: the alert manager's section names a receiver that
    // does not exist, and the scrape interval changes too. Nothing of it
    // applies, the error names the file, line and field, and the reload
    // metric drops to 0.
    let broken = config_text("9s", "nobody");
    std::fs::write(&config, &broken).expect("write config");
    let (status, body) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("osprey.yml:11: alertmanager.route.receiver"),
        "{body}"
    );
    assert_eq!(root_receiver(addr).as_deref(), Some("second"));
    let (_, targets) = get_json(addr, "/api/v1/targets");
    assert_eq!(targets["data"]["activeTargets"][0]["scrapeInterval"], "7s");
    let (_, config_status) = get_json(addr, "/api/v1/status/config");
    assert!(
        config_status["data"]["yaml"]
            .as_str()
            .is_some_and(|yaml| yaml.contains("receiver: second")),
        "{config_status}"
    );
    let metrics = get_text(addr, "/metrics");
    assert_eq!(
        metric(&metrics, "prometheus_config_last_reload_successful"),
        Some(0.0)
    );

    // A broken rule file fails the reload the same way, though the config
    // file itself is fine.
    std::fs::write(&config, config_text("9s", "third")).expect("write config");
    write(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: vector(\n",
    );
    let (status, body) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("rules.yml"));
    assert_eq!(root_receiver(addr).as_deref(), Some("second"));

    // SIGHUP takes the same path: the fixed file applies whole.
    write(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: vector(1)\n",
    );
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    // The reload metric is set once every subsystem has its part.
    wait_for("the SIGHUP reload", Duration::from_secs(10), || {
        metric(
            &get_text(addr, "/metrics"),
            "prometheus_config_last_reload_successful",
        ) == Some(1.0)
    });
    assert_eq!(root_receiver(addr).as_deref(), Some("third"));
    let (_, targets) = get_json(addr, "/api/v1/targets");
    assert_eq!(targets["data"]["activeTargets"][0]["scrapeInterval"], "9s");
    let metrics = get_text(addr, "/metrics");
    assert_eq!(
        metric(&metrics, "prometheus_config_last_reload_successful"),
        Some(1.0)
    );
    server.kill();
}

#[test]
fn the_alert_manager_comes_and_goes_with_its_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("osprey.yml");
    let without = "global:\n  scrape_interval: 5s\n";
    std::fs::write(&config, without).expect("write config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("log"),
        &["--config", &config.display().to_string()],
    );
    let (status, _) = get_json(addr, "/api/v2/status");
    assert_eq!(status, 503);

    // The section may also name an alertmanager.yml, relative to the
    // config file.
    write(
        dir.path(),
        "am.yml",
        "route:\n  receiver: ops\nreceivers:\n  - name: ops\n",
    );
    std::fs::write(&config, format!("{without}alertmanager: am.yml\n")).expect("write config");
    let (status, _) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200);
    assert_eq!(root_receiver(addr).as_deref(), Some("ops"));

    std::fs::write(&config, without).expect("write config");
    let (status, _) = http(addr, "POST", "/-/reload", &[], &[]).expect("reload");
    assert_eq!(status, 200);
    let (status, _) = get_json(addr, "/api/v2/status");
    assert_eq!(status, 503);
    server.kill();
}

#[test]
fn check_config_validates_every_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |text: &str| {
        let config = dir.path().join("osprey.yml");
        std::fs::write(&config, text).expect("write config");
        std::process::Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(["check", "config"])
            .arg(&config)
            .output()
            .expect("run osprey check config")
    };
    let ok = check(
        "global:\n  scrape_interval: 5s\nalertmanager:\n  route:\n    receiver: a\n  receivers:\n    - name: a\n",
    );
    assert!(ok.status.success(), "{ok:?}");
    for (text, want) in [
        (
            "alertmanager:\n  route:\n    receiver: nobody\n  receivers:\n    - name: a\n",
            "osprey.yml:3: alertmanager.route.receiver: undefined receiver",
        ),
        (
            "auth:\n  users: {}\n",
            "osprey.yml:1: auth: not supported by osprey",
        ),
        (
            "exporters:\n  blackbox:\n    modules:\n      m:\n        prober: http\n        http:\n          methd: GET\n",
            "osprey.yml:7: exporters.blackbox.modules.m.http.methd: unknown field",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config:\n      ca_file: missing-ca.pem\n",
            "missing-ca.pem",
        ),
        (
            "alertmanager:\n  route:\n    receiver: a\n  receivers:\n    - name: a\n  templates: ['broken.tmpl']\n",
            "broken.tmpl",
        ),
    ] {
        write(dir.path(), "broken.tmpl", "{{ define \"x\" }}{{ .Oops");
        let out = check(text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: {out:?}");
        assert!(stderr.contains(want), "{text}\nwant {want}\ngot {stderr}");
    }
}
