//! One target's scrape loop: fetch on a fixed phase of the interval, parse,
//! label, limit, append, and mark vanished series stale.
//!
//! Each scrape goes into one appender and one commit, holding the samples,
//! the staleness markers of series that vanished since the last successful
//! scrape, and the five synthetic series (`up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`,
//! `scrape_series_added`). A failed scrape (HTTP error, timeout, parse
//! error, a limit) stores no samples, marks every series of the previous
//! scrape stale and writes `up` 0. Stopping a loop marks all its series,
//! synthetic ones included, stale.
//!
//! Parsing and appending run on tokio's blocking pool: the appender's
//! commit can wait for an fsync (an unsynced commit, as scrapes make,
//! syncs at most once a second, for every writer).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use model::exposition::{Format, LazyEntry, MetricType, Parser, content_type_format};
use model::histogram::{FloatHistogram, Histogram as NativeHistogram};
use model::labels::FastBuildHasher;
use model::limits::WriteOrigin;
use model::storage::{Appendable, Appender, SeriesHandle, StorageErrorKind};
use model::{Labels, METRIC_NAME, STALE_NAN};
use tokio::sync::watch;

use crate::relabel::process;
use crate::target::Target;
use crate::{MetricMetadata, TargetHealth};
use config::ScrapeConfig;
use config::client::describe_error;
use config::prometheus::scrape_protocol_media_type;

/// The Accept header Prometheus 3 sends by default: OpenMetrics
/// preferred, the text formats accepted (see [`accept_header`]).
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Prometheus 3's default `scrape_protocols`.
const DEFAULT_PROTOCOLS: &[&str] = &[
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
];

/// The default when native histograms are scraped, or created
/// timestamps ingested (Prometheus 3 makes this the global default with
/// `created-timestamp-zero-ingestion`): the protobuf format first.
const PROTO_FIRST_PROTOCOLS: &[&str] = &[
    "PrometheusProto",
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
];

/// The number of scrape protocols there are; Prometheus's first weight is
/// one more.
const N_PROTOCOLS: u32 = 5;

/// The Accept header for a job, built as Prometheus builds it: each of
/// its protocols (the default list when it names none) with weights
/// falling from `q=0.6`, UTF-8 names allowed on the 1.0.0 text formats,
/// then anything at the next weight.
fn accept_header(protocols: &[String], native_histograms: bool) -> String {
    let defaults = if native_histograms {
        PROTO_FIRST_PROTOCOLS
    } else {
        DEFAULT_PROTOCOLS
    };
    let names: Vec<&str> = if protocols.is_empty() {
        defaults.to_vec()
    } else {
        protocols.iter().map(String::as_str).collect()
    };
    let mut parts = Vec::new();
    let mut weight = N_PROTOCOLS + 1;
    for protocol in names {
        let Some(media_type) = scrape_protocol_media_type(protocol) else {
            continue;
        };
        let escaping = if matches!(protocol, "PrometheusText1.0.0" | "OpenMetricsText1.0.0") {
            ";escaping=allow-utf-8"
        } else {
            ""
        };
        parts.push(format!("{media_type}{escaping};q=0.{weight}"));
        weight = weight.saturating_sub(1);
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// What the API shows about a loop, updated after every scrape.
#[derive(Clone, Debug)]
pub(crate) struct LoopStatus {
    pub health: TargetHealth,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration_seconds: f64,
    pub metadata: Vec<MetricMetadata>,
}

impl LoopStatus {
    fn new() -> LoopStatus {
        LoopStatus {
            health: TargetHealth::Unknown,
            last_error: String::new(),
            last_scrape: None,
            last_scrape_duration_seconds: 0.0,
            metadata: Vec::new(),
        }
    }
}

/// A running loop: its target, its status and how to stop it.
pub(crate) struct LoopHandle {
    pub target: Target,
    /// The job settings the loop was started with; a reload with different
    /// settings restarts the loop.
    pub config: Arc<ScrapeConfig>,
    pub status: Arc<Mutex<LoopStatus>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopHandle {
    /// Signals the loop to stop; it writes its staleness markers and ends.
    pub fn signal_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the loop to have ended.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Everything a loop needs; shared with its task.
pub(crate) struct LoopContext {
    pub storage: Arc<dyn Appendable>,
    /// The job's client (credentials, TLS, `server_name`, proxies).
    pub client: config::HttpClient,
    pub config: Arc<ScrapeConfig>,
    pub target: Target,
    /// Seed mixed into the offset hash (Prometheus uses the external
    /// labels and host name), so that two servers scrape at different
    /// phases.
    pub offset_seed: u64,
    /// `--enable-feature=native-histograms`, for jobs that do not set
    /// `scrape_native_histograms`.
    pub native_histograms: bool,
    /// `--enable-feature=created-timestamp-zero-ingestion`: created
    /// timestamps become zero samples (`Appender::append_created_zero`),
    /// OpenMetrics `_created` series are not stored, and the protobuf
    /// format is asked for first.
    pub created_timestamps: bool,
}

impl LoopContext {
    fn native_histograms(&self) -> bool {
        self.config
            .histograms
            .native_enabled(self.native_histograms)
    }
}

pub(crate) fn start_loop(context: LoopContext) -> LoopHandle {
    let (stop, stop_receiver) = watch::channel(false);
    let status = Arc::new(Mutex::new(LoopStatus::new()));
    let target = context.target.clone();
    let config = context.config.clone();
    let task = tokio::spawn(run_loop(context, status.clone(), stop_receiver));
    LoopHandle {
        target,
        config,
        status,
        stop,
        task,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// How long to wait before the first scrape so that this target is
/// scraped at the same phase of every interval, spread over the interval
/// by a hash of the target (Prometheus's scheme).
fn initial_delay_ms(target: &Target, seed: u64, interval_ms: i64, now: i64) -> i64 {
    let interval = interval_ms.max(1) as u64;
    let offset = (model::hash::fnv1a_64(target.identity().as_bytes()) ^ seed) % interval;
    let phase = now.rem_euclid(interval as i64) as u64;
    ((offset + interval - phase) % interval) as i64
}

async fn run_loop(
    context: LoopContext,
    status: Arc<Mutex<LoopStatus>>,
    mut stop: watch::Receiver<bool>,
) {
    let interval_ms = context.target.scrape_interval_ms;
    let delay = initial_delay_ms(&context.target, context.offset_seed, interval_ms, now_ms());
    let stopped = async |stop: &mut watch::Receiver<bool>| {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(delay as u64)) => {}
        _ = stopped(&mut stop) => return,
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms as u64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let context = Arc::new(context);
    let request = ScrapeRequest::new(&context);
    let mut state = SeriesState::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped(&mut stop) => break,
        }
        let scrape_start = now_ms();
        let started = Instant::now();
        let fetched = tokio::select! {
            fetched = fetch(&context, &request) => fetched,
            _ = stopped(&mut stop) => break,
        };
        let fetch_seconds = started.elapsed().as_secs_f64();
        let job_context = context.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = ingest(&job_context, &mut state, fetched, scrape_start, started);
            (state, outcome)
        })
        .await;
        let (returned_state, outcome) = match outcome {
            Ok(result) => result,
            Err(error) => {
                tracing::error!(%error, "scrape ingestion task failed");
                return;
            }
        };
        state = returned_state;
        let mut status = status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        status.last_scrape = Some(UNIX_EPOCH + Duration::from_millis(scrape_start as u64));
        status.last_scrape_duration_seconds = outcome.duration_seconds.max(fetch_seconds);
        match outcome.error {
            None => {
                status.health = TargetHealth::Up;
                status.last_error.clear();
                status.metadata = outcome.metadata;
            }
            Some(error) => {
                status.health = TargetHealth::Down;
                status.last_error = error;
            }
        }
    }
    // Stopped: every series this loop wrote goes stale now.
    let job_context = context.clone();
    let _ = tokio::task::spawn_blocking(move || {
        write_end_of_run_staleness(&job_context, &state);
    })
    .await;
}

/// The most a scrape reserves for a body up front, whatever its
/// Content-Length says (it still grows past this as bytes arrive).
const MAX_BODY_RESERVE: u64 = 16 * 1024 * 1024;

/// How a body is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    Exposition(Format),
    Protobuf,
}

/// A fetched body and its format, or why there is none.
type Fetched = Result<(Vec<u8>, BodyFormat), String>;

/// What every request of a loop has in common, made once when the loop
/// starts rather than on each scrape (the URL parse and the header
/// strings were 2% of scraping CPU).
struct ScrapeRequest {
    /// The scrape URL, parsed; `None` when it does not parse, so that the
    /// request reports why.
    url: Option<reqwest::Url>,
    accept: reqwest::header::HeaderValue,
    timeout: Duration,
    timeout_seconds: reqwest::header::HeaderValue,
}

impl ScrapeRequest {
    fn new(context: &LoopContext) -> ScrapeRequest {
        let timeout = Duration::from_millis(context.target.scrape_timeout_ms.max(1) as u64);
        let accept = accept_header(
            &context.config.scrape_protocols,
            context.native_histograms() || context.created_timestamps,
        );
        ScrapeRequest {
            url: reqwest::Url::parse(&context.target.scrape_url).ok(),
            // Media types and weights are ASCII, so this always converts.
            accept: reqwest::header::HeaderValue::try_from(accept)
                .unwrap_or(reqwest::header::HeaderValue::from_static("*/*")),
            timeout,
            timeout_seconds: reqwest::header::HeaderValue::try_from(
                timeout.as_secs_f64().to_string(),
            )
            .unwrap_or(reqwest::header::HeaderValue::from_static("1")),
        }
    }
}

async fn fetch(context: &LoopContext, parts: &ScrapeRequest) -> Fetched {
    let config = &context.config;
    let timeout = parts.timeout;
    let work = async {
        // Building the request is inside the deadline too: it may read a
        // credentials file or fetch an OAuth2 token.
        let mut request = match &parts.url {
            Some(url) => {
                context
                    .client
                    .request_url(reqwest::Method::GET, url)
                    .await?
            }
            None => {
                context
                    .client
                    .request(reqwest::Method::GET, &context.target.scrape_url)
                    .await?
            }
        };
        request = request
            .header(reqwest::header::ACCEPT, parts.accept.clone())
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                parts.timeout_seconds.clone(),
            );
        let mut response = request
            .send()
            .await
            .map_err(|error| describe_error(&error))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("server returned HTTP status {status}"));
        }
        let format = body_format(
            response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .map(|value| value.to_str().unwrap_or("\u{fffd}")),
            config.fallback_scrape_protocol.as_deref(),
        )?;
        let limit = config.body_size_limit_bytes;
        // Sized from Content-Length so the body is not copied as it grows;
        // capped, since a target can claim any length.
        let cap = if limit > 0 { limit } else { MAX_BODY_RESERVE };
        let expected = response.content_length().unwrap_or(0).min(cap);
        let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| describe_error(&error))?
        {
            body.extend_from_slice(&chunk);
            if limit > 0 && body.len() as u64 > limit {
                return Err(format!("body size limit exceeded ({limit} bytes)"));
            }
        }
        Ok((body, format))
    };
    // One deadline over connecting, the request and the whole body, as
    // Prometheus's scrape context: a slow trickle of chunks is cut too.
    // (The client's own per-request timeout would be a second timer and a
    // wrapper around every body read, 2% of scraping CPU, for the same.)
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("context deadline exceeded after {timeout:?}")),
    }
}

/// The format of a body, decided as Prometheus 3 decides it: the one its
/// `Content-Type` names (OpenMetrics, the text format or protobuf, by
/// media type); a blank, unparsable or unknown one falls back to
/// `fallback_scrape_protocol`, and without one the scrape fails.
fn body_format(content_type: Option<&str>, fallback: Option<&str>) -> Result<BodyFormat, String> {
    let of_media = |content_type: &str| -> Option<BodyFormat> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case(crate::protobuf::MEDIA_TYPE) {
            Some(BodyFormat::Protobuf)
        } else if media_type.eq_ignore_ascii_case("application/openmetrics-text")
            || media_type.eq_ignore_ascii_case("text/plain")
        {
            Some(BodyFormat::Exposition(content_type_format(content_type)))
        } else {
            None
        }
    };
    let content_type = content_type.map(str::trim).unwrap_or("");
    if let Some(format) = of_media(content_type) {
        return Ok(format);
    }
    let fallback = fallback
        .and_then(scrape_protocol_media_type)
        .and_then(of_media);
    match (fallback, content_type.is_empty()) {
        (Some(format), _) => Ok(format),
        (None, true) => Err(
            "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target".to_string(),
        ),
        (None, false) => Err(format!(
            "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
        )),
    }
}

/// The scrape cache, which also tracks which series the last successful
/// scrape stored (for staleness).
///
/// Each series a target writes is keyed by its series text (name and label
/// set, byte for byte as written; see [`model::exposition::LazySample`]),
/// with the label set it is stored under (`None` when metric relabelling
/// drops it). Targets expose the same series scrape after scrape, so this
/// skips parsing, merging and relabelling labels for almost every sample,
/// as Prometheus's scrape cache does. Scrapes are numbered; an entry
/// remembers the scrape that last stored it, so finding the series that
/// vanished is one pass over the cache, with no per-sample set of label
/// sets to hash and compare.
#[derive(Default)]
struct SeriesState {
    cache: SeriesCache,
    /// The number of the scrape being ingested (starts at 1).
    generation: u64,
    /// The number of the last successful scrape; 0 when the last scrape
    /// failed or there was none, so nothing is "previous".
    last_ok: u64,
    /// Whether the report series were ever written.
    reported: bool,
    /// How many series the last successful scrape tracked for staleness
    /// (0 when the last scrape failed): when this scrape tracks all of
    /// them again, none vanished, and the pass over the whole cache that
    /// finds vanished series (1.3% of scraping CPU) is skipped.
    n_tracked: u64,
    /// The report series' label sets (in [`REPORT_NAMES`] order, made on
    /// the first scrape) and the store's handles for them: with labels
    /// built and looked up on every scrape, these five samples cost 2% of
    /// scraping CPU.
    report: Vec<(Labels, Option<SeriesHandle>)>,
}

/// The names of the report series, in the order [`ingest`] writes them.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

struct CacheEntry {
    labels: Option<Labels>,
    /// The store's handle for the series, once it handed one out.
    handle: Option<SeriesHandle>,
    /// Whether the labels break a label limit (checked once, when the
    /// entry is made; limits do not change while a loop runs).
    over_limits: bool,
    /// The metric family when the metric name ends in `_created`: in
    /// OpenMetrics such a series of a counter, histogram or summary family
    /// holds creation times and is skipped.
    created_family: Option<Box<str>>,
    /// With created timestamps ingested, an OpenMetrics sample's key into
    /// its scrape's `_created` values ([`openmetrics_created`]): the
    /// family and the labels without `le` or `quantile`.
    created_key: Option<Box<str>>,
    /// The created timestamp last handed to the store for this series
    /// (0 for none), and the scrape that handed it or found it unchanged:
    /// while it stays the same from one successful scrape to the next,
    /// the store, which would skip it, is not asked again.
    created_sent: i64,
    created_generation: u64,
    /// Where the series was in the order of the last scrape that held it.
    position: u32,
    /// The last scrape whose body held this series.
    seen: u64,
    /// The last scrape that stored it without an explicit timestamp.
    tracked: u64,
    /// `tracked` before this scrape updated it.
    tracked_before: u64,
}

impl CacheEntry {
    /// Whether the last successful scrape (`last_ok`, which is before
    /// `generation`) stored this series.
    fn in_previous(&self, generation: u64, last_ok: u64) -> bool {
        last_ok != 0
            && (self.tracked == last_ok
                || (self.tracked == generation && self.tracked_before == last_ok))
    }
}

/// The cache entries of one target, found by series text.
///
/// A lookup by hash touches three scattered places in memory (the table,
/// the key, the entry); with a few hundred thousand series cached across
/// targets those are cache misses, and they showed as 15% of scraping CPU.
/// But targets write their series in the same order every scrape, so each
/// sample is first compared with the series at the same place in the last
/// scrape, kept as one contiguous text in order, and only a mismatch goes
/// to the hash table. Both the expected order and the entries (created in
/// exposition order) are then read front to back, which the processor
/// prefetches.
#[derive(Default)]
struct SeriesCache {
    /// The entries; `None` marks a slot freed for reuse.
    entries: Vec<Option<CacheEntry>>,
    free: Vec<u32>,
    /// Series text to slot.
    index: HashMap<Box<[u8]>, u32, FastBuildHasher>,
    /// The series of the last parsed scrape in order. Every slot in it is
    /// live and still holds that series: slots are freed only for series
    /// the last successful scrape did not write, and every parsed scrape
    /// replaces this order.
    previous: ScrapeOrder,
    /// The order being recorded by the scrape being parsed.
    current: ScrapeOrder,
    /// Where in `previous` the next sample is expected.
    cursor: usize,
    /// The scrape being parsed, and how many entries it found so far.
    generation: u64,
    n_seen: usize,
}

/// The series texts of one scrape, concatenated, with the end of each in
/// `text` and its slot.
#[derive(Default)]
struct ScrapeOrder {
    text: Vec<u8>,
    series: Vec<(usize, u32)>,
}

impl ScrapeOrder {
    fn clear(&mut self) {
        self.text.clear();
        self.series.clear();
    }

    /// The text and slot of the series at `position`.
    fn get(&self, position: usize) -> Option<(&[u8], u32)> {
        let (end, slot) = *self.series.get(position)?;
        let start = match position.checked_sub(1) {
            Some(before) => self.series.get(before).map_or(0, |(end, _)| *end),
            None => 0,
        };
        Some((self.text.get(start..end)?, slot))
    }
}

impl SeriesCache {
    /// Starts recording the order of scrape `generation`.
    fn begin_scrape(&mut self, generation: u64) {
        self.current.clear();
        self.cursor = 0;
        self.generation = generation;
        self.n_seen = 0;
    }

    /// Ends the recording: the order just parsed is what the next scrape
    /// expects (also after a parse error: nothing is freed then, so its
    /// slots are all live).
    fn end_scrape(&mut self) {
        std::mem::swap(&mut self.previous, &mut self.current);
        self.current.clear();
    }

    /// The slot of `series`, if cached, and records it in this scrape's
    /// order (marking it seen).
    fn find(&mut self, series: &[u8]) -> Option<usize> {
        let slot = match self.previous.get(self.cursor) {
            Some((expected, slot)) if expected == series => {
                self.cursor += 1;
                slot
            }
            _ => {
                let slot = *self.index.get(series)?;
                // Resynchronise after a series was added or removed.
                if let Some(position) = self.position_in_previous(slot) {
                    self.cursor = position + 1;
                }
                slot
            }
        };
        self.record(series, slot);
        Some(slot as usize)
    }

    /// Where the last scrape had `slot`, from the entry's note of it.
    fn position_in_previous(&self, slot: u32) -> Option<usize> {
        let entry = self.entries.get(slot as usize)?.as_ref()?;
        let position = entry.position as usize;
        match self.previous.series.get(position) {
            Some((_, at)) if *at == slot => Some(position),
            _ => None,
        }
    }

    fn record(&mut self, series: &[u8], slot: u32) {
        let position = self.current.series.len();
        self.current.text.extend_from_slice(series);
        self.current.series.push((self.current.text.len(), slot));
        if let Some(Some(entry)) = self.entries.get_mut(slot as usize) {
            entry.position = u32::try_from(position).unwrap_or(u32::MAX);
            if entry.seen != self.generation {
                entry.seen = self.generation;
                self.n_seen += 1;
            }
        }
    }

    /// Caches a new series and records it in this scrape's order.
    fn insert(&mut self, series: &[u8], entry: CacheEntry) -> usize {
        let slot = match self.free.pop() {
            Some(slot) if (slot as usize) < self.entries.len() => {
                self.entries[slot as usize] = Some(entry);
                slot
            }
            _ => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(series.into(), slot);
        self.record(series, slot);
        slot as usize
    }

    /// The store's handle of the series expected `distance` samples after
    /// the next one, if it has one.
    fn handle_ahead(&self, distance: usize) -> Option<&SeriesHandle> {
        let (_, slot) = *self.previous.series.get(self.cursor + distance)?;
        self.entries.get(slot as usize)?.as_ref()?.handle.as_ref()
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut CacheEntry> {
        self.entries.get_mut(slot)?.as_mut()
    }

    fn values(&self) -> impl Iterator<Item = &CacheEntry> {
        self.entries.iter().flatten()
    }

    /// Forgets the series the last parsed scrape did not write.
    fn retain_seen(&mut self) {
        if self.n_seen == self.index.len() {
            return;
        }
        let generation = self.generation;
        let entries = &mut self.entries;
        let free = &mut self.free;
        self.index.retain(|_, slot| {
            let Some(cell) = entries.get_mut(*slot as usize) else {
                return false;
            };
            let keep = cell.as_ref().is_some_and(|entry| entry.seen == generation);
            if !keep {
                *cell = None;
                free.push(*slot);
            }
            keep
        });
    }
}

impl SeriesState {
    /// The label sets the last successful scrape stored.
    fn previous_series(&self) -> Vec<Labels> {
        self.cache
            .values()
            .filter(|e| self.last_ok != 0 && e.tracked == self.last_ok)
            .filter_map(|e| e.labels.clone())
            .collect()
    }
}

struct IngestOutcome {
    error: Option<String>,
    duration_seconds: f64,
    metadata: Vec<MetricMetadata>,
}

struct Parsed {
    scraped: u64,
    /// Samples stored (after metric relabelling and limits).
    appended: u64,
    /// Series stored now that the previous successful scrape did not store.
    added: u64,
    metadata: Vec<MetricMetadata>,
    /// New series the store's series limits refused, and the first
    /// refusal's message.
    refused: u64,
    refusal: Option<String>,
    /// Series tracked for staleness, and how many of them the previous
    /// successful scrape tracked too.
    tracked: u64,
    retained: u64,
}

fn ingest(
    context: &LoopContext,
    state: &mut SeriesState,
    fetched: Fetched,
    scrape_start: i64,
    started: Instant,
) -> IngestOutcome {
    state.generation += 1;
    let generation = state.generation;
    let last_ok = state.last_ok;
    let mut appender = context.storage.appender();
    appender.set_origin(&WriteOrigin::Job(context.config.job_name.clone()));
    let parsed = fetched.and_then(|(body, format)| {
        state.cache.begin_scrape(generation);
        let staging = Staging::new(
            &context.config,
            appender.as_mut(),
            scrape_start,
            generation,
            last_ok,
        );
        let parsed = match format {
            BodyFormat::Exposition(format) => {
                parse_and_append(context, &body, format, &mut state.cache, staging)
            }
            BodyFormat::Protobuf => {
                parse_and_append_protobuf(context, &body, &mut state.cache, staging)
            }
        };
        state.cache.end_scrape();
        parsed
    });
    let mut limit_error = None;
    let (tracked, retained) = match &parsed {
        Ok(parsed) => (parsed.tracked, parsed.retained),
        Err(_) => (0, 0),
    };
    let (error, scraped, post_relabel, added, metadata) = match parsed {
        Ok(parsed) => {
            if let Some(first) = parsed.refusal {
                limit_error = Some(format!(
                    "{} new series refused by the series limits (the samples of existing series were stored): {first}",
                    parsed.refused
                ));
            }
            (
                None,
                parsed.scraped,
                parsed.appended,
                parsed.added,
                parsed.metadata,
            )
        }
        Err(error) => {
            // Nothing of a failed scrape is stored.
            appender.rollback();
            (Some(error), 0, 0, 0, Vec::new())
        }
    };
    // Series the previous successful scrape stored that this one did not
    // (all of them when this scrape failed) get a staleness marker.
    let succeeded = error.is_none();
    // Every series the previous successful scrape tracked is tracked
    // again, so none vanished: no need to look.
    let none_vanished = last_ok == 0 || (succeeded && retained == state.n_tracked);
    let mut vanished: Vec<Labels> = Vec::new();
    for entry in state.cache.values().filter(|_| !none_vanished) {
        if entry.in_previous(generation, last_ok)
            && (!succeeded || entry.tracked != generation)
            && let Some(labels) = &entry.labels
        {
            vanished.push(labels.clone());
        }
    }
    if succeeded && !vanished.is_empty() {
        // Two written forms can map to one stored series (relabelling,
        // honor_labels); a series still stored under another form has not
        // vanished. Only needed when something vanished.
        let current: HashSet<&Labels, FastBuildHasher> = state
            .cache
            .values()
            .filter(|e| e.tracked == generation)
            .filter_map(|e| e.labels.as_ref())
            .collect();
        vanished.retain(|labels| !current.contains(labels));
    }
    for labels in &vanished {
        let _ = appender.append(labels, scrape_start, STALE_NAN);
    }
    if succeeded {
        // Forget series the target no longer writes.
        state.cache.retain_seen();
    }
    let duration_seconds = started.elapsed().as_secs_f64();
    // A scrape whose new series the limits refused reports down, as one
    // over `sample_limit` does, so that the target-down alert says its
    // data is incomplete; unlike that, what could be stored was stored.
    let up = if succeeded && limit_error.is_none() {
        1.0
    } else {
        0.0
    };
    let values = [
        up,
        duration_seconds,
        scraped as f64,
        post_relabel as f64,
        added as f64,
    ];
    if state.report.is_empty() {
        state.report = REPORT_NAMES
            .iter()
            .map(|name| (report_labels(&context.target.labels, name), None))
            .collect();
    }
    for ((labels, handle), value) in state.report.iter_mut().zip(values) {
        let by_handle = match handle {
            Some(handle) => appender
                .append_handle(handle, scrape_start, value)
                .unwrap_or(false),
            None => false,
        };
        if by_handle {
            continue;
        }
        match appender.append_with_handle(labels, scrape_start, value) {
            Ok(new_handle) => *handle = new_handle,
            Err(error) => tracing::debug!(%error, "report sample not stored"),
        }
    }
    state.reported = true;
    // Nobody waits on a scrape's samples, so they need not wait for the
    // disk: the store syncs them shortly (within a second for tsdb).
    let error = error.or(limit_error);
    let error = match appender.commit_unsynced() {
        Ok(()) => error,
        Err(commit_error) => {
            Some(error.unwrap_or_else(|| format!("storing the scrape failed: {commit_error}")))
        }
    };
    state.last_ok = if succeeded { generation } else { 0 };
    state.n_tracked = if succeeded { tracked } else { 0 };
    IngestOutcome {
        error,
        duration_seconds,
        metadata,
    }
}

fn report_labels(target_labels: &Labels, name: &str) -> Labels {
    Labels::from_pairs(
        target_labels
            .iter()
            .map(|label| (label.name.as_str(), label.value.as_str()))
            .filter(|(label_name, _)| *label_name != METRIC_NAME)
            .chain(std::iter::once((METRIC_NAME, name))),
    )
}

fn write_end_of_run_staleness(context: &LoopContext, state: &SeriesState) {
    let previous = state.previous_series();
    if previous.is_empty() && !state.reported {
        return;
    }
    let now = now_ms();
    let mut appender = context.storage.appender();
    for series in &previous {
        let _ = appender.append(series, now, STALE_NAN);
    }
    if state.reported {
        for name in REPORT_NAMES {
            let _ = appender.append(&report_labels(&context.target.labels, name), now, STALE_NAN);
        }
    }
    if let Err(error) = appender.commit() {
        tracing::warn!(%error, target = %context.target.scrape_url, "writing staleness markers failed");
    }
}

/// How many samples ahead the scrape loop asks the store to prefetch a
/// series: far enough that memory (about 100 ns away) answers before the
/// append, near enough that the lines are still cached when it comes.
const PREFETCH_DISTANCE: usize = 8;

/// One scrape's appender with its settings and counters: what every
/// parsed sample goes through ([`Staging::store`]), whatever the format.
struct Staging<'a> {
    config: &'a ScrapeConfig,
    appender: &'a mut dyn Appender,
    scrape_start: i64,
    generation: u64,
    last_ok: u64,
    scraped: u64,
    /// Samples stored (after metric relabelling and limits).
    appended: u64,
    post_relabel: u64,
    added: u64,
    refused: u64,
    refusal: Option<String>,
    /// Series tracked for staleness by this scrape, and how many of them
    /// the previous successful scrape tracked too.
    tracked: u64,
    retained: u64,
}

/// The value of a parsed sample.
#[derive(Clone, Copy)]
enum ScrapedValue<'a> {
    Float(f64),
    Histogram(&'a NativeHistogram),
    FloatHistogram(&'a FloatHistogram),
}

impl<'a> Staging<'a> {
    fn new(
        config: &'a ScrapeConfig,
        appender: &'a mut dyn Appender,
        scrape_start: i64,
        generation: u64,
        last_ok: u64,
    ) -> Staging<'a> {
        Staging {
            config,
            appender,
            scrape_start,
            generation,
            last_ok,
            scraped: 0,
            appended: 0,
            post_relabel: 0,
            added: 0,
            refused: 0,
            refusal: None,
            tracked: 0,
            retained: 0,
        }
    }

    fn finish(self, metadata: Vec<MetricMetadata>) -> Parsed {
        Parsed {
            scraped: self.scraped,
            appended: self.appended,
            added: self.added,
            metadata,
            refused: self.refused,
            refusal: self.refusal,
            tracked: self.tracked,
            retained: self.retained,
        }
    }

    /// Stages one sample of the cached series `entry`, applying
    /// honor_timestamps, the label and sample limits and the store's series
    /// limits, and tracking the series for staleness. An error fails the
    /// scrape.
    fn store(
        &mut self,
        entry: &mut CacheEntry,
        value: ScrapedValue<'_>,
        timestamp_ms: Option<i64>,
        created_ms: Option<i64>,
        exemplars: &[model::exposition::Exemplar<'_>],
    ) -> Result<(), String> {
        let config = self.config;
        let (generation, last_ok) = (self.generation, self.last_ok);
        self.scraped += 1;
        let Some(series) = entry.labels.as_ref() else {
            return Ok(());
        };
        if entry.over_limits {
            check_label_limits(config, series)?;
        }
        let explicit = config.honor_timestamps && timestamp_ms.is_some();
        let mut counted_added = false;
        let mut retracked = None;
        if !explicit && entry.tracked != generation {
            if entry.in_previous(generation, last_ok) {
                self.retained += 1;
            } else {
                self.added += 1;
                counted_added = true;
            }
            self.tracked += 1;
            retracked = Some((entry.tracked, entry.tracked_before));
            entry.tracked_before = entry.tracked;
            entry.tracked = generation;
        }
        let timestamp = if explicit {
            timestamp_ms.unwrap_or(self.scrape_start)
        } else {
            self.scrape_start
        };
        self.post_relabel += 1;
        if config.sample_limit > 0 && self.post_relabel > config.sample_limit {
            return Err(format!(
                "sample_limit exceeded (limit: {})",
                config.sample_limit
            ));
        }
        if let Some(created) = created_ms.filter(|created| *created != 0) {
            (entry.created_sent, entry.created_generation) = self.store_created_zero(
                (entry.created_sent, entry.created_generation),
                series,
                value,
                timestamp,
                created,
            );
        }
        let stored = match value {
            ScrapedValue::Float(value) => {
                let by_handle = match &entry.handle {
                    Some(handle) => self
                        .appender
                        .append_handle(handle, timestamp, value)
                        .unwrap_or(false),
                    None => false,
                };
                if by_handle {
                    Ok(())
                } else {
                    self.appender
                        .append_with_handle(series, timestamp, value)
                        .map(|handle| entry.handle = handle)
                }
            }
            ScrapedValue::Histogram(histogram) => self
                .appender
                .append_int_histogram(series, timestamp, histogram),
            ScrapedValue::FloatHistogram(histogram) => {
                self.appender.append_histogram(series, timestamp, histogram)
            }
        };
        match stored {
            Ok(()) => self.appended += 1,
            Err(error)
                if matches!(
                    error.kind(),
                    StorageErrorKind::Limit | StorageErrorKind::RateLimit
                ) =>
            {
                // The series was not created: it is not this scrape's
                // (no staleness marker for it later, not added).
                if let Some((tracked, tracked_before)) = retracked {
                    entry.tracked = tracked;
                    entry.tracked_before = tracked_before;
                    self.tracked -= 1;
                    if counted_added {
                        self.added -= 1;
                    } else {
                        self.retained -= 1;
                    }
                }
                self.refused += 1;
                if self.refusal.is_none() {
                    self.refusal = Some(error.to_string());
                }
                return Ok(());
            }
            Err(error) => {
                tracing::debug!(%error, %series, "sample not stored");
                return Ok(());
            }
        }
        let native = !matches!(value, ScrapedValue::Float(_));
        for exemplar in exemplars {
            append_exemplar(self.appender, series, exemplar, self.scrape_start, native);
        }
        Ok(())
    }
}

impl Staging<'_> {
    /// Hands a sample's created timestamp to the store
    /// (`Appender::append_created_zero`), which stages a zero sample at
    /// it unless it is not newer than the series' newest sample, as
    /// Prometheus's scrape loop does with `created-timestamp-zero-ingestion`.
    /// A created timestamp the last successful scrape handed over already
    /// is not handed again: the store would skip it. Errors are logged
    /// and fail nothing (Prometheus logs them at debug level too). Takes
    /// and returns the entry's `created_sent` and `created_generation`.
    fn store_created_zero(
        &mut self,
        (sent, sent_generation): (i64, u64),
        series: &Labels,
        value: ScrapedValue<'_>,
        timestamp: i64,
        created: i64,
    ) -> (i64, u64) {
        let generation = self.generation;
        if sent == created && self.last_ok != 0 && sent_generation == self.last_ok {
            return (sent, generation);
        }
        let result = match value {
            ScrapedValue::Float(_) => self
                .appender
                .append_created_zero(series, timestamp, created),
            ScrapedValue::Histogram(histogram) => self.appender.append_histogram_created_zero(
                series,
                timestamp,
                created,
                &histogram.to_float(),
            ),
            ScrapedValue::FloatHistogram(histogram) => self
                .appender
                .append_histogram_created_zero(series, timestamp, created, histogram),
        };
        match result {
            Ok(_) => (created, generation),
            Err(error) => {
                tracing::debug!(%error, %series, created, "created timestamp not stored");
                (0, 0)
            }
        }
    }
}

/// A new cache entry for a parsed series.
fn new_entry(
    config: &ScrapeConfig,
    target_labels: &Labels,
    name: &str,
    labels: &[(Cow<'_, str>, Cow<'_, str>)],
) -> CacheEntry {
    let series = sample_series(config, target_labels, name, labels);
    let over_limits = series
        .as_ref()
        .is_some_and(|series| check_label_limits(config, series).is_err());
    CacheEntry {
        labels: series,
        handle: None,
        over_limits,
        created_family: name.strip_suffix("_created").map(Box::from),
        created_key: None,
        created_sent: 0,
        created_generation: 0,
        position: 0,
        seen: 0,
        tracked: 0,
        tracked_before: 0,
    }
}

/// The HELP, TYPE and UNIT a scrape found, in the order it found them.
#[derive(Default)]
struct MetadataCollector {
    metadata: Vec<MetricMetadata>,
    index: HashMap<String, usize>,
    updates: Vec<(usize, MetadataUpdate)>,
}

impl MetadataCollector {
    fn entry(&mut self, metric: &str) -> usize {
        if let Some(index) = self.index.get(metric) {
            return *index;
        }
        self.metadata.push(MetricMetadata {
            metric: metric.to_string(),
            metric_type: MetricType::Unknown,
            help: String::new(),
            unit: String::new(),
        });
        self.index
            .insert(metric.to_string(), self.metadata.len() - 1);
        self.metadata.len() - 1
    }

    fn update(&mut self, metric: &str, update: MetadataUpdate) {
        let index = self.entry(metric);
        self.updates.push((index, update));
    }

    fn finish(mut self) -> Vec<MetricMetadata> {
        for (index, update) in self.updates {
            let entry = &mut self.metadata[index];
            match update {
                MetadataUpdate::Help(text) => entry.help = text,
                MetadataUpdate::Type(kind) => entry.metric_type = kind,
                MetadataUpdate::Unit(unit) => entry.unit = unit,
            }
        }
        self.metadata
    }
}

/// The family of an OpenMetrics sample of a counter, summary or classic
/// histogram, the types that have a created timestamp (Prometheus's
/// `typeRequiresST`), with that type: the family a `# TYPE` line named,
/// whose name the sample's is, or is with `_total` (counters), `_bucket`
/// (histograms), `_count`, `_sum` or `_created` after it.
fn created_family<'a>(
    types: &HashMap<String, MetricType>,
    name: &'a str,
) -> Option<(&'a str, MetricType)> {
    let candidates = std::iter::once((name, "")).chain(
        ["_total", "_bucket", "_count", "_sum", "_created"]
            .into_iter()
            .filter_map(|suffix| Some((name.strip_suffix(suffix)?, suffix))),
    );
    for (family, suffix) in candidates {
        let kind = match types.get(family) {
            Some(kind) => *kind,
            None => continue,
        };
        let fits = match kind {
            MetricType::Counter => matches!(suffix, "" | "_total" | "_created"),
            MetricType::Summary => matches!(suffix, "" | "_count" | "_sum" | "_created"),
            MetricType::Histogram => matches!(suffix, "_bucket" | "_count" | "_sum" | "_created"),
            _ => false,
        };
        if fits {
            return Some((family, kind));
        }
    }
    None
}

/// The key that joins an OpenMetrics sample to its `_created` line
/// ([`openmetrics_created`]): the family, then the labels in name order
/// without empty values and without `excluded` (`le` of a histogram's
/// buckets, `quantile` of a summary's quantiles), as Prometheus's
/// OpenMetrics parser matches them (`seriesHash`).
fn created_key<'a>(
    family: &str,
    labels: impl IntoIterator<Item = &'a (impl AsRef<str> + 'a, impl AsRef<str> + 'a)>,
    excluded: Option<&str>,
) -> String {
    let mut pairs: Vec<(&str, &str)> = labels
        .into_iter()
        .map(|(name, value)| (name.as_ref(), value.as_ref()))
        .filter(|(name, value)| !value.is_empty() && Some(*name) != excluded)
        .collect();
    pairs.sort_unstable();
    let mut key = String::from(family);
    for (name, value) in pairs {
        key.push('\u{ff}');
        key.push_str(name);
        key.push('\u{fe}');
        key.push_str(value);
    }
    key
}

/// The created-timestamp key of a sample (see [`created_key`]); `None`
/// for one of a family without created timestamps.
fn sample_created_key(
    types: &HashMap<String, MetricType>,
    name: &str,
    labels: &[(Cow<'_, str>, Cow<'_, str>)],
) -> Option<Box<str>> {
    let (family, kind) = created_family(types, name)?;
    let excluded = match kind {
        MetricType::Histogram => Some("le"),
        MetricType::Summary => Some("quantile"),
        _ => None,
    };
    Some(created_key(family, labels, excluded).into_boxed_str())
}

/// The `_created` values of an OpenMetrics body's counters, summaries
/// and histograms, in milliseconds (seconds times 1000, truncated, as
/// Prometheus converts them), by [`created_key`]. Prometheus's parser
/// looks ahead from each sample for the `_created` line of its label set
/// within its family; reading them all first finds the same line in a
/// body laid out as OpenMetrics lays families out. A body that does not
/// parse gives what was read before the error (the main pass reports it).
fn openmetrics_created(body: &[u8]) -> HashMap<String, i64> {
    let mut created = HashMap::new();
    let mut types: HashMap<String, MetricType> = HashMap::new();
    let mut parser = Parser::new(body, Format::OpenMetrics);
    while let Some(Ok(entry)) = parser.next_lazy() {
        let sample = match entry {
            LazyEntry::Type { metric, kind } => {
                types.insert(metric.into_owned(), kind);
                continue;
            }
            LazyEntry::Sample(sample) => sample,
            _ => continue,
        };
        // Only `_created` lines are parsed further.
        if !sample.series().windows(8).any(|w| w == b"_created") {
            continue;
        }
        let Ok((name, labels)) = sample.parse_series() else {
            break;
        };
        let Some(family) = name.strip_suffix("_created") else {
            continue;
        };
        if !matches!(
            types.get(family),
            Some(MetricType::Counter | MetricType::Summary | MetricType::Histogram)
        ) {
            continue;
        }
        let ms = (sample.value * 1000.0) as i64;
        created.insert(created_key(family, &labels, None), ms);
    }
    created
}

/// Parses a text body and stages its samples, applying honor_labels,
/// honor_timestamps, metric relabelling and the limits. On error the
/// caller rolls the appender back.
fn parse_and_append(
    context: &LoopContext,
    body: &[u8],
    format: Format,
    cache: &mut SeriesCache,
    mut staging: Staging<'_>,
) -> Result<Parsed, String> {
    let config = &context.config;
    let target_labels = &context.target.labels;
    let mut types: HashMap<String, MetricType> = HashMap::new();
    let mut metadata = MetadataCollector::default();
    let histograms = &config.histograms;
    let mut nhcb = (histograms.convert_classic_histograms_to_nhcb && context.native_histograms())
        .then(NhcbGroups::default);
    // With created timestamps ingested, an OpenMetrics body's `_created`
    // values, read first since they follow the samples they belong to.
    let created = (context.created_timestamps && format == Format::OpenMetrics)
        .then(|| openmetrics_created(body));
    let created = created.as_ref().filter(|created| !created.is_empty());

    // The last scrape's count, plus the report series.
    staging.appender.reserve(cache.previous.series.len() + 5);
    let mut parser = Parser::new(body, format);
    while let Some(entry) = parser.next_lazy() {
        let entry = entry.map_err(|error| format!("parsing the scrape: {error}"))?;
        let sample = match entry {
            LazyEntry::Help { metric, text } => {
                metadata.update(&metric, MetadataUpdate::Help(text.into_owned()));
                continue;
            }
            LazyEntry::Type { metric, kind } => {
                metadata.update(&metric, MetadataUpdate::Type(kind));
                types.insert(metric.into_owned(), kind);
                continue;
            }
            LazyEntry::Unit { metric, unit } => {
                metadata.update(&metric, MetadataUpdate::Unit(unit.into_owned()));
                continue;
            }
            LazyEntry::Sample(sample) => sample,
        };
        if let Some(groups) = nhcb.as_mut() {
            let (name, labels) = sample
                .parse_series()
                .map_err(|error| format!("parsing the scrape: {error}"))?;
            if groups.add(&types, &name, &labels, sample.value, sample.timestamp_ms)
                && !histograms.scrape_classic_histograms
            {
                continue;
            }
        }
        let slot = match cache.find(sample.series()) {
            Some(slot) => slot,
            None => {
                // Only a series text not in the cache is parsed (with all
                // the parser's checks; an error fails the scrape as in a
                // full parse). A text in the cache is byte-identical to
                // one parsed and accepted before, so it would parse to
                // the same name and labels.
                let (name, labels) = sample
                    .parse_series()
                    .map_err(|error| format!("parsing the scrape: {error}"))?;
                let mut entry = new_entry(config, target_labels, &name, &labels);
                if context.created_timestamps && format == Format::OpenMetrics {
                    entry.created_key = sample_created_key(&types, &name, &labels);
                }
                cache.insert(sample.series(), entry)
            }
        };
        if let Some(handle) = cache.handle_ahead(PREFETCH_DISTANCE) {
            staging.appender.prefetch_handle(handle);
        }
        let Some(entry) = cache.get_mut(slot) else {
            continue;
        };
        // With created timestamps ingested, OpenMetrics `_created` series
        // of counters, histograms and summaries are creation times, not
        // samples: Prometheus 3 skips them then (its OpenMetrics parser's
        // `skipCTSeries`), and stores them as series otherwise.
        if format == Format::OpenMetrics
            && context.created_timestamps
            && let Some(family) = &entry.created_family
            && matches!(
                types.get(family.as_ref()),
                Some(MetricType::Counter | MetricType::Histogram | MetricType::Summary)
            )
        {
            continue;
        }
        let created_ms = match (created, &entry.created_key) {
            (Some(created), Some(key)) => created.get(key.as_ref()).copied(),
            _ => None,
        };
        staging.store(
            entry,
            ScrapedValue::Float(sample.value),
            sample.timestamp_ms,
            created_ms,
            sample
                .exemplar
                .as_deref()
                .map(std::slice::from_ref)
                .unwrap_or(&[]),
        )?;
    }
    if let Some(groups) = nhcb {
        groups.store(context, cache, created, &mut staging)?;
    }
    Ok(staging.finish(metadata.finish()))
}

/// The classic histograms of a text scrape, gathered to be stored as
/// native histograms with custom buckets (`convert_classic_histograms_to_nhcb`):
/// one group per family and label set (without `le`), in the order met.
#[derive(Default)]
struct NhcbGroups {
    groups: Vec<NhcbGroup>,
    index: HashMap<String, usize>,
}

struct NhcbGroup {
    family: String,
    labels: Vec<(String, String)>,
    /// (upper bound, cumulative count), as exposed.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    timestamp_ms: Option<i64>,
    gauge: bool,
}

impl NhcbGroups {
    /// Takes a sample that belongs to a classic histogram (a `_bucket`,
    /// `_count` or `_sum` of a family typed `histogram`, or `_bucket`,
    /// `_gcount` or `_gsum` of a `gaugehistogram`); false for any other.
    fn add(
        &mut self,
        types: &HashMap<String, MetricType>,
        name: &str,
        labels: &[(Cow<'_, str>, Cow<'_, str>)],
        value: f64,
        timestamp_ms: Option<i64>,
    ) -> bool {
        let part = ["_bucket", "_count", "_sum", "_gcount", "_gsum"]
            .iter()
            .find_map(|suffix| Some((name.strip_suffix(suffix)?, *suffix)));
        let Some((family, suffix)) = part else {
            return false;
        };
        let gauge = match types.get(family) {
            Some(MetricType::Histogram) if matches!(suffix, "_bucket" | "_count" | "_sum") => false,
            Some(MetricType::GaugeHistogram)
                if matches!(suffix, "_bucket" | "_gcount" | "_gsum") =>
            {
                true
            }
            _ => return false,
        };
        let mut le = None;
        let mut rest: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for (label, text) in labels {
            if label == "le" {
                le = Some(text.as_ref());
            } else if !text.is_empty() {
                rest.push((label.to_string(), text.to_string()));
            }
        }
        // A bucket without a usable `le` is not a classic bucket: it is
        // kept as a float series, and starts no group.
        let bound = le.and_then(model::exposition::parse_float);
        if suffix == "_bucket" && bound.is_none() {
            return false;
        }
        rest.sort();
        let mut key = String::from(family);
        for (label, text) in &rest {
            key.push('\u{ff}');
            key.push_str(label);
            key.push('=');
            key.push_str(text);
        }
        let index = match self.index.get(&key) {
            Some(index) => *index,
            None => {
                self.groups.push(NhcbGroup {
                    family: family.to_string(),
                    labels: rest,
                    buckets: Vec::new(),
                    count: None,
                    sum: 0.0,
                    timestamp_ms: None,
                    gauge,
                });
                self.index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[index];
        group.timestamp_ms = group.timestamp_ms.or(timestamp_ms);
        match suffix {
            "_bucket" => {
                if let Some(bound) = bound {
                    group.buckets.push((bound, value));
                }
            }
            "_count" | "_gcount" => group.count = Some(value),
            _ => group.sum = value,
        }
        true
    }

    /// Stages each group as one native histogram sample; a group whose
    /// buckets do not make a histogram (bounds out of order, falling
    /// counts) is left out, as Prometheus leaves it.
    fn store(
        self,
        context: &LoopContext,
        cache: &mut SeriesCache,
        created: Option<&HashMap<String, i64>>,
        staging: &mut Staging<'_>,
    ) -> Result<(), String> {
        let config = &context.config;
        let mut key: Vec<u8> = Vec::new();
        for mut group in self.groups {
            group
                .buckets
                .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let count = group
                .count
                .or_else(|| {
                    group
                        .buckets
                        .iter()
                        .find(|(bound, _)| *bound == f64::INFINITY)
                        .map(|(_, n)| *n)
                })
                .unwrap_or_else(|| group.buckets.last().map_or(0.0, |(_, n)| *n));
            let is_float = group
                .buckets
                .iter()
                .map(|(_, n)| *n)
                .chain([count])
                .any(|n| n.fract() != 0.0 || n < 0.0);
            let mut value = match crate::protobuf::nhcb(
                &group.buckets,
                count,
                group.sum,
                group.gauge,
                is_float,
            ) {
                Ok(value) => value,
                Err(error) => {
                    tracing::warn!(%error, family = %group.family, "classic histogram not converted to a native one");
                    continue;
                }
            };
            crate::protobuf::limit_histogram(
                &mut value,
                config.histograms.native_histogram_bucket_limit,
                config.histograms.native_histogram_min_bucket_factor,
            )?;
            key.clear();
            key.extend_from_slice(b"\xfdnhcb\xff");
            key.extend_from_slice(group.family.as_bytes());
            for (label, text) in &group.labels {
                key.push(0xff);
                key.extend_from_slice(label.as_bytes());
                key.push(0xfe);
                key.extend_from_slice(text.as_bytes());
            }
            let slot = match cache.find(&key) {
                Some(slot) => slot,
                None => {
                    let labels: Vec<(Cow<'_, str>, Cow<'_, str>)> = group
                        .labels
                        .iter()
                        .map(|(label, text)| {
                            (Cow::Borrowed(label.as_str()), Cow::Borrowed(text.as_str()))
                        })
                        .collect();
                    let mut entry =
                        new_entry(config, &context.target.labels, &group.family, &labels);
                    entry.created_family = None;
                    cache.insert(&key, entry)
                }
            };
            let Some(entry) = cache.get_mut(slot) else {
                continue;
            };
            let value = match &value {
                crate::protobuf::ProtoValue::Float(value) => ScrapedValue::Float(*value),
                crate::protobuf::ProtoValue::Histogram(h) => ScrapedValue::Histogram(h),
                crate::protobuf::ProtoValue::FloatHistogram(h) => ScrapedValue::FloatHistogram(h),
            };
            let created_ms = created.and_then(|created| {
                created
                    .get(&created_key(&group.family, &group.labels, None))
                    .copied()
            });
            staging.store(entry, value, group.timestamp_ms, created_ms, &[])?;
        }
        Ok(())
    }
}

/// Parses a protobuf body (`crate::protobuf`) and stages its samples as
/// [`parse_and_append`] does; native histograms (and classic ones turned
/// into native ones with `convert_classic_histograms_to_nhcb`) are
/// stored when the job scrapes native histograms, after the bucket limit
/// and minimum bucket factor.
fn parse_and_append_protobuf(
    context: &LoopContext,
    body: &[u8],
    cache: &mut SeriesCache,
    mut staging: Staging<'_>,
) -> Result<Parsed, String> {
    use crate::protobuf::{ProtoValue, format_openmetrics_float};
    let config = &context.config;
    let target_labels = &context.target.labels;
    let histograms = &config.histograms;
    let native = context.native_histograms();
    let options = crate::protobuf::FlattenOptions {
        native,
        classic_with_native: histograms.scrape_classic_histograms,
        nhcb: histograms.convert_classic_histograms_to_nhcb,
    };
    let families = crate::protobuf::decode_families(body)
        .map_err(|error| format!("parsing the scrape: {error}"))?;
    let mut metadata = MetadataCollector::default();
    let mut key: Vec<u8> = Vec::new();
    for family in &families {
        let name = family.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err("parsing the scrape: a metric family has no name".to_string());
        }
        let kind = family.r#type.unwrap_or(crate::protobuf::UNTYPED);
        if let Some(help) = &family.help {
            metadata.update(name, MetadataUpdate::Help(help.clone()));
        }
        metadata.update(name, MetadataUpdate::Type(proto_metric_type(kind)));
        if let Some(unit) = family.unit.as_ref().filter(|unit| !unit.is_empty()) {
            metadata.update(name, MetadataUpdate::Unit(unit.clone()));
        }
        for metric in &family.metric {
            let created_ms = context
                .created_timestamps
                .then(|| crate::protobuf::created_ms(kind, metric))
                .flatten();
            let samples = crate::protobuf::flatten(name, kind, metric, options)
                .map_err(|error| format!("parsing the scrape: {error}"))?;
            for mut sample in samples {
                if !matches!(sample.value, ProtoValue::Float(_)) {
                    crate::protobuf::limit_histogram(
                        &mut sample.value,
                        histograms.native_histogram_bucket_limit,
                        histograms.native_histogram_min_bucket_factor,
                    )?;
                }
                let extra = sample
                    .extra
                    .map(|(label, bound)| (label, format_openmetrics_float(bound)));
                // The cache key: the series as name and label pairs, each
                // ended by a byte no UTF-8 text holds.
                key.clear();
                key.extend_from_slice(name.as_bytes());
                key.extend_from_slice(sample.suffix.as_bytes());
                key.push(0xff);
                for pair in &metric.label {
                    key.extend_from_slice(pair.name.as_deref().unwrap_or("").as_bytes());
                    key.push(0xfe);
                    key.extend_from_slice(pair.value.as_deref().unwrap_or("").as_bytes());
                    key.push(0xff);
                }
                if let Some((label, text)) = &extra {
                    key.extend_from_slice(label.as_bytes());
                    key.push(0xfe);
                    key.extend_from_slice(text.as_bytes());
                    key.push(0xff);
                }
                if matches!(sample.value, ProtoValue::Float(_)) {
                    key.push(b'f');
                } else {
                    key.push(b'h');
                }
                let slot = match cache.find(&key) {
                    Some(slot) => slot,
                    None => {
                        let labels = proto_labels(name, &metric.label, &extra)?;
                        let full_name = format!("{name}{}", sample.suffix);
                        let mut entry = new_entry(config, target_labels, &full_name, &labels);
                        entry.created_family = None;
                        cache.insert(&key, entry)
                    }
                };
                let Some(entry) = cache.get_mut(slot) else {
                    continue;
                };
                let value = match &sample.value {
                    ProtoValue::Float(value) => ScrapedValue::Float(*value),
                    ProtoValue::Histogram(h) => ScrapedValue::Histogram(h),
                    ProtoValue::FloatHistogram(h) => ScrapedValue::FloatHistogram(h),
                };
                staging.store(
                    entry,
                    value,
                    metric.timestamp_ms,
                    created_ms,
                    &sample.exemplars,
                )?;
            }
        }
    }
    Ok(staging.finish(metadata.finish()))
}

/// A metric's labels with the `le` or `quantile` label, checked as the
/// text parser checks them.
fn proto_labels<'a>(
    family: &str,
    pairs: &'a [crate::protobuf::LabelPair],
    extra: &'a Option<(&'static str, String)>,
) -> Result<model::exposition::LabelPairs<'a>, String> {
    let mut labels: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(pairs.len() + 1);
    for pair in pairs {
        let name = pair.name.as_deref().unwrap_or("");
        if name.is_empty() || name == METRIC_NAME {
            return Err(format!(
                "parsing the scrape: metric family {family:?} has a label named {name:?}"
            ));
        }
        if labels.iter().any(|(seen, _)| seen == name) {
            return Err(format!(
                "parsing the scrape: metric family {family:?} has label {name:?} twice"
            ));
        }
        labels.push((
            Cow::Borrowed(name),
            Cow::Borrowed(pair.value.as_deref().unwrap_or("")),
        ));
    }
    if let Some((label, text)) = extra {
        labels.retain(|(name, _)| name != label);
        labels.push((Cow::Borrowed(*label), Cow::Borrowed(text.as_str())));
    }
    Ok(labels)
}

fn proto_metric_type(kind: i32) -> MetricType {
    match kind {
        crate::protobuf::COUNTER => MetricType::Counter,
        crate::protobuf::GAUGE => MetricType::Gauge,
        crate::protobuf::SUMMARY => MetricType::Summary,
        crate::protobuf::HISTOGRAM => MetricType::Histogram,
        crate::protobuf::GAUGE_HISTOGRAM => MetricType::GaugeHistogram,
        _ => MetricType::Unknown,
    }
}

/// Stores a scraped sample's exemplar, as Prometheus's scrape loop: on a
/// native histogram, or only on counters (`_total`) and histogram buckets
/// (`_bucket`), whose names OpenMetrics allows them on (the text format
/// has none); without a timestamp of its own it takes the scrape's. A
/// refused exemplar (out of order, labels too long) is logged and fails
/// nothing.
fn append_exemplar(
    appender: &mut dyn Appender,
    series: &Labels,
    exemplar: &model::exposition::Exemplar<'_>,
    scrape_start: i64,
    native_histogram: bool,
) {
    let name = series.get(model::METRIC_NAME).unwrap_or("");
    if !(native_histogram || name.ends_with("_total") || name.ends_with("_bucket")) {
        return;
    }
    let stored = model::exemplar::Exemplar {
        labels: Labels::from_pairs(
            exemplar
                .labels
                .iter()
                .map(|(name, value)| (name.as_ref(), value.as_ref())),
        ),
        value: exemplar.value,
        timestamp_ms: exemplar.timestamp_ms.unwrap_or(scrape_start),
        has_timestamp: exemplar.timestamp_ms.is_some(),
    };
    if let Err(error) = appender.append_exemplar(series, stored) {
        tracing::debug!(%error, %series, "exemplar not stored");
    }
}

enum MetadataUpdate {
    Help(String),
    Type(MetricType),
    Unit(String),
}

/// The stored label set of one scraped sample, or `None` when metric
/// relabelling drops it.
fn sample_series(
    config: &ScrapeConfig,
    target_labels: &Labels,
    name: &str,
    labels: &[(Cow<'_, str>, Cow<'_, str>)],
) -> Option<Labels> {
    let mut merged: std::collections::BTreeMap<String, String> = labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(label_name, value)| (label_name.to_string(), value.to_string()))
        .collect();
    merged.insert(METRIC_NAME.to_string(), name.to_string());
    if config.honor_labels {
        for label in target_labels {
            merged
                .entry(label.name.to_string())
                .or_insert_with(|| label.value.to_string());
        }
    } else {
        for label in target_labels {
            if let Some(exposed) = merged.remove(label.name.as_str()) {
                // Keep the exposed value under `exported_<name>`, adding
                // more prefixes while that name is taken.
                let mut exported = format!("exported_{}", label.name);
                while merged.contains_key(&exported) || target_labels.get(&exported).is_some() {
                    exported = format!("exported_{exported}");
                }
                merged.insert(exported, exposed);
            }
            merged.insert(label.name.to_string(), label.value.to_string());
        }
    }
    if !config.metric_relabel_configs.is_empty()
        && !process(&mut merged, &config.metric_relabel_configs)
    {
        return None;
    }
    if merged.is_empty() {
        return None;
    }
    Some(Labels::from_pairs(merged))
}

fn check_label_limits(config: &ScrapeConfig, series: &Labels) -> Result<(), String> {
    if config.label_limit > 0 && series.len() as u64 > config.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {series}, number of labels: {}, limit: {})",
            series.len(),
            config.label_limit
        ));
    }
    for label in series {
        if config.label_name_length_limit > 0
            && label.name.len() as u64 > config.label_name_length_limit
        {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {series}, label name: {}, length: {}, limit: {})",
                label.name,
                label.name.len(),
                config.label_name_length_limit
            ));
        }
        if config.label_value_length_limit > 0
            && label.value.len() as u64 > config.label_value_length_limit
        {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {series}, label name: {}, value: {:?}, length: {}, limit: {})",
                label.name,
                label.value,
                label.value.len(),
                config.label_value_length_limit
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which samples an OpenMetrics `_created` line belongs to: those of
    /// its family with the same labels apart from `le` (histograms) and
    /// `quantile` (summaries); never a gauge's, nor across families.
    #[test]
    fn openmetrics_created_lines_join_their_samples() {
        let body = b"# TYPE c counter\n\
c_total{a=\"1\",b=\"\"} 1\n\
c_created{a=\"1\"} 1700000000.0015\n\
# TYPE h histogram\n\
h_bucket{le=\"+Inf\",x=\"y\"} 2\n\
h_count{x=\"y\"} 2\n\
h_created{x=\"y\"} 1700000001\n\
# TYPE s summary\n\
s{quantile=\"0.5\"} 3\n\
s_created 1700000002\n\
# TYPE g gauge\n\
g_created 1700000003\n\
# EOF\n";
        let created = openmetrics_created(body);
        assert_eq!(created.len(), 3, "{created:?}");
        let mut types = HashMap::new();
        for (name, kind) in [
            ("c", MetricType::Counter),
            ("h", MetricType::Histogram),
            ("s", MetricType::Summary),
            ("g", MetricType::Gauge),
        ] {
            types.insert(name.to_string(), kind);
        }
        let key = |name: &str, labels: &[(&'static str, &'static str)]| {
            let labels: Vec<(Cow<'_, str>, Cow<'_, str>)> = labels
                .iter()
                .map(|(n, v)| (Cow::Borrowed(*n), Cow::Borrowed(*v)))
                .collect();
            sample_created_key(&types, name, &labels)
                .and_then(|key| created.get(key.as_ref()).copied())
        };
        // Truncated to the millisecond, as Prometheus converts it; an
        // empty label value is no label.
        assert_eq!(
            key("c_total", &[("a", "1"), ("b", "")]),
            Some(1_700_000_000_001)
        );
        assert_eq!(key("c_total", &[("a", "2")]), None);
        assert_eq!(
            key("h_bucket", &[("x", "y"), ("le", "0.5")]),
            Some(1_700_000_001_000)
        );
        assert_eq!(key("h_sum", &[("x", "y")]), Some(1_700_000_001_000));
        assert_eq!(key("s", &[("quantile", "0.99")]), Some(1_700_000_002_000));
        assert_eq!(key("s_count", &[]), Some(1_700_000_002_000));
        assert_eq!(key("g", &[]), None);
        // A counter's `le` label is part of its series.
        assert_eq!(key("c_total", &[("a", "1"), ("le", "1")]), None);
    }

    fn target(identity_host: &str) -> Target {
        Target {
            discovered_labels: Labels::empty(),
            labels: Labels::from_pairs([("instance", identity_host), ("job", "j")]),
            scrape_url: format!("http://{identity_host}/metrics"),
            scrape_interval_ms: 15_000,
            scrape_timeout_ms: 10_000,
        }
    }

    #[test]
    fn fallback_protocol_applies_without_a_usable_content_type() {
        let text = |format| Ok(BodyFormat::Exposition(format));
        let om = Some("OpenMetricsText1.0.0");
        assert_eq!(body_format(None, om), text(Format::OpenMetrics));
        assert_eq!(
            body_format(Some("application/octet-stream"), om),
            text(Format::OpenMetrics)
        );
        assert_eq!(
            body_format(Some("text/plain; version=0.0.4"), om),
            text(Format::Text)
        );
        assert_eq!(
            body_format(Some("application/openmetrics-text; version=1.0.0"), None),
            text(Format::OpenMetrics)
        );
        let proto = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
        assert_eq!(body_format(Some(proto), None), Ok(BodyFormat::Protobuf));
        assert_eq!(
            body_format(Some(proto), Some("PrometheusText0.0.4")),
            Ok(BodyFormat::Protobuf)
        );
        assert_eq!(
            body_format(Some("application/json"), Some("PrometheusProto")),
            Ok(BodyFormat::Protobuf)
        );
        // Without a fallback, Prometheus 3 fails such a scrape.
        assert_eq!(
            body_format(None, None),
            Err("non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target".to_string())
        );
        assert_eq!(
            body_format(Some("application/json"), None),
            Err("received unsupported Content-Type \"application/json\" and no fallback_scrape_protocol specified for target".to_string())
        );
    }

    #[test]
    fn accept_headers_are_built_as_prometheus_builds_them() {
        assert_eq!(accept_header(&[], false), ACCEPT_HEADER);
        assert_eq!(
            accept_header(&[], true),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        // A job's own list wins, with or without native histograms.
        for native in [false, true] {
            assert_eq!(
                accept_header(
                    &[
                        "PrometheusText0.0.4".to_string(),
                        "OpenMetricsText1.0.0".to_string()
                    ],
                    native
                ),
                "text/plain;version=0.0.4;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4"
            );
        }
    }

    #[test]
    fn offsets_are_stable_and_spread() {
        let a = target("a:1");
        let b = target("b:1");
        // The phase is fixed: waiting from any moment lands on the same
        // point of the interval.
        for now in [0, 1234, 15_000 * 7 + 99] {
            let delay = initial_delay_ms(&a, 0, 15_000, now);
            assert!((0..15_000).contains(&delay));
            assert_eq!(
                (now + delay).rem_euclid(15_000),
                initial_delay_ms(&a, 0, 15_000, 0)
            );
        }
        assert_ne!(
            initial_delay_ms(&a, 0, 15_000, 0),
            initial_delay_ms(&b, 0, 15_000, 0)
        );
    }

    /// Runs one scrape of `series` through the cache as the scrape loop
    /// does, creating entries named after their text, and forgetting the
    /// ones not written. Returns how many were found in the cache.
    fn scrape_through(cache: &mut SeriesCache, generation: u64, series: &[&str]) -> usize {
        cache.begin_scrape(generation);
        let mut found = 0;
        for text in series {
            let slot = match cache.find(text.as_bytes()) {
                Some(slot) => {
                    found += 1;
                    slot
                }
                None => cache.insert(
                    text.as_bytes(),
                    CacheEntry {
                        labels: Some(Labels::from_pairs([(METRIC_NAME, *text)])),
                        handle: None,
                        over_limits: false,
                        created_family: None,
                        created_key: None,
                        created_sent: 0,
                        created_generation: 0,
                        position: 0,
                        seen: 0,
                        tracked: 0,
                        tracked_before: 0,
                    },
                ),
            };
            let entry = cache.get_mut(slot).expect("a live slot");
            // The slot found holds the series asked for.
            assert_eq!(
                entry.labels.as_ref().and_then(|l| l.get(METRIC_NAME)),
                Some(*text)
            );
            assert_eq!(entry.seen, generation);
        }
        cache.end_scrape();
        cache.retain_seen();
        assert_eq!(cache.values().count(), cache.index.len());
        found
    }

    #[test]
    fn series_cache_follows_order_changes_and_reuses_slots() {
        let mut cache = SeriesCache::default();
        assert_eq!(scrape_through(&mut cache, 1, &["a", "b", "c"]), 0);
        assert_eq!(scrape_through(&mut cache, 2, &["a", "b", "c"]), 3);
        // An added series and a vanished one.
        assert_eq!(scrape_through(&mut cache, 3, &["a", "x", "b"]), 2);
        assert_eq!(cache.values().count(), 3);
        // c's slot is reused; order changes; a series written twice.
        assert_eq!(scrape_through(&mut cache, 4, &["c", "b", "a", "x", "b"]), 4);
        assert_eq!(cache.entries.len(), 4, "a freed slot is reused");
        assert_eq!(
            scrape_through(&mut cache, 5, &["y", "c", "b", "a", "x", "b"]),
            5
        );
        assert_eq!(scrape_through(&mut cache, 6, &[]), 0);
        assert_eq!(cache.values().count(), 0);
        assert_eq!(scrape_through(&mut cache, 7, &["b", "a"]), 0);
    }

    #[test]
    fn target_labels_win_unless_honored() {
        let mut config = ScrapeConfig::new("j", &config::GlobalConfig::default());
        let target_labels = Labels::from_pairs([("instance", "a:1"), ("job", "j")]);
        let exposed = vec![
            (Cow::Borrowed("job"), Cow::Borrowed("app")),
            (Cow::Borrowed("exported_job"), Cow::Borrowed("x")),
            (Cow::Borrowed("path"), Cow::Borrowed("/")),
        ];
        let series = sample_series(&config, &target_labels, "m", &exposed).unwrap();
        assert_eq!(
            series.to_string(),
            r#"m{exported_exported_job="app", exported_job="x", instance="a:1", job="j", path="/"}"#
        );
        config.honor_labels = true;
        let series = sample_series(&config, &target_labels, "m", &exposed).unwrap();
        assert_eq!(
            series.to_string(),
            r#"m{exported_job="x", instance="a:1", job="app", path="/"}"#
        );
    }
}
