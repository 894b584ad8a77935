//! The Go formatting Sloth's output depends on, so generated rules read
//! exactly as Sloth writes them: `%v` of a float (objectives, budgets,
//! burn-rate factors: `0.9990000000000001`, `1e-05`), `strconv.Quote`
//! (label values in selectors) and `model.LabelSet.String` (the SLO's
//! selector). Go's `fmt` itself is the `template` crate's, which
//! already prints like Go; only the compositions live here.

use std::collections::BTreeMap;

/// Go's `%v` (and `%g`) of a float64, as `text/template` prints
/// `{{ .ErrorBudgetRatio }}`: the shortest digits, exponent form below
/// 1e-4 and from 1e6 on.
pub fn go_g(value: f64) -> String {
    template::format_v(&template::Value::Float(value))
}

/// `strconv.FormatFloat(value, 'f', -1, 64)`: the shortest digits, never
/// an exponent. Rust's `Display` for `f64` is exactly that.
pub fn go_f(value: f64) -> String {
    value.to_string()
}

/// `model.LabelSet.String()`: `{a="x", b="y"}`, names sorted, values
/// quoted with `strconv.Quote`.
pub fn label_set(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={}", template::quote(value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_sloth_prints_them() {
        // The texts of Sloth's own generated files (examples/_gen and the
        // 28-day integration fixture).
        let cases: &[(f64, &str)] = &[
            (99.9 / 100.0, "0.9990000000000001"),
            ((100.0 - 99.9) / 100.0, "0.0009999999999999432"),
            (2.0 * 720.0 / 100.0 / 1.0, "14.4"),
            (5.0 * 720.0 / 100.0 / 6.0, "6"),
            (2.0 * 672.0 / 100.0 / 1.0, "13.44"),
            (5.0 * 672.0 / 100.0 / 6.0, "5.6000000000000005"),
            (10.0 * 672.0 / 100.0 / 24.0, "2.8000000000000003"),
            (10.0 * 672.0 / 100.0 / 72.0, "0.9333333333333333"),
            (30.0, "30"),
            (0.95, "0.95"),
            (0.00001, "1e-05"),
            (1e6, "1e+06"),
        ];
        for (value, want) in cases {
            assert_eq!(go_g(*value), *want, "{value:e}");
        }
        assert_eq!(go_f(99.9), "99.9");
        assert_eq!(go_f(95.0), "95");
        assert_eq!(go_f(1e-5), "0.00001");
    }

    #[test]
    fn selectors_print_as_label_sets() {
        let labels = BTreeMap::from([
            ("sloth_slo".to_string(), "x".to_string()),
            ("sloth_id".to_string(), "s-\"x".to_string()),
        ]);
        assert_eq!(label_set(&labels), r#"{sloth_id="s-\"x", sloth_slo="x"}"#);
    }
}
