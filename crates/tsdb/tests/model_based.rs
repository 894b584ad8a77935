//! Model-based test of the whole database.
//!
//! Random sequences of appends (in order, out of order, duplicate
//! timestamps, staleness markers, rollbacks), deletes, head cuts,
//! compactions, tombstone cleaning, restarts and snapshots run against a
//! [`Db`] and against a naive in-memory model. After every step every read
//! path (head, replayed WAL, blocks with tombstones, compacted and rewritten
//! blocks, snapshots, and their mixes) must return exactly, bit for bit,
//! what the model holds, and the label lookups must name exactly the series
//! that still have samples.

use model::storage::{Appendable, Appender, PairsBatch, Queryable, SnapshotHead};
use model::{Labels, MatchOp, Matcher, STALE_NAN};
use proptest::prelude::*;
use std::collections::BTreeMap;
use tsdb::{Db, DbOptions};

type ModelDb = BTreeMap<Labels, BTreeMap<i64, u64>>;

#[derive(Clone, Debug)]
enum Op {
    /// (series index, timestamp, value) staged, then committed or rolled back.
    Append {
        samples: Vec<(usize, i64, f64)>,
        commit: bool,
    },
    /// Advance "now" and run maintenance (head cut, compaction).
    Maintain,
    /// Close and reopen the database (WAL replay).
    Restart,
    /// Delete `[mint, maxt]` of the series with `label=value`.
    Delete {
        label: &'static str,
        value: String,
        mint: i64,
        maxt: i64,
    },
    /// Rewrite blocks without their deleted samples.
    CleanTombstones,
    /// Snapshot (with or without the head), open the snapshot as a
    /// database of its own and compare it with the model (the head's data
    /// only when it was included).
    Snapshot { with_head: bool },
}

const BLOCK_RANGE: i64 = 1000;

fn series_labels(i: usize) -> Labels {
    let job = ["api", "node", "gpu"][i % 3];
    Labels::from_pairs([
        (
            "__name__",
            if i.is_multiple_of(2) {
                "requests_total"
            } else {
                "temperature"
            },
        ),
        ("job", job),
        ("instance", &format!("host-{}", i % 4)),
    ])
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (-1000i64..1000).prop_map(|v| v as f64),
        2 => any::<f64>(),
        1 => Just(STALE_NAN),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => Just(f64::INFINITY),
    ]
}

fn delete() -> impl Strategy<Value = Op> {
    let target = prop_oneof![
        (0usize..3).prop_map(|i| ("job", ["api", "node", "gpu"][i].to_string())),
        (0usize..4).prop_map(|i| ("instance", format!("host-{i}"))),
        (0usize..2).prop_map(|i| ("__name__", ["requests_total", "temperature"][i].to_string())),
    ];
    let range = prop_oneof![
        (0i64..6000, 0i64..3000).prop_map(|(start, len)| (start, start + len)),
        Just((i64::MIN, i64::MAX)),
    ];
    (target, range).prop_map(|((label, value), (mint, maxt))| Op::Delete {
        label,
        value,
        mint,
        maxt,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec((0usize..6, 0i64..6000, value()), 1..40), prop::bool::weighted(0.85))
            .prop_map(|(samples, commit)| Op::Append { samples, commit }),
        2 => Just(Op::Maintain),
        1 => Just(Op::Restart),
        2 => delete(),
        1 => Just(Op::CleanTombstones),
        1 => any::<bool>().prop_map(|with_head| Op::Snapshot { with_head }),
    ]
}

fn open(dir: &std::path::Path) -> Db {
    let opts = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: BLOCK_RANGE,
        wal_segment_size: 4096,
        fsync: false,
    };
    match Db::open(dir, opts) {
        Ok(db) => db,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn read_all(db: &Db, mint: i64, maxt: i64) -> ModelDb {
    let q = db.querier(mint, maxt).expect("querier");
    let m = Matcher::new(MatchOp::RegexMatch, "__name__", ".+").expect("matcher");
    let mut out = ModelDb::new();
    let mut last: Option<Labels> = None;
    for s in q.select(&[m]).expect("select") {
        let s = s.expect("series");
        if let Some(l) = &last {
            assert!(*l < s.labels, "series not sorted: {l} then {}", s.labels);
        }
        last = Some(s.labels.clone());
        let mut prev = i64::MIN;
        let mut samples = BTreeMap::new();
        for (t, v) in s.samples {
            assert!(t > prev, "samples not ascending in {}", s.labels);
            prev = t;
            samples.insert(t, v.to_bits());
        }
        out.insert(s.labels, samples);
    }
    out
}

fn expected(model: &ModelDb, mint: i64, maxt: i64) -> ModelDb {
    model
        .iter()
        .map(|(l, s)| {
            (
                l.clone(),
                s.range(mint..=maxt)
                    .map(|(t, v)| (*t, *v))
                    .collect::<BTreeMap<_, _>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

fn check(db: &Db, model: &ModelDb, step: usize) {
    // Label lookups over everything: exactly the series with samples.
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    let live: Vec<&Labels> = model
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(l, _)| l)
        .collect();
    for name in ["job", "instance", "__name__"] {
        let want: std::collections::BTreeSet<String> = live
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        let got = q.label_values(name, &[]).expect("label values");
        assert_eq!(
            got,
            want.iter().cloned().collect::<Vec<_>>(),
            "label values of {name}, step {step}"
        );
        let job_api = Matcher::equal("job", "api");
        let want: std::collections::BTreeSet<String> = live
            .iter()
            .filter(|l| l.get("job") == Some("api"))
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        let got = q.label_values(name, &[job_api]).expect("label values");
        assert_eq!(
            got,
            want.iter().cloned().collect::<Vec<_>>(),
            "label values of {name} for job=api, step {step}"
        );
    }
    let names = q.label_names(&[]).expect("label names");
    let want: Vec<String> = if live.is_empty() {
        Vec::new()
    } else {
        vec!["__name__".into(), "instance".into(), "job".into()]
    };
    assert_eq!(names, want, "label names, step {step}");
    drop(q);

    for (mint, maxt) in [
        (i64::MIN, i64::MAX),
        (0, 2500),
        (1500, 1600),
        (2999, 3000),
        (4000, 9000),
    ] {
        let got = read_all(db, mint, maxt);
        let want = expected(model, mint, maxt);
        assert_eq!(got, want, "step {step}, range [{mint}, {maxt}]");

        // select_latest: the newest sample of each series in range.
        let q = db.querier(mint, maxt).expect("querier");
        let m = Matcher::new(MatchOp::RegexMatch, "__name__", ".+").expect("matcher");
        let latest: BTreeMap<Labels, (i64, u64)> = q
            .select_latest(&[m])
            .expect("select_latest")
            .map(|s| {
                let s = s.expect("series");
                let mut samples: Vec<(i64, f64)> = s.samples.collect();
                assert_eq!(samples.len(), 1, "one sample per series from select_latest");
                let (t, v) = samples.remove(0);
                (s.labels, (t, v.to_bits()))
            })
            .collect();
        let want_latest: BTreeMap<Labels, (i64, u64)> = want
            .iter()
            .filter_map(|(l, s)| s.iter().next_back().map(|(t, v)| (l.clone(), (*t, *v))))
            .collect();
        assert_eq!(
            latest, want_latest,
            "select_latest, step {step}, range [{mint}, {maxt}]"
        );
    }
}

/// Runs the ops; returns the counters of the last session before the final
/// restart, and the number of blocks the final reopen found.
fn run(ops: Vec<Op>) -> (model::storage::StorageCounters, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = open(dir.path());
    let mut model = ModelDb::new();
    let mut now = 0i64;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append { samples, commit } => {
                let mut app = db.appender();
                let labels: Vec<Labels> =
                    samples.iter().map(|(i, _, _)| series_labels(*i)).collect();
                let pairs: Vec<Vec<(&str, &str)>> = labels
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|l| (l.name.as_str(), l.value.as_str()))
                            .collect()
                    })
                    .collect();
                // All three entry points, the owned one and the borrowed hot
                // paths one by one and in batches, must land in the same
                // series. A batch is staged before the next sample, so every
                // sample is staged in order.
                let mut batch = PairsBatch::default();
                let stage = |app: &mut Box<dyn Appender + '_>, batch: &mut PairsBatch<'_>| {
                    app.append_pairs_batch(batch, &mut |_, e| Err(e))
                        .expect("append_pairs_batch");
                    batch.clear();
                };
                for (k, (_, t, v)) in samples.iter().enumerate() {
                    match t % 3 {
                        0 => {
                            stage(&mut app, &mut batch);
                            app.append(&labels[k], *t, *v).expect("append");
                        }
                        1 => {
                            stage(&mut app, &mut batch);
                            app.append_pairs(&pairs[k], *t, *v).expect("append_pairs");
                        }
                        _ => batch.push(&pairs[k], &[(*t, *v)]),
                    }
                }
                stage(&mut app, &mut batch);
                if commit {
                    app.commit().expect("commit");
                    for (i, t, v) in samples {
                        model
                            .entry(series_labels(i))
                            .or_default()
                            .insert(t, v.to_bits());
                    }
                } else {
                    app.rollback();
                }
            }
            Op::Maintain => {
                now += 700;
                db.maintain(now).expect("maintain");
            }
            Op::Restart => {
                drop(db);
                db = open(dir.path());
            }
            Op::Delete {
                label,
                value,
                mint,
                maxt,
            } => {
                db.delete_series(&[Matcher::equal(label, &value)], mint, maxt)
                    .expect("delete");
                for (labels, samples) in model.iter_mut() {
                    if labels.get(label) == Some(value.as_str()) {
                        samples.retain(|t, _| *t < mint || *t > maxt);
                    }
                }
            }
            Op::CleanTombstones => {
                db.clean_tombstones().expect("clean tombstones");
                for block in db.blocks() {
                    assert!(
                        block.tombstones().is_empty(),
                        "tombstones left after cleaning"
                    );
                }
            }
            Op::Snapshot { with_head } => {
                let snapshots = tempfile::tempdir().expect("tempdir");
                let head = if with_head {
                    SnapshotHead::Include
                } else {
                    SnapshotHead::Skip
                };
                db.snapshot(snapshots.path(), head).expect("snapshot");
                let copy = open(snapshots.path());
                if with_head {
                    check(&copy, &model, step);
                } else {
                    // Blocks only: what a head cut has not written is missing,
                    // nothing else, and nothing deleted is back.
                    let got = read_all(&copy, i64::MIN, i64::MAX);
                    let head_min = db.head().min_time();
                    for (labels, samples) in &got {
                        let want = model.get(labels).expect("snapshot series in the model");
                        for (t, v) in samples {
                            if *t < head_min {
                                assert_eq!(want.get(t), Some(v), "{labels} at {t}, step {step}");
                            }
                        }
                    }
                }
            }
        }
        check(&db, &model, step);
    }
    let counters = model::storage::Storage::counters(&db);
    // A final restart reads everything back from disk alone.
    drop(db);
    let db = open(dir.path());
    check(&db, &model, usize::MAX);
    (counters, db.blocks().len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn db_matches_model(ops in prop::collection::vec(op(), 1..30)) {
        run(ops);
    }
}

/// A fixed scenario that crosses every path: in-order data cut into
/// blocks, a late sample rewriting a value already in a block, compaction,
/// restart.
#[test]
fn rewrite_of_a_sample_already_in_a_block() {
    let mut ops = Vec::new();
    for t in (0..5000).step_by(100) {
        ops.push(Op::Append {
            samples: vec![(0, t, t as f64)],
            commit: true,
        });
    }
    ops.push(Op::Maintain);
    ops.push(Op::Append {
        samples: vec![(0, 100, -1.0), (1, 50, STALE_NAN)],
        commit: true,
    });
    ops.push(Op::Maintain);
    ops.push(Op::Restart);
    for _ in 0..10 {
        ops.push(Op::Maintain);
    }
    ops.push(Op::Append {
        samples: vec![(0, 7000, 1.0)],
        commit: true,
    });
    for _ in 0..10 {
        ops.push(Op::Maintain);
    }
    let (counters, blocks) = run(ops);
    // The scenario only means something if it went through blocks and
    // compactions.
    assert!(counters.head_truncations_total >= 1, "{counters:?}");
    assert!(counters.compactions_total >= 1, "{counters:?}");
    assert!(blocks >= 1);
}

/// Large selects decode on several threads in batches; the result must be
/// the same stream, in label order, with every sample, across head and
/// blocks.
#[test]
fn large_select_is_complete_and_ordered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let n_series = 3000;
    for t in (0..3000).step_by(100) {
        let mut app = db.appender();
        for i in 0..n_series {
            let labels = Labels::from_pairs([("__name__", "big"), ("i", &format!("{i:05}"))]);
            app.append(&labels, t, (i as i64 * 1000 + t) as f64)
                .expect("append");
        }
        app.commit().expect("commit");
    }
    db.maintain(3000).expect("maintain");
    assert!(!db.blocks().is_empty(), "part of the data is in a block");
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    let mut count = 0;
    for (idx, s) in q
        .select(&[Matcher::equal("__name__", "big")])
        .expect("select")
        .enumerate()
    {
        let s = s.expect("series");
        assert_eq!(
            s.labels.get("i"),
            Some(format!("{idx:05}").as_str()),
            "order"
        );
        let samples: Vec<(i64, f64)> = s.samples.collect();
        assert_eq!(samples.len(), 30, "series {idx}");
        for (j, (t, v)) in samples.iter().enumerate() {
            assert_eq!(*t, j as i64 * 100);
            assert_eq!(*v, (idx as i64 * 1000 + t) as f64);
        }
        count += 1;
    }
    assert_eq!(count, n_series);
}
