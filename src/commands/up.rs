//! `pypm up [-d]` and the hidden `pypm daemon` that `up -d` starts.

use crate::process::ext::fs::{DirBuilderExt, OpenOptionsExt};
use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Failure, Located, locate};
use crate::cli::UpArgs;
use crate::config::units::parse_duration;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Request, Response, State, StatusReport};
use crate::desired::python_env::HostEnv;
use crate::supervisor::{self, Options, StartError};

/// The supervisor's own log: `PYPM_LOG` (default `info`) to stderr.
pub fn init_logger() {
    let _ = env_logger::Builder::from_env(env_logger::Env::new().filter_or("PYPM_LOG", "info"))
        .format_target(false)
        .try_init();
}

fn start_failure(e: StartError) -> Failure {
    match e {
        StartError::Config(c) => Failure::Config(c),
        StartError::AlreadyRunning(f) => Failure::Error(format!(
            "a supervisor is already running for `{f}`\n\nuse `pypm up -d` to apply the file to it, or `pypm down` to stop it"
        )),
        StartError::Io(m) => Failure::Error(m),
    }
}

pub fn up(config: Option<&Path>, args: &UpArgs) -> Result<(), Failure> {
    let located = locate(config)?;
    let wait =
        parse_duration(&args.wait).map_err(|e| Failure::Usage(format!("invalid --wait: {e}")))?;
    let desired =
        crate::desired::resolve::load(&located.path, &located.display, &HostEnv::from_process())
            .map_err(Failure::Config)?;
    let state_dir = desired.config.pypm.state_dir.clone();
    if client::is_running(&state_dir) {
        if !args.detach {
            return Err(start_failure(StartError::AlreadyRunning(located.display)));
        }
        let timeout = Duration::from_secs(60);
        match client::request_for(
            &state_dir,
            Some(&located.path),
            Request::Reload {
                profiles: crate::config::requested_profiles(),
            },
            timeout,
        ) {
            Ok(Response::Done { message }) => println!("applied `{}`: {message}", located.display),
            Ok(Response::Error { message, code, .. }) => {
                return Err(match Failure::from_response(message, code) {
                    // The supervisor of this state_dir runs another file: this one cannot
                    // start here (an error, not "no supervisor").
                    Failure::NoSupervisor(m) => Failure::Error(m),
                    f => f,
                });
            }
            Ok(other) => {
                return Err(Failure::Error(format!("unexpected answer {other:?}")));
            }
            Err(e) => return Err(Failure::Error(e.to_string())),
        }
        return wait_settled(&state_dir, wait, &located.display);
    }
    if args.detach {
        spawn_daemon(&located, &state_dir)?;
        return wait_settled(&state_dir, wait, &located.display);
    }
    init_logger();
    supervisor::run(Options {
        config_path: located.path,
        display: located.display,
    })
    .map_err(start_failure)
}

/// `pypm daemon`: the supervisor in this process, for `up -d`.
pub fn daemon(config: Option<&Path>) -> Result<(), Failure> {
    let located = locate(config)?;
    // A detached supervisor logs into `state_dir/pypm.log`, rotated like events.jsonl
    // (`events_max_size`, `events_max_files`); its stderr (the same file, opened by `up -d`)
    // only carries what comes before this.
    let host: std::collections::HashMap<String, String> = std::env::vars().collect();
    match crate::config::load(&located.path, &located.display, &host) {
        Ok(cfg) => {
            let sink = crate::events::journal::RotatingFile::open(
                &cfg.pypm.state_dir.join("pypm.log"),
                cfg.pypm.events_max_size,
                cfg.pypm.events_max_files,
            );
            match sink {
                Ok(sink) => {
                    let _ = env_logger::Builder::from_env(
                        env_logger::Env::new().filter_or("PYPM_LOG", "info"),
                    )
                    .format_target(false)
                    .target(env_logger::Target::Pipe(Box::new(sink)))
                    .try_init();
                }
                Err(_) => init_logger(),
            }
        }
        Err(_) => init_logger(),
    }
    supervisor::run(Options {
        config_path: located.path,
        display: located.display,
    })
    .map_err(start_failure)
}

pub(super) fn spawn_daemon(located: &Located, state_dir: &Path) -> Result<(), Failure> {
    let io = |what: &str, e: std::io::Error| Failure::Error(format!("{what}: {e}"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| io(&format!("cannot create `{}`", state_dir.display()), e))?;
    let log_path = state_dir.join("pypm.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| io(&format!("cannot open `{}`", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| io("cannot duplicate the log file", e))?;
    let start_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().map_err(|e| io("cannot find the pypm executable", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(&located.path)
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Its own session, no inherited descriptors: a Ctrl-C or hang-up of this terminal does not
    // reach the supervisor, and it holds no pipe of the caller open.
    crate::process::detach(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| io("cannot start the supervisor", e))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client::is_running(state_dir) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read(&log_path).unwrap_or_default();
            let tail = String::from_utf8_lossy(text.get(start_len as usize..).unwrap_or(&[]));
            return Err(Failure::Error(format!(
                "the supervisor exited at start ({status})\n\n{}",
                tail.trim_end()
            )));
        }
        if Instant::now() > deadline {
            return Err(Failure::Error(format!(
                "the supervisor did not answer within 30s; see `{}`",
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Still on its way: `starting`, or `waiting` for a dependency that has not failed.
fn unsettled(s: &StatusReport) -> bool {
    s.instances.iter().any(|r| {
        r.state == State::Starting
            || (r.state == State::Waiting
                && !r
                    .reason
                    .as_deref()
                    .is_some_and(|x| x.contains("failed") || x.contains("disabled")))
    })
}

/// Waits (at most `wait`) until no instance is starting, prints the status, and fails when an
/// instance has failed (SPEC §8).
fn wait_settled(state_dir: &Path, wait: Duration, display: &str) -> Result<(), Failure> {
    let deadline = Instant::now() + wait;
    let report = loop {
        let report = match client::request(
            state_dir,
            Request::Status {
                app: None,
                light: true,
            },
            Duration::from_secs(30),
        ) {
            Ok(Response::Status(s)) => s,
            Ok(other) => {
                return Err(Failure::Error(format!("unexpected answer {other:?}")));
            }
            Err(ClientError::NotRunning) => {
                return Err(Failure::Error(format!(
                    "the supervisor for `{display}` stopped; see `{}`",
                    state_dir.join("pypm.log").display()
                )));
            }
            Err(e) => return Err(Failure::Error(e.to_string())),
        };
        if !unsettled(&report) || Instant::now() >= deadline {
            break report;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    print!("{}", super::status::render(&report));
    if unsettled(&report) {
        let pending: Vec<&str> = report
            .instances
            .iter()
            .filter(|r| r.state == State::Starting || r.state == State::Waiting)
            .map(|r| r.name.as_str())
            .collect();
        eprintln!(
            "note: still on their way after {} (--wait): {}",
            crate::config::units::format_duration(wait),
            pending.join(", ")
        );
    }
    let failed: Vec<String> = report
        .instances
        .iter()
        .filter(|r| r.state == State::Failed)
        .map(|r| format!("{} ({})", r.name, r.reason.as_deref().unwrap_or("failed")))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Error(format!(
            "{} instance{} failed: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.join(", ")
        )))
    }
}
