//! osprey's configuration: the whole config file (a superset of
//! `prometheus.yml`), read once into typed structs, and the HTTP client
//! every config-named connection is built with.
//!
//! - [`load_file`] / [`parse`] read a file into a [`Config`]: Prometheus's
//!   sections (`global`, `scrape_configs`, `scrape_config_files`,
//!   `rule_files`, `alerting`, `remote_write`, in [`prometheus`]) and
//!   osprey's (`alertmanager` in [`alertmanager`], `exporters` in
//!   [`blackbox`], `dashboards`, `slos` in [`slos`], `models` in
//!   [`models`], `anomaly_rules`, `limits` in [`limits`]). Files the config names that are part of
//!   the config itself (an `alertmanager:` path, `scrape_config_files`)
//!   are read and checked too, so a [`Config`] that loaded is one that can
//!   be applied whole.
//! - Every section is decoded the same way, by [`decode::Decoder`] over the
//!   line-numbered [`yaml::Node`] tree: errors read
//!   `file:line: field.path: message`. Unknown fields are errors where
//!   Prometheus or Alertmanager make them errors, and so are fields and
//!   sections osprey knows of but does not implement
//!   ([`decode::Decoder::unsupported`]): a user must never believe that a
//!   setting such as `auth:` protects the API when nothing reads it.
//! - [`http::HttpClientConfig`] is Prometheus's `http_config`, and
//!   [`client::HttpClient`] the one builder for it (TLS, proxies, OAuth2,
//!   credentials read per request), used by scraping, the alert sender,
//!   remote write, blackbox probes and the alert manager's receivers.
//!
//! # Adding a section
//!
//! A new top-level section (models, SLOs, OTLP, storage tiers, auth, ...)
//! joins in four steps: a module with its typed struct (plain data with
//! the defaults filled in) and a `decode(&mut Decoder, &Node, path)`
//! function that uses only the [`decode`] helpers; a field on [`Config`];
//! an arm in `decode_document` replacing the section's
//! `unsupported` arm; and a page in `docs/configuration.md`. Its owner
//! crate receives the typed section and never re-reads the file.
//!
//! This crate does not run anything: it reads files and builds clients.

pub mod alertmanager;
pub mod blackbox;
pub mod client;
pub mod costs;
pub mod decode;
pub mod glob;
pub mod http;
pub mod limits;
pub mod mask;
pub mod models;
pub mod otlp;
pub mod prometheus;
pub mod secret;
pub mod slos;
pub mod storage;
pub mod traces;
pub mod web;

use std::path::{Path, PathBuf};

pub use client::{ClientOptions, HttpClient};
pub use decode::Decoder;
pub use http::HttpClientConfig;
pub use prometheus::{
    AlertingConfig, AlertmanagerTarget, FileSdConfig, GlobalConfig, MetadataConfig, QueueConfig,
    RemoteReadConfig, RemoteWriteConfig, Scheme, ScrapeConfig, SigV4Config, StaticConfig,
};

use yaml::Node;

/// A config error: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the position is unknown (a file that cannot be read).
    pub line: u64,
    /// The field path, e.g. `scrape_configs[0].scrape_interval`.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file (it cannot be read, say).
    pub fn file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: 0,
            field: "(file)".to_string(),
            message: message.into(),
        }
    }
}

/// The whole config file, every section typed and checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// The name errors use: the file's path, or a name for built-in text.
    pub name: String,
    /// The file the config came from; `None` for built-in text.
    pub path: Option<PathBuf>,
    /// The text as read, for `/api/v1/status/config`.
    pub text: String,
    pub global: GlobalConfig,
    /// `scrape_configs` followed by those of `scrape_config_files`.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// `rule_files` patterns, relative ones joined to the config's
    /// directory; see [`Config::rule_files`].
    pub rule_file_patterns: Vec<String>,
    pub alerting: AlertingConfig,
    pub remote_write: Vec<RemoteWriteConfig>,
    /// `remote_read`: other stores whose series queries include.
    pub remote_read: Vec<RemoteReadConfig>,
    /// `storage:`: per-series retention.
    pub storage: storage::StorageConfig,
    /// The `alertmanager:` section: the alert manager to run inside the
    /// server, inline or from a file.
    pub alertmanager: Option<alertmanager::Section>,
    /// `exporters:`: the built-in exporters' settings.
    pub exporters: blackbox::ExportersConfig,
    /// `dashboards: {paths: [...]}`, relative ones joined to the config's
    /// directory.
    pub dashboard_paths: Vec<PathBuf>,
    /// `slos:`: the SLO spec files and their defaults.
    pub slos: slos::SlosConfig,
    /// `models:`: per-model quality-monitoring settings.
    pub models: Vec<models::ModelConfig>,
    /// `otlp:`: OTLP translation settings and the OTLP/HTTP listener.
    pub otlp: otlp::OtlpConfig,
    /// `traces:`: the trace store's retention and span metrics.
    pub traces: traces::TracesConfig,
    /// `anomaly_rules: true`: load osprey's starter anomaly rules
    /// (`docs/anomaly.md`); off when absent.
    pub anomaly_rules: bool,
    /// `costs:`: prices, step counters and budgets (`docs/costs.md`);
    /// `None` when absent (no cost series).
    pub costs: Option<costs::CostsConfig>,
    /// `limits:`: series limits (`docs/limits.md`); empty when absent.
    pub limits: model::limits::LimitsSpec,
    /// Deprecations and the like, one line each with file and line.
    pub warnings: Vec<String>,
}

impl Config {
    /// The rule files the patterns name now, sorted, without duplicates.
    pub fn rule_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for pattern in &self.rule_file_patterns {
            glob::expand_glob(pattern, &mut files);
        }
        files.sort();
        files.dedup();
        files
    }
}

/// Reads and parses the config file at `path`. Relative paths inside it
/// are relative to its directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::file(&name, format!("reading the file: {error}")))?;
    let mut config = parse(&name, &text, path.parent())?;
    config.path = Some(path.to_path_buf());
    Ok(config)
}

/// Parses config text. `name` is used in messages; relative paths are
/// joined to `base_dir` when given.
pub fn parse(name: &str, text: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
    let root = crate::decode::parse_yaml(name, text)?;
    let mut decoder = Decoder::new(name, base_dir);
    let mut config = decode_document(&mut decoder, &root, text)?;
    config.warnings.extend(decoder.take_warnings());
    Ok(config)
}

/// What becomes of a top-level section osprey does not read yet: its
/// message names what is missing and, where there is one, the issue
/// bringing it.
fn unimplemented_section(name: &str) -> Option<&'static str> {
    Some(match name {
        "tracing" => "exporting osprey's own traces",
        "runtime" => "runtime settings (a Go garbage-collector setting has no meaning here)",
        "auth" => {
            "an auth section (authentication, TLS and roles live in the web config file, --web.config.file)"
        }
        "drift" => "a separate drift section (model quality is configured under `models:`)",
        _ => return None,
    })
}

fn decode_document(decoder: &mut Decoder, root: &Node, text: &str) -> Result<Config, ConfigError> {
    let fields = decoder.fields(root, "")?;
    let mut sections = prometheus::Sections::default();
    let mut alertmanager = None;
    let mut exporters = blackbox::ExportersConfig::default();
    let mut exporters_line = 0;
    let mut dashboard_paths = Vec::new();
    let mut slos = slos::SlosConfig::default();
    let mut model_configs = Vec::new();
    let mut otlp_config = otlp::OtlpConfig::default();
    let mut traces_config = traces::TracesConfig::default();
    let mut anomaly_rules = false;
    let mut storage = storage::StorageConfig::default();
    let mut cost_config = None;
    let mut limits = model::limits::LimitsSpec::default();
    for field in &fields {
        if prometheus::decode_section(decoder, &mut sections, field)? {
            continue;
        }
        match field.name.as_str() {
            "alertmanager" => {
                alertmanager = Some(alertmanager::decode_section(decoder, field.value, text)?)
            }
            "exporters" => {
                exporters = blackbox::decode_exporters(decoder, field.value, "exporters")?;
                exporters_line = field.key.line;
            }
            "dashboards" => dashboard_paths = decode_dashboards(decoder, field.value)?,
            "slos" => slos = slos::decode(decoder, field.value, "slos")?,
            "models" => model_configs = models::decode(decoder, field)?,
            "otlp" => otlp_config = otlp::decode(decoder, field.value)?,
            "traces" => traces_config = traces::decode(decoder, field.value)?,
            "anomaly_rules" => anomaly_rules = decoder.bool(field.value, &field.path)?,
            "storage" => storage = storage::decode(decoder, field.value, &field.path)?,
            "costs" => cost_config = Some(costs::decode(decoder, field)?),
            "limits" => limits = limits::decode(decoder, field.value, &field.path)?,
            name => match unimplemented_section(name) {
                Some(what) => return Err(decoder.unsupported(field, what)),
                None => return Err(decoder.unknown(field)),
            },
        }
    }
    let sections = prometheus::finish(decoder, sections)?;
    // The exporters' own jobs must not take a name a job of the file has.
    for job in exporters.scrape_jobs("", &sections.global) {
        if sections
            .scrape_configs
            .iter()
            .any(|j| j.job_name == job.job_name)
        {
            return Err(decoder.error(
                exporters_line,
                &format!("exporters.{}", job.job_name),
                format!(
                    "the {0} instances are scraped as job {0:?}, which scrape_configs already has; rename that job or set exporters.{0}.scrape: false",
                    job.job_name
                ),
            ));
        }
    }
    Ok(Config {
        name: decoder.file().to_string(),
        path: None,
        text: text.to_string(),
        global: sections.global,
        scrape_configs: sections.scrape_configs,
        rule_file_patterns: sections.rule_files,
        alerting: sections.alerting,
        remote_write: sections.remote_write,
        remote_read: sections.remote_read,
        storage,
        alertmanager,
        exporters,
        dashboard_paths,
        slos,
        models: model_configs,
        otlp: otlp_config,
        traces: traces_config,
        anomaly_rules,
        costs: cost_config,
        limits,
        warnings: Vec::new(),
    })
}

/// `dashboards: {paths: [...]}`.
fn decode_dashboards(decoder: &Decoder, node: &Node) -> Result<Vec<PathBuf>, ConfigError> {
    let mut paths = Vec::new();
    for field in decoder.fields(node, "dashboards")? {
        match field.name.as_str() {
            "paths" => {
                for path in decoder.string_list(field.value, &field.path)? {
                    paths.push(PathBuf::from(decoder.resolve(&path)));
                }
            }
            _ => return Err(decoder.unknown(&field)),
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests;
