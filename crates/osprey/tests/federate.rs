//! `/federate` against the real binary, and a real Prometheus 2.42
//! federating from it.
//!
//! A missing `prometheus` skips the second test with a reason, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where it fails.

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

#[test]
fn prometheus_federates_from_osprey() {
    if let Err(e) = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        let reason = format!("prometheus is not installed ({e}); apt-get install prometheus");
        assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
        eprintln!("skipping: {reason}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, t) = start_osprey(dir.path());

    let prometheus_addr = free_addr();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        [
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
            &format!("      - targets: ['{}']", server.addr),
            "",
        ]
        .join("\n"),
    )
    .expect("write prometheus config");
    let _prometheus = ChildGuard::spawn_ready(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={prometheus_addr}")),
        &dir.path().join("prometheus.log"),
        Duration::from_secs(60),
        || {
            matches!(
                http(prometheus_addr, "GET", "/-/ready", &[], &[]),
                Ok((200, _))
            )
        },
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
