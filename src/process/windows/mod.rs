//! The Windows side of the OS edge: the same functions and types as the Unix side (see the
//! parent module's doc), implemented with Job Objects, console control events, process handles
//! and a loopback control socket.
//!
//! - [`spawn`]: `CreateProcessW` suspended, with `CREATE_NEW_PROCESS_GROUP`, in a Job Object of
//!   its own (`JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, and `memory_max`/`cpu_max` as the job's
//!   memory limit and CPU rate cap, see [`job`]) before it runs; stdout/stderr pipes.
//! - [`Reaper`]: a small thread per child waits on its handle and delivers its [`Exit`]; the
//!   rest of its job is killed then (no grandchild outlives its app); an exit after the job
//!   refused memory says so ([`Exit::memory_limit`]).
//! - Signals ([`signal`]): SIGKILL terminates the job, any other signal is a `CTRL_BREAK_EVENT`
//!   to the group.
//! - [`sample`]: CPU from job accounting, memory from `GetProcessMemoryInfo` of each process in
//!   the job.
//! - [`net`]: the control channel (loopback TCP + token file, see there); [`acl`]: the token
//!   file's DACL (the current user only).

pub mod acl;
pub mod job;
pub mod net;
pub mod reaper;
pub mod signal;
pub mod spawn;

use std::collections::HashMap;
use std::io;
use std::os::windows::io::{AsRawHandle, AsRawSocket, FromRawHandle, OwnedHandle};
use std::path::Path;
use std::time::Duration;

use windows_sys::Win32::Foundation::{FILETIME, STILL_ACTIVE};
use windows_sys::Win32::Networking::WinSock::{POLLRDNORM, SOCKET_ERROR, WSAPOLLFD, WSAPoll};
use windows_sys::Win32::Security::Cryptography::{
    BCRYPT_USE_SYSTEM_PREFERRED_RNG, BCryptGenRandom,
};
use windows_sys::Win32::System::JobObjects::{
    JOBOBJECT_BASIC_PROCESS_ID_LIST, JobObjectBasicProcessIdList, QueryInformationJobObject,
};
use windows_sys::Win32::System::ProcessStatus::{GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetExitCodeProcess, GetProcessTimes, OpenProcess,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::Usage;
use crate::process::ext::fd::{BorrowedFd, OwnedFd};

pub use reaper::{Exit, Reaper, RunOutput};
pub use signal::{
    ParseSignalError, Signal, is_same_process, kill_run_leftovers, kill_tree_leftovers,
    parse_signal, proc_start_time, signal_checked, signal_group, signal_group_checked, signal_hook,
    signal_name, signal_pid,
};
pub use spawn::{Child, SpawnSpec, detach, spawn, spawn_batch};

/// The user id pypm compares owners with: Windows has SIDs, not uids; 0 stands for "this
/// user" (no file or peer ever reports another).
pub fn euid() -> u32 {
    0
}

/// No root on Windows (an elevated administrator is not one for pypm's purposes).
pub fn is_root() -> bool {
    false
}

/// `ERROR_DISK_FULL`, `ERROR_HANDLE_DISK_FULL`.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(112) | Some(39))
}

/// `ERROR_DIRECTORY` (a path component is a file).
pub fn is_not_a_directory(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(267))
}

/// Nothing to give back on Windows.
pub fn release_startup_memory() {}

/// This machine's name, or `localhost`.
pub fn host_name() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `n` random bytes from the system's generator.
pub fn random_bytes(n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let len = u32::try_from(n).map_err(|_| io::Error::other("too many random bytes"))?;
    // SAFETY: writes `len` bytes into `buf`, which holds that many.
    let status = unsafe {
        BCryptGenRandom(
            std::ptr::null_mut(),
            buf.as_mut_ptr(),
            len,
            BCRYPT_USE_SYSTEM_PREFERRED_RNG,
        )
    };
    if status != 0 {
        return Err(io::Error::other(format!(
            "BCryptGenRandom failed: {status:#x}"
        )));
    }
    Ok(buf)
}

/// No service manager speaks `NOTIFY_SOCKET` on Windows.
pub fn sd_notify(_state: &str) -> io::Result<bool> {
    Ok(false)
}

/// The Wine version when this process runs under Wine (ntdll exports `wine_get_version`), else
/// `None`. Only the Windows tests ask: they skip what Wine does not implement.
pub fn wine_version() -> Option<String> {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let ntdll: Vec<u16> = "ntdll.dll".encode_utf16().chain([0]).collect();
    // SAFETY: a NUL-terminated name; ntdll is loaded in every process, the handle is not owned.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return None;
    }
    // SAFETY: a valid module handle and a NUL-terminated name.
    let f = unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }?;
    // SAFETY: Wine's `const char *wine_get_version(void)`, a static NUL-terminated string.
    let get: extern "C" fn() -> *const std::ffi::c_char = unsafe { std::mem::transmute(f) };
    let p = get();
    if p.is_null() {
        return Some(String::new());
    }
    // SAFETY: non-null and NUL-terminated (above).
    Some(
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// No SIGPIPE on Windows: a write to a closed pipe is an error.
pub fn restore_default_sigpipe() {}

/// Whether `pid` is a running process.
pub fn is_alive(pid: i32) -> bool {
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    if pid == 0 {
        return false;
    }
    // SAFETY: a new handle or null; closed by OwnedHandle.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if raw.is_null() {
        return false;
    }
    // SAFETY: a fresh handle nothing else owns.
    let h = unsafe { OwnedHandle::from_raw_handle(raw) };
    let mut code = 0u32;
    // SAFETY: a valid handle and an out-pointer to a u32.
    let ok = unsafe { GetExitCodeProcess(h.as_raw_handle(), &mut code) };
    ok != 0 && code == STILL_ACTIVE as u32
}

/// A pipe: (read end, write end), not inheritable.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = io::pipe()?;
    Ok((r.into(), w.into()))
}

/// Waits until one of the sockets `fds` is readable, hung up or in error (`WSAPoll`), at most
/// `timeout`. On Windows only sockets can be waited for this way (the log pump reads its pipes
/// on threads instead).
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut polled: Vec<WSAPOLLFD> = fds
        .iter()
        .map(|s| WSAPOLLFD {
            fd: s.as_raw_socket() as usize,
            events: POLLRDNORM,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
    };
    let n = u32::try_from(polled.len()).map_err(|_| io::Error::other("too many sockets"))?;
    // SAFETY: `polled` holds `n` entries for the call.
    let rc = unsafe { WSAPoll(polled.as_mut_ptr(), n, ms) };
    if rc == SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    Ok(polled.iter().map(|p| p.revents != 0).collect())
}

fn unsupported_listen() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "`listen` sockets are not available on Windows",
    )
}

/// `listen` sockets: not on Windows (`pypm check` refuses the key).
pub fn bind_tcp(_addr: &str) -> io::Result<OwnedFd> {
    Err(unsupported_listen())
}

/// `listen` sockets: not on Windows (`pypm check` refuses the key).
pub fn bind_unix(_path: &Path) -> io::Result<OwnedFd> {
    Err(unsupported_listen())
}

/// The control socket (see [`net`]).
pub fn bind_private(path: &Path) -> io::Result<net::UnixListener> {
    net::UnixListener::bind(path)
}

/// Windows does not say who is on the other end of a loopback socket: the token did.
pub fn peer_uid(_stream: &net::UnixStream) -> io::Result<Option<u32>> {
    Ok(None)
}

/// An HTTP(S) client for webhooks and `http` probes; TLS is the system's (SChannel).
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .build(),
        )
        .build()
        .into()
}

fn ticks(f: FILETIME) -> u64 {
    (u64::from(f.dwHighDateTime) << 32) | u64::from(f.dwLowDateTime)
}

/// CPU seconds and working set of one process handle.
fn process_usage(h: *mut core::ffi::c_void) -> Option<(f64, u64)> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut c, mut e, mut k, mut u) = (zero, zero, zero, zero);
    // SAFETY: out-pointers to FILETIMEs and a counters struct of the size given; `h` is valid.
    unsafe {
        if GetProcessTimes(h, &mut c, &mut e, &mut k, &mut u) == 0 {
            return None;
        }
        let mut m: PROCESS_MEMORY_COUNTERS = std::mem::zeroed();
        m.cb = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
        let rss = if GetProcessMemoryInfo(h, &mut m, m.cb) != 0 {
            m.WorkingSetSize as u64
        } else {
            0
        };
        Some(((ticks(k) + ticks(u)) as f64 / 1e7, rss))
    }
}

fn pid_usage(pid: u32) -> Option<(f64, u64)> {
    // SAFETY: a new handle or null; closed by OwnedHandle.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: a fresh handle nothing else owns.
    let h = unsafe { OwnedHandle::from_raw_handle(raw) };
    process_usage(h.as_raw_handle())
}

/// The processes in a job, at most 256.
fn job_pids(job: &job::Job) -> Vec<u32> {
    #[repr(C)]
    struct List {
        head: JOBOBJECT_BASIC_PROCESS_ID_LIST,
        more: [usize; 255],
    }
    // SAFETY: all-zero is valid for this plain struct; the call writes at most its size.
    unsafe {
        let mut list: List = std::mem::zeroed();
        list.head.NumberOfAssignedProcesses = 256;
        let ok = QueryInformationJobObject(
            job.raw(),
            JobObjectBasicProcessIdList,
            (&mut list as *mut List).cast(),
            std::mem::size_of::<List>() as u32,
            std::ptr::null_mut(),
        );
        if ok == 0 {
            return Vec::new();
        }
        let n = (list.head.NumberOfProcessIdsInList as usize).min(256);
        let first = list.head.ProcessIdList.as_ptr();
        (0..n).map(|i| *first.add(i) as u32).collect()
    }
}

/// Each root's usage: CPU of everything that ran in its job (job accounting), memory of every
/// process in it now. Roots that no longer exist are absent.
pub fn sample(roots: &[i32]) -> HashMap<i32, Usage> {
    let mut out = HashMap::new();
    for &root in roots {
        let Ok(pid) = u32::try_from(root) else {
            continue;
        };
        let Some((root_cpu, root_rss)) = pid_usage(pid) else {
            continue;
        };
        let mut usage = Usage {
            cpu_seconds: root_cpu,
            rss_bytes: root_rss,
            pids: vec![root],
        };
        if let Some(job) = job::job_of(root) {
            if let Some((cpu, _)) = job.accounting() {
                usage.cpu_seconds = cpu.max(root_cpu);
            }
            for p in job_pids(&job).into_iter().filter(|&p| p != pid) {
                if let Some((_, rss)) = pid_usage(p) {
                    usage.rss_bytes += rss;
                    usage.pids.push(p as i32);
                }
            }
        }
        out.insert(root, usage);
    }
    out
}

/// The supervisor's own CPU time and working set.
pub fn own_usage() -> Option<Usage> {
    // SAFETY: the pseudo-handle of this process needs no closing.
    let (cpu, rss) = process_usage(unsafe { GetCurrentProcess() })?;
    Some(Usage {
        cpu_seconds: cpu,
        rss_bytes: rss,
        pids: vec![std::process::id() as i32],
    })
}
