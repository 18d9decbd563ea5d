//! `up -d`, `status --json`, what a child sees, commands without a supervisor, file modes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::*;

/// A service that stays up (the `sleep` child keeps the shell blocked in `wait`).
pub const IDLE: &str = "sleep 1000 &\nwait\n";

#[test]
fn up_d_starts_apps_and_status_json_has_the_documented_fields() {
    let p = Project::new();
    let env_dump = format!(
        "env > \"{}/env.$PYPM_APP.$PYPM_INSTANCE\"\necho out\necho err >&2\n{IDLE}",
        p.marker()
    );
    let api = p.sh("api", &env_dump);
    let solo = p.sh("solo", &env_dump);
    p.write_config(&format!(
        "[apps.api]\ncommand = {api}\ninstances = 2\n\n[apps.solo]\ncommand = {solo}\n"
    ));

    let t0 = Instant::now();
    p.up_d();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "up -d did not return promptly"
    );

    let s = p.status_json();
    let top: BTreeSet<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        top,
        BTreeSet::from(["config_file", "config_error", "instances"]),
        "{s:#}"
    );
    assert_eq!(s["config_error"], serde_json::Value::Null);
    let config_file = s["config_file"].as_str().unwrap();
    assert!(
        config_file.ends_with("pypm.toml"),
        "config_file {config_file:?}"
    );

    let rows = s["instances"].as_array().unwrap();
    let names: BTreeSet<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["api.0", "api.1", "solo"]), "{s:#}");
    let fields = BTreeSet::from([
        "name",
        "app",
        "instance",
        "state",
        "pid",
        "uptime_secs",
        "restarts",
        "cpu_percent",
        "memory_bytes",
        "ready",
        "reason",
        "last_exit",
    ]);
    for r in rows {
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, fields, "row {r:#}");
        let name = r["name"].as_str().unwrap();
        let (app, idx) = match name.split_once('.') {
            Some((a, i)) => (a, i.parse::<u64>().unwrap()),
            None => (name, 0),
        };
        assert_eq!(r["app"], app, "{r:#}");
        assert_eq!(r["instance"].as_u64(), Some(idx), "{r:#}");
        assert_eq!(r["state"], "running", "{r:#}");
        assert_eq!(r["ready"], true, "{r:#}");
        assert_eq!(r["restarts"].as_u64(), Some(0), "{r:#}");
        assert_eq!(r["last_exit"], serde_json::Value::Null, "{r:#}");
        let pid = r["pid"].as_i64().expect("pid") as i32;
        assert!(alive(pid), "pid {pid} of {name} is not alive");
        assert!(r["uptime_secs"].as_f64().is_some(), "{r:#}");
        assert!(r["reason"].is_null(), "{r:#}");
    }

    for (app, idx) in [("api", 0), ("api", 1), ("solo", 0)] {
        let path = p.path(&format!("env.{app}.{idx}"));
        assert!(
            wait_until(Duration::from_secs(5), || std::fs::read_to_string(&path)
                .is_ok_and(|t| t.contains("PYPM_INSTANCE="))),
            "{app}.{idx} did not write its environment"
        );
        let env = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = env.lines().collect();
        assert!(lines.contains(&format!("PYPM_APP={app}").as_str()), "{env}");
        assert!(
            lines.contains(&format!("PYPM_INSTANCE={idx}").as_str()),
            "{env}"
        );
    }

    // With `instances > 1` the log files carry the instance number.
    for f in [
        "api.0.out.log",
        "api.0.err.log",
        "api.1.out.log",
        "api.1.err.log",
        "solo.out.log",
        "solo.err.log",
    ] {
        let path = p.log_dir().join(f);
        assert!(
            wait_until(Duration::from_secs(5), || std::fs::read_to_string(&path)
                .is_ok_and(|t| !t.is_empty())),
            "{f} missing or empty"
        );
    }
    assert!(!p.log_dir().join("api.out.log").exists());

    // `up -d` again applies the (unchanged) file to the running supervisor: nothing restarts.
    let before = p.pids();
    let sup = p.supervisor_pid();
    p.up_d();
    assert_eq!(p.pids(), before);
    assert_eq!(p.supervisor_pid(), sup);
}

#[test]
fn commands_without_a_supervisor_exit_3_and_say_how_to_start_one() {
    let p = Project::new();
    let cmd = p.sh("a", IDLE);
    p.write_config(&format!("[apps.a]\ncommand = {cmd}\n"));
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["restart", "a"],
        &["reload"],
        &["plan"],
        &["plan", "--json"],
        &["inspect", "a"],
    ] {
        let out = p.pypm(args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "pypm {args:?}: {}",
            describe(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("pypm up"), "pypm {args:?}: {}", describe(&out));
    }
    // `plan` still says what `up` would start.
    let plan = String::from_utf8_lossy(&p.pypm(&["plan"]).stdout).into_owned();
    assert!(plan.contains("a: start (new)"), "{plan}");
    let out = p.pypm(&["down"]);
    assert_eq!(out.status.code(), Some(0), "down: {}", describe(&out));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_lowercase();
    assert!(
        said.contains("no supervisor") || said.contains("not running"),
        "down should say nothing runs: {}",
        describe(&out)
    );
}

#[test]
fn state_dir_files_are_private() {
    let p = Project::new();
    let cmd = p.sh("a", IDLE);
    p.write_config(&format!("[apps.a]\ncommand = {cmd}\n"));
    p.up_d();
    let sd = p.state_dir();
    assert_eq!(file_mode(&sd), 0o700, "state_dir");
    for f in ["pypm.sock", "state.json", "events.jsonl"] {
        assert_eq!(file_mode(&sd.join(f)), 0o600, "{f}");
    }
}

/// SPEC §4: own session and process group, stdin from /dev/null, only fds 0–2 open, and Python
/// apps get `PYTHONUNBUFFERED=1`.
#[test]
fn a_python_child_gets_its_own_session_devnull_stdin_and_only_fds_0_to_2() {
    let p = Project::new();
    p.write_script(
        "probe.py",
        r#"import os, time
extra = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
        extra.append(fd)
    except OSError:
        pass
print("extra-fds", extra)
print("stdin", os.readlink("/proc/self/fd/0"))
print("session-leader", os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())
print("unbuffered", os.environ.get("PYTHONUNBUFFERED"))
time.sleep(1000)
"#,
    );
    p.write_config("[apps.probe]\nscript = \"probe.py\"\n");
    p.up_d();
    let log = p.log_dir().join("probe.out.log");
    let done = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("unbuffered"))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        done,
        "print() output did not reach the log while the app runs (PYTHONUNBUFFERED?): {text:?}"
    );
    assert!(text.contains("extra-fds []\n"), "{text}");
    assert!(text.contains("stdin /dev/null\n"), "{text}");
    assert!(text.contains("session-leader True True\n"), "{text}");
    assert!(text.contains("unbuffered 1\n"), "{text}");
}

#[test]
fn up_d_holds_no_pipe_of_the_caller_and_runs_in_a_session_of_its_own() {
    use std::io::Read;
    let p = Project::new();
    let cmd = p.sh("a", IDLE);
    p.write_config(&format!("[apps.a]\ncommand = {cmd}\n"));
    // Like `out=$(pypm up -d)` in a script that also has another descriptor on the same pipe:
    // the caller reads until every writer is gone.
    let up = p.command(&["up", "-d"]);
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec 7>&1; \"$@\" >/dev/null 2>&1; echo up-returned")
        .arg("sh")
        .arg(up.get_program())
        .args(up.get_args())
        .envs(up.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(&p.root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(Duration::from_secs(30));
    let _ = wait_child(&mut child, Duration::from_secs(5));
    let sup = p.supervisor_pid().expect("pypm.pid");
    assert!(
        text.as_ref().is_ok_and(|t| t.contains("up-returned")),
        "the caller's pipe stayed open after `up -d` returned ({text:?}): the supervisor holds it"
    );
    let sid = std::fs::read_to_string(format!("/proc/{sup}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(3)?
                .parse::<i32>()
                .ok()
        });
    assert_eq!(
        sid,
        Some(sup),
        "the supervisor does not lead its own session"
    );
}

#[test]
fn two_files_sharing_a_state_dir_never_control_each_others_supervisor() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    p.write_config(&format!("[apps.a]\ncommand = {a}\n"));
    p.up_d();
    let sup = p.supervisor_pid().expect("pypm.pid");
    let b_cmd = p.sh("b", IDLE);
    let b = p.path("b.toml");
    std::fs::write(&b, format!("[apps.b]\ncommand = {b_cmd}\n")).unwrap();
    let run_b = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pypm"))
            .arg("--config")
            .arg(&b)
            .args(args)
            .current_dir(&p.root)
            .env(MARKER_VAR, p.marker())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for args in [&["status"][..], &["plan"], &["reload"], &["restart", "b"]] {
        let out = run_b(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("pypm.toml"),
            "{args:?} should name the other file: {err}"
        );
    }
    let out = run_b(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(1), "up -d: {}", describe(&out));
    let out = run_b(&["down"]);
    assert_eq!(out.status.code(), Some(0), "down: {}", describe(&out));
    assert!(
        alive(sup),
        "`down` for b.toml stopped the supervisor of pypm.toml"
    );
    assert_eq!(p.state_of("a"), "running");
    assert!(p.procs_with("b.sh").is_empty(), "b was started");
}

#[test]
fn init_writes_the_file_config_names_and_a_closed_pipe_is_no_panic() {
    let p = Project::new();
    let custom = p.path("custom.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pypm"))
        .args(["init", "--config"])
        .arg(&custom)
        .current_dir(&p.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(custom.exists(), "init ignored --config");
    assert!(!p.path("pypm.toml").exists());
    // `pypm check -v | head -1`: the reader goes away early, long before the output ends.
    let apps: String = (0..1500)
        .map(|i| format!("[apps.a{i}]\ncommand = \"sleep 1\"\n"))
        .collect();
    std::fs::write(&custom, apps).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "\"{}\" --config \"{}\" check -v | head -1 >/dev/null",
            env!("CARGO_BIN_EXE_pypm"),
            custom.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
