//! The command line (clap derive only; behaviour lives in `commands`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;

/// `pypm --version`: the version, the git commit when built from a checkout, and the target
/// (`0.2.0 (abc1234, x86_64-unknown-linux-musl)`; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PYPM_BUILD_INFO"),
    ")"
);

/// pypm: a declarative process supervisor for Python services.
///
/// Describe the apps you want running in `pypm.toml`; `pypm up` makes reality match the file and
/// keeps it matching. Exit codes: 0 success, 1 error, 2 usage error (and `plan` with changes),
/// 3 no supervisor is running for this file.
#[derive(Debug, Parser)]
#[command(name = "pypm", version = VERSION, propagate_version = true)]
pub struct Cli {
    /// The configuration file [default: $PYPM_CONFIG, else pypm.toml here or in the nearest parent]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Apply `[profiles.NAME]` over the file (repeat for several, applied in order) [default:
    /// $PYPM_PROFILE, comma-separated]
    #[arg(long, short = 'p', global = true, value_name = "NAME")]
    pub profile: Vec<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the supervisor for the file (foreground; `-d` to detach)
    Up(UpArgs),
    /// Stop every app in reverse dependency order, then the supervisor
    Down,
    /// Validate the file without running anything (exit 0 valid, 1 invalid)
    Check(CheckArgs),
    /// Print the effective file: includes merged, `--profile`s and `extends` applied (as TOML)
    ///
    /// With `-v`, one `key = value` line per key with the file, line and column it came from.
    Config(ConfigArgs),
    /// Show what applying the file would change (exit 0 no change, 2 changes, 1 invalid, 3 no
    /// supervisor: then it lists what `up` would start)
    Plan(JsonArgs),
    /// Apply the file now (the same as saving it, or SIGHUP to the supervisor)
    Reload,
    /// One row per instance: state, pid, uptime, restarts, CPU, memory, readiness
    #[command(visible_aliases = ["ls", "list"])]
    Status(StatusArgs),
    /// Show the last lines of app logs; `-f` follows, across rotation
    Logs(LogsArgs),
    /// Show an app's resolved command, environment, limits, probes, pids and exits
    Inspect(InspectArgs),
    /// Roll an app's instances one at a time (the declared state is unchanged)
    Restart(RestartArgs),
    /// Print the JSON Schema of pypm.toml
    Schema,
    /// Write a commented starter pypm.toml for the current directory
    Init,
    /// Convert a PM2 ecosystem file, a Procfile or a supervisord.conf into pypm.toml (printed)
    ///
    /// The format is detected from the file name, else its content. The converted file is
    /// printed on stdout (save it beside the imported file: relative paths stay relative); what
    /// had no pypm equivalent is listed in comments at its top, and counted on stderr. An
    /// ecosystem.config.js is read without running node: it must be a plain object literal.
    Import(ImportArgs),
    /// Print the dashboard URL with its token (needs `http` in [pypm] and a running supervisor)
    Dashboard,
    /// Watch it live in the terminal: instances with CPU/memory history, logs, events
    ///
    /// A table of instances (state, pid, uptime, restarts, CPU and memory with sparklines of the
    /// last minutes), the selected app's logs (stdout `out`, stderr `err`), the last events, and
    /// the file's error when it is invalid. Keys: ↑/↓ select, `r` restart the selected app,
    /// `R` reload the file, `l` show or hide the logs, `/` filter apps, `q` quit. Works in
    /// 80×24 and over SSH; `NO_COLOR` turns colours off. When the supervisor goes away it says
    /// so, and picks up the next one.
    Monit,
    /// Write the apps as Kubernetes manifests, a Nomad job, a compose.yaml or systemd units
    ///
    /// Reads the file like `check` (an invalid file exports nothing) and prints the result, or
    /// writes it into `-o DIR`. What has no equivalent in the target is listed in comments at
    /// the top of the output and counted on stderr. Kubernetes needs `--image`: the container
    /// image the commands run in. Mappings: docs/export.md.
    Export(ExportArgs),
    /// Manage an OS service unit that runs `pypm up` for this file at boot
    ///
    /// A systemd unit (a system unit when run as root, else a user unit; `--user`/`--system`
    /// choose) or, on macOS, a launchd agent. It runs `pypm --config FILE up` in the foreground
    /// from the file's directory, with the PATH of the shell that installed it.
    Service(ServiceArgs),
    /// Print a shell's completion script (app names complete from the nearest pypm.toml)
    ///
    /// Load it for the current shell, or install it once:
    ///
    ///   bash: `source <(pypm completions bash)` (or save it as
    ///         ~/.local/share/bash-completion/completions/pypm)
    ///   zsh:  `pypm completions zsh > "${fpath[1]}/_pypm"`
    ///   fish: `pypm completions fish > ~/.config/fish/completions/pypm.fish`
    ///
    /// The script asks `pypm` itself what to complete at each TAB, so app names (for `logs`,
    /// `restart`, `inspect`, `status`, `stop`, `delete`, `scale`, `set`, `unset`, ...) come from the
    /// pypm.toml of `--config` on the line, else `$PYPM_CONFIG`, else the nearest one.
    Completions(CompletionsArgs),
    /// Write the man pages (pypm.1 and one page per subcommand) into a directory
    Manpages(ManpagesArgs),
    /// Add an app to pypm.toml (or enable or update one) and start it
    ///
    /// Writes the app into the file (created here when none is found, comments and formatting of
    /// an existing one kept), then the running supervisor applies it; with none running, one is
    /// started detached, as `up -d`. Prints the diff and the app's status rows; exit 1 if the app
    /// ends `failed`. `pypm start NAME` of an app in the file sets `enabled = true`.
    Start(Box<StartArgs>),
    /// Stop an app and keep it stopped: writes `enabled = false` into pypm.toml
    Stop(StopArgs),
    /// Remove an app's table from pypm.toml; the supervisor stops it
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Set an app's number of instances in pypm.toml; the supervisor scales it
    Scale(ScaleArgs),
    /// Set keys of an app in pypm.toml (`pypm set api memory_max=512M env.DEBUG=1`)
    Set(SetArgs),
    /// Remove keys of an app from pypm.toml (back to their defaults)
    Unset(UnsetArgs),
    /// Run the supervisor in this process (used by `up -d`)
    #[command(hide = true)]
    Daemon,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: Shell,
}

/// The shells `pypm completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// The directory to write `pypm.1`, `pypm-up.1`, ... into (created if missing)
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write: kubernetes (YAML), nomad (HCL job), compose (compose.yaml), systemd (units)
    pub target: ExportTarget,
    /// Only this app (repeat for several) [default: every app]
    #[arg(long = "app", short = 'a', value_name = "APP", add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: Vec<String>,
    /// Write the files into DIR (created if missing) instead of printing them; `-` prints
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The container image the commands run in (required for kubernetes; compose defaults to
    /// python:3-slim; nomad switches from raw_exec to the docker driver)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// The namespace of every object (kubernetes) or of the job (nomad)
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
}

/// The engines `pypm export` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportTarget {
    Kubernetes,
    Nomad,
    Compose,
    Systemd,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to convert: ecosystem.config.js, ecosystem.json, Procfile or supervisord.conf
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub action: ServiceAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ServiceAction {
    /// Write the unit, reload the service manager, enable and start it
    Install(ServiceScope),
    /// Stop and disable the unit, remove it and reload the service manager
    Uninstall(ServiceScope),
    /// Print the unit on stdout (nothing is written or run)
    Print(ServiceScope),
}

/// Which service manager instance: systemd's system one or the user's.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ServiceScope {
    /// A user unit (~/.config/systemd/user) [default when not root]
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// A system unit (/etc/systemd/system) [default when root]
    #[arg(long)]
    pub system: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detach: run the supervisor in the background and return once no instance is `starting`
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// With -d: the longest to wait for instances to leave `starting`
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub wait: String,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// One line per key, with where it came from (`# FILE:LINE:COL`)
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also print each app's resolved command line, interpreter and the rule that chose it, and
    /// the start order
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this app
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: Option<String>,
    /// Machine-readable output (format: SPEC §8)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this app (default: every app, each line prefixed with its instance name)
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: Option<String>,
    /// Keep printing new lines as they are written
    #[arg(short, long)]
    pub follow: bool,
    /// How many lines to show: the last N of each stream (with `log_timestamps`, the last N of
    /// stdout and stderr interleaved in time order)
    #[arg(short = 'n', long = "lines", default_value_t = 20)]
    pub lines: usize,
    /// Only stdout
    #[arg(long, conflicts_with = "err")]
    pub out: bool,
    /// Only stderr
    #[arg(long)]
    pub err: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The app
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: String,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The app to roll
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        add = ArgValueCandidates::new(crate::commands::app_candidates)
    )]
    pub app: Option<String>,
    /// Roll every app
    #[arg(long)]
    pub all: bool,
}

/// What every verb that edits pypm.toml accepts.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Do not print the diff of the file
    #[arg(short, long)]
    pub quiet: bool,
    /// The longest to wait for the running supervisor to apply the change
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub wait: String,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// A script (`app.py`, `server.js`, `run.sh`), a module with `-m`, a command line in quotes
    /// (`"gunicorn app:app"`), or the name of an app in the file
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub target: String,
    /// TARGET is a Python module, run as `python -m TARGET`
    #[arg(short = 'm', long)]
    pub module: bool,
    /// The app's name [default: the script's stem, as PM2 names it]
    #[arg(long)]
    pub name: Option<String>,
    /// How many copies to run (`instances`)
    #[arg(short = 'i', long, value_name = "N")]
    pub instances: Option<u32>,
    /// An environment variable (`env`); repeatable
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// A KEY=VALUE file (`env_file`); repeatable
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Run in this virtualenv (an `[environments]` entry is added or reused)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["conda", "python"])]
    pub venv: Option<PathBuf>,
    /// Run in this conda/mamba env (a name or a prefix)
    #[arg(long, value_name = "NAME", conflicts_with = "python")]
    pub conda: Option<String>,
    /// Run with this interpreter (on PATH, or a path)
    #[arg(long, value_name = "PY")]
    pub python: Option<String>,
    /// The working directory (`cwd`)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// A socket pypm binds and passes to every instance (`tcp://HOST:PORT`, `unix:PATH`);
    /// repeatable
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Ready once this URL answers 2xx
    #[arg(long, value_name = "URL", conflicts_with_all = ["ready_tcp", "ready_log"])]
    pub ready_http: Option<String>,
    /// Ready once a TCP connection to HOST:PORT succeeds
    #[arg(long, value_name = "ADDR", conflicts_with = "ready_log")]
    pub ready_tcp: Option<String>,
    /// Ready once a stdout/stderr line matches this regex
    #[arg(long, value_name = "REGEX")]
    pub ready_log: Option<String>,
    /// The restart policy
    #[arg(long, value_name = "POLICY", value_parser = ["always", "on-failure", "never"])]
    pub restart: Option<String>,
    /// The memory limit (`512M`, `1G`)
    #[arg(long, value_name = "SIZE")]
    pub memory_max: Option<String>,
    /// A task (runs to completion) rather than a service
    #[arg(long)]
    pub task: bool,
    /// Restart the app when files matching this glob change; repeatable
    #[arg(long, value_name = "GLOB")]
    pub watch: Vec<String>,
    /// Arguments for the script or module (`args`)
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub edit: EditArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The app to stop
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        add = ArgValueCandidates::new(crate::commands::app_candidates)
    )]
    pub app: Option<String>,
    /// Stop every app
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub edit: EditArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The app to remove
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: String,
    #[command(flatten)]
    pub edit: EditArgs,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The app
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: String,
    /// The number of instances
    pub instances: u32,
    #[command(flatten)]
    pub edit: EditArgs,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The app
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: String,
    /// Keys of the app's table (`memory_max=512M`, `env.DEBUG=1`, `ready.http=URL`), typed as
    /// the file's reference says
    #[arg(required = true, value_name = "KEY=VALUE")]
    pub assignments: Vec<String>,
    #[command(flatten)]
    pub edit: EditArgs,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// The app
    #[arg(add = ArgValueCandidates::new(crate::commands::app_candidates))]
    pub app: String,
    /// Keys to remove (`memory_max`, `env.DEBUG`)
    #[arg(required = true, value_name = "KEY")]
    pub keys: Vec<String>,
    #[command(flatten)]
    pub edit: EditArgs,
}
