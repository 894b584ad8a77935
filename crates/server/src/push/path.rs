//! The Pushgateway's URL grammar: `/metrics/job/<job>{/<name>/<value>}`,
//! where `job@base64` and `<name>@base64` mark a value written in URL-safe
//! base64 (padding optional; `=` alone is the empty value).

use std::collections::BTreeMap;

use base64::Engine as _;

/// A group's grouping key: label names to values, `job` always present
/// and non-empty. A value may be empty (`<name>@base64/=`).
pub type Grouping = BTreeMap<String, String>;

const BASE64_SUFFIX: &str = "@base64";

/// Parses the part of a push URL after `/metrics/` (still percent-encoded,
/// as it came on the wire) into a grouping key.
///
/// Each `/`-separated segment is percent-decoded on its own, so `%2F`
/// stays inside a value (the Pushgateway decodes the whole path first,
/// where it would split the value; clients send base64 for values with a
/// `/` anyway). As in the Pushgateway, a name given twice keeps its last
/// value, and the job segment wins over a `job` label later in the path.
pub fn parse_grouping_path(raw: &str) -> Result<Grouping, String> {
    let mut segments = raw.split('/');
    let job_key = segments.next().unwrap_or("");
    let job_base64 = match job_key {
        "job" => false,
        "job@base64" => true,
        _ => {
            return Err(format!(
                "push path must start with /metrics/job/ or /metrics/job@base64/, got /metrics/{}",
                truncate(raw)
            ));
        }
    };
    let Some(job_raw) = segments.next() else {
        return Err("job name is required".to_string());
    };
    let mut job = percent_decode(job_raw)?;
    if job_base64 {
        job = decode_base64(&job).map_err(|e| format!("invalid base64 encoding for job: {e}"))?;
    }
    if job.is_empty() {
        return Err("job name is required".to_string());
    }
    let rest: Vec<&str> = segments.collect();
    let mut grouping = Grouping::new();
    // `/metrics/job/x/` (a trailing slash alone) names no labels.
    if !(rest.len() == 1 && rest[0].is_empty()) {
        if rest.len() % 2 == 1 {
            return Err(format!(
                "odd number of components in label string {:?}",
                truncate(&format!("/{}", rest.join("/")))
            ));
        }
        for pair in rest.chunks_exact(2) {
            let name = percent_decode(pair[0])?;
            let value = percent_decode(pair[1])?;
            let (name, encoded) = match name.strip_suffix(BASE64_SUFFIX) {
                Some(trimmed) => (trimmed.to_string(), true),
                None => (name, false),
            };
            if !model::relabel::is_valid_label_name(&name) || name.starts_with("__") {
                return Err(format!("improper label name {:?}", truncate(&name)));
            }
            let value = if encoded {
                decode_base64(&value).map_err(|e| {
                    format!(
                        "invalid base64 encoding for label {name}={:?}: {e}",
                        truncate(&value)
                    )
                })?
            } else {
                value
            };
            grouping.insert(name, value);
        }
    }
    grouping.insert("job".to_string(), job);
    Ok(grouping)
}

/// URL-safe base64, padding optional (the Pushgateway trims `=` and reads
/// the rest unpadded); the decoded bytes must be UTF-8.
fn decode_base64(text: &str) -> Result<String, String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = engine
        .decode(text.trim_end_matches('='))
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "the decoded value is not UTF-8".to_string())
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(segment: &str) -> Result<String, String> {
    if !segment.contains('%') {
        return Ok(segment.to_string());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    return Err(format!(
                        "invalid percent-encoding in path segment {:?}",
                        truncate(segment)
                    ));
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        format!(
            "path segment {:?} is not UTF-8 once decoded",
            truncate(segment)
        )
    })
}

/// Caps what an error message repeats of the input.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Vec<(String, String)> {
        parse_grouping_path(raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .into_iter()
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn plain_and_base64_forms_read_as_the_pushgateway_reads_them() {
        assert_eq!(ok("job/batch"), pairs(&[("job", "batch")]));
        assert_eq!(ok("job/batch/"), pairs(&[("job", "batch")]));
        assert_eq!(
            ok("job/batch/instance/h1/stage/x"),
            pairs(&[("instance", "h1"), ("job", "batch"), ("stage", "x")])
        );
        // prometheus_client's encodings: "a/b" and "" in base64, quote_plus.
        assert_eq!(
            ok("job@base64/YS9i/path@base64/L3Zhci90bXA=/empty@base64/="),
            pairs(&[("empty", ""), ("job", "a/b"), ("path", "/var/tmp")])
        );
        assert_eq!(
            ok("job/a%2Fb/x/%C3%A9"),
            pairs(&[("job", "a/b"), ("x", "é")])
        );
        // Padding is optional; `-` and `_` are the URL-safe alphabet.
        assert_eq!(
            ok("job/j/v@base64/Pj4-/w@base64/Pz8_"),
            pairs(&[("job", "j"), ("v", ">>>"), ("w", "???")])
        );
        // The job segment wins over a `job` label; a repeated name keeps the last.
        assert_eq!(
            ok("job/a/job/b/x/1/x/2"),
            pairs(&[("job", "a"), ("x", "2")])
        );
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        for (raw, want) in [
            ("jobs/x", "must start with"),
            ("job", "job name is required"),
            ("job/", "job name is required"),
            ("job@base64/=", "job name is required"),
            ("job/x/instance", "odd number"),
            ("job/x/a/b/", "odd number"),
            ("job/x/1a/b", "improper label name"),
            ("job/x/__name__/b", "improper label name"),
            ("job/x/a@base64/!!", "invalid base64"),
            ("job/x/a/%zz", "percent-encoding"),
            ("job/x/a/%ff", "not UTF-8"),
            ("job@base64/_w", "not UTF-8"),
        ] {
            let err = parse_grouping_path(raw).expect_err(raw);
            assert!(err.contains(want), "{raw}: {err}");
        }
    }
}
