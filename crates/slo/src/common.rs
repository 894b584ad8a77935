//! What both spec readers check the same way: names, labels, query
//! templates, and osprey's latency SLI.

use std::collections::BTreeMap;

use config::{ConfigError, Decoder};
use yaml::Node;

use crate::model::Sli;

/// Sloth's rule for service, SLO and ID names: starts and ends with an
/// alphanumeric, holds only alphanumerics, `.`, `_` and `-`.
pub fn check_name(
    decoder: &Decoder,
    line: u64,
    field: &str,
    name: &str,
) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(decoder.error(line, field, "required"));
    }
    let bytes = name.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_alphanumeric();
    let inner_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let ok = bytes.len() >= 2
        && edge_ok(bytes[0])
        && edge_ok(bytes[bytes.len() - 1])
        && bytes.iter().all(|b| inner_ok(*b));
    if !ok {
        return Err(decoder.error(
            line,
            field,
            format!(
                "{name:?}: a name must start and end with an alphanumeric and can only contain alphanumerics, '.', '_' and '-'"
            ),
        ));
    }
    Ok(())
}

/// A `name: value` mapping of Prometheus labels: valid names other than
/// `__name__`, values not empty (Sloth's checks).
pub fn labels(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for entry in decoder.fields(node, field)? {
        if entry.name == "__name__" || !config::decode::is_valid_label_name(&entry.name) {
            return Err(decoder.error(
                entry.key.line,
                &entry.path,
                format!("invalid label name {:?}", entry.name),
            ));
        }
        let value = decoder.string(entry.value, &entry.path)?;
        if value.is_empty() {
            return Err(decoder.error(entry.value.line, &entry.path, "a label value is required"));
        }
        out.insert(entry.name, value);
    }
    Ok(out)
}

/// Annotations: any name Prometheus takes, values not empty.
pub fn annotations(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for entry in decoder.fields(node, field)? {
        if !config::decode::is_valid_label_name(&entry.name) {
            return Err(decoder.error(
                entry.key.line,
                &entry.path,
                format!("invalid annotation name {:?}", entry.name),
            ));
        }
        let value = decoder.string(entry.value, &entry.path)?;
        if value.is_empty() {
            return Err(decoder.error(
                entry.value.line,
                &entry.path,
                "an annotation value is required",
            ));
        }
        out.insert(entry.name, value);
    }
    Ok(out)
}

/// Whether `query` holds `{{.window}}` as Sloth's check accepts it
/// (`{{ *\.window *}}`).
pub fn has_window_variable(query: &str) -> bool {
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let after = rest[start + 2..].trim_start_matches(' ');
        if let Some(tail) = after.strip_prefix(".window")
            && tail.trim_start_matches(' ').starts_with("}}")
        {
            return true;
        }
        rest = &rest[start + 2..];
    }
    false
}

/// Renders a query template for one window, as Sloth renders it: Go's
/// `text/template` with `.window` the window as Prometheus prints it.
pub fn render_window(query: &str, window: &str) -> Result<String, String> {
    let mut set = template::Templates::new(
        template::FuncMap::builtins(),
        template::Options {
            missing_key: template::MissingKey::Default,
        },
    );
    set.parse("sliExpr", query).map_err(|e| e.to_string())?;
    let data = template::Value::from(BTreeMap::from([(
        "window".to_string(),
        template::Value::from(window),
    )]));
    let text = set.execute("sliExpr", &data).map_err(|e| e.to_string())?;
    // Sloth executes with missingkey=error: any other variable is an error.
    if text.contains("<no value>") {
        return Err("a query template may use no variable but {{.window}}".to_string());
    }
    Ok(text)
}

/// Checks a query template the way Sloth does (it must use `{{.window}}`
/// when `needs_window`) and that it renders to valid PromQL.
pub fn check_query(
    decoder: &Decoder,
    node: &Node,
    field: &str,
    query: &str,
    needs_window: bool,
) -> Result<(), ConfigError> {
    if query.trim().is_empty() {
        return Err(decoder.error(node.line, field, "a query is required"));
    }
    if needs_window && !has_window_variable(query) {
        return Err(decoder.error(
            node.line,
            field,
            "the query must use the {{.window}} variable",
        ));
    }
    let rendered = render_window(query, "1m").map_err(|e| decoder.error(node.line, field, e))?;
    promql::parse(&rendered)
        .map_err(|e| decoder.error(node.line, field, format!("invalid PromQL: {}", e.message())))?;
    Ok(())
}

/// osprey's latency SLI: the share of a classic histogram's observations
/// above a threshold, the threshold interpolated within its bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// The histogram's name (without `_bucket`).
    pub histogram: String,
    /// Label matchers, as written inside `{}` (may be empty).
    pub matchers: String,
    pub threshold: f64,
    /// The bucket bounds around the threshold: `lower` (0 below the first
    /// bucket) and `upper`; `None` when the threshold is a bucket bound.
    pub interpolation: Option<(f64, f64)>,
}

impl Latency {
    /// Reads `sli.latency`.
    pub fn decode(decoder: &Decoder, node: &Node, field: &str) -> Result<Latency, ConfigError> {
        let mut histogram = None;
        let mut selector = (String::new(), node.line);
        let mut threshold = None;
        let mut buckets: Option<(Vec<f64>, u64)> = None;
        for entry in decoder.fields(node, field)? {
            match entry.name.as_str() {
                "histogram" => {
                    let name = decoder.string(entry.value, &entry.path)?;
                    if !rules::file::is_valid_metric_name(&name) {
                        return Err(decoder.error(
                            entry.value.line,
                            &entry.path,
                            format!("invalid metric name {name:?}"),
                        ));
                    }
                    histogram = Some(name);
                }
                "selector" => {
                    selector = (decoder.string(entry.value, &entry.path)?, entry.value.line)
                }
                "threshold" => {
                    let value = decoder.float(entry.value, &entry.path)?;
                    if !(value.is_finite() && value > 0.0) {
                        return Err(decoder.error(
                            entry.value.line,
                            &entry.path,
                            "the threshold must be a positive number",
                        ));
                    }
                    threshold = Some(value);
                }
                "buckets" => {
                    let mut bounds = Vec::new();
                    for (index, item) in decoder
                        .sequence(entry.value, &entry.path)?
                        .iter()
                        .enumerate()
                    {
                        let path = format!("{}[{index}]", entry.path);
                        let value = match decoder.string(item, &path)?.as_str() {
                            "+Inf" | "Inf" | "inf" | "+inf" => f64::INFINITY,
                            _ => decoder.float(item, &path)?,
                        };
                        if value.is_nan() {
                            return Err(decoder.error(item.line, &path, "not a bucket bound"));
                        }
                        bounds.push(value);
                    }
                    buckets = Some((bounds, entry.value.line));
                }
                _ => return Err(decoder.unknown(&entry)),
            }
        }
        let Some(histogram) = histogram else {
            return Err(decoder.error(node.line, &format!("{field}.histogram"), "required"));
        };
        let Some(threshold) = threshold else {
            return Err(decoder.error(node.line, &format!("{field}.threshold"), "required"));
        };
        let matchers = selector_matchers(
            decoder,
            selector.1,
            &format!("{field}.selector"),
            &histogram,
            &selector.0,
        )?;
        let interpolation = match buckets {
            None => None,
            Some((bounds, line)) => bracket(&bounds, threshold)
                .map_err(|message| decoder.error(line, &format!("{field}.buckets"), message))?,
        };
        Ok(Latency {
            histogram,
            matchers,
            threshold,
            interpolation,
        })
    }

    /// The SLI: errors are the observations above the threshold, total
    /// the histogram's count.
    pub fn sli(&self) -> Sli {
        let count = format!(
            "sum(rate({}_count{}[{{{{.window}}}}]))",
            self.histogram,
            braces(&self.matchers, None)
        );
        let bucket = |bound: f64| {
            format!(
                "sum(rate({}_bucket{}[{{{{.window}}}}]))",
                self.histogram,
                braces(&self.matchers, Some(bound))
            )
        };
        let good = match self.interpolation {
            None => bucket(self.threshold),
            Some((lower, upper)) => {
                let fraction = (self.threshold - lower) / (upper - lower);
                if lower == 0.0 {
                    format!("{} * {}", crate::gofmt::go_g(fraction), bucket(upper))
                } else {
                    format!(
                        "({} * {} + {} * {})",
                        crate::gofmt::go_g(1.0 - fraction),
                        bucket(lower),
                        crate::gofmt::go_g(fraction),
                        bucket(upper)
                    )
                }
            }
        };
        Sli::Events {
            error_query: format!("{count} - {good}"),
            total_query: count,
        }
    }

    /// The SLI in words, for the SLO page.
    pub fn describe(&self) -> String {
        let threshold = crate::gofmt::go_g(self.threshold);
        match self.interpolation {
            None => format!("{} ≤ {threshold} (a bucket bound)", self.histogram),
            Some((lower, upper)) => format!(
                "{} ≤ {threshold} (interpolated between the buckets {} and {})",
                self.histogram,
                crate::gofmt::go_g(lower),
                crate::gofmt::go_g(upper)
            ),
        }
    }
}

/// The matchers inside a `{...}` selector, checked by parsing
/// `<histogram>_count{...}`.
fn selector_matchers(
    decoder: &Decoder,
    line: u64,
    field: &str,
    histogram: &str,
    selector: &str,
) -> Result<String, ConfigError> {
    let trimmed = selector.trim();
    let inner = if trimmed.is_empty() {
        ""
    } else {
        trimmed
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| {
                decoder.error(line, field, "a selector is written {label=\"value\", ...}")
            })?
            .trim()
    };
    let inner = inner.trim_end_matches(',').trim();
    let query = format!("{histogram}_count{{{inner}}}");
    let matchers = promql::parse_series_selector(&query)
        .map_err(|e| decoder.error(line, field, format!("invalid selector: {}", e.message())))?;
    let names = |name: &str| matchers.iter().filter(|m| m.name() == name).count();
    if names("le") > 0 || names("__name__") > 1 {
        return Err(decoder.error(line, field, "the selector may not match le or __name__"));
    }
    Ok(inner.to_string())
}

/// `{matchers, le=~"..."}`.
fn braces(matchers: &str, le: Option<f64>) -> String {
    let mut parts = Vec::new();
    if !matchers.is_empty() {
        parts.push(matchers.to_string());
    }
    if let Some(bound) = le {
        parts.push(format!("le=~\"{}\"", le_pattern(bound)));
    }
    format!("{{{}}}", parts.join(","))
}

/// A regex matching the texts client libraries write for a bucket bound:
/// Go's (`1`, `2.5`, `1e+06`) and Python's (`1.0`), escaped for a PromQL
/// string.
pub fn le_pattern(bound: f64) -> String {
    let mut texts = vec![crate::gofmt::go_g(bound), crate::gofmt::go_f(bound)];
    // Python's prometheus_client: repr(), with Go's exponent for large
    // values; whole numbers keep a ".0".
    let python = python_float(bound);
    texts.push(python);
    let mut seen = Vec::new();
    for text in texts {
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    seen.iter()
        .map(|t| t.replace('.', "\\\\.").replace('+', "\\\\+"))
        .collect::<Vec<_>>()
        .join("|")
}

/// Python's `prometheus_client.utils.floatToGoString` for positive bounds.
fn python_float(value: f64) -> String {
    let go = crate::gofmt::go_g(value);
    if go.contains('e') {
        return go;
    }
    if go.contains('.') {
        go
    } else {
        format!("{go}.0")
    }
}

/// The bucket bounds around `threshold`: `None` when it is one, the
/// largest bound below (or 0) and the smallest above otherwise.
fn bracket(bounds: &[f64], threshold: f64) -> Result<Option<(f64, f64)>, String> {
    if bounds.is_empty() {
        return Err("list the histogram's bucket bounds".to_string());
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("bucket bounds must increase".to_string());
    }
    if bounds.contains(&threshold) {
        return Ok(None);
    }
    let upper = bounds
        .iter()
        .copied()
        .find(|b| *b > threshold && b.is_finite())
        .ok_or_else(|| {
            "the threshold is above every finite bucket bound: nothing to interpolate within"
                .to_string()
        })?;
    let lower = bounds
        .iter()
        .copied()
        .filter(|b| *b < threshold)
        .fold(0.0_f64, f64::max);
    Ok(Some((lower, upper)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_variable_as_sloth_finds_it() {
        assert!(has_window_variable("rate(x[{{.window}}])"));
        assert!(has_window_variable("rate(x[{{ .window }}])"));
        assert!(!has_window_variable("rate(x[5m])"));
        assert!(!has_window_variable("rate(x[{{.windows}}])"));
        assert_eq!(
            render_window("rate(x[{{ .window }}])", "30m").unwrap(),
            "rate(x[30m])"
        );
        assert!(render_window("rate(x[{{.other}}])", "30m").is_err());
        assert!(render_window("rate(x[{{.window}])", "30m").is_err());
    }

    #[test]
    fn le_texts_of_go_and_python_clients() {
        assert_eq!(le_pattern(1.0), "1|1\\\\.0");
        assert_eq!(le_pattern(2.5), "2\\\\.5");
        assert_eq!(le_pattern(1e6), "1e\\\\+06|1000000");
    }

    #[test]
    fn thresholds_between_bounds_are_bracketed() {
        let bounds = [0.1, 0.5, 1.0, 2.5, f64::INFINITY];
        assert_eq!(bracket(&bounds, 2.0), Ok(Some((1.0, 2.5))));
        assert_eq!(bracket(&bounds, 0.05), Ok(Some((0.0, 0.1))));
        assert_eq!(bracket(&bounds, 1.0), Ok(None));
        assert!(bracket(&bounds, 3.0).is_err());
        assert!(bracket(&[1.0, 0.5], 0.7).is_err());
    }
}
