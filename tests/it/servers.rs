//! Real servers behind a `listen` socket: gunicorn (picks up `LISTEN_FDS` itself) and uvicorn
//! (`--fd 3`), rolled under load. They come from a venv: `$PYPM_TEST_VENV` (CI creates it in
//! `.ci/run`), else `target/test-venv`, created once here; without a reachable registry the tests
//! print why and skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::*;

fn has_servers(venv: &Path) -> bool {
    venv.join("bin/gunicorn").exists() && venv.join("bin/uvicorn").exists()
}

/// Runs `cmd` with output to a file, killed after `timeout`; Err carries its output.
fn run(mut cmd: Command, timeout: Duration) -> Result<(), String> {
    let log = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.reopen().map_err(|e| e.to_string())?)
        .stderr(log.reopen().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let status = wait_child(&mut child, timeout);
    let out = fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("{cmd:?} exited {s}:\n{out}")),
        None => Err(format!("{cmd:?} took longer than {timeout:?}:\n{out}")),
    }
}

/// Creates `target/test-venv` with gunicorn and uvicorn unless it has them, under a lock file so
/// that concurrent test runs do it once.
fn create_venv(venv: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let lock_path = venv.with_extension("lock");
    let lock = fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("flock {}", lock_path.display()));
    }
    if has_servers(venv) {
        return Ok(());
    }
    let mut mk = Command::new("python3");
    mk.args(["-m", "venv"]).arg(venv);
    run(mk, Duration::from_secs(120))?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--disable-pip-version-check",
        "--timeout",
        "15",
        "--retries",
        "1",
        "gunicorn",
        "uvicorn",
    ]);
    run(pip, Duration::from_secs(300))
}

/// The venv with gunicorn and uvicorn, or None (with a message printed) when it cannot be had.
fn venv() -> Option<&'static Path> {
    static VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    VENV.get_or_init(|| {
        if let Some(v) = std::env::var_os("PYPM_TEST_VENV") {
            let v = PathBuf::from(v);
            assert!(
                has_servers(&v),
                "PYPM_TEST_VENV={} has no bin/gunicorn and bin/uvicorn",
                v.display()
            );
            return Some(v);
        }
        let v = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv");
        match create_venv(&v) {
            Ok(()) => Some(v),
            Err(e) => {
                eprintln!(
                    "SKIPPED: real-server tests need gunicorn and uvicorn, and installing them into \
                     {} failed (is the package registry reachable?): {e}",
                    v.display()
                );
                None
            }
        }
    })
    .as_deref()
}

/// Starts `web` (2 instances of `command` on `port`), then rolls it three times under load: two
/// `pypm restart web` and one `revision` change. Returns the counts of the whole run.
fn roll_under_load(p: &Project, port: u16, command: &[String], ready_log: &str) -> Counts {
    let conf = |rev: u32| {
        format!(
            "[apps.web]\ncommand = {}\ninstances = 2\nlisten = [\"tcp://127.0.0.1:{port}\"]\n\
             revision = \"{rev}\"\nenv = {{ HOME = {} }}\n\n\
             [apps.web.ready]\nlog = {}\ninterval = \"100ms\"\ntimeout = \"30s\"\n",
            serde_json::to_string(command).unwrap(),
            serde_json::to_string(&p.marker()).unwrap(),
            serde_json::to_string(ready_log).unwrap()
        )
    };
    p.write_config(&conf(1));
    p.pypm_ok(&["up", "-d", "--wait", "40s"], 0);
    let first = http_get(port, "/", Duration::from_secs(5));
    assert!(
        matches!(&first, Outcome::Ok(b) if b.contains("from instance")),
        "{first:?}"
    );

    let pids = |p: &Project| -> Vec<i32> {
        (0..2)
            .map(|i| p.pid_of(&format!("web.{i}")).unwrap_or(0))
            .collect()
    };

    let load = Hammer::start(port, 2, Duration::from_secs(3));
    load.wait_requests(20, Duration::from_secs(20));
    let mut old = pids(p);
    for _ in 0..2 {
        p.pypm_ok(&["restart", "web"], 0);
        old = p.wait_rolled("web", 2, &old, Duration::from_secs(60));
    }
    p.write_config_by_rename(&conf(2));
    p.wait_rolled("web", 2, &old, Duration::from_secs(60));
    load.wait_requests(20, Duration::from_secs(20));
    load.stop()
}

fn check_bars(server: &str, c: &Counts, max_eof_reset: u64) {
    eprintln!(
        "{server}, 3 rolls of 2 instances under load: {}",
        c.summary()
    );
    assert!(
        c.ok >= 50,
        "{server}: too few requests to tell: {}",
        c.summary()
    );
    assert_eq!(
        c.refused,
        0,
        "{server}: refused connections: {}",
        c.summary()
    );
    assert_eq!(c.timeout, 0, "{server}: timeouts: {}", c.summary());
    assert_eq!(c.failed, 0, "{server}: failed requests: {}", c.summary());
    assert!(
        c.eof + c.reset <= max_eof_reset,
        "{server}: more than {max_eof_reset} EOF/reset: {}",
        c.summary()
    );
}

#[test]
fn gunicorn_rolls_without_a_refused_connection() {
    let Some(venv) = venv() else { return };
    let p = Project::new();
    fs::write(
        p.path("app.py"),
        include_str!("../../examples/gunicorn/app.py"),
    )
    .unwrap();
    let port = free_port();
    let command = vec![
        venv.join("bin/gunicorn").display().to_string(),
        "app:app".into(),
        "--workers".into(),
        "1".into(),
    ];
    let c = roll_under_load(&p, port, &command, "Booting worker with pid");
    // gunicorn's sync worker finishes the request in hand on SIGTERM and the socket stays bound.
    check_bars("gunicorn", &c, 0);
}

#[test]
fn uvicorn_rolls_without_a_refused_connection() {
    let Some(venv) = venv() else { return };
    let p = Project::new();
    fs::write(
        p.path("app.py"),
        include_str!("../../examples/uvicorn/app.py"),
    )
    .unwrap();
    let port = free_port();
    let command = vec![
        venv.join("bin/uvicorn").display().to_string(),
        "app:app".into(),
        "--fd".into(),
        "3".into(),
        "--no-access-log".into(),
    ];
    let c = roll_under_load(&p, port, &command, "Uvicorn running on");
    // uvicorn can close a connection it accepted just as it begins to shut down (uvicorn issue
    // #2757): at most 2 per roll (3 rolls).
    check_bars("uvicorn", &c, 2 * 3);
}
