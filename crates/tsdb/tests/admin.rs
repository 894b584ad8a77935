//! Deletes, tombstones, cleaning and snapshots through `Db`, on real files:
//! deleted samples stay deleted in the head, after WAL replay, in blocks,
//! across restarts, through compaction and in snapshots; the bytes of a
//! deleted series leave the block files once they are rewritten.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use model::storage::{Appendable, Queryable, SnapshotHead, Storage, StorageErrorKind};
use model::{Labels, MatchOp, Matcher};
use std::path::Path;
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

fn labels(user: &str, i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "requests_total"),
        ("user", user),
        ("i", &i.to_string()),
    ])
}

/// One sample every 100 ms in `[from, to)` for `n` series of `user`.
fn write(db: &Db, user: &str, n: usize, from: i64, to: i64) {
    let mut app = db.appender();
    for t in (from..to).step_by(100) {
        for i in 0..n {
            app.append(&labels(user, i), t, t as f64).unwrap();
        }
    }
    app.commit().unwrap();
}

fn user(value: &str) -> Matcher {
    Matcher::equal("user", value)
}

fn any_name() -> Matcher {
    Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap()
}

/// Every sample of the series matching `m`, by labels, over all time.
fn read(db: &Db, m: &Matcher) -> Vec<(Labels, Vec<i64>)> {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    q.select(std::slice::from_ref(m))
        .unwrap()
        .map(|s| {
            let s = s.unwrap();
            (s.labels, s.samples.map(|(t, _)| t).collect())
        })
        .collect()
}

fn times(db: &Db, user_value: &str, i: usize) -> Vec<i64> {
    let want = labels(user_value, i);
    read(db, &user(user_value))
        .into_iter()
        .find(|(l, _)| *l == want)
        .map(|(_, t)| t)
        .unwrap_or_default()
}

fn users(db: &Db) -> Vec<String> {
    db.querier(i64::MIN, i64::MAX)
        .unwrap()
        .label_values("user", &[])
        .unwrap()
}

/// Every byte of every file under `dir`, for looking for a string.
fn contains_bytes(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(contains_bytes(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

#[test]
fn head_delete_hides_samples_and_keeps_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db, "ann", 2, 0, 1000);
    db.delete_series(&[user("ann"), Matcher::equal("i", "0")], 200, 499)
        .unwrap();
    let left: Vec<i64> = (0..1000)
        .step_by(100)
        .filter(|t| !(200..=499).contains(t))
        .collect();
    assert_eq!(times(&db, "ann", 0), left);
    assert_eq!(times(&db, "ann", 1).len(), 10, "other series untouched");
    // A sample written into the deleted range afterwards is new data.
    write(&db, "ann", 1, 300, 301);
    let mut with_new = left.clone();
    with_new.push(300);
    with_new.sort();
    assert_eq!(times(&db, "ann", 0), with_new);
    // Both survive a restart: the WAL replays the delete at its place.
    drop(db);
    let db = open(dir.path());
    assert_eq!(times(&db, "ann", 0), with_new);
    assert_eq!(times(&db, "ann", 1).len(), 10);
}

#[test]
fn a_series_deleted_whole_leaves_every_lookup_and_comes_back_when_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db, "bob", 1, 0, 500);
    write(&db, "eve", 1, 0, 500);
    db.delete_series(&[user("bob")], i64::MIN, i64::MAX)
        .unwrap();
    assert!(read(&db, &user("bob")).is_empty());
    assert_eq!(users(&db), vec!["eve"]);
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(q.label_values("user", &[any_name()]).unwrap(), vec!["eve"]);
    drop(q);
    // Gone from the head, not just empty.
    let stats = db.head_stats(&model::storage::StatsRequest::all(10));
    assert_eq!(stats.num_series, 1, "{stats:?}");

    // Written again, the series gets a new id in the head; replay must map
    // the later records to it, before and after a checkpoint.
    write(&db, "bob", 1, 600, 800);
    drop(db);
    let db = open(dir.path());
    assert_eq!(times(&db, "bob", 0), vec![600, 700]);
    write(&db, "bob", 1, 2500, 2600);
    db.maintain(2600).unwrap();
    assert!(!db.blocks().is_empty(), "the head was cut");
    drop(db);
    let db = open(dir.path());
    assert_eq!(times(&db, "bob", 0), vec![600, 700, 2500]);
    assert_eq!(times(&db, "eve", 0), vec![0, 100, 200, 300, 400]);
}

#[test]
fn block_tombstones_survive_restarts_and_hide_only_their_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db, "cat", 3, 0, 3000);
    db.maintain(3000).unwrap();
    let blocks = db.blocks();
    assert!(!blocks.is_empty());
    db.delete_series(&[user("cat"), Matcher::equal("i", "1")], 100, 700)
        .unwrap();
    let with_tombstones: Vec<_> = db
        .blocks()
        .into_iter()
        .filter(|b| !b.tombstones().is_empty())
        .collect();
    assert_eq!(with_tombstones.len(), 1);
    assert!(with_tombstones[0].dir().join("tombstones").exists());
    let expect: Vec<i64> = (0..3000)
        .step_by(100)
        .filter(|t| !(100..=700).contains(t))
        .collect();
    assert_eq!(times(&db, "cat", 1), expect);
    // A sample written later at a deleted time lives in the head (and in
    // later blocks); the block's tombstone does not hide it.
    write(&db, "cat", 2, 200, 201);
    let mut with_new = expect.clone();
    with_new.insert(1, 200);
    assert_eq!(times(&db, "cat", 1), with_new);
    drop(db);
    let db = open(dir.path());
    assert_eq!(times(&db, "cat", 1), with_new);
    assert_eq!(times(&db, "cat", 0).len(), 30);
}

#[test]
fn a_corrupt_tombstones_file_keeps_its_block_closed_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db, "dan", 2, 0, 1000);
    db.cut_head(1000).unwrap();
    db.delete_series(&[user("dan"), Matcher::equal("i", "0")], 0, 400)
        .unwrap();
    let block_dir = db.blocks()[0].dir().to_path_buf();
    drop(db);
    let file = block_dir.join("tombstones");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let error = tsdb::block::Block::open(&block_dir).unwrap_err();
    assert_eq!(error.kind(), tsdb::block::BlockErrorKind::Corrupt);
    let message = error.to_string();
    assert!(
        message.contains("tombstones") && message.contains("CRC mismatch"),
        "{message}"
    );
    assert!(message.contains(&file.display().to_string()), "{message}");
    // The database opens, without the block: its deleted samples must not
    // come back with a tombstones file that cannot be read.
    let db = open(dir.path());
    assert!(db.blocks().is_empty());
    assert!(times(&db, "dan", 0).is_empty());
    // Kept for inspection, moved aside so it is not opened again.
    assert!(!block_dir.exists());
    let moved = dir
        .path()
        .join(tsdb::verify::CORRUPTED_DIR)
        .join(block_dir.file_name().unwrap());
    assert!(moved.join("tombstones").exists(), "{}", moved.display());
}

#[test]
fn compaction_and_cleaning_drop_deleted_samples_and_empty_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    // Three level-1 blocks, one of them of `gus` alone.
    write(&db, "fay", 2, 0, 1000);
    db.cut_head(1000).unwrap();
    write(&db, "gus", 2, 1000, 2000);
    db.cut_head(2000).unwrap();
    write(&db, "fay", 2, 2000, 3000);
    db.cut_head(3000).unwrap();
    assert_eq!(db.blocks().len(), 3);
    let samples_before: u64 = db.blocks().iter().map(|b| b.meta().stats.num_samples).sum();

    db.delete_series(&[user("gus")], i64::MIN, i64::MAX)
        .unwrap();
    db.delete_series(&[user("fay"), Matcher::equal("i", "0")], 0, 499)
        .unwrap();
    assert!(read(&db, &user("gus")).is_empty());
    assert_eq!(users(&db), vec!["fay"]);

    db.clean_tombstones().unwrap();
    let blocks = db.blocks();
    // The block of `gus` alone is gone; the others have no tombstones.
    assert_eq!(blocks.len(), 2);
    assert!(blocks.iter().all(|b| b.tombstones().is_empty()));
    let samples_after: u64 = blocks.iter().map(|b| b.meta().stats.num_samples).sum();
    assert_eq!(samples_after, samples_before - 20 - 5);
    assert!(
        contains_bytes(dir.path(), b"gus")
            .iter()
            .all(|path| path.contains("/wal/"))
    );
    let fay0: Vec<i64> = (500..1000)
        .step_by(100)
        .chain((2000..3000).step_by(100))
        .collect();
    assert_eq!(times(&db, "fay", 0), fay0);

    // Compaction merges what is left into one block, still without them.
    db.delete_series(&[user("fay"), Matcher::equal("i", "1")], 2000, 2999)
        .unwrap();
    db.maintain(10_000).unwrap();
    db.compact_all().unwrap();
    assert!(db.blocks().iter().all(|b| b.tombstones().is_empty()));
    assert_eq!(
        times(&db, "fay", 1),
        (0..1000).step_by(100).collect::<Vec<_>>()
    );
    drop(db);
    let db = open(dir.path());
    assert_eq!(times(&db, "fay", 0), fay0);
}

#[test]
fn maintenance_rewrites_a_block_whose_tombstones_name_many_series() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db, "hal", 10, 0, 1000);
    db.cut_head(1000).unwrap();
    // One series of ten is 10%, above the 5% threshold.
    db.delete_series(&[Matcher::equal("i", "3")], 0, 100)
        .unwrap();
    assert_eq!(db.blocks()[0].tombstones().num_series(), 1);
    db.maintain(1000).unwrap();
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    assert!(blocks[0].tombstones().is_empty());
    assert_eq!(blocks[0].meta().stats.num_samples, 100 - 2);
    assert_eq!(blocks[0].meta().compaction.level, 1);
}

#[test]
fn deleting_needs_a_matcher_that_selects_something() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let matches_empty = Matcher::new(MatchOp::RegexMatch, "user", ".*").unwrap();
    let error = db.delete_series(&[matches_empty], 0, 1).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::InvalidInput);
    assert!(db.delete_series(&[], 0, 1).is_err());
    // An empty range deletes nothing and is not an error.
    write(&db, "ivy", 1, 0, 300);
    db.delete_series(&[user("ivy")], 300, 0).unwrap();
    assert_eq!(times(&db, "ivy", 0), vec![0, 100, 200]);
}

/// Inode of a file, to tell a hard link from a copy.
fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

#[test]
fn snapshots_link_blocks_write_the_head_and_open_as_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db, "jon", 2, 0, 1000);
    db.cut_head(1000).unwrap();
    db.delete_series(&[user("jon"), Matcher::equal("i", "1")], 0, 300)
        .unwrap();
    write(&db, "kim", 1, 1000, 1500);
    db.delete_series(&[user("kim")], 1200, 1200).unwrap();

    let admin = db.admin().expect("a TSDB has admin");
    let name = admin.snapshot(SnapshotHead::Include).unwrap();
    let snapshot = dir.path().join("snapshots").join(&name);
    assert!(snapshot.is_dir());
    let (stamp, random) = name.split_once('-').unwrap();
    assert_eq!(stamp.len(), 16, "{name}");
    assert!(
        stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'),
        "{name}"
    );
    assert!(random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()));

    // The block's files are the live block's files, not copies.
    let block = &db.blocks()[0];
    let linked = snapshot.join(&block.meta().ulid);
    for file in ["meta.json", "index", "tombstones", "chunks/000001"] {
        assert_eq!(
            inode(&linked.join(file)),
            inode(&block.dir().join(file)),
            "{file}"
        );
    }

    // A later delete replaces the live tombstones, not the snapshot's.
    db.delete_series(&[user("jon")], i64::MIN, i64::MAX)
        .unwrap();
    let copy = open(&snapshot);
    assert_eq!(times(&copy, "jon", 1), vec![400, 500, 600, 700, 800, 900]);
    assert_eq!(times(&copy, "jon", 0).len(), 10);
    assert_eq!(times(&copy, "kim", 0), vec![1000, 1100, 1300, 1400]);
    drop(copy);

    let name = admin.snapshot(SnapshotHead::Skip).unwrap();
    let copy = open(&dir.path().join("snapshots").join(name));
    assert!(read(&copy, &user("kim")).is_empty(), "the head was skipped");
    assert!(
        read(&copy, &user("jon")).is_empty(),
        "deleted before this one"
    );
    drop(copy);

    // The live database ignores its snapshots directory.
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.blocks().len(), 1);
    assert_eq!(times(&db, "kim", 0), vec![1000, 1100, 1300, 1400]);
}

#[test]
fn a_block_series_whose_every_sample_is_deleted_piecewise_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    write(&db, "lou", 1, 0, 1000);
    write(&db, "max", 1, 0, 1000);
    db.cut_head(1000).unwrap();
    // One delete per sample: the tombstones never cover the chunk's whole
    // span, so only decoding shows that nothing is left.
    for t in (0..1000).step_by(100) {
        db.delete_series(&[user("lou")], t, t + 10).unwrap();
    }
    let tombstones = db.blocks()[0].tombstones();
    assert_eq!(tombstones.iter().next().unwrap().1.as_slice().len(), 10);
    assert!(read(&db, &user("lou")).is_empty());
    assert_eq!(users(&db), vec!["max"]);
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(q.label_values("user", &[any_name()]).unwrap(), vec!["max"]);
    assert!(q.label_names(&[user("lou")]).unwrap().is_empty());
    drop(q);
    db.clean_tombstones().unwrap();
    assert!(contains_bytes(db.blocks()[0].dir(), b"lou").is_empty());
}
