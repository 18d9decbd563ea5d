//! The pure, level-triggered planner: `plan(desired, observed, now) -> (actions, wake_at)`.
//!
//! It never knows which event woke it, so running it twice on the same state gives the same
//! answer; the loop records `starting` / `stopping` before effects run, so no action is issued
//! twice. It touches no process, file or clock.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::state::{Instance, State, StopIntent};
use crate::config::{Condition, Kind};

/// What the planner needs to know of one desired app.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub name: String,
    pub kind: Kind,
    pub enabled: bool,
    pub instances: u32,
    pub depends_on: Vec<(String, Condition)>,
    pub stop_timeout: Duration,
    /// Roll by starting a replacement before stopping the old process (the app shares `listen`
    /// sockets or has several instances); otherwise stop, then start.
    pub surge: bool,
    /// Without a readiness probe, a replacement counts as ready after this long.
    pub min_uptime: Duration,
    pub has_ready_probe: bool,
    /// `schedule` (tasks) or `restart_schedule` (services).
    pub schedule: Option<Scheduled>,
    /// [`super::diff::spec_hash`] of the desired spec: an instance started with another is rolled.
    pub spec_hash: u64,
    /// A readiness probe's budget: a started instance is `starting` until ready or this long
    /// has passed (failed start); without a probe it is `running` at once.
    pub ready_timeout: Option<Duration>,
    /// `health.failures`: this many consecutive failed health checks fail a running instance.
    pub health_failures: Option<u32>,
    /// `memory_max`, in bytes.
    pub memory_max: Option<u64>,
}

/// A schedule as the planner sees it: the next due time is data the loop computes from the wall
/// clock (see [`crate::schedule::next_run`]), so the planner stays pure.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// The next run (or rolling restart); `None` = not again (`@reboot`, or never matches).
    pub due: Option<Instant>,
    pub concurrency: crate::config::Concurrency,
    /// `@reboot`: a task that runs once when the supervisor starts, like an unscheduled task.
    pub at_start: bool,
}

impl Want {
    pub fn from_spec(s: &crate::resolve::AppSpec) -> Self {
        Want {
            spec_hash: super::diff::spec_hash(s),
            ..Want::from_app(&s.app)
        }
    }

    pub fn from_app(a: &crate::config::App) -> Self {
        Want {
            spec_hash: 0,
            ready_timeout: a.ready.as_ref().map(|p| p.timeout),
            health_failures: a.health.as_ref().map(|h| h.failures),
            memory_max: a.memory_max,
            name: a.name.clone(),
            kind: a.kind,
            enabled: a.enabled,
            instances: a.instances,
            depends_on: a.depends_on.clone(),
            stop_timeout: a.stop_timeout,
            surge: !a.listen.is_empty() || a.instances > 1,
            min_uptime: a.min_uptime,
            has_ready_probe: a.ready.is_some(),
            schedule: a.parsed_schedule().map(|s| Scheduled {
                due: None,
                concurrency: a.concurrency,
                at_start: s.is_reboot(),
            }),
        }
    }
}

pub type Key = (String, u32);

/// How often `memory_max` is sampled while a limited instance runs.
pub const MEMORY_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The reason a scheduled task shows before its first run.
pub const SCHEDULED: &str = "waiting for its schedule";

#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub instances: IndexMap<Key, Instance>,
    /// Drive everything to stopped, in reverse dependency order.
    pub shutting_down: bool,
    /// Per app, the spec hash whose roll was given up (a replacement failed before it was
    /// ready): instances are not rolled to it again until the file or a restart asks anew.
    pub abandoned: std::collections::HashMap<String, u64>,
    /// Stop signals (SIGTERM, SIGINT) received: the first shuts down in order, a second kills
    /// everything at once.
    pub stop_signals: u32,
    /// When `memory_max` was last sampled.
    pub memory_sampled_at: Option<Instant>,
    /// The config file was saved: reload it at this time (debounced by the loop).
    pub reload_at: Option<Instant>,
    /// Files an app `watch`es changed: restart the app at this time (debounced).
    pub watch_restart_at: std::collections::HashMap<String, Instant>,
}

impl Observed {
    /// How many instance slots of `app` have a record (instances beyond the wanted count may
    /// still be stopping).
    pub fn slots(&self, app: &str) -> u32 {
        self.instances
            .keys()
            .filter(|(a, _)| a == app)
            .map(|(_, i)| i + 1)
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start {
        app: String,
        idx: u32,
    },
    Stop {
        app: String,
        idx: u32,
        intent: StopIntent,
    },
    Kill {
        app: String,
        idx: u32,
    },
    /// `health.failures` consecutive failed health checks: the instance failed; stop it like a
    /// failed start (counts toward `max_restarts`).
    Unhealthy {
        app: String,
        idx: u32,
    },
    /// The last memory sample found the instance over `memory_max`: stop it like a failed one.
    OverMemory {
        app: String,
        idx: u32,
    },
    /// Sample the memory of every instance whose app has `memory_max`.
    SampleMemory,
    /// Told twice to stop: SIGKILL every process now; the loop ends.
    KillAll,
    /// The saved config file's debounce is over: read it and apply it (planned alone, since it
    /// changes what is wanted).
    Reload,
    /// Files the app watches changed and their debounce is over: roll its live instances.
    WatchRestart {
        app: String,
    },
    /// Its readiness probe passed: the instance is running (and its health probe starts).
    Ready {
        app: String,
        idx: u32,
    },
    /// Not ready by its deadline: the start failed; kill it (counts toward `max_restarts`).
    ReadyTimeout {
        app: String,
        idx: u32,
    },
    /// Zero-downtime roll: start a replacement while the current process keeps serving.
    Replace {
        app: String,
        idx: u32,
    },
    /// The replacement is ready (or the instance is no longer wanted): stop the old process.
    StopOld {
        app: String,
        idx: u32,
    },
    KillOld {
        app: String,
        idx: u32,
    },
    /// Record that the instance waits, and why.
    Wait {
        app: String,
        idx: u32,
        reason: String,
    },
    /// Record a stopped state with a reason (`disabled`).
    Settle {
        app: String,
        idx: u32,
        reason: String,
    },
    /// Drop the record of an instance that is no longer wanted.
    Forget {
        app: String,
        idx: u32,
    },
    /// A schedule is due: the loop starts the run (or skips it, or replaces the running one, by
    /// `concurrency`; for a service, rolls it) and computes the next due time.
    Due {
        app: String,
    },
}

/// Whether a dependency's condition holds, and if not, the reason its dependents show.
pub fn dependency_met(dep: &Want, cond: Condition, obs: &Observed) -> Result<(), String> {
    let name = &dep.name;
    if !dep.enabled {
        return Err(format!("waiting for `{name}` (disabled)"));
    }
    let insts: Vec<Option<&Instance>> = (0..dep.instances)
        .map(|i| obs.instances.get(&(name.clone(), i)))
        .collect();
    if insts.iter().flatten().any(|i| i.state() == State::Failed) {
        return Err(format!("waiting for `{name}`, which failed"));
    }
    let ok = insts.iter().all(|i| match (cond, i) {
        (_, None) => false,
        (Condition::Started, Some(i)) => i.ever_started,
        (Condition::Ready, Some(i)) => {
            (i.state() == State::Running && i.ready) || i.state() == State::Completed
        }
        (Condition::Completed, Some(i)) => i.state() == State::Completed,
    });
    if ok {
        Ok(())
    } else {
        let what = match cond {
            Condition::Started => "to start",
            Condition::Ready => "to be ready",
            Condition::Completed => "to complete",
        };
        Err(format!("waiting for `{name}` {what}"))
    }
}

/// When `dep` has not started because something it depends on (directly or further down)
/// failed: "waiting for `dep`, which waits for `root`, which failed", so the reason names the
/// app to fix and `up -d` knows the wait is over (SPEC §4).
fn blocked_by_failure(
    desired: &IndexMap<String, Want>,
    dep: &Want,
    obs: &Observed,
) -> Option<String> {
    /// The observed instances of a wanted app.
    fn of<'o>(w: &'o Want, obs: &'o Observed) -> impl Iterator<Item = &'o Instance> {
        (0..w.instances).filter_map(move |i| obs.instances.get(&(w.name.clone(), i)))
    }
    fn failed_below(
        desired: &IndexMap<String, Want>,
        want: &Want,
        obs: &Observed,
        depth: usize,
    ) -> Option<String> {
        // The file's dependency graph has no cycles; the depth bound is only a guard.
        if depth > 64 {
            return None;
        }
        want.depends_on.iter().find_map(|(name, _)| {
            let d = desired.get(name)?;
            if of(d, obs).any(|i| i.state() == State::Failed) {
                Some(name.clone())
            } else if of(d, obs).any(|i| i.ever_started) {
                None
            } else {
                failed_below(desired, d, obs, depth + 1)
            }
        })
    }
    if of(dep, obs).any(|i| i.ever_started || i.state() == State::Failed) {
        return None;
    }
    let root = failed_below(desired, dep, obs, 0)?;
    Some(format!(
        "waiting for `{}`, which waits for `{root}`, which failed",
        dep.name
    ))
}

/// Decides the next actions and when to look again (the earliest deadline), given everything
/// wanted and everything observed at `now`.
pub fn plan(
    desired: &IndexMap<String, Want>,
    obs: &Observed,
    now: Instant,
) -> (Vec<Action>, Option<Instant>) {
    let mut actions = Vec::new();
    let mut wake: Option<Instant> = None;
    let mut wake_at = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));

    if obs.stop_signals >= 2 && obs.instances.values().any(Instance::has_any_process) {
        return (vec![Action::KillAll], None);
    }
    match obs.reload_at {
        Some(t) if t <= now => return (vec![Action::Reload], None),
        Some(t) => wake_at(t),
        None => {}
    }
    for (app, t) in &obs.watch_restart_at {
        if *t <= now {
            actions.push(Action::WatchRestart { app: app.clone() });
        } else {
            wake_at(*t);
        }
    }
    // In the file's order, whatever order the map holds them in.
    actions.sort_by_key(|a| match a {
        Action::WatchRestart { app } => desired.get_index_of(app),
        _ => None,
    });
    let memory_limited = obs.instances.iter().any(|((app, _), i)| {
        i.is_live()
            && matches!(i.state(), State::Running | State::Starting)
            && desired.get(app).is_some_and(|w| w.memory_max.is_some())
    });
    if memory_limited {
        match obs.memory_sampled_at.map(|t| t + MEMORY_SAMPLE_INTERVAL) {
            Some(t) if t > now => wake_at(t),
            _ => actions.push(Action::SampleMemory),
        }
    }

    // Apps that some live instance still depends on cannot be stopped yet during shutdown:
    // directly, or through apps that no longer run (a completed task between a database and
    // the server that needed its migration), so the stop order is the reverse of the start
    // order.
    let is_live = |name: &str| {
        obs.instances
            .iter()
            .any(|((a, _), i)| a == name && i.is_live())
    };
    let mut needed_by_live: HashSet<&str> = HashSet::new();
    for (name, want) in desired {
        if !is_live(name) {
            continue;
        }
        let mut todo: Vec<&str> = want.depends_on.iter().map(|(d, _)| d.as_str()).collect();
        while let Some(dep) = todo.pop() {
            if !needed_by_live.insert(dep) {
                continue;
            }
            if !is_live(dep)
                && let Some(d) = desired.get(dep)
            {
                todo.extend(d.depends_on.iter().map(|(x, _)| x.as_str()));
            }
        }
    }

    for (name, want) in desired {
        if let Some(Scheduled { due: Some(t), .. }) = &want.schedule
            && want.enabled
            && !obs.shutting_down
        {
            if *t <= now {
                actions.push(Action::Due { app: name.clone() });
            } else {
                wake_at(*t);
            }
        }
        let observed_max = obs.slots(name);
        let scheduled_task =
            want.kind == Kind::Task && want.schedule.as_ref().is_some_and(|s| !s.at_start);
        // Rolled: a restart was asked, or its process runs another spec than the file's (a
        // scheduled task that is not running just runs the new spec next time).
        let stale = |x: &Instance| {
            x.restart_asked()
                || (x.runs_other_spec(want.spec_hash)
                    && obs.abandoned.get(name) != Some(&want.spec_hash)
                    && (x.is_live() || !scheduled_task))
        };
        let active_roll =
            (0..want.instances).find(|i| obs.instances.get(&(name.clone(), *i)).is_some_and(stale));

        for idx in 0..want.instances.max(observed_max) {
            let key = (name.clone(), idx);
            let inst = obs.instances.get(&key);
            let a = || name.clone();
            let wanted = !obs.shutting_down && want.enabled && idx < want.instances;

            if let Some(i) = inst
                && let Some(o) = &i.old
            {
                let replacement_ready = i.state() == State::Running
                    && i.ready
                    && (want.has_ready_probe
                        || i.started_at.is_none_or(|s| now >= s + want.min_uptime));
                if o.stopping {
                    match o.kill_at {
                        Some(t) if t <= now => actions.push(Action::KillOld { app: a(), idx }),
                        Some(t) => wake_at(t),
                        None => {}
                    }
                } else if replacement_ready || !wanted {
                    actions.push(Action::StopOld { app: a(), idx });
                } else if i.state() == State::Running
                    && let Some(s) = i.started_at
                {
                    wake_at(s + want.min_uptime);
                }
            }

            if let Some(i) = inst
                && i.state() == State::Stopping
            {
                match i.kill_at {
                    Some(t) if t <= now => actions.push(Action::Kill { app: a(), idx }),
                    Some(t) => wake_at(t),
                    None => {}
                }
                continue;
            }

            // `concurrency = "allow"`: a run that fell due while the last one still goes runs
            // in an extra slot past `instances`; it starts once and its record goes when it ends.
            let overflow = scheduled_task
                && idx >= want.instances
                && want.enabled
                && !obs.shutting_down
                && want
                    .schedule
                    .as_ref()
                    .is_some_and(|s| s.concurrency == crate::config::Concurrency::Allow);
            if overflow && let Some(i) = inst {
                if i.is_live() {
                    continue;
                }
                if !i.ever_started && i.restart_asked() {
                    actions.push(Action::Start { app: a(), idx });
                } else {
                    actions.push(Action::Forget { app: a(), idx });
                }
                continue;
            }

            if !wanted {
                match inst {
                    Some(i) if i.is_live() => {
                        let blocked = obs.shutting_down && needed_by_live.contains(name.as_str());
                        if !blocked {
                            actions.push(Action::Stop {
                                app: a(),
                                idx,
                                intent: StopIntent::Stay,
                            });
                        }
                    }
                    Some(_) if idx >= want.instances => {
                        actions.push(Action::Forget { app: a(), idx })
                    }
                    Some(i)
                        if !want.enabled
                            && !obs.shutting_down
                            && (i.state() != State::Stopped
                                || i.reason.as_deref() != Some("disabled")) =>
                    {
                        actions.push(Action::Settle {
                            app: a(),
                            idx,
                            reason: "disabled".into(),
                        });
                    }
                    None if !want.enabled && !obs.shutting_down => actions.push(Action::Settle {
                        app: a(),
                        idx,
                        reason: "disabled".into(),
                    }),
                    _ => {}
                }
                continue;
            }

            let fresh;
            let i = match inst {
                Some(i) => i,
                None => {
                    fresh = Instance::new(name, idx);
                    &fresh
                }
            };
            // Why the app cannot start yet: the first dependency that does not meet its condition.
            let waiting = || {
                want.depends_on.iter().find_map(|(dep, cond)| {
                    let d = desired.get(dep)?;
                    let why = dependency_met(d, *cond, obs).err()?;
                    Some(blocked_by_failure(desired, d, obs).unwrap_or(why))
                })
            };
            let wait_or_start = |actions: &mut Vec<Action>| match waiting() {
                None => actions.push(Action::Start { app: a(), idx }),
                Some(reason) => {
                    if i.state() != State::Waiting || i.reason.as_deref() != Some(&reason) {
                        actions.push(Action::Wait {
                            app: a(),
                            idx,
                            reason,
                        });
                    }
                }
            };
            // Ready, or not in time: decided for a replacement too, even if the file changed
            // again meanwhile.
            if i.state() == State::Starting {
                if i.ready_seen.is_some() {
                    actions.push(Action::Ready { app: a(), idx });
                    continue;
                }
                match i.ready_deadline {
                    Some(t) if t <= now => {
                        actions.push(Action::ReadyTimeout { app: a(), idx });
                        continue;
                    }
                    Some(t) => wake_at(t),
                    None => {}
                }
            }
            if active_roll == Some(idx) {
                if !i.is_live() {
                    // `pypm restart` never starts an app out of dependency order either.
                    wait_or_start(&mut actions);
                } else if !rolling_busy_except(obs, name, idx) && i.old.is_none() {
                    if want.surge && i.state() == State::Running {
                        actions.push(Action::Replace { app: a(), idx });
                    } else {
                        actions.push(Action::Stop {
                            app: a(),
                            idx,
                            intent: StopIntent::Restart,
                        });
                    }
                }
                continue;
            }
            if let Some(limit) = want.health_failures
                && i.health_failures >= limit
                && matches!(i.state(), State::Running | State::Starting)
            {
                actions.push(Action::Unhealthy { app: a(), idx });
                continue;
            }
            if want.memory_max.is_some()
                && i.over_memory.is_some()
                && matches!(i.state(), State::Running | State::Starting)
            {
                actions.push(Action::OverMemory { app: a(), idx });
                continue;
            }
            match i.state() {
                // Ready and deadlines: above.
                State::Starting | State::Running | State::Stopping => {}
                State::Failed | State::Completed => {}
                State::Backoff => match i.retry_at {
                    Some(t) if t > now => wake_at(t),
                    _ => actions.push(Action::Start { app: a(), idx }),
                },
                State::Stopped | State::Waiting if scheduled_task => {
                    // A scheduled task runs when its schedule says (`Due` asks for
                    // a restart), not when the supervisor starts.
                    if i.state() != State::Stopped || i.reason.as_deref() != Some(SCHEDULED) {
                        actions.push(Action::Settle {
                            app: a(),
                            idx,
                            reason: SCHEDULED.into(),
                        });
                    }
                }
                State::Stopped | State::Waiting => {
                    // A service that exited successfully and is not restarted stays stopped.
                    let settled = i.state() == State::Stopped
                        && i.ever_started
                        && i.reason.as_deref().is_some_and(|r| r.starts_with("exited"));
                    if settled {
                        continue;
                    }
                    wait_or_start(&mut actions);
                }
            }
        }
    }

    // Apps no longer in the file: stop what runs, forget the rest.
    for ((app, idx), i) in &obs.instances {
        if desired.contains_key(app) {
            continue;
        }
        if i.state() == State::Stopping {
            match i.kill_at {
                Some(t) if t <= now => actions.push(Action::Kill {
                    app: app.clone(),
                    idx: *idx,
                }),
                Some(t) => wake_at(t),
                None => {}
            }
        } else if i.is_live() {
            actions.push(Action::Stop {
                app: app.clone(),
                idx: *idx,
                intent: StopIntent::Stay,
            });
        } else {
            actions.push(Action::Forget {
                app: app.clone(),
                idx: *idx,
            });
        }
    }
    (actions, wake)
}

/// Another instance of the app is starting, stopping or being replaced: a roll waits for it.
fn rolling_busy_except(obs: &Observed, app: &str, idx: u32) -> bool {
    obs.instances.iter().any(|((a, i), x)| {
        a == app
            && *i != idx
            && (x.state() == State::Starting || x.state() == State::Stopping || x.old.is_some())
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
