//! The log pump: one thread that reads every child pipe and writes whole lines to log files.
//!
//! Readiness comes from `poll(2)` on the pipes plus a wake pipe for commands; a pipe whose file
//! cannot be written is simply left out of the poll set (that is the backpressure), and the poll
//! timeout is the next write retry. `poll` rather than epoll/mio: the set is small (two pipes per
//! instance) and rebuilt per round, and it needs no extra dependency.

use super::lines::{LineFormat, LineSplitter, Tap};
use super::pipes::{LogNotice, LogTarget, PipeId};
use super::sink::LogFile;
use super::timestamp::{TS_LEN, format_bytes};
use crate::process::ext::fd::{AsFd, OwnedFd};
use crate::process::set_nonblocking;
#[cfg(target_os = "linux")]
use crate::process::set_pipe_size;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How often a log file that could not be written is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Size of one read from a pipe (and of the pump's single read buffer).
/// One read takes up to this much.
const READ_SIZE: usize = 1024 * 1024;
/// Pipes are enlarged to this (from Linux's 64 KiB) so a chatty child is drained in fewer, larger
/// reads. Kept modest: an unprivileged user's pipes beyond `fs.pipe-user-pages-soft` (64 MiB in
/// all) fall back to one page each, so 400 pipes of 1 MiB would hurt every pipe of that user.
#[cfg(target_os = "linux")]
const PIPE_SIZE: usize = 128 * 1024;
/// A pipe that a read found full (its child was writing faster than the pump read) grows to
/// this, once: only the chatty few get big pipes, and they are drained in fewer, larger reads
/// (200 MiB through one pipe: ~0.115 s instead of ~0.13 s, docs/benchmarks.md).
#[cfg(target_os = "linux")]
const BIG_PIPE_SIZE: usize = 1024 * 1024;

/// Reads per pipe at shutdown, so a child that keeps writing cannot hold shutdown up.
const SHUTDOWN_READS: usize = 64;

/// A small read (below this) soon after the previous one means a pipe is fed line by line (an
/// unbuffered `print()` per line): the pump lets it fill for [`COALESCE`] before the next read,
/// so one read and one write carry a few milliseconds of lines instead of one each. A pipe that
/// was quiet is read at once, and so is the rest of its line (Python writes a line's text and its
/// newline separately); a pipe that fills faster than this is read back to back, as before.
const SMALL_READ: usize = 16 * 1024;
/// How long a pipe fed line by line rests between reads (the most a line waits for it).
const COALESCE: Duration = Duration::from_millis(5);

type Notify = Box<dyn FnMut(LogNotice) + Send>;

enum Cmd {
    Add {
        id: PipeId,
        file: File,
        target: LogTarget,
        tap: Option<Tap>,
    },
    /// Moves a pipe's lines to another file from the next line on.
    Retarget {
        id: PipeId,
        target: LogTarget,
    },
    Shutdown,
}

/// Handle to the pump thread. Dropping it is the same as [`LogPump::shutdown`].
pub struct LogPump {
    tx: Mutex<Sender<Cmd>>,
    wake: File,
    thread: Option<JoinHandle<()>>,
    next_id: AtomicU64,
    buffered: Arc<AtomicU64>,
}

impl LogPump {
    /// Starts the pump thread. `notice` is called on that thread; it must not block for long.
    pub fn start(notice: impl FnMut(LogNotice) + Send + 'static) -> io::Result<LogPump> {
        let (wake_rx, wake_tx) = crate::process::pipe()?;
        set_nonblocking(wake_rx.as_fd(), true)?;
        set_nonblocking(wake_tx.as_fd(), true)?;
        let (tx, rx) = channel();
        let buffered = Arc::new(AtomicU64::new(0));
        let mut pump = Pump {
            rx,
            wake: File::from(wake_rx),
            notice: Box::new(notice),
            pipes: Vec::new(),
            files: HashMap::new(),
            buf: vec![0; READ_SIZE].into_boxed_slice(),
            buffered: buffered.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("pypm-logs".into())
            .spawn(move || pump.run())?;
        Ok(LogPump {
            tx: Mutex::new(tx),
            wake: File::from(wake_tx),
            thread: Some(thread),
            next_id: AtomicU64::new(1),
            buffered,
        })
    }

    /// Hands the read end of a child's pipe to the pump; its lines go to `target` (the file is
    /// shared with any other pipe writing to the same path; the latest `target` settings apply).
    /// `tap` sees every complete line. The pump closes `fd` at end of file.
    pub fn add(&self, fd: OwnedFd, target: LogTarget, tap: Option<Tap>) -> io::Result<PipeId> {
        set_nonblocking(fd.as_fd(), true)?;
        // Best effort: a bigger pipe lets a chatty child run ahead of the pump without blocking
        // (still bounded: backpressure once it is full). Limited by fs.pipe-max-size.
        #[cfg(target_os = "linux")]
        let _ = set_pipe_size(fd.as_fd(), PIPE_SIZE);
        let id = PipeId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let cmd = Cmd::Add {
            id,
            file: File::from(fd),
            target,
            tap,
        };
        self.send(cmd)?;
        Ok(id)
    }

    /// From the next complete line on, `id`'s lines go to `target` instead (lines already read
    /// still go to the old file). For an instance whose file name changes while it runs:
    /// `APP.out.log` ↔ `APP.0.out.log` when `instances` crosses 1.
    pub fn retarget(&self, id: PipeId, target: LogTarget) -> io::Result<()> {
        self.send(Cmd::Retarget { id, target })
    }

    /// Bytes the pump holds in memory right now (partial lines and lines not yet written),
    /// updated after each round. Bounded per pipe; see the module doc.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Reads what the pipes hold right now (bounded), writes it (unfinished lines as lines),
    /// and stops the thread. Lines a failing file still cannot take are dropped and reported.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn send(&self, cmd: Cmd) -> io::Result<()> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "log pump is not running");
        self.tx
            .lock()
            .map_err(|_| gone())?
            .send(cmd)
            .map_err(|_| gone())?;
        match (&self.wake).write(&[1]) {
            // A full wake pipe already holds a wake-up.
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.send(Cmd::Shutdown);
            let _ = thread.join();
        }
    }
}

impl Drop for LogPump {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Pipe {
    /// Grown to [`BIG_PIPE_SIZE`] (or tried to); Linux only.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    grown: bool,
    id: PipeId,
    file: File,
    path: PathBuf,
    lines: LineSplitter,
    tap: Option<Tap>,
    /// After a small read: not polled before then (see [`SMALL_READ`]).
    rest_until: Option<Instant>,
    last_read: Option<Instant>,
}

/// A file's write state: `retry_at` is set while it is failing.
struct Target {
    log: LogFile,
    pipes: usize,
    retry_at: Option<Instant>,
}

/// The thread's state; only the pump thread touches it.
struct Pump {
    rx: Receiver<Cmd>,
    wake: File,
    notice: Notify,
    pipes: Vec<Pipe>,
    files: HashMap<PathBuf, Target>,
    buf: Box<[u8]>,
    buffered: Arc<AtomicU64>,
}

enum ReadResult {
    Data,
    Eof,
    Empty,
}

impl Pump {
    fn run(&mut self) {
        let mut ready: Vec<usize> = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            ready.clear();
            let wake = {
                let mut fds = vec![self.wake.as_fd()];
                let mut idx = Vec::with_capacity(self.pipes.len());
                let now = Instant::now();
                for (i, p) in self.pipes.iter_mut().enumerate() {
                    if p.rest_until.is_some_and(|t| t <= now) {
                        p.rest_until = None;
                    }
                    if p.rest_until.is_none() && self.files[&p.path].retry_at.is_none() {
                        fds.push(p.file.as_fd());
                        idx.push(i);
                    }
                }
                let readable = match crate::process::wait_readable(&fds, timeout) {
                    Ok(r) => r,
                    Err(e) => {
                        // Cannot happen with valid fds; never spin if it does.
                        log::error!("log pump: poll failed: {e}");
                        std::thread::sleep(RETRY_INTERVAL);
                        continue;
                    }
                };
                for (&r, &i) in readable[1..].iter().zip(&idx) {
                    if r {
                        ready.push(i);
                    }
                }
                readable[0]
            };
            // Highest index first, so removing a closed pipe keeps the other indices valid.
            for &i in ready.iter().rev() {
                self.service(i);
            }
            self.retry_due();
            if wake && self.commands() {
                self.drain();
                return;
            }
            self.publish_buffered();
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let retries = self.files.values().filter_map(|t| t.retry_at);
        let rests = self.pipes.iter().filter_map(|p| p.rest_until);
        let next = retries.chain(rests).min()?;
        // Rounded up (a millisecond more) so the retry is due when the wait returns.
        Some(next.saturating_duration_since(Instant::now()) + Duration::from_millis(1))
    }

    /// Handles queued commands; true on shutdown.
    fn commands(&mut self) -> bool {
        let mut sink = [0u8; 64];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Shutdown => return true,
                Cmd::Retarget { id, target } => {
                    let Some(i) = self.pipes.iter().position(|p| p.id == id) else {
                        continue; // closed meanwhile
                    };
                    let old = std::mem::replace(&mut self.pipes[i].path, target.path.clone());
                    self.attach(&target);
                    if let Some(t) = self.files.get_mut(&old) {
                        t.pipes -= 1;
                    }
                    self.write_target(&old);
                }
                Cmd::Add {
                    id,
                    file,
                    target,
                    tap,
                } => {
                    self.attach(&target);
                    self.pipes.push(Pipe {
                        grown: false,
                        id,
                        file,
                        path: target.path,
                        lines: LineSplitter::default(),
                        tap,
                        rest_until: None,
                        last_read: None,
                    });
                }
            }
        }
        false
    }

    /// One more pipe writes to `target`'s file (opened on first write), whose settings are now
    /// `target`'s.
    fn attach(&mut self, target: &LogTarget) {
        let t = self
            .files
            .entry(target.path.clone())
            .or_insert_with(|| Target {
                log: LogFile::new(target.path.clone(), 0, 0, false),
                pipes: 0,
                retry_at: None,
            });
        t.pipes += 1;
        t.log.max_size = target.max_size;
        t.log.max_files = target.max_files;
        t.log.timestamps = target.timestamps;
    }

    /// One read from pipe `i`, then its file is written.
    fn service(&mut self, i: usize) {
        match self.read_pipe(i) {
            ReadResult::Empty => {}
            ReadResult::Data => self.write_target(&self.pipes[i].path.clone()),
            ReadResult::Eof => self.close_pipe(i),
        }
    }

    fn read_pipe(&mut self, i: usize) -> ReadResult {
        let pipe = &mut self.pipes[i];
        let n = loop {
            match pipe.file.read(&mut self.buf) {
                Ok(0) => return ReadResult::Eof,
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadResult::Empty,
                Err(e) => {
                    log::warn!("log pump: reading pipe for {}: {e}", pipe.path.display());
                    return ReadResult::Eof;
                }
            }
        };
        let now = Instant::now();
        let fed = pipe
            .last_read
            .is_some_and(|t| now.duration_since(t) < 2 * COALESCE);
        pipe.rest_until = (n < SMALL_READ && fed).then(|| now + COALESCE);
        pipe.last_read = Some(now);
        #[cfg(target_os = "linux")]
        if n >= PIPE_SIZE && !pipe.grown {
            pipe.grown = true;
            // Best effort, like the first size: fs.pipe-max-size and the user's pipe budget.
            let _ = set_pipe_size(pipe.file.as_fd(), BIG_PIPE_SIZE);
        }
        let target = self.files.get_mut(&pipe.path).expect("pipe has a target");
        let prefix = target.log.timestamps.then(|| ts_prefix(SystemTime::now()));
        let mut fmt = LineFormat {
            prefix: prefix.as_ref(),
            tap: pipe.tap.as_mut(),
        };
        let mut data = &self.buf[..n];
        if fmt.is_plain()
            && let Some((head, end)) = pipe.lines.plain_split(data)
        {
            // Plain lines go from the read buffer to the file without another copy.
            target
                .log
                .append(&[pipe.lines.carry(), &data[..head], &data[head..end]]);
            pipe.lines.clear();
            data = &data[end..];
        }
        pipe.lines.feed(data, &mut target.log.pending, &mut fmt);
        ReadResult::Data
    }

    /// End of file: the unfinished line becomes a line, the pipe goes away.
    fn close_pipe(&mut self, i: usize) {
        let mut pipe = self.pipes.swap_remove(i);
        finish_pipe(&mut pipe, &mut self.files);
        self.files
            .get_mut(&pipe.path)
            .expect("pipe has a target")
            .pipes -= 1;
        self.write_target(&pipe.path);
        (self.notice)(LogNotice::Closed { id: pipe.id });
    }

    /// Writes a file's pending lines unless it is waiting for a retry; drops the file once no
    /// pipe uses it and everything is written.
    fn write_target(&mut self, path: &PathBuf) {
        let Some(t) = self.files.get_mut(path) else {
            return;
        };
        if t.retry_at.is_none()
            && let Err(e) = t.log.flush()
        {
            t.retry_at = Some(Instant::now() + RETRY_INTERVAL);
            (self.notice)(failure_notice(path, &e));
        }
        if t.pipes == 0 && !t.log.has_pending() && t.retry_at.is_none() {
            self.files.remove(path);
        }
    }

    fn retry_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, t)| t.retry_at.is_some_and(|at| at <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            let t = self.files.get_mut(&path).expect("listed above");
            match t.log.flush() {
                Ok(()) => {
                    t.retry_at = None;
                    (self.notice)(LogNotice::Resumed { path: path.clone() });
                    self.write_target(&path);
                }
                Err(_) => t.retry_at = Some(now + RETRY_INTERVAL),
            }
        }
    }

    /// Shutdown: a bounded last read of every pipe, unfinished lines written as lines.
    fn drain(&mut self) {
        for i in (0..self.pipes.len()).rev() {
            if self.files[&self.pipes[i].path].retry_at.is_none() {
                for _ in 0..SHUTDOWN_READS {
                    match self.read_pipe(i) {
                        ReadResult::Data => continue,
                        ReadResult::Eof | ReadResult::Empty => break,
                    }
                }
            }
            finish_pipe(&mut self.pipes[i], &mut self.files);
        }
        for (path, t) in &mut self.files {
            if let Err(e) = t.log.flush() {
                let lost = t.log.pending.len();
                let message = format!("{e}; {lost} bytes of log lines dropped at shutdown");
                (self.notice)(LogNotice::Error {
                    path: path.clone(),
                    message,
                });
            }
        }
        self.pipes.clear();
        self.files.clear();
        self.buffered.store(0, Ordering::Relaxed);
    }

    fn publish_buffered(&self) {
        let carried: usize = self.pipes.iter().map(|p| p.lines.carried()).sum();
        let pending: usize = self.files.values().map(|t| t.log.pending.len()).sum();
        self.buffered
            .store((carried + pending) as u64, Ordering::Relaxed);
    }
}

/// The pipe's unfinished line becomes a line of its file.
fn finish_pipe(pipe: &mut Pipe, files: &mut HashMap<PathBuf, Target>) {
    let target = files.get_mut(&pipe.path).expect("pipe has a target");
    let prefix = target.log.timestamps.then(|| ts_prefix(SystemTime::now()));
    let mut fmt = LineFormat {
        prefix: prefix.as_ref(),
        tap: pipe.tap.as_mut(),
    };
    pipe.lines.finish(&mut target.log.pending, &mut fmt);
}

fn ts_prefix(now: SystemTime) -> [u8; TS_LEN + 1] {
    let mut p = [b' '; TS_LEN + 1];
    p[..TS_LEN].copy_from_slice(&format_bytes(now));
    p
}

fn failure_notice(path: &std::path::Path, e: &io::Error) -> LogNotice {
    let path = path.to_path_buf();
    if crate::process::is_disk_full(e) {
        LogNotice::DiskFull { path }
    } else {
        LogNotice::Error {
            path,
            message: e.to_string(),
        }
    }
}
