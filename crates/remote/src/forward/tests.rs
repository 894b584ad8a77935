//! The forwarder over a recording store, sending to a loopback receiver.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::http::StatusCode;

use super::*;
use crate::codec::decode_remote_write;

/// A store that keeps what it committed and hands out its labels as
/// handles; `fail_commits` makes every commit fail.
#[derive(Default)]
struct Recording {
    committed: Mutex<Vec<(Labels, i64, f64)>>,
    fail_commits: AtomicBool,
}

struct RecordingAppender<'a> {
    store: &'a Recording,
    staged: Vec<(Labels, i64, f64)>,
}

impl Appendable for Recording {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(RecordingAppender {
            store: self,
            staged: Vec::new(),
        })
    }
}

impl Appender for RecordingAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> model::storage::Result<()> {
        self.staged.push((labels.clone(), t, v));
        Ok(())
    }

    fn append_with_handle(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> model::storage::Result<Option<SeriesHandle>> {
        self.append(labels, t, v)?;
        Ok(Some(SeriesHandle::new(Arc::new(labels.clone()))))
    }

    fn append_handle(
        &mut self,
        handle: &SeriesHandle,
        t: i64,
        v: f64,
    ) -> model::storage::Result<bool> {
        let Some(labels) = handle.downcast_ref::<Arc<Labels>>() else {
            return Ok(false);
        };
        self.staged.push((labels.clone(), t, v));
        Ok(true)
    }

    fn commit(&mut self) -> model::storage::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        if self.store.fail_commits.load(Ordering::SeqCst) {
            return Err(model::storage::StorageError::new(
                model::storage::StorageErrorKind::Io,
                "disk on fire",
            ));
        }
        self.store
            .committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(staged);
        Ok(())
    }

    fn rollback(&mut self) {
        self.staged.clear();
    }
}

/// What the receiver saw: series name → samples in arrival order.
type Seen = Mutex<HashMap<String, Vec<(i64, f64)>>>;

/// A receiver that records what it is sent.
async fn receiver() -> (String, Arc<Seen>) {
    let seen: Arc<Seen> = Arc::default();
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/write",
        axum::routing::post(move |body: Bytes| {
            let seen = state.clone();
            async move {
                let Ok(series) = decode_remote_write(&body, 64 << 20) else {
                    return StatusCode::BAD_REQUEST;
                };
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                for s in series {
                    let name = s.labels.metric_name().unwrap_or("?").to_string();
                    seen.entry(name).or_default().extend(s.samples);
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/write"), seen)
}

fn configs(url: &str) -> Vec<RemoteWriteConfig> {
    let text = format!(
        "remote_write:\n  - url: {url}\n    queue_config:\n      batch_send_deadline: 20ms\n      min_backoff: 5ms\n"
    );
    config::parse("test.yml", &text, None)
        .expect("config")
        .remote_write
}

fn series(name: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", "j")])
}

async fn wait_for(seen: &Seen, name: &str, count: usize) -> Vec<(i64, f64)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default();
        if got.len() >= count {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: {} of {count} samples arrived",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_what_the_store_committed_through_every_append_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Recording::default());
    let forwarder = Forwarder::new(store.clone(), dir.path(), RemoteMetrics::default());

    // Before remote_write is configured the store's own appender is used
    // and nothing is logged.
    let mut appender = forwarder.appender();
    appender.append(&series("before"), 1, 1.0).expect("append");
    appender.commit().expect("commit");
    drop(appender);
    assert!(!dir.path().join("wal").exists());

    let (url, seen) = receiver().await;
    forwarder.apply(&configs(&url), &[]).await.expect("apply");

    let mut appender = forwarder.appender();
    appender.append(&series("plain"), 10, 1.0).expect("append");
    appender
        .append_pairs(&[("job", "j"), ("__name__", "pairs")], 10, 2.0)
        .expect("append_pairs");
    let handle = appender
        .append_with_handle(&series("handle"), 10, 3.0)
        .expect("append_with_handle")
        .expect("a handle");
    appender.commit_unsynced().expect("commit");
    drop(appender);
    let mut appender = forwarder.appender();
    assert!(
        appender
            .append_handle(&handle, 20, 4.0)
            .expect("append_handle")
    );
    // A handle the store gave out directly is refused, not misread.
    let foreign = SeriesHandle::new(Arc::new(series("foreign")));
    assert!(
        !appender
            .append_handle(&foreign, 20, 5.0)
            .expect("append_handle")
    );
    appender.commit().expect("commit");
    drop(appender);

    assert_eq!(wait_for(&seen, "plain", 1).await, [(10, 1.0)]);
    assert_eq!(wait_for(&seen, "pairs", 1).await, [(10, 2.0)]);
    assert_eq!(wait_for(&seen, "handle", 2).await, [(10, 3.0), (20, 4.0)]);
    let stored = store
        .committed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    assert_eq!(stored, 5, "the store keeps everything as before");

    // A failed store commit forwards nothing.
    store.fail_commits.store(true, Ordering::SeqCst);
    let mut appender = forwarder.appender();
    appender.append(&series("failed"), 30, 1.0).expect("append");
    assert!(appender.commit().is_err());
    drop(appender);
    store.fail_commits.store(false, Ordering::SeqCst);

    // Without remote_write again, logging stops.
    forwarder.apply(&[], &[]).await.expect("apply");
    let mut appender = forwarder.appender();
    appender.append(&series("after"), 40, 1.0).expect("append");
    appender.commit().expect("commit");
    drop(appender);
    tokio::time::sleep(Duration::from_millis(200)).await;
    forwarder.stop(Duration::from_secs(1)).await;
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    for name in ["before", "failed", "after"] {
        assert!(!seen.contains_key(name), "{name} was forwarded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_first_configuration_leaves_forwarding_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Recording::default());
    let forwarder = Forwarder::new(store, dir.path(), RemoteMetrics::default());
    let mut bad = configs("http://127.0.0.1:1/write");
    bad[0].http.tls_config.ca_file = Some(dir.path().join("missing.pem").display().to_string());
    assert!(forwarder.apply(&bad, &[]).await.is_err());
    let mut appender = forwarder.appender();
    appender.append(&series("x"), 1, 1.0).expect("append");
    appender.commit().expect("commit");
    drop(appender);
    let metrics = forwarder.metrics.samples_in.get();
    assert_eq!(metrics, 0, "nothing was logged");
}
