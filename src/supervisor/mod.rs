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
mod boot;
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
#[cfg(windows)]
use crate::process::signal_hook;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::control::protocol::{Request, Response};
use crate::control::server::{Server, Stopper};
use crate::desired::python_env::HostEnv;
use crate::desired::resolve::{self, Desired};
use crate::events::journal::{EventLog, EventRecord};
use crate::logs::{LogNotice, LogPump, LogTarget, Stream, log_file_name};
use crate::process::{self, Exit, Reaper, Signal, SpawnSpec};
pub use boot::run;
use effects::Effects;
use persist::{SavedInstance, SavedState};
use plan::{Action, Key, Observed, Want};
use state::{Instance, State};

/// What the loop reacts to.
pub enum Event {
    Exit(Exit),
    Signal(i32),
    Control(Request, Sender<Response>),
    Log(LogNotice),
    Probe(crate::inputs::probes::ProbeResult),
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
    notify: Option<crate::process::ext::net::UnixDatagram>,
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
    probes: HashMap<(String, u32), Vec<crate::inputs::probes::ProbeHandle>>,
    /// The notify socket of an instance whose `notify` health probe starts once it is ready (the
    /// readiness probe's thread, which also holds it, ends then).
    health_notify: HashMap<(String, u32), crate::process::ext::net::UnixDatagram>,
    /// Each live process's two log pipes in the pump, and the file each writes to.
    log_pipes: HashMap<i32, Vec<(crate::logs::PipeId, Stream, PathBuf)>>,
    /// The watched directories and their watcher.
    watcher: Option<(Vec<(PathBuf, bool)>, notify::RecommendedWatcher)>,
    /// `listen` sockets, bound once by the supervisor and passed to every instance; they stay
    /// bound across restarts and reloads until no app declares them.
    sockets: HashMap<crate::config::Listen, crate::process::ext::fd::OwnedFd>,
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
    bus: crate::events::bus::EventBus,
    /// The control requests' handler, for the threads that ask the loop (StatsD, HTTP).
    handler: crate::control::server::Handler,
    /// The notifier and StatsD threads of the file's `[[notify]]` and `statsd`.
    outlets: Option<crate::events::notifiers::Outlets>,
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
    /// Every spawn, signal, probe, bind, sample, state write and event, and the clock.
    fx: Box<dyn Effects>,
}

fn wants_of(d: &Desired) -> IndexMap<String, Want> {
    d.apps
        .iter()
        .map(|(n, s)| (n.clone(), Want::from_spec(s)))
        .collect()
}

/// The wants of `new`, reusing the spec hash of every app that did not change since `old` (a
/// reload of a large file hashes only what was edited).
fn wants_since(
    old: &Desired,
    old_wants: &IndexMap<String, Want>,
    new: &Desired,
) -> IndexMap<String, Want> {
    new.apps
        .iter()
        .map(|(n, s)| {
            let same = old.apps.get(n).is_some_and(|o| o == s);
            let want = match old_wants.get(n) {
                Some(w) if same => Want {
                    spec_hash: w.spec_hash,
                    ..Want::from_app(&s.app)
                },
                _ => Want::from_spec(s),
            };
            (n.clone(), want)
        })
        .collect()
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
            self.fx.flush_events();
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
                self.fx.flush_events();
                let _ = reply.send(resp);
            }
            Event::Log(n) => self.on_log(n),
            Event::Probe(r) => self.on_probe(r),
            Event::FileChanged(p) => {
                let m = crate::inputs::watch::classify(&self.desired, &p);
                let now = self.fx.now();
                let at = now + crate::inputs::watch::DEBOUNCE;
                if m.reload {
                    // Remember the newest valid version of this burst of saves (a save that
                    // leaves the file invalid must not hide the valid one before it).
                    if let Ok(text) = std::fs::read_to_string(&self.opts.config_path)
                        && !text.is_empty()
                        && crate::desired::resolve::from_source(
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
                        (now + crate::inputs::watch::CONFIG_DEBOUNCE)
                            .min(first + crate::inputs::watch::RELOAD_MAX_WAIT),
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
                // A fact; the planner decides (`Action::Reload`, at once).
                log::info!("SIGHUP: reloading `{}`", self.opts.display);
                self.obs.reload_at = Some(self.fx.now());
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
            i.set_log_problem(problem.clone());
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

    fn emit(
        &mut self,
        event: EventKind,
        app: Option<&str>,
        idx: Option<u32>,
        pid: Option<i32>,
        detail: String,
    ) {
        self.fx
            .emit(EventRecord::new(event.as_str(), app, idx, pid, detail));
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
                    let old = i.old().map(|o| SavedInstance {
                        app: i.app().to_string(),
                        instance: i.idx(),
                        state: "replaced".into(),
                        pid: Some(o.pid()),
                        start_time: o.start_ticks(),
                        restarts: i.restarts(),
                    });
                    std::iter::once(SavedInstance {
                        app: i.app().to_string(),
                        instance: i.idx(),
                        state: i.state().as_str().into(),
                        pid: i.pid(),
                        start_time: i.start_ticks(),
                        restarts: i.restarts(),
                    })
                    .chain(old)
                })
                .collect(),
        };
        if let Err(e) = self.fx.write_state(&self.state_dir, &saved) {
            log::error!("cannot save state.json: {e}");
        }
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
