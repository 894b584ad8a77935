//! `GET|POST /api/v1/rules/backtest`: what rules would have done over the
//! server's stored history (`rules::backtest`), with the notifications the
//! embedded alert manager's current routing, grouping and inhibition would
//! have sent (`alert::simulate`), and an optional second version of the
//! rules for comparison. `docs/backtest.md` is the user's view; this file
//! owns the JSON shape, which `osprey rules backtest --format json`
//! prints too.
//!
//! Parameters (URL query or form body): `from` and `to` (Unix seconds or
//! RFC 3339, required), `rules` (the text of a rule file; repeat for
//! several; absent: the rule groups the server runs now), `compare` (a
//! second version, same form), `file` (optional names for the `rules`
//! texts, in order, for error messages and the report).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alert::simulate::{self, SentAlert};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use model::storage::Queryable;
use rules::backtest::{Backtest, BacktestErrorKind, BacktestOptions, RuleBacktest};
use rules::{AlertState, GroupOptions, GroupSpec};
use serde_json::{Map, Value, json};

use crate::api::{labels_json, read_params, success};
use crate::params::{Params, parse_time};
use crate::{ApiError, AppState};

/// The most bytes of rule text one request may carry (all `rules` and
/// `compare` values together); the form body limit (8 MiB) bounds it too.
pub const MAX_RULE_TEXT_BYTES: usize = 4 << 20;

/// A parsed backtest request.
#[derive(Debug)]
pub struct BacktestRequest {
    pub from_ms: i64,
    pub to_ms: i64,
    /// `None`: the groups the server runs now.
    pub rules: Option<Vec<GroupSpec>>,
    pub compare: Option<Vec<GroupSpec>>,
}

impl BacktestRequest {
    /// Reads and checks the parameters; every problem is a `bad_data`
    /// error that names the parameter.
    pub fn from_params(params: &Params) -> Result<BacktestRequest, ApiError> {
        let time = |name: &str| -> Result<i64, ApiError> {
            let text = params
                .get(name)
                .ok_or_else(|| ApiError::bad_data(format!("missing parameter {name:?}")))?;
            parse_time(text)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter {name:?}: {e}")))
        };
        let from_ms = time("from")?;
        let to_ms = time("to")?;
        if to_ms < from_ms {
            return Err(ApiError::bad_data(
                "invalid parameter \"to\": the end of the range is before its start",
            ));
        }
        let names = params.all("file");
        let texts = params.all("rules");
        let compare_texts = params.all("compare");
        let total: usize = texts.iter().chain(&compare_texts).map(|t| t.len()).sum();
        if total > MAX_RULE_TEXT_BYTES {
            return Err(ApiError::bad_data(format!(
                "rule texts of {total} bytes exceed the limit of {MAX_RULE_TEXT_BYTES}"
            )));
        }
        let rules = if texts.is_empty() {
            None
        } else {
            Some(parse_rule_texts("rules", &texts, &names)?)
        };
        let compare = if compare_texts.is_empty() {
            None
        } else {
            Some(parse_rule_texts("compare", &compare_texts, &[])?)
        };
        Ok(BacktestRequest {
            from_ms,
            to_ms,
            rules,
            compare,
        })
    }
}

/// Parses rule file texts; a text without a name in `names` is called
/// `<param>[<index>]`.
fn parse_rule_texts(
    param: &str,
    texts: &[&str],
    names: &[&str],
) -> Result<Vec<GroupSpec>, ApiError> {
    let mut specs = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        let name = names
            .get(index)
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("{param}[{index}]"));
        match rules::parse_rule_file(&name, text) {
            Ok(groups) => specs.extend(groups),
            Err(errors) => {
                let message = errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(ApiError::bad_data(format!(
                    "invalid parameter {param:?}: {message}"
                )));
            }
        }
    }
    Ok(specs)
}

/// Everything a backtest needs besides the request.
pub struct BacktestSetup {
    pub engine: Arc<promql::Engine>,
    pub storage: Arc<dyn Queryable>,
    pub group: GroupOptions,
    pub external_labels: Vec<(String, String)>,
    pub external_url: String,
    /// The alert manager's configuration; `None`: no notifications.
    pub alertmanager: Option<Arc<config::alertmanager::Config>>,
}

/// A query engine with Prometheus's defaults, for backtests outside a
/// server (`osprey rules backtest --data-dir`).
pub fn default_engine() -> Arc<promql::Engine> {
    Arc::new(promql::Engine::new(
        promql::EngineOptions::prometheus_defaults(),
    ))
}

/// Runs the backtest (and the comparison) and returns the API's `data`.
pub fn run(
    setup: &BacktestSetup,
    from_ms: i64,
    to_ms: i64,
    rules: Vec<GroupSpec>,
    compare: Option<Vec<GroupSpec>>,
) -> Result<Value, ApiError> {
    let options = BacktestOptions {
        from_ms,
        to_ms,
        group: setup.group.clone(),
        external_labels: setup.external_labels.clone(),
        external_url: setup.external_url.clone(),
    };
    let one = |specs: Vec<GroupSpec>| -> Result<Backtest, ApiError> {
        rules::backtest(&setup.engine, setup.storage.clone(), specs, &options).map_err(|e| match e
            .kind()
        {
            BacktestErrorKind::BadInput => ApiError::bad_data(e.to_string()),
            _ => ApiError::new(crate::ErrorType::Execution, e.to_string()),
        })
    };
    let current = one(rules)?;
    let compared = compare.map(one).transpose()?;
    let alertmanager = setup.alertmanager.as_deref();
    let current_counts = alertmanager.map(|config| {
        let sends: Vec<Vec<SentAlert>> = current.rules.iter().map(sent_alerts).collect();
        let counts = simulate_together(config, &sends, to_ms);
        (config, sends, counts)
    });
    let mut data = backtest_json(
        &current,
        current_counts.as_ref().map(|(_, _, counts)| counts),
    );
    if let Some(compared) = compared
        && let Value::Object(map) = &mut data
    {
        let counts = current_counts.as_ref().map(|(config, sends, counts)| {
            compared_counts(config, &current, sends, counts, &compared)
        });
        map.insert("compare".into(), backtest_json(&compared, counts.as_ref()));
    }
    Ok(data)
}

/// What the alert manager would have notified for a backtest's rules,
/// simulated together: per rule, the notifications that carry at least
/// one of its alerts (so one notification can count for several rules),
/// and the whole run's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotificationCounts {
    /// One per rule, in the backtest's order.
    pub rules: Vec<ReceiverCounts>,
    pub run: ReceiverCounts,
}

/// A number of notifications, in all and per receiver.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReceiverCounts {
    pub total: u64,
    pub by_receiver: BTreeMap<String, u64>,
}

impl ReceiverCounts {
    fn add(&mut self, receiver: &str) {
        self.total += 1;
        *self.by_receiver.entry(receiver.to_string()).or_default() += 1;
    }

    fn json(&self) -> Value {
        json!({"total": self.total, "byReceiver": self.by_receiver})
    }
}

/// A rule's sends as the simulator takes them.
fn sent_alerts(rule: &RuleBacktest) -> Vec<SentAlert> {
    rule.sent
        .iter()
        .map(|s| SentAlert {
            at_ms: s.at_ms,
            labels: s.labels.clone(),
            starts_at_ms: s.starts_at_ms,
            ends_at_ms: s.ends_at_ms,
        })
        .collect()
}

/// One simulation over every rule's sends (`sends[i]` is rule `i`'s),
/// counted per rule by the alerts each notification carries.
pub fn simulate_together(
    config: &config::alertmanager::Config,
    sends: &[Vec<SentAlert>],
    to_ms: i64,
) -> NotificationCounts {
    // Which rules sent each alert (two rules can send the same labels).
    let mut owners: HashMap<u64, Vec<usize>> = HashMap::new();
    for (rule, sent) in sends.iter().enumerate() {
        let fingerprints: HashSet<u64> = sent.iter().filter_map(simulate::fingerprint).collect();
        for fingerprint in fingerprints {
            owners.entry(fingerprint).or_default().push(rule);
        }
    }
    let all: Vec<SentAlert> = sends.iter().flatten().cloned().collect();
    let mut counts = NotificationCounts {
        rules: vec![ReceiverCounts::default(); sends.len()],
        run: ReceiverCounts::default(),
    };
    for note in simulate::simulate(config, &all, to_ms) {
        counts.run.add(&note.receiver);
        let rules: BTreeSet<usize> = note
            .alerts
            .iter()
            .filter_map(|fingerprint| owners.get(fingerprint))
            .flatten()
            .copied()
            .collect();
        for rule in rules {
            counts.rules[rule].add(&note.receiver);
        }
    }
    counts
}

/// The compared version's counts: for each of its rules, a simulation of
/// the current rules with that rule's sends replaced by the edited one's
/// (the current rule of the same group and name, the n-th such for the
/// n-th; one without a counterpart is added to the current rules). The
/// run's figure is the compared rules simulated together.
fn compared_counts(
    config: &config::alertmanager::Config,
    current: &Backtest,
    current_sends: &[Vec<SentAlert>],
    current_counts: &NotificationCounts,
    compared: &Backtest,
) -> NotificationCounts {
    let compared_sends: Vec<Vec<SentAlert>> = compared.rules.iter().map(sent_alerts).collect();
    let mut taken = vec![false; current.rules.len()];
    let mut rules = Vec::with_capacity(compared.rules.len());
    for (rule, sent) in compared.rules.iter().zip(&compared_sends) {
        let counterpart = current
            .rules
            .iter()
            .enumerate()
            .position(|(i, r)| !taken[i] && r.group == rule.group && r.name == rule.name);
        let mut sends = current_sends.to_vec();
        let index = match counterpart {
            Some(i) => {
                taken[i] = true;
                if current_sends[i] == *sent {
                    rules.push(current_counts.rules[i].clone());
                    continue;
                }
                sends[i] = sent.clone();
                i
            }
            None => {
                sends.push(sent.clone());
                sends.len() - 1
            }
        };
        let mut counts = simulate_together(config, &sends, compared.to_ms);
        rules.push(counts.rules.swap_remove(index));
    }
    NotificationCounts {
        rules,
        run: simulate_together(config, &compared_sends, compared.to_ms).run,
    }
}

/// Unix seconds, as a JSON number.
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// The JSON of a backtest: `{"from", "to", "rules": [...],
/// "recordingErrors": [...], "notifications"}`; `notifications` (the
/// run's and each rule's) is `null` without counts (no alert manager).
pub fn backtest_json(result: &Backtest, notifications: Option<&NotificationCounts>) -> Value {
    let rules: Vec<Value> = result
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let counts = notifications.and_then(|n| n.rules.get(i));
            rule_json(rule, result.to_ms, counts)
        })
        .collect();
    json!({
        "from": seconds(result.from_ms),
        "to": seconds(result.to_ms),
        "rules": rules,
        "recordingErrors": result.recording_errors,
        "notifications": notifications.map(|n| n.run.json()),
    })
}

fn rule_json(rule: &RuleBacktest, to_ms: i64, notifications: Option<&ReceiverCounts>) -> Value {
    let alerts: Vec<Value> = rule
        .alerts
        .iter()
        .map(|alert| {
            let intervals: Vec<Value> = alert
                .intervals
                .iter()
                .map(|i| {
                    json!({
                        "state": match i.state {
                            AlertState::Firing => "firing",
                            _ => "pending",
                        },
                        "start": seconds(i.start_ms),
                        "end": i.end_ms.map(seconds),
                    })
                })
                .collect();
            json!({"labels": labels_json(&alert.labels), "intervals": intervals})
        })
        .collect();
    let flapping = rule.flapping();
    let mut out = Map::new();
    out.insert("name".into(), json!(rule.name));
    out.insert("group".into(), json!(rule.group));
    out.insert("file".into(), json!(rule.file));
    out.insert("interval".into(), seconds(rule.interval_ms));
    out.insert("alerts".into(), Value::Array(alerts));
    out.insert("firingSeconds".into(), seconds(rule.firing_ms(to_ms)));
    out.insert("firingEpisodes".into(), json!(flapping.episodes));
    out.insert(
        "flapping".into(),
        json!({"score": flapping.score, "refires": flapping.refires, "episodes": flapping.episodes}),
    );
    out.insert("sentToAlertmanager".into(), json!(rule.sent.len()));
    out.insert(
        "notifications".into(),
        notifications.map_or(Value::Null, ReceiverCounts::json),
    );
    if let Some(error) = &rule.error {
        out.insert("error".into(), json!(error));
        out.insert("failedEvaluations".into(), json!(rule.failed_evaluations));
    }
    Value::Object(out)
}

/// The handler.
pub(crate) async fn backtest_api(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let request = BacktestRequest::from_params(&params)?;
        let config = state.current_config();
        let flags = &state.config().rule_flags;
        let (default_interval_ms, default_query_offset_ms, external_labels) = match &config {
            Some(c) => (
                c.global.evaluation_interval_ms,
                c.global.rule_query_offset_ms,
                c.global.external_labels.clone(),
            ),
            None => (60_000, 0, Vec::new()),
        };
        let rules = match request.rules {
            Some(specs) => specs,
            None => state
                .rules()
                .map(|r| r.manager.group_specs())
                .unwrap_or_default(),
        };
        let setup = BacktestSetup {
            engine: state.engine().clone(),
            storage: state.storage().clone(),
            group: GroupOptions {
                default_interval_ms,
                default_query_offset_ms,
                resend_delay_ms: flags.resend_delay_ms,
                outage_tolerance_ms: flags.outage_tolerance_ms,
                for_grace_period_ms: flags.for_grace_period_ms,
            },
            external_labels,
            external_url: state.config().external_url.clone(),
            alertmanager: state.alertmanager().map(|am| am.config()),
        };
        let (from_ms, to_ms, compare) = (request.from_ms, request.to_ms, request.compare);
        let data = crate::blocking(move || run(&setup, from_ms, to_ms, rules, compare)).await?;
        Ok::<_, ApiError>(success(data, &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn rule(name: &str, severity: &str, fires: bool) -> RuleBacktest {
        let labels = model::Labels::from_pairs([
            ("alertname", name),
            ("instance", "a"),
            ("severity", severity),
        ]);
        // Fires from 0 to 10m: sent at 0 (until 4m) and resolved at 10m.
        let sent = if fires {
            vec![
                rules::backtest::SentAlert {
                    at_ms: 0,
                    labels: labels.clone(),
                    starts_at_ms: 0,
                    ends_at_ms: 4 * MIN,
                },
                rules::backtest::SentAlert {
                    at_ms: 10 * MIN,
                    labels,
                    starts_at_ms: 0,
                    ends_at_ms: 10 * MIN,
                },
            ]
        } else {
            Vec::new()
        };
        RuleBacktest {
            file: "r.yml".into(),
            group: "g".into(),
            name: name.into(),
            interval_ms: MIN,
            alerts: Vec::new(),
            sent,
            error: None,
            failed_evaluations: 0,
        }
    }

    fn backtest(rules: Vec<RuleBacktest>) -> Backtest {
        Backtest {
            from_ms: 0,
            to_ms: 60 * MIN,
            rules,
            recording_errors: Vec::new(),
        }
    }

    fn totals(counts: &NotificationCounts) -> (Vec<u64>, u64) {
        (
            counts.rules.iter().map(|c| c.total).collect(),
            counts.run.total,
        )
    }

    #[test]
    fn rules_are_simulated_together_and_compared_one_at_a_time() {
        let config = config::alertmanager::parse(
            "am.yml",
            "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1m\ninhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [instance]\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://example.invalid/\n",
            None,
        )
        .expect("config");
        // Critical mutes Warning (same instance, same times): Critical
        // fires at 0 and resolves at 10m, Warning is never notified.
        let current = backtest(vec![
            rule("Critical", "critical", true),
            rule("Warning", "warning", true),
        ]);
        let sends: Vec<Vec<SentAlert>> = current.rules.iter().map(sent_alerts).collect();
        let counts = simulate_together(&config, &sends, current.to_ms);
        assert_eq!(totals(&counts), (vec![2, 0], 2));
        assert_eq!(counts.rules[0].by_receiver.get("team"), Some(&2));
        // An edited Critical that never fires: with Warning unchanged,
        // Critical counts 0. Warning's sends did not change, so its count
        // is the current one (Critical as it is now still mutes it). The
        // compared run (both edited rules together) has Warning's 2.
        let compared = backtest(vec![
            rule("Critical", "critical", false),
            rule("Warning", "warning", true),
        ]);
        let compared = compared_counts(&config, &current, &sends, &counts, &compared);
        assert_eq!(totals(&compared), (vec![0, 0], 2));
        // A compared rule without a current counterpart is added to the
        // current rules: a new Warning2 is muted by the current Critical.
        let added = backtest(vec![rule("Warning2", "warning", true)]);
        let added = compared_counts(&config, &current, &sends, &counts, &added);
        assert_eq!(totals(&added), (vec![0], 2));
    }
}
