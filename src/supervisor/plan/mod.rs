//! The pure, level-triggered planner: `plan(desired, observed, now) -> (actions, wake_at)`.
//!
//! It never knows which event woke it, so running it twice on the same state gives the same
//! answer; the loop records `starting` / `stopping` before effects run, so no action is issued
//! twice. It touches no process, file or clock.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use indexmap::IndexMap;

mod deps;
mod model;

pub use deps::dependency_met;
pub use model::*;

use super::state::{Instance, OldProcess, State, StopIntent};
use crate::config::Kind;

/// Decides the next actions and when to look again (the earliest deadline), given everything
/// wanted and everything observed at `now`.
pub fn plan(
    desired: &IndexMap<String, Want>,
    obs: &Observed,
    now: Instant,
) -> (Vec<Action>, Option<Instant>) {
    if obs.stop_signals >= 2 && obs.instances.values().any(Instance::has_any_process) {
        return (vec![Action::KillAll], None);
    }
    // One pass over the instances, not a scan per app (quadratic in the number of apps).
    let slots = obs.slot_counts();
    let live: HashSet<&str> = obs
        .instances
        .iter()
        .filter(|(_, i)| i.is_live())
        .map(|((app, _), _)| app.as_str())
        .collect();
    let mut p = Planner {
        desired,
        obs,
        now,
        slots,
        actions: Vec::new(),
        wake: None,
    };
    match obs.reload_at {
        Some(t) if t <= now => return (vec![Action::Reload], None),
        Some(t) => p.wake_at(t),
        None => {}
    }
    p.inputs();
    let needed_by_live = needed_by_live(desired, &live);
    for (name, want) in desired {
        p.app(name, want, &needed_by_live);
    }
    p.removed_apps();
    (p.actions, p.wake)
}

/// One planning pass: what it reads, and what it has decided so far.
struct Planner<'a> {
    desired: &'a IndexMap<String, Want>,
    obs: &'a Observed,
    now: Instant,
    /// [`Observed::slot_counts`].
    slots: HashMap<&'a str, u32>,
    actions: Vec<Action>,
    wake: Option<Instant>,
}

/// What the planner knows of an app while it plans its instances.
struct AppCtx<'a> {
    name: &'a String,
    want: &'a Want,
    /// A scheduled task (not `@reboot`): runs when due, not at start-up.
    scheduled_task: bool,
    /// The instance being rolled (a restart was asked, or it runs another spec).
    active_roll: Option<u32>,
    /// Shutting down and some live app still depends on this one: not stopped yet.
    blocked: bool,
    /// Its instance slots with a record (more than `instances` while scaling down).
    slots: u32,
}

impl Planner<'_> {
    fn push(&mut self, a: Action) {
        self.actions.push(a);
    }

    fn wake_at(&mut self, t: Instant) {
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    /// A deadline: due now (push `due`), or wake up for it.
    fn deadline(&mut self, at: Option<Instant>, due: impl FnOnce() -> Action) -> bool {
        match at {
            Some(t) if t <= self.now => {
                self.push(due());
                true
            }
            Some(t) => {
                self.wake_at(t);
                false
            }
            None => false,
        }
    }

    /// Watched files' debounces, and `memory_max` sampling.
    fn inputs(&mut self) {
        let (obs, desired, now) = (self.obs, self.desired, self.now);
        let mut due: Vec<&String> = Vec::new();
        for (app, t) in &obs.watch_restart_at {
            if *t <= now {
                due.push(app);
            } else {
                self.wake_at(*t);
            }
        }
        // In the file's order, whatever order the map holds them in.
        due.sort_by_key(|app| desired.get_index_of(*app));
        for app in due {
            self.push(Action::WatchRestart { app: app.clone() });
        }
        let memory_limited = obs.instances.iter().any(|((app, _), i)| {
            i.is_live()
                && matches!(i.state(), State::Running | State::Starting)
                && desired.get(app).is_some_and(|w| w.memory_max.is_some())
        });
        if memory_limited {
            match obs.memory_sampled_at.map(|t| t + MEMORY_SAMPLE_INTERVAL) {
                Some(t) if t > now => self.wake_at(t),
                _ => self.push(Action::SampleMemory),
            }
        }
    }

    /// Every instance slot of one wanted app, and its schedule.
    fn app(&mut self, name: &String, want: &Want, needed_by_live: &HashSet<&str>) {
        let obs = self.obs;
        if let Some(Scheduled { due: Some(t), .. }) = &want.schedule
            && want.enabled
            && !obs.shutting_down
        {
            let t = *t;
            self.deadline(Some(t), || Action::Due { app: name.clone() });
        }
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
        let slots = self.slots.get(name.as_str()).copied().unwrap_or(0);
        let ctx = AppCtx {
            name,
            want,
            scheduled_task,
            active_roll,
            blocked: obs.shutting_down && needed_by_live.contains(name.as_str()),
            slots,
        };
        for idx in 0..want.instances.max(slots) {
            self.instance(&ctx, idx);
        }
    }

    fn instance(&mut self, c: &AppCtx, idx: u32) {
        let obs = self.obs;
        let (name, want) = (c.name, c.want);
        let inst = obs.instances.get(&(name.clone(), idx));
        let a = || name.clone();
        let wanted = !obs.shutting_down && want.enabled && idx < want.instances;

        if let Some(i) = inst
            && let Some(o) = i.old()
        {
            self.old_process(c, idx, i, o, wanted);
        }
        if let Some(i) = inst
            && i.state() == State::Stopping
        {
            self.deadline(i.kill_at(), || Action::Kill { app: a(), idx });
            return;
        }
        // `concurrency = "allow"`: a run that fell due while the last one still goes runs
        // in an extra slot past `instances`; it starts once and its record goes when it ends.
        let overflow = c.scheduled_task
            && idx >= want.instances
            && want.enabled
            && !obs.shutting_down
            && want
                .schedule
                .as_ref()
                .is_some_and(|s| s.concurrency == crate::config::Concurrency::Allow);
        if overflow && let Some(i) = inst {
            if i.is_live() {
                return;
            }
            if !i.ever_started() && i.restart_asked() {
                self.push(Action::Start { app: a(), idx });
            } else {
                self.push(Action::Forget { app: a(), idx });
            }
            return;
        }
        if !wanted {
            self.unwanted(c, idx, inst);
            return;
        }
        let fresh;
        let i = match inst {
            Some(i) => i,
            None => {
                fresh = Instance::new(name, idx);
                &fresh
            }
        };
        self.wanted(c, idx, i);
    }

    /// The old process of a roll: stopped once the replacement is ready (or the instance is
    /// no longer wanted), killed after `stop_timeout`.
    fn old_process(&mut self, c: &AppCtx, idx: u32, i: &Instance, o: &OldProcess, wanted: bool) {
        let want = c.want;
        let a = || c.name.clone();
        let replacement_ready = i.state() == State::Running
            && i.ready()
            && (want.has_ready_probe
                || i.started_at()
                    .is_none_or(|s| self.now >= s + want.min_uptime));
        if o.stopping() {
            self.deadline(o.kill_at(), || Action::KillOld { app: a(), idx });
        } else if replacement_ready || !wanted {
            self.push(Action::StopOld { app: a(), idx });
        } else if i.state() == State::Running
            && let Some(s) = i.started_at()
        {
            self.wake_at(s + want.min_uptime);
        }
    }

    /// A slot not wanted (shutting down, disabled, scaled away): stop what runs, then settle
    /// or forget the record.
    fn unwanted(&mut self, c: &AppCtx, idx: u32, inst: Option<&Instance>) {
        let (obs, want) = (self.obs, c.want);
        let a = || c.name.clone();
        let disabled = || Action::Settle {
            app: a(),
            idx,
            reason: "disabled".into(),
        };
        match inst {
            // Something live still needs it: stopped after its dependents.
            Some(i) if i.is_live() && c.blocked => {}
            Some(i) if i.is_live() => self.push(Action::Stop {
                app: a(),
                idx,
                intent: StopIntent::Stay,
            }),
            Some(_) if idx >= want.instances => self.push(Action::Forget { app: a(), idx }),
            Some(i)
                if !want.enabled
                    && !obs.shutting_down
                    && (i.state() != State::Stopped || i.reason() != Some("disabled")) =>
            {
                self.push(disabled())
            }
            None if !want.enabled && !obs.shutting_down => self.push(disabled()),
            _ => {}
        }
    }

    /// A wanted slot (`i` is a fresh record if it has none yet).
    fn wanted(&mut self, c: &AppCtx, idx: u32, i: &Instance) {
        let (obs, want) = (self.obs, c.want);
        let a = || c.name.clone();
        // Ready, or not in time: decided for a replacement too, even if the file changed
        // again meanwhile.
        if i.state() == State::Starting {
            if i.ready_seen().is_some() {
                self.push(Action::Ready { app: a(), idx });
                return;
            }
            if self.deadline(i.ready_deadline(), || Action::ReadyTimeout {
                app: a(),
                idx,
            }) {
                return;
            }
        }
        if c.active_roll == Some(idx) {
            if !i.is_live() {
                // `pypm restart` never starts an app out of dependency order either.
                self.wait_or_start(c, idx, i);
            } else if !rolling_busy_except(obs, c.slots, c.name, idx) && i.old().is_none() {
                if want.surge && i.state() == State::Running {
                    self.push(Action::Replace { app: a(), idx });
                } else {
                    self.push(Action::Stop {
                        app: a(),
                        idx,
                        intent: StopIntent::Restart,
                    });
                }
            }
            return;
        }
        let running = matches!(i.state(), State::Running | State::Starting);
        if let Some(limit) = want.health_failures
            && i.health_failures() >= limit
            && running
        {
            self.push(Action::Unhealthy { app: a(), idx });
            return;
        }
        if want.memory_max.is_some() && i.over_memory().is_some() && running {
            self.push(Action::OverMemory { app: a(), idx });
            return;
        }
        match i.state() {
            // Ready and its deadline: above.
            State::Starting | State::Running | State::Stopping => {}
            State::Failed | State::Completed => {}
            State::Backoff => match i.retry_at() {
                Some(t) if t > self.now => self.wake_at(t),
                _ => self.push(Action::Start { app: a(), idx }),
            },
            State::Stopped | State::Waiting if c.scheduled_task => {
                // A scheduled task runs when its schedule says (`Due` asks for a restart),
                // not when the supervisor starts.
                if i.state() != State::Stopped || i.reason() != Some(SCHEDULED) {
                    self.push(Action::Settle {
                        app: a(),
                        idx,
                        reason: SCHEDULED.into(),
                    });
                }
            }
            State::Stopped | State::Waiting => {
                // A service that exited successfully and is not restarted stays stopped.
                let settled = i.state() == State::Stopped
                    && i.ever_started()
                    && i.reason().is_some_and(|r| r.starts_with("exited"));
                if !settled {
                    self.wait_or_start(c, idx, i);
                }
            }
        }
    }

    /// Starts the instance, or records why it waits: the first dependency that does not meet
    /// its condition.
    fn wait_or_start(&mut self, c: &AppCtx, idx: u32, i: &Instance) {
        let (obs, desired) = (self.obs, self.desired);
        let waiting = c.want.depends_on.iter().find_map(|(dep, cond)| {
            let d = desired.get(dep)?;
            let why = dependency_met(d, *cond, obs).err()?;
            Some(deps::blocked_by_failure(desired, d, obs).unwrap_or(why))
        });
        match waiting {
            None => self.push(Action::Start {
                app: c.name.clone(),
                idx,
            }),
            Some(reason) => {
                if i.state() != State::Waiting || i.reason() != Some(reason.as_str()) {
                    self.push(Action::Wait {
                        app: c.name.clone(),
                        idx,
                        reason,
                    });
                }
            }
        }
    }

    /// Apps no longer in the file: stop what runs, forget the rest.
    fn removed_apps(&mut self) {
        let (obs, desired) = (self.obs, self.desired);
        for ((app, idx), i) in &obs.instances {
            if desired.contains_key(app) {
                continue;
            }
            let (app, idx) = (app.clone(), *idx);
            if i.state() == State::Stopping {
                self.deadline(i.kill_at(), || Action::Kill { app, idx });
            } else if i.is_live() {
                self.push(Action::Stop {
                    app,
                    idx,
                    intent: StopIntent::Stay,
                });
            } else {
                self.push(Action::Forget { app, idx });
            }
        }
    }
}

/// Apps that some live instance still depends on cannot be stopped yet during shutdown:
/// directly, or through apps that no longer run (a completed task between a database and
/// the server that needed its migration), so the stop order is the reverse of the start
/// order.
fn needed_by_live<'a>(
    desired: &'a IndexMap<String, Want>,
    live: &HashSet<&str>,
) -> HashSet<&'a str> {
    let mut needed: HashSet<&str> = HashSet::new();
    for (name, want) in desired {
        if !live.contains(name.as_str()) {
            continue;
        }
        let mut todo: Vec<&str> = want.depends_on.iter().map(|(d, _)| d.as_str()).collect();
        while let Some(dep) = todo.pop() {
            if !needed.insert(dep) {
                continue;
            }
            if !live.contains(dep)
                && let Some(d) = desired.get(dep)
            {
                todo.extend(d.depends_on.iter().map(|(x, _)| x.as_str()));
            }
        }
    }
    needed
}

/// Another instance of the app is starting, stopping or being replaced: a roll waits for it.
fn rolling_busy_except(obs: &Observed, slots: u32, app: &str, idx: u32) -> bool {
    (0..slots).filter(|i| *i != idx).any(|i| {
        obs.instances.get(&(app.to_string(), i)).is_some_and(|x| {
            x.state() == State::Starting || x.state() == State::Stopping || x.old().is_some()
        })
    })
}

#[cfg(test)]
mod tests;
