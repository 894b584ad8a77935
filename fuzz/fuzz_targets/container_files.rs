//! Fuzzes the container exporter's readers of cgroup and procfs files
//! (`cpu.stat`, `memory.stat`, `cpu.max`, `io.stat`, blkio files,
//! `/proc/<pid>/cgroup`, `net/dev`, `mountinfo`, `diskstats`, sysfs
//! `uevent`) and of Docker's and containerd's state files: arbitrary text
//! in each; none may panic.
#![no_main]

use exporters::container::{meta, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse::flat_keyed(text).count();
    let _ = parse::keyed_value(text, "usage_usec");
    let _ = parse::single_value(text);
    let _ = parse::single_signed(text);
    let _ = parse::cpu_max(text);
    let _ = parse::per_cpu(text);
    let _ = parse::io_stat(text);
    let _ = parse::blkio_v1(text);
    let _ = parse::proc_cgroup_path(text, None);
    let _ = parse::proc_cgroup_path(text, Some("memory"));
    for line in parse::net_dev(text) {
        let _ = (line.receive_bytes(), line.transmit_dropped());
    }
    let _ = parse::mountinfo(text);
    let _ = parse::diskstats(text);
    let _ = parse::uevent_devname(text);
    let _ = meta::container_id(text);
    let _ = meta::docker_config(text);
    let _ = meta::oci_bundle("id", text);
    let _ = exporters::container::sanitize_label_name(text);
});
