//! Kubernetes: a Deployment per service, a Job (or CronJob) per task, a Service per `listen`
//! address, a ConfigMap and a Secret for the environment. One YAML document per object.

use serde_json::{Map, Value, json};

use super::{Export, File, common_notes, dns_name, secs, yaml::to_yaml};
use crate::config::{App, Concurrency, Listen, Probe, ProbeCheck, RestartPolicy};

pub fn export(x: &Export) -> Vec<File> {
    let mut notes = Vec::new();
    let mut docs: Vec<Value> = Vec::new();
    // Tasks that others need `completed` run as init containers of those others.
    let init_only: Vec<&str> = x
        .apps
        .iter()
        .filter(|a| super::is_task(a) && !x.completed_dependents(&a.name).is_empty())
        .map(|a| a.name.as_str())
        .collect();
    for a in &x.apps {
        notes.extend(common_notes(a, "Kubernetes"));
        let (cm, secret) = env_objects(x, a);
        docs.extend(cm);
        docs.extend(secret);
        if init_only.contains(&a.name.as_str()) {
            let users: Vec<String> = x
                .completed_dependents(&a.name)
                .iter()
                .map(|d| format!("`{}`", d.name))
                .collect();
            notes.push(format!(
                "{}: a task others need `completed` runs as an init container of {} (once per pod, not once overall)",
                a.name,
                users.join(", ")
            ));
            continue;
        }
        let pod = pod_spec(x, a, &mut notes);
        let meta = metadata(x, &dns_name(&a.name));
        if super::is_task(a) {
            docs.push(job(x, a, meta, pod, &mut notes));
        } else {
            if a.restart != RestartPolicy::Always {
                notes.push(format!(
                    "{}: `restart = \"{}\"`: a Deployment always restarts its pods",
                    a.name,
                    restart_word(a.restart)
                ));
            }
            if a.restart_schedule.is_some() {
                notes.push(format!(
                    "{}: `restart_schedule` has no equivalent (a CronJob running `kubectl rollout restart` would be one)",
                    a.name
                ));
            }
            let replicas = if a.enabled { a.instances } else { 0 };
            if !a.enabled {
                notes.push(format!(
                    "{}: `enabled = false`: exported with replicas: 0",
                    a.name
                ));
            }
            docs.push(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta,
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": dns_name(&a.name)}},
                    "template": {
                        "metadata": {"labels": labels(x, &dns_name(&a.name))},
                        "spec": pod,
                    },
                },
            }));
        }
        for (k, l) in a.listen.iter().enumerate() {
            match l {
                Listen::Tcp(addr) => {
                    let Some(port) = port_of(addr) else { continue };
                    let name = if a.listen.len() == 1 {
                        dns_name(&a.name)
                    } else {
                        format!("{}-{k}", dns_name(&a.name))
                    };
                    docs.push(json!({
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": metadata(x, &name),
                        "spec": {
                            "selector": {"app.kubernetes.io/name": dns_name(&a.name)},
                            "ports": [{"name": format!("port-{port}"), "port": port, "targetPort": port, "protocol": "TCP"}],
                        },
                    }));
                }
                Listen::Unix(p) => notes.push(format!(
                    "{}: `listen = \"unix:{}\"`: a Unix socket cannot be a Service",
                    a.name,
                    p.display()
                )),
            }
        }
    }
    let mut body = String::new();
    for d in &docs {
        body.push_str("---\n");
        body.push_str(&to_yaml(d));
    }
    vec![File {
        name: "kubernetes.yaml".into(),
        body,
        notes,
    }]
}

fn labels(x: &Export, name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": x.project,
        "app.kubernetes.io/managed-by": "pypm-export",
    })
}

fn metadata(x: &Export, name: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Some(ns) = &x.namespace {
        m.insert("namespace".into(), json!(ns));
    }
    m.insert("labels".into(), labels(x, name));
    Value::Object(m)
}

fn restart_word(r: RestartPolicy) -> &'static str {
    match r {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "never",
    }
}

/// A ConfigMap with the plain variables and a Secret with the secret-looking ones (SPEC §8).
fn env_objects(x: &Export, a: &App) -> (Option<Value>, Option<Value>) {
    let (secret, plain): (Vec<_>, Vec<_>) = x
        .env(a)
        .into_iter()
        .partition(|(k, _)| crate::desired::resolve::is_secret_key(k));
    let to_map = |v: Vec<(String, String)>| -> Map<String, Value> {
        v.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
    };
    let name = dns_name(&a.name);
    let cm = (!plain.is_empty()).then(|| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(x, &format!("{name}-env")),
            "data": to_map(plain),
        })
    });
    let secret = (!secret.is_empty()).then(|| {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(x, &format!("{name}-secret")),
            "type": "Opaque",
            "stringData": to_map(secret),
        })
    });
    (cm, secret)
}

fn env_from(x: &Export, a: &App) -> Vec<Value> {
    let (cm, secret) = env_objects(x, a);
    let name = dns_name(&a.name);
    let mut out = Vec::new();
    if cm.is_some() {
        out.push(json!({"configMapRef": {"name": format!("{name}-env")}}));
    }
    if secret.is_some() {
        out.push(json!({"secretRef": {"name": format!("{name}-secret")}}));
    }
    out
}

fn container(x: &Export, a: &App, notes: &mut Vec<String>) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("name".into(), json!(dns_name(&a.name)));
    c.insert("image".into(), json!(x.image.clone().unwrap_or_default()));
    c.insert("command".into(), json!(x.container_argv(a)));
    let from = env_from(x, a);
    if !from.is_empty() {
        c.insert("envFrom".into(), Value::Array(from));
    }
    if a.interpreter.is_some() || a.environment.is_some() {
        notes.push(format!(
            "{}: its Python environment (`interpreter`/`environment`) becomes the image's `python`: install the app's requirements in the image",
            a.name
        ));
    }
    if a.cwd != x.config.dir {
        notes.push(format!(
            "{}: `cwd` is a path on this machine ({}); the command runs in the image's working directory",
            a.name,
            a.cwd.display()
        ));
    }
    let ports: Vec<Value> = a
        .listen
        .iter()
        .filter_map(|l| match l {
            Listen::Tcp(addr) => port_of(addr).map(|p| json!({"containerPort": p})),
            Listen::Unix(_) => None,
        })
        .collect();
    if !ports.is_empty() {
        notes.push(format!(
            "{}: `listen`: pypm binds the socket and passes it (LISTEN_FDS); in a pod the app binds 0.0.0.0 on the port itself (gunicorn `--bind`, uvicorn `--host/--port`)",
            a.name
        ));
        c.insert("ports".into(), Value::Array(ports));
    }
    if let Some(p) = &a.ready {
        match probe(p, true) {
            Some(mut probe) => {
                // Ready: checked every interval; `timeout` is the start's whole budget, which a
                // startupProbe expresses as failureThreshold × period.
                let period = secs(p.interval).max(1);
                let budget = secs(p.timeout).div_ceil(period).max(1);
                probe.insert("periodSeconds".into(), json!(period));
                let mut startup = probe.clone();
                startup.insert("failureThreshold".into(), json!(budget));
                probe.insert("failureThreshold".into(), json!(1));
                c.insert("readinessProbe".into(), Value::Object(probe));
                c.insert("startupProbe".into(), Value::Object(startup));
            }
            None => notes.push(no_probe(a, "ready", p)),
        }
    }
    if let Some(p) = &a.health {
        match probe(p, false) {
            Some(mut probe) => {
                probe.insert("periodSeconds".into(), json!(secs(p.interval).max(1)));
                probe.insert("failureThreshold".into(), json!(p.failures.max(1)));
                c.insert("livenessProbe".into(), Value::Object(probe));
            }
            None => notes.push(no_probe(a, "health", p)),
        }
    }
    let mut limits = Map::new();
    if let Some(m) = a.memory_max {
        limits.insert("memory".into(), json!(m.to_string()));
    }
    if let Some(c) = a.cpu_max {
        limits.insert(
            "cpu".into(),
            json!(format!("{}m", (c * 1000.0).round() as u64)),
        );
    }
    if !limits.is_empty() {
        c.insert(
            "resources".into(),
            json!({"limits": limits.clone(), "requests": limits}),
        );
    }
    if a.stop_signal != crate::config::StopSignal::default() {
        let sig = a.stop_signal.as_str().trim_start_matches("SIG");
        c.insert(
            "lifecycle".into(),
            json!({"preStop": {"exec": {"command": ["/bin/sh", "-c", format!("kill -{sig} 1; sleep {}", secs(a.stop_timeout))]}}}),
        );
        notes.push(format!(
            "{}: `stop_signal = \"{}\"`: sent by a preStop hook to PID 1 of the container (Kubernetes itself sends SIGTERM after it)",
            a.name, a.stop_signal
        ));
    }
    if let Some(u) = &a.user {
        notes.push(format!(
            "{}: `user = \"{u}\"`: set securityContext.runAsUser to its uid in the image",
            a.name
        ));
    }
    if a.nice != 0 || a.nofile.is_some() {
        notes.push(format!(
            "{}: `nice`/`nofile` have no pod equivalent",
            a.name
        ));
    }
    if !a.success_exit_codes.is_empty() && a.success_exit_codes != [0] {
        notes.push(format!(
            "{}: `success_exit_codes`: Kubernetes counts only exit 0 as success",
            a.name
        ));
    }
    c
}

fn no_probe(a: &App, which: &str, p: &Probe) -> String {
    let what = match &p.check {
        ProbeCheck::Log(_) => "a `log` probe (a line in the output)",
        ProbeCheck::Notify => "a `notify` probe (sd_notify)",
        _ => "this probe",
    };
    format!(
        "{}: `{which}` is {what}, which has no Kubernetes probe: use an http, tcp or exec probe",
        a.name
    )
}

/// An http/tcp/exec probe as a Kubernetes probe (the pod's own address).
fn probe(p: &Probe, ready: bool) -> Option<Map<String, Value>> {
    let mut m = Map::new();
    match &p.check {
        ProbeCheck::Http(url) => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
            let (hostport, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let port = port_of(hostport).unwrap_or(if scheme == "https" { 443 } else { 80 });
            m.insert(
                "httpGet".into(),
                json!({"path": path, "port": port, "scheme": scheme.to_ascii_uppercase()}),
            );
        }
        ProbeCheck::Tcp(addr) => {
            m.insert("tcpSocket".into(), json!({"port": port_of(addr)?}));
        }
        ProbeCheck::Exec(argv) => {
            m.insert("exec".into(), json!({"command": argv}));
        }
        ProbeCheck::Log(_) | ProbeCheck::Notify => return None,
    }
    m.insert(
        "timeoutSeconds".into(),
        json!(super::check_timeout(p, ready)),
    );
    Some(m)
}

/// The port of `host:port` (or `[v6]:port`).
pub fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':')?.1.parse().ok()
}

fn pod_spec(x: &Export, a: &App, notes: &mut Vec<String>) -> Value {
    let mut pod = Map::new();
    let inits: Vec<Value> = a
        .depends_on
        .iter()
        .filter(|(_, c)| *c == crate::config::Condition::Completed)
        .filter_map(|(d, _)| x.app(d))
        .map(|t| {
            let mut c = container(x, t, notes);
            // An init container has no probes.
            for k in [
                "readinessProbe",
                "livenessProbe",
                "startupProbe",
                "ports",
                "lifecycle",
            ] {
                c.remove(k);
            }
            Value::Object(c)
        })
        .collect();
    for (d, c) in &a.depends_on {
        if *c != crate::config::Condition::Completed {
            notes.push(format!(
                "{}: `depends_on = {{ {d} = \"{}\" }}`: pods start independently; readiness probes keep traffic away until each is ready",
                a.name,
                c.as_str()
            ));
        }
    }
    if !inits.is_empty() {
        pod.insert("initContainers".into(), Value::Array(inits));
    }
    pod.insert(
        "containers".into(),
        Value::Array(vec![Value::Object(container(x, a, notes))]),
    );
    pod.insert(
        "terminationGracePeriodSeconds".into(),
        json!(secs(a.stop_timeout)),
    );
    if super::is_task(a) {
        let policy = if a.restart == RestartPolicy::Never {
            "Never"
        } else {
            "OnFailure"
        };
        pod.insert("restartPolicy".into(), json!(policy));
    }
    Value::Object(pod)
}

fn job(x: &Export, a: &App, meta: Value, pod: Value, notes: &mut Vec<String>) -> Value {
    let backoff = if a.restart == RestartPolicy::Never {
        0
    } else {
        a.max_restarts
    };
    let mut spec = json!({
        "backoffLimit": backoff,
        "completions": a.instances,
        "parallelism": a.instances,
        "template": {
            "metadata": {"labels": labels(x, &dns_name(&a.name))},
            "spec": pod,
        },
    });
    if !a.enabled {
        spec["suspend"] = json!(true);
        notes.push(format!("{}: `enabled = false`: exported suspended", a.name));
    }
    match a.schedule.as_deref() {
        Some(s)
            if !s.starts_with('@')
                || matches!(
                    s,
                    "@hourly"
                        | "@daily"
                        | "@weekly"
                        | "@monthly"
                        | "@yearly"
                        | "@annually"
                        | "@midnight"
                ) =>
        {
            let mut cron = json!({
                "schedule": s,
                "concurrencyPolicy": match a.concurrency {
                    Concurrency::Forbid => "Forbid",
                    Concurrency::Allow => "Allow",
                    Concurrency::Replace => "Replace",
                },
                "jobTemplate": {"spec": spec},
            });
            if let Some(tz) = &a.timezone {
                cron["timeZone"] = json!(tz);
            }
            if !a.enabled {
                cron["suspend"] = json!(true);
            }
            if a.catch_up || !a.jitter.is_zero() {
                notes.push(format!(
                    "{}: `catch_up`/`jitter` have no CronJob equivalent (see startingDeadlineSeconds)",
                    a.name
                ));
            }
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": cron})
        }
        Some(s) => {
            notes.push(format!(
                "{}: `schedule = \"{s}\"` has no CronJob equivalent: exported as a Job that runs once",
                a.name
            ));
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec})
        }
        None => json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{for_test, parse_for_test};
    use super::*;

    #[test]
    fn services_tasks_probes_limits_and_env_map_to_their_objects() {
        let cfg = parse_for_test(
            r#"
[apps.migrate]
command = "python migrate.py"
kind = "task"

[apps.web]
command = "gunicorn app:app"
instances = 2
listen = ["tcp://127.0.0.1:8001"]
depends_on = { migrate = "completed" }
memory_max = "512M"
cpu_max = 1.5
stop_signal = "SIGINT"
env = { MODE = "prod", API_TOKEN = "s3cret" }
[apps.web.ready]
http = "http://127.0.0.1:8001/health"
interval = "2s"
timeout = "30s"
[apps.web.health]
tcp = "127.0.0.1:8001"
failures = 4

[apps.nightly]
command = "python report.py"
kind = "task"
schedule = "0 3 * * *"
concurrency = "replace"
"#,
        );
        let x = for_test(&cfg, Some("shop:1"));
        let files = export(&x);
        let text = &files[0].body;
        insta::assert_snapshot!(text);
        assert!(text.contains("kind: \"Deployment\""));
        assert!(text.contains("replicas: 2"));
        assert!(text.contains("kind: \"CronJob\""));
        assert!(text.contains("concurrencyPolicy: \"Replace\""));
        assert!(text.contains("initContainers:"), "migrate runs before web");
        assert!(
            !text.contains("name: \"migrate\"\n  labels"),
            "no Job for migrate"
        );
        assert!(text.contains("kind: \"Secret\"") && text.contains("API_TOKEN: \"s3cret\""));
        assert!(text.contains("kind: \"Service\""));
        assert!(text.contains("cpu: \"1500m\""));
        assert!(text.contains("failureThreshold: 15"), "30 s of 2 s periods");
        let notes = files[0].notes.join("\n");
        assert!(notes.contains("preStop"), "{notes}");
        assert!(notes.contains("init container"), "{notes}");
    }
}
