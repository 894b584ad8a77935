//! Rule groups and their rules: evaluation, alert state, staleness.
//!
//! A [`Group`] evaluates its rules in order at one timestamp. Each rule's
//! output is committed before the next rule runs, so a recording rule can
//! feed an alerting rule of the same group in the same evaluation, as in
//! Prometheus. A series a rule produced in the previous evaluation but not
//! in this one gets a staleness marker.
//!
//! Alerting rules follow Prometheus's state machine: a new result is
//! pending at the evaluation time (`active_at`); it fires once it has been
//! active for `for`; when it disappears a pending alert is dropped and a
//! firing one is resolved (or kept firing for `keep_firing_for`); resolved
//! alerts are kept for [`RESOLVED_RETENTION_MS`] so their resolution is
//! sent. Active alerts are written as `ALERTS` (1) and `ALERTS_FOR_STATE`
//! (`active_at` in seconds); the latter lets a restart restore how long an
//! alert has been pending ([`Group::restore_for_state`]).

use crate::file::{GroupSpec, RuleKind, RuleSpec};
use crate::template::{TemplateContext, expand_alert_template};
use model::histogram::FloatHistogram;
use model::labels::{LabelsBuilder, METRIC_NAME};
use model::storage::{Appendable, Queryable};
use model::{Labels, Matcher, STALE_NAN};
use promql::Engine;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a resolved alert is kept (and re-sent as resolved): 15 m.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// The `alertname` label.
pub const ALERT_NAME: &str = "alertname";

/// What a group needs from the rest of the server to evaluate.
#[derive(Clone)]
pub struct EvalEnv {
    pub engine: Arc<Engine>,
    pub queryable: Arc<dyn Queryable>,
    pub appendable: Arc<dyn Appendable>,
    /// Sorted by name; added to alerts sent and visible to templates.
    pub external_labels: Vec<(String, String)>,
    pub external_url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The result's labels without `__name__`, the rule's labels, and
    /// `alertname`.
    pub labels: Labels,
    /// Sorted by name, expanded.
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    pub valid_until_ms: i64,
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// A new alert, pending since `ts`.
    pub(crate) fn pending(
        labels: Labels,
        annotations: Vec<(String, String)>,
        value: f64,
        ts: i64,
    ) -> Alert {
        Alert {
            labels,
            annotations,
            state: AlertState::Pending,
            value,
            active_at_ms: ts,
            fired_at_ms: None,
            resolved_at_ms: None,
            last_sent_at_ms: None,
            valid_until_ms: 0,
            keep_firing_since_ms: None,
        }
    }

    /// Whether the alert is due to be sent at `ts`: firing or resolved,
    /// and not sent since it resolved or within `resend_delay`.
    fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        match (self.resolved_at_ms, self.last_sent_at_ms) {
            (_, None) => true,
            (Some(resolved), Some(sent)) if resolved > sent => true,
            (_, Some(sent)) => sent + resend_delay_ms < ts,
        }
    }
}

/// How a rule's last evaluation went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// One rule with its evaluation state.
#[derive(Debug)]
pub struct Rule {
    /// The rule as written, with the group's labels merged in.
    pub spec: RuleSpec,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_time: Duration,
    /// Alerting rules only: active and recently resolved alerts, by the
    /// hash of their labels.
    pub(crate) alerts: HashMap<Labels, Alert>,
    /// Whether `ALERTS_FOR_STATE` may be written: after a restore attempt.
    pub(crate) restored: bool,
    /// Series written by the previous evaluation, for staleness markers.
    previous_series: HashSet<Labels>,
}

impl Rule {
    fn new(spec: RuleSpec) -> Rule {
        Rule {
            spec,
            health: Health::Unknown,
            last_error: None,
            last_evaluation_ms: None,
            evaluation_time: Duration::ZERO,
            alerts: HashMap::new(),
            restored: false,
            previous_series: HashSet::new(),
        }
    }

    /// Active (pending or firing) and resolved-but-retained alerts,
    /// sorted by labels.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut alerts: Vec<&Alert> = self.alerts.values().collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        alerts
    }

    /// The rule's state for the API: the worst of its active alerts.
    pub fn state(&self) -> AlertState {
        self.alerts
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    pub fn is_alerting(&self) -> bool {
        matches!(self.spec.kind, RuleKind::Alerting { .. })
    }
}

/// An alert handed to a notifier: what Alertmanager's API v2 takes.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyAlert {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    /// The resolution time, or how long the alert is valid without news.
    pub ends_at_ms: i64,
    pub generator_url: String,
}

/// Evaluation settings shared by every group.
#[derive(Clone, Debug)]
pub struct GroupOptions {
    /// The interval of groups that do not set one.
    pub default_interval_ms: i64,
    /// The query offset of groups that do not set one (the global
    /// `rule_query_offset`).
    pub default_query_offset_ms: i64,
    /// How long to wait before re-sending an unchanged firing alert.
    pub resend_delay_ms: i64,
    /// How long an outage may be for `for` state to be restored.
    pub outage_tolerance_ms: i64,
    /// Minimum time an alert waits after a restart before it fires.
    pub for_grace_period_ms: i64,
}

/// A group of rules evaluated together.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval_ms: i64,
    pub limit: u64,
    pub query_offset_ms: i64,
    pub rules: Vec<Rule>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_time: Duration,
    resend_delay_ms: i64,
}

impl Group {
    pub fn new(spec: GroupSpec, options: &GroupOptions) -> Group {
        let rules = spec
            .rules
            .into_iter()
            .map(|mut rule| {
                if !spec.labels.is_empty() {
                    let mut merged: Vec<(String, String)> = spec
                        .labels
                        .iter()
                        .filter(|(name, _)| !rule.labels.iter().any(|(n, _)| n == name))
                        .cloned()
                        .collect();
                    merged.append(&mut rule.labels);
                    merged.sort();
                    rule.labels = merged;
                }
                Rule::new(rule)
            })
            .collect();
        Group {
            name: spec.name,
            file: spec.file,
            interval_ms: spec
                .interval_ms
                .unwrap_or(options.default_interval_ms)
                .max(1),
            limit: spec.limit,
            query_offset_ms: spec
                .query_offset_ms
                .unwrap_or(options.default_query_offset_ms),
            rules,
            last_evaluation_ms: None,
            evaluation_time: Duration::ZERO,
            resend_delay_ms: options.resend_delay_ms,
        }
    }

    /// Lets alerting rules write `ALERTS_FOR_STATE` from the start, with no
    /// restore (rule unit tests, as promtool does).
    pub fn mark_restored(&mut self) {
        for rule in &mut self.rules {
            rule.restored = true;
        }
    }

    /// The group's identity across reloads: file and name.
    pub fn key(&self) -> (String, String) {
        (self.file.clone(), self.name.clone())
    }

    /// The first evaluation time at or after `now`, spread over the
    /// interval by a hash of the group's identity so that groups do not
    /// all evaluate at the same instant.
    pub fn next_eval_ms(&self, now_ms: i64) -> i64 {
        let offset = (model::hash::fnv1a_64(format!("{};{}", self.name, self.file).as_bytes())
            % self.interval_ms as u64) as i64;
        let adjusted = now_ms - offset;
        let base = adjusted - adjusted.rem_euclid(self.interval_ms);
        let t = base + offset;
        if t < now_ms { t + self.interval_ms } else { t }
    }

    /// Takes over the state of the rules of the previous load of this
    /// group, so that a reload keeps pending and firing alerts. Rules are
    /// matched by name and labels, in order (as Prometheus does), so a
    /// changed expression keeps its alerts.
    pub fn copy_state_from(&mut self, old: &mut Group) {
        let mut taken = vec![false; old.rules.len()];
        for rule in &mut self.rules {
            let found = old.rules.iter().enumerate().position(|(index, r)| {
                !taken[index]
                    && r.spec.name() == rule.spec.name()
                    && r.spec.labels == rule.spec.labels
            });
            let Some(index) = found else { continue };
            taken[index] = true;
            let previous = &mut old.rules[index];
            rule.alerts = std::mem::take(&mut previous.alerts);
            rule.previous_series = std::mem::take(&mut previous.previous_series);
            rule.restored = previous.restored;
            rule.health = previous.health;
            rule.last_error = previous.last_error.take();
            rule.last_evaluation_ms = previous.last_evaluation_ms;
            rule.evaluation_time = previous.evaluation_time;
        }
        self.last_evaluation_ms = old.last_evaluation_ms;
        self.evaluation_time = old.evaluation_time;
    }

    /// Evaluates every rule at `ts` and returns the alerts due for
    /// notification.
    pub fn eval(&mut self, env: &EvalEnv, ts: i64) -> Vec<NotifyAlert> {
        let started = Instant::now();
        let query_ts = ts - self.query_offset_ms;
        let mut notify = Vec::new();
        for index in 0..self.rules.len() {
            let rule_started = Instant::now();
            let limit = self.limit;
            let rule = &mut self.rules[index];
            let result = match &rule.spec.kind {
                RuleKind::Recording { record } => {
                    let record = record.clone();
                    eval_recording(rule, &record, env, query_ts, limit)
                }
                RuleKind::Alerting { .. } => eval_alerting(rule, env, ts, query_ts, limit),
            };
            let output = match result {
                Ok(output) => {
                    rule.health = Health::Ok;
                    rule.last_error = None;
                    Some(output)
                }
                Err(message) => {
                    rule.health = Health::Err;
                    tracing::warn!(group = %self.name, rule = %rule.spec.name(), error = %message, "rule evaluation failed");
                    rule.last_error = Some(message);
                    None
                }
            };
            if let Some(output) = output
                && let Err(message) = write_output(rule, env, ts, output)
            {
                rule.health = Health::Err;
                rule.last_error = Some(message);
            }
            if rule.is_alerting() {
                notify.extend(due_alerts(
                    rule,
                    &env.external_url,
                    ts,
                    self.resend_delay_ms,
                    self.interval_ms,
                ));
            }
            rule.last_evaluation_ms = Some(ts);
            rule.evaluation_time = rule_started.elapsed();
        }
        self.last_evaluation_ms = Some(ts);
        self.evaluation_time = started.elapsed();
        notify
    }

    /// Ends every series the group's last evaluation wrote with a
    /// staleness marker at `ts`: the group was removed from the
    /// configuration, so its series stop now rather than fading out after
    /// the lookback window (as Prometheus does for removed groups).
    pub fn mark_stale(&mut self, env: &EvalEnv, ts: i64) -> Result<(), String> {
        let mut appender = env.appendable.appender();
        for rule in &self.rules {
            for labels in &rule.previous_series {
                if let Err(e) = appender.append(labels, ts, STALE_NAN) {
                    appender.rollback();
                    return Err(format!("storing staleness markers: {e}"));
                }
            }
        }
        appender
            .commit()
            .map_err(|e| format!("committing staleness markers: {e}"))?;
        for rule in &mut self.rules {
            rule.previous_series.clear();
        }
        Ok(())
    }

    /// Restores how long each active alert has been pending from the
    /// `ALERTS_FOR_STATE` series written before a restart, then lets the
    /// rules write that series again. Follows Prometheus: the time the
    /// server was down does not count as pending time; an alert whose
    /// remaining pending time is shorter than the grace period waits for
    /// the grace period.
    pub fn restore_for_state(&mut self, env: &EvalEnv, ts: i64, options: &GroupOptions) {
        for rule in &mut self.rules {
            let RuleKind::Alerting { for_ms, .. } = rule.spec.kind else {
                rule.restored = true;
                continue;
            };
            if for_ms <= 0 || for_ms < options.for_grace_period_ms {
                rule.restored = true;
                continue;
            }
            let Ok(querier) = env
                .queryable
                .querier(ts - options.outage_tolerance_ms, ts - 1)
            else {
                continue;
            };
            for alert in rule.alerts.values_mut() {
                let mut matchers = vec![Matcher::equal(METRIC_NAME, "ALERTS_FOR_STATE")];
                for label in alert.labels.iter() {
                    matchers.push(Matcher::equal(label.name, label.value));
                }
                let Ok(set) = querier.select(&matchers) else {
                    continue;
                };
                let mut last = None;
                for series in set.flatten() {
                    if series.labels.len() != alert.labels.len() + 1 {
                        continue;
                    }
                    if let Some(sample) = series
                        .samples
                        .filter(|(_, v)| !model::is_stale_nan(*v))
                        .last()
                    {
                        last = Some(sample);
                    }
                }
                let Some((down_at, value)) = last else {
                    continue;
                };
                let down_at = down_at / 1000 * 1000;
                let mut restored_active_at = (value as i64).saturating_mul(1000);
                let spent_pending = down_at - restored_active_at;
                let remaining = for_ms - spent_pending;
                if remaining <= 0 {
                    // It was firing when the server went down.
                } else if remaining < options.for_grace_period_ms {
                    restored_active_at = ts + options.for_grace_period_ms - for_ms;
                } else {
                    restored_active_at += ts - down_at;
                }
                alert.active_at_ms = restored_active_at;
            }
            rule.restored = true;
        }
    }
}

/// The output of one rule evaluation: series and values at `ts` (a
/// recording rule's native histogram results carry the histogram).
pub(crate) type Output = Vec<(Labels, f64, Option<FloatHistogram>)>;

fn eval_recording(
    rule: &mut Rule,
    record: &str,
    env: &EvalEnv,
    query_ts: i64,
    limit: u64,
) -> Result<Output, String> {
    let samples = instant_samples(env, &rule.spec.expr, query_ts)?;
    let mut output = Vec::with_capacity(samples.len());
    let mut seen = HashSet::with_capacity(samples.len());
    for (labels, value, histogram) in samples {
        let mut builder = LabelsBuilder::from_labels(&labels);
        builder.set(METRIC_NAME.to_string(), record.to_string());
        for (name, value) in &rule.spec.labels {
            builder.set(name.clone(), value.clone());
        }
        let labels = builder.build();
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        output.push((labels, value, histogram));
    }
    if limit > 0 && output.len() as u64 > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            output.len()
        ));
    }
    Ok(output)
}

fn eval_alerting(
    rule: &mut Rule,
    env: &EvalEnv,
    ts: i64,
    query_ts: i64,
    limit: u64,
) -> Result<Output, String> {
    let RuleKind::Alerting {
        alert: name,
        annotations,
        ..
    } = &rule.spec.kind
    else {
        return Ok(Vec::new());
    };
    let samples = instant_vector(env, &rule.spec.expr, query_ts)?;
    let mut current: HashMap<Labels, Alert> = HashMap::with_capacity(samples.len());
    for (sample_labels, value) in samples {
        let context = TemplateContext {
            labels: &sample_labels,
            external_labels: &env.external_labels,
            external_url: &env.external_url,
            value,
            engine: &env.engine,
            storage: &env.queryable,
            time_ms: query_ts,
        };
        let mut builder = LabelsBuilder::from_labels(&sample_labels);
        builder.delete(METRIC_NAME);
        for (label, text) in &rule.spec.labels {
            builder.set(label.clone(), expand_alert_template(name, text, &context));
        }
        builder.set(ALERT_NAME.to_string(), name.clone());
        let labels = builder.build();
        let annotations: Vec<(String, String)> = annotations
            .iter()
            .map(|(label, text)| (label.clone(), expand_alert_template(name, text, &context)))
            .collect();
        if current.contains_key(&labels) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        current.insert(
            labels.clone(),
            Alert::pending(labels, annotations, value, ts),
        );
    }
    advance_alerts(rule, current, ts, limit)?;
    Ok(alert_output(rule))
}

/// Moves a rule's alerts to their state at evaluation time `ts`, given the
/// alerts its expression produced there (`current`, keyed by labels, each
/// pending since `ts`). This is the whole state machine (pending, firing,
/// `for`, `keep_firing_for`, resolution, retention of resolved alerts, the
/// alert `limit`); the live engine and the backtest both go through it.
pub(crate) fn advance_alerts(
    rule: &mut Rule,
    current: HashMap<Labels, Alert>,
    ts: i64,
    limit: u64,
) -> Result<(), String> {
    let RuleKind::Alerting {
        for_ms,
        keep_firing_for_ms,
        ..
    } = rule.spec.kind
    else {
        return Ok(());
    };
    let present: HashSet<Labels> = current.keys().cloned().collect();
    for (labels, fresh) in current {
        match rule.alerts.get_mut(&labels) {
            Some(existing) if existing.state != AlertState::Inactive => {
                existing.value = fresh.value;
                existing.annotations = fresh.annotations;
            }
            _ => {
                rule.alerts.insert(labels, fresh);
            }
        }
    }
    let mut remove = Vec::new();
    for (labels, alert) in rule.alerts.iter_mut() {
        if !present.contains(labels) {
            let keep_firing = keep_firing_for_ms > 0 && alert.state == AlertState::Firing && {
                let since = *alert.keep_firing_since_ms.get_or_insert(ts);
                ts - since < keep_firing_for_ms
            };
            if !keep_firing {
                if alert.state == AlertState::Pending
                    || alert
                        .resolved_at_ms
                        .is_some_and(|resolved| ts - resolved > RESOLVED_RETENTION_MS)
                {
                    remove.push(labels.clone());
                }
                if alert.state != AlertState::Inactive {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at_ms = Some(ts);
                }
                continue;
            }
        } else {
            alert.keep_firing_since_ms = None;
        }
        if alert.state == AlertState::Pending && ts - alert.active_at_ms >= for_ms {
            alert.state = AlertState::Firing;
            alert.fired_at_ms = Some(ts);
        }
    }
    for labels in remove {
        rule.alerts.remove(&labels);
    }
    let n_active = rule
        .alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .count();
    if limit > 0 && n_active as u64 > limit {
        rule.alerts.clear();
        return Err(format!("exceeded limit of {limit} with {n_active} alerts"));
    }
    Ok(())
}

/// The `ALERTS` and (once restored) `ALERTS_FOR_STATE` series of a rule's
/// active alerts.
pub(crate) fn alert_output(rule: &Rule) -> Output {
    let n_active = rule
        .alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .count();
    let mut output = Vec::with_capacity(n_active * 2);
    for alert in rule.alerts.values() {
        if alert.state == AlertState::Inactive {
            continue;
        }
        let mut builder = LabelsBuilder::from_labels(&alert.labels);
        builder.set(METRIC_NAME.to_string(), "ALERTS".to_string());
        builder.set("alertstate".to_string(), alert.state.as_str().to_string());
        output.push((builder.build(), 1.0, None));
        if rule.restored {
            let mut builder = LabelsBuilder::from_labels(&alert.labels);
            builder.set(METRIC_NAME.to_string(), "ALERTS_FOR_STATE".to_string());
            output.push((
                builder.build(),
                (alert.active_at_ms.div_euclid(1000)) as f64,
                None,
            ));
        }
    }
    output
}

/// Runs `expr` as an instant query and returns its float samples; a
/// scalar becomes one sample with no labels, as in Prometheus. Native
/// histogram results are left out: alerting rules and templates work on
/// floats (a histogram's `v` is no value).
pub(crate) fn instant_vector(
    env: &EvalEnv,
    expr: &str,
    ts: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    Ok(instant_samples(env, expr, ts)?
        .into_iter()
        .filter(|(_, _, h)| h.is_none())
        .map(|(labels, v, _)| (labels, v))
        .collect())
}

/// Like [`instant_vector`], keeping native histogram samples (what a
/// recording rule records, as Prometheus's does).
fn instant_samples(
    env: &EvalEnv,
    expr: &str,
    ts: i64,
) -> Result<Vec<(Labels, f64, Option<FloatHistogram>)>, String> {
    let output = env
        .engine
        .instant_query(env.queryable.as_ref(), expr, ts)
        .map_err(|e| e.to_string())?;
    match output.value {
        promql::Value::Vector(samples) => {
            Ok(samples.into_iter().map(|s| (s.labels, s.v, s.h)).collect())
        }
        promql::Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v, None)]),
        promql::Value::String { .. } => Err("rule result is a string, not a vector".into()),
        promql::Value::Matrix(_) => Err("rule result is a range vector, not a vector".into()),
    }
}

/// Appends the rule's output at `ts`, plus staleness markers for series
/// it wrote last time but not now, and commits.
fn write_output(rule: &mut Rule, env: &EvalEnv, ts: i64, output: Output) -> Result<(), String> {
    let mut appender = env.appendable.appender();
    let mut current = HashSet::with_capacity(output.len());
    for (labels, value, histogram) in output {
        let stored = match &histogram {
            Some(h) => appender.append_histogram(&labels, ts, h),
            None => appender.append(&labels, ts, value),
        };
        if let Err(e) = stored {
            appender.rollback();
            return Err(format!("storing rule output: {e}"));
        }
        current.insert(labels);
    }
    for labels in rule.previous_series.difference(&current) {
        if let Err(e) = appender.append(labels, ts, STALE_NAN) {
            appender.rollback();
            return Err(format!("storing staleness markers: {e}"));
        }
    }
    appender
        .commit()
        .map_err(|e| format!("committing rule output: {e}"))?;
    rule.previous_series = current;
    Ok(())
}

/// The alerts of `rule` due for sending at `ts`, marked as sent.
pub(crate) fn due_alerts(
    rule: &mut Rule,
    external_url: &str,
    ts: i64,
    resend_delay_ms: i64,
    interval_ms: i64,
) -> Vec<NotifyAlert> {
    let generator_url = generator_url(external_url, &rule.spec.expr);
    let mut due = Vec::new();
    for alert in rule.alerts.values_mut() {
        if !alert.needs_sending(ts, resend_delay_ms) {
            continue;
        }
        alert.last_sent_at_ms = Some(ts);
        alert.valid_until_ms = ts + 4 * resend_delay_ms.max(interval_ms);
        due.push(NotifyAlert {
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
            ends_at_ms: alert.resolved_at_ms.unwrap_or(alert.valid_until_ms),
            generator_url: generator_url.clone(),
        });
    }
    due
}

/// A link to the expression's table view, as Prometheus sends it.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let mut encoded = String::new();
    for byte in expr.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    format!(
        "{}/graph?g0.expr={encoded}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}
