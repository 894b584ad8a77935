//! What the reference-exporter comparisons share: an exposition read into
//! a map by sample name, and its label-name sets.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::{BTreeMap, BTreeSet};

use model::exposition::{Entry, Format, Parser};

/// Sample name -> samples (labels, value).
pub type Exposition = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Reads a text exposition, leaving out the samples whose name `skip`
/// accepts (the exporters' own runtime and handler families). Panics on
/// a line that does not parse.
pub fn parse(text: &str, skip: impl Fn(&str) -> bool) -> Exposition {
    let mut out: Exposition = BTreeMap::new();
    for entry in Parser::new(text.as_bytes(), Format::Text) {
        let entry = entry.unwrap_or_else(|e| panic!("bad exposition: {e}\n{text}"));
        if let Entry::Sample {
            name,
            labels,
            value,
            ..
        } = entry
        {
            if skip(&name) {
                continue;
            }
            let labels = labels
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            out.entry(name.into_owned())
                .or_default()
                .push((labels, value));
        }
    }
    out
}

/// Sample name -> the label-name sets its samples carry.
pub fn label_names(e: &Exposition) -> BTreeMap<String, BTreeSet<Vec<String>>> {
    e.iter()
        .map(|(name, samples)| {
            let sets = samples
                .iter()
                .map(|(labels, _)| labels.keys().cloned().collect())
                .collect();
            (name.clone(), sets)
        })
        .collect()
}
