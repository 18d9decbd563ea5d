//! The supervisor's own files are bounded: `events.jsonl` and a detached supervisor's
//! `pypm.log` rotate at `events_max_size`, keeping `events_max_files`, with whole records only.

use std::time::Duration;

use crate::support::*;

#[test]
fn events_and_the_supervisor_log_rotate_under_a_crash_loop() {
    let p = Project::new();
    let crash = p.sh("crash", "exit 1\n");
    p.write_config(&format!(
        "[pypm]\nevents_max_size = \"4K\"\nevents_max_files = 2\n\n[apps.crash]\ncommand = {crash}\nrestart_delay = \"10ms\"\nrestart_delay_max = \"20ms\"\nmax_restarts = 100000\n"
    ));
    let _ = p.pypm(&["up", "-d", "--wait", "2s"]);
    let sd = p.state_dir();
    let rotated = |name: &str, k: u32| sd.join(format!("{name}.{k}"));
    assert!(
        wait_until(Duration::from_secs(30), || {
            rotated("events.jsonl", 2).exists() && rotated("pypm.log", 1).exists()
        }),
        "events.jsonl.2 and pypm.log.1 expected: {:?}",
        std::fs::read_dir(&sd).map(|d| d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect::<Vec<_>>())
    );
    p.pypm_ok(&["down"], 0);
    assert!(
        !rotated("events.jsonl", 3).exists(),
        "only 2 rotated files are kept"
    );
    for f in [
        sd.join("events.jsonl"),
        rotated("events.jsonl", 1),
        rotated("events.jsonl", 2),
    ] {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(
            text.len() <= 8 * 1024,
            "{} is {} bytes",
            f.display(),
            text.len()
        );
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("a torn record in {}: {line:?} ({e})", f.display()));
        }
    }
    let log = std::fs::metadata(sd.join("pypm.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(log <= 8 * 1024, "pypm.log is {log} bytes");
}
