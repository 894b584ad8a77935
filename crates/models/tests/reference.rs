//! Every statistic of `docs/drift.md` against scipy, scikit-learn,
//! statsmodels and Evidently on generated data (`reference/statistics.py`
//! computes the answers): exact figures to 1e-9 relative, the sketch
//! within its stated bound.

#[path = "../../promql/tests/python/mod.rs"]
mod python;

use models::metrics;
use models::sketch::{self, Weighted};
use models::stats;
use python::{Rng, close};
use serde_json::{Value, json};
use std::path::PathBuf;

const REL: f64 = 1e-9;

/// Normal variates by Box–Muller.
fn normal(rng: &mut Rng, mean: f64, sd: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let u = rng.uniform().max(1e-300);
            let v = rng.uniform();
            mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        })
        .collect()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn check(what: &str, got: f64, want: &Value) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: reference gave {want}"));
    assert!(
        close(got, want, REL),
        "{what}: osprey {got:e} reference {want:e} (rel {:e})",
        ((got - want) / want).abs()
    );
}

#[test]
fn statistics_agree_with_the_reference_libraries() {
    let mut rng = Rng(2024);
    // Numerical features: sizes cover equal sizes, the exact KS p-value
    // (both at most 10,000), Evidently's 1,000-value switch of default
    // method, ties (rounded values) and few distinct values.
    let shapes: [(usize, usize, f64, f64, Option<f64>); 11] = [
        (200, 150, 0.0, 1.0, None),
        (500, 500, 0.3, 1.0, None),
        (800, 1200, 0.0, 1.5, None),
        (1000, 1000, 0.1, 1.0, Some(0.5)),
        (3000, 2000, 0.05, 1.0, None),
        (5000, 7000, 0.0, 1.0, Some(0.1)),
        (9000, 10_000, 0.02, 1.0, None),
        (2000, 300, 1.0, 2.0, Some(1.0)),
        (400, 300, 0.0, 1.0, Some(1000.0)),
        (12_000, 15_000, 0.03, 1.0, None),
        (30_000, 100_000, 0.01, 1.0, None),
    ];
    let mut numeric = Vec::new();
    for (nr, nc, shift, scale, round) in shapes {
        let mut reference = normal(&mut rng, 0.0, 1.0, nr);
        let mut current = normal(&mut rng, shift, scale, nc);
        if let Some(step) = round {
            for v in reference.iter_mut().chain(current.iter_mut()) {
                *v = (*v / step).round() * step;
                if step > 100.0 {
                    // Three distinct values: -1000, 0, 1000 from rounding
                    // hundreds; make them few on purpose.
                    *v = (*v).clamp(-1000.0, 1000.0);
                }
            }
        }
        numeric.push((reference, current));
    }
    // Categorical features, two and several categories.
    let mut categorical = Vec::new();
    for (k, nr, nc, tilt) in [
        (2usize, 300usize, 200usize, 0.1),
        (4, 800, 600, 0.0),
        (6, 3000, 2500, 0.2),
        (3, 1500, 1400, 0.05),
    ] {
        let draw = |rng: &mut Rng, n: usize, tilt: f64| -> Vec<String> {
            (0..n)
                .map(|_| {
                    let u = rng.uniform().powf(1.0 + tilt);
                    format!("c{}", (u * k as f64) as usize)
                })
                .collect()
        };
        categorical.push((draw(&mut rng, nr, 0.0), draw(&mut rng, nc, tilt)));
    }
    // Classification: binary and three classes, with scores.
    let mut classification = Vec::new();
    for classes in [vec!["no", "yes"], vec!["a", "b", "c"]] {
        let n = 700;
        let (mut actual, mut predicted, mut scores) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let truth = rng.below(classes.len() as u64) as usize;
            let mut s: Vec<f64> = (0..classes.len()).map(|_| rng.uniform()).collect();
            s[truth] += 0.6 * rng.uniform();
            let total: f64 = s.iter().sum();
            s.iter_mut().for_each(|x| *x /= total);
            let best = (0..s.len())
                .max_by(|a, b| s[*a].total_cmp(&s[*b]))
                .unwrap_or(0);
            actual.push(classes[truth]);
            predicted.push(classes[best]);
            scores.push(s);
        }
        classification.push((classes, actual, predicted, scores));
    }
    // Regression.
    let mut regression = Vec::new();
    for noise in [0.5, 3.0] {
        let y = normal(&mut rng, 20.0, 5.0, 900);
        let p: Vec<f64> = y
            .iter()
            .zip(normal(&mut rng, 0.0, noise, 900))
            .map(|(a, e)| a + e)
            .collect();
        regression.push((y, p));
    }
    // Welch and the two-proportion z-test.
    let welch = [
        (
            normal(&mut rng, 1.0, 1.0, 300),
            normal(&mut rng, 1.2, 2.0, 500),
        ),
        (
            normal(&mut rng, 0.0, 1.0, 1000),
            normal(&mut rng, 0.05, 1.0, 800),
        ),
    ];
    let proportions = [
        (830.0, 1000.0, 790.0, 1000.0),
        (412.0, 500.0, 1301.0, 1600.0),
    ];
    // The sketch: 200,000 values per side, summarised in blocks of 20,000.
    let sketch_a = normal(&mut rng, 0.0, 1.0, 200_000);
    let sketch_b = normal(&mut rng, 0.02, 1.1, 200_000);

    let ks_grid = ks_asymptotic_grid();

    let input = json!({
        "numeric": numeric.iter().map(|(r, c)| json!({"reference": r, "current": c})).collect::<Vec<_>>(),
        "categorical": categorical.iter().map(|(r, c)| json!({"reference": r, "current": c})).collect::<Vec<_>>(),
        "classification": classification.iter().map(|(k, a, p, s)| json!({"classes": k, "actual": a, "predicted": p, "scores": s})).collect::<Vec<_>>(),
        "regression": regression.iter().map(|(y, p)| json!({"actual": y, "predicted": p})).collect::<Vec<_>>(),
        "welch": welch.iter().map(|(a, b)| json!({"a": a, "b": b})).collect::<Vec<_>>(),
        "proportions": proportions.iter().map(|(x1, n1, x2, n2)| json!({"x1": x1, "n1": n1, "x2": x2, "n2": n2})).collect::<Vec<_>>(),
        "sketch": [json!({"a": sketch_a, "b": sketch_b})],
        "ks_asymptotic": ks_grid.iter().map(|(d, n1, n2)| json!({"d": d, "n1": n1, "n2": n2})).collect::<Vec<_>>(),
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/statistics.py");
    let Some(output) = python::run(&script, &input.to_string()) else {
        return;
    };
    let want: Value = serde_json::from_str(&output).expect("reference JSON");

    for (i, (reference, current)) in numeric.iter().enumerate() {
        let w = &want["numeric"][i];
        let what = |m: &str| {
            format!(
                "numeric[{i}] ({} vs {}) {m}",
                reference.len(),
                current.len()
            )
        };
        let (r, c) = (sorted(reference.clone()), sorted(current.clone()));
        let cuts = stats::equal_frequency_cuts(&r, 10);
        let want_cuts: Vec<f64> = w["cuts"]
            .as_array()
            .expect("cuts")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(cuts, want_cuts, "{}", what("cuts"));
        let (p, q) = (stats::bin_shares(&cuts, &c), stats::bin_shares(&cuts, &r));
        check(&what("psi"), promql::drift::psi(&p, &q), &w["psi"]);
        check(&what("kl"), promql::drift::kl(&p, &q), &w["kl"]);
        check(&what("js"), promql::drift::js(&p, &q), &w["js"]);
        let d = stats::ks_statistic(&c, &r);
        check(&what("ks"), d, &w["ks"]);
        check(
            &what("ks_pvalue"),
            stats::ks_pvalue(d, c.len(), r.len()),
            &w["ks_pvalue"],
        );
        check(
            &what("wasserstein"),
            stats::wasserstein_normed(&c, &r),
            &w["wasserstein"],
        );
        check(
            &what("wasserstein_raw"),
            stats::wasserstein(&c, &r),
            &w["wasserstein_raw"],
        );
        let mut all: Vec<f64> = r.iter().chain(&c).copied().collect();
        all.sort_by(f64::total_cmp);
        all.dedup();
        assert_eq!(
            stats::default_method(true, r.len(), all.len()),
            w["default"].as_str().expect("default"),
            "{}",
            what("default method")
        );
    }

    for (i, (reference, current)) in categorical.iter().enumerate() {
        let w = &want["categorical"][i];
        let what = |m: &str| format!("categorical[{i}] {m}");
        let mut names: Vec<&String> = reference.iter().chain(current).collect();
        names.sort();
        names.dedup();
        let count = |v: &Vec<String>, name: &String| v.iter().filter(|x| *x == name).count() as u64;
        let counts: Vec<(u64, u64)> = names
            .iter()
            .map(|n| (count(current, n), count(reference, n)))
            .collect();
        let share = |c: u64, n: usize| c as f64 / n as f64;
        let p: Vec<f64> = counts.iter().map(|c| share(c.0, current.len())).collect();
        let q: Vec<f64> = counts.iter().map(|c| share(c.1, reference.len())).collect();
        check(&what("psi"), promql::drift::psi(&p, &q), &w["psi"]);
        check(&what("js"), promql::drift::js(&p, &q), &w["js"]);
        check(
            &what("chi2_pvalue"),
            stats::chi2_pvalue(&counts),
            &w["chi2_pvalue"],
        );
        if names.len() == 2 {
            let pv = stats::z_pvalue(
                counts[0].1,
                reference.len() as u64,
                counts[0].0,
                current.len() as u64,
            );
            check(&what("z_pvalue"), pv, &w["z_pvalue"]);
        }
        assert_eq!(
            stats::default_method(false, reference.len(), names.len()),
            w["default"].as_str().expect("default"),
            "{}",
            what("default method")
        );
    }

    for (i, (classes, actual, predicted, scores)) in classification.iter().enumerate() {
        let w = &want["classification"][i];
        let what = |m: &str| format!("classification[{i}] {m}");
        let m = metrics::classification(actual.iter().zip(predicted).map(|(a, p)| (*a, *p)))
            .expect("metrics");
        check(&what("accuracy"), m.accuracy, &w["accuracy"]);
        check(&what("precision"), m.precision, &w["precision"]);
        check(&what("recall"), m.recall, &w["recall"]);
        check(&what("f1"), m.f1, &w["f1"]);
        let per_class: Vec<Vec<f64>> = (0..classes.len())
            .map(|k| scores.iter().map(|s| s[k]).collect())
            .collect();
        let truth: Vec<usize> = actual
            .iter()
            .map(|a| classes.iter().position(|c| c == a).unwrap_or(0))
            .collect();
        check(
            &what("roc_auc"),
            metrics::roc_auc_ovr(&per_class, &truth).expect("auc"),
            &w["roc_auc"],
        );
    }

    for (i, (y, p)) in regression.iter().enumerate() {
        let w = &want["regression"][i];
        let m = metrics::regression(y.iter().copied().zip(p.iter().copied())).expect("metrics");
        check(&format!("regression[{i}] rmse"), m.rmse, &w["rmse"]);
        check(&format!("regression[{i}] mae"), m.mae, &w["mae"]);
        check(&format!("regression[{i}] mape"), m.mape, &w["mape"]);
    }

    for (i, (a, b)) in welch.iter().enumerate() {
        check(
            &format!("welch[{i}]"),
            stats::welch_t(a, b).1,
            &want["welch"][i]["pvalue"],
        );
    }
    for (i, (x1, n1, x2, n2)) in proportions.iter().enumerate() {
        let z = stats::two_proportion_z(*x1, *n1, *x2, *n2);
        check(
            &format!("proportions[{i}] z"),
            z,
            &want["proportions"][i]["z"],
        );
        check(
            &format!("proportions[{i}] p"),
            stats::normal_two_sided(z),
            &want["proportions"][i]["pvalue"],
        );
    }

    check_ks_asymptotic(&ks_grid, &want["ks_asymptotic"]);

    // The sketch: within 1/k + blocks/N of the exact KS, and the
    // corresponding share of the range for Wasserstein, per side.
    let blocks = 10;
    let summarise = |v: &[f64]| -> (Weighted, f64) {
        let parts: Vec<Weighted> = v
            .chunks(v.len() / blocks)
            .map(|chunk| Weighted::summarise(&sorted(chunk.to_vec()), sketch::POINTS))
            .collect();
        let s = sorted(v.to_vec());
        (Weighted::merge(parts.iter()), s[s.len() - 1] - s[0])
    };
    let (sa, range_a) = summarise(&sketch_a);
    let (sb, range_b) = summarise(&sketch_b);
    let n = sketch_a.len() as f64;
    let share_bound = 1.0 / sketch::POINTS as f64 + blocks as f64 / n;
    let exact_ks = want["sketch"][0]["ks"].as_f64().expect("ks");
    let exact_w = want["sketch"][0]["wasserstein"].as_f64().expect("w");
    let got_ks = sketch::ks(&sa, &sb);
    let got_w = sketch::wasserstein(&sa, &sb);
    let ks_bound = 2.0 * share_bound;
    let w_bound = share_bound * (range_a + range_b);
    assert!(
        (got_ks - exact_ks).abs() <= ks_bound,
        "sketch KS {got_ks} vs exact {exact_ks}, bound {ks_bound}"
    );
    assert!(
        (got_w - exact_w).abs() <= w_bound,
        "sketch W1 {got_w} vs exact {exact_w}, bound {w_bound}"
    );
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout().lock(),
            "sketch, 2 x 200,000 values: KS off by {:.2e} (bound {ks_bound:.2e}), W1 off by {:.2e} (bound {w_bound:.2e})",
            (got_ks - exact_ks).abs(),
            (got_w - exact_w).abs()
        );
    }
}

/// (d, n1, n2) past `KS_EXACT_MAX`, where `ks_pvalue` uses the one-sample
/// distribution at the effective size e = round(n1·n2/(n1 + n2)): sizes
/// from 10,001 to 100,000 (e from 5,000 to 50,000, with a tie rounded to
/// even), and a small second sample (e from 1 to 300) for the methods of
/// small n; d across the whole range, by z = d·√e from the flat centre to
/// the far tail, and near 1/e, 1/2 and 1, so every method of
/// `kolmogorov.rs` and each hand-over between them is reached.
fn ks_asymptotic_grid() -> Vec<(f64, usize, usize)> {
    let sizes = [
        (10_001, 10_001),
        (12_000, 15_000),
        (10_500, 99_999),
        (20_000, 80_000),
        (65_432, 23_456),
        (37_123, 100_000),
        (50_000, 50_000),
        (100_000, 100_000),
        (10_001, 1),
        (20_000, 2),
        (30_000, 7),
        (50_000, 60),
        (100_000, 140),
        (100_000, 141),
        (40_000, 300),
    ];
    let zs = [
        0.05, 0.1, 0.15, 0.18, 0.2, 0.25, 0.3, 0.5, 0.7, 0.85, 1.0, 1.2, 1.36, 1.48, 1.5, 1.8, 2.0,
        2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 13.0, 13.6, 15.0, 19.0, 19.3,
    ];
    let mut grid = Vec::new();
    for (n1, n2) in sizes {
        let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
        let e = (m * n / (m + n)).round_ties_even();
        let mut ds: Vec<f64> = zs.iter().map(|z| z / e.sqrt()).collect();
        ds.extend([0.4 / e, 0.75 / e, 1.0 / e, 1.5 / e, 3.0 / e]);
        ds.extend([0.3, 0.49, 0.5, 0.6, 0.9, 1.0 - 1.5 / e, 1.0 - 0.5 / e, 1.0]);
        for d in ds {
            if d > 0.0 && d <= 1.0 {
                grid.push((d, n1, n2));
            }
        }
    }
    grid
}

/// `ks_pvalue` over the grid against scipy: 1e-9 relative wherever
/// scipy's p-value is at least 1e-300. Below that a double keeps fewer
/// significant bits as it turns subnormal (under 2.2e-308), and both
/// sides return 0 once n·d² ≥ 370, so those are compared absolutely (a
/// subnormal's last steps are 1e-5 relative and more), and how many agree
/// exactly is reported.
fn check_ks_asymptotic(grid: &[(f64, usize, usize)], want: &Value) {
    let mut worst = (0.0f64, 0.0, 0, 0);
    let (mut tiny, mut tiny_equal, mut tiny_worst) = (0, 0, 0.0f64);
    for (i, (d, n1, n2)) in grid.iter().enumerate() {
        let got = stats::ks_pvalue(*d, *n1, *n2);
        let expected = want[i]["pvalue"]
            .as_f64()
            .unwrap_or_else(|| panic!("ks_asymptotic[{i}]: reference gave {}", want[i]));
        if expected < 1e-300 {
            tiny += 1;
            if got == expected {
                tiny_equal += 1;
            } else {
                tiny_worst = tiny_worst.max((got - expected).abs());
            }
            assert!(
                (got - expected).abs() <= 1e-300,
                "ks_pvalue(d {d:e}, {n1}, {n2}): osprey {got:e} scipy {expected:e}"
            );
            continue;
        }
        let rel = if got == expected {
            0.0
        } else {
            (got - expected).abs() / expected.abs()
        };
        if rel > worst.0 {
            worst = (rel, *d, *n1, *n2);
        }
        check(
            &format!("ks_pvalue(d {d:e}, {n1}, {n2})"),
            got,
            &want[i]["pvalue"],
        );
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stdout().lock(),
        "ks_pvalue past {}: {} cases, largest relative difference from scipy {:.2e} (d {:e}, sizes {} and {}); {tiny} below 1e-300, {tiny_equal} of them equal, the others within {tiny_worst:e} (subnormal steps are 4.9e-324)",
        stats::KS_EXACT_MAX,
        grid.len(),
        worst.0,
        worst.1,
        worst.2,
        worst.3
    );
}
