//! A head cut moves samples from the head into a new block. A query that
//! was under way (querier made, or series selected but not yet read) must
//! still see every sample: in the head or in the new block, never in
//! neither. The crash test's final read raced the maintenance that runs
//! right after start and came back short by the head's samples.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher};
use std::path::Path;
use tsdb::{Db, DbOptions};

const RANGE: i64 = 1000;
const SERIES: usize = 20;

fn open(dir: &Path) -> Db {
    let opts = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: RANGE,
        wal_segment_size: 1 << 16,
        fsync: false,
    };
    Db::open(dir, opts).unwrap()
}

/// `SERIES` series with one sample every 100 ms in `[0, 2000)`.
fn write(db: &Db) {
    let mut app = db.appender();
    for t in (0..2000).step_by(100) {
        for i in 0..SERIES {
            let labels = Labels::from_pairs([("__name__", "cut_test"), ("i", &i.to_string())]);
            app.append(&labels, t, t as f64).unwrap();
        }
    }
    app.commit().unwrap();
}

fn counts(set: model::storage::SeriesSet) -> Vec<usize> {
    set.map(|s| s.unwrap().samples.count()).collect()
}

fn matcher() -> Vec<Matcher> {
    vec![Matcher::equal("__name__", "cut_test")]
}

#[test]
fn a_querier_made_before_a_head_cut_reads_every_sample_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db);
    let querier = db.querier(i64::MIN, i64::MAX).unwrap();
    db.cut_head(1000).unwrap();
    assert_eq!(db.blocks().len(), 1, "the cut wrote a block");
    assert_eq!(
        counts(querier.select(&matcher()).unwrap()),
        vec![20; SERIES]
    );
    // And a querier made after the cut.
    let after = db.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(counts(after.select(&matcher()).unwrap()), vec![20; SERIES]);
}

#[test]
fn series_selected_before_a_head_cut_read_every_sample_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db);
    let querier = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut set = querier.select(&matcher()).unwrap();
    // One series read before the cut, the rest after it.
    let first = set.next().unwrap().unwrap().samples.count();
    db.cut_head(1000).unwrap();
    let mut got = vec![first];
    got.extend(counts(set));
    assert_eq!(got, vec![20; SERIES]);
}
