//! `osprey exporter host|gpu|blackbox --listen ADDR`: the real binary
//! serving one exporter, its metrics plus `process_*` on `/metrics`, and
//! probes on `/probe` with modules from a blackbox.yml.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{ChildGuard, free_addr, http};

/// Starts `osprey exporter <args>` on `addr` and waits for `/-/healthy`.
fn start(addr: SocketAddr, args: &[&str]) -> ChildGuard {
    let exporter = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_osprey"))
            .arg("exporter")
            .args(args)
            .args(["--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
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
