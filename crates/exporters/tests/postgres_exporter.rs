//! The PostgreSQL exporter beside Debian's `prometheus-postgres-exporter`
//! (0.11) over a real PostgreSQL cluster that this test creates with
//! `initdb` (as `nobody` when the test runs as root, since PostgreSQL
//! refuses to run as root), with a replication slot and a streaming WAL
//! receiver so the replication namespaces have rows. The metric names and
//! each metric's label names must match, except the differences listed in
//! [`KNOWN_DIFFERENCES`] (each in `docs/exporters.md` with its reason), and
//! at least 95 % of the reference's names must be present. Also: stable
//! values, TLS modes, and a server that goes away.
//!
//! Skips when the programs are missing; fails instead under
//! `OSPREY_REQUIRE_EXTERNAL=1`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exporters::postgres::{PostgresExporter, PostgresOptions};

mod dashboards;
mod support;

use support::{Exposition, label_names};

/// Metrics whose presence differs from postgres_exporter 0.11 on purpose:
/// (metric, which side has it, reason). Keep `docs/exporters.md` in step.
const KNOWN_DIFFERENCES: &[(&str, Side, &str)] = &[(
    "pg_postmaster_start_time_seconds",
    Side::OnlyOsprey,
    "asked for by the issue; postgres_exporter 0.11 has it only as an example user query",
)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    OnlyOsprey,
    #[allow(dead_code, reason = "no reference-only name today")]
    OnlyReference,
}

/// The account PostgreSQL runs as when the test is root.
const NOBODY: u32 = 65534;

/// A child process stopped and reaped when dropped, so a failed assertion
/// leaves nothing running: first with `stop_signal` (PostgreSQL's fast
/// shutdown, SIGINT, ends its backends too), then, after 10 s, killed.
struct Guard {
    child: Child,
    stop_signal: Option<i32>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(signal) = self.stop_signal
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            // SAFETY: kill has no memory preconditions; the pid is our
            // own unreaped child, so it cannot name another process.
            unsafe { libc::kill(pid, signal) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs as `nobody` when the test is root.
fn as_postgres_user(command: &mut Command) -> &mut Command {
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

fn spawn(command: &mut Command) -> Guard {
    Guard {
        child: command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}")),
        stop_signal: None,
    }
}

// Ports remembered for the life of the test process, so two tests running
// in parallel never start their servers on one port.
#[path = "../../osprey/tests/support/ports.rs"]
mod ports;

fn free_port() -> u16 {
    ports::free_addr().port()
}

/// PostgreSQL's server programs: on PATH, or in Debian's
/// `/usr/lib/postgresql/<version>/bin` (the newest).
fn pg_bin(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.reverse();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The server programs, or a skip notice (a failure under
/// OSPREY_REQUIRE_EXTERNAL=1).
fn require() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let found = (
        pg_bin("initdb"),
        pg_bin("postgres"),
        pg_bin("pg_receivewal"),
    );
    let exporter = installed("prometheus-postgres-exporter");
    if let ((Some(initdb), Some(postgres), Some(receivewal)), true) = (found.clone(), exporter) {
        return Some((initdb, postgres, receivewal));
    }
    let what = format!(
        "postgresql (initdb {:?}, postgres {:?}, pg_receivewal {:?}) or prometheus-postgres-exporter (found: {exporter})",
        found.0, found.1, found.2
    );
    if std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
        panic!("missing {what} and OSPREY_REQUIRE_EXTERNAL=1");
    }
    eprintln!("skipping: missing {what} (set OSPREY_REQUIRE_EXTERNAL=1 to fail instead)");
    None
}

/// A running cluster: its directory, port and processes.
struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    port: u16,
    postgres: Option<Guard>,
    receivewal: Option<Guard>,
    cert_pem: String,
}

fn give_to_nobody(path: &Path) {
    if is_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {port} after 20 s");
}

/// initdb, a certificate for 127.0.0.1, and the server with TLS on.
fn start_cluster(initdb: &Path, postgres: &Path) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    give_to_nobody(&root);
    let data = root.join("data");
    let status = as_postgres_user(
        Command::new(initdb)
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .status()
    .unwrap();
    assert!(status.success(), "initdb failed");

    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2031, 1, 2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    for (name, text) in [
        ("server.crt", cert.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        let path = data.join(name);
        std::fs::write(&path, text).unwrap();
        give_to_nobody(&path);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    let port = free_port();
    let mut guard = spawn(as_postgres_user(
        Command::new(postgres)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&data)
            .args(["-c", "fsync=off", "-c", "ssl=on", "-c", "max_wal_senders=4"]),
    ));
    guard.stop_signal = Some(libc::SIGINT);
    wait_for_port(port);
    Cluster {
        _dir: dir,
        root,
        port,
        postgres: Some(guard),
        receivewal: None,
        cert_pem: cert.pem(),
    }
}

fn dsn(port: u16, extra: &str) -> String {
    format!("postgresql://postgres@127.0.0.1:{port}/postgres?{extra}")
}

/// A table with rows, a physical replication slot, and a WAL receiver
/// streaming from it (so `pg_stat_replication` has a row).
async fn populate(cluster: &mut Cluster, receivewal: &Path) {
    // The port opens before the server accepts sessions ("the database
    // system is starting up"): retry until one is accepted.
    let config = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        cluster.port
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let (client, connection) = loop {
        match tokio_postgres::connect(&config, tokio_postgres::NoTls).await {
            Ok(connected) => break connected,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "postgres did not accept a session: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000);
             SELECT pg_create_physical_replication_slot('osprey_slot');",
        )
        .await
        .unwrap();
    let wal = cluster.root.join("wal");
    std::fs::create_dir(&wal).unwrap();
    give_to_nobody(&wal);
    cluster.receivewal = Some(spawn(as_postgres_user(
        Command::new(receivewal)
            .arg("-D")
            .arg(&wal)
            .args(["-h", "127.0.0.1", "-p", &cluster.port.to_string()])
            .args(["-U", "postgres", "--slot", "osprey_slot", "--no-loop", "-w"]),
    )));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = client
            .query("SELECT 1 FROM pg_stat_replication", &[])
            .await
            .unwrap();
        if !rows.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "pg_receivewal did not connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

fn reference(dsn: &str) -> (Guard, u16) {
    let port = free_port();
    let guard = spawn(
        Command::new("prometheus-postgres-exporter")
            .env("DATA_SOURCE_NAME", dsn)
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http_get(port, "/metrics").is_ok_and(|b| b.contains("\npg_up 1\n")) {
            return (guard, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("postgres_exporter did not report pg_up 1 within 20 s");
}

fn is_self_metric(name: &str) -> bool {
    name.starts_with("go_") || name.starts_with("process_") || name.starts_with("promhttp_")
}

/// The exposition without the exporters' own families.
fn parse_exposition(text: &str) -> Exposition {
    support::parse(text, is_self_metric)
}

async fn osprey(exporter: &PostgresExporter, dsn: &str) -> Exposition {
    let mut out = String::new();
    exporter
        .scrape(&[dsn.to_string()], Duration::from_secs(10), &mut out)
        .await;
    parse_exposition(&out)
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
async fn postgres_exporter_names_values_tls_and_absence() {
    let Some((initdb, postgres, receivewal)) = require() else {
        return;
    };
    let mut cluster = start_cluster(&initdb, &postgres);
    populate(&mut cluster, &receivewal).await;
    let plain = dsn(cluster.port, "sslmode=disable");
    let (_reference, reference_port) = reference(&plain);

    let exporter = PostgresExporter::new(PostgresOptions::DEFAULTS);
    let theirs = parse_exposition(&http_get(reference_port, "/metrics").unwrap());
    let ours = osprey(&exporter, &plain).await;
    let (ours_names, theirs_names) = (label_names(&ours), label_names(&theirs));
    let known = |metric: &str, side: Side| {
        KNOWN_DIFFERENCES
            .iter()
            .any(|&(m, s, _)| m == metric && s == side)
    };
    let mut problems = Vec::new();
    for (name, sets) in &ours_names {
        match theirs_names.get(name) {
            None if known(name, Side::OnlyOsprey) => {}
            None => problems.push(format!("only osprey has {name}")),
            Some(their_sets) if their_sets != sets => problems.push(format!(
                "{name} labels differ: osprey {sets:?}, postgres_exporter {their_sets:?}"
            )),
            Some(_) => {}
        }
    }
    let mut present = 0;
    for name in theirs_names.keys() {
        if ours_names.contains_key(name) {
            present += 1;
        } else if !known(name, Side::OnlyReference) {
            problems.push(format!("only postgres_exporter has {name}"));
        }
    }
    let share = present as f64 / theirs_names.len() as f64 * 100.0;
    eprintln!(
        "postgres_exporter: {} names, {present} present in osprey ({share:.1} %), {} names in osprey",
        theirs_names.len(),
        ours_names.len()
    );
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
    assert!(share >= 95.0, "{share:.1} % of postgres_exporter's names");
    for family in [
        "pg_stat_replication_pg_current_wal_lsn_bytes",
        "pg_replication_slots_active",
        "pg_stat_database_xact_commit",
        "pg_stat_bgwriter_buffers_alloc_total",
        "pg_locks_count",
        "pg_settings_max_connections",
    ] {
        assert!(ours.contains_key(family), "{family} missing");
    }

    // Values that do not move between the two scrapes.
    let server = format!("127.0.0.1:{}", cluster.port);
    let s = ("server", server.as_str());
    for name in [
        "pg_settings_max_connections",
        "pg_settings_shared_buffers_bytes",
        "pg_settings_work_mem_bytes",
        "pg_settings_statement_timeout_seconds",
        "pg_settings_fsync",
        "pg_settings_ssl",
    ] {
        assert_eq!(
            single(&ours, name, &[s]),
            single(&theirs, name, &[s]),
            "{name}"
        );
    }
    assert_eq!(
        single(&ours, "pg_settings_port", &[s]),
        f64::from(cluster.port)
    );
    assert_eq!(ours["pg_static"], theirs["pg_static"]);
    let slot = [("slot_name", "osprey_slot"), ("database", ""), s];
    assert_eq!(single(&ours, "pg_replication_slots_active", &slot), 1.0);
    let replica = [
        ("application_name", "pg_receivewal"),
        ("slot_name", "osprey_slot"),
    ];
    assert!(
        single(
            &ours,
            "pg_stat_replication_pg_current_wal_lsn_bytes",
            &replica
        ) > 0.0
    );
    for db in ["postgres", "template1"] {
        let a = single(&ours, "pg_database_size_bytes", &[("datname", db), s]);
        let b = single(&theirs, "pg_database_size_bytes", &[("datname", db), s]);
        assert!(
            (a - b).abs() <= 64.0 * 1024.0,
            "pg_database_size_bytes {db}: {a} vs {b}"
        );
    }
    assert_eq!(single(&ours, "pg_up", &[]), 1.0);
    assert_eq!(single(&ours, "pg_exporter_last_scrape_error", &[]), 0.0);
    // The PostgreSQL dashboard reads only names written here.
    for name in dashboards::metric_names("postgres", &["pg_"]) {
        assert!(
            ours.contains_key(&name),
            "the dashboard reads {name}, not written"
        );
    }

    // TLS: lib/pq's modes, over the same server.
    let ca = cluster.root.join("ca.pem");
    std::fs::write(&ca, &cluster.cert_pem).unwrap();
    let ca = ca.display().to_string();
    for (extra, up) in [
        ("sslmode=require".to_string(), 1.0),
        (String::new(), 1.0),
        (format!("sslmode=verify-full&sslrootcert={ca}"), 1.0),
        (format!("sslmode=verify-ca&sslrootcert={ca}"), 1.0),
        // The system roots do not know this certificate.
        ("sslmode=verify-full".to_string(), 0.0),
    ] {
        let fresh = PostgresExporter::new(PostgresOptions::DEFAULTS);
        let e = osprey(&fresh, &dsn(cluster.port, &extra)).await;
        assert_eq!(single(&e, "pg_up", &[]), up, "{extra}");
    }

    // The server goes away: the connection kept from the last scrape is
    // found closed and a new one cannot be made, so pg_up 0 with the
    // error counted.
    drop(cluster.receivewal.take());
    drop(cluster.postgres.take());
    assert!(TcpStream::connect(("127.0.0.1", cluster.port)).is_err());
    let e = osprey(&exporter, &plain).await;
    assert_eq!(single(&e, "pg_up", &[]), 0.0);
    assert_eq!(single(&e, "pg_exporter_last_scrape_error", &[]), 1.0);
    assert!(!e.contains_key("pg_stat_database_xact_commit"));
}
