//! Integration tests: the real `pypm` binary in temp dirs against small `sh` fixture programs.
//! See `support/` for the guard that stops everything a test started, even on panic, and for
//! [`support::wait_for`].
// Tests may call libc directly (`support` kills and inspects processes with libc).
#![allow(unsafe_code)]

mod support;

mod basics;
mod bounded;
mod dashboard;
mod deps;
mod export;
mod http;
mod import_run;
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
mod stop;
mod verbs;
