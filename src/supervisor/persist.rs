//! Files in `state_dir`: `state.json` (written atomically), `events.jsonl` (appended), `pypm.pid`.
//! All created 0600. Also the clean-up of leftovers after a supervisor died by SIGKILL.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::logs::format_rfc3339_millis;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedInstance {
    pub app: String,
    pub instance: u32,
    pub state: String,
    pub pid: Option<i32>,
    /// Process start time (identity check before any signal).
    pub start_time: Option<u64>,
    pub restarts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedState {
    pub pid: u32,
    pub config_file: String,
    pub instances: Vec<SavedInstance>,
    /// The prefix of the `PYPM_RUN_ID` of everything this supervisor started
    /// (`process::Reaper::run_tag`), while anything runs: after a SIGKILL, the next supervisor
    /// finds by it what left the apps' process groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_tag: Option<String>,
    /// Each scheduled app's last due run (RFC 3339): `catch_up` compares it with the schedule
    /// when the next supervisor starts (systemd `Persistent=`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub last_runs: std::collections::BTreeMap<String, String>,
    /// The profiles the supervisor applies (`--profile`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

fn private_file(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    o.open(path)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then rename, so a
/// reader (or a supervisor started after a crash) sees the old file or the new one, never half.
/// No fsync: the state describes live processes, which a power loss ends anyway, and syncing on
/// every state change would put disk latency on the restart path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = private_file(&tmp, false)?;
        f.write_all(bytes)?;
    }
    std::fs::rename(&tmp, path)
}

pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

pub fn pid_path(state_dir: &Path) -> PathBuf {
    state_dir.join("pypm.pid")
}

pub fn save_state(state_dir: &Path, state: &SavedState) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    write_atomic(&state_path(state_dir), &text)
}

pub fn load_state(state_dir: &Path) -> Option<SavedState> {
    let text = std::fs::read(state_path(state_dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

pub fn write_pid(state_dir: &Path) -> io::Result<()> {
    write_atomic(
        &pid_path(state_dir),
        format!("{}\n", std::process::id()).as_bytes(),
    )
}

/// Kills what a previous supervisor of this `state_dir` left running (it died without stopping
/// its apps). Each recorded process is checked by pid and start time: a reused pid is never hit.
/// Returns how many instances had leftovers.
pub fn kill_leftovers(state_dir: &Path) -> usize {
    let Some(saved) = load_state(state_dir) else {
        return 0;
    };
    let mut n = 0;
    for i in &saved.instances {
        if let (Some(pid), Some(start)) = (i.pid, i.start_time)
            && crate::process::kill_tree_leftovers(pid, start, pid).unwrap_or(0) > 0
        {
            log::warn!(
                "stopped leftover `{}` instance {} (pid {pid}) of a supervisor that did not exit cleanly",
                i.app,
                i.instance
            );
            n += 1;
        }
    }
    if let Some(tag) = &saved.run_tag {
        let k = crate::process::kill_run_leftovers(tag);
        if k > 0 {
            log::warn!(
                "stopped {k} leftover process(es) outside the apps' process groups of a supervisor that did not exit cleanly"
            );
        }
    }
    n
}

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
    /// Notifiers, StatsD and the HTTP API's event streams (see [`crate::bus`]).
    bus: crate::bus::EventBus,
    /// Appended since the last [`EventLog::flush`].
    queued: Vec<EventRecord>,
}

impl EventLog {
    pub fn open(
        state_dir: &Path,
        bus: crate::bus::EventBus,
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
