//! systemd: a unit per app (`PROJECT-APP@.service` templates for `instances > 1`), `.socket`
//! units for `listen` (the same LISTEN_FDS protocol pypm speaks), `.timer` units for schedules,
//! and `PROJECT.target` that wants them all.

use std::fmt::Write as _;

use super::{Export, File, common_notes, secs};
use crate::config::{App, Condition, Listen, ProbeCheck, RestartPolicy};

/// The unit name prefix of the project's apps: `shop-web.service`.
fn base(x: &Export, a: &App) -> String {
    format!("{}-{}", x.project, unit_word(&a.name))
}

fn unit_word(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The service units an app runs as: `shop-web.service`, or `shop-web@0.service …`.
fn instances(x: &Export, a: &App) -> Vec<String> {
    if a.instances > 1 {
        (0..a.instances)
            .map(|i| format!("{}@{i}.service", base(x, a)))
            .collect()
    } else {
        vec![format!("{}.service", base(x, a))]
    }
}

/// A word of `ExecStart=`: quoted when needed, `%` and `$` escaped (systemd would expand them).
fn exec_word(w: &str) -> String {
    let escaped = w.replace('%', "%%").replace('$', "$$");
    if !escaped.is_empty()
        && escaped
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\' | ';'))
    {
        escaped
    } else {
        let inner = escaped.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{inner}\"")
    }
}

/// `Environment="K=V"`.
fn env_line(k: &str, v: &str) -> String {
    let kv = format!("{k}={v}")
        .replace('%', "%%")
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("Environment=\"{kv}\"")
}

/// A cron expression as `OnCalendar=` (`None` when it cannot be said that way).
pub fn on_calendar(cron: &str) -> Option<String> {
    let named = match cron {
        "@hourly" => Some("hourly"),
        "@daily" | "@midnight" => Some("daily"),
        "@weekly" => Some("weekly"),
        "@monthly" => Some("monthly"),
        "@yearly" | "@annually" => Some("yearly"),
        _ => None,
    };
    if let Some(n) = named {
        return Some(n.to_string());
    }
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [min, hour, dom, mon, dow] = f.as_slice() else {
        return None;
    };
    let field = |s: &str, first: u32| -> Option<String> {
        if s == "*" {
            return Some("*".into());
        }
        let parts: Option<Vec<String>> = s
            .split(',')
            .map(|p| {
                if let Some(step) = p.strip_prefix("*/") {
                    step.parse::<u32>().ok()?;
                    return Some(format!("{first}/{step}"));
                }
                if let Some((a, b)) = p.split_once('-') {
                    a.parse::<u32>().ok()?;
                    b.parse::<u32>().ok()?;
                    return Some(format!("{a}..{b}"));
                }
                p.parse::<u32>().ok().map(|n| format!("{n:02}"))
            })
            .collect();
        parts.map(|p| p.join(","))
    };
    const DAYS: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = |s: &str| -> Option<String> {
        if s == "*" {
            return Some(String::new());
        }
        let parts: Option<Vec<String>> = s
            .split(',')
            .map(|p| {
                let name = |n: &str| n.parse::<usize>().ok().and_then(|i| DAYS.get(i).copied());
                match p.split_once('-') {
                    Some((a, b)) => Some(format!("{}..{}", name(a)?, name(b)?)),
                    None => name(p).map(str::to_string),
                }
            })
            .collect();
        parts.map(|p| format!("{} ", p.join(",")))
    };
    Some(format!(
        "{}*-{}-{} {}:{}:00",
        day(dow)?,
        field(mon, 1)?,
        field(dom, 1)?,
        field(hour, 0)?,
        field(min, 0)?
    ))
}

pub fn export(x: &Export) -> Vec<File> {
    let mut files = Vec::new();
    let mut wants = Vec::new();
    for a in &x.apps {
        let mut notes = common_notes(a, "systemd");
        let name = if a.instances > 1 {
            format!("{}@.service", base(x, a))
        } else {
            format!("{}.service", base(x, a))
        };
        let scheduled = a.schedule.as_deref().filter(|_| super::is_task(a));
        let mut body = unit_section(x, a, &mut notes);
        body.push_str(&service_section(x, a, &mut notes));
        if scheduled.is_none() && a.enabled {
            let _ = write!(
                body,
                "\n[Install]\nWantedBy=multi-user.target {}.target\n",
                x.project
            );
        }
        if a.instances > 1 {
            let list: Vec<String> = instances(x, a);
            notes.push(format!(
                "{}: {} instances: a template; start them with `systemctl start {}`",
                a.name,
                a.instances,
                list.join(" ")
            ));
        }
        if !a.enabled {
            notes.push(format!(
                "{}: `enabled = false`: no [Install] section (not started at boot)",
                a.name
            ));
        }
        files.push(File { name, body, notes });
        if !a.listen.is_empty() {
            files.push(socket_unit(x, a));
        }
        if let Some(cron) = scheduled {
            let mut notes = Vec::new();
            if let Some(t) = timer_unit(x, a, cron, &mut notes) {
                wants.push(format!("{}.timer", base(x, a)));
                files.push(File {
                    name: format!("{}.timer", base(x, a)),
                    body: t,
                    notes,
                });
            } else if let Some(last) = files.last_mut() {
                last.notes.extend(notes);
            }
        } else if a.enabled {
            wants.extend(instances(x, a));
        }
    }
    let mut target = format!(
        "[Unit]\nDescription=Every app of {} (pypm export)\n",
        x.config.path.display()
    );
    if !wants.is_empty() {
        let _ = writeln!(target, "Wants={}", wants.join(" "));
    }
    target.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    files.push(File {
        name: format!("{}.target", x.project),
        body: target,
        notes: Vec::new(),
    });
    files
}

fn unit_section(x: &Export, a: &App, notes: &mut Vec<String>) -> String {
    let mut u = String::from("[Unit]\n");
    let _ = writeln!(
        u,
        "Description=pypm app {}{} of {}",
        a.name,
        if a.instances > 1 {
            " (instance %i)"
        } else {
            ""
        },
        x.config.path.display()
    );
    let mut after = Vec::new();
    let mut requires = Vec::new();
    for (d, c) in &a.depends_on {
        let Some(dep) = x.app(d) else { continue };
        let units = instances(x, dep);
        after.extend(units.iter().cloned());
        requires.extend(units);
        if *c == Condition::Ready
            && dep
                .ready
                .as_ref()
                .is_some_and(|p| p.check != ProbeCheck::Notify)
        {
            notes.push(format!(
                "{}: waits for `{d}` to be ready; systemd waits for it to start (or to notify, with a `notify` probe)",
                a.name
            ));
        }
    }
    if !a.listen.is_empty() {
        let sock = if a.instances > 1 {
            format!("{}@%i.socket", base(x, a))
        } else {
            format!("{}.socket", base(x, a))
        };
        after.push(sock.clone());
        requires.push(sock);
    }
    if !after.is_empty() {
        let _ = writeln!(u, "After={}", after.join(" "));
        let _ = writeln!(u, "Requires={}", requires.join(" "));
    }
    if a.restart != RestartPolicy::Never {
        let _ = writeln!(u, "StartLimitIntervalSec={}", secs(a.restart_window));
        let _ = writeln!(u, "StartLimitBurst={}", a.max_restarts.max(1));
    }
    u
}

fn service_section(x: &Export, a: &App, notes: &mut Vec<String>) -> String {
    let mut s = String::from("\n[Service]\n");
    let task = super::is_task(a);
    let notify = a
        .ready
        .as_ref()
        .is_some_and(|p| p.check == ProbeCheck::Notify);
    let kind = if task {
        "oneshot"
    } else if notify {
        "notify"
    } else {
        "simple"
    };
    let _ = writeln!(s, "Type={kind}");
    if task && !x.completed_dependents(&a.name).is_empty() {
        // Dependents start once it has completed, and not again while it stays completed.
        s.push_str("RemainAfterExit=yes\n");
    }
    let argv: Vec<String> = x.host_argv(a).iter().map(|w| exec_word(w)).collect();
    let _ = writeln!(s, "ExecStart={}", argv.join(" "));
    let _ = writeln!(s, "WorkingDirectory={}", a.cwd.display());
    for f in &a.env_file {
        let _ = writeln!(s, "EnvironmentFile={}", f.display());
    }
    for (k, v) in &a.env {
        s.push_str(&env_line(k, v));
        s.push('\n');
    }
    s.push_str(&env_line("PYPM_APP", &a.name));
    s.push('\n');
    if a.instances > 1 {
        s.push_str("Environment=PYPM_INSTANCE=%i\n");
    }
    if x.host_needs_path(a) {
        s.push_str(&env_line("PATH", &x.host_path(a)));
        s.push('\n');
    }
    let restart = match a.restart {
        RestartPolicy::Always if !task => "always",
        RestartPolicy::Always | RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "no",
    };
    let _ = writeln!(s, "Restart={restart}");
    if a.restart != RestartPolicy::Never {
        let _ = writeln!(s, "RestartSec={}ms", a.restart_delay.as_millis().max(100));
        notes.push(format!(
            "{}: `restart_delay_max`: systemd's growing delay (RestartSteps=, RestartMaxDelaySec=) needs systemd 254; a fixed RestartSec= is exported",
            a.name
        ));
    }
    if !a.success_exit_codes.is_empty() && a.success_exit_codes != [0] {
        let codes: Vec<String> = a.success_exit_codes.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(s, "SuccessExitStatus={}", codes.join(" "));
    }
    let _ = writeln!(s, "KillSignal={}", a.stop_signal);
    let _ = writeln!(s, "TimeoutStopSec={}", secs(a.stop_timeout));
    if let Some(r) = &a.ready {
        let _ = writeln!(s, "TimeoutStartSec={}", secs(r.timeout));
        if !notify {
            notes.push(format!(
                "{}: the `ready` probe is not a `notify` probe: systemd counts the app started once its process runs",
                a.name
            ));
        }
    }
    if let Some(h) = &a.health {
        if h.check == ProbeCheck::Notify {
            let _ = writeln!(s, "WatchdogSec={}", secs(h.interval * h.failures.max(1)));
        } else {
            notes.push(format!(
                "{}: the `health` probe has no systemd equivalent other than a `notify` watchdog",
                a.name
            ));
        }
    }
    if let Some(m) = a.memory_max {
        let _ = writeln!(s, "MemoryMax={m}");
    }
    if let Some(c) = a.cpu_max {
        let _ = writeln!(s, "CPUQuota={}%", (c * 100.0).round() as u64);
    }
    if let Some(n) = a.nofile {
        let _ = writeln!(s, "LimitNOFILE={n}");
    }
    if a.nice != 0 {
        let _ = writeln!(s, "Nice={}", a.nice);
    }
    if let Some(u) = &a.user {
        let _ = writeln!(s, "User={u}");
    }
    if a.restart_schedule.is_some() {
        notes.push(format!(
            "{}: `restart_schedule`: add a timer that runs `systemctl restart` (not exported)",
            a.name
        ));
    }
    s
}

fn socket_unit(x: &Export, a: &App) -> File {
    let name = if a.instances > 1 {
        format!("{}@.socket", base(x, a))
    } else {
        format!("{}.socket", base(x, a))
    };
    let mut s = String::from("[Unit]\n");
    let _ = writeln!(s, "Description=the listen sockets of pypm app {}", a.name);
    s.push_str("\n[Socket]\n");
    for l in &a.listen {
        match l {
            Listen::Tcp(addr) => {
                let _ = writeln!(s, "ListenStream={addr}");
            }
            Listen::Unix(p) => {
                let _ = writeln!(s, "ListenStream={}", p.display());
            }
        }
    }
    let mut notes = Vec::new();
    if a.instances > 1 {
        // One socket per instance, all bound to the same address: the kernel spreads the
        // connections, as it does over pypm's one shared socket.
        s.push_str("ReusePort=yes\n");
        notes.push(format!(
            "{}: {} instances share the address through ReusePort= (one socket per instance) instead of one inherited socket",
            a.name, a.instances
        ));
    }
    let _ = write!(s, "\n[Install]\nWantedBy=sockets.target\n");
    File {
        name,
        body: s,
        notes,
    }
}

fn timer_unit(x: &Export, a: &App, cron: &str, notes: &mut Vec<String>) -> Option<String> {
    if cron == "@reboot" {
        notes.push(format!(
            "{}: `schedule = \"@reboot\"`: run at boot (no timer; enable the service)",
            a.name
        ));
        return None;
    }
    let Some(cal) = on_calendar(cron) else {
        notes.push(format!(
            "{}: `schedule = \"{cron}\"` cannot be written as OnCalendar=: no timer exported",
            a.name
        ));
        return None;
    };
    let mut t = String::from("[Unit]\n");
    let _ = writeln!(
        t,
        "Description=the schedule of pypm app {} ({cron})",
        a.name
    );
    t.push_str("\n[Timer]\n");
    match &a.timezone {
        Some(tz) => {
            let _ = writeln!(t, "OnCalendar={cal} {tz}");
        }
        None => {
            let _ = writeln!(t, "OnCalendar={cal}");
        }
    }
    if a.catch_up {
        t.push_str("Persistent=true\n");
    }
    if !a.jitter.is_zero() {
        let _ = writeln!(t, "RandomizedDelaySec={}", secs(a.jitter));
    }
    if a.concurrency != crate::config::Concurrency::Forbid {
        notes.push(format!(
            "{}: `concurrency`: a timer never starts a run while one is going (as `forbid`)",
            a.name
        ));
    }
    let _ = write!(
        t,
        "\n[Install]\nWantedBy=timers.target {}.target\n",
        x.project
    );
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::super::{for_test, parse_for_test};
    use super::*;

    #[test]
    fn cron_becomes_on_calendar() {
        assert_eq!(on_calendar("0 3 * * *").as_deref(), Some("*-*-* 03:00:00"));
        assert_eq!(
            on_calendar("*/5 * * * *").as_deref(),
            Some("*-*-* *:0/5:00")
        );
        assert_eq!(
            on_calendar("30 8 * * 1-5").as_deref(),
            Some("Mon..Fri *-*-* 08:30:00")
        );
        assert_eq!(on_calendar("@daily").as_deref(), Some("daily"));
        assert_eq!(on_calendar("0 0 L * *"), None);
    }

    #[test]
    fn units_for_templates_sockets_dependencies_and_timers() {
        let cfg = parse_for_test(
            r#"
[apps.migrate]
command = "/usr/bin/python3 migrate.py"
kind = "task"
[apps.web]
command = "/srv/venv/bin/gunicorn app:app --name 100%"
instances = 2
listen = ["tcp://127.0.0.1:8001"]
depends_on = { migrate = "completed" }
memory_max = "256M"
cpu_max = 0.5
[apps.report]
command = "/usr/bin/python3 report.py"
kind = "task"
schedule = "0 3 * * *"
"#,
        );
        let files = export(&for_test(&cfg, None));
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "shop-migrate.service",
                "shop-web@.service",
                "shop-web@.socket",
                "shop-report.service",
                "shop-report.timer",
                "shop.target"
            ]
        );
        let web = &files[1].body;
        insta::assert_snapshot!(web);
        assert!(
            web.contains("Requires=shop-migrate.service shop-web@%i.socket"),
            "{web}"
        );
        assert!(web.contains("100%%"), "{web}");
        assert!(web.contains("CPUQuota=50%"));
        assert!(files[0].body.contains("RemainAfterExit=yes"));
        assert!(files[4].body.contains("OnCalendar=*-*-* 03:00:00"));
        assert!(
            files[5]
                .body
                .contains("shop-web@0.service shop-web@1.service")
        );
    }
}
