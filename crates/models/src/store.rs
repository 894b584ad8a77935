//! The models a server monitors: their settings, prediction logs, windows,
//! pending joins and references, and the three requests that change them.
//!
//! Each request is parsed and checked whole first ([`crate::records`]),
//! then checked against the model (its task, its features' kinds, the
//! limits), then written to the model's log and synced, and only then
//! applied to memory. A refused request changes nothing.

use crate::log::{FrameKind, Log};
use crate::records::{self, Actual, Kind as RecordKind, Prediction, Value};
use crate::window::{Kind, Pane};
use config::models::{ModelConfig, Reference, Task};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// Most versions one model may have in memory at once (versions whose
/// window is empty are forgotten).
pub const MAX_VERSIONS: usize = 20;
/// Most features (including SHAP-only names) per model.
pub const MAX_FEATURES: usize = 500;
/// Most categories per categorical feature (and classes per model);
/// further values count under [`OTHER_CATEGORY`].
pub const MAX_CATEGORIES: usize = 10_000;
/// The category that stands for values past [`MAX_CATEGORIES`].
pub const OTHER_CATEGORY: &str = "__other__";
/// Most predictions per model waiting for their actual; past it the
/// oldest waiting prediction is dropped.
pub const MAX_PENDING: usize = 1_000_000;
/// Most actuals per model waiting for their prediction.
pub const MAX_EARLY_ACTUALS: usize = 100_000;
/// How long a prediction waits for its actual (and the log keeps it).
pub const ACTUALS_HORIZON_MS: i64 = 7 * 24 * 3_600_000;
/// Panes per window: the window moves in steps of window / 60.
pub const PANES_PER_WINDOW: i64 = 60;

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body or a record is wrong (400).
    BadData,
    /// The body is larger than allowed (413).
    TooLarge,
    /// Writing the log failed (500): nothing was stored.
    Storage,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IngestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl IngestError {
    pub fn bad_data(message: impl Into<String>) -> IngestError {
        IngestError::bad(message)
    }
    pub fn too_large(limit: usize) -> IngestError {
        IngestError {
            kind: ErrorKind::TooLarge,
            message: format!("request body exceeds the limit of {limit} bytes"),
        }
    }
    fn bad(message: impl Into<String>) -> IngestError {
        IngestError {
            kind: ErrorKind::BadData,
            message: message.into(),
        }
    }
    fn storage(message: impl Into<String>) -> IngestError {
        IngestError {
            kind: ErrorKind::Storage,
            message: message.into(),
        }
    }
}

/// Two versions side by side: the answer of `Models::compare`.
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct Comparison {
    pub model: String,
    pub a: String,
    pub b: String,
    pub records_a: u64,
    pub records_b: u64,
    pub figures: Vec<crate::evaluate::PairFigure>,
}

/// What an accepted request did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub records: usize,
    /// Actuals joined to their prediction now.
    pub joined: usize,
    /// Actuals kept until their prediction arrives.
    pub waiting: usize,
}

/// Names to small ids, bounded.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interner {
    pub ids: HashMap<Box<str>, u32>,
    pub names: Vec<Box<str>>,
}

impl Interner {
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, adding it while fewer than `limit` are known;
    /// past that, the id of [`OTHER_CATEGORY`].
    pub fn intern(&mut self, name: &str, limit: usize) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let name = if self.names.len() >= limit {
            OTHER_CATEGORY
        } else {
            name
        };
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.into(), id);
        self.names.push(name.into());
        id
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }
}

/// A prediction waiting for its actual.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub version: u32,
    pub ts_ms: i64,
    /// A regression's number, or a class id as a float.
    pub prediction: f64,
    pub scores: Option<Box<[(u32, f64)]>>,
    /// Whether the prediction belongs to the reference accumulator.
    pub in_reference: bool,
}

/// One version's window: panes by index (timestamp / pane width).
#[derive(Clone, Debug, Default)]
pub(crate) struct VersionState {
    pub panes: BTreeMap<i64, Pane>,
}

/// One model.
pub(crate) struct ModelState {
    pub config: ModelConfig,
    pub log: Option<Log>,
    pub task: Option<Task>,
    pub features: Interner,
    pub kinds: Vec<Option<Kind>>,
    /// Categories per feature id.
    pub categories: Vec<Interner>,
    /// Class names (classification predictions and actuals).
    pub classes: Interner,
    pub versions: Interner,
    pub windows: Vec<VersionState>,
    /// By id; the same key (one allocation) is in `pending_order`.
    pub pending: HashMap<Arc<str>, Pending>,
    pub pending_order: VecDeque<(i64, Arc<str>)>,
    /// Actuals whose prediction has not arrived: the value as sent (the
    /// task may not be known yet) and its timestamp.
    pub early: HashMap<Box<str>, (Value<'static>, i64)>,
    /// The uploaded reference set, if any.
    pub uploaded: Option<Pane>,
    /// Records in the reference's time range (the first complete window,
    /// or the configured range), accumulated as they arrive.
    pub accumulated: Pane,
    /// Where the accumulated reference's range starts and ends (ms).
    pub reference_range: Option<(i64, i64)>,
    pub first_ms: Option<i64>,
    pub last_prediction_ms: Option<i64>,
    pub last_actual_ms: Option<i64>,
    pub next_evaluation_ms: i64,
    pub dropped_pending: u64,
    /// The first pane of the current window as of the last evaluation
    /// (`i64::MIN` before the first): panes before it are kept only for a
    /// rolling reference.
    pub window_start_pane: i64,
}

impl ModelState {
    fn new(config: ModelConfig) -> ModelState {
        let reference_range = match config.reference {
            Reference::TimeRange { start_ms, end_ms } => Some((start_ms, end_ms)),
            _ => None,
        };
        ModelState {
            task: config.task,
            config,
            log: None,
            features: Interner::default(),
            kinds: Vec::new(),
            categories: Vec::new(),
            classes: Interner::default(),
            versions: Interner::default(),
            windows: Vec::new(),
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            early: HashMap::new(),
            uploaded: None,
            accumulated: Pane::default(),
            reference_range,
            first_ms: None,
            last_prediction_ms: None,
            last_actual_ms: None,
            next_evaluation_ms: i64::MIN,
            dropped_pending: 0,
            window_start_pane: i64::MIN,
        }
    }

    pub fn pane_ms(&self) -> i64 {
        (self.config.window_ms / PANES_PER_WINDOW).max(1000)
    }

    /// The window's length in whole panes (60 unless the window is
    /// shorter than a minute).
    pub fn window_panes(&self) -> i64 {
        let pane = self.pane_ms();
        (self.config.window_ms + pane - 1) / pane
    }

    /// A rolling reference's offset in whole panes (rounded up).
    pub fn rolling_offset_panes(&self) -> Option<i64> {
        match self.config.reference {
            Reference::Rolling { offset_ms } => {
                let pane = self.pane_ms();
                Some((offset_ms + pane - 1) / pane)
            }
            _ => None,
        }
    }

    /// The class id of a categorical prediction or actual value.
    fn class_of(&mut self, v: &Value<'_>) -> f64 {
        let text = value_text(v);
        self.classes.intern(&text, MAX_CATEGORIES) as f64
    }
}

/// A value as category text: strings as they are, numbers in Rust's
/// shortest form (`1`, `0.5`), so a class sent as `1` and as `"1"` is one.
fn value_text<'v>(v: &'v Value<'_>) -> std::borrow::Cow<'v, str> {
    match v {
        Value::Text(t) => std::borrow::Cow::Borrowed(t.as_ref()),
        Value::Number(n) => std::borrow::Cow::Owned(format!("{n}")),
        Value::Null => std::borrow::Cow::Borrowed(""),
    }
}

fn to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Every model of a server.
pub struct Models {
    dir: Option<PathBuf>,
    models: RwLock<BTreeMap<String, Arc<Mutex<ModelState>>>>,
    configs: RwLock<HashMap<String, ModelConfig>>,
}

impl Models {
    /// Models kept in memory only (no log): for tests and servers without
    /// a data directory.
    pub fn in_memory() -> Models {
        Models {
            dir: None,
            models: RwLock::new(BTreeMap::new()),
            configs: RwLock::new(HashMap::new()),
        }
    }

    /// Opens the models under `<data_dir>/models`, replaying each model's
    /// log under its settings in `configs` (the `models:` section; a
    /// model's window sets its panes, its reference what is collected);
    /// without a directory nothing is durable (tests).
    pub fn open(data_dir: Option<PathBuf>, configs: &[ModelConfig]) -> std::io::Result<Models> {
        let dir = data_dir.map(|d| d.join("models"));
        let models = Models {
            dir: dir.clone(),
            models: RwLock::new(BTreeMap::new()),
            configs: RwLock::new(config_map(configs)),
        };
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
            let mut names: Vec<String> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| config::models::is_valid_model_name(n))
                .collect();
            names.sort();
            for name in names {
                let state = models.load(&name)?;
                models
                    .models
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name, Arc::new(Mutex::new(state)));
            }
        }
        Ok(models)
    }

    /// Replays one model's log and reference.
    fn load(&self, name: &str) -> std::io::Result<ModelState> {
        let mut state = ModelState::new(self.config_for(name));
        let Some(dir) = &self.dir else {
            return Ok(state);
        };
        let model_dir = dir.join(name);
        if let Ok(body) = std::fs::read(model_dir.join("reference.json")) {
            match records::parse_predictions(&body, RecordKind::Reference) {
                Ok(recs) => {
                    if check_predictions(&state, &recs, RecordKind::Reference).is_ok() {
                        apply_reference(&mut state, &recs);
                    }
                }
                Err(error) => {
                    tracing::warn!(model = name, %error, "model reference.json unreadable; ignored")
                }
            }
        }
        let (log, replayed) = Log::open(&model_dir.join("log"), |kind, payload| {
            replay(&mut state, kind, payload)
        })?;
        if replayed.frames > 0 {
            tracing::info!(model = name, frames = replayed.frames, "model log replayed");
        }
        state.log = Some(log);
        Ok(state)
    }

    fn config_for(&self, name: &str) -> ModelConfig {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_else(|| ModelConfig::defaults(name))
    }

    /// Applies the `models:` section: configured models get their
    /// settings (and exist from now on); others go back to defaults. A
    /// logged model whose window, reference or task changes is rebuilt
    /// from its log under the new settings (its panes' width and what its
    /// reference collected depend on them); its requests wait meanwhile.
    pub fn configure(&self, configs: &[ModelConfig]) {
        *self.configs.write().unwrap_or_else(|e| e.into_inner()) = config_map(configs);
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        for c in configs {
            models
                .entry(c.name.clone())
                .or_insert_with(|| Arc::new(Mutex::new(ModelState::new(c.clone()))));
        }
        for (name, model) in models.iter() {
            let config = configs
                .iter()
                .find(|c| &c.name == name)
                .cloned()
                .unwrap_or_else(|| ModelConfig::defaults(name));
            let mut m = model.lock().unwrap_or_else(|e| e.into_inner());
            let reshaped = m.config.window_ms != config.window_ms
                || m.config.reference != config.reference
                || config
                    .task
                    .is_some_and(|t| m.task.is_some_and(|have| have != t));
            if self.dir.is_some() && reshaped {
                // Close the log before replaying it.
                m.log = None;
                match self.load(name) {
                    Ok(state) => {
                        *m = state;
                        continue;
                    }
                    Err(error) => tracing::warn!(
                        model = name.as_str(),
                        %error,
                        "replaying the model's log under its new settings failed; its records stay as they were"
                    ),
                }
            }
            if let Some(task) = config.task {
                m.task = Some(task);
            }
            // Only an uploaded reference (its stand-in, the first
            // window) and a time range are accumulated.
            let range = match config.reference {
                Reference::TimeRange { start_ms, end_ms } => Some((start_ms, end_ms)),
                Reference::Upload => m.first_ms.map(|first| (first, first + config.window_ms)),
                Reference::BaselineVersion(_) | Reference::Rolling { .. } => None,
            };
            if range != m.reference_range {
                m.reference_range = range;
                m.accumulated = Pane::default();
            }
            m.next_evaluation_ms = i64::MIN;
            m.config = config;
        }
    }

    /// The names of the models known now.
    pub fn names(&self) -> Vec<String> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Mutex<ModelState>>> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The model, created (with its log opened) when it does not exist.
    fn get_or_create(&self, name: &str) -> Result<Arc<Mutex<ModelState>>, IngestError> {
        if let Some(m) = self.get(name) {
            return Ok(m);
        }
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = models.get(name) {
            return Ok(m.clone());
        }
        let mut state = ModelState::new(self.config_for(name));
        if let Some(dir) = &self.dir {
            let (log, _) = Log::open(&dir.join(name).join("log"), |_, _| None)
                .map_err(|e| IngestError::storage(format!("opening the model's log: {e}")))?;
            state.log = Some(log);
        }
        let m = Arc::new(Mutex::new(state));
        models.insert(name.to_string(), m.clone());
        Ok(m)
    }

    /// Opens the model's log when the model exists without one (a model
    /// that a `models:` entry created before its first record).
    fn ensure_log(&self, name: &str, state: &mut ModelState) -> Result<(), IngestError> {
        if state.log.is_some() {
            return Ok(());
        }
        if let Some(dir) = &self.dir {
            let (log, _) = Log::open(&dir.join(name).join("log"), |_, _| None)
                .map_err(|e| IngestError::storage(format!("opening the model's log: {e}")))?;
            state.log = Some(log);
        }
        Ok(())
    }

    fn check_name(name: &str) -> Result<(), IngestError> {
        if config::models::is_valid_model_name(name) {
            Ok(())
        } else {
            Err(IngestError::bad(format!(
                "invalid model name {name:?}: letters, digits, '_', '-' and '.' (not first), at most 128 bytes"
            )))
        }
    }

    /// `POST /api/v1/models/{model}/predictions`.
    pub fn ingest_predictions(&self, name: &str, body: &[u8]) -> Result<Accepted, IngestError> {
        Self::check_name(name)?;
        let recs = records::parse_predictions(body, RecordKind::Predictions)
            .map_err(|e| IngestError::bad(e.message))?;
        // A new model is created only for a request that checks out
        // against a fresh one; an existing model is checked under its lock,
        // once, right before the write.
        let model = match self.get(name) {
            Some(m) => m,
            None => {
                let fresh = ModelState::new(self.config_for(name));
                check_predictions(&fresh, &recs, RecordKind::Predictions)?;
                self.get_or_create(name)?
            }
        };
        let mut state = model.lock().unwrap_or_else(|e| e.into_inner());
        check_predictions(&state, &recs, RecordKind::Predictions)?;
        self.ensure_log(name, &mut state)?;
        let newest = recs
            .iter()
            .filter_map(|r| r.timestamp)
            .fold(i64::MIN, |a, t| a.max(to_ms(t)));
        if let Some(log) = &mut state.log {
            log.append(FrameKind::Predictions, body, newest)
                .map_err(|e| IngestError::storage(format!("writing the model's log: {e}")))?;
        }
        let joined = apply_predictions(&mut state, &recs);
        Ok(Accepted {
            records: recs.len(),
            joined,
            waiting: 0,
        })
    }

    /// `POST /api/v1/models/{model}/actuals`.
    pub fn ingest_actuals(&self, name: &str, body: &[u8]) -> Result<Accepted, IngestError> {
        Self::check_name(name)?;
        let recs = records::parse_actuals(body).map_err(|e| IngestError::bad(e.message))?;
        let model = match self.get(name) {
            Some(m) => m,
            None => {
                let fresh = ModelState::new(self.config_for(name));
                check_actuals(&fresh, &recs)?;
                self.get_or_create(name)?
            }
        };
        let mut state = model.lock().unwrap_or_else(|e| e.into_inner());
        check_actuals(&state, &recs)?;
        self.ensure_log(name, &mut state)?;
        let newest = recs.iter().fold(i64::MIN, |a, r| a.max(to_ms(r.timestamp)));
        if let Some(log) = &mut state.log {
            log.append(FrameKind::Actuals, body, newest)
                .map_err(|e| IngestError::storage(format!("writing the model's log: {e}")))?;
        }
        let (joined, waiting) = apply_actuals(&mut state, &recs);
        Ok(Accepted {
            records: recs.len(),
            joined,
            waiting,
        })
    }

    /// `POST /api/v1/models/{model}/reference`: replaces the reference.
    pub fn set_reference(&self, name: &str, body: &[u8]) -> Result<Accepted, IngestError> {
        Self::check_name(name)?;
        let recs = records::parse_predictions(body, RecordKind::Reference)
            .map_err(|e| IngestError::bad(e.message))?;
        if recs.is_empty() {
            return Err(IngestError::bad(
                "records: a reference set needs at least one record",
            ));
        }
        if let Some(m) = self.get(name) {
            let state = m.lock().unwrap_or_else(|e| e.into_inner());
            check_predictions(&state, &recs, RecordKind::Reference)?;
        } else {
            let fresh = ModelState::new(self.config_for(name));
            check_predictions(&fresh, &recs, RecordKind::Reference)?;
        }
        let model = self.get_or_create(name)?;
        let mut state = model.lock().unwrap_or_else(|e| e.into_inner());
        check_predictions(&state, &recs, RecordKind::Reference)?;
        self.ensure_log(name, &mut state)?;
        if let Some(dir) = &self.dir {
            crate::log::write_atomic(&dir.join(name).join("reference.json"), body)
                .map_err(|e| IngestError::storage(format!("writing the reference: {e}")))?;
        }
        apply_reference(&mut state, &recs);
        Ok(Accepted {
            records: recs.len(),
            ..Accepted::default()
        })
    }

    /// Evaluates every model whose evaluation is due at `now_ms`,
    /// returning the samples to write: (labels, value), all at `now_ms`.
    pub fn evaluate_due(&self, now_ms: i64) -> Vec<(model::Labels, f64)> {
        let models: Vec<Arc<Mutex<ModelState>>> = self
            .models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out = Vec::new();
        for m in models {
            let mut state = m.lock().unwrap_or_else(|e| e.into_inner());
            if state.next_evaluation_ms > now_ms {
                continue;
            }
            let interval = state.config.evaluation_interval_ms;
            state.next_evaluation_ms = now_ms - now_ms.rem_euclid(interval) + interval;
            crate::evaluate::evaluate(&mut state, now_ms, &mut out);
        }
        out
    }

    /// One feature's reference and current distributions
    /// (`crate::distribution`): of `version`'s window, or of the version
    /// with the most records in it.
    pub fn distribution(
        &self,
        name: &str,
        feature: &str,
        version: Option<&str>,
        now_ms: i64,
    ) -> Result<crate::distribution::Distribution, crate::distribution::DistributionError> {
        let Some(m) = self.get(name) else {
            return Err(crate::distribution::DistributionError::Unknown(format!(
                "no model {name:?}"
            )));
        };
        let state = m.lock().unwrap_or_else(|e| e.into_inner());
        crate::distribution::distribution(&state, feature, version, now_ms)
    }

    /// Two versions' windows side by side (`GET
    /// /api/v1/models/{model}/compare`): records, every performance
    /// figure, its difference (`b − a`) and the p-value of the tested
    /// ones.
    pub fn compare(
        &self,
        name: &str,
        a: &str,
        b: &str,
    ) -> Result<Comparison, crate::distribution::DistributionError> {
        use crate::distribution::DistributionError;
        let Some(m) = self.get(name) else {
            return Err(DistributionError::Unknown(format!("no model {name:?}")));
        };
        let state = m.lock().unwrap_or_else(|e| e.into_inner());
        let id = |v: &str| {
            state.versions.get(v).map(|i| i as usize).ok_or_else(|| {
                DistributionError::Unknown(format!("model {name:?} has no version {v:?}"))
            })
        };
        let (ia, ib) = (id(a)?, id(b)?);
        let Some((records_a, records_b, figures)) = crate::evaluate::compare_pair(&state, ia, ib)
        else {
            return Err(DistributionError::NotYet(format!(
                "versions {a:?} and {b:?} of model {name:?} need records in the window"
            )));
        };
        Ok(Comparison {
            model: name.to_string(),
            a: a.to_string(),
            b: b.to_string(),
            records_a,
            records_b,
            figures,
        })
    }

    /// Evaluates one model now, whether due or not (tests, benchmarks).
    pub fn evaluate_model(&self, name: &str, now_ms: i64) -> Vec<(model::Labels, f64)> {
        let mut out = Vec::new();
        if let Some(m) = self.get(name) {
            let mut state = m.lock().unwrap_or_else(|e| e.into_inner());
            crate::evaluate::evaluate(&mut state, now_ms, &mut out);
        }
        out
    }
}

fn config_map(configs: &[ModelConfig]) -> HashMap<String, ModelConfig> {
    configs
        .iter()
        .map(|c| (c.name.clone(), c.clone()))
        .collect()
}

/// Replays one frame; returns its newest record timestamp.
fn replay(state: &mut ModelState, kind: FrameKind, payload: &[u8]) -> Option<i64> {
    match kind {
        FrameKind::Predictions => {
            let recs = records::parse_predictions(payload, RecordKind::Predictions).ok()?;
            if let Err(error) = check_predictions(state, &recs, RecordKind::Predictions) {
                tracing::warn!(%error, "model log: a logged request no longer fits the model; skipped");
                return None;
            }
            apply_predictions(state, &recs);
            recs.iter().filter_map(|r| r.timestamp).map(to_ms).max()
        }
        FrameKind::Actuals => {
            let recs = records::parse_actuals(payload).ok()?;
            if check_actuals(state, &recs).is_err() {
                return None;
            }
            apply_actuals(state, &recs);
            recs.iter().map(|r| to_ms(r.timestamp)).max()
        }
    }
}

/// The task a request implies for a model that has none yet.
fn infer_task(recs: &[Prediction<'_>]) -> Option<Task> {
    let first = recs.iter().find(|r| r.prediction.is_some())?;
    Some(match (&first.prediction, first.scores.is_empty()) {
        (Some(Value::Text(_)), _) | (_, false) => Task::Classification,
        _ => Task::Regression,
    })
}

/// Checks records against the model: task, feature kinds, limits.
fn check_predictions(
    state: &ModelState,
    recs: &[Prediction<'_>],
    kind: RecordKind,
) -> Result<(), IngestError> {
    let task = state.task.or_else(|| infer_task(recs));
    let mut new_kinds: HashMap<&str, Kind> = HashMap::new();
    let mut new_features = 0usize;
    let mut new_versions: Vec<&str> = Vec::new();
    // The kind each feature position held in the previous record, with
    // its name: records of one request mostly list the same features in
    // the same order, and a name compare is cheaper than a hash lookup.
    let mut previous: Vec<(&str, Kind)> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        if let Some(v) = &r.version
            && state.versions.get(v).is_none()
            && !new_versions.contains(&v.as_ref())
        {
            new_versions.push(v);
            if state.versions.names.len() + new_versions.len() > MAX_VERSIONS {
                return Err(IngestError::bad(format!(
                    "records[{i}].version: the model has {MAX_VERSIONS} versions already; no more are kept"
                )));
            }
        }
        if let (Some(task), Some(p)) = (task, &r.prediction)
            && task == Task::Regression
            && !matches!(p, Value::Number(_))
        {
            return Err(IngestError::bad(format!(
                "records[{i}].prediction: the model is a regression; expected a number"
            )));
        }
        for (position, (name, value)) in r.features.iter().enumerate() {
            let want = match value {
                Value::Number(_) => Kind::Numeric,
                Value::Text(_) => Kind::Categorical,
                Value::Null => continue,
            };
            let have = match previous.get(position) {
                // A name's kind, once found, stays for the whole request.
                Some(&(seen, kind)) if seen == name.as_ref() => kind,
                _ => {
                    let have = kind_of(state, &mut new_kinds, &mut new_features, name, want)
                        .map_err(|limit| {
                            IngestError::bad(format!(
                                "records[{i}].features.{name}: the model has {limit} features already"
                            ))
                        })?;
                    if previous.len() <= position {
                        previous.resize(position + 1, ("", have));
                    }
                    previous[position] = (name, have);
                    have
                }
            };
            if have != want {
                let (holds, got) = match have {
                    Kind::Numeric => ("numbers", "a string"),
                    Kind::Categorical => ("strings", "a number"),
                };
                return Err(IngestError::bad(format!(
                    "records[{i}].features.{name}: the feature holds {holds}; got {got}"
                )));
            }
        }
        if kind == RecordKind::Reference
            && let (Some(Task::Regression), Some(a)) = (task, &r.actual)
            && !matches!(a, Value::Number(_))
        {
            return Err(IngestError::bad(format!(
                "records[{i}].actual: the model is a regression; expected a number"
            )));
        }
    }
    Ok(())
}

/// The kind feature `name` holds: the model's, else the one this request
/// gave it first, else `want` (counting it as new; past
/// [`MAX_FEATURES`] an error carrying the limit).
fn kind_of<'r>(
    state: &ModelState,
    new_kinds: &mut HashMap<&'r str, Kind>,
    new_features: &mut usize,
    name: &'r str,
    want: Kind,
) -> Result<Kind, usize> {
    let id = state.features.get(name);
    let known = id.and_then(|id| state.kinds.get(id as usize).copied().flatten());
    Ok(match known.or_else(|| new_kinds.get(name).copied()) {
        Some(k) => k,
        None => {
            if id.is_none() {
                *new_features += 1;
                if state.features.names.len() + *new_features > MAX_FEATURES {
                    return Err(MAX_FEATURES);
                }
            }
            new_kinds.insert(name, want);
            want
        }
    })
}

fn check_actuals(state: &ModelState, recs: &[Actual<'_>]) -> Result<(), IngestError> {
    if state.task == Some(Task::Regression) {
        for (i, r) in recs.iter().enumerate() {
            if !matches!(r.actual, Value::Number(_)) {
                return Err(IngestError::bad(format!(
                    "records[{i}].actual: the model is a regression; expected a number"
                )));
            }
        }
    }
    Ok(())
}

/// Feature ids by position in the previous record, with their names:
/// records of one request mostly list the same features in the same
/// order, and comparing a name costs less than hashing it.
#[derive(Default)]
struct PositionIds<'r> {
    previous: Vec<(&'r str, u32)>,
}

impl<'r> PositionIds<'r> {
    /// The id of feature `name`, listed at `position` (interning it).
    fn id(&mut self, state: &mut ModelState, position: usize, name: &'r str) -> usize {
        if let Some(&(seen, id)) = self.previous.get(position)
            && seen == name
        {
            return id as usize;
        }
        let id = state.features.intern(name, MAX_FEATURES);
        let index = id as usize;
        if state.kinds.len() <= index {
            state.kinds.resize(index + 1, None);
            state.categories.resize_with(index + 1, Interner::default);
        }
        // Names are never empty, so the filler matches nothing.
        if self.previous.len() <= position {
            self.previous.resize(position + 1, ("", 0));
        }
        self.previous[position] = (name, id);
        index
    }
}

/// The id caches of one request: features and SHAP names.
#[derive(Default)]
struct RecordIds<'r> {
    features: PositionIds<'r>,
    shap: PositionIds<'r>,
}

/// One record's values by feature id, ready to add to panes; reused from
/// record to record.
#[derive(Default)]
struct Resolved {
    cells: Vec<(usize, Cell)>,
    shap: Vec<(usize, f64)>,
    prediction: Option<Cell>,
}

/// Resolves a record's names to ids (interning features, categories and
/// classes) into `out`.
fn resolve<'r>(
    state: &mut ModelState,
    ids: &mut RecordIds<'r>,
    r: &'r Prediction<'_>,
    out: &mut Resolved,
) {
    out.cells.clear();
    out.shap.clear();
    for (position, (name, value)) in r.features.iter().enumerate() {
        let id = ids.features.id(state, position, name);
        let cell = match value {
            Value::Number(v) => {
                state.kinds[id].get_or_insert(Kind::Numeric);
                Cell::Number(*v)
            }
            Value::Text(t) => {
                state.kinds[id].get_or_insert(Kind::Categorical);
                Cell::Category(state.categories[id].intern(t, MAX_CATEGORIES))
            }
            Value::Null => Cell::Missing,
        };
        out.cells.push((id, cell));
    }
    for (position, (name, v)) in r.shap.iter().enumerate() {
        let id = ids.shap.id(state, position, name);
        out.shap.push((id, *v));
    }
    out.prediction = match (&r.prediction, state.task) {
        (Some(Value::Number(v)), Some(Task::Regression)) => Some(Cell::Number(*v)),
        (Some(p), _) => Some(Cell::Category(state.class_of(p) as u32)),
        (None, _) => None,
    };
}

/// Adds one resolved record's features and prediction to a pane.
fn add_resolved(pane: &mut Pane, record: &Resolved) {
    pane.records += 1;
    pane.raw_count += 1;
    for &(id, cell) in &record.cells {
        let column = pane.column(id);
        match cell {
            Cell::Number(v) => {
                column.present += 1;
                column.raw.push(v);
            }
            Cell::Category(c) => {
                column.present += 1;
                *column.counts.entry(c).or_default() += 1;
            }
            Cell::Missing => {}
        }
    }
    if !record.shap.is_empty() {
        pane.shap_records += 1;
    }
    for &(id, v) in &record.shap {
        let column = pane.column(id);
        column.shap_sum += v.abs();
        column.shap_n += 1;
    }
    if let Some(cell) = record.prediction {
        let column = &mut pane.prediction;
        column.present += 1;
        match cell {
            Cell::Number(v) => column.raw.push(v),
            Cell::Category(c) => *column.counts.entry(c).or_default() += 1,
            Cell::Missing => {}
        }
    }
}

#[derive(Clone, Copy)]
enum Cell {
    Number(f64),
    Category(u32),
    Missing,
}

/// Applies checked prediction records; returns the number joined with an
/// actual that had arrived first.
fn apply_predictions(state: &mut ModelState, recs: &[Prediction<'_>]) -> usize {
    if state.task.is_none() {
        state.task = infer_task(recs);
    }
    let pane_ms = state.pane_ms();
    if state.first_ms.is_none() {
        let first = recs.iter().filter_map(|r| r.timestamp).map(to_ms).min();
        if let Some(first) = first {
            state.first_ms = Some(first);
            if state.reference_range.is_none() && state.config.reference == Reference::Upload {
                state.reference_range = Some((first, first + state.config.window_ms));
            }
        }
    }
    let mut joined = 0;
    let mut ids = RecordIds::default();
    let mut resolved = Resolved::default();
    let mut last_version: Option<(&str, usize)> = None;
    for r in recs {
        let (Some(id), Some(version), Some(ts)) = (&r.id, &r.version, r.timestamp) else {
            continue;
        };
        let ts_ms = to_ms(ts);
        let v = match last_version {
            Some((name, v)) if name == version.as_ref() => v,
            _ => {
                let v = state.versions.intern(version, MAX_VERSIONS) as usize;
                last_version = Some((version, v));
                v
            }
        };
        if state.windows.len() <= v {
            state.windows.resize_with(v + 1, VersionState::default);
        }
        resolve(state, &mut ids, r, &mut resolved);
        let pane = state.windows[v]
            .panes
            .entry(ts_ms.div_euclid(pane_ms))
            .or_default();
        add_resolved(pane, &resolved);
        // The first window stands in for the reference only until one is
        // uploaded; a time range is always collected (and nothing else
        // has a range).
        let collecting = state.uploaded.is_none() || state.config.reference != Reference::Upload;
        let in_reference = collecting
            && state
                .reference_range
                .is_some_and(|(start, end)| ts_ms >= start && ts_ms < end);
        if in_reference {
            add_resolved(&mut state.accumulated, &resolved);
        }
        state.last_prediction_ms = Some(state.last_prediction_ms.map_or(ts_ms, |l| l.max(ts_ms)));
        let prediction = match resolved.prediction {
            Some(Cell::Number(x)) => x,
            Some(Cell::Category(c)) => c as f64,
            Some(Cell::Missing) | None => f64::NAN,
        };
        let scores: Option<Box<[(u32, f64)]>> = if r.scores.is_empty() {
            None
        } else {
            Some(
                r.scores
                    .iter()
                    .map(|(class, s)| (state.classes.intern(class, MAX_CATEGORIES), *s))
                    .collect(),
            )
        };
        let pending = Pending {
            version: v as u32,
            ts_ms,
            prediction,
            scores,
            in_reference,
        };
        if !state.early.is_empty()
            && let Some((actual, actual_ms)) = state.early.remove(id.as_ref())
        {
            let actual = match (&actual, state.task) {
                (Value::Number(x), Some(Task::Regression)) => *x,
                (v, _) => state.class_of(v),
            };
            join(state, &pending, actual, actual_ms);
            joined += 1;
            continue;
        }
        // A repeated id replaces the waiting prediction (keeping its
        // place in the order); a new one costs one allocation, shared by
        // the map and the order.
        match state.pending.get_mut(id.as_ref()) {
            Some(waiting) => *waiting = pending,
            None => {
                let key: Arc<str> = Arc::from(id.as_ref());
                state.pending.insert(key.clone(), pending);
                state.pending_order.push_back((ts_ms, key));
            }
        }
        while state.pending.len() > MAX_PENDING {
            let Some((_, old)) = state.pending_order.pop_front() else {
                break;
            };
            if state.pending.remove(&old).is_some() {
                state.dropped_pending += 1;
            }
        }
    }
    enforce_exact_budget(state);
    joined
}

/// Keeps at most [`crate::EXACT_RECORDS`] raw records per version window
/// (and in the accumulated reference): the oldest raw panes are summarised.
/// Panes before the current window (held for a rolling reference) have a
/// budget of their own, so that the current window stays exact as long
/// as it holds at most that many records.
fn enforce_exact_budget(state: &mut ModelState) {
    let boundary = state.window_start_pane;
    for w in &mut state.windows {
        for range in [(boundary, i64::MAX), (i64::MIN, boundary)] {
            let in_range = |index: &i64| *index >= range.0 && *index < range.1;
            let mut raw: u64 = w
                .panes
                .iter()
                .filter(|(i, _)| in_range(i))
                .map(|(_, p)| p.raw_records())
                .sum();
            while raw > crate::EXACT_RECORDS as u64 {
                let Some((_, pane)) = w
                    .panes
                    .iter_mut()
                    .find(|(i, p)| in_range(i) && p.raw_count > 0)
                else {
                    break;
                };
                raw -= pane.raw_count;
                pane.summarise();
            }
        }
    }
    if state.accumulated.raw_count > crate::EXACT_RECORDS as u64 {
        state.accumulated.summarise();
    }
}

/// Joins an actual to its prediction: the performance sums of the pane
/// the actual's timestamp falls in (and the reference's, when the
/// prediction belongs to it).
fn join(state: &mut ModelState, p: &Pending, actual: f64, actual_ms: i64) {
    let pane_ms = state.pane_ms();
    let task = state.task;
    let delay = (actual_ms - p.ts_ms) as f64 / 1000.0;
    let update = |perf: &mut crate::window::Perf| {
        perf.n += 1;
        perf.delay_sum += delay;
        match task {
            Some(Task::Regression) => {
                let e = actual - p.prediction;
                perf.squared.push(e * e);
                perf.absolute.push(e.abs());
                perf.ape_sum += e.abs() / actual.abs().max(f64::EPSILON);
            }
            _ => {
                let (a, q) = (actual as u32, p.prediction as u32);
                if a == q {
                    perf.correct += 1;
                }
                *perf.confusion.entry((a, q)).or_default() += 1;
                if let Some(scores) = &p.scores {
                    perf.scored.push((scores.clone(), a));
                }
            }
        }
    };
    if let Some(w) = state.windows.get_mut(p.version as usize) {
        let pane = w.panes.entry(actual_ms.div_euclid(pane_ms)).or_default();
        update(&mut pane.perf);
    }
    if p.in_reference {
        update(&mut state.accumulated.perf);
    }
    state.last_actual_ms = Some(state.last_actual_ms.map_or(actual_ms, |l| l.max(actual_ms)));
}

/// Applies checked actuals; returns (joined, waiting for a prediction).
fn apply_actuals(state: &mut ModelState, recs: &[Actual<'_>]) -> (usize, usize) {
    let (mut joined, mut waiting) = (0, 0);
    for r in recs {
        let ms = to_ms(r.timestamp);
        match state.pending.remove(r.id.as_ref()) {
            Some(p) => {
                let value = match (&r.actual, state.task) {
                    (Value::Number(x), Some(Task::Regression)) => *x,
                    (v, _) => state.class_of(v),
                };
                join(state, &p, value, ms);
                joined += 1;
            }
            None => {
                if state.early.len() < MAX_EARLY_ACTUALS {
                    let owned = match &r.actual {
                        Value::Number(x) => Value::Number(*x),
                        Value::Text(t) => Value::Text(std::borrow::Cow::Owned(t.to_string())),
                        Value::Null => Value::Null,
                    };
                    state.early.insert(r.id.as_ref().into(), (owned, ms));
                    waiting += 1;
                }
                state.last_actual_ms = Some(state.last_actual_ms.map_or(ms, |l| l.max(ms)));
            }
        }
    }
    (joined, waiting)
}

/// Replaces the uploaded reference with `recs`.
fn apply_reference(state: &mut ModelState, recs: &[Prediction<'_>]) {
    if state.task.is_none() {
        state.task = infer_task(recs);
    }
    state.uploaded = Some(Pane::default());
    let mut ids = RecordIds::default();
    let mut resolved = Resolved::default();
    for r in recs {
        resolve(state, &mut ids, r, &mut resolved);
        add_resolved(state.uploaded.get_or_insert_with(Pane::default), &resolved);
        let actual = match (&r.actual, &r.prediction) {
            (Some(a), Some(p)) => Some((a.clone(), p.clone())),
            _ => None,
        };
        if let Some((a, p)) = actual {
            let pending = Pending {
                version: u32::MAX,
                ts_ms: 0,
                prediction: match (&p, state.task) {
                    (Value::Number(x), Some(Task::Regression)) => *x,
                    (v, _) => state.class_of(v),
                },
                scores: None,
                in_reference: false,
            };
            let actual = match (&a, state.task) {
                (Value::Number(x), Some(Task::Regression)) => *x,
                (v, _) => state.class_of(v),
            };
            let task = state.task;
            if let Some(pane) = &mut state.uploaded {
                let perf = &mut pane.perf;
                perf.n += 1;
                match task {
                    Some(Task::Regression) => {
                        let e = actual - pending.prediction;
                        perf.squared.push(e * e);
                        perf.absolute.push(e.abs());
                        perf.ape_sum += e.abs() / actual.abs().max(f64::EPSILON);
                    }
                    _ => {
                        let (x, y) = (actual as u32, pending.prediction as u32);
                        if x == y {
                            perf.correct += 1;
                        }
                        *perf.confusion.entry((x, y)).or_default() += 1;
                    }
                }
            }
        }
    }
    if let Some(pane) = &mut state.uploaded
        && pane.records > crate::EXACT_RECORDS as u64
    {
        pane.summarise();
    }
}

/// Forgets what left the window, the pending joins past the actuals
/// horizon, and log segments no longer needed.
pub(crate) fn expire(state: &mut ModelState, now_ms: i64) {
    let pane_ms = state.pane_ms();
    let oldest = (now_ms - state.config.window_ms).div_euclid(pane_ms);
    // A rolling reference needs the panes from its start on.
    let keep = oldest - state.rolling_offset_panes().unwrap_or(0);
    for w in &mut state.windows {
        w.panes.retain(|index, _| *index >= keep);
    }
    if state.window_start_pane != oldest {
        state.window_start_pane = oldest;
        enforce_exact_budget(state);
    }
    let horizon = now_ms - ACTUALS_HORIZON_MS;
    while let Some((ts, _)) = state.pending_order.front() {
        if *ts >= horizon {
            break;
        }
        if let Some((_, id)) = state.pending_order.pop_front()
            && state.pending.remove(&id).is_some()
        {
            state.dropped_pending += 1;
        }
    }
    let keep_from = match state.reference_range {
        Some((start, _)) if state.config.reference != Reference::Upload => start.min(horizon),
        _ => horizon.min(keep * pane_ms),
    };
    if let Some(log) = &mut state.log {
        log.retain(keep_from);
    }
}
