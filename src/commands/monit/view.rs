//! What `pypm monit` shows and how keys change it: a [`Model`] the live loop fills from the
//! supervisor and the files, [`Model::on_key`] (pure), and [`render`] (pure: a frame from a
//! model, tested on ratatui's `TestBackend`).

use std::collections::{HashMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Table, Wrap};

use crate::control::protocol::{HistorySample, Row};

/// Lines of the selected app's logs kept for the log pane.
pub const LOG_LINES: usize = 500;
/// Events kept for the events strip.
pub const EVENTS: usize = 50;

/// One line of the log pane.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// `api`, or `api.1` when the app has several instances.
    pub label: String,
    /// From stderr (marked `err`), else stdout (`out`).
    pub err: bool,
    pub text: String,
}

/// One entry of the events strip (a line of `events.jsonl`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine {
    /// `HH:MM:SS` (UTC, as the file's timestamps).
    pub time: String,
    pub event: String,
    /// `api.0`, `api`, or empty for the supervisor's own events.
    pub who: String,
    pub detail: String,
}

/// What the user asked for that the live loop performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Quit,
    /// `r`: roll this app's instances.
    Restart(String),
    /// `R`: apply the file.
    Reload,
}

/// Everything on screen.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The file, as the user named it.
    pub file: String,
    /// `None` while connected; else why not (no supervisor runs, it went away).
    pub disconnected: Option<String>,
    /// The file's error, when the supervisor reports one (it keeps running the last good file).
    pub config_error: Option<String>,
    pub rows: Vec<Row>,
    /// Recent samples per row name, oldest first.
    pub history: HashMap<String, Vec<HistorySample>>,
    /// The selected row's name.
    pub selected: Option<String>,
    pub filter: String,
    /// `/` was pressed: keys edit the filter until Enter or Esc.
    pub filtering: bool,
    pub show_logs: bool,
    pub logs: VecDeque<LogLine>,
    pub events: VecDeque<EventLine>,
    /// A line for the footer: what a key did ("restarting `api`…", the answer).
    pub message: Option<String>,
    /// False with `NO_COLOR` set: states are told by their text alone.
    pub color: bool,
}

impl Model {
    pub fn new(file: &str, color: bool) -> Model {
        Model {
            file: file.to_string(),
            show_logs: true,
            color,
            ..Model::default()
        }
    }

    /// The rows the filter lets through (an app whose name contains it).
    pub fn visible(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| self.filter.is_empty() || r.app.contains(self.filter.as_str()))
            .collect()
    }

    /// The selected row, else the first visible one.
    pub fn selected_row(&self) -> Option<&Row> {
        let visible = self.visible();
        self.selected
            .as_ref()
            .and_then(|s| visible.iter().find(|r| &r.name == s).copied())
            .or_else(|| visible.first().copied())
    }

    /// The app whose logs the pane follows.
    pub fn selected_app(&self) -> Option<String> {
        self.selected_row().map(|r| r.app.clone())
    }

    /// New status rows: the selection stays on the same instance while it exists.
    pub fn set_rows(&mut self, rows: Vec<Row>) {
        self.rows = rows;
        if self.selected_row().map(|r| &r.name) != self.selected.as_ref() {
            self.selected = self.selected_row().map(|r| r.name.clone());
        }
    }

    pub fn push_log(&mut self, line: LogLine) {
        if self.logs.len() == LOG_LINES {
            self.logs.pop_front();
        }
        self.logs.push_back(line);
    }

    pub fn push_event(&mut self, e: EventLine) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn move_selection(&mut self, by: isize) {
        let visible = self.visible();
        if visible.is_empty() {
            return;
        }
        let at = self
            .selected
            .as_ref()
            .and_then(|s| visible.iter().position(|r| &r.name == s))
            .unwrap_or(0);
        let last = visible.len() - 1;
        let to = at.saturating_add_signed(by).min(last);
        self.selected = Some(visible[to].name.clone());
    }

    /// A key press: the model changes, and what the loop must do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Intent> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Intent::Quit);
        }
        if self.filtering {
            match key.code {
                KeyCode::Enter => self.filtering = false,
                KeyCode::Esc => {
                    self.filtering = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.selected = self.selected_row().map(|r| r.name.clone());
            return None;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Some(Intent::Quit),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Char('l') => self.show_logs = !self.show_logs,
            KeyCode::Char('/') => {
                self.filtering = true;
                self.message = None;
            }
            KeyCode::Char('r') => {
                let app = self.selected_app()?;
                self.message = Some(format!("restarting `{app}`…"));
                return Some(Intent::Restart(app));
            }
            KeyCode::Char('R') => {
                self.message = Some(format!("reloading `{}`…", self.file));
                return Some(Intent::Reload);
            }
            _ => {}
        }
        None
    }
}

/// How a state is coloured (its text says it too: `NO_COLOR` loses nothing).
fn state_style(state: &str) -> Style {
    let c = match state {
        "running" => Color::Green,
        "starting" | "stopping" => Color::Yellow,
        "waiting" => Color::Cyan,
        "backoff" => Color::Magenta,
        "failed" => Color::Red,
        _ => Color::DarkGray,
    };
    Style::default().fg(c)
}

/// `values` as a row of block characters, the newest on the right, `width` wide; the bar
/// height is relative to `scale` (at least the largest value).
pub fn sparkline(values: &[Option<f64>], width: usize, scale: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values
        .iter()
        .flatten()
        .fold(scale, |m, v| if *v > m { *v } else { m });
    let shown = &values[values.len().saturating_sub(width)..];
    let mut s: String = " ".repeat(width - shown.len());
    for v in shown {
        s.push(match v {
            Some(v) if max > 0.0 => {
                let k = ((v / max) * 7.0).round().clamp(0.0, 7.0) as usize;
                BARS[k]
            }
            Some(_) => BARS[0],
            None => ' ',
        });
    }
    s
}

/// Draws the whole screen.
pub fn render(f: &mut Frame, m: &Model) {
    let area = f.area();
    let paint = |s: Style| if m.color { s } else { Style::default() };
    let banner = banner_text(m);
    let banner_h = banner.as_ref().map_or(0, |(_, t)| {
        let width = area.width.saturating_sub(2).max(1) as usize;
        let lines: usize = t
            .lines()
            .map(|l| l.chars().count().div_ceil(width).max(1))
            .sum();
        (lines as u16 + 2).min(6)
    });
    let visible = m.visible();
    let table_h = (visible.len() as u16).max(1) + 3;
    let events_h = (m.events.len() as u16).clamp(1, 4) + 2;
    let table_c = if m.show_logs {
        Constraint::Max(table_h)
    } else {
        Constraint::Min(table_h.min(4))
    };
    let logs_c = if m.show_logs {
        Constraint::Min(3)
    } else {
        Constraint::Length(0)
    };
    let [title, banner_a, table_a, logs_a, events_a, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_h),
        table_c,
        logs_c,
        Constraint::Length(events_h),
        Constraint::Length(1),
    ])
    .areas(area);

    let n_apps = {
        let mut apps: Vec<&str> = m.rows.iter().map(|r| r.app.as_str()).collect();
        apps.dedup();
        apps.len()
    };
    let head = format!(
        " pypm monit · {} · {n_apps} app{}, {} instance{}",
        m.file,
        if n_apps == 1 { "" } else { "s" },
        m.rows.len(),
        if m.rows.len() == 1 { "" } else { "s" }
    );
    f.render_widget(
        Paragraph::new(head).style(paint(Style::default().add_modifier(Modifier::BOLD))),
        title,
    );
    if let Some((title, text)) = banner {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(title)
            .border_style(paint(Style::default().fg(Color::Red)));
        f.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(block)
                .style(paint(Style::default().fg(Color::Red))),
            banner_a,
        );
    }
    render_table(f, m, &visible, table_a);
    if m.show_logs {
        render_logs(f, m, logs_a);
    }
    render_events(f, m, events_a);
    let foot = if m.filtering {
        format!(
            " filter apps: {}▏ (Enter keeps it, Esc clears it)",
            m.filter
        )
    } else if let Some(msg) = &m.message {
        format!(" {msg}")
    } else {
        let filter = if m.filter.is_empty() {
            String::new()
        } else {
            format!(" [filter: {}]", m.filter)
        };
        format!(" ↑/↓ select  r restart  R reload  l logs  / filter  q quit{filter}")
    };
    f.render_widget(
        Paragraph::new(foot).style(paint(Style::default().add_modifier(Modifier::REVERSED))),
        footer,
    );
}

/// The banner: no supervisor, else the file's error.
fn banner_text(m: &Model) -> Option<(&'static str, String)> {
    if let Some(why) = &m.disconnected {
        return Some((" no supervisor ", why.clone()));
    }
    m.config_error.as_ref().map(|e| {
        (
            " the file is invalid: still running the last good one ",
            e.clone(),
        )
    })
}

fn render_table(f: &mut Frame, m: &Model, visible: &[&Row], area: Rect) {
    let paint = |s: Style| if m.color { s } else { Style::default() };
    let selected = m.selected_row().map(|r| r.name.clone());
    let name_w = visible
        .iter()
        .map(|r| r.name.chars().count() + 2)
        .max()
        .unwrap_or(6)
        .clamp(6, 24) as u16;
    // Fixed columns; the two sparklines share what is left.
    let fixed = name_w + 9 + 7 + 8 + 3 + 6 + 8 + 8 + 2;
    let spark_w = (area.width.saturating_sub(fixed) / 2).max(4);
    let header = TableRow::new(vec![
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "↺",
        "CPU",
        "MEM",
        "CPU TREND",
        "MEM TREND",
    ])
    .style(paint(Style::default().add_modifier(Modifier::BOLD)));
    let rows: Vec<TableRow> = visible
        .iter()
        .map(|r| {
            let hist = m.history.get(&r.name).map(Vec::as_slice).unwrap_or(&[]);
            let cpu: Vec<Option<f64>> = hist.iter().map(|s| s.cpu_percent).collect();
            let mem: Vec<Option<f64>> = hist
                .iter()
                .map(|s| s.memory_bytes.map(|b| b as f64))
                .collect();
            let is_sel = selected.as_ref() == Some(&r.name);
            let mark = if is_sel { "›" } else { " " };
            let cells = vec![
                Cell::from(format!("{mark}{}", r.name)),
                Cell::from(r.state.as_str()).style(paint(state_style(r.state.as_str()))),
                Cell::from(r.pid.map_or("-".into(), |p| p.to_string())),
                Cell::from(
                    r.uptime_secs
                        .map_or("-".into(), super::super::status::uptime),
                ),
                Cell::from(r.restarts.to_string()),
                Cell::from(r.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%"))),
                Cell::from(
                    r.memory_bytes
                        .map_or("-".into(), super::super::status::memory),
                ),
                Cell::from(sparkline(&cpu, spark_w as usize, 100.0))
                    .style(paint(Style::default().fg(Color::Cyan))),
                Cell::from(sparkline(&mem, spark_w as usize, 0.0))
                    .style(paint(Style::default().fg(Color::Blue))),
            ];
            let row = TableRow::new(cells);
            if is_sel {
                row.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(name_w),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(3),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(spark_w),
        Constraint::Length(spark_w),
    ];
    let title = if m.rows.is_empty() && m.disconnected.is_none() {
        " no apps ".to_string()
    } else if visible.len() < m.rows.len() {
        format!(" instances ({} of {}) ", visible.len(), m.rows.len())
    } else {
        " instances ".to_string()
    };
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::default().borders(Borders::ALL).title(title));
    f.render_widget(table, area);
}

fn render_logs(f: &mut Frame, m: &Model, area: Rect) {
    let paint = |s: Style| if m.color { s } else { Style::default() };
    let title = match m.selected_app() {
        Some(app) => format!(" logs: {app} (out = stdout, err = stderr) "),
        None => " logs ".to_string(),
    };
    let inner_h = area.height.saturating_sub(2) as usize;
    let skip = m.logs.len().saturating_sub(inner_h);
    let lines: Vec<Line> = m
        .logs
        .iter()
        .skip(skip)
        .map(|l| {
            let (tag, style) = if l.err {
                ("err", Style::default().fg(Color::Red))
            } else {
                ("out", Style::default().fg(Color::DarkGray))
            };
            Line::from(vec![
                Span::styled(format!("{} {tag} │ ", l.label), paint(style)),
                Span::raw(l.text.clone()),
            ])
        })
        .collect();
    let body = if lines.is_empty() {
        vec![Line::from(" (no output yet)")]
    } else {
        lines
    };
    f.render_widget(
        Paragraph::new(body).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn render_events(f: &mut Frame, m: &Model, area: Rect) {
    let paint = |s: Style| if m.color { s } else { Style::default() };
    let inner_h = area.height.saturating_sub(2) as usize;
    let skip = m.events.len().saturating_sub(inner_h);
    let lines: Vec<Line> = m
        .events
        .iter()
        .skip(skip)
        .map(|e| {
            let style = match e.event.as_str() {
                "exited" | "failed" | "unhealthy" | "memory_limit" | "config_error"
                | "log_error" => Style::default().fg(Color::Red),
                "restarted" | "reloaded" | "ready" | "started" => Style::default().fg(Color::Green),
                _ => Style::default(),
            };
            Line::from(vec![
                Span::raw(format!("{} ", e.time)),
                Span::styled(e.event.clone(), paint(style)),
                Span::raw(format!(" {} {}", e.who, e.detail)),
            ])
        })
        .collect();
    let body = if lines.is_empty() {
        vec![Line::from(" (no events yet)")]
    } else {
        lines
    };
    f.render_widget(
        Paragraph::new(body).block(Block::default().borders(Borders::ALL).title(" events ")),
        area,
    );
}
