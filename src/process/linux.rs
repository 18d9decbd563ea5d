//! Linux specifics: `/proc`, `prctl(PR_SET_PDEATHSIG)`, `close_range`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::sync::OnceLock;

use super::Usage;

/// Signals 1..NSIG are reset to their default action in a new child.
const NSIG: libc::c_int = 65;

/// Lists the open descriptors of the calling process.
#[allow(dead_code)] // listed only where close_range is missing
pub(super) const FD_DIR: &str = "/proc/self/fd";

/// Stack of a child between clone and exec. It runs a few dozen syscall wrappers in shallow
/// frames (a few KiB), so 64 KiB leaves a wide margin.
const CHILD_STACK: usize = 64 * 1024;

/// Starts `entry(arg)` in a new process the way `posix_spawn` does: `clone(CLONE_VM |
/// CLONE_VFORK)`, so the child shares our memory (no page tables copied, no copy-on-write
/// faults) and the calling thread sleeps until the child has called `execve` or `_exit`. Returns
/// the pid, or -1 with `errno` set.
///
/// # Safety
/// `entry` must never return: it may only make async-signal-safe calls on memory prepared
/// before this call, with every signal blocked in the calling thread, and end in `execve` or
/// `_exit`.
pub(super) unsafe fn start_child(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::pid_t {
    // One stack per thread, mapped at its first spawn and kept. A fresh 64 KiB block per child
    // cost musl's allocator an `mmap` and a `munmap` (with its TLB shootdown) on every start and
    // restart, and every allocator a few page faults; a block kept in glibc's heap kept the
    // heap from shrinking (+0.5 MiB RSS). A mapping of its own costs only the pages the child
    // touches. Reusing it is safe because CLONE_VFORK returns only once the child is done with
    // it, and nothing else on this thread runs in between (the caller blocks every signal).
    thread_local! {
        static STACK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let base = STACK.try_with(std::cell::Cell::get).unwrap_or(0);
    let (base, kept) = if base != 0 {
        (base, true)
    } else {
        // SAFETY: an anonymous private mapping: no memory of ours is touched.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHILD_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return -1; // errno is mmap's
        }
        // Kept for the thread's next spawn; unmapped after this one when the thread is being
        // torn down (its locals are gone).
        let kept = STACK.try_with(|s| s.set(addr as usize)).is_ok();
        (addr as usize, kept)
    };
    // The stack grows down from its 16-byte aligned top.
    let top = (base + CHILD_STACK) & !15;
    // SAFETY: the stack outlives the child's use of it (it is unmapped, if at all, only after
    // clone returns, and CLONE_VFORK returns only once the child has exec'd or exited); the rest
    // is the caller's contract.
    let pid = unsafe {
        libc::clone(
            entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
    };
    if !kept {
        let errno = std::io::Error::last_os_error();
        // SAFETY: the mapping made above; the child is done with it (CLONE_VFORK).
        unsafe { libc::munmap(base as *mut libc::c_void, CHILD_STACK) };
        if pid < 0 {
            // SAFETY: errno is this thread's; munmap must not hide clone's error.
            unsafe { *libc::__errno_location() = errno.raw_os_error().unwrap_or(0) };
        }
    }
    pid
}

// Credentials of the child between clone and exec, as raw syscalls: glibc's wrappers would
// broadcast the change to every thread of what it takes for the process, i.e. the supervisor's
// threads, whose memory the child shares until exec (`posix_spawn` does the same).

/// # Safety
/// Only in the child between [`start_child`] and exec.
pub(super) unsafe fn set_groups(groups: &[libc::gid_t]) -> libc::c_long {
    // SAFETY: the kernel reads `groups.len()` ids from the slice.
    unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }
}

/// # Safety
/// Only in the child between [`start_child`] and exec.
pub(super) unsafe fn set_gid(gid: libc::gid_t) -> libc::c_long {
    // SAFETY: no memory arguments.
    unsafe { libc::syscall(libc::SYS_setgid, gid) }
}

/// # Safety
/// Only in the child between [`start_child`] and exec.
pub(super) unsafe fn set_uid(uid: libc::uid_t) -> libc::c_long {
    // SAFETY: no memory arguments.
    unsafe { libc::syscall(libc::SYS_setuid, uid) }
}

/// After fork: make the kernel SIGKILL the child when the forking *thread* exits, and catch the
/// race where it already did. Must run after any credential change (which clears the setting).
///
/// # Safety
/// Async-signal-safe; only for the child between fork and exec.
pub(super) unsafe fn set_parent_death_signal(parent: libc::pid_t) -> Result<(), i32> {
    // SAFETY: plain syscalls without memory arguments.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(last_errno());
        }
        if libc::getppid() != parent {
            return Err(libc::ESRCH);
        }
    }
    Ok(())
}

/// After fork: close every descriptor >= `low`. `max_fd` (the highest descriptor seen open
/// before fork) bounds the fallback loop for kernels without `close_range` (< 5.9).
///
/// # Safety
/// Async-signal-safe; only for the child between fork and exec.
pub(super) unsafe fn close_from(low: libc::c_int, max_fd: libc::c_int) {
    // SAFETY: plain syscalls without memory arguments.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            low as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) == 0
        {
            return;
        }
        let mut fd = low;
        while fd <= max_fd {
            libc::close(fd);
            fd += 1;
        }
    }
}

/// After fork: every signal back to its default action. Through the raw syscall, because
/// glibc's `sigaction` refuses the signals it reserves (32 and 33), which an ancestor may have
/// left ignored (ignored signals survive exec).
///
/// # Safety
/// Async-signal-safe; only for the child between fork and exec.
pub(super) unsafe fn reset_signal_dispositions() {
    // The kernel's struct sigaction with SIG_DFL, no flags, no restorer and an empty mask is all
    // zeroes in every layout; 32 bytes cover the largest.
    let dfl = [0u64; 4];
    let sigset_size = ((NSIG - 1) / 8) as libc::size_t;
    for sig in 1..NSIG {
        // SAFETY: the kernel reads 32 bytes from a local; no old action is written.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u8>(),
                sigset_size,
            )
        };
        if r != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: same contract as ours.
            unsafe { reset_with_libc(sig, sig + 1) };
        }
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Supplementary groups of `user` (whose primary group is `gid`), for `setgroups`.
pub(super) fn user_groups(user: &std::ffi::CStr, gid: libc::gid_t) -> Vec<libc::gid_t> {
    match nix::unistd::getgrouplist(user, nix::unistd::Gid::from_raw(gid)) {
        Ok(groups) => groups.into_iter().map(|g| g.as_raw()).collect(),
        Err(_) => vec![gid],
    }
}

/// The fields of `/proc/PID/stat` pypm uses.
struct Stat {
    ppid: i32,
    pgrp: i32,
    /// utime + stime, in clock ticks.
    own_ticks: u64,
    /// cutime + cstime (reaped children), in clock ticks.
    children_ticks: u64,
    start_time: u64,
    rss_pages: u64,
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) may contain spaces and parentheses,
/// so fields are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here.
    let mut fields = rest.split_ascii_whitespace();
    let mut field = |n: usize| -> Option<&str> { fields.nth(n) };
    let ppid = field(1)?.parse().ok()?; // 4
    let pgrp = field(0)?.parse().ok()?; // 5
    let utime: u64 = field(8)?.parse().ok()?; // 14
    let stime: u64 = field(0)?.parse().ok()?; // 15
    let cutime: i64 = field(0)?.parse().ok()?; // 16
    let cstime: i64 = field(0)?.parse().ok()?; // 17
    let start_time = field(4)?.parse().ok()?; // 22
    let rss: i64 = field(1)?.parse().ok()?; // 24
    Some(Stat {
        ppid,
        pgrp,
        own_ticks: utime + stime,
        children_ticks: (cutime.max(0) + cstime.max(0)) as u64,
        start_time,
        rss_pages: rss.max(0) as u64,
    })
}

fn read_stat(pid: &str, buf: &mut String, path: &mut String) -> Option<Stat> {
    path.clear();
    let _ = write!(path, "/proc/{pid}/stat");
    buf.clear();
    // One read into a stack buffer: open, read, close — no size probe (`/proc` files report 0).
    let mut raw = [0u8; 1024];
    let mut f = std::fs::File::open(&*path).ok()?;
    let mut len = 0;
    while len < raw.len() {
        match f.read(&mut raw[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.push_str(std::str::from_utf8(&raw[..len]).ok()?);
    parse_stat(buf)
}

pub(super) fn proc_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    read_stat(&pid.to_string(), &mut String::new(), &mut String::new()).map(|s| s.start_time)
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    // SAFETY: sysconf has no memory arguments.
    *TICKS.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    })
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no memory arguments.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    })
}

/// Calls `f(pid, stat)` for every process in `/proc`, reusing one buffer.
fn for_each_process(mut f: impl FnMut(i32, &Stat)) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let (mut buf, mut path) = (String::with_capacity(512), String::with_capacity(32));
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        // A process can vanish between readdir and open: skip it.
        if let Some(stat) = read_stat(name, &mut buf, &mut path) {
            f(pid, &stat);
        }
    }
}

pub(super) fn sample(roots: &[i32]) -> HashMap<i32, Usage> {
    struct Proc {
        ticks: u64,
        rss_pages: u64,
    }
    let mut procs: HashMap<i32, Proc> = HashMap::new();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for_each_process(|pid, stat| {
        procs.insert(
            pid,
            Proc {
                ticks: stat.own_ticks + stat.children_ticks,
                rss_pages: stat.rss_pages,
            },
        );
        children.entry(stat.ppid).or_default().push(pid);
    });
    let (tick, page) = (clock_ticks(), page_size());
    let mut out = HashMap::with_capacity(roots.len());
    for &root in roots {
        if !procs.contains_key(&root) {
            continue;
        }
        let (mut ticks, mut pages, mut pids) = (0u64, 0u64, vec![root]);
        let mut i = 0;
        while let Some(&pid) = pids.get(i) {
            i += 1;
            if let Some(p) = procs.get(&pid) {
                ticks += p.ticks;
                pages += p.rss_pages;
            }
            if let Some(kids) = children.get(&pid) {
                // A pid appears once in /proc, so the tree has no cycles.
                pids.extend(kids.iter().copied().filter(|&k| k != pid));
            }
        }
        out.insert(
            root,
            Usage {
                cpu_seconds: ticks as f64 / tick,
                rss_bytes: pages * page,
                pids,
            },
        );
    }
    out
}

pub(super) fn own_usage() -> Option<Usage> {
    let stat = read_stat("self", &mut String::new(), &mut String::new())?;
    Some(Usage {
        cpu_seconds: stat.own_ticks as f64 / clock_ticks(),
        rss_bytes: stat.rss_pages * page_size(),
        pids: vec![std::process::id() as i32],
    })
}

/// Live members of process group `pgid` that started at or after `since` (a start time).
pub(super) fn group_members(pgid: i32, since: u64) -> Vec<i32> {
    let mut out = Vec::new();
    for_each_process(|pid, stat| {
        if stat.pgrp == pgid && stat.start_time >= since {
            out.push(pid);
        }
    });
    out
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

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`): a
/// process that leaves an app's session (`setsid`) and outlives its parent becomes our child
/// instead of init's, so it can still be found and stopped.
pub(super) fn set_child_subreaper() -> std::io::Result<()> {
    // SAFETY: no memory arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The children of this process's main thread. The kernel hands adopted orphans to the first
/// live thread of a subreaper, which is the main thread while the process runs; children forked
/// by other threads are listed under those threads and are not included.
pub(super) fn main_thread_children() -> Vec<i32> {
    let pid = std::process::id();
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_ascii_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process (pid, start time) whose environment holds `key` with a value that starts with
/// `prefix`. Reads the environment of every process we may read: for rare use.
pub(super) fn processes_with_env(key: &str, prefix: &[u8]) -> Vec<(i32, u64)> {
    let mut found = Vec::new();
    for_each_process(|pid, stat| {
        if env_var(pid, key).is_some_and(|v| v.starts_with(prefix)) {
            found.push((pid, stat.start_time));
        }
    });
    found
}

/// The value of `key` in the environment a process was started with (`/proc/PID/environ`: that
/// of its `execve`), if it has one and we may read it.
pub(super) fn env_var(pid: i32, key: &str) -> Option<Vec<u8>> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(key.as_bytes())?.strip_prefix(b"="))
        .map(<[u8]>::to_vec)
}

/// See [`super::restrict_static_name_lookups`].
#[cfg(all(target_env = "gnu", target_feature = "crt-static"))]
pub(super) fn nss_builtin_sources_only() {
    unsafe extern "C" {
        /// glibc (`<nss.h>`): replaces the `nsswitch.conf` line of one database; meant for
        /// statically linked programs.
        fn __nss_configure_lookup(
            db: *const libc::c_char,
            line: *const libc::c_char,
        ) -> libc::c_int;
    }
    for (db, line) in [
        (c"passwd", c"files"),
        (c"group", c"files"),
        (c"shadow", c"files"),
        (c"hosts", c"files dns"),
    ] {
        // SAFETY: two NUL-terminated strings; called before any other thread exists.
        unsafe { __nss_configure_lookup(db.as_ptr(), line.as_ptr()) };
    }
}

/// See [`super::release_startup_memory`]: `MADV_DONTNEED` on the read-only mappings of our own
/// binary that were never written (code, constants, the relocation table a static-pie binary
/// reads once at start-up). Only those: a private mapping that was written (relocated data)
/// would lose its changes.
pub(super) fn release_code_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in clean_exe_mappings(&smaps, exe.to_str().unwrap_or_default()) {
        // SAFETY: the range is a read-only, file-backed mapping of this process's executable
        // that holds no private (written) page: dropping its pages loses nothing, they fault
        // back in unchanged from the page cache when used.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The read-only mappings of `exe` (code `r-xp`, data `r--p`) in `/proc/self/smaps` text that
/// have no anonymous page (a page written since it was mapped becomes a private anonymous copy):
/// code, and the constants and relocation tables start-up read. (`Private_Dirty` is no guide: a
/// binary on tmpfs has every file page "dirty".)
/// The RELRO segment (`r--p` too, but written by the relocation at start-up) is skipped: its
/// pages are private copies that dropping would lose.
fn clean_exe_mappings(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    let mut dirty = false;
    let mut flush = |cur: &mut Option<(usize, usize)>, dirty: bool| {
        if let Some(r) = cur.take()
            && !dirty
        {
            out.push(r);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            // START-END PERMS OFFSET DEV INODE PATH
            flush(&mut cur, dirty);
            dirty = false;
            let perms = f.next();
            let path = f.nth(3);
            if matches!(perms, Some("r-xp" | "r--p")) && path == Some(exe) {
                cur = Some((start, end));
            }
            continue;
        }
        if cur.is_some() && first == "Anonymous:" && f.next().is_some_and(|kb| kb != "0") {
            dirty = true;
        }
    }
    flush(&mut cur, dirty);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_mappings_of_the_executable_are_released() {
        let smaps = "\
1000-2000 r--p 00000000 fe:00 5 /bin/pypm
Rss:                 960 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
2000-3000 r-xp 001ad000 fe:00 5 /bin/pypm
Private_Dirty:      3864 kB
Anonymous:             0 kB
3000-4000 r--p 0057c000 fe:00 5 /bin/pypm
Private_Dirty:       240 kB
Anonymous:           240 kB
4000-5000 rw-p 005b7000 fe:00 5 /bin/pypm
Private_Dirty:         0 kB
5000-6000 r-xp 00000000 fe:00 9 /lib/other.so
Private_Dirty:         0 kB
6000-7000 r--p 00000000 00:00 0
Private_Dirty:         0 kB
";
        assert_eq!(
            clean_exe_mappings(smaps, "/bin/pypm"),
            [(0x1000, 0x2000), (0x2000, 0x3000)]
        );
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    7 3 2 1 20 0 1 0 98765 10000000 250 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.own_ticks, 10);
        assert_eq!(s.children_ticks, 3);
        assert_eq!(s.start_time, 98765);
        assert_eq!(s.rss_pages, 250);
    }

    #[test]
    fn env_var_reads_the_environment_a_process_started_with() {
        let me = std::process::id() as i32;
        let path = std::env::var_os("PATH").expect("tests run with a PATH");
        assert_eq!(env_var(me, "PATH"), Some(path.into_encoded_bytes()));
        // A key is matched whole, not as a prefix of a longer one.
        assert_eq!(env_var(me, "PAT"), None);
        assert_eq!(env_var(i32::MAX, "PATH"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        let me = std::process::id() as i32;
        assert!(proc_start_time(me).is_some());
        assert!(own_usage().unwrap().rss_bytes > 0);
        assert!(proc_start_time(0).is_none());
    }
}
