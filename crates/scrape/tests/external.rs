//! Scraping real programs: a Python app built on `prometheus_client`
//! (Counter, Gauge, Histogram, Summary, with labels; text format and
//! OpenMetrics) and a real `prometheus-node-exporter`. Each test skips,
//! saying why, when its program is missing, and fails instead when
//! `OSPREY_REQUIRE_EXTERNAL=1` (as in CI).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use model::exposition::{Entry, Parser, content_type_format, sample_labels};
use model::{Labels, is_stale_nan};

const WAIT: Duration = Duration::from_secs(20);

/// Whether to run: `false` (after printing why) when `what` is missing
/// and external programs are not required; a panic when they are.
fn available(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    if std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("{what} is missing and OSPREY_REQUIRE_EXTERNAL=1");
    }
    eprintln!("skipping: {what} is missing (set OSPREY_REQUIRE_EXTERNAL=1 to fail instead)");
    false
}

/// Kills the child process when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// Ports remembered for the life of the test process, so two tests running
// in parallel never start their servers on one port.
#[path = "../../osprey/tests/support/ports.rs"]
mod ports;

fn free_port() -> u16 {
    ports::free_addr().port()
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fetches a target directly with `accept` and parses it into series
/// (labels with `__name__`) and values, as a scrape would see them.
async fn fetch_series(url: &str, accept: &str) -> BTreeMap<Labels, f64> {
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let format = content_type_format(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let body = response.bytes().await.unwrap();
    let mut series = BTreeMap::new();
    for entry in Parser::new(&body, format) {
        if let Entry::Sample {
            name,
            labels,
            value,
            ..
        } = entry.unwrap()
        {
            series.insert(sample_labels(&name, &labels), value);
        }
    }
    series
}

/// The labels a scraped series is stored under for `job`.
fn stored_labels(served: &Labels, job: &str, instance: &str) -> Labels {
    Labels::from_pairs(
        served
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .chain([("job", job), ("instance", instance)]),
    )
}

const PYTHON_APP: &str = r#"
import sys, time
from prometheus_client import Counter, Gauge, Histogram, Summary, start_http_server

requests = Counter("app_requests", "Requests handled.", ["method", "code"])
requests.labels("get", "200").inc(5)
requests.labels("post", "500").inc(2)
queue = Gauge("app_queue_depth", "Jobs waiting.")
queue.set(12.5)
latency = Histogram("app_latency_seconds", "Request latency.", buckets=[0.1, 0.5, 1.0])
for value in [0.05, 0.3, 0.7, 2.0]:
    latency.observe(value)
batch = Summary("app_batch_size", "Batch sizes.", ["model"])
batch.labels("resnet").observe(3)
batch.labels("resnet").observe(5)
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
while True:
    time.sleep(1)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_prometheus_client_app() {
    let has_client = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available(has_client, "python3 with the prometheus_client package") {
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let script = directory.path().join("app.py");
    std::fs::write(&script, PYTHON_APP).unwrap();
    let port = free_port();
    let _app = ChildGuard(
        Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port).await;
    let address = format!("127.0.0.1:{port}");

    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[
            fast_job("om", &address, ""),
            fast_job(
                "text",
                &address,
                "    scrape_protocols: [PrometheusText0.0.4]\n",
            ),
        ]))
        .await;
    wait_until(WAIT, "both formats scraped", || {
        store.samples("up", &[("job", "om")]).len() >= 2
            && store.samples("up", &[("job", "text")]).len() >= 2
    })
    .await;
    // A scrape of the Python app can miss the 90 ms timeout on a loaded
    // machine; what matters is that both formats scrape cleanly.
    wait_until(WAIT, "both targets scraped without error", || {
        manager
            .targets()
            .active
            .iter()
            .all(|target| target.last_error.is_empty())
    })
    .await;

    // Known values, in both formats.
    for job in ["om", "text"] {
        let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
            let mut all = labels.to_vec();
            all.push(("job", job));
            let samples = store.samples(name, &all);
            assert!(!samples.is_empty(), "{job}: no {name}{labels:?}");
            samples.last().unwrap().1
        };
        assert_eq!(
            value("app_requests_total", &[("method", "get"), ("code", "200")]),
            5.0
        );
        assert_eq!(
            value("app_requests_total", &[("method", "post"), ("code", "500")]),
            2.0
        );
        assert_eq!(value("app_queue_depth", &[]), 12.5);
        assert_eq!(value("app_latency_seconds_bucket", &[("le", "0.1")]), 1.0);
        assert_eq!(value("app_latency_seconds_bucket", &[("le", "0.5")]), 2.0);
        assert_eq!(value("app_latency_seconds_bucket", &[("le", "1.0")]), 3.0);
        assert_eq!(value("app_latency_seconds_bucket", &[("le", "+Inf")]), 4.0);
        assert_eq!(value("app_latency_seconds_count", &[]), 4.0);
        assert!((value("app_latency_seconds_sum", &[]) - 3.05).abs() < 1e-9);
        assert_eq!(value("app_batch_size_count", &[("model", "resnet")]), 2.0);
        assert_eq!(value("app_batch_size_sum", &[("model", "resnet")]), 8.0);
    }
    // The text format exposes `_created` as gauges; OpenMetrics as
    // creation times, which Prometheus 3 stores as series unless
    // `created-timestamp-zero-ingestion` is on (it is off here; see
    // tests/created_timestamps.rs).
    for job in ["text", "om"] {
        assert!(
            !store
                .series("app_requests_created", &[("job", job)])
                .is_empty()
        );
    }

    // Every app_* series served equals what was stored (these values do
    // not change between scrapes).
    for (job, accept) in [
        ("om", scrape::ACCEPT_HEADER),
        ("text", "text/plain;version=0.0.4"),
    ] {
        let served = fetch_series(&format!("http://{address}/metrics"), accept).await;
        let mut compared = 0;
        for (labels, value) in &served {
            let name = labels.metric_name().unwrap_or("");
            if !name.starts_with("app_") {
                continue;
            }
            let want = stored_labels(labels, job, &address);
            let stored = store.series(name, &[("job", job)]);
            let (_, samples) = stored
                .iter()
                .find(|(labels, _)| *labels == want)
                .unwrap_or_else(|| panic!("{job}: {want} not stored"));
            assert_eq!(samples.last().unwrap().1, *value, "{job}: {want}");
            compared += 1;
        }
        assert!(compared >= 11, "{job}: only {compared} series compared");
    }
    let metadata = manager.metadata();
    assert_eq!(
        metadata["app_latency_seconds"][0].metric_type,
        scrape::MetricType::Histogram
    );
    assert_eq!(metadata["app_batch_size"][0].help, "Batch sizes.");
    manager.stop().await;
    assert!(is_stale_nan(
        store
            .samples("app_queue_depth", &[("job", "om")])
            .last()
            .unwrap()
            .1
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_exporter() {
    let binary = [
        "/usr/bin/prometheus-node-exporter",
        "/usr/local/bin/node_exporter",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists());
    if !available(binary.is_some(), "prometheus-node-exporter") {
        return;
    }
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let _exporter = ChildGuard(
        Command::new(binary.unwrap_or_default())
            .arg(format!("--web.listen-address={address}"))
            .args([
                "--collector.disable-defaults",
                "--collector.uname",
                "--collector.loadavg",
                "--collector.time",
                "--collector.meminfo",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        // A real exporter on a loaded two-core machine can take longer than
        // the 90 ms of the fast jobs; every scrape here must succeed.
        .apply_config(&config(&[fast_job(
            "node",
            &address,
            "    scrape_interval: 500ms\n    scrape_timeout: 490ms\n",
        )
        .replace("    scrape_interval: 100ms\n", "")
        .replace("    scrape_timeout: 90ms\n", "")]))
        .await;
    wait_until(WAIT, "node exporter scraped", || {
        store.samples("up", &[("job", "node")]).len() >= 2
    })
    .await;
    let target = &manager.targets().active[0];
    assert_eq!(target.last_error, "");
    assert!(
        store
            .samples("up", &[("job", "node")])
            .iter()
            .all(|(_, v)| *v == 1.0)
    );

    // Every series served exists in storage, and the ones that do not
    // change between scrapes have the same value.
    let served = fetch_series(&format!("http://{address}/metrics"), scrape::ACCEPT_HEADER).await;
    assert!(served.len() > 30, "only {} series served", served.len());
    let scraped = store.samples("scrape_samples_scraped", &[("job", "node")]);
    assert_eq!(scraped.last().unwrap().1 as usize, served.len());
    for (labels, value) in &served {
        let name = labels.metric_name().unwrap_or("");
        let want = stored_labels(labels, "node", &address);
        let stored = store.series(name, &[("job", "node")]);
        let (_, samples) = stored
            .iter()
            .find(|(labels, _)| *labels == want)
            .unwrap_or_else(|| panic!("{want} not stored"));
        let constant = name.ends_with("_info") || name == "node_memory_MemTotal_bytes";
        if constant {
            assert_eq!(samples.last().unwrap().1, *value, "{want}");
        }
    }
    assert!(
        !store
            .series("node_uname_info", &[("job", "node")])
            .is_empty()
    );
    assert!(!store.series("node_load1", &[("job", "node")]).is_empty());
    let metadata = manager.metadata();
    assert_eq!(
        metadata["node_load1"][0].metric_type,
        scrape::MetricType::Gauge
    );
    manager.stop().await;
}
