//! `pypm monit`: the terminal view (issue 16). A table of instances with CPU and memory
//! sparklines from the supervisor's history, the selected app's logs, the last events, and the
//! file's error; keys restart an app or reload the file.
//!
//! The loop asks the supervisor for `status` and `history` once a second (asking for the
//! history keeps the supervisor sampling; docs/monitoring.md), reads the selected app's log
//! files and `events.jsonl` directly (as `pypm logs` does), and redraws only when something
//! changed or a second passed. A supervisor that goes away is shown as such and picked up again
//! when one comes back.

#[cfg(test)]
mod tests;
mod view;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};

use super::Failure;
use super::client_cmds::{Target, client_failure, target};
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Request, Response};
use crate::logs::{Follower, Stream, sources, tail_follow};
use view::{EventLine, Intent, LogLine, Model};

/// How often the supervisor is asked for status and history.
const REFRESH: Duration = Duration::from_secs(1);
/// How often log files and events are looked at between two refreshes.
const TICK: Duration = Duration::from_millis(200);
/// How long one question to the supervisor may take before the view says it is not answering.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// A restart or reload may roll instances: it runs beside the view, which keeps drawing.
const ACT_TIMEOUT: Duration = Duration::from_secs(300);
/// Lines of a log shown when the pane starts following an app.
const LOG_BACKLOG: usize = 50;

pub fn monit(config: Option<&Path>) -> Result<(), Failure> {
    let t = target(config)?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::Error(
            "`pypm monit` needs a terminal\n\nfor a script, use `pypm status --json` (or the HTTP API's /api/status and /api/history)".into(),
        ));
    }
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut term = ratatui::try_init()
        .map_err(|e| Failure::Error(format!("cannot set up the terminal: {e}")))?;
    let result = run(&mut term, &t, color);
    ratatui::restore();
    result
}

/// The data side of the view: the supervisor, the log files, the events file.
struct Feeds {
    state_dir: PathBuf,
    config: PathBuf,
    /// From the file when it last parsed (the log pane needs it; the supervisor keeps running
    /// the last good file, so its logs stay there).
    log_dir: Option<PathBuf>,
    followed: Option<String>,
    logs: Vec<(String, bool, Follower)>,
    events: Option<Follower>,
    /// Answers of restarts and reloads running beside the view.
    done_tx: Sender<String>,
    done_rx: Receiver<String>,
}

impl Feeds {
    fn new(t: &Target) -> Feeds {
        let (done_tx, done_rx) = channel();
        Feeds {
            state_dir: t.state_dir.clone(),
            config: t.located.path.clone(),
            log_dir: None,
            followed: None,
            logs: Vec::new(),
            events: None,
            done_tx,
            done_rx,
        }
    }

    fn ask(&self, req: Request, timeout: Duration) -> Result<Response, ClientError> {
        client::request_for(&self.state_dir, Some(&self.config), req, timeout)
    }

    /// Status and history into the model. Without a supervisor the table is emptied (nothing
    /// there is known to be true any more) and the banner says why.
    fn refresh(&mut self, m: &mut Model) {
        self.ask_status(m);
        if m.disconnected.is_some() {
            m.set_rows(Vec::new());
            m.history.clear();
        }
    }

    fn ask_status(&mut self, m: &mut Model) {
        let status = match self.ask(
            Request::Status {
                app: None,
                light: false,
            },
            ASK_TIMEOUT,
        ) {
            Ok(Response::Status(s)) => s,
            Ok(Response::Error { message, .. }) => {
                m.disconnected = Some(message);
                return;
            }
            Ok(_) => {
                m.disconnected = Some("the supervisor answered `status` unexpectedly".into());
                return;
            }
            Err(ClientError::NotRunning) => {
                m.disconnected = Some(format!(
                    "no supervisor is running for `{}`: waiting for one (start it with `pypm up -d`; q quits)",
                    m.file
                ));
                return;
            }
            Err(e) => {
                m.disconnected = Some(format!("{e}: trying again"));
                return;
            }
        };
        if m.disconnected.take().is_some() && !m.rows.is_empty() {
            m.message = Some("the supervisor is back".into());
        }
        // The message already names the place (`pypm.toml:3:1: …`).
        m.config_error = status.config_error.as_ref().map(|e| e.message.clone());
        if status.config_error.is_none() || self.log_dir.is_none() {
            let host: std::collections::HashMap<String, String> = std::env::vars().collect();
            if let Ok(cfg) = crate::config::load(&self.config, &m.file, &host) {
                self.log_dir = Some(cfg.pypm.log_dir);
            }
        }
        m.set_rows(status.instances);
        if let Ok(Response::History(h)) = self.ask(Request::History { app: None }, ASK_TIMEOUT) {
            m.history = h
                .instances
                .into_iter()
                .map(|s| (s.name, s.samples))
                .collect();
        }
    }

    /// New lines of the followed app's logs and of `events.jsonl`; true when any arrived.
    fn read_files(&mut self, m: &mut Model) -> bool {
        let app = m.selected_app();
        if app != self.followed {
            self.follow(m, app);
        }
        let mut any = false;
        for (label, err, f) in &mut self.logs {
            for text in f.next_lines(Duration::ZERO).unwrap_or_default() {
                m.push_log(LogLine {
                    label: label.clone(),
                    err: *err,
                    text,
                });
                any = true;
            }
        }
        if self.events.is_none() {
            let path = self.state_dir.join("events.jsonl");
            if let Ok((lines, f)) = tail_follow(&path, view::EVENTS) {
                for l in lines {
                    any |= push_event(m, &l);
                }
                self.events = Some(f);
            }
        }
        if let Some(f) = &mut self.events {
            for l in f.next_lines(Duration::ZERO).unwrap_or_default() {
                any |= push_event(m, &l);
            }
        }
        while let Ok(msg) = self.done_rx.try_recv() {
            m.message = Some(msg);
            any = true;
        }
        any
    }

    /// Starts following `app`'s log files: the last lines of each, then what is appended.
    fn follow(&mut self, m: &mut Model, app: Option<String>) {
        self.followed = app.clone();
        self.logs.clear();
        m.logs.clear();
        let (Some(app), Some(log_dir)) = (app, &self.log_dir) else {
            return;
        };
        let instances = m
            .rows
            .iter()
            .filter(|r| r.app == app)
            .map(|r| r.instance + 1)
            .max()
            .unwrap_or(1);
        let multi = m.rows.iter().filter(|r| r.app == app).count() > 1;
        let n = if multi { instances } else { 1 };
        for s in sources(log_dir, &[(app.clone(), n, false)]) {
            for (stream, err) in [(Stream::Out, false), (Stream::Err, true)] {
                let Ok((lines, f)) = tail_follow(s.path(stream), LOG_BACKLOG) else {
                    continue;
                };
                for text in lines {
                    m.push_log(LogLine {
                        label: s.label.clone(),
                        err,
                        text,
                    });
                }
                self.logs.push((s.label.clone(), err, f));
            }
        }
    }

    /// Performs a key's request beside the view; the answer comes back as the footer's message.
    fn act(&self, req: Request) {
        let (state_dir, config, tx) = (
            self.state_dir.clone(),
            self.config.clone(),
            self.done_tx.clone(),
        );
        std::thread::spawn(move || {
            let msg = match client::request_for(&state_dir, Some(&config), req, ACT_TIMEOUT) {
                Ok(Response::Done { message }) => message,
                Ok(Response::Error { message, code, .. }) => {
                    Failure::from_response(message, code).to_string()
                }
                Ok(_) => "done".into(),
                Err(e) => client_failure(e).to_string(),
            };
            let _ = tx.send(msg.lines().next().unwrap_or_default().to_string());
        });
    }
}

/// A line of `events.jsonl` onto the events strip.
fn push_event(m: &mut Model, line: &str) -> bool {
    let Ok(e) = serde_json::from_str::<crate::events::journal::EventRecord>(line) else {
        return false;
    };
    let who = match (&e.app, e.instance) {
        (Some(a), Some(i)) if m.rows.iter().filter(|r| &r.app == a).count() > 1 => {
            format!("{a}.{i}")
        }
        (Some(a), _) => a.clone(),
        (None, _) => String::new(),
    };
    m.push_event(EventLine {
        time: e.ts.get(11..19).unwrap_or(&e.ts).to_string(),
        event: e.event,
        who,
        detail: e.detail,
    });
    true
}

fn run(term: &mut ratatui::DefaultTerminal, t: &Target, color: bool) -> Result<(), Failure> {
    let io_err = |e: std::io::Error| Failure::Error(format!("the terminal failed: {e}"));
    let mut m = Model::new(&t.located.display, color);
    let mut feeds = Feeds::new(t);
    let mut refreshed: Option<Instant> = None;
    let mut dirty = true;
    loop {
        if refreshed.is_none_or(|r| r.elapsed() >= REFRESH) {
            feeds.refresh(&mut m);
            refreshed = Some(Instant::now());
            dirty = true;
        }
        dirty |= feeds.read_files(&mut m);
        if dirty {
            term.draw(|f| view::render(f, &m)).map_err(io_err)?;
            dirty = false;
        }
        let until_refresh =
            refreshed.map_or(Duration::ZERO, |r| REFRESH.saturating_sub(r.elapsed()));
        if !event::poll(TICK.min(until_refresh)).map_err(io_err)? {
            continue;
        }
        match event::read().map_err(io_err)? {
            Event::Key(k) if k.kind == KeyEventKind::Press => {
                dirty = true;
                match m.on_key(k) {
                    Some(Intent::Quit) => return Ok(()),
                    Some(Intent::Restart(app)) => feeds.act(Request::Restart { app: Some(app) }),
                    Some(Intent::Reload) => feeds.act(Request::Reload { profiles: None }),
                    None => {}
                }
            }
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    }
}
