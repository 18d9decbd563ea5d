//! The verbs that talk to a running supervisor (`down`, `restart`, `reload`, `plan`), and what
//! every such verb shares: finding the socket and mapping answers to exit codes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Failure, Located, locate, state_dir_for};
use crate::control::client::{self, ClientError};
use crate::control::protocol::{PlanChange, PlanReport, PlanVerb, Request, Response};
use crate::desired::python_env::HostEnv;

/// Quick questions (status, inspect, plan, ping).
pub(super) const QUICK: Duration = Duration::from_secs(30);
/// Requests that may wait on apps (restart rolls instances, reload may start some).
pub(super) const SLOW: Duration = Duration::from_secs(300);
/// The longest `down` waits for the supervisor to stop everything and exit.
const DOWN_DEADLINE: Duration = Duration::from_secs(300);

/// The file and the state directory of this invocation.
pub(super) struct Target {
    pub located: Located,
    pub state_dir: PathBuf,
}

pub(super) fn target(config: Option<&Path>) -> Result<Target, Failure> {
    let located = locate(config)?;
    let state_dir = state_dir_for(&located);
    Ok(Target { located, state_dir })
}

pub(super) fn no_supervisor(display: &str) -> Failure {
    Failure::NoSupervisor(format!(
        "no supervisor is running for `{display}`\n\nstart one with `pypm up -d` (or `pypm up` in the foreground)"
    ))
}

pub(super) fn unexpected(verb: &str, response: &Response) -> Failure {
    let kind = serde_json::to_value(response)
        .ok()
        .and_then(|v| v.get("kind")?.as_str().map(str::to_string))
        .unwrap_or_default();
    Failure::Error(format!(
        "the supervisor answered `{verb}` with an unexpected `{kind}`"
    ))
}

pub(super) fn client_failure(e: ClientError) -> Failure {
    Failure::Error(e.to_string())
}

/// Sends `req`; no supervisor → exit 3, an `Error` answer → its exit code.
pub(super) fn ask(t: &Target, req: Request, timeout: Duration) -> Result<Response, Failure> {
    match client::request_for(&t.state_dir, Some(&t.located.path), req, timeout) {
        Ok(Response::Error { message, code, .. }) => Err(Failure::from_response(message, code)),
        Ok(r) => Ok(r),
        Err(ClientError::NotRunning) => Err(no_supervisor(&t.located.display)),
        Err(e) => Err(client_failure(e)),
    }
}

pub fn restart(config: Option<&Path>, app: Option<String>) -> Result<(), Failure> {
    let t = target(config)?;
    match ask(&t, Request::Restart { app }, SLOW)? {
        Response::Done { message } => {
            println!("{message}");
            Ok(())
        }
        other => Err(unexpected("restart", &other)),
    }
}

pub fn reload(config: Option<&Path>) -> Result<(), Failure> {
    let t = target(config)?;
    match ask(
        &t,
        Request::Reload {
            profiles: crate::config::requested_profiles(),
        },
        SLOW,
    )? {
        Response::Done { message } => {
            println!("{message}");
            Ok(())
        }
        other => Err(unexpected("reload", &other)),
    }
}

pub fn down(config: Option<&Path>) -> Result<(), Failure> {
    let t = target(config)?;
    match shut_down(
        &t.state_dir,
        &t.located.path,
        &t.located.display,
        DOWN_DEADLINE,
    ) {
        Ok(true) => println!("stopped"),
        Ok(false) => println!("no supervisor is running for `{}`", t.located.display),
        // The supervisor in this state_dir runs another file: not ours to stop.
        Err(Failure::NoSupervisor(message)) => {
            println!("{}", message.trim_end())
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Asks the supervisor of `state_dir` to stop and waits until it has: its socket no longer
/// answers and its process is gone. False when none was running.
fn shut_down(
    state_dir: &Path,
    config: &Path,
    display: &str,
    within: Duration,
) -> Result<bool, Failure> {
    // The pid from the live supervisor itself: a stale pid file could name a recycled pid.
    let pid = match client::request_for(state_dir, Some(config), Request::Ping, QUICK) {
        Err(ClientError::NotRunning) => return Ok(false),
        Ok(Response::Error {
            message, code: 3, ..
        }) => return Err(Failure::from_response(message, 3)),
        Ok(Response::Pong { pid, .. }) => Some(pid),
        _ => read_pid_file(state_dir),
    };
    match client::request_for(state_dir, Some(config), Request::Shutdown, within) {
        Ok(Response::Error { message, code, .. }) => {
            return Err(Failure::from_response(message, code));
        }
        // Gone already, or it closed the connection as it went: either way, wait below.
        Ok(_) | Err(ClientError::NotRunning | ClientError::Protocol(_) | ClientError::Io(..)) => {}
        Err(e @ ClientError::Timeout(_)) => return Err(client_failure(e)),
    }
    let deadline = Instant::now() + within;
    while client::accepts(state_dir) || pid.is_some_and(pid_alive) {
        if Instant::now() >= deadline {
            return Err(Failure::Error(format!(
                "the supervisor for `{display}` did not stop within {}s",
                within.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(true)
}

fn read_pid_file(state_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(state_dir.join("pypm.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(crate::process::is_alive)
}

pub fn plan(config: Option<&Path>, json: bool) -> Result<(), Failure> {
    let t = target(config)?;
    let report = match client::request_for(
        &t.state_dir,
        Some(&t.located.path),
        Request::Plan {
            profiles: crate::config::requested_profiles(),
        },
        QUICK,
    ) {
        Ok(Response::Plan(report)) => report,
        Ok(Response::Error { message, code, .. }) => {
            return Err(Failure::from_response(message, code));
        }
        Ok(other) => return Err(unexpected("plan", &other)),
        Err(ClientError::NotRunning) => local_plan(&t.located)?,
        Err(e) => return Err(client_failure(e)),
    };
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Error(format!("cannot encode the plan: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render_plan(&report, &t.located.display));
    }
    if !report.running {
        // What `up` would do is printed, but the answer to "what would change against the
        // running supervisor" is exit 3 (SPEC §2), so scripts can tell it from pending changes.
        Err(no_supervisor(&t.located.display))
    } else if report.changes.is_empty() {
        Ok(())
    } else {
        Err(Failure::Changes)
    }
}

/// Without a supervisor, applying the file starts every enabled app.
fn local_plan(located: &Located) -> Result<PlanReport, Failure> {
    let desired =
        crate::desired::resolve::load(&located.path, &located.display, &HostEnv::from_process())
            .map_err(Failure::Config)?;
    let changes = desired
        .apps
        .iter()
        .filter(|(_, spec)| spec.app.enabled)
        .map(|(name, _)| PlanChange {
            app: name.clone(),
            verb: PlanVerb::Start,
            reason: "new".into(),
        })
        .collect();
    Ok(PlanReport {
        config_file: located.display.clone(),
        running: false,
        changes,
    })
}

pub(super) fn render_plan(report: &PlanReport, display: &str) -> String {
    let mut out = String::new();
    if !report.running {
        out.push_str(&format!(
            "no supervisor is running for `{display}`: `pypm up` would start every enabled app\n"
        ));
    }
    if report.changes.is_empty() {
        out.push_str("no changes\n");
    }
    for change in &report.changes {
        out.push_str(&format!("{change}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(app: &str, verb: &str, reason: &str) -> PlanChange {
        PlanChange {
            app: app.into(),
            verb: PlanVerb::try_from(verb.to_string()).unwrap_or_else(|e| panic!("{e}")),
            reason: reason.into(),
        }
    }

    #[test]
    fn plan_lines() {
        let report = PlanReport {
            config_file: "pypm.toml".into(),
            running: true,
            changes: vec![
                change("api", "restart", "env DEBUG changed"),
                change("worker", "scale 2 → 4", "instances changed"),
                change("old", "stop", "removed"),
            ],
        };
        assert_eq!(
            render_plan(&report, "pypm.toml"),
            "api: restart (env DEBUG changed)\nworker: scale 2 → 4 (instances changed)\nold: stop (removed)\n"
        );
        let none = PlanReport {
            changes: vec![],
            ..report
        };
        assert_eq!(render_plan(&none, "pypm.toml"), "no changes\n");
    }

    #[test]
    fn plan_without_supervisor_says_so() {
        let report = PlanReport {
            config_file: "pypm.toml".into(),
            running: false,
            changes: vec![change("api", "start", "new")],
        };
        let text = render_plan(&report, "pypm.toml");
        assert!(text.starts_with("no supervisor is running for `pypm.toml`"));
        assert!(text.ends_with("\napi: start (new)\n"));
    }

    #[test]
    fn down_waits_for_socket_and_process() {
        use crate::control::server::Server;
        use std::sync::{Arc, Mutex};

        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            shut_down(
                tmp.path(),
                Path::new("pypm.toml"),
                "pypm.toml",
                Duration::from_secs(5)
            ),
            Ok(false)
        ));

        // A stand-in supervisor process that outlives its socket by a little.
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id();
        let reaper = std::thread::spawn(move || child.wait());
        let server = Server::bind(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let stopper = Arc::new(Mutex::new(Some(server.stopper())));
        let handler = move |req: Request| match req {
            Request::Ping => Response::Pong {
                pid,
                config_file: "pypm.toml".into(),
                http: None,
            },
            Request::Shutdown => {
                if let Some(s) = stopper.lock().ok().and_then(|mut s| s.take()) {
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        s.stop();
                    });
                }
                Response::Done {
                    message: "stopping".into(),
                }
            }
            _ => Response::error(crate::control::protocol::ErrorKind::Failed, "unexpected"),
        };
        let _accept = server
            .serve(PathBuf::from("pypm.toml"), Arc::new(handler))
            .unwrap_or_else(|e| panic!("{e}"));
        let r = shut_down(
            tmp.path(),
            Path::new("pypm.toml"),
            "pypm.toml",
            Duration::from_secs(5),
        );
        assert!(matches!(r, Ok(true)), "{r:?}");
        assert!(!client::accepts(tmp.path()));
        assert!(
            !pid_alive(pid),
            "returned before the supervisor process ended"
        );
        let _ = reaper.join();
    }

    #[test]
    fn daemon_errors_keep_their_exit_code() {
        assert_eq!(Failure::from_response("bad".into(), 1).exit_code(), 1);
        assert_eq!(Failure::from_response("bad".into(), 2).exit_code(), 2);
        assert_eq!(Failure::from_response("bad".into(), 3).exit_code(), 3);
        assert_eq!(
            Failure::from_response("bad".into(), 1).to_string(),
            "error: bad"
        );
        // A supervisor from before messages lost their prefix: not doubled.
        assert_eq!(
            Failure::from_response("error: bad".into(), 1).to_string(),
            "error: bad"
        );
        assert_eq!(no_supervisor("x.toml").exit_code(), 3);
    }
}
