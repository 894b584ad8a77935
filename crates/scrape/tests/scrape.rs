//! Scrape tests over real HTTP on 127.0.0.1 into a real `tsdb::Db`, read
//! back through `model::storage::Queryable`. Intervals are 100 ms and every
//! wait is bounded.

mod common;

use std::time::Duration;

use common::*;
use model::is_stale_nan;
use scrape::{MetricType, TargetHealth};

const WAIT: Duration = Duration::from_secs(10);

const BODY: &str = "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",method=\"get\"} 1027\nhttp_requests_total{code=\"500\",method=\"get\"} 3\n# HELP temperature_celsius Current temperature.\n# TYPE temperature_celsius gauge\ntemperature_celsius 21.5\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_read_back_equal_what_was_served() {
    let target = TestTarget::start(Response::text(BODY)).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[fast_job("app", &target.address, "")]))
        .await;
    let instance = target.address.as_str();
    let job = [("job", "app"), ("instance", instance)];
    wait_until(WAIT, "two successful scrapes in a row", || {
        store.scrapes(&job).ok_after_ok().next().is_some()
    })
    .await;

    // Judged by the successful scrapes (see `Scrapes`).
    let scrapes = store.scrapes(&job);
    let ok = store.samples(
        "http_requests_total",
        &[
            ("code", "200"),
            ("method", "get"),
            ("job", "app"),
            ("instance", instance),
        ],
    );
    assert!(scrapes.steady(&ok, 1027.0), "{ok:?}");
    let errors = store.samples("http_requests_total", &[("code", "500")]);
    assert!(scrapes.steady(&errors, 3.0), "{errors:?}");
    let temperature = store.samples("temperature_celsius", &[("job", "app")]);
    assert!(scrapes.steady(&temperature, 21.5), "{temperature:?}");
    // Samples and report series of one scrape share its timestamp: up is
    // 1 where the scrape's samples were stored, 0 where none were.
    for t in scrapes.ok() {
        assert_eq!(at(&temperature, t), Some(21.5), "{t}: {temperature:?}");
    }
    for &(t, _) in scrapes.of(&temperature) {
        assert!(scrapes.ok_at(t).is_some(), "{t}: no up");
    }
    let scraped = store.samples("scrape_samples_scraped", &[("job", "app")]);
    let post = store.samples("scrape_samples_post_metric_relabeling", &[("job", "app")]);
    for t in scrapes.ok() {
        assert_eq!(at(&scraped, t), Some(3.0), "{t}: {scraped:?}");
        assert_eq!(at(&post, t), Some(3.0), "{t}: {post:?}");
    }
    let added = store.samples("scrape_series_added", &[("job", "app")]);
    let first = scrapes.ok().next().unwrap();
    assert_eq!(
        at(&added, first),
        Some(3.0),
        "the first scrape adds every series: {added:?}"
    );
    for t in scrapes.ok_after_ok() {
        assert_eq!(at(&added, t), Some(0.0), "the next adds none: {added:?}");
    }
    assert!(
        !store
            .samples("scrape_duration_seconds", &[("job", "app")])
            .is_empty()
    );

    // OpenMetrics is asked for first.
    assert!(
        target
            .last_accept
            .lock()
            .unwrap()
            .starts_with("application/openmetrics-text;version=1.0.0")
    );

    let targets = manager.targets();
    assert_eq!(targets.active.len(), 1);
    let active = &targets.active[0];
    assert_eq!(active.health, TargetHealth::Up);
    assert_eq!(active.scrape_pool, "app");
    assert_eq!(active.scrape_url, format!("http://{instance}/metrics"));
    assert_eq!(
        active.global_url,
        format!(
            "http://testhost:{}/metrics",
            instance.rsplit_once(':').unwrap().1
        )
    );
    assert_eq!(active.scrape_interval, "100ms");
    assert_eq!(active.scrape_timeout, "90ms");
    assert_eq!(active.last_error, "");
    assert!(active.last_scrape.is_some());
    assert_eq!(active.discovered_labels.get("__address__"), Some(instance));
    assert_eq!(active.labels.get("job"), Some("app"));

    let metadata = manager.metadata();
    let counter = &metadata["http_requests_total"][0];
    assert_eq!(counter.metric_type, MetricType::Counter);
    assert_eq!(counter.help, "Requests served.");
    let per_target = manager.target_metadata();
    assert!(
        per_target
            .iter()
            .any(|m| m.metadata.metric == "temperature_celsius"
                && m.metadata.metric_type == MetricType::Gauge
                && m.target.get("instance") == Some(instance))
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_series_and_failing_target_go_stale() {
    let target = TestTarget::start(Response::text("a 1\nb 2\n")).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[fast_job("app", &target.address, "")]))
        .await;
    wait_until(WAIT, "b scraped", || !store.samples("b", &[]).is_empty()).await;

    // Series b disappears from the exposition: the next successful scrape
    // writes a staleness marker, and the ones after it none.
    take_away(&store, &target, &[], ("b", &[]), "a 1\n", "a 1\nb 2\n").await;
    let marked = store.samples("b", &[]).last().unwrap().0;
    wait_until(WAIT, "two more successful scrapes", || {
        store.scrapes(&[]).ok().filter(|t| *t > marked).count() >= 2
    })
    .await;
    // Judged by the successful scrapes (see `Scrapes`).
    let scrapes = store.scrapes(&[]);
    let b = store.samples("b", &[]);
    let stored = b.iter().rposition(|(_, v)| !is_stale_nan(*v)).unwrap();
    assert_eq!(b.len() - stored - 1, 1, "one marker only: {b:?}");
    assert!(
        b[..stored]
            .iter()
            .all(|&(t, v)| v == 2.0 || (is_stale_nan(v) && scrapes.failed_at(t))),
        "{b:?}"
    );
    // The series that stayed is not stale.
    let a = store.samples("a", &[]);
    assert!(scrapes.steady(&a, 1.0), "{a:?}");

    // The target stops answering properly: up is 0 and a goes stale.
    target.set(Response {
        status: 500,
        content_type: "text/plain".into(),
        body: "boom".into(),
    });
    wait_until(WAIT, "up = 0", || {
        store
            .samples("up", &[])
            .last()
            .is_some_and(|(_, value)| *value == 0.0)
    })
    .await;
    wait_until(WAIT, "a marked stale", || {
        store
            .samples("a", &[])
            .last()
            .is_some_and(|(_, value)| is_stale_nan(*value))
    })
    .await;
    // The target's status is published just after the scrape's samples
    // are committed, so it may trail the store by a moment; and a scrape
    // that timed out (see `Scrapes`) says so instead of naming the 500.
    wait_until(WAIT, "target down with the 500", || {
        let active = &manager.targets().active[0];
        active.health == TargetHealth::Down && active.last_error.contains("500")
    })
    .await;
    manager.stop().await;
}

/// A scrape with as many series as the last one, one of them new: the
/// loop counts the series it tracks again to skip looking for vanished
/// ones, and a swap must not look like "nothing vanished".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_swapped_for_another_goes_stale() {
    let target = TestTarget::start(Response::text("a 1\nb 2\n")).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[fast_job("app", &target.address, "")]))
        .await;
    wait_until(WAIT, "b scraped", || !store.samples("b", &[]).is_empty()).await;
    // A successful scrape marks b stale (see `take_away`).
    let (first, second) = ("a 1\nb 2\n", "a 1\nc 3\n");
    take_away(&store, &target, &[], ("b", &[]), second, first).await;
    // Back to the first form after a few scrapes of the second: c goes
    // stale, b comes back, a never went stale.
    let scraped = store.samples("c", &[]).len();
    wait_until(WAIT, "c scraped again", || {
        store.samples("c", &[]).len() > scraped + 1
    })
    .await;
    take_away(&store, &target, &[], ("c", &[]), first, second).await;
    let marked = store.samples("c", &[]).last().unwrap().0;
    wait_until(WAIT, "b back", || {
        store
            .samples("b", &[])
            .last()
            .is_some_and(|(_, value)| *value == 2.0)
    })
    .await;
    wait_until(WAIT, "two more successful scrapes", || {
        store.scrapes(&[]).ok().filter(|t| *t > marked).count() >= 2
    })
    .await;
    // Judged by the successful scrapes (see `Scrapes`).
    let scrapes = store.scrapes(&[]);
    let a = store.samples("a", &[]);
    assert!(scrapes.steady(&a, 1.0), "{a:?}");
    let c = store.samples("c", &[]);
    let stored = c.iter().rposition(|(_, v)| !is_stale_nan(*v)).unwrap();
    assert_eq!(c.len() - stored - 1, 1, "one marker for c: {c:?}");
    assert!(
        c[..stored]
            .iter()
            .all(|&(t, v)| v == 3.0 || (is_stale_nan(v) && scrapes.failed_at(t))),
        "{c:?}"
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_series_fails_the_scrape_though_others_are_cached() {
    // The scrape cache skips parsing series texts it knows; a new text is
    // parsed in full, and its error fails the whole scrape.
    let target = TestTarget::start(Response::text("a{x=\"1\"} 1\n")).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[fast_job("app", &target.address, "")]))
        .await;
    wait_until(WAIT, "a scraped", || !store.samples("a", &[]).is_empty()).await;

    target.set(Response::text("a{x=\"1\"} 2\na{x=\"1\",x=\"2\"} 3\n"));
    wait_until(WAIT, "target down", || {
        manager.targets().active[0].health == TargetHealth::Down
    })
    .await;
    let active = &manager.targets().active[0];
    assert!(
        active.last_error.contains("line 2") && active.last_error.contains("duplicate label"),
        "{}",
        active.last_error
    );
    // Nothing of the failed scrape was stored, though its first line was
    // a cached series.
    let a = store.samples("a", &[]);
    assert!(
        a.iter().all(|(_, v)| *v == 1.0 || is_stale_nan(*v)),
        "{a:?}"
    );

    target.set(Response::text("a{x=\"1\"} 4\n"));
    wait_until(WAIT, "a scraped again", || {
        store.samples("a", &[]).iter().any(|(_, v)| *v == 4.0)
    })
    .await;
    wait_until(WAIT, "target up", || {
        manager.targets().active[0].health == TargetHealth::Up
    })
    .await;
    manager.stop().await;
}

/// A target that accepts the connection and never answers: the scrape's
/// one deadline (over connect, request and body) fails it at
/// `scrape_timeout`, as Prometheus's context does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[fast_job("app", &address, "")]))
        .await;
    wait_until(WAIT, "target down", || {
        manager.targets().active[0].health == TargetHealth::Down
    })
    .await;
    let active = &manager.targets().active[0];
    assert!(
        active
            .last_error
            .contains("context deadline exceeded after 90ms"),
        "{}",
        active.last_error
    );
    assert!(
        store
            .samples("up", &[])
            .iter()
            .all(|(_, value)| *value == 0.0)
    );
    manager.stop().await;
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_added_counts_and_merged_forms_stay_fresh() {
    // Metric relabelling drops `x`, so c{x="1"} and c{x="2"} are stored as
    // one series `c`: when one written form vanishes, `c` is not stale.
    let before = "c{x=\"1\"} 1\nc{x=\"2\"} 1\nd 1\n";
    let target = TestTarget::start(Response::text(before)).await;
    let store = TestStore::open();
    let manager = store.manager();
    let relabel = "    metric_relabel_configs:\n      - action: labeldrop\n        regex: x\n";
    manager
        .apply_config(&config(&[fast_job("app", &target.address, relabel)]))
        .await;
    wait_until(WAIT, "two successful scrapes in a row", || {
        store.scrapes(&[]).ok_after_ok().next().is_some()
    })
    .await;
    // Judged by the successful scrapes (see `Scrapes`).
    let scrapes = store.scrapes(&[]);
    let added = store.samples("scrape_series_added", &[]);
    // As in Prometheus, new written forms count (its scrape cache is keyed
    // by the series text too): c{x="1"}, c{x="2"} and d.
    let first = scrapes.ok().next().unwrap();
    assert_eq!(at(&added, first), Some(3.0), "{added:?}");
    for t in scrapes.ok_after_ok() {
        assert_eq!(at(&added, t), Some(0.0), "{t}: {added:?}");
    }

    // A successful scrape marks d stale (see `take_away`), and not c.
    let after = "c{x=\"1\"} 1\ne 1\n";
    take_away(&store, &target, &[], ("d", &[]), after, before).await;
    wait_until(WAIT, "two more scrapes", || {
        store.samples("e", &[]).len() >= 2
    })
    .await;
    let scrapes = store.scrapes(&[]);
    let c = store.samples("c", &[]);
    assert!(
        scrapes.steady(&c, 1.0),
        "c was marked stale though still written: {c:?}"
    );
    let added = store.samples("scrape_series_added", &[]);
    assert!(
        added.iter().any(|(_, v)| *v == 1.0),
        "e was added: {added:?}"
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_is_down() {
    // A port nothing listens on: bind and drop.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[fast_job("gone", &address, "")]))
        .await;
    wait_until(WAIT, "up = 0", || {
        store
            .samples("up", &[("job", "gone")])
            .iter()
            .any(|(_, v)| *v == 0.0)
    })
    .await;
    // The loop commits the scrape's samples, then updates the target's
    // status: `up` can be read a moment before the health changes.
    wait_until(WAIT, "health = down", || {
        manager.targets().active[0].health == TargetHealth::Down
    })
    .await;
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_loops_and_stales_removed_targets() {
    let first = TestTarget::start(Response::text("one 1\n")).await;
    let second = TestTarget::start(Response::text("two 2\n")).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[
            fast_job("first", &first.address, ""),
            fast_job("second", &second.address, ""),
        ]))
        .await;
    wait_until(WAIT, "both scraped", || {
        manager
            .targets()
            .active
            .iter()
            .all(|t| t.last_scrape.is_some())
    })
    .await;

    // Reload: first unchanged, second changed (a new label), third new.
    let third = TestTarget::start(Response::text("three 3\n")).await;
    manager
        .apply_config(&config(&[
            fast_job("first", &first.address, ""),
            fast_job(
                "second",
                &second.address,
                "    relabel_configs:\n      - target_label: env\n        replacement: prod\n",
            ),
            fast_job("third", &third.address, ""),
        ]))
        .await;
    let targets = manager.targets();
    let by_pool = |pool: &str| {
        targets
            .active
            .iter()
            .find(|t| t.scrape_pool == pool)
            .unwrap_or_else(|| panic!("no target in {pool}"))
            .clone()
    };
    // The unchanged loop kept its state. A restarted loop would have
    // written staleness markers for its series when it stopped; a failed
    // scrape (see `Scrapes`) marks them too, but not `up`.
    assert!(
        by_pool("first").last_scrape.is_some(),
        "first was restarted"
    );
    let scrapes = store.scrapes(&[("job", "first")]);
    assert!(
        !store
            .samples("up", &[("job", "first")])
            .iter()
            .any(|(_, v)| is_stale_nan(*v))
    );
    let one = store.samples("one", &[]);
    assert!(scrapes.steady(&one, 1.0), "{one:?}");
    assert_eq!(by_pool("second").labels.get("env"), Some("prod"));
    assert_eq!(by_pool("third").scrape_pool, "third");
    // The second job's old target (without env) was stopped: its series
    // and its up got staleness markers.
    let old_two = store.series("two", &[]);
    let old = old_two
        .iter()
        .find(|(labels, _)| labels.get("env").is_none())
        .expect("old series");
    assert!(is_stale_nan(old.1.last().unwrap().1));
    let old_up = store.series("up", &[("job", "second")]);
    let old_up = old_up
        .iter()
        .find(|(labels, _)| labels.get("env").is_none())
        .unwrap();
    assert!(is_stale_nan(old_up.1.last().unwrap().1));

    // Removing a job stops its loops with staleness markers.
    manager
        .apply_config(&config(&[fast_job("first", &first.address, "")]))
        .await;
    assert_eq!(manager.targets().active.len(), 1);
    let three = store.samples("three", &[]);
    if let Some((_, last)) = three.last() {
        assert!(is_stale_nan(*last));
    }
    let removed = store.samples("up", &[("job", "first")]).last().unwrap().0;
    wait_until(WAIT, "first keeps scraping", || {
        store.scrapes(&[("job", "first")]).ok().any(|t| t > removed)
    })
    .await;
    let scrapes = store.scrapes(&[("job", "first")]);
    let one = store.samples("one", &[]);
    assert!(scrapes.steady(&one, 1.0), "{one:?}");
    manager.stop().await;
    assert!(is_stale_nan(store.samples("one", &[]).last().unwrap().1));
    assert!(is_stale_nan(
        store.samples("up", &[("job", "first")]).last().unwrap().1
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_changes_are_picked_up() {
    let a = TestTarget::start(Response::text("from_a 1\n")).await;
    let b = TestTarget::start(Response::text("from_b 2\n")).await;
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("targets.json");
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "ml"}}}}]"#,
            a.address
        ),
    )
    .unwrap();
    let text = format!(
        "scrape_configs:\n  - job_name: files\n    scrape_interval: 100ms\n    scrape_timeout: 90ms\n    file_sd_configs:\n      - files: ['{}/*.json']\n        refresh_interval: 100ms\n",
        directory.path().display()
    );
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(
            &config::parse("test.yml", &text, None)
                .unwrap()
                .scrape_configs,
        )
        .await;
    wait_until(WAIT, "a scraped", || {
        !store.samples("from_a", &[("team", "ml")]).is_empty()
    })
    .await;
    let targets = manager.targets();
    assert_eq!(
        targets.active[0].discovered_labels.get("__meta_filepath"),
        Some(file.display().to_string().as_str())
    );

    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "ml"}}}}, {{"targets": ["{}"]}}]"#,
            a.address, b.address
        ),
    )
    .unwrap();
    wait_until(WAIT, "b scraped", || {
        !store.samples("from_b", &[]).is_empty()
    })
    .await;
    assert_eq!(manager.targets().active.len(), 2);

    // Removing a from the file stops it, with staleness markers.
    std::fs::write(&file, format!(r#"[{{"targets": ["{}"]}}]"#, b.address)).unwrap();
    wait_until(WAIT, "a stale", || {
        store
            .samples("from_a", &[])
            .last()
            .is_some_and(|(_, v)| is_stale_nan(*v))
    })
    .await;
    assert_eq!(manager.targets().active.len(), 1);
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_fail_the_scrape() {
    let many =
        TestTarget::start(Response::text("x{i=\"1\"} 1\nx{i=\"2\"} 1\nx{i=\"3\"} 1\n")).await;
    let big = TestTarget::start(Response::text(&"padding_metric 1\n".repeat(200))).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[
            fast_job("samples", &many.address, "    sample_limit: 2\n"),
            fast_job("body", &big.address, "    body_size_limit: 1KB\n"),
            fast_job(
                "labels",
                &many.address,
                "    label_value_length_limit: 0\n    label_limit: 3\n",
            ),
        ]))
        .await;
    wait_until(WAIT, "all scraped", || {
        manager
            .targets()
            .active
            .iter()
            .all(|t| t.last_scrape.is_some())
    })
    .await;
    let targets = manager.targets();
    let error_of = |pool: &str| {
        targets
            .active
            .iter()
            .find(|t| t.scrape_pool == pool)
            .unwrap()
            .last_error
            .clone()
    };
    assert!(
        error_of("samples").contains("sample_limit exceeded"),
        "{}",
        error_of("samples")
    );
    assert!(
        error_of("body").contains("body size limit exceeded"),
        "{}",
        error_of("body")
    );
    assert!(
        error_of("labels").contains("label_limit exceeded"),
        "{}",
        error_of("labels")
    );
    assert!(
        store.samples("x", &[("job", "samples")]).is_empty()
            || store
                .series("x", &[("job", "samples")])
                .iter()
                .all(|(_, s)| s.is_empty())
    );
    assert!(store.samples("padding_metric", &[]).is_empty());
    for job in ["samples", "body", "labels"] {
        assert!(
            store
                .samples("up", &[("job", job)])
                .iter()
                .all(|(_, v)| *v == 0.0)
        );
    }
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_honor_options_and_metric_relabelling() {
    let body = "# TYPE jobs counter\n# HELP jobs Jobs run.\njobs_total{job=\"exposed\"} 7\njobs_created{job=\"exposed\"} 1700000000.5\n# TYPE build info\nbuild_info{version=\"1.2\"} 1\n# TYPE ts gauge\nts 5 1700000000.123\n# TYPE dropped gauge\ndropped 1\n# EOF\n";
    let target = TestTarget::start(Response {
        status: 200,
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
        body: body.into(),
    })
    .await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[
            fast_job(
                "plain",
                &target.address,
                "    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: dropped\n        action: drop\n",
            ),
            fast_job("honoring", &target.address, "    honor_labels: true\n    honor_timestamps: false\n"),
        ]))
        .await;
    wait_until(WAIT, "both scraped twice", || {
        store.scrapes(&[("job", "plain")]).ok().count() >= 2
            && store.scrapes(&[("job", "honoring")]).ok().count() >= 2
    })
    .await;
    // Judged by the successful scrapes (see `Scrapes`).
    let scrapes = store.scrapes(&[("job", "plain")]);
    // Without honor_labels the exposed job label is kept as exported_job.
    let plain = store.samples(
        "jobs_total",
        &[("job", "plain"), ("exported_job", "exposed")],
    );
    assert!(scrapes.steady(&plain, 7.0), "{plain:?}");
    // With honor_labels the exposed value wins.
    assert!(
        !store
            .samples("jobs_total", &[("job", "exposed")])
            .is_empty()
    );
    // `_created` of a counter is a series in OpenMetrics too, as in
    // Prometheus 3 without `created-timestamp-zero-ingestion`.
    assert_eq!(
        store.samples("jobs_created", &[("job", "exposed")])[0].1,
        1_700_000_000.5
    );
    assert!(
        !store
            .samples("build_info", &[("version", "1.2"), ("job", "plain")])
            .is_empty()
    );
    // honor_timestamps: the exposed timestamp is used, or the scrape time.
    let plain_ts = store.samples("ts", &[("job", "plain")]);
    assert_eq!(plain_ts, vec![(1_700_000_000_123, 5.0)]);
    let honoring_ts = store.samples("ts", &[("job", "honoring")]);
    assert!(
        honoring_ts.iter().filter(|(_, v)| *v == 5.0).count() >= 2
            && honoring_ts.iter().all(|(t, _)| *t > 1_700_000_000_123),
        "{honoring_ts:?}"
    );
    // metric_relabel_configs dropped one series in the plain job only.
    assert!(store.series("dropped", &[("job", "plain")]).is_empty());
    assert!(!store.series("dropped", &[("job", "honoring")]).is_empty());
    let scraped = store.samples("scrape_samples_scraped", &[("job", "plain")]);
    let post = store.samples("scrape_samples_post_metric_relabeling", &[("job", "plain")]);
    // jobs_total, jobs_created, build_info, ts and dropped.
    let first = scrapes.ok().next().unwrap();
    assert_eq!(at(&scraped, first), Some(5.0), "{scraped:?}");
    assert_eq!(at(&post, first), Some(4.0), "{post:?}");
    let metadata = manager.metadata();
    assert_eq!(metadata["jobs"][0].metric_type, MetricType::Counter);
    assert_eq!(metadata["build"][0].metric_type, MetricType::Info);
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_protocols_choose_the_accept_header() {
    let target = TestTarget::start(Response::text("m 1\n")).await;
    let store = TestStore::open();
    let manager = store.manager();
    manager
        .apply_config(&config(&[fast_job(
            "text",
            &target.address,
            "    scrape_protocols: [PrometheusText0.0.4]\n",
        )]))
        .await;
    wait_until(WAIT, "scraped", || !store.samples("m", &[]).is_empty()).await;
    assert_eq!(
        *target.last_accept.lock().unwrap(),
        // Prometheus's weights: from 0.6 (one more than the five
        // protocols there are) down.
        "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
    );
    manager.stop().await;
}
