//! Procfiles (Heroku, foreman, honcho): one `name: command` line per process type.

use std::fmt::Write as _;
use std::path::Path;

use super::Builder;

/// Whether every line that is not blank or a `#` comment is `name: command`.
pub fn looks_like(text: &str) -> bool {
    let mut any = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if entry(line).is_none() {
            return false;
        }
        any = true;
    }
    any
}

/// `name: command`, with a name of letters, digits, `_`, `-` and `.`.
fn entry(line: &str) -> Option<(&str, &str)> {
    let (name, command) = line.split_once(':')?;
    let name = name.trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let command = command.trim();
    (ok && !command.is_empty()).then_some((name, command))
}

pub fn convert(text: &str, dir: &Path, b: &mut Builder) {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match entry(line) {
            Some(e) => entries.push(e),
            None => b
                .notes
                .push(format!("line {}: not `name: command`; skipped", i + 1)),
        }
    }
    let has_release = entries.iter().any(|(n, _)| *n == "release");
    // foreman and honcho read `.env` beside the Procfile.
    let env_file = dir.join(".env").is_file();
    let mut port = 5000;
    for (raw, command) in entries {
        let mut app = b.app(raw);
        let name = app.name.clone();
        let (command, vars) = crate::init::brace_vars(command);
        if crate::init::needs_shell(&command) {
            // Heroku runs Procfile lines through a shell; pypm runs commands without one.
            app.set("command", vec!["sh".to_string(), "-c".into(), command]);
        } else {
            app.set("command", command);
        }
        if env_file {
            app.set("env_file", ".env");
        }
        if raw == "release" {
            app.set("kind", "task");
        } else if has_release {
            let mut deps = toml::Table::new();
            deps.insert("release".into(), "completed".into());
            app.set("depends_on", deps);
        }
        if vars.iter().any(|v| v == "PORT") {
            // Like foreman: 5000, 5100, ... for each process type that uses $PORT.
            let mut env = toml::Table::new();
            env.insert("PORT".into(), port.to_string().into());
            app.set("env", env);
            b.note(
                &name,
                format!("`$PORT` is set to {port} (foreman's numbering; on Heroku the platform assigns it)"),
            );
            port += 100;
        }
        let others: Vec<&String> = vars.iter().filter(|v| *v != "PORT").collect();
        if !others.is_empty() {
            let mut list = String::new();
            for (i, v) in others.iter().enumerate() {
                let _ = write!(list, "{}${{{v}}}", if i > 0 { ", " } else { "" });
            }
            let where_ = if env_file {
                "pypm's environment, `env` or `.env`"
            } else {
                "pypm's environment, `env` or an `env_file`"
            };
            b.note(&name, format!("uses {list}: define it in {where_}"));
        }
        b.apps.push(app);
    }
}
