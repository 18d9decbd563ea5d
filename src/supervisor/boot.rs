//! Starting and ending a supervisor: `run` sets up the socket, reaper, log pump, signals and
//! servers, builds the [`Supervisor`] (`new`, shared with the loop tests), runs its loop and
//! cleans up (`finish`); and the servers a reload may restart (HTTP, notifiers, cgroups).
use crate::config::keys::EventKind;
#[cfg(windows)]
use crate::process::signal_hook;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use super::*;

/// Runs the supervisor for a file until it is told to stop. Returns once every app is stopped.
pub fn run(opts: Options) -> Result<(), StartError> {
    crate::process::alloc::supervising();
    let host = HostEnv::from_process();
    let desired =
        resolve::load(&opts.config_path, &opts.display, &host).map_err(StartError::Config)?;
    let state_dir = desired.config.pypm.state_dir.clone();
    let server = Server::bind(&state_dir).map_err(|e| bind_error(&e, &state_dir, &opts))?;
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
    let handler = control_handler(tx.clone());
    server
        .serve(opts.config_path.clone(), handler.clone())
        .map_err(|e| StartError::Io(format!("cannot serve the control socket: {e}")))?;

    let bus = crate::events::bus::EventBus::new();
    let token = crate::http::token::ensure(&state_dir).map_err(|e| {
        StartError::Io(format!(
            "cannot write `{}`: {e}",
            crate::http::token::path(&state_dir).display()
        ))
    })?;
    let pypm = &desired.config.pypm;
    let events = EventLog::open(
        &state_dir,
        bus.clone(),
        pypm.events_max_size,
        pypm.events_max_files,
    );
    let mut sup = Supervisor::new(Parts {
        opts,
        host,
        desired,
        pump,
        inbox: tx.clone(),
        bus,
        handler,
        token,
        reaper: reaper.clone(),
        fx: Box::new(effects::RealEffects { reaper, events }),
    });
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

/// Control requests (socket, HTTP, StatsD) as events for the loop, answered when it has
/// handled them (or an `unavailable` error after 30 s).
fn control_handler(tx: Sender<Event>) -> crate::control::server::Handler {
    let control_tx = std::sync::Mutex::new(tx);
    Arc::new(move |req: Request| {
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
    })
}

/// Why the control socket could not be bound, for the user.
fn bind_error(e: &std::io::Error, state_dir: &Path, opts: &Options) -> StartError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        StartError::AlreadyRunning(opts.display.clone())
    } else {
        // sockaddr_un holds 108 bytes with the final NUL: a deep project path hits it.
        let sock = crate::control::server::socket_path(state_dir);
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

/// What a supervisor is made of besides its state: what `run` sets up (and a loop test fakes).
pub(super) struct Parts {
    pub opts: Options,
    pub host: HostEnv,
    pub desired: Desired,
    pub pump: LogPump,
    pub inbox: Sender<Event>,
    pub bus: crate::events::bus::EventBus,
    pub handler: crate::control::server::Handler,
    pub token: String,
    pub reaper: Reaper,
    pub fx: Box<dyn Effects>,
}

impl Supervisor {
    pub(super) fn new(p: Parts) -> Supervisor {
        let state_dir = p.desired.config.pypm.state_dir.clone();
        Supervisor {
            wants: wants_of(&p.desired),
            desired: p.desired,
            host: p.host,
            opts: p.opts,
            obs: Observed::default(),
            by_pid: HashMap::new(),
            config_error: None,
            pump: p.pump,
            state_dir,
            cpu_prev: HashMap::new(),
            usage_cache: None,
            dirty: true,
            release_pending: true,
            release_at: None,
            sweep_due: false,
            aborting: false,
            reaper: p.reaper,
            inbox: p.inbox,
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
            bus: p.bus,
            handler: p.handler,
            outlets: None,
            http: None,
            token: p.token,
            cgroups: None,
            proc_cgroups: HashMap::new(),
            cgroup_leftovers: Vec::new(),
            cgroup_seq: 0,
            told_ready: false,
            history: history::History::default(),
            fx: p.fx,
        }
    }

    /// The supervisor's cgroups, set up on first use.
    pub(super) fn cgroups(&mut self) -> Option<&process::cgroup::Cgroups> {
        if self.cgroups.is_none() {
            let c = process::cgroup::Cgroups::setup();
            match &c {
                Some(c) => log::info!("memory_max/cpu_max: enforced by {}", c.version.name()),
                None if process::spawn_memory_limit().is_some() => {
                    log::info!("memory_max/cpu_max: enforced by each instance's Job Object")
                }
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
    pub(super) fn restart_http(&mut self) -> Result<(), String> {
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
    pub(super) fn restart_outlets(&mut self) {
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
        self.outlets = Some(crate::events::notifiers::Outlets::start(
            &self.bus,
            &cfg.notify,
            statsd,
            self.handler.clone(),
            &self.reaper,
            &cfg.dir,
        ));
    }

    pub(super) fn finish(self, stopper: &Stopper) {
        let last_runs = self.saved_last_runs();
        let Supervisor {
            pump,
            state_dir,
            mut fx,
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
        fx.emit(EventRecord::new(
            EventKind::Stopped.as_str(),
            None,
            None,
            None,
            "supervisor stopped",
        ));
        // The last exits were queued after the loop's final flush.
        fx.flush_events();
        if let Some(o) = outlets {
            o.finish(Instant::now() + Duration::from_secs(3));
        }
        let last = SavedState {
            pid: std::process::id(),
            config_file: String::new(),
            instances: Vec::new(),
            run_tag: None,
            last_runs,
            profiles: Vec::new(),
        };
        // The tasks' last runs survive the supervisor (the next one counts schedules from them).
        if let Err(e) = persist::save_state(&state_dir, &last) {
            log::error!("cannot save state.json: {e}");
        }
        stopper.stop();
        pump.shutdown();
        let _ = std::fs::remove_file(persist::pid_path(&state_dir));
        log::info!("supervisor stopped");
    }
}
