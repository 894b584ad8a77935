//! The scrape side of `prometheus.yml`: YAML in, plain structs out.
//!
//! [`parse_config`] reads a whole `prometheus.yml` (or an osprey superset of
//! it) and returns a [`Config`] with Prometheus's defaults filled in. The
//! scrape engine ([`crate::ScrapeManager`]) takes only these plain structs;
//! this module is the one place in the crate that knows YAML (see
//! ARCHITECTURE.md for why it lives here and not in `server`).
//!
//! Unknown fields and bad values are errors of the form
//! `prometheus.yml:12: scrape_configs[0].scrape_interval: invalid duration "5x"`.
//! Top-level sections that belong to other parts of Prometheus or osprey
//! (`remote_read`, `storage`, `alertmanager`, `slos`, ...) are accepted and
//! kept as their raw YAML text span for their owners; `rule_files`,
//! `alerting` and `remote_write` are parsed here.
//! Scrape-config fields Prometheus has but osprey does not implement yet
//! (service discoveries other than files and static lists, OAuth2,
//! proxies) are accepted with a warning in [`Config::warnings`].

use std::collections::BTreeMap;

use model::duration::parse_duration_ms;

use crate::relabel::{RelabelAction, RelabelConfig, RelabelRegex, is_valid_label_name};
use yaml::{Node, NodeValue, parse_document};

/// Prometheus's default scrape interval (1m).
pub const DEFAULT_SCRAPE_INTERVAL_MS: i64 = 60_000;
/// Prometheus's default scrape timeout (10s), capped at the interval.
pub const DEFAULT_SCRAPE_TIMEOUT_MS: i64 = 10_000;
/// Prometheus's default rule evaluation interval (1m).
pub const DEFAULT_EVALUATION_INTERVAL_MS: i64 = 60_000;
/// Prometheus's default `file_sd_configs` refresh interval (5m).
pub const DEFAULT_FILE_SD_REFRESH_MS: i64 = 300_000;

/// A parsed configuration: the scrape side in full, the rest as raw YAML.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub global: GlobalConfig,
    pub scrape_configs: Vec<ScrapeConfig>,
    /// `rule_files` patterns as written (relative to the config file).
    pub rule_files: Vec<String>,
    /// The `alerting` section: where alerts go and how they are relabelled.
    pub alerting: AlertingConfig,
    /// The `remote_write` entries, in file order.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Other known top-level sections, by name, as the YAML text they were
    /// written as (from their key to the next top-level key).
    pub other_sections: BTreeMap<String, String>,
    /// Things accepted but not acted on, one line each, with file and line.
    pub warnings: Vec<String>,
}

/// The `global` section.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalConfig {
    pub scrape_interval_ms: i64,
    pub scrape_timeout_ms: i64,
    pub evaluation_interval_ms: i64,
    /// Sorted by name.
    pub external_labels: Vec<(String, String)>,
}

impl Default for GlobalConfig {
    fn default() -> GlobalConfig {
        GlobalConfig {
            scrape_interval_ms: DEFAULT_SCRAPE_INTERVAL_MS,
            scrape_timeout_ms: DEFAULT_SCRAPE_TIMEOUT_MS,
            evaluation_interval_ms: DEFAULT_EVALUATION_INTERVAL_MS,
            external_labels: Vec::new(),
        }
    }
}

/// The `alerting` section of `prometheus.yml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertingConfig {
    /// Applied to every alert before it is sent (after external labels).
    pub alert_relabel_configs: Vec<RelabelConfig>,
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alerting.alertmanagers` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerConfig {
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
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub tls_config: TlsConfig,
    pub follow_redirects: bool,
}

/// Prometheus's default `remote_write.remote_timeout` (30s).
pub const DEFAULT_REMOTE_TIMEOUT_MS: i64 = 30_000;

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
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub tls_config: TlsConfig,
    pub follow_redirects: bool,
    /// Applied to each series' labels (after external labels) before it
    /// is sent; a series they drop is not sent.
    pub write_relabel_configs: Vec<RelabelConfig>,
    pub queue_config: QueueConfig,
}

/// `remote_write.queue_config`, with Prometheus's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
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

/// Headers a `remote_write.headers` entry may not set: the sender owns them.
const RESERVED_REMOTE_WRITE_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "content-encoding",
    "content-type",
    "content-length",
    "x-prometheus-remote-write-version",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "retry-after",
];

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
    /// default (OpenMetrics first, then the text format).
    pub scrape_protocols: Vec<String>,
    /// Ask for gzip (`enable_compression`, default true).
    pub enable_compression: bool,
    pub follow_redirects: bool,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub tls_config: TlsConfig,
    /// 0 means no limit, for all limits.
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub body_size_limit_bytes: u64,
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
            enable_compression: true,
            follow_redirects: true,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            target_limit: 0,
            body_size_limit_bytes: 0,
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

/// A `file_sd_configs` entry. Globs may appear in the last path element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    pub refresh_interval_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

/// The `Authorization` header: `type` (default `Bearer`) and credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub kind: String,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

/// A config error: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the position is unknown.
    pub line: u64,
    /// The field path, e.g. `scrape_configs[0].scrape_interval`.
    pub field: String,
    pub message: String,
}

/// Parses a `prometheus.yml`. `file_name` is only used in messages.
pub fn parse_config(file_name: &str, text: &str) -> Result<Config, ConfigError> {
    let root = parse_document(text).map_err(|(line, message)| ConfigError {
        file: file_name.to_string(),
        line,
        field: "(document)".to_string(),
        message,
    })?;
    let mut reader = Reader {
        file: file_name,
        warnings: Vec::new(),
    };
    reader.config(&root, text)
}

/// Top-level sections of Prometheus that other parts of osprey own.
const PROMETHEUS_OTHER_SECTIONS: &[&str] = &[
    "remote_read",
    "storage",
    "tracing",
    "otlp",
    "runtime",
    "scrape_config_files",
];

/// osprey's own top-level sections.
const OSPREY_SECTIONS: &[&str] = &[
    "alertmanager",
    "slos",
    "drift",
    "dashboards",
    "exporters",
    "auth",
];

/// Scrape-config fields Prometheus has that osprey accepts but ignores.
const IGNORED_SCRAPE_FIELDS: &[&str] = &[
    "fallback_scrape_protocol",
    "scrape_classic_histograms",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "track_timestamps_staleness",
    "keep_dropped_targets",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "scrape_failure_log_file",
    "enable_http2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "oauth2",
    "http_headers",
];

/// Global fields Prometheus has that osprey accepts but ignores.
const IGNORED_GLOBAL_FIELDS: &[&str] = &[
    "query_log_file",
    "scrape_failure_log_file",
    "rule_query_offset",
    "scrape_protocols",
    "convert_classic_histograms_to_nhcb",
    "always_scrape_classic_histograms",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "keep_dropped_targets",
];

/// Global fields that set per-job defaults for the limits.
const GLOBAL_LIMIT_FIELDS: &[&str] = &[
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
    "body_size_limit",
];

struct Reader<'a> {
    file: &'a str,
    warnings: Vec<String>,
}

type Entries<'n> = &'n [(Node, Node)];

impl Reader<'_> {
    fn error(&self, line: u64, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn warn(&mut self, line: u64, field: &str, message: &str) {
        self.warnings
            .push(format!("{}:{line}: {field}: {message}", self.file));
    }

    /// The entries of a mapping; null counts as an empty mapping.
    fn mapping<'n>(&self, node: &'n Node, field: &str) -> Result<Entries<'n>, ConfigError> {
        node.as_mapping()
            .map_err(|message| self.error(node.line, field, message))
    }

    fn sequence<'n>(&self, node: &'n Node, field: &str) -> Result<&'n [Node], ConfigError> {
        node.as_sequence()
            .map_err(|message| self.error(node.line, field, message))
    }

    /// A scalar as a string, as Go's YAML decoder would give it to a
    /// string field.
    fn string(&self, node: &Node, field: &str) -> Result<String, ConfigError> {
        node.as_string()
            .map_err(|message| self.error(node.line, field, message))
    }

    fn bool(&self, node: &Node, field: &str) -> Result<bool, ConfigError> {
        match &node.value {
            NodeValue::Bool(value) => Ok(*value),
            other => Err(self.error(
                node.line,
                field,
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    }

    fn unsigned(&self, node: &Node, field: &str) -> Result<u64, ConfigError> {
        match &node.value {
            NodeValue::Int(number) => u64::try_from(*number).map_err(|_| {
                self.error(
                    node.line,
                    field,
                    format!("expected a non-negative integer, got {number}"),
                )
            }),
            other => Err(self.error(
                node.line,
                field,
                format!("expected a non-negative integer, got {}", describe(other)),
            )),
        }
    }

    fn duration(&self, node: &Node, field: &str) -> Result<i64, ConfigError> {
        let text = self.string(node, field)?;
        parse_duration_ms(&text)
            .map_err(|_| self.error(node.line, field, format!("invalid duration {text:?}")))
    }

    fn string_list(&self, node: &Node, field: &str) -> Result<Vec<String>, ConfigError> {
        self.sequence(node, field)?
            .iter()
            .enumerate()
            .map(|(index, item)| self.string(item, &format!("{field}[{index}]")))
            .collect()
    }

    /// A `name: value` mapping of labels, with names checked.
    fn label_map(&self, node: &Node, field: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let mut labels = Vec::new();
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            if !is_valid_label_name(&name) {
                return Err(self.error(key.line, &path, format!("invalid label name {name:?}")));
            }
            labels.push((name, self.string(value, &path)?));
        }
        labels.sort();
        Ok(labels)
    }

    fn config(&mut self, root: &Node, text: &str) -> Result<Config, ConfigError> {
        let entries = self.mapping(root, "(document)")?;
        let mut global = GlobalConfig::default();
        let mut global_limits: Vec<(&str, &Node)> = Vec::new();
        let mut other_sections = BTreeMap::new();
        let mut scrape_node = None;
        let mut rule_files = Vec::new();
        let mut alerting = AlertingConfig::default();
        let mut remote_write = Vec::new();

        let top_lines: Vec<u64> = entries.iter().map(|(key, _)| key.line).collect();
        for (index, (key, value)) in entries.iter().enumerate() {
            let name = self.string(key, "(document)")?;
            match name.as_str() {
                "global" => {
                    global = self.global(value, &mut global_limits)?;
                }
                "scrape_configs" => scrape_node = Some(value),
                "rule_files" => rule_files = self.string_list(value, "rule_files")?,
                "alerting" => alerting = self.alerting(value)?,
                "remote_write" => remote_write = self.remote_writes(value)?,
                _ if PROMETHEUS_OTHER_SECTIONS.contains(&name.as_str())
                    || OSPREY_SECTIONS.contains(&name.as_str()) =>
                {
                    let end_line = top_lines.get(index + 1).copied();
                    other_sections.insert(name, raw_lines(text, key.line, end_line));
                }
                _ => {
                    return Err(self.error(key.line, &name, "unknown field"));
                }
            }
        }

        let mut scrape_configs: Vec<ScrapeConfig> = Vec::new();
        if let Some(node) = scrape_node {
            for (index, item) in self.sequence(node, "scrape_configs")?.iter().enumerate() {
                let field = format!("scrape_configs[{index}]");
                let job = self.scrape_config(item, &field, &global, &global_limits)?;
                if let Some(previous) = scrape_configs
                    .iter()
                    .position(|existing| existing.job_name == job.job_name)
                {
                    return Err(self.error(
                        item.line,
                        &format!("{field}.job_name"),
                        format!(
                            "found multiple scrape configs with job name {:?} (also scrape_configs[{previous}])",
                            job.job_name
                        ),
                    ));
                }
                scrape_configs.push(job);
            }
        }
        Ok(Config {
            global,
            scrape_configs,
            rule_files,
            alerting,
            remote_write,
            other_sections,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn alerting(&mut self, node: &Node) -> Result<AlertingConfig, ConfigError> {
        let mut alerting = AlertingConfig::default();
        for (key, value) in self.mapping(node, "alerting")? {
            let name = self.string(key, "alerting")?;
            let path = format!("alerting.{name}");
            match name.as_str() {
                "alert_relabel_configs" => {
                    alerting.alert_relabel_configs = self.relabel_configs(value, &path)?
                }
                "alertmanagers" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let field = format!("{path}[{index}]");
                        alerting
                            .alertmanagers
                            .push(self.alertmanager(item, &field)?);
                    }
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        Ok(alerting)
    }

    fn alertmanager(
        &mut self,
        node: &Node,
        field: &str,
    ) -> Result<AlertmanagerConfig, ConfigError> {
        let mut am = AlertmanagerConfig {
            scheme: Scheme::Http,
            path_prefix: String::new(),
            timeout_ms: 10_000,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            alert_relabel_configs: Vec::new(),
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            follow_redirects: true,
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "scheme" => {
                    am.scheme = match self.string(value, &path)?.as_str() {
                        "http" => Scheme::Http,
                        "https" => Scheme::Https,
                        other => {
                            return Err(self.error(
                                value.line,
                                &path,
                                format!("invalid scheme {other:?} (expected http or https)"),
                            ));
                        }
                    }
                }
                "path_prefix" => am.path_prefix = self.string(value, &path)?,
                "timeout" => am.timeout_ms = self.positive_duration(value, &path)?,
                "api_version" => {
                    let version = self.string(value, &path)?;
                    if version != "v2" {
                        return Err(self.error(
                            value.line,
                            &path,
                            format!("unsupported Alertmanager API version {version:?} (only v2)"),
                        ));
                    }
                }
                "static_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        am.static_configs
                            .push(self.static_config(item, &format!("{path}[{index}]"))?);
                    }
                }
                "file_sd_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        am.file_sd_configs
                            .push(self.file_sd_config(item, &format!("{path}[{index}]"))?);
                    }
                }
                "relabel_configs" => am.relabel_configs = self.relabel_configs(value, &path)?,
                "alert_relabel_configs" => {
                    am.alert_relabel_configs = self.relabel_configs(value, &path)?
                }
                "basic_auth" => am.basic_auth = Some(self.basic_auth(value, &path)?),
                "authorization" => am.authorization = Some(self.authorization(value, &path)?),
                "tls_config" => am.tls_config = self.tls_config(value, &path)?,
                "follow_redirects" => am.follow_redirects = self.bool(value, &path)?,
                "enable_http2"
                | "proxy_url"
                | "no_proxy"
                | "proxy_from_environment"
                | "proxy_connect_header"
                | "oauth2"
                | "http_headers"
                | "sigv4" => self.warn(key.line, &path, "accepted but not implemented; ignored"),
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        Ok(am)
    }

    fn remote_writes(&mut self, node: &Node) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
        let mut configs: Vec<RemoteWriteConfig> = Vec::new();
        for (index, item) in self.sequence(node, "remote_write")?.iter().enumerate() {
            let field = format!("remote_write[{index}]");
            let config = self.remote_write(item, &field)?;
            if !config.name.is_empty()
                && let Some(previous) = configs.iter().position(|c| c.name == config.name)
            {
                return Err(self.error(
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

    fn remote_write(&mut self, node: &Node, field: &str) -> Result<RemoteWriteConfig, ConfigError> {
        let mut config = RemoteWriteConfig {
            url: String::new(),
            name: String::new(),
            remote_timeout_ms: DEFAULT_REMOTE_TIMEOUT_MS,
            headers: Vec::new(),
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            write_relabel_configs: Vec::new(),
            queue_config: QueueConfig::default(),
        };
        let mut url_line = None;
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "url" => {
                    config.url = self.string(value, &path)?;
                    url_line = Some(value.line);
                }
                "name" => config.name = self.string(value, &path)?,
                "remote_timeout" => {
                    config.remote_timeout_ms = self.positive_duration(value, &path)?
                }
                "headers" => {
                    for (header, header_value) in self.mapping(value, &path)? {
                        let header_name = self.string(header, &path)?;
                        let header_path = format!("{path}.{header_name}");
                        if RESERVED_REMOTE_WRITE_HEADERS
                            .contains(&header_name.to_ascii_lowercase().as_str())
                        {
                            return Err(self.error(
                                header.line,
                                &header_path,
                                format!(
                                    "{header_name} is a reserved header; it may not be overridden"
                                ),
                            ));
                        }
                        let text = self.string(header_value, &header_path)?;
                        config.headers.push((header_name, text));
                    }
                    config.headers.sort();
                }
                "basic_auth" => config.basic_auth = Some(self.basic_auth(value, &path)?),
                "authorization" => config.authorization = Some(self.authorization(value, &path)?),
                "tls_config" => config.tls_config = self.tls_config(value, &path)?,
                "follow_redirects" => config.follow_redirects = self.bool(value, &path)?,
                "write_relabel_configs" => {
                    config.write_relabel_configs = self.relabel_configs(value, &path)?
                }
                "queue_config" => config.queue_config = self.queue_config(value, &path)?,
                "metadata_config" => self.metadata_config(value, &path)?,
                "protobuf_message" => {
                    let message = self.string(value, &path)?;
                    if message != "prometheus.WriteRequest" {
                        return Err(self.error(
                            value.line,
                            &path,
                            format!("unsupported message {message:?} (only prometheus.WriteRequest, remote write 1.0)"),
                        ));
                    }
                }
                "send_exemplars" | "send_native_histograms" => {
                    self.bool(value, &path)?;
                    self.warn(key.line, &path, "accepted; osprey sends float samples only");
                }
                "enable_http2"
                | "proxy_url"
                | "no_proxy"
                | "proxy_from_environment"
                | "proxy_connect_header"
                | "oauth2"
                | "sigv4"
                | "azuread"
                | "google_iam"
                | "http_headers"
                | "round_robin_dns" => {
                    self.warn(key.line, &path, "accepted but not implemented; ignored")
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        let url_field = format!("{field}.url");
        let line = url_line.unwrap_or(node.line);
        if config.url.is_empty() {
            return Err(self.error(line, &url_field, "url for remote_write is empty"));
        }
        match reqwest::Url::parse(&config.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                return Err(self.error(
                    line,
                    &url_field,
                    format!(
                        "invalid URL {:?} (expected http:// or https:// with a host)",
                        config.url
                    ),
                ));
            }
        }
        if config.basic_auth.is_some() && config.authorization.is_some() {
            return Err(self.error(
                node.line,
                field,
                "at most one of basic_auth & authorization must be configured",
            ));
        }
        Ok(config)
    }

    fn queue_config(&mut self, node: &Node, field: &str) -> Result<QueueConfig, ConfigError> {
        let mut queue = QueueConfig::default();
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            let positive = |reader: &Self, n: u64| {
                if n == 0 {
                    Err(reader.error(value.line, &path, "must be greater than zero"))
                } else {
                    Ok(n)
                }
            };
            match name.as_str() {
                "capacity" => queue.capacity = positive(self, self.unsigned(value, &path)?)?,
                "max_shards" => queue.max_shards = positive(self, self.unsigned(value, &path)?)?,
                "min_shards" => queue.min_shards = positive(self, self.unsigned(value, &path)?)?,
                "max_samples_per_send" => {
                    queue.max_samples_per_send = positive(self, self.unsigned(value, &path)?)?
                }
                "batch_send_deadline" => {
                    queue.batch_send_deadline_ms = self.positive_duration(value, &path)?
                }
                "min_backoff" => queue.min_backoff_ms = self.positive_duration(value, &path)?,
                "max_backoff" => queue.max_backoff_ms = self.positive_duration(value, &path)?,
                "retry_on_http_429" => queue.retry_on_http_429 = self.bool(value, &path)?,
                "sample_age_limit" => {
                    self.duration(value, &path)?;
                    self.warn(key.line, &path, "accepted but not implemented; ignored");
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if queue.min_shards > queue.max_shards {
            return Err(self.error(
                node.line,
                field,
                format!(
                    "min_shards ({}) is greater than max_shards ({})",
                    queue.min_shards, queue.max_shards
                ),
            ));
        }
        if queue.min_backoff_ms > queue.max_backoff_ms {
            return Err(self.error(node.line, field, "min_backoff is greater than max_backoff"));
        }
        Ok(queue)
    }

    /// `metadata_config` is checked and accepted; osprey does not send
    /// metadata yet.
    fn metadata_config(&mut self, node: &Node, field: &str) -> Result<(), ConfigError> {
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "send" => {
                    if self.bool(value, &path)? {
                        self.warn(key.line, &path, "metadata is not sent yet; ignored");
                    }
                }
                "send_interval" => {
                    self.duration(value, &path)?;
                }
                "max_samples_per_send" => {
                    self.unsigned(value, &path)?;
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        Ok(())
    }

    fn global<'n>(
        &mut self,
        node: &'n Node,
        limits: &mut Vec<(&'static str, &'n Node)>,
    ) -> Result<GlobalConfig, ConfigError> {
        let mut global = GlobalConfig::default();
        let mut timeout: Option<(i64, u64)> = None;
        for (key, value) in self.mapping(node, "global")? {
            let name = self.string(key, "global")?;
            let field = format!("global.{name}");
            match name.as_str() {
                "scrape_interval" => {
                    global.scrape_interval_ms = self.positive_duration(value, &field)?
                }
                "scrape_timeout" => {
                    timeout = Some((self.positive_duration(value, &field)?, value.line))
                }
                "evaluation_interval" => {
                    global.evaluation_interval_ms = self.positive_duration(value, &field)?
                }
                "external_labels" => global.external_labels = self.label_map(value, &field)?,
                _ => {
                    if let Some(limit) = GLOBAL_LIMIT_FIELDS.iter().find(|limit| **limit == name) {
                        if *limit == "body_size_limit" {
                            self.byte_size(value, &field)?;
                        } else {
                            self.unsigned(value, &field)?;
                        }
                        limits.push((limit, value));
                    } else if IGNORED_GLOBAL_FIELDS.contains(&name.as_str()) {
                        self.warn(key.line, &field, "accepted but not supported yet; ignored");
                    } else {
                        return Err(self.error(key.line, &field, "unknown field"));
                    }
                }
            }
        }
        match timeout {
            Some((timeout_ms, line)) => {
                if timeout_ms > global.scrape_interval_ms {
                    return Err(self.error(
                        line,
                        "global.scrape_timeout",
                        "scrape timeout greater than scrape interval",
                    ));
                }
                global.scrape_timeout_ms = timeout_ms;
            }
            None => {
                global.scrape_timeout_ms = DEFAULT_SCRAPE_TIMEOUT_MS.min(global.scrape_interval_ms)
            }
        }
        Ok(global)
    }

    fn positive_duration(&self, node: &Node, field: &str) -> Result<i64, ConfigError> {
        let value = self.duration(node, field)?;
        if value <= 0 {
            return Err(self.error(node.line, field, "must be greater than zero"));
        }
        Ok(value)
    }

    /// A Go `units.Base2Bytes` size: `0`, `512`, `10KB`, `10MiB`, `1GB`
    /// (all powers of 1024, as in Prometheus).
    fn byte_size(&self, node: &Node, field: &str) -> Result<u64, ConfigError> {
        let text = self.string(node, field)?;
        let bad = || self.error(node.line, field, format!("invalid size {text:?}"));
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        if digits_end == 0 {
            return Err(bad());
        }
        let number: u64 = text[..digits_end].parse().map_err(|_| bad())?;
        let multiplier: u64 = match &text[digits_end..] {
            "" | "B" => 1,
            "KB" | "KiB" | "K" => 1 << 10,
            "MB" | "MiB" | "M" => 1 << 20,
            "GB" | "GiB" | "G" => 1 << 30,
            "TB" | "TiB" | "T" => 1 << 40,
            "PB" | "PiB" | "P" => 1 << 50,
            _ => return Err(bad()),
        };
        number.checked_mul(multiplier).ok_or_else(bad)
    }

    fn scrape_config(
        &mut self,
        node: &Node,
        field: &str,
        global: &GlobalConfig,
        global_limits: &[(&str, &Node)],
    ) -> Result<ScrapeConfig, ConfigError> {
        let entries = self.mapping(node, field)?;
        let job_name = match entries.iter().find(|(key, _)| key_is(key, "job_name")) {
            Some((_, value)) => self.string(value, &format!("{field}.job_name"))?,
            None => return Err(self.error(node.line, field, "missing job_name")),
        };
        if job_name.is_empty() {
            return Err(self.error(node.line, &format!("{field}.job_name"), "job_name is empty"));
        }
        let mut job = ScrapeConfig::new(&job_name, global);
        for (limit, value) in global_limits {
            let limit_field = format!("global.{limit}");
            self.set_limit(&mut job, limit, value, &limit_field)?;
        }
        let mut timeout: Option<(i64, u64)> = None;
        for (key, value) in entries {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "job_name" => {}
                "scrape_interval" => {
                    job.scrape_interval_ms = self.positive_duration(value, &path)?;
                }
                "scrape_timeout" => {
                    timeout = Some((self.positive_duration(value, &path)?, value.line))
                }
                "metrics_path" => {
                    job.metrics_path = self.string(value, &path)?;
                    if !job.metrics_path.starts_with('/') {
                        return Err(self.error(
                            value.line,
                            &path,
                            format!("metrics_path {:?} must start with '/'", job.metrics_path),
                        ));
                    }
                }
                "scheme" => {
                    job.scheme = match self.string(value, &path)?.as_str() {
                        "http" => Scheme::Http,
                        "https" => Scheme::Https,
                        other => {
                            return Err(self.error(
                                value.line,
                                &path,
                                format!("invalid scheme {other:?} (expected http or https)"),
                            ));
                        }
                    }
                }
                "params" => {
                    let mut params = Vec::new();
                    for (param_key, param_values) in self.mapping(value, &path)? {
                        let param_name = self.string(param_key, &path)?;
                        let values =
                            self.string_list(param_values, &format!("{path}.{param_name}"))?;
                        params.push((param_name, values));
                    }
                    params.sort();
                    job.params = params;
                }
                "honor_labels" => job.honor_labels = self.bool(value, &path)?,
                "scrape_protocols" => {
                    let protocols = self.string_list(value, &path)?;
                    for protocol in &protocols {
                        if crate::scrape_loop::protocol_media_type(protocol).is_none() {
                            return Err(self.error(
                                value.line,
                                &path,
                                format!("unknown or unsupported scrape protocol {protocol:?} (supported: OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4)"),
                            ));
                        }
                    }
                    job.scrape_protocols = protocols;
                }
                "honor_timestamps" => job.honor_timestamps = self.bool(value, &path)?,
                "enable_compression" => job.enable_compression = self.bool(value, &path)?,
                "follow_redirects" => job.follow_redirects = self.bool(value, &path)?,
                "static_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let item_path = format!("{path}[{index}]");
                        job.static_configs
                            .push(self.static_config(item, &item_path)?);
                    }
                }
                "file_sd_configs" => {
                    for (index, item) in self.sequence(value, &path)?.iter().enumerate() {
                        let item_path = format!("{path}[{index}]");
                        job.file_sd_configs
                            .push(self.file_sd_config(item, &item_path)?);
                    }
                }
                "relabel_configs" => job.relabel_configs = self.relabel_configs(value, &path)?,
                "metric_relabel_configs" => {
                    job.metric_relabel_configs = self.relabel_configs(value, &path)?
                }
                "basic_auth" => job.basic_auth = Some(self.basic_auth(value, &path)?),
                "authorization" => job.authorization = Some(self.authorization(value, &path)?),
                "bearer_token" | "bearer_token_file" => {
                    let token = self.string(value, &path)?;
                    let (credentials, credentials_file) = if name == "bearer_token" {
                        (Some(token), None)
                    } else {
                        (None, Some(token))
                    };
                    job.authorization = Some(Authorization {
                        kind: "Bearer".to_string(),
                        credentials,
                        credentials_file,
                    });
                }
                "tls_config" => job.tls_config = self.tls_config(value, &path)?,
                "sample_limit"
                | "label_limit"
                | "label_name_length_limit"
                | "label_value_length_limit"
                | "target_limit"
                | "body_size_limit" => {
                    self.set_limit(&mut job, &name, value, &path)?;
                }
                _ if name.ends_with("_sd_configs") => {
                    self.warn(
                        key.line,
                        &path,
                        "this service discovery is not supported yet; its targets are ignored",
                    );
                }
                _ if IGNORED_SCRAPE_FIELDS.contains(&name.as_str()) => {
                    self.warn(key.line, &path, "accepted but not supported yet; ignored");
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if job.basic_auth.is_some() && job.authorization.is_some() {
            return Err(self.error(
                node.line,
                field,
                "at most one of basic_auth and authorization (or bearer_token) may be set",
            ));
        }
        match timeout {
            Some((timeout_ms, line)) => {
                if timeout_ms > job.scrape_interval_ms {
                    return Err(self.error(
                        line,
                        &format!("{field}.scrape_timeout"),
                        format!(
                            "scrape timeout greater than scrape interval for scrape config with job name {job_name:?}"
                        ),
                    ));
                }
                job.scrape_timeout_ms = timeout_ms;
            }
            None => {
                // Prometheus caps the inherited timeout at the job's interval.
                job.scrape_timeout_ms = global.scrape_timeout_ms.min(job.scrape_interval_ms);
            }
        }
        Ok(job)
    }

    fn set_limit(
        &self,
        job: &mut ScrapeConfig,
        name: &str,
        value: &Node,
        path: &str,
    ) -> Result<(), ConfigError> {
        match name {
            "sample_limit" => job.sample_limit = self.unsigned(value, path)?,
            "label_limit" => job.label_limit = self.unsigned(value, path)?,
            "label_name_length_limit" => {
                job.label_name_length_limit = self.unsigned(value, path)?
            }
            "label_value_length_limit" => {
                job.label_value_length_limit = self.unsigned(value, path)?
            }
            "target_limit" => job.target_limit = self.unsigned(value, path)?,
            _ => job.body_size_limit_bytes = self.byte_size(value, path)?,
        }
        Ok(())
    }

    fn static_config(&self, node: &Node, field: &str) -> Result<StaticConfig, ConfigError> {
        let mut config = StaticConfig {
            targets: Vec::new(),
            labels: Vec::new(),
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "targets" => config.targets = self.string_list(value, &path)?,
                "labels" => config.labels = self.label_map(value, &path)?,
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        Ok(config)
    }

    fn file_sd_config(&self, node: &Node, field: &str) -> Result<FileSdConfig, ConfigError> {
        let mut config = FileSdConfig {
            files: Vec::new(),
            refresh_interval_ms: DEFAULT_FILE_SD_REFRESH_MS,
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "files" => {
                    config.files = self.string_list(value, &path)?;
                    for (index, file) in config.files.iter().enumerate() {
                        let ok = [".json", ".yml", ".yaml"]
                            .iter()
                            .any(|extension| file.ends_with(extension));
                        if !ok {
                            return Err(self.error(
                                value.line,
                                &format!("{path}[{index}]"),
                                format!("path {file:?} is not a valid file_sd file (want .json, .yml or .yaml)"),
                            ));
                        }
                        let directory = file.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                        if directory.contains(['*', '?', '[']) {
                            return Err(self.error(
                                value.line,
                                &format!("{path}[{index}]"),
                                format!("path {file:?}: patterns are only allowed in the last path element"),
                            ));
                        }
                    }
                }
                "refresh_interval" => {
                    config.refresh_interval_ms = self.positive_duration(value, &path)?
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if config.files.is_empty() {
            return Err(self.error(
                node.line,
                field,
                "file service discovery config must contain at least one path name",
            ));
        }
        // As in Prometheus, relative paths are relative to the directory of
        // the configuration file.
        if let Some(base) = std::path::Path::new(self.file)
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            for file in &mut config.files {
                if std::path::Path::new(file.as_str()).is_relative() {
                    *file = base.join(file.as_str()).display().to_string();
                }
            }
        }
        Ok(config)
    }

    fn relabel_configs(&self, node: &Node, field: &str) -> Result<Vec<RelabelConfig>, ConfigError> {
        let mut configs = Vec::new();
        for (index, item) in self.sequence(node, field)?.iter().enumerate() {
            let path = format!("{field}[{index}]");
            let mut config = RelabelConfig::new();
            for (key, value) in self.mapping(item, &path)? {
                let name = self.string(key, &path)?;
                let value_path = format!("{path}.{name}");
                match name.as_str() {
                    "source_labels" => {
                        config.source_labels = self.string_list(value, &value_path)?
                    }
                    "separator" => config.separator = self.string(value, &value_path)?,
                    "regex" => {
                        let source = self.string(value, &value_path)?;
                        config.regex = RelabelRegex::new(&source)
                            .map_err(|message| self.error(value.line, &value_path, message))?;
                    }
                    "modulus" => config.modulus = self.unsigned(value, &value_path)?,
                    "target_label" => config.target_label = self.string(value, &value_path)?,
                    "replacement" => config.replacement = self.string(value, &value_path)?,
                    "action" => {
                        let action = self.string(value, &value_path)?;
                        config.action = RelabelAction::parse(&action).ok_or_else(|| {
                            self.error(
                                value.line,
                                &value_path,
                                format!("unknown relabel action {action:?}"),
                            )
                        })?;
                    }
                    _ => return Err(self.error(key.line, &value_path, "unknown field")),
                }
            }
            config
                .validate()
                .map_err(|message| self.error(item.line, &path, message))?;
            configs.push(config);
        }
        Ok(configs)
    }

    fn basic_auth(&self, node: &Node, field: &str) -> Result<BasicAuth, ConfigError> {
        let mut auth = BasicAuth {
            username: String::new(),
            password: None,
            password_file: None,
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "username" => auth.username = self.string(value, &path)?,
                "password" => auth.password = Some(self.string(value, &path)?),
                "password_file" => auth.password_file = Some(self.string(value, &path)?),
                "username_file" => {
                    return Err(self.error(key.line, &path, "username_file is not supported yet"));
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if auth.password.is_some() && auth.password_file.is_some() {
            return Err(self.error(
                node.line,
                field,
                "at most one of basic_auth password & password_file must be configured",
            ));
        }
        Ok(auth)
    }

    fn authorization(&self, node: &Node, field: &str) -> Result<Authorization, ConfigError> {
        let mut auth = Authorization {
            kind: "Bearer".to_string(),
            credentials: None,
            credentials_file: None,
        };
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "type" => {
                    auth.kind = self.string(value, &path)?;
                    if auth.kind.eq_ignore_ascii_case("basic") {
                        return Err(self.error(
                            value.line,
                            &path,
                            "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
                        ));
                    }
                }
                "credentials" => auth.credentials = Some(self.string(value, &path)?),
                "credentials_file" => auth.credentials_file = Some(self.string(value, &path)?),
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if auth.credentials.is_some() && auth.credentials_file.is_some() {
            return Err(self.error(
                node.line,
                field,
                "at most one of authorization credentials & credentials_file must be configured",
            ));
        }
        Ok(auth)
    }

    fn tls_config(&self, node: &Node, field: &str) -> Result<TlsConfig, ConfigError> {
        let mut tls = TlsConfig::default();
        for (key, value) in self.mapping(node, field)? {
            let name = self.string(key, field)?;
            let path = format!("{field}.{name}");
            match name.as_str() {
                "ca_file" => tls.ca_file = Some(self.string(value, &path)?),
                "cert_file" => tls.cert_file = Some(self.string(value, &path)?),
                "key_file" => tls.key_file = Some(self.string(value, &path)?),
                "server_name" => tls.server_name = Some(self.string(value, &path)?),
                "insecure_skip_verify" => tls.insecure_skip_verify = self.bool(value, &path)?,
                "ca" | "cert" | "key" | "min_version" | "max_version" | "key_password_file" => {
                    return Err(self.error(key.line, &path, "not supported yet"));
                }
                _ => return Err(self.error(key.line, &path, "unknown field")),
            }
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(self.error(
                node.line,
                field,
                "cert_file and key_file must both be set or both be absent",
            ));
        }
        Ok(tls)
    }
}

fn key_is(key: &Node, name: &str) -> bool {
    matches!(&key.value, NodeValue::String(text) if text == name)
}

/// A value quoted back in an error message.
fn describe(value: &NodeValue) -> String {
    match value {
        NodeValue::String(text) => format!("{text:?}"),
        NodeValue::Int(number) => number.to_string(),
        NodeValue::Float(number) => number.to_string(),
        NodeValue::Bool(flag) => flag.to_string(),
        other => other.kind_name().to_string(),
    }
}

/// Lines `[start, end)` of `text` (1-based), or to the end.
fn raw_lines(text: &str, start: u64, end: Option<u64>) -> String {
    let start = start.max(1) as usize;
    let lines = text.lines().skip(start - 1);
    match end {
        Some(end) if end as usize > start => lines
            .take(end as usize - start)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => lines.collect::<Vec<_>>().join("\n"),
    }
}

/// Parses a file_sd file (JSON or YAML: a list of `{targets, labels}`).
pub fn parse_file_sd(file_name: &str, text: &str) -> Result<Vec<StaticConfig>, ConfigError> {
    let root = parse_document(text).map_err(|(line, message)| ConfigError {
        file: file_name.to_string(),
        line,
        field: "(document)".to_string(),
        message,
    })?;
    let reader = Reader {
        file: file_name,
        warnings: Vec::new(),
    };
    let mut groups = Vec::new();
    for (index, item) in reader.sequence(&root, "(document)")?.iter().enumerate() {
        groups.push(reader.static_config(item, &format!("[{index}]"))?);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests;
