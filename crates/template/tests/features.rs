//! One test per language feature, each through `check` (template, data,
//! exact expected output) or `check_err` (exact error text). Behaviour
//! matches Go's text/template; cases marked "promtool" were confirmed with
//! real Prometheus (see `promtool_cases.txt` for the bulk of those).

use std::collections::BTreeMap;
use std::sync::Arc;
use template::{Func, FuncMap, MissingKey, Object, Options, Templates, Value, funcs};

fn set_with(funcs: FuncMap, missing_key: MissingKey) -> Templates {
    Templates::new(funcs, Options { missing_key })
}

fn run(text: &str, data: &Value) -> Result<String, String> {
    let mut set = set_with(funcs::prometheus(), MissingKey::Default);
    set.parse("t", text).map_err(|e| e.to_string())?;
    set.execute("t", data).map_err(|e| e.to_string())
}

#[track_caller]
fn check(text: &str, data: &Value, want: &str) {
    assert_eq!(run(text, data), Ok(want.to_string()), "template {text:?}");
}

#[track_caller]
fn check_err(text: &str, data: &Value, want: &str) {
    assert_eq!(run(text, data), Err(want.to_string()), "template {text:?}");
}

fn map(pairs: &[(&str, Value)]) -> Value {
    let m: BTreeMap<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Value::from(m)
}

fn list(items: &[Value]) -> Value {
    Value::from(items.to_vec())
}

fn s(text: &str) -> Value {
    Value::from(text)
}

/// A struct-like object with a field, a method taking arguments and items.
#[derive(Debug)]
struct Alert {
    name: String,
    labels: Value,
}

impl Object for Alert {
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::from(self.name.as_str())),
            "Labels" => Some(self.labels.clone()),
            _ => None,
        }
    }
    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        match name {
            "Greet" => Some(match args {
                [Value::Str(who), Value::Int(n)] => {
                    Ok(Value::from(format!("{} greets {who} x{n}", self.name)))
                }
                _ => Err("Greet wants a string and an int".to_string()),
            }),
            "Upper" => Some(Ok(Value::from(self.name.to_uppercase()))),
            _ => None,
        }
    }
    fn display(&self) -> String {
        format!("alert({})", self.name)
    }
}

/// An object that ranges like a slice.
#[derive(Debug)]
struct Pairs(Vec<String>);

impl Object for Pairs {
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn items(&self) -> Option<Vec<Value>> {
        Some(self.0.iter().map(|v| Value::from(v.as_str())).collect())
    }
    fn display(&self) -> String {
        format!("{:?}", self.0)
    }
}

#[test]
fn text_and_trim_markers() {
    check("plain text", &Value::Nil, "plain text");
    check("a  {{- 1 -}}  b", &Value::Nil, "a1b");
    check("a \n\t{{- 1}} b", &Value::Nil, "a1 b");
    check("a {{1 -}} \n b", &Value::Nil, "a 1b");
    // A minus without a space is a negative number, not a trim marker.
    check("a {{-1}} b", &Value::Nil, "a -1 b");
    check("{{ 3 }}}", &Value::Nil, "3}");
}

#[test]
fn comments() {
    check("a{{/* x */}}b", &Value::Nil, "ab");
    check("a {{- /* x */ -}} b", &Value::Nil, "ab");
    check("{{/* multi\nline */}}x", &Value::Nil, "x");
    check_err(
        "{{/* x */ 1}}",
        &Value::Nil,
        "template: t:1: comment ends before closing delimiter",
    );
    check_err("{{/* x", &Value::Nil, "template: t:1: unclosed comment");
}

#[test]
fn if_else_if_else() {
    let t = "{{if .a}}A{{else if .b}}B{{else if .c}}C{{else}}D{{end}}";
    check(t, &map(&[("a", Value::Int(1))]), "A");
    check(t, &map(&[("b", s("x"))]), "B");
    check(t, &map(&[("c", Value::Bool(true))]), "C");
    check(
        t,
        &map(&[("a", Value::Int(0)), ("b", s("")), ("c", list(&[]))]),
        "D",
    );
}

#[test]
fn truthiness() {
    for (v, want) in [
        (Value::Nil, "f"),
        (Value::Bool(false), "f"),
        (Value::Int(0), "f"),
        (Value::Float(0.0), "f"),
        (s(""), "f"),
        (list(&[]), "f"),
        (map(&[]), "f"),
        (Value::Bool(true), "t"),
        (Value::Int(-1), "t"),
        (Value::Float(0.5), "t"),
        (s("0"), "t"),
        (list(&[Value::Nil]), "t"),
        (map(&[("k", Value::Nil)]), "t"),
        (Value::Object(Arc::new(Pairs(vec![]))), "f"),
        (Value::Object(Arc::new(Pairs(vec!["a".into()]))), "t"),
    ] {
        check("{{if .}}t{{else}}f{{end}}", &v, want);
        assert_eq!(v.truthy(), want == "t");
    }
}

#[test]
fn range_over_lists_maps_and_else() {
    let data = map(&[
        ("l", list(&[s("a"), s("b")])),
        ("m", map(&[("z", Value::Int(1)), ("a", Value::Int(2))])),
        ("e", list(&[])),
    ]);
    check("{{range .l}}[{{.}}]{{end}}", &data, "[a][b]");
    check(
        "{{range $i, $v := .l}}{{$i}}={{$v}};{{end}}",
        &data,
        "0=a;1=b;",
    );
    check("{{range $v := .l}}{{$v}}{{end}}", &data, "ab");
    // Maps range in key order.
    check(
        "{{range $k, $v := .m}}{{$k}}={{$v}};{{end}}",
        &data,
        "a=2;z=1;",
    );
    check("{{range .e}}x{{else}}empty{{end}}", &data, "empty");
    check("{{range .missing}}x{{else}}none{{end}}", &data, "none");
    check("{{range 3}}{{.}}{{end}}", &Value::Nil, "012");
    let pairs = Value::Object(Arc::new(Pairs(vec!["p".into(), "q".into()])));
    check(
        "{{range .}}{{.}}{{end}}|{{len .}}|{{index . 1}}",
        &pairs,
        "pq|2|q",
    );
    check_err(
        "{{range .}}{{end}}",
        &s("abc"),
        "template: t:1:8: executing \"t\" at <.>: range can't iterate over abc",
    );
}

#[test]
fn range_break_and_continue() {
    let data = list(&[Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(4)]);
    check(
        "{{range .}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}",
        &data,
        "13",
    );
    // `break` in an inner range stops only that range.
    check(
        "{{range $a := .}}{{range .}}{{break}}{{end}}{{$a}}{{end}}",
        &list(&[list(&[s("x")])]),
        "[x]",
    );
    check_err(
        "{{break}}",
        &Value::Nil,
        "template: t:1: {{break}} outside {{range}}",
    );
    check_err(
        "{{range .}}{{else}}{{continue}}{{end}}",
        &Value::Nil,
        "template: t:1: {{continue}} outside {{range}}",
    );
}

#[test]
fn with_and_else() {
    check(
        "{{with .a}}<{{.}}>{{else}}none{{end}}",
        &map(&[("a", s("x"))]),
        "<x>",
    );
    check("{{with .a}}<{{.}}>{{else}}none{{end}}", &map(&[]), "none");
    check(
        "{{with .a}}A{{else with .b}}B{{.}}{{end}}",
        &map(&[("b", Value::Int(7))]),
        "B7",
    );
    check(
        "{{with $x := .a}}{{$x}}{{.}}{{end}}",
        &map(&[("a", Value::Int(5))]),
        "55",
    );
}

#[test]
fn define_template_and_block() {
    check(
        r#"{{define "row"}}<{{.}}>{{end}}{{range .}}{{template "row" .}}{{end}}"#,
        &list(&[Value::Int(1), Value::Int(2)]),
        "<1><2>",
    );
    check(
        r#"{{define "x"}}X{{.}}{{end}}{{template "x"}}"#,
        &Value::Nil,
        "X<nil>",
    );
    check(r#"{{block "b" .}}[{{.}}]{{end}}"#, &s("v"), "[v]");
    check(
        r#"{{define "a"}}{{tmpl "b" .}}!{{end}}{{define "b"}}B{{.}}{{end}}{{template "a" 1}}"#,
        &Value::Nil,
        "B1!",
    );
    check_err(
        r#"{{template "nope"}}"#,
        &Value::Nil,
        "template: t:1:11: executing \"t\" at <{{template \"nope\"}}>: template \"nope\" not defined",
    );
    check_err(
        r#"{{if 1}}{{define "x"}}{{end}}{{end}}"#,
        &Value::Nil,
        "template: t:1: unexpected <define> in command",
    );
}

#[test]
fn parse_adds_to_the_set_and_redefines() {
    let mut set = set_with(FuncMap::builtins(), MissingKey::Default);
    set.parse("lib", r#"{{define "greet"}}hello {{.}}{{end}}"#)
        .unwrap();
    set.parse("main", r#"{{template "greet" .}}!"#).unwrap();
    assert!(set.has("greet") && set.has("main") && set.has("lib") && !set.has("other"));
    assert_eq!(set.execute("main", &s("bob")).unwrap(), "hello bob!");
    // A later non-empty definition replaces; an empty one does not.
    set.parse("lib2", r#"{{define "greet"}}hi {{.}}{{end}}"#)
        .unwrap();
    set.parse("lib3", r#"{{define "greet"}}  {{end}}"#).unwrap();
    assert_eq!(set.execute("main", &s("bob")).unwrap(), "hi bob!");
    assert_eq!(
        set.execute("nope", &Value::Nil).unwrap_err().to_string(),
        "template: no template \"nope\" associated with template set"
    );
    // A failed parse adds nothing.
    assert!(set.parse("bad", r#"{{define "new"}}x{{end}}{{"#).is_err());
    assert!(!set.has("new") && !set.has("bad"));
}

#[test]
fn variables_and_scoping() {
    check("{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}", &Value::Nil, "12");
    check(
        "{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}",
        &Value::Nil,
        "21",
    );
    check(
        "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}",
        &Value::Nil,
        "2",
    );
    check(
        "{{with .a}}{{$.b}}{{.}}{{end}}",
        &map(&[("a", s("A")), ("b", s("B"))]),
        "BA",
    );
    check(
        r#"{{define "d"}}{{$}}{{end}}{{template "d" 5}}"#,
        &Value::Nil,
        "5",
    );
    check_err(
        "{{$x}}",
        &Value::Nil,
        "template: t:1: undefined variable \"$x\"",
    );
    check_err(
        "{{if true}}{{$x := 1}}{{end}}{{$x}}",
        &Value::Nil,
        "template: t:1: undefined variable \"$x\"",
    );
    // Assigning to an undeclared variable fails when it runs (promtool).
    check_err(
        "{{$y = 1}}",
        &Value::Nil,
        "template: t:1:7: executing \"t\" at <1>: undefined variable: $y",
    );
}

#[test]
fn pipelines_and_parentheses() {
    check(r#"{{"a" | printf "%s-%s" "b"}}"#, &Value::Nil, "b-a");
    check(
        r#"{{1 | printf "%d%d" 2 | printf "(%s)"}}"#,
        &Value::Nil,
        "(21)",
    );
    check(
        r#"{{printf "%s" (printf "%d" (len "abc"))}}"#,
        &Value::Nil,
        "3",
    );
    check(
        r#"{{(index . 0).a}}"#,
        &list(&[map(&[("a", s("deep"))])]),
        "deep",
    );
    check_err(
        r#"{{"x" | 1}}"#,
        &Value::Nil,
        "template: t:1: non executable command in pipeline stage 2",
    );
    check_err(
        "{{1 2}}",
        &Value::Nil,
        "template: t:1:2: executing \"t\" at <1>: can't give argument to non-function 1",
    );
}

#[test]
fn fields_maps_and_missing_keys() {
    let data = map(&[
        ("a", map(&[("b", map(&[("c", s("deep"))]))])),
        ("n", Value::Nil),
    ]);
    check("{{.a.b.c}}", &data, "deep");
    check("{{$x := .a}}{{$x.b.c}}", &data, "deep");
    check(
        "{{.missing}}|{{.a.missing}}|{{.missing.deeper}}",
        &data,
        "<no value>|<no value>|<no value>",
    );
    check("{{.n.x}}", &data, "<no value>");
    check_err(
        "{{.a.b.c.d}}",
        &data,
        "template: t:1:4: executing \"t\" at <.a.b.c.d>: can't evaluate field d in type string",
    );
    // missingkey=zero: string maps give "", other maps "no value".
    let mut set = set_with(FuncMap::builtins(), MissingKey::Zero);
    set.parse(
        "t",
        "[{{.labels.x}}][{{.mixed.x}}][{{index .labels \"y\"}}]",
    )
    .unwrap();
    let mut labels = BTreeMap::new();
    labels.insert("job".to_string(), "j".to_string());
    let data = map(&[
        ("labels", Value::from(labels)),
        ("mixed", map(&[("n", Value::Int(1))])),
    ]);
    assert_eq!(set.execute("t", &data).unwrap(), "[][<no value>][]");
}

#[test]
fn objects_fields_and_methods() {
    let alert = Value::Object(Arc::new(Alert {
        name: "disk".to_string(),
        labels: map(&[("sev", s("page"))]),
    }));
    check(
        "{{.Name}} {{.Labels.sev}} {{.}}",
        &alert,
        "disk page alert(disk)",
    );
    check(
        r#"{{.Greet "ops" 3}}|{{.Upper}}|{{.Upper | printf "%s!"}}"#,
        &alert,
        "disk greets ops x3|DISK|DISK!",
    );
    check(
        r#"{{$a := .}}{{$a.Greet "x" 1}}"#,
        &alert,
        "disk greets x x1",
    );
    check_err(
        "{{.Nope}}",
        &alert,
        "template: t:1:2: executing \"t\" at <.Nope>: can't evaluate field Nope in type object",
    );
    check_err(
        r#"{{.Greet 1}}"#,
        &alert,
        "template: t:1:2: executing \"t\" at <.Greet>: error calling Greet: Greet wants a string and an int",
    );
    check_err(
        r#"{{.Name 1}}"#,
        &alert,
        "template: t:1:2: executing \"t\" at <.Name>: Name has arguments but cannot be invoked as function",
    );
}

#[test]
fn literals() {
    check(
        r#"{{"a\tb\n\"c\"\u00e9\x41\101"}}"#,
        &Value::Nil,
        "a\tb\n\"c\"éAA",
    );
    check("{{`raw\\n`}}", &Value::Nil, "raw\\n");
    check(
        "{{1}} {{-2}} {{0x1F}} {{0o17}} {{0b11}} {{1_000}} {{'a'}} {{'\\n'}}",
        &Value::Nil,
        "1 -2 31 15 3 1000 97 10",
    );
    check(
        "{{1.5}} {{1e3}} {{.5}} {{1e6}} {{0x1p-2}}",
        &Value::Nil,
        "1.5 1000 0.5 1e+06 0.25",
    );
    check(
        "{{true}} {{false}} {{print nil}}",
        &Value::Nil,
        "true false <nil>",
    );
    check_err(
        "{{nil}}",
        &Value::Nil,
        "template: t:1:2: executing \"t\" at <nil>: nil is not a command",
    );
    check_err(
        "{{3x}}",
        &Value::Nil,
        "template: t:1: bad number syntax: \"3x\"",
    );
    check_err(
        r#"{{"abc}}"#,
        &Value::Nil,
        "template: t:1: unterminated quoted string",
    );
    check_err(
        "{{'ab'}}",
        &Value::Nil,
        "template: t:1: malformed character constant: 'ab'",
    );
}

#[test]
fn and_or_short_circuit() {
    // The failing call is never made once the result is known.
    check(
        r#"{{and 0 (index . 5)}}|{{or 1 (index . 5)}}"#,
        &list(&[]),
        "0|1",
    );
    check(
        r#"{{and 1 "x" 2}}|{{or 0 "" "y"}}|{{or 0 ""}}|{{and 1 0 2}}"#,
        &Value::Nil,
        "2|y||0",
    );
    check(
        r#"{{if and .a .b}}both{{else}}no{{end}}"#,
        &map(&[("a", Value::Int(1))]),
        "no",
    );
}

#[test]
fn comparisons() {
    check(
        r#"{{eq 1 2 3 1}} {{eq "a" "b"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}"#,
        &Value::Nil,
        "true false true true true true false",
    );
    check(r#"{{eq .x "a"}}"#, &map(&[]), "false");
    // Go's basic kinds: an int and a float do not compare (promtool).
    check_err(
        "{{lt 1 2.5}}",
        &Value::Nil,
        "template: t:1:2: executing \"t\" at <lt 1 2.5>: error calling lt: incompatible types for comparison",
    );
    check_err(
        "{{eq 1 1.0}}",
        &Value::Nil,
        "template: t:1:2: executing \"t\" at <eq 1 1.0>: error calling eq: incompatible types for comparison",
    );
    check_err(
        "{{lt true false}}",
        &Value::Nil,
        "template: t:1:2: executing \"t\" at <lt true false>: error calling lt: invalid type for comparison",
    );
}

#[test]
fn printing_values_like_go() {
    let data = map(&[
        ("f", Value::Float(1e6)),
        ("g", Value::Float(123456.0)),
        (
            "l",
            list(&[Value::Int(1), s("a"), Value::Nil, Value::Float(2.5)]),
        ),
        ("m", map(&[("b", Value::Int(2)), ("a", list(&[s("x")]))])),
    ]);
    check(
        "{{.f}} {{.g}} {{.l}} {{.m}} {{.nil}}",
        &data,
        "1e+06 123456 [1 a <nil> 2.5] map[a:[x] b:2] <no value>",
    );
    check(
        "{{print 1 2 \"a\" 3 \"b\" \"c\" nil}}",
        &Value::Nil,
        "1 2a3bc<nil>",
    );
    check("{{println 1 \"a\"}}", &Value::Nil, "1 a\n");
}

#[test]
fn printf_errors_like_go() {
    check(
        r#"{{printf "%d|%s %d|%z" "x" "a"}}"#,
        &Value::Nil,
        "%!d(string=x)|a %!d(MISSING)|%!z(MISSING)",
    );
    check(
        r#"{{printf "%d" 1 "a"}}"#,
        &Value::Nil,
        "1%!(EXTRA string=a)",
    );
}

#[test]
fn builtin_functions() {
    let data = map(&[
        ("l", list(&[s("a"), s("b"), s("c")])),
        ("m", map(&[("k", s("v"))])),
    ]);
    check(r#"{{len .l}} {{len .m}} {{len "héllo"}}"#, &data, "3 1 6");
    check(
        r#"{{index .l 1}} {{index .m "k"}} {{index "abc" 0}}"#,
        &data,
        "b v 97",
    );
    check(
        r#"{{slice .l 1}} {{slice .l 1 2}} {{slice "abcdef" 2 4}}"#,
        &data,
        "[b c] [b] cd",
    );
    check(r#"{{not 0}} {{not "x"}}"#, &data, "true false");
    check(
        r#"{{html "<a href='x'>&\""}}"#,
        &data,
        "&lt;a href=&#39;x&#39;&gt;&amp;&#34;",
    );
    check(
        r#"{{js "<a='x'>\\"}}"#,
        &data,
        "\\u003Ca\\u003D\\'x\\'\\u003E\\\\",
    );
    check(
        r#"{{urlquery "a b&c=d/é~"}}"#,
        &data,
        "a+b%26c%3Dd%2F%C3%A9~",
    );
    check_err(
        "{{index .l 5}}",
        &data,
        "template: t:1:2: executing \"t\" at <index .l 5>: error calling index: index out of range: 5",
    );
    check_err(
        "{{not}}",
        &data,
        "template: t:1:2: executing \"t\" at <not>: wrong number of args for not: want 1 got 0",
    );
    check_err(
        "{{nosuch 1}}",
        &data,
        "template: t:1: function \"nosuch\" not defined",
    );
}

#[test]
fn custom_functions_and_extend() {
    let mut funcs = FuncMap::builtins();
    let double: Func = Arc::new(|args: &[Value]| match args {
        [Value::Int(i)] => Ok(Value::Int(i * 2)),
        _ => Err("want one int".to_string()),
    });
    funcs.insert("double", double);
    let mut extra = FuncMap::empty();
    extra.insert("hello", Arc::new(|_: &[Value]| Ok(Value::from("hi"))));
    funcs.extend(extra);
    let mut set = set_with(funcs, MissingKey::Default);
    set.parse("t", "{{double 21}} {{3 | double}} {{hello}}")
        .unwrap();
    assert_eq!(set.execute("t", &Value::Nil).unwrap(), "42 6 hi");
    set.parse("e", r#"{{double "x"}}"#).unwrap();
    assert_eq!(
        set.execute("e", &Value::Nil).unwrap_err().to_string(),
        "template: e:1:2: executing \"e\" at <double \"x\">: error calling double: want one int"
    );
}

#[test]
fn prometheus_query_helpers() {
    let sample = |instance: &str, v: f64| {
        let mut labels = BTreeMap::new();
        labels.insert("instance".to_string(), instance.to_string());
        labels.insert("__value__".to_string(), format!("{v}"));
        map(&[("Labels", Value::from(labels)), ("Value", Value::Float(v))])
    };
    let result = list(&[sample("b", 2.0), sample("a", 1500.0), sample("c", 0.25)]);
    let mut funcs = funcs::prometheus();
    let captured = result.clone();
    funcs.insert("query", Arc::new(move |_: &[Value]| Ok(captured.clone())));
    let mut set = set_with(funcs, MissingKey::Zero);
    set.parse(
        "t",
        r#"{{with query "up"}}{{. | first | value | humanize}} {{. | first | label "instance"}} {{(first .) | strvalue}}{{end}}|{{range query "up" | sortByLabel "instance"}}{{.Labels.instance}}={{.Value}};{{end}}"#,
    )
    .unwrap();
    assert_eq!(
        set.execute("t", &Value::Nil).unwrap(),
        "2 b 2|a=1500;b=2;c=0.25;"
    );
    set.parse("empty", r#"{{first (args)}}"#).unwrap();
    assert!(set.execute("empty", &Value::Nil).is_err());
}

#[test]
fn prometheus_humanizers() {
    check(
        "{{humanize 1234567.0}} {{humanize 0.000012}} {{humanize1024 1048576}} {{humanizePercentage 0.5}}",
        &Value::Nil,
        "1.235M 12u 1Mi 50%",
    );
    check(
        "{{humanizeDuration 90061}} {{humanizeDuration 0.25}} {{humanizeTimestamp 1700000000}}",
        &Value::Nil,
        "1d 1h 1m 1s 250ms 2023-11-14 22:13:20 +0000 UTC",
    );
    check(
        r#"{{(toTime 1700000000).Format "2006-01-02"}} {{toDuration 90}}"#,
        &Value::Nil,
        "2023-11-14 1m30s",
    );
}

#[test]
fn alertmanager_functions() {
    let mut set = set_with(funcs::alertmanager(), MissingKey::Default);
    set.parse(
        "t",
        r#"{{title "hello wORLD"}}|{{join ", " (stringSlice "a" "b")}}|{{trimSpace "  x "}}|{{toUpper "a"}}|{{reReplaceAll "a+" "-" "baaab"}}|{{match "^b" "bc"}}|{{safeHtml "<b>"}}|{{humanizeDuration 3600}}"#,
    )
    .unwrap();
    assert_eq!(
        set.execute("t", &Value::Nil).unwrap(),
        "Hello World|a, b|x|A|b-b|true|<b>|1h 0m 0s"
    );
    set.parse(
        "d",
        r#"{{date "2006-01-02 15:04" .}}|{{(tz "UTC" .).Unix}}"#,
    )
    .unwrap();
    let t = template::time::Time::new(1_700_000_000, 0).value();
    assert_eq!(set.execute("d", &t).unwrap(), "2023-11-14 22:13|1700000000");
}

#[test]
fn error_positions_name_template_line_and_column() {
    let mut set = set_with(FuncMap::builtins(), MissingKey::Default);
    let err = set.parse("file.tmpl", "line1\n{{if}}").unwrap_err();
    assert_eq!((err.name(), err.line(), err.col()), ("file.tmpl", 2, 4));
    assert_eq!(
        err.to_string(),
        "template: file.tmpl:2: missing value for if"
    );
    set.parse(
        "file.tmpl",
        "a\n{{define \"inner\"}}\n  {{index 1 2}}{{end}}",
    )
    .unwrap();
    let err = set.execute("inner", &Value::Nil).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: file.tmpl:3:4: executing \"inner\" at <index 1 2>: error calling index: can't index item of type int"
    );
    let err: Box<dyn std::error::Error> = Box::new(err);
    assert!(err.to_string().starts_with("template: "));
}

#[test]
fn limits_stop_runaway_templates() {
    // Infinite recursion stops at the depth limit.
    let err = run(
        r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r"}}"#,
        &Value::Nil,
    )
    .unwrap_err();
    assert!(err.contains("exceeded maximum template depth"), "{err}");
    // Exponential fan-out stops at the step limit.
    let err = run(
        r#"{{define "f"}}{{template "f"}}{{template "f"}}{{end}}{{template "f"}}"#,
        &Value::Nil,
    )
    .unwrap_err();
    assert!(err.contains("exceeded"), "{err}");
    let err = run("{{range 100000000000}}{{end}}", &Value::Nil).unwrap_err();
    assert!(err.contains("steps"), "{err}");
    // Deep nesting is a parse error, not a stack overflow.
    let deep = "{{if 1}}".repeat(1000) + &"{{end}}".repeat(1000);
    assert!(
        run(&deep, &Value::Nil)
            .unwrap_err()
            .contains("nesting deeper")
    );
    let parens = "{{".to_string() + &"(".repeat(1000) + "1" + &")".repeat(1000) + "}}";
    assert!(run(&parens, &Value::Nil).is_err());
    // Nesting just inside the limit still runs.
    let ok = "{{if 1}}".repeat(70) + "x" + &"{{end}}".repeat(70);
    assert_eq!(run(&ok, &Value::Nil).unwrap(), "x");
}

#[test]
fn garbage_never_panics() {
    let pieces = [
        "{{", "}}", "{{-", "-}}", " ", "if", "else", "end", "range", "with", "define", "template",
        "block", "\"x\"", "`", "'", "$", "$x", ":=", "=", "|", "(", ")", ".", ".a", "1", "-", "/*",
        "*/", "nil", "break", "printf", "%", "é", "\n", ",", "0x", "1e", "index", "and", "tmpl",
    ];
    // A deterministic pseudo-random walk over the pieces.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut text = String::new();
        let n = (state % 12) as usize + 1;
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(pieces[(state % pieces.len() as u64) as usize]);
        }
        let _ = run(&text, &map(&[("a", list(&[Value::Int(1)]))]));
    }
}

#[test]
fn templates_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Templates>();
    assert_send_sync::<Value>();
    assert_send_sync::<template::Error>();
}

#[test]
fn conversions_into_values() {
    let data = map(&[
        ("i", Value::from(7i32)),
        ("u", Value::from(8usize)),
        ("v", Value::from(vec!["a".to_string(), "b".to_string()])),
        ("o", Value::object(Pairs(vec!["x".into()]))),
        ("b", Value::from(true)),
        ("f", Value::from(0.5)),
    ]);
    check(
        "{{.i}} {{.u}} {{.v}} {{.o}} {{.b}} {{.f}}",
        &data,
        "7 8 [a b] [\"x\"] true 0.5",
    );
}

/// A map-like object with a method, like Alertmanager's `KV`.
#[derive(Debug)]
struct Kv(Vec<(String, String)>);

impl Object for Kv {
    fn field(&self, name: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| Value::from(v.as_str()))
    }
    fn method(&self, name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        (name == "Names").then(|| {
            Ok(Value::from(
                self.0.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            ))
        })
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
        "kv".to_string()
    }
}

#[test]
fn map_like_objects() {
    let kv = Value::object(Kv(vec![("z".into(), "1".into()), ("a".into(), "2".into())]));
    check(
        r#"{{range $k, $v := .}}{{$k}}={{$v}};{{end}}|{{len .}}|{{index . "a"}}|{{.z}}|{{.nope}}|{{.Names}}|{{if .}}t{{end}}"#,
        &kv,
        "a=2;z=1;|2|2|1|<no value>|[z a]|t",
    );
    check("{{if .}}t{{else}}f{{end}}", &Value::object(Kv(vec![])), "f");
}
