//! A small writer for the Prometheus text exposition format (0.0.4) into a
//! caller-provided `String`.
//!
//! Every exporter writes through [`Family`]: one `# HELP` and `# TYPE` pair,
//! then its samples. Label values and help texts are escaped here, so
//! callers pass raw strings read from the system. Exporters whose samples
//! arrive in no family order (one INFO line or one database row at a
//! time) gather them in [`Families`] first.

use std::collections::HashMap;
use std::fmt::Write;

/// The content type of what this writer produces.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric type as the text format spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }
}

/// One metric family being written: created by [`Family::new`], which
/// writes the metadata lines, then fed samples.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl<'a> Family<'a> {
    /// Writes `# HELP` and `# TYPE` for `name`.
    pub fn new(out: &'a mut String, name: &'a str, help: &str, kind: Kind) -> Family<'a> {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(kind.as_str());
        out.push('\n');
        Family { out, name }
    }

    /// One sample of this family with the given labels (written in the
    /// order given).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        write_sample(self.out, self.name, labels, value);
    }

    /// One sample whose name extends the family's (`_sum`, `_count`).
    pub fn sample_suffixed(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        write_sample(self.out, suffix, labels, value);
    }
}

/// Samples gathered by family in any order, written family by family in
/// the order each family first appeared (the text format wants a family's
/// samples together).
#[derive(Debug, Default)]
pub struct Families {
    families: Vec<GatheredFamily>,
    index: HashMap<String, usize>,
}

#[derive(Debug)]
struct GatheredFamily {
    name: String,
    help: String,
    kind: Kind,
    samples: Vec<GatheredSample>,
}

/// (name suffix such as `_sum`, labels, value).
type GatheredSample = (&'static str, Vec<(String, String)>, f64);

impl Families {
    pub fn new() -> Families {
        Families::default()
    }

    /// Adds a sample to family `name` (created with `help` and `kind` on
    /// first use; later help and kind are ignored).
    pub fn add(&mut self, name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], value: f64) {
        self.add_suffixed(name, help, kind, "", labels, value);
    }

    /// Adds a sample whose name extends the family's (`_sum`, `_count`).
    pub fn add_suffixed(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        suffix: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let index = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(GatheredFamily {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: Vec::new(),
                });
                self.index.insert(name.to_string(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.families[index].samples.push((suffix, labels, value));
    }

    /// Whether family `name` has a sample.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// Writes every family.
    pub fn write(&self, out: &mut String) {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for family in &self.families {
            let mut f = Family::new(out, &family.name, &family.help, family.kind);
            for (suffix, labels, value) in &family.samples {
                pairs.clear();
                pairs.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                if suffix.is_empty() {
                    f.sample(&pairs, *value);
                } else {
                    f.sample_suffixed(suffix, &pairs, *value);
                }
            }
        }
    }
}

/// Writes a whole family with a single unlabelled sample.
pub fn single(out: &mut String, name: &str, help: &str, kind: Kind, value: f64) {
    Family::new(out, name, help, kind).sample(&[], value);
}

fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, label_value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, label_value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_value(out, value);
    out.push('\n');
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes a float as the text format spells it: `+Inf`, `-Inf`, `NaN`, or
/// Rust's shortest round-trip decimal (integers without a fraction).
pub fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Writing into a String cannot fail.
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_samples_in_first_seen_order() {
        let mut families = Families::new();
        families.add("b", "B.", Kind::Gauge, &[("x", "1")], 1.0);
        families.add("a", "A.", Kind::Counter, &[], 2.0);
        families.add("b", "ignored", Kind::Counter, &[("x", "2")], 3.0);
        families.add_suffixed("s", "S.", Kind::Summary, "_count", &[], 4.0);
        let mut out = String::new();
        families.write(&mut out);
        assert_eq!(
            out,
            "# HELP b B.\n# TYPE b gauge\nb{x=\"1\"} 1\nb{x=\"2\"} 3\n# HELP a A.\n# TYPE a counter\na 2\n# HELP s S.\n# TYPE s summary\ns_count 4\n"
        );
        assert!(families.contains("a") && !families.contains("c"));
    }

    #[test]
    fn escapes_and_formats() {
        let mut out = String::new();
        let mut f = Family::new(&mut out, "m", "a\\b\nc", Kind::Gauge);
        f.sample(&[("a", "x\"y\\z\nw"), ("b", "")], 1.5);
        f.sample(&[], f64::INFINITY);
        f.sample(&[], f64::NAN);
        f.sample(&[], 1e21);
        assert_eq!(
            out,
            "# HELP m a\\\\b\\nc\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 1.5\nm +Inf\nm NaN\nm 1000000000000000000000\n"
        );
    }
}
