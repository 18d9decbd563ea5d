//! `listen`: a socket bound by the supervisor, shared by every instance as fd 3 with the systemd
//! variables, balanced by the kernel, and kept open across rolls so no request fails.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;

/// `server.py OUT_DIR`: checks what it was given on fd 3, records that in
/// `OUT_DIR/check.INSTANCE.PID`, prints `serving`, then answers each request on fd 3 with
/// `instance I gen G pid P`. On SIGTERM it stops accepting, finishes the request in hand, and exits.
const SERVER: &str = r#"
import json, os, select, signal, socket, sys, time
out_dir = sys.argv[1]
inst = os.environ.get("PYPM_INSTANCE", "?")
gen = os.environ.get("GEN", "0")
pid = os.getpid()
ls = socket.socket(fileno=3)
check = {
    "acceptconn": ls.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
    "tcp": ls.family == socket.AF_INET and ls.type == socket.SOCK_STREAM,
    "listen_fds": os.environ.get("LISTEN_FDS"),
    "listen_pid_ok": os.environ.get("LISTEN_PID") == str(pid),
    "fdnames": os.environ.get("LISTEN_FDNAMES"),
}
tmp = os.path.join(out_dir, ".check.%s.%d" % (inst, pid))
with open(tmp, "w") as f:
    json.dump(check, f)
os.rename(tmp, os.path.join(out_dir, "check.%s.%d" % (inst, pid)))

stopping = False
def term(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, term)

def handle(c):
    c.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    time.sleep(0.003)  # a request takes a moment: some are in flight when SIGTERM comes
    body = ("instance %s gen %s pid %d\n" % (inst, gen, pid)).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    c.close()

ls.setblocking(False)
print("serving", flush=True)
while not stopping:
    r, _, _ = select.select([ls], [], [], 0.05)
    if not r:
        continue
    try:
        c, _ = ls.accept()
    except (BlockingIOError, InterruptedError):
        continue
    handle(c)
"#;

/// A project with `web` (3 instances of [`SERVER`] on `port`); `generation` is its `GEN` env value.
fn web_config(p: &Project, port: u16, generation: u32) -> String {
    let server = p.write_script("server.py", SERVER);
    format!(
        "[apps.web]\ncommand = [\"python3\", {}, {}]\ninstances = 3\n\
         listen = [\"tcp://127.0.0.1:{port}\"]\nenv = {{ GEN = \"{generation}\" }}\n\n\
         [apps.web.ready]\nlog = \"^serving$\"\ninterval = \"100ms\"\n",
        serde_json::to_string(&server).unwrap(),
        serde_json::to_string(&p.marker()).unwrap()
    )
}

fn web_pids(p: &Project) -> Vec<i32> {
    (0..3)
        .map(|i| p.pid_of(&format!("web.{i}")).expect("web pid"))
        .collect()
}

/// Each replacement (`new[i]`) was ready before its predecessor (`old[i]`) exited.
fn assert_ready_before_stopped(p: &Project, old: &[i32], new: &[i32]) {
    let events = p.events();
    let pos = |event: &str, i: usize, pid: i32| {
        events
            .iter()
            .position(|e| {
                e["event"] == event
                    && e["app"] == "web"
                    && e["instance"].as_u64() == Some(i as u64)
                    && e["pid"].as_i64() == Some(pid as i64)
            })
            .unwrap_or_else(|| panic!("no {event} web.{i} pid {pid} in {events:#?}"))
    };
    for i in 0..3 {
        assert!(
            pos("ready", i, new[i]) < pos("exited", i, old[i]),
            "web.{i} (pid {}) was stopped before its replacement was ready: {events:#?}",
            old[i]
        );
    }
}

/// Instance numbers seen in the bodies of `c`.
fn instances_seen(c: &Counts) -> BTreeSet<String> {
    c.bodies
        .keys()
        .filter_map(|b| b.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

#[test]
fn three_instances_share_fd_3_with_the_systemd_variables_and_all_serve() {
    let p = Project::new();
    let port = free_port();
    p.write_config(&web_config(&p, port, 1));
    p.up_d();
    for (i, pid) in web_pids(&p).into_iter().enumerate() {
        let path = p.path(&format!("check.{i}.{pid}"));
        assert!(
            wait_until(Duration::from_secs(5), || path.exists()),
            "web.{i} wrote no check file"
        );
        let check: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            check["acceptconn"], 1,
            "web.{i}: fd 3 is not listening: {check}"
        );
        assert_eq!(
            check["tcp"], true,
            "web.{i}: fd 3 is not a TCP socket: {check}"
        );
        assert_eq!(check["listen_fds"], "1", "web.{i}: {check}");
        assert_eq!(
            check["listen_pid_ok"], true,
            "web.{i}: LISTEN_PID is not its pid: {check}"
        );
        assert!(
            check["fdnames"].is_string(),
            "web.{i}: no LISTEN_FDNAMES: {check}"
        );
    }

    // Concurrent clients so that a busy instance leaves the next connection to another one.
    let mut all = Counts::default();
    for _ in 0..20 {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = Counts::default();
                    let t0 = std::time::Instant::now();
                    c.add(http_get(port, "/", Duration::from_secs(5)), t0.elapsed());
                    c
                })
            })
            .collect();
        for t in clients {
            all.merge(t.join().unwrap());
        }
        if all.ok >= 30 && instances_seen(&all).len() == 3 {
            break;
        }
    }
    assert!(all.ok >= 30 && all.errors() == 0, "{}", all.summary());
    let seen = instances_seen(&all);
    eprintln!("served by instance: {seen:?} ({})", all.summary());
    assert!(
        seen.len() >= 2,
        "only instance(s) {seen:?} served {} requests: {:?}",
        all.ok,
        all.bodies
    );
}

#[test]
fn restart_and_a_config_change_roll_without_a_failed_request() {
    let p = Project::new();
    let port = free_port();
    p.write_config(&web_config(&p, port, 1));
    p.up_d();
    let before = web_pids(&p);
    let timeout = Duration::from_secs(3);

    let load = Hammer::start(port, 2, timeout);
    load.wait_requests(20, Duration::from_secs(20));
    p.pypm_ok(&["restart", "web"], 0);
    let after_restart = p.wait_rolled("web", 3, &before, Duration::from_secs(30));
    assert_ready_before_stopped(&p, &before, &after_restart);
    load.wait_requests(20, Duration::from_secs(20));
    let restart = load.stop();
    eprintln!("during `pypm restart web`: {}", restart.summary());

    let load = Hammer::start(port, 2, timeout);
    load.wait_requests(20, Duration::from_secs(20));
    p.write_config_by_rename(&web_config(&p, port, 2));
    let after_change = p.wait_rolled("web", 3, &after_restart, Duration::from_secs(30));
    assert_ready_before_stopped(&p, &after_restart, &after_change);
    load.wait_requests(20, Duration::from_secs(20));
    let change = load.stop();
    eprintln!("during a config change: {}", change.summary());

    for (what, c) in [("restart", &restart), ("config change", &change)] {
        assert!(
            c.ok >= 20,
            "{what}: too few requests to tell: {}",
            c.summary()
        );
        assert_eq!(
            (c.refused, c.reset, c.eof, c.timeout, c.failed),
            (0, 0, 0, 0, 0),
            "{what}: requests failed during the roll: {}",
            c.summary()
        );
    }
    assert!(
        change.bodies.keys().any(|b| b.contains("gen 2")),
        "no request reached the new generation: {:?}",
        change.bodies
    );
    assert!(
        http_get(port, "/", timeout) != Outcome::Refused,
        "the socket is gone after the roll"
    );
}

#[test]
fn a_listen_port_already_in_use_fails_the_app_naming_the_address() {
    let p = Project::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let other = p.sh("other", crate::basics::IDLE);
    let web = p.sh("web", crate::basics::IDLE);
    p.write_config(&format!(
        "[apps.web]\ncommand = {web}\nlisten = [\"tcp://127.0.0.1:{port}\"]\n\n\
         [apps.other]\ncommand = {other}\n"
    ));
    let out = p.pypm(&["up", "-d", "--wait", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let row = p.wait_state("web", "failed", Duration::from_secs(5));
    assert!(
        row["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("127.0.0.1:{port}"))),
        "the reason should name the address: {row:#}"
    );
    assert!(
        p.procs_with("web.sh").is_empty(),
        "web runs without its socket"
    );
    assert_eq!(p.state_of("other"), "running");
    drop(held);
}
