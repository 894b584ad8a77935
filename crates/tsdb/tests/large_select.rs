//! A select large enough to decode on several threads returns every
//! series with samples in range, in label order, each with exactly its
//! own samples: read at once, read slowly (the decoding threads get far
//! ahead and wait), dropped early, and read beside another one.

use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher};
use tsdb::{Db, DbOptions};

fn options() -> DbOptions {
    DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: 7_200_000,
        wal_segment_size: 1 << 20,
        fsync: false,
    }
}

const SERIES: usize = 2_600;

/// A database of `SERIES` series `m{id="00000"}`...; every seventh has its
/// samples outside `[0, 500000]`.
fn filled(dir: &std::path::Path) -> Db {
    let db = Db::open(dir, options()).expect("open");
    {
        let mut app = db.appender();
        for i in 0..SERIES {
            let id = format!("{i:05}");
            let labels = Labels::from_pairs([("__name__", "m"), ("id", id.as_str())]);
            let base = if i % 7 == 0 { 1_000_000 } else { 0 };
            for k in 0..(i % 5 + 1) {
                let t = base + k as i64 * 1000;
                app.append(&labels, t, (i * 10 + k) as f64).expect("append");
            }
        }
        app.commit().expect("commit");
    }
    db
}

type Got = Vec<(String, Vec<(i64, f64)>)>;

fn want() -> Got {
    (0..SERIES)
        .filter(|i| i % 7 != 0)
        .map(|i| {
            let samples = (0..(i % 5 + 1))
                .map(|k| (k as i64 * 1000, (i * 10 + k) as f64))
                .collect();
            (format!("{i:05}"), samples)
        })
        .collect()
}

/// Reads the select of every `m` series, sleeping `pause` every 200.
fn read(db: &Db, pause: std::time::Duration) -> Got {
    let q = db.querier(0, 500_000).expect("querier");
    q.select(&[Matcher::equal("__name__", "m")])
        .expect("select")
        .enumerate()
        .map(|(n, s)| {
            if n % 200 == 199 {
                std::thread::sleep(pause);
            }
            let s = s.expect("series");
            let id = s.labels.get("id").unwrap_or_default().to_string();
            (id, s.samples.collect())
        })
        .collect()
}

#[test]
fn large_selects_keep_order_and_every_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = filled(dir.path());
    assert_eq!(read(&db, std::time::Duration::ZERO), want());
    // The newest sample of each.
    let q = db.querier(0, 500_000).expect("querier");
    let latest: Got = q
        .select_latest(&[Matcher::equal("__name__", "m")])
        .expect("select")
        .map(|s| {
            let s = s.expect("series");
            let id = s.labels.get("id").unwrap_or_default().to_string();
            (id, s.samples.collect())
        })
        .collect();
    let want_latest: Got = want()
        .into_iter()
        .map(|(id, samples)| (id, samples[samples.len() - 1..].to_vec()))
        .collect();
    assert_eq!(latest, want_latest);
}

#[test]
fn slow_early_dropped_and_concurrent_large_selects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = filled(dir.path());
    // Slowly: the decoding threads run their limit ahead and wait.
    assert_eq!(read(&db, std::time::Duration::from_millis(5)), want());
    // Dropped after a few series, many times: nothing waits on it.
    for _ in 0..20 {
        let q = db.querier(0, 500_000).expect("querier");
        let first: Vec<_> = q
            .select(&[Matcher::equal("__name__", "m")])
            .expect("select")
            .take(3)
            .map(|s| {
                s.expect("series")
                    .labels
                    .get("id")
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(first, ["00001", "00002", "00003"]);
    }
    // Two at once, from two threads.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| read(&db, std::time::Duration::ZERO));
        let b = scope.spawn(|| read(&db, std::time::Duration::from_millis(1)));
        (a.join().expect("reader a"), b.join().expect("reader b"))
    });
    assert_eq!(a, want());
    assert_eq!(b, want());
    // Every decoding thread ends (the other test in this file may still
    // be starting some: wait for both to be done).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while decoding_threads() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "decoding threads still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Threads of this process named as a select's helpers (0 where /proc
/// is missing).
fn decoding_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| matches!(name.trim(), "osprey-decode" | "osprey-select"))
        .count()
}
