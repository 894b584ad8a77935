//! Scraping, as the server runs it: the configuration file (or the embedded
//! default), reloads (`POST /-/reload`, SIGHUP through [`AppState::reload`]),
//! the dashboard paths of its `dashboards:` section ([`DashboardPaths`]),
//! and the `targets` and `metadata` endpoints.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scrape::{ScrapeManager, ScrapeManagerOptions};
use serde_json::{Map, Value, json};

use crate::api::{labels_json, read_params, success};
use crate::{ApiError, AppState};

/// Where the configuration comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A `prometheus.yml` (or osprey superset), re-read on every reload.
    File(PathBuf),
    /// Text built in (the default when no file is given).
    Embedded {
        name: String,
        text: String,
        /// Rule files built in, as (name, text), loaded besides any
        /// `rule_files` of `text`.
        rules: Vec<(String, String)>,
    },
}

impl ConfigSource {
    /// The file, when the configuration comes from one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ConfigSource::File(path) => Some(path),
            ConfigSource::Embedded { .. } => None,
        }
    }

    /// Built-in rule files, as (name, text).
    pub fn embedded_rules(&self) -> &[(String, String)] {
        match self {
            ConfigSource::File(_) => &[],
            ConfigSource::Embedded { rules, .. } => rules,
        }
    }

    /// The name errors give the configuration, and the directory its
    /// relative paths start from.
    fn name_and_base(&self) -> (String, &Path) {
        match self {
            ConfigSource::File(path) => (
                path.display().to_string(),
                path.parent().unwrap_or(Path::new("")),
            ),
            ConfigSource::Embedded { name, .. } => (name.clone(), Path::new("")),
        }
    }

    /// Reads and parses the configuration: its text, the typed config and
    /// the blackbox modules of its `exporters` section. Warnings are logged.
    pub fn load(&self) -> Result<(String, scrape::Config, crate::exporters::Modules), String> {
        let (name, text) = match self {
            ConfigSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading config file {}: {e}", path.display()))?;
                (path.display().to_string(), text)
            }
            ConfigSource::Embedded { name, text, .. } => (name.clone(), text.clone()),
        };
        let config = scrape::parse_config(&name, &text).map_err(|e| e.to_string())?;
        for w in &config.warnings {
            tracing::warn!(config = %name, "{w}");
        }
        let modules = crate::exporters::modules_from_config(&name, &text, &config)?;
        Ok((text, config, modules))
    }
}

/// The dashboard files named by the `dashboards:` section of the
/// configuration in effect (resolved against the configuration file's
/// directory), or why that section could not be read. Set on every
/// successful load; cloning shares it, so the UI's dashboard store can ask
/// for the paths in effect without holding the server's state.
#[derive(Clone, Debug)]
pub struct DashboardPaths {
    paths: Arc<RwLock<Result<Vec<PathBuf>, String>>>,
}

impl Default for DashboardPaths {
    fn default() -> DashboardPaths {
        DashboardPaths {
            paths: Arc::new(RwLock::new(Ok(Vec::new()))),
        }
    }
}

impl DashboardPaths {
    /// The paths in effect (each a file, a directory or a `*` pattern).
    pub fn get(&self) -> Result<Vec<PathBuf>, String> {
        self.paths.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, paths: Result<Vec<PathBuf>, String>) {
        *self.paths.write().unwrap_or_else(|e| e.into_inner()) = paths;
    }

    /// Takes the `dashboards:` section of `config`, read from the file
    /// `name` whose directory is `base`. A bad section does not fail the
    /// load: the dashboards list shows the error instead.
    pub(crate) fn update(&self, name: &str, base: &Path, config: &scrape::Config) {
        self.set(dashboard_paths(name, base, config));
    }

    /// Takes the `dashboards:` section of a configuration text that is
    /// only shown, never loaded ([`crate::ServerConfig::config_yaml`]).
    pub(crate) fn update_from_text(&self, config_file: Option<&str>, text: &str) {
        if text.is_empty() {
            return self.set(Ok(Vec::new()));
        }
        let name = config_file.unwrap_or("<embedded default>");
        let base = config_file
            .and_then(|f| Path::new(f).parent())
            .unwrap_or(Path::new(""));
        match scrape::parse_config(name, text) {
            Ok(config) => self.update(name, base, &config),
            Err(e) => self.set(Err(e.to_string())),
        }
    }
}

/// The `dashboards:` section of the configuration.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardsSection {
    #[serde(default)]
    paths: Vec<String>,
}

#[derive(serde::Deserialize)]
struct DashboardsRoot {
    dashboards: Option<DashboardsSection>,
}

/// The provisioning paths `config` names, resolved against `base`. An
/// error names the file.
fn dashboard_paths(
    name: &str,
    base: &Path,
    config: &scrape::Config,
) -> Result<Vec<PathBuf>, String> {
    let Some(section) = config.other_sections.get("dashboards") else {
        return Ok(Vec::new());
    };
    let root: DashboardsRoot =
        serde_saphyr::from_str(section).map_err(|e| format!("{name}: dashboards: {e}"))?;
    Ok(root
        .dashboards
        .map(|s| s.paths)
        .unwrap_or_default()
        .into_iter()
        .map(|p| base.join(p))
        .collect())
}

/// osprey's starter alert rules, loaded with the embedded default.
pub const STARTER_RULES: &str = include_str!("starter_rules.yml");

/// The embedded default: osprey scrapes its own `/metrics` and its
/// built-in host and GPU exporters every 15 s, and runs the starter alert
/// rules.
pub fn default_config(listen: std::net::SocketAddr) -> ConfigSource {
    ConfigSource::Embedded {
        name: "<embedded default>".to_string(),
        rules: vec![(
            "<embedded starter rules>".to_string(),
            STARTER_RULES.to_string(),
        )],
        text: format!(
            "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nscrape_configs:\n  - job_name: osprey\n    static_configs:\n      - targets: ['{listen}']\n  - job_name: host\n    metrics_path: /exporters/host/metrics\n    static_configs:\n      - targets: ['{listen}']\n  - job_name: gpu\n    metrics_path: /exporters/gpu/metrics\n    static_configs:\n      - targets: ['{listen}']\n"
        ),
    }
}

pub(crate) struct Scraping {
    manager: ScrapeManager,
    source: ConfigSource,
    /// The text of the configuration in effect, for `status/config`.
    text: RwLock<String>,
    /// One reload at a time.
    reload_lock: tokio::sync::Mutex<()>,
}

impl AppState {
    /// Loads the configuration and starts scraping. Call once, inside the
    /// runtime, before serving. A bad configuration is an error naming the
    /// file, line and field.
    pub async fn start_scraping(&self, source: ConfigSource) -> Result<(), String> {
        let (text, config, modules) = source.load()?;
        self.exporters().set_modules(modules);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        let manager = ScrapeManager::new(self.appendable(), ScrapeManagerOptions { hostname });
        self.apply_rules(&config, &source)?;
        self.apply_remote_write(&config).await?;
        manager.apply_config(&config).await;
        let (name, base) = source.name_and_base();
        self.dashboard_paths().update(&name, base, &config);
        let scraping = Scraping {
            manager,
            source,
            text: RwLock::new(text),
            reload_lock: tokio::sync::Mutex::new(()),
        };
        self.set_scraping(scraping)
            .map_err(|_| "scraping was already started".to_string())
    }

    /// Re-reads the configuration and applies it; unchanged scrape loops
    /// keep running. On error the running configuration stays in effect.
    pub async fn reload(&self) -> Result<(), String> {
        let Some(s) = self.scraping() else {
            return Ok(());
        };
        let _one = s.reload_lock.lock().await;
        let (text, config, modules) = s.source.load()?;
        self.exporters().set_modules(modules);
        self.apply_rules(&config, &s.source)?;
        self.apply_remote_write(&config).await?;
        s.manager.apply_config(&config).await;
        let (name, base) = s.source.name_and_base();
        self.dashboard_paths().update(&name, base, &config);
        *s.text.write().unwrap_or_else(|e| e.into_inner()) = text;
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Starts, changes or stops forwarding to the `remote_write` entries
    /// of `config`. Without [`crate::ServerConfig::remote_write_dir`] they
    /// are ignored with a warning.
    async fn apply_remote_write(&self, config: &scrape::Config) -> Result<(), String> {
        match &self.inner.forwarder {
            Some(forwarder) => {
                forwarder
                    .apply(&config.remote_write, &config.global.external_labels)
                    .await
            }
            None => {
                if !config.remote_write.is_empty() {
                    tracing::warn!(
                        "remote_write is ignored: this server has no data directory for its queue"
                    );
                }
                Ok(())
            }
        }
    }

    /// Stops forwarding: logging stops, and the queues send what they
    /// hold for at most `flush_deadline` (the rest is sent after the next
    /// start). Call after the writers (scraping, rules) have stopped.
    pub async fn stop_remote_write(&self, flush_deadline: std::time::Duration) {
        if let Some(forwarder) = &self.inner.forwarder {
            forwarder.stop(flush_deadline).await;
        }
    }

    /// Stops every scrape loop (writing staleness markers).
    pub async fn stop_scraping(&self) {
        if let Some(s) = self.scraping() {
            s.manager.stop().await;
        }
    }

    /// The configuration text in effect.
    pub(crate) fn config_text(&self) -> String {
        match self.scraping() {
            Some(s) => s.text.read().unwrap_or_else(|e| e.into_inner()).clone(),
            None => self.config().config_yaml.clone(),
        }
    }
}

/// `POST|PUT /-/reload`.
pub(crate) async fn reload(State(state): State<AppState>) -> Response {
    match state.reload().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

/// `GET /api/v1/targets` with optional `state` (active, dropped, any) and
/// `scrapePool`.
pub(crate) async fn targets(State(state): State<AppState>, request: Request) -> Response {
    let params = match read_params(request).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // As in Prometheus, a list that was not asked for (or an unknown
    // `state`) is still present, empty, and the dropped counts are `null`
    // unless dropped targets were asked for.
    let which = params.get("state").unwrap_or("any").to_ascii_lowercase();
    let show_active = which == "any" || which == "active";
    let show_dropped = which == "any" || which == "dropped";
    let pool = params.get("scrapePool").map(str::to_string);
    let snapshot = state.scraping().map(|s| s.manager.targets());
    let (active, dropped) = match snapshot {
        Some(s) => (s.active, s.dropped),
        None => (Vec::new(), Vec::new()),
    };
    let in_pool = |p: &str| pool.as_deref().is_none_or(|want| want == p);
    let mut data = Map::new();
    let active_list: Vec<Value> = if show_active {
        active
            .iter()
            .filter(|t| in_pool(&t.scrape_pool))
            .map(|t| {
                json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.scrape_pool,
                    "scrapeUrl": t.scrape_url,
                    "globalUrl": t.global_url,
                    "lastError": t.last_error,
                    "lastScrape": t.last_scrape.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string()),
                    "lastScrapeDuration": t.last_scrape_duration_seconds,
                    "health": t.health.as_str(),
                    "scrapeInterval": t.scrape_interval,
                    "scrapeTimeout": t.scrape_timeout,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    data.insert("activeTargets".into(), Value::Array(active_list));
    if show_dropped {
        // The counts cover every pool, whatever `scrapePool` filters.
        let mut counts: Map<String, Value> = Map::new();
        for t in &dropped {
            let n = counts
                .get(&t.scrape_pool)
                .and_then(Value::as_u64)
                .unwrap_or(0);
            counts.insert(t.scrape_pool.clone(), json!(n + 1));
        }
        let list: Vec<Value> = dropped
            .iter()
            .filter(|t| in_pool(&t.scrape_pool))
            .map(|t| {
                json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "scrapePool": t.scrape_pool,
                })
            })
            .collect();
        data.insert("droppedTargets".into(), Value::Array(list));
        data.insert("droppedTargetCounts".into(), Value::Object(counts));
    } else {
        data.insert("droppedTargets".into(), Value::Array(Vec::new()));
        data.insert("droppedTargetCounts".into(), Value::Null);
    }
    success(Value::Object(data), &[])
}

/// `GET /api/v1/metadata` with optional `metric`, `limit`,
/// `limit_per_metric`.
pub(crate) async fn metadata(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let limit = metadata_limit(&params, "limit")?;
        let per_metric = metadata_limit(&params, "limit_per_metric")?.filter(|&n| n > 0);
        let all = state
            .scraping()
            .map(|s| s.manager.metadata())
            .unwrap_or_default();
        let mut data = Map::new();
        for (metric, entries) in all {
            if params.get("metric").is_some_and(|m| m != metric) {
                continue;
            }
            if limit.is_some_and(|l| data.len() >= l) {
                break;
            }
            let mut list: Vec<Value> = Vec::new();
            for m in entries {
                let v = json!({"type": m.metric_type.as_str(), "help": m.help, "unit": m.unit});
                if !list.contains(&v) {
                    list.push(v);
                }
            }
            if let Some(n) = per_metric {
                list.truncate(n);
            }
            data.insert(metric, Value::Array(list));
        }
        Ok::<_, ApiError>(success(Value::Object(data), &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/targets/metadata` with optional `match_target` (a label
/// selector over target labels), `metric` and `limit`.
pub(crate) async fn targets_metadata(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let params = read_params(request).await?;
        let limit = metadata_limit(&params, "limit")?;
        let matchers = match params.get("match_target") {
            Some(s) => crate::selector::parse_series_selector(s).map_err(|e| {
                ApiError::bad_data(format!("invalid parameter \"match_target\": {e}"))
            })?,
            None => Vec::new(),
        };
        let all = state
            .scraping()
            .map(|s| s.manager.target_metadata())
            .unwrap_or_default();
        let list: Vec<Value> = all
            .iter()
            .filter(|m| model::matcher::matches_all(&m.target, &matchers))
            .filter(|m| {
                params
                    .get("metric")
                    .is_none_or(|want| want == m.metadata.metric)
            })
            .take(limit.unwrap_or(usize::MAX))
            .map(|m| {
                let mut entry = json!({
                    "target": labels_json(&m.target),
                    "metric": m.metadata.metric,
                    "type": m.metadata.metric_type.as_str(),
                    "help": m.metadata.help,
                    "unit": m.metadata.unit,
                });
                // Prometheus leaves out the metric name it was asked for.
                if params.get("metric").is_some()
                    && let Some(object) = entry.as_object_mut()
                {
                    object.remove("metric");
                }
                entry
            })
            .collect();
        Ok::<_, ApiError>(success(Value::Array(list), &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `limit` and `limit_per_metric` of the metadata endpoints, read as
/// Prometheus reads them there (unlike the series endpoints): a negative
/// value means no limit, 0 an empty answer, and anything not an integer is
/// `<name> must be a number`.
fn metadata_limit(params: &crate::params::Params, name: &str) -> Result<Option<usize>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n < 0 => Ok(None),
            Ok(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Err(_) => Err(ApiError::bad_data(format!("{name} must be a number"))),
        },
    }
}

/// RFC 3339 in UTC with nanoseconds, as Prometheus prints `lastScrape`.
fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Milliseconds since the epoch as Go's RFC 3339 with nanoseconds prints
/// a `time.Time` in JSON: UTC, fraction without trailing zeros.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_string()
    };
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000000Z"
        );
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }
}
