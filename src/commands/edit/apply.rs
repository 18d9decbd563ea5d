//! After an edit: the supervisor reloads the file, and the command waits until the apps it edited
//! have settled (as `up -d` waits), then prints their rows. Without a supervisor, `start` starts
//! one (detached, as `up -d`); the other verbs leave the change for the next `pypm up`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Edited;
use crate::commands::Failure;
use crate::commands::client_cmds::{SLOW, client_failure, unexpected};
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Request, Response, Row, State, StatusReport};
use crate::desired::resolve::Desired;
use crate::supervisor::diff::{Change, diff};

/// What an app's rows look like once the edit has taken effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Removed from the file: no rows left.
    Gone,
    /// `enabled = false`: nothing runs.
    Stopped,
    /// Enabled: `instances` rows, none on its way, none under a pid in `replace` (the instances
    /// that were running when a change rolls them). Without a ready probe, `running` only counts
    /// once an instance has been up `min_uptime` seconds: an exit sooner is a failed start
    /// (SPEC §8), and `start app.py` of a script that crashes at once must say so.
    Up {
        instances: u32,
        replace: Vec<u32>,
        min_uptime: Option<f64>,
    },
}

/// The expectation for `app` after an edit from `before` to `after`, given the rows before it.
pub fn expect(app: &str, before: Option<&Desired>, after: &Desired, pre: &[Row]) -> Expect {
    let Some(spec) = after.apps.get(app) else {
        return Expect::Gone;
    };
    if !spec.app.enabled {
        return Expect::Stopped;
    }
    let rolled = before.is_some_and(|b| {
        diff(&b.apps, &after.apps)
            .iter()
            .any(|(a, c)| a == app && matches!(c, Change::Restart { .. }))
    });
    let replace = if rolled {
        pre.iter()
            .filter(|r| r.app == app)
            .filter_map(|r| r.pid)
            .collect()
    } else {
        Vec::new()
    };
    Expect::Up {
        instances: spec.app.instances,
        replace,
        min_uptime: spec
            .app
            .ready
            .is_none()
            .then_some(spec.app.min_uptime.as_secs_f64()),
    }
}

/// Whether `rows` (every row of the supervisor) show `app` as `expect` says.
pub fn settled(app: &str, expect: &Expect, rows: &[Row]) -> bool {
    let mine: Vec<&Row> = rows.iter().filter(|r| r.app == app).collect();
    match expect {
        Expect::Gone => mine.is_empty(),
        Expect::Stopped => mine
            .iter()
            .all(|r| matches!(r.state, State::Stopped | State::Failed | State::Completed)),
        Expect::Up {
            instances,
            replace,
            min_uptime,
        } => {
            mine.len() == *instances as usize
                && mine.iter().all(|r| {
                    let on_its_way = match r.state.as_str() {
                        "starting" | "stopping" => true,
                        "running" => {
                            min_uptime.is_some_and(|m| r.uptime_secs.is_some_and(|u| u < m))
                        }
                        // Not started yet, or waiting on a dependency that may still come up.
                        "stopped" => !r.reason.as_deref().is_some_and(|x| x.starts_with("exited")),
                        "waiting" => !r
                            .reason
                            .as_deref()
                            .is_some_and(|x| x.contains("failed") || x.contains("disabled")),
                        _ => false,
                    };
                    let old = r.pid.is_some_and(|p| replace.contains(&p));
                    let stale = old && r.state != State::Failed;
                    !on_its_way && !stale
                })
        }
    }
}

/// How `apply` finishes.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOpts {
    /// Start a supervisor when none runs (`start`).
    pub start_supervisor: bool,
    /// The longest to wait for the apps to settle.
    pub wait: Duration,
    /// `Restart` these apps after the reload (`start` of an app that failed or completed).
    pub restart: bool,
}

/// Reloads (or starts the supervisor), waits for `apps` to settle, prints their rows; exit 1 when
/// one of them ends `failed`.
pub fn apply(e: &Edited, apps: &[String], opts: ApplyOpts) -> Result<(), Failure> {
    let sd = &e.target.state_dir;
    let located = &e.target.located;
    let running = e.running || client::is_running(sd);
    if !running {
        if !opts.start_supervisor {
            println!(
                "no supervisor is running for `{}`: the file is saved, `pypm up -d` applies it",
                located.display
            );
            return Ok(());
        }
        crate::commands::up::spawn_daemon(located, sd)?;
    } else {
        match client::request_for(
            sd,
            Some(&located.path),
            Request::Reload { profiles: None },
            SLOW,
        ) {
            Ok(Response::Done { message }) => {
                if message != "no changes" {
                    println!("applied: {message}");
                }
            }
            Ok(Response::Error { message, code, .. }) => {
                return Err(Failure::from_response(message, code));
            }
            Ok(other) => return Err(unexpected("reload", &other)),
            Err(ClientError::NotRunning) => {
                return Err(Failure::Error(format!(
                    "the supervisor for `{}` stopped",
                    located.display
                )));
            }
            Err(err) => return Err(client_failure(err)),
        }
    }
    let mut expects: Vec<(String, Expect)> = apps
        .iter()
        .map(|a| {
            (
                a.clone(),
                expect(a, e.before.as_ref(), &e.after, &e.pre_rows),
            )
        })
        .collect();
    if opts.restart && running {
        for (app, ex) in &mut expects {
            if let Expect::Up { replace, .. } = ex {
                *replace = e
                    .pre_rows
                    .iter()
                    .filter(|r| &r.app == app)
                    .filter_map(|r| r.pid)
                    .collect();
                match client::request_for(
                    sd,
                    Some(&located.path),
                    Request::Restart {
                        app: Some(app.clone()),
                    },
                    SLOW,
                ) {
                    Ok(Response::Done { message }) => println!("{message}"),
                    Ok(Response::Error { message, code, .. }) => {
                        return Err(Failure::from_response(message, code));
                    }
                    Ok(other) => return Err(unexpected("restart", &other)),
                    Err(err) => return Err(client_failure(err)),
                }
            }
        }
    }
    let report = wait_for(e, &expects, opts.wait)?;
    let wanted: HashSet<&str> = apps.iter().map(String::as_str).collect();
    let mine = StatusReport {
        instances: report
            .instances
            .iter()
            .filter(|r| wanted.contains(r.app.as_str()))
            .cloned()
            .collect(),
        ..report.clone()
    };
    if mine.instances.is_empty() {
        if expects.iter().all(|(_, x)| *x == Expect::Gone) {
            return Ok(());
        }
    } else {
        print!("{}", crate::commands::status::render(&mine));
    }
    let pending: Vec<&str> = expects
        .iter()
        .filter(|(a, x)| !settled(a, x, &report.instances))
        .map(|(a, _)| a.as_str())
        .collect();
    if !pending.is_empty() {
        eprintln!(
            "note: still on their way after {}: {}",
            crate::config::units::format_duration(opts.wait),
            pending.join(", ")
        );
    }
    let failed: Vec<String> = mine
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

/// Polls the supervisor's status until every expectation holds or `wait` passes.
fn wait_for(
    e: &Edited,
    expects: &[(String, Expect)],
    wait: Duration,
) -> Result<StatusReport, Failure> {
    let sd = &e.target.state_dir;
    let deadline = Instant::now() + wait;
    loop {
        let report = match client::request_for(
            sd,
            Some(&e.target.located.path),
            Request::Status {
                app: None,
                light: true,
            },
            Duration::from_secs(30),
        ) {
            Ok(Response::Status(s)) => s,
            Ok(Response::Error { message, code, .. }) => {
                return Err(Failure::from_response(message, code));
            }
            Ok(other) => return Err(unexpected("status", &other)),
            Err(ClientError::NotRunning) => {
                return Err(Failure::Error(format!(
                    "the supervisor for `{}` stopped; see `{}`",
                    e.target.located.display,
                    sd.join("pypm.log").display()
                )));
            }
            Err(err) => return Err(client_failure(err)),
        };
        let done = expects
            .iter()
            .all(|(a, x)| settled(a, x, &report.instances));
        if done || Instant::now() >= deadline {
            return Ok(report);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, idx: u32, state: &str, pid: Option<u32>, reason: Option<&str>) -> Row {
        Row {
            name: format!("{app}.{idx}"),
            app: app.into(),
            instance: idx,
            state: state.into(),
            pid,
            uptime_secs: None,
            restarts: 0,
            cpu_percent: None,
            memory_bytes: None,
            ready: state == "running",
            reason: reason.map(str::to_string),
            last_exit: None,
        }
    }

    #[test]
    fn up_waits_for_every_instance_and_for_rolled_pids() {
        let up = |n, replace: Vec<u32>| Expect::Up {
            instances: n,
            replace,
            min_uptime: None,
        };
        let two = [
            row("a", 0, "running", Some(10), None),
            row("a", 1, "running", Some(11), None),
        ];
        assert!(settled("a", &up(2, vec![]), &two));
        assert!(
            !settled("a", &up(3, vec![]), &two),
            "scaled up, third missing"
        );
        assert!(!settled("a", &up(2, vec![10, 11]), &two), "not rolled yet");
        let half = [
            row("a", 0, "running", Some(20), None),
            row("a", 1, "running", Some(11), None),
        ];
        assert!(!settled("a", &up(2, vec![10, 11]), &half), "one still old");
        let starting = [row("a", 0, "starting", Some(20), None)];
        assert!(!settled("a", &up(1, vec![]), &starting));
        let not_yet = [row("a", 0, "stopped", None, None)];
        assert!(!settled("a", &up(1, vec![]), &not_yet));
        let exited = [row("a", 0, "stopped", None, Some("exited 0"))];
        assert!(settled("a", &up(1, vec![]), &exited));
        let failed = [row("a", 0, "failed", None, Some("exited 1"))];
        assert!(settled("a", &up(1, vec![]), &failed));
        let dep = [row("a", 0, "waiting", None, Some("dependency `db` failed"))];
        assert!(settled("a", &up(1, vec![]), &dep));
        let other_app = [row("b", 0, "starting", Some(1), None)];
        assert!(!settled("a", &up(1, vec![]), &other_app));
    }

    #[test]
    fn without_a_ready_probe_running_counts_after_min_uptime() {
        let x = Expect::Up {
            instances: 1,
            replace: vec![],
            min_uptime: Some(1.0),
        };
        let mut r = row("a", 0, "running", Some(10), None);
        r.uptime_secs = Some(0.2);
        assert!(!settled("a", &x, std::slice::from_ref(&r)));
        r.uptime_secs = Some(1.0);
        assert!(settled("a", &x, &[r]));
    }

    #[test]
    fn stopped_and_gone() {
        let stopping = [row("a", 0, "stopping", Some(10), None)];
        assert!(!settled("a", &Expect::Stopped, &stopping));
        let stopped = [row("a", 0, "stopped", None, Some("disabled"))];
        assert!(settled("a", &Expect::Stopped, &stopped));
        assert!(!settled("a", &Expect::Gone, &stopped));
        assert!(settled("a", &Expect::Gone, &[]));
    }
}
