//! `inspect`'s answer (SPEC §8): one app's resolved spec, its limits and how each is enforced,
//! its instances and restarts. The JSON is what `pypm inspect APP --json` and `GET /api/apps/APP`
//! print; the types mirror the config's without depending on it (the client decodes them).

use serde::{Deserialize, Serialize};

use super::Row;

/// `inspect --json`: the resolved spec plus the app's instances as ROWs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct InspectReport {
    pub app: String,
    /// The resolved spec; `null` only for an app the supervisor no longer has (it answers
    /// `not_found` before that today).
    pub spec: Option<InspectSpec>,
    /// How each limit is enforced; `null` as `spec` is.
    pub limits: Option<InspectLimits>,
    pub instances: Vec<Row>,
    /// Recent restarts, oldest first.
    pub restart_history: Vec<RestartRecord>,
}

/// One app as the supervisor resolved it: the file's values with defaults applied, the command
/// line and interpreter it runs, durations in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct InspectSpec {
    /// The command line exactly as spawned.
    pub argv: Vec<String>,
    pub interpreter: Option<std::path::PathBuf>,
    /// How the interpreter was chosen (SPEC §3).
    pub rule: Option<String>,
    /// The `[environments.NAME]` the app names.
    pub environment: Option<String>,
    pub cwd: std::path::PathBuf,
    pub kind: AppKind,
    pub enabled: bool,
    pub instances: u32,
    /// The env files' variables, then `env`'s (a later one wins), values of keys that look
    /// secret as `***`.
    #[cfg_attr(test, schemars(with = "std::collections::BTreeMap<String, String>"))]
    pub env: indexmap::IndexMap<String, String>,
    pub env_file: Vec<std::path::PathBuf>,
    pub depends_on: Vec<Dependency>,
    pub restart: RestartWhen,
    pub restart_delay_secs: f64,
    pub restart_delay_max_secs: f64,
    pub max_restarts: u32,
    pub restart_window_secs: f64,
    pub min_uptime_secs: f64,
    pub success_exit_codes: Vec<i32>,
    /// A signal's name, e.g. `SIGTERM`: a string, as `LastExit.signal` is, since the signal type
    /// belongs to the process layer and is not the protocol's to decode.
    pub stop_signal: String,
    pub stop_timeout_secs: f64,
    /// `tcp://HOST:PORT` or `unix:PATH`.
    pub listen: Vec<String>,
    pub revision: Option<String>,
    pub ready: Option<ProbeInfo>,
    pub health: Option<ProbeInfo>,
    pub log_dir: std::path::PathBuf,
    pub log_timestamps: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    Service,
    Task,
}

/// The `restart` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartWhen {
    Always,
    OnFailure,
    Never,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Dependency {
    pub app: String,
    pub condition: DependencyCondition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    Started,
    Ready,
    Completed,
}

/// A `ready` or `health` probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ProbeInfo {
    pub check: ProbeCheckInfo,
    pub interval_secs: f64,
    /// Ready: the overall deadline. Health: one attempt's limit.
    pub timeout_secs: f64,
    /// Health: consecutive failures before a restart.
    pub failures: u32,
}

/// What a probe checks: `{"http": URL}`, `{"tcp": ADDR}`, `{"exec": [ARGV]}`, `{"log": REGEX}`
/// or `"notify"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheckInfo {
    Http(String),
    Tcp(String),
    Exec(Vec<String>),
    Log(String),
    Notify,
}

/// Each limit's value and how it is enforced here, e.g. `4096: setrlimit(RLIMIT_NOFILE) before
/// exec`; `null` when the limit is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct InspectLimits {
    pub memory_max: Option<String>,
    pub cpu_max: Option<String>,
    pub nofile: Option<String>,
    /// Always set (the default is 0).
    pub nice: String,
    pub user: Option<String>,
}

/// One restart of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct RestartRecord {
    /// RFC 3339, milliseconds.
    pub at: String,
    pub instance: u32,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, to_value};

    /// A supervisor's answer from before the report was typed (paths, pids and figures edited):
    /// decoding and encoding it again gives the same text, so `--json` and the HTTP API did not
    /// change.
    #[test]
    fn the_untyped_reports_json_round_trips_byte_for_byte() {
        let wire = include_str!("inspect.wire.json");
        let report: InspectReport = serde_json::from_str(wire).unwrap_or_else(|e| panic!("{e}"));
        let again = serde_json::to_string_pretty(&report).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again + "\n", wire);
    }

    #[test]
    fn mirrors_serialise_as_the_config_types_do() {
        use crate::config;
        let pairs: Vec<(Value, Value)> = vec![
            (
                to_value(config::Kind::Service).ok(),
                to_value(AppKind::Service).ok(),
            ),
            (
                to_value(config::Kind::Task).ok(),
                to_value(AppKind::Task).ok(),
            ),
            (
                to_value(config::RestartPolicy::Always).ok(),
                to_value(RestartWhen::Always).ok(),
            ),
            (
                to_value(config::RestartPolicy::OnFailure).ok(),
                to_value(RestartWhen::OnFailure).ok(),
            ),
            (
                to_value(config::RestartPolicy::Never).ok(),
                to_value(RestartWhen::Never).ok(),
            ),
            (
                Some(config::Condition::Started.as_str().into()),
                to_value(DependencyCondition::Started).ok(),
            ),
            (
                Some(config::Condition::Ready.as_str().into()),
                to_value(DependencyCondition::Ready).ok(),
            ),
            (
                Some(config::Condition::Completed.as_str().into()),
                to_value(DependencyCondition::Completed).ok(),
            ),
            (
                to_value(config::ProbeCheck::Http("http://h/".into())).ok(),
                to_value(ProbeCheckInfo::Http("http://h/".into())).ok(),
            ),
            (
                to_value(config::ProbeCheck::Tcp("h:1".into())).ok(),
                to_value(ProbeCheckInfo::Tcp("h:1".into())).ok(),
            ),
            (
                to_value(config::ProbeCheck::Exec(vec!["a".into(), "b c".into()])).ok(),
                to_value(ProbeCheckInfo::Exec(vec!["a".into(), "b c".into()])).ok(),
            ),
            (
                regex::Regex::new("^up$")
                    .ok()
                    .and_then(|r| to_value(config::ProbeCheck::Log(config::LogPattern(r))).ok()),
                to_value(ProbeCheckInfo::Log("^up$".into())).ok(),
            ),
            (
                to_value(config::ProbeCheck::Notify).ok(),
                to_value(ProbeCheckInfo::Notify).ok(),
            ),
        ]
        .into_iter()
        .map(|(c, p)| (c.unwrap_or_default(), p.unwrap_or_default()))
        .collect();
        for (config, protocol) in pairs {
            assert!(!config.is_null());
            assert_eq!(config, protocol);
        }
    }
}
