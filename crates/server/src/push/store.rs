//! The pushed groups: parsing a push body into metric families, the
//! Pushgateway's replacement and consistency rules, and the groups file
//! (`docs/format/pushgateway.md`) that makes every acknowledged change
//! durable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use model::exposition::{Entry, Format, MetricType, Parser, sample_labels};
use model::{Labels, LabelsBuilder, METRIC_NAME};
use serde::{Deserialize, Serialize};

use super::path::Grouping;

/// The gauge of each group's last successful change.
pub const PUSH_TIME_METRIC: &str = "push_time_seconds";
/// The gauge of each group's last failed change.
pub const PUSH_FAILURE_TIME_METRIC: &str = "push_failure_time_seconds";

/// One metric family of a push: its samples carry complete label sets,
/// grouping labels applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    /// The `# TYPE` keyword (`untyped` when none was given).
    pub kind: String,
    pub help: String,
    pub push_time_ms: i64,
    pub samples: Vec<(Labels, f64)>,
}

/// A parsed push body.
#[derive(Debug)]
pub struct PushBody {
    pub families: Vec<Family>,
    /// Whether any sample carried a timestamp (refused by the consistency
    /// check, as the Pushgateway refuses it).
    pub has_timestamps: bool,
}

/// Reads a text-format (0.0.4) push body into metric families as the
/// Pushgateway's parser groups them: a sample belongs to the family of its
/// name, or, for `_bucket`/`_sum`/`_count` (`_sum`/`_count`), to the
/// histogram (summary) family declared by `# TYPE` under the name without
/// the suffix. Each sample gets the grouping labels (replacing its own
/// values; an empty grouping value removes the label).
pub fn parse_push_body(body: &[u8], grouping: &Grouping) -> Result<PushBody, String> {
    let mut families: Vec<Family> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut declared_types: HashMap<String, MetricType> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut has_timestamps = false;
    fn family_at<'f>(
        families: &'f mut Vec<Family>,
        index: &mut HashMap<String, usize>,
        name: &str,
    ) -> &'f mut Family {
        let i = *index.entry(name.to_string()).or_insert_with(|| {
            families.push(Family {
                name: name.to_string(),
                kind: "untyped".to_string(),
                help: String::new(),
                push_time_ms: 0,
                samples: Vec::new(),
            });
            families.len() - 1
        });
        &mut families[i]
    }
    for entry in Parser::new(body, Format::Text) {
        let entry = entry.map_err(|e| format!("text format parsing error: {e}"))?;
        match entry {
            Entry::Help { metric, text } => {
                if !helps.insert(metric.to_string()) {
                    return Err(format!("second HELP line for metric name {metric:?}"));
                }
                family_at(&mut families, &mut index, &metric).help = text.into_owned();
            }
            Entry::Type { metric, kind } => {
                let family = family_at(&mut families, &mut index, &metric);
                if declared_types.contains_key(metric.as_ref()) || !family.samples.is_empty() {
                    return Err(format!(
                        "second TYPE line for metric name {metric:?}, or TYPE reported after samples"
                    ));
                }
                family.kind = match kind {
                    MetricType::Unknown => "untyped".to_string(),
                    other => other.as_str().to_string(),
                };
                declared_types.insert(metric.into_owned(), kind);
            }
            Entry::Unit { .. } => {}
            Entry::Sample {
                name,
                labels,
                value,
                timestamp_ms,
                ..
            } => {
                has_timestamps |= timestamp_ms.is_some();
                let family_name = family_of(&name, &declared_types);
                let series = sample_labels(&name, &labels);
                let kind = declared_types.get(family_name).copied();
                check_sample(&name, family_name, kind, &series)?;
                let series = apply_grouping(&series, grouping);
                let family_name = family_name.to_string();
                family_at(&mut families, &mut index, &family_name)
                    .samples
                    .push((series, value));
            }
        }
    }
    // A family named only by `# HELP`/`# TYPE` lines holds no metric; the
    // Pushgateway's parser drops it too.
    families.retain(|f| !f.samples.is_empty());
    Ok(PushBody {
        families,
        has_timestamps,
    })
}

/// The family a sample named `name` belongs to.
fn family_of<'n>(name: &'n str, declared: &HashMap<String, MetricType>) -> &'n str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            match declared.get(base) {
                Some(MetricType::Histogram) => return base,
                Some(MetricType::Summary) if suffix != "_bucket" => return base,
                _ => {}
            }
        }
    }
    name
}

/// What the Pushgateway's parser refuses in a histogram or summary.
fn check_sample(
    name: &str,
    family: &str,
    kind: Option<MetricType>,
    series: &Labels,
) -> Result<(), String> {
    match kind {
        Some(MetricType::Histogram) if name.ends_with("_bucket") && name != family => {
            let le = series
                .get("le")
                .ok_or_else(|| format!("histogram bucket {series} has no \"le\" label"))?;
            parse_bound(le)
                .ok_or_else(|| format!("histogram bucket {series}: bad \"le\" {le:?}"))?;
        }
        Some(MetricType::Histogram) if name == family => {
            return Err(format!(
                "histogram {family:?} has a sample without a _bucket, _sum or _count suffix"
            ));
        }
        Some(MetricType::Summary) if name == family => {
            let q = series
                .get("quantile")
                .ok_or_else(|| format!("summary sample {series} has no \"quantile\" label"))?;
            parse_bound(q)
                .ok_or_else(|| format!("summary sample {series}: bad \"quantile\" {q:?}"))?;
        }
        _ => {}
    }
    Ok(())
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// Sets every grouping label on `series` (an empty value removes it).
fn apply_grouping(series: &Labels, grouping: &Grouping) -> Labels {
    let mut builder = LabelsBuilder::from_labels(series);
    for (name, value) in grouping {
        builder.set(name.clone(), value.clone());
    }
    builder.build()
}

/// The labels of a group's own series (`push_time_seconds`, ...).
fn group_series(name: &str, grouping: &Grouping) -> Labels {
    Labels::from_pairs(
        grouping
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(std::iter::once((METRIC_NAME, name))),
    )
}

/// One group: its families by name and its push times.
#[derive(Clone, Debug, Default, PartialEq)]
struct Group {
    families: BTreeMap<String, Family>,
    push_time_ms: i64,
    push_failure_time_ms: i64,
}

impl Group {
    /// Every series the group exposes, its push-time gauges included.
    fn series(&self, grouping: &Grouping, out: &mut Vec<(Labels, f64)>) {
        for family in self.families.values() {
            out.extend(family.samples.iter().cloned());
        }
        out.push((
            group_series(PUSH_TIME_METRIC, grouping),
            seconds(self.push_time_ms),
        ));
        out.push((
            group_series(PUSH_FAILURE_TIME_METRIC, grouping),
            seconds(self.push_failure_time_ms),
        ));
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// How a push changes its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMode {
    /// `PUT`: the pushed families replace the whole group.
    Replace,
    /// `POST`: the pushed families replace only the families of the same
    /// name.
    Merge,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The push breaks the consistency rules (400); the group's
    /// `push_failure_time_seconds` is set.
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Inconsistent(String),
    /// The groups file could not be written (500); nothing changed.
    #[error("cannot persist the pushed groups: {0}")]
    Persist(String),
}

/// Every pushed group, kept in memory and in `<dir>/groups.json`.
pub struct PushStore {
    file: Option<PathBuf>,
    groups: Mutex<BTreeMap<Grouping, Group>>,
}

impl PushStore {
    /// A store that keeps its groups in memory only (tests, no data dir).
    pub fn in_memory() -> PushStore {
        PushStore {
            file: None,
            groups: Mutex::new(BTreeMap::new()),
        }
    }

    /// Opens the store over `dir` (created if missing), reading the groups
    /// file if there is one. A file that cannot be read is an error: the
    /// server must not start and overwrite groups it could not load.
    pub fn open(dir: &Path) -> Result<PushStore, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let file = dir.join("groups.json");
        let groups = match std::fs::read(&file) {
            Ok(bytes) => decode_file(&bytes).map_err(|e| format!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("reading {}: {e}", file.display())),
        };
        Ok(PushStore {
            file: Some(file),
            groups: Mutex::new(groups),
        })
    }

    /// Applies a push: checks it against every group as the Pushgateway's
    /// consistency check does, then replaces (PUT) or merges (POST) the
    /// group, sets its push time, and persists before returning.
    pub fn push(
        &self,
        grouping: Grouping,
        body: PushBody,
        mode: PushMode,
        now_ms: i64,
    ) -> Result<(), PushError> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = groups.clone();
        let group = next.entry(grouping.clone()).or_default();
        if mode == PushMode::Replace {
            group.families.clear();
        }
        for mut family in body.families {
            // The Pushgateway sets these itself; a pushed one is replaced.
            if family.name == PUSH_TIME_METRIC || family.name == PUSH_FAILURE_TIME_METRIC {
                continue;
            }
            family.push_time_ms = now_ms;
            group.families.insert(family.name.clone(), family);
        }
        group.push_time_ms = now_ms;
        let check = if body.has_timestamps {
            Err("pushed metrics must not have timestamps".to_string())
        } else {
            check_consistency(&next)
        };
        if let Err(reason) = check {
            // Record the failure in the group (created if new), keeping
            // everything else as it was.
            let mut failed = groups.clone();
            failed.entry(grouping).or_default().push_failure_time_ms = now_ms;
            if let Err(e) = self.persist(&failed) {
                tracing::warn!(error = %e, "cannot persist a push failure time");
            } else {
                *groups = failed;
            }
            return Err(PushError::Inconsistent(reason));
        }
        self.persist(&next).map_err(PushError::Persist)?;
        *groups = next;
        Ok(())
    }

    /// Deletes a whole group (absent groups are fine) and persists.
    pub fn delete(&self, grouping: &Grouping) -> Result<(), PushError> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if !groups.contains_key(grouping) {
            return Ok(());
        }
        let mut next = groups.clone();
        next.remove(grouping);
        self.persist(&next).map_err(PushError::Persist)?;
        *groups = next;
        Ok(())
    }

    /// Every series the groups expose, as a scrape of the Pushgateway with
    /// `honor_labels: true` stores them. A label set exposed twice (only
    /// possible through a group whose grouping has an empty value) keeps
    /// its first value.
    pub fn series(&self) -> Vec<(Labels, f64)> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (grouping, group) in groups.iter() {
            group.series(grouping, &mut out);
        }
        drop(groups);
        let mut seen = HashSet::with_capacity(out.len());
        out.retain(|(labels, _)| seen.insert(labels.clone()));
        out
    }

    /// The number of groups (for tests and self-metrics).
    pub fn group_count(&self) -> usize {
        self.groups.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn persist(&self, groups: &BTreeMap<Grouping, Group>) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let bytes = encode_file(groups)?;
        model::durable::write_atomic(file, &bytes)
            .map_err(|e| format!("writing {}: {e}", file.display()))
    }
}

/// What a scrape of all groups would refuse: one family name with two
/// types, or one series exposed twice.
fn check_consistency(groups: &BTreeMap<Grouping, Group>) -> Result<(), String> {
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut seen: HashSet<&Labels> = HashSet::new();
    for group in groups.values() {
        for family in group.families.values() {
            match types.get(family.name.as_str()) {
                Some(kind) if *kind != family.kind => {
                    return Err(format!(
                        "gathered metric family {} has type {} but should have {}",
                        family.name, family.kind, kind
                    ));
                }
                _ => {
                    types.insert(&family.name, &family.kind);
                }
            }
            for (labels, _) in &family.samples {
                if !seen.insert(labels) {
                    return Err(format!(
                        "collected metric {labels} was collected before with the same name and label values"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOnDisk {
    version: u32,
    groups: Vec<GroupOnDisk>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupOnDisk {
    grouping: Vec<(String, String)>,
    push_time_ms: i64,
    push_failure_time_ms: i64,
    families: Vec<FamilyOnDisk>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyOnDisk {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    help: String,
    push_time_ms: i64,
    samples: Vec<SampleOnDisk>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleOnDisk {
    labels: Vec<(String, String)>,
    value: String,
}

const FILE_VERSION: u32 = 1;

fn encode_file(groups: &BTreeMap<Grouping, Group>) -> Result<Vec<u8>, String> {
    let file = FileOnDisk {
        version: FILE_VERSION,
        groups: groups
            .iter()
            .map(|(grouping, group)| GroupOnDisk {
                grouping: grouping
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
                push_time_ms: group.push_time_ms,
                push_failure_time_ms: group.push_failure_time_ms,
                families: group
                    .families
                    .values()
                    .map(|f| FamilyOnDisk {
                        name: f.name.clone(),
                        kind: f.kind.clone(),
                        help: f.help.clone(),
                        push_time_ms: f.push_time_ms,
                        samples: f
                            .samples
                            .iter()
                            .map(|(labels, value)| SampleOnDisk {
                                labels: labels
                                    .iter()
                                    .map(|l| (l.name.to_string(), l.value.to_string()))
                                    .collect(),
                                value: format!("{value:?}"),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&file).map_err(|e| e.to_string())
}

fn decode_file(bytes: &[u8]) -> Result<BTreeMap<Grouping, Group>, String> {
    let file: FileOnDisk = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FILE_VERSION {
        return Err(format!(
            "unsupported version {} (this osprey reads {FILE_VERSION})",
            file.version
        ));
    }
    let mut groups = BTreeMap::new();
    for (i, g) in file.groups.into_iter().enumerate() {
        let grouping: Grouping = g.grouping.into_iter().collect();
        if grouping.get("job").is_none_or(String::is_empty) {
            return Err(format!("groups[{i}]: no job in the grouping"));
        }
        let mut families = BTreeMap::new();
        for (j, f) in g.families.into_iter().enumerate() {
            let mut samples = Vec::with_capacity(f.samples.len());
            for (k, s) in f.samples.into_iter().enumerate() {
                let at = || format!("groups[{i}].families[{j}].samples[{k}]");
                let value: f64 = s
                    .value
                    .parse()
                    .map_err(|_| format!("{}: bad value {:?}", at(), s.value))?;
                if s.labels.iter().any(|(n, v)| n.is_empty() || v.is_empty())
                    || !s.labels.windows(2).all(|w| w[0].0 < w[1].0)
                {
                    return Err(format!(
                        "{}: labels must be sorted, unique and non-empty",
                        at()
                    ));
                }
                let labels = Labels::from_pairs(s.labels);
                if labels.metric_name().is_none() {
                    return Err(format!("{}: no metric name", at()));
                }
                samples.push((labels, value));
            }
            families.insert(
                f.name.clone(),
                Family {
                    name: f.name,
                    kind: f.kind,
                    help: f.help,
                    push_time_ms: f.push_time_ms,
                    samples,
                },
            );
        }
        let group = Group {
            families,
            push_time_ms: g.push_time_ms,
            push_failure_time_ms: g.push_failure_time_ms,
        };
        if groups.insert(grouping, group).is_some() {
            return Err(format!("groups[{i}]: a grouping given twice"));
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests;
