//! Runs Prometheus's own PromQL test scripts (`promqltest` language)
//! against osprey's engine over a real `tsdb::Db`.
//!
//! The scripts live outside the repository, in
//! `<workspace>/../shared/conformance/promql/testdata`; the language is
//! described in the README next to them, which this runner follows: load /
//! clear / eval commands, the expanded series notation, result comparison
//! with a relative tolerance, and the extra checks upstream makes on every
//! instant eval (a range-mode cross-check and `@`-pinned variants).
//!
//! Cases that need native histograms or experimental syntax are listed in
//! `conformance-skips.txt` (`file:line<TAB>reason`). The test fails when a
//! non-skipped case fails, or when a skip entry names no eval. A
//! "native histograms" entry is checked against the script data: the case
//! must expect a histogram value or read a histogram sample at its eval
//! times, so a float-only case cannot hide behind it (see the audit at the
//! end of this file; `PROMQL_AUDIT_NH=<path>` writes its facts per eval).

use model::Labels;
use model::histogram::{CounterResetHint, FloatHistogram, Span, bucket_indexes};
use model::storage::Appendable;
use promql::ast::{At, Expr};
use promql::{Engine, EngineOptions, QueryOutput, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[test]
fn promql_conformance() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var("PROMQL_CONFORMANCE_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => manifest.join("../../../shared/conformance/promql/testdata"),
    };
    let require = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    if !dir.is_dir() {
        {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stdout().lock(),
                "promql conformance: skipped (no testdata at {})",
                dir.display()
            );
        }
        assert!(
            !require,
            "OSPREY_REQUIRE_EXTERNAL=1 but {} is missing",
            dir.display()
        );
        return;
    }
    let skips_path = manifest.join("tests/conformance-skips.txt");
    let skips = read_skips(&skips_path);
    let only = std::env::var("PROMQL_CONFORMANCE_ONLY").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testdata dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut report = Report::default();
    let mut eval_positions: HashSet<String> = HashSet::new();
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read test file");
        run_file(&name, &text, &skips, &mut report, &mut eval_positions);
    }
    // Stale skip entries: they must name an eval.
    let mut stale = Vec::new();
    if only.is_none() {
        for key in skips.keys() {
            if !eval_positions.contains(key) {
                stale.push(key.clone());
            }
        }
    }
    stale.sort();
    let mut out = String::new();
    let cap = std::env::var("PROMQL_CONFORMANCE_SHOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80);
    let shown = report.failures.len().min(cap);
    for f in &report.failures[..shown] {
        let _ = writeln!(out, "FAIL {f}");
    }
    if report.failures.len() > shown {
        let _ = writeln!(
            out,
            "... and {} more failures",
            report.failures.len() - shown
        );
    }
    for s in &stale {
        let _ = writeln!(out, "STALE skip entry (no eval there): {s}");
    }
    let _ = writeln!(
        out,
        "promql conformance: {} passed, {} failed, {} skipped",
        report.passed,
        report.failures.len(),
        report.skipped
    );
    for (reason, n) in &report.skip_reasons {
        let _ = writeln!(out, "  skipped {n}: {reason}");
    }
    if report.skipped_but_passing > 0 {
        let _ = writeln!(
            out,
            "  note: {} skipped cases pass now: {}",
            report.skipped_but_passing,
            report.passing_skips.join(" ")
        );
    }
    if let Ok(path) = std::env::var("PROMQL_AUDIT_NH") {
        let mut text = String::from(
            "key\treason\texpected_histogram\tannotation_histogram\ttouches_native\ttouches_nhcb\tfloat_only_result\tdependency\tparses\texpr\n",
        );
        for line in &report.audit {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(path, text).expect("write audit");
    }
    if let Ok(path) = std::env::var("PROMQL_WRITE_PASSING_SKIPS") {
        std::fs::write(path, report.passing_skips.join("\n")).expect("write passing skips");
    }
    if let Ok(path) = std::env::var("PROMQL_WRITE_FAILURES") {
        let list: Vec<String> = report.failed_keys.iter().map(|k| k.to_string()).collect();
        std::fs::write(path, list.join("\n")).expect("write failures");
    }
    // Written to the process's stdout directly: the test harness captures
    // `println!` of passing tests, and this summary must show in every run.
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{out}");
        let _ = stdout.flush();
    }
    assert!(stale.is_empty(), "stale skip entries: {stale:?}");
    assert!(
        report.failures.is_empty(),
        "{} PromQL conformance cases failed",
        report.failures.len()
    );
}

/// osprey's own functions (the drift functions of `docs/drift.md` and the
/// anomaly functions of `docs/anomaly.md`) in
/// the same script language, from `tests/scripts/*.test` in this
/// repository. No skips: every case must pass.
#[test]
fn osprey_scripts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read tests/scripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let mut report = Report::default();
    let mut eval_positions = HashSet::new();
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let text = std::fs::read_to_string(file).expect("read script");
        run_file(
            &name,
            &text,
            &HashMap::new(),
            &mut report,
            &mut eval_positions,
        );
    }
    assert!(
        report.failures.is_empty(),
        "osprey scripts: {} passed, failures:\n{}",
        report.passed,
        report.failures.join("\n")
    );
    assert!(report.passed > 0, "no eval ran");
}

/// The printer and the parser agree: every expression of the upstream
/// scripts and of ours that parses (with every experimental feature on)
/// prints to text that parses to the same tree. The fuzz target `promql`
/// checks the same on arbitrary input.
#[test]
fn printed_expressions_parse_to_the_same_tree() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![manifest.join("tests/scripts")];
    let upstream = manifest.join("../../../shared/conformance/promql/testdata");
    if upstream.is_dir() {
        dirs.push(upstream);
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "test"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read script");
            let Ok(cmds) = parse_script(&text) else {
                continue;
            };
            for cmd in cmds {
                let Command::Eval(ev) = cmd else { continue };
                let options = promql::ParseOptions::ALL;
                let Ok(expr) = promql::parse_with(&ev.expr, options) else {
                    continue;
                };
                checked += 1;
                let printed = promql::format(&expr);
                match promql::parse_with(&printed, options) {
                    Ok(again) if again == expr => {}
                    Ok(again) if printed.contains("NaN") && promql::format(&again) == printed => {}
                    Ok(again) => failures.push(format!(
                        "{}:{}: {} printed as {printed} parses to another tree: {again:?}",
                        file.display(),
                        ev.line,
                        ev.expr
                    )),
                    Err(e) => failures.push(format!(
                        "{}:{}: {} printed as {printed} does not parse: {e}",
                        file.display(),
                        ev.line,
                        ev.expr
                    )),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 0);
}

#[derive(Default)]
struct Report {
    passed: usize,
    skipped: usize,
    skipped_but_passing: usize,
    /// The keys of skipped cases that pass (`PROMQL_WRITE_PASSING_SKIPS`).
    passing_skips: Vec<String>,
    skip_reasons: BTreeMap<String, usize>,
    failures: Vec<String>,
    failed_keys: Vec<String>,
    /// With `PROMQL_AUDIT_NH`, one line per eval (see `audit_line`).
    audit: Vec<String>,
}

fn read_skips(path: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, reason) = line.split_once('\t').unwrap_or((line, "unspecified"));
        out.insert(key.to_string(), reason.to_string());
    }
    out
}

/// The store behind a script: a real tsdb in a temporary directory.
struct Store {
    _dir: tempfile::TempDir,
    db: tsdb::Db,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tsdb::Db::open(
            dir.path(),
            tsdb::DbOptions {
                retention_time_ms: None,
                retention_size_bytes: None,
                block_range_ms: tsdb::db::DEFAULT_BLOCK_RANGE_MS,
                wal_segment_size: 1 << 20,
                fsync: false,
            },
        )
        .expect("open tsdb");
        Store { _dir: dir, db }
    }
}

fn engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta_ms: 300_000,
        timeout: Duration::from_secs(100),
        max_samples: 50_000_000,
        max_concurrent: 4,
    })
    // Prometheus's test scripts run with every experimental feature on.
    .with_parse_options(promql::ParseOptions::ALL)
}

// ---------------------------------------------------------------------
// Script parsing.

/// One item of an expanded series: a float, a missing slot, or a native
/// histogram (loaded into the store as a float histogram).
#[derive(Clone, Debug, PartialEq)]
enum Item {
    Float(f64),
    Missing,
    Histogram(Box<Hist>),
}

/// A histogram literal and whether it wrote its counter-reset hint (the
/// hint is compared only then).
#[derive(Clone, Debug, PartialEq)]
struct Hist {
    h: FloatHistogram,
    hint_written: bool,
}

/// Parses the inside of `{{ … }}` (see the conformance README).
fn parse_histogram(body: &str) -> Result<Hist, String> {
    let mut h = FloatHistogram::default();
    let mut hint_written = false;
    let (mut buckets, mut n_buckets) = (Vec::new(), Vec::new());
    let (mut offset, mut n_offset) = (0i32, 0i32);
    let mut rest = body.trim();
    let number =
        |v: &str| parse_float(v).ok_or_else(|| format!("bad number {v:?} in {{{{{body}}}}}"));
    let list =
        |v: &str| -> Result<Vec<f64>, String> { v.split_whitespace().map(&number).collect() };
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once(':') else {
            return Err(format!("bad histogram {{{{{body}}}}}"));
        };
        let key = key.trim();
        let (value, next) = if let Some(inner) = after.strip_prefix('[') {
            let end = inner
                .find(']')
                .ok_or_else(|| format!("unclosed list in {{{{{body}}}}}"))?;
            (&inner[..end], inner[end + 1..].trim_start())
        } else {
            match after.split_once(char::is_whitespace) {
                Some((v, n)) => (v, n.trim_start()),
                None => (after, ""),
            }
        };
        match key {
            "schema" => h.schema = value.parse().map_err(|_| format!("bad schema {value}"))?,
            "sum" => h.sum = number(value)?,
            "count" => h.count = number(value)?,
            "z_bucket" => h.zero_count = number(value)?,
            "z_bucket_w" => h.zero_threshold = number(value)?,
            "buckets" => buckets = list(value)?,
            "n_buckets" => n_buckets = list(value)?,
            "offset" => offset = value.parse().map_err(|_| format!("bad offset {value}"))?,
            "n_offset" => n_offset = value.parse().map_err(|_| format!("bad n_offset {value}"))?,
            "custom_values" => h.custom_values = list(value)?,
            "counter_reset_hint" => {
                hint_written = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("bad counter_reset_hint {other}")),
                }
            }
            other => return Err(format!("unknown histogram key {other}")),
        }
        rest = next;
    }
    let span = |offset: i32, n: usize| {
        if n == 0 {
            Vec::new()
        } else {
            vec![Span {
                offset,
                length: n as u32,
            }]
        }
    };
    h.positive_spans = span(offset, buckets.len());
    h.negative_spans = span(n_offset, n_buckets.len());
    h.positive_buckets = buckets;
    h.negative_buckets = n_buckets;
    Ok(Hist { h, hint_written })
}

/// `a + sign·b` bucket by bucket; `b` is brought down to `a`'s schema
/// first (a coarser bucket sums the finer ones it holds).
fn add_histograms(a: &FloatHistogram, b: &FloatHistogram, sign: f64) -> FloatHistogram {
    let reduce = |index: i64| -> i64 {
        if b.schema > a.schema && a.schema != model::histogram::CUSTOM_BUCKETS_SCHEMA {
            ((index - 1) >> (b.schema - a.schema)) + 1
        } else {
            index
        }
    };
    let side = |spans: &[Span], counts: &[f64], b_spans: &[Span], b_counts: &[f64]| {
        let mut all: BTreeMap<i64, f64> = BTreeMap::new();
        for (i, c) in bucket_indexes(spans).zip(counts) {
            *all.entry(i).or_default() += c;
        }
        for (i, c) in bucket_indexes(b_spans).zip(b_counts) {
            *all.entry(reduce(i)).or_default() += sign * c;
        }
        let mut out_spans: Vec<Span> = Vec::new();
        let mut end: Option<i64> = None;
        let mut out_counts = Vec::new();
        for (i, c) in all {
            match (end, out_spans.last_mut()) {
                (Some(e), Some(last)) if e == i => last.length += 1,
                _ => out_spans.push(Span {
                    offset: (i - end.unwrap_or(0)) as i32,
                    length: 1,
                }),
            }
            end = Some(i + 1);
            out_counts.push(c);
        }
        (out_spans, out_counts)
    };
    let (positive_spans, positive_buckets) = side(
        &a.positive_spans,
        &a.positive_buckets,
        &b.positive_spans,
        &b.positive_buckets,
    );
    let (negative_spans, negative_buckets) = side(
        &a.negative_spans,
        &a.negative_buckets,
        &b.negative_spans,
        &b.negative_buckets,
    );
    FloatHistogram {
        counter_reset_hint: a.counter_reset_hint,
        schema: a.schema,
        zero_threshold: a.zero_threshold,
        zero_count: a.zero_count + sign * b.zero_count,
        count: a.count + sign * b.count,
        sum: a.sum + sign * b.sum,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values: a.custom_values.clone(),
    }
}

/// The histogram rule of the README: compact both (drop zero buckets),
/// then schema, counts (float rule), threshold, custom bounds, layout,
/// and the hint only when the expected value wrote it.
fn histogram_equal(want: &Hist, got: &FloatHistogram) -> bool {
    type Buckets = Vec<(i64, f64)>;
    let compact = |h: &FloatHistogram| -> (Buckets, Buckets) {
        let side = |spans: &[Span], counts: &[f64]| {
            bucket_indexes(spans)
                .zip(counts.iter().copied())
                .filter(|(_, c)| *c != 0.0)
                .collect::<Vec<_>>()
        };
        (
            side(&h.positive_spans, &h.positive_buckets),
            side(&h.negative_spans, &h.negative_buckets),
        )
    };
    let w = &want.h;
    let same_side = |a: &[(i64, f64)], b: &[(i64, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && float_equal(x.1, y.1))
    };
    let (wp, wn) = compact(w);
    let (gp, gn) = compact(got);
    w.schema == got.schema
        && float_equal(w.count, got.count)
        && float_equal(w.sum, got.sum)
        && float_equal(w.zero_count, got.zero_count)
        && w.zero_threshold.to_bits() == got.zero_threshold.to_bits()
        && (w.schema != model::histogram::CUSTOM_BUCKETS_SCHEMA
            || w.custom_values == got.custom_values)
        && same_side(&wp, &gp)
        && same_side(&wn, &gn)
        && (!want.hint_written || w.counter_reset_hint == got.counter_reset_hint)
}

fn parse_duration(s: &str) -> Option<i64> {
    model::duration::parse_ms(s).ok()
}

fn parse_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" => return Some(f64::INFINITY),
        "-inf" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    if lower.starts_with("0x") || lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    if !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Expands one value item (`1+2x3`, `_x4`, `stale`, `{{…}}x2`, …).
fn expand_item(item: &str, out: &mut Vec<Item>) -> Result<(), String> {
    if item == "_" {
        out.push(Item::Missing);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
        out.extend(std::iter::repeat_n(Item::Missing, n));
        return Ok(());
    }
    if item == "stale" {
        out.push(Item::Float(model::STALE_NAN));
        return Ok(());
    }
    if let Some(after_open) = item.strip_prefix("{{") {
        let close = after_open
            .find("}}")
            .ok_or_else(|| format!("bad item {item}"))?;
        let base = parse_histogram(&after_open[..close])?;
        let tail = &after_open[close + 2..];
        // `{{B}}xN`, `{{B}}+{{I}}xN`, `{{B}}-{{I}}xN`, or `{{B}}` alone.
        if tail.is_empty() {
            out.push(Item::Histogram(Box::new(base)));
            return Ok(());
        }
        if let Some(n) = tail.strip_prefix('x') {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(Item::Histogram(Box::new(base)), n + 1));
            return Ok(());
        }
        let sign = match tail.as_bytes().first() {
            Some(b'+') => 1.0,
            Some(b'-') => -1.0,
            _ => return Err(format!("bad item {item}")),
        };
        let increment_text = tail[1..]
            .strip_prefix("{{")
            .ok_or_else(|| format!("bad item {item}"))?;
        let close = increment_text
            .find("}}")
            .ok_or_else(|| format!("bad item {item}"))?;
        let increment = parse_histogram(&increment_text[..close])?;
        let n: usize = increment_text[close + 2..]
            .strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad item {item}"))?;
        let mut current = base.h;
        for k in 0..=n {
            if k > 0 {
                current = add_histograms(&current, &increment.h, sign);
            }
            out.push(Item::Histogram(Box::new(Hist {
                h: current.clone(),
                hint_written: increment.hint_written,
            })));
        }
        return Ok(());
    }
    if let Some(v) = parse_float(item) {
        out.push(Item::Float(v));
        return Ok(());
    }
    // a+bxN, a-bxN, axN.
    let Some(xi) = item.rfind('x') else {
        return Err(format!("bad item {item}"));
    };
    let n: usize = item[xi + 1..]
        .parse()
        .map_err(|_| format!("bad item {item}"))?;
    let head = &item[..xi];
    // Find a + or - that separates base and increment (not a sign at the
    // start, not an exponent sign).
    let bytes = head.as_bytes();
    let mut split = None;
    for i in 1..bytes.len() {
        if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
            split = Some(i);
        }
    }
    match split {
        None => {
            let v = parse_float(head).ok_or_else(|| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(Item::Float(v), n + 1));
        }
        Some(i) => {
            let base = parse_float(&head[..i]).ok_or_else(|| format!("bad item {item}"))?;
            let inc = parse_float(&head[i + 1..]).ok_or_else(|| format!("bad item {item}"))?;
            let inc = if bytes[i] == b'-' { -inc } else { inc };
            let mut v = base;
            out.push(Item::Float(v));
            for _ in 0..n {
                v += inc;
                out.push(Item::Float(v));
            }
        }
    }
    Ok(())
}

/// Splits the values part of a line into items. Histogram items contain
/// spaces inside `{{ }}`.
fn split_items(s: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' && chars.get(i + 1) == Some(&'{') {
            depth += 1;
            cur.push_str("{{");
            i += 2;
            continue;
        }
        if c == '}' && chars.get(i + 1) == Some(&'}') {
            depth -= 1;
            cur.push_str("}}");
            i += 2;
            continue;
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                items.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    items
}

/// Reads a Go-style quoted string starting at `chars[*i]` (the quote).
fn read_quoted(chars: &[char], i: &mut usize) -> Result<String, String> {
    let q = chars[*i];
    *i += 1;
    let mut s = String::new();
    while *i < chars.len() {
        let c = chars[*i];
        if c == q {
            *i += 1;
            return Ok(s);
        }
        if c == '\\' && q != '`' {
            *i += 1;
            let e = *chars.get(*i).ok_or("bad escape")?;
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '\\' => s.push('\\'),
                '"' => s.push('"'),
                '\'' => s.push('\''),
                'x' => {
                    let hex: String = chars[*i + 1..(*i + 3).min(chars.len())].iter().collect();
                    let b = u8::from_str_radix(&hex, 16).map_err(|_| "bad hex escape")?;
                    // Byte escapes may form invalid UTF-8; keep them as
                    // replacement characters.
                    s.push(if b < 0x80 { b as char } else { '\u{fffd}' });
                    *i += 2;
                }
                'u' => {
                    let hex: String = chars[*i + 1..(*i + 5).min(chars.len())].iter().collect();
                    let v = u32::from_str_radix(&hex, 16).map_err(|_| "bad \\u escape")?;
                    s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    *i += 4;
                }
                other => s.push(other),
            }
            *i += 1;
            continue;
        }
        s.push(c);
        *i += 1;
    }
    Err("unterminated string".into())
}

/// Parses `name{a="b", …} rest` into labels and the rest of the line.
fn parse_series(line: &str) -> Result<(Labels, String), String> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut name = String::new();
    while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '{' {
        name.push(chars[i]);
        i += 1;
    }
    if !name.is_empty() {
        pairs.push(("__name__".into(), name));
    }
    if i < chars.len() && chars[i] == '{' {
        i += 1;
        loop {
            while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated label set".into());
            }
            if chars[i] == '}' {
                i += 1;
                break;
            }
            let label = if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
                read_quoted(&chars, &mut i)?
            } else {
                let mut l = String::new();
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || chars[i] == '_'
                        || chars[i] == ':'
                        || chars[i] == '.')
                {
                    l.push(chars[i]);
                    i += 1;
                }
                l
            };
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && chars[i] == '=' {
                i += 1;
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("missing label value".into());
                }
                let value = read_quoted(&chars, &mut i)?;
                pairs.push((label, value));
            } else {
                // A quoted metric name alone.
                pairs.push(("__name__".into(), label));
            }
        }
    }
    let rest: String = chars[i..].iter().collect();
    Ok((Labels::from_pairs(pairs), rest.trim().to_string()))
}

#[derive(Debug)]
enum Expectation {
    Fail(Option<Matcher>),
    Warn(Option<Matcher>),
    Info(Option<Matcher>),
    NoWarn,
    NoInfo,
    Ordered,
    RangeVector { from: i64, to: i64, step: i64 },
    String(String),
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(e) => e.trim() == s.trim(),
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

#[derive(Debug, Default)]
struct Eval {
    line: usize,
    expr: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    expects: Vec<Expectation>,
    series: Vec<(Labels, Vec<Item>)>,
    scalar: Option<f64>,
}

fn parse_matcher(rest: &str) -> Result<Option<Matcher>, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(None);
    }
    if let Some(m) = rest.strip_prefix("msg:") {
        return Ok(Some(Matcher::Exact(m.trim().to_string())));
    }
    if let Some(r) = rest.strip_prefix("regex:") {
        return regex::Regex::new(r.trim())
            .map(|r| Some(Matcher::Regex(r)))
            .map_err(|e| e.to_string());
    }
    Err(format!("bad expectation {rest}"))
}

fn parse_eval_header(line: &str, lineno: usize) -> Result<Eval, String> {
    let (cmd, rest) = line.split_once(char::is_whitespace).ok_or("bad eval")?;
    let rest = rest.trim_start();
    let mut ev = Eval {
        line: lineno,
        ..Default::default()
    };
    match cmd {
        "eval" => {}
        "eval_fail" => ev.expects.push(Expectation::Fail(None)),
        "eval_warn" => ev.expects.push(Expectation::Warn(None)),
        "eval_info" => ev.expects.push(Expectation::Info(None)),
        "eval_ordered" => ev.expects.push(Expectation::Ordered),
        _ => return Err(format!("unknown command {cmd}")),
    }
    let words: Vec<&str> = rest.splitn(2, char::is_whitespace).collect();
    match words.first().copied() {
        Some("instant") => {
            let r = words.get(1).ok_or("bad instant eval")?.trim_start();
            let r = r.strip_prefix("at").ok_or("missing at")?.trim_start();
            let (t, expr) = r
                .split_once(char::is_whitespace)
                .ok_or("bad instant eval")?;
            ev.at = parse_duration(t).ok_or("bad time")?;
            ev.expr = expr.trim().to_string();
        }
        Some("range") => {
            let r = words.get(1).ok_or("bad range eval")?;
            let parts: Vec<&str> = r.split_whitespace().collect();
            if parts.len() < 7 || parts[0] != "from" || parts[2] != "to" || parts[4] != "step" {
                return Err("bad range eval".into());
            }
            let start = parse_duration(parts[1]).ok_or("bad start")?;
            let end = parse_duration(parts[3]).ok_or("bad end")?;
            let step = parse_duration(parts[5]).ok_or("bad step")?;
            // The expression is the rest after the step word.
            let mut idx = 0;
            let mut count = 0;
            let bytes = r.as_bytes();
            // Skip six whitespace-separated words.
            while count < 6 {
                while idx < bytes.len() && bytes[idx].is_ascii_whitespace() {
                    idx += 1;
                }
                while idx < bytes.len() && !bytes[idx].is_ascii_whitespace() {
                    idx += 1;
                }
                count += 1;
            }
            ev.expr = r[idx..].trim().to_string();
            ev.range = Some((start, end, step));
        }
        _ => return Err("eval needs instant or range".into()),
    }
    Ok(ev)
}

fn parse_eval_body(ev: &mut Eval, line: &str) -> Result<(), String> {
    if let Some(rest) = line.strip_prefix("expect ") {
        let rest = rest.trim();
        let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let (word, tail) = match word.split_once(':') {
            // `expect fail msg:text` without a space.
            Some((w, _)) if w == "fail" || w == "warn" || w == "info" => (w, &rest[w.len()..]),
            _ => (word, tail),
        };
        match word {
            "fail" => ev.expects.push(Expectation::Fail(parse_matcher(tail)?)),
            "warn" => ev.expects.push(Expectation::Warn(parse_matcher(tail)?)),
            "info" => ev.expects.push(Expectation::Info(parse_matcher(tail)?)),
            "no_warn" => ev.expects.push(Expectation::NoWarn),
            "no_info" => ev.expects.push(Expectation::NoInfo),
            "ordered" => ev.expects.push(Expectation::Ordered),
            "range" => {
                let p: Vec<&str> = tail.split_whitespace().collect();
                if p.len() != 7
                    || p[0] != "vector"
                    || p[1] != "from"
                    || p[3] != "to"
                    || p[5] != "step"
                {
                    return Err(format!("bad range vector expectation {line}"));
                }
                ev.expects.push(Expectation::RangeVector {
                    from: parse_duration(p[2]).ok_or("bad from")?,
                    to: parse_duration(p[4]).ok_or("bad to")?,
                    step: parse_duration(p[6]).ok_or("bad step")?,
                });
            }
            "string" => {
                let chars: Vec<char> = tail.trim().chars().collect();
                let mut i = 0;
                ev.expects
                    .push(Expectation::String(read_quoted(&chars, &mut i)?));
            }
            _ => return Err(format!("unknown expectation {line}")),
        }
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix("expected_fail_message") {
        ev.expects
            .push(Expectation::Fail(Some(Matcher::Exact(rest.trim().into()))));
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix("expected_fail_regexp") {
        let r = regex::Regex::new(rest.trim()).map_err(|e| e.to_string())?;
        ev.expects.push(Expectation::Fail(Some(Matcher::Regex(r))));
        return Ok(());
    }
    if let Some(v) = parse_float(line) {
        ev.scalar = Some(v);
        return Ok(());
    }
    let (labels, rest) = parse_series(line)?;
    let mut items = Vec::new();
    for it in split_items(&rest) {
        expand_item(&it, &mut items)?;
    }
    ev.series.push((labels, items));
    Ok(())
}

enum Command {
    Clear,
    Load {
        step: i64,
        lines: Vec<(Labels, Vec<Item>)>,
        /// `load_with_nhcb`: classic histograms are also stored converted.
        nhcb: bool,
    },
    Eval(Eval),
}

fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    let blank = |l: &str| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    };
    while i < lines.len() {
        let line = lines[i].trim();
        let lineno = i + 1;
        i += 1;
        if blank(line) {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if first == "clear" {
            cmds.push(Command::Clear);
            continue;
        }
        let mut body = Vec::new();
        let is_header = |l: &str| {
            let w = l.split_whitespace().next().unwrap_or("");
            w == "clear" || w.starts_with("load") || w.starts_with("eval")
        };
        while i < lines.len() && !blank(lines[i]) && !is_header(lines[i].trim()) {
            body.push((i + 1, lines[i].trim()));
            i += 1;
        }
        if first.starts_with("load") {
            let step = line
                .split_whitespace()
                .nth(1)
                .and_then(parse_duration)
                .ok_or_else(|| format!("line {lineno}: bad load step"))?;
            let mut out = Vec::new();
            for (n, l) in body {
                let (labels, rest) = parse_series(l).map_err(|e| format!("line {n}: {e}"))?;
                // Start-timestamp lines (`name@st …`) are not stored.
                if rest.starts_with("@st")
                    || labels.metric_name().is_some_and(|m| m.ends_with("@st"))
                {
                    continue;
                }
                let mut items = Vec::new();
                for it in split_items(&rest) {
                    expand_item(&it, &mut items).map_err(|e| format!("line {n}: {e}"))?;
                }
                out.push((labels, items));
            }
            cmds.push(Command::Load {
                step,
                lines: out,
                nhcb: first == "load_with_nhcb",
            });
        } else if first.starts_with("eval") {
            let mut ev =
                parse_eval_header(line, lineno).map_err(|e| format!("line {lineno}: {e}"))?;
            for (n, l) in body {
                parse_eval_body(&mut ev, l).map_err(|e| format!("line {n}: {e}"))?;
            }
            cmds.push(Command::Eval(ev));
        } else {
            return Err(format!("line {lineno}: unknown command {line}"));
        }
    }
    Ok(cmds)
}

// ---------------------------------------------------------------------
// Running.

fn run_file(
    name: &str,
    text: &str,
    skips: &HashMap<String, String>,
    report: &mut Report,
    eval_positions: &mut HashSet<String>,
) {
    let cmds = match parse_script(text) {
        Ok(c) => c,
        Err(e) => {
            report
                .failures
                .push(format!("{name}: script parse error: {e}"));
            return;
        }
    };
    let engine = engine();
    let mut store = Store::new();
    let mut shadow = Shadow::default();
    let auditing = std::env::var_os("PROMQL_AUDIT_NH").is_some();
    for cmd in cmds {
        match cmd {
            Command::Clear => {
                store = Store::new();
                shadow = Shadow::default();
            }
            Command::Load { step, lines, nhcb } => {
                shadow.load(step, &lines, nhcb);
                let mut app = store.db.appender();
                for (labels, items) in &lines {
                    for (i, item) in items.iter().enumerate() {
                        let t = i as i64 * step;
                        let result = match item {
                            Item::Float(v) => app.append(labels, t, *v),
                            Item::Histogram(h) => app.append_histogram(labels, t, &h.h),
                            Item::Missing => Ok(()),
                        };
                        if let Err(e) = result {
                            report.failures.push(format!("{name}: load failed: {e}"));
                        }
                    }
                }
                if nhcb {
                    for (labels, t, h) in convert_nhcb(step, &lines) {
                        if let Err(e) = app.append_histogram(&labels, t, &h) {
                            report.failures.push(format!("{name}: load failed: {e}"));
                        }
                    }
                }
                if let Err(e) = app.commit() {
                    report
                        .failures
                        .push(format!("{name}: load commit failed: {e}"));
                }
            }
            Command::Eval(ev) => {
                let key = format!("{name}:{}", ev.line);
                eval_positions.insert(key.clone());
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check_eval(&engine, &store.db, &ev)
                }))
                .unwrap_or_else(|_| Err("engine panicked".to_string()));
                let skip = skips.get(&key);
                let histogram_skip = skip.is_some_and(|r| r.starts_with("native histograms"));
                if auditing || histogram_skip {
                    let facts = audit_facts(&ev, &shadow);
                    if auditing {
                        let reason = skip.map_or("(not skipped)", String::as_str);
                        report
                            .audit
                            .push(audit_line(&key, reason, &ev, &facts, &result));
                    }
                    if let Some(reason) = skip.filter(|_| histogram_skip)
                        && let Err(e) = check_native_histogram_skip(reason, &facts)
                    {
                        report
                            .failures
                            .push(format!("{key}: {}\n    dishonest skip: {e}", ev.expr));
                    }
                }
                match (skips.get(&key), result) {
                    (Some(reason), r) => {
                        report.skipped += 1;
                        *report.skip_reasons.entry(reason.clone()).or_default() += 1;
                        if r.is_ok() {
                            report.skipped_but_passing += 1;
                            report.passing_skips.push(key.clone());
                        }
                    }
                    (None, Ok(())) => report.passed += 1,
                    (None, Err(e)) => {
                        let mut msg =
                            format!("{key}: {}\n    {}", ev.expr, e.replace('\n', "\n    "));
                        if msg.len() > 1500 {
                            let mut cut = 1500;
                            while !msg.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            msg.truncate(cut);
                            msg.push_str(" …");
                        }
                        report.failures.push(msg);
                        report.failed_keys.push(key);
                    }
                }
            }
        }
    }
}

fn expect_fail(ev: &Eval) -> Option<&Option<Matcher>> {
    ev.expects.iter().find_map(|e| match e {
        Expectation::Fail(m) => Some(m),
        _ => None,
    })
}

fn is_ordered(ev: &Eval) -> bool {
    ev.expects.iter().any(|e| matches!(e, Expectation::Ordered))
}

fn range_vector(ev: &Eval) -> Option<(i64, i64, i64)> {
    ev.expects.iter().find_map(|e| match e {
        Expectation::RangeVector { from, to, step } => Some((*from, *to, *step)),
        _ => None,
    })
}

fn expected_string(ev: &Eval) -> Option<&str> {
    ev.expects.iter().find_map(|e| match e {
        Expectation::String(s) => Some(s.as_str()),
        _ => None,
    })
}

fn check_eval(engine: &Engine, db: &tsdb::Db, ev: &Eval) -> Result<(), String> {
    if let Some((start, end, step)) = ev.range {
        let res = engine.range_query(db, &ev.expr, start, end, step);
        return check_result(ev, res, Mode::Range { start, step }, true);
    }
    let at = range_vector(ev).map(|(_, to, _)| to).unwrap_or(ev.at);
    let res = engine.instant_query(db, &ev.expr, at);
    check_result(ev, res, Mode::Instant, true)?;
    if expect_fail(ev).is_some() {
        return Ok(());
    }
    range_cross_check(engine, db, ev, &ev.expr, at)?;
    at_variants(engine, db, ev, at)
}

fn range_cross_check(
    engine: &Engine,
    db: &tsdb::Db,
    ev: &Eval,
    expr: &str,
    at: i64,
) -> Result<(), String> {
    if range_vector(ev).is_some()
        || expected_string(ev).is_some()
        || ["start()", "end()", "range()", "step()"]
            .iter()
            .any(|f| expr.contains(f))
    {
        return Ok(());
    }
    let parsed = promql::parse_with(expr, promql::ParseOptions::ALL).map_err(|e| e.to_string())?;
    if parsed.value_type() == promql::ast::ValueType::Matrix
        || parsed.value_type() == promql::ast::ValueType::String
    {
        return Ok(());
    }
    let res = engine
        .range_query(db, expr, at - 60_000, at + 60_000, 60_000)
        .map_err(|e| format!("range cross-check failed: {e}"))?;
    if is_ordered(ev) {
        return Ok(());
    }
    let Value::Matrix(m) = res.value else {
        return Err("range cross-check: not a matrix".into());
    };
    let value = if ev.scalar.is_some() {
        let v = m
            .first()
            .and_then(|s| s.points.iter().find(|p| p.0 == at))
            .map(|p| p.1)
            .unwrap_or(f64::NAN);
        Value::Scalar { t: at, v }
    } else {
        Value::Vector(
            m.into_iter()
                .filter_map(|s| {
                    let float = s.points.iter().find(|p| p.0 == at).map(|p| (p.1, None));
                    let histogram = s
                        .histograms
                        .iter()
                        .find(|p| p.0 == at)
                        .map(|p| (0.0, Some(p.1.clone())));
                    float.or(histogram).map(|(v, h)| promql::VectorSample {
                        labels: s.labels.clone(),
                        t: at,
                        v,
                        h,
                    })
                })
                .collect(),
        )
    };
    compare_value(ev, &value, Mode::Instant).map_err(|e| format!("range cross-check: {e}"))
}

/// Functions whose result depends on the evaluation time itself.
const TIME_FUNCTIONS: &[&str] = &[
    "time",
    "timestamp",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "start",
    "end",
    "range",
    "step",
];

fn calls_time_function(e: &Expr) -> bool {
    match e {
        Expr::Call(c) => {
            TIME_FUNCTIONS.contains(&c.func.as_str()) || c.args.iter().any(calls_time_function)
        }
        Expr::Paren(x) => calls_time_function(x),
        Expr::Unary { expr, .. } => calls_time_function(expr),
        Expr::Binary(b) => calls_time_function(&b.lhs) || calls_time_function(&b.rhs),
        Expr::Aggregate(a) => {
            calls_time_function(&a.expr) || a.param.as_deref().is_some_and(calls_time_function)
        }
        Expr::Subquery(s) => calls_time_function(&s.expr),
        _ => false,
    }
}

fn pin_at(e: &mut Expr, t: i64) {
    match e {
        Expr::VectorSelector(vs) => {
            if vs.at.is_none() {
                vs.at = Some(At::Time(t));
            }
        }
        Expr::MatrixSelector(ms) => {
            if ms.selector.at.is_none() {
                ms.selector.at = Some(At::Time(t));
            }
        }
        Expr::Subquery(sq) => {
            // Selectors inside a subquery with `@` are left alone.
            if sq.at.is_none() {
                sq.at = Some(At::Time(t));
            }
        }
        Expr::Paren(x) => pin_at(x, t),
        Expr::Unary { expr, .. } => pin_at(expr, t),
        Expr::Binary(b) => {
            pin_at(&mut b.lhs, t);
            pin_at(&mut b.rhs, t);
        }
        Expr::Aggregate(a) => {
            pin_at(&mut a.expr, t);
            if let Some(p) = &mut a.param {
                pin_at(p, t);
            }
        }
        Expr::Call(c) => {
            for a in &mut c.args {
                pin_at(a, t);
            }
        }
        Expr::Number(_) | Expr::String(_) => {}
    }
}

fn at_variants(engine: &Engine, db: &tsdb::Db, ev: &Eval, at: i64) -> Result<(), String> {
    let Ok(mut parsed) = promql::parse_with(&ev.expr, promql::ParseOptions::ALL) else {
        return Ok(());
    };
    if calls_time_function(&parsed) {
        return Ok(());
    }
    pin_at(&mut parsed, at);
    let text = promql::format(&parsed);
    let times: Vec<i64> = if at == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * at, 0, at / 5, at, 10 * at]
    };
    for t in times {
        let res = engine.instant_query(db, &text, t);
        check_result(ev, res, Mode::Instant, false)
            .map_err(|e| format!("@ variant `{text}` at {t}ms: {e}"))?;
        range_cross_check(engine, db, ev, &text, t)
            .map_err(|e| format!("@ variant `{text}` at {t}ms: {e}"))?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Mode {
    Instant,
    Range { start: i64, step: i64 },
}

fn check_result(
    ev: &Eval,
    res: Result<QueryOutput, promql::QueryError>,
    mode: Mode,
    check_annotations: bool,
) -> Result<(), String> {
    let fail = expect_fail(ev);
    let out = match (res, fail) {
        (Err(e), Some(None)) => {
            let _ = e;
            return Ok(());
        }
        (Err(e), Some(Some(m))) => {
            return if m.matches(&e.to_string()) {
                Ok(())
            } else {
                Err(format!(
                    "error {:?} does not match expected {m:?}",
                    e.to_string()
                ))
            };
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(out), Some(_)) => {
            return Err(format!("expected an error, got {}", show_value(&out.value)));
        }
        (Ok(out), None) => out,
    };
    if check_annotations {
        check_annotation_kind(ev, &out.warnings, true)?;
        check_annotation_kind(ev, &out.infos, false)?;
    }
    compare_value(ev, &out.value, mode)
}

fn check_annotation_kind(ev: &Eval, got: &[String], warn: bool) -> Result<(), String> {
    let kind = if warn { "warning" } else { "info" };
    let mut patterns: Vec<&Option<Matcher>> = Vec::new();
    let mut none = false;
    for e in &ev.expects {
        match (e, warn) {
            (Expectation::Warn(m), true) | (Expectation::Info(m), false) => patterns.push(m),
            (Expectation::NoWarn, true) | (Expectation::NoInfo, false) => none = true,
            _ => {}
        }
    }
    if none && !got.is_empty() {
        return Err(format!("expected no {kind}, got {got:?}"));
    }
    if patterns.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected a {kind}, got none"));
    }
    for p in &patterns {
        if let Some(m) = p
            && !got.iter().any(|g| m.matches(g))
        {
            return Err(format!("no {kind} matches {m:?}; got {got:?}"));
        }
    }
    for g in got {
        if !patterns
            .iter()
            .any(|p| p.as_ref().is_none_or(|m| m.matches(g)))
        {
            return Err(format!("unexpected {kind} {g:?}"));
        }
    }
    Ok(())
}

fn float_equal(a: f64, b: f64) -> bool {
    if model::is_stale_nan(a) || model::is_stale_nan(b) {
        return model::is_stale_nan(a) && model::is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    let eps = 1e-6;
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / sum.min(f64::MAX) < eps
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Scalar { v, .. } => format!("scalar {v}"),
        Value::String { v, .. } => format!("string {v:?}"),
        Value::Vector(s) => {
            let mut out = String::from("vector [");
            for x in s.iter().take(20) {
                let _ = write!(out, "\n      {} {}", x.labels, x.v);
            }
            if s.len() > 20 {
                let _ = write!(out, "\n      … {} more", s.len() - 20);
            }
            out.push(']');
            out
        }
        Value::Matrix(m) => {
            let mut out = String::from("matrix [");
            for x in m.iter().take(20) {
                let pts: Vec<String> = x
                    .points
                    .iter()
                    .take(30)
                    .map(|(t, v)| format!("{v}@{t}"))
                    .collect();
                let _ = write!(out, "\n      {} {}", x.labels, pts.join(" "));
            }
            if m.len() > 20 {
                let _ = write!(out, "\n      … {} more", m.len() - 20);
            }
            out.push(']');
            out
        }
    }
}

fn show_expected(ev: &Eval) -> String {
    if let Some(s) = ev.scalar {
        return format!("scalar {s}");
    }
    let mut out = String::from("[");
    for (l, items) in ev.series.iter().take(20) {
        let vals: Vec<String> = items
            .iter()
            .take(30)
            .map(|i| match i {
                Item::Float(v) => v.to_string(),
                Item::Missing => "_".into(),
                Item::Histogram(h) => format!("{{{{{:?}}}}}", h.h),
            })
            .collect();
        let _ = write!(out, "\n      {l} {}", vals.join(" "));
    }
    out.push(']');
    out
}

fn compare_value(ev: &Eval, got: &Value, mode: Mode) -> Result<(), String> {
    let mismatch = |why: String| {
        format!(
            "{why}\n  expected: {}\n  got:      {}",
            show_expected(ev),
            show_value(got)
        )
    };
    if let Some(s) = expected_string(ev) {
        return match got {
            Value::String { v, .. } if v == s => Ok(()),
            _ => Err(mismatch(format!("expected string {s:?}"))),
        };
    }
    if let Some(want) = ev.scalar {
        return match got {
            Value::Scalar { v, .. } if float_equal(*v, want) => Ok(()),
            _ => Err(mismatch("scalar mismatch".into())),
        };
    }
    let (matrix_start, matrix_step) = match (mode, range_vector(ev)) {
        (Mode::Range { start, step }, _) => (Some(start), step),
        (Mode::Instant, Some((from, _, step))) => (Some(from), step),
        _ => (None, 0),
    };
    match (got, matrix_start) {
        (Value::Vector(samples), None) => {
            if samples.len() != ev.series.len() {
                return Err(mismatch(format!(
                    "expected {} samples, got {}",
                    ev.series.len(),
                    samples.len()
                )));
            }
            let ordered = is_ordered(ev);
            for (k, (labels, items)) in ev.series.iter().enumerate() {
                let found = if ordered {
                    samples.get(k).filter(|s| s.labels == *labels)
                } else {
                    samples.iter().find(|s| s.labels == *labels)
                };
                let want = match items.as_slice() {
                    [Item::Float(v)] => *v,
                    [Item::Histogram(want)] => match found.and_then(|s| s.h.as_ref()) {
                        Some(got) if histogram_equal(want, got) => continue,
                        _ => return Err(mismatch(format!("histogram of {labels} differs"))),
                    },
                    _ => return Err(format!("expected exactly one value for {labels}")),
                };
                match found {
                    Some(s) if s.h.is_some() => {
                        return Err(mismatch(format!("{labels}: want a float, got a histogram")));
                    }
                    Some(s) if float_equal(s.v, want) => {}
                    Some(s) => {
                        return Err(mismatch(format!(
                            "value of {labels}: want {want}, got {}",
                            s.v
                        )));
                    }
                    None => return Err(mismatch(format!("missing or misplaced series {labels}"))),
                }
            }
            Ok(())
        }
        (Value::Matrix(series), Some(start)) => {
            if is_ordered(ev) {
                return Err("expect ordered on a matrix result".into());
            }
            if series.windows(2).any(|w| w[0].labels >= w[1].labels) {
                return Err(mismatch("matrix not sorted by labels".into()));
            }
            let expected: Vec<&(Labels, Vec<Item>)> = ev
                .series
                .iter()
                .filter(|(_, items)| items.iter().any(|i| *i != Item::Missing))
                .collect();
            if series.len() != expected.len() {
                return Err(mismatch(format!(
                    "expected {} series, got {}",
                    expected.len(),
                    series.len()
                )));
            }
            for (labels, items) in expected {
                let Some(s) = series.iter().find(|s| s.labels == *labels) else {
                    return Err(mismatch(format!("missing series {labels}")));
                };
                let want: Vec<(i64, f64)> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, it)| match it {
                        Item::Float(v) => Some((start + i as i64 * matrix_step, *v)),
                        _ => None,
                    })
                    .collect();
                if want.len() != s.points.len()
                    || want
                        .iter()
                        .zip(&s.points)
                        .any(|(w, g)| w.0 != g.0 || !float_equal(w.1, g.1))
                {
                    return Err(mismatch(format!("points of {labels} differ")));
                }
                let want_histograms: Vec<(i64, &Hist)> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, it)| match it {
                        Item::Histogram(h) => Some((start + i as i64 * matrix_step, &**h)),
                        _ => None,
                    })
                    .collect();
                if want_histograms.len() != s.histograms.len()
                    || want_histograms
                        .iter()
                        .zip(&s.histograms)
                        .any(|(w, g)| w.0 != g.0 || !histogram_equal(w.1, &g.1))
                {
                    return Err(mismatch(format!("histogram points of {labels} differ")));
                }
            }
            Ok(())
        }
        (Value::Scalar { .. }, _) => Err(mismatch("unexpected scalar".into())),
        _ => Err(mismatch("result type differs".into())),
    }
}

// ---------------------------------------------------------------------
// Native-histogram audit (`PROMQL_AUDIT_NH=<path>`).
//
// The store above holds only the float samples of a script. To decide
// whether a skipped "native histograms" case really needs them, the runner
// keeps a shadow of every loaded sample with its kind and replays each
// selector's windows over it: a case that reads no histogram sample and
// expects no histogram value is a float-only case and must not be skipped.

/// What a loaded sample is, as far as the audit cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SampleKind {
    Float,
    Stale,
    /// A native histogram written in the script (`{{…}}`).
    Native,
    /// A native histogram with custom buckets made by `load_with_nhcb`.
    Nhcb,
}

/// Every sample loaded since the last `clear`, by series and time.
#[derive(Default)]
struct Shadow {
    series: HashMap<Labels, BTreeMap<i64, SampleKind>>,
}

/// Which kinds of histogram samples a query's selectors read.
#[derive(Default)]
struct Touched {
    native: bool,
    nhcb: bool,
}

impl Touched {
    fn mark(&mut self, kind: SampleKind) {
        match kind {
            SampleKind::Native => self.native = true,
            SampleKind::Nhcb => self.nhcb = true,
            SampleKind::Float | SampleKind::Stale => {}
        }
    }
}

/// The query-wide times that `@ start()` / `@ end()` and lookback refer to.
struct AuditClock {
    start: i64,
    end: i64,
    lookback: i64,
    /// `anchored` was written: windows also read the last sample at or
    /// before their start (within the lookback).
    anchored: bool,
    /// `smoothed` was written: as `anchored`, and also the first sample
    /// after their end (within the lookback).
    smoothed: bool,
}

impl AuditClock {
    /// The samples just outside the window `(lower, upper]` that the
    /// extended range modifiers read.
    fn boundary_kinds(
        &self,
        samples: &BTreeMap<i64, SampleKind>,
        lower: i64,
        upper: i64,
        out: &mut Touched,
    ) {
        if (self.anchored || self.smoothed)
            && let Some((&ts, kind)) = samples.range(..=lower).next_back()
            && ts > lower.saturating_sub(self.lookback)
        {
            out.mark(*kind);
        }
        if self.smoothed
            && let Some((&ts, kind)) = samples.range(upper.saturating_add(1)..).next()
            && ts <= upper.saturating_add(self.lookback)
        {
            out.mark(*kind);
        }
    }
}

impl AuditClock {
    fn resolve(&self, at: Option<At>, t: i64) -> i64 {
        match at {
            None => t,
            Some(At::Time(x)) => x,
            Some(At::Start) => self.start,
            Some(At::End) => self.end,
        }
    }
}

impl Shadow {
    fn load(&mut self, step: i64, lines: &[(Labels, Vec<Item>)], nhcb: bool) {
        for (labels, items) in lines {
            let slot = self.series.entry(labels.clone()).or_default();
            for (i, item) in items.iter().enumerate() {
                let t = i as i64 * step;
                let kind = match item {
                    Item::Float(v) if model::is_stale_nan(*v) => SampleKind::Stale,
                    Item::Float(_) => SampleKind::Float,
                    Item::Histogram(_) => SampleKind::Native,
                    Item::Missing => continue,
                };
                slot.insert(t, kind);
            }
        }
        if !nhcb {
            return;
        }
        // Classic families of this block: `X_bucket{le}`, `X_count`, `X_sum`
        // grouped by their labels without `le`; each becomes series `X`.
        let mut families: BTreeMap<Labels, (bool, BTreeSet<i64>)> = BTreeMap::new();
        for (labels, items) in lines {
            let Some(name) = labels.metric_name() else {
                continue;
            };
            let (base, is_bucket) = if let Some(b) = name.strip_suffix("_bucket") {
                if labels.get("le").is_none() {
                    continue;
                }
                (b, true)
            } else if let Some(b) = name.strip_suffix("_count") {
                (b, false)
            } else if let Some(b) = name.strip_suffix("_sum") {
                (b, false)
            } else {
                continue;
            };
            let mut builder = model::labels::LabelsBuilder::from_labels(labels);
            builder.delete("le");
            builder.set("__name__", base.to_string());
            let family = families.entry(builder.build()).or_default();
            family.0 |= is_bucket;
            for (i, item) in items.iter().enumerate() {
                if matches!(item, Item::Float(v) if !model::is_stale_nan(*v)) {
                    family.1.insert(i as i64 * step);
                }
            }
        }
        for (labels, (has_bucket, times)) in families {
            if !has_bucket {
                continue;
            }
            let slot = self.series.entry(labels).or_default();
            for t in times {
                slot.insert(t, SampleKind::Nhcb);
            }
        }
    }

    /// Marks the histogram kinds that `expr` reads when evaluated at each of
    /// `times`, following offsets, `@`, ranges and subquery steps.
    fn touch(&self, expr: &Expr, times: &[i64], clock: &AuditClock, out: &mut Touched) {
        match expr {
            Expr::Number(_) | Expr::String(_) => {}
            Expr::VectorSelector(vs) => {
                for (labels, samples) in &self.series {
                    if !model::matcher::matches_all(labels, &vs.matchers) {
                        continue;
                    }
                    for &t in times {
                        let r = clock.resolve(vs.at, t).saturating_sub(vs.offset_ms);
                        let lower = r.saturating_sub(clock.lookback);
                        if let Some((&ts, kind)) = samples.range(..=r).next_back()
                            && ts > lower
                        {
                            out.mark(*kind);
                        }
                        if clock.smoothed {
                            clock.boundary_kinds(samples, r, r, out);
                        }
                    }
                }
            }
            Expr::MatrixSelector(ms) => {
                let vs = &ms.selector;
                for (labels, samples) in &self.series {
                    if !model::matcher::matches_all(labels, &vs.matchers) {
                        continue;
                    }
                    for &t in times {
                        let r = clock.resolve(vs.at, t).saturating_sub(vs.offset_ms);
                        let lower = r.saturating_sub(ms.range_ms);
                        if lower >= r {
                            continue;
                        }
                        for (_, kind) in samples.range(lower.saturating_add(1)..=r) {
                            out.mark(*kind);
                        }
                        clock.boundary_kinds(samples, lower, r, out);
                    }
                }
            }
            Expr::Subquery(sq) => {
                let step = sq.step_ms.unwrap_or(60_000).max(1);
                let mut inner = BTreeSet::new();
                for &t in times {
                    let r = clock.resolve(sq.at, t).saturating_sub(sq.offset_ms);
                    let lower = r.saturating_sub(sq.range_ms);
                    let mut s = lower.div_euclid(step).saturating_mul(step);
                    while s <= lower {
                        s = s.saturating_add(step);
                    }
                    while s <= r && inner.len() < 1_000_000 {
                        inner.insert(s);
                        s = s.saturating_add(step);
                    }
                }
                let inner: Vec<i64> = inner.into_iter().collect();
                self.touch(&sq.expr, &inner, clock, out);
            }
            Expr::Paren(x) => self.touch(x, times, clock, out),
            Expr::Unary { expr, .. } => self.touch(expr, times, clock, out),
            Expr::Binary(b) => {
                self.touch(&b.lhs, times, clock, out);
                self.touch(&b.rhs, times, clock, out);
            }
            Expr::Aggregate(a) => {
                self.touch(&a.expr, times, clock, out);
                if let Some(p) = &a.param {
                    self.touch(p, times, clock, out);
                }
            }
            Expr::Call(c) => {
                for arg in &c.args {
                    self.touch(arg, times, clock, out);
                }
            }
        }
    }
}

fn matcher_text(m: &Option<Matcher>) -> String {
    match m {
        None => String::new(),
        Some(Matcher::Exact(s)) => s.clone(),
        Some(Matcher::Regex(r)) => r.as_str().to_string(),
    }
}

/// What the audit finds about one eval.
struct AuditFacts {
    /// The expected result holds a histogram value (`{{…}}`).
    expected_histogram: bool,
    /// An expected failure/warning/info text talks about histograms.
    annotation_histogram: bool,
    touched: Touched,
    /// osprey's parser accepts the expression.
    parses: bool,
}

fn audit_facts(ev: &Eval, shadow: &Shadow) -> AuditFacts {
    let expected_histogram = ev
        .series
        .iter()
        .any(|(_, items)| items.iter().any(|i| matches!(i, Item::Histogram(_))));
    let annotation_histogram = ev.expects.iter().any(|e| match e {
        Expectation::Fail(m) | Expectation::Warn(m) | Expectation::Info(m) => {
            matcher_text(m).to_ascii_lowercase().contains("histogram")
        }
        _ => false,
    });
    let mut touched = Touched::default();
    let parsed = promql::parse_with(&ev.expr, promql::ParseOptions::ALL);
    let parses = parsed.is_ok();
    // Experimental modifiers and operators osprey does not parse are taken
    // out for the audit only: the selectors, and so the data read, stay
    // (anchored/smoothed windows read at least the plain window).
    let parsed = parsed.or_else(|_| {
        let mut text = ev
            .expr
            .replace(" anchored", "")
            .replace(" smoothed", "")
            .replace(">/", ">")
            .replace("</", "<");
        for func in ["histogram_quantiles", "start_timestamp"] {
            text = replace_call_with_first_argument(&text, func);
        }
        promql::parse_with(&text, promql::ParseOptions::ALL)
    });
    if let Ok(expr) = parsed {
        let (start, end, times) = match ev.range {
            Some((start, end, step)) => {
                let mut times = Vec::new();
                let mut t = start;
                while t <= end && step > 0 {
                    times.push(t);
                    t += step;
                }
                (start, end, times)
            }
            None => {
                let at = range_vector(ev).map(|(_, to, _)| to).unwrap_or(ev.at);
                (at, at, vec![at])
            }
        };
        let clock = AuditClock {
            start,
            end,
            lookback: 300_000,
            anchored: ev.expr.contains(" anchored"),
            smoothed: ev.expr.contains(" smoothed"),
        };
        shadow.touch(&expr, &times, &clock, &mut touched);
    }
    AuditFacts {
        expected_histogram,
        annotation_histogram,
        touched,
        parses,
    }
}

/// Replaces every call `func(first, …)` in `text` by `(first)`, so that
/// the audit can walk the selectors of a function osprey does not know.
fn replace_call_with_first_argument(text: &str, func: &str) -> String {
    let mut out = text.to_string();
    let pattern = format!("{func}(");
    while let Some(at) = out.find(&pattern) {
        let open = at + pattern.len();
        let bytes = out.as_bytes();
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        let mut first_end = None;
        let mut close = None;
        let mut i = open;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(q) = quote {
                if c == b'\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            } else {
                match c {
                    b'"' | b'\'' | b'`' => quote = Some(c),
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' if depth > 0 => depth -= 1,
                    b')' => {
                        close = Some(i);
                        break;
                    }
                    b',' if depth == 0 && first_end.is_none() => first_end = Some(i),
                    _ => {}
                }
            }
            i += 1;
        }
        let Some(close) = close else {
            break;
        };
        let first = &out[open..first_end.unwrap_or(close)];
        out = format!("{}({}){}", &out[..at], first, &out[close + 1..]);
    }
    out
}

/// The precise reason a case needs native histograms, or `None` for a
/// float-only case (which must not be skipped as a histogram case).
fn native_histogram_dependency(facts: &AuditFacts) -> Option<&'static str> {
    if facts.expected_histogram {
        Some("native histograms: expected output is a histogram")
    } else if facts.touched.native {
        Some("native histograms: selects histogram samples")
    } else if facts.touched.nhcb {
        Some("native histograms: selects histograms converted by load_with_nhcb")
    } else {
        None
    }
}

/// Checks a `native histograms…` skip entry against the script data: the
/// part of the reason before `;` must be what the audit finds, and an
/// expression osprey cannot parse must also be marked experimental.
fn check_native_histogram_skip(reason: &str, facts: &AuditFacts) -> Result<(), String> {
    let written = reason.split(';').next().unwrap_or("").trim();
    match native_histogram_dependency(facts) {
        None => {
            return Err(
                "skipped as native histograms, but it reads no histogram sample and expects \
                 no histogram value: a float-only case must run"
                    .to_string(),
            );
        }
        Some(found) if found != written => {
            return Err(format!(
                "skip reason {written:?} does not match the data: {found:?}"
            ));
        }
        Some(_) => {}
    }
    if !facts.parses && !reason.contains("experimental") {
        return Err(
            "expression does not parse; its skip reason must name the experimental feature".into(),
        );
    }
    Ok(())
}

/// One TSV line of the native-histogram audit.
fn audit_line(
    key: &str,
    reason: &str,
    ev: &Eval,
    facts: &AuditFacts,
    result: &Result<(), String>,
) -> String {
    let outcome = match result {
        Ok(()) => "pass".to_string(),
        Err(e) => {
            let mut e = e.replace(['\t', '\n'], " ");
            if e.len() > 300 {
                let mut cut = 300;
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.truncate(cut);
            }
            format!("FAIL: {e}")
        }
    };
    format!(
        "{key}\t{reason}\t{}\t{}\t{}\t{}\t{outcome}\t{}\t{}\t{}",
        u8::from(facts.expected_histogram),
        u8::from(facts.annotation_histogram),
        u8::from(facts.touched.native),
        u8::from(facts.touched.nhcb),
        native_histogram_dependency(facts).unwrap_or("-"),
        u8::from(facts.parses),
        ev.expr
    )
}

/// `load_with_nhcb`: each classic family of the block (`X_bucket{le}`,
/// `X_count`, `X_sum`, grouped by their labels without `le`) also becomes
/// a custom-buckets native histogram `X` at every time one of its series
/// has a float sample, as the README describes. A family whose buckets
/// are not cumulative, or whose count differs from its `+Inf` bucket, is
/// left out at that time (upstream fails the load; no script does that).
fn convert_nhcb(step: i64, lines: &[(Labels, Vec<Item>)]) -> Vec<(Labels, i64, FloatHistogram)> {
    #[derive(Default)]
    struct Temp {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: f64,
        bad: bool,
    }
    let mut families: BTreeMap<Labels, BTreeMap<i64, Temp>> = BTreeMap::new();
    for (labels, items) in lines {
        let Some(name) = labels.metric_name() else {
            continue;
        };
        enum Kind {
            Bucket(f64),
            Count,
            Sum,
        }
        let (base, kind) = if let Some(b) = name.strip_suffix("_bucket") {
            let Some(le) = labels.get("le").and_then(|v| {
                v.parse::<f64>()
                    .ok()
                    .or(match v.to_ascii_lowercase().as_str() {
                        "+inf" | "inf" => Some(f64::INFINITY),
                        "-inf" => Some(f64::NEG_INFINITY),
                        _ => None,
                    })
            }) else {
                continue;
            };
            if le.is_nan() {
                continue;
            }
            (b, Kind::Bucket(le))
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, Kind::Sum)
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, Kind::Count)
        } else {
            continue;
        };
        let mut builder = model::labels::LabelsBuilder::from_labels(labels);
        builder.delete("le");
        builder.set("__name__", base.to_string());
        let family = families.entry(builder.build()).or_default();
        for (i, item) in items.iter().enumerate() {
            let Item::Float(f) = item else { continue };
            let f = *f;
            let temp = family.entry(i as i64 * step).or_default();
            match kind {
                Kind::Bucket(le) => {
                    if f < 0.0 {
                        temp.bad = true;
                    }
                    let at = temp.buckets.partition_point(|(b, _)| *b < le);
                    if temp.buckets.get(at).is_some_and(|(b, _)| *b == le) {
                        continue;
                    }
                    temp.buckets.insert(at, (le, f));
                }
                Kind::Count => temp.count = Some(f),
                Kind::Sum => temp.sum = f,
            }
        }
    }
    let mut out = Vec::new();
    for (labels, by_time) in families {
        for (t, mut temp) in by_time {
            if temp.bad || temp.buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                continue;
            }
            let count = temp
                .count
                .or_else(|| temp.buckets.last().map(|b| b.1))
                .unwrap_or(0.0);
            if temp.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                temp.buckets.push((f64::INFINITY, count));
            }
            let last = temp.buckets[temp.buckets.len() - 1].1;
            if count != last && !(count.is_nan() && last.is_nan()) {
                continue;
            }
            let mut h = FloatHistogram {
                schema: -53,
                count,
                sum: temp.sum,
                ..FloatHistogram::default()
            };
            let mut prev = 0.0;
            let mut index: i64 = -1;
            let mut last_index: i64 = -1;
            for &(le, c) in &temp.buckets {
                index += 1;
                if le != f64::INFINITY {
                    h.custom_values.push(le);
                }
                let delta = c - prev;
                prev = c;
                if delta == 0.0 {
                    continue;
                }
                let gap = index - last_index - 1;
                match h.positive_spans.last_mut() {
                    Some(span) if gap == 0 => span.length += 1,
                    _ => h.positive_spans.push(Span {
                        offset: if h.positive_spans.is_empty() {
                            index as i32
                        } else {
                            gap as i32
                        },
                        length: 1,
                    }),
                }
                h.positive_buckets.push(delta);
                last_index = index;
            }
            out.push((labels.clone(), t, h));
        }
    }
    out
}
