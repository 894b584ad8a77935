//! The sender against a loopback fake receiver: batching, sharding,
//! retries with backoff after 503s, drops on 400, and the saved position.

use std::sync::atomic::AtomicUsize;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};

use super::*;
use crate::codec::decode_remote_write;

/// What the fake receiver saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    /// Series name → (t, v) in arrival order.
    samples: Mutex<HashMap<String, Vec<(i64, f64)>>>,
    largest_request: AtomicUsize,
    bad_headers: AtomicUsize,
}

/// Starts a receiver that answers `fail_status` to the first
/// `fail_first` requests and 204 afterwards.
async fn receiver(fail_first: usize, fail_status: StatusCode) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/write",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let seen = state.clone();
            async move {
                let n = seen.requests.fetch_add(1, Ordering::SeqCst);
                let ok = headers
                    .get("content-encoding")
                    .is_some_and(|v| v == "snappy")
                    && headers
                        .get("content-type")
                        .is_some_and(|v| v == "application/x-protobuf")
                    && headers
                        .get("x-prometheus-remote-write-version")
                        .is_some_and(|v| v == "0.1.0")
                    && headers
                        .get("user-agent")
                        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("osprey/"));
                if !ok {
                    seen.bad_headers.fetch_add(1, Ordering::SeqCst);
                }
                if n < fail_first {
                    return fail_status;
                }
                let Ok(series) = decode_remote_write(&body, 64 << 20) else {
                    return StatusCode::BAD_REQUEST;
                };
                let count: usize = series.iter().map(|s| s.samples.len()).sum();
                seen.largest_request.fetch_max(count, Ordering::SeqCst);
                let mut samples = seen.samples.lock().unwrap_or_else(|e| e.into_inner());
                for s in series {
                    let name = s.labels.get("s").unwrap_or("?").to_string();
                    assert_eq!(s.labels.get("dc"), Some("x"), "external label");
                    assert_eq!(s.labels.get("secret"), None, "write relabelling");
                    samples.entry(name).or_default().extend(s.samples);
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/write"), seen)
}

fn config(url: &str) -> RemoteWriteConfig {
    let text = format!(
        "remote_write:\n  - url: {url}\n    name: test\n    write_relabel_configs:\n      - regex: secret\n        action: labeldrop\n    queue_config:\n      max_samples_per_send: 100\n      max_shards: 4\n      batch_send_deadline: 50ms\n      min_backoff: 5ms\n      max_backoff: 40ms\n"
    );
    let mut parsed = config::parse("test.yml", &text, None).unwrap();
    parsed.remote_write.remove(0)
}

/// Appends commits `from..to`, each one sample for each of 20 series.
fn append(storage: &WalStorage, from: i64, to: i64) {
    for t in from..to {
        let mut appender = storage.appender();
        for s in 0..20 {
            let labels = Labels::from_pairs([
                ("__name__", "m".to_string()),
                ("s", s.to_string()),
                ("secret", "drop-me".to_string()),
            ]);
            appender
                .append(&labels, t * 1000, (t * 100 + s) as f64)
                .unwrap();
        }
        appender.commit().unwrap();
    }
}

async fn wait_for(seen: &Seen, total: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got: usize = seen.samples.lock().unwrap().values().map(|v| v.len()).sum();
        if got >= total {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {got} of {total} samples arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_503_then_delivers_every_sample_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = receiver(3, StatusCode::SERVICE_UNAVAILABLE).await;
    let metrics = RemoteMetrics::default();
    let storage = WalStorage::open(&dir.path().join("wal"), false, metrics.clone()).unwrap();
    append(&storage, 0, 50);
    let mut writer = RemoteWriter::new(
        storage.clone(),
        &dir.path().join("queues"),
        false,
        metrics.clone(),
    )
    .unwrap();
    let external = vec![("dc".to_string(), "x".to_string())];
    writer.apply(&[config(&url)], &external).await.unwrap();
    // Force a segment cut while the queue runs: the second segment must
    // describe its series again, and the first must go once it is sent.
    let first_segment = list_segments(storage.dir())[0];
    storage.inner.state.lock().unwrap().segment_bytes = AGENT_SEGMENT_BYTES;
    append(&storage, 50, 60);
    wait_for(&seen, 1200).await;
    writer.stop(Duration::from_secs(5)).await;
    assert!(
        !list_segments(storage.dir()).contains(&first_segment),
        "the sent segment was deleted"
    );

    let samples = seen.samples.lock().unwrap();
    assert_eq!(samples.len(), 20);
    for (name, got) in samples.iter() {
        let s: i64 = name.parse().unwrap();
        let expected: Vec<(i64, f64)> = (0..60).map(|t| (t * 1000, (t * 100 + s) as f64)).collect();
        assert_eq!(got, &expected, "series {name}: every sample once, in order");
    }
    // 1200 samples at 100 a request: at least 12 requests after the 3
    // failures, none larger than the limit.
    assert!(seen.requests.load(Ordering::SeqCst) >= 15);
    assert!(seen.largest_request.load(Ordering::SeqCst) <= 100);
    assert_eq!(seen.bad_headers.load(Ordering::SeqCst), 0);

    let labels: QueueLabels = vec![("remote_name", "test".to_string()), ("url", url.clone())];
    assert_eq!(metrics.samples_sent.get_or_create(&labels).get(), 1200);
    assert!(metrics.samples_retried.get_or_create(&labels).get() > 0);
    assert_eq!(metrics.samples_failed.get_or_create(&labels).get(), 0);
    assert!(metrics.shards.get_or_create(&labels).get() >= 1);

    // The position was saved at the end of what was sent.
    let text = fs::read_to_string(dir.path().join("queues/test.position")).unwrap();
    let (segment, offset) = parse_position(&text).unwrap();
    let len = fs::metadata(segment_path(&dir.path().join("wal"), segment))
        .unwrap()
        .len();
    assert_eq!(offset, len, "position at the end of the segment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_on_400_and_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = receiver(usize::MAX, StatusCode::BAD_REQUEST).await;
    let metrics = RemoteMetrics::default();
    let storage = WalStorage::open(&dir.path().join("wal"), false, metrics.clone()).unwrap();
    append(&storage, 0, 5);
    let mut writer = RemoteWriter::new(
        storage.clone(),
        &dir.path().join("queues"),
        false,
        metrics.clone(),
    )
    .unwrap();
    writer.apply(&[config(&url)], &[]).await.unwrap();
    let labels: QueueLabels = vec![("remote_name", "test".to_string()), ("url", url.clone())];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metrics.samples_failed.get_or_create(&labels).get() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "samples were not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.stop(Duration::from_secs(5)).await;
    assert_eq!(metrics.samples_retried.get_or_create(&labels).get(), 0);
    assert_eq!(metrics.samples_sent.get_or_create(&labels).get(), 0);
    assert!(seen.requests.load(Ordering::SeqCst) >= 1);
}

#[test]
fn segments_are_self_contained_after_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let storage = WalStorage::open(dir.path(), false, RemoteMetrics::default()).unwrap();
    append(&storage, 0, 1);
    // Force a cut at the next commit.
    storage.inner.state.lock().unwrap().segment_bytes = AGENT_SEGMENT_BYTES;
    append(&storage, 1, 2);
    let segments = list_segments(dir.path());
    assert_eq!(segments.len(), 2);
    let bytes = fs::read(segment_path(dir.path(), segments[1])).unwrap();
    let mut described = 0;
    wal::scan_segment_bytes(&bytes, &mut |record| {
        if let Ok(Record::Series(series)) = wal::decode(record) {
            described += series.len();
        }
    });
    assert_eq!(described, 20, "the new segment describes its series again");
}

#[test]
fn position_files_round_trip_and_queue_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.position");
    save_position(&path, "http://a/w", (7, 4096), true).unwrap();
    assert_eq!(load_position(&path, dir.path()), (7, 4096));
    fs::write(&path, "garbage").unwrap();
    assert_eq!(load_position(&path, dir.path()), (0, 0));
    let mut c = config("http://a/w");
    assert_eq!(queue_id(&c), "test");
    c.name = "team a/b".into();
    assert_eq!(queue_id(&c), "team_a_b");
    c.name.clear();
    // The FNV-1a 64 of the URL: position files written before keep their names.
    assert_eq!(queue_id(&c), "url-84e1ffe7887b3ebc");
}

#[test]
fn sigv4_signs_every_header_sent() {
    let text = "remote_write:\n  - url: https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write\n    headers:\n      X-Tenant: ml\n    sigv4:\n      region: us-east-1\n      access_key: AKID\n      secret_key: SECRET\n";
    let mut parsed = config::parse("test.yml", text, None).unwrap();
    let config = parsed.remote_write.remove(0);
    let headers = request_headers(&config, b"body", false).unwrap();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let authorization = get("authorization").expect("signed");
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKID/")
            && authorization.contains("/us-east-1/aps/aws4_request")
            && authorization.contains(
                "SignedHeaders=content-encoding;content-type;host;x-amz-date;x-prometheus-remote-write-version;x-tenant,"
            ),
        "{authorization}"
    );
    assert!(get("x-amz-date").is_some());
    // Without sigv4, no signature.
    let plain = super::request_headers(&self::config("http://x/write"), b"body", false).unwrap();
    assert!(!plain.iter().any(|(n, _)| n == "authorization"));
}

/// The agent's created timestamps (`enable_created_timestamps`): a zero
/// sample is logged only when it is after everything logged for its
/// series; for a series not written since the WAL was opened, only when
/// it is after the opening; never otherwise, so the queues never send
/// one out of order. A pruned series raises the floor.
#[test]
fn created_zero_samples_are_logged_only_after_the_series_newest() {
    let dir = tempfile::tempdir().unwrap();
    let storage = WalStorage::open(dir.path(), false, RemoteMetrics::default()).unwrap();
    let series = |name: &str| Labels::from_pairs([("__name__", name)]);
    let (a, b) = (series("a_total"), series("b_total"));
    // Not enabled: nothing.
    let mut appender = storage.appender();
    assert!(!appender.append_created_zero(&a, 20_000, 15_000).unwrap());
    appender.rollback();

    // A new WAL: no bound for new series. Reopened, the floor is its
    // last write before (here set by hand, as a test cannot age files).
    assert_eq!(storage.inner.previous_write_ms, i64::MIN);
    drop(appender);
    drop(storage);
    let storage = WalStorage::open(dir.path(), false, RemoteMetrics::default()).unwrap();
    assert!(storage.inner.previous_write_ms > 1_000_000_000_000);
    storage.enable_created_timestamps();
    storage
        .inner
        .created
        .lock()
        .unwrap()
        .as_mut()
        .unwrap()
        .floor = 10_000;
    let mut appender = storage.appender();
    // A created timestamp before the WAL's last write, of a series not
    // written since: it might not be after what was sent before.
    assert!(!appender.append_created_zero(&b, 20_000, 9_000).unwrap());
    // After the opening: logged, ahead of its sample.
    assert!(appender.append_created_zero(&a, 20_000, 15_000).unwrap());
    appender.append(&a, 20_000, 4.0).unwrap();
    appender.append(&b, 20_000, 7.0).unwrap();
    appender.commit().unwrap();
    let mut appender = storage.appender();
    // The same again, one not before its sample, one older than the
    // newest: skipped.
    assert!(!appender.append_created_zero(&a, 30_000, 15_000).unwrap());
    assert!(!appender.append_created_zero(&a, 30_000, 30_000).unwrap());
    assert!(!appender.append_created_zero(&b, 30_000, 19_000).unwrap());
    // A restart of the counter after its newest sample: logged.
    assert!(appender.append_created_zero(&b, 30_000, 25_000).unwrap());
    appender.append(&a, 30_000, 5.0).unwrap();
    appender.append(&b, 30_000, 1.0).unwrap();
    appender.commit().unwrap();

    let mut logged = Vec::new();
    for segment in list_segments(dir.path()) {
        let bytes = fs::read(segment_path(dir.path(), segment)).unwrap();
        wal::scan_segment_bytes(&bytes, &mut |record| {
            if let Ok(Record::Samples(samples)) = wal::decode(record) {
                logged.extend(samples.iter().map(|s| (s.t, s.v)));
            }
        });
    }
    assert_eq!(
        logged,
        vec![
            (15_000, 0.0),
            (20_000, 4.0),
            (20_000, 7.0),
            (25_000, 0.0),
            (30_000, 5.0),
            (30_000, 1.0)
        ]
    );

    // Pruned at a segment cut once far behind: the floor rises to it.
    let mut appender = storage.appender();
    appender
        .append(&a, 30_000 + CREATED_KEEP_MS + 1, 6.0)
        .unwrap();
    appender.commit().unwrap();
    storage.inner.state.lock().unwrap().segment_bytes = AGENT_SEGMENT_BYTES;
    let mut appender = storage.appender();
    appender
        .append(&a, 30_000 + CREATED_KEEP_MS + 2, 6.0)
        .unwrap();
    appender.commit().unwrap();
    let mut appender = storage.appender();
    let later = 30_000 + CREATED_KEEP_MS + 10;
    assert!(!appender.append_created_zero(&b, later, 29_000).unwrap());
    assert!(appender.append_created_zero(&b, later, 31_000).unwrap());
}
