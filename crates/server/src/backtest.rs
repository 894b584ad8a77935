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

use std::collections::BTreeMap;
use std::sync::Arc;

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
    let one = |specs: Vec<GroupSpec>| -> Result<Value, ApiError> {
        let result = rules::backtest(&setup.engine, setup.storage.clone(), specs, &options)
            .map_err(|e| match e.kind() {
                BacktestErrorKind::BadInput => ApiError::bad_data(e.to_string()),
                _ => ApiError::new(crate::ErrorType::Execution, e.to_string()),
            })?;
        Ok(backtest_json(&result, setup.alertmanager.as_deref()))
    };
    let mut data = one(rules)?;
    if let Some(compare) = compare
        && let Value::Object(map) = &mut data
    {
        map.insert("compare".into(), one(compare)?);
    }
    Ok(data)
}

/// Unix seconds, as a JSON number.
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// The JSON of a backtest: `{"from", "to", "rules": [...],
/// "recordingErrors": [...]}`.
pub fn backtest_json(
    result: &Backtest,
    alertmanager: Option<&config::alertmanager::Config>,
) -> Value {
    let rules: Vec<Value> = result
        .rules
        .iter()
        .map(|rule| rule_json(rule, result.to_ms, alertmanager))
        .collect();
    json!({
        "from": seconds(result.from_ms),
        "to": seconds(result.to_ms),
        "rules": rules,
        "recordingErrors": result.recording_errors,
    })
}

fn rule_json(
    rule: &RuleBacktest,
    to_ms: i64,
    alertmanager: Option<&config::alertmanager::Config>,
) -> Value {
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
    let notifications = alertmanager.map(|config| {
        let sent: Vec<alert::simulate::SentAlert> = rule
            .sent
            .iter()
            .map(|s| alert::simulate::SentAlert {
                at_ms: s.at_ms,
                labels: s.labels.clone(),
                starts_at_ms: s.starts_at_ms,
                ends_at_ms: s.ends_at_ms,
            })
            .collect();
        let notes = alert::simulate::simulate(config, &sent, to_ms);
        let mut by_receiver: BTreeMap<&str, u64> = BTreeMap::new();
        for note in &notes {
            *by_receiver.entry(note.receiver.as_str()).or_default() += 1;
        }
        json!({"total": notes.len(), "byReceiver": by_receiver})
    });
    out.insert("notifications".into(), notifications.unwrap_or(Value::Null));
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
