//! Tests of `alertmanager.yml` parsing: defaults, inheritance, and errors
//! that name the line and field.

use super::*;

fn parse_config_test(name: &str, text: &str) -> Result<Config, ConfigError> {
    parse(name, text, None)
}

fn error(yaml: &str) -> String {
    match parse_config_test("am.yml", yaml) {
        Ok(_) => "ok".to_string(),
        Err(error) => error.to_string(),
    }
}

#[test]
fn defaults() {
    let config = parse_config_test("am.yml",
        "route:\n  receiver: r\nreceivers:\n  - name: r\n    webhook_configs:\n      - url: http://127.0.0.1:1/hook\n",
    )
    .unwrap();
    assert_eq!(config.global.resolve_timeout_ms, 300_000);
    assert_eq!(config.global.smtp_hello, "localhost");
    assert!(config.global.smtp_require_tls);
    assert_eq!(config.global.pagerduty_url, DEFAULT_PAGERDUTY_URL);
    assert_eq!(config.route.group_wait_ms, 30_000);
    assert_eq!(config.route.group_interval_ms, 300_000);
    assert_eq!(config.route.repeat_interval_ms, 14_400_000);
    assert_eq!(config.route.group_by, GroupBy::Labels(Vec::new()));
    let webhook = &config.receivers[0].webhook_configs[0];
    assert!(webhook.send_resolved);
    assert_eq!(webhook.max_alerts, 0);
}

#[test]
fn receivers_take_global_settings() {
    let config = parse_config_test(
        "am.yml",
        r#"
global:
  smtp_smarthost: 'localhost:25'
  smtp_from: 'am@example.org'
  slack_api_url: 'http://127.0.0.1:1/slack'
route:
  receiver: r
receivers:
  - name: r
    email_configs: [{to: 'ops@example.org'}]
    slack_configs: [{channel: '#ops'}]
    pagerduty_configs: [{routing_key: abc}]
"#,
    )
    .unwrap();
    let receiver = &config.receivers[0];
    assert_eq!(receiver.email_configs[0].smarthost, "localhost:25");
    assert_eq!(receiver.email_configs[0].from, "am@example.org");
    assert!(!receiver.email_configs[0].send_resolved);
    assert_eq!(
        receiver.slack_configs[0].api_url,
        "http://127.0.0.1:1/slack"
    );
    assert!(!receiver.slack_configs[0].send_resolved);
    assert!(receiver.pagerduty_configs[0].send_resolved);
    assert_eq!(receiver.pagerduty_configs[0].url, DEFAULT_PAGERDUTY_URL);
}

#[test]
fn errors_name_line_and_field() {
    assert_eq!(
        error("route:\n  receiver: d\n  foo: 1\nreceivers:\n- name: d\n"),
        "am.yml:3: route.foo: unknown field"
    );
    assert_eq!(
        error("route:\n  receiver: d\n  routes:\n    - group_wait: 5x\nreceivers:\n- name: d\n"),
        "am.yml:4: route.routes[0].group_wait: not a valid duration string: \"5x\""
    );
    assert_eq!(
        error("route:\n  receiver: nope\nreceivers:\n- name: d\n"),
        "am.yml:2: route.receiver: undefined receiver \"nope\" used in route"
    );
    assert_eq!(
        error("route:\n  receiver: d\n  matchers: [a=b]\nreceivers:\n- name: d\n"),
        "am.yml:2: route: root route must not have any matchers"
    );
    assert_eq!(
        error("route:\n  receiver: d\nreceivers:\n- name: d\n- name: d\n"),
        "am.yml:5: receivers[1].name: receiver name \"d\" is not unique"
    );
    assert_eq!(
        error("route:\n  receiver: d\nreceivers:\n- name: d\n  email_configs: [{to: a@b}]\n"),
        "am.yml:5: receivers[0].email_configs[0]: no global SMTP smarthost set"
    );
    assert_eq!(
        error("route:\n  receiver: d\n  routes:\n  - matchers: ['a=\"x']\nreceivers:\n- name: d\n"),
        "am.yml:4: route.routes[0].matchers: matcher value contains unescaped double quote: \"x"
    );
    assert_eq!(
        error("route:\n  receiver: d\n  group_by: ['...', a]\nreceivers:\n- name: d\n"),
        "am.yml:3: route.group_by: cannot have wildcard group_by (`...`) and other other labels at the same time"
    );
    assert_eq!(
        error(
            "route:\n  receiver: d\n  routes:\n  - mute_time_intervals: [x]\nreceivers:\n- name: d\n"
        ),
        "am.yml:4: route.routes[0].mute_time_intervals: undefined time interval \"x\" used in route"
    );
    assert!(error("receivers:\n- name: d\n").contains("no route provided"));
    assert!(error("route: [\n").starts_with("am.yml:"));
}

#[test]
fn time_intervals_and_inhibit_rules() {
    let config = parse_config_test(
        "am.yml",
        r#"
route:
  receiver: d
  routes:
    - matchers: [team=ml]
      mute_time_intervals: [weekends]
      active_time_intervals: [old]
time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
        times: [{start_time: '00:00', end_time: '24:00'}]
mute_time_intervals:
  - name: old
    time_intervals: [{months: ['1:3']}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_match: {severity: warning}
    equal: [alertname]
receivers:
  - name: d
"#,
    )
    .unwrap();
    assert_eq!(config.time_intervals.len(), 2);
    assert_eq!(
        config.time_intervals["weekends"][0].weekdays,
        vec![(6, 6), (0, 0)]
    );
    assert_eq!(config.route.routes[0].mute_time_intervals, vec!["weekends"]);
    assert_eq!(config.inhibit_rules[0].equal, vec!["alertname"]);
    assert_eq!(config.inhibit_rules[0].source_matchers.len(), 1);
    assert_eq!(config.inhibit_rules[0].target_matchers.len(), 1);
}

#[test]
fn unsupported_receivers_are_errors() {
    let error = parse_config_test(
        "am.yml",
        "route:\n  receiver: d\nreceivers:\n- name: d\n  opsgenie_configs: [{api_key: x}]\n",
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("am.yml:5: receivers[0].opsgenie_configs: not supported by osprey"),
        "{error}"
    );
}

#[test]
fn osprey_sections() {
    let inline = "global:\n  scrape_interval: 15s\nalertmanager:\n  route:\n    receiver: d\n    foo: 1\n  receivers:\n    - name: d\n";
    let error = crate::parse("osprey.yml", inline, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "osprey.yml:6: alertmanager.route.foo: unknown field"
    );
    let inline = inline.replace("    foo: 1\n", "");
    let section = crate::parse("osprey.yml", &inline, None)
        .unwrap()
        .alertmanager
        .expect("an inline section");
    assert_eq!(section.config.route.receiver, "d");
    assert!(section.path.is_none());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: x\nreceivers:\n  - name: x\ntemplates: ['t/*.tmpl']\n",
    )
    .unwrap();
    let section = crate::parse("osprey.yml", "alertmanager: am.yml\n", Some(dir.path()))
        .unwrap()
        .alertmanager
        .expect("a file section");
    assert_eq!(
        section.path.as_deref(),
        Some(dir.path().join("am.yml").as_path())
    );
    assert_eq!(section.config.route.receiver, "x");
    // Templates are relative to the file that names them.
    assert_eq!(
        section.config.templates,
        [dir.path().join("t/*.tmpl").display().to_string()]
    );
    let error = crate::parse(
        "osprey.yml",
        "alertmanager: missing.yml\n",
        Some(dir.path()),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("osprey.yml:1: alertmanager: reading "),
        "{error}"
    );
    assert!(
        crate::parse("osprey.yml", "global: {}\n", None)
            .unwrap()
            .alertmanager
            .is_none()
    );
}

#[test]
fn every_credential_has_a_file_form() {
    let dir = tempfile::tempdir().unwrap();
    for (file, secret) in [
        ("pw", "global-password"),
        ("sec", "global-secret"),
        ("slack", "http://127.0.0.1:1/slack/secret"),
        ("rpw", "receiver-password"),
        ("rsec", "receiver-secret"),
        ("rk", "routing-key"),
        ("hook", "http://127.0.0.1:1/hook/secret"),
    ] {
        std::fs::write(dir.path().join(file), format!("{secret}\n")).unwrap();
    }
    let text = r#"
global:
  smtp_smarthost: 'localhost:25'
  smtp_from: 'am@example.org'
  smtp_auth_password_file: pw
  smtp_auth_secret_file: sec
  slack_api_url_file: slack
route:
  receiver: r
receivers:
  - name: r
    email_configs: [{to: 'ops@example.org', auth_password_file: rpw, auth_secret_file: rsec}]
    slack_configs: [{channel: '#ops'}]
    pagerduty_configs: [{routing_key_file: rk}]
    webhook_configs: [{url_file: hook}]
"#;
    let config = parse("am.yml", text, Some(dir.path())).unwrap();
    assert_eq!(
        config.global.smtp_auth_password.as_deref(),
        Some("global-password")
    );
    assert_eq!(
        config.global.smtp_auth_secret.as_deref(),
        Some("global-secret")
    );
    let receiver = &config.receivers[0];
    let email = &receiver.email_configs[0];
    assert_eq!(email.auth_password.as_deref(), Some("receiver-password"));
    assert_eq!(email.auth_secret.as_deref(), Some("receiver-secret"));
    assert_eq!(
        receiver.slack_configs[0].api_url,
        "http://127.0.0.1:1/slack/secret"
    );
    assert_eq!(
        receiver.webhook_configs[0].url,
        "http://127.0.0.1:1/hook/secret"
    );
    // The files are named in the text; the values never are.
    let masked = crate::mask::masked_yaml(text);
    assert!(!masked.contains("secret\n") && masked.contains("url_file: hook"));
}
