//! Query limits under a burst of heavy dashboard queries
//! (`docs/limits.md`): with `--query.max-concurrency 2`, a burst of
//! parallel queries queues and every one succeeds; with
//! `--query.max-samples`, a query over it fails with Prometheus's error
//! and the others are unaffected.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn query(addr: SocketAddr, q: &str, start: i64, end: i64) -> (u16, Value) {
    let path = format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step=15",
        urlencode(q)
    );
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (status, value)
}

#[test]
fn heavy_queries_queue_and_oversized_ones_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &[
            "--query.max-concurrency",
            "2",
            "--query.max-samples",
            "50000",
        ],
    );
    let flags = {
        let (_, body) = http(addr, "GET", "/api/v1/status/flags", &[], &[]).expect("flags");
        serde_json::from_slice::<Value>(&body).expect("json")
    };
    assert_eq!(flags["data"]["query.max-concurrency"], "2", "{flags}");
    assert_eq!(flags["data"]["query.max-samples"], "50000", "{flags}");

    // 200 series of 2 hours at 15 s: 96,000 samples.
    let end_s = 1_700_000_000i64;
    let start_s = end_s - 7200;
    for chunk in 0..4 {
        let series: Vec<WriteSeries<'_>> = (chunk * 50..chunk * 50 + 50)
            .map(|i| {
                (
                    vec![
                        ("__name__", "heavy_metric".to_string()),
                        ("i", i.to_string()),
                    ],
                    (0..=480)
                        .map(|k| ((start_s + k * 15) * 1000, (i * k) as f64))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            remote_write(addr, &remote_write_body(&series)).expect("write"),
            204
        );
    }

    // A burst of 12 heavy queries at once, 6 times the concurrency: they
    // queue, and all succeed with the same answer.
    let heavy = "sum by (i) (rate(heavy_metric[5m])) + on (i) avg_over_time(heavy_metric[30m])";
    let started = Instant::now();
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| scope.spawn(|| query(addr, heavy, end_s - 1200, end_s)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let burst = started.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{:.300}", body.to_string());
        assert_eq!(body["data"]["result"].as_array().map(Vec::len), Some(200));
        assert_eq!(body["data"], answers[0].1["data"]);
    }
    assert!(burst < Duration::from_secs(60), "burst took {burst:?}");

    // Over max samples (a raw 2 h range of every series, 96,400 samples
    // held at once): Prometheus's error, 422 execution.
    let path = format!(
        "/api/v1/query?query={}&time={end_s}",
        urlencode("heavy_metric[2h]")
    );
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 422, "{:.300}", body.to_string());
    assert_eq!(body["errorType"], "execution");
    assert_eq!(
        body["error"],
        "query processing would load too many samples into memory in query execution"
    );
    // The server still answers.
    let (status, body) = query(addr, "count(heavy_metric)", end_s, end_s);
    assert_eq!(status, 200, "{body}");
    drop(server);
}
