//! The scrape manager: one pool per job, one loop per target.
//!
//! Each pool is a task that owns its loops, its HTTP client and its file
//! discovery. It rebuilds its targets when a reload brings a new job
//! config or when a watched file changes, starts loops for new targets,
//! stops loops for targets that went away (they write staleness markers as
//! they stop) and keeps the loops whose target and scrape settings did not
//! change, so a reload loses no scrape and no data.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use model::Labels;
use model::duration::format_duration_ms;
use model::storage::Appendable;
use tokio::sync::{mpsc, oneshot};

use crate::discovery::FileDiscovery;
use crate::scrape_loop::{LoopContext, LoopHandle, LoopStatus, start_loop};
use crate::target::{Target, TargetGroup, build_targets, global_url};
use crate::{
    ActiveTarget, DroppedTarget, MetricMetadata, TargetHealth, TargetMetadata, TargetsSnapshot,
};
use config::{ClientOptions, HttpClient, ScrapeConfig};

/// How the manager is set up, apart from the config.
#[derive(Clone, Debug)]
pub struct ScrapeManagerOptions {
    /// This machine's name: replaces loopback hosts in `globalUrl` and
    /// seeds the spread of scrape offsets.
    pub hostname: String,
    /// `--enable-feature=native-histograms`: jobs that do not set
    /// `scrape_native_histograms` store native histograms.
    pub native_histograms: bool,
    /// `--enable-feature=created-timestamp-zero-ingestion`: created
    /// timestamps (protobuf `created_timestamp`, OpenMetrics `_created`)
    /// are stored as zero samples, OpenMetrics `_created` series are not
    /// stored, and jobs without `scrape_protocols` ask for the protobuf
    /// format first, as in Prometheus 3.
    pub created_timestamp_zero_ingestion: bool,
}

/// Runs one scrape pool per job. Create it inside a tokio runtime.
pub struct ScrapeManager {
    storage: Arc<dyn Appendable>,
    options: ScrapeManagerOptions,
    /// Serializes reloads and stop.
    pools: tokio::sync::Mutex<BTreeMap<String, PoolHandle>>,
    /// What the API reads, per job, without waiting on a reload.
    views: Mutex<BTreeMap<String, Arc<Mutex<PoolView>>>>,
}

struct PoolHandle {
    config: Arc<ScrapeConfig>,
    commands: mpsc::UnboundedSender<PoolCommand>,
    task: tokio::task::JoinHandle<()>,
}

enum PoolCommand {
    Reload(Arc<ScrapeConfig>, oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// A pool's targets as the API sees them.
#[derive(Default)]
struct PoolView {
    active: Vec<(Target, Arc<Mutex<LoopStatus>>)>,
    dropped: Vec<Labels>,
}

impl ScrapeManager {
    pub fn new(storage: Arc<dyn Appendable>, options: ScrapeManagerOptions) -> ScrapeManager {
        ScrapeManager {
            storage,
            options,
            pools: tokio::sync::Mutex::new(BTreeMap::new()),
            views: Mutex::new(BTreeMap::new()),
        }
    }

    /// Applies a config: the first call starts everything; later calls
    /// (reloads) stop removed jobs, leave unchanged jobs alone, and let
    /// changed jobs keep the loops whose target and settings are the same.
    /// Returns when every stopped loop has written its staleness markers.
    pub async fn apply_config(&self, jobs: &[ScrapeConfig]) {
        let mut pools = self.pools.lock().await;
        let wanted: BTreeMap<&str, &ScrapeConfig> = jobs
            .iter()
            .map(|job| (job.job_name.as_str(), job))
            .collect();
        let removed: Vec<String> = pools
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        let mut waits = Vec::new();
        for name in removed {
            if let Some(pool) = pools.remove(&name) {
                let (done, wait) = oneshot::channel();
                let _ = pool.commands.send(PoolCommand::Stop(done));
                waits.push((wait, Some(pool.task)));
            }
            self.lock_views().remove(&name);
        }
        for (name, job) in wanted {
            let job = Arc::new(job.clone());
            match pools.get_mut(name) {
                Some(pool) if *pool.config == *job => {}
                Some(pool) => {
                    pool.config = job.clone();
                    let (done, wait) = oneshot::channel();
                    let _ = pool.commands.send(PoolCommand::Reload(job, done));
                    waits.push((wait, None));
                }
                None => {
                    let view = Arc::new(Mutex::new(PoolView::default()));
                    self.lock_views().insert(name.to_string(), view.clone());
                    let (commands, receiver) = mpsc::unbounded_channel();
                    let (done, wait) = oneshot::channel();
                    let pool = Pool {
                        storage: self.storage.clone(),
                        offset_seed: offset_seed(&self.options.hostname),
                        native_histograms: self.options.native_histograms,
                        created_timestamps: self.options.created_timestamp_zero_ingestion,
                        view,
                        loops: HashMap::new(),
                    };
                    let task = tokio::spawn(run_pool(pool, job.clone(), receiver, done));
                    waits.push((wait, None));
                    pools.insert(
                        name.to_string(),
                        PoolHandle {
                            config: job,
                            commands,
                            task,
                        },
                    );
                }
            }
        }
        for (wait, task) in waits {
            let _ = wait.await;
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }

    /// Stops every loop (each writes its staleness markers) and waits.
    pub async fn stop(&self) {
        self.apply_config(&[]).await;
    }

    fn lock_views(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Mutex<PoolView>>>> {
        self.views
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Active and dropped targets, for `/api/v1/targets`. Active targets
    /// are sorted by pool, then labels.
    pub fn targets(&self) -> TargetsSnapshot {
        let views: Vec<(String, Arc<Mutex<PoolView>>)> = self
            .lock_views()
            .iter()
            .map(|(name, view)| (name.clone(), view.clone()))
            .collect();
        let mut snapshot = TargetsSnapshot {
            active: Vec::new(),
            dropped: Vec::new(),
        };
        for (pool_name, view) in views {
            let view = view.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (target, status) in &view.active {
                let status = status
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                snapshot.active.push(ActiveTarget {
                    discovered_labels: target.discovered_labels.clone(),
                    labels: target.labels.clone(),
                    scrape_pool: pool_name.clone(),
                    scrape_url: target.scrape_url.clone(),
                    global_url: global_url(&target.scrape_url, &self.options.hostname),
                    last_error: status.last_error.clone(),
                    last_scrape: status.last_scrape,
                    last_scrape_duration_seconds: status.last_scrape_duration_seconds,
                    health: status.health,
                    scrape_interval: format_duration_ms(target.scrape_interval_ms),
                    scrape_timeout: format_duration_ms(target.scrape_timeout_ms),
                });
            }
            for labels in &view.dropped {
                snapshot.dropped.push(DroppedTarget {
                    discovered_labels: labels.clone(),
                    scrape_pool: pool_name.clone(),
                });
            }
        }
        snapshot
            .active
            .sort_by(|a, b| (&a.scrape_pool, &a.labels).cmp(&(&b.scrape_pool, &b.labels)));
        snapshot
    }

    /// Metadata per target and metric, for `/api/v1/targets/metadata`.
    pub fn target_metadata(&self) -> Vec<TargetMetadata> {
        let views: Vec<(String, Arc<Mutex<PoolView>>)> = self
            .lock_views()
            .iter()
            .map(|(name, view)| (name.clone(), view.clone()))
            .collect();
        let mut all = Vec::new();
        for (pool_name, view) in views {
            let view = view.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (target, status) in &view.active {
                let status = status
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                for metadata in &status.metadata {
                    all.push(TargetMetadata {
                        target: target.labels.clone(),
                        scrape_pool: pool_name.clone(),
                        metadata: metadata.clone(),
                    });
                }
            }
        }
        all
    }

    /// Distinct metadata per metric over all targets, for
    /// `/api/v1/metadata`.
    pub fn metadata(&self) -> BTreeMap<String, Vec<MetricMetadata>> {
        let mut by_metric: BTreeMap<String, Vec<MetricMetadata>> = BTreeMap::new();
        for entry in self.target_metadata() {
            let list = by_metric.entry(entry.metadata.metric.clone()).or_default();
            if !list.contains(&entry.metadata) {
                list.push(entry.metadata);
            }
        }
        by_metric
    }
}

/// Spreads scrape phases differently on different machines.
fn offset_seed(hostname: &str) -> u64 {
    hostname
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

struct Pool {
    storage: Arc<dyn Appendable>,
    offset_seed: u64,
    native_histograms: bool,
    created_timestamps: bool,
    view: Arc<Mutex<PoolView>>,
    loops: HashMap<String, LoopHandle>,
}

/// The settings that decide how a target is scraped, without the parts
/// that decide which targets exist.
fn scrape_settings(config: &ScrapeConfig) -> ScrapeConfig {
    ScrapeConfig {
        static_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        relabel_configs: Vec::new(),
        target_limit: 0,
        ..config.clone()
    }
}

/// The job's HTTP client: its `http_config` settings, gzip as
/// `enable_compression` says.
fn build_client(config: &ScrapeConfig) -> Result<HttpClient, String> {
    let mut options = ClientOptions::new(&config::client::user_agent());
    options.gzip = config.enable_compression;
    HttpClient::new(&config.http, options)
}

async fn run_pool(
    mut pool: Pool,
    mut config: Arc<ScrapeConfig>,
    mut commands: mpsc::UnboundedReceiver<PoolCommand>,
    started: oneshot::Sender<()>,
) {
    let mut discovery = FileDiscovery::new(config.file_sd_configs.clone());
    discovery.refresh();
    let mut client = build_client(&config);
    pool.sync(&config, &client, &discovery);
    let _ = started.send(());

    loop {
        let refresh = discovery.refresh_interval();
        let tick = async {
            match refresh {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(PoolCommand::Reload(new_config, done)) => {
                    if scrape_settings(&new_config) != scrape_settings(&config) {
                        client = build_client(&new_config);
                    }
                    if new_config.file_sd_configs != config.file_sd_configs {
                        discovery = FileDiscovery::new(new_config.file_sd_configs.clone());
                    }
                    discovery.refresh();
                    config = new_config;
                    let stopping = pool.sync(&config, &client, &discovery);
                    join_all(stopping).await;
                    let _ = done.send(());
                }
                Some(PoolCommand::Stop(done)) => {
                    let stopping: Vec<LoopHandle> = pool.loops.drain().map(|(_, handle)| handle).collect();
                    for handle in &stopping {
                        handle.signal_stop();
                    }
                    join_all(stopping).await;
                    let _ = done.send(());
                    return;
                }
                None => {
                    let stopping: Vec<LoopHandle> = pool.loops.drain().map(|(_, handle)| handle).collect();
                    for handle in &stopping {
                        handle.signal_stop();
                    }
                    join_all(stopping).await;
                    return;
                }
            },
            _ = tick => {
                if discovery.refresh() {
                    let stopping = pool.sync(&config, &client, &discovery);
                    join_all(stopping).await;
                }
            }
        }
    }
}

async fn join_all(handles: Vec<LoopHandle>) {
    for handle in handles {
        handle.join().await;
    }
}

impl Pool {
    /// Brings the loops in line with the config and discovery; returns the
    /// loops told to stop, for the caller to wait on.
    fn sync(
        &mut self,
        config: &Arc<ScrapeConfig>,
        client: &Result<HttpClient, String>,
        discovery: &FileDiscovery,
    ) -> Vec<LoopHandle> {
        let mut groups: Vec<TargetGroup> = config
            .static_configs
            .iter()
            .map(|group| TargetGroup {
                group: group.clone(),
                meta_labels: Vec::new(),
            })
            .collect();
        groups.extend(discovery.groups());
        let (mut targets, dropped) = build_targets(config, &groups);
        let mut limit_error = None;
        if config.target_limit > 0 && targets.len() as u64 > config.target_limit {
            limit_error = Some(format!(
                "target_limit exceeded (number of targets: {}, limit: {})",
                targets.len(),
                config.target_limit
            ));
            targets.clear();
        }
        let settings = scrape_settings(config);
        let mut stopping = Vec::new();
        let mut next: HashMap<String, LoopHandle> = HashMap::new();
        for target in targets {
            let identity = target.identity();
            if let Some(existing) = self.loops.remove(&identity) {
                let same = scrape_settings(&existing.config) == settings
                    && existing.target.scrape_interval_ms == target.scrape_interval_ms
                    && existing.target.scrape_timeout_ms == target.scrape_timeout_ms;
                if same {
                    next.insert(identity, existing);
                    continue;
                }
                existing.signal_stop();
                stopping.push(existing);
            }
            let handle = match client {
                Ok(client) => start_loop(LoopContext {
                    storage: self.storage.clone(),
                    client: client.clone(),
                    config: config.clone(),
                    target,
                    offset_seed: self.offset_seed,
                    native_histograms: self.native_histograms,
                    created_timestamps: self.created_timestamps,
                }),
                Err(error) => {
                    tracing::error!(job = %config.job_name, %error, "cannot build the HTTP client; target not scraped");
                    continue;
                }
            };
            next.insert(identity, handle);
        }
        for (_, handle) in self.loops.drain() {
            handle.signal_stop();
            stopping.push(handle);
        }
        self.loops = next;
        if let Some(error) = &limit_error {
            tracing::warn!(job = %config.job_name, %error, "no targets scraped");
        }
        let mut view = self
            .view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        view.active = self
            .loops
            .values()
            .map(|handle| (handle.target.clone(), handle.status.clone()))
            .collect();
        view.dropped = dropped;
        // `keep_dropped_targets` bounds what the API shows (0: all).
        if config.keep_dropped_targets > 0 {
            view.dropped
                .truncate(usize::try_from(config.keep_dropped_targets).unwrap_or(usize::MAX));
        }
        stopping
    }
}

impl TargetHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Up => "up",
            TargetHealth::Down => "down",
            TargetHealth::Unknown => "unknown",
        }
    }
}
