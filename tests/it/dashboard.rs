//! The dashboard in a real browser: headless Chromium driven by playwright-core
//! (`tests/browser/dashboard.cjs`) against a real supervisor. `.ci/run` installs Debian's
//! `chromium` and `playwright-core` (into target/browser-deps) and sets `PYPM_REQUIRE_BROWSER=1`,
//! so there a missing part fails the test; elsewhere it says what is missing and skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

fn browser_parts() -> Result<(PathBuf, PathBuf), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let deps = std::env::var_os("PYPM_BROWSER_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/browser-deps"));
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !deps.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "no playwright-core in {} (npm install --prefix {} playwright-core)",
            deps.display(),
            deps.display()
        ));
    }
    if !chromium.is_file() {
        return Err(format!(
            "no browser at {} (apt-get install chromium)",
            chromium.display()
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("no `node` on PATH".into());
    }
    Ok((deps, chromium))
}

#[test]
fn the_dashboard_in_chromium_shows_restarts_follows_logs_and_shows_a_broken_file() {
    let (deps, chromium) = match browser_parts() {
        Ok(parts) => parts,
        Err(why) if std::env::var_os("PYPM_REQUIRE_BROWSER").is_none() => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(why) => panic!("PYPM_REQUIRE_BROWSER is set but {why}"),
    };
    let p = Project::new();
    let port = free_port();
    let worker = p.sh("worker", "echo \"worker started $$\"\nexec sleep 1000\n");
    p.write_config(&format!(
        "[pypm]\nhttp = \"127.0.0.1:{port}\"\n\n[apps.worker]\ncommand = {worker}\n\n[apps.web]\ncommand = \"sleep 1000\"\ninstances = 2\n"
    ));
    p.up_d();
    let url = p.pypm_ok(&["dashboard"], 0).trim().to_string();
    let old = p.pid_of("worker").expect("worker runs");

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = Command::new("node")
        .arg(root.join("tests/browser/dashboard.cjs"))
        .env("PYPM_DASHBOARD_URL", &url)
        .env("PYPM_CONFIG_FILE", &p.config)
        .env("PYPM_INSTANCES", "worker,web.0,web.1")
        .env("PYPM_RESTART_APP", "worker")
        .env("PYPM_BROWSER_DEPS", &deps)
        .env("PYPM_SCREENSHOTS", root.join("target/screenshots"))
        .env("CHROMIUM", &chromium)
        .env(MARKER_VAR, p.marker())
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(out.reopen().expect("reopen"))
        .spawn()
        .expect("spawn node");
    let status = wait_child(&mut child, Duration::from_secs(180));
    let log = std::fs::read_to_string(out.path()).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "the browser test failed ({status:?}):\n{log}\n--- pypm.log\n{}",
        p.supervisor_log_tail()
    );
    // What the browser did, seen from outside: a new worker process.
    assert_ne!(p.pid_of("worker"), Some(old), "{log}");
}
