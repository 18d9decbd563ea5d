//! The event journal: `state_dir/events.jsonl` (SPEC §8), one [`EventRecord`] per line,
//! rotated like the apps' logs, and fanned out to the bus once written; and the rotating file
//! a detached supervisor logs to.
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::logs::format_rfc3339_millis;
use crate::store::private_file;

/// One line of `events.jsonl` (SPEC §8).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    pub ts: String,
    pub event: String,
    pub app: Option<String>,
    pub instance: Option<u32>,
    pub pid: Option<i32>,
    pub detail: String,
}

impl EventRecord {
    pub fn new(
        event: &str,
        app: Option<&str>,
        instance: Option<u32>,
        pid: Option<i32>,
        detail: impl Into<String>,
    ) -> Self {
        EventRecord {
            ts: format_rfc3339_millis(SystemTime::now()),
            event: event.into(),
            app: app.map(str::to_string),
            instance,
            pid,
            detail: detail.into(),
        }
    }
}

/// An append-only file rotated at `max_size` into `PATH.1` … `PATH.N` (the detached
/// supervisor's `pypm.log`).
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    len: u64,
    max_size: u64,
    max_files: u32,
}

impl RotatingFile {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<RotatingFile> {
        let file = private_file(path, true)?;
        let len = file.metadata().map_or(0, |m| m.len());
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            len,
            max_size: max_size.max(1),
            max_files,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        let rotated = |k: u32| crate::logs::rotated_path(&self.path, k);
        if self.max_files == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(rotated(self.max_files));
            for k in (1..self.max_files).rev() {
                let _ = std::fs::rename(rotated(k), rotated(k + 1));
            }
            std::fs::rename(&self.path, rotated(1))?;
        }
        self.file = private_file(&self.path, true)?;
        self.len = 0;
        Ok(())
    }
}

impl RotatingFile {
    /// Appends `bytes` with one write, rotating first when they would not fit; a write that
    /// fails partway (disk full) is cut back, so the file holds whole records only.
    pub fn append_whole(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.len > 0 && self.len + bytes.len() as u64 > self.max_size {
            self.rotate()?;
        }
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.len > 0 && self.len + buf.len() as u64 > self.max_size {
            // A failed rotation keeps writing to the file as it is.
            let _ = self.rotate();
        }
        let n = self.file.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Appends events to `state_dir/events.jsonl`, rotating it at `events_max_size` into
/// `events.jsonl.1` … `.N` (`events_max_files`), the apps' rename scheme: a reader that follows
/// the file reads the old one to its end, then the new one from its start, and loses nothing.
pub struct EventLog {
    file: Option<RotatingFile>,
    /// Events that could not be written (disk full, …), reported once they can be again.
    lost: u64,
    /// Notifiers, StatsD and the HTTP API's event streams (see [`crate::events::bus`]).
    bus: crate::events::bus::EventBus,
    /// Appended since the last [`EventLog::flush`].
    queued: Vec<EventRecord>,
}

impl EventLog {
    pub fn open(
        state_dir: &Path,
        bus: crate::events::bus::EventBus,
        max_size: u64,
        max_files: u32,
    ) -> EventLog {
        let path = state_dir.join("events.jsonl");
        let file = RotatingFile::open(&path, max_size, max_files)
            .map_err(|e| log::error!("cannot open `{}`: {e}", path.display()))
            .ok();
        EventLog {
            file,
            lost: 0,
            bus,
            queued: Vec::new(),
        }
    }

    /// Queues an event; [`Self::flush`] writes it. The supervisor flushes before it waits for
    /// the next input and before it answers a request, so the write (and the log line) never
    /// delays the restart an exit calls for.
    pub fn append(&mut self, e: &EventRecord) {
        self.queued.push(e.clone());
    }

    /// Logs and appends the queued events, in order. Each flush is one write; a short write
    /// (disk full) is cut back, so the file holds whole records only — never a torn line glued
    /// to the next one.
    pub fn flush(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let mut lines = Vec::new();
        for e in &self.queued {
            log::info!(
                "{} {}{} {}",
                e.event,
                e.app.as_deref().unwrap_or("-"),
                e.instance.map(|i| format!(".{i}")).unwrap_or_default(),
                e.detail
            );
            if let Ok(line) = serde_json::to_vec(e) {
                lines.extend_from_slice(&line);
                lines.push(b'\n');
            }
        }
        if let Some(f) = &mut self.file {
            match f.append_whole(&lines) {
                Ok(()) => {
                    if self.lost > 0 {
                        log::warn!(
                            "events.jsonl is written again; {} events could not be written before",
                            self.lost
                        );
                        self.lost = 0;
                    }
                }
                Err(err) => {
                    if self.lost == 0 {
                        log::error!(
                            "cannot append to events.jsonl: {err}; events are lost until it can"
                        );
                    }
                    self.lost += self.queued.len() as u64;
                }
            }
        }
        self.bus.publish(&self.queued);
        self.queued.clear();
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.flush();
    }
}
