//! What the integration tests share: a temp dir with a `pypm.toml` ([`Project`]), helpers that run
//! the real `pypm` binary with a timeout, waits on conditions with deadlines ([`wait_for`]), and a
//! guard that leaves no process behind. The chaos suite (`tests/chaos/`) compiles it in as well.
//!
//! Every process a test starts (the supervisor, its apps, their children) inherits
//! `PYPM_IT_MARKER=<temp dir>` from the environment of the `pypm` it ran, so strays are found by
//! scanning `/proc/*/environ` for it, even grandchildren whose argv says nothing.

mod net;
mod procs;
mod wait;

pub use net::*;
pub use procs::*;
pub use wait::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const MARKER_VAR: &str = "PYPM_IT_MARKER";

/// How long any single `pypm` command may take before the test kills it and fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Project {
    dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Project {
    /// A fresh temp dir; the test writes its fixtures, then `pypm.toml` with [`Project::write_config`].
    pub fn new() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("pypm-it-")
            .tempdir()
            .expect("create temp dir");
        // Canonical so the marker matches what /proc shows.
        let root = dir.path().canonicalize().expect("canonicalize temp dir");
        let config_path = root.join("pypm.toml");
        Project {
            dir,
            root,
            config: config_path,
        }
    }

    pub fn marker(&self) -> String {
        self.root.display().to_string()
    }

    pub fn write_config(&self, text: &str) {
        fs::write(&self.config, text).expect("write pypm.toml");
    }

    /// Writes an executable file (a fixture program) and returns its absolute path as a string.
    pub fn write_script(&self, name: &str, text: &str) -> String {
        let path = self.root.join(name);
        fs::write(&path, text).expect("write fixture");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod fixture");
        path.display().to_string()
    }

    /// Writes `ROOT/NAME.sh` with `body` and returns the TOML array `["sh", "ROOT/NAME.sh"]` that
    /// runs it (the path, hence the marker, is in the app's argv).
    pub fn sh(&self, name: &str, body: &str) -> String {
        let path = self.write_script(&format!("{name}.sh"), body);
        format!("[\"sh\", {}]", serde_json::to_string(&path).unwrap())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".pypm")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join(".pypm/logs")
    }

    /// A `pypm` command for this project: `--config <abs path>`, the marker, cwd = the temp dir.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pypm"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.root)
            .env(MARKER_VAR, self.marker())
            .env("PYPM_LOG", "debug")
            .env_remove("PYPM_CONFIG")
            .stdin(Stdio::null());
        c
    }

    /// Runs `pypm ARGS` to completion (killed after [`COMMAND_TIMEOUT`]). Output goes through
    /// files, not pipes, so a process that inherits them cannot make the test hang.
    pub fn pypm(&self, args: &[&str]) -> Output {
        self.pypm_timeout(args, COMMAND_TIMEOUT)
    }

    pub fn pypm_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let out_path = tempfile::NamedTempFile::new().expect("temp file");
        let err_path = tempfile::NamedTempFile::new().expect("temp file");
        let mut child = self
            .command(args)
            .stdout(out_path.reopen().expect("reopen"))
            .stderr(err_path.reopen().expect("reopen"))
            .spawn()
            .expect("spawn pypm");
        let status = wait_child(&mut child, timeout).unwrap_or_else(|| {
            panic!(
                "`pypm {}` did not finish within {timeout:?}",
                args.join(" ")
            )
        });
        Output {
            status,
            stdout: fs::read(out_path.path()).unwrap_or_default(),
            stderr: fs::read(err_path.path()).unwrap_or_default(),
        }
    }

    /// `pypm ARGS`, asserting exit code `code`; returns stdout.
    pub fn pypm_ok(&self, args: &[&str], code: i32) -> String {
        let out = self.pypm(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "`pypm {}`: {}\n--- end of pypm.log\n{}",
            args.join(" "),
            describe(&out),
            self.supervisor_log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pypm up -d`, which must succeed.
    pub fn up_d(&self) -> String {
        self.pypm_ok(&["up", "-d", "--wait", "20s"], 0)
    }

    pub fn status_json(&self) -> Value {
        let out = self.pypm(&["status", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "status --json: {}",
            describe(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", describe(&out)))
    }

    /// The row of instance `name` (`api` or `api.0`) in `status --json`.
    pub fn row(&self, name: &str) -> Value {
        let s = self.status_json();
        s["instances"]
            .as_array()
            .expect("instances array")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no instance `{name}` in {s:#}"))
    }

    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.row(name)["pid"].as_i64().map(|p| p as i32)
    }

    pub fn state_of(&self, name: &str) -> String {
        self.row(name)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every instance name → pid from one `status --json`.
    pub fn pids(&self) -> Vec<(String, Option<i32>)> {
        let s = self.status_json();
        s["instances"]
            .as_array()
            .expect("instances array")
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["pid"].as_i64().map(|p| p as i32),
                )
            })
            .collect()
    }

    /// Waits until `name` is `state`, returning its row.
    pub fn wait_state(&self, name: &str, state: &str, within: Duration) -> Value {
        wait_for_showing(
            &format!("`{name}` to be `{state}`"),
            within,
            || {
                let s = self.status_json();
                let row = s["instances"]
                    .as_array()?
                    .iter()
                    .find(|r| r["name"] == name)?;
                (row["state"] == state).then(|| row.clone())
            },
            || self.seen(),
        )
    }

    /// The status and the end of the supervisor's log, for a message after a timeout.
    pub fn seen(&self) -> String {
        format!(
            "{:#}\n--- end of pypm.log\n{}",
            self.status_json(),
            self.supervisor_log_tail()
        )
    }

    /// Every event in `state_dir/events.jsonl`.
    pub fn events(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.state_dir().join("events.jsonl")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}"))
            })
            .collect()
    }

    pub fn supervisor_pid(&self) -> Option<i32> {
        fs::read_to_string(self.state_dir().join("pypm.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Live processes carrying this project's marker whose command line contains `needle`.
    pub fn procs_with(&self, needle: &str) -> Vec<i32> {
        marked_processes(&self.marker())
            .into_iter()
            .filter(|&pid| cmdline(pid).contains(needle))
            .collect()
    }

    /// The end of the supervisor's log (detached runs), for failure messages.
    pub fn supervisor_log_tail(&self) -> String {
        let text = fs::read_to_string(self.state_dir().join("pypm.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Stops everything: `pypm down`, then SIGKILL to anything still carrying the marker.
    fn cleanup(&self) {
        if self.state_dir().join("pypm.sock").exists() || self.supervisor_pid().is_some() {
            let _ = self.pypm_timeout(&["down"], Duration::from_secs(30));
        }
        for _ in 0..50 {
            let left = marked_processes(&self.marker());
            if left.is_empty() {
                break;
            }
            for pid in left {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = &self.dir;
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.cleanup();
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Seconds since the epoch of an RFC 3339 timestamp `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
pub fn parse_ts(ts: &str) -> f64 {
    let b = ts.as_bytes();
    let num = |r: std::ops::Range<usize>| -> i64 {
        ts.get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad timestamp {ts:?}"))
    };
    assert!(b.len() >= 20 && b[10] == b'T', "bad timestamp {ts:?}");
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    let mut frac = 0.0;
    if b[19] == b'.' {
        let end = ts[20..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(ts.len(), |i| 20 + i);
        frac = format!("0.{}", &ts[20..end]).parse().unwrap();
    }
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + frac
}

/// Whether a killed supervisor is completely gone: its leader can show as a zombie while other
/// threads still hold the control socket open (the kernel then queues connections on it).
pub fn supervisor_gone(p: &Project, pid: i32) -> bool {
    !alive(pid) && std::os::unix::net::UnixStream::connect(p.state_dir().join("pypm.sock")).is_err()
}

/// Filters `events` to those named `event` for `app` (and `instance`, when given).
pub fn events_of<'a>(
    events: &'a [Value],
    event: &str,
    app: &str,
    instance: Option<u64>,
) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == event && e["app"] == app)
        .filter(|e| instance.is_none_or(|i| e["instance"].as_u64() == Some(i)))
        .collect()
}

pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o777
}

impl Project {
    /// Saves `pypm.toml` the way many editors do: write a temp file, then rename it over the file.
    pub fn write_config_by_rename(&self, text: &str) {
        let tmp = self.root.join(".pypm.toml.tmp");
        fs::write(&tmp, text).expect("write temp config");
        fs::rename(&tmp, &self.config).expect("rename over pypm.toml");
    }

    /// Waits until `name` runs under a pid other than `old` and `old` is gone; returns the new pid.
    pub fn wait_new_pid(&self, name: &str, old: i32, within: Duration) -> i32 {
        wait_for_showing(
            &format!("`{name}` (pid {old}) to be replaced"),
            within,
            || {
                let new = self.pid_of(name).filter(|&p| p != old && alive(p))?;
                (!alive(old) && self.state_of(name) == "running").then_some(new)
            },
            || self.seen(),
        )
    }

    /// Waits until all `instances` of `app` (`APP.0` …) run under pids not in `old`, and every
    /// pid of `old` is gone; returns the new pids, in instance order.
    pub fn wait_rolled(
        &self,
        app: &str,
        instances: u32,
        old: &[i32],
        within: Duration,
    ) -> Vec<i32> {
        let names: Vec<String> = (0..instances).map(|i| format!("{app}.{i}")).collect();
        wait_for_showing(
            &format!("{app} to be rolled off pids {old:?}"),
            within,
            || {
                let now: Vec<i32> = names.iter().filter_map(|n| self.pid_of(n)).collect();
                let rolled = now.len() == names.len()
                    && now.iter().all(|pid| !old.contains(pid) && alive(*pid))
                    && old.iter().all(|pid| !alive(*pid))
                    && names.iter().all(|n| self.state_of(n) == "running");
                rolled.then_some(now)
            },
            || self.seen(),
        )
    }

    /// Asserts that `name` keeps pid `pid` (alive) for `during`.
    pub fn assert_pid_kept(&self, name: &str, pid: i32, during: Duration) {
        let deadline = Instant::now() + during;
        loop {
            assert_eq!(
                self.pid_of(name),
                Some(pid),
                "`{name}` was restarted: {:#}",
                self.status_json()
            );
            assert!(alive(pid), "`{name}` (pid {pid}) died");
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
