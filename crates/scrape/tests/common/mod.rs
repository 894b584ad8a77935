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

    /// The scrapes of the target whose `up` matches `labels`. Read them
    /// before the samples they are to judge ([`Scrapes::of`]).
    pub fn scrapes(&self, labels: &[(&str, &str)]) -> Scrapes {
        Scrapes(
            self.samples("up", labels)
                .into_iter()
                // A stopped loop's marker is no scrape.
                .filter(|(_, v)| !model::is_stale_nan(*v))
                .map(|(t, v)| (t, v == 1.0))
                .collect(),
        )
    }

    /// The samples of the one series matching; empty if there is none.
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(i64, f64)> {
        let mut all = self.series(name, labels);
        assert!(all.len() <= 1, "more than one series for {name} {labels:?}");
        all.pop().map(|(_, samples)| samples).unwrap_or_default()
    }
}

/// One target's scrapes so far, read from its `up` series: each scrape's
/// time and whether it succeeded (`up` 1).
///
/// The fast jobs scrape every 100 ms with a 90 ms timeout, so on a loaded
/// machine a scrape can time out. A failed scrape stores `up` 0 and, at the
/// scrape's time, a staleness marker for every series the successful
/// scrape before it stored (as Prometheus does), and nothing else; the
/// successful scrape after it then has no vanished series to mark. The
/// tests judge the values of the successful scrapes, and take a marker at
/// a failed scrape's time as that failure's.
pub struct Scrapes(Vec<(i64, bool)>);

impl Scrapes {
    /// The times of the successful scrapes, oldest first.
    pub fn ok(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().filter(|(_, ok)| *ok).map(|(t, _)| *t)
    }

    /// The successful scrapes whose scrape before was successful too.
    pub fn ok_after_ok(&self) -> impl Iterator<Item = i64> + '_ {
        self.0
            .windows(2)
            .filter(|pair| pair[0].1 && pair[1].1)
            .map(|pair| pair[1].0)
    }

    /// Whether a scrape at `t` failed.
    pub fn failed_at(&self, t: i64) -> bool {
        self.0.iter().any(|&(time, ok)| time == t && !ok)
    }

    /// Whether the scrape at `t` succeeded; `None` if there is none here.
    pub fn ok_at(&self, t: i64) -> Option<bool> {
        self.0
            .iter()
            .find(|(time, _)| *time == t)
            .map(|(_, ok)| *ok)
    }

    /// The samples (oldest first) of the scrapes here. Each scrape of a
    /// loop commits all its samples, `up` among them, before the next
    /// starts, so a sample read after these scrapes and no newer than the
    /// newest is of one of them; a newer one is of a scrape whose `up` may
    /// not have been there yet, and is left to a later read.
    pub fn of<'a>(&self, samples: &'a [(i64, f64)]) -> &'a [(i64, f64)] {
        let newest = self.0.last().map_or(i64::MIN, |(t, _)| *t);
        &samples[..samples.partition_point(|(t, _)| *t <= newest)]
    }

    /// Whether the successful scrapes here stored `value` in `samples` (at
    /// least one did), and every other sample of them is a staleness
    /// marker a failed scrape wrote.
    pub fn steady(&self, samples: &[(i64, f64)], value: f64) -> bool {
        let samples = self.of(samples);
        samples.iter().any(|(_, v)| *v == value)
            && samples
                .iter()
                .all(|&(t, v)| v == value || (model::is_stale_nan(v) && self.failed_at(t)))
    }
}

/// The value `samples` hold at `t`, if any.
pub fn at(samples: &[(i64, f64)], t: i64) -> Option<f64> {
    samples.iter().find(|(time, _)| *time == t).map(|(_, v)| *v)
}

/// Serves `to`, which lacks the series `name` `labels` that `back` has,
/// until a successful scrape of the target whose `up` matches `up` marks
/// the series stale as vanished. A failed scrape (see [`Scrapes`]) in
/// between marks it instead, and the successful scrape after it has
/// nothing to mark; then `back` is served until the series is scraped
/// again, and `to` once more.
pub async fn take_away(
    store: &TestStore,
    target: &TestTarget,
    up: &[(&str, &str)],
    (name, labels): (&str, &[(&str, &str)]),
    to: &str,
    back: &str,
) {
    for _ in 0..5 {
        target.set(Response::text(to));
        let mut by_ok_scrape = None;
        wait_until(
            Duration::from_secs(10),
            &format!("{name} {labels:?} marked stale"),
            || {
                let scrapes = store.scrapes(up);
                let samples = store.samples(name, labels);
                by_ok_scrape = match scrapes.of(&samples).last() {
                    Some(&(t, v)) if model::is_stale_nan(v) => scrapes.ok_at(t),
                    _ => None,
                };
                by_ok_scrape.is_some()
            },
        )
        .await;
        if by_ok_scrape == Some(true) {
            return;
        }
        target.set(Response::text(back));
        wait_until(
            Duration::from_secs(10),
            &format!("{name} {labels:?} back"),
            || {
                store
                    .samples(name, labels)
                    .last()
                    .is_some_and(|(_, v)| !model::is_stale_nan(*v))
            },
        )
        .await;
    }
    panic!("no successful scrape marked {name} {labels:?} stale in five tries");
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
