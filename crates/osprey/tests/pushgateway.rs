//! The Pushgateway API end to end, through the real binary and the real
//! `prometheus_client` (Python): `push_to_gateway`, `pushadd_to_gateway`
//! and `delete_from_gateway` unchanged against osprey's main port.
//!
//! - pushed counters, gauges, histograms and summaries are queryable with
//!   the labels a `honor_labels: true` scrape of a Pushgateway stores
//!   (`job`, grouping labels, base64-encoded values with `/` and empty
//!   values), with `push_time_seconds` and `push_failure_time_seconds`;
//! - `PUT` replaces the group, `POST` only the same-named families, and a
//!   series that leaves (or a deleted group) is stale at once;
//! - an inconsistent push is refused (the client raises) and sets the
//!   failure time;
//! - every acknowledged push is there after a `kill -9`, and the pushed
//!   series stay fresh: re-stored every scrape interval.
//!
//! - the Go client's delimited protobuf format is read too.
//!
//! Without python3's `prometheus_client` the test prints why and is
//! skipped, unless `OSPREY_REQUIRE_EXTERNAL=1`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{ChildGuard, Server, free_addr, http, instant_values as query, python_imports};

const CLIENT: &str = r#"
import sys
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client import push_to_gateway, pushadd_to_gateway, delete_from_gateway

gateway, step = sys.argv[1], sys.argv[2]
grouping = {"instance": "host-1", "path": "/data/run 7", "shard": ""}
r = CollectorRegistry()
if step == "push":
    c = Counter("records_processed", "Records the batch processed.", ["stage"], registry=r)
    c.labels("load").inc(120)
    c.labels("train").inc(80)
    Gauge("batch_last_success_unixtime", "When the batch last succeeded.", registry=r).set(1700000000.5)
    h = Histogram("batch_step_seconds", "Step durations.", buckets=[0.5, 1, 5], registry=r)
    for v in [0.2, 0.7, 3, 9]:
        h.observe(v)
    s = Summary("batch_rows", "Rows per file.", registry=r)
    s.observe(10)
    s.observe(30)
    push_to_gateway(gateway, job="training/nightly", registry=r, grouping_key=grouping)
    # A second group, with plain values.
    Gauge("other_value", "Another group.", registry=(r2 := CollectorRegistry())).set(3)
    push_to_gateway(gateway, job="other", registry=r2, grouping_key={"instance": "h2"})
elif step == "pushadd":
    Gauge("batch_last_success_unixtime", "When the batch last succeeded.", registry=r).set(1700000100)
    Gauge("batch_extra", "Added by POST.", registry=r).set(42)
    pushadd_to_gateway(gateway, job="training/nightly", registry=r, grouping_key=grouping)
elif step == "replace":
    Gauge("batch_extra", "Added by POST.", registry=r).set(43)
    push_to_gateway(gateway, job="training/nightly", registry=r, grouping_key=grouping)
elif step == "conflict":
    # batch_extra is a gauge in the other group: a summary of that name is refused.
    Summary("batch_extra", "Now a summary.", registry=r).observe(1)
    try:
        push_to_gateway(gateway, job="conflicting", registry=r)
    except Exception as e:
        print("refused:", e)
        sys.exit(0)
    sys.exit("the inconsistent push was accepted")
elif step == "delete":
    delete_from_gateway(gateway, job="other", grouping_key={"instance": "h2"})
"#;

fn python_client_available() -> bool {
    python_imports(
        "prometheus_client",
        "python3 with prometheus_client (pip install prometheus-client)",
    )
}

fn client(script: &Path, addr: SocketAddr, step: &str) -> String {
    let out = ChildGuard::output(
        Command::new("python3")
            .arg(script)
            .arg(addr.to_string())
            .arg(step),
        Duration::from_secs(60),
    )
    .expect("run python3");
    assert!(
        out.status.success(),
        "client step {step} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn one(addr: SocketAddr, q: &str) -> f64 {
    let result = query(addr, q);
    assert_eq!(result.len(), 1, "{q}: {result:?}");
    result[0].1
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

const GROUP: &str = "instance=host-1,job=training/nightly,path=/data/run 7";
const BUCKET: &str = "instance=host-1,job=training/nightly,le=";

#[test]
fn prometheus_client_pushes_are_queryable_replaced_deleted_and_survive_kill_9() {
    if !python_client_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("client.py");
    std::fs::write(&script, CLIENT).expect("write client");
    // A 1 s scrape interval, so the re-store is seen within the test.
    let config = dir.path().join("osprey.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1s\n").expect("write config");
    let data = dir.path().join("data");
    let addr = free_addr();
    let config_arg = config.display().to_string();
    let args = ["--config", config_arg.as_str()];
    let server = Server::start_with_args(&data, addr, &dir.path().join("log1"), &args);

    let before_push = now_s();
    client(&script, addr, "push");
    // Every family with the labels a honor_labels scrape stores: the
    // grouping labels (the empty `shard` absent), the job with its `/`.
    assert_eq!(
        query(addr, "records_processed_total"),
        [
            (
                format!("__name__=records_processed_total,{GROUP},stage=load"),
                120.0
            ),
            (
                format!("__name__=records_processed_total,{GROUP},stage=train"),
                80.0
            ),
        ]
    );
    assert_eq!(
        one(
            addr,
            "batch_last_success_unixtime{job=\"training/nightly\"}"
        ),
        1700000000.5
    );
    assert_eq!(
        query(addr, "batch_step_seconds_bucket"),
        [
            (
                format!("__name__=batch_step_seconds_bucket,{BUCKET}+Inf,path=/data/run 7"),
                4.0
            ),
            (
                format!("__name__=batch_step_seconds_bucket,{BUCKET}0.5,path=/data/run 7"),
                1.0
            ),
            (
                format!("__name__=batch_step_seconds_bucket,{BUCKET}1.0,path=/data/run 7"),
                2.0
            ),
            (
                format!("__name__=batch_step_seconds_bucket,{BUCKET}5.0,path=/data/run 7"),
                3.0
            ),
        ]
    );
    assert_eq!(one(addr, "batch_step_seconds_sum"), 0.2 + 0.7 + 3.0 + 9.0);
    assert_eq!(one(addr, "batch_rows_count"), 2.0);
    assert_eq!(one(addr, "batch_rows_sum"), 40.0);
    assert_eq!(
        one(addr, "histogram_quantile(0.5, batch_step_seconds_bucket)"),
        1.0
    );
    let pushed_at = one(addr, "push_time_seconds{job=\"training/nightly\"}");
    assert!(
        pushed_at >= before_push - 1.0 && pushed_at <= now_s() + 1.0,
        "push_time_seconds {pushed_at} vs {before_push}"
    );
    assert_eq!(
        query(addr, "push_failure_time_seconds"),
        [
            (
                "__name__=push_failure_time_seconds,instance=h2,job=other".to_string(),
                0.0
            ),
            (format!("__name__=push_failure_time_seconds,{GROUP}"), 0.0),
        ]
    );

    // POST replaces the same-named family and adds one; the rest stays.
    client(&script, addr, "pushadd");
    assert_eq!(
        one(
            addr,
            "batch_last_success_unixtime{job=\"training/nightly\"}"
        ),
        1700000100.0
    );
    assert_eq!(one(addr, "batch_extra"), 42.0);
    assert_eq!(query(addr, "records_processed_total").len(), 2);

    // PUT replaces the whole group: what it lacks is stale at once.
    client(&script, addr, "replace");
    assert_eq!(one(addr, "batch_extra"), 43.0);
    assert_eq!(query(addr, "records_processed_total"), []);
    assert_eq!(query(addr, "batch_step_seconds_bucket"), []);
    assert_eq!(query(addr, "other_value").len(), 1);

    // An inconsistent push is refused and sets the failure time.
    let before_conflict = now_s();
    let out = client(&script, addr, "conflict");
    assert!(out.contains("refused"), "{out}");
    let failed_at = one(addr, "push_failure_time_seconds{job=\"conflicting\"}");
    assert!(failed_at >= before_conflict - 1.0, "{failed_at}");
    assert_eq!(one(addr, "push_time_seconds{job=\"conflicting\"}"), 0.0);

    // Bad paths are 400 with Prometheus's error shape; GET is not routed.
    let (status, body) = http(addr, "PUT", "/metrics/job/x/odd", &[], b"m 1\n").expect("put");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("odd number of components"));
    let (status, _) = http(addr, "PUT", "/metrics/job/x", &[], b"m{ 1\n").expect("put");
    assert_eq!(status, 400);
    let (status, _) = http(addr, "GET", "/metrics/job/x", &[], &[]).expect("get");
    assert_eq!(status, 405);
    // A gzip body, as the client sends with compression="gzip".
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"gzipped_value 7\n").expect("gzip");
    let gz = gz.finish().expect("gzip");
    let (status, body) = http(
        addr,
        "POST",
        "/metrics/job/gz",
        &[("Content-Encoding", "gzip")],
        &gz,
    )
    .expect("post");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(one(addr, "gzipped_value{job=\"gz\"}"), 7.0);

    // The Go client's default: delimited protobuf MetricFamily messages.
    use prost::Message as _;
    use scrape::protobuf::{Counter, LabelPair, Metric, MetricFamily};
    let mut body = Vec::new();
    MetricFamily {
        name: Some("go_pushed_total".to_string()),
        help: Some("From a Go client.".to_string()),
        r#type: Some(0),
        metric: vec![Metric {
            label: vec![LabelPair {
                name: Some("queue".to_string()),
                value: Some("q1".to_string()),
            }],
            counter: Some(Counter {
                value: Some(5.0),
                ..Default::default()
            }),
            ..Default::default()
        }],
        unit: None,
    }
    .encode_length_delimited(&mut body)
    .expect("encode");
    let (status, answer) = http(
        addr,
        "PUT",
        "/metrics/job/go/instance/i1",
        &[(
            "Content-Type",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
        )],
        &body,
    )
    .expect("put protobuf");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(
        query(addr, "go_pushed_total"),
        [(
            "__name__=go_pushed_total,instance=i1,job=go,queue=q1".to_string(),
            5.0
        )]
    );

    // DELETE removes the group; its series are stale at once.
    let groups = |addr| {
        let (_, body) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| {
                l.strip_prefix("osprey_pushgateway_groups ")
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    // training/nightly, other, conflicting, gz, go.
    assert_eq!(groups(addr), "5");
    client(&script, addr, "delete");
    assert_eq!(groups(addr), "4");
    assert_eq!(query(addr, "other_value"), []);
    assert_eq!(query(addr, "push_time_seconds{job=\"other\"}"), []);

    // kill -9 right after the acknowledged changes: all of them are there
    // after the restart, and they keep being re-stored (fresh timestamps).
    server.kill();
    let restarted_at = now_s();
    let server = Server::start_with_args(&data, addr, &dir.path().join("log2"), &args);
    assert_eq!(one(addr, "batch_extra"), 43.0);
    assert_eq!(one(addr, "gzipped_value"), 7.0);
    assert_eq!(query(addr, "other_value"), []);
    assert_eq!(query(addr, "records_processed_total"), []);
    assert!(one(addr, "push_failure_time_seconds{job=\"conflicting\"}") >= before_conflict - 1.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored_at = one(addr, "timestamp(batch_extra)");
        if stored_at >= restarted_at + 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pushed series not re-stored after the restart: last at {stored_at}, restart at {restarted_at}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    server.terminate();
}
