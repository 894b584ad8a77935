//! OpenSLO v1 (`apiVersion: openslo/v1`): `SLO` objects with an inline
//! `indicator` or an `indicatorRef` to an `SLI` object of the same file,
//! `ratioMetric` (good or bad over total, or a raw ratio) and
//! `thresholdMetric` indicators over Prometheus queries, `timeWindow`
//! rolling or calendar-aligned (a month or a quarter, UTC), and the
//! `Occurrences`, `Timeslices` and `RatioTimeslices` budgeting methods.
//!
//! Every objective becomes one SLO (`<name>` when there is one,
//! `<name>-<index>` when there are several), with the service's name as
//! `sloth_service`. Queries are PromQL and may use Sloth's `{{.window}}`;
//! a `counter: true` ratio metric may instead be a bare series selector,
//! which becomes `sum(rate(<selector>[{{.window}}]))`.
//!
//! What OpenSLO leaves to implementations is set with `osprey.dev/`
//! annotations on the SLO's metadata: `alert-name` (default
//! `ErrorBudgetBurn`), `page-alert` and `ticket-alert` (`"false"` turns
//! one off), `min-events` and `budget-method`. Other annotations belong
//! to other tools and are left alone. Alert policies, composite SLOs and
//! DataSource objects are refused: osprey alerts on multi-window burn
//! rates and queries only its own storage.

use std::collections::BTreeMap;

use config::slos::{BudgetMethod, Period};
use config::{ConfigError, Decoder};
use yaml::{Node, NodeValue};

use crate::ParseOptions;
use crate::common::{self, check_name, check_query, has_window_variable, render_window};
use crate::model::{AlertMeta, Sli, Slo};

pub const API_VERSION: &str = "openslo/v1";

/// The alert name of OpenSLO SLOs without an `osprey.dev/alert-name`.
pub const DEFAULT_ALERT_NAME: &str = "ErrorBudgetBurn";

#[derive(Clone, Copy, PartialEq)]
enum Budgeting {
    Occurrences,
    Timeslices,
    RatioTimeslices,
}

/// Reads one `kind: SLO` document. `documents` are the file's documents,
/// where an `indicatorRef` is looked up.
pub fn decode(
    decoder: &Decoder,
    root: &Node,
    options: &ParseOptions,
    documents: &[Node],
    out: &mut Vec<Slo>,
) -> Result<(), ConfigError> {
    let mut name = None;
    let mut display_name = String::new();
    let mut labels = BTreeMap::new();
    let mut extensions = Extensions::default();
    let mut spec = None;
    for entry in decoder.fields(root, "")? {
        match entry.name.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for meta in decoder.fields(entry.value, &entry.path)? {
                    match meta.name.as_str() {
                        "name" => {
                            let text = decoder.string(meta.value, &meta.path)?;
                            check_name(decoder, meta.value.line, &meta.path, &text)?;
                            name = Some(text);
                        }
                        "displayName" => display_name = decoder.string(meta.value, &meta.path)?,
                        "labels" => labels = metadata_labels(decoder, meta.value, &meta.path)?,
                        "annotations" => {
                            extensions = Extensions::decode(decoder, meta.value, &meta.path)?
                        }
                        _ => return Err(decoder.unknown(&meta)),
                    }
                }
            }
            "spec" => spec = Some((entry.value, entry.path.clone())),
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let Some(name) = name else {
        return Err(decoder.error(root.line, "metadata.name", "required"));
    };
    let Some((spec, spec_path)) = spec else {
        return Err(decoder.error(root.line, "spec", "required"));
    };
    let mut description = String::new();
    let mut service = None;
    let mut indicator = None;
    let mut period = None;
    let mut budgeting = None;
    let mut objectives = None;
    for entry in decoder.fields(spec, &spec_path)? {
        match entry.name.as_str() {
            "description" => description = decoder.string(entry.value, &entry.path)?,
            "service" => {
                let text = decoder.string(entry.value, &entry.path)?;
                check_name(decoder, entry.value.line, &entry.path, &text)?;
                service = Some(text);
            }
            "indicator" => {
                indicator = Some(Indicator::decode_inline(decoder, entry.value, &entry.path)?)
            }
            "indicatorRef" => {
                let reference = decoder.string(entry.value, &entry.path)?;
                indicator = Some(find_sli(
                    decoder,
                    entry.value.line,
                    &entry.path,
                    &reference,
                    documents,
                )?);
            }
            "timeWindow" => period = Some(decode_time_window(decoder, entry.value, &entry.path)?),
            "budgetingMethod" => {
                budgeting = Some(match decoder.string(entry.value, &entry.path)?.as_str() {
                    "Occurrences" => Budgeting::Occurrences,
                    "Timeslices" => Budgeting::Timeslices,
                    "RatioTimeslices" => Budgeting::RatioTimeslices,
                    other => {
                        return Err(decoder.error(
                            entry.value.line,
                            &entry.path,
                            format!("unknown budgeting method {other:?} (Occurrences, Timeslices or RatioTimeslices)"),
                        ));
                    }
                })
            }
            "objectives" => objectives = Some((entry.value, entry.path.clone())),
            "alertPolicies" => {
                if !decoder.sequence(entry.value, &entry.path)?.is_empty() {
                    return Err(decoder.unsupported(
                        &entry,
                        "OpenSLO alert policies (osprey pages and tickets on multi-window burn rates; see osprey.dev/ annotations)",
                    ));
                }
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let Some(service) = service else {
        return Err(decoder.error(spec.line, &format!("{spec_path}.service"), "required"));
    };
    let Some(indicator) = indicator else {
        return Err(decoder.error(
            spec.line,
            &format!("{spec_path}.indicator"),
            "one of indicator or indicatorRef is required",
        ));
    };
    let Some(budgeting) = budgeting else {
        return Err(decoder.error(
            spec.line,
            &format!("{spec_path}.budgetingMethod"),
            "required",
        ));
    };
    let Some((objectives, objectives_path)) = objectives else {
        return Err(decoder.error(spec.line, &format!("{spec_path}.objectives"), "required"));
    };
    let items = decoder.sequence(objectives, &objectives_path)?;
    if items.is_empty() {
        return Err(decoder.error(
            objectives.line,
            &objectives_path,
            "at least one objective is required",
        ));
    }
    if matches!(indicator.metric, Metric::Threshold { .. }) && items.len() > 1 {
        return Err(decoder.error(
            objectives.line,
            &objectives_path,
            "a thresholdMetric SLO has exactly one objective",
        ));
    }
    let period = period.unwrap_or(options.default_period);
    for (index, item) in items.iter().enumerate() {
        let field = format!("{objectives_path}[{index}]");
        let objective = Objective::decode(decoder, item, &field)?;
        let slo_name = if items.len() == 1 {
            name.clone()
        } else {
            format!("{name}-{index}")
        };
        let id = format!("{service}-{slo_name}");
        check_name(decoder, item.line, &field, &id)?;
        let (sli, words) = build_sli(
            decoder, item.line, &field, &indicator, budgeting, &objective,
        )?;
        let has_events = matches!(sli, Sli::Events { .. });
        let budget_method = match extensions.budget_method {
            Some((method, line)) => {
                crate::check_budget_method(
                    decoder,
                    line,
                    "metadata.annotations.osprey.dev/budget-method",
                    method,
                    has_events,
                )?;
                method
            }
            None if has_events => options.budget_method,
            None => BudgetMethod::Time,
        };
        if let Some((_, line)) = extensions.min_events
            && !has_events
        {
            return Err(decoder.error(
                line,
                "metadata.annotations.osprey.dev/min-events",
                "low-traffic protection needs an SLI that counts events (Occurrences over good or bad and total)",
            ));
        }
        // The SLO's ID as a static label changes no alert (the series
        // carry it) but tells the rules of several SLOs apart for
        // promtool's duplicate-rule lint when they share the alert name.
        let alert = |enabled: bool| {
            enabled.then(|| AlertMeta {
                name: extensions.alert_name.clone(),
                labels: BTreeMap::from([("sloth_id".to_string(), id.clone())]),
                annotations: BTreeMap::new(),
            })
        };
        let page_alert = alert(extensions.page);
        let ticket_alert = alert(extensions.ticket);
        let mut slo_description = description.clone();
        if slo_description.is_empty() {
            slo_description = objective.display_name.clone();
        }
        if slo_description.is_empty() {
            slo_description = display_name.clone();
        }
        out.push(Slo {
            id,
            name: slo_name,
            service: service.clone(),
            description: slo_description,
            objective_percent: objective.percent,
            labels: labels.clone(),
            sli,
            indicator: words,
            period,
            budget_method,
            page_alert,
            ticket_alert,
            min_events: extensions.min_events.map(|(n, _)| n),
            spec: API_VERSION,
            file: decoder.file().to_string(),
            line: item.line,
        });
    }
    Ok(())
}

/// `metadata.labels`: one value per name (OpenSLO allows lists, which a
/// Prometheus label cannot hold).
fn metadata_labels(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    for entry in decoder.fields(node, field)? {
        if let NodeValue::Sequence(_) = entry.value.value {
            return Err(decoder.error(
                entry.value.line,
                &entry.path,
                "osprey takes one value per label (a Prometheus label holds one)",
            ));
        }
    }
    common::labels(decoder, node, field)
}

/// osprey's `osprey.dev/` annotations.
struct Extensions {
    alert_name: String,
    page: bool,
    ticket: bool,
    min_events: Option<(f64, u64)>,
    budget_method: Option<(BudgetMethod, u64)>,
}

impl Default for Extensions {
    fn default() -> Extensions {
        Extensions {
            alert_name: DEFAULT_ALERT_NAME.to_string(),
            page: true,
            ticket: true,
            min_events: None,
            budget_method: None,
        }
    }
}

impl Extensions {
    fn decode(decoder: &Decoder, node: &Node, field: &str) -> Result<Extensions, ConfigError> {
        let mut ext = Extensions::default();
        for entry in decoder.fields(node, field)? {
            let Some(key) = entry.name.strip_prefix("osprey.dev/") else {
                continue;
            };
            let text = decoder.string(entry.value, &entry.path)?;
            let line = entry.value.line;
            let flag = |text: &str| match text {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(decoder.error(line, &entry.path, "expected \"true\" or \"false\"")),
            };
            match key {
                "alert-name" => {
                    if !rules::file::is_valid_metric_name(&text) {
                        return Err(decoder.error(
                            line,
                            &entry.path,
                            format!("invalid alert name {text:?}"),
                        ));
                    }
                    ext.alert_name = text;
                }
                "page-alert" => ext.page = flag(&text)?,
                "ticket-alert" => ext.ticket = flag(&text)?,
                "min-events" => {
                    let value: f64 = text.trim().parse().map_err(|_| {
                        decoder.error(line, &entry.path, format!("not a number: {text:?}"))
                    })?;
                    if !(value.is_finite() && value > 0.0) {
                        return Err(decoder.error(
                            line,
                            &entry.path,
                            "min-events must be a positive number",
                        ));
                    }
                    ext.min_events = Some((value, line));
                }
                "budget-method" => {
                    ext.budget_method = Some((
                        config::slos::decode_budget_method(decoder, entry.value, &entry.path)?,
                        line,
                    ))
                }
                _ => {
                    return Err(decoder.error(
                        entry.key.line,
                        &entry.path,
                        "unknown osprey annotation (alert-name, page-alert, ticket-alert, min-events, budget-method)",
                    ));
                }
            }
        }
        Ok(ext)
    }
}

/// An SLI: what it measures and how to query it.
struct Indicator {
    metric: Metric,
    /// Where it is written, for errors about how the SLO uses it.
    line: u64,
}

enum Metric {
    /// `ratioMetric`.
    Ratio {
        counter: bool,
        numerator: Numerator,
        total: Option<String>,
    },
    /// `thresholdMetric`.
    Threshold { query: String },
}

enum Numerator {
    Good(String),
    Bad(String),
    /// `raw` with `rawType: success` (true) or `failure` (false).
    Raw {
        query: String,
        success: bool,
    },
}

impl Indicator {
    /// `indicator:` inline in an SLO (`metadata` and `spec`).
    fn decode_inline(
        decoder: &Decoder,
        node: &Node,
        field: &str,
    ) -> Result<Indicator, ConfigError> {
        let mut spec = None;
        for entry in decoder.fields(node, field)? {
            match entry.name.as_str() {
                "metadata" => check_metadata(decoder, entry.value, &entry.path)?,
                "spec" => spec = Some(Indicator::decode_spec(decoder, entry.value, &entry.path)?),
                _ => return Err(decoder.unknown(&entry)),
            }
        }
        spec.ok_or_else(|| decoder.error(node.line, &format!("{field}.spec"), "required"))
    }

    /// An SLI's `spec`.
    fn decode_spec(decoder: &Decoder, node: &Node, field: &str) -> Result<Indicator, ConfigError> {
        let mut metric = None;
        for entry in decoder.fields(node, field)? {
            match entry.name.as_str() {
                "description" => {
                    decoder.string(entry.value, &entry.path)?;
                }
                "ratioMetric" => metric = Some(decode_ratio(decoder, entry.value, &entry.path)?),
                "thresholdMetric" => {
                    let query = metric_source(decoder, entry.value, &entry.path)?;
                    metric = Some(Metric::Threshold { query });
                }
                _ => return Err(decoder.unknown(&entry)),
            }
        }
        let metric = metric.ok_or_else(|| {
            decoder.error(
                node.line,
                field,
                "either ratioMetric or thresholdMetric is required",
            )
        })?;
        Ok(Indicator {
            metric,
            line: node.line,
        })
    }
}

fn check_metadata(decoder: &Decoder, node: &Node, field: &str) -> Result<(), ConfigError> {
    for entry in decoder.fields(node, field)? {
        match entry.name.as_str() {
            "name" | "displayName" => {
                decoder.string(entry.value, &entry.path)?;
            }
            "labels" | "annotations" => {
                decoder.fields(entry.value, &entry.path)?;
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    Ok(())
}

/// The `SLI` document of this file named `reference`.
fn find_sli(
    decoder: &Decoder,
    line: u64,
    field: &str,
    reference: &str,
    documents: &[Node],
) -> Result<Indicator, ConfigError> {
    for document in documents {
        let NodeValue::Mapping(entries) = &document.value else {
            continue;
        };
        let get = |name: &str| {
            entries
                .iter()
                .find(|(key, _)| config::decode::key_is(key, name))
                .map(|(_, value)| value)
        };
        let is_sli = get("kind").and_then(|k| k.as_string().ok()).as_deref() == Some("SLI")
            && get("apiVersion")
                .and_then(|k| k.as_string().ok())
                .as_deref()
                == Some(API_VERSION);
        if !is_sli {
            continue;
        }
        let named = get("metadata")
            .and_then(|m| match &m.value {
                NodeValue::Mapping(meta) => meta
                    .iter()
                    .find(|(key, _)| config::decode::key_is(key, "name"))
                    .and_then(|(_, value)| value.as_string().ok()),
                _ => None,
            })
            .as_deref()
            == Some(reference);
        if !named {
            continue;
        }
        let mut spec = None;
        for entry in decoder.fields(document, "")? {
            match entry.name.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => check_metadata(decoder, entry.value, &entry.path)?,
                "spec" => spec = Some(Indicator::decode_spec(decoder, entry.value, &entry.path)?),
                _ => return Err(decoder.unknown(&entry)),
            }
        }
        return spec.ok_or_else(|| decoder.error(document.line, "spec", "required"));
    }
    Err(decoder.error(
        line,
        field,
        format!("no SLI named {reference:?} in this file"),
    ))
}

fn decode_ratio(decoder: &Decoder, node: &Node, field: &str) -> Result<Metric, ConfigError> {
    let mut counter = false;
    let mut good = None;
    let mut bad = None;
    let mut total = None;
    let mut raw = None;
    let mut raw_type = None;
    for entry in decoder.fields(node, field)? {
        match entry.name.as_str() {
            "counter" => counter = decoder.bool(entry.value, &entry.path)?,
            "good" => good = Some(metric_source(decoder, entry.value, &entry.path)?),
            "bad" => bad = Some(metric_source(decoder, entry.value, &entry.path)?),
            "total" => total = Some(metric_source(decoder, entry.value, &entry.path)?),
            "raw" => raw = Some(metric_source(decoder, entry.value, &entry.path)?),
            "rawType" => {
                raw_type = Some(match decoder.string(entry.value, &entry.path)?.as_str() {
                    "success" => true,
                    "failure" => false,
                    other => {
                        return Err(decoder.error(
                            entry.value.line,
                            &entry.path,
                            format!("unknown rawType {other:?} (success or failure)"),
                        ));
                    }
                })
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let numerator = match (good, bad, raw) {
        (Some(good), None, None) => Numerator::Good(good),
        (None, Some(bad), None) => Numerator::Bad(bad),
        (None, None, Some(query)) => {
            if total.is_some() {
                return Err(decoder.error(node.line, field, "raw can't be used with total"));
            }
            let Some(success) = raw_type else {
                return Err(decoder.error(
                    node.line,
                    &format!("{field}.rawType"),
                    "required with raw",
                ));
            };
            Numerator::Raw { query, success }
        }
        _ => {
            return Err(decoder.error(
                node.line,
                field,
                "exactly one of good, bad and raw is required",
            ));
        }
    };
    if !matches!(numerator, Numerator::Raw { .. }) {
        if total.is_none() {
            return Err(decoder.error(
                node.line,
                &format!("{field}.total"),
                "required with good or bad",
            ));
        }
        if raw_type.is_some() {
            return Err(decoder.error(node.line, &format!("{field}.rawType"), "only with raw"));
        }
    }
    Ok(Metric::Ratio {
        counter,
        numerator,
        total,
    })
}

/// `metricSource`: a Prometheus query in `spec.query`.
fn metric_source(decoder: &Decoder, node: &Node, field: &str) -> Result<String, ConfigError> {
    let mut query = None;
    for entry in decoder.fields(node, field)? {
        match entry.name.as_str() {
            "metricSource" => {
                for source in decoder.fields(entry.value, &entry.path)? {
                    match source.name.as_str() {
                        // osprey evaluates every query against its own
                        // storage; a reference names where the data is,
                        // which for osprey is osprey.
                        "metricSourceRef" => {
                            decoder.string(source.value, &source.path)?;
                        }
                        "type" => {
                            let kind = decoder.string(source.value, &source.path)?;
                            if !kind.eq_ignore_ascii_case("prometheus") {
                                return Err(decoder.error(
                                    source.value.line,
                                    &source.path,
                                    format!("not supported by osprey: metric source type {kind:?} (osprey queries Prometheus data)"),
                                ));
                            }
                        }
                        "spec" => {
                            for spec in decoder.fields(source.value, &source.path)? {
                                match spec.name.as_str() {
                                    "query" => {
                                        query = Some((
                                            decoder.string(spec.value, &spec.path)?,
                                            spec.value.line,
                                            spec.path.clone(),
                                        ))
                                    }
                                    _ => return Err(decoder.unknown(&spec)),
                                }
                            }
                        }
                        _ => return Err(decoder.unknown(&source)),
                    }
                }
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let Some((query, line, path)) = query else {
        return Err(decoder.error(
            node.line,
            &format!("{field}.metricSource.spec.query"),
            "required",
        ));
    };
    if query.trim().is_empty() {
        return Err(decoder.error(line, &path, "a query is required"));
    }
    let rendered = render_window(&query, "1m").map_err(|e| decoder.error(line, &path, e))?;
    promql::parse(&rendered)
        .map_err(|e| decoder.error(line, &path, format!("invalid PromQL: {}", e.message())))?;
    Ok(query)
}

struct Objective {
    display_name: String,
    percent: f64,
    op: Option<(&'static str, u64)>,
    value: Option<f64>,
    slice_target: Option<(f64, u64)>,
    slice_window: Option<(i64, u64)>,
}

impl Objective {
    fn decode(decoder: &Decoder, node: &Node, field: &str) -> Result<Objective, ConfigError> {
        let mut objective = Objective {
            display_name: String::new(),
            percent: f64::NAN,
            op: None,
            value: None,
            slice_target: None,
            slice_window: None,
        };
        let mut target = None;
        for entry in decoder.fields(node, field)? {
            let line = entry.value.line;
            match entry.name.as_str() {
                "displayName" => {
                    objective.display_name = decoder.string(entry.value, &entry.path)?
                }
                "target" | "targetPercent" => {
                    if target.is_some() {
                        return Err(decoder.error(
                            line,
                            &entry.path,
                            "only one of target and targetPercent",
                        ));
                    }
                    let value = decoder.float(entry.value, &entry.path)?;
                    let percent = if entry.name == "target" {
                        value * 100.0
                    } else {
                        value
                    };
                    if !(percent > 0.0 && percent < 100.0) {
                        return Err(decoder.error(
                            line,
                            &entry.path,
                            "the target must be in (0, 1) (targetPercent in (0, 100))",
                        ));
                    }
                    target = Some(if entry.name == "target" {
                        // 0.999 × 100 is 99.9 up to the last bit; keep the
                        // digits the user wrote.
                        (value * 100.0 * 1e9).round() / 1e9
                    } else {
                        value
                    });
                }
                "op" => {
                    objective.op = Some((
                        match decoder.string(entry.value, &entry.path)?.as_str() {
                            "lt" => "<",
                            "lte" => "<=",
                            "gt" => ">",
                            "gte" => ">=",
                            other => {
                                return Err(decoder.error(
                                    line,
                                    &entry.path,
                                    format!("unknown op {other:?} (lt, lte, gt, gte)"),
                                ));
                            }
                        },
                        line,
                    ))
                }
                "value" => {
                    let value = decoder.float(entry.value, &entry.path)?;
                    if !value.is_finite() {
                        return Err(decoder.error(line, &entry.path, "not a number"));
                    }
                    objective.value = Some(value);
                }
                "timeSliceTarget" => {
                    let value = decoder.float(entry.value, &entry.path)?;
                    if !(value > 0.0 && value <= 1.0) {
                        return Err(decoder.error(
                            line,
                            &entry.path,
                            "timeSliceTarget must be in (0, 1]",
                        ));
                    }
                    objective.slice_target = Some((value, line));
                }
                "timeSliceWindow" => {
                    let ms = match &entry.value.value {
                        NodeValue::Int(minutes) if *minutes > 0 => i64::try_from(*minutes)
                            .ok()
                            .and_then(|m| m.checked_mul(60_000)),
                        _ => shorthand_ms(&decoder.string(entry.value, &entry.path)?),
                    };
                    let Some(ms) = ms.filter(|ms| *ms >= 60_000 && ms % 60_000 == 0) else {
                        return Err(decoder.error(
                            line,
                            &entry.path,
                            "a time slice is whole minutes (1m, 5m, or a number of minutes)",
                        ));
                    };
                    objective.slice_window = Some((ms, line));
                }
                "indicator" | "indicatorRef" | "compositeWeight" => {
                    return Err(decoder.unsupported(&entry, "composite SLOs"));
                }
                _ => return Err(decoder.unknown(&entry)),
            }
        }
        let Some(percent) = target else {
            return Err(decoder.error(
                node.line,
                &format!("{field}.target"),
                "one of target and targetPercent is required",
            ));
        };
        objective.percent = percent;
        Ok(objective)
    }
}

/// A rolling duration in OpenSLO's shorthand (`30d`, `4w`, `12h`).
fn shorthand_ms(text: &str) -> Option<i64> {
    if text.ends_with(['M', 'Q', 'Y']) {
        return None;
    }
    model::duration::parse_ms(text).ok()
}

/// `timeWindow`: exactly one rolling or calendar-aligned window.
fn decode_time_window(decoder: &Decoder, node: &Node, field: &str) -> Result<Period, ConfigError> {
    let items = decoder.sequence(node, field)?;
    let [item] = items else {
        return Err(decoder.error(node.line, field, "exactly one time window is required"));
    };
    let field = format!("{field}[0]");
    let mut duration = None;
    let mut rolling = None;
    let mut calendar = None;
    for entry in decoder.fields(item, &field)? {
        match entry.name.as_str() {
            "duration" => {
                duration = Some((
                    decoder.string(entry.value, &entry.path)?,
                    entry.value.line,
                    entry.path.clone(),
                ))
            }
            "isRolling" => rolling = Some(decoder.bool(entry.value, &entry.path)?),
            "calendar" => calendar = Some((entry.value, entry.path.clone())),
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let Some((duration, line, path)) = duration else {
        return Err(decoder.error(item.line, &format!("{field}.duration"), "required"));
    };
    let rolling = rolling.unwrap_or(calendar.is_none());
    if rolling {
        if calendar.is_some() {
            return Err(decoder.error(item.line, &field, "a rolling window has no calendar"));
        }
        let ms = shorthand_ms(&duration).ok_or_else(|| {
            decoder.error(
                line,
                &path,
                format!("not supported by osprey: a rolling window of {duration:?} (months, quarters and years have no fixed length; use days or weeks, or a calendar window)"),
            )
        })?;
        config::slos::check_rolling_period(ms).map_err(|m| decoder.error(line, &path, m))?;
        return Ok(Period::Rolling { ms });
    }
    let period = match duration.as_str() {
        "1M" => Period::Month,
        "1Q" => Period::Quarter,
        _ => {
            return Err(decoder.error(
                line,
                &path,
                format!("not supported by osprey: a calendar window of {duration:?} (osprey aligns 1M and 1Q)"),
            ));
        }
    };
    let Some((calendar, calendar_path)) = calendar else {
        return Err(decoder.error(
            item.line,
            &format!("{field}.calendar"),
            "required for a calendar window",
        ));
    };
    for entry in decoder.fields(calendar, &calendar_path)? {
        match entry.name.as_str() {
            "timeZone" => {
                let zone = decoder.string(entry.value, &entry.path)?;
                if !matches!(
                    zone.as_str(),
                    "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Zulu" | "Etc/Zulu"
                ) {
                    return Err(decoder.error(
                        entry.value.line,
                        &entry.path,
                        format!("not supported by osprey: the time zone {zone:?} (calendar periods are aligned in UTC)"),
                    ));
                }
            }
            "startTime" => {
                let text = decoder.string(entry.value, &entry.path)?;
                check_start_time(&text, period)
                    .map_err(|m| decoder.error(entry.value.line, &entry.path, m))?;
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    Ok(period)
}

/// A calendar window's `startTime` (`2024-01-01 00:00:00`) must fall on
/// the start of a month (a quarter), since osprey aligns periods to them.
fn check_start_time(text: &str, period: Period) -> Result<(), String> {
    let bad = || format!("not a start time: {text:?} (YYYY-MM-DD hh:mm:ss)");
    let (date, time) = text
        .trim()
        .split_once([' ', 'T'])
        .unwrap_or((text.trim(), "00:00:00"));
    let parts: Vec<&str> = date.split('-').collect();
    let [_, month, day] = parts.as_slice() else {
        return Err(bad());
    };
    let month: u32 = month.parse().map_err(|_| bad())?;
    let day: u32 = day.parse().map_err(|_| bad())?;
    let midnight = time
        .trim_end_matches('Z')
        .split(':')
        .all(|p| p.parse::<u32>() == Ok(0));
    let quarter_month = matches!(month, 1 | 4 | 7 | 10);
    if !(1..=12).contains(&month) {
        return Err(bad());
    }
    if day != 1 || !midnight || (period == Period::Quarter && !quarter_month) {
        return Err(format!(
            "not supported by osprey: a {} that starts at {text:?} (periods start at midnight UTC on the first day of a {})",
            if period == Period::Quarter {
                "quarter"
            } else {
                "month"
            },
            if period == Period::Quarter {
                "quarter (January, April, July, October)"
            } else {
                "month"
            },
        ));
    }
    Ok(())
}

/// A query template for one window of events: as written when it uses
/// `{{.window}}`, else a counter's rate or a gauge's average over the
/// window (the query must then be a series selector).
fn events_query(
    decoder: &Decoder,
    line: u64,
    field: &str,
    query: &str,
    counter: bool,
) -> Result<String, ConfigError> {
    if has_window_variable(query) {
        return Ok(query.to_string());
    }
    if promql::parse_series_selector(query.trim()).is_err() {
        return Err(decoder.error(
            line,
            field,
            "a query must use {{.window}} or be a series selector (rated when the ratio metric is a counter)",
        ));
    }
    Ok(if counter {
        format!("sum(rate({}[{{{{.window}}}}]))", query.trim())
    } else {
        format!("sum(avg_over_time({}[{{{{.window}}}}]))", query.trim())
    })
}

/// The SLI of one objective under the SLO's budgeting method.
fn build_sli(
    decoder: &Decoder,
    line: u64,
    field: &str,
    indicator: &Indicator,
    budgeting: Budgeting,
    objective: &Objective,
) -> Result<(Sli, String), ConfigError> {
    let fail = |l: u64, message: &str| decoder.error(l, field, message.to_string());
    match &indicator.metric {
        Metric::Ratio {
            counter,
            numerator,
            total,
        } => {
            if objective.value.is_some() {
                return Err(fail(line, "value applies to a thresholdMetric"));
            }
            let total = match total {
                Some(total) => Some(events_query(
                    decoder,
                    indicator.line,
                    field,
                    total,
                    *counter,
                )?),
                None => None,
            };
            let numerator = match numerator {
                Numerator::Good(q) => {
                    Numerator::Good(events_query(decoder, indicator.line, field, q, *counter)?)
                }
                Numerator::Bad(q) => {
                    Numerator::Bad(events_query(decoder, indicator.line, field, q, *counter)?)
                }
                Numerator::Raw { query, success } => Numerator::Raw {
                    query: events_query(decoder, indicator.line, field, query, false)?,
                    success: *success,
                },
            };
            match budgeting {
                Budgeting::Occurrences => {
                    if objective.op.is_some()
                        || objective.slice_target.is_some()
                        || objective.slice_window.is_some()
                    {
                        return Err(fail(
                            line,
                            "op, timeSliceTarget and timeSliceWindow apply to time slices",
                        ));
                    }
                    let sli = match (numerator, total) {
                        (Numerator::Good(good), Some(total)) => Sli::Events {
                            error_query: format!("({total}) - ({good})"),
                            total_query: total,
                        },
                        (Numerator::Bad(bad), Some(total)) => Sli::Events {
                            error_query: bad,
                            total_query: total,
                        },
                        (Numerator::Raw { query, success }, _) => Sli::Raw {
                            error_ratio_query: if success {
                                format!("1 - ({query})")
                            } else {
                                query
                            },
                        },
                        _ => return Err(fail(line, "a ratio needs a total")),
                    };
                    check_rendered(decoder, line, field, &sli)?;
                    let words = match &sli {
                        Sli::Events { .. } => "bad events / total events",
                        Sli::Raw { .. } => "a precomputed ratio",
                    };
                    Ok((sli, words.to_string()))
                }
                Budgeting::Timeslices | Budgeting::RatioTimeslices => {
                    let Some((slice, _)) = objective.slice_window else {
                        return Err(fail(line, "timeSliceWindow is required with time slices"));
                    };
                    let window = model::duration::format_duration_ms(slice);
                    let render = |q: &str| render_window(q, &window).map_err(|e| fail(line, &e));
                    let good_ratio = match (&numerator, &total) {
                        (Numerator::Good(good), Some(total)) => {
                            format!("({}) / ({} > 0)", render(good)?, render(total)?)
                        }
                        (Numerator::Bad(bad), Some(total)) => {
                            format!("1 - ({}) / ({} > 0)", render(bad)?, render(total)?)
                        }
                        (
                            Numerator::Raw {
                                query,
                                success: true,
                            },
                            _,
                        ) => format!("({})", render(query)?),
                        (
                            Numerator::Raw {
                                query,
                                success: false,
                            },
                            _,
                        ) => format!("1 - ({})", render(query)?),
                        _ => return Err(fail(line, "a ratio needs a total")),
                    };
                    let (inner, words) = if budgeting == Budgeting::Timeslices {
                        let Some((target, _)) = objective.slice_target else {
                            return Err(fail(line, "timeSliceTarget is required with Timeslices"));
                        };
                        let op = objective.op.map(|(op, _)| op).unwrap_or(">=");
                        (
                            format!("({good_ratio}) {op} bool {}", crate::gofmt::go_g(target)),
                            format!(
                                "{window} slices whose good ratio is {op} {}",
                                crate::gofmt::go_g(target)
                            ),
                        )
                    } else {
                        if let Some((_, l)) = objective.op {
                            return Err(fail(l, "op does not apply to RatioTimeslices"));
                        }
                        if let Some((_, l)) = objective.slice_target {
                            return Err(fail(
                                l,
                                "timeSliceTarget does not apply to RatioTimeslices",
                            ));
                        }
                        (
                            good_ratio,
                            format!("the average good ratio of {window} slices"),
                        )
                    };
                    let sli = Sli::Raw {
                        error_ratio_query: format!(
                            "1 - avg_over_time(({inner})[{{{{.window}}}}:{window}])"
                        ),
                    };
                    check_rendered(decoder, line, field, &sli)?;
                    Ok((sli, words))
                }
            }
        }
        Metric::Threshold { query } => {
            let Some((op, _)) = objective.op else {
                return Err(fail(line, "op is required with a thresholdMetric"));
            };
            let Some(value) = objective.value else {
                return Err(fail(line, "value is required with a thresholdMetric"));
            };
            if let Some((_, l)) = objective.slice_target {
                return Err(fail(
                    l,
                    "timeSliceTarget applies to ratio metrics; a threshold slice is good when the value meets op and value",
                ));
            }
            let (rendered, step, words) = match budgeting {
                Budgeting::Occurrences => {
                    if has_window_variable(query) {
                        return Err(fail(
                            line,
                            "a thresholdMetric query with {{.window}} needs Timeslices",
                        ));
                    }
                    (query.clone(), String::new(), "evaluations".to_string())
                }
                Budgeting::Timeslices => {
                    let Some((slice, _)) = objective.slice_window else {
                        return Err(fail(line, "timeSliceWindow is required with Timeslices"));
                    };
                    let window = model::duration::format_duration_ms(slice);
                    let rendered = render_window(query, &window).map_err(|e| fail(line, &e))?;
                    (rendered, window.clone(), format!("{window} slices"))
                }
                Budgeting::RatioTimeslices => {
                    return Err(fail(line, "RatioTimeslices applies to ratio metrics"));
                }
            };
            let value = crate::gofmt::go_g(value);
            let sli = Sli::Raw {
                error_ratio_query: format!(
                    "1 - avg_over_time((({rendered}) {op} bool {value})[{{{{.window}}}}:{step}])"
                ),
            };
            check_rendered(decoder, line, field, &sli)?;
            Ok((sli, format!("{words} where the value is {op} {value}")))
        }
    }
}

/// The SLI's queries render and parse for a window.
fn check_rendered(decoder: &Decoder, line: u64, field: &str, sli: &Sli) -> Result<(), ConfigError> {
    let node = Node {
        line,
        value: NodeValue::Null,
    };
    match sli {
        Sli::Events {
            error_query,
            total_query,
        } => {
            check_query(decoder, &node, field, error_query, true)?;
            check_query(decoder, &node, field, total_query, true)
        }
        Sli::Raw { error_ratio_query } => {
            check_query(decoder, &node, field, error_ratio_query, true)
        }
    }
}
