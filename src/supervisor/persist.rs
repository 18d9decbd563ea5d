//! Files in `state_dir`: `state.json` (written atomically), `events.jsonl` (appended), `pypm.pid`.
//! All created 0600. Also the clean-up of leftovers after a supervisor died by SIGKILL.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::write_atomic;

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
