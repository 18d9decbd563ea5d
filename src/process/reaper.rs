//! The one `waitpid(-1)` of the process: SIGCHLD in, [`Exit`] callbacks out.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, PipeReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

use super::os;
use super::spawn::{Child, SpawnError, SpawnSpec, spawn_with};
use super::{Signal, set_nonblocking, signal_group_checked, signal_name};

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal number, when a signal killed it (name: [`signal_name`]).
    pub signal: Option<i32>,
    pub core_dumped: bool,
    /// When the reaper collected it (within milliseconds of the death).
    pub at: SystemTime,
    /// A limit of the spawner's own refused memory before it ended (Windows Job Objects);
    /// always false here: a cgroup's OOM kills are counted by the supervisor.
    pub memory_limit: bool,
}

impl Exit {
    fn from_status(pid: i32, status: libc::c_int) -> Exit {
        let (code, signal, core_dumped) = if libc::WIFEXITED(status) {
            (Some(libc::WEXITSTATUS(status)), None, false)
        } else if libc::WIFSIGNALED(status) {
            (None, Some(libc::WTERMSIG(status)), libc::WCOREDUMP(status))
        } else {
            (None, None, false)
        };
        Exit {
            pid,
            code,
            signal,
            core_dumped,
            at: SystemTime::now(),
            memory_limit: false,
        }
    }

    /// `"exit code 3"`, `"signal SIGKILL"`, `"signal SIGSEGV (core dumped)"`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) if self.core_dumped => {
                format!("signal {} (core dumped)", signal_name(sig))
            }
            (None, Some(sig)) => format!("signal {}", signal_name(sig)),
            (None, None) => "unknown exit status".to_string(),
        }
    }
}

type OnExit = Arc<dyn Fn(Exit) + Send + Sync>;

/// Where the exit of a watched child goes instead of `on_exit`.
pub(super) struct Watcher {
    tx: Sender<Exit>,
    /// Written to (one byte) after sending, for a caller that waits in `poll`.
    wake: Option<OwnedFd>,
}

impl Watcher {
    fn deliver(self, exit: Exit) {
        let _ = self.tx.send(exit);
        if let Some(fd) = self.wake {
            let _ = File::from(fd).write(&[1]);
        }
    }
}

pub(super) struct Registry {
    on_exit: Option<OnExit>,
    /// Children between fork and the end of `spawn`; an exit reaped meanwhile is parked here.
    pub(super) spawning: HashMap<i32, Option<Exit>>,
    watchers: HashMap<i32, Watcher>,
    /// Every child started by `spawn_with` and not reaped yet (watched or not), with the
    /// [`RUN_ID_VAR`] it was given (0 when orphans are not adopted).
    pub(super) run_ids: HashMap<i32, u64>,
}

/// The environment variable that tells which start of which child a process descends from,
/// set in every child while orphans are adopted ([`Reaper::adopt_orphans`]): `TAG.N`, where TAG
/// ([`Reaper::run_tag`]) names this process (pid and start time) and N counts its children
/// (1, 2, 3, …), so the value is unique on the machine.
pub const RUN_ID_VAR: &str = "PYPM_RUN_ID";

/// Orphaned descendants are adopted and swept (see [`Reaper::adopt_orphans`]).
static ADOPTING: AtomicBool = AtomicBool::new(false);
static LAST_RUN_ID: AtomicU64 = AtomicU64::new(0);
static RUN_TAG: OnceLock<String> = OnceLock::new();

/// The number and the [`RUN_ID_VAR`] value for the next child, or `None` when orphans are not
/// adopted.
pub(super) fn next_run_id() -> Option<(u64, String)> {
    if !ADOPTING.load(Ordering::Relaxed) {
        return None;
    }
    let n = LAST_RUN_ID.fetch_add(1, Ordering::Relaxed) + 1;
    Some((n, format!("{}.{n}", RUN_TAG.get()?)))
}

/// N of a [`RUN_ID_VAR`] value that this process gave.
fn own_run_id(value: &[u8]) -> Option<u64> {
    let rest = value.strip_prefix(RUN_TAG.get()?.as_bytes())?;
    std::str::from_utf8(rest.strip_prefix(b".")?)
        .ok()?
        .parse()
        .ok()
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        on_exit: None,
        spawning: HashMap::new(),
        watchers: HashMap::new(),
        run_ids: HashMap::new(),
    })
});

/// The registry lock. The reaper holds it while it calls `waitpid`, spawn holds it across fork.
pub(super) fn lock() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends the spawning state of `pid`: on success, routes an exit that was parked meanwhile (or
/// registers the watcher for the future one); on failure, forgets it (spawn reaped it).
pub(super) fn finish_spawn(pid: i32, watcher: Option<Watcher>, ok: bool) {
    let mut reg = lock();
    let parked = reg.spawning.remove(&pid).flatten();
    if !ok {
        reg.run_ids.remove(&pid);
        return;
    }
    match (watcher, parked) {
        (Some(w), Some(exit)) => w.deliver(exit),
        (Some(w), None) => {
            reg.watchers.insert(pid, w);
        }
        (None, Some(exit)) => {
            let on_exit = reg.on_exit.clone();
            drop(reg);
            if let Some(f) = on_exit {
                f(exit);
            }
        }
        (None, None) => {}
    }
}

/// Before a child is reaped, whatever is left in its process group (it leads one: every child is
/// spawned with `setsid`) is SIGKILLed: no grandchild outlives its app. This happens while the
/// exited child is still a zombie, so its pid — and with it the group id — cannot have been reused:
/// the signal can only reach processes of that app. Cheap: no scan of `/proc`.
#[cfg(not(target_os = "linux"))]
fn kill_group_of_next_exited() {}

#[cfg(target_os = "linux")]
fn kill_group_of_next_exited() {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter; WNOHANG | WNOWAIT neither blocks nor
    // reaps.
    let pid = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        if libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) != 0
        {
            return;
        }
        info.si_pid()
    };
    // SAFETY: plain syscalls on a pid that is our unreaped child.
    unsafe {
        if pid > 1 && libc::getpgid(pid) == pid {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

fn reap_all() {
    let mut unwatched = Vec::new();
    let on_exit = {
        let mut reg = lock();
        loop {
            kill_group_of_next_exited();
            let mut status = 0;
            // SAFETY: status is a local; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid > 0 {
                reg.run_ids.remove(&pid);
                let exit = Exit::from_status(pid, status);
                if let Some(slot) = reg.spawning.get_mut(&pid) {
                    *slot = Some(exit);
                } else if let Some(w) = reg.watchers.remove(&pid) {
                    w.deliver(exit);
                } else {
                    unwatched.push(exit);
                }
            } else if pid < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                break; // 0: children left but none exited; ECHILD: no children
            }
        }
        reg.on_exit.clone()
    };
    if let Some(f) = on_exit {
        for exit in unwatched {
            f(exit);
        }
    }
}

/// SIGKILLs the orphans this process adopted as a subreaper (its children that it did not
/// start) whose ancestor is gone: an orphan is kept only while the child it descends from — the
/// one whose [`RUN_ID_VAR`] its environment carries — still runs, and with `all`, not even then.
/// An orphan that leads a process group (it called `setsid`) takes its group with it; its own
/// children, orphaned in turn, are swept after it is reaped.
///
/// Pid safety: the whole sweep holds the registry lock, which [`reap_all`] needs to reap, so
/// every listed child stays at least a zombie (its pid unused) until the signal has been sent;
/// children whose spawn is still being set up are skipped.
fn sweep_orphans(all: bool) {
    let reg = lock();
    let doomed = doomed_orphans(
        &os::main_thread_children(),
        &reg,
        |pid| os::env_var(pid, RUN_ID_VAR).and_then(|v| own_run_id(&v)),
        all,
    );
    for pid in doomed {
        // SAFETY: plain syscalls on a pid that is our unreaped child (see above).
        unsafe {
            if libc::getpgid(pid) == pid {
                libc::killpg(pid, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
    }
    drop(reg);
}

/// Which of our `children` are adopted orphans to kill: not started by us (nor being started),
/// and not descended (`run_id` of a child: the N of its [`RUN_ID_VAR`]) from a child we started
/// that is still there — with `all`, whatever they descend from.
fn doomed_orphans(
    children: &[i32],
    reg: &Registry,
    run_id: impl Fn(i32) -> Option<u64>,
    all: bool,
) -> Vec<i32> {
    let ours = |p: &i32| reg.run_ids.contains_key(p) || reg.spawning.contains_key(p);
    let orphans = children.iter().copied().filter(|p| *p > 1 && !ours(p));
    let live: HashSet<u64> = if all {
        HashSet::new()
    } else {
        reg.run_ids.values().copied().collect()
    };
    orphans
        .filter(|&p| !run_id(p).is_some_and(|id| live.contains(&id)))
        .collect()
}

/// What [`Reaper::run`] collected.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    /// `None` only if the process could not be collected even after SIGKILL (should not happen).
    pub exit: Option<Exit>,
    /// Up to 1 MiB of each stream; the rest is read and dropped.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The deadline passed and the process group was SIGKILLed.
    pub timed_out: bool,
}

const RUN_OUTPUT_MAX: usize = 1 << 20;

/// The process-wide child reaper. One per process: it reaps *every* child with `waitpid(-1)`,
/// so nothing else in the process may wait for children once it runs (use [`Self::run`] or
/// [`Self::spawn_watched`] for short commands instead of `std::process::Command`).
///
/// Delivery: the exit of a child started with [`Self::spawn_watched`] or [`Self::run`] goes to
/// its own channel; every other exit (children from [`super::spawn`], or any other child) goes
/// to the `on_exit` callback. No exit is missed or delivered twice: a child that exits before its
/// spawn call has returned is held back and delivered when it does, and a child whose spawn
/// failed is never reported.
#[derive(Debug, Clone)]
pub struct Reaper {
    _private: (),
}

impl Reaper {
    /// Installs the SIGCHLD handler and starts the `pypm-reaper` thread, which waits for SIGCHLD
    /// (no polling) and reaps all exited children each time. `on_exit` runs on that thread and
    /// must not block (send the exit to the supervisor's inbox and return). Children that exited
    /// before the call are reaped at once. A second call fails with `AlreadyExists`.
    pub fn start(on_exit: impl Fn(Exit) + Send + Sync + 'static) -> io::Result<Reaper> {
        let mut reg = lock();
        if reg.on_exit.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a child reaper is already running in this process",
            ));
        }
        // Registered before the first reap, so no SIGCHLD falls between them.
        let mut signals = Signals::new([SIGCHLD])?;
        std::thread::Builder::new()
            .name("pypm-reaper".into())
            .spawn(move || {
                reap_all();
                for _ in signals.forever() {
                    reap_all();
                }
            })?;
        reg.on_exit = Some(Arc::new(on_exit));
        Ok(Reaper { _private: () })
    }

    /// A handle without the reaper thread, for the supervisor's loop tests, whose fake effects
    /// spawn nothing (sweeping and killing orphans do nothing unless orphans are adopted).
    #[cfg(test)]
    pub(crate) fn inert() -> Reaper {
        Reaper { _private: () }
    }

    /// Makes the process a subreaper (Linux: `PR_SET_CHILD_SUBREAPER`): a process that left its
    /// app's process group (`setsid`, a double fork) and lost its parent becomes our child, to
    /// be swept by [`Self::sweep_orphans`]. Every child started from now on gets [`RUN_ID_VAR`]
    /// in its environment, by which an orphan is attributed to the start it descends from. The
    /// exits of adopted children reach `on_exit` like those of any unknown child. Elsewhere a
    /// no-op: orphans go to init.
    pub fn adopt_orphans(&self) -> io::Result<()> {
        os::set_child_subreaper()?;
        let pid = std::process::id();
        let start = os::proc_start_time(pid as i32).unwrap_or(0);
        RUN_TAG.get_or_init(|| format!("{pid}-{start}"));
        ADOPTING.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The prefix of every [`RUN_ID_VAR`] this process gives (`PID-STARTTIME`), once
    /// [`Self::adopt_orphans`] was called. Saved, it lets the next supervisor find what this one
    /// left running if it dies by SIGKILL ([`super::kill_run_leftovers`]).
    pub fn run_tag(&self) -> Option<&'static str> {
        RUN_TAG.get().map(String::as_str)
    }

    /// SIGKILLs each adopted orphan whose ancestor started by us has exited (an orphan without
    /// [`RUN_ID_VAR`] — it cleared its environment, or we may not read it — counts as such), so
    /// no descendant outlives its app even outside the group the stop signal reaches. Call it
    /// after exits were reaped (a death is what orphans a process), off the hot path: it reads
    /// `/proc` (one file, and one per orphan) under the lock that spawning needs.
    pub fn sweep_orphans(&self) {
        if ADOPTING.load(Ordering::Relaxed) {
            sweep_orphans(false);
        }
    }

    /// SIGKILLs every adopted orphan, whatever it descends from (at shutdown, after the apps
    /// stopped).
    pub fn kill_orphans(&self) {
        if ADOPTING.load(Ordering::Relaxed) {
            sweep_orphans(true);
        }
    }

    /// Like [`super::spawn`], but the exit goes to the returned channel instead of `on_exit`.
    pub fn spawn_watched(&self, spec: &SpawnSpec) -> Result<(Child, Receiver<Exit>), SpawnError> {
        let (tx, rx) = mpsc::channel();
        let child = spawn_with(spec, Some(Watcher { tx, wake: None }))?;
        Ok((child, rx))
    }

    /// Runs a short command to completion: writes `input` to its stdin (`/dev/null` when empty),
    /// collects stdout and stderr, and waits for its exit, all on the calling thread (blocking,
    /// event-driven with `poll`). When `timeout` passes first, the process group is SIGKILLed and
    /// `timed_out` is set. Whatever the command left running in its process group is SIGKILLed
    /// when it exits. For readiness/health `exec` probes and `exec` notifiers.
    pub fn run(
        &self,
        spec: &SpawnSpec,
        input: &[u8],
        timeout: Duration,
    ) -> Result<RunOutput, SpawnError> {
        let deadline = Instant::now() + timeout;
        let io_err = |op| move |source| SpawnError::Io { op, source };
        let (mut wake_r, wake_w) = io::pipe().map_err(io_err("cannot create pipe"))?;
        let mut spec = spec.clone();
        let stdin = if input.is_empty() {
            None
        } else {
            let (r, w) = io::pipe().map_err(io_err("cannot create pipe"))?;
            spec.stdin = Some(r.as_raw_fd());
            Some((r, w))
        };
        let (tx, rx) = mpsc::channel();
        let watcher = Watcher {
            tx,
            wake: Some(wake_w.into()),
        };
        let child = spawn_with(&spec, Some(watcher))?;
        let mut stdin = stdin.map(|(_r, w)| w);
        let mut out = Some(PipeReader::from(child.stdout));
        let mut err = Some(PipeReader::from(child.stderr));
        for fd in [
            out.as_ref().map(|f| f.as_fd()),
            err.as_ref().map(|f| f.as_fd()),
        ]
        .into_iter()
        .flatten()
        .chain([wake_r.as_fd()])
        .chain(stdin.as_ref().map(|w| w.as_fd()))
        {
            set_nonblocking(fd, true).map_err(io_err("cannot set O_NONBLOCK"))?;
        }
        let (pid, start_time) = (child.pid, child.start_time);
        let mut result = RunOutput {
            exit: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            timed_out: false,
        };
        let mut written = 0;
        let mut killed = false;
        loop {
            if result.exit.is_none() {
                result.exit = rx.try_recv().ok();
            }
            if result.exit.is_some() {
                stdin = None;
                if out.is_none() && err.is_none() {
                    break;
                }
                if !killed {
                    // The pipes are held open by something it left behind.
                    let _ = signal_group_checked(pid, start_time, Signal::SIGKILL);
                    killed = true;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                result.timed_out = result.exit.is_none();
                break;
            }
            let mut fds = Vec::with_capacity(4);
            let mut push = |fd: Option<std::os::fd::BorrowedFd<'_>>, events| {
                if let Some(fd) = fd {
                    fds.push(libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events,
                        revents: 0,
                    });
                }
            };
            push(out.as_ref().map(|f| f.as_fd()), libc::POLLIN);
            push(err.as_ref().map(|f| f.as_fd()), libc::POLLIN);
            push(stdin.as_ref().map(|f| f.as_fd()), libc::POLLOUT);
            push(result.exit.is_none().then(|| wake_r.as_fd()), libc::POLLIN);
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: fds is a valid array of pollfd of the given length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(io_err("poll")(io::Error::last_os_error()));
            }
            drain(&mut out, &mut result.stdout);
            drain(&mut err, &mut result.stderr);
            let mut sink = Vec::new();
            drain_into(&mut wake_r, &mut sink);
            if let Some(w) = &mut stdin {
                match w.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => written = input.len(), // EPIPE: it does not read stdin
                }
                if written >= input.len() {
                    stdin = None; // EOF for the child
                }
            }
        }
        if result.exit.is_none() {
            let _ = signal_group_checked(pid, start_time, Signal::SIGKILL);
            result.exit = rx.recv_timeout(Duration::from_secs(5)).ok();
        }
        Ok(result)
    }
}

/// Reads what is available; closes the reader at EOF or on error.
fn drain(reader: &mut Option<PipeReader>, into: &mut Vec<u8>) {
    if let Some(r) = reader
        && drain_into(r, into)
    {
        *reader = None;
    }
}

/// Reads until `WouldBlock` (false) or EOF/error (true), keeping at most [`RUN_OUTPUT_MAX`].
fn drain_into(r: &mut impl Read, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                let room = RUN_OUTPUT_MAX.saturating_sub(into.len());
                into.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orphan_lives_as_long_as_the_start_it_descends_from() {
        let reg = Registry {
            on_exit: None,
            spawning: HashMap::from([(30, None)]),
            watchers: HashMap::new(),
            // Started by us and still there: pids 10 (run 1) and 11 (run 2).
            run_ids: HashMap::from([(10, 1), (11, 2)]),
        };
        // 20 descends from run 1 (live), 21 from run 3 (exited), 22 has no run id.
        let run_id = |p| match p {
            20 => Some(1),
            21 => Some(3),
            _ => None,
        };
        let children = [1, 10, 11, 20, 21, 22, 30];
        assert_eq!(doomed_orphans(&children, &reg, run_id, false), vec![21, 22]);
        assert_eq!(
            doomed_orphans(&children, &reg, run_id, true),
            vec![20, 21, 22]
        );
    }
}
