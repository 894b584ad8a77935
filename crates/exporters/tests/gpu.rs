//! The GPU exporter through a fake NVML source: every DCGM family with
//! its labels and units, the nvidia_gpu_prometheus_exporter names beside
//! them and the switch for each naming, unsupported readings left out,
//! per-process memory, and the no-GPU and failing-driver paths.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Mutex;

use exporters::gpu::{EccCounts, GpuExporter, GpuNames, GpuProcess, GpuReading, GpuSource};

/// A GPU whose readings the test sets; `None` makes `read` fail.
struct FakeGpus(Mutex<Option<Vec<GpuReading>>>);

impl GpuSource for FakeGpus {
    fn read(&self) -> Result<Vec<GpuReading>, String> {
        self.0
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| "NVML: GPU is lost".to_string())
    }
}

fn full_reading() -> GpuReading {
    GpuReading {
        index: 0,
        uuid: "GPU-1111".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        pci_bus_id: "00000000:65:00.0".into(),
        minor_number: Some(3),
        gpu_utilization_percent: Some(87),
        memory_utilization_percent: Some(40),
        encoder_utilization_percent: Some(5),
        decoder_utilization_percent: Some(6),
        pcie_replays: Some(7),
        memory_used_bytes: Some(10 * 1024 * 1024 * 1024 + 5),
        memory_free_bytes: Some(70 * 1024 * 1024 * 1024),
        memory_total_bytes: Some(80 * 1024 * 1024 * 1024),
        fan_speed_percent: Some(41),
        temperature_celsius: Some(64),
        power_milliwatts: Some(312_500),
        energy_millijoules: Some(123_456_789),
        sm_clock_mhz: Some(1980),
        memory_clock_mhz: Some(2619),
        last_xid: Some(79),
        ecc: EccCounts {
            single_bit_volatile: Some(1),
            double_bit_volatile: Some(2),
            single_bit_aggregate: Some(3),
            double_bit_aggregate: Some(4),
        },
        // sw_power_cap | hw_thermal_slowdown
        throttle_reasons: Some(0x4 | 0x40),
        processes: vec![
            GpuProcess {
                pid: 4242,
                name: "python3".into(),
                used_memory_bytes: Some(8 * 1024 * 1024 * 1024),
                sm_utilization_percent: Some(60),
            },
            GpuProcess {
                pid: 4343,
                name: "".into(),
                used_memory_bytes: None,
                sm_utilization_percent: None,
            },
        ],
    }
}

/// A second GPU that supports nothing optional.
fn bare_reading() -> GpuReading {
    GpuReading {
        index: 1,
        uuid: "GPU-2222".into(),
        name: "Tesla T4".into(),
        pci_bus_id: "00000000:66:00.0".into(),
        minor_number: None,
        gpu_utilization_percent: None,
        memory_utilization_percent: None,
        encoder_utilization_percent: None,
        decoder_utilization_percent: None,
        pcie_replays: None,
        memory_used_bytes: None,
        memory_free_bytes: None,
        memory_total_bytes: None,
        fan_speed_percent: None,
        temperature_celsius: None,
        power_milliwatts: None,
        energy_millijoules: None,
        sm_clock_mhz: None,
        memory_clock_mhz: None,
        last_xid: None,
        ecc: EccCounts::default(),
        throttle_reasons: None,
        processes: Vec::new(),
    }
}

const GPU0: &str = "gpu=\"0\",UUID=\"GPU-1111\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",pci_bus_id=\"00000000:65:00.0\"";

#[test]
fn every_metric_with_dcgm_names_labels_and_units() {
    let exporter = GpuExporter::with_source(Box::new(FakeGpus(Mutex::new(Some(vec![
        full_reading(),
        bare_reading(),
    ])))));
    let mut out = String::new();
    exporter.collect(GpuNames::BOTH, &mut out);
    let expected = [
        ("DCGM_FI_DEV_SM_CLOCK", "gauge", "1980"),
        ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "2619"),
        ("DCGM_FI_DEV_GPU_TEMP", "gauge", "64"),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "312.5"),
        (
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            "counter",
            "123456789",
        ),
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "87"),
        ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "40"),
        ("DCGM_FI_DEV_ENC_UTIL", "gauge", "5"),
        ("DCGM_FI_DEV_DEC_UTIL", "gauge", "6"),
        ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "7"),
        ("DCGM_FI_DEV_FB_FREE", "gauge", "71680"),
        ("DCGM_FI_DEV_FB_USED", "gauge", "10240"),
        ("DCGM_FI_DEV_XID_ERRORS", "gauge", "79"),
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "1"),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "2"),
        ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "counter", "3"),
        ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter", "4"),
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "gauge", "68"),
    ];
    for (name, kind, value) in expected {
        assert!(
            out.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} type in\n{out}"
        );
        let line = format!("{name}{{{GPU0}}} {value}\n");
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
        // The bare GPU supports none of these, so it has no series.
        assert!(
            !out.contains(&format!("{name}{{gpu=\"1\"")),
            "{name} for GPU 1"
        );
    }
    assert!(out.starts_with("# HELP osprey_gpu_available"));
    assert!(out.contains("\nosprey_gpu_available 1\n"));
    for (reason, active) in [
        ("gpu_idle", 0),
        ("sw_power_cap", 1),
        ("hw_slowdown", 0),
        ("hw_thermal_slowdown", 1),
    ] {
        let line =
            format!("osprey_gpu_throttle_reason_active{{{GPU0},reason=\"{reason}\"}} {active}\n");
        assert!(out.contains(&line), "missing {line:?}");
    }
    assert!(out.contains(&format!(
        "osprey_gpu_process_memory_used_bytes{{{GPU0},pid=\"4242\",process_name=\"python3\"}} 8589934592\n"
    )));
    // A process whose memory the driver does not report is left out.
    assert!(!out.contains("pid=\"4343\""));
    // The output is valid text exposition.
    for entry in model::exposition::Parser::new(out.as_bytes(), model::exposition::Format::Text) {
        entry.unwrap();
    }
}

const LEGACY0: &str = "minor_number=\"3\",uuid=\"GPU-1111\",name=\"NVIDIA H100 80GB HBM3\"";

#[test]
fn nvidia_gpu_exporter_names_beside_dcgm() {
    let exporter = GpuExporter::with_source(Box::new(FakeGpus(Mutex::new(Some(vec![
        full_reading(),
        bare_reading(),
    ])))));
    let mut out = String::new();
    exporter.collect(GpuNames::BOTH, &mut out);
    // The names, labels and units of nvidia_gpu_prometheus_exporter: bytes,
    // percent, milliwatts, degrees.
    for (name, value) in [
        ("nvidia_gpu_memory_used_bytes", "10737418245"),
        ("nvidia_gpu_memory_total_bytes", "85899345920"),
        ("nvidia_gpu_duty_cycle", "87"),
        ("nvidia_gpu_power_usage_milliwatts", "312500"),
        ("nvidia_gpu_temperature_celsius", "64"),
        ("nvidia_gpu_fanspeed_percent", "41"),
    ] {
        assert!(out.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        let line = format!("{name}{{{LEGACY0}}} {value}\n");
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    // Both GPUs are counted; the one without a minor number has no
    // per-GPU series, as in that exporter.
    assert!(out.contains("\nnvidia_gpu_num_devices 2\n"));
    assert!(!out.contains("uuid=\"GPU-2222\""));
    assert!(out.contains("DCGM_FI_DEV_GPU_UTIL{"));

    // Each naming has its own switch; osprey's families stay.
    let mut only_legacy = String::new();
    exporter.collect(
        GpuNames {
            dcgm: false,
            nvidia_gpu_exporter: true,
        },
        &mut only_legacy,
    );
    assert!(!only_legacy.contains("DCGM_"));
    assert!(only_legacy.contains("nvidia_gpu_duty_cycle{"));
    assert!(only_legacy.contains("osprey_gpu_process_memory_used_bytes{"));
    let mut only_dcgm = String::new();
    exporter.collect(
        GpuNames {
            dcgm: true,
            nvidia_gpu_exporter: false,
        },
        &mut only_dcgm,
    );
    assert!(!only_dcgm.contains("nvidia_gpu_"));
    assert!(only_dcgm.contains("DCGM_FI_DEV_GPU_UTIL{"));
}

#[test]
fn no_gpu_is_one_gauge_at_zero() {
    let mut out = String::new();
    GpuExporter::without_gpu().collect(GpuNames::BOTH, &mut out);
    let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(samples, ["osprey_gpu_available 0"]);
}

#[test]
fn a_failing_driver_reports_unavailable_and_recovers() {
    let source = std::sync::Arc::new(FakeGpus(Mutex::new(None)));
    struct Shared(std::sync::Arc<FakeGpus>);
    impl GpuSource for Shared {
        fn read(&self) -> Result<Vec<GpuReading>, String> {
            self.0.read()
        }
    }
    let exporter = GpuExporter::with_source(Box::new(Shared(source.clone())));
    for _ in 0..3 {
        let mut out = String::new();
        exporter.collect(GpuNames::BOTH, &mut out);
        assert!(out.contains("\nosprey_gpu_available 0\n"));
        assert!(!out.contains("DCGM_"));
    }
    *source.0.lock().unwrap() = Some(vec![full_reading()]);
    let mut out = String::new();
    exporter.collect(GpuNames::BOTH, &mut out);
    assert!(out.contains("\nosprey_gpu_available 1\n"));
    assert!(out.contains("DCGM_FI_DEV_GPU_UTIL{"));
}

/// On a host with an NVIDIA driver this reads the real GPUs; elsewhere it
/// checks that opening NVML fails into the no-GPU exporter.
#[test]
fn real_nvml_or_clean_absence() {
    let mut out = String::new();
    GpuExporter::open_nvml().collect(GpuNames::BOTH, &mut out);
    if out.contains("\nosprey_gpu_available 1\n") {
        assert!(out.contains("DCGM_FI_DEV_FB_USED{"), "{out}");
    } else {
        assert!(out.contains("\nosprey_gpu_available 0\n"), "{out}");
        assert!(!out.contains("DCGM_"));
    }
}
