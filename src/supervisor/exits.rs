//! A child's exit: what it means for its instance (restart, failed, replaced, …).
//!
//! Whatever the app left in its process group was already killed by the reaper before it reaped
//! the app's process (`process::Reaper`).
use crate::config::keys::EventKind;

use super::*;

impl Supervisor {
    pub(super) fn on_exit(&mut self, e: Exit) {
        self.log_pipes.remove(&e.pid);
        let Some(key) = self.by_pid.remove(&e.pid) else {
            return;
        };
        let (app, idx) = (key.0.clone(), key.1);
        self.dirty = true;
        self.cgroup_exit(&key, &e);
        self.emit(
            EventKind::Exited,
            Some(&app),
            Some(idx),
            Some(e.pid),
            e.describe(),
        );
        let Some(spec) = self.desired.apps.get(&app).cloned() else {
            // The app was removed from the file while it ran: any exit just stops it.
            if let Some(i) = self.obs.instances.get_mut(&key) {
                i.exited_removed();
            }
            return;
        };
        // The old process of a roll exited (we stopped it, or it died on its own).
        if let Some(i) = self.obs.instances.get_mut(&key)
            && i.old().is_some_and(|o| o.pid() == e.pid)
        {
            i.old_exited();
            self.emit(
                EventKind::Stopped,
                Some(&app),
                Some(idx),
                Some(e.pid),
                "replaced".into(),
            );
            return;
        }
        self.probes.remove(&key);
        self.health_notify.remove(&key);
        // The replacement died before it was ready: keep the old process.
        if let Some(i) = self.obs.instances.get(&key)
            && i.old().is_some_and(|o| !o.stopping())
        {
            let why = i.fail_reason().map_or_else(|| e.describe(), str::to_string);
            let notes = record::keep_old(&mut self.obs, &self.wants, &key, &why);
            self.write_notes(notes);
            return;
        }
        let Some(inst) = self.obs.instances.get_mut(&key) else {
            return;
        };
        state::on_exit(&spec.app, inst, e.code, e.signal, self.fx.now());
        let (state, reason) = (inst.state(), inst.reason().unwrap_or_default().to_string());
        let looping = inst.take_loop_alert();
        if matches!(state, State::Backoff | State::Failed) {
            inst.note_history(reason.clone());
        }
        let event = match state {
            State::Backoff => EventKind::Restarting,
            State::Failed => EventKind::Failed,
            State::Stopped | State::Completed => EventKind::Stopped,
            _ => return,
        };
        self.emit(event, Some(&app), Some(idx), None, reason);
        // Still restarted, but more often than `max_restarts` allows failures: said once per
        // window (notifiers send it like `failed`).
        if let Some(n) = looping {
            self.emit(
                EventKind::RestartLoop,
                Some(&app),
                Some(idx),
                None,
                format!(
                    "{n} restarts within {} (max_restarts = {}); it is still restarted",
                    crate::config::units::format_duration(spec.app.restart_window),
                    spec.app.max_restarts
                ),
            );
        }
    }

    /// `memory_max` reached (before the exit is reported): the instance is failed for its
    /// memory, as after a sampled overrun.
    fn memory_limit_exit(&mut self, key: &Key, pid: i32, why: String) {
        self.emit(
            EventKind::MemoryLimit,
            Some(&key.0),
            Some(key.1),
            Some(pid),
            format!("{why}; restarting"),
        );
        if let Some(i) = self.obs.instances.get_mut(key)
            && i.pid() == Some(pid)
        {
            i.oom_killed(why);
        }
    }

    /// The exited process's cgroup: an OOM kill in it is reported (before the exit), and the
    /// cgroup is removed (or kept for later while a straggler is inside). Without a cgroup, a
    /// spawner's own limit (a Windows Job Object) that refused memory is reported the same way.
    fn cgroup_exit(&mut self, key: &Key, e: &Exit) {
        // Only formatted when a limit was hit (not on every exit).
        let max = |s: &Self| {
            s.desired
                .apps
                .get(&key.0)
                .and_then(|a| a.app.memory_max)
                .map(crate::config::units::format_size)
                .unwrap_or_default()
        };
        if e.memory_limit {
            let why = format!(
                "memory limit: its Job Object refused memory over memory_max {} and it exited",
                max(self)
            );
            self.memory_limit_exit(key, e.pid, why);
        }
        let Some((cg, seen)) = self.proc_cgroups.remove(&e.pid) else {
            return;
        };
        // Killed by the kernel for its cgroup's memory.max: say so before the exit.
        if cg.oom_kills() > seen && e.signal == Some(crate::process::Signal::SIGKILL as i32) {
            let why = format!(
                "memory limit: killed by the kernel's OOM killer in its cgroup (memory_max {})",
                max(self)
            );
            self.memory_limit_exit(key, e.pid, why);
        }
        if !cg.remove() {
            self.cgroup_leftovers.push(cg);
        }
    }
}
