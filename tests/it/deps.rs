//! Start order with `depends_on`.

use std::time::Duration;

use crate::basics::IDLE;
use crate::support::*;

#[test]
fn a_completed_dependency_gates_the_start() {
    let p = Project::new();
    let migrate = p.sh("migrate", "sleep 0.3\nexit 0\n");
    let web = p.sh("web", IDLE);
    p.write_config(&format!(
        "[apps.web]\ncommand = {web}\ndepends_on = {{ migrate = \"completed\" }}\n\n\
         [apps.migrate]\ncommand = {migrate}\nkind = \"task\"\n"
    ));
    p.up_d();
    p.wait_state("web", "running", Duration::from_secs(10));
    assert_eq!(p.state_of("migrate"), "completed");
    let events = p.events();
    let pos = |event: &str, app: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["app"] == app)
            .unwrap_or_else(|| panic!("no {event} {app} in {events:#?}"))
    };
    assert!(
        pos("exited", "migrate") < pos("started", "web"),
        "web started before migrate completed: {events:#?}"
    );
    let ts = |i: usize| parse_ts(events[i]["ts"].as_str().unwrap());
    assert!(ts(pos("started", "web")) >= ts(pos("exited", "migrate")));
}

#[test]
fn a_failed_dependency_leaves_the_dependent_waiting_with_the_reason() {
    let p = Project::new();
    let migrate = p.sh("migrate", "exit 1\n");
    let web = p.sh("web", IDLE);
    p.write_config(&format!(
        "[apps.web]\ncommand = {web}\ndepends_on = {{ migrate = \"completed\" }}\n\n\
         [apps.migrate]\ncommand = {migrate}\nkind = \"task\"\nrestart = \"never\"\n"
    ));
    let out = p.pypm(&["up", "-d", "--wait", "20s"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a task failed: {}",
        describe(&out)
    );
    p.wait_state("migrate", "failed", Duration::from_secs(5));
    let row = p.row("web");
    assert_eq!(row["state"], "waiting", "{row:#}");
    assert_eq!(row["pid"], serde_json::Value::Null, "{row:#}");
    assert!(
        row["reason"]
            .as_str()
            .is_some_and(|r| r.contains("migrate")),
        "the reason should name the dependency: {row:#}"
    );
    assert!(
        events_of(&p.events(), "started", "web", None).is_empty(),
        "web was started"
    );
    assert!(p.procs_with("web.sh").is_empty());
}

#[test]
fn up_d_returns_once_what_waits_is_blocked_by_a_failure_further_down() {
    let p = Project::new();
    let bad = p.sh("bad", "exit 2\n");
    let api = p.sh("api", IDLE);
    let web = p.sh("web", IDLE);
    p.write_config(&format!(
        "[apps.bad]\ncommand = {bad}\nkind = \"task\"\n\n\
         [apps.api]\ncommand = {api}\ndepends_on = {{ bad = \"completed\" }}\n\n\
         [apps.web]\ncommand = {web}\ndepends_on = [\"api\"]\n"
    ));
    let t0 = std::time::Instant::now();
    let out = p.pypm_timeout(&["up", "-d", "--wait", "60s"], Duration::from_secs(90));
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        took < Duration::from_secs(20),
        "up -d waited {took:?} although nothing could start any more"
    );
    let web = p.row("web");
    assert_eq!(web["state"], "waiting", "{web:#}");
    assert_eq!(
        web["reason"], "waiting for `api`, which waits for `bad`, which failed",
        "{web:#}"
    );
}
