//! The log pump on Windows: a reader thread per child pipe, feeding the same line splitter and
//! log files as the Unix pump (`pump.rs`).
//!
//! Windows cannot wait for an anonymous pipe to become readable (no `poll` on pipes), so each
//! pipe gets a small thread doing blocking reads. The files are shared under one lock. A file
//! that cannot be written holds its pipes' threads (they stop reading: the same backpressure as
//! on Unix) and is tried again every [`RETRY_INTERVAL`]. The API is the Unix pump's.

use super::lines::{LineFormat, LineSplitter, Tap};
use super::pipes::{LogNotice, LogTarget, PipeId};
use super::sink::LogFile;
use super::timestamp::{TS_LEN, format_bytes};
use crate::process::ext::fd::OwnedFd;
use std::collections::HashMap;
use std::io::{self, PipeReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// How often a log file that could not be written is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Size of one read from a pipe.
const READ_SIZE: usize = 64 * 1024;

/// How long shutdown waits for the pipes' last lines.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

type Notify = Box<dyn FnMut(LogNotice) + Send>;

struct Target {
    log: LogFile,
    pipes: usize,
    failing: bool,
}

struct State {
    files: HashMap<PathBuf, Target>,
    /// Each open pipe's file.
    pipes: HashMap<PipeId, PathBuf>,
    /// Bytes of unfinished lines held by the reader threads.
    carried: HashMap<PipeId, usize>,
    notice: Notify,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a pipe closes (shutdown waits for them).
    closed: Condvar,
    buffered: AtomicU64,
}

/// Handle to the pump. Dropping it is the same as [`LogPump::shutdown`].
pub struct LogPump {
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogPump {
    /// Starts the pump. `notice` is called on the reader threads; it must not block for long.
    pub fn start(notice: impl FnMut(LogNotice) + Send + 'static) -> io::Result<LogPump> {
        Ok(LogPump {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    files: HashMap::new(),
                    pipes: HashMap::new(),
                    carried: HashMap::new(),
                    notice: Box::new(notice),
                    stopped: false,
                }),
                closed: Condvar::new(),
                buffered: AtomicU64::new(0),
            }),
            next_id: AtomicU64::new(1),
        })
    }

    /// Hands the read end of a child's pipe to the pump (a thread reads it until end of file).
    pub fn add(&self, fd: OwnedFd, target: LogTarget, tap: Option<Tap>) -> io::Result<PipeId> {
        let id = PipeId(self.next_id.fetch_add(1, Ordering::Relaxed));
        {
            let mut st = lock(&self.shared);
            if st.stopped {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "log pump is not running",
                ));
            }
            attach(&mut st, &target);
            st.pipes.insert(id, target.path.clone());
        }
        let shared = self.shared.clone();
        let reader = PipeReader::from(fd);
        let spawned = std::thread::Builder::new()
            .name("pypm-logs".into())
            .stack_size(256 * 1024)
            .spawn(move || read_pipe(&shared, id, reader, tap));
        if let Err(e) = spawned {
            let mut st = lock(&self.shared);
            if let Some(path) = st.pipes.remove(&id)
                && let Some(t) = st.files.get_mut(&path)
            {
                t.pipes -= 1;
            }
            return Err(e);
        }
        Ok(id)
    }

    /// From the next line on, `id`'s lines go to `target` instead.
    pub fn retarget(&self, id: PipeId, target: LogTarget) -> io::Result<()> {
        let mut st = lock(&self.shared);
        let Some(old) = st.pipes.get(&id).cloned() else {
            return Ok(()); // closed meanwhile
        };
        attach(&mut st, &target);
        st.pipes.insert(id, target.path.clone());
        if let Some(t) = st.files.get_mut(&old) {
            t.pipes -= 1;
        }
        write_target(&mut st, &old);
        Ok(())
    }

    /// Bytes the pump holds in memory right now.
    pub fn buffered_bytes(&self) -> u64 {
        self.shared.buffered.load(Ordering::Relaxed)
    }

    /// Waits (boundedly) for the open pipes' last lines, writes what is held, and stops.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        let mut st = lock(&self.shared);
        if st.stopped {
            return;
        }
        while !st.pipes.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .shared
                .closed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.stopped = true;
        let st = &mut *st;
        for (path, t) in &mut st.files {
            if let Err(e) = t.log.flush() {
                let lost = t.log.pending.len();
                let message = format!("{e}; {lost} bytes of log lines dropped at shutdown");
                (st.notice)(LogNotice::Error {
                    path: path.clone(),
                    message,
                });
            }
        }
        st.files.clear();
    }
}

impl Drop for LogPump {
    fn drop(&mut self) {
        self.stop();
    }
}

fn attach(st: &mut State, target: &LogTarget) {
    let t = st
        .files
        .entry(target.path.clone())
        .or_insert_with(|| Target {
            log: LogFile::new(target.path.clone(), 0, 0, false),
            pipes: 0,
            failing: false,
        });
    t.pipes += 1;
    t.log.max_size = target.max_size;
    t.log.max_files = target.max_files;
    t.log.timestamps = target.timestamps;
}

/// Writes a file's pending lines; drops the file once no pipe uses it and all is written.
/// Returns false while the file fails.
fn write_target(st: &mut State, path: &PathBuf) -> bool {
    let Some(t) = st.files.get_mut(path) else {
        return true;
    };
    let ok = match t.log.flush() {
        Ok(()) => {
            if t.failing {
                t.failing = false;
                (st.notice)(LogNotice::Resumed { path: path.clone() });
            }
            true
        }
        Err(e) => {
            if !t.failing {
                t.failing = true;
                (st.notice)(failure_notice(path, &e));
            }
            false
        }
    };
    if let Some(t) = st.files.get(path)
        && t.pipes == 0
        && !t.log.has_pending()
    {
        st.files.remove(path);
    }
    ok
}

fn publish(shared: &Shared, st: &State) {
    let carried: usize = st.carried.values().sum();
    let pending: usize = st.files.values().map(|t| t.log.pending.len()).sum();
    shared
        .buffered
        .store((carried + pending) as u64, Ordering::Relaxed);
}

/// One pipe's thread: read, split into lines, write; at end of file the unfinished line too.
fn read_pipe(shared: &Shared, id: PipeId, mut reader: PipeReader, mut tap: Option<Tap>) {
    let mut lines = LineSplitter::default();
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A broken pipe is the end of file of a Windows pipe.
            Err(_) => break,
        };
        let mut st = lock(shared);
        if st.stopped {
            return;
        }
        let Some(path) = st.pipes.get(&id).cloned() else {
            return;
        };
        if let Some(target) = st.files.get_mut(&path) {
            let prefix = target.log.timestamps.then(|| ts_prefix(SystemTime::now()));
            let mut fmt = LineFormat {
                prefix: prefix.as_ref(),
                tap: tap.as_mut(),
            };
            let mut data = &buf[..n];
            if fmt.is_plain()
                && let Some((head, end)) = lines.plain_split(data)
            {
                // Plain lines go from the read buffer to the file without another copy.
                target
                    .log
                    .append(&[lines.carry(), &data[..head], &data[head..end]]);
                lines.clear();
                data = &data[end..];
            }
            lines.feed(data, &mut target.log.pending, &mut fmt);
        }
        st.carried.insert(id, lines.carried());
        // A failing file: stop reading (backpressure) and try again now and then.
        while !write_target(&mut st, &path) && !st.stopped {
            publish(shared, &st);
            drop(st);
            std::thread::sleep(RETRY_INTERVAL);
            st = lock(shared);
        }
        publish(shared, &st);
    }
    let mut st = lock(shared);
    if st.stopped {
        return;
    }
    if let Some(path) = st.pipes.remove(&id) {
        if let Some(target) = st.files.get_mut(&path) {
            let prefix = target.log.timestamps.then(|| ts_prefix(SystemTime::now()));
            let mut fmt = LineFormat {
                prefix: prefix.as_ref(),
                tap: tap.as_mut(),
            };
            lines.finish(&mut target.log.pending, &mut fmt);
            target.pipes -= 1;
        }
        write_target(&mut st, &path);
    }
    st.carried.remove(&id);
    publish(shared, &st);
    (st.notice)(LogNotice::Closed { id });
    shared.closed.notify_all();
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
