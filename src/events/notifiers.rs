//! Where events go besides `events.jsonl` (SPEC §7): `[[notify]]` notifiers (webhook, email,
//! exec) and StatsD.
//!
//! Each notifier is one thread with its own queue on the [`EventBus`]: a slow or failing one
//! delays neither supervision nor the other notifiers, and one that falls more than
//! [`crate::events::bus::QUEUE`] events behind loses the excess (logged). Delivery is one attempt with a
//! timeout; a failure is logged as a warning. Threads end when their subscription is cancelled
//! (a reload that changes `[[notify]]` or `statsd`, or shutdown).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::config::{Notifier, NotifierKind};
use crate::control::protocol::{Request, Response};
use crate::control::server::Handler;
use crate::events::bus::EventBus;
use crate::events::journal::EventRecord;
use crate::process::{Reaper, SpawnSpec};

/// How long one delivery may take (an HTTP POST, an SMTP dialogue, an exec notifier's run).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often StatsD gauges are sent.
pub const STATSD_INTERVAL: Duration = Duration::from_secs(10);

/// The running notifier and StatsD threads of one configuration.
pub struct Outlets {
    /// What they were started for: a reload restarts them only when this changes.
    pub notify: Vec<Notifier>,
    pub statsd: Option<String>,
    subscriptions: Vec<crate::events::bus::SubscriptionId>,
    threads: Vec<std::thread::JoinHandle<()>>,
    bus: EventBus,
}

impl Outlets {
    /// Starts one thread per notifier, and the StatsD thread when `statsd` is set.
    pub fn start(
        bus: &EventBus,
        notify: &[Notifier],
        statsd: Option<&str>,
        status: Handler,
        reaper: &Reaper,
        cwd: &std::path::Path,
    ) -> Outlets {
        let mut subscriptions = Vec::new();
        let mut threads = Vec::new();
        for (i, n) in notify.iter().enumerate() {
            let name = format!("notifier #{} ({})", i + 1, n.kind.describe());
            let (id, rx) = bus.subscribe(&name);
            let n = n.clone();
            let reaper = reaper.clone();
            let cwd = cwd.to_path_buf();
            let spawned = std::thread::Builder::new()
                .name("pypm-notify".into())
                .spawn(move || notifier_loop(&name, &n, &rx, &reaper, &cwd));
            match spawned {
                Ok(t) => {
                    subscriptions.push(id);
                    threads.push(t);
                }
                Err(e) => {
                    log::error!("cannot start notifier #{}: {e}", i + 1);
                    bus.unsubscribe(id);
                }
            }
        }
        if let Some(addr) = statsd {
            let (id, rx) = bus.subscribe("statsd");
            let addr = addr.to_string();
            let spawned = std::thread::Builder::new()
                .name("pypm-statsd".into())
                .spawn(move || statsd_loop(&addr, &rx, &status));
            match spawned {
                Ok(t) => {
                    subscriptions.push(id);
                    threads.push(t);
                }
                Err(e) => {
                    log::error!("cannot start the StatsD thread: {e}");
                    bus.unsubscribe(id);
                }
            }
        }
        Outlets {
            notify: notify.to_vec(),
            statsd: statsd.map(str::to_string),
            subscriptions,
            threads,
            bus: bus.clone(),
        }
    }

    /// At shutdown: lets the threads deliver what is queued (the last events included), waiting
    /// for them at most until `deadline`.
    pub fn finish(mut self, deadline: Instant) {
        for id in self.subscriptions.drain(..) {
            self.bus.unsubscribe(id);
        }
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Outlets {
    fn drop(&mut self) {
        for id in self.subscriptions.drain(..) {
            self.bus.unsubscribe(id);
        }
    }
}

impl NotifierKind {
    fn describe(&self) -> String {
        match self {
            // The path of a webhook URL is often its secret (Slack, Discord): logs show the host.
            NotifierKind::Webhook(url) => format!("webhook {}", url_origin(url)),
            NotifierKind::Email { to, .. } => format!("email {to}"),
            NotifierKind::Exec(argv) => format!("exec {}", argv.join(" ")),
        }
    }
}

/// `https://hooks.example.com/T0/B1/secret` → `https://hooks.example.com/…`.
pub fn url_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let more = if rest.len() > authority.len() {
        "/…"
    } else {
        ""
    };
    // No user:password either.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        format!("{host}{more}")
    } else {
        format!("{scheme}://{host}{more}")
    }
}

/// Whether a notifier with this `events` filter wants `event` (empty = all).
pub fn wants(filter: &[String], event: &str) -> bool {
    filter.is_empty() || filter.iter().any(|e| e == event)
}

fn notifier_loop(
    name: &str,
    n: &Notifier,
    rx: &Receiver<Arc<EventRecord>>,
    reaper: &Reaper,
    cwd: &std::path::Path,
) {
    for e in rx {
        if !wants(&n.events, &e.event) {
            continue;
        }
        let result = match &n.kind {
            NotifierKind::Webhook(url) => webhook(url, &e),
            NotifierKind::Email { to, smtp } => email(smtp, to, &e),
            NotifierKind::Exec(argv) => exec(argv, &e, reaper, cwd),
        };
        if let Err(err) = result {
            log::warn!("{name}: could not deliver `{}`: {err}", e.event);
        }
    }
}

fn webhook(url: &str, e: &EventRecord) -> Result<(), String> {
    let body = serde_json::to_vec(e).map_err(|err| err.to_string())?;
    let agent = crate::process::http_agent(DELIVERY_TIMEOUT);
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("pypm/", env!("CARGO_PKG_VERSION")))
        .send(&body[..])
        .map_err(|err| format!("POST {}: {err}", url_origin(url)))?;
    let code = resp.status().as_u16();
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("POST {}: HTTP {code}", url_origin(url)))
    }
}

fn exec(
    argv: &[String],
    e: &EventRecord,
    reaper: &Reaper,
    cwd: &std::path::Path,
) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err("empty command".into());
    };
    // `vars_os`: a variable that is not UTF-8 must not panic the notifier's thread.
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    env.push(("PYPM_EVENT".into(), e.event.clone()));
    env.push(("PYPM_APP".into(), e.app.clone().unwrap_or_default()));
    env.push((
        "PYPM_INSTANCE".into(),
        e.instance.map(|i| i.to_string()).unwrap_or_default(),
    ));
    let mut input = serde_json::to_vec(e).map_err(|err| err.to_string())?;
    input.push(b'\n');
    let spec = SpawnSpec {
        program: program.into(),
        argv: argv.to_vec(),
        env,
        cwd: cwd.to_path_buf(),
        ..SpawnSpec::default()
    };
    let out = reaper
        .run(&spec, &input, DELIVERY_TIMEOUT)
        .map_err(|err| err.to_string())?;
    if out.timed_out {
        return Err(format!(
            "`{program}` did not finish within {}s and was killed",
            DELIVERY_TIMEOUT.as_secs()
        ));
    }
    match out.exit {
        Some(x) if x.code == Some(0) => Ok(()),
        Some(x) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or_default();
            Err(format!("`{program}` {} {last}", x.describe())
                .trim_end()
                .to_string())
        }
        None => Err(format!("`{program}` was not collected")),
    }
}

/// Plain SMTP (no TLS, no authentication): a local relay such as Postfix or `msmtpd` is what a
/// supervisor on one machine talks to. Hand-written because the dialogue is five commands and a
/// mail crate would be the largest dependency in the binary.
fn email(smtp: &str, to: &str, e: &EventRecord) -> Result<(), String> {
    let addr = smtp
        .to_socket_addrs()
        .map_err(|err| format!("{smtp}: {err}"))?
        .next()
        .ok_or_else(|| format!("{smtp}: no address"))?;
    let stream = TcpStream::connect_timeout(&addr, DELIVERY_TIMEOUT)
        .map_err(|err| format!("cannot connect to {smtp}: {err}"))?;
    let io = |err: io::Error| format!("{smtp}: {err}");
    stream
        .set_read_timeout(Some(DELIVERY_TIMEOUT))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(DELIVERY_TIMEOUT))
        .map_err(io)?;
    let mut w = stream.try_clone().map_err(io)?;
    let mut r = BufReader::new(stream);
    let host = crate::process::host_name();
    let from = format!("pypm@{host}");
    let subject = format!(
        "pypm: {} {}{}",
        e.event,
        e.app.as_deref().unwrap_or("-"),
        e.instance.map(|i| format!(".{i}")).unwrap_or_default()
    );
    let json = serde_json::to_string_pretty(e).map_err(|err| err.to_string())?;
    let mut body = String::new();
    for line in format!("{}\r\n\r\n{json}", e.detail).lines() {
        // Dot-stuffing (RFC 5321 4.5.2).
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    let message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}.\r\n",
        e.ts
    );
    smtp_reply(&mut r, 220)?;
    smtp_cmd(&mut w, &mut r, &format!("EHLO {host}"), 250)?;
    smtp_cmd(&mut w, &mut r, &format!("MAIL FROM:<{from}>"), 250)?;
    smtp_cmd(&mut w, &mut r, &format!("RCPT TO:<{to}>"), 250)?;
    smtp_cmd(&mut w, &mut r, "DATA", 354)?;
    w.write_all(message.as_bytes()).map_err(io)?;
    smtp_reply(&mut r, 250)?;
    let _ = w.write_all(b"QUIT\r\n");
    Ok(())
}

fn smtp_cmd(
    w: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    cmd: &str,
    want: u16,
) -> Result<(), String> {
    w.write_all(format!("{cmd}\r\n").as_bytes())
        .map_err(|err| format!("SMTP {cmd}: {err}"))?;
    smtp_reply(r, want).map_err(|err| format!("SMTP {cmd}: {err}"))
}

/// Reads one (possibly multi-line) reply and checks its first digit against `want`'s.
fn smtp_reply(r: &mut BufReader<TcpStream>, want: u16) -> Result<(), String> {
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return if code / 100 == want / 100 {
            Ok(())
        } else {
            Err(format!("server answered `{}`", line.trim_end()))
        };
    }
}

/// StatsD (SPEC §8): every [`STATSD_INTERVAL`], gauges `pypm.APP.INSTANCE.cpu_percent`,
/// `.memory_bytes`, `.up` per instance; on each restart, counter `pypm.APP.restarts`: every
/// `started` of an instance after its first, whatever caused it (a crash, `pypm restart`, a
/// roll, a watched file), as `restarts` counts in `status` and `/metrics`.
fn statsd_loop(addr: &str, rx: &Receiver<Arc<EventRecord>>, status: &Handler) {
    let socket = match UdpSocket::bind(if addr.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }) {
        Ok(s) => s,
        Err(e) => {
            log::error!("StatsD: cannot open a UDP socket: {e}");
            return;
        }
    };
    if let Err(e) = socket.connect(addr) {
        log::error!("StatsD: cannot use {addr}: {e}");
        return;
    }
    let send = |text: &str| {
        // UDP: a missing collector (ECONNREFUSED from an earlier datagram) is not an error.
        let _ = socket.send(text.as_bytes());
    };
    // The first gauges once the apps have had a moment to start.
    let mut next = Instant::now() + Duration::from_secs(1);
    let mut started: std::collections::HashSet<(String, Option<u32>)> = Default::default();
    loop {
        match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(e) => {
                if e.event == "started"
                    && let Some(app) = &e.app
                    && !started.insert((app.clone(), e.instance))
                {
                    send(&format!("pypm.{app}.restarts:1|c"));
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                next = Instant::now() + STATSD_INTERVAL;
                if let Response::Status(report) = status(Request::Status {
                    app: None,
                    light: false,
                }) {
                    for packet in statsd_gauges(&report.instances) {
                        send(&packet);
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The gauge lines for one sample, grouped into datagrams of at most 1,400 bytes (one Ethernet
/// frame), one metric a line.
pub fn statsd_gauges(rows: &[crate::control::protocol::Row]) -> Vec<String> {
    let mut packets = Vec::new();
    let mut cur = String::new();
    for r in rows {
        let base = format!("pypm.{}.{}", r.app, r.instance);
        let up = u8::from(r.state == crate::control::protocol::State::Running);
        let mut lines = vec![format!("{base}.up:{up}|g")];
        lines.push(format!(
            "{base}.cpu_percent:{}|g",
            r.cpu_percent.map_or("0".into(), |c| format!("{c:.2}"))
        ));
        lines.push(format!(
            "{base}.memory_bytes:{}|g",
            r.memory_bytes.unwrap_or(0)
        ));
        for l in lines {
            if !cur.is_empty() && cur.len() + 1 + l.len() > 1400 {
                packets.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push('\n');
            }
            cur.push_str(&l);
        }
    }
    if !cur.is_empty() {
        packets.push(cur);
    }
    packets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::Row;

    fn row(app: &str, instance: u32, state: &str) -> Row {
        Row {
            name: app.into(),
            app: app.into(),
            instance,
            state: state.into(),
            pid: Some(10),
            uptime_secs: Some(1.0),
            restarts: 0,
            cpu_percent: Some(12.5),
            memory_bytes: Some(2048),
            ready: true,
            reason: None,
            last_exit: None,
        }
    }

    #[test]
    fn webhook_urls_are_logged_without_their_secret_path() {
        assert_eq!(
            url_origin("https://hooks.slack.com/services/T0/B1/XYZ"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            url_origin("http://u:pw@127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            url_origin("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000/…"
        );
    }

    #[test]
    fn filters_default_to_every_event() {
        assert!(wants(&[], "failed"));
        assert!(wants(&["failed".into()], "failed"));
        assert!(!wants(&["failed".into()], "started"));
    }

    #[test]
    fn gauges_name_app_and_instance() {
        let p = statsd_gauges(&[row("api", 0, "running"), row("worker", 1, "backoff")]);
        assert_eq!(
            p,
            [
                "pypm.api.0.up:1|g\npypm.api.0.cpu_percent:12.50|g\npypm.api.0.memory_bytes:2048|g\npypm.worker.1.up:0|g\npypm.worker.1.cpu_percent:12.50|g\npypm.worker.1.memory_bytes:2048|g"
            ]
        );
    }

    #[test]
    fn gauges_split_into_datagrams_of_one_frame() {
        let rows: Vec<Row> = (0..100)
            .map(|i| row("some-long-app-name", i, "running"))
            .collect();
        let p = statsd_gauges(&rows);
        assert!(p.len() > 1);
        assert!(p.iter().all(|d| d.len() <= 1400));
        assert_eq!(p.iter().map(|d| d.lines().count()).sum::<usize>(), 300);
    }
}
