//! Silences with Alertmanager's rules: create, update in place when only
//! the end or comment changes, otherwise expire and replace; expire;
//! states by time; retention. Every change is written to the `silences`
//! file before it is acknowledged (`docs/format/alertmanager.md`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use model::Labels;
use model::matcher::{MatchOp, Matcher};
use serde::{Deserialize, Serialize};

use crate::persist::{self, PersistError};

/// A silence. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_by: String,
    pub comment: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    Expired,
    Active,
    Pending,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Expired => "expired",
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
        }
    }
}

impl Silence {
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms >= self.ends_at_ms {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }

    fn matches(&self, labels: &Labels) -> bool {
        model::matcher::matches_all(labels, &self.matchers)
    }
}

/// What went wrong with a silence request.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("persisting silences: {0}")]
    Persist(#[from] PersistError),
}

/// All silences, optionally backed by a file.
pub struct Silences {
    state: Mutex<HashMap<String, Silence>>,
    file: Option<PathBuf>,
    retention_ms: i64,
    ids: IdSource,
    /// Told of every local change (the cluster's gossip), once set.
    on_change: std::sync::OnceLock<ChangeHook>,
}

/// Called with a silence after a local change to it was persisted.
pub(crate) type ChangeHook = Box<dyn Fn(&Silence) + Send + Sync>;

const KIND: &str = "osprey-silences";

impl Silences {
    /// Opens the silences kept in `file` (none when it does not exist).
    pub fn open(
        file: Option<PathBuf>,
        retention_ms: i64,
        now_ms: i64,
    ) -> Result<Silences, PersistError> {
        let mut silences = HashMap::new();
        if let Some(path) = &file {
            for line in persist::read_lines(path, KIND)? {
                let record: SilenceRecord =
                    serde_json::from_str(&line).map_err(|e| PersistError {
                        path: path.display().to_string(),
                        message: format!("bad silence record: {e}"),
                    })?;
                let silence = record.into_silence().map_err(|message| PersistError {
                    path: path.display().to_string(),
                    message,
                })?;
                silences.insert(silence.id.clone(), silence);
            }
        }
        let store = Silences {
            state: Mutex::new(silences),
            file,
            retention_ms,
            ids: IdSource::new(),
            on_change: std::sync::OnceLock::new(),
        };
        store.gc(now_ms)?;
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Silence>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, silences: &HashMap<String, Silence>) -> Result<(), PersistError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut records: Vec<String> = silences
            .values()
            .map(|silence| {
                serde_json::to_string(&SilenceRecord::from_silence(silence)).unwrap_or_default()
            })
            .collect();
        records.sort();
        persist::rewrite(path, KIND, &records)
    }

    /// Creates or updates a silence (`silence.id` empty to create) and
    /// returns its id, as Alertmanager's `Silences.Set`.
    pub fn set(&self, mut silence: Silence, now_ms: i64) -> Result<String, SilenceError> {
        validate(&silence)?;
        let mut silences = self.lock();
        let mut changed = silences.clone();
        let mut replaced = None;
        if !silence.id.is_empty() {
            let Some(previous) = changed.get(&silence.id).cloned() else {
                return Err(SilenceError::NotFound);
            };
            if can_update(&previous, &silence, now_ms) {
                silence.updated_at_ms = now_ms;
                let id = silence.id.clone();
                changed.insert(id.clone(), silence);
                self.save(&changed)?;
                *silences = changed;
                self.changed(&silences, &[&id]);
                return Ok(id);
            }
            if previous.state(now_ms) != SilenceState::Expired {
                expire_in(&mut changed, &previous.id, now_ms)?;
                replaced = Some(previous.id);
            }
        }
        silence.id = self.ids.next();
        if silence.starts_at_ms < now_ms {
            silence.starts_at_ms = now_ms;
        }
        if silence.ends_at_ms <= now_ms {
            return Err(SilenceError::Invalid(
                "end time can't be in the past".to_string(),
            ));
        }
        silence.updated_at_ms = now_ms;
        let id = silence.id.clone();
        changed.insert(id.clone(), silence);
        self.save(&changed)?;
        *silences = changed;
        match replaced {
            Some(previous) => self.changed(&silences, &[&previous, &id]),
            None => self.changed(&silences, &[&id]),
        }
        Ok(id)
    }

    /// Expires a silence now.
    pub fn expire(&self, id: &str, now_ms: i64) -> Result<(), SilenceError> {
        let mut silences = self.lock();
        let mut changed = silences.clone();
        expire_in(&mut changed, id, now_ms)?;
        self.save(&changed)?;
        *silences = changed;
        self.changed(&silences, &[id]);
        Ok(())
    }

    /// Sets the hook told of local changes (once; later calls are ignored).
    pub(crate) fn set_change_hook(&self, hook: ChangeHook) {
        let _ = self.on_change.set(hook);
    }

    fn changed(&self, silences: &HashMap<String, Silence>, ids: &[&str]) {
        if let Some(hook) = self.on_change.get() {
            for id in ids {
                if let Some(silence) = silences.get(*id) {
                    hook(silence);
                }
            }
        }
    }

    /// Merges silences from a peer: each replaces the one with its id when
    /// it was updated later (or is new), unless it is past retention.
    /// Returns how many changed; they are on disk when it returns.
    pub(crate) fn merge(&self, incoming: Vec<Silence>, now_ms: i64) -> Result<usize, PersistError> {
        let mut silences = self.lock();
        let mut changed = silences.clone();
        let mut n_changed = 0;
        for silence in incoming {
            if silence.id.is_empty()
                || validate(&silence).is_err()
                || silence.ends_at_ms.saturating_add(self.retention_ms) <= now_ms
            {
                continue;
            }
            let newer = changed
                .get(&silence.id)
                .is_none_or(|held| held.updated_at_ms < silence.updated_at_ms);
            if newer {
                changed.insert(silence.id.clone(), silence);
                n_changed += 1;
            }
        }
        if n_changed > 0 {
            self.save(&changed)?;
            *silences = changed;
        }
        Ok(n_changed)
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.lock().get(id).cloned()
    }

    pub fn list(&self) -> Vec<Silence> {
        self.lock().values().cloned().collect()
    }

    /// The ids of the active silences that match a label set, sorted.
    pub fn mutes(&self, labels: &Labels, now_ms: i64) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lock()
            .values()
            .filter(|silence| {
                silence.state(now_ms) == SilenceState::Active && silence.matches(labels)
            })
            .map(|silence| silence.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Drops silences that ended more than the retention ago.
    pub fn gc(&self, now_ms: i64) -> Result<usize, PersistError> {
        let mut silences = self.lock();
        let before = silences.len();
        let keep =
            |silence: &Silence| silence.ends_at_ms.saturating_add(self.retention_ms) > now_ms;
        if silences.values().all(keep) {
            return Ok(0);
        }
        let changed: HashMap<String, Silence> = silences
            .iter()
            .filter(|(_, s)| keep(s))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.save(&changed)?;
        *silences = changed;
        Ok(before - silences.len())
    }
}

fn expire_in(
    silences: &mut HashMap<String, Silence>,
    id: &str,
    now_ms: i64,
) -> Result<(), SilenceError> {
    let Some(silence) = silences.get_mut(id) else {
        return Err(SilenceError::NotFound);
    };
    match silence.state(now_ms) {
        SilenceState::Expired => {
            return Err(SilenceError::Invalid(format!(
                "silence {id} already expired"
            )));
        }
        SilenceState::Active => silence.ends_at_ms = now_ms,
        SilenceState::Pending => {
            silence.starts_at_ms = now_ms;
            silence.ends_at_ms = now_ms;
        }
    }
    silence.updated_at_ms = now_ms;
    Ok(())
}

/// Alertmanager's `canUpdate`: same matchers, and times changed only in
/// ways the current state allows.
fn can_update(previous: &Silence, next: &Silence, now_ms: i64) -> bool {
    if previous.matchers != next.matchers {
        return false;
    }
    match previous.state(now_ms) {
        SilenceState::Active => {
            previous.starts_at_ms / 1000 == next.starts_at_ms / 1000 && next.ends_at_ms >= now_ms
        }
        SilenceState::Pending => next.starts_at_ms >= now_ms,
        SilenceState::Expired => false,
    }
}

fn validate(silence: &Silence) -> Result<(), SilenceError> {
    if silence.matchers.is_empty() {
        return Err(SilenceError::Invalid(
            "at least one matcher required".to_string(),
        ));
    }
    for matcher in &silence.matchers {
        if !config::decode::is_valid_label_name(matcher.name()) {
            return Err(SilenceError::Invalid(format!(
                "invalid label name {:?}",
                matcher.name()
            )));
        }
    }
    if silence.matchers.iter().all(Matcher::matches_empty) {
        return Err(SilenceError::Invalid(
            "at least one matcher must not match the empty string".to_string(),
        ));
    }
    if silence.ends_at_ms < silence.starts_at_ms {
        return Err(SilenceError::Invalid(
            "end time must not be before start time".to_string(),
        ));
    }
    Ok(())
}

/// Random version-4 UUIDs from std's randomly keyed hasher.
struct IdSource {
    state: std::hash::RandomState,
    counter: AtomicU64,
}

impl IdSource {
    fn new() -> IdSource {
        IdSource {
            state: std::hash::RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut words = [0u64; 2];
        for (index, word) in words.iter_mut().enumerate() {
            let mut hasher = self.state.build_hasher();
            hasher.write_u64(count);
            hasher.write_u64(nanos);
            hasher.write_usize(index);
            *word = hasher.finish();
        }
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&words[0].to_be_bytes());
        bytes[8..].copy_from_slice(&words[1].to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

/// A silence as the `silences` file and the cluster's messages write it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SilenceRecord {
    id: String,
    matchers: Vec<MatcherRecord>,
    starts_at: i64,
    ends_at: i64,
    updated_at: i64,
    created_by: String,
    comment: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MatcherRecord {
    name: String,
    value: String,
    is_regex: bool,
    is_equal: bool,
}

impl SilenceRecord {
    pub(crate) fn from_silence(silence: &Silence) -> SilenceRecord {
        SilenceRecord {
            id: silence.id.clone(),
            matchers: silence
                .matchers
                .iter()
                .map(|m| MatcherRecord {
                    name: m.name().to_string(),
                    value: m.value().to_string(),
                    is_regex: matches!(m.op(), MatchOp::RegexMatch | MatchOp::RegexNoMatch),
                    is_equal: matches!(m.op(), MatchOp::Equal | MatchOp::RegexMatch),
                })
                .collect(),
            starts_at: silence.starts_at_ms,
            ends_at: silence.ends_at_ms,
            updated_at: silence.updated_at_ms,
            created_by: silence.created_by.clone(),
            comment: silence.comment.clone(),
        }
    }

    pub(crate) fn into_silence(self) -> Result<Silence, String> {
        let matchers = self
            .matchers
            .into_iter()
            .map(|m| {
                Matcher::new(match_op(m.is_regex, m.is_equal), m.name, m.value)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Silence {
            id: self.id,
            matchers,
            starts_at_ms: self.starts_at,
            ends_at_ms: self.ends_at,
            updated_at_ms: self.updated_at,
            created_by: self.created_by,
            comment: self.comment,
        })
    }
}

/// The operator for the API's `isRegex`/`isEqual` flags.
pub fn match_op(is_regex: bool, is_equal: bool) -> MatchOp {
    match (is_regex, is_equal) {
        (false, true) => MatchOp::Equal,
        (false, false) => MatchOp::NotEqual,
        (true, true) => MatchOp::RegexMatch,
        (true, false) => MatchOp::RegexNoMatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(matchers: &str, start: i64, end: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers: config::alertmanager::matchers::parse_matchers(matchers).unwrap(),
            starts_at_ms: start,
            ends_at_ms: end,
            updated_at_ms: 0,
            created_by: "me".into(),
            comment: "c".into(),
        }
    }

    #[test]
    fn create_update_expire_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences");
        let store = Silences::open(Some(path.clone()), 1000, 0).unwrap();
        let labels = Labels::from_pairs([("team", "ml")]);
        let id = store.set(silence("team=ml", 0, 100), 10).unwrap();
        assert_eq!(
            store.get(&id).unwrap().starts_at_ms,
            10,
            "a start in the past becomes now"
        );
        assert_eq!(store.mutes(&labels, 50), vec![id.clone()]);
        // Extending the end keeps the id.
        let mut longer = store.get(&id).unwrap();
        longer.ends_at_ms = 200;
        assert_eq!(store.set(longer, 20).unwrap(), id);
        // Changing matchers expires the old one and makes a new one.
        let mut other = store.get(&id).unwrap();
        other.matchers = config::alertmanager::matchers::parse_matchers("team=web").unwrap();
        let new_id = store.set(other, 30).unwrap();
        assert_ne!(new_id, id);
        assert_eq!(store.get(&id).unwrap().state(30), SilenceState::Expired);
        assert!(store.mutes(&labels, 40).is_empty());

        // Reopen: the same silences.
        let reopened = Silences::open(Some(path.clone()), 1000, 40).unwrap();
        assert_eq!(reopened.get(&new_id), store.get(&new_id));
        reopened.expire(&new_id, 50).unwrap();
        assert!(matches!(
            reopened.expire(&new_id, 60),
            Err(SilenceError::Invalid(_))
        ));
        assert!(matches!(
            reopened.expire("nope", 60),
            Err(SilenceError::NotFound)
        ));
        // Past retention they are gone.
        let later = Silences::open(Some(path), 1000, 5000).unwrap();
        assert!(later.list().is_empty());
    }

    #[test]
    fn merging_keeps_the_newest_and_tells_no_hook() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences");
        let store = Silences::open(Some(path.clone()), 1000, 0).unwrap();
        let told = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = told.clone();
        store.set_change_hook(Box::new(move |s: &Silence| {
            seen.lock().unwrap().push(s.id.clone());
        }));
        let mut peer = silence("team=ml", 0, 100);
        peer.id = "p".into();
        peer.updated_at_ms = 10;
        assert_eq!(store.merge(vec![peer.clone()], 10).unwrap(), 1);
        // Older or equal versions change nothing; a newer one replaces.
        let mut older = peer.clone();
        older.updated_at_ms = 5;
        older.comment = "old".into();
        assert_eq!(store.merge(vec![older, peer.clone()], 10).unwrap(), 0);
        let mut newer = peer.clone();
        newer.updated_at_ms = 20;
        newer.ends_at_ms = 20;
        assert_eq!(store.merge(vec![newer.clone()], 20).unwrap(), 1);
        assert_eq!(store.get("p"), Some(newer.clone()));
        // Invalid ones (no matchers) and those past retention are dropped.
        let mut invalid = silence("team=ml", 0, 100);
        invalid.id = "bad".into();
        invalid.matchers.clear();
        let mut old = silence("team=ml", 0, 100);
        old.id = "gone".into();
        assert_eq!(store.merge(vec![invalid, old], 5000).unwrap(), 0);
        assert!(
            told.lock().unwrap().is_empty(),
            "merges are not gossiped again"
        );
        // Merged silences are on disk; local changes reach the hook.
        let reopened = Silences::open(Some(path), 1000, 30).unwrap();
        assert_eq!(reopened.get("p"), Some(newer));
        let id = store.set(silence("a=b", 0, 100), 30).unwrap();
        assert_eq!(*told.lock().unwrap(), vec![id]);
    }

    #[test]
    fn invalid_silences() {
        let store = Silences::open(None, 1000, 0).unwrap();
        assert!(store.set(silence("", 0, 100), 0).is_err());
        assert!(store.set(silence("a=~\".*\"", 0, 100), 0).is_err());
        assert!(store.set(silence("a=b", 100, 50), 0).is_err());
        assert!(store.set(silence("a=b", 0, 50), 60).is_err());
        let mut unknown = silence("a=b", 0, 100);
        unknown.id = "x".into();
        assert!(matches!(store.set(unknown, 0), Err(SilenceError::NotFound)));
        assert_ne!(store.ids.next(), store.ids.next());
    }
}
