//! The OS process edge: spawning, signalling, reaping and measuring child processes.
//!
//! This module owns every `unsafe` block and every `nix`/`libc` call of pypm. It holds no policy:
//! it never decides *when* to start, stop or restart anything; the supervisor loop does, and turns
//! what this module reports (an [`Exit`], a [`Usage`] sample, a [`SpawnError`]) into events.
//!
//! Pieces:
//! - [`spawn`] / [`Reaper::spawn_watched`]: `clone(CLONE_VM | CLONE_VFORK)` like `posix_spawn`
//!   (`fork` off Linux) + execve, with everything an instance needs (own session, `/dev/null`
//!   stdin, stdout/stderr pipes, only fds 0–2 plus the `listen` sockets, `LISTEN_*` and
//!   `NOTIFY_SOCKET`, `nofile`, `nice`, `user`, death signal). Failures before exec come back
//!   from the call itself as a [`SpawnError`].
//! - [`Reaper`]: the single owner of `waitpid(-1)` in the process. Turns SIGCHLD into [`Exit`]
//!   callbacks without polling. **Once a `Reaper` runs, nothing else in the process may wait for
//!   children** (`std::process::Child::wait`/`output` would race it and get `ECHILD`): run short
//!   commands with [`Reaper::spawn_watched`] or [`Reaper::run`] instead.
//! - Orphans: with [`Reaper::adopt_orphans`] the process is a subreaper, so a descendant that
//!   left its app's process group and lost its parent becomes our child;
//!   [`Reaper::sweep_orphans`] kills those whose started ancestor is gone (`PYPM_RUN_ID`).
//! - Signals and identity: [`signal_group_checked`] and friends never hit a recycled pid; they
//!   compare the pid's start time ([`proc_start_time`]) with the one recorded at spawn.
//! - Monitoring: [`sample`] sums CPU and RSS over each root's process tree in one pass over
//!   `/proc`; [`own_usage`] measures the supervisor itself.
//! - [`lock_exclusive`]: the `flock` that CLI edits of `pypm.toml` take turns on.
//!
//! Threading: spawn from a long-lived thread (see [`spawn`] about `PR_SET_PDEATHSIG`).
//!
//! Portability: Linux is the target. Other unix systems (macOS) compile: spawning, signalling and
//! reaping work there, there is no parent-death signal, start times come from `proc_pidinfo`, and
//! [`sample`]/[`own_usage`] return nothing.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod os;
#[cfg(all(unix, not(target_os = "linux")))]
#[path = "unix.rs"]
mod os;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
pub mod alloc;
#[cfg(windows)]
#[path = "windows/alloc.rs"]
pub mod alloc;
pub mod cgroup;
#[cfg(unix)]
#[path = "ext_unix.rs"]
pub mod ext;
#[cfg(windows)]
#[path = "windows/ext.rs"]
pub mod ext;
mod lock;
#[cfg(unix)]
mod memory;
#[cfg(unix)]
mod os_facts;
#[cfg(unix)]
mod poll;
#[cfg(unix)]
mod reaper;
#[cfg(unix)]
mod signal;
#[cfg(unix)]
mod sockets;
#[cfg(unix)]
mod spawn;
mod spawn_error;

#[cfg(unix)]
use std::collections::HashMap;
#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

pub use lock::{FileLock, lock_exclusive};
#[cfg(unix)]
pub use memory::release_startup_memory;
#[cfg(unix)]
pub use os_facts::{euid, is_disk_full, is_not_a_directory, is_root};
#[cfg(unix)]
pub use poll::{pipe, wait_readable};
#[cfg(unix)]
pub use reaper::{Exit, Reaper, RunOutput};
#[cfg(unix)]
pub use signal::{
    ParseSignalError, Signal, is_same_process, kill_run_leftovers, kill_tree_leftovers,
    parse_signal, proc_start_time, signal_checked, signal_group, signal_group_checked, signal_name,
    signal_pid,
};
#[cfg(unix)]
pub use sockets::{bind_private, bind_tcp, bind_unix, http_agent, peer_uid};
#[cfg(unix)]
pub use spawn::{Child, SpawnError, SpawnSpec, detach, spawn, spawn_batch};
#[cfg(windows)]
pub use spawn_error::SpawnError;
#[cfg(windows)]
pub use windows::*;

/// The app keys a platform has no meaning for: `pypm check` refuses them there, naming the key
/// and the platform, instead of the spawn failing later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySupport {
    /// The platform's name as messages say it (`Windows`).
    pub platform: &'static str,
    /// App keys that must not be set there.
    pub unsupported: &'static [&'static str],
}

/// Windows: no uids to switch to (`user`), no `RLIMIT_NOFILE` (`nofile`), no nice values (`nice`;
/// priority classes are another model), and no socket passing to a child's fd 3 (`listen`).
pub const WINDOWS_KEYS: KeySupport = KeySupport {
    platform: "Windows",
    unsupported: &["user", "nofile", "nice", "listen"],
};

/// Unix (Linux, macOS): every key means something.
pub const UNIX_KEYS: KeySupport = KeySupport {
    platform: "Unix",
    unsupported: &[],
};

/// Whether this build is for Windows, for the pure modules whose file layouts differ (Python
/// environments: `Scripts\python.exe`, `PATH` split by `;`).
pub const WINDOWS: bool = cfg!(windows);

/// The CPU rate a Windows job's hard cap counts in: 10000 is every CPU of the machine.
pub const JOB_CPU_RATE_FULL: u32 = 10_000;

/// `cpu_max` cores as a Windows job's CPU rate: `cores / CPUs × 10000`, at least 1, at most
/// 10000 (more cores than the machine has is the whole machine). Pure, so Linux tests it.
pub fn job_cpu_rate(cores: f64, cpus: usize) -> u32 {
    let cpus = cpus.max(1) as f64;
    let rate = (cores / cpus * f64::from(JOB_CPU_RATE_FULL)).round();
    if rate.is_nan() || rate < 1.0 {
        1
    } else if rate >= f64::from(JOB_CPU_RATE_FULL) {
        JOB_CPU_RATE_FULL
    } else {
        rate as u32
    }
}

/// What enforces `memory_max` when the spawner does it itself, for `inspect` ("kernel-enforced
/// by …"): on Windows the instance's Job Object; `None` on Unix (a cgroup or sampling, which the
/// supervisor knows).
pub fn spawn_memory_limit() -> Option<&'static str> {
    cfg!(windows).then_some(
        "the instance's Job Object (JOB_OBJECT_LIMIT_JOB_MEMORY: the committed memory of all its processes together; an allocation over it fails)",
    )
}

/// What enforces `cpu_max` (cores) when the spawner does it itself, like
/// [`spawn_memory_limit`].
pub fn spawn_cpu_limit(cores: f64) -> Option<String> {
    cfg!(windows).then(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!(
            "the instance's Job Object (CPU rate hard cap {} of {JOB_CPU_RATE_FULL} on {cpus} CPUs)",
            job_cpu_rate(cores, cpus)
        )
    })
}

/// What this build's platform supports.
pub const KEY_SUPPORT: KeySupport = if cfg!(windows) {
    WINDOWS_KEYS
} else {
    UNIX_KEYS
};

/// In a statically linked glibc build (`packaging/build-release`), limits name lookups to the
/// sources glibc has built in: users and groups from `/etc/passwd` and `/etc/group`, hosts from
/// `/etc/hosts` and DNS. A static program cannot safely load the NSS modules that
/// `/etc/nsswitch.conf` may name (`systemd`, `sss`, `mdns`, …): glibc `dlopen`s them into a
/// process without a dynamic loader of its own, and looking up an unknown user through
/// `libnss_systemd` crashed the supervisor. Call it first thing in `main`; elsewhere a no-op
/// (dynamically linked, every source of `nsswitch.conf` is used).
pub fn restrict_static_name_lookups() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static"))]
    os::nss_builtin_sources_only();
}

#[cfg(unix)]
/// This machine's host name (for the SMTP greeting), or `localhost`.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(unix)]
/// `n` random bytes from the kernel (`/dev/urandom`, on Linux and macOS alike).
pub fn random_bytes(n: usize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(unix)]
/// Tells the service manager that started pypm (systemd `Type=notify`, `NOTIFY_SOCKET` in the
/// environment) about the supervisor's own state, e.g. `READY=1` or `STOPPING=1`. No socket: does
/// nothing. An address starting with `@` is Linux's abstract namespace.
pub fn sd_notify(state: &str) -> io::Result<bool> {
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET").filter(|a| !a.is_empty()) else {
        return Ok(false);
    };
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let bytes = addr.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &a)?;
            return Ok(true);
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::other("abstract sockets are Linux-only"));
        }
    }
    sock.send_to(state.as_bytes(), std::path::Path::new(&addr))?;
    Ok(true)
}

#[cfg(unix)]
/// Makes a write to a closed pipe end the process (SIGPIPE's default) instead of an `EPIPE`
/// error, which Rust's `println!` turns into a panic. For short-lived CLI commands only.
pub fn restore_default_sigpipe() {
    // SAFETY: sets one signal disposition; no handler involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Sets an environment variable of this process (and of everything it starts). For `main`'s
/// first steps only, before any thread exists (`std::env::set_var` is unsound while another
/// thread reads the environment).
pub fn set_env_at_start(key: &str, value: &str) {
    // SAFETY: called from `commands::run` before any thread is spawned.
    unsafe {
        std::env::set_var(key, value);
    }
}

/// Resource usage of one process tree (or of the supervisor itself, see [`own_usage`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Usage {
    /// CPU time (user + system) of every live process in the tree, plus the CPU time of
    /// descendants they already reaped, so the counter does not drop when a worker is replaced.
    pub cpu_seconds: f64,
    /// Sum of the resident set sizes of the live processes in the tree (shared pages are counted
    /// once per process, like `ps`).
    pub rss_bytes: u64,
    /// The root first, then its descendants (found by parent pid).
    pub pids: Vec<i32>,
}

/// Measures each root's whole process tree (descendants by parent pid) from one pass over
/// `/proc`. Roots that no longer exist are absent from the result. A few milliseconds for a
/// thousand processes; meant to be called every few seconds. Empty on non-Linux systems.
#[cfg(unix)]
pub fn sample(roots: &[i32]) -> HashMap<i32, Usage> {
    os::sample(roots)
}

/// The supervisor's own CPU time (not counting its children) and RSS. `None` on non-Linux systems.
#[cfg(unix)]
pub fn own_usage() -> Option<Usage> {
    os::own_usage()
}

/// CPU use in percent of one core (200.0 = two cores busy) between two samples of the same tree
/// taken `elapsed` apart. Never negative (a tree whose member vanished can lose CPU time).
pub fn cpu_percent(prev_cpu_seconds: f64, cur_cpu_seconds: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    ((cur_cpu_seconds - prev_cpu_seconds) / secs * 100.0).max(0.0)
}

#[cfg(unix)]
/// Switches `O_NONBLOCK` on or off for a descriptor, e.g. a [`Child`] pipe read end that a log
/// pump wants to poll. The pipes come back blocking.
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor the caller borrows; no memory is passed.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if new != flags && unsafe { libc::fcntl(raw, libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets a pipe's capacity (`F_SETPIPE_SZ`); bounded by `fs.pipe-max-size` and, for users
/// without `CAP_SYS_RESOURCE`, by their pipe budget. Returns the capacity the kernel chose.
#[cfg(target_os = "linux")]
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl on a borrowed descriptor; no memory is passed.
    let got = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(got as usize)
}

#[cfg(unix)]
/// Lowercase text of an errno value, for messages like "permission denied".
fn errno_text(errno: i32) -> String {
    let desc = nix::errno::Errno::from_raw(errno).desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("error {errno}"),
    }
}

#[cfg(unix)]
/// Whether `pid` is a running process; a zombie (exited, not yet reaped by its parent) is not.
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state != 'Z' && state != 'X')
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            Ok(()) => true,
            Err(e) => e == nix::errno::Errno::EPERM,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_per_core_and_never_negative() {
        assert_eq!(cpu_percent(1.0, 2.0, Duration::from_secs(2)), 50.0);
        assert_eq!(cpu_percent(1.0, 5.0, Duration::from_secs(2)), 200.0);
        assert_eq!(cpu_percent(5.0, 1.0, Duration::from_secs(2)), 0.0);
        assert_eq!(cpu_percent(1.0, 2.0, Duration::ZERO), 0.0);
    }

    #[test]
    fn a_job_cpu_rate_is_cores_over_cpus_in_ten_thousandths_capped() {
        assert_eq!(job_cpu_rate(1.5, 2), 7500);
        assert_eq!(job_cpu_rate(0.5, 8), 625);
        assert_eq!(job_cpu_rate(2.0, 2), JOB_CPU_RATE_FULL);
        assert_eq!(
            job_cpu_rate(16.0, 4),
            JOB_CPU_RATE_FULL,
            "capped at the machine"
        );
        assert_eq!(job_cpu_rate(0.000_01, 64), 1, "never 0 (0 is no cap)");
        assert_eq!(
            job_cpu_rate(1.0, 0),
            JOB_CPU_RATE_FULL,
            "0 CPUs counts as 1"
        );
        // The enforcement `inspect` reports comes from here: the Job Object only on Windows.
        assert_eq!(spawn_memory_limit().is_some(), cfg!(windows));
        assert_eq!(spawn_cpu_limit(1.0).is_some(), cfg!(windows));
    }

    #[cfg(unix)]
    #[test]
    fn errno_text_is_lowercase() {
        assert_eq!(errno_text(libc::EACCES), "permission denied");
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
    }
}
