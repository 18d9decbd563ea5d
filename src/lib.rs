//! pypm — a declarative process supervisor for Python services.
//!
//! Architecture (one job per module):
//! - `config`: reads `pypm.toml` into typed, validated structures, collecting every error with its
//!   position; `diagnostic` renders them (`error: …`, `--> file:line:col`, caret, help).
//! - `python_env`: finds each app's interpreter and environment (SPEC §3); `resolve` turns the
//!   config into the desired state (argv, complete environment) the supervisor runs.
//! - `graph`: dependency order (start waves, reverse stop order, cycles).
//! - `supervisor`: one owner of state and one inbox; `supervisor::plan` is the pure planner,
//!   `supervisor::state` the instance transitions, `supervisor::diff` reload as a diff.
//! - `process`: the OS edge — spawn, signals, reaping, /proc sampling, waiting on descriptors
//!   (`wait_readable`), who we are (`euid`, `is_root`) and what an OS error means
//!   (`is_disk_full`). All `unsafe`, `libc` and `nix` calls live there, so another OS is one
//!   backend behind it.
//! - `logs`: children's output to rotated log files (one pump thread), and reading it back.
//! - `control`: the versioned request/response protocol, the socket server and the client.
//! - `bus`: every recorded event, fanned out to `notifiers` (webhook, email, exec, StatsD) and
//!   the HTTP API's event streams without ever blocking the supervisor.
//! - `http`: the dashboard, JSON API and `/metrics`, speaking the control protocol.
//! - `cli` (clap definitions) and `commands` (one module per verb).

pub mod bus;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod diagnostic;
pub mod graph;
pub mod http;
pub mod init;
pub mod logs;
pub mod notifiers;
pub mod probes;
#[allow(unsafe_code)]
pub mod process;
pub mod python_env;
pub mod resolve;
pub mod schedule;
pub mod supervisor;
pub mod watch;
