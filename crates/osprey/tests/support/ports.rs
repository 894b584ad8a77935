//! Free loopback ports for the child processes a test starts.
//!
//! Asking the kernel for port 0 and closing the listener leaves a window
//! in which any later `bind(0)` may be handed the same port: two tests of
//! one binary, running in parallel, could then start their servers on one
//! port, the second fail to bind, and its test talk to the first test's
//! server (CI saw exactly this between the two tests of `crash.rs`). A
//! test that kills and restarts its server also leaves its port free for
//! a moment. So every port handed out here is remembered for the life of
//! the test process and never handed out twice.
//!
//! Shared by `support` and `amsupport` (included with `#[path]`).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback address whose port is free now and that no other caller in
/// this process has been given.
pub fn free_addr() -> SocketAddr {
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a loopback port");
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
}
