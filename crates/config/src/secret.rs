//! Secrets kept in files (`password_file`, `credentials_file`,
//! `bearer_token_file`, `data_source_name_file`, ...): read whole and
//! trimmed of surrounding white space, as Prometheus and Alertmanager read
//! them; and redis_exporter's password file, a JSON object from Redis URI
//! to password.

use std::collections::BTreeMap;

/// The trimmed text of the secret file at `path`.
pub fn read_secret(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|error| format!("reading {path}: {error}"))
}

/// redis_exporter's `--redis.password-file`: a JSON object mapping each
/// Redis URI (`redis://host:port`) to its password.
pub fn read_redis_password_map(path: &str) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("reading {path}: {error}"))?;
    serde_json::from_str(&text)
        .map_err(|error| format!("{path}: not a JSON object of URI to password: {error}"))
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

    #[test]
    fn redis_password_maps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw.json");
        std::fs::write(&path, r#"{"redis://a:6379": "x", "redis://b:6379": ""}"#).unwrap();
        let map = read_redis_password_map(&path.display().to_string()).unwrap();
        assert_eq!(map["redis://a:6379"], "x");
        std::fs::write(&path, r#"["x"]"#).unwrap();
        assert!(read_redis_password_map(&path.display().to_string()).is_err());
    }
}
