//! One evaluation of one model: the series of `docs/models.md` from its
//! windows and reference, with the arithmetic of `docs/drift.md`.

use crate::metrics;
use crate::stats;
use crate::store::{ModelState, VersionState, expire};
use crate::window::{Column, Kind, NumericSample, Pane, Perf, merge_counts};
use config::models::{Reference, Task};
use model::Labels;
use promql::drift;
use std::collections::HashMap;

/// Equal-frequency bins for numeric PSI, KL and JS.
pub(crate) const BINS: usize = 10;

/// What the current window is compared with.
pub(crate) struct ReferenceView<'a> {
    panes: Vec<&'a Pane>,
}

impl<'a> ReferenceView<'a> {
    pub(crate) fn features(&self, id: usize) -> impl Iterator<Item = &'a Column> + '_ {
        self.panes.iter().filter_map(move |p| p.features.get(id))
    }
    fn prediction(&self) -> impl Iterator<Item = &'a Column> + '_ {
        self.panes.iter().map(|p| &p.prediction)
    }
    fn records(&self) -> u64 {
        self.panes.iter().map(|p| p.records).sum()
    }
    fn perf(&self) -> Perf {
        let mut perf = Perf::default();
        for p in &self.panes {
            perf.merge(&p.perf);
        }
        perf
    }
}

struct Out<'o> {
    out: &'o mut Vec<(Labels, f64)>,
    model: String,
}

impl Out<'_> {
    fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        if value.is_nan() {
            return;
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 2);
        pairs.push(("__name__", name));
        pairs.push(("model", &self.model));
        pairs.extend_from_slice(labels);
        self.out.push((Labels::from_pairs(pairs), value));
    }
}

/// Evaluates `state` at `now_ms`, appending samples to `out`.
pub(crate) fn evaluate(state: &mut ModelState, now_ms: i64, out: &mut Vec<(Labels, f64)>) {
    expire(state, now_ms);
    let state = &*state;
    let mut o = Out {
        out,
        model: state.config.name.clone(),
    };
    let seconds = |ms: i64| ms as f64 / 1000.0;
    if let Some(t) = state.last_prediction_ms {
        o.push(
            "osprey_model_last_prediction_timestamp_seconds",
            &[],
            seconds(t),
        );
    }
    if let Some(t) = state.last_actual_ms {
        o.push(
            "osprey_model_last_actual_timestamp_seconds",
            &[],
            seconds(t),
        );
    }
    o.push(
        "osprey_model_pending_actuals",
        &[],
        state.pending.len() as f64,
    );
    o.push(
        "osprey_model_dropped_predictions_total",
        &[],
        state.dropped_pending as f64,
    );

    let reference = reference_view(state, now_ms);
    if let Some(r) = &reference {
        o.push("osprey_model_reference_records", &[], r.records() as f64);
    }
    // Per version: its window's panes.
    let mut per_version: Vec<(usize, Vec<&Pane>)> = Vec::new();
    for (v, w) in state.windows.iter().enumerate() {
        let panes: Vec<&Pane> = current_panes(state, w).collect();
        if !panes.is_empty() {
            per_version.push((v, panes));
        }
    }
    let mut figures: HashMap<usize, Figures> = HashMap::new();
    for (v, panes) in &per_version {
        let version = state.versions.name(*v as u32).to_string();
        let f = evaluate_version(state, &version, panes, reference.as_ref(), &mut o);
        figures.insert(*v, f);
    }
    compare_versions(state, &per_version, &figures, &mut o);
}

/// A version's panes in the current window (`expire` set its start).
fn current_panes<'s>(state: &ModelState, w: &'s VersionState) -> impl Iterator<Item = &'s Pane> {
    w.panes.range(state.window_start_pane..).map(|(_, p)| p)
}

/// The reference in effect, if there is one yet.
pub(crate) fn reference_view(state: &ModelState, now_ms: i64) -> Option<ReferenceView<'_>> {
    match &state.config.reference {
        Reference::Upload => {
            if let Some(u) = &state.uploaded {
                return Some(ReferenceView { panes: vec![u] });
            }
            let (_, end) = state.reference_range?;
            (now_ms >= end && state.accumulated.records > 0).then(|| ReferenceView {
                panes: vec![&state.accumulated],
            })
        }
        Reference::TimeRange { end_ms, .. } => (now_ms >= *end_ms && state.accumulated.records > 0)
            .then(|| ReferenceView {
                panes: vec![&state.accumulated],
            }),
        Reference::BaselineVersion(v) => {
            let id = state.versions.get(v)?;
            let w: &VersionState = state.windows.get(id as usize)?;
            let panes: Vec<&Pane> = current_panes(state, w).collect();
            (!panes.is_empty()).then_some(ReferenceView { panes })
        }
        Reference::Rolling { .. } => {
            // The current window's panes moved back by the offset, over
            // every version; in effect once the model has records from
            // the reference's start on (its first pane is no later).
            let offset = state.rolling_offset_panes()?;
            let start = state.window_start_pane.checked_sub(offset)?;
            let first = state.first_ms?.div_euclid(state.pane_ms());
            if first > start {
                return None;
            }
            let end = start + state.window_panes();
            let panes: Vec<&Pane> = state
                .windows
                .iter()
                .flat_map(|w| w.panes.range(start..end).map(|(_, p)| p))
                .collect();
            let view = ReferenceView { panes };
            (view.records() > 0).then_some(view)
        }
    }
}

/// What version comparison needs of a version.
#[derive(Default)]
struct Figures {
    records: u64,
    perf: Perf,
}

fn evaluate_version(
    state: &ModelState,
    version: &str,
    panes: &[&Pane],
    reference: Option<&ReferenceView<'_>>,
    o: &mut Out<'_>,
) -> Figures {
    let records: u64 = panes.iter().map(|p| p.records).sum();
    let v = [("version", version)];
    o.push("osprey_model_records", &v, records as f64);
    let drift_cfg = &state.config.drift;
    let mut drifted = 0usize;
    let mut judged = 0usize;
    let mut sketch_error: f64 = 0.0;
    if records > 0 {
        for (id, name) in state.features.names.iter().enumerate() {
            let Some(kind) = state.kinds.get(id).copied().flatten() else {
                continue;
            };
            let current: Vec<&Column> = panes.iter().filter_map(|p| p.features.get(id)).collect();
            let present: u64 = current.iter().map(|c| c.present).sum();
            let labels = [("version", version), ("feature", name.as_ref())];
            o.push(
                "osprey_model_feature_missing_ratio",
                &labels,
                (records - present.min(records)) as f64 / records as f64,
            );
            let Some(r) = reference else { continue };
            let result = match kind {
                Kind::Numeric => {
                    numeric_drift(current.iter().copied(), r.features(id), |method, value| {
                        o.push(
                            "osprey_model_feature_drift",
                            &[
                                ("version", version),
                                ("feature", name.as_ref()),
                                ("method", method),
                            ],
                            value,
                        )
                    })
                }
                Kind::Categorical => {
                    categorical_drift(current.iter().copied(), r.features(id), |method, value| {
                        o.push(
                            "osprey_model_feature_drift",
                            &[
                                ("version", version),
                                ("feature", name.as_ref()),
                                ("method", method),
                            ],
                            value,
                        )
                    })
                }
            };
            let Some(result) = result else { continue };
            if let Some(ratio) = result.out_of_range {
                o.push("osprey_model_feature_out_of_range_ratio", &labels, ratio);
            }
            if let Some(ratio) = result.new_category {
                o.push("osprey_model_feature_new_category_ratio", &labels, ratio);
            }
            sketch_error = sketch_error.max(result.sketch_error);
            let is_drift = drifts(result.default_method, result.default_value, drift_cfg);
            judged += 1;
            if is_drift {
                drifted += 1;
            }
            o.push(
                "osprey_model_feature_drifted",
                &[
                    ("version", version),
                    ("feature", name.as_ref()),
                    ("method", result.default_method),
                ],
                if is_drift { 1.0 } else { 0.0 },
            );
        }
        if judged > 0 {
            o.push("osprey_model_drifted_features", &v, drifted as f64);
            o.push(
                "osprey_model_drift_share",
                &v,
                drifted as f64 / judged as f64,
            );
        }
        // The prediction as one more feature.
        if let Some(r) = reference {
            let current = panes.iter().map(|p| &p.prediction);
            let push = |method: &str, value: f64| {
                o.push(
                    "osprey_model_prediction_drift",
                    &[("version", version), ("method", method)],
                    value,
                )
            };
            let result = match state.task {
                Some(Task::Regression) => numeric_drift(current, r.prediction(), push),
                _ => categorical_drift(current, r.prediction(), push),
            };
            if let Some(result) = result {
                sketch_error = sketch_error.max(result.sketch_error);
            }
        }
        if sketch_error > 0.0 {
            o.push("osprey_model_sketch_ks_error_bound", &v, sketch_error);
        }
    }
    // Performance over the actuals joined in the window.
    let mut perf = Perf::default();
    for p in panes {
        perf.merge(&p.perf);
    }
    if records > 0 {
        o.push(
            "osprey_model_actuals_ratio",
            &v,
            (perf.n as f64 / records as f64).min(1.0),
        );
    }
    let figures = performance(state, &perf, &v, o);
    if let Some(r) = reference {
        let reference_perf = r.perf();
        if reference_perf.n > 0 && perf.n > 0 {
            let reference_figures = performance_values(state, &reference_perf);
            for (metric, now, p_value) in concept_drift(state, &perf, &reference_perf, &figures) {
                let before = reference_figures.get(metric).copied().unwrap_or(f64::NAN);
                o.push(
                    "osprey_model_reference_performance",
                    &[("version", version), ("metric", metric)],
                    before,
                );
                let change = now - before;
                o.push(
                    "osprey_model_performance_change",
                    &[("version", version), ("metric", metric)],
                    change,
                );
                o.push(
                    "osprey_model_performance_change_pvalue",
                    &[("version", version), ("metric", metric)],
                    p_value,
                );
            }
        }
    }
    importance(state, panes, reference, version, o);
    Figures { records, perf }
}

/// Whether a method's value means drift.
fn drifts(method: &str, value: f64, cfg: &config::models::DriftThresholds) -> bool {
    match method {
        "ks_pvalue" | "chi2_pvalue" | "z_pvalue" => value < cfg.p_value,
        "psi" => value >= cfg.psi,
        _ => value >= cfg.threshold,
    }
}

struct DriftResult {
    default_method: &'static str,
    default_value: f64,
    out_of_range: Option<f64>,
    new_category: Option<f64>,
    sketch_error: f64,
}

fn numeric_drift<'a>(
    current: impl Iterator<Item = &'a Column>,
    reference: impl Iterator<Item = &'a Column>,
    mut push: impl FnMut(&str, f64),
) -> Option<DriftResult> {
    let cur = NumericSample::from_columns(current);
    let refs = NumericSample::from_columns(reference);
    if cur.n == 0.0 || refs.n == 0.0 {
        return None;
    }
    let cuts = refs.cuts(BINS);
    let (p, q) = (cur.shares(&cuts), refs.shares(&cuts));
    let psi = drift::psi(&p, &q);
    let kl = drift::kl(&p, &q);
    let js = drift::js(&p, &q);
    let (ks, wasserstein) = match (&cur.exact, &refs.exact) {
        (Some(c), Some(r)) => (stats::ks_statistic(c, r), stats::wasserstein(c, r)),
        _ => (
            crate::sketch::ks(&cur.weighted, &refs.weighted),
            crate::sketch::wasserstein(&cur.weighted, &refs.weighted),
        ),
    };
    let ks_pvalue = stats::ks_pvalue(ks, cur.n.round() as usize, refs.n.round() as usize);
    let normed = wasserstein / refs.std().max(0.001);
    for (m, v) in [
        ("psi", psi),
        ("kl", kl),
        ("js", js),
        ("ks", ks),
        ("ks_pvalue", ks_pvalue),
        ("wasserstein", normed),
    ] {
        push(m, v);
    }
    // Evidently's choice needs the distinct values of both together.
    let mut distinct = refs.distinct();
    distinct.extend(cur.distinct());
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let method = stats::default_method(true, refs.n.round() as usize, distinct.len());
    let value = match method {
        "ks_pvalue" => ks_pvalue,
        "wasserstein" => normed,
        "js" => js,
        // Few distinct numbers: the category tests over the values.
        _ => {
            let (cc, rc) = (cur.value_counts(), refs.value_counts());
            let counts: Vec<(u64, u64)> = distinct
                .iter()
                .map(|d| {
                    let find = |vc: &[(f64, f64)]| {
                        vc.iter()
                            .find(|(x, _)| x == d)
                            .map_or(0, |(_, c)| *c as u64)
                    };
                    (find(&cc), find(&rc))
                })
                .collect();
            let v = if method == "chi2_pvalue" {
                stats::chi2_pvalue(&counts)
            } else {
                let first = counts.first().copied().unwrap_or((0, 0));
                stats::z_pvalue(first.1, refs.n as u64, first.0, cur.n as u64)
            };
            push(method, v);
            v
        }
    };
    let out_of_range = refs.min_max().map(|(lo, hi)| {
        // A fold from +0.0: an empty float sum is -0.0, written as "-0".
        let outside = cur
            .weighted
            .points
            .iter()
            .filter(|(x, _)| *x < lo || *x > hi)
            .fold(0.0, |sum, (_, w)| sum + w);
        outside / cur.n
    });
    Some(DriftResult {
        default_method: method,
        default_value: value,
        out_of_range,
        new_category: None,
        sketch_error: cur.share_error() + refs.share_error(),
    })
}

fn categorical_drift<'a>(
    current: impl Iterator<Item = &'a Column>,
    reference: impl Iterator<Item = &'a Column>,
    mut push: impl FnMut(&str, f64),
) -> Option<DriftResult> {
    let cur = merge_counts(current);
    let refs = merge_counts(reference);
    let (nc, nr): (u64, u64) = (cur.values().sum(), refs.values().sum());
    if nc == 0 || nr == 0 {
        return None;
    }
    let mut keys: Vec<u32> = cur.keys().chain(refs.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let counts: Vec<(u64, u64)> = keys
        .iter()
        .map(|k| {
            (
                cur.get(k).copied().unwrap_or(0),
                refs.get(k).copied().unwrap_or(0),
            )
        })
        .collect();
    let p: Vec<f64> = counts.iter().map(|c| c.0 as f64 / nc as f64).collect();
    let q: Vec<f64> = counts.iter().map(|c| c.1 as f64 / nr as f64).collect();
    let js = drift::js(&p, &q);
    let chi2 = stats::chi2_pvalue(&counts);
    push("psi", drift::psi(&p, &q));
    push("js", js);
    push("chi2_pvalue", chi2);
    let method = stats::default_method(false, nr as usize, keys.len());
    let value = match method {
        "js" => js,
        "chi2_pvalue" => chi2,
        _ => {
            // Two categories: Evidently's z-test on the first (in order of
            // the category names) against the rest.
            let v = stats::z_pvalue(counts[0].1, nr, counts[0].0, nc);
            push("z_pvalue", v);
            v
        }
    };
    let new: u64 = counts.iter().filter(|c| c.1 == 0).map(|c| c.0).sum();
    Some(DriftResult {
        default_method: method,
        default_value: value,
        out_of_range: None,
        new_category: Some(new as f64 / nc as f64),
        sketch_error: 0.0,
    })
}

/// The metric values of joined actuals, by metric name.
fn performance_values(state: &ModelState, perf: &Perf) -> HashMap<&'static str, f64> {
    let mut out = HashMap::new();
    if perf.n == 0 {
        return out;
    }
    match state.task {
        Some(Task::Regression) => {
            out.insert("rmse", perf.squared.mean.sqrt());
            out.insert("mae", perf.absolute.mean);
            out.insert("mape", perf.ape_sum / perf.n as f64);
        }
        _ => {
            if let Some(m) = metrics::from_confusion(&perf.confusion) {
                out.insert("accuracy", m.accuracy);
                out.insert("precision", m.precision);
                out.insert("recall", m.recall);
                out.insert("f1", m.f1);
            }
            if let Some(auc) = roc_auc(state, perf) {
                out.insert("roc_auc", auc);
            }
        }
    }
    out
}

/// ROC AUC of the scored records, classes in name order.
fn roc_auc(state: &ModelState, perf: &Perf) -> Option<f64> {
    if perf.scored.is_empty() {
        return None;
    }
    let mut classes: Vec<u32> = perf
        .scored
        .iter()
        .flat_map(|(s, a)| s.iter().map(|(c, _)| *c).chain(std::iter::once(*a)))
        .collect();
    classes.sort_by(|a, b| state.classes.name(*a).cmp(state.classes.name(*b)));
    classes.dedup();
    if classes.len() < 2 {
        return None;
    }
    let index: HashMap<u32, usize> = classes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let mut scores = vec![vec![0.0; perf.scored.len()]; classes.len()];
    let mut actual = Vec::with_capacity(perf.scored.len());
    for (i, (s, a)) in perf.scored.iter().enumerate() {
        for (c, v) in s.iter() {
            if let Some(k) = index.get(c) {
                scores[*k][i] = *v;
            }
        }
        actual.push(index.get(a).copied().unwrap_or(0));
    }
    metrics::roc_auc_ovr(&scores, &actual)
}

fn performance(
    state: &ModelState,
    perf: &Perf,
    v: &[(&str, &str)],
    o: &mut Out<'_>,
) -> HashMap<&'static str, f64> {
    let values = performance_values(state, perf);
    let mut names: Vec<&&str> = values.keys().collect();
    names.sort();
    for name in names {
        o.push(&format!("osprey_model_{name}"), v, values[*name]);
    }
    if perf.n > 0 {
        o.push(
            "osprey_model_actuals_delay_seconds",
            v,
            perf.delay_sum / perf.n as f64,
        );
        o.push("osprey_model_actuals_joined", v, perf.n as f64);
    }
    values
}

/// (metric, value now, p-value of the change) for the metrics with a
/// test: accuracy (two-proportion z), RMSE and MAE (Welch on squared and
/// absolute errors).
fn concept_drift(
    state: &ModelState,
    now: &Perf,
    reference: &Perf,
    figures: &HashMap<&'static str, f64>,
) -> Vec<(&'static str, f64, f64)> {
    let mut out = Vec::new();
    match state.task {
        Some(Task::Regression) => {
            if let Some(v) = figures.get("rmse") {
                out.push(("rmse", *v, welch(&now.squared, &reference.squared)));
            }
            if let Some(v) = figures.get("mae") {
                out.push(("mae", *v, welch(&now.absolute, &reference.absolute)));
            }
        }
        _ => {
            if let Some(v) = figures.get("accuracy") {
                let z = stats::two_proportion_z(
                    now.correct as f64,
                    now.n as f64,
                    reference.correct as f64,
                    reference.n as f64,
                );
                out.push(("accuracy", *v, stats::normal_two_sided(z)));
            }
        }
    }
    out
}

/// Welch's t-test p-value from moments.
fn welch(a: &crate::window::Moments, b: &crate::window::Moments) -> f64 {
    stats::welch_from_moments((a.mean, a.var(), a.n), (b.mean, b.var(), b.n)).1
}

fn importance(
    state: &ModelState,
    panes: &[&Pane],
    reference: Option<&ReferenceView<'_>>,
    version: &str,
    o: &mut Out<'_>,
) {
    let mean_abs = |columns: &mut dyn Iterator<Item = &Column>| -> Option<f64> {
        let (mut sum, mut n) = (0.0, 0u64);
        for c in columns {
            sum += c.shap_sum;
            n += c.shap_n;
        }
        (n > 0).then(|| sum / n as f64)
    };
    let mut now: Vec<(usize, f64)> = Vec::new();
    let mut before: Vec<(usize, f64)> = Vec::new();
    for id in 0..state.features.names.len() {
        let mut it = panes.iter().filter_map(|p| p.features.get(id));
        if let Some(m) = mean_abs(&mut it) {
            now.push((id, m));
        }
        if let Some(r) = reference {
            let mut it = r.features(id);
            if let Some(m) = mean_abs(&mut it) {
                before.push((id, m));
            }
        }
    }
    let rank = |list: &[(usize, f64)]| -> HashMap<usize, usize> {
        let mut sorted = list.to_vec();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        sorted
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i + 1))
            .collect()
    };
    let (rank_now, rank_before) = (rank(&now), rank(&before));
    for (id, value) in &now {
        let name = state.features.name(*id as u32);
        let labels = [("version", version), ("feature", name)];
        o.push("osprey_model_feature_importance", &labels, *value);
        if let (Some(a), Some(b)) = (rank_now.get(id), rank_before.get(id)) {
            o.push(
                "osprey_model_feature_importance_rank_change",
                &labels,
                *b as f64 - *a as f64,
            );
        }
    }
}

/// Every version against the baseline.
fn compare_versions(
    state: &ModelState,
    per_version: &[(usize, Vec<&Pane>)],
    figures: &HashMap<usize, Figures>,
    o: &mut Out<'_>,
) {
    let baseline = match &state.config.baseline_version {
        Some(name) => state.versions.get(name).map(|v| v as usize),
        None => per_version
            .iter()
            .filter_map(|(v, _)| figures.get(v).map(|f| (*v, f.records)))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(v, _)| v),
    };
    let Some(baseline) = baseline else { return };
    let Some(base) = figures.get(&baseline) else {
        return;
    };
    let base_name = state.versions.name(baseline as u32).to_string();
    let base_values = performance_values(state, &base.perf);
    for (v, _) in per_version {
        if *v == baseline {
            continue;
        }
        let Some(f) = figures.get(v) else { continue };
        if f.perf.n == 0 || base.perf.n == 0 {
            continue;
        }
        let name = state.versions.name(*v as u32).to_string();
        let values = performance_values(state, &f.perf);
        let mut tests: Vec<(&str, f64)> = Vec::new();
        match state.task {
            Some(Task::Regression) => {
                tests.push(("rmse", welch(&f.perf.squared, &base.perf.squared)));
                tests.push(("mae", welch(&f.perf.absolute, &base.perf.absolute)));
            }
            _ => {
                let z = stats::two_proportion_z(
                    f.perf.correct as f64,
                    f.perf.n as f64,
                    base.perf.correct as f64,
                    base.perf.n as f64,
                );
                tests.push(("accuracy", stats::normal_two_sided(z)));
            }
        }
        for (metric, p_value) in tests {
            let (Some(a), Some(b)) = (values.get(metric), base_values.get(metric)) else {
                continue;
            };
            let labels = [
                ("version", name.as_str()),
                ("baseline", base_name.as_str()),
                ("metric", metric),
            ];
            o.push("osprey_model_version_comparison", &labels, a - b);
            o.push("osprey_model_version_comparison_pvalue", &labels, p_value);
        }
    }
}

/// One figure of two versions side by side (`Models::compare`).
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct PairFigure {
    pub metric: &'static str,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// `b − a`, when both have the figure.
    pub difference: Option<f64>,
    /// The test of the difference, for the metrics osprey tests (the
    /// tests of `osprey_model_version_comparison_pvalue`).
    pub p_value: Option<f64>,
    pub test: Option<&'static str>,
}

/// Two versions' windows compared: every performance figure of each,
/// its difference and, for accuracy (two-proportion z-test), RMSE and MAE
/// (Welch's t-test on squared and absolute errors), the p-value: the
/// tests `compare_versions` runs against the baseline, for any pair.
/// `None` when a version has no records in the window.
pub(crate) fn compare_pair(
    state: &ModelState,
    a: usize,
    b: usize,
) -> Option<(u64, u64, Vec<PairFigure>)> {
    let gather = |v: usize| -> Option<(u64, Perf)> {
        let w = state.windows.get(v)?;
        let mut perf = Perf::default();
        let mut records = 0;
        for p in current_panes(state, w) {
            perf.merge(&p.perf);
            records += p.records;
        }
        (records > 0).then_some((records, perf))
    };
    let (ra, pa) = gather(a)?;
    let (rb, pb) = gather(b)?;
    let (va, vb) = (
        performance_values(state, &pa),
        performance_values(state, &pb),
    );
    let both = pa.n > 0 && pb.n > 0;
    let names: &[&'static str] = match state.task {
        Some(Task::Regression) => &["rmse", "mae", "mape"],
        _ => &["accuracy", "precision", "recall", "f1", "roc_auc"],
    };
    let figures = names
        .iter()
        .map(|&metric| {
            let (x, y) = (va.get(metric).copied(), vb.get(metric).copied());
            let tested: Option<(f64, &'static str)> = match metric {
                "accuracy" if both => Some((
                    stats::normal_two_sided(stats::two_proportion_z(
                        pb.correct as f64,
                        pb.n as f64,
                        pa.correct as f64,
                        pa.n as f64,
                    )),
                    "two-proportion z-test",
                )),
                "rmse" if both => Some((
                    welch(&pb.squared, &pa.squared),
                    "Welch's t-test on squared errors",
                )),
                "mae" if both => Some((
                    welch(&pb.absolute, &pa.absolute),
                    "Welch's t-test on absolute errors",
                )),
                _ => None,
            };
            PairFigure {
                metric,
                a: x,
                b: y,
                difference: x.zip(y).map(|(x, y)| y - x),
                p_value: tested.map(|t| t.0).filter(|p| !p.is_nan()),
                test: tested.map(|t| t.1),
            }
        })
        .collect();
    Some((ra, rb, figures))
}
