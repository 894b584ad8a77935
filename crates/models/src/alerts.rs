//! The starter alert rules of a configured model: a rule file (in
//! Prometheus's format) that the server loads into the rule engine like
//! any other, so the alerts reach the alert manager and its receivers
//! (`docs/models.md`, "Retraining triggers").

use config::models::ModelConfig;
use model::duration::format_duration_ms;

/// The rule group's name for `model`.
pub fn group_name(model: &str) -> String {
    format!("osprey-model-{model}")
}

/// The rule file text of `config`'s starter rules.
pub fn starter_rules(config: &ModelConfig) -> String {
    let m = &config.name;
    let every = format_duration_ms(config.evaluation_interval_ms);
    let hold = format_duration_ms(config.alerts.for_ms);
    let missing = format_duration_ms(config.alerts.missing_actuals_for_ms);
    let missing_s = config.alerts.missing_actuals_for_ms as f64 / 1000.0;
    let d = &config.drift;
    let a = &config.alerts;
    let sel = format!("model=\"{m}\"");
    let mut rules = Vec::new();
    let mut rule = |name: &str,
                    expr: String,
                    hold: &str,
                    severity: &str,
                    summary: &str,
                    description: &str| {
        rules.push(format!(
            "      - alert: {name}\n        expr: |\n          {expr}\n        for: {hold}\n        labels:\n          severity: {severity}\n          category: model-quality\n        annotations:\n          summary: \"{summary}\"\n          description: \"{description}\"\n"
        ));
    };
    rule(
        "ModelDataDrift",
        format!("osprey_model_drift_share{{{sel}}} >= {}", d.share),
        &hold,
        "warning",
        "Model {{ $labels.model }} {{ $labels.version }}: {{ $value | humanizePercentage }} of its features drifted",
        &format!(
            "At least {} of the features drift by their default test (p < {}, distances >= {}, PSI >= {}) against the reference. Consider retraining.",
            d.share, d.p_value, d.threshold, d.psi
        ),
    );
    rule(
        "ModelFeatureDrift",
        format!(
            "osprey_model_feature_drift{{{sel}, method=\"psi\"}} >= {}",
            d.psi
        ),
        &hold,
        "info",
        "Model {{ $labels.model }} {{ $labels.version }}: feature {{ $labels.feature }} has PSI {{ $value | printf \\\"%.3f\\\" }}",
        &format!(
            "PSI of the feature against the reference is at or above {}.",
            d.psi
        ),
    );
    rule(
        "ModelPredictionDrift",
        format!(
            "osprey_model_prediction_drift{{{sel}, method=\"psi\"}} >= {}",
            d.psi
        ),
        &hold,
        "warning",
        "Model {{ $labels.model }} {{ $labels.version }}: predictions drifted (PSI {{ $value | printf \\\"%.3f\\\" }})",
        &format!(
            "PSI of the predictions against the reference is at or above {}.",
            d.psi
        ),
    );
    rule(
        "ModelAccuracyLow",
        format!("osprey_model_accuracy{{{sel}}} < {}", a.accuracy_below),
        &hold,
        "critical",
        "Model {{ $labels.model }} {{ $labels.version }}: accuracy {{ $value | humanizePercentage }}",
        &format!(
            "Accuracy over the window's actuals is below {}. Consider retraining.",
            a.accuracy_below
        ),
    );
    rule(
        "ModelErrorHigh",
        format!(
            "osprey_model_rmse{{{sel}}} > on(model, version) {} * osprey_model_reference_performance{{{sel}, metric=\"rmse\"}}",
            a.rmse_increase
        ),
        &hold,
        "critical",
        "Model {{ $labels.model }} {{ $labels.version }}: RMSE {{ $value }} is above the reference's",
        &format!(
            "RMSE over the window's actuals is more than {} times the reference's.",
            a.rmse_increase
        ),
    );
    rule(
        "ModelConceptDrift",
        format!(
            "osprey_model_performance_change_pvalue{{{sel}}} < {p}\n            and on(model, version, metric)\n          (osprey_model_performance_change{{{sel}, metric=\"accuracy\"}} < 0 or osprey_model_performance_change{{{sel}, metric=~\"rmse|mae\"}} > 0)",
            p = d.p_value
        ),
        &hold,
        "warning",
        "Model {{ $labels.model }} {{ $labels.version }}: {{ $labels.metric }} is significantly worse than on the reference",
        &format!(
            "The change of the metric against the reference is significant (p < {}).",
            d.p_value
        ),
    );
    rule(
        "ModelVersionWorse",
        format!(
            "osprey_model_version_comparison_pvalue{{{sel}}} < {p}\n            and on(model, version, baseline, metric)\n          (osprey_model_version_comparison{{{sel}, metric=\"accuracy\"}} < 0 or osprey_model_version_comparison{{{sel}, metric=~\"rmse|mae\"}} > 0)",
            p = d.p_value
        ),
        &hold,
        "warning",
        "Model {{ $labels.model }}: version {{ $labels.version }} is significantly worse than {{ $labels.baseline }} on {{ $labels.metric }}",
        &format!("Two-sided test of the difference, p < {}.", d.p_value),
    );
    rule(
        "ModelActualsMissing",
        format!(
            "(time() - osprey_model_last_actual_timestamp_seconds{{{sel}}} > {missing_s}\n            and on(model) time() - osprey_model_last_prediction_timestamp_seconds{{{sel}}} < {missing_s})\n          or (osprey_model_pending_actuals{{{sel}}} > 0 unless on(model) osprey_model_last_actual_timestamp_seconds{{{sel}}})"
        ),
        &missing,
        "warning",
        "Model {{ $labels.model }}: no actuals for {missing} while predictions arrive",
        "Performance cannot be measured without ground truth; check the pipeline that posts actuals.",
    );
    format!(
        "# Starter alert rules of model {m:?} (osprey, docs/models.md).\ngroups:\n  - name: {}\n    interval: {every}\n    rules:\n{}",
        group_name(m),
        rules.concat()
    )
}
