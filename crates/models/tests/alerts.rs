//! The starter alert rules of a configured model are a valid rule file:
//! for osprey's rule engine and, when installed, for `promtool check
//! rules` (fails instead of skipping under `OSPREY_REQUIRE_EXTERNAL=1`).

#[path = "../../promql/tests/python/mod.rs"]
mod python;

use config::models::ModelConfig;
use std::process::Command;

#[test]
fn starter_rules_load_in_the_rule_engine_and_in_promtool() {
    let mut config = ModelConfig::defaults("churn");
    config.configured = true;
    let text = models::alerts::starter_rules(&config);
    let groups =
        rules::parse_rule_file("churn.yml", &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "osprey-model-churn");
    for alert in [
        "ModelDataDrift",
        "ModelFeatureDrift",
        "ModelPredictionDrift",
        "ModelAccuracyLow",
        "ModelErrorHigh",
        "ModelConceptDrift",
        "ModelVersionWorse",
        "ModelActualsMissing",
    ] {
        assert!(text.contains(&format!("alert: {alert}\n")), "{alert}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("churn.yml");
    std::fs::write(&file, &text).expect("write");
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let output = python::capture(
        Command::new("promtool").args(["check", "rules"]).arg(&file),
        "",
    );
    match output {
        Ok((ok, stdout, stderr)) => assert!(ok, "promtool check rules:\n{stdout}{stderr}"),
        Err(e) => {
            assert!(
                !required,
                "OSPREY_REQUIRE_EXTERNAL=1 but promtool is missing: {e}"
            );
            println!("promtool check skipped: promtool is not installed ({e})");
        }
    }
}
