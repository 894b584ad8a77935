//! Tests for the chunk encodings: exact bytes, round trips, corruption.

use super::*;
use proptest::prelude::*;

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn xor_chunk(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut appender = XorAppender::new();
    for &(t, v) in samples {
        appender.append(t, v);
    }
    appender.bytes().to_vec()
}

fn dense_chunk(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_dense(samples, &mut out);
    out
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

/// Encodes with both encodings and checks both decode to the same bits.
fn check_round_trip(samples: &[(i64, f64)]) {
    let expected = bits(samples);
    let xor_samples = &samples[..samples.len().min(MAX_XOR_SAMPLES)];
    let decoded = decode_all(Encoding::Xor, &xor_chunk(xor_samples)).expect("xor decodes");
    assert_eq!(bits(&decoded), bits(xor_samples), "xor round trip");
    let decoded = decode_all(Encoding::Dense, &dense_chunk(samples)).expect("dense decodes");
    assert_eq!(bits(&decoded), expected, "dense round trip");
}

fn regular_times(n: usize) -> Vec<i64> {
    (0..n as i64)
        .map(|i| 1_700_000_000_000 + 15_000 * i)
        .collect()
}

fn with_values(times: &[i64], values: impl Fn(usize) -> f64) -> Vec<(i64, f64)> {
    times
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, values(i)))
        .collect()
}

#[test]
fn encoding_ids_are_stable() {
    assert_eq!(Encoding::from_u8(1), Some(Encoding::Xor));
    assert_eq!(Encoding::from_u8(2), Some(Encoding::Dense));
    assert_eq!(Encoding::from_u8(0), None);
    assert_eq!(Encoding::from_u8(3), None);
    assert_eq!(Encoding::Xor as u8, 1);
    assert_eq!(Encoding::Dense as u8, 2);
}

#[test]
fn xor_first_sample_bytes_match_the_format() {
    // Count 1; varint(1000) = zigzag 2000 = 0xd0 0x0f; then 1.0's bits.
    assert_eq!(
        xor_chunk(&[(1000, 1.0)]),
        vec![0, 1, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn xor_regular_constant_samples_cost_two_bits_each() {
    let samples = with_values(&regular_times(120), |_| 5.0);
    let chunk = xor_chunk(&samples);
    // Header, t0 varint, 8 bytes value, delta varint, 1 bit value, then 2 bits per sample.
    let expected_bits = 16 + 6 * 8 + 64 + 2 * 8 + 1 + 118 * 2;
    assert_eq!(chunk.len(), (expected_bits as usize).div_ceil(8));
    check_round_trip(&samples);
}

#[test]
fn empty_chunks_decode_to_nothing() {
    assert_eq!(
        decode_all(Encoding::Xor, XorAppender::new().bytes()).unwrap(),
        vec![]
    );
    assert_eq!(
        decode_all(Encoding::Dense, &dense_chunk(&[])).unwrap(),
        vec![]
    );
    let appender = XorAppender::default();
    assert_eq!(appender.num_samples(), 0);
    assert_eq!(appender.first_time(), None);
    assert_eq!(appender.last_time(), None);
}

#[test]
fn appender_reports_times_and_memory() {
    let mut appender = XorAppender::new();
    appender.append(-5, 1.0);
    appender.append(10, 2.0);
    appender.append(7_000_000_000, 3.0);
    assert_eq!(appender.num_samples(), 3);
    assert_eq!(appender.first_time(), Some(-5));
    assert_eq!(appender.last_time(), Some(7_000_000_000));
    assert!(appender.memory_bytes() >= appender.bytes().len());
}

#[test]
fn special_values_round_trip_bit_exactly() {
    let specials = [
        f64::from_bits(STALE_NAN),
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        -f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1.0,
        0.1,
        9.0e18,
        -9.3e18,
        1e300,
    ];
    let times = regular_times(specials.len());
    check_round_trip(&with_values(&times, |i| specials[i]));
    // Each special value inside an otherwise integer series becomes an exception.
    for &special in &specials {
        let samples = with_values(
            &regular_times(50),
            |i| if i == 17 { special } else { i as f64 },
        );
        check_round_trip(&samples);
        let samples = with_values(&regular_times(50), |_| special);
        check_round_trip(&samples);
    }
}

#[test]
fn extreme_timestamps_round_trip() {
    let cases: Vec<Vec<i64>> = vec![
        vec![i64::MIN, i64::MIN + 1, 0, i64::MAX - 1, i64::MAX],
        vec![i64::MIN, i64::MAX],
        vec![-1_000_000, -999_985, -1, 0, 1, 1 << 40, (1 << 40) + 1],
        vec![
            0,
            8192,
            16385,
            16386,
            16387 + (1 << 19),
            16388 + (1 << 20),
            16389 + (1 << 21),
        ],
        vec![42],
    ];
    for times in cases {
        check_round_trip(&with_values(&times, |i| i as f64 * 0.5));
    }
}

#[test]
fn xor_delta_of_delta_bucket_edges_round_trip() {
    // The one-sided ranges: 2^(n-1) fits an n-bit bucket, −2^(n-1) does not.
    for n_bits in [14u32, 17, 20] {
        let half = 1i64 << (n_bits - 1);
        for delta_of_delta in [half - 1, half, half + 1, -(half - 1), -half, -half - 1] {
            let base = 1_000_000_000i64;
            let times = [
                0,
                base,
                2 * base + delta_of_delta,
                3 * base + delta_of_delta,
            ];
            check_round_trip(&with_values(&times, |i| i as f64));
        }
    }
}

#[test]
fn dense_picks_compact_layouts() {
    // Constant with regular times: a fixed-size chunk whatever the length.
    let constant = dense_chunk(&with_values(&regular_times(1000), |_| 3.5));
    assert!(
        constant.len() < 24,
        "constant chunk is {} bytes",
        constant.len()
    );
    // A counter growing by a constant step: as small as a constant.
    let counter = dense_chunk(&with_values(&regular_times(1000), |i| {
        100.0 + 7.0 * i as f64
    }));
    assert!(
        counter.len() < 30,
        "linear counter chunk is {} bytes",
        counter.len()
    );
    // Multiples of 1024 cost the bits of the multiplier only.
    let kib = with_values(&regular_times(1000), |i| 1024.0 * ((i * 7919) % 16) as f64);
    let kib_chunk = dense_chunk(&kib);
    assert!(
        kib_chunk.len() < 1000 * 5 / 8 + 40,
        "1024-multiple chunk is {} bytes",
        kib_chunk.len()
    );
    check_round_trip(&kib);
    // Two decimals.
    let cents = with_values(&regular_times(1000), |i| ((i * 37) % 100) as f64 / 100.0);
    let cents_chunk = dense_chunk(&cents);
    assert!(
        cents_chunk.len() < 1000 + 40,
        "two-decimal chunk is {} bytes",
        cents_chunk.len()
    );
    check_round_trip(&cents);
}

#[test]
fn appender_bytes_are_a_valid_chunk_after_every_append() {
    let samples = synthetic_series(SeriesKind::FullPrecision, 300, 7, Timestamps::Jittered);
    let mut appender = XorAppender::new();
    for (count, &(t, v)) in samples.iter().enumerate() {
        appender.append(t, v);
        let decoded = decode_all(Encoding::Xor, appender.bytes()).unwrap();
        assert_eq!(bits(&decoded), bits(&samples[..=count]));
    }
}

#[test]
fn truncating_at_every_byte_never_panics_and_never_returns_more() {
    for kind in SeriesKind::ALL {
        for timestamps in [Timestamps::Regular, Timestamps::Jittered, Timestamps::Gappy] {
            let samples = synthetic_series(kind, 130, 3, timestamps);
            for (encoding, chunk) in [
                (Encoding::Xor, xor_chunk(&samples)),
                (Encoding::Dense, dense_chunk(&samples)),
            ] {
                for end in 0..chunk.len() {
                    let truncated = &chunk[..end];
                    if let Ok(mut iter) = ChunkIter::new(encoding, truncated) {
                        let decoded: Vec<_> = iter.by_ref().collect();
                        assert!(decoded.len() <= samples.len());
                        // What was decoded before the cut is the true prefix.
                        assert_eq!(bits(&decoded), bits(&samples[..decoded.len()]));
                        if decoded.len() < samples.len() {
                            assert!(
                                iter.err().is_some(),
                                "{encoding:?} cut at {end} ended silently"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn corrupt_headers_are_errors() {
    assert!(ChunkIter::new(Encoding::Xor, &[][..]).is_err());
    assert!(ChunkIter::new(Encoding::Xor, &[0][..]).is_err());
    assert!(ChunkIter::new(Encoding::Dense, &[][..]).is_err());
    // A huge sample count.
    assert!(ChunkIter::new(Encoding::Dense, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0][..]).is_err());
    // An over-long varint.
    assert!(ChunkIter::new(Encoding::Dense, &[0xff; 12][..]).is_err());
    // Unknown section kinds.
    assert!(ChunkIter::new(Encoding::Dense, &[1, 2, 9, 0, 0][..]).is_err());
    assert!(ChunkIter::new(Encoding::Dense, &[1, 2, 0, 0, 9, 0][..]).is_err());
    let error = decode_all(Encoding::Dense, &[1, 2, 9, 0, 0]).unwrap_err();
    assert!(error.to_string().starts_with("corrupt chunk: "));
    // An Xor chunk whose count promises more than its bits hold.
    let mut chunk = xor_chunk(&[(1, 1.0), (2, 2.0)]);
    chunk[1] = 200;
    assert!(decode_all(Encoding::Xor, &chunk).is_err());
}

#[test]
fn iterator_owns_or_borrows() {
    let samples = with_values(&regular_times(10), |i| i as f64);
    let chunk = dense_chunk(&samples);
    let owned: Vec<_> = ChunkIter::new(Encoding::Dense, chunk.clone())
        .unwrap()
        .collect();
    let borrowed: Vec<_> = ChunkIter::new(Encoding::Dense, &chunk[..])
        .unwrap()
        .collect();
    assert_eq!(owned, samples);
    assert_eq!(borrowed, samples);
}

#[test]
fn dense_appends_to_existing_bytes() {
    let samples = with_values(&regular_times(10), |i| i as f64);
    let mut out = vec![0xaa, 0xbb];
    encode_dense(&samples, &mut out);
    assert_eq!(&out[..2], &[0xaa, 0xbb]);
    assert_eq!(decode_all(Encoding::Dense, &out[2..]).unwrap(), samples);
}

// -- Synthetic series of the benchmark's kinds ----------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum SeriesKind {
    Constant,
    IntegerCounter,
    DecimalCounter,
    IntegerGauge,
    KibGauge,
    DecimalGauge,
    FullPrecision,
}

impl SeriesKind {
    const ALL: [SeriesKind; 7] = [
        SeriesKind::Constant,
        SeriesKind::IntegerCounter,
        SeriesKind::DecimalCounter,
        SeriesKind::IntegerGauge,
        SeriesKind::KibGauge,
        SeriesKind::DecimalGauge,
        SeriesKind::FullPrecision,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Timestamps {
    Regular,
    Jittered,
    Gappy,
}

/// A small deterministic generator (xorshift), so tests need no seed files.
struct Random(u64);

impl Random {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn synthetic_series(
    kind: SeriesKind,
    n: usize,
    seed: u64,
    timestamps: Timestamps,
) -> Vec<(i64, f64)> {
    let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut time = 1_700_000_000_000i64 + (seed % 15_000) as i64;
    let mut level = 1000.0 + (random.next_u64() % 100_000) as f64;
    let rate = 1.0 + (random.next_u64() % 50) as f64;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = match timestamps {
            Timestamps::Regular => time,
            Timestamps::Jittered => time + (random.next_u64() % 41) as i64 - 20,
            Timestamps::Gappy => time,
        };
        let value = match kind {
            SeriesKind::Constant => 1.0,
            SeriesKind::IntegerCounter => {
                level += (rate * (0.5 + random.unit())).round();
                level
            }
            SeriesKind::DecimalCounter => {
                level += rate * random.unit();
                (level * 100.0).round() / 100.0
            }
            SeriesKind::IntegerGauge => {
                level += (random.unit() - 0.5) * 20.0;
                level.round()
            }
            SeriesKind::KibGauge => {
                level += (random.unit() - 0.5) * 40.0;
                level.round() * 1024.0
            }
            SeriesKind::DecimalGauge => {
                level += random.unit() - 0.5;
                (level * 100.0).round() / 100.0
            }
            SeriesKind::FullPrecision => {
                level += random.unit() - 0.5;
                level / 3.0
            }
        };
        samples.push((t, value));
        time += 15_000;
        if timestamps == Timestamps::Gappy && random.next_u64().is_multiple_of(10) {
            time += 15_000 * (random.next_u64() % 5) as i64;
        }
    }
    samples
}

#[test]
fn synthetic_series_round_trip() {
    for kind in SeriesKind::ALL {
        for timestamps in [Timestamps::Regular, Timestamps::Jittered, Timestamps::Gappy] {
            for seed in 1..6 {
                check_round_trip(&synthetic_series(kind, 500, seed, timestamps));
            }
        }
    }
}

/// Prints the bytes-per-sample table of docs/format/chunks.md.
#[test]
fn dense_size_table() {
    let mut report = String::from(
        "| series kind | timestamps | xor 120 | dense 120 | dense 720 |\n|---|---|---|---|---|\n",
    );
    // The benchmark's mix: 43% constant, 28% counters, 23% gauges, 6% floats.
    let mix_weight = |kind: SeriesKind| match kind {
        SeriesKind::Constant => 0.43,
        SeriesKind::IntegerCounter | SeriesKind::DecimalCounter => 0.14,
        SeriesKind::IntegerGauge | SeriesKind::KibGauge | SeriesKind::DecimalGauge => 0.23 / 3.0,
        SeriesKind::FullPrecision => 0.06,
    };
    let mut mix = [[0.0f64; 3]; 2];
    for kind in SeriesKind::ALL {
        for (timestamps_index, timestamps) in [Timestamps::Regular, Timestamps::Jittered]
            .into_iter()
            .enumerate()
        {
            let mut sizes = [0usize; 3];
            let mut n_samples = 0;
            for seed in 1..=20 {
                let samples = synthetic_series(kind, 720, seed, timestamps);
                n_samples += samples.len();
                for chunk in samples.chunks(120) {
                    sizes[0] += xor_chunk(chunk).len();
                    sizes[1] += dense_chunk(chunk).len();
                }
                sizes[2] += dense_chunk(&samples).len();
            }
            let per_sample = |bytes: usize| bytes as f64 / n_samples as f64;
            report.push_str(&format!(
                "| {kind:?} | {timestamps:?} | {:.3} | {:.3} | {:.3} |\n",
                per_sample(sizes[0]),
                per_sample(sizes[1]),
                per_sample(sizes[2])
            ));
            for (column, &size) in sizes.iter().enumerate() {
                mix[timestamps_index][column] += mix_weight(kind) * per_sample(size);
            }
            // Dense must never lose to the head encoding by more than a header.
            assert!(
                sizes[1] <= sizes[0] + 20 * 6 * 4,
                "{kind:?} {timestamps:?}: {sizes:?}"
            );
        }
    }
    for (timestamps, row) in ["Regular", "Jittered"].iter().zip(mix) {
        report.push_str(&format!(
            "| benchmark mix | {timestamps} | {:.3} | {:.3} | {:.3} |\n",
            row[0], row[1], row[2]
        ));
    }
    println!("{report}");
}

/// Informal decode speed, printed only; timing is never asserted in tests.
#[test]
fn informal_decode_timing() {
    let mut chunks = Vec::new();
    for kind in SeriesKind::ALL {
        for seed in 1..=20 {
            let samples = synthetic_series(kind, 720, seed, Timestamps::Regular);
            for chunk in samples.chunks(120) {
                chunks.push((xor_chunk(chunk), dense_chunk(chunk), chunk.len()));
            }
        }
    }
    let total: usize = chunks.iter().map(|c| c.2).sum();
    for (name, encoding) in [("xor", Encoding::Xor), ("dense", Encoding::Dense)] {
        // The fastest of several rounds, to see through a busy machine.
        let mut best_nanos = f64::MAX;
        let mut checksum = 0u64;
        for _ in 0..9 {
            let start = std::time::Instant::now();
            for (xor, dense, _) in &chunks {
                let bytes = if encoding == Encoding::Xor {
                    xor
                } else {
                    dense
                };
                for (t, v) in ChunkIter::new(encoding, &bytes[..]).unwrap() {
                    checksum = checksum.wrapping_add(t as u64 ^ v.to_bits());
                }
            }
            best_nanos = best_nanos.min(start.elapsed().as_nanos() as f64 / total as f64);
        }
        println!("informal: {name} decode {best_nanos:.2} ns/sample (checksum {checksum:x})");
    }
}

// -- Property tests ----------------------------------------------------------------

fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64 / 100.0),
        (-1_000i64..1_000).prop_map(|i| i as f64 * 1024.0),
        Just(f64::from_bits(STALE_NAN)),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        any::<u64>().prop_map(|b| f64::from_bits(b & 0x000f_ffff_ffff_ffff)),
    ]
}

fn any_samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
    let times = prop_oneof![
        // Regular.
        (any::<i64>(), 1i64..100_000, 0usize..300).prop_map(|(t0, step, n)| (0..n as i64)
            .map(|i| t0.wrapping_add(step.wrapping_mul(i)))
            .collect::<Vec<_>>()),
        // Jittered.
        (any::<i32>(), prop::collection::vec(-50i64..50, 0..300)).prop_map(|(t0, jitter)| {
            jitter
                .iter()
                .enumerate()
                .map(|(i, j)| i64::from(t0) + 15_000 * i as i64 + j)
                .collect()
        }),
        // Any increasing times, with any gaps.
        prop::collection::vec(any::<i64>(), 0..200).prop_map(|mut times| {
            times.sort_unstable();
            times.dedup();
            times
        }),
    ];
    times
        .prop_flat_map(|times| {
            let n = times.len();
            let values = prop_oneof![
                prop::collection::vec(any_value(), n),
                // Counters: integer or two-decimal steps.
                (any::<i32>(), prop::collection::vec(0i64..1000, n)).prop_map(|(start, steps)| {
                    let mut level = i64::from(start);
                    steps
                        .iter()
                        .map(|s| {
                            level += s;
                            level as f64 / 100.0
                        })
                        .collect()
                }),
                // One value repeated, with occasional specials.
                (
                    any_value(),
                    prop::collection::vec((any::<bool>(), any_value()), n)
                )
                    .prop_map(|(base, mix)| {
                        mix.iter()
                            .map(|&(special, v)| if special { v } else { base })
                            .collect()
                    }),
            ];
            (Just(times), values)
        })
        .prop_map(|(times, values)| times.into_iter().zip(values).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn round_trip_any_samples(samples in any_samples()) {
        check_round_trip(&samples);
    }

    #[test]
    fn garbage_never_panics(first in any::<u8>(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let encoding = if first & 1 == 0 { Encoding::Xor } else { Encoding::Dense };
        if let Ok(iter) = ChunkIter::new(encoding, &bytes[..]) {
            let claimed = iter.size_hint().1.unwrap_or(0);
            prop_assert!(iter.count() <= claimed);
        }
        let _ = decode_all(encoding, &bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(samples in any_samples(), flip_at in any::<usize>(), flip in 1u8..=255) {
        for mut chunk in [xor_chunk(&samples[..samples.len().min(MAX_XOR_SAMPLES)]), dense_chunk(&samples)] {
            if chunk.is_empty() { continue; }
            let index = flip_at % chunk.len();
            chunk[index] ^= flip;
            let _ = decode_all(Encoding::Xor, &chunk);
            let _ = decode_all(Encoding::Dense, &chunk);
        }
    }
}

/// Reading an appender from a checkpoint yields every sample at or after
/// the requested time, exactly as decoding from the start does, at every
/// chunk length (before, at and after each checkpoint) and start time.
#[test]
fn xor_iter_from_checkpoints_matches_full_decode() {
    let mut appender = XorAppender::new();
    let mut checkpoints = XorCheckpoints::default();
    let mut samples = Vec::new();
    let mut t = 1_000i64;
    for i in 0..120u32 {
        // Irregular intervals and values that exercise every XOR branch:
        // repeats, small changes, sign flips, NaN-free big jumps.
        t += 15_000 + i64::from(i % 7) * 13 - 20;
        let v = match i % 5 {
            0 => 1.0,
            1 => f64::from(i) * 0.25,
            2 => -f64::from(i * i),
            3 => 1e300 / f64::from(i + 1),
            _ => f64::from(i % 3),
        };
        appender.append(t, v);
        if appender.checkpoint_due() {
            appender.record_checkpoint(&mut checkpoints);
        }
        samples.push((t, v));
        let n = samples.len();
        for probe in [0, 1.min(n - 1), n / 2, n.saturating_sub(21), n - 1] {
            let mint = samples[probe].0 - i64::from(probe as u32 % 2);
            let got: Vec<(i64, f64)> = appender
                .iter_from(mint, &checkpoints)
                .filter(|(t, _)| *t >= mint)
                .collect();
            let want: Vec<(i64, f64)> = samples
                .iter()
                .copied()
                .filter(|(t, _)| *t >= mint)
                .collect();
            assert_eq!(
                got.len(),
                want.len(),
                "{} samples, mint {mint}",
                samples.len()
            );
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0);
                assert_eq!(g.1.to_bits(), w.1.to_bits());
            }
        }
        // Past the newest sample: nothing, and no decode error.
        let mut it = appender.iter_from(t + 1, &checkpoints);
        assert!(it.by_ref().all(|(ts, _)| ts <= t));
        assert!(it.err().is_none());
    }
    // Checkpoints left from an older chunk are not used for a new one:
    // it decodes from its start.
    let mut next = XorAppender::new();
    for i in 1..=10 {
        next.append(t + i * 15_000, i as f64);
    }
    let got: Vec<(i64, f64)> = next.iter_from(t + 100_000, &checkpoints).collect();
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], (t + 15_000, 1.0));
    // Nor ones past the chunk's end (a copy of an older state).
    let mut short = XorAppender::new();
    let mut kept = XorCheckpoints::default();
    for i in 1..=40 {
        short.append(i * 1000, 0.5);
        if short.checkpoint_due() {
            short.record_checkpoint(&mut kept);
        }
    }
    let mut shorter = XorAppender::new();
    for i in 1..=20 {
        shorter.append(i * 1000, 0.5);
    }
    let got: Vec<(i64, f64)> = shorter.iter_from(35_000, &kept).collect();
    assert_eq!(got.len(), 20);
}

/// A new appender allocates nothing until its first sample: it reads as
/// an empty chunk, copies and drops as one, and its first append gives it
/// a buffer of its own. Run under Miri too (`cargo +nightly miri test -p
/// tsdb --lib appender_`).
#[test]
fn appender_allocates_at_its_first_sample() {
    let empty = XorAppender::new();
    assert_eq!(empty.bytes(), &[0, 0]);
    assert_eq!(empty.memory_bytes(), 0);
    assert_eq!(empty.num_samples(), 0);
    assert!(empty.first_time().is_none() && empty.last_sample().is_none());
    assert_eq!(
        decode_all(Encoding::Xor, empty.bytes()).expect("empty"),
        vec![]
    );
    let copy = empty.clone();
    assert_eq!(copy.memory_bytes(), 0);
    let mut a = copy.clone();
    let mut b = XorAppender::default();
    a.append(1_000, 1.5);
    assert!(a.memory_bytes() >= 24);
    // The others still read the shared empty chunk, unchanged.
    assert_eq!(b.bytes(), &[0, 0]);
    assert_eq!(empty.bytes(), &[0, 0]);
    for i in 0..40 {
        b.append(i * 15_000, i as f64);
    }
    a.append(2_000, 2.5);
    assert_eq!(
        decode_all(Encoding::Xor, a.bytes()).expect("a"),
        vec![(1_000, 1.5), (2_000, 2.5)]
    );
    assert_eq!(decode_all(Encoding::Xor, b.bytes()).expect("b").len(), 40);
    drop((empty, copy, a, b));
}

/// An open head chunk's buffer stays within one 16-byte step of what it
/// holds while small (see `SMALL_BUFFER`), and its capacity fills a glibc
/// chunk exactly; samples written that way decode as written.
#[test]
fn small_xor_buffers_grow_in_steps_of_sixteen() {
    let mut appender = XorAppender::new();
    let mut written = Vec::new();
    for i in 0..120i64 {
        let (t, v) = (1_700_000_000_000 + i * 15_000, (i as f64) * 1.5 + 0.1);
        appender.append(t, v);
        written.push((t, v));
        let (len, capacity) = (appender.bytes().len(), appender.memory_bytes());
        assert!(capacity >= len);
        if capacity < 248 {
            assert!(capacity - len < 16, "{len} bytes in {capacity}");
            assert_eq!((capacity + 8) % 16, 0, "{capacity}");
        }
    }
    let decoded = decode_all(Encoding::Xor, appender.bytes()).expect("decode");
    assert_eq!(decoded, written);
}

/// A copy holds just the chunk's bytes; appending to it grows it back
/// onto the capacity steps (through doubling, past 248 bytes), and the
/// original and the copy then hold what each was given. Run under Miri
/// too (`cargo +nightly miri test -p tsdb --lib copies_`), for the
/// appender's own buffer handling.
#[test]
fn copies_hold_just_the_bytes_and_grow_when_appended_to() {
    let sample = |i: i64| {
        (
            1_700_000_000_000 + i * 15_000 + i % 7,
            (i * i) as f64 * 0.37,
        )
    };
    let mut original = XorAppender::new();
    let mut written = Vec::new();
    for i in 0..50 {
        original.append(sample(i).0, sample(i).1);
        written.push(sample(i));
    }
    let mut copy = original.clone();
    assert_eq!(copy.bytes(), original.bytes());
    assert_eq!(copy.memory_bytes(), copy.bytes().len());
    let mut copied = written.clone();
    for i in 50..400 {
        copy.append(sample(i).0, sample(i).1);
        copied.push(sample(i));
        let (len, capacity) = (copy.bytes().len(), copy.capacity.bytes(copy.len));
        assert!(len <= capacity);
        assert!(capacity < 248 || capacity % 248 == 0, "{capacity}");
    }
    assert!(copy.bytes().len() > 496, "{}", copy.bytes().len());
    original.append(sample(50).0, -1.0);
    written.push((sample(50).0, -1.0));
    assert_eq!(
        decode_all(Encoding::Xor, copy.bytes()).expect("copy"),
        copied
    );
    assert_eq!(
        decode_all(Encoding::Xor, original.bytes()).expect("original"),
        written
    );
    assert!(format!("{:?}", XorAppender::new()).contains("bytes: [0, 0]"));
}

/// Dense chunks as the writer before Rice streams and float steps (commit
/// 533fa81) wrote them, for series of several shapes: they still decode to the
/// same samples, bit for bit.
/// A golden chunk: a name, its bytes in hex, its samples as (time, bits).
type Golden = (&'static str, &'static str, &'static [(i64, u64)]);

#[test]
fn chunks_of_the_previous_writer_still_decode() {
    let golden: &[Golden] = &[
        (
            "zigzag",
            "140a0080a0abfef962b0ea0101000101030300000000000000800200000000000000800b000000000000008000051e22a0fc597866a1b218f110",
            &[
                (1700000000000, 0x0000000000000000),
                (1700000015000, 0xc000000000000000),
                (1700000030000, 0x4024000000000000),
                (1700000045000, 0x8000000000000000),
                (1700000060000, 0x3ff0000000000000),
                (1700000075000, 0x4018000000000000),
                (1700000090000, 0x8000000000000000),
                (1700000105000, 0x4014000000000000),
                (1700000120000, 0xc02c000000000000),
                (1700000135000, 0x0000000000000000),
                (1700000150000, 0x4008000000000000),
                (1700000165000, 0xc010000000000000),
                (1700000180000, 0x0000000000000000),
                (1700000195000, 0xc01c000000000000),
                (1700000210000, 0x4000000000000000),
                (1700000225000, 0x0000000000000000),
                (1700000240000, 0xc000000000000000),
                (1700000255000, 0x4024000000000000),
                (1700000270000, 0x8000000000000000),
                (1700000285000, 0x3ff0000000000000),
            ],
        ),
        (
            "frame",
            "14140180a0abfef962b4ea010409a9a09a9a09a9a09a0100020200d00f028002",
            &[
                (1700000000000, 0x408f400000000000),
                (1700000015002, 0x408f480000000000),
                (1700000030004, 0x408f600000000000),
                (1700000045001, 0x408f880000000000),
                (1700000060003, 0x408fc00000000000),
                (1700000075000, 0x4090040000000000),
                (1700000090002, 0x4090300000000000),
                (1700000105004, 0x4090640000000000),
                (1700000120001, 0x4090a00000000000),
                (1700000135003, 0x4090e40000000000),
                (1700000150000, 0x4091300000000000),
                (1700000165002, 0x4091840000000000),
                (1700000180004, 0x4091e00000000000),
                (1700000195001, 0x4092440000000000),
                (1700000210003, 0x4092b00000000000),
                (1700000225000, 0x4093240000000000),
                (1700000240002, 0x4093a00000000000),
                (1700000255004, 0x4094240000000000),
                (1700000270001, 0x4094b00000000000),
                (1700000285003, 0x4095440000000000),
            ],
        ),
        (
            "decimal",
            "140a0080a0abfef962b0ea010102010207071e85eb51b81ee53f01e27a14ae47e1da3f00999999999999e93f0215ae47e17a14ee3f01676666666666e63f01703d0ad7a370dd3f00e27a14ae47e1ea3f00074c99ea64cf66554c5e6550",
            &[
                (1700000000000, 0x0000000000000000),
                (1700000015000, 0x3fd851eb851eb852),
                (1700000030000, 0x3fe851eb851eb852),
                (1700000045000, 0x3fc1eb851eb851ec),
                (1700000060000, 0x3fe0a3d70a3d70a4),
                (1700000075000, 0x3feccccccccccccd),
                (1700000090000, 0x3fd1eb851eb851ec),
                (1700000105000, 0x3fe51eb851eb851e),
                (1700000120000, 0x3ff0a3d70a3d70a4),
                (1700000135000, 0x3fdae147ae147ae2),
                (1700000150000, 0x3fe9999999999999),
                (1700000165000, 0x3fc70a3d70a3d70a),
                (1700000180000, 0x3fe1eb851eb851ec),
                (1700000195000, 0x3fee147ae147ae15),
                (1700000210000, 0x3fd47ae147ae147b),
                (1700000225000, 0x3fe6666666666667),
                (1700000240000, 0x3ff147ae147ae148),
                (1700000255000, 0x3fdd70a3d70a3d70),
                (1700000270000, 0x3feae147ae147ae2),
                (1700000285000, 0x3fcc28f5c28f5c29),
            ],
        ),
        (
            "xor",
            "140a0080a0abfef962b0ea01020000000000000000c5f7f96f9266e104497003cf29b47a16895000edf317c88c2a500ddff575dc38a6780080017b147a30ea49801bde43b06b75292000662777121fee3800786a74e822d72a80bc1bff2dc7ba59802ebf3a7d3a117da00191cbcfeaf35848001cbe2230e9df8e006901f0bd598ca5a0011fc52d1bb913a006d819406e4be3e800189f4983b90bba001ebc29140e7b17a0132aee43ddea78e004a65716a1c06030",
            &[
                (1700000000000, 0x0000000000000000),
                (1700000015000, 0x3fcb7c933708224b),
                (1700000030000, 0x3fd505de94d89601),
                (1700000045000, 0x3fd26a462a9cf753),
                (1700000060000, 0x3fbc95ed847d3260),
                (1700000075000, 0xbfbdeef9fe4dd829),
                (1700000090000, 0xbfd297f73fe00c8d),
                (1700000105000, 0xbfd4f5804ec1f26e),
                (1700000120000, 0xbfcaef1d74c947a4),
                (1700000135000, 0x3f76f4e2590efdfd),
                (1700000150000, 0x3fcc080bade6b80b),
                (1700000165000, 0x3fd514b753498d8f),
                (1700000180000, 0x3fd23b3fdf73fa6c),
                (1700000195000, 0x3fbb3acf622a76c9),
                (1700000210000, 0xbfbf45dbd6449287),
                (1700000225000, 0xbfd2c44fd0a02cb9),
                (1700000240000, 0xbfd4e39db04e6e57),
                (1700000255000, 0xbfca5fb4a4401540),
                (1700000270000, 0x3f86f40dab37bca3),
                (1700000285000, 0x3fcc917cc12bbaa0),
            ],
        ),
        (
            "constant",
            "140a0080a0abfef962b0ea01030054",
            &[
                (1700000000000, 0x4045000000000000),
                (1700000015000, 0x4045000000000000),
                (1700000030000, 0x4045000000000000),
                (1700000045000, 0x4045000000000000),
                (1700000060000, 0x4045000000000000),
                (1700000075000, 0x4045000000000000),
                (1700000090000, 0x4045000000000000),
                (1700000105000, 0x4045000000000000),
                (1700000120000, 0x4045000000000000),
                (1700000135000, 0x4045000000000000),
                (1700000150000, 0x4045000000000000),
                (1700000165000, 0x4045000000000000),
                (1700000180000, 0x4045000000000000),
                (1700000195000, 0x4045000000000000),
                (1700000210000, 0x4045000000000000),
                (1700000225000, 0x4045000000000000),
                (1700000240000, 0x4045000000000000),
                (1700000255000, 0x4045000000000000),
                (1700000270000, 0x4045000000000000),
                (1700000285000, 0x4045000000000000),
            ],
        ),
    ];
    for (name, hex, want) in golden {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let decoded = decode_all(Encoding::Dense, &bytes).unwrap();
        let got: Vec<(i64, u64)> = decoded.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(&got[..], *want, "{name}");
        let bulk = decode_dense_exact(&bytes, want.len()).unwrap();
        assert_eq!(bits(&bulk), got, "{name} in bulk");
    }
}

/// The bit writer's output, bit for bit, against writing one bit at a
/// time: into a vector without room (byte by byte, growing it) and with
/// room (whole words), for every width and every starting bit offset.
#[test]
fn the_bit_writer_matches_writing_bit_by_bit() {
    fn one_by_one(writes: &[(u64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut n = 0usize;
        for &(value, width) in writes {
            for bit in (0..width).rev() {
                if n.is_multiple_of(8) {
                    out.push(0);
                }
                if (value >> bit) & 1 == 1 {
                    let last = out.len() - 1;
                    out[last] |= 0x80 >> (n % 8);
                }
                n += 1;
            }
        }
        out
    }
    let mut random = Random(0x5eed);
    for round in 0..2000 {
        let writes: Vec<(u64, u32)> = (0..1 + round % 40)
            .map(|_| (random.next_u64(), (random.next_u64() % 65) as u32))
            .collect();
        let expected = one_by_one(&writes);
        for room in [0usize, 1024] {
            let mut out = Vec::with_capacity(room);
            let mut writer = BitWriter::default();
            for &(value, width) in &writes {
                writer.write(&mut out, value, width);
            }
            assert_eq!(out, expected, "{writes:?} room {room}");
        }
    }
}
