//! pypm — a declarative process supervisor for Python services.
//!
//! Architecture (see `STYLE.md` in the design docs):
//! - `config`: reads `pypm.toml` into a validated desired state, collecting every error with its
//!   position (`diagnostic` renders them).
//! - `python_env`: resolves the interpreter and environment of each app (SPEC §3).
//! - `graph`: dependency order (start waves, reverse stop order).
//! - `commands`: one module per CLI verb; `cli` holds the clap definitions.

pub mod config;
pub mod diagnostic;
pub mod graph;
pub mod python_env;
pub mod cli;
pub mod commands;
pub mod resolve;
pub mod init;
pub mod control;
pub mod supervisor;
//! - `process`: the OS edge — spawn, signals, reaping, /proc sampling. All `unsafe` and `nix`
//!   calls live there.

pub mod process;
//! - `logs`: children's output to rotated log files (one pump thread), and reading it back.

pub mod logs;
