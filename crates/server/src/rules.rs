//! Rules as the server runs them: `rule_files` from the configuration,
//! the rule manager, and the `/api/v1/rules` and `/api/v1/alerts`
//! endpoints.
//!
//! Alerts leave through a [`notifier::AlertSender`], configured from the
//! `alerting` section on every load (`lifecycle.rs`), which also plugs in
//! the embedded alert manager.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use notifier::AlertSender;
use rules::{AlertState, EvalEnv, GroupOptions, RuleKind, RuleManager};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::api::{labels_json, read_params, success};
use crate::scraping::rfc3339_ms;

/// Rule timing flags (`--rules.alert.*`).
#[derive(Clone, Debug)]
pub struct RuleFlags {
    /// Minimum time between re-sends of an unchanged firing alert; 1m.
    pub resend_delay_ms: i64,
    /// Longest outage after which `for` state is still restored; 1h.
    pub outage_tolerance_ms: i64,
    /// Minimum wait after a restart before a restored alert fires.
    /// Prometheus defaults to 10m; osprey to 0, so that an alert pending
    /// for 6 of its 10 minutes fires 4 minutes after a restart.
    pub for_grace_period_ms: i64,
}

impl RuleFlags {
    pub fn osprey_defaults() -> RuleFlags {
        RuleFlags {
            resend_delay_ms: 60_000,
            outage_tolerance_ms: 3_600_000,
            for_grace_period_ms: 0,
        }
    }
}

pub(crate) struct RulesState {
    pub manager: RuleManager,
    pub sender: Arc<AlertSender>,
}

/// The rule groups of a config (its `rule_files` plus built-in files),
/// read and checked; errors name file and line.
pub(crate) fn read_rule_groups(
    config: &config::Config,
    embedded: &[(String, String)],
    features: promql::ParseOptions,
) -> Result<Vec<rules::GroupSpec>, String> {
    let join = |errors: Vec<rules::RuleFileError>| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut specs = Vec::new();
    for (name, text) in embedded {
        specs.extend(rules::parse_rule_file(name, text).map_err(join)?);
    }
    specs.extend(rules::read_rule_files_with(&config.rule_files(), features).map_err(join)?);
    // The starter anomaly rules, when the config asks (docs/anomaly.md).
    if config.anomaly_rules {
        specs.extend(
            rules::parse_rule_file(
                crate::lifecycle::ANOMALY_RULES_NAME,
                crate::lifecycle::ANOMALY_RULES,
            )
            .map_err(join)?,
        );
    }
    // Each configured model's starter alert rules (docs/models.md).
    for model in &config.models {
        let name = format!("<starter rules of model {}>", model.name);
        specs.extend(
            rules::parse_rule_file(&name, &models::alerts::starter_rules(model)).map_err(join)?,
        );
    }
    // The cost rules: cost per step, budget forecasts and alerts
    // (docs/costs.md).
    if let Some(costs) = &config.costs {
        let text = cost::rule_file(costs);
        if !text.is_empty() {
            specs.extend(rules::parse_rule_file(COST_RULES_NAME, &text).map_err(join)?);
        }
    }
    Ok(specs)
}

/// The name rule errors and the rules API give the generated cost rules.
pub const COST_RULES_NAME: &str = "<cost rules>";

/// The number of rules the `costs:` section generates (0 without one),
/// or why they do not parse; for `osprey check config`.
pub fn check_cost_rules(config: &config::Config) -> Result<usize, String> {
    let Some(costs) = &config.costs else {
        return Ok(0);
    };
    let text = cost::rule_file(costs);
    if text.is_empty() {
        return Ok(0);
    }
    let groups = rules::parse_rule_file(COST_RULES_NAME, &text).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok(groups.iter().map(|g| g.rules.len()).sum())
}

/// The rule settings a config gives.
pub(crate) fn rule_settings(config: &config::Config) -> rules::RuleSettings {
    rules::RuleSettings {
        external_labels: config.global.external_labels.clone(),
        default_interval_ms: config.global.evaluation_interval_ms,
        default_query_offset_ms: config.global.rule_query_offset_ms,
    }
}

impl AppState {
    /// The rule manager and alert sender, created on first use.
    pub(crate) fn rules_or_init(&self, config: &config::Config) -> &RulesState {
        self.inner.rules.get_or_init(|| {
            let flags = &self.config().rule_flags;
            let sender = Arc::new(AlertSender::new());
            let env = EvalEnv {
                engine: self.engine().clone(),
                queryable: self.queryable().clone(),
                appendable: self.appendable(),
                external_labels: config.global.external_labels.clone(),
                external_url: self.config().external_url.clone(),
            };
            let options = GroupOptions {
                default_interval_ms: config.global.evaluation_interval_ms,
                default_query_offset_ms: config.global.rule_query_offset_ms,
                resend_delay_ms: flags.resend_delay_ms,
                outage_tolerance_ms: flags.outage_tolerance_ms,
                for_grace_period_ms: flags.for_grace_period_ms,
            };
            let clock = self.inner.clock.clone();
            RulesState {
                manager: RuleManager::new(
                    env,
                    options,
                    sender.clone(),
                    clock,
                    tokio::runtime::Handle::current(),
                ),
                sender,
            }
        })
    }

    pub(crate) fn rules(&self) -> Option<&RulesState> {
        self.inner.rules.get()
    }

    /// Stops rule evaluation.
    pub fn stop_rules(&self) {
        if let Some(rules) = self.rules() {
            rules.manager.stop();
        }
    }
}

/// `GET /api/v1/rules` with `type` (alert|record), `rule_name[]`,
/// `group_name[]`, `file[]` and `exclude_alerts`.
pub(crate) async fn rules_api(State(state): State<AppState>, request: Request) -> Response {
    let params = match read_params(request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let kind = params.get("type").unwrap_or("").to_ascii_lowercase();
    if !kind.is_empty() && kind != "alert" && kind != "record" {
        return crate::ApiError::bad_data(format!("unsupported type {kind:?}")).into_response();
    }
    let rule_names = params.all("rule_name[]");
    let group_names = params.all("group_name[]");
    let files = params.all("file[]");
    let exclude_alerts = params.get("exclude_alerts") == Some("true");
    let mut groups_json = Vec::new();
    let groups = state
        .rules()
        .map(|r| r.manager.groups())
        .unwrap_or_default();
    for group in groups {
        let Ok(group) = group.lock() else { continue };
        if !group_names.is_empty() && !group_names.contains(&group.name.as_str()) {
            continue;
        }
        if !files.is_empty() && !files.contains(&group.file.as_str()) {
            continue;
        }
        let mut rules_json = Vec::new();
        for rule in &group.rules {
            let alerting = rule.is_alerting();
            if (kind == "alert" && !alerting) || (kind == "record" && alerting) {
                continue;
            }
            if !rule_names.is_empty() && !rule_names.contains(&rule.spec.name()) {
                continue;
            }
            rules_json.push(rule_json(rule, exclude_alerts));
        }
        if rules_json.is_empty() && (!kind.is_empty() || !rule_names.is_empty()) {
            continue;
        }
        groups_json.push(json!({
            "name": group.name,
            "file": group.file,
            "rules": rules_json,
            "interval": group.interval_ms as f64 / 1000.0,
            "limit": group.limit,
            "evaluationTime": group.evaluation_time.as_secs_f64(),
            "lastEvaluation": last_evaluation(group.last_evaluation_ms),
        }));
    }
    success(json!({ "groups": groups_json }), &[])
}

fn last_evaluation(ms: Option<i64>) -> String {
    ms.map(rfc3339_ms)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

fn rule_json(rule: &rules::Rule, exclude_alerts: bool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(rule.spec.name()));
    out.insert("query".into(), json!(rule.spec.expr));
    let labels: Map<String, Value> = rule
        .spec
        .labels
        .iter()
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    match &rule.spec.kind {
        RuleKind::Alerting {
            for_ms,
            keep_firing_for_ms,
            annotations,
            ..
        } => {
            out.insert("state".into(), json!(rule.state().as_str()));
            out.insert("duration".into(), json!(*for_ms as f64 / 1000.0));
            out.insert(
                "keepFiringFor".into(),
                json!(*keep_firing_for_ms as f64 / 1000.0),
            );
            out.insert("labels".into(), Value::Object(labels));
            let annotations: Map<String, Value> = annotations
                .iter()
                .map(|(n, v)| (n.clone(), json!(v)))
                .collect();
            out.insert("annotations".into(), Value::Object(annotations));
            if !exclude_alerts {
                let alerts: Vec<Value> = rule
                    .alerts()
                    .into_iter()
                    .filter(|a| a.state != AlertState::Inactive)
                    .map(alert_json)
                    .collect();
                out.insert("alerts".into(), Value::Array(alerts));
            }
            out.insert("type".into(), json!("alerting"));
        }
        RuleKind::Recording { .. } => {
            out.insert("labels".into(), Value::Object(labels));
            out.insert("type".into(), json!("recording"));
        }
    }
    out.insert("health".into(), json!(rule.health.as_str()));
    if let Some(error) = &rule.last_error {
        out.insert("lastError".into(), json!(error));
    }
    out.insert(
        "evaluationTime".into(),
        json!(rule.evaluation_time.as_secs_f64()),
    );
    out.insert(
        "lastEvaluation".into(),
        json!(last_evaluation(rule.last_evaluation_ms)),
    );
    Value::Object(out)
}

fn alert_json(alert: &rules::Alert) -> Value {
    let mut out = Map::new();
    out.insert("labels".into(), labels_json(&alert.labels));
    let annotations: Map<String, Value> = alert
        .annotations
        .iter()
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    out.insert("annotations".into(), Value::Object(annotations));
    out.insert("state".into(), json!(alert.state.as_str()));
    out.insert("activeAt".into(), json!(rfc3339_ms(alert.active_at_ms)));
    if let Some(since) = alert.keep_firing_since_ms {
        out.insert("keepFiringSince".into(), json!(rfc3339_ms(since)));
    }
    out.insert("value".into(), json!(go_exponent(alert.value)));
    Value::Object(out)
}

/// A float as Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`,
/// `1.5e+03`, as Prometheus prints alert values.
pub(crate) fn go_exponent(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub(crate) async fn alerts_api(State(state): State<AppState>) -> Response {
    let mut alerts = Vec::new();
    let groups = state
        .rules()
        .map(|r| r.manager.groups())
        .unwrap_or_default();
    for group in groups {
        let Ok(group) = group.lock() else { continue };
        for rule in &group.rules {
            for alert in rule.alerts() {
                if alert.state != AlertState::Inactive {
                    alerts.push(alert_json(alert));
                }
            }
        }
    }
    success(json!({ "alerts": alerts }), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_go_exponent_format() {
        assert_eq!(go_exponent(1.0), "1e+00");
        assert_eq!(go_exponent(1500.0), "1.5e+03");
        assert_eq!(go_exponent(0.25), "2.5e-01");
        assert_eq!(go_exponent(0.0), "0e+00");
        assert_eq!(go_exponent(-2.0), "-2e+00");
    }

    #[test]
    fn timestamps_print_like_go() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_500), "1970-01-01T00:00:01.5Z");
    }
}
