//! Where a block's chunk bytes go: per metric name and per Dense value
//! layout, bytes per sample of the chunks as written, and of the same
//! samples written again by today's `encode_dense` (so an encoder change can
//! be measured on a real block before it is written anywhere), and the bulk
//! decoding time per sample of the rewritten chunks ("dec ns").
//!
//! With SPLIT, the samples are rewritten in runs of at most SPLIT samples
//! (120 is what the head closes its chunks at). The digest of the
//! rewritten bytes shows whether an encoder change altered its output.
//!
//! `cargo run --release -p tsdb --example block_sizes -- BLOCK_DIR [TOP [SPLIT]]`

use model::{MatchOp, Matcher};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tsdb::block::Block;
use tsdb::chunkenc::{Encoding, decode_all, decode_dense_exact, encode_dense};

#[derive(Default)]
struct Tally {
    series: u64,
    samples: u64,
    bytes: u64,
    ts_bytes: u64,
    rewritten: u64,
    decode: Duration,
}

fn uvarint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// (timestamp section bytes, value kind) of a Dense chunk.
fn dense_header(bytes: &[u8]) -> Option<(u64, u8)> {
    let mut pos = 0;
    let _n = uvarint(bytes, &mut pos)?;
    let ts_len = uvarint(bytes, &mut pos)?;
    let kind = *bytes.get(pos + ts_len as usize)?;
    Some((ts_len, kind))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        return Err("usage: block_sizes BLOCK_DIR [TOP [SPLIT]]".into());
    };
    let top: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(25);
    let split: usize = args
        .get(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(usize::MAX);
    if split == 0 {
        return Err("SPLIT must be at least 1".into());
    }
    // FNV-1a over every rewritten byte.
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    let block = Block::open(Path::new(dir))?;
    let all = Matcher::new(MatchOp::RegexMatch, "__name__", ".+")?;
    let series = block.select(&[all], i64::MIN, i64::MAX)?;
    let mut by_name: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut out = Vec::new();
    let (mut encode_time, mut decode_time) = (Duration::ZERO, Duration::ZERO);
    for s in &series {
        let name = s.labels.metric_name().unwrap_or("").to_string();
        let mut t = Tally {
            series: 1,
            ..Tally::default()
        };
        let mut kinds = String::new();
        for &(_, _, r) in &s.chunks {
            let (enc, bytes) = block.chunk(r)?;
            let encoding = Encoding::from_u8(enc).ok_or("unknown encoding")?;
            let samples = decode_all(encoding, bytes)?;
            t.samples += samples.len() as u64;
            t.bytes += bytes.len() as u64;
            if let Some((ts, kind)) = dense_header(bytes) {
                t.ts_bytes += ts;
                if kinds.is_empty() {
                    kinds = format!("{encoding:?}/{kind}");
                }
            } else if kinds.is_empty() {
                kinds = format!("{encoding:?}");
            }
            for run in samples.chunks(split) {
                out.clear();
                let start = Instant::now();
                encode_dense(run, &mut out);
                encode_time += start.elapsed();
                let start = Instant::now();
                let decoded = decode_dense_exact(&out, run.len())?;
                let took = start.elapsed();
                decode_time += took;
                t.decode += took;
                if decoded.len() != run.len()
                    || decoded
                        .iter()
                        .zip(run)
                        .any(|(a, b)| a.0 != b.0 || a.1.to_bits() != b.1.to_bits())
                {
                    return Err(format!("{name}: rewritten chunk decodes differently").into());
                }
                t.rewritten += out.len() as u64;
                for &byte in &out {
                    digest = (digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        for tally in [
            by_name.entry(name).or_default(),
            by_kind.entry(kinds).or_default(),
            &mut total,
        ] {
            tally.series += t.series;
            tally.samples += t.samples;
            tally.bytes += t.bytes;
            tally.ts_bytes += t.ts_bytes;
            tally.rewritten += t.rewritten;
            tally.decode += t.decode;
        }
    }
    let row = |label: &str, t: &Tally| {
        let per = |b: u64| b as f64 / t.samples.max(1) as f64;
        println!(
            "{label:<48} {:>7} {:>10} {:>6.1}% {:>7.3} {:>7.3} {:>7.3} {:>7.2}",
            t.series,
            t.samples,
            100.0 * t.bytes as f64 / total.bytes.max(1) as f64,
            per(t.bytes),
            per(t.ts_bytes),
            per(t.rewritten),
            t.decode.as_nanos() as f64 / t.samples.max(1) as f64,
        );
    };
    println!(
        "{:<48} {:>7} {:>10} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "", "series", "samples", "share", "B/smp", "ts B/s", "now B/s", "dec ns"
    );
    row("total", &total);
    let per_sample = |d: Duration| d.as_nanos() as f64 / total.samples.max(1) as f64;
    println!(
        "rewriting: encode {:.1} ns/sample, bulk decode {:.1} ns/sample, digest {digest:016x}",
        per_sample(encode_time),
        per_sample(decode_time)
    );
    println!("-- by value layout (encoding/kind of the first chunk)");
    for (k, t) in &by_kind {
        row(k, t);
    }
    println!("-- top metric names by bytes");
    let mut names: Vec<_> = by_name.iter().collect();
    names.sort_by_key(|(_, t)| std::cmp::Reverse(t.bytes));
    for (k, t) in names.into_iter().take(top) {
        row(k, t);
    }
    Ok(())
}
