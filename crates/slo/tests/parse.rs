//! Spec files in, SLOs or `file:line: field: message` out: what each format
//! accepts, how it maps onto an SLO, and how every mistake is named.

use slo::{BudgetMethod, ParseOptions, Period, Sli, Slo};

const DAY_MS: i64 = 86_400_000;

fn options() -> ParseOptions {
    ParseOptions {
        default_period: Period::Rolling { ms: 30 * DAY_MS },
        budget_method: BudgetMethod::Time,
    }
}

fn parse(text: &str) -> Vec<Slo> {
    slo::parse_file("s.yml", text, &options()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The error a spec gives, which must start with `want`.
fn check_error(text: &str, want: &str) {
    match slo::parse_file("s.yml", text, &options()) {
        Ok(slos) => panic!("accepted {} SLOs, expected {want:?}\n{text}", slos.len()),
        Err(e) => assert!(
            e.to_string().starts_with(want),
            "got {e}\nwant {want}\n{text}"
        ),
    }
}

const SLOTH: &str = r#"version: "prometheus/v1"
service: api
labels:
  team: core
slos:
  - name: availability
    objective: 99.9
    labels:
      tier: "1"
    sli:
      events:
        error_query: sum(rate(errors_total[{{.window}}]))
        total_query: sum(rate(requests_total[{{.window}}]))
    alerting:
      name: ApiBurn
      labels:
        category: availability
      page_alert:
        labels:
          severity: page
      ticket_alert:
        disable: true
"#;

#[test]
fn sloth_specs_map_like_sloth() {
    let slos = parse(SLOTH);
    let [slo] = slos.as_slice() else {
        panic!("{slos:?}")
    };
    assert_eq!(slo.id, "api-availability");
    assert_eq!(slo.objective_percent, 99.9);
    assert_eq!(slo.period, Period::Rolling { ms: 30 * DAY_MS });
    assert_eq!(
        slo.labels.iter().collect::<Vec<_>>(),
        vec![
            (&"team".to_string(), &"core".to_string()),
            (&"tier".to_string(), &"1".to_string())
        ]
    );
    let page = slo.page_alert.as_ref().expect("page alert");
    assert_eq!(page.name, "ApiBurn");
    assert_eq!(
        page.labels.get("category").map(String::as_str),
        Some("availability")
    );
    assert_eq!(
        page.labels.get("severity").map(String::as_str),
        Some("page")
    );
    assert!(slo.ticket_alert.is_none());
    assert_eq!((slo.file.as_str(), slo.line), ("s.yml", 6));
}

#[test]
fn sloth_mistakes_name_file_line_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "version: \"prometheus/v1\"",
            "version: prometheus/v2",
            "s.yml:1: version: invalid spec version \"prometheus/v2\"",
        ),
        ("service: api\n", "", "s.yml:1: service: required"),
        (
            "    objective: 99.9",
            "    objective: 0",
            "s.yml:7: slos[0].objective: the objective must be >0 and <=100",
        ),
        (
            "    objective: 99.9",
            "    objective: 99.9\n    slo: x",
            "s.yml:8: slos[0].slo: unknown field",
        ),
        (
            "errors_total[{{.window}}]",
            "errors_total[5m]",
            "s.yml:12: slos[0].sli.events.error_query: the query must use the {{.window}} variable",
        ),
        (
            "sum(rate(errors_total[{{.window}}]))",
            "sum(rate(errors_total[{{.window}}])",
            "s.yml:12: slos[0].sli.events.error_query: invalid PromQL",
        ),
        (
            "errors_total[{{.window}}]",
            "errors_total[{{.windw}}]",
            "s.yml:12: slos[0].sli.events.error_query: the query must use the {{.window}} variable",
        ),
        (
            "sum(rate(errors_total[{{.window}}]))",
            "sum(rate(requests_total[{{.window}}]))",
            "s.yml:12: slos[0].sli.events: both error and total queries can't be the same",
        ),
        (
            "      name: ApiBurn\n",
            "",
            "s.yml:15: slos[0].alerting.name: an alert name is required",
        ),
        (
            "      tier: \"1\"",
            "      __name__: x",
            "s.yml:9: slos[0].labels.__name__: invalid label name \"__name__\"",
        ),
        (
            "  - name: availability",
            "  - name: -availability",
            "s.yml:6: slos[0].name: \"-availability\": a name must start and end with an alphanumeric",
        ),
        (
            "    sli:\n",
            "    plugins:\n      chain: []\n    sli:\n",
            "s.yml:10: slos[0].plugins: not supported by osprey: Sloth SLO plugins",
        ),
    ];
    for (from, to, want) in cases {
        assert!(SLOTH.contains(from), "{from}");
        check_error(&SLOTH.replacen(from, to, 1), want);
    }
    check_error(
        "version: \"prometheus/v1\"\nservice: api\nslos: []\n",
        "s.yml:3: slos: at least one SLO is required",
    );
    check_error("groups: []\n", "s.yml:1: (document): not an SLO spec");
    check_error("version: [\n", "s.yml:");
}

#[test]
fn osprey_extensions_in_sloth_specs() {
    let text = SLOTH.replace(
        "    alerting:",
        "    osprey:\n      period: quarter\n      min_events: 50\n      budget_method: events\n    alerting:",
    );
    let slo = &parse(&text)[0];
    assert_eq!(slo.period, Period::Quarter);
    assert_eq!(slo.min_events, Some(50.0));
    assert_eq!(slo.budget_method, BudgetMethod::Events);

    let raw = SLOTH.replace(
        "      events:\n        error_query: sum(rate(errors_total[{{.window}}]))\n        total_query: sum(rate(requests_total[{{.window}}]))",
        "      raw:\n        error_ratio_query: avg_over_time(error_ratio[{{.window}}])",
    );
    check_error(
        &raw.replace(
            "    alerting:",
            "    osprey:\n      min_events: 50\n    alerting:",
        ),
        "s.yml:14: slos[0].osprey.min_events: low-traffic protection needs an SLI that counts events",
    );
    check_error(
        &raw.replace(
            "    alerting:",
            "    osprey:\n      budget_method: events\n    alerting:",
        ),
        "s.yml:14: slos[0].osprey.budget_method: an event-weighted budget needs an SLI that counts events",
    );
    check_error(
        &SLOTH.replace(
            "    alerting:",
            "    osprey:\n      period: 2d\n    alerting:",
        ),
        "s.yml:15: slos[0].osprey.period: the period 2d is shorter than the longest alert window (3d)",
    );
    check_error(
        &SLOTH.replace(
            "    alerting:",
            "    osprey:\n      periods: 7d\n    alerting:",
        ),
        "s.yml:15: slos[0].osprey.periods: unknown field",
    );
}

#[test]
fn latency_slis_interpolate_within_the_bucket() {
    let text = SLOTH.replace(
        "      events:\n        error_query: sum(rate(errors_total[{{.window}}]))\n        total_query: sum(rate(requests_total[{{.window}}]))",
        "      latency:\n        histogram: request_seconds\n        selector: '{job=\"api\"}'\n        threshold: 2\n        buckets: [0.5, 1, 2.5, 5]",
    );
    let slo = &parse(&text)[0];
    let Sli::Events {
        error_query,
        total_query,
    } = &slo.sli
    else {
        panic!("{:?}", slo.sli)
    };
    assert_eq!(
        total_query,
        "sum(rate(request_seconds_count{job=\"api\"}[{{.window}}]))"
    );
    // 2 lies two thirds of the way from 1 to 2.5.
    assert_eq!(
        error_query,
        "sum(rate(request_seconds_count{job=\"api\"}[{{.window}}])) - (0.33333333333333337 * sum(rate(request_seconds_bucket{job=\"api\",le=~\"1|1\\\\.0\"}[{{.window}}])) + 0.6666666666666666 * sum(rate(request_seconds_bucket{job=\"api\",le=~\"2\\\\.5\"}[{{.window}}])))"
    );
    assert!(
        slo.indicator
            .contains("interpolated between the buckets 1 and 2.5"),
        "{}",
        slo.indicator
    );

    check_error(
        &text.replace("threshold: 2", "threshold: 7"),
        "s.yml:15: slos[0].sli.latency.buckets: the threshold is above every finite bucket bound",
    );
    check_error(
        &text.replace("selector: '{job=\"api\"}'", "selector: '{le=\"1\"}'"),
        "s.yml:13: slos[0].sli.latency.selector: the selector may not match le or __name__",
    );
    check_error(
        &text.replace("histogram: request_seconds", "histogram: request-seconds"),
        "s.yml:12: slos[0].sli.latency.histogram: invalid metric name",
    );
}

const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLI
metadata:
  name: ok-requests
spec:
  ratioMetric:
    counter: true
    good:
      metricSource:
        type: Prometheus
        spec:
          query: requests_total{code!~"5.."}
    total:
      metricSource:
        type: Prometheus
        spec:
          query: requests_total
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
  annotations:
    osprey.dev/alert-name: AvailabilityBurn
    other.example.com/owner: someone
spec:
  service: api
  indicatorRef: ok-requests
  timeWindow:
    - duration: 4w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.999
"#;

#[test]
fn openslo_maps_onto_sloth_shaped_slos() {
    let slos = parse(OPENSLO);
    let [slo] = slos.as_slice() else {
        panic!("{slos:?}")
    };
    assert_eq!(slo.id, "api-availability");
    assert_eq!(slo.spec, "openslo/v1");
    assert_eq!(slo.objective_percent, 99.9);
    assert_eq!(slo.period, Period::Rolling { ms: 28 * DAY_MS });
    assert_eq!(
        slo.sli,
        Sli::Events {
            error_query: "(sum(rate(requests_total[{{.window}}]))) - (sum(rate(requests_total{code!~\"5..\"}[{{.window}}])))".to_string(),
            total_query: "sum(rate(requests_total[{{.window}}]))".to_string(),
        }
    );
    assert_eq!(
        slo.page_alert.as_ref().map(|a| a.name.as_str()),
        Some("AvailabilityBurn")
    );
    assert_eq!(
        slo.ticket_alert.as_ref().map(|a| a.name.as_str()),
        Some("AvailabilityBurn")
    );
}

#[test]
fn openslo_time_slices_and_thresholds() {
    let slices = OPENSLO.replace(
        "  budgetingMethod: Occurrences\n  objectives:\n    - target: 0.999\n",
        "  budgetingMethod: Timeslices\n  objectives:\n    - target: 0.99\n      timeSliceTarget: 0.95\n      timeSliceWindow: 1m\n",
    );
    let slo = &parse(&slices)[0];
    assert_eq!(
        slo.sli,
        Sli::Raw {
            error_ratio_query: "1 - avg_over_time((((sum(rate(requests_total{code!~\"5..\"}[1m]))) / (sum(rate(requests_total[1m])) > 0)) >= bool 0.95)[{{.window}}:1m])".to_string()
        }
    );
    let threshold = r#"apiVersion: openslo/v1
kind: SLO
metadata:
  name: quality
spec:
  service: model
  indicator:
    metadata:
      name: score
    spec:
      thresholdMetric:
        metricSource:
          spec:
            query: avg(score)
  timeWindow:
    - duration: 1M
      calendar:
        startTime: "2024-04-01 00:00:00"
        timeZone: UTC
  budgetingMethod: Timeslices
  objectives:
    - op: gt
      value: 0.8
      target: 0.95
      timeSliceWindow: 5m
"#;
    let slo = &parse(threshold)[0];
    assert_eq!(slo.period, Period::Month);
    assert_eq!(
        slo.sli,
        Sli::Raw {
            error_ratio_query: "1 - avg_over_time(((avg(score)) > bool 0.8)[{{.window}}:5m])"
                .to_string()
        }
    );
    check_error(
        &threshold.replace("    - op: gt\n      value: 0.8", "    - value: 0.8"),
        "s.yml:22: spec.objectives[0]: op is required with a thresholdMetric",
    );
    check_error(
        &threshold.replace("      timeSliceWindow: 5m\n", ""),
        "s.yml:22: spec.objectives[0]: timeSliceWindow is required with Timeslices",
    );
    check_error(
        &threshold.replace("timeZone: UTC", "timeZone: America/New_York"),
        "s.yml:19: spec.timeWindow[0].calendar.timeZone: not supported by osprey: the time zone \"America/New_York\"",
    );
    check_error(
        &threshold.replace("2024-04-01 00:00:00", "2024-04-15 00:00:00"),
        "s.yml:18: spec.timeWindow[0].calendar.startTime: not supported by osprey: a month that starts at",
    );
}

#[test]
fn openslo_mistakes_name_file_line_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "indicatorRef: ok-requests",
            "indicatorRef: other",
            "s.yml:28: spec.indicatorRef: no SLI named \"other\" in this file",
        ),
        (
            "    - duration: 4w\n      isRolling: true",
            "    - duration: 1M\n      isRolling: true",
            "s.yml:30: spec.timeWindow[0].duration: not supported by osprey: a rolling window of \"1M\"",
        ),
        (
            "  budgetingMethod: Occurrences\n",
            "",
            "s.yml:27: spec.budgetingMethod: required",
        ),
        (
            "    - target: 0.999",
            "    - target: 1.5",
            "s.yml:34: spec.objectives[0].target: the target must be in (0, 1)",
        ),
        (
            "    - target: 0.999",
            "    - target: 0.999\n      indicatorRef: x",
            "s.yml:35: spec.objectives[0].indicatorRef: not supported by osprey: composite SLOs",
        ),
        (
            "        type: Prometheus\n        spec:\n          query: requests_total{",
            "        type: Datadog\n        spec:\n          query: requests_total{",
            "s.yml:10: spec.ratioMetric.good.metricSource.type: not supported by osprey: metric source type \"Datadog\"",
        ),
        (
            "    osprey.dev/alert-name: AvailabilityBurn",
            "    osprey.dev/alert: AvailabilityBurn",
            "s.yml:24: metadata.annotations.osprey.dev/alert: unknown osprey annotation",
        ),
        (
            "  objectives:\n",
            "  alertPolicies:\n    - alertPolicyRef: x\n  objectives:\n",
            "s.yml:33: spec.alertPolicies: not supported by osprey: OpenSLO alert policies",
        ),
        (
            "          query: requests_total\n",
            "          query: sum(requests_total)\n",
            "s.yml:",
        ),
    ];
    for (from, to, want) in cases {
        assert!(OPENSLO.contains(from), "{from}");
        check_error(&OPENSLO.replacen(from, to, 1), want);
    }
    check_error(
        "apiVersion: openslo/v1\nkind: AlertPolicy\nmetadata:\n  name: x\n",
        "s.yml:1: (document): not supported by osprey: OpenSLO AlertPolicy objects",
    );
    check_error(
        "apiVersion: openslo/v1alpha\nkind: SLO\n",
        "s.yml:1: (document): not supported by osprey: apiVersion \"openslo/v1alpha\"",
    );
}

#[test]
fn ids_are_unique_across_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.yml");
    let b = dir.path().join("b.yml");
    std::fs::write(&a, SLOTH).expect("write");
    std::fs::write(&b, SLOTH).expect("write");
    let errors = slo::load_files(&[a.clone(), b.clone()], &options()).expect_err("duplicate");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:6: (slo): the SLO ID \"api-availability\" is already defined at {}:6",
            b.display(),
            a.display()
        )
    );
    // Within one file too (two documents).
    let error = slo::parse_file("s.yml", &format!("{SLOTH}---\n{SLOTH}"), &options())
        .expect_err("duplicate in one file");
    assert_eq!(
        error.to_string(),
        "s.yml:29: (slo): the SLO ID \"api-availability\" is already defined at s.yml:6"
    );
    let missing = dir.path().join("missing.yml");
    let errors = slo::load_files(&[missing], &options()).expect_err("missing");
    assert!(
        errors[0].to_string().contains("reading the file"),
        "{}",
        errors[0]
    );
}
