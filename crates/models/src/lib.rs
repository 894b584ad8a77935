//! Model quality: the prediction log with late actuals, and drift,
//! data-quality, performance, importance and version-comparison figures
//! per model version, written as ordinary series.
//!
//! - [`stats`], [`metrics`] and [`sketch`] are the arithmetic of
//!   `docs/drift.md` over plain slices: equal-frequency bins, KS with
//!   scipy's exact p-value, Wasserstein, chi-square, z and Welch tests,
//!   scikit-learn's classification and regression metrics, and the
//!   equi-depth summary used past [`EXACT_RECORDS`]. The share-level drift
//!   formulas are `promql::drift`'s, so queries and model series agree.
//! - [`records`] reads the API's request bodies into borrowed records,
//!   naming the record and field of any error.
//!
//! - [`distribution`] is one feature's reference and current
//!   distributions as shares, for the Models page.
//!
//! This crate is not the HTTP API (that is `server`), and it writes series
//! only through `model::storage::Appendable`.

pub mod alerts;
pub mod distribution;
mod evaluate;
pub use evaluate::PairFigure;
mod kolmogorov;
pub mod log;
pub mod metrics;
pub mod records;
pub mod sketch;
pub mod stats;
pub mod store;
pub mod window;

pub use store::{Accepted, Comparison, ErrorKind, IngestError, Models};

/// Reads a request body: gunzips it when `gzip` (refusing more than
/// `limit` bytes of output), else checks its size and borrows it. Errors
/// are for the client (a 400 or 413).
pub fn decode_body(
    body: &[u8],
    gzip: bool,
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, IngestError> {
    if !gzip {
        if body.len() > limit {
            return Err(IngestError::too_large(limit));
        }
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    use std::io::Read;
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| IngestError::bad_data(format!("gzip: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::too_large(limit));
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Records per version and window up to which KS and Wasserstein are
/// computed from every value (`docs/drift.md`).
pub const EXACT_RECORDS: usize = 100_000;
