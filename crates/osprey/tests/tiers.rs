//! Resolution tiers (`storage.tiers`, issue 19 point 1) against the real
//! binary: history imported with `osprey import`, downsampled with
//! `osprey tsdb downsample`, then queried over HTTP with
//! `max_source_resolution=raw` and with the automatic choice on the same
//! server; per-tier retention seen on disk; and a downsampling run killed
//! with SIGKILL at several points, which loses nothing and leaves no
//! half-written tier.
//!
//! Tolerance (also in docs/configuration.md): an `_over_time` function
//! over a tier may differ from raw by the samples of the one window that
//! straddles the range's left edge (a tier window counts whole), so
//! count/sum/avg are within one sample's share of the window (4/1440 for
//! `[1d]`, 4/60 for `[1h]` on this 1-minute data whose samples are at
//! most four times their mean), min and max may include
//! that one edge sample (the gauge here moves at most 0.045 a minute, so
//! within 0.05 of raw); rate and increase within 1 % or that share; resets exact; a
//! plain selector over a tier gives the last value of the window before the
//! step, equal to raw at `offset 1m` on this 1-minute data.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{ChildGuard, Server, free_addr, http, urlencode};

const DAY: i64 = 86_400;

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn osprey(args: &[&str]) -> (bool, String, String) {
    let output = ChildGuard::output(
        Command::new(env!("CARGO_BIN_EXE_osprey")).args(args),
        Duration::from_secs(300),
    )
    .expect("run osprey");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `days` of 1-minute samples ending at `end` (seconds): per job a
/// counter that resets every 5 days and a gauge (a slow wave).
fn history(end: i64, days: i64, jobs: &[&str]) -> String {
    let mut out = String::new();
    let start = end - days * DAY;
    let mut t = start;
    let mut i: i64 = 0;
    while t <= end {
        for (j, job) in jobs.iter().enumerate() {
            let since_reset = i % (5 * 1440 + 17);
            let counter = since_reset * (3 + j as i64) + (i * 7 % 5);
            let gauge = 50.0 + 40.0 * ((i as f64) / 900.0 + j as f64).sin();
            out.push_str(&format!(
                "tier_requests_total{{job=\"{job}\"}} {counter} {t}\ntier_temperature{{job=\"{job}\"}} {gauge:.3} {t}\n"
            ));
        }
        t += 60;
        i += 1;
    }
    out.push_str("# EOF\n");
    out
}

fn import(dir: &Path, data: &Path, text: &str) {
    let file = dir.join("history.om");
    std::fs::write(&file, text).expect("write history");
    let (ok, _, stderr) = osprey(&[
        "import",
        "--data-dir",
        &data.display().to_string(),
        &file.display().to_string(),
    ]);
    assert!(ok, "import: {stderr}");
}

fn write_config(dir: &Path, tiers: &str) -> std::path::PathBuf {
    let path = dir.join("osprey.yml");
    std::fs::write(&path, format!("storage:\n  tiers:\n{tiers}")).expect("write config");
    path
}

fn downsample(config: &Path, data: &Path) -> String {
    let (ok, stdout, stderr) = osprey(&[
        "tsdb",
        "downsample",
        "--config",
        &config.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert!(ok, "downsample: {stderr}");
    stdout
}

/// A range query's series: label `job` -> [(t, value)].
fn range_query(
    addr: std::net::SocketAddr,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
    resolution: &str,
) -> Vec<(String, Vec<(i64, f64)>)> {
    let path = format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step={step}&max_source_resolution={resolution}",
        urlencode(query)
    );
    let (status, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{query}: {text}");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let mut out: Vec<(String, Vec<(i64, f64)>)> = v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            let job = s["metric"]["job"].as_str().unwrap_or("").to_string();
            let points = s["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|p| {
                    (
                        p[0].as_f64().expect("t") as i64,
                        p[1].as_str().expect("v").parse::<f64>().expect("number"),
                    )
                })
                .collect();
            (job, points)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A plain selector of `metric` over the tiers equals raw `offset`
/// earlier, exactly, at the steps `(start, end, step)`; `extra` adds
/// query parameters to both queries.
fn assert_plain_equals_raw_earlier(
    addr: std::net::SocketAddr,
    metric: &str,
    offset: &str,
    (start, end, step): (i64, i64, i64),
    extra: &str,
) {
    let shifted = format!("{metric} offset {offset}");
    let raw = range_query(addr, &shifted, start, end, step, &format!("raw{extra}"));
    let tiered = range_query(addr, metric, start, end, step, &format!("auto{extra}"));
    let what = format!("plain selector {metric} against raw {offset} earlier{extra}");
    assert_close(&what, &raw, &tiered, 0.0);
}

fn assert_close(
    what: &str,
    raw: &[(String, Vec<(i64, f64)>)],
    tiered: &[(String, Vec<(i64, f64)>)],
    relative: f64,
) {
    // `relative` is a share of the raw value, or, when negative, an
    // absolute bound.
    assert_eq!(raw.len(), tiered.len(), "{what}: series");
    assert!(!raw.is_empty(), "{what}: no series");
    for ((job_r, pr), (job_t, pt)) in raw.iter().zip(tiered) {
        assert_eq!(job_r, job_t, "{what}");
        assert_eq!(
            pr.iter().map(|p| p.0).collect::<Vec<_>>(),
            pt.iter().map(|p| p.0).collect::<Vec<_>>(),
            "{what} {job_r}: steps"
        );
        for (a, b) in pr.iter().zip(pt) {
            // A negative tolerance is absolute.
            let limit = if relative < 0.0 {
                -relative
            } else {
                relative * a.1.abs().max(1.0)
            };
            assert!(
                (a.1 - b.1).abs() <= limit,
                "{what} {job_r} at {}: raw {} tiered {} (limit {limit})",
                a.0,
                a.1,
                b.1
            );
        }
    }
}

#[test]
fn tiered_answers_match_raw_within_tolerance() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("data");
    // Day-aligned, so 1d steps line up with the tiers' windows.
    let end = (now_s() / DAY) * DAY - DAY;
    // The last sample one minute before `end`, as at every other step.
    import(dir, &data, &history(end - 60, 12, &["a", "b"]));
    let config = write_config(
        dir,
        "    - {resolution: raw, retention: 1y}\n    - {resolution: 5m, retention: 1y}\n    - {resolution: 1h, retention: 1y}\n",
    );
    let report = downsample(&config, &data);
    assert!(report.contains("5m:") && report.contains("1h:"), "{report}");
    let server = Server::start_with_args(
        &data,
        free_addr(),
        &dir.join("server.log"),
        &["--config", &config.display().to_string()],
    );
    let addr = server.addr;
    // 10 days at a 1d step (the 1h tier) and 2 days at 1h (the 5m tier).
    // `edge`: one sample at the left edge may count, which on this gauge
    // (10 to 90) is at most four times the mean sample: 4 / samples per
    // window (1440 a day, 60 an hour).
    let cases: [(i64, i64, i64, &str, f64); 2] = [
        (end - 10 * DAY, end, DAY, "1d", 4.0 / 1440.0),
        (end - 2 * DAY, end, 3600, "1h", 4.0 / 60.0),
    ];
    for (start, stop, step, window, edge) in cases {
        for (query, relative) in [
            // The gauge moves at most 0.045 a minute: the edge sample can
            // beat the raw extreme by that much.
            (format!("max_over_time(tier_temperature[{window}])"), -0.05),
            (format!("min_over_time(tier_temperature[{window}])"), -0.05),
            (format!("sum_over_time(tier_temperature[{window}])"), edge),
            (format!("count_over_time(tier_temperature[{window}])"), edge),
            (format!("avg_over_time(tier_temperature[{window}])"), edge),
            (
                format!("rate(tier_requests_total[{window}])"),
                0.01_f64.max(edge),
            ),
            (
                format!("increase(tier_requests_total[{window}])"),
                0.01_f64.max(edge),
            ),
            (format!("resets(tier_requests_total[{window}])"), 0.0),
            (
                format!("sum by (job) (rate(tier_requests_total[{window}]))"),
                0.01_f64.max(edge),
            ),
        ] {
            let raw = range_query(addr, &query, start, stop, step, "raw");
            let tiered = range_query(addr, &query, start, stop, step, "auto");
            assert_close(&format!("{query} step {step}"), &raw, &tiered, relative);
        }
        // Aggregates a series' tier does not keep (a counter's max, min
        // and sum; a gauge's counter) are read from raw data as window
        // points of the tier's resolution: the answer has the same steps
        // and the tolerance of the aggregates the tier keeps. (A counter's
        // window max is its last value but where it resets; `rate` over a
        // gauge's window points sees fewer of its drops as resets than
        // over all samples, so only its steps are compared.)
        for (query, relative) in [
            (
                format!("max_over_time(tier_requests_total[{window}])"),
                0.01_f64.max(edge),
            ),
            (
                format!("avg_over_time(tier_requests_total[{window}])"),
                0.01_f64.max(edge),
            ),
            (format!("rate(tier_temperature[{window}])"), f64::INFINITY),
        ] {
            let raw = range_query(addr, &query, start, stop, step, "raw");
            let tiered = range_query(addr, &query, start, stop, step, "auto");
            assert_close(&format!("{query} step {step}"), &raw, &tiered, relative);
        }
        // A plain selector reads the last value of the windows before the
        // step, a gauge's as a counter's: raw one sample (1m) earlier,
        // exactly, from the coarsest tier whose windows end at the steps
        // (the 1h tier at a 1h step, not the 5m one that step / 5 allows).
        for metric in ["tier_requests_total", "tier_temperature"] {
            assert_plain_equals_raw_earlier(addr, metric, "1m", (start, stop, step), "");
        }
    }
    // The tiers answer with fewer samples: the engine's statistics say so.
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={end}&step=86400&stats=all",
        urlencode("max_over_time(tier_temperature[1d])"),
        end - 10 * DAY
    );
    let (_, body) = http(addr, "GET", &path, &[], &[]).expect("query");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let total = v["data"]["stats"]["samples"]["totalQueryableSamples"]
        .as_i64()
        .unwrap_or(-1);
    assert!(
        (0..=2 * 11 * 25).contains(&total),
        "expected hourly points, got {total} samples"
    );
    // The tier metrics: blocks and bytes per downsampled tier.
    let (status, body) = http(addr, "GET", "/metrics", &[], &[]).expect("metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    for tier in ["5m", "1h"] {
        for metric in ["osprey_tsdb_tier_blocks", "osprey_tsdb_tier_bytes"] {
            let prefix = format!("{metric}{{resolution=\"{tier}\"}} ");
            let value: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .trim()
                .parse()
                .expect("number");
            assert!(value > 0.0, "{prefix}{value}");
        }
    }
    for metric in [
        "osprey_tsdb_downsamples_total",
        "osprey_tsdb_downsamples_failed_total",
        "osprey_tsdb_last_downsample_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("\n{metric} ")),
            "no {metric} in\n{text}"
        );
    }
    // A bad max_source_resolution is a 400 with Prometheus's error shape.
    let (status, body) = http(
        addr,
        "GET",
        "/api/v1/query?query=up&max_source_resolution=soon",
        &[],
        &[],
    )
    .expect("query");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"errorType\":\"bad_data\""));
    drop(server);
}

#[test]
fn a_backfill_into_a_downsampled_range_is_downsampled_again() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("data");
    let end = (now_s() / DAY) * DAY - DAY;
    import(dir, &data, &history(end - 60, 6, &["a"]));
    let config = write_config(
        dir,
        "    - {resolution: raw, retention: 1y}\n    - {resolution: 1h, retention: 1y}\n",
    );
    downsample(&config, &data);
    // Backfill another job into the same days, then downsample again.
    let backfill = dir.join("backfill");
    std::fs::create_dir_all(&backfill).expect("mkdir");
    import(&backfill, &data, &history(end - 60, 6, &["late"]));
    downsample(&config, &data);
    let server = Server::start_with_args(
        &data,
        free_addr(),
        &dir.join("server.log"),
        &["--config", &config.display().to_string()],
    );
    for resolution in ["raw", "1h"] {
        let counts = range_query(
            server.addr,
            "count_over_time(tier_temperature[1d])",
            end - 4 * DAY,
            end,
            DAY,
            resolution,
        );
        let jobs: Vec<&str> = counts.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(jobs, ["a", "late"], "{resolution}");
        for (job, points) in &counts {
            assert_eq!(points.len(), 5, "{resolution} {job}: {points:?}");
            for &(t, c) in points {
                assert!((c - 1440.0).abs() <= 1.0, "{resolution} {job} at {t}: {c}");
            }
        }
    }
    drop(server);
}

#[test]
fn backup_and_restore_keep_the_tiers() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("data");
    let end = (now_s() / DAY) * DAY - DAY;
    import(dir, &data, &history(end - 60, 6, &["a", "b"]));
    let config = write_config(
        dir,
        "    - {resolution: raw, retention: 1y}\n    - {resolution: 1h, retention: 1y}\n",
    );
    downsample(&config, &data);
    let backup = dir.join("backup");
    let (ok, _, stderr) = osprey(&[
        "tsdb",
        "backup",
        "--data-dir",
        &data.display().to_string(),
        &backup.display().to_string(),
    ]);
    assert!(ok, "backup: {stderr}");
    let manifest = std::fs::read_to_string(backup.join("backup.json")).expect("manifest");
    assert!(manifest.contains("\"tiers/3600000/"), "{manifest}");
    let restored = dir.join("restored");
    let (ok, _, stderr) = osprey(&[
        "tsdb",
        "restore",
        "--data-dir",
        &restored.display().to_string(),
        &backup.display().to_string(),
    ]);
    assert!(ok, "restore: {stderr}");
    let tiers = tiers_on_disk(&restored);
    assert!(!tiers[1].1.is_empty(), "no 1h tier blocks restored");
    assert_eq!(tiers_on_disk(&data), tiers);
    // The restored copy answers tiered queries exactly as the original.
    let queries = [
        "max_over_time(tier_temperature[1d])",
        "avg_over_time(tier_temperature[1d])",
        "rate(tier_requests_total[1d])",
    ];
    let mut answers = Vec::new();
    for (name, data) in [("original", &data), ("restored", &restored)] {
        let server = Server::start_with_args(
            data,
            free_addr(),
            &dir.join(format!("{name}.log")),
            &["--config", &config.display().to_string()],
        );
        let mut mine = Vec::new();
        for query in queries {
            let tiered = range_query(server.addr, query, end - 5 * DAY, end, DAY, "1h");
            assert!(!tiered.is_empty(), "{name} {query}");
            mine.push(tiered);
        }
        answers.push(mine);
        drop(server);
    }
    assert_eq!(answers[0], answers[1]);
}

/// (min time, max time) in seconds of every block in `dir`.
fn block_ranges(dir: &Path) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let meta = e.path().join("meta.json");
        if let Ok(text) = std::fs::read_to_string(&meta) {
            let v: serde_json::Value = serde_json::from_str(&text).expect("meta");
            out.push((
                v["minTime"].as_i64().expect("min") / 1000,
                v["maxTime"].as_i64().expect("max") / 1000,
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn each_tier_keeps_its_retention_on_disk_and_queries_stitch_them() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("data");
    let end = now_s() - 60;
    let file = dir.join("history.om");
    std::fs::write(&file, history(end, 40, &["a", "debug", "biz"])).expect("write history");
    // Two-hour blocks, as a server cuts them, so retention can drop whole
    // blocks of raw data.
    let (ok, _, stderr) = osprey(&[
        "import",
        "--max-block-duration",
        "2h",
        "--data-dir",
        &data.display().to_string(),
        &file.display().to_string(),
    ]);
    assert!(ok, "import: {stderr}");
    // Per-series rules apply per tier: debug series leave every tier after
    // 2 days; biz series stay in the coarsest tier for 60 days, past its
    // own 30.
    let config = write_config(
        dir,
        "    - {resolution: raw, retention: 3d}\n    - {resolution: 5m, retention: 10d}\n    - {resolution: 1h, retention: 30d}\n  retention_rules:\n    - {selector: '{job=\"debug\"}', retention: 2d}\n    - {selector: '{job=\"biz\"}', retention: 60d}\n",
    );
    downsample(&config, &data);
    let raw = block_ranges(&data);
    let five = block_ranges(&data.join("tiers").join("300000"));
    let hour = block_ranges(&data.join("tiers").join("3600000"));
    assert!(!raw.is_empty() && !five.is_empty() && !hour.is_empty());
    // A block goes once it lies wholly before newest - retention.
    let oldest_end = |blocks: &[(i64, i64)]| blocks.iter().map(|b| b.1).min().unwrap_or(0);
    let oldest_start = |blocks: &[(i64, i64)]| blocks.iter().map(|b| b.0).min().unwrap_or(0);
    assert!(oldest_end(&raw) > end - 3 * DAY, "raw {raw:?}");
    assert!(oldest_end(&five) > end - 10 * DAY, "5m {five:?}");
    // The 1h tier keeps blocks past its 30 days for the biz rule (60d).
    assert!(oldest_start(&hour) <= end - 39 * DAY, "1h {hour:?}");
    // And each tier still holds what is older than the finer one keeps.
    assert!(
        oldest_start(&raw) > oldest_start(&five),
        "raw {raw:?} 5m {five:?}"
    );
    assert!(
        oldest_start(&five) > oldest_start(&hour),
        "5m {five:?} 1h {hour:?}"
    );

    let server = Server::start_with_args(
        &data,
        free_addr(),
        &dir.join("server.log"),
        &["--config", &config.display().to_string()],
    );
    // 28 days at a 1d step: every day has an answer, from whichever tier
    // still holds it, and each count is a whole day of samples (no gap,
    // nothing counted twice where tiers meet).
    let start = (end / DAY) * DAY - 27 * DAY;
    let counts = range_query(
        server.addr,
        "count_over_time(tier_temperature[1d])",
        start,
        start + 26 * DAY,
        DAY,
        "auto",
    );
    let jobs: Vec<&str> = counts.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(jobs, ["a", "biz", "debug"]);
    for (job, points) in &counts[..2] {
        assert_eq!(points.len(), 27, "{job}: {points:?}");
        for &(t, c) in points {
            assert!(
                (c - 1440.0).abs() <= 1.0,
                "{job} day ending {t}: {c} samples"
            );
        }
    }
    // debug: only the last two days or so, in any tier.
    let debug_days = &counts[2].1;
    assert!(
        debug_days.iter().all(|&(t, _)| t > end - 3 * DAY - DAY),
        "debug kept too long: {debug_days:?}"
    );
    // Past the coarsest tier's 30 days only biz is left.
    let old_start = (end / DAY) * DAY - 38 * DAY;
    let old = range_query(
        server.addr,
        "count_over_time(tier_temperature[1d])",
        old_start,
        old_start + 5 * DAY,
        DAY,
        "auto",
    );
    let old_jobs: Vec<&str> = old.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(old_jobs, ["biz"], "{old:?}");
    // On disk: tier blocks older than two days no longer hold the debug
    // series (2 metrics x 3 jobs = 6 series before).
    for tier in ["300000", "3600000"] {
        let tier_dir = data.join("tiers").join(tier);
        for e in std::fs::read_dir(&tier_dir).expect("tier dir").flatten() {
            let Ok(text) = std::fs::read_to_string(e.path().join("meta.json")) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).expect("meta");
            let max = v["maxTime"].as_i64().expect("max") / 1000;
            let series = v["stats"]["numSeries"].as_i64().expect("series");
            if max < end - 3 * DAY {
                assert!(
                    series <= 4,
                    "tier {tier} block ending {max}: {series} series"
                );
            }
        }
    }
    // Raw only: just the last three days or so.
    let raw_counts = range_query(
        server.addr,
        "count_over_time(tier_temperature{job=\"a\"}[1d])",
        start,
        start + 26 * DAY,
        DAY,
        "raw",
    );
    assert!(raw_counts.iter().all(|s| s.1.len() <= 5), "{raw_counts:?}");
}

/// Every tier block of `data`, by tier: (dir name, sorted ranges).
fn tiers_on_disk(data: &Path) -> Vec<(String, Vec<(i64, i64)>)> {
    let mut out = Vec::new();
    for tier in ["300000", "3600000"] {
        out.push((
            tier.to_string(),
            block_ranges(&data.join("tiers").join(tier)),
        ));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn sigkill_during_downsampling_loses_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let pristine = dir.join("pristine");
    let end = (now_s() / DAY) * DAY;
    import(dir, &pristine, &history(end, 20, &["a", "b", "c", "d"]));
    let config = write_config(
        dir,
        "    - {resolution: raw, retention: 1y}\n    - {resolution: 5m, retention: 1y}\n    - {resolution: 1h, retention: 1y}\n",
    );
    // The reference: one uninterrupted run.
    let clean = dir.join("clean");
    copy_dir(&pristine, &clean);
    let began = std::time::Instant::now();
    downsample(&config, &clean);
    let full = began.elapsed();
    let reference = tiers_on_disk(&clean);

    let mut killed_mid_run = 0;
    for (attempt, fraction) in [0.1, 0.3, 0.5, 0.7, 0.9].into_iter().enumerate() {
        let data = dir.join(format!("killed{attempt}"));
        copy_dir(&pristine, &data);
        let mut child = ChildGuard::spawn(
            Command::new(env!("CARGO_BIN_EXE_osprey"))
                .args(["tsdb", "downsample", "--config"])
                .arg(&config)
                .arg("--data-dir")
                .arg(&data)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )
        .expect("spawn");
        std::thread::sleep(full.mul_f64(fraction));
        if child.wait_timeout(Duration::ZERO).is_none() {
            killed_mid_run += 1;
        }
        child.kill();
        // Whatever the kill left, no tier block is half there: every
        // directory without `.tmp` opens (has meta.json), and the next run
        // finishes the job to the same tiers as the clean run.
        for tier in ["300000", "3600000"] {
            let tier_dir = data.join("tiers").join(tier);
            for e in std::fs::read_dir(&tier_dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".tmp") {
                    assert!(e.path().join("meta.json").exists(), "{name} half written");
                }
            }
        }
        downsample(&config, &data);
        for tier in ["300000", "3600000"] {
            let leftovers: Vec<String> = std::fs::read_dir(data.join("tiers").join(tier))
                .expect("tier dir")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
        let after = tiers_on_disk(&data);
        // Same time covered, same windows: the answers match exactly.
        let covered = |t: &[(String, Vec<(i64, i64)>)]| -> Vec<(String, i64, i64)> {
            t.iter()
                .map(|(n, r)| {
                    (
                        n.clone(),
                        r.iter().map(|x| x.0).min().unwrap_or(0),
                        r.iter().map(|x| x.1).max().unwrap_or(0),
                    )
                })
                .collect()
        };
        assert_eq!(covered(&after), covered(&reference), "attempt {attempt}");
        let a = Server::start_with_args(
            &data,
            free_addr(),
            &dir.join(format!("killed{attempt}.log")),
            &["--config", &config.display().to_string()],
        );
        let b = Server::start_with_args(
            &clean,
            free_addr(),
            &dir.join(format!("clean{attempt}.log")),
            &["--config", &config.display().to_string()],
        );
        for (query, step) in [
            ("sum_over_time(tier_temperature[1d])", DAY),
            ("count_over_time(tier_temperature[1d])", DAY),
            ("rate(tier_requests_total[1h])", 3600),
        ] {
            let start = end - 15 * DAY;
            let x = range_query(a.addr, query, start, end, step, "auto");
            let y = range_query(b.addr, query, start, end, step, "auto");
            assert_eq!(x, y, "{query} after kill {attempt}");
        }
    }
    println!("killed mid-run {killed_mid_run} of 5 times (a full run took {full:?})");
}

/// Queries whose steps and ranges line up with a tier's windows read a
/// tier as coarse as the range (`docs/configuration.md`, "Aligned
/// windows"): a 1h step over `[1h]` ranges reads the 1h tier, and each
/// answer is the raw answer one millisecond earlier (`offset 1ms`), or,
/// for `rate`/`increase`, the exact increase from the last sample before
/// the range to the last one in it.
#[test]
fn aligned_ranges_read_a_tier_as_coarse_as_the_range() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let data = dir.join("data");
    let end = (now_s() / DAY) * DAY - DAY;
    import(dir, &data, &history(end - 60, 12, &["a", "b"]));
    let config = write_config(
        dir,
        "    - {resolution: raw, retention: 1y}\n    - {resolution: 1h, retention: 1y}\n",
    );
    let report = downsample(&config, &data);
    assert!(report.contains("1h:"), "{report}");
    let server = Server::start_with_args(
        &data,
        free_addr(),
        &dir.join("server.log"),
        &["--config", &config.display().to_string()],
    );
    let addr = server.addr;
    let samples_read = |query: &str, start: i64, step: i64| {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}&stats=all",
            urlencode(query)
        );
        let (_, body) = http(addr, "GET", &path, &[], &[]).expect("query");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        v["data"]["stats"]["samples"]["totalQueryableSamples"]
            .as_i64()
            .unwrap_or(-1)
    };
    let (start, step) = (end - 3 * DAY, 3600);
    // Hourly points: 73 steps and the window before the first, per series
    // (raw would read 60 samples a step).
    let read = samples_read("max_over_time(tier_temperature[1h])", start, step);
    assert!((0..=2 * 75).contains(&read), "read {read} samples");
    let read = samples_read("rate(tier_requests_total[1h])", start, step);
    assert!((0..=2 * 76).contains(&read), "read {read} samples");
    // A plain selector's steps line up with the hourly windows too: it
    // reads their last values (a gauge's as a counter's), while steps off
    // the hour read raw samples. (A selector's statistics count the
    // points it read and the 73 points of its answer.)
    let read = samples_read("tier_temperature", start, step);
    assert!((0..=2 * (75 + 73)).contains(&read), "read {read} samples");
    let read = samples_read("tier_temperature", start + 60, step);
    assert!(read > 2 * 60 * 72, "read {read} samples");
    for metric in ["tier_temperature", "tier_requests_total"] {
        let steps = (start, end, step);
        assert_plain_equals_raw_earlier(addr, metric, "1ms", steps, "");
        // With a lookback as long as the sample interval, raw one
        // millisecond earlier still sees the sample one interval back.
        assert_plain_equals_raw_earlier(addr, metric, "1ms", steps, "&lookback_delta=1m");
    }
    // Exactly raw one millisecond earlier.
    for (query, relative) in [
        ("max_over_time(tier_temperature[1h])", 0.0),
        ("min_over_time(tier_temperature[1h])", 0.0),
        ("count_over_time(tier_temperature[1h])", 0.0),
        ("sum_over_time(tier_temperature[1h])", 1e-12),
        ("avg_over_time(tier_temperature[1h])", 1e-12),
        ("last_over_time(tier_requests_total[1h])", 0.0),
        ("last_over_time(tier_temperature[1h])", 0.0),
        ("resets(tier_requests_total[1h])", 0.0),
        ("count_over_time(tier_temperature[3h])", 0.0),
        ("max_over_time(tier_temperature[3h])", 0.0),
    ] {
        let (f, rest) = query.split_once('[').expect("range");
        let shifted = format!("{f}[{}", rest.replacen(']', "] offset 1ms", 1));
        let raw = range_query(addr, &shifted, start, end, step, "raw");
        let tiered = range_query(addr, query, start, end, step, "auto");
        assert_close(&format!("{query} aligned"), &raw, &tiered, relative);
    }
    // rate and increase: the exact increase over the hour ending one
    // sample before each step. The counter climbs 3 or 4 a minute plus a
    // term of 0 to 4 that does not accumulate: against raw's extrapolation
    // over the 59 minutes after the step's hour began, within 10 of 180.
    let increase = range_query(
        addr,
        "increase(tier_requests_total[1h])",
        start,
        end,
        step,
        "auto",
    );
    let rate = range_query(
        addr,
        "rate(tier_requests_total[1h])",
        start,
        end,
        step,
        "auto",
    );
    for query in [
        "increase(tier_requests_total[1h])",
        "sum by (job) (increase(tier_requests_total[1h]))",
    ] {
        let raw = range_query(addr, query, start, end, step, "raw");
        let tiered = range_query(addr, query, start, end, step, "auto");
        assert_close(&format!("{query} aligned"), &raw, &tiered, 10.0 / 180.0);
    }
    let per_second: Vec<(String, Vec<(i64, f64)>)> = increase
        .iter()
        .map(|(job, p)| {
            (
                job.clone(),
                p.iter().map(|&(t, v)| (t, v / 3600.0)).collect(),
            )
        })
        .collect();
    assert_close("rate = increase / range", &per_second, &rate, 1e-12);
    // Exactly the counter's own increase between those two samples, at
    // the steps with no reset between them.
    let a = range_query(
        addr,
        "tier_requests_total offset 61m",
        start,
        end,
        step,
        "raw",
    );
    let b = range_query(
        addr,
        "tier_requests_total offset 1m",
        start,
        end,
        step,
        "raw",
    );
    let resets = range_query(
        addr,
        "resets(tier_requests_total[61m] offset 1m)",
        start,
        end,
        step,
        "raw",
    );
    let mut compared = 0;
    for (((job, pa), (_, pb)), ((_, pr), (_, pt))) in
        a.iter().zip(&b).zip(resets.iter().zip(&increase))
    {
        for (((x, y), r), t) in pa.iter().zip(pb).zip(pr).zip(pt) {
            assert_eq!((x.0, y.0, r.0), (t.0, t.0, t.0), "{job}: steps");
            if r.1 == 0.0 {
                assert!(
                    (t.1 - (y.1 - x.1)).abs() < 1e-9,
                    "{job} at {}: {} vs {}",
                    t.0,
                    t.1,
                    y.1 - x.1
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 100, "compared {compared} steps");
    // Steps off the hour do not line up: the step / 5 rule reads raw.
    for query in [
        "max_over_time(tier_temperature[1h])",
        "rate(tier_requests_total[1h])",
    ] {
        let off = start + 1800;
        let raw = range_query(addr, query, off, end, step, "raw");
        let tiered = range_query(addr, query, off, end, step, "auto");
        assert_close(&format!("{query} off the hour"), &raw, &tiered, 0.0);
        assert!(samples_read(query, off, step) > 2 * 60 * 70);
        // max_source_resolution caps the aligned rule too.
        let raw = range_query(addr, query, start, end, step, "raw");
        let capped = range_query(addr, query, start, end, step, "5m");
        assert_close(&format!("{query} capped"), &raw, &capped, 0.0);
    }
    drop(server);
}
