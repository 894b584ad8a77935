//! Values inside the evaluator.
//!
//! The evaluator works column-wise: an instant vector evaluated over the
//! query's steps is a list of series, each with one optional value per
//! step. Labels are computed once per series, not once per step, which is
//! what makes range queries cheap. `drop_name` carries Prometheus 3's
//! delayed `__name__` removal: the name stays on intermediate results and
//! is dropped when the final result is produced.

use crate::hist::Hist;
use model::Labels;

/// One series of an instant vector evaluated at every step.
#[derive(Clone, Debug)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    pub drop_name: bool,
    /// One entry per step; `None` where the series has no float value.
    pub points: Vec<Option<f64>>,
    /// Native histograms: empty when the series has none (the float path
    /// never allocates it); otherwise one entry per step. A step holds a
    /// float or a histogram, never both.
    pub hists: Vec<Option<Hist>>,
}

impl StepSeries {
    /// The histogram at step `i`, if any.
    pub fn hist(&self, i: usize) -> Option<&Hist> {
        self.hists.get(i).and_then(Option::as_ref)
    }

    /// Whether any step holds a histogram.
    pub fn has_hists(&self) -> bool {
        self.hists.iter().any(Option::is_some)
    }

    /// Puts a histogram at step `i` (clearing a float there).
    pub fn set_hist(&mut self, i: usize, h: Option<Hist>) {
        if h.is_none() && self.hists.is_empty() {
            return;
        }
        if self.hists.is_empty() {
            self.hists = vec![None; self.points.len()];
        }
        if h.is_some() {
            self.points[i] = None;
        }
        self.hists[i] = h;
    }

    /// Whether the series has a value of either kind at any step.
    pub fn is_empty(&self) -> bool {
        self.points.iter().all(Option::is_none) && !self.has_hists()
    }

    /// Whether step `i` holds a value of either kind.
    pub fn present(&self, i: usize) -> bool {
        self.points[i].is_some() || self.hist(i).is_some()
    }
}

/// Builds an instant vector one point at a time, for functions whose
/// output series are keyed by labels they compute per step (`info()`,
/// `histogram_quantiles()`): a series is created on its first point, and
/// a second point at the same step for the same labels is Prometheus's
/// duplicate-labelset error.
pub(crate) struct StepCollector {
    steps: usize,
    out: Vec<StepSeries>,
    index: std::collections::HashMap<Labels, usize, model::labels::FastBuildHasher>,
}

impl StepCollector {
    pub fn new(steps: usize) -> StepCollector {
        StepCollector {
            steps,
            out: Vec::new(),
            index: std::collections::HashMap::default(),
        }
    }

    pub fn put(
        &mut self,
        labels: Labels,
        drop_name: bool,
        step: usize,
        v: f64,
    ) -> Result<(), crate::QueryError> {
        let i = self.free_slot(labels, drop_name, step)?;
        self.out[i].points[step] = Some(v);
        Ok(())
    }

    /// As `put`, for a histogram.
    pub fn put_hist(
        &mut self,
        labels: Labels,
        drop_name: bool,
        step: usize,
        h: Hist,
    ) -> Result<(), crate::QueryError> {
        let i = self.free_slot(labels, drop_name, step)?;
        self.out[i].set_hist(step, Some(h));
        Ok(())
    }

    /// The series for `labels` (created on first use), which must hold no
    /// value of either kind at `step`.
    fn free_slot(
        &mut self,
        labels: Labels,
        drop_name: bool,
        step: usize,
    ) -> Result<usize, crate::QueryError> {
        let i = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                self.index.insert(labels.clone(), self.out.len());
                self.out.push(StepSeries {
                    hists: Vec::new(),
                    labels,
                    drop_name,
                    points: vec![None; self.steps],
                });
                self.out.len() - 1
            }
        };
        if self.out[i].present(step) {
            return Err(crate::QueryError::execution(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        Ok(i)
    }

    pub fn finish(self) -> Vec<StepSeries> {
        self.out
    }
}

/// One series of a range vector: raw samples, ascending by time.
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Vec<(i64, f64)>,
    /// Native histogram samples, ascending; empty for float series.
    pub hists: Vec<(i64, Hist)>,
}

impl RangeSeries {
    /// The series, leaving an empty one in its place (a sink that keeps
    /// what the selector lends it).
    pub fn take(&mut self) -> RangeSeries {
        RangeSeries {
            labels: std::mem::take(&mut self.labels),
            drop_name: self.drop_name,
            samples: std::mem::take(&mut self.samples),
            hists: std::mem::take(&mut self.hists),
        }
    }
}

/// What an expression evaluates to inside the engine.
#[derive(Debug)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<StepSeries>),
    /// Only at the top of an instant query (`x[5m]`, a subquery).
    Matrix(Vec<RangeSeries>),
}
