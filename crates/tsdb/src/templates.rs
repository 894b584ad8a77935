//! Label templates for head series: the label values that every series of
//! one scrape target carries (`job`, `instance`, and whatever labels the
//! target's relabelling or the sender's external labels add, such as
//! `cluster` or `node`) are kept once per metric shape and target in a
//! [`LabelTemplate`], and each series' label set holds only its other
//! values. On a head of a million series from a thousand targets this
//! takes the label arrays from about 83 to about 50 bytes a series
//! (`examples/head_memory.rs`).
//!
//! The head does not know which labels came from the target: a remote
//! write carries whole label sets. It learns them. Series are grouped by
//! their `job` and `instance` values, and each group keeps the label pairs
//! that all of its series created so far have in common, leaving out the
//! metric name. The first series of a target therefore gets a template
//! that fixes all of its labels but the name, the next ones narrow it to
//! the target's labels, and from then on every series of that target and
//! metric shape shares one template. A template only ever fixes values
//! the series built from it has, and [`Templates::labels`] checks that
//! before it uses one, so a wrong guess costs memory, never a wrong label.
//! Series without both a `job` and an `instance` get the shared-names
//! layout, as before.

use model::{LabelNames, LabelStr, LabelTemplate, Labels, METRIC_NAME};
use std::collections::HashMap;

/// What the head has learnt about one target's labels.
struct Target {
    /// The label pairs, interned and sorted by name, that every series of
    /// the target created since the last [`Templates::clear`] has, except
    /// the metric name.
    common: Vec<(LabelStr, LabelStr)>,
    /// Templates fixing `common`, by the address of their names.
    templates: HashMap<usize, LabelTemplate>,
}

/// The head's label templates, kept under its index lock.
#[derive(Default)]
pub(crate) struct Templates {
    /// By the addresses of the interned `job` and `instance` values; each
    /// target's `common` holds both strings, so the addresses cannot be
    /// reused while the key exists.
    targets: HashMap<(usize, usize), Target>,
}

fn address(s: &LabelStr) -> usize {
    s.as_str().as_ptr() as usize
}

/// The position of `name` among the sorted `names`.
fn position(names: &[LabelStr], name: &str) -> Option<usize> {
    names.binary_search_by(|n| n.as_str().cmp(name)).ok()
}

impl Templates {
    /// The label set of a new series with the interned `names` and
    /// `values` (one per name), built from a template where the series has
    /// a target.
    pub(crate) fn labels(&mut self, names: &LabelNames, values: Vec<LabelStr>) -> Labels {
        match self.template(names, &values) {
            Some(template) => from_template(&template, names, values),
            None => Labels::with_names(names, values),
        }
    }

    /// The template for a series of `names` and `values`, learning from
    /// it first.
    fn template(&mut self, names: &LabelNames, values: &[LabelStr]) -> Option<LabelTemplate> {
        let slice = names.as_slice();
        if slice.len() != values.len() || slice.len() > LabelTemplate::MAX_NAMES {
            return None;
        }
        let job = &values[position(slice, "job")?];
        let instance = &values[position(slice, "instance")?];
        let target = self
            .targets
            .entry((address(job), address(instance)))
            .or_insert_with(|| Target {
                common: slice
                    .iter()
                    .zip(values)
                    .filter(|(name, _)| name.as_str() != METRIC_NAME)
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
                templates: HashMap::new(),
            });
        let before = target.common.len();
        target
            .common
            .retain(|(name, value)| position(slice, name).is_some_and(|i| values[i] == *value));
        if target.common.len() != before {
            target.templates.clear();
        }
        if target.common.is_empty() {
            return None;
        }
        let key = names.as_slice().as_ptr() as usize;
        if let Some(template) = target.templates.get(&key) {
            return Some(template.clone());
        }
        let fixed = slice
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let common = target.common.binary_search_by(|(n, _)| n.cmp(name));
                common.is_ok().then(|| value.clone())
            })
            .collect();
        // `None` only past the limits checked above.
        let template = LabelTemplate::new(names, fixed)?;
        target.templates.insert(key, template.clone());
        Some(template)
    }

    /// Forgets what was learnt and the templates kept for new series; the
    /// series built from them keep theirs. The head calls it when it
    /// removes series, so templates and strings of departed targets do
    /// not stay.
    pub(crate) fn clear(&mut self) {
        self.targets = HashMap::new();
    }

    /// Bytes held here (besides the templates' own allocations, which the
    /// series built from them account for), for the head's estimate.
    pub(crate) fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(usize, usize)>() + std::mem::size_of::<Target>();
        self.targets.capacity() * (entry + 1)
            + self
                .targets
                .values()
                .map(|t| {
                    t.common.capacity() * 16
                        + t.templates.capacity() * (std::mem::size_of::<(usize, usize)>() + 1)
                })
                .sum::<usize>()
    }
}

/// `values` as a label set of `template`, after checking that it fixes
/// only values the series has; the shared-names layout otherwise.
fn from_template(template: &LabelTemplate, names: &LabelNames, values: Vec<LabelStr>) -> Labels {
    let mut own = Vec::with_capacity(template.own_count());
    for (i, value) in values.iter().enumerate() {
        match template.fixed(i) {
            Some(fixed) if fixed == value => {}
            Some(_) => return Labels::with_names(names, values),
            None => own.push(value.clone()),
        }
    }
    Labels::with_template(template, own).unwrap_or_else(|| Labels::with_names(names, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Interner(HashMap<String, LabelStr>);

    impl Interner {
        fn get(&mut self, s: &str) -> LabelStr {
            self.0
                .entry(s.to_string())
                .or_insert_with(|| s.into())
                .clone()
        }

        fn names(&mut self, names: &[&str]) -> LabelNames {
            LabelNames::new(names.iter().map(|n| self.get(n)).collect())
        }
    }

    #[test]
    fn series_of_a_target_share_a_template_of_its_labels() {
        let mut strings = Interner(HashMap::new());
        let mut templates = Templates::default();
        let cpu = strings.names(&["__name__", "cluster", "cpu", "instance", "job", "mode"]);
        let plain = strings.names(&["__name__", "cluster", "instance", "job"]);
        let bare = strings.names(&["__name__", "cluster"]);
        let mut build = |names: &LabelNames, values: &[&str]| {
            let values: Vec<LabelStr> = values.iter().map(|v| strings.get(v)).collect();
            let pairs = Labels::from_pairs(names.as_slice().iter().zip(&values));
            let labels = templates.labels(names, values);
            // Whatever the layout, the set is the series' labels.
            assert_eq!(labels, pairs);
            assert_eq!(labels.to_string(), pairs.to_string());
            labels
        };
        let first = build(&cpu, &["cpu_seconds", "eu", "0", "n1:9100", "node", "idle"]);
        // The first series teaches everything but its name.
        assert_eq!(first.template().map(|t| t.own_count()), Some(1));
        let second = build(&cpu, &["cpu_seconds", "eu", "1", "n1:9100", "node", "user"]);
        let third = build(&cpu, &["cpu_seconds", "eu", "2", "n1:9100", "node", "idle"]);
        let (t2, t3) = (second.template(), third.template());
        assert!(t2.zip(t3).is_some_and(|(a, b)| a.ptr_eq(b)));
        // cluster, instance and job are fixed; name, cpu and mode are not.
        assert_eq!(t3.map(|t| t.own_count()), Some(3));
        let load = build(&plain, &["load1", "eu", "n1:9100", "node"]);
        assert_eq!(load.template().map(|t| t.own_count()), Some(1));
        assert!(
            load.template()
                .is_some_and(|t| t.names().ptr_eq(&plain) && !t.ptr_eq(t3.expect("t3")))
        );
        // Another target learns its own labels.
        let other = build(&cpu, &["cpu_seconds", "us", "0", "n2:9100", "node", "idle"]);
        assert!(other.template().is_some_and(|t| !t.ptr_eq(t3.expect("t3"))));
        // A series without the target's common labels narrows them.
        let narrower = build(&plain, &["load1", "us-2", "n1:9100", "node"]);
        assert_eq!(narrower.template().map(|t| t.own_count()), Some(2));
        // No job or instance: shared names, no template.
        assert!(build(&bare, &["up", "eu"]).template().is_none());
        // Everything built before the narrowing still reads right.
        assert_eq!(first.get("mode"), Some("idle"));
        assert_eq!(second.get("cpu"), Some("1"));
        templates.clear();
        assert_eq!(templates.heap_bytes(), 0);
        assert_eq!(third.get("cluster"), Some("eu"));
    }

    #[test]
    fn a_template_is_used_only_where_its_values_hold() {
        let mut strings = Interner(HashMap::new());
        let names = strings.names(&["__name__", "instance", "job", "mode"]);
        let values = |s: &mut Interner, v: [&str; 4]| v.map(|v| s.get(v)).to_vec();
        let fixed: Vec<Option<LabelStr>> = vec![None, Some(strings.get("a:1")), None, None];
        let template = LabelTemplate::new(&names, fixed).expect("four names");
        let fits = from_template(
            &template,
            &names,
            values(&mut strings, ["up", "a:1", "j", "m"]),
        );
        assert!(fits.template().is_some());
        let other = from_template(
            &template,
            &names,
            values(&mut strings, ["up", "b:1", "j", "m"]),
        );
        assert!(other.template().is_none());
        assert_eq!(other.get("instance"), Some("b:1"));
    }
}
