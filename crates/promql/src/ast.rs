//! osprey's own PromQL syntax tree.
//!
//! The engine and the printer see only these types. `parser` builds them
//! from whatever parser we use underneath (today promql-parser), so a switch
//! of parser touches that one module. Durations and times are milliseconds.

use model::Matcher;

/// A PromQL expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    String(String),
    VectorSelector(VectorSelector),
    MatrixSelector(MatrixSelector),
    Subquery(Subquery),
    Paren(Box<Expr>),
    /// Unary minus (`negate`) or plus.
    Unary {
        negate: bool,
        expr: Box<Expr>,
    },
    Binary(Binary),
    Aggregate(Aggregate),
    Call(Call),
}

/// What an expression evaluates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    String,
    Vector,
    Matrix,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
        }
    }
}

/// `@ <time>`, `@ start()` or `@ end()`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum At {
    Time(i64),
    Start,
    End,
}

/// A duration written as an expression (`promql-duration-expr`), in
/// seconds, computed when the query runs: `step()` is the query's step,
/// `range()` its end minus its start (both 0 for an instant query).
#[derive(Clone, Debug, PartialEq)]
pub enum DurationExpr {
    Number(f64),
    Step,
    Range,
    Neg(Box<DurationExpr>),
    Paren(Box<DurationExpr>),
    /// `+ - * / % ^` only.
    Binary {
        op: BinaryOp,
        lhs: Box<DurationExpr>,
        rhs: Box<DurationExpr>,
    },
    MinOf(Box<DurationExpr>, Box<DurationExpr>),
    MaxOf(Box<DurationExpr>, Box<DurationExpr>),
}

impl DurationExpr {
    /// The value in seconds for a query with this step and range (both in
    /// seconds).
    pub fn seconds(&self, step: f64, range: f64) -> Result<f64, String> {
        Ok(match self {
            DurationExpr::Number(v) => *v,
            DurationExpr::Step => step,
            DurationExpr::Range => range,
            DurationExpr::Neg(x) => -x.seconds(step, range)?,
            DurationExpr::Paren(x) => x.seconds(step, range)?,
            DurationExpr::MinOf(a, b) => a.seconds(step, range)?.min(b.seconds(step, range)?),
            DurationExpr::MaxOf(a, b) => a.seconds(step, range)?.max(b.seconds(step, range)?),
            DurationExpr::Binary { op, lhs, rhs } => {
                let (a, b) = (lhs.seconds(step, range)?, rhs.seconds(step, range)?);
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div if b == 0.0 => return Err("division by zero".into()),
                    BinaryOp::Div => a / b,
                    BinaryOp::Mod if b == 0.0 => return Err("modulo by zero".into()),
                    BinaryOp::Mod => a % b,
                    _ => a.powf(b),
                }
            }
        })
    }

    /// Milliseconds for a range, step or offset, with Prometheus's checks
    /// (`allow_negative` for offsets).
    pub fn millis(&self, step: f64, range: f64, allow_negative: bool) -> Result<i64, String> {
        let d = self.seconds(step, range)?;
        if !d.is_finite() {
            return Err("duration is NaN or infinite".into());
        }
        if d <= 0.0 && !allow_negative {
            return Err("duration must be greater than 0".into());
        }
        if d.abs() > 9_223_372_036.854_775 {
            return Err("duration is out of range".into());
        }
        Ok((d * 1000.0).trunc() as i64)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VectorSelector {
    /// The metric name as written before the braces, if any.
    pub name: Option<String>,
    /// Every matcher, the metric name included as `__name__="…"`.
    pub matchers: Vec<Matcher>,
    /// Offset in milliseconds (negative for `offset -5m`).
    pub offset_ms: i64,
    /// An offset written as a duration expression; the engine computes
    /// `offset_ms` from it before evaluating.
    pub offset_expr: Option<DurationExpr>,
    pub at: Option<At>,
    /// `anchored` (`promql-extended-range-selectors`): a range also takes
    /// the last sample at or before its start.
    pub anchored: bool,
    /// `smoothed`: values at the range's ends are interpolated.
    pub smoothed: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MatrixSelector {
    pub selector: VectorSelector,
    pub range_ms: i64,
    /// A range written as a duration expression (see `offset_expr`).
    pub range_expr: Option<DurationExpr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Subquery {
    pub expr: Box<Expr>,
    pub range_ms: i64,
    /// `None` when written `[5m:]`: the engine's default step applies.
    pub step_ms: Option<i64>,
    pub offset_ms: i64,
    pub range_expr: Option<DurationExpr>,
    pub step_expr: Option<DurationExpr>,
    pub offset_expr: Option<DurationExpr>,
    pub at: Option<At>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
    /// `</`: keeps a histogram's observations below the right-hand value.
    TrimUpper,
    /// `>/`: keeps a histogram's observations above the right-hand value.
    TrimLower,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Lt => "<",
            BinaryOp::Ge => ">=",
            BinaryOp::Le => "<=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
            BinaryOp::TrimUpper => "</",
            BinaryOp::TrimLower => ">/",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Gt | BinaryOp::Lt | BinaryOp::Ge | BinaryOp::Le
        )
    }

    /// The histogram trim operators `</` and `>/`.
    pub fn is_trim(self) -> bool {
        matches!(self, BinaryOp::TrimUpper | BinaryOp::TrimLower)
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }
}

/// Which labels two sides are matched on.
#[derive(Clone, Debug, PartialEq)]
pub enum Matching {
    /// `on(labels)`.
    On(Vec<String>),
    /// `ignoring(labels)`, and the default (`ignoring()`).
    Ignoring(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cardinality {
    OneToOne,
    /// `group_left(labels)`: many on the left, one on the right.
    ManyToOne(Vec<String>),
    /// `group_right(labels)`.
    OneToMany(Vec<String>),
    ManyToMany,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binary {
    pub op: BinaryOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    /// `None` when no `on`/`ignoring` was written.
    pub matching: Option<Matching>,
    pub cardinality: Cardinality,
    pub return_bool: bool,
    /// `fill_left(v)` (or `fill(v)`): the value a missing left-hand
    /// series takes (`promql-binop-fill-modifiers`).
    pub fill_lhs: Option<f64>,
    /// `fill_right(v)` (or `fill(v)`).
    pub fill_rhs: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
    Limitk,
    LimitRatio,
}

impl AggregateOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Count => "count",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::Quantile => "quantile",
            AggregateOp::CountValues => "count_values",
            AggregateOp::Limitk => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
        }
    }

    pub fn from_name(name: &str) -> Option<AggregateOp> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sum" => AggregateOp::Sum,
            "avg" => AggregateOp::Avg,
            "min" => AggregateOp::Min,
            "max" => AggregateOp::Max,
            "count" => AggregateOp::Count,
            "group" => AggregateOp::Group,
            "stddev" => AggregateOp::Stddev,
            "stdvar" => AggregateOp::Stdvar,
            "topk" => AggregateOp::Topk,
            "bottomk" => AggregateOp::Bottomk,
            "quantile" => AggregateOp::Quantile,
            "count_values" => AggregateOp::CountValues,
            "limitk" => AggregateOp::Limitk,
            "limit_ratio" => AggregateOp::LimitRatio,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub op: AggregateOp,
    pub expr: Box<Expr>,
    pub param: Option<Box<Expr>>,
    /// `None` when neither `by` nor `without` was written.
    pub grouping: Option<Grouping>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub func: String,
    pub args: Vec<Expr>,
}

impl Expr {
    /// The matchers of every vector selector in the expression (those
    /// inside range selectors and subqueries too), depth first, the
    /// metric name as a `__name__` matcher: Prometheus's
    /// `parser.ExtractSelectors`, which `/api/v1/query_exemplars` uses.
    pub fn selectors(&self) -> Vec<Vec<Matcher>> {
        let mut out = Vec::new();
        self.collect_selectors(&mut out);
        out
    }

    fn collect_selectors(&self, out: &mut Vec<Vec<Matcher>>) {
        match self {
            Expr::Number(_) | Expr::String(_) => {}
            Expr::VectorSelector(v) => out.push(v.matchers.clone()),
            Expr::MatrixSelector(m) => out.push(m.selector.matchers.clone()),
            Expr::Subquery(s) => s.expr.collect_selectors(out),
            Expr::Paren(e) | Expr::Unary { expr: e, .. } => e.collect_selectors(out),
            Expr::Binary(b) => {
                b.lhs.collect_selectors(out);
                b.rhs.collect_selectors(out);
            }
            Expr::Aggregate(a) => {
                a.expr.collect_selectors(out);
                if let Some(param) = &a.param {
                    param.collect_selectors(out);
                }
            }
            Expr::Call(c) => {
                for arg in &c.args {
                    arg.collect_selectors(out);
                }
            }
        }
    }

    /// Whether a range, step or offset is a duration expression, which
    /// [`Expr::resolve_durations`] must compute before evaluation.
    pub fn has_duration_exprs(&self) -> bool {
        match self {
            Expr::Number(_) | Expr::String(_) => false,
            Expr::VectorSelector(v) => v.offset_expr.is_some(),
            Expr::MatrixSelector(m) => m.range_expr.is_some() || m.selector.offset_expr.is_some(),
            Expr::Subquery(s) => {
                s.range_expr.is_some()
                    || s.step_expr.is_some()
                    || s.offset_expr.is_some()
                    || s.expr.has_duration_exprs()
            }
            Expr::Paren(e) | Expr::Unary { expr: e, .. } => e.has_duration_exprs(),
            Expr::Binary(b) => b.lhs.has_duration_exprs() || b.rhs.has_duration_exprs(),
            Expr::Aggregate(a) => {
                a.expr.has_duration_exprs()
                    || a.param.as_deref().is_some_and(Expr::has_duration_exprs)
            }
            Expr::Call(c) => c.args.iter().any(Expr::has_duration_exprs),
        }
    }

    /// Computes every duration expression for a query with this step and
    /// range (seconds), as Prometheus does before evaluating; the
    /// expressions stay for printing.
    pub fn resolve_durations(&mut self, step: f64, range: f64) -> Result<(), String> {
        let offset = |v: &mut VectorSelector| -> Result<(), String> {
            if let Some(e) = &v.offset_expr {
                v.offset_ms = e.millis(step, range, true)?;
            }
            Ok(())
        };
        match self {
            Expr::Number(_) | Expr::String(_) => {}
            Expr::VectorSelector(v) => offset(v)?,
            Expr::MatrixSelector(m) => {
                offset(&mut m.selector)?;
                if let Some(e) = &m.range_expr {
                    m.range_ms = e.millis(step, range, false)?;
                }
            }
            Expr::Subquery(s) => {
                if let Some(e) = &s.offset_expr {
                    s.offset_ms = e.millis(step, range, true)?;
                }
                if let Some(e) = &s.step_expr {
                    s.step_ms = Some(e.millis(step, range, false)?);
                }
                if let Some(e) = &s.range_expr {
                    s.range_ms = e.millis(step, range, false)?;
                }
                s.expr.resolve_durations(step, range)?;
            }
            Expr::Paren(e) | Expr::Unary { expr: e, .. } => e.resolve_durations(step, range)?,
            Expr::Binary(b) => {
                b.lhs.resolve_durations(step, range)?;
                b.rhs.resolve_durations(step, range)?;
            }
            Expr::Aggregate(a) => {
                a.expr.resolve_durations(step, range)?;
                if let Some(p) = &mut a.param {
                    p.resolve_durations(step, range)?;
                }
            }
            Expr::Call(c) => {
                for a in &mut c.args {
                    a.resolve_durations(step, range)?;
                }
            }
        }
        Ok(())
    }

    /// The type the expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) => ValueType::Scalar,
            Expr::String(_) => ValueType::String,
            Expr::VectorSelector(_) => ValueType::Vector,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Paren(e) => e.value_type(),
            Expr::Unary { expr, .. } => expr.value_type(),
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate(_) => ValueType::Vector,
            Expr::Call(c) => crate::functions::return_type(&c.func),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Prometheus's `parser.ExtractSelectors`: every vector selector, with
    /// the metric name as a matcher, wherever it sits in the expression.
    #[test]
    fn selectors_are_extracted_from_everywhere() {
        let expr = crate::parse(
            "histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=\"x\"}[5m]))) / on() group_left max_over_time(b[1h:1m]) + topk(scalar(c), d)",
        )
        .expect("parse");
        let got: Vec<Vec<String>> = expr
            .selectors()
            .iter()
            .map(|matchers| {
                matchers
                    .iter()
                    .map(|m| format!("{}{}{}", m.name(), m.op().as_str(), m.value()))
                    .collect()
            })
            .collect();
        let want: Vec<Vec<&str>> = vec![
            vec!["job=x", "__name__=a_bucket"],
            vec!["__name__=b"],
            vec!["__name__=d"],
            vec!["__name__=c"],
        ];
        let mut got_sorted = got.clone();
        got_sorted.iter_mut().for_each(|m| m.sort());
        got_sorted.sort();
        let mut want_sorted: Vec<Vec<String>> = want
            .iter()
            .map(|m| {
                let mut m: Vec<String> = m.iter().map(|s| s.to_string()).collect();
                m.sort();
                m
            })
            .collect();
        want_sorted.sort();
        assert_eq!(got_sorted, want_sorted, "{got:?}");
        assert!(crate::parse("1 + 1").expect("parse").selectors().is_empty());
    }
}
