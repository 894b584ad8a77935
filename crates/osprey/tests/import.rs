//! `osprey import`: OpenMetrics files backfilled into blocks, read back
//! through a real server; bad input fails with file, line and column and
//! writes nothing.

mod support;

use std::process::Command;
use support::*;

fn import(data: &std::path::Path, files: &[&std::path::Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args(["import", "--data-dir"])
        .arg(data)
        .args(files)
        .output()
        .expect("run osprey import")
}

#[test]
fn imported_samples_read_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Two files, a span of 40 days (several blocks), a stale marker-free
    // mix of values, and one series split across both files.
    let base: i64 = 1_700_000_000; // seconds
    let mut a = String::from("# TYPE req counter\n# HELP req Requests.\n");
    let mut b = String::from("# TYPE temp gauge\n");
    let mut expected_req = Vec::new();
    for i in 0..200i64 {
        let t = base + i * 4 * 3600; // every 4 hours: 33 days
        a.push_str(&format!(
            "req_total{{path=\"/a\",code=\"200\"}} {} {}.125\n",
            i * 10,
            t
        ));
        expected_req.push(((t * 1000) + 125, (i * 10) as f64));
    }
    a.push_str("# EOF\n");
    for i in 0..50i64 {
        b.push_str(&format!(
            "temp{{gpu=\"{}\"}} {} {}\n",
            i % 2,
            0.1 * i as f64,
            base + i * 60
        ));
    }
    b.push_str("# EOF\n");
    let fa = dir.path().join("a.om");
    let fb = dir.path().join("b.om");
    std::fs::write(&fa, a).expect("write");
    std::fs::write(&fb, b).expect("write");

    let out = import(&data, &[&fa, &fb]);
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("imported 250 samples of 3 series"),
        "{stderr}"
    );

    let addr = free_addr();
    let server = Server::start(&data, addr, &dir.path().join("server.log"));
    let got = export(addr, "req_total");
    assert_eq!(got.len(), 1);
    let (labels, ts, vals) = &got[0];
    assert_eq!(
        labels,
        &vec![
            ("__name__".to_string(), "req_total".to_string()),
            ("code".to_string(), "200".to_string()),
            ("path".to_string(), "/a".to_string())
        ]
    );
    let got_pairs: Vec<(i64, f64)> = ts
        .iter()
        .zip(vals)
        .map(|(t, v)| (*t, v.as_f64().expect("number")))
        .collect();
    assert_eq!(got_pairs, expected_req);
    let temps = export(addr, "temp");
    assert_eq!(temps.len(), 2);
    for (_, ts, vals) in &temps {
        assert_eq!(ts.len(), 25);
        for (t, v) in ts.iter().zip(vals) {
            let i = (t / 1000 - base) / 60;
            assert_eq!(v.as_f64(), Some(0.1 * i as f64), "value at {t}");
        }
    }
    server.kill();
}

#[test]
fn bad_input_names_file_line_and_column_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let good = dir.path().join("good.om");
    let bad = dir.path().join("bad.om");
    std::fs::write(&good, "up 1 1700000000\n# EOF\n").expect("write");
    std::fs::write(&bad, "up 1 1700000000\nup{job=\"x\" 2 1700000001\n# EOF\n").expect("write");
    let out = import(&data, &[&good, &bad]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.om: line 2, column"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("osprey:")).count(),
        1,
        "one line of cause: {stderr}"
    );
    let blocks = std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0);
    assert_eq!(blocks, 0, "nothing written");

    let no_ts = dir.path().join("nots.om");
    std::fs::write(&no_ts, "up 1\n# EOF\n").expect("write");
    let out = import(&data, &[&no_ts]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file of `lines` sample lines of about 100 bytes (about 24 MiB for
/// 250,000: several pieces for the parsing threads, whatever the machine),
/// `up{host="h<i % 1000>",...}` at second `i / 1000`, value `i`, then
/// `tail`.
fn big_file(lines: usize, tail: &str) -> String {
    let mut s = String::with_capacity(lines * 100);
    s.push_str("# TYPE up gauge\n");
    for i in 0..lines {
        s.push_str(&format!(
            "up{{host=\"h{}\",job=\"a-rather-long-job-name-to-fill-the-line\",zone=\"z\"}} {i} {}\n",
            i % 1000,
            1_700_000_000 + i / 1000
        ));
    }
    s.push_str(tail);
    s
}

/// The first error the model's parser gives for the whole file: the one
/// the import must report whatever piece it falls in.
fn first_error(text: &str) -> String {
    model::exposition::Parser::new(text.as_bytes(), model::exposition::Format::OpenMetrics)
        .find_map(|r| r.err())
        .expect("an error")
        .to_string()
}

#[test]
fn big_files_parse_in_pieces_with_errors_at_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let lines = 250_000;
    // Errors late in the file (in the last piece), with an earlier one
    // winning over a later one, and `# EOF` in the middle.
    let mut late = big_file(lines, "up{host=\"x\" 1 1700000000\n# EOF\n");
    let early_then_late = {
        let mut s = big_file(lines / 2, "up{host=\"y\"} oops 1700000000\n");
        s.push_str(&big_file(lines / 2, "up{host=\"x\" 1 1700000000\n# EOF\n")[16..]);
        s
    };
    let eof_in_middle = {
        let mut s = big_file(lines / 3, "# EOF\n");
        s.push_str(&big_file(lines / 3, "# EOF\n")[16..]);
        s
    };
    let no_timestamp = big_file(lines, "up{host=\"h1\",job=\"j\"} 1\n# EOF\n");
    for (name, text) in [
        ("late.om", &late),
        ("early.om", &early_then_late),
        ("eof.om", &eof_in_middle),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let out = import(&data, &[&path]);
        assert!(!out.status.success(), "{name} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("{name}: {}", first_error(text));
        assert!(stderr.contains(&want), "{name}: want {want:?} in {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("osprey:")).count(),
            1,
            "one line of cause: {stderr}"
        );
        assert_eq!(std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0), 0);
    }
    let path = dir.path().join("nots.om");
    std::fs::write(&path, &no_timestamp).expect("write");
    let out = import(&data, &[&path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "nots.om: sample up on line {} has no timestamp",
            lines + 2
        )),
        "{stderr}"
    );

    // A good file: every series has samples in every piece; its last
    // samples repeat the first timestamps with new values (the later
    // wins), spelled with the labels in another order.
    late.truncate(late.len() - "up{host=\"x\" 1 1700000000\n# EOF\n".len());
    for h in 0..1000 {
        late.push_str(&format!(
            "up{{zone=\"z\",job=\"a-rather-long-job-name-to-fill-the-line\",host=\"h{h}\"}} -{h} 1700000000\n"
        ));
    }
    late.push_str("# EOF\n");
    let path = dir.path().join("good.om");
    std::fs::write(&path, &late).expect("write");
    let out = import(&data, &[&path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("imported {} samples of 1000 series", lines + 1000)),
        "{stderr}"
    );
    let addr = free_addr();
    let server = Server::start(&data, addr, &dir.path().join("server.log"));
    let got = export(addr, "up");
    assert_eq!(got.len(), 1000);
    for (labels, ts, vals) in &got {
        let host = &labels
            .iter()
            .find(|(n, _)| n == "host")
            .expect("host label")
            .1;
        let h: i64 = host[1..].parse().expect("host number");
        assert_eq!(ts.len(), lines / 1000, "{host}");
        for (k, (t, v)) in ts.iter().zip(vals).enumerate() {
            assert_eq!(*t, (1_700_000_000 + k as i64) * 1000);
            let want = if k == 0 { -h } else { k as i64 * 1000 + h };
            assert_eq!(v.as_f64(), Some(want as f64), "{host} at {t}");
        }
    }
    server.kill();
}

#[test]
fn many_series_over_pieces_join_in_file_order() {
    // 40,000 series (more than one sorting run per thread), each written
    // in both halves of the file (different pieces): the first half at
    // seconds 0 and 1, the second at seconds 1 and 2, so the second half's
    // value wins at second 1. The halves list the series in opposite
    // orders, and each line is padded so the file has several pieces.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let n = 40_000;
    let pad = "p".repeat(150);
    let mut text = String::from("# TYPE m gauge\n");
    for i in 0..n {
        for t in 0..2 {
            text.push_str(&format!(
                "m{{s=\"{i:05}\",pad=\"{pad}\"}} {} {}\n",
                i * 10 + t,
                1_700_000_000 + t
            ));
        }
    }
    for i in (0..n).rev() {
        for t in 1..3 {
            text.push_str(&format!(
                "m{{pad=\"{pad}\",s=\"{i:05}\"}} {} {}\n",
                -(i * 10 + t),
                1_700_000_000 + t
            ));
        }
    }
    text.push_str("# EOF\n");
    let path = dir.path().join("many.om");
    std::fs::write(&path, &text).expect("write");
    let out = import(&data, &[&path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("imported {} samples of {n} series", 4 * n)),
        "{stderr}"
    );
    let addr = free_addr();
    let server = Server::start(&data, addr, &dir.path().join("server.log"));
    for i in [0, 1, 12_345, 39_999] {
        let got = export(addr, &format!("m{{s=\"{i:05}\"}}"));
        assert_eq!(got.len(), 1, "series {i}");
        let (_, ts, vals) = &got[0];
        let pairs: Vec<(i64, f64)> = ts
            .iter()
            .zip(vals)
            .map(|(t, v)| (*t, v.as_f64().expect("number")))
            .collect();
        let i = i as f64;
        assert_eq!(
            pairs,
            vec![
                (1_700_000_000_000, i * 10.0),
                (1_700_000_001_000, -(i * 10.0 + 1.0)),
                (1_700_000_002_000, -(i * 10.0 + 2.0)),
            ],
            "series {i}"
        );
    }
    server.kill();
}
