//! PromQL parse errors, word for word and position for position, against
//! a running Prometheus (2.42, the one installed here): each bad query in
//! the table goes to both servers' `/api/v1/query`, and osprey's answer
//! must be Prometheus's — a 400 with `errorType` `bad_data` and the same
//! `error` text, `line:col` included.
//!
//! osprey's parser follows Prometheus 3 (`crates/promql/src/parser.rs`).
//! Where 3 words or positions a message differently from 2.42, the row
//! carries 3's text and the reason; the test then checks that 2.42 really
//! answers differently (so a row cannot claim a difference that is not
//! there) and that osprey answers 3's text.
//!
//! A missing `prometheus` skips the comparison with a reason, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`; osprey's own answers are checked anyway.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{ChildGuard, Server, free_addr, http, urlencode};

/// One bad query. `prometheus3` is `Some((text, reason))` where osprey
/// follows Prometheus 3 and 2.42 answers differently.
struct Case {
    query: &'static str,
    prometheus3: Option<(&'static str, &'static str)>,
}

const fn same(query: &'static str) -> Case {
    Case {
        query,
        prometheus3: None,
    }
}

const fn v3(query: &'static str, text: &'static str, reason: &'static str) -> Case {
    Case {
        query,
        prometheus3: Some((text, reason)),
    }
}

const DURATION_LEXER: &str = "Prometheus 3 lexes `[…]` as a duration expression \
    (numbers of seconds, arithmetic, step()/range()), so the lexer's messages inside \
    brackets changed";
const NUMBER_DURATIONS: &str = "Prometheus 3 takes a plain number of seconds where \
    2.42 wanted a duration with a unit";
const OFFSET_EXPECTED: &str = "Prometheus 3 lists what may follow `offset` now that \
    numbers and duration expressions may";
const UTF8_NAMES: &str = "Prometheus 3 accepts quoted metric and label names (UTF-8 \
    names)";
const NUMBER_LEXER: &str = "Prometheus 3's lexer reads a number with its `.`, `e` \
    and `_` rules, and reports the whole bad text";

fn cases() -> Vec<Case> {
    vec![
        // Lexer errors.
        same("sum(up"),
        same("foo{"),
        same("rate(up[5m]"),
        same("up[5m"),
        same("(up"),
        same("("),
        same("up)"),
        same("up]"),
        same("\"unterminated"),
        same("`abc"),
        same("\"\\"),
        same("{a=1}"),
        same("a ! b"),
        same("a =~ b"),
        same("a ~ b"),
        same("a $ b"),
        same("up{a!b}"),
        same("up{a=!\"b\"}"),
        same("up{{"),
        same("up{a=\"\\q\"}"),
        same("up{a=\"\\x1\"}"),
        same("up{a=\"\\u12\"}"),
        same("up{a=\"\\400\"}"),
        same("up{a=\"\\uD800\"}"),
        same("\"héllo\" + é"),
        same("up{a=\"é\"} + $"),
        same("1 +\n  2 +\n    )"),
        same("sum(\n  rate(x[5m]\n)"),
        same("1 + \n  foo{"),
        same("0x"),
        same("up[5m:1m:1m]"),
        same("up @ end("),
        // Syntax errors.
        same("up +"),
        same("1 + "),
        same("-"),
        same("()"),
        same(","),
        same("[5m]"),
        same("a b"),
        same("a offset 5m 5m"),
        same("sum 1"),
        same("sum(rate(x[5m]) foo)"),
        same("foo(,)"),
        same("group_left"),
        same("on"),
        same("bool"),
        same("ignoring(a)"),
        same("sum(up) bool"),
        same("a + group_left(c) d"),
        same("up{a}"),
        same("up{a=}"),
        same("up{a=~\"(\"}"),
        same("up{a!~\"a)\"}"),
        same("up{a=\"b\" c=\"d\"}"),
        same("up{,}"),
        same("up{job=\"a\"}{}"),
        same("sum by a (up)"),
        same("sum by (a b) (up)"),
        same("sum by (1) (up)"),
        same("sum by(a,,) (up)"),
        same("sum by"),
        same("sum(up) by"),
        same("sum(up) by (a) by (b)"),
        same("sum by (a) (up) by (b)"),
        same("abs(up) by (a)"),
        same("up @"),
        same("up @ foo"),
        same("up @ start"),
        same("up @ start(1)"),
        same("rate(up[5m]) @ "),
        same("max_over_time(up[5m:1m)"),
        // Errors found while parsing.
        same("nosuchfn(up)"),
        same("sum(a,)"),
        same("rate(a,)"),
        same("sum()"),
        same("topk(up)"),
        same("topk(1, up, up)"),
        same("sum(up, up)"),
        same("up[5m:1m][5m]"),
        same("(up)[5m]"),
        same("avg_over_time((up)[5m])"),
        same("up offset 5m[5m]"),
        same("up @ 100[5m]"),
        same("up offset 5m offset 5m"),
        same("up[5m] offset 5m offset 5m"),
        same("up @ 100 @ 100"),
        same("up offset 5m @ 100 @ 100"),
        same("1 offset 5m"),
        same("1 offset 1h"),
        same("1 @ 100"),
        same("sum(up) offset 5m"),
        same("sum(up) @ 5"),
        same("up[0s]"),
        same("up[5m:0s]"),
        same("up[1000000y]"),
        same("up offset 1000000y"),
        same("up offset 1000000000h"),
        same("up[5m1h]"),
        same("up @ Inf"),
        same("up @ 1e300"),
        same("up @ -1e300"),
        // Type errors.
        same("rate(up)"),
        same("rate(1)"),
        same("sort(1)"),
        same("absent_over_time(up)"),
        same("abs(up[5m])"),
        same("abs()"),
        same("abs(up, up)"),
        same("round()"),
        same("round(up, 1, 2)"),
        same("label_join(up)"),
        same("label_join(up, \"a\", \"-\", 1)"),
        same("predict_linear(up[5m])"),
        same("histogram_quantile(0.9)"),
        same("absent(nonexistent{job=\"myjob\"}, 1)"),
        same("vector()"),
        same("vector(\"a\")"),
        same("time(1)"),
        same("scalar(up[5m])"),
        same("day_of_month(1)"),
        same("count_values(1, up)"),
        same("quantile(\"a\", up)"),
        same("topk(\"a\", up)"),
        same("sum(up[5m])"),
        same("stdvar by (x) (up[5m])"),
        same("up[5m] + 1"),
        same("a[5m] and b"),
        same("a[5m] == b"),
        same("-up[5m]"),
        same("-\"a\""),
        same("\"a\"[5m:]"),
        same("1[5m:]"),
        same("{}"),
        same("{a=\"\"}"),
        same("{a=~\".*\"}"),
        same("foo{__name__=\"bar\"}"),
        same("1 == 1"),
        same("1 > 1"),
        same("1 and 1"),
        same("up and 1"),
        same("up + on(a) 1"),
        same("up + bool up"),
        same("a + bool b"),
        same("up + on(a) group_left(a) up"),
        same("up and on(a) group_left up"),
        // Where osprey follows Prometheus 3.
        v3(
            "up offset",
            "1:10: parse error: unexpected end of input in offset, expected number, duration, step(), or range()",
            OFFSET_EXPECTED,
        ),
        v3(
            "up offset -",
            "1:12: parse error: unexpected end of input in offset, expected number, duration, step(), or range()",
            OFFSET_EXPECTED,
        ),
        v3(
            "max_over_time(up[5m:)",
            "1:21: parse error: unexpected \")\" in subquery selector, expected number, duration, step(), range(), or \"]\"",
            OFFSET_EXPECTED,
        ),
        v3(
            "up[",
            "1:4: parse error: unexpected end of input in duration expression",
            DURATION_LEXER,
        ),
        v3(
            "up[foo]",
            "1:4: parse error: unexpected character in duration expression: 'f'",
            DURATION_LEXER,
        ),
        v3(
            "up[5m foo]",
            "1:7: parse error: unexpected character: 'f', expected ':'",
            DURATION_LEXER,
        ),
        v3(
            "up[5m:foo]",
            "1:7: parse error: unexpected character: 'f', expected ':'",
            DURATION_LEXER,
        ),
        v3(
            "up[5mm]",
            "1:4: parse error: bad number or duration syntax: \"5mm\"",
            DURATION_LEXER,
        ),
        v3(
            "up[5x]",
            "1:4: parse error: bad number or duration syntax: \"5\"",
            DURATION_LEXER,
        ),
        v3(
            "up[1y1y]",
            "1:4: parse error: bad number or duration syntax: \"1y1\"",
            DURATION_LEXER,
        ),
        v3(
            "up[-5m]",
            "1:4: parse error: duration must be greater than 0",
            DURATION_LEXER,
        ),
        v3(
            "up[0]",
            "1:4: parse error: duration must be greater than 0",
            NUMBER_DURATIONS,
        ),
        v3(
            "up offset 5m offset 0s",
            "1:1: parse error: offset may not be set multiple times",
            "Prometheus 3 accepts a zero offset (`offset 0s`), so the second offset is \
             what is wrong",
        ),
        v3(
            "up @ 5m",
            "OK",
            "Prometheus 3 takes a duration as a number of seconds after `@`",
        ),
        v3("up offset 1.5", "OK", NUMBER_DURATIONS),
        v3("up[1.5]", "OK", NUMBER_DURATIONS),
        v3("up offset 1e3", "OK", NUMBER_DURATIONS),
        v3(
            "1..2",
            "1:1: parse error: bad number or duration syntax: \"1..\"",
            NUMBER_LEXER,
        ),
        v3(
            "1e",
            "1:1: parse error: bad number or duration syntax: \"1e\"",
            NUMBER_LEXER,
        ),
        v3(
            "1_",
            "1:1: parse error: bad number or duration syntax: \"1_\"",
            NUMBER_LEXER,
        ),
        v3(
            "1__0",
            "1:1: parse error: bad number or duration syntax: \"1__\"",
            NUMBER_LEXER,
        ),
        v3(
            ".5.",
            "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \".5.\": invalid syntax",
            NUMBER_LEXER,
        ),
        v3(
            "foo{\"bar\"}",
            "1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\"",
            UTF8_NAMES,
        ),
        v3("{\"foo\"}", "OK", UTF8_NAMES),
        v3("{\"foo\"=\"bar\"}", "OK", UTF8_NAMES),
        v3("sum by (\"a\") (up)", "OK", UTF8_NAMES),
        v3(
            "sum by (\"\") (up)",
            "1:9: parse error: invalid label name for grouping: \"\"",
            UTF8_NAMES,
        ),
        v3(
            "holt_winters(up[5m], 0.5, 0.5)",
            "1:1: parse error: unknown function with name \"holt_winters\"",
            "Prometheus 3 renamed holt_winters to double_exponential_smoothing",
        ),
    ]
}

/// The `error` text of a failed query, or "OK". Prometheus's API puts
/// `invalid parameter "query": ` before a parse error; so does osprey's.
fn answer(addr: SocketAddr, query: &str) -> (u16, String, String) {
    let path = format!("/api/v1/query?query={}&time=1000", urlencode(query));
    let (status, body) = http(addr, "GET", &path, &[], &[]).unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    if json["status"] == "success" {
        return (status, "OK".into(), String::new());
    }
    let error = json["error"].as_str().unwrap_or_default();
    let error = error
        .strip_prefix("invalid parameter \"query\": ")
        .unwrap_or(error);
    (
        status,
        error.to_string(),
        json["errorType"].as_str().unwrap_or_default().to_string(),
    )
}

fn required() -> bool {
    std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

fn start_prometheus(dir: &Path) -> Option<(ChildGuard, SocketAddr)> {
    if let Err(e) = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        assert!(
            !required(),
            "OSPREY_REQUIRE_EXTERNAL=1 but prometheus is not installed ({e})"
        );
        eprintln!("skipping the comparison: prometheus is not installed ({e})");
        return None;
    }
    let addr = free_addr();
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let child = ChildGuard::spawn_ready(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={addr}")),
        &dir.join("prometheus.log"),
        Duration::from_secs(60),
        || matches!(http(addr, "GET", "/-/ready", &[], &[]), Ok((200, _))),
    );
    Some((child, addr))
}

#[test]
fn parse_errors_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let osprey = Server::start(
        &dir.path().join("osprey-data"),
        free_addr(),
        &dir.path().join("osprey.log"),
    );
    let prometheus = start_prometheus(dir.path());
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let (status, ours, kind) = answer(osprey.addr, case.query);
        let want_ours: String = match (&case.prometheus3, &prometheus) {
            (Some((text, _)), _) => text.to_string(),
            (None, Some((_, addr))) => answer(*addr, case.query).1,
            // Without Prometheus, rows that match it are checked only for
            // being a bad_data error with a position.
            (None, None) => {
                if status != 400 || kind != "bad_data" || !ours.contains(": parse error: ") {
                    failures.push(format!(
                        "{:?}: osprey answered {status} {kind} {ours}",
                        case.query
                    ));
                }
                continue;
            }
        };
        if ours != want_ours {
            failures.push(format!(
                "{:?}\n    osprey:     {ours}\n    prometheus: {want_ours}",
                case.query
            ));
        }
        if want_ours != "OK" && (status != 400 || kind != "bad_data") {
            failures.push(format!(
                "{:?}: osprey answered HTTP {status} with errorType {kind:?}, want 400 bad_data",
                case.query
            ));
        }
        if let (Some((text, reason)), Some((_, addr))) = (&case.prometheus3, &prometheus) {
            let old = answer(*addr, case.query).1;
            if old == *text {
                failures.push(format!(
                    "{:?}: recorded as a Prometheus 3 difference ({reason}), but 2.42 answers the same",
                    case.query
                ));
            }
        }
    }
    // The other endpoints that parse a query answer a parse error alike.
    if let Some((_, addr)) = &prometheus {
        for query in ["sum(", "rate(up)", "up{a=~\"(\"}", "a +\n  on b"] {
            for endpoint in ["format_query", "query_exemplars"] {
                let path = format!(
                    "/api/v1/{endpoint}?query={}&start=0&end=10",
                    urlencode(query)
                );
                let (ps, p) = http(*addr, "GET", &path, &[], &[]).unwrap();
                let (os, o) = http(osprey.addr, "GET", &path, &[], &[]).unwrap();
                let p: Value = serde_json::from_slice(&p).unwrap();
                let o: Value = serde_json::from_slice(&o).unwrap();
                if (ps, &p) != (os, &o) {
                    failures.push(format!(
                        "{endpoint} {query:?}: prometheus {ps} {p}, osprey {os} {o}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `--enable-feature` turns on PromQL's experimental syntax by
/// Prometheus's names; without it the server refuses it with Prometheus's
/// "not enabled" texts.
#[test]
fn enable_feature_turns_on_experimental_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Server::start(
        &dir.path().join("plain"),
        free_addr(),
        &dir.path().join("plain.log"),
    );
    // A rule file using the syntax loads when the feature is on.
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - record: up:six_minutes\n        expr: count_over_time(up[5m+1m])\n",
    )
    .unwrap();
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 15s\nrule_files:\n  - {}\n",
            rules.display()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let featured = Server::start_with_args(
        &dir.path().join("featured"),
        free_addr(),
        &dir.path().join("featured.log"),
        &[
            "--enable-feature=promql-duration-expr,promql-binop-fill-modifiers",
            "--enable-feature",
            "no-such-feature",
            "--config",
            &config_arg,
        ],
    );
    let (status, body) = http(featured.addr, "GET", "/api/v1/rules", &[], &[]).unwrap();
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("up:six_minutes"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    for (query, refused) in [
        (
            "count_over_time(up[5m+1m])",
            "1:20: parse error: experimental duration expression is not enabled",
        ),
        (
            "up offset step()",
            "1:11: parse error: experimental duration expression is not enabled",
        ),
        (
            "up + fill(0) up",
            "1:1: parse error: binop fill modifiers are experimental and not enabled",
        ),
    ] {
        let (status, text, kind) = answer(plain.addr, query);
        assert_eq!(
            (status, text.as_str(), kind.as_str()),
            (400, refused, "bad_data"),
            "{query}"
        );
        let (status, text, _) = answer(featured.addr, query);
        assert_eq!((status, text.as_str()), (200, "OK"), "{query}");
    }
    // Features osprey does not enable stay refused.
    let (_, text, _) = answer(featured.addr, "rate(up[5m] anchored)");
    assert_eq!(
        text,
        "1:6: parse error: anchored modifier is experimental and not enabled"
    );
    let (status, body) = http(featured.addr, "GET", "/api/v1/status/flags", &[], &[]).unwrap();
    assert_eq!(status, 200);
    let flags: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        flags["data"]["enable-feature"],
        "promql-duration-expr,promql-binop-fill-modifiers,no-such-feature"
    );
}
