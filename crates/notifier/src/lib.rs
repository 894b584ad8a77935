//! The alert sender (Prometheus's notifier): what the rule engine's alerts
//! leave osprey through.
//!
//! [`AlertSender`] is a [`rules::Notifier`]. Each alert gets the external
//! labels (its own labels win) and the global `alert_relabel_configs`, then
//! goes to a [`LocalAlertSink`] when one is set (the built-in alert
//! manager) and into a queue of at most [`MAX_QUEUED_ALERTS`] (the oldest
//! are dropped), from which batches of up to [`MAX_BATCH`] are posted as
//! JSON to every Alertmanager's `/api/v2/alerts`. Alertmanagers come from
//! the `alerting.alertmanagers` entries: `static_configs`, and
//! `file_sd_configs` re-read at their refresh interval, both relabelled
//! with the entry's `relabel_configs` into URLs.
//!
//! This crate evaluates no rules (that is `rules`), routes, groups or
//! silences nothing (that is the alert manager, `alert`), serves no HTTP
//! and parses no configuration: [`AlertSender::configure`] takes the typed
//! `alerting` section ([`scrape::AlertingConfig`]) and the external labels.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use rules::NotifyAlert;
use scrape::{AlertingConfig, RelabelConfig};
use serde_json::{Value, json};

/// Alerts waiting to be sent beyond this are dropped, oldest first
/// (Prometheus's `--alertmanager.notification-queue-capacity`).
pub const MAX_QUEUED_ALERTS: usize = 10_000;
/// Alerts per request to an Alertmanager, as Prometheus sends them.
pub const MAX_BATCH: usize = 256;

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

impl Default for AlertSender {
    fn default() -> AlertSender {
        AlertSender::new()
    }
}

impl AlertSender {
    /// A sender with no Alertmanagers; [`AlertSender::configure`] adds
    /// them and starts its tasks.
    pub fn new() -> AlertSender {
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

    /// Sends every alert to `sink` as well (replacing an earlier one).
    pub fn set_local(&self, sink: LocalAlertSink) {
        if let Ok(mut local) = self.local.write() {
            *local = Some(sink);
        }
    }

    /// Takes the `alerting` section and the external labels in effect. The
    /// first call starts the sending and discovery tasks, so it must run
    /// inside a tokio runtime.
    pub fn configure(
        self: &Arc<Self>,
        alerting: &AlertingConfig,
        external_labels: &[(String, String)],
    ) {
        let mut discoveries: Vec<scrape::FileDiscovery> = alerting
            .alertmanagers
            .iter()
            .map(|am| scrape::FileDiscovery::new(am.file_sd_configs.clone()))
            .collect();
        for discovery in &mut discoveries {
            discovery.refresh();
        }
        let targets = alertmanager_targets(alerting, &discoveries);
        if let Ok(mut current) = self.config.write() {
            *current = SenderConfig {
                external_labels: external_labels.to_vec(),
                alert_relabel_configs: alerting.alert_relabel_configs.clone(),
                targets,
            };
        }
        if let Ok(mut discovery) = self.discovery.lock() {
            *discovery = (alerting.clone(), discoveries);
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

/// Milliseconds since the epoch as Go prints a `time.Time` in JSON
/// (RFC 3339 in UTC, the fraction without trailing zeros), the form
/// Alertmanager's API v2 takes.
fn rfc3339_ms(ms: i64) -> String {
    let nanos = (ms.rem_euclid(1000) * 1_000_000) as u32;
    template::time::Time::new(ms.div_euclid(1000), nanos).format(RFC3339_NANO)
}

/// Go's `time.RFC3339Nano` layout.
const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

#[cfg(test)]
mod tests;
