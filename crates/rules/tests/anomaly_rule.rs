//! `anomaly_score(...) > 3` with `for` in the rule engine (issue #23): a
//! series that is steady for an hour and then shifts up makes the alert
//! pending at the shift, firing `for` later, and resolved once the shifted
//! level is the majority of the window (the median has moved to it); and
//! a backtest of the same rule over the same data says the same.

use std::sync::Arc;

use model::Labels;
use model::storage::{Appendable, Queryable};
use promql::{Engine, EngineOptions};
use rules::backtest::{BacktestOptions, StateInterval, backtest};
use rules::{AlertState, EvalEnv, Group, GroupOptions, parse_rule_file};
use tsdb::{Db, DbOptions};

const MINUTE: i64 = 60_000;

const RULES: &str = r#"
groups:
  - name: anomaly
    interval: 1m
    rules:
      - alert: RequestRateAnomalous
        expr: anomaly_score(requests[30m]) > 3
        for: 5m
        labels:
          severity: page
"#;

#[test]
fn anomaly_score_with_for_fires_in_the_rule_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(
        Db::open(
            dir.path(),
            DbOptions {
                retention_time_ms: None,
                retention_size_bytes: None,
                block_range_ms: 7_200_000,
                wal_segment_size: 1 << 20,
                fsync: false,
            },
        )
        .expect("open db"),
    );
    // 100..104 repeating for an hour, then 200: a level shift at 60m.
    let labels = Labels::from_pairs([("__name__", "requests"), ("job", "api")]);
    let mut app = db.appender();
    for m in 0..=100i64 {
        let v = if m < 60 {
            100.0 + (m % 5) as f64
        } else {
            200.0
        };
        app.append(&labels, m * MINUTE, v).expect("append");
    }
    app.commit().expect("commit");
    drop(app);

    let env = EvalEnv {
        engine: Arc::new(Engine::new(EngineOptions::prometheus_defaults())),
        queryable: db.clone() as Arc<dyn Queryable>,
        appendable: db.clone() as Arc<dyn Appendable>,
        external_labels: Vec::new(),
        external_url: "http://osprey".to_string(),
    };
    let options = GroupOptions {
        default_interval_ms: MINUTE,
        default_query_offset_ms: 0,
        resend_delay_ms: MINUTE,
        outage_tolerance_ms: 3_600_000,
        for_grace_period_ms: 0,
    };
    // The backtest first: the live evaluation below writes ALERTS.
    let backtested = backtest(
        &env.engine,
        env.queryable.clone(),
        parse_rule_file("anomaly.yml", RULES).expect("rules parse"),
        &BacktestOptions {
            from_ms: 0,
            to_ms: 100 * MINUTE,
            group: options.clone(),
            external_labels: Vec::new(),
            external_url: "http://osprey".to_string(),
        },
    )
    .expect("backtest");
    let spec = parse_rule_file("anomaly.yml", RULES)
        .expect("rules parse")
        .remove(0);
    let mut group = Group::new(spec, &options);
    group.mark_restored();

    let mut states = Vec::new();
    let mut sent = Vec::new();
    for m in 0..=100i64 {
        for alert in group.eval(&env, m * MINUTE) {
            sent.push((m, alert.ends_at_ms));
        }
        let rule = &group.rules[0];
        assert_eq!(rule.last_error, None, "evaluation at {m}m");
        let state = rule
            .alerts()
            .iter()
            .find(|a| a.state != AlertState::Inactive)
            .map(|a| {
                assert_eq!(a.labels.get("severity"), Some("page"));
                assert_eq!(a.labels.get("job"), Some("api"));
                a.state
            })
            .unwrap_or(AlertState::Inactive);
        states.push(state);
    }
    // Steady: the score of 100..104 against itself stays under 3.
    for (m, state) in states.iter().enumerate().take(60) {
        assert_eq!(*state, AlertState::Inactive, "{m}m");
    }
    // The shift: pending for the 5m of `for`, then firing.
    for (m, state) in states.iter().enumerate().take(65).skip(60) {
        assert_eq!(*state, AlertState::Pending, "{m}m");
    }
    // Firing until 200 is half the 29-sample baseline (at 75m: 60m..74m
    // of 46m..74m), when the median and the newest sample agree.
    for (m, state) in states.iter().enumerate().take(75).skip(65) {
        assert_eq!(*state, AlertState::Firing, "{m}m");
    }
    for (m, state) in states.iter().enumerate().skip(75) {
        assert_eq!(*state, AlertState::Inactive, "{m}m");
    }
    // The backtest: the same states as the live engine, minute by minute.
    let mut live_intervals: Vec<StateInterval> = Vec::new();
    for (m, state) in states.iter().enumerate() {
        let at = m as i64 * MINUTE;
        if let Some(last) = live_intervals.last_mut()
            && last.end_ms.is_none()
            && last.state != *state
        {
            last.end_ms = Some(at);
        }
        let open = live_intervals
            .last()
            .is_some_and(|l| l.end_ms.is_none() && l.state == *state);
        if *state != AlertState::Inactive && !open {
            live_intervals.push(StateInterval {
                state: *state,
                start_ms: at,
                end_ms: None,
            });
        }
    }
    let rule = &backtested.rules[0];
    assert_eq!(rule.error, None);
    assert_eq!(rule.alerts.len(), 1, "{:?}", rule.alerts);
    assert_eq!(rule.alerts[0].intervals, live_intervals);
    assert_eq!(live_intervals.len(), 2, "{live_intervals:?}");

    // Sent to the alert manager while firing, and once more resolved.
    assert!(sent.iter().any(|(m, _)| *m == 65), "{sent:?}");
    assert!(
        sent.iter().any(|(m, end)| *m == 75 && *end <= 75 * MINUTE),
        "{sent:?}"
    );
}
