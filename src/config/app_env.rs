//! An app's `env` and `env_file`: names checked, files read, values expanded in the order the
//! environment precedence asks for (supervisor env < env_file < env), `env` keys referencing
//! each other in any order.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::expand::{self, Vars};
use super::table::*;
use crate::diagnostic::Span;

/// What `env` and `env_file` give an app.
pub(super) struct AppEnv {
    /// `env` as declared, expanded (declared order).
    pub(super) env: Vec<(String, String)>,
    /// Absolute paths of the env files.
    pub(super) env_file: Vec<PathBuf>,
    /// What the env files contain, in order.
    pub(super) file_vars: Vec<(String, String)>,
}

/// Reads `env_file` and `env` of the app table `t`; `host_vars` is the supervisor's environment.
pub(super) fn read_app_env(
    cx: &mut Cx,
    t: &Table,
    dir: &Path,
    host_vars: &Vars,
    ctx: &str,
) -> AppEnv {
    let entries = read_env_entries(cx, t, ctx);
    let raw_env: Vec<(String, String)> = entries
        .iter()
        .map(|e| (e.key.clone(), e.raw.clone()))
        .collect();

    // `env_file` paths may use `env` values, as far as those do not need the files' contents.
    let before_files = expand::expand_env(&raw_env, host_vars);
    let mut env_file = Vec::new();
    let mut file_vars: Vec<(String, String)> = Vec::new();
    // Paths that use an `env` value that could not be expanded before reading the files.
    let mut waiting: Vec<(String, Span, String)> = Vec::new();
    for (raw, span) in t.raw_str_or_list(cx, "env_file").unwrap_or_default() {
        let f = match expand::expand_with(&raw, |name, _| {
            match raw_env.iter().position(|(k, _)| k == name) {
                Some(i) => before_files[i]
                    .as_ref()
                    .map(String::clone)
                    .map_err(|_| (name, true)),
                None => host_vars.get(name).map(str::to_string).ok_or((name, false)),
            }
        }) {
            Ok(f) => f,
            Err((key, true)) => {
                waiting.push((raw.clone(), span, key.to_string()));
                continue;
            }
            Err((name, false)) => {
                cx.undefined(&span, name, &format!("`env_file` of {ctx}"));
                continue;
            }
        };
        let p = dir.join(&f);
        match std::fs::read_to_string(&p) {
            Ok(text) => match expand::parse_env_file(&text) {
                Ok(vars) => file_vars.extend(vars),
                Err(e) => cx.err(
                    span,
                    format!("env_file `{f}` of {ctx}, line {}: {}", e.line, e.message),
                ),
            },
            Err(e) => cx.err(span, format!("cannot read env_file `{f}` of {ctx}: {e}")),
        }
        env_file.push(p);
    }
    let file_map: HashMap<String, String> = file_vars.iter().cloned().collect();
    let with_files = host_vars.with(&file_map);

    let mut env = Vec::new();
    let mut expanded = HashSet::new();
    for (entry, result) in entries
        .iter()
        .zip(expand::expand_env(&raw_env, &with_files))
    {
        match result {
            Ok(value) => {
                expanded.insert(entry.key.as_str());
                env.push((entry.key.clone(), value));
            }
            Err(e) => {
                report_env_error(cx, entry, e, ctx);
                env.push((entry.key.clone(), entry.raw.clone()));
            }
        }
    }
    // A value that fails on its own is reported at `env`; one that only needed an env_file's
    // variables is reported here.
    for (raw, span, key) in waiting {
        if expanded.contains(key.as_str()) {
            cx.err_help(
                cx.var_span(&span, &key),
                format!("`env_file` `{raw}` of {ctx} uses `env.{key}`, whose value needs a variable from an env_file"),
                Some("`env_file` paths expand from the supervisor's environment and from `env` values that do not use env_file variables".into()),
            );
        }
    }
    AppEnv {
        env,
        env_file,
        file_vars,
    }
}

/// One `env` entry as written: a valid name and its value as text (numbers and booleans as
/// written), not yet expanded.
struct EnvEntry {
    key: String,
    raw: String,
    /// The value's span.
    span: Span,
}

/// The entries of `env`, each name and value checked; an invalid one is reported and left out.
fn read_env_entries(cx: &mut Cx, t: &Table, ctx: &str) -> Vec<EnvEntry> {
    let mut out = Vec::new();
    let Some((tbl, _)) = t.sub_table(cx, "env") else {
        return out;
    };
    for (k, v) in tbl.iter() {
        let key: &str = k.get_ref();
        let problem = if key.is_empty() {
            Some(format!("empty variable name in `env` of {ctx}"))
        } else if key.contains(['=', '\0']) {
            Some(format!(
                "invalid variable name `{}` in `env` of {ctx}",
                key.escape_debug()
            ))
        } else {
            None
        };
        if let Some(msg) = problem {
            cx.err_help(
                k.span(),
                msg,
                Some("a variable name cannot be empty or contain `=` or a NUL character".into()),
            );
            continue;
        }
        let raw = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                scalar_text(v.get_ref()).unwrap_or_default()
            }
            other => {
                cx.err(
                    v.span(),
                    format!(
                        "`env.{key}` in {ctx} must be a string, number or boolean, found {}",
                        type_name(other)
                    ),
                );
                continue;
            }
        };
        out.push(EnvEntry {
            key: key.to_string(),
            raw,
            span: v.span(),
        });
    }
    out
}

fn report_env_error(cx: &mut Cx, entry: &EnvEntry, e: expand::EnvValueError, ctx: &str) {
    match e {
        expand::EnvValueError::Undefined(u) => {
            cx.undefined(
                &entry.span,
                &u.name,
                &format!("`env.{}` of {ctx}", entry.key),
            );
        }
        expand::EnvValueError::Cycle(keys) => {
            let at = keys
                .get(1)
                .map_or(entry.span.clone(), |next| cx.var_span(&entry.span, next));
            let mut path = keys.clone();
            path.extend(keys.first().cloned());
            cx.err_help(
                at,
                format!(
                    "reference cycle in `env` of {ctx}: {}",
                    path.join(" → ")
                ),
                Some("a value may use its own name for the inherited value (`PATH = \"/x:${PATH}\"`), but not a key that leads back to it".into()),
            );
        }
        // Reported at the key it depends on.
        expand::EnvValueError::Dependency => {}
    }
}
