//! The host exporter beside Debian's `prometheus-node-exporter` 1.5 on the
//! same machine: for every collector, the metric names and each metric's
//! label names must be the same, except the differences listed in
//! [`KNOWN_DIFFERENCES`] (each also in `docs/exporters.md` with its reason),
//! and the values that do not move (memory total, filesystem sizes, CPU
//! count, boot time, uname) must agree.
//!
//! Skips when node_exporter is not installed; fails instead under
//! `OSPREY_REQUIRE_EXTERNAL=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exporters::host::{Collector, HostExporter, HostOptions};

mod support;

// Ports remembered for the life of the test process: the two tests start
// a node_exporter each, in parallel, and a port asked of the kernel and
// let go may be handed out again, so both could get one port; the second
// exporter then fails to bind and its test reads the first one's.
#[path = "../../osprey/tests/support/ports.rs"]
mod ports;

use support::{Exposition, label_names};

/// Metrics whose presence differs from node_exporter 1.5 on purpose:
/// (collector, metric, which side has it). Keep `docs/exporters.md` in step.
const KNOWN_DIFFERENCES: &[(&str, &str, Side)] = &[];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code, reason = "KNOWN_DIFFERENCES is empty today")]
enum Side {
    OnlyOsprey,
    OnlyNodeExporter,
}

/// Families node_exporter adds about itself, not about the host.
fn is_self_metric(name: &str) -> bool {
    name.starts_with("go_")
        || name.starts_with("process_")
        || name.starts_with("promhttp_")
        || name.starts_with("node_scrape_collector_")
        || name == "node_exporter_build_info"
}

/// The exposition without the exporters' own families.
fn parse_exposition(text: &str) -> Exposition {
    support::parse(text, is_self_metric)
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n"
    )?;
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

struct NodeExporter {
    child: Child,
    port: u16,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_node_exporter() -> Option<String> {
    ["prometheus-node-exporter", "node_exporter"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_string)
}

fn start_node_exporter() -> Option<NodeExporter> {
    let Some(program) = find_node_exporter() else {
        if std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!("prometheus-node-exporter is missing and OSPREY_REQUIRE_EXTERNAL=1");
        }
        eprintln!(
            "skipping: prometheus-node-exporter is missing (set OSPREY_REQUIRE_EXTERNAL=1 to fail instead)"
        );
        return None;
    };
    let port = ports::free_addr().port();
    let mut command = Command::new(program);
    command
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults");
    for c in Collector::ALL {
        command.arg(format!("--collector.{}", c.name()));
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting node_exporter");
    let ne = NodeExporter { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if http_get(port, "/metrics?collect[]=uname").is_ok() {
            return Some(ne);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node_exporter did not answer within 10 s");
}

fn osprey(collector: Collector) -> Exposition {
    let mut out = String::new();
    HostExporter::new(HostOptions::linux_defaults()).collect(&[collector], &mut out);
    parse_exposition(&out)
}

fn node_exporter(ne: &NodeExporter, collector: Collector) -> Exposition {
    let body = http_get(ne.port, &format!("/metrics?collect[]={}", collector.name()))
        .expect("scraping node_exporter");
    parse_exposition(&body)
}

#[test]
fn names_and_labels_match_node_exporter() {
    let Some(ne) = start_node_exporter() else {
        return;
    };
    let mut problems = Vec::new();
    for collector in Collector::ALL {
        let ours = label_names(&osprey(collector));
        let theirs = label_names(&node_exporter(&ne, collector));
        let known = |metric: &str, side: Side| {
            KNOWN_DIFFERENCES
                .iter()
                .any(|&(c, m, s)| c == collector.name() && m == metric && s == side)
        };
        for (name, sets) in &ours {
            match theirs.get(name) {
                None if known(name, Side::OnlyOsprey) => {}
                None => problems.push(format!("{}: only osprey has {name}", collector.name())),
                Some(their_sets) if their_sets != sets => problems.push(format!(
                    "{}: {name} labels differ: osprey {sets:?}, node_exporter {their_sets:?}",
                    collector.name()
                )),
                Some(_) => {}
            }
        }
        for name in theirs.keys() {
            if !ours.contains_key(name) && !known(name, Side::OnlyNodeExporter) {
                problems.push(format!(
                    "{}: only node_exporter has {name}",
                    collector.name()
                ));
            }
        }
        eprintln!(
            "{}: osprey {} metrics, node_exporter {}",
            collector.name(),
            ours.len(),
            theirs.len()
        );
    }
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
}

fn single_value(e: &Exposition, name: &str) -> f64 {
    match e.get(name).map(Vec::as_slice) {
        Some([(_, v)]) => *v,
        other => panic!("{name}: expected one sample, got {other:?}"),
    }
}

#[test]
fn stable_values_agree_with_node_exporter() {
    let Some(ne) = start_node_exporter() else {
        return;
    };
    // Memory total and boot time are fixed for the life of the host.
    for (collector, name) in [
        (Collector::Meminfo, "node_memory_MemTotal_bytes"),
        (Collector::Meminfo, "node_memory_SwapTotal_bytes"),
        (Collector::Stat, "node_boot_time_seconds"),
    ] {
        let ours = single_value(&osprey(collector), name);
        let theirs = single_value(&node_exporter(&ne, collector), name);
        assert_eq!(ours, theirs, "{name}");
    }
    // The same CPUs, counted by distinct `cpu` labels.
    let cpus = |e: &Exposition| -> BTreeSet<String> {
        e["node_cpu_seconds_total"]
            .iter()
            .map(|(l, _)| l["cpu"].clone())
            .collect()
    };
    let ours = cpus(&osprey(Collector::Cpu));
    assert!(!ours.is_empty());
    assert_eq!(ours, cpus(&node_exporter(&ne, Collector::Cpu)));
    // Filesystem sizes and inode totals per mount point.
    let sizes = |e: &Exposition, name: &str| -> BTreeMap<String, f64> {
        e[name]
            .iter()
            .map(|(l, v)| (l["mountpoint"].clone(), *v))
            .collect()
    };
    let ours = osprey(Collector::Filesystem);
    let theirs = node_exporter(&ne, Collector::Filesystem);
    for name in ["node_filesystem_size_bytes", "node_filesystem_files"] {
        assert_eq!(sizes(&ours, name), sizes(&theirs, name), "{name}");
    }
    // The same block and network devices.
    let devices = |e: &Exposition, name: &str| -> BTreeSet<String> {
        e.get(name)
            .map(|s| s.iter().map(|(l, _)| l["device"].clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        devices(&osprey(Collector::Diskstats), "node_disk_info"),
        devices(&node_exporter(&ne, Collector::Diskstats), "node_disk_info")
    );
    assert_eq!(
        devices(
            &osprey(Collector::Netdev),
            "node_network_receive_bytes_total"
        ),
        devices(
            &node_exporter(&ne, Collector::Netdev),
            "node_network_receive_bytes_total"
        )
    );
    // uname is one labelled sample with identical labels.
    assert_eq!(
        osprey(Collector::Uname)["node_uname_info"],
        node_exporter(&ne, Collector::Uname)["node_uname_info"]
    );
}
