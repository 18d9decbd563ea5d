//! The edge between the supervisor's decisions and the OS: every spawn, signal, probe thread,
//! socket bind, process sample, state write and event the loop performs goes through
//! [`Effects`], and so does its clock.
//!
//! The supervisor runs with [`RealEffects`]. The loop tests (`loop_tests.rs`) run the very same
//! loop with a fake that records each effect, hands out pipes instead of processes, and a clock
//! they move by hand: decisions are tested without processes and without sleeping.
use crate::process::ext::fd::OwnedFd;
use crate::process::ext::net::UnixDatagram;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::Instant;

use crate::config::Listen;
use crate::events::journal::{EventLog, EventRecord};
use crate::inputs::probes::{ProbeHandle, Report, Spec, Target};
use crate::process::{self, Child, Reaper, Signal, SpawnError, SpawnSpec, Usage};

use super::persist::{self, SavedState};

/// What the loop does to the world. Each method is one effect; none decides anything.
pub(super) trait Effects {
    /// The loop's clock.
    fn now(&self) -> Instant;
    /// Forks and execs every spec (in parallel), one result per spec, in order.
    fn spawn_batch(&mut self, specs: &[SpawnSpec]) -> Vec<Result<Child, SpawnError>>;
    /// Sends `sig` to the process group of `pid` if `pid` is still the process started at
    /// `start`; whether anything was signalled. A failure is logged and counts as "gone".
    fn signal_group(&mut self, pid: i32, start: u64, sig: Signal) -> bool;
    /// Starts a probe's thread; `None` when there is nothing to hold (the fake).
    fn start_probe(
        &mut self,
        spec: Spec,
        target: Target,
        notify: Option<UnixDatagram>,
        report: Report,
    ) -> io::Result<Option<ProbeHandle>>;
    /// Binds a `listen` socket.
    fn bind(&mut self, listen: &Listen) -> io::Result<OwnedFd>;
    /// The resource usage of each root's process tree.
    fn sample(&mut self, roots: &[i32]) -> HashMap<i32, Usage>;
    /// Writes `state_dir/state.json`.
    fn write_state(&mut self, state_dir: &Path, state: &SavedState) -> io::Result<()>;
    /// Nothing is starting any more: tell the service manager (systemd `Type=notify`).
    fn tell_ready(&mut self);
    /// Gives back the memory start-up used (`process::release_startup_memory`).
    fn release_memory(&mut self);
    /// Records an event (`events.jsonl`, then the bus: notifiers, StatsD, the HTTP API's event
    /// streams); queued until [`Effects::flush_events`].
    fn emit(&mut self, event: EventRecord);
    /// Writes the events emitted since the last flush, in order, in one write.
    fn flush_events(&mut self);
}

/// The effects of a real supervisor.
pub(super) struct RealEffects {
    pub(super) reaper: Reaper,
    /// `state_dir/events.jsonl`, and the bus each written event goes to.
    pub(super) events: EventLog,
}

impl Effects for RealEffects {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn spawn_batch(&mut self, specs: &[SpawnSpec]) -> Vec<Result<Child, SpawnError>> {
        process::spawn_batch(specs)
    }

    fn signal_group(&mut self, pid: i32, start: u64, sig: Signal) -> bool {
        match process::signal_group_checked(pid, start, sig) {
            Ok(sent) => sent,
            Err(e) => {
                log::warn!("cannot send {sig} to the process group of pid {pid}: {e}");
                false
            }
        }
    }

    fn start_probe(
        &mut self,
        spec: Spec,
        target: Target,
        notify: Option<UnixDatagram>,
        report: Report,
    ) -> io::Result<Option<ProbeHandle>> {
        crate::inputs::probes::start(spec, target, self.reaper.clone(), notify, report).map(Some)
    }

    fn bind(&mut self, listen: &Listen) -> io::Result<OwnedFd> {
        match listen {
            Listen::Tcp(addr) => process::bind_tcp(addr),
            Listen::Unix(path) => process::bind_unix(path),
        }
    }

    fn sample(&mut self, roots: &[i32]) -> HashMap<i32, Usage> {
        process::sample(roots)
    }

    fn write_state(&mut self, state_dir: &Path, state: &SavedState) -> io::Result<()> {
        persist::save_state(state_dir, state)
    }

    fn tell_ready(&mut self) {
        if let Err(e) = process::sd_notify("READY=1") {
            log::warn!("cannot notify the service manager: {e}");
        }
    }

    fn release_memory(&mut self) {
        process::release_startup_memory();
    }

    fn emit(&mut self, event: EventRecord) {
        self.events.append(&event);
    }

    fn flush_events(&mut self) {
        self.events.flush();
    }
}
