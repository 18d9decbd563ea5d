//! The config reader, validation and resolution exactly as `pypm check` runs them (with the
//! layers: `include`, profiles, `extends`), and the rendering of every error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = std::env::temp_dir().join("pypm-fuzz-config");
    let _ = std::fs::create_dir_all(&dir);
    let host = pypm::desired::python_env::HostEnv::new([("PATH", "/usr/bin:/bin")], None);
    match pypm::desired::resolve::from_source(text, &dir.join("pypm.toml"), "pypm.toml", &host) {
        Ok(d) => {
            let _ = pypm::supervisor::diff::diff(&d.apps, &d.apps);
        }
        Err(e) => {
            let _ = e.render();
            let _ = e.summary();
        }
    }
});
