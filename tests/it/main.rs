//! Integration tests: the real `pypm` binary in temp dirs against small `sh` fixture programs,
//! and the library's parts that need real pipes, files or processes (`log_pump`, `examples`). One binary:
//! `tests/process.rs` (a `waitpid(-1)` reaper) and `tests/process_spawn_errors.rs` (no reaper,
//! counts this process's children) cannot share it and stay their own.
//! See `support/` for the guard that stops everything a test started, even on panic, and for
//! [`support::wait_for`].
// Real processes, signals and unix sockets: the Windows subset is tests/windows.
#![cfg(unix)]
// Tests may call libc directly (`support` kills and inspects processes with libc).
#![allow(unsafe_code)]

mod support;

mod basics;
mod bounded;
mod dashboard;
mod deps;
mod examples;
mod export;
mod http;
mod import;
mod import_corpus;
mod import_run;
mod install;
mod limits;
mod listen;
mod log_pump;
mod logs;
mod monit;
mod notify;
mod probes;
mod profiles;
mod reconcile;
mod reload;
mod restarts;
mod schedules;
mod servers;
mod service;
mod stop;
mod verbs;
