//! The few system calls the exporters need that std does not offer
//! (`sysconf`, `getrlimit`, `statfs`, `uname`, `localtime_r`), each wrapped
//! in a safe function, plus small helpers shared by the collectors.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `sysconf(_SC_CLK_TCK)`, the unit of CPU times in procfs (100 on every
/// mainstream Linux; used when the call fails).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// `sysconf(_SC_PAGESIZE)` (4096 when the call fails).
pub fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as f64 } else { 4096.0 }
}

/// The soft limit on open files; `+Inf` when unlimited or unknown.
pub fn max_open_files() -> f64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        f64::INFINITY
    } else {
        limit.rlim_cur as f64
    }
}

/// The `btime` line of `<proc>/stat`: boot time in seconds since the epoch.
pub fn boot_time_seconds(proc_root: &Path) -> io::Result<f64> {
    let stat = std::fs::read_to_string(proc_root.join("stat"))?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no btime in /proc/stat"))
}

/// What `statfs(2)` says about a mounted filesystem.
pub struct FsStats {
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// `statfs(2)` on a path.
pub fn statfs(path: &Path) -> io::Result<FsStats> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
    // SAFETY: an all-zero statfs is a valid value of the plain C struct.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `buf` is valid and writable.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // The field types differ between architectures; all are unsigned or
    // non-negative in practice.
    #[allow(
        clippy::unnecessary_cast,
        reason = "the casts are needed on the architectures whose types differ"
    )]
    Ok(FsStats {
        block_size: buf.f_bsize as u64,
        blocks: buf.f_blocks as u64,
        blocks_free: buf.f_bfree as u64,
        blocks_available: buf.f_bavail as u64,
        files: buf.f_files as u64,
        files_free: buf.f_ffree as u64,
    })
}

/// The fields of `uname(2)`.
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

/// `uname(2)`.
pub fn uname() -> io::Result<Uname> {
    // SAFETY: an all-zero utsname is a valid value of the plain C struct.
    let mut buf: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `buf` is valid and writable.
    if unsafe { libc::uname(&mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Uname {
        sysname: c_chars(&buf.sysname),
        nodename: c_chars(&buf.nodename),
        release: c_chars(&buf.release),
        version: c_chars(&buf.version),
        machine: c_chars(&buf.machine),
        domainname: c_chars(&buf.domainname),
    })
}

/// A fixed-size C char array up to its first NUL (the whole array if none).
fn c_chars(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The local time zone's abbreviation and offset from UTC in seconds at
/// `unix_seconds`.
pub fn local_time_zone(unix_seconds: i64) -> (String, i64) {
    let t: libc::time_t = unix_seconds as libc::time_t;
    // SAFETY: an all-zero tm is a valid value of the plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; localtime_r is the thread-safe form.
    let result = unsafe { libc::localtime_r(&t, &mut tm) };
    if result.is_null() {
        return ("UTC".to_string(), 0);
    }
    let name = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: tm_zone points to a NUL-terminated string owned by libc
        // that lives at least until the next time zone change.
        unsafe { CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    (name, tm.tm_gmtoff as i64)
}
