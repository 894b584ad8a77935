//! `GET /federate`: the newest sample of every series matching one of the
//! `match[]` selectors, in the text exposition format, for another
//! Prometheus (or osprey) to scrape, as Prometheus serves it.
//!
//! - A series is shown when it has a sample in the lookback window before
//!   now (`(now - lookback_delta, now]`, left-open as in Prometheus 3's
//!   instant selectors) and that newest sample is not a staleness marker.
//! - Several `match[]` select the union; no `match[]` selects nothing (an
//!   empty, successful answer, as Prometheus gives).
//! - Every sample carries its timestamp, so the scraper stores it at the
//!   time it was taken, and the configuration's `external_labels` are
//!   added to series that lack them.
//! - Series are grouped by metric name, each group under one
//!   `# TYPE <name> untyped` line: osprey does not know the type of a
//!   stored series, and Prometheus federates floats as untyped too.

use std::fmt::Write as _;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use model::storage::Storage;
use model::{Labels, Matcher, is_stale_nan};

use crate::api::read_params;
use crate::export::MergedSeries;
use crate::{ApiError, AppState};

/// What the text exposition format 0.0.4 is served as.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One series's newest sample.
struct Latest {
    name: String,
    labels: Labels,
    t: i64,
    v: f64,
}

/// `GET /federate`.
pub(crate) async fn federate(State(state): State<AppState>, request: Request) -> Response {
    let sets = match read_params(request)
        .await
        .and_then(|params| params.matcher_sets(false))
    {
        Ok(sets) => sets,
        Err(e) => return e.into_response(),
    };
    let now = state.now_ms();
    let lookback = state.config().engine.lookback_delta_ms.max(1);
    let external: Vec<(String, String)> = state
        .current_config()
        .map(|c| c.global.external_labels.clone())
        .unwrap_or_default();
    let storage = state.storage().clone();
    let selected = tokio::task::spawn_blocking(move || {
        newest_samples(storage.as_ref(), &sets, now - lookback + 1, now)
    })
    .await;
    let latest = match selected {
        Ok(Ok(latest)) => latest,
        Ok(Err(e)) => return e.into_response(),
        Err(e) => {
            return ApiError::internal(format!("federation task failed: {e}")).into_response();
        }
    };
    let mut body = String::with_capacity(latest.len() * 64);
    write_exposition(&mut body, &latest, &external);
    ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response()
}

/// The newest sample in `[mint, maxt]` of every series matching one of
/// `sets`, unless that sample is a staleness marker; sorted by metric name,
/// then by label set.
fn newest_samples(
    storage: &dyn Storage,
    sets: &[Vec<Matcher>],
    mint: i64,
    maxt: i64,
) -> Result<Vec<Latest>, ApiError> {
    if sets.is_empty() {
        return Ok(Vec::new());
    }
    let querier = storage.querier(mint, maxt).map_err(ApiError::from_read)?;
    let mut series_sets = Vec::with_capacity(sets.len());
    for set in sets {
        series_sets.push(querier.select_latest(set).map_err(ApiError::from_read)?);
    }
    let mut latest = Vec::new();
    for series in MergedSeries::new(series_sets) {
        let mut series = series.map_err(ApiError::from_read)?;
        let Some((t, v)) = series.samples.by_ref().last() else {
            continue;
        };
        if is_stale_nan(v) {
            continue;
        }
        let name = series.labels.metric_name().unwrap_or_default().to_string();
        latest.push(Latest {
            name,
            labels: series.labels,
            t,
            v,
        });
    }
    // The merged order is by label set; a stable sort by name keeps it
    // within each name, so every name is one contiguous group.
    latest.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(latest)
}

/// Writes `latest` as the text exposition format: a `# TYPE` line per
/// metric name, then one line per series with its timestamp. `external`
/// labels are added where a series lacks the label name.
fn write_exposition(out: &mut String, latest: &[Latest], external: &[(String, String)]) {
    let mut previous: Option<&str> = None;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for sample in latest {
        if previous != Some(sample.name.as_str()) {
            let _ = writeln!(out, "# TYPE {} untyped", sample.name);
            previous = Some(sample.name.as_str());
        }
        pairs.clear();
        pairs.extend(
            sample
                .labels
                .iter()
                .filter(|l| l.name.as_str() != "__name__")
                .map(|l| (l.name.as_str(), l.value.as_str())),
        );
        for (name, value) in external {
            if sample.labels.get(name).is_none() {
                pairs.push((name.as_str(), value.as_str()));
            }
        }
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        out.push_str(&sample.name);
        if !pairs.is_empty() {
            out.push('{');
            for (i, (name, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push_str("=\"");
                escape_label_value(out, value);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        crate::query::write_value(out, sample.v);
        let _ = writeln!(out, " {}", sample.t);
    }
}

/// Escapes a label value as the text format requires.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest(labels: &[(&str, &str)], t: i64, v: f64) -> Latest {
        let labels = Labels::from_pairs(labels.iter().copied());
        Latest {
            name: labels.get("__name__").unwrap_or_default().to_string(),
            labels,
            t,
            v,
        }
    }

    #[test]
    fn newest_sample_in_the_left_open_window_unless_stale() {
        use model::STALE_NAN;
        use model::storage::Appendable;
        let storage = crate::testing::test_storage();
        let mut appender = storage.appender();
        let series = |name: &str| Labels::from_pairs([("__name__", name), ("job", "j")]);
        // Newest sample inside the window wins.
        appender.append(&series("m"), 100, 1.0).unwrap();
        appender.append(&series("m"), 900, 2.0).unwrap();
        // Ends with a staleness marker: gone.
        appender.append(&series("stale"), 500, 3.0).unwrap();
        appender.append(&series("stale"), 600, STALE_NAN).unwrap();
        // Exactly at the window's open start: outside.
        appender.append(&series("edge"), 0, 4.0).unwrap();
        // After "now": not yet.
        appender.append(&series("later"), 1001, 5.0).unwrap();
        appender.commit().unwrap();
        drop(appender);
        let all = vec![vec![Matcher::equal("job", "j")]];
        let got = newest_samples(storage.as_ref(), &all, 1, 1000).unwrap();
        let got: Vec<(String, i64, f64)> = got.into_iter().map(|s| (s.name, s.t, s.v)).collect();
        assert_eq!(got, vec![("m".to_string(), 900, 2.0)]);
    }

    #[test]
    fn writes_groups_external_labels_and_escapes() {
        let samples = [
            latest(&[("__name__", "a"), ("job", "x\"y\\z\nw")], 1000, 1.5),
            latest(
                &[("__name__", "a"), ("job", "y"), ("zone", "own")],
                2000,
                -0.0,
            ),
            latest(&[("__name__", "b")], 3000, f64::INFINITY),
        ];
        let external = vec![
            ("zone".to_string(), "eu".to_string()),
            ("cluster".to_string(), "c1".to_string()),
        ];
        let mut out = String::new();
        write_exposition(&mut out, &samples, &external);
        assert_eq!(
            out,
            "# TYPE a untyped\n\
             a{cluster=\"c1\",job=\"x\\\"y\\\\z\\nw\",zone=\"eu\"} 1.5 1000\n\
             a{cluster=\"c1\",job=\"y\",zone=\"own\"} -0 2000\n\
             # TYPE b untyped\n\
             b{cluster=\"c1\",zone=\"eu\"} +Inf 3000\n"
        );
    }
}
