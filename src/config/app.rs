//! Reading one `[apps.NAME]` table into an [`App`]: the order its keys are read in (which is the
//! order of their diagnostics), its program, restart and stop keys, sockets and the simple keys.
//! Its environment, cwd and interpreter are read in [`runtime`], `depends_on` in [`depends_on`],
//! the probes in [`probe`] and the schedule keys in [`schedule`]; `env` and `env_file` in
//! [`super::app_env`].

mod depends_on;
mod probe;
mod runtime;
mod schedule;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use toml::de::{DeTable, DeValue};

use super::app_env::*;
use super::expand::Vars;
use super::keys::{self};
use super::read::*;
use super::table::*;
use super::*;
use crate::diagnostic::{Span, did_you_mean};
use depends_on::read_depends_on;
use probe::read_probes;
use runtime::{Runtime, read_runtime};
use schedule::read_schedules;

pub(super) type AppEntry = (App, HashMap<String, Span>);

pub(super) fn read_apps(
    cx: &mut Cx,
    v: Option<&Val>,
    dir: &Path,
    host: &HashMap<String, String>,
    environments: &IndexMap<String, Environment>,
) -> IndexMap<String, AppEntry> {
    let mut out = IndexMap::new();
    let Some(t) = v.and_then(|v| as_table(cx, v, "`[apps]`")) else {
        return out;
    };
    let app_names: Vec<&str> = t.iter().map(|(k, _)| -> &str { k.get_ref() }).collect();
    for (k, v) in t.iter() {
        let name: &str = k.get_ref();
        check_name(cx, name, k.span(), "app");
        let ctx = format!("app `{name}`");
        let Some(body) = as_table(cx, v, &ctx) else {
            continue;
        };
        let app = read_app(
            cx,
            name,
            k.span(),
            body,
            dir,
            host,
            environments,
            &app_names,
        );
        out.insert(name.to_string(), app);
    }
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn read_app(
    cx: &mut Cx,
    name: &str,
    name_span: Span,
    body: &DeTable,
    dir: &Path,
    host: &HashMap<String, String>,
    environments: &IndexMap<String, Environment>,
    app_names: &[&str],
) -> AppEntry {
    let ctx = format!("app `{name}`");
    let t = Table::new(cx, body, ctx.clone(), keys::APP_KEYS);
    let host_vars = Vars::new(host);

    let AppEnv {
        env,
        env_file,
        file_vars,
    } = read_app_env(cx, &t, dir, &host_vars, &ctx);
    let file_map: HashMap<String, String> = file_vars.iter().cloned().collect();
    let with_files = host_vars.with(&file_map);
    let env_map: HashMap<String, String> = env.iter().cloned().collect();
    let vars = with_files.with(&env_map);

    // Diagnostics come out in the order the keys are read here.
    let program = read_program(cx, &t, body, &name_span, &ctx, &vars);
    let args = read_args(cx, &t, &program, &name_span, &ctx, &vars);
    let Runtime {
        environment,
        cwd,
        interpreter,
    } = read_runtime(cx, &t, dir, environments, &ctx, &vars);
    let (kind, restart) = read_kind(cx, &t);
    let listen = read_listen(cx, &t, dir, &vars);
    let (depends_on, dep_spans) = read_depends_on(cx, &t, name, app_names);
    let (restart_delay, restart_delay_max) = read_backoff(cx, &t, &ctx);
    let success_exit_codes = read_success_exit_codes(cx, &t, &ctx);
    let stop_signal = read_stop_signal(cx, &t, &ctx);
    let revision = read_revision(cx, &t, &ctx, &vars);
    let schedules = read_schedules(cx, &t, kind, &ctx);
    let (ready, health) = read_probes(cx, &t, &ctx, &vars);
    let simple = read_simple_keys(cx, &t, &vars);
    refuse_unsupported_keys(cx, &t, crate::process::KEY_SUPPORT);

    let app = App {
        name: name.to_string(),
        program: program.unwrap_or(Program::Command(Vec::new())),
        args,
        interpreter,
        environment,
        cwd,
        env,
        env_file,
        env_file_vars: file_vars,
        kind,
        enabled: simple.enabled,
        instances: simple.instances,
        listen: listen.into_iter().map(|(l, _)| l).collect(),
        depends_on,
        restart,
        restart_delay,
        restart_delay_max,
        max_restarts: simple.max_restarts,
        restart_window: simple.restart_window,
        min_uptime: simple.min_uptime,
        success_exit_codes,
        stop_signal,
        stop_timeout: simple.stop_timeout,
        memory_max: simple.memory_max,
        cpu_max: simple.cpu_max,
        nofile: simple.nofile,
        nice: simple.nice,
        user: simple.user,
        watch: simple.watch,
        revision,
        schedule: schedules.schedule,
        timezone: schedules.timezone,
        concurrency: schedules.concurrency,
        catch_up: schedules.catch_up,
        jitter: schedules.jitter,
        restart_schedule: schedules.restart_schedule,
        log_timestamps: simple.log_timestamps,
        log_max_size: simple.log_max_size,
        log_max_files: simple.log_max_files,
        ready,
        health,
        spans: AppSpans {
            name: name_span,
            keys: value_spans(body),
        },
    };
    (app, dep_spans)
}

/// Where each key's value is.
fn value_spans(body: &DeTable) -> HashMap<String, Span> {
    body.iter()
        .map(|(k, v)| (k.get_ref().to_string(), v.span()))
        .collect()
}

/// Exactly one of `command`, `script` and `module`.
fn read_program(
    cx: &mut Cx,
    t: &Table,
    body: &DeTable,
    name_span: &Span,
    ctx: &str,
    vars: &Vars,
) -> Option<Program> {
    let present: Vec<&str> = keys::PROGRAM_KEYS
        .iter()
        .copied()
        .filter(|k| t.get(k).is_some())
        .collect();
    // A misspelt `command` is already reported as an unknown key with its suggestion.
    let misspelt_program = body.iter().any(|(k, _)| {
        let k: &str = k.get_ref();
        !keys::APP_KEYS.iter().any(|key| key.name == k)
            && did_you_mean(k, keys::PROGRAM_KEYS.iter().copied()).is_some()
    });
    match present.as_slice() {
        [] if misspelt_program => None,
        [] => {
            cx.err_help(
                name_span.clone(),
                format!("{ctx} has none of `command`, `script` or `module`"),
                Some("add one, e.g. `command = \"python3 app.py\"`".into()),
            );
            None
        }
        ["command"] => t.command(cx, "command", vars).map(Program::Command),
        ["script"] => t.estr(cx, "script", vars).map(|(s, _)| Program::Script(s)),
        ["module"] => t.estr(cx, "module", vars).map(|(s, _)| Program::Module(s)),
        [_] => None,
        [_, second, ..] => {
            cx.err_help(
                t.span_of(second).unwrap_or(name_span.clone()),
                format!(
                    "{ctx} has more than one of `command`, `script`, `module` ({}); keep one",
                    present.join(", ")
                ),
                None,
            );
            None
        }
    }
}

/// `args`, which only a `script` or `module` takes.
fn read_args(
    cx: &mut Cx,
    t: &Table,
    program: &Option<Program>,
    name_span: &Span,
    ctx: &str,
    vars: &Vars,
) -> Vec<String> {
    let args = t
        .str_list(cx, "args", Some(vars))
        .map(|v| v.into_iter().map(|(s, _)| s).collect())
        .unwrap_or_default();
    if !args_allowed(program) && t.get("args").is_some() {
        let span = t.span_of("args").unwrap_or(name_span.clone());
        cx.err_help(
            span,
            format!("`args` of {ctx} applies only to `script` and `module`"),
            Some("put the arguments in `command`".into()),
        );
    }
    args
}

/// `kind`, and `restart`, whose default depends on it.
fn read_kind(cx: &mut Cx, t: &Table) -> (Kind, RestartPolicy) {
    let kind = match t.enumerated(cx, "kind", keys::KINDS) {
        Some("task") => Kind::Task,
        _ => Kind::Service,
    };
    let restart = match t.enumerated(cx, "restart", keys::RESTART_POLICIES) {
        Some("always") => RestartPolicy::Always,
        Some("on-failure") => RestartPolicy::OnFailure,
        Some("never") => RestartPolicy::Never,
        _ if kind == Kind::Task => RestartPolicy::Never,
        _ => RestartPolicy::Always,
    };
    (kind, restart)
}

/// `restart_delay` and `restart_delay_max`, which must not be shorter.
fn read_backoff(cx: &mut Cx, t: &Table, ctx: &str) -> (Duration, Duration) {
    let restart_delay = t
        .duration(cx, "restart_delay")
        .unwrap_or(Duration::from_millis(100));
    let restart_delay_max = t
        .duration(cx, "restart_delay_max")
        .unwrap_or(Duration::from_secs(30));
    if restart_delay_max < restart_delay
        && let Some(span) = t.span_of("restart_delay_max")
    {
        cx.err(
            span,
            format!("`restart_delay_max` of {ctx} is shorter than `restart_delay`"),
        );
    }
    (restart_delay, restart_delay_max)
}

/// `success_exit_codes`: each from 0 to 255, each bad one reported.
fn read_success_exit_codes(cx: &mut Cx, t: &Table, ctx: &str) -> Vec<i32> {
    match t.get("success_exit_codes") {
        Some(v) => match v.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .filter_map(|i| match int_of(i.get_ref()) {
                    Some(c) if (0..=255).contains(&c) => Some(c as i32),
                    _ => {
                        cx.err(
                            i.span(),
                            format!(
                                "`success_exit_codes` of {ctx} must contain integers from 0 to 255"
                            ),
                        );
                        None
                    }
                })
                .collect(),
            _ => {
                t.wrong(cx, "success_exit_codes", "an array of integers", v);
                vec![0]
            }
        },
        None => vec![0],
    }
}

/// `stop_signal`, with or without `SIG`, in any case.
fn read_stop_signal(cx: &mut Cx, t: &Table, ctx: &str) -> StopSignal {
    match t.str(cx, "stop_signal") {
        Some((s, span)) => {
            let upper = s.trim().to_ascii_uppercase();
            let canon = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            match crate::process::parse_signal(&canon) {
                Ok(sig) if SIGNALS.contains(&canon.as_str()) => StopSignal(sig),
                _ => {
                    cx.err_help(
                        span,
                        format!("unknown signal `{s}` for `stop_signal` of {ctx}"),
                        did_you_mean(&canon, SIGNALS.iter().copied()),
                    );
                    StopSignal::default()
                }
            }
        }
        None => StopSignal::default(),
    }
}

/// `revision`: a string (expanded) or a number, kept as text.
fn read_revision(cx: &mut Cx, t: &Table, ctx: &str, vars: &Vars) -> Option<String> {
    t.get("revision").and_then(|v| match v.get_ref() {
        DeValue::String(s) => {
            let what = format!("`revision` of {ctx}");
            Some(cx.expand(s, &v.span(), vars, &what))
        }
        DeValue::Integer(_) | DeValue::Float(_) => scalar_text(v.get_ref()),
        _ => {
            t.wrong(cx, "revision", "a string or a number", v);
            None
        }
    })
}

/// Keys this platform has no meaning for are errors at their key, naming the platform.
pub(super) fn refuse_unsupported_keys(cx: &mut Cx, t: &Table, support: crate::process::KeySupport) {
    for key in support.unsupported {
        let at = t.t.iter().find(|(k, _)| k.get_ref() == key);
        if let Some((k, _)) = at {
            let span = k.span();
            cx.err(
                span,
                format!(
                    "`{key}` in {} is not supported on {}",
                    t.ctx, support.platform
                ),
            );
        }
    }
}

/// The keys with no rule beyond their own type and range, defaults applied.
struct SimpleKeys {
    enabled: bool,
    instances: u32,
    max_restarts: u32,
    restart_window: Duration,
    min_uptime: Duration,
    stop_timeout: Duration,
    memory_max: Option<u64>,
    cpu_max: Option<f64>,
    nofile: Option<u64>,
    nice: i32,
    user: Option<String>,
    watch: Vec<String>,
    log_timestamps: bool,
    log_max_size: u64,
    log_max_files: u32,
}

/// Read after the probes, as they always were, so their diagnostics keep their place.
fn read_simple_keys(cx: &mut Cx, t: &Table, vars: &Vars) -> SimpleKeys {
    SimpleKeys {
        enabled: t.bool(cx, "enabled").unwrap_or(true),
        instances: t.int(cx, "instances").unwrap_or(1) as u32,
        max_restarts: t.int(cx, "max_restarts").unwrap_or(10) as u32,
        restart_window: t
            .duration(cx, "restart_window")
            .unwrap_or(Duration::from_secs(60)),
        min_uptime: t
            .duration(cx, "min_uptime")
            .unwrap_or(Duration::from_secs(1)),
        stop_timeout: t
            .duration(cx, "stop_timeout")
            .unwrap_or(Duration::from_secs(10)),
        memory_max: t.size(cx, "memory_max"),
        cpu_max: t.number(cx, "cpu_max"),
        nofile: t.int(cx, "nofile").map(|n| n as u64),
        nice: t.int(cx, "nice").unwrap_or(0) as i32,
        user: t.estr(cx, "user", vars).map(|(s, _)| s),
        watch: t
            .str_list(cx, "watch", Some(vars))
            .map(|v| v.into_iter().map(|(s, _)| s).collect())
            .unwrap_or_default(),
        log_timestamps: t.bool(cx, "log_timestamps").unwrap_or(false),
        log_max_size: t.size(cx, "log_max_size").unwrap_or(10 * 1024 * 1024),
        log_max_files: t.int(cx, "log_max_files").unwrap_or(5) as u32,
    }
}

pub(super) fn args_allowed(program: &Option<Program>) -> bool {
    !matches!(program, Some(Program::Command(_)))
}

pub(super) fn read_listen(cx: &mut Cx, t: &Table, dir: &Path, vars: &Vars) -> Vec<(Listen, Span)> {
    let mut out = Vec::new();
    for (addr, span) in t.str_list(cx, "listen", Some(vars)).unwrap_or_default() {
        if let Some(rest) = addr.strip_prefix("tcp://") {
            match parse_host_port(rest) {
                Ok(_) => out.push((Listen::Tcp(rest.to_string()), span)),
                Err(e) => cx.err(span, format!("invalid listen address `{addr}`: {e}")),
            }
        } else if let Some(rest) = addr.strip_prefix("unix:") {
            let rest = rest.trim_start_matches("//");
            if rest.is_empty() {
                cx.err(
                    span,
                    format!("invalid listen address `{addr}`: missing path"),
                );
            } else {
                out.push((Listen::Unix(dir.join(rest)), span));
            }
        } else {
            cx.err_help(
                span,
                format!("invalid listen address `{addr}`"),
                Some("use `tcp://HOST:PORT` or `unix:/path.sock`".into()),
            );
        }
    }
    out
}

#[cfg(test)]
mod platform_keys {
    use super::*;
    use crate::process::{UNIX_KEYS, WINDOWS_KEYS};

    /// The messages `refuse_unsupported_keys` gives for app table `src` on `support`'s platform.
    fn refused(src: &str, support: crate::process::KeySupport) -> Vec<(String, String)> {
        let doc = match DeTable::parse(src) {
            Ok(d) => d,
            Err(e) => panic!("bad test TOML: {e}"),
        };
        let mut cx = Cx {
            src,
            diags: Vec::new(),
        };
        let t = Table::new(&mut cx, doc.get_ref(), "app `web`".into(), keys::APP_KEYS);
        refuse_unsupported_keys(&mut cx, &t, support);
        cx.diags
            .iter()
            .map(|d| {
                let at = d.span.clone().and_then(|s| src.get(s)).unwrap_or_default();
                (d.message.clone(), at.to_string())
            })
            .collect()
    }

    #[test]
    fn windows_refuses_user_nofile_nice_and_listen_at_their_keys() {
        let src = "command = [\"x\"]\nuser = \"nobody\"\nnofile = 1024\nnice = 5\n\
                   listen = [\"tcp://127.0.0.1:0\"]\nstop_timeout = \"1s\"\n";
        let got = refused(src, WINDOWS_KEYS);
        let want: Vec<(String, String)> = ["user", "nofile", "nice", "listen"]
            .iter()
            .map(|k| {
                (
                    format!("`{k}` in app `web` is not supported on Windows"),
                    k.to_string(),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unix_and_windows_without_those_keys_refuse_nothing() {
        let all = "command = [\"x\"]\nuser = \"nobody\"\nnofile = 1024\nnice = 5\n";
        assert_eq!(refused(all, UNIX_KEYS), Vec::new());
        assert_eq!(refused("command = [\"x\"]\n", WINDOWS_KEYS), Vec::new());
    }
}
