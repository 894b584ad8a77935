//! Renders every template in Alertmanager's own `default.tmpl` (from the
//! Debian package, when installed) with data shaped like Alertmanager's
//! (`KV` maps with `SortedPairs`/`Names`/`Values`/`Remove`, `Alerts` with
//! `Firing`/`Resolved`) and compares each with `amtool template render`,
//! which uses the same example data. This is also the worked example of
//! exposing Alertmanager's data through `Object`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use template::{MissingKey, Object, Options, Templates, Value, funcs};

const DEFAULT_TMPL: &str = "/usr/share/prometheus/alertmanager/default.tmpl";

/// Alertmanager's `KV`: a string map with methods.
#[derive(Debug, Clone)]
struct Kv(BTreeMap<String, String>);

impl Kv {
    fn of(pairs: &[(&str, &str)]) -> Kv {
        Kv(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

impl Object for Kv {
    fn field(&self, name: &str) -> Option<Value> {
        self.0.get(name).map(|v| Value::from(v.as_str()))
    }
    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        Some(Ok(match (name, args) {
            ("SortedPairs", []) => Value::object(Pairs(self.0.clone().into_iter().collect())),
            ("Names", []) => Value::from(self.0.keys().cloned().collect::<Vec<_>>()),
            ("Values", []) => Value::from(self.0.values().cloned().collect::<Vec<_>>()),
            ("Remove", [Value::List(keys)]) => {
                let mut rest = self.0.clone();
                for key in keys.iter() {
                    if let Value::Str(k) = key {
                        rest.remove(k);
                    }
                }
                Value::object(Kv(rest))
            }
            _ => return None,
        }))
    }
    fn entries(&self) -> Option<Vec<(String, Value)>> {
        Some(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect(),
        )
    }
    fn display(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("map[{}]", parts.join(" "))
    }
}

/// Alertmanager's `Pairs`: sorted name/value pairs.
#[derive(Debug)]
struct Pairs(Vec<(String, String)>);

impl Object for Pairs {
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if !args.is_empty() {
            return None;
        }
        match name {
            "Names" => Some(Ok(Value::from(
                self.0.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
            ))),
            "Values" => Some(Ok(Value::from(
                self.0.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
            ))),
            _ => None,
        }
    }
    fn items(&self) -> Option<Vec<Value>> {
        Some(
            self.0
                .iter()
                .map(|(n, v)| Value::object(Pair(n.clone(), v.clone())))
                .collect(),
        )
    }
    fn display(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(n, v)| format!("{{{n} {v}}}")).collect();
        format!("[{}]", parts.join(" "))
    }
}

#[derive(Debug)]
struct Pair(String, String);

impl Object for Pair {
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::from(self.0.as_str())),
            "Value" => Some(Value::from(self.1.as_str())),
            _ => None,
        }
    }
    fn display(&self) -> String {
        format!("{{{} {}}}", self.0, self.1)
    }
}

#[derive(Debug, Clone)]
struct Alert {
    status: String,
    labels: Kv,
    annotations: Kv,
    generator_url: String,
    fingerprint: String,
}

impl Object for Alert {
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Status" => Value::from(self.status.as_str()),
            "Labels" => Value::object(self.labels.clone()),
            "Annotations" => Value::object(self.annotations.clone()),
            "GeneratorURL" => Value::from(self.generator_url.as_str()),
            "Fingerprint" => Value::from(self.fingerprint.as_str()),
            _ => return None,
        })
    }
    fn display(&self) -> String {
        format!("{{{} {}}}", self.status, self.fingerprint)
    }
}

/// Alertmanager's `Alerts`, with `Firing` and `Resolved`.
#[derive(Debug)]
struct Alerts(Vec<Alert>);

impl Object for Alerts {
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let status = match (name, args) {
            ("Firing", []) => "firing",
            ("Resolved", []) => "resolved",
            _ => return None,
        };
        let chosen = self
            .0
            .iter()
            .filter(|a| a.status == status)
            .cloned()
            .collect();
        Some(Ok(Value::object(Alerts(chosen))))
    }
    fn items(&self) -> Option<Vec<Value>> {
        Some(self.0.iter().map(|a| Value::object(a.clone())).collect())
    }
    fn display(&self) -> String {
        format!("{} alerts", self.0.len())
    }
}

/// amtool's example data (`amtool template render` without `--alertmanager`).
fn example_data() -> Value {
    let alerts = Alerts(vec![
        Alert {
            status: "alertstatus".to_string(),
            labels: Kv::of(&[
                ("commonlabelkey1", "commonlabelvalue1"),
                ("commonlabelkey2", "commonlabelvalue2"),
                ("instance", "foo.bar:1234"),
                ("label1", "value1"),
                ("label2", "value2"),
            ]),
            annotations: Kv::of(&[
                ("annotation1", "value1"),
                ("annotation2", "value2"),
                ("commonannotationkey1", "commonannotationvalue1"),
                ("commonannotationkey2", "commonannotationvalue2"),
            ]),
            generator_url: "https://generatorurl.com".to_string(),
            fingerprint: "fingerprint1".to_string(),
        },
        Alert {
            status: "alertstatus".to_string(),
            labels: Kv::of(&[
                ("baz", "qux"),
                ("commonlabelkey1", "commonlabelvalue1"),
                ("commonlabelkey2", "commonlabelvalue2"),
                ("foo", "bar"),
            ]),
            annotations: Kv::of(&[
                ("aaa", "bbb"),
                ("ccc", "ddd"),
                ("commonannotationkey1", "commonannotationvalue1"),
                ("commonannotationkey2", "commonannotationvalue2"),
            ]),
            generator_url: "https://generatorurl.com".to_string(),
            fingerprint: "fingerprint2".to_string(),
        },
    ]);
    let mut data = BTreeMap::new();
    data.insert("Receiver".to_string(), Value::from("receiver"));
    data.insert("Status".to_string(), Value::from("alertstatus"));
    data.insert("Alerts".to_string(), Value::Object(Arc::new(alerts)));
    data.insert(
        "GroupLabels".to_string(),
        Value::object(Kv::of(&[
            ("grouplabelkey1", "grouplabelvalue1"),
            ("grouplabelkey2", "grouplabelvalue2"),
        ])),
    );
    data.insert(
        "CommonLabels".to_string(),
        Value::object(Kv::of(&[
            ("commonlabelkey1", "commonlabelvalue1"),
            ("commonlabelkey2", "commonlabelvalue2"),
        ])),
    );
    data.insert(
        "CommonAnnotations".to_string(),
        Value::object(Kv::of(&[
            ("commonannotationkey1", "commonannotationvalue1"),
            ("commonannotationkey2", "commonannotationvalue2"),
        ])),
    );
    data.insert(
        "ExternalURL".to_string(),
        Value::from("https://example.com"),
    );
    Value::from(data)
}

#[test]
fn default_templates_match_amtool() {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    let text = std::fs::read_to_string(DEFAULT_TMPL);
    let amtool = Command::new("amtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let Ok(text) = text else {
        assert!(
            !required,
            "{DEFAULT_TMPL} is required (OSPREY_REQUIRE_EXTERNAL=1) but missing"
        );
        eprintln!("skipping: {DEFAULT_TMPL} not found (Debian package prometheus-alertmanager)");
        return;
    };
    if !amtool {
        assert!(
            !required,
            "amtool is required (OSPREY_REQUIRE_EXTERNAL=1) but was not found"
        );
        eprintln!("skipping: amtool not found");
        return;
    }
    let mut set = Templates::new(
        funcs::alertmanager(),
        Options {
            missing_key: MissingKey::Default,
        },
    );
    set.parse("default.tmpl", &text)
        .expect("Alertmanager's default.tmpl parses");
    let names: Vec<String> = set
        .names()
        .into_iter()
        .filter(|n| n != "default.tmpl")
        .collect();
    assert!(names.len() > 20, "expected many templates, found {names:?}");
    let data = example_data();
    let mut failures = Vec::new();
    for name in &names {
        let ours = set.execute(name, &data).unwrap_or_else(|e| e.to_string());
        let output = Command::new("amtool")
            .arg("template")
            .arg("render")
            .arg(format!("--template.glob={DEFAULT_TMPL}"))
            .arg(format!("--template.text={{{{ template \"{name}\" . }}}}"))
            .output()
            .expect("run amtool");
        let theirs = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            // amtool failed (for example ranging over the data struct);
            // osprey must fail too.
            if set.execute(name, &data).is_ok() {
                failures.push(format!(
                    "{name}: amtool failed but osprey rendered {ours:?}"
                ));
            }
            continue;
        }
        if ours != theirs {
            failures.push(format!("{name}\n  amtool {theirs:?}\n  osprey {ours:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} templates differ:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
