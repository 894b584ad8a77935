//! Model-quality benchmarks without a harness (run with
//! `cargo bench -p models`; prints the median of several runs):
//!
//! - **ingest**: prediction records per CPU-second, 50 numeric features,
//!   1,000 records per request, 10 versions, through
//!   `Models::ingest_predictions` (parse, check, apply) in memory, and
//!   once more with the model's log on disk (one fdatasync per request,
//!   whose wait is not CPU time);
//! - **evaluation**: one evaluation round of a model with 50 features and
//!   10 versions, 10,000 records per version in the window and an
//!   uploaded reference of 10,000 records, with actuals for half.
//!
//! CPU time is the process's user + system time (getrusage).

use models::Models;
use std::fmt::Write as _;
use std::time::Instant;

const FEATURES: usize = 50;
const VERSIONS: usize = 10;
const PER_REQUEST: usize = 1_000;
const NOW_S: f64 = 1_800_000_000.0;

/// User and system CPU seconds of this process so far.
fn cpu_split() -> (f64, f64) {
    // SAFETY: getrusage writes into the struct we own; RUSAGE_SELF is valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(usage.ru_utime), t(usage.ru_stime))
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we own; RUSAGE_SELF is valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One request body: `PER_REQUEST` records of one version, 50 features.
fn body(rng: &mut Rng, first_id: usize, version: usize, shift: f64, reference: bool) -> String {
    let mut out = String::from("{\"records\":[");
    for i in 0..PER_REQUEST {
        if i > 0 {
            out.push(',');
        }
        let t = NOW_S - 1800.0 + rng.uniform() * 1700.0;
        if reference {
            out.push_str("{\"features\":{");
        } else {
            let _ = write!(
                out,
                "{{\"id\":\"r{}\",\"version\":\"v{version}\",\"timestamp\":{t:.3},\"features\":{{",
                first_id + i
            );
        }
        for f in 0..FEATURES {
            if f > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "\"feature_{f:02}\":{:.6}",
                rng.uniform() * 100.0 + shift
            );
        }
        let _ = write!(out, "}},\"prediction\":{:.6}", rng.uniform() * 10.0);
        if reference {
            let _ = write!(out, ",\"actual\":{:.6}", rng.uniform() * 10.0);
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ingest(models: &Models, bodies: &[String], label: &str) {
    let mut rates = Vec::new();
    let (mut user, mut system, mut wall) = (0.0, 0.0, 0.0);
    for _ in 0..5 {
        let (u0, s0) = cpu_split();
        let started = Instant::now();
        for b in bodies {
            models
                .ingest_predictions("bench", b.as_bytes())
                .expect("ingest");
        }
        let (u1, s1) = cpu_split();
        let records = (bodies.len() * PER_REQUEST) as f64;
        rates.push(records / ((u1 - u0) + (s1 - s0)));
        user += u1 - u0;
        system += s1 - s0;
        wall += started.elapsed().as_secs_f64();
    }
    println!(
        "ingest ({label}): {:.0} records per CPU-second (median of 5 runs of {} records, {FEATURES} features; user {user:.2} s, system {system:.2} s, wall {wall:.2} s in all)",
        median(rates),
        bodies.len() * PER_REQUEST
    );
}

fn main() {
    let mut rng = Rng(42);
    let bodies: Vec<String> = (0..40)
        .map(|i| body(&mut rng, i * PER_REQUEST, i % VERSIONS, 0.0, false))
        .collect();
    let bytes: usize = bodies.iter().map(String::len).sum();
    println!(
        "request bodies: {} of {PER_REQUEST} records, {:.0} bytes per record",
        bodies.len(),
        bytes as f64 / (bodies.len() * PER_REQUEST) as f64
    );
    // The steady state: the model has an uploaded reference (without one,
    // its first hour of records is also collected as the reference).
    let reference_body = body(&mut rng, 0, 0, 0.0, true);
    let memory = Models::in_memory();
    memory
        .set_reference("bench", reference_body.as_bytes())
        .expect("reference");
    ingest(&memory, &bodies, "in memory");
    let dir = tempfile::tempdir().expect("tempdir");
    let logged = Models::open(Some(dir.path().to_path_buf()), &[]).expect("open");
    logged
        .set_reference("bench", reference_body.as_bytes())
        .expect("reference");
    ingest(&logged, &bodies, "with the log on disk");
    let fresh = Models::in_memory();
    ingest(&fresh, &bodies, "first hour, no reference uploaded");

    // One evaluation round: 10 versions x 10,000 records, reference 10,000.
    let models = Models::in_memory();
    let reference: Vec<String> = (0..10).map(|_| body(&mut rng, 0, 0, 0.0, true)).collect();
    // One reference body of 10,000 records.
    let mut joined = String::from("{\"records\":[");
    for (i, b) in reference.iter().enumerate() {
        let inner = &b["{\"records\":[".len()..b.len() - 2];
        if i > 0 {
            joined.push(',');
        }
        joined.push_str(inner);
    }
    joined.push_str("]}");
    models
        .set_reference("bench", joined.as_bytes())
        .expect("reference");
    for v in 0..VERSIONS {
        for k in 0..10 {
            let b = body(&mut rng, (v * 10 + k) * PER_REQUEST, v, v as f64, false);
            models
                .ingest_predictions("bench", b.as_bytes())
                .expect("ingest");
        }
        // Actuals for half of the version's records.
        let mut actuals = String::from("{\"records\":[");
        for i in 0..5 * PER_REQUEST {
            if i > 0 {
                actuals.push(',');
            }
            let _ = write!(
                actuals,
                "{{\"id\":\"r{}\",\"actual\":{:.3},\"timestamp\":{NOW_S}}}",
                v * 10 * PER_REQUEST + i,
                rng.uniform() * 10.0
            );
        }
        actuals.push_str("]}");
        models
            .ingest_actuals("bench", actuals.as_bytes())
            .expect("actuals");
    }
    let mut times = Vec::new();
    let mut series = 0;
    for _ in 0..5 {
        let start = cpu_seconds();
        let out = models.evaluate_model("bench", (NOW_S * 1000.0) as i64);
        times.push(cpu_seconds() - start);
        series = out.len();
    }
    println!(
        "evaluation round ({FEATURES} features x {VERSIONS} versions, 10,000 records each, reference 10,000): {:.3} CPU-seconds (median of 5), {series} series",
        median(times)
    );
}
