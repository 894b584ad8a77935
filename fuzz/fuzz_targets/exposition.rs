//! Fuzz target for the exposition parsers: the first byte picks the format
//! (even: text, odd: OpenMetrics), the rest is the body. Iterates to the end
//! and checks the invariants every entry must keep, on any input. Then
//! parses the body again through `Parser::next_lazy`, parsing every series
//! (as a scrape cache that always misses), and checks that it gives the
//! same entries and the same error, and that a series text parses the same
//! wherever it appears (what lets the scrape cache skip parsing it), and
//! once more with `Parser::reuse_series`.
//! Last, it cuts the body after a newline (the selector's other bits pick
//! which) and parses the two pieces with `Parser::fragment`, as `osprey
//! import` does on several threads: the entries and the error must be the
//! whole body's, once the second piece's lines are shifted.
#![no_main]
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use model::exposition::{Entry, Format, LazyEntry, ParseError, Parser};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = if selector % 2 == 0 {
        Format::Text
    } else {
        Format::OpenMetrics
    };
    let mut parser = Parser::new(body, format);
    let mut entries = 0usize;
    let mut full: Vec<Result<Entry<'_>, ParseError>> = Vec::new();
    while let Some(entry) = parser.next() {
        entries += 1;
        full.push(entry.clone());
        match entry {
            Ok(Entry::Sample { name, labels, exemplar, .. }) => {
                // Names are `str`, so valid UTF-8 by construction; check
                // they are non-empty and that label names are unique.
                assert!(!name.is_empty());
                for (index, (label_name, _)) in labels.iter().enumerate() {
                    assert!(!label_name.is_empty());
                    assert!(labels[..index].iter().all(|(other, _)| other != label_name));
                }
                if let Some(exemplar) = exemplar {
                    assert!(format == Format::OpenMetrics);
                    assert!(exemplar.labels.iter().all(|(name, _)| !name.is_empty()));
                }
                let _ = model::exposition::sample_labels(&name, &labels);
            }
            Ok(Entry::Unit { .. }) => assert!(format == Format::OpenMetrics),
            Ok(_) => {}
            Err(error) => {
                assert!(error.line >= 1 && error.column >= 1);
                assert!(!error.message.is_empty());
                // Iteration stops after the first error.
                assert!(parser.next().is_none());
                break;
            }
        }
        // Each entry consumes at least one line.
        assert!(entries <= body.len() + 1);
    }

    // The lazy path, every series parsed: the same entries, the same error.
    let mut lazy: Vec<Result<Entry<'_>, ParseError>> = Vec::new();
    let mut series_seen: HashMap<&[u8], String> = HashMap::new();
    let mut parser = Parser::new(body, format);
    while let Some(entry) = parser.next_lazy() {
        let entry = match entry {
            Ok(LazyEntry::Help { metric, text }) => Ok(Entry::Help { metric, text }),
            Ok(LazyEntry::Type { metric, kind }) => Ok(Entry::Type { metric, kind }),
            Ok(LazyEntry::Unit { metric, unit }) => Ok(Entry::Unit { metric, unit }),
            Ok(LazyEntry::Sample(sample)) => {
                let parsed = sample.parse_series();
                // A series text once accepted parses the same everywhere.
                if let Some(previous) = series_seen.get(sample.series()) {
                    assert_eq!(&format!("{parsed:?}"), previous);
                } else if parsed.is_ok() {
                    series_seen.insert(sample.series(), format!("{parsed:?}"));
                }
                parsed.map(|(name, labels)| Entry::Sample {
                    name,
                    labels,
                    value: sample.value,
                    timestamp_ms: sample.timestamp_ms,
                    exemplar: sample.exemplar.map(|exemplar| *exemplar),
                })
            }
            Err(error) => Err(error),
        };
        let failed = entry.is_err();
        lazy.push(entry);
        if failed {
            break;
        }
    }
    // Debug output compares NaN values as equal.
    assert_eq!(format!("{lazy:?}"), format!("{full:?}"));

    // The lazy path again, taking a line's series as the previous line's
    // text where it starts with it: the same entries, the same error.
    let mut reused: Vec<Result<Entry<'_>, ParseError>> = Vec::new();
    let mut parser = Parser::new(body, format).reuse_series();
    while let Some(entry) = parser.next_lazy() {
        let entry = entry.and_then(|entry| match entry {
            LazyEntry::Help { metric, text } => Ok(Entry::Help { metric, text }),
            LazyEntry::Type { metric, kind } => Ok(Entry::Type { metric, kind }),
            LazyEntry::Unit { metric, unit } => Ok(Entry::Unit { metric, unit }),
            LazyEntry::Sample(sample) => sample.parse_series().map(|(name, labels)| Entry::Sample {
                name,
                labels,
                value: sample.value,
                timestamp_ms: sample.timestamp_ms,
                exemplar: sample.exemplar.map(|exemplar| *exemplar),
            }),
        });
        let failed = entry.is_err();
        reused.push(entry);
        if failed {
            break;
        }
    }
    assert_eq!(format!("{reused:?}"), format!("{full:?}"));

    // Two fragments, cut after the newline the selector picks.
    let newlines: Vec<usize> = body
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    if newlines.is_empty() {
        return;
    }
    let cut = newlines[usize::from(selector >> 1) % newlines.len()];
    let (head, tail) = body.split_at(cut);
    let mut pieces: Vec<Result<Entry<'_>, ParseError>> =
        Parser::fragment(head, format, !tail.is_empty()).collect();
    if !tail.is_empty() && !pieces.last().is_some_and(|r| r.is_err()) {
        let before = head.iter().filter(|&&b| b == b'\n').count();
        pieces.extend(Parser::fragment(tail, format, false).map(|r| {
            r.map_err(|mut e| {
                e.line += before;
                e
            })
        }));
    }
    assert_eq!(format!("{pieces:?}"), format!("{full:?}"));
});
