//! Values inside the evaluator.
//!
//! The evaluator works column-wise: an instant vector evaluated over the
//! query's steps is a list of series, each with one optional value per
//! step. Labels are computed once per series, not once per step, which is
//! what makes range queries cheap. `drop_name` carries Prometheus 3's
//! delayed `__name__` removal: the name stays on intermediate results and
//! is dropped when the final result is produced.

use model::Labels;

/// One series of an instant vector evaluated at every step.
#[derive(Clone, Debug)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    pub drop_name: bool,
    /// One entry per step; `None` where the series has no value.
    pub points: Vec<Option<f64>>,
}

/// One series of a range vector: raw samples, ascending by time.
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Vec<(i64, f64)>,
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
