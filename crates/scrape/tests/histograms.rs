//! Native histograms from scrapes, over real HTTP into a real `tsdb::Db`:
//! the protobuf format's native histograms beside or instead of their
//! classic series, `convert_classic_histograms_to_nhcb` for the protobuf
//! and text formats, and `native_histogram_bucket_limit`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::*;
use model::histogram::{CUSTOM_BUCKETS_SCHEMA, Span};
use prost::Message as _;
use scrape::TargetHealth;
use scrape::protobuf::{Bucket, BucketSpan, HISTOGRAM, Histogram, Metric, MetricFamily};

const WAIT: Duration = Duration::from_secs(10);

fn span(offset: i32, length: u32) -> BucketSpan {
    BucketSpan {
        offset: Some(offset),
        length: Some(length),
    }
}

/// `latency_seconds`: a native histogram at schema 0 over buckets 1..=3
/// (counts 1, 2, 3) that also has classic buckets; `plain_seconds`: a
/// classic histogram only.
fn body() -> Vec<u8> {
    let classic_buckets = |bounds: &[(f64, u64)]| -> Vec<Bucket> {
        bounds
            .iter()
            .map(|&(bound, n)| Bucket {
                cumulative_count: Some(n),
                upper_bound: Some(bound),
                ..Default::default()
            })
            .collect()
    };
    let families = [
        MetricFamily {
            name: Some("latency_seconds".into()),
            r#type: Some(HISTOGRAM),
            metric: vec![Metric {
                histogram: Some(Histogram {
                    sample_count: Some(6),
                    sample_sum: Some(9.0),
                    schema: Some(0),
                    zero_threshold: Some(1e-128),
                    positive_span: vec![span(1, 3)],
                    positive_delta: vec![1, 1, 1],
                    bucket: classic_buckets(&[(2.0, 1), (8.0, 6)]),
                    ..Default::default()
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
                    sample_count: Some(4),
                    sample_sum: Some(2.0),
                    bucket: classic_buckets(&[(0.5, 1), (1.0, 3)]),
                    ..Default::default()
                }),
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
async fn native_and_classic_series_follow_the_job_settings() {
    let target = TestTarget::start(Response::protobuf(body())).await;
    let store = TestStore::open();
    let manager = store.manager_with(true);
    manager
        .apply_config(&config(&[
            fast_job("native", &target.address, ""),
            fast_job(
                "both",
                &target.address,
                "    scrape_classic_histograms: true\n",
            ),
            fast_job(
                "classic",
                &target.address,
                "    scrape_native_histograms: false\n",
            ),
            fast_job(
                "nhcb",
                &target.address,
                "    convert_classic_histograms_to_nhcb: true\n",
            ),
        ]))
        .await;
    wait_until(WAIT, "every job scraped", || {
        ["native", "both", "classic", "nhcb"]
            .iter()
            .all(|job| !store.samples("up", &[("job", job)]).is_empty())
    })
    .await;
    wait_until(WAIT, "histograms stored", || {
        !store
            .histograms("latency_seconds", &[("job", "nhcb")])
            .is_empty()
    })
    .await;
    assert!(target.last_accept.lock().unwrap().contains("application/"));

    // Native only: the histogram, and no classic series of it.
    let native = store.histograms("latency_seconds", &[("job", "native")]);
    let (_, h) = native.last().unwrap();
    assert_eq!((h.schema, h.count, h.sum), (0, 6.0, 9.0));
    assert_eq!(
        h.positive_spans,
        vec![Span {
            offset: 1,
            length: 3
        }]
    );
    assert_eq!(h.positive_buckets, vec![1.0, 2.0, 3.0]);
    assert!(
        store
            .series("latency_seconds_bucket", &[("job", "native")])
            .is_empty()
    );
    // A classic-only histogram stays classic.
    assert_eq!(
        store
            .series("plain_seconds_bucket", &[("job", "native")])
            .len(),
        3
    );

    // Both.
    assert!(
        !store
            .histograms("latency_seconds", &[("job", "both")])
            .is_empty()
    );
    let buckets = store.series("latency_seconds_bucket", &[("job", "both")]);
    let mut le: Vec<String> = buckets
        .iter()
        .map(|(labels, _)| labels.get("le").unwrap_or("").to_string())
        .collect();
    le.sort();
    assert_eq!(le, ["+Inf", "2.0", "8.0"]);

    // No native histograms for the job: classic series only.
    assert!(
        store
            .histograms("latency_seconds", &[("job", "classic")])
            .is_empty()
    );
    assert_eq!(
        store
            .samples("latency_seconds_count", &[("job", "classic")])
            .last()
            .unwrap()
            .1,
        6.0
    );

    // NHCB: the classic-only histogram becomes a custom-bucket one.
    let nhcb = store.histograms("plain_seconds", &[("job", "nhcb")]);
    let (_, h) = nhcb.last().unwrap();
    assert_eq!(h.schema, CUSTOM_BUCKETS_SCHEMA);
    assert_eq!(h.custom_values, vec![0.5, 1.0]);
    assert_eq!(h.positive_buckets, vec![1.0, 2.0, 1.0]);
    assert_eq!((h.count, h.sum), (4.0, 2.0));
    assert!(
        store
            .series("plain_seconds_bucket", &[("job", "nhcb")])
            .is_empty()
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_limit_lowers_resolution_or_fails_the_scrape() {
    let target = TestTarget::start(Response::protobuf(body())).await;
    let store = TestStore::open();
    let manager = store.manager_with(true);
    manager
        .apply_config(&config(&[
            fast_job(
                "two",
                &target.address,
                "    native_histogram_bucket_limit: 2\n",
            ),
            fast_job(
                "factor",
                &target.address,
                "    native_histogram_min_bucket_factor: 4\n",
            ),
        ]))
        .await;
    wait_until(WAIT, "histograms stored", || {
        !store
            .histograms("latency_seconds", &[("job", "two")])
            .is_empty()
            && !store
                .histograms("latency_seconds", &[("job", "factor")])
                .is_empty()
    })
    .await;
    // Buckets 1, 2, 3 at schema 0 are (1, 2], (2, 4], (4, 8]; at schema
    // -1 they are buckets 1 ((1, 4]: 1 + 2) and 2 ((4, 16]: 3).
    for job in ["two", "factor"] {
        let stored = store.histograms("latency_seconds", &[("job", job)]);
        let (_, h) = stored.last().unwrap();
        assert_eq!(h.schema, -1, "{job}");
        assert_eq!(
            h.positive_spans,
            vec![Span {
                offset: 1,
                length: 2
            }]
        );
        assert_eq!(h.positive_buckets, vec![3.0, 3.0]);
    }
    manager.stop().await;

    // One bucket cannot hold buckets 1 to 3 even at schema -4 (bucket 1
    // there is (1, 65536]: it can; use two far apart buckets instead).
    let mut far = MetricFamily::decode_length_delimited(body().as_slice()).unwrap();
    if let Some(h) = far.metric[0].histogram.as_mut() {
        h.positive_span = vec![span(-500, 1), span(999, 1)];
        h.positive_delta = vec![3, 0];
    }
    let mut bytes = Vec::new();
    far.encode_length_delimited(&mut bytes).unwrap();
    target.set(Response::protobuf(bytes));
    let manager = store.manager_with(true);
    manager
        .apply_config(&config(&[fast_job(
            "one",
            &target.address,
            "    native_histogram_bucket_limit: 1\n",
        )]))
        .await;
    wait_until(WAIT, "target down", || {
        manager
            .targets()
            .active
            .first()
            .is_some_and(|t| t.health == TargetHealth::Down)
    })
    .await;
    let error = manager.targets().active[0].last_error.clone();
    assert_eq!(error, "histogram bucket limit exceeded");
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_classic_histograms_convert_to_custom_buckets() {
    let text = "# TYPE rpc_seconds histogram\nrpc_seconds_bucket{code=\"200\",le=\"0.1\"} 2\nrpc_seconds_bucket{code=\"200\",le=\"1\"} 5\nrpc_seconds_bucket{code=\"200\",le=\"+Inf\"} 6\nrpc_seconds_sum{code=\"200\"} 3.5\nrpc_seconds_count{code=\"200\"} 6\nrpc_seconds_bucket{code=\"500\",le=\"abc\"} 1\n# TYPE other gauge\nother 1\n";
    let target = TestTarget::start(Response::text(text)).await;
    let store = TestStore::open();
    let manager = store.manager_with(true);
    manager
        .apply_config(&config(&[
            fast_job(
                "nhcb",
                &target.address,
                "    convert_classic_histograms_to_nhcb: true\n",
            ),
            fast_job(
                "keep",
                &target.address,
                "    convert_classic_histograms_to_nhcb: true\n    scrape_classic_histograms: true\n",
            ),
        ]))
        .await;
    wait_until(WAIT, "two scrapes", || {
        store
            .histograms("rpc_seconds", &[("job", "nhcb"), ("code", "200")])
            .len()
            >= 2
            && !store
                .histograms("rpc_seconds", &[("job", "keep")])
                .is_empty()
    })
    .await;
    let stored = store.histograms("rpc_seconds", &[("job", "nhcb"), ("code", "200")]);
    let (_, h) = stored.last().unwrap();
    assert_eq!(h.schema, CUSTOM_BUCKETS_SCHEMA);
    assert_eq!(h.custom_values, vec![0.1, 1.0]);
    assert_eq!(h.positive_buckets, vec![2.0, 3.0, 1.0]);
    assert_eq!((h.count, h.sum), (6.0, 3.5));
    assert!(
        store
            .series("rpc_seconds_bucket", &[("job", "nhcb"), ("code", "200")])
            .is_empty()
    );
    assert_eq!(
        store.samples("other", &[("job", "nhcb")]).last().unwrap().1,
        1.0
    );
    // A bucket whose `le` is no number stays a float series and makes no
    // histogram of its own.
    assert!(
        store
            .histograms("rpc_seconds", &[("job", "nhcb"), ("code", "500")])
            .is_empty()
    );
    assert_eq!(
        store
            .series("rpc_seconds_bucket", &[("job", "nhcb"), ("code", "500")])
            .len(),
        1
    );
    // With scrape_classic_histograms the classic series stay too.
    assert_eq!(
        store.series("rpc_seconds_bucket", &[("job", "keep")]).len(),
        4
    );
    manager.stop().await;
}
