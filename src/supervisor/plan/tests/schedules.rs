//! Schedules as the planner sees them: due times as deadlines, `concurrency`, `@reboot`.
use super::*;

fn scheduled_task(name: &str, due: Option<Instant>) -> Want {
    let mut w = want(name, &[]);
    w.kind = Kind::Task;
    w.schedule = Some(Scheduled {
        due,
        concurrency: crate::config::Concurrency::Forbid,
        at_start: false,
    });
    w
}

#[test]
fn a_scheduled_task_waits_for_its_due_time_as_a_deadline() {
    let t0 = Instant::now();
    let due = t0 + Duration::from_secs(60);
    let d = desired(vec![scheduled_task("job", Some(due))]);
    let mut obs = Observed::default();
    let mut pid = 0;
    // At start: not started, settled as waiting for its schedule, and the wake is the due time.
    let (actions, wake) = plan(&d, &obs, t0);
    assert!(starts(&actions).is_empty(), "{actions:?}");
    assert_eq!(wake, Some(due));
    apply(&d, &mut obs, &actions, t0, &mut pid);
    assert_eq!(
        obs.instances[&("job".to_string(), 0)].reason(),
        Some(SCHEDULED)
    );
    // Idempotent: nothing more to do before the due time, and the same deadline.
    let (again, wake) = plan(&d, &obs, t0 + Duration::from_secs(30));
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(wake, Some(due));
    // At the due time: a `Due`, for the loop to start the run.
    let (actions, _) = plan(&d, &obs, due);
    assert_eq!(actions, vec![Action::Due { app: "job".into() }]);
}

#[test]
fn a_due_run_starts_and_a_failed_run_does_not_stop_the_next() {
    let t0 = Instant::now();
    let d = desired(vec![scheduled_task(
        "job",
        Some(t0 + Duration::from_secs(60)),
    )]);
    let mut obs = Observed::default();
    let mut pid = 0;
    let (actions, _) = plan(&d, &obs, t0);
    apply(&d, &mut obs, &actions, t0, &mut pid);
    // What the loop does on `Due` for a task that is not running: request a run.
    request_run(&mut obs, "job");
    let (actions, _) = plan(&d, &obs, t0);
    assert_eq!(starts(&actions), vec!["job.0"]);
    apply(&d, &mut obs, &actions, t0, &mut pid);
    exit(&mut obs, "job", 0, State::Failed);
    // Failed: nothing starts until the schedule is due again, and then it runs.
    let (actions, _) = plan(&d, &obs, t0 + Duration::from_secs(1));
    assert!(starts(&actions).is_empty(), "{actions:?}");
    request_run(&mut obs, "job");
    let (actions, _) = plan(&d, &obs, t0 + Duration::from_secs(60));
    assert_eq!(starts(&actions), vec!["job.0"]);
}

#[test]
fn replace_stops_the_running_run_and_reboot_runs_at_start() {
    let t0 = Instant::now();
    let mut w = scheduled_task("job", None);
    let d = desired(vec![w.clone()]);
    let mut obs = Observed::default();
    let mut pid = 0;
    let (actions, wake) = plan(&d, &obs, t0);
    assert!(starts(&actions).is_empty());
    assert_eq!(wake, None, "no due time: no wake-up (idle stays idle)");
    apply(&d, &mut obs, &actions, t0, &mut pid);
    // A running run whose instance the loop marked for replacement is stopped, then restarted.
    request_run(&mut obs, "job");
    let (actions, _) = plan(&d, &obs, t0);
    apply(&d, &mut obs, &actions, t0, &mut pid);
    request_run(&mut obs, "job");
    let (actions, _) = plan(&d, &obs, t0);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Stop {
                intent: StopIntent::Restart,
                ..
            }
        )),
        "{actions:?}"
    );
    // `@reboot` runs when the supervisor starts, like a task without a schedule.
    if let Some(s) = w.schedule.as_mut() {
        s.at_start = true;
    }
    let (actions, _) = plan(&desired(vec![w]), &Observed::default(), t0);
    assert_eq!(starts(&actions), vec!["job.0"]);
}

#[test]
fn a_disabled_or_shutting_down_schedule_is_not_due() {
    let t0 = Instant::now();
    let mut w = scheduled_task("job", Some(t0));
    let mut obs = Observed {
        shutting_down: true,
        ..Default::default()
    };
    let (actions, wake) = plan(&desired(vec![w.clone()]), &obs, t0);
    assert!(!actions.contains(&Action::Due { app: "job".into() }));
    assert_eq!(wake, None);
    obs.shutting_down = false;
    w.enabled = false;
    let (actions, _) = plan(&desired(vec![w]), &obs, t0);
    assert!(!actions.contains(&Action::Due { app: "job".into() }));
}

/// `concurrency = "allow"`: a run asked for in a slot past `instances` starts once, is left
/// alone while it runs, and its record goes when it ends.
#[test]
fn an_allowed_overlapping_run_starts_once_and_is_forgotten_when_done() {
    let mut w = want("job", &[]);
    w.kind = Kind::Task;
    w.schedule = Some(Scheduled {
        due: None,
        concurrency: crate::config::Concurrency::Allow,
        at_start: false,
    });
    let d = desired(vec![w]);
    let now = Instant::now();
    let mut obs = Observed::default();
    obs.instances
        .insert(("job".into(), 0), running("job", 0, 10, 0));
    let extra = ("job".to_string(), 1);
    obs.instances.insert(extra.clone(), {
        let mut i = Instance::new("job", 1);
        i.ask_restart();
        i
    });
    let start = Action::Start {
        app: "job".into(),
        idx: 1,
    };
    assert_eq!(plan(&d, &obs, now).0, vec![start]);
    obs.instances
        .insert(extra.clone(), running("job", 1, 11, 0));
    assert_eq!(plan(&d, &obs, now).0, vec![], "left alone while it runs");
    if let Some(i) = obs.instances.get_mut(&extra) {
        i.set_pid(None);
        i.set_state(State::Completed);
    }
    assert_eq!(
        plan(&d, &obs, now).0,
        vec![Action::Forget {
            app: "job".into(),
            idx: 1
        }]
    );
}

/// What the loop does on `Due` for a task: ask for a run (or, if it runs, a replacement).
fn request_run(obs: &mut Observed, app: &str) {
    if let Some(i) = obs.instances.get_mut(&(app.to_string(), 0)) {
        i.ask_restart();
    }
}
