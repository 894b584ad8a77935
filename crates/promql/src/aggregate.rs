//! Aggregation operators and the classic-histogram functions.
//!
//! Plain aggregations (`sum`, `avg`, `count`, …) stream: each input series
//! is folded into its group's per-step accumulators and dropped, so an
//! aggregation never holds its whole input. The selecting aggregations
//! (`topk`, `limitk`, `quantile`, …) need every series of a group at once.

use crate::QueryError;
use crate::ast::{Aggregate, AggregateOp, Call, Grouping};
use crate::eval::{Ctx, Steps};
use crate::functions::{go_float, kahan_inc, quantile};
use crate::hist::Hist;
use crate::value::{StepSeries, Val};
use model::histogram::CounterResetHint;
use model::{Label, LabelRef, Labels};
/// Maps keyed by label sets and hashes from storage: the unkeyed fast
/// hasher (SipHash was several percent of an aggregation's CPU).
type HashMap<K, V> = std::collections::HashMap<K, V, model::labels::FastBuildHasher>;

/// Whether a label stays in the group label set of `grouping`.
fn in_group(l: &LabelRef<'_>, grouping: &Option<Grouping>) -> bool {
    match grouping {
        None => false,
        Some(Grouping::By(names)) => names.iter().any(|n| *n == *l.name),
        Some(Grouping::Without(names)) => {
            l.name != model::METRIC_NAME && !names.iter().any(|n| *n == *l.name)
        }
    }
}

/// Groups series by a subset of their labels without building that subset
/// for every series: the kept pairs are hashed in place and compared with
/// the stored key on a hash hit; a key's [`Labels`] is built once, when its
/// group first appears. Building it per series was the largest cost of an
/// aggregation over many series.
#[derive(Default)]
pub(crate) struct GroupIndex {
    by_hash: HashMap<u64, Vec<usize>>,
    keys: Vec<Labels>,
}

impl GroupIndex {
    /// The group of `labels` reduced to the pairs `keep` accepts, and
    /// whether the group is new. Groups are numbered from 0 in order of
    /// first appearance.
    pub(crate) fn group(
        &mut self,
        labels: &Labels,
        keep: impl Fn(&LabelRef<'_>) -> bool,
    ) -> (usize, bool) {
        use std::hash::{Hash, Hasher};
        let mut hasher = model::labels::FastHasher::default();
        for l in labels.iter().filter(|l| keep(l)) {
            l.name.hash(&mut hasher);
            l.value.hash(&mut hasher);
        }
        let list = self.by_hash.entry(hasher.finish()).or_default();
        for &gi in list.iter() {
            if self.keys[gi].iter().eq(labels.iter().filter(|l| keep(l))) {
                return (gi, false);
            }
        }
        let gi = self.keys.len();
        list.push(gi);
        self.keys.push(Labels::from_sorted_unchecked(
            labels
                .iter()
                .filter(|l| keep(l))
                .map(LabelRef::to_label)
                .collect(),
        ));
        (gi, true)
    }

    /// The label set of group `gi`.
    pub(crate) fn key(&self, gi: usize) -> &Labels {
        &self.keys[gi]
    }
}

fn keeps_name(grouping: &Option<Grouping>) -> bool {
    matches!(grouping, Some(Grouping::By(names)) if names.iter().any(|n| n == model::METRIC_NAME))
}

#[derive(Clone, Copy, Default)]
struct Acc {
    count: f64,
    value: f64,
    c: f64,
    mean: f64,
    incremental: bool,
}

struct GroupAcc {
    labels: Labels,
    drop_name: bool,
    accs: Vec<Acc>,
    /// Histogram accumulators, one per step; empty until a histogram
    /// arrives.
    haccs: Vec<HAcc>,
}

/// A group's histograms at one step (`sum` and `avg`).
#[derive(Default)]
struct HAcc {
    value: Option<crate::hist::HistAcc>,
    result: Option<Hist>,
    count: f64,
    incompatible: bool,
    reset_seen: bool,
    not_reset_seen: bool,
}

/// The name Prometheus's messages use for an aggregation.
fn op_name(op: AggregateOp) -> &'static str {
    use AggregateOp::*;
    match op {
        Sum => "sum",
        Avg => "avg",
        Count => "count",
        Min => "min",
        Max => "max",
        Group => "group",
        Stddev => "stddev",
        Stdvar => "stdvar",
        Topk => "topk",
        Bottomk => "bottomk",
        Quantile => "quantile",
        CountValues => "count_values",
        Limitk => "limitk",
        LimitRatio => "limit_ratio",
    }
}

/// The argument index of an aggregation's expression.
fn expr_arg(a: &Aggregate) -> usize {
    usize::from(a.param.is_some())
}

/// Prometheus's info for a histogram an aggregation ignores.
fn ignored_histogram(ctx: &Ctx<'_>, a: &Aggregate) {
    let name = op_name(a.op);
    ctx.info_at_arg(
        format!("ignored histogram in {name} aggregation"),
        name,
        expr_arg(a),
    );
}

pub(crate) fn eval_aggregate(
    ctx: &Ctx<'_>,
    a: &Aggregate,
    steps: &Steps,
) -> Result<Val, QueryError> {
    use AggregateOp::*;
    match a.op {
        Topk | Bottomk | Limitk | LimitRatio | Quantile | CountValues => {
            return selecting(ctx, a, steps);
        }
        _ => {}
    }
    let name_kept = keeps_name(&a.grouping);
    let mut groups: Vec<GroupAcc> = Vec::new();
    let mut index = GroupIndex::default();
    let op = a.op;
    ctx.eval_vector_each(&a.expr, steps, &mut |s| {
        ctx.check_deadline()?;
        let (gi, new) = index.group(&s.labels, |l| in_group(l, &a.grouping));
        if new {
            ctx.take_samples(steps.n)?;
            groups.push(GroupAcc {
                labels: index.key(gi).clone(),
                drop_name: false,
                accs: vec![Acc::default(); steps.n],
                haccs: Vec::new(),
            });
        }
        let g = &mut groups[gi];
        if name_kept && s.drop_name {
            g.drop_name = true;
        }
        if s.has_hists() {
            for (step, h) in s.hists.iter().enumerate() {
                let Some(h) = h else { continue };
                match op {
                    Sum | Avg => {
                        if g.haccs.is_empty() {
                            g.haccs = (0..steps.n).map(|_| HAcc::default()).collect();
                        }
                        let ha = &mut g.haccs[step];
                        ha.count += 1.0;
                        match h.counter_reset_hint {
                            CounterResetHint::CounterReset => ha.reset_seen = true,
                            CounterResetHint::NotCounterReset => ha.not_reset_seen = true,
                            _ => {}
                        }
                        if ha.incompatible {
                            continue;
                        }
                        let acc = ha
                            .value
                            .get_or_insert_with(|| crate::hist::HistAcc::new(op == Avg));
                        {
                            match acc.add(h) {
                                Ok(notes) => {
                                    if notes.reconciled {
                                        ctx.info_at_arg(
                                            "mismatched custom buckets were reconciled during aggregation".to_string(),
                                            op_name(op),
                                            expr_arg(a),
                                        );
                                    }
                                }
                                Err(_) => {
                                    ha.incompatible = true;
                                    ctx.warn_at_arg(
                                        for_metric(
                                            "vector contains a mix of histograms with exponential and custom buckets schemas",
                                            s.labels.metric_name().unwrap_or(""),
                                        ),
                                        op_name(op),
                                        expr_arg(a),
                                    );
                                }
                            }
                        }
                    }
                    Count | Group => g.accs[step].count += 1.0,
                    _ => ignored_histogram(ctx, a),
                }
            }
        }
        for (acc, p) in g.accs.iter_mut().zip(&s.points) {
            let Some(v) = *p else { continue };
            acc.count += 1.0;
            match op {
                Sum => (acc.value, acc.c) = kahan_inc(v, acc.value, acc.c),
                Avg => avg_step(acc, v),
                Min if (acc.count == 1.0 || acc.value > v || acc.value.is_nan()) => {
                    acc.value = v;
                }
                Max if (acc.count == 1.0 || acc.value < v || acc.value.is_nan()) => {
                    acc.value = v;
                }
                Stddev | Stdvar => {
                    let delta = v - (acc.mean + acc.c);
                    (acc.mean, acc.c) = kahan_inc(delta / acc.count, acc.mean, acc.c);
                    acc.value += delta * (v - (acc.mean + acc.c));
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    for g in &mut groups {
        if g.haccs.is_empty() {
            continue;
        }
        let mut hists: Vec<Option<Hist>> = vec![None; steps.n];
        for (step, ha) in g.haccs.iter_mut().enumerate() {
            if ha.count == 0.0 {
                continue;
            }
            let floats = g.accs[step].count > 0.0;
            // The float accumulator holds no result at this step.
            g.accs[step].count = 0.0;
            if floats {
                ctx.warn_at_arg(
                    "encountered a mix of histograms and floats for aggregation".to_string(),
                    op_name(op),
                    expr_arg(a),
                );
                continue;
            }
            if ha.reset_seen && ha.not_reset_seen {
                ctx.warn_at_arg(
                    "conflicting counter resets during histogram aggregation".to_string(),
                    op_name(op),
                    expr_arg(a),
                );
            }
            if ha.incompatible {
                continue;
            }
            if let Some(acc) = ha.value.take() {
                hists[step] = acc.finish();
            }
        }
        g.haccs = hists
            .into_iter()
            .map(|h| HAcc {
                result: h,
                ..HAcc::default()
            })
            .collect();
    }
    let out = groups
        .into_iter()
        .map(|g| StepSeries {
            hists: if g.haccs.iter().any(|h| h.result.is_some()) {
                g.haccs.into_iter().map(|h| h.result).collect()
            } else {
                Vec::new()
            },
            labels: g.labels,
            drop_name: g.drop_name,
            points: g
                .accs
                .iter()
                .map(|acc| {
                    if acc.count == 0.0 {
                        return None;
                    }
                    Some(match op {
                        Sum => acc.value + acc.c,
                        Avg => {
                            if acc.incremental {
                                acc.mean + acc.c
                            } else {
                                (acc.value + acc.c) / acc.count
                            }
                        }
                        Count => acc.count,
                        Group => 1.0,
                        Min | Max => acc.value,
                        Stdvar => acc.value / acc.count,
                        Stddev => (acc.value / acc.count).sqrt(),
                        _ => f64::NAN,
                    })
                })
                .collect(),
        })
        .collect();
    Ok(Val::Vector(out))
}

/// One step of Prometheus's `avg`: Kahan sum, incremental mean after an
/// overflow.
fn avg_step(acc: &mut Acc, v: f64) {
    if !acc.incremental {
        let (new_sum, new_c) = kahan_inc(v, acc.value, acc.c);
        if acc.count == 1.0 || !new_sum.is_infinite() {
            acc.value = new_sum;
            acc.c = new_c;
            return;
        }
        acc.incremental = true;
        acc.mean = acc.value / (acc.count - 1.0);
        acc.c /= acc.count - 1.0;
    }
    if acc.mean.is_infinite() {
        if v.is_infinite() && (acc.mean > 0.0) == (v > 0.0) {
            return;
        }
        if !v.is_infinite() && !v.is_nan() {
            return;
        }
    }
    let corrected = acc.mean + acc.c;
    (acc.mean, acc.c) = kahan_inc(v / acc.count - corrected / acc.count, acc.mean, acc.c);
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
fn format_value(v: f64) -> String {
    let mut out = String::new();
    model::float::write_fixed(&mut out, v);
    out
}

fn selecting(ctx: &Ctx<'_>, a: &Aggregate, steps: &Steps) -> Result<Val, QueryError> {
    use AggregateOp::*;
    let param = match (a.op, &a.param) {
        (CountValues, _) => Vec::new(),
        (_, Some(p)) => ctx.eval_scalar(p, steps)?,
        (_, None) => return Err(QueryError::bad_data("aggregation needs a parameter")),
    };
    let count_label = if a.op == CountValues {
        match a.param.as_deref().map(crate::eval::unwrap_parens) {
            Some(crate::ast::Expr::String(s)) => s.clone(),
            _ => {
                return Err(QueryError::bad_data(
                    "count_values needs a string parameter",
                ));
            }
        }
    } else {
        String::new()
    };
    if a.op == CountValues
        && (count_label.is_empty() || crate::parser::has_invalid_bytes(&count_label))
    {
        return Err(QueryError::bad_data(format!(
            "invalid label name {}",
            crate::parser::go_quote_bytes(&count_label)
        )));
    }
    match a.op {
        Topk | Bottomk | Limitk => {
            for &k in &param {
                if k.is_nan() {
                    return Err(QueryError::bad_data("Parameter value is NaN"));
                }
                if k.abs() >= 9.223_372_036_854_776e18 {
                    return Err(QueryError::bad_data(format!(
                        "Scalar value {} overflows int64",
                        go_float(k)
                    )));
                }
            }
        }
        LimitRatio => {
            for &r in &param {
                if r.is_nan() {
                    return Err(QueryError::bad_data("Ratio value is NaN"));
                }
            }
            if let Some(r) = param.iter().copied().find(|r| !(-1.0..=1.0).contains(r)) {
                // Prometheus places this warning at the ratio argument.
                ctx.warn_at_arg(
                    format!(
                        "ratio value should be between -1 and 1, got {}, capping to {}",
                        go_float(r),
                        go_float(r.clamp(-1.0, 1.0))
                    ),
                    "limit_ratio",
                    0,
                );
            }
        }
        Quantile => {
            if let Some(q) = param.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                ctx.warn_at_arg(
                    format!(
                        "quantile value should be between 0 and 1, got {}",
                        go_float(*q)
                    ),
                    "quantile",
                    0,
                );
            }
        }
        _ => {}
    }
    let mut input: Vec<StepSeries> = Vec::new();
    ctx.eval_vector_each(&a.expr, steps, &mut |s| {
        input.push(s);
        Ok(())
    })?;
    // Groups in order of first appearance.
    let mut group_of: Vec<usize> = Vec::with_capacity(input.len());
    let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
    let mut index = GroupIndex::default();
    for (i, s) in input.iter().enumerate() {
        let (gi, new) = index.group(&s.labels, |l| in_group(l, &a.grouping));
        if new {
            groups.push((index.key(gi).clone(), Vec::new()));
        }
        groups[gi].1.push(i);
        group_of.push(gi);
    }
    let name_kept = keeps_name(&a.grouping);
    match a.op {
        Topk | Bottomk | Limitk | LimitRatio => {
            // Which steps each input series survives at.
            let mut keep = vec![vec![false; steps.n]; input.len()];
            // For instant queries the output order is the selection order.
            let mut order: Vec<usize> = Vec::new();
            for step in 0..steps.n {
                ctx.check_deadline()?;
                for (_, members) in &groups {
                    let limit = matches!(a.op, Limitk | LimitRatio);
                    let mut present: Vec<usize> = members
                        .iter()
                        .copied()
                        .filter(|&i| {
                            if limit {
                                return input[i].present(step);
                            }
                            if input[i].hist(step).is_some() {
                                ignored_histogram(ctx, a);
                            }
                            input[i].points[step].is_some()
                        })
                        .collect();
                    let selected: Vec<usize> = match a.op {
                        LimitRatio => {
                            let ratio = param[step].clamp(-1.0, 1.0);
                            present
                                .into_iter()
                                .filter(|&i| ratio_keeps(&input[i].labels, ratio))
                                .collect()
                        }
                        _ => {
                            let k = param[step];
                            if k < 1.0 {
                                continue;
                            }
                            let k = (k as i64).min(present.len() as i64) as usize;
                            if a.op != Limitk {
                                let value = |i: usize| input[i].points[step].unwrap_or(f64::NAN);
                                let top = a.op == Topk;
                                present.sort_by(|&x, &y| {
                                    let (vx, vy) = (value(x), value(y));
                                    // NaN always sorts last.
                                    match (vx.is_nan(), vy.is_nan()) {
                                        (true, true) => std::cmp::Ordering::Equal,
                                        (true, false) => std::cmp::Ordering::Greater,
                                        (false, true) => std::cmp::Ordering::Less,
                                        _ => {
                                            let o = vx
                                                .partial_cmp(&vy)
                                                .unwrap_or(std::cmp::Ordering::Equal);
                                            if top { o.reverse() } else { o }
                                        }
                                    }
                                });
                            }
                            present.truncate(k);
                            present
                        }
                    };
                    for i in selected {
                        keep[i][step] = true;
                        if steps.n == 1 {
                            order.push(i);
                        }
                    }
                }
            }
            let mut input: Vec<Option<StepSeries>> = input.into_iter().map(Some).collect();
            let mut out = Vec::new();
            let indices: Vec<usize> = if steps.n == 1 {
                order
            } else {
                (0..input.len()).collect()
            };
            for i in indices {
                let Some(mut s) = input[i].take() else {
                    continue;
                };
                for (p, k) in s.points.iter_mut().zip(&keep[i]) {
                    if !k {
                        *p = None;
                    }
                }
                if matches!(a.op, Topk | Bottomk) {
                    s.hists = Vec::new();
                }
                for (h, k) in s.hists.iter_mut().zip(&keep[i]) {
                    if !k {
                        *h = None;
                    }
                }
                if !s.is_empty() {
                    out.push(s);
                }
            }
            Ok(Val::Vector(out))
        }
        Quantile => {
            let mut out = Vec::new();
            for (labels, members) in groups {
                let drop_name = name_kept && members.iter().any(|&i| input[i].drop_name);
                let mut points = Vec::with_capacity(steps.n);
                let mut values = Vec::new();
                for (step, &q) in param.iter().enumerate() {
                    values.clear();
                    if members.iter().any(|&i| input[i].hist(step).is_some()) {
                        ignored_histogram(ctx, a);
                    }
                    values.extend(members.iter().filter_map(|&i| input[i].points[step]));
                    points.push(if values.is_empty() {
                        None
                    } else {
                        Some(quantile(q, &mut values))
                    });
                }
                out.push(StepSeries {
                    hists: Vec::new(),
                    labels,
                    drop_name,
                    points,
                });
            }
            Ok(Val::Vector(out))
        }
        _ => {
            // count_values: one output series per group and value.
            let mut out: Vec<StepSeries> = Vec::new();
            let mut index: HashMap<Labels, usize> = HashMap::default();
            for (gi, (labels, members)) in groups.iter().enumerate() {
                let _ = gi;
                for step in 0..steps.n {
                    for &i in members {
                        let value = match (input[i].points[step], input[i].hist(step)) {
                            (Some(v), _) => format_value(v),
                            (None, Some(h)) => crate::hist::to_string(h),
                            (None, None) => continue,
                        };
                        let mut pairs: Vec<Label> = labels
                            .iter()
                            .filter(|l| *l.name != *count_label)
                            .map(LabelRef::to_label)
                            .collect();
                        pairs.push(Label {
                            name: count_label.as_str().into(),
                            value: value.into(),
                        });
                        pairs.sort();
                        let key = Labels::from_sorted_unchecked(pairs);
                        let oi = *index.entry(key.clone()).or_insert_with(|| {
                            out.push(StepSeries {
                                hists: Vec::new(),
                                labels: key,
                                drop_name: false,
                                points: vec![None; steps.n],
                            });
                            out.len() - 1
                        });
                        let p = &mut out[oi].points[step];
                        *p = Some(p.unwrap_or(0.0) + 1.0);
                    }
                }
            }
            Ok(Val::Vector(out))
        }
    }
}

/// Whether `limit_ratio` keeps a series: its label hash, scaled to [0, 1),
/// is below the ratio (or, for a negative ratio, at or above 1 + ratio).
fn ratio_keeps(labels: &Labels, ratio: f64) -> bool {
    let offset = crate::aggregate::labels_hash(labels) as f64 / u64::MAX as f64;
    if ratio >= 0.0 {
        offset < ratio
    } else {
        offset >= 1.0 + ratio
    }
}

/// Prometheus's `labels.Hash`: xxHash64 of names and values, each followed
/// by the byte 0xff.
pub(crate) fn labels_hash(labels: &Labels) -> u64 {
    let mut bytes = Vec::new();
    for l in labels {
        bytes.extend_from_slice(l.name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(l.value.as_bytes());
        bytes.push(0xff);
    }
    xxhash64(&bytes, 0)
}

const P1: u64 = 11_400_714_785_074_694_791;
const P2: u64 = 14_029_467_366_897_019_727;
const P3: u64 = 1_609_587_929_392_839_161;
const P4: u64 = 9_650_029_242_287_828_579;
const P5: u64 = 2_870_177_450_012_600_261;

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read_u32(b: &[u8]) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a) as u64
}

fn xx_round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn xx_merge(acc: u64, val: u64) -> u64 {
    (acc ^ xx_round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

/// xxHash64 (the public algorithm, written from its specification).
fn xxhash64(input: &[u8], seed: u64) -> u64 {
    let len = input.len();
    let mut rest = input;
    let mut h: u64;
    if len >= 32 {
        let mut v1 = seed.wrapping_add(P1).wrapping_add(P2);
        let mut v2 = seed.wrapping_add(P2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(P1);
        while rest.len() >= 32 {
            v1 = xx_round(v1, read_u64(&rest[0..]));
            v2 = xx_round(v2, read_u64(&rest[8..]));
            v3 = xx_round(v3, read_u64(&rest[16..]));
            v4 = xx_round(v4, read_u64(&rest[24..]));
            rest = &rest[32..];
        }
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = xx_merge(h, v1);
        h = xx_merge(h, v2);
        h = xx_merge(h, v3);
        h = xx_merge(h, v4);
    } else {
        h = seed.wrapping_add(P5);
    }
    h = h.wrapping_add(len as u64);
    while rest.len() >= 8 {
        h ^= xx_round(0, read_u64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read_u32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= (b as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

/// The bucket series of one classic histogram: `(le, points per step)`.
type Buckets = Vec<(f64, Vec<Option<f64>>)>;

/// Groups classic-histogram bucket series by their labels without `le`,
/// and keeps the series with native histograms apart.
struct BucketGroups {
    groups: Vec<(Labels, Buckets)>,
    /// Series with native histogram samples: labels and their column.
    natives: Vec<(Labels, Vec<Option<crate::hist::Hist>>)>,
}

/// `msg` with Prometheus's ` for metric name "…"` suffix when there is a
/// name.
pub(crate) fn for_metric(msg: &str, name: &str) -> String {
    if name.is_empty() {
        msg.to_string()
    } else {
        format!("{msg} for metric name \"{name}\"")
    }
}

impl BucketGroups {
    /// Drops, at each step where a native histogram and classic buckets of
    /// the same labels meet, both of them, with Prometheus's warning.
    fn resolve_conflicts(&mut self, ctx: &Ctx<'_>, steps: &Steps, func: &str, arg: usize) {
        for (labels, hists) in &mut self.natives {
            let Some(gi) = self.groups.iter().position(|(l, _)| l == labels) else {
                continue;
            };
            for step in 0..steps.n {
                if hists.get(step).is_none_or(Option::is_none) {
                    continue;
                }
                let buckets = &mut self.groups[gi].1;
                if buckets.iter().any(|(_, p)| p[step].is_some()) {
                    ctx.warn_at_arg(
                        for_metric(
                            "vector contains a mix of classic and native histograms",
                            labels.metric_name().unwrap_or(""),
                        ),
                        func,
                        arg,
                    );
                    hists[step] = None;
                    for (_, p) in buckets.iter_mut() {
                        p[step] = None;
                    }
                }
            }
        }
    }
}

fn bucket_groups(
    ctx: &Ctx<'_>,
    arg: &crate::ast::Expr,
    steps: &Steps,
    func: &str,
    arg_index: usize,
) -> Result<BucketGroups, QueryError> {
    let mut groups: Vec<(Labels, Buckets)> = Vec::new();
    let mut natives = Vec::new();
    let mut index = GroupIndex::default();
    ctx.eval_vector_each(arg, steps, &mut |mut s| {
        if s.has_hists() {
            natives.push((s.labels.clone(), std::mem::take(&mut s.hists)));
            if s.points.iter().all(Option::is_none) {
                return Ok(());
            }
        }
        let le = s.labels.get("le").and_then(parse_go_float);
        let Some(le) = le else {
            let raw = s.labels.get("le").unwrap_or("");
            let name = s.labels.metric_name().unwrap_or("");
            ctx.warn_at_arg(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of \"{raw}\" for metric name \"{name}\""
                ),
                func,
                arg_index,
            );
            return Ok(());
        };
        let (gi, new) = index.group(&s.labels, |l| l.name != "le");
        if new {
            groups.push((index.key(gi).clone(), Vec::new()));
        }
        groups[gi].1.push((le, s.points));
        Ok(())
    })?;
    let mut out = BucketGroups { groups, natives };
    out.resolve_conflicts(ctx, steps, func, arg_index);
    Ok(out)
}

/// Go's `strconv.ParseFloat` for the forms `le` labels use.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if t != s {
        return None;
    }
    t.parse::<f64>().ok()
}

pub(crate) fn histogram_quantile(
    ctx: &Ctx<'_>,
    c: &Call,
    steps: &Steps,
) -> Result<Val, QueryError> {
    histogram_quantile_of(
        ctx,
        &c.args[0],
        &c.args[1],
        steps,
        ArgPlaces {
            func: "histogram_quantile",
            quantile: 0,
            buckets: 1,
        },
    )
}

/// Where a quantile function's annotations point: its name and the
/// indexes of its quantile and bucket arguments.
pub(crate) struct ArgPlaces {
    pub func: &'static str,
    pub quantile: usize,
    pub buckets: usize,
}

/// `histogram_quantile(q, buckets)`, its annotations placed as `places`
/// says (`histogram_quantiles` reuses it per quantile).
pub(crate) fn histogram_quantile_of(
    ctx: &Ctx<'_>,
    q_arg: &crate::ast::Expr,
    buckets_arg: &crate::ast::Expr,
    steps: &Steps,
    places: ArgPlaces,
) -> Result<Val, QueryError> {
    let q = ctx.eval_scalar(q_arg, steps)?;
    if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        ctx.warn_at_arg(
            format!(
                "quantile value should be between 0 and 1, got {}",
                go_float(*bad)
            ),
            places.func,
            places.quantile,
        );
    }
    let groups = bucket_groups(ctx, buckets_arg, steps, places.func, places.buckets)?;
    let mut out = Vec::new();
    for (labels, hists) in &groups.natives {
        let name = labels.metric_name().unwrap_or("");
        let mut points = vec![None; steps.n];
        for (step, h) in hists.iter().enumerate() {
            let Some(h) = h else { continue };
            let (v, note) = crate::hist::quantile(q[step], h);
            let msg = match note {
                crate::hist::NanNote::None => None,
                crate::hist::NanNote::NanResult => {
                    Some("input to histogram_quantile has NaN observations, result is NaN")
                }
                crate::hist::NanNote::Skew => Some(
                    "input to histogram_quantile has NaN observations, result is skewed higher",
                ),
            };
            if let Some(msg) = msg {
                ctx.info_at_arg(for_metric(msg, name), places.func, places.buckets);
            }
            points[step] = Some(v);
        }
        if points.iter().any(Option::is_some) {
            out.push(StepSeries {
                hists: Vec::new(),
                labels: labels.clone(),
                drop_name: true,
                points,
            });
        }
    }
    for (labels, buckets) in groups.groups {
        let mut points = Vec::with_capacity(steps.n);
        let mut present: Vec<(f64, f64)> = Vec::new();
        for (step, &qv) in q.iter().enumerate() {
            present.clear();
            present.extend(
                buckets
                    .iter()
                    .filter_map(|(le, p)| p[step].map(|v| (*le, v))),
            );
            if present.is_empty() {
                points.push(None);
                continue;
            }
            let (v, forced) = bucket_quantile(qv, &mut present);
            if forced {
                ctx.info_at_arg(format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"{}\"",
                    labels.metric_name().unwrap_or("")
                ), places.func, places.buckets);
            }
            points.push(Some(v));
        }
        out.push(StepSeries {
            hists: Vec::new(),
            labels,
            drop_name: true,
            points,
        });
    }
    Ok(Val::Vector(out))
}

/// Prometheus's quantile over cumulative buckets `(upper bound, count)`.
/// Returns the value and whether the counts had to be made monotonic.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if !buckets.last().is_some_and(|b| b.0 == f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Merge buckets with the same upper bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, v) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += v,
            _ => merged.push((le, v)),
        }
    }
    let mut forced = false;
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if merged.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return (merged[merged.len() - 2].0, forced);
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return (merged[0].0, forced);
    }
    let mut start = 0.0;
    let end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

pub(crate) fn histogram_fraction(
    ctx: &Ctx<'_>,
    c: &Call,
    steps: &Steps,
) -> Result<Val, QueryError> {
    let lower = ctx.eval_scalar(&c.args[0], steps)?;
    let upper = ctx.eval_scalar(&c.args[1], steps)?;
    let groups = bucket_groups(ctx, &c.args[2], steps, "histogram_fraction", 2)?;
    let mut out = Vec::new();
    for (labels, hists) in &groups.natives {
        let name = labels.metric_name().unwrap_or("");
        let mut points = vec![None; steps.n];
        for (step, h) in hists.iter().enumerate() {
            let Some(h) = h else { continue };
            let (v, nan) = crate::hist::fraction(lower[step], upper[step], h);
            if nan {
                ctx.info_at_arg(
                    for_metric(
                        "input to histogram_fraction has NaN observations, which are excluded from all fractions",
                        name,
                    ),
                    "histogram_fraction",
                    2,
                );
            }
            points[step] = Some(v);
        }
        if points.iter().any(Option::is_some) {
            out.push(StepSeries {
                hists: Vec::new(),
                labels: labels.clone(),
                drop_name: true,
                points,
            });
        }
    }
    for (labels, buckets) in groups.groups {
        let mut points = Vec::with_capacity(steps.n);
        let mut present: Vec<(f64, f64)> = Vec::new();
        for step in 0..steps.n {
            present.clear();
            present.extend(
                buckets
                    .iter()
                    .filter_map(|(le, p)| p[step].map(|v| (*le, v))),
            );
            if present.is_empty() {
                points.push(None);
                continue;
            }
            points.push(Some(bucket_fraction(
                lower[step],
                upper[step],
                &mut present,
            )));
        }
        out.push(StepSeries {
            hists: Vec::new(),
            labels,
            drop_name: true,
            points,
        });
    }
    Ok(Val::Vector(out))
}

/// The fraction of observations between `lower` and `upper` in cumulative
/// classic buckets, interpolating linearly inside a bucket.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if !buckets.last().is_some_and(|b| b.0 == f64::INFINITY) {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Cumulative count at or below x, interpolated linearly inside a
    // bucket. A bucket of infinite width cannot be interpolated: its
    // observations count as sitting at its finite bound.
    let rank_at = |x: f64| -> f64 {
        let mut prev_le = f64::NEG_INFINITY;
        let mut prev_count = 0.0;
        for (i, &(le, count)) in buckets.iter().enumerate() {
            if x <= le {
                if le == f64::INFINITY {
                    return prev_count;
                }
                let start = if i == 0 {
                    if le > 0.0 {
                        0.0
                    } else {
                        return count;
                    }
                } else {
                    prev_le
                };
                if x <= start {
                    return prev_count;
                }
                return prev_count + (count - prev_count) * (x - start) / (le - start);
            }
            prev_le = le;
            prev_count = count;
        }
        prev_count
    };
    let upper_rank = if upper == f64::INFINITY {
        total
    } else {
        rank_at(upper)
    };
    let lower_rank = if lower == f64::NEG_INFINITY {
        0.0
    } else {
        rank_at(lower)
    };
    (upper_rank - lower_rank) / total
}
