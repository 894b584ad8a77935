//! The one way osprey replaces a small state file so that a crash leaves
//! either the old file or the new one, never a torn mix, and so that a
//! write acknowledged to a client survives SIGKILL and power loss.
//!
//! [`write_atomic`] writes `<file>.tmp`, fsyncs it, renames it over the
//! file and fsyncs the directory (without that last step the rename
//! itself may be lost on power failure). Every state file outside the
//! TSDB goes through it: silences and the notification log (`alert`),
//! saved dashboards (`ui`), pushed metrics (`server`), model references
//! (`models`), the agent's queue position (`remote`). `docs/durability.md`
//! lists them with when each is synced.
//!
//! This is the only module of `model` that does I/O: blocking `std::fs`
//! calls, no async; callers on a tokio runtime run it on the blocking pool.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether [`write_atomic_with`] fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// fsync the file before the rename and the directory after it: the
    /// new content survives power loss once the call returns.
    Durable,
    /// Rename only: still atomic (a crash of the process leaves the old or
    /// the new content), but a power loss may lose the new content. For
    /// state that is cheap to redo, where a caller turned fsync off.
    AtomicOnly,
}

/// Replaces `path` with `body` atomically and durably (see the module
/// documentation). A leftover `<path>.tmp` from an earlier crash is
/// overwritten.
pub fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, body, Sync::Durable)
}

/// [`write_atomic`] with the fsyncs chosen by `sync`.
pub fn write_atomic_with(path: &Path, body: &[u8], sync: Sync) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(body)?;
        if sync == Sync::Durable {
            file.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        // A full disk leaves a partial temporary file: remove it so the
        // space it holds comes back, and report the write's error.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if sync == Sync::Durable
        && let Some(dir) = path.parent()
    {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory, so that creations, renames and removals in it are
/// on disk. An empty path (a bare file name's parent) means the current
/// directory.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// The temporary file [`write_atomic`] writes beside `path`:
/// `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
        write_atomic_with(&path, b"three", Sync::AtomicOnly).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").unwrap();
        // The temporary's place is taken by a directory: creating it fails.
        std::fs::create_dir(tmp_path(&path)).unwrap();
        assert!(write_atomic(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn tmp_path_appends_to_the_whole_name() {
        assert_eq!(
            tmp_path(Path::new("/d/silences.jsonl")),
            PathBuf::from("/d/silences.jsonl.tmp")
        );
    }
}
