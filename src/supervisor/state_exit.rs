//! The restart policy: what a child's exit does to its instance (SPEC §8 "Failures and
//! restarts") — stopped, completed, restarted after its backoff, or failed for good. A child of
//! `state.rs`, so it keeps the instance's books directly; time is an argument.
use std::time::{Instant, SystemTime};

use super::{ExitInfo, Instance, State, StopIntent, TaskRun, backoff_delay, signal_name};
use crate::config::{App, Kind, RestartPolicy};

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
