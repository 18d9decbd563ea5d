//! Control requests: status, inspect, restart, reload, plan, shutdown.
use crate::config::keys::EventKind;
use std::time::Instant;

use super::*;
use crate::control::protocol::ErrorKind;

impl Supervisor {
    pub(super) fn on_request(&mut self, req: Request) -> Response {
        match req {
            Request::Ping => Response::Pong {
                pid: std::process::id(),
                config_file: self.opts.config_path.display().to_string(),
                http: self.http.as_ref().map(|(_, _, s)| {
                    // A wildcard address is reachable here as loopback.
                    let mut a = s.addr;
                    if a.ip().is_unspecified() {
                        a.set_ip(if a.is_ipv4() {
                            std::net::Ipv4Addr::LOCALHOST.into()
                        } else {
                            std::net::Ipv6Addr::LOCALHOST.into()
                        });
                    }
                    a.to_string()
                }),
            },
            Request::Status { app, light } => match self.check_app(app.as_deref()) {
                Some(err) => err,
                None => Response::Status(self.status(app.as_deref(), light)),
            },
            Request::Inspect { app } => match self.check_app(Some(&app)) {
                Some(err) => err,
                None => Response::Inspect(Box::new(self.inspect(&app))),
            },
            Request::Restart { app } => {
                if let Some(err) = self.check_app(app.as_deref()) {
                    return err;
                }
                let mut n = 0;
                for ((a, _), i) in self.obs.instances.iter_mut() {
                    if app.as_deref().is_none_or(|x| x == a)
                        && self.wants.get(a).is_some_and(|w| w.enabled)
                    {
                        i.ask_restart();
                        n += 1;
                    }
                }
                let what = app.map_or("every app".to_string(), |a| format!("`{a}`"));
                let message = match n {
                    0 => format!("nothing to restart: {what} is disabled (`enabled = false`)"),
                    1 => format!("restarting {what} (1 instance)"),
                    n => format!("restarting {what} ({n} instances, one at a time)"),
                };
                Response::Done { message }
            }
            Request::Reload { profiles } => {
                let Some(p) = profiles else {
                    return self.reload();
                };
                // Switch profiles: kept only if the file is valid with them.
                let old = self.host.vars.get("PYPM_PROFILE").cloned();
                self.set_profiles(&p);
                let resp = self.reload();
                if matches!(resp, Response::Error { .. }) {
                    match old {
                        Some(o) => self.host.vars.insert("PYPM_PROFILE".into(), o),
                        None => self.host.vars.remove("PYPM_PROFILE"),
                    };
                }
                resp
            }
            Request::Metrics => Response::Metrics(self.metrics()),
            Request::History { app } => match self.check_app(app.as_deref()) {
                Some(err) => err,
                None => Response::History(self.history_report(app.as_deref())),
            },
            Request::Plan { profiles } => self.plan_report(profiles.as_deref()),
            Request::Shutdown => {
                self.obs.shutting_down = true;
                Response::Done {
                    message: "stopping every app".into(),
                }
            }
        }
    }

    pub(super) fn check_app(&self, app: Option<&str>) -> Option<Response> {
        let a = app?;
        if self.desired.apps.contains_key(a) {
            return None;
        }
        let hint = crate::diagnostic::did_you_mean(a, self.desired.apps.keys().map(String::as_str))
            .map(|h| format!("\n\n{h}"))
            .unwrap_or_default();
        Some(Response::error(
            ErrorKind::NotFound,
            format!("no app named `{a}` in `{}`{hint}", self.opts.display),
        ))
    }

    pub(super) fn load_file(&self) -> Result<Desired, crate::config::ConfigError> {
        resolve::load(&self.opts.config_path, &self.opts.display, &self.host)
    }

    /// The profiles every later read of the file applies.
    pub(super) fn set_profiles(&mut self, profiles: &[String]) {
        if profiles.is_empty() {
            self.host.vars.remove("PYPM_PROFILE");
        } else {
            self.host
                .vars
                .insert("PYPM_PROFILE".into(), profiles.join(","));
        }
    }

    pub(super) fn plan_report(&self, profiles: Option<&[String]>) -> Response {
        let loaded = match profiles {
            None => self.load_file(),
            Some(p) => {
                let mut host = self.host.clone();
                host.vars.insert("PYPM_PROFILE".into(), p.join(","));
                if p.is_empty() {
                    host.vars.remove("PYPM_PROFILE");
                }
                resolve::load(&self.opts.config_path, &self.opts.display, &host)
            }
        };
        match loaded {
            Ok(new) => Response::Plan(crate::control::protocol::PlanReport {
                config_file: self.opts.display.clone(),
                running: true,
                changes: diff::diff(&self.desired.apps, &new.apps)
                    .iter()
                    .map(|(a, c)| c.to_plan(a))
                    .collect(),
            }),
            Err(e) => Response::error(
                ErrorKind::Invalid,
                format!(
                    "`{}` is invalid; nothing would change\n\n{}",
                    e.file,
                    e.render().trim_end()
                ),
            ),
        }
    }

    /// Reads the file and applies the difference; an invalid file changes nothing.
    pub(super) fn reload(&mut self) -> Response {
        let loaded = self.load_file();
        self.reload_with(loaded)
    }

    /// Applies `loaded` (the file as read now, or a version seen during a storm of saves).
    pub(super) fn reload_with(
        &mut self,
        loaded: Result<Desired, crate::config::ConfigError>,
    ) -> Response {
        let began = Instant::now();
        let resp = self.reload_inner(loaded);
        log::info!(
            "reload took {:.1} ms",
            began.elapsed().as_secs_f64() * 1000.0
        );
        resp
    }

    pub(super) fn reload_inner(
        &mut self,
        loaded: Result<Desired, crate::config::ConfigError>,
    ) -> Response {
        match loaded {
            Err(e) => {
                let (summary, _) = e.summary();
                log::error!(
                    "reload: `{}` is invalid, keeping the running apps\n{}",
                    e.file,
                    e.render()
                );
                self.emit(EventKind::ConfigError, None, None, None, summary);
                let message = format!(
                    "`{}` is invalid; nothing was changed\n\n{}",
                    e.file,
                    e.render().trim_end()
                );
                self.config_error = Some(e);
                Response::error(ErrorKind::Invalid, message)
            }
            Ok(new) => {
                let changes = diff::diff(&self.desired.apps, &new.apps);
                for (app, change) in &changes {
                    // A changed schedule is counted afresh from now.
                    self.sched_due.remove(app);
                    self.sched_from.remove(app);
                    // A `Restart` needs nothing here: the new spec's hash differs from the
                    // one its processes were started with, and the planner rolls them.
                    if let diff::Change::Start { .. } = change {
                        // A failed or disabled app starts afresh.
                        for ((a, _), i) in self.obs.instances.iter_mut() {
                            if a == app && !i.is_live() {
                                *i = Instance::new(a, i.idx());
                            }
                        }
                    }
                }
                let summary: Vec<String> = changes
                    .iter()
                    .map(|(a, c)| c.to_plan(a).to_string())
                    .collect();
                self.config_error = None;
                self.wants = wants_since(&self.desired, &self.wants, &new);
                self.desired = new;
                self.rewatch();
                self.restart_outlets();
                let _ = self.restart_http();
                self.retarget_logs();
                self.release_pending = true;
                self.prune_sockets();
                let detail = if summary.is_empty() {
                    "no changes".to_string()
                } else {
                    summary.join("; ")
                };
                self.emit(EventKind::ConfigApplied, None, None, None, detail.clone());
                self.dirty = true;
                Response::Done { message: detail }
            }
        }
    }
}
