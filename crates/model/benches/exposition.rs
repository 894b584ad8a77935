//! Throughput of the exposition parsers in MB/s over a real node-exporter
//! scrape (`/work/shared/bench/templates/node-exporter-1.5.0.prom`, or the
//! file named by `OSPREY_BENCH_EXPOSITION`). Without the file the benchmark
//! prints why and measures nothing.
//!
//! Run with `cargo bench -p model --bench exposition`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use model::exposition::{Entry, Format, LazyEntry, Parser};

const DEFAULT_INPUT: &str = "/work/shared/bench/templates/node-exporter-1.5.0.prom";

/// Parses everything and returns the number of samples, so the work cannot
/// be optimised away.
fn parse_all(input: &[u8], format: Format) -> usize {
    let mut samples = 0;
    for entry in Parser::new(input, format) {
        match entry {
            Ok(Entry::Sample { .. }) => samples += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    samples
}

/// Like [`parse_all`] through [`Parser::next_lazy`], parsing no series:
/// the cost of a scrape whose series are all in the scrape cache.
fn scan_all(input: &[u8], format: Format) -> usize {
    let mut parser = Parser::new(input, format);
    let mut samples = 0;
    while let Some(entry) = parser.next_lazy() {
        match entry {
            Ok(LazyEntry::Sample(sample)) => samples += sample.series().len().min(1),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    samples
}

fn exposition(criterion: &mut Criterion) {
    let path = std::env::var("OSPREY_BENCH_EXPOSITION").unwrap_or_else(|_| DEFAULT_INPUT.into());
    let Ok(text) = std::fs::read(&path) else {
        eprintln!("skipping the exposition benchmark: cannot read {path}");
        return;
    };
    // The OpenMetrics variant of the same body: no comments, `# EOF` last.
    let mut openmetrics: Vec<u8> = text
        .split(|&byte| byte == b'\n')
        .filter(|line| {
            !line.is_empty()
                && (!line.starts_with(b"#")
                    || line.starts_with(b"# HELP ")
                    || line.starts_with(b"# TYPE "))
        })
        .flat_map(|line| line.iter().copied().chain(std::iter::once(b'\n')))
        .collect();
    openmetrics.extend_from_slice(b"# EOF\n");

    // Both variants must parse to the end, or the numbers mean nothing.
    let text_samples = parse_all(&text, Format::Text);
    let openmetrics_samples = parse_all(&openmetrics, Format::OpenMetrics);
    assert_eq!(
        text_samples, openmetrics_samples,
        "the OpenMetrics variant stopped early"
    );
    assert!(Parser::new(&openmetrics, Format::OpenMetrics).all(|entry| entry.is_ok()));
    assert!(Parser::new(&text, Format::Text).all(|entry| entry.is_ok()));
    assert_eq!(scan_all(&text, Format::Text), text_samples);

    let mut group = criterion.benchmark_group("exposition");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("text", |bencher| {
        bencher.iter(|| parse_all(std::hint::black_box(&text), Format::Text))
    });
    group.bench_function("text_lazy", |bencher| {
        bencher.iter(|| scan_all(std::hint::black_box(&text), Format::Text))
    });
    group.throughput(Throughput::Bytes(openmetrics.len() as u64));
    group.bench_function("openmetrics", |bencher| {
        bencher.iter(|| parse_all(std::hint::black_box(&openmetrics), Format::OpenMetrics))
    });
    group.finish();
}

criterion_group!(benches, exposition);
criterion_main!(benches);
