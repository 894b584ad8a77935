//! `osprey import`: backfill OpenMetrics files into blocks.
//!
//! Each file is memory-mapped and parsed as OpenMetrics (timestamps in
//! seconds, `# EOF` at the end), the input `promtool tsdb
//! create-blocks-from openmetrics` takes. Samples are grouped per series in
//! memory, then written as blocks of at most the given duration. Nothing is
//! written unless every file parses: an error names the file, line and
//! column.
//!
//! A file is cut at line ends into pieces that threads parse at once (as
//! many as `available_parallelism` says). Each piece looks a sample's
//! series up by its text as written and parses the labels only the first
//! time it meets that text. The pieces are then joined in file order, so
//! samples keep their file order within each series (the later of two
//! samples at one time wins) and the first error in the file is the one
//! reported, with its line counted from the start of the file.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use model::Labels;
use model::exposition::{Format, LazyEntry, Parser, sample_labels, split_at_lines};
use model::labels::FastBuildHasher;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Samples of one series.
type Samples = Vec<(i64, f64)>;

/// The smallest piece worth a thread's start-up.
const MIN_PIECE_BYTES: usize = 4 << 20;

/// Pieces per thread: more than one, so a thread that the machine slows
/// down leaves its share to the others.
const PIECES_PER_THREAD: usize = 4;

pub fn run(data_dir: &Path, files: &[PathBuf], window_ms: i64) -> anyhow::Result<()> {
    if window_ms <= 0 {
        bail!("--max-block-duration must be positive");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Every piece's series, in file order (a series may be in several).
    let mut series: Vec<(Labels, Samples)> = Vec::new();
    let mut total_samples = 0u64;
    for file in files {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        // SAFETY: the file is only read, and a concurrent truncation by
        // another process would at worst fault this command.
        let map = unsafe { memmap2::Mmap::map(&f) }
            .with_context(|| format!("mapping {}", file.display()))?;
        // Read ahead: the pieces are read front to back.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        let bytes: &[u8] = &map;
        let progress = ProgressBar::new(bytes.len() as u64);
        progress.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        progress.set_message(file.display().to_string());
        let pieces = split_at_lines(
            bytes,
            (threads * PIECES_PER_THREAD).min(bytes.len() / MIN_PIECE_BYTES + 1),
        );
        let parsed = parse_pieces(bytes, &pieces, threads, &progress);
        progress.finish_and_clear();
        let mut n: u64 = 0;
        for (piece, result) in pieces.iter().zip(parsed) {
            let piece_series = match result {
                Ok(piece_series) => piece_series,
                Err(failure) => {
                    // Lines of the pieces before this one.
                    let before = bytes[..piece.start].iter().filter(|&&b| b == b'\n').count();
                    return Err(failure.into_error(file, before));
                }
            };
            n += piece_series
                .iter()
                .map(|(_, s)| s.len() as u64)
                .sum::<u64>();
            series.extend(piece_series);
        }
        total_samples += n;
        eprintln!("{}: {n} samples", file.display());
    }
    // A stable sort keeps file order among the pieces of one series, so
    // joining them keeps each series' samples in file order.
    let sorted = sort_stable_by_labels(series, threads);
    let mut series: Vec<(Labels, Samples)> = Vec::with_capacity(sorted.len());
    for (labels, mut samples) in sorted {
        match series.last_mut() {
            Some((last, joined)) if *last == labels => joined.append(&mut samples),
            _ => series.push((labels, samples)),
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let n_series = series.len();
    let metas = tsdb::import::write_import_series(data_dir, series, window_ms, threads)
        .context("writing blocks")?;
    eprintln!(
        "imported {total_samples} samples of {n_series} series into {} block(s) in {}",
        metas.len(),
        data_dir.display()
    );
    Ok(())
}

/// Sorts by labels, keeping the order of equal ones, on up to `threads`
/// threads: runs sorted at once, then merged pairwise.
fn sort_stable_by_labels(
    mut series: Vec<(Labels, Samples)>,
    threads: usize,
) -> Vec<(Labels, Samples)> {
    const MIN_RUN: usize = 16_384;
    let runs = threads.min(series.len() / MIN_RUN).max(1);
    if runs == 1 {
        series.sort_by(|a, b| a.0.cmp(&b.0));
        return series;
    }
    let run_len = series.len().div_ceil(runs);
    let mut parts: Vec<Vec<(Labels, Samples)>> = Vec::with_capacity(runs);
    while series.len() > run_len {
        let tail = series.split_off(series.len() - run_len);
        parts.push(tail);
    }
    parts.push(series);
    parts.reverse();
    std::thread::scope(|scope| {
        for part in parts.iter_mut() {
            scope.spawn(move || part.sort_by(|a, b| a.0.cmp(&b.0)));
        }
    });
    while parts.len() > 1 {
        let mut pairs = Vec::with_capacity(parts.len().div_ceil(2));
        let mut it = parts.into_iter();
        while let Some(left) = it.next() {
            pairs.push((left, it.next()));
        }
        parts = std::thread::scope(|scope| {
            let handles: Vec<_> = pairs
                .into_iter()
                .map(|(left, right)| {
                    scope.spawn(move || match right {
                        Some(right) => merge_sorted(left, right),
                        None => left,
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
    }
    parts.pop().unwrap_or_default()
}

/// Merges two runs sorted by labels; on equal labels `left`'s come first.
fn merge_sorted(
    left: Vec<(Labels, Samples)>,
    right: Vec<(Labels, Samples)>,
) -> Vec<(Labels, Samples)> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_right = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => r.0 < l.0,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => return out,
        };
        let next = if take_right {
            right.next()
        } else {
            left.next()
        };
        out.extend(next);
    }
}

/// Why a piece stopped: a parse error (its line counted within the piece)
/// or a sample without a timestamp.
enum PieceError {
    Parse(model::exposition::ParseError),
    NoTimestamp { name: String, line: usize },
}

impl PieceError {
    /// The error as the user sees it, `before` being the lines of the file
    /// before the piece.
    fn into_error(self, file: &Path, before: usize) -> anyhow::Error {
        match self {
            PieceError::Parse(mut e) => {
                e.line += before;
                anyhow::anyhow!("{}: {e}", file.display())
            }
            PieceError::NoTimestamp { name, line } => anyhow::anyhow!(
                "{}: sample {name} on line {} has no timestamp; backfill needs one on every sample",
                file.display(),
                line + before
            ),
        }
    }
}

type PieceResult = Result<Vec<(Labels, Samples)>, PieceError>;

/// Parses the pieces on up to `threads` threads; the results are in piece
/// order. After a piece fails, pieces after it are not started (their
/// results are never looked at).
fn parse_pieces(
    bytes: &[u8],
    pieces: &[std::ops::Range<usize>],
    threads: usize,
    progress: &ProgressBar,
) -> Vec<PieceResult> {
    let results: Vec<Mutex<Option<PieceResult>>> =
        pieces.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // The lowest piece that failed, so no later one is started.
    let first_failure = AtomicUsize::new(usize::MAX);
    let stop = AtomicBool::new(false);
    let work = || {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= pieces.len()
                || stop.load(Ordering::Relaxed) && k > first_failure.load(Ordering::Relaxed)
            {
                return;
            }
            let piece = &pieces[k];
            let more_follows = piece.end < bytes.len();
            let result = parse_piece(&bytes[piece.clone()], more_follows, progress);
            if result.is_err() {
                first_failure.fetch_min(k, Ordering::Relaxed);
                stop.store(true, Ordering::Relaxed);
            }
            if let Ok(mut slot) = results[k].lock() {
                *slot = Some(result);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.min(pieces.len()) {
            scope.spawn(work);
        }
        work();
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                // Not started because an earlier piece failed; the caller
                // stops at that earlier one.
                .unwrap_or_else(|| Ok(Vec::new()))
        })
        .collect()
}

/// Parses one piece: its series in order of first appearance, each with
/// its samples in file order.
fn parse_piece(input: &[u8], more_follows: bool, progress: &ProgressBar) -> PieceResult {
    let mut parser = Parser::fragment(input, Format::OpenMetrics, more_follows).reuse_series();
    // Series text as written -> series number; two spellings of one label
    // set (label order) share a number through `by_labels`.
    let mut by_text: HashMap<&[u8], usize, FastBuildHasher> = HashMap::default();
    let mut by_labels: HashMap<Labels, usize, FastBuildHasher> = HashMap::default();
    let mut series: Vec<(Labels, Samples)> = Vec::new();
    let mut last: (&[u8], usize) = (&[], 0);
    let mut n: u64 = 0;
    let mut reported = 0;
    while let Some(entry) = parser.next_lazy() {
        let LazyEntry::Sample(sample) = entry.map_err(PieceError::Parse)? else {
            continue;
        };
        let Some(t) = sample.timestamp_ms else {
            // A series error on the line comes first, as a parse error.
            let (name, _) = sample.parse_series().map_err(PieceError::Parse)?;
            return Err(PieceError::NoTimestamp {
                name: name.into_owned(),
                line: parser.line(),
            });
        };
        let text = sample.series();
        // Lines of one series often come one after another: compare with
        // the last line's series before hashing.
        let cached = if text == last.0 {
            Some(last.1)
        } else {
            by_text.get(text).copied()
        };
        let i = match cached {
            Some(i) => i,
            None => {
                let (name, labels) = sample.parse_series().map_err(PieceError::Parse)?;
                let labels = sample_labels(&name, &labels);
                let i = match by_labels.get(&labels) {
                    Some(&i) => i,
                    None => {
                        by_labels.insert(labels.clone(), series.len());
                        series.push((labels, Vec::new()));
                        series.len() - 1
                    }
                };
                by_text.insert(text, i);
                i
            }
        };
        last = (text, i);
        series[i].1.push((t, sample.value));
        n += 1;
        if n.is_multiple_of(65_536) {
            let offset = parser.offset();
            progress.inc((offset - reported) as u64);
            reported = offset;
        }
    }
    progress.inc((input.len() - reported) as u64);
    Ok(series)
}
