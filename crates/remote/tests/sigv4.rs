//! osprey's SigV4 signer against botocore's (the AWS SDK for Python's own
//! signer, `tests/reference/sigv4.py`): the same requests, credentials and
//! times must give the same `authorization`, `x-amz-date` and
//! `x-amz-security-token` headers.
//!
//! Without python3 and botocore the test is skipped with a reason, unless
//! `OSPREY_REQUIRE_EXTERNAL=1`, where it fails.

use std::io::Write;
use std::process::{Command, Stdio};

use remote::sigv4::{Credentials, Request, sign};
use serde_json::{Value, json};

fn required() -> bool {
    std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

fn botocore_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import botocore.auth"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let reason = "python3 with botocore is not installed (pip install botocore)";
        assert!(!required(), "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
        eprintln!("skipping: {reason}");
    }
    ok
}

struct Case {
    method: &'static str,
    url: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    region: &'static str,
    service: &'static str,
    token: Option<&'static str>,
    unix_ms: i64,
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn cases() -> Vec<Case> {
    let remote_write = headers(&[
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/x-protobuf"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ]);
    let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    vec![
        Case {
            method: "POST",
            url: "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1234/api/v1/remote_write",
            headers: remote_write.clone(),
            body: body.clone(),
            region: "us-east-1",
            service: "aps",
            token: None,
            unix_ms: 1_440_938_160_000,
        },
        Case {
            method: "POST",
            url: "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-9/api/v1/remote_write",
            headers: remote_write.clone(),
            body: b"\x00snappy".to_vec(),
            region: "eu-west-1",
            service: "aps",
            token: Some("FQoGZXIvYXdzEJr//////////wEaDOY+token/with+slashes=="),
            unix_ms: 1_764_921_599_999,
        },
        Case {
            method: "POST",
            url: "http://127.0.0.1:9090/a%20b/api/v1/write?tenant=team%2Fml&b=2&a=x%20y",
            headers: headers(&[
                ("Content-Type", "application/x-protobuf"),
                ("X-Scope-OrgID", "  team   ml  "),
                ("User-Agent", "osprey/test"),
            ]),
            body: Vec::new(),
            region: "ap-southeast-2",
            service: "aps",
            token: None,
            unix_ms: 0,
        },
        Case {
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: Vec::new(),
            body: Vec::new(),
            region: "us-east-1",
            service: "service",
            token: None,
            unix_ms: 1_700_000_000_123,
        },
    ]
}

#[test]
fn signatures_match_botocore() {
    if !botocore_available() {
        return;
    }
    let cases = cases();
    let access_key = "AKIDEXAMPLE";
    let secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "method": c.method,
                "url": c.url,
                "headers": c.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
                "body_hex": c.body.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "region": c.region,
                "service": c.service,
                "access_key": access_key,
                "secret_key": secret_key,
                "session_token": c.token,
                "unix_ms": c.unix_ms,
            })
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/sigv4.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("write cases");
    let output = child.wait_with_output().expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Vec<Vec<(String, String)>> =
        serde_json::from_slice(&output.stdout).expect("botocore's answer");
    assert_eq!(theirs.len(), cases.len());
    for (case, expected) in cases.iter().zip(theirs) {
        let credentials = Credentials {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            session_token: case.token.map(str::to_string),
        };
        let request = Request {
            method: case.method,
            url: case.url,
            headers: &case.headers,
            body: &case.body,
        };
        let mut ours = sign(
            &request,
            case.region,
            case.service,
            &credentials,
            case.unix_ms,
        )
        .expect("sign");
        ours.sort();
        assert_eq!(ours, expected, "{}", case.url);
    }
}
