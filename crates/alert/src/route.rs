//! Matching a label set against the routing tree, with Alertmanager's
//! semantics: a route matches when all its matchers do; its children are
//! tried in order, and the first matching child ends the search unless it
//! sets `continue`; a matching route with no matching child is itself the
//! result.

use model::Labels;

use config::alertmanager::Route;

/// The routes (leaves of the match) a label set reaches, in order.
pub fn match_routes<'r>(route: &'r Route, labels: &Labels) -> Vec<&'r Route> {
    let mut found = Vec::new();
    collect(route, labels, &mut found);
    found
}

/// Appends the matches under `route`; returns whether `route` matched.
fn collect<'r>(route: &'r Route, labels: &Labels, found: &mut Vec<&'r Route>) -> bool {
    if !model::matcher::matches_all(labels, &route.matchers) {
        return false;
    }
    let before = found.len();
    for child in &route.routes {
        let child_before = found.len();
        if collect(child, labels, found) && found.len() > child_before && !child.continue_matching {
            break;
        }
    }
    if found.len() == before {
        found.push(route);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receivers(yaml: &str, labels: &[(&str, &str)]) -> Vec<String> {
        let config = config::alertmanager::parse("test.yml", yaml, None).unwrap();
        let labels = Labels::from_pairs(labels.iter().copied());
        match_routes(&config.route, &labels)
            .iter()
            .map(|route| route.receiver.clone())
            .collect()
    }

    const TREE: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['team="ml"', 'severity=~"crit.*"']
      receiver: pager
      continue: true
    - match: {team: ml}
      receiver: slack
      routes:
        - matchers: [env=dev]
          receiver: dev
    - match_re: {service: "foo|bar"}
      receiver: web
receivers:
  - name: default
  - name: pager
  - name: slack
  - name: web
  - name: dev
"#;

    #[test]
    fn continue_and_first_match() {
        assert_eq!(
            receivers(TREE, &[("team", "ml"), ("severity", "critical")]),
            ["pager", "slack"]
        );
        assert_eq!(receivers(TREE, &[("team", "ml")]), ["slack"]);
        assert_eq!(receivers(TREE, &[("team", "ml"), ("env", "dev")]), ["dev"]);
        assert_eq!(receivers(TREE, &[("service", "foo")]), ["web"]);
        assert_eq!(receivers(TREE, &[("service", "foobar")]), ["default"]);
        assert_eq!(receivers(TREE, &[]), ["default"]);
    }

    #[test]
    fn keys_and_inheritance() {
        let config = config::alertmanager::parse("test.yml", TREE, None).unwrap();
        assert_eq!(config.route.key, "{}");
        let slack = &config.route.routes[1];
        assert_eq!(slack.key, r#"{}/{team="ml"}"#);
        assert_eq!(slack.routes[0].key, r#"{}/{team="ml"}/{env="dev"}"#);
        assert_eq!(
            slack.routes[0].group_by,
            config::alertmanager::GroupBy::Labels(vec!["alertname".into()])
        );
        assert_eq!(slack.routes[0].group_wait_ms, 30_000);
    }
}
