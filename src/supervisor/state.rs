//! Observed state: what each instance is doing, and the pure transitions that follow a child's
//! exit (restart policy, backoff, `max_restarts`). Time is an argument; nothing here sleeps.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{App, Kind, RestartPolicy};

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
    pub pid: i32,
    pub start_ticks: Option<u64>,
    pub started_at: Option<Instant>,
    pub started_wall: Option<SystemTime>,
    /// The spec hash it was started with (see [`Instance::spec_hash`]).
    pub spec_hash: Option<u64>,
    /// The stop signal was sent; SIGKILL at `kill_at`.
    pub stopping: bool,
    pub kill_at: Option<Instant>,
}

/// One instance of an app.
#[derive(Debug, Clone)]
pub struct Instance {
    pub app: String,
    pub idx: u32,
    /// Changed only by [`Instance::transition`], checked against [`State::can_become`].
    state: State,
    pub reason: Option<String>,
    pub pid: Option<i32>,
    /// The process's start time (clock ticks since boot), to never signal a recycled pid.
    pub start_ticks: Option<u64>,
    pub started_at: Option<Instant>,
    pub started_wall: Option<SystemTime>,
    pub ready: bool,
    /// Restarts over the instance's life (shown in `status`).
    pub restarts: u32,
    /// Consecutive failures: the backoff exponent.
    pub attempt: u32,
    /// Restarts inside the current `restart_window`.
    pub recent_restarts: VecDeque<Instant>,
    pub retry_at: Option<Instant>,
    pub kill_at: Option<Instant>,
    pub stop_intent: Option<StopIntent>,
    pub last_exit: Option<ExitInfo>,
    /// Set once the instance has been spawned at least once.
    pub ever_started: bool,
    /// [`super::diff::spec_hash`] of the spec its process was (last) started with: the planner
    /// rolls the instance when the desired spec's hash differs.
    pub spec_hash: Option<u64>,
    /// Restarts asked for (`pypm restart`, a watched file, a schedule) and the count its process
    /// was started under: the instance is rolled while `started_gen < asked_gen`.
    pub asked_gen: u64,
    pub started_gen: u64,
    /// Restart history for `inspect`: (when, why).
    pub history: VecDeque<(SystemTime, String)>,
    /// Starting with a readiness probe: the start fails if not ready by then.
    pub ready_deadline: Option<Instant>,
    /// Its readiness probe passed (what it said), not yet acted on: the planner's `Ready`.
    pub ready_seen: Option<String>,
    /// Consecutive failed health checks.
    pub health_failures: u32,
    /// What the last failed health check said (for the `unhealthy` event).
    pub last_health_detail: Option<String>,
    /// The last memory sample found it over `memory_max` (why, for the `memory_limit` event).
    pub over_memory: Option<String>,
    /// A task's last run: how long it took, and when it last succeeded (status, `/metrics`).
    pub last_run: Option<TaskRun>,
    /// Every restart within the last `restart_window`, whatever the exit (the restart rate).
    pub restart_times: VecDeque<Instant>,
    /// More than `max_restarts` restarts within one `restart_window` while still restarting
    /// (clean exits with `restart = "always"`): the `restart_loop` event is due. Set once per
    /// window.
    pub loop_alert: bool,
    loop_alerted_at: Option<Instant>,
    /// Why pypm killed it, when that kill is itself a failure (readiness timeout).
    pub fail_reason: Option<String>,
    /// During a zero-downtime roll: the process being replaced.
    pub old: Option<OldProcess>,
    /// Its log file cannot be written (disk full, …): shown in `status` until it can.
    pub log_problem: Option<String>,
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
    /// the table is a bug, reported (and a panic in debug builds, so tests catch it).
    pub fn transition(&mut self, to: State) {
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

    pub fn state(&self) -> State {
        self.state
    }

    /// Sets the state without the table's check: tests building an observed state by hand.
    #[cfg(test)]
    pub fn set_state(&mut self, to: State) {
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

    /// A start of the spec hashed `spec` begins: it answers every restart asked so far.
    pub fn record_start(&mut self, spec: u64) {
        self.spec_hash = Some(spec);
        self.started_gen = self.asked_gen;
    }

    /// The restarts asked for are given up (a roll stopped because its replacement failed).
    pub fn drop_restart(&mut self) {
        self.asked_gen = self.started_gen;
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

fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (_, Some(s)) => format!("killed by {}", signal_name(s)),
        (Some(c), None) => format!("exited {c}"),
        (None, None) => "exited".into(),
    }
}

/// Applies a child's exit to its instance (SPEC §8 "Failures and restarts").
pub fn on_exit(
    app: &App,
    inst: &mut Instance,
    code: Option<i32>,
    signal: Option<i32>,
    now: Instant,
) {
    let uptime = inst.started_at.map(|s| now.saturating_duration_since(s));
    let intent = inst.stop_intent.take();
    let forced = inst.fail_reason.take();
    inst.ready_deadline = None;
    inst.health_failures = 0;
    inst.over_memory = None;
    inst.pid = None;
    inst.start_ticks = None;
    inst.kill_at = None;
    inst.ready = false;
    inst.last_exit = Some(ExitInfo {
        code,
        signal,
        at: SystemTime::now(),
    });
    let what = forced
        .clone()
        .unwrap_or_else(|| describe_exit(code, signal));

    match intent {
        Some(StopIntent::Stay) => {
            inst.transition(State::Stopped);
            inst.reason = Some("stopped by pypm".into());
            return;
        }
        Some(StopIntent::Restart) => {
            // The planner starts it again (the roll is still requested).
            inst.transition(State::Stopped);
            inst.reason = Some("restarting".into());
            return;
        }
        None => {}
    }

    let stable = uptime.is_some_and(|u| u >= app.min_uptime);
    if stable {
        inst.attempt = 0;
    }
    // An instance pypm stopped because it failed (not ready in time, unhealthy) failed, however
    // it exited.
    let clean = forced.is_none()
        && signal.is_none()
        && code.is_some_and(|c| app.success_exit_codes.contains(&c));
    // A task is meant to exit: `min_uptime` only judges services.
    let success = clean && (stable || app.kind == Kind::Task);
    let too_soon = clean && !success;
    if app.kind == Kind::Task {
        let ended = SystemTime::now();
        inst.last_run = Some(TaskRun {
            duration: uptime.unwrap_or_default(),
            ok: success,
            last_success: if success {
                Some(ended)
            } else {
                inst.last_run.and_then(|r| r.last_success)
            },
        });
    }

    if success {
        exited_successfully(app, inst, what, now);
        return;
    }
    let why = if too_soon {
        format!(
            "{what} after {} (sooner than min_uptime)",
            crate::config::units::format_duration(uptime.unwrap_or_default())
        )
    } else {
        what
    };
    failed(app, inst, why, now);
}

/// A successful exit: restarted (`restart = "always"`), completed (a task) or stopped.
fn exited_successfully(app: &App, inst: &mut Instance, what: String, now: Instant) {
    match (app.kind, app.restart) {
        (Kind::Task, RestartPolicy::Always) | (Kind::Service, RestartPolicy::Always) => {
            inst.transition(State::Backoff);
            inst.retry_at = Some(now + app.restart_delay);
            let rate = count_restart(app, inst, now);
            inst.reason = Some(format!("{what}; restarting{rate}"));
        }
        (Kind::Task, _) => {
            inst.transition(State::Completed);
            inst.reason = Some(what);
        }
        (Kind::Service, _) => {
            inst.transition(State::Stopped);
            inst.reason = Some(what);
        }
    }
}

/// A failure (`why`): restarted after its backoff, or failed for good (`restart = "never"`,
/// or more than `max_restarts` within `restart_window`).
fn failed(app: &App, inst: &mut Instance, why: String, now: Instant) {
    if app.restart == RestartPolicy::Never {
        inst.transition(State::Failed);
        inst.reason = Some(why);
        return;
    }
    while inst
        .recent_restarts
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > app.restart_window)
    {
        inst.recent_restarts.pop_front();
    }
    if inst.recent_restarts.len() as u32 >= app.max_restarts {
        inst.transition(State::Failed);
        inst.reason = Some(format!(
            "{why}; gave up after {} restarts within {}",
            inst.recent_restarts.len(),
            crate::config::units::format_duration(app.restart_window)
        ));
        return;
    }
    let delay = backoff_delay(app.restart_delay, app.restart_delay_max, inst.attempt);
    inst.attempt = inst.attempt.saturating_add(1);
    inst.recent_restarts.push_back(now);
    inst.transition(State::Backoff);
    inst.retry_at = Some(now + delay);
    let rate = count_restart(app, inst, now);
    inst.reason = Some(format!(
        "{why}; restarting in {}{rate}",
        crate::config::units::format_duration(delay)
    ));
}

/// Counts a restart toward the restart rate (`status` shows it from the second restart within
/// `restart_window`) and raises `loop_alert` once per window past `max_restarts`.
fn count_restart(app: &App, inst: &mut Instance, now: Instant) -> String {
    while inst
        .restart_times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > app.restart_window)
    {
        inst.restart_times.pop_front();
    }
    inst.restart_times.push_back(now);
    let n = inst.restart_times.len();
    if n as u32 > app.max_restarts
        && inst
            .loop_alerted_at
            .is_none_or(|t| now.saturating_duration_since(t) > app.restart_window)
    {
        inst.loop_alert = true;
        inst.loop_alerted_at = Some(now);
    }
    if n >= 2 {
        format!(
            " ({n} restarts in the last {})",
            crate::config::units::format_duration(app.restart_window)
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
