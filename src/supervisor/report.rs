//! Snapshots for `status` and `inspect`, built from the observed state on request. CPU and memory
//! are sampled here, on demand, so an idle supervisor does no periodic work.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use super::Supervisor;

/// How long one sample of CPU and memory serves status requests.
const USAGE_TTL: std::time::Duration = std::time::Duration::from_millis(500);
use super::state::{Instance, State, signal_name};
use crate::control::protocol::{
    ConfigErrorInfo, HistoryReport, InspectReport, LastExit, MetricsReport, MetricsRow, Row,
    StatusReport,
};
use crate::desired::resolve::masked;
use crate::logs::format_rfc3339_millis;

impl Supervisor {
    fn rows(&mut self, app: Option<&str>, sample: bool) -> Vec<Row> {
        if sample {
            self.refresh_usage();
        }
        // Borrowed, not cloned: a copy of every tree's pid list per request.
        let usage = self.usage_cache.as_ref().filter(|_| sample).map(|(_, u)| u);
        // One pass over the instances, not a scan per app (N² at 3,000 apps).
        let slots = self.obs.slot_counts();
        let mut keys: Vec<(&str, u32, u32)> = Vec::with_capacity(self.obs.instances.len());
        for (name, want) in &self.wants {
            if app.is_some_and(|a| a != name) {
                continue;
            }
            let extra = slots.get(name.as_str()).copied().unwrap_or(0);
            for idx in 0..want.instances.max(extra) {
                keys.push((name, idx, want.instances));
            }
        }
        // Instances of apps no longer in the file that still run.
        for (a, idx) in self.obs.instances.keys() {
            if !self.wants.contains_key(a) && app.is_none_or(|x| x == a) {
                keys.push((a, *idx, 1));
            }
        }
        let now = Instant::now();
        let mut rows = Vec::with_capacity(keys.len());
        let mut fresh = None;
        for (name, idx, count) in keys {
            let i = match self.obs.instances.get(&(name.to_string(), idx)) {
                Some(i) => i,
                None => fresh.insert(Instance::new(name, idx)),
            };
            let (u, cpu_percent) = match i.pid().and_then(|p| usage?.get(&p)) {
                Some((u, cpu)) => (Some(u), *cpu),
                None => (None, None),
            };
            rows.push(Row {
                name: i.display_name(count.max(if idx > 0 { 2 } else { 1 })),
                app: name.to_string(),
                instance: idx,
                state: i.state(),
                pid: i.pid().map(|p| p as u32),
                uptime_secs: match (i.pid(), i.started_at()) {
                    (Some(_), Some(s)) => Some(now.saturating_duration_since(s).as_secs_f64()),
                    _ => None,
                },
                restarts: i.restarts(),
                cpu_percent,
                memory_bytes: u.map(|u| u.rss_bytes),
                ready: i.ready() && i.state() == State::Running,
                reason: self
                    .schedule_reason(name, i)
                    .or_else(|| i.reason().map(str::to_string))
                    .or_else(|| i.log_problem().map(str::to_string)),
                last_exit: i.last_exit().map(|e| LastExit {
                    code: e.code,
                    signal: e.signal.map(signal_name),
                    at: format_rfc3339_millis(e.at),
                }),
            });
        }
        rows
    }

    /// Samples CPU and memory of every live instance's tree, unless the last sample is younger
    /// than [`USAGE_TTL`] and covers them all.
    fn refresh_usage(&mut self) {
        let roots: Vec<i32> = self
            .obs
            .instances
            .values()
            .filter_map(Instance::pid)
            .collect();
        // One pass over /proc serves every status request within the next half second; CPU % is
        // measured between two passes.
        let fresh = self.usage_cache.as_ref().is_some_and(|(at, u)| {
            at.elapsed() < USAGE_TTL && roots.iter().all(|p| u.contains_key(p))
        });
        if fresh {
            return;
        }
        let at = Instant::now();
        let sampled = crate::process::sample(&roots);
        let mut with_cpu = HashMap::with_capacity(sampled.len());
        // One map, not a scan of every instance per process (that was N² at 3,000 apps).
        let started_of: HashMap<i32, Instant> = self
            .obs
            .instances
            .values()
            .filter_map(|i| Some((i.pid()?, i.started_at()?)))
            .collect();
        for (pid, u) in sampled {
            let started = started_of.get(&pid).copied();
            let prev = self
                .cpu_prev
                .get(&pid)
                .copied()
                .or_else(|| started.map(|s| (0.0, s)));
            self.cpu_prev.insert(pid, (u.cpu_seconds, at));
            let cpu = prev.map(|(c, t)| {
                crate::process::cpu_percent(c, u.cpu_seconds, at.saturating_duration_since(t))
            });
            with_cpu.insert(pid, (u, cpu));
        }
        let live: std::collections::HashSet<i32> = roots.iter().copied().collect();
        self.cpu_prev.retain(|pid, _| live.contains(pid));
        self.usage_cache = Some((at, with_cpu));
    }

    pub(super) fn status(&mut self, app: Option<&str>, light: bool) -> StatusReport {
        StatusReport {
            config_file: self.opts.config_path.display().to_string(),
            profiles: self.desired.config.profiles.clone(),
            config_error: self.config_error.as_ref().map(|e| {
                let (message, pos) = e.summary();
                ConfigErrorInfo {
                    message,
                    line: pos.map(|p| p.0),
                    column: pos.map(|p| p.1),
                }
            }),
            instances: self.rows(app, !light),
        }
    }

    /// Answers a `history` request, which also keeps sampling on for the next minute.
    pub(super) fn history_report(&mut self, app: Option<&str>) -> HistoryReport {
        let now = Instant::now();
        if self.history.watch(now) {
            let rows = self.rows(None, true);
            self.history.record(&rows, now, SystemTime::now());
        }
        let rows = self.rows(app, false);
        self.history.report(&rows)
    }

    /// Takes the history sample that is due, if any (a deadline of the loop, see `history.rs`).
    pub(super) fn sample_history(&mut self, now: Instant) {
        // StatsD samples every few seconds anyway: its history costs no extra wake-ups.
        let keep = self.outlets.as_ref().is_some_and(|o| o.statsd.is_some());
        if keep {
            self.history.keep_on(now);
        }
        if self.history.due(now, keep) {
            let rows = self.rows(None, true);
            self.history.record(&rows, now, SystemTime::now());
        }
    }

    pub(super) fn metrics(&mut self) -> MetricsReport {
        let rows = self.rows(None, true);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let instances = rows
            .into_iter()
            .map(|r| {
                let i = self.obs.instances.get(&(r.app.clone(), r.instance));
                let usage = r.pid.and_then(|p| {
                    self.usage_cache
                        .as_ref()
                        .and_then(|(_, u)| u.get(&(p as i32)))
                });
                let start_time_seconds = i
                    .filter(|i| i.pid().is_some())
                    .and_then(|i| i.started_at())
                    .and_then(|s| wall.checked_sub(now.saturating_duration_since(s)))
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64());
                let run = i.and_then(|i| i.last_run());
                MetricsRow {
                    task_last_success_seconds: run
                        .and_then(|r| r.last_success)
                        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs_f64()),
                    task_last_duration_seconds: run.map(|r| r.duration.as_secs_f64()),
                    cpu_seconds: usage.map(|(u, _)| u.cpu_seconds),
                    start_time_seconds,
                    app: r.app,
                    instance: r.instance,
                    state: r.state,
                    restarts: r.restarts,
                    memory_bytes: r.memory_bytes,
                }
            })
            .collect();
        MetricsReport {
            config_error: self.config_error.is_some(),
            instances,
        }
    }

    pub(super) fn inspect(&mut self, app: &str) -> InspectReport {
        let instances = self.rows(Some(app), true);
        let Some(spec) = self.desired.apps.get(app) else {
            return InspectReport {
                app: app.into(),
                spec: None,
                limits: None,
                instances,
                restart_history: Vec::new(),
            };
        };
        InspectReport {
            app: app.into(),
            spec: Some(inspect_spec(spec, &self.desired.config.pypm.log_dir)),
            limits: Some(self.inspect_limits(&spec.app)),
            instances,
            restart_history: self.restart_history(app),
        }
    }

    /// How each of `a`'s limits is enforced by this supervisor (cgroup, sampling, rlimit, root).
    fn inspect_limits(&self, a: &crate::config::App) -> crate::control::protocol::InspectLimits {
        use crate::control::protocol::InspectLimits;
        let fmt = crate::config::units::format_size;
        let cg = self
            .cgroups
            .as_ref()
            .and_then(Option::as_ref)
            .map(|c| (c.version, c.limits_memory(), c.limits_cpu()));
        InspectLimits {
            memory_max: a.memory_max.map(|m| match cg {
                Some((ver, true, _)) => format!(
                    "{}: kernel-enforced by {} (each process's own cgroup, swap included); an OOM kill restarts the instance (event memory_limit)",
                    fmt(m),
                    ver.name()
                ),
                _ => match crate::process::spawn_memory_limit() {
                    Some(by) => format!(
                        "{}: kernel-enforced by {by}; the RSS of its processes is also sampled every {}s and the instance restarted when over (event memory_limit)",
                        fmt(m),
                        super::plan::MEMORY_SAMPLE_INTERVAL.as_secs()
                    ),
                    None => format!(
                        "{}: enforced by sampling the RSS of the instance's process tree every {}s and restarting it when over (event memory_limit); no cgroup can be created here",
                        fmt(m),
                        super::plan::MEMORY_SAMPLE_INTERVAL.as_secs()
                    ),
                },
            }),
            cpu_max: a.cpu_max.map(|c| match cg {
                Some((ver, _, true)) => format!(
                    "{c} cores: kernel-enforced by {} (CFS quota {} µs per {} µs)",
                    ver.name(),
                    (c * crate::process::cgroup::CPU_PERIOD_US as f64).round(),
                    crate::process::cgroup::CPU_PERIOD_US
                ),
                _ => match crate::process::spawn_cpu_limit(c) {
                    Some(by) => format!("{c} cores: kernel-enforced by {by}"),
                    None => format!("{c} cores: not enforced (no cgroup can be created here)"),
                },
            }),
            nofile: a.nofile.map(|n| format!("{n}: setrlimit(RLIMIT_NOFILE) before exec")),
            nice: format!("{}: setpriority before exec", a.nice),
            user: a.user.as_ref().map(|u| {
                if crate::process::is_root() {
                    format!("{u}: setgid/setuid before exec")
                } else {
                    format!("{u}: ignored, pypm is not running as root")
                }
            }),
        }
    }

    /// Every instance's restarts, oldest first.
    fn restart_history(&self, app: &str) -> Vec<crate::control::protocol::RestartRecord> {
        use crate::control::protocol::RestartRecord;
        let mut history: Vec<(SystemTime, u32, &String)> = self
            .obs
            .instances
            .values()
            .filter(|i| i.app() == app)
            .flat_map(|i| i.history().iter().map(move |(t, r)| (*t, i.idx(), r)))
            .collect();
        history.sort_by_key(|h| h.0);
        history
            .into_iter()
            .map(|(t, instance, reason)| RestartRecord {
                at: format_rfc3339_millis(t),
                instance,
                reason: reason.clone(),
            })
            .collect()
    }
}

/// `spec` as `inspect` shows it: secrets masked, durations in seconds.
fn inspect_spec(
    spec: &crate::desired::resolve::AppSpec,
    log_dir: &std::path::Path,
) -> crate::control::protocol::InspectSpec {
    use crate::config::{Condition, Kind, RestartPolicy};
    use crate::control::protocol::{AppKind, Dependency, DependencyCondition, RestartWhen};
    let a = &spec.app;
    let probe = |p: &Option<crate::config::Probe>| p.as_ref().map(probe_info);
    crate::control::protocol::InspectSpec {
        argv: spec.argv.clone(),
        interpreter: spec.interpreter.clone(),
        rule: spec.rule.clone(),
        environment: a.environment.clone(),
        cwd: a.cwd.clone(),
        kind: match a.kind {
            Kind::Service => AppKind::Service,
            Kind::Task => AppKind::Task,
        },
        enabled: a.enabled,
        instances: a.instances,
        env: a
            .env_file_vars
            .iter()
            .chain(a.env.iter())
            .map(|(k, v)| (k.clone(), masked(k, v).to_string()))
            .collect(),
        env_file: a.env_file.clone(),
        depends_on: a
            .depends_on
            .iter()
            .map(|(app, c)| Dependency {
                app: app.clone(),
                condition: match c {
                    Condition::Started => DependencyCondition::Started,
                    Condition::Ready => DependencyCondition::Ready,
                    Condition::Completed => DependencyCondition::Completed,
                },
            })
            .collect(),
        restart: match a.restart {
            RestartPolicy::Always => RestartWhen::Always,
            RestartPolicy::OnFailure => RestartWhen::OnFailure,
            RestartPolicy::Never => RestartWhen::Never,
        },
        restart_delay_secs: a.restart_delay.as_secs_f64(),
        restart_delay_max_secs: a.restart_delay_max.as_secs_f64(),
        max_restarts: a.max_restarts,
        restart_window_secs: a.restart_window.as_secs_f64(),
        min_uptime_secs: a.min_uptime.as_secs_f64(),
        success_exit_codes: a.success_exit_codes.clone(),
        stop_signal: a.stop_signal.as_str().to_string(),
        stop_timeout_secs: a.stop_timeout.as_secs_f64(),
        listen: a.listen.iter().map(|l| l.to_string()).collect(),
        revision: a.revision.clone(),
        ready: probe(&a.ready),
        health: probe(&a.health),
        log_dir: log_dir.to_path_buf(),
        log_timestamps: a.log_timestamps,
    }
}

fn probe_info(p: &crate::config::Probe) -> crate::control::protocol::ProbeInfo {
    use crate::config::ProbeCheck;
    use crate::control::protocol::ProbeCheckInfo;
    crate::control::protocol::ProbeInfo {
        check: match &p.check {
            ProbeCheck::Http(url) => ProbeCheckInfo::Http(url.clone()),
            ProbeCheck::Tcp(addr) => ProbeCheckInfo::Tcp(addr.clone()),
            ProbeCheck::Exec(argv) => ProbeCheckInfo::Exec(argv.clone()),
            ProbeCheck::Log(re) => ProbeCheckInfo::Log(re.0.as_str().to_string()),
            ProbeCheck::Notify => ProbeCheckInfo::Notify,
        },
        interval_secs: p.interval.as_secs_f64(),
        timeout_secs: p.timeout.as_secs_f64(),
        failures: p.failures,
    }
}
