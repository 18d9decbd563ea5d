//! The chaos suite (issue 23): faults an operator's worst week brings, each ending in a figure.
//!
//! `cargo test --test chaos` runs the short form (CI, under 5 minutes on 2 cores);
//! `tests/chaos/run --long` the long one (docs/reliability.md lists both with their figures).
//! Each test prints one line starting `chaos:` with what it measured (`--nocapture` shows them).
// Real processes, signals and unix sockets: the Windows subset is tests/windows.
#![cfg(unix)]
#![allow(unsafe_code)]

#[allow(dead_code)]
#[path = "../it/support/mod.rs"]
mod support;

mod abuse;
mod kill;
mod soak;

use std::time::Duration;

/// `PYPM_CHAOS_LONG=1` (what `tests/chaos/run --long` sets): the long form.
pub fn long() -> bool {
    std::env::var_os("PYPM_CHAOS_LONG").is_some_and(|v| v != "0")
}

/// `short` normally, `long` in the long form.
pub fn pick<T>(short: T, long_form: T) -> T {
    if long() { long_form } else { short }
}

/// The supervisor's thread count, open descriptors and resident KiB.
pub fn vitals(pid: i32) -> (usize, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (field("Threads:") as usize, fds, field("VmRSS:"))
}

/// Raises this process's descriptor limit (the abuse tests hold a thousand sockets).
pub fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// How long one `pypm status` takes (it must answer while the supervisor is under attack).
pub fn timed_status(p: &support::Project) -> Duration {
    let began = std::time::Instant::now();
    let out = p.pypm_timeout(&["status", "--json"], Duration::from_secs(10));
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "status failed: {}",
        support::describe(&out)
    );
    took
}
