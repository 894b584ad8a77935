//! The anomaly functions against numpy and scipy on generated series:
//! every step of a range query through the engine over a real `tsdb::Db`
//! must equal the reference (`reference/anomaly.py`, numpy's `median`
//! and scipy's `median_abs_deviation(scale="normal")`) to 1e-9 relative,
//! and have output exactly where the reference has.

mod python;

use model::Labels;
use model::storage::Appendable;
use promql::{Engine, EngineOptions, Value};
use python::Rng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const MINUTE: i64 = 60_000;

/// One query shape, as the engine and the reference script see it.
struct Shape {
    kind: &'static str,
    range_ms: i64,
    width_ms: i64,
    periods_ms: Vec<i64>,
    k: f64,
}

impl Shape {
    fn range(&self) -> String {
        format!("{}s", self.range_ms / 1000)
    }

    fn tail(&self) -> String {
        let periods: Vec<String> = self
            .periods_ms
            .iter()
            .map(|p| (p / 1000).to_string())
            .collect();
        format!("{}, {}", self.width_ms / 1000, periods.join(", "))
    }

    fn score_query(&self) -> String {
        match self.kind {
            "trailing" => format!("anomaly_score(g[{}])", self.range()),
            _ => format!(
                "anomaly_score_seasonal(g[{}], {})",
                self.range(),
                self.tail()
            ),
        }
    }

    fn band_query(&self) -> String {
        match self.kind {
            "trailing" => format!("anomaly_band(g[{}], {})", self.range(), self.k),
            _ => format!(
                "anomaly_band_seasonal(g[{}], {}, {})",
                self.range(),
                self.k,
                self.tail()
            ),
        }
    }
}

/// Generated series: a daily-ish cycle (period 1h here, to keep the data
/// small), noise, spikes, level shifts, runs of equal values (a zero MAD)
/// and gaps, sampled every minute with jitter.
fn generate(rng: &mut Rng, n_series: usize, minutes: i64) -> Vec<Vec<(i64, f64)>> {
    let mut out = Vec::new();
    for case in 0..n_series {
        let mut samples = Vec::new();
        let amplitude = if case % 3 == 0 { 0.0 } else { 10.0 };
        let flat = case % 5 == 0;
        for m in 0..minutes {
            if rng.uniform() < 0.05 {
                continue;
            }
            let t = m * MINUTE + (rng.below(20) as i64) * 1000;
            let phase = (m as f64 / 60.0) * std::f64::consts::TAU;
            let mut v = if flat {
                42.0 + if rng.uniform() < 0.1 { 1.0 } else { 0.0 }
            } else {
                100.0 + amplitude * phase.sin() + (rng.uniform() - 0.5) * 4.0
            };
            if rng.uniform() < 0.03 {
                v += 50.0 * (rng.uniform() - 0.3);
            }
            if case % 4 == 1 && m > minutes / 2 {
                v += 25.0;
            }
            // Rounded to quarters, so medians and MADs tie often.
            samples.push((t, (v * 4.0).round() / 4.0));
        }
        out.push(samples);
    }
    out
}

#[test]
fn anomaly_functions_agree_with_numpy_and_scipy() {
    let mut rng = Rng(23);
    let minutes = 200;
    let series = generate(&mut rng, 24, minutes);
    let shapes = [
        Shape {
            kind: "trailing",
            range_ms: 30 * MINUTE,
            width_ms: 0,
            periods_ms: vec![],
            k: 2.5,
        },
        Shape {
            kind: "trailing",
            range_ms: 7 * MINUTE,
            width_ms: 0,
            periods_ms: vec![],
            k: 3.0,
        },
        Shape {
            kind: "seasonal",
            range_ms: 185 * MINUTE,
            width_ms: 5 * MINUTE,
            periods_ms: vec![60 * MINUTE],
            k: 3.0,
        },
        Shape {
            kind: "seasonal",
            range_ms: 181 * MINUTE,
            width_ms: 3 * MINUTE,
            periods_ms: vec![60 * MINUTE, 90 * MINUTE, 120 * MINUTE],
            k: 1.5,
        },
    ];
    let (start, end, step) = (MINUTE, (minutes + 5) * MINUTE, 2 * MINUTE + 30_000);
    let steps: Vec<i64> = (0..)
        .map(|i| start + i * step)
        .take_while(|t| *t <= end)
        .collect();

    let input = serde_json::json!({
        "series": series.iter().map(|s| s.iter().map(|(t, v)| serde_json::json!([t, v])).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "steps": steps,
        "queries": shapes.iter().map(|q| serde_json::json!({
            "kind": q.kind, "range_ms": q.range_ms, "width_ms": q.width_ms,
            "periods_ms": q.periods_ms, "k": q.k,
        })).collect::<Vec<_>>(),
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/anomaly.py");
    let Some(output) = python::run(&script, &input.to_string()) else {
        return;
    };
    let want: serde_json::Value = serde_json::from_str(&output).expect("reference JSON");

    let dir = tempfile::tempdir().expect("tempdir");
    let db = tsdb::Db::open(
        dir.path(),
        tsdb::DbOptions {
            retention_time_ms: None,
            retention_size_bytes: None,
            block_range_ms: tsdb::db::DEFAULT_BLOCK_RANGE_MS,
            wal_segment_size: 1 << 20,
            fsync: false,
        },
    )
    .expect("open tsdb");
    let mut app = db.appender();
    for (i, samples) in series.iter().enumerate() {
        let labels = Labels::from_pairs([("__name__", "g"), ("case", &i.to_string())]);
        for &(t, v) in samples {
            app.append(&labels, t, v).expect("append");
        }
    }
    app.commit().expect("commit");
    drop(app);

    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: 300_000,
        timeout: Duration::from_secs(60),
        max_samples: 50_000_000,
        max_concurrent: 4,
    });
    let number = |v: &serde_json::Value| -> f64 {
        match v {
            serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
            serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
            v => v.as_f64().expect("number"),
        }
    };
    let mut checked = 0usize;
    let mut infinite = 0usize;
    for (qi, shape) in shapes.iter().enumerate() {
        for (query, band) in [
            (shape.score_query(), None),
            (shape.band_query(), Some("lower")),
            (shape.band_query(), Some("center")),
            (shape.band_query(), Some("upper")),
        ] {
            let out = engine
                .range_query(&db, &query, start, end, step)
                .expect("query");
            assert!(out.warnings.is_empty(), "{query}: {:?}", out.warnings);
            let Value::Matrix(matrix) = out.value else {
                panic!("{query}: not a matrix");
            };
            let mut got: HashMap<usize, HashMap<i64, f64>> = HashMap::new();
            for s in matrix {
                assert!(s.labels.metric_name().is_none(), "{query}: name kept");
                if s.labels.get("band") != band {
                    continue;
                }
                let case: usize = s.labels.get("case").expect("case").parse().expect("case");
                got.insert(case, s.points.into_iter().collect());
            }
            for case in 0..series.len() {
                for (si, t) in steps.iter().enumerate() {
                    let reference = &want[qi][case][si];
                    let osprey = got.get(&case).and_then(|p| p.get(t)).copied();
                    let expected = match (reference.is_null(), band) {
                        (true, _) => None,
                        (false, None) => Some(number(&reference["score"])),
                        (false, Some(b)) => {
                            let at = ["lower", "center", "upper"]
                                .iter()
                                .position(|x| *x == b)
                                .expect("band");
                            Some(number(&reference["band"][at]))
                        }
                    };
                    let ok = match (osprey, expected) {
                        (None, None) => true,
                        (Some(a), Some(b)) if a.is_infinite() || b.is_infinite() => a == b,
                        (Some(a), Some(b)) => python::close(a, b, 1e-9),
                        _ => false,
                    };
                    assert!(
                        ok,
                        "{query} band {band:?} case {case} t {t}: osprey {osprey:?} reference {expected:?}"
                    );
                    if expected.is_some() {
                        checked += 1;
                    }
                    if expected.is_some_and(f64::is_infinite) {
                        infinite += 1;
                    }
                }
            }
        }
    }
    // The generated data must exercise the interesting cases, not only
    // pass: many compared values, some of them a zero scale's ±Inf.
    assert!(checked > 5_000, "only {checked} values compared");
    assert!(infinite > 0, "no zero-scale case generated");
    println!("anomaly reference: {checked} values agree ({infinite} infinite)");
}

/// Found by benches/anomaly_detection.py: the limit on seasonal periods
/// per step was summed over all steps of a range query, so a day at 1m
/// steps of a 2-day window with an hourly period (48 periods a step) was
/// refused. No Python needed.
#[test]
fn seasonal_period_limit_is_per_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = tsdb::Db::open(
        dir.path(),
        tsdb::DbOptions {
            retention_time_ms: None,
            retention_size_bytes: None,
            block_range_ms: tsdb::db::DEFAULT_BLOCK_RANGE_MS,
            wal_segment_size: 1 << 20,
            fsync: false,
        },
    )
    .expect("open tsdb");
    let mut app = db.appender();
    let labels = Labels::from_pairs([("__name__", "g")]);
    for m in 0..3 * 1440 {
        app.append(&labels, m * MINUTE, (m % 60) as f64)
            .expect("append");
    }
    app.commit().expect("commit");
    drop(app);
    let engine = Engine::new(EngineOptions::prometheus_defaults());
    let day = 1440 * MINUTE;
    let out = engine
        .range_query(
            &db,
            "anomaly_score_seasonal(g[2d], 600, 3600)",
            2 * day,
            3 * day - MINUTE,
            MINUTE,
        )
        .expect("48 periods a step is within the limit");
    let Value::Matrix(matrix) = out.value else {
        panic!("not a matrix");
    };
    // Every step has its 48 slots of history and a score.
    assert_eq!(matrix.len(), 1);
    assert_eq!(matrix[0].points.len(), 1440);
    let err = engine
        .instant_query(&db, "anomaly_score_seasonal(g[2d], 1, 2)", 2 * day)
        .map(|_| ())
        .expect_err("86,400 periods in one step");
    assert!(
        err.message().contains("more than 10000"),
        "{}",
        err.message()
    );
}
