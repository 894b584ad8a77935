//! Native histograms through `Db` on real files: the same samples come
//! back from the head, after WAL replay (a restart without a clean
//! shutdown), from blocks after a head cut, after compaction and from a
//! snapshot; chunks are cut at counter resets and schema changes; a series
//! may switch from floats to histograms; staleness markers survive.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span};
use model::storage::{Appendable, Queryable, SnapshotHead};
use model::{Labels, Matcher};
use std::path::Path;
use tsdb::{Db, DbOptions};

const RANGE: i64 = 10_000;

fn open(dir: &Path) -> Db {
    Db::open(
        dir,
        DbOptions {
            retention_time_ms: None,
            retention_size_bytes: None,
            block_range_ms: RANGE,
            wal_segment_size: 1 << 16,
            fsync: false,
        },
    )
    .unwrap()
}

fn series(name: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", "api")])
}

/// A counter histogram after `i` scrapes: 5 positive buckets that grow.
fn histogram(i: u64, schema: i32) -> Histogram {
    let buckets = [i, 2 * i, 3 * i, i, i / 2];
    let count: u64 = buckets.iter().sum::<u64>() + i;
    let mut deltas = Vec::new();
    let mut previous = 0i64;
    for b in buckets {
        deltas.push(b as i64 - previous);
        previous = b as i64;
    }
    Histogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema,
        zero_threshold: 1e-128,
        zero_count: i,
        count,
        sum: i as f64 * 1.5,
        positive_spans: vec![
            Span {
                offset: -1,
                length: 3,
            },
            Span {
                offset: 1,
                length: 2,
            },
        ],
        negative_spans: vec![],
        positive_buckets: deltas,
        negative_buckets: vec![],
        custom_values: vec![],
    }
}

type Read = (Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>);

fn read(db: &Db, name: &str, mint: i64, maxt: i64) -> Read {
    let q = db.querier(mint, maxt).unwrap();
    let mut set = q.select(&[Matcher::equal("__name__", name)]).unwrap();
    match set.next() {
        Some(s) => {
            let s = s.unwrap();
            (s.samples.collect(), s.histograms.collect())
        }
        None => (Vec::new(), Vec::new()),
    }
}

/// Compares histograms ignoring the counter-reset hint, which storage
/// sets from what it saw.
fn same(a: &[(i64, FloatHistogram)], b: &[(i64, FloatHistogram)]) {
    assert_eq!(a.len(), b.len());
    for ((ta, ha), (tb, hb)) in a.iter().zip(b) {
        assert_eq!(ta, tb);
        let mut hb = hb.clone();
        hb.counter_reset_hint = ha.counter_reset_hint;
        assert_eq!(ha.sum.to_bits(), hb.sum.to_bits(), "at {ta}");
        if !ha.sum.is_nan() {
            assert_eq!(*ha, hb, "at {ta}");
        }
    }
}

/// Writes 200 histograms at 250 ms (a counter reset at 100 and a schema
/// change at 150) after 20 floats, and a stale marker at the end.
fn write_all(db: &Db) -> Vec<(i64, FloatHistogram)> {
    let labels = series("latency_seconds");
    let mut app = db.appender();
    for i in 0..20 {
        app.append(&labels, i * 250, i as f64).unwrap();
    }
    app.commit().unwrap();
    let mut expected = Vec::new();
    let mut app = db.appender();
    for i in 20..220u64 {
        let t = i as i64 * 250;
        let step = if i >= 120 { i - 119 } else { i };
        let schema = if i >= 170 { 2 } else { 0 };
        let h = histogram(step, schema);
        app.append_int_histogram(&labels, t, &h).unwrap();
        expected.push((t, h.to_float()));
        if i % 50 == 0 {
            app.commit().unwrap();
        }
    }
    let stale = FloatHistogram::stale_marker();
    app.append_histogram(&labels, 220 * 250, &stale).unwrap();
    expected.push((220 * 250, stale));
    app.commit().unwrap();
    expected
}

#[test]
fn histograms_round_trip_through_head_wal_blocks_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let db = open(dir.path());
        let expected = write_all(&db);
        let (floats, histograms) = read(&db, "latency_seconds", i64::MIN, i64::MAX);
        assert_eq!(floats.len(), 20);
        same(&expected, &histograms);
        // The sample after the counter reset starts a chunk, so it reads
        // "unknown" (as Prometheus's chunk reader hands it out), and the
        // reset shows by comparison with the sample before it.
        let at = histograms
            .iter()
            .position(|(t, _)| *t == 120 * 250)
            .unwrap();
        let reset = &histograms[at].1;
        assert_eq!(reset.counter_reset_hint, CounterResetHint::Unknown);
        assert!(reset.detect_reset(&histograms[at - 1].1));
        assert!(histograms.last().unwrap().1.is_stale());
        // The newest sample alone.
        let q = db.querier(0, 100 * 250).unwrap();
        let latest: Vec<_> = q
            .select_latest(&[Matcher::equal("__name__", "latency_seconds")])
            .unwrap()
            .map(|s| s.unwrap().histograms.collect::<Vec<_>>())
            .collect();
        assert_eq!(latest[0].len(), 1);
        assert_eq!(latest[0][0].0, 100 * 250);
        // Dropped without close: a restart replays the WAL.
        expected
    };
    let db = open(dir.path());
    let (floats, histograms) = read(&db, "latency_seconds", i64::MIN, i64::MAX);
    assert_eq!(floats.len(), 20);
    same(&expected, &histograms);

    // Cut everything into blocks, compact, and read again.
    db.maintain(i64::MAX / 2).unwrap();
    db.cut_head(60_000).unwrap();
    assert!(!db.blocks().is_empty());
    db.compact_all().unwrap();
    let (floats, from_blocks) = read(&db, "latency_seconds", i64::MIN, i64::MAX);
    assert_eq!(floats.len(), 20);
    same(&expected, &from_blocks);
    // A range inside a chunk.
    let (_, part) = read(&db, "latency_seconds", 30 * 250, 40 * 250);
    assert_eq!(part.len(), 11);

    // A snapshot is a store of its own.
    let name = db.snapshot_in_data_dir(SnapshotHead::Include).unwrap();
    let snap_dir = dir.path().join("snapshots").join(&name);
    drop(db);
    let snap = open(&snap_dir);
    let (_, from_snapshot) = read(&snap, "latency_seconds", i64::MIN, i64::MAX);
    same(&expected, &from_snapshot);
}

#[test]
fn out_of_order_histograms_and_kind_switches() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let labels = series("mixed");
    let mut app = db.appender();
    for i in 1..=5u64 {
        app.append_int_histogram(&labels, i as i64 * 1000, &histogram(i, 0))
            .unwrap();
    }
    app.commit().unwrap();
    drop(app);
    // Out of order: a histogram into the past, and a float replacing a
    // histogram's timestamp.
    let mut app = db.appender();
    app.append_int_histogram(&labels, 500, &histogram(1, 0))
        .unwrap();
    app.append(&labels, 3000, 7.0).unwrap();
    app.commit().unwrap();
    drop(app);
    let (floats, histograms) = read(&db, "mixed", i64::MIN, i64::MAX);
    assert_eq!(floats, vec![(3000, 7.0)]);
    let times: Vec<i64> = histograms.iter().map(|x| x.0).collect();
    assert_eq!(times, vec![500, 1000, 2000, 4000, 5000]);
    drop(db);
    let db = open(dir.path());
    let (floats, histograms) = read(&db, "mixed", i64::MIN, i64::MAX);
    assert_eq!(floats, vec![(3000, 7.0)]);
    assert_eq!(histograms.len(), 5);
}

#[test]
fn invalid_histograms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut app = db.appender();
    let mut h = histogram(3, 0);
    h.count -= 1;
    let err = app
        .append_int_histogram(&series("bad"), 1, &h)
        .unwrap_err()
        .to_string();
    assert!(err.contains("observations found in buckets"), "{err}");
    let mut f = histogram(3, 0).to_float();
    f.schema = 12;
    assert!(app.append_histogram(&series("bad"), 1, &f).is_err());
    app.commit().unwrap();
    assert!(read(&db, "bad", i64::MIN, i64::MAX).1.is_empty());
}

/// The counter-reset hint each sample is read with, as Prometheus's chunk
/// reader hands them out: "unknown" for a chunk's first sample (the
/// series' first histogram, the sample after a reset, the first after a
/// float, the first of every head run or block chunk), "not a reset" for
/// the rest; never "reset"
/// itself, so the query engine finds the reset by comparison, exactly
/// there and nowhere else. The same from the head, after WAL replay, and
/// from blocks after compaction.
#[test]
fn counter_reset_hints_are_kept_in_chunk_headers_through_replay_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let labels = series("hinted");
    let check = |db: &Db, what: &str| {
        let (floats, histograms) = read(db, "hinted", i64::MIN, i64::MAX);
        assert_eq!(floats.len(), 1, "{what}");
        assert_eq!(histograms.len(), 300, "{what}");
        for (k, (t, h)) in histograms.iter().enumerate() {
            let i = (*t / 250) as u64;
            match i {
                0 | 150 | 201 => assert_eq!(
                    h.counter_reset_hint,
                    CounterResetHint::Unknown,
                    "{what}: sample {i}"
                ),
                _ => assert_ne!(
                    h.counter_reset_hint,
                    CounterResetHint::CounterReset,
                    "{what}: sample {i}"
                ),
            }
            if k > 0 {
                let found = h.detect_reset(&histograms[k - 1].1);
                assert_eq!(found, i == 150, "{what}: sample {i}");
            }
        }
        // A read that starts inside a chunk: its first sample is still
        // "not a reset" where the chunk says so.
        for start in [100 * 250, 160 * 250] {
            let (_, part) = read(db, "hinted", start, i64::MAX);
            assert_ne!(
                part[0].1.counter_reset_hint,
                CounterResetHint::CounterReset,
                "{what}: read from {start}"
            );
        }
    };
    {
        let db = open(dir.path());
        for i in 0..300u64 {
            let mut app = db.appender();
            let step = if i >= 150 { i - 149 } else { i + 1 };
            app.append_int_histogram(&labels, i as i64 * 250, &histogram(step, 0))
                .unwrap();
            app.commit().unwrap();
            if i == 200 {
                let mut app = db.appender();
                app.append(&labels, i as i64 * 250 + 100, 1.0).unwrap();
                app.commit().unwrap();
            }
        }
        check(&db, "head");
        // Dropped without close: the restart replays the WAL.
    }
    let db = open(dir.path());
    check(&db, "after WAL replay");
    db.maintain(i64::MAX / 2).unwrap();
    db.cut_head(300 * 250 + 60_000).unwrap();
    assert!(!db.blocks().is_empty());
    check(&db, "blocks");
    db.compact_all().unwrap();
    check(&db, "compacted blocks");
}

#[test]
fn a_selection_that_reads_a_tier_keeps_raw_histograms() {
    // No tier keeps histograms. A plain selector whose steps line up with
    // a 1h tier, and a range function whose range allows the tier, read
    // the tier, and the series' raw histograms come along unchanged.
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let year = 365 * 86_400_000;
    db.set_tiers(&[
        tsdb::tiers::TierSpec {
            resolution_ms: 0,
            retention_ms: year,
        },
        tsdb::tiers::TierSpec {
            resolution_ms: 3_600_000,
            retention_ms: year,
        },
    ])
    .unwrap();
    let labels = series("request_seconds");
    let mut app = db.appender();
    let mut expected = Vec::new();
    for i in 0..240u64 {
        let t = i as i64 * 60_000;
        let h = histogram(i + 1, 0);
        app.append_int_histogram(&labels, t, &h).unwrap();
        expected.push((t, h.to_float()));
    }
    app.commit().unwrap();
    let matchers = [Matcher::equal("__name__", "request_seconds")];
    for (range_ms, aggregate) in [
        (0, model::storage::Aggregate::Last),
        (3_600_000, model::storage::Aggregate::Counter),
    ] {
        let hints = model::storage::SelectHints {
            step_ms: 3_600_000,
            range_ms,
            aggregate,
            max_resolution_ms: None,
            align_ms: 3_600_000,
        };
        let q = db.querier(0, 239 * 60_000).unwrap();
        let hinted = q.select_hinted(&matchers, &hints).unwrap();
        assert_eq!(hinted.resolution_ms, 3_600_000, "{aggregate:?}");
        let mut set = hinted.series;
        let s = set.next().expect("the histogram series").unwrap();
        assert!(set.next().is_none());
        assert_eq!(s.samples.count(), 0);
        let got: Vec<(i64, FloatHistogram)> = s.histograms.collect();
        same(&got, &expected);
    }
}
