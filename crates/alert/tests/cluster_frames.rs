//! The cluster's frame decoder through the public API the fuzz target
//! (`fuzz/fuzz_targets/cluster_message.rs`) uses, on hand-written frames:
//! a full state with a silence and a log entry, and frames it refuses.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use alert::cluster::{MessageType, decode_frame};

fn frame(kind: u8, payload: &str) -> Vec<u8> {
    let mut bytes = b"OSPC\x01".to_vec();
    bytes.push(kind);
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

/// The fuzz target's checks.
fn check(data: &[u8]) {
    let Ok(message) = decode_frame(data) else {
        return;
    };
    let silences = message.silences();
    let entries = message.nflog();
    let again = decode_frame(&message.encode()).expect("re-encoded frame decodes");
    assert_eq!(again.kind(), message.kind());
    assert_eq!(again.from(), message.from());
    assert_eq!(again.members(), message.members());
    assert_eq!(again.silences().len(), silences.len());
    assert_eq!(again.nflog().len(), entries.len());
}

#[test]
fn a_full_state_frame_decodes_into_silences_and_log_entries() {
    let payload = r#"{
        "label": "eu",
        "from": {"name": "am-a", "address": "10.0.0.5:9094"},
        "members": [{"name": "am-b", "address": "10.0.0.6:9094"}],
        "silences": [
            {"id": "s1", "matchers": [{"name": "team", "value": "ml", "isRegex": false, "isEqual": true}],
             "startsAt": 1, "endsAt": 2, "updatedAt": 1, "createdBy": "me", "comment": "c"},
            {"id": "s2", "matchers": [{"name": "team", "value": "(", "isRegex": true, "isEqual": true}],
             "startsAt": 1, "endsAt": 2, "updatedAt": 1, "createdBy": "me", "comment": "bad regex"}
        ],
        "nflog": [
            {"receiver": "r", "integration": "webhook", "index": 0, "groupKey": "{}:{}",
             "timestamp": 5, "firing": ["00000000000000ff"], "resolved": [], "expiresAt": 10},
            {"receiver": "r", "integration": "opsgenie", "index": 0, "groupKey": "{}:{}",
             "timestamp": 5, "firing": [], "resolved": [], "expiresAt": 10}
        ]
    }"#;
    let bytes = frame(4, payload);
    let message = decode_frame(&bytes).unwrap();
    assert_eq!(message.kind(), MessageType::FullState);
    assert_eq!(message.label(), "eu");
    assert_eq!(message.from().name, "am-a");
    assert_eq!(message.members().len(), 1);
    let silences = message.silences();
    assert_eq!(
        silences.len(),
        1,
        "the silence whose regex does not parse is left out"
    );
    assert_eq!(silences[0].id, "s1");
    let entries = message.nflog();
    assert_eq!(entries.len(), 1, "the unknown integration is left out");
    assert_eq!(entries[0].1.firing, [255].into());
    check(&bytes);
}

#[test]
fn bad_frames_are_refused() {
    for bad in [
        frame(0, "{}"),
        frame(6, "{}"),
        frame(1, "[]"),
        frame(1, "{\"members\": 3}"),
        frame(1, "{\"silences\": [{\"id\": 1}]}"),
        b"OSPC\x02\x01\x00\x00\x00\x02{}".to_vec(),
        b"XSPC\x01\x01\x00\x00\x00\x02{}".to_vec(),
        b"OSPC\x01\x01\x00\x00\x00\x03{}".to_vec(),
        b"OSPC\x01\x01\x04\x00\x00\x01{}".to_vec(),
        Vec::new(),
    ] {
        assert!(
            decode_frame(&bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(&bad)
        );
        check(&bad);
    }
}
