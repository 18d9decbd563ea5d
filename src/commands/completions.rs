//! `pypm completions SHELL`, the hidden `pypm manpages DIR`, and the app names offered at TAB.
//!
//! Completion is dynamic (clap_complete's `CompleteEnv`): the script a shell loads calls
//! `PYPM_COMPLETE=SHELL pypm -- WORDS...` at each TAB, which `main` answers before parsing
//! arguments. So the script never goes stale with the binary's flags, and app names come from
//! the file that is there when TAB is pressed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::CommandFactory;
use clap_complete::CompletionCandidate;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use super::Failure;
use crate::cli::{Cli, Shell};

/// The environment variable that switches `pypm` into answering a completion request.
pub const COMPLETE_VAR: &str = "PYPM_COMPLETE";

fn completer(shell: Shell) -> &'static dyn EnvCompleter {
    match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        Shell::Powershell => &Powershell,
    }
}

/// The `--config FILE` of the line being completed: candidates see no other argument.
static LINE_CONFIG: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Answers a completion request if this process is one (`PYPM_COMPLETE` set); returns otherwise.
pub fn complete_if_asked() {
    if std::env::var_os(COMPLETE_VAR).is_none() {
        return;
    }
    let words: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let _ = LINE_CONFIG.set(config_on_line(&words));
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        // The installed scripts call `pypm` on PATH, wherever the binary that wrote them was.
        .completer("pypm")
        .complete();
}

pub fn completions(shell: Shell) -> Result<(), Failure> {
    let mut buf = Vec::new();
    completer(shell)
        .write_registration(COMPLETE_VAR, "pypm", "pypm", "pypm", &mut buf)
        .map_err(|e| Failure::Error(format!("cannot write the completion script: {e}")))?;
    std::io::stdout()
        .write_all(&buf)
        .map_err(|e| Failure::Error(format!("cannot write the completion script: {e}")))
}

pub fn manpages(dir: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::Error(format!(
            "cannot write man pages into `{}`: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(fail)
}

/// `--config FILE`, `--config=FILE`, `-c FILE` or `-cFILE` among the words typed so far (the last
/// one wins, as clap's parse does).
fn config_on_line(words: &[String]) -> Option<PathBuf> {
    let mut found = None;
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        if w == "--" {
            break;
        }
        if w == "--config" || w == "-c" {
            if let Some(v) = it.next() {
                found = Some(PathBuf::from(v));
            }
        } else if let Some(v) = w.strip_prefix("--config=") {
            found = Some(PathBuf::from(v));
        } else if let Some(v) = w
            .strip_prefix("-c")
            .filter(|v| !v.is_empty() && !w.starts_with("--"))
        {
            found = Some(PathBuf::from(v));
        }
    }
    found
}

/// App names of the file the command being completed would use (`--config` on the line, else
/// `$PYPM_CONFIG`, else the nearest `pypm.toml`), for TAB. Read leniently: a file with errors
/// elsewhere still offers its app names; none if unreadable.
pub fn app_candidates() -> Vec<CompletionCandidate> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    let env_config = std::env::var("PYPM_CONFIG").ok();
    let line = LINE_CONFIG.get().cloned().flatten();
    let Some(path) = crate::config::discover(line.as_deref(), env_config.as_deref(), &cwd) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    app_names(&text)
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

fn app_names(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    match table.get("apps").and_then(toml::Value::as_table) {
        Some(apps) => apps.keys().cloned().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{app_names, config_on_line};
    use std::path::PathBuf;

    #[test]
    fn config_given_on_the_line() {
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(config_on_line(&w("pypm logs ")), None);
        assert_eq!(
            config_on_line(&w("pypm --config a.toml logs ")),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_on_line(&w("pypm logs -c b.toml ")),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            config_on_line(&w("pypm --config=c.toml -cd.toml status ")),
            Some(PathBuf::from("d.toml"))
        );
    }

    #[test]
    fn app_names_in_file_order() {
        let text = "[apps.web]\ncommand = \"x\"\n[apps.api]\ncommand = \"y\"\n[apps.api.ready]\ntcp = \"127.0.0.1:1\"\n";
        assert_eq!(app_names(text), ["web", "api"]);
        assert!(app_names("not toml [").is_empty());
        assert!(app_names("[pypm]\n").is_empty());
    }
}
