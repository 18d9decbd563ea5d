//! Reading an app's schedule keys: `schedule` (tasks), `restart_schedule` (services), `timezone`,
//! `concurrency`, `catch_up` and `jitter`, and the rules between them and `kind`.

use std::time::Duration;

use crate::config::keys;
use crate::config::table::{Cx, Table};
use crate::config::{Concurrency, Kind};

pub(super) struct Schedules {
    pub(super) schedule: Option<String>,
    pub(super) timezone: Option<String>,
    pub(super) concurrency: Concurrency,
    pub(super) catch_up: bool,
    pub(super) jitter: Duration,
    pub(super) restart_schedule: Option<String>,
}

/// `schedule`, `timezone`, `concurrency`, `catch_up`, `jitter` and `restart_schedule`: each
/// expression and zone is parsed here so `pypm check` reports it at its line and column.
pub(super) fn read_schedules(cx: &mut Cx, t: &Table, kind: Kind, ctx: &str) -> Schedules {
    let cron = |key: &str, cx: &mut Cx| -> Option<String> {
        let (raw, span) = t.str(cx, key)?;
        match crate::inputs::schedule::Schedule::parse(&raw) {
            Ok(_) => Some(raw),
            Err(e) => {
                cx.err(span, format!("`{key}` of {ctx}: {e}"));
                None
            }
        }
    };
    let schedule = cron("schedule", cx);
    let restart_schedule = cron("restart_schedule", cx);
    if kind == Kind::Service
        && let Some(span) = t.span_of("schedule")
    {
        cx.err_help(
            span,
            format!("`schedule` of {ctx} needs `kind = \"task\"`"),
            Some("a service restarts on a schedule with `restart_schedule`".into()),
        );
    }
    if kind == Kind::Task
        && let Some(span) = t.span_of("restart_schedule")
    {
        cx.err_help(
            span,
            format!("`restart_schedule` of {ctx} is for services"),
            Some("a task runs on a schedule with `schedule`".into()),
        );
    }
    let timezone = t.str(cx, "timezone").and_then(|(z, span)| {
        match crate::inputs::schedule::parse_timezone(&z) {
            Ok(_) => Some(z),
            Err(e) => {
                cx.err(span, format!("`timezone` of {ctx}: {e}"));
                None
            }
        }
    });
    let concurrency = match t.enumerated(cx, "concurrency", keys::CONCURRENCY) {
        Some("allow") => Concurrency::Allow,
        Some("replace") => Concurrency::Replace,
        _ => Concurrency::Forbid,
    };
    let catch_up = t.bool(cx, "catch_up").unwrap_or(false);
    let jitter = t.duration(cx, "jitter").unwrap_or(Duration::ZERO);
    if t.span_of("schedule").is_none() && t.span_of("restart_schedule").is_none() {
        for key in ["timezone", "concurrency", "catch_up", "jitter"] {
            if let Some(span) = t.span_of(key) {
                let needs = if kind == Kind::Task {
                    "`schedule`"
                } else {
                    "`restart_schedule`"
                };
                cx.err(
                    span,
                    format!("`{key}` of {ctx} has no effect without {needs}"),
                );
            }
        }
    }
    Schedules {
        schedule,
        timezone,
        concurrency,
        catch_up,
        jitter,
        restart_schedule,
    }
}
