//! Performing the planner's actions: spawning (in batches), signalling, recording states.
//! Also the `listen` sockets instances inherit.
use crate::config::keys::EventKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

impl Supervisor {
    pub(super) fn apply(&mut self, action: Action, now: Instant) {
        self.dirty = true;
        match action {
            Action::Start { app, idx } => self.start(&app, idx, now),
            Action::Stop { app, idx, intent } => {
                let timeout = self
                    .wants
                    .get(&app)
                    .map_or(Duration::from_secs(10), |w| w.stop_timeout);
                let sig = self
                    .desired
                    .apps
                    .get(&app)
                    .map_or(Signal::SIGTERM, |s| s.app.stop_signal.0);
                let Some(i) = self.obs.instances.get_mut(&(app.clone(), idx)) else {
                    return;
                };
                i.transition(State::Stopping);
                i.stop_intent = Some(intent);
                i.kill_at = Some(now + timeout);
                if let (Some(pid), Some(start)) = (i.pid, i.start_ticks) {
                    log::info!("stopping {app}.{idx} (pid {pid}) with {sig}");
                    if !self.fx.signal_group(pid, start, sig) {
                        // Already gone: the reaper's exit event is on its way.
                        i.kill_at = Some(now);
                    }
                }
            }
            Action::Kill { app, idx } => {
                if let Some(i) = self.obs.instances.get_mut(&(app.clone(), idx)) {
                    i.kill_at = None;
                    if let (Some(pid), Some(start)) = (i.pid, i.start_ticks) {
                        log::warn!("{app}.{idx} (pid {pid}) did not stop in time: SIGKILL");
                        self.fx.signal_group(pid, start, Signal::SIGKILL);
                    }
                }
            }
            Action::Unhealthy { app, idx } => {
                let key = (app.clone(), idx);
                let limit = self.wants.get(&app).and_then(|w| w.health_failures);
                let Some(i) = self.obs.instances.get_mut(&key) else {
                    return;
                };
                let limit = limit.unwrap_or(i.health_failures);
                i.health_failures = 0;
                let detail = i.last_health_detail.take().unwrap_or_default();
                let pid = i.pid;
                i.history
                    .push_back((std::time::SystemTime::now(), format!("unhealthy: {detail}")));
                self.emit(
                    EventKind::Unhealthy,
                    Some(&app),
                    Some(idx),
                    pid,
                    format!("{limit} consecutive health check failures; restarting: {detail}"),
                );
                self.probes.remove(&key);
                let why = format!("unhealthy ({limit} consecutive health check failures)");
                self.fail_running(&app, idx, why, now);
            }
            Action::OverMemory { app, idx } => self.fail_over_memory(&app, idx, now),
            Action::SampleMemory => self.sample_memory(now),
            Action::KillAll => {
                self.kill_all();
                self.aborting = true;
            }
            Action::ReadyTimeout { app, idx } => {
                let timeout = self
                    .desired
                    .apps
                    .get(&app)
                    .and_then(|s| s.app.ready.as_ref())
                    .map(|p| p.timeout)
                    .unwrap_or_default();
                let why = format!(
                    "not ready within {}",
                    crate::config::units::format_duration(timeout)
                );
                self.fail_running(&app, idx, why, now);
            }
            Action::Replace { app, idx } => {
                let key = (app.clone(), idx);
                if let Some(i) = self.obs.instances.get_mut(&key)
                    && let Some(pid) = i.pid.take()
                {
                    i.old = Some(state::OldProcess {
                        pid,
                        start_ticks: i.start_ticks.take(),
                        started_at: i.started_at,
                        started_wall: i.started_wall,
                        spec_hash: i.spec_hash,
                        stopping: false,
                        kill_at: None,
                    });
                    log::info!("rolling {app}.{idx}: starting a replacement for pid {pid}");
                }
                self.start(&app, idx, now);
                // The replacement could not even be spawned: keep the old process.
                if let Some(i) = self.obs.instances.get_mut(&key)
                    && i.pid.is_none()
                {
                    let reason = i.reason.clone().unwrap_or_default();
                    self.keep_old(&key, &reason);
                }
            }
            Action::StopOld { app, idx } => {
                let (timeout, sig) = self.stop_params(&app);
                if let Some(o) = self
                    .obs
                    .instances
                    .get_mut(&(app.clone(), idx))
                    .and_then(|i| i.old.as_mut())
                {
                    o.stopping = true;
                    o.kill_at = Some(now + timeout);
                    log::info!(
                        "rolling {app}.{idx}: replacement ready, stopping old pid {}",
                        o.pid
                    );
                    let gone = o
                        .start_ticks
                        .is_none_or(|st| !self.fx.signal_group(o.pid, st, sig));
                    if gone {
                        o.kill_at = Some(now);
                    }
                }
            }
            Action::KillOld { app, idx } => {
                if let Some(o) = self
                    .obs
                    .instances
                    .get_mut(&(app.clone(), idx))
                    .and_then(|i| i.old.as_mut())
                {
                    o.kill_at = None;
                    if let Some(st) = o.start_ticks {
                        log::warn!(
                            "{app}.{idx}: old pid {} did not stop in time: SIGKILL",
                            o.pid
                        );
                        self.fx.signal_group(o.pid, st, Signal::SIGKILL);
                    }
                }
            }
            Action::Wait { app, idx, reason } => {
                let i = self.instance_mut(&app, idx);
                i.transition(State::Waiting);
                i.reason = Some(reason);
            }
            Action::Settle { app, idx, reason } => {
                let i = self.instance_mut(&app, idx);
                i.transition(State::Stopped);
                i.reason = Some(reason);
            }
            Action::Forget { app, idx } => {
                self.obs.instances.shift_remove(&(app, idx));
            }
            Action::Due { app } => self.schedule_due(&app),
        }
    }

    /// The instance failed while running (not ready in time, unhealthy): it is stopped like any
    /// stop — `stop_signal` to its group, SIGKILL after `stop_timeout` — and its exit then counts
    /// as a failure with `why` as the reason: backoff and `max_restarts` apply (SPEC §4).
    pub(super) fn fail_running(&mut self, app: &str, idx: u32, why: String, now: Instant) {
        let (timeout, sig) = self.stop_params(app);
        let Some(i) = self.obs.instances.get_mut(&(app.to_string(), idx)) else {
            return;
        };
        i.ready_deadline = None;
        i.fail_reason = Some(why.clone());
        i.transition(State::Stopping);
        i.stop_intent = None;
        i.kill_at = Some(now + timeout);
        if let (Some(pid), Some(start)) = (i.pid, i.start_ticks) {
            log::warn!("{app}.{idx} (pid {pid}): {why}; stopping it with {sig}");
            if !self.fx.signal_group(pid, start, sig) {
                i.kill_at = Some(now);
            }
        }
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

    /// A replacement failed before it was ready: the old process stays the instance's process,
    /// and the app's roll stops here.
    pub(super) fn keep_old(&mut self, key: &(String, u32), why: &str) {
        let Some(i) = self.obs.instances.get_mut(key) else {
            return;
        };
        let Some(o) = i.old.take() else {
            return;
        };
        i.pid = Some(o.pid);
        i.start_ticks = o.start_ticks;
        i.started_at = o.started_at;
        i.started_wall = o.started_wall;
        i.spec_hash = o.spec_hash;
        i.transition(State::Running);
        i.ready = true;
        i.ready_deadline = None;
        i.reason = Some(format!("roll stopped: the replacement failed ({why})"));
        let pid = o.pid;
        for ((a, _), x) in self.obs.instances.iter_mut() {
            if *a == key.0 {
                x.drop_restart();
            }
        }
        if let Some(w) = self.wants.get(&key.0) {
            self.obs.abandoned.insert(key.0.clone(), w.spec_hash);
        }
        self.emit(
            EventKind::Failed,
            Some(&key.0),
            Some(key.1),
            None,
            format!("replacement did not become ready ({why}); keeping pid {pid}"),
        );
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
        let mut environ = spec.environ.clone();
        environ.push(("PYPM_INSTANCE".into(), idx.to_string()));
        let program = spec.argv.first().cloned().unwrap_or_default();
        let sp = SpawnSpec {
            program: PathBuf::from(&program),
            argv: spec.argv.clone(),
            env: environ,
            cwd: spec.app.cwd.clone(),
            nofile: spec.app.nofile,
            nice: (spec.app.nice != 0).then_some(spec.app.nice),
            user: spec.app.user.clone().filter(|_| process::is_root()),
            ..SpawnSpec::default()
        };
        let hash = self.wants.get(app).map_or(0, |w| w.spec_hash);
        let inst = self.instance_mut(app, idx);
        // A roll or a fresh start after a failure counts restarts afresh.
        let roll =
            inst.restart_asked() || inst.runs_other_spec(hash) || inst.state == State::Failed;
        inst.record_start(hash);
        let mut sp = sp;
        match self.listen_fds(&spec.app) {
            Ok(fds) => sp.listen_fds = fds,
            Err(reason) => {
                let inst = self.instance_mut(app, idx);
                inst.transition(State::Failed);
                inst.reason = Some(reason.clone());
                self.emit(EventKind::Failed, Some(app), Some(idx), None, reason);
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
            match crate::probes::notify_socket(&path) {
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
            roll,
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
            sp,
            notify,
            roll,
            cgroup,
        } = p;
        let cgroup = cgroup.map(|mut cg| {
            cg.close_procs();
            cg
        });
        let app = app.as_str();
        let log_dir = self.desired.config.pypm.log_dir.clone();
        let multi = spec.app.instances > 1;
        let inst = self.instance_mut(app, idx);
        if roll {
            inst.attempt = 0;
            inst.recent_restarts.clear();
        }
        let was_started = inst.ever_started;
        match result {
            Ok(child) => {
                if let Some(cg) = cgroup {
                    self.proc_cgroups.insert(child.pid, (cg, 0));
                }
                let inst = self.instance_mut(app, idx);
                inst.pid = Some(child.pid);
                inst.start_ticks = Some(child.start_time);
                inst.started_at = Some(now);
                inst.started_wall = Some(std::time::SystemTime::now());
                inst.ever_started = true;
                inst.retry_at = None;
                inst.stop_intent = None;
                inst.kill_at = None;
                if was_started {
                    inst.restarts += 1;
                }
                // Without a readiness probe an instance is ready once spawned.
                match &spec.app.ready {
                    Some(p) => {
                        inst.transition(State::Starting);
                        inst.ready = false;
                        inst.ready_deadline = Some(now + p.timeout);
                    }
                    None => {
                        inst.transition(State::Running);
                        inst.ready = true;
                    }
                }
                inst.reason = None;
                let pid = child.pid;
                let target = crate::probes::Target {
                    app: app.to_string(),
                    idx,
                    pid,
                    cwd: spec.app.cwd.clone(),
                    env: sp.env.clone(),
                };
                let mut taps: Vec<Option<crate::logs::Tap>> = vec![None, None];
                if let Some(p) = &spec.app.ready {
                    if let crate::config::ProbeCheck::Log(re) = &p.check {
                        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
                        for t in taps.iter_mut() {
                            *t = Some(crate::probes::log_tap(
                                re.0.clone(),
                                fired.clone(),
                                &target,
                                self.probe_report(),
                            ));
                        }
                    } else {
                        self.start_probe(p, crate::probes::Which::Ready, &target, notify.as_ref());
                    }
                    let key = (app.to_string(), idx);
                    match spec.app.health.as_ref().zip(notify.as_ref()) {
                        Some((h, sock)) if h.check == crate::config::ProbeCheck::Notify => {
                            if let Ok(sock) = sock.try_clone() {
                                self.health_notify.insert(key, sock);
                            }
                        }
                        _ => {
                            self.health_notify.remove(&key);
                        }
                    }
                } else if let Some(h) = &spec.app.health {
                    self.start_probe(h, crate::probes::Which::Health, &target, notify.as_ref());
                }
                self.by_pid.insert(pid, (app.to_string(), idx));
                let inst_no = multi.then_some(idx);
                let mut taps = taps.into_iter();
                for (fd, stream) in [(child.stdout, Stream::Out), (child.stderr, Stream::Err)] {
                    let target = LogTarget {
                        path: log_dir.join(log_file_name(app, inst_no, stream)),
                        max_size: spec.app.log_max_size,
                        max_files: spec.app.log_max_files,
                        timestamps: spec.app.log_timestamps,
                    };
                    let path = target.path.clone();
                    match self.pump.add(fd, target, taps.next().flatten()) {
                        Ok(id) => self
                            .log_pipes
                            .entry(pid)
                            .or_default()
                            .push((id, stream, path)),
                        Err(e) => log::error!("cannot capture the output of {app}.{idx}: {e}"),
                    }
                }
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
                let inst = self.instance_mut(app, idx);
                inst.transition(State::Failed);
                inst.reason = Some(format!("cannot start: {e}"));
                inst.pid = None;
                let reason = format!("cannot start: {e}");
                self.emit(EventKind::Failed, Some(app), Some(idx), None, reason);
            }
        }
    }

    /// The app's `listen` sockets, bound now if they are not yet.
    pub(super) fn listen_fds(
        &mut self,
        app: &crate::config::App,
    ) -> Result<Vec<(std::os::fd::RawFd, String)>, String> {
        use std::os::fd::{AsRawFd, OwnedFd};
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
