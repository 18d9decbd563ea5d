//! pypm — a declarative process supervisor for Python services.
//!
//! Architecture (see `STYLE.md` in the design docs):
//! - `config`: reads `pypm.toml` into a validated desired state, collecting every error with its
//!   position (`diagnostic` renders them).
//! - `python_env`: resolves the interpreter and environment of each app (SPEC §3).
//! - `graph`: dependency order (start waves, reverse stop order).
//! - `commands`: one module per CLI verb; `cli` holds the clap definitions.

pub mod init;
