//! Tests of the WAL against real files in temporary directories: logging
//! and replay, group commit from many threads, tail repair after every kind
//! of tear, and checkpoints with crashes between their steps.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use model::Labels;

use super::*;

fn test_options() -> WalOptions {
    WalOptions {
        segment_size: DEFAULT_SEGMENT_SIZE,
        fsync: false,
    }
}

fn series_record(id: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_series(
        &[RefSeries {
            id,
            labels: Labels::from_pairs([("__name__", "up"), ("instance", &*format!("host-{id}"))]),
        }],
        &mut bytes,
    );
    bytes
}

fn samples_record(id: u64, t: i64, count: usize) -> Vec<u8> {
    let samples: Vec<RefSample> = (0..count)
        .map(|i| RefSample {
            id,
            t: t + i as i64,
            v: (t + i as i64) as f64 * 0.5,
        })
        .collect();
    let mut bytes = Vec::new();
    encode_samples(&samples, &mut bytes);
    bytes
}

fn replay_all(dir: &Path) -> (Vec<Record>, ReplayStats) {
    let mut records = Vec::new();
    let stats = replay(dir, &mut |record| records.push(record)).expect("replay");
    (records, stats)
}

fn segment_path(dir: &Path, number: u32) -> std::path::PathBuf {
    dir.join(segment_file_name(number))
}

#[test]
fn wal_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wal>();
}

#[test]
fn log_then_replay_returns_records_in_order() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    let mut expected = Vec::new();
    {
        let wal = Wal::open(&dir, WalOptions::default()).expect("open");
        for id in 1..=5u64 {
            let series = series_record(id);
            let samples = samples_record(id, 1000 * id as i64, 3);
            wal.log(&[&series, &samples]).expect("log");
            expected.push(decode(&series).expect("decode"));
            expected.push(decode(&samples).expect("decode"));
        }
        let stats = wal.stats();
        assert_eq!(stats.writes, 5);
        assert!(stats.fsyncs >= 1 && stats.fsyncs <= 5, "{stats:?}");
        assert_eq!(stats.repairs, 0);
    }
    let (records, stats) = replay_all(&dir);
    assert_eq!(records, expected);
    assert_eq!(stats.series, 5);
    assert_eq!(stats.samples, 15);
    assert_eq!(stats.corruptions, 0);

    // Reopening starts a new segment and keeps the old records.
    let wal = Wal::open(&dir, test_options()).expect("reopen");
    assert_eq!(wal.current_segment(), 2);
    wal.log(&[&series_record(6)]).expect("log");
    drop(wal);
    let (records, _) = replay_all(&dir);
    assert_eq!(records.len(), expected.len() + 1);
}

#[test]
fn log_rejects_records_it_could_not_read_back() {
    let temp = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(temp.path(), test_options()).expect("open");
    let error = wal.log(&[&[]]).expect_err("empty record");
    assert_eq!(error.kind(), WalErrorKind::InvalidRecord);
    let error = wal.log(&[&[9, 1, 2]]).expect_err("unknown type");
    assert_eq!(error.kind(), WalErrorKind::InvalidRecord);
    assert_eq!(wal.stats().bytes_written, 0);
}

#[test]
fn concurrent_log_from_eight_threads_is_all_replayed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    let threads = 8u64;
    let per_thread = 200u64;
    {
        // Small segments so that cuts race with writers and syncs too.
        let wal = Arc::new(
            Wal::open(
                &dir,
                WalOptions {
                    segment_size: 16 * 1024,
                    fsync: true,
                },
            )
            .expect("open"),
        );
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let id = thread * 1_000_000 + i;
                        let series = series_record(id);
                        let samples = samples_record(id, i as i64, 2);
                        wal.log(&[&series, &samples]).expect("log");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        let stats = wal.stats();
        assert_eq!(stats.writes, threads * per_thread);
        assert!(stats.segments_created > 1, "{stats:?}");
        println!("concurrent group commit: {stats:?}");
    }
    let (records, stats) = replay_all(&dir);
    assert_eq!(stats.corruptions, 0);
    let mut seen_series = std::collections::BTreeSet::new();
    let mut seen_samples = std::collections::BTreeSet::new();
    for record in records {
        match record {
            Record::Series(series) => {
                for s in series {
                    assert!(seen_series.insert(s.id), "series {} twice", s.id);
                }
            }
            Record::Samples(samples) => {
                for s in samples {
                    assert!(seen_series.contains(&s.id), "sample before its series");
                    seen_samples.insert((s.id, s.t));
                }
            }
            Record::Tombstones(_) => panic!("no tombstones were logged"),
            Record::Exemplars(_) => panic!("no exemplars were logged"),
            Record::Histograms(_) => panic!("no histograms were logged"),
        }
    }
    assert_eq!(seen_series.len() as u64, threads * per_thread);
    assert_eq!(seen_samples.len() as u64, threads * per_thread * 2);
}

#[test]
fn records_never_span_segments_and_large_ones_get_their_own() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    let options = WalOptions {
        segment_size: 1000,
        fsync: false,
    };
    let wal = Wal::open(&dir, options).expect("open");
    let big = samples_record(1, 0, 300); // About 3000 bytes.
    for i in 0..20 {
        wal.log(&[&samples_record(1, i * 10, 10)]).expect("log");
    }
    wal.log(&[&big]).expect("log big");
    wal.log(&[&samples_record(1, 5000, 10)])
        .expect("log after big");
    drop(wal);
    let listing = list_directory(&dir).expect("list");
    let mut total_records = 0;
    let mut saw_big_alone = false;
    for number in &listing.segments {
        let bytes = fs::read(segment_path(&dir, *number)).expect("read");
        let scan = scan_segment_bytes(&bytes, &mut |_| {});
        assert_eq!(scan.corruption, None);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        if bytes.len() > 1000 {
            assert_eq!(scan.records, 1, "an oversized segment holds one record");
            saw_big_alone = true;
        }
        total_records += scan.records;
    }
    assert!(saw_big_alone);
    assert_eq!(total_records, 22);
    let (records, _) = replay_all(&dir);
    assert_eq!(records.len(), 22);
}

/// Writes `count` records into a fresh WAL and returns the decoded records
/// and the frame end offsets of the single segment.
fn write_fixture(dir: &Path, count: u64) -> (Vec<Record>, Vec<u64>) {
    let wal = Wal::open(dir, test_options()).expect("open");
    let mut records = Vec::new();
    let mut ends = Vec::new();
    let mut offset = 0u64;
    for id in 0..count {
        let bytes = if id % 2 == 0 {
            series_record(id)
        } else {
            samples_record(id - 1, id as i64 * 100, 4)
        };
        wal.log(&[&bytes]).expect("log");
        offset += (bytes.len() + segment::FRAME_HEADER_LEN) as u64;
        ends.push(offset);
        records.push(decode(&bytes).expect("decode"));
    }
    assert_eq!(wal.current_segment(), 1);
    (records, ends)
}

#[test]
fn open_repairs_truncation_at_every_byte_of_the_last_records() {
    let temp = tempfile::tempdir().expect("tempdir");
    let template = temp.path().join("template");
    let (records, ends) = write_fixture(&template, 8);
    let full = fs::read(segment_path(&template, 1)).expect("read");
    let start = ends[ends.len() - 4] as usize;
    for cut in start..=full.len() {
        let dir = temp.path().join(format!("cut-{cut}"));
        fs::create_dir(&dir).expect("mkdir");
        fs::write(segment_path(&dir, 1), &full[..cut]).expect("write");
        let complete = ends.iter().filter(|&&end| end as usize <= cut).count();

        let wal = Wal::open(&dir, test_options()).expect("open must repair");
        let torn = cut != ends[complete - 1] as usize;
        assert_eq!(wal.stats().repairs, u64::from(torn), "cut at {cut}");
        assert_eq!(wal.current_segment(), 2);
        assert_eq!(
            fs::metadata(segment_path(&dir, 1)).expect("stat").len(),
            ends[complete - 1],
            "repair truncates to the last good frame"
        );
        // Later writes land after the repaired records.
        wal.log(&[&series_record(99)]).expect("log after repair");
        drop(wal);

        let (replayed, stats) = replay_all(&dir);
        assert_eq!(stats.corruptions, 0, "cut at {cut}");
        assert_eq!(replayed.len(), complete + 1, "cut at {cut}");
        assert_eq!(&replayed[..complete], &records[..complete], "cut at {cut}");
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}

/// A small deterministic generator, so failures reproduce.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn open_repairs_random_byte_flips_in_the_tail() {
    let temp = tempfile::tempdir().expect("tempdir");
    let template = temp.path().join("template");
    let (records, ends) = write_fixture(&template, 10);
    let full = fs::read(segment_path(&template, 1)).expect("read");
    let tail_start = ends[5] as usize;
    let mut random = SplitMix(42);
    for round in 0..200 {
        let mut bytes = full.clone();
        let position = tail_start + (random.next() as usize) % (full.len() - tail_start);
        let flip = 1u8 << (random.next() % 8);
        bytes[position] ^= flip;
        let dir = temp.path().join(format!("flip-{round}"));
        fs::create_dir(&dir).expect("mkdir");
        fs::write(segment_path(&dir, 1), &bytes).expect("write");

        // The damaged frame is the one containing `position`.
        let damaged = ends.iter().filter(|&&end| end as usize <= position).count();
        let wal = Wal::open(&dir, test_options()).expect("open must repair");
        assert_eq!(wal.stats().repairs, 1, "round {round} position {position}");
        wal.log(&[&series_record(1234)]).expect("log after repair");
        drop(wal);
        let (replayed, stats) = replay_all(&dir);
        assert_eq!(stats.corruptions, 0);
        // A flipped length bit may make the damaged frame look longer or
        // shorter; either way nothing from it on survives.
        assert_eq!(replayed.len(), damaged + 1, "round {round}");
        assert_eq!(&replayed[..damaged], &records[..damaged]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}

#[test]
fn open_deletes_segments_after_a_repaired_one() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    {
        let wal = Wal::open(&dir, test_options()).expect("open");
        wal.log(&[&series_record(1)]).expect("log");
        wal.cut_segment().expect("cut");
        wal.log(&[&series_record(2)]).expect("log");
    }
    // Tear segment 1; segment 2 must not be replayed after the hole.
    let path = segment_path(&dir, 1);
    let len = fs::metadata(&path).expect("stat").len();
    let file = OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(len - 1).expect("truncate");
    drop(file);
    let wal = Wal::open(&dir, test_options()).expect("open");
    assert_eq!(wal.stats().repairs, 1);
    // The old segment 2 is gone; the new segment takes its number, empty.
    assert_eq!(wal.current_segment(), 2, "numbered after the survivors");
    assert_eq!(fs::metadata(segment_path(&dir, 2)).expect("stat").len(), 0);
    drop(wal);
    let (records, _) = replay_all(&dir);
    assert!(records.is_empty());
}

#[test]
fn replay_stops_at_corruption_in_the_middle() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    {
        let wal = Wal::open(&dir, test_options()).expect("open");
        wal.log(&[&series_record(1), &series_record(2)])
            .expect("log");
        wal.cut_segment().expect("cut");
        wal.log(&[&series_record(3)]).expect("log");
        wal.cut_segment().expect("cut");
        wal.log(&[&series_record(4)]).expect("log");
    }
    // Damage the second record of segment 1: replay sees record 1 only.
    let path = segment_path(&dir, 1);
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).expect("write");
    let (records, stats) = replay_all(&dir);
    assert_eq!(records.len(), 1);
    assert_eq!(stats.corruptions, 1);
}

#[test]
fn checkpoint_and_truncate_keep_exactly_kept_series_and_recent_samples() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    let wal = Wal::open(&dir, test_options()).expect("open");
    for id in 0..10u64 {
        wal.log(&[&series_record(id), &samples_record(id, 0, 100)])
            .expect("log");
    }
    let first_segment = wal.current_segment();
    wal.cut_segment().expect("cut");
    for id in 0..10u64 {
        wal.log(&[&samples_record(id, 100, 100)]).expect("log");
    }
    // Deletes: of a kept series reaching past the checkpoint's mint (kept),
    // of a kept series entirely before it (dropped), of a dropped series.
    let mut deletes = Vec::new();
    encode_tombstones(
        &[
            RefTombstone {
                id: 2,
                mint: 140,
                maxt: 160,
            },
            RefTombstone {
                id: 4,
                mint: 0,
                maxt: 149,
            },
            RefTombstone {
                id: 3,
                mint: 0,
                maxt: 1000,
            },
        ],
        &mut deletes,
    );
    wal.log(&[&deletes]).expect("log");
    let through = wal.cut_segment().expect("cut") - 1;
    assert_eq!(through, first_segment + 1);
    // Written after the checkpoint's range: must survive untouched.
    wal.log(&[&series_record(50), &samples_record(50, 0, 5)])
        .expect("log");

    let keep = |id: u64| id.is_multiple_of(2);
    let stats = checkpoint(&dir, through, &keep, 150).expect("checkpoint");
    assert!(stats.written);
    assert_eq!(stats.series_kept, 5);
    assert_eq!(stats.series_dropped, 5);
    assert_eq!(stats.samples_kept, 5 * 50);
    assert_eq!(stats.samples_dropped, 2000 - 250);
    assert_eq!(stats.tombstones_kept, 1);
    assert_eq!(stats.tombstones_dropped, 2);
    wal.truncate_before(through + 1).expect("truncate");
    assert!(!segment_path(&dir, first_segment).exists());
    assert!(!segment_path(&dir, through).exists());

    let (records, replay_stats) = replay_all(&dir);
    assert_eq!(replay_stats.checkpoint, Some(through));
    let mut series = Vec::new();
    let mut samples = Vec::new();
    let mut deleted = Vec::new();
    for record in records {
        match record {
            Record::Series(s) => series.extend(s.into_iter().map(|s| s.id)),
            Record::Samples(s) => {
                // The delete follows every sample of the checkpoint.
                assert!(
                    deleted.is_empty() || s.iter().all(|x| x.id == 50),
                    "checkpoint samples after the delete"
                );
                samples.extend(s);
            }
            Record::Tombstones(t) => deleted.extend(t),
            Record::Exemplars(_) => panic!("no exemplars were logged"),
            Record::Histograms(_) => panic!("no histograms were logged"),
        }
    }
    assert_eq!(
        deleted,
        vec![RefTombstone {
            id: 2,
            mint: 140,
            maxt: 160
        }]
    );
    assert_eq!(series, vec![0, 2, 4, 6, 8, 50]);
    assert_eq!(samples.len(), 250 + 5);
    assert!(
        samples
            .iter()
            .all(|s| (keep(s.id) && s.t >= 150) || s.id == 50)
    );

    // A second checkpoint builds on the first and deletes it.
    let through2 = wal.cut_segment().expect("cut") - 1;
    let stats = checkpoint(&dir, through2, &|id| id == 50 || id == 0, i64::MIN).expect("again");
    assert_eq!(stats.series_kept, 2);
    assert!(!dir.join(checkpoint_dir_name(through)).exists());
    wal.truncate_before(through2 + 1).expect("truncate");
    let (records, _) = replay_all(&dir);
    let sample_count: usize = records
        .iter()
        .map(|r| match r {
            Record::Samples(s) => s.len(),
            Record::Series(_)
            | Record::Tombstones(_)
            | Record::Exemplars(_)
            | Record::Histograms(_) => 0,
        })
        .sum();
    assert_eq!(sample_count, 50 + 5);
    // Repeating a checkpoint that exists is a no-op.
    assert!(
        !checkpoint(&dir, through2, &|_| true, 0)
            .expect("noop")
            .written
    );
}

#[test]
fn crashes_between_checkpoint_steps_leave_a_replayable_wal() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    {
        let wal = Wal::open(&dir, test_options()).expect("open");
        wal.log(&[&series_record(1), &samples_record(1, 0, 10)])
            .expect("log");
        wal.cut_segment().expect("cut");
        wal.log(&[&samples_record(1, 10, 10)]).expect("log");
    }
    let (before, _) = replay_all(&dir);

    // Crash while writing the checkpoint: a leftover tmp directory with a
    // half-written segment. Replay ignores it; open removes it.
    let tmp = dir.join("checkpoint.00000001.tmp");
    fs::create_dir(&tmp).expect("mkdir");
    fs::write(tmp.join("00000001"), [1, 2, 3]).expect("write");
    let (records, stats) = replay_all(&dir);
    assert_eq!(records, before);
    assert_eq!(stats.checkpoint, None);
    let wal = Wal::open(&dir, test_options()).expect("open");
    assert!(!tmp.exists());

    // Crash after the rename but before truncation: the segments covered
    // by the checkpoint are still there and must not be replayed twice.
    let stats = checkpoint(&dir, 1, &|_| true, i64::MIN).expect("checkpoint");
    assert!(stats.written);
    let (records, stats) = replay_all(&dir);
    assert_eq!(stats.checkpoint, Some(1));
    assert_eq!(records, before);
    drop(wal);

    // Crash after truncating everything a checkpoint covers: the next
    // segment must be numbered past the checkpoint, or replay would skip it.
    assert!(
        checkpoint(&dir, 3, &|_| true, i64::MIN)
            .expect("checkpoint")
            .written
    );
    for number in 1..=3 {
        fs::remove_file(segment_path(&dir, number)).expect("rm");
    }
    let wal = Wal::open(&dir, test_options()).expect("open");
    assert_eq!(wal.current_segment(), 4);
    wal.log(&[&samples_record(1, 20, 1)]).expect("log");
    drop(wal);
    let (records, stats) = replay_all(&dir);
    assert_eq!(stats.checkpoint, Some(3));
    assert_eq!(&records[..before.len()], &before[..]);
    assert_eq!(records.len(), before.len() + 1);
}

#[test]
fn checkpoint_refuses_corrupt_input() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    {
        let wal = Wal::open(&dir, test_options()).expect("open");
        wal.log(&[&series_record(1), &series_record(2)])
            .expect("log");
        wal.cut_segment().expect("cut");
    }
    let path = segment_path(&dir, 1);
    let mut bytes = fs::read(&path).expect("read");
    bytes[10] ^= 1;
    fs::write(&path, &bytes).expect("write");
    let error = checkpoint(&dir, 1, &|_| true, 0).expect_err("corrupt input");
    assert_eq!(error.kind(), WalErrorKind::Corrupt);
    assert_eq!(error.path(), Some(path.as_path()));
    assert!(!dir.join(checkpoint_dir_name(1)).exists());
}

/// Informal throughput print, not a benchmark: run with `--release
/// --nocapture` to read fsyncs/s and MB/s of group-committed `log` calls.
#[test]
fn informal_log_throughput_print() {
    let temp = tempfile::tempdir().expect("tempdir");
    let wal = Arc::new(Wal::open(temp.path(), WalOptions::default()).expect("open"));
    // 1000 samples of one request, about 10 KB a record.
    let samples: Vec<RefSample> = (0..1000)
        .map(|i| RefSample {
            id: i,
            t: 1_700_000_000_000,
            v: i as f64,
        })
        .collect();
    let mut record = Vec::new();
    encode_samples(&samples, &mut record);
    let record = Arc::new(record);
    let threads = 8;
    let calls_per_thread = 100;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let wal = Arc::clone(&wal);
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                for _ in 0..calls_per_thread {
                    wal.log(&[&record]).expect("log");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = wal.stats();
    assert_eq!(stats.writes, threads * calls_per_thread);
    println!(
        "informal: {} log calls from {threads} threads in {seconds:.3} s: {:.0} log/s, \
         {:.0} fsyncs/s ({:.1} calls per fsync), {:.1} MB/s",
        stats.writes,
        stats.writes as f64 / seconds,
        stats.fsyncs as f64 / seconds,
        stats.writes as f64 / stats.fsyncs.max(1) as f64,
        stats.bytes_written as f64 / seconds / 1e6,
    );
}

#[test]
fn written_durability_syncs_at_most_once_per_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WalOptions {
        segment_size: DEFAULT_SEGMENT_SIZE,
        fsync: true,
    };
    let wal = Wal::open(dir.path(), options).expect("open");
    let started = Instant::now();
    let writes = 200;
    for i in 0..writes {
        wal.log_with(&[&samples_record(1, i * 10, 10)], Durability::Written)
            .expect("log");
    }
    // A sync needs the window to have passed since the previous one, so
    // however slow the machine, the count is bounded by the time taken.
    let windows = started.elapsed().as_secs_f64() / UNSYNCED_WINDOW.as_secs_f64();
    let unsynced = wal.stats().fsyncs;
    assert!(
        (unsynced as f64) <= windows + 1.0,
        "{unsynced} syncs for {writes} unsynced writes in {windows:.2} windows"
    );
    // A synced write syncs, covering everything before it.
    wal.log(&[&samples_record(1, 10_000, 1)]).expect("log");
    assert_eq!(wal.stats().fsyncs, unsynced + 1);
    assert_eq!(wal.stats().writes, writes as u64 + 1);
    drop(wal);
    let (records, _) = replay_all(dir.path());
    assert_eq!(records.len(), writes as usize + 1);
}

#[test]
fn histogram_records_round_trip_and_reject_damage() {
    use crate::wal::record::{RefHistogram, encode_histograms};
    use model::histogram::{CounterResetHint, FloatHistogram, Span};
    let h = FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: -53,
        zero_threshold: 0.0,
        zero_count: 0.0,
        count: 6.0,
        sum: model::STALE_NAN,
        positive_spans: vec![Span {
            offset: 0,
            length: 3,
        }],
        negative_spans: vec![Span {
            offset: -3,
            length: 1,
        }],
        positive_buckets: vec![1.0, 2.0, 3.0],
        negative_buckets: vec![0.5],
        custom_values: vec![0.1, 1.0],
    };
    let samples = vec![
        RefHistogram {
            id: 7,
            t: -5,
            h: h.clone(),
        },
        RefHistogram {
            id: 3,
            t: 1 << 40,
            h: FloatHistogram::default(),
        },
    ];
    let mut bytes = Vec::new();
    encode_histograms(&samples, &mut bytes);
    match decode(&bytes).expect("decodes") {
        Record::Histograms(back) => {
            assert_eq!(back.len(), 2);
            assert_eq!(back[0].id, 7);
            assert_eq!(back[1].t, 1 << 40);
            assert!(back[0].h.is_stale());
            assert_eq!(back[0].h.custom_values, h.custom_values);
            assert_eq!(back[0].h.negative_spans, h.negative_spans);
            assert_eq!(back[0].h.counter_reset_hint, CounterResetHint::Gauge);
        }
        other => panic!("decoded {other:?}"),
    }
    for cut in 2..bytes.len() {
        // A cut right after the first sample is a record of one sample.
        match decode(&bytes[..cut]) {
            Ok(Record::Histograms(one)) => assert_eq!(one.len(), 1, "prefix of {cut} bytes"),
            Ok(other) => panic!("decoded {other:?}"),
            Err(_) => {}
        }
    }
    let mut empty = Vec::new();
    encode_histograms(&[], &mut empty);
    assert_eq!(
        decode(&empty).expect("empty"),
        Record::Histograms(Vec::new())
    );
}
