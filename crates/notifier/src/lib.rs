//! The alert sender (Prometheus's notifier): what the rule engine's alerts
//! leave osprey through.
//!
//! [`AlertSender`] is a [`rules::Notifier`]. Each alert gets the external
//! labels (its own labels win) and the global `alert_relabel_configs`, then
//! goes to a [`LocalAlertSink`] when one is set (the built-in alert
//! manager) and into a queue of at most [`MAX_QUEUED_ALERTS`] (the oldest
//! are dropped), from which batches of up to [`MAX_BATCH`] are posted as
//! JSON to every Alertmanager's `/api/v2/alerts` (of every entry, all at
//! once, so that one dead member of an HA pair does not delay the other). Alertmanagers come from
//! the `alerting.alertmanagers` entries: `static_configs`, and
//! `file_sd_configs` re-read at their refresh interval, both relabelled
//! with the entry's `relabel_configs` into URLs.
//!
//! This crate evaluates no rules (that is `rules`), routes, groups or
//! silences nothing (that is the alert manager, `alert`), serves no HTTP
//! and parses no configuration: [`AlertSender::configure`] takes a
//! [`PreparedAlerting`]: the typed `alerting` section of the `config`
//! crate with each Alertmanager entry's [`config::HttpClient`] already
//! built (so a bad TLS file fails a reload before anything changes).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use config::{AlertingConfig, ClientOptions, HttpClient};
use model::relabel::{self, RelabelConfig};
use rules::NotifyAlert;
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
    /// Builds a client per `alerting.alertmanagers` entry of `alerting`;
    /// a bad TLS file or proxy names the entry.
    pub fn new(
        alerting: &AlertingConfig,
        external_labels: &[(String, String)],
    ) -> Result<PreparedAlerting, String> {
        let mut clients = Vec::new();
        for (index, am) in alerting.alertmanagers.iter().enumerate() {
            let mut options = ClientOptions::new(&config::client::user_agent());
            options.timeout = Some(std::time::Duration::from_millis(am.timeout_ms.max(1) as u64));
            let client = HttpClient::new(&am.http, options)
                .map_err(|e| format!("alerting.alertmanagers[{index}]: {e}"))?;
            clients.push(client);
        }
        Ok(PreparedAlerting {
            alerting: alerting.clone(),
            external_labels: external_labels.to_vec(),
            clients,
        })
    }
}

/// The `alerting` section in effect, its clients, and one file discovery
/// per Alertmanager entry.
struct Discovery {
    alerting: AlertingConfig,
    clients: Vec<HttpClient>,
    files: Vec<scrape::FileDiscovery>,
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
    discovery: Mutex<Discovery>,
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

    /// Sends every alert to `sink` as well (replacing an earlier one;
    /// `None` stops it).
    pub fn set_local(&self, sink: Option<LocalAlertSink>) {
        if let Ok(mut local) = self.local.write() {
            *local = sink;
        }
    }

    /// Takes a prepared `alerting` section and the external labels in
    /// effect. The first call starts the sending and discovery tasks, so
    /// it must run inside a tokio runtime.
    pub fn configure(self: &Arc<Self>, prepared: PreparedAlerting) {
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
                // Every Alertmanager of every entry gets the batch, all at
                // once (as Prometheus sends): a dead or slow one must not
                // hold back its HA peers until its timeout.
                let sends: Vec<_> = targets
                    .into_iter()
                    .map(|target| {
                        let batch = batch.clone();
                        tokio::spawn(async move { send_batch(&target, batch).await })
                    })
                    .collect();
                for send in sends {
                    let _ = send.await;
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
