//! Integration tests: the real `pypm` binary in temp dirs against small `sh` fixture programs.
//! See `harness.rs` for the guard that stops everything a test started, even on panic.

mod harness;

mod basics;
mod deps;
mod logs;
mod reload;
mod restarts;
mod stop;
mod listen;
mod probes;
mod reconcile;
mod servers;
