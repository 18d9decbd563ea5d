use std::time::{Duration, Instant};

use indexmap::IndexMap;
use proptest::prelude::*;

use super::*;
use crate::config::Condition;
use crate::supervisor::record;

fn want(name: &str, deps: &[(&str, Condition)]) -> Want {
    Want {
        name: name.into(),
        kind: Kind::Service,
        enabled: true,
        instances: 1,
        depends_on: deps.iter().map(|(d, c)| (d.to_string(), *c)).collect(),
        stop_timeout: Duration::from_secs(10),
        surge: false,
        min_uptime: Duration::from_secs(1),
        has_ready_probe: false,
        schedule: None,
        spec_hash: 0,
        ready_timeout: None,
        health_failures: None,
        memory_max: None,
    }
}

fn desired(ws: Vec<Want>) -> IndexMap<String, Want> {
    ws.into_iter().map(|w| (w.name.clone(), w)).collect()
}

/// What the loop does for each action, minus the processes: the loop's own bookkeeping
/// (`record.rs`), each spawn succeeding with the next pid.
fn apply(
    d: &IndexMap<String, Want>,
    obs: &mut Observed,
    actions: &[Action],
    now: Instant,
    next_pid: &mut i32,
) {
    for a in actions {
        record::record(obs, d, a, now);
        if let Action::Start { app, idx } | Action::Replace { app, idx } = a {
            record::start_asked(obs, d, app, *idx);
            *next_pid += 1;
            let p = record::Spawned {
                pid: *next_pid,
                start_ticks: 0,
            };
            record::spawned(obs, d, &(app.clone(), *idx), Ok(p), now);
        }
    }
}

fn exit(obs: &mut Observed, app: &str, idx: u32, state: State) {
    if let Some(i) = obs.instances.get_mut(&(app.to_string(), idx)) {
        i.set_exited(state);
    }
}

fn starts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { app, idx } => Some(format!("{app}.{idx}")),
            _ => None,
        })
        .collect()
}

#[test]
fn starts_in_dependency_waves() {
    let d = desired(vec![
        want(
            "web",
            &[("migrate", Condition::Completed), ("db", Condition::Ready)],
        ),
        want("migrate", &[("db", Condition::Started)]),
        want("db", &[]),
        want("worker", &[]),
    ]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 100;
    let (a, _) = plan(&d, &obs, now);
    assert_eq!(starts(&a), vec!["db.0", "worker.0"]);
    assert!(a.contains(&Action::Wait {
        app: "web".into(),
        idx: 0,
        reason: "waiting for `migrate` to complete".into()
    }));
    apply(&d, &mut obs, &a, now, &mut pid);
    let (a, _) = plan(&d, &obs, now);
    assert_eq!(starts(&a), vec!["migrate.0"]);
    apply(&d, &mut obs, &a, now, &mut pid);
    assert!(starts(&plan(&d, &obs, now).0).is_empty());
    exit(&mut obs, "migrate", 0, State::Completed);
    assert_eq!(starts(&plan(&d, &obs, now).0), vec!["web.0"]);
}

#[test]
fn failed_dependency_keeps_dependents_waiting() {
    let d = desired(vec![
        want("web", &[("db", Condition::Ready)]),
        want("db", &[]),
    ]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    let (a, _) = plan(&d, &obs, now);
    apply(&d, &mut obs, &a, now, &mut pid);
    // db became ready, so web started; now consider a fresh web with db failed.
    obs.instances.shift_remove(&("web".to_string(), 0));
    exit(&mut obs, "db", 0, State::Failed);
    let (a, _) = plan(&d, &obs, now);
    assert_eq!(
        a,
        vec![Action::Wait {
            app: "web".into(),
            idx: 0,
            reason: "waiting for `db`, which failed".into()
        }]
    );
}

#[test]
fn shutdown_stops_in_reverse_dependency_order() {
    let d = desired(vec![
        want("web", &[("api", Condition::Started)]),
        want("api", &[("db", Condition::Started)]),
        want("db", &[]),
    ]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    for _ in 0..3 {
        let (a, _) = plan(&d, &obs, now);
        apply(&d, &mut obs, &a, now, &mut pid);
    }
    obs.shutting_down = true;
    let mut order = Vec::new();
    for _ in 0..5 {
        let (a, _) = plan(&d, &obs, now);
        for act in &a {
            if let Action::Stop { app, .. } = act {
                order.push(app.clone());
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
        }
    }
    assert_eq!(order, vec!["web", "api", "db"]);
}

#[test]
fn shutdown_order_goes_through_apps_that_no_longer_run() {
    // api needed migrate (a task, completed) which needed db: db stops after api.
    let mut migrate = want("migrate", &[("db", Condition::Started)]);
    migrate.kind = Kind::Task;
    let d = desired(vec![
        want("api", &[("migrate", Condition::Completed)]),
        migrate,
        want("db", &[]),
    ]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    for _ in 0..2 {
        let (a, _) = plan(&d, &obs, now);
        apply(&d, &mut obs, &a, now, &mut pid);
    }
    exit(&mut obs, "migrate", 0, State::Completed);
    let (a, _) = plan(&d, &obs, now);
    apply(&d, &mut obs, &a, now, &mut pid);
    assert!(obs.instances[&("api".to_string(), 0)].is_live());
    obs.shutting_down = true;
    let (a, _) = plan(&d, &obs, now);
    let stops: Vec<&str> = a
        .iter()
        .filter_map(|x| match x {
            Action::Stop { app, .. } => Some(app.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(stops, vec!["api"], "db must wait for api: {a:?}");
}

#[test]
fn restart_never_starts_an_app_whose_dependency_failed() {
    let d = desired(vec![
        want("web", &[("db", Condition::Ready)]),
        want("db", &[]),
    ]);
    let now = Instant::now();
    let mut obs = Observed::default();
    obs.instances.insert(("db".into(), 0), {
        let mut i = Instance::new("db", 0);
        i.set_state(State::Failed);
        i
    });
    obs.instances.insert(("web".into(), 0), {
        let mut i = Instance::new("web", 0);
        i.set_state(State::Waiting);
        i.set_reason("waiting for `db`, which failed");
        i.ask_restart(); // `pypm restart web`
        i
    });
    let (a, _) = plan(&d, &obs, now);
    assert!(starts(&a).is_empty(), "{a:?}");
}

#[test]
fn a_dependency_blocked_by_a_failure_further_down_names_it() {
    let d = desired(vec![
        want("web", &[("api", Condition::Started)]),
        want("api", &[("migrate", Condition::Completed)]),
        want("migrate", &[]),
    ]);
    let now = Instant::now();
    let mut obs = Observed::default();
    obs.instances.insert(("migrate".into(), 0), {
        let mut i = Instance::new("migrate", 0);
        i.set_state(State::Failed);
        i.set_ever_started();
        i
    });
    let (a, _) = plan(&d, &obs, now);
    assert!(
        a.contains(&Action::Wait {
            app: "web".into(),
            idx: 0,
            reason: "waiting for `api`, which waits for `migrate`, which failed".into()
        }),
        "{a:?}"
    );
    assert!(
        a.contains(&Action::Wait {
            app: "api".into(),
            idx: 0,
            reason: "waiting for `migrate`, which failed".into()
        }),
        "{a:?}"
    );
}

#[test]
fn stop_escalates_to_kill_at_the_deadline() {
    let d = desired(vec![want("a", &[])]);
    let t0 = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    let (a, _) = plan(&d, &obs, t0);
    apply(&d, &mut obs, &a, t0, &mut pid);
    obs.shutting_down = true;
    let (a, _) = plan(&d, &obs, t0);
    apply(&d, &mut obs, &a, t0, &mut pid);
    let (a, wake) = plan(&d, &obs, t0 + Duration::from_secs(1));
    assert!(a.is_empty());
    assert_eq!(wake, Some(t0 + Duration::from_secs(10)));
    let (a, _) = plan(&d, &obs, t0 + Duration::from_secs(10));
    assert_eq!(
        a,
        vec![Action::Kill {
            app: "a".into(),
            idx: 0
        }]
    );
}

#[test]
fn readiness_deadline_fails_the_start() {
    let d = desired(vec![want("a", &[])]);
    let t0 = Instant::now();
    let mut obs = Observed::default();
    let mut i = Instance::new("a", 0);
    i.set_state(State::Starting);
    i.set_pid(Some(7));
    i.set_ever_started();
    i.set_ready_deadline(t0 + Duration::from_secs(60));
    obs.instances.insert(("a".into(), 0), i);
    let (a, wake) = plan(&d, &obs, t0);
    assert!(a.is_empty());
    assert_eq!(wake, Some(t0 + Duration::from_secs(60)));
    let (a, _) = plan(&d, &obs, t0 + Duration::from_secs(60));
    assert_eq!(
        a,
        vec![Action::ReadyTimeout {
            app: "a".into(),
            idx: 0
        }]
    );
}

#[test]
fn backoff_waits_for_its_deadline() {
    let d = desired(vec![want("a", &[])]);
    let t0 = Instant::now();
    let mut obs = Observed::default();
    let mut i = Instance::new("a", 0);
    i.set_state(State::Backoff);
    i.set_ever_started();
    i.set_retry_at(t0 + Duration::from_millis(400));
    obs.instances.insert(("a".into(), 0), i);
    let (a, wake) = plan(&d, &obs, t0);
    assert!(a.is_empty());
    assert_eq!(wake, Some(t0 + Duration::from_millis(400)));
    let (a, _) = plan(&d, &obs, t0 + Duration::from_millis(400));
    assert_eq!(starts(&a), vec!["a.0"]);
}

#[test]
fn disable_scale_and_remove() {
    let mut w = want("a", &[]);
    w.instances = 3;
    let d = desired(vec![w.clone(), want("b", &[])]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let mut pid = 1;
    let (a, _) = plan(&d, &obs, now);
    apply(&d, &mut obs, &a, now, &mut pid);
    assert_eq!(obs.instances.len(), 4);

    // Scale 3 → 1: only a.1 and a.2 stop; b is removed.
    w.instances = 1;
    let d2 = desired(vec![w.clone()]);
    let (a, _) = plan(&d2, &obs, now);
    let stops: Vec<String> = a
        .iter()
        .filter_map(|x| match x {
            Action::Stop { app, idx, .. } => Some(format!("{app}.{idx}")),
            _ => None,
        })
        .collect();
    assert_eq!(stops, vec!["a.1", "a.2", "b.0"]);

    // Disabled: stopped and settled as `disabled`.
    w.enabled = false;
    let d3 = desired(vec![w]);
    let mut obs2 = Observed::default();
    let (a, _) = plan(&d3, &obs2, now);
    assert_eq!(
        a,
        vec![Action::Settle {
            app: "a".into(),
            idx: 0,
            reason: "disabled".into()
        }]
    );
    apply(&d, &mut obs2, &a, now, &mut pid);
    assert!(plan(&d3, &obs2, now).0.is_empty());
}

fn arb_world() -> impl Strategy<Value = (IndexMap<String, Want>, Observed)> {
    let n = 6usize;
    let deps = proptest::collection::vec(proptest::collection::vec((0..n, 0..3u8), 0..3), n);
    let states = proptest::collection::vec((0..8u8, any::<bool>()), n);
    (deps, states).prop_map(move |(deps, states)| {
        let names: Vec<String> = (0..n).map(|i| format!("app{i}")).collect();
        let mut d = IndexMap::new();
        for (i, ds) in deps.iter().enumerate() {
            // Only depend on lower-numbered apps: the validated file has no cycles.
            let depends_on = ds
                .iter()
                .filter(|(j, _)| *j < i)
                .map(|(j, c)| {
                    let cond =
                        [Condition::Started, Condition::Ready, Condition::Completed][*c as usize];
                    (names[*j].clone(), cond)
                })
                .collect::<Vec<_>>();
            let mut w = want(&names[i], &[]);
            w.depends_on = depends_on;
            d.insert(names[i].clone(), w);
        }
        let mut obs = Observed::default();
        for (i, (s, started)) in states.iter().enumerate() {
            let state = State::ALL[*s as usize];
            let mut inst = Instance::new(&names[i], 0);
            inst.set_state(state);
            if *started || !matches!(state, State::Waiting | State::Stopped) {
                inst.set_ever_started();
            }
            if matches!(state, State::Running | State::Starting | State::Stopping) {
                inst.set_pid(Some(1000 + i as i32));
                inst.set_ready(state == State::Running);
            }
            obs.instances.insert((names[i].clone(), 0), inst);
        }
        (d, obs)
    })
}

proptest! {
    #[test]
    fn never_starts_before_dependencies((d, obs) in arb_world()) {
        let now = Instant::now();
        let (actions, _) = plan(&d, &obs, now);
        for a in &actions {
            // A first start waits for dependencies; a crash restart (backoff) does not.
            if let Action::Start { app, idx } = a
                && !obs.instances.get(&(app.clone(), *idx)).is_some_and(|i| i.ever_started())
            {
                for (dep, cond) in &d[app].depends_on {
                    prop_assert!(
                        dependency_met(&d[dep], *cond, &obs).is_ok(),
                        "{app} started before {dep} was {cond:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn plan_is_idempotent((d, obs) in arb_world()) {
        let now = Instant::now();
        // Pure: the same input gives the same answer.
        prop_assert_eq!(plan(&d, &obs, now), plan(&d, &obs, now));
        // Once its actions are recorded, planning again never repeats one for the same instance.
        let (first, _) = plan(&d, &obs, now);
        let mut after = obs.clone();
        let mut pid = 5000;
        apply(&d, &mut after, &first, now, &mut pid);
        let (second, _) = plan(&d, &after, now);
        for a in &second {
            prop_assert!(!first.contains(a), "repeated {a:?}");
        }
    }
}

/// The health threshold is the planner's: the handler only counts failed checks.
#[test]
fn health_failures_at_the_limit_fail_the_instance() {
    let mut w = want("api", &[]);
    w.health_failures = Some(3);
    let d = desired(vec![w]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let key = ("api".to_string(), 0);
    obs.instances.insert(key.clone(), {
        let mut i = running("api", 0, 10, 0);
        i.health_failed("503".into());
        i.health_failed("503".into());
        i
    });
    assert_eq!(plan(&d, &obs, now).0, vec![], "2 of 3: nothing yet");
    if let Some(i) = obs.instances.get_mut(&key) {
        i.health_failed("503".into());
    }
    let unhealthy = vec![Action::Unhealthy {
        app: "api".into(),
        idx: 0,
    }];
    assert_eq!(plan(&d, &obs, now).0, unhealthy);
    if let Some(i) = obs.instances.get_mut(&key) {
        i.set_state(State::Stopping);
    }
    assert_eq!(plan(&d, &obs, now).0, vec![], "already stopping");
}

/// `memory_max` is the planner's: it asks for a sample every interval while a limited
/// instance runs, and fails an instance the sample found over the limit.
#[test]
fn memory_is_sampled_on_schedule_and_an_instance_over_it_fails() {
    let mut w = want("api", &[]);
    w.memory_max = Some(1 << 20);
    let d = desired(vec![w, want("free", &[])]);
    let now = Instant::now();
    let mut obs = Observed::default();
    let key = ("api".to_string(), 0);
    obs.instances.insert(key.clone(), running("api", 0, 10, 0));
    obs.instances
        .insert(("free".into(), 0), running("free", 0, 11, 0));
    assert_eq!(plan(&d, &obs, now).0, vec![Action::SampleMemory]);
    obs.memory_sampled_at = Some(now);
    let (actions, wake) = plan(&d, &obs, now);
    assert_eq!(actions, vec![], "sampled just now");
    assert_eq!(wake, Some(now + MEMORY_SAMPLE_INTERVAL));
    let later = now + MEMORY_SAMPLE_INTERVAL;
    assert_eq!(plan(&d, &obs, later).0, vec![Action::SampleMemory]);
    if let Some(i) = obs.instances.get_mut(&key) {
        i.over_memory_seen("RSS 2 MiB > memory_max 1 MiB".into());
    }
    let over = vec![Action::OverMemory {
        app: "api".into(),
        idx: 0,
    }];
    assert_eq!(plan(&d, &obs, now).0, over);
    if let Some(i) = obs.instances.get_mut(&key) {
        i.set_state(State::Stopping);
    }
    let (actions, wake) = plan(&d, &obs, now);
    assert_eq!(actions, vec![], "already stopping; nothing limited runs");
    assert_eq!(wake, None, "no sample while no limited instance runs");
}

/// A second stop signal is a decision too: everything is killed at once, nothing else planned.
#[test]
fn a_second_stop_signal_kills_everything() {
    let d = desired(vec![
        want("db", &[]),
        want("api", &[("db", Condition::Started)]),
    ]);
    let now = Instant::now();
    let mut obs = Observed::default();
    obs.instances
        .insert(("db".into(), 0), running("db", 0, 10, 0));
    obs.instances
        .insert(("api".into(), 0), running("api", 0, 11, 0));
    obs.shutting_down = true;
    obs.stop_signals = 1;
    let (first, _) = plan(&d, &obs, now);
    assert!(
        first
            .iter()
            .all(|a| matches!(a, Action::Stop { app, .. } if app == "api")),
        "one signal: an ordered stop, dependents first: {first:?}"
    );
    obs.stop_signals = 2;
    assert_eq!(plan(&d, &obs, now), (vec![Action::KillAll], None));
    for i in obs.instances.values_mut() {
        i.set_pid(None);
        i.set_state(State::Stopped);
    }
    assert!(
        !plan(&d, &obs, now).0.contains(&Action::KillAll),
        "nothing left to kill"
    );
}

/// A running, ready instance of `app` with `pid`, started with the spec hashed `spec`.
fn running(app: &str, idx: u32, pid: i32, spec: u64) -> Instance {
    let mut i = Instance::new(app, idx);
    i.set_state(State::Running);
    i.set_pid(Some(pid));
    i.set_ready(true);
    i.set_ever_started();
    i.record_start(spec);
    i
}

mod rolls;
mod schedules;

/// The planner's cost at scale (run by hand: `cargo test --release --lib plan_cost -- --ignored
/// --nocapture`): one pass over 3,000 running apps.
#[test]
#[ignore]
fn plan_cost_at_3000_apps() {
    let now = Instant::now();
    let d = desired((0..3000).map(|n| want(&format!("app{n}"), &[])).collect());
    let mut obs = Observed::default();
    for n in 0..3000 {
        let name = format!("app{n}");
        obs.instances
            .insert((name.clone(), 0), running(&name, 0, n + 10, 0));
    }
    let (a, _) = plan(&d, &obs, now);
    assert!(a.is_empty(), "{:?}", &a[..a.len().min(3)]);
    let t0 = Instant::now();
    for _ in 0..100 {
        std::hint::black_box(plan(&d, &obs, now));
    }
    println!(
        "plan, 3,000 running apps: {:?} per pass",
        t0.elapsed() / 100
    );
}
