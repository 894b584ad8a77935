//! The rule manager: loads rule files, runs each group on its interval,
//! hands due alerts to a [`Notifier`], and keeps state across reloads.
//!
//! Each group runs as one tokio task that sleeps until the group's next
//! evaluation time and evaluates on the blocking pool (PromQL and storage
//! are synchronous). A reload parses every file first and changes nothing
//! when any of them is wrong; then an unchanged group keeps running
//! untouched, a changed group takes over the alerts of its predecessor
//! (rules matched by name and labels), and removed groups stop.
//!
//! After the first evaluation following a start, each group restores the
//! `for` state of its alerts from `ALERTS_FOR_STATE`
//! ([`Group::restore_for_state`]).

use crate::file::{GroupSpec, RuleFileError, parse_rule_file_with};
use crate::group::{EvalEnv, Group, GroupOptions, NotifyAlert};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Receives alerts due for sending after each group evaluation.
pub trait Notifier: Send + Sync {
    fn notify(&self, alerts: Vec<NotifyAlert>);
}

/// A notifier that drops everything (no alert manager configured).
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify(&self, _alerts: Vec<NotifyAlert>) {}
}

/// Milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Running {
    spec: GroupSpec,
    group: Arc<Mutex<Group>>,
    stop: Arc<tokio::sync::Notify>,
    /// Set before `stop` when the group was removed from the
    /// configuration: its task ends the group's series with staleness
    /// markers on the way out. Not set on shutdown or when a changed group
    /// replaces it (the new group carries the series on).
    mark_stale: Arc<AtomicBool>,
}

/// What a reload may change besides the groups themselves.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSettings {
    /// Sorted by name.
    pub external_labels: Vec<(String, String)>,
    /// The interval of groups that do not set one.
    pub default_interval_ms: i64,
    /// The query offset of groups that do not set one (`rule_query_offset`).
    pub default_query_offset_ms: i64,
}

/// Reads and checks rule files (already expanded from globs): every
/// problem of every file, or the groups of all of them.
pub fn read_rule_files(files: &[PathBuf]) -> Result<Vec<GroupSpec>, Vec<RuleFileError>> {
    read_rule_files_with(files, promql::ParseOptions::OSPREY)
}

/// [`read_rule_files`] checking expressions with these PromQL features.
pub fn read_rule_files_with(
    files: &[PathBuf],
    features: promql::ParseOptions,
) -> Result<Vec<GroupSpec>, Vec<RuleFileError>> {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(RuleFileError {
                    file: name,
                    line: 0,
                    message: format!("reading the file: {e}"),
                });
                continue;
            }
        };
        match parse_rule_file_with(&name, &text, features) {
            Ok(groups) => specs.extend(groups),
            Err(mut file_errors) => errors.append(&mut file_errors),
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

/// Runs the rule groups of a set of files.
pub struct RuleManager {
    /// The environment and options groups are started with; a reload may
    /// change their config-dependent parts ([`RuleSettings`]).
    current: Mutex<(EvalEnv, GroupOptions)>,
    notifier: Arc<dyn Notifier>,
    clock: Clock,
    runtime: tokio::runtime::Handle,
    running: Mutex<Vec<Running>>,
}

impl RuleManager {
    /// A manager with no groups. Group tasks run on `runtime`.
    pub fn new(
        env: EvalEnv,
        options: GroupOptions,
        notifier: Arc<dyn Notifier>,
        clock: Clock,
        runtime: tokio::runtime::Handle,
    ) -> RuleManager {
        RuleManager {
            current: Mutex::new((env, options)),
            notifier,
            clock,
            runtime,
            running: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the running groups with those of `files` (already
    /// expanded from globs) plus `extra` (built-in groups). On any error
    /// nothing changes.
    pub fn load(&self, files: &[PathBuf], extra: Vec<GroupSpec>) -> Result<(), Vec<RuleFileError>> {
        let mut specs = extra;
        specs.extend(read_rule_files(files)?);
        self.apply(specs);
        Ok(())
    }

    /// Replaces the running groups with `specs` under new `settings`. When
    /// the settings changed, every group restarts with them (taking over
    /// its alerts), as a changed group would.
    pub fn apply_with_settings(&self, specs: Vec<GroupSpec>, settings: &RuleSettings) {
        let changed = {
            let Ok(mut current) = self.current.lock() else {
                return;
            };
            let (env, options) = &mut *current;
            let before = RuleSettings {
                external_labels: env.external_labels.clone(),
                default_interval_ms: options.default_interval_ms,
                default_query_offset_ms: options.default_query_offset_ms,
            };
            env.external_labels = settings.external_labels.clone();
            options.default_interval_ms = settings.default_interval_ms;
            options.default_query_offset_ms = settings.default_query_offset_ms;
            before != *settings
        };
        self.apply_inner(specs, changed);
    }

    /// Replaces the running groups with `specs`.
    pub fn apply(&self, specs: Vec<GroupSpec>) {
        self.apply_inner(specs, false);
    }

    fn apply_inner(&self, specs: Vec<GroupSpec>, restart_all: bool) {
        let options = match self.current.lock() {
            Ok(current) => current.1.clone(),
            Err(_) => return,
        };
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        let mut old: HashMap<(String, String), Running> = running
            .drain(..)
            .map(|r| ((r.spec.file.clone(), r.spec.name.clone()), r))
            .collect();
        for spec in specs {
            let key = (spec.file.clone(), spec.name.clone());
            match old.remove(&key) {
                Some(previous) if previous.spec == spec && !restart_all => running.push(previous),
                previous => {
                    let mut group = Group::new(spec.clone(), &options);
                    if let Some(previous) = previous {
                        previous.stop.notify_one();
                        if let Ok(mut old_group) = previous.group.lock() {
                            group.copy_state_from(&mut old_group);
                        }
                    }
                    running.push(self.start(spec, group));
                }
            }
        }
        for (_, removed) in old {
            removed.mark_stale.store(true, Ordering::SeqCst);
            removed.stop.notify_one();
        }
    }

    /// The running groups in file and name order.
    pub fn groups(&self) -> Vec<Arc<Mutex<Group>>> {
        let Ok(running) = self.running.lock() else {
            return Vec::new();
        };
        let mut groups: Vec<(&GroupSpec, Arc<Mutex<Group>>)> =
            running.iter().map(|r| (&r.spec, r.group.clone())).collect();
        groups.sort_by(|a, b| (&a.0.file, &a.0.name).cmp(&(&b.0.file, &b.0.name)));
        groups.into_iter().map(|(_, g)| g).collect()
    }

    /// The specs of the running groups in file and name order: what a
    /// backtest of "the rules in effect" evaluates.
    pub fn group_specs(&self) -> Vec<GroupSpec> {
        let Ok(running) = self.running.lock() else {
            return Vec::new();
        };
        let mut specs: Vec<GroupSpec> = running.iter().map(|r| r.spec.clone()).collect();
        specs.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
        specs
    }

    /// The evaluation options groups start with now.
    pub fn group_options(&self) -> Option<GroupOptions> {
        self.current.lock().ok().map(|c| c.1.clone())
    }

    /// Stops every group.
    pub fn stop(&self) {
        if let Ok(mut running) = self.running.lock() {
            for r in running.drain(..) {
                r.stop.notify_one();
            }
        }
    }

    fn start(&self, spec: GroupSpec, group: Group) -> Running {
        let group = Arc::new(Mutex::new(group));
        let stop = Arc::new(tokio::sync::Notify::new());
        let (env, options) = match self.current.lock() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let task = GroupTask {
            group: group.clone(),
            env,
            options,
            notifier: self.notifier.clone(),
            clock: self.clock.clone(),
        };
        let mark_stale = Arc::new(AtomicBool::new(false));
        self.runtime
            .spawn(task.run(stop.clone(), mark_stale.clone()));
        Running {
            spec,
            group,
            stop,
            mark_stale,
        }
    }
}

impl Drop for RuleManager {
    fn drop(&mut self) {
        self.stop();
    }
}

struct GroupTask {
    group: Arc<Mutex<Group>>,
    env: EvalEnv,
    options: GroupOptions,
    notifier: Arc<dyn Notifier>,
    clock: Clock,
}

impl GroupTask {
    /// Ends the group's series (see [`Group::mark_stale`]) at the clock's
    /// time, waiting for an evaluation in flight.
    async fn write_staleness(self: &Arc<Self>) {
        let task = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            let now = (task.clock)();
            let Ok(mut group) = task.group.lock() else {
                return;
            };
            if let Err(error) = group.mark_stale(&task.env, now) {
                tracing::warn!(group = %group.name, %error, "removed rule group's series not marked stale");
            }
        })
        .await;
        if written.is_err() {
            tracing::error!("marking a removed rule group's series stale panicked");
        }
    }

    async fn run(self, stop: Arc<tokio::sync::Notify>, mark_stale: Arc<AtomicBool>) {
        let task = Arc::new(self);
        let mut restored = false;
        let mut last_ts = i64::MIN;
        loop {
            let now = (task.clock)();
            let next = match task.group.lock() {
                Ok(group) => group.next_eval_ms(now.max(last_ts.saturating_add(1))),
                Err(_) => return,
            };
            let wait = std::time::Duration::from_millis((next - now).max(0) as u64);
            tokio::select! {
                // A stop wins over a due evaluation, so a removed group's
                // staleness markers are its last samples.
                biased;
                _ = stop.notified() => {
                    if mark_stale.load(Ordering::SeqCst) {
                        task.write_staleness().await;
                    }
                    return;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            last_ts = next;
            let restore = !restored;
            restored = true;
            let worker = task.clone();
            let evaluated = tokio::task::spawn_blocking(move || {
                let Ok(mut group) = worker.group.lock() else {
                    return;
                };
                let alerts = group.eval(&worker.env, next);
                if restore {
                    group.restore_for_state(&worker.env, next, &worker.options);
                }
                drop(group);
                if !alerts.is_empty() {
                    worker.notifier.notify(alerts);
                }
            })
            .await;
            if evaluated.is_err() {
                tracing::error!("a rule group evaluation panicked");
            }
        }
    }
}
