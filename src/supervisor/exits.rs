//! A child's exit: what it means for its instance (restart, failed, replaced, …).
use std::time::Instant;

use super::*;

impl Supervisor {
    pub(super) fn on_exit(&mut self, e: Exit) {
        let Some(key) = self.by_pid.remove(&e.pid) else {
            return;
        };
        let now = Instant::now();
        let Some(spec) = self.desired.apps.get(&key.0).cloned() else {
            // The app was removed from the file while it ran: any exit just stops it.
            if let Some(i) = self.obs.instances.get_mut(&key) {
                i.pid = None;
                i.state = State::Stopped;
                i.reason = Some("removed".into());
            }
            self.emit(
                "exited",
                Some(&key.0),
                Some(key.1),
                Some(e.pid),
                e.describe(),
            );
            self.dirty = true;
            return;
        };
        // The old process of a roll exited (we stopped it, or it died on its own).
        if let Some(i) = self.obs.instances.get_mut(&key)
            && i.old.as_ref().is_some_and(|o| o.pid == e.pid)
        {
            i.old = None;
            self.emit(
                "exited",
                Some(&key.0),
                Some(key.1),
                Some(e.pid),
                e.describe(),
            );
            self.emit(
                "stopped",
                Some(&key.0),
                Some(key.1),
                Some(e.pid),
                "replaced".into(),
            );
            self.dirty = true;
            return;
        }
        self.probes.remove(&key);
        // The replacement died before it was ready: keep the old process.
        if let Some(i) = self.obs.instances.get(&key)
            && i.old.as_ref().is_some_and(|o| !o.stopping)
        {
            let why = i.fail_reason.clone().unwrap_or_else(|| e.describe());
            self.emit(
                "exited",
                Some(&key.0),
                Some(key.1),
                Some(e.pid),
                e.describe(),
            );
            self.keep_old(&key, &why);
            self.dirty = true;
            return;
        }
        let Some(inst) = self.obs.instances.get_mut(&key) else {
            return;
        };
        // Whatever the app left in its process group was killed by the reaper before it reaped
        // the app's process (`process::Reaper`).
        state::on_exit(&spec.app, inst, e.code, e.signal, now);
        let (state, reason) = (inst.state, inst.reason.clone().unwrap_or_default());
        if matches!(state, State::Backoff | State::Failed) {
            inst.history
                .push_back((std::time::SystemTime::now(), reason.clone()));
            if inst.history.len() > 50 {
                inst.history.pop_front();
            }
        }
        self.emit(
            "exited",
            Some(&key.0),
            Some(key.1),
            Some(e.pid),
            e.describe(),
        );
        match state {
            State::Backoff => self.emit("restarting", Some(&key.0), Some(key.1), None, reason),
            State::Failed => self.emit("failed", Some(&key.0), Some(key.1), None, reason),
            State::Stopped | State::Completed => {
                self.emit("stopped", Some(&key.0), Some(key.1), None, reason)
            }
            _ => {}
        }
        self.dirty = true;
    }
}
