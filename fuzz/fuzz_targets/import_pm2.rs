//! The pm2 importer, with the oracle that whatever it produces is valid TOML that the config
//! reader accepts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    pypm_fuzz_common::import_oracle("ecosystem.config.js", text);
});

mod pypm_fuzz_common {
    include!("common.rs");
}
