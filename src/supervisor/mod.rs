//! The supervisor: one owner of state, one inbox, a pure planner.
//!
//! Everything that happens — a child exited, a signal, a control request, a log notice — arrives
//! in one channel as an [`Event`]. The loop updates the observed state, asks [`plan::plan`] what
//! to do, performs those actions (spawn, signal), and sleeps until the next event or the earliest
//! deadline the planner named. No polling: an idle supervisor sleeps in `recv`.
//!
//! Children are forked from the loop's own thread, which lives as long as the supervisor, so
//! their `PR_SET_PDEATHSIG` fires only when the supervisor dies.

mod apply;
pub mod diff;
mod effects;
mod exits;
mod history;
mod inputs;
pub mod persist;
pub mod plan;
mod record;
mod report;
mod requests;
mod schedules;
pub mod state;

use crate::config::keys::EventKind;
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
use effects::Effects;
use persist::{EventLog, EventRecord, SavedInstance, SavedState};
use plan::{Action, Key, Observed, Want};
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
    /// The process's own cgroup when its app has `memory_max` or `cpu_max` and cgroups can be
    /// used.
    cgroup: Option<process::cgroup::ProcessCgroup>,
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
    dirty: bool,
    /// Start-up or a reload touched code and heap an idle supervisor does not need: give them
    /// back once nothing is starting (`process::release_startup_memory`).
    release_pending: bool,
    /// When the release is due (set once nothing is starting; a start puts it off).
    release_at: Option<Instant>,
    /// An exit arrived since the last sweep for orphans (`Reaper::sweep_orphans`).
    sweep_due: bool,
    /// A second SIGTERM/SIGINT killed every app: the loop ends without waiting for the exits.
    aborting: bool,
    reaper: Reaper,
    inbox: Sender<Event>,
    /// Running probes per instance; dropping a handle stops its thread.
    probes: HashMap<(String, u32), Vec<crate::probes::ProbeHandle>>,
    /// The notify socket of an instance whose `notify` health probe starts once it is ready (the
    /// readiness probe's thread, which also holds it, ends then).
    health_notify: HashMap<(String, u32), std::os::unix::net::UnixDatagram>,
    /// Each live process's two log pipes in the pump, and the file each writes to.
    log_pipes: HashMap<i32, Vec<(crate::logs::PipeId, Stream, PathBuf)>>,
    /// The watched directories and their watcher.
    watcher: Option<(Vec<(PathBuf, bool)>, notify::RecommendedWatcher)>,
    /// `listen` sockets, bound once by the supervisor and passed to every instance; they stay
    /// bound across restarts and reloads until no app declares them.
    sockets: HashMap<crate::config::Listen, std::os::fd::OwnedFd>,
    /// The first save of the current burst (see `watch::RELOAD_MAX_WAIT`).
    reload_first: Option<Instant>,
    /// The newest valid text of the file seen in the current burst of saves.
    storm_valid: Option<String>,
    /// Each scheduled app's next due time (see `schedules.rs`).
    sched_due: HashMap<String, schedules::Due>,
    /// The wall time of each app's last due run: the next one is counted from it.
    sched_from: HashMap<String, chrono::DateTime<chrono::Utc>>,
    /// When the schedule last started a run of each task.
    last_scheduled: HashMap<String, std::time::SystemTime>,
    /// Every recorded event also goes here (notifiers, StatsD, the HTTP API's event streams).
    bus: crate::bus::EventBus,
    /// The control requests' handler, for the threads that ask the loop (StatsD, HTTP).
    handler: crate::control::server::Handler,
    /// The notifier and StatsD threads of the file's `[[notify]]` and `statsd`.
    outlets: Option<crate::notifiers::Outlets>,
    /// The HTTP server of `[pypm] http`, with the address and `http_public` it was started for.
    http: Option<(String, bool, crate::http::HttpServer)>,
    /// `state_dir/token`.
    token: String,
    /// The supervisor's cgroups for `memory_max`/`cpu_max`: set up when an app first needs them
    /// (outer `None`: not tried yet; inner `None`: not available, limits fall back to sampling).
    cgroups: Option<Option<process::cgroup::Cgroups>>,
    /// Each limited live process's cgroup, and the OOM kills already reported in it.
    proc_cgroups: HashMap<i32, (process::cgroup::ProcessCgroup, u64)>,
    /// Cgroups of exited processes that could not be removed yet (a straggler still inside).
    cgroup_leftovers: Vec<process::cgroup::ProcessCgroup>,
    /// Names each process cgroup uniquely (`APP.IDX.SEQ`).
    cgroup_seq: u64,
    /// `READY=1` was sent to the service manager (`process::sd_notify`).
    told_ready: bool,
    /// Recent samples per instance, kept only while watched (`history.rs`).
    history: history::History,
    /// Every spawn, signal, probe, bind, sample and state write, and the clock.
    fx: Box<dyn Effects>,
}

fn wants_of(d: &Desired) -> IndexMap<String, Want> {
    d.apps
        .iter()
        .map(|(n, s)| (n.clone(), Want::from_spec(s)))
        .collect()
}

/// Runs the supervisor for a file until it is told to stop. Returns once every app is stopped.
pub fn run(opts: Options) -> Result<(), StartError> {
    crate::process::alloc::supervising();
    let host = HostEnv::from_process();
    let desired =
        resolve::load(&opts.config_path, &opts.display, &host).map_err(StartError::Config)?;
    let state_dir = desired.config.pypm.state_dir.clone();
    let server = Server::bind(&state_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            StartError::AlreadyRunning(opts.display.clone())
        } else {
            // sockaddr_un holds 108 bytes with the final NUL: a deep project path hits it.
            let sock = crate::control::server::socket_path(&state_dir);
            let long = sock.as_os_str().len() >= 108;
            StartError::Io(format!(
                "cannot bind the control socket in `{}`: {e}{}",
                state_dir.display(),
                if long {
                    format!(
                        "\n\nits path is {} bytes and Unix sockets allow 107: set a shorter `state_dir` in [pypm] (e.g. an absolute path under /tmp or $XDG_RUNTIME_DIR)",
                        sock.as_os_str().len()
                    )
                } else {
                    String::new()
                }
            ))
        }
    })?;
    let stopper = server.stopper();
    let last_runs = persist::load_state(&state_dir)
        .map(|s| s.last_runs)
        .unwrap_or_default();
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
    // Descendants that leave an app's process group are still ours to stop.
    if let Err(e) = reaper.adopt_orphans() {
        log::warn!("cannot become the reaper of orphaned app processes: {e}");
    }
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
            return Response::error(
                crate::control::protocol::ErrorKind::Unavailable,
                "the supervisor is shutting down",
            );
        }
        reply_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                Response::error(
                    crate::control::protocol::ErrorKind::Unavailable,
                    "the supervisor did not answer in time",
                )
            })
    });
    server
        .serve(opts.config_path.clone(), handler.clone())
        .map_err(|e| StartError::Io(format!("cannot serve the control socket: {e}")))?;

    let bus = crate::bus::EventBus::new();
    let token = crate::http::token::ensure(&state_dir).map_err(|e| {
        StartError::Io(format!(
            "cannot write `{}`: {e}",
            crate::http::token::path(&state_dir).display()
        ))
    })?;
    let events_max = (
        desired.config.pypm.events_max_size,
        desired.config.pypm.events_max_files,
    );
    let mut sup = Supervisor {
        wants: wants_of(&desired),
        desired,
        host,
        opts,
        obs: Observed::default(),
        by_pid: HashMap::new(),
        config_error: None,
        events: EventLog::open(&state_dir, bus.clone(), events_max.0, events_max.1),
        pump,
        state_dir,
        cpu_prev: HashMap::new(),
        usage_cache: None,
        dirty: true,
        release_pending: true,
        release_at: None,
        sweep_due: false,
        aborting: false,
        reaper: reaper.clone(),
        inbox: tx.clone(),
        probes: HashMap::new(),
        health_notify: HashMap::new(),
        log_pipes: HashMap::new(),
        watcher: None,
        sockets: HashMap::new(),
        reload_first: None,
        storm_valid: None,
        sched_due: HashMap::new(),
        sched_from: HashMap::new(),
        last_scheduled: HashMap::new(),
        bus,
        handler,
        outlets: None,
        http: None,
        token,
        cgroups: None,
        proc_cgroups: HashMap::new(),
        cgroup_leftovers: Vec::new(),
        cgroup_seq: 0,
        told_ready: false,
        history: history::History::default(),
        fx: Box::new(effects::RealEffects { reaper }),
    };
    sup.restore_schedules(&last_runs, Instant::now());
    sup.rewatch();
    // Before anything is spawned: on cgroup v2 the supervisor moves into a cgroup of its own,
    // which only works while no other process shares its cgroup.
    if sup
        .desired
        .apps
        .values()
        .any(|a| a.app.memory_max.is_some() || a.app.cpu_max.is_some())
    {
        sup.cgroups();
    }
    sup.restart_outlets();
    if let Err(e) = sup.restart_http() {
        stopper.stop();
        return Err(StartError::Io(e));
    }
    let n = sup.desired.apps.len();
    log::info!(
        "supervising `{}` ({n} app{}), pid {}",
        sup.opts.display,
        if n == 1 { "" } else { "s" },
        std::process::id()
    );
    sup.run_loop(&rx);
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

/// What the loop does once settled (`Supervisor::settle`).
enum Idle {
    /// Every app has stopped (or was killed): the supervisor ends.
    Done,
    /// Sleep until the next event, or until this deadline.
    Until(Option<Instant>),
}

/// How long a settled supervisor waits before it gives start-up memory back.
const RELEASE_AFTER: Duration = Duration::from_millis(500);

impl Supervisor {
    fn run_loop(&mut self, rx: &Receiver<Event>) {
        loop {
            let event = match self.settle() {
                Idle::Done => return,
                Idle::Until(Some(t)) => {
                    match rx.recv_timeout(t.saturating_duration_since(self.fx.now())) {
                        Ok(e) => e,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                Idle::Until(None) => match rx.recv() {
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

    /// Plans and applies until the planner has nothing left to do at this moment, then does
    /// the idle work (events and state written, orphans swept, readiness told, memory given
    /// back): whether the loop is over, or until when it may sleep if no event comes.
    fn settle(&mut self) -> Idle {
        loop {
            let now = self.fx.now();
            self.sample_history(now);
            self.refresh_schedules(now);
            let (actions, wake) = plan::plan(&self.wants, &self.obs, now);
            let wake = [wake, self.history.wake_at()].into_iter().flatten().min();
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
                if self.aborting {
                    return Idle::Done;
                }
                log::debug!(
                    "planned and applied {n} actions in {:.2} ms",
                    self.fx.now().saturating_duration_since(now).as_secs_f64() * 1000.0
                );
                continue;
            }
            if self.obs.shutting_down && !self.obs.instances.values().any(Instance::has_any_process)
            {
                return Idle::Done;
            }
            self.events.flush();
            if std::mem::take(&mut self.sweep_due) {
                self.reaper.sweep_orphans();
                self.cgroup_leftovers.retain(|cg| !cg.remove());
            }
            if self.dirty {
                self.save();
            }
            let starting = self
                .obs
                .instances
                .values()
                .any(|i| i.state() == State::Starting);
            if !starting && !std::mem::replace(&mut self.told_ready, true) {
                // systemd `Type=notify`: up once nothing is starting (as `up -d` returns).
                self.fx.tell_ready();
            }
            let mut wake = wake;
            if self.release_pending {
                if starting {
                    self.release_at = None;
                } else {
                    // Once nothing has started for RELEASE_AFTER: what settling itself runs
                    // (the last answers to `up -d`, the first samples, state and event writes)
                    // would fault the code back in right after an earlier release.
                    let at = *self.release_at.get_or_insert(now + RELEASE_AFTER);
                    if now >= at {
                        self.release_pending = false;
                        self.release_at = None;
                        self.fx.release_memory();
                    } else {
                        wake = Some(wake.map_or(at, |w| w.min(at)));
                    }
                }
            }
            return Idle::Until(wake);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exit(e) => {
                // A death orphans the dead process's children: look for them once idle.
                self.sweep_due = true;
                self.on_exit(e);
            }
            Event::Signal(s) => self.on_signal(s),
            Event::Control(req, reply) => {
                let resp = self.on_request(req);
                self.events.flush();
                let _ = reply.send(resp);
            }
            Event::Log(n) => self.on_log(n),
            Event::Probe(r) => self.on_probe(r),
            Event::FileChanged(p) => {
                let m = crate::watch::classify(&self.desired, &p);
                let now = self.fx.now();
                let at = now + crate::watch::DEBOUNCE;
                if m.reload {
                    // Remember the newest valid version of this burst of saves (a save that
                    // leaves the file invalid must not hide the valid one before it).
                    if let Ok(text) = std::fs::read_to_string(&self.opts.config_path)
                        && !text.is_empty()
                        && crate::resolve::from_source(
                            &text,
                            &self.opts.config_path,
                            &self.opts.display,
                            &self.host,
                        )
                        .is_ok()
                    {
                        self.storm_valid = Some(text);
                    }
                    // Debounced, but a storm of saves is applied at least every
                    // `RELOAD_MAX_WAIT`: the newest version then, valid or not (an invalid one
                    // keeps the last valid one running, and the next save is applied in turn).
                    let first = *self.reload_first.get_or_insert(now);
                    self.obs.reload_at = Some(
                        (now + crate::watch::CONFIG_DEBOUNCE)
                            .min(first + crate::watch::RELOAD_MAX_WAIT),
                    );
                }
                for app in m.apps {
                    self.obs.watch_restart_at.insert(app, at);
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
                // A fact; the planner decides (a second signal: `Action::KillAll`).
                self.obs.stop_signals += 1;
                if self.obs.stop_signals == 1 {
                    log::info!("stopping every app (signal again to kill at once)");
                    self.obs.shutting_down = true;
                } else {
                    log::warn!("second signal: killing every app now");
                }
            }
            _ => {}
        }
    }

    /// The planner's `KillAll` (a second stop signal), recorded: every process is killed now,
    /// not waited for. The loop ends and `finish` still writes the events, state.json and
    /// removes the socket and pid file.
    pub(super) fn kill_all(&mut self, doomed: Vec<(String, u32, i32, u64)>) {
        for (app, idx, pid, start) in doomed {
            if self.fx.signal_group(pid, start, Signal::SIGKILL) {
                self.emit(
                    EventKind::Exited,
                    Some(&app),
                    Some(idx),
                    Some(pid),
                    "signal SIGKILL (the supervisor was told twice to stop)".into(),
                );
            }
        }
        self.save();
    }

    fn on_log(&mut self, n: LogNotice) {
        let (path, problem) = match n {
            LogNotice::DiskFull { path } => {
                let p = format!(
                    "disk full writing `{}`; output is held back until space returns",
                    path.display()
                );
                (path, Some(p))
            }
            LogNotice::Error { path, message } => {
                let p = format!("cannot write `{}`: {message}", path.display());
                (path, Some(p))
            }
            LogNotice::Resumed { path } => {
                log::info!("writing `{}` again", path.display());
                (path, None)
            }
            LogNotice::Closed { .. } => return,
        };
        // Reported once (event), and shown in `status` until the file is written again.
        let owner = self.log_owner(&path);
        if let Some(key) = &owner
            && let Some(i) = self.obs.instances.get_mut(key)
        {
            i.log_problem = problem.clone();
        }
        if let Some(detail) = problem {
            let (app, idx) = owner.map_or((None, None), |(a, i)| (Some(a), Some(i)));
            self.emit(EventKind::LogError, app.as_deref(), idx, None, detail);
        }
    }

    /// The instance whose log file is `path`.
    fn log_owner(&self, path: &Path) -> Option<(String, u32)> {
        let log_dir = &self.desired.config.pypm.log_dir;
        self.obs.instances.keys().find_map(|(app, idx)| {
            let multi = self
                .desired
                .apps
                .get(app)
                .is_some_and(|s| s.app.instances > 1);
            let (out, err) = log_paths(log_dir, app, multi.then_some(*idx));
            (out == path || err == path).then(|| (app.clone(), *idx))
        })
    }

    /// The supervisor's cgroups, set up on first use.
    fn cgroups(&mut self) -> Option<&process::cgroup::Cgroups> {
        if self.cgroups.is_none() {
            let c = process::cgroup::Cgroups::setup();
            match &c {
                Some(c) => log::info!("memory_max/cpu_max: enforced by {}", c.version.name()),
                None => log::info!(
                    "memory_max: enforced by sampling (no cgroup can be created); cpu_max: not enforced"
                ),
            }
            self.cgroups = Some(c);
        }
        self.cgroups.as_ref().and_then(Option::as_ref)
    }

    /// (Re)starts the HTTP server when `[pypm] http` or `http_public` changed. An address that
    /// cannot be bound is an error at start-up; on a reload it is logged and the server is off.
    fn restart_http(&mut self) -> Result<(), String> {
        let p = &self.desired.config.pypm;
        let want = p.http.clone().map(|a| (a, p.http_public));
        let have = self
            .http
            .as_ref()
            .map(|(a, public, _)| (a.clone(), *public));
        if want == have {
            return Ok(());
        }
        self.http = None; // stops the old server
        let Some((addr, public)) = want else {
            return Ok(());
        };
        match crate::http::HttpServer::start(
            &addr,
            public,
            self.token.clone(),
            self.handler.clone(),
            self.bus.clone(),
        ) {
            Ok(server) => {
                log::info!(
                    "dashboard, HTTP API and /metrics on http://{}/",
                    server.addr
                );
                self.http = Some((addr, public, server));
                Ok(())
            }
            Err(e) => {
                log::error!("http: {e}");
                Err(format!("cannot serve `http = \"{addr}\"`: {e}"))
            }
        }
    }

    /// (Re)starts the notifier and StatsD threads when the file's `[[notify]]` or `statsd`
    /// differ from what they run with.
    fn restart_outlets(&mut self) {
        let cfg = &self.desired.config;
        let statsd = cfg.pypm.statsd.as_deref();
        if self
            .outlets
            .as_ref()
            .is_some_and(|o| o.notify == cfg.notify && o.statsd.as_deref() == statsd)
        {
            return;
        }
        self.outlets = None; // their threads end
        if cfg.notify.is_empty() && statsd.is_none() {
            return;
        }
        self.outlets = Some(crate::notifiers::Outlets::start(
            &self.bus,
            &cfg.notify,
            statsd,
            self.handler.clone(),
            &self.reaper,
            &cfg.dir,
        ));
    }

    fn emit(
        &mut self,
        event: EventKind,
        app: Option<&str>,
        idx: Option<u32>,
        pid: Option<i32>,
        detail: String,
    ) {
        self.events
            .append(&EventRecord::new(event.as_str(), app, idx, pid, detail));
    }

    fn save(&mut self) {
        self.dirty = false;
        let saved = SavedState {
            pid: std::process::id(),
            run_tag: self.reaper.run_tag().map(str::to_string),
            last_runs: self.saved_last_runs(),
            profiles: self.desired.config.profiles.clone(),
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
                        state: i.state().as_str().into(),
                        pid: i.pid,
                        start_time: i.start_ticks,
                        restarts: i.restarts,
                    })
                    .chain(old)
                })
                .collect(),
        };
        if let Err(e) = self.fx.write_state(&self.state_dir, &saved) {
            log::error!("cannot save state.json: {e}");
        }
    }

    fn finish(self, stopper: &Stopper) {
        let last_runs = self.saved_last_runs();
        let Supervisor {
            pump,
            state_dir,
            mut events,
            reaper,
            outlets,
            http,
            cgroups,
            proc_cgroups,
            cgroup_leftovers,
            ..
        } = self;
        drop(http); // no more requests
        // Every app has stopped: what they left outside their process groups goes too.
        reaper.kill_orphans();
        for cg in proc_cgroups
            .into_values()
            .map(|(cg, _)| cg)
            .chain(cgroup_leftovers)
        {
            cg.remove();
        }
        if let Some(Some(c)) = cgroups {
            c.remove();
        }
        events.append(&EventRecord::new(
            EventKind::Stopped.as_str(),
            None,
            None,
            None,
            "supervisor stopped",
        ));
        // The last exits were queued after the loop's final flush.
        events.flush();
        if let Some(o) = outlets {
            o.finish(Instant::now() + Duration::from_secs(3));
        }
        let _ = persist::save_state(
            &state_dir,
            &SavedState {
                pid: std::process::id(),
                config_file: String::new(),
                instances: Vec::new(),
                run_tag: None,
                last_runs,
                profiles: Vec::new(),
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

#[cfg(test)]
mod loop_tests;
