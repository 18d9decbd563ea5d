//! Rolls: one instance at a time, surge (replacement first), min_uptime, specs given up.
use super::*;

#[test]
fn roll_replaces_one_instance_at_a_time() {
    let mut w = want("a", &[]);
    w.instances = 3;
    let d = desired(vec![w]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    let (a, _) = plan(&d, &obs, now);
    apply(&d, &mut obs, &a, now, &mut pid);
    for i in obs.instances.values_mut() {
        i.ask_restart();
    }
    let mut stops = Vec::new();
    for _ in 0..12 {
        let (a, _) = plan(&d, &obs, now);
        let stopping_now = a
            .iter()
            .filter(|x| matches!(x, Action::Stop { .. }))
            .count();
        assert!(stopping_now <= 1, "{a:?}");
        for act in &a {
            if let Action::Stop { idx, .. } = act {
                stops.push(*idx);
            }
        }
        apply(&d, &mut obs, &a, now, &mut pid);
        let stopping: Vec<(String, u32)> = obs
            .instances
            .iter()
            .filter(|(_, i)| i.state() == State::Stopping)
            .map(|(k, _)| k.clone())
            .collect();
        for (app, idx) in stopping {
            exit(&mut obs, &app, idx, State::Stopped);
            if let Some(i) = obs.instances.get_mut(&(app, idx)) {
                i.set_reason("restarting");
            }
        }
    }
    assert_eq!(stops, vec![0, 1, 2]);
    assert!(obs.instances.values().all(|i| i.state() == State::Running));
}

#[test]
fn surge_roll_starts_the_replacement_before_stopping_the_old() {
    let mut w = want("a", &[]);
    w.instances = 2;
    w.surge = true;
    w.has_ready_probe = true;
    let d = desired(vec![w]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    let (a, _) = plan(&d, &obs, now);
    apply(&d, &mut obs, &a, now, &mut pid);
    for i in obs.instances.values_mut() {
        // Both passed their readiness probe.
        assert_eq!(i.state(), State::Starting);
        i.set_state(State::Running);
        i.set_ready(true);
        i.ask_restart();
    }
    let key0 = ("a".to_string(), 0);
    // Instance 0: replacement first; nothing is stopped while it is not ready.
    let (a, _) = plan(&d, &obs, now);
    assert_eq!(
        a,
        vec![Action::Replace {
            app: "a".into(),
            idx: 0
        }]
    );
    apply(&d, &mut obs, &a, now, &mut pid);
    let (a, _) = plan(&d, &obs, now);
    assert!(a.is_empty(), "{a:?}");
    // Ready: the old process of instance 0 is stopped; instance 1 waits for that.
    if let Some(i) = obs.instances.get_mut(&key0) {
        i.set_state(State::Running);
        i.set_ready(true);
    }
    let (a, _) = plan(&d, &obs, now);
    assert_eq!(
        a,
        vec![Action::StopOld {
            app: "a".into(),
            idx: 0
        }]
    );
    apply(&d, &mut obs, &a, now, &mut pid);
    assert!(plan(&d, &obs, now).0.is_empty());
    if let Some(i) = obs.instances.get_mut(&key0) {
        i.old_exited();
    }
    let (a, _) = plan(&d, &obs, now);
    assert_eq!(
        a,
        vec![Action::Replace {
            app: "a".into(),
            idx: 1
        }]
    );
}

#[test]
fn surge_without_probe_waits_min_uptime() {
    let mut w = want("a", &[]);
    w.surge = true;
    let d = desired(vec![w]);
    let t0 = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    let (a, _) = plan(&d, &obs, t0);
    apply(&d, &mut obs, &a, t0, &mut pid);
    if let Some(i) = obs.instances.get_mut(&("a".to_string(), 0)) {
        i.ask_restart();
    }
    let (a, _) = plan(&d, &obs, t0);
    apply(&d, &mut obs, &a, t0, &mut pid);
    if let Some(i) = obs.instances.get_mut(&("a".to_string(), 0)) {
        i.set_state(State::Running);
        i.set_ready(true);
    }
    let (a, wake) = plan(&d, &obs, t0);
    assert!(a.is_empty());
    assert_eq!(wake, Some(t0 + Duration::from_secs(1)));
    let (a, _) = plan(&d, &obs, t0 + Duration::from_secs(1));
    assert_eq!(
        a,
        vec![Action::StopOld {
            app: "a".into(),
            idx: 0
        }]
    );
}

/// Restart on change follows from state: an instance started with another spec's hash is
/// rolled; one whose roll was given up for this hash is not; a restart asked rolls it again.
#[test]
fn an_instance_running_another_spec_is_rolled_until_the_roll_is_given_up() {
    let mut w = want("api", &[]);
    w.spec_hash = 2;
    let d = desired(vec![w]);
    let now = Instant::now();
    let mut obs = Observed::default();
    obs.instances
        .insert(("api".into(), 0), running("api", 0, 10, 2));
    assert_eq!(plan(&d, &obs, now).0, vec![], "same spec: nothing to do");
    if let Some(i) = obs.instances.get_mut(&("api".to_string(), 0)) {
        i.record_start(1);
    }
    let roll = vec![Action::Stop {
        app: "api".into(),
        idx: 0,
        intent: StopIntent::Restart,
    }];
    assert_eq!(plan(&d, &obs, now).0, roll, "another spec: rolled");
    obs.abandoned.insert("api".into(), 2);
    assert_eq!(plan(&d, &obs, now).0, vec![], "roll given up for this spec");
    if let Some(i) = obs.instances.get_mut(&("api".to_string(), 0)) {
        i.ask_restart();
    }
    assert_eq!(plan(&d, &obs, now).0, roll, "`pypm restart` asks anew");
}
