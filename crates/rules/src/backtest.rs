//! Backtesting: what rule groups would have done over stored history.
//!
//! [`backtest`] evaluates each group at `from`, `from + interval`, … up to
//! `to`, as a freshly started server would have (no state before `from`,
//! no `for` state restored). Each rule's expression runs as *range*
//! queries over the whole span (split into pieces of at most
//! [`MAX_STEPS_PER_QUERY`] steps), not as one instant query per step; the
//! result is then walked step by step through the live engine's own alert
//! state machine ([`crate::group`]'s `advance_alerts`), so `for`,
//! `keep_firing_for`, the alert `limit` and resolution behave exactly as
//! in a running server. The alerts the engine would have handed to the
//! alert manager at each step (with the resend delay) come from the same
//! code as the live sender's.
//!
//! What rules write is not written to storage: recording rules' series,
//! `ALERTS` and `ALERTS_FOR_STATE` go to an in-memory overlay over the
//! history ([`Overlay`]), which later rules (and later groups) read. The
//! overlay *replaces* stored series of the metric names the backtested
//! rules write, so a series the running server recorded with an older
//! version of a rule does not leak into the backtest.
//!
//! Two differences from a live server are inherent and documented in
//! `docs/backtest.md`: a rule does not see its own output of earlier steps
//! (its whole range is computed before its output exists), and rules whose
//! expression mentions `start()` or `end()` are evaluated with one instant
//! query per step, because in a range query those mean the range's ends.

use crate::file::{GroupSpec, RuleKind};
use crate::group::{
    Alert, AlertState, Group, GroupOptions, Output, Rule, advance_alerts, alert_output, due_alerts,
};
use crate::template::{TemplateContext, expand_alert_template};
use model::labels::{LabelsBuilder, METRIC_NAME};
use model::storage::{Querier, Queryable, Series, SeriesSet, StorageError};
use model::{Labels, Matcher, STALE_NAN};
use promql::Engine;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

/// The most steps one range query of the backtest covers. The engine
/// refuses more than 11,000 points per series (Prometheus's limit); 10,000
/// leaves room and splits a week at one-minute intervals into two queries.
pub const MAX_STEPS_PER_QUERY: i64 = 10_000;

/// The most evaluations of one group a backtest may run: a week at one
/// second, or a year at one minute. Bounds the memory of a request.
pub const MAX_EVALUATIONS_PER_GROUP: i64 = 605_000;

/// What to backtest and how the rule engine is configured.
#[derive(Clone, Debug)]
pub struct BacktestOptions {
    /// The first evaluation time of every group (milliseconds).
    pub from_ms: i64,
    /// The last evaluation time is the last interval step at or before this.
    pub to_ms: i64,
    /// Interval, query offset and resend delay, as the server uses them.
    pub group: GroupOptions,
    /// Sorted by name; visible to label templates.
    pub external_labels: Vec<(String, String)>,
    pub external_url: String,
}

/// Why a backtest could not run at all (a rule that fails to evaluate is
/// reported in its [`RuleBacktest::error`] instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacktestError {
    kind: BacktestErrorKind,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BacktestErrorKind {
    /// The time range or the rules are not acceptable.
    BadInput,
}

impl BacktestError {
    fn bad_input(message: impl Into<String>) -> BacktestError {
        BacktestError {
            kind: BacktestErrorKind::BadInput,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> BacktestErrorKind {
        self.kind
    }
}

impl fmt::Display for BacktestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BacktestError {}

/// The result of a backtest: every alerting rule, in file and group order.
#[derive(Clone, Debug, PartialEq)]
pub struct Backtest {
    pub from_ms: i64,
    pub to_ms: i64,
    pub rules: Vec<RuleBacktest>,
    /// Errors of recording rules (their series are missing where they
    /// failed), as `group: record: message`.
    pub recording_errors: Vec<String>,
}

/// What one alerting rule would have done.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleBacktest {
    pub file: String,
    pub group: String,
    /// The `alert:` name.
    pub name: String,
    pub interval_ms: i64,
    /// Sorted by labels.
    pub alerts: Vec<AlertTimeline>,
    /// What the rule engine would have handed to the alert manager, in
    /// time order (firing alerts re-sent after the resend delay, resolved
    /// ones once).
    pub sent: Vec<SentAlert>,
    /// The first evaluation error and how many evaluations failed.
    pub error: Option<String>,
    pub failed_evaluations: u64,
}

/// The states of one alert (one label set) over the backtest.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertTimeline {
    pub labels: Labels,
    /// In time order, not overlapping.
    pub intervals: Vec<StateInterval>,
}

/// A span in one state: `[start, end)`; `end` is `None` while the alert
/// is still in that state at the last evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateInterval {
    pub state: AlertState,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

/// One alert handed to the alert manager.
#[derive(Clone, Debug, PartialEq)]
pub struct SentAlert {
    pub at_ms: i64,
    pub labels: Labels,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

/// How often the alerts of a rule came back soon after resolving.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flapping {
    /// Firing episodes of all the rule's alerts.
    pub episodes: usize,
    /// Episodes that began within [`FLAP_WINDOW_MS`] of the end of the
    /// previous episode of the same alert.
    pub refires: usize,
    /// `refires / episodes`, 0 without episodes: 0 is steady, values near
    /// 1 mean nearly every page is the same problem coming back.
    pub score: f64,
}

/// How soon a re-fire counts as flapping: an hour, about the time an
/// on-call engineer still remembers the page they just closed.
pub const FLAP_WINDOW_MS: i64 = 3_600_000;

impl RuleBacktest {
    /// The rule's flapping score (see [`Flapping`]).
    pub fn flapping(&self) -> Flapping {
        let mut episodes = 0;
        let mut refires = 0;
        for alert in &self.alerts {
            let mut last_end: Option<i64> = None;
            for interval in &alert.intervals {
                if interval.state != AlertState::Firing {
                    continue;
                }
                episodes += 1;
                if last_end.is_some_and(|end| interval.start_ms - end < FLAP_WINDOW_MS) {
                    refires += 1;
                }
                last_end = interval.end_ms;
            }
        }
        Flapping {
            episodes,
            refires,
            score: if episodes == 0 {
                0.0
            } else {
                refires as f64 / episodes as f64
            },
        }
    }

    /// Total time any alert of the rule was firing, up to `to_ms`.
    pub fn firing_ms(&self, to_ms: i64) -> i64 {
        self.alerts
            .iter()
            .flat_map(|a| &a.intervals)
            .filter(|i| i.state == AlertState::Firing)
            .map(|i| i.end_ms.unwrap_or(to_ms) - i.start_ms)
            .sum()
    }
}

/// Backtests `groups` over the history in `storage`.
pub fn backtest(
    engine: &Arc<Engine>,
    storage: Arc<dyn Queryable>,
    groups: Vec<GroupSpec>,
    options: &BacktestOptions,
) -> Result<Backtest, BacktestError> {
    if options.to_ms < options.from_ms {
        return Err(BacktestError::bad_input(
            "the end of the range is before its start",
        ));
    }
    let groups: Vec<Group> = groups
        .into_iter()
        .map(|spec| Group::new(spec, &options.group))
        .collect();
    for group in &groups {
        let n = (options.to_ms as i128 - options.from_ms as i128) / group.interval_ms as i128 + 1;
        if n > MAX_EVALUATIONS_PER_GROUP as i128 {
            return Err(BacktestError::bad_input(format!(
                "group {:?} would be evaluated {n} times; at most {MAX_EVALUATIONS_PER_GROUP} are allowed (shorten the range)",
                group.name
            )));
        }
    }
    let mut shadowed = HashSet::new();
    for group in &groups {
        for rule in &group.rules {
            match &rule.spec.kind {
                RuleKind::Recording { record } => {
                    shadowed.insert(record.clone());
                }
                RuleKind::Alerting { .. } => {
                    shadowed.insert("ALERTS".to_string());
                    shadowed.insert("ALERTS_FOR_STATE".to_string());
                }
            }
        }
    }
    let overlay = Arc::new(Overlay::new(storage, shadowed));
    let queryable: Arc<dyn Queryable> = overlay.clone();
    let mut result = Backtest {
        from_ms: options.from_ms,
        to_ms: options.to_ms,
        rules: Vec::new(),
        recording_errors: Vec::new(),
    };
    for mut group in groups {
        // Nothing is restored at the start: ALERTS_FOR_STATE is written
        // from the first evaluation, as in rule unit tests.
        group.mark_restored();
        let steps = Steps {
            first_ms: options.from_ms,
            interval_ms: group.interval_ms,
            n: ((options.to_ms - options.from_ms) / group.interval_ms + 1) as usize,
            query_offset_ms: group.query_offset_ms,
        };
        let context = GroupContext {
            engine,
            queryable: &queryable,
            options,
            steps,
            limit: group.limit,
            resend_delay_ms: options.group.resend_delay_ms,
        };
        let (file, group_name) = (group.file.clone(), group.name.clone());
        for rule in &mut group.rules {
            match rule.spec.kind.clone() {
                RuleKind::Recording { record } => {
                    let (series, error) = backtest_recording(rule, &record, &context);
                    if let Some(error) = error {
                        result
                            .recording_errors
                            .push(format!("{group_name}: {record}: {error}"));
                    }
                    overlay.add(series);
                }
                RuleKind::Alerting { alert, .. } => {
                    let (report, series) =
                        backtest_alerting(rule, &alert, (&file, &group_name), &context);
                    result.rules.push(report);
                    overlay.add(series);
                }
            }
        }
    }
    Ok(result)
}

/// Samples of one series in time order, shared without copying.
type Samples = Arc<Vec<(i64, f64)>>;

/// Series a rule wrote, by labels, samples in time order.
type Written = HashMap<Labels, Vec<(i64, f64)>>;

/// The evaluation times of one group.
#[derive(Clone, Copy)]
struct Steps {
    first_ms: i64,
    interval_ms: i64,
    n: usize,
    query_offset_ms: i64,
}

impl Steps {
    fn time(&self, index: usize) -> i64 {
        self.first_ms + index as i64 * self.interval_ms
    }
}

struct GroupContext<'a> {
    engine: &'a Arc<Engine>,
    queryable: &'a Arc<dyn Queryable>,
    options: &'a BacktestOptions,
    steps: Steps,
    limit: u64,
    resend_delay_ms: i64,
}

/// A rule expression's result at every step: each series with its values
/// by step index (`None` where it had no sample).
struct StepMatrix {
    series: Vec<(Labels, Vec<Option<f64>>)>,
}

impl StepMatrix {
    /// The series present at step `index`, with their values.
    fn at(&self, index: usize) -> impl Iterator<Item = (usize, &Labels, f64)> {
        self.series
            .iter()
            .enumerate()
            .filter_map(move |(n, (labels, values))| values[index].map(|v| (n, labels, v)))
    }
}

/// Evaluates `expr` at every step: range queries of at most
/// [`MAX_STEPS_PER_QUERY`] steps, or one instant query per step when the
/// expression refers to the query's `start()`/`end()`.
fn evaluate(expr: &str, context: &GroupContext<'_>) -> Result<StepMatrix, String> {
    let steps = context.steps;
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut series: Vec<(Labels, Vec<Option<f64>>)> = Vec::new();
    let mut put = |labels: Labels, step: usize, v: f64| {
        let n = *index.entry(labels.clone()).or_insert_with(|| {
            series.push((labels, vec![None; steps.n]));
            series.len() - 1
        });
        series[n].1[step] = Some(v);
    };
    let per_step = expr.contains("start()") || expr.contains("end()");
    if per_step {
        for step in 0..steps.n {
            let query_ts = steps.time(step) - steps.query_offset_ms;
            let output = context
                .engine
                .instant_query(context.queryable.as_ref(), expr, query_ts)
                .map_err(|e| e.to_string())?;
            match output.value {
                promql::Value::Vector(samples) => {
                    // Floats only, as the live rules (histograms left out).
                    for sample in samples.into_iter().filter(|s| s.h.is_none()) {
                        put(sample.labels, step, sample.v);
                    }
                }
                promql::Value::Scalar { v, .. } => put(Labels::empty(), step, v),
                promql::Value::String { .. } => {
                    return Err("rule result is a string, not a vector".into());
                }
                promql::Value::Matrix(_) => {
                    return Err("rule result is a range vector, not a vector".into());
                }
            }
        }
    } else {
        let mut start = 0usize;
        while start < steps.n {
            let end = (start + MAX_STEPS_PER_QUERY as usize).min(steps.n) - 1;
            let start_ts = steps.time(start) - steps.query_offset_ms;
            let end_ts = steps.time(end) - steps.query_offset_ms;
            let output = context
                .engine
                .range_query(
                    context.queryable.as_ref(),
                    expr,
                    start_ts,
                    end_ts,
                    steps.interval_ms,
                )
                .map_err(|e| e.to_string())?;
            let promql::Value::Matrix(matrix) = output.value else {
                return Err("rule result is not a vector".into());
            };
            for s in matrix {
                let labels = s.labels;
                for (t, v) in s.points {
                    let step = start + ((t - start_ts) / steps.interval_ms) as usize;
                    put(labels.clone(), step, v);
                }
            }
            start = end + 1;
        }
    }
    Ok(StepMatrix { series })
}

/// Collects a rule's output step by step as the live engine writes it:
/// the output's samples at the evaluation time, and a staleness marker
/// for each series written at the previous successful step but not now.
#[derive(Default)]
struct OutputWriter {
    series: Written,
    previous: HashSet<Labels>,
}

impl OutputWriter {
    fn write(&mut self, ts: i64, output: Output) {
        let mut current = HashSet::with_capacity(output.len());
        // Backtests replay floats (histogram results are left out when
        // the expression is evaluated), so no histogram reaches here.
        for (labels, v, _) in output {
            self.series.entry(labels.clone()).or_default().push((ts, v));
            current.insert(labels);
        }
        for gone in self.previous.difference(&current) {
            self.series
                .entry(gone.clone())
                .or_default()
                .push((ts, STALE_NAN));
        }
        self.previous = current;
    }
}

fn backtest_recording(
    rule: &mut Rule,
    record: &str,
    context: &GroupContext<'_>,
) -> (Written, Option<String>) {
    let matrix = match evaluate(&rule.spec.expr, context) {
        Ok(matrix) => matrix,
        Err(e) => return (HashMap::new(), Some(e)),
    };
    let names: Vec<Labels> = matrix
        .series
        .iter()
        .map(|(labels, _)| {
            let mut builder = LabelsBuilder::from_labels(labels);
            builder.set(METRIC_NAME.to_string(), record.to_string());
            for (name, value) in &rule.spec.labels {
                builder.set(name.clone(), value.clone());
            }
            builder.build()
        })
        .collect();
    let mut writer = OutputWriter::default();
    let mut first_error = None;
    for step in 0..context.steps.n {
        let ts = context.steps.time(step);
        let mut output: Output = Vec::new();
        let mut seen = HashSet::new();
        let mut failed = None;
        for (n, _, v) in matrix.at(step) {
            if !seen.insert(&names[n]) {
                failed = Some(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .to_string(),
                );
                break;
            }
            output.push((names[n].clone(), v, None));
        }
        if failed.is_none() && context.limit > 0 && output.len() as u64 > context.limit {
            failed = Some(format!(
                "exceeded limit of {} with {} series",
                context.limit,
                output.len()
            ));
        }
        match failed {
            // A failed evaluation writes nothing, staleness markers
            // included, as in the live engine.
            Some(e) => {
                first_error.get_or_insert(e);
            }
            None => writer.write(ts, output),
        }
    }
    (writer.series, first_error)
}

fn backtest_alerting(
    rule: &mut Rule,
    name: &str,
    (file, group): (&str, &str),
    context: &GroupContext<'_>,
) -> (RuleBacktest, Written) {
    let mut report = RuleBacktest {
        file: file.to_string(),
        group: group.to_string(),
        name: name.to_string(),
        interval_ms: context.steps.interval_ms,
        alerts: Vec::new(),
        sent: Vec::new(),
        error: None,
        failed_evaluations: 0,
    };
    let matrix = match evaluate(&rule.spec.expr, context) {
        Ok(matrix) => matrix,
        Err(e) => {
            report.error = Some(e);
            report.failed_evaluations = context.steps.n as u64;
            return (report, HashMap::new());
        }
    };
    let rule_labels = rule.spec.labels.clone();
    let templated = rule_labels.iter().any(|(_, v)| v.contains("{{"));
    let alert_labels = |labels: &Labels, value: f64, query_ts: i64| -> Labels {
        let mut builder = LabelsBuilder::from_labels(labels);
        builder.delete(METRIC_NAME);
        if templated {
            let template_context = TemplateContext {
                labels,
                external_labels: &context.options.external_labels,
                external_url: &context.options.external_url,
                value,
                engine: context.engine,
                storage: context.queryable,
                time_ms: query_ts,
            };
            for (label, text) in &rule_labels {
                builder.set(
                    label.clone(),
                    expand_alert_template(name, text, &template_context),
                );
            }
        } else {
            for (label, text) in &rule_labels {
                builder.set(label.clone(), text.clone());
            }
        }
        builder.set(crate::group::ALERT_NAME.to_string(), name.to_string());
        builder.build()
    };
    // Without templates an alert's labels depend only on the series.
    let fixed: Vec<Labels> = if templated {
        Vec::new()
    } else {
        matrix
            .series
            .iter()
            .map(|(labels, _)| alert_labels(labels, 0.0, 0))
            .collect()
    };
    let mut writer = OutputWriter::default();
    let mut timelines = Timelines::default();
    for step in 0..context.steps.n {
        let ts = context.steps.time(step);
        let query_ts = ts - context.steps.query_offset_ms;
        let mut current: HashMap<Labels, Alert> = HashMap::new();
        let mut failed = None;
        for (n, labels, v) in matrix.at(step) {
            let labels = if templated {
                alert_labels(labels, v, query_ts)
            } else {
                fixed[n].clone()
            };
            if current.contains_key(&labels) {
                failed = Some(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
                break;
            }
            current.insert(labels.clone(), Alert::pending(labels, Vec::new(), v, ts));
        }
        let advanced = match failed {
            Some(e) => Err(e),
            None => advance_alerts(rule, current, ts, context.limit),
        };
        match advanced {
            Ok(()) => writer.write(ts, alert_output(rule)),
            Err(e) => {
                report.failed_evaluations += 1;
                report.error.get_or_insert(e);
            }
        }
        timelines.observe(rule, ts);
        for due in due_alerts(
            rule,
            &context.options.external_url,
            ts,
            context.resend_delay_ms,
            context.steps.interval_ms,
        ) {
            report.sent.push(SentAlert {
                at_ms: ts,
                labels: due.labels,
                starts_at_ms: due.starts_at_ms,
                ends_at_ms: due.ends_at_ms,
            });
        }
    }
    report.alerts = timelines.finish();
    (report, writer.series)
}

/// Builds state intervals from the alerts' states after each step.
#[derive(Default)]
struct Timelines {
    done: BTreeMap<Labels, Vec<StateInterval>>,
    open: HashMap<Labels, StateInterval>,
}

impl Timelines {
    fn observe(&mut self, rule: &Rule, ts: i64) {
        let mut closed = Vec::new();
        for (labels, open) in &self.open {
            let same = rule
                .alerts
                .get(labels)
                .is_some_and(|a| a.state == open.state);
            if !same {
                closed.push(labels.clone());
            }
        }
        for labels in closed {
            if let Some(mut interval) = self.open.remove(&labels) {
                interval.end_ms = Some(ts);
                self.done.entry(labels).or_default().push(interval);
            }
        }
        for (labels, alert) in &rule.alerts {
            if alert.state == AlertState::Inactive || self.open.contains_key(labels) {
                continue;
            }
            let start_ms = match alert.state {
                AlertState::Firing => alert.fired_at_ms.unwrap_or(ts),
                _ => alert.active_at_ms,
            };
            self.open.insert(
                labels.clone(),
                StateInterval {
                    state: alert.state,
                    start_ms,
                    end_ms: None,
                },
            );
        }
    }

    fn finish(mut self) -> Vec<AlertTimeline> {
        for (labels, interval) in self.open {
            self.done.entry(labels).or_default().push(interval);
        }
        self.done
            .into_iter()
            .map(|(labels, intervals)| AlertTimeline { labels, intervals })
            .collect()
    }
}

/// The stored history with the backtest's own output on top. Stored series
/// whose metric name is in `shadowed` are hidden: the backtest's rules
/// write those names now.
pub struct Overlay {
    base: Arc<dyn Queryable>,
    shadowed: HashSet<String>,
    series: RwLock<BTreeMap<Labels, Samples>>,
}

impl Overlay {
    pub fn new(base: Arc<dyn Queryable>, shadowed: HashSet<String>) -> Overlay {
        Overlay {
            base,
            shadowed,
            series: RwLock::new(BTreeMap::new()),
        }
    }

    /// Adds series (samples in time order); samples of a label set already
    /// present are merged in, a later one winning at an equal timestamp.
    fn add(&self, series: Written) {
        let Ok(mut held) = self.series.write() else {
            return;
        };
        for (labels, samples) in series {
            match held.get_mut(&labels) {
                Some(existing) => {
                    let mut merged: BTreeMap<i64, f64> = existing.iter().copied().collect();
                    merged.extend(samples);
                    *existing = Arc::new(merged.into_iter().collect());
                }
                None => {
                    held.insert(labels, Arc::new(samples));
                }
            }
        }
    }
}

impl Queryable for Overlay {
    fn querier(&self, mint: i64, maxt: i64) -> model::storage::Result<Box<dyn Querier>> {
        let base = self.base.querier(mint, maxt)?;
        let mut series = Vec::new();
        if let Ok(held) = self.series.read() {
            for (labels, samples) in held.iter() {
                series.push((labels.clone(), samples.clone()));
            }
        }
        Ok(Box::new(OverlayQuerier {
            base,
            shadowed: self.shadowed.clone(),
            series,
            mint,
            maxt,
        }))
    }
}

struct OverlayQuerier {
    base: Box<dyn Querier>,
    shadowed: HashSet<String>,
    /// Sorted by labels.
    series: Vec<(Labels, Samples)>,
    mint: i64,
    maxt: i64,
}

impl OverlayQuerier {
    /// The overlay's series matching `matchers` with a sample in range.
    fn own(&self, matchers: &[Matcher], latest: bool) -> Vec<Series> {
        let (mint, maxt) = (self.mint, self.maxt);
        let mut out = Vec::new();
        for (labels, samples) in &self.series {
            if !model::matcher::matches_all(labels, matchers) {
                continue;
            }
            let from = samples.partition_point(|(t, _)| *t < mint);
            let to = samples.partition_point(|(t, _)| *t <= maxt);
            if from >= to {
                continue;
            }
            let samples = samples.clone();
            let from = if latest { to - 1 } else { from };
            out.push(Series::floats(
                labels.clone(),
                model::storage::SampleIter::from_stream((from..to).map(move |i| samples[i])),
            ));
        }
        out
    }

    fn merge(&self, base: SeriesSet, own: Vec<Series>) -> SeriesSet {
        let shadowed = self.shadowed.clone();
        let base = base.filter(move |s| match s {
            Ok(s) => !s
                .labels
                .get(METRIC_NAME)
                .is_some_and(|name| shadowed.contains(name)),
            Err(_) => true,
        });
        if own.is_empty() {
            return Box::new(base);
        }
        let mut all: Vec<Result<Series, StorageError>> = base.collect();
        all.extend(own.into_iter().map(Ok));
        all.sort_by(|a, b| match (a, b) {
            (Ok(a), Ok(b)) => a.labels.cmp(&b.labels),
            (Err(_), Ok(_)) => std::cmp::Ordering::Less,
            (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => std::cmp::Ordering::Equal,
        });
        Box::new(all.into_iter())
    }
}

impl Querier for OverlayQuerier {
    fn select(&self, matchers: &[Matcher]) -> model::storage::Result<SeriesSet> {
        let base = self.base.select(matchers)?;
        Ok(self.merge(base, self.own(matchers, false)))
    }

    fn select_latest(&self, matchers: &[Matcher]) -> model::storage::Result<SeriesSet> {
        let base = self.base.select_latest(matchers)?;
        Ok(self.merge(base, self.own(matchers, true)))
    }

    fn label_names(&self, matchers: &[Matcher]) -> model::storage::Result<Vec<String>> {
        let mut names: Vec<String> = self.base.label_names(matchers)?;
        for series in self.own(matchers, true) {
            names.extend(series.labels.iter().map(|l| l.name.to_string()));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> model::storage::Result<Vec<String>> {
        let mut values = self.base.label_values(name, matchers)?;
        for series in self.own(matchers, true) {
            if let Some(v) = series.labels.get(name) {
                values.push(v.to_string());
            }
        }
        values.sort();
        values.dedup();
        Ok(values)
    }
}
