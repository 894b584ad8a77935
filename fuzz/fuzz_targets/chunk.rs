//! Fuzzes the chunk decoders with arbitrary bytes and the encoders with
//! samples derived from the bytes.
//!
//! The first byte picks the decoder; the whole input then also becomes a
//! sample list (16 bytes per sample: timestamp delta and value bits) that must
//! round-trip bit-exactly through both encoders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunkenc::{
    ChunkIter, Encoding, XorAppender, append_dense, append_dense_range, decode_all,
    decode_dense_exact, dense_len, encode_dense,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let encoding = if selector & 1 == 0 { Encoding::Xor } else { Encoding::Dense };
    if let Ok(mut iter) = ChunkIter::new(encoding, rest) {
        let claimed = iter.size_hint().1.unwrap_or(0);
        let mut decoded = 0usize;
        for _ in iter.by_ref() {
            decoded += 1;
        }
        assert!(decoded <= claimed);
        if decoded < claimed {
            assert!(iter.err().is_some(), "iteration ended early without an error");
        }
    }

    // The bulk Dense decoder (tier columns) gives the iterator's samples
    // bit for bit wherever both decode.
    if encoding == Encoding::Dense
        && let (Ok(lazy), Ok(n)) = (decode_all(Encoding::Dense, rest), dense_len(rest))
        && let Ok(bulk) = decode_dense_exact(rest, n)
    {
        let bits = |s: &[(i64, f64)]| s.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&bulk), bits(&lazy), "bulk and iterator decodes differ");

        // The readers' bulk append, cut to a range picked from the input,
        // keeps the samples the iterator gives inside it, after what `out`
        // already held. The cut is by binary search, so it is compared only
        // where the timestamps ascend, as every chunk osprey writes does.
        let at = |i: usize| lazy.get(i % lazy.len().max(1)).map_or(0, |s| s.0);
        let (mint, maxt) = (at(usize::from(selector >> 1)), at(rest.len()));
        let mut out = vec![(-1, 0.5)];
        let appended = append_dense_range(rest, n, mint, maxt, &mut out);
        assert!(matches!(appended, Ok(true)), "decodes whole yet not by append");
        assert_eq!(out[0].0, -1);
        if lazy.windows(2).all(|w| w[0].0 < w[1].0) {
            let inside: Vec<_> =
                lazy.iter().copied().filter(|s| (mint..=maxt).contains(&s.0)).collect();
            assert_eq!(bits(&out[1..]), bits(&inside), "range append differs from the iterator");
        }
        // One sample over the cap: left alone, `out` untouched.
        if n > 0 {
            let mut untouched = vec![(7, 7.0)];
            assert!(matches!(append_dense(rest, n - 1, &mut untouched), Ok(false)));
            assert_eq!(untouched, vec![(7, 7.0)]);
        }
    }

    // Samples: timestamps ascend by (a small or large) positive step; values
    // come from raw bits, a small integer, or a two-decimal number.
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut time = i64::from_le_bytes(padded(rest.get(..8).unwrap_or(&[])));
    for record in rest.chunks_exact(16).skip(1) {
        let step_bits = u64::from_le_bytes(padded(&record[..8]));
        let value_bits = u64::from_le_bytes(padded(&record[8..16]));
        let step = match selector >> 1 & 3 {
            0 => 15_000 + (step_bits % 64) as i64 - 32,
            1 => 1 + (step_bits % 1_000_000) as i64,
            _ => ((step_bits >> 1) as i64).max(1),
        };
        let Some(next) = time.checked_add(step) else { break };
        let value = match selector >> 3 & 3 {
            0 => f64::from_bits(value_bits),
            1 => (value_bits as i64 >> 40) as f64,
            2 => (value_bits as i64 >> 30) as f64 / 100.0,
            _ => if value_bits & 1 == 0 { 42.0 } else { f64::from_bits(value_bits) },
        };
        samples.push((time, value));
        time = next;
    }
    let expected: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();

    let mut appender = XorAppender::new();
    for &(t, v) in &samples {
        appender.append(t, v);
    }
    let from_xor = decode_all(Encoding::Xor, appender.bytes()).expect("own Xor chunk decodes");
    let from_xor: Vec<(i64, u64)> = from_xor.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    assert_eq!(from_xor, expected);

    let mut dense = Vec::new();
    encode_dense(&samples, &mut dense);
    let from_dense = decode_all(Encoding::Dense, &dense).expect("own Dense chunk decodes");
    let from_dense: Vec<(i64, u64)> = from_dense.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    assert_eq!(from_dense, expected);
});

fn padded(bytes: &[u8]) -> [u8; 8] {
    let mut word = [0u8; 8];
    let length = bytes.len().min(8);
    word[..length].copy_from_slice(&bytes[..length]);
    word
}
