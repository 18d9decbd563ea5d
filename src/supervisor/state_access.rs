//! Reading an [`Instance`]: one accessor per fact the loop, the planner and the reports need;
//! and, for tests only, the setters that build an observed state by hand.
use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use super::{ExitInfo, Instance, OldProcess, State, StopIntent, TaskRun};

impl Instance {
    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn idx(&self) -> u32 {
        self.idx
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Why it is in its state (shown in `status`).
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Its process's start time (clock ticks since boot), to never signal a recycled pid.
    pub fn start_ticks(&self) -> Option<u64> {
        self.start_ticks
    }

    pub fn started_at(&self) -> Option<Instant> {
        self.started_at
    }

    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Restarts over the instance's life.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// In backoff: when it is started again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Stopping: when it is killed if it has not exited.
    pub fn kill_at(&self) -> Option<Instant> {
        self.kill_at
    }

    /// Stopping: what follows its exit (`None`: a failure, or not stopping).
    pub fn stop_intent(&self) -> Option<StopIntent> {
        self.stop_intent
    }

    pub fn last_exit(&self) -> Option<&ExitInfo> {
        self.last_exit.as_ref()
    }

    pub fn ever_started(&self) -> bool {
        self.ever_started
    }

    /// The spec hash its process was (last) started with.
    pub fn spec_hash(&self) -> Option<u64> {
        self.spec_hash
    }

    /// Restarts and failures, oldest first: (when, why).
    pub fn history(&self) -> &VecDeque<(SystemTime, String)> {
        &self.history
    }

    /// Starting with a readiness probe: when the start fails if not ready.
    pub fn ready_deadline(&self) -> Option<Instant> {
        self.ready_deadline
    }

    /// Its readiness probe passed (what it said), not yet acted on.
    pub fn ready_seen(&self) -> Option<&str> {
        self.ready_seen.as_deref()
    }

    /// Consecutive failed health checks.
    pub fn health_failures(&self) -> u32 {
        self.health_failures
    }

    /// The last memory sample found it over `memory_max`: why.
    pub fn over_memory(&self) -> Option<&str> {
        self.over_memory.as_deref()
    }

    /// A task's last run.
    pub fn last_run(&self) -> Option<TaskRun> {
        self.last_run
    }

    /// Why pypm is stopping it, when that stop is itself a failure.
    pub fn fail_reason(&self) -> Option<&str> {
        self.fail_reason.as_deref()
    }

    /// During a zero-downtime roll: the process being replaced.
    pub fn old(&self) -> Option<&OldProcess> {
        self.old.as_ref()
    }

    /// Its log file cannot be written: why.
    pub fn log_problem(&self) -> Option<&str> {
        self.log_problem.as_deref()
    }
}

/// Tests build observed states by hand, without the table's checks or the steps' bookkeeping.
#[cfg(test)]
impl Instance {
    pub fn set_state(&mut self, to: State) {
        self.state = to;
    }

    pub fn set_reason(&mut self, reason: &str) {
        self.reason = Some(reason.into());
    }

    pub fn set_pid(&mut self, pid: Option<i32>) {
        self.pid = pid;
    }

    pub fn set_ready(&mut self, ready: bool) {
        self.ready = ready;
    }

    pub fn set_ever_started(&mut self) {
        self.ever_started = true;
    }

    pub fn set_ready_deadline(&mut self, at: Instant) {
        self.ready_deadline = Some(at);
    }

    pub fn set_retry_at(&mut self, at: Instant) {
        self.retry_at = Some(at);
    }

    /// Its process is gone, the instance in `state` (no deadline, no stop intent).
    pub fn set_exited(&mut self, state: State) {
        self.pid = None;
        self.ready = false;
        self.kill_at = None;
        self.stop_intent = None;
        self.state = state;
    }
}
