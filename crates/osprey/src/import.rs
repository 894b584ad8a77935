//! `osprey import`: backfill OpenMetrics files into blocks.
//!
//! Each file is memory-mapped and parsed as OpenMetrics (timestamps in
//! seconds, `# EOF` at the end), the input `promtool tsdb
//! create-blocks-from openmetrics` takes. Samples are grouped per series in
//! memory, then written as blocks of at most the given duration. Nothing is
//! written unless every file parses: an error names the file, line and
//! column.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use model::Labels;
use model::exposition::{Entry, Format, Parser, sample_labels};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub fn run(data_dir: &Path, files: &[PathBuf], window_ms: i64) -> anyhow::Result<()> {
    if window_ms <= 0 {
        bail!("--max-block-duration must be positive");
    }
    /// Samples of one series, keyed by its name and labels as written.
    type Collected = (Labels, Vec<(i64, f64)>);
    let mut series: HashMap<Vec<u8>, Collected> = HashMap::new();
    let mut key = Vec::new();
    let mut total_samples = 0u64;
    for file in files {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        // SAFETY: the file is only read, and a concurrent truncation by
        // another process would at worst fault this command.
        let map = unsafe { memmap2::Mmap::map(&f) }
            .with_context(|| format!("mapping {}", file.display()))?;
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
        let mut parser = Parser::new(bytes, Format::OpenMetrics);
        let mut n: u64 = 0;
        // `for` would hold the parser borrowed; the loop body asks it for
        // its line and offset.
        #[allow(clippy::while_let_on_iterator, reason = "see the comment above")]
        while let Some(entry) = parser.next() {
            let entry = entry.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let Entry::Sample {
                name,
                labels,
                value,
                timestamp_ms,
                ..
            } = entry
            else {
                continue;
            };
            let Some(t) = timestamp_ms else {
                bail!(
                    "{}: sample {name} on line {} has no timestamp; backfill needs one on every sample",
                    file.display(),
                    parser.line()
                );
            };
            key.clear();
            key.extend_from_slice(name.as_bytes());
            for (n, v) in &labels {
                key.push(0xff);
                key.extend_from_slice(n.as_bytes());
                key.push(0xfe);
                key.extend_from_slice(v.as_bytes());
            }
            match series.get_mut(key.as_slice()) {
                Some((_, samples)) => samples.push((t, value)),
                None => {
                    series.insert(
                        key.clone(),
                        (sample_labels(&name, &labels), vec![(t, value)]),
                    );
                }
            }
            n += 1;
            if n.is_multiple_of(65_536) {
                progress.set_position(parser.offset() as u64);
            }
        }
        progress.finish_and_clear();
        total_samples += n;
        eprintln!("{}: {n} samples", file.display());
    }
    // Two spellings of one label set (label order in the file) map to one
    // series here.
    let mut by_labels: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for (_, (labels, mut samples)) in series {
        by_labels.entry(labels).or_default().append(&mut samples);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let n_series = by_labels.len();
    let metas = tsdb::import::write_import_blocks(data_dir, by_labels, window_ms)
        .context("writing blocks")?;
    eprintln!(
        "imported {total_samples} samples of {n_series} series into {} block(s) in {}",
        metas.len(),
        data_dir.display()
    );
    Ok(())
}
