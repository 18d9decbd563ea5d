//! Exits on Windows: one small thread per started process waits on its handle
//! (`WaitForSingleObject`, no polling), reads the exit code, kills what is left in the
//! instance's job (a grandchild dies with its app) and delivers an [`Exit`] as the Unix reaper
//! does.

use std::io::{self, Read, Write};
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use windows_sys::Win32::System::Threading::{GetExitCodeProcess, INFINITE, WaitForSingleObject};

use super::job::{self, KILL_EXIT_CODE};
use super::signal::{Signal, signal_name};
use super::spawn::{Child, SpawnError, SpawnSpec, spawn_with};

/// Set in every child's environment on Unix to attribute orphans; not used on Windows (the job
/// does it), but never passed on either.
pub const RUN_ID_VAR: &str = "PYPM_RUN_ID";

/// `STATUS_CONTROL_C_EXIT`: a process ended by a console control event's default handler.
const CONTROL_C_EXIT: u32 = 0xC000_013A;

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// The exit code, when it exited (NTSTATUS crash codes are negative).
    pub code: Option<i32>,
    /// SIGKILL when pypm terminated it, SIGINT when a console control event ended it.
    pub signal: Option<i32>,
    pub core_dumped: bool,
    pub at: SystemTime,
    /// Its Job Object refused memory over `memory_max` before it ended
    /// (`JOB_OBJECT_MSG_JOB_MEMORY_LIMIT`).
    pub memory_limit: bool,
}

impl Exit {
    fn from_code(pid: i32, code: u32) -> Exit {
        let (code, signal) = match code {
            KILL_EXIT_CODE => (None, Some(Signal::SIGKILL as i32)),
            CONTROL_C_EXIT => (None, Some(Signal::SIGINT as i32)),
            c => (Some(c as i32), None),
        };
        Exit {
            pid,
            code,
            signal,
            core_dumped: false,
            at: SystemTime::now(),
            memory_limit: false,
        }
    }

    /// `"exit code 3"`, `"signal SIGKILL"`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("signal {}", signal_name(sig)),
            (None, None) => "unknown exit status".to_string(),
        }
    }
}

type OnExit = Arc<dyn Fn(Exit) + Send + Sync>;
static ON_EXIT: OnceLock<OnExit> = OnceLock::new();

/// Starts the thread that waits for `process` and delivers its exit.
pub(super) fn watch(
    pid: i32,
    process: OwnedHandle,
    watcher: Option<Sender<Exit>>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("pypm-wait".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // SAFETY: a process handle we own, waited on and read.
            let code = unsafe {
                WaitForSingleObject(process.as_raw_handle(), INFINITE);
                let mut code = 0u32;
                GetExitCodeProcess(process.as_raw_handle(), &mut code);
                code
            };
            // An exit after the job refused memory is the memory limit's doing (the
            // notification may trail the exit a little: bounded wait, limited jobs only).
            let memory_limit = job::job_of(pid)
                .is_some_and(|j| j.hit_memory_limit(pid as u32, Duration::from_millis(500)));
            // The app is over: what it left running in its job goes with it.
            job::release(pid);
            let mut exit = Exit::from_code(pid, code);
            exit.memory_limit = memory_limit;
            match watcher {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => {
                    if let Some(f) = ON_EXIT.get() {
                        f(exit);
                    }
                }
            }
        })
        .map(|_| ())
}

/// What [`Reaper::run`] collected.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    pub exit: Option<Exit>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

const RUN_OUTPUT_MAX: usize = 1 << 20;

/// The exit deliverer (on Windows a handle on the per-process wait threads).
#[derive(Debug, Clone)]
pub struct Reaper {
    _private: (),
}

impl Reaper {
    /// Sets where exits of children started with [`super::spawn`] go. A second call fails.
    pub fn start(on_exit: impl Fn(Exit) + Send + Sync + 'static) -> io::Result<Reaper> {
        ON_EXIT.set(Arc::new(on_exit)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a child reaper is already running in this process",
            )
        })?;
        Ok(Reaper { _private: () })
    }

    #[cfg(test)]
    pub(crate) fn inert() -> Reaper {
        Reaper { _private: () }
    }

    /// Nothing to do: an instance's descendants are in its job whoever their parent is.
    pub fn adopt_orphans(&self) -> io::Result<()> {
        Ok(())
    }

    pub fn run_tag(&self) -> Option<&'static str> {
        None
    }

    pub fn sweep_orphans(&self) {}

    pub fn kill_orphans(&self) {}

    /// Like [`super::spawn`], but the exit goes to the returned channel.
    pub fn spawn_watched(
        &self,
        spec: &SpawnSpec,
    ) -> Result<(Child, mpsc::Receiver<Exit>), SpawnError> {
        let (tx, rx) = mpsc::channel();
        let (child, _) = spawn_with(spec, Some(tx), false)?;
        Ok((child, rx))
    }

    /// Runs a short command to completion: `input` on its stdin, stdout and stderr collected
    /// (up to 1 MiB each) by a thread each, its exit awaited until `timeout`, when its job is
    /// terminated and `timed_out` set.
    pub fn run(
        &self,
        spec: &SpawnSpec,
        input: &[u8],
        timeout: Duration,
    ) -> Result<RunOutput, SpawnError> {
        let deadline = Instant::now() + timeout;
        let (tx, rx) = mpsc::channel();
        let (child, stdin) = spawn_with(spec, Some(tx), !input.is_empty())?;
        if let Some(mut w) = stdin {
            let input = input.to_vec();
            let _ = std::thread::Builder::new()
                .name("pypm-run-in".into())
                .spawn(move || {
                    let _ = w.write_all(&input);
                });
        }
        let collect = |h: OwnedHandle| {
            std::thread::Builder::new()
                .name("pypm-run-out".into())
                .spawn(move || {
                    let mut r = io::PipeReader::from(h);
                    let mut out = Vec::new();
                    let mut buf = [0u8; 8192];
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let room = RUN_OUTPUT_MAX.saturating_sub(out.len());
                                out.extend_from_slice(&buf[..n.min(room)]);
                            }
                        }
                    }
                    out
                })
        };
        let io_err = |source| SpawnError::Io {
            op: "cannot start a reader thread",
            source,
        };
        let out = collect(child.stdout).map_err(io_err)?;
        let err = collect(child.stderr).map_err(io_err)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let (exit, timed_out) = match rx.recv_timeout(left) {
            Ok(e) => (Some(e), false),
            Err(_) => {
                if let Some(j) = job::job_of(child.pid) {
                    let _ = j.terminate();
                }
                (rx.recv_timeout(Duration::from_secs(5)).ok(), true)
            }
        };
        Ok(RunOutput {
            exit,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
            timed_out,
        })
    }
}
