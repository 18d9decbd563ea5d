//! One module per CLI verb. Each returns `Result<(), Failure>`; `main` maps the failure to the
//! exit code of SPEC §2.

mod app_verbs;
mod check;
mod client_cmds;
mod completions;
mod dashboard;
mod edit;
mod export;
pub mod import;
pub mod init;
mod inspect;
mod logs;
mod monit;
mod service;
mod start;
mod status;
mod up;

use std::path::{Path, PathBuf};

pub use completions::{app_candidates, complete_if_asked};

use crate::cli::{Cli, Command};
use crate::config::ConfigError;

/// What every failure's first line starts with.
const PREFIX: &str = "error: ";

/// Why a command did not succeed, with its exit code. Messages carry no `error: ` prefix: the
/// first line stands alone, details follow after a blank line; [`Failure`]'s `Display` is the one
/// place that writes `error: ` (SPEC §2: "one line first, details after").
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: an error.
    Error(String),
    /// Exit 1: the file is invalid.
    Config(ConfigError),
    /// Exit 2: a usage error (or `plan` with changes, which prints its own output).
    Usage(String),
    /// Exit 2 without a message (`plan` found changes).
    Changes,
    /// Exit 3: no supervisor runs for this file.
    NoSupervisor(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Error(_) | Failure::Config(_) => 1,
            Failure::Usage(_) | Failure::Changes => 2,
            Failure::NoSupervisor(_) => 3,
        }
    }

    /// The message without the `error: ` prefix (empty for [`Failure::Changes`]).
    pub fn message(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Failure::Error(m) | Failure::Usage(m) | Failure::NoSupervisor(m) => m.as_str().into(),
            Failure::Config(e) => render_config_error(e).into(),
            Failure::Changes => "".into(),
        }
    }

    /// A supervisor's `Error { message, code }` as the failure with that exit code. A supervisor
    /// from before messages lost their prefix still sends `error: …`: it is not doubled.
    pub fn from_response(message: String, code: i32) -> Failure {
        let message = match message.strip_prefix(PREFIX) {
            Some(rest) => rest.to_string(),
            None => message,
        };
        match code {
            2 => Failure::Usage(message),
            3 => Failure::NoSupervisor(message),
            _ => Failure::Error(message),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.message();
        if message.is_empty() {
            return Ok(());
        }
        write!(f, "{PREFIX}{}", message.trim_end())
    }
}

impl std::error::Error for Failure {}

fn render_config_error(e: &ConfigError) -> String {
    let n = e.diagnostics.len();
    let head = if n == 1 {
        format!("`{}` is invalid (1 error)", e.file)
    } else {
        format!("`{}` is invalid ({n} errors)", e.file)
    };
    format!("{head}\n\n{}", e.render().trim_end())
}

/// The configuration file for this invocation, and how to show it.
pub struct Located {
    pub path: PathBuf,
    pub display: String,
}

pub fn locate(cli_config: Option<&Path>) -> Result<Located, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::Error(format!("cannot read the current directory: {e}")))?;
    let env_config = std::env::var("PYPM_CONFIG").ok();
    let path = crate::config::discover(cli_config, env_config.as_deref(), &cwd).ok_or_else(|| {
        Failure::Error(format!(
            "no `pypm.toml` in `{}` or any parent directory\n\nwrite one with `pypm init`, or pass `--config FILE`",
            cwd.display()
        ))
    })?;
    if !path.is_file() {
        let what = if path.is_dir() {
            "is a directory, not a file"
        } else {
            "does not exist"
        };
        let from = if cli_config.is_none() && env_config.as_deref().is_some_and(|v| !v.is_empty()) {
            " (from $PYPM_CONFIG)"
        } else {
            ""
        };
        return Err(Failure::Error(format!(
            "configuration file `{}`{from} {what}",
            path.display()
        )));
    }
    let display = path
        .strip_prefix(&cwd)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string());
    Ok(Located { path, display })
}

/// The state directory of the file: from its `[pypm]` table (apps are not read, so `status`,
/// `down` and `logs` work while an app has errors), else `[pypm] state_dir` read leniently
/// (unexpanded) when that table has errors, else `.pypm` beside the file.
pub fn state_dir_for(located: &Located) -> PathBuf {
    let dir = located
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let host: std::collections::HashMap<String, String> = std::env::vars().collect();
    if let Some(state_dir) = crate::config::state_dir(&located.path, &host) {
        return state_dir;
    }
    let text = std::fs::read_to_string(&located.path).unwrap_or_default();
    let lenient = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            t.get("pypm")?
                .get("state_dir")?
                .as_str()
                .map(str::to_string)
        })
        // Not even TOML (a save with `[apps.x`): the `state_dir` line of `[pypm]` still says
        // where the supervisor is, so `down` and `status` keep reaching it.
        .or_else(|| scan_state_dir(&text));
    dir.join(lenient.as_deref().unwrap_or(".pypm"))
}

/// `state_dir = "…"` (or `'…'`) in the `[pypm]` table of a file that does not parse, read line
/// by line.
fn scan_state_dir(text: &str) -> Option<String> {
    let mut in_pypm = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_pypm = l.trim_end_matches(|c: char| c != ']') == "[pypm]";
            continue;
        }
        let l = if in_pypm {
            l
        } else if let Some(rest) = l.strip_prefix("pypm.") {
            rest.trim_start()
        } else {
            continue;
        };
        let Some(rest) = l.strip_prefix("state_dir") else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim();
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let end = value[1..].find(quote)?;
        return Some(value[1..1 + end].to_string());
    }
    None
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let config = cli.config.as_deref();
    // `--profile` travels as `$PYPM_PROFILE`: every read of the file here, and the supervisor
    // `up -d` starts, apply the same profiles.
    if !cli.profile.is_empty() {
        crate::process::set_env_at_start("PYPM_PROFILE", &cli.profile.join(","));
    }
    // A command whose reader went away (`pypm logs | head`) ends quietly, like other Unix tools;
    // the supervisor keeps ignoring SIGPIPE (a client that hangs up must not kill it).
    if !matches!(cli.command, Command::Up(_) | Command::Daemon) {
        crate::process::restore_default_sigpipe();
    }
    match cli.command {
        Command::Check(args) => check::check(config, args.verbose),
        Command::Config(args) => {
            let located = locate(config)?;
            let host: std::collections::HashMap<String, String> = std::env::vars().collect();
            let text =
                crate::config::effective(&located.path, &located.display, &host, args.verbose)
                    .map_err(Failure::Config)?;
            print!("{text}");
            Ok(())
        }
        Command::Schema => {
            print!("{}", crate::config::keys::json_schema_text());
            Ok(())
        }
        Command::Init => init::init(config),
        Command::Up(args) => up::up(config, &args),
        Command::Daemon => up::daemon(config),
        Command::Logs(args) => logs::logs(config, &args),
        Command::Status(args) => status::status(config, args.app, args.json),
        Command::Inspect(args) => inspect::inspect(config, args.app, args.json),
        Command::Restart(args) => {
            client_cmds::restart(config, if args.all { None } else { args.app })
        }
        Command::Reload => client_cmds::reload(config),
        Command::Plan(args) => client_cmds::plan(config, args.json),
        Command::Down => client_cmds::down(config),
        Command::Import(args) => import::import(&args.file),
        Command::Export(args) => export::export(config, &args),
        Command::Dashboard => dashboard::dashboard(config),
        Command::Monit => monit::monit(config),
        Command::Service(args) => service::service(config, &args.action),
        Command::Completions(args) => completions::completions(args.shell),
        Command::Manpages(args) => completions::manpages(&args.dir),
        Command::Start(args) => start::start(config, &args),
        Command::Stop(args) => app_verbs::stop(config, &args),
        Command::Delete(args) => app_verbs::delete(config, &args),
        Command::Scale(args) => app_verbs::scale(config, &args),
        Command::Set(args) => app_verbs::set(config, &args),
        Command::Unset(args) => app_verbs::unset(config, &args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_state_dir_line_is_found_in_a_file_that_does_not_parse() {
        let scan = super::scan_state_dir;
        assert_eq!(
            scan("[pypm]\nstate_dir = \"state\"  # here\n\n[apps.x\ncommand = 1\n").as_deref(),
            Some("state")
        );
        assert_eq!(
            scan("[apps.a]\nstate_dir = \"no\"\n[pypm]\nstate_dir='s2'\n").as_deref(),
            Some("s2")
        );
        assert_eq!(
            scan("pypm.state_dir = \"dotted\"\n[apps.x\n").as_deref(),
            Some("dotted")
        );
        assert_eq!(scan("[apps.a]\nstate_dir = \"not pypm's\"\n"), None);
        assert_eq!(
            scan("[pypm] # comment\nstate_dir = \"c\"\n").as_deref(),
            Some("c")
        );
    }
}
