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

pub(super) fn sample(_roots: &[i32]) -> HashMap<i32, Usage> {
    HashMap::new()
}

pub(super) fn own_usage() -> Option<Usage> {
    None
}

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
