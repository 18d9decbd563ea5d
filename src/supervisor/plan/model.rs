//! What the planner reads and decides: the desired apps as it sees them ([`Want`]), the
//! observed facts ([`Observed`]), and the [`Action`]s it plans.
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::config::{Condition, Kind};
use crate::supervisor::state::{Instance, StopIntent};

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
    /// [`crate::supervisor::diff::spec_hash`] of the desired spec: an instance started with another is rolled.
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
/// clock (see [`crate::inputs::schedule::next_run`]), so the planner stays pure.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// The next run (or rolling restart); `None` = not again (`@reboot`, or never matches).
    pub due: Option<Instant>,
    pub concurrency: crate::config::Concurrency,
    /// `@reboot`: a task that runs once when the supervisor starts, like an unscheduled task.
    pub at_start: bool,
}

impl Want {
    pub fn from_spec(s: &crate::desired::resolve::AppSpec) -> Self {
        Want {
            spec_hash: crate::supervisor::diff::spec_hash(s),
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
    /// Per app, how many instance slots have a record (more than `instances` while scaling
    /// down), from one pass over the instances.
    pub fn slot_counts(&self) -> std::collections::HashMap<&str, u32> {
        let mut slots = std::collections::HashMap::new();
        for (app, idx) in self.instances.keys() {
            let n = slots.entry(app.as_str()).or_insert(0);
            *n = (*n).max(idx + 1);
        }
        slots
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
