//! `Models::distribution` (the Models page's reference and current
//! distributions of a feature) against numpy computed on the same
//! values: `numpy.histogram` over the range of both sides, the PSI bins
//! from `numpy.quantile`, category shares. Also the errors for unknown
//! names and for a model without a reference yet.

#[path = "../../promql/tests/python/mod.rs"]
mod python;

use models::Models;
use models::distribution::DistributionError;
use python::{Rng, close};
use serde_json::{Value, json};
use std::path::PathBuf;

const NOW_MS: i64 = 1_800_000_000_000;

fn normal(rng: &mut Rng, mean: f64, sd: f64) -> f64 {
    let u = rng.uniform().max(1e-300);
    let v = rng.uniform();
    mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

#[test]
fn shares_agree_with_numpy() {
    let mut rng = Rng(11);
    let cities = ["Oslo", "Bergen", "Tromso", "Bodo"];
    let models = Models::in_memory();
    let (mut ref_age, mut cur_age, mut ref_city, mut cur_city) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut reference = Vec::new();
    for _ in 0..800 {
        // Whole numbers too, so values fall on the cut points and edges.
        let age = if rng.uniform() < 0.3 {
            (normal(&mut rng, 40.0, 10.0)).round()
        } else {
            normal(&mut rng, 40.0, 10.0)
        };
        let city = cities[(rng.uniform() * 3.0) as usize];
        ref_age.push(age);
        ref_city.push(city);
        reference.push(json!({"features": {"age": age, "city": city}, "prediction": "no"}));
    }
    let body = json!({"records": reference}).to_string();
    models
        .set_reference("churn", body.as_bytes())
        .expect("reference");
    let now = NOW_MS as f64 / 1000.0;
    let mut predictions = Vec::new();
    for i in 0..1200 {
        let age = normal(&mut rng, 48.0, 12.0);
        let city = cities[(rng.uniform() * 4.0) as usize];
        cur_age.push(age);
        cur_city.push(city);
        predictions.push(json!({
            "id": i, "version": "v1", "timestamp": now - 1800.0 + i as f64,
            "features": {"age": age, "city": city}, "prediction": "yes",
        }));
    }
    // A second, smaller version: the default is the larger one.
    predictions.push(json!({"id": "x", "version": "v2", "timestamp": now - 10.0,
        "features": {"age": 1.0, "city": "Oslo"}, "prediction": "yes"}));
    let body = json!({"records": predictions}).to_string();
    models
        .ingest_predictions("churn", body.as_bytes())
        .expect("predictions");
    models.evaluate_model("churn", NOW_MS);

    let numeric = models
        .distribution("churn", "age", None, NOW_MS)
        .expect("age distribution");
    assert_eq!(numeric.version, "v1");
    assert_eq!(numeric.kind, "numeric");
    assert_eq!(numeric.reference_count, 800.0);
    assert_eq!(numeric.current_count, 1200.0);
    assert!(!numeric.sketched);
    let categorical = models
        .distribution("churn", "city", Some("v1"), NOW_MS)
        .expect("city distribution");
    assert_eq!(categorical.kind, "categorical");

    // Errors: unknown names are the caller's; no reference is "not yet".
    assert!(matches!(
        models.distribution("churn", "nope", None, NOW_MS),
        Err(DistributionError::Unknown(_))
    ));
    assert!(matches!(
        models.distribution("churn", "age", Some("v9"), NOW_MS),
        Err(DistributionError::Unknown(_))
    ));
    assert!(matches!(
        models.distribution("nobody", "age", None, NOW_MS),
        Err(DistributionError::Unknown(_))
    ));
    let fresh = Models::in_memory();
    fresh
        .ingest_predictions(
            "m",
            br#"{"records":[{"id":1,"version":"a","timestamp":1799999999,"features":{"x":1},"prediction":1}]}"#,
        )
        .expect("one record");
    fresh.evaluate_model("m", NOW_MS);
    assert!(matches!(
        fresh.distribution("m", "x", None, NOW_MS),
        Err(DistributionError::NotYet(_))
    ));

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/distribution.py");
    let input = json!({"reference": ref_age, "current": cur_age,
        "ref_categories": ref_city, "cur_categories": cur_city});
    let Some(output) = python::run(&script, &input.to_string()) else {
        return;
    };
    let want: Value = serde_json::from_str(&output).expect("reference JSON");
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    let same = |what: &str, got: &[f64], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{what}: {got:?} vs numpy {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, *w, 1e-12), "{what}: {got:?} vs numpy {want:?}");
        }
    };
    let h = numeric.histogram.as_ref().expect("histogram");
    same("edges", &h.edges, &floats(&want["edges"]));
    same(
        "reference shares",
        &h.reference,
        &floats(&want["reference"]),
    );
    same("current shares", &h.current, &floats(&want["current"]));
    let p = numeric.psi_bins.as_ref().expect("psi bins");
    same("cuts", &p.cuts, &floats(&want["cuts"]));
    same(
        "psi reference",
        &p.reference,
        &floats(&want["psi_reference"]),
    );
    same("psi current", &p.current, &floats(&want["psi_current"]));
    let cats = categorical.categories.as_ref().expect("categories");
    assert_eq!(cats.len(), 4);
    for c in cats {
        let w = floats(&want["categories"][&c.value]);
        same(&c.value, &[c.reference, c.current], &w);
    }
}

/// `Models::compare` (the A/B view's figures for any two versions): the
/// p-values against statsmodels' two-proportion z-test (accuracy) and
/// scipy's Welch t-test (RMSE and MAE, on squared and absolute errors),
/// the differences against the figures of each version.
#[test]
fn pairwise_comparison_agrees_with_statsmodels_and_scipy() {
    let mut rng = Rng(23);
    let now = NOW_MS as f64 / 1000.0;
    // A classifier: v1 right 85 % of the time, v2 70 %.
    let classes = Models::in_memory();
    let (mut preds, mut actuals) = (Vec::new(), Vec::new());
    let mut correct = std::collections::HashMap::new();
    for (version, n, skill) in [("v1", 700, 0.85), ("v2", 350, 0.7)] {
        for i in 0..n {
            let truth = if rng.uniform() < 0.5 { "yes" } else { "no" };
            let right = rng.uniform() < skill;
            let predicted = match (right, truth) {
                (true, t) => t,
                (false, "yes") => "no",
                _ => "yes",
            };
            *correct.entry(version).or_insert(0u64) += u64::from(right);
            let id = format!("{version}-{i}");
            preds.push(
                json!({"id": id, "version": version, "timestamp": now - 1000.0 + i as f64,
                "features": {"x": rng.uniform()}, "prediction": predicted}),
            );
            actuals.push(json!({"id": id, "actual": truth, "timestamp": now - 100.0}));
        }
    }
    classes
        .ingest_predictions("c", json!({"records": preds}).to_string().as_bytes())
        .expect("predictions");
    classes
        .ingest_actuals("c", json!({"records": actuals}).to_string().as_bytes())
        .expect("actuals");
    classes.evaluate_model("c", NOW_MS);
    let c = classes.compare("c", "v1", "v2").expect("compare");
    assert_eq!((c.records_a, c.records_b), (700, 350));
    let accuracy = c
        .figures
        .iter()
        .find(|f| f.metric == "accuracy")
        .expect("accuracy");
    let (xa, xb) = (correct["v1"], correct["v2"]);
    assert!(close(accuracy.a.expect("a"), xa as f64 / 700.0, 1e-12));
    assert!(close(accuracy.b.expect("b"), xb as f64 / 350.0, 1e-12));
    assert!(close(
        accuracy.difference.expect("difference"),
        xb as f64 / 350.0 - xa as f64 / 700.0,
        1e-12
    ));
    // The same pair the other way round: the same test, the opposite difference.
    let back = classes.compare("c", "v2", "v1").expect("compare back");
    let back_accuracy = back
        .figures
        .iter()
        .find(|f| f.metric == "accuracy")
        .expect("accuracy");
    assert!(close(
        back_accuracy.p_value.expect("p"),
        accuracy.p_value.expect("p"),
        1e-12
    ));
    assert!(
        c.figures
            .iter()
            .filter(|f| f.metric != "accuracy")
            .all(|f| f.p_value.is_none())
    );
    assert!(matches!(
        classes.compare("c", "v1", "v9"),
        Err(DistributionError::Unknown(_))
    ));

    // A regression: v2's errors are larger.
    let regression = Models::in_memory();
    let (mut preds, mut actuals) = (Vec::new(), Vec::new());
    let (mut squared, mut absolute) = (
        std::collections::HashMap::<&str, Vec<f64>>::new(),
        std::collections::HashMap::<&str, Vec<f64>>::new(),
    );
    for (version, n, noise) in [("v1", 500, 1.0), ("v2", 300, 1.6)] {
        for i in 0..n {
            let truth = normal(&mut rng, 10.0, 3.0);
            let predicted = truth + normal(&mut rng, 0.0, noise);
            let id = format!("{version}-{i}");
            preds.push(
                json!({"id": id, "version": version, "timestamp": now - 1000.0 + i as f64,
                "features": {"x": rng.uniform()}, "prediction": predicted}),
            );
            actuals.push(json!({"id": id, "actual": truth, "timestamp": now - 100.0}));
            squared
                .entry(version)
                .or_default()
                .push((predicted - truth) * (predicted - truth));
            absolute
                .entry(version)
                .or_default()
                .push((predicted - truth).abs());
        }
    }
    regression
        .ingest_predictions("r", json!({"records": preds}).to_string().as_bytes())
        .expect("predictions");
    regression
        .ingest_actuals("r", json!({"records": actuals}).to_string().as_bytes())
        .expect("actuals");
    regression.evaluate_model("r", NOW_MS);
    let r = regression.compare("r", "v1", "v2").expect("compare");
    let figure = |name: &str| {
        r.figures
            .iter()
            .find(|f| f.metric == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let rmse_a = (squared["v1"].iter().sum::<f64>() / 500.0).sqrt();
    let rmse_b = (squared["v2"].iter().sum::<f64>() / 300.0).sqrt();
    assert!(close(
        figure("rmse").difference.expect("d"),
        rmse_b - rmse_a,
        1e-9
    ));
    assert!(figure("mape").p_value.is_none());

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/compare.py");
    let input = json!({
        "proportions": {"xa": xa, "na": 700, "xb": xb, "nb": 350},
        "squared": {"a": squared["v1"], "b": squared["v2"]},
        "absolute": {"a": absolute["v1"], "b": absolute["v2"]},
    });
    let Some(output) = python::run(&script, &input.to_string()) else {
        return;
    };
    let want: Value = serde_json::from_str(&output).expect("reference JSON");
    for (name, got) in [
        ("accuracy", accuracy.p_value),
        ("rmse", figure("rmse").p_value),
        ("mae", figure("mae").p_value),
    ] {
        let got = got.unwrap_or_else(|| panic!("no p-value for {name}"));
        let want = want[name].as_f64().expect("number");
        assert!(
            close(got, want, 1e-9),
            "{name}: osprey {got} reference {want}"
        );
    }
}
