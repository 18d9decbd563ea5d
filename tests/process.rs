//! Real processes against `pypm::process`. One reaper serves every test in this binary (it reaps
//! with `waitpid(-1)`, so tests never wait for children themselves).
//! Its own test binary, not a module of `it`: that reaper would also collect the children `it`'s
//! tests wait for with `Child::wait`.
// Real processes, signals and unix sockets: the Windows subset is tests/windows.
#![cfg(unix)]
// Tests may call libc directly (fd flags set up by hand for the tests).
#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Condvar, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pypm::process::*;

static EXITS: LazyLock<(Mutex<HashMap<i32, Exit>>, Condvar)> =
    LazyLock::new(|| (Mutex::new(HashMap::new()), Condvar::new()));

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        Reaper::start(|exit| {
            let (map, cv) = &*EXITS;
            map.lock().unwrap().insert(exit.pid, exit);
            cv.notify_all();
        })
        .unwrap()
    })
}

/// Waits for the reaper to report `pid`.
fn wait_exit(pid: i32, timeout: Duration) -> Exit {
    let deadline = Instant::now() + timeout;
    let (map, cv) = &*EXITS;
    let mut exits = map.lock().unwrap();
    loop {
        if let Some(exit) = exits.remove(&pid) {
            return exit;
        }
        let now = Instant::now();
        assert!(now < deadline, "no exit reported for pid {pid}");
        exits = cv.wait_timeout(exits, deadline - now).unwrap().0;
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the child's group when the test ends, whatever happened.
struct Guard(i32, u64);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = signal_group_checked(self.0, self.1, Signal::SIGKILL);
    }
}

fn sh(script: &str) -> SpawnSpec {
    let mut spec = SpawnSpec::new("/bin/sh", &["-c", script]);
    spec.argv[0] = "sh".into();
    spec.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    spec
}

fn start(spec: &SpawnSpec) -> (Child, Guard) {
    reaper();
    let child = spawn(spec).unwrap_or_else(|e| panic!("spawn failed: {e}"));
    let guard = Guard(child.pid, child.start_time);
    (child, guard)
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    File::from(fd).read_to_string(&mut s).unwrap();
    s
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat[stat.rfind(')').unwrap()..].starts_with(") Z"),
        Err(_) => false,
    }
}

/// Fields after the command name in /proc/PID/stat: [0] = state, [2] = pgrp, [3] = session.
fn stat_fields(stat: &str) -> Vec<String> {
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let start = out.find(&format!("<{name}>\n")).unwrap() + name.len() + 3;
    let end = out.find(&format!("</{name}>")).unwrap();
    out[start..end].lines().collect()
}

#[test]
fn spawn_sets_up_session_fds_env_cwd_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let script = "echo pid $$\n\
                  echo '<stat>'; cat /proc/$$/stat; echo '</stat>'\n\
                  echo '<fds>'; ls /proc/$$/fd; echo '</fds>'\n\
                  echo stdin $(readlink /proc/$$/fd/0)\n\
                  echo fd3 $(readlink /proc/$$/fd/3)\n\
                  echo nofile $(ulimit -n)\n\
                  echo nice $(nice)\n\
                  echo cwd $(pwd -P)\n\
                  echo '<env>'; tr '\\0' '\\n' < /proc/$$/environ; echo '</env>'";
    // A descriptor without close-on-exec must not leak into the child either.
    let leaky = File::open("/dev/null").unwrap();
    // SAFETY: clears FD_CLOEXEC on a descriptor this test owns.
    assert_eq!(
        unsafe { libc::fcntl(leaky.as_raw_fd(), libc::F_SETFD, 0) },
        0
    );
    let mut spec = sh(script);
    spec.env.push(("FOO".into(), "bar baz".into()));
    spec.env.push(("PYPM_APP".into(), "api".into()));
    spec.env.push(("LISTEN_FDS".into(), "7".into())); // replaced by ours
    spec.cwd = dir.path().to_path_buf();
    spec.nofile = Some(1000);
    spec.nice = Some(5);
    spec.listen_fds = vec![(listener.as_raw_fd(), "web".into())];
    spec.notify_socket = Some("/tmp/pypm-notify.sock".into());
    let (child, _guard) = start(&spec);
    let out = read_all(child.stdout);
    let exit = wait_exit(child.pid, Duration::from_secs(10));
    assert_eq!(exit.code, Some(0), "{out}");
    let line = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no `{key}` in {out}"))
            .to_string()
    };

    let pid = child.pid.to_string();
    assert_eq!(line("pid"), pid);
    let stat = stat_fields(section(&out, "stat")[0]);
    assert_eq!(stat[2], pid, "own process group");
    assert_eq!(stat[3], pid, "own session");
    let fds: Vec<&str> = section(&out, "fds");
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "only stdio and the listen socket"
    );
    assert_eq!(line("stdin"), "/dev/null");
    let ours = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
    assert!(ours.to_str().unwrap().starts_with("socket:["));
    assert_eq!(line("fd3"), ours.to_str().unwrap(), "fd 3 is our listener");
    assert_eq!(line("nofile"), "1000");
    assert_eq!(line("nice"), "5");
    assert_eq!(
        line("cwd"),
        dir.path().canonicalize().unwrap().to_str().unwrap()
    );
    let env: HashSet<&str> = section(&out, "env").into_iter().collect();
    let want_pid = format!("LISTEN_PID={pid}");
    let want: HashSet<&str> = [
        "PATH=/usr/bin:/bin",
        "FOO=bar baz",
        "PYPM_APP=api",
        "LISTEN_FDS=1",
        "LISTEN_FDNAMES=web",
        &want_pid,
        "NOTIFY_SOCKET=/tmp/pypm-notify.sock",
    ]
    .into_iter()
    .collect();
    assert_eq!(env, want, "exact environment");
}

#[test]
fn signals_are_reset() {
    // Rust ignores SIGPIPE (and its test harness signal 32), and spawn blocks every signal around
    // fork: none of it may reach the program. Run directly, not through a shell that resets them.
    let mut spec = SpawnSpec::new("/bin/grep", &["-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
    spec.env = vec![];
    let (child, _guard) = start(&spec);
    let out = read_all(child.stdout);
    assert_eq!(
        out,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    assert_eq!(wait_exit(child.pid, Duration::from_secs(10)).code, Some(0));
}

#[test]
fn listen_fds_are_placed_in_order_even_when_sources_collide() {
    // Several sockets, passed in the reverse order of their descriptor numbers.
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut spec = sh("for fd in 3 4 5; do readlink /proc/$$/fd/$fd; done; \
                       echo $LISTEN_FDNAMES; ls /proc/$$/fd");
    spec.listen_fds = vec![
        (c.as_raw_fd(), "c".into()),
        (b.as_raw_fd(), "b".into()),
        (a.as_raw_fd(), "a".into()),
    ];
    let (child, _guard) = start(&spec);
    let out = read_all(child.stdout);
    let link = |l: &TcpListener| {
        std::fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd()))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], [link(&c), link(&b), link(&a)]);
    assert_eq!(lines[3], "c:b:a");
    assert_eq!(lines[4..], ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(wait_exit(child.pid, Duration::from_secs(10)).code, Some(0));
}

#[test]
fn spawn_errors_are_clear() {
    reaper();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("app.py");
    std::fs::write(&script, "print('hi')\n").unwrap();
    let bad_shebang = dir.path().join("bad.py");
    std::fs::write(&bad_shebang, "#!/nonexistent/python9\nprint('hi')\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bad_shebang, std::fs::Permissions::from_mode(0o755)).unwrap();

    let err = |spec: SpawnSpec| spawn(&spec).unwrap_err().to_string();
    assert_eq!(
        err(SpawnSpec::new("/nonexistent/app.py", &[])),
        "cannot execute `/nonexistent/app.py`: no such file or directory"
    );
    assert_eq!(
        err(SpawnSpec::new(&script, &[])),
        format!("cannot execute `{}`: permission denied", script.display())
    );
    assert_eq!(
        err(SpawnSpec::new(&bad_shebang, &[])),
        format!(
            "cannot execute `{}`: its interpreter `/nonexistent/python9` (from the #! line) does not exist",
            bad_shebang.display()
        )
    );
    assert_eq!(
        err(sh("true").with_program("no-such-program-pypm")),
        "cannot execute `no-such-program-pypm`: not found in PATH"
    );
    let mut spec = sh("true");
    spec.cwd = "/nope".into();
    assert_eq!(err(spec), "working directory `/nope` does not exist");
    let mut spec = sh("true");
    spec.cwd = script.clone();
    assert_eq!(
        err(spec),
        format!(
            "cannot enter working directory `{}`: not a directory",
            script.display()
        )
    );
    let mut spec = sh("true");
    spec.user = Some("no-such-user-pypm".into());
    assert_eq!(err(spec), "unknown user `no-such-user-pypm`");
}

trait WithProgram {
    fn with_program(self, p: &str) -> SpawnSpec;
}
impl WithProgram for SpawnSpec {
    fn with_program(mut self, p: &str) -> SpawnSpec {
        self.program = p.into();
        self
    }
}

#[test]
fn group_signal_reaches_grandchildren() {
    let (child, _guard) = start(&sh("sleep 1000 & echo $!; wait"));
    let mut out = BufReader::new(File::from(child.stdout));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let grandchild: i32 = line.trim().parse().unwrap();
    assert!(alive(grandchild));
    assert!(signal_group_checked(child.pid, child.start_time, Signal::SIGTERM).unwrap());
    let exit = wait_exit(child.pid, Duration::from_secs(10));
    assert_eq!(exit.signal, Some(libc_sigterm()));
    assert_eq!(exit.describe(), "signal SIGTERM");
    wait_until("the grandchild to die", Duration::from_secs(10), || {
        !alive(grandchild)
    });
}

fn libc_sigterm() -> i32 {
    Signal::SIGTERM as i32
}

#[test]
fn exit_is_reported_while_a_grandchild_holds_the_pipe() {
    let started = Instant::now();
    let (child, _guard) = start(&sh("sleep 1000 & exit 3"));
    let exit = wait_exit(child.pid, Duration::from_secs(10));
    assert_eq!(exit.code, Some(3));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!is_same_process(child.pid, child.start_time));
    // The leader is gone; the members it left in its group are still ours to kill.
    assert!(signal_group_checked(child.pid, child.start_time, Signal::SIGKILL).unwrap());
    // With the sleep dead the pipe reaches EOF.
    assert_eq!(read_all(child.stdout), "");
}

#[test]
fn reaper_reports_codes_and_signals_quickly() {
    let (a, _ga) = start(&sh("exit 7"));
    let (b, _gb) = start(&sh("kill -9 $$"));
    let t = Instant::now();
    let ea = wait_exit(a.pid, Duration::from_secs(10));
    let eb = wait_exit(b.pid, Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!((ea.code, ea.signal), (Some(7), None));
    assert_eq!(ea.describe(), "exit code 7");
    assert_eq!((eb.code, eb.signal), (None, Some(9)));
    assert_eq!(signal_name(eb.signal.unwrap()), "SIGKILL");
    assert!(!is_same_process(a.pid, a.start_time));
    assert_eq!(proc_start_time(a.pid), None);
    assert!(!signal_checked(a.pid, a.start_time, Signal::SIGTERM).unwrap());
}

#[test]
fn identity_check_refuses_a_different_start_time() {
    let (child, _guard) = start(&sh("sleep 1000 & echo $!; wait"));
    assert!(is_same_process(child.pid, child.start_time));
    assert_eq!(proc_start_time(child.pid), Some(child.start_time));
    assert!(!signal_group_checked(child.pid, child.start_time + 1, Signal::SIGKILL).unwrap());
    assert_eq!(
        kill_tree_leftovers(child.pid, child.start_time + 1, child.pid).unwrap(),
        0
    );
    assert!(alive(child.pid));
    let mut line = String::new();
    let mut out = BufReader::new(File::from(child.stdout));
    out.read_line(&mut line).unwrap();
    let grandchild: i32 = line.trim().parse().unwrap();
    assert_eq!(
        kill_tree_leftovers(child.pid, child.start_time, child.pid).unwrap(),
        1
    );
    assert_eq!(
        wait_exit(child.pid, Duration::from_secs(10)).signal,
        Some(9)
    );
    wait_until("the grandchild to die", Duration::from_secs(10), || {
        !alive(grandchild)
    });
}

#[test]
fn watched_children_and_run() {
    let r = reaper();
    let (child, rx) = r.spawn_watched(&sh("exit 4")).unwrap();
    let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((exit.pid, exit.code), (child.pid, Some(4)));

    let out = r
        .run(
            &sh("cat; echo err >&2; exit 2"),
            b"hello\n",
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit.unwrap().code, Some(2));
    assert!(!out.timed_out);

    let t = Instant::now();
    let out = r
        .run(&sh("exec sleep 1000"), b"", Duration::from_millis(300))
        .unwrap();
    assert!(out.timed_out);
    assert_eq!(out.exit.unwrap().signal, Some(9));
    assert!(t.elapsed() < Duration::from_secs(5));

    // A background leftover holding the pipes neither delays the result nor survives.
    let t = Instant::now();
    let out = r
        .run(&sh("sleep 1000 & echo $!"), b"", Duration::from_secs(20))
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(out.exit.unwrap().code, Some(0));
    let leftover: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the leftover to die", Duration::from_secs(10), || {
        !alive(leftover)
    });
}

#[test]
fn sample_sums_the_tree_including_a_child_that_allocates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mem.sh"),
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a)\necho ready\nsleep 1000\necho ${#x}\n",
    )
    .unwrap();
    let mut spec = sh("sh ./mem.sh & wait");
    spec.cwd = dir.path().to_path_buf();
    let (child, _guard) = start(&spec);
    let mut ready = String::new();
    BufReader::new(File::from(child.stdout))
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    let mut usage = Usage::default();
    // sh (root) -> sh mem.sh (holds the memory) -> sleep
    wait_until("the tree to hold 60 MB", Duration::from_secs(30), || {
        usage = sample(&[child.pid]).remove(&child.pid).unwrap_or_default();
        usage.rss_bytes > 60_000_000 && usage.pids.len() >= 3
    });
    assert_eq!(usage.pids[0], child.pid);
    // The memory is the child's: its own subtree holds it, and the root's sum includes it.
    let sub = sample(&[usage.pids[1]]).remove(&usage.pids[1]).unwrap();
    assert!(sub.rss_bytes > 60_000_000 && sub.rss_bytes < usage.rss_bytes);
    assert_eq!(sub.pids, usage.pids[1..]);
    assert!(sample(&[i32::MAX]).is_empty());
    let own = own_usage().unwrap();
    assert!(own.rss_bytes > 0 && own.pids == [std::process::id() as i32]);
}

#[test]
fn sample_measures_cpu() {
    let (child, _guard) = start(&sh("while :; do :; done"));
    let t0 = Instant::now();
    let first = sample(&[child.pid])[&child.pid].cpu_seconds;
    let mut last = first;
    wait_until("CPU time to accumulate", Duration::from_secs(20), || {
        last = sample(&[child.pid])[&child.pid].cpu_seconds;
        last >= first + 0.2
    });
    let pct = cpu_percent(first, last, t0.elapsed());
    assert!(pct > 5.0 && pct <= 100.0 * 64.0, "{pct}");
}

#[test]
fn spawning_thread_exit_kills_the_child() {
    reaper();
    let child = std::thread::spawn(|| spawn(&sh("exec sleep 1000")).unwrap())
        .join()
        .unwrap();
    let _guard = Guard(child.pid, child.start_time);
    let exit = wait_exit(child.pid, Duration::from_secs(10));
    assert_eq!(
        exit.signal,
        Some(9),
        "PR_SET_PDEATHSIG fired with the thread"
    );
}

#[test]
fn user_switch() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let Some(nobody) = passwd.lines().find(|l| l.starts_with("nobody:")) else {
        return; // no such user on this system
    };
    let fields: Vec<&str> = nobody.split(':').collect();
    let mut spec = sh("id -u; id -g; echo $HOME; echo $USER; echo $LOGNAME");
    spec.user = Some("nobody".into());
    spec.env.push(("HOME".into(), "/root".into()));
    if !is_root {
        let err = spawn(&spec).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot run as user `nobody`: pypm is not running as root"
        );
        return;
    }
    spec.cwd = Path::new("/").into();
    let (child, _guard) = start(&spec);
    let out = read_all(child.stdout);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [fields[2], fields[3], fields[5], "nobody", "nobody"]
    );
    assert_eq!(wait_exit(child.pid, Duration::from_secs(10)).code, Some(0));
}
