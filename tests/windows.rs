//! The Windows integration subset: the real `pypm.exe` against real child processes, run in CI
//! under Wine by `packaging/wine/run-tests` (and as is on a real Windows).
//!
//! No Windows Python exists where these run, so the children are this test executable itself:
//! an app's command is `[this exe, "child_role", "--exact", "--nocapture", …]` and the variable
//! `PYPM_WIN_ROLE` in the app's `env` says what the child does (see [`child_role`]).
//!
//! What Wine does not implement is skipped on Wine only, saying so (see [`on_wine`]); the list
//! is in docs/platforms.md. Every test has its own temp dir (state dir inside), waits on
//! conditions with deadlines, and leaves no process behind ([`Project`]'s `Drop`).

#![cfg(windows)]
// The test asks the OS about processes (is it alive, kill a leftover) through pypm's own edge;
// the only direct call is the console handler of the `ignore-break` child role.
#![allow(unsafe_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pypm::process::{Signal, is_alive, parse_signal, signal_pid, wine_version};
use serde_json::Value;

const ROLE_VAR: &str = "PYPM_WIN_ROLE";
/// Where a `parent` child writes its grandchild's pid.
const PID_FILE_VAR: &str = "PYPM_WIN_PID_FILE";
/// Any one `pypm` command; Wine starts processes slowly.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Not a test: the entry point of the child processes the tests start (this executable run again
/// with `PYPM_WIN_ROLE` set). Without the variable it returns at once.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let pid = std::process::id();
    match role.as_str() {
        // Says hello, then lives (bounded: nothing a test starts may run forever).
        "serve" => {
            say(&format!("hello from {pid}"));
            idle();
        }
        // Runs a little, then fails.
        "crash" => {
            say(&format!("crashing {pid}"));
            std::thread::sleep(Duration::from_millis(100));
            std::process::exit(3);
        }
        // Ignores CTRL_BREAK, so only the kill after `stop_timeout` stops it.
        "ignore-break" => {
            ignore_console_events();
            say(&format!("ignoring breaks {pid}"));
            idle();
        }
        // Starts a grandchild (this exe, role `serve`), records its pid, then lives.
        "parent" => {
            let me = std::env::current_exe().expect("current exe");
            let mut child = Command::new(me)
                .args(child_args())
                .env(ROLE_VAR, "serve")
                .stdin(Stdio::null())
                .spawn()
                .expect("start the grandchild");
            let file = std::env::var(PID_FILE_VAR).expect("pid file variable");
            fs::write(&file, child.id().to_string()).expect("write the grandchild's pid");
            say(&format!("parent {pid} of {}", child.id()));
            std::thread::spawn(move || child.wait());
            idle();
        }
        // Says what its job (the instance's Job Object) limits, then lives.
        "limits" => {
            match pypm::process::job::own_job_limits() {
                Ok(l) => say(&format!(
                    "job limits memory_max={:?} cpu_rate={:?} kill_on_close={}",
                    l.memory_max, l.cpu_rate, l.kill_on_close
                )),
                Err(e) => say(&format!("job limits unreadable: {e}")),
            }
            idle();
        }
        // Commits memory 8 MiB at a time (touched) up to 96 MiB: says where an allocation
        // was refused and exits 7, or that none was and lives.
        "hog" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            for mib in (8..=96).step_by(8) {
                let mut block: Vec<u8> = Vec::new();
                if block.try_reserve_exact(8 << 20).is_err() {
                    say(&format!("allocation refused at {mib} MiB"));
                    std::process::exit(7);
                }
                block.resize(8 << 20, 1);
                held.push(block);
            }
            say(&format!(
                "no allocation refused up to 96 MiB ({} blocks)",
                held.len()
            ));
            idle();
        }
        other => panic!("unknown child role `{other}`"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn idle() -> ! {
    std::thread::sleep(Duration::from_secs(300));
    std::process::exit(0);
}

fn ignore_console_events() {
    use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
    unsafe extern "system" fn swallow(_event: u32) -> i32 {
        1
    }
    // SAFETY: a handler with the signature Windows expects, living as long as the process.
    unsafe { SetConsoleCtrlHandler(Some(swallow), 1) };
}

/// The arguments that make this executable run only [`child_role`], printing straight through.
fn child_args() -> [&'static str; 5] {
    [
        "child_role",
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ]
}

/// Under Wine: `Some(version)`. A test of something Wine lacks prints why and returns.
fn on_wine() -> Option<String> {
    wine_version()
}

fn skip_on_wine(test: &str, why: &str) -> bool {
    match on_wine() {
        Some(v) => {
            eprintln!("{test}: skipped on Wine {v}: {why}");
            true
        }
        None => false,
    }
}

/// A temp dir with a `pypm.toml`; `Drop` runs `pypm down` and kills every pid the test saw.
struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    seen: std::cell::RefCell<Vec<i32>>,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("pypm-win-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        let config = root.join("pypm.toml");
        Project {
            _dir: dir,
            root,
            config,
            seen: Default::default(),
        }
    }

    /// A TOML app table running this executable in `role`, plus `extra` lines.
    fn app(&self, name: &str, role: &str, extra: &str) -> String {
        let exe = std::env::current_exe().expect("current exe");
        let mut cmd = vec![exe.display().to_string()];
        cmd.extend(child_args().iter().map(|s| s.to_string()));
        format!(
            "[apps.{name}]\ncommand = {}\nenv = {{ {ROLE_VAR} = \"{role}\" }}\n{extra}\n",
            serde_json::to_string(&cmd).expect("json")
        )
    }

    fn write_config(&self, text: &str) {
        fs::write(&self.config, text).expect("write pypm.toml");
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".pypm")
    }

    fn pypm(&self, args: &[&str]) -> Output {
        let out_path = self.root.join(".out");
        let err_path = self.root.join(".err");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pypm"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.root)
            .env("PYPM_LOG", "debug")
            .env_remove("PYPM_CONFIG")
            .env_remove(ROLE_VAR)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).expect("stdout file"))
            .stderr(fs::File::create(&err_path).expect("stderr file"))
            .spawn()
            .expect("spawn pypm");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for pypm") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "`pypm {}` did not finish in {COMMAND_TIMEOUT:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: fs::read(&out_path).unwrap_or_default(),
            stderr: fs::read(&err_path).unwrap_or_default(),
        }
    }

    fn pypm_ok(&self, args: &[&str]) -> String {
        let out = self.pypm(args);
        assert!(
            out.status.success(),
            "`pypm {}` failed: {}\n--- pypm.log\n{}",
            args.join(" "),
            describe(&out),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.state_dir().join("pypm.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn up_d(&self) {
        self.pypm_ok(&["up", "-d", "--wait", "30s"]);
    }

    fn status(&self) -> Value {
        let out = self.pypm_ok(&["status", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
    }

    fn row(&self, name: &str) -> Value {
        let s = self.status();
        let row = s["instances"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no instance `{name}` in {s:#}"));
        if let Some(pid) = row["pid"].as_i64() {
            self.seen.borrow_mut().push(pid as i32);
        }
        row
    }

    fn pid(&self, name: &str) -> Option<i32> {
        self.row(name)["pid"].as_i64().map(|p| p as i32)
    }

    /// Polls `status` until `ok(row)`, failing after `limit`.
    fn wait_row(
        &self,
        name: &str,
        limit: Duration,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let row = self.row(name);
            if ok(&row) {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "`{name}` not {what} within {limit:?}: {row:#}\n--- pypm.log\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_running(&self, name: &str) -> i32 {
        let row = self.wait_row(name, Duration::from_secs(30), "running with a pid", |r| {
            r["state"] == "running" && r["pid"].as_i64().is_some()
        });
        row["pid"].as_i64().map(|p| p as i32).expect("pid")
    }

    fn events(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.state_dir().join("events.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn supervisor_pid(&self) -> Option<i32> {
        fs::read_to_string(self.state_dir().join("pypm.pid"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let daemon = self.supervisor_pid();
        if self.config.exists() {
            let _ = self.pypm(&["down"]);
        }
        let mut pids = self.seen.borrow().clone();
        pids.extend(daemon);
        if let Ok(kill) = parse_signal("KILL") {
            for pid in pids {
                if is_alive(pid) {
                    let _ = signal_pid(pid, kill);
                }
            }
        }
    }
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls `ok` until it holds, failing with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_signal() -> Signal {
    parse_signal("KILL").expect("KILL is a signal name")
}

/// Seconds since the epoch of an event timestamp (`2026-12-07T17:18:22.123Z`, RFC 3339).
fn ts_seconds(ts: &str) -> f64 {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => t.timestamp_millis() as f64 / 1000.0,
        Err(e) => panic!("bad timestamp {ts:?}: {e}"),
    }
}

#[test]
fn up_status_logs_down() {
    let p = Project::new();
    p.write_config(&p.app("web", "serve", ""));
    p.up_d();
    let pid = p.wait_running("web");
    assert!(is_alive(pid), "status says pid {pid} but it is not alive");

    let daemon = p.supervisor_pid().expect("pypm.pid written");
    assert!(is_alive(daemon), "the supervisor {daemon} is not alive");

    let want = format!("hello from {pid}");
    wait_until(
        Duration::from_secs(20),
        "`pypm logs web` shows the child's line",
        || p.pypm_ok(&["logs", "web", "-n", "50"]).contains(&want),
    );

    p.pypm_ok(&["down"]);
    wait_until(
        Duration::from_secs(20),
        "the app's process is gone after `down`",
        || !is_alive(pid),
    );
    wait_until(
        Duration::from_secs(20),
        "the supervisor is gone after `down`",
        || !is_alive(daemon),
    );
    let out = p.pypm(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "status after down: {}",
        describe(&out)
    );
}

#[test]
fn a_crashing_app_is_restarted_with_growing_delays() {
    let p = Project::new();
    p.write_config(&p.app(
        "crash",
        "crash",
        "restart_delay = \"200ms\"\nrestart_delay_max = \"2s\"\nmax_restarts = 3\n\
         restart_window = \"60s\"\nmin_uptime = \"5s\"\n",
    ));
    let _ = p.pypm(&["up", "-d", "--wait", "30s"]);
    let row = p.wait_row("crash", Duration::from_secs(40), "failed", |r| {
        r["state"] == "failed"
    });
    assert_eq!(row["restarts"].as_u64(), Some(3), "{row:#}");
    assert_eq!(row["last_exit"]["code"].as_i64(), Some(3), "{row:#}");

    let events = p.events();
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "started" && e["app"] == "crash")
        .collect();
    assert_eq!(
        started.len(),
        4,
        "the first run and 3 restarts: {events:#?}"
    );
    let pids: std::collections::HashSet<i64> =
        started.iter().filter_map(|e| e["pid"].as_i64()).collect();
    assert_eq!(
        pids.len(),
        4,
        "every restart is a new process: {started:#?}"
    );
    let times: Vec<f64> = started
        .iter()
        .map(|e| ts_seconds(e["ts"].as_str().unwrap_or_default()))
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Nominal delays 200, 400, 800 ms after a run of about 100 ms.
    for (gap, nominal) in gaps.iter().zip([0.2, 0.4, 0.8]) {
        assert!(
            *gap >= nominal,
            "gap {gap:.3}s shorter than the {nominal}s delay: {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0] + 0.3, "the delays do not grow: {gaps:?}");
}

#[test]
fn stop_ends_an_app_that_ignores_the_break_with_the_kill() {
    let p = Project::new();
    p.write_config(&p.app("stubborn", "ignore-break", "stop_timeout = \"1500ms\"\n"));
    p.up_d();
    let pid = p.wait_running("stubborn");
    let t0 = Instant::now();
    p.pypm_ok(&["stop", "stubborn"]);
    let row = p.wait_row("stubborn", Duration::from_secs(30), "stopped", |r| {
        r["state"] == "stopped" && r["pid"].is_null()
    });
    let took = t0.elapsed();
    assert!(!is_alive(pid), "pid {pid} outlived its stop");
    let exit = row["last_exit"].to_string();
    assert!(exit.contains("SIGKILL"), "not ended by the kill: {row:#}");
    if on_wine().is_some() {
        // Wine cannot deliver the CTRL_BREAK (GenerateConsoleCtrlEvent fails), and a stop signal
        // that cannot be sent is followed by the kill at once, not after stop_timeout.
        return;
    }
    assert!(
        took >= Duration::from_millis(1400),
        "stopped after {took:?}, before the 1.5 s stop_timeout: the break was not ignored?\n{}",
        p.log_tail()
    );
}

#[test]
fn stop_with_ctrl_break_ends_the_app_before_stop_timeout() {
    if skip_on_wine(
        "stop_with_ctrl_break_ends_the_app_before_stop_timeout",
        "GenerateConsoleCtrlEvent fails (os error 6), so a stop always ends with the kill",
    ) {
        return;
    }
    let p = Project::new();
    p.write_config(&p.app("web", "serve", "stop_timeout = \"30s\"\n"));
    p.up_d();
    let pid = p.wait_running("web");
    let t0 = Instant::now();
    p.pypm_ok(&["stop", "web"]);
    p.wait_row("web", Duration::from_secs(20), "stopped", |r| {
        r["state"] == "stopped"
    });
    assert!(!is_alive(pid), "pid {pid} outlived its stop");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "CTRL_BREAK did not end the app"
    );
}

#[test]
fn stopping_an_app_kills_its_grandchild_through_the_job() {
    let p = Project::new();
    let pid_file = p.root.join("grandchild.pid");
    let extra = format!(
        "stop_timeout = \"1s\"\nenv = {{ {ROLE_VAR} = \"parent\", {PID_FILE_VAR} = {} }}\n",
        serde_json::to_string(&pid_file.display().to_string()).expect("json")
    );
    // `app` writes its own `env`; this one needs two variables, so the table is written here.
    let text = p
        .app("tree", "parent", "")
        .replace(&format!("env = {{ {ROLE_VAR} = \"parent\" }}\n"), "")
        + &extra;
    p.write_config(&text);
    p.up_d();
    let parent = p.wait_running("tree");
    let mut grandchild = None;
    wait_until(
        Duration::from_secs(20),
        "the grandchild's pid is written",
        || {
            grandchild = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            grandchild.is_some()
        },
    );
    let grandchild = grandchild.expect("grandchild pid");
    p.seen.borrow_mut().push(grandchild);
    assert!(
        is_alive(grandchild),
        "the grandchild {grandchild} is not running"
    );

    p.pypm_ok(&["stop", "tree"]);
    wait_until(
        Duration::from_secs(30),
        "parent and grandchild are gone after stop",
        || !is_alive(parent) && !is_alive(grandchild),
    );
}

#[test]
fn a_supervisor_killed_outright_takes_its_apps_with_it() {
    let p = Project::new();
    p.write_config(&p.app("web", "serve", ""));
    p.up_d();
    let pid = p.wait_running("web");
    let daemon = p.supervisor_pid().expect("pypm.pid");
    signal_pid(daemon, kill_signal()).expect("kill the supervisor");
    // JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: the last handle of the job closes with the supervisor.
    wait_until(
        Duration::from_secs(20),
        "the app dies with its killed supervisor",
        || !is_alive(pid),
    );
}

#[test]
fn reload_restarts_only_what_changed() {
    let p = Project::new();
    let keep = p.app("keep", "serve", "");
    let change = p.app("change", "serve", "stop_timeout = \"1s\"\n");
    p.write_config(&format!("{keep}\n{change}"));
    p.up_d();
    let keep_pid = p.wait_running("keep");
    let change_pid = p.wait_running("change");

    let changed = p.app(
        "change",
        "serve",
        "stop_timeout = \"1s\"\nrestart_delay = \"300ms\"\n",
    );
    let added = p.app("added", "serve", "");
    p.write_config(&format!("{keep}\n{changed}\n{added}"));
    p.pypm_ok(&["reload"]);

    let added_pid = p.wait_running("added");
    let row = p.wait_row("change", Duration::from_secs(30), "restarted", |r| {
        r["state"] == "running" && r["pid"].as_i64().is_some_and(|x| x as i32 != change_pid)
    });
    assert!(
        !is_alive(change_pid),
        "the changed app's old process {change_pid} lives on"
    );
    assert_eq!(
        p.pid("keep"),
        Some(keep_pid),
        "the unchanged app was restarted"
    );
    assert!(is_alive(keep_pid));
    assert!(is_alive(added_pid));
    assert_ne!(row["pid"].as_i64(), Some(change_pid as i64));
}

#[test]
fn the_control_channel_refuses_a_connection_without_the_token() {
    let p = Project::new();
    p.write_config(&p.app("web", "serve", ""));
    p.up_d();
    p.wait_running("web");

    let text = fs::read_to_string(p.state_dir().join("pypm.sock")).expect("read pypm.sock");
    let mut parts = text.split_whitespace();
    let addr = parts.next().expect("an address in pypm.sock");
    let token = parts.next().expect("a token in pypm.sock");
    assert_eq!(token.len(), 32, "a 128-bit token in hex: {text:?}");
    assert!(addr.starts_with("127.0.0.1:"), "loopback only: {addr}");

    // A wrong token of the right length, then a request: closed without a byte of answer.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let wrong: String = token
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let _ = s.write_all(wrong.as_bytes());
    let _ = s.write_all(b"{\"version\":1,\"request\":\"status\"}\n");
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => assert!(answer.is_empty(), "answered without the token: {answer:?}"),
        Err(e) => assert_ne!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "the connection was neither answered nor closed"
        ),
    }
    // The right token still works (the CLI sends it).
    p.status();
}

#[test]
fn check_refuses_keys_with_no_windows_meaning() {
    let p = Project::new();
    let apps = [
        p.app("a", "serve", "user = \"nobody\"\n"),
        p.app("b", "serve", "nofile = 1024\n"),
        p.app("c", "serve", "nice = 5\n"),
        p.app("d", "serve", "listen = [\"tcp://127.0.0.1:0\"]\n"),
    ];
    p.write_config(&apps.join("\n"));
    let out = p.pypm(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for (key, app) in [
        ("user", "a"),
        ("nofile", "b"),
        ("nice", "c"),
        ("listen", "d"),
    ] {
        let want = format!("`{key}` in app `{app}` is not supported on Windows");
        assert!(err.contains(&want), "no `{want}` in:\n{err}");
    }
    // And nothing was started.
    assert!(!p.state_dir().join("pypm.pid").exists());
}

/// `.bat` and `.cmd` commands run through `cmd.exe /c` (std's batch-file path): the arguments
/// reach the script quoted for cmd, so `&` in one is not a second command.
#[test]
fn bat_and_cmd_scripts_run_through_cmd_with_their_arguments() {
    let p = Project::new();
    let exe = std::env::current_exe().expect("current exe");
    let child = format!("\"{}\" {}", exe.display(), child_args().join(" "));
    fs::write(
        p.root.join("serve.bat"),
        format!("@echo off\r\necho bat got [%1] [%2] [%3]\r\n{child}\r\n"),
    )
    .expect("write serve.bat");
    fs::write(
        p.root.join("serve.cmd"),
        format!("@echo off\r\necho cmd got [%~1]\r\n{child}\r\n"),
    )
    .expect("write serve.cmd");
    let app = |name: &str, command: &[&str]| {
        format!(
            "[apps.{name}]\ncommand = {}\nenv = {{ {ROLE_VAR} = \"serve\" }}\n",
            serde_json::to_string(command).expect("json")
        )
    };
    p.write_config(&format!(
        "{}{}",
        app("bat", &[".\\serve.bat", "one", "a b", "x&y"]),
        app("cmd", &[".\\serve.cmd", "two words"])
    ));
    p.up_d();
    p.wait_running("bat");
    p.wait_running("cmd");
    wait_until(
        Duration::from_secs(20),
        "the .bat echoes its arguments, `&` included",
        || {
            p.pypm_ok(&["logs", "bat", "-n", "50"])
                .contains("bat got [one] [\"a b\"] [\"x&y\"]")
        },
    );
    wait_until(
        Duration::from_secs(20),
        "the .cmd echoes its argument",
        || {
            p.pypm_ok(&["logs", "cmd", "-n", "50"])
                .contains("cmd got [two words]")
        },
    );
    let logs = p.pypm_ok(&["logs", "bat", "-n", "50"]);
    assert!(!logs.contains("is not recognized"), "{logs}");
    assert!(
        logs.contains("hello from"),
        "the script's child ran: {logs}"
    );
}

/// `memory_max` and `cpu_max` are limits of the instance's Job Object, and `inspect` says so.
/// The app reads its own job's limits back (`QueryInformationJobObject`). Whether an allocation
/// over `memory_max` is refused is checked where the system enforces it; Wine 8.0 keeps the
/// memory limit without enforcing it and refuses the CPU rate (`ERROR_INVALID_PARAMETER`): the
/// test then checks what Wine keeps and says what it skipped.
#[test]
fn memory_max_and_cpu_max_are_job_object_limits() {
    let p = Project::new();
    // Wine's own working set is over 100M: the limits leave room for it.
    p.write_config(&format!(
        "{}{}",
        p.app("limited", "limits", "memory_max = \"1G\"\ncpu_max = 0.5"),
        p.app("hog", "hog", "memory_max = \"48M\"\nrestart = \"never\"")
    ));
    // `up` fails when the hog has failed by then (its limit is meant to be hit).
    let out = p.pypm(&["up", "-d"]);
    let said = describe(&out);
    assert!(
        out.status.success() || said.contains("failed: hog"),
        "up -d: {said}"
    );
    let pid = p.wait_running("limited");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rate = pypm::process::job_cpu_rate(0.5, cpus);
    // What the supervisor read back from the job (`QueryInformationJobObject`) after setting it.
    let prefix = format!("pid {pid}: job object limits ");
    let mut kept = String::new();
    wait_until(
        Duration::from_secs(20),
        "pypm.log has the job's limits",
        || {
            let log = fs::read_to_string(p.state_dir().join("pypm.log")).unwrap_or_default();
            kept = log
                .lines()
                .find_map(|l| l.split_once(&prefix).map(|(_, k)| k.to_string()))
                .unwrap_or_default();
            !kept.is_empty()
        },
    );
    let log = fs::read_to_string(p.state_dir().join("pypm.log")).unwrap_or_default();
    if kept.contains("kill_on_close=false") {
        // Wine 8.0's QueryInformationJobObject answers all zeros (not even the kill-on-close
        // flag that it does honour): only that setting the memory limit succeeded is checked.
        assert!(
            on_wine().is_some(),
            "the job lost its kill-on-close flag: {kept}"
        );
        assert!(!log.contains("cannot set memory_max"), "{log}");
        eprintln!(
            "memory_max_and_cpu_max: Wine reads no job limits back ({kept}); only that setting memory_max succeeded is checked"
        );
    } else {
        assert!(
            kept.contains(&format!("memory_max=Some({})", 1u64 << 30)),
            "{kept}"
        );
    }
    if !kept.contains(&format!("cpu_rate=Some({rate})")) {
        assert!(on_wine().is_some(), "cpu_rate {rate} expected: {kept}");
        assert!(log.contains("cannot set cpu_max"), "{log}");
        eprintln!("memory_max_and_cpu_max: Wine refuses a job's CPU rate (os error 87)");
    }
    // The app itself reads its job's limits (Wine answers nothing for "this process's job").
    if on_wine().is_none() {
        let mut line = String::new();
        wait_until(
            Duration::from_secs(20),
            "the app reports its job's limits",
            || {
                let logs = p.pypm_ok(&["logs", "limited", "-n", "50"]);
                line = logs
                    .lines()
                    .find(|l| l.contains("job limits"))
                    .unwrap_or_default()
                    .to_string();
                !line.is_empty()
            },
        );
        let want = format!(
            "job limits memory_max=Some({}) cpu_rate=Some({rate}) kill_on_close=true",
            1u64 << 30
        );
        assert!(line.contains(&want), "{line}");
    }

    let inspect = p.pypm_ok(&["inspect", "limited"]);
    assert!(
        inspect.contains("1.0G: kernel-enforced by the instance's Job Object"),
        "{inspect}"
    );
    assert!(
        inspect.contains(&format!(
            "0.5 cores: kernel-enforced by the instance's Job Object (CPU rate hard cap {rate} of 10000"
        )),
        "{inspect}"
    );

    // The hog is refused an allocation at most at 48 MiB (Windows), or commits past it and is
    // then stopped by the supervisor's sampling (Wine: the job does not enforce the limit).
    let mut hog = String::new();
    wait_until(
        Duration::from_secs(30),
        "the hog is refused or stopped",
        || {
            hog = p.pypm_ok(&["logs", "hog", "-n", "50"]);
            hog.contains("allocation refused at") || p.row("hog")["state"] == "failed"
        },
    );
    match hog
        .split("allocation refused at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
    {
        Some(mib) => {
            assert!(mib <= 48, "refused only at {mib} MiB: {hog}");
            // The exit after the refusal is reported as the memory limit's
            // (JOB_OBJECT_MSG_JOB_MEMORY_LIMIT on the jobs' completion port).
            wait_until(Duration::from_secs(20), "a memory_limit event", || {
                p.events().iter().any(|e| {
                    e["event"] == "memory_limit"
                        && e.to_string().contains("Job Object refused memory")
                })
            });
        }
        None => {
            assert!(
                on_wine().is_some(),
                "memory_max not enforced by the job: {hog}"
            );
            let events = p.events();
            assert!(
                events.iter().any(|e| e["event"] == "memory_limit"),
                "stopped by sampling instead: {events:?}"
            );
            eprintln!(
                "memory_max_and_cpu_max: Wine does not enforce a job's memory limit (sampling did)"
            );
        }
    }
}

/// The token file is the current user's alone: a protected DACL (nothing inherited) with one
/// entry, full access for the user's SID.
#[test]
fn the_token_file_is_readable_by_the_current_user_only() {
    let p = Project::new();
    p.write_config(&p.app("web", "serve", ""));
    p.up_d();
    p.wait_running("web");
    let sock = p.state_dir().join("pypm.sock");
    let dacl = pypm::process::acl::file_dacl_sddl(&sock).expect("read the token file's DACL");
    let want = pypm::process::acl::owner_only_sddl().expect("the current user's SID");
    assert!(want.starts_with("D:P(A;;FA;;;S-1-"), "{want}");
    if on_wine().is_some() {
        // Wine keeps no security descriptor of its own for a file: it turns the DACL into the
        // Unix mode bits and reads them back as SDDL with a SYSTEM entry. What it can show is
        // that nobody else is let in (a file created the usual way has an Everyone entry).
        let sid = want
            .trim_start_matches("D:P(A;;FA;;;")
            .trim_end_matches(')');
        assert!(dacl.contains(&format!("(A;;FA;;;{sid})")), "{dacl}");
        for other in [";WD)", ";BU)", ";AU)", ";BA)", ";IU)"] {
            assert!(
                !dacl.contains(other),
                "`{other}` may read the token: {dacl}"
            );
        }
        eprintln!("the_token_file: on Wine the DACL reads back as {dacl} (not {want})");
    } else {
        assert_eq!(dacl, want, "the DACL of {}", sock.display());
    }
    // The CLI (the same user) still reads it.
    p.pypm_ok(&["status"]);
}
