//! Rules as the server runs them: `rule_files` from the configuration,
//! the rule manager, alert delivery to Alertmanagers, and the
//! `/api/v1/rules` and `/api/v1/alerts` endpoints.
//!
//! Alerts leave through [`AlertSender`], a [`rules::Notifier`]: it adds
//! the external labels, applies `alert_relabel_configs`, queues (at most
//! [`MAX_QUEUED_ALERTS`], dropping the oldest), and posts batches of up to
//! [`MAX_BATCH`] to every configured Alertmanager's API v2. A built-in
//! alert manager plugs in through [`AppState::set_local_alert_sink`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use config::{AlertingConfig, ClientOptions, HttpClient};
use model::relabel::{self, RelabelConfig};
use rules::{AlertState, EvalEnv, GroupOptions, NotifyAlert, RuleKind, RuleManager};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::api::{labels_json, read_params, success};
use crate::scraping::rfc3339_ms;

/// Alerts waiting to be sent beyond this are dropped, oldest first
/// (Prometheus's `--alertmanager.notification-queue-capacity`).
pub const MAX_QUEUED_ALERTS: usize = 10_000;
/// Alerts per request to an Alertmanager, as Prometheus sends them.
pub const MAX_BATCH: usize = 256;

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
    specs.extend(rules::read_rule_files(&config.rule_files()).map_err(join)?);
    Ok(specs)
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
            let storage = self.storage().clone();
            let flags = &self.config().rule_flags;
            let sender = Arc::new(AlertSender::new());
            let env = EvalEnv {
                engine: self.engine().clone(),
                queryable: storage.clone(),
                appendable: storage,
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

/// Where alerts go besides the configured Alertmanagers: a built-in alert
/// manager.
pub type LocalAlertSink = Arc<dyn Fn(Vec<SentAlert>) + Send + Sync>;

/// An alert as sent to an Alertmanager: external labels added and
/// relabelled.
#[derive(Clone, Debug, PartialEq)]
pub struct SentAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub generator_url: String,
}

impl SentAlert {
    fn to_json(&self) -> Value {
        json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339_ms(self.starts_at_ms),
            "endsAt": rfc3339_ms(self.ends_at_ms),
            "generatorURL": self.generator_url,
        })
    }
}

struct Target {
    url: String,
    client: HttpClient,
    alert_relabel_configs: Vec<RelabelConfig>,
    timeout: std::time::Duration,
}

/// An `alerting` section with the client of each Alertmanager entry built,
/// so applying it cannot fail.
pub struct PreparedAlerting {
    alerting: AlertingConfig,
    external_labels: Vec<(String, String)>,
    clients: Vec<HttpClient>,
}

impl PreparedAlerting {
    /// Builds a client per `alerting.alertmanagers` entry; a bad TLS file or
    /// proxy names the entry.
    pub fn new(config: &config::Config) -> Result<PreparedAlerting, String> {
        let mut clients = Vec::new();
        for (index, am) in config.alerting.alertmanagers.iter().enumerate() {
            let mut options = ClientOptions::new(&config::client::user_agent());
            options.timeout = Some(std::time::Duration::from_millis(am.timeout_ms.max(1) as u64));
            let client = HttpClient::new(&am.http, options)
                .map_err(|e| format!("alerting.alertmanagers[{index}]: {e}"))?;
            clients.push(client);
        }
        Ok(PreparedAlerting {
            alerting: config.alerting.clone(),
            external_labels: config.global.external_labels.clone(),
            clients,
        })
    }
}

struct SenderConfig {
    external_labels: Vec<(String, String)>,
    alert_relabel_configs: Vec<RelabelConfig>,
    targets: Vec<Arc<Target>>,
}

/// The `alerting` section in effect, its clients, and one file discovery
/// per Alertmanager entry.
struct Discovery {
    alerting: AlertingConfig,
    clients: Vec<HttpClient>,
    files: Vec<scrape::FileDiscovery>,
}

/// Queues alerts and posts them to Alertmanagers.
pub struct AlertSender {
    config: RwLock<SenderConfig>,
    /// The `alerting` section in effect and, per Alertmanager entry, the
    /// discovery of its `file_sd_configs`; targets are rebuilt from both
    /// when a discovered file changes.
    discovery: Mutex<Discovery>,
    queue: Mutex<VecDeque<SentAlert>>,
    wake: tokio::sync::Notify,
    local: RwLock<Option<LocalAlertSink>>,
    started: std::sync::Once,
}

impl AlertSender {
    fn new() -> AlertSender {
        AlertSender {
            config: RwLock::new(SenderConfig {
                external_labels: Vec::new(),
                alert_relabel_configs: Vec::new(),
                targets: Vec::new(),
            }),
            discovery: Mutex::new(Discovery {
                alerting: AlertingConfig::default(),
                clients: Vec::new(),
                files: Vec::new(),
            }),
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            local: RwLock::new(None),
            started: std::sync::Once::new(),
        }
    }

    /// Sends alerts to a built-in alert manager too (`None`: not).
    pub(crate) fn set_local(&self, sink: Option<LocalAlertSink>) {
        if let Ok(mut local) = self.local.write() {
            *local = sink;
        }
    }

    /// Takes a prepared `alerting` section and the external labels.
    pub(crate) fn configure(self: &Arc<Self>, prepared: PreparedAlerting) {
        let PreparedAlerting {
            alerting,
            external_labels,
            clients,
        } = prepared;
        let mut files: Vec<scrape::FileDiscovery> = alerting
            .alertmanagers
            .iter()
            .map(|am| scrape::FileDiscovery::new(am.file_sd_configs.clone()))
            .collect();
        for discovery in &mut files {
            discovery.refresh();
        }
        let targets = alertmanager_targets(&alerting, &clients, &files);
        if let Ok(mut current) = self.config.write() {
            *current = SenderConfig {
                external_labels,
                alert_relabel_configs: alerting.alert_relabel_configs.clone(),
                targets,
            };
        }
        if let Ok(mut discovery) = self.discovery.lock() {
            *discovery = Discovery {
                alerting,
                clients,
                files,
            };
        }
        let sender = self.clone();
        self.started.call_once(|| {
            let discovering = sender.clone();
            tokio::spawn(async move { sender.run().await });
            tokio::spawn(async move { discovering.discover().await });
        });
    }

    /// Re-reads the Alertmanager entries' `file_sd_configs` files at their
    /// refresh interval and rebuilds the targets when one changed.
    async fn discover(self: Arc<Self>) {
        loop {
            let every = match self.discovery.lock() {
                Ok(discovery) => discovery
                    .files
                    .iter()
                    .filter_map(scrape::FileDiscovery::refresh_interval)
                    .min(),
                Err(_) => return,
            };
            // Without file discovery, look again later: a reload may add it.
            let every = every.unwrap_or(std::time::Duration::from_secs(5));
            tokio::time::sleep(every).await;
            let sender = self.clone();
            let refreshed = tokio::task::spawn_blocking(move || {
                let Ok(mut discovery) = sender.discovery.lock() else {
                    return;
                };
                let Discovery {
                    alerting,
                    clients,
                    files,
                } = &mut *discovery;
                let mut changed = false;
                for file in files.iter_mut() {
                    changed |= file.refresh();
                }
                if !changed {
                    return;
                }
                let targets = alertmanager_targets(alerting, clients, files);
                if let Ok(mut current) = sender.config.write() {
                    current.targets = targets;
                }
            })
            .await;
            if refreshed.is_err() {
                tracing::error!("Alertmanager discovery panicked");
                return;
            }
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            loop {
                let batch: Vec<SentAlert> = match self.queue.lock() {
                    Ok(mut queue) => {
                        let n = queue.len().min(MAX_BATCH);
                        queue.drain(..n).collect()
                    }
                    Err(_) => return,
                };
                if batch.is_empty() {
                    break;
                }
                let targets = match self.config.read() {
                    Ok(config) => config.targets.clone(),
                    Err(_) => return,
                };
                for target in targets {
                    send_batch(&target, batch.clone()).await;
                }
            }
        }
    }
}

impl rules::Notifier for AlertSender {
    fn notify(&self, alerts: Vec<NotifyAlert>) {
        let (prepared, has_targets) = match self.config.read() {
            Ok(config) => (
                alerts
                    .into_iter()
                    .filter_map(|alert| prepare(alert, &config))
                    .collect::<Vec<_>>(),
                !config.targets.is_empty(),
            ),
            Err(_) => return,
        };
        if prepared.is_empty() {
            return;
        }
        let local = self.local.read().ok().and_then(|l| l.clone());
        if let Some(local) = local {
            local(prepared.clone());
        }
        if !has_targets {
            return;
        }
        if let Ok(mut queue) = self.queue.lock() {
            queue.extend(prepared);
            let excess = queue.len().saturating_sub(MAX_QUEUED_ALERTS);
            if excess > 0 {
                queue.drain(..excess);
                tracing::warn!(
                    dropped = excess,
                    "alert queue full; dropped the oldest alerts"
                );
            }
        }
        self.wake.notify_one();
    }
}

/// External labels (the alert's own labels win), then the global
/// `alert_relabel_configs`; `None` when relabelling drops the alert.
fn prepare(alert: NotifyAlert, config: &SenderConfig) -> Option<SentAlert> {
    let mut labels: BTreeMap<String, String> = alert
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    for (name, value) in &config.external_labels {
        labels.entry(name.clone()).or_insert_with(|| value.clone());
    }
    if !relabel::process(&mut labels, &config.alert_relabel_configs) {
        return None;
    }
    Some(SentAlert {
        labels,
        annotations: alert.annotations.into_iter().collect(),
        starts_at_ms: alert.starts_at_ms,
        ends_at_ms: alert.ends_at_ms,
        generator_url: alert.generator_url,
    })
}

/// The Alertmanager URLs of `alerting`: static and file-discovered targets
/// (`discovered` holds one discovery per entry) relabelled with each
/// entry's `relabel_configs` (`__address__`, `__scheme__`,
/// `__alerts_path__`, and `__meta_filepath` for discovered ones).
fn alertmanager_targets(
    alerting: &AlertingConfig,
    clients: &[HttpClient],
    discovered: &[scrape::FileDiscovery],
) -> Vec<Arc<Target>> {
    let mut targets = Vec::new();
    for (index, am) in alerting.alertmanagers.iter().enumerate() {
        let mut groups: Vec<scrape::target::TargetGroup> = am
            .static_configs
            .iter()
            .map(|group| scrape::target::TargetGroup {
                group: group.clone(),
                meta_labels: Vec::new(),
            })
            .collect();
        if let Some(discovery) = discovered.get(index) {
            groups.extend(discovery.groups());
        }
        let Some(client) = clients.get(index) else {
            continue;
        };
        for discovered in &groups {
            let group = &discovered.group;
            for address in &group.targets {
                let mut labels: BTreeMap<String, String> = group.labels.iter().cloned().collect();
                labels.extend(discovered.meta_labels.iter().cloned());
                labels.insert("__address__".into(), address.clone());
                labels.insert("__scheme__".into(), am.scheme.as_str().into());
                labels.insert(
                    "__alerts_path__".into(),
                    format!("{}/api/v2/alerts", am.path_prefix.trim_end_matches('/')),
                );
                if !relabel::process(&mut labels, &am.relabel_configs) {
                    continue;
                }
                let url = format!(
                    "{}://{}{}",
                    labels
                        .get("__scheme__")
                        .map(String::as_str)
                        .unwrap_or("http"),
                    labels
                        .get("__address__")
                        .map(String::as_str)
                        .unwrap_or_default(),
                    labels
                        .get("__alerts_path__")
                        .map(String::as_str)
                        .unwrap_or("/api/v2/alerts"),
                );
                targets.push(Arc::new(Target {
                    url,
                    client: client.clone(),
                    alert_relabel_configs: am.alert_relabel_configs.clone(),
                    timeout: std::time::Duration::from_millis(am.timeout_ms.max(1) as u64),
                }));
            }
        }
    }
    targets
}

async fn send_batch(target: &Target, batch: Vec<SentAlert>) {
    let body: Vec<Value> = batch
        .into_iter()
        .filter_map(|mut alert| {
            if target.alert_relabel_configs.is_empty()
                || relabel::process(&mut alert.labels, &target.alert_relabel_configs)
            {
                Some(alert.to_json())
            } else {
                None
            }
        })
        .collect();
    if body.is_empty() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(&body) else {
        return;
    };
    let request = match target
        .client
        .request(reqwest::Method::POST, &target.url)
        .await
    {
        Ok(request) => request
            .header("Content-Type", "application/json")
            .timeout(target.timeout)
            .body(bytes),
        Err(error) => {
            tracing::warn!(url = %target.url, %error, "sending alerts failed");
            return;
        }
    };
    let result = request.send().await;
    match result {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => {
            tracing::warn!(url = %target.url, status = %response.status(), "Alertmanager refused alerts")
        }
        Err(e) => tracing::warn!(url = %target.url, error = %e, "sending alerts failed"),
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
