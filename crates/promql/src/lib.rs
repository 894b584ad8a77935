//! osprey's PromQL engine, with Prometheus 3 semantics.
//!
//! [`parse`] turns query text into [`ast::Expr`] (osprey's own lexer and
//! parser, with Prometheus's error texts and positions), and [`Engine`] evaluates
//! instant and range queries against anything that implements
//! [`model::storage::Queryable`]. The engine reads only through those
//! traits; it knows nothing of tsdb internals, HTTP or JSON.
//!
//! Semantics follow Prometheus 3: range windows and the 5 m lookback are
//! left-open (`(t-range, t]`), a staleness marker ends a series' lookback,
//! `__name__` removal is delayed to the end of evaluation, and the error
//! texts match Prometheus's word for word where its test scripts check them.
//!
//! Evaluation is column-wise: every instant-vector node is evaluated over
//! all steps of the query at once, one series at a time, so labels are
//! handled once per series rather than once per step. Selectors stream
//! series from storage into aggregations without materialising them.
//!
//! Native histograms travel beside the floats: a series' histogram column
//! (`value::StepSeries::hists`) is empty unless the series has histogram
//! samples, so float-only queries pay nothing for them. Results carry them
//! in [`VectorSample::h`] and [`MatrixSeries::histograms`]; the arithmetic
//! lives in `hist`.
//!
//! This crate is not: the HTTP API (the server crate maps [`QueryError`]
//! kinds to Prometheus's `errorType`).

pub mod ast;
pub mod drift;
mod engine;
mod eval;
mod format;
mod functions;
mod hist;
mod histrange;
mod info;
mod lexer;
pub mod parser;
mod value;

mod aggregate;
mod anomaly;
mod binary;

pub use engine::{
    Engine, EngineOptions, MatrixSeries, QueryError, QueryErrorKind, QueryOptions, QueryOutput,
    QueryStats, Value, VectorSample,
};
pub use format::format;
pub use parser::{ParseOptions, parse, parse_series_selector, parse_with};
