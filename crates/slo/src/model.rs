//! One SLO as both spec formats describe it, after parsing and checking:
//! what the rule generator and the SLO page need, nothing format-specific.

use std::collections::BTreeMap;

pub use config::slos::{BudgetMethod, Period};

/// A checked SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// `<service>-<name>`: the `sloth_id` label.
    pub id: String,
    /// The `sloth_slo` label.
    pub name: String,
    /// The `sloth_service` label.
    pub service: String,
    pub description: String,
    /// The objective in percent, in (0, 100].
    pub objective_percent: f64,
    /// Labels every recording rule carries (the spec's, the SLO's and any
    /// extra labels, later ones winning).
    pub labels: BTreeMap<String, String>,
    pub sli: Sli,
    /// What the SLI measures, in words, for the SLO page
    /// (`latency ≤ 2 (interpolated between buckets 1 and 2.5)`).
    pub indicator: String,
    pub period: Period,
    pub budget_method: BudgetMethod,
    /// Page alert, unless disabled.
    pub page_alert: Option<AlertMeta>,
    /// Ticket alert, unless disabled.
    pub ticket_alert: Option<AlertMeta>,
    /// Low-traffic protection: no alert pair fires while one of its
    /// windows holds fewer events than this.
    pub min_events: Option<f64>,
    /// `prometheus/v1` or `openslo/v1`: the `sloth_spec` label.
    pub spec: &'static str,
    /// Where the SLO is written.
    pub file: String,
    pub line: u64,
}

impl Slo {
    /// The objective as a ratio (`0.999`).
    pub fn objective_ratio(&self) -> f64 {
        self.objective_percent / 100.0
    }

    /// Whether the SLI counts events (so event-weighted budgets and
    /// low-traffic protection apply).
    pub fn has_events(&self) -> bool {
        matches!(self.sli, Sli::Events { .. })
    }
}

/// How the error ratio over a window is computed. Queries are Go
/// templates whose only variable is `{{.window}}`, rendered once per
/// window.
#[derive(Clone, Debug, PartialEq)]
pub enum Sli {
    /// Bad and total events per second (Sloth's `events`; OpenSLO's
    /// ratio metrics; osprey's latency SLI).
    Events {
        error_query: String,
        total_query: String,
    },
    /// The error ratio itself (Sloth's `raw`; OpenSLO's `raw` ratio
    /// metrics, threshold metrics and time slices).
    Raw { error_ratio_query: String },
}

/// An alert's name, labels and annotations, merged as Sloth merges them
/// (the alerting section's, then the page or ticket alert's).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertMeta {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}
