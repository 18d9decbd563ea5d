//! docker compose: one `compose.yaml` with a service per app.

use serde_json::{Map, Value, json};

use super::{Export, File, common_notes, dns_name, go_duration, yaml::to_yaml};
use crate::config::{App, Condition, Listen, ProbeCheck, RestartPolicy};

/// Without `--image`: an image with a Python, the commands' interpreter.
pub const DEFAULT_IMAGE: &str = "python:3-slim";

pub fn export(x: &Export) -> Vec<File> {
    let mut notes = Vec::new();
    if x.image.is_none() {
        notes.push(format!(
            "no `--image` given: every service uses `{DEFAULT_IMAGE}`; build an image with your code and its requirements and pass `--image`"
        ));
    }
    let mut services = Map::new();
    for a in &x.apps {
        notes.extend(common_notes(a, "compose"));
        let mut svc = service(x, a, &mut notes);
        escape_dollars(&mut svc);
        services.insert(dns_name(&a.name), svc);
    }
    // No top-level `name`: docker-compose 1.x rejects it; the project is the directory's name.
    let doc = json!({ "services": services });
    vec![File {
        name: "compose.yaml".into(),
        body: to_yaml(&doc),
        notes,
    }]
}

/// compose interpolates `$VAR` in every value: a literal `$` is written `$$`.
fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        Value::Object(m) => m.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// A probe as a compose healthcheck `test` (the image has Python: http and tcp checks use it).
fn health_test(check: &ProbeCheck) -> Option<Value> {
    match check {
        ProbeCheck::Http(url) => Some(json!([
            "CMD",
            "python",
            "-c",
            format!("import urllib.request; urllib.request.urlopen({url:?}, timeout=5)")
        ])),
        ProbeCheck::Tcp(addr) => {
            let (host, port) = addr.rsplit_once(':')?;
            Some(json!([
                "CMD",
                "python",
                "-c",
                format!("import socket; socket.create_connection(({host:?}, {port}), 5)")
            ]))
        }
        ProbeCheck::Exec(argv) => {
            let mut t = vec![json!("CMD")];
            t.extend(argv.iter().map(|s| json!(s)));
            Some(Value::Array(t))
        }
        ProbeCheck::Log(_) | ProbeCheck::Notify => None,
    }
}

fn service(x: &Export, a: &App, notes: &mut Vec<String>) -> Value {
    let mut s = Map::new();
    s.insert(
        "image".into(),
        json!(x.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into())),
    );
    s.insert("command".into(), json!(x.container_argv(a)));
    let env: Map<String, Value> = a
        .env
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .chain(std::iter::once(("PYPM_APP".to_string(), json!(a.name))))
        .collect();
    if !a.env_file.is_empty() {
        // Absolute: compose reads them relative to the compose file, which `-o` puts elsewhere.
        let files: Vec<String> = a.env_file.iter().map(|p| p.display().to_string()).collect();
        s.insert("env_file".into(), json!(files));
    }
    s.insert("environment".into(), Value::Object(env));
    let mut deps = Map::new();
    for (d, c) in &a.depends_on {
        let Some(dep) = x.app(d) else { continue };
        let condition = match c {
            Condition::Started => "service_started",
            Condition::Ready
                if [&dep.ready, &dep.health]
                    .into_iter()
                    .flatten()
                    .any(|p| health_test(&p.check).is_some()) =>
            {
                "service_healthy"
            }
            Condition::Ready => {
                notes.push(format!(
                    "{}: waits for `{d}` to be ready, but `{d}` has no probe compose can run: it waits for it to start",
                    a.name
                ));
                "service_started"
            }
            Condition::Completed => "service_completed_successfully",
        };
        deps.insert(dns_name(d), json!({ "condition": condition }));
    }
    if !deps.is_empty() {
        s.insert("depends_on".into(), Value::Object(deps));
    }
    // compose has one healthcheck: the ready probe (what `service_healthy` waits for), else
    // the health probe.
    // compose has one healthcheck: the `ready` probe when compose can run it (what
    // `service_healthy` waits for), else the `health` probe.
    let runnable: Vec<(&str, &crate::config::Probe, Value)> =
        [("ready", &a.ready), ("health", &a.health)]
            .into_iter()
            .filter_map(|(w, p)| Some((w, p.as_ref()?)))
            .filter_map(|(w, p)| match health_test(&p.check) {
                Some(t) => Some((w, p, t)),
                None => {
                    notes.push(format!(
                    "{}: the `{w}` probe is a `log` or `notify` probe, which compose cannot run",
                    a.name
                ));
                    None
                }
            })
            .collect();
    if let Some((which, p, test)) = runnable.first() {
        let mut h = Map::new();
        h.insert("test".into(), test.clone());
        h.insert("interval".into(), json!(go_duration(p.interval)));
        h.insert(
            "timeout".into(),
            json!(format!("{}s", super::check_timeout(p, *which == "ready"))),
        );
        h.insert("retries".into(), json!(p.failures.max(1)));
        if *which == "ready" {
            h.insert("start_period".into(), json!(go_duration(p.timeout)));
        }
        s.insert("healthcheck".into(), Value::Object(h));
        if runnable.len() > 1 {
            notes.push(format!(
                "{}: compose has one healthcheck: the `ready` probe is exported, `health` is not (compose does not restart unhealthy containers)",
                a.name
            ));
        }
    }
    let restart = match (a.restart, super::is_task(a)) {
        (RestartPolicy::Always, _) => "always",
        (RestartPolicy::OnFailure, _) => "on-failure",
        (RestartPolicy::Never, _) => "no",
    };
    s.insert("restart".into(), json!(restart));
    let mut deploy = Map::new();
    if a.instances > 1 {
        deploy.insert("replicas".into(), json!(a.instances));
    }
    let mut limits = Map::new();
    if let Some(m) = a.memory_max {
        limits.insert("memory".into(), json!(format!("{m}b")));
    }
    if let Some(c) = a.cpu_max {
        limits.insert("cpus".into(), json!(format!("{c}")));
    }
    if !limits.is_empty() {
        deploy.insert("resources".into(), json!({ "limits": limits }));
    }
    if !deploy.is_empty() {
        s.insert("deploy".into(), Value::Object(deploy));
    }
    s.insert("stop_signal".into(), json!(a.stop_signal.as_str()));
    s.insert(
        "stop_grace_period".into(),
        json!(go_duration(a.stop_timeout)),
    );
    let ports: Vec<String> = a
        .listen
        .iter()
        .filter_map(|l| match l {
            Listen::Tcp(addr) => {
                let port = super::kubernetes::port_of(addr)?;
                let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
                Some(format!("{host}:{port}:{port}"))
            }
            Listen::Unix(p) => {
                notes.push(format!(
                    "{}: `listen = \"unix:{}\"`: a Unix socket is not a port (mount a volume for it)",
                    a.name,
                    p.display()
                ));
                None
            }
        })
        .collect();
    if !ports.is_empty() {
        notes.push(format!(
            "{}: `listen`: the app binds the port itself in its container (pypm passed it the socket); with several replicas publish a range or put a proxy in front",
            a.name
        ));
        s.insert("ports".into(), json!(ports));
    }
    if !a.enabled {
        s.insert("profiles".into(), json!(["disabled"]));
        notes.push(format!(
            "{}: `enabled = false`: in the `disabled` profile (started only with `--profile disabled`)",
            a.name
        ));
    }
    if a.schedule.is_some() || a.restart_schedule.is_some() {
        notes.push(format!(
            "{}: `schedule`/`restart_schedule`: compose has no schedules (run it from cron with `docker compose run`)",
            a.name
        ));
    }
    if let Some(u) = &a.user {
        s.insert("user".into(), json!(u));
    }
    if let Some(n) = a.nofile {
        s.insert(
            "ulimits".into(),
            json!({ "nofile": { "soft": n, "hard": n } }),
        );
    }
    Value::Object(s)
}

#[cfg(test)]
mod tests {
    use super::super::{for_test, parse_for_test};
    use super::*;

    #[test]
    fn dependencies_probes_replicas_and_limits() {
        let cfg = parse_for_test(
            r#"
[apps.migrate]
command = "python migrate.py"
kind = "task"
[apps.db]
command = "postgres"
[apps.db.ready]
tcp = "127.0.0.1:5432"
[apps.web]
command = "gunicorn app:app"
instances = 2
listen = ["tcp://127.0.0.1:8001"]
depends_on = { migrate = "completed", db = "ready" }
memory_max = "256M"
stop_timeout = "30s"
"#,
        );
        let files = export(&for_test(&cfg, None));
        let text = &files[0].body;
        insta::assert_snapshot!(text);
        assert!(text.contains("condition: \"service_completed_successfully\""));
        assert!(text.contains("condition: \"service_healthy\""));
        assert!(text.contains("replicas: 2"));
        assert!(text.contains("stop_grace_period: \"30s\""));
        assert!(text.contains("\"127.0.0.1:8001:8001\""));
    }
}
