//! Fuzzes the backup manifest reader (`backup.json`, docs/format/backup.md)
//! that `osprey tsdb restore` runs before touching any file: no input may
//! panic, and an accepted manifest names only files inside its listed
//! blocks, each with a `meta.json`, and re-encodes to an equal manifest.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = tsdb::backup::parse_manifest(text) {
        for file in &manifest.files {
            assert!(!file.path.starts_with('/'));
            assert!(!file.path.split('/').any(|part| part == ".." || part.is_empty()));
            assert!(
                manifest
                    .blocks
                    .iter()
                    .any(|b| file.path.starts_with(&format!("{b}/")))
            );
        }
        let again = serde_json::to_string(&manifest).expect("encode");
        assert_eq!(tsdb::backup::parse_manifest(&again).ok(), Some(manifest));
    }
});
