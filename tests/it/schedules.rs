//! Scheduled tasks (`schedule`, `concurrency`) with per-second cron expressions.

use std::time::Duration;

use crate::support::*;

#[test]
fn a_scheduled_task_runs_on_each_second_not_at_start() {
    let p = Project::new();
    let job = p.sh("job", "exit 0\n");
    p.write_config(&format!(
        "[apps.job]\ncommand = {job}\nkind = \"task\"\nschedule = \"* * * * * *\"\ntimezone = \"UTC\"\n"
    ));
    p.up_d();
    assert!(
        wait_until(Duration::from_secs(15), || {
            events_of(&p.events(), "started", "job", Some(0)).len() >= 3
        }),
        "three runs expected: {:#?}\n{}",
        p.events(),
        p.supervisor_log_tail()
    );
    let events = p.events();
    let scheduled = events_of(&events, "scheduled", "job", Some(0));
    assert!(scheduled.len() >= 3, "{events:#?}");
    // Every run was started by the schedule: none at `up`.
    let first_started = events
        .iter()
        .position(|e| e["event"] == "started" && e["app"] == "job");
    let first_scheduled = events
        .iter()
        .position(|e| e["event"] == "scheduled" && e["app"] == "job");
    assert!(first_scheduled < first_started, "{events:#?}");
    // Each run starts just after a whole second (a tolerant bound for a loaded machine).
    for e in events_of(&events, "started", "job", Some(0)) {
        let ts = parse_ts(e["ts"].as_str().unwrap_or_default());
        let frac = ts - ts.floor();
        assert!(frac < 0.3, "run started {frac:.3}s after the second: {e}");
    }
    // Runs are about a second apart, never two in the same second.
    let secs: Vec<i64> = events_of(&events, "started", "job", Some(0))
        .iter()
        .map(|e| parse_ts(e["ts"].as_str().unwrap_or_default()).floor() as i64)
        .collect();
    for w in secs.windows(2) {
        assert!(w[1] > w[0], "two runs in one second: {secs:?}");
    }
    p.pypm_ok(&["down"], 0);
}

#[test]
fn forbid_skips_a_run_while_the_last_is_still_going() {
    let p = Project::new();
    let job = p.sh("job", "sleep 3\n");
    p.write_config(&format!(
        "[apps.job]\ncommand = {job}\nkind = \"task\"\nschedule = \"* * * * * *\"\nconcurrency = \"forbid\"\n"
    ));
    p.up_d();
    assert!(
        wait_until(Duration::from_secs(15), || {
            !events_of(&p.events(), "skipped", "job", Some(0)).is_empty()
        }),
        "a `skipped` event expected: {:#?}",
        p.events()
    );
    let events = p.events();
    assert_eq!(
        events_of(&events, "started", "job", Some(0)).len(),
        1,
        "only one run while it still goes: {events:#?}"
    );
    p.pypm_ok(&["down"], 0);
}

#[test]
fn replace_stops_the_old_run() {
    let p = Project::new();
    let job = p.sh("job", "sleep 30\n");
    p.write_config(&format!(
        "[apps.job]\ncommand = {job}\nkind = \"task\"\nschedule = \"*/2 * * * * *\"\nconcurrency = \"replace\"\nstop_timeout = \"2s\"\n"
    ));
    p.up_d();
    let mut first = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            first = p.pid_of("job");
            first.is_some()
        }),
        "a first run expected: {:#?}",
        p.events()
    );
    let first = first.unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(15), || {
            p.pid_of("job").is_some_and(|pid| pid != first)
        }),
        "a second run expected: {:#?}",
        p.events()
    );
    assert!(
        wait_until(Duration::from_secs(5), || !alive(first)),
        "the old run {first} is still alive"
    );
    p.pypm_ok(&["down"], 0);
}

#[test]
fn catch_up_runs_once_after_a_restart_that_missed_a_run() {
    let p = Project::new();
    let job = p.sh("job", "exit 0\n");
    let config = |schedule: &str| {
        format!(
            "[apps.job]\ncommand = {job}\nkind = \"task\"\nschedule = \"{schedule}\"\ntimezone = \"UTC\"\ncatch_up = true\n"
        )
    };
    p.write_config(&config("* * * * * *"));
    p.up_d();
    assert!(
        wait_until(Duration::from_secs(10), || {
            !events_of(&p.events(), "started", "job", Some(0)).is_empty()
        }),
        "a first run expected: {:#?}",
        p.events()
    );
    p.pypm_ok(&["down"], 0);
    let saved = std::fs::read_to_string(p.state_dir().join("state.json")).unwrap_or_default();
    assert!(
        saved.contains("last_runs"),
        "state.json keeps the last run: {saved}"
    );

    // A schedule whose one run a minute falls while the supervisor is down.
    let missed = chrono::Utc::now() + chrono::Duration::seconds(1);
    let second = chrono::Timelike::second(&missed);
    assert!(
        wait_until(Duration::from_secs(5), || chrono::Utc::now()
            > missed + chrono::Duration::milliseconds(300)),
        "clock"
    );
    p.write_config(&config(&format!("{second} * * * * *")));
    let before = events_of(&p.events(), "started", "job", Some(0)).len();
    p.up_d();
    assert!(
        wait_until(Duration::from_secs(5), || {
            events_of(&p.events(), "started", "job", Some(0)).len() > before
        }),
        "catch_up should run the missed run at start: {:#?}\n{}",
        p.events(),
        p.supervisor_log_tail()
    );
    // Once: the next run is about a minute away.
    assert!(
        !wait_until(Duration::from_secs(2), || {
            events_of(&p.events(), "started", "job", Some(0)).len() > before + 1
        }),
        "caught up more than once: {:#?}",
        p.events()
    );
    p.pypm_ok(&["down"], 0);
}

#[test]
fn restart_schedule_rolls_a_service() {
    let p = Project::new();
    let svc = p.sh("svc", "exec sleep 300\n");
    p.write_config(&format!(
        "[apps.svc]\ncommand = {svc}\nrestart_schedule = \"*/2 * * * * *\"\nmin_uptime = \"100ms\"\n"
    ));
    p.up_d();
    let first = p.pid_of("svc").unwrap_or_default();
    assert!(first > 0, "{:#?}", p.events());
    assert!(
        wait_until(Duration::from_secs(10), || {
            p.pid_of("svc").is_some_and(|pid| pid != first)
        }),
        "the service should be rolled: {:#?}",
        p.events()
    );
    assert!(
        !events_of(&p.events(), "scheduled", "svc", None).is_empty(),
        "{:#?}",
        p.events()
    );
    assert!(
        wait_until(Duration::from_secs(5), || !alive(first)),
        "old pid {first} still alive"
    );
    p.pypm_ok(&["down"], 0);
}

#[test]
fn status_and_metrics_show_the_last_run_and_the_next() {
    let p = Project::new();
    let port = free_port();
    let job = p.sh("job", "sleep 0.2\nexit 0\n");
    p.write_config(&format!(
        "[pypm]\nhttp = \"127.0.0.1:{port}\"\n\n[apps.job]\ncommand = {job}\nkind = \"task\"\nschedule = \"* * * * * *\"\ntimezone = \"UTC\"\n"
    ));
    p.up_d();
    // Before or between runs, the reason says when the next one is; after one, how it went.
    let mut reason = String::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let row = p.row("job");
            reason = row["reason"].as_str().unwrap_or_default().to_string();
            row["state"] != "running" && reason.contains("last run succeeded after")
        }),
        "status after a run: {reason:?}"
    );
    assert!(reason.contains("; next run 20"), "{reason}");
    let metrics = match http_get(port, "/metrics", Duration::from_secs(10)) {
        Outcome::Ok(body) => body,
        other => panic!("/metrics: {other:?}"),
    };
    for family in [
        "pypm_task_last_success_timestamp_seconds{app=\"job\",instance=\"0\"} ",
        "pypm_task_last_duration_seconds{app=\"job\",instance=\"0\"} ",
    ] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(family))
            .unwrap_or_else(|| panic!("no `{family}` in\n{metrics}"));
        let v: f64 = line[family.len()..].parse().expect("a number");
        assert!(v > 0.0, "{line}");
    }
    p.pypm_ok(&["down"], 0);
}

#[test]
fn a_schedule_change_is_planned_as_a_reschedule_and_restarts_nothing() {
    let p = Project::new();
    let svc = p.sh("svc", "exec sleep 300\n");
    let cfg = |at: &str| format!("[apps.svc]\ncommand = {svc}\nrestart_schedule = \"{at}\"\n");
    p.write_config(&cfg("0 4 * * *"));
    p.up_d();
    let pid = p.pid_of("svc").expect("svc runs");
    p.write_config(&cfg("0 5 * * *"));
    let out = p.pypm(&["plan", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan --json");
    assert_eq!(plan["changes"][0]["verb"], "reschedule", "{plan:#}");
    assert_eq!(
        plan["changes"][0]["reason"], "restart_schedule changed",
        "{plan:#}"
    );
    p.pypm_ok(&["reload"], 0);
    p.assert_pid_kept("svc", pid, Duration::from_millis(500));
    p.pypm_ok(&["down"], 0);
}

#[test]
fn allow_runs_a_due_run_alongside_the_one_still_going() {
    let p = Project::new();
    let job = p.sh("job", "sleep 2.5\n");
    p.write_config(&format!(
        "[apps.job]\ncommand = {job}\nkind = \"task\"\nschedule = \"* * * * * *\"\nconcurrency = \"allow\"\n"
    ));
    p.up_d();
    // Two runs at once: two rows with a live pid.
    let mut rows = serde_json::Value::Null;
    assert!(
        wait_until(Duration::from_secs(15), || {
            rows = p.status_json()["instances"].clone();
            rows.as_array()
                .is_some_and(|r| r.iter().filter(|r| r["pid"].is_number()).count() >= 2)
        }),
        "two runs alongside expected: {rows:#}\n{:#?}",
        p.events()
    );
    let events = p.events();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "scheduled" && e["app"] == "job" && e["instance"] == 1),
        "a run in the extra slot: {events:#?}"
    );
    assert!(
        events_of(&events, "skipped", "job", None).is_empty(),
        "allow never skips: {events:#?}"
    );
    p.pypm_ok(&["down"], 0);
}
