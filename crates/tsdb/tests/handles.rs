//! Series handles: an appender hands one out, later appenders stage by it
//! without a label lookup, and a handle to a series that the head dropped
//! (or to another store's series) is refused so the caller appends by
//! labels and nothing is lost.

use model::storage::{Appendable, Queryable};
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

fn values(db: &Db) -> Vec<(i64, f64)> {
    selected(db, &[Matcher::equal("__name__", "m")])
}

/// Every sample of the series `matchers` select, series after series.
fn selected(db: &Db, matchers: &[Matcher]) -> Vec<(i64, f64)> {
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    q.select(matchers)
        .expect("select")
        .flat_map(|s| s.expect("series").samples.collect::<Vec<_>>())
        .collect()
}

#[test]
fn handles_append_to_the_same_series_and_go_stale_when_it_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let labels = Labels::from_pairs([("__name__", "m"), ("job", "a")]);

    let mut app = db.appender();
    let handle = app
        .append_with_handle(&labels, 100, 1.0)
        .expect("append")
        .expect("the head hands out handles");
    app.commit().expect("commit");

    let mut app = db.appender();
    assert!(
        app.append_handle(&handle, 200, 2.0)
            .expect("append by handle")
    );
    app.commit().expect("commit");
    assert_eq!(values(&db), [(100, 1.0), (200, 2.0)]);

    // A handle staged but rolled back stores nothing.
    let mut app = db.appender();
    assert!(
        app.append_handle(&handle, 300, 3.0)
            .expect("append by handle")
    );
    app.rollback();
    assert_eq!(values(&db).len(), 2);

    // Cutting the head moves the samples to a block and drops the now
    // empty series: the old handle is refused, appending by labels works.
    db.cut_head(1000).expect("cut");
    let mut app = db.appender();
    assert!(!app.append_handle(&handle, 1100, 4.0).expect("stale handle"));
    app.append(&labels, 1100, 4.0).expect("append by labels");
    app.commit().expect("commit");
    assert_eq!(values(&db), [(100, 1.0), (200, 2.0), (1100, 4.0)]);

    // Another store's handle is refused too.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = open(other_dir.path());
    let mut app = other.appender();
    assert!(
        !app.append_handle(&handle, 1200, 5.0)
            .expect("foreign handle")
    );
    app.rollback();
}

#[test]
fn a_held_handle_keeps_its_series_through_a_head_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let labels = Labels::from_pairs([("__name__", "m"), ("job", "b")]);
    let mut app = db.appender();
    let handle = app
        .append_with_handle(&labels, 100, 1.0)
        .expect("append")
        .expect("handle");
    app.commit().expect("commit");

    // An appender holds the series when the cut runs: the series stays,
    // and the staged sample lands in it.
    let mut app = db.appender();
    assert!(
        app.append_handle(&handle, 1500, 2.0)
            .expect("append by handle")
    );
    db.cut_head(1000).expect("cut");
    app.commit().expect("commit");
    assert_eq!(values(&db), [(100, 1.0), (1500, 2.0)]);
    let mut app = db.appender();
    assert!(app.append_handle(&handle, 1600, 3.0).expect("still live"));
    app.commit().expect("commit");
    assert_eq!(values(&db).len(), 3);
}

fn job_values(db: &Db, job: &str) -> Vec<(i64, f64)> {
    selected(
        db,
        &[Matcher::equal("__name__", "m"), Matcher::equal("job", job)],
    )
}

/// Samples of one series staged one after another (by handle and by
/// labels) share one hold and one lock: they still land in order, and a
/// rolled-back run gives its hold back, so the head can drop the series.
#[test]
fn runs_of_one_series_land_in_order_and_give_back_their_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let a = Labels::from_pairs([("__name__", "m"), ("job", "a")]);
    let b = Labels::from_pairs([("__name__", "m"), ("job", "b")]);

    let mut app = db.appender();
    let handle = app
        .append_with_handle(&a, 100, 1.0)
        .expect("append")
        .expect("handle");
    assert!(app.append_handle(&handle, 110, 2.0).expect("by handle"));
    app.append(&a, 120, 3.0).expect("by labels");
    app.append(&b, 100, 10.0).expect("another series");
    assert!(app.append_handle(&handle, 130, 4.0).expect("by handle"));
    app.append(&a, 140, 5.0).expect("by labels");
    app.commit().expect("commit");
    assert_eq!(
        job_values(&db, "a"),
        [(100, 1.0), (110, 2.0), (120, 3.0), (130, 4.0), (140, 5.0)]
    );
    assert_eq!(job_values(&db, "b"), [(100, 10.0)]);

    let mut app = db.appender();
    for t in [150, 160, 170] {
        assert!(app.append_handle(&handle, t, 6.0).expect("by handle"));
    }
    app.append(&a, 180, 7.0).expect("by labels");
    app.rollback();
    assert_eq!(job_values(&db, "a").len(), 5);

    // Nothing holds the series now: the cut drops both, and the handle
    // is refused.
    db.cut_head(1000).expect("cut");
    let mut app = db.appender();
    assert!(!app.append_handle(&handle, 1100, 8.0).expect("stale handle"));
    app.rollback();
}
