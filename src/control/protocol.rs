//! The one request/response protocol between the CLI (and later the HTTP API) and the supervisor.
//!
//! Framing: one JSON object per line over the Unix socket `state_dir/pypm.sock`, at most
//! [`MAX_FRAME`] bytes (a request at most 64 KiB: `server::MAX_REQUEST`). Every frame carries
//! `v` = [`VERSION`]; a daemon answers a request of another version with an error naming both
//! versions.

use serde::{Deserialize, Serialize};

mod inspect;
pub use inspect::{
    AppKind, Dependency, DependencyCondition, InspectLimits, InspectReport, InspectSpec,
    ProbeCheckInfo, ProbeInfo, RestartRecord, RestartWhen,
};

pub const VERSION: u32 = 1;
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct RequestFrame {
    pub v: u32,
    /// The configuration file the client acts for. A supervisor started for another file (two
    /// files sharing one `state_dir`) answers with an error of code 3 instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<std::path::PathBuf>,
    #[serde(flatten)]
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Status of every instance (or one app's). `light` skips CPU and memory sampling (for
    /// callers that only wait on states, like `up -d`).
    Status {
        app: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        light: bool,
    },
    /// One app's resolved spec and instances.
    Inspect { app: String },
    /// Roll an app's instances (or every app's).
    Restart { app: Option<String> },
    /// Re-read the file and apply it. `profiles`: switch to these profiles first (from then
    /// on the supervisor applies them on every reload); absent, it keeps its own.
    Reload {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profiles: Option<Vec<String>>,
    },
    /// What applying the file would change (with `profiles` instead of the supervisor's).
    Plan {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profiles: Option<Vec<String>>,
    },
    /// Stop every app in reverse dependency order, then exit.
    Shutdown,
    /// The supervisor's pid and the file it runs.
    Ping,
    /// Per-instance figures for `/metrics` (cumulative CPU, start time).
    Metrics,
    /// Recent CPU, memory and state samples per instance (`pypm monit`, the dashboard's charts).
    /// Asking keeps the supervisor sampling for the next minute; nobody asking, it samples
    /// nothing (docs/monitoring.md).
    History { app: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ResponseFrame {
    pub v: u32,
    #[serde(flatten)]
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Status(StatusReport),
    Inspect(Box<InspectReport>),
    Pong {
        pid: u32,
        config_file: String,
        /// The address the HTTP server listens on, when it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http: Option<String>,
    },
    /// A request that changed something: a short human summary.
    Done {
        message: String,
    },
    Plan(PlanReport),
    Metrics(MetricsReport),
    History(HistoryReport),
    /// The request failed; `code` is the exit code the CLI should use, `cause` what failed (the
    /// HTTP API's status code).
    Error {
        /// One line first, details after a blank line; no `error: ` prefix (the CLI adds it).
        message: String,
        code: i32,
        #[serde(default, skip_serializing_if = "ErrorKind::is_failed")]
        cause: ErrorKind,
    },
}

/// What kind of failure a [`Response::Error`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Anything else.
    #[default]
    Failed,
    /// No app of that name in the file.
    NotFound,
    /// The file is invalid; nothing was changed.
    Invalid,
    /// The supervisor is shutting down or did not answer in time.
    Unavailable,
    /// The supervisor on this `state_dir` runs another file: none runs for this one.
    OtherFile,
}

impl ErrorKind {
    /// The CLI's exit code for this kind (SPEC §2): 3 when no supervisor runs for the file, else 1.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Failed
            | ErrorKind::NotFound
            | ErrorKind::Invalid
            | ErrorKind::Unavailable => 1,
            ErrorKind::OtherFile => 3,
        }
    }

    fn is_failed(&self) -> bool {
        *self == ErrorKind::Failed
    }
}

impl Response {
    /// An error of `kind`; its exit code follows from the kind.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            code: kind.exit_code(),
            cause: kind,
        }
    }
}

/// `status --json` (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct StatusReport {
    pub config_file: String,
    /// The profiles the supervisor applies (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    pub config_error: Option<ConfigErrorInfo>,
    pub instances: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ConfigErrorInfo {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// An instance's state (SPEC §3); its allowed transitions are in `supervisor::state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum State {
    Waiting,
    Starting,
    Running,
    Stopping,
    Stopped,
    Completed,
    Backoff,
    Failed,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Waiting,
        State::Starting,
        State::Running,
        State::Stopping,
        State::Stopped,
        State::Completed,
        State::Backoff,
        State::Failed,
    ];
}

/// Test rows are written with state names.
#[cfg(test)]
impl From<&str> for State {
    fn from(name: &str) -> Self {
        State::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .unwrap_or_else(|| panic!("no state `{name}`"))
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance (SPEC §8 ROW).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Row {
    /// `api`, or `api.0` when the app has several instances.
    pub name: String,
    pub app: String,
    pub instance: u32,
    pub state: State,
    pub pid: Option<u32>,
    pub uptime_secs: Option<f64>,
    pub restarts: u32,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub ready: bool,
    pub reason: Option<String>,
    pub last_exit: Option<LastExit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct LastExit {
    pub code: Option<i32>,
    pub signal: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// What `/metrics` shows (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct MetricsReport {
    pub config_error: bool,
    pub instances: Vec<MetricsRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct MetricsRow {
    pub app: String,
    pub instance: u32,
    pub state: State,
    pub restarts: u32,
    /// CPU time of the instance's process tree (user + system), while it runs.
    pub cpu_seconds: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// Unix time the running process started.
    pub start_time_seconds: Option<f64>,
    /// A task's: Unix time its last successful run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_last_success_seconds: Option<f64>,
    /// A task's: how long its last run took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_last_duration_seconds: Option<f64>,
}

/// Recent samples per instance, oldest first (`Request::History`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct HistoryReport {
    /// Seconds between two samples.
    pub interval_secs: f64,
    /// The most samples kept per instance.
    pub capacity: u32,
    pub instances: Vec<HistorySeries>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct HistorySeries {
    /// As in [`Row::name`].
    pub name: String,
    pub app: String,
    pub instance: u32,
    pub samples: Vec<HistorySample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct HistorySample {
    /// Unix time, seconds.
    pub t: f64,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub state: String,
}

/// `plan --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct PlanReport {
    pub config_file: String,
    /// False when no supervisor runs (every app shown as `start`).
    pub running: bool,
    pub changes: Vec<PlanChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct PlanChange {
    pub app: String,
    /// `start`, `stop`, `restart`, `scale N → M` or `reschedule`.
    #[cfg_attr(test, schemars(with = "String"))]
    pub verb: PlanVerb,
    pub reason: String,
}

/// What a plan does to an app; on the wire, its name (`scale 1 → 3` for a scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PlanVerb {
    Start,
    Stop,
    Restart,
    Reschedule,
    Scale { from: u32, to: u32 },
}

impl std::fmt::Display for PlanVerb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanVerb::Start => f.write_str("start"),
            PlanVerb::Stop => f.write_str("stop"),
            PlanVerb::Restart => f.write_str("restart"),
            PlanVerb::Reschedule => f.write_str("reschedule"),
            PlanVerb::Scale { from, to } => write!(f, "scale {from} → {to}"),
        }
    }
}

impl From<PlanVerb> for String {
    fn from(v: PlanVerb) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for PlanVerb {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let scale = || {
            let (from, to) = s.strip_prefix("scale ")?.split_once(" → ")?;
            Some(PlanVerb::Scale {
                from: from.parse().ok()?,
                to: to.parse().ok()?,
            })
        };
        match s.as_str() {
            "start" => Ok(PlanVerb::Start),
            "stop" => Ok(PlanVerb::Stop),
            "restart" => Ok(PlanVerb::Restart),
            "reschedule" => Ok(PlanVerb::Reschedule),
            _ => scale().ok_or_else(|| format!("unknown plan verb `{s}`")),
        }
    }
}

impl std::fmt::Display for PlanChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.app, self.verb, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol's shapes as JSON Schema: what `python/pypm` mirrors (python/tests check its
    /// dataclasses against this file, so a field added here fails them until mirrored there).
    fn protocol_schema() -> String {
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Protocol {
            request: RequestFrame,
            response: ResponseFrame,
        }
        let schema = schemars::schema_for!(Protocol);
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        text
    }

    #[test]
    fn checked_in_protocol_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/protocol.schema.json");
        let want = protocol_schema();
        if std::env::var_os("PYPM_BLESS").is_some() {
            std::fs::write(path, &want).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "schema/protocol.schema.json is stale: run `PYPM_BLESS=1 cargo test --lib protocol_schema`, \
             then mirror the change in python/pypm/_types.py"
        );
    }

    #[test]
    fn plan_verbs_keep_their_wire_names() {
        for (verb, name) in [
            (PlanVerb::Start, "start"),
            (PlanVerb::Stop, "stop"),
            (PlanVerb::Restart, "restart"),
            (PlanVerb::Reschedule, "reschedule"),
            (PlanVerb::Scale { from: 2, to: 4 }, "scale 2 → 4"),
        ] {
            let json = serde_json::to_string(&verb).unwrap_or_default();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<PlanVerb>(&json).ok(), Some(verb));
        }
        assert!(serde_json::from_str::<PlanVerb>("\"scale x → 4\"").is_err());
        assert!(serde_json::from_str::<PlanVerb>("\"explode\"").is_err());
    }

    #[test]
    fn error_codes_follow_from_the_kind_and_keep_their_wire_form() {
        for (kind, json) in [
            (
                ErrorKind::Failed,
                r#"{"kind":"error","message":"m","code":1}"#,
            ),
            (
                ErrorKind::NotFound,
                r#"{"kind":"error","message":"m","code":1,"cause":"not_found"}"#,
            ),
            (
                ErrorKind::Invalid,
                r#"{"kind":"error","message":"m","code":1,"cause":"invalid"}"#,
            ),
            (
                ErrorKind::Unavailable,
                r#"{"kind":"error","message":"m","code":1,"cause":"unavailable"}"#,
            ),
            (
                ErrorKind::OtherFile,
                r#"{"kind":"error","message":"m","code":3,"cause":"other_file"}"#,
            ),
        ] {
            let r = Response::error(kind, "m");
            assert_eq!(serde_json::to_string(&r).unwrap_or_default(), json);
            assert_eq!(serde_json::from_str::<Response>(json).ok(), Some(r));
        }
    }

    #[test]
    fn frames_round_trip_with_version() {
        let f = RequestFrame {
            v: VERSION,
            config: None,
            request: Request::Status {
                app: Some("api".into()),
                light: false,
            },
        };
        let text = serde_json::to_string(&f).unwrap_or_default();
        assert_eq!(text, r#"{"v":1,"cmd":"status","app":"api"}"#);
        let back: RequestFrame = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, f);
        let f = RequestFrame {
            config: Some("/srv/pypm.toml".into()),
            ..f
        };
        let text = serde_json::to_string(&f).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"v":1,"config":"/srv/pypm.toml","cmd":"status","app":"api"}"#
        );
        let back: RequestFrame = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, f);
    }
}
