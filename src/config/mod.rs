//! The configuration model: `pypm.toml` read into typed, validated structures.
//!
//! Owns: finding the file, parsing it with positions, every validation rule of SPEC §1, defaults of
//! SPEC §8, `${VAR}` expansion and `env_file` contents. It runs nothing and touches no process; the
//! Python environment of each app is resolved afterwards by [`crate::desired::resolve`].

mod app;
mod app_env;
pub mod expand;
pub mod keys;
pub mod layers;
mod read;
mod table;
pub mod units;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Renderer, Span};

/// A configuration file, read and validated.
/// The signal `stop_signal` names, parsed once when the file is read; shown (and serialised) by
/// its canonical name, e.g. `SIGTERM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StopSignal(pub crate::process::Signal);

impl StopSignal {
    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal(crate::process::Signal::SIGTERM)
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StopSignal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file as found (absolute).
    pub path: PathBuf,
    /// Its directory: relative paths in the file are relative to it.
    pub dir: PathBuf,
    pub pypm: Settings,
    pub environments: IndexMap<String, Environment>,
    /// Apps in the order the file declares them.
    pub apps: IndexMap<String, std::sync::Arc<App>>,
    pub notify: Vec<Notifier>,
    /// The profiles applied (`$PYPM_PROFILE`, `pypm --profile`), in order.
    pub profiles: Vec<String>,
    /// The texts of the file and of what it includes (for positions in messages).
    #[serde(skip)]
    pub sources: layers::Sources,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub http: Option<String>,
    pub http_public: bool,
    pub statsd: Option<String>,
    pub watch_config: bool,
    /// `events.jsonl` (and a detached supervisor's `pypm.log`) rotate at this size …
    pub events_max_size: u64,
    /// … keeping this many rotated files.
    pub events_max_files: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Environment {
    pub name: String,
    pub decl: EnvDecl,
    #[serde(skip)]
    pub span: Span,
}

pub use crate::desired::python_env::EnvDecl;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Service,
    Task,
}

/// What a scheduled run does when the last one is still going (Kubernetes CronJob's names).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    #[default]
    Forbid,
    Allow,
    Replace,
}

impl App {
    /// The parsed `schedule` (tasks) or `restart_schedule` (services), if any.
    pub fn parsed_schedule(&self) -> Option<crate::inputs::schedule::Schedule> {
        let text = match self.kind {
            Kind::Task => self.schedule.as_deref(),
            Kind::Service => self.restart_schedule.as_deref(),
        }?;
        crate::inputs::schedule::Schedule::parse(text).ok()
    }

    /// The zone schedules are evaluated in.
    pub fn schedule_tz(&self) -> chrono_tz::Tz {
        self.timezone
            .as_deref()
            .and_then(|z| crate::inputs::schedule::parse_timezone(z).ok())
            .unwrap_or_else(crate::inputs::schedule::system_timezone)
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Started,
    Ready,
    Completed,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Completed => "completed",
        }
    }
}

/// What an app runs, as declared.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// Already split into words, each expanded.
    Command(Vec<String>),
    Script(String),
    Module(String),
}

/// A socket the supervisor binds for an app (SPEC §5).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "tcp://{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    Http(String),
    Tcp(String),
    Exec(Vec<String>),
    Log(LogPattern),
    Notify,
}

/// The `log` probe's regular expression, compiled once when the file is read; compared,
/// hashed and serialised by its source text.
#[derive(Debug, Clone)]
pub struct LogPattern(pub regex::Regex);

impl PartialEq for LogPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for LogPattern {}

impl std::hash::Hash for LogPattern {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.as_str().hash(h);
    }
}

impl Serialize for LogPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
pub struct Probe {
    pub check: ProbeCheck,
    pub interval: Duration,
    /// Ready: the overall deadline. Health: one attempt's limit.
    pub timeout: Duration,
    /// Health only: consecutive failures before a restart.
    pub failures: u32,
}

/// One app, with defaults applied and every string expanded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct App {
    pub name: String,
    pub program: Program,
    pub args: Vec<String>,
    pub interpreter: Option<String>,
    pub environment: Option<String>,
    /// Absolute.
    pub cwd: PathBuf,
    /// `env` as declared, expanded (declared order).
    pub env: Vec<(String, String)>,
    /// Absolute paths of the env files.
    pub env_file: Vec<PathBuf>,
    /// What the env files contain, in order (later files win).
    pub env_file_vars: Vec<(String, String)>,
    pub kind: Kind,
    pub enabled: bool,
    pub instances: u32,
    pub listen: Vec<Listen>,
    pub depends_on: Vec<(String, Condition)>,
    pub restart: RestartPolicy,
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub min_uptime: Duration,
    pub success_exit_codes: Vec<i32>,
    pub stop_signal: StopSignal,
    pub stop_timeout: Duration,
    pub memory_max: Option<u64>,
    pub cpu_max: Option<f64>,
    pub nofile: Option<u64>,
    pub nice: i32,
    pub user: Option<String>,
    pub watch: Vec<String>,
    pub revision: Option<String>,
    /// Tasks: the cron expression, validated (see [`crate::inputs::schedule`]).
    pub schedule: Option<String>,
    /// IANA name; `None` = the system's zone.
    pub timezone: Option<String>,
    pub concurrency: Concurrency,
    pub catch_up: bool,
    pub jitter: Duration,
    /// Services: a rolling restart on this cron expression.
    pub restart_schedule: Option<String>,
    pub log_timestamps: bool,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub ready: Option<Probe>,
    pub health: Option<Probe>,
    /// Where each key's value is, for later diagnostics (environment resolution).
    #[serde(skip)]
    pub spans: AppSpans,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppSpans {
    /// The app's name in its table header.
    pub name: Span,
    pub keys: HashMap<String, Span>,
}

impl AppSpans {
    /// The span of `key`'s value, else of the app's name.
    pub fn of(&self, key: &str) -> Span {
        self.keys.get(key).cloned().unwrap_or(self.name.clone())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum NotifierKind {
    Webhook(String),
    Email { to: String, smtp: String },
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notifier {
    pub kind: NotifierKind,
    /// Empty = all events.
    pub events: Vec<String>,
}

/// Why a file could not be used: every problem at once, renderable with positions.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The path as shown to the user.
    pub file: String,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
    /// With `include`: the files of `source` (a virtual text, every file end to end); each
    /// diagnostic is shown in the file its span falls in. Empty: `source` is `file`'s text.
    pub files: Vec<layers::SourceFile>,
}

impl ConfigError {
    pub fn io(file: &Path, err: &std::io::Error) -> Self {
        ConfigError {
            file: file.display().to_string(),
            source: String::new(),
            diagnostics: vec![Diagnostic::new(
                format!("cannot read `{}`: {err}", file.display()),
                None,
            )],
            files: Vec::new(),
        }
    }

    /// The file a diagnostic's span falls in, its text, and the span within it.
    fn place(&self, d: &Diagnostic) -> (&str, &str, Option<crate::diagnostic::Span>) {
        let file = d.span.as_ref().and_then(|s| {
            self.files
                .iter()
                .find(|f| s.start >= f.start && s.start <= f.start + f.len)
        });
        match (file, &d.span) {
            (Some(f), Some(s)) if self.files.len() > 1 => (
                f.display.as_str(),
                &self.source[f.start..f.start + f.len],
                Some(s.start - f.start..s.end.saturating_sub(f.start).min(f.len)),
            ),
            _ => (self.file.as_str(), self.source.as_str(), d.span.clone()),
        }
    }

    /// Every diagnostic, rendered.
    pub fn render(&self) -> String {
        if self.files.len() <= 1 {
            return Renderer {
                file: &self.file,
                source: &self.source,
            }
            .render_all(&self.diagnostics);
        }
        let mut out = String::new();
        for (k, d) in self.diagnostics.iter().enumerate() {
            let (file, source, span) = self.place(d);
            let mut local = d.clone();
            local.span = span;
            if k > 0 {
                out.push('\n');
            }
            out.push_str(&Renderer { file, source }.render(&local));
        }
        out
    }

    /// The first error's one-line summary with its position, for `status` and events.
    pub fn summary(&self) -> (String, Option<(usize, usize)>) {
        match self.diagnostics.first() {
            Some(d) => {
                let (file, source, span) = self.place(d);
                let pos = span
                    .as_ref()
                    .map(|s| crate::diagnostic::line_col(source, s.start));
                let msg = match pos {
                    Some((l, c)) => format!("{file}:{l}:{c}: {}", d.message),
                    None => format!("{file}: {}", d.message),
                };
                (msg, pos)
            }
            None => (format!("{}: invalid", self.file), None),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the file at `path`. `display` is how the path is shown in messages;
/// `host` is the environment `${VAR}` expands from.
pub fn load(
    path: &Path,
    display: &str,
    host: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse(&source, &abs, display, host)
}

/// Parses and validates `source` as if read from `path` (absolute).
pub fn parse(
    source: &str,
    path: &Path,
    display: &str,
    host: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    read::read(source, path, &dir, display, host).map_err(|(sources, diagnostics)| ConfigError {
        file: display.to_string(),
        source: sources.text,
        diagnostics,
        files: sources.files,
    })
}

/// `pypm config`: the effective file (includes, profiles and `extends` applied) as TOML, or
/// with `verbose` one `key = value  # FILE:LINE:COL` line per key.
pub fn effective(
    path: &Path,
    display: &str,
    host: &HashMap<String, String>,
    verbose: bool,
) -> Result<String, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    read::effective(&source, &abs, display, host, verbose).map_err(|(sources, diagnostics)| {
        ConfigError {
            file: display.to_string(),
            source: sources.text,
            diagnostics,
            files: sources.files,
        }
    })
}

/// The profiles this command was asked for (`--profile`, `$PYPM_PROFILE`), for a supervisor
/// that may run with others: `None` when nothing was asked (it keeps its own).
pub fn requested_profiles() -> Option<Vec<String>> {
    let v = std::env::var("PYPM_PROFILE").ok()?;
    let host = HashMap::from([("PYPM_PROFILE".to_string(), v)]);
    Some(read::active_profiles(&host))
}

/// The state directory `[pypm] state_dir` of the file at `path`, reading nothing else; `None` when
/// the file cannot be read or its `[pypm]` table is invalid.
pub fn state_dir(path: &Path, host: &HashMap<String, String>) -> Option<PathBuf> {
    let source = std::fs::read_to_string(path).ok()?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    // A file that never says `state_dir` uses the default: no parse of a file of 3,000 apps for
    // every `status` or `reload`.
    if !source.contains("state_dir") {
        let env = host.get("PYPM_STATE_DIR").filter(|s| !s.is_empty());
        return Some(dir.join(env.map_or(".pypm", String::as_str)));
    }
    read::read_state_dir(&source, &dir, host)
}

/// Where the file is: `--config FILE`, else `$PYPM_CONFIG`, else `pypm.toml` in `cwd` or its
/// nearest parent.
pub fn discover(explicit: Option<&Path>, env_config: Option<&str>, cwd: &Path) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(cwd.join(p));
    }
    if let Some(p) = env_config.filter(|p| !p.is_empty()) {
        return Some(cwd.join(p));
    }
    cwd.ancestors()
        .map(|d| d.join("pypm.toml"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests;
