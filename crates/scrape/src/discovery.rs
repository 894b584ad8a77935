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

use crate::config::{FileSdConfig, StaticConfig, parse_file_sd};
use crate::target::TargetGroup;

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

/// Adds the files matching `pattern` (a path whose last element may hold
/// `*`, `?` and `[...]`) to `out`.
pub fn expand_glob(pattern: &str, out: &mut Vec<PathBuf>) {
    let path = Path::new(pattern);
    let Some(file_pattern) = path.file_name().and_then(|name| name.to_str()) else {
        return;
    };
    if !file_pattern.contains(['*', '?', '[']) {
        if path.is_file() {
            out.push(path.to_path_buf());
        }
        return;
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(name) = name.to_str()
            && glob_match(file_pattern.as_bytes(), name.as_bytes())
            && entry.path().is_file()
        {
            out.push(directory.join(name));
        }
    }
}

/// Shell-style matching of one path element: `*` any run, `?` one byte,
/// `[abc]`, `[a-z]`, `[^a-z]` one byte of (or not of) a set.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob_match(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && glob_match(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return name.first() == Some(&b'[') && glob_match(rest, &name[1..]);
            };
            let Some((&byte, name_rest)) = name.split_first() else {
                return false;
            };
            let (negated, set) = match rest[..close].split_first() {
                Some((b'^', set)) => (true, set),
                _ => (false, &rest[..close]),
            };
            let mut matched = false;
            let mut index = 0;
            while index < set.len() {
                if index + 2 < set.len() && set[index + 1] == b'-' {
                    matched |= set[index] <= byte && byte <= set[index + 2];
                    index += 3;
                } else {
                    matched |= set[index] == byte;
                    index += 1;
                }
            }
            matched != negated && glob_match(&rest[close + 1..], name_rest)
        }
        Some((&literal, rest)) => name.first() == Some(&literal) && glob_match(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.json", b"targets.json"));
        assert!(!glob_match(b"*.json", b"targets.yml"));
        assert!(glob_match(b"t?.yml", b"t1.yml"));
        assert!(glob_match(b"node-[0-9].yaml", b"node-7.yaml"));
        assert!(!glob_match(b"node-[^0-9].yaml", b"node-7.yaml"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a*b", b"acbd"));
    }

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
