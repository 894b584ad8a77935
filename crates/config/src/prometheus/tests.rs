//! Config parsing tests: a full `prometheus.yml` with defaults checked,
//! and a table of bad configs whose errors must name file, line and field.

use super::*;
use crate::Config;
use model::relabel::RelabelAction;

fn parse_config(name: &str, text: &str) -> Result<Config, ConfigError> {
    crate::parse(name, text, std::path::Path::new(name).parent())
}

const FULL: &str = r#"
global:
  scrape_interval: 15s
  evaluation_interval: 30s
  external_labels:
    cluster: eu-1
    replica: a

rule_files:
  - rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: [localhost:9093]
remote_write:
  - url: http://vm:8428/api/v1/write

scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['localhost:9090']
  - job_name: node
    scrape_interval: 5s
    scrape_timeout: 2s
    metrics_path: /probe
    scheme: https
    params:
      module: [http_2xx, tcp]
    honor_labels: true
    honor_timestamps: false
    basic_auth:
      username: admin
      password_file: /etc/secret
    tls_config:
      ca_file: /etc/ca.pem
      insecure_skip_verify: true
      server_name: node.internal
    sample_limit: 1000
    label_limit: 30
    label_name_length_limit: 100
    label_value_length_limit: 200
    target_limit: 10
    body_size_limit: 10MB
    static_configs:
      - targets: [a:9100, b:9100]
        labels:
          env: prod
    file_sd_configs:
      - files: [/etc/targets/*.json]
        refresh_interval: 1m
    relabel_configs:
      - source_labels: [__address__]
        regex: '(.*):9100'
        target_label: host
      - action: hashmod
        source_labels: [host]
        modulus: 4
        target_label: shard
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
"#;

#[test]
fn full_config_with_defaults() {
    let config = parse_config("prometheus.yml", FULL).unwrap();
    assert_eq!(config.global.scrape_interval_ms, 15_000);
    assert_eq!(config.global.scrape_timeout_ms, 10_000);
    assert_eq!(config.global.evaluation_interval_ms, 30_000);
    assert_eq!(
        config.global.external_labels,
        vec![
            ("cluster".to_string(), "eu-1".to_string()),
            ("replica".to_string(), "a".to_string())
        ]
    );
    assert_eq!(config.remote_write.len(), 1);
    assert_eq!(config.remote_write[0].url, "http://vm:8428/api/v1/write");
    assert_eq!(config.remote_write[0].remote_timeout_ms, 30_000);
    assert_eq!(config.remote_write[0].queue_config, QueueConfig::default());
    assert_eq!(config.alerting.alertmanagers.len(), 1);
    assert_eq!(
        config.alerting.alertmanagers[0].static_configs[0].targets,
        ["localhost:9093"]
    );
    assert_eq!(config.alerting.alertmanagers[0].timeout_ms, 10_000);
    assert_eq!(config.rule_file_patterns, ["rules/*.yml"]);

    let prometheus = &config.scrape_configs[0];
    assert_eq!(prometheus.job_name, "prometheus");
    assert_eq!(prometheus.scrape_interval_ms, 15_000);
    assert_eq!(prometheus.scrape_timeout_ms, 10_000);
    assert_eq!(prometheus.metrics_path, "/metrics");
    assert_eq!(prometheus.scheme, Scheme::Http);
    assert!(!prometheus.honor_labels);
    assert!(prometheus.honor_timestamps);
    assert_eq!(prometheus.static_configs[0].targets, ["localhost:9090"]);

    let node = &config.scrape_configs[1];
    assert_eq!(node.scrape_interval_ms, 5_000);
    assert_eq!(node.scrape_timeout_ms, 2_000);
    assert_eq!(node.metrics_path, "/probe");
    assert_eq!(node.scheme, Scheme::Https);
    assert_eq!(
        node.params,
        vec![(
            "module".to_string(),
            vec!["http_2xx".to_string(), "tcp".to_string()]
        )]
    );
    assert!(node.honor_labels);
    assert!(!node.honor_timestamps);
    assert_eq!(
        node.http.basic_auth,
        Some(crate::http::BasicAuth {
            username: "admin".into(),
            username_file: None,
            password: None,
            password_file: Some("/etc/secret".into())
        })
    );
    assert_eq!(node.http.tls_config.ca_file.as_deref(), Some("/etc/ca.pem"));
    assert!(node.http.tls_config.insecure_skip_verify);
    assert_eq!(
        node.http.tls_config.server_name.as_deref(),
        Some("node.internal")
    );
    assert_eq!(node.sample_limit, 1000);
    assert_eq!(node.label_limit, 30);
    assert_eq!(node.label_name_length_limit, 100);
    assert_eq!(node.label_value_length_limit, 200);
    assert_eq!(node.target_limit, 10);
    assert_eq!(node.body_size_limit_bytes, 10 << 20);
    assert_eq!(node.static_configs[0].targets, ["a:9100", "b:9100"]);
    assert_eq!(
        node.static_configs[0].labels,
        vec![("env".to_string(), "prod".to_string())]
    );
    assert_eq!(node.file_sd_configs[0].files, ["/etc/targets/*.json"]);
    assert_eq!(node.file_sd_configs[0].refresh_interval_ms, 60_000);
    assert_eq!(node.relabel_configs.len(), 2);
    assert_eq!(node.relabel_configs[0].regex.as_str(), "(.*):9100");
    assert_eq!(node.relabel_configs[0].separator, ";");
    assert_eq!(node.relabel_configs[0].replacement, "$1");
    assert_eq!(node.relabel_configs[0].action, RelabelAction::Replace);
    assert_eq!(node.relabel_configs[1].action, RelabelAction::HashMod);
    assert_eq!(node.relabel_configs[1].modulus, 4);
    assert_eq!(node.metric_relabel_configs[0].action, RelabelAction::Drop);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn empty_and_minimal_configs() {
    let config = parse_config("p.yml", "").unwrap();
    assert_eq!(config.global, GlobalConfig::default());
    assert!(config.scrape_configs.is_empty());

    let config = parse_config("p.yml", "global:\n  scrape_interval: 5s\n").unwrap();
    // The default timeout is capped at the interval.
    assert_eq!(config.global.scrape_timeout_ms, 5_000);

    let config = parse_config(
        "p.yml",
        "scrape_configs:\n  - job_name: x\n    scrape_interval: 2s\n",
    )
    .unwrap();
    assert_eq!(config.scrape_configs[0].scrape_interval_ms, 2_000);
    assert_eq!(config.scrape_configs[0].scrape_timeout_ms, 2_000);
}

#[test]
fn global_limits_are_job_defaults() {
    let text = "global:\n  sample_limit: 50\n  body_size_limit: 1KB\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    sample_limit: 7\n";
    let config = parse_config("p.yml", text).unwrap();
    assert_eq!(config.scrape_configs[0].sample_limit, 50);
    assert_eq!(config.scrape_configs[0].body_size_limit_bytes, 1024);
    assert_eq!(config.scrape_configs[1].sample_limit, 7);
}

#[test]
fn histogram_settings_are_read_globally_and_per_job() {
    let text = "global:\n  scrape_native_histograms: true\n  always_scrape_classic_histograms: true\n  scrape_protocols: [PrometheusProto, PrometheusText0.0.4]\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_native_histograms: false\n    scrape_classic_histograms: false\n    convert_classic_histograms_to_nhcb: true\n    native_histogram_bucket_limit: 160\n    native_histogram_min_bucket_factor: 1.1\n    fallback_scrape_protocol: PrometheusProto\n";
    let config = parse_config("p.yml", text).unwrap();
    let (a, b) = (&config.scrape_configs[0], &config.scrape_configs[1]);
    assert_eq!(a.histograms.scrape_native_histograms, Some(true));
    assert!(a.histograms.scrape_classic_histograms);
    assert!(a.histograms.native_enabled(false));
    assert_eq!(
        a.scrape_protocols,
        ["PrometheusProto", "PrometheusText0.0.4"]
    );
    assert_eq!(
        b.histograms,
        crate::prometheus::HistogramScrape {
            scrape_native_histograms: Some(false),
            scrape_classic_histograms: false,
            convert_classic_histograms_to_nhcb: true,
            native_histogram_bucket_limit: 160,
            native_histogram_min_bucket_factor: 1.1,
        }
    );
    assert!(!b.histograms.native_enabled(true));
    assert_eq!(
        b.fallback_scrape_protocol.as_deref(),
        Some("PrometheusProto")
    );
    // Not set anywhere: the feature flag decides.
    let plain = parse_config("p.yml", "scrape_configs:\n  - job_name: a\n").unwrap();
    assert!(plain.scrape_configs[0].histograms.native_enabled(true));
    assert!(!plain.scrape_configs[0].histograms.native_enabled(false));
}

#[test]
fn a_scrape_protocol_named_twice_is_refused() {
    // Each protocol's weight in the Accept header comes from its place in
    // the list; a repeated one would push later ones to q=0.
    let text = "scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusProto, PrometheusText0.0.4, PrometheusProto]\n";
    let error = parse_config("p.yml", text).unwrap_err().to_string();
    assert!(
        error.starts_with("p.yml:3: ") && error.contains("duplicated protocol in scrape_protocols"),
        "{error}"
    );
}

#[test]
fn file_sd_files_parse() {
    let json = r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "x"}}, {"targets": ["c:3"]}]"#;
    let groups = parse_file_sd("t.json", json).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].targets, ["a:1", "b:2"]);
    assert_eq!(groups[0].labels, vec![("env".to_string(), "x".to_string())]);
    let yaml = "- targets: [d:4]\n  labels:\n    team: ml\n";
    let groups = parse_file_sd("t.yml", yaml).unwrap();
    assert_eq!(groups[0].targets, ["d:4"]);
    let error = parse_file_sd("t.yml", "- targets: [d:4]\n  bogus: 1\n").unwrap_err();
    assert_eq!(error.to_string(), "t.yml:2: [0].bogus: unknown field");
}

/// Bad configs and the exact error each must give.
#[test]
fn errors_name_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n",
            r#"prometheus.yml:3: scrape_configs[0].scrape_interval: not a valid duration string: "5x""#,
        ),
        (
            "global:\n  scrape_interval: 15s\n  scrap_timeout: 5s\n",
            "prometheus.yml:3: global.scrap_timeout: unknown field",
        ),
        (
            "scrape_config:\n  - job_name: a\n",
            "prometheus.yml:1: scrape_config: unknown field",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [x]\n        label: {a: b}\n",
            "prometheus.yml:5: scrape_configs[0].static_configs[0].label: unknown field",
        ),
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: b\n    honor_labels: yes please\n",
            r#"prometheus.yml:4: scrape_configs[1].honor_labels: expected true or false, got "yes please""#,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    sample_limit: -5\n",
            "prometheus.yml:3: scrape_configs[0].sample_limit: expected a non-negative integer, got -5",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
            r#"prometheus.yml:3: scrape_configs[0].scheme: invalid scheme "ftp" (expected http or https)"#,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: teleport\n",
            r#"prometheus.yml:4: scrape_configs[0].relabel_configs[0].action: unknown relabel action "teleport""#,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: '(unclosed'\n        action: drop\n",
            "prometheus.yml:4: scrape_configs[0].relabel_configs[0].regex: invalid regex",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [a]\n        action: hashmod\n        target_label: b\n",
            "prometheus.yml:4: scrape_configs[0].relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
            "prometheus.yml:4: scrape_configs[0].scrape_timeout: scrape timeout greater than scrape interval",
        ),
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
            "prometheus.yml:3: scrape_configs[1].job_name: found multiple scrape configs with job name \"a\"",
        ),
        (
            "scrape_configs:\n  - scrape_interval: 5s\n",
            "prometheus.yml:2: scrape_configs[0]: missing job_name",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    body_size_limit: 10 apples\n",
            r#"prometheus.yml:3: scrape_configs[0].body_size_limit: invalid size "10 apples""#,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [targets.txt]\n",
            r#"prometheus.yml:4: scrape_configs[0].file_sd_configs[0].files[0]: path "targets.txt" is not a valid file_sd file"#,
        ),
        (
            "global:\n  external_labels:\n    bad-name: x\n",
            r#"prometheus.yml:3: global.external_labels.bad-name: invalid label name "bad-name""#,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config:\n      ca_fil: x\n",
            "prometheus.yml:4: scrape_configs[0].tls_config.ca_fil: unknown field",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs:\n      - role: pod\n",
            "prometheus.yml:3: scrape_configs[0].kubernetes_sd_configs: not supported by osprey: this service discovery",
        ),
        (
            // `slos:` lists spec files; SLO definitions inline are not
            // one of the forms.
            "slos:\n  - name: api\n",
            "prometheus.yml:2: slos[0]: expected a string, got a mapping",
        ),
        (
            "auth:\n  basic: {}\n",
            "prometheus.yml:1: auth: not supported by osprey: an auth section (authentication, TLS and roles live in the web config file",
        ),
        (
            "alerting:\n  alertmanagers:\n    - sigv4: {region: eu}\n",
            "prometheus.yml:3: alerting.alertmanagers[0].sigv4: not supported by osprey",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    azuread: {cloud: AzurePublic}\n",
            "prometheus.yml:3: remote_write[0].azuread: not supported by osprey",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    native_histogram_min_bucket_factor: -1\n",
            "prometheus.yml:3: scrape_configs[0].native_histogram_min_bucket_factor: native_histogram_min_bucket_factor must be a number >= 0, got -1",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    authorization:\n      credentials: a\n    basic_auth:\n      username: u\n",
            "prometheus.yml:2: scrape_configs[0]: at most one of basic_auth, oauth2, bearer_token & bearer_token_file & authorization must be configured",
        ),
        (
            "scrape_configs: 5\n",
            "prometheus.yml:1: scrape_configs: expected a list, got an integer",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    metrics_path: metrics\n",
            r#"prometheus.yml:3: scrape_configs[0].metrics_path: metrics_path "metrics" must start with '/'"#,
        ),
    ];
    for (text, expected) in cases {
        let error =
            parse_config("prometheus.yml", text).expect_err(&format!("config should fail: {text}"));
        let rendered = error.to_string();
        assert!(
            rendered.starts_with(expected),
            "for config:\n{text}\n got: {rendered}\nwant: {expected}"
        );
    }
}

#[test]
fn yaml_syntax_errors_name_file_and_line() {
    let error = parse_config("prometheus.yml", "global:\n  scrape_interval: [1s\n").unwrap_err();
    assert_eq!(error.file, "prometheus.yml");
    assert!(error.line >= 2, "{error}");
    let error = parse_config("prometheus.yml", "global: {}\nglobal: {}\n").unwrap_err();
    assert!(error.line >= 1, "{error}");
}

#[test]
fn remote_write_entries_parse_with_defaults() {
    let text = r#"
remote_write:
  - url: https://central:9090/api/v1/write
    name: central
    remote_timeout: 10s
    headers:
      X-Scope-OrgID: team-a
    basic_auth:
      username: agent
      password: secret
    write_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
    queue_config:
      max_shards: 4
      max_samples_per_send: 500
      batch_send_deadline: 1s
      min_backoff: 10ms
      max_backoff: 1s
      retry_on_http_429: false
    metadata_config:
      send: false
  - url: http://127.0.0.1:8428/api/v1/write
"#;
    let config = parse_config("prometheus.yml", text).unwrap();
    let [central, vm] = config.remote_write.as_slice() else {
        panic!("two entries expected: {:?}", config.remote_write);
    };
    assert_eq!(central.name, "central");
    assert_eq!(central.remote_timeout_ms, 10_000);
    assert_eq!(
        central.headers,
        [("X-Scope-OrgID".to_string(), "team-a".to_string())]
    );
    assert_eq!(central.http.basic_auth.as_ref().unwrap().username, "agent");
    assert_eq!(central.write_relabel_configs.len(), 1);
    let queue = &central.queue_config;
    assert_eq!(
        (
            queue.max_shards,
            queue.min_shards,
            queue.max_samples_per_send
        ),
        (4, 1, 500)
    );
    assert_eq!(
        (
            queue.batch_send_deadline_ms,
            queue.min_backoff_ms,
            queue.max_backoff_ms
        ),
        (1_000, 10, 1_000)
    );
    assert!(!queue.retry_on_http_429);
    assert_eq!(queue.capacity, 10_000);
    assert_eq!(vm.name, "");
    assert_eq!(vm.queue_config, QueueConfig::default());
    assert!(vm.http.follow_redirects);
}

#[test]
fn remote_write_protocol_and_histograms() {
    let config = parse_config(
        "p.yml",
        "remote_write:\n  - url: http://a/w\n    protobuf_message: io.prometheus.write.v2.Request\n    send_native_histograms: true\n  - url: http://b/w\n",
    )
    .unwrap();
    let (v2, v1) = (&config.remote_write[0], &config.remote_write[1]);
    assert_eq!(v2.protobuf_message, crate::prometheus::ProtobufMessage::V2);
    assert!(v2.send_native_histograms);
    assert_eq!(v1.protobuf_message, crate::prometheus::ProtobufMessage::V1);
    assert!(!v1.send_native_histograms);
}

#[test]
fn remote_write_errors_name_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "remote_write:\n  - name: a\n",
            "prometheus.yml:2: remote_write[0].url: url for remote_write is empty",
        ),
        (
            "remote_write:\n  - url: ftp://x/y\n",
            r#"prometheus.yml:2: remote_write[0].url: invalid URL "ftp://x/y" (expected http:// or https:// with a host)"#,
        ),
        (
            "remote_write:\n  - url: http://a/w\n    queue_config:\n      max_shard: 3\n",
            "prometheus.yml:4: remote_write[0].queue_config.max_shard: unknown field",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    queue_config:\n      min_shards: 5\n      max_shards: 2\n",
            "prometheus.yml:4: remote_write[0].queue_config: min_shards (5) is greater than max_shards (2)",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    remote_timeout: 0s\n",
            "prometheus.yml:3: remote_write[0].remote_timeout: must be greater than zero",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    headers:\n      Content-Type: text/plain\n",
            "prometheus.yml:4: remote_write[0].headers.Content-Type: Content-Type is a reserved header; it may not be overridden",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    name: x\n  - url: http://b/w\n    name: x\n",
            r#"prometheus.yml:4: remote_write[1].name: found multiple remote write configs with name "x" (also remote_write[0])"#,
        ),
        (
            "remote_write:\n  - url: http://a/w\n    sigv4:\n      region: us-east-1\n      profile: dev\n",
            "prometheus.yml:5: remote_write[0].sigv4.profile: not supported by osprey: AWS profiles and role assumption (give access_key and secret_key, or the AWS_* environment variables)",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    sigv4:\n      region: us-east-1\n      access_key: AKID\n",
            "prometheus.yml:4: remote_write[0].sigv4: access_key and secret_key must be set together",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    basic_auth:\n      username: u\n    sigv4:\n      region: us-east-1\n",
            "prometheus.yml:2: remote_write[0]: at most one of basic_auth, authorization, oauth2, sigv4 must be configured",
        ),
        (
            "remote_write:\n  - url: http://a/w\n    protobuf_message: io.prometheus.write.v3.Request\n",
            r#"prometheus.yml:3: remote_write[0].protobuf_message: unknown remote write protobuf message "io.prometheus.write.v3.Request" (prometheus.WriteRequest or io.prometheus.write.v2.Request)"#,
        ),
    ];
    for (text, expected) in cases {
        let error = parse_config("prometheus.yml", text).unwrap_err();
        assert_eq!(error.to_string(), *expected, "for {text:?}");
    }
}

#[test]
fn remote_read_entries_parse_with_defaults_and_errors() {
    let config = parse_config(
        "prometheus.yml",
        "remote_read:\n  - url: http://a/r\n  - url: https://b/r\n    name: b\n    remote_timeout: 5s\n    read_recent: true\n    filter_external_labels: false\n    required_matchers:\n      zone: z\n      env: prod\n    headers:\n      X-Tenant: t\n    basic_auth:\n      username: u\n      password: p\n",
    )
    .unwrap();
    let [a, b] = config.remote_read.as_slice() else {
        panic!("two entries expected: {:?}", config.remote_read);
    };
    assert_eq!(a.url, "http://a/r");
    assert_eq!(a.remote_timeout_ms, 60_000);
    assert!(!a.read_recent && a.filter_external_labels);
    assert!(a.required_matchers.is_empty());
    assert_eq!(b.name, "b");
    assert_eq!(b.remote_timeout_ms, 5_000);
    assert!(b.read_recent && !b.filter_external_labels);
    assert_eq!(
        b.required_matchers,
        vec![
            ("env".to_string(), "prod".to_string()),
            ("zone".to_string(), "z".to_string())
        ]
    );
    assert_eq!(b.headers, vec![("X-Tenant".to_string(), "t".to_string())]);
    assert!(b.http.basic_auth.is_some());

    let cases: &[(&str, &str)] = &[
        (
            "remote_read:\n  - name: a\n",
            "prometheus.yml:2: remote_read[0].url: url for remote_read is empty",
        ),
        (
            "remote_read:\n  - url: ftp://x/y\n",
            r#"prometheus.yml:2: remote_read[0].url: invalid URL "ftp://x/y" (expected http:// or https:// with a host)"#,
        ),
        (
            "remote_read:\n  - url: http://a/r\n    read_recnt: true\n",
            "prometheus.yml:3: remote_read[0].read_recnt: unknown field",
        ),
        (
            "remote_read:\n  - url: http://a/r\n    name: x\n  - url: http://b/r\n    name: x\n",
            r#"prometheus.yml:4: remote_read[1].name: found multiple remote read configs with name "x" (also remote_read[0])"#,
        ),
    ];
    for (text, expected) in cases {
        let error = parse_config("prometheus.yml", text).unwrap_err();
        assert_eq!(error.to_string(), *expected, "for {text:?}");
    }
}

#[test]
fn file_sd_paths_are_relative_to_the_config_file() {
    let text = "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['targets/*.json', '/abs/t.yml']\n";
    let config = parse_config("/etc/osprey/prometheus.yml", text).unwrap();
    assert_eq!(
        config.scrape_configs[0].file_sd_configs[0].files,
        ["/etc/osprey/targets/*.json", "/abs/t.yml"]
    );
    let config = parse_config("prometheus.yml", text).unwrap();
    assert_eq!(
        config.scrape_configs[0].file_sd_configs[0].files,
        ["targets/*.json", "/abs/t.yml"]
    );
}
