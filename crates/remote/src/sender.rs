//! The remote-write sender: what `osprey agent` and `osprey server` forward
//! samples with.
//!
//! - [`WalStorage`] is the [`Appendable`] the agent's scrape manager writes
//!   into (the server's commits reach it through
//!   [`Forwarder`](crate::Forwarder)). A commit appends series and samples
//!   records to a WAL in the data directory (the TSDB's format,
//!   `tsdb::wal`) and returns once they are fsynced; it keeps every segment
//!   self-contained (each series is described in every segment that has
//!   its samples).
//! - [`RemoteWriter`] runs one [`Queue`] task per `remote_write` entry.
//!   Each queue tails the WAL from its saved position, applies external
//!   labels and `write_relabel_configs`, and sends rounds of samples:
//!   a round is split by series hash over N concurrent shards, each
//!   sending snappy-compressed batches of at most `max_samples_per_send`
//!   samples and native histograms (with `send_native_histograms`), in
//!   remote write 1.0 or, with `protobuf_message:
//!   io.prometheus.write.v2.Request`, 2.0 (falling back to 1.0 for good
//!   when the receiver answers 415 or a 2xx without 2.0's written-counts
//!   headers), retrying 5xx, 429 and network errors with exponential
//!   backoff and dropping other 4xx. When a round is done the
//!   position is saved and segments every queue has passed are deleted.
//!
//! The byte formats (WAL rule, position file) are in `docs/format/agent.md`.
//! Delivery is at least once; a series' samples are sent in WAL order.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::prometheus::ProtobufMessage;
use config::{ClientOptions, HttpClient, RemoteWriteConfig};
use model::Labels;
use model::histogram::FloatHistogram;
use model::relabel;
use model::storage::{Appendable, Appender, StorageError, StorageErrorKind, validate_labels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tsdb::wal::{self, Durability, Record, RefHistogram, RefSample, RefSeries, Wal, WalOptions};

use crate::codec::{
    Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest, encode_remote_write, v2,
};

/// The segment size at which the agent starts a new WAL segment. Small
/// enough that a sent segment is deleted soon (disk use stays near what
/// is unsent), large enough that cuts (two fsyncs) are rare: at 100k
/// samples a minute, about 12 bytes a sample, one cut every 7 minutes.
pub const AGENT_SEGMENT_BYTES: u64 = 8 << 20;

/// How much of a segment a queue reads at once; bounds its read buffer.
const READ_CHUNK_BYTES: u64 = 4 << 20;

/// How often a queue looks at the WAL when no commit woke it (a safety
/// net; commits wake it at once).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The `User-Agent` the sender uses.
const USER_AGENT: &str = concat!("osprey/", env!("CARGO_PKG_VERSION"));

/// Self metrics of the sender, named like Prometheus's
/// `prometheus_remote_storage_*`, labelled by `remote_name` and `url`.
#[derive(Clone, Default)]
pub struct RemoteMetrics {
    pub(crate) samples_in: Counter,
    samples_sent: Family<QueueLabels, Counter>,
    samples_failed: Family<QueueLabels, Counter>,
    samples_retried: Family<QueueLabels, Counter>,
    samples_dropped: Family<QueueLabels, Counter>,
    bytes_sent: Family<QueueLabels, Counter>,
    samples_pending: Family<QueueLabels, Gauge>,
    shards: Family<QueueLabels, Gauge>,
    shards_max: Family<QueueLabels, Gauge>,
    shards_min: Family<QueueLabels, Gauge>,
    position_segment: Family<QueueLabels, Gauge>,
    metadata_sent: Family<QueueLabels, Counter>,
    metadata_failed: Family<QueueLabels, Counter>,
    metadata_retried: Family<QueueLabels, Counter>,
    metadata_bytes: Family<QueueLabels, Counter>,
}

type QueueLabels = Vec<(&'static str, String)>;

impl RemoteMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "prometheus_remote_storage_samples_in",
            "Samples logged to the remote-write WAL",
            self.samples_in.clone(),
        );
        let families: [(&str, &str, &Family<QueueLabels, Counter>); 5] = [
            (
                "prometheus_remote_storage_samples",
                "Samples sent to the remote storage and acknowledged",
                &self.samples_sent,
            ),
            (
                "prometheus_remote_storage_samples_failed",
                "Samples the remote storage refused for good (4xx other than a retried 429)",
                &self.samples_failed,
            ),
            (
                "prometheus_remote_storage_samples_retried",
                "Samples whose send failed and was retried (5xx, 429, network)",
                &self.samples_retried,
            ),
            (
                "prometheus_remote_storage_samples_dropped",
                "Samples not sent: dropped by write_relabel_configs or without a series record",
                &self.samples_dropped,
            ),
            (
                "prometheus_remote_storage_bytes",
                "Compressed request bytes acknowledged by the remote storage",
                &self.bytes_sent,
            ),
        ];
        for (name, help, family) in families {
            registry.register(name, help, family.clone());
        }
        let metadata: [(&str, &str, &Family<QueueLabels, Counter>); 4] = [
            (
                "prometheus_remote_storage_metadata",
                "Metadata entries sent to the remote storage and acknowledged",
                &self.metadata_sent,
            ),
            (
                "prometheus_remote_storage_metadata_failed",
                "Metadata entries the remote storage refused for good",
                &self.metadata_failed,
            ),
            (
                "prometheus_remote_storage_metadata_retried",
                "Metadata entries whose send failed and was retried",
                &self.metadata_retried,
            ),
            (
                "prometheus_remote_storage_metadata_bytes",
                "Compressed metadata request bytes acknowledged by the remote storage",
                &self.metadata_bytes,
            ),
        ];
        for (name, help, family) in metadata {
            registry.register(name, help, family.clone());
        }
        let gauges: [(&str, &str, &Family<QueueLabels, Gauge>); 5] = [
            (
                "prometheus_remote_storage_samples_pending",
                "Samples read from the WAL and not yet acknowledged",
                &self.samples_pending,
            ),
            (
                "prometheus_remote_storage_shards",
                "Shards the last round was sent with",
                &self.shards,
            ),
            (
                "prometheus_remote_storage_shards_max",
                "The most shards a round may use",
                &self.shards_max,
            ),
            (
                "prometheus_remote_storage_shards_min",
                "The fewest shards a round uses",
                &self.shards_min,
            ),
            (
                "osprey_remote_storage_position_segment",
                "WAL segment the queue has sent up to",
                &self.position_segment,
            ),
        ];
        for (name, help, family) in gauges {
            registry.register(name, help, family.clone());
        }
    }
}

// ---------------------------------------------------------------------------
// Writing: the WAL-backed Appendable.

/// The latest modification time (milliseconds) of `dir` and the files in
/// it; `i64::MIN` when it does not exist or holds nothing. A segment's
/// time is its last append; the directory's, its last segment created or
/// deleted (after the samples in it were sent).
fn last_write_ms(dir: &Path) -> i64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return i64::MIN;
    };
    let mut times: Vec<std::time::SystemTime> = entries
        .flatten()
        .filter_map(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .collect();
    if times.is_empty() {
        return i64::MIN;
    }
    times.extend(fs::metadata(dir).and_then(|m| m.modified()).ok());
    times
        .into_iter()
        .filter_map(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .max()
        .unwrap_or(i64::MIN)
}

/// An [`Appendable`] that logs samples to the remote-write WAL. Cloning
/// shares it.
#[derive(Clone)]
pub struct WalStorage {
    inner: Arc<WalInner>,
}

struct WalInner {
    wal: Wal,
    state: Mutex<WriterState>,
    /// What `append_created_zero` checks against; `None` unless
    /// [`WalStorage::enable_created_timestamps`] was called.
    created: Mutex<Option<CreatedState>>,
    /// When the WAL directory was last written before this process
    /// opened it (milliseconds; `i64::MIN` when it did not exist or was
    /// empty): no sample logged before has a later timestamp, give or
    /// take explicit future timestamps.
    previous_write_ms: i64,
    /// Bumped after every commit; queues wait on it.
    committed: watch::Sender<u64>,
    metrics: RemoteMetrics,
}

/// The agent's view of each series' newest sample, kept for created
/// timestamps (`created-timestamp-zero-ingestion`), so that a zero
/// sample is only logged when it is after everything logged for its
/// series, as Prometheus's agent checks (`AppendCTZeroSample` against the
/// series' `lastTs`).
struct CreatedState {
    /// Series' newest logged timestamps (updated by every commit).
    newest: HashMap<Labels, i64>,
    /// A series not in `newest` may have samples logged up to this time
    /// (before the WAL was opened, or before its entry was pruned): a
    /// created timestamp not after it is skipped.
    floor: i64,
}

/// How long a series' newest timestamp is kept after it was last
/// written: entries older than this behind the newest sample logged are
/// pruned at a segment cut, raising the floor.
const CREATED_KEEP_MS: i64 = 2 * 3_600_000;

struct WriterState {
    /// Ids of the series described in the current segment.
    series: HashMap<Labels, u64>,
    next_id: u64,
    /// Bytes logged into the current segment.
    segment_bytes: u64,
}

impl WalStorage {
    /// Opens (creating) the WAL in `dir`, repairing a torn tail.
    pub fn open(dir: &Path, fsync: bool, metrics: RemoteMetrics) -> Result<WalStorage, String> {
        let previous_write_ms = last_write_ms(dir);
        let options = WalOptions {
            // The agent cuts segments itself (see `commit`), never inside
            // `Wal::log`, so that every segment stays self-contained.
            segment_size: u64::MAX,
            fsync,
        };
        let wal =
            Wal::open(dir, options).map_err(|e| format!("opening the remote-write WAL: {e}"))?;
        let (committed, _) = watch::channel(0);
        Ok(WalStorage {
            inner: Arc::new(WalInner {
                wal,
                state: Mutex::new(WriterState {
                    series: HashMap::new(),
                    next_id: 1,
                    segment_bytes: 0,
                }),
                created: Mutex::new(None),
                previous_write_ms,
                committed,
                metrics,
            }),
        })
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        self.inner.wal.dir()
    }

    /// Stores created timestamps as zero samples
    /// (`Appender::append_created_zero`), as `osprey agent
    /// --enable-feature=created-timestamp-zero-ingestion` asks. The WAL
    /// keeps no per-series state across restarts (sent segments are
    /// deleted), so for a series not written since it was opened, a
    /// created timestamp not after the WAL directory's last write before
    /// then is skipped: it might not be after what was sent before. A
    /// new WAL has no such bound, as Prometheus's agent has none for a
    /// series new to it.
    pub fn enable_created_timestamps(&self) {
        *self.inner.created.lock().unwrap_or_else(|e| e.into_inner()) = Some(CreatedState {
            newest: HashMap::new(),
            floor: self.inner.previous_write_ms,
        });
    }

    /// Whether a zero sample at `created` for `labels` would be after
    /// everything logged for the series; notes `t` as its newest when so.
    fn created_zero_allowed(&self, labels: &Labels, t: i64, created: i64) -> bool {
        if created >= t {
            return false;
        }
        let mut guard = self.inner.created.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = guard.as_mut() else {
            return false;
        };
        let newest = state.newest.get(labels).copied().unwrap_or(state.floor);
        if created <= newest {
            return false;
        }
        state.newest.insert(labels.clone(), t.max(newest));
        true
    }

    /// Notes the timestamps of a commit's samples, and at a segment cut
    /// prunes series not written for [`CREATED_KEEP_MS`].
    fn note_created(
        &self,
        staged: &[(Labels, i64, f64)],
        histograms: &[(Labels, i64, FloatHistogram)],
        cut: bool,
    ) {
        let mut guard = self.inner.created.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = guard.as_mut() else {
            return;
        };
        let times = staged
            .iter()
            .map(|(l, t, _)| (l, *t))
            .chain(histograms.iter().map(|(l, t, _)| (l, *t)));
        for (labels, t) in times {
            match state.newest.get_mut(labels) {
                Some(newest) => *newest = (*newest).max(t),
                None => {
                    state.newest.insert(labels.clone(), t);
                }
            }
        }
        if cut && let Some(latest) = state.newest.values().copied().max() {
            let keep_from = latest.saturating_sub(CREATED_KEEP_MS);
            let mut floor = state.floor;
            state.newest.retain(|_, newest| {
                let keep = *newest >= keep_from;
                if !keep {
                    floor = floor.max(*newest);
                }
                keep
            });
            state.floor = floor;
        }
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.committed.subscribe()
    }

    /// Logs `staged` floats and `histograms` as one commit; returns as
    /// `durability` says.
    pub(crate) fn commit(
        &self,
        staged: &[(Labels, i64, f64)],
        histograms: &[(Labels, i64, FloatHistogram)],
        durability: Durability,
    ) -> Result<(), StorageError> {
        if staged.is_empty() && histograms.is_empty() {
            return Ok(());
        }
        let io_error = |e: wal::WalError| StorageError::new(StorageErrorKind::Io, e.to_string());
        let inner = &*self.inner;
        // One commit at a time: ids, the segment cut and the log call must
        // agree on which segment the records land in.
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let cut = state.segment_bytes >= AGENT_SEGMENT_BYTES;
        if cut {
            inner.wal.cut_segment().map_err(io_error)?;
            state.series.clear();
            state.segment_bytes = 0;
        }
        let mut new_series = Vec::new();
        let mut id_of = |labels: &Labels, state: &mut WriterState| match state.series.get(labels) {
            Some(&id) => id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                state.series.insert(labels.clone(), id);
                new_series.push(RefSeries {
                    id,
                    labels: labels.clone(),
                });
                id
            }
        };
        let mut samples = Vec::with_capacity(staged.len());
        for (labels, t, v) in staged {
            let id = id_of(labels, &mut state);
            samples.push(RefSample { id, t: *t, v: *v });
        }
        let mut histogram_samples = Vec::with_capacity(histograms.len());
        for (labels, t, h) in histograms {
            let id = id_of(labels, &mut state);
            histogram_samples.push(RefHistogram {
                id,
                t: *t,
                h: h.clone(),
            });
        }
        let mut series_record = Vec::new();
        if !new_series.is_empty() {
            wal::encode_series(&new_series, &mut series_record);
        }
        let mut samples_record = Vec::new();
        if !samples.is_empty() {
            wal::encode_samples(&samples, &mut samples_record);
        }
        let mut histograms_record = Vec::new();
        if !histogram_samples.is_empty() {
            wal::encode_histograms(&histogram_samples, &mut histograms_record);
        }
        let records: Vec<&[u8]> = [
            series_record.as_slice(),
            samples_record.as_slice(),
            histograms_record.as_slice(),
        ]
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
        if let Err(error) = inner.wal.log_with(&records, durability) {
            // The ids handed out above are not in the WAL; forget them so
            // the next commit describes those series again.
            for series in &new_series {
                state.series.remove(&series.labels);
            }
            return Err(io_error(error));
        }
        state.segment_bytes += records.iter().map(|r| r.len() as u64 + 8).sum::<u64>();
        self.note_created(staged, histograms, cut);
        drop(state);
        inner
            .metrics
            .samples_in
            .inc_by((staged.len() + histograms.len()) as u64);
        inner.committed.send_modify(|n| *n += 1);
        Ok(())
    }
}

impl Appendable for WalStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(WalAppender {
            storage: self,
            staged: Vec::new(),
            histograms: Vec::new(),
        })
    }
}

struct WalAppender<'a> {
    storage: &'a WalStorage,
    staged: Vec<(Labels, i64, f64)>,
    histograms: Vec<(Labels, i64, FloatHistogram)>,
}

impl Appender for WalAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> model::storage::Result<()> {
        validate_labels(labels)?;
        self.staged.push((labels.clone(), t, v));
        Ok(())
    }

    /// Logged for the queues, which send it when their entry has
    /// `send_native_histograms`.
    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        histogram: &FloatHistogram,
    ) -> model::storage::Result<()> {
        validate_labels(labels)?;
        histogram
            .validate()
            .map_err(|e| StorageError::new(StorageErrorKind::InvalidInput, e.to_string()))?;
        self.histograms.push((labels.clone(), t, histogram.clone()));
        Ok(())
    }

    /// Logged when the storage keeps created timestamps
    /// ([`WalStorage::enable_created_timestamps`]) and `created` is after
    /// everything logged for the series; the queues send it as a sample,
    /// as Prometheus's agent does.
    fn append_created_zero(
        &mut self,
        labels: &Labels,
        t: i64,
        created: i64,
    ) -> model::storage::Result<bool> {
        validate_labels(labels)?;
        if !self.storage.created_zero_allowed(labels, t, created) {
            return Ok(false);
        }
        self.staged.push((labels.clone(), created, 0.0));
        Ok(true)
    }

    fn append_histogram_created_zero(
        &mut self,
        labels: &Labels,
        t: i64,
        created: i64,
        like: &FloatHistogram,
    ) -> model::storage::Result<bool> {
        validate_labels(labels)?;
        if !self.storage.created_zero_allowed(labels, t, created) {
            return Ok(false);
        }
        self.histograms
            .push((labels.clone(), created, like.created_zero()));
        Ok(true)
    }

    fn commit(&mut self) -> model::storage::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let histograms = std::mem::take(&mut self.histograms);
        self.storage
            .commit(&staged, &histograms, Durability::Synced)
    }

    fn rollback(&mut self) {
        self.staged.clear();
        self.histograms.clear();
    }
}

// ---------------------------------------------------------------------------
// Reading and sending: one queue per remote_write entry.

/// The queues of the current configuration over one [`WalStorage`].
pub struct RemoteWriter {
    storage: WalStorage,
    queues_dir: PathBuf,
    external_labels: Vec<(String, String)>,
    queues: Vec<RunningQueue>,
    /// Positions of the current queues, for segment deletion.
    positions: Arc<Mutex<Vec<Arc<AtomicU32>>>>,
    metrics: RemoteMetrics,
    fsync: bool,
    /// Where the metadata sent with `metadata_config.send` comes from (the
    /// scrape targets'); without one, no metadata is sent.
    metadata_source: Option<MetadataSource>,
}

/// The metric metadata to send: called once per `send_interval`.
pub type MetadataSource = Arc<dyn Fn() -> Vec<MetricMetadata> + Send + Sync>;

/// One metric family's metadata as remote write sends it
/// (`prometheus.MetricMetadata`, whose type numbers follow OpenMetrics's
/// order with unknown as 0).
pub fn metadata_entry(
    metric: &str,
    metric_type: model::exposition::MetricType,
    help: &str,
    unit: &str,
) -> MetricMetadata {
    use model::exposition::MetricType;
    let r#type = match metric_type {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    };
    MetricMetadata {
        r#type,
        metric_family_name: metric.to_string(),
        help: help.to_string(),
        unit: unit.to_string(),
    }
}

struct RunningQueue {
    config: RemoteWriteConfig,
    external_labels: Vec<(String, String)>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The metadata loop, when metadata is sent; it ends on `stop`.
    metadata_task: Option<tokio::task::JoinHandle<()>>,
}

impl RemoteWriter {
    /// A writer with no queues; [`RemoteWriter::apply`] starts them.
    /// Position files live in `queues_dir`.
    pub fn new(
        storage: WalStorage,
        queues_dir: &Path,
        fsync: bool,
        metrics: RemoteMetrics,
    ) -> Result<RemoteWriter, String> {
        fs::create_dir_all(queues_dir)
            .map_err(|e| format!("creating {}: {e}", queues_dir.display()))?;
        Ok(RemoteWriter {
            storage,
            queues_dir: queues_dir.to_owned(),
            external_labels: Vec::new(),
            queues: Vec::new(),
            positions: Arc::new(Mutex::new(Vec::new())),
            metrics,
            fsync,
            metadata_source: None,
        })
    }

    /// Sets where metadata comes from; queues started afterwards send it
    /// (with `metadata_config.send`, the default).
    pub fn set_metadata_source(&mut self, source: MetadataSource) {
        self.metadata_source = Some(source);
    }

    /// Makes the running queues match `configs`: unchanged ones keep
    /// running, changed ones restart from their saved position, removed
    /// ones stop (their unsent data stays on disk until every remaining
    /// queue has passed it).
    pub async fn apply(
        &mut self,
        configs: &[RemoteWriteConfig],
        external_labels: &[(String, String)],
    ) -> Result<(), String> {
        // Build every client first, so a bad TLS file fails the reload
        // before anything is stopped.
        let mut clients = Vec::with_capacity(configs.len());
        for config in configs {
            clients.push(build_client(config)?);
        }
        self.external_labels = external_labels.to_vec();
        let mut old = std::mem::take(&mut self.queues);
        let mut keep = Vec::new();
        let mut start = Vec::new();
        for (config, client) in configs.iter().zip(clients) {
            match old
                .iter()
                .position(|q| q.config == *config && q.external_labels == external_labels)
            {
                Some(index) => keep.push(old.swap_remove(index)),
                None => start.push((config.clone(), client)),
            }
        }
        for queue in old {
            let _ = queue.stop.send(true);
            let _ = queue.task.await;
            if let Some(task) = queue.metadata_task {
                task.abort();
            }
        }
        let mut positions = Vec::new();
        for (config, client) in start {
            let id = queue_id(&config);
            let position_path = self.queues_dir.join(format!("{id}.position"));
            let position = load_position(&position_path, self.storage.dir());
            let segment = Arc::new(AtomicU32::new(position.0));
            let (stop, stop_rx) = watch::channel(false);
            let labels: QueueLabels = vec![
                (
                    "remote_name",
                    if config.name.is_empty() {
                        id.clone()
                    } else {
                        config.name.clone()
                    },
                ),
                ("url", config.url.clone()),
            ];
            let queue = Queue {
                config: config.clone(),
                external_labels: external_labels.to_vec(),
                client,
                wal_dir: self.storage.dir().to_owned(),
                position_path,
                position,
                position_segment: segment.clone(),
                all_positions: self.positions.clone(),
                storage: self.storage.clone(),
                committed: self.storage.subscribe(),
                stop: stop_rx,
                fsync: self.fsync,
                metrics: QueueMetrics::new(&self.metrics, &labels),
                downgraded: Arc::new(AtomicBool::new(false)),
            };
            queue
                .metrics
                .shards_max
                .set(config.queue_config.max_shards as i64);
            queue
                .metrics
                .shards_min
                .set(config.queue_config.min_shards as i64);
            positions.push(segment);
            let metadata_task = match &self.metadata_source {
                Some(source) if config.metadata.send => {
                    let sender = Sender {
                        client: queue.client.clone(),
                        url: config.url.clone(),
                        config: config.clone(),
                        sent: self.metrics.metadata_sent.get_or_create(&labels).clone(),
                        failed: self.metrics.metadata_failed.get_or_create(&labels).clone(),
                        retried: self.metrics.metadata_retried.get_or_create(&labels).clone(),
                        bytes: self.metrics.metadata_bytes.get_or_create(&labels).clone(),
                        downgraded: queue.downgraded.clone(),
                    };
                    Some(tokio::spawn(send_metadata(
                        sender,
                        source.clone(),
                        stop.subscribe(),
                    )))
                }
                _ => None,
            };
            keep.push(RunningQueue {
                config,
                external_labels: external_labels.to_vec(),
                stop,
                task: tokio::spawn(queue.run()),
                metadata_task,
            });
        }
        self.queues = keep;
        // Positions of kept queues stay; replace the list with the queues
        // now running.
        {
            let mut all = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|p| {
                // Kept queues hold their own Arc; drop the removed ones by
                // checking the reference count held by their task.
                Arc::strong_count(p) > 1
            });
            all.extend(positions);
        }
        Ok(())
    }

    /// Stops every queue: each first sends what the WAL holds, for at most
    /// `flush_deadline`, then stops. Unsent data stays on disk.
    pub async fn stop(&mut self, flush_deadline: Duration) {
        for queue in &self.queues {
            let _ = queue.stop.send(true);
        }
        for queue in std::mem::take(&mut self.queues) {
            if let Some(task) = &queue.metadata_task {
                task.abort();
            }
            let abort = queue.task.abort_handle();
            if tokio::time::timeout(flush_deadline, queue.task)
                .await
                .is_err()
            {
                tracing::warn!(url = %queue.config.url, "remote write queue did not flush in time; the rest is sent after a restart");
                abort.abort();
            }
        }
    }
}

/// The name of a queue's position file (without `.position`).
pub fn queue_id(config: &RemoteWriteConfig) -> String {
    if config.name.is_empty() {
        format!("url-{:016x}", model::hash::fnv1a_64(config.url.as_bytes()))
    } else {
        config
            .name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                    b as char
                } else {
                    '_'
                }
            })
            .collect()
    }
}

fn build_client(config: &RemoteWriteConfig) -> Result<HttpClient, String> {
    if let Some(sigv4) = &config.sigv4 {
        // Credentials from the environment are checked now, so a queue
        // that could never sign fails the (re)load instead of every send.
        crate::sigv4::Credentials::resolve(sigv4)
            .map_err(|e| format!("remote_write {}: {e}", config.url))?;
    }
    HttpClient::new(&config.http, ClientOptions::new(USER_AGENT))
        .map_err(|e| format!("remote_write {}: {e}", config.url))
}

/// The headers a remote write request carries besides the client's own,
/// in order: the protocol's, the entry's `headers`, and, with `sigv4`,
/// the signature over all of them and the body.
fn request_headers(
    config: &RemoteWriteConfig,
    body: &[u8],
    v2: bool,
) -> Result<Vec<(String, String)>, String> {
    let (content_type, version) = if v2 {
        (
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "2.0.0",
        )
    } else {
        ("application/x-protobuf", "0.1.0")
    };
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Encoding".to_string(), "snappy".to_string()),
        ("Content-Type".to_string(), content_type.to_string()),
        (
            "X-Prometheus-Remote-Write-Version".to_string(),
            version.to_string(),
        ),
    ];
    headers.extend(config.headers.iter().cloned());
    if let Some(sigv4) = &config.sigv4 {
        let credentials = crate::sigv4::Credentials::resolve(sigv4)?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let request = crate::sigv4::Request {
            method: "POST",
            url: &config.url,
            headers: &headers,
            body,
        };
        let signed = crate::sigv4::sign(
            &request,
            &sigv4.region,
            crate::sigv4::SERVICE,
            &credentials,
            now_ms,
        )?;
        headers.extend(signed);
    }
    Ok(headers)
}

/// A (segment, byte offset) in the WAL.
type Position = (u32, u64);

/// Reads a position file; see `docs/format/agent.md`.
fn load_position(path: &Path, wal_dir: &Path) -> Position {
    let oldest = list_segments(wal_dir).first().copied().unwrap_or(0);
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (oldest, 0),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read queue position; sending from the oldest WAL segment");
            return (oldest, 0);
        }
    };
    match parse_position(&text) {
        Some(position) => position,
        None => {
            tracing::warn!(path = %path.display(), "malformed queue position file; sending from the oldest WAL segment");
            (oldest, 0)
        }
    }
}

fn parse_position(text: &str) -> Option<Position> {
    let mut lines = text.lines();
    if lines.next()? != "osprey-agent-position 1" {
        return None;
    }
    let mut segment = None;
    let mut offset = None;
    for line in lines {
        let (key, value) = line.split_once(' ')?;
        match key {
            "segment" => segment = value.parse::<u32>().ok(),
            "offset" => offset = value.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some((segment?, offset?))
}

fn save_position(path: &Path, url: &str, position: Position, fsync: bool) -> std::io::Result<()> {
    let text = format!(
        "osprey-agent-position 1\nurl {}\nsegment {}\noffset {}\n",
        url.replace('\n', " "),
        position.0,
        position.1
    );
    let sync = if fsync {
        model::durable::Sync::Durable
    } else {
        model::durable::Sync::AtomicOnly
    };
    model::durable::write_atomic_with(path, text.as_bytes(), sync)
}

/// Segment numbers in `dir`, ascending (names of exactly 8 digits).
fn list_segments(dir: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut numbers: Vec<u32> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let name = name.to_str()?;
            if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
                name.parse().ok()
            } else {
                None
            }
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:08}"))
}

struct QueueMetrics {
    sent: Counter,
    failed: Counter,
    retried: Counter,
    dropped: Counter,
    bytes: Counter,
    pending: Gauge,
    shards: Gauge,
    shards_max: Gauge,
    shards_min: Gauge,
    position_segment: Gauge,
}

impl QueueMetrics {
    fn new(metrics: &RemoteMetrics, labels: &QueueLabels) -> QueueMetrics {
        QueueMetrics {
            sent: metrics.samples_sent.get_or_create(labels).clone(),
            failed: metrics.samples_failed.get_or_create(labels).clone(),
            retried: metrics.samples_retried.get_or_create(labels).clone(),
            dropped: metrics.samples_dropped.get_or_create(labels).clone(),
            bytes: metrics.bytes_sent.get_or_create(labels).clone(),
            pending: metrics.samples_pending.get_or_create(labels).clone(),
            shards: metrics.shards.get_or_create(labels).clone(),
            shards_max: metrics.shards_max.get_or_create(labels).clone(),
            shards_min: metrics.shards_min.get_or_create(labels).clone(),
            position_segment: metrics.position_segment.get_or_create(labels).clone(),
        }
    }
}

/// A series as it is sent: labels after external labels and write
/// relabelling, and the hash that picks its shard.
struct SentSeries {
    labels: Vec<Label>,
    hash: u64,
}

/// One sample read from the WAL, ready to be sent.
struct Pending {
    series: Arc<SentSeries>,
    t: i64,
    value: PendingValue,
}

enum PendingValue {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

/// How a send ended.
enum SendOutcome {
    Sent,
    /// The receiver answered 415 to a 2.0 request: it does not speak 2.0.
    Unsupported,
    /// The receiver refused for good; the batch is dropped.
    Refused,
    /// The queue is stopping; the batch was not sent.
    Stopped,
}

struct Queue {
    config: RemoteWriteConfig,
    external_labels: Vec<(String, String)>,
    client: HttpClient,
    wal_dir: PathBuf,
    position_path: PathBuf,
    /// Next record to read.
    position: Position,
    /// The saved position's segment, shared for segment deletion.
    position_segment: Arc<AtomicU32>,
    all_positions: Arc<Mutex<Vec<Arc<AtomicU32>>>>,
    storage: WalStorage,
    committed: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    fsync: bool,
    metrics: QueueMetrics,
    /// Set once a receiver refused 2.0 with 415: the queue speaks 1.0
    /// from then on.
    downgraded: Arc<AtomicBool>,
}

/// What the reader knows of the segment it is in.
struct SegmentSeries {
    segment: u32,
    /// Series id → the series to send, `None` when relabelling dropped it.
    series: HashMap<u64, Option<Arc<SentSeries>>>,
}

impl Queue {
    async fn run(mut self) {
        let mut known = SegmentSeries {
            segment: 0,
            series: HashMap::new(),
        };
        self.normalize_position();
        self.metrics
            .position_segment
            .set(i64::from(self.position.0));
        if self.position.1 > 0 {
            known = self.series_before(self.position);
        }
        let round_capacity = (self.config.queue_config.max_shards
            * self.config.queue_config.max_samples_per_send)
            .max(1) as usize;
        let deadline =
            Duration::from_millis(self.config.queue_config.batch_send_deadline_ms as u64);
        loop {
            let stopping = *self.stop.borrow();
            let mut round: Vec<Pending> = Vec::new();
            let mut first_read: Option<tokio::time::Instant> = None;
            loop {
                self.committed.borrow_and_update();
                let read = self.read_available(&mut known, &mut round, round_capacity);
                if round.is_empty()
                    && self.position.0 != self.position_segment.load(Ordering::Acquire)
                {
                    // Whole segments were read with nothing to send (all
                    // relabelled away): record that so they can go.
                    self.save();
                }
                if !round.is_empty() && first_read.is_none() {
                    first_read = Some(tokio::time::Instant::now());
                }
                self.metrics.pending.set(round.len() as i64);
                if round.len() >= round_capacity || (read == ReadState::CaughtUp && stopping) {
                    break;
                }
                if read == ReadState::More {
                    continue;
                }
                if let Some(start) = first_read
                    && start.elapsed() >= deadline
                {
                    break;
                }
                let wait = match first_read {
                    Some(start) => deadline.saturating_sub(start.elapsed()).min(IDLE_POLL),
                    None => IDLE_POLL,
                };
                if stopping {
                    // Flushing: what is on disk was read; send it now.
                    break;
                }
                tokio::select! {
                    _ = self.committed.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.stop.changed() => {}
                }
                if *self.stop.borrow() || self.stop.has_changed().is_err() {
                    // Flush: send what is read, then what is left.
                    break;
                }
            }
            let was_empty = round.is_empty();
            if !was_empty {
                match self.send_round(round).await {
                    SendOutcome::Stopped => return,
                    SendOutcome::Sent | SendOutcome::Refused | SendOutcome::Unsupported => {}
                }
            }
            self.metrics.pending.set(0);
            self.save();
            if *self.stop.borrow() && was_empty {
                return;
            }
        }
    }

    /// Moves a position that points at a deleted segment, or past the end
    /// of its segment, to the start of the next one on disk.
    fn normalize_position(&mut self) {
        let segments = list_segments(&self.wal_dir);
        let Some(&oldest) = segments.first() else {
            return;
        };
        if self.position.0 < oldest || !segments.contains(&self.position.0) {
            let next = segments
                .iter()
                .copied()
                .find(|&n| n > self.position.0)
                .unwrap_or(oldest);
            self.position = (next, 0);
            return;
        }
        let len = fs::metadata(segment_path(&self.wal_dir, self.position.0))
            .map(|m| m.len())
            .unwrap_or(0);
        if self.position.1 > len
            && let Some(next) = segments.iter().copied().find(|&n| n > self.position.0)
        {
            self.position = (next, 0);
        }
    }

    /// The series described in `position`'s segment before its offset.
    fn series_before(&self, position: Position) -> SegmentSeries {
        let mut known = SegmentSeries {
            segment: position.0,
            series: HashMap::new(),
        };
        let path = segment_path(&self.wal_dir, position.0);
        let Ok(bytes) = read_range(&path, 0, position.1) else {
            return known;
        };
        wal::scan_segment_bytes(&bytes, &mut |record| {
            if let Ok(Record::Series(series)) = wal::decode(record) {
                for s in series {
                    let sent = self.prepare(&s.labels);
                    known.series.insert(s.id, sent);
                }
            }
        });
        known
    }

    /// External labels (a series' own label wins), then write relabelling.
    fn prepare(&self, labels: &Labels) -> Option<Arc<SentSeries>> {
        let mut map: std::collections::BTreeMap<String, String> = labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        for (name, value) in &self.external_labels {
            map.entry(name.clone()).or_insert_with(|| value.clone());
        }
        if !self.config.write_relabel_configs.is_empty()
            && !relabel::process(&mut map, &self.config.write_relabel_configs)
        {
            return None;
        }
        if map.is_empty() {
            return None;
        }
        let final_labels = Labels::from_pairs(map.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        Some(Arc::new(SentSeries {
            hash: final_labels.stable_hash(),
            labels: map
                .into_iter()
                .map(|(name, value)| Label { name, value })
                .collect(),
        }))
    }

    /// Reads records after the position into `round`, up to about
    /// `capacity` samples.
    fn read_available(
        &mut self,
        known: &mut SegmentSeries,
        round: &mut Vec<Pending>,
        capacity: usize,
    ) -> ReadState {
        let segments = list_segments(&self.wal_dir);
        if segments.is_empty() {
            return ReadState::CaughtUp;
        }
        if !segments.contains(&self.position.0) {
            match segments.iter().copied().find(|&n| n > self.position.0) {
                Some(next) => self.position = (next, 0),
                None => return ReadState::CaughtUp,
            }
        }
        if known.segment != self.position.0 {
            *known = SegmentSeries {
                segment: self.position.0,
                series: HashMap::new(),
            };
        }
        // Look for a successor before reading: if one existed before the
        // read, the read saw everything this segment will ever hold.
        let next = segments.iter().copied().find(|&n| n > self.position.0);
        let path = segment_path(&self.wal_dir, self.position.0);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut offset = self.position.1;
        while offset < len && round.len() < capacity {
            let want = (len - offset).min(READ_CHUNK_BYTES);
            let mut bytes = match read_range(&path, offset, offset + want) {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(segment = %path.display(), %error, "cannot read WAL segment");
                    return ReadState::CaughtUp;
                }
            };
            let mut scan = self.scan_into(&bytes, known, round);
            if scan.valid_len == 0 && offset + want < len {
                // One frame larger than a chunk: read it whole.
                bytes = match read_range(&path, offset, len) {
                    Ok(bytes) => bytes,
                    Err(_) => return ReadState::CaughtUp,
                };
                scan = self.scan_into(&bytes, known, round);
            }
            if scan.valid_len == 0 {
                // A frame still being written, or a corrupt one.
                if next.is_some() {
                    if scan.corruption.is_some() {
                        tracing::warn!(segment = %path.display(), offset, "corrupt WAL frame; skipping the rest of the segment");
                    }
                    offset = len;
                }
                break;
            }
            offset += scan.valid_len;
        }
        self.position.1 = offset;
        if offset >= len
            && let Some(next) = next
        {
            self.position = (next, 0);
            return ReadState::More;
        }
        if offset < len && round.len() >= capacity {
            return ReadState::More;
        }
        ReadState::CaughtUp
    }

    fn scan_into(
        &self,
        bytes: &[u8],
        known: &mut SegmentSeries,
        round: &mut Vec<Pending>,
    ) -> wal::SegmentScan {
        let mut dropped = 0u64;
        let scan = wal::scan_segment_bytes(bytes, &mut |record| match wal::decode(record) {
            Ok(Record::Series(series)) => {
                for s in series {
                    let sent = self.prepare(&s.labels);
                    known.series.insert(s.id, sent);
                }
            }
            Ok(Record::Samples(samples)) => {
                for sample in samples {
                    match known.series.get(&sample.id) {
                        Some(Some(series)) => round.push(Pending {
                            series: series.clone(),
                            t: sample.t,
                            value: PendingValue::Float(sample.v),
                        }),
                        Some(None) => dropped += 1,
                        None => {
                            dropped += 1;
                            tracing::warn!(
                                id = sample.id,
                                "WAL sample without a series record; dropped"
                            );
                        }
                    }
                }
            }
            // Remote write has no deletes, and this WAL never holds them.
            Ok(Record::Tombstones(_)) => {}
            // Exemplars are not forwarded (`send_exemplars` is refused by
            // the config), and this WAL never holds them.
            Ok(Record::Exemplars(_)) => {}
            // Native histograms go out when the entry says
            // `send_native_histograms`, as Prometheus sends them.
            Ok(Record::Histograms(samples)) => {
                if !self.config.send_native_histograms {
                    return;
                }
                for sample in samples {
                    match known.series.get(&sample.id) {
                        Some(Some(series)) => round.push(Pending {
                            series: series.clone(),
                            t: sample.t,
                            value: PendingValue::Histogram(Box::new(sample.h)),
                        }),
                        Some(None) => dropped += 1,
                        None => {
                            dropped += 1;
                            tracing::warn!(
                                id = sample.id,
                                "WAL histogram without a series record; dropped"
                            );
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "undecodable WAL record; skipped");
            }
        });
        self.metrics.dropped.inc_by(dropped);
        scan
    }

    /// Sends one round over its shards; returns once every shard is done.
    async fn send_round(&mut self, round: Vec<Pending>) -> SendOutcome {
        let queue = &self.config.queue_config;
        let per_send = queue.max_samples_per_send.max(1) as usize;
        let shard_count = round.len().div_ceil(per_send).clamp(
            queue.min_shards.max(1) as usize,
            queue.max_shards.max(1) as usize,
        );
        self.metrics.shards.set(shard_count as i64);
        let mut shards: Vec<Vec<Pending>> = (0..shard_count).map(|_| Vec::new()).collect();
        for pending in round {
            let index = (pending.series.hash % shard_count as u64) as usize;
            if let Some(shard) = shards.get_mut(index) {
                shard.push(pending);
            }
        }
        let sender = Arc::new(Sender {
            client: self.client.clone(),
            url: self.config.url.clone(),
            config: self.config.clone(),
            sent: self.metrics.sent.clone(),
            failed: self.metrics.failed.clone(),
            retried: self.metrics.retried.clone(),
            bytes: self.metrics.bytes.clone(),
            downgraded: self.downgraded.clone(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        for shard in shards.into_iter().filter(|s| !s.is_empty()) {
            let sender = sender.clone();
            let stop = self.stop.clone();
            tasks.spawn(async move { sender.send_shard(shard, per_send, stop).await });
        }
        let mut outcome = SendOutcome::Sent;
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(SendOutcome::Stopped) | Err(_) => outcome = SendOutcome::Stopped,
                Ok(SendOutcome::Refused | SendOutcome::Unsupported) => {
                    if !matches!(outcome, SendOutcome::Stopped) {
                        outcome = SendOutcome::Refused;
                    }
                }
                Ok(SendOutcome::Sent) => {}
            }
        }
        outcome
    }

    /// Saves the position (if it moved) and deletes segments every queue
    /// has passed.
    fn save(&mut self) {
        let saved_segment = self.position_segment.load(Ordering::Acquire);
        if let Err(error) = save_position(
            &self.position_path,
            &self.config.url,
            self.position,
            self.fsync,
        ) {
            tracing::warn!(path = %self.position_path.display(), %error, "cannot save queue position");
            return;
        }
        self.metrics
            .position_segment
            .set(i64::from(self.position.0));
        if saved_segment == self.position.0 {
            return;
        }
        self.position_segment
            .store(self.position.0, Ordering::Release);
        let lowest = {
            let all = self.all_positions.lock().unwrap_or_else(|e| e.into_inner());
            all.iter().map(|p| p.load(Ordering::Acquire)).min()
        };
        if let Some(lowest) = lowest
            && let Err(error) = self.storage.inner.wal.truncate_before(lowest)
        {
            tracing::warn!(%error, "cannot delete sent WAL segments");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReadState {
    /// More is on disk than was read (the round is full, or a segment
    /// ended and the next one waits).
    More,
    /// Everything written so far was read.
    CaughtUp,
}

fn read_range(path: &Path, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity(end.saturating_sub(start) as usize);
    file.take(end.saturating_sub(start))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What a shard needs to send: shared by the shards of a round.
struct Sender {
    client: HttpClient,
    url: String,
    config: RemoteWriteConfig,
    sent: Counter,
    failed: Counter,
    retried: Counter,
    bytes: Counter,
    /// Whether the receiver refused 2.0 (shared by the queue's rounds).
    downgraded: Arc<AtomicBool>,
}

/// Every `metadata_config.send_interval`, sends what `source` gives, in
/// requests of at most `max_samples_per_send` entries holding only
/// metadata, retried like samples; ends when `stop` turns true.
async fn send_metadata(sender: Sender, source: MetadataSource, mut stop: watch::Receiver<bool>) {
    let metadata = &sender.config.metadata;
    let interval = Duration::from_millis(metadata.send_interval_ms.max(1) as u64);
    let per_send = metadata.max_samples_per_send.max(1) as usize;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let entries = source();
        for batch in entries.chunks(per_send) {
            let body = encode_remote_write(&WriteRequest {
                timeseries: Vec::new(),
                metadata: batch.to_vec(),
            });
            // Metadata goes as 1.0 metadata-only requests whatever the
            // entry's version (2.0 carries it in series, which this
            // periodic send has none of).
            if let SendOutcome::Stopped = sender
                .send_with_retry(&body, false, batch.len() as u64, &mut stop)
                .await
            {
                return;
            }
        }
    }
}

/// Why one request failed.
enum SendError {
    /// 415 to a 2.0 request.
    Unsupported(String),
    /// Worth retrying: 5xx, 429 (when configured), network errors.
    Recoverable(String),
    /// Not worth retrying: other 4xx and unexpected statuses.
    Unrecoverable(String),
}

impl Sender {
    async fn send_shard(
        &self,
        samples: Vec<Pending>,
        per_send: usize,
        mut stop: watch::Receiver<bool>,
    ) -> SendOutcome {
        let mut outcome = SendOutcome::Sent;
        for batch in samples.chunks(per_send) {
            let v2 = self.config.protobuf_message == ProtobufMessage::V2
                && !self.downgraded.load(Ordering::Acquire);
            let body = encode_batch(batch, v2);
            let mut sent = self
                .send_with_retry(&body, v2, batch.len() as u64, &mut stop)
                .await;
            if let SendOutcome::Unsupported = sent {
                // The spec's answer of a receiver without 2.0: send this
                // batch and the rest as 1.0.
                tracing::warn!(url = %self.url, "remote storage does not accept remote write 2.0; sending 1.0 from now on");
                self.downgraded.store(true, Ordering::Release);
                let body = encode_batch(batch, false);
                sent = self
                    .send_with_retry(&body, false, batch.len() as u64, &mut stop)
                    .await;
            }
            match sent {
                SendOutcome::Sent => {}
                SendOutcome::Refused | SendOutcome::Unsupported => outcome = SendOutcome::Refused,
                SendOutcome::Stopped => return SendOutcome::Stopped,
            }
        }
        outcome
    }

    async fn send_with_retry(
        &self,
        body: &[u8],
        v2: bool,
        count: u64,
        stop: &mut watch::Receiver<bool>,
    ) -> SendOutcome {
        let queue = &self.config.queue_config;
        let min_backoff = Duration::from_millis(queue.min_backoff_ms.max(1) as u64);
        let max_backoff = Duration::from_millis(queue.max_backoff_ms.max(1) as u64);
        let mut backoff = min_backoff;
        let mut retries_while_stopping = 0;
        loop {
            match self.send_once(body, v2).await {
                Ok(()) => {
                    self.sent.inc_by(count);
                    self.bytes.inc_by(body.len() as u64);
                    return SendOutcome::Sent;
                }
                Err(SendError::Unsupported(message)) => {
                    tracing::debug!(url = %self.url, error = %message, "2.0 refused");
                    return SendOutcome::Unsupported;
                }
                Err(SendError::Unrecoverable(message)) => {
                    tracing::error!(url = %self.url, samples = count, error = %message, "remote storage refused samples; dropping them");
                    self.failed.inc_by(count);
                    return SendOutcome::Refused;
                }
                Err(SendError::Recoverable(message)) => {
                    tracing::warn!(url = %self.url, samples = count, error = %message, retry_in = ?backoff, "sending to remote storage failed; retrying");
                    self.retried.inc_by(count);
                }
            }
            if *stop.borrow() {
                // Flushing at shutdown: a receiver that is down stays down
                // for this process; the WAL keeps the samples.
                retries_while_stopping += 1;
                if retries_while_stopping > 2 {
                    return SendOutcome::Stopped;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    async fn send_once(&self, body: &[u8], v2: bool) -> Result<(), SendError> {
        let mut request = self
            .client
            .request(reqwest::Method::POST, &self.url)
            .await
            .map_err(SendError::Recoverable)?
            .timeout(Duration::from_millis(
                self.config.remote_timeout_ms.max(1) as u64
            ))
            .body(body.to_vec());
        for (name, value) in
            request_headers(&self.config, body, v2).map_err(SendError::Recoverable)?
        {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Recoverable(config::client::describe_error(&e)))?;
        let status = response.status();
        if status.is_success() {
            let counted = [
                "x-prometheus-remote-write-samples-written",
                "x-prometheus-remote-write-histograms-written",
                "x-prometheus-remote-write-exemplars-written",
            ]
            .iter()
            .any(|name| response.headers().contains_key(*name));
            if v2 && !counted {
                // A 1.0 receiver that does not look at the content type
                // reads a 2.0 body as an empty 1.0 request and answers
                // 2xx having stored nothing (the spec's reason for the
                // headers). Prometheus counts that as a failure; osprey
                // sends the batch again as 1.0.
                return Err(SendError::Unsupported(format!(
                    "HTTP {status} without the X-Prometheus-Remote-Write-*-Written headers: a 1.0 receiver"
                )));
            }
            return Ok(());
        }
        if v2 && status == reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return Err(SendError::Unsupported(format!("HTTP {status}")));
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(256).collect();
        let message = format!("HTTP {status}: {}", text.trim());
        if status.is_server_error()
            || (status == reqwest::StatusCode::TOO_MANY_REQUESTS
                && self.config.queue_config.retry_on_http_429)
        {
            Err(SendError::Recoverable(message))
        } else {
            Err(SendError::Unrecoverable(message))
        }
    }
}

/// One request body for `batch`, remote write 1.0 or 2.0: samples and
/// histograms grouped per series in their order, protobuf, snappy block
/// format.
fn encode_batch(batch: &[Pending], v2: bool) -> Vec<u8> {
    if v2 {
        return encode_batch_v2(batch);
    }
    let mut index: HashMap<*const SentSeries, usize> = HashMap::new();
    let mut request = WriteRequest {
        timeseries: Vec::new(),
        metadata: Vec::new(),
    };
    for pending in batch {
        let key = Arc::as_ptr(&pending.series);
        let slot = *index.entry(key).or_insert_with(|| {
            request.timeseries.push(TimeSeries {
                labels: pending.series.labels.clone(),
                samples: Vec::new(),
                exemplars: Vec::new(),
                histograms: Vec::new(),
            });
            request.timeseries.len() - 1
        });
        if let Some(series) = request.timeseries.get_mut(slot) {
            match &pending.value {
                PendingValue::Float(v) => series.samples.push(Sample {
                    value: *v,
                    timestamp: pending.t,
                }),
                PendingValue::Histogram(h) => {
                    series.histograms.push(Histogram::from_float(pending.t, h))
                }
            }
        }
    }
    encode_remote_write(&request)
}

/// The 2.0 form: labels as references into one symbols table.
fn encode_batch_v2(batch: &[Pending]) -> Vec<u8> {
    let mut index: HashMap<*const SentSeries, usize> = HashMap::new();
    let mut symbols = v2::Symbols::new();
    let mut timeseries: Vec<v2::TimeSeries> = Vec::new();
    for pending in batch {
        let key = Arc::as_ptr(&pending.series);
        let slot = *index.entry(key).or_insert_with(|| {
            let labels_refs = symbols.label_refs(
                pending
                    .series
                    .labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            );
            timeseries.push(v2::TimeSeries {
                labels_refs,
                ..Default::default()
            });
            timeseries.len() - 1
        });
        if let Some(series) = timeseries.get_mut(slot) {
            match &pending.value {
                PendingValue::Float(v) => series.samples.push(v2::Sample {
                    value: *v,
                    timestamp: pending.t,
                    start_timestamp: 0,
                }),
                PendingValue::Histogram(h) => {
                    series.histograms.push(Histogram::from_float(pending.t, h))
                }
            }
        }
    }
    let request = v2::Request {
        symbols: symbols.into_table(),
        timeseries,
    };
    let raw = prost::Message::encode_to_vec(&request);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
