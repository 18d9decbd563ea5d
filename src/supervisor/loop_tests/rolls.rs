//! Loop tests of rolls: surge, readiness, a replacement that fails, edits during a roll.
use super::*;

/// Rolled with a surge (`listen`): the replacement starts before the old process stops.
const READY_WEB: &str = "[apps.web]\ncommand = \"/bin/sleep 100\"\nlisten = [\"tcp://127.0.0.1:8000\"]\nstop_timeout = \"5s\"\nenv = { V = \"1\" }\n[apps.web.ready]\ntcp = \"127.0.0.1:9\"\ninterval = \"100ms\"\ntimeout = \"3s\"\n";

fn ready_web(v: &str) -> String {
    READY_WEB.replace("V = \"1\"", &format!("V = \"{v}\""))
}

/// A ready instance of `web` (pid 1001).
fn ready_harness() -> Harness {
    let mut h = Harness::new(READY_WEB);
    assert_eq!(
        h.take(),
        [spawn("web", 1001), probe("web", 1001, Which::Ready)]
    );
    assert_eq!(h.state("web"), State::Starting);
    h.probe("web", 1001, Which::Ready, true);
    assert_eq!(h.state("web"), State::Running);
    h
}

#[test]
fn not_ready_within_the_timeout_fails_the_start() {
    let mut h = Harness::new(READY_WEB);
    h.take();
    h.probe("web", 1001, Which::Ready, false);
    h.advance(Duration::from_millis(2999));
    assert_eq!(h.take(), []);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert!(
        h.inst("web")
            .reason()
            .is_some_and(|r| r.contains("not ready within 3s")),
        "{:?}",
        h.inst("web").reason()
    );
}

#[test]
fn a_roll_starts_the_replacement_and_stops_the_old_process_once_it_is_ready() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    assert_eq!(
        h.take(),
        [spawn("web", 1002), probe("web", 1002, Which::Ready)],
        "the old process keeps serving while the replacement starts"
    );
    assert_eq!(h.inst("web").old().map(|o| o.pid()), Some(1001));
    h.probe("web", 1002, Which::Ready, true);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    assert_eq!(h.pid("web"), Some(1002));
    h.advance(Duration::from_secs(5));
    assert_eq!(
        h.take(),
        [signal(1001, Signal::SIGKILL)],
        "an old process that outstays stop_timeout is killed"
    );
    h.exit(1001, None, Some(Signal::SIGKILL));
    assert!(h.inst("web").old().is_none());
    assert_eq!(h.state("web"), State::Running);
    assert_eq!(h.take(), []);
}

#[test]
fn a_replacement_that_dies_before_it_is_ready_keeps_the_old_process_and_ends_the_roll() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    h.take();
    h.exit(1002, Some(1), None);
    assert_eq!(h.pid("web"), Some(1001), "the old process stays");
    assert_eq!(h.state("web"), State::Running);
    assert!(
        h.inst("web")
            .reason()
            .is_some_and(|r| r.starts_with("roll stopped")),
        "{:?}",
        h.inst("web").reason()
    );
    h.advance(Duration::from_secs(60));
    assert_eq!(h.take(), [], "the failed spec is not retried on its own");
    let ev = h.events();
    assert!(ev.contains(&("failed".into(), "web".into())), "{ev:?}");
    // The next edit rolls again.
    h.edit(&ready_web("3"));
    assert_eq!(
        h.take(),
        [spawn("web", 1003), probe("web", 1003, Which::Ready)]
    );
}

#[test]
fn a_replacement_that_cannot_be_spawned_keeps_the_old_process() {
    let mut h = ready_harness();
    lock(&h.world).fail_spawn.insert("web".into());
    h.edit(&ready_web("2"));
    assert_eq!(h.take(), [], "no spawn happened and nothing was stopped");
    assert_eq!(h.pid("web"), Some(1001));
    assert_eq!(h.state("web"), State::Running);
}

#[test]
fn a_reload_during_a_roll_finishes_it_then_rolls_again_to_the_newest_file() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    assert_eq!(
        h.take(),
        [spawn("web", 1002), probe("web", 1002, Which::Ready)]
    );
    // Edited again before the replacement is ready: nothing is stopped, nothing more started
    // (one process serving, one starting, never a third).
    h.edit(&ready_web("3"));
    assert_eq!(h.take(), []);
    assert_eq!(h.inst("web").old().map(|o| o.pid()), Some(1001));
    h.probe("web", 1002, Which::Ready, true);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(
        h.take(),
        [spawn("web", 1003), probe("web", 1003, Which::Ready)],
        "once the first roll is over, the newest file rolls 1002 in turn"
    );
    assert_eq!(h.inst("web").old().map(|o| o.pid()), Some(1002));
    h.probe("web", 1003, Which::Ready, true);
    assert_eq!(h.take(), [signal(1002, Signal::SIGTERM)]);
    h.exit(1002, None, Some(Signal::SIGTERM));
    assert_eq!(h.take(), []);
    assert_eq!(h.pid("web"), Some(1003));
    assert_eq!(h.state("web"), State::Running);
    let want = h.sup.wants["web"].spec_hash;
    assert!(!h.inst("web").runs_other_spec(want), "runs the newest spec");
}

#[test]
fn a_replacement_still_times_out_when_the_file_changes_again_meanwhile() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    assert_eq!(
        h.take(),
        [spawn("web", 1002), probe("web", 1002, Which::Ready)]
    );
    h.edit(&ready_web("3"));
    h.advance(Duration::from_secs(3));
    assert_eq!(
        h.take(),
        [signal(1002, Signal::SIGTERM)],
        "the replacement's ready_timeout holds although a newer spec is wanted"
    );
    h.exit(1002, None, Some(Signal::SIGTERM));
    assert_eq!(h.pid("web"), Some(1001), "the old process keeps serving");
    assert_eq!(h.state("web"), State::Running);
    assert_eq!(h.take(), []);
}

#[test]
fn a_readiness_result_for_another_pid_or_state_changes_nothing() {
    let mut h = Harness::new(READY_WEB);
    h.take();
    h.probe("web", 4242, Which::Ready, true);
    assert_eq!(h.state("web"), State::Starting);
    h.probe("web", 1001, Which::Ready, false);
    assert_eq!(h.state("web"), State::Starting);
    h.probe("web", 1001, Which::Ready, true);
    assert_eq!(h.state("web"), State::Running);
    let ev = h.events();
    assert_eq!(ev.iter().filter(|(e, _)| e == "ready").count(), 1, "{ev:?}");
    // A late duplicate success is not a second `ready`.
    h.probe("web", 1001, Which::Ready, true);
    assert_eq!(h.events().iter().filter(|(e, _)| e == "ready").count(), 1);
}

#[test]
fn the_health_probe_started_once_ready_runs_with_the_instance_environment() {
    let mut h = Harness::new(
        "[apps.web]\ncommand = \"/bin/sleep 100\"\ninstances = 2\n[apps.web.ready]\ntcp = \"127.0.0.1:9\"\n[apps.web.health]\nexec = \"/bin/true\"\n",
    );
    h.take();
    for (idx, pid) in [(0, 1001), (1, 1002)] {
        h.send(Event::Probe(ProbeResult {
            app: "web".into(),
            idx,
            pid,
            which: Which::Ready,
            ok: true,
            detail: "ok".into(),
        }));
    }
    assert_eq!(
        h.take(),
        [
            probe("web", 1001, Which::Health),
            probe("web", 1002, Which::Health)
        ]
    );
    let targets = std::mem::take(&mut lock(&h.world).probe_targets);
    assert_eq!(targets.len(), 4, "two readiness and two health probes");
    for (which, t) in targets {
        let get = |k: &str| t.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let want = Some(t.idx.to_string());
        assert_eq!(get("PYPM_INSTANCE"), want, "{}.{} {which:?}", t.app, t.idx);
        assert_eq!(get("PYPM_APP").as_deref(), Some("web"), "{which:?}");
    }
}
