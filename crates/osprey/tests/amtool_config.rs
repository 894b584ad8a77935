//! `osprey check alertmanager` and `osprey alertmanager routes test`
//! against Debian's `amtool check-config` and `amtool config routes test`
//! on the same files: the verdicts (valid or not) and the receivers a label
//! set reaches must agree.
//!
//! When `amtool` is not installed the test prints why and passes, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where a missing `amtool` fails it.

use std::path::Path;
use std::process::{Command, Output};

/// Whether `amtool` runs here; prints why not (or fails when required).
pub fn amtool_available() -> bool {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    match Command::new("amtool").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let reason = format!(
                "amtool is not usable ({other:?}); apt-get install prometheus-alertmanager"
            );
            assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping: {reason}");
            false
        }
    }
}

fn osprey(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args(args)
        .output()
        .expect("run osprey")
}

fn amtool(args: &[&str]) -> Output {
    Command::new("amtool")
        .args(args)
        .output()
        .expect("run amtool")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Files both tools must accept, and label sets to route through them.
const VALID: &[(&str, &str)] = &[
    (
        "tree",
        r#"
global:
  resolve_timeout: 1m
route:
  receiver: default
  group_by: [alertname, cluster]
  group_wait: 1s
  routes:
    - matchers: ['team="ml"', 'severity=~"crit.*"']
      receiver: pager
      continue: true
    - match: {team: ml}
      receiver: slack
      routes:
        - matchers: ['{env="dev", region!~"eu-.*"}']
          receiver: dev
    - match_re: {service: "foo|bar"}
      receiver: web
      group_by: ['...']
    - matchers: [service=db]
      receiver: pager
      continue: true
    - matchers: [service=~"d.*"]
      receiver: pager
      continue: true
    - matchers: [service=~"d.*"]
      receiver: default
receivers:
  - name: default
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:1/x", send_resolved: false}]
  - name: slack
  - name: web
  - name: dev
"#,
    ),
    (
        "everything",
        r#"
global:
  smtp_smarthost: 'localhost:2525'
  smtp_from: 'am@example.org'
  smtp_auth_username: u
  smtp_auth_password: p
  smtp_require_tls: false
  slack_api_url: 'http://127.0.0.1:1/slack'
  pagerduty_url: 'http://127.0.0.1:1/pd'
templates: ['/nonexistent/*.tmpl']
route:
  receiver: mail
  group_by: [alertname]
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - matchers: [team=ml]
      receiver: slack
      mute_time_intervals: [weekends]
      active_time_intervals: [office]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname, cluster]
  - source_match: {severity: page}
    target_match_re: {severity: "warn|info"}
time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
  - name: office
    time_intervals:
      - times: [{start_time: '09:00', end_time: '17:30'}]
        weekdays: ['monday:friday']
        days_of_month: ['1:15', '-3:-1']
        months: ['january:march', '12']
        years: ['2024:2030']
        location: 'Europe/Berlin'
receivers:
  - name: mail
    email_configs:
      - to: 'ops@example.org'
        headers: {Subject: 'hi'}
  - name: slack
    slack_configs:
      - channel: '#ops'
        send_resolved: true
        title: '{{ .CommonLabels.alertname }}'
    pagerduty_configs:
      - routing_key: abc
        details: {team: '{{ .CommonLabels.team }}'}
    webhook_configs:
      - url: 'http://127.0.0.1:1/hook'
        max_alerts: 10
        http_config:
          basic_auth: {username: a, password: b}
"#,
    ),
];

/// Files both tools must reject.
const INVALID: &[(&str, &str)] = &[
    (
        "unknown-field",
        "route:\n  receiver: d\n  foo: 1\nreceivers:\n- name: d\n",
    ),
    (
        "bad-duration",
        "route:\n  receiver: d\n  group_wait: 5x\nreceivers:\n- name: d\n",
    ),
    (
        "undefined-receiver",
        "route:\n  receiver: nope\nreceivers:\n- name: d\n",
    ),
    (
        "root-matchers",
        "route:\n  receiver: d\n  matchers: [a=b]\nreceivers:\n- name: d\n",
    ),
    (
        "no-smarthost",
        "route:\n  receiver: d\nreceivers:\n- name: d\n  email_configs: [{to: a@b}]\n",
    ),
    (
        "no-slack-url",
        "route:\n  receiver: d\nreceivers:\n- name: d\n  slack_configs: [{channel: x}]\n",
    ),
    (
        "duplicate-receiver",
        "route:\n  receiver: d\nreceivers:\n- name: d\n- name: d\n",
    ),
    (
        "bad-matcher",
        "route:\n  receiver: d\n  routes:\n  - matchers: ['a=\"x']\nreceivers:\n- name: d\n",
    ),
    (
        "bad-regex",
        "route:\n  receiver: d\n  routes:\n  - match_re: {a: '('}\nreceivers:\n- name: d\n",
    ),
    (
        "wildcard-and-labels",
        "route:\n  receiver: d\n  group_by: ['...', a]\nreceivers:\n- name: d\n",
    ),
    (
        "zero-repeat",
        "route:\n  receiver: d\n  repeat_interval: 0s\nreceivers:\n- name: d\n",
    ),
    (
        "undefined-interval",
        "route:\n  receiver: d\n  routes:\n  - mute_time_intervals: [x]\nreceivers:\n- name: d\n",
    ),
    (
        "bad-time",
        "route:\n  receiver: d\ntime_intervals:\n- name: x\n  time_intervals: [{times: [{start_time: '25:00', end_time: '26:00'}]}]\nreceivers:\n- name: d\n",
    ),
    (
        "bad-weekday",
        "route:\n  receiver: d\ntime_intervals:\n- name: x\n  time_intervals: [{weekdays: [funday]}]\nreceivers:\n- name: d\n",
    ),
    (
        "bad-zone",
        "route:\n  receiver: d\ntime_intervals:\n- name: x\n  time_intervals: [{location: 'Mars/Olympus'}]\nreceivers:\n- name: d\n",
    ),
    (
        "no-webhook-url",
        "route:\n  receiver: d\nreceivers:\n- name: d\n  webhook_configs: [{send_resolved: true}]\n",
    ),
    (
        "no-pagerduty-key",
        "route:\n  receiver: d\nreceivers:\n- name: d\n  pagerduty_configs: [{severity: x}]\n",
    ),
    ("no-route", "receivers:\n- name: d\n"),
    (
        "no-receiver-name",
        "route:\n  receiver: d\nreceivers:\n- name: d\n- webhook_configs: []\n",
    ),
    (
        "duplicate-group-by",
        "route:\n  receiver: d\n  group_by: [a, a]\nreceivers:\n- name: d\n",
    ),
    ("not-yaml", "route: [\n"),
];

const LABEL_SETS: &[&[&str]] = &[
    &["team=ml", "severity=critical"],
    &["team=ml"],
    &["team=ml", "env=dev"],
    &["team=ml", "env=dev", "region=eu-west"],
    &["service=foo"],
    &["service=foobar"],
    &["service=db"],
    &["service=dx"],
    &["alertname=Down"],
    &[],
];

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[test]
fn check_agrees_with_amtool_check_config() {
    if !amtool_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, yaml) in VALID {
        let path = write(dir.path(), name, yaml);
        let theirs = amtool(&["check-config", &path]);
        let ours = osprey(&["check", "alertmanager", &path]);
        assert!(
            theirs.status.success(),
            "amtool rejects {name}: {}",
            text(&theirs)
        );
        assert!(
            ours.status.success(),
            "osprey rejects {name}: {}",
            text(&ours)
        );
        // The summary lines (counts of rules, receivers, templates) agree.
        let summary = |out: &Output| -> Vec<String> {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|line| line.starts_with(" - "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(summary(&ours), summary(&theirs), "{name}");
    }
    for (name, yaml) in INVALID {
        let path = write(dir.path(), name, yaml);
        let theirs = amtool(&["check-config", &path]);
        let ours = osprey(&["check", "alertmanager", &path]);
        assert!(
            !theirs.status.success(),
            "amtool accepts {name}: {}",
            text(&theirs)
        );
        assert!(
            !ours.status.success(),
            "osprey accepts {name}: {}",
            text(&ours)
        );
        // Our message names the file and a line.
        let stdout = String::from_utf8_lossy(&ours.stdout);
        assert!(
            stdout.contains(&format!("FAILED: {path}:")),
            "{name}: {}",
            text(&ours)
        );
    }
}

#[test]
fn routes_test_agrees_with_amtool() {
    if !amtool_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, yaml) in VALID {
        let path = write(dir.path(), name, yaml);
        for labels in LABEL_SETS {
            let mut their_args = vec!["config", "routes", "test", "--config.file", path.as_str()];
            their_args.extend_from_slice(labels);
            let theirs = amtool(&their_args);
            let mut our_args = vec!["alertmanager", "routes", "test", "--config", path.as_str()];
            our_args.extend_from_slice(labels);
            let ours = osprey(&our_args);
            assert!(theirs.status.success(), "{}", text(&theirs));
            assert!(ours.status.success(), "{}", text(&ours));
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "{name} {labels:?}"
            );
        }
    }
    // --verify.receivers fails on a mismatch and passes on a match.
    let path = write(dir.path(), "tree", VALID[0].1);
    let args = ["alertmanager", "routes", "test", "--config", &path];
    let good = osprey(
        &[
            &args[..],
            &[
                "--verify.receivers=pager,slack",
                "team=ml",
                "severity=critical",
            ],
        ]
        .concat(),
    );
    assert!(good.status.success(), "{}", text(&good));
    let bad = osprey(&[&args[..], &["--verify.receivers=pager", "team=ml"]].concat());
    assert!(!bad.status.success(), "{}", text(&bad));
}
