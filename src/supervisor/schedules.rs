//! Schedules in the loop: turns each app's cron expression into the next due `Instant` the
//! planner waits for (no polling: it is a `wake_at` deadline), and carries out a due run.
//!
//! Owns the wall-clock side only (reading `SystemTime`, jitter); whether a run is due is the
//! planner's call ([`super::plan::Action::Due`]).

use crate::config::keys::EventKind;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::Supervisor;
use crate::config::{Concurrency, Kind};

/// One app's next due time, on both clocks: the wall time to count the next run from (so a
/// run that fires a little early is never counted twice), the `Instant` the loop waits for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Due {
    pub wall: DateTime<Utc>,
    pub at: Instant,
}

/// A random delay in `0..=max` (systemd `RandomizedDelaySec=`); not cryptographic, only spread.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs().rotate_left(17))
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    // splitmix64
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
    Duration::from_nanos(z % nanos.saturating_add(1))
}

/// The `Instant` at which the wall-clock time `wall` falls, seen from (`now`, `wall_now`).
fn instant_of(wall: DateTime<Utc>, now: Instant, wall_now: DateTime<Utc>) -> Instant {
    match (wall - wall_now).to_std() {
        Ok(ahead) => now + ahead,
        Err(_) => now, // already past
    }
}

impl Supervisor {
    /// At start: each schedule counts from its last run of a previous supervisor, and a
    /// `catch_up` task whose run was missed meanwhile runs once now (systemd `Persistent=`).
    pub(super) fn restore_schedules(
        &mut self,
        last_runs: &std::collections::BTreeMap<String, String>,
        now: Instant,
    ) {
        let wall_now = Utc::now();
        for (name, spec) in &self.desired.apps {
            let app = &spec.app;
            let (Some(schedule), Some(last)) = (app.parsed_schedule(), last_runs.get(name)) else {
                continue;
            };
            let Ok(last) = DateTime::parse_from_rfc3339(last) else {
                continue;
            };
            let last = last.with_timezone(&Utc);
            let missed = crate::inputs::schedule::next_run(&schedule, app.schedule_tz(), last)
                .is_some_and(|next| next <= wall_now);
            if !missed {
                self.sched_from.insert(name.clone(), last);
            } else if app.catch_up && app.kind == Kind::Task {
                log::info!("`{name}`: a run was missed since {last} (catch_up): running it now");
                self.sched_due.insert(
                    name.clone(),
                    Due {
                        wall: wall_now,
                        at: now,
                    },
                );
            }
        }
    }

    /// A scheduled task's reason in `status` while no run goes: what it is waiting for (or how
    /// its last run ended), the last run's result and duration, and when the next run is — a
    /// `failed` scheduled task still runs again at its next time.
    pub(super) fn schedule_reason(&self, name: &str, i: &super::Instance) -> Option<String> {
        let spec = self.desired.apps.get(name)?;
        if spec.app.kind != Kind::Task || spec.app.parsed_schedule().is_none() || i.is_live() {
            return None;
        }
        let mut parts = vec![
            i.reason()
                .map(str::to_string)
                .unwrap_or_else(|| super::plan::SCHEDULED.to_string()),
        ];
        if let Some(run) = i.last_run() {
            parts.push(format!(
                "last run {} after {}",
                if run.ok { "succeeded" } else { "failed" },
                crate::config::units::format_duration(run.duration)
            ));
        }
        parts.push(match self.sched_due.get(name) {
            Some(d) => format!(
                "next run {}",
                d.wall.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => "no next run".into(),
        });
        Some(parts.join("; "))
    }

    /// What `state.json` keeps of the schedules: the last due run of each scheduled app.
    pub(super) fn saved_last_runs(&self) -> std::collections::BTreeMap<String, String> {
        self.sched_from
            .iter()
            .map(|(a, t)| {
                (
                    a.clone(),
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                )
            })
            .collect()
    }

    /// Fills in each scheduled app's next due time (computing the ones not known yet), so the
    /// planner sees it.
    pub(super) fn refresh_schedules(&mut self, now: Instant) {
        let wall_now = Utc::now();
        let names: Vec<String> = self.wants.keys().cloned().collect();
        for name in names {
            let Some(spec) = self.desired.apps.get(&name) else {
                continue;
            };
            let app = &spec.app;
            let Some(schedule) = app.parsed_schedule() else {
                self.sched_due.remove(&name);
                continue;
            };
            let due = match self.sched_due.get(&name) {
                Some(d) => Some(*d),
                None => {
                    let from = self.sched_from.get(&name).copied().unwrap_or(wall_now);
                    let next =
                        crate::inputs::schedule::next_run(&schedule, app.schedule_tz(), from);
                    next.map(|wall| {
                        let d = Due {
                            wall,
                            at: instant_of(wall, now, wall_now) + jitter(app.jitter),
                        };
                        self.sched_due.insert(name.clone(), d);
                        d
                    })
                }
            };
            if let Some(w) = self.wants.get_mut(&name)
                && let Some(s) = w.schedule.as_mut()
            {
                s.due = due.map(|d| d.at);
            }
        }
    }

    /// A schedule is due: start the run, skip it or replace the running one (tasks), or roll
    /// the service; then count the next due time from this one.
    pub(super) fn schedule_due(&mut self, app: &str) {
        let Some(due) = self.sched_due.remove(app) else {
            return;
        };
        self.sched_from.insert(app.to_string(), due.wall);
        let Some(spec) = self.desired.apps.get(app) else {
            return;
        };
        let (kind, instances, concurrency) =
            (spec.app.kind, spec.app.instances, spec.app.concurrency);
        self.dirty = true;
        let at = due
            .wall
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if kind == Kind::Service {
            log::info!("`{app}`: restart_schedule is due ({at}): rolling it");
            for ((a, _), i) in self.obs.instances.iter_mut() {
                if a == app && i.is_live() {
                    i.ask_restart();
                }
            }
            self.emit(
                EventKind::Scheduled,
                Some(app),
                None,
                None,
                format!("rolling restart due at {at}"),
            );
            return;
        }
        self.last_scheduled
            .insert(app.to_string(), SystemTime::now());
        for idx in 0..instances {
            let i = self.instance_mut(app, idx);
            let live = i.is_live();
            let pid = i.pid();
            match (live, concurrency) {
                (false, _) => {
                    i.ask_restart();
                    log::info!("`{app}.{idx}`: schedule due ({at}): starting a run");
                    self.emit(
                        EventKind::Scheduled,
                        Some(app),
                        Some(idx),
                        None,
                        format!("run due at {at}"),
                    );
                }
                (true, Concurrency::Replace) => {
                    i.ask_restart();
                    log::info!("`{app}.{idx}`: schedule due ({at}): replacing the running run");
                    self.emit(
                        EventKind::Scheduled,
                        Some(app),
                        Some(idx),
                        pid,
                        format!("run due at {at}; stopping the previous run (concurrency replace)"),
                    );
                }
                (true, Concurrency::Allow) => self.run_alongside(app, idx, instances, &at),
                (true, _) => {
                    let why = "the previous run is still going (concurrency forbid)";
                    log::info!("`{app}.{idx}`: schedule due ({at}) skipped: {why}");
                    self.emit(
                        EventKind::Skipped,
                        Some(app),
                        Some(idx),
                        pid,
                        format!("run due at {at}: {why}"),
                    );
                }
            }
        }
    }

    /// `concurrency = "allow"`: a run due while the last one still goes runs alongside, in the
    /// first free slot past `instances` (the planner starts it once and forgets it when it ends).
    fn run_alongside(&mut self, app: &str, idx: u32, instances: u32, at: &str) {
        // Alongside: the first free slot past `instances` (the planner starts it
        // once and forgets it when it ends).
        let slot = (instances..)
            .find(|k| {
                !self
                    .obs
                    .instances
                    .get(&(app.to_string(), *k))
                    .is_some_and(|x| x.is_live() || x.restart_asked())
            })
            .unwrap_or(instances);
        let extra = self.instance_mut(app, slot);
        *extra = super::Instance::new(app, slot);
        extra.ask_restart();
        log::info!(
            "`{app}.{idx}`: schedule due ({at}) while the last run goes: running alongside as {app}.{slot}"
        );
        self.emit(
            EventKind::Scheduled,
            Some(app),
            Some(slot),
            None,
            format!(
                "run due at {at}; the previous run is still going (concurrency allow: this one runs alongside)"
            ),
        );
    }
}
