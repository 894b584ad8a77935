//! Tests of the exposition parsers: one table of accepted inputs, one of
//! rejected inputs with their line, column and message, a real node-exporter
//! scrape, and a property test that renders random expositions and parses
//! them back.

use std::borrow::Cow;
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

type Pairs = Vec<(Cow<'static, str>, Cow<'static, str>)>;

fn pairs(labels: &[(&str, &str)]) -> Pairs {
    labels
        .iter()
        .map(|(name, value)| (Cow::Owned(name.to_string()), Cow::Owned(value.to_string())))
        .collect()
}

fn sample(
    name: &str,
    labels: &[(&str, &str)],
    value: f64,
    timestamp_ms: Option<i64>,
) -> Entry<'static> {
    Entry::Sample {
        name: Cow::Owned(name.to_string()),
        labels: pairs(labels),
        value,
        timestamp_ms,
        exemplar: None,
    }
}

fn sample_with_exemplar(
    name: &str,
    labels: &[(&str, &str)],
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: (&[(&str, &str)], f64, Option<i64>),
) -> Entry<'static> {
    Entry::Sample {
        name: Cow::Owned(name.to_string()),
        labels: pairs(labels),
        value,
        timestamp_ms,
        exemplar: Some(Exemplar {
            labels: pairs(exemplar.0),
            value: exemplar.1,
            timestamp_ms: exemplar.2,
        }),
    }
}

fn help(metric: &str, text: &str) -> Entry<'static> {
    Entry::Help {
        metric: Cow::Owned(metric.to_string()),
        text: Cow::Owned(text.to_string()),
    }
}

fn type_line(metric: &str, kind: MetricType) -> Entry<'static> {
    Entry::Type {
        metric: Cow::Owned(metric.to_string()),
        kind,
    }
}

fn unit(metric: &str, unit: &str) -> Entry<'static> {
    Entry::Unit {
        metric: Cow::Owned(metric.to_string()),
        unit: Cow::Owned(unit.to_string()),
    }
}

/// Parses everything, failing the test on an error. Entries are compared
/// through `Debug` so that NaN equals NaN and Borrowed equals Owned. The
/// lazy path must give the same entries.
fn check(format: Format, input: &str, expected: &[Entry<'static>]) {
    let parsed: Vec<Entry<'_>> = Parser::new(input.as_bytes(), format)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{format:?} input {input:?}: {error}"));
    assert_eq!(
        format!("{parsed:#?}"),
        format!("{expected:#?}"),
        "{format:?} input {input:?}"
    );
    let lazy = lazy_entries(input.as_bytes(), format)
        .unwrap_or_else(|error| panic!("{format:?} input {input:?} (lazy): {error}"));
    assert_eq!(
        format!("{lazy:#?}"),
        format!("{expected:#?}"),
        "{format:?} input {input:?} (lazy)"
    );
}

/// Parses everything through [`Parser::next_lazy`], parsing every series
/// as a cache that always misses would, up to the first error.
fn lazy_entries(input: &[u8], format: Format) -> Result<Vec<Entry<'_>>, ParseError> {
    let mut parser = Parser::new(input, format);
    let mut entries = Vec::new();
    while let Some(entry) = parser.next_lazy() {
        entries.push(match entry? {
            LazyEntry::Help { metric, text } => Entry::Help { metric, text },
            LazyEntry::Type { metric, kind } => Entry::Type { metric, kind },
            LazyEntry::Unit { metric, unit } => Entry::Unit { metric, unit },
            LazyEntry::Sample(sample) => {
                let (name, labels) = sample.parse_series()?;
                Entry::Sample {
                    name,
                    labels,
                    value: sample.value,
                    timestamp_ms: sample.timestamp_ms,
                    exemplar: sample.exemplar.map(|exemplar| *exemplar),
                }
            }
        });
    }
    Ok(entries)
}

/// Parses until the first error and checks it, and that iteration then
/// stops.
fn check_error(format: Format, input: &[u8], line: usize, column: usize, message: &str) {
    let mut parser = Parser::new(input, format);
    let error = loop {
        match parser.next() {
            Some(Ok(_)) => continue,
            Some(Err(error)) => break error,
            None => panic!(
                "{format:?} input {:?}: no error",
                String::from_utf8_lossy(input)
            ),
        }
    };
    assert_eq!(
        error,
        ParseError {
            line,
            column,
            message: message.to_string()
        },
        "{format:?} input {:?}",
        String::from_utf8_lossy(input)
    );
    assert!(parser.next().is_none(), "iteration goes on after an error");
    let lazy_error = lazy_entries(input, format).expect_err("the lazy path found no error");
    assert_eq!(
        lazy_error,
        error,
        "{format:?} input {:?} (lazy)",
        String::from_utf8_lossy(input)
    );
}

use Format::{OpenMetrics as OM, Text};

#[test]
fn accepted_text_format() {
    let cases: Vec<(&str, Vec<Entry<'static>>)> = vec![
        ("", vec![]),
        ("\n\n   \n\t\n", vec![]),
        (
            "# a comment\n#another\n# HELPER x\n# UNIT foo seconds\n# EOF\n",
            vec![],
        ),
        ("foo 1", vec![sample("foo", &[], 1.0, None)]),
        ("foo 1\n", vec![sample("foo", &[], 1.0, None)]),
        (
            "foo:bar_baz9 -0.5\n",
            vec![sample("foo:bar_baz9", &[], -0.5, None)],
        ),
        ("  foo\t 1  \t\n", vec![sample("foo", &[], 1.0, None)]),
        (
            "foo 1 1700000000000  \n",
            vec![sample("foo", &[], 1.0, Some(1_700_000_000_000))],
        ),
        ("foo 1 -5\n", vec![sample("foo", &[], 1.0, Some(-5))]),
        (
            "foo 1\r\nbar 2\r\n",
            vec![sample("foo", &[], 1.0, None), sample("bar", &[], 2.0, None)],
        ),
        ("foo{} 1\n", vec![sample("foo", &[], 1.0, None)]),
        (
            "foo{a=\"b\"}1\n",
            vec![sample("foo", &[("a", "b")], 1.0, None)],
        ),
        (
            "foo { a = \"b\" , c=\"d\", } 1\n",
            vec![sample("foo", &[("a", "b"), ("c", "d")], 1.0, None)],
        ),
        (
            "foo{a=\"}, # x\"} 1\n",
            vec![sample("foo", &[("a", "}, # x")], 1.0, None)],
        ),
        (
            "foo{a=\"x\\\\y\\\"z\\nw\"} 1\n",
            vec![sample("foo", &[("a", "x\\y\"z\nw")], 1.0, None)],
        ),
        (
            "foo{a=\"\\t\\\\\"} 1\n",
            vec![sample("foo", &[("a", "\\t\\")], 1.0, None)],
        ),
        (
            "foo{a=\"\"} 1\n",
            vec![sample("foo", &[("a", "")], 1.0, None)],
        ),
        (
            "foo{a=\"ünïcödé ✓\"} 1\n",
            vec![sample("foo", &[("a", "ünïcödé ✓")], 1.0, None)],
        ),
        (
            "{\"my.metric\", \"label.name\"=\"v\"} 1\n",
            vec![sample("my.metric", &[("label.name", "v")], 1.0, None)],
        ),
        (
            "{\"my.metric\"} 1\n",
            vec![sample("my.metric", &[], 1.0, None)],
        ),
        (
            "{a=\"b\",\"my\\\"m\"} 1\n",
            vec![sample("my\"m", &[("a", "b")], 1.0, None)],
        ),
        (
            "{\"a\"=\"b\",\"c\"} 1\n",
            vec![sample("c", &[("a", "b")], 1.0, None)],
        ),
        (
            "# HELP \"my.metric\" Some text.\n",
            vec![help("my.metric", "Some text.")],
        ),
        (
            "# TYPE \"my.metric\" gauge\n",
            vec![type_line("my.metric", MetricType::Gauge)],
        ),
        ("# HELP foo\n", vec![help("foo", "")]),
        ("# HELP foo   \n", vec![help("foo", "")]),
        ("#\tHELP\tfoo\tx y  \n", vec![help("foo", "x y  ")]),
        (
            "# HELP foo a\\\\b\\nc \\\"q\\\" \\t\n",
            vec![help("foo", "a\\b\nc \\\"q\\\" \\t")],
        ),
        (
            "# HELP foo trailing backslash\\\n",
            vec![help("foo", "trailing backslash\\")],
        ),
        (
            "# TYPE foo counter\n",
            vec![type_line("foo", MetricType::Counter)],
        ),
        (
            "# TYPE foo gauge \n",
            vec![type_line("foo", MetricType::Gauge)],
        ),
        (
            "# TYPE foo histogram\n",
            vec![type_line("foo", MetricType::Histogram)],
        ),
        (
            "# TYPE foo summary\n",
            vec![type_line("foo", MetricType::Summary)],
        ),
        (
            "# TYPE foo untyped\n",
            vec![type_line("foo", MetricType::Unknown)],
        ),
        (
            "# TYPE foo unknown\n",
            vec![type_line("foo", MetricType::Unknown)],
        ),
        (
            "# TYPE foo info\n",
            vec![type_line("foo", MetricType::Info)],
        ),
        (
            "# TYPE foo stateset\n",
            vec![type_line("foo", MetricType::StateSet)],
        ),
        (
            "# TYPE foo gaugehistogram\n",
            vec![type_line("foo", MetricType::GaugeHistogram)],
        ),
        (
            "a NaN\nb +Inf\nc -Inf\nd Inf\ne 1e3\nf -1.5E-3\ng .5\n",
            vec![
                sample("a", &[], f64::NAN, None),
                sample("b", &[], f64::INFINITY, None),
                sample("c", &[], f64::NEG_INFINITY, None),
                sample("d", &[], f64::INFINITY, None),
                sample("e", &[], 1000.0, None),
                sample("f", &[], -0.0015, None),
                sample("g", &[], 0.5, None),
            ],
        ),
    ];
    for (input, expected) in cases {
        check(Text, input, &expected);
    }
}

#[test]
fn accepted_openmetrics() {
    let document = "\
# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency \\\"quoted\\\" \\\\ \\n.
acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32
acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0
acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0
# TYPE foo counter
foo_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67
foo_created 1520872607.123
# TYPE hist histogram
hist_bucket{le=\"0.5\"} 3 # {} 0.2 1234.5
hist_bucket{le=\"+Inf\"} 4 1700000000.125 # {trace_id=\"a\",span_id=\"b\"} 9 -0.0005
# TYPE st stateset
st{st=\"a\"} 1
# TYPE i info
i_info{version=\"1\"} 1
# TYPE gh gaugehistogram
gh_gcount 2
# TYPE u unknown
u 1.5e1 17e8
{\"my.metric\",\"x.y\"=\"z\"} 1
# EOF";
    let expected = vec![
        type_line("acme_http_router_request_seconds", MetricType::Summary),
        unit("acme_http_router_request_seconds", "seconds"),
        help(
            "acme_http_router_request_seconds",
            "Latency \"quoted\" \\ \n.",
        ),
        sample(
            "acme_http_router_request_seconds_sum",
            &[("path", "/api/v1"), ("method", "GET")],
            9036.32,
            None,
        ),
        sample(
            "acme_http_router_request_seconds_count",
            &[("path", "/api/v1"), ("method", "GET")],
            807283.0,
            None,
        ),
        sample(
            "acme_http_router_request_seconds_created",
            &[("path", "/api/v1"), ("method", "GET")],
            1605281325.0,
            None,
        ),
        type_line("foo", MetricType::Counter),
        sample_with_exemplar(
            "foo_total",
            &[],
            17.0,
            Some(1_520_879_607_789),
            (&[("trace_id", "KOO5S4vxi0o")], 0.67, None),
        ),
        sample("foo_created", &[], 1520872607.123, None),
        type_line("hist", MetricType::Histogram),
        sample_with_exemplar(
            "hist_bucket",
            &[("le", "0.5")],
            3.0,
            None,
            (&[], 0.2, Some(1_234_500)),
        ),
        sample_with_exemplar(
            "hist_bucket",
            &[("le", "+Inf")],
            4.0,
            Some(1_700_000_000_125),
            // Prometheus: int64(-0.0005 * 1000) is 0.
            (&[("trace_id", "a"), ("span_id", "b")], 9.0, Some(0)),
        ),
        type_line("st", MetricType::StateSet),
        sample("st", &[("st", "a")], 1.0, None),
        type_line("i", MetricType::Info),
        sample("i_info", &[("version", "1")], 1.0, None),
        type_line("gh", MetricType::GaugeHistogram),
        sample("gh_gcount", &[], 2.0, None),
        type_line("u", MetricType::Unknown),
        sample("u", &[], 15.0, Some(1_700_000_000_000)),
        sample("my.metric", &[("x.y", "z")], 1.0, None),
    ];
    check(OM, document, &expected);
    check(OM, &format!("{document}\n"), &expected);
    check(OM, "# EOF\n", &[]);
    check(OM, "# EOF", &[]);
    check(
        OM,
        "foo 1 0.001\n# EOF\n",
        &[sample("foo", &[], 1.0, Some(1))],
    );
    check(
        OM,
        "foo 1 -1.5\n# EOF\n",
        &[sample("foo", &[], 1.0, Some(-1_500))],
    );
    check(OM, "# UNIT foo\n# EOF\n", &[unit("foo", "")]);
}

#[test]
fn rejected_inputs_name_line_and_column() {
    let cases: &[(Format, &[u8], usize, usize, &str)] = &[
        (
            Text,
            b"foo{job\"x\"} 1",
            1,
            8,
            "expected '=' after label name \"job\"",
        ),
        (
            Text,
            b"a 1\nb 2\nc{x} 3",
            3,
            4,
            "expected '=' after label name \"x\"",
        ),
        (Text, b"a 1\r\nb{ 2\r\n", 2, 4, "expected label name or '}'"),
        (
            Text,
            b"foo{job=\"x} 1",
            1,
            14,
            "expected '\"' to close the quoted string",
        ),
        (
            Text,
            b"foo{a=\"1\",a=\"2\"} 1",
            1,
            11,
            "duplicate label name \"a\"",
        ),
        (
            Text,
            b"foo{a=\"1\",\"a\"=\"2\"} 1",
            1,
            11,
            "duplicate label name \"a\"",
        ),
        (
            Text,
            b"foo 1 2 3",
            1,
            9,
            "expected end of line after timestamp",
        ),
        (Text, b"foo abc", 1, 5, "invalid value \"abc\""),
        (Text, b"foo 1_000", 1, 5, "invalid value \"1_000\""),
        (Text, b"foo -NaN", 1, 5, "invalid value \"-NaN\""),
        (Text, b"foo 1e400", 1, 5, "value \"1e400\" is out of range"),
        (
            Text,
            b"foo 0x1p3",
            1,
            5,
            "hexadecimal value \"0x1p3\" is not supported",
        ),
        (
            Text,
            b"foo 1 1.5",
            1,
            7,
            "invalid timestamp \"1.5\" (expected integer milliseconds)",
        ),
        (
            Text,
            b"foo 1 99999999999999999999",
            1,
            7,
            "timestamp \"99999999999999999999\" is out of range",
        ),
        (Text, b"foo", 1, 4, "expected value"),
        (Text, b"foo{} ", 1, 7, "expected value"),
        (
            Text,
            b"{a=\"b\"} 1",
            1,
            1,
            "expected metric name before or inside the label set",
        ),
        (
            Text,
            b"foo{a=\"b\"",
            1,
            10,
            "expected ',' or '}' after label",
        ),
        (
            Text,
            b"foo{a=\"b\" c=\"d\"} 1",
            1,
            11,
            "expected ',' or '}' after label",
        ),
        (Text, b"foo{1a=\"b\"} 1", 1, 5, "expected label name or '}'"),
        (Text, b"foo{,} 1", 1, 5, "expected label name or '}'"),
        (
            Text,
            b"foo{a=\"b\",,} 1",
            1,
            11,
            "expected label name or '}'",
        ),
        (
            Text,
            b"foo{a:b=\"c\"} 1",
            1,
            6,
            "expected '=' after label name \"a\"",
        ),
        (
            Text,
            b"foo{",
            1,
            5,
            "expected label name or '}' (unterminated label set)",
        ),
        (
            Text,
            b"foo{a=b} 1",
            1,
            7,
            "expected '\"' to start the value of label \"a\"",
        ),
        (
            Text,
            b"foo.bar 1",
            1,
            4,
            "expected '{' or a space after metric name \"foo\"",
        ),
        (
            Text,
            b"\"foo\" 1",
            1,
            1,
            "expected metric name (a quoted metric name goes inside the braces: {\"name\"})",
        ),
        (Text, b"1foo 1", 1, 1, "expected metric name"),
        (
            Text,
            b"foo 1 # {a=\"b\"} 1",
            1,
            7,
            "exemplars are only allowed in OpenMetrics (found '#' after the value)",
        ),
        (
            Text,
            b"foo{\"a\"=\"b\",\"c\"} 1",
            1,
            13,
            "metric name given twice",
        ),
        (Text, b"{\"a\",\"c\"} 1", 1, 6, "metric name given twice"),
        (Text, b"{\"\"} 1", 1, 2, "metric name must not be empty"),
        (
            Text,
            b"foo{\"\"=\"x\"} 1",
            1,
            5,
            "label name must not be empty",
        ),
        (Text, b"foo{a=\"\xff\"} 1", 1, 8, "invalid UTF-8"),
        (Text, b"{\"a\xc3\"} 1", 1, 4, "invalid UTF-8"),
        (Text, b"foo 1\xff", 1, 5, "invalid value \"1\u{fffd}\""),
        (Text, b"# HELP foo caf\xc3\xa9 \xc3", 1, 18, "invalid UTF-8"),
        (
            Text,
            b"# TYPE foo bogus",
            1,
            12,
            "unknown metric type \"bogus\"",
        ),
        (
            Text,
            b"# TYPE foo Counter",
            1,
            12,
            "unknown metric type \"Counter\"",
        ),
        (
            Text,
            b"# TYPE foo",
            1,
            11,
            "expected metric type after metric name \"foo\"",
        ),
        (
            Text,
            b"# TYPE foo counter extra",
            1,
            20,
            "unexpected text after metric type",
        ),
        (Text, b"# TYPE", 1, 7, "expected metric name after TYPE"),
        (Text, b"# HELP", 1, 7, "expected metric name after HELP"),
        (Text, b"# HELP  ", 1, 9, "expected metric name after HELP"),
        (
            Text,
            b"# HELP 1foo x",
            1,
            8,
            "expected metric name after HELP",
        ),
        (
            Text,
            b"# HELP foo.bar x",
            1,
            11,
            "expected a space after metric name \"foo\"",
        ),
        (
            Text,
            b"# HELP \"foo",
            1,
            12,
            "expected '\"' to close the quoted string",
        ),
        (
            OM,
            b"",
            1,
            1,
            "expected \"# EOF\" at the end of OpenMetrics input",
        ),
        (
            OM,
            b"foo 1\n",
            2,
            1,
            "expected \"# EOF\" at the end of OpenMetrics input",
        ),
        (
            OM,
            b"foo 1",
            2,
            1,
            "expected \"# EOF\" at the end of OpenMetrics input",
        ),
        (
            OM,
            b"# EOF\nfoo 1\n",
            2,
            1,
            "unexpected content after \"# EOF\"",
        ),
        (OM, b"# EOF\n\n", 2, 1, "unexpected content after \"# EOF\""),
        (OM, b"# EOF ", 1, 6, "unexpected text after \"# EOF\""),
        (OM, b"# EOF\r\n", 1, 6, "unexpected text after \"# EOF\""),
        (
            OM,
            b"foo 1\n\n# EOF\n",
            2,
            1,
            "unexpected empty line in OpenMetrics input",
        ),
        (
            OM,
            b"# hello\n# EOF",
            1,
            3,
            "expected HELP, TYPE, UNIT or EOF after '#' (OpenMetrics has no comments)",
        ),
        (
            OM,
            b"#HELP foo x\n# EOF",
            1,
            2,
            "expected a space after '#'",
        ),
        (OM, b"foo 1\r\n# EOF\n", 1, 5, "invalid value \"1\\r\""),
        (
            OM,
            b"foo 1 NaN\n# EOF",
            1,
            7,
            "timestamp \"NaN\" is not finite",
        ),
        (
            OM,
            b"foo 1 +Inf\n# EOF",
            1,
            7,
            "timestamp \"+Inf\" is not finite",
        ),
        (
            OM,
            b"foo 1 1.5.5\n# EOF",
            1,
            7,
            "invalid timestamp \"1.5.5\" (expected decimal seconds)",
        ),
        (
            OM,
            b"foo 1 1e30\n# EOF",
            1,
            7,
            "timestamp \"1e30\" is out of range",
        ),
        (
            OM,
            b"foo 1 #{a=\"b\"} 1\n# EOF",
            1,
            8,
            "expected a space after '#' of the exemplar",
        ),
        (
            OM,
            b"foo 1 # a\n# EOF",
            1,
            9,
            "expected '{' to start the exemplar's label set",
        ),
        (
            OM,
            b"foo 1 # {a=\"b\"}\n# EOF",
            1,
            16,
            "expected exemplar value",
        ),
        (
            OM,
            b"foo 1 # {a=\"b\"} x\n# EOF",
            1,
            17,
            "invalid value \"x\"",
        ),
        (
            OM,
            b"foo 1 # {a=\"b\"} 1 NaN\n# EOF",
            1,
            19,
            "timestamp \"NaN\" is not finite",
        ),
        (
            OM,
            b"foo 1 # {a=\"b\"} 1 2 3\n# EOF",
            1,
            21,
            "expected end of line after exemplar",
        ),
        (
            OM,
            b"foo 1 # {\"a\"} 1\n# EOF",
            1,
            13,
            "expected '=' after label name \"a\"",
        ),
        (
            OM,
            b"foo 1 # {a=\"b\",a=\"c\"} 1\n# EOF",
            1,
            16,
            "duplicate label name \"a\"",
        ),
        (OM, b" foo 1\n# EOF", 1, 1, "expected metric name"),
        (
            OM,
            b"# UNIT foo seconds extra\n# EOF",
            1,
            20,
            "unexpected text after unit",
        ),
        (
            OM,
            b"# UNIT\n# EOF",
            1,
            7,
            "expected metric name after UNIT",
        ),
        (
            OM,
            b"# TYPE foo gauge\nfoo{a=\"b\"\n# EOF",
            2,
            10,
            "expected ',' or '}' after label",
        ),
    ];
    for (format, input, line, column, message) in cases {
        check_error(*format, input, *line, *column, message);
    }
}

#[test]
fn duplicate_labels_are_found_in_large_label_sets() {
    let mut line = String::from("foo{");
    for index in 0..5000 {
        line.push_str(&format!("l{index}=\"v\","));
    }
    check(
        Text,
        &format!("{line}}} 1\n"),
        &[Entry::Sample {
            name: Cow::Borrowed("foo"),
            labels: (0..5000)
                .map(|index| (Cow::Owned(format!("l{index}")), Cow::Borrowed("v")))
                .collect(),
            value: 1.0,
            timestamp_ms: None,
            exemplar: None,
        }],
    );
    let column = line.len() + 1;
    line.push_str("l4321=\"w\"} 1");
    check_error(
        Text,
        line.as_bytes(),
        1,
        column,
        "duplicate label name \"l4321\"",
    );
    // Early and late duplicates, around the switch from scan to hash set.
    for size in [2, 15, 16, 17, 40] {
        for repeated in [0, size / 2, size - 1] {
            let mut line = String::from("foo{");
            for index in 0..size {
                line.push_str(&format!("l{index}=\"v\","));
            }
            let column = line.len() + 1;
            line.push_str(&format!("l{repeated}=\"v\"}} 1"));
            check_error(
                Text,
                line.as_bytes(),
                1,
                column,
                &format!("duplicate label name \"l{repeated}\""),
            );
        }
    }
}

#[test]
fn error_display_is_line_column_message() {
    let error = Parser::new(b"a 1\nfoo{job\"x\"} 1", Text)
        .find_map(Result::err)
        .expect("the input is invalid");
    assert_eq!(
        error.to_string(),
        "line 2, column 8: expected '=' after label name \"job\""
    );
}

#[test]
fn unescaped_text_is_borrowed_and_escaped_text_is_owned() {
    let input =
        b"# HELP foo plain\n# HELP foo with\\\\escape\nfoo{a=\"plain\",b=\"esc\\\"aped\"} 1\n";
    let entries: Vec<Entry<'_>> = Parser::new(input, Text)
        .collect::<Result<_, _>>()
        .expect("valid input");
    let Entry::Help { metric, text } = &entries[0] else {
        panic!("expected HELP, got {:?}", entries[0]);
    };
    assert!(matches!(metric, Cow::Borrowed(_)) && matches!(text, Cow::Borrowed(_)));
    let Entry::Help { text, .. } = &entries[1] else {
        panic!("expected HELP, got {:?}", entries[1]);
    };
    assert!(matches!(text, Cow::Owned(_)));
    let Entry::Sample { name, labels, .. } = &entries[2] else {
        panic!("expected a sample, got {:?}", entries[2]);
    };
    assert!(matches!(name, Cow::Borrowed(_)));
    assert!(matches!(labels[0].0, Cow::Borrowed(_)) && matches!(labels[0].1, Cow::Borrowed(_)));
    assert!(matches!(labels[1].1, Cow::Owned(_)));
}

#[test]
fn no_panic_or_hang_on_truncations_of_a_valid_document() {
    let document = "# HELP a x\\n\n# TYPE a counter\na_total{b=\"c\\\\\",\"d.e\"=\"f\"} 1 1.5 # {t=\"u\"} 2 3\n# EOF\n";
    for end in 0..=document.len() {
        for format in [Text, OM] {
            let entries = Parser::new(&document.as_bytes()[..end], format).count();
            assert!(entries <= 4);
        }
    }
}

#[test]
fn sample_labels_adds_the_metric_name_and_drops_empty_values() {
    let labels = sample_labels(
        "up",
        &[
            (Cow::Borrowed("job"), Cow::Borrowed("node")),
            (Cow::Borrowed("empty"), Cow::Borrowed("")),
            (Cow::Borrowed("__name__"), Cow::Borrowed("spoofed")),
            (Cow::Borrowed("instance"), Cow::Owned("a:1".to_string())),
        ],
    );
    assert_eq!(
        labels,
        crate::Labels::from_pairs([("__name__", "up"), ("instance", "a:1"), ("job", "node")])
    );
}

#[test]
fn content_type_picks_the_format() {
    let cases = [
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            OM,
        ),
        ("application/openmetrics-text;version=0.0.1", OM),
        ("Application/OpenMetrics-Text", OM),
        ("text/plain; version=0.0.4; charset=utf-8", Text),
        ("text/plain", Text),
        ("", Text),
        ("garbage;;", Text),
    ];
    for (content_type, format) in cases {
        assert_eq!(content_type_format(content_type), format, "{content_type}");
    }
}

const NODE_EXPORTER_SCRAPE: &str = "/work/shared/bench/templates/node-exporter-1.5.0.prom";

fn read_node_exporter_scrape() -> Option<Vec<u8>> {
    match std::fs::read(NODE_EXPORTER_SCRAPE) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            println!("skipping: cannot read {NODE_EXPORTER_SCRAPE}: {error}");
            None
        }
    }
}

#[test]
fn node_exporter_scrape_parses_fully_in_both_formats() {
    let Some(scrape) = read_node_exporter_scrape() else {
        return;
    };
    let text = String::from_utf8(scrape.clone()).expect("the scrape is UTF-8");
    // Counted independently of the parser: every non-blank line that is not
    // a comment is a sample.
    let expected_samples = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .count();
    let expected_help = text
        .lines()
        .filter(|line| line.starts_with("# HELP "))
        .count();
    let expected_type = text
        .lines()
        .filter(|line| line.starts_with("# TYPE "))
        .count();
    assert!(
        expected_samples > 400,
        "the scrape has {expected_samples} samples"
    );

    let mut openmetrics = scrape.clone();
    openmetrics.extend_from_slice(b"# EOF\n");
    for (format, body) in [(Text, &scrape), (OM, &openmetrics)] {
        let (mut samples, mut helps, mut types) = (0, 0, 0);
        for entry in Parser::new(body, format) {
            match entry.unwrap_or_else(|error| panic!("{format:?}: {error}")) {
                Entry::Sample {
                    name,
                    labels,
                    timestamp_ms,
                    exemplar,
                    ..
                } => {
                    assert!(!name.is_empty() && timestamp_ms.is_none() && exemplar.is_none());
                    assert!(labels.iter().all(|(name, _)| !name.is_empty()));
                    samples += 1;
                }
                Entry::Help { .. } => helps += 1,
                Entry::Type { .. } => types += 1,
                Entry::Unit { .. } => panic!("the scrape has no UNIT lines"),
            }
        }
        assert_eq!(
            (samples, helps, types),
            (expected_samples, expected_help, expected_type)
        );
    }
}

/// An informal throughput print; run in release mode for a meaningful number:
/// `cargo test --release -p model node_exporter_throughput -- --nocapture`.
#[test]
fn node_exporter_throughput() {
    let Some(scrape) = read_node_exporter_scrape() else {
        return;
    };
    let started = std::time::Instant::now();
    let mut parsed_bytes = 0usize;
    let mut samples = 0usize;
    while started.elapsed() < std::time::Duration::from_millis(300) {
        for entry in Parser::new(&scrape, Text) {
            if let Ok(Entry::Sample { .. }) = entry {
                samples += 1;
            }
        }
        parsed_bytes += scrape.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "exposition text parser: {:.0} MB/s, {:.2} M samples/s",
        parsed_bytes as f64 / seconds / 1e6,
        samples as f64 / seconds / 1e6
    );
    assert!(samples > 0);
}

// Property test: random valid expositions, rendered by the test, parse back
// to exactly what was generated.

/// Labels, value and timestamp of a generated exemplar.
type GeneratedExemplar = (Vec<(String, String)>, f64, Option<i64>);

#[derive(Clone, Debug)]
struct GeneratedSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<GeneratedExemplar>,
}

#[derive(Clone, Debug)]
enum GeneratedEntry {
    Help(String, String),
    Type(String, MetricType),
    Unit(String, String),
    Sample(GeneratedSample),
}

fn is_plain_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_plain_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn render_name(name: &str) -> String {
    if is_plain_metric_name(name) {
        name.to_string()
    } else {
        quote(name)
    }
}

fn render_label_set(out: &mut String, labels: &[(String, String)]) {
    let rendered: Vec<String> = labels
        .iter()
        .map(|(name, value)| {
            let name = if is_plain_label_name(name) {
                name.clone()
            } else {
                quote(name)
            };
            format!("{name}={}", quote(value))
        })
        .collect();
    out.push_str(&rendered.join(","));
}

fn render_seconds(milliseconds: i64) -> String {
    let sign = if milliseconds < 0 { "-" } else { "" };
    let magnitude = milliseconds.unsigned_abs();
    format!("{sign}{}.{:03}", magnitude / 1000, magnitude % 1000)
}

fn render(entries: &[GeneratedEntry], format: Format) -> String {
    let mut out = String::new();
    for entry in entries {
        match entry {
            GeneratedEntry::Help(metric, text) => {
                let mut escaped = String::new();
                for c in text.chars() {
                    match c {
                        '\\' => escaped.push_str("\\\\"),
                        '\n' => escaped.push_str("\\n"),
                        '"' if format == OM => escaped.push_str("\\\""),
                        c => escaped.push(c),
                    }
                }
                out.push_str(&format!("# HELP {} {escaped}\n", render_name(metric)));
            }
            GeneratedEntry::Type(metric, kind) => {
                out.push_str(&format!(
                    "# TYPE {} {}\n",
                    render_name(metric),
                    kind.as_str()
                ));
            }
            GeneratedEntry::Unit(metric, unit) => {
                out.push_str(&format!("# UNIT {} {unit}\n", render_name(metric)));
            }
            GeneratedEntry::Sample(sample) => {
                if is_plain_metric_name(&sample.name) {
                    out.push_str(&sample.name);
                    out.push('{');
                } else {
                    out.push('{');
                    out.push_str(&quote(&sample.name));
                    if !sample.labels.is_empty() {
                        out.push(',');
                    }
                }
                render_label_set(&mut out, &sample.labels);
                out.push_str(&format!("}} {}", sample.value));
                if let Some(timestamp) = sample.timestamp_ms {
                    match format {
                        Text => out.push_str(&format!(" {timestamp}")),
                        OM => out.push_str(&format!(" {}", render_seconds(timestamp))),
                    }
                }
                if let Some((labels, value, timestamp)) = &sample.exemplar {
                    out.push_str(" # {");
                    render_label_set(&mut out, labels);
                    out.push_str(&format!("}} {value}"));
                    if let Some(timestamp) = timestamp {
                        out.push_str(&format!(" {}", render_seconds(*timestamp)));
                    }
                }
                out.push('\n');
            }
        }
    }
    if format == OM {
        out.push_str("# EOF\n");
    }
    out
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        "[a-z.\\-/ ]{1,8}",
        "\\PC{1,10}",
        "[\\\\\"\n a]{1,6}",
    ]
}

fn label_name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,10}",
        "\\PC{1,8}",
        "[\\\\\"\n a.]{1,6}"
    ]
}

fn label_value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_ ]{0,10}",
        "\\PC{0,10}",
        "[\\\\\"\n\r\t {},=#a]{0,8}"
    ]
}

fn label_set_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    // A map makes the names unique; the vector keeps a random order.
    proptest::collection::btree_map(label_name_strategy(), label_value_strategy(), 0..5)
        .prop_map(|map: BTreeMap<String, String>| map.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (0u32..1_000_000).prop_map(f64::from),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
    ]
}

fn sample_strategy(format: Format) -> impl Strategy<Value = GeneratedSample> {
    let exemplar = proptest::option::of((
        label_set_strategy(),
        value_strategy(),
        proptest::option::of(any::<i64>()),
    ));
    let exemplar = if format == OM {
        exemplar.boxed()
    } else {
        Just(None).boxed()
    };
    (
        name_strategy(),
        label_set_strategy(),
        value_strategy(),
        proptest::option::of(any::<i64>()),
        exemplar,
    )
        .prop_map(
            |(name, labels, value, timestamp_ms, exemplar)| GeneratedSample {
                name,
                labels,
                value,
                timestamp_ms,
                exemplar,
            },
        )
}

fn entry_strategy(format: Format) -> impl Strategy<Value = GeneratedEntry> {
    let kind = prop_oneof![
        Just(MetricType::Counter),
        Just(MetricType::Gauge),
        Just(MetricType::Histogram),
        Just(MetricType::GaugeHistogram),
        Just(MetricType::Summary),
        Just(MetricType::Info),
        Just(MetricType::StateSet),
        Just(MetricType::Unknown),
    ];
    // Help text may not start with whitespace (the separator run is
    // skipped), and in the text format may not end in '\r' (CRLF handling).
    let help_text = "([^ \t\r]\\PC{0,12})?|[\\\\\"\na]{0,6}";
    let unit = if format == OM {
        (name_strategy(), "[a-z_]{0,8}")
            .prop_map(|(metric, unit)| GeneratedEntry::Unit(metric, unit))
            .boxed()
    } else {
        (name_strategy(), kind.clone())
            .prop_map(|(metric, kind)| GeneratedEntry::Type(metric, kind))
            .boxed()
    };
    prop_oneof![
        1 => (name_strategy(), help_text).prop_map(|(metric, text)| GeneratedEntry::Help(metric, text)),
        1 => (name_strategy(), kind).prop_map(|(metric, kind)| GeneratedEntry::Type(metric, kind)),
        1 => unit,
        3 => sample_strategy(format).prop_map(GeneratedEntry::Sample),
    ]
}

fn borrowed_pairs(labels: &[(String, String)]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    labels
        .iter()
        .map(|(name, value)| (Cow::Borrowed(name.as_str()), Cow::Borrowed(value.as_str())))
        .collect()
}

fn expected_entry(entry: &GeneratedEntry) -> Entry<'_> {
    match entry {
        GeneratedEntry::Help(metric, text) => Entry::Help {
            metric: Cow::Borrowed(metric),
            text: Cow::Borrowed(text),
        },
        GeneratedEntry::Type(metric, kind) => Entry::Type {
            metric: Cow::Borrowed(metric),
            kind: *kind,
        },
        GeneratedEntry::Unit(metric, unit) => Entry::Unit {
            metric: Cow::Borrowed(metric),
            unit: Cow::Borrowed(unit),
        },
        GeneratedEntry::Sample(sample) => Entry::Sample {
            name: Cow::Borrowed(&sample.name),
            labels: borrowed_pairs(&sample.labels),
            value: sample.value,
            timestamp_ms: sample.timestamp_ms,
            exemplar: sample
                .exemplar
                .as_ref()
                .map(|(labels, value, timestamp)| Exemplar {
                    labels: borrowed_pairs(labels),
                    value: *value,
                    // Prometheus's exemplar time: the rendered seconds as
                    // a float, times 1000, truncated.
                    timestamp_ms: timestamp.map(|t| {
                        // (Beyond i64's range as a float, the exact time.)
                        let seconds: f64 = render_seconds(t).parse().unwrap();
                        let ms = seconds * 1000.0;
                        if ms.abs() < 9.2e18 { ms as i64 } else { t }
                    }),
                }),
        },
    }
}

fn format_and_entries() -> impl Strategy<Value = (Format, Vec<GeneratedEntry>)> {
    prop_oneof![Just(Text), Just(OM)].prop_flat_map(|format| {
        (
            Just(format),
            proptest::collection::vec(entry_strategy(format), 0..12),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rendered_expositions_parse_back_exactly((format, entries) in format_and_entries()) {
        let rendered = render(&entries, format);
        let parsed: Vec<Entry<'_>> = Parser::new(rendered.as_bytes(), format)
            .collect::<Result<_, _>>()
            .map_err(|error| TestCaseError::fail(format!("{error} in {rendered:?}")))?;
        let expected: Vec<Entry<'_>> = entries.iter().map(expected_entry).collect();
        // Debug renders NaN as NaN and f64s exactly (shortest round trip),
        // and -0.0 as -0.0, so string equality is exact equality here.
        prop_assert_eq!(format!("{parsed:?}"), format!("{expected:?}"), "input {:?}", rendered);
        let lazy = lazy_entries(rendered.as_bytes(), format)
            .map_err(|error| TestCaseError::fail(format!("{error} in {rendered:?} (lazy)")))?;
        prop_assert_eq!(format!("{lazy:?}"), format!("{expected:?}"), "input {:?} (lazy)", rendered);
    }

    /// On near-miss garbage, the lazy path (every series parsed, as on
    /// cache misses) reaches the same entries and the same error as the
    /// full parse.
    #[test]
    fn lazy_and_full_parses_agree_on_any_input(
        format in prop_oneof![Just(Text), Just(OM)],
        body in proptest::collection::vec(
            proptest::sample::select(&b"ab_:{}\"\\=, \t1.#\nEOFx\xff"[..]),
            0..80,
        ),
    ) {
        let full: Result<Vec<Entry<'_>>, ParseError> = Parser::new(&body, format).collect();
        let lazy = lazy_entries(&body, format);
        prop_assert_eq!(format!("{lazy:?}"), format!("{full:?}"), "input {:?}", String::from_utf8_lossy(&body));
    }

    /// The cache argument of [`LazySample`]: once a series text parsed,
    /// the same text on any other line (with any value, timestamp or
    /// surrounding whitespace) parses to the same name and labels.
    #[test]
    fn a_series_text_parses_the_same_on_every_line(
        format in prop_oneof![Just(Text), Just(OM)],
        lines in proptest::collection::vec(
            proptest::collection::vec(
                proptest::sample::select(&b"ab{}\"\\=, 1#"[..]),
                0..24,
            ),
            1..12,
        ),
    ) {
        let mut seen: std::collections::HashMap<Vec<u8>, String> = std::collections::HashMap::new();
        for line in &lines {
            // Each line is parsed on its own, as a scrape of one line.
            let Some(Ok(LazyEntry::Sample(sample))) = Parser::new(line, format).next_lazy() else {
                continue;
            };
            let parsed = sample.parse_series();
            if let Some(previous) = seen.get(sample.series()) {
                prop_assert_eq!(&format!("{parsed:?}"), previous, "line {:?}", String::from_utf8_lossy(line));
            } else if parsed.is_ok() {
                seen.insert(sample.series().to_vec(), format!("{parsed:?}"));
            }
        }
    }
}

/// The series text of the first sample of `input`, lazily parsed.
fn lazy_series(format: Format, input: &str) -> String {
    match Parser::new(input.as_bytes(), format).next_lazy() {
        Some(Ok(LazyEntry::Sample(sample))) => {
            String::from_utf8_lossy(sample.series()).into_owned()
        }
        other => panic!("{input:?}: no lazy sample but {other:?}"),
    }
}

#[test]
fn lazy_series_text_spans_name_and_label_set() {
    let cases = [
        (Text, "m 1", "m"),
        (Text, "  m\t1 123", "m"),
        (Text, "m{} 1", "m{}"),
        (Text, "m {a=\"1\"}  1", "m {a=\"1\"}"),
        // A `}` or an escaped quote inside a value does not end the set.
        (
            Text,
            r#"m{a="x}y",b="q\"}",c="\\"} 1"#,
            r#"m{a="x}y",b="q\"}",c="\\"}"#,
        ),
        (
            Text,
            r#"{"my.metric","la}bel"="v"} 2"#,
            r#"{"my.metric","la}bel"="v"}"#,
        ),
        (
            OM,
            "m_total{a=\"1\"} 1 2.5 # {t=\"}\"} 1\n# EOF\n",
            "m_total{a=\"1\"}",
        ),
    ];
    for (format, input, series) in cases {
        assert_eq!(lazy_series(format, input), series, "{format:?} {input:?}");
    }
}

#[test]
fn lazy_sample_parses_its_series_on_demand() {
    let input = r#"m{a="x}y",b="q\"}"} 1.5 7"#;
    let Some(Ok(LazyEntry::Sample(sample))) = Parser::new(input.as_bytes(), Text).next_lazy()
    else {
        panic!("no lazy sample");
    };
    assert_eq!(sample.value, 1.5);
    assert_eq!(sample.timestamp_ms, Some(7));
    let (name, labels) = sample.parse_series().expect("valid series");
    assert_eq!(name, "m");
    assert_eq!(labels, pairs(&[("a", "x}y"), ("b", "q\"}")]));
}

#[test]
fn lazy_errors_are_the_full_parse_errors() {
    // A broken label set is found when the series is parsed (a cache
    // miss), with the full parse's error.
    let input = b"ok 1\nm{a=\"1\",,b=\"2\"} 1\n";
    let mut parser = Parser::new(input, Text);
    assert!(matches!(parser.next_lazy(), Some(Ok(LazyEntry::Sample(_)))));
    let Some(Ok(LazyEntry::Sample(sample))) = parser.next_lazy() else {
        panic!("the value is valid, so the line scans");
    };
    let full_error = Parser::new(input, Text)
        .find_map(Result::err)
        .expect("the full parse fails");
    assert_eq!(sample.parse_series(), Err(full_error.clone()));
    assert_eq!(full_error.line, 2);
    // An error after the series, or one the scan itself meets, comes from
    // `next_lazy` with the full parse's message and column, even when the
    // series is broken too.
    for input in [
        &b"m{a=\"1\"} x\n"[..],
        b"m{a=\"1\",,} x\n",
        b"m{a=\"1\"\n",
        b"m{a=\"1} 1\n",
        b"m!{} 1\n",
        b"\"m\" 1\n",
    ] {
        let full_error = Parser::new(input, Text).find_map(Result::err);
        let lazy_error = Parser::new(input, Text).next_lazy().and_then(Result::err);
        assert!(full_error.is_some(), "{:?}", String::from_utf8_lossy(input));
        assert_eq!(
            lazy_error,
            full_error,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn identical_series_text_is_parsed_once_by_a_cache() {
    // Two scrapes of the same target, as a scrape cache keyed by the
    // series text sees them: each distinct text is parsed once.
    let scrapes = [
        "a{x=\"1\"} 1\na{x=\"2\"} 2\nb 3\n",
        "a{x=\"1\"} 4 1000\na{x=\"2\"} 5\nb 6\na {x=\"1\"} 7\n",
    ];
    let mut cache: std::collections::HashMap<Vec<u8>, String> = std::collections::HashMap::new();
    let mut parses = 0;
    let mut values = Vec::new();
    for body in scrapes {
        let mut parser = Parser::new(body.as_bytes(), Text);
        while let Some(entry) = parser.next_lazy() {
            let Ok(LazyEntry::Sample(sample)) = entry else {
                panic!("{body:?}: {entry:?}");
            };
            let series = cache.entry(sample.series().to_vec()).or_insert_with(|| {
                parses += 1;
                let (name, labels) = sample.parse_series().expect("valid");
                format!("{name}{labels:?}")
            });
            values.push((series.clone(), sample.value));
        }
    }
    // `a {x="1"}` is written differently, so it is a text of its own.
    assert_eq!(parses, 4);
    assert_eq!(values.len(), 7);
    assert_eq!(values[3], (values[0].0.clone(), 4.0));
    assert_eq!(values[6], (values[0].0.clone(), 7.0));
}

#[test]
fn exemplar_times_truncate_through_a_float_as_prometheus() {
    // Python's prometheus_client writes `time.time()`: 1796471756.2949998
    // is 1796471756294 ms in Prometheus (`int64(ts * 1000)`), while the
    // sample's own time rounds exactly.
    check(
        OM,
        "# TYPE c counter\nc_total 1 1796471756.2949998 # {trace_id=\"t\"} 1 1796471756.2949998\n# EOF\n",
        &[
            type_line("c", MetricType::Counter),
            sample_with_exemplar(
                "c_total",
                &[],
                1.0,
                Some(1_796_471_756_295),
                (&[("trace_id", "t")], 1.0, Some(1_796_471_756_294)),
            ),
        ],
    );
}

/// Every entry and the first error of `input`, parsed whole.
fn whole(input: &[u8], format: Format) -> Vec<Result<Entry<'_>, ParseError>> {
    Parser::new(input, format).collect()
}

/// The same, parsed as two fragments cut after the newline at `cut`, with
/// the second fragment's line numbers shifted by the first's lines.
fn cut_in_two(input: &[u8], format: Format, cut: usize) -> Vec<Result<Entry<'_>, ParseError>> {
    let (head, tail) = input.split_at(cut);
    let mut out: Vec<Result<Entry<'_>, ParseError>> =
        Parser::fragment(head, format, !tail.is_empty()).collect();
    if out.last().is_some_and(|r| r.is_err()) || tail.is_empty() {
        return out;
    }
    let before = head.iter().filter(|&&b| b == b'\n').count();
    out.extend(Parser::fragment(tail, format, false).map(|r| {
        r.map_err(|mut e| {
            e.line += before;
            e
        })
    }));
    out
}

#[test]
fn fragments_parse_as_the_whole_input() {
    let inputs: &[(&[u8], Format)] = &[
        (
            b"# TYPE a counter\na_total{x=\"1\"} 1 17.5\na_total{x=\"2\"} 2 18\n# EOF\n",
            Format::OpenMetrics,
        ),
        // `# EOF` in the middle: the error is at the line after it.
        (b"a 1 1\n# EOF\nb 2 2\nc 3 3\n# EOF\n", Format::OpenMetrics),
        (b"a 1 1\nb 2 2\n# EOF\n", Format::OpenMetrics),
        // No `# EOF` at all.
        (b"a 1 1\nb 2 2\nc 3 3\n", Format::OpenMetrics),
        // An error in the second half.
        (b"a 1 1\nb 2 2\nc{ 3 3\nd 4 4\n# EOF\n", Format::OpenMetrics),
        (b"a 1\n# comment\n\nb{x=\"y\"} 2 3\nc 3\n", Format::Text),
    ];
    for &(input, format) in inputs {
        let expected = whole(input, format);
        for (i, &byte) in input.iter().enumerate() {
            if byte == b'\n' {
                assert_eq!(
                    cut_in_two(input, format, i + 1),
                    expected,
                    "{} cut after byte {i}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}

/// Every entry of a lazy parse, each series parsed, up to the first error.
fn lazy_entries_of<'a>(mut parser: Parser<'a>) -> Vec<Result<Entry<'a>, ParseError>> {
    let mut out = Vec::new();
    while let Some(entry) = parser.next_lazy() {
        let entry = entry.and_then(|entry| match entry {
            LazyEntry::Help { metric, text } => Ok(Entry::Help { metric, text }),
            LazyEntry::Type { metric, kind } => Ok(Entry::Type { metric, kind }),
            LazyEntry::Unit { metric, unit } => Ok(Entry::Unit { metric, unit }),
            LazyEntry::Sample(sample) => {
                sample.parse_series().map(|(name, labels)| Entry::Sample {
                    name,
                    labels,
                    value: sample.value,
                    timestamp_ms: sample.timestamp_ms,
                    exemplar: sample.exemplar.map(|exemplar| *exemplar),
                })
            }
        });
        let failed = entry.is_err();
        out.push(entry);
        if failed {
            break;
        }
    }
    out
}

#[test]
fn reusing_the_previous_series_changes_nothing() {
    let inputs: &[&[u8]] = &[
        b"up 1\nup 2\nup{a=\"b\"} 3\nup {a=\"b\"} 4\nupx 5\nup 6\nup\t7\n",
        b"up{a=\"b\"} 1\nup{a=\"b\"} 2\nup{a=\"b\"}} 3\n",
        b"up{a=\"}\"} 1\nup{a=\"}\"} 2\nup{a=\"}\",c=\"d\"} 3\n",
        b"up{a=\"b\"} 1\nup{a=\"b\"}2\n",
        b"up{a=\"b\"} 1\nup{a=\"b\"}\n",
        b"up 1\nup\n",
        b"up 1\nup \n",
        b"up 1\nup  {a=\"b\"} 2\n",
        b"{\"my.name\"} 1\n{\"my.name\"} 2\n{\"my.name\",a=\"b\"} 3\n",
        b"up{a=\"b\",a=\"c\"} 1\nup{a=\"b\",a=\"c\"} 2\n",
        b"a{x=\"1\"} 1 1\na{x=\"1\"} 2 2 # {t=\"a\"} 1 1\na{x=\"1\"} 3 3\n",
    ];
    for &input in inputs {
        for format in [Format::Text, Format::OpenMetrics] {
            let mut body = input.to_vec();
            if format == Format::OpenMetrics {
                body.extend_from_slice(b"# EOF\n");
            }
            let plain = lazy_entries_of(Parser::new(&body, format));
            let reused = lazy_entries_of(Parser::new(&body, format).reuse_series());
            assert_eq!(
                format!("{reused:?}"),
                format!("{plain:?}"),
                "{format:?}: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(
                format!("{plain:?}"),
                format!("{:?}", whole(&body, format)),
                "{format:?}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
