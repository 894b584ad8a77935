//! Prometheus's own sections of the config file: `global`,
//! `scrape_configs`, `scrape_config_files`, `rule_files`, `alerting` and
//! `remote_write`, with Prometheus's defaults and checks.
//!
//! Every field of Prometheus 3's format is either read and acted on, or
//! an error naming what osprey does not implement (service discoveries
//! other than files and static lists, `sigv4`, ...). A few settings only
//! matter for features osprey does not have and are accepted at the
//! values that match what osprey does (for example
//! `metric_name_validation_scheme: utf8`).

use model::relabel::{RelabelAction, RelabelConfig, RelabelRegex};
use yaml::Node;

use crate::ConfigError;
use crate::decode::{Decoder, Field, check_url, key_is};
use crate::http::{self, HttpClientConfig};

/// Prometheus's default scrape interval (1m).
pub const DEFAULT_SCRAPE_INTERVAL_MS: i64 = 60_000;
/// Prometheus's default scrape timeout (10s), capped at the interval.
pub const DEFAULT_SCRAPE_TIMEOUT_MS: i64 = 10_000;
/// Prometheus's default rule evaluation interval (1m).
pub const DEFAULT_EVALUATION_INTERVAL_MS: i64 = 60_000;
/// Prometheus's default `file_sd_configs` refresh interval (5m).
pub const DEFAULT_FILE_SD_REFRESH_MS: i64 = 300_000;
/// Prometheus's default `remote_write.remote_timeout` (30s).
pub const DEFAULT_REMOTE_TIMEOUT_MS: i64 = 30_000;
/// Prometheus's default Alertmanager request timeout (10s).
pub const DEFAULT_ALERTMANAGER_TIMEOUT_MS: i64 = 10_000;

/// The `global` section.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalConfig {
    pub scrape_interval_ms: i64,
    pub scrape_timeout_ms: i64,
    pub evaluation_interval_ms: i64,
    /// How far back rule queries look by default (`rule_query_offset`).
    pub rule_query_offset_ms: i64,
    /// Sorted by name.
    pub external_labels: Vec<(String, String)>,
}

impl Default for GlobalConfig {
    fn default() -> GlobalConfig {
        GlobalConfig {
            scrape_interval_ms: DEFAULT_SCRAPE_INTERVAL_MS,
            scrape_timeout_ms: DEFAULT_SCRAPE_TIMEOUT_MS,
            evaluation_interval_ms: DEFAULT_EVALUATION_INTERVAL_MS,
            rule_query_offset_ms: 0,
            external_labels: Vec::new(),
        }
    }
}

/// How a job scrapes histograms: Prometheus 3's `scrape_native_histograms`,
/// `scrape_classic_histograms` (also `always_scrape_classic_histograms`),
/// `convert_classic_histograms_to_nhcb`, `native_histogram_bucket_limit`
/// and `native_histogram_min_bucket_factor`, set in `global` or per job.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HistogramScrape {
    /// Whether native histograms are stored; `None` (not set in the file)
    /// follows `--enable-feature=native-histograms`.
    pub scrape_native_histograms: Option<bool>,
    /// Also store the classic series of a histogram that is native.
    pub scrape_classic_histograms: bool,
    /// Store classic histograms as native histograms with custom buckets.
    pub convert_classic_histograms_to_nhcb: bool,
    /// The most buckets a native histogram may keep (0: no limit); more
    /// halve its resolution until it fits, or fail the scrape at schema -4.
    pub native_histogram_bucket_limit: u64,
    /// The smallest growth factor between bucket bounds (0: no minimum);
    /// a finer histogram is made coarser.
    pub native_histogram_min_bucket_factor: f64,
}

impl HistogramScrape {
    /// Whether native histograms are stored, given the feature flag.
    pub fn native_enabled(&self, feature_flag: bool) -> bool {
        self.scrape_native_histograms.unwrap_or(feature_flag)
    }
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One `scrape_configs` entry, with the global defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval_ms: i64,
    pub scrape_timeout_ms: i64,
    pub metrics_path: String,
    pub scheme: Scheme,
    /// URL parameters, sorted by name; each name may repeat values.
    pub params: Vec<(String, Vec<String>)>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// `scrape_protocols` in order of preference; empty means Prometheus's
    /// default (OpenMetrics first, then the text format; the protobuf
    /// format before them when native histograms are scraped).
    pub scrape_protocols: Vec<String>,
    /// The protocol to parse a body as when the target sends no usable
    /// `Content-Type` (`fallback_scrape_protocol`).
    pub fallback_scrape_protocol: Option<String>,
    /// Ask for gzip (`enable_compression`, default true).
    pub enable_compression: bool,
    /// The native-histogram settings of the job.
    pub histograms: HistogramScrape,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Authentication, TLS, proxies, redirects, HTTP/2, extra headers.
    pub http: HttpClientConfig,
    /// 0 means no limit, for all limits.
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub body_size_limit_bytes: u64,
    /// How many dropped targets `/api/v1/targets` keeps; 0 means all.
    pub keep_dropped_targets: u64,
}

impl ScrapeConfig {
    /// A job with Prometheus's defaults and no targets.
    pub fn new(job_name: &str, global: &GlobalConfig) -> ScrapeConfig {
        ScrapeConfig {
            job_name: job_name.to_string(),
            scrape_interval_ms: global.scrape_interval_ms,
            scrape_timeout_ms: global.scrape_timeout_ms.min(global.scrape_interval_ms),
            metrics_path: "/metrics".to_string(),
            scheme: Scheme::Http,
            params: Vec::new(),
            honor_labels: false,
            honor_timestamps: true,
            scrape_protocols: Vec::new(),
            fallback_scrape_protocol: None,
            enable_compression: true,
            histograms: HistogramScrape::default(),
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            http: HttpClientConfig::default(),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            target_limit: 0,
            body_size_limit_bytes: 0,
            keep_dropped_targets: 0,
        }
    }
}

/// A `static_configs` entry (also the shape of a file_sd group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    /// Sorted by name.
    pub labels: Vec<(String, String)>,
}

/// A `file_sd_configs` entry. Globs may appear in the last path element;
/// relative paths are joined to the config file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    pub refresh_interval_ms: i64,
}

/// The `alerting` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertingConfig {
    /// Applied to every alert before it is sent (after external labels).
    pub alert_relabel_configs: Vec<RelabelConfig>,
    pub alertmanagers: Vec<AlertmanagerTarget>,
}

/// One `alerting.alertmanagers` entry: where alerts are sent.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerTarget {
    pub scheme: Scheme,
    /// Prepended to `/api/v2/alerts`.
    pub path_prefix: String,
    /// Per request; default 10s.
    pub timeout_ms: i64,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Applied to the discovered Alertmanager targets (`__address__`, ...).
    pub relabel_configs: Vec<RelabelConfig>,
    /// Applied to alerts sent to this Alertmanager only.
    pub alert_relabel_configs: Vec<RelabelConfig>,
    pub http: HttpClientConfig,
}

/// One `remote_write` entry: where samples go and how they are queued.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWriteConfig {
    pub url: String,
    /// The `name` field; empty when not set (the sender then names the
    /// queue after a hash of the URL).
    pub name: String,
    /// Per request; default 30s.
    pub remote_timeout_ms: i64,
    /// Extra HTTP headers sent with every request, sorted by name.
    pub headers: Vec<(String, String)>,
    pub http: HttpClientConfig,
    /// Applied to each series' labels (after external labels) before it
    /// is sent; a series they drop is not sent.
    pub write_relabel_configs: Vec<RelabelConfig>,
    pub queue_config: QueueConfig,
    /// `sigv4`: AWS Signature Version 4 on every request (Amazon Managed
    /// Service for Prometheus), instead of the `http` credentials.
    pub sigv4: Option<SigV4Config>,
    /// `metadata_config`: sending the scraped metrics' type, help and unit.
    pub metadata: MetadataConfig,
    /// `protobuf_message`: the remote-write version spoken.
    pub protobuf_message: ProtobufMessage,
    /// `send_native_histograms` (default false): forward native histogram
    /// samples too.
    pub send_native_histograms: bool,
}

/// `remote_write.protobuf_message`, as Prometheus 3 names the versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProtobufMessage {
    /// `prometheus.WriteRequest`: remote write 1.0 (the default).
    #[default]
    V1,
    /// `io.prometheus.write.v2.Request`: remote write 2.0.
    V2,
}

/// `remote_write.metadata_config`, with Prometheus's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataConfig {
    /// Default true.
    pub send: bool,
    /// Default 1m.
    pub send_interval_ms: i64,
    /// Metadata entries per request; default 500.
    pub max_samples_per_send: u64,
}

impl Default for MetadataConfig {
    fn default() -> MetadataConfig {
        MetadataConfig {
            send: true,
            send_interval_ms: 60_000,
            max_samples_per_send: 500,
        }
    }
}

/// `remote_write.sigv4`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigV4Config {
    /// The AWS region; when empty, `AWS_REGION` or `AWS_DEFAULT_REGION`
    /// at load.
    pub region: String,
    /// Static credentials; when absent, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` are read for each
    /// request.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

/// One `remote_read` entry: another store whose series queries include.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteReadConfig {
    pub url: String,
    /// The `name` field; empty when not set.
    pub name: String,
    /// Per request; default 1m.
    pub remote_timeout_ms: i64,
    /// Extra HTTP headers sent with every request, sorted by name.
    pub headers: Vec<(String, String)>,
    pub http: HttpClientConfig,
    /// Equality matchers a selector must hold for this store to be asked,
    /// sorted by name.
    pub required_matchers: Vec<(String, String)>,
    /// Whether to ask for time ranges the local store holds too (default
    /// false: only what is older than the oldest local sample).
    pub read_recent: bool,
    /// Whether the external labels are added to the request as matchers
    /// and removed from the answer (default true).
    pub filter_external_labels: bool,
}

/// Prometheus's default `remote_read.remote_timeout` (1m).
const DEFAULT_REMOTE_READ_TIMEOUT_MS: i64 = 60_000;

/// `remote_write.queue_config`, with Prometheus's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Accepted for compatibility; osprey bounds memory by its round size
    /// (`max_shards × max_samples_per_send`) instead (see ARCHITECTURE.md).
    pub capacity: u64,
    pub max_shards: u64,
    pub min_shards: u64,
    pub max_samples_per_send: u64,
    pub batch_send_deadline_ms: i64,
    pub min_backoff_ms: i64,
    pub max_backoff_ms: i64,
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline_ms: 5_000,
            min_backoff_ms: 30,
            max_backoff_ms: 5_000,
            retry_on_http_429: true,
        }
    }
}

/// The media type of a `scrape_protocols` name, or `None` when osprey
/// cannot parse that protocol.
pub fn scrape_protocol_media_type(protocol: &str) -> Option<&'static str> {
    Some(match protocol {
        "PrometheusProto" => {
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
        }
        "OpenMetricsText1.0.0" => "application/openmetrics-text;version=1.0.0",
        "OpenMetricsText0.0.1" => "application/openmetrics-text;version=0.0.1",
        "PrometheusText1.0.0" => "text/plain;version=1.0.0",
        "PrometheusText0.0.4" => "text/plain;version=0.0.4",
        _ => return None,
    })
}

/// The Prometheus sections of a file, as they are read: nodes first (the
/// scrape configs need `global`, which may come after them), decoded in
/// [`finish`].
#[derive(Default)]
pub struct Sections<'n> {
    global: Option<&'n Node>,
    scrape_configs: Option<&'n Node>,
    scrape_config_files: Option<&'n Node>,
    rule_files: Option<&'n Node>,
    alerting: Option<&'n Node>,
    remote_write: Option<&'n Node>,
    remote_read: Option<&'n Node>,
}

/// The Prometheus sections, decoded.
pub struct Decoded {
    pub global: GlobalConfig,
    pub scrape_configs: Vec<ScrapeConfig>,
    pub rule_files: Vec<String>,
    pub alerting: AlertingConfig,
    pub remote_write: Vec<RemoteWriteConfig>,
    pub remote_read: Vec<RemoteReadConfig>,
}

/// Takes a top-level field when it is one of Prometheus's sections.
pub fn decode_section<'n>(
    _decoder: &Decoder,
    sections: &mut Sections<'n>,
    field: &Field<'n>,
) -> Result<bool, ConfigError> {
    let slot = match field.name.as_str() {
        "global" => &mut sections.global,
        "scrape_configs" => &mut sections.scrape_configs,
        "scrape_config_files" => &mut sections.scrape_config_files,
        "rule_files" => &mut sections.rule_files,
        "alerting" => &mut sections.alerting,
        "remote_write" => &mut sections.remote_write,
        "remote_read" => &mut sections.remote_read,
        _ => return Ok(false),
    };
    *slot = Some(field.value);
    Ok(true)
}

/// Decodes the sections collected by [`decode_section`].
pub fn finish(decoder: &mut Decoder, sections: Sections<'_>) -> Result<Decoded, ConfigError> {
    let mut global_limits = Vec::new();
    let (global, global_scrape) = match sections.global {
        Some(node) => global(decoder, node, &mut global_limits)?,
        None => (GlobalConfig::default(), GlobalScrape::default()),
    };
    let defaults = JobDefaults {
        global: &global,
        limits: &global_limits,
        scrape: &global_scrape,
    };
    let mut scrape_configs: Vec<ScrapeConfig> = Vec::new();
    if let Some(node) = sections.scrape_configs {
        scrape_list(
            decoder,
            node,
            "scrape_configs",
            &defaults,
            &mut scrape_configs,
        )?;
    }
    if let Some(node) = sections.scrape_config_files {
        for (pattern, line) in decoder.string_list_with_lines(node, "scrape_config_files")? {
            let mut files = Vec::new();
            crate::glob::expand_glob(&decoder.resolve(&pattern), &mut files);
            files.sort();
            for file in files {
                scrape_config_file(decoder, &file, line, &defaults, &mut scrape_configs)?;
            }
        }
    }
    let rule_files = match sections.rule_files {
        Some(node) => decoder
            .string_list(node, "rule_files")?
            .iter()
            .map(|pattern| decoder.resolve(pattern))
            .collect(),
        None => Vec::new(),
    };
    let alerting = match sections.alerting {
        Some(node) => alerting(decoder, node)?,
        None => AlertingConfig::default(),
    };
    let remote_write = match sections.remote_write {
        Some(node) => remote_writes(decoder, node)?,
        None => Vec::new(),
    };
    let remote_read = match sections.remote_read {
        Some(node) => remote_reads(decoder, node)?,
        None => Vec::new(),
    };
    Ok(Decoded {
        global,
        scrape_configs,
        rule_files,
        alerting,
        remote_write,
        remote_read,
    })
}

/// Global settings that are job defaults only.
#[derive(Default)]
struct GlobalScrape {
    scrape_protocols: Vec<String>,
    histograms: HistogramScrape,
    keep_dropped_targets: u64,
}

struct JobDefaults<'a, 'n> {
    global: &'a GlobalConfig,
    limits: &'a [(&'static str, &'n Node)],
    scrape: &'a GlobalScrape,
}

/// Global fields that set per-job defaults for the limits.
const GLOBAL_LIMIT_FIELDS: &[&str] = &[
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
    "body_size_limit",
];

fn global<'n>(
    decoder: &mut Decoder,
    node: &'n Node,
    limits: &mut Vec<(&'static str, &'n Node)>,
) -> Result<(GlobalConfig, GlobalScrape), ConfigError> {
    let mut global = GlobalConfig::default();
    let mut scrape = GlobalScrape::default();
    let mut timeout: Option<(i64, u64)> = None;
    for field in decoder.fields(node, "global")? {
        let (value, path) = (field.value, field.path.as_str());
        match field.name.as_str() {
            "scrape_interval" => {
                global.scrape_interval_ms = decoder.positive_duration(value, path)?
            }
            "scrape_timeout" => {
                timeout = Some((decoder.positive_duration(value, path)?, value.line))
            }
            "evaluation_interval" => {
                global.evaluation_interval_ms = decoder.positive_duration(value, path)?
            }
            "rule_query_offset" => global.rule_query_offset_ms = decoder.duration(value, path)?,
            "external_labels" => global.external_labels = decoder.label_map(value, path)?,
            "scrape_protocols" => scrape.scrape_protocols = protocols(decoder, value, path)?,
            "keep_dropped_targets" => {
                scrape.keep_dropped_targets = decoder.unsigned(value, path)?
            }
            name if GLOBAL_LIMIT_FIELDS.contains(&name) => {
                if name == "body_size_limit" {
                    decoder.byte_size(value, path)?;
                } else {
                    decoder.unsigned(value, path)?;
                }
                let limit = GLOBAL_LIMIT_FIELDS
                    .iter()
                    .find(|limit| **limit == name)
                    .copied()
                    .unwrap_or("sample_limit");
                limits.push((limit, value));
            }
            _ => histogram_or_name_field(decoder, &field, &mut scrape.histograms)?,
        }
    }
    match timeout {
        Some((timeout_ms, line)) => {
            if timeout_ms > global.scrape_interval_ms {
                return Err(decoder.error(
                    line,
                    "global.scrape_timeout",
                    "scrape timeout greater than scrape interval",
                ));
            }
            global.scrape_timeout_ms = timeout_ms;
        }
        None => global.scrape_timeout_ms = DEFAULT_SCRAPE_TIMEOUT_MS.min(global.scrape_interval_ms),
    }
    Ok((global, scrape))
}

/// Fields of `global` and of a scrape config that concern native
/// histograms, metric name validation and failure logs: the histogram
/// settings are read into `histograms`; the others are accepted at the
/// values that describe what osprey does, an error otherwise.
fn histogram_or_name_field(
    decoder: &Decoder,
    field: &Field<'_>,
    histograms: &mut HistogramScrape,
) -> Result<(), ConfigError> {
    let (value, path) = (field.value, field.path.as_str());
    match field.name.as_str() {
        "scrape_native_histograms" => {
            histograms.scrape_native_histograms = Some(decoder.bool(value, path)?);
            Ok(())
        }
        "scrape_classic_histograms" | "always_scrape_classic_histograms" => {
            histograms.scrape_classic_histograms = decoder.bool(value, path)?;
            Ok(())
        }
        "convert_classic_histograms_to_nhcb" => {
            histograms.convert_classic_histograms_to_nhcb = decoder.bool(value, path)?;
            Ok(())
        }
        "native_histogram_bucket_limit" => {
            histograms.native_histogram_bucket_limit = decoder.unsigned(value, path)?;
            Ok(())
        }
        "native_histogram_min_bucket_factor" => {
            let factor = decoder.float(value, path)?;
            if !(factor.is_finite() && factor >= 0.0) {
                return Err(decoder.error(
                    value.line,
                    path,
                    format!(
                        "native_histogram_min_bucket_factor must be a number >= 0, got {factor}"
                    ),
                ));
            }
            histograms.native_histogram_min_bucket_factor = factor;
            Ok(())
        }
        "metric_name_validation_scheme" => match decoder.string(value, path)?.as_str() {
            "" | "utf8" => Ok(()),
            _ => Err(decoder.unsupported(
                field,
                "legacy metric name validation (osprey accepts UTF-8 names)",
            )),
        },
        "metric_name_escaping_scheme" => Err(decoder.unsupported(field, "metric name escaping")),
        "scrape_failure_log_file" | "query_log_file" => {
            Err(decoder.unsupported(field, "log files (osprey logs to stderr)"))
        }
        _ => Err(decoder.unknown(field)),
    }
}

fn protocols(decoder: &Decoder, node: &Node, path: &str) -> Result<Vec<String>, ConfigError> {
    let protocols = decoder.string_list(node, path)?;
    for protocol in &protocols {
        if scrape_protocol_media_type(protocol).is_none() {
            return Err(decoder.error(
                node.line,
                path,
                format!(
                    "unknown or unsupported scrape protocol {protocol:?} (supported: PrometheusProto, OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4)"
                ),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    if !protocols.iter().all(|p| seen.insert(p.as_str())) {
        return Err(decoder.error(
            node.line,
            path,
            format!("duplicated protocol in scrape_protocols, got {protocols:?}"),
        ));
    }
    Ok(protocols)
}

fn scrape_list(
    decoder: &mut Decoder,
    node: &Node,
    field: &str,
    defaults: &JobDefaults<'_, '_>,
    jobs: &mut Vec<ScrapeConfig>,
) -> Result<(), ConfigError> {
    for (index, item) in decoder.sequence(node, field)?.iter().enumerate() {
        let path = format!("{field}[{index}]");
        let job = scrape_config(decoder, item, &path, defaults)?;
        if jobs
            .iter()
            .any(|existing| existing.job_name == job.job_name)
        {
            return Err(decoder.error(
                item.line,
                &format!("{path}.job_name"),
                format!(
                    "found multiple scrape configs with job name {:?}",
                    job.job_name
                ),
            ));
        }
        jobs.push(job);
    }
    Ok(())
}

/// One file of `scrape_config_files`: `scrape_configs` only.
fn scrape_config_file(
    decoder: &mut Decoder,
    path: &std::path::Path,
    line: u64,
    defaults: &JobDefaults<'_, '_>,
    jobs: &mut Vec<ScrapeConfig>,
) -> Result<(), ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        decoder.error(
            line,
            "scrape_config_files",
            format!("reading {name}: {error}"),
        )
    })?;
    let root = crate::decode::parse_yaml(&name, &text)?;
    let mut file_decoder = Decoder::new(&name, path.parent());
    for field in file_decoder.fields(&root, "")? {
        if field.name != "scrape_configs" {
            return Err(file_decoder.error(
                field.key.line,
                &field.path,
                "a scrape_config_files file may hold scrape_configs only",
            ));
        }
        scrape_list(
            &mut file_decoder,
            field.value,
            "scrape_configs",
            defaults,
            jobs,
        )?;
    }
    for warning in file_decoder.take_warnings() {
        decoder.warn(line, "scrape_config_files", &warning);
    }
    Ok(())
}

fn scrape_config(
    decoder: &mut Decoder,
    node: &Node,
    field: &str,
    defaults: &JobDefaults<'_, '_>,
) -> Result<ScrapeConfig, ConfigError> {
    let entries = decoder.mapping(node, field)?;
    let job_name = match entries.iter().find(|(key, _)| key_is(key, "job_name")) {
        Some((_, value)) => decoder.string(value, &format!("{field}.job_name"))?,
        None => return Err(decoder.error(node.line, field, "missing job_name")),
    };
    if job_name.is_empty() {
        return Err(decoder.error(node.line, &format!("{field}.job_name"), "job_name is empty"));
    }
    let mut job = ScrapeConfig::new(&job_name, defaults.global);
    job.scrape_protocols = defaults.scrape.scrape_protocols.clone();
    job.histograms = defaults.scrape.histograms.clone();
    job.keep_dropped_targets = defaults.scrape.keep_dropped_targets;
    for (limit, value) in defaults.limits {
        set_limit(decoder, &mut job, limit, value, &format!("global.{limit}"))?;
    }
    let mut timeout: Option<(i64, u64)> = None;
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "job_name" => {}
            "scrape_interval" => job.scrape_interval_ms = decoder.positive_duration(value, path)?,
            "scrape_timeout" => {
                timeout = Some((decoder.positive_duration(value, path)?, value.line))
            }
            "metrics_path" => {
                job.metrics_path = decoder.string(value, path)?;
                if !job.metrics_path.starts_with('/') {
                    return Err(decoder.error(
                        value.line,
                        path,
                        format!("metrics_path {:?} must start with '/'", job.metrics_path),
                    ));
                }
            }
            "scheme" => job.scheme = scheme(decoder, value, path)?,
            "params" => {
                let mut params = Vec::new();
                for p in decoder.fields(value, path)? {
                    params.push((p.name, decoder.string_list(p.value, &p.path)?));
                }
                params.sort();
                job.params = params;
            }
            "honor_labels" => job.honor_labels = decoder.bool(value, path)?,
            "honor_timestamps" => job.honor_timestamps = decoder.bool(value, path)?,
            "track_timestamps_staleness" => {
                if decoder.bool(value, path)? {
                    return Err(
                        decoder.unsupported(&f, "staleness for samples with explicit timestamps")
                    );
                }
            }
            "scrape_protocols" => job.scrape_protocols = protocols(decoder, value, path)?,
            "fallback_scrape_protocol" => {
                let protocol = decoder.string(value, path)?;
                if scrape_protocol_media_type(&protocol).is_none() {
                    return Err(decoder.error(
                        value.line,
                        path,
                        format!("unknown or unsupported scrape protocol {protocol:?}"),
                    ));
                }
                job.fallback_scrape_protocol = Some(protocol);
            }
            "enable_compression" => job.enable_compression = decoder.bool(value, path)?,
            "static_configs" => {
                for (index, item) in decoder.sequence(value, path)?.iter().enumerate() {
                    job.static_configs.push(static_config(
                        decoder,
                        item,
                        &format!("{path}[{index}]"),
                    )?);
                }
            }
            "file_sd_configs" => job.file_sd_configs = file_sd_configs(decoder, value, path)?,
            "relabel_configs" => job.relabel_configs = relabel_configs(decoder, value, path)?,
            "metric_relabel_configs" => {
                job.metric_relabel_configs = relabel_configs(decoder, value, path)?
            }
            "sample_limit"
            | "label_limit"
            | "label_name_length_limit"
            | "label_value_length_limit"
            | "target_limit"
            | "body_size_limit" => set_limit(decoder, &mut job, &f.name, value, path)?,
            "keep_dropped_targets" => job.keep_dropped_targets = decoder.unsigned(value, path)?,
            name if name.ends_with("_sd_configs") => {
                return Err(decoder.unsupported(
                    &f,
                    "this service discovery (osprey discovers targets from static_configs and file_sd_configs)",
                ));
            }
            _ => {
                if !http::decode_field(decoder, &mut job.http, &f)? {
                    histogram_or_name_field(decoder, &f, &mut job.histograms)?;
                }
            }
        }
    }
    http::validate(decoder, &job.http, node.line, field)?;
    match timeout {
        Some((timeout_ms, line)) => {
            if timeout_ms > job.scrape_interval_ms {
                return Err(decoder.error(
                    line,
                    &format!("{field}.scrape_timeout"),
                    format!(
                        "scrape timeout greater than scrape interval for scrape config with job name {job_name:?}"
                    ),
                ));
            }
            job.scrape_timeout_ms = timeout_ms;
        }
        // Prometheus caps the inherited timeout at the job's interval.
        None => {
            job.scrape_timeout_ms = defaults
                .global
                .scrape_timeout_ms
                .min(job.scrape_interval_ms)
        }
    }
    Ok(job)
}

fn scheme(decoder: &Decoder, node: &Node, path: &str) -> Result<Scheme, ConfigError> {
    match decoder.string(node, path)?.as_str() {
        "http" => Ok(Scheme::Http),
        "https" => Ok(Scheme::Https),
        other => Err(decoder.error(
            node.line,
            path,
            format!("invalid scheme {other:?} (expected http or https)"),
        )),
    }
}

fn set_limit(
    decoder: &Decoder,
    job: &mut ScrapeConfig,
    name: &str,
    value: &Node,
    path: &str,
) -> Result<(), ConfigError> {
    match name {
        "sample_limit" => job.sample_limit = decoder.unsigned(value, path)?,
        "label_limit" => job.label_limit = decoder.unsigned(value, path)?,
        "label_name_length_limit" => job.label_name_length_limit = decoder.unsigned(value, path)?,
        "label_value_length_limit" => {
            job.label_value_length_limit = decoder.unsigned(value, path)?
        }
        "target_limit" => job.target_limit = decoder.unsigned(value, path)?,
        _ => job.body_size_limit_bytes = decoder.byte_size(value, path)?,
    }
    Ok(())
}

fn static_config(decoder: &Decoder, node: &Node, field: &str) -> Result<StaticConfig, ConfigError> {
    let mut config = StaticConfig {
        targets: Vec::new(),
        labels: Vec::new(),
    };
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "targets" => config.targets = decoder.string_list(f.value, &f.path)?,
            "labels" => config.labels = decoder.label_map(f.value, &f.path)?,
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(config)
}

fn file_sd_configs(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Vec<FileSdConfig>, ConfigError> {
    let mut configs = Vec::new();
    for (index, item) in decoder.sequence(node, field)?.iter().enumerate() {
        configs.push(file_sd_config(decoder, item, &format!("{field}[{index}]"))?);
    }
    Ok(configs)
}

fn file_sd_config(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<FileSdConfig, ConfigError> {
    let mut config = FileSdConfig {
        files: Vec::new(),
        refresh_interval_ms: DEFAULT_FILE_SD_REFRESH_MS,
    };
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "files" => {
                config.files = decoder.string_list(f.value, &f.path)?;
                for (index, file) in config.files.iter().enumerate() {
                    let ok = [".json", ".yml", ".yaml"]
                        .iter()
                        .any(|extension| file.ends_with(extension));
                    if !ok {
                        return Err(decoder.error(
                            f.value.line,
                            &format!("{}[{index}]", f.path),
                            format!(
                                "path {file:?} is not a valid file_sd file (want .json, .yml or .yaml)"
                            ),
                        ));
                    }
                    let directory = file.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                    if directory.contains(['*', '?', '[']) {
                        return Err(decoder.error(
                            f.value.line,
                            &format!("{}[{index}]", f.path),
                            format!(
                                "path {file:?}: patterns are only allowed in the last path element"
                            ),
                        ));
                    }
                }
            }
            "refresh_interval" => {
                config.refresh_interval_ms = decoder.positive_duration(f.value, &f.path)?
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if config.files.is_empty() {
        return Err(decoder.error(
            node.line,
            field,
            "file service discovery config must contain at least one path name",
        ));
    }
    // As in Prometheus, relative paths are relative to the directory of
    // the configuration file.
    for file in &mut config.files {
        *file = decoder.resolve(file);
    }
    Ok(config)
}

/// A list of relabel rules, each checked as Prometheus checks them.
pub fn relabel_configs(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Vec<RelabelConfig>, ConfigError> {
    let mut configs = Vec::new();
    for (index, item) in decoder.sequence(node, field)?.iter().enumerate() {
        let path = format!("{field}[{index}]");
        let mut config = RelabelConfig::new();
        for f in decoder.fields(item, &path)? {
            let (value, value_path) = (f.value, f.path.as_str());
            match f.name.as_str() {
                "source_labels" => config.source_labels = decoder.string_list(value, value_path)?,
                "separator" => config.separator = decoder.string(value, value_path)?,
                "regex" => {
                    let source = decoder.string(value, value_path)?;
                    config.regex = RelabelRegex::new(&source)
                        .map_err(|message| decoder.error(value.line, value_path, message))?;
                }
                "modulus" => config.modulus = decoder.unsigned(value, value_path)?,
                "target_label" => config.target_label = decoder.string(value, value_path)?,
                "replacement" => config.replacement = decoder.string(value, value_path)?,
                "action" => {
                    let action = decoder.string(value, value_path)?;
                    config.action = RelabelAction::parse(&action).ok_or_else(|| {
                        decoder.error(
                            value.line,
                            value_path,
                            format!("unknown relabel action {action:?}"),
                        )
                    })?;
                }
                _ => return Err(decoder.unknown(&f)),
            }
        }
        config
            .validate()
            .map_err(|message| decoder.error(item.line, &path, message))?;
        configs.push(config);
    }
    Ok(configs)
}

fn alerting(decoder: &mut Decoder, node: &Node) -> Result<AlertingConfig, ConfigError> {
    let mut alerting = AlertingConfig::default();
    for f in decoder.fields(node, "alerting")? {
        match f.name.as_str() {
            "alert_relabel_configs" => {
                alerting.alert_relabel_configs = relabel_configs(decoder, f.value, &f.path)?
            }
            "alertmanagers" => {
                for (index, item) in decoder.sequence(f.value, &f.path)?.iter().enumerate() {
                    let path = format!("{}[{index}]", f.path);
                    alerting
                        .alertmanagers
                        .push(alertmanager(decoder, item, &path)?);
                }
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(alerting)
}

fn alertmanager(
    decoder: &mut Decoder,
    node: &Node,
    field: &str,
) -> Result<AlertmanagerTarget, ConfigError> {
    let mut am = AlertmanagerTarget {
        scheme: Scheme::Http,
        path_prefix: String::new(),
        timeout_ms: DEFAULT_ALERTMANAGER_TIMEOUT_MS,
        static_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        relabel_configs: Vec::new(),
        alert_relabel_configs: Vec::new(),
        http: HttpClientConfig::default(),
    };
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "scheme" => am.scheme = scheme(decoder, value, path)?,
            "path_prefix" => am.path_prefix = decoder.string(value, path)?,
            "timeout" => am.timeout_ms = decoder.positive_duration(value, path)?,
            "api_version" => {
                let version = decoder.string(value, path)?;
                if version != "v2" {
                    return Err(decoder.error(
                        value.line,
                        path,
                        format!("unsupported Alertmanager API version {version:?} (only v2)"),
                    ));
                }
            }
            "static_configs" => {
                for (index, item) in decoder.sequence(value, path)?.iter().enumerate() {
                    am.static_configs.push(static_config(
                        decoder,
                        item,
                        &format!("{path}[{index}]"),
                    )?);
                }
            }
            "file_sd_configs" => am.file_sd_configs = file_sd_configs(decoder, value, path)?,
            "relabel_configs" => am.relabel_configs = relabel_configs(decoder, value, path)?,
            "alert_relabel_configs" => {
                am.alert_relabel_configs = relabel_configs(decoder, value, path)?
            }
            "sigv4" => return Err(decoder.unsupported(&f, "AWS SigV4 signing")),
            name if name.ends_with("_sd_configs") => {
                return Err(decoder.unsupported(
                    &f,
                    "this service discovery (osprey discovers Alertmanagers from static_configs and file_sd_configs)",
                ));
            }
            _ => {
                if !http::decode_field(decoder, &mut am.http, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    http::validate(decoder, &am.http, node.line, field)?;
    Ok(am)
}

fn remote_writes(
    decoder: &mut Decoder,
    node: &Node,
) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
    let mut configs: Vec<RemoteWriteConfig> = Vec::new();
    for (index, item) in decoder.sequence(node, "remote_write")?.iter().enumerate() {
        let field = format!("remote_write[{index}]");
        let config = remote_write(decoder, item, &field)?;
        if !config.name.is_empty()
            && let Some(previous) = configs.iter().position(|c| c.name == config.name)
        {
            return Err(decoder.error(
                item.line,
                &format!("{field}.name"),
                format!(
                    "found multiple remote write configs with name {:?} (also remote_write[{previous}])",
                    config.name
                ),
            ));
        }
        configs.push(config);
    }
    Ok(configs)
}

fn remote_write(
    decoder: &mut Decoder,
    node: &Node,
    field: &str,
) -> Result<RemoteWriteConfig, ConfigError> {
    let mut config = RemoteWriteConfig {
        url: String::new(),
        name: String::new(),
        remote_timeout_ms: DEFAULT_REMOTE_TIMEOUT_MS,
        headers: Vec::new(),
        http: HttpClientConfig::default(),
        write_relabel_configs: Vec::new(),
        queue_config: QueueConfig::default(),
        sigv4: None,
        metadata: MetadataConfig::default(),
        protobuf_message: ProtobufMessage::V1,
        send_native_histograms: false,
    };
    let mut url_line = None;
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "url" => {
                config.url = decoder.string(value, path)?;
                url_line = Some(value.line);
            }
            "name" => config.name = decoder.string(value, path)?,
            "remote_timeout" => {
                config.remote_timeout_ms = decoder.positive_duration(value, path)?
            }
            "headers" => config.headers = remote_headers(decoder, value, path)?,
            "write_relabel_configs" => {
                config.write_relabel_configs = relabel_configs(decoder, value, path)?
            }
            "queue_config" => config.queue_config = queue_config(decoder, value, path)?,
            "metadata_config" => config.metadata = metadata_config(decoder, value, path)?,
            "protobuf_message" => {
                config.protobuf_message = match decoder.string(value, path)?.as_str() {
                    "prometheus.WriteRequest" => ProtobufMessage::V1,
                    "io.prometheus.write.v2.Request" => ProtobufMessage::V2,
                    message => {
                        return Err(decoder.error(
                            value.line,
                            path,
                            format!(
                                "unknown remote write protobuf message {message:?} (prometheus.WriteRequest or io.prometheus.write.v2.Request)"
                            ),
                        ));
                    }
                }
            }
            "send_native_histograms" => {
                config.send_native_histograms = decoder.bool(value, path)?
            }
            "send_exemplars" | "round_robin_dns" => {
                if decoder.bool(value, path)? {
                    let what = match f.name.as_str() {
                        "send_exemplars" => "sending exemplars",
                        _ => "round-robin DNS",
                    };
                    return Err(decoder.unsupported(&f, what));
                }
            }
            "sigv4" => config.sigv4 = Some(sigv4(decoder, value, path)?),
            "azuread" | "google_iam" => {
                return Err(decoder.unsupported(&f, "cloud-provider request signing"));
            }
            _ => {
                if !http::decode_field(decoder, &mut config.http, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    check_remote_url(
        decoder,
        &config.url,
        url_line.unwrap_or(node.line),
        field,
        "remote_write",
    )?;
    http::validate(decoder, &config.http, node.line, field)?;
    if config.sigv4.is_some()
        && (config.http.basic_auth.is_some()
            || config.http.authorization.is_some()
            || config.http.oauth2.is_some())
    {
        return Err(decoder.error(
            node.line,
            field,
            "at most one of basic_auth, authorization, oauth2, sigv4 must be configured",
        ));
    }
    Ok(config)
}

fn remote_reads(decoder: &mut Decoder, node: &Node) -> Result<Vec<RemoteReadConfig>, ConfigError> {
    let mut configs: Vec<RemoteReadConfig> = Vec::new();
    for (index, item) in decoder.sequence(node, "remote_read")?.iter().enumerate() {
        let field = format!("remote_read[{index}]");
        let config = remote_read(decoder, item, &field)?;
        if !config.name.is_empty()
            && let Some(previous) = configs.iter().position(|c| c.name == config.name)
        {
            return Err(decoder.error(
                item.line,
                &format!("{field}.name"),
                format!(
                    "found multiple remote read configs with name {:?} (also remote_read[{previous}])",
                    config.name
                ),
            ));
        }
        configs.push(config);
    }
    Ok(configs)
}

/// A `remote_write` or `remote_read` entry's `headers`, sorted; the
/// headers the protocol sets itself may not be overridden.
fn remote_headers(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut headers = Vec::new();
    for h in decoder.fields(node, field)? {
        if http::is_reserved_header(&h.name) {
            return Err(decoder.error(
                h.key.line,
                &h.path,
                format!("{} is a reserved header; it may not be overridden", h.name),
            ));
        }
        let text = decoder.string(h.value, &h.path)?;
        headers.push((h.name, text));
    }
    headers.sort();
    Ok(headers)
}

/// A remote entry's `url`: present, and http(s) with a host.
fn check_remote_url(
    decoder: &Decoder,
    url: &str,
    line: u64,
    field: &str,
    section: &str,
) -> Result<(), ConfigError> {
    let url_field = format!("{field}.url");
    if url.is_empty() {
        return Err(decoder.error(line, &url_field, format!("url for {section} is empty")));
    }
    if check_url(url).is_err() {
        return Err(decoder.error(
            line,
            &url_field,
            format!("invalid URL {url:?} (expected http:// or https:// with a host)"),
        ));
    }
    Ok(())
}

fn remote_read(
    decoder: &mut Decoder,
    node: &Node,
    field: &str,
) -> Result<RemoteReadConfig, ConfigError> {
    let mut config = RemoteReadConfig {
        url: String::new(),
        name: String::new(),
        remote_timeout_ms: DEFAULT_REMOTE_READ_TIMEOUT_MS,
        headers: Vec::new(),
        http: HttpClientConfig::default(),
        required_matchers: Vec::new(),
        read_recent: false,
        filter_external_labels: true,
    };
    let mut url_line = None;
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "url" => {
                config.url = decoder.string(value, path)?;
                url_line = Some(value.line);
            }
            "name" => config.name = decoder.string(value, path)?,
            "remote_timeout" => {
                config.remote_timeout_ms = decoder.positive_duration(value, path)?
            }
            "headers" => config.headers = remote_headers(decoder, value, path)?,
            "required_matchers" => {
                for m in decoder.fields(value, path)? {
                    let text = decoder.string(m.value, &m.path)?;
                    config.required_matchers.push((m.name, text));
                }
                config.required_matchers.sort();
            }
            "read_recent" => config.read_recent = decoder.bool(value, path)?,
            "filter_external_labels" => {
                config.filter_external_labels = decoder.bool(value, path)?
            }
            _ => {
                if !http::decode_field(decoder, &mut config.http, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    check_remote_url(
        decoder,
        &config.url,
        url_line.unwrap_or(node.line),
        field,
        "remote_read",
    )?;
    http::validate(decoder, &config.http, node.line, field)?;
    Ok(config)
}

/// `sigv4`: region and static keys. AWS profiles and role assumption need
/// the AWS SDK's credential chain, which osprey does not carry.
fn sigv4(decoder: &Decoder, node: &Node, field: &str) -> Result<SigV4Config, ConfigError> {
    let mut config = SigV4Config {
        region: String::new(),
        access_key: None,
        secret_key: None,
    };
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "region" => config.region = decoder.string(value, path)?,
            "access_key" => config.access_key = Some(decoder.string(value, path)?),
            "secret_key" => config.secret_key = Some(decoder.string(value, path)?),
            "profile" | "role_arn" | "use_fips_sts_endpoint" => {
                return Err(decoder.unsupported(
                    &f,
                    "AWS profiles and role assumption (give access_key and secret_key, or the AWS_* environment variables)",
                ));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if config.region.is_empty() {
        config.region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .unwrap_or_default();
    }
    if config.region.is_empty() {
        return Err(decoder.error(
            node.line,
            &format!("{field}.region"),
            "no region: set region, or AWS_REGION in the environment",
        ));
    }
    if config.access_key.is_some() != config.secret_key.is_some() {
        return Err(decoder.error(
            node.line,
            field,
            "access_key and secret_key must be set together",
        ));
    }
    Ok(config)
}

fn queue_config(decoder: &Decoder, node: &Node, field: &str) -> Result<QueueConfig, ConfigError> {
    let mut queue = QueueConfig::default();
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        let positive = |n: u64| {
            if n == 0 {
                Err(decoder.error(value.line, path, "must be greater than zero"))
            } else {
                Ok(n)
            }
        };
        match f.name.as_str() {
            "capacity" => queue.capacity = positive(decoder.unsigned(value, path)?)?,
            "max_shards" => queue.max_shards = positive(decoder.unsigned(value, path)?)?,
            "min_shards" => queue.min_shards = positive(decoder.unsigned(value, path)?)?,
            "max_samples_per_send" => {
                queue.max_samples_per_send = positive(decoder.unsigned(value, path)?)?
            }
            "batch_send_deadline" => {
                queue.batch_send_deadline_ms = decoder.positive_duration(value, path)?
            }
            "min_backoff" => queue.min_backoff_ms = decoder.positive_duration(value, path)?,
            "max_backoff" => queue.max_backoff_ms = decoder.positive_duration(value, path)?,
            "retry_on_http_429" => queue.retry_on_http_429 = decoder.bool(value, path)?,
            "sample_age_limit" => {
                if decoder.duration(value, path)? != 0 {
                    return Err(decoder.unsupported(&f, "dropping samples by age"));
                }
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    if queue.min_shards > queue.max_shards {
        return Err(decoder.error(
            node.line,
            field,
            format!(
                "min_shards ({}) is greater than max_shards ({})",
                queue.min_shards, queue.max_shards
            ),
        ));
    }
    if queue.min_backoff_ms > queue.max_backoff_ms {
        return Err(decoder.error(node.line, field, "min_backoff is greater than max_backoff"));
    }
    Ok(queue)
}

/// `metadata_config`: osprey does not send metadata, so `send` must be
/// false.
fn metadata_config(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<MetadataConfig, ConfigError> {
    let mut config = MetadataConfig::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "send" => config.send = decoder.bool(f.value, &f.path)?,
            "send_interval" => {
                config.send_interval_ms = decoder.positive_duration(f.value, &f.path)?
            }
            "max_samples_per_send" => {
                let n = decoder.unsigned(f.value, &f.path)?;
                if n == 0 {
                    return Err(decoder.error(f.value.line, &f.path, "must be greater than zero"));
                }
                config.max_samples_per_send = n;
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(config)
}

/// Parses a file_sd file (JSON or YAML: a list of `{targets, labels}`).
pub fn parse_file_sd(file_name: &str, text: &str) -> Result<Vec<StaticConfig>, ConfigError> {
    let root = crate::decode::parse_yaml(file_name, text)?;
    let decoder = Decoder::new(file_name, None);
    let mut groups = Vec::new();
    for (index, item) in decoder.sequence(&root, "(document)")?.iter().enumerate() {
        groups.push(static_config(&decoder, item, &format!("[{index}]"))?);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests;
