//! osprey's shared vocabulary: the types every other crate speaks.
//!
//! - [`Labels`] is a sorted, duplicate-free label set; [`Matcher`] selects
//!   series by one label (`=`, `!=`, `=~`, `!~`, regexes fully anchored as
//!   in Prometheus).
//! - [`Sample`] is one `(timestamp in ms, f64)` point; [`STALE_NAN`] is the
//!   exact bit pattern Prometheus uses for staleness markers, and storage must
//!   keep it bit for bit.
//! - [`storage`] holds the contract between the TSDB and its users:
//!   [`storage::Appendable`]/[`storage::Appender`] to write,
//!   [`storage::Queryable`]/[`storage::Querier`] to read. PromQL and the HTTP
//!   API read only through these traits; the TSDB implements them.
//! - [`histogram`] holds native histograms (integer and float, exponential
//!   and custom-bucket schemas) with Prometheus's validation.
//! - [`exposition`] parses the Prometheus text format and OpenMetrics.
//! - [`relabel`] is Prometheus's relabelling (every action, Go's
//!   `regexp.Expand` replacements, MD5 `hashmod`), shared by scraping, the
//!   alert sender and remote write.
//! - [`hash`] is FNV-1a, for values shared with Go programs and files;
//!   [`time`] the calendar and RFC 3339 text; [`duration`] Prometheus
//!   durations.
//!
//! - [`float`] writes numbers as Go's `strconv.FormatFloat` does (the
//!   digits of Prometheus's answers).
//! - [`durable`] is the one atomic, fsynced replacement of a small state
//!   file that every crate uses.
//!
//! This crate does no I/O (except [`durable`]'s blocking file writes) and
//! has no async code.

pub mod durable;
pub mod duration;
pub mod exemplar;
pub mod exposition;
pub mod float;
pub mod hash;
pub mod hint;
pub mod histogram;
mod histogram_bounds;
pub mod labels;
pub mod limits;
pub mod matcher;
pub mod relabel;
pub mod sample;
pub mod storage;
pub mod time;

pub use labels::{
    Label, LabelNames, LabelRef, LabelStr, LabelTemplate, Labels, LabelsBuilder, METRIC_NAME,
};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use sample::{STALE_NAN, Sample, is_stale_nan};
