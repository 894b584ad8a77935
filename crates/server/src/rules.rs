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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use rules::{AlertState, EvalEnv, GroupOptions, NotifyAlert, RuleKind, RuleManager};
use scrape::{AlertingConfig, RelabelConfig};
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

/// The rule files of `patterns` (relative to the configuration file's
/// directory, globs allowed), sorted, without duplicates.
pub fn resolve_rule_files(config_path: &Path, patterns: &[String]) -> Vec<PathBuf> {
    let base = config_path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        scrape::expand_glob(&full.display().to_string(), &mut files);
    }
    files.sort();
    files.dedup();
    files
}

pub(crate) struct RulesState {
    pub manager: RuleManager,
    pub sender: Arc<AlertSender>,
}

impl AppState {
    /// Starts or reloads the rules of `config` (read from `config_path`).
    /// On a bad rule file nothing changes and the error names it.
    pub(crate) fn apply_rules(
        &self,
        config: &scrape::Config,
        source: &crate::scraping::ConfigSource,
    ) -> Result<(), String> {
        let mut embedded = Vec::new();
        for (name, text) in source.embedded_rules() {
            let groups = rules::parse_rule_file(name, text).map_err(|errors| {
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            embedded.extend(groups);
        }
        let files = match source.path() {
            Some(path) => resolve_rule_files(path, &config.rule_files),
            None => {
                let mut files = Vec::new();
                for pattern in &config.rule_files {
                    scrape::expand_glob(pattern, &mut files);
                }
                files
            }
        };
        let rules = self.inner.rules.get_or_init(|| {
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
        });
        if let Some(sink) = self
            .inner
            .pending_local_sink
            .lock()
            .ok()
            .and_then(|mut p| p.take())
        {
            rules.sender.set_local(sink);
        }
        rules.sender.configure(config);
        rules.manager.load(&files, embedded).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub(crate) fn rules(&self) -> Option<&RulesState> {
        self.inner.rules.get()
    }

    /// Sends alerts to a built-in alert manager as well as to the
    /// configured Alertmanagers.
    pub fn set_local_alert_sink(&self, sink: LocalAlertSink) {
        if let Some(rules) = self.rules() {
            rules.sender.set_local(sink);
        } else if let Ok(mut pending) = self.inner.pending_local_sink.lock() {
            *pending = Some(sink);
        }
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
    client: reqwest::Client,
    basic_auth: Option<scrape::BasicAuth>,
    authorization: Option<scrape::Authorization>,
    alert_relabel_configs: Vec<RelabelConfig>,
    timeout: std::time::Duration,
}

struct SenderConfig {
    external_labels: Vec<(String, String)>,
    alert_relabel_configs: Vec<RelabelConfig>,
    targets: Vec<Arc<Target>>,
}

/// Queues alerts and posts them to Alertmanagers.
pub struct AlertSender {
    config: RwLock<SenderConfig>,
    /// The `alerting` section in effect and, per Alertmanager entry, the
    /// discovery of its `file_sd_configs`; targets are rebuilt from both
    /// when a discovered file changes.
    discovery: Mutex<(AlertingConfig, Vec<scrape::FileDiscovery>)>,
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
            discovery: Mutex::new((AlertingConfig::default(), Vec::new())),
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            local: RwLock::new(None),
            started: std::sync::Once::new(),
        }
    }

    fn set_local(&self, sink: LocalAlertSink) {
        if let Ok(mut local) = self.local.write() {
            *local = Some(sink);
        }
    }

    /// Takes the `alerting` section and external labels of `config`.
    fn configure(self: &Arc<Self>, config: &scrape::Config) {
        let mut discoveries: Vec<scrape::FileDiscovery> = config
            .alerting
            .alertmanagers
            .iter()
            .map(|am| scrape::FileDiscovery::new(am.file_sd_configs.clone()))
            .collect();
        for discovery in &mut discoveries {
            discovery.refresh();
        }
        let targets = alertmanager_targets(&config.alerting, &discoveries);
        if let Ok(mut current) = self.config.write() {
            *current = SenderConfig {
                external_labels: config.global.external_labels.clone(),
                alert_relabel_configs: config.alerting.alert_relabel_configs.clone(),
                targets,
            };
        }
        if let Ok(mut discovery) = self.discovery.lock() {
            *discovery = (config.alerting.clone(), discoveries);
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
                    .1
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
                let (alerting, discoveries) = &mut *discovery;
                let mut changed = false;
                for discovery in discoveries.iter_mut() {
                    changed |= discovery.refresh();
                }
                if !changed {
                    return;
                }
                let targets = alertmanager_targets(alerting, discoveries);
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
    if !scrape::relabel::process(&mut labels, &config.alert_relabel_configs) {
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
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(am.timeout_ms.max(1) as u64));
        if !am.follow_redirects {
            builder = builder.redirect(reqwest::redirect::Policy::none());
        }
        if am.tls_config.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "building the Alertmanager client");
                continue;
            }
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
                if !scrape::relabel::process(&mut labels, &am.relabel_configs) {
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
                    basic_auth: am.basic_auth.clone(),
                    authorization: am.authorization.clone(),
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
                || scrape::relabel::process(&mut alert.labels, &target.alert_relabel_configs)
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
    let mut request = target
        .client
        .post(&target.url)
        .header("Content-Type", "application/json")
        .timeout(target.timeout)
        .body(bytes);
    if let Some(auth) = &target.basic_auth {
        let password = match (&auth.password, &auth.password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(file)) => std::fs::read_to_string(file)
                .ok()
                .map(|s| s.trim().to_string()),
            (None, None) => None,
        };
        request = request.basic_auth(&auth.username, password);
    }
    if let Some(auth) = &target.authorization {
        let credentials = match (&auth.credentials, &auth.credentials_file) {
            (Some(credentials), _) => credentials.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            (None, None) => String::new(),
        };
        request = request.header("Authorization", format!("{} {credentials}", auth.kind));
    }
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
