//! Debian's `promtool query instant` and `promtool query range` against a
//! real `osprey server` over loopback: the Prometheus client library reads
//! our query API and prints the values we wrote through remote write.
//!
//! When `promtool` is not installed the test prints why and passes, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where a missing `promtool` fails it.

mod support;

use std::process::{Command, Output};
use support::*;

/// `promtool`'s version line, or `None` (after printing why) when the test
/// should be skipped.
fn promtool_available() -> Option<String> {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let all = [out.stdout, out.stderr].concat();
            let text = String::from_utf8_lossy(&all);
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        Ok(out) => {
            let reason = format!("promtool --version failed: {:?}", out.status);
            assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping the promtool test: {reason}");
            None
        }
        Err(e) => {
            let reason = format!("promtool is not installed ({e}); apt-get install prometheus");
            assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping the promtool test: {reason}");
            None
        }
    }
}

fn promtool(args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .output()
        .expect("run promtool")
}

fn stdout_of(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn promtool_queries_instant_and_range() {
    let Some(version) = promtool_available() else {
        return;
    };
    eprintln!("using {version}");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = Server::start(&dir.path().join("data"), addr, &dir.path().join("log"));

    // Five samples 15 s apart ending a minute ago, whole seconds so that
    // promtool prints plain integers.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let base = now_s - now_s % 15 - 120;
    let times: Vec<i64> = (0..5).map(|i| (base + i * 15) * 1000).collect();
    let room_a: Vec<(i64, f64)> = times
        .iter()
        .zip([1.0, 2.0, 3.5, 4.0, 5.25])
        .map(|(&t, v)| (t, v))
        .collect();
    let room_b: Vec<(i64, f64)> = times.iter().map(|&t| (t, 20.0)).collect();
    let body = remote_write_body(&[
        (
            vec![
                ("__name__", "osprey_e2e_temp".to_string()),
                ("room", "a".to_string()),
            ],
            room_a,
        ),
        (
            vec![
                ("__name__", "osprey_e2e_temp".to_string()),
                ("room", "b".to_string()),
            ],
            room_b,
        ),
    ]);
    assert_eq!(remote_write(addr, &body).expect("remote write"), 204);

    let url = format!("http://{addr}");
    let last = (base + 60).to_string();

    // Instant vector: promtool prints `labels => value @[time]` per series.
    let out = promtool(&[
        "query",
        "instant",
        &format!("--time={last}"),
        &url,
        "osprey_e2e_temp",
    ]);
    let text = stdout_of(&out, "promtool query instant");
    assert!(
        text.contains(&format!("osprey_e2e_temp{{room=\"a\"}} => 5.25 @[{last}]")),
        "{text}"
    );
    assert!(
        text.contains(&format!("osprey_e2e_temp{{room=\"b\"}} => 20 @[{last}]")),
        "{text}"
    );

    // An aggregation, and a scalar.
    let out = promtool(&[
        "query",
        "instant",
        &format!("--time={last}"),
        &url,
        "sum(osprey_e2e_temp)",
    ]);
    let text = stdout_of(&out, "promtool query instant sum");
    assert!(text.contains(&format!("{{}} => 25.25 @[{last}]")), "{text}");
    let out = promtool(&[
        "query",
        "instant",
        &format!("--time={last}"),
        &url,
        "scalar(osprey_e2e_temp{room=\"a\"}) * 2",
    ]);
    let text = stdout_of(&out, "promtool query instant scalar");
    assert!(text.contains(&format!("scalar: 10.5 @[{last}]")), "{text}");

    // JSON output carries the API's own value strings.
    let out = promtool(&[
        "query",
        "instant",
        "-o",
        "json",
        &format!("--time={last}"),
        &url,
        "osprey_e2e_temp{room=\"a\"}",
    ]);
    let text = stdout_of(&out, "promtool query instant -o json");
    let json: serde_json::Value = serde_json::from_str(text.trim()).expect("promtool json");
    assert_eq!(
        json,
        serde_json::json!([{
            "metric": {"__name__": "osprey_e2e_temp", "room": "a"},
            "value": [base + 60, "5.25"],
        }])
    );

    // Range: one block per series, one `value @[time]` line per step.
    let out = promtool(&[
        "query",
        "range",
        &format!("--start={base}"),
        &format!("--end={last}"),
        "--step=15s",
        &url,
        "osprey_e2e_temp{room=\"a\"} * 2",
    ]);
    let text = stdout_of(&out, "promtool query range");
    assert!(text.contains("{room=\"a\"} =>"), "{text}");
    for (i, v) in ["2", "4", "7", "8", "10.5"].iter().enumerate() {
        let line = format!("{v} @[{}]", base + 15 * i as i64);
        assert!(
            text.lines().any(|l| l.trim() == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // A coarser step picks the latest sample at or before each step.
    let out = promtool(&[
        "query",
        "range",
        &format!("--start={base}"),
        &format!("--end={last}"),
        "--step=30s",
        &url,
        "max(osprey_e2e_temp{room=\"a\"})",
    ]);
    let text = stdout_of(&out, "promtool query range step 30s");
    let values: Vec<&str> = text.lines().filter(|l| l.contains(" @[")).collect();
    assert_eq!(
        values,
        [
            format!("1 @[{base}]"),
            format!("3.5 @[{}]", base + 30),
            format!("5.25 @[{last}]"),
        ],
        "{text}"
    );

    // A malformed query fails with the server's error.
    let out = promtool(&["query", "instant", &url, "sum(osprey_e2e_temp"]);
    assert!(!out.status.success(), "a malformed query succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad_data") && stderr.contains("parse error"),
        "{stderr}"
    );
    // So does a range query with too many points.
    let out = promtool(&[
        "query",
        "range",
        &format!("--start={}", base - 86_400),
        &format!("--end={last}"),
        "--step=1s",
        &url,
        "osprey_e2e_temp",
    ]);
    assert!(!out.status.success(), "an 86,000-point range succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exceeded maximum resolution of 11,000 points"),
        "{stderr}"
    );

    let status = server.terminate();
    assert!(status.success(), "server exit: {status:?}");
}
