//! `pypm inspect APP [--json]`: one app's resolved spec, limits, probes, instances and restarts.
//!
//! The spec arrives as JSON from the supervisor; the human view reads the keys it knows and
//! tolerates missing ones, so a newer daemon never breaks an older renderer.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::Failure;
use super::client_cmds::{QUICK, ask, target, unexpected};
use super::status::{memory, opt, table, uptime};
use crate::control::protocol::{InspectReport, Request, Response};
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

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Serde's `std::time::Duration` (`{"secs", "nanos"}`), or a number of seconds.
fn duration_of(v: &Value) -> Option<String> {
    let secs = match v {
        Value::Object(o) => {
            o.get("secs")?.as_f64()? + o.get("nanos").and_then(Value::as_f64).unwrap_or(0.0) / 1e9
        }
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Some(if secs < 1.0 && secs > 0.0 {
        format!("{}ms", (secs * 1000.0).round())
    } else if secs.fract() == 0.0 {
        format!("{secs}s")
    } else {
        format!("{secs:.1}s")
    })
}

/// `env` as `[[k, v], …]` (how the resolver keeps its order) or as an object.
fn env_pairs(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|p| {
                let p = p.as_array()?;
                Some((p.first()?.as_str()?.to_string(), str_of(p.get(1))?))
            })
            .collect(),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), str_of(Some(v)).unwrap_or_default()))
            .collect(),
        _ => Vec::new(),
    }
}

/// `http http://…/health every 500ms, timeout 60s`.
fn probe_line(p: &Value) -> String {
    let check = match p.get("check") {
        Some(Value::Object(o)) => o
            .iter()
            .map(|(kind, target)| match target {
                Value::Array(words) => {
                    let words: Vec<String> = words.iter().filter_map(|w| str_of(Some(w))).collect();
                    format!("{kind} {}", shell_words::join(words))
                }
                other => format!("{kind} {}", str_of(Some(other)).unwrap_or_default()),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::String(kind)) => kind.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    };
    let mut parts = vec![check];
    if let Some(d) = p.get("interval").and_then(duration_of) {
        parts.push(format!("every {d}"));
    }
    if let Some(d) = p.get("timeout").and_then(duration_of) {
        parts.push(format!("timeout {d}"));
    }
    parts.join(", ")
}

/// A limit's configured value, readable.
fn limit_value(key: &str, v: &Value) -> String {
    match (key, v) {
        ("memory_max", Value::Number(n)) => n.as_u64().map_or_else(|| n.to_string(), memory),
        ("cpu_max", Value::Number(n)) => format!("{n} cores"),
        _ => str_of(Some(v)).unwrap_or_else(|| "-".into()),
    }
}

const LIMIT_KEYS: [&str; 4] = ["memory_max", "cpu_max", "nofile", "nice"];

pub fn render(r: &InspectReport) -> String {
    let spec = &r.spec;
    let mut out = String::new();
    let _ = writeln!(out, "{}", r.app);

    let argv: Vec<String> = spec
        .get("argv")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|w| str_of(Some(w))).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "  command:     {}", shell_words::join(&argv));
    match str_of(spec.get("interpreter")) {
        Some(i) => {
            let _ = writeln!(out, "  interpreter: {i}");
            if let Some(rule) = str_of(spec.get("rule")) {
                let _ = writeln!(out, "  chosen by:   {rule}");
            }
        }
        None => {
            let _ = writeln!(out, "  interpreter: none (runs directly)");
        }
    }
    let _ = writeln!(
        out,
        "  cwd:         {}",
        str_of(spec.get("cwd")).unwrap_or_else(|| "-".into())
    );

    let env = env_pairs(spec.get("environ").or_else(|| spec.get("env")));
    let _ = writeln!(out, "\nenv:");
    if env.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (k, v) in &env {
        // The supervisor masks already; a second pass costs nothing and guards an old daemon.
        let _ = writeln!(out, "  {k}={}", masked(k, v));
    }

    let _ = writeln!(out, "\nlimits:");
    let how = r.limits.as_object();
    let mut keys: Vec<String> = LIMIT_KEYS
        .iter()
        .filter(|k| spec.get(**k).is_some_and(|v| !v.is_null()))
        .map(|k| k.to_string())
        .collect();
    for k in how.into_iter().flat_map(|o| o.keys()) {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    if keys.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for k in &keys {
        let value = spec.get(k).filter(|v| !v.is_null());
        let enforced = how.and_then(|o| str_of(o.get(k)));
        let line = match (value, enforced) {
            (Some(v), Some(e)) => format!("{} ({e})", limit_value(k, v)),
            (Some(v), None) => limit_value(k, v),
            (None, Some(e)) => e,
            (None, None) => "-".into(),
        };
        let _ = writeln!(out, "  {k}: {line}");
    }

    let _ = writeln!(out, "\nprobes:");
    let mut any_probe = false;
    for kind in ["ready", "health"] {
        if let Some(p) = spec.get(kind).filter(|p| !p.is_null()) {
            any_probe = true;
            let _ = writeln!(out, "  {kind}: {}", probe_line(p));
        }
    }
    if !any_probe {
        let _ = writeln!(out, "  (none)");
    }

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
        let at = str_of(h.get("at")).unwrap_or_else(|| "-".into());
        let inst = str_of(h.get("instance")).unwrap_or_else(|| "-".into());
        let reason = str_of(h.get("reason")).unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "  {at}  instance {inst}  {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{LastExit, Row};
    use serde_json::json;

    #[test]
    fn renders_every_section_and_masks_secrets() {
        let report = InspectReport {
            app: "api".into(),
            spec: json!({
                "name": "api",
                "argv": ["/srv/.venv/bin/gunicorn", "app:app", "--bind", "fd://3"],
                "interpreter": "/srv/.venv/bin/python",
                "rule": "virtualenv `.venv` in the file's directory",
                "cwd": "/srv",
                "environ": [["DEBUG", "0"], ["API_TOKEN", "hunter2"], ["PATH", "/srv/.venv/bin:/usr/bin"]],
                "memory_max": 536870912u64,
                "cpu_max": 1.5,
                "nofile": null,
                "nice": 0,
                "ready": {"check": {"http": "http://127.0.0.1:8000/health"}, "interval": {"secs": 0, "nanos": 500000000}, "timeout": {"secs": 60, "nanos": 0}, "failures": 3},
                "health": {"check": {"exec": ["python", "check.py"]}, "interval": {"secs": 10, "nanos": 0}, "timeout": {"secs": 5, "nanos": 0}, "failures": 3},
            }),
            limits: json!({"memory_max": "enforced by cgroup v2", "cpu_max": "reported, not enforced: no cgroup"}),
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
            restart_history: vec![
                json!({"at": "2026-01-01T00:00:00Z", "instance": 0, "reason": "memory_limit"}),
            ],
        };
        let text = render(&report);
        assert!(!text.contains("hunter2"), "{text}");
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
          memory_max: 512.0M (enforced by cgroup v2)
          cpu_max: 1.5 cores (reported, not enforced: no cgroup)
          nice: 0

        probes:
          ready: http http://127.0.0.1:8000/health, every 500ms, timeout 60s
          health: exec python check.py, every 10s, timeout 5s

        instances:
          NAME  STATE    PID   UPTIME  RESTARTS  LAST EXIT                                  REASON
          api   running  4242  1m15s   1         killed by SIGKILL at 2026-01-01T00:00:00Z  -

        restart history:
          2026-01-01T00:00:00Z  instance 0  memory_limit
        ");
    }

    #[test]
    fn empty_report_still_has_sections() {
        let report = InspectReport {
            app: "job".into(),
            spec: json!({}),
            limits: json!({}),
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
        assert!(text.contains("interpreter: none (runs directly)"));
    }
}
