//! A real Prometheus (2.42 from the distribution, `prometheus` on the
//! path) for differential tests, with native histograms enabled.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{ChildGuard, external_present, free_addr, http};

/// Whether `prometheus` runs; prints why not, or fails when
/// `OSPREY_REQUIRE_EXTERNAL=1`.
pub fn available() -> bool {
    let ran = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    external_present(
        ran.is_ok(),
        "prometheus (apt-get install prometheus, for the comparison with Prometheus 2.42)",
    )
}

/// Starts Prometheus with `config` (the YAML text), its data under `dir`,
/// the remote-write receiver and native histograms on, and waits until
/// it is ready. Killed when the guard drops.
pub fn start(dir: &Path, config: &str) -> (ChildGuard, SocketAddr) {
    let addr = free_addr();
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("write prometheus config");
    let child = ChildGuard::spawn_ready(
        Command::new("prometheus")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--enable-feature=native-histograms"),
        &dir.join("prometheus.log"),
        Duration::from_secs(60),
        || matches!(http(addr, "GET", "/-/ready", &[], &[]), Ok((200, _))),
    );
    (child, addr)
}
