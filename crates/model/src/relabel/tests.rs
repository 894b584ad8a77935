//! Table-driven relabelling tests. Every expected result was checked
//! against Prometheus's documentation of the action and the behaviour its
//! own `model/relabel` tests pin down (hash values included).

use std::collections::BTreeMap;

use super::*;

/// A rule with Prometheus's defaults, changed by `edit`.
fn rule(edit: impl FnOnce(&mut RelabelConfig)) -> RelabelConfig {
    let mut config = RelabelConfig::new();
    edit(&mut config);
    config.validate().unwrap_or_else(|error| panic!("{error}"));
    config
}

fn regex(source: &str) -> RelabelRegex {
    RelabelRegex::new(source).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Runs `rules` over `input`; `expected` is `None` when the set is dropped.
fn check(input: &[(&str, &str)], rules: &[RelabelConfig], expected: Option<&[(&str, &str)]>) {
    let mut working = labels(input);
    let kept = process(&mut working, rules);
    match expected {
        None => assert!(!kept, "expected a drop, got {working:?}"),
        Some(expected) => {
            assert!(kept, "unexpected drop of {input:?}");
            assert_eq!(working, labels(expected), "input {input:?}");
        }
    }
}

#[test]
fn replace() {
    // Group references in braces, repeated.
    check(
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.regex = regex("f(.*)");
            r.target_label = "d".into();
            r.replacement = "ch${1}-ch${1}".into();
        })],
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    );
    // Several source labels joined by the separator; rules see each
    // other's results.
    check(
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        &[
            rule(|r| {
                r.source_labels = strings(&["a", "b"]);
                r.regex = regex("f(.*);(.*)r");
                r.target_label = "a".into();
                r.replacement = "b${1}${2}m".into();
            }),
            rule(|r| {
                r.source_labels = strings(&["c", "a"]);
                r.regex = regex("(b).*b(.*)ba(.*)");
                r.target_label = "d".into();
                r.replacement = "$1$2$2$3".into();
            }),
        ],
        Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    );
    // The regex is anchored: "f" does not match "boo", so nothing changes.
    check(
        &[("a", "boo")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.regex = regex("f");
            r.target_label = "b".into();
            r.replacement = "bar".into();
        })],
        Some(&[("a", "boo")]),
    );
    check(
        &[("a", "abc")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.regex = regex(".*(b).*");
            r.target_label = "d".into();
        })],
        Some(&[("a", "abc"), ("d", "b")]),
    );
    // Target label built from a group; a replacement that expands to
    // nothing deletes the target; an invalid expanded target is skipped.
    check(
        &[("a", "some-name-value")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.regex = regex("some-([^-]+)-([^,]+)");
            r.replacement = "${2}".into();
            r.target_label = "${1}".into();
        })],
        Some(&[("a", "some-name-value"), ("name", "value")]),
    );
    check(
        &[("a", "some-name-value")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.regex = regex("some-([^-]+)-([^,]+)");
            r.replacement = "${3}".into();
            r.target_label = "${1}".into();
        })],
        Some(&[("a", "some-name-value")]),
    );
    check(
        &[("a", "some-name-0")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.regex = regex("some-([^-]+)-([^,]+)");
            r.replacement = "${1}".into();
            r.target_label = "${3}".into();
        })],
        Some(&[("a", "some-name-0")]),
    );
    // The default rule copies the joined value; missing sources join as "".
    check(
        &[("__address__", "host:9100")],
        &[rule(|r| {
            r.source_labels = strings(&["__address__"]);
            r.target_label = "instance".into();
        })],
        Some(&[("__address__", "host:9100"), ("instance", "host:9100")]),
    );
    // Empty input, default regex, no references: the literal replacement
    // is set; an empty literal replacement deletes the target.
    check(
        &[("a", "x")],
        &[rule(|r| {
            r.source_labels = strings(&["missing"]);
            r.target_label = "env".into();
            r.replacement = "prod".into();
        })],
        Some(&[("a", "x"), ("env", "prod")]),
    );
    check(
        &[("a", "x"), ("env", "dev")],
        &[rule(|r| {
            r.target_label = "env".into();
            r.replacement = "".into();
        })],
        Some(&[("a", "x")]),
    );
    // Named groups, and `$1x` naming a group "1x" that does not exist.
    check(
        &[("a", "host-7")],
        &[
            rule(|r| {
                r.source_labels = strings(&["a"]);
                r.regex = regex("(?P<kind>[a-z]+)-(?P<n>[0-9]+)");
                r.target_label = "b".into();
                r.replacement = "$kind/${n}/$$".into();
            }),
            rule(|r| {
                r.source_labels = strings(&["a"]);
                r.regex = regex("(.*)");
                r.target_label = "c".into();
                r.replacement = "$1x-${1}x".into();
            }),
        ],
        Some(&[("a", "host-7"), ("b", "host/7/$"), ("c", "-host-7x")]),
    );
    // A real-life chain over service-discovery tags.
    check(
        &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
        &[
            rule(|r| {
                r.source_labels = strings(&["__meta_sd_tags"]);
                r.regex = regex("(?:.+,|^)path:(/[^,]+).*");
                r.target_label = "__metrics_path__".into();
            }),
            rule(|r| {
                r.source_labels = strings(&["__meta_sd_tags"]);
                r.regex = regex("(?:.+,|^)job:([^,]+).*");
                r.target_label = "job".into();
            }),
            rule(|r| {
                r.source_labels = strings(&["__meta_sd_tags"]);
                r.regex = regex("(?:.+,|^)label:([^=]+)=([^,]+).*");
                r.replacement = "${2}".into();
                r.target_label = "${1}".into();
            }),
        ],
        Some(&[
            ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar"),
        ]),
    );
}

#[test]
fn keep_and_drop() {
    let drop_o = rule(|r| {
        r.source_labels = strings(&["a"]);
        r.regex = regex(".*o.*");
        r.action = RelabelAction::Drop;
    });
    check(
        &[("a", "foo"), ("b", "bar")],
        std::slice::from_ref(&drop_o),
        None,
    );
    check(&[("a", "bar")], &[drop_o], Some(&[("a", "bar")]));
    // Anchoring: "f|o" matches neither "foo" as a whole.
    check(
        &[("a", "foo")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.regex = regex("f|o");
            r.action = RelabelAction::Drop;
        })],
        Some(&[("a", "foo")]),
    );
    let keep_f = rule(|r| {
        r.source_labels = strings(&["a"]);
        r.regex = regex("f.*");
        r.action = RelabelAction::Keep;
    });
    check(
        &[("a", "foo")],
        std::slice::from_ref(&keep_f),
        Some(&[("a", "foo")]),
    );
    check(&[("a", "boo")], std::slice::from_ref(&keep_f), None);
    // A missing label is the empty string, which "f.*" does not match.
    check(&[("b", "x")], &[keep_f], None);
    // After a drop, later rules do not run.
    check(
        &[("a", "foo")],
        &[
            rule(|r| {
                r.source_labels = strings(&["a"]);
                r.regex = regex(".*o.*");
                r.action = RelabelAction::Drop;
            }),
            rule(|r| {
                r.target_label = "never".into();
                r.replacement = "set".into();
            }),
        ],
        None,
    );
}

#[test]
fn keepequal_and_dropequal() {
    let input = [
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ];
    let equal = |action, target: &str| {
        let target = target.to_string();
        rule(move |r| {
            r.source_labels = strings(&["__tmp_port"]);
            r.action = action;
            r.target_label = target;
        })
    };
    check(
        &input,
        &[equal(RelabelAction::KeepEqual, "__port1")],
        Some(&input),
    );
    check(&input, &[equal(RelabelAction::KeepEqual, "__port2")], None);
    check(&input, &[equal(RelabelAction::DropEqual, "__port1")], None);
    check(
        &input,
        &[equal(RelabelAction::DropEqual, "__port2")],
        Some(&input),
    );
}

#[test]
fn hashmod_matches_prometheus() {
    // Prometheus's own tests pin these two values.
    check(
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        &[rule(|r| {
            r.source_labels = strings(&["c"]);
            r.target_label = "d".into();
            r.action = RelabelAction::HashMod;
            r.modulus = 1000;
        })],
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    );
    check(
        &[("a", "foo\nbar")],
        &[rule(|r| {
            r.source_labels = strings(&["a"]);
            r.target_label = "b".into();
            r.action = RelabelAction::HashMod;
            r.modulus = 1000;
        })],
        Some(&[("a", "foo\nbar"), ("b", "734")]),
    );
}

#[test]
fn labelmap_labeldrop_labelkeep() {
    check(
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        &[rule(|r| {
            r.regex = regex("(b.*)");
            r.replacement = "bar_${1}".into();
            r.action = RelabelAction::LabelMap;
        })],
        Some(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]),
    );
    check(
        &[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
        ],
        &[rule(|r| {
            r.regex = regex("__meta_(my.*)");
            r.replacement = "${1}".into();
            r.action = RelabelAction::LabelMap;
        })],
        Some(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb"),
        ]),
    );
    check(
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        &[rule(|r| {
            r.regex = regex("(b.*)");
            r.action = RelabelAction::LabelKeep;
        })],
        Some(&[("b1", "bar"), ("b2", "baz")]),
    );
    check(
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        &[rule(|r| {
            r.regex = regex("(b.*)");
            r.action = RelabelAction::LabelDrop;
        })],
        Some(&[("a", "foo")]),
    );
    // Explicit anchors inside the regex are harmless; a label dropped and
    // then set again by a later rule comes back.
    check(
        &[
            ("__meta_kubernetes_pod_container_port_name", "foo"),
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
        ],
        &[
            rule(|r| {
                r.regex = regex("^__meta_kubernetes_pod_container_port_name$");
                r.action = RelabelAction::LabelDrop;
            }),
            rule(|r| {
                r.source_labels = strings(&["__meta_kubernetes_pod_annotation_XXX_metrics_port"]);
                r.regex = regex("(.+)");
                r.replacement = "metrics".into();
                r.target_label = "__meta_kubernetes_pod_container_port_name".into();
            }),
            rule(|r| {
                r.source_labels = strings(&["__meta_kubernetes_pod_container_port_name"]);
                r.regex = regex("^metrics$");
                r.action = RelabelAction::Keep;
            }),
        ],
        Some(&[
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ]),
    );
}

#[test]
fn lowercase_and_uppercase() {
    check(
        &[("foo", "bAr123Foo")],
        &[
            rule(|r| {
                r.source_labels = strings(&["foo"]);
                r.action = RelabelAction::Uppercase;
                r.target_label = "foo_uppercase".into();
            }),
            rule(|r| {
                r.source_labels = strings(&["foo"]);
                r.action = RelabelAction::Lowercase;
                r.target_label = "foo_lowercase".into();
            }),
        ],
        Some(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO"),
        ]),
    );
}

#[test]
fn validation_rejects_what_prometheus_rejects() {
    let cases: Vec<(RelabelConfig, &str)> = vec![
        (RelabelConfig::new(), "requires 'target_label' value"),
        (
            RelabelConfig {
                action: RelabelAction::Lowercase,
                ..RelabelConfig::new()
            },
            "requires 'target_label' value",
        ),
        (
            RelabelConfig {
                action: RelabelAction::Lowercase,
                target_label: "${3}".into(),
                ..RelabelConfig::new()
            },
            "\"${3}\" is invalid 'target_label'",
        ),
        (
            RelabelConfig {
                target_label: "0${3}".into(),
                ..RelabelConfig::new()
            },
            "\"0${3}\" is invalid 'target_label'",
        ),
        (
            RelabelConfig {
                target_label: "-${3}".into(),
                ..RelabelConfig::new()
            },
            "\"-${3}\" is invalid 'target_label' for replace action",
        ),
        (
            RelabelConfig {
                action: RelabelAction::HashMod,
                target_label: "x".into(),
                ..RelabelConfig::new()
            },
            "requires non-zero modulus",
        ),
        (
            RelabelConfig {
                action: RelabelAction::LabelDrop,
                source_labels: strings(&["a"]),
                ..RelabelConfig::new()
            },
            "requires only 'regex'",
        ),
        (
            RelabelConfig {
                action: RelabelAction::KeepEqual,
                target_label: "x".into(),
                regex: regex("a.*"),
                ..RelabelConfig::new()
            },
            "requires only 'source_labels' and 'target_label'",
        ),
        (
            RelabelConfig {
                action: RelabelAction::Uppercase,
                target_label: "x".into(),
                replacement: "y".into(),
                ..RelabelConfig::new()
            },
            "'replacement' can not be set",
        ),
    ];
    for (config, expected) in cases {
        let error = config.validate().expect_err(expected);
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
    }
    // Templates Prometheus accepts as a replace target.
    for valid in [
        "label",
        "label${1}",
        "${1}label",
        "${1}",
        "$1",
        "asd$2asd",
        "_${1}_",
        "foo${bar}foo",
    ] {
        assert!(is_valid_target_template(valid), "{valid}");
    }
    for invalid in ["-label", "${", "$", "${}", "foo${", "-foo${1}bar-"] {
        assert!(!is_valid_target_template(invalid), "{invalid}");
    }
}

#[test]
fn expand_follows_go() {
    let re = Regex::new("^(?:(?P<first>a+)(b*))$").unwrap();
    let captures = re.captures("aab").unwrap();
    let cases = [
        ("$1", "aa"),
        ("${1}", "aa"),
        ("$2", "b"),
        ("$first", "aa"),
        ("${first}-x", "aa-x"),
        ("$1x", ""),
        ("${1}x", "aax"),
        ("$$1", "$1"),
        ("$", "$"),
        ("${", "${"),
        ("${}", "${}"),
        ("$-", "$-"),
        ("$9", ""),
        ("$01", ""),
        ("$0", "aab"),
        ("a$", "a$"),
    ];
    for (template, expected) in cases {
        let mut out = String::new();
        expand(template, &captures, &mut out);
        assert_eq!(out, expected, "template {template:?}");
    }
}

/// `hashmod` takes the low 8 bytes of MD5 big-endian; the RFC 1321 test
/// suite's digests pin the hash.
#[test]
fn hashmod_uses_md5_low_bytes() {
    let cases = [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    for (input, digest) in cases {
        let low = u64::from_str_radix(&digest[16..], 16).unwrap();
        assert_eq!(hashmod(input, u64::MAX), low % u64::MAX, "{input:?}");
        assert_eq!(hashmod(input, 1000), low % 1000, "{input:?}");
    }
}
