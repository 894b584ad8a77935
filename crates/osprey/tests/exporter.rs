//! `osprey exporter host|gpu|container|redis|postgres|blackbox --listen
//! ADDR`: the real binary serving one exporter, its metrics plus
//! `process_*` on `/metrics`, probes on `/probe` with modules from a
//! blackbox.yml, Redis's `/scrape?target=` with redis_exporter's flags
//! (single-dash too) and password file, and PostgreSQL's
//! `DATA_SOURCE_NAME` (or `DATA_SOURCE_URI`/`_USER`/`_PASS` and their
//! `_FILE`s) with a database that is away. Also `osprey server`
//! scraping several Redis and PostgreSQL instances from its `exporters:`
//! section.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{ChildGuard, Server, free_addr, http, urlencode};

/// Starts `osprey exporter <args>` on `addr` and waits for `/-/healthy`.
fn start(addr: SocketAddr, args: &[&str]) -> ChildGuard {
    start_with(addr, args, &[], Stdio::null())
}

/// [`start`] with environment variables and where stderr goes.
fn start_with(addr: SocketAddr, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> ChildGuard {
    let exporter = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_osprey"))
            .arg("exporter")
            .args(args)
            .args(["--listen", &addr.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr),
    )
    .expect("spawn osprey exporter");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((200, _)) = http(addr, "GET", "/-/healthy", &[], &[]) {
            return exporter;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("exporter did not start");
}

fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = http(addr, "GET", path, &[], &[]).expect("request");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn host_exporter_serves_node_metrics_and_process_metrics() {
    let addr = free_addr();
    let _exporter = start(addr, &["host"]);
    let (status, text) = get_text(addr, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "node_cpu_seconds_total{",
        "node_memory_MemTotal_bytes ",
        "node_filesystem_size_bytes{",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[test]
fn gpu_exporter_answers_with_or_without_a_gpu() {
    let addr = free_addr();
    let _exporter = start(addr, &["gpu"]);
    let (status, text) = get_text(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("\nosprey_gpu_available "), "{text}");
    // The two naming switches are taken (what they leave out is checked
    // through a fake NVML in crates/exporters/tests/gpu.rs); with both off
    // the osprey_gpu_* families stay.
    let addr = free_addr();
    let _switched = start(
        addr,
        &["gpu", "--no-dcgm-names", "--no-nvidia-gpu-exporter-names"],
    );
    let (status, text) = get_text(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("\nosprey_gpu_available "), "{text}");
    assert!(
        !text.contains("DCGM_FI_") && !text.contains("nvidia_gpu_"),
        "{text}"
    );
}

#[test]
fn blackbox_exporter_probes_with_modules_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("blackbox.yml");
    std::fs::write(
        &config,
        "modules:\n  tcp_v4:\n    prober: tcp\n    tcp:\n      preferred_ip_protocol: ip4\n",
    )
    .expect("write config");
    let addr = free_addr();
    let _exporter = start(addr, &["blackbox", "--config", config.to_str().unwrap()]);
    // The exporter's own port is open; a just-freed port is closed.
    let (status, text) = get_text(addr, &format!("/probe?module=tcp_v4&target={addr}"));
    assert_eq!(status, 200);
    assert!(text.contains("\nprobe_success 1\n"), "{text}");
    let closed = free_addr();
    let (_, text) = get_text(addr, &format!("/probe?module=tcp_v4&target={closed}"));
    assert!(text.contains("\nprobe_success 0\n"), "{text}");
    let (status, _) = get_text(addr, "/probe?module=http_2xx&target=x");
    assert_eq!(status, 400, "only the file's modules exist");
}

#[test]
fn a_bad_blackbox_file_is_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("blackbox.yml");
    std::fs::write(&config, "modules:\n  m:\n    prober: icmp\n").expect("write");
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["exporter", "blackbox", "--listen", &free_addr().to_string()])
        .arg("--config")
        .arg(&config);
    let out = ChildGuard::output(&mut command, Duration::from_secs(30)).expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("blackbox.yml") && err.contains("icmp"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn container_exporter_serves_cadvisor_names() {
    let addr = free_addr();
    let _exporter = start(addr, &["container", "--docker_only=false"]);
    let (status, text) = get_text(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE container_scrape_error gauge"),
        "{text}"
    );
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir()
        || std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
    {
        assert!(
            text.contains("container_memory_usage_bytes{id=\"/"),
            "{text}"
        );
    }
}

fn redis_server_installed() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!("redis-server is missing and OSPREY_REQUIRE_EXTERNAL=1");
        }
        eprintln!(
            "skipping: redis-server is missing (set OSPREY_REQUIRE_EXTERNAL=1 to fail instead)"
        );
    }
    found
}

#[test]
fn redis_exporter_takes_redis_exporters_flags() {
    if !redis_server_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let redis_addr = free_addr();
    let _redis = ChildGuard::spawn(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--requirepass", "pw1"])
            .args(["--port", &redis_addr.port().to_string()])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(redis_addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // redis_exporter's password file: a JSON object of URI to password.
    let passwords = dir.path().join("passwords.json");
    std::fs::write(&passwords, format!("{{\"redis://{redis_addr}\": \"pw1\"}}")).expect("write");
    let addr = free_addr();
    // Single-dash flags, as Go's flag package takes them.
    let _exporter = start(
        addr,
        &[
            "redis",
            &format!("-redis.addr=redis://{redis_addr}"),
            "-redis.password-file",
            passwords.to_str().unwrap(),
        ],
    );
    let (status, text) = get_text(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("\nredis_up 1\n"), "{text}");
    assert!(text.contains("redis_connected_clients "), "{text}");
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    let (status, text) = get_text(addr, &format!("/scrape?target=redis://{redis_addr}"));
    assert_eq!(status, 200);
    assert!(text.contains("\nredis_up 1\n"), "{text}");
    // An address missing from the password file gets no password.
    let other = free_addr();
    let (_, text) = get_text(addr, &format!("/scrape?target={other}"));
    assert!(text.contains("\nredis_up 0\n"), "{text}");
    let (status, _) = get_text(addr, "/scrape");
    assert_eq!(status, 400);
    let (_, text) = get_text(addr, "/metrics");
    assert!(
        text.contains("\nredis_target_scrape_request_errors_total 1\n"),
        "{text}"
    );

    // REDIS_ADDR and REDIS_PASSWORD, as redis_exporter reads them.
    let addr = free_addr();
    let _from_env = start_with(
        addr,
        &["redis"],
        &[
            ("REDIS_ADDR", &format!("redis://{redis_addr}")),
            ("REDIS_PASSWORD", "pw1"),
        ],
        Stdio::null(),
    );
    let (_, text) = get_text(addr, "/metrics");
    assert!(text.contains("\nredis_up 1\n"), "{text}");
}

#[test]
fn postgres_exporter_reads_data_source_name_and_says_when_the_database_is_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("exporter.log");
    let closed = free_addr();
    let addr = free_addr();
    let _exporter = start_with(
        addr,
        &["postgres"],
        &[(
            "DATA_SOURCE_NAME",
            &format!("postgresql://postgres:s3cret@{closed}/postgres?sslmode=disable"),
        )],
        Stdio::from(std::fs::File::create(&log).expect("log file")),
    );
    let (status, text) = get_text(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("\npg_up 0\n"), "{text}");
    assert!(
        text.contains("\npg_exporter_last_scrape_error 1\n"),
        "{text}"
    );
    let (_, text) = get_text(addr, "/metrics");
    assert!(text.contains("\npg_exporter_scrapes_total 2\n"), "{text}");
    let logged = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("postgres is not answering"))
        .collect();
    // One line when it goes away, not one per scrape; the password is not
    // in it.
    assert_eq!(lines.len(), 1, "{logged}");
    assert!(
        lines[0].contains("PASSWORD_REMOVED") && !logged.contains("s3cret"),
        "{logged}"
    );
}

/// postgres_exporter's other way to name the database: `DATA_SOURCE_URI`,
/// `DATA_SOURCE_USER` and `DATA_SOURCE_PASS`, each also as a `_FILE`
/// variable that wins. The redacted data source name in the log line shows
/// what was assembled (user percent-encoded, password removed).
#[test]
fn postgres_exporter_assembles_the_data_source_from_uri_user_and_pass_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = free_addr();
    let (uri, pass) = (dir.path().join("uri"), dir.path().join("pass"));
    std::fs::write(&uri, format!("{closed}/postgres?sslmode=disable\n")).expect("write");
    std::fs::write(&pass, "from-file-pw\n").expect("write");
    let log = dir.path().join("exporter.log");
    let addr = free_addr();
    let _exporter = start_with(
        addr,
        &["postgres"],
        &[
            ("DATA_SOURCE_NAME", ""),
            ("DATA_SOURCE_URI", "ignored.example:1/x"),
            ("DATA_SOURCE_URI_FILE", uri.to_str().expect("utf8")),
            ("DATA_SOURCE_USER", "metrics reader"),
            ("DATA_SOURCE_PASS", "plain-pw"),
            ("DATA_SOURCE_PASS_FILE", pass.to_str().expect("utf8")),
        ],
        Stdio::from(std::fs::File::create(&log).expect("log file")),
    );
    let (status, text) = get_text(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("\npg_up 0\n"), "{text}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains(&format!(
            "postgresql://metrics%20reader:PASSWORD_REMOVED@{closed}/postgres?sslmode=disable"
        )),
        "{logged}"
    );
    assert!(
        !logged.contains("from-file-pw") && !logged.contains("plain-pw"),
        "{logged}"
    );
    assert!(!logged.contains("ignored.example"), "{logged}");
}

#[test]
fn postgres_exporter_refuses_what_it_does_not_do() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["exporter", "postgres", "--listen", &free_addr().to_string()])
        .arg("--extend.query-path=/etc/queries.yaml")
        .env("DATA_SOURCE_NAME", "postgresql://localhost/postgres");
    let out = ChildGuard::output(&mut command, Duration::from_secs(30)).expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--extend.query-path") && err.contains("not supported"),
        "{err}"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprey"));
    command
        .args(["exporter", "postgres", "--listen", &free_addr().to_string()])
        .env_remove("DATA_SOURCE_NAME")
        .env_remove("DATA_SOURCE_URI")
        .env_remove("DATA_SOURCE_URI_FILE");
    let out = ChildGuard::output(&mut command, Duration::from_secs(30)).expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATA_SOURCE_NAME"));
}

/// A redis-server on `addr` with its data in `dir`, and a password when
/// given; returns once it accepts connections.
fn redis_server(dir: &std::path::Path, addr: SocketAddr, password: Option<&str>) -> ChildGuard {
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--save", ""])
        .args(["--port", &addr.port().to_string()])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(password) = password {
        command.args(["--requirepass", password]);
    }
    let guard = ChildGuard::spawn(&mut command).expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    guard
}

/// `instance` label -> value of an instant query's result vector.
fn instant(addr: SocketAddr, query: &str) -> std::collections::BTreeMap<String, f64> {
    let path = format!("/api/v1/query?query={}", urlencode(query));
    let Ok((200, body)) = http(addr, "GET", &path, &[], &[]) else {
        return Default::default();
    };
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let instance = r["metric"]["instance"].as_str()?.to_string();
            let value = r["value"][1].as_str()?.parse().ok()?;
            Some((instance, value))
        })
        .collect()
}

/// Several instances in the `exporters:` section, one with a password
/// file, one without a password and one that is away, plus a PostgreSQL
/// instance that is away: the server scrapes them all as the `redis` and
/// `postgres` jobs through its own `?target=` routes, and the answers land
/// in the database like any target's.
#[test]
fn server_scrapes_several_redis_and_postgres_instances_from_its_config() {
    if !redis_server_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (with_password, without_password, away) = (free_addr(), free_addr(), free_addr());
    let _first = redis_server(dir.path(), with_password, Some("pw-from-file"));
    let second_dir = dir.path().join("second");
    std::fs::create_dir(&second_dir).expect("mkdir");
    let _second = redis_server(&second_dir, without_password, None);
    std::fs::write(dir.path().join("redis.pass"), "pw-from-file\n").expect("write");
    std::fs::write(
        dir.path().join("meta.dsn"),
        format!("postgresql://postgres:pg-secret@{away}/postgres?sslmode=disable\n"),
    )
    .expect("write");
    let config = dir.path().join("osprey.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 200ms, scrape_timeout: 150ms}}
scrape_configs: []
exporters:
  redis:
    instances:
      - address: {with_password}
        password_file: redis.pass
      - address: {without_password}
      - address: {away}
  postgres:
    instances:
      - name: meta
        data_source_name_file: meta.dsn
"
        ),
    )
    .expect("write config");
    let addr = free_addr();
    let server = Server::start_with_args(
        &dir.path().join("data"),
        addr,
        &dir.path().join("server.log"),
        &["--config", config.to_str().expect("utf8")],
    );
    let want: std::collections::BTreeMap<String, f64> = [
        (format!("redis://{with_password}"), 1.0),
        (format!("redis://{without_password}"), 1.0),
        (format!("redis://{away}"), 0.0),
    ]
    .into_iter()
    .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = instant(addr, "redis_up{job=\"redis\"}");
        let pg = instant(addr, "pg_up{job=\"postgres\"}");
        if got == want && pg.get("meta") == Some(&0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis_up {got:?} (want {want:?}), pg_up {pg:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each answering instance is scraped as itself: the server's own
    // connection shows in its client count, and every target is up (an
    // instance that is away is redis_up 0, not a failed scrape).
    let clients = instant(addr, "redis_connected_clients{job=\"redis\"}");
    assert_eq!(clients.len(), 2, "{clients:?}");
    let up = instant(addr, "up{job=~\"redis|postgres\"}");
    assert_eq!(up.len(), 4, "{up:?}");
    assert!(up.values().all(|&v| v == 1.0), "{up:?}");
    assert!(!server.log_text().contains("pg-secret"));
}
