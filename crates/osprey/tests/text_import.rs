//! `POST /api/v1/import/prometheus` against the real binary and store:
//! bodies big enough to be parsed in pieces on several threads, series
//! written line after line and series interleaved per timestamp, a second
//! body continuing the first's series (appended by the store's handles),
//! all read back exactly (bodies past 4 MiB, read into a mapping of
//! their own); a bad line deep in a body is answered 400 with
//! its line number and nothing of that body is stored.

mod support;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use support::{Server, export, free_addr, http};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Series labels (sorted pairs) -> samples (ms, value).
type Expected = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}

/// A long label value, so that a body of 300 points passes the size at
/// which the server reads bodies into a mapping of their own (4 MiB).
const RUN: &str = "fine-tune-llama-3-8b-instruct-lora-r16-alpha32-lr2e-4-batch64";

/// Points `from..to` of every series: 120 series written point after point,
/// then 24 series interleaved per timestamp (as a scrape's families are).
fn body(start: i64, from: i64, to: i64, expected: &mut Expected) -> String {
    let mut body = String::from("# HELP ti_runs A series per run.\n# TYPE ti_runs gauge\n");
    for k in 0..120 {
        let key = labels(&[
            ("__name__", "ti_runs"),
            ("instance", &format!("host-{k}:9100")),
            ("job", "node"),
            ("run", &format!("{RUN}-{k}")),
        ]);
        for i in from..to {
            let t = start + i * 15_000;
            let v = (i * k) as f64 * 0.25;
            body.push_str(&format!(
                "ti_runs{{job=\"node\",instance=\"host-{k}:9100\",run=\"{RUN}-{k}\"}} {v} {t}\n"
            ));
            expected.entry(key.clone()).or_default().push((t, v));
        }
    }
    body.push_str("# TYPE ti_cpu_seconds_total counter\n");
    for i in from..to {
        let t = start + i * 15_000;
        for cpu in 0..24 {
            let v = (i * 100 + cpu) as f64 + 0.5;
            body.push_str(&format!(
                "ti_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"user\"}} {v} {t}\n"
            ));
            let key = labels(&[
                ("__name__", "ti_cpu_seconds_total"),
                ("cpu", &cpu.to_string()),
                ("mode", "user"),
            ]);
            expected.entry(key).or_default().push((t, v));
        }
    }
    body
}

fn stored(addr: std::net::SocketAddr, selector: &str) -> Expected {
    export(addr, selector)
        .into_iter()
        .map(|(labels, ts, values)| {
            let samples = ts
                .into_iter()
                .zip(values)
                .map(|(t, v)| {
                    let v = match &v {
                        serde_json::Value::Number(n) => n.as_f64().expect("number"),
                        other => other.as_str().expect("value").parse().expect("float"),
                    };
                    (t, v)
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

#[test]
fn bodies_in_pieces_read_back_exactly_and_bad_lines_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = Server::start(&dir.path().join("data"), addr, &dir.path().join("log"));
    // 600 points at 15 s: the last two and a half hours.
    let start = (now_ms() - 9_000_000) / 1000 * 1000;
    let mut expected = Expected::new();
    let first = body(start, 0, 300, &mut expected);
    let second = body(start, 300, 600, &mut expected);
    assert!(first.len() > 4 << 20, "{} bytes", first.len());
    for part in [&first, &second] {
        let (status, answer) = http(
            addr,
            "POST",
            "/api/v1/import/prometheus",
            &[],
            part.as_bytes(),
        )
        .expect("import");
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
    }
    let got = stored(addr, "{__name__=~\"ti_.*\"}");
    assert_eq!(got.len(), 144);
    assert_eq!(got, expected);

    // A bad line after a few megabytes: 400 naming its line, and neither
    // the new series before it nor the new samples of known ones are kept.
    let mut ignored = Expected::new();
    let mut bad = body(start, 600, 620, &mut ignored);
    bad.push_str(&body(start, 0, 300, &mut ignored).replace("ti_", "ti_new_"));
    let line = bad.lines().count() + 1;
    bad.push_str("ti_new_runs{job=\"node\" 1 2\n");
    let (status, answer) = http(
        addr,
        "POST",
        "/api/v1/import/prometheus",
        &[],
        bad.as_bytes(),
    )
    .expect("import");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("\"errorType\":\"bad_data\""), "{answer}");
    assert!(
        answer.contains(&format!("cannot parse body: line {line}, column")),
        "line {line}: {answer}"
    );
    assert_eq!(stored(addr, "{__name__=~\"ti_.*\"}"), expected);
    server.terminate();
}
