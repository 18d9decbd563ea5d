//! `pypm inspect APP [--json]`: one app's resolved spec, limits, probes, instances and restarts.
//!
//! The report is the protocol's typed [`InspectReport`]; `--json` prints it as the supervisor sent
//! it, the human view renders each section from its fields.

use std::fmt::Write as _;
use std::path::Path;

use super::Failure;
use super::client_cmds::{QUICK, ask, target, unexpected};
use super::status::{opt, table, uptime};
use crate::control::protocol::{
    InspectLimits, InspectReport, InspectSpec, ProbeCheckInfo, ProbeInfo, Request, Response,
};
use crate::desired::resolve::masked;

pub fn inspect(config: Option<&Path>, app: String, json: bool) -> Result<(), Failure> {
    let t = target(config)?;
    let report = match ask(&t, Request::Inspect { app }, QUICK)? {
        Response::Inspect(r) => r,
        other => return Err(unexpected("inspect", &other)),
    };
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Error(format!("cannot encode the report: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// `500ms`, `60s`, `1.5s`.
fn seconds(secs: f64) -> String {
    if secs > 0.0 && secs < 1.0 {
        format!("{}ms", (secs * 1000.0).round())
    } else {
        format!("{secs}s")
    }
}

/// `http http://…/health, every 500ms, timeout 60s`.
fn probe_line(p: &ProbeInfo) -> String {
    let check = match &p.check {
        ProbeCheckInfo::Http(url) => format!("http {url}"),
        ProbeCheckInfo::Tcp(addr) => format!("tcp {addr}"),
        ProbeCheckInfo::Exec(argv) => format!("exec {}", shell_words::join(argv)),
        ProbeCheckInfo::Log(re) => format!("log {re}"),
        ProbeCheckInfo::Notify => "notify".into(),
    };
    format!(
        "{check}, every {}, timeout {}",
        seconds(p.interval_secs),
        seconds(p.timeout_secs)
    )
}

/// Command line, interpreter and cwd.
fn command_lines(out: &mut String, spec: &InspectSpec) {
    let _ = writeln!(out, "  command:     {}", shell_words::join(&spec.argv));
    match &spec.interpreter {
        Some(i) => {
            let _ = writeln!(out, "  interpreter: {}", i.display());
            if let Some(rule) = &spec.rule {
                let _ = writeln!(out, "  chosen by:   {rule}");
            }
        }
        None => {
            let _ = writeln!(out, "  interpreter: none (runs directly)");
        }
    }
    let _ = writeln!(out, "  cwd:         {}", spec.cwd.display());
}

fn env_section(out: &mut String, spec: Option<&InspectSpec>) {
    let _ = writeln!(out, "\nenv:");
    let env = spec.map(|s| &s.env).filter(|e| !e.is_empty());
    let Some(env) = env else {
        let _ = writeln!(out, "  (none)");
        return;
    };
    for (k, v) in env {
        // The supervisor masks already; a second pass costs nothing.
        let _ = writeln!(out, "  {k}={}", masked(k, v));
    }
}

fn probe_section(out: &mut String, spec: Option<&InspectSpec>) {
    let _ = writeln!(out, "\nprobes:");
    let probes: Vec<(&str, &ProbeInfo)> = spec
        .into_iter()
        .flat_map(|s| [("ready", s.ready.as_ref()), ("health", s.health.as_ref())])
        .filter_map(|(kind, p)| Some((kind, p?)))
        .collect();
    if probes.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (kind, p) in probes {
        let _ = writeln!(out, "  {kind}: {}", probe_line(p));
    }
}

/// Each limit with how it is enforced; `-` when not set.
fn limit_section(out: &mut String, limits: Option<&InspectLimits>) {
    let _ = writeln!(out, "\nlimits:");
    let Some(l) = limits else {
        let _ = writeln!(out, "  (none)");
        return;
    };
    for (key, how) in [
        ("memory_max", l.memory_max.as_deref()),
        ("cpu_max", l.cpu_max.as_deref()),
        ("nofile", l.nofile.as_deref()),
        ("nice", Some(l.nice.as_str())),
        ("user", l.user.as_deref()),
    ] {
        let _ = writeln!(out, "  {key}: {}", how.unwrap_or("-"));
    }
}

pub fn render(r: &InspectReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", r.app);
    match &r.spec {
        Some(spec) => command_lines(&mut out, spec),
        None => {
            let _ = writeln!(out, "  (the supervisor has no spec for this app)");
        }
    }
    env_section(&mut out, r.spec.as_ref());
    limit_section(&mut out, r.limits.as_ref());
    probe_section(&mut out, r.spec.as_ref());

    let _ = writeln!(out, "\ninstances:");
    if r.instances.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let rows: Vec<Vec<String>> = r
            .instances
            .iter()
            .map(|i| {
                let last = i.last_exit.as_ref().map(|e| {
                    let what = match (&e.signal, e.code) {
                        (Some(s), _) => format!("killed by {s}"),
                        (None, Some(c)) => format!("exit {c}"),
                        (None, None) => "exited".into(),
                    };
                    format!("{what} at {}", e.at)
                });
                vec![
                    i.name.clone(),
                    i.state.as_str().to_string(),
                    opt(i.pid),
                    i.uptime_secs.map_or_else(|| "-".into(), uptime),
                    i.restarts.to_string(),
                    opt(last),
                    opt(i.reason.clone()),
                ]
            })
            .collect();
        let header = [
            "NAME",
            "STATE",
            "PID",
            "UPTIME",
            "RESTARTS",
            "LAST EXIT",
            "REASON",
        ];
        for line in table(&header, &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }

    let _ = writeln!(out, "\nrestart history:");
    if r.restart_history.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for h in &r.restart_history {
        let _ = writeln!(out, "  {}  instance {}  {}", h.at, h.instance, h.reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{
        AppKind, Dependency, DependencyCondition, LastExit, RestartRecord, RestartWhen, Row,
    };

    fn spec() -> InspectSpec {
        InspectSpec {
            argv: ["/srv/.venv/bin/gunicorn", "app:app", "--bind", "fd://3"]
                .map(String::from)
                .into(),
            interpreter: Some("/srv/.venv/bin/python".into()),
            rule: Some("virtualenv `.venv` in the file's directory".into()),
            environment: None,
            cwd: "/srv".into(),
            kind: AppKind::Service,
            enabled: true,
            instances: 1,
            // As the supervisor sends it: masked already.
            env: [
                ("DEBUG", "0"),
                ("API_TOKEN", "***"),
                ("PATH", "/srv/.venv/bin:/usr/bin"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            env_file: vec![],
            depends_on: vec![Dependency {
                app: "db".into(),
                condition: DependencyCondition::Ready,
            }],
            restart: RestartWhen::Always,
            restart_delay_secs: 0.1,
            restart_delay_max_secs: 30.0,
            max_restarts: 10,
            restart_window_secs: 60.0,
            min_uptime_secs: 1.0,
            success_exit_codes: vec![0],
            stop_signal: "SIGTERM".into(),
            stop_timeout_secs: 10.0,
            listen: vec!["tcp://127.0.0.1:8000".into()],
            revision: None,
            ready: Some(ProbeInfo {
                check: ProbeCheckInfo::Http("http://127.0.0.1:8000/health".into()),
                interval_secs: 0.5,
                timeout_secs: 60.0,
                failures: 1,
            }),
            health: Some(ProbeInfo {
                check: ProbeCheckInfo::Exec(vec!["python".into(), "check.py".into()]),
                interval_secs: 10.0,
                timeout_secs: 2.5,
                failures: 3,
            }),
            log_dir: "/srv/.pypm/logs".into(),
            log_timestamps: false,
        }
    }

    #[test]
    fn renders_every_section_and_masks_secrets() {
        let report = InspectReport {
            app: "api".into(),
            spec: Some(spec()),
            limits: Some(InspectLimits {
                memory_max: Some("512.0M: kernel-enforced by cgroup v2".into()),
                cpu_max: Some("1.5 cores: not enforced (no cgroup can be created here)".into()),
                nofile: None,
                nice: "0: setpriority before exec".into(),
                user: None,
            }),
            instances: vec![Row {
                name: "api".into(),
                app: "api".into(),
                instance: 0,
                state: "running".into(),
                pid: Some(4242),
                uptime_secs: Some(75.0),
                restarts: 1,
                cpu_percent: Some(0.5),
                memory_bytes: Some(1 << 20),
                ready: true,
                reason: None,
                last_exit: Some(LastExit {
                    code: None,
                    signal: Some("SIGKILL".into()),
                    at: "2026-01-01T00:00:00Z".into(),
                }),
            }],
            restart_history: vec![RestartRecord {
                at: "2026-01-01T00:00:00Z".into(),
                instance: 0,
                reason: "memory_limit".into(),
            }],
        };
        let text = render(&report);
        insta::assert_snapshot!(text, @r"
        api
          command:     /srv/.venv/bin/gunicorn app:app --bind fd://3
          interpreter: /srv/.venv/bin/python
          chosen by:   virtualenv `.venv` in the file's directory
          cwd:         /srv

        env:
          DEBUG=0
          API_TOKEN=***
          PATH=/srv/.venv/bin:/usr/bin

        limits:
          memory_max: 512.0M: kernel-enforced by cgroup v2
          cpu_max: 1.5 cores: not enforced (no cgroup can be created here)
          nofile: -
          nice: 0: setpriority before exec
          user: -

        probes:
          ready: http http://127.0.0.1:8000/health, every 500ms, timeout 60s
          health: exec python check.py, every 10s, timeout 2.5s

        instances:
          NAME  STATE    PID   UPTIME  RESTARTS  LAST EXIT                                  REASON
          api   running  4242  1m15s   1         killed by SIGKILL at 2026-01-01T00:00:00Z  -

        restart history:
          2026-01-01T00:00:00Z  instance 0  memory_limit
        ");
    }

    #[test]
    fn the_renderer_reads_the_json_the_supervisor_sends() {
        // The wire shape (as `inspect --json` prints it), decoded as the client does.
        let report: InspectReport = serde_json::from_value(serde_json::json!({
            "app": "w",
            "spec": serde_json::to_value(InspectSpec {
                argv: vec!["python3".into(), "w.py".into()],
                interpreter: None,
                ready: Some(ProbeInfo {
                    check: ProbeCheckInfo::Notify,
                    interval_secs: 0.25,
                    timeout_secs: 90.0,
                    failures: 1,
                }),
                health: None,
                ..spec()
            }).unwrap_or_default(),
            "limits": null,
            "instances": [],
            "restart_history": [{"at": "2026-01-01T00:00:00.000Z", "instance": 2, "reason": "unhealthy"}],
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let text = render(&report);
        assert!(
            text.contains("  ready: notify, every 250ms, timeout 90s\n"),
            "{text}"
        );
        assert!(text.contains("interpreter: none (runs directly)"), "{text}");
        assert!(text.contains("limits:\n  (none)\n"), "{text}");
        assert!(text.contains("instance 2  unhealthy"), "{text}");
    }

    #[test]
    fn empty_report_still_has_sections() {
        let report = InspectReport {
            app: "job".into(),
            spec: None,
            limits: None,
            instances: vec![],
            restart_history: vec![],
        };
        let text = render(&report);
        for section in [
            "env:",
            "limits:",
            "probes:",
            "instances:",
            "restart history:",
        ] {
            assert!(text.contains(section), "{section} missing: {text}");
        }
        assert!(text.contains("no spec for this app"), "{text}");
    }
}
