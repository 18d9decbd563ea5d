//! Reading one `[apps.NAME]` table: program, environment, expansion order, restarts, sockets,
//! dependencies and probes.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
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
    let program = match present.as_slice() {
        [] if misspelt_program => None,
        [] => {
            cx.err_help(
                name_span.clone(),
                format!("{ctx} has none of `command`, `script` or `module`"),
                Some("add one, e.g. `command = \"python3 app.py\"`".into()),
            );
            None
        }
        ["command"] => t.command(cx, "command", &vars).map(Program::Command),
        ["script"] => t.estr(cx, "script", &vars).map(|(s, _)| Program::Script(s)),
        ["module"] => t.estr(cx, "module", &vars).map(|(s, _)| Program::Module(s)),
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
    };

    let args = t
        .str_list(cx, "args", Some(&vars))
        .map(|v| v.into_iter().map(|(s, _)| s).collect())
        .unwrap_or_default();
    if !args_allowed(&program) && t.get("args").is_some() {
        let span = t.span_of("args").unwrap_or(name_span.clone());
        cx.err_help(
            span,
            format!("`args` of {ctx} applies only to `script` and `module`"),
            Some("put the arguments in `command`".into()),
        );
    }

    let environment = t.str(cx, "environment").map(|(e, span)| {
        if !environments.contains_key(&e) {
            cx.err_help(
                span,
                format!("{ctx} uses environment `{e}`, which is not declared in `[environments]`"),
                did_you_mean(&e, environments.keys().map(String::as_str)),
            );
        }
        e
    });

    let cwd = match t.estr(cx, "cwd", &vars) {
        Some((c, span)) => {
            let p = dir.join(c);
            if !p.is_dir() {
                cx.err(
                    span,
                    format!("`cwd` of {ctx} is not a directory: `{}`", p.display()),
                );
            }
            p
        }
        None => dir.to_path_buf(),
    };

    let interpreter = t.str(cx, "interpreter").map(|(raw, span)| {
        let what = format!("`interpreter` of {ctx}");
        match cx.try_expand(&raw, &span, &vars, &what) {
            Some(i) => {
                check_interpreter(cx, &i, span, &cwd, &ctx);
                i
            }
            None => raw,
        }
    });

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

    let listen = read_listen(cx, &t, dir, &vars);
    let depends_on = read_depends_on(cx, &t, name, app_names);

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

    let success_exit_codes = match t.get("success_exit_codes") {
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
    };

    let stop_signal = match t.str(cx, "stop_signal") {
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
    };

    let revision = t.get("revision").and_then(|v| match v.get_ref() {
        DeValue::String(s) => {
            let what = format!("`revision` of {ctx}");
            Some(cx.expand(s, &v.span(), &vars, &what))
        }
        DeValue::Integer(_) | DeValue::Float(_) => scalar_text(v.get_ref()),
        _ => {
            t.wrong(cx, "revision", "a string or a number", v);
            None
        }
    });

    let schedules = read_schedules(cx, &t, kind, &ctx);

    let ready = t
        .sub_table(cx, "ready")
        .and_then(|(tb, span)| read_probe(cx, tb, span, &ctx, true, &vars));
    let health = t
        .sub_table(cx, "health")
        .and_then(|(tb, span)| read_probe(cx, tb, span, &ctx, false, &vars));

    let mut spans = HashMap::new();
    for (k, v) in body.iter() {
        spans.insert(k.get_ref().to_string(), v.span());
    }

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
        enabled: t.bool(cx, "enabled").unwrap_or(true),
        instances: t.int(cx, "instances").unwrap_or(1) as u32,
        listen: listen.into_iter().map(|(l, _)| l).collect(),
        depends_on: depends_on.iter().map(|(n, c, _)| (n.clone(), *c)).collect(),
        restart,
        restart_delay,
        restart_delay_max,
        max_restarts: t.int(cx, "max_restarts").unwrap_or(10) as u32,
        restart_window: t
            .duration(cx, "restart_window")
            .unwrap_or(Duration::from_secs(60)),
        min_uptime: t
            .duration(cx, "min_uptime")
            .unwrap_or(Duration::from_secs(1)),
        success_exit_codes,
        stop_signal,
        stop_timeout: t
            .duration(cx, "stop_timeout")
            .unwrap_or(Duration::from_secs(10)),
        memory_max: t.size(cx, "memory_max"),
        cpu_max: t.number(cx, "cpu_max"),
        nofile: t.int(cx, "nofile").map(|n| n as u64),
        nice: t.int(cx, "nice").unwrap_or(0) as i32,
        user: t.estr(cx, "user", &vars).map(|(s, _)| s),
        watch: t
            .str_list(cx, "watch", Some(&vars))
            .map(|v| v.into_iter().map(|(s, _)| s).collect())
            .unwrap_or_default(),
        revision,
        schedule: schedules.schedule,
        timezone: schedules.timezone,
        concurrency: schedules.concurrency,
        catch_up: schedules.catch_up,
        jitter: schedules.jitter,
        restart_schedule: schedules.restart_schedule,
        log_timestamps: t.bool(cx, "log_timestamps").unwrap_or(false),
        log_max_size: t.size(cx, "log_max_size").unwrap_or(10 * 1024 * 1024),
        log_max_files: t.int(cx, "log_max_files").unwrap_or(5) as u32,
        ready,
        health,
        spans: AppSpans {
            name: name_span,
            keys: spans,
        },
    };
    let dep_spans = depends_on
        .into_iter()
        .map(|(n, _, s)| (n, s))
        .collect::<HashMap<_, _>>();
    (app, dep_spans)
}

/// `python | node | bash | sh | none`, a Python by version (`python3`, `python3.12`), or a path
/// (it contains `/`; relative to `cwd`) to an executable file.
fn check_interpreter(cx: &mut Cx, value: &str, span: Span, cwd: &Path, ctx: &str) {
    if value.contains('/') {
        // As the launcher resolves it.
        let path = crate::desired::python_env::path_in(cwd, value);
        let problem = match std::fs::metadata(&path) {
            // A missing `cwd` is reported on its own.
            Err(_) if !cwd.is_dir() => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
            Err(_) => Some("cannot be read"),
            Ok(m) if !m.is_file() => Some("is not a file"),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Some("is not executable"),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            cx.err(
                span,
                format!("`interpreter` of {ctx} {problem}: `{}`", path.display()),
            );
        }
        return;
    }
    if keys::INTERPRETERS.contains(&value) || crate::desired::python_env::is_python_name(value) {
        return;
    }
    let expected = "expected python, node, bash, sh, none or a path";
    let msg = if value.is_empty() {
        format!("`interpreter` of {ctx} is empty ({expected})")
    } else {
        format!("unknown `interpreter` `{value}` in {ctx} ({expected})")
    };
    let help =
        did_you_mean(value, keys::INTERPRETERS.iter().copied()).or_else(|| {
            (!value.is_empty()).then(|| format!(
            "to run another program, give its path (e.g. `/usr/bin/{value}`) or use `command`"
        ))
        });
    cx.err_help(span, msg, help);
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

pub(super) fn read_depends_on(
    cx: &mut Cx,
    t: &Table,
    name: &str,
    app_names: &[&str],
) -> Vec<(String, Condition, Span)> {
    let Some(v) = t.get("depends_on") else {
        return Vec::new();
    };
    let mut raw: Vec<(String, Condition, Span)> = Vec::new();
    match v.get_ref() {
        DeValue::Array(items) => {
            for item in items {
                match item.get_ref() {
                    DeValue::String(s) => {
                        raw.push((s.to_string(), Condition::Started, item.span()))
                    }
                    other => cx.err(
                        item.span(),
                        format!(
                            "`depends_on` of app `{name}` must list app names, found {}",
                            type_name(other)
                        ),
                    ),
                }
            }
        }
        DeValue::Table(tbl) => {
            for (k, v) in tbl.iter() {
                let cond = match v.get_ref() {
                    DeValue::String(s) => match s.as_ref() {
                        "started" => Some(Condition::Started),
                        "ready" => Some(Condition::Ready),
                        "completed" => Some(Condition::Completed),
                        other => {
                            cx.err_help(
                                v.span(),
                                format!("invalid condition `{other}` for dependency `{}` of app `{name}` (expected started, ready or completed)", k.get_ref()),
                                did_you_mean(other, keys::CONDITIONS.iter().copied()),
                            );
                            None
                        }
                    },
                    other => {
                        cx.err(
                            v.span(),
                            format!(
                                "condition for dependency `{}` of app `{name}` must be a string, found {}",
                                k.get_ref(),
                                type_name(other)
                            ),
                        );
                        None
                    }
                };
                if let Some(c) = cond {
                    raw.push((k.get_ref().to_string(), c, k.span()));
                }
            }
        }
        _ => t.wrong(
            cx,
            "depends_on",
            "an array of app names or a table of app = condition",
            v,
        ),
    }
    let mut seen = HashSet::new();
    raw.into_iter()
        .filter(|(dep, _, span)| {
            if !app_names.contains(&dep.as_str()) {
                cx.err_help(
                    span.clone(),
                    format!("app `{name}` depends on `{dep}`, which is not an app in this file"),
                    did_you_mean(dep, app_names.iter().copied().filter(|n| *n != name)),
                );
                return false;
            }
            seen.insert(dep.clone())
        })
        .collect()
}

pub(super) fn read_probe(
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
    let present: Vec<&str> = keys::PROBE_KINDS
        .iter()
        .copied()
        .filter(|k| match t.get(k) {
            Some(v) => !matches!(v.get_ref(), DeValue::Boolean(false)),
            None => false,
        })
        .collect();
    let check = match present.as_slice() {
        [] => {
            cx.err_help(
                span,
                format!("{ctx} has no probe kind"),
                Some("add exactly one of `http`, `tcp`, `exec`, `log` or `notify`".into()),
            );
            None
        }
        [kind] => match *kind {
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
        },
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
    };
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

struct Schedules {
    schedule: Option<String>,
    timezone: Option<String>,
    concurrency: Concurrency,
    catch_up: bool,
    jitter: Duration,
    restart_schedule: Option<String>,
}

/// `schedule`, `timezone`, `concurrency`, `catch_up`, `jitter` and `restart_schedule`: each
/// expression and zone is parsed here so `pypm check` reports it at its line and column.
fn read_schedules(cx: &mut Cx, t: &Table, kind: Kind, ctx: &str) -> Schedules {
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
