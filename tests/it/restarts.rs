//! Crash backoff, `failed`, `restart APP`, and a supervisor killed by SIGKILL.

use std::time::Duration;

use crate::basics::IDLE;
use crate::support::*;

#[test]
fn a_crashing_app_backs_off_with_growing_delays_then_fails() {
    let p = Project::new();
    let crash = p.sh("crash", "exit 1\n");
    p.write_config(&format!(
        "[apps.crash]\ncommand = {crash}\nrestart_delay = \"100ms\"\nrestart_delay_max = \"1s\"\n\
         max_restarts = 3\nrestart_window = \"60s\"\n"
    ));
    let _ = p.pypm(&["up", "-d", "--wait", "20s"]);
    let row = p.wait_state("crash", "failed", Duration::from_secs(15));
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "failed without a reason: {row:#}");
    assert_eq!(row["pid"], serde_json::Value::Null, "{row:#}");
    assert_eq!(row["restarts"].as_u64(), Some(3), "{row:#}");
    assert_eq!(row["last_exit"]["code"].as_i64(), Some(1), "{row:#}");

    let events = p.events();
    for e in &events {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["ts", "event", "app", "instance", "pid", "detail"],
            "{e}"
        );
    }
    assert_eq!(
        events_of(&events, "restarting", "crash", Some(0)).len(),
        3,
        "{events:#?}"
    );
    let starts: Vec<f64> = events_of(&events, "started", "crash", Some(0))
        .iter()
        .map(|e| parse_ts(e["ts"].as_str().unwrap()))
        .collect();
    // The first run plus `max_restarts` restarts; the failure after that marks it failed.
    assert_eq!(starts.len(), 4, "started events: {events:#?}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Nominal delays 100 ms, 200 ms, 400 ms (each plus a spawn). Slack for a loaded machine.
    for (gap, nominal) in gaps.iter().zip([0.1, 0.2, 0.4]) {
        assert!(
            *gap >= nominal - 0.02,
            "gap {gap:.3}s shorter than the {nominal}s delay; gaps {gaps:?}"
        );
        assert!(
            *gap < nominal + 1.5,
            "gap {gap:.3}s far longer than the {nominal}s delay; gaps {gaps:?}"
        );
    }
    assert!(
        gaps[2] > gaps[0] + 0.15,
        "delays do not grow: gaps {gaps:?}"
    );
    assert!(
        events_of(&events, "failed", "crash", Some(0)).len() == 1,
        "one `failed` event expected: {events:#?}"
    );

    // A failed app starts again on `pypm restart`.
    p.pypm_ok(&["restart", "crash"], 0);
    assert!(
        wait_until(Duration::from_secs(10), || events_of(
            &p.events(),
            "started",
            "crash",
            Some(0)
        )
        .len()
            > 4),
        "`pypm restart` did not start the failed app again"
    );
}

#[test]
fn up_d_exits_1_when_an_instance_cannot_be_spawned() {
    let p = Project::new();
    let ok = p.sh("ok", IDLE);
    let missing = p.path("no-such-program").display().to_string();
    p.write_config(&format!(
        "[apps.ok]\ncommand = {ok}\n\n[apps.broken]\ncommand = [{}]\n",
        serde_json::to_string(&missing).unwrap()
    ));
    let out = p.pypm(&["up", "-d", "--wait", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken"),
        "the message should name the failed app: {}",
        describe(&out)
    );
    // The supervisor runs on with the rest.
    let row = p.row("broken");
    assert_eq!(row["state"], "failed", "{row:#}");
    assert!(
        row["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{row:#}"
    );
    assert_eq!(p.state_of("ok"), "running");
}

#[test]
fn restart_rolls_instances_one_at_a_time_and_leaves_other_apps_alone() {
    let p = Project::new();
    let api = p.sh("api", IDLE);
    let other = p.sh("other", IDLE);
    p.write_config(&format!(
        "[apps.api]\ncommand = {api}\ninstances = 2\n\n[apps.other]\ncommand = {other}\n"
    ));
    p.up_d();
    let old0 = p.pid_of("api.0").unwrap();
    let old1 = p.pid_of("api.1").unwrap();
    let other_pid = p.pid_of("other").unwrap();

    p.pypm_ok(&["restart", "api"], 0);
    let mut new = (None, None);
    assert!(
        wait_until(Duration::from_secs(10), || {
            new = (p.pid_of("api.0"), p.pid_of("api.1"));
            // A roll is over when the replacements run and the old processes are gone (with
            // several instances, each old one is stopped only once its replacement is ready).
            p.state_of("api.0") == "running"
                && p.state_of("api.1") == "running"
                && new.0.is_some_and(|x| x != old0)
                && new.1.is_some_and(|x| x != old1)
                && !alive(old0)
                && !alive(old1)
        }),
        "api was not rolled: {:#}",
        p.status_json()
    );
    let (new0, new1) = (new.0.unwrap(), new.1.unwrap());
    assert!(!alive(old0) && !alive(old1), "old instances still alive");
    assert_eq!(p.pid_of("other"), Some(other_pid), "`other` was touched");
    assert_eq!(p.row("api.0")["restarts"].as_u64(), Some(1));

    let events = p.events();
    let pos = |event: &str, inst: u64, pid: i32| {
        events
            .iter()
            .position(|e| {
                e["event"] == event
                    && e["app"] == "api"
                    && e["instance"].as_u64() == Some(inst)
                    && e["pid"].as_i64() == Some(pid as i64)
            })
            .unwrap_or_else(|| panic!("no {event} api.{inst} pid {pid} in {events:#?}"))
    };
    assert!(
        pos("started", 0, new0) < pos("exited", 1, old1),
        "instance 1 was stopped before instance 0 was back: {events:#?}"
    );
    assert!(
        pos("exited", 0, old0) < pos("started", 1, new1),
        "instance 1 was replaced before instance 0's roll was over: {events:#?}"
    );
    // Zero downtime: each replacement started before its old process was stopped.
    assert!(
        pos("started", 0, new0) < pos("exited", 0, old0),
        "{events:#?}"
    );
    assert!(
        pos("started", 1, new1) < pos("exited", 1, old1),
        "{events:#?}"
    );
}

#[test]
fn after_the_supervisor_is_sigkilled_a_new_up_runs_exactly_one_copy() {
    let p = Project::new();
    let one = p.sh("one", "sleep 1001 &\nwait\n");
    let two = p.sh("two", "sleep 1002 &\nwait\n");
    p.write_config(&format!(
        "[apps.one]\ncommand = {one}\n\n[apps.two]\ncommand = {two}\ninstances = 2\n"
    ));
    p.up_d();
    let old: Vec<i32> = p.pids().into_iter().map(|(_, pid)| pid.unwrap()).collect();
    assert_eq!(old.len(), 3);
    // Wait until the grandchildren exist, so the test also covers them.
    assert!(wait_until(Duration::from_secs(5), || {
        p.procs_with("sleep 1001").len() == 1 && p.procs_with("sleep 1002").len() == 2
    }));
    let old_sleeps = [p.procs_with("sleep 1001"), p.procs_with("sleep 1002")].concat();
    let sup = p.supervisor_pid().expect("pypm.pid");
    kill(sup, libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(5), || supervisor_gone(
        &p, sup
    )));

    p.up_d();
    let new_sup = p.supervisor_pid().expect("pypm.pid");
    assert_ne!(new_sup, sup);
    let gone = wait_until(Duration::from_secs(5), || {
        old.iter().chain(&old_sleeps).all(|&pid| !alive(pid))
    });
    assert!(
        gone,
        "leftovers of the killed supervisor survive: {:?}",
        old.iter()
            .chain(&old_sleeps)
            .filter(|&&pid| alive(pid))
            .map(|&pid| (pid, cmdline(pid)))
            .collect::<Vec<_>>()
    );
    // Counted once the new copies' `sleep`s exist: until each shell's forked child has exec'd
    // `sleep`, it shows the shell's command line too (a third "copy" for a moment).
    assert!(wait_until(Duration::from_secs(5), || {
        p.procs_with("sleep 1001").len() == 1 && p.procs_with("sleep 1002").len() == 2
    }));
    assert_eq!(p.procs_with("one.sh").len(), 1, "copies of `one`");
    assert_eq!(p.procs_with("two.sh").len(), 2, "copies of `two`");
    for (name, pid) in p.pids() {
        let pid = pid.unwrap_or_else(|| panic!("{name} has no pid"));
        assert!(!old.contains(&pid), "{name} kept an old pid");
        assert!(alive(pid));
    }
}

#[test]
fn memory_max_without_a_cgroup_restarts_an_instance_over_it_with_a_memory_limit_event() {
    let p = Project::new();
    let hog = p.write_script(
        "hog.py",
        "import time\nb = []\nfor i in range(60):\n    b.append(bytearray(5 << 20))\n    time.sleep(0.02)\ntime.sleep(1000)\n",
    );
    p.write_config(&format!(
        "[apps.hog]\ncommand = [\"python3\", {}]\nmemory_max = \"40M\"\nmax_restarts = 0\n",
        serde_json::to_string(&hog).unwrap()
    ));
    // Where cgroups can be created the kernel enforces the limit (tests/it/limits.rs); here
    // they are turned off, as on a machine without them.
    let status = p
        .command(&["up", "-d", "--wait", "20s"])
        .env("PYPM_CGROUPS", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("pypm up -d");
    assert!(status.success());
    let inspect = p.pypm_ok(&["inspect", "hog"], 0);
    assert!(inspect.contains("enforced by sampling"), "{inspect}");
    let row = p.wait_state("hog", "failed", Duration::from_secs(20));
    let reason = row["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("memory limit"), "{row:#}");
    let events = p.events();
    let hit = events_of(&events, "memory_limit", "hog", Some(0));
    assert_eq!(hit.len(), 1, "{events:#?}");
    assert!(p.procs_with("hog.py").is_empty(), "the hog still runs");
}

#[test]
fn a_loop_of_clean_exits_is_still_restarted_but_said_once_per_window() {
    let p = Project::new();
    let blink = p.sh("blink", "sleep 0.05\nexit 0\n");
    // The rate shows in `reason` while it waits to restart: 200 ms of each ~250 ms cycle, so a
    // status call on a loaded machine still finds it (with 10 ms it had to hit a 10 ms window).
    p.write_config(&format!(
        "[apps.blink]\ncommand = {blink}\nrestart = \"always\"\nmin_uptime = \"10ms\"\nrestart_delay = \"200ms\"\nmax_restarts = 3\nrestart_window = \"1m\"\n"
    ));
    p.up_d();
    assert!(
        wait_until(Duration::from_secs(20), || {
            events_of(&p.events(), "restarting", "blink", Some(0)).len() >= 8
        }),
        "it keeps restarting: {:#?}",
        p.events()
    );
    let events = p.events();
    let loops = events_of(&events, "restart_loop", "blink", Some(0));
    assert_eq!(loops.len(), 1, "said once in the window: {events:#?}");
    assert!(
        loops[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("still restarted"),
        "{loops:#?}"
    );
    let mut reason = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            reason = p.row("blink")["reason"].as_str().unwrap_or("").to_string();
            reason.contains("restarts in the last 1m")
        }),
        "the restart rate in status: {reason:?}"
    );
    p.pypm_ok(&["down"], 0);
}
