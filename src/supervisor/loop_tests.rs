//! Loop tests: the real supervisor loop — handlers, planner, apply — driven by scripted events,
//! with fake effects and a clock moved by hand. No process is started and nothing sleeps: a
//! "child" is a pair of pipes, its exit is an event the test sends, and ten seconds pass when
//! the test says so.
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::effects::Effects;
use super::*;
use crate::probes::{ProbeHandle, ProbeResult, Report, Spec, Target, Which};
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
        lock(&self.0).done.push(Fx::Probe {
            app: target.app,
            pid: target.pid,
            which: spec.which,
        });
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
        }));
        let (tx, rx) = mpsc::channel::<Event>();
        let bus = crate::bus::EventBus::new();
        let pump = LogPump::start(|_| {}).expect("log pump");
        let handler: crate::control::server::Handler = Arc::new(|_| Response::Pong {
            pid: 0,
            config_file: String::new(),
            http: None,
        });
        let sup = Supervisor {
            wants: wants_of(&desired),
            events: EventLog::open(&state_dir, bus.clone(), 1 << 20, 2),
            desired,
            host,
            opts: Options {
                config_path: path,
                display: "pypm.toml".into(),
            },
            obs: Observed::default(),
            by_pid: HashMap::new(),
            config_error: None,
            pump,
            state_dir,
            cpu_prev: HashMap::new(),
            usage_cache: None,
            dirty: true,
            release_pending: false,
            release_at: None,
            sweep_due: false,
            aborting: false,
            reaper: Reaper::inert(),
            inbox: tx,
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
            token: "t".into(),
            // No cgroups here: `memory_max` is enforced by sampling (the fake's RSS).
            cgroups: Some(None),
            proc_cgroups: HashMap::new(),
            cgroup_leftovers: Vec::new(),
            cgroup_seq: 0,
            told_ready: false,
            history: history::History::default(),
            fx: Box::new(FakeEffects(world.clone())),
        };
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
        self.inst(app).pid
    }

    /// The kinds of the events written so far, with their app.
    fn events(&mut self) -> Vec<(String, String)> {
        self.sup.events.flush();
        let text =
            std::fs::read_to_string(self.sup.state_dir.join("events.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["event"].as_str().unwrap_or_default().to_string(),
                    v["app"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
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
    assert_eq!(h.inst("web").restarts, 1);
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
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("unhealthy")),
        "{:?}",
        h.inst("web").reason
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
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("memory limit")),
        "{:?}",
        h.inst("web").reason
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

/// Rolled with a surge (`listen`): the replacement starts before the old process stops.
const READY_WEB: &str = "[apps.web]\ncommand = \"/bin/sleep 100\"\nlisten = [\"tcp://127.0.0.1:8000\"]\nstop_timeout = \"5s\"\nenv = { V = \"1\" }\n[apps.web.ready]\ntcp = \"127.0.0.1:9\"\ninterval = \"100ms\"\ntimeout = \"3s\"\n";

fn ready_web(v: &str) -> String {
    READY_WEB.replace("V = \"1\"", &format!("V = \"{v}\""))
}

/// A ready instance of `web` (pid 1001).
fn ready_harness() -> Harness {
    let mut h = Harness::new(READY_WEB);
    assert_eq!(
        h.take(),
        [spawn("web", 1001), probe("web", 1001, Which::Ready)]
    );
    assert_eq!(h.state("web"), State::Starting);
    h.probe("web", 1001, Which::Ready, true);
    assert_eq!(h.state("web"), State::Running);
    h
}

#[test]
fn not_ready_within_the_timeout_fails_the_start() {
    let mut h = Harness::new(READY_WEB);
    h.take();
    h.probe("web", 1001, Which::Ready, false);
    h.advance(Duration::from_millis(2999));
    assert_eq!(h.take(), []);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert!(
        h.inst("web")
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("not ready within 3s")),
        "{:?}",
        h.inst("web").reason
    );
}

#[test]
fn a_roll_starts_the_replacement_and_stops_the_old_process_once_it_is_ready() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    assert_eq!(
        h.take(),
        [spawn("web", 1002), probe("web", 1002, Which::Ready)],
        "the old process keeps serving while the replacement starts"
    );
    assert_eq!(h.inst("web").old.as_ref().map(|o| o.pid), Some(1001));
    h.probe("web", 1002, Which::Ready, true);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    assert_eq!(h.pid("web"), Some(1002));
    h.advance(Duration::from_secs(5));
    assert_eq!(
        h.take(),
        [signal(1001, Signal::SIGKILL)],
        "an old process that outstays stop_timeout is killed"
    );
    h.exit(1001, None, Some(Signal::SIGKILL));
    assert!(h.inst("web").old.is_none());
    assert_eq!(h.state("web"), State::Running);
    assert_eq!(h.take(), []);
}

#[test]
fn a_replacement_that_dies_before_it_is_ready_keeps_the_old_process_and_ends_the_roll() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    h.take();
    h.exit(1002, Some(1), None);
    assert_eq!(h.pid("web"), Some(1001), "the old process stays");
    assert_eq!(h.state("web"), State::Running);
    assert!(
        h.inst("web")
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("roll stopped")),
        "{:?}",
        h.inst("web").reason
    );
    h.advance(Duration::from_secs(60));
    assert_eq!(h.take(), [], "the failed spec is not retried on its own");
    let ev = h.events();
    assert!(ev.contains(&("failed".into(), "web".into())), "{ev:?}");
    // The next edit rolls again.
    h.edit(&ready_web("3"));
    assert_eq!(
        h.take(),
        [spawn("web", 1003), probe("web", 1003, Which::Ready)]
    );
}

#[test]
fn a_replacement_that_cannot_be_spawned_keeps_the_old_process() {
    let mut h = ready_harness();
    lock(&h.world).fail_spawn.insert("web".into());
    h.edit(&ready_web("2"));
    assert_eq!(h.take(), [], "no spawn happened and nothing was stopped");
    assert_eq!(h.pid("web"), Some(1001));
    assert_eq!(h.state("web"), State::Running);
}

#[test]
fn a_reload_during_a_roll_finishes_it_then_rolls_again_to_the_newest_file() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    assert_eq!(
        h.take(),
        [spawn("web", 1002), probe("web", 1002, Which::Ready)]
    );
    // Edited again before the replacement is ready: nothing is stopped, nothing more started
    // (one process serving, one starting, never a third).
    h.edit(&ready_web("3"));
    assert_eq!(h.take(), []);
    assert_eq!(h.inst("web").old.as_ref().map(|o| o.pid), Some(1001));
    h.probe("web", 1002, Which::Ready, true);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(
        h.take(),
        [spawn("web", 1003), probe("web", 1003, Which::Ready)],
        "once the first roll is over, the newest file rolls 1002 in turn"
    );
    assert_eq!(h.inst("web").old.as_ref().map(|o| o.pid), Some(1002));
    h.probe("web", 1003, Which::Ready, true);
    assert_eq!(h.take(), [signal(1002, Signal::SIGTERM)]);
    h.exit(1002, None, Some(Signal::SIGTERM));
    assert_eq!(h.take(), []);
    assert_eq!(h.pid("web"), Some(1003));
    assert_eq!(h.state("web"), State::Running);
    let want = h.sup.wants["web"].spec_hash;
    assert!(!h.inst("web").runs_other_spec(want), "runs the newest spec");
}

#[test]
fn reordering_the_keys_of_env_does_not_roll_the_app() {
    let mut h =
        Harness::new("[apps.web]\ncommand = \"/bin/sleep 100\"\nenv = { A = \"1\", B = \"2\" }\n");
    h.take();
    h.edit("[apps.web]\ncommand = \"/bin/sleep 100\"\nenv = { B = \"2\", A = \"1\" }\n");
    assert_eq!(h.take(), []);
    h.edit("[apps.web]\ncommand = \"/bin/sleep 100\"\nenv = { B = \"2\", A = \"9\" }\n");
    // Without a surge the change rolls stop-first.
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(h.take(), [spawn("web", 1002)]);
}

#[test]
fn state_is_written_when_it_changed_not_on_every_wakeup() {
    let mut h = Harness::new(WEB);
    let after_start = lock(&h.world).states_written;
    assert!(after_start >= 1);
    h.advance(Duration::from_secs(30));
    assert_eq!(lock(&h.world).states_written, after_start);
    h.exit(1001, Some(1), None);
    assert_eq!(lock(&h.world).states_written, after_start + 1);
}

#[test]
fn a_replacement_still_times_out_when_the_file_changes_again_meanwhile() {
    let mut h = ready_harness();
    h.edit(&ready_web("2"));
    assert_eq!(
        h.take(),
        [spawn("web", 1002), probe("web", 1002, Which::Ready)]
    );
    h.edit(&ready_web("3"));
    h.advance(Duration::from_secs(3));
    assert_eq!(
        h.take(),
        [signal(1002, Signal::SIGTERM)],
        "the replacement's ready_timeout holds although a newer spec is wanted"
    );
    h.exit(1002, None, Some(Signal::SIGTERM));
    assert_eq!(h.pid("web"), Some(1001), "the old process keeps serving");
    assert_eq!(h.state("web"), State::Running);
    assert_eq!(h.take(), []);
}

#[test]
fn a_readiness_result_for_another_pid_or_state_changes_nothing() {
    let mut h = Harness::new(READY_WEB);
    h.take();
    h.probe("web", 4242, Which::Ready, true);
    assert_eq!(h.state("web"), State::Starting);
    h.probe("web", 1001, Which::Ready, false);
    assert_eq!(h.state("web"), State::Starting);
    h.probe("web", 1001, Which::Ready, true);
    assert_eq!(h.state("web"), State::Running);
    let ev = h.events();
    assert_eq!(ev.iter().filter(|(e, _)| e == "ready").count(), 1, "{ev:?}");
    // A late duplicate success is not a second `ready`.
    h.probe("web", 1001, Which::Ready, true);
    assert_eq!(h.events().iter().filter(|(e, _)| e == "ready").count(), 1);
}

impl Harness {
    /// The file is saved (the watcher's event), without reloading it.
    fn save(&mut self, toml: &str) {
        let path = self.dir.path().join("pypm.toml");
        std::fs::write(&path, toml).expect("write pypm.toml");
        let path = self.sup.desired.config.path.clone();
        self.send(Event::FileChanged(path));
    }
}

#[test]
fn a_saved_file_is_applied_once_its_debounce_is_over() {
    let mut h = Harness::new(WEB);
    h.take();
    h.save(&format!("{WEB}[apps.db]\ncommand = \"/bin/sleep 100\"\n"));
    h.advance(crate::watch::CONFIG_DEBOUNCE - Duration::from_millis(1));
    assert_eq!(h.take(), [], "applied before the debounce");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take(), [spawn("db", 1002)]);
}

#[test]
fn a_storm_of_saves_is_applied_at_least_every_reload_max_wait() {
    let mut h = Harness::new(WEB);
    h.take();
    let step = crate::watch::CONFIG_DEBOUNCE / 2;
    let mut waited = Duration::ZERO;
    let mut n = 0;
    while h.sup.desired.apps.len() == 1 {
        n += 1;
        h.save(&format!("{WEB}[apps.db]\ncommand = \"/bin/sleep {n}\"\n"));
        h.advance(step);
        waited += step;
        assert!(
            waited <= crate::watch::RELOAD_MAX_WAIT + step,
            "not applied after {waited:?} of saves"
        );
    }
    assert!(
        waited >= crate::watch::RELOAD_MAX_WAIT,
        "a save every {step:?} is still coalesced (applied after {waited:?})"
    );
    assert_eq!(
        h.take(),
        [spawn("db", 1002)],
        "one reload for the whole storm"
    );
}

#[test]
fn a_watched_file_restarts_its_app_after_the_debounce() {
    let mut h = Harness::new(&format!("{WEB}watch = [\"*.py\"]\n"));
    h.take();
    let cwd = h.sup.desired.apps["web"].app.cwd.clone();
    for _ in 0..3 {
        h.send(Event::FileChanged(cwd.join("app.py")));
        h.advance(crate::watch::DEBOUNCE / 4);
    }
    h.send(Event::FileChanged(cwd.join("notes.txt")));
    assert_eq!(h.take(), [], "a burst of changes waits for its debounce");
    h.advance(crate::watch::DEBOUNCE);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)], "restarted once");
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(h.take(), [spawn("web", 1002)]);
}
