//! AWS Signature Version 4 for remote write requests (`remote_write.sigv4`,
//! as Amazon Managed Service for Prometheus requires: service `aps`).
//!
//! The signature covers the method, the path, the query, every header the
//! request carries (names lowercased, sorted) plus `host` and `x-amz-date`,
//! and the SHA-256 of the body, as the AWS SDKs sign. Checked against
//! botocore's signer in `tests/sigv4.rs`.

use aws_lc_rs::{digest, hmac};

/// The service remote write signs for.
pub const SERVICE: &str = "aps";

/// Credentials for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    /// A session token (temporary credentials), sent as
    /// `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl Credentials {
    /// The static keys when given, else `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` from the environment.
    pub fn resolve(config: &config::SigV4Config) -> Result<Credentials, String> {
        if let (Some(access_key), Some(secret_key)) = (&config.access_key, &config.secret_key) {
            return Ok(Credentials {
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                session_token: None,
            });
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key), Some(secret_key)) => Ok(Credentials {
                access_key,
                secret_key,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            _ => Err(
                "sigv4: no credentials (set access_key and secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    .to_string(),
            ),
        }
    }
}

/// What a signature adds to a request: headers to set, in this order
/// (`x-amz-date`, `x-amz-security-token` when there is a session token,
/// `authorization`).
pub type SignedHeaders = Vec<(String, String)>;

/// The parts of a request a signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// Every header the request will carry besides `host` (taken from the
    /// URL) and the ones [`sign`] returns.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Signs `request` for `region` and `service` at `unix_ms`.
pub fn sign(
    request: &Request<'_>,
    region: &str,
    service: &str,
    credentials: &Credentials,
    unix_ms: i64,
) -> Result<SignedHeaders, String> {
    let Request {
        method,
        url,
        headers,
        body,
    } = *request;
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("sigv4: bad URL {url:?}: {e}"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => return Err(format!("sigv4: URL {url:?} has no host")),
    };
    let amz_date = amz_date(unix_ms);
    let date = &amz_date[..8];

    let mut canonical_headers: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), trim_value(value)))
        .filter(|(name, _)| !UNSIGNED.contains(&name.as_str()))
        .collect();
    canonical_headers.push(("host".to_string(), host));
    canonical_headers.push(("x-amz-date".to_string(), amz_date.clone()));
    if let Some(token) = &credentials.session_token {
        canonical_headers.push(("x-amz-security-token".to_string(), token.clone()));
    }
    canonical_headers.sort();
    // One line per name; repeated names joined with commas, as AWS does.
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in canonical_headers {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let signed_headers = merged
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical = String::new();
    canonical.push_str(method);
    canonical.push('\n');
    canonical.push_str(&canonical_path(parsed.path()));
    canonical.push('\n');
    canonical.push_str(&canonical_query(&parsed));
    canonical.push('\n');
    for (name, value) in &merged {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    canonical.push_str(&hex(digest::digest(&digest::SHA256, body).as_ref()));

    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", credentials.secret_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let mut out = vec![("x-amz-date".to_string(), amz_date)];
    if let Some(token) = &credentials.session_token {
        out.push(("x-amz-security-token".to_string(), token.clone()));
    }
    out.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key
        ),
    ));
    Ok(out)
}

/// Headers the AWS signers leave out of the signature.
const UNSIGNED: &[&str] = &["authorization", "user-agent", "x-amzn-trace-id", "expect"];

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Leading and trailing spaces removed, inner runs of spaces made one.
fn trim_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (year, month, day) = model::time::civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// RFC 3986 encoding of everything but unreserved characters.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path as the URL holds it (already percent-encoded once), encoded
/// again, as AWS requires for every service but S3; empty is `/`.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    encode(path, true)
}

/// Query parameters decoded, re-encoded strictly and sorted.
fn canonical_query(url: &reqwest::Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (encode(&k, false), encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_encoding() {
        assert_eq!(amz_date(1_440_938_160_000), "20150830T123600Z");
        assert_eq!(encode("a b/c~", false), "a%20b%2Fc~");
        assert_eq!(canonical_path("/ws/api%20x"), "/ws/api%2520x");
        assert_eq!(trim_value("  a   b  "), "a b");
    }
}
