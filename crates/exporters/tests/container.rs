//! The container exporter over hand-made cgroup trees (v2 and v1) whose
//! every value is known, with Docker and containerd metadata, network
//! namespaces, host filesystems and GPU processes; then over the test
//! machine's own cgroups, checked against what the files say.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use exporters::container::{ContainerExporter, ContainerOptions};
use exporters::gpu::{EccCounts, GpuExporter, GpuProcess, GpuReading, GpuSource};
use model::exposition::{Entry, Format, Parser};

mod dashboards;

const DOCKER_ID: &str = "4f1c0a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
const CRI_ID: &str = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Sample name -> list of (labels, value).
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

fn parse(text: &str) -> Samples {
    let mut out: Samples = BTreeMap::new();
    for entry in Parser::new(text.as_bytes(), Format::Text) {
        let entry = entry.unwrap_or_else(|e| panic!("bad exposition: {e}\n{text}"));
        if let Entry::Sample {
            name,
            labels,
            value,
            ..
        } = entry
        {
            let labels = labels
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            out.entry(name.into_owned())
                .or_default()
                .push((labels, value));
        }
    }
    out
}

/// The value of `name` for the series whose labels include `want`.
fn value(samples: &Samples, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples.get(name)?.iter().find_map(|(labels, v)| {
        want.iter()
            .all(|(k, w)| labels.get(*k).map(String::as_str) == Some(*w))
            .then_some(*v)
    })
}

fn expect(samples: &Samples, name: &str, want: &[(&str, &str)], expected: f64) {
    let got = value(samples, name, want)
        .unwrap_or_else(|| panic!("no {name} with {want:?}; have {:?}", samples.get(name)));
    assert!(
        (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{name} {want:?}: got {got}, want {expected}"
    );
}

/// A fixture machine: cgroup, proc, sys, Docker and containerd roots.
struct Machine {
    _dir: tempfile::TempDir,
    options: ContainerOptions,
    root: PathBuf,
}

fn machine() -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let options = ContainerOptions {
        cgroup_root: root.join("cgroup"),
        proc_root: root.join("proc"),
        sys_root: root.join("sys"),
        docker_root: root.join("docker"),
        containerd_state: root.join("containerd"),
        docker_only: false,
        store_container_labels: true,
    };
    let proc = &options.proc_root;
    write(&proc.join("stat"), "cpu 1 2 3\nbtime 1700000000\n");
    write(
        &proc.join("net/dev"),
        "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n\
             lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n\
           eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0\n\
         veth12: 9 9 9 9 0 0 0 0 9 9 9 9 0 0 0 0\n\
        docker0: 9 9 9 9 0 0 0 0 9 9 9 9 0 0 0 0\n",
    );
    // The host's one block-device filesystem is the fixture directory
    // itself, so statfs has something real to answer.
    write(
        &proc.join("1/mountinfo"),
        &format!(
            "22 1 8:1 / {} rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
             23 22 0:21 / /proc rw - proc proc rw\n\
             24 22 0:22 / /tmp rw - tmpfs tmpfs rw\n",
            root.display()
        ),
    );
    write(
        &proc.join("diskstats"),
        "   8       0 sda 900 9 9000 90 800 8 8000 80 0 170 170 0 0 0 0\n\
            8       1 sda1 100 2 3000 40 50 6 7000 80 1 9000 10000 0 0 0 0\n",
    );
    write(
        &options.sys_root.join("dev/block/8:0/uevent"),
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\n",
    );
    Machine {
        _dir: dir,
        options,
        root,
    }
}

/// Docker's state for `DOCKER_ID`, its process 4242 in a network namespace
/// of its own.
fn docker_container(m: &Machine) {
    write(
        &m.options
            .docker_root
            .join("containers")
            .join(DOCKER_ID)
            .join("config.v2.json"),
        r#"{"Name":"/trainer","Created":"2024-03-01T10:00:00.25Z",
            "Config":{"Image":"registry.example/trainer:7","Labels":{"com.example.team":"ml"}},
            "State":{"Pid":4242},"HostConfig":{"NetworkMode":"bridge"}}"#,
    );
    write(
        &m.options.proc_root.join("4242/net/dev"),
        "Inter-|\n face |\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n  eth0: 1234 12 0 1 0 0 0 0 5678 56 2 0 0 0 0 0\n",
    );
}

/// containerd's state for `CRI_ID`, a Kubernetes container.
fn containerd_container(m: &Machine) {
    let bundle = m
        .options
        .containerd_state
        .join("io.containerd.runtime.v2.task/k8s.io")
        .join(CRI_ID);
    write(
        &bundle.join("config.json"),
        r#"{"annotations":{"io.kubernetes.cri.container-name":"server",
            "io.kubernetes.cri.sandbox-name":"infer-0","io.kubernetes.cri.sandbox-namespace":"ml",
            "io.kubernetes.cri.sandbox-uid":"u-1","io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.image-name":"registry.example/infer:2"}}"#,
    );
    write(&bundle.join("init.pid"), "5151\n");
}

fn gpu(processes: Vec<GpuProcess>) -> GpuReading {
    GpuReading {
        index: 0,
        uuid: "GPU-1111".into(),
        name: "NVIDIA A100".into(),
        pci_bus_id: "00000000:65:00.0".into(),
        minor_number: Some(0),
        gpu_utilization_percent: Some(90),
        memory_utilization_percent: None,
        encoder_utilization_percent: None,
        decoder_utilization_percent: None,
        pcie_replays: None,
        memory_used_bytes: Some(6 << 30),
        memory_free_bytes: Some(34 << 30),
        memory_total_bytes: Some(40 << 30),
        fan_speed_percent: None,
        temperature_celsius: None,
        power_milliwatts: None,
        energy_millijoules: None,
        sm_clock_mhz: None,
        memory_clock_mhz: None,
        last_xid: None,
        ecc: EccCounts::default(),
        throttle_reasons: None,
        processes,
    }
}

fn process(pid: u32, bytes: u64, util: Option<u32>) -> GpuProcess {
    GpuProcess {
        pid,
        name: "python3".into(),
        used_memory_bytes: Some(bytes),
        sm_utilization_percent: util,
    }
}

/// The fake NVML layer: a GPU source that gives the test's readings, as
/// the GPU exporter hands them to the container exporter on the server.
struct FakeGpus(Vec<GpuReading>);

impl GpuSource for FakeGpus {
    fn read(&self) -> Result<Vec<GpuReading>, String> {
        Ok(self.0.clone())
    }
}

fn collect(options: &ContainerOptions, gpus: Option<&[GpuReading]>) -> (String, Samples) {
    let mut out = String::new();
    ContainerExporter::new(options.clone()).collect(gpus, &mut out);
    let samples = parse(&out);
    (out, samples)
}

#[test]
fn cgroup_v2_tree_with_docker_containerd_network_fs_and_gpus() {
    let m = machine();
    let cg = m.options.cgroup_root.clone();
    write(&cg.join("cgroup.controllers"), "cpu io memory pids\n");
    write(
        &cg.join("cpu.stat"),
        "usage_usec 900000000\nuser_usec 600000000\nsystem_usec 300000000\n",
    );

    // A systemd service: unlimited CPU, a memory limit, disk I/O.
    let ssh = cg.join("system.slice/ssh.service");
    write(
        &ssh.join("cpu.stat"),
        "usage_usec 2500000\nuser_usec 1500000\nsystem_usec 1000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    );
    write(&ssh.join("cpu.max"), "max 100000\n");
    write(&ssh.join("cpu.weight"), "100\n");
    write(&ssh.join("memory.current"), "10485760\n");
    write(&ssh.join("memory.max"), "536870912\n");
    write(&ssh.join("memory.swap.max"), "max\n");
    write(&ssh.join("memory.min"), "0\n");
    write(&ssh.join("memory.peak"), "20971520\n");
    write(&ssh.join("memory.swap.current"), "4096\n");
    write(
        &ssh.join("memory.stat"),
        "anon 4194304\nfile 6291456\nkernel 524288\nfile_mapped 1048576\ninactive_file 2097152\npgfault 1000\npgmajfault 10\n",
    );
    write(
        &ssh.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    );
    write(
        &ssh.join("io.stat"),
        "8:0 rbytes=40960 wbytes=81920 rios=10 wios=20 dbytes=0 dios=0\n",
    );

    // A Docker container with a CPU quota that throttled.
    let docker = cg.join(format!("system.slice/docker-{DOCKER_ID}.scope"));
    write(
        &docker.join("cpu.stat"),
        "usage_usec 7000000\nuser_usec 5000000\nsystem_usec 2000000\nnr_periods 100\nnr_throttled 25\nthrottled_usec 1500000\n",
    );
    write(&docker.join("cpu.max"), "50000 100000\n");
    write(&docker.join("cpu.weight"), "79\n");
    write(&docker.join("memory.current"), "104857600\n");
    write(&docker.join("memory.max"), "268435456\n");
    write(
        &docker.join("memory.stat"),
        "anon 83886080\nfile 20971520\ninactive_file 10485760\npgfault 5\npgmajfault 1\n",
    );
    write(&docker.join("memory.events"), "max 0\noom_kill 0\n");
    docker_container(&m);

    // A Kubernetes container under containerd.
    let cri = cg.join(format!("kubepods.slice/cri-containerd-{CRI_ID}.scope"));
    write(
        &cri.join("cpu.stat"),
        "usage_usec 1000000\nuser_usec 600000\nsystem_usec 400000\n",
    );
    write(&cri.join("memory.current"), "1048576\n");
    containerd_container(&m);

    // GPU processes: two in the Docker container, one in ssh.service, one
    // whose cgroup cannot be read.
    for (pid, path) in [
        (4242, format!("/system.slice/docker-{DOCKER_ID}.scope")),
        (4343, format!("/system.slice/docker-{DOCKER_ID}.scope")),
        (6000, "/system.slice/ssh.service".to_string()),
    ] {
        write(
            &m.options.proc_root.join(format!("{pid}/cgroup")),
            &format!("0::{path}\n"),
        );
    }
    let nvml = GpuExporter::with_source(Box::new(FakeGpus(vec![gpu(vec![
        process(4242, 2 << 30, Some(30)),
        process(4343, 1 << 30, Some(80)),
        process(6000, 512 << 20, None),
        process(9999, 1 << 30, Some(5)),
    ])])));
    let gpus = nvml.read();

    let (text, s) = collect(&m.options, gpus.as_deref());
    let ssh_id = [("id", "/system.slice/ssh.service")];
    let docker_path = format!("/system.slice/docker-{DOCKER_ID}.scope");
    let docker_id = [("id", docker_path.as_str())];
    let cri_path = format!("/kubepods.slice/cri-containerd-{CRI_ID}.scope");

    // Every cgroup of the tree, including the intermediate slices.
    let ids: BTreeSet<&str> = s["container_last_seen"]
        .iter()
        .map(|(l, _)| l["id"].as_str())
        .collect();
    let want: BTreeSet<&str> = [
        "/",
        "/kubepods.slice",
        cri_path.as_str(),
        "/system.slice",
        docker_path.as_str(),
        "/system.slice/ssh.service",
    ]
    .into();
    assert_eq!(ids, want);

    // The label union: every series has id, image, name and the Docker
    // label (sanitised), empty where a cgroup lacks them; containerd's
    // Kubernetes labels come from the bundle's CRI annotations.
    let label_names: BTreeSet<&str> = s["container_memory_usage_bytes"][0]
        .0
        .keys()
        .map(String::as_str)
        .collect();
    let want_labels: BTreeSet<&str> = [
        "id",
        "image",
        "name",
        "container_label_com_example_team",
        "container_label_io_cri_containerd_kind",
        "container_label_io_kubernetes_container_name",
        "container_label_io_kubernetes_pod_name",
        "container_label_io_kubernetes_pod_namespace",
        "container_label_io_kubernetes_pod_uid",
    ]
    .into();
    assert_eq!(label_names, want_labels);
    for samples in s.values() {
        for (labels, _) in samples {
            for name in &want_labels {
                assert!(
                    labels.contains_key(*name) || !labels.contains_key("id"),
                    "{labels:?}"
                );
            }
        }
    }
    expect(
        &s,
        "container_memory_usage_bytes",
        &[
            ("id", &docker_path),
            ("name", "trainer"),
            ("image", "registry.example/trainer:7"),
            ("container_label_com_example_team", "ml"),
        ],
        104_857_600.0,
    );
    expect(
        &s,
        "container_memory_usage_bytes",
        &[
            ("id", &cri_path),
            ("name", CRI_ID),
            ("image", "registry.example/infer:2"),
            ("container_label_io_kubernetes_pod_namespace", "ml"),
            ("container_label_io_kubernetes_container_name", "server"),
        ],
        1_048_576.0,
    );
    expect(
        &s,
        "container_memory_usage_bytes",
        &[
            ("id", "/system.slice/ssh.service"),
            ("name", ""),
            ("image", ""),
        ],
        10_485_760.0,
    );

    // CPU in seconds; v2 has no per-CPU figures, so cpu="total".
    expect(
        &s,
        "container_cpu_usage_seconds_total",
        &[ssh_id[0], ("cpu", "total")],
        2.5,
    );
    expect(&s, "container_cpu_user_seconds_total", &ssh_id, 1.5);
    expect(&s, "container_cpu_system_seconds_total", &ssh_id, 1.0);
    expect(
        &s,
        "container_cpu_usage_seconds_total",
        &[("id", "/"), ("cpu", "total")],
        900.0,
    );
    // Throttling only where a quota is set.
    expect(&s, "container_cpu_cfs_periods_total", &docker_id, 100.0);
    expect(
        &s,
        "container_cpu_cfs_throttled_periods_total",
        &docker_id,
        25.0,
    );
    expect(
        &s,
        "container_cpu_cfs_throttled_seconds_total",
        &docker_id,
        1.5,
    );
    assert_eq!(value(&s, "container_cpu_cfs_periods_total", &ssh_id), None);
    // The CPU spec: period and quota in microseconds, the weight as
    // cAdvisor's shares (weight 100 -> 2 + 99*262142/9999 = 2597).
    expect(&s, "container_spec_cpu_period", &docker_id, 100_000.0);
    expect(&s, "container_spec_cpu_quota", &docker_id, 50_000.0);
    assert_eq!(value(&s, "container_spec_cpu_quota", &ssh_id), None);
    expect(&s, "container_spec_cpu_shares", &ssh_id, 2597.0);
    expect(&s, "container_spec_cpu_shares", &docker_id, 2046.0);

    // Memory: working set is usage less inactive file pages.
    expect(
        &s,
        "container_memory_working_set_bytes",
        &ssh_id,
        8_388_608.0,
    );
    expect(&s, "container_memory_rss", &ssh_id, 4_194_304.0);
    expect(&s, "container_memory_cache", &ssh_id, 6_291_456.0);
    expect(&s, "container_memory_kernel_usage", &ssh_id, 524_288.0);
    expect(&s, "container_memory_mapped_file", &ssh_id, 1_048_576.0);
    expect(&s, "container_memory_swap", &ssh_id, 4096.0);
    expect(
        &s,
        "container_memory_max_usage_bytes",
        &ssh_id,
        20_971_520.0,
    );
    expect(&s, "container_memory_failcnt", &ssh_id, 3.0);
    expect(&s, "container_oom_events_total", &ssh_id, 1.0);
    expect(
        &s,
        "container_memory_failures_total",
        &[
            ssh_id[0],
            ("failure_type", "pgmajfault"),
            ("scope", "hierarchy"),
        ],
        10.0,
    );
    expect(
        &s,
        "container_memory_failures_total",
        &[
            ssh_id[0],
            ("failure_type", "pgfault"),
            ("scope", "container"),
        ],
        1000.0,
    );
    expect(
        &s,
        "container_spec_memory_limit_bytes",
        &ssh_id,
        536_870_912.0,
    );
    // "max" is unlimited, reported as 0 as cAdvisor does.
    expect(&s, "container_spec_memory_swap_limit_bytes", &ssh_id, 0.0);
    expect(
        &s,
        "container_spec_memory_reservation_limit_bytes",
        &ssh_id,
        0.0,
    );

    // Block I/O per device, the device named from sysfs.
    expect(
        &s,
        "container_fs_reads_bytes_total",
        &[ssh_id[0], ("device", "/dev/sda")],
        40960.0,
    );
    expect(
        &s,
        "container_fs_writes_bytes_total",
        &[ssh_id[0], ("device", "/dev/sda")],
        81920.0,
    );
    expect(
        &s,
        "container_fs_reads_total",
        &[ssh_id[0], ("device", "/dev/sda")],
        10.0,
    );
    expect(
        &s,
        "container_fs_writes_total",
        &[ssh_id[0], ("device", "/dev/sda")],
        20.0,
    );
    expect(
        &s,
        "container_blkio_device_usage_total",
        &[
            ssh_id[0],
            ("device", "/dev/sda"),
            ("major", "8"),
            ("minor", "0"),
            ("operation", "Write"),
        ],
        81920.0,
    );

    // The root cgroup carries the host's filesystems and disk counters.
    let root_fs = [("id", "/"), ("device", "/dev/sda1")];
    assert!(value(&s, "container_fs_limit_bytes", &root_fs).unwrap() > 0.0);
    assert!(value(&s, "container_fs_inodes_total", &root_fs).unwrap() > 0.0);
    expect(&s, "container_fs_reads_total", &root_fs, 100.0);
    expect(&s, "container_fs_reads_merged_total", &root_fs, 2.0);
    expect(&s, "container_fs_sector_reads_total", &root_fs, 3000.0);
    expect(&s, "container_fs_read_seconds_total", &root_fs, 0.04);
    expect(&s, "container_fs_writes_total", &root_fs, 50.0);
    expect(&s, "container_fs_sector_writes_total", &root_fs, 7000.0);
    expect(&s, "container_fs_io_current", &root_fs, 1.0);
    expect(&s, "container_fs_io_time_seconds_total", &root_fs, 9.0);
    expect(
        &s,
        "container_fs_io_time_weighted_seconds_total",
        &root_fs,
        10.0,
    );
    assert_eq!(
        value(&s, "container_fs_usage_bytes", &[("device", "/proc")]),
        None
    );

    // Network: the host's interfaces for the root (no loopback, veth or
    // bridges), the container's own namespace for the Docker container.
    let root_ifaces: Vec<&str> = s["container_network_receive_bytes_total"]
        .iter()
        .filter(|(l, _)| l["id"] == "/")
        .map(|(l, _)| l["interface"].as_str())
        .collect();
    assert_eq!(root_ifaces, ["eth0"]);
    expect(
        &s,
        "container_network_receive_bytes_total",
        &[("id", "/"), ("interface", "eth0")],
        5000.0,
    );
    expect(
        &s,
        "container_network_transmit_packets_dropped_total",
        &[("id", "/"), ("interface", "eth0")],
        4.0,
    );
    expect(
        &s,
        "container_network_receive_bytes_total",
        &[docker_id[0], ("interface", "eth0")],
        1234.0,
    );
    expect(
        &s,
        "container_network_transmit_bytes_total",
        &[docker_id[0], ("interface", "eth0")],
        5678.0,
    );
    expect(
        &s,
        "container_network_transmit_errors_total",
        &[docker_id[0], ("interface", "eth0")],
        2.0,
    );
    expect(
        &s,
        "container_network_receive_packets_dropped_total",
        &[docker_id[0], ("interface", "eth0")],
        1.0,
    );
    // The Kubernetes container shares its sandbox's namespace.
    assert_eq!(
        value(
            &s,
            "container_network_receive_bytes_total",
            &[("id", cri_path.as_str())]
        ),
        None
    );

    // GPU use per container: the processes' memory summed, SM use summed
    // and capped at 100 %.
    let acc = [
        docker_id[0],
        ("make", "nvidia"),
        ("model", "NVIDIA A100"),
        ("acc_id", "GPU-1111"),
    ];
    expect(
        &s,
        "container_accelerator_memory_used_bytes",
        &acc,
        (3u64 << 30) as f64,
    );
    expect(
        &s,
        "container_accelerator_memory_total_bytes",
        &acc,
        (40u64 << 30) as f64,
    );
    expect(&s, "container_accelerator_duty_cycle", &acc, 100.0);
    expect(
        &s,
        "container_accelerator_memory_used_bytes",
        &[ssh_id[0], ("acc_id", "GPU-1111")],
        (512u64 << 20) as f64,
    );
    assert_eq!(
        value(&s, "container_accelerator_duty_cycle", &ssh_id),
        None,
        "no utilisation sample"
    );
    assert_eq!(s["container_accelerator_memory_used_bytes"].len(), 2);

    // Start times: Docker's creation time, else the directory's time
    // (never before boot).
    expect(
        &s,
        "container_start_time_seconds",
        &docker_id,
        1_709_287_200.0,
    );
    assert!(value(&s, "container_start_time_seconds", &ssh_id).unwrap() >= 1_700_000_000.0);
    expect(&s, "container_scrape_error", &[], 0.0);
    assert!(text.contains("# TYPE container_cpu_usage_seconds_total counter\n"));
    assert!(text.contains("# TYPE container_memory_usage_bytes gauge\n"));

    // The Containers dashboard reads only names written here.
    for name in dashboards::metric_names("containers", &["container_"]) {
        assert!(
            s.contains_key(&name),
            "the dashboard reads {name}, not written"
        );
    }

    // docker_only keeps the runtimes' containers and the root.
    let only = ContainerOptions {
        docker_only: true,
        ..m.options.clone()
    };
    let (_, s) = collect(&only, None);
    let ids: BTreeSet<&str> = s["container_last_seen"]
        .iter()
        .map(|(l, _)| l["id"].as_str())
        .collect();
    assert_eq!(ids, ["/", cri_path.as_str(), docker_path.as_str()].into());
    // Without labels stored, only id, image and name remain.
    let plain = ContainerOptions {
        store_container_labels: false,
        ..m.options.clone()
    };
    let (_, s) = collect(&plain, None);
    let names: BTreeSet<&str> = s["container_last_seen"][0]
        .0
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["id", "image", "name"].into());
    drop(m.root);
}

#[test]
fn cgroup_v1_trees() {
    let m = machine();
    let cg = m.options.cgroup_root.clone();
    let path = format!("docker/{DOCKER_ID}");
    for controller in ["cpu", "cpuacct", "memory", "blkio"] {
        std::fs::create_dir_all(cg.join(controller)).unwrap();
    }
    let cpu = cg.join("cpu").join(&path);
    write(&cpu.join("cpu.shares"), "512\n");
    write(&cpu.join("cpu.cfs_period_us"), "100000\n");
    write(&cpu.join("cpu.cfs_quota_us"), "200000\n");
    write(
        &cpu.join("cpu.stat"),
        "nr_periods 40\nnr_throttled 4\nthrottled_time 2500000000\n",
    );
    let acct = cg.join("cpuacct").join(&path);
    write(&acct.join("cpuacct.usage"), "3000000000\n");
    write(
        &acct.join("cpuacct.usage_percpu"),
        "1000000000 0 2000000000\n",
    );
    let ticks = exporters_clock_ticks();
    write(
        &acct.join("cpuacct.stat"),
        &format!("user {}\nsystem {}\n", 2.0 * ticks, ticks),
    );
    // A cgroup only the memory hierarchy has: no CPU figures for it.
    let mem = cg.join("memory").join(&path);
    write(&mem.join("memory.usage_in_bytes"), "209715200\n");
    write(&mem.join("memory.max_usage_in_bytes"), "314572800\n");
    write(&mem.join("memory.limit_in_bytes"), "9223372036854771712\n");
    write(
        &mem.join("memory.memsw.limit_in_bytes"),
        "9223372036854771712\n",
    );
    write(&mem.join("memory.soft_limit_in_bytes"), "104857600\n");
    write(&mem.join("memory.failcnt"), "7\n");
    write(&mem.join("memory.kmem.usage_in_bytes"), "1048576\n");
    write(
        &mem.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(
        &mem.join("memory.stat"),
        "cache 1\nrss 2\npgfault 30\npgmajfault 3\ntotal_cache 52428800\ntotal_rss 125829120\ntotal_mapped_file 4096\ntotal_swap 8192\ntotal_inactive_file 20971520\ntotal_pgfault 300\ntotal_pgmajfault 30\n",
    );
    let blkio = cg.join("blkio").join(&path);
    write(&blkio.join("blkio.io_service_bytes_recursive"), "Total 0\n");
    write(
        &blkio.join("blkio.throttle.io_service_bytes"),
        "8:0 Read 4096\n8:0 Write 12288\n8:0 Sync 16384\n8:0 Total 16384\nTotal 16384\n",
    );
    write(
        &blkio.join("blkio.throttle.io_serviced"),
        "8:0 Read 1\n8:0 Write 3\n8:0 Total 4\nTotal 4\n",
    );
    std::fs::create_dir_all(cg.join("memory/only-memory")).unwrap();
    write(
        &cg.join("memory/only-memory/memory.usage_in_bytes"),
        "4096\n",
    );
    docker_container(&m);

    let (_, s) = collect(&m.options, None);
    let id = format!("/{path}");
    let c = [("id", id.as_str())];
    // Per CPU, cAdvisor's cpuNN names, CPUs that never ran it left out.
    expect(
        &s,
        "container_cpu_usage_seconds_total",
        &[c[0], ("cpu", "cpu00")],
        1.0,
    );
    expect(
        &s,
        "container_cpu_usage_seconds_total",
        &[c[0], ("cpu", "cpu02")],
        2.0,
    );
    assert_eq!(
        value(
            &s,
            "container_cpu_usage_seconds_total",
            &[c[0], ("cpu", "cpu01")]
        ),
        None
    );
    expect(&s, "container_cpu_user_seconds_total", &c, 2.0);
    expect(&s, "container_cpu_system_seconds_total", &c, 1.0);
    expect(&s, "container_cpu_cfs_throttled_seconds_total", &c, 2.5);
    expect(&s, "container_cpu_cfs_throttled_periods_total", &c, 4.0);
    expect(&s, "container_spec_cpu_shares", &c, 512.0);
    expect(&s, "container_spec_cpu_quota", &c, 200_000.0);
    // Memory from the hierarchy totals; the huge v1 "unlimited" is 0.
    expect(&s, "container_memory_cache", &c, 52_428_800.0);
    expect(&s, "container_memory_rss", &c, 125_829_120.0);
    expect(&s, "container_memory_swap", &c, 8192.0);
    expect(&s, "container_memory_working_set_bytes", &c, 188_743_680.0);
    expect(&s, "container_memory_max_usage_bytes", &c, 314_572_800.0);
    expect(&s, "container_memory_failcnt", &c, 7.0);
    expect(&s, "container_memory_kernel_usage", &c, 1_048_576.0);
    expect(&s, "container_oom_events_total", &c, 2.0);
    expect(
        &s,
        "container_memory_failures_total",
        &[c[0], ("failure_type", "pgfault"), ("scope", "container")],
        30.0,
    );
    expect(
        &s,
        "container_memory_failures_total",
        &[c[0], ("failure_type", "pgfault"), ("scope", "hierarchy")],
        300.0,
    );
    expect(&s, "container_spec_memory_limit_bytes", &c, 0.0);
    expect(
        &s,
        "container_spec_memory_reservation_limit_bytes",
        &c,
        104_857_600.0,
    );
    // blkio: the throttle files when the proportional ones are empty.
    expect(
        &s,
        "container_fs_reads_bytes_total",
        &[c[0], ("device", "/dev/sda")],
        4096.0,
    );
    expect(
        &s,
        "container_fs_writes_total",
        &[c[0], ("device", "/dev/sda")],
        3.0,
    );
    expect(
        &s,
        "container_blkio_device_usage_total",
        &[c[0], ("operation", "Sync")],
        16384.0,
    );
    expect(
        &s,
        "container_memory_usage_bytes",
        &[("id", "/only-memory")],
        4096.0,
    );
    assert_eq!(
        value(
            &s,
            "container_cpu_user_seconds_total",
            &[("id", "/only-memory")]
        ),
        None
    );
    expect(
        &s,
        "container_memory_usage_bytes",
        &[c[0], ("name", "trainer")],
        209_715_200.0,
    );
}

/// The clock tick the exporter divides `cpuacct.stat` by, as it reads it.
fn exporters_clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[test]
fn no_cgroup_tree_is_a_scrape_error() {
    let m = machine();
    let (text, s) = collect(&m.options, None);
    expect(&s, "container_scrape_error", &[], 1.0);
    assert_eq!(s.len(), 1, "{text}");
}

/// This process's cgroup, as `/proc/self/cgroup` names it for the layout
/// the machine has.
fn own_cgroup(v2: bool) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = if v2 {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "memory")
        };
        wanted.then(|| path.to_string())
    })
}

/// Every directory below `root`, as cgroup paths.
fn dirs(root: &Path, relative: &str, out: &mut BTreeSet<String>) {
    out.insert(if relative.is_empty() {
        "/".into()
    } else {
        relative.into()
    });
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            dirs(&entry.path(), &format!("{relative}/{name}"), out);
        }
    }
}

#[test]
fn the_machines_own_cgroups() {
    let options = ContainerOptions::linux_defaults();
    let root = &options.cgroup_root;
    let v2 = root.join("cgroup.controllers").is_file();
    let memory_root = if v2 {
        root.clone()
    } else {
        root.join("memory")
    };
    if !memory_root.is_dir() {
        if std::env::var("OSPREY_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!(
                "no cgroup memory hierarchy at {} and OSPREY_REQUIRE_EXTERNAL=1",
                memory_root.display()
            );
        }
        eprintln!(
            "skipping: no cgroup memory hierarchy at {}",
            memory_root.display()
        );
        return;
    }
    let (text, s) = collect(&options, None);
    expect(&s, "container_scrape_error", &[], 0.0);
    eprintln!(
        "real cgroups ({}): {} families, {} bytes",
        if v2 { "v2" } else { "v1" },
        s.len(),
        text.len()
    );

    // Every directory of the memory hierarchy is reported.
    let mut want = BTreeSet::new();
    dirs(&memory_root, "", &mut want);
    let with_memory: BTreeSet<String> = s["container_memory_usage_bytes"]
        .iter()
        .map(|(l, _)| l["id"].clone())
        .collect();
    let missing: Vec<&String> = want
        .iter()
        .filter(|d| {
            let dir = if d.as_str() == "/" {
                memory_root.clone()
            } else {
                memory_root.join(d.trim_start_matches('/'))
            };
            let file = if v2 {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            };
            dir.join(file).is_file() && !with_memory.contains(*d)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "cgroups with memory files but no series: {missing:?}"
    );

    // This process's cgroup: its limit is the file's, and its usage is
    // within what the file says before and after the scrape.
    let Some(own) = own_cgroup(v2) else {
        panic!("no memory cgroup in /proc/self/cgroup");
    };
    let dir = if own == "/" {
        memory_root.clone()
    } else {
        memory_root.join(own.trim_start_matches('/'))
    };
    let (usage_file, limit_file) = if v2 {
        ("memory.current", "memory.max")
    } else {
        ("memory.usage_in_bytes", "memory.limit_in_bytes")
    };
    if let Ok(limit) = std::fs::read_to_string(dir.join(limit_file)) {
        let limit = match limit.trim() {
            "max" => 0.0,
            n => {
                let n: f64 = n.parse().unwrap();
                if n > (1u64 << 62) as f64 { 0.0 } else { n }
            }
        };
        expect(
            &s,
            "container_spec_memory_limit_bytes",
            &[("id", &own)],
            limit,
        );
    }
    let read_usage = || -> f64 {
        std::fs::read_to_string(dir.join(usage_file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = read_usage();
    let (_, s) = collect(&options, None);
    let after = read_usage();
    let got = value(&s, "container_memory_usage_bytes", &[("id", &own)]).unwrap();
    let (low, high) = (before.min(after), before.max(after));
    // Allocations of the scrape itself move the figure a little.
    let slack = 64.0 * 1024.0 * 1024.0;
    assert!(
        got >= low - slack && got <= high + slack,
        "usage {got} not near {before}..{after}"
    );

    // CPU time of the root only grows between scrapes.
    let cpu = |s: &Samples| -> f64 {
        s.get("container_cpu_usage_seconds_total")
            .map(|v| {
                v.iter()
                    .filter(|(l, _)| l["id"] == "/")
                    .map(|(_, v)| v)
                    .sum()
            })
            .unwrap_or(0.0)
    };
    let (_, again) = collect(&options, None);
    assert!(cpu(&again) >= cpu(&s));
}
