//! The notification log: per aggregation group and receiver integration,
//! when it last notified and which alerts were firing and resolved then.
//! The dispatcher reads it to decide whether a flush needs a notification
//! (Alertmanager's `DedupStage`). Entries are appended to the `nflog` file
//! and fsynced before a notification counts as done
//! (`docs/format/alertmanager.md`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::persist::{self, PersistError};

/// Which integration of which receiver, for which group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NflogKey {
    pub receiver: String,
    pub integration: &'static str,
    pub index: usize,
    pub group_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NflogEntry {
    pub timestamp_ms: i64,
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub expires_at_ms: i64,
}

pub struct Nflog {
    state: Mutex<State>,
    file: Option<PathBuf>,
    retention_ms: i64,
    /// Told of every entry logged here (the cluster's gossip), once set.
    on_change: std::sync::OnceLock<ChangeHook>,
}

/// Called with an entry after it was logged here and persisted.
pub(crate) type ChangeHook = Box<dyn Fn(&NflogKey, &NflogEntry) + Send + Sync>;

struct State {
    entries: HashMap<NflogKey, NflogEntry>,
    /// Lines in the file, to know when to compact it.
    lines: usize,
}

const KIND: &str = "osprey-nflog";

/// Compaction happens past this many lines (and twice the live entries).
const MIN_COMPACT_LINES: usize = 1000;

impl Nflog {
    pub fn open(
        file: Option<PathBuf>,
        retention_ms: i64,
        now_ms: i64,
    ) -> Result<Nflog, PersistError> {
        let mut entries = HashMap::new();
        if let Some(path) = &file {
            for line in persist::read_lines(path, KIND)? {
                let record: EntryRecord =
                    serde_json::from_str(&line).map_err(|e| PersistError {
                        path: path.display().to_string(),
                        message: format!("bad log entry: {e}"),
                    })?;
                let (key, entry) = record.into_entry();
                entries.insert(key, entry);
            }
        }
        entries.retain(|_, entry: &mut NflogEntry| entry.expires_at_ms > now_ms);
        let log = Nflog {
            state: Mutex::new(State { entries, lines: 0 }),
            file,
            retention_ms,
            on_change: std::sync::OnceLock::new(),
        };
        log.compact()?;
        Ok(log)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn compact(&self) -> Result<(), PersistError> {
        let mut state = self.lock();
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut records: Vec<String> = state
            .entries
            .iter()
            .map(|(key, entry)| {
                serde_json::to_string(&EntryRecord::from_entry(key, entry)).unwrap_or_default()
            })
            .collect();
        records.sort();
        persist::rewrite(path, KIND, &records)?;
        state.lines = records.len();
        Ok(())
    }

    pub fn get(&self, key: &NflogKey) -> Option<NflogEntry> {
        self.lock().entries.get(key).cloned()
    }

    /// Records a notification; returns once it is on disk.
    pub fn log(
        &self,
        key: NflogKey,
        firing: BTreeSet<u64>,
        resolved: BTreeSet<u64>,
        now_ms: i64,
    ) -> Result<(), PersistError> {
        let entry = NflogEntry {
            timestamp_ms: now_ms,
            firing,
            resolved,
            expires_at_ms: now_ms.saturating_add(self.retention_ms),
        };
        let compact = {
            let mut state = self.lock();
            if let Some(path) = &self.file {
                let record = serde_json::to_string(&EntryRecord::from_entry(&key, &entry))
                    .unwrap_or_default();
                persist::append(path, &record)?;
                state.lines += 1;
            }
            if let Some(hook) = self.on_change.get() {
                hook(&key, &entry);
            }
            state.entries.insert(key, entry);
            state.lines >= MIN_COMPACT_LINES && state.lines > 2 * state.entries.len()
        };
        if compact {
            self.compact()?;
        }
        Ok(())
    }

    /// Sets the hook told of entries logged here (once; later calls are
    /// ignored).
    pub(crate) fn set_change_hook(&self, hook: ChangeHook) {
        let _ = self.on_change.set(hook);
    }

    /// Every entry, for a full-state exchange.
    pub(crate) fn entries(&self) -> Vec<(NflogKey, NflogEntry)> {
        self.lock()
            .entries
            .iter()
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect()
    }

    /// Merges entries from a peer: each replaces the entry of its key when
    /// its timestamp is later (or the key is new), unless it has expired.
    /// Returns how many changed; they are on disk when it returns.
    pub(crate) fn merge(
        &self,
        incoming: Vec<(NflogKey, NflogEntry)>,
        now_ms: i64,
    ) -> Result<usize, PersistError> {
        let mut n_changed = 0;
        let compact = {
            let mut state = self.lock();
            for (key, entry) in incoming {
                if entry.expires_at_ms <= now_ms {
                    continue;
                }
                let newer = state
                    .entries
                    .get(&key)
                    .is_none_or(|held| held.timestamp_ms < entry.timestamp_ms);
                if !newer {
                    continue;
                }
                if let Some(path) = &self.file {
                    let record = serde_json::to_string(&EntryRecord::from_entry(&key, &entry))
                        .unwrap_or_default();
                    persist::append(path, &record)?;
                    state.lines += 1;
                }
                state.entries.insert(key, entry);
                n_changed += 1;
            }
            state.lines >= MIN_COMPACT_LINES && state.lines > 2 * state.entries.len()
        };
        if compact {
            self.compact()?;
        }
        Ok(n_changed)
    }

    /// Drops expired entries.
    pub fn gc(&self, now_ms: i64) -> Result<(), PersistError> {
        let removed = {
            let mut state = self.lock();
            let before = state.entries.len();
            state
                .entries
                .retain(|_, entry| entry.expires_at_ms > now_ms);
            before - state.entries.len()
        };
        if removed > 0 {
            self.compact()?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A log entry as the `nflog` file and the cluster's messages write it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntryRecord {
    receiver: String,
    integration: String,
    index: usize,
    group_key: String,
    timestamp: i64,
    firing: Vec<String>,
    resolved: Vec<String>,
    expires_at: i64,
}

impl EntryRecord {
    pub(crate) fn from_entry(key: &NflogKey, entry: &NflogEntry) -> EntryRecord {
        let hex = |set: &BTreeSet<u64>| set.iter().map(|fp| format!("{fp:016x}")).collect();
        EntryRecord {
            receiver: key.receiver.clone(),
            integration: key.integration.to_string(),
            index: key.index,
            group_key: key.group_key.clone(),
            timestamp: entry.timestamp_ms,
            firing: hex(&entry.firing),
            resolved: hex(&entry.resolved),
            expires_at: entry.expires_at_ms,
        }
    }

    fn into_entry(self) -> (NflogKey, NflogEntry) {
        let integration = integration_name(&self.integration).unwrap_or("webhook");
        self.into_entry_as(integration)
    }

    /// The entry, or `None` for an integration osprey does not know (a
    /// peer's record is not guessed at).
    pub(crate) fn into_known_entry(self) -> Option<(NflogKey, NflogEntry)> {
        let integration = integration_name(&self.integration)?;
        Some(self.into_entry_as(integration))
    }

    fn into_entry_as(self, integration: &'static str) -> (NflogKey, NflogEntry) {
        let parse = |list: Vec<String>| {
            list.iter()
                .filter_map(|fp| u64::from_str_radix(fp, 16).ok())
                .collect()
        };
        (
            NflogKey {
                receiver: self.receiver,
                integration,
                index: self.index,
                group_key: self.group_key,
            },
            NflogEntry {
                timestamp_ms: self.timestamp,
                firing: parse(self.firing),
                resolved: parse(self.resolved),
                expires_at_ms: self.expires_at,
            },
        )
    }
}

fn integration_name(name: &str) -> Option<&'static str> {
    match name {
        "email" => Some("email"),
        "slack" => Some("slack"),
        "pagerduty" => Some("pagerduty"),
        "webhook" => Some("webhook"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nflog");
        let key = NflogKey {
            receiver: "r".into(),
            integration: "webhook",
            index: 0,
            group_key: "{}:{a=\"b\"}".into(),
        };
        let log = Nflog::open(Some(path.clone()), 1000, 0).unwrap();
        log.log(key.clone(), [1, 2].into(), [3].into(), 10).unwrap();
        log.log(key.clone(), [1].into(), [2, 3].into(), 20).unwrap();
        let reopened = Nflog::open(Some(path.clone()), 1000, 30).unwrap();
        let entry = reopened.get(&key).unwrap();
        assert_eq!(entry.timestamp_ms, 20);
        assert_eq!(entry.firing, [1].into());
        assert_eq!(entry.resolved, [2, 3].into());
        // Expired entries are gone on open.
        let later = Nflog::open(Some(path), 1000, 2000).unwrap();
        assert!(later.is_empty());
    }

    #[test]
    fn merging_keeps_the_newest_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nflog");
        let key = NflogKey {
            receiver: "r".into(),
            integration: "webhook",
            index: 0,
            group_key: "g".into(),
        };
        let entry = |at: i64, firing: &[u64]| NflogEntry {
            timestamp_ms: at,
            firing: firing.iter().copied().collect(),
            resolved: BTreeSet::new(),
            expires_at_ms: at + 1000,
        };
        let log = Nflog::open(Some(path.clone()), 1000, 0).unwrap();
        log.log(key.clone(), [1].into(), BTreeSet::new(), 10)
            .unwrap();
        assert_eq!(
            log.merge(vec![(key.clone(), entry(5, &[2]))], 10).unwrap(),
            0
        );
        assert_eq!(
            log.merge(vec![(key.clone(), entry(20, &[3]))], 20).unwrap(),
            1
        );
        // Expired entries are not taken.
        let other = NflogKey {
            group_key: "h".into(),
            ..key.clone()
        };
        assert_eq!(
            log.merge(vec![(other.clone(), entry(0, &[4]))], 5000)
                .unwrap(),
            0
        );
        assert!(log.get(&other).is_none());
        let reopened = Nflog::open(Some(path), 1000, 30).unwrap();
        assert_eq!(reopened.get(&key), Some(entry(20, &[3])));
        // A peer's record of an unknown integration is dropped.
        let mut record = EntryRecord::from_entry(&key, &entry(1, &[1]));
        record.integration = "opsgenie".into();
        assert!(record.into_known_entry().is_none());
    }
}
