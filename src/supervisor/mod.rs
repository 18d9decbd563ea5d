//! The supervisor: one owner of state, one inbox, a pure planner.
//!
//! Everything that happens — a child exited, a signal, a control request, a log notice — arrives
//! in one channel as an [`Event`]. The loop updates the observed state, asks [`plan::plan`] what
//! to do, performs those actions (spawn, signal), and sleeps until the next event or the earliest
//! deadline the planner named. No polling: an idle supervisor sleeps in `recv`.
//!
//! Children are forked from the loop's own thread, which lives as long as the supervisor, so
//! their `PR_SET_PDEATHSIG` fires only when the supervisor dies.

pub mod diff;
pub mod persist;
pub mod plan;
mod report;
pub mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::control::protocol::{Request, Response};
use crate::control::server::{Server, Stopper};
use crate::logs::{LogNotice, LogPump, LogTarget, Stream, log_file_name};
use crate::process::{self, Exit, Reaper, Signal, SpawnSpec};
use crate::python_env::HostEnv;
use crate::resolve::{self, Desired};
use persist::{EventLog, EventRecord, SavedInstance, SavedState};
use plan::{Action, Observed, Want};
use state::{Instance, State};

/// What the loop reacts to.
pub enum Event {
    Exit(Exit),
    Signal(i32),
    Control(Request, Sender<Response>),
    Log(LogNotice),
    Probe(crate::probes::ProbeResult),
    /// A watched path changed (the config file, an env file, or an app's `watch` glob).
    FileChanged(PathBuf),
}

/// Per pid: its tree's usage and CPU % since the previous sample.
type UsageByPid = HashMap<i32, (process::Usage, Option<f64>)>;

/// An instance about to be spawned (see `Supervisor::start_batch`).
struct PreparedStart {
    app: String,
    idx: u32,
    spec: resolve::AppSpec,
    sp: SpawnSpec,
    notify: Option<std::os::unix::net::UnixDatagram>,
    roll: bool,
}

/// How the supervisor was started.
pub struct Options {
    pub config_path: PathBuf,
    /// How the file is shown in messages.
    pub display: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", .0.render())]
    Config(crate::config::ConfigError),
    #[error("a supervisor is already running for `{0}`")]
    AlreadyRunning(String),
    #[error("cannot start the supervisor: {0}")]
    Io(String),
}

struct Supervisor {
    opts: Options,
    host: HostEnv,
    desired: Desired,
    wants: IndexMap<String, Want>,
    obs: Observed,
    by_pid: HashMap<i32, (String, u32)>,
    config_error: Option<crate::config::ConfigError>,
    events: EventLog,
    pump: LogPump,
    state_dir: PathBuf,
    /// CPU seconds and time of the previous sample, per pid, for CPU %.
    cpu_prev: HashMap<i32, (f64, Instant)>,
    /// The latest /proc sample and when it was taken.
    usage_cache: Option<(Instant, UsageByPid)>,
    signals_seen: u32,
    dirty: bool,
    reaper: Reaper,
    inbox: Sender<Event>,
    /// Running probes per instance; dropping a handle stops its thread.
    probes: HashMap<(String, u32), Vec<crate::probes::ProbeHandle>>,
    watcher: Option<notify::RecommendedWatcher>,
    /// `listen` sockets, bound once by the supervisor and passed to every instance; they stay
    /// bound across restarts and reloads until no app declares them.
    sockets: HashMap<crate::config::Listen, std::os::fd::OwnedFd>,
    /// Debounced: reload the file at this time.
    reload_at: Option<Instant>,
    /// Debounced: restart these apps (their `watch` globs matched) at these times.
    restart_at: HashMap<String, Instant>,
}

fn wants_of(d: &Desired) -> IndexMap<String, Want> {
    d.apps
        .iter()
        .map(|(n, s)| (n.clone(), Want::from_app(&s.app)))
        .collect()
}

/// Runs the supervisor for a file until it is told to stop. Returns once every app is stopped.
pub fn run(opts: Options) -> Result<(), StartError> {
    let host = HostEnv::from_process();
    let desired =
        resolve::load(&opts.config_path, &opts.display, &host).map_err(StartError::Config)?;
    let state_dir = desired.config.pypm.state_dir.clone();
    let server = Server::bind(&state_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            StartError::AlreadyRunning(opts.display.clone())
        } else {
            StartError::Io(format!(
                "cannot bind the control socket in `{}`: {e}",
                state_dir.display()
            ))
        }
    })?;
    let stopper = server.stopper();
    persist::kill_leftovers(&state_dir);
    persist::write_pid(&state_dir)
        .map_err(|e| StartError::Io(format!("cannot write the pid file: {e}")))?;
    if let Err(e) = std::fs::create_dir_all(&desired.config.pypm.log_dir) {
        return Err(StartError::Io(format!(
            "cannot create the log directory `{}`: {e}",
            desired.config.pypm.log_dir.display()
        )));
    }

    let (tx, rx) = mpsc::channel::<Event>();
    let exits = tx.clone();
    let reaper = Reaper::start(move |e| {
        let _ = exits.send(Event::Exit(e));
    })
    .map_err(|e| StartError::Io(format!("cannot start the child reaper: {e}")))?;
    let logs_tx = tx.clone();
    let pump = LogPump::start(move |n| {
        let _ = logs_tx.send(Event::Log(n));
    })
    .map_err(|e| StartError::Io(format!("cannot start the log pump: {e}")))?;
    start_signal_thread(tx.clone())?;
    let control_tx = std::sync::Mutex::new(tx.clone());
    let handler: crate::control::server::Handler = Arc::new(move |req: Request| {
        let (reply_tx, reply_rx) = mpsc::channel();
        let sent = control_tx
            .lock()
            .map(|t| t.send(Event::Control(req, reply_tx)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Response::Error {
                message: "the supervisor is shutting down".into(),
                code: 1,
            };
        }
        reply_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or(Response::Error {
                message: "the supervisor did not answer in time".into(),
                code: 1,
            })
    });
    server
        .serve(handler)
        .map_err(|e| StartError::Io(format!("cannot serve the control socket: {e}")))?;

    let mut sup = Supervisor {
        wants: wants_of(&desired),
        desired,
        host,
        opts,
        obs: Observed::default(),
        by_pid: HashMap::new(),
        config_error: None,
        events: EventLog::open(&state_dir),
        pump,
        state_dir,
        cpu_prev: HashMap::new(),
        usage_cache: None,
        signals_seen: 0,
        dirty: true,
        reaper: reaper.clone(),
        inbox: tx.clone(),
        probes: HashMap::new(),
        watcher: None,
        sockets: HashMap::new(),
        reload_at: None,
        restart_at: HashMap::new(),
    };
    sup.rewatch();
    log::info!(
        "supervising `{}` ({} apps), pid {}",
        sup.opts.display,
        sup.desired.apps.len(),
        std::process::id()
    );
    sup.run_loop(&rx, &reaper);
    sup.finish(&stopper);
    Ok(())
}

fn start_signal_thread(tx: Sender<Event>) -> Result<(), StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| StartError::Io(format!("cannot install signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("pypm-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if tx.send(Event::Signal(s)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| StartError::Io(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

impl Supervisor {
    fn run_loop(&mut self, rx: &Receiver<Event>, _reaper: &Reaper) {
        loop {
            let now = Instant::now();
            self.fire_timers(now);
            let (actions, wake) = plan::plan(&self.wants, &self.obs, now);
            let wake = [
                wake,
                self.reload_at,
                self.restart_at.values().min().copied(),
            ]
            .into_iter()
            .flatten()
            .min();
            if !actions.is_empty() {
                let n = actions.len();
                let mut starts = Vec::new();
                for a in actions {
                    match a {
                        Action::Start { app, idx } => starts.push((app, idx)),
                        other => self.apply(other, now),
                    }
                }
                if !starts.is_empty() {
                    self.dirty = true;
                    self.start_batch(&starts, now);
                }
                log::debug!(
                    "planned and applied {n} actions in {:.2} ms",
                    now.elapsed().as_secs_f64() * 1000.0
                );
                continue;
            }
            if self.obs.shutting_down && !self.obs.instances.values().any(Instance::has_any_process)
            {
                return;
            }
            if self.dirty {
                self.save();
            }
            let event = match wake {
                Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                    Ok(e) => e,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(e) => e,
                    Err(_) => return,
                },
            };
            self.handle(event);
            // Take everything already queued before planning again (a burst of exits).
            while let Ok(e) = rx.try_recv() {
                self.handle(e);
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exit(e) => self.on_exit(e),
            Event::Signal(s) => self.on_signal(s),
            Event::Control(req, reply) => {
                let resp = self.on_request(req);
                let _ = reply.send(resp);
            }
            Event::Log(n) => self.on_log(n),
            Event::Probe(r) => self.on_probe(r),
            Event::FileChanged(p) => {
                let m = crate::watch::classify(&self.desired, &p);
                let at = Instant::now() + crate::watch::DEBOUNCE;
                if m.reload {
                    self.reload_at = Some(at);
                }
                for app in m.apps {
                    self.restart_at.insert(app, at);
                }
            }
        }
    }

    fn on_signal(&mut self, s: i32) {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        match s {
            SIGHUP => {
                log::info!("SIGHUP: reloading `{}`", self.opts.display);
                let _ = self.reload();
            }
            SIGTERM | SIGINT => {
                self.signals_seen += 1;
                if self.signals_seen == 1 {
                    log::info!("stopping every app (signal again to kill at once)");
                    self.obs.shutting_down = true;
                } else {
                    log::warn!("second signal: killing every app now");
                    self.kill_all();
                    std::process::exit(0);
                }
            }
            _ => {}
        }
    }

    fn kill_all(&mut self) {
        for i in self.obs.instances.values() {
            if let (Some(pid), Some(start)) = (i.pid, i.start_ticks) {
                let _ = process::signal_group_checked(pid, start, Signal::SIGKILL);
            }
            if let Some(o) = &i.old
                && let Some(st) = o.start_ticks
            {
                let _ = process::signal_group_checked(o.pid, st, Signal::SIGKILL);
            }
        }
        for i in self.obs.instances.values_mut() {
            i.pid = None;
            i.state = State::Stopped;
        }
        self.save();
    }

    fn on_log(&mut self, n: LogNotice) {
        match n {
            LogNotice::DiskFull { path } => self.emit(
                "log_error",
                None,
                None,
                None,
                format!(
                    "disk full writing `{}`; output is held back until space returns",
                    path.display()
                ),
            ),
            LogNotice::Error { path, message } => self.emit(
                "log_error",
                None,
                None,
                None,
                format!("cannot write `{}`: {message}", path.display()),
            ),
            LogNotice::Resumed { path } => {
                log::info!("writing `{}` again", path.display());
            }
            LogNotice::Closed { .. } => {}
        }
    }

    fn emit(
        &mut self,
        event: &str,
        app: Option<&str>,
        idx: Option<u32>,
        pid: Option<i32>,
        detail: String,
    ) {
        self.events
            .append(&EventRecord::new(event, app, idx, pid, detail));
    }

    fn on_exit(&mut self, e: Exit) {
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

    fn apply(&mut self, action: Action, now: Instant) {
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
                    .and_then(|s| process::parse_signal(&s.app.stop_signal).ok())
                    .unwrap_or(Signal::SIGTERM);
                let Some(i) = self.obs.instances.get_mut(&(app.clone(), idx)) else {
                    return;
                };
                i.state = State::Stopping;
                i.stop_intent = Some(intent);
                i.kill_at = Some(now + timeout);
                if let (Some(pid), Some(start)) = (i.pid, i.start_ticks) {
                    log::info!("stopping {app}.{idx} (pid {pid}) with {sig}");
                    if !process::signal_group_checked(pid, start, sig).unwrap_or(false) {
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
                        let _ = process::signal_group_checked(pid, start, Signal::SIGKILL);
                    }
                }
            }
            Action::ReadyTimeout { app, idx } => {
                let timeout = self
                    .desired
                    .apps
                    .get(&app)
                    .and_then(|s| s.app.ready.as_ref())
                    .map(|p| p.timeout)
                    .unwrap_or_default();
                if let Some(i) = self.obs.instances.get_mut(&(app.clone(), idx)) {
                    i.ready_deadline = None;
                    i.fail_reason = Some(format!(
                        "not ready within {}",
                        crate::config::units::format_duration(timeout)
                    ));
                    if let (Some(pid), Some(start)) = (i.pid, i.start_ticks) {
                        log::warn!("{app}.{idx} (pid {pid}) was not ready in time: SIGKILL");
                        let _ = process::signal_group_checked(pid, start, Signal::SIGKILL);
                    }
                }
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
                    let gone = o.start_ticks.is_none_or(|st| {
                        !process::signal_group_checked(o.pid, st, sig).unwrap_or(false)
                    });
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
                        let _ = process::signal_group_checked(o.pid, st, Signal::SIGKILL);
                    }
                }
            }
            Action::Wait { app, idx, reason } => {
                let i = self.instance_mut(&app, idx);
                i.state = State::Waiting;
                i.reason = Some(reason);
            }
            Action::Settle { app, idx, reason } => {
                let i = self.instance_mut(&app, idx);
                i.state = State::Stopped;
                i.reason = Some(reason);
            }
            Action::Forget { app, idx } => {
                self.obs.instances.shift_remove(&(app, idx));
            }
        }
    }

    fn stop_params(&self, app: &str) -> (Duration, Signal) {
        let spec = self.desired.apps.get(app);
        let timeout = spec.map_or(Duration::from_secs(10), |s| s.app.stop_timeout);
        let sig = spec
            .and_then(|s| process::parse_signal(&s.app.stop_signal).ok())
            .unwrap_or(Signal::SIGTERM);
        (timeout, sig)
    }

    /// A replacement failed before it was ready: the old process stays the instance's process,
    /// and the app's roll stops here.
    fn keep_old(&mut self, key: &(String, u32), why: &str) {
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
        i.state = State::Running;
        i.ready = true;
        i.ready_deadline = None;
        i.reason = Some(format!("roll stopped: the replacement failed ({why})"));
        let pid = o.pid;
        for ((a, _), x) in self.obs.instances.iter_mut() {
            if *a == key.0 {
                x.roll_requested = false;
            }
        }
        self.emit(
            "failed",
            Some(&key.0),
            Some(key.1),
            None,
            format!("replacement did not become ready ({why}); keeping pid {pid}"),
        );
    }

    fn instance_mut(&mut self, app: &str, idx: u32) -> &mut Instance {
        self.obs
            .instances
            .entry((app.to_string(), idx))
            .or_insert_with(|| Instance::new(app, idx))
    }

    fn start(&mut self, app: &str, idx: u32, now: Instant) {
        self.start_batch(&[(app.to_string(), idx)], now);
    }

    /// Starts several instances: all are forked first, then each exec's outcome is collected, so
    /// a wave of apps starts in parallel.
    fn start_batch(&mut self, which: &[(String, u32)], now: Instant) {
        let mut prepared = Vec::with_capacity(which.len());
        for (app, idx) in which {
            if let Some(p) = self.prepare_start(app, *idx) {
                prepared.push(p);
            }
        }
        let specs: Vec<SpawnSpec> = prepared.iter().map(|p| p.sp.clone()).collect();
        let results = process::spawn_batch(&specs);
        for (p, result) in prepared.into_iter().zip(results) {
            self.finish_start(p, result, now);
        }
    }

    fn prepare_start(&mut self, app: &str, idx: u32) -> Option<PreparedStart> {
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
            user: spec
                .app
                .user
                .clone()
                .filter(|_| nix::unistd::geteuid().is_root()),
            ..SpawnSpec::default()
        };
        let roll = self
            .obs
            .instances
            .get(&(app.to_string(), idx))
            .is_some_and(|i| i.roll_requested || i.state == State::Failed);
        let mut sp = sp;
        match self.listen_fds(&spec.app) {
            Ok(fds) => sp.listen_fds = fds,
            Err(reason) => {
                let inst = self.instance_mut(app, idx);
                inst.state = State::Failed;
                inst.reason = Some(reason.clone());
                inst.roll_requested = false;
                self.emit("failed", Some(app), Some(idx), None, reason);
                return None;
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
        })
    }

    fn finish_start(
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
        } = p;
        let app = app.as_str();
        let log_dir = self.desired.config.pypm.log_dir.clone();
        let multi = spec.app.instances > 1;
        let inst = self.instance_mut(app, idx);
        if roll {
            inst.attempt = 0;
            inst.recent_restarts.clear();
        }
        inst.roll_requested = false;
        let was_started = inst.ever_started;
        match result {
            Ok(child) => {
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
                        inst.state = State::Starting;
                        inst.ready = false;
                        inst.ready_deadline = Some(now + p.timeout);
                    }
                    None => {
                        inst.state = State::Running;
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
                        if let Ok(re) = regex::Regex::new(re) {
                            let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
                            for t in taps.iter_mut() {
                                *t = Some(crate::probes::log_tap(
                                    re.clone(),
                                    fired.clone(),
                                    &target,
                                    self.probe_report(),
                                ));
                            }
                        }
                    } else {
                        self.start_probe(p, crate::probes::Which::Ready, &target, notify.as_ref());
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
                    if let Err(e) = self.pump.add(fd, target, taps.next().flatten()) {
                        log::error!("cannot capture the output of {app}.{idx}: {e}");
                    }
                }
                self.emit(
                    "started",
                    Some(app),
                    Some(idx),
                    Some(pid),
                    shell_words::join(&spec.argv),
                );
                if spec.app.ready.is_none() {
                    self.emit(
                        "ready",
                        Some(app),
                        Some(idx),
                        Some(pid),
                        "no readiness probe".into(),
                    );
                }
            }
            Err(e) => {
                inst.state = State::Failed;
                inst.reason = Some(format!("cannot start: {e}"));
                inst.pid = None;
                let reason = format!("cannot start: {e}");
                self.emit("failed", Some(app), Some(idx), None, reason);
            }
        }
    }

    /// The app's `listen` sockets, bound now if they are not yet.
    fn listen_fds(
        &mut self,
        app: &crate::config::App,
    ) -> Result<Vec<(std::os::fd::RawFd, String)>, String> {
        use std::os::fd::{AsRawFd, OwnedFd};
        let mut out = Vec::new();
        for l in &app.listen {
            if !self.sockets.contains_key(l) {
                let fd: OwnedFd = match l {
                    crate::config::Listen::Tcp(addr) => std::net::TcpListener::bind(addr.as_str())
                        .map(OwnedFd::from)
                        .map_err(|e| format!("cannot listen on {l}: {e}"))?,
                    crate::config::Listen::Unix(path) => {
                        // A socket file left by an earlier run is replaced; anything else is not.
                        if std::fs::symlink_metadata(path).is_ok_and(|m| {
                            use std::os::unix::fs::FileTypeExt;
                            m.file_type().is_socket()
                        }) {
                            let _ = std::fs::remove_file(path);
                        }
                        std::os::unix::net::UnixListener::bind(path)
                            .map(OwnedFd::from)
                            .map_err(|e| format!("cannot listen on {l}: {e}"))?
                    }
                };
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
    fn prune_sockets(&mut self) {
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

    /// (Re)starts the file watcher for the current desired state.
    fn rewatch(&mut self) {
        self.watcher = None;
        let dirs = crate::watch::watch_list(&self.desired);
        if dirs.is_empty() {
            return;
        }
        let tx = std::sync::Mutex::new(self.inbox.clone());
        match crate::watch::start(&dirs, move |p| {
            if let Ok(t) = tx.lock() {
                let _ = t.send(Event::FileChanged(p));
            }
        }) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => log::warn!("cannot watch files: {e}; use `pypm reload` after editing"),
        }
    }

    /// Debounced file changes whose time has come.
    fn fire_timers(&mut self, now: Instant) {
        if self.reload_at.is_some_and(|t| t <= now) {
            self.reload_at = None;
            // A file briefly missing or empty mid-save is never applied: the save that
            // completes it triggers another reload.
            let complete = std::fs::metadata(&self.opts.config_path).is_ok_and(|m| m.len() > 0);
            if complete {
                log::info!("`{}` changed: reloading", self.opts.display);
                let _ = self.reload();
            } else {
                log::info!(
                    "`{}` is missing or empty (mid-save?): waiting for the next save",
                    self.opts.display
                );
            }
        }
        let due: Vec<String> = self
            .restart_at
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(a, _)| a.clone())
            .collect();
        for app in due {
            self.restart_at.remove(&app);
            log::info!("watched files of `{app}` changed: restarting it");
            for ((a, _), i) in self.obs.instances.iter_mut() {
                if *a == app && i.is_live() {
                    i.roll_requested = true;
                }
            }
        }
    }

    fn probe_report(&self) -> crate::probes::Report {
        let tx = std::sync::Mutex::new(self.inbox.clone());
        Arc::new(move |r| {
            if let Ok(t) = tx.lock() {
                let _ = t.send(Event::Probe(r));
            }
        })
    }

    fn start_probe(
        &mut self,
        p: &crate::config::Probe,
        which: crate::probes::Which,
        target: &crate::probes::Target,
        notify: Option<&std::os::unix::net::UnixDatagram>,
    ) {
        let sock = notify.and_then(|s| s.try_clone().ok());
        let attempt = match which {
            crate::probes::Which::Ready => p.interval.min(Duration::from_secs(5)),
            crate::probes::Which::Health => p.timeout,
        };
        let spec = crate::probes::Spec {
            check: p.check.clone(),
            which,
            interval: p.interval,
            attempt_timeout: attempt,
        };
        match crate::probes::start(
            spec,
            target.clone(),
            self.reaper.clone(),
            sock,
            self.probe_report(),
        ) {
            Ok(h) => self
                .probes
                .entry((target.app.clone(), target.idx))
                .or_default()
                .push(h),
            Err(e) => log::error!(
                "cannot start a probe for {}.{}: {e}",
                target.app,
                target.idx
            ),
        }
    }

    fn on_probe(&mut self, r: crate::probes::ProbeResult) {
        use crate::probes::Which;
        let key = (r.app.clone(), r.idx);
        let Some(spec) = self.desired.apps.get(&r.app).cloned() else {
            return;
        };
        let Some(inst) = self.obs.instances.get_mut(&key) else {
            return;
        };
        if inst.pid != Some(r.pid) {
            return; // a result about a process that is gone
        }
        match r.which {
            Which::Ready if r.ok && inst.state == State::Starting => {
                inst.state = State::Running;
                inst.ready = true;
                inst.ready_deadline = None;
                self.dirty = true;
                self.probes.remove(&key);
                self.emit("ready", Some(&r.app), Some(r.idx), Some(r.pid), r.detail);
                if let Some(h) = &spec.app.health {
                    let target = crate::probes::Target {
                        app: r.app.clone(),
                        idx: r.idx,
                        pid: r.pid,
                        cwd: spec.app.cwd.clone(),
                        env: spec.environ.clone(),
                    };
                    self.start_probe(h, Which::Health, &target, None);
                }
            }
            Which::Ready => {
                if !r.ok {
                    log::debug!("{}.{} not ready yet: {}", r.app, r.idx, r.detail);
                }
            }
            Which::Health if r.ok => inst.health_failures = 0,
            Which::Health => {
                inst.health_failures += 1;
                let limit = spec.app.health.as_ref().map_or(3, |h| h.failures);
                log::warn!(
                    "{}.{} health check failed ({}/{limit}): {}",
                    r.app,
                    r.idx,
                    inst.health_failures,
                    r.detail
                );
                if inst.health_failures >= limit && !inst.roll_requested {
                    inst.health_failures = 0;
                    inst.roll_requested = true;
                    inst.history.push_back((
                        std::time::SystemTime::now(),
                        format!("unhealthy: {}", r.detail),
                    ));
                    self.dirty = true;
                    self.emit(
                        "unhealthy",
                        Some(&r.app),
                        Some(r.idx),
                        Some(r.pid),
                        format!(
                            "{limit} consecutive health check failures; restarting: {}",
                            r.detail
                        ),
                    );
                }
            }
        }
    }

    fn on_request(&mut self, req: Request) -> Response {
        match req {
            Request::Ping => Response::Pong {
                pid: std::process::id(),
                config_file: self.opts.config_path.display().to_string(),
            },
            Request::Status { app, light } => match self.check_app(app.as_deref()) {
                Some(err) => err,
                None => Response::Status(self.status(app.as_deref(), light)),
            },
            Request::Inspect { app } => match self.check_app(Some(&app)) {
                Some(err) => err,
                None => Response::Inspect(Box::new(self.inspect(&app))),
            },
            Request::Restart { app } => {
                if let Some(err) = self.check_app(app.as_deref()) {
                    return err;
                }
                let mut n = 0;
                for ((a, _), i) in self.obs.instances.iter_mut() {
                    if app.as_deref().is_none_or(|x| x == a)
                        && self.wants.get(a).is_some_and(|w| w.enabled)
                    {
                        i.roll_requested = true;
                        n += 1;
                    }
                }
                let what = app.map_or("every app".to_string(), |a| format!("`{a}`"));
                Response::Done {
                    message: format!("restarting {what} ({n} instances, one at a time)"),
                }
            }
            Request::Reload => self.reload(),
            Request::Plan => self.plan_report(),
            Request::Shutdown => {
                self.obs.shutting_down = true;
                Response::Done {
                    message: "stopping every app".into(),
                }
            }
        }
    }

    fn check_app(&self, app: Option<&str>) -> Option<Response> {
        let a = app?;
        if self.desired.apps.contains_key(a) {
            return None;
        }
        let hint = crate::diagnostic::did_you_mean(a, self.desired.apps.keys().map(String::as_str))
            .map(|h| format!("\n\n{h}"))
            .unwrap_or_default();
        Some(Response::Error {
            message: format!("error: no app named `{a}` in `{}`{hint}", self.opts.display),
            code: 1,
        })
    }

    fn load_file(&self) -> Result<Desired, crate::config::ConfigError> {
        resolve::load(&self.opts.config_path, &self.opts.display, &self.host)
    }

    fn plan_report(&self) -> Response {
        match self.load_file() {
            Ok(new) => Response::Plan(crate::control::protocol::PlanReport {
                config_file: self.opts.display.clone(),
                running: true,
                changes: diff::diff(&self.desired.apps, &new.apps)
                    .iter()
                    .map(|(a, c)| c.to_plan(a))
                    .collect(),
            }),
            Err(e) => Response::Error {
                message: format!(
                    "error: `{}` is invalid; nothing would change\n\n{}",
                    e.file,
                    e.render().trim_end()
                ),
                code: 1,
            },
        }
    }

    /// Reads the file and applies the difference; an invalid file changes nothing.
    fn reload(&mut self) -> Response {
        let began = Instant::now();
        let resp = self.reload_inner();
        log::info!(
            "reload took {:.1} ms",
            began.elapsed().as_secs_f64() * 1000.0
        );
        resp
    }

    fn reload_inner(&mut self) -> Response {
        match self.load_file() {
            Err(e) => {
                let (summary, _) = e.summary();
                log::error!(
                    "reload: `{}` is invalid, keeping the running apps\n{}",
                    e.file,
                    e.render()
                );
                self.emit("config_error", None, None, None, summary);
                let message = format!(
                    "error: `{}` is invalid; nothing was changed\n\n{}",
                    e.file,
                    e.render().trim_end()
                );
                self.config_error = Some(e);
                Response::Error { message, code: 1 }
            }
            Ok(new) => {
                let changes = diff::diff(&self.desired.apps, &new.apps);
                for (app, change) in &changes {
                    if let diff::Change::Restart { .. } = change {
                        for ((a, _), i) in self.obs.instances.iter_mut() {
                            if a == app {
                                i.roll_requested = true;
                            }
                        }
                    }
                    if let diff::Change::Start { .. } = change {
                        // A failed or disabled app starts afresh.
                        for ((a, _), i) in self.obs.instances.iter_mut() {
                            if a == app && !i.is_live() {
                                *i = Instance::new(a, i.idx);
                            }
                        }
                    }
                }
                let summary: Vec<String> = changes
                    .iter()
                    .map(|(a, c)| c.to_plan(a).to_string())
                    .collect();
                self.config_error = None;
                self.desired = new;
                self.wants = wants_of(&self.desired);
                self.rewatch();
                self.prune_sockets();
                let detail = if summary.is_empty() {
                    "no changes".to_string()
                } else {
                    summary.join("; ")
                };
                self.emit("config_applied", None, None, None, detail.clone());
                self.dirty = true;
                Response::Done { message: detail }
            }
        }
    }

    fn save(&mut self) {
        self.dirty = false;
        let saved = SavedState {
            pid: std::process::id(),
            config_file: self.opts.config_path.display().to_string(),
            instances: self
                .obs
                .instances
                .values()
                .flat_map(|i| {
                    let old = i.old.as_ref().map(|o| SavedInstance {
                        app: i.app.clone(),
                        instance: i.idx,
                        state: "replaced".into(),
                        pid: Some(o.pid),
                        start_time: o.start_ticks,
                        restarts: i.restarts,
                    });
                    std::iter::once(SavedInstance {
                        app: i.app.clone(),
                        instance: i.idx,
                        state: i.state.as_str().into(),
                        pid: i.pid,
                        start_time: i.start_ticks,
                        restarts: i.restarts,
                    })
                    .chain(old)
                })
                .collect(),
        };
        if let Err(e) = persist::save_state(&self.state_dir, &saved) {
            log::error!("cannot save state.json: {e}");
        }
    }

    fn finish(self, stopper: &Stopper) {
        let Supervisor {
            pump,
            state_dir,
            mut events,
            ..
        } = self;
        events.append(&EventRecord::new(
            "stopped",
            None,
            None,
            None,
            "supervisor stopped",
        ));
        let _ = persist::save_state(
            &state_dir,
            &SavedState {
                pid: std::process::id(),
                config_file: String::new(),
                instances: Vec::new(),
            },
        );
        stopper.stop();
        pump.shutdown();
        let _ = std::fs::remove_file(persist::pid_path(&state_dir));
        log::info!("supervisor stopped");
    }
}

/// Where the log files of an instance are.
pub fn log_paths(log_dir: &Path, app: &str, instance: Option<u32>) -> (PathBuf, PathBuf) {
    (
        log_dir.join(log_file_name(app, instance, Stream::Out)),
        log_dir.join(log_file_name(app, instance, Stream::Err)),
    )
}
