//! Durability under `kill -9`.
//!
//! A writer sends remote-write batches to a real `osprey server` while the
//! test kills the process with SIGKILL and restarts it, 25 times. Every
//! batch that got a 2xx must be fully readable afterwards. A second test
//! damages the WAL tail by hand and checks the server starts anyway, says
//! so in its log, and keeps every intact record.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const SERIES_PER_BATCH: usize = 20;
const KILLS: usize = 25;

fn batch(i: u64) -> Vec<u8> {
    numbered_batch("crash_test", SERIES_PER_BATCH, i)
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let addr = free_addr();
    let server = Arc::new(Mutex::new(Some(Server::start(&data, addr, &log))));

    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let acked = acked.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            // Batches go one after another; a batch is retried until it is
            // acknowledged, so 0..acked are all acknowledged.
            let mut i = 0u64;
            let deadline = Instant::now() + Duration::from_secs(240);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                match remote_write(addr, &batch(i)) {
                    Ok(204) | Ok(200) => {
                        i += 1;
                        acked.store(i, Ordering::SeqCst);
                    }
                    Ok(code) => panic!("batch {i} rejected with {code}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };

    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    for kill in 0..KILLS {
        // xorshift: a delay between 30 and 230 ms, so kills land at
        // different points of the write path.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let before = acked.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30 + rng_state % 200));
        if let Some(s) = server.lock().expect("lock").take() {
            s.kill();
        }
        let killed_at = acked.load(Ordering::SeqCst);
        assert!(
            killed_at > before || kill == 0 || killed_at > 0,
            "writer made no progress before kill {kill}"
        );
        *server.lock().expect("lock") = Some(Server::start(&data, addr, &log));
    }
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let n = acked.load(Ordering::SeqCst);
    assert!(
        n > KILLS as u64,
        "too few batches acknowledged ({n}) to mean anything"
    );

    // One more kill after the writer stopped, then read everything back.
    if let Some(s) = server.lock().expect("lock").take() {
        s.kill();
    }
    let s = Server::start(&data, addr, &log);
    let got = export(addr, "crash_test");
    assert_eq!(got.len(), SERIES_PER_BATCH, "every series present");
    for (labels, ts, vals) in &got {
        // Everything acknowledged is there, in order, with its value;
        // batches sent but not acknowledged may or may not be.
        assert!(
            ts.len() as u64 >= n,
            "{labels:?}: {} samples, {n} acknowledged",
            ts.len()
        );
        for i in 0..n {
            let idx = i as usize;
            assert_eq!(
                ts[idx],
                1_000_000 + i as i64 * 1000,
                "{labels:?} timestamp of batch {i}"
            );
            assert_eq!(
                vals[idx].as_f64(),
                Some(i as f64),
                "{labels:?} value of batch {i}"
            );
        }
    }
    eprintln!(
        "crash test: {KILLS} SIGKILLs, {n} batches acknowledged, all {} samples read back",
        n * SERIES_PER_BATCH as u64
    );
    assert!(s.terminate().success(), "clean shutdown after SIGTERM");
}

#[test]
fn damaged_wal_tail_is_repaired_on_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let addr = free_addr();
    let s = Server::start(&data, addr, &log);
    for i in 0..10 {
        assert_eq!(remote_write(addr, &batch(i)).expect("write"), 204);
    }
    s.kill();

    // The newest non-empty segment: append a torn record (a length that
    // runs past the end) and flip bytes in garbage after it.
    let wal = data.join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .expect("wal dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    segments.sort();
    let last = segments.last().expect("a WAL segment with data");
    let mut bytes = std::fs::read(last).expect("read segment");
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 2, 1, 2, 3]);
    std::fs::write(last, &bytes).expect("write segment");

    let s = Server::start(&data, addr, &log);
    let got = export(addr, "crash_test");
    assert_eq!(got.len(), SERIES_PER_BATCH);
    for (_, ts, _) in &got {
        assert_eq!(ts.len(), 10, "all intact records replayed");
    }
    // Writes after the repair work and survive another restart.
    assert_eq!(remote_write(addr, &batch(10)).expect("write"), 204);
    s.kill();
    let s = Server::start(&data, addr, &log);
    for (_, ts, _) in &export(addr, "crash_test") {
        assert_eq!(ts.len(), 11);
    }
    let text = s.log_text();
    assert!(
        text.to_lowercase().contains("repair") || text.to_lowercase().contains("truncat"),
        "the repair is logged; log was:\n{text}"
    );
    s.kill();
}
