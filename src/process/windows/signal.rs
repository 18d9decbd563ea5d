//! Signal names on Windows, and what "sending" one means there.
//!
//! Windows has no signals. pypm keeps the POSIX names (so one `pypm.toml` means the same
//! everywhere) and maps them: `SIGKILL` terminates the instance's Job Object (the process and
//! everything it started); every other signal is a `CTRL_BREAK_EVENT` to the instance's
//! process group (each instance is started with `CREATE_NEW_PROCESS_GROUP`), which Python turns
//! into `KeyboardInterrupt`-like shutdown (`signal.SIGBREAK`) and other programs into an exit.

use std::fmt;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::str::FromStr;

use windows_sys::Win32::Foundation::FILETIME;
use windows_sys::Win32::System::Console::{CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_TERMINATE,
    TerminateProcess,
};

use super::job::{self, KILL_EXIT_CODE};

macro_rules! signals {
    ($($name:ident = $n:literal),* $(,)?) => {
        /// The POSIX signals, with Linux's numbers (how `stop_signal` and exits are spelled).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Signal { $($name = $n),* }
        const ALL: &[Signal] = &[$(Signal::$name),*];
        impl Signal {
            pub const fn as_str(self) -> &'static str {
                match self { $(Signal::$name => stringify!($name)),* }
            }
        }
    };
}
signals!(
    SIGHUP = 1,
    SIGINT = 2,
    SIGQUIT = 3,
    SIGILL = 4,
    SIGTRAP = 5,
    SIGABRT = 6,
    SIGBUS = 7,
    SIGFPE = 8,
    SIGKILL = 9,
    SIGUSR1 = 10,
    SIGSEGV = 11,
    SIGUSR2 = 12,
    SIGPIPE = 13,
    SIGALRM = 14,
    SIGTERM = 15,
    SIGSTKFLT = 16,
    SIGCHLD = 17,
    SIGCONT = 18,
    SIGSTOP = 19,
    SIGTSTP = 20,
    SIGTTIN = 21,
    SIGTTOU = 22,
    SIGURG = 23,
    SIGXCPU = 24,
    SIGXFSZ = 25,
    SIGVTALRM = 26,
    SIGPROF = 27,
    SIGWINCH = 28,
    SIGIO = 29,
    SIGPWR = 30,
    SIGSYS = 31,
);

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<i32> for Signal {
    type Error = ParseSignalError;
    fn try_from(n: i32) -> Result<Signal, ParseSignalError> {
        ALL.iter()
            .copied()
            .find(|s| *s as i32 == n)
            .ok_or_else(|| ParseSignalError(n.to_string()))
    }
}

impl FromStr for Signal {
    type Err = ParseSignalError;
    fn from_str(s: &str) -> Result<Signal, ParseSignalError> {
        ALL.iter()
            .copied()
            .find(|sig| sig.as_str() == s)
            .ok_or_else(|| ParseSignalError(s.to_string()))
    }
}

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

/// The name of a signal number as reported in an exit.
pub fn signal_name(signo: i32) -> String {
    match Signal::try_from(signo) {
        Ok(sig) => sig.as_str().to_string(),
        Err(_) => format!("signal {signo}"),
    }
}

fn check_target(id: i32) -> io::Result<u32> {
    if id <= 4 || id as u32 == std::process::id() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid/group {id}"),
        ));
    }
    Ok(id as u32)
}

fn open(pid: u32, access: u32) -> Option<OwnedHandle> {
    // SAFETY: OpenProcess returns a new handle or null.
    let raw = unsafe { OpenProcess(access, 0, pid) };
    // SAFETY: a fresh handle nothing else owns.
    (!raw.is_null()).then(|| unsafe { OwnedHandle::from_raw_handle(raw) })
}

/// Creation time of a process handle, in 100 ns ticks since 1601 (its identity with the pid).
pub(super) fn creation_time(h: &OwnedHandle) -> Option<u64> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut c, mut e, mut k, mut u) = (zero, zero, zero, zero);
    // SAFETY: four out-pointers to FILETIMEs on our stack, a valid handle.
    let ok = unsafe { GetProcessTimes(h.as_raw_handle(), &mut c, &mut e, &mut k, &mut u) };
    (ok != 0).then(|| (u64::from(c.dwHighDateTime) << 32) | u64::from(c.dwLowDateTime))
}

/// Start time of `pid` (see [`creation_time`]), `None` if there is no such process.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let h = open(u32::try_from(pid).ok()?, PROCESS_QUERY_LIMITED_INFORMATION)?;
    creation_time(&h)
}

/// Whether `pid` is still the process that started at `start_time`.
pub fn is_same_process(pid: i32, start_time: u64) -> bool {
    if start_time == 0 {
        return super::is_alive(pid);
    }
    proc_start_time(pid) == Some(start_time) && super::is_alive(pid)
}

/// "Sends" `sig` to one process: SIGKILL terminates it, anything else is a CTRL_BREAK to the
/// group it leads.
pub fn signal_pid(pid: i32, sig: Signal) -> io::Result<()> {
    let pid = check_target(pid)?;
    if sig == Signal::SIGKILL {
        let h = open(pid, PROCESS_TERMINATE).ok_or_else(io::Error::last_os_error)?;
        // SAFETY: a valid handle with PROCESS_TERMINATE.
        if unsafe { TerminateProcess(h.as_raw_handle(), KILL_EXIT_CODE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(());
    }
    ctrl_break(pid)
}

fn ctrl_break(group: u32) -> io::Result<()> {
    // SAFETY: no memory involved.
    if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to the instance whose first process is `pgid`: SIGKILL terminates its Job
/// Object (grandchildren included), anything else is a CTRL_BREAK to its process group.
pub fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    let id = check_target(pgid)?;
    if sig == Signal::SIGKILL {
        return match job::job_of(pgid) {
            Some(j) => j.terminate(),
            None => signal_pid(pgid, sig),
        };
    }
    ctrl_break(id)
}

/// [`signal_pid`], unless `pid` is no longer the process that started at `start_time`
/// (`Ok(false)`).
pub fn signal_checked(pid: i32, start_time: u64, sig: Signal) -> io::Result<bool> {
    if !is_same_process(pid, start_time) {
        return Ok(false);
    }
    signal_pid(pid, sig).map(|()| true)
}

/// [`signal_group`], unless `pid` is no longer the process that started at `start_time`.
pub fn signal_group_checked(pid: i32, start_time: u64, sig: Signal) -> io::Result<bool> {
    if sig == Signal::SIGKILL && job::job_of(pid).is_some() {
        // The job outlives its first process: what is left in it is still ours.
        return signal_group(pid, sig).map(|()| true);
    }
    if !is_same_process(pid, start_time) {
        return Ok(false);
    }
    signal_group(pid, sig).map(|()| true)
}

/// Kills a previous supervisor's instance by pid and start time. Its job died with that
/// supervisor (`KILL_ON_JOB_CLOSE`), so normally nothing is left: 0.
pub fn kill_tree_leftovers(pid: i32, start_time: u64, _pgid: i32) -> io::Result<usize> {
    if start_time == 0 || !is_same_process(pid, start_time) {
        return Ok(0);
    }
    signal_pid(pid, Signal::SIGKILL).map(|()| 1)
}

/// Orphans outside the apps' groups: on Windows they are in their app's job and died with it.
pub fn kill_run_leftovers(_tag: &str) -> usize {
    0
}

/// The console control events the supervisor itself answers, as the signals they stand for
/// (Ctrl+C: SIGINT; Ctrl+Break, closing the console, logoff, shutdown: SIGTERM), in the shape
/// of the `signal-hook` calls the supervisor makes on Unix.
pub mod signal_hook {
    pub mod consts {
        pub const SIGHUP: i32 = 1;
        pub const SIGINT: i32 = 2;
        pub const SIGTERM: i32 = 15;
    }

    pub mod iterator {
        use std::io;
        use std::sync::mpsc::{Receiver, Sender, channel};
        use std::sync::{Mutex, PoisonError};

        use windows_sys::Win32::System::Console::{
            CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT,
            CTRL_SHUTDOWN_EVENT, SetConsoleCtrlHandler,
        };

        use super::consts::{SIGINT, SIGTERM};

        static SUBSCRIBERS: Mutex<Vec<(Vec<i32>, Sender<i32>)>> = Mutex::new(Vec::new());

        unsafe extern "system" fn handler(event: u32) -> i32 {
            let sig = match event {
                CTRL_C_EVENT => SIGINT,
                CTRL_BREAK_EVENT | CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => {
                    SIGTERM
                }
                _ => return 0,
            };
            let subs = SUBSCRIBERS.lock().unwrap_or_else(PoisonError::into_inner);
            let mut handled = 0;
            for (wanted, tx) in subs.iter() {
                if wanted.contains(&sig) && tx.send(sig).is_ok() {
                    handled = 1;
                }
            }
            handled
        }

        /// The signals asked for, as they come.
        pub struct Signals {
            rx: Receiver<i32>,
        }

        impl Signals {
            pub fn new(signals: impl IntoIterator<Item = i32>) -> io::Result<Signals> {
                let (tx, rx) = channel();
                let mut subs = SUBSCRIBERS.lock().unwrap_or_else(PoisonError::into_inner);
                if subs.is_empty() {
                    // SAFETY: installs a handler function that lives as long as the program.
                    if unsafe { SetConsoleCtrlHandler(Some(handler), 1) } == 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                subs.push((signals.into_iter().collect(), tx));
                Ok(Signals { rx })
            }

            pub fn forever(&mut self) -> impl Iterator<Item = i32> + '_ {
                self.rx.iter()
            }
        }
    }
}
