//! From discovered target groups to scrape targets: Prometheus's label
//! defaults, `relabel_configs`, the scrape URL and the target's identity.
//!
//! A discovered target starts with its group's labels, `__address__` and
//! any `__meta_*` labels of its discovery, plus defaults the job provides
//! when the target does not: `job`, `__scheme__`, `__metrics_path__`,
//! `__scrape_interval__`, `__scrape_timeout__` and one `__param_<name>` per
//! URL parameter. Relabelling may change any of them or drop the target.
//! Afterwards labels starting with `__` are removed and `instance`
//! defaults to the address. Like Prometheus 3, no default port is added.

use std::collections::BTreeMap;

use model::Labels;
use model::duration::{format_duration_ms, parse_duration_ms};
use reqwest::Url;

use crate::relabel::process;
use config::{ScrapeConfig, StaticConfig};

/// Label holding the `host:port` to scrape.
pub const ADDRESS_LABEL: &str = "__address__";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_LABEL_PREFIX: &str = "__param_";
pub const INSTANCE_LABEL: &str = "instance";
pub const JOB_LABEL: &str = "job";

/// A target group as discovery hands it over: a static config plus the
/// discovery's own labels (`__meta_filepath` for files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    pub group: StaticConfig,
    pub meta_labels: Vec<(String, String)>,
}

/// A target that survived relabelling.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Labels before relabelling, defaults included.
    pub discovered_labels: Labels,
    /// Labels attached to every scraped sample.
    pub labels: Labels,
    pub scrape_url: String,
    pub scrape_interval_ms: i64,
    pub scrape_timeout_ms: i64,
}

impl Target {
    /// What makes two targets the same loop: final labels and URL.
    pub fn identity(&self) -> String {
        format!("{}|{}", self.labels, self.scrape_url)
    }
}

/// Turns discovered groups into targets to scrape and the discovered
/// label sets that relabelling dropped (or that were unusable).
pub fn build_targets(job: &ScrapeConfig, groups: &[TargetGroup]) -> (Vec<Target>, Vec<Labels>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut dropped = Vec::new();
    for group in groups {
        for address in &group.group.targets {
            let mut labels: BTreeMap<String, String> = BTreeMap::new();
            for (name, value) in group.meta_labels.iter().chain(&group.group.labels) {
                labels.insert(name.clone(), value.clone());
            }
            labels.insert(ADDRESS_LABEL.to_string(), address.clone());
            let defaults = [
                (JOB_LABEL.to_string(), job.job_name.clone()),
                (SCHEME_LABEL.to_string(), job.scheme.as_str().to_string()),
                (METRICS_PATH_LABEL.to_string(), job.metrics_path.clone()),
                (
                    SCRAPE_INTERVAL_LABEL.to_string(),
                    format_duration_ms(job.scrape_interval_ms),
                ),
                (
                    SCRAPE_TIMEOUT_LABEL.to_string(),
                    format_duration_ms(job.scrape_timeout_ms),
                ),
            ];
            for (name, value) in defaults {
                labels.entry(name).or_insert(value);
            }
            for (name, values) in &job.params {
                if let Some(first) = values.first() {
                    labels
                        .entry(format!("{PARAM_LABEL_PREFIX}{name}"))
                        .or_insert_with(|| first.clone());
                }
            }
            labels.retain(|_, value| !value.is_empty());
            let discovered =
                Labels::from_pairs(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            match finish_target(job, labels) {
                Some(mut target) => {
                    target.discovered_labels = discovered;
                    if !targets.iter().any(|t| t.identity() == target.identity()) {
                        targets.push(target);
                    }
                }
                None => dropped.push(discovered),
            }
        }
    }
    (targets, dropped)
}

/// Relabels one discovered label set and derives the target, or `None`
/// when it is dropped or unusable (no address, bad interval, bad URL).
fn finish_target(job: &ScrapeConfig, mut labels: BTreeMap<String, String>) -> Option<Target> {
    if !process(&mut labels, &job.relabel_configs) {
        return None;
    }
    let address = labels.get(ADDRESS_LABEL)?.clone();
    if address.contains('/') {
        tracing::warn!(job = %job.job_name, %address, "target address must not contain '/'; dropped");
        return None;
    }
    let scheme = labels
        .get(SCHEME_LABEL)
        .cloned()
        .unwrap_or_else(|| "http".into());
    let path = labels
        .get(METRICS_PATH_LABEL)
        .cloned()
        .unwrap_or_else(|| "/metrics".into());
    let interval_ms = match labels.get(SCRAPE_INTERVAL_LABEL) {
        Some(text) => parse_duration_ms(text).ok().filter(|ms| *ms > 0)?,
        None => job.scrape_interval_ms,
    };
    let timeout_ms = match labels.get(SCRAPE_TIMEOUT_LABEL) {
        Some(text) => parse_duration_ms(text).ok().filter(|ms| *ms > 0)?,
        None => job.scrape_timeout_ms,
    };
    if timeout_ms > interval_ms {
        tracing::warn!(job = %job.job_name, %address, "scrape timeout greater than interval; dropped");
        return None;
    }

    let mut url = Url::parse(&format!("{scheme}://{address}")).ok()?;
    url.set_path(&path);
    // Parameters: the job's lists, with `__param_<name>` overriding the
    // first value of a name (or adding a new name).
    let mut params: BTreeMap<String, Vec<String>> = job.params.iter().cloned().collect();
    for (name, value) in &labels {
        if let Some(param) = name.strip_prefix(PARAM_LABEL_PREFIX) {
            let values = params.entry(param.to_string()).or_default();
            if values.is_empty() {
                values.push(value.clone());
            } else {
                values[0] = value.clone();
            }
        }
    }
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }

    let mut public: BTreeMap<String, String> = labels
        .into_iter()
        .filter(|(name, _)| !name.starts_with("__"))
        .collect();
    public
        .entry(INSTANCE_LABEL.to_string())
        .or_insert_with(|| address.clone());
    Some(Target {
        discovered_labels: Labels::empty(),
        labels: Labels::from_pairs(public.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        scrape_url: url.to_string(),
        scrape_interval_ms: interval_ms,
        scrape_timeout_ms: timeout_ms,
    })
}

/// The URL with a loopback host replaced by `hostname`, as Prometheus's
/// `globalUrl` does, so that links work from other machines.
pub fn global_url(scrape_url: &str, hostname: &str) -> String {
    let Ok(mut url) = Url::parse(scrape_url) else {
        return scrape_url.to_string();
    };
    let loopback = matches!(
        url.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]") | Some("::1")
    );
    if loopback && !hostname.is_empty() && url.set_host(Some(hostname)).is_ok() {
        return url.to_string();
    }
    scrape_url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::GlobalConfig;

    fn job_from(yaml: &str) -> ScrapeConfig {
        config::parse("t.yml", yaml, None)
            .unwrap()
            .scrape_configs
            .remove(0)
    }

    fn groups(job: &ScrapeConfig) -> Vec<TargetGroup> {
        job.static_configs
            .iter()
            .map(|group| TargetGroup {
                group: group.clone(),
                meta_labels: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn defaults_and_instance() {
        let job = ScrapeConfig {
            static_configs: vec![StaticConfig {
                targets: vec!["localhost:9100".into()],
                labels: vec![("env".into(), "dev".into())],
            }],
            ..ScrapeConfig::new("node", &GlobalConfig::default())
        };
        let (targets, dropped) = build_targets(&job, &groups(&job));
        assert!(dropped.is_empty());
        let target = &targets[0];
        assert_eq!(target.scrape_url, "http://localhost:9100/metrics");
        assert_eq!(
            target.labels.to_string(),
            r#"{env="dev", instance="localhost:9100", job="node"}"#
        );
        assert_eq!(
            target.discovered_labels.get("__scrape_interval__"),
            Some("1m")
        );
        assert_eq!(target.discovered_labels.get("__scheme__"), Some("http"));
        assert_eq!(
            target.discovered_labels.get("__metrics_path__"),
            Some("/metrics")
        );
        assert_eq!(
            global_url(&target.scrape_url, "box1"),
            "http://box1:9100/metrics"
        );
    }

    #[test]
    fn relabelling_shapes_targets() {
        let job = job_from(
            r#"
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: [https://example.com, http://drop.me]
    relabel_configs:
      - source_labels: [__address__]
        regex: http://drop.*
        action: drop
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:9115
      - target_label: __scrape_interval__
        replacement: 30s
"#,
        );
        let (targets, dropped) = build_targets(&job, &groups(&job));
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].get("__address__"), Some("http://drop.me"));
        assert_eq!(targets.len(), 1);
        let target = &targets[0];
        assert_eq!(
            target.scrape_url,
            "http://127.0.0.1:9115/probe?module=http_2xx&target=https%3A%2F%2Fexample.com"
        );
        assert_eq!(target.labels.get("instance"), Some("https://example.com"));
        assert_eq!(target.labels.get("job"), Some("blackbox"));
        assert_eq!(target.scrape_interval_ms, 30_000);
        assert!(target.labels.iter().all(|l| !l.name.starts_with("__")));
    }
}
