//! Label matchers, with Prometheus's semantics.
//!
//! A matcher against a label that a series lacks sees the empty string, so
//! `foo=""` selects series without `foo` and `foo=~".*"` selects every series.
//! Regexes are anchored at both ends.

use regex::Regex;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?} for label {name:?}: {message}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                Some(compile_cached(&value).map_err(|message| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    message,
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value (empty when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::RegexMatch => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::RegexNoMatch => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the matcher matches a series that lacks the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Compiled regexes by pattern. Dashboards and rules send the same
/// selectors again and again, and compiling one (the regex crate builds a
/// DFA up front for small patterns) measured at over half the time of a
/// small query. A `Regex` is a cheap handle to shared compiled state.
static REGEX_CACHE: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, Regex>>,
> = std::sync::LazyLock::new(Default::default);

/// Most cached patterns; past this the cache is emptied and refills with
/// what is used. Patterns are small, so this bounds it to a few MiB.
const REGEX_CACHE_CAPACITY: usize = 4096;

fn compile_cached(pattern: &str) -> Result<Regex, String> {
    let mut cache = REGEX_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = cache.get(pattern) {
        return Ok(r.clone());
    }
    let r = Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| e.to_string())?;
    if cache.len() >= REGEX_CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(pattern.to_string(), r.clone());
    Ok(r)
}

/// Whether a label set satisfies every matcher.
pub fn matches_all(labels: &crate::Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored() {
        let m = Matcher::new(MatchOp::RegexMatch, "job", "no.e").unwrap();
        assert!(m.matches("node"));
        assert!(!m.matches("nodes"));
        assert!(!m.matches("a node"));
    }

    #[test]
    fn absent_label_is_empty() {
        let l = crate::Labels::from_pairs([("a", "1")]);
        assert!(matches_all(&l, &[Matcher::equal("b", "")]));
        assert!(!matches_all(
            &l,
            &[Matcher::new(MatchOp::RegexMatch, "b", ".+").unwrap()]
        ));
        assert!(matches_all(
            &l,
            &[Matcher::new(MatchOp::RegexMatch, "b", ".*").unwrap()]
        ));
    }

    #[test]
    fn dot_matches_newline() {
        let m = Matcher::new(MatchOp::RegexMatch, "a", "x.y").unwrap();
        assert!(m.matches("x\ny"));
    }

    #[test]
    fn bad_regex_is_an_error() {
        let e = Matcher::new(MatchOp::RegexMatch, "a", "(").unwrap_err();
        assert!(e.to_string().contains("invalid regular expression"));
    }
}
