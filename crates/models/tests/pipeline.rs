//! The whole path inside the crate: prediction, actuals and reference
//! requests through `Models`, one evaluation, and the series it writes
//! compared with scipy, scikit-learn, statsmodels and Evidently computed
//! on the same records (`reference/statistics.py`). Also: a refused
//! request stores nothing, and the log brings everything back after a
//! restart.

#[path = "../../promql/tests/python/mod.rs"]
mod python;

use models::Models;
use python::{Rng, close};
use serde_json::{Value, json};
use std::path::PathBuf;

const NOW_MS: i64 = 1_800_000_000_000;

fn normal(rng: &mut Rng, mean: f64, sd: f64) -> f64 {
    let u = rng.uniform().max(1e-300);
    let v = rng.uniform();
    mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// One generated data set: the reference, two versions' predictions
/// (v2 worse), and the actuals for most of them.
struct Data {
    reference: Vec<Value>,
    predictions: Vec<Value>,
    actuals: Vec<Value>,
}

fn generate() -> Data {
    let mut rng = Rng(7);
    let cities = ["Oslo", "Bergen", "Tromso"];
    let record = |rng: &mut Rng, i: usize, version: &str, age_shift: f64, skill: f64, t: f64| {
        let age = normal(rng, 40.0 + age_shift, 10.0);
        let income = normal(rng, 50.0, 15.0);
        let city = cities[(rng.uniform() * if age_shift > 0.0 { 2.0 } else { 3.0 }) as usize];
        let truth = if age + 0.3 * income + normal(rng, 0.0, 8.0) > 55.0 {
            "yes"
        } else {
            "no"
        };
        let right = rng.uniform() < skill;
        let predicted = if right {
            truth
        } else if truth == "yes" {
            "no"
        } else {
            "yes"
        };
        let p_yes = if predicted == "yes" {
            0.5 + 0.5 * rng.uniform()
        } else {
            0.5 * rng.uniform()
        };
        let shap_age = (age - 40.0) / 20.0;
        (
            json!({
                "id": format!("{version}-{i}"), "version": version, "timestamp": t,
                "features": {"age": age, "income": income, "city": city},
                "prediction": predicted,
                "scores": {"yes": p_yes, "no": 1.0 - p_yes},
                "shap": {"age": shap_age, "income": (income - 50.0) / 40.0, "city": 0.01},
            }),
            truth,
        )
    };
    let mut reference = Vec::new();
    for i in 0..1500 {
        let (mut r, truth) = record(&mut rng, i, "v1", 0.0, 0.9, 0.0);
        let o = r.as_object_mut().expect("object");
        o.remove("id");
        o.remove("version");
        o.remove("timestamp");
        o.insert("actual".into(), json!(truth));
        reference.push(r);
    }
    let (mut predictions, mut actuals) = (Vec::new(), Vec::new());
    let now = NOW_MS as f64 / 1000.0;
    for (version, n, skill) in [("v1", 3000, 0.9), ("v2", 1200, 0.75)] {
        for i in 0..n {
            // Predictions over the first half of the window; the age
            // feature has drifted by 8 years since the reference.
            let t = now - 3000.0 + 1500.0 * i as f64 / n as f64;
            let (r, truth) = record(&mut rng, i, version, 8.0, skill, t);
            if rng.uniform() < 0.8 {
                // Actuals arrive later, in the second half.
                actuals.push(json!({"id": r["id"], "actual": truth, "timestamp": t + 1200.0}));
            }
            predictions.push(r);
        }
    }
    Data {
        reference,
        predictions,
        actuals,
    }
}

fn find(series: &[(model::Labels, f64)], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .find(|(l, _)| {
            l.metric_name() == Some(name) && labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .map(|(_, v)| *v)
}

fn post(models: &Models, what: &str, records: &[Value]) {
    // A reference upload replaces the previous one: it goes in one body.
    let size = if what == "reference" {
        records.len()
    } else {
        1000
    };
    for chunk in records.chunks(size) {
        let body = json!({"records": chunk}).to_string();
        let result = match what {
            "predictions" => models.ingest_predictions("churn", body.as_bytes()),
            "actuals" => models.ingest_actuals("churn", body.as_bytes()),
            _ => models.set_reference("churn", body.as_bytes()),
        };
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn series_agree_with_the_reference_libraries_and_survive_a_restart() {
    let data = generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let models = Models::open(Some(dir.path().to_path_buf()), &[]).expect("open");
    post(&models, "reference", &data.reference);
    post(&models, "predictions", &data.predictions);
    post(&models, "actuals", &data.actuals);

    // A request with one bad record is refused whole and names it.
    let mut bad = data.predictions[..3].to_vec();
    bad[2]["features"]["age"] = json!("old");
    for r in bad.iter_mut() {
        r["id"] = json!(format!("bad-{}", r["id"]));
    }
    let err = models
        .ingest_predictions("churn", json!({"records": bad}).to_string().as_bytes())
        .unwrap_err();
    assert_eq!(err.kind, models::ErrorKind::BadData);
    assert!(
        err.message
            .starts_with("records[2].features.age: the feature holds numbers; got a string"),
        "{}",
        err.message
    );

    let series = models.evaluate_model("churn", NOW_MS);
    let records_v1 = find(&series, "osprey_model_records", &[("version", "v1")]);
    assert_eq!(
        records_v1,
        Some(3000.0),
        "the refused request added nothing"
    );

    // The same figures from the reference libraries.
    let pick = |version: &str, feature: &str| -> Vec<Value> {
        data.predictions
            .iter()
            .filter(|r| r["version"] == version)
            .map(|r| r["features"][feature].clone())
            .collect()
    };
    let reference_of = |feature: &str| -> Vec<Value> {
        data.reference
            .iter()
            .map(|r| r["features"][feature].clone())
            .collect()
    };
    let truth: std::collections::HashMap<String, String> = data
        .actuals
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or("").to_string(),
                a["actual"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let joined = |version: &str| -> (Vec<String>, Vec<String>, Vec<Vec<f64>>) {
        let (mut y, mut p, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for r in data.predictions.iter().filter(|r| r["version"] == version) {
            if let Some(t) = truth.get(r["id"].as_str().unwrap_or("")) {
                y.push(t.clone());
                p.push(r["prediction"].as_str().unwrap_or("").to_string());
                s.push(vec![
                    r["scores"]["no"].as_f64().unwrap_or(0.0),
                    r["scores"]["yes"].as_f64().unwrap_or(0.0),
                ]);
            }
        }
        (y, p, s)
    };
    let (y1, p1, s1) = joined("v1");
    let (y2, p2, _) = joined("v2");
    let correct =
        |y: &[String], p: &[String]| y.iter().zip(p).filter(|(a, b)| a == b).count() as f64;
    let input = json!({
        "numeric": [
            {"reference": reference_of("age"), "current": pick("v1", "age")},
            {"reference": reference_of("income"), "current": pick("v1", "income")},
        ],
        "categorical": [{"reference": reference_of("city"), "current": pick("v1", "city")}],
        "classification": [{"classes": ["no", "yes"], "actual": y1, "predicted": p1, "scores": s1}],
        "proportions": [{"x1": correct(&y2, &p2), "n1": y2.len(), "x2": correct(&y1, &p1), "n2": y1.len()}],
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/statistics.py");
    let check_against_reference = |series: &[(model::Labels, f64)]| {
        let Some(output) = python::run(&script, &input.to_string()) else {
            return;
        };
        let want: Value = serde_json::from_str(&output).expect("reference JSON");
        let expect = |name: &str, labels: &[(&str, &str)], want: &Value| {
            let got = find(series, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"));
            let want = want.as_f64().expect("number");
            assert!(
                close(got, want, 1e-9),
                "{name} {labels:?}: osprey {got} reference {want}"
            );
        };
        for (i, feature) in ["age", "income"].iter().enumerate() {
            let w = &want["numeric"][i];
            for method in ["psi", "kl", "js", "ks", "ks_pvalue", "wasserstein"] {
                expect(
                    "osprey_model_feature_drift",
                    &[("version", "v1"), ("feature", feature), ("method", method)],
                    &w[method],
                );
            }
            let default = w["default"].as_str().expect("default");
            assert!(
                find(
                    series,
                    "osprey_model_feature_drifted",
                    &[("version", "v1"), ("feature", feature), ("method", default)]
                )
                .is_some(),
                "{feature}: default method {default}"
            );
        }
        for method in ["psi", "js", "chi2_pvalue"] {
            expect(
                "osprey_model_feature_drift",
                &[("version", "v1"), ("feature", "city"), ("method", method)],
                &want["categorical"][0][method],
            );
        }
        for metric in ["accuracy", "precision", "recall", "f1", "roc_auc"] {
            expect(
                &format!("osprey_model_{metric}"),
                &[("version", "v1")],
                &want["classification"][0][metric],
            );
        }
        expect(
            "osprey_model_version_comparison_pvalue",
            &[
                ("version", "v2"),
                ("baseline", "v1"),
                ("metric", "accuracy"),
            ],
            &want["proportions"][0]["pvalue"],
        );
    };
    check_against_reference(&series);

    // The drifted feature drifts, the other does not; v2 is worse.
    let drifted = |f: &str| {
        find(
            &series,
            "osprey_model_feature_drift",
            &[("version", "v1"), ("feature", f), ("method", "psi")],
        )
    };
    assert!(drifted("age").expect("age psi") > 0.1);
    assert!(drifted("income").expect("income psi") < 0.1);
    let diff = find(
        &series,
        "osprey_model_version_comparison",
        &[("version", "v2"), ("metric", "accuracy")],
    )
    .expect("comparison");
    assert!(diff < -0.05, "v2 accuracy minus v1's: {diff}");
    assert!(
        find(
            &series,
            "osprey_model_feature_importance",
            &[("version", "v1"), ("feature", "age")]
        )
        .is_some()
    );
    assert!(
        find(
            &series,
            "osprey_model_actuals_delay_seconds",
            &[("version", "v1")]
        ) == Some(1200.0)
    );

    // After a restart the log and reference.json bring back the same series.
    drop(models);
    let reopened = Models::open(Some(dir.path().to_path_buf()), &[]).expect("reopen");
    let again = reopened.evaluate_model("churn", NOW_MS);
    let mut a: Vec<String> = series.iter().map(|(l, v)| format!("{l} {v}")).collect();
    let mut b: Vec<String> = again.iter().map(|(l, v)| format!("{l} {v}")).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// An actual that arrives before its prediction waits for it; the
/// version limit refuses a request whole; a body of the wrong kind for
/// the model's task is refused naming the record.
#[test]
fn early_actuals_limits_and_task_checks() {
    let models = Models::in_memory();
    let t = NOW_MS as f64 / 1000.0 - 60.0;
    let actual = json!({"records": [{"id": "a", "actual": 2.0, "timestamp": t + 10.0}]});
    let accepted = models
        .ingest_actuals("m", actual.to_string().as_bytes())
        .expect("actuals");
    assert_eq!(accepted.waiting, 1);
    let prediction = |id: &str, version: String, p: Value| json!({"id": id, "version": version, "timestamp": t, "features": {"x": 1.0}, "prediction": p});
    let body = json!({"records": [prediction("a", "v0".into(), json!(1.5))]});
    let accepted = models
        .ingest_predictions("m", body.to_string().as_bytes())
        .expect("predictions");
    assert_eq!(accepted.joined, 1);
    let series = models.evaluate_model("m", NOW_MS);
    assert_eq!(
        find(&series, "osprey_model_mae", &[("version", "v0")]),
        Some(0.5)
    );

    // A regression model refuses a class name as a prediction.
    let body = json!({"records": [prediction("b", "v0".into(), json!("cat"))]});
    let err = models
        .ingest_predictions("m", body.to_string().as_bytes())
        .unwrap_err();
    assert_eq!(
        err.message,
        "records[0].prediction: the model is a regression; expected a number"
    );

    // Past the version limit the whole request is refused.
    let many: Vec<Value> = (0..=models::store::MAX_VERSIONS)
        .map(|v| prediction(&format!("id{v}"), format!("v{v}"), json!(1.0)))
        .collect();
    let err = models
        .ingest_predictions("m", json!({"records": many}).to_string().as_bytes())
        .unwrap_err();
    assert!(err.message.contains("versions already"), "{}", err.message);
    let series = models.evaluate_model("m", NOW_MS);
    let versions = series
        .iter()
        .filter(|(l, _)| l.metric_name() == Some("osprey_model_records"))
        .count();
    assert_eq!(versions, 1, "nothing of the refused request was kept");
}

/// A reference upload replaces the previous one whole, also after a
/// restart (reference.json holds the last one).
#[test]
fn a_reference_upload_replaces_the_previous_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = |values: &[f64]| {
        let records: Vec<Value> = values
            .iter()
            .map(|x| json!({"features": {"x": x}, "prediction": x}))
            .collect();
        json!({ "records": records }).to_string()
    };
    let models = Models::open(Some(dir.path().to_path_buf()), &[]).expect("open");
    let first: Vec<f64> = (0..10).map(f64::from).collect();
    models
        .set_reference("m", reference(&first).as_bytes())
        .expect("first reference");
    let second = [100.0, 101.0, 102.0, 103.0, 104.0];
    models
        .set_reference("m", reference(&second).as_bytes())
        .expect("second reference");
    let t = NOW_MS as f64 / 1000.0 - 60.0;
    let predictions: Vec<Value> = [100.5, 101.5, 5.0, 103.5]
        .iter()
        .enumerate()
        .map(|(i, x)| json!({"id": i, "version": "v1", "timestamp": t, "features": {"x": x}, "prediction": x}))
        .collect();
    models
        .ingest_predictions(
            "m",
            json!({ "records": predictions }).to_string().as_bytes(),
        )
        .expect("predictions");
    let check = |models: &Models| {
        let series = models.evaluate_model("m", NOW_MS);
        assert_eq!(
            find(&series, "osprey_model_reference_records", &[]),
            Some(5.0)
        );
        // Only 5.0 lies outside the second reference's [100, 104].
        assert_eq!(
            find(
                &series,
                "osprey_model_feature_out_of_range_ratio",
                &[("version", "v1"), ("feature", "x")]
            ),
            Some(0.25)
        );
    };
    check(&models);
    drop(models);
    check(&Models::open(Some(dir.path().to_path_buf()), &[]).expect("reopen"));
}

/// Data quality, importance rank change and prediction drift on records
/// small enough to count by hand.
#[test]
fn data_quality_importance_rank_and_prediction_drift() {
    let models = Models::in_memory();
    let reference: Vec<Value> = (1..=4)
        .map(|i| {
            json!({"features": {"x": i, "c": if i <= 2 { "a" } else { "b" }},
                   "prediction": i, "shap": {"x": 1.0, "c": 0.1}})
        })
        .collect();
    models
        .set_reference("m", json!({ "records": reference }).to_string().as_bytes())
        .expect("reference");
    let t = NOW_MS as f64 / 1000.0 - 60.0;
    let current = [
        json!({"x": 1, "c": "a"}),
        json!({"x": null, "c": "z"}),
        json!({"c": "b"}),
        json!({"x": 2, "c": "z"}),
    ];
    let predictions = [1.0, 2.0, 3.0, 9.0];
    let records: Vec<Value> = current
        .iter()
        .zip(predictions)
        .enumerate()
        .map(|(i, (f, p))| json!({"id": i, "version": "v1", "timestamp": t, "features": f, "prediction": p, "shap": {"x": 0.1, "c": 1.0}}))
        .collect();
    models
        .ingest_predictions("m", json!({ "records": records }).to_string().as_bytes())
        .expect("predictions");
    let series = models.evaluate_model("m", NOW_MS);
    let get = |name: &str, labels: &[(&str, &str)]| {
        find(&series, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    let x = [("version", "v1"), ("feature", "x")];
    let c = [("version", "v1"), ("feature", "c")];
    // x: absent once and null once out of four.
    assert_eq!(get("osprey_model_feature_missing_ratio", &x), 0.5);
    assert_eq!(get("osprey_model_feature_missing_ratio", &c), 0.0);
    // c: "z" twice, a category the reference never had.
    assert_eq!(get("osprey_model_feature_new_category_ratio", &c), 0.5);
    // Mean |SHAP|; x fell from first to second, c rose from second to first.
    assert_eq!(get("osprey_model_feature_importance", &x), 0.1);
    assert_eq!(get("osprey_model_feature_importance_rank_change", &x), -1.0);
    assert_eq!(get("osprey_model_feature_importance_rank_change", &c), 1.0);
    // The prediction as a numeric feature (a regression).
    let ks = models::stats::ks_statistic(&predictions, &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        get(
            "osprey_model_prediction_drift",
            &[("version", "v1"), ("method", "ks")]
        ),
        ks
    );
    assert_eq!(ks, 0.25);
}

/// Records of one request that list their features in another order, or
/// other features, than the record before: each is checked and counted
/// by name (ingest reuses the previous record's names where they match).
#[test]
fn records_listing_features_differently_are_checked_and_counted_by_name() {
    let models = Models::in_memory();
    let t = NOW_MS as f64 / 1000.0 - 60.0;
    let record = |id: &str, features: &str| {
        format!(
            r#"{{"id": "{id}", "version": "v0", "timestamp": {t}, "features": {{{features}}}, "prediction": 1.0}}"#
        )
    };
    let refused = [
        // The same number of names as the record before, one repeated.
        (
            vec![
                record("a", r#""x": 1, "y": 2"#),
                record("b", r#""x": 3, "x": 4"#),
            ],
            "records[1].features: duplicate name \"x\"",
        ),
        // The same name at the same place, now with a string.
        (
            vec![record("a", r#""x": 1"#), record("b", r#""x": "cat""#)],
            "records[1].features.x: the feature holds numbers; got a string",
        ),
        // Moved to another place, now with a string.
        (
            vec![
                record("a", r#""x": 1, "y": 2"#),
                record("b", r#""y": 3, "x": "cat""#),
            ],
            "records[1].features.x: the feature holds numbers; got a string",
        ),
    ];
    for (records, want) in refused {
        let body = format!(r#"{{"records": [{}]}}"#, records.join(","));
        let err = models.ingest_predictions("m", body.as_bytes()).unwrap_err();
        assert!(err.message.starts_with(want), "{} vs {want}", err.message);
    }
    assert!(
        models.names().is_empty(),
        "a refused request created the model"
    );

    let records = [
        record("a", r#""x": 1, "y": 10"#),
        record("b", r#""y": 20, "x": 2"#),
        record("c", r#""x": 3, "z": "red""#),
        record("d", r#""z": "blue", "x": 4, "y": null"#),
    ];
    let body = format!(r#"{{"records": [{}]}}"#, records.join(","));
    models
        .ingest_predictions("m", body.as_bytes())
        .expect("predictions");
    let series = models.evaluate_model("m", NOW_MS);
    let missing = |feature: &str| {
        find(
            &series,
            "osprey_model_feature_missing_ratio",
            &[("version", "v0"), ("feature", feature)],
        )
    };
    assert_eq!(missing("x"), Some(0.0));
    assert_eq!(missing("y"), Some(0.5));
    assert_eq!(missing("z"), Some(0.5));
    // z holds categories wherever it was listed.
    let body = format!(r#"{{"records": [{}]}}"#, record("e", r#""x": 5, "z": 1"#));
    let err = models.ingest_predictions("m", body.as_bytes()).unwrap_err();
    assert_eq!(
        err.message,
        "records[0].features.z: the feature holds strings; got a number"
    );
}
