//! The HTTP API, the dashboard and `/metrics` (SPEC §7), served when `[pypm] http` is set.
//!
//! It speaks the control protocol: every API call becomes the same [`Request`] the CLI sends over
//! the Unix socket, answered by the same handler, so the JSON bodies are the CLI's `--json`
//! shapes. This module owns only HTTP: routing, the token, the Host/Origin checks, Server-Sent
//! Events.
//!
//! - Every request but `/metrics` needs the token of `state_dir/token`: `Authorization: Bearer
//!   TOKEN`, `?token=TOKEN`, or the `pypm_token` cookie that the dashboard sets (HttpOnly,
//!   SameSite=Strict) when opened with `?token=`. Missing or wrong: 401.
//! - DNS rebinding: a request whose `Host` is not the bound address (for a loopback address also
//!   `localhost:PORT`), or whose `Origin` is not `http://` + that `Host`, gets 403. With
//!   `http_public = true` any `Host` is accepted (the machine's names are not known), and the
//!   token still guards everything but `/metrics`.
//! - HTTP/1.1, one request per connection (`Connection: close`), received whole by the bounded
//!   front of [`crate::control::gate`] before a thread answers it; Server-Sent Event streams hold
//!   their thread until the client goes. Limits: docs/reliability.md.

pub mod metrics;
pub mod token;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use serde_json::json;

use crate::control::gate;
use crate::control::protocol::{ErrorKind, Request, Response};
use crate::control::server::Handler;
use crate::events::bus::EventBus;
use crate::logs::{FOLLOW_INTERVAL, Stream, sources, tail_follow};

/// The dashboard: one static page fed by `/api/status?follow=1`, `/api/events`, `/api/history`,
/// `/api/logs` and `/api/plan` (docs/monitoring.md).
const DASHBOARD: &str = include_str!("dashboard.html");
/// A followed status (`/api/status?follow=1`) is sent at least this often.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// A quiet Server-Sent Events stream sends a comment this often, so a client that went away is
/// noticed (the write fails) and its thread ends.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// A running HTTP server; [`HttpServer::stop`] (or drop) ends its accept thread.
pub struct HttpServer {
    stop: Arc<AtomicBool>,
    pub addr: SocketAddr,
}

/// The HTTP server's limits (docs/reliability.md): the head of a request (request line and
/// headers) and its body. No route takes a body; a client may still send a small one.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024;
/// Headers per request.
const MAX_HEADERS: usize = 64;

const LIMITS: gate::Limits = gate::Limits {
    max_pending: 256,
    max_request: MAX_HEAD + MAX_BODY,
    deadline: Duration::from_secs(10),
    // Every stream may be open and requests still be answered.
    max_workers: MAX_STREAMS + 32,
    // A burst of whole requests waits its turn rather than being refused.
    max_queued: 256,
    name: "pypm-http-req",
};

/// Server-Sent Event streams open at once; more are refused with 503 (each holds a thread).
const MAX_STREAMS: usize = 64;

struct Ctx {
    /// Open Server-Sent Event streams.
    streams: std::sync::atomic::AtomicUsize,
    token: String,
    /// `Host` values accepted (lowercase); empty = any (`http_public`).
    hosts: Vec<String>,
    handler: Handler,
    bus: EventBus,
}

impl HttpServer {
    /// Binds `addr` (HOST:PORT) and serves on a thread of its own.
    pub fn start(
        addr: &str,
        public: bool,
        token: String,
        handler: Handler,
        bus: EventBus,
    ) -> io::Result<HttpServer> {
        // A server being replaced on the same address (a reload) closes its listener from its
        // own thread: give that a moment.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if tries < 20 && e.kind() == io::ErrorKind::AddrInUse => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(io::Error::other(format!("cannot listen on {addr}: {e}"))),
            }
        };
        let bound = listener.local_addr()?;
        let hosts = if public {
            Vec::new()
        } else {
            allowed_hosts(addr, bound)
        };
        let ctx = Arc::new(Ctx {
            streams: std::sync::atomic::AtomicUsize::new(0),
            token,
            hosts,
            handler,
            bus,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("pypm-http".into())
            .spawn(move || gate::run(listener, ctx, LIMITS, &flag))?;
        Ok(HttpServer { stop, addr: bound })
    }

    /// Idempotent; the accept thread ends at once (streams being served end when their client
    /// goes or the supervisor exits).
    pub fn stop(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            // Wakes the front's poll.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One received request: its line and headers; the connection to answer on.
struct Req {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    conn: TcpStream,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A whole response, `Connection: close`.
fn response_bytes(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (name, value) in headers {
        // Only visible ASCII is valid in a header value; anything else is left out.
        if value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

impl Req {
    fn url(&self) -> &str {
        &self.url
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn respond(mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let _ = self.conn.write_all(&response_bytes(status, headers, body));
        let _ = self.conn.flush();
    }
}

/// What `buf` holds: a whole request (head and `Content-Length` bytes of body), or not yet.
fn framing(buf: &[u8]) -> gate::Framing {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => gate::Framing::TooLarge,
        Ok(httparse::Status::Partial) => gate::Framing::Incomplete,
        Ok(httparse::Status::Complete(head)) => {
            let length = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("Content-Length"))
                .map(|h| {
                    std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok())
                });
            match length {
                Some(Some(n)) if n > MAX_BODY => gate::Framing::TooLarge,
                Some(Some(n)) if buf.len() < head + n => gate::Framing::Incomplete,
                // No length, or an unreadable one (answered 400 by `serve`).
                _ => gate::Framing::Complete,
            }
        }
        Err(httparse::Error::TooManyHeaders) => gate::Framing::TooLarge,
        // Malformed: `serve` answers 400.
        Err(_) => gate::Framing::Complete,
    }
}

impl gate::Service for Ctx {
    type Conn = TcpStream;

    fn frame(&self, buf: &[u8]) -> gate::Framing {
        framing(buf)
    }

    fn screen(&self, _: &TcpStream) -> Option<Vec<u8>> {
        None
    }

    fn refusal(&self, why: gate::Refusal) -> Vec<u8> {
        let (status, message) = match why {
            gate::Refusal::TooLarge => (
                413,
                format!(
                    "request too large: at most {MAX_HEAD} bytes of head, {MAX_HEADERS} headers and {MAX_BODY} bytes of body"
                ),
            ),
            gate::Refusal::Busy => (503, "busy: too many requests at once; try again".into()),
        };
        let body = format!("{}\n", json!({ "error": message }));
        response_bytes(
            status,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    fn serve(&self, mut conn: TcpStream, request: Vec<u8>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let (Ok(httparse::Status::Complete(_)), Some(method), Some(path)) =
            (parsed.parse(&request), parsed.method, parsed.path)
        else {
            let body = format!("{}\n", json!({ "error": "malformed request" }));
            let _ = conn.write_all(&response_bytes(
                400,
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            ));
            return;
        };
        let req = Req {
            method: method.to_string(),
            url: path.to_string(),
            headers: parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            conn,
        };
        handle(req, self);
    }
}

/// The `Host` values a loopback-bound server answers: the address as configured, as bound, and
/// for a loopback IP `localhost:PORT`.
pub fn allowed_hosts(configured: &str, bound: SocketAddr) -> Vec<String> {
    let mut hosts = vec![configured.to_ascii_lowercase(), bound.to_string()];
    if bound.ip().is_loopback() {
        hosts.push(format!("localhost:{}", bound.port()));
    }
    // Port 80 is left out of the Host header.
    if bound.port() == 80 {
        let bare: Vec<String> = hosts
            .iter()
            .filter_map(|h| h.strip_suffix(":80").map(str::to_string))
            .collect();
        hosts.extend(bare);
    }
    hosts.dedup();
    hosts
}

/// Whether `host` and `origin` pass the DNS-rebinding check (see the module doc).
pub fn origin_allowed(hosts: &[String], host: Option<&str>, origin: Option<&str>) -> bool {
    let Some(host) = host.map(str::to_ascii_lowercase) else {
        return false; // HTTP/1.1 requires Host
    };
    if !hosts.is_empty() && !hosts.contains(&host) {
        return false;
    }
    match origin {
        None => true,
        Some(o) => o.eq_ignore_ascii_case(&format!("http://{host}")),
    }
}

fn header<'a>(req: &'a Req, name: &'static str) -> Option<&'a str> {
    req.header(name)
}

/// `?a=1&b=2` as pairs (values are taken as they are: tokens, app names and numbers need no
/// decoding).
fn query(url: &str) -> Vec<(&str, &str)> {
    url.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect()
        })
        .unwrap_or_default()
}

fn param<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    query(url)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The token the request carries, and whether it came in the query (the dashboard then sets
/// its cookie).
fn given_token(req: &Req) -> Option<(String, bool)> {
    if let Some(auth) = header(req, "Authorization")
        && let Some(t) = auth.strip_prefix("Bearer ")
    {
        return Some((t.trim().to_string(), false));
    }
    if let Some(t) = param(req.url(), "token") {
        return Some((t.to_string(), true));
    }
    header(req, "Cookie").and_then(|c| {
        c.split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == "pypm_token")
            .map(|(_, v)| (v.to_string(), false))
    })
}

fn respond(req: Req, status: u16, content_type: &str, body: String) {
    req.respond(
        status,
        &[
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
        ],
        body.as_bytes(),
    );
}

fn respond_json(req: Req, status: u16, body: &serde_json::Value) {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "null".into());
    text.push('\n');
    respond(req, status, "application/json", text);
}

fn error(req: Req, status: u16, message: &str) {
    respond_json(req, status, &json!({ "error": message }));
}

/// An API answer as HTTP: the report as JSON, `Done` as `{"message"}`, an error with the status
/// its kind calls for.
fn answer(req: Req, resp: Response) {
    let value = |v: Result<serde_json::Value, serde_json::Error>| v.unwrap_or(json!(null));
    match resp {
        Response::Status(r) => respond_json(req, 200, &value(serde_json::to_value(r))),
        Response::Inspect(r) => respond_json(req, 200, &value(serde_json::to_value(r))),
        Response::Plan(r) => respond_json(req, 200, &value(serde_json::to_value(r))),
        Response::Metrics(r) => respond_json(req, 200, &value(serde_json::to_value(r))),
        Response::History(r) => respond_json(req, 200, &value(serde_json::to_value(r))),
        Response::Pong {
            pid, config_file, ..
        } => respond_json(req, 200, &json!({"pid": pid, "config_file": config_file})),
        Response::Done { message } => respond_json(req, 200, &json!({ "message": message })),
        Response::Error { message, cause, .. } => {
            let status = match cause {
                ErrorKind::NotFound => 404,
                ErrorKind::Unavailable => 503,
                // An invalid file on reload/plan, or a request the supervisor refused.
                ErrorKind::Invalid | ErrorKind::Failed | ErrorKind::OtherFile => 422,
            };
            error(req, status, &message)
        }
    }
}

fn handle(req: Req, ctx: &Ctx) {
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("/").to_string();
    if !origin_allowed(&ctx.hosts, header(&req, "Host"), header(&req, "Origin")) {
        return error(
            req,
            403,
            "forbidden: the Host or Origin is not this server's address",
        );
    }
    let method = req.method.clone();
    if path == "/metrics" {
        if method != "GET" {
            return error(req, 405, "method not allowed");
        }
        return match (ctx.handler)(Request::Metrics) {
            Response::Metrics(m) => respond(
                req,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(&m),
            ),
            other => answer(req, other),
        };
    }
    let given = given_token(&req);
    if !given
        .as_ref()
        .is_some_and(|(t, _)| token::matches(t, &ctx.token))
    {
        // A browser opening the dashboard without its token gets a page that says how to get it.
        let (body, content_type) = if path == "/" {
            (
                "<!doctype html><meta charset=\"utf-8\"><title>pypm</title><p>This dashboard needs its token. Run <code>pypm dashboard</code> next to your <code>pypm.toml</code> and open the URL it prints.</p>\n",
                "text/html; charset=utf-8",
            )
        } else {
            (
                "{\"error\": \"unauthorized: pass the token of state_dir/token (`pypm dashboard` prints a URL with it)\"}\n",
                "application/json",
            )
        };
        req.respond(
            401,
            &[
                ("Content-Type", content_type),
                ("WWW-Authenticate", "Bearer"),
            ],
            body.as_bytes(),
        );
        return;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let h = &ctx.handler;
    match (method.as_str(), segments.as_slice()) {
        ("GET", []) => {
            let cookie = format!(
                "pypm_token={}; Path=/; HttpOnly; SameSite=Strict",
                ctx.token
            );
            let mut headers = vec![
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                (
                    "Content-Security-Policy",
                    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
                ),
            ];
            if given.is_some_and(|(_, from_query)| from_query) {
                headers.push(("Set-Cookie", &cookie));
            }
            req.respond(200, &headers, DASHBOARD.as_bytes());
        }
        ("GET", ["api", "status"]) => {
            let app = param(&url, "app").map(str::to_string);
            if param(&url, "follow").is_some_and(|v| v != "0") {
                return status_stream(req, ctx, app);
            }
            answer(req, h(Request::Status { app, light: false }))
        }
        ("GET", ["api", "apps", app]) => answer(
            req,
            h(Request::Inspect {
                app: app.to_string(),
            }),
        ),
        ("POST", ["api", "apps", app, "restart"]) => answer(
            req,
            h(Request::Restart {
                app: Some(app.to_string()),
            }),
        ),
        ("POST", ["api", "restart"]) => answer(req, h(Request::Restart { app: None })),
        ("POST", ["api", "reload"]) => answer(req, h(Request::Reload { profiles: None })),
        ("GET", ["api", "plan"]) => answer(req, h(Request::Plan { profiles: None })),
        ("GET", ["api", "history"]) => {
            let app = param(&url, "app").map(str::to_string);
            answer(req, h(Request::History { app }))
        }
        ("GET", ["api", "logs", app]) => logs(req, ctx, app, &url),
        ("GET", ["api", "events"]) => events(req, ctx),
        (_, ["api", ..]) | (_, []) => {
            let known = matches!(
                segments.as_slice(),
                [] | [
                    "api",
                    "status" | "plan" | "reload" | "restart" | "events" | "history"
                ] | ["api", "apps", _]
                    | ["api", "apps", _, "restart"]
                    | ["api", "logs", _]
            );
            if known {
                error(req, 405, "method not allowed")
            } else {
                error(req, 404, "not found")
            }
        }
        _ => error(req, 404, "not found"),
    }
}

/// Counts an open stream while it lives.
struct StreamSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> StreamSlot<'a> {
    fn take(ctx: &'a Ctx) -> Option<StreamSlot<'a>> {
        use std::sync::atomic::Ordering;
        let n = ctx.streams.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_STREAMS {
            ctx.streams.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(StreamSlot(&ctx.streams))
    }
}

impl Drop for StreamSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Starts a Server-Sent Events response on the raw connection.
fn sse_start(req: Req) -> io::Result<Box<dyn Write + Send>> {
    let mut w = Box::new(req.conn);
    w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n",
    )?;
    w.flush()?;
    Ok(w)
}

fn sse_send(w: &mut dyn Write, data: &serde_json::Value) -> io::Result<()> {
    let text = serde_json::to_string(data).unwrap_or_default();
    write!(w, "data: {text}\n\n")?;
    w.flush()
}

/// `GET /api/logs/APP?n=N[&follow=1][&stream=out|err]`: `{"app", "lines": [{"instance",
/// "stream", "line"}]}` (the order of `pypm logs APP`), or with `follow=1` the same objects as
/// Server-Sent Events, the last N first, then each new line.
fn logs(req: Req, ctx: &Ctx, app: &str, url: &str) {
    let inspect = match (ctx.handler)(Request::Inspect { app: app.into() }) {
        Response::Inspect(r) => r,
        other => return answer(req, other),
    };
    let (log_dir, instances, timestamps) = match &inspect.spec {
        Some(s) => (s.log_dir.clone(), s.instances, s.log_timestamps),
        None => (std::path::PathBuf::new(), 1, false),
    };
    let n = match param(url, "n").map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(req, 400, "`n` must be a whole number"),
    };
    let streams = match param(url, "stream") {
        Some("out") => vec![Stream::Out],
        Some("err") => vec![Stream::Err],
        _ => vec![Stream::Out, Stream::Err],
    };
    let srcs = sources(&log_dir, &[(app.to_string(), instances, timestamps)]);
    let line = |label: &str, st: Stream, l: &str| json!({"instance": label, "stream": st.as_str(), "line": l});
    if !matches!(param(url, "follow"), Some("1" | "true")) {
        let mut lines = Vec::new();
        for s in &srcs {
            match s.last_lines(&streams, n) {
                Ok(got) => lines.extend(got.iter().map(|(st, l)| line(&s.label, *st, l))),
                Err((p, e)) => {
                    return error(req, 500, &format!("cannot read `{}`: {e}", p.display()));
                }
            }
        }
        return respond_json(req, 200, &json!({"app": app, "lines": lines}));
    }
    let Some(_slot) = StreamSlot::take(ctx) else {
        return error(req, 503, "too many open streams");
    };
    let mut followers = Vec::new();
    let mut first = Vec::new();
    for s in &srcs {
        for st in &streams {
            match tail_follow(s.path(*st), n) {
                Ok((lines, f)) => {
                    first.extend(lines.iter().map(|l| line(&s.label, *st, l)));
                    followers.push((s.label.clone(), *st, f));
                }
                Err(e) => {
                    let p = s.path(*st).display().to_string();
                    return error(req, 500, &format!("cannot read `{p}`: {e}"));
                }
            }
        }
    }
    let Ok(mut w) = sse_start(req) else { return };
    let mut run = || -> io::Result<()> {
        for l in &first {
            sse_send(&mut w, l)?;
        }
        let mut quiet = Duration::ZERO;
        loop {
            let mut any = false;
            for (label, st, f) in followers.iter_mut() {
                for l in f.next_lines(Duration::ZERO).unwrap_or_default() {
                    any = true;
                    sse_send(&mut w, &line(label, *st, &l))?;
                }
            }
            if any {
                quiet = Duration::ZERO;
                continue;
            }
            std::thread::sleep(FOLLOW_INTERVAL);
            quiet += FOLLOW_INTERVAL;
            if quiet >= KEEPALIVE {
                quiet = Duration::ZERO;
                w.write_all(b": keepalive\n\n")?;
                w.flush()?;
            }
        }
    };
    let _ = run();
}

/// `GET /api/status?follow=1`: the status now, then again after every event and at least every
/// [`STATUS_EVERY`], as Server-Sent Events (the dashboard's live table).
fn status_stream(req: Req, ctx: &Ctx, app: Option<String>) {
    let Some(_slot) = StreamSlot::take(ctx) else {
        return error(req, 503, "too many open streams");
    };
    let status = || {
        (ctx.handler)(Request::Status {
            app: app.clone(),
            light: false,
        })
    };
    // An unknown app (or a supervisor shutting down) is an HTTP error, not a stream of them.
    let mut first = match status() {
        Response::Status(r) => Some(r),
        other => return answer(req, other),
    };
    let (id, rx) = ctx.bus.subscribe("an /api/status stream");
    let Ok(mut w) = sse_start(req) else {
        ctx.bus.unsubscribe(id);
        return;
    };
    let mut run = || -> io::Result<()> {
        loop {
            let report = match first.take().map(Response::Status).unwrap_or_else(status) {
                Response::Status(r) => serde_json::to_value(&r).unwrap_or_default(),
                Response::Error { message, .. } => serde_json::json!({ "error": message }),
                _ => serde_json::Value::Null,
            };
            sse_send(&mut w, &report)?;
            match rx.recv_timeout(STATUS_EVERY) {
                // A burst of events (a roll, a crash loop) is one refresh.
                Ok(_) => while rx.try_recv().is_ok() {},
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    };
    let _ = run();
    ctx.bus.unsubscribe(id);
}

/// `GET /api/events`: every event from now on, one Server-Sent Event each (the objects of
/// `events.jsonl`).
fn events(req: Req, ctx: &Ctx) {
    let Some(_slot) = StreamSlot::take(ctx) else {
        return error(req, 503, "too many open streams");
    };
    let (id, rx) = ctx.bus.subscribe("an /api/events stream");
    let Ok(mut w) = sse_start(req) else {
        ctx.bus.unsubscribe(id);
        return;
    };
    let mut run = || -> io::Result<()> {
        loop {
            match rx.recv_timeout(KEEPALIVE) {
                Ok(e) => {
                    let v = serde_json::to_value(&*e).unwrap_or_default();
                    sse_send(&mut w, &v)?;
                }
                Err(RecvTimeoutError::Timeout) => {
                    w.write_all(b": keepalive\n\n")?;
                    w.flush()?;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    };
    let _ = run();
    ctx.bus.unsubscribe(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_must_be_the_bound_address_and_origin_must_match_it() {
        let bound: SocketAddr = "127.0.0.1:9615".parse().unwrap_or_else(|e| panic!("{e}"));
        let hosts = allowed_hosts("127.0.0.1:9615", bound);
        assert!(origin_allowed(&hosts, Some("127.0.0.1:9615"), None));
        assert!(origin_allowed(&hosts, Some("localhost:9615"), None));
        assert!(origin_allowed(
            &hosts,
            Some("127.0.0.1:9615"),
            Some("http://127.0.0.1:9615")
        ));
        assert!(!origin_allowed(&hosts, Some("evil.example:9615"), None));
        assert!(!origin_allowed(&hosts, Some("127.0.0.1:9616"), None));
        assert!(!origin_allowed(&hosts, None, None));
        assert!(!origin_allowed(
            &hosts,
            Some("127.0.0.1:9615"),
            Some("http://evil.example")
        ));
        // http_public: any Host, but the Origin must still be the Host.
        assert!(origin_allowed(&[], Some("box.lan:9615"), None));
        assert!(!origin_allowed(
            &[],
            Some("box.lan:9615"),
            Some("http://evil.example")
        ));
    }

    #[test]
    fn openapi_describes_every_route() {
        let spec = include_str!("../../schema/openapi.yaml");
        for path in [
            "  /:",
            "  /api/status:",
            "  /api/apps/{app}:",
            "  /api/apps/{app}/restart:",
            "  /api/restart:",
            "  /api/reload:",
            "  /api/plan:",
            "  /api/history:",
            "  /api/logs/{app}:",
            "  /api/events:",
            "  /metrics:",
        ] {
            assert!(
                spec.lines().any(|l| l == path),
                "schema/openapi.yaml lacks `{path}`"
            );
        }
    }

    #[test]
    fn query_parameters() {
        assert_eq!(param("/api/logs/x?n=5&follow=1", "n"), Some("5"));
        assert_eq!(param("/api/logs/x?n=5&follow", "follow"), Some(""));
        assert_eq!(param("/api/logs/x", "n"), None);
    }
}
