//! `pypm start TARGET [options] [-- ARGS]`: PM2's first command, written into `pypm.toml`.
//!
//! TARGET is an app of the file (then `start` enables it, and updates the keys its options
//! name), a script, a module (`-m`), or a command line. A new app is named as PM2 names it (the
//! script's stem), made to fit the app name rule.

use crate::control::protocol::State;
use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, TableLike, Value};

use super::Failure;
use super::edit::{self, apply, doc, value};
use crate::cli::StartArgs;
use crate::commands::init::starter::sanitize_name;
use crate::config::units::parse_duration;

/// What an app runs, as `start` writes it: the key (`script`, `module`, `command`) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub key: &'static str,
    pub value: String,
}

/// What TARGET names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aim {
    /// An app already in the file.
    Existing(String),
    /// Something to run, with the name it gets by default.
    New { program: Program, name: String },
}

const SCRIPT_EXTENSIONS: &[&str] = &["py", "js", "mjs", "cjs", "sh", "bash"];

/// Decides what TARGET is. `is_file` says whether a path exists (relative to the current
/// directory).
pub fn classify(
    target: &str,
    module: bool,
    explicit_name: bool,
    apps: &[String],
    is_file: impl Fn(&str) -> bool,
) -> Aim {
    if module {
        return Aim::New {
            name: sanitize_name(target),
            program: Program {
                key: "module",
                value: target.to_string(),
            },
        };
    }
    if !explicit_name && apps.iter().any(|a| a == target) {
        return Aim::Existing(target.to_string());
    }
    let trimmed = target.trim();
    let is_script = !trimmed.contains(char::is_whitespace)
        && (Path::new(trimmed)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SCRIPT_EXTENSIONS.contains(&e))
            || is_file(trimmed));
    if is_script {
        Aim::New {
            name: stem_name(trimmed),
            program: Program {
                key: "script",
                value: trimmed.to_string(),
            },
        }
    } else {
        Aim::New {
            name: command_name(trimmed),
            program: Program {
                key: "command",
                value: trimmed.to_string(),
            },
        }
    }
}

/// `src/app.py` → `app`.
fn stem_name(path: &str) -> String {
    let stem = Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    sanitize_name(&stem)
}

/// The name PM2 would give a command line: its program's name, or, when that is an interpreter
/// (`python3 app.py`, `python -m api.main`, `node server.js`), what it runs.
pub fn command_name(command: &str) -> String {
    let words = shell_words::split(command)
        .unwrap_or_else(|_| command.split_whitespace().map(str::to_string).collect());
    let is_interpreter = |w: &str| {
        let base = Path::new(w)
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        base.starts_with("python") || matches!(base.as_str(), "node" | "bash" | "sh" | "bun")
    };
    let mut it = words.iter().peekable();
    let Some(first) = it.next() else {
        return "app".into();
    };
    if is_interpreter(first) {
        while let Some(w) = it.next() {
            if w == "-m" {
                if let Some(m) = it.next() {
                    return sanitize_name(m);
                }
            } else if !w.starts_with('-') {
                return stem_name(w);
            }
        }
    }
    stem_name(first)
}

/// `path` (as typed, relative to `cwd`) as the file should say it: relative to `base` when it is
/// inside it, else absolute. Typed as-is when `cwd` is `base` already.
pub fn rel_path(path: &Path, cwd: &Path, base: &Path) -> String {
    if path.is_relative() && same_dir(cwd, base) {
        return path.display().to_string();
    }
    let abs = std::path::absolute(cwd.join(path)).unwrap_or_else(|_| cwd.join(path));
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let abs_c = abs
        .parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| abs.file_name().map(|n| p.join(n)))
        .unwrap_or(abs.clone());
    match abs_c.strip_prefix(&base) {
        Ok(r) if r.as_os_str().is_empty() => ".".into(),
        Ok(r) => r.display().to_string(),
        Err(_) => abs.display().to_string(),
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().collect::<Array>())
}

fn set(t: &mut Item, key: &str, v: Value) {
    doc::set_path(t, &[key.to_string()], v);
}

/// The current value of a string key of an app table.
fn str_of<'t>(t: &'t dyn TableLike, key: &str) -> Option<&'t str> {
    t.get(key).and_then(Item::as_str)
}

pub fn start(config: Option<&Path>, args: &StartArgs) -> Result<(), Failure> {
    let wait = parse_duration(&args.edit.wait)
        .map_err(|e| Failure::Usage(format!("invalid --wait: {e}")))?;
    for kv in &args.env {
        if !kv.contains('=') {
            return Err(Failure::Usage(format!("`--env {kv}` is not K=V")));
        }
    }
    let target = edit::target(config, true)?;
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::Error(format!("cannot read the current directory: {e}")))?;
    let file_dir = target
        .located
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.clone());
    let display = target.located.display.clone();
    let mut app_name = String::new();
    let edited = edit::edit(target, args.edit.quiet, |d| {
        app_name = write_app(d, args, &cwd, &file_dir, &display)?;
        Ok(())
    })?;
    // `start` of an app that already ran to its end (failed, completed, exited) runs it again,
    // as `pm2 start` does; the file alone does not change it.
    let unchanged = match &edited.before {
        Some(b) => crate::supervisor::diff::diff(&b.apps, &edited.after.apps)
            .iter()
            .all(|(a, _)| a != &app_name),
        None => false,
    };
    let ended = edited.pre_rows.iter().any(|r| {
        r.app == app_name
            && (matches!(r.state, State::Failed | State::Completed)
                || (r.state == State::Stopped
                    && r.reason.as_deref().is_some_and(|x| x.starts_with("exited"))))
    });
    apply::apply(
        &edited,
        std::slice::from_ref(&app_name),
        apply::ApplyOpts {
            start_supervisor: true,
            wait,
            restart: unchanged && ended,
        },
    )
}

/// Adds or updates the app in `d`; returns its name.
pub(super) fn write_app(
    d: &mut DocumentMut,
    args: &StartArgs,
    cwd: &Path,
    file_dir: &Path,
    display: &str,
) -> Result<String, Failure> {
    let apps = doc::app_names(d);
    let aim = classify(&args.target, args.module, args.name.is_some(), &apps, |p| {
        cwd.join(p).is_file()
    });
    // Where the app runs: its script is relative to that.
    let app_cwd: PathBuf = match &args.cwd {
        Some(c) => cwd.join(c),
        None => file_dir.to_path_buf(),
    };
    let (name, program) = match aim {
        Aim::Existing(n) => (n, None),
        Aim::New { program, name } => {
            let program = match program.key {
                "script" => Program {
                    key: "script",
                    value: rel_path(Path::new(&program.value), cwd, &app_cwd),
                },
                _ => program,
            };
            (args.name.clone().unwrap_or(name), Some(program))
        }
    };
    let exists = apps.contains(&name);
    if let (true, Some(p)) = (exists, &program) {
        let same = doc::app(d, &name).is_some_and(|t| str_of(t, p.key) == Some(p.value.as_str()));
        if !same {
            return Err(Failure::Error(format!(
                "app `{name}` in `{display}` runs something else\n\nchoose another name with `--name`, or change it with `pypm set {name} {}=...`",
                p.key
            )));
        }
    }
    // An environment first: it is a table of its own.
    let environment = if let Some(v) = &args.venv {
        Some(doc::ensure_environment(
            d,
            "venv",
            &rel_path(v, cwd, file_dir),
            &name,
        ))
    } else if let Some(c) = &args.conda {
        Some(doc::ensure_environment(d, "conda", c, &name))
    } else {
        args.python
            .as_ref()
            .map(|p| doc::ensure_environment(d, "python", p, &name))
    };
    let table = if exists {
        doc::app_mut(d, &name)
    } else {
        doc::add_app(d, &name)
    }
    .ok_or_else(|| Failure::Error(format!("cannot edit app `{name}` in `{display}`")))?;
    let has_command = program
        .as_ref()
        .map_or_else(|| table.get("command").is_some(), |p| p.key == "command");
    if let Some(p) = &program {
        let mut value = p.value.clone();
        if p.key == "command" && !args.args.is_empty() {
            value = format!("{value} {}", shell_words::join(&args.args));
        }
        if !exists {
            set(table, p.key, Value::from(value));
        }
    }
    if !args.args.is_empty() {
        if has_command && program.is_none() {
            return Err(Failure::Usage(format!(
                "`-- ARGS` is for script and module apps; `{name}` has a `command`: change it with `pypm set {name} command=...`"
            )));
        }
        if !has_command {
            set(table, "args", strings(args.args.iter().cloned()));
        }
    }
    if table.get("enabled").and_then(Item::as_bool) == Some(false) {
        set(table, "enabled", Value::from(true));
    }
    if let Some(n) = args.instances {
        set(table, "instances", Value::from(i64::from(n)));
    }
    if let Some(c) = &args.cwd {
        set(table, "cwd", Value::from(rel_path(c, cwd, file_dir)));
    }
    if let Some(e) = environment {
        set(table, "environment", Value::from(e));
    }
    match args.env_file.as_slice() {
        [] => {}
        [one] => set(table, "env_file", Value::from(rel_path(one, cwd, file_dir))),
        many => set(
            table,
            "env_file",
            strings(many.iter().map(|f| rel_path(f, cwd, file_dir))),
        ),
    }
    for kv in &args.env {
        if let Some((k, v)) = kv.split_once('=') {
            doc::set_path(table, &["env".to_string(), k.to_string()], Value::from(v));
        }
    }
    if !args.listen.is_empty() {
        set(table, "listen", strings(args.listen.iter().cloned()));
    }
    let probe = [
        ("http", &args.ready_http),
        ("tcp", &args.ready_tcp),
        ("log", &args.ready_log),
    ]
    .into_iter()
    .find_map(|(k, v)| v.as_ref().map(|v| (k, v)));
    if let Some((kind, v)) = probe {
        // One probe kind at a time: the new one replaces the old, interval and timeout stay.
        for k in crate::config::keys::PROBE_KINDS {
            if *k != kind {
                doc::remove_path(table, &["ready".to_string(), (*k).to_string()]);
            }
        }
        doc::set_path(
            table,
            &["ready".to_string(), kind.to_string()],
            Value::from(v.as_str()),
        );
    }
    if let Some(r) = &args.restart {
        set(table, "restart", Value::from(r.as_str()));
    }
    if let Some(m) = &args.memory_max {
        set(table, "memory_max", value::typed(&["memory_max".into()], m));
    }
    if args.task {
        set(table, "kind", Value::from("task"));
    }
    if !args.watch.is_empty() {
        set(table, "watch", strings(args.watch.iter().cloned()));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(target: &str) -> (String, &'static str, String) {
        match classify(target, false, false, &[], |_| false) {
            Aim::New { program, name } => (name, program.key, program.value),
            Aim::Existing(n) => panic!("existing {n}"),
        }
    }

    #[test]
    fn targets_are_scripts_modules_commands_or_apps() {
        assert_eq!(new("app.py"), ("app".into(), "script", "app.py".into()));
        assert_eq!(
            new("src/server.js"),
            ("server".into(), "script", "src/server.js".into())
        );
        assert_eq!(new("run.sh"), ("run".into(), "script", "run.sh".into()));
        assert_eq!(
            new("gunicorn app:app"),
            ("gunicorn".into(), "command", "gunicorn app:app".into())
        );
        assert_eq!(
            new("redis-server"),
            ("redis-server".into(), "command", "redis-server".into())
        );
        let m = classify("api.worker", true, false, &[], |_| false);
        assert_eq!(
            m,
            Aim::New {
                name: "api-worker".into(),
                program: Program {
                    key: "module",
                    value: "api.worker".into()
                }
            }
        );
        let apps = vec!["api".to_string()];
        assert_eq!(
            classify("api", false, false, &apps, |_| false),
            Aim::Existing("api".into())
        );
        // With --name, TARGET is what to run even when it is also an app's name.
        assert!(matches!(
            classify("api", false, true, &apps, |_| false),
            Aim::New { .. }
        ));
        // An executable without an extension is a script when it exists.
        assert_eq!(
            match classify("bin/serve", false, false, &[], |p| p == "bin/serve") {
                Aim::New { program, .. } => program.key,
                _ => "",
            },
            "script"
        );
    }

    #[test]
    fn names_follow_pm2_and_the_name_rule() {
        assert_eq!(new("my_app.v2.py").0, "my_app-v2");
        assert_eq!(
            new("my app.py"),
            ("my".into(), "command", "my app.py".into())
        );
        assert_eq!(new(".hidden.py").0, "hidden");
        assert_eq!(new("__init__.py").0, "init__");
        assert_eq!(command_name("python3 -u app.py --port 1"), "app");
        assert_eq!(command_name("python -m api.main"), "api-main");
        assert_eq!(command_name("/usr/bin/node dist/index.js"), "index");
        assert_eq!(command_name("uvicorn main:app --fd 3"), "uvicorn");
        assert_eq!(command_name(""), "app");
    }

    #[test]
    fn paths_are_relative_to_the_file() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = d.path();
        let sub = root.join("svc");
        std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rel_path(Path::new("app.py"), root, root), "app.py");
        assert_eq!(rel_path(Path::new("app.py"), &sub, root), "svc/app.py");
        assert_eq!(rel_path(Path::new("."), &sub, root), "svc");
        let elsewhere = rel_path(Path::new("/opt/x.py"), &sub, root);
        assert_eq!(elsewhere, "/opt/x.py");
    }
}
