//! Rule generation: Sloth's three rule groups per SLO, exactly as Sloth
//! writes them, and osprey's fourth.
//!
//! - `sloth-slo-sli-recordings-<id>`: `slo:sli_error:ratio_rate<w>` for
//!   every alert window, and for the period the time average of the 5m
//!   ratio (Sloth's "optimized" period SLI).
//! - `sloth-slo-meta-recordings-<id>`: `slo:objective:ratio`,
//!   `slo:error_budget:ratio`, `slo:time_period:days`,
//!   `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio`,
//!   `slo:period_error_budget_remaining:ratio`, `sloth_slo_info`.
//! - `sloth-slo-alerts-<id>`: the page and ticket multi-window burn-rate
//!   alerts.
//! - `osprey-slo-<id>` (osprey's own, after Sloth's): the event counts
//!   behind event-weighted budgets and low-traffic protection, the
//!   event-weighted budget remaining, and the time to exhaustion.
//!
//! For a rolling 28- or 30-day SLO without osprey's extensions the first
//! three groups are Sloth's output rule for rule, expression for
//! expression (the tests compare them with Sloth's own generated files).
//! Calendar periods, low-traffic protection and latency SLIs change them
//! the documented ways (`docs/slos.md`).

use std::collections::BTreeMap;

use rules::{GroupSpec, RuleKind, RuleSpec};

use crate::common::render_window;
use crate::gofmt::{go_f, go_g, label_set};
use crate::model::{AlertMeta, BudgetMethod, Period, Sli, Slo};
use crate::windows::{AlertWindow, AlertWindows};

/// What the generated rules say about who generated them.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// `sloth_mode` on `sloth_slo_info` (Sloth's CLI writes
    /// `cli-gen-prom`).
    pub mode: String,
    /// `sloth_version` on `sloth_slo_info`.
    pub version: String,
    /// Labels added to every SLO's recording rules, winning over the
    /// spec's (Sloth's `--extra-labels`).
    pub extra_labels: BTreeMap<String, String>,
}

/// The name prefixes of the four groups.
pub const SLI_GROUP_PREFIX: &str = "sloth-slo-sli-recordings-";
pub const META_GROUP_PREFIX: &str = "sloth-slo-meta-recordings-";
pub const ALERT_GROUP_PREFIX: &str = "sloth-slo-alerts-";
pub const OSPREY_GROUP_PREFIX: &str = "osprey-slo-";

/// Series osprey records besides Sloth's.
pub const ERROR_EVENTS_5M: &str = "osprey_slo:sli_error_events:rate5m";
pub const TOTAL_EVENTS_5M: &str = "osprey_slo:sli_total_events:rate5m";
pub const BUDGET_REMAINING_EVENTS: &str = "osprey_slo:period_error_budget_remaining_events:ratio";
pub const TIME_TO_EXHAUSTION: &str = "osprey_slo:time_to_exhaustion:seconds";
pub const PERIOD_START: &str = "osprey_slo:period_start:timestamp_seconds";

const SHORTEST_WINDOW_MS: i64 = 5 * 60_000;
const ID_MATCH: &str = "on(sloth_id, sloth_slo, sloth_service)";

/// The rule groups of one SLO, in the order they are written.
pub fn generate(slo: &Slo, options: &GenerateOptions) -> Result<Vec<GroupSpec>, String> {
    let context = Context::new(slo, options);
    let mut groups = Vec::new();
    groups.push(context.group(SLI_GROUP_PREFIX, context.sli_rules()?));
    groups.push(context.group(META_GROUP_PREFIX, context.meta_rules()));
    let alerts = context.alert_rules()?;
    if !alerts.is_empty() {
        groups.push(context.group(ALERT_GROUP_PREFIX, alerts));
    }
    groups.push(context.group(OSPREY_GROUP_PREFIX, context.osprey_rules()?));
    Ok(groups)
}

/// The recorded series that hold the SLO's budget remaining under its
/// budget method.
pub fn budget_remaining_metric(slo: &Slo) -> &'static str {
    match slo.budget_method {
        BudgetMethod::Time => "slo:period_error_budget_remaining:ratio",
        BudgetMethod::Events => BUDGET_REMAINING_EVENTS,
    }
}

/// `slo:sli_error:ratio_rate<w>` (or `slo:sli_error:ratio_month` and
/// `_quarter` for calendar periods).
pub fn sli_metric_for_period(period: Period) -> String {
    match period {
        Period::Rolling { ms } => sli_metric(ms),
        Period::Month => "slo:sli_error:ratio_month".to_string(),
        Period::Quarter => "slo:sli_error:ratio_quarter".to_string(),
    }
}

/// `slo:sli_error:ratio_rate<w>`, the window as Prometheus prints it.
pub fn sli_metric(window_ms: i64) -> String {
    format!("slo:sli_error:ratio_rate{}", window_text(window_ms))
}

fn window_text(ms: i64) -> String {
    model::duration::format_duration_ms(ms)
}

struct Context<'a> {
    slo: &'a Slo,
    options: &'a GenerateOptions,
    windows: AlertWindows,
    /// Sloth's ID labels: `sloth_id`, `sloth_service`, `sloth_slo`.
    ids: BTreeMap<String, String>,
    /// The SLO's labels with the extra labels.
    labels: BTreeMap<String, String>,
    /// `{sloth_id="...", sloth_service="...", sloth_slo="..."}`.
    filter: String,
}

impl<'a> Context<'a> {
    fn new(slo: &'a Slo, options: &'a GenerateOptions) -> Context<'a> {
        let ids = BTreeMap::from([
            ("sloth_id".to_string(), slo.id.clone()),
            ("sloth_service".to_string(), slo.service.clone()),
            ("sloth_slo".to_string(), slo.name.clone()),
        ]);
        let mut labels = slo.labels.clone();
        labels.extend(options.extra_labels.clone());
        let filter = label_set(&ids);
        Context {
            slo,
            options,
            windows: AlertWindows::for_period(slo.period),
            ids,
            labels,
            filter,
        }
    }

    fn group(&self, prefix: &str, rules: Vec<RuleSpec>) -> GroupSpec {
        GroupSpec {
            name: format!("{prefix}{}", self.slo.id),
            file: self.slo.file.clone(),
            interval_ms: None,
            limit: 0,
            query_offset_ms: None,
            labels: Vec::new(),
            rules,
        }
    }

    /// Sloth's `MergeLabels(ids, extra..., slo labels)`: later maps win.
    fn merged(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut merged = self.ids.clone();
        for (name, value) in extra {
            merged.insert(name.to_string(), value.to_string());
        }
        merged.extend(self.labels.clone());
        merged.into_iter().collect()
    }

    fn record(&self, name: &str, expr: String, labels: Vec<(String, String)>) -> RuleSpec {
        RuleSpec {
            line: self.slo.line,
            kind: RuleKind::Recording {
                record: name.to_string(),
            },
            expr,
            labels,
        }
    }

    fn period_window_label(&self) -> String {
        match self.slo.period {
            Period::Rolling { ms } => window_text(ms),
            Period::Month => "month".to_string(),
            Period::Quarter => "quarter".to_string(),
        }
    }

    /// The SLI's error ratio over `window`, as Sloth writes it.
    fn sli_expr(&self, window: &str) -> Result<String, String> {
        let template = match &self.slo.sli {
            Sli::Events {
                error_query,
                total_query,
            } => format!("({error_query})\n/\n({total_query})\n"),
            Sli::Raw { error_ratio_query } => format!("({error_ratio_query})"),
        };
        render_window(&template, window)
    }

    fn sli_rules(&self) -> Result<Vec<RuleSpec>, String> {
        let mut rules = Vec::new();
        for window_ms in self.windows.distinct_windows() {
            let window = window_text(window_ms);
            rules.push(self.record(
                &sli_metric(window_ms),
                self.sli_expr(&window)?,
                self.merged(&[("sloth_window", &window)]),
            ));
        }
        let period_label = self.period_window_label();
        let short = sli_metric(self.windows.page_quick.short_ms);
        let expr = match self.slo.period {
            Period::Rolling { ms } => {
                let range = window_text(ms);
                format!(
                    "sum_over_time({short}{f}[{range}])\n/ ignoring (sloth_window)\ncount_over_time({short}{f}[{range}])\n",
                    f = self.filter
                )
            }
            Period::Month | Period::Quarter => {
                rules.push(self.record(
                    PERIOD_START,
                    period_start_expr(self.slo.period),
                    self.merged(&[]),
                ));
                let masked =
                    self.since_period_start(&sli_metric(calendar_tile_ms(self.slo.period)));
                format!(
                    "sum_over_time({masked})\n/ ignoring (sloth_window)\ncount_over_time({masked})\n"
                )
            }
        };
        rules.push(self.record(
            &sli_metric_for_period(self.slo.period),
            expr,
            self.merged(&[("sloth_window", &period_label)]),
        ));
        Ok(rules)
    }

    /// `(<metric>{F} and <since the period began>)[<longest period>:<tile>]`:
    /// the subquery over the current calendar period. `metric` is a
    /// series over the tile's window (30m for a month, 2h for a quarter),
    /// so the steps tile the period exactly, with few enough steps (1,488
    /// and 1,104) to stay under promtool's 10,000-sample query limit,
    /// where 5m steps over a quarter would need 26,496.
    fn since_period_start(&self, metric: &str) -> String {
        format!(
            "({metric}{f} and on() (vector(time()) > on() ({PERIOD_START}{f} @ end())))[{range}:{tile}]",
            f = self.filter,
            range = window_text(self.slo.period.max_ms()),
            tile = window_text(calendar_tile_ms(self.slo.period)),
        )
    }

    fn burn_rate_expr(&self, metric: &str) -> String {
        format!(
            "{metric}{f}\n/ {ID_MATCH} group_left\nslo:error_budget:ratio{f}\n",
            f = self.filter
        )
    }

    fn meta_rules(&self) -> Vec<RuleSpec> {
        let labels = self.merged(&[]);
        let objective = go_g(self.slo.objective_ratio());
        let days = match self.slo.period {
            Period::Rolling { ms } => format!("vector({})", go_g(go_hours(ms) / 24.0)),
            Period::Month => "days_in_month()".to_string(),
            Period::Quarter => format!(
                "90 + {LEAP_YEAR} * (month() <= bool 3) + (month() >= bool 4) + (month() >= bool 7)"
            ),
        };
        let remaining = match self.slo.period {
            Period::Rolling { .. } => format!("1 - slo:period_burn_rate:ratio{}", self.filter),
            Period::Month | Period::Quarter => format!(
                "1 - slo:period_burn_rate:ratio{f}\n* {ID_MATCH} group_left()\n(time() - {PERIOD_START}{f})\n/ {ID_MATCH} group_left()\n(slo:time_period:days{f} * 86400)\n",
                f = self.filter
            ),
        };
        let mut info = self.ids.clone();
        info.extend(self.labels.clone());
        info.insert("sloth_version".to_string(), self.options.version.clone());
        info.insert("sloth_mode".to_string(), self.options.mode.clone());
        info.insert("sloth_spec".to_string(), self.slo.spec.to_string());
        info.insert(
            "sloth_objective".to_string(),
            go_f(self.slo.objective_percent),
        );
        vec![
            self.record(
                "slo:objective:ratio",
                format!("vector({objective})"),
                labels.clone(),
            ),
            self.record(
                "slo:error_budget:ratio",
                format!("vector(1-{objective})"),
                labels.clone(),
            ),
            self.record("slo:time_period:days", days, labels.clone()),
            self.record(
                "slo:current_burn_rate:ratio",
                self.burn_rate_expr(&sli_metric(self.windows.page_quick.short_ms)),
                labels.clone(),
            ),
            self.record(
                "slo:period_burn_rate:ratio",
                self.burn_rate_expr(&sli_metric_for_period(self.slo.period)),
                labels.clone(),
            ),
            self.record("slo:period_error_budget_remaining:ratio", remaining, labels),
            self.record(
                "sloth_slo_info",
                "vector(1)".to_string(),
                info.into_iter().collect(),
            ),
        ]
    }

    fn alert_rules(&self) -> Result<Vec<RuleSpec>, String> {
        let mut rules = Vec::new();
        let pairs = [
            (
                &self.slo.page_alert,
                self.windows.page_quick,
                self.windows.page_slow,
            ),
            (
                &self.slo.ticket_alert,
                self.windows.ticket_quick,
                self.windows.ticket_slow,
            ),
        ];
        for (meta, quick, slow) in pairs {
            if let Some(meta) = meta {
                rules.push(self.alert(meta, quick, slow)?);
            }
        }
        Ok(rules)
    }

    fn alert(
        &self,
        meta: &AlertMeta,
        quick: AlertWindow,
        slow: AlertWindow,
    ) -> Result<RuleSpec, String> {
        let budget = go_g((100.0 - self.slo.objective_percent) / 100.0);
        let f = &self.filter;
        let condition = |window_ms: i64, factor: f64| {
            format!(
                "max({}{f} > ({} * {budget})) without (sloth_window)",
                sli_metric(window_ms),
                go_g(factor)
            )
        };
        let pair = |w: AlertWindow| -> Result<String, String> {
            let mut text = format!(
                "(\n    {}\n    and\n    {}\n",
                condition(w.short_ms, w.factor),
                condition(w.long_ms, w.factor)
            );
            if let Some(min) = self.slo.min_events {
                for window_ms in [w.short_ms, w.long_ms] {
                    text.push_str(&format!(
                        "    and {}\n    ({} >= {})\n",
                        self.ignoring_slo_labels(),
                        self.events_in(window_ms)?,
                        go_g(min)
                    ));
                }
            }
            text.push(')');
            Ok(text)
        };
        let expr = format!("{}\nor\n{}\n", pair(quick)?, pair(slow)?);
        let severity = quick.severity.text();
        let mut annotations = BTreeMap::from([
            (
                "title".to_string(),
                format!("({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast."),
            ),
            (
                "summary".to_string(),
                "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.".to_string(),
            ),
        ]);
        annotations.extend(meta.annotations.clone());
        let mut labels = BTreeMap::from([("sloth_severity".to_string(), severity.to_string())]);
        labels.extend(meta.labels.clone());
        Ok(RuleSpec {
            line: self.slo.line,
            kind: RuleKind::Alerting {
                alert: meta.name.clone(),
                for_ms: 0,
                keep_firing_for_ms: 0,
                annotations: annotations.into_iter().collect(),
            },
            expr,
            labels: labels.into_iter().collect(),
        })
    }

    /// The events a window held: the SLI's total query over the window
    /// (events per second, as `rate()` gives them, which divides by the
    /// whole window however much of it holds data) times the window's
    /// seconds; for the 5m window the recorded 5m total.
    fn events_in(&self, window_ms: i64) -> Result<String, String> {
        let seconds = window_ms / 1000;
        if window_ms == SHORTEST_WINDOW_MS {
            return Ok(format!("{TOTAL_EVENTS_5M}{} * {seconds}", self.filter));
        }
        let Sli::Events { total_query, .. } = &self.slo.sli else {
            return Err("low-traffic protection needs an SLI that counts events".to_string());
        };
        let rendered = render_window(total_query, &window_text(window_ms))?;
        Ok(format!("({}) * {seconds}", rendered.trim()))
    }

    /// `ignoring(...)` every label the recording rules add, so that an
    /// alert condition matches the total query's own series (none for
    /// `sum(...)`, one per group for `sum by (...)`).
    fn ignoring_slo_labels(&self) -> String {
        let mut names: Vec<String> = self.merged(&[]).into_iter().map(|(name, _)| name).collect();
        names.push("sloth_window".to_string());
        names.sort();
        format!("ignoring({})", names.join(", "))
    }

    fn osprey_rules(&self) -> Result<Vec<RuleSpec>, String> {
        let mut rules = Vec::new();
        let f = &self.filter;
        let period_label = self.period_window_label();
        if let Sli::Events {
            error_query,
            total_query,
        } = &self.slo.sli
        {
            let five = window_text(SHORTEST_WINDOW_MS);
            rules.push(self.record(
                ERROR_EVENTS_5M,
                render_window(error_query, &five)?,
                self.merged(&[("sloth_window", &five)]),
            ));
            rules.push(self.record(
                TOTAL_EVENTS_5M,
                render_window(total_query, &five)?,
                self.merged(&[("sloth_window", &five)]),
            ));
            // A calendar period's budget is the whole period's: what the
            // ratio so far has spent of it is the burn rate times the share
            // of the period gone, as for the time-averaged budget.
            let mut spent_share = String::new();
            let (errors, total) = match self.slo.period {
                Period::Rolling { ms } => {
                    let range = window_text(ms);
                    (
                        format!("sum_over_time({ERROR_EVENTS_5M}{f}[{range}])"),
                        format!("sum_over_time({TOTAL_EVENTS_5M}{f}[{range}])"),
                    )
                }
                Period::Month | Period::Quarter => {
                    let tile = window_text(calendar_tile_ms(self.slo.period));
                    let error_tile = format!("osprey_slo:sli_error_events:rate{tile}");
                    let total_tile = format!("osprey_slo:sli_total_events:rate{tile}");
                    rules.push(self.record(
                        &error_tile,
                        render_window(error_query, &tile)?,
                        self.merged(&[("sloth_window", &tile)]),
                    ));
                    rules.push(self.record(
                        &total_tile,
                        render_window(total_query, &tile)?,
                        self.merged(&[("sloth_window", &tile)]),
                    ));
                    spent_share = format!(
                        "* {ID_MATCH} group_left()\n(time() - {PERIOD_START}{f})\n/ {ID_MATCH} group_left()\n(slo:time_period:days{f} * 86400)\n"
                    );
                    (
                        format!("sum_over_time({})", self.since_period_start(&error_tile)),
                        format!("sum_over_time({})", self.since_period_start(&total_tile)),
                    )
                }
            };
            rules.push(self.record(
                BUDGET_REMAINING_EVENTS,
                format!(
                    "1 - (\n  {errors}\n  /\n  {total}\n)\n/ {ID_MATCH} group_left\nslo:error_budget:ratio{f}\n{spent_share}"
                ),
                self.merged(&[("sloth_window", &period_label)]),
            ));
        }
        rules.push(self.record(
            TIME_TO_EXHAUSTION,
            format!(
                "clamp_min({remaining}{f}, 0)\n* {ID_MATCH} group_left()\n(slo:time_period:days{f} * 86400)\n/ ignoring (sloth_window)\nslo:current_burn_rate:ratio{f}\n",
                remaining = budget_remaining_metric(self.slo)
            ),
            self.merged(&[]),
        ));
        Ok(rules)
    }
}

/// The window whose ratios tile a calendar period's subquery.
fn calendar_tile_ms(period: Period) -> i64 {
    match period {
        Period::Quarter => 2 * 3_600_000,
        Period::Month | Period::Rolling { .. } => 30 * 60_000,
    }
}

/// 1 in a leap year, else 0 (UTC, the year of the evaluation time).
const LEAP_YEAR: &str =
    "((year() % 4 == bool 0) * (year() % 100 != bool 0) + (year() % 400 == bool 0))";

/// The start of the current calendar month or quarter (UTC), in seconds.
fn period_start_expr(period: Period) -> String {
    let day_start = "time() - time() % 86400";
    match period {
        Period::Month => format!("{day_start} - (day_of_month() - 1) * 86400"),
        Period::Quarter => format!(
            "{day_start} - (day_of_year() - (1 + (month() >= bool 4) * (90 + {LEAP_YEAR}) + (month() >= bool 7) * 91 + (month() >= bool 10) * 92)) * 86400"
        ),
        Period::Rolling { .. } => "time()".to_string(),
    }
}

/// Go's `Duration.Hours()`.
fn go_hours(ms: i64) -> f64 {
    const HOUR_MS: i64 = 3_600_000;
    let hours = ms / HOUR_MS;
    let nanoseconds = (ms % HOUR_MS) * 1_000_000;
    hours as f64 + nanoseconds as f64 / (60.0 * 60.0 * 1e9)
}
