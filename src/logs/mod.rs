//! Children's output: writing it to log files with rotation, and reading it back for `pypm logs`.
//!
//! This module owns the log files in `log_dir` (`APP.out.log`, `APP.N.err.log`, and their rotated
//! siblings `.1` … `.N`, `.1` newest) and the read ends of the children's stdout/stderr pipes once
//! they are handed to the [`LogPump`]. It knows nothing about apps, states or the supervisor: the
//! caller decides which pipe goes to which [`LogTarget`] and turns [`LogNotice`]s into events.
//! It must not spawn, signal or wait for processes.
//!
//! # Writer guarantees ([`LogPump`])
//! - One background thread reads every registered pipe (`poll(2)`, reads of up to 1 MiB) and
//!   appends to the files. Several pipes may write to the same path (an old grandchild still
//!   holding the previous instance's pipe): the pump keeps one open file per path, and only whole
//!   lines ever reach a file, so lines from different pipes never interleave inside a line.
//! - Lines that need no change (no timestamp, no tap, none longer than [`MAX_LINE`]) go from the
//!   read buffer to the file in one `writev`, without being copied: the bytes cross the kernel
//!   twice (pipe → buffer → file) and user space only searches them for newlines. A pipe found
//!   full grows to 1 MiB.
//! - A pipe fed line by line (small reads in a row: an unbuffered `print()` per line) rests 5 ms
//!   between reads, so a read and a write carry a few milliseconds of lines instead of one each;
//!   a pipe that was quiet is read at once (bench/chatty.py: pump CPU 41 % → 1 % of a core beside
//!   such an app, a quiet app's line on disk in 0.4 ms p50).
//! - Line-oriented: a line is never split across a rotation, lost or doubled. A line longer than
//!   [`MAX_LINE`] (64 KiB) is written as 64 KiB pieces, each its own line. Output without a final
//!   newline is kept: it is written as a line when the pipe reaches end of file (or at shutdown).
//! - With `timestamps`, each line is prefixed with the UTC RFC 3339 time it was read, with
//!   milliseconds, and a space: `2026-11-27T03:50:01.123Z hello`.
//! - Rotation is rename-and-reopen, never copy-and-truncate: when the next line would make the file
//!   exceed `max_size`, `X.log.(N-1)` → `X.log.N` … `X.log` → `X.log.1`, and a new `X.log` is
//!   created; exactly `max_files` rotated files are kept (older ones are deleted). A single line
//!   larger than `max_size` goes alone into a fresh file. `max_size = 0` disables rotation.
//! - Backpressure: the pump holds at most one partial line (≤ 64 KiB) per pipe and, per file, the
//!   formatted lines of one 64 KiB read (timestamps add 25 bytes a line) that could not be
//!   written yet. If it cannot write a file, it stops reading that file's pipes, so the children
//!   block on their full pipes; they are never killed for it. [`LogPump::buffered_bytes`] shows
//!   the total.
//! - Write errors never crash or spin the pump. A full disk (`ENOSPC`, `EDQUOT`) is reported once
//!   as [`LogNotice::DiskFull`], any other error once as [`LogNotice::Error`]; the pump retries every
//!   [`RETRY_INTERVAL`] and reports [`LogNotice::Resumed`] when a write succeeds. Nothing is lost.
//! - Files are created with mode 0640 (before the umask): logs may hold secrets, so not
//!   world-readable, but readable by the group for log shippers. Missing directories are created.
//!
//! # Reader side
//! [`tail`], [`tail_merged`] and [`tail_follow`] read the last lines (backwards, in blocks, into
//! the rotated files when the live one is short); a [`Follower`] follows a file across rotations.

mod follow;
mod lines;
mod pipes;
#[cfg(unix)]
mod pump;
#[cfg(windows)]
#[path = "pump_threads.rs"]
mod pump;
mod sink;
mod tail;
mod timestamp;

pub use follow::{FOLLOW_INTERVAL, Follower, tail_follow};
pub use lines::Tap;
pub use pipes::{LogNotice, LogTarget, PipeId};
pub use pump::{LogPump, RETRY_INTERVAL};
pub use tail::{tail, tail_merged};
pub use timestamp::format_rfc3339_millis;

use std::fmt;
use std::path::{Path, PathBuf};

/// The longest line written as one line; longer lines are written in pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// Which of a child's output streams a pipe or a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    /// `"out"` or `"err"`, as used in log file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live log file name of an app's stream: `api.out.log`, or `api.2.err.log` for instance 2 of
/// an app with several instances (pass `None` when `instances = 1`).
pub fn log_file_name(app: &str, instance: Option<u32>, stream: Stream) -> String {
    match instance {
        Some(n) => format!("{app}.{n}.{stream}.log"),
        None => format!("{app}.{stream}.log"),
    }
}

/// One instance's two log files, as `pypm logs` and the HTTP API read them.
pub struct Source {
    /// `api`, or `api.0` when the app has several instances.
    pub label: String,
    pub out: PathBuf,
    pub err: PathBuf,
    /// The app writes timestamps: its two streams can be merged in time order.
    pub timestamps: bool,
}

/// The sources of these apps: `(name, instances, log_timestamps)` each.
pub fn sources(log_dir: &Path, apps: &[(String, u32, bool)]) -> Vec<Source> {
    let mut out = Vec::new();
    for (app, instances, timestamps) in apps {
        for idx in 0..*instances {
            let inst = (*instances > 1).then_some(idx);
            let label = match inst {
                Some(i) => format!("{app}.{i}"),
                None => app.clone(),
            };
            out.push(Source {
                label,
                out: log_dir.join(log_file_name(app, inst, Stream::Out)),
                err: log_dir.join(log_file_name(app, inst, Stream::Err)),
                timestamps: *timestamps,
            });
        }
    }
    out
}

impl Source {
    /// The last `n` lines of `streams` (SPEC §8 order): with timestamps and both streams, the
    /// last `n` of the two merged in time order; else stdout's last `n`, then stderr's.
    pub fn last_lines(
        &self,
        streams: &[Stream],
        n: usize,
    ) -> Result<Vec<(Stream, String)>, (PathBuf, std::io::Error)> {
        if self.timestamps && streams.len() == 2 {
            return tail_merged(&self.out, &self.err, n).map_err(|e| (self.out.clone(), e));
        }
        let mut lines = Vec::new();
        for st in streams {
            let path = self.path(*st);
            let got = tail(path, n).map_err(|e| (path.to_path_buf(), e))?;
            lines.extend(got.into_iter().map(|l| (*st, l)));
        }
        Ok(lines)
    }

    pub fn path(&self, stream: Stream) -> &Path {
        match stream {
            Stream::Out => &self.out,
            Stream::Err => &self.err,
        }
    }
}

/// The `k`-th rotated file of a live log file: `api.out.log.1` (the newest) … `api.out.log.N`.
pub fn rotated_path(live: &Path, k: u32) -> PathBuf {
    let mut name = live.as_os_str().to_owned();
    name.push(format!(".{k}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(log_file_name("api", None, Stream::Out), "api.out.log");
        assert_eq!(log_file_name("api", Some(2), Stream::Err), "api.2.err.log");
        assert_eq!(
            rotated_path(Path::new("/l/api.out.log"), 3),
            PathBuf::from("/l/api.out.log.3")
        );
    }
}
