//! Starting a child on Windows: `CreateProcessW` (through std's `Command`, which quotes the
//! arguments, runs `.bat`/`.cmd` files through `cmd.exe` safely and keeps the pipe handles of
//! concurrent spawns apart), suspended, in a process group of its own
//! (`CREATE_NEW_PROCESS_GROUP`: what a CTRL_BREAK reaches) and in a Job Object of its own
//! before its first instruction runs, so every process it starts is in the job too.

use std::collections::HashMap;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::os::windows::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Sender;

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::Threading::{
    CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, CREATE_SUSPENDED, OpenThread, ResumeThread,
    THREAD_SUSPEND_RESUME,
};

use super::job::{self, Job};
use super::reaper::{self, Exit};
use super::signal::creation_time;
use crate::process::ext::fd::RawFd;

pub use crate::process::spawn_error::SpawnError;

/// What to run and how (the fields of the Unix `SpawnSpec`; those with no Windows meaning are
/// refused by `pypm check` and by [`spawn`]).
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    /// The executable. A bare name is looked up in the `PATH` of [`env`](Self::env) with the
    /// extensions of its `PATHEXT` (default `.COM;.EXE;.BAT;.CMD`); a relative path with a
    /// separator is relative to [`cwd`](Self::cwd).
    pub program: PathBuf,
    /// The full argument vector including `argv[0]` (which Windows does not pass separately).
    pub argv: Vec<String>,
    /// The complete environment (nothing is inherited). On duplicate keys the last wins.
    pub env: Vec<(String, String)>,
    /// Working directory; empty means the supervisor's own.
    pub cwd: PathBuf,
    /// Not on Windows (refused).
    pub nofile: Option<u64>,
    /// Not on Windows (refused).
    pub nice: Option<i32>,
    /// Not on Windows (refused).
    pub user: Option<String>,
    /// Not on Windows (refused).
    pub listen_fds: Vec<(RawFd, String)>,
    /// Not on Windows (ignored: no datagram sockets).
    pub notify_socket: Option<PathBuf>,
    /// stdin of the child: a handle borrowed for the call; `None` is `NUL`.
    pub stdin: Option<RawFd>,
    /// Not on Windows (no cgroups; always empty).
    pub cgroup_procs: Vec<RawFd>,
    /// `memory_max` in bytes: the Job Object's `JOB_OBJECT_LIMIT_JOB_MEMORY`.
    pub memory_max: Option<u64>,
    /// `cpu_max` in cores: the Job Object's CPU rate hard cap ([`super::job::cpu_rate`]).
    pub cpu_max: Option<f64>,
}

impl SpawnSpec {
    /// A spec running `program` with `args` (not counting `argv[0]`), an empty environment and
    /// the supervisor's working directory.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> SpawnSpec {
        let program = program.into();
        let mut argv = vec![program.to_string_lossy().into_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        SpawnSpec {
            program,
            argv,
            ..SpawnSpec::default()
        }
    }
}

/// A started child. Its pid is also its process group id.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    /// Creation time (100 ns ticks since 1601), for identity checks.
    pub start_time: u64,
    /// Read end of the child's stdout pipe (blocking). Drain it until end of file.
    pub stdout: OwnedHandle,
    /// Read end of the child's stderr pipe, like `stdout`.
    pub stderr: OwnedHandle,
}

const OWNED_VARS: [&str; 5] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    reaper::RUN_ID_VAR,
];

/// Starts a child as [`SpawnSpec`] says. Its exit goes to the reaper's `on_exit`, possibly
/// before this returns.
pub fn spawn(spec: &SpawnSpec) -> Result<Child, SpawnError> {
    spawn_with(spec, None, false).map(|(c, _)| c)
}

/// [`spawn`] for each spec, in order.
pub fn spawn_batch(specs: &[SpawnSpec]) -> Vec<Result<Child, SpawnError>> {
    specs.iter().map(spawn).collect()
}

fn unsupported(step: &'static str) -> SpawnError {
    SpawnError::Setup {
        step,
        errno: 0,
        reason: "not available on Windows".into(),
    }
}

fn env_var<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// `program` as `CreateProcessW` should get it: a bare name searched in the child's `PATH` with
/// `PATHEXT`, a relative path made relative to `cwd`.
pub(super) fn resolve_program(
    program: &Path,
    env: &[(String, String)],
    cwd: &Path,
) -> Option<PathBuf> {
    let text = program.as_os_str().to_string_lossy();
    let exts: Vec<String> = env_var(env, "PATHEXT")
        .unwrap_or(".COM;.EXE;.BAT;.CMD")
        .split(';')
        .filter(|e| !e.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let candidates = |base: &Path| -> Vec<PathBuf> {
        let mut v = Vec::new();
        if base.extension().is_some() {
            v.push(base.to_path_buf());
        }
        for e in &exts {
            let mut s = base.as_os_str().to_os_string();
            s.push(e);
            v.push(PathBuf::from(s));
        }
        v
    };
    if text.contains('/') || text.contains('\\') || program.is_absolute() {
        let base = if program.is_relative() && !cwd.as_os_str().is_empty() {
            cwd.join(program)
        } else {
            program.to_path_buf()
        };
        return candidates(&base).into_iter().find(|p| p.is_file());
    }
    let path = env_var(env, "PATH")
        .map(str::to_string)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .flat_map(|d| candidates(&d.join(program)))
        .find(|p| p.is_file())
}

/// A `.bat`/`.cmd` file, which std's `Command` runs as `cmd.exe /e:ON /v:OFF /d /c "SCRIPT"
/// ARGS…`, quoting each argument for cmd (not for `CommandLineToArgvW`): pypm gives it the
/// script itself, never `cmd /c` words of its own.
fn is_batch(program: &Path) -> bool {
    program
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("bat") || e.eq_ignore_ascii_case("cmd"))
}

/// Lets the suspended process run: resumes its (only) thread.
fn resume(pid: u32) -> io::Result<()> {
    // SAFETY: a snapshot handle, closed below; THREADENTRY32 is plain data with its size set.
    unsafe {
        let snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
        if snap == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        let snap = OwnedHandle::from_raw_handle(snap);
        let mut te: THREADENTRY32 = std::mem::zeroed();
        te.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
        let mut ok = Thread32First(snap.as_raw_handle(), &mut te);
        let mut resumed = false;
        while ok != 0 {
            if te.th32OwnerProcessID == pid {
                let t = OpenThread(THREAD_SUSPEND_RESUME, 0, te.th32ThreadID);
                if !t.is_null() {
                    let t = OwnedHandle::from_raw_handle(t);
                    if ResumeThread(t.as_raw_handle()) != u32::MAX {
                        resumed = true;
                    }
                }
            }
            ok = Thread32Next(snap.as_raw_handle(), &mut te);
        }
        if resumed {
            Ok(())
        } else {
            Err(io::Error::other("cannot resume the new process's thread"))
        }
    }
}

/// Starts `spec`; its exit goes to `watcher` or else to the reaper's `on_exit`. With
/// `stdin_pipe`, the child's stdin is a pipe whose write end is returned.
pub(super) fn spawn_with(
    spec: &SpawnSpec,
    watcher: Option<Sender<Exit>>,
    stdin_pipe: bool,
) -> Result<(Child, Option<ChildStdin>), SpawnError> {
    if spec.user.is_some() {
        return Err(unsupported("running as another user (`user`)"));
    }
    if spec.nofile.is_some() {
        return Err(unsupported("setting `nofile`"));
    }
    if spec.nice.is_some() {
        return Err(unsupported("setting `nice`"));
    }
    if !spec.listen_fds.is_empty() {
        return Err(unsupported("passing `listen` sockets"));
    }
    if !spec.cwd.as_os_str().is_empty() && !spec.cwd.is_dir() {
        return Err(SpawnError::CwdMissing {
            cwd: spec.cwd.clone(),
        });
    }
    let program = resolve_program(&spec.program, &spec.env, &spec.cwd).ok_or_else(|| {
        SpawnError::NotFound {
            program: spec.program.clone(),
        }
    })?;
    let mut env: HashMap<String, String> = HashMap::new();
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') {
            return Err(SpawnError::EnvName { name: k.clone() });
        }
        if !OWNED_VARS.iter().any(|o| o.eq_ignore_ascii_case(k)) {
            env.insert(k.clone(), v.clone());
        }
    }
    let mut cmd = Command::new(&program);
    cmd.args(spec.argv.iter().skip(1))
        .env_clear()
        .envs(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED);
    if !spec.cwd.as_os_str().is_empty() {
        cmd.current_dir(&spec.cwd);
    }
    let io_err = |op| move |source| SpawnError::Io { op, source };
    if stdin_pipe {
        cmd.stdin(Stdio::piped());
    } else if let Some(h) = spec.stdin {
        // SAFETY: the caller lends a valid handle for the duration of the call.
        let borrowed = unsafe {
            std::os::windows::io::BorrowedHandle::borrow_raw(h as std::os::windows::io::RawHandle)
        };
        let owned = borrowed
            .try_clone_to_owned()
            .map_err(io_err("cannot duplicate stdin"))?;
        cmd.stdin(Stdio::from(owned));
    } else {
        cmd.stdin(Stdio::null());
    }
    let job = Job::new().map_err(io_err("cannot create a job object"))?;
    // Not fatal: the supervisor still samples memory; the app runs without the cap.
    if let Err(e) = job.limit_memory(spec.memory_max) {
        log::warn!(
            "cannot set memory_max on the job object of {}: {e}",
            spec.program.display()
        );
    }
    if let Err(e) = job.limit_cpu(spec.cpu_max) {
        log::warn!(
            "cannot set cpu_max on the job object of {}: {e}",
            spec.program.display()
        );
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound {
            program: spec.program.clone(),
        },
        // std refuses what cmd.exe could not be given safely (a batch file's argument with a
        // newline or a NUL, CVE-2024-24576): say that it is about the script's arguments.
        io::ErrorKind::InvalidInput if is_batch(&program) => SpawnError::Exec {
            program: spec.program.clone(),
            errno: e.raw_os_error().unwrap_or(0),
            reason: format!("an argument cannot be passed to a batch file through cmd.exe ({e})"),
        },
        _ => SpawnError::Exec {
            program: spec.program.clone(),
            errno: e.raw_os_error().unwrap_or(0),
            reason: e.to_string(),
        },
    })?;
    let pid = child.id();
    let (stdout, stderr, stdin) = (child.stdout.take(), child.stderr.take(), child.stdin.take());
    let process = OwnedHandle::from(child);
    let started = job
        .assign(&process)
        .map_err(io_err("cannot put the process in its job object"))
        .and_then(|()| resume(pid).map_err(io_err("cannot start the process")));
    let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
        let _ = job.terminate();
        return Err(SpawnError::Io {
            op: "cannot create pipes",
            source: io::Error::other("no pipe"),
        });
    };
    if let Err(e) = started {
        // Not running yet: nothing of it can be left once the job is gone.
        let _ = job.terminate();
        return Err(e);
    }
    let start_time = creation_time(&process).unwrap_or(0);
    if spec.memory_max.is_some() || spec.cpu_max.is_some() {
        // What the system kept (Wine keeps the memory limit, refuses the CPU rate).
        match job.limits() {
            Ok(l) => log::debug!(
                "pid {pid}: job object limits memory_max={:?} cpu_rate={:?} kill_on_close={}",
                l.memory_max,
                l.cpu_rate,
                l.kill_on_close
            ),
            Err(e) => log::debug!("pid {pid}: cannot read the job object's limits: {e}"),
        }
    }
    let pid = pid as i32;
    job::register(pid, Arc::new(job));
    reaper::watch(pid, process, watcher).map_err(io_err("cannot watch the process"))?;
    Ok((
        Child {
            pid,
            start_time,
            stdout: stdout.into(),
            stderr: stderr.into(),
        },
        stdin,
    ))
}

/// Makes `cmd` start a daemon: in a process group of its own (the terminal's Ctrl+C does not
/// reach it) with a console of its own and no window (a console is what CTRL_BREAK travels
/// through to its apps).
pub fn detach(cmd: &mut Command) {
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
}
