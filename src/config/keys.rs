//! The registry of every key the file accepts: name, type, default and meaning.
//!
//! It is the one source of truth for three consumers: the reader (unknown keys, type checks and
//! `did you mean`), the JSON Schema (`pypm schema`, `schema/pypm.schema.json`) and the docs. A key
//! that is not here is rejected; a key that is here but never read is caught by a test. The JSON Schema
//! is generated from it in `keys/schema.rs`.

mod schema;

pub use schema::{json_schema, json_schema_text};

/// The shape a value must have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    Str,
    /// A string or a number, kept as text (`revision`).
    Text,
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// A positive number (integer or float).
    PositiveNumber,
    Duration,
    /// A duration of at least 1ms (a probe's `interval` and `timeout`: zero would spin).
    ProbeDuration,
    Size,
    /// A string split like a POSIX shell, or an array of strings.
    Command,
    StrList,
    StrOrStrList,
    IntList {
        min: i64,
        max: i64,
    },
    /// A table of environment variables (string, number or boolean values).
    EnvMap,
    Enum(&'static [&'static str]),
    /// A list of app names, or a table of app name → condition.
    DependsOn,
    Signal,
    /// One of [`INTERPRETERS`], a Python by version (`python3.12`) or a path (contains `/`).
    Interpreter,
    /// A regular expression (not `${VAR}`-expanded: `$` anchors).
    Regex,
    /// A sub-table with its own keys.
    Table(&'static [Key]),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
    /// The default as a JSON literal, for the schema and docs.
    pub default: Option<&'static str>,
}

const fn key(name: &'static str, ty: Ty, default: Option<&'static str>, doc: &'static str) -> Key {
    Key {
        name,
        ty,
        doc,
        default,
    }
}

pub const CONDITIONS: &[&str] = &["started", "ready", "completed"];
pub const KINDS: &[&str] = &["service", "task"];
pub const RESTART_POLICIES: &[&str] = &["always", "on-failure", "never"];
pub const CONCURRENCY: &[&str] = &["forbid", "allow", "replace"];
/// Every event the supervisor records (SPEC §7), by the name it has in `events.jsonl`, in
/// notifier `on` lists and in the HTTP event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Ready,
    Exited,
    Restarting,
    Stopped,
    Failed,
    MemoryLimit,
    Unhealthy,
    ConfigError,
    ConfigApplied,
    LogError,
    Scheduled,
    Skipped,
    RestartLoop,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::Started,
        EventKind::Ready,
        EventKind::Exited,
        EventKind::Restarting,
        EventKind::Stopped,
        EventKind::Failed,
        EventKind::MemoryLimit,
        EventKind::Unhealthy,
        EventKind::ConfigError,
        EventKind::ConfigApplied,
        EventKind::LogError,
        EventKind::Scheduled,
        EventKind::Skipped,
        EventKind::RestartLoop,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Ready => "ready",
            EventKind::Exited => "exited",
            EventKind::Restarting => "restarting",
            EventKind::Stopped => "stopped",
            EventKind::Failed => "failed",
            EventKind::MemoryLimit => "memory_limit",
            EventKind::Unhealthy => "unhealthy",
            EventKind::ConfigError => "config_error",
            EventKind::ConfigApplied => "config_applied",
            EventKind::LogError => "log_error",
            EventKind::Scheduled => "scheduled",
            EventKind::Skipped => "skipped",
            EventKind::RestartLoop => "restart_loop",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of [`EventKind::ALL`].
pub const EVENT_NAMES: [&str; EventKind::ALL.len()] = {
    let mut out = [""; EventKind::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = EventKind::ALL[i].as_str();
        i += 1;
    }
    out
};

pub const TOP_KEYS: &[&str] = &[
    "include",
    "pypm",
    "environments",
    "apps",
    "notify",
    "profiles",
];

pub const PYPM_KEYS: &[Key] = &[
    key(
        "state_dir",
        Ty::Str,
        Some("\".pypm\""),
        "directory for the control socket, state, events and pid file; relative to the file",
    ),
    key(
        "log_dir",
        Ty::Str,
        None,
        "directory for app logs; relative to the file (default: STATE_DIR/logs, so \".pypm/logs\" with the default state_dir)",
    ),
    key(
        "http",
        Ty::Str,
        None,
        "HOST:PORT for the dashboard, HTTP API and /metrics; absent = off",
    ),
    key(
        "http_public",
        Ty::Bool,
        Some("false"),
        "must be true to bind `http` to a non-loopback address",
    ),
    key(
        "statsd",
        Ty::Str,
        None,
        "HOST:PORT to push StatsD metrics over UDP; absent = off",
    ),
    key(
        "watch_config",
        Ty::Bool,
        Some("true"),
        "hot reload when this file or an env_file changes",
    ),
    key(
        "events_max_size",
        Ty::Size,
        Some("\"10M\""),
        "rotate state_dir/events.jsonl (and a detached supervisor's pypm.log) at this size",
    ),
    key(
        "events_max_files",
        Ty::Int { min: 0, max: 1000 },
        Some("3"),
        "rotated events.jsonl (and pypm.log) files kept",
    ),
];

pub const ENVIRONMENT_KINDS: &[&str] = &["venv", "conda", "python"];

pub const ENVIRONMENT_KEYS: &[Key] = &[
    key(
        "venv",
        Ty::Str,
        None,
        "a virtualenv directory (has pyvenv.cfg), relative to the file",
    ),
    key(
        "conda",
        Ty::Str,
        None,
        "a conda/mamba env name, or a prefix path",
    ),
    key("python", Ty::Str, None, "an interpreter on PATH, or a path"),
];

pub const PROBE_KINDS: &[&str] = &["http", "tcp", "exec", "log", "notify"];

const PROBE_KIND_KEYS: [Key; 5] = [
    key("http", Ty::Str, None, "URL; passes when it answers 2xx"),
    key(
        "tcp",
        Ty::Str,
        None,
        "HOST:PORT; passes when a connection succeeds",
    ),
    key(
        "exec",
        Ty::Command,
        None,
        "a command; passes when it exits 0",
    ),
    key(
        "log",
        Ty::Regex,
        None,
        "a regex; passes when a stdout/stderr line matches",
    ),
    key(
        "notify",
        Ty::Bool,
        None,
        "passes when the app sends READY=1 to NOTIFY_SOCKET (sd_notify)",
    ),
];

pub const READY_KEYS: &[Key] = &[
    PROBE_KIND_KEYS[0],
    PROBE_KIND_KEYS[1],
    PROBE_KIND_KEYS[2],
    PROBE_KIND_KEYS[3],
    PROBE_KIND_KEYS[4],
    key(
        "interval",
        Ty::ProbeDuration,
        Some("\"500ms\""),
        "time between attempts",
    ),
    key(
        "timeout",
        Ty::ProbeDuration,
        Some("\"60s\""),
        "not ready by then: the start failed (counts toward max_restarts)",
    ),
];

pub const HEALTH_KEYS: &[Key] = &[
    PROBE_KIND_KEYS[0],
    PROBE_KIND_KEYS[1],
    PROBE_KIND_KEYS[2],
    PROBE_KIND_KEYS[3],
    PROBE_KIND_KEYS[4],
    key(
        "interval",
        Ty::ProbeDuration,
        Some("\"10s\""),
        "time between attempts",
    ),
    key(
        "failures",
        Ty::Int { min: 1, max: 1000 },
        Some("3"),
        "consecutive failures before the instance is restarted",
    ),
    key(
        "timeout",
        Ty::ProbeDuration,
        None,
        "one attempt's time limit (default: min(interval, 5s))",
    ),
];

/// The interpreters named by a word; any other value must be a path (contains `/`).
pub const INTERPRETERS: &[&str] = &["python", "node", "bash", "sh", "none"];

pub const PROGRAM_KEYS: &[&str] = &["command", "script", "module"];

pub const APP_KEYS: &[Key] = &[
    key(
        "extends",
        Ty::Str,
        None,
        "start from another app's keys (its own keys laid over them; chains allowed)",
    ),
    key(
        "command",
        Ty::Command,
        None,
        "string (split like a POSIX shell, run without a shell) or array",
    ),
    key(
        "script",
        Ty::Str,
        None,
        "a file to run; interpreter from its extension",
    ),
    key(
        "module",
        Ty::Str,
        None,
        "a Python module, run as `python -m MODULE`",
    ),
    key(
        "args",
        Ty::StrList,
        Some("[]"),
        "extra arguments for script / module",
    ),
    key(
        "interpreter",
        Ty::Interpreter,
        None,
        "python | node | bash | sh | none | a path (relative to cwd)",
    ),
    key(
        "environment",
        Ty::Str,
        None,
        "a named [environments] entry; omitted = automatic resolution",
    ),
    key(
        "cwd",
        Ty::Str,
        None,
        "working directory, relative to the file",
    ),
    key("env", Ty::EnvMap, Some("{}"), "environment variables"),
    key(
        "env_file",
        Ty::StrOrStrList,
        None,
        "KEY=VALUE files (# comments, optional quotes), later files win",
    ),
    key(
        "kind",
        Ty::Enum(KINDS),
        Some("\"service\""),
        "service (kept running) | task (runs to completion)",
    ),
    key(
        "enabled",
        Ty::Bool,
        Some("true"),
        "false = declared stopped: pypm stops it and keeps it stopped",
    ),
    key(
        "instances",
        Ty::Int { min: 1, max: 1024 },
        Some("1"),
        "number of copies; each gets PYPM_INSTANCE=0..N-1",
    ),
    key(
        "listen",
        Ty::StrList,
        Some("[]"),
        "sockets pypm binds and passes to every instance: tcp://HOST:PORT or unix:/path",
    ),
    key(
        "depends_on",
        Ty::DependsOn,
        Some("[]"),
        "apps to wait for: a list (condition `started`) or { app = \"started\" | \"ready\" | \"completed\" }",
    ),
    key(
        "restart",
        Ty::Enum(RESTART_POLICIES),
        None,
        "always | on-failure | never (default: always for services, never for tasks)",
    ),
    key(
        "restart_delay",
        Ty::Duration,
        Some("\"100ms\""),
        "first backoff; doubles each consecutive failure",
    ),
    key(
        "restart_delay_max",
        Ty::Duration,
        Some("\"30s\""),
        "backoff cap",
    ),
    key(
        "max_restarts",
        Ty::Int {
            min: 0,
            max: 1_000_000,
        },
        Some("10"),
        "restarts allowed within restart_window before the app is marked failed",
    ),
    key(
        "restart_window",
        Ty::Duration,
        Some("\"60s\""),
        "window for max_restarts",
    ),
    key(
        "min_uptime",
        Ty::Duration,
        Some("\"1s\""),
        "an exit sooner than this counts as a failed start",
    ),
    key(
        "success_exit_codes",
        Ty::IntList { min: 0, max: 255 },
        Some("[0]"),
        "exit codes that are not failures",
    ),
    key(
        "stop_signal",
        Ty::Signal,
        Some("\"SIGTERM\""),
        "signal sent to the process group to stop",
    ),
    key(
        "stop_timeout",
        Ty::Duration,
        Some("\"10s\""),
        "then SIGKILL to the whole process group",
    ),
    key("memory_max", Ty::Size, None, "memory limit of the instance"),
    key("cpu_max", Ty::PositiveNumber, None, "CPU limit in cores"),
    key(
        "nofile",
        Ty::Int {
            min: 1,
            max: 1 << 30,
        },
        None,
        "RLIMIT_NOFILE",
    ),
    key(
        "nice",
        Ty::Int { min: -20, max: 19 },
        Some("0"),
        "scheduling priority",
    ),
    key(
        "user",
        Ty::Str,
        None,
        "run as this user (only when pypm runs as root)",
    ),
    key(
        "watch",
        Ty::StrList,
        Some("[]"),
        "globs (relative to cwd); a change restarts the app",
    ),
    key(
        "revision",
        Ty::Text,
        None,
        "free text; changing it rolls the app (a deploy trigger)",
    ),
    key(
        "schedule",
        Ty::Str,
        None,
        "tasks: run on this cron schedule (5 fields, or 6 with seconds first; @hourly, @daily, @weekly, @monthly, @yearly, @reboot)",
    ),
    key(
        "timezone",
        Ty::Str,
        None,
        "IANA time zone of `schedule` and `restart_schedule` (default: the system's)",
    ),
    key(
        "concurrency",
        Ty::Enum(CONCURRENCY),
        Some("\"forbid\""),
        "a scheduled run while the last is still going: forbid (skip it) | allow (run alongside) | replace (stop the old run)",
    ),
    key(
        "catch_up",
        Ty::Bool,
        Some("false"),
        "run a scheduled task once at start if a run was missed while the supervisor was down",
    ),
    key(
        "jitter",
        Ty::Duration,
        Some("\"0s\""),
        "delay each scheduled run by a random time up to this",
    ),
    key(
        "restart_schedule",
        Ty::Str,
        None,
        "services: a rolling restart on this cron schedule (like `pypm restart`)",
    ),
    key(
        "log_timestamps",
        Ty::Bool,
        Some("false"),
        "prefix each log line with an RFC 3339 timestamp",
    ),
    key(
        "log_max_size",
        Ty::Size,
        Some("\"10M\""),
        "rotate a log file at this size",
    ),
    key(
        "log_max_files",
        Ty::Int { min: 0, max: 1000 },
        Some("5"),
        "rotated files kept",
    ),
    key("ready", Ty::Table(READY_KEYS), None, "readiness probe"),
    key("health", Ty::Table(HEALTH_KEYS), None, "liveness probe"),
];

pub const NOTIFY_KINDS: &[&str] = &["webhook", "email", "exec"];

pub const NOTIFY_KEYS: &[Key] = &[
    key(
        "webhook",
        Ty::Str,
        None,
        "URL that receives each event as a JSON POST",
    ),
    key(
        "email",
        Ty::Str,
        None,
        "address that receives each event (needs smtp)",
    ),
    key(
        "smtp",
        Ty::Str,
        None,
        "HOST:PORT of the SMTP server for email",
    ),
    key(
        "exec",
        Ty::Command,
        None,
        "command run with the event as JSON on stdin",
    ),
    key(
        "events",
        Ty::StrList,
        None,
        "event names to send (default: all)",
    ),
];

pub fn names(keys: &[Key]) -> impl Iterator<Item = &'static str> + '_ {
    keys.iter().map(|k| k.name)
}

pub const APP_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";
