//! Nomad (job specification of Nomad 1.9): one service job with a group per service app; tasks
//! that others need `completed` become `prestart` tasks of those groups; every other task is a
//! batch job of its own (periodic when scheduled), since a job has one type.

use std::fmt::Write as _;

use super::{Export, File, common_notes, dns_name, go_duration};
use crate::config::{App, Condition, Listen, Probe, ProbeCheck, RestartPolicy};

/// A piece of HCL: an attribute or a block.
enum H {
    Attr(String, V),
    Block(String, Vec<String>, Vec<H>),
}

enum V {
    Str(String),
    Num(u64),
    Bool(bool),
    List(Vec<String>),
}

fn attr(k: &str, v: V) -> H {
    H::Attr(k.to_string(), v)
}

fn s(v: impl Into<String>) -> V {
    V::Str(v.into())
}

fn block(name: &str, labels: &[&str], body: Vec<H>) -> H {
    H::Block(
        name.to_string(),
        labels.iter().map(|l| l.to_string()).collect(),
        body,
    )
}

/// An HCL string literal: JSON's escapes, plus `$${` and `%%{` so nothing is interpolated.
fn quote(text: &str) -> String {
    serde_json::to_string(text)
        .unwrap_or_else(|_| "\"\"".into())
        .replace("${", "$${")
        .replace("%{", "%%{")
}

fn render(h: &H, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match h {
        H::Attr(k, v) => {
            let v = match v {
                V::Str(t) => quote(t),
                V::Num(n) => n.to_string(),
                V::Bool(b) => b.to_string(),
                V::List(items) => {
                    let parts: Vec<String> = items.iter().map(|i| quote(i)).collect();
                    format!("[{}]", parts.join(", "))
                }
            };
            let _ = writeln!(out, "{pad}{k} = {v}");
        }
        H::Block(name, labels, body) => {
            let labels: String = labels.iter().map(|l| format!(" {}", quote(l))).collect();
            let _ = writeln!(out, "{pad}{name}{labels} {{");
            for b in body {
                render(b, indent + 1, out);
            }
            let _ = writeln!(out, "{pad}}}");
        }
    }
}

fn is_ident(k: &str) -> bool {
    k.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn export(x: &Export) -> Vec<File> {
    let mut notes = Vec::new();
    let prestart: Vec<&str> = x
        .apps
        .iter()
        .filter(|a| super::is_task(a) && !x.completed_dependents(&a.name).is_empty())
        .map(|a| a.name.as_str())
        .collect();
    let mut files = Vec::new();
    let mut groups = Vec::new();
    for a in &x.apps {
        notes.extend(common_notes(a, "Nomad"));
        if prestart.contains(&a.name.as_str()) {
            continue;
        }
        if super::is_task(a) {
            let mut job_notes = Vec::new();
            let g = group(x, a, &mut job_notes);
            let mut body = job_head(x, "batch");
            if let Some(sched) = &a.schedule {
                if sched.starts_with('@') && sched != "@hourly" && sched != "@daily" {
                    job_notes.push(format!(
                        "{}: `schedule = \"{sched}\"` has no Nomad periodic equivalent: the job runs once",
                        a.name
                    ));
                } else {
                    let mut p = vec![
                        attr("crons", V::List(vec![sched.clone()])),
                        attr(
                            "prohibit_overlap",
                            V::Bool(a.concurrency == crate::config::Concurrency::Forbid),
                        ),
                    ];
                    if let Some(tz) = &a.timezone {
                        p.push(attr("time_zone", s(tz.clone())));
                    }
                    if a.concurrency == crate::config::Concurrency::Replace {
                        job_notes.push(format!(
                            "{}: `concurrency = \"replace\"`: Nomad either overlaps runs or skips one; exported as overlapping",
                            a.name
                        ));
                    }
                    body.push(block("periodic", &[], p));
                }
            }
            body.push(g);
            let mut text = String::new();
            render(
                &block(
                    "job",
                    &[&format!("{}-{}", x.project, dns_name(&a.name))],
                    body,
                ),
                0,
                &mut text,
            );
            files.push(File {
                name: format!("{}-{}.nomad.hcl", x.project, dns_name(&a.name)),
                body: text,
                notes: job_notes,
            });
        } else {
            groups.push(group(x, a, &mut notes));
        }
    }
    let mut out = Vec::new();
    if !groups.is_empty() || files.is_empty() {
        let mut body = job_head(x, "service");
        body.extend(groups);
        let mut text = String::new();
        render(&block("job", &[&x.project], body), 0, &mut text);
        out.push(File {
            name: format!("{}.nomad.hcl", x.project),
            body: text,
            notes,
        });
    } else if let Some(first) = files.first_mut() {
        first.notes.splice(0..0, notes);
    }
    out.extend(files);
    out
}

fn job_head(x: &Export, kind: &str) -> Vec<H> {
    let mut b = vec![
        attr("datacenters", V::List(vec!["*".into()])),
        attr("type", s(kind)),
    ];
    if let Some(ns) = &x.namespace {
        b.push(attr("namespace", s(ns.clone())));
    }
    b
}

/// The group of an app: count, restart policy, network, service and checks, its task (and the
/// prestart tasks of what it needs `completed`).
fn group(x: &Export, a: &App, notes: &mut Vec<String>) -> H {
    let mut g = vec![attr("count", V::Num(u64::from(a.instances)))];
    if !a.enabled {
        g[0] = attr("count", V::Num(0));
        notes.push(format!(
            "{}: `enabled = false`: exported with count = 0",
            a.name
        ));
    }
    // Nomad requires interval >= attempts × delay.
    let (attempts, mode) = match a.restart {
        RestartPolicy::Never => (0, "fail"),
        _ => (a.max_restarts, "fail"),
    };
    let delay = a.restart_delay.max(std::time::Duration::from_secs(1));
    let interval = a.restart_window.max(delay * attempts.max(1));
    g.push(block(
        "restart",
        &[],
        vec![
            attr("attempts", V::Num(u64::from(attempts))),
            attr("interval", s(go_duration(interval))),
            attr("delay", s(go_duration(delay))),
            attr("mode", s(mode)),
        ],
    ));
    if a.restart == RestartPolicy::OnFailure && !super::is_task(a) {
        notes.push(format!(
            "{}: `restart = \"on-failure\"` for a service: Nomad restarts a service task whatever its exit",
            a.name
        ));
    }
    // Ports: the `listen` addresses, and a probe's port when nothing listens.
    let mut ports: Vec<(String, u16)> = Vec::new();
    for l in &a.listen {
        match l {
            Listen::Tcp(addr) => {
                if let Some(p) = super::kubernetes::port_of(addr) {
                    ports.push((format!("p{p}"), p));
                }
            }
            Listen::Unix(p) => notes.push(format!(
                "{}: `listen = \"unix:{}\"` has no Nomad network equivalent",
                a.name,
                p.display()
            )),
        }
    }
    if !a.listen.is_empty() {
        notes.push(format!(
            "{}: `listen`: the app binds its port itself under Nomad (pypm passed it the socket)",
            a.name
        ));
    }
    let checks: Vec<H> = [("ready", &a.ready), ("health", &a.health)]
        .into_iter()
        .filter_map(|(which, p)| Some((which, p.as_ref()?)))
        .filter_map(|(which, p)| check(a, which, p, &mut ports, notes))
        .collect();
    if !ports.is_empty() {
        let body = ports
            .iter()
            .map(|(label, p)| {
                let inner = if x.image.is_some() {
                    vec![
                        attr("static", V::Num(u64::from(*p))),
                        attr("to", V::Num(u64::from(*p))),
                    ]
                } else {
                    vec![attr("static", V::Num(u64::from(*p)))]
                };
                block("port", &[label], inner)
            })
            .collect();
        g.push(block("network", &[], body));
    }
    if !checks.is_empty() || !a.listen.is_empty() {
        let mut svc = vec![
            attr("name", s(dns_name(&a.name))),
            attr("provider", s("nomad")),
        ];
        if let Some((label, _)) = ports.first() {
            svc.push(attr("port", s(label.clone())));
        }
        svc.extend(checks);
        g.push(block("service", &[], svc));
    }
    for (d, c) in &a.depends_on {
        match (c, x.app(d)) {
            (Condition::Completed, Some(t)) if super::is_task(t) => {
                let mut body = vec![block(
                    "lifecycle",
                    &[],
                    vec![attr("hook", s("prestart")), attr("sidecar", V::Bool(false))],
                )];
                body.extend(task_body(x, t, notes));
                g.push(block("task", &[&dns_name(&t.name)], body));
            }
            _ => notes.push(format!(
                "{}: `depends_on = {{ {d} = \"{}\" }}`: groups start independently in Nomad (only `completed` tasks become prestart tasks)",
                a.name,
                c.as_str()
            )),
        }
    }
    g.push(block("task", &[&dns_name(&a.name)], task_body(x, a, notes)));
    block("group", &[&dns_name(&a.name)], g)
}

fn check(
    a: &App,
    which: &str,
    p: &Probe,
    ports: &mut Vec<(String, u16)>,
    notes: &mut Vec<String>,
) -> Option<H> {
    let mut port_for = |port: u16| -> String {
        if let Some((l, _)) = ports.iter().find(|(_, q)| *q == port) {
            return l.clone();
        }
        let label = format!("p{port}");
        ports.push((label.clone(), port));
        label
    };
    let mut body = match &p.check {
        ProbeCheck::Http(url) => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let (hostport, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let port = super::kubernetes::port_of(hostport).unwrap_or(80);
            vec![
                attr("type", s("http")),
                attr("path", s(path)),
                attr("port", s(port_for(port))),
            ]
        }
        ProbeCheck::Tcp(addr) => {
            let port = super::kubernetes::port_of(addr)?;
            vec![attr("type", s("tcp")), attr("port", s(port_for(port)))]
        }
        ProbeCheck::Exec(argv) => {
            let (cmd, args) = argv.split_first()?;
            vec![
                attr("type", s("script")),
                attr("command", s(cmd.clone())),
                attr("args", V::List(args.to_vec())),
                attr("task", s(dns_name(&a.name))),
            ]
        }
        ProbeCheck::Log(_) | ProbeCheck::Notify => {
            notes.push(format!(
                "{}: the `{which}` probe is a `log` or `notify` probe, which Nomad cannot run",
                a.name
            ));
            return None;
        }
    };
    body.insert(0, attr("name", s(format!("{}-{which}", dns_name(&a.name)))));
    // Nomad's minimum for both is 1 s.
    let interval = p.interval.max(std::time::Duration::from_secs(1));
    body.push(attr("interval", s(go_duration(interval))));
    body.push(attr(
        "timeout",
        s(format!("{}s", super::check_timeout(p, which == "ready"))),
    ));
    if which == "health" {
        body.push(block(
            "check_restart",
            &[],
            vec![attr("limit", V::Num(u64::from(p.failures.max(1))))],
        ));
    }
    Some(block("check", &[], body))
}

fn task_body(x: &Export, a: &App, notes: &mut Vec<String>) -> Vec<H> {
    let mut t = Vec::new();
    match &x.image {
        Some(image) => {
            let argv = x.container_argv(a);
            t.push(attr("driver", s("docker")));
            let mut config = vec![attr("image", s(image.clone()))];
            if let Some((cmd, args)) = argv.split_first() {
                config.push(attr("command", s(cmd.clone())));
                config.push(attr("args", V::List(args.to_vec())));
            }
            t.push(block("config", &[], config));
        }
        None => {
            let argv = x.host_argv(a);
            t.push(attr("driver", s("raw_exec")));
            let mut config = Vec::new();
            if let Some((cmd, args)) = argv.split_first() {
                config.push(attr("command", s(cmd.clone())));
                config.push(attr("args", V::List(args.to_vec())));
            }
            t.push(block("config", &[], config));
        }
    }
    let mut env: Vec<H> = Vec::new();
    for (k, v) in x.env(a) {
        if is_ident(&k) {
            env.push(attr(&k, s(v)));
        } else {
            notes.push(format!("{}: env `{k}` is not a Nomad env key", a.name));
        }
    }
    if x.image.is_none() && x.host_needs_path(a) {
        env.push(attr("PATH", s(x.host_path(a))));
    }
    if !env.is_empty() {
        t.push(block("env", &[], env));
    }
    if !a.env_file.is_empty() {
        notes.push(format!(
            "{}: `env_file`: its variables are written into the `env` block as they are now",
            a.name
        ));
    }
    t.push(attr("kill_signal", s(a.stop_signal.to_string())));
    t.push(attr("kill_timeout", s(go_duration(a.stop_timeout))));
    let mut res = Vec::new();
    if let Some(c) = a.cpu_max {
        res.push(attr("cpu", V::Num((c * 1000.0).round() as u64)));
        notes.push(format!(
            "{}: `cpu_max = {c}`: Nomad reserves CPU in MHz; exported as {} MHz (1 core = 1000 MHz)",
            a.name,
            (c * 1000.0).round() as u64
        ));
    }
    if let Some(m) = a.memory_max {
        res.push(attr("memory", V::Num(m.div_ceil(1024 * 1024).max(10))));
    }
    if !res.is_empty() {
        t.push(block("resources", &[], res));
    }
    if let Some(u) = &a.user {
        t.push(attr("user", s(u.clone())));
    }
    if a.nice != 0 || a.nofile.is_some() {
        notes.push(format!(
            "{}: `nice`/`nofile` have no Nomad task equivalent",
            a.name
        ));
    }
    if a.restart_schedule.is_some() {
        notes.push(format!(
            "{}: `restart_schedule` has no Nomad equivalent",
            a.name
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::super::{for_test, parse_for_test};
    use super::*;

    #[test]
    fn a_service_job_with_groups_prestart_tasks_and_a_periodic_batch_job() {
        let cfg = parse_for_test(
            r#"
[apps.migrate]
command = "/usr/bin/python3 migrate.py"
kind = "task"
[apps.web]
command = "/srv/venv/bin/gunicorn app:app"
instances = 3
listen = ["tcp://127.0.0.1:8001"]
depends_on = { migrate = "completed" }
memory_max = "256M"
env = { GREETING = "hi $${x}" }
[apps.web.health]
http = "http://127.0.0.1:8001/health"
[apps.report]
command = "/usr/bin/python3 report.py"
kind = "task"
schedule = "*/5 * * * *"
"#,
        );
        let files = export(&for_test(&cfg, None));
        assert_eq!(files.len(), 2, "a service job and a batch job");
        insta::assert_snapshot!(files[0].body);
        insta::assert_snapshot!(files[1].body);
        assert!(files[0].body.contains("hook = \"prestart\""));
        assert!(files[0].body.contains("count = 3"));
        assert!(files[0].body.contains("$${x}"), "no interpolation");
        assert!(files[1].body.contains("type = \"batch\""));
        assert!(files[1].body.contains("crons = [\"*/5 * * * *\"]"));
    }
}
