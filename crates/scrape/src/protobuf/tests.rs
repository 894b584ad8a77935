use super::*;

fn label(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: Some(name.to_string()),
        value: Some(value.to_string()),
    }
}

fn span(offset: i32, length: u32) -> BucketSpan {
    BucketSpan {
        offset: Some(offset),
        length: Some(length),
    }
}

const ALL: FlattenOptions = FlattenOptions {
    native: true,
    classic_with_native: false,
    nhcb: false,
};

#[test]
fn labels_format_numbers_as_prometheus_protobuf_parser() {
    for (f, text) in [
        (1.0, "1.0"),
        (0.25, "0.25"),
        (0.0, "0.0"),
        (-2.0, "-2.0"),
        (100000.0, "100000.0"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (-2.5e-7, "-2.5e-07"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(format_openmetrics_float(f), text, "{f}");
    }
}

#[test]
fn content_types() {
    assert!(is_protobuf_content_type(
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    ));
    assert!(is_protobuf_content_type(
        "application/vnd.google.protobuf;encoding=delimited;proto=io.prometheus.client.MetricFamily"
    ));
    assert!(!is_protobuf_content_type(
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text"
    ));
    assert!(!is_protobuf_content_type("text/plain; version=0.0.4"));
}

#[test]
fn integer_native_histograms_decode_and_classic_series_follow_the_options() {
    let metric = Metric {
        label: vec![label("path", "/")],
        histogram: Some(Histogram {
            sample_count: Some(5),
            sample_sum: Some(3.5),
            schema: Some(1),
            zero_threshold: Some(0.001),
            zero_count: Some(1),
            positive_span: vec![span(0, 2), span(1, 1)],
            positive_delta: vec![1, 0, 0],
            negative_span: vec![span(-1, 1)],
            negative_delta: vec![1],
            bucket: vec![Bucket {
                cumulative_count: Some(2),
                upper_bound: Some(1.0),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let samples = flatten("h", HISTOGRAM, &metric, ALL).expect("flatten");
    assert_eq!(samples.len(), 1);
    let ProtoValue::Histogram(h) = &samples[0].value else {
        panic!("{samples:?}")
    };
    assert_eq!((h.schema, h.count, h.zero_count), (1, 5, 1));
    assert_eq!(h.positive_buckets, vec![1, 0, 0]);
    assert_eq!(
        h.positive_spans[1],
        Span {
            offset: 1,
            length: 1
        }
    );

    let with_classic = FlattenOptions {
        classic_with_native: true,
        ..ALL
    };
    let samples = flatten("h", HISTOGRAM, &metric, with_classic).expect("flatten");
    let names: Vec<_> = samples
        .iter()
        .map(|s| (s.suffix, s.extra.map(|(_, b)| b)))
        .collect();
    assert_eq!(
        names,
        [
            ("", None),
            ("_bucket", Some(1.0)),
            ("_bucket", Some(f64::INFINITY)),
            ("_sum", None),
            ("_count", None)
        ]
    );
    // Without native histograms only the classic series remain.
    let classic_only = FlattenOptions {
        native: false,
        ..ALL
    };
    let samples = flatten("h", HISTOGRAM, &metric, classic_only).expect("flatten");
    assert_eq!(samples.len(), 4);
    assert!(
        samples
            .iter()
            .all(|s| matches!(s.value, ProtoValue::Float(_)))
    );
}

#[test]
fn native_histograms_carry_their_timestamped_exemplars() {
    let with_time = |value: f64, seconds: i64| ProtoExemplar {
        label: vec![label("trace_id", &format!("t{value}"))],
        value: Some(value),
        timestamp: Some(Timestamp { seconds, nanos: 0 }),
    };
    let metric = Metric {
        histogram: Some(Histogram {
            sample_count: Some(1),
            schema: Some(0),
            zero_threshold: Some(1e-128),
            positive_span: vec![span(0, 1)],
            positive_delta: vec![1],
            exemplars: vec![
                with_time(2.0, 20),
                with_time(1.0, 10),
                ProtoExemplar {
                    value: Some(3.0),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    let samples = flatten("h", HISTOGRAM, &metric, ALL).expect("flatten");
    let values: Vec<(f64, Option<i64>)> = samples[0]
        .exemplars
        .iter()
        .map(|e| (e.value, e.timestamp_ms))
        .collect();
    assert_eq!(values, [(1.0, Some(10_000)), (2.0, Some(20_000))]);
}

#[test]
fn float_native_histograms_and_invalid_ones() {
    let mut h = Histogram {
        sample_count_float: Some(2.5),
        sample_sum: Some(1.0),
        schema: Some(0),
        positive_span: vec![span(0, 2)],
        positive_count: vec![1.5, 1.0],
        ..Default::default()
    };
    let metric = |h: &Histogram| Metric {
        histogram: Some(h.clone()),
        ..Default::default()
    };
    let samples = flatten("g", GAUGE_HISTOGRAM, &metric(&h), ALL).expect("flatten");
    let ProtoValue::FloatHistogram(f) = &samples[0].value else {
        panic!("{samples:?}")
    };
    assert_eq!(f.counter_reset_hint, CounterResetHint::Gauge);
    assert_eq!(f.positive_buckets, vec![1.5, 1.0]);
    // Spans that need more buckets than given.
    h.positive_span = vec![span(0, 3)];
    assert!(flatten("g", GAUGE_HISTOGRAM, &metric(&h), ALL).is_err());
    let bad_schema = Histogram {
        sample_count: Some(0),
        schema: Some(9),
        positive_span: vec![span(0, 0)],
        ..Default::default()
    };
    assert!(flatten("g", HISTOGRAM, &metric(&bad_schema), ALL).is_err());
}

#[test]
fn classic_histograms_become_custom_bucket_histograms() {
    let h = Histogram {
        sample_count: Some(10),
        sample_sum: Some(12.0),
        bucket: [(0.5, 2), (1.0, 2), (5.0, 7)]
            .iter()
            .map(|&(bound, n)| Bucket {
                cumulative_count: Some(n),
                upper_bound: Some(bound),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let ProtoValue::Histogram(n) = classic_to_nhcb(&h, false).expect("nhcb") else {
        panic!("integer expected")
    };
    assert_eq!(n.schema, CUSTOM_BUCKETS_SCHEMA);
    assert_eq!(n.custom_values, vec![0.5, 1.0, 5.0]);
    // Buckets 0 (2), 2 (5) and 3 (+Inf, 3); bucket 1 is empty.
    assert_eq!(
        n.positive_spans,
        vec![
            Span {
                offset: 0,
                length: 1
            },
            Span {
                offset: 1,
                length: 2
            }
        ]
    );
    assert_eq!(n.positive_buckets, vec![2, 3, -2]);
    assert_eq!(n.count, 10);
    let falling = Histogram {
        bucket: vec![
            Bucket {
                cumulative_count: Some(3),
                upper_bound: Some(1.0),
                ..Default::default()
            },
            Bucket {
                cumulative_count: Some(2),
                upper_bound: Some(2.0),
                ..Default::default()
            },
        ],
        sample_count: Some(3),
        ..Default::default()
    };
    assert!(classic_to_nhcb(&falling, false).is_err());
}

#[test]
fn resolution_is_reduced_as_prometheus_does() {
    // Schema 1 buckets 1..=4 merge pairwise into schema 0 buckets 1 and 2:
    // bucket i goes to ((i - 1) >> 1) + 1.
    let (spans, counts) = reduce(
        &[Span {
            offset: 1,
            length: 4,
        }],
        &[1.0, 2.0, 3.0, 4.0],
        1,
    );
    assert_eq!(
        spans,
        vec![Span {
            offset: 1,
            length: 2
        }]
    );
    assert_eq!(counts, vec![3.0, 7.0]);
    // Indexes -1 and 0 both go to 0; index 4 goes to 2, after a gap at 1.
    let (spans, counts) = reduce(
        &[
            Span {
                offset: -1,
                length: 2,
            },
            Span {
                offset: 3,
                length: 1,
            },
        ],
        &[1.0, 1.0, 5.0],
        1,
    );
    assert_eq!(
        spans,
        vec![
            Span {
                offset: 0,
                length: 1
            },
            Span {
                offset: 1,
                length: 1
            }
        ]
    );
    assert_eq!(counts, vec![2.0, 5.0]);

    let mut value = ProtoValue::Histogram(NativeHistogram {
        schema: 2,
        count: 10,
        sum: 1.0,
        positive_spans: vec![Span {
            offset: 0,
            length: 10,
        }],
        positive_buckets: vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ..NativeHistogram::default()
    });
    limit_histogram(&mut value, 4, 0.0).expect("limit");
    let ProtoValue::Histogram(h) = &value else {
        panic!()
    };
    assert_eq!(h.schema, 0);
    assert!(h.positive_buckets.len() <= 4);
    h.validate().expect("still valid");
    assert_eq!(h.to_float().positive_buckets.iter().sum::<f64>(), 10.0);

    // The minimum bucket factor caps the schema: factor 2 allows schema 0.
    let mut value = ProtoValue::FloatHistogram(FloatHistogram {
        schema: 3,
        count: 2.0,
        positive_spans: vec![Span {
            offset: 0,
            length: 2,
        }],
        positive_buckets: vec![1.0, 1.0],
        ..FloatHistogram::default()
    });
    limit_histogram(&mut value, 0, 2.0).expect("factor");
    let ProtoValue::FloatHistogram(h) = &value else {
        panic!()
    };
    assert_eq!(h.schema, 0);
    assert_eq!(pick_schema(1.1), 2);
    assert_eq!(pick_schema(0.0), 8);
    assert_eq!(pick_schema(1e6), -4);

    // Spread too wide for the limit even at schema -4: the scrape fails.
    let mut wide = ProtoValue::FloatHistogram(FloatHistogram {
        schema: 0,
        count: 2.0,
        positive_spans: vec![
            Span {
                offset: -1000,
                length: 1,
            },
            Span {
                offset: 1998,
                length: 1,
            },
        ],
        positive_buckets: vec![1.0, 1.0],
        ..FloatHistogram::default()
    });
    assert_eq!(
        limit_histogram(&mut wide, 1, 0.0),
        Err("histogram bucket limit exceeded".to_string())
    );
}

#[test]
fn delimited_bodies_decode_and_garbage_is_an_error() {
    let mut body = Vec::new();
    for name in ["a", "b"] {
        MetricFamily {
            name: Some(name.to_string()),
            r#type: Some(GAUGE),
            metric: vec![Metric {
                gauge: Some(SingleValue { value: Some(1.0) }),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_length_delimited(&mut body)
        .expect("encode");
    }
    assert_eq!(decode_families(&body).expect("decode").len(), 2);
    assert!(decode_families(b"\xff\xff\xff").is_err());
    assert!(decode_families(&body[..body.len() - 1]).is_err());
}
