//! The file mechanics of `docs/format/alertmanager.md`: JSON Lines files
//! with a header, rewritten whole through `<name>.tmp` + rename, or
//! appended one fsynced line at a time, with torn last lines dropped.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A persistence error: which file and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PersistError {
    pub path: String,
    pub message: String,
}

impl PersistError {
    fn new(path: &Path, message: impl std::fmt::Display) -> PersistError {
        PersistError {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}

fn header(kind: &str) -> String {
    format!("{{\"kind\":\"{kind}\",\"version\":1}}\n")
}

/// Reads the records of a file of `kind`; a missing file has none.
pub fn read_lines(path: &Path, kind: &str) -> Result<Vec<String>, PersistError> {
    let tmp = tmp_path(path);
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(|e| PersistError::new(&tmp, e))?;
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PersistError::new(path, e)),
    };
    let text = String::from_utf8_lossy(&text);
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    // A last line without its newline is a torn append.
    if lines.last().is_some_and(|line| !line.ends_with('\n')) {
        lines.pop();
    }
    let mut lines = lines.into_iter().map(|line| line.trim_end_matches('\n'));
    match lines.next() {
        None => return Ok(Vec::new()),
        Some(first) if format!("{first}\n") == header(kind) => {}
        Some(first) => {
            return Err(PersistError::new(
                path,
                format!("unknown header {first:?} (expected kind {kind:?}, version 1)"),
            ));
        }
    }
    Ok(lines.map(str::to_string).collect())
}

/// Replaces the file with these records (tmp file, fsync, rename, fsync
/// of the directory).
pub fn rewrite(path: &Path, kind: &str, records: &[String]) -> Result<(), PersistError> {
    let mut body = header(kind);
    for record in records {
        body.push_str(record);
        body.push('\n');
    }
    model::durable::write_atomic(path, body.as_bytes()).map_err(|e| PersistError::new(path, e))
}

/// Appends one record and fsyncs. The file must exist (see [`rewrite`]).
pub fn append(path: &Path, record: &str) -> Result<(), PersistError> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().append(true).open(path)?;
        let length = file.metadata()?.len();
        let mut line = String::with_capacity(record.len() + 1);
        line.push_str(record);
        line.push('\n');
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data());
        if written.is_err() {
            // A full disk may have taken part of the line: cut it off, so
            // that the next append does not glue a record onto it.
            let _ = file.set_len(length);
        }
        written
    };
    write().map_err(|e| PersistError::new(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    model::durable::tmp_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_appends_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nflog");
        rewrite(&path, "k", &["{\"a\":1}".to_string()]).unwrap();
        append(&path, "{\"a\":2}").unwrap();
        // A torn write: half a line, no newline.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"a\":").unwrap();
        assert_eq!(
            read_lines(&path, "k").unwrap(),
            vec!["{\"a\":1}", "{\"a\":2}"]
        );
        assert!(read_lines(&path, "other").is_err());
        assert!(
            read_lines(&dir.path().join("missing"), "k")
                .unwrap()
                .is_empty()
        );
    }
}
