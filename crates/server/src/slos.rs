//! SLOs as the server runs them: the `slos:` section's spec files read
//! and turned into rule groups when a configuration is prepared (a broken
//! spec fails the reload), the groups handed to the rule manager with the
//! `rule_files` groups, and `GET /api/osprey/slos`, what the SLO page
//! shows: each SLO's objective, period, budget method, alert windows and
//! generated rules. The values (SLI, budget, burn rates) are ordinary
//! series the page queries.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::success;

/// `sloth_mode` of the rules the server generates (Sloth's CLI writes
/// `cli-gen-prom`; `osprey slo generate` does too).
pub const SERVER_MODE: &str = "osprey-server";

/// The SLOs of a configuration, read and with their rules generated.
#[derive(Default)]
pub struct PreparedSlos {
    slos: Vec<SloEntry>,
}

struct SloEntry {
    slo: slo::Slo,
    groups: Vec<rules::GroupSpec>,
}

impl PreparedSlos {
    /// Reads the `slos:` section's files and generates their rules;
    /// errors name file, line and field.
    pub fn load(config: &config::Config) -> Result<PreparedSlos, String> {
        let options = slo::ParseOptions::from_config(&config.slos);
        let slos = slo::load_files(&config.slos.files(), &options).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let generate = generate_options(SERVER_MODE);
        let mut entries = Vec::with_capacity(slos.len());
        for slo in slos {
            let groups = slo::generate(&slo, &generate)
                .map_err(|e| format!("{}:{}: {}: {e}", slo.file, slo.line, slo.id))?;
            entries.push(SloEntry { slo, groups });
        }
        Ok(PreparedSlos { slos: entries })
    }

    /// Every generated rule group, for the rule manager.
    pub fn rule_groups(&self) -> Vec<rules::GroupSpec> {
        self.slos.iter().flat_map(|e| e.groups.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.slos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slos.is_empty()
    }

    /// One line per SLO whose period is longer than storage keeps
    /// samples: its budget would silently cover less than its period.
    pub fn retention_warnings(&self, retention_ms: Option<i64>) -> Vec<String> {
        let Some(retention_ms) = retention_ms.filter(|ms| *ms > 0) else {
            return Vec::new();
        };
        self.slos
            .iter()
            .filter(|e| e.slo.period.max_ms() > retention_ms)
            .map(|e| retention_warning(&e.slo, retention_ms))
            .collect()
    }
}

/// What the rules the server generates say about their generator.
pub fn generate_options(mode: &str) -> slo::GenerateOptions {
    slo::GenerateOptions {
        mode: mode.to_string(),
        version: format!("osprey-{}", env!("CARGO_PKG_VERSION")),
        extra_labels: Default::default(),
    }
}

/// The warning for an SLO whose period outlasts the storage retention.
pub fn retention_warning(slo: &slo::Slo, retention_ms: i64) -> String {
    format!(
        "{}:{}: SLO {}: storage keeps {} of samples (--retention.time) but the SLO's period is {}: its budget and period SLI cover only the last {}",
        slo.file,
        slo.line,
        slo.id,
        model::duration::format_duration_ms(retention_ms),
        slo.period.text(),
        model::duration::format_duration_ms(retention_ms),
    )
}

/// The SLOs in effect and their warnings.
#[derive(Clone, Default)]
pub(crate) struct SloState {
    inner: Arc<std::sync::RwLock<Arc<Applied>>>,
}

#[derive(Default)]
struct Applied {
    slos: PreparedSlos,
    warnings: Vec<String>,
}

impl SloState {
    pub(crate) fn set(&self, slos: PreparedSlos, warnings: Vec<String>) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Applied { slos, warnings });
    }

    fn get(&self) -> Arc<Applied> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `GET /api/osprey/slos`: every SLO in effect.
pub(crate) async fn slos_api(State(state): State<AppState>) -> Response {
    let applied = state.slos().get();
    let slos: Vec<Value> = applied.slos.slos.iter().map(slo_json).collect();
    let warnings: Vec<&str> = applied.warnings.iter().map(String::as_str).collect();
    success(json!({ "slos": slos, "warnings": warnings }), &[])
}

fn slo_json(entry: &SloEntry) -> Value {
    let slo = &entry.slo;
    let windows = slo::windows::AlertWindows::for_period(slo.period);
    let window_json = |w: &slo::windows::AlertWindow| {
        json!({
            "severity": w.severity.text(),
            "short": model::duration::format_duration_ms(w.short_ms),
            "long": model::duration::format_duration_ms(w.long_ms),
            "shortSeconds": w.short_ms / 1000,
            "longSeconds": w.long_ms / 1000,
            "factor": w.factor,
            "budgetPercent": w.budget_percent,
        })
    };
    let alert_json = |severity: &str, meta: &Option<slo::AlertMeta>| {
        meta.as_ref()
            .map(|m| json!({ "severity": severity, "name": m.name }))
    };
    let alerts: Vec<Value> = [
        alert_json("page", &slo.page_alert),
        alert_json("ticket", &slo.ticket_alert),
    ]
    .into_iter()
    .flatten()
    .collect();
    json!({
        "id": slo.id,
        "name": slo.name,
        "service": slo.service,
        "description": slo.description,
        "objective": slo.objective_percent,
        "objectiveRatio": slo.objective_ratio(),
        "period": slo.period.text(),
        "calendar": slo.period.is_calendar(),
        "periodSeconds": slo.period.nominal_ms() / 1000,
        "budgetMethod": slo.budget_method.text(),
        "budgetSeries": slo::generate::budget_remaining_metric(slo),
        "periodSliSeries": slo::generate::sli_metric_for_period(slo.period),
        "indicator": slo.indicator,
        "hasEvents": slo.has_events(),
        "minEvents": slo.min_events,
        "spec": slo.spec,
        "file": slo.file,
        "line": slo.line,
        "labels": slo.labels,
        "windows": windows.all().iter().map(window_json).collect::<Vec<_>>(),
        "alerts": alerts,
        "groups": entry.groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
        "rules": slo::print::rule_file("", &entry.groups),
    })
}
