//! The bounded front of the supervisor's two servers (the control socket and the HTTP API).
//!
//! One thread polls the listener and every connection still sending its request; a connection
//! costs a thread only once its whole request has arrived, and only while it is answered. So a
//! peer that connects and says nothing, sends a byte a minute (slowloris), sends an endless line or
//! opens a thousand connections costs a file descriptor and a bounded buffer, and never keeps
//! `status` from being answered:
//!
//! - at most [`Limits::max_pending`] connections wait for their request; when a new one comes,
//!   the one waiting longest is closed;
//! - a request must arrive whole within [`Limits::deadline`] of the connection, and be at most
//!   [`Limits::max_request`] bytes (larger: the service's "too large" answer, then close);
//! - at most [`Limits::max_workers`] requests are answered at once (one thread each; a
//!   Server-Sent Events stream keeps its thread); whole requests beyond that wait, first come
//!   first served, for a worker to finish (at most [`Limits::max_queued`] of them, none longer
//!   than [`Limits::deadline`]); beyond, the service's "busy" answer.
//!
//! The limits are listed in docs/reliability.md.

use crate::process::ext::fd::AsFd;
use crate::process::ext::net::{UnixListener, UnixStream};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A connection the front can read without blocking and hand on in blocking mode.
pub trait Conn: Read + Write + AsFd + Send + 'static {
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    fn set_timeouts(&self, t: Duration) -> io::Result<()>;
}

/// A listening socket.
pub trait Listen: AsFd + Send + 'static {
    type Conn: Conn;
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    fn accept_conn(&self) -> io::Result<Self::Conn>;
}

macro_rules! socket_impls {
    ($listener:ty, $stream:ty) => {
        impl Conn for $stream {
            fn set_nonblocking(&self, on: bool) -> io::Result<()> {
                <$stream>::set_nonblocking(self, on)
            }
            fn set_timeouts(&self, t: Duration) -> io::Result<()> {
                self.set_read_timeout(Some(t))?;
                self.set_write_timeout(Some(t))
            }
        }
        impl Listen for $listener {
            type Conn = $stream;
            fn set_nonblocking(&self, on: bool) -> io::Result<()> {
                <$listener>::set_nonblocking(self, on)
            }
            fn accept_conn(&self) -> io::Result<$stream> {
                self.accept().map(|(s, _)| s)
            }
        }
    };
}
socket_impls!(UnixListener, UnixStream);
socket_impls!(TcpListener, TcpStream);

/// Where a request being received stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// More bytes are needed.
    Incomplete,
    /// The request is whole.
    Complete,
    /// The request can never fit [`Limits::max_request`] (or breaks the protocol's own limit).
    TooLarge,
}

/// Why a connection is answered by the front itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLarge,
    Busy,
}

/// What a server built on the front does with its connections.
pub trait Service: Send + Sync + 'static {
    type Conn: Conn;
    /// Whether `buf` (everything received so far) is a whole request.
    fn frame(&self, buf: &[u8]) -> Framing;
    /// An answer to send at once instead of reading a request (the control socket's foreign
    /// uid), or `None` to go on.
    fn screen(&self, conn: &Self::Conn) -> Option<Vec<u8>>;
    /// The answer the front sends itself when it refuses a request.
    fn refusal(&self, why: Refusal) -> Vec<u8>;
    /// Answers a whole request, on a thread of its own, the connection back in blocking mode with
    /// read and write timeouts of [`Limits::deadline`].
    fn serve(&self, conn: Self::Conn, request: Vec<u8>);
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections waiting for their request at once.
    pub max_pending: usize,
    /// Bytes of one request.
    pub max_request: usize,
    /// From connecting to the whole request; also the I/O timeout while it is answered.
    pub deadline: Duration,
    /// Requests answered at once.
    pub max_workers: usize,
    /// Whole requests waiting for a worker.
    pub max_queued: usize,
    /// Names the worker threads.
    pub name: &'static str,
}

struct Pending<C> {
    conn: C,
    buf: Vec<u8>,
    since: Instant,
}

/// Serves `listener` on the calling thread until `stop` is set and a connection (the stopper's)
/// wakes it. Requests being answered finish on their own threads.
pub fn run<L, S>(listener: L, service: Arc<S>, limits: Limits, stop: &AtomicBool)
where
    L: Listen,
    S: Service<Conn = L::Conn>,
{
    if let Err(e) = listener.set_nonblocking(true) {
        log::warn!(
            "{}: cannot make the listener non-blocking: {e}",
            limits.name
        );
    }
    let workers = Arc::new(Workers {
        state: Mutex::new(Crew {
            active: 0,
            queue: VecDeque::new(),
        }),
    });
    let mut pending: Vec<Pending<L::Conn>> = Vec::new();
    let mut ready = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        // No timer while nothing waits: an idle supervisor is never woken (the stopper's
        // connection wakes the poll).
        let wait = pending
            .iter()
            .map(|p| (p.since + limits.deadline).saturating_duration_since(now))
            .min();
        let (listener_ready, readable) = {
            let mut fds = Vec::with_capacity(pending.len() + 1);
            fds.push(listener.as_fd());
            fds.extend(pending.iter().map(|p| p.conn.as_fd()));
            match crate::process::wait_readable(&fds, wait.map(|w| w.max(Duration::from_millis(1))))
            {
                Ok(mut ready) => {
                    let listener_ready = ready.remove(0);
                    (listener_ready, ready)
                }
                Err(e) => {
                    log::warn!("{}: poll failed: {e}", limits.name);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        };
        // Requests that are whole, or connections that ended or broke a limit.
        let mut gone = vec![false; pending.len()];
        for (i, p) in pending.iter_mut().enumerate() {
            if !readable[i] {
                continue;
            }
            match receive(p, limits.max_request) {
                Ok(false) => {}
                Ok(true) => match service.frame(&p.buf) {
                    Framing::Incomplete if p.buf.len() <= limits.max_request => {}
                    Framing::Complete => {
                        gone[i] = true;
                        ready.push(i);
                    }
                    Framing::Incomplete | Framing::TooLarge => {
                        gone[i] = true;
                        send_now(&mut p.conn, &service.refusal(Refusal::TooLarge));
                    }
                },
                Err(()) => gone[i] = true,
            }
        }
        let now = Instant::now();
        for (i, p) in pending.iter().enumerate() {
            if now >= p.since + limits.deadline {
                gone[i] = true;
            }
        }
        let mut kept = Vec::with_capacity(pending.len());
        for (i, p) in std::mem::take(&mut pending).into_iter().enumerate() {
            if ready.contains(&i) {
                dispatch(p, &service, &limits, &workers);
            } else if !gone[i] {
                kept.push(p);
            }
        }
        ready.clear();
        pending = kept;
        if listener_ready {
            accept_all(&listener, &service, &limits, &mut pending);
        }
    }
}

/// Reads what is there. `Ok(true)`: new bytes; `Ok(false)`: nothing yet; `Err`: the peer closed
/// or failed before its request was whole.
fn receive<C: Conn>(p: &mut Pending<C>, max: usize) -> Result<bool, ()> {
    let mut chunk = [0u8; 8192];
    let mut got = false;
    loop {
        match p.conn.read(&mut chunk) {
            Ok(0) => return Err(()),
            Ok(n) => {
                p.buf.extend_from_slice(&chunk[..n]);
                got = true;
                if p.buf.len() > max {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
}

fn accept_all<L, S>(
    listener: &L,
    service: &Arc<S>,
    limits: &Limits,
    pending: &mut Vec<Pending<L::Conn>>,
) where
    L: Listen,
    S: Service<Conn = L::Conn>,
{
    // Bounded per round, so a flood of connections cannot starve the ones already waiting.
    for _ in 0..limits.max_pending {
        let mut conn = match listener.accept_conn() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and the like: the waiting ones are served first, new ones wait in the
                // kernel's backlog.
                log::warn!("{}: accept failed: {e}", limits.name);
                return;
            }
        };
        if let Err(e) = conn.set_nonblocking(true) {
            log::warn!("{}: {e}", limits.name);
            continue;
        }
        if let Some(answer) = service.screen(&conn) {
            send_now(&mut conn, &answer);
            continue;
        }
        if pending.len() >= limits.max_pending {
            pending.remove(0);
        }
        pending.push(Pending {
            conn,
            buf: Vec::new(),
            since: Instant::now(),
        });
    }
}

/// One write on a non-blocking socket: a short answer fits its buffer; if it does not, the peer
/// that does not read loses it.
fn send_now<C: Conn>(conn: &mut C, bytes: &[u8]) {
    let _ = conn.write(bytes);
}

/// The requests being answered and the whole ones waiting for a worker, under one lock so that a
/// worker that finds the queue empty and leaves, and the front that finds every worker busy and
/// queues, never miss each other.
struct Workers<C> {
    state: Mutex<Crew<C>>,
}

struct Crew<C> {
    active: usize,
    queue: VecDeque<(C, Vec<u8>, Instant)>,
}

impl<C> Workers<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Crew<C>> {
        // A worker that panicked mid-request left the counts consistent (they change only
        // under the lock, in a few lines that cannot panic).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives a worker's place back if its request panics.
struct Unwind<'a, C>(&'a Workers<C>);
impl<C> Drop for Unwind<'_, C> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().active -= 1;
        }
    }
}

fn dispatch<S: Service>(
    p: Pending<S::Conn>,
    service: &Arc<S>,
    limits: &Limits,
    workers: &Arc<Workers<S::Conn>>,
) {
    let Pending { mut conn, buf, .. } = p;
    {
        let mut crew = workers.lock();
        let busy = crew.active >= limits.max_workers;
        if busy && crew.queue.len() >= limits.max_queued {
            drop(crew);
            // Still non-blocking: the front never waits on a peer.
            send_now(&mut conn, &service.refusal(Refusal::Busy));
            return;
        }
        // Blocking with timeouts from here on, for the worker that answers it.
        if conn
            .set_nonblocking(false)
            .and_then(|()| conn.set_timeouts(limits.deadline))
            .is_err()
        {
            return;
        }
        if busy {
            crew.queue.push_back((conn, buf, Instant::now()));
            return;
        }
        crew.active += 1;
    }
    let (service, crew, deadline) = (service.clone(), workers.clone(), limits.deadline);
    let spawned = std::thread::Builder::new()
        .name(limits.name.into())
        .spawn(move || {
            let _unwind = Unwind(&crew);
            let (mut conn, mut buf) = (conn, buf);
            loop {
                service.serve(conn, buf);
                // The next waiting request, or the worker's place given back.
                loop {
                    let next = {
                        let mut c = crew.lock();
                        match c.queue.pop_front() {
                            Some(next) => next,
                            None => {
                                c.active -= 1;
                                return;
                            }
                        }
                    };
                    let (mut waited, request, since) = next;
                    if since.elapsed() < deadline {
                        (conn, buf) = (waited, request);
                        break;
                    }
                    // Its client has given up by now; a late mutation would surprise.
                    let _ = waited.write_all(&service.refusal(Refusal::Busy));
                }
            }
        });
    if let Err(e) = spawned {
        // The closure (and the connection) was dropped with the error.
        workers.lock().active -= 1;
        log::warn!("{}: cannot start a thread: {e}", limits.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::sync::atomic::AtomicUsize;

    /// Requests of the "sleep" kind being answered.
    static SLEEPING: AtomicUsize = AtomicUsize::new(0);
    /// The tests that count [`SLEEPING`] run one at a time.
    static SLEEPERS: Mutex<()> = Mutex::new(());

    /// Lines in, the line reversed out; slow on "sleep".
    struct Echo;

    impl Service for Echo {
        type Conn = UnixStream;
        fn frame(&self, buf: &[u8]) -> Framing {
            if buf.contains(&b'\n') {
                Framing::Complete
            } else {
                Framing::Incomplete
            }
        }
        fn screen(&self, _: &UnixStream) -> Option<Vec<u8>> {
            None
        }
        fn refusal(&self, why: Refusal) -> Vec<u8> {
            format!("{why:?}\n").into_bytes()
        }
        fn serve(&self, mut conn: UnixStream, request: Vec<u8>) {
            if request.starts_with(b"sleep") {
                SLEEPING.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(2));
                SLEEPING.fetch_sub(1, Ordering::SeqCst);
            }
            let mut line: Vec<u8> = request.into_iter().filter(|b| *b != b'\n').collect();
            line.reverse();
            line.push(b'\n');
            let _ = conn.write_all(&line);
        }
    }

    fn start(
        limits: Limits,
    ) -> (
        std::path::PathBuf,
        Arc<AtomicBool>,
        std::thread::JoinHandle<()>,
        tempfile_dir::Dir,
    ) {
        let dir = tempfile_dir::Dir::new();
        let path = dir.0.join("s.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || run(listener, Arc::new(Echo), limits, &s));
        (path, stop, t, dir)
    }

    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p = std::env::temp_dir().join(format!("pypm-gate-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).expect("temp dir");
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// Stops the front as the servers' stoppers do: the flag, then a connection to wake it.
    fn halt(path: &std::path::Path, stop: &AtomicBool, t: std::thread::JoinHandle<()>) {
        stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(path);
        t.join().expect("join");
    }

    fn ask(path: &std::path::Path, line: &[u8]) -> String {
        let mut c = UnixStream::connect(path).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(line).expect("write");
        let mut out = String::new();
        let _ = io::BufReader::new(c).read_line(&mut out);
        out
    }

    const LIMITS: Limits = Limits {
        max_pending: 8,
        max_request: 64,
        deadline: Duration::from_millis(600),
        max_workers: 2,
        max_queued: 0,
        name: "gate-test",
    };

    #[test]
    fn idle_connections_beyond_the_limit_evict_the_oldest_and_requests_still_pass() {
        let (path, stop, t, _dir) = start(LIMITS);
        let idle: Vec<UnixStream> = (0..20)
            .map(|_| UnixStream::connect(&path).expect("connect"))
            .collect();
        assert_eq!(ask(&path, b"abc\n"), "cba\n");
        // The first ones were closed to make room: they read end of file.
        let mut first = &idle[0];
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut b = [0u8; 1];
        assert_eq!(first.read(&mut b).expect("read"), 0);
        halt(&path, &stop, t);
    }

    #[test]
    fn a_silent_connection_is_closed_at_the_deadline() {
        let (path, stop, t, _dir) = start(LIMITS);
        let mut c = UnixStream::connect(&path).expect("connect");
        c.write_all(b"no end of line").expect("write");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let began = Instant::now();
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).expect("read"), 0);
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        halt(&path, &stop, t);
    }

    /// Two "sleep" requests, returned once both are being answered (the test limits' two workers
    /// are then busy for two seconds). The caller holds [`SLEEPERS`].
    fn occupy_both_workers(path: &std::path::Path) -> Vec<std::thread::JoinHandle<String>> {
        let slow = (0..2)
            .map(|_| {
                let p = path.to_path_buf();
                std::thread::spawn(move || ask(&p, b"sleep\n"))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while SLEEPING.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            SLEEPING.load(Ordering::SeqCst),
            2,
            "the slow requests were not both taken"
        );
        slow
    }

    #[test]
    fn an_oversized_request_is_refused_and_workers_are_capped() {
        let _one = SLEEPERS.lock().unwrap_or_else(PoisonError::into_inner);
        let (path, stop, t, _dir) = start(LIMITS);
        assert_eq!(ask(&path, &[b'x'; 200]), "TooLarge\n");
        let slow = occupy_both_workers(&path);
        // Both workers busy: a third request is refused.
        assert_eq!(ask(&path, b"abc\n"), "Busy\n");
        for s in slow {
            assert_eq!(s.join().expect("join"), "peels\n");
        }
        // A worker answers before it is counted free again: until then a request may still be
        // refused, so poll for the freed worker rather than assume it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut answer = ask(&path, b"abc\n");
        while answer == "Busy\n" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            answer = ask(&path, b"abc\n");
        }
        assert_eq!(answer, "cba\n");
        halt(&path, &stop, t);
    }

    #[test]
    fn a_whole_request_waits_for_a_worker_while_the_queue_has_room() {
        let _one = SLEEPERS.lock().unwrap_or_else(PoisonError::into_inner);
        let (path, stop, t, _dir) = start(Limits {
            max_queued: 1,
            // Longer than a "sleep": the waiting request is still wanted when its turn comes.
            deadline: Duration::from_secs(5),
            ..LIMITS
        });
        let slow = occupy_both_workers(&path);
        // Both workers busy: the request waits and is answered, not refused.
        assert_eq!(ask(&path, b"abc\n"), "cba\n");
        for s in slow {
            assert_eq!(s.join().expect("join"), "peels\n");
        }
        halt(&path, &stop, t);
    }
}
