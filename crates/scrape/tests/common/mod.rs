//! Helpers shared by the scrape integration tests: a real `tsdb::Db` in a
//! temporary directory, a tiny HTTP target on 127.0.0.1 whose response the
//! test controls, and reads through `model::storage::Queryable`.

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::storage::{Appendable, Queryable};
use model::{Labels, MatchOp, Matcher};
use scrape::{ScrapeManager, ScrapeManagerOptions};

/// What the test target answers.
#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(body: &str) -> Response {
        Response {
            status: 200,
            content_type: "text/plain; version=0.0.4".to_string(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// A delimited protobuf exposition.
    pub fn protobuf(body: Vec<u8>) -> Response {
        Response {
            status: 200,
            content_type: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited".to_string(),
            body,
        }
    }
}

/// A target on 127.0.0.1 serving `/metrics` from a swappable response and
/// remembering the Accept header of the last request.
pub struct TestTarget {
    pub address: String,
    pub response: Arc<Mutex<Response>>,
    pub last_accept: Arc<Mutex<String>>,
    pub requests: Arc<Mutex<u64>>,
}

impl TestTarget {
    pub async fn start(response: Response) -> TestTarget {
        let response = Arc::new(Mutex::new(response));
        let last_accept = Arc::new(Mutex::new(String::new()));
        let requests = Arc::new(Mutex::new(0u64));
        let (shared_response, shared_accept, shared_requests) =
            (response.clone(), last_accept.clone(), requests.clone());
        let handler = move |headers: axum::http::HeaderMap| {
            let response = shared_response.lock().unwrap().clone();
            *shared_accept.lock().unwrap() = headers
                .get("accept")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_string();
            *shared_requests.lock().unwrap() += 1;
            async move {
                (
                    axum::http::StatusCode::from_u16(response.status).unwrap(),
                    [("content-type", response.content_type)],
                    response.body,
                )
            }
        };
        let router = axum::Router::new().route("/metrics", axum::routing::get(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        TestTarget {
            address,
            response,
            last_accept,
            requests,
        }
    }

    pub fn set(&self, response: Response) {
        *self.response.lock().unwrap() = response;
    }
}

pub struct TestStore {
    pub db: Arc<tsdb::Db>,
    _directory: tempfile::TempDir,
}

impl TestStore {
    pub fn open() -> TestStore {
        let directory = tempfile::tempdir().unwrap();
        let db = tsdb::Db::open(
            directory.path(),
            tsdb::DbOptions {
                retention_time_ms: None,
                retention_size_bytes: None,
                block_range_ms: tsdb::db::DEFAULT_BLOCK_RANGE_MS,
                wal_segment_size: 1 << 20,
                fsync: false,
            },
        )
        .unwrap();
        TestStore {
            db: Arc::new(db),
            _directory: directory,
        }
    }

    pub fn appendable(&self) -> Arc<dyn Appendable> {
        self.db.clone()
    }

    pub fn manager(&self) -> ScrapeManager {
        self.manager_with(false)
    }

    /// A manager as `--enable-feature=native-histograms` makes it when
    /// `native_histograms`.
    pub fn manager_with(&self, native_histograms: bool) -> ScrapeManager {
        self.manager_with_features(native_histograms, false)
    }

    /// A manager as `--enable-feature=native-histograms` and
    /// `--enable-feature=created-timestamp-zero-ingestion` make it.
    pub fn manager_with_features(
        &self,
        native_histograms: bool,
        created_timestamp_zero_ingestion: bool,
    ) -> ScrapeManager {
        ScrapeManager::new(
            self.appendable(),
            ScrapeManagerOptions {
                hostname: "testhost".to_string(),
                native_histograms,
                created_timestamp_zero_ingestion,
            },
        )
    }

    /// The histogram samples of the one series matching; empty if none.
    pub fn histograms(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<(i64, model::histogram::FloatHistogram)> {
        let mut matchers = vec![Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
        for (label, value) in labels {
            matchers.push(Matcher::new(MatchOp::Equal, *label, *value).unwrap());
        }
        let querier = self.db.querier(i64::MIN / 4, i64::MAX / 4).unwrap();
        let mut all: Vec<_> = querier
            .select(&matchers)
            .unwrap()
            .map(|series| series.unwrap().histograms.collect::<Vec<_>>())
            .collect();
        assert!(all.len() <= 1, "more than one series for {name} {labels:?}");
        all.pop().unwrap_or_default()
    }

    /// Every series matching `name` plus `label=value` pairs, with all
    /// samples.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let mut matchers = vec![Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
        for (label, value) in labels {
            matchers.push(Matcher::new(MatchOp::Equal, *label, *value).unwrap());
        }
        let querier = self.db.querier(i64::MIN / 4, i64::MAX / 4).unwrap();
        querier
            .select(&matchers)
            .unwrap()
            .map(|series| {
                let series = series.unwrap();
                (series.labels, series.samples.collect())
            })
            .collect()
    }

    /// The samples of the one series matching; empty if there is none.
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(i64, f64)> {
        let mut all = self.series(name, labels);
        assert!(all.len() <= 1, "more than one series for {name} {labels:?}");
        all.pop().map(|(_, samples)| samples).unwrap_or_default()
    }
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `prometheus.yml` scrape job for `address` every 100 ms.
pub fn fast_job(job: &str, address: &str, extra: &str) -> String {
    format!(
        "  - job_name: {job}\n    scrape_interval: 100ms\n    scrape_timeout: 90ms\n    static_configs:\n      - targets: ['{address}']\n{extra}"
    )
}

pub fn config(jobs: &[String]) -> Vec<config::ScrapeConfig> {
    let text = format!("scrape_configs:\n{}", jobs.concat());
    config::parse("test.yml", &text, None)
        .unwrap_or_else(|error| panic!("{error}\n{text}"))
        .scrape_configs
}
