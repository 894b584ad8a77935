//! Retention by time and by size, and level compaction, through `Db`.

use model::storage::{Appendable, Queryable, Storage};
use model::{Labels, Matcher};
use tsdb::{Db, DbOptions};

const RANGE: i64 = 1000;

fn open(dir: &std::path::Path, time: Option<i64>, size: Option<u64>) -> Db {
    let opts = DbOptions {
        retention_time_ms: time,
        retention_size_bytes: size,
        block_range_ms: RANGE,
        wal_segment_size: 1 << 16,
        fsync: false,
    };
    Db::open(dir, opts).expect("open")
}

/// Appends one sample every 100 ms for each of 20 series, from `from` to
/// `to` (exclusive), running maintenance as time passes.
fn fill(db: &Db, from: i64, to: i64) {
    for t in (from..to).step_by(100) {
        let mut app = db.appender();
        for s in 0..20 {
            let labels = Labels::from_pairs([("__name__", "m"), ("s", &s.to_string())]);
            app.append(&labels, t, t as f64).expect("append");
        }
        app.commit().expect("commit");
        if t % 1000 == 0 {
            db.maintain(t).expect("maintain");
        }
    }
}

fn oldest_sample(db: &Db) -> Option<i64> {
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    q.select(&[Matcher::equal("__name__", "m")])
        .expect("select")
        .filter_map(|s| s.expect("series").samples.next())
        .map(|(t, _)| t)
        .min()
}

#[test]
fn time_retention_deletes_whole_old_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), Some(5000), None);
    fill(&db, 0, 20_000);
    db.maintain(20_000).expect("maintain");
    let c = db.counters();
    assert!(c.blocks_deleted_by_retention_total > 0, "{c:?}");
    // Everything older than newest - 5 s is gone, in whole blocks: the
    // oldest surviving sample is within one block range of the cutoff.
    let oldest = oldest_sample(&db).expect("data left");
    let newest = 19_900;
    assert!(oldest > newest - 5000 - RANGE * 3, "oldest {oldest}");
    assert!(
        oldest <= newest - 5000 + RANGE,
        "deleted too much: oldest {oldest}"
    );
    for b in db.blocks() {
        assert!(
            b.meta().max_time > newest - 5000,
            "block {:?} should be gone",
            b.meta().ulid
        );
    }
    // Deleted blocks stay deleted across a restart.
    drop(db);
    let db = open(dir.path(), Some(5000), None);
    assert_eq!(oldest_sample(&db), Some(oldest));
}

#[test]
fn size_retention_keeps_total_under_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    // First learn how big the data is without a limit.
    let unlimited = open(dir.path(), None, None);
    fill(&unlimited, 0, 20_000);
    unlimited.maintain(20_000).expect("maintain");
    let total = unlimited.blocks_size();
    assert!(total > 0);
    drop(unlimited);

    let dir2 = tempfile::tempdir().expect("tempdir");
    let limit = total / 2;
    let db = open(dir2.path(), None, Some(limit));
    fill(&db, 0, 20_000);
    db.maintain(20_000).expect("maintain");
    let wal: u64 = std::fs::read_dir(dir2.path().join("wal"))
        .expect("wal")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert!(
        db.blocks_size() + wal <= limit,
        "blocks {} + wal {wal} > {limit}",
        db.blocks_size()
    );
    assert!(db.counters().blocks_deleted_by_retention_total > 0);
    // The newest data is still there.
    let q = db.querier(19_900, 19_900).expect("querier");
    assert_eq!(
        q.select(&[Matcher::equal("__name__", "m")])
            .expect("select")
            .count(),
        20
    );
}

#[test]
fn level_compaction_merges_adjacent_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), None, None);
    fill(&db, 0, 30_000);
    db.maintain(30_000).expect("maintain");
    let blocks = db.blocks();
    assert!(db.counters().compactions_total > 0);
    // Compacted blocks (3 x 1 s and up) exist, and none overlap.
    let mut ranges: Vec<(i64, i64)> = blocks
        .iter()
        .map(|b| (b.meta().min_time, b.meta().max_time))
        .collect();
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:?}");
    assert!(
        blocks.iter().any(|b| b.meta().compaction.level > 1),
        "no compacted block"
    );
    assert!(
        blocks
            .iter()
            .any(|b| b.meta().max_time - b.meta().min_time >= 3 * RANGE)
    );
    // And every sample is still there.
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    let n: usize = q
        .select(&[Matcher::equal("__name__", "m")])
        .expect("select")
        .map(|s| s.expect("series").samples.count())
        .sum();
    assert_eq!(n, 20 * 300);
}
