//! Non-Linux unix (macOS): no `/proc`, no parent-death signal, no `close_range`.

use std::collections::HashMap;

use super::Usage;

/// Signals 1..NSIG are reset to their default action in a new child.
const NSIG: libc::c_int = 32;

/// Starts `entry(arg)` in a forked child. Returns the pid, or -1 with `errno` set.
///
/// # Safety
/// `entry` must never return: it may only make async-signal-safe calls, with every signal
/// blocked in the calling thread, and end in `execve` or `_exit`.
pub(super) unsafe fn start_child(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::pid_t {
    // SAFETY: the caller's contract; the child runs only `entry`, which does not return.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            entry(arg);
            libc::_exit(127);
        }
        pid
    }
}

/// # Safety
/// Only in the child between [`start_child`] and exec.
pub(super) unsafe fn set_groups(groups: &[libc::gid_t]) -> libc::c_int {
    // SAFETY: the kernel reads `groups.len()` ids from the slice.
    unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) }
}

/// # Safety
/// Only in the child between [`start_child`] and exec.
pub(super) unsafe fn set_gid(gid: libc::gid_t) -> libc::c_int {
    // SAFETY: no memory arguments.
    unsafe { libc::setgid(gid) }
}

/// # Safety
/// Only in the child between [`start_child`] and exec.
pub(super) unsafe fn set_uid(uid: libc::uid_t) -> libc::c_int {
    // SAFETY: no memory arguments.
    unsafe { libc::setuid(uid) }
}

/// After fork: every signal back to its default action.
///
/// # Safety
/// Async-signal-safe; only for the child between fork and exec.
pub(super) unsafe fn reset_signal_dispositions() {
    // SAFETY: same contract as ours.
    unsafe { reset_with_libc(1, NSIG) }
}

/// Lists the open descriptors of the calling process.
pub(super) const FD_DIR: &str = "/dev/fd";

/// There is no parent-death signal here: children outlive a SIGKILLed supervisor and are found
/// by the next one through the recorded pid and start time.
///
/// # Safety
/// Async-signal-safe; only for the child between fork and exec.
pub(super) unsafe fn set_parent_death_signal(_parent: libc::pid_t) -> Result<(), i32> {
    Ok(())
}

/// After fork: close every descriptor from `low` to `max_fd`.
///
/// # Safety
/// Async-signal-safe; only for the child between fork and exec.
pub(super) unsafe fn close_from(low: libc::c_int, max_fd: libc::c_int) {
    let mut fd = low;
    while fd <= max_fd {
        // SAFETY: close has no memory arguments.
        unsafe { libc::close(fd) };
        fd += 1;
    }
}

/// Only the primary group: supplementary groups are not looked up on this system.
pub(super) fn user_groups(_user: &std::ffi::CStr, gid: libc::gid_t) -> Vec<libc::gid_t> {
    vec![gid]
}

/// After fork: every signal back to its default action through libc's `sigaction`.
///
/// # Safety
/// Async-signal-safe; only for the child between fork and exec.
unsafe fn reset_with_libc(from: libc::c_int, to: libc::c_int) {
    // SAFETY: sigaction reads a local, zeroed (SIG_DFL, no flags, empty mask) struct.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        for sig in from..to {
            // Fails harmlessly for SIGKILL and SIGSTOP.
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
}

#[cfg(target_os = "macos")]
pub(super) fn proc_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    // SAFETY: proc_bsdinfo is plain data; proc_pidinfo writes at most `size` bytes into it.
    unsafe {
        let mut info: libc::proc_bsdinfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        let n = libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        );
        if n != size {
            return None;
        }
        Some(info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
    }
}

#[cfg(not(target_os = "macos"))]
pub(super) fn proc_start_time(_pid: i32) -> Option<u64> {
    None
}

/// `proc_pidinfo(pid, FLAVOR)` into a zeroed `T`; `None` unless it filled all of it.
#[cfg(target_os = "macos")]
fn pidinfo<T>(pid: i32, flavor: libc::c_int) -> Option<T> {
    let size = libc::c_int::try_from(std::mem::size_of::<T>()).ok()?;
    // SAFETY: T is one of libc's plain-data proc_* structs (all-zero is a valid value), and
    // proc_pidinfo writes at most `size` bytes into it.
    unsafe {
        let mut info: T = std::mem::zeroed();
        let n = libc::proc_pidinfo(pid, flavor, 0, (&mut info as *mut T).cast(), size);
        (n == size).then_some(info)
    }
}

/// Every pid on the machine (`proc_listallpids`).
#[cfg(target_os = "macos")]
fn all_pids() -> Vec<i32> {
    // SAFETY: a null buffer asks for the count; the second call writes at most `cap` pids into
    // a buffer of that many (the count may have grown meanwhile: the result is truncated).
    unsafe {
        let n = libc::proc_listallpids(std::ptr::null_mut(), 0);
        if n <= 0 {
            return Vec::new();
        }
        let cap = n as usize + 64;
        let mut pids = vec![0i32; cap];
        let bytes = libc::c_int::try_from(cap * std::mem::size_of::<i32>()).unwrap_or(0);
        let got = libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes);
        pids.truncate(got.max(0) as usize);
        pids.retain(|&p| p > 0);
        pids
    }
}

/// `mach_timebase_info`'s struct (`<mach/mach_time.h>`), declared here: libc deprecates its own
/// copy in favour of the mach2 crate, a dependency for one call.
#[cfg(target_os = "macos")]
#[repr(C)]
struct Timebase {
    numer: u32,
    denom: u32,
}

#[cfg(target_os = "macos")]
unsafe extern "C" {
    fn mach_timebase_info(info: *mut Timebase) -> libc::c_int;
}

/// CPU time and RSS of one process (`PROC_PIDTASKINFO`). Its CPU times are Mach absolute time
/// units: nanoseconds on Intel, scaled by the timebase on Apple silicon.
#[cfg(target_os = "macos")]
fn task_usage(pid: i32) -> Option<(f64, u64)> {
    let t: libc::proc_taskinfo = pidinfo(pid, libc::PROC_PIDTASKINFO)?;
    let mut tb = Timebase { numer: 0, denom: 0 };
    // SAFETY: mach_timebase_info only fills the struct it is given.
    let ok = unsafe { mach_timebase_info(&mut tb) } == 0 && tb.denom != 0;
    let scale = if ok {
        f64::from(tb.numer) / f64::from(tb.denom)
    } else {
        1.0
    };
    let ns = (t.pti_total_user + t.pti_total_system) as f64 * scale;
    Some((ns / 1e9, t.pti_resident_size))
}

/// Each root's process tree (descendants by parent pid, from one listing of every process):
/// CPU seconds and RSS summed, as on Linux. Reaped descendants' CPU time is not counted (macOS
/// keeps no per-process total of it).
#[cfg(target_os = "macos")]
pub(super) fn sample(roots: &[i32]) -> HashMap<i32, Usage> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(b) = pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO) {
            children.entry(b.pbi_ppid as i32).or_default().push(pid);
        }
    }
    let mut out = HashMap::with_capacity(roots.len());
    for &root in roots {
        let Some((cpu, rss)) = task_usage(root) else {
            continue;
        };
        let (mut cpu_seconds, mut rss_bytes, mut pids) = (cpu, rss, vec![root]);
        let mut i = 0;
        while let Some(&pid) = pids.get(i) {
            i += 1;
            let kids = children.get(&pid).map_or(&[][..], Vec::as_slice);
            for &k in kids {
                if k == pid || pids.contains(&k) {
                    continue;
                }
                if let Some((c, r)) = task_usage(k) {
                    cpu_seconds += c;
                    rss_bytes += r;
                }
                pids.push(k);
            }
        }
        out.insert(
            root,
            Usage {
                cpu_seconds,
                rss_bytes,
                pids,
            },
        );
    }
    out
}

#[cfg(not(target_os = "macos"))]
pub(super) fn sample(_roots: &[i32]) -> HashMap<i32, Usage> {
    HashMap::new()
}

/// The supervisor's own usage (its process alone).
#[cfg(target_os = "macos")]
pub(super) fn own_usage() -> Option<Usage> {
    let pid = std::process::id() as i32;
    let (cpu_seconds, rss_bytes) = task_usage(pid)?;
    Some(Usage {
        cpu_seconds,
        rss_bytes,
        pids: vec![pid],
    })
}

#[cfg(not(target_os = "macos"))]
pub(super) fn own_usage() -> Option<Usage> {
    None
}

/// The live members of process group `pgid` (`since`: only processes started at or after it,
/// in [`proc_start_time`]'s unit), so a reused group id is never hit.
#[cfg(target_os = "macos")]
pub(super) fn group_members(pgid: i32, since: u64) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO).is_some_and(|b| {
                b.pbi_pgid as i32 == pgid
                    && b.pbi_start_tvsec * 1_000_000 + b.pbi_start_tvusec >= since
            })
        })
        .collect()
}

#[cfg(not(target_os = "macos"))]
pub(super) fn group_members(_pgid: i32, _since: u64) -> Vec<i32> {
    Vec::new()
}

/// No subreaper outside Linux: an orphan goes to init.
pub(super) fn set_child_subreaper() -> std::io::Result<()> {
    Ok(())
}

pub(super) fn main_thread_children() -> Vec<i32> {
    Vec::new()
}

pub(super) fn env_var(_pid: i32, _key: &str) -> Option<Vec<u8>> {
    None
}

pub(super) fn processes_with_env(_key: &str, _prefix: &[u8]) -> Vec<(i32, u64)> {
    Vec::new()
}
