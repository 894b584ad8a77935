use super::*;
use crate::push::path::parse_grouping_path;

fn grouping(raw: &str) -> Grouping {
    parse_grouping_path(raw).expect("path")
}

fn push(
    store: &PushStore,
    raw: &str,
    body: &str,
    mode: PushMode,
    now: i64,
) -> Result<(), PushError> {
    let g = grouping(raw);
    let parsed = parse_push_body(body.as_bytes(), &g).expect("body");
    store.push(g, parsed, mode, now)
}

/// Exposed series as sorted `labels value` lines.
fn exposed(store: &PushStore) -> Vec<String> {
    let mut out: Vec<String> = store
        .series()
        .iter()
        .map(|(l, v)| format!("{l} {v}"))
        .collect();
    out.sort();
    out
}

#[test]
fn families_follow_the_type_lines_and_grouping_labels_win() {
    let body = "# HELP d How long.\n# TYPE d histogram\nd_bucket{le=\"1\"} 2\nd_bucket{le=\"+Inf\"} 3\nd_sum 4.5\nd_count 3\n\
                # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n\
                # TYPE c_total counter\nc_total{job=\"mine\",instance=\"x\",a=\"b\"} 7\nloose 1\n";
    let parsed = parse_push_body(body.as_bytes(), &grouping("job/j/instance/i")).expect("parse");
    let names: Vec<(&str, &str, usize)> = parsed
        .families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str(), f.samples.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("d", "histogram", 4),
            ("s", "summary", 3),
            ("c_total", "counter", 1),
            ("loose", "untyped", 1)
        ]
    );
    assert_eq!(parsed.families[0].help, "How long.");
    assert_eq!(
        parsed.families[2].samples[0].0.to_string(),
        "c_total{a=\"b\", instance=\"i\", job=\"j\"}"
    );
    assert!(!parsed.has_timestamps);
    // An empty grouping value removes the label from every sample.
    let parsed = parse_push_body(
        b"m{instance=\"x\"} 1\n",
        &grouping("job/j/instance@base64/="),
    )
    .expect("parse");
    assert_eq!(parsed.families[0].samples[0].0.to_string(), "m{job=\"j\"}");
}

#[test]
fn bodies_the_pushgateway_refuses_are_refused() {
    for (body, want) in [
        ("# TYPE h histogram\nh 1\n", "without a _bucket"),
        ("# TYPE h histogram\nh_bucket 1\n", "no \"le\""),
        ("# TYPE s summary\ns 1\n", "no \"quantile\""),
        ("m 1\n# TYPE m gauge\n", "TYPE reported after samples"),
        ("# HELP m a\n# HELP m b\nm 1\n", "second HELP"),
        ("m{ 1\n", "parsing error"),
    ] {
        let err = parse_push_body(body.as_bytes(), &grouping("job/j")).expect_err(body);
        assert!(err.contains(want), "{body:?}: {err}");
    }
}

#[test]
fn put_replaces_the_group_post_only_same_named_families_delete_the_group() {
    let store = PushStore::in_memory();
    push(&store, "job/j", "a 1\nb 2\n", PushMode::Replace, 1_000).expect("put");
    push(&store, "job/j", "b 3\nc 4\n", PushMode::Merge, 2_000).expect("post");
    assert_eq!(
        exposed(&store),
        [
            "a{job=\"j\"} 1",
            "b{job=\"j\"} 3",
            "c{job=\"j\"} 4",
            "push_failure_time_seconds{job=\"j\"} 0",
            "push_time_seconds{job=\"j\"} 2",
        ]
    );
    push(&store, "job/j", "c 5\n", PushMode::Replace, 3_500).expect("put");
    assert_eq!(
        exposed(&store),
        [
            "c{job=\"j\"} 5",
            "push_failure_time_seconds{job=\"j\"} 0",
            "push_time_seconds{job=\"j\"} 3.5",
        ]
    );
    // An empty PUT empties the group but keeps it (and its push time).
    push(&store, "job/j", "", PushMode::Replace, 4_000).expect("put");
    assert_eq!(
        exposed(&store),
        [
            "push_failure_time_seconds{job=\"j\"} 0",
            "push_time_seconds{job=\"j\"} 4"
        ]
    );
    store.delete(&grouping("job/j")).expect("delete");
    store
        .delete(&grouping("job/absent"))
        .expect("delete of nothing");
    assert!(exposed(&store).is_empty());
}

#[test]
fn inconsistent_pushes_are_refused_and_set_the_failure_time() {
    let store = PushStore::in_memory();
    push(
        &store,
        "job/a",
        "# TYPE m counter\nm 1\n",
        PushMode::Replace,
        1_000,
    )
    .expect("put");
    // Same family with another type in another group.
    let err = push(
        &store,
        "job/b",
        "# TYPE m gauge\nm 1\n",
        PushMode::Replace,
        2_000,
    )
    .expect_err("type");
    assert!(
        err.to_string()
            .contains("has type gauge but should have counter")
            || err
                .to_string()
                .contains("has type counter but should have gauge"),
        "{err}"
    );
    // A differently grouped series is distinct.
    push(
        &store,
        "job/a/x/1",
        "# TYPE m counter\nm{job=\"a\"} 1\n",
        PushMode::Replace,
        2_500,
    )
    .expect("distinct");
    // The same series from two groups.
    let err = push(
        &store,
        "job/a",
        "# TYPE m counter\nm{x=\"1\"} 1\n",
        PushMode::Merge,
        3_000,
    )
    .expect_err("duplicate");
    assert!(err.to_string().contains("collected before"), "{err}");
    let err = push(&store, "job/c", "m2 1 1000\n", PushMode::Merge, 4_000).expect_err("timestamp");
    assert!(
        err.to_string().contains("must not have timestamps"),
        "{err}"
    );
    let lines = exposed(&store);
    let has = |l: &str| lines.contains(&l.to_string());
    // The failed groups exist with a failure time and no push time.
    assert!(has("push_failure_time_seconds{job=\"b\"} 2"), "{lines:?}");
    assert!(has("push_time_seconds{job=\"b\"} 0"), "{lines:?}");
    assert!(has("push_failure_time_seconds{job=\"a\"} 3"), "{lines:?}");
    assert!(has("push_time_seconds{job=\"a\"} 1"), "{lines:?}");
    assert!(has("push_failure_time_seconds{job=\"c\"} 4"), "{lines:?}");
    // The refused pushes changed nothing else.
    assert!(has("m{job=\"a\"} 1"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("m2")), "{lines:?}");
}

#[test]
fn the_groups_file_round_trips_and_bad_files_refuse_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PushStore::open(dir.path()).expect("open");
    push(
        &store,
        "job/j/instance/i",
        "# HELP m Help \\n text.\n# TYPE m gauge\nm{k=\"v\"} NaN\nn +Inf\no 0.1\np -1e300\n",
        PushMode::Replace,
        1_234,
    )
    .expect("put");
    push(
        &store,
        "job/k/e@base64/=",
        "q 1\n",
        PushMode::Replace,
        2_000,
    )
    .expect("put");
    let before = exposed(&store);
    let groups_before = store.groups.lock().expect("lock").clone();
    drop(store);
    let reopened = PushStore::open(dir.path()).expect("reopen");
    assert_eq!(exposed(&reopened), before);
    let groups_after = reopened.groups.lock().expect("lock").clone();
    // NaN != NaN, so compare the text of every value.
    assert_eq!(format!("{groups_before:?}"), format!("{groups_after:?}"));
    assert!(!dir.path().join("groups.json.tmp").exists());

    let family = |labels: &str, value: &str| {
        format!(
            "{{\"version\":1,\"groups\":[{{\"grouping\":[[\"job\",\"j\"]],\"push_time_ms\":0,\"push_failure_time_ms\":0,\"families\":[{{\"name\":\"m\",\"type\":\"gauge\",\"help\":\"\",\"push_time_ms\":0,\"samples\":[{{\"labels\":{labels},\"value\":\"{value}\"}}]}}]}}]}}"
        )
    };
    for bad in [
        "not json".to_string(),
        "{\"version\":2,\"groups\":[]}".to_string(),
        "{\"version\":1,\"groups\":[{\"grouping\":[],\"push_time_ms\":0,\"push_failure_time_ms\":0,\"families\":[]}]}".to_string(),
        family("[[\"__name__\",\"m\"]]", "x"),
        family("[[\"job\",\"j\"],[\"__name__\",\"m\"]]", "1"),
        family("[[\"job\",\"j\"]]", "1"),
    ] {
        std::fs::write(dir.path().join("groups.json"), &bad).expect("write");
        assert!(PushStore::open(dir.path()).is_err(), "{bad}");
    }
    // The good form of the same file opens.
    std::fs::write(
        dir.path().join("groups.json"),
        family("[[\"__name__\",\"m\"],[\"job\",\"j\"]]", "1"),
    )
    .expect("write");
    assert!(PushStore::open(dir.path()).is_ok());
}
