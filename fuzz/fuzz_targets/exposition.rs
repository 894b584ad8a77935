//! Fuzz target for the exposition parsers: the first byte picks the format
//! (even: text, odd: OpenMetrics), the rest is the body. Iterates to the end
//! and checks the invariants every entry must keep, on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use model::exposition::{Entry, Format, Parser};

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
    while let Some(entry) = parser.next() {
        entries += 1;
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
});
