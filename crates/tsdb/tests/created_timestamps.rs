//! Created timestamps' zero samples (`Appender::append_created_zero`,
//! Prometheus's `AppendCTZeroSample`) through `Db` on real files: staged
//! only when before the sample and after the series' newest sample, never
//! out of order; stored as ordinary samples, so they survive WAL replay (a
//! restart without a clean shutdown), a head cut into a block and
//! compaction; after a cut, one before the block's end is skipped
//! (Prometheus's `minValidTime`). The histogram variant writes an empty
//! histogram with the sample's layout, hinted as a counter reset.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use model::histogram::{CounterResetHint, FloatHistogram, Span};
use model::storage::{Appendable, Queryable, Storage};
use model::{Labels, Matcher};
use std::path::Path;
use tsdb::{Db, DbOptions};

const RANGE: i64 = 100_000;

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

type Read = (Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>);

fn read(db: &Db, name: &str) -> Read {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut set = q.select(&[Matcher::equal("__name__", name)]).unwrap();
    match set.next() {
        Some(s) => {
            let s = s.unwrap();
            (s.samples.collect(), s.histograms.collect())
        }
        None => (Vec::new(), Vec::new()),
    }
}

/// One scrape of a counter: the created timestamp handed over first,
/// then the sample. Returns whether the zero sample was staged.
fn scrape(db: &Db, labels: &Labels, created: i64, t: i64, v: f64) -> bool {
    let mut app = db.appender();
    let staged = app.append_created_zero(labels, t, created).unwrap();
    app.append(labels, t, v).unwrap();
    app.commit().unwrap();
    staged
}

fn histogram(count: f64) -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: -53,
        zero_threshold: 0.0,
        zero_count: 0.0,
        count,
        sum: count * 0.5,
        positive_spans: vec![Span {
            offset: 0,
            length: 3,
        }],
        negative_spans: vec![],
        positive_buckets: vec![count / 2.0, count / 4.0, count / 4.0],
        negative_buckets: vec![],
        custom_values: vec![0.1, 1.0],
    }
}

#[test]
fn zero_samples_are_kept_in_order_and_survive_replay_cut_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let counter = series("requests_total");
    let latency = series("latency_seconds");
    {
        let db = open(dir.path());
        // A new series: the zero goes in at the created timestamp.
        assert!(scrape(&db, &counter, 5_000, 10_000, 7.0));
        // The same created timestamp again: not after the newest sample.
        assert!(!scrape(&db, &counter, 5_000, 20_000, 9.0));
        // Not before its own sample, or older than the newest sample:
        // skipped, never stored out of order.
        let mut app = db.appender();
        assert!(!app.append_created_zero(&counter, 30_000, 30_000).unwrap());
        assert!(!app.append_created_zero(&counter, 30_000, 31_000).unwrap());
        assert!(!app.append_created_zero(&counter, 30_000, 15_000).unwrap());
        // The newest sample's own time is a duplicate: skipped too.
        assert!(!app.append_created_zero(&counter, 30_000, 20_000).unwrap());
        app.rollback();
        // A restart of the counter between scrapes: a new created
        // timestamp after the newest sample.
        assert!(scrape(&db, &counter, 25_000, 30_000, 2.0));
        assert_eq!(
            read(&db, "requests_total").0,
            vec![
                (5_000, 0.0),
                (10_000, 7.0),
                (20_000, 9.0),
                (25_000, 0.0),
                (30_000, 2.0)
            ]
        );
        assert_eq!(db.counters().out_of_order_samples_total, 0);

        // A native histogram: an empty one with the same schema, zero
        // threshold and custom bounds, hinted as a counter reset.
        let mut app = db.appender();
        assert!(
            app.append_histogram_created_zero(&latency, 10_000, 4_000, &histogram(8.0))
                .unwrap()
        );
        app.append_histogram(&latency, 10_000, &histogram(8.0))
            .unwrap();
        app.commit().unwrap();
        let mut app = db.appender();
        assert!(
            !app.append_histogram_created_zero(&latency, 20_000, 4_000, &histogram(12.0))
                .unwrap()
        );
        app.append_histogram(&latency, 20_000, &histogram(12.0))
            .unwrap();
        app.commit().unwrap();
        let (_, histograms) = read(&db, "latency_seconds");
        assert_eq!(histograms.len(), 3);
        let (t, zero) = &histograms[0];
        assert_eq!(*t, 4_000);
        // Stored as a reset (the chunk it starts says so); read back, as
        // from Prometheus's chunk reader, as a chunk's first sample.
        assert_eq!(zero.counter_reset_hint, CounterResetHint::Unknown);
        assert_eq!(zero.schema, -53);
        assert_eq!(zero.custom_values, vec![0.1, 1.0]);
        assert_eq!((zero.count, zero.sum, zero.zero_count), (0.0, 0.0, 0.0));
        assert!(zero.positive_buckets.iter().all(|b| *b == 0.0));
        // Dropped without close: a restart replays the WAL.
    }
    let db = open(dir.path());
    let expected_floats = vec![
        (5_000, 0.0),
        (10_000, 7.0),
        (20_000, 9.0),
        (25_000, 0.0),
        (30_000, 2.0),
    ];
    assert_eq!(read(&db, "requests_total").0, expected_floats);
    let (_, histograms) = read(&db, "latency_seconds");
    assert_eq!(
        histograms.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![4_000, 10_000, 20_000]
    );
    assert_eq!(histograms[0].1.count, 0.0);
    // The replayed head knows the newest sample: the old created
    // timestamp is skipped again.
    assert!(!scrape(&db, &counter, 25_000, 40_000, 3.0));

    // Into a block and compacted: the zeros are ordinary samples there.
    db.cut_head(RANGE).unwrap();
    db.compact_all().unwrap();
    let mut expected_floats = expected_floats;
    expected_floats.push((40_000, 3.0));
    assert_eq!(read(&db, "requests_total").0, expected_floats);
    // A series whose head is empty after the cut: a created timestamp
    // before the block's end would land among the block's samples, so it
    // is skipped; one after it (and after the new newest sample) is
    // stored.
    assert!(!scrape(&db, &counter, 50_000, 150_000, 1.0));
    assert!(scrape(&db, &counter, 155_000, 160_000, 2.0));
    let floats = read(&db, "requests_total").0;
    assert_eq!(
        &floats[floats.len() - 4..],
        &[
            (40_000, 3.0),
            (150_000, 1.0),
            (155_000, 0.0),
            (160_000, 2.0)
        ]
    );
    drop(db);
    let db = open(dir.path());
    assert_eq!(read(&db, "requests_total").0, floats);
}
