//! Observed state: what each instance is doing, and the pure transitions that follow a child's
//! exit (restart policy, backoff, `max_restarts`). Time is an argument; nothing here sleeps.
//!
//! The fields of an [`Instance`] are private to this module and its children: `state_access.rs`
//! reads them, the named steps of `impl Instance` here change them, `state_exit.rs` applies an
//! exit. Every state change goes through [`State::can_become`]'s table.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

pub use crate::control::protocol::State;

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Completed => "completed",
            State::Backoff => "backoff",
            State::Failed => "failed",
        }
    }
}

impl State {
    /// The process-holding states: an instance in one of them has (or is getting) a process.
    pub fn has_process(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Stopping)
    }

    /// The one table of allowed transitions (SPEC §3). A process can only be stopped, or end
    /// (`completed`, `backoff`), if there is one; anything may fail (a spawn error, a failed
    /// dependency) or start; staying in a state (a reason changes) is always allowed.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        if self == to {
            return true;
        }
        match to {
            // Stopping needs a process to stop; completed and backoff follow a process's exit.
            Stopping | Completed | Backoff => self.has_process(),
            // Waiting for dependencies: not while a process of the instance is on its way out.
            Waiting => self != Stopping,
            Starting | Running | Stopped | Failed => true,
        }
    }
}

/// What a task's runs left: the last one's duration and result, the last success's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRun {
    pub duration: Duration,
    pub ok: bool,
    pub last_success: Option<SystemTime>,
}

/// Why pypm is stopping an instance: decides what happens once it has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopIntent {
    /// Shutdown, `enabled = false`, removed from the file, or scaled away: stay stopped.
    Stay,
    /// A roll or `pypm restart`: start again at once.
    Restart,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at: SystemTime,
}

/// The process an instance had before a roll started its replacement: kept running until the
/// replacement is ready, then stopped (zero-downtime roll).
#[derive(Debug, Clone, PartialEq)]
pub struct OldProcess {
    pid: i32,
    start_ticks: Option<u64>,
    started_at: Option<Instant>,
    started_wall: Option<SystemTime>,
    /// The spec hash it was started with (see [`Instance::spec_hash`]).
    spec_hash: Option<u64>,
    /// The stop signal was sent; SIGKILL at `kill_at`.
    stopping: bool,
    kill_at: Option<Instant>,
}

impl OldProcess {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its start time (clock ticks since boot), to never signal a recycled pid.
    pub fn start_ticks(&self) -> Option<u64> {
        self.start_ticks
    }

    /// Its stop signal was sent.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// When it is killed if it has not exited.
    pub fn kill_at(&self) -> Option<Instant> {
        self.kill_at
    }
}

/// How many (when, why) entries an instance's restart history keeps for `inspect`.
const HISTORY_LEN: usize = 50;

/// One instance of an app. Its fields are private: the loop and the planner read them through
/// accessors and change them only through the methods below, each one fact or bookkeeping
/// step, and the state only through [`State::can_become`]'s table.
#[derive(Debug, Clone)]
pub struct Instance {
    app: String,
    idx: u32,
    /// Changed only by [`Instance::transition`], checked against [`State::can_become`].
    state: State,
    reason: Option<String>,
    pid: Option<i32>,
    /// The process's start time (clock ticks since boot), to never signal a recycled pid.
    start_ticks: Option<u64>,
    started_at: Option<Instant>,
    started_wall: Option<SystemTime>,
    ready: bool,
    /// Restarts over the instance's life (shown in `status`).
    restarts: u32,
    /// Consecutive failures: the backoff exponent.
    attempt: u32,
    /// Restarts inside the current `restart_window`.
    recent_restarts: VecDeque<Instant>,
    retry_at: Option<Instant>,
    kill_at: Option<Instant>,
    stop_intent: Option<StopIntent>,
    last_exit: Option<ExitInfo>,
    /// Set once the instance has been spawned at least once.
    ever_started: bool,
    /// [`super::diff::spec_hash`] of the spec its process was (last) started with: the planner
    /// rolls the instance when the desired spec's hash differs.
    spec_hash: Option<u64>,
    /// Restarts asked for (`pypm restart`, a watched file, a schedule) and the count its process
    /// was started under: the instance is rolled while `started_gen < asked_gen`.
    asked_gen: u64,
    started_gen: u64,
    /// Restart history for `inspect`: (when, why).
    history: VecDeque<(SystemTime, String)>,
    /// Starting with a readiness probe: the start fails if not ready by then.
    ready_deadline: Option<Instant>,
    /// Its readiness probe passed (what it said), not yet acted on: the planner's `Ready`.
    ready_seen: Option<String>,
    /// Consecutive failed health checks.
    health_failures: u32,
    /// What the last failed health check said (for the `unhealthy` event).
    last_health_detail: Option<String>,
    /// The last memory sample found it over `memory_max` (why, for the `memory_limit` event).
    over_memory: Option<String>,
    /// A task's last run: how long it took, and when it last succeeded (status, `/metrics`).
    last_run: Option<TaskRun>,
    /// Every restart within the last `restart_window`, whatever the exit (the restart rate).
    restart_times: VecDeque<Instant>,
    /// More than `max_restarts` restarts within one `restart_window` while still restarting
    /// (clean exits with `restart = "always"`): the `restart_loop` event is due. Set once per
    /// window.
    loop_alert: bool,
    loop_alerted_at: Option<Instant>,
    /// Why pypm killed it, when that kill is itself a failure (readiness timeout).
    fail_reason: Option<String>,
    /// During a zero-downtime roll: the process being replaced.
    old: Option<OldProcess>,
    /// Its log file cannot be written (disk full, …): shown in `status` until it can.
    log_problem: Option<String>,
}

impl Instance {
    pub fn new(app: &str, idx: u32) -> Self {
        Instance {
            app: app.to_string(),
            idx,
            state: State::Stopped,
            reason: None,
            pid: None,
            start_ticks: None,
            started_at: None,
            started_wall: None,
            ready: false,
            restarts: 0,
            attempt: 0,
            recent_restarts: VecDeque::new(),
            retry_at: None,
            kill_at: None,
            stop_intent: None,
            last_exit: None,
            ever_started: false,
            spec_hash: None,
            asked_gen: 0,
            started_gen: 0,
            history: VecDeque::new(),
            ready_deadline: None,
            ready_seen: None,
            health_failures: 0,
            last_health_detail: None,
            over_memory: None,
            last_run: None,
            restart_times: VecDeque::new(),
            loop_alert: false,
            loop_alerted_at: None,
            fail_reason: None,
            old: None,
            log_problem: None,
        }
    }

    /// Moves the instance to `to`, checked against [`State::can_become`]: a transition outside
    /// the table is a bug, reported (and a panic in debug builds, so tests catch it). Private:
    /// every state change is one of the named steps below (or the exit policy, `state_exit.rs`).
    fn transition(&mut self, to: State) {
        if !self.state.can_become(to) {
            log::error!(
                "{}.{}: the transition {} -> {} is not allowed",
                self.app,
                self.idx,
                self.state.as_str(),
                to.as_str()
            );
            debug_assert!(false, "{} -> {}", self.state.as_str(), to.as_str());
        }
        self.state = to;
    }

    /// A restart was asked for since its process started.
    pub fn restart_asked(&self) -> bool {
        self.started_gen < self.asked_gen
    }

    /// Asks for a restart (a roll of a live instance, a run of a task that is not).
    pub fn ask_restart(&mut self) {
        self.asked_gen = self.started_gen + 1;
    }

    /// Its process was started with a spec other than the one whose hash is `desired`.
    pub fn runs_other_spec(&self, desired: u64) -> bool {
        self.spec_hash.is_some_and(|h| h != desired)
    }

    /// A start of the spec hashed `spec` begins: it answers every restart asked so far. A roll
    /// (asked for, or to another spec) or a fresh start after a failure counts its restarts
    /// afresh.
    pub fn record_start(&mut self, spec: u64) {
        let afresh =
            self.restart_asked() || self.runs_other_spec(spec) || self.state == State::Failed;
        self.spec_hash = Some(spec);
        self.started_gen = self.asked_gen;
        if afresh {
            self.attempt = 0;
            self.recent_restarts.clear();
        }
    }

    /// The restarts asked for are given up (a roll stopped because its replacement failed).
    pub fn drop_restart(&mut self) {
        self.asked_gen = self.started_gen;
    }

    /// Its process `pid` (started at `start_ticks`) was spawned at `now` (`wall`): `starting`
    /// until its readiness probe passes — failed if not by `ready_deadline` — when it
    /// `awaits_ready`, else `running` at once.
    pub fn started(
        &mut self,
        pid: i32,
        start_ticks: u64,
        now: Instant,
        wall: SystemTime,
        awaits_ready: bool,
        ready_deadline: Option<Instant>,
    ) {
        self.pid = Some(pid);
        self.start_ticks = Some(start_ticks);
        self.started_at = Some(now);
        self.started_wall = Some(wall);
        if self.ever_started {
            self.restarts += 1;
        }
        self.ever_started = true;
        self.retry_at = None;
        self.stop_intent = None;
        self.kill_at = None;
        self.reason = None;
        self.ready_seen = None;
        if awaits_ready {
            self.transition(State::Starting);
            self.ready = false;
            self.ready_deadline = ready_deadline;
        } else {
            self.transition(State::Running);
            self.ready = true;
        }
    }

    /// Its process could not be spawned (`reason`): failed.
    pub fn spawn_failed(&mut self, reason: String) {
        self.transition(State::Failed);
        self.pid = None;
        self.reason = Some(reason);
    }

    /// Its readiness probe passed, saying `detail` (a fact: the planner decides `Ready`).
    pub fn ready_probe_passed(&mut self, detail: String) {
        self.ready_seen = Some(detail);
    }

    /// The planner's `Ready`: `running` and ready; what the probe said is returned (the event).
    pub fn became_ready(&mut self) -> String {
        let detail = self.ready_seen.take().unwrap_or_default();
        self.transition(State::Running);
        self.ready = true;
        self.ready_deadline = None;
        detail
    }

    /// A health check passed: the count of consecutive failures starts again.
    pub fn health_passed(&mut self) {
        self.health_failures = 0;
    }

    /// A health check failed, saying `detail`: the count of consecutive failures, now.
    pub fn health_failed(&mut self, detail: String) -> u32 {
        self.health_failures += 1;
        self.last_health_detail = Some(detail);
        self.health_failures
    }

    /// The planner's `Unhealthy`: the count of failures that made it so and what the last one
    /// said; the count starts again.
    pub fn take_health_failures(&mut self) -> (u32, String) {
        let n = std::mem::take(&mut self.health_failures);
        (n, self.last_health_detail.take().unwrap_or_default())
    }

    /// A memory sample found it over `memory_max` (`why`; a fact: the planner decides).
    pub fn over_memory_seen(&mut self, why: String) {
        self.over_memory = Some(why);
    }

    /// The planner's `OverMemory`: why it is over.
    pub fn take_over_memory(&mut self) -> String {
        self.over_memory.take().unwrap_or_default()
    }

    /// Its stop signal is being sent (`intent`: what follows its exit); SIGKILL at `kill_at`.
    pub fn begin_stop(&mut self, intent: StopIntent, kill_at: Instant) {
        self.transition(State::Stopping);
        self.stop_intent = Some(intent);
        self.kill_at = Some(kill_at);
    }

    /// It failed while running (`why`: not ready in time, unhealthy, over memory): it is
    /// stopped like any stop (SIGKILL at `kill_at`), and its exit then counts as a failure with
    /// `why` as the reason (backoff and `max_restarts` apply, SPEC §4).
    pub fn begin_failed_stop(&mut self, why: String, kill_at: Instant) {
        self.ready_deadline = None;
        self.fail_reason = Some(why);
        self.transition(State::Stopping);
        self.stop_intent = None;
        self.kill_at = Some(kill_at);
    }

    /// The kernel's OOM killer ended its process: the exit counts as a failure, for `why`.
    pub fn oom_killed(&mut self, why: String) {
        self.fail_reason = Some(why);
    }

    /// Its stop signal found no process (its exit is on its way): the kill deadline is now.
    pub fn stop_missed(&mut self, now: Instant) {
        self.kill_at = Some(now);
    }

    /// SIGKILL was sent: no deadline is left.
    pub fn kill_sent(&mut self) {
        self.kill_at = None;
    }

    /// A second stop signal killed every process, this one's and its old one's: `stopped`,
    /// their exits not waited for.
    pub fn killed_all(&mut self) {
        self.pid = None;
        self.old = None;
        self.kill_at = None;
        self.transition(State::Stopped);
    }

    /// Its app was removed from the file while it ran, and its process exited: `stopped`.
    pub fn exited_removed(&mut self) {
        self.pid = None;
        self.transition(State::Stopped);
        self.reason = Some("removed".into());
    }

    /// `waiting` (for a dependency, `reason` says which).
    pub fn wait_for(&mut self, reason: String) {
        self.transition(State::Waiting);
        self.reason = Some(reason);
    }

    /// `stopped`, and stays so (`reason`: disabled, waiting for its schedule).
    pub fn settle(&mut self, reason: String) {
        self.transition(State::Stopped);
        self.reason = Some(reason);
    }

    /// A roll's replacement is about to start: the live process becomes the old one, kept
    /// until the replacement is ready.
    pub fn replace(&mut self) {
        if let Some(pid) = self.pid.take() {
            self.old = Some(OldProcess {
                pid,
                start_ticks: self.start_ticks.take(),
                started_at: self.started_at,
                started_wall: self.started_wall,
                spec_hash: self.spec_hash,
                stopping: false,
                kill_at: None,
            });
        }
    }

    /// The replacement is ready (or the instance no longer wanted): the old process's stop
    /// signal is being sent; SIGKILL at `kill_at`.
    pub fn stop_old(&mut self, kill_at: Instant) {
        if let Some(o) = &mut self.old {
            o.stopping = true;
            o.kill_at = Some(kill_at);
        }
    }

    /// The old process's stop signal found nothing (its exit is on its way): kill it now.
    pub fn old_stop_missed(&mut self, now: Instant) {
        if let Some(o) = &mut self.old {
            o.kill_at = Some(now);
        }
    }

    /// SIGKILL was sent to the old process: no deadline is left.
    pub fn old_kill_sent(&mut self) {
        if let Some(o) = &mut self.old {
            o.kill_at = None;
        }
    }

    /// The old process of a roll exited.
    pub fn old_exited(&mut self) {
        self.old = None;
    }

    /// The replacement failed before it was ready (`reason`): the old process is the
    /// instance's process again, `running` and ready. Its pid, if there was one.
    pub fn keep_old(&mut self, reason: String) -> Option<i32> {
        let o = self.old.take()?;
        self.pid = Some(o.pid);
        self.start_ticks = o.start_ticks;
        self.started_at = o.started_at;
        self.started_wall = o.started_wall;
        self.spec_hash = o.spec_hash;
        self.transition(State::Running);
        self.ready = true;
        self.ready_deadline = None;
        self.reason = Some(reason);
        Some(o.pid)
    }

    /// Remembers a restart or failure (`what`) for `inspect`; the oldest entries go.
    pub fn note_history(&mut self, what: String) {
        self.history.push_back((SystemTime::now(), what));
        if self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
    }

    /// The `restart_loop` event is due (once per window): the restarts in the window.
    pub fn take_loop_alert(&mut self) -> Option<usize> {
        std::mem::take(&mut self.loop_alert).then_some(self.restart_times.len())
    }

    /// Its log file cannot be written (`Some(why)`), or can be again (`None`).
    pub fn set_log_problem(&mut self, problem: Option<String>) {
        self.log_problem = problem;
    }

    /// Has a process (which may be on its way out).
    pub fn is_live(&self) -> bool {
        self.pid.is_some()
    }

    /// Has a process, or an old one being replaced.
    pub fn has_any_process(&self) -> bool {
        self.pid.is_some() || self.old.is_some()
    }

    /// `api` or `api.2`.
    pub fn display_name(&self, instances: u32) -> String {
        if instances > 1 {
            format!("{}.{}", self.app, self.idx)
        } else {
            self.app.clone()
        }
    }
}

/// The delay before restart number `attempt` (0-based): `base · 2^attempt`, capped at `max`.
pub fn backoff_delay(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// A signal name for messages (`SIGKILL`).
pub fn signal_name(sig: i32) -> String {
    crate::process::signal_name(sig)
}

#[path = "state_access.rs"]
mod access;
#[path = "state_exit.rs"]
mod exit;
pub use exit::on_exit;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
