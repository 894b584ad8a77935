//! A rule group removed by a reload ends its series with staleness
//! markers, as Prometheus does; a group that stays keeps writing, and
//! stopping the manager (shutdown) writes no markers.

mod common;

use std::time::Duration;

use common::wait_until;
use model::storage::Queryable;
use model::{Matcher, is_stale_nan};
use rules::parse_rule_file;
use tsdb::Db;

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

#[test]
fn removed_groups_mark_their_series_stale() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = common::open_db(dir.path());
    let (manager, _) = common::manager(&db, &runtime);
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
