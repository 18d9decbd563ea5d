//! `pypm completions SHELL`, the hidden `pypm manpages DIR`, and the app names offered at TAB.
//!
//! Completion is dynamic (clap_complete's `CompleteEnv`): the script a shell loads calls
//! `PYPM_COMPLETE=SHELL pypm -- WORDS...` at each TAB, which `main` answers before parsing
//! arguments. So the script never goes stale with the binary's flags, and app names come from
//! the file that is there when TAB is pressed.

use std::io::Write;
use std::path::Path;

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

/// Answers a completion request if this process is one (`PYPM_COMPLETE` set); returns otherwise.
pub fn complete_if_asked() {
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
        .map_err(|e| Failure::Error(format!("error: cannot write the completion script: {e}")))?;
    std::io::stdout()
        .write_all(&buf)
        .map_err(|e| Failure::Error(format!("error: cannot write the completion script: {e}")))
}

pub fn manpages(dir: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::Error(format!(
            "error: cannot write man pages into `{}`: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(fail)
}

/// App names of the nearest `pypm.toml` (`$PYPM_CONFIG`, else here or a parent), for TAB.
/// Read leniently: a file with errors elsewhere still offers its app names; none if unreadable.
pub fn app_candidates() -> Vec<CompletionCandidate> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    let env_config = std::env::var("PYPM_CONFIG").ok();
    let Some(path) = crate::config::discover(None, env_config.as_deref(), &cwd) else {
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
    use super::app_names;

    #[test]
    fn app_names_in_file_order() {
        let text = "[apps.web]\ncommand = \"x\"\n[apps.api]\ncommand = \"y\"\n[apps.api.ready]\ntcp = \"127.0.0.1:1\"\n";
        assert_eq!(app_names(text), ["web", "api"]);
        assert!(app_names("not toml [").is_empty());
        assert!(app_names("[pypm]\n").is_empty());
    }
}
