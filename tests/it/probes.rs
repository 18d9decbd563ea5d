//! Readiness and liveness probes: each kind keeps an instance `starting` until its condition holds,
//! a never-ready instance fails, failing health checks restart it, and `depends_on = "ready"` waits.

use std::fs;
use std::time::Duration;

use crate::basics::IDLE;
use crate::support::*;

/// `probe_fixture.py MODE FLAG [PORT]`: becomes ready in the way MODE names only once FLAG exists.
const FIXTURE: &str = r#"
import os, socket, sys, time
mode, flag = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 0

def wait_flag():
    while not os.path.exists(flag):
        time.sleep(0.02)

if mode == "http":
    # Answers at once, but 503 until the flag exists.
    from http.server import BaseHTTPRequestHandler, HTTPServer
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/health" and os.path.exists(flag) else 503
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
        def log_message(self, *a):
            pass
    HTTPServer(("127.0.0.1", port), H).serve_forever()
elif mode == "tcp":
    wait_flag()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.close()
elif mode == "log":
    print("warming up", flush=True)
    wait_flag()
    print("server is READY now", flush=True)
elif mode == "notify":
    wait_flag()
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    n.sendto(b"STATUS=warm\nREADY=1", addr)
while True:
    time.sleep(1)
"#;

fn fixture_cmd(p: &Project, args: &[&str]) -> String {
    let script = p.write_script("probe_fixture.py", FIXTURE);
    let mut argv = vec!["python3".to_string(), script];
    argv.extend(args.iter().map(|s| s.to_string()));
    serde_json::to_string(&argv).unwrap()
}

#[test]
fn each_probe_kind_keeps_the_instance_starting_until_its_condition_holds() {
    let p = Project::new();
    let flag = |kind: &str| p.path(&format!("{kind}.flag")).display().to_string();
    let (http_port, tcp_port) = (free_port(), free_port());
    let http_port_s = http_port.to_string();
    let tcp_port_s = tcp_port.to_string();
    let exec_app = p.sh("exec_app", IDLE);
    let mut conf = String::new();
    let apps: Vec<(&str, String, String)> = vec![
        (
            "http",
            fixture_cmd(&p, &["http", &flag("http"), &http_port_s]),
            format!("http = \"http://127.0.0.1:{http_port}/health\""),
        ),
        (
            "tcp",
            fixture_cmd(&p, &["tcp", &flag("tcp"), &tcp_port_s]),
            format!("tcp = \"127.0.0.1:{tcp_port}\""),
        ),
        (
            "exec",
            exec_app,
            format!(
                "exec = {}",
                serde_json::to_string(&format!("test -f {}", flag("exec"))).unwrap()
            ),
        ),
        (
            "log",
            fixture_cmd(&p, &["log", &flag("log")]),
            "log = \"is READY n[o]w$\"".to_string(),
        ),
        (
            "notify",
            fixture_cmd(&p, &["notify", &flag("notify")]),
            "notify = true".to_string(),
        ),
    ];
    for (name, cmd, probe) in &apps {
        conf.push_str(&format!(
            "[apps.{name}]\ncommand = {cmd}\n\n[apps.{name}.ready]\n{probe}\ninterval = \"100ms\"\n\n"
        ));
    }
    p.write_config(&conf);
    // Returns after 1 s with everything still starting (exit 0: nothing failed).
    p.pypm_ok(&["up", "-d", "--wait", "1s"], 0);

    let names: Vec<&str> = apps.iter().map(|(n, _, _)| *n).collect();
    let mut pids = std::collections::HashMap::new();
    for name in &names {
        let row = p.row(name);
        assert_eq!(row["state"], "starting", "{row:#}");
        assert_eq!(row["ready"], false, "{row:#}");
        pids.insert(*name, row["pid"].as_i64().expect("a starting pid"));
    }
    // `inspect` shows each probe with its interval and timeout.
    let shown = p.pypm_ok(&["inspect", "http"], 0);
    let want = format!("ready: http http://127.0.0.1:{http_port}/health, every 100ms, timeout 60s");
    assert!(shown.contains(&want), "{shown}");
    // Several probe intervals later, still not ready. A sleep, not a poll: it proves something
    // does not happen.
    std::thread::sleep(Duration::from_millis(500));

    for (i, name) in names.iter().enumerate() {
        for later in &names[i..] {
            let row = p.row(later);
            assert_eq!(
                (row["state"].as_str(), row["ready"].as_bool()),
                (Some("starting"), Some(false)),
                "`{later}` is ready before its flag exists: {row:#}"
            );
        }
        fs::write(flag(name), "").unwrap();
        let row = p.wait_state(name, "running", Duration::from_secs(10));
        assert_eq!(row["ready"], true, "{row:#}");
        assert_eq!(
            row["pid"].as_i64(),
            Some(pids[name]),
            "`{name}` was restarted"
        );
        let events = p.events();
        assert_eq!(
            events_of(&events, "ready", name, None).len(),
            1,
            "one `ready` event for `{name}`: {events:#?}"
        );
    }
}

#[test]
fn an_instance_never_ready_within_timeout_is_restarted_then_failed() {
    let p = Project::new();
    let never = p.sh("never", IDLE);
    p.write_config(&format!(
        "[apps.never]\ncommand = {never}\nrestart_delay = \"100ms\"\nmax_restarts = 1\n\n\
         [apps.never.ready]\nexec = \"false\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n"
    ));
    let out = p.pypm(&["up", "-d", "--wait", "1s"]);
    assert_ne!(out.status.code(), Some(2), "{}", describe(&out));
    let row = p.wait_state("never", "failed", Duration::from_secs(15));
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not ready"), "reason: {row:#}");
    let events = p.events();
    let started = events_of(&events, "started", "never", None);
    assert_eq!(started.len(), 2, "one start and one restart: {events:#?}");
    assert!(events_of(&events, "ready", "never", None).is_empty());
    // The second start came at least a timeout after the first.
    let t = |e: &serde_json::Value| parse_ts(e["ts"].as_str().unwrap());
    assert!(t(started[1]) - t(started[0]) >= 0.95, "{events:#?}");
    assert!(
        !events_of(&events, "failed", "never", None).is_empty(),
        "no failed event: {events:#?}"
    );
    assert!(
        p.procs_with("never.sh").is_empty(),
        "the failed app still runs"
    );
}

#[test]
fn failing_health_checks_restart_the_instance_with_an_unhealthy_event() {
    let p = Project::new();
    let app = p.sh("app", IDLE);
    let sick = p.path("sick").display().to_string();
    p.write_config(&format!(
        "[apps.app]\ncommand = {app}\n\n[apps.app.health]\nexec = {}\ninterval = \"200ms\"\nfailures = 2\n",
        serde_json::to_string(&format!("test ! -f {sick}")).unwrap()
    ));
    p.up_d();
    let pid = p.pid_of("app").unwrap();
    // Passing checks leave it alone.
    p.assert_pid_kept("app", pid, Duration::from_millis(700));
    assert!(events_of(&p.events(), "unhealthy", "app", None).is_empty());

    fs::write(&sick, "").unwrap();
    let ok = wait_until(Duration::from_secs(10), || {
        !events_of(&p.events(), "unhealthy", "app", None).is_empty()
    });
    assert!(ok, "no unhealthy event: {:#?}", p.events());
    let new = p.wait_new_pid("app", pid, Duration::from_secs(10));
    fs::remove_file(&sick).unwrap();
    let events = p.events();
    let unhealthy = events_of(&events, "unhealthy", "app", None);
    assert_eq!(
        unhealthy[0]["pid"].as_i64(),
        Some(pid as i64),
        "{events:#?}"
    );
    // Healthy again: the replacement stays (watched all along, not only after a pause).
    p.assert_pid_kept("app", new, Duration::from_secs(1));
}

#[test]
fn a_dependency_that_never_becomes_ready_keeps_the_dependent_waiting() {
    let p = Project::new();
    let db = p.sh("db", IDLE);
    let web = p.sh("web", IDLE);
    p.write_config(&format!(
        "[apps.web]\ncommand = {web}\ndepends_on = {{ db = \"ready\" }}\n\n\
         [apps.db]\ncommand = {db}\n\n[apps.db.ready]\nexec = \"false\"\ninterval = \"100ms\"\n"
    ));
    p.pypm_ok(&["up", "-d", "--wait", "1s"], 0);
    p.wait_state("db", "starting", Duration::from_secs(5));
    // Several failed probes of `db` later, `web` still waits. A sleep, not a poll: it proves
    // something does not happen.
    std::thread::sleep(Duration::from_millis(700));
    let row = p.row("web");
    assert_eq!(row["state"], "waiting", "{row:#}");
    assert_eq!(row["pid"], serde_json::Value::Null, "{row:#}");
    assert!(
        row["reason"].as_str().is_some_and(|r| r.contains("db")),
        "the reason should name `db`: {row:#}"
    );
    assert!(events_of(&p.events(), "started", "web", None).is_empty());
    assert!(p.procs_with("web.sh").is_empty(), "web runs");
}

#[test]
fn a_ready_timeout_stops_the_instance_with_its_stop_signal_before_sigkill() {
    let p = Project::new();
    let got = p.path("got-term").display().to_string();
    let app = p.sh(
        "app",
        &format!("trap 'echo TERM > \"{got}\"; exit 0' TERM\nwhile :; do sleep 0.1; done\n"),
    );
    p.write_config(&format!(
        "[apps.app]\ncommand = {app}\nmax_restarts = 0\nstop_timeout = \"5s\"\n\n\
         [apps.app.ready]\nexec = \"false\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n"
    ));
    let _ = p.pypm(&["up", "-d", "--wait", "1s"]);
    let row = p.wait_state("app", "failed", Duration::from_secs(10));
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not ready within 1s"), "{row:#}");
    assert!(
        fs::read_to_string(&got).is_ok_and(|t| t.contains("TERM")),
        "the app never got SIGTERM: {row:#}"
    );
    // It exited 0 on its SIGTERM, and that is still a failure.
    assert_eq!(row["last_exit"]["code"], 0, "{row:#}");
}

#[test]
fn an_unhealthy_instance_is_restarted_with_backoff_until_max_restarts() {
    let p = Project::new();
    let app = p.sh("app", IDLE);
    p.write_config(&format!(
        "[apps.app]\ncommand = {app}\nrestart_delay = \"200ms\"\nmax_restarts = 2\n\n\
         [apps.app.health]\nexec = \"false\"\ninterval = \"300ms\"\nfailures = 1\n"
    ));
    p.up_d();
    let row = p.wait_state("app", "failed", Duration::from_secs(15));
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("unhealthy"), "{row:#}");
    assert_eq!(row["restarts"], 2, "{row:#}");
    let events = p.events();
    let t = |e: &serde_json::Value| parse_ts(e["ts"].as_str().unwrap());
    let started = events_of(&events, "started", "app", None);
    assert_eq!(started.len(), 3, "{events:#?}");
    // Each start is judged one interval later, and restarts back off (200 ms, then 400 ms).
    assert!(t(started[1]) - t(started[0]) >= 0.45, "{events:#?}");
    assert!(t(started[2]) - t(started[1]) >= 0.65, "{events:#?}");
    assert_eq!(events_of(&events, "unhealthy", "app", None).len(), 3);
}

#[test]
fn a_notify_health_probe_after_a_notify_ready_probe_hears_the_watchdog() {
    let p = Project::new();
    let script = p.write_script(
        "watchdog.py",
        r#"
import os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", addr)
while True:
    time.sleep(0.1)
    s.sendto(b"WATCHDOG=1", addr)
"#,
    );
    p.write_config(&format!(
        "[apps.app]\ncommand = [\"python3\", {}]\n\n[apps.app.ready]\nnotify = true\n\n\
         [apps.app.health]\nnotify = true\ninterval = \"300ms\"\nfailures = 2\n",
        serde_json::to_string(&script).unwrap()
    ));
    p.up_d();
    p.wait_state("app", "running", Duration::from_secs(10));
    let pid = p.pid_of("app").unwrap();
    // Several health intervals: the watchdog keeps it healthy (it would have crashed on a
    // refused send, or been restarted as unhealthy, within 1 s).
    p.assert_pid_kept("app", pid, Duration::from_millis(1500));
    assert!(events_of(&p.events(), "unhealthy", "app", None).is_empty());
}
