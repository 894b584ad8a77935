//! Secrets kept in files (`password_file`, `credentials_file`,
//! `bearer_token_file`, ...): read whole and trimmed of surrounding white
//! space, as Prometheus and Alertmanager read them.

/// The trimmed text of the secret file at `path`.
pub fn read_secret(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|error| format!("reading {path}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret\n").unwrap();
        assert_eq!(read_secret(&path.display().to_string()).unwrap(), "s3cret");
        let missing = dir.path().join("missing").display().to_string();
        assert!(read_secret(&missing).unwrap_err().starts_with("reading "));
    }
}
