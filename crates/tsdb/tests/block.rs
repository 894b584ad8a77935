//! Block tests through the public API, on real files in temporary directories:
//! select against a brute-force filter, label names and values, chunk
//! round trips, corruption and truncation, and crash leftovers.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use model::{Labels, MatchOp, Matcher, matcher::matches_all};
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;
use tsdb::block::{Block, BlockErrorKind, BlockWriter, ChunkMeta, ChunkRef, NewBlock, cleanup_tmp};

/// A small deterministic generator so fixtures are the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const METRICS: [&str; 8] = [
    "up",
    "node_cpu_seconds_total",
    "node_load1",
    "http_requests_total",
    "a",
    "ab",
    "b",
    "zz_last",
];

struct Fixture {
    _dir: tempfile::TempDir,
    block: Block,
    /// Every written series with its chunks, sorted by labels.
    series: Vec<(Labels, Vec<ChunkMeta>)>,
}

fn new_block() -> NewBlock {
    NewBlock {
        min_time: 0,
        max_time: 10_000,
        level: 1,
        sources: vec![],
        parents: vec![],
    }
}

fn random_series(rng: &mut XorShift, n: usize) -> Vec<(Labels, Vec<ChunkMeta>)> {
    let mut by_labels = std::collections::BTreeMap::new();
    while by_labels.len() < n {
        let mut pairs: Vec<(String, String)> = vec![
            ("__name__".into(), METRICS[rng.below(8) as usize].into()),
            ("job".into(), format!("job{}", rng.below(3))),
            ("instance".into(), format!("host-{}:9100", rng.below(40))),
        ];
        if rng.below(2) == 0 {
            pairs.push((
                "mode".into(),
                ["idle", "user", "system", "iowait"][rng.below(4) as usize].into(),
            ));
        }
        if rng.below(3) == 0 {
            pairs.push(("cpu".into(), rng.below(8).to_string()));
        }
        if rng.below(5) == 0 {
            pairs.push(("path".into(), format!("/p/{}", rng.below(100_000))));
        }
        let labels = Labels::from_pairs(pairs);
        let n_chunks = rng.below(4) as usize; // Zero chunks: the writer skips it.
        let mut chunks = Vec::new();
        let mut t = rng.below(2_000) as i64;
        for _ in 0..n_chunks {
            let span = rng.below(3_000) as i64;
            let len = rng.below(40) as usize;
            chunks.push(ChunkMeta {
                min_time: t,
                max_time: t + span,
                encoding: rng.below(4) as u8 + 1,
                data: (0..len).map(|_| rng.next() as u8).collect(),
            });
            t += span + 1 + rng.below(500) as i64;
        }
        by_labels.insert(labels, chunks);
    }
    by_labels.into_iter().collect()
}

fn write_block(dir: &Path, series: &[(Labels, Vec<ChunkMeta>)]) -> tsdb::block::BlockMeta {
    let mut writer = BlockWriter::create(dir, new_block()).unwrap();
    for (labels, chunks) in series {
        writer
            .add_series(labels, chunks, chunks.len() as u64 * 120)
            .unwrap();
    }
    writer.finish().unwrap()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let series = random_series(&mut XorShift(0x9e37_79b9_7f4a_7c15), 3_000);
        let meta = write_block(dir.path(), &series);
        let block = Block::open(&dir.path().join(&meta.ulid)).unwrap();
        let series = series.into_iter().filter(|(_, c)| !c.is_empty()).collect();
        Fixture {
            _dir: dir,
            block,
            series,
        }
    })
}

fn brute_force_select(
    series: &[(Labels, Vec<ChunkMeta>)],
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Vec<(Labels, Vec<(i64, i64)>)> {
    series
        .iter()
        .filter(|(labels, _)| matches_all(labels, matchers))
        .map(|(labels, chunks)| {
            let overlapping: Vec<(i64, i64)> = chunks
                .iter()
                .filter(|c| c.min_time <= maxt && c.max_time >= mint)
                .map(|c| (c.min_time, c.max_time))
                .collect();
            (labels.clone(), overlapping)
        })
        .filter(|(_, chunks)| !chunks.is_empty())
        .collect()
}

fn matcher_strategy() -> impl Strategy<Value = Matcher> {
    let values = prop::sample::select(vec![
        "",
        "up",
        "a",
        "ab",
        "b",
        "node_load1",
        "job0",
        "job1",
        "job2",
        "host-3:9100",
        "idle",
        "user",
        "0",
        "7",
        "/p/1",
        "nope",
    ]);
    let regexes = prop::sample::select(vec![
        ".*",
        ".+",
        "a.*",
        "a|b",
        "job[01]",
        "host-1.*",
        "",
        "idle|user",
        "[0-3]",
        "/p/.*",
        "node_.*",
        "(?i)UP",
        "x^",
    ]);
    let names = prop::sample::select(vec![
        "__name__", "job", "instance", "mode", "cpu", "path", "missing",
    ]);
    prop_oneof![
        (names.clone(), values.clone())
            .prop_map(|(n, v)| Matcher::new(MatchOp::Equal, n, v).unwrap()),
        (names.clone(), values).prop_map(|(n, v)| Matcher::new(MatchOp::NotEqual, n, v).unwrap()),
        (names.clone(), regexes.clone())
            .prop_map(|(n, v)| Matcher::new(MatchOp::RegexMatch, n, v).unwrap()),
        (names, regexes).prop_map(|(n, v)| Matcher::new(MatchOp::RegexNoMatch, n, v).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn select_agrees_with_brute_force(
        matchers in prop::collection::vec(matcher_strategy(), 0..4),
        mint in -100i64..12_000,
        span in 0i64..12_000,
    ) {
        let f = fixture();
        let maxt = mint + span;
        let got = f.block.select(&matchers, mint, maxt).unwrap();
        let got: Vec<(Labels, Vec<(i64, i64)>)> = got
            .into_iter()
            .map(|s| (s.labels, s.chunks.into_iter().map(|(a, b, _)| (a, b)).collect()))
            .collect();
        let want = brute_force_select(&f.series, &matchers, mint, maxt);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn label_names_and_values_agree_with_brute_force(
        matchers in prop::collection::vec(matcher_strategy(), 0..3),
        name in prop::sample::select(vec!["__name__", "job", "mode", "cpu", "path", "missing"]),
    ) {
        let f = fixture();
        let matching: Vec<&Labels> = f
            .series
            .iter()
            .map(|(l, _)| l)
            .filter(|l| matches_all(l, &matchers))
            .collect();
        let mut want_names: Vec<String> =
            matching.iter().flat_map(|l| l.iter().map(|l| l.name.to_string())).collect();
        want_names.sort();
        want_names.dedup();
        prop_assert_eq!(f.block.label_names(&matchers).unwrap(), want_names);
        let mut want_values: Vec<String> =
            matching.iter().filter_map(|l| l.get(name).map(str::to_string)).collect();
        want_values.sort();
        want_values.dedup();
        prop_assert_eq!(f.block.label_values(name, &matchers).unwrap(), want_values);
    }
}

#[test]
fn meta_counts_what_was_written() {
    let f = fixture();
    let meta = f.block.meta();
    assert_eq!(meta.stats.num_series, f.series.len() as u64);
    let chunks: usize = f.series.iter().map(|(_, c)| c.len()).sum();
    assert_eq!(meta.stats.num_chunks, chunks as u64);
    assert_eq!(meta.stats.num_samples, chunks as u64 * 120);
    assert_eq!((meta.min_time, meta.max_time, meta.version), (0, 10_000, 1));
    assert_eq!(meta.compaction.level, 1);
    let on_disk: u64 = walk_size(f.block.dir());
    assert_eq!(f.block.size_bytes(), on_disk);

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.block.dir().join("meta.json")).unwrap()).unwrap();
    for key in [
        "ulid",
        "minTime",
        "maxTime",
        "stats",
        "compaction",
        "version",
    ] {
        assert!(json.get(key).is_some(), "meta.json lacks {key}: {json}");
    }
    assert!(json["stats"].get("numSamples").is_some());
    assert!(json["compaction"].get("sources").is_some());
}

fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            total += walk_size(&entry.path());
        } else {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}

#[test]
fn every_chunk_round_trips() {
    let f = fixture();
    let all = f.block.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(all.len(), f.series.len());
    for (got, (labels, chunks)) in all.iter().zip(&f.series) {
        assert_eq!(&got.labels, labels);
        assert_eq!(got.chunks.len(), chunks.len());
        for (&(min, max, r), want) in got.chunks.iter().zip(chunks) {
            assert_eq!((min, max), (want.min_time, want.max_time));
            let (encoding, data) = f.block.chunk(r).unwrap();
            assert_eq!(encoding, want.encoding);
            assert_eq!(data, want.data.as_slice());
        }
    }
    let bad = f.block.chunk(ChunkRef((1 << 32) | 3)).unwrap_err();
    assert_eq!(bad.kind(), BlockErrorKind::Corrupt);
    let bad = f.block.chunk(ChunkRef(99 << 32)).unwrap_err();
    assert_eq!(bad.kind(), BlockErrorKind::InvalidInput);
}

#[test]
fn empty_block_and_empty_matchers() {
    let dir = tempfile::tempdir().unwrap();
    let meta = BlockWriter::create(dir.path(), new_block())
        .unwrap()
        .finish()
        .unwrap();
    let block = Block::open(&dir.path().join(&meta.ulid)).unwrap();
    assert!(block.select(&[], 0, 10).unwrap().is_empty());
    assert!(block.label_names(&[]).unwrap().is_empty());
    assert!(block.label_values("job", &[]).unwrap().is_empty());
    assert_eq!(meta.stats.num_series, 0);
}

#[test]
fn writer_rejects_unsorted_and_duplicate_series() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = ChunkMeta {
        min_time: 1,
        max_time: 2,
        encoding: 1,
        data: vec![1, 2, 3],
    };
    let mut writer = BlockWriter::create(dir.path(), new_block()).unwrap();
    let b = Labels::from_pairs([("a", "2")]);
    writer
        .add_series(&b, std::slice::from_ref(&chunk), 1)
        .unwrap();
    let err = writer
        .add_series(&b, std::slice::from_ref(&chunk), 1)
        .unwrap_err();
    assert_eq!(err.kind(), BlockErrorKind::InvalidInput);
    let a = Labels::from_pairs([("a", "1")]);
    let err = writer
        .add_series(&a, std::slice::from_ref(&chunk), 1)
        .unwrap_err();
    assert_eq!(err.kind(), BlockErrorKind::InvalidInput);
    let bad_chunk = ChunkMeta {
        min_time: 5,
        max_time: 4,
        ..chunk
    };
    let c = Labels::from_pairs([("a", "3")]);
    let err = writer.add_series(&c, &[bad_chunk], 1).unwrap_err();
    assert_eq!(err.kind(), BlockErrorKind::InvalidInput);
    // A dropped writer leaves nothing behind.
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Copies the fixture's block into a fresh directory, applies `damage` to
/// one of its files, and returns the directory.
fn damaged_copy(file: &str, mut damage: impl FnMut(&mut Vec<u8>)) -> tempfile::TempDir {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("chunks")).unwrap();
    for name in ["meta.json", "index", "chunks/000001"] {
        let mut bytes = std::fs::read(f.block.dir().join(name)).unwrap();
        if name == file {
            damage(&mut bytes);
        }
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// Runs every read on a block and returns the first error, if any.
fn read_everything(block: &Block) -> Result<(), tsdb::block::BlockError> {
    let all = block.select(&[], i64::MIN, i64::MAX)?;
    for s in &all {
        for &(_, _, r) in &s.chunks {
            block.chunk(r)?;
        }
    }
    for name in block.label_names(&[])? {
        block.label_values(&name, &[])?;
        for value in block
            .label_values(&name, &[])
            .unwrap_or_default()
            .iter()
            .take(3)
        {
            let m = [Matcher::equal(name.clone(), value.clone())];
            block.select(&m, 0, 10_000)?;
            block.label_names(&m)?;
            block.label_values("job", &m)?;
        }
        let regex = Matcher::new(MatchOp::RegexMatch, name.clone(), ".+").unwrap();
        block.select(&[regex], 0, 10_000)?;
    }
    Ok(())
}

#[test]
fn truncated_index_is_an_error_naming_the_file() {
    let f = fixture();
    let len = std::fs::metadata(f.block.dir().join("index"))
        .unwrap()
        .len() as usize;
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((0..200).map(|i| i * len / 200));
    cuts.extend(len - 200..len);
    for cut in cuts {
        let dir = damaged_copy("index", |b| b.truncate(cut));
        let err = Block::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), BlockErrorKind::Corrupt, "cut at {cut}: {err}");
        assert!(err.to_string().contains("index"), "{err}");
    }
}

#[test]
fn flipped_index_bytes_never_panic() {
    let f = fixture();
    let len = std::fs::metadata(f.block.dir().join("index"))
        .unwrap()
        .len() as usize;
    let mut rng = XorShift(42);
    let mut detected = 0;
    for i in 0..300 {
        let at = if i < 150 {
            i * len / 150
        } else {
            rng.below(len as u64) as usize
        };
        let bit = 1u8 << rng.below(8);
        let dir = damaged_copy("index", |b| b[at] ^= bit);
        match Block::open(dir.path()) {
            Err(e) => {
                assert_eq!(e.kind(), BlockErrorKind::Corrupt, "{e}");
                detected += 1;
            }
            Ok(block) => {
                if let Err(e) = read_everything(&block) {
                    assert_eq!(e.kind(), BlockErrorKind::Corrupt, "{e}");
                    detected += 1;
                }
            }
        }
    }
    // Every byte of the index is covered by some CRC, and the reads above
    // touch every series and postings list, so every flip is noticed.
    assert_eq!(detected, 300);
}

#[test]
fn damaged_chunk_segment_is_detected() {
    let f = fixture();
    let all = f.block.select(&[], i64::MIN, i64::MAX).unwrap();
    let (_, _, r) = all
        .iter()
        .flat_map(|s| s.chunks.iter())
        .nth(10)
        .copied()
        .unwrap();
    let at = r.offset() as usize + 3;
    let dir = damaged_copy("chunks/000001", |b| b[at] ^= 0x10);
    let block = Block::open(dir.path()).unwrap();
    let err = block.chunk(r).unwrap_err();
    assert_eq!(err.kind(), BlockErrorKind::Corrupt);
    assert!(err.to_string().contains("000001"), "{err}");

    let seg_len = std::fs::metadata(f.block.dir().join("chunks/000001"))
        .unwrap()
        .len() as usize;
    for cut in [0, 4, 7, 8, 9, seg_len / 2, seg_len - 1] {
        let dir = damaged_copy("chunks/000001", |b| b.truncate(cut));
        match Block::open(dir.path()) {
            Err(e) => assert_eq!(e.kind(), BlockErrorKind::Corrupt),
            Ok(block) => {
                let e = read_everything(&block).unwrap_err();
                assert_eq!(e.kind(), BlockErrorKind::Corrupt);
            }
        }
    }
}

#[test]
fn corrupt_meta_is_an_error() {
    let dir = damaged_copy("meta.json", |b| b.truncate(b.len() / 2));
    let err = Block::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), BlockErrorKind::Corrupt);
    assert!(err.to_string().contains("meta.json"), "{err}");
}

#[test]
fn crash_leftovers_are_removed_by_cleanup_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let series = random_series(&mut XorShift(7), 50);
    let finished = write_block(dir.path(), &series);
    // A writer that "crashes": its Drop never runs.
    let mut crashed = BlockWriter::create(dir.path(), new_block()).unwrap();
    crashed
        .add_series(
            &series[0].0,
            &series.iter().find(|s| !s.1.is_empty()).unwrap().1,
            1,
        )
        .unwrap();
    let crashed_dir = dir.path().join(format!("{}.tmp", crashed.ulid()));
    std::mem::forget(crashed);
    assert!(crashed_dir.is_dir());
    std::fs::create_dir_all(dir.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp/chunks")).unwrap();

    cleanup_tmp(dir.path()).unwrap();
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec![finished.ulid.clone()]);
    Block::open(&dir.path().join(&finished.ulid)).unwrap();
    cleanup_tmp(&dir.path().join("does-not-exist")).unwrap();
}

#[test]
fn many_series_use_sampled_offsets_correctly() {
    // Selecting single series by equality jumps through the series and
    // symbol samples rather than walking from the start.
    let f = fixture();
    for (labels, _) in f.series.iter().step_by(37) {
        let matchers: Vec<Matcher> = labels
            .iter()
            .map(|l| Matcher::equal(l.name.clone(), l.value.clone()))
            .collect();
        let got = f.block.select(&matchers, i64::MIN, i64::MAX).unwrap();
        assert!(got.iter().any(|s| &s.labels == labels), "{labels}");
    }
}

/// Node-exporter-like series: reports index bytes per series and keeps it
/// from growing unnoticed.
#[test]
fn index_bytes_per_series_for_node_exporter_like_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = Vec::new();
    let metrics = [
        ("node_cpu_seconds_total", 8usize),
        ("node_network_receive_bytes_total", 4),
        ("node_filesystem_avail_bytes", 6),
        ("node_disk_io_time_seconds_total", 4),
        ("node_memory_MemFree_bytes", 1),
    ];
    for host in 0..200 {
        for (metric, fan_out) in metrics {
            for k in 0..fan_out {
                let mut pairs = vec![
                    ("__name__".to_string(), metric.to_string()),
                    ("job".to_string(), "node".to_string()),
                    (
                        "instance".to_string(),
                        format!("10.0.{}.{}:9100", host / 250, host % 250),
                    ),
                    ("env".to_string(), "prod".to_string()),
                    ("region".to_string(), format!("eu-west-{}", host % 3)),
                ];
                match metric {
                    "node_cpu_seconds_total" => {
                        pairs.push(("cpu".into(), k.to_string()));
                        pairs.push(("mode".into(), "idle".into()));
                    }
                    "node_filesystem_avail_bytes" => {
                        pairs.push(("device".into(), format!("/dev/sda{k}")));
                        pairs.push(("fstype".into(), "ext4".into()));
                        pairs.push(("mountpoint".into(), format!("/mnt/{k}")));
                    }
                    "node_memory_MemFree_bytes" => {}
                    _ => pairs.push(("device".into(), format!("eth{k}"))),
                }
                series.push(Labels::from_pairs(pairs));
            }
        }
    }
    series.sort();
    let mut writer = BlockWriter::create(dir.path(), new_block()).unwrap();
    let mut offset_time = 0;
    for labels in &series {
        // A 2-hour block of 15 s samples: one chunk of 120 samples per 30 min.
        let chunks: Vec<ChunkMeta> = (0..4)
            .map(|i| ChunkMeta {
                min_time: offset_time + i * 1_800_000,
                max_time: offset_time + i * 1_800_000 + 1_785_000,
                encoding: 1,
                data: vec![0; 40],
            })
            .collect();
        writer.add_series(labels, &chunks, 480).unwrap();
        offset_time = 0;
    }
    let meta = writer.finish().unwrap();
    let index_len = std::fs::metadata(dir.path().join(&meta.ulid).join("index"))
        .unwrap()
        .len();
    let per_series = index_len as f64 / series.len() as f64;
    eprintln!(
        "index: {index_len} bytes for {} series = {per_series:.1} bytes/series",
        series.len()
    );
    assert!(per_series < 64.0, "{per_series} bytes/series");
}
