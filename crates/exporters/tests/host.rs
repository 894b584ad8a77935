//! The host exporter over hand-made procfs and sysfs trees: hwmon chips
//! (absent on most CI machines), and a broken file failing only its own
//! collector.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;

use exporters::host::{Collector, HostExporter, HostOptions};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn exporter(root: &Path) -> HostExporter {
    let mut options = HostOptions::linux_defaults();
    options.proc_path = root.join("proc");
    options.sys_path = root.join("sys");
    options.udev_data_path = root.join("udev");
    HostExporter::new(options)
}

#[test]
fn hwmon_temperatures_with_node_exporter_chip_names() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let device = sys.join("devices/platform/coretemp.0");
    std::fs::create_dir_all(&device).unwrap();
    let hwmon0 = sys.join("class/hwmon/hwmon0");
    write(&hwmon0.join("name"), "coretemp\n");
    write(&hwmon0.join("temp1_input"), "45000\n");
    write(&hwmon0.join("temp1_crit"), "100000\n");
    write(&hwmon0.join("temp1_max"), "80000\n");
    write(&hwmon0.join("temp1_label"), "Package id 0\n");
    write(&hwmon0.join("temp2_input"), "-1500\n");
    std::os::unix::fs::symlink(&device, hwmon0.join("device")).unwrap();
    // A chip without a device link is named after its `name` file.
    let hwmon1 = sys.join("class/hwmon/hwmon1");
    write(&hwmon1.join("name"), "ACPI Thermal\n");
    write(&hwmon1.join("temp1_input"), "27800\n");

    let mut out = String::new();
    exporter(dir.path()).collect(&[Collector::Hwmon], &mut out);
    for line in [
        "node_hwmon_chip_names{chip=\"platform_coretemp_0\",chip_name=\"coretemp\"} 1",
        "node_hwmon_chip_names{chip=\"acpi_thermal\",chip_name=\"ACPI Thermal\"} 1",
        "node_hwmon_sensor_label{chip=\"platform_coretemp_0\",label=\"Package id 0\",sensor=\"temp1\"} 1",
        "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"} 45",
        "node_hwmon_temp_celsius{chip=\"platform_coretemp_0\",sensor=\"temp2\"} -1.5",
        "node_hwmon_temp_celsius{chip=\"acpi_thermal\",sensor=\"temp1\"} 27.8",
        "node_hwmon_temp_crit_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"} 100",
        "node_hwmon_temp_max_celsius{chip=\"platform_coretemp_0\",sensor=\"temp1\"} 80",
        "node_scrape_collector_success{collector=\"hwmon\"} 1",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    // Each family appears once, with its metadata.
    assert_eq!(
        out.matches("# TYPE node_hwmon_temp_celsius gauge").count(),
        1
    );
}

#[test]
fn a_broken_file_fails_only_its_collector() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    write(
        &proc.join("meminfo"),
        "MemTotal:       1024 kB\nMemFree: lots kB\n",
    );
    write(&proc.join("loadavg"), "0.5 0.25 0.125 1/100 42\n");
    let mut out = String::new();
    exporter(dir.path()).collect(&[Collector::Meminfo, Collector::Loadavg], &mut out);
    assert!(!out.contains("node_memory_"), "{out}");
    assert!(out.contains("node_load1 0.5\n"), "{out}");
    assert!(out.contains("node_load15 0.125\n"), "{out}");
    assert!(out.contains("node_scrape_collector_success{collector=\"meminfo\"} 0\n"));
    assert!(out.contains("node_scrape_collector_success{collector=\"loadavg\"} 1\n"));
}

#[test]
fn meminfo_names_units_and_parentheses() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("proc/meminfo"),
        "MemTotal:       1024 kB\nActive(anon):     2 kB\nHugePages_Total:       3\n",
    );
    let mut out = String::new();
    exporter(dir.path()).collect(&[Collector::Meminfo], &mut out);
    assert!(
        out.contains("\nnode_memory_MemTotal_bytes 1048576\n"),
        "{out}"
    );
    assert!(
        out.contains("\nnode_memory_Active_anon_bytes 2048\n"),
        "{out}"
    );
    assert!(out.contains("\nnode_memory_HugePages_Total 3\n"), "{out}");
}

#[test]
fn cpu_thermal_throttles_per_core_and_package() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("proc/stat"),
        "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nbtime 1\n",
    );
    let cpus = dir.path().join("sys/devices/system/cpu");
    // cpu0 and cpu1 are two threads of core 0 of package 0.
    for (cpu, core) in [("cpu0", "0"), ("cpu1", "0"), ("cpu2", "1")] {
        write(&cpus.join(cpu).join("topology/physical_package_id"), "0\n");
        write(
            &cpus.join(cpu).join("topology/core_id"),
            &format!("{core}\n"),
        );
        write(
            &cpus
                .join(cpu)
                .join("thermal_throttle/package_throttle_count"),
            "9\n",
        );
        write(
            &cpus.join(cpu).join("thermal_throttle/core_throttle_count"),
            if core == "0" { "3\n" } else { "4\n" },
        );
    }
    write(&cpus.join("online"), "0-2\n");
    let mut out = String::new();
    exporter(dir.path()).collect(&[Collector::Cpu], &mut out);
    assert!(
        out.contains("node_cpu_core_throttles_total{core=\"0\",package=\"0\"} 3\n"),
        "{out}"
    );
    assert!(
        out.contains("node_cpu_core_throttles_total{core=\"1\",package=\"0\"} 4\n"),
        "{out}"
    );
    assert_eq!(out.matches("node_cpu_core_throttles_total{").count(), 2);
    assert!(
        out.contains("node_cpu_package_throttles_total{package=\"0\"} 9\n"),
        "{out}"
    );
    assert!(
        out.contains("node_cpu_seconds_total{cpu=\"1\",mode=\"steal\"} 0.08\n"),
        "{out}"
    );
}
