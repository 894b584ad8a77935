//! What the rule-manager tests share: a database in a temporary
//! directory, a manager evaluating every 100 ms over it, and waiting.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use model::storage::{Appendable, Queryable};
use promql::{Engine, EngineOptions};
use rules::{EvalEnv, GroupOptions, NoNotifier, RuleManager};
use tsdb::{Db, DbOptions};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn open_db(dir: &Path) -> Arc<Db> {
    let opts = DbOptions {
        retention_time_ms: None,
        retention_size_bytes: None,
        block_range_ms: 7_200_000,
        wal_segment_size: 1 << 20,
        fsync: false,
    };
    Arc::new(Db::open(dir, opts).expect("open"))
}

/// A manager over `db` (groups every 100 ms by default) and its engine.
pub fn manager(db: &Arc<Db>, runtime: &tokio::runtime::Runtime) -> (RuleManager, Arc<Engine>) {
    let engine = Arc::new(Engine::new(EngineOptions::prometheus_defaults()));
    let env = EvalEnv {
        engine: engine.clone(),
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
    (manager, engine)
}
