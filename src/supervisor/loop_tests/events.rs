//! Loop tests of the events the loop emits (`Effects::emit`): which, in which order, with what
//! detail — the lines `events.jsonl`, the notifiers and the HTTP event streams get.
use super::*;

/// An emitted event without its timestamp: (event, app, pid, detail).
type Ev = (String, String, Option<i32>, String);

fn ev(event: &str, app: &str, pid: Option<i32>, detail: &str) -> Ev {
    (event.into(), app.into(), pid, detail.into())
}

impl Harness {
    /// The events emitted since the last call, without their timestamps.
    fn take_evs(&mut self) -> Vec<Ev> {
        self.take_events()
            .into_iter()
            .map(|e| (e.event, e.app.unwrap_or_default(), e.pid, e.detail))
            .collect()
    }
}

#[test]
fn a_crash_emits_its_exit_then_its_restart_then_the_new_start() {
    let mut h = Harness::new(WEB);
    assert_eq!(
        h.take_evs(),
        [
            ev("started", "web", Some(1001), "/bin/sleep 100"),
            ev("ready", "web", Some(1001), "no readiness probe"),
        ]
    );
    h.exit(1001, Some(1), None);
    assert_eq!(
        h.take_evs(),
        [
            ev("exited", "web", Some(1001), "exit code 1"),
            ev("restarting", "web", None, "exited 1; restarting in 1s"),
        ]
    );
    h.advance(Duration::from_millis(999));
    assert_eq!(h.take_evs(), [], "nothing before restart_delay");
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.take_evs(),
        [
            ev("started", "web", Some(1002), "/bin/sleep 100"),
            ev("ready", "web", Some(1002), "no readiness probe"),
        ]
    );
}

#[test]
fn failing_health_checks_emit_unhealthy_once_then_the_exit_and_the_restart() {
    let mut h = Harness::new(&format!(
        "{WEB}[apps.web.health]\nhttp = \"http://127.0.0.1:9/\"\ninterval = \"1s\"\nfailures = 2\n"
    ));
    h.take_evs();
    h.probe("web", 1001, Which::Health, false);
    assert_eq!(h.take_evs(), [], "one failure of two is no event");
    h.probe("web", 1001, Which::Health, false);
    assert_eq!(
        h.take_evs(),
        [ev(
            "unhealthy",
            "web",
            Some(1001),
            "2 consecutive health check failures; restarting: refused"
        )]
    );
    // Results still on their way while it stops say nothing more.
    h.probe("web", 1001, Which::Health, false);
    assert_eq!(h.take_evs(), []);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(
        h.take_evs(),
        [
            ev("exited", "web", Some(1001), "signal SIGTERM"),
            ev(
                "restarting",
                "web",
                None,
                "unhealthy (2 consecutive health check failures); restarting in 1s"
            ),
        ]
    );
}

#[test]
fn a_spawn_that_fails_emits_failed_and_no_start() {
    let mut h = Harness::new(WEB);
    h.take_evs();
    lock(&h.world).fail_spawn.insert("web".into());
    h.exit(1001, Some(1), None);
    h.take_evs();
    h.advance(Duration::from_secs(1));
    let evs = h.take_evs();
    assert_eq!(evs.len(), 1, "{evs:?}");
    let (event, app, pid, detail) = &evs[0];
    assert_eq!(
        (event.as_str(), app.as_str(), *pid),
        ("failed", "web", None)
    );
    assert!(detail.starts_with("cannot start: "), "{detail}");
}
