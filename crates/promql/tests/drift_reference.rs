//! The six drift functions against scipy and Evidently on generated
//! histograms: each function's value through the engine over a real
//! `tsdb::Db` must equal the reference (`reference/drift_histograms.py`)
//! to 1e-9 relative.

mod python;

use model::Labels;
use model::storage::Appendable;
use promql::{Engine, EngineOptions, Value};
use python::Rng;
use std::path::PathBuf;
use std::time::Duration;

const FUNCTIONS: [&str; 6] = ["psi", "kl", "js", "hellinger", "ks", "wasserstein"];

#[test]
fn drift_functions_agree_with_scipy_and_evidently() {
    let bounds = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, f64::INFINITY];
    let mut rng = Rng(14);
    let mut cases = Vec::new();
    for case in 0..60 {
        let one = |rng: &mut Rng| -> Vec<u64> {
            bounds
                .iter()
                .map(|_| {
                    // About a fifth of the buckets empty, and a few cases
                    // with a tiny bucket (the epsilon's second rule).
                    if rng.uniform() < 0.2 {
                        0
                    } else if case % 7 == 0 && rng.uniform() < 0.3 {
                        1
                    } else {
                        1 + rng.below(if case % 7 == 0 { 200_000 } else { 500 })
                    }
                })
                .collect()
        };
        let current = one(&mut rng);
        let reference = one(&mut rng);
        if current.iter().sum::<u64>() == 0 || reference.iter().sum::<u64>() == 0 {
            continue;
        }
        cases.push((current, reference));
    }
    let input = serde_json::json!(
        cases
            .iter()
            .map(|(c, r)| serde_json::json!({
                "bounds": bounds.iter().map(|b| if b.is_finite() { Some(*b) } else { None }).collect::<Vec<_>>(),
                "current": c,
                "reference": r,
            }))
            .collect::<Vec<_>>()
    );
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/drift_histograms.py");
    let Some(output) = python::run(&script, &input.to_string()) else {
        return;
    };
    let want: Vec<serde_json::Value> = serde_json::from_str(&output).expect("reference JSON");
    assert_eq!(want.len(), cases.len());

    // Cumulative bucket series at t = 0, one histogram pair per case.
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
    for (i, (current, reference)) in cases.iter().enumerate() {
        for (name, counts) in [("cur_bucket", current), ("ref_bucket", reference)] {
            let mut cumulative = 0u64;
            for (le, count) in bounds.iter().zip(counts) {
                cumulative += count;
                let le = if le.is_finite() {
                    le.to_string()
                } else {
                    "+Inf".to_string()
                };
                let labels =
                    Labels::from_pairs([("__name__", name), ("case", &i.to_string()), ("le", &le)]);
                app.append(&labels, 0, cumulative as f64).expect("append");
            }
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
    let mut checked = 0;
    for function in FUNCTIONS {
        let query = format!("drift_{function}(cur_bucket, ref_bucket)");
        let out = engine.instant_query(&db, &query, 0).expect("query");
        assert!(out.warnings.is_empty(), "{query}: {:?}", out.warnings);
        let Value::Vector(samples) = out.value else {
            panic!("{query}: not a vector");
        };
        assert_eq!(samples.len(), cases.len(), "{query}");
        for s in samples {
            let case: usize = s
                .labels
                .get("case")
                .expect("case label")
                .parse()
                .expect("case");
            assert!(s.labels.metric_name().is_none(), "{query}: name kept");
            let reference = want[case][function].as_f64().expect("number");
            assert!(
                python::close(s.v, reference, 1e-9),
                "{query} case {case} {:?}: osprey {} reference {}",
                cases[case],
                s.v,
                reference
            );
            checked += 1;
        }
    }
    assert_eq!(checked, cases.len() * FUNCTIONS.len());
}
