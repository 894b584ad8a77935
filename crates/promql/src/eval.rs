//! The evaluator: walks the AST and computes each node over all steps.
//!
//! Every node is evaluated for the whole list of step times at once.
//! Selectors read storage through `model::storage` only, one querier per
//! selector with exactly the time range that selector needs, and hand
//! series one by one to a sink, so an aggregation over a selector never
//! holds all input series.

use crate::QueryError;
use crate::ast::{At, Expr, MatrixSelector, Subquery, ValueType, VectorSelector};
use crate::engine::QueryErrorKind;
use crate::hist::Hist;
use crate::value::{RangeSeries, StepSeries, Val};
use model::storage::{Aggregate, Queryable, SampleIter, SelectHints};
use std::cell::{Cell, RefCell};
use std::time::Instant;

/// The step times of an evaluation: `start + i * step` for `i < n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Steps {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Steps {
    pub fn new(start: i64, end: i64, step: i64) -> Steps {
        let step = step.max(1);
        let n = if end < start {
            0
        } else {
            ((end as i128 - start as i128) / step as i128 + 1) as usize
        };
        Steps { start, step, n }
    }

    pub fn time(&self, i: usize) -> i64 {
        self.start
            .saturating_add((i as i64).saturating_mul(self.step))
    }
}

/// Default subquery step when none is written (`[10m:]`): Prometheus uses
/// the global evaluation interval, one minute by default.
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Per-query evaluation state.
pub(crate) struct Ctx<'a> {
    pub(crate) storage: &'a dyn Queryable,
    /// The query text, to place annotations.
    query_text: &'a str,
    pub lookback: i64,
    /// The query's own start and end, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    deadline: Instant,
    max_samples: usize,
    total_samples: Cell<u64>,
    current_samples: Cell<usize>,
    peak_samples: Cell<usize>,
    warnings: RefCell<Vec<String>>,
    infos: RefCell<Vec<String>>,
    checks: Cell<u32>,
    /// `max_source_resolution`: see [`crate::QueryOptions`].
    max_source_resolution_ms: Cell<Option<i64>>,
    /// Inside `histogram_count`/`histogram_sum`/`histogram_avg` (and no
    /// function needing buckets in between): selectors give counter-reset
    /// hints as Prometheus's `HistogramStatsIterator` does.
    pub(crate) hist_stats: Cell<bool>,
    /// How many subqueries the evaluation is inside.
    pub(crate) subquery_depth: Cell<u32>,
}

/// A range-vector argument: its series and, per step, the window end
/// (the reference time, inclusive) and the window length.
pub(crate) struct RangeArg {
    pub refs: Vec<i64>,
    pub range: i64,
    /// 0 for raw samples; otherwise the series hold the hinted aggregate
    /// of a downsampled tier with windows this long (ms).
    pub resolution_ms: i64,
    /// `anchored` or `smoothed`: how much further (ms) the samples reach
    /// before each window (and after it, smoothed), the lookback delta.
    pub extended: Option<Extended>,
    /// The tier's windows tile each range (`SelectHints::aligned`): each
    /// step reads the window points of `[T - range, T)`, and the series
    /// also hold the last point before the first range (for a rate or
    /// resets).
    pub aligned: bool,
}

/// The largest duration (ms) dividing `range` and every reference time:
/// a tier whose resolution divides it has windows that tile each range.
/// 0 when `range` is 0.
fn align_of(refs: &[i64], range: i64) -> i64 {
    fn gcd(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    let mut g = range.unsigned_abs();
    for r in refs {
        if g <= 1 {
            break;
        }
        g = gcd(g, r.unsigned_abs());
    }
    i64::try_from(g).unwrap_or(0)
}

/// An `anchored` or `smoothed` range selector's reach.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extended {
    pub smoothed: bool,
    pub lookback: i64,
}

impl<'a> Ctx<'a> {
    pub fn new(
        storage: &'a dyn Queryable,
        query_text: &'a str,
        lookback: i64,
        query_start: i64,
        query_end: i64,
        deadline: Instant,
        max_samples: usize,
    ) -> Ctx<'a> {
        Ctx {
            storage,
            query_text,
            lookback,
            query_start,
            query_end,
            deadline,
            max_samples,
            total_samples: Cell::new(0),
            current_samples: Cell::new(0),
            peak_samples: Cell::new(0),
            warnings: RefCell::new(Vec::new()),
            infos: RefCell::new(Vec::new()),
            checks: Cell::new(0),
            max_source_resolution_ms: Cell::new(None),
            hist_stats: Cell::new(false),
            subquery_depth: Cell::new(0),
        }
    }

    pub fn set_max_source_resolution(&self, ms: Option<i64>) {
        self.max_source_resolution_ms.set(ms);
    }

    /// The hints for a selector evaluated at `steps` over `range_ms`.
    fn hints(&self, steps: &Steps, range_ms: i64, aggregate: Aggregate) -> SelectHints {
        SelectHints {
            step_ms: if steps.n > 1 { steps.step } else { 0 },
            range_ms,
            aggregate,
            max_resolution_ms: self.max_source_resolution_ms.get(),
            align_ms: 0,
        }
    }

    pub fn finish(&self) -> (Vec<String>, Vec<String>, u64, usize) {
        (
            self.warnings.take(),
            self.infos.take(),
            self.total_samples.get(),
            self.peak_samples.get(),
        )
    }

    pub fn warn(&self, message: String) {
        let text = format!("PromQL warning: {message}");
        let mut w = self.warnings.borrow_mut();
        if !w.contains(&text) {
            w.push(text);
        }
    }

    /// A warning placed at the first occurrence of `token` in the query
    /// (line:column, 1-based, byte columns), as Prometheus reports them.
    pub fn warn_at(&self, message: String, token: &str) {
        let position = self.position_of(token);
        self.warn(format!("{message}{position}"));
    }

    /// An info placed at the first occurrence of `token` in the query.
    pub fn info_at(&self, message: String, token: &str) {
        let position = if token.is_empty() {
            String::new()
        } else {
            self.position_of(token)
        };
        self.info(format!("{message}{position}"));
    }

    /// An info placed at argument `arg` of the first call of `func`.
    pub fn info_at_arg(&self, message: String, func: &str, arg: usize) {
        let position = self.arg_position(func, arg);
        self.info(format!("{message}{position}"));
    }

    /// A warning placed at argument `arg` of the first call of `func`.
    pub fn warn_at_arg(&self, message: String, func: &str, arg: usize) {
        let position = self.arg_position(func, arg);
        self.warn(format!("{message}{position}"));
    }

    fn arg_position(&self, func: &str, arg: usize) -> String {
        let q = self.query_text.as_bytes();
        let mut from = 0;
        while let Some(found) = self.query_text[from..].find(func) {
            let at = from + found;
            from = at + func.len();
            let before_ok = at == 0 || !(q[at - 1].is_ascii_alphanumeric() || q[at - 1] == b'_');
            let mut i = at + func.len();
            if !before_ok || (i < q.len() && (q[i].is_ascii_alphanumeric() || q[i] == b'_')) {
                continue;
            }
            let skip_ws = |mut i: usize| {
                while i < q.len() && q[i].is_ascii_whitespace() {
                    i += 1;
                }
                i
            };
            i = skip_ws(i);
            // An aggregation's `by (…)`/`without (…)` before the arguments.
            for kw in ["by", "without"] {
                if self.query_text[i..].to_ascii_lowercase().starts_with(kw) {
                    i = skip_ws(i + kw.len());
                    if i < q.len() && q[i] == b'(' {
                        while i < q.len() && q[i] != b')' {
                            i += 1;
                        }
                        i = skip_ws(i + 1);
                    }
                }
            }
            if i >= q.len() || q[i] != b'(' {
                continue;
            }
            i += 1;
            let mut depth = 0i32;
            let mut index = 0;
            let mut quote: Option<u8> = None;
            i = skip_ws(i);
            let mut start = i;
            while i < q.len() {
                let c = q[i];
                if let Some(qc) = quote {
                    if c == b'\\' {
                        i += 1;
                    } else if c == qc {
                        quote = None;
                    }
                } else {
                    match c {
                        b'"' | b'\'' | b'`' => quote = Some(c),
                        b'(' | b'[' | b'{' => depth += 1,
                        b')' | b']' | b'}' => {
                            if depth == 0 {
                                break;
                            }
                            depth -= 1;
                        }
                        b',' if depth == 0 => {
                            if index == arg {
                                break;
                            }
                            index += 1;
                            start = skip_ws(i + 1);
                        }
                        _ => {}
                    }
                }
                if index == arg && i >= start {
                    return self.position_at(start);
                }
                i += 1;
            }
            if index == arg {
                return self.position_at(start);
            }
        }
        String::new()
    }

    fn position_at(&self, offset: usize) -> String {
        let before = &self.query_text[..offset.min(self.query_text.len())];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        format!(" ({line}:{column})")
    }

    fn position_of(&self, token: &str) -> String {
        let Some(offset) = self.query_text.find(token) else {
            return String::new();
        };
        let before = &self.query_text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        format!(" ({line}:{column})")
    }

    pub fn info(&self, message: String) {
        let text = format!("PromQL info: {message}");
        let mut w = self.infos.borrow_mut();
        if !w.contains(&text) {
            w.push(text);
        }
    }

    /// Fails once the deadline has passed. Cheap enough for inner loops:
    /// it reads the clock only every 64th call.
    pub fn check_deadline(&self) -> Result<(), QueryError> {
        let n = self.checks.get().wrapping_add(1);
        self.checks.set(n);
        if (n == 1 || n.is_multiple_of(64)) && Instant::now() >= self.deadline {
            return Err(QueryError::new(
                QueryErrorKind::Timeout,
                "query timed out in expression evaluation",
            ));
        }
        Ok(())
    }

    /// Accounts for `n` samples now held in memory.
    pub fn take_samples(&self, n: usize) -> Result<(), QueryError> {
        self.total_samples
            .set(self.total_samples.get().saturating_add(n as u64));
        let current = self.current_samples.get().saturating_add(n);
        self.current_samples.set(current);
        if current > self.peak_samples.get() {
            self.peak_samples.set(current);
        }
        if current > self.max_samples {
            return Err(QueryError::too_many_samples());
        }
        Ok(())
    }

    /// Accounts for `n` samples released.
    pub fn release_samples(&self, n: usize) {
        self.current_samples
            .set(self.current_samples.get().saturating_sub(n));
    }

    fn resolve_at(&self, at: Option<At>) -> Option<i64> {
        at.map(|a| match a {
            At::Time(t) => t,
            At::Start => self.query_start,
            At::End => self.query_end,
        })
    }

    /// Reference times per step for a selector with `offset` and `@`.
    pub fn ref_times(&self, steps: &Steps, at: Option<At>, offset: i64) -> Vec<i64> {
        let at = self.resolve_at(at);
        (0..steps.n)
            .map(|i| at.unwrap_or_else(|| steps.time(i)).saturating_sub(offset))
            .collect()
    }

    /// The evaluation time per step as range functions see it (`@` wins).
    pub fn eval_times(&self, steps: &Steps, at: Option<At>) -> Vec<i64> {
        let at = self.resolve_at(at);
        (0..steps.n)
            .map(|i| at.unwrap_or_else(|| steps.time(i)))
            .collect()
    }

    /// Evaluates `f` with the histogram-statistics mode set to `on`.
    pub(crate) fn with_hist_stats<T>(&self, on: bool, f: impl FnOnce() -> T) -> T {
        let old = self.hist_stats.replace(on);
        let out = f();
        self.hist_stats.set(old);
        out
    }

    /// Counter-reset hints as Prometheus's storage hands them out: a
    /// histogram that continues the previous one (same layout, no reset)
    /// reads "not reset", others keep their stored hint. The window's
    /// first histogram keeps the hint storage gave it: its chunk header's
    /// (tsdb keeps "not reset" there when the chunk continues the one
    /// before) or "not reset" inside a chunk. Under
    /// `histogram_count`/`_sum`/`_avg` the statistics iterator's rule
    /// follows: an unknown hint becomes "reset" or "not reset" by
    /// comparison with the previous histogram read.
    fn storage_hints(&self, floats: &[(i64, f64)], hists: &mut [(i64, Hist)]) {
        use model::histogram::CounterResetHint::*;
        if hists.is_empty() {
            return;
        }
        let stats = self.hist_stats.get() && self.subquery_depth.get() == 0;
        let float_before = |t: i64| floats.partition_point(|(ft, _)| *ft < t);
        let continues = |h: &Hist, p: &Hist| {
            h.schema == p.schema
                && h.zero_threshold.to_bits() == p.zero_threshold.to_bits()
                && h.custom_values == p.custom_values
                && !crate::hist::detect_reset(h, p)
        };
        // The previous histogram as the stats iterator saw it.
        let mut last_read: Option<Hist> = None;
        for i in 0..hists.len() {
            let t = hists[i].0;
            // The window's first histogram has no previous one here; nor
            // has one after a float.
            let prev: Option<&Hist> = if i == 0 || float_before(t) > float_before(hists[i - 1].0) {
                None
            } else {
                Some(&hists[i - 1].1)
            };
            let hint = {
                let h = &hists[i].1;
                match (h.counter_reset_hint, prev) {
                    (Unknown, Some(p)) if continues(h, p) => NotCounterReset,
                    (hint, _) => hint,
                }
            };
            hists[i].1.counter_reset_hint = hint;
            if stats {
                let h = &hists[i].1;
                let stat_hint = match (h.counter_reset_hint, &last_read) {
                    (Unknown, Some(l)) => {
                        if crate::hist::detect_reset(h, l) {
                            CounterReset
                        } else {
                            NotCounterReset
                        }
                    }
                    (hint, _) => hint,
                };
                let mut read = hists[i].1.clone();
                read.counter_reset_hint = stat_hint;
                hists[i].1.counter_reset_hint = stat_hint;
                last_read = Some(read);
            }
        }
    }

    /// Evaluates the top-level expression. Instant queries of range-vector
    /// type produce a matrix.
    pub fn eval_top(&self, expr: &Expr, steps: &Steps) -> Result<Val, QueryError> {
        if expr.value_type() == ValueType::Matrix {
            let arg = unwrap_parens(expr);
            // The window at the single step, left-open.
            let refs = self.range_arg_refs(arg, steps)?;
            let (Some(&r), range) = (refs.refs.first(), refs.range) else {
                return Ok(Val::Matrix(Vec::new()));
            };
            let mut out = Vec::new();
            // The result holds every series' samples at once, so they
            // count against max_samples together, as in Prometheus (the
            // selector releases each series' count after its sink).
            self.for_each_range_series(arg, steps, &mut |s, _| {
                let mut s = s.take();
                s.samples.retain(|(t, _)| *t > r - range && *t <= r);
                s.hists.retain(|(t, _)| *t > r - range && *t <= r);
                if s.samples.is_empty() && s.hists.is_empty() {
                    return Ok(());
                }
                self.take_samples(s.samples.len() + s.hists.len())?;
                out.push(s);
                Ok(())
            })?;
            return Ok(Val::Matrix(out));
        }
        self.eval(expr, steps)
    }

    pub fn eval(&self, expr: &Expr, steps: &Steps) -> Result<Val, QueryError> {
        self.check_deadline()?;
        match expr {
            Expr::Number(v) => Ok(Val::Scalar(vec![*v; steps.n])),
            Expr::String(s) => Ok(Val::String(s.clone())),
            Expr::Paren(e) => self.eval(e, steps),
            Expr::Unary { negate, expr } => {
                let v = self.eval(expr, steps)?;
                if !negate {
                    return Ok(v);
                }
                Ok(match v {
                    Val::Scalar(mut s) => {
                        for x in &mut s {
                            *x = -*x;
                        }
                        Val::Scalar(s)
                    }
                    Val::Vector(mut series) => {
                        for s in &mut series {
                            s.drop_name = true;
                            for p in s.points.iter_mut().flatten() {
                                *p = -*p;
                            }
                            for h in s.hists.iter_mut().flatten() {
                                crate::hist::mul(h, -1.0);
                            }
                        }
                        Val::Vector(series)
                    }
                    other => other,
                })
            }
            Expr::VectorSelector(vs) => {
                let mut out = Vec::new();
                self.eval_vector_selector(vs, steps, false, &mut |s| {
                    out.push(s);
                    Ok(())
                })?;
                Ok(Val::Vector(out))
            }
            Expr::MatrixSelector(_) | Expr::Subquery(_) => Err(QueryError::bad_data(
                "range vector cannot be evaluated here; it must be the argument of a function",
            )),
            Expr::Binary(b) => crate::binary::eval_binary(self, b, steps),
            Expr::Aggregate(a) => crate::aggregate::eval_aggregate(self, a, steps),
            Expr::Call(c) => crate::functions::eval_call(self, c, steps, &mut None),
        }
    }

    /// Evaluates an instant-vector expression and hands each series to
    /// `sink`, streaming where the expression allows it.
    pub fn eval_vector_each(
        &self,
        expr: &Expr,
        steps: &Steps,
        sink: &mut dyn FnMut(StepSeries) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        match expr {
            Expr::Paren(e) => self.eval_vector_each(e, steps, sink),
            Expr::VectorSelector(vs) => self.eval_vector_selector(vs, steps, false, sink),
            Expr::Call(c) if crate::functions::streams(c) => {
                crate::functions::eval_call(self, c, steps, &mut Some(sink)).map(|_| ())
            }
            _ => match self.eval(expr, steps)? {
                Val::Vector(series) => {
                    for s in series {
                        sink(s)?;
                    }
                    Ok(())
                }
                _ => Err(QueryError::bad_data("expected an instant vector")),
            },
        }
    }

    /// Evaluates a scalar-typed expression to one value per step.
    pub fn eval_scalar(&self, expr: &Expr, steps: &Steps) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr, steps)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(QueryError::bad_data("expected a scalar")),
        }
    }

    /// Instant-vector selection with lookback. With `timestamps`, the value
    /// of each point is the sample's own timestamp in seconds (for
    /// `timestamp()`).
    pub fn eval_vector_selector(
        &self,
        vs: &VectorSelector,
        steps: &Steps,
        timestamps: bool,
        sink: &mut dyn FnMut(StepSeries) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        if steps.n == 0 {
            return Ok(());
        }
        let refs = self.ref_times(steps, vs.at, vs.offset_ms);
        let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(());
        };
        if vs.smoothed {
            return self.smoothed_vector_selector(vs, &refs, steps, timestamps, sink);
        }
        let mint = min_ref.saturating_sub(self.lookback).saturating_add(1);
        let querier = self
            .storage
            .querier(mint, max_ref)
            .map_err(|e| QueryError::execution(e.to_string()))?;
        // One reference time needs only the newest sample in its window,
        // which storage can give without decoding every sample; under
        // `histogram_count` and friends the statistics iterator's hint of
        // that sample compares it with the one read before it in the
        // window, so the window is read whole. Many may read a downsampled
        // tier's last values. Where the tier's windows line up with the
        // steps (its resolution divides the step and every step time), the
        // window before a step ends at it, and its point is the last sample
        // before the step, at that sample's own time: raw's answer one
        // millisecond earlier, whose lookback window reaches one
        // millisecond further back. Otherwise the window holding the step
        // has a point only after it, and the one before may end up to one
        // resolution earlier: the lookback grows by that much.
        let mut lookback = self.lookback;
        let stats = self.hist_stats.get() && self.subquery_depth.get() == 0;
        // (With `@`, every step has the same reference time.)
        let single = min_ref == max_ref;
        let set = if single && stats {
            querier.select(&vs.matchers)
        } else if single {
            querier.select_latest(&vs.matchers)
        } else {
            let hints = SelectHints {
                align_ms: align_of(&refs, steps.step),
                ..self.hints(steps, 0, Aggregate::Last)
            };
            querier.select_hinted(&vs.matchers, &hints).map(|hinted| {
                if hints.aligned(hinted.resolution_ms) {
                    lookback = lookback.saturating_add(1);
                } else {
                    lookback = lookback.saturating_add(hinted.resolution_ms);
                }
                hinted.series
            })
        }
        .map_err(|e| QueryError::execution(e.to_string()))?;
        let mut spare = Vec::new();
        for series in set {
            self.check_deadline()?;
            let series = series.map_err(|e| QueryError::execution(e.to_string()))?;
            let mut hist_iter = series.histograms.peekable();
            if hist_iter.peek().is_some() {
                let mut hists: Vec<(i64, Hist)> = hist_iter.collect();
                let floats: Vec<(i64, f64)> = series.samples.into_vec();
                self.storage_hints(&floats, &mut hists);
                let mut out = StepSeries {
                    labels: series.labels,
                    drop_name: false,
                    points: vec![None; steps.n],
                    hists: vec![None; steps.n],
                };
                let loaded = floats.len() + hists.len();
                let mut any = false;
                for (i, &r) in refs.iter().enumerate() {
                    let fi = floats.partition_point(|(t, _)| *t <= r);
                    let hi = hists.partition_point(|(t, _)| *t <= r);
                    let f = fi.checked_sub(1).map(|k| floats[k]);
                    let h = hi.checked_sub(1).map(|k| &hists[k]);
                    let use_hist = match (f, h) {
                        (Some((ft, _)), Some((ht, _))) => *ht >= ft,
                        (None, Some(_)) => true,
                        _ => false,
                    };
                    if use_hist {
                        // Histograms are raw samples whatever was read
                        // (no tier keeps them): the usual lookback.
                        if let Some((t, h)) = h
                            && *t > r - self.lookback
                            && !h.is_stale()
                        {
                            any = true;
                            if timestamps {
                                // The timestamp, and the histogram beside
                                // it for callers that must know the kind
                                // (`info()`); `timestamp()` drops it.
                                out.points[i] = Some(*t as f64 / 1000.0);
                            }
                            out.hists[i] = Some(h.clone());
                        }
                    } else if let Some((t, v)) = f
                        && t > r - lookback
                        && !model::is_stale_nan(v)
                    {
                        any = true;
                        out.points[i] = Some(if timestamps { t as f64 / 1000.0 } else { v });
                    }
                }
                self.total_samples
                    .set(self.total_samples.get().saturating_add(loaded as u64));
                if !any {
                    continue;
                }
                self.take_samples(steps.n)?;
                sink(out)?;
                continue;
            }
            // The samples as one slice, walked with the steps.
            let samples = column_of(series.samples, &mut spare);
            let mut points = Vec::with_capacity(steps.n);
            let mut any = false;
            let mut loaded = 0usize;
            for &r in &refs {
                while loaded < samples.len() && samples[loaded].0 <= r {
                    loaded += 1;
                }
                let p = match loaded.checked_sub(1).map(|k| samples[k]) {
                    Some((t, v)) if t > r - lookback && !model::is_stale_nan(v) => {
                        any = true;
                        Some(if timestamps { t as f64 / 1000.0 } else { v })
                    }
                    _ => None,
                };
                points.push(p);
            }
            spare = samples;
            self.total_samples
                .set(self.total_samples.get().saturating_add(loaded as u64));
            if !any {
                continue;
            }
            self.take_samples(steps.n)?;
            sink(StepSeries {
                hists: Vec::new(),
                labels: series.labels,
                drop_name: false,
                points,
            })?;
        }
        Ok(())
    }

    /// A `smoothed` instant selector (Prometheus's `smoothSeries`): at each
    /// step the sample at that time, else the value interpolated between
    /// the samples around it (within a lookback delta either side), else
    /// the last one before it.
    fn smoothed_vector_selector(
        &self,
        vs: &VectorSelector,
        refs: &[i64],
        steps: &Steps,
        timestamps: bool,
        sink: &mut dyn FnMut(StepSeries) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let (Some(&min_ref), Some(&max_ref)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(());
        };
        let lb = self.lookback;
        let mint = min_ref.saturating_sub(lb).saturating_add(1);
        let maxt = max_ref.saturating_add(lb);
        let querier = self
            .storage
            .querier(mint, maxt)
            .map_err(|e| QueryError::execution(e.to_string()))?;
        let set = querier
            .select(&vs.matchers)
            .map_err(|e| QueryError::execution(e.to_string()))?;
        for series in set {
            self.check_deadline()?;
            let series = series.map_err(|e| QueryError::execution(e.to_string()))?;
            let samples: Vec<(i64, f64)> = series
                .samples
                .filter(|(t, v)| *t >= mint && *t <= maxt && !model::is_stale_nan(*v))
                .collect();
            let hists: Vec<(i64, Hist)> = series
                .histograms
                .filter(|(t, h)| *t >= mint && *t <= maxt && !h.is_stale())
                .collect();
            self.total_samples.set(
                self.total_samples
                    .get()
                    .saturating_add((samples.len() + hists.len()) as u64),
            );
            let mut points = Vec::with_capacity(refs.len());
            let mut hist_points: Vec<Option<Hist>> = Vec::new();
            let mut any = false;
            for (step, &r) in refs.iter().enumerate() {
                let lo = samples.partition_point(|(t, _)| *t <= r.saturating_sub(lb));
                let hi = samples.partition_point(|(t, _)| *t <= r.saturating_add(lb));
                let w = &samples[lo..hi.max(lo)];
                let hlo = hists.partition_point(|(t, _)| *t <= r.saturating_sub(lb));
                let hhi = hists.partition_point(|(t, _)| *t <= r.saturating_add(lb));
                let hw = &hists[hlo..hhi.max(hlo)];
                if !hw.is_empty() {
                    points.push(None);
                    if !w.is_empty() {
                        let name = series.labels.metric_name().unwrap_or("");
                        self.warn_at(
                            format!(
                                "encountered a mix of histograms and floats for metric name \"{name}\""
                            ),
                            name,
                        );
                        continue;
                    }
                    let v = smoothed_hist(hw, r).unwrap_or_else(|()| {
                        let name = series.labels.metric_name().unwrap_or("");
                        self.warn_at(
                            format!(
                                "vector contains a mix of histograms with exponential and custom buckets schemas for metric name \"{name}\""
                            ),
                            name,
                        );
                        None
                    });
                    if let Some(h) = v {
                        any = true;
                        if timestamps {
                            points[step] = Some(r as f64 / 1000.0);
                        } else {
                            if hist_points.is_empty() {
                                hist_points = vec![None; refs.len()];
                            }
                            hist_points[step] = Some(h);
                        }
                    }
                    continue;
                }
                let i = w.partition_point(|(t, _)| *t < r);
                let value = if i < w.len() && w[i].0 == r {
                    Some(w[i].1)
                } else if i > 0 && i < w.len() {
                    let ((t1, y1), (t2, y2)) = (w[i - 1], w[i]);
                    Some(y1 + (y2 - y1) * (r - t1) as f64 / (t2 - t1) as f64)
                } else if i > 0 {
                    Some(w[i - 1].1)
                } else {
                    None
                };
                any |= value.is_some();
                points.push(value.map(|v| if timestamps { r as f64 / 1000.0 } else { v }));
            }
            if !any {
                continue;
            }
            self.take_samples(steps.n)?;
            sink(StepSeries {
                hists: hist_points,
                labels: series.labels,
                drop_name: false,
                points,
            })?;
        }
        Ok(())
    }

    /// The reference times and window length of a range-vector argument.
    pub fn range_arg_refs(&self, expr: &Expr, steps: &Steps) -> Result<RangeArg, QueryError> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => Ok(RangeArg {
                refs: self.ref_times(steps, ms.selector.at, ms.selector.offset_ms),
                range: ms.range_ms,
                resolution_ms: 0,
                aligned: false,
                extended: (ms.selector.anchored || ms.selector.smoothed).then_some(Extended {
                    smoothed: ms.selector.smoothed,
                    lookback: self.lookback,
                }),
            }),
            Expr::Subquery(sq) => Ok(RangeArg {
                refs: self.ref_times(steps, sq.at, sq.offset_ms),
                range: sq.range_ms,
                resolution_ms: 0,
                extended: None,
                aligned: false,
            }),
            _ => Err(QueryError::bad_data("expected a range vector")),
        }
    }

    /// Loads each series of a range-vector expression with every sample
    /// that any step's window needs, and hands it to `sink` together with
    /// the per-step windows.
    pub fn for_each_range_series(
        &self,
        expr: &Expr,
        steps: &Steps,
        sink: &mut dyn FnMut(&mut RangeSeries, &RangeArg) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        self.for_each_range_series_hinted(expr, steps, None, sink)
            .map(|_| ())
    }

    /// Like [`Ctx::for_each_range_series`]; a matrix selector with an
    /// `aggregate` may read a downsampled tier. Returns the resolution
    /// used (0: raw samples).
    pub fn for_each_range_series_hinted(
        &self,
        expr: &Expr,
        steps: &Steps,
        aggregate: Option<Aggregate>,
        sink: &mut dyn FnMut(&mut RangeSeries, &RangeArg) -> Result<(), QueryError>,
    ) -> Result<i64, QueryError> {
        let mut arg = self.range_arg_refs(expr, steps)?;
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => {
                // Extended selectors need raw samples around the window.
                let hints = aggregate
                    .filter(|_| arg.extended.is_none())
                    .map(|a| SelectHints {
                        align_ms: align_of(&arg.refs, ms.range_ms),
                        ..self.hints(steps, ms.range_ms, a)
                    });
                self.matrix_selector(ms, &mut arg, hints, sink)
            }
            Expr::Subquery(sq) => self.subquery(sq, &arg, sink).map(|_| 0),
            _ => Err(QueryError::bad_data("expected a range vector")),
        }
    }

    fn matrix_selector(
        &self,
        ms: &MatrixSelector,
        arg: &mut RangeArg,
        hints: Option<SelectHints>,
        sink: &mut dyn FnMut(&mut RangeSeries, &RangeArg) -> Result<(), QueryError>,
    ) -> Result<i64, QueryError> {
        let (Some(&min_ref), Some(&max_ref)) = (arg.refs.iter().min(), arg.refs.iter().max())
        else {
            return Ok(0);
        };
        let (before, after) = match arg.extended {
            Some(e) if e.smoothed => (e.lookback, e.lookback),
            Some(e) => (e.lookback, 0),
            None => (0, 0),
        };
        let mint = min_ref
            .saturating_sub(arg.range)
            .saturating_sub(before)
            .saturating_add(1);
        let max_ref = max_ref.saturating_add(after);
        let querier = self
            .storage
            .querier(mint, max_ref)
            .map_err(|e| QueryError::execution(e.to_string()))?;
        let (resolution, set) = match &hints {
            Some(hints) => querier
                .select_hinted(&ms.selector.matchers, hints)
                .map(|h| (h.resolution_ms, h.series)),
            None => querier.select(&ms.selector.matchers).map(|s| (0, s)),
        }
        .map_err(|e| QueryError::execution(e.to_string()))?;
        arg.resolution_ms = resolution;
        // An aligned tier read also holds the points of the window before
        // the first range (`SelectHints::aligned_reach`).
        let mint = match &hints {
            Some(h) if h.aligned(resolution) => {
                arg.aligned = true;
                mint.saturating_sub(h.aligned_reach(resolution))
            }
            _ => mint,
        };
        let arg = &*arg;
        // The vector the last series' samples were in, for the next one.
        let mut spare = Vec::new();
        for series in set {
            self.check_deadline()?;
            let series = series.map_err(|e| QueryError::execution(e.to_string()))?;
            let mut hists: Vec<(i64, Hist)> = series
                .histograms
                .filter(|(t, h)| *t >= mint && *t <= max_ref && !h.is_stale())
                .collect();
            // The samples whole, then cut to the range in place: they are
            // ascending, so the range is one stretch of them.
            let mut samples = column_of(series.samples, &mut spare);
            let lo = samples.partition_point(|(t, _)| *t < mint);
            let hi = samples.partition_point(|(t, _)| *t <= max_ref).max(lo);
            samples.truncate(hi);
            samples.drain(..lo);
            if samples.iter().any(|(_, v)| model::is_stale_nan(*v)) {
                samples.retain(|(_, v)| !model::is_stale_nan(*v));
            }
            if samples.is_empty() && hists.is_empty() {
                spare = samples;
                continue;
            }
            self.storage_hints(&samples, &mut hists);
            let n = samples.len() + hists.len();
            self.take_samples(n)?;
            let mut range_series = RangeSeries {
                hists,
                labels: series.labels,
                drop_name: false,
                samples,
            };
            let result = sink(&mut range_series, arg);
            self.release_samples(n);
            spare = range_series.samples;
            result?;
        }
        Ok(resolution)
    }

    fn subquery(
        &self,
        sq: &Subquery,
        arg: &RangeArg,
        sink: &mut dyn FnMut(&mut RangeSeries, &RangeArg) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let (Some(&min_ref), Some(&max_ref)) = (arg.refs.iter().min(), arg.refs.iter().max())
        else {
            return Ok(());
        };
        let step = sq.step_ms.unwrap_or(DEFAULT_SUBQUERY_STEP_MS).max(1);
        let lower = min_ref.saturating_sub(arg.range);
        // The first multiple of the step strictly after the window start.
        let mut start = lower.div_euclid(step).saturating_mul(step);
        while start <= lower {
            start = start.saturating_add(step);
        }
        if max_ref < start {
            return Ok(());
        }
        let n = (max_ref as i128 - start as i128) / step as i128 + 1;
        if n > self.max_samples as i128 {
            return Err(QueryError::too_many_samples());
        }
        let inner_steps = Steps::new(start, max_ref, step);
        self.subquery_depth.set(self.subquery_depth.get() + 1);
        let inner = self.eval(&sq.expr, &inner_steps);
        self.subquery_depth.set(self.subquery_depth.get() - 1);
        let inner = match inner? {
            Val::Vector(v) => v,
            Val::Scalar(values) => vec![StepSeries {
                hists: Vec::new(),
                labels: model::Labels::empty(),
                drop_name: false,
                points: values.into_iter().map(Some).collect(),
            }],
            _ => {
                return Err(QueryError::bad_data(
                    "subquery must be of type instant vector or scalar",
                ));
            }
        };
        for s in inner {
            self.check_deadline()?;
            let samples: Vec<(i64, f64)> = s
                .points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.map(|v| (inner_steps.time(i), v)))
                .collect();
            let hists: Vec<(i64, Hist)> = s
                .hists
                .into_iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    h.map(|mut h| {
                        // Prometheus resets explicit counter-reset hints
                        // in subquery results: a sample may be missed or
                        // returned at several steps, so only detection
                        // from the values is sound.
                        use model::histogram::CounterResetHint::*;
                        if matches!(h.counter_reset_hint, CounterReset | NotCounterReset) {
                            h.counter_reset_hint = Unknown;
                        }
                        (inner_steps.time(i), h)
                    })
                })
                .collect();
            if samples.is_empty() && hists.is_empty() {
                continue;
            }
            sink(
                &mut RangeSeries {
                    hists,
                    labels: s.labels,
                    drop_name: s.drop_name,
                    samples,
                },
                arg,
            )?;
        }
        Ok(())
    }
}

/// A series' samples as one vector: the store's own when it hands out one
/// column, else its columns copied into `spare` (the vector a series
/// before this one used), so that reading series after series does not
/// allocate one vector each.
fn column_of(samples: SampleIter, spare: &mut Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    if samples.is_single_column() {
        return samples.into_vec();
    }
    let mut out = std::mem::take(spare);
    out.clear();
    samples.append_to(&mut out);
    out
}

/// A `smoothed` selector's histogram at `r` (Prometheus's
/// `smoothSeries`): the sample at `r`, else the interpolation between the
/// samples around it (a counter unless both are gauges), else the last one
/// before it with its counter-reset hint cleared.
/// `Err` when the two samples mix exponential and custom buckets.
fn smoothed_hist(w: &[(i64, Hist)], r: i64) -> Result<Option<Hist>, ()> {
    use model::histogram::CounterResetHint;
    let i = w.partition_point(|(t, _)| *t < r);
    if i < w.len() && w[i].0 == r {
        return Ok(Some(w[i].1.clone()));
    }
    if i > 0 && i < w.len() {
        let ((t1, h1), (t2, h2)) = (&w[i - 1], &w[i]);
        if crate::hist::is_custom(h1) != crate::hist::is_custom(h2) {
            return Err(());
        }
        let gauge = CounterResetHint::Gauge;
        let is_counter = h1.counter_reset_hint != gauge || h2.counter_reset_hint != gauge;
        let fraction = (r - t1) as f64 / (t2 - t1) as f64;
        if is_counter && crate::hist::detect_reset(h2, h1) {
            let mut out = h2.clone();
            crate::hist::mul(&mut out, fraction);
            return Ok(Some(out));
        }
        let mut out = h2.clone();
        crate::hist::add(&mut out, h1, true).map_err(|_| ())?;
        crate::hist::mul(&mut out, fraction);
        crate::hist::add(&mut out, h1, false).map_err(|_| ())?;
        return Ok(Some(out));
    }
    if i > 0 {
        let mut out = w[i - 1].1.clone();
        out.counter_reset_hint = CounterResetHint::Unknown;
        return Ok(Some(out));
    }
    Ok(None)
}

pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(inner) = e {
        e = inner;
    }
    e
}
