//! Inputs besides exits and requests: watched files (debounced) and probe results.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

impl Supervisor {
    /// (Re)starts the file watcher for the current desired state.
    pub(super) fn rewatch(&mut self) {
        let dirs = crate::inputs::watch::watch_list(&self.desired);
        // The same directories: keep the watcher (and its thread) as it is.
        if self.watcher.as_ref().is_some_and(|(d, _)| *d == dirs) {
            return;
        }
        self.watcher = None;
        if dirs.is_empty() {
            return;
        }
        let tx = std::sync::Mutex::new(self.inbox.clone());
        match crate::inputs::watch::start(&dirs, move |p| {
            if let Ok(t) = tx.lock() {
                let _ = t.send(Event::FileChanged(p));
            }
        }) {
            Ok(w) => self.watcher = Some((dirs, w)),
            Err(e) => log::warn!("cannot watch files: {e}; use `pypm reload` after editing"),
        }
    }

    /// The planner's `Reload` (the saved file's debounce is over), recorded.
    pub(super) fn reload_saved(&mut self) {
        self.reload_first = None;
        // A file briefly missing or empty mid-save is never applied: the save that
        // completes it triggers another reload.
        let complete = std::fs::metadata(&self.opts.config_path).is_ok_and(|m| m.len() > 0);
        let seen_valid = self.storm_valid.take();
        if !complete {
            log::info!(
                "`{}` is missing or empty (mid-save?): waiting for the next save",
                self.opts.display
            );
            return;
        }
        log::info!("`{}` changed: reloading", self.opts.display);
        let resp = self.reload();
        // Mid-storm the newest version may be invalid: the newest valid one seen since
        // the last reload is applied instead, and the file's error stays shown.
        if matches!(resp, Response::Error { .. })
            && let Some(text) = seen_valid
        {
            let error = self.config_error.clone();
            let loaded = crate::desired::resolve::from_source(
                &text,
                &self.opts.config_path,
                &self.opts.display,
                &self.host,
            );
            if loaded.is_ok() {
                log::info!("applying the newest valid version seen during the saves");
                let _ = self.reload_with(loaded);
                self.config_error = error;
            }
        }
    }

    pub(super) fn probe_report(&self) -> crate::inputs::probes::Report {
        let tx = std::sync::Mutex::new(self.inbox.clone());
        Arc::new(move |r| {
            if let Ok(t) = tx.lock() {
                let _ = t.send(Event::Probe(r));
            }
        })
    }

    pub(super) fn start_probe(
        &mut self,
        p: &crate::config::Probe,
        which: crate::inputs::probes::Which,
        target: &crate::inputs::probes::Target,
        notify: Option<&crate::process::ext::net::UnixDatagram>,
    ) {
        let sock = notify.and_then(|s| s.try_clone().ok());
        let attempt = match which {
            crate::inputs::probes::Which::Ready => p.interval.min(Duration::from_secs(5)),
            crate::inputs::probes::Which::Health => p.timeout,
        };
        let spec = crate::inputs::probes::Spec {
            check: p.check.clone(),
            which,
            interval: p.interval,
            attempt_timeout: attempt,
        };
        let report = self.probe_report();
        match self.fx.start_probe(spec, target.clone(), sock, report) {
            Ok(h) => self
                .probes
                .entry((target.app.clone(), target.idx))
                .or_default()
                .extend(h),
            Err(e) => log::error!(
                "cannot start a probe for {}.{}: {e}",
                target.app,
                target.idx
            ),
        }
    }

    /// The planner's `Ready`, recorded: the readiness probe's thread ends, the health probe's
    /// starts.
    pub(super) fn ready_effects(&mut self, key: &Key) {
        use crate::inputs::probes::Which;
        self.probes.remove(key);
        let Some(spec) = self.desired.apps.get(&key.0) else {
            return;
        };
        let Some(pid) = self.obs.instances.get(key).and_then(|i| i.pid()) else {
            return;
        };
        if let Some(h) = spec.app.health.clone() {
            let target = super::apply::probe_target(key, pid, spec);
            let sock = self.health_notify.remove(key);
            self.start_probe(&h, Which::Health, &target, sock.as_ref());
        }
    }

    /// `memory_max` (SPEC §6), the planner's `SampleMemory`: records, for each live instance of
    /// a limited app, whether it is over its limit — the RSS of its whole process tree above
    /// `memory_max`, or (kernel-enforced) the cgroup's OOM killer ended a process of its tree
    /// without ending the instance. The planner then fails it (`OverMemory`).
    pub(super) fn sample_memory(&mut self, now: Instant) {
        self.obs.memory_sampled_at = Some(now);
        let limited: Vec<((String, u32), i32, u64)> = self
            .obs
            .instances
            .iter()
            .filter(|(_, i)| i.state() == State::Running || i.state() == State::Starting)
            .filter_map(|((app, idx), i)| {
                let max = self.wants.get(app)?.memory_max?;
                Some(((app.clone(), *idx), i.pid()?, max))
            })
            .collect();
        let fmt = crate::config::units::format_size;
        let mut over = Vec::new();
        let mut sampled = Vec::new();
        for ((app, idx), pid, max) in limited {
            let Some((cg, seen)) = self
                .proc_cgroups
                .get_mut(&pid)
                .filter(|(cg, _)| cg.limits_memory())
            else {
                sampled.push(((app, idx), pid, max));
                continue;
            };
            let kills = cg.oom_kills();
            if kills <= *seen {
                continue;
            }
            *seen = kills;
            let why = format!(
                "memory limit: the kernel's OOM killer ended a process of the instance (cgroup memory_max {})",
                fmt(max)
            );
            over.push(((app, idx), why));
        }
        let roots: Vec<i32> = sampled.iter().map(|(_, pid, _)| *pid).collect();
        let usage = self.fx.sample(&roots);
        for ((app, idx), pid, max) in sampled {
            let Some(rss) = usage.get(&pid).map(|u| u.rss_bytes) else {
                continue;
            };
            if rss > max {
                let why = format!("memory limit: RSS {} > memory_max {}", fmt(rss), fmt(max));
                over.push(((app, idx), why));
            }
        }
        for (key, why) in over {
            if let Some(i) = self.obs.instances.get_mut(&key) {
                i.over_memory_seen(why);
            }
        }
    }

    pub(super) fn on_probe(&mut self, r: crate::inputs::probes::ProbeResult) {
        use crate::inputs::probes::Which;
        let key = (r.app.clone(), r.idx);
        let Some(spec) = self.desired.apps.get(&r.app) else {
            return;
        };
        let limit = spec.app.health.as_ref().map_or(3, |h| h.failures);
        let Some(inst) = self.obs.instances.get_mut(&key) else {
            return;
        };
        if inst.pid() != Some(r.pid) {
            return; // a result about a process that is gone
        }
        match r.which {
            // A fact; the planner decides (`Action::Ready`).
            Which::Ready if r.ok && inst.state() == State::Starting => {
                inst.ready_probe_passed(r.detail);
            }
            Which::Ready => {
                if !r.ok {
                    log::debug!("{}.{} not ready yet: {}", r.app, r.idx, r.detail);
                }
            }
            Which::Health if r.ok => inst.health_passed(),
            Which::Health => {
                log::warn!(
                    "{}.{} health check failed ({}/{limit}): {}",
                    r.app,
                    r.idx,
                    inst.health_failures() + 1,
                    r.detail
                );
                // A fact; the planner decides (`Action::Unhealthy`) once the count reaches
                // the limit.
                inst.health_failed(r.detail);
            }
        }
    }
}
