//! The GPU exporter: NVIDIA GPUs through NVML, with the DCGM exporter's
//! metric names (`DCGM_FI_DEV_GPU_UTIL`, `DCGM_FI_DEV_FB_USED`, ...) and
//! labels (`gpu`, `UUID`, `device`, `modelName`, `pci_bus_id`), plus GPU
//! memory per process, and beside them the older
//! nvidia_gpu_prometheus_exporter's names (`nvidia_gpu_duty_cycle`,
//! `nvidia_gpu_memory_used_bytes`, ...) that alert rules in the wild still
//! read. [`GpuNames`] switches each naming on or off.
//!
//! Every NVML call is behind [`GpuSource`]: [`NvmlSource`] is the real
//! one (libnvidia-ml loaded at run time by nvml-wrapper, so the binary runs
//! on hosts without a driver), and tests drive [`GpuExporter`] with a fake.
//! Without a GPU or a driver the exporter writes `osprey_gpu_available 0`
//! and logs one line when it starts; a source that fails later logs once
//! per change between working and failing, never per scrape.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::text::{Family, Kind, single};

/// One process using a GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuProcess {
    pub pid: u32,
    /// The process's command name (`/proc/<pid>/comm`); empty when unknown.
    pub name: String,
    /// GPU memory the process uses; `None` when the driver does not say.
    pub used_memory_bytes: Option<u64>,
    /// Percent of the GPU's SM (compute) time the process used over the
    /// driver's last sample period (`nvmlDeviceGetProcessUtilization`);
    /// `None` when the driver does not say.
    pub sm_utilization_percent: Option<u32>,
}

/// Error counts of the GPU's memory (ECC); a field is `None` when the
/// counter is not supported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EccCounts {
    /// Single-bit (corrected) errors since the driver loaded.
    pub single_bit_volatile: Option<u64>,
    /// Double-bit (uncorrected) errors since the driver loaded.
    pub double_bit_volatile: Option<u64>,
    /// Single-bit errors over the GPU's lifetime.
    pub single_bit_aggregate: Option<u64>,
    /// Double-bit errors over the GPU's lifetime.
    pub double_bit_aggregate: Option<u64>,
}

/// One reading of one GPU. Every measurement is optional: GPUs and drivers
/// differ in what they support, and what is missing is left out of the
/// output rather than written as zero.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuReading {
    /// NVML's index of the device (the `gpu` label).
    pub index: u32,
    pub uuid: String,
    /// The product name (`modelName`).
    pub name: String,
    /// The PCI bus id (`00000000:65:00.0`).
    pub pci_bus_id: String,
    /// The device's minor number (`/dev/nvidia<minor>`), the
    /// `minor_number` label of nvidia_gpu_prometheus_exporter.
    pub minor_number: Option<u32>,
    /// Percent of time a kernel ran, over the driver's sample period.
    pub gpu_utilization_percent: Option<u32>,
    /// Percent of time device memory was read or written.
    pub memory_utilization_percent: Option<u32>,
    /// Percent of time the video encoder was busy.
    pub encoder_utilization_percent: Option<u32>,
    /// Percent of time the video decoder was busy.
    pub decoder_utilization_percent: Option<u32>,
    /// PCIe replays (retransmissions) since the driver loaded.
    pub pcie_replays: Option<u32>,
    pub memory_used_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// The first fan's speed, percent of its maximum.
    pub fan_speed_percent: Option<u32>,
    pub temperature_celsius: Option<u32>,
    pub power_milliwatts: Option<u32>,
    /// Energy since the driver loaded, in millijoules.
    pub energy_millijoules: Option<u64>,
    pub sm_clock_mhz: Option<u32>,
    pub memory_clock_mhz: Option<u32>,
    /// The last XID error seen since the exporter started (0 when none).
    pub last_xid: Option<u64>,
    pub ecc: EccCounts,
    /// NVML's clock throttle reason bits (`nvmlClocksThrottleReason*`).
    pub throttle_reasons: Option<u64>,
    pub processes: Vec<GpuProcess>,
}

/// Where GPU readings come from: NVML, or a fake in tests.
pub trait GpuSource: Send + Sync {
    /// Reads every GPU. An error means the library or driver is unusable
    /// right now; a single unsupported measurement is a `None` instead.
    fn read(&self) -> Result<Vec<GpuReading>, String>;
}

/// NVML's throttle reason bits and the names osprey gives them (as in
/// `nvmlClocksThrottleReason*` of `nvml.h`).
pub const THROTTLE_REASONS: [(u64, &str); 9] = [
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// Which metric names the GPU exporter writes; each naming can be turned
/// off on its own (`exporters.gpu` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuNames {
    /// DCGM exporter's `DCGM_FI_DEV_*` families.
    pub dcgm: bool,
    /// nvidia_gpu_prometheus_exporter's `nvidia_gpu_*` families.
    pub nvidia_gpu_exporter: bool,
}

impl GpuNames {
    /// Both namings, the default: rules written for either exporter work.
    pub const BOTH: GpuNames = GpuNames {
        dcgm: true,
        nvidia_gpu_exporter: true,
    };
}

/// Renders GPU readings; holds the source and whether it worked last time.
pub struct GpuExporter {
    source: Option<Box<dyn GpuSource>>,
    last_ok: AtomicBool,
}

impl GpuExporter {
    /// Opens NVML. Without a usable driver this logs one line and gives an
    /// exporter that reports `osprey_gpu_available 0`.
    pub fn open_nvml() -> GpuExporter {
        match NvmlSource::open() {
            Ok(source) => {
                tracing::info!(
                    gpus = source.device_count,
                    "NVML loaded; exporting GPU metrics"
                );
                GpuExporter::with_source(Box::new(source))
            }
            Err(e) => {
                tracing::info!("no NVIDIA GPU metrics: {e}");
                GpuExporter::without_gpu()
            }
        }
    }

    /// An exporter over any source (a fake one in tests).
    pub fn with_source(source: Box<dyn GpuSource>) -> GpuExporter {
        GpuExporter {
            source: Some(source),
            last_ok: AtomicBool::new(true),
        }
    }

    /// An exporter that has no GPU to report.
    pub fn without_gpu() -> GpuExporter {
        GpuExporter {
            source: None,
            last_ok: AtomicBool::new(false),
        }
    }

    /// Writes the GPU metrics into `out` in the text exposition format,
    /// in the namings `names` selects (`osprey_gpu_*` always).
    pub fn collect(&self, names: GpuNames, out: &mut String) {
        let readings = self.read();
        single(
            out,
            "osprey_gpu_available",
            "Whether NVML could be used to read the GPUs (1) or not (0).",
            Kind::Gauge,
            if readings.is_some() { 1.0 } else { 0.0 },
        );
        if let Some(readings) = readings {
            if names.dcgm {
                write_dcgm(&readings, out);
            }
            write_osprey(&readings, out);
            if names.nvidia_gpu_exporter {
                write_nvidia_gpu_exporter(&readings, out);
            }
        }
    }

    /// The GPUs now, or `None` without a GPU or when reading fails (logged
    /// once per change, as [`GpuExporter::collect`] reports it). The
    /// container exporter takes its per-process figures from here.
    pub fn read(&self) -> Option<Vec<GpuReading>> {
        match &self.source {
            None => None,
            Some(source) => match source.read() {
                Ok(readings) => {
                    if !self.last_ok.swap(true, Ordering::Relaxed) {
                        tracing::info!("reading GPUs works again");
                    }
                    Some(readings)
                }
                Err(e) => {
                    if self.last_ok.swap(false, Ordering::Relaxed) {
                        tracing::warn!("reading GPUs failed: {e}");
                    }
                    None
                }
            },
        }
    }
}

/// The identity labels DCGM exporter puts on every GPU series.
struct GpuLabels {
    gpu: String,
    device: String,
    uuid: String,
    model: String,
    pci_bus_id: String,
}

impl GpuLabels {
    fn of(r: &GpuReading) -> GpuLabels {
        GpuLabels {
            gpu: r.index.to_string(),
            device: format!("nvidia{}", r.index),
            uuid: r.uuid.clone(),
            model: r.name.clone(),
            pci_bus_id: r.pci_bus_id.clone(),
        }
    }

    fn pairs(&self) -> [(&str, &str); 5] {
        [
            ("gpu", &self.gpu),
            ("UUID", &self.uuid),
            ("device", &self.device),
            ("modelName", &self.model),
            ("pci_bus_id", &self.pci_bus_id),
        ]
    }
}

type Field = fn(&GpuReading) -> Option<f64>;

const MIB: f64 = 1024.0 * 1024.0;

/// The per-GPU families: DCGM name, help, type and how to read the value
/// (in DCGM's units: MiB, W, mJ, MHz, percent).
const FAMILIES: [(&str, &str, Kind, Field); 18] = [
    (
        "DCGM_FI_DEV_SM_CLOCK",
        "SM clock frequency (in MHz).",
        Kind::Gauge,
        |r| r.sm_clock_mhz.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_MEM_CLOCK",
        "Memory clock frequency (in MHz).",
        Kind::Gauge,
        |r| r.memory_clock_mhz.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_GPU_TEMP",
        "GPU temperature (in C).",
        Kind::Gauge,
        |r| r.temperature_celsius.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_POWER_USAGE",
        "Power draw (in W).",
        Kind::Gauge,
        |r| r.power_milliwatts.map(|mw| f64::from(mw) / 1000.0),
    ),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "Total energy consumption since the driver loaded (in mJ).",
        Kind::Counter,
        |r| r.energy_millijoules.map(|v| v as f64),
    ),
    (
        "DCGM_FI_DEV_GPU_UTIL",
        "GPU utilization (in %).",
        Kind::Gauge,
        |r| r.gpu_utilization_percent.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "Memory utilization (in %).",
        Kind::Gauge,
        |r| r.memory_utilization_percent.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_ENC_UTIL",
        "Encoder utilization (in %).",
        Kind::Gauge,
        |r| r.encoder_utilization_percent.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_DEC_UTIL",
        "Decoder utilization (in %).",
        Kind::Gauge,
        |r| r.decoder_utilization_percent.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "Total number of PCIe retries.",
        Kind::Counter,
        |r| r.pcie_replays.map(f64::from),
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "Frame buffer memory free (in MiB).",
        Kind::Gauge,
        |r| r.memory_free_bytes.map(|b| (b as f64 / MIB).floor()),
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        "Frame buffer memory used (in MiB).",
        Kind::Gauge,
        |r| r.memory_used_bytes.map(|b| (b as f64 / MIB).floor()),
    ),
    (
        "DCGM_FI_DEV_XID_ERRORS",
        "Value of the last XID error encountered.",
        Kind::Gauge,
        |r| r.last_xid.map(|v| v as f64),
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "Total number of single-bit volatile ECC errors.",
        Kind::Counter,
        |r| r.ecc.single_bit_volatile.map(|v| v as f64),
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "Total number of double-bit volatile ECC errors.",
        Kind::Counter,
        |r| r.ecc.double_bit_volatile.map(|v| v as f64),
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        "Total number of single-bit persistent ECC errors.",
        Kind::Counter,
        |r| r.ecc.single_bit_aggregate.map(|v| v as f64),
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "Total number of double-bit persistent ECC errors.",
        Kind::Counter,
        |r| r.ecc.double_bit_aggregate.map(|v| v as f64),
    ),
    (
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "Current clock throttle reasons (bitmask of nvmlClocksThrottleReason values).",
        Kind::Gauge,
        |r| r.throttle_reasons.map(|v| v as f64),
    ),
];

fn write_dcgm(readings: &[GpuReading], out: &mut String) {
    let labels: Vec<GpuLabels> = readings.iter().map(GpuLabels::of).collect();
    for (name, help, kind, field) in FAMILIES {
        if !readings.iter().any(|r| field(r).is_some()) {
            continue;
        }
        let mut f = Family::new(out, name, help, kind);
        for (r, l) in readings.iter().zip(&labels) {
            if let Some(v) = field(r) {
                f.sample(&l.pairs(), v);
            }
        }
    }
}

/// osprey's own families (throttle reasons spelled out, memory per
/// process), with DCGM's identity labels.
fn write_osprey(readings: &[GpuReading], out: &mut String) {
    let labels: Vec<GpuLabels> = readings.iter().map(GpuLabels::of).collect();
    if readings.iter().any(|r| r.throttle_reasons.is_some()) {
        let mut f = Family::new(
            out,
            "osprey_gpu_throttle_reason_active",
            "Whether a clock throttle reason is active (1) or not (0), one series per reason.",
            Kind::Gauge,
        );
        for (r, l) in readings.iter().zip(&labels) {
            let Some(bits) = r.throttle_reasons else {
                continue;
            };
            for (bit, reason) in THROTTLE_REASONS {
                let p = l.pairs();
                f.sample(
                    &[p[0], p[1], p[2], p[3], p[4], ("reason", reason)],
                    if bits & bit != 0 { 1.0 } else { 0.0 },
                );
            }
        }
    }
    if readings
        .iter()
        .any(|r| r.processes.iter().any(|p| p.used_memory_bytes.is_some()))
    {
        let mut f = Family::new(
            out,
            "osprey_gpu_process_memory_used_bytes",
            "GPU memory used by a process, in bytes.",
            Kind::Gauge,
        );
        for (r, l) in readings.iter().zip(&labels) {
            for p in &r.processes {
                if let Some(bytes) = p.used_memory_bytes {
                    let pid = p.pid.to_string();
                    let l = l.pairs();
                    f.sample(
                        &[
                            l[0],
                            l[1],
                            l[2],
                            l[3],
                            l[4],
                            ("pid", &pid),
                            ("process_name", &p.name),
                        ],
                        bytes as f64,
                    );
                }
            }
        }
    }
}

/// nvidia_gpu_prometheus_exporter's families: name, help, and the value in
/// its units (bytes, percent, milliwatts, degrees Celsius).
const NVIDIA_GPU_EXPORTER_FAMILIES: [(&str, &str, Field); 6] = [
    (
        "nvidia_gpu_memory_used_bytes",
        "Memory used by the GPU device in bytes.",
        |r| r.memory_used_bytes.map(|v| v as f64),
    ),
    (
        "nvidia_gpu_memory_total_bytes",
        "Total memory of the GPU device in bytes.",
        |r| r.memory_total_bytes.map(|v| v as f64),
    ),
    (
        "nvidia_gpu_duty_cycle",
        "Percent of time over the past sample period during which one or more kernels were executing on the GPU device.",
        |r| r.gpu_utilization_percent.map(f64::from),
    ),
    (
        "nvidia_gpu_power_usage_milliwatts",
        "Power usage of the GPU device in milliwatts.",
        |r| r.power_milliwatts.map(f64::from),
    ),
    (
        "nvidia_gpu_temperature_celsius",
        "Temperature of the GPU device in celsius.",
        |r| r.temperature_celsius.map(f64::from),
    ),
    (
        "nvidia_gpu_fanspeed_percent",
        "Fanspeed of the GPU device as a percent of its maximum.",
        |r| r.fan_speed_percent.map(f64::from),
    ),
];

/// The nvidia_gpu_prometheus_exporter naming: `nvidia_gpu_num_devices` and
/// per-GPU gauges labelled `minor_number`, `uuid` and `name`. Like that
/// exporter, a GPU whose minor number cannot be read is left out of the
/// per-GPU families (the label would be missing).
fn write_nvidia_gpu_exporter(readings: &[GpuReading], out: &mut String) {
    single(
        out,
        "nvidia_gpu_num_devices",
        "Number of GPU devices.",
        Kind::Gauge,
        readings.len() as f64,
    );
    let labelled: Vec<(String, &GpuReading)> = readings
        .iter()
        .filter_map(|r| r.minor_number.map(|minor| (minor.to_string(), r)))
        .collect();
    for (name, help, field) in NVIDIA_GPU_EXPORTER_FAMILIES {
        if !labelled.iter().any(|(_, r)| field(r).is_some()) {
            continue;
        }
        let mut f = Family::new(out, name, help, Kind::Gauge);
        for (minor, r) in &labelled {
            if let Some(v) = field(r) {
                f.sample(
                    &[
                        ("minor_number", minor),
                        ("uuid", &r.uuid),
                        ("name", &r.name),
                    ],
                    v,
                );
            }
        }
    }
}

/// The real source: NVML through nvml-wrapper.
///
/// The library handle is leaked on purpose: NVML is process-wide, opened
/// once, and an `EventSet` (how XID errors arrive) borrows it for its whole
/// life, which a `'static` handle makes expressible without a
/// self-referential struct.
pub struct NvmlSource {
    nvml: &'static nvml_wrapper::Nvml,
    device_count: u32,
    /// XID events, when the driver supports them.
    events: Mutex<Option<nvml_wrapper::EventSet<'static>>>,
    /// The last XID per device index.
    last_xid: Mutex<HashMap<u32, u64>>,
}

impl NvmlSource {
    /// Loads libnvidia-ml and counts the devices; an error when there is no
    /// driver or no GPU.
    pub fn open() -> Result<NvmlSource, String> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("cannot load NVML: {e}"))?;
        let nvml: &'static nvml_wrapper::Nvml = Box::leak(Box::new(nvml));
        let device_count = nvml
            .device_count()
            .map_err(|e| format!("cannot count GPUs: {e}"))?;
        if device_count == 0 {
            return Err("NVML found no GPU".to_string());
        }
        let events = register_xid_events(nvml, device_count);
        Ok(NvmlSource {
            nvml,
            device_count,
            events: Mutex::new(events),
            last_xid: Mutex::new(HashMap::new()),
        })
    }

    /// Takes every pending XID event without waiting.
    fn drain_xid_events(&self) {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let Some(set) = events.as_ref() else {
            return;
        };
        let mut last = self.last_xid.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a flood of events is read over several scrapes.
        for _ in 0..1000 {
            let Ok(event) = set.wait(0) else { break };
            if let (Ok(index), Some(nvml_wrapper::enums::event::XidError::Value(xid))) =
                (event.device.index(), event.event_data)
            {
                last.insert(index, xid);
            }
        }
    }

    fn read_device(&self, index: u32) -> Result<GpuReading, String> {
        use nvml_wrapper::enum_wrappers::device::{
            Clock, EccCounter, MemoryError, TemperatureSensor,
        };
        let device = self
            .nvml
            .device_by_index(index)
            .map_err(|e| format!("GPU {index}: {e}"))?;
        let utilization = device.utilization_rates().ok();
        let memory = device.memory_info().ok();
        let ecc =
            |error: MemoryError, counter: EccCounter| device.total_ecc_errors(error, counter).ok();
        // The latest utilization sample of each process the driver has
        // buffered (samples are per process per sample period).
        let mut sm_utilization: HashMap<u32, (u64, u32)> = HashMap::new();
        for sample in device.process_utilization_stats(None).unwrap_or_default() {
            let entry = sm_utilization
                .entry(sample.pid)
                .or_insert((sample.timestamp, sample.sm_util));
            if sample.timestamp >= entry.0 {
                *entry = (sample.timestamp, sample.sm_util);
            }
        }
        let mut processes = Vec::new();
        let compute = device.running_compute_processes().unwrap_or_default();
        let graphics = device.running_graphics_processes().unwrap_or_default();
        for p in compute.into_iter().chain(graphics) {
            // A process using both engines is listed twice.
            if processes.iter().any(|q: &GpuProcess| q.pid == p.pid) {
                continue;
            }
            let used_memory_bytes = match p.used_gpu_memory {
                nvml_wrapper::enums::device::UsedGpuMemory::Used(bytes) => Some(bytes),
                nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
            };
            let name = std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                .map(|n| n.trim().to_string())
                .unwrap_or_default();
            processes.push(GpuProcess {
                pid: p.pid,
                name,
                used_memory_bytes,
                sm_utilization_percent: sm_utilization.get(&p.pid).map(|&(_, util)| util),
            });
        }
        let last_xid = {
            let last = self.last_xid.lock().unwrap_or_else(|e| e.into_inner());
            let supported = self
                .events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some();
            supported.then(|| last.get(&index).copied().unwrap_or(0))
        };
        Ok(GpuReading {
            index,
            uuid: device.uuid().unwrap_or_default(),
            name: device.name().unwrap_or_default(),
            pci_bus_id: device.pci_info().map(|p| p.bus_id).unwrap_or_default(),
            minor_number: device.minor_number().ok(),
            gpu_utilization_percent: utilization.as_ref().map(|u| u.gpu),
            memory_utilization_percent: utilization.as_ref().map(|u| u.memory),
            encoder_utilization_percent: device.encoder_utilization().ok().map(|u| u.utilization),
            decoder_utilization_percent: device.decoder_utilization().ok().map(|u| u.utilization),
            pcie_replays: device.pcie_replay_counter().ok(),
            memory_used_bytes: memory.as_ref().map(|m| m.used),
            memory_free_bytes: memory.as_ref().map(|m| m.free),
            memory_total_bytes: memory.as_ref().map(|m| m.total),
            fan_speed_percent: device.fan_speed(0).ok(),
            temperature_celsius: device.temperature(TemperatureSensor::Gpu).ok(),
            power_milliwatts: device.power_usage().ok(),
            energy_millijoules: device.total_energy_consumption().ok(),
            sm_clock_mhz: device.clock_info(Clock::SM).ok(),
            memory_clock_mhz: device.clock_info(Clock::Memory).ok(),
            last_xid,
            ecc: EccCounts {
                single_bit_volatile: ecc(MemoryError::Corrected, EccCounter::Volatile),
                double_bit_volatile: ecc(MemoryError::Uncorrected, EccCounter::Volatile),
                single_bit_aggregate: ecc(MemoryError::Corrected, EccCounter::Aggregate),
                double_bit_aggregate: ecc(MemoryError::Uncorrected, EccCounter::Aggregate),
            },
            throttle_reasons: device.current_throttle_reasons().ok().map(|r| r.bits()),
            processes,
        })
    }
}

/// Registers every GPU for critical XID events; `None` when the driver
/// cannot (not an error: the XID family is then left out).
fn register_xid_events(
    nvml: &'static nvml_wrapper::Nvml,
    device_count: u32,
) -> Option<nvml_wrapper::EventSet<'static>> {
    use nvml_wrapper::bitmasks::event::EventTypes;
    let mut set = nvml.create_event_set().ok()?;
    for index in 0..device_count {
        let device = nvml.device_by_index(index).ok()?;
        set = match device.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(set) => set,
            Err(e) => {
                tracing::debug!("XID events not available on GPU {index}: {e:?}");
                return None;
            }
        };
    }
    Some(set)
}

impl GpuSource for NvmlSource {
    fn read(&self) -> Result<Vec<GpuReading>, String> {
        self.drain_xid_events();
        (0..self.device_count)
            .map(|i| self.read_device(i))
            .collect()
    }
}
