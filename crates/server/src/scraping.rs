//! Scraping, as the server runs it: the configuration file (or the embedded
//! default), reloads (`POST /-/reload`, SIGHUP through [`AppState::reload`]),
//! and the `targets` and `metadata` endpoints.

use std::path::PathBuf;
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

    pub(crate) fn load(
        &self,
    ) -> Result<(String, scrape::Config, crate::exporters::Modules), String> {
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
        let storage: Arc<dyn model::storage::Appendable> = self.storage().clone();
        let manager = ScrapeManager::new(storage, ScrapeManagerOptions { hostname });
        self.apply_rules(&config, &source)?;
        manager.apply_config(&config).await;
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
        s.manager.apply_config(&config).await;
        *s.text.write().unwrap_or_else(|e| e.into_inner()) = text;
        tracing::info!("configuration reloaded");
        Ok(())
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
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    model::time::format_rfc3339(secs, d.subsec_nanos(), model::time::Fraction::Nanos)
}

/// Milliseconds since the epoch as Go's RFC 3339 with nanoseconds prints
/// a `time.Time` in JSON: UTC, fraction without trailing zeros.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    model::time::format_rfc3339_ms(ms, model::time::Fraction::Trimmed)
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
