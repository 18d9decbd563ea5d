//! The restart policy, backoff and the transition table, tested without processes.
use super::*;
use crate::config::Program;
use crate::config::{App, Kind, RestartPolicy};

fn app() -> App {
    let c = crate::config::parse(
        "[apps.a]\ncommand = \"x\"\nrestart_delay = \"100ms\"\nrestart_delay_max = \"1s\"\nmax_restarts = 3\nrestart_window = \"60s\"\nmin_uptime = \"1s\"\n",
        std::path::Path::new("/tmp/pypm.toml"),
        "pypm.toml",
        &Default::default(),
    );
    match c {
        Ok(c) => (*c.apps["a"]).clone(),
        Err(e) => panic!("{}", e.render()),
    }
}

#[test]
fn transition_table() {
    use State::*;
    let all = [
        Waiting, Starting, Running, Stopping, Stopped, Completed, Backoff, Failed,
    ];
    // Rows: from; columns: to, in `all`'s order. 1 = allowed.
    let table: [(State, [u8; 8]); 8] = [
        (Waiting, [1, 1, 1, 0, 1, 0, 0, 1]),
        (Starting, [1, 1, 1, 1, 1, 1, 1, 1]),
        (Running, [1, 1, 1, 1, 1, 1, 1, 1]),
        (Stopping, [0, 1, 1, 1, 1, 1, 1, 1]),
        (Stopped, [1, 1, 1, 0, 1, 0, 0, 1]),
        (Completed, [1, 1, 1, 0, 1, 1, 0, 1]),
        (Backoff, [1, 1, 1, 0, 1, 0, 1, 1]),
        (Failed, [1, 1, 1, 0, 1, 0, 0, 1]),
    ];
    for (from, row) in table {
        for (to, allowed) in all.iter().zip(row) {
            assert_eq!(
                from.can_become(*to),
                allowed == 1,
                "{} -> {}",
                from.as_str(),
                to.as_str()
            );
        }
    }
}

#[test]
#[should_panic(expected = "stopped -> stopping")]
#[cfg(debug_assertions)]
fn a_transition_outside_the_table_is_caught() {
    let mut i = Instance::new("a", 0);
    i.transition(State::Stopping);
}

fn running(inst: &mut Instance, at: Instant) {
    inst.state = State::Running;
    inst.pid = Some(42);
    inst.started_at = Some(at);
}

#[test]
fn backoff_doubles_and_caps() {
    let b = Duration::from_millis(100);
    let m = Duration::from_secs(1);
    let got: Vec<u128> = (0..6).map(|a| backoff_delay(b, m, a).as_millis()).collect();
    assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
    assert_eq!(backoff_delay(b, m, 200), m);
}

#[test]
fn crash_loop_grows_delay_then_fails() {
    let a = app();
    let t0 = Instant::now();
    let mut i = Instance::new("a", 0);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..3 {
        running(&mut i, now);
        now += Duration::from_millis(10);
        on_exit(&a, &mut i, Some(1), None, now);
        assert_eq!(i.state, State::Backoff);
        let retry = i.retry_at.unwrap_or(now);
        delays.push((retry - now).as_millis());
        now = retry;
    }
    assert_eq!(delays, vec![100, 200, 400]);
    running(&mut i, now);
    on_exit(&a, &mut i, Some(1), None, now + Duration::from_millis(5));
    assert_eq!(i.state, State::Failed);
    assert!(
        i.reason
            .as_deref()
            .unwrap_or("")
            .contains("gave up after 3 restarts"),
        "{:?}",
        i.reason
    );
}

#[test]
fn stable_run_resets_backoff() {
    let a = app();
    let t0 = Instant::now();
    let mut i = Instance::new("a", 0);
    running(&mut i, t0);
    on_exit(&a, &mut i, Some(1), None, t0 + Duration::from_millis(1));
    running(&mut i, t0 + Duration::from_millis(200));
    on_exit(&a, &mut i, Some(1), None, t0 + Duration::from_secs(5));
    // Ran longer than min_uptime: the delay is back to the first step.
    assert_eq!(
        i.retry_at.map(|r| r - t0 - Duration::from_secs(5)),
        Some(Duration::from_millis(100))
    );
}

#[test]
fn restart_window_forgets_old_restarts() {
    let a = app();
    let t0 = Instant::now();
    let mut i = Instance::new("a", 0);
    let mut now = t0;
    for _ in 0..3 {
        running(&mut i, now);
        on_exit(&a, &mut i, Some(1), None, now);
        now += Duration::from_secs(30);
    }
    // The first restarts are older than the 60 s window now.
    running(&mut i, now);
    on_exit(&a, &mut i, Some(1), None, now);
    assert_eq!(i.state, State::Backoff);
}

#[test]
fn policies_and_kinds() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(2);
    let mut a = app();
    // A service that exits 0 under on-failure is stopped with the reason.
    a.restart = RestartPolicy::OnFailure;
    let mut i = Instance::new("a", 0);
    running(&mut i, t0);
    on_exit(&a, &mut i, Some(0), None, later);
    assert_eq!(
        (i.state, i.reason.as_deref()),
        (State::Stopped, Some("exited 0"))
    );
    // A task that exits 0 is completed, however quickly; one that fails under `never` is
    // failed.
    a.kind = Kind::Task;
    a.restart = RestartPolicy::Never;
    running(&mut i, t0);
    on_exit(&a, &mut i, Some(0), None, t0 + Duration::from_millis(5));
    assert_eq!(i.state, State::Completed);
    running(&mut i, t0);
    on_exit(&a, &mut i, Some(2), None, later);
    assert_eq!(
        (i.state, i.reason.as_deref()),
        (State::Failed, Some("exited 2"))
    );
    // Death by a signal pypm did not send is a failure; success codes are honoured.
    a.kind = Kind::Service;
    a.restart = RestartPolicy::OnFailure;
    a.success_exit_codes = vec![0, 3];
    running(&mut i, t0);
    on_exit(&a, &mut i, None, Some(9), later);
    assert_eq!(i.state, State::Backoff);
    running(&mut i, t0);
    on_exit(&a, &mut i, Some(3), None, later);
    assert_eq!(i.state, State::Stopped);
    // A stop pypm asked for is not a failure.
    running(&mut i, t0);
    i.stop_intent = Some(StopIntent::Stay);
    on_exit(&a, &mut i, None, Some(15), later);
    assert_eq!(i.state, State::Stopped);
    assert!(matches!(a.program, Program::Command(_)));
}

#[test]
fn a_replaced_process_is_kept_aside_and_handed_back_whole() {
    let t0 = Instant::now();
    let wall = SystemTime::now();
    let mut i = Instance::new("a", 0);
    i.record_start(7);
    i.started(42, 1234, t0, wall, false, None);
    i.replace();
    assert_eq!((i.pid(), i.start_ticks()), (None, None));
    let o = i.old().cloned().expect("the old process");
    assert_eq!(
        (o.pid(), o.start_ticks(), o.stopping()),
        (42, Some(1234), false)
    );
    // The replacement starts with another spec, then fails: the old process is the instance's
    // again, with its own start time and spec.
    i.record_start(8);
    i.started(43, 99, t0, wall, true, Some(t0 + Duration::from_secs(3)));
    assert_eq!(i.keep_old("roll stopped".into()), Some(42));
    assert_eq!(
        (
            i.pid(),
            i.start_ticks(),
            i.spec_hash(),
            i.state(),
            i.ready()
        ),
        (Some(42), Some(1234), Some(7), State::Running, true)
    );
    assert_eq!(
        (i.ready_deadline(), i.reason()),
        (None, Some("roll stopped"))
    );
    assert_eq!(i.keep_old("again".into()), None, "nothing left to keep");
}

#[test]
fn the_old_process_deadlines_follow_its_stop_and_kill() {
    let t0 = Instant::now();
    let mut i = Instance::new("a", 0);
    i.started(42, 1, t0, SystemTime::now(), false, None);
    i.replace();
    i.stop_old(t0 + Duration::from_secs(5));
    let o = || i.old().map(|o| (o.stopping(), o.kill_at()));
    assert_eq!(o(), Some((true, Some(t0 + Duration::from_secs(5)))));
    i.old_stop_missed(t0);
    assert_eq!(i.old().and_then(OldProcess::kill_at), Some(t0));
    i.old_kill_sent();
    assert_eq!(i.old().and_then(OldProcess::kill_at), None);
    i.old_exited();
    assert!(i.old().is_none() && !i.has_any_process());
}

#[test]
fn health_failures_count_up_and_are_taken_with_the_last_detail() {
    let mut i = Instance::new("a", 0);
    assert_eq!(i.health_failed("503".into()), 1);
    i.health_passed();
    assert_eq!(i.health_failed("refused".into()), 1);
    assert_eq!(i.health_failed("timeout".into()), 2);
    assert_eq!(i.take_health_failures(), (2, "timeout".to_string()));
    assert_eq!(i.health_failures(), 0);
}
