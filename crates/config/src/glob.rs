//! File name patterns, as `rule_files`, `file_sd_configs`, `templates`,
//! `scrape_config_files` and `dashboards` take them: `*`, `?` and `[...]`
//! in the last path element, as Go's `filepath.Glob` matches them.

use std::path::{Path, PathBuf};

/// Adds the files matching `pattern` (a path whose last element may hold
/// `*`, `?` and `[...]`) to `out`.
pub fn expand_glob(pattern: &str, out: &mut Vec<PathBuf>) {
    let path = Path::new(pattern);
    let Some(file_pattern) = path.file_name().and_then(|name| name.to_str()) else {
        return;
    };
    if !file_pattern.contains(['*', '?', '[']) {
        if path.is_file() {
            out.push(path.to_path_buf());
        }
        return;
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(name) = name.to_str()
            && glob_match(file_pattern.as_bytes(), name.as_bytes())
            && entry.path().is_file()
        {
            out.push(directory.join(name));
        }
    }
}

/// Shell-style matching of one path element: `*` any run, `?` one byte,
/// `[abc]`, `[a-z]`, `[^a-z]` one byte of (or not of) a set.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob_match(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && glob_match(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return name.first() == Some(&b'[') && glob_match(rest, &name[1..]);
            };
            let Some((&byte, name_rest)) = name.split_first() else {
                return false;
            };
            let (negated, set) = match rest[..close].split_first() {
                Some((b'^', set)) => (true, set),
                _ => (false, &rest[..close]),
            };
            let mut matched = false;
            let mut index = 0;
            while index < set.len() {
                if index + 2 < set.len() && set[index + 1] == b'-' {
                    matched |= set[index] <= byte && byte <= set[index + 2];
                    index += 3;
                } else {
                    matched |= set[index] == byte;
                    index += 1;
                }
            }
            matched != negated && glob_match(&rest[close + 1..], name_rest)
        }
        Some((&literal, rest)) => name.first() == Some(&literal) && glob_match(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.json", b"targets.json"));
        assert!(!glob_match(b"*.json", b"targets.yml"));
        assert!(glob_match(b"t?.yml", b"t1.yml"));
        assert!(glob_match(b"node-[0-9].yaml", b"node-7.yaml"));
        assert!(!glob_match(b"node-[^0-9].yaml", b"node-7.yaml"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a*b", b"acbd"));
    }
}
