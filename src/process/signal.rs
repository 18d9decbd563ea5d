//! Signal names, and signalling that never hits a recycled pid.

use std::io;
use std::str::FromStr;

use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

use super::os;

pub use nix::sys::signal::Signal;

/// A signal name or number that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal `{0}` (expected a name like SIGTERM or TERM, or a number)")]
pub struct ParseSignalError(pub String);

/// Parses `"SIGTERM"`, `"TERM"`, `"sigterm"` or `"15"`.
pub fn parse_signal(text: &str) -> Result<Signal, ParseSignalError> {
    let err = || ParseSignalError(text.to_string());
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| err());
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| err())
}

/// The name of a signal number as reported in an exit: `"SIGKILL"`, or `"signal 40"` for one
/// without a name (real-time signals).
pub fn signal_name(signo: i32) -> String {
    match Signal::try_from(signo) {
        Ok(sig) => sig.as_str().to_string(),
        Err(_) => format!("signal {signo}"),
    }
}

/// pid 0, -1 and 1 would address our own group, every process, or init: never a child of ours.
fn check_target(id: i32) -> io::Result<Pid> {
    // SAFETY: getpgrp has no arguments and cannot fail.
    let own_group = unsafe { libc::getpgrp() };
    if id <= 1 || id == own_group || id == std::process::id() as i32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid/group {id}"),
        ));
    }
    Ok(Pid::from_raw(id))
}

/// Sends `sig` to one process. Prefer [`signal_checked`] for anything spawned a while ago.
pub fn signal_pid(pid: i32, sig: Signal) -> io::Result<()> {
    kill(check_target(pid)?, sig).map_err(io::Error::from)
}

/// Sends `sig` to a whole process group. Prefer [`signal_group_checked`].
pub fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    killpg(check_target(pgid)?, sig).map_err(io::Error::from)
}

/// The start time of `pid` (see [`super::Child::start_time`] for the unit), `None` when there is
/// no such process. A zombie keeps its start time until it is reaped.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    os::proc_start_time(pid)
}

/// Whether `pid` is still the process that started at `start_time` (false for a dead pid and for
/// one the kernel gave to another process).
pub fn is_same_process(pid: i32, start_time: u64) -> bool {
    proc_start_time(pid) == Some(start_time)
}

fn ignore_gone(r: nix::Result<()>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sends `sig` to `pid` only if it is still the process that started at `start_time`.
/// `Ok(false)`: it is gone (or the pid now belongs to someone else) and nothing was sent.
pub fn signal_checked(pid: i32, start_time: u64, sig: Signal) -> io::Result<bool> {
    let target = check_target(pid)?;
    if !is_same_process(pid, start_time) {
        return Ok(false);
    }
    ignore_gone(kill(target, sig))
}

/// Sends `sig` to the process group led by `pid` (a child from [`super::spawn`]), checking
/// identity first:
/// - the leader is still the process that started at `start_time` (or its zombie): the whole
///   group gets the signal;
/// - the pid now belongs to another process: nothing is sent;
/// - the leader is gone: its pid cannot be reused while members of its group live, so the
///   remaining members are leftovers of ours; each live member of group `pid` that started no
///   earlier than the leader gets the signal (Linux; elsewhere nothing is sent).
///
/// Returns whether anything was signalled. Use it for stop (stop signal, then SIGKILL) and to
/// kill what an app left behind after its main process exited.
pub fn signal_group_checked(pid: i32, start_time: u64, sig: Signal) -> io::Result<bool> {
    signal_group_inner(pid, start_time, pid, sig).map(|n| n > 0)
}

/// For leftovers of a supervisor that died by SIGKILL: given a recorded leader `pid`, its
/// `start_time` and its process group `pgid`, SIGKILL the group if the leader is still that
/// process, or else the group members that outlived it (see [`signal_group_checked`]). Returns
/// how many processes (or 1 for a whole group) were signalled; 0 when nothing matched.
pub fn kill_tree_leftovers(pid: i32, start_time: u64, pgid: i32) -> io::Result<usize> {
    signal_group_inner(pid, start_time, pgid, Signal::SIGKILL)
}

/// For leftovers of a supervisor that died by SIGKILL, outside the groups
/// [`kill_tree_leftovers`] reaches: SIGKILLs every process whose `PYPM_RUN_ID` says it descends
/// from a child of the process with [`super::Reaper::run_tag`] `tag`, with its process group if
/// it leads one (it called `setsid`). Each is checked by start time before it is signalled.
/// Returns how many were signalled. Linux only (elsewhere 0).
pub fn kill_run_leftovers(tag: &str) -> usize {
    let prefix = format!("{tag}.");
    let mut n = 0;
    for (pid, start) in os::processes_with_env(super::reaper::RUN_ID_VAR, prefix.as_bytes()) {
        if pid <= 1 || pid == std::process::id() as i32 {
            continue;
        }
        let group = signal_group_checked(pid, start, Signal::SIGKILL).unwrap_or(false);
        if signal_checked(pid, start, Signal::SIGKILL).unwrap_or(false) || group {
            n += 1;
        }
    }
    n
}

fn signal_group_inner(pid: i32, start_time: u64, pgid: i32, sig: Signal) -> io::Result<usize> {
    check_target(pid)?;
    let group = check_target(pgid)?;
    match proc_start_time(pid) {
        Some(t) if t == start_time => Ok(ignore_gone(killpg(group, sig))? as usize),
        Some(_) => Ok(0),
        None => {
            // With pgid != pid, a live process owning the number `pgid` that started before our
            // leader leads some other group.
            if pgid != pid && proc_start_time(pgid).is_some_and(|t| t < start_time) {
                return Ok(0);
            }
            let mut n = 0;
            for member in os::group_members(pgid, start_time) {
                if member > 1 && ignore_gone(kill(Pid::from_raw(member), sig))? {
                    n += 1;
                }
            }
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        for (text, want) in [
            ("SIGTERM", Signal::SIGTERM),
            ("TERM", Signal::SIGTERM),
            ("term", Signal::SIGTERM),
            (" sigint ", Signal::SIGINT),
            ("15", Signal::SIGTERM),
            ("9", Signal::SIGKILL),
            ("HUP", Signal::SIGHUP),
            ("SIGUSR1", Signal::SIGUSR1),
        ] {
            assert_eq!(parse_signal(text), Ok(want), "{text}");
        }
        for bad in ["", "SIG", "SIGFOO", "0", "999", "-9", "KILLL"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_signal("SIGFOO").unwrap_err().to_string(),
            "unknown signal `SIGFOO` (expected a name like SIGTERM or TERM, or a number)"
        );
    }

    #[test]
    fn names_signal_numbers() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(40), "signal 40");
    }

    #[test]
    fn refuses_dangerous_targets() {
        for id in [-1, 0, 1, std::process::id() as i32] {
            assert!(signal_pid(id, Signal::SIGTERM).is_err());
            assert!(signal_group(id, Signal::SIGTERM).is_err());
        }
    }
}
