//! The one way the `osprey` tests hold a child process: a [`ChildGuard`]
//! kills and reaps it when dropped, so a test that fails an assertion,
//! panics or returns early leaves nothing running after `cargo test`.
//!
//! Shared by `support` and `amsupport` (included with `#[path]`).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A running child process that is killed (SIGKILL) and waited for when
/// dropped. Hold it from the moment of `spawn` to the end of the test.
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Spawns `command` and holds the child.
    pub fn spawn(command: &mut Command) -> std::io::Result<ChildGuard> {
        command.spawn().map(ChildGuard)
    }

    /// Spawns `command` with its stderr appended to `log` (stdout
    /// discarded) and waits until `ready` says yes; fails the test, with
    /// the log, when that takes longer than `timeout` (the child is killed
    /// as the guard drops) or at once when the child exits first.
    pub fn spawn_ready(
        command: &mut Command,
        log: &Path,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> ChildGuard {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the child's log");
        let mut guard = ChildGuard::spawn(command.stdout(Stdio::null()).stderr(log_file))
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let deadline = Instant::now() + timeout;
        while !ready() {
            if let Ok(Some(status)) = guard.0.try_wait() {
                panic!(
                    "{command:?} exited ({status}) before it was ready; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{command:?} did not become ready in {timeout:?}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        guard
    }

    /// Runs `command` to its end with its output captured, killing it
    /// when it has not exited within `timeout` (then `status` is `None`).
    pub fn run(command: &mut Command, timeout: Duration) -> std::io::Result<Finished> {
        let mut guard = ChildGuard::spawn(command.stdout(Stdio::piped()).stderr(Stdio::piped()))?;
        let stdout = read_in_thread(guard.0.stdout.take());
        let stderr = read_in_thread(guard.0.stderr.take());
        let status = guard.wait_timeout(timeout);
        guard.kill();
        Ok(Finished {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    /// Like `Command::output`, but fails the test (killing the child) when
    /// it has not exited within `timeout`: for a daemon expected to refuse
    /// to start, so a regression that lets it start fails instead of
    /// hanging with the daemon running.
    pub fn output(command: &mut Command, timeout: Duration) -> std::io::Result<Output> {
        let finished = ChildGuard::run(command, timeout)?;
        let Some(status) = finished.status else {
            panic!(
                "{command:?} did not exit within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&finished.stderr)
            );
        };
        Ok(Output {
            status,
            stdout: finished.stdout,
            stderr: finished.stderr,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// The child, for its pipes (`stdout.take()`).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.0
    }

    /// Sends a signal by kill(1)'s name for it (`HUP`, `TERM`) and fails
    /// the test when it cannot be sent.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.id().to_string())
            .status()
            .is_ok_and(|status| status.success());
        assert!(sent, "could not send SIG{name} to process {}", self.id());
    }

    /// SIGKILL, no chance to clean up, and reaps the child. Does nothing
    /// once the child has been reaped (std never signals a reaped pid).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Waits at most `timeout` for the child to exit; `None` when it is
    /// still running (it stays held, and is killed on drop).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// SIGTERM, then the exit status; fails the test (and so kills the
    /// child) when it has not exited within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        match self.wait_timeout(timeout) {
            Some(status) => status,
            None => panic!(
                "process {} did not exit within {timeout:?} of SIGTERM",
                self.id()
            ),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What [`ChildGuard::run`] saw: the exit status (`None` when the child was
/// killed for taking too long) and everything it wrote.
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Reads a pipe to its end on a thread of its own, so a child that writes
/// more than a pipe holds never blocks on a parent that is waiting for it.
fn read_in_thread(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}
