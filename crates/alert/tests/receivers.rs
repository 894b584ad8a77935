//! Slack, PagerDuty and email notifications to loopback fakes, checked
//! field by field against the documented payload formats: Slack's
//! incoming-webhook message with one attachment, PagerDuty's Events API v2
//! event, and an SMTP conversation (EHLO name, AUTH PLAIN, envelope,
//! headers, multipart/alternative body) with a tiny SMTP sink.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alert::{Alertmanager, Options, PostableAlert};
use config::alertmanager::parse as parse_am;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Store = Arc<Mutex<Vec<(String, Value)>>>;

/// An HTTP fake recording JSON bodies per path; answers 202 like PagerDuty.
async fn http_fake() -> (String, Store) {
    let store: Store = Arc::new(Mutex::new(Vec::new()));
    let recorded = store.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let recorded = recorded.clone();
        async move {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            recorded
                .lock()
                .unwrap()
                .push((uri.path().to_string(), value));
            axum::http::StatusCode::ACCEPTED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), store)
}

/// One SMTP session as the sink saw it.
#[derive(Clone, Debug, Default)]
struct Mail {
    ehlo: String,
    auth: String,
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server: advertises AUTH PLAIN LOGIN (no STARTTLS),
/// accepts one message per session.
async fn smtp_sink() -> (String, Arc<Mutex<Vec<Mail>>>) {
    let mails = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut mail = Mail::default();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        mail.ehlo = line[5..].to_string();
                        b"250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("AUTH") {
                        mail.auth = line.clone();
                        b"235 ok\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail.from = line[10..].to_string();
                        b"250 ok\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        mail.to.push(line[8..].to_string());
                        b"250 ok\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 go\r\n").await.unwrap();
                        while let Ok(Some(data_line)) = lines.next_line().await {
                            if data_line == "." {
                                break;
                            }
                            mail.data.push_str(&data_line);
                            mail.data.push('\n');
                        }
                        store.lock().unwrap().push(mail.clone());
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (addr.to_string(), mails)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn drift(ends_at_ms: i64) -> PostableAlert {
    PostableAlert {
        labels: vec![
            ("alertname".into(), "Drift".into()),
            ("team".into(), "ml".into()),
            ("severity".into(), "critical".into()),
        ],
        annotations: vec![("summary".into(), "feature drift on model A".into())],
        starts_at_ms: None,
        ends_at_ms: Some(ends_at_ms),
        generator_url: "http://prometheus/graph?g0.expr=drift".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_pagerduty_and_email_payloads() {
    let (http, requests) = http_fake().await;
    let (smtp, mails) = smtp_sink().await;
    let yaml = format!(
        r#"
global:
  smtp_smarthost: '{smtp}'
  smtp_from: 'osprey@example.org'
  smtp_hello: osprey.test
  smtp_auth_username: alice
  smtp_auth_password: secret
  smtp_require_tls: false
  slack_api_url: '{http}/slack'
  pagerduty_url: '{http}/pd'
route:
  receiver: all
  group_by: [alertname]
  group_wait: 200ms
  group_interval: 700ms
  repeat_interval: 1h
receivers:
  - name: all
    email_configs:
      - to: 'oncall@example.org, ml@example.org'
        send_resolved: true
        text: 'text {{{{ .Status }}}}'
        headers: {{X-Team: '{{{{ .CommonLabels.team }}}}'}}
    slack_configs:
      - channel: '#ml'
        send_resolved: true
        title: 'custom {{{{ .GroupLabels.alertname }}}}'
    pagerduty_configs:
      - routing_key: rk-123
        severity: '{{{{ .CommonLabels.severity }}}}'
        details: {{team: '{{{{ .CommonLabels.team }}}}'}}
"#
    );
    let config = parse_am("am.yml", &yaml, None).unwrap();
    let am = Alertmanager::start(
        config,
        yaml.clone(),
        Options {
            state_dir: None,
            external_url: "http://osprey.test:9093".into(),
            retention_ms: alert::DEFAULT_RETENTION_MS,
            cluster: None,
        },
    )
    .unwrap();
    am.put_alerts(vec![drift(now_ms() + 3_600_000)]).unwrap();
    wait_until("slack and pagerduty", || {
        requests.lock().unwrap().len() >= 2
    })
    .await;
    wait_until("an email", || !mails.lock().unwrap().is_empty()).await;

    let got = requests.lock().unwrap().clone();
    let slack = &got.iter().find(|(path, _)| path == "/slack").unwrap().1;
    assert_eq!(slack["channel"], "#ml");
    assert_eq!(slack["username"], "Alertmanager");
    assert!(slack.get("icon_emoji").is_none() && slack.get("icon_url").is_none());
    let attachment = &slack["attachments"][0];
    assert_eq!(slack["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(attachment["title"], "custom Drift");
    assert_eq!(
        attachment["title_link"],
        "http://osprey.test:9093/#/alerts?receiver=all"
    );
    assert_eq!(attachment["color"], "danger");
    assert_eq!(
        attachment["fallback"],
        "[FIRING:1] Drift (critical ml) | http://osprey.test:9093/#/alerts?receiver=all"
    );
    let text = attachment["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "*Firing*\nLabels:\n - alertname = Drift\n - severity = critical\n - team = ml\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(" - summary = feature drift on model A\n"),
        "{text}"
    );
    assert!(
        text.contains("Source: http://prometheus/graph?g0.expr=drift"),
        "{text}"
    );
    assert_eq!(attachment["callback_id"], "");
    assert_eq!(attachment["footer"], "");
    assert_eq!(
        attachment["mrkdwn_in"],
        serde_json::json!(["fallback", "pretext", "text"])
    );
    assert!(attachment.get("pretext").is_none());

    let pd = &got.iter().find(|(path, _)| path == "/pd").unwrap().1;
    assert_eq!(pd["routing_key"], "rk-123");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(
        pd["dedup_key"],
        alert::notify::sha256_hex(br#"{}:{alertname="Drift"}"#)
    );
    assert_eq!(pd["client"], "Alertmanager");
    assert_eq!(
        pd["client_url"],
        "http://osprey.test:9093/#/alerts?receiver=all"
    );
    let payload = &pd["payload"];
    assert_eq!(payload["summary"], "[FIRING:1] Drift (critical ml)");
    assert_eq!(payload["source"], "Alertmanager");
    assert_eq!(payload["severity"], "critical");
    let details = &payload["custom_details"];
    assert_eq!(details["num_firing"], "1");
    assert_eq!(details["num_resolved"], "0");
    assert_eq!(details["team"], "ml");
    assert!(
        details["firing"]
            .as_str()
            .unwrap()
            .contains(" - alertname = Drift")
    );
    assert_eq!(details["resolved"], "");

    let mail = mails.lock().unwrap()[0].clone();
    assert_eq!(mail.ehlo, "osprey.test");
    // AUTH PLAIN with "\0alice\0secret" in base64.
    assert_eq!(mail.auth, "AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    assert_eq!(mail.from, "<osprey@example.org>");
    assert_eq!(mail.to, vec!["<oncall@example.org>", "<ml@example.org>"]);
    let data = &mail.data;
    let header = |name: &str| {
        data.lines()
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|line| line[name.len() + 1..].trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("Subject"), "[FIRING:1] Drift (critical ml)");
    assert_eq!(header("From"), "osprey@example.org");
    assert_eq!(header("To"), "oncall@example.org, ml@example.org");
    assert_eq!(header("X-Team"), "ml");
    assert!(
        header("Content-Type").starts_with("multipart/alternative"),
        "{data}"
    );
    assert!(
        !header("Date").is_empty() && !header("Message-ID").is_empty(),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(data.contains("text firing"), "{data}");
    assert!(
        data.contains("Content-Type: text/html; charset=utf-8"),
        "{data}"
    );
    // The HTML part is quoted-printable: `=` is written `=3D`.
    assert!(data.contains("alertname =3D Drift<br>"), "{data}");

    // Resolution: PagerDuty resolves the same incident, Slack turns green,
    // the mail subject says RESOLVED.
    am.put_alerts(vec![drift(now_ms())]).unwrap();
    wait_until("resolved notifications", || {
        requests.lock().unwrap().len() >= 4
    })
    .await;
    wait_until("a second email", || mails.lock().unwrap().len() >= 2).await;
    let got = requests.lock().unwrap().clone();
    let slack = &got.iter().rfind(|(path, _)| path == "/slack").unwrap().1;
    assert_eq!(slack["attachments"][0]["color"], "good");
    assert!(
        slack["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("*Resolved*")
    );
    let pd = &got.iter().rfind(|(path, _)| path == "/pd").unwrap().1;
    assert_eq!(pd["event_action"], "resolve");
    assert_eq!(
        pd["dedup_key"],
        alert::notify::sha256_hex(br#"{}:{alertname="Drift"}"#)
    );
    let mail = mails.lock().unwrap()[1].clone();
    assert!(
        mail.data
            .contains("Subject: [RESOLVED] Drift (critical ml)"),
        "{}",
        mail.data
    );
    am.stop();
}

/// Kills a child process when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a program runs here; prints why not, or fails when
/// `OSPREY_REQUIRE_EXTERNAL=1`.
fn available(program: &str, arg: &str) -> bool {
    let required = std::env::var("OSPREY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    match std::process::Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => true,
        other => {
            let reason = format!("{program} is not usable: {other:?}");
            assert!(!required, "OSPREY_REQUIRE_EXTERNAL=1 but {reason}");
            eprintln!("skipping: {reason}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_uses_starttls_before_authenticating() {
    if !available("openssl", "version") || !available("python3", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/testdata/smtp_starttls_sink.py"
    );
    let mut sink = std::process::Command::new("python3")
        .arg(script)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = sink.stdout.take().unwrap();
    let _sink = KillOnDrop(sink);
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let port = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the sink prints its port");
    // require_tls is on by default; the self-signed certificate needs
    // insecure_skip_verify.
    let yaml = format!(
        r#"
route:
  receiver: mail
  group_wait: 100ms
receivers:
  - name: mail
    email_configs:
      - to: 'oncall@example.org'
        from: 'osprey@example.org'
        smarthost: '127.0.0.1:{port}'
        auth_username: bob
        auth_password: pw
        tls_config: {{insecure_skip_verify: true}}
"#
    );
    let config = parse_am("am.yml", &yaml, None).unwrap();
    assert!(config.receivers[0].email_configs[0].require_tls);
    let am = Alertmanager::start(
        config,
        yaml.clone(),
        Options {
            state_dir: None,
            external_url: "http://osprey.test".into(),
            retention_ms: alert::DEFAULT_RETENTION_MS,
            cluster: None,
        },
    )
    .unwrap();
    am.put_alerts(vec![drift(now_ms() + 3_600_000)]).unwrap();
    let line = lines
        .recv_timeout(Duration::from_secs(15))
        .expect("a message arrives");
    let session: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(session["tls"], true);
    assert_eq!(
        session["auth_tls"], true,
        "authenticated only after STARTTLS"
    );
    assert_eq!(session["auth"], "AUTH PLAIN AGJvYgBwdw==");
    assert_eq!(session["to"], serde_json::json!(["<oncall@example.org>"]));
    assert!(
        session["data"]
            .as_str()
            .unwrap()
            .contains("Subject: [FIRING:1]  (Drift critical ml)"),
        "{session}"
    );
    am.stop();
}
