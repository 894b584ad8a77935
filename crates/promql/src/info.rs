//! `info(v [, data-label selector])` (experimental in Prometheus 3): adds
//! to each series of `v` the labels of the info series (`target_info`, or
//! those the selector names) that share its identifying labels
//! (`instance`, `job`), as Prometheus's `evalInfo` does.

use crate::QueryError;
use crate::ast::{At, Call, Expr, VectorSelector};
use crate::eval::{Ctx, Steps};
use crate::value::{StepSeries, Val};
use model::{Labels, LabelsBuilder, MatchOp, Matcher};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

pub(crate) fn eval(ctx: &Ctx<'_>, c: &Call, steps: &Steps) -> Result<Val, QueryError> {
    let base = match ctx.eval(&c.args[0], steps)? {
        Val::Vector(v) => v,
        _ => return Err(QueryError::bad_data("info() needs an instant vector")),
    };
    // The data-label matchers by label name, and the name matchers.
    let mut data: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
    let mut name_matchers: Vec<Matcher> = Vec::new();
    match c.args.get(1).map(crate::eval::unwrap_parens) {
        Some(Expr::VectorSelector(vs)) => {
            for m in &vs.matchers {
                data.entry(m.name().to_string())
                    .or_default()
                    .push(m.clone());
                if m.name() == model::METRIC_NAME {
                    name_matchers.push(m.clone());
                }
            }
        }
        Some(_) => return Err(QueryError::bad_data("expected label selectors only")),
        None => name_matchers.push(Matcher::equal(model::METRIC_NAME, TARGET_INFO)),
    }
    let effective = effective_name_matchers(&name_matchers)?;
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let name = s.labels.get(model::METRIC_NAME).unwrap_or_default();
            effective.iter().all(|m| m.matches(name))
        })
        .collect();
    let (at, offset) = first_selector_timing(&c.args[0]);

    // The identifying label values of the series that are not info series.
    let mut ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (s, ignore) in base.iter().zip(&ignored) {
        if *ignore {
            continue;
        }
        for l in IDENTIFYING_LABELS {
            if let Some(v) = s.labels.get(l).filter(|v| !v.is_empty()) {
                ids.entry(l).or_default().insert(v.to_string());
            }
        }
    }
    let data_names: Vec<String> = data
        .keys()
        .filter(|n| *n != model::METRIC_NAME)
        .cloned()
        .collect();
    let mut info_series: Vec<StepSeries> = Vec::new();
    if !ids.is_empty() {
        let mut matchers = Vec::new();
        for (name, values) in &ids {
            let re = values
                .iter()
                .map(|v| regex::escape(v))
                .collect::<Vec<_>>()
                .join("|");
            matchers.push(
                Matcher::new(MatchOp::RegexMatch, *name, re)
                    .map_err(|e| QueryError::execution(e.to_string()))?,
            );
        }
        for (name, ms) in &data {
            if name != model::METRIC_NAME {
                matchers.extend(ms.iter().cloned());
            }
        }
        matchers.extend(effective_name_matchers(&name_matchers)?);
        let selector = VectorSelector {
            name: None,
            matchers,
            offset_ms: offset,
            offset_expr: None,
            at,
            anchored: false,
            smoothed: false,
        };
        // With timestamps: the newest info series wins a signature.
        ctx.eval_vector_selector(&selector, steps, true, &mut |s| {
            if s.has_hists() {
                return Err(QueryError::execution("info sample should be float"));
            }
            info_series.push(s);
            Ok(())
        })?;
    }
    let data_matchers: Vec<&Matcher> = data
        .iter()
        .filter(|(n, _)| *n != model::METRIC_NAME)
        .flat_map(|(_, ms)| ms.iter())
        .collect();
    let all_match_empty = data_matchers.iter().all(|m| m.matches(""));

    // The signature of a series for an info metric: the metric's name and
    // the identifying labels.
    let signature = |name: &str, labels: &Labels| -> String {
        let mut sig = String::from(name);
        for l in IDENTIFYING_LABELS {
            if let Some(v) = labels.get(l) {
                sig.push('\u{0}');
                sig.push_str(l);
                sig.push('=');
                sig.push_str(v);
            }
        }
        sig
    };
    let info_names: BTreeSet<String> = info_series
        .iter()
        .map(|s| {
            s.labels
                .get(model::METRIC_NAME)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let info_sigs: Vec<String> = info_series
        .iter()
        .map(|s| {
            signature(
                s.labels.get(model::METRIC_NAME).unwrap_or_default(),
                &s.labels,
            )
        })
        .collect();

    let mut out = crate::value::StepCollector::new(steps.n);
    for step in 0..steps.n {
        ctx.check_deadline()?;
        // The info series present at this step, newest per signature.
        let mut by_sig: HashMap<&str, (usize, i64)> = HashMap::new();
        for (i, s) in info_series.iter().enumerate() {
            let Some(ts) = s.points[step] else { continue };
            let ts = ts as i64;
            match by_sig.get(info_sigs[i].as_str()) {
                Some(&(_, existing)) if existing > ts => {}
                Some(&(j, existing)) if existing == ts => {
                    return Err(QueryError::execution(format!(
                        "found duplicate series for info metric: existing {} @ {existing}, new {} @ {ts}",
                        crate::binary::labels_string(&info_series[j].labels),
                        crate::binary::labels_string(&s.labels),
                    )));
                }
                _ => {
                    by_sig.insert(info_sigs[i].as_str(), (i, ts));
                }
            }
        }
        for (bi, bs) in base.iter().enumerate() {
            // A histogram sample gets the info labels as a float does.
            let hist = bs.hist(step);
            let v = bs.points[step];
            if v.is_none() && hist.is_none() {
                continue;
            }
            let labels = if ignored[bi] {
                bs.labels.clone()
            } else {
                let mut added: BTreeMap<String, String> = BTreeMap::new();
                let mut seen = 0;
                for name in &info_names {
                    let Some(&(ii, _)) = by_sig.get(signature(name, &bs.labels).as_str()) else {
                        continue;
                    };
                    seen += 1;
                    for l in info_series[ii].labels.iter() {
                        if *l.name == *model::METRIC_NAME {
                            continue;
                        }
                        if !data_names.is_empty() && !data_names.iter().any(|n| *n == *l.name) {
                            continue;
                        }
                        if let Some(existing) = added.get(l.name.as_str())
                            && *existing != *l.value
                        {
                            return Err(QueryError::execution(format!(
                                "conflicting label: {}",
                                l.name
                            )));
                        }
                        if bs.labels.get(l.name).is_some() {
                            continue;
                        }
                        added.insert(l.name.to_string(), l.value.to_string());
                    }
                }
                if seen == 0 && !all_match_empty {
                    continue;
                }
                let mut b = LabelsBuilder::from_labels(&bs.labels);
                for (k, v) in &added {
                    b.set(k.as_str(), v.as_str());
                }
                b.build()
            };
            match (v, hist) {
                (Some(v), _) => out.put(labels, bs.drop_name, step, v)?,
                (None, Some(h)) => out.put_hist(labels, bs.drop_name, step, h.clone())?,
                (None, None) => {}
            }
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// Prometheus's `effectiveInfoNameMatchers`: without an `=` or `=~` on
/// the name, info metrics are those named `*_info`; without any name
/// matcher, `target_info`.
fn effective_name_matchers(matchers: &[Matcher]) -> Result<Vec<Matcher>, QueryError> {
    if matchers
        .iter()
        .any(|m| matches!(m.op(), MatchOp::Equal | MatchOp::RegexMatch))
    {
        return Ok(matchers.to_vec());
    }
    if !matchers.is_empty() {
        let mut out = vec![
            Matcher::new(MatchOp::RegexMatch, model::METRIC_NAME, ".+_info")
                .map_err(|e| QueryError::execution(e.to_string()))?,
        ];
        out.extend(matchers.iter().cloned());
        return Ok(out);
    }
    Ok(vec![Matcher::equal(model::METRIC_NAME, TARGET_INFO)])
}

/// The `@` and offset of the first vector selector in the expression,
/// with the offsets of the subqueries around it added when it has no `@`
/// (Prometheus's `infoSelectTimestampAndOffset`).
fn first_selector_timing(e: &Expr) -> (Option<At>, i64) {
    fn walk(e: &Expr, outer: &mut Vec<(Option<At>, i64)>) -> Option<(Option<At>, i64)> {
        match e {
            Expr::VectorSelector(vs) => {
                let mut at = vs.at;
                let mut offset = vs.offset_ms;
                for (sq_at, sq_offset) in outer.iter().rev() {
                    if at.is_some() {
                        break;
                    }
                    offset += sq_offset;
                    at = *sq_at;
                }
                Some((at, offset))
            }
            Expr::MatrixSelector(ms) => walk(&Expr::VectorSelector(ms.selector.clone()), outer),
            Expr::Subquery(sq) => {
                outer.push((sq.at, sq.offset_ms));
                let found = walk(&sq.expr, outer);
                outer.pop();
                found
            }
            Expr::Paren(x) | Expr::Unary { expr: x, .. } => walk(x, outer),
            Expr::Binary(b) => walk(&b.lhs, outer).or_else(|| walk(&b.rhs, outer)),
            Expr::Aggregate(a) => a
                .param
                .as_deref()
                .and_then(|p| walk(p, outer))
                .or_else(|| walk(&a.expr, outer)),
            Expr::Call(c) => c.args.iter().find_map(|a| walk(a, outer)),
            Expr::Number(_) | Expr::String(_) => None,
        }
    }
    walk(e, &mut Vec::new()).unwrap_or((None, 0))
}
