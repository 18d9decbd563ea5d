//! What each planned action, and each spawn's outcome, does to the observed state — pure: no
//! process, no file, no clock (time is an argument). The loop (`apply.rs`) records an action,
//! then performs its effects; the planner's property tests (`plan/tests.rs`) record the very
//! same way, so the planner is checked against the real bookkeeping, not a copy of it.
//!
//! What the bookkeeping decides (the instance is `starting` or `running` once spawned; a
//! replacement that failed before it was ready hands the instance back to its old process)
//! lives here too; the events it implies are returned as [`Note`]s for the loop to write.
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;

use super::plan::{Action, Key, Observed, Want};
use super::state::Instance;
use crate::config::keys::EventKind;

/// An event the bookkeeping implies (written by the loop, as every event).
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub kind: EventKind,
    pub app: String,
    pub idx: u32,
    pub pid: Option<i32>,
    pub detail: String,
}

/// What a started process is, for [`spawned`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spawned {
    pub pid: i32,
    /// Its start time, for identity checks before signalling.
    pub start_ticks: u64,
}

const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn stop_timeout(wants: &IndexMap<String, Want>, app: &str) -> Duration {
    wants
        .get(app)
        .map_or(DEFAULT_STOP_TIMEOUT, |w| w.stop_timeout)
}

fn entry<'a>(obs: &'a mut Observed, app: &str, idx: u32) -> &'a mut Instance {
    obs.instances
        .entry((app.to_string(), idx))
        .or_insert_with(|| Instance::new(app, idx))
}

/// Records `action` as issued. For `Start` and `Replace` the spawn follows: [`start_asked`]
/// before it, [`spawned`] with its outcome.
pub fn record(
    obs: &mut Observed,
    wants: &IndexMap<String, Want>,
    action: &Action,
    now: Instant,
) -> Vec<Note> {
    let mut notes = Vec::new();
    match action {
        // Recorded with the spawn (`start_asked`, `spawned`).
        Action::Start { .. } | Action::Due { .. } => {}
        Action::Stop { app, idx, intent } => {
            let timeout = stop_timeout(wants, app);
            if let Some(i) = obs.instances.get_mut(&(app.clone(), *idx)) {
                i.begin_stop(*intent, now + timeout);
            }
        }
        Action::Kill { app, idx } => {
            if let Some(i) = obs.instances.get_mut(&(app.clone(), *idx)) {
                i.kill_sent();
            }
        }
        Action::Unhealthy { .. } | Action::OverMemory { .. } | Action::ReadyTimeout { .. } => {
            notes.extend(failure(obs, wants, action, now));
        }
        Action::Ready { app, idx } => {
            if let Some(i) = obs.instances.get_mut(&(app.clone(), *idx)) {
                let detail = i.became_ready();
                notes.push(Note {
                    kind: EventKind::Ready,
                    app: app.clone(),
                    idx: *idx,
                    pid: i.pid(),
                    detail,
                });
            }
        }
        Action::SampleMemory => obs.memory_sampled_at = Some(now),
        Action::Reload => obs.reload_at = None,
        Action::WatchRestart { app } => {
            obs.watch_restart_at.remove(app);
            for ((a, _), i) in obs.instances.iter_mut() {
                if a == app && i.is_live() {
                    i.ask_restart();
                }
            }
        }
        Action::KillAll => {
            for i in obs.instances.values_mut() {
                i.killed_all();
            }
        }
        Action::Replace { .. } | Action::StopOld { .. } | Action::KillOld { .. } => {
            roll(obs, wants, action, now);
        }
        Action::Wait { app, idx, reason } => {
            entry(obs, app, *idx).wait_for(reason.clone());
        }
        Action::Settle { app, idx, reason } => {
            entry(obs, app, *idx).settle(reason.clone());
        }
        Action::Forget { app, idx } => {
            obs.instances.shift_remove(&(app.clone(), *idx));
        }
    }
    notes
}

/// A failure while running, planned: unhealthy, over `memory_max`, not ready in time.
fn failure(
    obs: &mut Observed,
    wants: &IndexMap<String, Want>,
    action: &Action,
    now: Instant,
) -> Option<Note> {
    let (Action::Unhealthy { app, idx }
    | Action::OverMemory { app, idx }
    | Action::ReadyTimeout { app, idx }) = action
    else {
        return None;
    };
    let want = wants.get(app);
    let timeout = stop_timeout(wants, app);
    let i = obs.instances.get_mut(&(app.clone(), *idx))?;
    let note = |kind, pid, detail| Note {
        kind,
        app: app.clone(),
        idx: *idx,
        pid,
        detail,
    };
    let (why, note) = match action {
        Action::Unhealthy { .. } => {
            let (count, detail) = i.take_health_failures();
            let limit = want.and_then(|w| w.health_failures).unwrap_or(count);
            i.note_history(format!("unhealthy: {detail}"));
            let said = format!("{limit} consecutive health check failures; restarting: {detail}");
            (
                format!("unhealthy ({limit} consecutive health check failures)"),
                Some(note(EventKind::Unhealthy, i.pid(), said)),
            )
        }
        Action::OverMemory { .. } => {
            let why = i.take_over_memory();
            let said = format!("{why}; restarting");
            (why, Some(note(EventKind::MemoryLimit, i.pid(), said)))
        }
        _ => {
            let ready = want.and_then(|w| w.ready_timeout).unwrap_or_default();
            let why = format!(
                "not ready within {}",
                crate::config::units::format_duration(ready)
            );
            (why, None)
        }
    };
    i.begin_failed_stop(why, now + timeout);
    note
}

/// A zero-downtime roll's steps: the replacement starts (the old process is kept), the old
/// process is stopped, then killed after `stop_timeout`.
fn roll(obs: &mut Observed, wants: &IndexMap<String, Want>, action: &Action, now: Instant) {
    match action {
        Action::Replace { app, idx } => {
            if let Some(i) = obs.instances.get_mut(&(app.clone(), *idx)) {
                i.replace();
            }
        }
        Action::StopOld { app, idx } => {
            let timeout = stop_timeout(wants, app);
            if let Some(i) = obs.instances.get_mut(&(app.clone(), *idx)) {
                i.stop_old(now + timeout);
            }
        }
        Action::KillOld { app, idx } => {
            if let Some(i) = obs.instances.get_mut(&(app.clone(), *idx)) {
                i.old_kill_sent();
            }
        }
        _ => {}
    }
}

/// A start of the instance (a `Start`, or a `Replace`'s replacement) is about to be spawned
/// with the desired spec: it answers every restart asked so far. A roll or a fresh start
/// after a failure counts its restarts afresh.
pub fn start_asked(obs: &mut Observed, wants: &IndexMap<String, Want>, app: &str, idx: u32) {
    let hash = wants.get(app).map_or(0, |w| w.spec_hash);
    entry(obs, app, idx).record_start(hash);
}

/// The spawn's outcome. Spawned: `starting` until its readiness probe passes (or its
/// `ready_timeout` runs out), or `running` at once without a probe. Not spawned: `failed` — and
/// a replacement that failed hands the instance back to its old process ([`keep_old`]).
pub fn spawned(
    obs: &mut Observed,
    wants: &IndexMap<String, Want>,
    key: &Key,
    outcome: Result<Spawned, String>,
    now: Instant,
) -> Vec<Note> {
    let want = wants.get(&key.0);
    let Some(i) = obs.instances.get_mut(key) else {
        return Vec::new();
    };
    match outcome {
        Ok(p) => {
            let awaits_ready = want.is_some_and(|w| w.has_ready_probe);
            let deadline = want.and_then(|w| w.ready_timeout).map(|t| now + t);
            let wall = SystemTime::now();
            i.started(p.pid, p.start_ticks, now, wall, awaits_ready, deadline);
            Vec::new()
        }
        Err(reason) => {
            i.spawn_failed(reason.clone());
            let mut notes = vec![Note {
                kind: EventKind::Failed,
                app: key.0.clone(),
                idx: key.1,
                pid: None,
                detail: reason.clone(),
            }];
            if i.old().is_some_and(|o| !o.stopping()) {
                notes.extend(keep_old(obs, wants, key, &reason));
            }
            notes
        }
    }
}

/// A replacement failed before it was ready: the old process stays the instance's process, and
/// the app's roll stops here (its spec is not rolled to again until the file or a restart asks
/// anew).
pub fn keep_old(
    obs: &mut Observed,
    wants: &IndexMap<String, Want>,
    key: &Key,
    why: &str,
) -> Vec<Note> {
    let Some(i) = obs.instances.get_mut(key) else {
        return Vec::new();
    };
    let Some(old_pid) = i.keep_old(format!("roll stopped: the replacement failed ({why})")) else {
        return Vec::new();
    };
    for ((a, _), x) in obs.instances.iter_mut() {
        if *a == key.0 {
            x.drop_restart();
        }
    }
    if let Some(w) = wants.get(&key.0) {
        obs.abandoned.insert(key.0.clone(), w.spec_hash);
    }
    vec![Note {
        kind: EventKind::Failed,
        app: key.0.clone(),
        idx: key.1,
        pid: None,
        detail: format!("replacement did not become ready ({why}); keeping pid {old_pid}"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Kind;
    use crate::supervisor::state::State;

    fn want(ready: Option<Duration>) -> IndexMap<String, Want> {
        let w = Want {
            name: "web".into(),
            kind: Kind::Service,
            enabled: true,
            instances: 1,
            depends_on: Vec::new(),
            stop_timeout: Duration::from_secs(7),
            surge: true,
            min_uptime: Duration::from_secs(1),
            has_ready_probe: ready.is_some(),
            schedule: None,
            spec_hash: 42,
            ready_timeout: ready,
            health_failures: Some(3),
            memory_max: None,
        };
        [("web".to_string(), w)].into_iter().collect()
    }

    fn key() -> Key {
        ("web".into(), 0)
    }

    fn started(obs: &mut Observed, wants: &IndexMap<String, Want>, pid: i32, now: Instant) {
        start_asked(obs, wants, "web", 0);
        let p = Spawned {
            pid,
            start_ticks: 1,
        };
        assert_eq!(spawned(obs, wants, &key(), Ok(p), now), []);
    }

    #[test]
    fn a_spawned_instance_is_starting_with_a_readiness_probe_and_running_without() {
        let now = Instant::now();
        for (ready, state) in [
            (Some(Duration::from_secs(3)), State::Starting),
            (None, State::Running),
        ] {
            let wants = want(ready);
            let mut obs = Observed::default();
            started(&mut obs, &wants, 10, now);
            let i = &obs.instances[&key()];
            assert_eq!(i.state(), state);
            assert_eq!(i.ready(), ready.is_none());
            assert_eq!(i.ready_deadline(), ready.map(|t| now + t));
            assert_eq!(i.spec_hash(), Some(42));
            assert_eq!(i.restarts(), 0);
            started(&mut obs, &wants, 11, now);
            assert_eq!(
                obs.instances[&key()].restarts(),
                1,
                "a second spawn is a restart"
            );
        }
    }

    #[test]
    fn a_failed_spawn_fails_the_instance_with_an_event() {
        let wants = want(None);
        let mut obs = Observed::default();
        start_asked(&mut obs, &wants, "web", 0);
        let notes = spawned(
            &mut obs,
            &wants,
            &key(),
            Err("cannot start: x".into()),
            Instant::now(),
        );
        assert_eq!(obs.instances[&key()].state(), State::Failed);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].kind, EventKind::Failed);
    }

    #[test]
    fn a_replacement_that_cannot_spawn_hands_the_instance_back_to_its_old_process() {
        let wants = want(None);
        let now = Instant::now();
        let mut obs = Observed::default();
        started(&mut obs, &wants, 10, now);
        record(
            &mut obs,
            &wants,
            &Action::Replace {
                app: "web".into(),
                idx: 0,
            },
            now,
        );
        start_asked(&mut obs, &wants, "web", 0);
        let notes = spawned(&mut obs, &wants, &key(), Err("cannot start: x".into()), now);
        let i = &obs.instances[&key()];
        assert_eq!(
            (i.pid(), i.state(), i.old().is_none()),
            (Some(10), State::Running, true)
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[1].detail.contains("keeping pid 10"), "{notes:?}");
        assert_eq!(obs.abandoned.get("web"), Some(&42));
    }

    #[test]
    fn unhealthy_stops_the_instance_as_a_failure_with_its_event() {
        let wants = want(None);
        let now = Instant::now();
        let mut obs = Observed::default();
        started(&mut obs, &wants, 10, now);
        let i = obs.instances.get_mut(&key()).expect("instance");
        for _ in 0..3 {
            i.health_failed("503".into());
        }
        let a = Action::Unhealthy {
            app: "web".into(),
            idx: 0,
        };
        let notes = record(&mut obs, &wants, &a, now);
        let i = &obs.instances[&key()];
        assert_eq!(i.state(), State::Stopping);
        assert_eq!(i.kill_at(), Some(now + Duration::from_secs(7)));
        assert_eq!(i.stop_intent(), None, "its exit is a failure, not a stop");
        assert_eq!(i.health_failures(), 0);
        assert!(i.fail_reason().is_some_and(|r| r.starts_with("unhealthy")));
        assert_eq!(notes[0].kind, EventKind::Unhealthy);
        assert!(notes[0].detail.ends_with("restarting: 503"), "{notes:?}");
    }
}
