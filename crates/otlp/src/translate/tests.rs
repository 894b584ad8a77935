//! The translation table of docs/otlp.md, written from Prometheus's
//! documentation of its OTLP receiver (`translation_strategy`, the unit
//! and type suffixes, `job`/`instance`, `target_info`,
//! `promote_resource_attributes`) and the OpenTelemetry specification's
//! Prometheus compatibility section.

use super::*;
use crate::proto::*;

use TranslationStrategy::*;

#[test]
fn metric_names_follow_the_strategy_table() {
    let cases: &[(&str, &str, Kind, TranslationStrategy, &str)] = &[
        // Dots and other characters become `_`, the unit is spelled out.
        (
            "http.server.request.duration",
            "s",
            Kind::Histogram,
            UnderscoreEscapingWithSuffixes,
            "http_server_request_duration_seconds",
        ),
        // Annotations in braces add nothing; an up-down counter is no counter.
        (
            "http.server.active_requests",
            "{request}",
            Kind::NonMonotonicCounter,
            UnderscoreEscapingWithSuffixes,
            "http_server_active_requests",
        ),
        (
            "system.network.io",
            "By",
            Kind::MonotonicCounter,
            UnderscoreEscapingWithSuffixes,
            "system_network_io_bytes_total",
        ),
        // Unit "1": nothing for counters, `_ratio` for gauges.
        (
            "requests",
            "1",
            Kind::MonotonicCounter,
            UnderscoreEscapingWithSuffixes,
            "requests_total",
        ),
        (
            "cpu.utilization",
            "1",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "cpu_utilization_ratio",
        ),
        (
            "memory.used",
            "%",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "memory_used_percent",
        ),
        // `/` units become `per_`.
        (
            "throughput",
            "By/s",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "throughput_bytes_per_second",
        ),
        (
            "speed",
            "m/h",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "speed_meters_per_hour",
        ),
        (
            "rate",
            "x/y",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "rate_x_per_year",
        ),
        (
            "rate",
            "x/z",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "rate_x_per_z",
        ),
        (
            "temperature",
            "Cel",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "temperature_celsius",
        ),
        // A suffix already in the name is not repeated; `total` moves last.
        (
            "latency_seconds",
            "s",
            Kind::Histogram,
            UnderscoreEscapingWithSuffixes,
            "latency_seconds",
        ),
        (
            "requests_total",
            "",
            Kind::MonotonicCounter,
            UnderscoreEscapingWithSuffixes,
            "requests_total",
        ),
        (
            "foo.total.count",
            "",
            Kind::MonotonicCounter,
            UnderscoreEscapingWithSuffixes,
            "foo_count_total",
        ),
        // Runs of invalid characters and `_` collapse; a digit start gets `_`.
        (
            "foo__bar..baz",
            "",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "foo_bar_baz",
        ),
        (
            "2xx.responses",
            "",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "_2xx_responses",
        ),
        (
            "ns:metric",
            "",
            Kind::Gauge,
            UnderscoreEscapingWithSuffixes,
            "ns:metric",
        ),
        (
            "summary.rpc",
            "ms",
            Kind::Summary,
            UnderscoreEscapingWithSuffixes,
            "summary_rpc_milliseconds",
        ),
        // Without suffixes: escaped only, `_` runs kept.
        (
            "http.server.request.duration",
            "s",
            Kind::Histogram,
            UnderscoreEscapingWithoutSuffixes,
            "http_server_request_duration",
        ),
        (
            "foo__bar.baz",
            "By",
            Kind::MonotonicCounter,
            UnderscoreEscapingWithoutSuffixes,
            "foo__bar_baz",
        ),
        // UTF-8 kept, suffixes added.
        (
            "http.server.request.duration",
            "s",
            Kind::Histogram,
            NoUTF8EscapingWithSuffixes,
            "http.server.request.duration_seconds",
        ),
        (
            "requests.total",
            "1",
            Kind::MonotonicCounter,
            NoUTF8EscapingWithSuffixes,
            "requests_total",
        ),
        (
            "cpu.utilization",
            "1",
            Kind::Gauge,
            NoUTF8EscapingWithSuffixes,
            "cpu.utilization_ratio",
        ),
        (
            "io",
            "By/s",
            Kind::MonotonicCounter,
            NoUTF8EscapingWithSuffixes,
            "io_bytes_per_second_total",
        ),
        // Nothing changed at all.
        (
            "http.server.request.duration",
            "s",
            Kind::Histogram,
            NoTranslation,
            "http.server.request.duration",
        ),
        (
            "requests",
            "1",
            Kind::MonotonicCounter,
            NoTranslation,
            "requests",
        ),
    ];
    for (name, unit, kind, strategy, want) in cases {
        let got = metric_name(name, unit, *kind, *strategy);
        assert_eq!(
            got.as_deref(),
            Ok(*want),
            "{name} {unit} {kind:?} {strategy:?}"
        );
    }
    assert!(metric_name("...", "", Kind::Gauge, UnderscoreEscapingWithSuffixes).is_err());
    assert!(metric_name("", "", Kind::Gauge, NoTranslation).is_err());
}

#[test]
fn label_names_follow_the_strategy_table() {
    let cases: &[(&str, TranslationStrategy, Result<&str, ()>)] = &[
        (
            "http.method",
            UnderscoreEscapingWithSuffixes,
            Ok("http_method"),
        ),
        (
            "http.response.status_code",
            UnderscoreEscapingWithSuffixes,
            Ok("http_response_status_code"),
        ),
        ("1st", UnderscoreEscapingWithSuffixes, Ok("key_1st")),
        (
            "_private",
            UnderscoreEscapingWithSuffixes,
            Ok("key_private"),
        ),
        (
            "__reserved",
            UnderscoreEscapingWithSuffixes,
            Ok("__reserved"),
        ),
        ("a..b", UnderscoreEscapingWithSuffixes, Ok("a__b")),
        ("...", UnderscoreEscapingWithSuffixes, Err(())),
        ("", UnderscoreEscapingWithSuffixes, Err(())),
        ("http.method", NoUTF8EscapingWithSuffixes, Ok("http.method")),
        ("http.method", NoTranslation, Ok("http.method")),
        ("__", NoTranslation, Err(())),
    ];
    for (key, strategy, want) in cases {
        let got = label_name(key, *strategy).map_err(|_| ());
        assert_eq!(got.as_deref(), want.as_deref(), "{key} {strategy:?}");
    }
    // The two label settings turned off.
    let naming = LabelNaming {
        strategy: UnderscoreEscapingWithSuffixes,
        underscore_sanitization: false,
        preserve_multiple_underscores: false,
    };
    for (key, want) in [
        ("a..b", "a_b"),
        ("a__b", "a_b"),
        ("_private", "_private"),
        ("__reserved__", "__reserved__"),
        ("__a..b__", "__a_b__"),
        ("1st", "key_1st"),
    ] {
        assert_eq!(label_name_with(key, naming).as_deref(), Ok(want), "{key}");
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_string()))
}

const T: u64 = 1_700_000_000_123_456_789;
const T_MS: i64 = 1_700_000_000_123;

fn number(attrs: Vec<KeyValue>, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: T - 10_000_000_000,
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(v)),
        exemplars: Vec::new(),
        flags: 0,
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
                schema_url: String::new(),
            }],
        }],
    }
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.to_string(),
        description: String::new(),
        unit: unit.to_string(),
        data: Some(data),
    }
}

fn lines(t: &Translated) -> Vec<String> {
    let mut out: Vec<String> = t
        .samples
        .iter()
        .map(|(l, ts, v)| format!("{l} {v} @{ts}"))
        .collect();
    out.sort();
    out
}

#[test]
fn resources_points_and_types_become_the_series_prometheus_stores() {
    let resource = vec![
        s("service.name", "checkout"),
        s("service.namespace", "shop"),
        s("service.instance.id", "pod-7"),
        s("host.name", "node-1"),
        kv("k8s.pod.restarts", any_value::Value::IntValue(3)),
    ];
    let metrics = vec![
        metric(
            "http.server.requests",
            "{request}",
            metric::Data::Sum(Sum {
                data_points: vec![number(
                    vec![
                        s("http.method", "GET"),
                        kv("http.status_code", any_value::Value::IntValue(200)),
                    ],
                    7.0,
                )],
                aggregation_temporality: TEMPORALITY_CUMULATIVE,
                is_monotonic: true,
            }),
        ),
        metric(
            "queue.depth",
            "",
            metric::Data::Sum(Sum {
                data_points: vec![number(vec![], -2.0)],
                aggregation_temporality: TEMPORALITY_CUMULATIVE,
                is_monotonic: false,
            }),
        ),
        metric(
            "gpu.utilization",
            "1",
            metric::Data::Gauge(Gauge {
                data_points: vec![number(
                    vec![
                        kv("gpu", any_value::Value::IntValue(0)),
                        s("a.b", "x"),
                        s("a_b", "y"),
                    ],
                    0.5,
                )],
            }),
        ),
        metric(
            "step.duration",
            "s",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![],
                    start_time_unix_nano: T - 1,
                    time_unix_nano: T,
                    count: 6,
                    sum: Some(9.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.5, 2.0],
                    exemplars: vec![],
                    flags: 0,
                }],
                aggregation_temporality: TEMPORALITY_CUMULATIVE,
            }),
        ),
        metric(
            "rpc.latency",
            "ms",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    attributes: vec![],
                    start_time_unix_nano: 0,
                    time_unix_nano: T,
                    count: 4,
                    sum: 10.0,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.99,
                        value: 4.0,
                    }],
                    flags: 0,
                }],
            }),
        ),
    ];
    let translator = Translator::new(TranslationOptions::prometheus_defaults());
    let got = translator.translate(&request(resource.clone(), metrics.clone()));
    assert_eq!(got.rejected_points, 0, "{:?}", got.errors);
    let ji = "instance=\"pod-7\", job=\"shop/checkout\"";
    let want = [
        format!("gpu_utilization_ratio{{a_b=\"x;y\", gpu=\"0\", {ji}}} 0.5 @{T_MS}"),
        format!(
            "http_server_requests_total{{http_method=\"GET\", http_status_code=\"200\", {ji}}} 7 @{T_MS}"
        ),
        format!("queue_depth{{{ji}}} -2 @{T_MS}"),
        format!("rpc_latency_milliseconds_count{{{ji}}} 4 @{T_MS}"),
        format!("rpc_latency_milliseconds_sum{{{ji}}} 10 @{T_MS}"),
        format!("rpc_latency_milliseconds{{{ji}, quantile=\"0.99\"}} 4 @{T_MS}"),
        format!("step_duration_seconds_bucket{{{ji}, le=\"+Inf\"}} 6 @{T_MS}"),
        format!("step_duration_seconds_bucket{{{ji}, le=\"0.5\"}} 1 @{T_MS}"),
        format!("step_duration_seconds_bucket{{{ji}, le=\"2\"}} 3 @{T_MS}"),
        format!("step_duration_seconds_count{{{ji}}} 6 @{T_MS}"),
        format!("step_duration_seconds_sum{{{ji}}} 9.5 @{T_MS}"),
        format!("target_info{{host_name=\"node-1\", {ji}, k8s_pod_restarts=\"3\"}} 1 @{T_MS}"),
    ];
    let mut want: Vec<String> = want.to_vec();
    want.sort();
    assert_eq!(lines(&got), want);

    // Promoted attributes join every series (point attributes win);
    // identifying attributes kept in target_info on request.
    let translator = Translator::new(TranslationOptions {
        strategy: UnderscoreEscapingWithSuffixes,
        promote_resource_attributes: vec!["host.name".to_string(), "absent".to_string()],
        keep_identifying_resource_attributes: true,
        ..TranslationOptions::prometheus_defaults()
    });
    let got = translator.translate(&request(resource, vec![metrics[2].clone()]));
    assert_eq!(
        lines(&got),
        [
            format!(
                "gpu_utilization_ratio{{a_b=\"x;y\", gpu=\"0\", host_name=\"node-1\", {ji}}} 0.5 @{T_MS}"
            ),
            format!(
                "target_info{{host_name=\"node-1\", {ji}, k8s_pod_restarts=\"3\", service_instance_id=\"pod-7\", service_name=\"checkout\", service_namespace=\"shop\"}} 1 @{T_MS}"
            ),
        ]
    );
}

#[test]
fn delta_points_are_summed_into_cumulative_series_once_stored() {
    let translator = Translator::new(TranslationOptions::prometheus_defaults());
    let delta_sum = |v: f64| {
        request(
            vec![s("service.name", "svc")],
            vec![metric(
                "jobs.done",
                "",
                metric::Data::Sum(Sum {
                    data_points: vec![number(vec![], v)],
                    aggregation_temporality: TEMPORALITY_DELTA,
                    is_monotonic: true,
                }),
            )],
        )
    };
    let mut first = translator.translate(&delta_sum(3.0));
    assert_eq!(
        lines(&first),
        [format!("jobs_done_total{{job=\"svc\"}} 3 @{T_MS}")]
    );
    // Not applied (the commit failed): the retry counts from the same base.
    let mut retried = translator.translate(&delta_sum(3.0));
    assert_eq!(
        lines(&retried),
        [format!("jobs_done_total{{job=\"svc\"}} 3 @{T_MS}")]
    );
    translator.apply(&mut retried);
    let second = translator.translate(&delta_sum(4.0));
    assert_eq!(
        lines(&second),
        [format!("jobs_done_total{{job=\"svc\"}} 7 @{T_MS}")]
    );
    translator.apply(&mut first);

    let delta_histogram = |counts: Vec<u64>, bounds: Vec<f64>| {
        request(
            vec![s("service.name", "svc")],
            vec![metric(
                "d",
                "",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: vec![],
                        start_time_unix_nano: 0,
                        time_unix_nano: T,
                        count: counts.iter().sum(),
                        sum: Some(1.0),
                        bucket_counts: counts,
                        explicit_bounds: bounds,
                        exemplars: vec![],
                        flags: 0,
                    }],
                    aggregation_temporality: TEMPORALITY_DELTA,
                }),
            )],
        )
    };
    let mut a = translator.translate(&delta_histogram(vec![1, 1], vec![1.0]));
    translator.apply(&mut a);
    let mut b = translator.translate(&delta_histogram(vec![2, 0], vec![1.0]));
    assert_eq!(
        lines(&b),
        [
            format!("d_bucket{{job=\"svc\", le=\"+Inf\"}} 4 @{T_MS}"),
            format!("d_bucket{{job=\"svc\", le=\"1\"}} 3 @{T_MS}"),
            format!("d_count{{job=\"svc\"}} 4 @{T_MS}"),
            format!("d_sum{{job=\"svc\"}} 2 @{T_MS}"),
        ]
    );
    translator.apply(&mut b);
    // New bounds start over.
    let c = translator.translate(&delta_histogram(vec![1, 0, 0], vec![1.0, 2.0]));
    assert!(lines(&c).contains(&format!("d_count{{job=\"svc\"}} 1 @{T_MS}")));
}

#[test]
fn bad_points_are_counted_for_partial_success_and_the_rest_kept() {
    let translator = Translator::new(TranslationOptions::prometheus_defaults());
    let mut zero_time = number(vec![], 1.0);
    zero_time.time_unix_nano = 0;
    let got = translator.translate(&request(
        vec![],
        vec![
            metric(
                "ok",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(vec![], 1.0)],
                }),
            ),
            metric(
                "...",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(vec![], 1.0), number(vec![], 2.0)],
                }),
            ),
            metric(
                "no.time",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![zero_time],
                }),
            ),
            metric(
                "bad.histogram",
                "",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: T,
                        bucket_counts: vec![1, 2, 3],
                        explicit_bounds: vec![1.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: TEMPORALITY_CUMULATIVE,
                }),
            ),
            metric(
                "unspecified",
                "",
                metric::Data::Sum(Sum {
                    data_points: vec![number(vec![], 1.0)],
                    aggregation_temporality: 0,
                    is_monotonic: true,
                }),
            ),
            metric(
                "bad.label",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(vec![s("...", "x")], 1.0)],
                }),
            ),
        ],
    ));
    assert_eq!(lines(&got), [format!("ok 1 @{T_MS}")]);
    assert_eq!(got.rejected_points, 6, "{:?}", got.errors);
    assert_eq!(got.errors.len(), 5, "{:?}", got.errors);
}

#[test]
fn no_recorded_value_is_a_staleness_marker() {
    let translator = Translator::new(TranslationOptions::prometheus_defaults());
    let mut p = number(vec![], 1.0);
    p.flags = FLAG_NO_RECORDED_VALUE;
    let got = translator.translate(&request(
        vec![],
        vec![metric(
            "g",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![p],
            }),
        )],
    ));
    assert_eq!(got.samples.len(), 1);
    assert!(model::is_stale_nan(got.samples[0].2));
}

#[test]
fn exponential_histograms_become_classic_buckets_at_their_upper_bounds() {
    // Scale 0: base 2. Positive offset 0 covers (1,2], (2,4]; negative
    // offset 1 covers [-4,-2); zero bucket [-0.5, 0.5].
    let p = ExponentialHistogramDataPoint {
        time_unix_nano: T,
        count: 10,
        sum: Some(3.0),
        scale: 0,
        zero_count: 1,
        zero_threshold: 0.5,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![3, 4],
        }),
        negative: Some(Buckets {
            offset: 1,
            bucket_counts: vec![2],
        }),
        ..Default::default()
    };
    let classic = exponential_to_classic(&p).expect("convert");
    assert_eq!(classic.explicit_bounds, [-2.0, 0.5, 2.0, 4.0]);
    assert_eq!(classic.bucket_counts, [2, 1, 3, 4, 0]);
    let translator = Translator::new(TranslationOptions::prometheus_defaults());
    let got = translator.translate(&request(
        vec![],
        vec![metric(
            "e",
            "s",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![p],
                aggregation_temporality: TEMPORALITY_CUMULATIVE,
            }),
        )],
    ));
    assert_eq!(
        lines(&got),
        [
            format!("e_seconds_bucket{{le=\"+Inf\"}} 10 @{T_MS}"),
            format!("e_seconds_bucket{{le=\"-2\"}} 2 @{T_MS}"),
            format!("e_seconds_bucket{{le=\"0.5\"}} 3 @{T_MS}"),
            format!("e_seconds_bucket{{le=\"2\"}} 6 @{T_MS}"),
            format!("e_seconds_bucket{{le=\"4\"}} 10 @{T_MS}"),
            format!("e_seconds_count 10 @{T_MS}"),
            format!("e_seconds_sum 3 @{T_MS}"),
        ]
    );
}

#[test]
fn json_and_protobuf_bodies_decode_to_the_same_request() {
    use prost::Message as _;
    let json = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}},{"key":"n","value":{"intValue":"5"}}]},
      "scopeMetrics":[{"scope":{"name":"s"},"metrics":[
        {"name":"c","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"timeUnixNano":"1700000000123456789","asInt":"42","attributes":[{"key":"b","value":{"boolValue":true}}]}]}},
        {"name":"g","gauge":{"dataPoints":[{"timeUnixNano":1700000000123456789,"asDouble":"NaN"}]}},
        {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"1700000000123456789","count":"3","sum":1.5,"bucketCounts":["1","2"],"explicitBounds":[1]}]}}
      ]}]}]}"#;
    let from_json = crate::decode_json(json).expect("json");
    let bytes = from_json.encode_to_vec();
    let from_proto = crate::decode_protobuf(&bytes).expect("protobuf");
    // NaN != NaN: compare the debug text.
    assert_eq!(format!("{from_json:?}"), format!("{from_proto:?}"));
    let got = Translator::new(TranslationOptions::prometheus_defaults()).translate(&from_json);
    assert_eq!(got.rejected_points, 0, "{:?}", got.errors);
    let text = lines(&got);
    assert!(
        text.contains(&format!("c_total{{b=\"true\", job=\"svc\"}} 42 @{T_MS}")),
        "{text:?}"
    );
    assert!(
        text.contains(&format!("h_bucket{{job=\"svc\", le=\"1\"}} 1 @{T_MS}")),
        "{text:?}"
    );
    assert!(
        text.contains(&format!("target_info{{job=\"svc\", n=\"5\"}} 1 @{T_MS}")),
        "{text:?}"
    );
    assert!(crate::decode_json(b"{\"resourceMetrics\":[{\"scopeMetrics\":5}]}").is_err());
    assert!(crate::decode_json(b"not json").is_err());
    assert!(crate::decode_protobuf(b"\x0a\xff\xff").is_err());
}

#[test]
fn target_info_spans_the_resource_s_samples() {
    let mut early = number(vec![], 1.0);
    early.time_unix_nano = T - 600_000_000_000; // ten minutes before
    let got = Translator::new(TranslationOptions::prometheus_defaults()).translate(&request(
        vec![s("service.name", "svc"), s("host.name", "h")],
        vec![metric(
            "g",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![early, number(vec![], 2.0)],
            }),
        )],
    ));
    let info: Vec<i64> = got
        .samples
        .iter()
        .filter(|(l, _, _)| l.metric_name() == Some("target_info"))
        .map(|(_, t, _)| *t)
        .collect();
    assert_eq!(info, [T_MS - 600_000, T_MS - 300_000, T_MS]);
}

#[test]
fn promote_all_resource_attributes_and_scope_metadata() {
    let options = TranslationOptions {
        promote_all_resource_attributes: true,
        ignore_resource_attributes: vec![
            "service.instance.id".to_string(),
            "host.name".to_string(),
        ],
        promote_scope_metadata: true,
        ..TranslationOptions::prometheus_defaults()
    };
    let mut req = request(
        vec![
            s("service.name", "svc"),
            s("service.instance.id", "i-1"),
            s("host.name", "h"),
            s("cloud.region", "eu"),
        ],
        vec![metric(
            "g",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![number(vec![], 1.0)],
            }),
        )],
    );
    req.resource_metrics[0].scope_metrics[0].scope = Some(InstrumentationScope {
        name: "io.lib".to_string(),
        version: "1.2".to_string(),
        attributes: vec![s("tier", "gold")],
    });
    req.resource_metrics[0].scope_metrics[0].schema_url = "https://example/1.0".to_string();
    let got = Translator::new(options).translate(&req);
    let g = lines(&got)
        .into_iter()
        .find(|l| l.starts_with("g{"))
        .expect("g");
    assert_eq!(
        g,
        format!(
            "g{{cloud_region=\"eu\", instance=\"i-1\", job=\"svc\", otel_scope_name=\"io.lib\", otel_scope_schema_url=\"https://example/1.0\", otel_scope_tier=\"gold\", otel_scope_version=\"1.2\", service_name=\"svc\"}} 1 @{T_MS}"
        )
    );
}

fn otlp_exemplar(value: f64, trace: &[u8], span: &[u8], attrs: Vec<KeyValue>) -> proto::Exemplar {
    proto::Exemplar {
        filtered_attributes: attrs,
        time_unix_nano: T,
        value: Some(proto::exemplar::Value::AsDouble(value)),
        span_id: span.to_vec(),
        trace_id: trace.to_vec(),
    }
}

/// Each exemplar as `series trace_id span_id other-labels value @ms`.
fn exemplar_lines(t: &Translated) -> Vec<String> {
    t.exemplars
        .iter()
        .map(|(series, e)| format!("{series} {} {} @{}", e.labels, e.value, e.timestamp_ms))
        .collect()
}

#[test]
fn exemplars_translate_as_prometheus_3() {
    let trace: Vec<u8> = (1..=16).collect();
    let span: Vec<u8> = (0xa1..=0xa8).collect();
    let mut counter = number(vec![], 7.0);
    counter.exemplars = vec![
        // An int value; ids in lowercase hex.
        proto::Exemplar {
            value: Some(proto::exemplar::Value::AsInt(3)),
            ..otlp_exemplar(0.0, &trace, &span, vec![s("user", "ada")])
        },
        // All-zero ids are no ids; attributes past 128 runes are dropped.
        otlp_exemplar(1.5, &[0; 16], &[0; 8], vec![s("note", &"x".repeat(130))]),
    ];
    let histogram = HistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: T - 1,
        time_unix_nano: T,
        count: 6,
        sum: Some(9.5),
        bucket_counts: vec![1, 2, 3],
        explicit_bounds: vec![0.5, 2.0],
        // Out of order on purpose: assigned to buckets by value.
        exemplars: vec![
            otlp_exemplar(7.0, &trace, &[], vec![]),
            otlp_exemplar(0.5, &trace, &[], vec![]),
            otlp_exemplar(1.0, &[], &span, vec![]),
        ],
        flags: 0,
    };
    let metrics = vec![
        metric(
            "jobs",
            "",
            metric::Data::Sum(Sum {
                data_points: vec![counter],
                aggregation_temporality: TEMPORALITY_CUMULATIVE,
                is_monotonic: true,
            }),
        ),
        metric(
            "step.duration",
            "s",
            metric::Data::Histogram(Histogram {
                data_points: vec![histogram],
                aggregation_temporality: TEMPORALITY_CUMULATIVE,
            }),
        ),
    ];
    let translator = Translator::new(TranslationOptions::prometheus_defaults());
    let got = translator.translate(&request(vec![s("service.name", "svc")], metrics));
    let hex_trace = "0102030405060708090a0b0c0d0e0f10";
    let hex_span = "a1a2a3a4a5a6a7a8";
    assert_eq!(
        exemplar_lines(&got),
        [
            format!(
                "jobs_total{{job=\"svc\"}} {{span_id=\"{hex_span}\", trace_id=\"{hex_trace}\", user=\"ada\"}} 3 @{T_MS}"
            ),
            format!("jobs_total{{job=\"svc\"}} {{}} 1.5 @{T_MS}"),
            format!(
                "step_duration_seconds_bucket{{job=\"svc\", le=\"0.5\"}} {{trace_id=\"{hex_trace}\"}} 0.5 @{T_MS}"
            ),
            format!(
                "step_duration_seconds_bucket{{job=\"svc\", le=\"2\"}} {{span_id=\"{hex_span}\"}} 1 @{T_MS}"
            ),
            format!(
                "step_duration_seconds_bucket{{job=\"svc\", le=\"+Inf\"}} {{trace_id=\"{hex_trace}\"}} 7 @{T_MS}"
            ),
        ]
    );
    assert!(got.exemplars.iter().all(|(_, e)| e.has_timestamp));
}
