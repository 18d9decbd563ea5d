//! The control protocol's request decoder (what the supervisor reads from its socket).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = serde_json::from_slice::<pypm::control::protocol::RequestFrame>(data) {
        // What decodes encodes again.
        let text = serde_json::to_vec(&frame).expect("a decoded frame encodes");
        let back: pypm::control::protocol::RequestFrame =
            serde_json::from_slice(&text).expect("and decodes again");
        assert_eq!(back, frame);
    }
});
