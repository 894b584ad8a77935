//! Created timestamps from scrapes, over real HTTP into a real `tsdb::Db`,
//! with and without `--enable-feature=created-timestamp-zero-ingestion`.
//!
//! The reference is Prometheus 3's documented behaviour (the Debian
//! Prometheus 2.42 predates the flag, added in 2.50): `docs/feature_flags.md`
//! "Created Timestamps Zero Injection" and the code it describes —
//! `scrape/scrape.go` (with the flag, each sample of a counter, summary or
//! histogram whose parser reports a created timestamp gets
//! `AppendCTZeroSample`/`AppendHistogramCTZeroSample` first), the protobuf
//! parser's `CreatedTimestamp` (the counter's, summary's or histogram's
//! `created_timestamp`), the OpenMetrics parser's (the value of the
//! family's `_created` line with the same labels but `le`/`quantile`, in
//! seconds, `int64(v * 1000)`, and `_created` lines skipped as series only
//! with the flag: `WithOMParserCTSeriesSkipped`), and the head's checks
//! (`tsdb/head_append.go`: a zero only before the sample and after the
//! series' newest sample). The flag also makes `PrometheusProto` the first
//! scrape protocol (`config.DefaultProtoFirstScrapeProtocols`).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use model::histogram::CounterResetHint;
use model::is_stale_nan;
use prost::Message as _;
use scrape::protobuf::{
    Bucket, BucketSpan, COUNTER, Counter, GAUGE, HISTOGRAM, Histogram, Metric, MetricFamily,
    Quantile, SUMMARY, SingleValue, Summary, Timestamp,
};

const WAIT: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn timestamp(ms: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// A counter, a summary, a classic and a native histogram created at
/// `created` (ms), and a gauge, which has no created timestamp.
fn protobuf_body(created: i64, counter: f64) -> Vec<u8> {
    let families = [
        MetricFamily {
            name: Some("jobs_total".into()),
            r#type: Some(COUNTER),
            metric: vec![Metric {
                counter: Some(Counter {
                    value: Some(counter),
                    created_timestamp: timestamp(created),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        MetricFamily {
            name: Some("rpc_seconds".into()),
            r#type: Some(SUMMARY),
            metric: vec![Metric {
                summary: Some(Summary {
                    sample_count: Some(4),
                    sample_sum: Some(2.0),
                    quantile: vec![Quantile {
                        quantile: Some(0.5),
                        value: Some(0.4),
                    }],
                    created_timestamp: timestamp(created),
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        MetricFamily {
            name: Some("plain_seconds".into()),
            r#type: Some(HISTOGRAM),
            metric: vec![Metric {
                histogram: Some(Histogram {
                    sample_count: Some(3),
                    sample_sum: Some(1.5),
                    bucket: vec![Bucket {
                        cumulative_count: Some(1),
                        upper_bound: Some(0.5),
                        ..Default::default()
                    }],
                    created_timestamp: timestamp(created),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        MetricFamily {
            name: Some("latency_seconds".into()),
            r#type: Some(HISTOGRAM),
            metric: vec![Metric {
                histogram: Some(Histogram {
                    sample_count: Some(6),
                    sample_sum: Some(9.0),
                    schema: Some(1),
                    zero_threshold: Some(1e-128),
                    positive_span: vec![BucketSpan {
                        offset: Some(1),
                        length: Some(3),
                    }],
                    positive_delta: vec![1, 1, 1],
                    created_timestamp: timestamp(created),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        MetricFamily {
            name: Some("temperature".into()),
            r#type: Some(GAUGE),
            metric: vec![Metric {
                gauge: Some(SingleValue { value: Some(21.5) }),
                ..Default::default()
            }],
            ..Default::default()
        },
    ];
    let mut body = Vec::new();
    for family in families {
        family.encode_length_delimited(&mut body).unwrap();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_created_timestamps_become_zero_samples_with_the_flag() {
    let created = now_ms() - 60_000;
    let target = TestTarget::start(Response::protobuf(protobuf_body(created, 7.0))).await;
    let on = TestStore::open();
    let on_manager = on.manager_with_features(true, true);
    on_manager
        .apply_config(&config(&[fast_job("flagged", &target.address, "")]))
        .await;
    let off = TestStore::open();
    let off_manager = off.manager_with_features(true, false);
    off_manager
        .apply_config(&config(&[fast_job("plain", &target.address, "")]))
        .await;
    wait_until(WAIT, "three scrapes each", || {
        on.samples("jobs_total", &[]).len() >= 4 && off.samples("jobs_total", &[]).len() >= 3
    })
    .await;

    // With the flag: a zero at the created timestamp before the first
    // sample of each series of the counter, summary and classic
    // histogram, and only once (later scrapes carry the same one).
    for (name, labels) in [
        ("jobs_total", vec![]),
        ("rpc_seconds", vec![("quantile", "0.5")]),
        ("rpc_seconds_count", vec![]),
        ("rpc_seconds_sum", vec![]),
        ("plain_seconds_bucket", vec![("le", "0.5")]),
        ("plain_seconds_bucket", vec![("le", "+Inf")]),
        ("plain_seconds_count", vec![]),
        ("plain_seconds_sum", vec![]),
    ] {
        let samples = on.samples(name, &labels);
        assert_eq!(samples[0], (created, 0.0), "{name} {labels:?}: {samples:?}");
        assert!(samples[1].0 > created && samples[1].1 != 0.0, "{name}");
        assert_eq!(
            samples.iter().filter(|(_, v)| *v == 0.0).count(),
            1,
            "{name} {labels:?}: {samples:?}"
        );
    }
    // The gauge has none.
    assert_ne!(on.samples("temperature", &[])[0].1, 0.0);
    // The native histogram's zero is an empty histogram of its schema.
    let histograms = on.histograms("latency_seconds", &[]);
    assert_eq!(histograms[0].0, created);
    assert_eq!(histograms[0].1.count, 0.0);
    assert_eq!(histograms[0].1.schema, 1);
    // Written as a reset; read back, as from Prometheus's chunk reader, as
    // a chunk's first sample: unknown.
    assert_eq!(
        histograms[0].1.counter_reset_hint,
        CounterResetHint::Unknown
    );
    assert_eq!(histograms[1].1.count, 6.0);
    // The flag asks for the protobuf format first even where native
    // histograms would not (Prometheus's proto-first default).
    assert!(
        target
            .last_accept
            .lock()
            .unwrap()
            .starts_with("application/vnd.google.protobuf"),
    );

    // Without it: the samples alone.
    for name in ["jobs_total", "rpc_seconds_count", "plain_seconds_count"] {
        let samples = off.samples(name, &[]);
        assert!(
            samples.iter().all(|(_, v)| *v != 0.0),
            "{name}: {samples:?}"
        );
    }
    assert!(
        off.histograms("latency_seconds", &[])
            .iter()
            .all(|(_, h)| h.count == 6.0)
    );

    // The counter restarts: a new created timestamp after the newest
    // sample gets its zero; the value after it counts from there. A
    // scrape that fails (see `Scrapes`) after the restart and before the
    // first successful one writes a staleness marker newer than the
    // created timestamp, and a scrape may start in the restart's very
    // millisecond: then the created timestamp is not after the newest
    // sample, and rightly gets no zero. Then the counter restarts again.
    let flagged = [("job", "flagged")];
    // A scrape is timestamped when it starts; one that started before the
    // new body was set may still read it, and its sample (the restarted
    // value) then lies before the created timestamp: also a retry.
    let mut newest_before = newest(&on.samples("jobs_total", &[]));
    let mut restarted = now_ms();
    for tries in 1.. {
        target.set(Response::protobuf(protobuf_body(restarted, 2.0)));
        wait_until(WAIT, "a successful scrape after the restart", || {
            on.scrapes(&flagged).ok().any(|t| t > restarted)
        })
        .await;
        let scrapes = on.scrapes(&flagged);
        let first = scrapes.ok().find(|t| *t > restarted).unwrap();
        if on.samples("jobs_total", &[]).contains(&(restarted, 0.0)) {
            break;
        }
        let samples = on.samples("jobs_total", &[]);
        assert!(
            tries < 5
                && samples.iter().any(|&(t, v)| {
                    (t > restarted && t < first && is_stale_nan(v))
                        || t == restarted
                        || (t > newest_before && t < restarted && v == 2.0)
                }),
            "no zero at {restarted}: {samples:?}"
        );
        newest_before = newest(&on.samples("jobs_total", &[]));
        restarted = now_ms();
    }
    wait_until(WAIT, "a sample after the restart", || {
        on.samples("jobs_total", &[])
            .iter()
            .any(|&(t, v)| t > restarted && v == 2.0)
    })
    .await;
    let samples = on.samples("jobs_total", &[]);
    let at = samples.iter().position(|s| *s == (restarted, 0.0)).unwrap();
    assert!(samples[..at].iter().all(|(t, _)| *t < restarted));
    on_manager.stop().await;
    off_manager.stop().await;
}

/// An OpenMetrics body laid out as Python's `prometheus_client` writes
/// it: each `_created` line after the samples of its label set.
fn openmetrics_body(created_get: f64, created_post: f64) -> String {
    format!(
        "# HELP app_requests Requests handled.\n\
         # TYPE app_requests counter\n\
         app_requests_total{{method=\"get\"}} 5.0\n\
         app_requests_created{{method=\"get\"}} {created_get}\n\
         app_requests_total{{method=\"post\"}} 2.0\n\
         app_requests_created{{method=\"post\"}} {created_post}\n\
         # HELP app_latency_seconds Latency.\n\
         # TYPE app_latency_seconds histogram\n\
         app_latency_seconds_bucket{{le=\"0.5\"}} 1.0\n\
         app_latency_seconds_bucket{{le=\"+Inf\"}} 2.0\n\
         app_latency_seconds_count 2.0\n\
         app_latency_seconds_sum 1.5\n\
         app_latency_seconds_created {created_get}\n\
         # HELP app_batch Batch sizes.\n\
         # TYPE app_batch summary\n\
         app_batch{{quantile=\"0.5\"}} 4.0\n\
         app_batch_count 2.0\n\
         app_batch_sum 8.0\n\
         app_batch_created {created_post}\n\
         # HELP app_queue Queue depth.\n\
         # TYPE app_queue gauge\n\
         app_queue 3.0\n\
         # EOF\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_created_lines_are_created_timestamps_with_the_flag_and_series_without() {
    // Fractions of a millisecond, converted as Prometheus converts them:
    // seconds times 1000, truncated.
    let get = (now_ms() - 90_000) as f64 / 1000.0 + 0.000_4;
    let post = (now_ms() - 30_000) as f64 / 1000.0;
    let (get_ms, post_ms) = ((get * 1000.0) as i64, (post * 1000.0) as i64);
    let target = TestTarget::start(Response {
        status: 200,
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
        body: openmetrics_body(get, post).into_bytes(),
    })
    .await;
    let on = TestStore::open();
    let on_manager = on.manager_with_features(false, true);
    on_manager
        .apply_config(&config(&[
            fast_job("flagged", &target.address, ""),
            // The classic histogram as a native one with custom buckets.
            fast_job(
                "nhcb",
                &target.address,
                "    scrape_native_histograms: true\n    convert_classic_histograms_to_nhcb: true\n",
            ),
        ]))
        .await;
    let off = TestStore::open();
    let off_manager = off.manager_with_features(false, false);
    off_manager
        .apply_config(&config(&[fast_job("plain", &target.address, "")]))
        .await;
    wait_until(WAIT, "three scrapes each", || {
        on.samples("app_queue", &[("job", "flagged")]).len() >= 3
            && on
                .histograms("app_latency_seconds", &[("job", "nhcb")])
                .len()
                >= 3
            && off.samples("app_queue", &[]).len() >= 3
    })
    .await;

    for (name, labels, created) in [
        ("app_requests_total", vec![("method", "get")], get_ms),
        ("app_requests_total", vec![("method", "post")], post_ms),
        ("app_latency_seconds_bucket", vec![("le", "0.5")], get_ms),
        ("app_latency_seconds_bucket", vec![("le", "+Inf")], get_ms),
        ("app_latency_seconds_count", vec![], get_ms),
        ("app_latency_seconds_sum", vec![], get_ms),
        ("app_batch", vec![("quantile", "0.5")], post_ms),
        ("app_batch_count", vec![], post_ms),
        ("app_batch_sum", vec![], post_ms),
    ] {
        let mut on_labels = labels.clone();
        on_labels.push(("job", "flagged"));
        let samples = on.samples(name, &on_labels);
        assert_eq!(samples[0], (created, 0.0), "{name} {labels:?}: {samples:?}");
        assert!(samples[1..].iter().all(|(_, v)| *v != 0.0), "{name}");
        // Without the flag: no zero.
        let samples = off.samples(name, &labels);
        assert!(
            samples.iter().all(|(_, v)| *v != 0.0),
            "{name}: {samples:?}"
        );
    }
    // Judged by the successful scrapes (see `Scrapes`).
    let scrapes = on.scrapes(&[("job", "flagged")]);
    let queue = on.samples("app_queue", &[("job", "flagged")]);
    assert!(scrapes.steady(&queue, 3.0), "{queue:?}");
    // The converted histogram's zero: empty, with the custom bounds.
    let nhcb = on.histograms("app_latency_seconds", &[("job", "nhcb")]);
    assert_eq!(nhcb[0].0, get_ms);
    assert_eq!(nhcb[0].1.count, 0.0);
    assert_eq!(nhcb[0].1.schema, -53);
    assert_eq!(nhcb[0].1.custom_values, vec![0.5]);
    assert_eq!(nhcb[1].1.count, 2.0);
    // `_created` series: not stored with the flag, stored as series
    // (their values in seconds) without it, as Prometheus 3 does.
    for name in [
        "app_requests_created",
        "app_latency_seconds_created",
        "app_batch_created",
    ] {
        assert!(on.series(name, &[]).is_empty(), "{name}");
        assert!(!off.series(name, &[]).is_empty(), "{name}");
    }
    let stored = off.samples("app_requests_created", &[("method", "post")]);
    assert_eq!(stored[0].1, post);
    on_manager.stop().await;
    off_manager.stop().await;
}

/// The newest sample's timestamp, or the earliest time there is.
fn newest(samples: &[(i64, f64)]) -> i64 {
    samples.iter().map(|s| s.0).max().unwrap_or(i64::MIN)
}
