//! `osprey agent`: scrape and forward, no local TSDB and no query API.
//!
//! An [`Agent`] owns a scrape manager writing into a [`WalStorage`] and a
//! [`RemoteWriter`] with one queue per `remote_write` entry (both from the
//! `remote` crate). Its router serves `/metrics`, `/-/healthy`, `/-/ready`
//! and `/-/reload`; [`Agent::reload`] re-reads the file (SIGHUP). This is
//! wiring only: the sender and its WAL are `remote`'s, scraping is
//! `scrape`'s, and the configuration is read by `server::scraping`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use scrape::{ScrapeManager, ScrapeManagerOptions};
use server::lifecycle::ConfigSource;

use remote::{RemoteMetrics, RemoteWriter, WalStorage};

/// How long a clean shutdown waits for the queues to send what the WAL
/// holds; the rest is sent after the next start.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// A running agent. Cloning shares it.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<AgentInner>,
}

struct AgentInner {
    source: ConfigSource,
    manager: Arc<ScrapeManager>,
    writer: tokio::sync::Mutex<RemoteWriter>,
    registry: Registry,
    /// Held (locked) for the agent's lifetime: one agent per data dir.
    _lock: std::fs::File,
}

/// The scrape targets' metadata as remote write sends it.
pub fn scrape_metadata_source(manager: &Arc<ScrapeManager>) -> remote::MetadataSource {
    let manager = Arc::downgrade(manager);
    Arc::new(move || {
        let Some(manager) = manager.upgrade() else {
            return Vec::new();
        };
        manager
            .metadata()
            .values()
            .flatten()
            .map(|m| remote::metadata_entry(&m.metric, m.metric_type, &m.help, &m.unit))
            .collect()
    })
}

/// The agent's `--enable-feature` settings.
pub struct AgentFeatures {
    /// `created-timestamp-zero-ingestion`: scraped created timestamps are
    /// logged as zero samples (and sent as samples), as Prometheus's agent
    /// does; see `WalStorage::enable_created_timestamps`.
    pub created_timestamp_zero_ingestion: bool,
}

impl Agent {
    /// Opens the WAL under `data_dir`, loads the configuration and starts
    /// the queues and the scrape loops. Call inside the runtime.
    pub async fn start(
        source: ConfigSource,
        data_dir: &Path,
        features: AgentFeatures,
    ) -> Result<Agent, String> {
        let config = source.load()?;
        let lock = lock_data_dir(data_dir)?;
        let metrics = RemoteMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let wal_dir = data_dir.join("wal");
        let storage = {
            let metrics = metrics.clone();
            tokio::task::spawn_blocking(move || WalStorage::open(&wal_dir, true, metrics))
                .await
                .map_err(|e| format!("opening the agent WAL: {e}"))??
        };
        if features.created_timestamp_zero_ingestion {
            storage.enable_created_timestamps();
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        let appendable: Arc<dyn model::storage::Appendable> = Arc::new(storage.clone());
        let manager = Arc::new(ScrapeManager::new(
            appendable,
            ScrapeManagerOptions {
                hostname,
                native_histograms: false,
                created_timestamp_zero_ingestion: features.created_timestamp_zero_ingestion,
            },
        ));
        let mut writer = RemoteWriter::new(storage, &data_dir.join("queues"), true, metrics)?;
        writer.set_metadata_source(scrape_metadata_source(&manager));
        writer
            .apply(&config.remote_write, &config.global.external_labels)
            .await?;
        if config.remote_write.is_empty() {
            tracing::warn!("no remote_write configured: scraped samples are not forwarded");
        }
        manager.apply_config(&config.scrape_configs).await;
        Ok(Agent {
            inner: Arc::new(AgentInner {
                source,
                manager,
                writer: tokio::sync::Mutex::new(writer),
                registry,
                _lock: lock,
            }),
        })
    }

    /// Re-reads the configuration; on error the running one stays.
    pub async fn reload(&self) -> Result<(), String> {
        let config = self.inner.source.load()?;
        let mut writer = self.inner.writer.lock().await;
        writer
            .apply(&config.remote_write, &config.global.external_labels)
            .await?;
        self.inner
            .manager
            .apply_config(&config.scrape_configs)
            .await;
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Stops scraping (writing staleness markers), then lets the queues
    /// send what they can within [`FLUSH_DEADLINE`].
    pub async fn stop(&self) {
        self.inner.manager.stop().await;
        self.inner.writer.lock().await.stop(FLUSH_DEADLINE).await;
    }

    /// The agent's HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/-/healthy", get(healthy).head(healthy))
            .route("/-/ready", get(ready).head(ready))
            .route("/-/reload", post(reload).put(reload))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

/// Creates `data_dir` and takes an exclusive lock on `data_dir/lock`, so
/// that a second agent on the same directory fails to start instead of
/// interleaving WAL writes.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
    let path = data_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    file.try_lock().map_err(|e| {
        format!(
            "{} is in use by another osprey agent ({e})",
            data_dir.display()
        )
    })?;
    Ok(file)
}

/// Serves `router` on `listener` under the web configuration until
/// `shutdown` resolves; the audit log goes into `data_dir`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    web: server::listen::WebConfigHandle,
    data_dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::listen::serve_protected(listener, router, web, Some(data_dir), shutdown).await
}

async fn healthy() -> &'static str {
    "osprey agent is Healthy.\n"
}

async fn ready() -> &'static str {
    "osprey agent is Ready.\n"
}

async fn reload(State(agent): State<Agent>) -> Response {
    match agent.reload().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(agent): State<Agent>) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &agent.inner.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                server::metrics::OPENMETRICS_CONTENT_TYPE,
            )],
            out,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}
