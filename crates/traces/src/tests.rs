use super::*;

fn span(trace: u8, id: u8, parent: u8, service: &str, name: &str, start: u64, dur: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[15] = trace;
    let mut span_id = [0u8; 8];
    span_id[7] = id;
    let mut parent_span_id = [0u8; 8];
    parent_span_id[7] = parent;
    Span {
        trace_id,
        span_id,
        parent_span_id,
        start_unix_nano: start,
        duration_nano: dur,
        kind: 2,
        status_code: if name == "bad" { 2 } else { 0 },
        service: service.to_string(),
        name: name.to_string(),
        status_message: if name == "bad" {
            "nan".to_string()
        } else {
            String::new()
        },
        scope_name: "scope".to_string(),
        scope_version: "1".to_string(),
        attributes: vec![
            Attribute {
                key: "step".to_string(),
                value: Value::Int(i64::from(id)),
            },
            Attribute {
                key: "loss".to_string(),
                value: Value::Double(0.5),
            },
        ],
        resource: vec![
            Attribute {
                key: "service.name".to_string(),
                value: Value::Str(service.to_string()),
            },
            Attribute {
                key: "host".to_string(),
                value: Value::Str(format!("gpu-{}", id % 2)),
            },
        ],
        events: vec![Event {
            time_unix_nano: start + 1,
            name: "checkpoint".to_string(),
            attributes: vec![],
        }],
        links: vec![],
    }
}

fn opts() -> Options {
    Options {
        fsync: true,
        ..Options::defaults()
    }
}

fn all() -> Query {
    Query {
        end_unix_nano: u64::MAX,
        limit: 100,
        ..Query::default()
    }
}

fn sample() -> Vec<Span> {
    vec![
        span(1, 1, 0, "trainer", "training_step", 1_000, 500),
        span(1, 2, 1, "trainer", "forward_pass", 1_100, 100),
        span(1, 3, 1, "model", "backward_pass", 1_250, 200),
        span(2, 4, 0, "trainer", "bad", 5_000, 50),
    ]
}

/// Every read path gives one answer: the head, the head replayed from the
/// WAL, and a block.
#[test]
fn head_wal_and_block_answer_alike() {
    let dir = tempfile::tempdir().expect("dir");
    let check = |store: &Store| {
        let mut t1 = [0u8; 16];
        t1[15] = 1;
        let traces = store.traces(&[t1]);
        let got = &traces[&t1];
        let mut want = sample()[..3].to_vec();
        want.sort_by_key(|s| s.start_unix_nano);
        assert_eq!(got, &want);
        let found = store.search(&Query {
            service: Some("trainer".into()),
            ..all()
        });
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].start_unix_nano, 5_000, "newest first");
        let found = store.search(&Query {
            tags: vec![("error".into(), "true".into())],
            ..all()
        });
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].trace_id[15], 2);
        let found = store.search(&Query {
            tags: vec![("step".into(), "3".into())],
            min_duration_nano: Some(150),
            ..all()
        });
        assert_eq!(found.len(), 1);
        // Resource and span attributes together, a double, the status
        // message: the block path matches encoded bytes, the others
        // decoded spans, to the same answers.
        let found = store.search(&Query {
            tags: vec![("host".into(), "gpu-0".into()), ("step".into(), "2".into())],
            ..all()
        });
        assert_eq!(found.len(), 1);
        let found = store.search(&Query {
            tags: vec![("host".into(), "gpu-0".into()), ("step".into(), "3".into())],
            ..all()
        });
        assert!(found.is_empty());
        let found = store.search(&Query {
            tags: vec![
                ("loss".into(), "0.5".into()),
                ("kind".into(), "server".into()),
            ],
            ..all()
        });
        assert_eq!(found.len(), 2);
        let found = store.search(&Query {
            tags: vec![("loss".into(), "0.50".into())],
            ..all()
        });
        assert!(found.is_empty(), "text equality, as Jaeger compares tags");
        let found = store.search(&Query {
            tags: vec![("status.message".into(), "nan".into())],
            ..all()
        });
        assert_eq!(found.len(), 1);
        let found = store.search(&Query {
            tags: vec![("service.name".into(), "model".into())],
            ..all()
        });
        assert_eq!(found.len(), 1);
        let found = store.search(&Query {
            operation: Some("forward_pass".into()),
            min_duration_nano: Some(101),
            ..all()
        });
        assert!(found.is_empty());
        let found = store.search(&Query {
            start_unix_nano: 4_000,
            ..all()
        });
        assert_eq!(found.len(), 1);
        assert_eq!(store.services(), ["model", "trainer"]);
        assert_eq!(store.operations(Some("model")).len(), 1);
        assert_eq!(
            store.dependencies(0, u64::MAX),
            [("trainer".to_string(), "model".to_string(), 1)]
        );
        assert!(store.tag_names().0.contains(&"step".to_string()));
        assert_eq!(store.tag_names().1, ["host", "service.name"]);
        assert_eq!(store.tag_values("step", 10), ["1", "2", "3", "4"]);
    };
    {
        let store = Store::open(dir.path(), opts()).expect("open");
        store.append(sample()[..2].to_vec()).expect("append");
        store.append(sample()[2..].to_vec()).expect("append");
        check(&store);
    }
    let store = Store::open(dir.path(), opts()).expect("reopen");
    check(&store);
    store.maintain(10_000, true).expect("cut");
    assert_eq!(store.stats().blocks, 1);
    assert_eq!(store.stats().head_spans, 0);
    check(&store);
    drop(store);
    let store = Store::open(dir.path(), opts()).expect("reopen");
    assert_eq!(
        store.stats().head_spans,
        0,
        "the block's segments are not replayed"
    );
    check(&store);
    // Spans split across the head and a block join into one trace.
    store
        .append(vec![span(1, 9, 1, "trainer", "optimizer_step", 1_600, 10)])
        .expect("append");
    let mut t1 = [0u8; 16];
    t1[15] = 1;
    assert_eq!(store.traces(&[t1])[&t1].len(), 4);
}

#[test]
fn a_torn_wal_tail_is_truncated_and_the_rest_kept() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = Store::open(dir.path(), opts()).expect("open");
        store.append(sample()).expect("append");
    }
    let seg = dir.path().join("wal").join("00000001");
    let mut bytes = std::fs::read(&seg).expect("read");
    let whole = bytes.len();
    bytes.extend_from_slice(&wal::record(&sample())[..40]);
    std::fs::write(&seg, &bytes).expect("write");
    let store = Store::open(dir.path(), opts()).expect("open");
    assert_eq!(store.stats().head_spans, 4);
    assert_eq!(std::fs::metadata(&seg).expect("meta").len(), whole as u64);
}

#[test]
fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path(), opts()).expect("open");
    store.append(sample()).expect("append");
    store.maintain(10_000, true).expect("cut");
    store
        .append(vec![span(7, 1, 0, "x", "y", 2_000_000_000_000, 5)])
        .expect("append");
    store.maintain(2_000_000_000_000, true).expect("cut");
    assert_eq!(store.stats().blocks, 2);
    store.set_options(Options {
        retention: Some(Duration::from_secs(60)),
        ..opts()
    });
    store.maintain(2_000_000_000_000, false).expect("retain");
    assert_eq!(store.stats().blocks, 1);
    store.set_options(Options {
        retention: None,
        retention_bytes: Some(1),
        ..opts()
    });
    store.maintain(2_000_000_000_000, false).expect("retain");
    assert_eq!(store.stats().blocks, 0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("blocks"))
            .expect("ls")
            .count(),
        0
    );
}

#[test]
fn codecs_round_trip_and_refuse_garbage() {
    let spans = sample();
    assert_eq!(decode_batch(&encode_batch(&spans)).expect("batch"), spans);
    let mut all_values = span(3, 1, 0, "s", "n", 1, 2);
    all_values.attributes = [
        Value::Str("x".into()),
        Value::Bool(true),
        Value::Int(-5),
        Value::Double(1.5),
        Value::Bytes(vec![1, 2]),
        Value::Json("[1]".into()),
    ]
    .into_iter()
    .map(|value| Attribute {
        key: "k".into(),
        value,
    })
    .collect();
    all_values.links = vec![Link {
        trace_id: [9; 16],
        span_id: [8; 8],
        attributes: vec![],
    }];
    let one = vec![all_values];
    assert_eq!(decode_batch(&encode_batch(&one)).expect("batch"), one);
    let file = block::encode(&spans);
    let mut sorted = spans.clone();
    sorted.sort_by_key(|s| (s.trace_id, s.start_unix_nano, s.span_id));
    assert_eq!(block::decode(&file).expect("block"), sorted);
    for cut in 0..file.len() {
        assert!(block::decode(&file[..cut]).is_err());
    }
    let mut flipped = file.clone();
    flipped[20] ^= 1;
    assert!(block::decode(&flipped).is_err());
    let batch = encode_batch(&spans);
    for cut in 0..batch.len() {
        assert!(decode_batch(&batch[..cut]).is_err());
    }
}

/// A crash after a block is renamed into place but before its WAL
/// segments are deleted: the segments come back on disk, and replay skips
/// them (`wal_through`), so no span is counted twice.
#[test]
fn a_batch_of_one_bare_span_decodes() {
    // The smallest span there is: every string, list and number empty or 0.
    // Found by the trace_wal fuzz target, when the batch reader's size floor
    // was one byte above it.
    let bare = vec![Span::default()];
    let bytes = encode_batch(&bare);
    assert_eq!(bytes.len(), 1 + 45);
    assert_eq!(decode_batch(&bytes).expect("bare span"), bare);
}

#[test]
fn segments_a_block_holds_are_not_replayed_after_a_crash_mid_cut() {
    let dir = tempfile::tempdir().expect("dir");
    let segment = dir.path().join("wal").join("00000001");
    {
        let store = Store::open(dir.path(), opts()).expect("open");
        store.append(sample()).expect("append");
        let saved = std::fs::read(&segment).expect("segment");
        store.maintain(10_000, true).expect("cut");
        assert!(!segment.exists(), "the cut deletes the segments it holds");
        std::fs::write(&segment, saved).expect("put it back");
    }
    let store = Store::open(dir.path(), opts()).expect("reopen");
    assert_eq!(store.stats().head_spans, 0);
    assert_eq!(store.stats().block_spans, 4);
    assert!(
        !segment.exists(),
        "replay deletes what a block already holds"
    );
    let mut t1 = [0u8; 16];
    t1[15] = 1;
    assert_eq!(store.traces(&[t1])[&t1].len(), 3);
    // A half-written block directory is removed on sight.
    drop(store);
    std::fs::create_dir_all(dir.path().join("blocks").join("00000000000000ff.tmp")).expect("tmp");
    let store = Store::open(dir.path(), opts()).expect("reopen");
    assert!(
        !dir.path()
            .join("blocks")
            .join("00000000000000ff.tmp")
            .exists()
    );
    assert_eq!(store.stats().blocks, 1);
}
