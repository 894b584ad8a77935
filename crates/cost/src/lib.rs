//! Training and serving cost (`docs/costs.md`): the `costs:` prices turned
//! into dollar counters per job and instance, a training-step counter beside
//! them, and budgets spent per period.
//!
//! [`CostEngine`] integrates in fixed steps of `costs.interval`, aligned to
//! the epoch. A step `(t0, t]` is charged from what the stores held at its
//! two ends, read as an instant selector reads them (the newest sample in
//! the five minutes up to the instant, none when that is a staleness
//! marker):
//!
//! - gauges priced per hour (a GPU series, resident bytes, an `up` series
//!   of a priced target) are held at their value at `t0` for the whole
//!   step: `price × value × (t − t0)`;
//! - counters (CPU seconds, training steps) are charged by every change
//!   between their raw samples from the newest at or before `t0` to the
//!   newest at or before `t`, a decrease being a reset (the new value is
//!   the change), a series' first sample being its baseline (no charge),
//!   so the sum over the steps is exact whatever the step.
//!
//! The counters are written to the store at every step and read back when
//! the server starts ([`CostEngine::restore`]): the steps missed while it
//! was down are evaluated then (from the stored samples, so the counters
//! come out as if it had never stopped), up to [`MAX_CATCH_UP_MS`] back.
//!
//! [`rule_file`] gives the rule group built on these series: cost per
//! step, the budgets' forecast of running out, and the budget alerts.

use std::collections::BTreeMap;

use config::costs::{Budget, CostsConfig, Period};
use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher, is_stale_nan};

/// The dollars spent per job, instance and resource.
pub const COST_METRIC: &str = "osprey_cost_dollars_total";
/// A training job's step counter, copied at the cost steps (reset-free).
pub const STEPS_METRIC: &str = "osprey_cost_training_steps_total";
/// The recording rule's cost per step.
pub const PER_STEP_METRIC: &str = "osprey_cost_per_step_dollars";
pub const BUDGET_METRIC: &str = "osprey_cost_budget_dollars";
pub const BUDGET_SPENT_METRIC: &str = "osprey_cost_budget_spent_dollars";
pub const BUDGET_REMAINING_METRIC: &str = "osprey_cost_budget_remaining_dollars";
pub const BUDGET_SPENT_TOTAL_METRIC: &str = "osprey_cost_budget_spent_dollars_total";
pub const BUDGET_PERIOD_END_METRIC: &str = "osprey_cost_budget_period_end_timestamp_seconds";
pub const BUDGET_EXHAUSTION_METRIC: &str = "osprey_cost_budget_exhaustion_timestamp_seconds";

/// An instant selector's lookback (Prometheus's default).
const LOOKBACK_MS: i64 = 300_000;

/// The furthest back the steps missed while the server was down are
/// evaluated on start; beyond, the gap is not charged (and logged).
pub const MAX_CATCH_UP_MS: i64 = 86_400_000;

/// How far back [`CostEngine::restore`] looks for the counters: a series
/// not written for longer starts again from zero (a counter reset, which
/// `rate` and `increase` absorb).
pub const RESTORE_HORIZON_MS: i64 = 35 * 86_400_000;

/// At most this many steps per [`CostEngine::run_due`] call, so a long
/// catch-up is spread over several ticks.
const MAX_STEPS_PER_CALL: usize = 1000;

/// The cost state: the counters and where the integration stands.
pub struct CostEngine {
    config: CostsConfig,
    /// Dollars by cost series (labels include the metric name).
    dollars: BTreeMap<Labels, f64>,
    /// Training steps by series.
    steps: BTreeMap<Labels, f64>,
    budgets: BTreeMap<String, BudgetState>,
    /// The end of the last step written; `None` before the first.
    last_step_ms: Option<i64>,
    /// What the stores held at `last_step_ms`, when read in this process.
    previous: Option<Snapshot>,
}

#[derive(Clone, Copy, Debug, Default)]
struct BudgetState {
    spent_total: f64,
    spent_period: f64,
    period_start_ms: i64,
}

/// What the stores held at one instant, priced.
struct Snapshot {
    t_ms: i64,
    /// Dollars per hour by cost series (gauges).
    hourly: BTreeMap<Labels, f64>,
}

impl CostEngine {
    /// An engine with no state; call [`CostEngine::restore`] before the
    /// first [`CostEngine::run_due`] when the store may hold counters.
    pub fn new(config: CostsConfig) -> CostEngine {
        CostEngine {
            config,
            dollars: BTreeMap::new(),
            steps: BTreeMap::new(),
            budgets: BTreeMap::new(),
            last_step_ms: None,
            previous: None,
        }
    }

    /// Takes new settings (a config reload); the counters carry on.
    pub fn reconfigure(&mut self, config: CostsConfig) {
        if config != self.config {
            self.config = config;
            self.previous = None;
        }
    }

    /// The settings in effect.
    pub fn config(&self) -> &CostsConfig {
        &self.config
    }

    /// Reads the counters and budgets last written (up to
    /// [`RESTORE_HORIZON_MS`] before `now_ms`) back from `store`, and the
    /// step they were written at.
    pub fn restore(&mut self, store: &dyn Queryable, now_ms: i64) -> Result<(), String> {
        let querier = store
            .querier(now_ms - RESTORE_HORIZON_MS, now_ms)
            .map_err(|e| e.to_string())?;
        let mut last: Option<i64> = None;
        let mut read = |name: &str| -> Result<Vec<(Labels, i64, f64)>, String> {
            let mut out = Vec::new();
            let set = querier
                .select_latest(&[Matcher::equal(model::METRIC_NAME, name)])
                .map_err(|e| e.to_string())?;
            for series in set {
                let mut series = series.map_err(|e| e.to_string())?;
                if let Some((t, v)) = series.samples.next()
                    && !v.is_nan()
                {
                    last = Some(last.map_or(t, |l| l.max(t)));
                    out.push((series.labels, t, v));
                }
            }
            Ok(out)
        };
        for (labels, _, v) in read(COST_METRIC)? {
            self.dollars.insert(labels, v);
        }
        for (labels, _, v) in read(STEPS_METRIC)? {
            self.steps.insert(labels, v);
        }
        for (labels, _, v) in read(BUDGET_SPENT_TOTAL_METRIC)? {
            if let Some(name) = labels.get("budget") {
                self.budgets
                    .entry(name.to_string())
                    .or_default()
                    .spent_total = v;
            }
        }
        for (labels, t, v) in read(BUDGET_SPENT_METRIC)? {
            let Some(name) = labels.get("budget") else {
                continue;
            };
            let Some(budget) = self.config.budgets.iter().find(|b| b.name == name) else {
                continue;
            };
            // The sample at t closes the step (t − interval, t], which
            // belongs to the period holding its start.
            let state = self.budgets.entry(name.to_string()).or_default();
            state.period_start_ms = period_start_ms(budget.period, t - 1);
            state.spent_period = v;
        }
        self.last_step_ms = last;
        self.previous = None;
        Ok(())
    }

    /// Evaluates every step that is due at `now_ms` (a step ending at `t`
    /// is due once `now_ms ≥ t + delay`) and appends its series, one
    /// commit per step. Returns the number of steps evaluated.
    pub fn run_due(
        &mut self,
        store: &dyn Queryable,
        appendable: &dyn Appendable,
        now_ms: i64,
    ) -> Result<usize, String> {
        let interval = self.config.interval_ms;
        let due = (now_ms - self.config.delay_ms).div_euclid(interval) * interval;
        let Some(mut last) = self.last_step_ms else {
            // The first step of a fresh install ends at the next boundary.
            self.last_step_ms = Some(due);
            return Ok(0);
        };
        if due - last > MAX_CATCH_UP_MS {
            tracing::warn!(
                from_ms = last,
                to_ms = due - MAX_CATCH_UP_MS,
                "costs: the server was down for more than a day; the time before the last day is not charged"
            );
            last = due - MAX_CATCH_UP_MS;
            self.previous = None;
        }
        let mut n = 0;
        while n < MAX_STEPS_PER_CALL {
            // The next boundary after `last` (the first step after a change
            // of interval may be shorter).
            let t = (last.div_euclid(interval) + 1) * interval;
            if t > due {
                break;
            }
            let samples = self.step(store, last, t)?;
            let mut appender = appendable.appender();
            for (labels, value) in &samples {
                if let Err(e) = appender.append(labels, t, *value) {
                    appender.rollback();
                    return Err(format!("storing cost series: {e}"));
                }
            }
            appender
                .commit()
                .map_err(|e| format!("committing cost series: {e}"))?;
            last = t;
            self.last_step_ms = Some(t);
            n += 1;
        }
        Ok(n)
    }

    /// Charges the step `(t0, t]` and returns the series to write at `t`.
    fn step(
        &mut self,
        store: &dyn Queryable,
        t0: i64,
        t: i64,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let start = match self.previous.take() {
            Some(s) if s.t_ms == t0 => s,
            _ => self.snapshot(store, t0)?,
        };
        let end = self.snapshot(store, t)?;
        let hours = (t - t0) as f64 / 3_600_000.0;
        let mut charged: BTreeMap<Labels, f64> = BTreeMap::new();
        for (labels, per_hour) in &start.hourly {
            *charged.entry(labels.clone()).or_default() += per_hour * hours;
        }
        for labels in end.hourly.keys() {
            charged.entry(labels.clone()).or_default();
        }
        let core_hour = self.config.cpu.core_hour;
        if core_hour > 0.0 {
            let name = self.config.cpu.metric.clone();
            for (source, seconds) in
                counter_changes(store, &[Matcher::equal(model::METRIC_NAME, &name)], t0, t)?
            {
                *charged
                    .entry(cost_labels(&source, "cpu", None))
                    .or_default() += seconds / 3600.0 * core_hour;
            }
        }
        let mut stepped: BTreeMap<Labels, f64> = BTreeMap::new();
        for counter in &self.config.steps {
            let matchers = [
                Matcher::equal(model::METRIC_NAME, &counter.metric),
                Matcher::equal("job", &counter.job),
            ];
            for (source, change) in counter_changes(store, &matchers, t0, t)? {
                let key = Labels::from_pairs([
                    (model::METRIC_NAME, STEPS_METRIC),
                    ("job", source.get("job").unwrap_or("")),
                    ("instance", source.get("instance").unwrap_or("")),
                ]);
                *stepped.entry(key).or_default() += change;
            }
        }

        let mut out = Vec::with_capacity(charged.len() + stepped.len());
        for (labels, dollars) in &charged {
            let total = self.dollars.entry(labels.clone()).or_default();
            *total += dollars;
            out.push((labels.clone(), *total));
        }
        for (labels, change) in &stepped {
            let total = self.steps.entry(labels.clone()).or_default();
            *total += change;
            out.push((labels.clone(), *total));
        }
        for budget in &self.config.budgets {
            let spent: f64 = charged
                .iter()
                .filter(|(labels, _)| matches(&budget.matchers, labels))
                .map(|(_, d)| d)
                .sum();
            let state = self.budgets.entry(budget.name.clone()).or_default();
            let period_start = period_start_ms(budget.period, t0);
            if state.period_start_ms != period_start {
                state.period_start_ms = period_start;
                state.spent_period = 0.0;
            }
            state.spent_period += spent;
            state.spent_total += spent;
            out.extend(budget_series(budget, state, t));
        }
        self.previous = Some(end);
        Ok(out)
    }

    /// What the stores hold at `t`, priced.
    fn snapshot(&self, store: &dyn Queryable, t: i64) -> Result<Snapshot, String> {
        let querier = store
            .querier(t - LOOKBACK_MS + 1, t)
            .map_err(|e| e.to_string())?;
        let latest = |matchers: &[Matcher]| -> Result<Vec<(Labels, f64)>, String> {
            let mut out = Vec::new();
            let set = querier.select_latest(matchers).map_err(|e| e.to_string())?;
            for series in set {
                let mut series = series.map_err(|e| e.to_string())?;
                if let Some((_, v)) = series.samples.next()
                    && !is_stale_nan(v)
                {
                    out.push((series.labels, v));
                }
            }
            Ok(out)
        };
        let c = &self.config;
        let mut snapshot = Snapshot {
            t_ms: t,
            hourly: BTreeMap::new(),
        };
        if !c.gpu.hour.is_empty() || c.gpu.default_hour > 0.0 {
            for (labels, _) in latest(&[Matcher::equal(model::METRIC_NAME, &c.gpu.metric)])? {
                let gpu_model = labels.get(&c.gpu.model_label).unwrap_or("");
                let price = c
                    .gpu
                    .hour
                    .iter()
                    .find(|(name, _)| name == gpu_model)
                    .map_or(c.gpu.default_hour, |(_, p)| *p);
                let key = cost_labels(&labels, "gpu", Some(gpu_model));
                *snapshot.hourly.entry(key).or_default() += price;
            }
        }
        if c.memory.gib_hour > 0.0 {
            for (labels, bytes) in latest(&[Matcher::equal(model::METRIC_NAME, &c.memory.metric)])?
            {
                if bytes.is_finite() && bytes > 0.0 {
                    let key = cost_labels(&labels, "memory", None);
                    *snapshot.hourly.entry(key).or_default() +=
                        bytes / (1u64 << 30) as f64 * c.memory.gib_hour;
                }
            }
        }
        if !c.instances.is_empty() {
            for (labels, _) in latest(&[Matcher::equal(model::METRIC_NAME, "up")])? {
                if let Some(entry) = c.instances.iter().find(|e| matches(&e.matchers, &labels)) {
                    let key = cost_labels(&labels, "instance", None);
                    *snapshot.hourly.entry(key).or_default() += entry.hour;
                }
            }
        }
        Ok(snapshot)
    }
}

/// How much each counter matching `matchers` counted in `(t0, t]`: the sum
/// of its changes from sample to sample, starting from its newest sample
/// at or before `t0` (within the lookback); a decrease is a reset, after
/// which the counter counted its new value from zero. A series with no
/// sample up to `t0` starts at its first sample in the step (the
/// baseline, not charged), so summed over steps this is every change the
/// counter ever showed, whatever the step.
fn counter_changes(
    store: &dyn Queryable,
    matchers: &[Matcher],
    t0: i64,
    t: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    let querier = store
        .querier(t0 - LOOKBACK_MS + 1, t)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for series in querier.select(matchers).map_err(|e| e.to_string())? {
        let series = series.map_err(|e| e.to_string())?;
        let mut previous: Option<f64> = None;
        let mut change = 0.0;
        let mut in_step = false;
        for (ts, v) in series.samples {
            if is_stale_nan(v) {
                continue;
            }
            if ts <= t0 {
                previous = Some(v);
                continue;
            }
            in_step = true;
            if let Some(before) = previous {
                change += if v >= before { v - before } else { v };
            }
            previous = Some(v);
        }
        if in_step || previous.is_some() {
            out.push((series.labels, change));
        }
    }
    Ok(out)
}

/// The cost series of a source series: its job and instance, the
/// resource, and the GPU's model name for GPUs.
fn cost_labels(source: &Labels, resource: &str, gpu_model: Option<&str>) -> Labels {
    let mut pairs = vec![
        (model::METRIC_NAME, COST_METRIC),
        ("job", source.get("job").unwrap_or("")),
        ("instance", source.get("instance").unwrap_or("")),
        ("resource", resource),
    ];
    if let Some(m) = gpu_model {
        pairs.push(("gpu_model", m));
    }
    Labels::from_pairs(pairs)
}

fn matches(matchers: &[(String, String)], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|(name, value)| labels.get(name).unwrap_or("") == value)
}

fn budget_series(budget: &Budget, state: &BudgetState, t: i64) -> Vec<(Labels, f64)> {
    let labels =
        |name: &str| Labels::from_pairs([(model::METRIC_NAME, name), ("budget", &budget.name)]);
    // The step ending at t belongs to the period holding t − 1 ms; its end
    // is the next period's start.
    let end = next_period_start_ms(budget.period, period_start_ms(budget.period, t - 1));
    vec![
        (labels(BUDGET_METRIC), budget.amount),
        (labels(BUDGET_SPENT_METRIC), state.spent_period),
        (
            labels(BUDGET_REMAINING_METRIC),
            budget.amount - state.spent_period,
        ),
        (labels(BUDGET_SPENT_TOTAL_METRIC), state.spent_total),
        (labels(BUDGET_PERIOD_END_METRIC), end as f64 / 1000.0),
    ]
}

const DAY_MS: i64 = 86_400_000;

/// The start of the period (UTC) holding `t_ms`.
pub fn period_start_ms(period: Period, t_ms: i64) -> i64 {
    let days = t_ms.div_euclid(DAY_MS);
    match period {
        Period::Day => days * DAY_MS,
        Period::Week => {
            // weekday: 0 Sunday .. 6 Saturday; weeks start on Monday.
            let since_monday = (model::time::weekday(days) + 6) % 7;
            (days - i64::from(since_monday)) * DAY_MS
        }
        Period::Month => {
            let (year, month, _) = model::time::civil_from_days(days);
            model::time::days_from_civil(year, month, 1) * DAY_MS
        }
    }
}

/// The start of the period after the one starting at `start_ms`.
pub fn next_period_start_ms(period: Period, start_ms: i64) -> i64 {
    match period {
        Period::Day => start_ms + DAY_MS,
        Period::Week => start_ms + 7 * DAY_MS,
        Period::Month => {
            let (year, month, _) = model::time::civil_from_days(start_ms.div_euclid(DAY_MS));
            let (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            model::time::days_from_civil(year, month, 1) * DAY_MS
        }
    }
}

/// The rule file (YAML) of the cost rules: one group, `osprey-costs`,
/// evaluated every `costs.interval`, with the cost per step of each step
/// counter, each budget's forecast of running out, and the budget alerts.
/// Empty when there is nothing to put in it.
pub fn rule_file(config: &CostsConfig) -> String {
    if config.steps.is_empty() && config.budgets.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    out.push_str("groups:\n  - name: osprey-costs\n");
    out.push_str(&format!(
        "    interval: {}\n    rules:\n",
        model::duration::format_duration_ms(config.interval_ms)
    ));
    for s in &config.steps {
        let window = model::duration::format_duration_ms(s.window_ms);
        let job = promql_string(&s.job);
        out.push_str(&format!(
            "      - record: {PER_STEP_METRIC}\n        expr: {}\n",
            yaml_string(&format!(
                "sum by (job, instance) (increase({COST_METRIC}{{job={job}}}[{window}])) / (sum by (job, instance) (increase({STEPS_METRIC}{{job={job}}}[{window}])) > 0)"
            ))
        ));
    }
    for b in &config.budgets {
        let name = promql_string(&b.name);
        let window = model::duration::format_duration_ms(b.forecast_window_ms);
        out.push_str(&format!(
            "      - record: {BUDGET_EXHAUSTION_METRIC}\n        expr: {}\n",
            yaml_string(&format!(
                "time() + clamp_min({BUDGET_REMAINING_METRIC}{{budget={name}}}, 0) / (rate({BUDGET_SPENT_TOTAL_METRIC}{{budget={name}}}[{window}]) > 0)"
            ))
        ));
        for share in &b.alert_at {
            let severity = if *share >= 1.0 { "critical" } else { "warning" };
            out.push_str(&format!(
                "      - alert: CostBudgetSpent\n        expr: {}\n        labels:\n          severity: {severity}\n          share: {}\n        annotations:\n          summary: {}\n",
                yaml_string(&format!(
                    "{BUDGET_SPENT_METRIC}{{budget={name}}} / {BUDGET_METRIC}{{budget={name}}} >= {share}"
                )),
                yaml_string(&share.to_string()),
                yaml_string(&format!(
                    "Budget {{{{ $labels.budget }}}}: {{{{ $value | humanizePercentage }}}} of {} dollars spent this {}",
                    b.amount,
                    period_name(b.period)
                )),
            ));
        }
        out.push_str(&format!(
            "      - alert: CostBudgetForecastExhausted\n        expr: {}\n        for: {}\n        labels:\n          severity: warning\n        annotations:\n          summary: {}\n",
            yaml_string(&format!(
                "{BUDGET_EXHAUSTION_METRIC}{{budget={name}}} < {BUDGET_PERIOD_END_METRIC}{{budget={name}}}"
            )),
            model::duration::format_duration_ms(b.for_ms),
            yaml_string(&format!(
                "Budget {{{{ $labels.budget }}}} runs out before the {} ends at the rate of the last {window}",
                period_name(b.period)
            )),
        ));
    }
    out
}

fn period_name(period: Period) -> &'static str {
    match period {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}

/// A PromQL string literal.
fn promql_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A YAML single-quoted scalar.
fn yaml_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests;
