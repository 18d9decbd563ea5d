//! What both log pumps (the Unix poll loop, src/logs/pump.rs, and the Windows reader threads,
//! src/logs/pump_threads.rs) take and report: one definition for both.

use std::path::PathBuf;

/// Where one pipe's lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// The live file, e.g. `log_dir/api.out.log` or `log_dir/api.0.err.log`.
    pub path: PathBuf,
    /// Rotate when the next line would make the file larger than this; 0 = never rotate.
    pub max_size: u64,
    /// Rotated files kept (`.1` … `.max_files`).
    pub max_files: u32,
    /// Prefix each line with an RFC 3339 UTC timestamp and a space.
    pub timestamps: bool,
}

/// Identifies a pipe registered with [`LogPump::add`](crate::logs::LogPump::add).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipeId(pub u64);

/// What the pump reports, from its own thread. Each write problem is reported once, when it
/// starts, and once more ([`LogNotice::Resumed`]) when it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogNotice {
    /// The file system holding `path` is full (`ENOSPC`/`EDQUOT`); its pipes are not read.
    DiskFull { path: PathBuf },
    /// `path` could not be written or rotated; its pipes are not read until it can.
    Error { path: PathBuf, message: String },
    /// `path` is written again after [`LogNotice::DiskFull`] or [`LogNotice::Error`].
    Resumed { path: PathBuf },
    /// The pipe reached end of file (every writer closed it) and its last lines were handed to
    /// the file; the pump closed its read end.
    Closed { id: PipeId },
}
