//! PM2's verbs (`start`, `ls`, `scale`, `set`, `unset`, `stop`, `delete`) edit `pypm.toml` and the
//! running supervisor follows; the file stays the state across `down` / `up -d`.

use std::fs;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::support::*;

/// `app.py`: an HTTP server on the socket pypm passes as fd 3, answering
/// `instance I debug D pid P`.
const APP: &str = r#"
import http.server, os, socket, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("instance %s debug %s pid %d\n" % (os.environ.get("PYPM_INSTANCE"), os.environ.get("DEBUG", "-"), os.getpid())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
srv = S(("127.0.0.1", 0), H, bind_and_activate=False)
srv.socket = socket.socket(fileno=3)
srv.serve_forever()
"#;

/// `pypm ARGS` run in the project directory WITHOUT `--config`: the file is found (or created)
/// by the SPEC §1 lookup, as a user typing in that directory would.
fn pypm_here(p: &Project, args: &[&str]) -> Output {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let err = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pypm"))
        .args(args)
        .current_dir(&p.root)
        .env(MARKER_VAR, p.marker())
        .env("PYPM_LOG", "debug")
        .env_remove("PYPM_CONFIG")
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(err.reopen().expect("reopen"))
        .spawn()
        .expect("spawn pypm");
    let status = wait_child(&mut child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("`pypm {}` did not finish", args.join(" ")));
    Output {
        status,
        stdout: fs::read(out.path()).unwrap_or_default(),
        stderr: fs::read(err.path()).unwrap_or_default(),
    }
}

fn ok_here(p: &Project, args: &[&str]) -> String {
    let out = pypm_here(p, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "`pypm {}`: {}\n--- pypm.log\n{}",
        args.join(" "),
        describe(&out),
        p.supervisor_log_tail()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn file(p: &Project) -> String {
    fs::read_to_string(&p.config).unwrap_or_default()
}

/// Rows of `app` in `status --json`: (name, state, pid).
fn rows(p: &Project, app: &str) -> Vec<(String, String, Option<i32>)> {
    p.status_json()["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter(|r| r["app"] == app)
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["state"].as_str().unwrap_or_default().to_string(),
                r["pid"].as_i64().map(|x| x as i32),
            )
        })
        .collect()
}

fn all_running(p: &Project, app: &str, n: usize) -> bool {
    let r = rows(p, app);
    r.len() == n
        && r.iter()
            .all(|(_, s, pid)| s == "running" && pid.is_some_and(alive))
}

fn pids(p: &Project, app: &str) -> Vec<i32> {
    rows(p, app).into_iter().filter_map(|r| r.2).collect()
}

/// Waits until a request to `port` is answered, returning the body.
fn answer(port: u16) -> String {
    let mut body = String::new();
    let ok = wait_until(Duration::from_secs(20), || {
        match http_get(port, "/", Duration::from_secs(2)) {
            Outcome::Ok(b) => {
                body = b;
                true
            }
            _ => false,
        }
    });
    assert!(ok, "nothing answered on port {port}");
    body
}

#[test]
fn verbs_edit_the_file_and_the_supervisor_follows_across_down_and_up() {
    let p = Project::new();
    p.write_script("app.py", APP);
    let port = free_port();
    let listen = format!("tcp://127.0.0.1:{port}");

    // From a directory holding only app.py: the file is created, a supervisor started.
    let out = ok_here(&p, &["start", "app.py", "-i", "2", "--listen", &listen]);
    let text = file(&p);
    assert!(text.starts_with("#:schema "), "{text}");
    assert!(text.contains("Written by `pypm start`"), "{text}");
    for line in ["[apps.app]", "script = \"app.py\"", "instances = 2"] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        assert!(
            out.contains(&format!("+{line}\n")),
            "diff lacks {line}: {out}"
        );
    }
    assert!(out.contains("app.0") && out.contains("app.1"), "{out}");
    assert!(all_running(&p, "app", 2), "{:#}", p.status_json());
    assert!(answer(port).starts_with("instance "));

    // ls / list are status.
    for verb in ["ls", "list"] {
        let ls = ok_here(&p, &[verb]);
        for name in ["app.0", "app.1"] {
            assert!(
                ls.lines()
                    .any(|l| l.starts_with(name) && l.contains("running")),
                "{verb}: {ls}"
            );
        }
    }

    // scale: a third instance, the first two untouched.
    let before = pids(&p, "app");
    let out = ok_here(&p, &["scale", "app", "3"]);
    assert!(out.contains("-instances = 2\n+instances = 3\n"), "{out}");
    assert!(file(&p).contains("\ninstances = 3\n"));
    assert!(all_running(&p, "app", 3), "{:#}", p.status_json());
    assert_eq!(
        pids(&p, "app")[..2],
        before[..],
        "scale touched running instances"
    );

    // set env.DEBUG=1: the app rolls, every instance has it.
    let old = pids(&p, "app");
    let out = ok_here(&p, &["set", "app", "env.DEBUG=1"]);
    assert!(out.contains("+env = { DEBUG = \"1\" }\n"), "{out}");
    let new = p.wait_rolled("app", 3, &old, Duration::from_secs(30));
    for pid in &new {
        assert_eq!(environ_of(*pid, "DEBUG").as_deref(), Some("1"), "pid {pid}");
    }
    assert!(answer(port).contains("debug 1"));

    // stop: enabled = false, nothing runs.
    let out = ok_here(&p, &["stop", "app"]);
    assert!(out.contains("+enabled = false\n"), "{out}");
    let r = rows(&p, "app");
    assert!(
        r.iter().all(|(_, s, pid)| s == "stopped" && pid.is_none()),
        "{r:?}"
    );
    assert!(new.iter().all(|pid| !alive(*pid)));

    // start APP: enabled again.
    let out = ok_here(&p, &["start", "app"]);
    assert!(out.contains("-enabled = false\n+enabled = true\n"), "{out}");
    assert!(all_running(&p, "app", 3), "{:#}", p.status_json());

    // A reboot-equivalent gives the same state: the file is the state.
    ok_here(&p, &["down"]);
    ok_here(&p, &["up", "-d"]);
    assert!(all_running(&p, "app", 3), "{:#}", p.status_json());
    for pid in pids(&p, "app") {
        assert_eq!(environ_of(pid, "DEBUG").as_deref(), Some("1"));
    }
    assert!(answer(port).contains("debug 1"));

    // delete: the table goes, the instances stop, the rest of the file stays.
    let last = pids(&p, "app");
    let out = ok_here(&p, &["delete", "app"]);
    assert!(out.contains("-[apps.app]\n"), "{out}");
    let text = file(&p);
    assert!(!text.contains("[apps.app]"), "{text}");
    assert!(text.starts_with("#:schema "), "the header was kept: {text}");
    assert!(rows(&p, "app").is_empty(), "{:#}", p.status_json());
    assert!(last.iter().all(|pid| !alive(*pid)));

    ok_here(&p, &["down"]);
    ok_here(&p, &["up", "-d"]);
    assert!(ok_here(&p, &["ls"]).contains("no apps"));
}

#[test]
fn an_invalid_edit_changes_nothing_and_says_where() {
    let p = Project::new();
    p.write_config("# keep me\n[apps.app]\ncommand = \"sleep 300\"   # a sleeper\ninstances=1\n");
    p.up_d();
    let pid = p.pid_of("app").expect("pid");
    let before = fs::read(&p.config).expect("read");

    let out = p.pypm(&["set", "app", "instances=0"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing was written"), "{err}");
    assert!(err.contains("pypm.toml:4:"), "no file:line:col in {err}");

    let out = p.pypm(&["set", "app", "comand=x"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `command`"), "{err}");

    let out = p.pypm(&["unset", "app", "command"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    let out = p.pypm(&["scale", "ap", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `app`"));

    assert_eq!(
        fs::read(&p.config).expect("read"),
        before,
        "the file changed"
    );
    assert_eq!(p.pid_of("app"), Some(pid));
    assert!(p.status_json()["config_error"].is_null());
}

#[test]
fn concurrent_sets_all_land() {
    let p = Project::new();
    p.write_config("[apps.app]\ncommand = \"sleep 300\"\n");
    p.up_d();
    let keys = ["A", "B", "C", "D", "E", "F"];
    let children: Vec<_> = keys
        .iter()
        .map(|k| {
            p.command(&["set", "app", &format!("env.{k}=1"), "--quiet"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        let status = wait_child(&mut c, Duration::from_secs(60)).expect("set finished");
        assert!(status.success(), "a `pypm set` failed");
    }
    let text = file(&p);
    let doc: toml::Table = toml::from_str(&text).expect("valid TOML");
    let env = doc["apps"]["app"]["env"]
        .as_table()
        .expect("env table")
        .clone();
    for k in keys {
        assert_eq!(
            env.get(k).and_then(|v| v.as_str()),
            Some("1"),
            "{k} lost:\n{text}"
        );
    }
    // And the running instance ends up with all of them.
    let ok = wait_until(Duration::from_secs(30), || {
        p.pid_of("app").is_some_and(|pid| {
            keys.iter()
                .all(|k| environ_of(pid, k).as_deref() == Some("1"))
        })
    });
    assert!(ok, "{:#}", p.status_json());
}

#[test]
fn start_exits_1_when_the_app_fails_and_unset_restores_defaults() {
    let p = Project::new();
    p.write_script("bad.py", "raise SystemExit(3)\n");
    let out = pypm_here(&p, &["start", "bad.py", "--restart", "never", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("+++"),
        "--quiet printed the diff: {stdout}"
    );
    assert!(stdout.contains("failed"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad"));
    assert_eq!(p.state_of("bad"), "failed");

    let out = ok_here(&p, &["unset", "bad", "restart"]);
    assert!(out.contains("-restart = \"never\"\n"), "{out}");
    assert!(!file(&p).contains("restart ="));
}

#[test]
fn without_a_supervisor_edits_only_change_the_file() {
    let p = Project::new();
    p.write_config("[apps.app]\ncommand = \"sleep 300\"\n");
    let out = p.pypm_ok(&["set", "app", "memory_max=64M", "restart=on-failure"], 0);
    assert!(out.contains("no supervisor is running"), "{out}");
    let text = file(&p);
    assert!(
        text.contains("memory_max = \"64M\"\nrestart = \"on-failure\"\n"),
        "{text}"
    );
    assert!(p.supervisor_pid().is_none(), "a supervisor was started");
    // `stop --all` too.
    let out = p.pypm_ok(&["stop", "--all"], 0);
    assert!(out.contains("+enabled = false"), "{out}");
}
