//! Fuzz target for the text import endpoint's parse
//! (`server::ingest::parse_import_on`): the first byte picks how many
//! pieces the body is cut into, the rest is the body. Cut into pieces
//! parsed on threads, the body must give what it gives whole: the same
//! series with the same samples in order, or the same error. And whatever
//! the whole body gives must agree with the exposition iterator: each
//! sample of `Parser::next` is in its series, in order, and the import
//! fails exactly when the iterator fails (or a series it accepts is one
//! the store refuses: a `__name__` label beside the name).
#![no_main]
use libfuzzer_sys::fuzz_target;
use model::exposition::{Entry, Format, Parser, sample_labels};
use server::ingest::{ImportSeries, parse_import_on};

const NOW_MS: i64 = 1_000;

fn bits(series: &[ImportSeries]) -> Vec<(String, Vec<(i64, u64)>)> {
    series
        .iter()
        .map(|(labels, samples)| {
            (
                labels.to_string(),
                samples.iter().map(|&(t, v)| (t, v.to_bits())).collect(),
            )
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let pieces = usize::from(selector % 8) + 1;
    let whole = parse_import_on(body, &[], NOW_MS, 1, usize::MAX).map(|p| p.grouped());
    let cut = parse_import_on(body, &[], NOW_MS, pieces, 1).map(|p| p.grouped());
    match (&whole, &cut) {
        (Ok(a), Ok(b)) => assert_eq!(bits(a), bits(b)),
        (Err(a), Err(b)) => assert_eq!(a.message, b.message),
        _ => panic!("whole and {pieces} pieces disagree"),
    }
    // The iterator's samples, grouped per label set.
    let mut want: Vec<(model::Labels, Vec<(i64, f64)>)> = Vec::new();
    let mut iterator_failed = false;
    let mut name_label = false;
    for entry in Parser::new(body, Format::Text) {
        match entry {
            Ok(Entry::Sample {
                name,
                labels,
                value,
                timestamp_ms,
                ..
            }) => {
                name_label |= labels.iter().any(|(n, _)| n == "__name__");
                let series = sample_labels(&name, &labels);
                let sample = (timestamp_ms.unwrap_or(NOW_MS), value);
                match want.iter_mut().find(|(l, _)| *l == series) {
                    Some((_, samples)) => samples.push(sample),
                    None => want.push((series, vec![sample])),
                }
            }
            Ok(_) => {}
            Err(_) => {
                iterator_failed = true;
                break;
            }
        }
    }
    match whole {
        Ok(got) => {
            assert!(!iterator_failed && !name_label);
            assert_eq!(bits(&got), bits(&want));
        }
        Err(_) => assert!(iterator_failed || name_label),
    }
});
