//! Sloth's `prometheus/v1` spec format, read the way Sloth reads it (the
//! same names, checks and label merging), plus osprey's extensions:
//!
//! - `sli.latency` (a histogram and a threshold, interpolated within its
//!   bucket; see [`crate::common::Latency`]);
//! - an `osprey:` block per SLO with `period`, `budget_method` and
//!   `min_events`.
//!
//! Sloth ignores fields it does not know, so a spec that uses only the
//! `osprey:` block still generates with Sloth. Sloth's plugins (Go code
//! it loads) are refused: osprey runs none.

use std::collections::BTreeMap;

use config::{ConfigError, Decoder};
use yaml::Node;

use crate::ParseOptions;
use crate::common::{self, Latency, check_name, check_query};
use crate::model::{AlertMeta, Sli, Slo};

pub const VERSION: &str = "prometheus/v1";

/// Reads one `prometheus/v1` document.
pub fn decode(
    decoder: &Decoder,
    root: &Node,
    options: &ParseOptions,
    out: &mut Vec<Slo>,
) -> Result<(), ConfigError> {
    let mut service = None;
    let mut labels = BTreeMap::new();
    let mut slo_nodes: Option<(&Node, String)> = None;
    for entry in decoder.fields(root, "")? {
        match entry.name.as_str() {
            "version" => {
                let version = decoder.string(entry.value, &entry.path)?;
                if version != VERSION {
                    return Err(decoder.error(
                        entry.value.line,
                        &entry.path,
                        format!("invalid spec version {version:?}, should be {VERSION:?}"),
                    ));
                }
            }
            "service" => {
                let name = decoder.string(entry.value, &entry.path)?;
                check_name(decoder, entry.value.line, &entry.path, &name)?;
                service = Some(name);
            }
            "labels" => labels = common::labels(decoder, entry.value, &entry.path)?,
            "slos" => slo_nodes = Some((entry.value, entry.path.clone())),
            "slo_plugins" => {
                return Err(
                    decoder.unsupported(&entry, "Sloth SLO plugins (Go code osprey does not run)")
                );
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let Some(service) = service else {
        return Err(decoder.error(root.line, "service", "required"));
    };
    let Some((slos, path)) = slo_nodes else {
        return Err(decoder.error(root.line, "slos", "at least one SLO is required"));
    };
    let items = decoder.sequence(slos, &path)?;
    if items.is_empty() {
        return Err(decoder.error(slos.line, &path, "at least one SLO is required"));
    }
    for (index, item) in items.iter().enumerate() {
        let field = format!("slos[{index}]");
        out.push(decode_slo(
            decoder, item, &field, &service, &labels, options,
        )?);
    }
    Ok(())
}

fn decode_slo(
    decoder: &Decoder,
    node: &Node,
    field: &str,
    service: &str,
    spec_labels: &BTreeMap<String, String>,
    options: &ParseOptions,
) -> Result<Slo, ConfigError> {
    let mut name = None;
    let mut description = String::new();
    let mut objective = None;
    let mut labels = spec_labels.clone();
    let mut sli = None;
    let mut alerting = None;
    let mut period = options.default_period;
    let mut budget_method = None;
    let mut min_events = None;
    for entry in decoder.fields(node, field)? {
        match entry.name.as_str() {
            "name" => {
                let text = decoder.string(entry.value, &entry.path)?;
                check_name(decoder, entry.value.line, &entry.path, &text)?;
                name = Some(text);
            }
            "description" => description = decoder.string(entry.value, &entry.path)?,
            "objective" => {
                let value = decoder.float(entry.value, &entry.path)?;
                if !(value > 0.0 && value <= 100.0) {
                    return Err(decoder.error(
                        entry.value.line,
                        &entry.path,
                        "the objective must be >0 and <=100",
                    ));
                }
                objective = Some((value, entry.value.line));
            }
            "labels" => labels.extend(common::labels(decoder, entry.value, &entry.path)?),
            "sli" => sli = Some(decode_sli(decoder, entry.value, &entry.path)?),
            "alerting" => alerting = Some((entry.value, entry.path.clone())),
            "plugins" => {
                return Err(
                    decoder.unsupported(&entry, "Sloth SLO plugins (Go code osprey does not run)")
                );
            }
            "osprey" => {
                for ext in decoder.fields(entry.value, &entry.path)? {
                    match ext.name.as_str() {
                        "period" => {
                            period = config::slos::decode_period(decoder, ext.value, &ext.path)?
                        }
                        "budget_method" => {
                            budget_method = Some((
                                config::slos::decode_budget_method(decoder, ext.value, &ext.path)?,
                                ext.value.line,
                                ext.path.clone(),
                            ))
                        }
                        "min_events" => {
                            min_events = Some((
                                crate::decode_min_events(decoder, ext.value, &ext.path)?,
                                ext.value.line,
                                ext.path.clone(),
                            ))
                        }
                        _ => return Err(decoder.unknown(&ext)),
                    }
                }
            }
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let Some(name) = name else {
        return Err(decoder.error(node.line, &format!("{field}.name"), "required"));
    };
    let Some((objective, _)) = objective else {
        return Err(decoder.error(node.line, &format!("{field}.objective"), "required"));
    };
    let Some((sli, indicator)) = sli else {
        return Err(decoder.error(
            node.line,
            &format!("{field}.sli"),
            "at least one SLI type is required",
        ));
    };
    let id = format!("{service}-{name}");
    check_name(decoder, node.line, &format!("{field}.name"), &id)?;
    let (page_alert, ticket_alert) = match alerting {
        Some((node, path)) => decode_alerting(decoder, node, &path)?,
        None => {
            // Sloth's zero value: an alerting section with no name, whose
            // page and ticket alerts are on, which its validation refuses.
            return Err(decoder.error(
                node.line,
                &format!("{field}.alerting.name"),
                "an alert name is required (or disable page_alert and ticket_alert)",
            ));
        }
    };
    let has_events = matches!(sli, Sli::Events { .. });
    let budget_method = match budget_method {
        Some((method, line, path)) => {
            crate::check_budget_method(decoder, line, &path, method, has_events)?;
            method
        }
        None if has_events => options.budget_method,
        None => config::slos::BudgetMethod::Time,
    };
    if let Some((_, line, path)) = &min_events
        && !has_events
    {
        return Err(decoder.error(
            *line,
            path,
            "low-traffic protection needs an SLI that counts events (events or latency)",
        ));
    }
    Ok(Slo {
        id,
        name,
        service: service.to_string(),
        description,
        objective_percent: objective,
        labels,
        sli,
        indicator,
        period,
        budget_method,
        page_alert,
        ticket_alert,
        min_events: min_events.map(|(n, _, _)| n),
        spec: VERSION,
        file: decoder.file().to_string(),
        line: node.line,
    })
}

/// `sli`: exactly one of `events`, `raw` and osprey's `latency`.
fn decode_sli(decoder: &Decoder, node: &Node, field: &str) -> Result<(Sli, String), ConfigError> {
    let fields = decoder.fields(node, field)?;
    if fields.len() > 1 {
        return Err(decoder.error(node.line, field, "only one SLI type is allowed"));
    }
    let Some(entry) = fields.first() else {
        return Err(decoder.error(node.line, field, "at least one SLI type is required"));
    };
    match entry.name.as_str() {
        "events" => {
            let mut error_query = None;
            let mut total_query = None;
            for query in decoder.fields(entry.value, &entry.path)? {
                let text = decoder.string(query.value, &query.path)?;
                match query.name.as_str() {
                    "error_query" => {
                        check_query(decoder, query.value, &query.path, &text, true)?;
                        error_query = Some(text);
                    }
                    "total_query" => {
                        check_query(decoder, query.value, &query.path, &text, true)?;
                        total_query = Some(text);
                    }
                    _ => return Err(decoder.unknown(&query)),
                }
            }
            let (Some(error_query), Some(total_query)) = (error_query, total_query) else {
                return Err(decoder.error(
                    entry.value.line,
                    &entry.path,
                    "both error_query and total_query are required",
                ));
            };
            if error_query == total_query {
                return Err(decoder.error(
                    entry.value.line,
                    &entry.path,
                    "both error and total queries can't be the same",
                ));
            }
            Ok((
                Sli::Events {
                    error_query,
                    total_query,
                },
                "errors / total events".to_string(),
            ))
        }
        "raw" => {
            let mut query = None;
            for item in decoder.fields(entry.value, &entry.path)? {
                match item.name.as_str() {
                    "error_ratio_query" => {
                        let text = decoder.string(item.value, &item.path)?;
                        check_query(decoder, item.value, &item.path, &text, true)?;
                        query = Some(text);
                    }
                    _ => return Err(decoder.unknown(&item)),
                }
            }
            let Some(error_ratio_query) = query else {
                return Err(decoder.error(
                    entry.value.line,
                    &format!("{}.error_ratio_query", entry.path),
                    "required",
                ));
            };
            Ok((
                Sli::Raw { error_ratio_query },
                "error ratio query".to_string(),
            ))
        }
        "latency" => {
            let latency = Latency::decode(decoder, entry.value, &entry.path)?;
            Ok((latency.sli(), latency.describe()))
        }
        "plugin" => {
            Err(decoder.unsupported(entry, "Sloth SLI plugins (Go code osprey does not run)"))
        }
        _ => Err(decoder.unknown(entry)),
    }
}

/// `alerting`: the page and ticket alerts, labels and annotations merged
/// as Sloth merges them.
fn decode_alerting(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<(Option<AlertMeta>, Option<AlertMeta>), ConfigError> {
    let mut name = String::new();
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut page = AlertPart::default();
    let mut ticket = AlertPart::default();
    for entry in decoder.fields(node, field)? {
        match entry.name.as_str() {
            "name" => name = decoder.string(entry.value, &entry.path)?,
            "labels" => labels = common::labels(decoder, entry.value, &entry.path)?,
            "annotations" => annotations = common::annotations(decoder, entry.value, &entry.path)?,
            "page_alert" => page = AlertPart::decode(decoder, entry.value, &entry.path)?,
            "ticket_alert" => ticket = AlertPart::decode(decoder, entry.value, &entry.path)?,
            _ => return Err(decoder.unknown(&entry)),
        }
    }
    let build = |part: AlertPart| -> Result<Option<AlertMeta>, ConfigError> {
        if part.disable {
            return Ok(None);
        }
        if name.is_empty() {
            return Err(decoder.error(
                node.line,
                &format!("{field}.name"),
                "an alert name is required",
            ));
        }
        let mut merged_labels = labels.clone();
        merged_labels.extend(part.labels);
        let mut merged_annotations = annotations.clone();
        merged_annotations.extend(part.annotations);
        Ok(Some(AlertMeta {
            name: name.clone(),
            labels: merged_labels,
            annotations: merged_annotations,
        }))
    };
    let page = build(page)?;
    let ticket = build(ticket)?;
    Ok((page, ticket))
}

#[derive(Default)]
struct AlertPart {
    disable: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl AlertPart {
    fn decode(decoder: &Decoder, node: &Node, field: &str) -> Result<AlertPart, ConfigError> {
        let mut part = AlertPart::default();
        for entry in decoder.fields(node, field)? {
            match entry.name.as_str() {
                "disable" => part.disable = decoder.bool(entry.value, &entry.path)?,
                "labels" => part.labels = common::labels(decoder, entry.value, &entry.path)?,
                "annotations" => {
                    part.annotations = common::annotations(decoder, entry.value, &entry.path)?
                }
                _ => return Err(decoder.unknown(&entry)),
            }
        }
        Ok(part)
    }
}
