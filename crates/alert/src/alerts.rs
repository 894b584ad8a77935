//! Alerts as the alert manager holds them, and the rules for receiving
//! them (Alertmanager's `POST /api/v2/alerts`): defaults for missing
//! times, validation, and merging with the alert already held.

use model::Labels;

/// An alert as a client posts it. Times are Unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostableAlert {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

/// An alert held by the alert manager.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    /// Sorted by name.
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    /// When the alert resolves (or resolved); for an alert posted without
    /// an end, the receive time plus `resolve_timeout`.
    pub ends_at_ms: i64,
    pub generator_url: String,
    pub updated_at_ms: i64,
    /// Whether `ends_at_ms` was set by `resolve_timeout`, not the client.
    pub timeout: bool,
    pub fingerprint: u64,
}

impl Alert {
    /// Whether the alert is resolved at `now_ms`.
    pub fn resolved_at(&self, now_ms: i64) -> bool {
        self.ends_at_ms <= now_ms
    }

    /// Alertmanager's `Merge`: the younger alert's data, the earliest
    /// start, and the end time by the rules for explicit and timeout ends.
    pub fn merge(&self, newer: &Alert, now_ms: i64) -> Alert {
        if newer.updated_at_ms < self.updated_at_ms {
            return newer.merge(self, now_ms);
        }
        let mut merged = newer.clone();
        if self.starts_at_ms < newer.starts_at_ms {
            merged.starts_at_ms = self.starts_at_ms;
        }
        if newer.resolved_at(now_ms) {
            if self.resolved_at(now_ms) && self.ends_at_ms > newer.ends_at_ms {
                merged.ends_at_ms = self.ends_at_ms;
            }
        } else if self.ends_at_ms > newer.ends_at_ms && !self.timeout {
            merged.ends_at_ms = self.ends_at_ms;
        }
        merged
    }
}

/// Prometheus's label-set fingerprint: FNV-1a 64 over each name and value
/// (sorted by name), each followed by a 0xff byte. Shown as 16 hex digits.
pub fn fingerprint(labels: &Labels) -> u64 {
    let mut hash = model::hash::Fnv1a64::new();
    for label in labels.iter() {
        hash.write(label.name.as_bytes());
        hash.write(&[0xff]);
        hash.write(label.value.as_bytes());
        hash.write(&[0xff]);
    }
    hash.finish()
}

/// Turns a posted alert into a held one, as Alertmanager's API does: a
/// missing start is the end (or now), a missing end is now plus
/// `resolve_timeout`. Errors say what is wrong with the alert.
pub fn receive(
    posted: PostableAlert,
    now_ms: i64,
    resolve_timeout_ms: i64,
) -> Result<Alert, String> {
    let mut pairs = Vec::with_capacity(posted.labels.len());
    for (name, value) in posted.labels {
        if !config::decode::is_valid_label_name(&name) {
            return Err(format!("invalid label set: invalid name {name:?}"));
        }
        if value.is_empty() {
            continue;
        }
        if pairs
            .iter()
            .any(|(existing, _): &(String, String)| *existing == name)
        {
            return Err(format!("invalid label set: duplicate label {name:?}"));
        }
        pairs.push((name, value));
    }
    if pairs.is_empty() {
        return Err("at least one label pair required".to_string());
    }
    let labels = Labels::from_pairs(pairs);
    let mut annotations = Vec::with_capacity(posted.annotations.len());
    for (name, value) in posted.annotations {
        if !config::decode::is_valid_label_name(&name) {
            return Err(format!("invalid annotations: invalid name {name:?}"));
        }
        annotations.push((name, value));
    }
    annotations.sort();
    let starts_at_ms = match (posted.starts_at_ms, posted.ends_at_ms) {
        (Some(start), _) => start,
        (None, Some(end)) => end,
        (None, None) => now_ms,
    };
    let (ends_at_ms, timeout) = match posted.ends_at_ms {
        Some(end) => (end, false),
        None => (now_ms.saturating_add(resolve_timeout_ms), true),
    };
    if ends_at_ms < starts_at_ms {
        return Err("start time must be before end time".to_string());
    }
    let fingerprint = fingerprint(&labels);
    Ok(Alert {
        labels,
        annotations,
        starts_at_ms,
        ends_at_ms,
        generator_url: posted.generator_url,
        updated_at_ms: now_ms,
        timeout,
        fingerprint,
    })
}

/// Whether a newly received alert overlaps the held one and so is merged
/// with it rather than replacing it (Alertmanager's provider rule).
pub fn overlaps(held: &Alert, received: &Alert) -> bool {
    (received.ends_at_ms > held.starts_at_ms && received.ends_at_ms < held.ends_at_ms)
        || (received.starts_at_ms > held.starts_at_ms && received.starts_at_ms < held.ends_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(labels: &[(&str, &str)]) -> PostableAlert {
        PostableAlert {
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..PostableAlert::default()
        }
    }

    #[test]
    fn fingerprints_match_prometheus() {
        // The values of prometheus/common's model/signature_test.go: the
        // empty set hashes to the FNV offset basis.
        assert_eq!(fingerprint(&Labels::empty()), 14_695_981_039_346_656_037);
        assert_eq!(
            fingerprint(&Labels::from_pairs([
                ("name", "garland, briggs"),
                ("fear", "love is not enough"),
            ])),
            5_799_056_148_416_392_346
        );
        let a = fingerprint(&Labels::from_pairs([("a", "b")]));
        let b = fingerprint(&Labels::from_pairs([("a", "c")]));
        assert_ne!(a, b);
    }

    #[test]
    fn defaults_for_missing_times() {
        let alert = receive(posted(&[("alertname", "x")]), 1000, 300_000).unwrap();
        assert_eq!(alert.starts_at_ms, 1000);
        assert_eq!(alert.ends_at_ms, 301_000);
        assert!(alert.timeout);
        let mut resolved = posted(&[("alertname", "x")]);
        resolved.ends_at_ms = Some(500);
        let alert = receive(resolved, 1000, 300_000).unwrap();
        assert_eq!((alert.starts_at_ms, alert.ends_at_ms), (500, 500));
        assert!(alert.resolved_at(1000));
    }

    #[test]
    fn invalid_alerts() {
        assert!(receive(posted(&[]), 0, 1).is_err());
        assert!(receive(posted(&[("a", "")]), 0, 1).is_err());
        assert!(receive(posted(&[("1a", "x")]), 0, 1).is_err());
        let mut backwards = posted(&[("a", "x")]);
        backwards.starts_at_ms = Some(10);
        backwards.ends_at_ms = Some(5);
        assert!(receive(backwards, 0, 1).is_err());
    }

    #[test]
    fn merge_keeps_earliest_start_and_explicit_end() {
        let old = receive(
            PostableAlert {
                starts_at_ms: Some(100),
                ends_at_ms: Some(10_000),
                ..posted(&[("a", "x")])
            },
            200,
            1000,
        )
        .unwrap();
        let new = receive(posted(&[("a", "x")]), 300, 1000).unwrap();
        let merged = old.merge(&new, 300);
        assert_eq!(merged.starts_at_ms, 100);
        // The older explicit end is later than the new timeout end: it wins.
        assert_eq!(merged.ends_at_ms, 10_000);
        assert!(overlaps(&old, &new));
    }
}
