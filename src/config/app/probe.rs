//! Reading an app's `ready` and `health` tables into a [`Probe`]: exactly one check kind, its
//! value checked, and the timings with their defaults.

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::config::expand::Vars;
use crate::config::keys;
use crate::config::read::parse_host_port;
use crate::config::table::{Cx, Table};
use crate::config::{LogPattern, Probe, ProbeCheck};
use crate::diagnostic::Span;

/// The `ready` and `health` probes, in that order.
pub(super) fn read_probes(
    cx: &mut Cx,
    t: &Table,
    app_ctx: &str,
    vars: &Vars,
) -> (Option<Probe>, Option<Probe>) {
    let ready = t
        .sub_table(cx, "ready")
        .and_then(|(tb, span)| read_probe(cx, tb, span, app_ctx, true, vars));
    let health = t
        .sub_table(cx, "health")
        .and_then(|(tb, span)| read_probe(cx, tb, span, app_ctx, false, vars));
    (ready, health)
}

fn read_probe(
    cx: &mut Cx,
    body: &DeTable,
    span: Span,
    app_ctx: &str,
    ready: bool,
    vars: &Vars,
) -> Option<Probe> {
    let which = if ready { "ready" } else { "health" };
    let ctx = format!("`{which}` probe of {app_ctx}");
    let keys = if ready {
        keys::READY_KEYS
    } else {
        keys::HEALTH_KEYS
    };
    let t = Table::new(cx, body, ctx.clone(), keys);
    let check = read_check(cx, &t, span, &ctx, vars);
    let interval = t.duration(cx, "interval").unwrap_or(if ready {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    });
    let timeout = t.duration(cx, "timeout").unwrap_or(if ready {
        Duration::from_secs(60)
    } else {
        interval.min(Duration::from_secs(5))
    });
    let failures = if ready {
        1
    } else {
        t.int(cx, "failures").unwrap_or(3) as u32
    };
    Some(Probe {
        check: check?,
        interval,
        timeout,
        failures,
    })
}

/// Exactly one probe kind (`notify = false` does not count), and its value.
fn read_check(cx: &mut Cx, t: &Table, span: Span, ctx: &str, vars: &Vars) -> Option<ProbeCheck> {
    let present: Vec<&str> = keys::PROBE_KINDS
        .iter()
        .copied()
        .filter(|k| match t.get(k) {
            Some(v) => !matches!(v.get_ref(), DeValue::Boolean(false)),
            None => false,
        })
        .collect();
    match present.as_slice() {
        [] => {
            cx.err_help(
                span,
                format!("{ctx} has no probe kind"),
                Some("add exactly one of `http`, `tcp`, `exec`, `log` or `notify`".into()),
            );
            None
        }
        [kind] => check_of_kind(cx, t, kind, ctx, vars),
        [_, second, ..] => {
            cx.err_help(
                t.span_of(second).unwrap_or(span),
                format!(
                    "{ctx} has more than one probe kind ({}); keep one",
                    present.join(", ")
                ),
                None,
            );
            None
        }
    }
}

/// The check of the probe kind `kind` (one of [`keys::PROBE_KINDS`]), its value validated.
fn check_of_kind(cx: &mut Cx, t: &Table, kind: &str, ctx: &str, vars: &Vars) -> Option<ProbeCheck> {
    match kind {
        "http" => t.estr(cx, "http", vars).and_then(|(u, span)| {
            if u.starts_with("http://") {
                Some(ProbeCheck::Http(u))
            } else {
                cx.err(
                    span,
                    format!("`http` of {ctx} must be an http:// URL, found `{u}`"),
                );
                None
            }
        }),
        "tcp" => t
            .estr(cx, "tcp", vars)
            .and_then(|(a, span)| match parse_host_port(&a) {
                Ok(_) => Some(ProbeCheck::Tcp(a)),
                Err(e) => {
                    cx.err(span, format!("invalid `tcp` address `{a}` of {ctx}: {e}"));
                    None
                }
            }),
        "exec" => t.command(cx, "exec", vars).map(ProbeCheck::Exec),
        "log" => t
            .str(cx, "log")
            .and_then(|(re, span)| match regex::Regex::new(&re) {
                Ok(re) => Some(ProbeCheck::Log(LogPattern(re))),
                Err(e) => {
                    let first = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    cx.err(span, format!("invalid regex in `log` of {ctx}: {first}"));
                    None
                }
            }),
        _ => t.bool(cx, "notify").map(|_| ProbeCheck::Notify),
    }
}
