//! `reload` and `plan`: only what changed is touched; an invalid file changes nothing.

use std::time::Duration;

use crate::basics::IDLE;
use crate::support::*;

#[test]
fn reload_applies_only_the_difference_and_plan_reports_it() {
    let p = Project::new();
    let keep = p.sh("keep", IDLE);
    let gone = p.sh("gone", IDLE);
    let envy = p.sh("envy", IDLE);
    let scaled = p.sh("scaled", IDLE);
    let fresh = p.sh("fresh", IDLE);
    let off = p.sh("off", IDLE);
    let head = "[pypm]\nwatch_config = false\n\n";
    let before = format!(
        "{head}[apps.keep]\ncommand = {keep}\n\n[apps.gone]\ncommand = {gone}\n\n\
         [apps.envy]\ncommand = {envy}\nenv = {{ FOO = \"1\" }}\n\n[apps.scaled]\ncommand = {scaled}\n\n[apps.off]\ncommand = {off}\n"
    );
    let after = format!(
        "{head}[apps.keep]\ncommand = {keep}\n\n[apps.fresh]\ncommand = {fresh}\n\n\
         [apps.envy]\ncommand = {envy}\nenv = {{ FOO = \"2\" }}\n\n\
         [apps.scaled]\ncommand = {scaled}\ninstances = 2\n\n\
         [apps.off]\ncommand = {off}\nenabled = false\n"
    );
    p.write_config(&before);
    p.up_d();
    assert_eq!(p.pypm(&["plan"]).status.code(), Some(0), "no change yet");
    let keep_pid = p.pid_of("keep").unwrap();
    let gone_pid = p.pid_of("gone").unwrap();
    let envy_pid = p.pid_of("envy").unwrap();
    let scaled_pid = p.pid_of("scaled").unwrap();
    let off_pid = p.pid_of("off").unwrap();

    p.write_config(&after);
    let plan = p.pypm_ok(&["plan"], 2);
    let shape = regex::Regex::new(
        r"^[A-Za-z0-9][A-Za-z0-9_-]*: (start|stop|restart|scale \d+ → \d+) \(.+\)$",
    )
    .unwrap();
    for l in plan.lines().filter(|l| !l.trim().is_empty()) {
        assert!(shape.is_match(l), "not `APP: VERB (REASON)`: {l:?}\n{plan}");
    }
    let line = |app: &str| {
        plan.lines()
            .find(|l| l.trim_start().starts_with(&format!("{app}:")))
            .unwrap_or_else(|| panic!("no line for `{app}` in plan:\n{plan}"))
            .to_string()
    };
    assert!(line("fresh").contains(": start (new"), "{plan}");
    assert!(line("gone").contains(": stop (removed"), "{plan}");
    let envy_line = line("envy");
    assert!(
        envy_line.contains(": restart (") && envy_line.contains("FOO"),
        "{plan}"
    );
    assert!(line("scaled").contains(": scale 1 → 2"), "{plan}");
    assert!(line("off").contains(": stop (disabled"), "{plan}");
    assert!(
        !plan.lines().any(|l| l.trim_start().starts_with("keep:")),
        "an unchanged app is in the plan:\n{plan}"
    );

    p.pypm_ok(&["reload"], 0);
    let settled = wait_until(Duration::from_secs(10), || {
        let pids: std::collections::HashMap<String, Option<i32>> = p.pids().into_iter().collect();
        let running = |n: &str| pids.get(n).is_some_and(|pid| pid.is_some_and(alive));
        running("fresh")
            && running("scaled.1")
            && pids
                .get("envy")
                .is_some_and(|x| x.is_some_and(|x| x != envy_pid))
            && running("envy")
            && pids.get("gone").is_none_or(|x| x.is_none())
    });
    assert!(settled, "reload was not applied: {:#}", p.status_json());
    assert!(!alive(gone_pid), "the removed app still runs");
    assert!(!alive(envy_pid), "the old `envy` still runs");
    assert!(
        wait_until(Duration::from_secs(5), || !alive(off_pid)),
        "the disabled app still runs"
    );
    assert_eq!(p.state_of("off"), "stopped");
    assert_eq!(
        p.pid_of("keep"),
        Some(keep_pid),
        "an untouched app was restarted"
    );
    assert_eq!(
        p.pid_of("scaled.0"),
        Some(scaled_pid),
        "scaling up touched the existing instance"
    );
    let env = std::fs::read(format!("/proc/{}/environ", p.pid_of("envy").unwrap())).unwrap();
    assert!(
        env.split(|&b| b == 0).any(|kv| kv == b"FOO=2"),
        "the new `envy` does not see FOO=2"
    );
    assert_eq!(
        p.pypm(&["plan"]).status.code(),
        Some(0),
        "plan after reload"
    );

    // An invalid file: reload fails, nothing changes, status shows where.
    let pids_before = p.pids();
    let bad = after.replace("instances = 2", "instances = 2\ncomand = \"oops\"");
    let bad_line = bad.lines().position(|l| l.starts_with("comand")).unwrap() + 1;
    p.write_config(&bad);
    let out = p.pypm(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        p.pypm(&["plan"]).status.code(),
        Some(1),
        "plan on an invalid file"
    );
    let s = p.status_json();
    let err = &s["config_error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{s:#}"
    );
    assert_eq!(err["line"].as_u64(), Some(bad_line as u64), "{s:#}");
    assert!(err["column"].as_u64().is_some(), "{s:#}");
    assert_eq!(p.pids(), pids_before, "an invalid file changed what runs");
    for pid in pids_before.iter().filter_map(|(_, pid)| *pid) {
        assert!(alive(pid));
    }

    // Fixing the file clears the error and, as it equals what runs, changes nothing.
    p.write_config(&after);
    p.pypm_ok(&["reload"], 0);
    assert_eq!(p.status_json()["config_error"], serde_json::Value::Null);
    assert_eq!(p.pids(), pids_before);
}

#[test]
fn sighup_reloads_the_file() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    let b = p.sh("b", IDLE);
    let head = format!("[pypm]\nwatch_config = false\n\n[apps.a]\ncommand = {a}\n");
    p.write_config(&head);
    p.up_d();
    let a_pid = p.pid_of("a").unwrap();
    p.write_config(&format!("{head}\n[apps.b]\ncommand = {b}\n"));
    kill(p.supervisor_pid().unwrap(), libc::SIGHUP);
    p.wait_state("b", "running", Duration::from_secs(10));
    assert_eq!(p.pid_of("a"), Some(a_pid));
}

#[test]
fn a_storm_of_saves_is_applied_at_least_every_half_second_and_ends_on_the_last_valid_one() {
    let p = Project::new();
    let app = p.sh("app", "exec sleep 300\n");
    let cfg = |n: u32| format!("[apps.app]\ncommand = {app}\nenv = {{ VERSION = \"{n}\" }}\n");
    p.write_config(&cfg(0));
    p.up_d();
    let applied = |p: &Project| {
        p.events()
            .iter()
            .filter(|e| e["event"] == "config_applied")
            .count()
    };
    let before = applied(&p);
    // 60 saves, 50 ms apart (each one restarts the 100 ms debounce); every 10th is invalid.
    let started = std::time::Instant::now();
    let mut last_valid = 0;
    for n in 1..=60 {
        if n % 10 == 0 {
            p.write_config("[apps.app\n");
        } else {
            p.write_config(&cfg(n));
            last_valid = n;
        }
        // Pacing the saves, not waiting for one.
        std::thread::sleep(Duration::from_millis(50));
    }
    let storm = started.elapsed();
    let during = applied(&p) - before;
    assert!(
        during as f64 >= (storm.as_secs_f64() / 0.5) * 0.5,
        "{during} reloads applied during a {storm:?} storm"
    );
    // The storm ends on an invalid save; the last valid one runs.
    p.write_config("[apps.app\n");
    let want = last_valid.to_string();
    assert!(
        wait_until(Duration::from_secs(10), || {
            p.pid_of("app")
                .is_some_and(|pid| environ_of(pid, "VERSION").as_deref() == Some(want.as_str()))
        }),
        "the last valid version ({want}) should run: {:#?}",
        p.status_json()
    );
    p.pypm_ok(&["down"], 0);
}

#[test]
fn a_file_that_no_longer_parses_still_leads_the_cli_to_its_supervisor() {
    let p = Project::new();
    let app = p.sh("app", "exec sleep 300\n");
    let good = format!("[pypm]\nstate_dir = \"state\"\n\n[apps.app]\ncommand = {app}\n");
    p.write_config(&good);
    p.pypm_ok(&["up", "-d", "--wait", "20s"], 0);
    let pid = p.pid_of("app").expect("app runs");
    p.write_config(&format!("{good}\n[apps.x\n"));
    // `status` reaches it (and shows the file's error); `down` stops it and the app.
    let out = p.pypm(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(s["instances"][0]["pid"], pid, "{s:#}");
    let out = p.pypm_ok(&["down"], 0);
    assert!(out.contains("stopped"), "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || !alive(pid)),
        "app {pid} still runs"
    );
}
