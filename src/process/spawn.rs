//! Starting a child: clone/fork + execve, with every allocation done before.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libc::{c_char, c_int};

use super::spawn_error::{Stage, child_error};
use super::{os, reaper};

pub use super::spawn_error::SpawnError;

/// What to run and how. All of it is applied in the child between fork and exec.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    /// The executable. A bare name (no `/`) is looked up in the `PATH` of [`env`](Self::env)
    /// (default `/usr/local/bin:/usr/bin:/bin`) before fork; a relative path with a `/` is
    /// resolved by `execve` after the `chdir`, i.e. relative to [`cwd`](Self::cwd).
    pub program: PathBuf,
    /// The full argument vector including `argv[0]`; empty means `[program]`.
    pub argv: Vec<String>,
    /// The complete environment (nothing is inherited). On duplicate keys the last wins.
    /// `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES` and `NOTIFY_SOCKET` are removed and set only
    /// from [`listen_fds`](Self::listen_fds) / [`notify_socket`](Self::notify_socket), so a
    /// supervisor that was itself socket-activated never leaks its own values.
    pub env: Vec<(String, String)>,
    /// Working directory; empty means the supervisor's own.
    pub cwd: PathBuf,
    /// `RLIMIT_NOFILE` soft limit; the hard limit is raised to match when it is lower (which
    /// needs root).
    pub nofile: Option<u64>,
    /// Absolute niceness (`setpriority`); negative values need root.
    pub nice: Option<i32>,
    /// Run as this user: uid, primary gid and supplementary groups, and `HOME`, `USER`,
    /// `LOGNAME` from its passwd entry (overriding `env`, like systemd's `User=`). Needs root
    /// unless it names the user pypm already runs as.
    pub user: Option<String>,
    /// Sockets passed as fd 3, 4, … in this order, with `LISTEN_FDS`, `LISTEN_FDNAMES` (the
    /// names joined by `:`) and `LISTEN_PID` (the child's own pid) set. The descriptors are only
    /// borrowed for the duration of the call; the child gets duplicates that share their file
    /// status flags (so pass blocking sockets).
    pub listen_fds: Vec<(RawFd, String)>,
    /// Sets `NOTIFY_SOCKET` to this path.
    pub notify_socket: Option<PathBuf>,
    /// stdin of the child, borrowed for the call; `None` is `/dev/null`.
    pub stdin: Option<RawFd>,
    /// `cgroup.procs` files (opened for writing, borrowed for the call) the child joins before
    /// `execve`, so everything it runs is limited from the start ([`super::cgroup`]).
    pub cgroup_procs: Vec<RawFd>,
    /// `memory_max` (bytes) for spawners that enforce it themselves (Windows: the instance's
    /// Job Object). Ignored here: the cgroup of [`cgroup_procs`](Self::cgroup_procs) does it.
    pub memory_max: Option<u64>,
    /// `cpu_max` (cores), the same way.
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

/// A started child. Its pid is also its process group and session id.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    /// Start time for identity checks ([`super::is_same_process`]): `/proc/PID/stat` field 22
    /// on Linux, microseconds since the epoch on macOS; 0 when it could not be read.
    pub start_time: u64,
    /// Read end of the child's stdout pipe: blocking, close-on-exec. Dropping it makes the
    /// child's writes fail with `EPIPE`/SIGPIPE, so drain it until EOF.
    pub stdout: OwnedFd,
    /// Read end of the child's stderr pipe, like `stdout`.
    pub stderr: OwnedFd,
}

const OWNED_VARS: [&str; 5] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    reaper::RUN_ID_VAR,
];
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

struct Creds {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// Everything the child needs, built before fork so the child never allocates.
struct Prepared {
    program: CString,
    _argv: Vec<CString>,
    argv: Vec<*const c_char>,
    _env: Vec<CString>,
    _listen_pid: Vec<u8>,
    /// Where the child writes its pid digits (just after `LISTEN_PID=`), or null.
    listen_pid: *mut u8,
    envp: Vec<*const c_char>,
    cwd: Option<CString>,
    nofile: Option<libc::rlimit>,
    nice: Option<c_int>,
    creds: Option<Creds>,
    listen: Vec<RawFd>,
    /// Scratch space for the listen fds' temporary duplicates.
    scratch: Vec<c_int>,
    max_fd: c_int,
    parent: libc::pid_t,
    /// The child's [`reaper::RUN_ID_VAR`] (0: none).
    run_id: u64,
    cgroup_procs: Vec<RawFd>,
}

/// Starts a child as [`SpawnSpec`] says and returns once it has called `execve` successfully
/// (typically a quarter of a millisecond), or with the reason it could not.
///
/// The child runs in its own session and process group (pgid = sid = pid), with stdin from
/// `/dev/null` (or [`SpawnSpec::stdin`]), stdout and stderr to fresh pipes, fds 3.. = the listen
/// sockets and nothing else open, default signal dispositions and an empty signal mask.
///
/// On Linux the child gets `PR_SET_PDEATHSIG = SIGKILL`, which the kernel fires when the
/// **thread** that forked it exits, not the process: call this from a thread that lives as long
/// as the supervisor (the supervisor loop's thread), never from a short-lived worker thread.
///
/// With a [`reaper::Reaper`] running, the child's exit is delivered to its `on_exit` callback,
/// possibly before this function returns to the caller. A child that failed before exec is
/// reaped here and never reported.
pub fn spawn(spec: &SpawnSpec) -> Result<Child, SpawnError> {
    spawn_with(spec, None)
}

/// Spawns several children: every child is started first, then each exec's outcome is
/// collected. Where children start with `fork` their `execve`s overlap; on Linux the vfork-style
/// clone returns once the child has exec'd, which costs less than the overlap saved. Same
/// guarantees and threading rule as [`spawn`]; results are in the order of `specs`.
pub fn spawn_batch(specs: &[SpawnSpec]) -> Vec<Result<Child, SpawnError>> {
    let pending: Vec<Result<Pending, SpawnError>> = specs.iter().map(begin).collect();
    pending
        .into_iter()
        .zip(specs)
        .map(|(p, spec)| p.and_then(|p| finish(p, spec, None)))
        .collect()
}

pub(super) fn spawn_with(
    spec: &SpawnSpec,
    watcher: Option<reaper::Watcher>,
) -> Result<Child, SpawnError> {
    finish(begin(spec)?, spec, watcher)
}

/// A forked child that has not yet reported whether its `execve` worked.
struct Pending {
    pid: i32,
    start_time: u64,
    out_r: io::PipeReader,
    err_r: io::PipeReader,
    report_r: io::PipeReader,
}

fn begin(spec: &SpawnSpec) -> Result<Pending, SpawnError> {
    let mut prep = prepare(spec)?;
    let io_err = |op| move |source| SpawnError::Io { op, source };
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io_err("cannot open /dev/null"))?;
    let (out_r, out_w) = io::pipe().map_err(io_err("cannot create pipe"))?;
    let (err_r, err_w) = io::pipe().map_err(io_err("cannot create pipe"))?;
    let (report_r, report_w) = io::pipe().map_err(io_err("cannot create pipe"))?;
    let stdin = spec.stdin.unwrap_or(devnull.as_raw_fd());

    // Signals stay blocked across fork so no handler of ours runs in the child before it
    // resets them.
    // SAFETY: sigset_t is plain data initialised by sigfillset; pthread_sigmask only reads and
    // writes the two sets.
    let old_mask = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    // Holding the reaper's lock across fork means the reaper cannot reap this child before it is
    // registered as spawning, nor before its start time is read.
    let run_id = prep.run_id;
    let mut registry = reaper::lock();
    let mut args = ChildArgs {
        prep: &mut prep,
        fds: [
            stdin,
            out_w.as_raw_fd(),
            err_w.as_raw_fd(),
            report_w.as_raw_fd(),
        ],
    };
    // SAFETY: the child only runs `child_entry`, which makes async-signal-safe calls on `args`
    // and never returns; every signal is blocked.
    let pid = unsafe { os::start_child(child_entry, (&raw mut args).cast()) };
    let fork_error = io::Error::last_os_error();
    let start_time = if pid > 0 {
        registry.spawning.insert(pid, None);
        registry.run_ids.insert(pid, run_id);
        os::proc_start_time(pid).unwrap_or(0)
    } else {
        0
    };
    drop(registry);
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    drop((out_w, err_w, report_w, devnull));
    if pid < 0 {
        return Err(SpawnError::Io {
            op: "fork",
            source: fork_error,
        });
    }
    Ok(Pending {
        pid,
        start_time,
        out_r,
        err_r,
        report_r,
    })
}

fn finish(
    p: Pending,
    spec: &SpawnSpec,
    watcher: Option<reaper::Watcher>,
) -> Result<Child, SpawnError> {
    let Pending {
        pid,
        start_time,
        out_r,
        err_r,
        mut report_r,
    } = p;
    // The report pipe is close-on-exec: EOF means execve succeeded, 8 bytes mean it failed.
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        match report_r.read(&mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got == report.len() {
        let stage = u32::from_le_bytes([report[0], report[1], report[2], report[3]]);
        let errno = i32::from_le_bytes([report[4], report[5], report[6], report[7]]);
        // The child _exits right after reporting. If the reaper got it first this is ECHILD.
        let mut status = 0;
        // SAFETY: waits for our own child; status is a local.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        reaper::finish_spawn(pid, None, false);
        return Err(child_error(spec, stage, errno));
    }
    reaper::finish_spawn(pid, watcher, true);
    Ok(Child {
        pid,
        start_time,
        stdout: out_r.into(),
        stderr: err_r.into(),
    })
}

fn cstring(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::Nul { what: what() })
}

fn prepare(spec: &SpawnSpec) -> Result<Prepared, SpawnError> {
    // The environment, last duplicate winning, without the variables we own.
    let mut vars: Vec<(String, String)> = Vec::with_capacity(spec.env.len() + 6);
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut set = |vars: &mut Vec<(String, String)>, k: &str, v: String| match index.get(k) {
        Some(&i) => vars[i].1 = v,
        None => {
            index.insert(k.to_string(), vars.len());
            vars.push((k.to_string(), v));
        }
    };
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') {
            return Err(SpawnError::EnvName { name: k.clone() });
        }
        if !OWNED_VARS.contains(&k.as_str()) {
            set(&mut vars, k, v.clone());
        }
    }

    let mut creds = None;
    if let Some(name) = &spec.user {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| SpawnError::Io {
                op: "cannot look up user",
                source: e.into(),
            })?
            .ok_or_else(|| SpawnError::UnknownUser { user: name.clone() })?;
        let euid = nix::unistd::geteuid();
        if !euid.is_root() && euid != user.uid {
            return Err(SpawnError::NotRoot { user: name.clone() });
        }
        if euid.is_root() {
            let cname = cstring(|| format!("user `{name}`"), name.as_bytes())?;
            creds = Some(Creds {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                groups: os::user_groups(&cname, user.gid.as_raw()),
            });
        }
        set(&mut vars, "HOME", user.dir.to_string_lossy().into_owned());
        set(&mut vars, "USER", user.name.clone());
        set(&mut vars, "LOGNAME", user.name.clone());
    }
    let mut want_listen_pid = false;
    if !spec.listen_fds.is_empty() {
        let names: Vec<&str> = spec.listen_fds.iter().map(|(_, n)| n.as_str()).collect();
        set(&mut vars, "LISTEN_FDS", spec.listen_fds.len().to_string());
        set(&mut vars, "LISTEN_FDNAMES", names.join(":"));
        want_listen_pid = true;
    }
    if let Some(sock) = &spec.notify_socket {
        set(
            &mut vars,
            "NOTIFY_SOCKET",
            sock.to_string_lossy().into_owned(),
        );
    }
    let run_id = reaper::next_run_id().map(|(n, value)| {
        set(&mut vars, reaper::RUN_ID_VAR, value);
        n
    });

    let path_var = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let program_path = resolve_program(&spec.program, path_var)?;
    let program = cstring(
        || format!("program `{}`", spec.program.display()),
        program_path.as_os_str().as_bytes(),
    )?;
    let argv_src: Vec<&[u8]> = if spec.argv.is_empty() {
        vec![spec.program.as_os_str().as_bytes()]
    } else {
        spec.argv.iter().map(|a| a.as_bytes()).collect()
    };
    let argv_c = argv_src
        .iter()
        .map(|a| cstring(|| format!("argument `{}`", a.escape_ascii()), a))
        .collect::<Result<Vec<_>, _>>()?;
    let env_c = vars
        .iter()
        .map(|(k, v)| {
            cstring(
                || format!("environment variable `{k}`"),
                format!("{k}={v}").as_bytes(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut argv: Vec<*const c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    // Room for "LISTEN_PID=" + up to 12 digits + NUL, filled in by the child.
    let mut listen_pid_buf = Vec::with_capacity(LISTEN_PID_PREFIX.len() + 13);
    let mut listen_pid = std::ptr::null_mut();
    if want_listen_pid {
        listen_pid_buf.extend_from_slice(LISTEN_PID_PREFIX);
        listen_pid_buf.resize(LISTEN_PID_PREFIX.len() + 13, 0);
        envp.push(listen_pid_buf.as_ptr().cast());
        // SAFETY: the offset is inside the buffer, which is never resized after this.
        listen_pid = unsafe { listen_pid_buf.as_mut_ptr().add(LISTEN_PID_PREFIX.len()) };
    }
    envp.push(std::ptr::null());

    let cwd = if spec.cwd.as_os_str().is_empty() {
        None
    } else {
        Some(cstring(
            || format!("working directory `{}`", spec.cwd.display()),
            spec.cwd.as_os_str().as_bytes(),
        )?)
    };
    let nofile = spec.nofile.map(|n| {
        let n = n as libc::rlim_t;
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the local struct.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } == 0;
        let hard = if ok && (cur.rlim_max == libc::RLIM_INFINITY || cur.rlim_max >= n) {
            cur.rlim_max
        } else {
            n
        };
        libc::rlimit {
            rlim_cur: n,
            rlim_max: hard,
        }
    });
    let listen: Vec<RawFd> = spec.listen_fds.iter().map(|(fd, _)| *fd).collect();
    Ok(Prepared {
        program,
        _argv: argv_c,
        argv,
        _env: env_c,
        _listen_pid: listen_pid_buf,
        listen_pid,
        envp,
        cwd,
        nofile,
        nice: spec.nice,
        creds,
        scratch: vec![-1; listen.len()],
        max_fd: highest_open_fd().max(listen.iter().copied().max().unwrap_or(0)),
        listen,
        parent: std::process::id() as libc::pid_t,
        run_id: run_id.unwrap_or(0),
        cgroup_procs: spec.cgroup_procs.clone(),
    })
}

/// Looks a bare program name up in `PATH` like `execvp`, but before fork.
fn resolve_program(program: &Path, path_var: Option<&str>) -> Result<PathBuf, SpawnError> {
    let bytes = program.as_os_str().as_bytes();
    if bytes.contains(&b'/') {
        return Ok(program.to_path_buf());
    }
    let not_found = || SpawnError::NotFound {
        program: program.to_path_buf(),
    };
    if bytes.is_empty() {
        return Err(not_found());
    }
    let mut first_file = None;
    for dir in path_var
        .unwrap_or("/usr/local/bin:/usr/bin:/bin")
        .split(':')
    {
        if !dir.starts_with('/') {
            continue;
        }
        let candidate = Path::new(dir).join(OsStr::from_bytes(bytes));
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
        {
            if meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            first_file.get_or_insert(candidate);
        }
    }
    // A file that is there but not executable: execve reports "permission denied".
    first_file.ok_or_else(not_found)
}

/// Makes `cmd` start a daemon: in a session of its own (no controlling terminal; the caller's
/// terminal and process group signals do not reach it) and with no descriptor open but 0–2,
/// so a caller that waits for the end of an inherited pipe (`$(pypm up -d)`, CI runners) is not
/// held up by it. For `pypm up -d`, which starts the supervisor with `std::process::Command`.
pub fn detach(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let max_fd = highest_open_fd();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (setsid, close_range or close) on no memory but its copied `max_fd`. Closing every
    // descriptor from 3 also closes std's close-on-exec error pipe: an exec failure then shows
    // as an early exit of the child, which the caller reports.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            os::close_from(3, max_fd);
            Ok(())
        });
    }
}

/// The highest descriptor open now, bounding the close loop on kernels without `close_range`.
/// On Linux `close_range` (5.9+) makes the bound moot, so the cheap limit is used instead of
/// listing `/proc/self/fd` at every spawn.
fn highest_open_fd() -> c_int {
    #[cfg(not(target_os = "linux"))]
    if let Ok(dir) = std::fs::read_dir(os::FD_DIR) {
        let max = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<c_int>().ok())
            .max();
        if let Some(max) = max {
            return max;
        }
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(65536) as c_int
    } else {
        65536
    }
}

/// What [`child_entry`] gets from [`begin`].
struct ChildArgs<'a> {
    prep: &'a mut Prepared,
    fds: [c_int; 4],
}

/// The new process's entry point ([`os::start_child`]).
extern "C" fn child_entry(arg: *mut libc::c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` of `begin`, alive until the child has exec'd or exited.
    unsafe {
        let args = &mut *arg.cast::<ChildArgs<'_>>();
        child(args.prep, args.fds)
    }
}

/// The child between fork and exec: only async-signal-safe calls, no allocation, no panics.
///
/// `fds` = [stdin source, stdout write end, stderr write end, report pipe write end].
///
/// # Safety
/// Only in the child of a fork, with `p` prepared by [`prepare`].
unsafe fn child(p: &mut Prepared, fds: [c_int; 4]) -> ! {
    let [stdin, out, err, mut report] = fds;
    // SAFETY: every call below is an async-signal-safe syscall wrapper on descriptors and
    // memory prepared before fork.
    unsafe {
        let n = p.listen.len() as c_int;
        // Targets are 0..=2, 3..3+n, and 3+n for the report pipe; stage everything above them
        // first so that no dup2 below overwrites a descriptor still to be moved.
        let high = 3 + n + 1;
        if libc::setsid() < 0 {
            fail(report, Stage::Setsid);
        }
        for &fd in p.cgroup_procs.iter() {
            // Writing 0 moves the writer: this process joins the cgroup.
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(report, Stage::Cgroup);
            }
        }
        let moved = libc::fcntl(report, libc::F_DUPFD_CLOEXEC, high);
        if moved < 0 {
            fail(report, Stage::Fds);
        }
        report = moved;
        let stage_high = |fd: c_int| {
            let hi = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, high);
            if hi < 0 {
                fail(report, Stage::Fds);
            }
            hi
        };
        let (stdin, out, err) = (stage_high(stdin), stage_high(out), stage_high(err));
        for (slot, &fd) in p.scratch.iter_mut().zip(p.listen.iter()) {
            *slot = stage_high(fd);
        }
        // dup2 clears close-on-exec on the target.
        for (from, to) in [(stdin, 0), (out, 1), (err, 2)] {
            if libc::dup2(from, to) < 0 {
                fail(report, Stage::Fds);
            }
        }
        let mut target = 3;
        for &fd in p.scratch.iter() {
            if libc::dup2(fd, target) < 0 {
                fail(report, Stage::Fds);
            }
            target += 1;
        }
        if libc::dup2(report, target) < 0 {
            fail(report, Stage::Fds);
        }
        report = target;
        libc::fcntl(report, libc::F_SETFD, libc::FD_CLOEXEC);
        os::close_from(target + 1, p.max_fd.max(high) + n + 8);

        if let Some(limit) = &p.nofile
            && libc::setrlimit(libc::RLIMIT_NOFILE, limit) != 0
        {
            fail(report, Stage::Nofile);
        }
        if let Some(nice) = p.nice
            && libc::setpriority(libc::PRIO_PROCESS as _, 0, nice) != 0
        {
            fail(report, Stage::Nice);
        }
        if let Some(c) = &p.creds {
            if os::set_groups(&c.groups) != 0 {
                fail(report, Stage::Groups);
            }
            if os::set_gid(c.gid) != 0 {
                fail(report, Stage::Gid);
            }
            if os::set_uid(c.uid) != 0 {
                fail(report, Stage::Uid);
            }
        }
        // After the credential change, which would clear it.
        if let Err(errno) = os::set_parent_death_signal(p.parent) {
            fail_with(report, Stage::DeathSignal, errno);
        }
        if let Some(cwd) = &p.cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            fail(report, Stage::Chdir);
        }
        if !p.listen_pid.is_null() {
            write_pid(p.listen_pid, libc::getpid());
        }
        os::reset_signal_dispositions();
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(p.program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        fail(report, Stage::Exec)
    }
}

/// Writes the decimal digits of `pid` and a NUL at `dst` (room for 13 bytes).
///
/// # Safety
/// `dst` must point to 13 writable bytes.
unsafe fn write_pid(dst: *mut u8, pid: libc::pid_t) {
    let mut digits = [0u8; 12];
    let mut len = 0;
    let mut n = pid.unsigned_abs();
    for d in digits.iter_mut() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    // SAFETY: len <= 12 digits + NUL fit in the 13 bytes.
    unsafe {
        for (i, d) in digits[..len].iter().rev().enumerate() {
            *dst.add(i) = *d;
        }
        *dst.add(len) = 0;
    }
}

/// Reports the current errno for `stage` and exits.
unsafe fn fail(report: c_int, stage: Stage) -> ! {
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: forwarded to the caller's contract.
    unsafe { fail_with(report, stage, errno) }
}

unsafe fn fail_with(report: c_int, stage: Stage, errno: i32) -> ! {
    let mut msg = [0u8; 8];
    let (a, b) = msg.split_at_mut(4);
    a.copy_from_slice(&(stage as u32).to_le_bytes());
    b.copy_from_slice(&errno.to_le_bytes());
    // SAFETY: writes 8 bytes from a local buffer (atomic on a pipe), then exits without
    // running any Rust or libc exit handlers.
    unsafe {
        libc::write(report, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pid_digits_in_place() {
        for (pid, want) in [
            (1, "1"),
            (42, "42"),
            (4194304, "4194304"),
            (i32::MAX, "2147483647"),
        ] {
            let mut buf = [0xffu8; 13];
            // SAFETY: 13 writable bytes.
            unsafe { write_pid(buf.as_mut_ptr(), pid) };
            let end = buf.iter().position(|&b| b == 0).unwrap();
            assert_eq!(std::str::from_utf8(&buf[..end]).unwrap(), want);
        }
    }

    #[test]
    fn resolves_bare_names_in_path() {
        let sh = resolve_program(Path::new("sh"), Some("relative:/nonexistent:/bin")).unwrap();
        assert_eq!(sh, Path::new("/bin/sh"));
        assert!(matches!(
            resolve_program(Path::new("no-such-program-pypm"), Some("/bin")),
            Err(SpawnError::NotFound { .. })
        ));
        assert_eq!(
            resolve_program(Path::new("./x"), None).unwrap(),
            Path::new("./x")
        );
    }

    #[test]
    fn owned_variables_are_replaced_and_duplicates_collapse() {
        let mut spec = SpawnSpec::new("/bin/true", &[]);
        spec.env = vec![
            ("A".into(), "1".into()),
            ("LISTEN_FDS".into(), "9".into()),
            ("A".into(), "2".into()),
        ];
        let p = prepare(&spec).unwrap();
        let env: Vec<_> = p
            ._env
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(env, ["A=2"]);
        assert!(p.listen_pid.is_null());
    }
}
