//! `tsdb::verify` on real files: a clean directory has no problems; a
//! damaged chunk, a missing chunk segment and a torn WAL tail are each one
//! problem naming the file; `Db::open` moves the damaged blocks to
//! `corrupted/` and opens with the rest.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher};
use std::path::{Path, PathBuf};
use tsdb::{Db, DbOptions};

const RANGE: i64 = 1000;

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

/// One sample every 100 ms in `[from, to)` for 3 series of `job`, cut
/// into a block.
fn block(db: &Db, job: &str, from: i64, to: i64) -> PathBuf {
    let mut app = db.appender();
    for t in (from..to).step_by(100) {
        for i in 0..3 {
            let labels =
                Labels::from_pairs([("__name__", "up"), ("job", job), ("i", &i.to_string())]);
            app.append(&labels, t, t as f64).unwrap();
        }
    }
    app.commit().unwrap();
    db.cut_head(to).unwrap();
    db.blocks()
        .iter()
        .find(|b| b.meta().min_time == from)
        .unwrap()
        .dir()
        .to_path_buf()
}

fn count(db: &Db, job: &str) -> usize {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    q.select(&[Matcher::equal("job", job)])
        .unwrap()
        .map(|s| s.unwrap().samples.count())
        .sum()
}

#[test]
fn damage_is_reported_once_each_and_damaged_blocks_are_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let good = block(&db, "good", 0, 1000);
    let flipped = block(&db, "flipped", 1000, 2000);
    let missing = block(&db, "missing", 2000, 3000);
    drop(db);

    let report = tsdb::verify::verify_data_dir(dir.path());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.blocks, 3);
    assert_eq!(report.series, 9);
    assert!(report.chunks >= 9);

    // A flipped byte inside the chunk data (past the 8-byte header and the
    // first record's encoding and length bytes).
    let segment = flipped.join("chunks").join("000001");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[12] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    // A chunk segment that is gone.
    std::fs::remove_file(missing.join("chunks").join("000001")).unwrap();
    // A torn frame at the WAL's end: a length that runs past the file.
    let wal = dir.path().join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    segments.sort();
    let last = segments.last().unwrap().clone();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 2, 1]);
    std::fs::write(&last, &bytes).unwrap();

    let report = tsdb::verify::verify_data_dir(dir.path());
    let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&*flipped.to_string_lossy()) && l.contains("CRC mismatch")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&*missing.to_string_lossy()) && l.contains("000001")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&*last.to_string_lossy()) && l.contains("WAL frame")),
        "{lines:#?}"
    );

    // Opening moves the two damaged blocks aside and serves the third.
    let db = open(dir.path());
    assert_eq!(db.blocks().len(), 1);
    assert_eq!(count(&db, "good"), 30);
    assert_eq!(count(&db, "flipped"), 0);
    drop(db);
    assert!(good.exists());
    for block in [&flipped, &missing] {
        assert!(!block.exists());
        let moved = dir
            .path()
            .join(tsdb::verify::CORRUPTED_DIR)
            .join(block.file_name().unwrap());
        assert!(moved.join("meta.json").exists(), "{}", moved.display());
    }
    // The open repaired the WAL's tail; what is left verifies clean and
    // lists the moved blocks.
    let report = tsdb::verify::verify_data_dir(dir.path());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.quarantined.len(), 2);
}
