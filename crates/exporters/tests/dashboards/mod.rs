//! The built-in dashboards of an exporter (`ui/dashboards/<uid>.json`):
//! every query parses as PromQL, and the metric names it reads are ones
//! the exporter writes, which the including test checks against a real
//! scrape.

use std::collections::BTreeSet;
use std::path::Path;

/// The metric names with one of `prefixes` that the dashboard's queries
/// and variables read, after checking that every query parses.
pub fn metric_names(uid: &str, prefixes: &[&str]) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../ui/dashboards")
        .join(format!("{uid}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{uid}.json: {e}"));
    let mut texts = Vec::new();
    for row in dashboard["rows"].as_array().into_iter().flatten() {
        for panel in row["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().to_string();
                // Variables as the UI expands them.
                let query = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$instance", ".*")
                    .replace("$name", ".*")
                    .replace("$datname", ".*");
                if let Err(e) = promql::parse(&query) {
                    panic!("{uid}.json: {expr:?} does not parse: {e:?}");
                }
                texts.push(expr);
            }
        }
    }
    for variable in dashboard["variables"].as_array().into_iter().flatten() {
        texts.push(variable["query"].as_str().unwrap_or_default().to_string());
    }
    let name = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").expect("regex");
    let mut names = BTreeSet::new();
    for text in &texts {
        for found in name.find_iter(text) {
            let word = found.as_str();
            if prefixes.iter().any(|p| word.starts_with(p)) {
                names.insert(word.to_string());
            }
        }
    }
    assert!(!names.is_empty(), "{uid}.json reads no metric");
    names
}
