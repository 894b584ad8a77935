//! File-based service discovery (`file_sd_configs`): JSON or YAML files of
//! target groups, found by glob (patterns in the last path element only,
//! as in Prometheus) and re-read when their modification time or size
//! changes. The pool polls every `refresh_interval`.
//!
//! A file that cannot be read or parsed keeps the groups it had before,
//! and the error is logged; a file that disappears loses its groups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::target::TargetGroup;
use config::glob::expand_glob;
use config::prometheus::parse_file_sd;
use config::{FileSdConfig, StaticConfig};

/// The label naming the file a target came from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

#[derive(Clone, Debug, PartialEq)]
struct FileState {
    modified: Option<SystemTime>,
    length: u64,
    groups: Vec<StaticConfig>,
}

/// Watches the files of a job's (or an Alertmanager entry's)
/// `file_sd_configs`.
pub struct FileDiscovery {
    configs: Vec<FileSdConfig>,
    files: BTreeMap<PathBuf, FileState>,
}

impl FileDiscovery {
    pub fn new(configs: Vec<FileSdConfig>) -> FileDiscovery {
        FileDiscovery {
            configs,
            files: BTreeMap::new(),
        }
    }

    /// The shortest refresh interval, or `None` without file_sd configs.
    pub fn refresh_interval(&self) -> Option<Duration> {
        self.configs
            .iter()
            .map(|config| Duration::from_millis(config.refresh_interval_ms.max(1) as u64))
            .min()
    }

    /// Re-expands the globs and re-reads changed files. Returns whether
    /// the set of groups changed.
    pub fn refresh(&mut self) -> bool {
        let mut paths: Vec<PathBuf> = Vec::new();
        for config in &self.configs {
            for pattern in &config.files {
                expand_glob(pattern, &mut paths);
            }
        }
        paths.sort();
        paths.dedup();
        let mut next: BTreeMap<PathBuf, FileState> = BTreeMap::new();
        for path in paths {
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            let modified = metadata.modified().ok();
            let length = metadata.len();
            if let Some(previous) = self.files.get(&path)
                && previous.modified == modified
                && previous.length == length
            {
                next.insert(path, previous.clone());
                continue;
            }
            let groups = match read_groups(&path) {
                Ok(groups) => groups,
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "file_sd: keeping the previous targets");
                    match self.files.get(&path) {
                        Some(previous) => previous.groups.clone(),
                        None => Vec::new(),
                    }
                }
            };
            next.insert(
                path,
                FileState {
                    modified,
                    length,
                    groups,
                },
            );
        }
        let changed = next
            .iter()
            .map(|(path, state)| (path, &state.groups))
            .ne(self.files.iter().map(|(path, state)| (path, &state.groups)));
        self.files = next;
        changed
    }

    /// All groups, each with `__meta_filepath`.
    pub fn groups(&self) -> Vec<TargetGroup> {
        let mut groups = Vec::new();
        for (path, state) in &self.files {
            for group in &state.groups {
                groups.push(TargetGroup {
                    group: group.clone(),
                    meta_labels: vec![(FILEPATH_LABEL.to_string(), path.display().to_string())],
                });
            }
        }
        groups
    }
}

fn read_groups(path: &Path) -> Result<Vec<StaticConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    parse_file_sd(&path.display().to_string(), &text).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_and_reread_on_change() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("a.json");
        std::fs::write(&path, r#"[{"targets": ["x:1"]}]"#).unwrap();
        std::fs::write(directory.path().join("ignored.txt"), "nothing").unwrap();
        let pattern = format!("{}/*.json", directory.path().display());
        let mut discovery = FileDiscovery::new(vec![FileSdConfig {
            files: vec![pattern],
            refresh_interval_ms: 100,
        }]);
        assert!(discovery.refresh());
        let groups = discovery.groups();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].group.targets, ["x:1"]);
        assert_eq!(groups[0].meta_labels[0].1, path.display().to_string());
        assert!(!discovery.refresh(), "nothing changed");
        std::fs::write(&path, r#"[{"targets": ["x:1", "y:2"]}]"#).unwrap();
        assert!(discovery.refresh());
        assert_eq!(discovery.groups()[0].group.targets, ["x:1", "y:2"]);
        // A broken file keeps its previous groups.
        std::fs::write(&path, "[{").unwrap();
        discovery.refresh();
        assert_eq!(discovery.groups()[0].group.targets, ["x:1", "y:2"]);
        std::fs::remove_file(&path).unwrap();
        assert!(discovery.refresh());
        assert!(discovery.groups().is_empty());
    }
}
