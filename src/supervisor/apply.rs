//! Performing the planner's actions: spawning (in batches), signalling, recording states.
//! Also the `listen` sockets instances inherit.
use crate::config::keys::EventKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

impl Supervisor {
    /// Records the action (`record::record`, pure), writes the events it implies, then
    /// performs its effects.
    pub(super) fn apply(&mut self, action: Action, now: Instant) {
        self.dirty = true;
        // KillAll forgets the pids it kills: take them first.
        let doomed = matches!(action, Action::KillAll).then(|| self.every_process());
        let notes = record::record(&mut self.obs, &self.wants, &action, now);
        self.write_notes(notes);
        match action {
            Action::Start { app, idx } => self.start(&app, idx, now),
            Action::Stop { app, idx, .. } => {
                let (_, sig) = self.stop_params(&app);
                self.signal_instance(&(app, idx), sig, now, None);
            }
            Action::Kill { app, idx } => {
                let why = "did not stop in time: SIGKILL";
                self.signal_instance(&(app, idx), Signal::SIGKILL, now, Some(why));
            }
            Action::Unhealthy { app, idx } | Action::OverMemory { app, idx } => {
                let key = (app, idx);
                self.probes.remove(&key);
                self.stop_failed(&key, now);
            }
            Action::ReadyTimeout { app, idx } => self.stop_failed(&(app, idx), now),
            Action::Ready { app, idx } => self.ready_effects(&(app, idx)),
            Action::SampleMemory => self.sample_memory(now),
            Action::Reload => self.reload_saved(),
            Action::WatchRestart { app } => {
                log::info!("watched files of `{app}` changed: restarting it");
            }
            Action::KillAll => {
                self.kill_all(doomed.unwrap_or_default());
                self.aborting = true;
            }
            Action::Replace { app, idx } => {
                if let Some(o) = self
                    .obs
                    .instances
                    .get(&(app.clone(), idx))
                    .and_then(|i| i.old())
                {
                    log::info!(
                        "rolling {app}.{idx}: starting a replacement for pid {}",
                        o.pid()
                    );
                }
                // A replacement that cannot even be spawned hands the instance back to its
                // old process (`record::spawned`).
                self.start(&app, idx, now);
            }
            Action::StopOld { app, idx } => {
                let (_, sig) = self.stop_params(&app);
                let key = (app, idx);
                if let Some(i) = self.obs.instances.get_mut(&key)
                    && let Some(o) = i.old()
                {
                    log::info!(
                        "rolling {}.{}: replacement ready, stopping old pid {}",
                        key.0,
                        key.1,
                        o.pid()
                    );
                    let (pid, start) = (o.pid(), o.start_ticks());
                    let sent = start.is_some_and(|st| self.fx.signal_group(pid, st, sig));
                    if !sent {
                        // Already gone: the reaper's exit event is on its way.
                        i.old_stop_missed(now);
                    }
                }
            }
            Action::KillOld { app, idx } => {
                if let Some(o) = self
                    .obs
                    .instances
                    .get(&(app.clone(), idx))
                    .and_then(|i| i.old())
                    && let Some(st) = o.start_ticks()
                {
                    log::warn!(
                        "{app}.{idx}: old pid {} did not stop in time: SIGKILL",
                        o.pid()
                    );
                    self.fx.signal_group(o.pid(), st, Signal::SIGKILL);
                }
            }
            Action::Wait { .. } | Action::Settle { .. } | Action::Forget { .. } => {}
            Action::Due { app } => self.schedule_due(&app),
        }
    }

    /// Writes the events the bookkeeping implies.
    pub(super) fn write_notes(&mut self, notes: Vec<record::Note>) {
        for n in notes {
            self.emit(n.kind, Some(&n.app), Some(n.idx), n.pid, n.detail);
        }
    }

    /// Signals the instance's process group; `why` is logged. A stop signal that finds nothing
    /// (the process is already gone, its exit on its way) makes the kill deadline now; after
    /// SIGKILL there is nothing left to escalate to.
    fn signal_instance(&mut self, key: &Key, sig: Signal, now: Instant, why: Option<&str>) {
        let Some(i) = self.obs.instances.get_mut(key) else {
            return;
        };
        let (Some(pid), Some(start)) = (i.pid(), i.start_ticks()) else {
            return;
        };
        match why {
            Some(why) => log::warn!("{}.{} (pid {pid}) {why}", key.0, key.1),
            None => log::info!("stopping {}.{} (pid {pid}) with {sig}", key.0, key.1),
        }
        if !self.fx.signal_group(pid, start, sig) && sig != Signal::SIGKILL {
            i.stop_missed(now);
        }
    }

    /// A failure while running was recorded (`record::record`): its stop signal is sent.
    fn stop_failed(&mut self, key: &Key, now: Instant) {
        let (_, sig) = self.stop_params(&key.0);
        let why = self
            .obs
            .instances
            .get(key)
            .and_then(|i| i.fail_reason().map(str::to_string))
            .unwrap_or_default();
        let why = format!("{why}; stopping it with {sig}");
        self.signal_instance(key, sig, now, Some(&why));
    }

    /// Every live process, old ones of a roll included: (app, idx, pid, start time).
    fn every_process(&self) -> Vec<(String, u32, i32, u64)> {
        let mut all = Vec::new();
        for ((app, idx), i) in &self.obs.instances {
            if let (Some(pid), Some(start)) = (i.pid(), i.start_ticks()) {
                all.push((app.clone(), *idx, pid, start));
            }
            if let Some(o) = i.old()
                && let Some(st) = o.start_ticks()
            {
                all.push((app.clone(), *idx, o.pid(), st));
            }
        }
        all
    }

    /// After a reload: a running instance whose log file name changed — `instances` crossed 1
    /// (`APP.out.log` ↔ `APP.0.out.log`), or `log_dir` moved — writes its next lines to the new
    /// file, so `pypm logs` finds them where the file says they are (SPEC §4).
    pub(super) fn retarget_logs(&mut self) {
        let log_dir = self.desired.config.pypm.log_dir.clone();
        for (pid, pipes) in self.log_pipes.iter_mut() {
            let Some((app, idx)) = self.by_pid.get(pid) else {
                continue;
            };
            let Some(spec) = self.desired.apps.get(app) else {
                continue;
            };
            let inst_no = (spec.app.instances > 1).then_some(*idx);
            for (id, stream, path) in pipes.iter_mut() {
                let want = log_dir.join(log_file_name(app, inst_no, *stream));
                if *path == want {
                    continue;
                }
                let target = LogTarget {
                    path: want.clone(),
                    max_size: spec.app.log_max_size,
                    max_files: spec.app.log_max_files,
                    timestamps: spec.app.log_timestamps,
                };
                match self.pump.retarget(*id, target) {
                    Ok(()) => {
                        log::info!(
                            "{app}.{idx}: logging to {} (was {})",
                            want.display(),
                            path.display()
                        );
                        *path = want;
                    }
                    Err(e) => log::error!("{app}.{idx}: cannot move its log: {e}"),
                }
            }
        }
    }

    pub(super) fn stop_params(&self, app: &str) -> (Duration, Signal) {
        let spec = self.desired.apps.get(app);
        let timeout = spec.map_or(Duration::from_secs(10), |s| s.app.stop_timeout);
        let sig = spec.map_or(Signal::SIGTERM, |s| s.app.stop_signal.0);
        (timeout, sig)
    }

    pub(super) fn instance_mut(&mut self, app: &str, idx: u32) -> &mut Instance {
        self.obs
            .instances
            .entry((app.to_string(), idx))
            .or_insert_with(|| Instance::new(app, idx))
    }

    pub(super) fn start(&mut self, app: &str, idx: u32, now: Instant) {
        self.start_batch(&[(app.to_string(), idx)], now);
    }

    /// Starts several instances: all are forked first, then each exec's outcome is collected, so
    /// a wave of apps starts in parallel.
    pub(super) fn start_batch(&mut self, which: &[(String, u32)], now: Instant) {
        let mut prepared = Vec::with_capacity(which.len());
        for (app, idx) in which {
            if let Some(p) = self.prepare_start(app, *idx) {
                prepared.push(p);
            }
        }
        let specs: Vec<SpawnSpec> = prepared.iter().map(|p| p.sp.clone()).collect();
        let results = self.fx.spawn_batch(&specs);
        for (p, result) in prepared.into_iter().zip(results) {
            self.finish_start(p, result, now);
        }
    }

    pub(super) fn prepare_start(&mut self, app: &str, idx: u32) -> Option<PreparedStart> {
        let spec = self.desired.apps.get(app).cloned()?;
        let environ = instance_environ(&spec, idx);
        let program = spec.argv.first().cloned().unwrap_or_default();
        let sp = SpawnSpec {
            program: PathBuf::from(&program),
            argv: spec.argv.clone(),
            env: environ,
            cwd: spec.app.cwd.clone(),
            nofile: spec.app.nofile,
            nice: (spec.app.nice != 0).then_some(spec.app.nice),
            user: spec.app.user.clone().filter(|_| process::is_root()),
            // Windows: limits of the instance's Job Object (Unix: the cgroup below).
            memory_max: spec.app.memory_max,
            cpu_max: spec.app.cpu_max,
            ..SpawnSpec::default()
        };
        record::start_asked(&mut self.obs, &self.wants, app, idx);
        let mut sp = sp;
        match self.listen_fds(&spec.app) {
            Ok(fds) => sp.listen_fds = fds,
            Err(reason) => {
                let key = (app.to_string(), idx);
                let now = self.fx.now();
                let notes = record::spawned(&mut self.obs, &self.wants, &key, Err(reason), now);
                self.write_notes(notes);
                return None;
            }
        }
        let mut cgroup = None;
        let (memory_max, cpu_max) = (spec.app.memory_max, spec.app.cpu_max);
        if memory_max.is_some() || cpu_max.is_some() {
            self.cgroup_seq += 1;
            let name = format!("{app}.{idx}.{}", self.cgroup_seq);
            if let Some(c) = self.cgroups() {
                match c.create(&name, memory_max, cpu_max) {
                    Ok(cg) => {
                        sp.cgroup_procs = cg.procs_fds();
                        cgroup = Some(cg);
                    }
                    Err(e) => log::warn!(
                        "cannot create the cgroup of {app}.{idx} ({e}): memory_max is enforced by sampling, cpu_max not at all"
                    ),
                }
            }
        }
        let wants_notify = [&spec.app.ready, &spec.app.health].iter().any(|p| {
            p.as_ref()
                .is_some_and(|p| p.check == crate::config::ProbeCheck::Notify)
        });
        let notify = if wants_notify {
            let path = self.state_dir.join(format!("notify.{app}.{idx}.sock"));
            match crate::inputs::probes::notify_socket(&path) {
                Ok(sock) => {
                    sp.notify_socket = Some(path);
                    Some(sock)
                }
                Err(e) => {
                    log::error!("cannot create the notify socket for {app}.{idx}: {e}");
                    None
                }
            }
        } else {
            None
        };
        Some(PreparedStart {
            app: app.to_string(),
            idx,
            spec,
            sp,
            notify,
            cgroup,
        })
    }

    pub(super) fn finish_start(
        &mut self,
        p: PreparedStart,
        result: Result<process::Child, process::SpawnError>,
        now: Instant,
    ) {
        let PreparedStart {
            app,
            idx,
            spec,
            sp: _,
            notify,
            cgroup,
        } = p;
        let cgroup = cgroup.map(|mut cg| {
            cg.close_procs();
            cg
        });
        let app = app.as_str();
        let key = (app.to_string(), idx);
        match result {
            Ok(child) => {
                if let Some(cg) = cgroup {
                    self.proc_cgroups.insert(child.pid, (cg, 0));
                }
                let started = record::Spawned {
                    pid: child.pid,
                    start_ticks: child.start_time,
                };
                let notes = record::spawned(&mut self.obs, &self.wants, &key, Ok(started), now);
                self.write_notes(notes);
                let pid = child.pid;
                let taps = self.attach_probes(&key, pid, &spec, notify.as_ref());
                self.by_pid.insert(pid, key.clone());
                self.attach_logs(&key, pid, &spec, [child.stdout, child.stderr], taps);
                self.emit(
                    EventKind::Started,
                    Some(app),
                    Some(idx),
                    Some(pid),
                    shell_words::join(&spec.argv),
                );
                if spec.app.ready.is_none() {
                    self.emit(
                        EventKind::Ready,
                        Some(app),
                        Some(idx),
                        Some(pid),
                        "no readiness probe".into(),
                    );
                }
            }
            Err(e) => {
                if let Some(cg) = cgroup
                    && !cg.remove()
                {
                    self.cgroup_leftovers.push(cg);
                }
                let reason = format!("cannot start: {e}");
                let notes = record::spawned(&mut self.obs, &self.wants, &key, Err(reason), now);
                self.write_notes(notes);
            }
        }
    }

    /// The new process's probes: its readiness probe (a `log` one taps its output: returned,
    /// one tap per stream), or its health probe at once when it has no readiness probe.
    fn attach_probes(
        &mut self,
        key: &Key,
        pid: i32,
        spec: &resolve::AppSpec,
        notify: Option<&crate::process::ext::net::UnixDatagram>,
    ) -> [Option<crate::logs::Tap>; 2] {
        let mut taps: [Option<crate::logs::Tap>; 2] = [None, None];
        if spec.app.ready.is_none() && spec.app.health.is_none() {
            // No probe: the target (a copy of the whole environment) is not built at all.
            return taps;
        }
        let target = probe_target(key, pid, spec);
        if let Some(p) = &spec.app.ready {
            if let crate::config::ProbeCheck::Log(re) = &p.check {
                let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
                for t in taps.iter_mut() {
                    *t = Some(crate::inputs::probes::log_tap(
                        re.0.clone(),
                        fired.clone(),
                        &target,
                        self.probe_report(),
                    ));
                }
            } else {
                self.start_probe(p, crate::inputs::probes::Which::Ready, &target, notify);
            }
            // A `notify` health probe starts once ready, on the same socket.
            match spec.app.health.as_ref().zip(notify) {
                Some((h, sock)) if h.check == crate::config::ProbeCheck::Notify => {
                    if let Ok(sock) = sock.try_clone() {
                        self.health_notify.insert(key.clone(), sock);
                    }
                }
                _ => {
                    self.health_notify.remove(key);
                }
            }
        } else if let Some(h) = &spec.app.health {
            self.start_probe(h, crate::inputs::probes::Which::Health, &target, notify);
        }
        taps
    }

    /// The new process's stdout and stderr go to the log pump, into its log files.
    fn attach_logs(
        &mut self,
        key: &Key,
        pid: i32,
        spec: &resolve::AppSpec,
        fds: [crate::process::ext::fd::OwnedFd; 2],
        taps: [Option<crate::logs::Tap>; 2],
    ) {
        let (app, idx) = (key.0.as_str(), key.1);
        let log_dir = &self.desired.config.pypm.log_dir;
        let inst_no = (spec.app.instances > 1).then_some(idx);
        let streams = [Stream::Out, Stream::Err];
        for ((fd, stream), tap) in fds.into_iter().zip(streams).zip(taps) {
            let target = LogTarget {
                path: log_dir.join(log_file_name(app, inst_no, stream)),
                max_size: spec.app.log_max_size,
                max_files: spec.app.log_max_files,
                timestamps: spec.app.log_timestamps,
            };
            let path = target.path.clone();
            match self.pump.add(fd, target, tap) {
                Ok(id) => self
                    .log_pipes
                    .entry(pid)
                    .or_default()
                    .push((id, stream, path)),
                Err(e) => log::error!("cannot capture the output of {app}.{idx}: {e}"),
            }
        }
    }

    /// The app's `listen` sockets, bound now if they are not yet.
    pub(super) fn listen_fds(
        &mut self,
        app: &crate::config::App,
    ) -> Result<Vec<(crate::process::ext::fd::RawFd, String)>, String> {
        use crate::process::ext::fd::{AsRawFd, OwnedFd};
        let mut out = Vec::new();
        for l in &app.listen {
            if !self.sockets.contains_key(l) {
                let fd: OwnedFd = self
                    .fx
                    .bind(l)
                    .map_err(|e| format!("cannot listen on {l}: {e}"))?;
                log::info!("listening on {l} for `{}`", app.name);
                self.sockets.insert(l.clone(), fd);
            }
            if let Some(fd) = self.sockets.get(l) {
                out.push((fd.as_raw_fd(), app.name.clone()));
            }
        }
        Ok(out)
    }

    /// Closes sockets no app declares any more.
    pub(super) fn prune_sockets(&mut self) {
        let used: std::collections::HashSet<crate::config::Listen> = self
            .desired
            .apps
            .values()
            .flat_map(|s| s.app.listen.iter().cloned())
            .collect();
        self.sockets.retain(|l, _| {
            let keep = used.contains(l);
            if !keep {
                log::info!("closing {l}: no app listens on it any more");
                if let crate::config::Listen::Unix(p) = l {
                    let _ = std::fs::remove_file(p);
                }
            }
            keep
        });
    }
}

/// The environment of instance `idx` of an app: its app's, and `PYPM_INSTANCE`.
fn instance_environ(spec: &resolve::AppSpec, idx: u32) -> Vec<(String, String)> {
    let mut environ = spec.environ.to_vec();
    environ.push(("PYPM_INSTANCE".into(), idx.to_string()));
    environ
}

/// What a probe of the instance's process `pid` needs to know: where and with which environment
/// (the instance's own, whether the probe starts with the process or once it is ready) an
/// `exec` check runs.
pub(super) fn probe_target(
    key: &Key,
    pid: i32,
    spec: &resolve::AppSpec,
) -> crate::inputs::probes::Target {
    crate::inputs::probes::Target {
        app: key.0.clone(),
        idx: key.1,
        pid,
        cwd: spec.app.cwd.clone(),
        env: instance_environ(spec, key.1),
    }
}
