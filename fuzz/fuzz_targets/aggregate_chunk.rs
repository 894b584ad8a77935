//! Fuzzes the `Aggregate` chunk decoder of downsampled tiers with arbitrary
//! bytes, and the encoder with samples derived from the bytes: a run built
//! from them must come back unchanged, however it is chunked and joined.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::storage::Aggregate;
use tsdb::downsample::{
    AggregateSet, Column, Kept, Run, decode_chunk, decode_chunk_column, encode_run,
    encode_run_v1,
};

const AGGREGATES: [Aggregate; 8] = [
    Aggregate::Last,
    Aggregate::Count,
    Aggregate::Sum,
    Aggregate::Min,
    Aggregate::Max,
    Aggregate::Counter,
    Aggregate::Resets,
    Aggregate::SumCount,
];

fn same(a: &Option<Column>, b: &Option<Column>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_column(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn same_column(a: &Column, b: &Column) -> bool {
    let bits = |c: &Column| {
        (
            c.first.to_bits(),
            c.pairs.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>(),
            c.offsets.iter().map(|o| o.to_bits()).collect::<Vec<_>>(),
            c.counts.iter().map(|o| o.to_bits()).collect::<Vec<_>>(),
        )
    };
    bits(a) == bits(b)
}

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes: an error or a run, never a panic. The one-column
    // decoder checks no more than the full one: where that decodes, it
    // decodes the same values.
    let full = decode_chunk(data);
    for aggregate in AGGREGATES {
        let column = decode_chunk_column(data, aggregate);
        if let Ok(run) = &full {
            let column = column.expect("a chunk the full decoder reads");
            assert!(same(&column, &Column::from_run(run, aggregate)), "{aggregate:?}");
        }
    }

    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut time = 0i64;
    for record in rest.chunks_exact(3) {
        time += 1 + i64::from(record[0]) * 1000;
        // Small integers (counters with resets) or raw-ish floats.
        let value = if selector & 1 == 0 {
            f64::from(u16::from_le_bytes([record[1], record[2]]) % 500)
        } else {
            f64::from(i16::from_le_bytes([record[1], record[2]])) / 7.0
        };
        samples.push((time, value));
    }
    let resolution = [0i64, 10_000, 60_000, 300_000][usize::from(selector >> 1 & 3)];
    let Some(run) = Run::from_samples(&samples, resolution) else {
        return;
    };
    // Version 1 (every aggregate) and a chosen set (a counter's or a
    // gauge's in version 2 chunks, or all in version 1): each comes back
    // with what it keeps.
    let set = [AggregateSet::Counter, AggregateSet::Gauge, AggregateSet::All]
        [usize::from(selector >> 3) % 3];
    let counter = set != AggregateSet::Gauge;
    let gauge = set != AggregateSet::Counter;
    // Gauge points read from chunks of kind 2 (no last value): written
    // back as kind 2, their last is the window's mean.
    let mut older = run.clone();
    for p in &mut older.points {
        p.kept = Kept::GaugeMean;
    }
    let mut joined: Option<Run> = None;
    for chunk in encode_run(&older, AggregateSet::Gauge) {
        let part = decode_chunk(&chunk.data).expect("own chunk decodes");
        for aggregate in AGGREGATES {
            let column = decode_chunk_column(&chunk.data, aggregate).expect("own chunk");
            assert!(same(&column, &Column::from_run(&part, aggregate)), "{aggregate:?}");
        }
        match joined.as_mut() {
            Some(j) => j.append(part),
            None => joined = Some(part),
        }
    }
    for (a, b) in joined.expect("at least one chunk").points.iter().zip(&run.points) {
        assert_eq!(a.kept, Kept::GaugeMean);
        assert_eq!((a.min.to_bits(), a.max.to_bits()), (b.min.to_bits(), b.max.to_bits()));
        assert_eq!(a.last.to_bits(), (a.sum / a.count).to_bits());
    }
    for (version, chunks) in [(1, encode_run_v1(&run)), (2, encode_run(&run, set))] {
        let mut joined: Option<Run> = None;
        for chunk in chunks {
            let part = decode_chunk(&chunk.data).expect("own chunk decodes");
            match joined.as_mut() {
                Some(j) => j.append(part),
                None => joined = Some(part),
            }
        }
        let joined = joined.expect("at least one chunk");
        assert_eq!(joined.points.len(), run.points.len());
        for (a, b) in joined.points.iter().zip(&run.points) {
            assert_eq!((a.t, a.count.to_bits()), (b.t, b.count.to_bits()));
            // Every set keeps the last value.
            assert_eq!(a.last.to_bits(), b.last.to_bits());
            if version == 1 || counter {
                // Offsets are re-based per chunk and shifted back when
                // joined: equal up to float rounding.
                let (x, y) = (a.counter(), b.counter());
                assert!((x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0), "{x} vs {y}");
            }
            if version == 1 || gauge {
                assert_eq!((a.min.to_bits(), a.max.to_bits()), (b.min.to_bits(), b.max.to_bits()));
                // A gauge's sum is rounded to its values' decimals.
                assert!((a.sum - b.sum).abs() <= 1e-9 * b.sum.abs().max(1.0), "{} vs {}", a.sum, b.sum);
            }
        }
    }
});
