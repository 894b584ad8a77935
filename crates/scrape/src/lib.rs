//! osprey's scraper: everything between a `prometheus.yml` and the storage
//! appender.
//!
//! - [`ScrapeManager`] takes the typed `scrape_configs` of the `config`
//!   crate (relabelling is `model::relabel`) and runs one pool per job and
//!   one loop per target: HTTP fetch through the job's
//!   `config::HttpClient` (gzip; Prometheus's `scrape_protocols`
//!   negotiation), parse with `model::exposition` or [`protobuf`] (the
//!   protobuf format, with native histograms), target labels, metric
//!   relabelling, limits, staleness markers and the synthetic `up` and
//!   `scrape_*` series, written through `model::storage::Appendable`, one
//!   commit per scrape. It reloads without restarting unchanged loops and
//!   watches `file_sd_configs` files.
//! - [`TargetsSnapshot`] and [`TargetMetadata`] are what the HTTP API shows
//!   for `/api/v1/targets`, `/api/v1/targets/metadata` and
//!   `/api/v1/metadata`; this crate does not know JSON or serve HTTP.
//!
//! The crate depends on `model` and `config` only (no tsdb, no server):
//! storage is a trait object, configuration plain structs.

mod discovery;
mod manager;
pub mod protobuf;
mod scrape_loop;
pub mod target;

use std::time::SystemTime;

use model::Labels;
pub use model::exposition::MetricType;

pub use discovery::{FILEPATH_LABEL, FileDiscovery};
pub use manager::{ScrapeManager, ScrapeManagerOptions};
pub use model::relabel;
pub use model::relabel::{RelabelAction, RelabelConfig, RelabelRegex};
pub use scrape_loop::ACCEPT_HEADER;

/// Whether the last scrape of a target worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetHealth {
    Up,
    Down,
    /// Not scraped yet.
    Unknown,
}

/// The targets of all pools, as `/api/v1/targets` shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetsSnapshot {
    pub active: Vec<ActiveTarget>,
    pub dropped: Vec<DroppedTarget>,
}

/// A target being scraped.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveTarget {
    /// Labels before relabelling (meta labels and job defaults included).
    pub discovered_labels: Labels,
    /// Labels after relabelling: what every sample of the target carries.
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    /// The scrape URL with a loopback host replaced by the host name.
    pub global_url: String,
    /// Empty when the last scrape worked.
    pub last_error: String,
    /// When the last scrape started; `None` before the first.
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration_seconds: f64,
    pub health: TargetHealth,
    /// Prometheus duration strings, e.g. `15s`.
    pub scrape_interval: String,
    pub scrape_timeout: String,
}

/// A discovered target that relabelling dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
    pub scrape_pool: String,
}

/// HELP, TYPE and UNIT of one metric family as a target exposed them.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricMetadata {
    pub metric: String,
    pub metric_type: MetricType,
    /// Empty when the target gave none.
    pub help: String,
    pub unit: String,
}

/// One metric's metadata from one target.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetMetadata {
    /// The target's labels.
    pub target: Labels,
    pub scrape_pool: String,
    pub metadata: MetricMetadata,
}
