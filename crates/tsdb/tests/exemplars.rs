//! Exemplars through the database: staged with samples, logged to the WAL,
//! replayed on open (also from a checkpoint after a head cut), evicted
//! oldest first when the store is full, refused for unknown series.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use model::exemplar::Exemplar;
use model::storage::{Appendable, Storage};
use model::{Labels, Matcher};
use tsdb::{Db, DbOptions};

fn open(dir: &std::path::Path) -> Db {
    let opts = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: 1000,
        wal_segment_size: 1 << 16,
        fsync: false,
    };
    Db::open(dir, opts).expect("open")
}

fn exemplar(trace: &str, value: f64, t: i64) -> Exemplar {
    Exemplar {
        labels: Labels::from_pairs([("trace_id", trace)]),
        value,
        timestamp_ms: t,
        has_timestamp: true,
    }
}

/// (series name, [(trace_id, t)]) of everything stored.
fn stored(db: &Db) -> Vec<(String, Vec<(String, i64)>)> {
    let all = vec![vec![
        Matcher::new(model::MatchOp::RegexMatch, "__name__", ".+").unwrap(),
    ]];
    db.select_exemplars(i64::MIN, i64::MAX, &all)
        .expect("select")
        .into_iter()
        .map(|s| {
            (
                s.series_labels.get("__name__").unwrap().to_string(),
                s.exemplars
                    .iter()
                    .map(|e| {
                        (
                            e.labels.get("trace_id").unwrap_or("").to_string(),
                            e.timestamp_ms,
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn exemplars_survive_a_restart_and_refuse_what_prometheus_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Labels::from_pairs([("__name__", "a_total"), ("job", "x")]);
    let b = Labels::from_pairs([("__name__", "b_bucket"), ("le", "1")]);
    {
        let db = open(dir.path());
        let mut app = db.appender();
        app.append(&a, 100, 1.0).unwrap();
        app.append_exemplar(&a, exemplar("t1", 1.0, 90)).unwrap();
        app.append(&b, 100, 1.0).unwrap();
        app.append_exemplar(&b, exemplar("t2", 0.5, 95)).unwrap();
        app.commit().unwrap();

        let mut app = db.appender();
        // The series' newest again: dropped without an error.
        app.append_exemplar(&a, exemplar("t1", 1.0, 90)).unwrap();
        let error = app
            .append_exemplar(&a, exemplar("t0", 1.0, 80))
            .expect_err("older than the newest");
        assert_eq!(error.to_string(), "out of order exemplar");
        let long = "x".repeat(200);
        let error = app
            .append_exemplar(&a, exemplar(&long, 1.0, 200))
            .expect_err("too long");
        assert_eq!(
            error.to_string(),
            "label length for exemplar exceeds maximum of 128 UTF-8 characters"
        );
        let unknown = Labels::from_pairs([("__name__", "nobody")]);
        assert!(
            app.append_exemplar(&unknown, exemplar("t", 1.0, 1))
                .is_err()
        );
        // An exemplar alone, for a series stored before.
        app.append_exemplar(&a, exemplar("t3", 2.0, 110)).unwrap();
        app.commit().unwrap();
        assert_eq!(
            stored(&db),
            vec![
                (
                    "a_total".to_string(),
                    vec![("t1".to_string(), 90), ("t3".to_string(), 110)]
                ),
                ("b_bucket".to_string(), vec![("t2".to_string(), 95)]),
            ]
        );
        let c = db.exemplar_counters();
        assert_eq!(
            (
                c.appended_total,
                c.in_storage,
                c.series_in_storage,
                c.max_exemplars
            ),
            (3, 3, 2, 100_000)
        );
    }
    let db = open(dir.path());
    assert_eq!(stored(&db).len(), 2);
    assert_eq!(stored(&db)[0].1.len(), 2);
    let c = db.exemplar_counters();
    assert_eq!((c.in_storage, c.series_in_storage), (3, 2));
}

#[test]
fn a_full_store_evicts_the_oldest_and_resizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    assert!(db.set_max_exemplars(3));
    let a = Labels::from_pairs([("__name__", "a_total")]);
    for t in 1..=5 {
        let mut app = db.appender();
        app.append(&a, t, t as f64).unwrap();
        app.append_exemplar(&a, exemplar(&format!("t{t}"), 1.0, t))
            .unwrap();
        app.commit().unwrap();
    }
    let traces: Vec<String> = stored(&db)[0].1.iter().map(|e| e.0.clone()).collect();
    assert_eq!(traces, ["t3", "t4", "t5"]);
    let c = db.exemplar_counters();
    assert_eq!((c.appended_total, c.in_storage, c.max_exemplars), (5, 3, 3));
    assert!(db.set_max_exemplars(0));
    assert!(stored(&db).is_empty());
    let mut app = db.appender();
    app.append(&a, 10, 1.0).unwrap();
    // Disabled: accepted and forgotten.
    app.append_exemplar(&a, exemplar("t10", 1.0, 10)).unwrap();
    app.commit().unwrap();
    assert!(stored(&db).is_empty());
}

#[test]
fn a_checkpoint_keeps_the_exemplars_of_live_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Labels::from_pairs([("__name__", "a_total")]);
    {
        let db = open(dir.path());
        // Block range 1s: samples up to 5s, then a cut at 3s.
        for t in (0..=5000).step_by(500) {
            let mut app = db.appender();
            app.append(&a, t, t as f64).unwrap();
            app.append_exemplar(&a, exemplar(&format!("t{t}"), 1.0, t))
                .unwrap();
            app.commit().unwrap();
        }
        db.cut_head(3000).expect("cut");
    }
    let db = open(dir.path());
    let times: Vec<i64> = stored(&db)[0].1.iter().map(|e| e.1).collect();
    // The checkpoint dropped exemplars before the cut; the rest replayed.
    assert_eq!(times, [3000, 3500, 4000, 4500, 5000]);
}

#[test]
fn a_store_configured_above_the_default_keeps_everything_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Labels::from_pairs([("__name__", "a_total")]);
    let n = tsdb::db::DEFAULT_MAX_EXEMPLARS as i64 + 20_000;
    {
        let db = open(dir.path());
        assert!(db.set_max_exemplars(150_000));
        let mut app = db.appender();
        app.append(&a, 0, 0.0).unwrap();
        for t in 0..n {
            app.append_exemplar(&a, exemplar("t", t as f64, t)).unwrap();
        }
        app.commit().unwrap();
        assert_eq!(db.exemplar_counters().in_storage, n as u64);
    }
    let db = open(dir.path());
    // As the server does once its configuration is read.
    assert!(db.set_max_exemplars(150_000));
    let c = db.exemplar_counters();
    assert_eq!((c.in_storage, c.max_exemplars), (n as u64, 150_000));
    let all = vec![vec![Matcher::equal("__name__", "a_total")]];
    let stored = db.select_exemplars(i64::MIN, i64::MAX, &all).unwrap();
    assert_eq!(stored[0].exemplars.first().map(|e| e.timestamp_ms), Some(0));
    assert_eq!(stored[0].exemplars.len(), n as usize);
}
