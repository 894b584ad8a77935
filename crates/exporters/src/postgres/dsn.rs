//! postgres_exporter's data source names, read the way its driver (Go's
//! lib/pq) reads them, for rust-postgres.
//!
//! A DSN is a URL (`postgresql://user:pw@host:5432/db?sslmode=disable`)
//! or `key=value` pairs (`host=db port=5432 user=postgres
//! password='a b'`). rust-postgres parses both, but knows fewer TLS
//! settings than lib/pq: [`split`] takes lib/pq's (`sslmode` with
//! `verify-ca` and `verify-full`, `sslrootcert`, `sslcert`, `sslkey`) out
//! of the text, so osprey's own TLS connector applies them, and hands the
//! rest on. As in lib/pq, a DSN without `sslmode` means `require`.
//!
//! Pure functions of the text: the fuzz target `postgres_dsn` drives
//! them.

/// lib/pq's `sslmode` values, plus libpq's `allow` and `prefer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, certificate not checked (libpq's
    /// `allow` and `prefer`; lib/pq has neither).
    Prefer,
    /// TLS required; the certificate is checked against `sslrootcert`
    /// when one is given (then as `verify-ca`), else not at all (lib/pq's
    /// default).
    Require,
    /// TLS with a certificate chain to a trusted root; any host name.
    VerifyCa,
    /// TLS with a certificate chain to a trusted root, for this host.
    VerifyFull,
}

/// The TLS settings of a DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SslSettings {
    pub mode: SslMode,
    /// CA certificates (PEM file); the system's roots when absent.
    pub root_cert: Option<String>,
    /// Client certificate and key (PEM files).
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// A DSN split for rust-postgres.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitDsn {
    /// The DSN without lib/pq's TLS settings, in its original form.
    pub rest: String,
    pub ssl: SslSettings,
}

const SSL_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits `dsn` into what rust-postgres reads and lib/pq's TLS settings.
pub fn split(dsn: &str) -> Result<SplitDsn, String> {
    let dsn = dsn.trim();
    if dsn.is_empty() {
        return Err("empty data source name".to_string());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let rest = if is_url(dsn) {
        let (base, query) = match dsn.split_once('?') {
            Some((base, query)) => (base, query),
            None => (dsn, ""),
        };
        let mut kept = form_urlencoded::Serializer::new(String::new());
        let mut any = false;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if SSL_KEYS.contains(&key.as_ref()) {
                pairs.push((key.into_owned(), value.into_owned()));
            } else {
                kept.append_pair(&key, &value);
                any = true;
            }
        }
        if any {
            format!("{base}?{}", kept.finish())
        } else {
            base.to_string()
        }
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_values(dsn)? {
            if SSL_KEYS.contains(&key.as_str()) {
                pairs.push((key, value));
            } else {
                kept.push(format!("{key}={}", quote(&value)));
            }
        }
        kept.join(" ")
    };
    let setting = |name: &str| {
        pairs
            .iter()
            .rev()
            .find_map(|(k, v)| (k == name).then(|| v.clone()))
            .filter(|v| !v.is_empty())
    };
    let mode = match setting("sslmode").as_deref() {
        None | Some("require") => SslMode::Require,
        Some("disable") => SslMode::Disable,
        Some("allow" | "prefer") => SslMode::Prefer,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => return Err(format!("sslmode {other:?} is not supported")),
    };
    Ok(SplitDsn {
        rest,
        ssl: SslSettings {
            mode,
            root_cert: setting("sslrootcert"),
            cert: setting("sslcert"),
            key: setting("sslkey"),
        },
    })
}

fn is_url(dsn: &str) -> bool {
    dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")
}

/// `key=value` pairs; a value is a word or single-quoted, with `\` escaping
/// the next character in either.
pub fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after {key:?} in the data source name"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted value in the data source name".into()),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err("a backslash ends the data source name".into()),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    match chars.next() {
                        Some(escaped) => value.push(escaped),
                        None => return Err("a backslash ends the data source name".into()),
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err("a value without a key in the data source name".to_string());
        }
        pairs.push((key, value));
    }
}

/// A value quoted for the `key=value` form.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The DSN with its password replaced, for logs (postgres_exporter's
/// `PASSWORD_REMOVED`).
pub fn redact(dsn: &str) -> String {
    let dsn = dsn.trim();
    if is_url(dsn) {
        let (scheme, rest) = dsn.split_once("://").unwrap_or(("postgresql", dsn));
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        // A password may also be a query parameter (`?password=`).
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let mut kept = form_urlencoded::Serializer::new(String::new());
                for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                    if key == "password" {
                        kept.append_pair(&key, "PASSWORD_REMOVED");
                    } else {
                        kept.append_pair(&key, &value);
                    }
                }
                format!("{path}?{}", kept.finish())
            }
            None => tail.to_string(),
        };
        return match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split(':').next().unwrap_or("");
                if user_info.contains(':') {
                    format!("{scheme}://{user}:PASSWORD_REMOVED@{host}{tail}")
                } else {
                    format!("{scheme}://{user}@{host}{tail}")
                }
            }
            None => format!("{scheme}://{authority}{tail}"),
        };
    }
    match key_values(dsn) {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                if k == "password" {
                    format!("{k}=PASSWORD_REMOVED")
                } else {
                    format!("{k}={}", quote(&v))
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "could not parse the data source name".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_tls_settings_only() {
        let s = split("postgresql://u:p@db:5433/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x").unwrap();
        assert_eq!(s.rest, "postgresql://u:p@db:5433/app?application_name=x");
        assert_eq!(s.ssl.mode, SslMode::VerifyFull);
        assert_eq!(s.ssl.root_cert.as_deref(), Some("/ca.pem"));
        let s = split("postgres://db/app?sslmode=disable").unwrap();
        assert_eq!(
            (s.rest.as_str(), s.ssl.mode),
            ("postgres://db/app", SslMode::Disable)
        );
        // lib/pq's default.
        assert_eq!(split("postgresql://db").unwrap().ssl.mode, SslMode::Require);
        assert!(split("postgresql://db?sslmode=bogus").is_err());
        assert!(split("  ").is_err());
    }

    #[test]
    fn key_value_form() {
        let s =
            split("host=db port=5432 user=postgres password='it''s' sslmode=prefer dbname=a\\ b")
                .unwrap_err();
        assert!(s.contains("missing"), "{s}");
        let s = split("host=db  port = 5432 password='a \\'b\\' c' sslmode=prefer sslcert=/c.pem dbname=a\\ b").unwrap();
        assert_eq!(
            s.rest,
            "host='db' port='5432' password='a \\'b\\' c' dbname='a b'"
        );
        assert_eq!(s.ssl.mode, SslMode::Prefer);
        assert_eq!(s.ssl.cert.as_deref(), Some("/c.pem"));
        assert!(key_values("host='db").is_err());
        assert!(key_values("=x").is_err());
        assert_eq!(key_values("").unwrap(), []);
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgresql://u:secret@db:5432/app?sslmode=disable"),
            "postgresql://u:PASSWORD_REMOVED@db:5432/app?sslmode=disable"
        );
        assert_eq!(redact("postgresql://u@db/app"), "postgresql://u@db/app");
        assert_eq!(
            redact("postgresql://db/app?user=u&password=secret"),
            "postgresql://db/app?user=u&password=PASSWORD_REMOVED"
        );
        assert_eq!(
            redact("host=db password=secret"),
            "host='db' password=PASSWORD_REMOVED"
        );
    }
}
