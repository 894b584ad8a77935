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

/// Every sample of `name`'s series, oldest first.
fn samples_of(db: &Db, name: &str) -> Vec<i64> {
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    let mut out: Vec<i64> = q
        .select(&[Matcher::equal("__name__", name)])
        .expect("select")
        .flat_map(|s| {
            s.expect("series")
                .samples
                .map(|(t, _)| t)
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Whether any block directory's files hold `needle`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    fn walk(path: &std::path::Path, needle: &[u8]) -> bool {
        let Ok(entries) = std::fs::read_dir(path) else {
            return false;
        };
        entries.flatten().any(|e| {
            let p = e.path();
            if p.ends_with("wal") {
                return false;
            }
            if p.is_dir() {
                walk(&p, needle)
            } else {
                std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            }
        })
    }
    walk(dir, needle)
}

/// Per-series retention: the first rule that matches a series decides;
/// others keep the global retention (here: forever). Expired samples stop
/// being returned at the next maintenance and leave the disk with the
/// block rewrite it triggers.
#[test]
fn retention_rules_apply_per_series_first_match_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), None, None);
    let series = [
        ("debug_calls", "a"),
        ("debug_calls", "b"),
        ("revenue", "a"),
        ("other", "a"),
        ("kept", "z"),
    ];
    for t in (0..20_000).step_by(100) {
        let mut app = db.appender();
        for (name, s) in series {
            let labels = Labels::from_pairs([("__name__", name), ("s", s)]);
            app.append(&labels, t, 1.0).expect("append");
        }
        app.commit().expect("commit");
        if t % 1000 == 0 {
            db.maintain(t).expect("maintain");
        }
    }
    db.maintain(20_000).expect("maintain");
    let all: Vec<i64> = (0..20_000).step_by(100).collect();
    assert_eq!(samples_of(&db, "debug_calls").len(), 2 * all.len());
    assert!(on_disk(dir.path(), b"debug_calls"));

    db.set_retention_rules(vec![
        // First match wins: revenue is kept 15 s although the second rule
        // (every series with `s="a"`) would give it 3 s.
        tsdb::db::RetentionRule {
            matchers: vec![Matcher::equal("__name__", "revenue")],
            retention_ms: 15_000,
        },
        tsdb::db::RetentionRule {
            matchers: vec![Matcher::equal("s", "a")],
            retention_ms: 3_000,
        },
        tsdb::db::RetentionRule {
            matchers: vec![Matcher::equal("__name__", "debug_calls")],
            retention_ms: 3_000,
        },
    ]);
    db.maintain(20_000).expect("maintain");
    // The cutoff is newest (19 900) minus the retention, rounded down to
    // a block range (1 000).
    let cutoff = |retention: i64| (19_900 - retention).div_euclid(RANGE) * RANGE;
    let kept = |retention: i64| -> Vec<i64> {
        all.iter()
            .copied()
            .filter(|&t| t >= cutoff(retention))
            .collect()
    };
    // Samples still in the head (not yet in a block) are not affected.
    let head_min = db.head().min_time();
    let expect = |retention: i64, copies: usize| -> Vec<i64> {
        let mut v: Vec<i64> = all
            .iter()
            .copied()
            .filter(|&t| t >= cutoff(retention) || t >= head_min)
            .flat_map(|t| std::iter::repeat_n(t, copies))
            .collect();
        v.sort_unstable();
        v
    };
    assert!(head_min > cutoff(3_000), "head starts at {head_min}");
    assert_eq!(kept(3_000).first(), Some(&16_000));
    assert_eq!(samples_of(&db, "debug_calls"), expect(3_000, 2));
    assert_eq!(samples_of(&db, "revenue"), expect(15_000, 1));
    assert_eq!(samples_of(&db, "other"), expect(3_000, 1));
    // No rule matches `kept`: the global retention (forever) applies.
    assert_eq!(samples_of(&db, "kept"), all);

    // The blocks holding only expired samples were rewritten without
    // them; the rewrite left no tombstones behind.
    for block in db.blocks() {
        assert!(block.tombstones().is_empty(), "{}", block.meta().ulid);
        if block.meta().max_time <= cutoff(3_000) {
            let index = std::fs::read(block.dir().join("index")).expect("index");
            assert!(
                !index.windows(11).any(|w| w == b"debug_calls"),
                "block {} still names debug_calls",
                block.meta().ulid
            );
        }
    }
    // A second round changes nothing.
    let before: Vec<String> = db.blocks().iter().map(|b| b.meta().ulid.clone()).collect();
    db.maintain(20_000).expect("maintain");
    let after: Vec<String> = db.blocks().iter().map(|b| b.meta().ulid.clone()).collect();
    assert_eq!(before, after);
}
