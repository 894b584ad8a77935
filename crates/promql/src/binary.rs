//! Binary operators: arithmetic, comparison and set operators, with vector
//! matching (`on`, `ignoring`, `group_left`, `group_right`, `bool`).
//!
//! Matching is decided once per series pair; the per-step work is only the
//! arithmetic and the uniqueness checks Prometheus makes at every step.

use crate::QueryError;
use crate::ast::{Binary, BinaryOp, Cardinality, Matching};
use crate::eval::{Ctx, Steps};
use crate::hist::Hist;
use crate::value::{StepSeries, Val};
use model::labels::FastBuildHasher;
use model::{Label, LabelRef, Labels, LabelsBuilder};

/// Maps keyed by label sets of stored series hash them with the fast
/// unkeyed hasher: SipHash over every label string measured at a fifth of
/// a small join's time.
type HashMap<K, V> = std::collections::HashMap<K, V, FastBuildHasher>;

pub(crate) fn eval_binary(ctx: &Ctx<'_>, b: &Binary, steps: &Steps) -> Result<Val, QueryError> {
    // Trimming needs the buckets: no statistics-only reading below it.
    let stats = ctx.hist_stats.get() && !b.op.is_trim();
    let lhs = ctx.with_hist_stats(stats, || ctx.eval(&b.lhs, steps))?;
    let rhs = ctx.with_hist_stats(stats, || ctx.eval(&b.rhs, steps))?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&x, &y)| {
                    let (v, keep) = elem(b.op, x, y);
                    if b.op.is_comparison() {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(l), Val::Scalar(r)) => Ok(Val::Vector(vector_scalar(ctx, b, l, &r, false))),
        (Val::Scalar(l), Val::Vector(r)) => Ok(Val::Vector(vector_scalar(ctx, b, r, &l, true))),
        (Val::Vector(l), Val::Vector(r)) => {
            if b.op.is_set() {
                Ok(Val::Vector(set_op(b, l, r, steps)))
            } else {
                vector_vector(ctx, b, l, r, steps).map(Val::Vector)
            }
        }
        _ => Err(QueryError::bad_data(format!(
            "binary operator \"{}\" cannot be applied to these operand types",
            b.op.as_str()
        ))),
    }
}

/// Applies an operator to two floats; the flag says whether a comparison
/// holds (always true for arithmetic).
pub(crate) fn elem(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (l.atan2(r), true),
        BinaryOp::Eq => (l, l == r),
        BinaryOp::Ne => (l, l != r),
        BinaryOp::Gt => (l, l > r),
        BinaryOp::Lt => (l, l < r),
        BinaryOp::Ge => (l, l >= r),
        BinaryOp::Le => (l, l <= r),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => (l, true),
        // Defined on histograms only; between floats, no result.
        BinaryOp::TrimUpper | BinaryOp::TrimLower => (l, false),
    }
}

fn drops_name(b: &Binary) -> bool {
    b.return_bool || !(b.op.is_comparison() || b.op.is_trim())
}

fn vector_scalar(
    ctx: &Ctx<'_>,
    b: &Binary,
    mut series: Vec<StepSeries>,
    scalar: &[f64],
    swap: bool,
) -> Vec<StepSeries> {
    let drop = drops_name(b);
    for s in &mut series {
        if s.has_hists() {
            let mut hists = std::mem::take(&mut s.hists);
            for (step, h) in hists.iter_mut().enumerate() {
                let Some(hv) = h.take() else { continue };
                let sv = Operand::F(scalar[step]);
                let (l, r) = if swap {
                    (sv, Operand::H(&hv))
                } else {
                    (Operand::H(&hv), sv)
                };
                match hist_elem(ctx, b, l, r) {
                    BinOut::Drop => {}
                    BinOut::H(res) => *h = Some(res),
                    BinOut::Keep(keep) => {
                        if b.return_bool {
                            s.points[step] = Some(if keep { 1.0 } else { 0.0 });
                        } else if keep {
                            // A comparison keeps the vector side.
                            *h = Some(hv);
                        }
                    }
                }
            }
            if hists.iter().any(Option::is_some) {
                s.hists = hists;
            }
        }
        for (p, &sv) in s.points.iter_mut().zip(scalar) {
            let Some(v) = *p else { continue };
            if b.op.is_trim() {
                hist_elem(ctx, b, Operand::F(v), Operand::F(sv));
                *p = None;
                continue;
            }
            let (l, r) = if swap { (sv, v) } else { (v, sv) };
            let (mut out, keep) = elem(b.op, l, r);
            if b.op.is_comparison() && swap {
                out = v;
            }
            *p = if b.return_bool {
                Some(if keep { 1.0 } else { 0.0 })
            } else if keep {
                Some(out)
            } else {
                None
            };
        }
        s.drop_name |= drop;
    }
    series.retain(|s| !s.is_empty());
    series
}

/// One operand of an operator on a histogram.
#[derive(Clone, Copy)]
enum Operand<'a> {
    F(f64),
    H(&'a Hist),
}

impl Operand<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Operand::F(_) => "float",
            Operand::H(_) => "histogram",
        }
    }
}

/// The result of an operator with a histogram operand.
enum BinOut {
    /// No result (incompatible operands, with an annotation).
    Drop,
    H(Hist),
    /// A comparison: whether it holds (the caller keeps the left side or
    /// writes 1/0 under `bool`).
    Keep(bool),
}

/// The start of an expression in the query text, as a token to find.
fn start_token(e: &crate::ast::Expr) -> String {
    use crate::ast::Expr;
    match e {
        Expr::VectorSelector(vs) => vs
            .matchers
            .iter()
            .find(|m| m.name() == model::METRIC_NAME)
            .map(|m| m.value().to_string())
            .unwrap_or_else(|| "{".to_string()),
        Expr::MatrixSelector(ms) => start_token(&Expr::VectorSelector(ms.selector.clone())),
        Expr::Call(c) => c.func.clone(),
        Expr::Paren(_) => "(".to_string(),
        Expr::Binary(b) => start_token(&b.lhs),
        Expr::Unary { .. } => "-".to_string(),
        Expr::Aggregate(_) | Expr::Number(_) | Expr::String(_) | Expr::Subquery(_) => String::new(),
    }
}

/// Prometheus's `vectorElemBinop` where a histogram is involved.
fn hist_elem(ctx: &Ctx<'_>, b: &Binary, l: Operand<'_>, r: Operand<'_>) -> BinOut {
    use BinaryOp::*;
    let token = start_token(&b.lhs);
    let incompatible = || {
        let msg = format!(
            "incompatible sample types encountered for binary operator \"{}\": {} {} {}",
            b.op.as_str(),
            l.type_name(),
            b.op.as_str(),
            r.type_name()
        );
        ctx.info_at(msg, &token);
        BinOut::Drop
    };
    match (l, r) {
        (Operand::F(f), Operand::H(h)) | (Operand::H(h), Operand::F(f)) if b.op == Mul => {
            let mut h = h.clone();
            crate::hist::mul(&mut h, f);
            crate::hist::compact(&mut h);
            BinOut::H(h)
        }
        (Operand::H(h), Operand::F(f)) if matches!(b.op, TrimUpper | TrimLower) => {
            let mut h = h.clone();
            crate::hist::trim(&mut h, f, b.op == TrimUpper);
            BinOut::H(h)
        }
        (Operand::H(h), Operand::F(f)) if b.op == Div => {
            let mut h = h.clone();
            crate::hist::div(&mut h, f);
            crate::hist::compact(&mut h);
            BinOut::H(h)
        }
        (Operand::H(x), Operand::H(y)) => match b.op {
            Add | Sub => {
                let mut res = x.clone();
                match crate::hist::add(&mut res, y, b.op == Sub) {
                    Err(_) => {
                        ctx.warn_at(
                            format!(
                                "incompatible bucket layout encountered for binary operator {}",
                                b.op.as_str()
                            ),
                            &token,
                        );
                        return BinOut::Drop;
                    }
                    Ok(notes) => {
                        let what = if b.op == Add {
                            "addition"
                        } else {
                            "subtraction"
                        };
                        if notes.collision {
                            ctx.warn_at(
                                format!("conflicting counter resets during histogram {what}"),
                                &token,
                            );
                        }
                        if notes.reconciled {
                            ctx.info_at(
                                format!("mismatched custom buckets were reconciled during {what}"),
                                &token,
                            );
                        }
                    }
                }
                if b.op == Sub {
                    res.counter_reset_hint = model::histogram::CounterResetHint::Gauge;
                }
                crate::hist::compact(&mut res);
                BinOut::H(res)
            }
            Eq => BinOut::Keep(crate::hist::equals(x, y)),
            Ne => BinOut::Keep(!crate::hist::equals(x, y)),
            _ => incompatible(),
        },
        _ => incompatible(),
    }
}

/// The matching signature of a label set.
fn signature(labels: &Labels, matching: &Option<Matching>) -> Labels {
    match matching {
        Some(Matching::On(names)) => Labels::from_sorted_unchecked(
            labels
                .iter()
                .filter(|l| names.iter().any(|n| *n == *l.name))
                .map(LabelRef::to_label)
                .collect(),
        ),
        Some(Matching::Ignoring(names)) => Labels::from_sorted_unchecked(
            labels
                .iter()
                .filter(|l| l.name != model::METRIC_NAME && !names.iter().any(|n| *n == *l.name))
                .map(LabelRef::to_label)
                .collect(),
        ),
        None => Labels::from_sorted_unchecked(
            labels
                .iter()
                .filter(|l| l.name != model::METRIC_NAME)
                .map(LabelRef::to_label)
                .collect(),
        ),
    }
}

fn set_op(
    b: &Binary,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    steps: &Steps,
) -> Vec<StepSeries> {
    let n = steps.n;
    match b.op {
        BinaryOp::And | BinaryOp::Unless => {
            let mut present: HashMap<Labels, Vec<bool>> = HashMap::default();
            for s in &rhs {
                let e = present
                    .entry(signature(&s.labels, &b.matching))
                    .or_insert_with(|| vec![false; n]);
                for (i, flag) in e.iter_mut().enumerate() {
                    *flag |= s.present(i);
                }
            }
            let want = b.op == BinaryOp::And;
            let mut out = Vec::new();
            for mut s in lhs {
                let sig = signature(&s.labels, &b.matching);
                let flags = present.get(&sig);
                for i in 0..s.points.len() {
                    let there = flags.is_some_and(|f| f[i]);
                    if there != want {
                        s.points[i] = None;
                        s.set_hist(i, None);
                    }
                }
                if !s.is_empty() {
                    out.push(s);
                }
            }
            out
        }
        _ => {
            let mut present: HashMap<Labels, Vec<bool>> = HashMap::default();
            for s in &lhs {
                let e = present
                    .entry(signature(&s.labels, &b.matching))
                    .or_insert_with(|| vec![false; n]);
                for (i, flag) in e.iter_mut().enumerate() {
                    *flag |= s.present(i);
                }
            }
            let mut out = lhs;
            for mut s in rhs {
                let sig = signature(&s.labels, &b.matching);
                if let Some(flags) = present.get(&sig) {
                    for (i, f) in flags.iter().enumerate() {
                        if *f {
                            s.points[i] = None;
                            s.set_hist(i, None);
                        }
                    }
                }
                if !s.is_empty() {
                    out.push(s);
                }
            }
            out
        }
    }
}

/// Prometheus's `labels.String()`: every label in braces, Go-quoted.
pub(crate) fn labels_string(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(l.name);
        s.push('=');
        s.push_str(&go_quote(l.value));
    }
    s.push('}');
    s
}

fn go_quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn result_labels(lhs: &Labels, rhs: &Labels, b: &Binary, card: &Cardinality) -> Labels {
    // One-to-one results keep the left side's labels, less those matching
    // leaves out; no builder or sort is needed.
    if *card == Cardinality::OneToOne {
        let keep = |l: &LabelRef<'_>| match &b.matching {
            Some(Matching::On(names)) => names.iter().any(|n| *n == *l.name),
            Some(Matching::Ignoring(names)) => !names.iter().any(|n| *n == *l.name),
            None => true,
        };
        return match b.matching {
            None => lhs.clone(),
            Some(_) => Labels::from_sorted_unchecked(
                lhs.iter().filter(keep).map(LabelRef::to_label).collect(),
            ),
        };
    }
    let mut builder = LabelsBuilder::from_labels(lhs);
    let include = match card {
        Cardinality::ManyToOne(l) | Cardinality::OneToMany(l) => l.as_slice(),
        _ => &[],
    };
    for n in include {
        match rhs.get(n) {
            Some(v) => {
                builder.set(n.as_str(), v);
            }
            None => {
                builder.delete(n);
            }
        }
    }
    builder.build()
}

/// The labels a filled-in series gets: those matching looks at (with
/// `on`, the listed ones; otherwise all but the metric name and the
/// ignored ones), Prometheus's `MatchLabels`.
fn match_labels(labels: &Labels, matching: &Option<Matching>) -> Labels {
    let keep: Vec<Label> = labels
        .iter()
        .filter(|l| match matching {
            Some(Matching::On(names)) => names.iter().any(|n| *n == *l.name),
            Some(Matching::Ignoring(names)) => {
                l.name != model::METRIC_NAME && !names.iter().any(|n| *n == *l.name)
            }
            None => l.name != model::METRIC_NAME,
        })
        .map(LabelRef::to_label)
        .collect();
    Labels::from_sorted_unchecked(keep)
}

/// The labels of a series that take part in matching, in label order.
fn signature_labels<'a>(
    labels: &'a Labels,
    matching: &'a Option<Matching>,
) -> impl Iterator<Item = LabelRef<'a>> + 'a {
    labels.iter().filter(move |l| match matching {
        Some(Matching::On(names)) => names.iter().any(|n| *n == *l.name),
        Some(Matching::Ignoring(names)) => {
            l.name != model::METRIC_NAME && !names.iter().any(|n| *n == *l.name)
        }
        None => l.name != model::METRIC_NAME,
    })
}

/// Series grouped by matching signature without building the signatures:
/// each series' matching labels are hashed in place, and a hash hit is
/// confirmed by comparing the labels, so colliding hashes never merge two
/// groups.
struct SignatureGroups<'a> {
    matching: &'a Option<Matching>,
    by_hash: HashMap<u64, Vec<usize>>,
    /// Per group, the labels of its first series.
    representative: Vec<&'a Labels>,
}

impl<'a> SignatureGroups<'a> {
    fn new(matching: &'a Option<Matching>) -> SignatureGroups<'a> {
        SignatureGroups {
            matching,
            by_hash: HashMap::default(),
            representative: Vec::new(),
        }
    }

    fn hash(&self, labels: &Labels) -> u64 {
        model::labels::stable_hash_pairs(
            signature_labels(labels, self.matching).map(|l| (l.name.as_str(), l.value.as_str())),
        )
    }

    fn find_hashed(&self, hash: u64, labels: &Labels) -> Option<usize> {
        let chain = self.by_hash.get(&hash)?;
        chain.iter().copied().find(|&g| {
            signature_labels(self.representative[g], self.matching)
                .eq(signature_labels(labels, self.matching))
        })
    }

    /// The group of `labels`, if one has its signature.
    fn find(&self, labels: &Labels) -> Option<usize> {
        self.find_hashed(self.hash(labels), labels)
    }

    /// The group of `labels`, made if new.
    fn insert(&mut self, labels: &'a Labels) -> usize {
        let hash = self.hash(labels);
        if let Some(g) = self.find_hashed(hash, labels) {
            return g;
        }
        let g = self.representative.len();
        self.representative.push(labels);
        self.by_hash.entry(hash).or_default().push(g);
        g
    }
}

fn vector_vector(
    ctx: &Ctx<'_>,
    b: &Binary,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    steps: &Steps,
) -> Result<Vec<StepSeries>, QueryError> {
    let n = steps.n;
    let swapped = matches!(b.cardinality, Cardinality::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let card = &b.cardinality;
    // The "one" side, by signature.
    let mut groups = SignatureGroups::new(&b.matching);
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, s) in one.iter().enumerate() {
        let g = groups.insert(&s.labels);
        if g == members.len() {
            members.push(Vec::new());
        }
        members[g].push(i);
    }
    // Per group and step, the index of the "one" series with a point.
    let mut one_at: Vec<Vec<Option<usize>>> = Vec::with_capacity(members.len());
    for group in &members {
        let mut at = vec![None; n];
        for &i in group {
            for (step, p) in one[i].points.iter().enumerate() {
                if p.is_none() && one[i].hist(step).is_none() {
                    continue;
                }
                if let Some(prev) = at[step] {
                    let side = if swapped { "left" } else { "right" };
                    let matched = signature(&one[i].labels, &b.matching);
                    let (first, second): (&StepSeries, &StepSeries) = (&one[prev], &one[i]);
                    return Err(QueryError::execution(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        labels_string(&matched),
                        labels_string(&first.labels),
                        labels_string(&second.labels)
                    )));
                }
                at[step] = Some(i);
            }
        }
        one_at.push(at);
    }
    // The group each "many" series matches, if any.
    let many_group: Vec<Option<usize>> = many.iter().map(|s| groups.find(&s.labels)).collect();
    // One-to-one: two "many" series matching the same signature at one
    // step is an error, whether or not a comparison keeps them.
    if *card == Cardinality::OneToOne {
        let mut seen: Vec<Option<Vec<bool>>> = vec![None; one_at.len()];
        for (i, s) in many.iter().enumerate() {
            let Some(g) = many_group[i] else {
                continue;
            };
            let at = &one_at[g];
            let flags = seen[g].get_or_insert_with(|| vec![false; n]);
            for (step, p) in s.points.iter().enumerate() {
                if (p.is_some() || s.hist(step).is_some()) && at[step].is_some() {
                    if flags[step] {
                        return Err(QueryError::execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        ));
                    }
                    flags[step] = true;
                }
            }
        }
    }
    let drop = drops_name(b);
    // With `fill`, a missing "one" side takes `fill_rhs` and a missing
    // "many" side `fill_lhs` (Prometheus applies them after swapping the
    // sides of a `group_right`, as here).
    let (fill_one, fill_many) = (b.fill_rhs, b.fill_lhs);
    let mut out: Vec<StepSeries> = Vec::new();
    // Sized for one output series per "many" series, the common case,
    // so it is not rehashed as it fills.
    let mut out_index: HashMap<Labels, usize> =
        HashMap::with_capacity_and_hasher(many.len(), FastBuildHasher::default());
    // Which "many" series wrote each output point, to tell a grouping
    // error from a plain label-set collision.
    let mut writer: Vec<Vec<usize>> = Vec::new();
    // Per group and step, whether a "many" series was there (so the
    // group's "one" series needs no `fill_lhs`).
    let mut matched: Vec<Vec<bool>> = if fill_many.is_some() {
        vec![vec![false; n]; one_at.len()]
    } else {
        Vec::new()
    };
    let mut put = |out: &mut Vec<StepSeries>,
                   writer: &mut Vec<Vec<usize>>,
                   labels: Labels,
                   drop_name: bool,
                   step: usize,
                   value: f64,
                   mi: usize,
                   group: Option<usize>|
     -> Result<usize, QueryError> {
        // One hash of the label set, found or inserted.
        let idx = match out_index.entry(labels) {
            std::collections::hash_map::Entry::Occupied(entry) => *entry.get(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let labels = entry.key().clone();
                entry.insert(out.len());
                out.push(StepSeries {
                    hists: Vec::new(),
                    labels,
                    drop_name,
                    points: vec![None; n],
                });
                writer.push(vec![usize::MAX; n]);
                out.len() - 1
            }
        };
        if out[idx].present(step) {
            let other = writer[idx][step];
            if other != usize::MAX
                && group.is_some()
                && many_group.get(other).copied().flatten() == group
            {
                return Err(QueryError::execution(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            return Err(QueryError::execution(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        out[idx].points[step] = Some(value);
        writer[idx][step] = mi;
        Ok(idx)
    };
    let any_hists = many.iter().chain(one.iter()).any(StepSeries::has_hists);
    // A histogram result of `apply`, for the caller to store.
    let pending: std::cell::RefCell<Option<Hist>> = std::cell::RefCell::new(None);
    let apply = |many_value: f64,
                 one_value: f64,
                 mi: Option<usize>,
                 oi: Option<usize>,
                 step: usize|
     -> Option<f64> {
        if any_hists {
            let mh = mi.and_then(|mi| many[mi].hist(step));
            let oh = oi.and_then(|oi| one[oi].hist(step));
            if mh.is_some() || oh.is_some() {
                let m = mh.map_or(Operand::F(many_value), Operand::H);
                let o = oh.map_or(Operand::F(one_value), Operand::H);
                let (l, r) = if swapped { (o, m) } else { (m, o) };
                return match hist_elem(ctx, b, l, r) {
                    BinOut::Drop => None,
                    BinOut::H(h) => {
                        *pending.borrow_mut() = Some(h);
                        Some(0.0)
                    }
                    BinOut::Keep(keep) => {
                        if b.return_bool {
                            Some(if keep { 1.0 } else { 0.0 })
                        } else if !keep {
                            None
                        } else {
                            // The left side is kept.
                            match l {
                                Operand::H(h) => {
                                    *pending.borrow_mut() = Some(h.clone());
                                    Some(0.0)
                                }
                                Operand::F(v) => Some(v),
                            }
                        }
                    }
                };
            }
        }
        let (l, r) = if swapped {
            (one_value, many_value)
        } else {
            (many_value, one_value)
        };
        if b.op.is_trim() {
            hist_elem(ctx, b, Operand::F(l), Operand::F(r));
            return None;
        }
        let (value, keep) = elem(b.op, l, r);
        if b.return_bool {
            Some(if keep { 1.0 } else { 0.0 })
        } else if !keep {
            None
        } else {
            Some(value)
        }
    };
    for (mi, s) in many.iter().enumerate() {
        ctx.check_deadline()?;
        let group = many_group[mi];
        let mut cached: Option<(usize, usize)> = None;
        let mut filled_labels: Option<Labels> = None;
        for (step, p) in s.points.iter().enumerate() {
            let mv = match *p {
                Some(v) => v,
                None if s.hist(step).is_some() => 0.0,
                None => continue,
            };
            if let Some(g) = group
                && let Some(m) = matched.get_mut(g)
            {
                m[step] = true;
            }
            let one_point = group.and_then(|g| one_at[g][step]).and_then(|oi| {
                one[oi].points[step]
                    .or_else(|| one[oi].hist(step).map(|_| 0.0))
                    .map(|v| (oi, v))
            });
            let Some((oi, ov)) = one_point else {
                // No "one" series here: `fill_right`, or nothing.
                let Some(fill) = fill_one else {
                    continue;
                };
                let Some(value) = apply(mv, fill, Some(mi), None, step) else {
                    continue;
                };
                let labels = filled_labels
                    .get_or_insert_with(|| {
                        let one_labels = match_labels(&s.labels, &b.matching);
                        result_labels(&s.labels, &one_labels, b, card)
                    })
                    .clone();
                let idx = put(
                    &mut out,
                    &mut writer,
                    labels,
                    s.drop_name || drop,
                    step,
                    value,
                    mi,
                    group,
                )?;
                if let Some(h) = pending.borrow_mut().take() {
                    out[idx].set_hist(step, Some(h));
                }
                continue;
            };
            let Some(value) = apply(mv, ov, Some(mi), Some(oi), step) else {
                continue;
            };
            match cached {
                Some((cached_one, idx)) if cached_one == oi => {
                    if out[idx].present(step) {
                        let other = writer[idx][step];
                        if other != usize::MAX && many_group[other] == many_group[mi] {
                            return Err(QueryError::execution(
                                "multiple matches for labels: grouping labels must ensure unique matches",
                            ));
                        }
                        return Err(QueryError::execution(
                            "vector cannot contain metrics with the same labelset",
                        ));
                    }
                    out[idx].points[step] = Some(value);
                    writer[idx][step] = mi;
                    if let Some(h) = pending.borrow_mut().take() {
                        out[idx].set_hist(step, Some(h));
                    }
                }
                _ => {
                    let labels = result_labels(&s.labels, &one[oi].labels, b, card);
                    let idx = put(
                        &mut out,
                        &mut writer,
                        labels,
                        s.drop_name || drop,
                        step,
                        value,
                        mi,
                        group,
                    )?;
                    if let Some(h) = pending.borrow_mut().take() {
                        out[idx].set_hist(step, Some(h));
                    }
                    cached = Some((oi, idx));
                }
            }
        }
    }
    // `fill_left`: "one" series that no "many" series met at a step.
    if let Some(fill) = fill_many {
        for (g, group) in members.iter().enumerate() {
            for &oi in group {
                let one_series = &one[oi];
                let filled = match_labels(&one_series.labels, &b.matching);
                let labels = result_labels(&filled, &one_series.labels, b, card);
                for (step, p) in one_series.points.iter().enumerate() {
                    let ov = match *p {
                        Some(v) => v,
                        None if one_series.hist(step).is_some() => 0.0,
                        None => continue,
                    };
                    if matched[g][step] {
                        continue;
                    }
                    let Some(value) = apply(fill, ov, None, Some(oi), step) else {
                        continue;
                    };
                    let idx = put(
                        &mut out,
                        &mut writer,
                        labels.clone(),
                        drop,
                        step,
                        value,
                        usize::MAX,
                        None,
                    )?;
                    if let Some(h) = pending.borrow_mut().take() {
                        out[idx].set_hist(step, Some(h));
                    }
                }
            }
        }
    }
    Ok(out)
}
