//! What other Prometheus servers read from osprey: `/federate` against
//! the real binary, and a real Prometheus 2.42 federating from it and
//! reading it through `remote_read` (`/api/v1/read`).
//!
//! A missing `prometheus` skips the tests that need it with a reason,
//! unless `OSPREY_REQUIRE_EXTERNAL=1`, where they fail.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{ChildGuard, Server, free_addr, http, urlencode};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn required() -> bool {
    std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Starts osprey with `external_labels` and imports three series: two
/// fresh ones named `fed_a` and `fed_b`, and `fed_old`, whose only sample
/// is older than the 5-minute lookback. Returns the server and the fresh
/// samples' timestamp.
fn start_osprey(dir: &std::path::Path) -> (Server, i64) {
    let config = dir.join("osprey.yml");
    std::fs::write(
        &config,
        "global:\n  external_labels:\n    site: lab\n    job: from-external\n",
    )
    .expect("write config");
    let server = Server::start_with_args(
        &dir.join("data"),
        free_addr(),
        &dir.join("osprey.log"),
        &["--config", &config.display().to_string()],
    );
    let t = now_ms() - 20_000;
    let old = now_ms() - 600_000;
    let body = format!(
        "fed_a{{job=\"train\",gpu=\"0\"}} 1.5 {t}\n\
         fed_a{{job=\"train\",gpu=\"1\"}} 2 {t}\n\
         fed_b{{path=\"q\\\"x\"}} -3.25 {t}\n\
         fed_old{{job=\"train\"}} 7 {old}\n"
    );
    let (status, answer) = http(
        server.addr,
        "POST",
        "/api/v1/import/prometheus",
        &[],
        body.as_bytes(),
    )
    .expect("import");
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
    (server, t)
}

fn federate(addr: SocketAddr, selectors: &[&str]) -> (u16, String) {
    let query: Vec<String> = selectors
        .iter()
        .map(|s| format!("match[]={}", urlencode(s)))
        .collect();
    let (status, body) = http(
        addr,
        "GET",
        &format!("/federate?{}", query.join("&")),
        &[],
        &[],
    )
    .expect("federate");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn federate_answers_the_newest_samples_with_external_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, t) = start_osprey(dir.path());

    let (status, body) = federate(server.addr, &["{__name__=~\"fed_.*\"}"]);
    assert_eq!(status, 200, "{body}");
    // The series's own `job` wins over the external one; `site` is added;
    // `fed_old` is outside the lookback and left out.
    let expected = format!(
        "# TYPE fed_a untyped\n\
         fed_a{{gpu=\"0\",job=\"train\",site=\"lab\"}} 1.5 {t}\n\
         fed_a{{gpu=\"1\",job=\"train\",site=\"lab\"}} 2 {t}\n\
         # TYPE fed_b untyped\n\
         fed_b{{job=\"from-external\",path=\"q\\\"x\",site=\"lab\"}} -3.25 {t}\n"
    );
    assert_eq!(body, expected);

    // Two selectors are a union, each series once.
    let (status, union) = federate(server.addr, &["fed_a", "{gpu=\"1\"}", "fed_b"]);
    assert_eq!(status, 200);
    assert_eq!(union, expected);

    // No selector: nothing, successfully, as Prometheus answers.
    let (status, empty) = federate(server.addr, &[]);
    assert_eq!((status, empty.as_str()), (200, ""));

    // A bad selector is the Prometheus error JSON.
    let (status, bad) = federate(server.addr, &["fed_a{"]);
    assert_eq!(status, 400, "{bad}");
    let json: serde_json::Value = serde_json::from_str(&bad).expect("error JSON");
    assert_eq!(json["errorType"], "bad_data", "{bad}");
}

/// Whether `prometheus` runs; prints why not (or fails when required).
fn prometheus_available() -> bool {
    match Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) => {
            let reason = format!("prometheus is not installed ({e}); apt-get install prometheus");
            assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping: {reason}");
            false
        }
    }
}

/// Starts Prometheus with `config` (YAML lines) in `dir`, killed on drop.
fn start_prometheus(dir: &std::path::Path, config: &[&str]) -> (ChildGuard, SocketAddr) {
    start_prometheus_with(dir, config, &[])
}

/// Like [`start_prometheus`] with extra flags.
fn start_prometheus_with(
    dir: &std::path::Path,
    config: &[&str],
    flags: &[&str],
) -> (ChildGuard, SocketAddr) {
    let addr = free_addr();
    let path = dir.join("prometheus.yml");
    let mut text = config.join("\n");
    text.push('\n');
    std::fs::write(&path, text).expect("write prometheus config");
    let child = ChildGuard::spawn_ready(
        Command::new("prometheus")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(flags),
        &dir.join("prometheus.log"),
        Duration::from_secs(60),
        || matches!(http(addr, "GET", "/-/ready", &[], &[]), Ok((200, _))),
    );
    (child, addr)
}

#[test]
fn prometheus_federates_from_osprey() {
    if !prometheus_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, t) = start_osprey(dir.path());

    let target = format!("      - targets: ['{}']", server.addr);
    let (_prometheus, prometheus_addr) = start_prometheus(
        dir.path(),
        &[
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 900ms",
            "scrape_configs:",
            "  - job_name: federate",
            "    honor_labels: true",
            "    metrics_path: /federate",
            "    params:",
            "      'match[]': ['{__name__=~\"fed_.*\"}']",
            "    static_configs:",
            &target,
        ],
    );

    // Prometheus stores what it scraped at osprey's timestamps, with
    // osprey's labels (honor_labels) and the external ones.
    let query = urlencode("{__name__=~\"fed_.*\"}");
    let path = format!(
        "/api/v1/query?query={query}&time={}",
        (t + 1000) as f64 / 1000.0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok((200, body)) = http(prometheus_addr, "GET", &path, &[], &[]) {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            seen = json["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let metric = &s["metric"];
                    (
                        format!(
                            "{}|{}|{}|{}|{}",
                            metric["__name__"].as_str().unwrap_or(""),
                            metric["job"].as_str().unwrap_or(""),
                            metric["gpu"].as_str().unwrap_or(""),
                            metric["path"].as_str().unwrap_or(""),
                            metric["site"].as_str().unwrap_or("")
                        ),
                        s["value"][1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            seen.sort();
            if seen.len() == 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        seen,
        vec![
            ("fed_a|train|0||lab".to_string(), "1.5".to_string()),
            ("fed_a|train|1||lab".to_string(), "2".to_string()),
            (
                "fed_b|from-external||q\"x|lab".to_string(),
                "-3.25".to_string()
            ),
        ],
        "Prometheus's log:\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
}

/// `path` on `addr` as JSON, `Null` unless it answers 200.
fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    match http(addr, "GET", path, &[], &[]) {
        Ok((200, body)) => serde_json::from_slice(&body).unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

/// A Prometheus with osprey as its `remote_read` store answers range
/// queries exactly as osprey does (labels, timestamps and values).
#[test]
fn prometheus_reads_osprey_through_remote_read() {
    if !prometheus_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _) = start_osprey(dir.path());
    // Ten minutes of a counter and a gauge for two jobs, at times that
    // never fall on a query step or a window's edge (x.123 s).
    let base = (now_ms() / 1000) * 1000 - 600_000 + 123;
    let mut body = String::new();
    for i in 0..60i64 {
        let t = base + i * 10_000;
        for (job, rate) in [("a", 3), ("b", 5)] {
            body.push_str(&format!(
                "rr_total{{job=\"{job}\"}} {} {t}\nrr_gauge{{job=\"{job}\"}} {} {t}\n",
                i * rate,
                (i as f64 * 0.37).sin()
            ));
        }
    }
    let (status, answer) = http(
        server.addr,
        "POST",
        "/api/v1/import/prometheus",
        &[],
        body.as_bytes(),
    )
    .expect("import");
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));

    let url = format!("  - url: http://{}/api/v1/read", server.addr);
    let (_prometheus, prometheus_addr) = start_prometheus(
        dir.path(),
        &[
            "global:",
            "  scrape_interval: 1m",
            "remote_read:",
            &url,
            "    read_recent: true",
        ],
    );
    let start = base / 1000 + 30;
    let end = start + 500;
    for query in [
        "rr_gauge",
        "rr_total{job=\"b\"}",
        "rate(rr_total[2m])",
        "max_over_time(rr_gauge[1m])",
        "sum by (job) (rr_gauge)",
    ] {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step=7",
            urlencode(query)
        );
        let ours = get_json(server.addr, &path);
        let mut theirs = get_json(prometheus_addr, &path);
        assert_eq!(ours["status"], "success", "{query}: {ours}");
        // osprey adds its external labels to what it serves over remote
        // read (as Prometheus does); all but the aggregation keep it.
        for series in theirs["data"]["result"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let metric = series["metric"].as_object_mut().expect("metric");
            let site = metric.remove("site");
            if !query.starts_with("sum by") {
                assert_eq!(site, Some("lab".into()), "{query}");
            }
        }
        let result = ours["data"]["result"].as_array().map_or(0, Vec::len);
        assert!(result > 0, "{query}: osprey returned nothing");
        assert_eq!(
            theirs["data"]["result"], ours["data"]["result"],
            "{query}: Prometheus through remote_read differs from osprey"
        );
    }
    // A selector that matches nothing is an empty answer, not an error.
    let path = format!(
        "/api/v1/query?query={}&time={end}",
        urlencode("rr_gauge{job=\"none\"}")
    );
    let theirs = get_json(prometheus_addr, &path);
    assert_eq!(theirs["status"], "success", "{theirs}");
    assert_eq!(theirs["data"]["result"], serde_json::json!([]));
}

/// osprey with a Prometheus as its `remote_read` store answers queries
/// with Prometheus's data exactly as Prometheus does, asks it only when
/// the selector holds the required matchers, and a store that is down
/// leaves the answer empty instead of failing it.
#[test]
fn osprey_reads_prometheus_through_remote_read() {
    if !prometheus_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).expect("mkdir");
    let (prometheus, prometheus_addr) = start_prometheus_with(
        &prometheus_dir,
        &[
            "global:",
            "  scrape_interval: 1m",
            "  external_labels:",
            "    source: prom",
        ],
        &["--web.enable-remote-write-receiver"],
    );
    // Ten minutes of a counter and a gauge for two jobs, written into
    // Prometheus, at times off every query step.
    let base = (now_ms() / 1000) * 1000 - 600_000 + 123;
    let mut series: Vec<support::WriteSeries<'_>> = Vec::new();
    for job in ["a", "b"] {
        let times: Vec<i64> = (0..60).map(|i| base + i * 10_000).collect();
        series.push((
            vec![
                ("__name__", "pr_total".to_string()),
                ("job", job.to_string()),
            ],
            times
                .iter()
                .enumerate()
                .map(|(i, &t)| (t, (i * 4) as f64))
                .collect(),
        ));
        series.push((
            vec![
                ("__name__", "pr_gauge".to_string()),
                ("job", job.to_string()),
            ],
            times
                .iter()
                .enumerate()
                .map(|(i, &t)| (t, (i as f64 * 0.61).cos()))
                .collect(),
        ));
    }
    let status = support::remote_write(prometheus_addr, &support::remote_write_body(&series))
        .expect("write");
    assert_eq!(status, 204, "Prometheus refused the remote write");

    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        [
            "remote_read:",
            &format!("  - url: http://{prometheus_addr}/api/v1/read"),
            "    remote_timeout: 5s",
            "    required_matchers:",
            "      source: prom",
            "",
        ]
        .join("\n"),
    )
    .expect("write config");
    let server = Server::start_with_args(
        &dir.path().join("data"),
        free_addr(),
        &dir.path().join("osprey.log"),
        &["--config", &config.display().to_string()],
    );
    let start = base / 1000 + 30;
    let end = start + 500;
    let range = |query: &str| {
        format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step=7",
            urlencode(query)
        )
    };
    for (ours, theirs) in [
        ("pr_gauge{source=\"prom\"}", "pr_gauge"),
        ("rate(pr_total{source=\"prom\"}[2m])", "rate(pr_total[2m])"),
        (
            "sum by (job) (min_over_time(pr_gauge{source=\"prom\"}[1m]))",
            "sum by (job) (min_over_time(pr_gauge[1m]))",
        ),
    ] {
        let mut ours_json = get_json(server.addr, &range(ours));
        let theirs_json = get_json(prometheus_addr, &range(theirs));
        assert_eq!(theirs_json["status"], "success", "{theirs}: {theirs_json}");
        let n = theirs_json["data"]["result"].as_array().map_or(0, Vec::len);
        assert!(n > 0, "{theirs}: Prometheus returned nothing");
        // Prometheus's remote read adds its external label; the selector
        // keeps it on osprey's side.
        for series in ours_json["data"]["result"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(metric) = series["metric"].as_object_mut() {
                metric.remove("source");
            }
        }
        assert_eq!(
            ours_json["data"]["result"],
            theirs_json["data"]["result"],
            "{ours}: osprey through remote_read differs from Prometheus\n{}",
            server.log_text()
        );
    }
    // Without the required matcher Prometheus is not asked.
    let plain = get_json(server.addr, &range("pr_gauge"));
    assert_eq!(plain["status"], "success");
    assert_eq!(plain["data"]["result"], serde_json::json!([]));

    // With Prometheus gone the query still answers, from what is left.
    drop(prometheus);
    let gone = get_json(server.addr, &range("pr_gauge{source=\"prom\"}"));
    assert_eq!(gone["status"], "success", "{gone}");
    assert_eq!(gone["data"]["result"], serde_json::json!([]));
    assert!(
        server.log_text().contains("remote read failed"),
        "{}",
        server.log_text()
    );
}
