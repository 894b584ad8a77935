//! osprey's own metrics, served at `GET /metrics` in the OpenMetrics text
//! format: HTTP request durations (recorded by a middleware, labelled by
//! route pattern and status code) and the store's counters, which a
//! collector reads from [`Storage::counters`] at scrape time, so the numbers
//! are never stale copies, and the remote-write sender's
//! `prometheus_remote_storage_*`. The `process_*` metrics (CPU, memory, file
//! descriptors, threads, start time) carry client_golang's names and are
//! read from `/proc/self` at scrape time too.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use model::storage::Storage;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::{ApiError, AppState};

/// The content type prometheus-client's text encoder produces.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

type HttpLabels = Vec<(&'static str, String)>;
type DurationFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

/// The registry and the metrics the server records itself.
pub struct ServerMetrics {
    registry: Registry,
    http_request_duration: DurationFamily,
    /// `prometheus_config_last_reload_successful`: 1 or 0.
    reload_successful: Gauge,
    /// `prometheus_config_last_reload_success_timestamp_seconds`.
    reload_success_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// `osprey_otlp_samples_appended_total{protocol}`.
    otlp_samples: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// `osprey_otlp_data_points_rejected_total{protocol}`.
    otlp_rejected: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// `osprey_pushgateway_groups`.
    push_groups: Gauge,
    /// `osprey_otlp_spans_stored_total{protocol}`.
    otlp_spans: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// `osprey_otlp_spans_rejected_total{protocol}`.
    otlp_spans_rejected: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// `osprey_traces_head_spans`, `osprey_traces_blocks`,
    /// `osprey_traces_block_bytes`, `osprey_traces_wal_bytes`.
    traces_head_spans: Gauge,
    traces_blocks: Gauge,
    traces_block_bytes: Gauge,
    traces_wal_bytes: Gauge,
}

fn new_duration_histogram() -> Histogram {
    // 1 ms to about 33 s in doublings: API calls range from sub-millisecond
    // label lookups to multi-second exports and large remote write batches.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl ServerMetrics {
    /// The registry over `storage`'s counters, with the remote-write
    /// sender's metrics (registered whether or not anything is forwarded,
    /// as Prometheus does).
    pub fn new(storage: Arc<dyn Storage>, remote: &remote::RemoteMetrics) -> ServerMetrics {
        let mut registry = Registry::default();
        remote.register(&mut registry);
        let http_request_duration: DurationFamily =
            Family::new_with_constructor(new_duration_histogram as fn() -> Histogram);
        registry.register(
            "osprey_http_request_duration_seconds",
            "Time spent answering HTTP requests, by route pattern and status code",
            http_request_duration.clone(),
        );
        // Prometheus's names, so dashboards and alerts on reload failures
        // work unchanged.
        let reload_successful = Gauge::default();
        registry.register(
            "prometheus_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            reload_successful.clone(),
        );
        let reload_success_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "prometheus_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            reload_success_seconds.clone(),
        );
        let otlp_samples = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "osprey_otlp_samples_appended",
            "Samples stored from OTLP metrics, by protocol (http, grpc)",
            otlp_samples.clone(),
        );
        let otlp_rejected = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "osprey_otlp_data_points_rejected",
            "OTLP data points refused (answered in partial_success), by protocol",
            otlp_rejected.clone(),
        );
        let push_groups = Gauge::default();
        registry.register(
            "osprey_pushgateway_groups",
            "Groups held by the Pushgateway API",
            push_groups.clone(),
        );
        let otlp_spans = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "osprey_otlp_spans_stored",
            "Spans stored from OTLP traces (fsynced before the answer), by protocol (http, grpc)",
            otlp_spans.clone(),
        );
        let otlp_spans_rejected = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "osprey_otlp_spans_rejected",
            "OTLP spans refused (answered in partial_success), by protocol",
            otlp_spans_rejected.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let traces_head_spans = gauge(
            &mut registry,
            "osprey_traces_head_spans",
            "Spans in the trace store's WAL, not yet in a block",
        );
        let traces_blocks = gauge(
            &mut registry,
            "osprey_traces_blocks",
            "Trace blocks on disk",
        );
        let traces_block_bytes = gauge(
            &mut registry,
            "osprey_traces_block_bytes",
            "Bytes of the trace blocks on disk",
        );
        let traces_wal_bytes = gauge(
            &mut registry,
            "osprey_traces_wal_bytes",
            "Bytes of the trace WAL on disk",
        );
        registry.register_collector(Box::new(StorageCollector { storage }));
        registry.register_collector(Box::new(ProcessCollector));
        ServerMetrics {
            registry,
            http_request_duration,
            reload_successful,
            reload_success_seconds,
            otlp_samples,
            otlp_rejected,
            push_groups,
            otlp_spans,
            otlp_spans_rejected,
            traces_head_spans,
            traces_blocks,
            traces_block_bytes,
            traces_wal_bytes,
        }
    }

    /// Records one OTLP traces request's stored and refused spans.
    pub fn observe_otlp_spans(&self, protocol: &'static str, spans: u64, rejected: u64) {
        let labels = vec![("protocol", protocol)];
        self.otlp_spans.get_or_create(&labels).inc_by(spans);
        self.otlp_spans_rejected
            .get_or_create(&labels)
            .inc_by(rejected);
    }

    /// Sets the trace store's gauges.
    pub fn set_trace_store(&self, stats: &::traces::Stats) {
        let set = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.traces_head_spans, stats.head_spans);
        set(&self.traces_blocks, stats.blocks);
        set(&self.traces_block_bytes, stats.block_bytes);
        set(&self.traces_wal_bytes, stats.wal_bytes);
    }

    /// Records one OTLP request's stored samples and refused points.
    pub fn observe_otlp(&self, protocol: &'static str, samples: u64, rejected: u64) {
        let labels = vec![("protocol", protocol)];
        self.otlp_samples.get_or_create(&labels).inc_by(samples);
        self.otlp_rejected.get_or_create(&labels).inc_by(rejected);
    }

    /// Sets the number of pushed groups.
    pub fn set_push_groups(&self, groups: usize) {
        self.push_groups
            .set(i64::try_from(groups).unwrap_or(i64::MAX));
    }

    /// Records the outcome of a configuration load or reload.
    pub fn config_reloaded(&self, success: bool) {
        self.reload_successful.set(i64::from(success));
        if success {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.reload_success_seconds.set(now);
        }
    }

    /// Records one answered request.
    pub fn observe_http(&self, handler: &str, code: u16, seconds: f64) {
        self.http_request_duration
            .get_or_create(&vec![
                ("handler", handler.to_string()),
                ("code", code.to_string()),
            ])
            .observe(seconds);
    }

    /// The OpenMetrics text of everything registered.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the store's counters on every scrape.
struct StorageCollector {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for StorageCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageCollector")
    }
}

impl Collector for StorageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.storage.counters();
        // Counter names leave out `_total` and help texts their final period:
        // the OpenMetrics encoder adds both.
        let counters: [(&str, &str, u64); 10] = [
            (
                "osprey_tsdb_samples_appended",
                "Samples committed to the store",
                c.samples_appended_total,
            ),
            (
                "osprey_tsdb_series_created",
                "Series created in the head",
                c.series_created_total,
            ),
            (
                "osprey_tsdb_wal_writes",
                "Records written to the write-ahead log",
                c.wal_writes_total,
            ),
            (
                "osprey_tsdb_wal_fsyncs",
                "fsync calls on the write-ahead log.",
                c.wal_fsyncs_total,
            ),
            (
                "osprey_tsdb_wal_corruptions_repaired",
                "Corrupt write-ahead log tails truncated on start",
                c.wal_corruptions_repaired_total,
            ),
            (
                "osprey_tsdb_compactions",
                "Compactions completed",
                c.compactions_total,
            ),
            (
                "osprey_tsdb_compactions_failed",
                "Compactions that failed",
                c.compactions_failed_total,
            ),
            (
                "osprey_tsdb_head_truncations",
                "Head truncations",
                c.head_truncations_total,
            ),
            (
                "osprey_tsdb_blocks_deleted_by_retention",
                "Blocks deleted by the retention policy",
                c.blocks_deleted_by_retention_total,
            ),
            (
                "osprey_tsdb_out_of_order_samples",
                "Samples accepted with a timestamp older than their series' newest",
                c.out_of_order_samples_total,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric_encoder =
                encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric_encoder)?;
        }
        let gauges: [(&str, &str, u64); 4] = [
            (
                "osprey_tsdb_head_series",
                "Series in the head",
                c.head_series,
            ),
            (
                "osprey_tsdb_head_chunks",
                "Chunks in the head",
                c.head_chunks,
            ),
            (
                "osprey_tsdb_blocks_loaded",
                "Persistent blocks loaded",
                c.blocks_loaded,
            ),
            (
                "osprey_tsdb_storage_blocks_bytes",
                "Bytes used by persistent blocks",
                c.storage_blocks_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric_encoder =
                encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric_encoder)?;
        }
        encode_tier_metrics(&c, &mut encoder)?;
        encode_exemplar_metrics(&self.storage.exemplar_counters(), &mut encoder)?;
        encode_limit_metrics(&self.storage.series_limit_stats(), &mut encoder)
    }
}

/// The resolution tiers (`storage.tiers`, `docs/configuration.md`): blocks
/// and bytes per downsampled tier, and the downsampling rounds, in the
/// shape of Prometheus's `prometheus_tsdb_blocks_loaded` and
/// `prometheus_tsdb_compactions_total`. Nothing without tiers.
fn encode_tier_metrics(
    c: &model::storage::StorageCounters,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    if c.tiers.is_empty() {
        return Ok(());
    }
    use prometheus_client::metrics::MetricType;
    let resolutions: Vec<String> = c
        .tiers
        .iter()
        .map(|t| model::duration::format_duration_ms(t.resolution_ms))
        .collect();
    for (name, help, value) in [
        (
            "osprey_tsdb_tier_blocks",
            "Blocks loaded in each downsampled tier",
            (|t: &model::storage::TierCounters| t.blocks)
                as fn(&model::storage::TierCounters) -> u64,
        ),
        (
            "osprey_tsdb_tier_bytes",
            "Bytes used by each downsampled tier's blocks",
            |t| t.bytes,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (t, resolution) in c.tiers.iter().zip(&resolutions) {
            let labels = [("resolution", resolution.as_str())];
            family
                .encode_family(&labels)?
                .encode_gauge(&i64::try_from(value(t)).unwrap_or(i64::MAX))?;
        }
    }
    for (name, help, value) in [
        (
            "osprey_tsdb_downsamples",
            "Downsampling rounds completed (every tier built and compacted)",
            c.downsamples_total,
        ),
        (
            "osprey_tsdb_downsamples_failed",
            "Downsampling rounds that failed",
            c.downsamples_failed_total,
        ),
    ] {
        let counter = ConstCounter::new(value);
        let metric_encoder = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(metric_encoder)?;
    }
    let gauge = ConstGauge::new(c.last_downsample_seconds);
    let metric_encoder = encoder.encode_descriptor(
        "osprey_tsdb_last_downsample_duration_seconds",
        "How long the last downsampling round took",
        None,
        gauge.metric_type(),
    )?;
    gauge.encode(metric_encoder)
}

/// The series limits (`docs/limits.md`): refusals by limit and writer,
/// the limits in force and the head's count against the global one.
fn encode_limit_metrics(
    stats: &model::limits::LimitStats,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "osprey_series_limit_rejections",
        "Samples of new series refused by a series limit, by limit and writer (kind job or sender, name; both empty for writers without one)",
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for r in &stats.rejections {
        let (kind, name) = match &r.origin {
            Some(origin) => (origin.kind(), origin.name()),
            None => ("", ""),
        };
        let labels = [("limit", r.limit.name()), ("kind", kind), ("name", name)];
        family
            .encode_family(&labels)?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&r.count, None)?;
    }
    let mut family = encoder.encode_descriptor(
        "osprey_series_limit",
        "A configured series limit (0: none), globally (kind and name empty) and per job or sender",
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (kind, name, limit, value) in stats.spec.configured() {
        let labels = [("limit", limit.name()), ("kind", kind), ("name", name)];
        family
            .encode_family(&labels)?
            .encode_gauge(&(value as i64))?;
    }
    let mut family = encoder.encode_descriptor(
        "osprey_series_limit_head_series",
        "Head series counted against max_head_series: the whole head (kind and name empty), or those a job or sender with its own limit created",
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    let whole = [("kind", ""), ("name", "")];
    family
        .encode_family(&whole)?
        .encode_gauge(&(stats.head_series as i64))?;
    for (origin, count) in &stats.origin_head_series {
        let labels = [("kind", origin.kind()), ("name", origin.name())];
        family
            .encode_family(&labels)?
            .encode_gauge(&(*count as i64))?;
    }
    Ok(())
}

/// The exemplar store's metrics under Prometheus's names and help texts
/// (`tsdb/exemplar.go`), so dashboards made for Prometheus read them.
fn encode_exemplar_metrics(
    e: &model::exemplar::ExemplarCounters,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let counters: [(&str, &str, u64); 2] = [
        (
            "prometheus_tsdb_exemplar_exemplars_appended",
            "Total number of appended exemplars",
            e.appended_total,
        ),
        (
            "prometheus_tsdb_exemplar_out_of_order_exemplars",
            "Total number of out of order exemplar ingestion failed attempts",
            e.out_of_order_total,
        ),
    ];
    for (name, help, value) in counters {
        let counter = ConstCounter::new(value);
        let metric_encoder = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(metric_encoder)?;
    }
    let gauges: [(&str, &str, f64); 4] = [
        (
            "prometheus_tsdb_exemplar_exemplars_in_storage",
            "Number of exemplars currently in circular storage",
            e.in_storage as f64,
        ),
        (
            "prometheus_tsdb_exemplar_series_with_exemplars_in_storage",
            "Number of series with exemplars currently in circular storage",
            e.series_in_storage as f64,
        ),
        (
            "prometheus_tsdb_exemplar_max_exemplars",
            "Total number of exemplars the exemplar storage can store, resizeable",
            e.max_exemplars as f64,
        ),
        (
            "prometheus_tsdb_exemplar_last_exemplars_timestamp_seconds",
            "The timestamp of the oldest exemplar stored in circular storage. Useful to check for what time range the current exemplar buffer limit allows. This usually means the last timestamp for all exemplars for a typical setup. This is not true though if one of the series timestamp is in future compared to rest series",
            e.last_exemplars_timestamp_seconds,
        ),
    ];
    for (name, help, value) in gauges {
        let gauge = ConstGauge::new(value);
        let metric_encoder = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
        gauge.encode(metric_encoder)?;
    }
    Ok(())
}

/// Reads this process's `process_*` metrics on every scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(p) = exporters::process::ProcessStats::read_self() else {
            // procfs unreadable: leave the process metrics out this time.
            return Ok(());
        };
        // The OpenMetrics encoder adds `_total` to the counter's name.
        let cpu = ConstCounter::new(p.cpu_seconds);
        let metric_encoder = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(metric_encoder)?;
        let gauges: [(&str, &str, f64); 6] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                p.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                p.threads,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric_encoder =
                encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric_encoder)?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics_handler(State(state): State<AppState>) -> Response {
    let encoded = crate::blocking(move || {
        let mut text = state
            .metrics()
            .encode()
            .map_err(|_| ApiError::internal("encoding metrics failed"))?;
        // The alert manager's families go before the OpenMetrics `# EOF`.
        if let Some(alertmanager) = state.alertmanager()
            && let Some(body) = text.strip_suffix("# EOF\n")
        {
            text = format!("{body}{}# EOF\n", alertmanager.render_metrics());
        }
        Ok(text)
    })
    .await;
    match encoded {
        Ok(body) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Middleware on matched routes: times the request and records it under
/// the route pattern (never the raw path, which would let clients create
/// unbounded series).
pub(crate) async fn observe_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let handler = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics().observe_http(
        &handler,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
