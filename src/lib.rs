//! pypm — a declarative process supervisor for Python services.
//!
//! # The map
//!
//! A file goes in at the top (`config` → `desired`), the supervisor makes reality match it, and
//! everything that touches the OS sits at the bottom (`process`, `logs`, `store`). Arrows point
//! down only: nothing below `supervisor` knows it exists.
//!
//! - **`cli`, `commands`** — clap definitions and one module per verb. A command reads the file
//!   or talks to the supervisor through `control`'s client; it never signals or spawns an app.
//!   Every user error is a `commands::Failure`, rendered once (`error: …`) in `main`.
//! - **`config`** — `pypm.toml` (with includes, profiles, `${VAR}`) into typed, validated
//!   structures, every error collected with its position; `diagnostic` renders them. Knows no
//!   process, no supervisor; the key registry (`config::keys`) is the one list of keys, their
//!   defaults and the JSON Schema.
//! - **`desired`** — the desired state: `resolve` turns the config into each app's argv and
//!   complete environment, `python_env` finds its interpreter (SPEC §3), `graph` orders apps by
//!   dependency. Reads files and looks up programs; starts nothing.
//! - **`supervisor`** — one owner of state, one inbox. Handlers record facts in
//!   `plan::Observed`; `plan` (pure) decides every action and the next wake-up; `record` (pure)
//!   says what an action does to the observed state; `apply` then performs its effects through
//!   `effects::Effects` — the only place that spawns, signals, binds, samples or writes state —
//!   with the real OS (`RealEffects`) or, in the loop tests, a fake world and a manual clock.
//!   `state` holds the instances and the one table of allowed transitions; `diff` is a reload as
//!   a diff; `boot` starts and ends a supervisor.
//! - **`inputs`** — what reports into the inbox besides exits and requests: `probes`,
//!   `watch` (the file, the apps' globs), `schedule` (cron to due times). They report; they do
//!   not decide.
//! - **`events`** — every recorded event: `journal` writes `events.jsonl` and hands each batch to
//!   the `bus`, which fans it out to the `notifiers` (webhook, email, exec, StatsD) and the HTTP
//!   event streams without ever blocking the supervisor.
//! - **`control`** — the versioned request/response protocol (the contract the Python client
//!   and the HTTP API are checked against), the socket server and its client.
//! - **`http`** — the dashboard, JSON API and `/metrics`: a client of `control`'s handler, with
//!   the token; it holds no state of its own.
//! - **`logs`** — the apps' output to rotated log files (the pump thread), and reading it back.
//! - **`store`** — private files: created 0600, replaced atomically.
//! - **`process`** — the OS edge: spawn, signals, reaping, cgroups, /proc sampling, sockets,
//!   waiting on descriptors, who we are. All `unsafe`, `libc` and `nix` calls live there (the
//!   crate denies `unsafe_code` everywhere else), so another OS is one backend behind it.

pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod desired;
pub mod diagnostic;
pub mod events;
pub mod http;
pub mod inputs;
pub mod logs;
#[allow(unsafe_code)]
pub mod process;
pub mod store;
pub mod supervisor;
