//! What the alert manager would have notified for a stream of alerts from
//! the past: the rule backtest's answer to "how many pages, to whom".
//!
//! [`simulate`] replays alerts as the rule engine would have posted them
//! (each with the time it was sent) through the configuration's routing
//! tree, aggregation groups (`group_by`, `group_wait`, `group_interval`,
//! `repeat_interval`), time intervals and inhibition rules, on a
//! simulated clock. The decisions are the running alert manager's own
//! functions (`route::match_routes`, the merge of a received alert with
//! the held one, the inhibitor, `needs_update` against a notification log
//! per integration); only the clock and the sending are replaced.
//!
//! Left out on purpose: silences (those of the past are not known, and
//! today's would mute the past), and failed sends (every notification
//! succeeds). An empty group is removed right after its flush (the live
//! alert manager removes it within 30 s).

use std::collections::{BTreeSet, HashMap};

use model::Labels;

use crate::alerts::{self, Alert, PostableAlert};
use crate::manager::{
    Inhibitor, group_labels, group_labels_string, integrations, muted_by_time, needs_update,
};
use crate::nflog::NflogEntry;
use config::alertmanager::{Config, Route};

/// An alert as the rule engine handed it over at `at_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct SentAlert {
    pub at_ms: i64,
    pub labels: Labels,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

/// One notification one integration of a receiver would have sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub at_ms: i64,
    pub receiver: String,
    /// `webhook`, `slack`, `email` or `pagerduty`.
    pub integration: &'static str,
    /// The aggregation group's key (route key and group labels).
    pub group_key: String,
    pub firing: usize,
    pub resolved: usize,
    /// The alerts it carries: the fingerprints ([`fingerprint`]) of its
    /// firing alerts, then of the resolved ones it reports (none when the
    /// integration does not send resolved), each part in ascending order.
    /// A caller that simulates several sources together attributes a
    /// notification to each source one of these came from.
    pub alerts: Vec<u64>,
}

/// The fingerprint [`simulate`] gives `alert` (that of its labels as the
/// alert manager receives them: empty values dropped), or `None` when the
/// alert manager would reject it.
pub fn fingerprint(alert: &SentAlert) -> Option<u64> {
    alerts::receive(postable(alert), alert.at_ms, 0)
        .ok()
        .map(|a| a.fingerprint)
}

/// `alert` as the rule engine posts it.
fn postable(sent: &SentAlert) -> PostableAlert {
    PostableAlert {
        labels: sent
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect(),
        annotations: Vec::new(),
        starts_at_ms: Some(sent.starts_at_ms),
        ends_at_ms: Some(sent.ends_at_ms),
        generator_url: String::new(),
    }
}

struct SimGroup<'c> {
    route: &'c Route,
    key: String,
    alerts: HashMap<u64, Alert>,
    next_flush: i64,
    has_flushed: bool,
}

/// The notifications `alerts` (sorted by `at_ms`, or sorted here) would
/// have caused up to `until_ms`, in time order.
pub fn simulate(config: &Config, alerts: &[SentAlert], until_ms: i64) -> Vec<Notification> {
    let mut alerts: Vec<&SentAlert> = alerts.iter().collect();
    alerts.sort_by_key(|a| a.at_ms);
    let resolve_timeout = config.global.resolve_timeout_ms;
    let mut store: HashMap<u64, Alert> = HashMap::new();
    let mut groups: HashMap<(usize, u64), SimGroup<'_>> = HashMap::new();
    let mut log: HashMap<(String, &'static str, usize, String), NflogEntry> = HashMap::new();
    let mut out = Vec::new();
    let mut next_alert = 0;
    loop {
        let alert_at = alerts.get(next_alert).map(|a| a.at_ms);
        let flush = groups
            .iter()
            .map(|(id, g)| (g.next_flush, *id))
            .min_by_key(|(t, id)| (*t, *id));
        // Alerts arriving at a flush time are in the flush.
        let take_alert = match (alert_at, flush) {
            (Some(a), Some((f, _))) => a <= f,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_alert {
            let sent = alerts[next_alert];
            next_alert += 1;
            if sent.at_ms > until_ms {
                break;
            }
            receive(config, sent, resolve_timeout, &mut store, &mut groups);
            continue;
        }
        let Some((now, id)) = flush else { break };
        if now > until_ms {
            break;
        }
        let Some(group) = groups.get_mut(&id) else {
            break;
        };
        group.next_flush = now + group.route.group_interval_ms.max(1);
        group.has_flushed = true;
        flush_group(config, group, &store, &mut log, now, &mut out);
        if group.alerts.is_empty() {
            groups.remove(&id);
        }
    }
    out
}

/// Merges a received alert into the store and its groups, as
/// `Alertmanager::put_alerts` and its dispatcher do.
fn receive<'c>(
    config: &'c Config,
    sent: &SentAlert,
    resolve_timeout: i64,
    store: &mut HashMap<u64, Alert>,
    groups: &mut HashMap<(usize, u64), SimGroup<'c>>,
) {
    let now = sent.at_ms;
    let Ok(received) = alerts::receive(postable(sent), now, resolve_timeout) else {
        return;
    };
    let merged = match store.get(&received.fingerprint) {
        Some(held) if alerts::overlaps(held, &received) => held.merge(&received, now),
        _ => received,
    };
    store.insert(merged.fingerprint, merged.clone());
    for route in crate::route::match_routes(&config.route, &merged.labels) {
        let labels = group_labels(route, &merged.labels);
        let id = (route.id, alerts::fingerprint(&labels));
        let group = groups.entry(id).or_insert_with(|| SimGroup {
            route,
            key: format!("{}:{}", route.key, group_labels_string(&labels)),
            alerts: HashMap::new(),
            next_flush: now + route.group_wait_ms,
            has_flushed: false,
        });
        if !group.has_flushed && merged.starts_at_ms.saturating_add(route.group_wait_ms) < now {
            group.next_flush = now;
        }
        group.alerts.insert(merged.fingerprint, merged.clone());
    }
}

/// One flush: the live flush's mute stages and dedup, with every send
/// succeeding.
fn flush_group(
    config: &Config,
    group: &mut SimGroup<'_>,
    store: &HashMap<u64, Alert>,
    log: &mut HashMap<(String, &'static str, usize, String), NflogEntry>,
    now: i64,
    out: &mut Vec<Notification>,
) {
    if group.alerts.is_empty() {
        return;
    }
    let route = group.route;
    if muted_by_time(
        config,
        &route.active_time_intervals,
        &route.mute_time_intervals,
        now,
    ) {
        return;
    }
    let inhibitor = Inhibitor::new(config, store, now);
    let sent: Vec<&Alert> = group
        .alerts
        .values()
        .filter(|a| inhibitor.inhibited_by(&a.labels, a.fingerprint).is_none())
        .collect();
    let receiver = config.receiver(&route.receiver);
    if let (false, Some(receiver)) = (sent.is_empty(), receiver) {
        let firing: BTreeSet<u64> = sent
            .iter()
            .filter(|a| !a.resolved_at(now))
            .map(|a| a.fingerprint)
            .collect();
        let resolved: BTreeSet<u64> = sent
            .iter()
            .filter(|a| a.resolved_at(now))
            .map(|a| a.fingerprint)
            .collect();
        for (integration, index) in integrations(receiver) {
            let key = (
                receiver.name.clone(),
                integration.name(),
                index,
                group.key.clone(),
            );
            if !needs_update(
                log.get(&key),
                &firing,
                &resolved,
                integration.send_resolved(),
                route.repeat_interval_ms,
                now,
            ) {
                continue;
            }
            let n_resolved = if integration.send_resolved() {
                resolved.len()
            } else {
                0
            };
            if !firing.is_empty() || n_resolved > 0 {
                let mut carried: Vec<u64> = firing.iter().copied().collect();
                if integration.send_resolved() {
                    carried.extend(resolved.iter().copied());
                }
                out.push(Notification {
                    at_ms: now,
                    receiver: receiver.name.clone(),
                    integration: integration.name(),
                    group_key: group.key.clone(),
                    firing: firing.len(),
                    resolved: n_resolved,
                    alerts: carried,
                });
            }
            log.insert(
                key,
                NflogEntry {
                    timestamp_ms: now,
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    expires_at_ms: i64::MAX,
                },
            );
        }
    }
    group.alerts.retain(|_, a| !a.resolved_at(now));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        config::alertmanager::parse("am.yml", text, None).expect("config")
    }

    fn alert(at: i64, pairs: &[(&str, &str)], starts: i64, ends: i64) -> SentAlert {
        SentAlert {
            at_ms: at,
            labels: Labels::from_pairs(pairs.iter().map(|(k, v)| (*k, *v))),
            starts_at_ms: starts,
            ends_at_ms: ends,
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn grouping_waits_repeats_and_resolves() {
        let config = config(
            "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://example.invalid/\n",
        );
        let mut sent = Vec::new();
        // Two instances fire at 0 and 1m, re-sent every minute until 100m,
        // when both resolve.
        for minute in 0..100 {
            for (instance, from) in [("a", 0), ("b", 1)] {
                if minute >= from {
                    sent.push(alert(
                        minute * MIN,
                        &[("alertname", "Hot"), ("instance", instance)],
                        from * MIN,
                        minute * MIN + 4 * MIN,
                    ));
                }
            }
        }
        for instance in ["a", "b"] {
            sent.push(alert(
                100 * MIN,
                &[("alertname", "Hot"), ("instance", instance)],
                0,
                100 * MIN,
            ));
        }
        let notes = simulate(&config, &sent, 200 * MIN);
        let times: Vec<(i64, usize, usize)> = notes
            .iter()
            .map(|n| (n.at_ms / 1000, n.firing, n.resolved))
            .collect();
        // 30 s: first (a only); 5m30s: b added; the repeat at the first
        // flush more than 1h after 5m30s (Alertmanager compares strictly:
        // 1h5m30s is not yet due, 1h10m30s is); the resolution at the
        // first flush after 100m.
        assert_eq!(
            times,
            vec![(30, 1, 0), (330, 2, 0), (4230, 2, 0), (6030, 0, 2)]
        );
        assert!(notes.iter().all(|n| n.receiver == "team"));
    }

    #[test]
    fn inhibition_and_routes() {
        let config = config(
            "route:\n  receiver: default\n  group_wait: 0s\n  group_interval: 1m\n  routes:\n    - receiver: pager\n      matchers: ['severity=\"page\"']\n      continue: true\n    - receiver: tickets\n      matchers: ['severity=~\"page|ticket\"']\ninhibit_rules:\n  - source_matchers: ['alertname=\"Down\"']\n    target_matchers: ['alertname=\"Slow\"']\n    equal: [instance]\nreceivers:\n  - name: default\n  - name: pager\n    webhook_configs:\n      - url: http://example.invalid/\n  - name: tickets\n    webhook_configs:\n      - url: http://example.invalid/\n        send_resolved: false\n",
        );
        let sent = vec![
            alert(
                0,
                &[
                    ("alertname", "Down"),
                    ("instance", "a"),
                    ("severity", "page"),
                ],
                0,
                10 * MIN,
            ),
            alert(
                0,
                &[
                    ("alertname", "Slow"),
                    ("instance", "a"),
                    ("severity", "ticket"),
                ],
                0,
                10 * MIN,
            ),
            alert(
                0,
                &[
                    ("alertname", "Slow"),
                    ("instance", "b"),
                    ("severity", "ticket"),
                ],
                0,
                10 * MIN,
            ),
        ];
        let notes = simulate(&config, &sent, 30 * MIN);
        let count = |receiver: &str| notes.iter().filter(|n| n.receiver == receiver).count();
        // Down pages (and resolves); tickets get one group (no group_by)
        // with Down and b's Slow (a's is inhibited), and no resolution.
        assert_eq!(count("pager"), 2);
        assert_eq!(count("default"), 0);
        let tickets: Vec<usize> = notes
            .iter()
            .filter(|n| n.receiver == "tickets")
            .map(|n| n.firing)
            .collect();
        assert_eq!(tickets, vec![2]);
    }

    #[test]
    fn one_rules_alert_inhibits_another_rules() {
        let config = config(
            "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1m\ninhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [instance]\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://example.invalid/\n",
        );
        // Two rules' alerts, handed over together: the critical one (rule
        // CpuCritical) mutes the warning one (rule CpuWarning) on the same
        // instance while both fire.
        let critical = alert(
            0,
            &[
                ("alertname", "CpuCritical"),
                ("instance", "a"),
                ("severity", "critical"),
            ],
            0,
            10 * MIN,
        );
        let warning = alert(
            0,
            &[
                ("alertname", "CpuWarning"),
                ("instance", "a"),
                ("severity", "warning"),
            ],
            0,
            10 * MIN,
        );
        let (critical_fp, warning_fp) = (
            fingerprint(&critical).expect("valid"),
            fingerprint(&warning).expect("valid"),
        );
        let notes = simulate(&config, &[critical, warning.clone()], 30 * MIN);
        let seen: Vec<(i64, usize, usize, Vec<u64>)> = notes
            .iter()
            .map(|n| (n.at_ms, n.firing, n.resolved, n.alerts.clone()))
            .collect();
        // The critical alert fires at 0 and resolves at 10m; the warning,
        // resolved at the same time, was never notified, so its
        // resolution is not either.
        assert_eq!(
            seen,
            vec![
                (0, 1, 0, vec![critical_fp]),
                (10 * MIN, 0, 1, vec![critical_fp]),
            ]
        );
        // Alone, the warning alert notifies as usual.
        let alone = simulate(&config, &[warning], 30 * MIN);
        assert_eq!(alone.len(), 2);
        assert!(alone.iter().all(|n| n.alerts == vec![warning_fp]));
    }

    #[test]
    fn two_rules_alerts_share_a_group() {
        let config = config(
            "route:\n  receiver: team\n  group_by: [instance]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 4h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://example.invalid/\n        send_resolved: false\n",
        );
        // DiskFull and MemoryHigh (two rules) on instance a share the
        // group `{instance="a"}`; DiskFull on b has its own.
        let disk_a = alert(
            0,
            &[("alertname", "DiskFull"), ("instance", "a")],
            0,
            60 * MIN,
        );
        let memory_a = alert(
            10_000,
            &[("alertname", "MemoryHigh"), ("instance", "a")],
            10_000,
            60 * MIN,
        );
        let disk_b = alert(
            0,
            &[("alertname", "DiskFull"), ("instance", "b")],
            0,
            60 * MIN,
        );
        let mut both_a = vec![
            fingerprint(&disk_a).expect("valid"),
            fingerprint(&memory_a).expect("valid"),
        ];
        both_a.sort_unstable();
        let b = fingerprint(&disk_b).expect("valid");
        let notes = simulate(&config, &[disk_a, memory_a, disk_b], 2 * 60 * MIN);
        let mut seen: Vec<(i64, String, usize, Vec<u64>)> = notes
            .iter()
            .map(|n| (n.at_ms, n.group_key.clone(), n.firing, n.alerts.clone()))
            .collect();
        seen.sort();
        // One notification per group at 30 s (both of a's alerts in one),
        // and no resolutions (`send_resolved: false`).
        assert_eq!(
            seen,
            vec![
                (30_000, "{}:{instance=\"a\"}".to_string(), 2, both_a),
                (30_000, "{}:{instance=\"b\"}".to_string(), 1, vec![b]),
            ]
        );
    }
}
