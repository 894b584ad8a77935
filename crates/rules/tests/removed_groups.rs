//! A rule group removed by a reload ends its series with staleness
//! markers, as Prometheus does; a group that stays keeps writing, and
//! stopping the manager (shutdown) writes no markers.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use model::storage::{Appendable, Queryable};
use model::{Matcher, is_stale_nan};
use promql::{Engine, EngineOptions};
use rules::{EvalEnv, GroupOptions, NoNotifier, RuleManager, parse_rule_file};
use tsdb::{Db, DbOptions};

const RULES: &str = "groups:
  - name: kept
    interval: 100ms
    rules:
      - record: kept:one
        expr: vector(1)
  - name: removed
    interval: 100ms
    rules:
      - record: removed:two
        expr: vector(2)
      - alert: AlwaysFiring
        expr: vector(3)
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The samples of one metric, oldest first.
fn samples(db: &Db, name: &str) -> Vec<(i64, f64)> {
    let Ok(q) = db.querier(i64::MIN, i64::MAX) else {
        return Vec::new();
    };
    let Ok(set) = q.select(&[Matcher::equal("__name__", name)]) else {
        return Vec::new();
    };
    set.flat_map(|s| s.map(|s| s.samples.collect::<Vec<_>>()).unwrap_or_default())
        .collect()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn removed_groups_mark_their_series_stale() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: 7_200_000,
        wal_segment_size: 1 << 20,
        fsync: false,
    };
    let db = Arc::new(Db::open(dir.path(), opts).expect("open"));
    let env = EvalEnv {
        engine: Arc::new(Engine::new(EngineOptions::prometheus_defaults())),
        queryable: db.clone() as Arc<dyn Queryable>,
        appendable: db.clone() as Arc<dyn Appendable>,
        external_labels: Vec::new(),
        external_url: String::new(),
    };
    let options = GroupOptions {
        default_interval_ms: 100,
        default_query_offset_ms: 0,
        resend_delay_ms: 60_000,
        outage_tolerance_ms: 3_600_000,
        for_grace_period_ms: 0,
    };
    let manager = RuleManager::new(
        env,
        options,
        Arc::new(NoNotifier),
        Arc::new(now_ms),
        runtime.handle().clone(),
    );
    let specs = parse_rule_file("rules.yml", RULES).expect("rule file");
    manager.apply(specs.clone());
    wait_until("both groups evaluated", || {
        !samples(&db, "removed:two").is_empty()
            && !samples(&db, "ALERTS").is_empty()
            && !samples(&db, "kept:one").is_empty()
    });

    // Reload without the second group.
    let kept: Vec<_> = specs.into_iter().filter(|g| g.name == "kept").collect();
    manager.apply(kept);
    wait_until("the removed group's series marked stale", || {
        samples(&db, "removed:two")
            .last()
            .is_some_and(|(_, v)| is_stale_nan(*v))
            && samples(&db, "ALERTS")
                .last()
                .is_some_and(|(_, v)| is_stale_nan(*v))
    });
    // Nothing comes after the markers, and the kept group goes on.
    let ended = samples(&db, "removed:two").len();
    let kept_before = samples(&db, "kept:one").len();
    wait_until("the kept group evaluating again", || {
        samples(&db, "kept:one").len() > kept_before
    });
    assert_eq!(samples(&db, "removed:two").len(), ended);
    assert!(samples(&db, "kept:one").iter().all(|(_, v)| *v == 1.0));

    // Shutdown stops groups without ending their series.
    manager.stop();
    std::thread::sleep(Duration::from_millis(300));
    assert!(samples(&db, "kept:one").iter().all(|(_, v)| *v == 1.0));
}
