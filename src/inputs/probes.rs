//! Readiness and liveness probes (SPEC §1 `[apps.X.ready]`, `[apps.X.health]`).
//!
//! Each probe of each instance runs on its own small thread and only *reports* results through a
//! callback (the supervisor turns them into events); it holds no policy and never blocks the
//! supervisor loop. Dropping the [`ProbeHandle`] stops the thread. `log` probes are not threads:
//! they are taps on the log pump ([`log_tap`]). `notify` probes read a per-instance datagram
//! socket (`NOTIFY_SOCKET`, the sd_notify protocol).

use crate::process::ext::net::UnixDatagram;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::config::ProbeCheck;
use crate::process::{Reaper, SpawnSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Ready,
    Health,
}

/// One attempt's outcome, for one instance's process (`pid` tells stale results apart).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub app: String,
    pub idx: u32,
    pub pid: i32,
    pub which: Which,
    pub ok: bool,
    pub detail: String,
}

/// Stops the probe thread when dropped.
pub struct ProbeHandle {
    _cancel: Sender<()>,
}

pub type Report = Arc<dyn Fn(ProbeResult) + Send + Sync>;

/// What a probe needs to know of its instance.
#[derive(Clone)]
pub struct Target {
    pub app: String,
    pub idx: u32,
    pub pid: i32,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// One probe to run: what, which kind, how often, and one attempt's time limit.
pub struct Spec {
    pub check: ProbeCheck,
    pub which: Which,
    pub interval: Duration,
    pub attempt_timeout: Duration,
}

/// Starts a thread probing `check` every `interval` (a readiness probe's first attempt at once,
/// a health probe's after one interval). A readiness probe stops after its first success; a
/// health probe goes on until dropped.
pub fn start(
    spec: Spec,
    target: Target,
    reaper: Reaper,
    notify: Option<UnixDatagram>,
    report: Report,
) -> io::Result<ProbeHandle> {
    let Spec {
        check,
        which,
        interval,
        attempt_timeout,
    } = spec;
    let (cancel, cancelled) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("pypm-probe-{}.{}", target.app, target.idx))
        .spawn(move || {
            // A health probe judges an instance that was just started or just became ready:
            // its first check comes one interval later. (A notify probe listens from the start.)
            let mut next = Instant::now();
            if which == Which::Health && check != ProbeCheck::Notify {
                next += interval;
            }
            let mut last_watchdog = Instant::now();
            loop {
                let wait = next.saturating_duration_since(Instant::now());
                match cancelled.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                next = Instant::now() + interval;
                let (ok, detail) = match &check {
                    ProbeCheck::Http(url) => http(url, attempt_timeout),
                    ProbeCheck::Tcp(addr) => tcp(addr, attempt_timeout),
                    ProbeCheck::Exec(argv) => exec(argv, &target, &reaper, attempt_timeout),
                    ProbeCheck::Notify => match &notify {
                        Some(sock) => {
                            notify_attempt(sock, which, interval, &mut last_watchdog, &cancelled)
                        }
                        None => (false, "no notify socket".into()),
                    },
                    // Log probes are taps on the log pump, not threads.
                    ProbeCheck::Log(_) => return,
                };
                report(ProbeResult {
                    app: target.app.clone(),
                    idx: target.idx,
                    pid: target.pid,
                    which,
                    ok,
                    detail,
                });
                if ok && which == Which::Ready {
                    return;
                }
            }
        })?;
    Ok(ProbeHandle { _cancel: cancel })
}

fn http(url: &str, timeout: Duration) -> (bool, String) {
    let agent = crate::process::http_agent(timeout);
    match agent.get(url).call() {
        Ok(resp) => {
            let code = resp.status().as_u16();
            ((200..300).contains(&code), format!("GET {url}: {code}"))
        }
        Err(e) => (false, format!("GET {url}: {e}")),
    }
}

fn tcp(addr: &str, timeout: Duration) -> (bool, String) {
    let addrs = match addr.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return (false, format!("cannot resolve {addr}: {e}")),
    };
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return (true, format!("connected to {addr}")),
            Err(e) => last = e.to_string(),
        }
    }
    (false, format!("cannot connect to {addr}: {last}"))
}

fn exec(argv: &[String], target: &Target, reaper: &Reaper, timeout: Duration) -> (bool, String) {
    let Some(program) = argv.first() else {
        return (false, "empty command".into());
    };
    let spec = SpawnSpec {
        program: PathBuf::from(program),
        argv: argv.to_vec(),
        env: target.env.clone(),
        cwd: target.cwd.clone(),
        ..SpawnSpec::default()
    };
    match reaper.run(&spec, &[], timeout) {
        Ok(out) if out.timed_out => (false, format!("`{program}` timed out")),
        Ok(out) => match out.exit {
            Some(e) if e.code == Some(0) => (true, format!("`{program}` exited 0")),
            Some(e) => (false, format!("`{program}`: {}", e.describe())),
            None => (false, format!("`{program}` was not collected")),
        },
        Err(e) => (false, e.to_string()),
    }
}

/// Reads sd_notify datagrams for up to one interval. Ready: passes on `READY=1`. Health: passes
/// while `WATCHDOG=1` (or any message) arrived within the last interval. `STATUS=` is logged.
fn notify_attempt(
    sock: &UnixDatagram,
    which: Which,
    interval: Duration,
    last_watchdog: &mut Instant,
    cancelled: &mpsc::Receiver<()>,
) -> (bool, String) {
    let deadline = Instant::now() + interval;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || cancelled.try_recv().is_ok() {
            break;
        }
        let _ = sock.set_read_timeout(Some(left.min(Duration::from_millis(200))));
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                for line in text.lines() {
                    if let Some(status) = line.strip_prefix("STATUS=") {
                        log::info!("notify: STATUS={status}");
                    }
                }
                *last_watchdog = Instant::now();
                if which == Which::Ready && text.lines().any(|l| l == "READY=1") {
                    return (true, "READY=1".into());
                }
                if which == Which::Health {
                    return (true, "WATCHDOG=1".into());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return (false, format!("notify socket: {e}")),
        }
    }
    match which {
        Which::Ready => (false, "no READY=1 yet".into()),
        Which::Health if last_watchdog.elapsed() <= interval => (true, "alive".into()),
        Which::Health => (
            false,
            format!("no WATCHDOG=1 within {}s", interval.as_secs_f64()),
        ),
    }
}

/// Binds the datagram socket an instance reports to (`NOTIFY_SOCKET`).
pub fn notify_socket(path: &Path) -> io::Result<UnixDatagram> {
    let _ = std::fs::remove_file(path);
    UnixDatagram::bind(path)
}

/// A log-pump tap that reports a readiness success the first time a line matches `re`.
/// `fired` is shared by the stdout and stderr taps of one instance.
pub fn log_tap(
    re: regex::Regex,
    fired: Arc<AtomicBool>,
    target: &Target,
    report: Report,
) -> crate::logs::Tap {
    let (app, idx, pid) = (target.app.clone(), target.idx, target.pid);
    Box::new(move |line: &str| {
        if !fired.load(Ordering::Relaxed)
            && re.is_match(line)
            && !fired.swap(true, Ordering::SeqCst)
        {
            report(ProbeResult {
                app: app.clone(),
                idx,
                pid,
                which: Which::Ready,
                ok: true,
                detail: format!("log line matched `{}`", re.as_str()),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn tcp_probe_passes_only_when_listening() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
        assert!(tcp(&addr, Duration::from_secs(1)).0);
        drop(l);
        assert!(!tcp(&addr, Duration::from_secs(1)).0);
    }

    #[test]
    fn http_probe_wants_2xx() {
        use std::io::{Read, Write};
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = std::thread::spawn(move || {
            for (i, conn) in l.incoming().take(2).enumerate() {
                let Ok(mut c) = conn else { continue };
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let status = if i == 0 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        let url = format!("http://{addr}/health");
        assert!(http(&url, Duration::from_secs(2)).0);
        let (ok, detail) = http(&url, Duration::from_secs(2));
        assert!(!ok, "{detail}");
        assert!(detail.contains("503"), "{detail}");
        let _ = server.join();
    }

    #[test]
    fn log_tap_fires_once() {
        let results = Arc::new(std::sync::Mutex::new(Vec::new()));
        let r2 = results.clone();
        let report: Report = Arc::new(move |r| {
            if let Ok(mut v) = r2.lock() {
                v.push(r);
            }
        });
        let target = Target {
            app: "a".into(),
            idx: 0,
            pid: 1,
            cwd: PathBuf::from("/"),
            env: Vec::new(),
        };
        let re = regex::Regex::new("startup complete").unwrap_or_else(|e| panic!("{e}"));
        let mut tap = log_tap(re, Arc::new(AtomicBool::new(false)), &target, report);
        tap("booting");
        tap("Application startup complete.");
        tap("Application startup complete.");
        assert_eq!(results.lock().map(|v| v.len()).unwrap_or(0), 1);
    }
}
