//! osprey's rule engine: Prometheus rule files, recording and alerting
//! rules, alert state, and `promtool test rules`'s unit-test format.
//!
//! - [`file`] parses and checks rule files ([`parse_rule_file`]).
//! - [`group`] evaluates a [`Group`] at a timestamp: recording rules write
//!   series, alerting rules move alerts through pending, firing and
//!   resolved and write `ALERTS`/`ALERTS_FOR_STATE`.
//! - [`manager`] runs groups on their intervals ([`RuleManager`]) and
//!   hands due alerts to a [`Notifier`]; the server wires that to
//!   Alertmanagers.
//! - [`unittest`] runs rule unit-test files.
//! - [`backtest`] replays groups over stored history with range queries
//!   and reports each alert's pending and firing intervals.
//!
//! The crate reads and writes only through `model`'s storage traits and
//! queries through `promql`; it knows no HTTP and no storage engine.

pub mod backtest;
pub mod file;
pub mod group;
pub mod manager;
pub mod template;
pub mod unittest;

pub use backtest::{
    Backtest, BacktestError, BacktestOptions, RuleBacktest, StateInterval, backtest,
};
pub use file::{
    GroupSpec, RuleFileError, RuleKind, RuleSpec, parse_rule_file, parse_rule_file_with,
};
pub use group::{Alert, AlertState, EvalEnv, Group, GroupOptions, Health, NotifyAlert, Rule};
pub use manager::{
    Clock, NoNotifier, Notifier, RuleManager, RuleSettings, read_rule_files, read_rule_files_with,
};
/// The PromQL feature set rule files and rule tests are parsed with
/// (`--enable-feature`), re-exported so that the CLI need not depend on
/// `promql` for it.
pub use promql::ParseOptions as PromqlFeatures;
