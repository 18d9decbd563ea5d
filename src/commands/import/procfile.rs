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

/// Whether a Procfile line needs the shell foreman runs it with: pipes, lists, redirections,
/// substitutions, leading `VAR=value` assignments, or `${VAR:-default}`-style expansions.
fn runs_in_shell(command: &str) -> bool {
    if crate::commands::init::starter::needs_shell(command) || command.contains('~') {
        return true;
    }
    let first = command.split_whitespace().next().unwrap_or("");
    let assignment = first.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit())
    });
    // `${...}` holding anything but a name is a shell expansion pypm does not do.
    let expansion = command.match_indices("${").any(|(i, _)| {
        let inner = &command[i + 2..];
        let end = inner.find('}').unwrap_or(inner.len());
        !inner[..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    assignment || expansion
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
    if !entries.is_empty() {
        b.notes.push(
            "`PORT` is set for every process as foreman does: 5000 for the first process type, +100 for each next (on Heroku the platform assigns it)".into(),
        );
    }
    // foreman and honcho read `.env` beside the Procfile.
    let env_file = dir.join(".env").is_file();
    // foreman sets PORT for every process: 5000 for the first process type, +100 for each next.
    let mut port = 5000;
    for (raw, command) in entries {
        let mut app = b.app(raw);
        let name = app.name.clone();
        let (braced, vars) = crate::commands::init::starter::brace_vars(command);
        if runs_in_shell(command) {
            // Heroku and foreman run a Procfile line with `sh -c`: assignments, `${X:-default}`,
            // `&&`, redirections and `$(...)` keep working. The shell expands the variables, so
            // pypm gets the line as written (`$` escaped for pypm as `$$`).
            // A single simple command is `exec`ed, so the program itself gets the stop signal
            // and its exit is the instance's (with the shell in between, pypm's stop would
            // reach the shell first and the program only as a leftover).
            let line = if is_simple_command(command) {
                exec_line(command)
            } else {
                command.to_string()
            };
            app.set(
                "command",
                vec!["sh".to_string(), "-c".into(), super::lit(&line)],
            );
        } else {
            app.set("command", braced);
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
        let mut env = toml::Table::new();
        env.insert("PORT".into(), port.to_string().into());
        app.set("env", env);
        port += 100;
        let others: Vec<&String> = vars
            .iter()
            .filter(|v| *v != "PORT" && !assigned_in(command, v))
            .collect();
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

/// `VAR=...` among the line's leading assignments.
fn assigned_in(command: &str, var: &str) -> bool {
    command
        .split_whitespace()
        .take_while(|w| w.contains('='))
        .any(|w| w.split_once('=').is_some_and(|(k, _)| k == var))
}

/// One command with its arguments (and leading `VAR=value` words), no lists, pipes,
/// redirections, subshells or substitutions.
fn is_simple_command(line: &str) -> bool {
    !line.contains([';', '&', '|', '<', '>', '(', ')', '`', '\n'])
        && !line.contains("$(")
        && line
            .split_whitespace()
            .find(|w| !is_assignment(w))
            .is_some_and(|first| {
                !matches!(
                    first,
                    "if" | "for"
                        | "while"
                        | "until"
                        | "case"
                        | "exec"
                        | "{"
                        | "!"
                        | "cd"
                        | "export"
                )
            })
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// `A=1 B=2 prog args` → `A=1 B=2 exec prog args` (the assignments reach the program: POSIX
/// exports assignments before `exec`).
fn exec_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let mut rest = trimmed;
    let mut head = String::new();
    while let Some(w) = rest.split_whitespace().next() {
        if !is_assignment(w) || w.contains(['"', '\'']) {
            break;
        }
        head.push_str(w);
        head.push(' ');
        rest = rest[w.len()..].trim_start();
    }
    format!("{head}exec {rest}")
}

#[cfg(test)]
mod exec_tests {
    #[test]
    fn simple_commands_are_execed_and_the_rest_left_to_the_shell() {
        assert_eq!(
            super::exec_line("LEVEL=debug python app.py --port $PORT"),
            "LEVEL=debug exec python app.py --port $PORT"
        );
        assert!(super::is_simple_command("python w.py --q ${Q:-default}"));
        assert!(!super::is_simple_command("cd web && python app.py"));
        assert!(!super::is_simple_command("python a.py > out.log"));
        assert!(!super::is_simple_command("echo $(date)"));
    }
}
