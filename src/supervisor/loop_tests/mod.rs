//! Loop tests: the real supervisor loop — handlers, planner, apply — driven by scripted events,
//! with fake effects and a clock moved by hand. No process is started and nothing sleeps: a
//! "child" is a pair of pipes, its exit is an event the test sends, and ten seconds pass when
//! the test says so.
use crate::process::ext::fd::OwnedFd;
use crate::process::ext::net::UnixDatagram;
#[cfg(windows)]
use crate::process::signal_hook;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::effects::Effects;
use super::*;
use crate::inputs::probes::{ProbeHandle, ProbeResult, Report, Spec, Target, Which};
use crate::process::{Child, SpawnError, Usage};

/// One effect the loop performed.
#[derive(Debug, Clone, PartialEq)]
enum Fx {
    Spawn { app: String, idx: u32, pid: i32 },
    Signal { pid: i32, sig: Signal },
    Probe { app: String, pid: i32, which: Which },
}

/// The fake world: the clock, the "processes" alive, what the loop did.
struct World {
    now: Instant,
    next_pid: i32,
    done: Vec<Fx>,
    /// Live fake processes and the write ends of their output pipes.
    alive: HashMap<i32, Vec<OwnedFd>>,
    /// RSS reported for a pid's tree.
    rss: HashMap<i32, u64>,
    /// Apps whose next spawn fails.
    fail_spawn: HashSet<String>,
    states_written: usize,
    /// Every event emitted, in order.
    events: Vec<EventRecord>,
    /// The environment each probe was started with (what an `exec` check runs under), in order.
    probe_targets: Vec<(Which, Target)>,
}

struct FakeEffects(Arc<Mutex<World>>);

fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

fn env_of<'a>(sp: &'a SpawnSpec, key: &str) -> &'a str {
    sp.env
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

impl Effects for FakeEffects {
    fn now(&self) -> Instant {
        lock(&self.0).now
    }

    fn spawn_batch(&mut self, specs: &[SpawnSpec]) -> Vec<Result<Child, SpawnError>> {
        let mut w = lock(&self.0);
        specs
            .iter()
            .map(|sp| {
                let app = env_of(sp, "PYPM_APP").to_string();
                let idx = env_of(sp, "PYPM_INSTANCE").parse().unwrap_or(0);
                if w.fail_spawn.remove(&app) {
                    return Err(SpawnError::NotFound {
                        program: sp.program.clone(),
                    });
                }
                let (out_r, out_w) = process::pipe().expect("pipe");
                let (err_r, err_w) = process::pipe().expect("pipe");
                w.next_pid += 1;
                let pid = w.next_pid;
                w.alive.insert(pid, vec![out_w, err_w]);
                w.done.push(Fx::Spawn { app, idx, pid });
                Ok(Child {
                    pid,
                    start_time: 1,
                    stdout: out_r,
                    stderr: err_r,
                })
            })
            .collect()
    }

    fn signal_group(&mut self, pid: i32, _start: u64, sig: Signal) -> bool {
        let mut w = lock(&self.0);
        w.done.push(Fx::Signal { pid, sig });
        w.alive.contains_key(&pid)
    }

    fn start_probe(
        &mut self,
        spec: Spec,
        target: Target,
        _notify: Option<UnixDatagram>,
        _report: Report,
    ) -> std::io::Result<Option<ProbeHandle>> {
        let mut w = lock(&self.0);
        w.done.push(Fx::Probe {
            app: target.app.clone(),
            pid: target.pid,
            which: spec.which,
        });
        w.probe_targets.push((spec.which, target));
        Ok(None)
    }

    /// Nothing is bound: the "socket" is a pipe, which no fake child uses.
    fn bind(&mut self, _listen: &crate::config::Listen) -> std::io::Result<OwnedFd> {
        Ok(process::pipe()?.0)
    }

    fn sample(&mut self, roots: &[i32]) -> HashMap<i32, Usage> {
        let w = lock(&self.0);
        roots
            .iter()
            .filter(|p| w.alive.contains_key(p))
            .map(|p| {
                let u = Usage {
                    cpu_seconds: 0.0,
                    rss_bytes: w.rss.get(p).copied().unwrap_or(1 << 20),
                    pids: vec![*p],
                };
                (*p, u)
            })
            .collect()
    }

    fn write_state(&mut self, _dir: &Path, _state: &persist::SavedState) -> std::io::Result<()> {
        lock(&self.0).states_written += 1;
        Ok(())
    }

    fn tell_ready(&mut self) {}

    fn release_memory(&mut self) {}

    fn emit(&mut self, event: EventRecord) {
        lock(&self.0).events.push(event);
    }

    fn flush_events(&mut self) {}
}

/// A supervisor for `pypm.toml` text, in a temporary directory, with fake effects.
struct Harness {
    sup: Supervisor,
    world: Arc<Mutex<World>>,
    dir: tempfile::TempDir,
    /// The loop's inbox (probe threads and the watcher would send here; nothing reads it).
    _rx: Receiver<Event>,
    idle: Option<Idle>,
}

impl Harness {
    fn new(toml: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pypm.toml");
        std::fs::write(&path, toml).expect("write pypm.toml");
        let host = HostEnv::from_process();
        let desired = resolve::load(&path, "pypm.toml", &host).expect("a valid file");
        let state_dir = desired.config.pypm.state_dir.clone();
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let world = Arc::new(Mutex::new(World {
            now: Instant::now(),
            next_pid: 1000,
            done: Vec::new(),
            alive: HashMap::new(),
            rss: HashMap::new(),
            fail_spawn: HashSet::new(),
            states_written: 0,
            events: Vec::new(),
            probe_targets: Vec::new(),
        }));
        let (tx, rx) = std::sync::mpsc::channel::<Event>();
        let bus = crate::events::bus::EventBus::new();
        let pump = LogPump::start(|_| {}).expect("log pump");
        let handler: crate::control::server::Handler = Arc::new(|_| Response::Pong {
            pid: 0,
            config_file: String::new(),
            http: None,
        });
        let mut sup = Supervisor::new(boot::Parts {
            opts: Options {
                config_path: path,
                display: "pypm.toml".into(),
            },
            host,
            desired,
            pump,
            inbox: tx,
            bus,
            handler,
            token: "t".into(),
            reaper: Reaper::inert(),
            fx: Box::new(FakeEffects(world.clone())),
        });
        // No cgroups here: `memory_max` is enforced by sampling (the fake's RSS).
        sup.cgroups = Some(None);
        sup.release_pending = false;
        let mut h = Harness {
            sup,
            world,
            dir,
            _rx: rx,
            idle: None,
        };
        h.settle();
        h
    }

    fn settle(&mut self) {
        self.idle = Some(self.sup.settle());
    }

    fn done(&self) -> bool {
        matches!(self.idle, Some(Idle::Done))
    }

    /// The effects performed since the last call.
    fn take(&mut self) -> Vec<Fx> {
        std::mem::take(&mut lock(&self.world).done)
    }

    /// Moves the clock on and lets the loop act on what fell due.
    fn advance(&mut self, d: Duration) {
        lock(&self.world).now += d;
        self.settle();
    }

    fn send(&mut self, e: Event) {
        self.sup.handle(e);
        self.settle();
    }

    /// The fake process `pid` ends (with an exit code, or killed by a signal).
    fn exit(&mut self, pid: i32, code: Option<i32>, signal: Option<Signal>) {
        assert!(
            lock(&self.world).alive.remove(&pid).is_some(),
            "pid {pid} is not alive"
        );
        self.send(Event::Exit(Exit {
            pid,
            code,
            signal: signal.map(|s| s as i32),
            core_dumped: false,
            at: SystemTime::now(),
            memory_limit: false,
        }));
    }

    fn probe(&mut self, app: &str, pid: i32, which: Which, ok: bool) {
        self.send(Event::Probe(ProbeResult {
            app: app.into(),
            idx: 0,
            pid,
            which,
            ok,
            detail: if ok { "ok".into() } else { "refused".into() },
        }));
    }

    fn edit(&mut self, toml: &str) {
        std::fs::write(self.dir.path().join("pypm.toml"), toml).expect("write pypm.toml");
        let resp = self.sup.reload();
        assert!(
            !matches!(resp, Response::Error { .. }),
            "reload failed: {resp:?}"
        );
        self.settle();
    }

    fn inst(&self, app: &str) -> &Instance {
        self.sup
            .obs
            .instances
            .get(&(app.to_string(), 0))
            .unwrap_or_else(|| panic!("no instance {app}.0"))
    }

    fn state(&self, app: &str) -> State {
        self.inst(app).state()
    }

    fn pid(&self, app: &str) -> Option<i32> {
        self.inst(app).pid()
    }

    /// The kinds of the events emitted so far, with their app.
    fn events(&mut self) -> Vec<(String, String)> {
        lock(&self.world)
            .events
            .iter()
            .map(|e| (e.event.clone(), e.app.clone().unwrap_or_default()))
            .collect()
    }

    /// The events emitted since the last call, in order.
    fn take_events(&mut self) -> Vec<EventRecord> {
        std::mem::take(&mut lock(&self.world).events)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The fake children's pipes close; the pump's thread ends with the supervisor's drop.
        lock(&self.world).alive.clear();
    }
}

fn spawn(app: &str, pid: i32) -> Fx {
    Fx::Spawn {
        app: app.into(),
        idx: 0,
        pid,
    }
}

fn signal(pid: i32, sig: Signal) -> Fx {
    Fx::Signal { pid, sig }
}

fn probe(app: &str, pid: i32, which: Which) -> Fx {
    Fx::Probe {
        app: app.into(),
        pid,
        which,
    }
}

const WEB: &str = "[apps.web]\ncommand = \"/bin/sleep 100\"\nrestart_delay = \"1s\"\n";

#[test]
fn a_crash_is_restarted_after_its_backoff_delay_and_not_before() {
    let mut h = Harness::new(WEB);
    assert_eq!(h.take(), [spawn("web", 1001)]);
    assert_eq!(h.state("web"), State::Running);
    h.exit(1001, Some(1), None);
    assert_eq!(h.state("web"), State::Backoff);
    h.advance(Duration::from_millis(999));
    assert_eq!(h.take(), [], "restarted before restart_delay");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take(), [spawn("web", 1002)]);
    assert_eq!(h.state("web"), State::Running);
    assert_eq!(h.inst("web").restarts(), 1);
}

#[test]
fn failing_health_checks_stop_the_instance_then_kill_it_then_restart_it() {
    let mut h = Harness::new(&format!(
        "{WEB}stop_timeout = \"5s\"\n[apps.web.health]\nhttp = \"http://127.0.0.1:9/\"\ninterval = \"1s\"\nfailures = 3\n"
    ));
    assert_eq!(
        h.take(),
        [spawn("web", 1001), probe("web", 1001, Which::Health)]
    );
    h.probe("web", 1001, Which::Health, false);
    h.probe("web", 1001, Which::Health, false);
    assert_eq!(h.take(), [], "two failures of three stop nothing");
    h.probe("web", 1001, Which::Health, true);
    h.probe("web", 1001, Which::Health, false);
    h.probe("web", 1001, Which::Health, false);
    assert_eq!(h.take(), [], "a success resets the count");
    h.probe("web", 1001, Which::Health, false);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    assert_eq!(h.state("web"), State::Stopping);
    // A stale result about a process already being replaced changes nothing.
    h.probe("web", 999, Which::Health, false);
    h.advance(Duration::from_millis(4999));
    assert_eq!(h.take(), [], "killed before stop_timeout");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take(), [signal(1001, Signal::SIGKILL)]);
    h.exit(1001, None, Some(Signal::SIGKILL));
    assert_eq!(h.state("web"), State::Backoff);
    assert!(
        h.inst("web")
            .reason()
            .is_some_and(|r| r.contains("unhealthy")),
        "{:?}",
        h.inst("web").reason()
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.take(),
        [spawn("web", 1002), probe("web", 1002, Which::Health)]
    );
    let ev = h.events();
    assert!(ev.contains(&("unhealthy".into(), "web".into())), "{ev:?}");
}

#[test]
fn an_instance_over_memory_max_is_stopped_and_restarted() {
    let mut h = Harness::new(&format!("{WEB}memory_max = \"10M\"\n"));
    assert_eq!(h.take(), [spawn("web", 1001)]);
    lock(&h.world).rss.insert(1001, 5 << 20);
    h.advance(plan::MEMORY_SAMPLE_INTERVAL);
    assert_eq!(h.take(), [], "under the limit");
    lock(&h.world).rss.insert(1001, 11 << 20);
    h.advance(plan::MEMORY_SAMPLE_INTERVAL);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(h.state("web"), State::Backoff);
    assert!(
        h.inst("web")
            .reason()
            .is_some_and(|r| r.contains("memory limit")),
        "{:?}",
        h.inst("web").reason()
    );
    let ev = h.events();
    assert!(
        ev.contains(&("memory_limit".into(), "web".into())),
        "{ev:?}"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take(), [spawn("web", 1002)]);
}

#[test]
fn a_second_stop_signal_kills_every_app_at_once_and_ends_the_loop() {
    let mut h = Harness::new(&format!("{WEB}\n[apps.db]\ncommand = \"/bin/sleep 100\"\n"));
    assert_eq!(h.take().len(), 2);
    h.send(Event::Signal(signal_hook::consts::SIGTERM));
    let sent = h.take();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|f| matches!(
        f,
        Fx::Signal {
            sig: Signal::SIGTERM,
            ..
        }
    )));
    assert!(!h.done(), "the loop waits for the exits");
    h.send(Event::Signal(signal_hook::consts::SIGINT));
    let mut killed = h.take();
    killed.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(
        killed,
        [signal(1001, Signal::SIGKILL), signal(1002, Signal::SIGKILL)]
    );
    assert!(h.done(), "the loop ends without waiting for the exits");
}

#[test]
fn one_stop_signal_ends_the_loop_once_every_app_has_exited() {
    let mut h = Harness::new(WEB);
    h.take();
    h.send(Event::Signal(signal_hook::consts::SIGTERM));
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    assert!(!h.done());
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert!(h.done());
    assert_eq!(h.take(), [], "nothing restarted while stopping");
}

mod events;
mod inputs;
mod rolls;
