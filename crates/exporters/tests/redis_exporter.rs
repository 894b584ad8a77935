//! The Redis exporter beside Debian's `prometheus-redis-exporter` (1.45)
//! over a real `redis-server`, both started here: the metric names and
//! each metric's label names must match, except the differences listed in
//! [`KNOWN_DIFFERENCES`] (each in `docs/exporters.md` with its reason),
//! and at least 95 % of the reference's names must be present. Also: the
//! values that do not move, the multi-target `/scrape?target=` answer,
//! replication compared on a master and its replica, a password, and TLS with a CA, without one, and without verification.
//!
//! Skips when the programs are missing; fails instead under
//! `OSPREY_REQUIRE_EXTERNAL=1`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exporters::redis::{RedisExporter, RedisTarget, RedisTls};

mod dashboards;
mod support;

use support::{Exposition, label_names};

/// Metrics whose presence differs from redis_exporter 1.45 on purpose:
/// (metric, which side has it, reason). Keep `docs/exporters.md` in step.
const KNOWN_DIFFERENCES: &[(&str, Side, &str)] = &[(
    "redis_last_key_groups_scrape_duration_milliseconds",
    Side::OnlyReference,
    "key groups (--check-key-groups) are not implemented; the reference writes 0 without them",
)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    #[allow(dead_code, reason = "no osprey-only name today")]
    OnlyOsprey,
    OnlyReference,
}

const PASSWORD: &str = "s3cret-pw";

/// A child process killed and reaped when dropped, so a failed assertion
/// leaves nothing running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(command: &mut Command) -> Guard {
    Guard(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}")),
    )
}

// Ports remembered for the life of the test process, so two tests running
// in parallel never start their servers on one port.
#[path = "../../osprey/tests/support/ports.rs"]
mod ports;

fn free_port() -> u16 {
    ports::free_addr().port()
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the programs are here; a skip notice or a failure when not.
fn require(programs: &[&str]) -> bool {
    let missing: Vec<&&str> = programs.iter().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("{missing:?} missing and OSPREY_REQUIRE_EXTERNAL=1");
    }
    eprintln!("skipping: {missing:?} missing (set OSPREY_REQUIRE_EXTERNAL=1 to fail instead)");
    false
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port} after 10 s");
}

/// A redis-server on a free port with a password, its data in `dir`;
/// `extra` adds arguments (TLS).
fn redis_server(dir: &Path, extra: &[String]) -> (Guard, u16) {
    let port = free_port();
    let mut command = Command::new("redis-server");
    command
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--save")
        .arg("")
        .arg("--appendonly")
        .arg("no")
        .arg("--dir")
        .arg(dir)
        .arg("--requirepass")
        .arg(PASSWORD)
        .arg("--latency-monitor-threshold")
        .arg("1")
        .arg("--enable-debug-command")
        .arg("local");
    if extra.is_empty() {
        command.arg("--port").arg(port.to_string());
    } else {
        command
            .arg("--port")
            .arg("0")
            .arg("--tls-port")
            .arg(port.to_string());
        command.args(extra);
    }
    let guard = spawn(&mut command);
    wait_for_port(port);
    (guard, port)
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(format!("bad response: {head}")));
    }
    Ok(body.to_string())
}

/// The reference exporter for `redis://127.0.0.1:<redis_port>`, with the
/// password from a password file (redis_exporter's JSON map of URI to
/// password).
fn reference(dir: &Path, redis_port: u16) -> (Guard, u16) {
    let port = free_port();
    let password_file = dir.join("passwords.json");
    std::fs::write(
        &password_file,
        format!("{{\"redis://127.0.0.1:{redis_port}\": \"{PASSWORD}\"}}"),
    )
    .unwrap();
    let guard = spawn(
        Command::new("prometheus-redis-exporter")
            .arg(format!("--redis.addr=redis://127.0.0.1:{redis_port}"))
            .arg(format!("--redis.password-file={}", password_file.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if http_get(port, "/metrics").is_ok_and(|b| b.contains("\nredis_up 1\n")) {
            return (guard, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis_exporter did not report redis_up 1 within 10 s");
}

/// Some data and events: keys with and without TTLs in two databases, a
/// slow-log entry and a latency spike.
async fn populate(port: u16) {
    let client = redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{port}/0")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..20 {
        let mut set = redis::cmd("SET");
        set.arg(format!("key{i}")).arg(i);
        if i % 4 == 0 {
            set.arg("EX").arg(3600);
        }
        let _: () = set.query_async(&mut c).await.unwrap();
    }
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("other")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg(0.01)
        .query_async(&mut c)
        .await
        .unwrap();
    // An error reply, for redis_errors_total.
    let _: Result<(), _> = redis::cmd("INCR")
        .arg("nope-not")
        .arg("x")
        .query_async(&mut c)
        .await;
}

/// Families other than the instance's: the Go runtime's and the HTTP
/// handler's.
fn is_self_metric(name: &str) -> bool {
    name.starts_with("go_") || name.starts_with("process_") || name.starts_with("promhttp_")
}

/// The exposition without the exporters' own families.
fn parse_exposition(text: &str) -> Exposition {
    support::parse(text, is_self_metric)
}

async fn osprey(target: &RedisTarget) -> Exposition {
    let mut out = String::new();
    RedisExporter::new()
        .scrape(target, Duration::from_secs(10), &mut out)
        .await;
    parse_exposition(&out)
}

fn target(port: u16) -> RedisTarget {
    RedisTarget {
        address: format!("redis://127.0.0.1:{port}"),
        user: None,
        password: Some(PASSWORD.to_string()),
        tls: RedisTls::default(),
    }
}

/// Compares names and label names; returns (reference names, of them
/// present in osprey, problems).
fn compare(ours: &Exposition, theirs: &Exposition) -> (usize, usize, Vec<String>) {
    let ours = label_names(ours);
    let theirs = label_names(theirs);
    let known = |metric: &str, side: Side| {
        KNOWN_DIFFERENCES
            .iter()
            .any(|&(m, s, _)| m == metric && s == side)
    };
    let mut problems = Vec::new();
    for (name, sets) in &ours {
        match theirs.get(name) {
            None if known(name, Side::OnlyOsprey) => {}
            None => problems.push(format!("only osprey has {name}")),
            Some(their_sets) if their_sets != sets => problems.push(format!(
                "{name} labels differ: osprey {sets:?}, redis_exporter {their_sets:?}"
            )),
            Some(_) => {}
        }
    }
    let mut present = 0;
    for name in theirs.keys() {
        if ours.contains_key(name) {
            present += 1;
        } else if !known(name, Side::OnlyReference) {
            problems.push(format!("only redis_exporter has {name}"));
        }
    }
    (theirs.len(), present, problems)
}

fn single(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.get(name)
        .and_then(|samples| {
            samples.iter().find_map(|(l, v)| {
                labels
                    .iter()
                    .all(|(k, w)| l.get(*k).map(String::as_str) == Some(*w))
                    .then_some(*v)
            })
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

#[tokio::test]
async fn names_and_labels_match_redis_exporter() {
    if !require(&["redis-server", "prometheus-redis-exporter"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_redis, redis_port) = redis_server(dir.path(), &[]);
    populate(redis_port).await;
    let (_exporter, exporter_port) = reference(dir.path(), redis_port);

    let theirs = parse_exposition(&http_get(exporter_port, "/metrics").unwrap());
    let ours = osprey(&target(redis_port)).await;
    let (total, present, problems) = compare(&ours, &theirs);
    let share = present as f64 / total as f64 * 100.0;
    eprintln!(
        "redis_exporter /metrics: {total} names, {present} present in osprey ({share:.1} %), {} names in osprey",
        ours.len()
    );
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
    assert!(share >= 95.0, "{share:.1} % of redis_exporter's names");

    // The multi-target endpoint answers the same families.
    let scraped = parse_exposition(
        &http_get(
            exporter_port,
            &format!("/scrape?target=redis://127.0.0.1:{redis_port}"),
        )
        .unwrap(),
    );
    let (_, _, problems) = compare(&ours, &scraped);
    assert!(
        problems.is_empty(),
        "/scrape differences:\n{}",
        problems.join("\n")
    );

    // The values that do not move between the two scrapes.
    for db in ["db0", "db3"] {
        for name in ["redis_db_keys", "redis_db_keys_expiring"] {
            assert_eq!(
                single(&ours, name, &[("db", db)]),
                single(&theirs, name, &[("db", db)]),
                "{name} {db}"
            );
        }
    }
    assert_eq!(single(&ours, "redis_db_keys", &[("db", "db0")]), 20.0);
    assert_eq!(
        single(&ours, "redis_db_keys_expiring", &[("db", "db0")]),
        5.0
    );
    for name in [
        "redis_up",
        "redis_config_maxclients",
        "redis_config_maxmemory",
        "redis_memory_max_bytes",
        "redis_connected_slaves",
        "redis_process_id",
        "redis_aof_enabled",
        "redis_start_time_seconds",
    ] {
        let (a, b) = (single(&ours, name, &[]), single(&theirs, name, &[]));
        // The start time is computed from the uptime at each scrape.
        let slack = if name == "redis_start_time_seconds" {
            2.0
        } else {
            0.0
        };
        assert!(
            (a - b).abs() <= slack,
            "{name}: osprey {a}, redis_exporter {b}"
        );
    }
    assert_eq!(ours["redis_instance_info"], theirs["redis_instance_info"]);
    assert_eq!(
        single(
            &ours,
            "redis_latency_spike_duration_seconds",
            &[("event_name", "command")]
        ),
        single(
            &theirs,
            "redis_latency_spike_duration_seconds",
            &[("event_name", "command")]
        ),
    );
    assert!(single(&ours, "redis_errors_total", &[("err", "ERR")]) >= 1.0);

    // The Redis dashboard reads only names written here (the replica's
    // link state only on replicas).
    for name in dashboards::metric_names("redis", &["redis_"]) {
        assert!(
            ours.contains_key(&name) || name == "redis_master_link_up",
            "the dashboard reads {name}, not written"
        );
    }
}

/// A replica of the server on `master_port`, with the same password, once
/// its link to the master is up.
async fn replica_of(dir: &Path, master_port: u16) -> (Guard, u16) {
    let dir = dir.join("replica");
    std::fs::create_dir_all(&dir).unwrap();
    let (guard, port) = redis_server(&dir, &[]);
    let client = redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{port}/0")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for (key, value) in [
        ("masterauth", PASSWORD.to_string()),
        ("latency-monitor-threshold", "0".to_string()),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master_port)
        .query_async(&mut c)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut c)
            .await
            .unwrap();
        if info.contains("master_link_status:up") {
            return (guard, port);
        }
        assert!(
            Instant::now() < deadline,
            "the replica's link did not come up in 20 s:\n{info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replication on both sides: a master with a streaming replica, and the
/// replica itself, each scraped by osprey and by redis_exporter. The
/// first comparison's master has no replica, so the per-replica and
/// replica-only families (`redis_connected_slave_*`, `redis_master_link_up`,
/// `redis_slave_repl_offset`, `redis_slave_info`, ...) are compared here.
#[tokio::test]
async fn replication_names_match_redis_exporter_on_master_and_replica() {
    if !require(&["redis-server", "prometheus-redis-exporter"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_master, master_port) = redis_server(dir.path(), &[]);
    populate(master_port).await;
    let (_replica, replica_port) = replica_of(dir.path(), master_port).await;

    for (role, port) in [("master", master_port), ("replica", replica_port)] {
        let role_dir = dir.path().join(format!("exporter-{role}"));
        std::fs::create_dir_all(&role_dir).unwrap();
        let (_exporter, exporter_port) = reference(&role_dir, port);
        let theirs = parse_exposition(&http_get(exporter_port, "/metrics").unwrap());
        let ours = osprey(&target(port)).await;
        let (total, present, problems) = compare(&ours, &theirs);
        let share = present as f64 / total as f64 * 100.0;
        eprintln!(
            "redis_exporter on the {role}: {total} names, {present} present in osprey ({share:.1} %), {} names in osprey",
            ours.len()
        );
        assert!(
            problems.is_empty(),
            "{role} differences:\n{}",
            problems.join("\n")
        );
        assert!(
            share >= 95.0,
            "{role}: {share:.1} % of redis_exporter's names"
        );
        if role == "master" {
            assert_eq!(single(&ours, "redis_connected_slaves", &[]), 1.0);
            let replica = [("slave_ip", "127.0.0.1"), ("slave_state", "online")];
            for name in [
                "redis_connected_slave_offset_bytes",
                "redis_connected_slave_lag_seconds",
            ] {
                single(&ours, name, &replica);
            }
            assert_eq!(
                ours["redis_connected_slave_offset_bytes"][0].0,
                theirs["redis_connected_slave_offset_bytes"][0].0
            );
        } else {
            let master_port = master_port.to_string();
            let master = [("master_host", "127.0.0.1"), ("master_port", &*master_port)];
            assert_eq!(single(&ours, "redis_master_link_up", &master), 1.0);
            assert_eq!(single(&theirs, "redis_master_link_up", &master), 1.0);
            assert_eq!(single(&ours, "redis_connected_slaves", &[]), 0.0);
            assert_eq!(ours["redis_slave_info"], theirs["redis_slave_info"]);
            // The replica holds the master's keys.
            assert_eq!(single(&ours, "redis_db_keys", &[("db", "db0")]), 20.0);
        }
    }
}

#[tokio::test]
async fn a_wrong_password_or_an_absent_instance_is_redis_up_0() {
    if !require(&["redis-server"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_redis, port) = redis_server(dir.path(), &[]);
    let mut wrong = target(port);
    wrong.password = Some("wrong".into());
    let e = osprey(&wrong).await;
    assert_eq!(single(&e, "redis_up", &[]), 0.0);
    let error = e["redis_exporter_last_scrape_error"][0].0["err"].clone();
    assert!(error.to_lowercase().contains("authentication"), "{error}");
    // Credentials in the URL work too (as --redis.addr takes them).
    let in_url = RedisTarget::plain(&format!("redis://:{PASSWORD}@127.0.0.1:{port}"));
    assert_eq!(single(&osprey(&in_url).await, "redis_up", &[]), 1.0);
}

#[tokio::test]
async fn tls_with_a_ca_without_one_and_unverified() {
    if !require(&["redis-server"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2031, 1, 2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let extra = [
        "--tls-cert-file".to_string(),
        cert_file.display().to_string(),
        "--tls-key-file".to_string(),
        key_file.display().to_string(),
        "--tls-ca-cert-file".to_string(),
        cert_file.display().to_string(),
        "--tls-auth-clients".to_string(),
        "no".to_string(),
    ];
    let (_redis, port) = redis_server(dir.path(), &extra);
    let tls_target = |tls: RedisTls| RedisTarget {
        address: format!("rediss://127.0.0.1:{port}"),
        user: None,
        password: Some(PASSWORD.to_string()),
        tls,
    };
    let trusted = tls_target(RedisTls {
        ca_pem: Some(cert.pem().into_bytes()),
        ..RedisTls::default()
    });
    let e = osprey(&trusted).await;
    assert_eq!(
        single(&e, "redis_up", &[]),
        1.0,
        "{:?}",
        e.get("redis_exporter_last_scrape_error")
    );
    assert!(e.contains_key("redis_memory_used_bytes"));
    // The system roots do not know this certificate.
    let e = osprey(&tls_target(RedisTls::default())).await;
    assert_eq!(single(&e, "redis_up", &[]), 0.0);
    let e = osprey(&tls_target(RedisTls {
        insecure_skip_verify: true,
        ..RedisTls::default()
    }))
    .await;
    assert_eq!(single(&e, "redis_up", &[]), 1.0);
    // Plain Redis protocol against the TLS port fails.
    let e = osprey(&target(port)).await;
    assert_eq!(single(&e, "redis_up", &[]), 0.0);
}
