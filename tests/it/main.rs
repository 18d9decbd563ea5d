//! Integration tests: the real `pypm` binary in temp dirs against small `sh` fixture programs.
//! See `harness.rs` for the guard that stops everything a test started, even on panic.
// Tests may call libc directly (the harness kills and inspects processes with libc).
#![allow(unsafe_code)]

mod harness;
mod import_run;

mod basics;
mod bounded;
mod dashboard;
mod deps;
mod export;
mod http;
mod limits;
mod listen;
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
mod stop;
mod verbs;
