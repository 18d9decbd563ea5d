//! Why a spawn failed: the stage the child reached, and the message users see.

use std::io;
#[cfg(unix)]
use std::io::Read;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[cfg(unix)]
use super::errno_text;
#[cfg(unix)]
use super::spawn::SpawnSpec;

/// Why a child could not be started. Every variant means no process is left behind.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot execute `{program}`: not found in PATH")]
    NotFound { program: PathBuf },
    #[error("cannot execute `{program}`: {reason}")]
    Exec {
        program: PathBuf,
        errno: i32,
        reason: String,
    },
    #[error("working directory `{cwd}` does not exist")]
    CwdMissing { cwd: PathBuf },
    #[error("cannot enter working directory `{cwd}`: {reason}")]
    Cwd {
        cwd: PathBuf,
        errno: i32,
        reason: String,
    },
    #[error("unknown user `{user}`")]
    UnknownUser { user: String },
    #[error("cannot run as user `{user}`: pypm is not running as root")]
    NotRoot { user: String },
    #[error("cannot switch to user `{user}`: {reason}")]
    User {
        user: String,
        errno: i32,
        reason: String,
    },
    #[error("cannot set {what} to {value}: {reason}")]
    Limit {
        what: &'static str,
        value: i64,
        errno: i32,
        reason: String,
    },
    #[error("cannot start process: {step} failed: {reason}")]
    Setup {
        step: &'static str,
        errno: i32,
        reason: String,
    },
    #[error("cannot start process: {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{what} contains a NUL byte")]
    Nul { what: String },
    #[error("invalid environment variable name `{name}`")]
    EnvName { name: String },
}

#[cfg(unix)]
/// Where the child failed, sent with the errno over the report pipe.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(super) enum Stage {
    Setsid = 1,
    Fds,
    Nofile,
    Nice,
    Groups,
    Gid,
    Uid,
    DeathSignal,
    Chdir,
    Exec,
    Cgroup,
}

#[cfg(unix)]
pub(super) const STAGES: [Stage; 11] = [
    Stage::Setsid,
    Stage::Fds,
    Stage::Nofile,
    Stage::Nice,
    Stage::Groups,
    Stage::Gid,
    Stage::Uid,
    Stage::DeathSignal,
    Stage::Chdir,
    Stage::Exec,
    Stage::Cgroup,
];

#[cfg(unix)]
pub(super) fn child_error(spec: &SpawnSpec, stage: u32, errno: i32) -> SpawnError {
    let reason = errno_text(errno);
    let stage = STAGES.iter().copied().find(|s| *s as u32 == stage);
    let user = || spec.user.clone().unwrap_or_default();
    let setup = |step| SpawnError::Setup {
        step,
        errno,
        reason: reason.clone(),
    };
    match stage {
        Some(Stage::Exec) => {
            let reason = match errno {
                libc::ENOENT => missing_interpreter(spec).unwrap_or(reason),
                _ => reason,
            };
            SpawnError::Exec {
                program: spec.program.clone(),
                errno,
                reason,
            }
        }
        Some(Stage::Chdir) if errno == libc::ENOENT => SpawnError::CwdMissing {
            cwd: spec.cwd.clone(),
        },
        Some(Stage::Chdir) => SpawnError::Cwd {
            cwd: spec.cwd.clone(),
            errno,
            reason,
        },
        Some(Stage::Nofile) => SpawnError::Limit {
            what: "nofile",
            value: spec.nofile.unwrap_or(0) as i64,
            errno,
            reason,
        },
        Some(Stage::Nice) => SpawnError::Limit {
            what: "nice",
            value: spec.nice.unwrap_or(0).into(),
            errno,
            reason,
        },
        Some(Stage::Groups | Stage::Gid | Stage::Uid) => SpawnError::User {
            user: user(),
            errno,
            reason,
        },
        Some(Stage::Setsid) => setup("setsid"),
        Some(Stage::Fds) => setup("setting up file descriptors"),
        Some(Stage::DeathSignal) => setup("setting the parent death signal"),
        Some(Stage::Cgroup) => setup("joining its cgroup (memory_max / cpu_max)"),
        None => setup("child setup"),
    }
}

#[cfg(unix)]
/// For `ENOENT` on a file that exists: the `#!` interpreter is what is missing.
fn missing_interpreter(spec: &SpawnSpec) -> Option<String> {
    let path = if spec.program.is_relative() && spec.program.as_os_str().as_bytes().contains(&b'/')
    {
        spec.cwd.join(&spec.program)
    } else {
        spec.program.clone()
    };
    let mut head = [0u8; 256];
    let n = std::fs::File::open(&path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let interpreter = String::from_utf8_lossy(line);
    let interpreter = interpreter.split_whitespace().next()?;
    Some(format!(
        "its interpreter `{interpreter}` (from the #! line) does not exist"
    ))
}
