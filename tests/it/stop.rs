//! Stopping: `stop_timeout` escalation, grandchildren, pipes held open, supervisor SIGTERM.

use std::time::{Duration, Instant};

use crate::basics::IDLE;
use crate::support::*;

#[test]
fn down_escalates_to_sigkill_after_stop_timeout_and_kills_grandchildren() {
    let p = Project::new();
    // Ignores SIGTERM (and so do the `sleep`s it runs: SIG_IGN survives exec).
    let stubborn = p.sh("stubborn", "trap '' TERM\nwhile :; do sleep 0.1; done\n");
    // Dies on SIGTERM, but leaves a child that ignores it.
    let parent = p.sh(
        "parent",
        &format!(
            "(trap '' TERM; exec sleep 1003) &\necho $! > \"{}/grandchild.pid\"\nsleep 1004 &\nwait\n",
            p.marker()
        ),
    );
    p.write_config(&format!(
        "[apps.stubborn]\ncommand = {stubborn}\nstop_timeout = \"1s\"\n\n\
         [apps.parent]\ncommand = {parent}\nstop_timeout = \"5s\"\n"
    ));
    p.up_d();
    let stubborn_pid = p.pid_of("stubborn").unwrap();
    let parent_pid = p.pid_of("parent").unwrap();
    let gc_path = p.path("grandchild.pid");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&gc_path).is_ok_and(|t| t.ends_with('\n'))
            && p.procs_with("sleep 1004").len() == 1
    }));
    let grandchild: i32 = std::fs::read_to_string(&gc_path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));

    let t0 = Instant::now();
    p.pypm_ok(&["down"], 0);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "down took {took:?}: the SIGTERM-ignoring app was not given its stop_timeout"
    );
    assert!(took < Duration::from_secs(5), "down took {took:?}");
    for (what, pid) in [
        ("stubborn", stubborn_pid),
        ("parent", parent_pid),
        ("grandchild ignoring SIGTERM", grandchild),
    ] {
        assert!(
            wait_until(Duration::from_secs(2), || !alive(pid)),
            "{what} (pid {pid}) survived down"
        );
    }
    assert!(
        p.procs_with("sleep 1004").is_empty(),
        "a `sleep &` survived"
    );
    let events = p.events();
    let stubborn_exit = events_of(&events, "exited", "stubborn", Some(0));
    assert!(
        stubborn_exit
            .iter()
            .any(|e| e["detail"].as_str().unwrap_or_default().contains("SIGKILL")),
        "stubborn should have died by SIGKILL: {events:#?}"
    );
}

#[test]
fn a_grandchild_holding_the_stdout_pipe_does_not_make_down_hang() {
    let p = Project::new();
    // `setsid` puts the grandchild outside the app's process group, so the group SIGKILL does not
    // close its copy of the stdout pipe.
    let holder = p.sh(
        "holder",
        "setsid sleep 1005 &\necho started\nsleep 1006 &\nwait\n",
    );
    let plain = p.sh("plain", IDLE);
    p.write_config(&format!(
        "[apps.holder]\ncommand = {holder}\nstop_timeout = \"2s\"\n\n[apps.plain]\ncommand = {plain}\n"
    ));
    p.up_d();
    assert!(wait_until(Duration::from_secs(5), || p
        .procs_with("sleep 1005")
        .len()
        == 1));
    let t0 = Instant::now();
    let out = p.pypm_timeout(&["down"], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "down took {:?}",
        t0.elapsed()
    );
    let sup_gone = wait_until(Duration::from_secs(3), || {
        p.supervisor_pid().is_none_or(|pid| !alive(pid))
    });
    assert!(sup_gone, "the supervisor is still running after down");
    assert!(p.procs_with("holder.sh").is_empty());
    assert!(p.procs_with("plain.sh").is_empty());
}

/// `web` depends on `db`; on SIGTERM the supervisor must stop `web` completely before it signals
/// `db`, then exit 0.
#[test]
fn sigterm_to_the_supervisor_stops_apps_in_reverse_dependency_order_and_exits_0() {
    let p = Project::new();
    let log = p.path("stops").display().to_string();
    // `date +%s%N`: nanoseconds since the epoch, from one clock for both apps.
    let web = p.sh(
        "web",
        &format!(
            "trap 'sleep 0.3; echo \"$(date +%s%N) web-exit\" >> \"{log}\"; exit 0' TERM\n\
             while :; do sleep 0.05; done\n"
        ),
    );
    let db = p.sh(
        "db",
        &format!(
            "trap 'echo \"$(date +%s%N) db-term\" >> \"{log}\"; exit 0' TERM\n\
             while :; do sleep 0.05; done\n"
        ),
    );
    p.write_config(&format!(
        "[apps.web]\ncommand = {web}\ndepends_on = [\"db\"]\n\n[apps.db]\ncommand = {db}\n"
    ));
    let stdout = tempfile::NamedTempFile::new().unwrap();
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = p
        .command(&["up"])
        .stdout(stdout.reopen().unwrap())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let sup = child.id() as i32;
    let both_up = wait_until(Duration::from_secs(15), || {
        let out = p.pypm(&["status", "--json"]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|s| {
                s["instances"]
                    .as_array()
                    .is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["state"] == "running"))
            })
    });
    if !both_up {
        kill(sup, libc::SIGKILL);
        panic!(
            "apps did not start: {}",
            std::fs::read_to_string(stderr.path()).unwrap_or_default()
        );
    }
    let pids: Vec<i32> = p.pids().into_iter().map(|(_, pid)| pid.unwrap()).collect();

    kill(sup, libc::SIGTERM);
    let status = wait_child(&mut child, Duration::from_secs(15))
        .expect("the supervisor did not exit within 15s of SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "supervisor exit: {status:?}\n{}",
        std::fs::read_to_string(stderr.path()).unwrap_or_default()
    );
    for pid in pids {
        assert!(!alive(pid), "app pid {pid} outlived the supervisor");
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let at = |what: &str| -> u128 {
        text.lines()
            .find_map(|l| l.strip_suffix(what).map(|t| t.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no `{what}` in {text:?}"))
    };
    assert!(
        at("web-exit") <= at("db-term"),
        "db was signalled before web had stopped: {text:?}"
    );
    // Every app's stop is recorded, before the supervisor's own, which is the last word of both
    // events.jsonl and its log.
    let events = p.events();
    let names: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let app = e["app"].as_str().unwrap_or("-").to_string();
            (e["event"].as_str().unwrap_or("").to_string(), app)
        })
        .collect();
    let last = names.last().cloned();
    assert_eq!(last, Some(("stopped".into(), "-".into())), "{events:#?}");
    for app in ["web", "db"] {
        assert!(
            names.contains(&("stopped".into(), app.into())),
            "no `stopped` event for {app}: {events:#?}"
        );
    }
    let log = std::fs::read_to_string(stderr.path()).unwrap_or_default();
    assert!(
        log.trim_end().ends_with("] supervisor stopped"),
        "the log goes on after `supervisor stopped`:\n{log}"
    );
}

/// The parent pid of `pid` (0 when it is gone).
fn ppid(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Shell lines that start `ROOT/daemon.sh` (a loop) in a session of its own, in the background,
/// and record its pid in `ROOT/daemon.pid`; [`wait_daemon`] reads it.
fn start_daemon(p: &Project) -> String {
    p.write_script("daemon.sh", "while :; do sleep 1; done\n");
    let root = p.marker();
    format!(
        "setsid sh \"{root}/daemon.sh\" &\n\
         echo $! > \"{root}/daemon.tmp\"\nmv \"{root}/daemon.tmp\" \"{root}/daemon.pid\"\n"
    )
}

fn wait_daemon(p: &Project) -> i32 {
    let path = p.path("daemon.pid");
    let read = || -> Option<i32> {
        let text = std::fs::read_to_string(&path).ok()?;
        text.trim().parse().ok()
    };
    assert!(
        wait_until(Duration::from_secs(5), || read().is_some()),
        "the app did not start its daemon"
    );
    read().unwrap()
}

#[test]
fn a_process_that_left_its_apps_session_lives_as_long_as_the_app_and_no_longer() {
    let p = Project::new();
    let root = p.marker();
    // The subshell exits at once: the daemon, in a session of its own, loses its parent while
    // the app runs on.
    let svc = p.sh(
        "svc",
        &format!("(\n{})\nwhile :; do sleep 1; done\n", start_daemon(&p)),
    );
    // A task that exits when the test says so: an exit the supervisor reaps, after the adoption.
    let tick = p.sh(
        "tick",
        &format!("while [ ! -e \"{root}/go\" ]; do sleep 0.05; done\n"),
    );
    p.write_config(&format!(
        "[apps.svc]\ncommand = {svc}\n\n[apps.tick]\ncommand = {tick}\nkind = \"task\"\n"
    ));
    p.up_d();
    let sup = p.supervisor_pid().expect("pypm.pid");
    let daemon = wait_daemon(&p);
    assert!(
        wait_until(Duration::from_secs(5), || ppid(daemon) == sup),
        "the supervisor did not adopt the orphan (parent {})",
        ppid(daemon)
    );
    std::fs::write(p.path("go"), "").unwrap();
    p.wait_state("tick", "completed", Duration::from_secs(10));
    assert!(alive(daemon), "an orphan of a running app was killed");

    // Stop the app (the supervisor keeps running).
    p.write_config(&format!(
        "[apps.svc]\ncommand = {svc}\nenabled = false\n\n[apps.tick]\ncommand = {tick}\nkind = \"task\"\n"
    ));
    p.pypm_ok(&["reload"], 0);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(daemon)),
        "the orphan (pid {daemon}: {}) outlived its app",
        cmdline(daemon)
    );
}

#[test]
fn a_process_that_left_its_apps_session_dies_when_the_app_exits_even_if_it_restarts() {
    let p = Project::new();
    let root = p.marker();
    // First run: start a daemon in its own session, then crash. Later runs: stay up.
    let svc = p.sh(
        "svc",
        &format!(
            "if [ -e \"{root}/again\" ]; then while :; do sleep 1; done; fi\n\
             touch \"{root}/again\"\n{}exit 3\n",
            start_daemon(&p)
        ),
    );
    p.write_config(&format!(
        "[apps.svc]\ncommand = {svc}\nrestart_delay = \"0\"\nmin_uptime = \"0\"\n"
    ));
    p.up_d();
    let daemon = wait_daemon(&p);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(daemon)),
        "the orphan (pid {daemon}: {}) outlived the process that started it",
        cmdline(daemon)
    );
    let row = p.wait_state("svc", "running", Duration::from_secs(10));
    assert_eq!(row["restarts"], 1, "{row}");
}

#[test]
fn after_the_supervisor_is_sigkilled_the_next_up_stops_what_left_the_apps_sessions() {
    let p = Project::new();
    let svc = p.sh(
        "svc",
        &format!("{}while :; do sleep 1; done\n", start_daemon(&p)),
    );
    p.write_config(&format!("[apps.svc]\ncommand = {svc}\n"));
    p.up_d();
    let daemon = wait_daemon(&p);
    let sup = p.supervisor_pid().expect("pypm.pid");
    kill(sup, libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(5), || supervisor_gone(
        &p, sup
    )));
    // The app died with its supervisor; the daemon, in a session of its own, did not.
    assert!(alive(daemon), "the daemon died with the supervisor");

    p.up_d();
    assert!(
        wait_until(Duration::from_secs(5), || !alive(daemon)),
        "the next `up` left the daemon (pid {daemon}: {}) running",
        cmdline(daemon)
    );
}

#[test]
fn a_second_sigint_kills_every_app_at_once_and_still_cleans_up() {
    let p = Project::new();
    // Ignores SIGTERM: the first signal alone would wait out its stop_timeout.
    let stubborn = p.sh(
        "stubborn",
        "trap '' TERM INT\nwhile :; do sleep 0.05; done\n",
    );
    p.write_config(&format!(
        "[apps.stubborn]\ncommand = {stubborn}\nstop_timeout = \"60s\"\n"
    ));
    let mut child = p
        .command(&["up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sup = child.id() as i32;
    if !wait_until(Duration::from_secs(15), || {
        p.pypm(&["status"]).status.success() && p.pid_of("stubborn").is_some()
    }) {
        kill(sup, libc::SIGKILL);
        panic!("the app did not start");
    }
    let pid = p.pid_of("stubborn").unwrap();
    kill(sup, libc::SIGINT);
    assert!(wait_until(Duration::from_secs(5), || p
        .state_of("stubborn")
        == "stopping"));
    kill(sup, libc::SIGINT);
    let status = wait_child(&mut child, Duration::from_secs(15))
        .expect("the supervisor did not exit after a second SIGINT");
    assert_eq!(status.code(), Some(0));
    assert!(
        wait_until(Duration::from_secs(5), || !alive(pid)),
        "the app survived"
    );
    assert!(
        !p.state_dir().join("pypm.sock").exists(),
        "pypm.sock left behind"
    );
    assert!(
        !p.state_dir().join("pypm.pid").exists(),
        "pypm.pid left behind"
    );
    let events = p.events();
    let exited = events_of(&events, "exited", "stubborn", Some(0));
    assert!(
        exited
            .iter()
            .any(|e| e["detail"].as_str().unwrap_or_default().contains("SIGKILL")),
        "{events:#?}"
    );
    let last = events.last().map(|e| e["event"].clone());
    assert_eq!(last, Some(serde_json::json!("stopped")), "{events:#?}");
}

#[test]
fn a_service_manager_hears_ready_once_nothing_is_starting_and_apps_never_see_its_socket() {
    let p = Project::new();
    let sock_path = p.path("systemd-notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let slow = p.sh("slow", "sleep 0.5\necho up\nexec sleep 300\n");
    p.write_config(&format!(
        "[apps.slow]\ncommand = {slow}\n[apps.slow.ready]\nlog = \"up\"\ninterval = \"50ms\"\n"
    ));
    let mut child = p
        .command(&["up"])
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pypm up");
    let sup = child.id() as i32;
    let mut buf = [0u8; 256];
    let got = sock.recv(&mut buf);
    let ready_state = p.state_of("slow");
    let app_env = p
        .pid_of("slow")
        .and_then(|pid| environ_of(pid, "NOTIFY_SOCKET"));
    kill(sup, libc::SIGTERM);
    let _ = wait_child(&mut child, Duration::from_secs(15));
    let n = got.expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    assert_eq!(
        ready_state, "running",
        "READY=1 came before the app was ready"
    );
    assert_eq!(
        app_env, None,
        "the app inherited the supervisor's NOTIFY_SOCKET"
    );
}
