//! Arithmetic on native histograms as PromQL needs it: addition and
//! subtraction across schemas and zero thresholds, scaling, resolution
//! reduction, counter-reset detection, and the quantile, fraction and
//! variance estimates. The rules are Prometheus 3's (`FloatHistogram`'s
//! `Add`/`Sub`/`Mul`/`Div`/`DetectReset` and `promql/quantile.go`),
//! written here over ordered bucket maps for clarity.

use model::histogram::{
    CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, Span, bucket_indexes,
    exponential_bound,
};
use std::collections::BTreeMap;

pub(crate) type Hist = FloatHistogram;

pub(crate) fn is_custom(h: &Hist) -> bool {
    h.schema == CUSTOM_BUCKETS_SCHEMA
}

fn to_map(spans: &[Span], buckets: &[f64]) -> BTreeMap<i64, f64> {
    let mut m = BTreeMap::new();
    for (i, c) in bucket_indexes(spans).zip(buckets.iter().copied()) {
        *m.entry(i).or_insert(0.0) += c;
    }
    m
}

/// Spans and buckets of a map, leaving out empty buckets.
fn from_map(m: &BTreeMap<i64, f64>) -> (Vec<Span>, Vec<f64>) {
    spans_of(m, false)
}

/// Like [`from_map`], keeping empty buckets (a running sum's buckets can
/// come back from zero).
fn from_map_keep(m: &BTreeMap<i64, f64>) -> (Vec<Span>, Vec<f64>) {
    spans_of(m, true)
}

fn spans_of(m: &BTreeMap<i64, f64>, keep_empty: bool) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::new();
    let mut last: Option<i64> = None;
    for (&i, &c) in m {
        if c == 0.0 && !keep_empty {
            continue;
        }
        match last {
            Some(l) if i == l + 1 => {
                if let Some(s) = spans.last_mut() {
                    s.length += 1;
                }
            }
            Some(l) => spans.push(Span {
                offset: (i - l - 1) as i32,
                length: 1,
            }),
            None => spans.push(Span {
                offset: i as i32,
                length: 1,
            }),
        }
        buckets.push(c);
        last = Some(i);
    }
    (spans, buckets)
}

/// The bucket index at a lower schema.
fn target_index(index: i64, from: i32, to: i32) -> i64 {
    ((index - 1) >> (from - to)) + 1
}

fn reduce_map(m: &BTreeMap<i64, f64>, from: i32, to: i32) -> BTreeMap<i64, f64> {
    if from <= to {
        return m.clone();
    }
    let mut out = BTreeMap::new();
    for (&i, &c) in m {
        *out.entry(target_index(i, from, to)).or_insert(0.0) += c;
    }
    out
}

/// Drops empty buckets and merges spans (Prometheus's `Compact(0)`).
pub(crate) fn compact(h: &mut Hist) {
    let adjacent = |spans: &[Span]| spans.iter().skip(1).any(|s| s.offset == 0 || s.length == 0);
    if !h
        .positive_buckets
        .iter()
        .chain(&h.negative_buckets)
        .any(|b| *b == 0.0)
        && !adjacent(&h.positive_spans)
        && !adjacent(&h.negative_spans)
        && h.positive_spans.first().is_none_or(|s| s.length > 0)
        && h.negative_spans.first().is_none_or(|s| s.length > 0)
    {
        return;
    }
    let (ps, pb) = from_map(&to_map(&h.positive_spans, &h.positive_buckets));
    let (ns, nb) = from_map(&to_map(&h.negative_spans, &h.negative_buckets));
    h.positive_spans = ps;
    h.positive_buckets = pb;
    h.negative_spans = ns;
    h.negative_buckets = nb;
}

/// A copy at a lower (or the same) exponential schema.
pub(crate) fn to_schema(h: &Hist, schema: i32) -> Hist {
    let mut out = h.clone();
    if is_custom(h) || schema >= h.schema {
        return out;
    }
    let (ps, pb) = from_map(&reduce_map(
        &to_map(&h.positive_spans, &h.positive_buckets),
        h.schema,
        schema,
    ));
    let (ns, nb) = from_map(&reduce_map(
        &to_map(&h.negative_spans, &h.negative_buckets),
        h.schema,
        schema,
    ));
    out.schema = schema;
    out.positive_spans = ps;
    out.positive_buckets = pb;
    out.negative_spans = ns;
    out.negative_buckets = nb;
    out
}

/// The zero count `h` would have with a zero bucket at least `larger`
/// wide, and the threshold that takes (widened to a populated bucket's
/// edge when `larger` falls inside one): Prometheus's
/// `zeroCountForLargerThreshold`.
fn zero_count_for_threshold(h: &Hist, mut larger: f64) -> (f64, f64) {
    if larger == h.zero_threshold {
        return (h.zero_count, larger);
    }
    let pos = to_map(&h.positive_spans, &h.positive_buckets);
    let neg = to_map(&h.negative_spans, &h.negative_buckets);
    'outer: loop {
        let mut zero = h.zero_count;
        for (&i, &c) in &pos {
            let lower = exponential_bound(i - 1, h.schema);
            let upper = exponential_bound(i, h.schema);
            if lower >= larger {
                break;
            }
            zero += c;
            if upper > larger {
                if c != 0.0 {
                    larger = upper;
                }
                break;
            }
        }
        for (&i, &c) in &neg {
            let upper = -exponential_bound(i - 1, h.schema);
            let lower = -exponential_bound(i, h.schema);
            if upper <= -larger {
                break;
            }
            zero += c;
            if lower < -larger {
                if c != 0.0 {
                    larger = -lower;
                    continue 'outer;
                }
                break;
            }
        }
        return (zero, larger);
    }
}

/// Removes the buckets inside the zero bucket (their counts are already
/// in the zero count).
fn trim_into_zero(h: &mut Hist) {
    let t = h.zero_threshold;
    let schema = h.schema;
    let mut pos = to_map(&h.positive_spans, &h.positive_buckets);
    pos.retain(|&i, _| exponential_bound(i - 1, schema) >= t);
    let mut neg = to_map(&h.negative_spans, &h.negative_buckets);
    neg.retain(|&i, _| exponential_bound(i - 1, schema) >= t);
    (h.positive_spans, h.positive_buckets) = from_map(&pos);
    (h.negative_spans, h.negative_buckets) = from_map(&neg);
}

/// Widens the zero buckets of `h` and of (a view of) `other` to one
/// threshold; returns `other`'s zero count at that threshold.
fn reconcile_zero(h: &mut Hist, other: &Hist) -> f64 {
    let mut other_zero = other.zero_count;
    let mut other_threshold = other.zero_threshold;
    let mut guard = 0;
    while other_threshold != h.zero_threshold && guard < 64 {
        guard += 1;
        if h.zero_threshold > other_threshold {
            (other_zero, other_threshold) = zero_count_for_threshold(other, h.zero_threshold);
        }
        if other_threshold > h.zero_threshold {
            let (z, t) = zero_count_for_threshold(h, other_threshold);
            h.zero_count = z;
            h.zero_threshold = t;
            trim_into_zero(h);
        }
    }
    other_zero
}

/// Prometheus's `adjustCounterReset`: the hint of a sum or difference;
/// true on a collision of "reset" and "not reset".
fn adjust_hint(h: &mut Hist, other: &Hist) -> bool {
    use CounterResetHint::*;
    let (a, b) = (h.counter_reset_hint, other.counter_reset_hint);
    match (a, b) {
        _ if a == b => false,
        (Gauge, _) => false,
        (_, Gauge) => {
            h.counter_reset_hint = Gauge;
            false
        }
        (Unknown, _) => false,
        (_, Unknown) => {
            h.counter_reset_hint = Unknown;
            false
        }
        _ => {
            h.counter_reset_hint = Unknown;
            true
        }
    }
}

/// What an addition noticed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AddNotes {
    /// One side said "counter reset", the other "no counter reset".
    pub collision: bool,
    /// Custom bounds differed and were reduced to the common ones.
    pub reconciled: bool,
}

/// The two sides mix exponential and custom buckets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MixedSchemas;

/// The common bounds of two custom-bucket layouts.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Custom buckets mapped onto coarser bounds: each bucket goes to the
/// first target bucket whose bound is at least its own.
fn map_custom(m: &BTreeMap<i64, f64>, bounds: &[f64], target: &[f64]) -> BTreeMap<i64, f64> {
    let mut out = BTreeMap::new();
    for (&i, &c) in m {
        let t = match bounds.get(i as usize) {
            Some(&b) => target.partition_point(|&x| x < b) as i64,
            None => target.len() as i64,
        };
        *out.entry(t).or_insert(0.0) += c;
    }
    out
}

fn bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// `h += other` (or `h -= other`), reconciling schema, zero threshold and
/// custom bounds as Prometheus does. Empty buckets are dropped.
pub(crate) fn add(h: &mut Hist, other: &Hist, negate: bool) -> Result<AddNotes, MixedSchemas> {
    if is_custom(h) != is_custom(other) {
        return Err(MixedSchemas);
    }
    if h.same_layout(other) {
        // The common case (one series' samples, one layout): bucket by
        // bucket, no reconciliation.
        let notes = AddNotes {
            collision: adjust_hint(h, other),
            reconciled: false,
        };
        let sign = if negate { -1.0 } else { 1.0 };
        h.count += sign * other.count;
        h.sum += sign * other.sum;
        h.zero_count += sign * other.zero_count;
        for (a, b) in h
            .positive_buckets
            .iter_mut()
            .zip(&other.positive_buckets)
            .chain(h.negative_buckets.iter_mut().zip(&other.negative_buckets))
        {
            *a += sign * b;
        }
        if h.positive_buckets
            .iter()
            .chain(&h.negative_buckets)
            .any(|b| *b == 0.0)
        {
            compact(h);
        }
        return Ok(notes);
    }
    let mut notes = AddNotes {
        collision: adjust_hint(h, other),
        reconciled: false,
    };
    let sign = if negate { -1.0 } else { 1.0 };
    if !is_custom(h) {
        let oz = reconcile_zero(h, other);
        h.zero_count += sign * oz;
    }
    h.count += sign * other.count;
    h.sum += sign * other.sum;
    let mut hp = to_map(&h.positive_spans, &h.positive_buckets);
    let mut op = to_map(&other.positive_spans, &other.positive_buckets);
    if is_custom(h) {
        if !bounds_match(&h.custom_values, &other.custom_values) {
            notes.reconciled = true;
            let target = intersect_bounds(&h.custom_values, &other.custom_values);
            hp = map_custom(&hp, &h.custom_values, &target);
            op = map_custom(&op, &other.custom_values, &target);
            h.custom_values = target;
        }
        for (i, c) in op {
            *hp.entry(i).or_insert(0.0) += sign * c;
        }
        (h.positive_spans, h.positive_buckets) = from_map(&hp);
        return Ok(notes);
    }
    let mut hn = to_map(&h.negative_spans, &h.negative_buckets);
    let mut on = to_map(&other.negative_spans, &other.negative_buckets);
    if other.schema < h.schema {
        hp = reduce_map(&hp, h.schema, other.schema);
        hn = reduce_map(&hn, h.schema, other.schema);
        h.schema = other.schema;
    } else if other.schema > h.schema {
        op = reduce_map(&op, other.schema, h.schema);
        on = reduce_map(&on, other.schema, h.schema);
    }
    let schema = h.schema;
    let threshold = h.zero_threshold;
    for (target, src) in [(&mut hp, op), (&mut hn, on)] {
        for (i, c) in src {
            // Buckets inside the zero bucket are in its count already.
            if exponential_bound(i, schema) <= threshold {
                continue;
            }
            *target.entry(i).or_insert(0.0) += sign * c;
        }
    }
    (h.positive_spans, h.positive_buckets) = from_map(&hp);
    (h.negative_spans, h.negative_buckets) = from_map(&hn);
    Ok(notes)
}

/// A running histogram sum with Kahan compensation (Prometheus's
/// `KahanAdd`), so that e.g. `1e100 + x - 1e100` keeps `x`.
#[derive(Clone)]
pub(crate) struct KahanSum {
    sum: Hist,
    zero: f64,
    count: f64,
    total: f64,
    pos: BTreeMap<i64, f64>,
    neg: BTreeMap<i64, f64>,
}

impl KahanSum {
    pub fn new(h: Hist) -> KahanSum {
        KahanSum {
            sum: h,
            zero: 0.0,
            count: 0.0,
            total: 0.0,
            pos: BTreeMap::new(),
            neg: BTreeMap::new(),
        }
    }

    /// Folds the compensation into the sum (before a layout change the
    /// compensation cannot follow).
    fn flush(&mut self) {
        let c = Hist {
            counter_reset_hint: self.sum.counter_reset_hint,
            schema: self.sum.schema,
            zero_threshold: self.sum.zero_threshold,
            zero_count: self.zero,
            count: self.count,
            sum: self.total,
            positive_spans: Vec::new(),
            negative_spans: Vec::new(),
            positive_buckets: Vec::new(),
            negative_buckets: Vec::new(),
            custom_values: self.sum.custom_values.clone(),
        };
        let mut c = c;
        (c.positive_spans, c.positive_buckets) = from_map(&self.pos);
        (c.negative_spans, c.negative_buckets) = from_map(&self.neg);
        // Same layout, schema and threshold: a plain addition.
        let _ = add(&mut self.sum, &c, false);
        self.zero = 0.0;
        self.count = 0.0;
        self.total = 0.0;
        self.pos.clear();
        self.neg.clear();
    }

    pub fn add(&mut self, other: &Hist) -> Result<AddNotes, MixedSchemas> {
        if is_custom(&self.sum) != is_custom(other) {
            return Err(MixedSchemas);
        }
        let layout_change = if is_custom(other) {
            !bounds_match(&self.sum.custom_values, &other.custom_values)
        } else {
            self.sum.zero_threshold != other.zero_threshold
        };
        if layout_change {
            self.flush();
            return add(&mut self.sum, other, false);
        }
        let notes = AddNotes {
            collision: adjust_hint(&mut self.sum, other),
            reconciled: false,
        };
        let h = &mut self.sum;
        let kahan = crate::functions::kahan_inc;
        (h.count, self.count) = kahan(other.count, h.count, self.count);
        (h.sum, self.total) = kahan(other.sum, h.sum, self.total);
        let mut hp = to_map(&h.positive_spans, &h.positive_buckets);
        let mut hn = to_map(&h.negative_spans, &h.negative_buckets);
        let mut op = to_map(&other.positive_spans, &other.positive_buckets);
        let mut on = to_map(&other.negative_spans, &other.negative_buckets);
        if !is_custom(h) {
            (h.zero_count, self.zero) = kahan(other.zero_count, h.zero_count, self.zero);
            if other.schema < h.schema {
                hp = reduce_map(&hp, h.schema, other.schema);
                hn = reduce_map(&hn, h.schema, other.schema);
                self.pos = reduce_map(&self.pos, h.schema, other.schema);
                self.neg = reduce_map(&self.neg, h.schema, other.schema);
                h.schema = other.schema;
            } else if other.schema > h.schema {
                op = reduce_map(&op, other.schema, h.schema);
                on = reduce_map(&on, other.schema, h.schema);
            }
        }
        let schema = h.schema;
        let threshold = h.zero_threshold;
        let custom = is_custom(h);
        for (target, comp, src) in [(&mut hp, &mut self.pos, op), (&mut hn, &mut self.neg, on)] {
            for (i, x) in src {
                if !custom && exponential_bound(i, schema) <= threshold {
                    continue;
                }
                let s = target.entry(i).or_insert(0.0);
                let c = comp.entry(i).or_insert(0.0);
                (*s, *c) = kahan(x, *s, *c);
            }
        }
        (h.positive_spans, h.positive_buckets) = from_map_keep(&hp);
        (h.negative_spans, h.negative_buckets) = from_map_keep(&hn);
        Ok(notes)
    }

    /// Scales the sum and its compensation.
    fn scale(&mut self, factor: f64) {
        mul(&mut self.sum, factor);
        self.zero *= factor;
        self.count *= factor;
        self.total *= factor;
        for v in self.pos.values_mut().chain(self.neg.values_mut()) {
            *v *= factor;
        }
    }

    /// The sum with its compensation added.
    pub fn finish(mut self) -> Hist {
        self.flush();
        compact(&mut self.sum);
        self.sum
    }

    /// Whether the running sum overflowed.
    pub fn overflowed(&self) -> bool {
        let h = &self.sum;
        h.count.is_infinite()
            || h.sum.is_infinite()
            || h.zero_count.is_infinite()
            || h.positive_buckets
                .iter()
                .chain(&h.negative_buckets)
                .any(|b| b.is_infinite())
    }
}

/// The sum or mean of histograms as `sum`/`avg` and `sum_over_time`/
/// `avg_over_time` compute it: Kahan summation, and for a mean whose sum
/// would overflow, Prometheus's switch to an incremental mean.
pub(crate) struct HistAcc {
    sum: Option<KahanSum>,
    mean: Option<KahanSum>,
    n: f64,
    avg: bool,
}

impl HistAcc {
    pub fn new(avg: bool) -> HistAcc {
        HistAcc {
            sum: None,
            mean: None,
            n: 0.0,
            avg,
        }
    }

    fn mean_step(m: &mut KahanSum, h: &Hist, n: f64) -> Result<AddNotes, MixedSchemas> {
        m.scale((n - 1.0) / n);
        let mut t = h.clone();
        div(&mut t, n);
        m.add(&t)
    }

    pub fn add(&mut self, h: &Hist) -> Result<AddNotes, MixedSchemas> {
        self.n += 1.0;
        let n = self.n;
        if let Some(m) = &mut self.mean {
            return Self::mean_step(m, h, n);
        }
        let Some(s) = &mut self.sum else {
            self.sum = Some(KahanSum::new(h.clone()));
            return Ok(AddNotes::default());
        };
        if !self.avg {
            return s.add(h);
        }
        let mut v = s.clone();
        let notes = v.add(h)?;
        if !v.overflowed() {
            *s = v;
            return Ok(notes);
        }
        let mut m = s.clone();
        m.scale(1.0 / (n - 1.0));
        let notes = Self::mean_step(&mut m, h, n)?;
        self.mean = Some(m);
        Ok(notes)
    }

    pub fn finish(self) -> Option<Hist> {
        if let Some(m) = self.mean {
            return Some(m.finish());
        }
        let mut h = self.sum?.finish();
        if self.avg {
            div(&mut h, self.n);
        }
        compact(&mut h);
        Some(h)
    }
}

/// `h * factor`; a negative factor makes it a gauge.
pub(crate) fn mul(h: &mut Hist, factor: f64) {
    h.zero_count *= factor;
    h.count *= factor;
    h.sum *= factor;
    for b in h
        .positive_buckets
        .iter_mut()
        .chain(h.negative_buckets.iter_mut())
    {
        *b *= factor;
    }
    if factor < 0.0 {
        h.counter_reset_hint = CounterResetHint::Gauge;
    }
}

/// `h / divisor`; dividing by zero removes the buckets.
pub(crate) fn div(h: &mut Hist, divisor: f64) {
    h.zero_count /= divisor;
    h.count /= divisor;
    h.sum /= divisor;
    if divisor == 0.0 {
        h.positive_buckets.clear();
        h.negative_buckets.clear();
        h.positive_spans.clear();
        h.negative_spans.clear();
        return;
    }
    for b in h
        .positive_buckets
        .iter_mut()
        .chain(h.negative_buckets.iter_mut())
    {
        *b /= divisor;
    }
    if divisor < 0.0 {
        h.counter_reset_hint = CounterResetHint::Gauge;
    }
}

/// Prometheus's `Equals`: the same layout and bit-identical values.
pub(crate) fn equals(a: &Hist, b: &Hist) -> bool {
    let bits = |x: f64| x.to_bits();
    if a.schema != b.schema || bits(a.count) != bits(b.count) || bits(a.sum) != bits(b.sum) {
        return false;
    }
    if is_custom(a) {
        if !bounds_match(&a.custom_values, &b.custom_values) {
            return false;
        }
    } else if bits(a.zero_threshold) != bits(b.zero_threshold)
        || bits(a.zero_count) != bits(b.zero_count)
    {
        return false;
    }
    let same = |sa: &[Span], ba: &[f64], sb: &[Span], bb: &[f64]| {
        let ia: Vec<i64> = bucket_indexes(sa).collect();
        let ib: Vec<i64> = bucket_indexes(sb).collect();
        ia == ib && ba.len() == bb.len() && ba.iter().zip(bb).all(|(x, y)| bits(*x) == bits(*y))
    };
    same(
        &a.positive_spans,
        &a.positive_buckets,
        &b.positive_spans,
        &b.positive_buckets,
    ) && same(
        &a.negative_spans,
        &a.negative_buckets,
        &b.negative_spans,
        &b.negative_buckets,
    )
}

/// Prometheus's `DetectReset`: whether `h`, following `prev`, shows a
/// counter reset.
pub(crate) fn detect_reset(h: &Hist, prev: &Hist) -> bool {
    match h.counter_reset_hint {
        CounterResetHint::CounterReset => return true,
        CounterResetHint::NotCounterReset => return false,
        _ => {}
    }
    if h.count < prev.count {
        return true;
    }
    if is_custom(h) != is_custom(prev) {
        return true;
    }
    if h.same_layout(prev) {
        return h.zero_count < prev.zero_count
            || h.positive_buckets
                .iter()
                .zip(&prev.positive_buckets)
                .chain(h.negative_buckets.iter().zip(&prev.negative_buckets))
                .any(|(now, before)| now < before);
    }
    if is_custom(h) {
        let hp = to_map(&h.positive_spans, &h.positive_buckets);
        let pp = to_map(&prev.positive_spans, &prev.positive_buckets);
        if bounds_match(&h.custom_values, &prev.custom_values) {
            return map_reset(&hp, &pp);
        }
        let target = intersect_bounds(&h.custom_values, &prev.custom_values);
        return map_reset(
            &map_custom(&hp, &h.custom_values, &target),
            &map_custom(&pp, &prev.custom_values, &target),
        );
    }
    if h.schema > prev.schema || h.zero_threshold < prev.zero_threshold {
        return true;
    }
    let (prev_zero, threshold) = zero_count_for_threshold(prev, h.zero_threshold);
    if threshold != h.zero_threshold || h.zero_count < prev_zero {
        return true;
    }
    let outside = |m: BTreeMap<i64, f64>, schema: i32| -> BTreeMap<i64, f64> {
        let mut m = reduce_map(&m, schema, h.schema);
        m.retain(|&i, _| exponential_bound(i, h.schema) > threshold);
        m
    };
    for (hs, hb, ps, pb) in [
        (
            &h.positive_spans,
            &h.positive_buckets,
            &prev.positive_spans,
            &prev.positive_buckets,
        ),
        (
            &h.negative_spans,
            &h.negative_buckets,
            &prev.negative_spans,
            &prev.negative_buckets,
        ),
    ] {
        let cur = outside(to_map(hs, hb), h.schema);
        let before = outside(to_map(ps, pb), prev.schema);
        if map_reset(&cur, &before) {
            return true;
        }
    }
    false
}

fn map_reset(cur: &BTreeMap<i64, f64>, prev: &BTreeMap<i64, f64>) -> bool {
    prev.iter()
        .any(|(i, &c)| c != 0.0 && cur.get(i).is_none_or(|&now| now < c))
}

/// One bucket as the quantile and fraction estimates see it.
#[derive(Clone, Copy, Debug)]
struct B {
    lower: f64,
    upper: f64,
    count: f64,
}

/// All buckets in ascending order (Prometheus's `AllBucketIterator`): the
/// negative ones, the zero bucket when populated, the positive ones;
/// bucket edges inside the zero bucket are clipped to it.
fn all_buckets(h: &Hist) -> Vec<B> {
    let mut out = Vec::new();
    let t = h.zero_threshold;
    if is_custom(h) {
        for (i, c) in bucket_indexes(&h.positive_spans).zip(h.positive_buckets.iter().copied()) {
            let bound = |i: i64| -> f64 {
                if i < 0 {
                    f64::NEG_INFINITY
                } else {
                    h.custom_values
                        .get(i as usize)
                        .copied()
                        .unwrap_or(f64::INFINITY)
                }
            };
            out.push(B {
                lower: bound(i - 1),
                upper: bound(i),
                count: c,
            });
        }
        return out;
    }
    let neg: Vec<(i64, f64)> = bucket_indexes(&h.negative_spans)
        .zip(h.negative_buckets.iter().copied())
        .collect();
    for &(i, c) in neg.iter().rev() {
        let mut b = B {
            lower: -exponential_bound(i, h.schema),
            upper: -exponential_bound(i - 1, h.schema),
            count: c,
        };
        if b.upper < 0.0 && b.upper > -t {
            b.upper = -t;
        }
        out.push(b);
    }
    if h.zero_count > 0.0 {
        out.push(B {
            lower: -t,
            upper: t,
            count: h.zero_count,
        });
    }
    for (i, c) in bucket_indexes(&h.positive_spans).zip(h.positive_buckets.iter().copied()) {
        let mut b = B {
            lower: exponential_bound(i - 1, h.schema),
            upper: exponential_bound(i, h.schema),
            count: c,
        };
        if b.lower > 0.0 && b.lower < t {
            b.lower = t;
        }
        out.push(b);
    }
    out
}

/// Notes from the quantile and fraction estimates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum NanNote {
    #[default]
    None,
    /// The result is NaN because of NaN observations.
    NanResult,
    /// NaN observations skew the result higher.
    Skew,
}

/// Prometheus's `HistogramQuantile` for a native histogram.
pub(crate) fn quantile(q: f64, h: &Hist) -> (f64, NanNote) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, NanNote::None);
    }
    if q > 1.0 {
        return (f64::INFINITY, NanNote::None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, NanNote::None);
    }
    let mut buckets = all_buckets(h);
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward {
        q * h.count
    } else {
        buckets.reverse();
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut pos = buckets.len();
    let mut bucket = B {
        lower: 0.0,
        upper: 0.0,
        count: 0.0,
    };
    for (k, b) in buckets.iter().enumerate() {
        bucket = *b;
        pos = k + 1;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    if !is_custom(h) && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if is_custom(h) {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, NanNote::None);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, NanNote::None);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            return (f64::NAN, NanNote::NanResult);
        }
        return (bucket.upper, NanNote::None);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut note = NanNote::None;
    if h.sum.is_nan() {
        for b in &buckets[pos.min(buckets.len())..] {
            count += b.count;
        }
        if count < h.count {
            note = NanNote::Skew;
        }
    }
    let fraction = rank / bucket.count;
    if is_custom(h) || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (
            bucket.lower + (bucket.upper - bucket.lower) * fraction,
            note,
        );
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            note,
        );
    }
    (
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
        note,
    )
}

fn fraction_below(b: &B, v: f64, linear: bool) -> f64 {
    if linear {
        return (v - b.lower) / (b.upper - b.lower);
    }
    let log_lower = b.lower.abs().log2();
    let log_upper = b.upper.abs().log2();
    let log_v = v.abs().log2();
    if v > 0.0 {
        return (log_v - log_lower) / (log_upper - log_lower);
    }
    1.0 - ((log_v - log_upper) / (log_lower - log_upper))
}

/// Prometheus's `HistogramFraction`; the flag says NaN observations were
/// left out.
pub(crate) fn fraction(lower: f64, upper: f64, h: &Hist) -> (f64, bool) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, false);
    }
    if lower >= upper {
        return (0.0, false);
    }
    let buckets = all_buckets(h);
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut pos = buckets.len();
    for (k, b0) in buckets.iter().enumerate() {
        pos = k + 1;
        let mut b = *b0;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = is_custom(h) || zero_bucket;
        let interpolate = |v: f64| -> f64 {
            if linear && b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * fraction_below(&b, v, linear)
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut nan_note = false;
    if h.sum.is_nan() {
        for b in &buckets[pos.min(buckets.len())..] {
            count += b.count;
        }
        if count < h.count {
            nan_note = true;
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, nan_note)
}

/// The variance estimate of `histogram_stdvar`: each bucket's count at
/// its (geometric, for exponential buckets) mean.
pub(crate) fn variance(h: &Hist) -> f64 {
    let mean = h.sum / h.count;
    let (mut v, mut c) = (0.0, 0.0);
    for b in all_buckets(h) {
        if b.count == 0.0 {
            continue;
        }
        let val = if is_custom(h) {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -g } else { g }
        };
        let d = val - mean;
        (v, c) = crate::functions::kahan_inc(b.count * d * d, v, c);
    }
    (v + c) / h.count
}

/// A bucket as the trim operators see it (Prometheus's positive and
/// negative bucket iterators: no clipping at the zero threshold).
fn side_buckets(h: &Hist, positive: bool) -> Vec<B> {
    let (spans, counts) = if positive {
        (&h.positive_spans, &h.positive_buckets)
    } else {
        (&h.negative_spans, &h.negative_buckets)
    };
    bucket_indexes(spans)
        .zip(counts.iter().copied())
        .map(|(i, count)| {
            if is_custom(h) {
                let bound = |i: i64| -> f64 {
                    if i < 0 {
                        f64::NEG_INFINITY
                    } else {
                        h.custom_values
                            .get(i as usize)
                            .copied()
                            .unwrap_or(f64::INFINITY)
                    }
                };
                B {
                    lower: bound(i - 1),
                    upper: bound(i),
                    count,
                }
            } else if positive {
                B {
                    lower: exponential_bound(i - 1, h.schema),
                    upper: exponential_bound(i, h.schema),
                    count,
                }
            } else {
                B {
                    lower: -exponential_bound(i, h.schema),
                    upper: -exponential_bound(i - 1, h.schema),
                    count,
                }
            }
        })
        .collect()
}

fn zero_if_inf(x: f64) -> f64 {
    if x.is_infinite() { 0.0 } else { x }
}

fn trim_infinite(upper_trim: bool, b: &B, rhs: f64) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY {
        if upper_trim {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper != f64::INFINITY {
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, zero_if_inf(b.upper));
        }
        if rhs <= b.lower {
            return (b.count, 0.0);
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper != f64::INFINITY {
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, zero_if_inf(b.upper));
    }
    // The upper bound is +Inf.
    if upper_trim {
        return (0.0, zero_if_inf(b.lower));
    }
    if rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, zero_if_inf(b.lower))
}

fn midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        if upper > 0.0 {
            return upper / 2.0;
        }
        return upper;
    } else if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let g = (lower * upper).abs().sqrt();
    if positive { g } else { -g }
}

fn bucket_trim(b: &B, rhs: f64, upper_trim: bool, positive: bool, custom: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return trim_infinite(upper_trim, b, rhs);
    }
    let under = if rhs <= b.lower {
        0.0
    } else if rhs >= b.upper {
        b.count
    } else {
        b.count * fraction_below(b, rhs, custom)
    };
    if upper_trim {
        (under, midpoint(b.lower, rhs, positive, custom))
    } else {
        (b.count - under, midpoint(rhs, b.upper, positive, custom))
    }
}

fn zero_trim(h: &Hist, rhs: f64, has_neg: bool, has_pos: bool, upper_trim: bool) -> (f64, f64) {
    let (mut lower, mut upper) = (-h.zero_threshold, h.zero_threshold);
    if has_neg && !has_pos {
        upper = 0.0;
    }
    if has_pos && !has_neg {
        lower = 0.0;
    }
    let count = h.zero_count;
    if upper_trim {
        if rhs <= lower {
            return (0.0, 0.0);
        }
        if rhs >= upper {
            return (count, (lower + upper) / 2.0);
        }
        (count * (rhs - lower) / (upper - lower), (lower + rhs) / 2.0)
    } else {
        if rhs <= lower {
            return (count, (lower + upper) / 2.0);
        }
        if rhs >= upper {
            return (0.0, 0.0);
        }
        (count * (upper - rhs) / (upper - lower), (rhs + upper) / 2.0)
    }
}

/// The trim operators (Prometheus's `TrimBuckets`): `h </ rhs` keeps the
/// observations below `rhs`, `h >/ rhs` those above, interpolating inside
/// the bucket `rhs` falls in; count and sum are re-estimated from the
/// buckets when anything was trimmed.
pub(crate) fn trim(h: &mut Hist, rhs: f64, upper_trim: bool) {
    let custom = is_custom(h);
    let (mut count, mut sum) = (0.0, 0.0);
    let mut trimmed = false;
    let (mut has_pos, mut has_neg) = (false, false);
    for positive in [true, false] {
        let buckets = side_buckets(h, positive);
        let counts = if positive {
            &mut h.positive_buckets
        } else {
            &mut h.negative_buckets
        };
        for (i, b) in buckets.iter().enumerate() {
            if b.count == 0.0 {
                continue;
            }
            if positive {
                has_pos = true;
            } else {
                has_neg = true;
            }
            let keep_all = if upper_trim {
                b.upper <= rhs
            } else {
                b.lower >= rhs
            };
            let partial = if upper_trim {
                b.lower < rhs
            } else {
                b.upper > rhs
            };
            if keep_all {
                count += b.count;
                sum += midpoint(b.lower, b.upper, positive, custom) * b.count;
            } else if partial {
                let (keep, mid) = bucket_trim(b, rhs, upper_trim, positive, custom);
                count += keep;
                sum += mid * keep;
                if counts[i] != keep {
                    counts[i] = keep;
                    trimmed = true;
                }
            } else {
                counts[i] = 0.0;
                trimmed = true;
            }
        }
    }
    if h.zero_count > 0.0 {
        let (keep, mid) = zero_trim(h, rhs, has_neg, has_pos, upper_trim);
        if h.zero_count != keep {
            h.zero_count = keep;
            trimmed = true;
        }
        sum += mid * keep;
        count += keep;
    }
    if trimmed {
        h.count = count;
        h.sum = sum;
        compact(h);
    }
}

/// Prometheus's `FloatHistogram.String()`: count, sum and every populated
/// bucket in interval notation (the value `count_values` reports for a
/// histogram).
pub(crate) fn to_string(h: &Hist) -> String {
    let g = crate::functions::go_float;
    let mut out = format!("{{count:{}, sum:{}", g(h.count), g(h.sum));
    let interval = |b: &B, lower_incl: bool, upper_incl: bool| {
        format!(
            ", {}{},{}{}:{}",
            if lower_incl { '[' } else { '(' },
            g(b.lower),
            g(b.upper),
            if upper_incl { ']' } else { ')' },
            g(b.count)
        )
    };
    for b in side_buckets(h, false).iter().rev() {
        if b.count != 0.0 {
            out.push_str(&interval(b, true, false));
        }
    }
    if h.zero_count != 0.0 {
        let z = B {
            lower: -h.zero_threshold,
            upper: h.zero_threshold,
            count: h.zero_count,
        };
        out.push_str(&interval(&z, true, true));
    }
    for b in side_buckets(h, true) {
        if b.count != 0.0 {
            out.push_str(&interval(&b, false, true));
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, offset: i32, buckets: &[f64]) -> Hist {
        Hist {
            schema,
            count: buckets.iter().sum(),
            positive_spans: vec![Span {
                offset,
                length: buckets.len() as u32,
            }],
            positive_buckets: buckets.to_vec(),
            ..Hist::default()
        }
    }

    #[test]
    fn add_reduces_to_the_lower_schema() {
        let mut a = h(1, 0, &[1.0, 2.0, 3.0, 4.0]);
        let b = h(0, 0, &[1.0, 1.0]);
        add(&mut a, &b, false).unwrap();
        assert_eq!(a.schema, 0);
        // Schema 1 indexes 0,1,2,3 go to schema 0 indexes 0,1,1,2.
        assert_eq!(
            to_map(&a.positive_spans, &a.positive_buckets)
                .into_iter()
                .collect::<Vec<_>>(),
            vec![(0, 2.0), (1, 6.0), (2, 4.0)]
        );
        assert_eq!(a.count, 12.0);
    }

    #[test]
    fn custom_bounds_are_intersected() {
        let mut a = h(CUSTOM_BUCKETS_SCHEMA, 0, &[1.0, 1.0, 1.0]);
        a.custom_values = vec![1.0, 2.0];
        let mut b = h(CUSTOM_BUCKETS_SCHEMA, 0, &[1.0, 1.0]);
        b.custom_values = vec![2.0];
        let notes = add(&mut a, &b, false).unwrap();
        assert!(notes.reconciled);
        assert_eq!(a.custom_values, vec![2.0]);
        assert_eq!(a.positive_buckets, vec![3.0, 2.0]);
    }
}
