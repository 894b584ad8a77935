//! The alert manager handle: the alert store, the dispatcher with its
//! aggregation groups, inhibition, silences, the notification log and the
//! receivers, with Alertmanager 0.25's semantics.
//!
//! Received alerts are merged into the store and routed; each leaf route
//! they reach puts them in the aggregation group for their `group_by`
//! labels. A group's task flushes `group_wait` after the group appears
//! (at once if its alert is already older than that), then every
//! `group_interval`. A flush drops alerts that are inhibited or silenced
//! (and all of them outside the route's active or inside its mute time
//! intervals), then for each integration of the receiver asks the
//! notification log whether anything changed since the last notification
//! (new firing alerts, newly resolved ones when `send_resolved`, all
//! resolved, or `repeat_interval` passed), sends with retries, and logs.
//! Resolved alerts leave the group after a successful flush; empty groups
//! are removed by maintenance every 30 seconds.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use model::Labels;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::alerts::{self, Alert, PostableAlert};
use crate::nflog::{Nflog, NflogKey};
use crate::notify::{self, Data, DataAlert};
use crate::silence::Silences;
use config::alertmanager::{Config, GroupBy, Route};
use config::{ClientOptions, HttpClient, HttpClientConfig};

/// How often empty groups are removed and old state is collected
/// (Alertmanager's dispatcher maintenance interval).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);
/// How long resolved alerts stay in the store (Alertmanager's alert GC
/// interval): an update arriving late is merged rather than re-fired.
const RESOLVED_ALERT_RETENTION_MS: i64 = 30 * 60_000;
/// Alertmanager's default `--data.retention` for silences and the log.
pub const DEFAULT_RETENTION_MS: i64 = 120 * 3_600_000;

/// How to run an alert manager.
pub struct Options {
    /// Where `silences` and `nflog` live (`<dir>/silences`, ...); `None`
    /// keeps them in memory only.
    pub state_dir: Option<PathBuf>,
    /// The URL the alert manager is reached at, shown in notifications.
    pub external_url: String,
    /// How long expired silences and log entries are kept.
    pub retention_ms: i64,
    /// Peers to replicate silences and the notification log with and to
    /// take turns with (`--cluster.*`); `None` runs alone.
    pub cluster: Option<crate::cluster::ClusterOptions>,
}

/// A handle to a running alert manager; clones share it.
#[derive(Clone)]
pub struct Alertmanager {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: tokio::runtime::Handle,
    config: RwLock<Arc<Config>>,
    templates: RwLock<crate::template::NotificationTemplates>,
    config_text: RwLock<String>,
    alerts: Mutex<HashMap<u64, Alert>>,
    groups: Mutex<HashMap<(usize, u64), Arc<Group>>>,
    silences: Arc<Silences>,
    nflog: Arc<Nflog>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// One client per distinct receiver `http_config` of the config in
    /// effect.
    clients: RwLock<Arc<Clients>>,
    external_url: String,
    metrics: Metrics,
    stopped: AtomicBool,
    stop_notify: Notify,
    started_at_ms: i64,
}

/// The settings of a route that its groups need.
#[derive(Clone, Debug)]
struct RouteOpts {
    receiver: String,
    group_wait_ms: i64,
    group_interval_ms: i64,
    repeat_interval_ms: i64,
    mute_time_intervals: Vec<String>,
    active_time_intervals: Vec<String>,
}

impl RouteOpts {
    fn of(route: &Route) -> RouteOpts {
        RouteOpts {
            receiver: route.receiver.clone(),
            group_wait_ms: route.group_wait_ms,
            group_interval_ms: route.group_interval_ms,
            repeat_interval_ms: route.repeat_interval_ms,
            mute_time_intervals: route.mute_time_intervals.clone(),
            active_time_intervals: route.active_time_intervals.clone(),
        }
    }
}

struct Group {
    route: RouteOpts,
    labels: Labels,
    key: String,
    state: Mutex<GroupState>,
    wake: Notify,
    stopped: AtomicBool,
}

struct GroupState {
    alerts: HashMap<u64, Alert>,
    has_flushed: bool,
    next_flush: Instant,
}

/// Why the alert manager could not start or take a configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// The config's templates (the config crate made their paths absolute, or
/// relative to the working directory for built-in text).
fn load_templates(config: &Config) -> Result<crate::template::NotificationTemplates, StartError> {
    crate::template::NotificationTemplates::load(&config.templates, std::path::Path::new("."))
        .map_err(StartError)
}

/// The receivers' HTTP clients, one per distinct `http_config`.
type Clients = Vec<(HttpClientConfig, HttpClient)>;

/// How long one notification request may take.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

fn notify_client_options() -> ClientOptions {
    let mut options =
        ClientOptions::new(concat!("osprey-alertmanager/", env!("CARGO_PKG_VERSION")));
    options.timeout = Some(NOTIFY_TIMEOUT);
    options
}

fn build_clients(config: &Config) -> Result<Clients, StartError> {
    let mut clients: Clients = Vec::new();
    let mut add = |http: &HttpClientConfig, receiver: &str| -> Result<(), StartError> {
        if clients.iter().any(|(known, _)| known == http) {
            return Ok(());
        }
        let client = HttpClient::new(http, notify_client_options())
            .map_err(|error| StartError(format!("receiver {receiver:?}: http_config: {error}")))?;
        clients.push((http.clone(), client));
        Ok(())
    };
    add(&HttpClientConfig::default(), "")?;
    for receiver in &config.receivers {
        for webhook in &receiver.webhook_configs {
            add(&webhook.http_config, &receiver.name)?;
        }
        for slack in &receiver.slack_configs {
            add(&slack.http_config, &receiver.name)?;
        }
        for pagerduty in &receiver.pagerduty_configs {
            add(&pagerduty.http_config, &receiver.name)?;
        }
    }
    Ok(clients)
}

/// A configuration checked and made ready to apply: templates parsed and
/// receiver clients built, so applying it cannot fail.
pub struct PreparedConfig {
    config: Config,
    text: String,
    templates: crate::template::NotificationTemplates,
    clients: Clients,
}

impl PreparedConfig {
    /// Loads the templates and builds the receivers' clients; errors name
    /// the template file or the receiver.
    pub fn new(config: Config, text: String) -> Result<PreparedConfig, StartError> {
        let templates = load_templates(&config)?;
        let clients = build_clients(&config)?;
        Ok(PreparedConfig {
            config,
            text,
            templates,
            clients,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// An error from receiving alerts: the alerts that were invalid (the
/// valid ones of the same call are kept).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct PutAlertsError(pub Vec<String>);

/// An alert as the API shows it.
#[derive(Clone, Debug)]
pub struct AlertView {
    pub alert: Alert,
    pub receivers: Vec<String>,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
}

impl AlertView {
    /// `active`, or `suppressed` when silenced or inhibited.
    pub fn state(&self) -> &'static str {
        if self.silenced_by.is_empty() && self.inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        }
    }
}

/// An aggregation group as the API shows it.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub labels: Labels,
    pub receiver: String,
    pub alerts: Vec<AlertView>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Alertmanager {
    /// Starts an alert manager on the current tokio runtime: restores
    /// silences and the notification log, and starts maintenance.
    pub fn start(
        config: Config,
        config_text: String,
        options: Options,
    ) -> Result<Alertmanager, StartError> {
        Alertmanager::start_prepared(PreparedConfig::new(config, config_text)?, options)
    }

    /// [`Alertmanager::start`] with a configuration prepared beforehand.
    pub fn start_prepared(
        prepared: PreparedConfig,
        options: Options,
    ) -> Result<Alertmanager, StartError> {
        let PreparedConfig {
            config,
            text: config_text,
            templates,
            clients,
        } = prepared;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StartError(format!("the alert manager needs a tokio runtime: {e}")))?;
        let now = now_ms();
        let (silences_file, nflog_file) = match &options.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StartError(format!("{}: {e}", dir.display())))?;
                (Some(dir.join("silences")), Some(dir.join("nflog")))
            }
            None => (None, None),
        };
        let silences = Silences::open(silences_file, options.retention_ms, now)
            .map_err(|e| StartError(e.to_string()))?;
        let nflog = Nflog::open(nflog_file, options.retention_ms, now)
            .map_err(|e| StartError(e.to_string()))?;
        let silences = Arc::new(silences);
        let nflog = Arc::new(nflog);
        let cluster = match options.cluster {
            Some(cluster_options) => {
                let _entered = runtime.enter();
                Some(
                    crate::cluster::Cluster::start(
                        cluster_options,
                        silences.clone(),
                        nflog.clone(),
                    )
                    .map_err(StartError)?,
                )
            }
            None => None,
        };
        let manager = Alertmanager {
            inner: Arc::new(Inner {
                runtime,
                config: RwLock::new(Arc::new(config)),
                templates: RwLock::new(templates),
                config_text: RwLock::new(config_text),
                alerts: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                silences,
                nflog,
                cluster,
                clients: RwLock::new(Arc::new(clients)),
                external_url: options.external_url,
                metrics: Metrics::default(),
                stopped: AtomicBool::new(false),
                stop_notify: Notify::new(),
                started_at_ms: now,
            }),
        };
        let inner = manager.inner.clone();
        manager.inner.runtime.spawn(maintenance(inner));
        Ok(manager)
    }

    /// Stops the group tasks and maintenance. Pending notifications of a
    /// flush in progress still finish.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.stop_notify.notify_waiters();
        for group in lock(&self.inner.groups).drain().map(|(_, g)| g) {
            group.stop();
        }
        if let Some(cluster) = &self.inner.cluster {
            cluster.stop();
        }
    }

    /// Leaves the cluster (peers are told, so the next in line takes over
    /// at once), then [`Alertmanager::stop`]s.
    pub async fn shutdown(&self) {
        if let Some(cluster) = &self.inner.cluster {
            cluster.leave().await;
        }
        self.stop();
    }

    /// The cluster's members and state; `None` when running alone.
    pub fn cluster_status(&self) -> Option<crate::cluster::ClusterStatus> {
        self.inner.cluster.as_ref().map(|cluster| cluster.status())
    }

    pub fn config(&self) -> Arc<Config> {
        read(&self.inner.config).clone()
    }

    /// The configuration text, as the status endpoint shows it.
    pub fn config_text(&self) -> String {
        read(&self.inner.config_text).clone()
    }

    pub fn external_url(&self) -> &str {
        &self.inner.external_url
    }

    pub fn started_at_ms(&self) -> i64 {
        self.inner.started_at_ms
    }

    pub fn silences(&self) -> &Silences {
        &self.inner.silences
    }

    /// Replaces the configuration: groups start afresh from the alerts
    /// held (the notification log keeps them from repeating themselves).
    /// On error (template files that do not load) the running
    /// configuration stays.
    pub fn apply_config(&self, config: Config, config_text: String) -> Result<(), StartError> {
        self.apply_prepared(PreparedConfig::new(config, config_text)?);
        Ok(())
    }

    /// Applies a prepared configuration; cannot fail.
    pub fn apply_prepared(&self, prepared: PreparedConfig) {
        let PreparedConfig {
            config,
            text: config_text,
            templates,
            clients,
        } = prepared;
        *self
            .inner
            .clients
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(clients);
        *self
            .inner
            .templates
            .write()
            .unwrap_or_else(|e| e.into_inner()) = templates;
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *self
            .inner
            .config_text
            .write()
            .unwrap_or_else(|e| e.into_inner()) = config_text;
        for group in lock(&self.inner.groups).drain().map(|(_, g)| g) {
            group.stop();
        }
        let alerts: Vec<Alert> = lock(&self.inner.alerts).values().cloned().collect();
        let now = now_ms();
        for alert in alerts {
            self.inner.dispatch(alert, now);
        }
        self.inner
            .metrics
            .config_hash
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Receives alerts, as `POST /api/v2/alerts` does: valid alerts are
    /// merged into the store and dispatched even when others are invalid.
    pub fn put_alerts(&self, posted: Vec<PostableAlert>) -> Result<(), PutAlertsError> {
        let now = now_ms();
        let resolve_timeout = read(&self.inner.config).global.resolve_timeout_ms;
        let mut errors = Vec::new();
        for posted_alert in posted {
            let received = match alerts::receive(posted_alert, now, resolve_timeout) {
                Ok(alert) => alert,
                Err(error) => {
                    self.inner
                        .metrics
                        .alerts_invalid
                        .fetch_add(1, Ordering::Relaxed);
                    errors.push(error);
                    continue;
                }
            };
            if received.resolved_at(now) {
                self.inner
                    .metrics
                    .alerts_received_resolved
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                self.inner
                    .metrics
                    .alerts_received_firing
                    .fetch_add(1, Ordering::Relaxed);
            }
            let stored = {
                let mut store = lock(&self.inner.alerts);
                let merged = match store.get(&received.fingerprint) {
                    Some(held) if alerts::overlaps(held, &received) => held.merge(&received, now),
                    _ => received,
                };
                store.insert(merged.fingerprint, merged.clone());
                merged
            };
            self.inner.dispatch(stored, now);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PutAlertsError(errors))
        }
    }

    /// The alerts held that are not resolved, with their receivers and
    /// what suppresses them, sorted by fingerprint.
    pub fn alerts(&self) -> Vec<AlertView> {
        let now = now_ms();
        let config = self.config();
        let held: Vec<Alert> = lock(&self.inner.alerts)
            .values()
            .filter(|alert| !alert.resolved_at(now))
            .cloned()
            .collect();
        let inhibitor = Inhibitor::new(&config, &lock(&self.inner.alerts), now);
        let mut views: Vec<AlertView> = held
            .iter()
            .map(|alert| self.inner.view(&config, &inhibitor, alert, now))
            .collect();
        views.sort_by_key(|view| view.alert.fingerprint);
        views
    }

    /// The aggregation groups and their unresolved alerts.
    pub fn groups(&self) -> Vec<GroupView> {
        let now = now_ms();
        let config = self.config();
        let inhibitor = Inhibitor::new(&config, &lock(&self.inner.alerts), now);
        let groups: Vec<Arc<Group>> = lock(&self.inner.groups).values().cloned().collect();
        let mut views = Vec::new();
        for group in groups {
            let mut alerts: Vec<Alert> = lock(&group.state)
                .alerts
                .values()
                .filter(|alert| !alert.resolved_at(now))
                .cloned()
                .collect();
            if alerts.is_empty() {
                continue;
            }
            sort_alerts(&mut alerts);
            views.push(GroupView {
                labels: group.labels.clone(),
                receiver: group.route.receiver.clone(),
                alerts: alerts
                    .iter()
                    .map(|alert| self.inner.view(&config, &inhibitor, alert, now))
                    .collect(),
            });
        }
        views.sort_by(|a, b| {
            a.labels
                .to_string()
                .cmp(&b.labels.to_string())
                .then_with(|| a.receiver.cmp(&b.receiver))
        });
        views
    }

    /// The alert manager's own metrics in the text exposition format.
    pub fn render_metrics(&self) -> String {
        let now = now_ms();
        let alerts = self.alerts();
        let suppressed = alerts.iter().filter(|a| a.state() == "suppressed").count();
        let silences = self.inner.silences.list();
        let count = |state| silences.iter().filter(|s| s.state(now) == state).count();
        let groups = lock(&self.inner.groups).len();
        let m = &self.inner.metrics;
        let mut out = String::new();
        // OpenMetrics style, so the text can join the server's /metrics:
        // a counter's family name leaves out `_total`.
        let mut gauge = |name: &str, help: &str, kind: &str, samples: &[(&str, u64)]| {
            let family = name.strip_suffix("_total").unwrap_or(name);
            out.push_str(&format!("# HELP {family} {help}\n# TYPE {family} {kind}\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        gauge(
            "alertmanager_alerts",
            "How many alerts by state.",
            "gauge",
            &[
                ("{state=\"active\"}", (alerts.len() - suppressed) as u64),
                ("{state=\"suppressed\"}", suppressed as u64),
            ],
        );
        gauge(
            "alertmanager_alerts_received_total",
            "The total number of received alerts.",
            "counter",
            &[
                (
                    "{status=\"firing\"}",
                    m.alerts_received_firing.load(Ordering::Relaxed),
                ),
                (
                    "{status=\"resolved\"}",
                    m.alerts_received_resolved.load(Ordering::Relaxed),
                ),
            ],
        );
        gauge(
            "alertmanager_alerts_invalid_total",
            "The total number of received alerts that were invalid.",
            "counter",
            &[("", m.alerts_invalid.load(Ordering::Relaxed))],
        );
        gauge(
            "alertmanager_silences",
            "How many silences by state.",
            "gauge",
            &[
                (
                    "{state=\"active\"}",
                    count(crate::silence::SilenceState::Active) as u64,
                ),
                (
                    "{state=\"expired\"}",
                    count(crate::silence::SilenceState::Expired) as u64,
                ),
                (
                    "{state=\"pending\"}",
                    count(crate::silence::SilenceState::Pending) as u64,
                ),
            ],
        );
        gauge(
            "alertmanager_dispatcher_aggregation_groups",
            "Number of active aggregation groups",
            "gauge",
            &[("", groups as u64)],
        );
        gauge(
            "alertmanager_nflog_entries",
            "Number of entries in the notification log.",
            "gauge",
            &[("", self.inner.nflog.len() as u64)],
        );
        let per_integration = |counters: &[AtomicU64; 4]| -> Vec<(String, u64)> {
            INTEGRATIONS
                .iter()
                .zip(counters.iter())
                .map(|(name, counter)| {
                    (
                        format!("{{integration=\"{name}\"}}"),
                        counter.load(Ordering::Relaxed),
                    )
                })
                .collect()
        };
        for (name, help, counters) in [
            (
                "alertmanager_notifications_total",
                "The total number of attempted notifications.",
                &m.notifications,
            ),
            (
                "alertmanager_notifications_failed_total",
                "The total number of failed notifications.",
                &m.notifications_failed,
            ),
            (
                "alertmanager_notification_requests_total",
                "The total number of attempted notification requests.",
                &m.requests,
            ),
            (
                "alertmanager_notification_requests_failed_total",
                "The total number of failed notification requests.",
                &m.requests_failed,
            ),
        ] {
            let samples = per_integration(counters);
            let borrowed: Vec<(&str, u64)> =
                samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            gauge(name, help, "counter", &borrowed);
        }
        out.push_str("# HELP alertmanager_notification_latency_seconds The latency of notifications in seconds.\n");
        out.push_str("# TYPE alertmanager_notification_latency_seconds histogram\n");
        for (index, name) in INTEGRATIONS.iter().enumerate() {
            let latency = lock(&m.latency);
            let (buckets, sum, count) = &latency[index];
            for (bound, bucket) in LATENCY_BUCKETS.iter().zip(buckets.iter()) {
                out.push_str(&format!(
                    "alertmanager_notification_latency_seconds_bucket{{integration=\"{name}\",le=\"{bound}\"}} {bucket}\n"
                ));
            }
            out.push_str(&format!(
                "alertmanager_notification_latency_seconds_bucket{{integration=\"{name}\",le=\"+Inf\"}} {count}\n"
            ));
            out.push_str(&format!(
                "alertmanager_notification_latency_seconds_sum{{integration=\"{name}\"}} {sum}\n"
            ));
            out.push_str(&format!("alertmanager_notification_latency_seconds_count{{integration=\"{name}\"}} {count}\n"));
        }
        out.push_str("# HELP alertmanager_cluster_enabled Indicates whether the clustering is enabled or not.\n# TYPE alertmanager_cluster_enabled gauge\n");
        out.push_str(&format!(
            "alertmanager_cluster_enabled {}\n",
            u8::from(self.inner.cluster.is_some())
        ));
        if let Some(cluster) = &self.inner.cluster {
            cluster.render_metrics(&mut out);
        }
        out
    }
}

impl Inner {
    /// Routes an alert into its aggregation groups.
    fn dispatch(self: &Arc<Self>, alert: Alert, now: i64) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let config = read(&self.config).clone();
        for route in crate::route::match_routes(&config.route, &alert.labels) {
            let group_labels = group_labels(route, &alert.labels);
            let group_fingerprint = alerts::fingerprint(&group_labels);
            let group = {
                let mut groups = lock(&self.groups);
                match groups.get(&(route.id, group_fingerprint)) {
                    Some(group) => group.clone(),
                    None => {
                        let group = Arc::new(Group {
                            route: RouteOpts::of(route),
                            key: format!("{}:{}", route.key, group_labels_string(&group_labels)),
                            labels: group_labels,
                            state: Mutex::new(GroupState {
                                alerts: HashMap::new(),
                                has_flushed: false,
                                next_flush: Instant::now() + millis(route.group_wait_ms),
                            }),
                            wake: Notify::new(),
                            stopped: AtomicBool::new(false),
                        });
                        groups.insert((route.id, group_fingerprint), group.clone());
                        self.runtime.spawn(run_group(self.clone(), group.clone()));
                        group
                    }
                }
            };
            let mut state = lock(&group.state);
            // An alert older than group_wait is sent at once in a group
            // that has not flushed yet.
            if !state.has_flushed
                && alert.starts_at_ms.saturating_add(group.route.group_wait_ms) < now
            {
                state.next_flush = Instant::now();
                group.wake.notify_one();
            }
            state.alerts.insert(alert.fingerprint, alert.clone());
        }
    }

    fn view(&self, config: &Config, inhibitor: &Inhibitor, alert: &Alert, now: i64) -> AlertView {
        let receivers = crate::route::match_routes(&config.route, &alert.labels)
            .iter()
            .map(|route| route.receiver.clone())
            .collect();
        AlertView {
            alert: alert.clone(),
            receivers,
            silenced_by: self.silences.mutes(&alert.labels, now),
            inhibited_by: inhibitor
                .inhibited_by(&alert.labels, alert.fingerprint)
                .map(|fp| vec![format!("{fp:016x}")])
                .unwrap_or_default(),
        }
    }

    /// One flush of a group: returns whether every notification succeeded.
    async fn flush(&self, group: &Group, deadline: Instant) -> bool {
        // Alertmanager's gossip settle stage: no notification before the
        // cluster had its chance to bring silences and the log over.
        if let Some(cluster) = &self.cluster {
            cluster.wait_ready(deadline).await;
        }
        let now = now_ms();
        let config = read(&self.config).clone();
        let mut alerts: Vec<Alert> = lock(&group.state).alerts.values().cloned().collect();
        if alerts.is_empty() {
            return true;
        }
        sort_alerts(&mut alerts);

        // The mute stages: time intervals, inhibition, silences.
        if muted_by_time(
            &config,
            &group.route.active_time_intervals,
            &group.route.mute_time_intervals,
            now,
        ) {
            return true;
        }
        let inhibitor = Inhibitor::new(&config, &lock(&self.alerts), now);
        let sent: Vec<Alert> = alerts
            .iter()
            .filter(|alert| {
                inhibitor
                    .inhibited_by(&alert.labels, alert.fingerprint)
                    .is_none()
                    && self.silences.mutes(&alert.labels, now).is_empty()
            })
            .cloned()
            .collect();
        if sent.is_empty() {
            self.remove_resolved(group, &alerts, now);
            return true;
        }

        let Some(receiver) = config.receiver(&group.route.receiver) else {
            return true;
        };
        // Alertmanager's wait stage: the peer at position n lets the n
        // before it notify first (peer timeout each), then reads the log
        // they replicated to it.
        let now = match &self.cluster {
            Some(cluster) => {
                let wait = cluster
                    .peer_timeout()
                    .saturating_mul(u32::try_from(cluster.position()).unwrap_or(u32::MAX));
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    if group.stopped.load(Ordering::SeqCst) {
                        return true;
                    }
                }
                now_ms()
            }
            None => now,
        };
        // Which alerts are firing or resolved is read after the wait, as
        // Alertmanager's dedup stage reads it.
        let firing: BTreeSet<u64> = sent
            .iter()
            .filter(|alert| !alert.resolved_at(now))
            .map(|alert| alert.fingerprint)
            .collect();
        let resolved: BTreeSet<u64> = sent
            .iter()
            .filter(|alert| alert.resolved_at(now))
            .map(|alert| alert.fingerprint)
            .collect();

        let jobs = integrations(receiver);
        let mut results = Vec::new();
        let mut handles = Vec::new();
        for (integration, index) in jobs {
            let key = NflogKey {
                receiver: receiver.name.clone(),
                integration: integration.name(),
                index,
                group_key: group.key.clone(),
            };
            let entry = self.nflog.get(&key);
            if !needs_update(
                entry.as_ref(),
                &firing,
                &resolved,
                integration.send_resolved(),
                group.route.repeat_interval_ms,
                now,
            ) {
                continue;
            }
            let to_send: Vec<DataAlert> = sent
                .iter()
                .filter(|alert| integration.send_resolved() || !alert.resolved_at(now))
                .map(|alert| DataAlert {
                    firing: !alert.resolved_at(now),
                    alert: alert.clone(),
                })
                .collect();
            let data = Data::new(
                &receiver.name,
                &group.key,
                &group.labels,
                to_send,
                &self.external_url,
            );
            handles.push(self.notify_one(
                integration,
                key,
                data,
                firing.clone(),
                resolved.clone(),
                deadline,
            ));
        }
        for handle in handles {
            results.push(handle.await);
        }
        let ok = results.iter().all(|ok| *ok);
        if ok {
            self.remove_resolved(group, &alerts, now);
        }
        ok
    }

    /// Sends one integration's notification (unless there is nothing it
    /// wants to see) and logs it.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, which holds every piece separately"
    )]
    async fn notify_one(
        &self,
        integration: Integration,
        key: NflogKey,
        data: Data,
        firing: BTreeSet<u64>,
        resolved: BTreeSet<u64>,
        deadline: Instant,
    ) -> bool {
        if !data.alerts.is_empty() {
            let index = integration.metric_index();
            self.metrics.notifications[index].fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let (result, failures) = match &integration {
                Integration::Webhook(webhook) => {
                    let request = notify::Request {
                        url: &webhook.url,
                        body: notify::webhook_payload(&data, webhook.max_alerts),
                        content_type: "application/json",
                    };
                    match self.client_for(&webhook.http_config) {
                        Ok(client) => notify::send_with_retries(&client, &request, deadline).await,
                        Err(error) => (Err(error), 1),
                    }
                }
                Integration::Slack(slack) => {
                    let templates = read(&self.templates).clone();
                    match notify::slack_payload(slack, &data, &templates) {
                        Ok(body) => {
                            let request = notify::Request {
                                url: &slack.api_url,
                                body,
                                content_type: "application/json",
                            };
                            match self.client_for(&slack.http_config) {
                                Ok(client) => {
                                    notify::send_with_retries(&client, &request, deadline).await
                                }
                                Err(error) => (Err(error), 1),
                            }
                        }
                        Err(error) => (Err(error), 1),
                    }
                }
                Integration::Pagerduty(pagerduty) => {
                    let templates = read(&self.templates).clone();
                    match notify::pagerduty_payload(pagerduty, &data, &templates) {
                        Ok(body) => {
                            let request = notify::Request {
                                url: &pagerduty.url,
                                body,
                                content_type: "application/json",
                            };
                            match self.client_for(&pagerduty.http_config) {
                                Ok(client) => {
                                    notify::send_with_retries(&client, &request, deadline).await
                                }
                                Err(error) => (Err(error), 1),
                            }
                        }
                        Err(error) => (Err(error), 1),
                    }
                }
                Integration::Email(email) => {
                    let templates = read(&self.templates).clone();
                    notify::retry_until(deadline, || crate::email::send(email, &data, &templates))
                        .await
                }
            };
            let attempts = u64::from(failures) + u64::from(result.is_ok());
            self.metrics.requests[index].fetch_add(attempts, Ordering::Relaxed);
            self.metrics.requests_failed[index].fetch_add(u64::from(failures), Ordering::Relaxed);
            self.metrics
                .observe_latency(index, started.elapsed().as_secs_f64());
            if let Err(error) = result {
                self.metrics.notifications_failed[index].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    receiver = %key.receiver,
                    integration = key.integration,
                    group = %key.group_key,
                    error = %error.message,
                    "notify failed"
                );
                return false;
            }
        }
        // Logged at the time the notification went out, as Alertmanager
        // does: the repeat check compares it with later flush times.
        if let Err(error) = self.nflog.log(key, firing, resolved, now_ms()) {
            tracing::error!(error = %error, "writing the notification log failed");
            return false;
        }
        true
    }

    /// The HTTP client for a receiver's `http_config`, built when the
    /// config was prepared (or now, for a config applied since).
    fn client_for(&self, http: &HttpClientConfig) -> Result<HttpClient, notify::SendError> {
        let clients = read(&self.clients).clone();
        if let Some((_, client)) = clients.iter().find(|(known, _)| known == http) {
            return Ok(client.clone());
        }
        HttpClient::new(http, notify_client_options()).map_err(|message| notify::SendError {
            message: format!("http_config: {message}"),
            retry: false,
        })
    }

    /// Removes resolved alerts that were not updated since the flush read them.
    fn remove_resolved(&self, group: &Group, flushed: &[Alert], now: i64) {
        let mut state = lock(&group.state);
        for alert in flushed.iter().filter(|alert| alert.resolved_at(now)) {
            if state
                .alerts
                .get(&alert.fingerprint)
                .is_some_and(|current| current.updated_at_ms == alert.updated_at_ms)
            {
                state.alerts.remove(&alert.fingerprint);
            }
        }
    }
}

/// The labels that name an alert's aggregation group under `route`.
pub(crate) fn group_labels(route: &Route, labels: &Labels) -> Labels {
    match &route.group_by {
        GroupBy::All => labels.clone(),
        GroupBy::Labels(names) => Labels::from_pairs(names.iter().filter_map(|name| {
            labels
                .get(name)
                .map(|value| (name.clone(), value.to_string()))
        })),
    }
}

/// Whether a route's time intervals keep it from notifying at `now`:
/// outside all of its active intervals (when it has some), or inside one
/// of its mute intervals.
pub(crate) fn muted_by_time(config: &Config, active: &[String], mute: &[String], now: i64) -> bool {
    let in_interval = |names: &[String]| {
        names.iter().any(|name| {
            config.time_intervals.get(name).is_some_and(|intervals| {
                config::alertmanager::timeinterval::any_contains(intervals, now)
            })
        })
    };
    (!active.is_empty() && !in_interval(active)) || in_interval(mute)
}

/// A receiver's integrations in Alertmanager's order, each with its
/// index among those of its kind (part of the notification log's key).
pub(crate) fn integrations(receiver: &config::alertmanager::Receiver) -> Vec<(Integration, usize)> {
    let mut jobs = Vec::new();
    for (index, config) in receiver.email_configs.iter().enumerate() {
        jobs.push((Integration::Email(config.clone()), index));
    }
    for (index, config) in receiver.pagerduty_configs.iter().enumerate() {
        jobs.push((Integration::Pagerduty(config.clone()), index));
    }
    for (index, config) in receiver.slack_configs.iter().enumerate() {
        jobs.push((Integration::Slack(config.clone()), index));
    }
    for (index, webhook) in receiver.webhook_configs.iter().enumerate() {
        jobs.push((Integration::Webhook(webhook.clone()), index));
    }
    jobs
}

/// The receiver integrations osprey sends to.
#[derive(Clone)]
pub(crate) enum Integration {
    Webhook(config::alertmanager::WebhookConfig),
    Slack(config::alertmanager::SlackConfig),
    Email(config::alertmanager::EmailConfig),
    Pagerduty(config::alertmanager::PagerdutyConfig),
}

const INTEGRATIONS: [&str; 4] = ["webhook", "email", "slack", "pagerduty"];

impl Integration {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Integration::Webhook(_) => "webhook",
            Integration::Slack(_) => "slack",
            Integration::Email(_) => "email",
            Integration::Pagerduty(_) => "pagerduty",
        }
    }

    fn metric_index(&self) -> usize {
        INTEGRATIONS
            .iter()
            .position(|name| *name == self.name())
            .unwrap_or(0)
    }

    pub(crate) fn send_resolved(&self) -> bool {
        match self {
            Integration::Webhook(config) => config.send_resolved,
            Integration::Slack(config) => config.send_resolved,
            Integration::Email(config) => config.send_resolved,
            Integration::Pagerduty(config) => config.send_resolved,
        }
    }
}

/// Alertmanager's `DedupStage.needsUpdate`.
pub(crate) fn needs_update(
    entry: Option<&crate::nflog::NflogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat_interval_ms: i64,
    now: i64,
) -> bool {
    let Some(entry) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    entry.timestamp_ms < now - repeat_interval_ms
}

/// The group's task: flush when due, until stopped.
async fn run_group(inner: Arc<Inner>, group: Arc<Group>) {
    loop {
        let next = lock(&group.state).next_flush;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = group.wake.notified() => {}
        }
        if group.stopped.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let interval = {
            let mut state = lock(&group.state);
            if now < state.next_flush {
                continue;
            }
            state.next_flush = now + millis(group.route.group_interval_ms);
            state.has_flushed = true;
            millis(group.route.group_interval_ms)
        };
        inner.flush(&group, now + interval).await;
    }
}

impl Group {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Every 30 seconds: removes empty groups, forgets long-resolved alerts,
/// and collects silences and log entries past retention.
async fn maintenance(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
            _ = inner.stop_notify.notified() => return,
        }
        if inner.stopped.load(Ordering::SeqCst) {
            return;
        }
        let now = now_ms();
        lock(&inner.groups).retain(|_, group| {
            let empty = lock(&group.state).alerts.is_empty();
            if empty {
                group.stop();
            }
            !empty
        });
        lock(&inner.alerts)
            .retain(|_, alert| alert.ends_at_ms.saturating_add(RESOLVED_ALERT_RETENTION_MS) > now);
        if let Err(error) = inner.silences.gc(now) {
            tracing::error!(error = %error, "collecting silences failed");
        }
        if let Err(error) = inner.nflog.gc(now) {
            tracing::error!(error = %error, "collecting the notification log failed");
        }
    }
}

/// Which firing alerts inhibit others, for one moment.
pub(crate) struct Inhibitor<'c> {
    /// Per rule: the labels and fingerprints of the firing alerts that
    /// match its source side (taken once, so the store's lock is short
    /// and nothing but label handles is copied).
    rules: Vec<(&'c config::alertmanager::InhibitRule, Vec<(Labels, u64)>)>,
}

impl<'c> Inhibitor<'c> {
    pub(crate) fn new(config: &'c Config, store: &HashMap<u64, Alert>, now: i64) -> Inhibitor<'c> {
        let rules = config
            .inhibit_rules
            .iter()
            .map(|rule| {
                let sources = store
                    .values()
                    .filter(|alert| {
                        !alert.resolved_at(now)
                            && model::matcher::matches_all(&alert.labels, &rule.source_matchers)
                    })
                    .map(|alert| (alert.labels.clone(), alert.fingerprint))
                    .collect();
                (rule, sources)
            })
            .collect();
        Inhibitor { rules }
    }

    /// The fingerprint of an alert that inhibits this label set, if any.
    pub(crate) fn inhibited_by(&self, labels: &Labels, fingerprint: u64) -> Option<u64> {
        for (rule, sources) in &self.rules {
            if !model::matcher::matches_all(labels, &rule.target_matchers) {
                continue;
            }
            let also_source = model::matcher::matches_all(labels, &rule.source_matchers);
            for (source_labels, source_fingerprint) in sources {
                if also_source && model::matcher::matches_all(source_labels, &rule.target_matchers)
                {
                    continue;
                }
                if *source_fingerprint == fingerprint {
                    continue;
                }
                if rule
                    .equal
                    .iter()
                    .all(|name| source_labels.get(name) == labels.get(name))
                {
                    return Some(*source_fingerprint);
                }
            }
        }
        None
    }
}

/// Alertmanager's notification order: by `job`, then `instance`, then
/// the whole label set.
fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        for key in ["job", "instance"] {
            match (a.labels.get(key), b.labels.get(key)) {
                (Some(x), Some(y)) if x != y => return x.cmp(y),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                _ => {}
            }
        }
        compare_label_sets(&a.labels, &b.labels)
    });
}

/// Prometheus's `LabelSet.Before`: pairwise by name then value, shorter
/// first on a common prefix.
fn compare_label_sets(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let order = x.name.cmp(y.name).then_with(|| x.value.cmp(y.value));
        if order != std::cmp::Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Prometheus's `LabelSet.String`: `{a="1", b="2"}`.
pub(crate) fn group_labels_string(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|label| format!("{}={:?}", label.name, label.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Latency histogram bounds in seconds (Alertmanager's).
const LATENCY_BUCKETS: [f64; 5] = [1.0, 5.0, 10.0, 15.0, 20.0];

#[derive(Default)]
struct Metrics {
    alerts_received_firing: AtomicU64,
    alerts_received_resolved: AtomicU64,
    alerts_invalid: AtomicU64,
    notifications: [AtomicU64; 4],
    notifications_failed: [AtomicU64; 4],
    requests: [AtomicU64; 4],
    requests_failed: [AtomicU64; 4],
    /// Per integration: bucket counts, sum, count.
    latency: Mutex<[([u64; 5], f64, u64); 4]>,
    config_hash: AtomicU64,
}

impl Metrics {
    fn observe_latency(&self, index: usize, seconds: f64) {
        let mut latency = lock(&self.latency);
        if let Some((buckets, sum, count)) = latency.get_mut(index) {
            for (bound, bucket) in LATENCY_BUCKETS.iter().zip(buckets.iter_mut()) {
                if seconds <= *bound {
                    *bucket += 1;
                }
            }
            *sum += seconds;
            *count += 1;
        }
    }
}
