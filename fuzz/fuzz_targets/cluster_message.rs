//! Fuzzes the alert manager cluster's frame decoder
//! (`docs/format/cluster.md`): arbitrary bytes as one frame. Decoding must
//! never panic; a frame it accepts turns into silences and log entries
//! without panicking, and encodes back into a frame that decodes to the
//! same message type, sender and counts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = alert::cluster::decode_frame(data) else {
        return;
    };
    let silences = message.silences();
    let entries = message.nflog();
    let again = alert::cluster::decode_frame(&message.encode()).expect("re-encoded frame decodes");
    assert_eq!(again.kind(), message.kind());
    assert_eq!(again.from(), message.from());
    assert_eq!(again.members(), message.members());
    assert_eq!(again.silences().len(), silences.len());
    assert_eq!(again.nflog().len(), entries.len());
});
