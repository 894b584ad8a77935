//! The `models:` section: per-model settings for model-quality monitoring
//! (`docs/models.md`). A model needs no entry to be monitored (its first
//! record creates it with [`ModelConfig::defaults`]); an entry overrides
//! the defaults and turns on the model's starter alert rules.
//!
//! ```yaml
//! models:
//!   - name: churn
//!     task: classification
//!     window: 1h
//!     evaluation_interval: 15s
//!     reference: {time_range: {start: 2026-01-01T00:00:00Z, end: 2026-01-08T00:00:00Z}}
//!     # or {baseline_version: v1}, or {rolling: 1d} (the window a day back)
//!     baseline_version: v1
//!     drift: {threshold: 0.1, psi: 0.1, p_value: 0.05, share: 0.5}
//!     alerts: {accuracy_below: 0.8, missing_actuals_for: 2h, for: 5m}
//! ```

use crate::ConfigError;
use crate::decode::{Decoder, Field};
use yaml::Node;

/// Classification or regression; inferred from the records when unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Classification,
    Regression,
}

/// What the model's figures are compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    /// The uploaded reference set; until one is uploaded, the model's
    /// first complete window (the default).
    Upload,
    /// The records whose timestamps fall in `[start_ms, end_ms)`.
    TimeRange { start_ms: i64, end_ms: i64 },
    /// The same window of another version.
    BaselineVersion(String),
    /// An earlier window of the model's own records (all versions): the
    /// current window moved back by `offset_ms`, which is at least one
    /// window (no overlap) and at most [`MAX_ROLLING_WINDOWS`] windows.
    Rolling { offset_ms: i64 },
}

/// The furthest back a rolling reference may lie, in windows: every
/// record from the reference's start to now is held (raw up to the exact
/// budget, then summarised), so the offset bounds a model's memory
/// (`docs/models.md` states the bound). Seven windows reach the same
/// hour a week ago with a one-day window.
pub const MAX_ROLLING_WINDOWS: i64 = 7;

/// Drift thresholds (Evidently's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct DriftThresholds {
    /// A distance method (normed Wasserstein, JS) drifts at or above this.
    pub threshold: f64,
    /// PSI drifts at or above this.
    pub psi: f64,
    /// A test method drifts below this p-value.
    pub p_value: f64,
    /// The model drifts when at least this share of its features do.
    pub share: f64,
}

/// The starter alert rules' settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertSettings {
    /// `ModelAccuracyLow` fires below this accuracy (classification).
    pub accuracy_below: f64,
    /// `ModelErrorHigh` fires when RMSE rises above the reference's by
    /// this factor (regression).
    pub rmse_increase: f64,
    /// `ModelActualsMissing` fires when no actual has arrived for this
    /// long while predictions keep coming.
    pub missing_actuals_for_ms: i64,
    /// How long a condition must hold before its alert fires.
    pub for_ms: i64,
}

/// One model's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    pub task: Option<Task>,
    pub window_ms: i64,
    pub evaluation_interval_ms: i64,
    pub reference: Reference,
    /// The version others are compared with; unset: the version with the
    /// most records in the window.
    pub baseline_version: Option<String>,
    pub drift: DriftThresholds,
    pub alerts: AlertSettings,
    /// Whether this entry came from the config file (which turns on the
    /// starter alert rules) rather than from defaults.
    pub configured: bool,
}

impl ModelConfig {
    /// The settings of a model that has no entry.
    pub fn defaults(name: &str) -> ModelConfig {
        ModelConfig {
            name: name.to_string(),
            task: None,
            window_ms: 3_600_000,
            evaluation_interval_ms: 15_000,
            reference: Reference::Upload,
            baseline_version: None,
            drift: DriftThresholds {
                threshold: 0.1,
                psi: 0.1,
                p_value: 0.05,
                share: 0.5,
            },
            alerts: AlertSettings {
                accuracy_below: 0.8,
                rmse_increase: 1.2,
                missing_actuals_for_ms: 3_600_000,
                for_ms: 300_000,
            },
            configured: false,
        }
    }
}

/// Whether `name` may name a model: it appears in URLs, file names and
/// label values, so letters, digits, `_`, `-` and `.`, not starting with
/// `.`, at most 128 bytes.
pub fn is_valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Decodes `models:`, a list of entries.
pub fn decode(decoder: &Decoder, field: &Field<'_>) -> Result<Vec<ModelConfig>, ConfigError> {
    let mut out: Vec<ModelConfig> = Vec::new();
    for (index, item) in decoder.sequence(field.value, "models")?.iter().enumerate() {
        let path = format!("models[{index}]");
        let entry = decode_entry(decoder, item, &path)?;
        if out.iter().any(|m| m.name == entry.name) {
            return Err(decoder.error(
                item.line,
                &format!("{path}.name"),
                format!("model {:?} is listed twice", entry.name),
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

fn decode_entry(decoder: &Decoder, node: &Node, path: &str) -> Result<ModelConfig, ConfigError> {
    let fields = decoder.fields(node, path)?;
    let name_field = fields
        .iter()
        .find(|f| f.name == "name")
        .ok_or_else(|| decoder.error(node.line, &format!("{path}.name"), "missing"))?;
    let name = decoder.string(name_field.value, &name_field.path)?;
    if !is_valid_model_name(&name) {
        return Err(decoder.error(
            name_field.value.line,
            &name_field.path,
            format!(
                "invalid model name {name:?}: letters, digits, '_', '-' and '.' (not first), at most 128 bytes"
            ),
        ));
    }
    let mut m = ModelConfig::defaults(&name);
    m.configured = true;
    for f in &fields {
        match f.name.as_str() {
            "name" => {}
            "task" => {
                m.task = Some(match decoder.string(f.value, &f.path)?.as_str() {
                    "classification" => Task::Classification,
                    "regression" => Task::Regression,
                    other => {
                        return Err(decoder.error(
                            f.value.line,
                            &f.path,
                            format!("expected classification or regression, got {other:?}"),
                        ));
                    }
                })
            }
            "window" => m.window_ms = decoder.positive_duration(f.value, &f.path)?,
            "evaluation_interval" => {
                m.evaluation_interval_ms = decoder.positive_duration(f.value, &f.path)?
            }
            "reference" => m.reference = decode_reference(decoder, f)?,
            "baseline_version" => m.baseline_version = Some(decoder.string(f.value, &f.path)?),
            "drift" => {
                for d in decoder.fields(f.value, &f.path)? {
                    let value = decoder.float(d.value, &d.path)?;
                    let (slot, max) = match d.name.as_str() {
                        "threshold" => (&mut m.drift.threshold, f64::INFINITY),
                        "psi" => (&mut m.drift.psi, f64::INFINITY),
                        "p_value" => (&mut m.drift.p_value, 1.0),
                        "share" => (&mut m.drift.share, 1.0),
                        _ => return Err(decoder.unknown(&d)),
                    };
                    if !(value > 0.0 && value <= max) {
                        return Err(decoder.error(
                            d.value.line,
                            &d.path,
                            format!("must be greater than 0 and at most {max}, got {value}"),
                        ));
                    }
                    *slot = value;
                }
            }
            "alerts" => {
                for a in decoder.fields(f.value, &f.path)? {
                    match a.name.as_str() {
                        "accuracy_below" => {
                            let v = decoder.float(a.value, &a.path)?;
                            if !(0.0..=1.0).contains(&v) {
                                return Err(decoder.error(
                                    a.value.line,
                                    &a.path,
                                    format!("must be between 0 and 1, got {v}"),
                                ));
                            }
                            m.alerts.accuracy_below = v;
                        }
                        "rmse_increase" => {
                            let v = decoder.float(a.value, &a.path)?;
                            if !(v > 0.0 && v.is_finite()) {
                                return Err(decoder.error(
                                    a.value.line,
                                    &a.path,
                                    format!("must be a positive factor, got {v}"),
                                ));
                            }
                            m.alerts.rmse_increase = v;
                        }
                        "missing_actuals_for" => {
                            m.alerts.missing_actuals_for_ms =
                                decoder.positive_duration(a.value, &a.path)?
                        }
                        "for" => m.alerts.for_ms = decoder.duration(a.value, &a.path)?,
                        _ => return Err(decoder.unknown(&a)),
                    }
                }
            }
            _ => return Err(decoder.unknown(f)),
        }
    }
    if let Reference::Rolling { offset_ms } = m.reference
        && !(m.window_ms..=MAX_ROLLING_WINDOWS * m.window_ms).contains(&offset_ms)
    {
        let field = fields
            .iter()
            .find(|f| f.name == "reference")
            .map_or(node.line, |f| f.value.line);
        return Err(decoder.error(
            field,
            &format!("{path}.reference.rolling"),
            format!(
                "the offset must be at least the window and at most {MAX_ROLLING_WINDOWS} windows ({} to {}), got {}",
                model::duration::format_duration_ms(m.window_ms),
                model::duration::format_duration_ms(MAX_ROLLING_WINDOWS * m.window_ms),
                model::duration::format_duration_ms(offset_ms),
            ),
        ));
    }
    if m.evaluation_interval_ms > m.window_ms {
        return Err(decoder.error(
            node.line,
            &format!("{path}.evaluation_interval"),
            "must not be longer than the window",
        ));
    }
    Ok(m)
}

fn decode_reference(decoder: &Decoder, f: &Field<'_>) -> Result<Reference, ConfigError> {
    if let Ok(text) = f.value.as_string() {
        return match text.as_str() {
            "upload" => Ok(Reference::Upload),
            other => Err(decoder.error(
                f.value.line,
                &f.path,
                format!("expected upload, or a mapping with time_range, baseline_version or rolling, got {other:?}"),
            )),
        };
    }
    let fields = decoder.fields(f.value, &f.path)?;
    if fields.len() != 1 {
        return Err(decoder.error(
            f.value.line,
            &f.path,
            "expected exactly one of time_range, baseline_version and rolling",
        ));
    }
    let r = &fields[0];
    match r.name.as_str() {
        "time_range" => {
            let (mut start, mut end) = (None, None);
            for t in decoder.fields(r.value, &r.path)? {
                let text = decoder.string(t.value, &t.path)?;
                let ms = model::time::parse_rfc3339_ms(&text, model::time::Rfc3339Grammar::Go)
                    .ok_or_else(|| {
                        decoder.error(
                            t.value.line,
                            &t.path,
                            format!("not an RFC 3339 time: {text:?}"),
                        )
                    })?;
                match t.name.as_str() {
                    "start" => start = Some(ms),
                    "end" => end = Some(ms),
                    _ => return Err(decoder.unknown(&t)),
                }
            }
            match (start, end) {
                (Some(start_ms), Some(end_ms)) if start_ms < end_ms => {
                    Ok(Reference::TimeRange { start_ms, end_ms })
                }
                (Some(_), Some(_)) => {
                    Err(decoder.error(r.value.line, &r.path, "start must be before end"))
                }
                _ => Err(decoder.error(r.value.line, &r.path, "needs start and end")),
            }
        }
        "baseline_version" => Ok(Reference::BaselineVersion(
            decoder.string(r.value, &r.path)?,
        )),
        "rolling" => Ok(Reference::Rolling {
            offset_ms: decoder.positive_duration(r.value, &r.path)?,
        }),
        _ => Err(decoder.unknown(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ModelConfig>, String> {
        crate::parse("osprey.yml", text, None)
            .map(|c| c.models)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_an_entry_with_defaults_filled_in() {
        let models = parse(
            "models:\n  - name: churn\n    task: classification\n    window: 30m\n    reference:\n      time_range: {start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z}\n    drift: {psi: 0.2}\n    alerts: {accuracy_below: 0.9, for: 1m}\n  - name: price\n    reference: {baseline_version: v1}\n  - name: fraud\n    window: 1d\n    reference: {rolling: 7d}\n",
        )
        .expect("parse");
        assert_eq!(models.len(), 3);
        let churn = &models[0];
        assert_eq!(churn.task, Some(Task::Classification));
        assert_eq!(churn.window_ms, 1_800_000);
        assert_eq!(churn.evaluation_interval_ms, 15_000);
        assert_eq!(churn.drift.psi, 0.2);
        assert_eq!(churn.drift.p_value, 0.05);
        assert_eq!(churn.alerts.accuracy_below, 0.9);
        assert_eq!(churn.alerts.for_ms, 60_000);
        assert!(churn.configured);
        assert_eq!(
            churn.reference,
            Reference::TimeRange {
                start_ms: 1_767_225_600_000,
                end_ms: 1_767_312_000_000
            }
        );
        assert_eq!(
            models[1].reference,
            Reference::BaselineVersion("v1".to_string())
        );
        assert_eq!(
            models[2].reference,
            Reference::Rolling {
                offset_ms: 7 * 86_400_000
            }
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases = [
            (
                "models:\n  - name: a\n    windw: 1h\n",
                "osprey.yml:3: models[0].windw: unknown field",
            ),
            (
                "models:\n  - name: a\n    window: 1x\n",
                "osprey.yml:3: models[0].window: not a valid duration string",
            ),
            (
                "models:\n  - name: 'a b'\n",
                "osprey.yml:2: models[0].name: invalid model name",
            ),
            (
                "models:\n  - task: regression\n",
                "osprey.yml:2: models[0].name: missing",
            ),
            (
                "models:\n  - name: a\n  - name: a\n",
                "osprey.yml:3: models[1].name: model \"a\" is listed twice",
            ),
            (
                "models:\n  - name: a\n    reference: {rolling: 30m}\n",
                "osprey.yml:3: models[0].reference.rolling: the offset must be at least the window and at most 7 windows (1h to 7h), got 30m",
            ),
            (
                "models:\n  - name: a\n    window: 1d\n    reference: {rolling: 8d}\n",
                "osprey.yml:4: models[0].reference.rolling: the offset must be at least the window and at most 7 windows (1d to 1w), got 8d",
            ),
            (
                "models:\n  - name: a\n    drift: {p_value: 2}\n",
                "osprey.yml:3: models[0].drift.p_value: must be greater than 0 and at most 1",
            ),
            (
                "drift: {}\n",
                "osprey.yml:1: drift: not supported by osprey",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }
}
