//! `/api/v1/status/tsdb` with VictoriaMetrics's cardinality parameters
//! (`topN`, `match[]`, `focusLabel`, `date`), checked against a real
//! VictoriaMetrics fed the same remote-write data: every count and top list
//! must be the same. A missing `victoria-metrics` skips with a printed
//! reason (a failure under `OSPREY_REQUIRE_EXTERNAL=1`).

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

fn required() -> bool {
    std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

fn victoria_metrics_available() -> bool {
    match Command::new("victoria-metrics")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) => {
            let reason = format!(
                "victoria-metrics is not installed ({e}); apt-get install victoria-metrics"
            );
            assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping: {reason}");
            false
        }
    }
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("GET");
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&body)));
    (status, value)
}

/// Today's series: a few metric names, one with a label per user (the
/// classic cardinality bomb), shared label values across names, and ties
/// in the counts so the order of equal counts is checked too.
fn today_series(t: i64) -> Vec<WriteSeries<'static>> {
    let mut out: Vec<WriteSeries<'static>> = Vec::new();
    let sample = |i: i64| vec![(t + i, 1.0)];
    let mut i = 0;
    for job in ["api", "web", "db"] {
        for instance in 0..4 {
            out.push((
                vec![
                    ("__name__", "card_up".to_string()),
                    ("job", job.to_string()),
                    ("instance", format!("host-{instance}:9100")),
                ],
                sample(i),
            ));
            i += 1;
            for code in ["200", "404", "500"] {
                for path in ["/", "/login"] {
                    if job == "db" && path == "/login" {
                        continue;
                    }
                    out.push((
                        vec![
                            ("__name__", "card_http_requests_total".to_string()),
                            ("job", job.to_string()),
                            ("instance", format!("host-{instance}:9100")),
                            ("code", code.to_string()),
                            ("path", path.to_string()),
                        ],
                        sample(i),
                    ));
                    i += 1;
                }
            }
        }
    }
    for user in 0..150 {
        out.push((
            vec![
                ("__name__", "card_user_requests".to_string()),
                ("job", "api".to_string()),
                ("user", format!("user-{user:03}")),
            ],
            sample(i),
        ));
        i += 1;
    }
    for gpu in 0..4 {
        out.push((
            vec![
                ("__name__", "card_temp".to_string()),
                ("gpu", gpu.to_string()),
            ],
            sample(i),
        ));
        i += 1;
    }
    out
}

/// Two days earlier: a metric only that day, and one `card_up` series that
/// also has samples today.
fn old_series(t: i64) -> Vec<WriteSeries<'static>> {
    let mut out: Vec<WriteSeries<'static>> = Vec::new();
    for shard in 0..7 {
        out.push((
            vec![
                ("__name__", "card_old_batch".to_string()),
                ("job", "batch".to_string()),
                ("shard", shard.to_string()),
            ],
            vec![(t + shard, 2.0)],
        ));
    }
    out.push((
        vec![
            ("__name__", "card_up".to_string()),
            ("job", "api".to_string()),
            ("instance", "host-0:9100".to_string()),
        ],
        vec![(t, 1.0)],
    ));
    out
}

fn write_all(addr: SocketAddr, series: &[WriteSeries<'_>], what: &str) {
    let status = remote_write(addr, &remote_write_body(series)).expect("remote write");
    assert!(
        (200..300).contains(&status),
        "{what}: remote write answered {status}"
    );
}

fn day_of(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = model::time::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The query `q` for the day `day` (`YYYY-MM-DD`).
fn on_day(day: &str, q: &str) -> String {
    format!("date={day}{}{q}", if q.is_empty() { "" } else { "&" })
}

/// The fields both systems answer, from osprey's or VictoriaMetrics's
/// `data`.
const COMPARED: [&str; 7] = [
    "totalSeries",
    "totalLabelValuePairs",
    "seriesCountByMetricName",
    "seriesCountByLabelName",
    "seriesCountByFocusLabelValue",
    "seriesCountByLabelValuePair",
    "labelValueCountByLabelName",
];

fn compare(osprey: SocketAddr, vm: SocketAddr, osprey_query: &str, vm_query: &str) -> Value {
    let path = |q: &str| {
        format!(
            "/api/v1/status/tsdb{}{q}",
            if q.is_empty() { "" } else { "?" }
        )
    };
    let (os, ours) = get_json(osprey, &path(osprey_query));
    let (vs, theirs) = get_json(vm, &path(vm_query));
    assert_eq!((os, vs), (200, 200), "{osprey_query}: {ours} / {theirs}");
    for field in COMPARED {
        let (a, b) = (&ours["data"][field], &theirs["data"][field]);
        assert!(
            same_top_list(a, b),
            "{field} differs for osprey ?{osprey_query} and VictoriaMetrics ?{vm_query}:\n{a}\n{b}"
        );
    }
    ours["data"].clone()
}

/// Whether two answers agree. Top lists must hold the same counts in the
/// same order and the same names, except among the entries tied at the
/// smallest count of a list cut short: which of those make the cut is the
/// store's choice (osprey keeps the first by name; VictoriaMetrics the
/// first it meets), so there only the counts must agree.
fn same_top_list(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_array(), b.as_array()) else {
        return a == b;
    };
    let counts = |l: &[Value]| l.iter().map(|e| e["value"].clone()).collect::<Vec<_>>();
    if a.len() != b.len() || counts(a) != counts(b) {
        return false;
    }
    let Some(cut) = a.last().map(|e| e["value"].clone()) else {
        return true;
    };
    a.iter()
        .zip(b)
        .all(|(x, y)| x["value"] == cut || x["name"] == y["name"])
}

#[test]
fn cardinality_matches_victoria_metrics() {
    if !victoria_metrics_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let vm_addr = free_addr();
    let _vm = ChildGuard::spawn_ready(
        Command::new("victoria-metrics")
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm-data").display()
            ))
            .arg(format!("-httpListenAddr={vm_addr}"))
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache"),
        &dir.path().join("vm.log"),
        Duration::from_secs(60),
        || matches!(http(vm_addr, "GET", "/health", &[], &[]), Ok((200, _))),
    );
    // One osprey with today's data only (its head is what VictoriaMetrics
    // reports for today's date), one with both days (for `date`).
    // Neither scrapes: the embedded default scrapes osprey's own metrics,
    // and a scrape landing during the test would add series that
    // VictoriaMetrics never saw.
    let config = dir.path().join("osprey.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").expect("write config");
    let config = config.display().to_string();
    let today = Server::start_with_args(
        &dir.path().join("today"),
        free_addr(),
        &dir.path().join("today.log"),
        &["--config", &config],
    );
    let both = Server::start_with_args(
        &dir.path().join("both"),
        free_addr(),
        &dir.path().join("both.log"),
        &["--config", &config],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // Far enough from midnight that every sample of a day is in that day.
    let day_start = now.div_euclid(86_400_000) * 86_400_000;
    let t_today = if now - day_start < 60_000 {
        now + 60_000
    } else {
        now - 30_000
    };
    let t_old = day_start - 2 * 86_400_000 + 3_600_000;
    let (old, new) = (old_series(t_old), today_series(t_today));
    // VictoriaMetrics without `date` reports the day it is asked on, which
    // is the next one if the test runs past midnight; so it is asked for
    // the day of today's data by name, as it would be without `date`
    // before midnight. osprey is asked without `date`: its head.
    let (old_day, new_day) = (day_of(t_old), day_of(t_today));
    let on_new_day = |q: &str| on_day(&new_day, q);
    write_all(vm_addr, &old, "VictoriaMetrics");
    write_all(vm_addr, &new, "VictoriaMetrics");
    write_all(both.addr, &old, "osprey");
    write_all(both.addr, &new, "osprey");
    write_all(today.addr, &new, "osprey");
    let (status, _) = http(vm_addr, "GET", "/internal/force_flush", &[], &[]).expect("flush");
    assert_eq!(status, 200);
    // VictoriaMetrics registers a new series in its per-day index in the
    // background; on a loaded machine its count can trail the writes for
    // a while after the flush. Wait (bounded) until it has every series
    // osprey reports, so the comparison below is of answers, not of that
    // lag.
    let total = |addr, q: &str| {
        get_json(addr, &format!("/api/v1/status/tsdb?{q}")).1["data"]["totalSeries"].as_u64()
    };
    let all_of_today = on_new_day("");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while total(vm_addr, &all_of_today) != total(today.addr, "")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }

    let e = urlencode;
    let cases: Vec<String> = vec![
        String::new(),
        "topN=3".into(),
        "topN=0".into(),
        "topN=1000".into(),
        "topN=5&focusLabel=job".into(),
        "focusLabel=user&topN=4".into(),
        "focusLabel=no_such_label".into(),
        format!("match[]={}", e("card_up")),
        format!(
            "match[]={}&match[]={}&focusLabel=instance&topN=4",
            e("card_up"),
            e("{code=\"500\"}")
        ),
        format!(
            "match[]={}&focusLabel=user&topN=20",
            e("{job=\"api\",__name__=~\"card_.*\"}")
        ),
        format!(
            "match[]={}&match[]={}",
            e("card_up"),
            e("card_up{job=\"api\"}")
        ),
        format!("match[]={}", e("no_such_metric")),
    ];
    // osprey without `date` reports its head: holding today's data, the
    // same as VictoriaMetrics reports for today (see `on_new_day`).
    let mut seen_totals = Vec::new();
    for q in &cases {
        let data = compare(today.addr, vm_addr, q, &on_new_day(q));
        seen_totals.push(data["totalSeries"].as_u64().expect("total"));
        assert!(data["headStats"]["numSeries"].is_u64(), "{data}");
    }
    assert_eq!(
        seen_totals[0], 226,
        "every series of today: {seen_totals:?}"
    );
    assert_eq!(seen_totals[7], 12, "card_up alone");
    assert_eq!(seen_totals[11], 0);
    // With `date`: the series with samples that day, on both.
    for q in &cases {
        for day in [&old_day, &new_day] {
            let q = on_day(day, q);
            compare(both.addr, vm_addr, &q, &q);
        }
    }
    let old_data = compare(
        both.addr,
        vm_addr,
        &format!("date={old_day}"),
        &format!("date={old_day}"),
    );
    assert_eq!(old_data["totalSeries"], 8, "{old_data}");
    // A day with nothing, before any data.
    compare(both.addr, vm_addr, "date=2001-02-03", "date=2001-02-03");

    // Bad input: Prometheus-style errors.
    for q in [
        "date=2024-02-30",
        "date=yesterday",
        "topN=ten",
        "limit=0",
        "match[]=%7B",
    ] {
        let (status, body) = get_json(today.addr, &format!("/api/v1/status/tsdb?{q}"));
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["status"], "error", "{q}");
        assert_eq!(body["errorType"], "bad_data", "{q}");
    }
}
