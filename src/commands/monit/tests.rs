//! Render tests on ratatui's `TestBackend` (insta snapshots of the text) and key handling.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::view::{EventLine, Intent, LogLine, Model, render, sparkline};
use crate::control::protocol::{HistorySample, Row};

fn row(app: &str, instance: u32, multi: bool, state: &str, pid: Option<u32>) -> Row {
    Row {
        name: if multi {
            format!("{app}.{instance}")
        } else {
            app.to_string()
        },
        app: app.to_string(),
        instance,
        state: state.into(),
        pid,
        uptime_secs: pid.map(|_| 125.0),
        restarts: 1,
        cpu_percent: pid.map(|_| 12.4),
        memory_bytes: pid.map(|_| 48 << 20),
        ready: state == "running",
        reason: None,
        last_exit: None,
    }
}

fn model() -> Model {
    let mut m = Model::new("pypm.toml", false);
    m.set_rows(vec![
        row("api", 0, true, "running", Some(4242)),
        row("api", 1, true, "running", Some(4243)),
        row("worker", 0, false, "backoff", None),
        row("db", 0, false, "starting", Some(4100)),
    ]);
    let samples: Vec<HistorySample> = (0..30)
        .map(|k| HistorySample {
            t: 1_700_000_000.0 + 2.0 * f64::from(k),
            cpu_percent: Some(f64::from(k % 10) * 10.0),
            memory_bytes: Some((40 + k as u64) << 20),
            state: "running".into(),
        })
        .collect();
    m.history.insert("api.0".into(), samples);
    for k in 0..3 {
        m.push_log(LogLine {
            label: "api.0".into(),
            err: k == 2,
            text: format!("GET /health 200 #{k}"),
        });
    }
    m.push_event(EventLine {
        time: "12:00:01".into(),
        event: "exited".into(),
        who: "worker".into(),
        detail: "code 1".into(),
    });
    m.push_event(EventLine {
        time: "12:00:02".into(),
        event: "restarted".into(),
        who: "worker".into(),
        detail: "attempt 2".into(),
    });
    m
}

fn screen(m: &Model, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| render(f, m)).expect("draw");
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

#[test]
fn the_whole_view_fits_80x24() {
    insta::assert_snapshot!(screen(&model(), 80, 24));
}

#[test]
fn a_wide_terminal_gives_the_sparklines_room() {
    insta::assert_snapshot!(screen(&model(), 120, 30));
}

#[test]
fn an_invalid_file_shows_a_banner_above_the_table() {
    let mut m = model();
    m.config_error = Some("unknown key `comand` in [apps.api] (line 4, column 1)".into());
    let s = screen(&m, 80, 24);
    assert!(s.contains("the file is invalid"), "{s}");
    assert!(s.contains("unknown key `comand`"), "{s}");
    assert!(s.contains("api.0"), "the table stays: {s}");
}

#[test]
fn a_supervisor_that_went_away_is_said_so() {
    let mut m = model();
    m.disconnected = Some("no supervisor is running for `pypm.toml`: waiting for one".into());
    insta::assert_snapshot!(screen(&m, 80, 24));
}

#[test]
fn hiding_the_logs_gives_the_table_the_room() {
    let mut m = model();
    assert_eq!(m.on_key(key(KeyCode::Char('l'))), None);
    let s = screen(&m, 80, 24);
    assert!(!s.contains("logs:"), "{s}");
    assert!(s.contains("events"), "{s}");
}

#[test]
fn arrows_move_the_selection_and_r_restarts_the_selected_app() {
    let mut m = model();
    assert_eq!(
        m.selected.as_deref(),
        Some("api.0"),
        "the first row at first"
    );
    m.on_key(key(KeyCode::Up));
    assert_eq!(m.selected.as_deref(), Some("api.0"), "stays at the top");
    m.on_key(key(KeyCode::Down));
    m.on_key(key(KeyCode::Down));
    assert_eq!(m.selected.as_deref(), Some("worker"));
    assert!(screen(&m, 80, 24).contains("›worker"));
    assert_eq!(
        m.on_key(key(KeyCode::Char('r'))),
        Some(Intent::Restart("worker".into()))
    );
    assert!(
        m.message
            .as_deref()
            .is_some_and(|s| s.contains("restarting `worker`"))
    );
    assert_eq!(m.on_key(key(KeyCode::Char('R'))), Some(Intent::Reload));
    assert_eq!(m.on_key(key(KeyCode::Char('q'))), Some(Intent::Quit));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(m.on_key(ctrl_c), Some(Intent::Quit));
}

#[test]
fn the_selection_follows_its_instance_when_rows_change() {
    let mut m = model();
    m.on_key(key(KeyCode::Down));
    m.on_key(key(KeyCode::Down));
    assert_eq!(m.selected.as_deref(), Some("worker"));
    let mut rows = m.rows.clone();
    rows.remove(0);
    m.set_rows(rows);
    assert_eq!(m.selected.as_deref(), Some("worker"));
    m.set_rows(vec![row("db", 0, false, "running", Some(1))]);
    assert_eq!(m.selected.as_deref(), Some("db"), "gone: the first row");
}

#[test]
fn slash_filters_apps_and_q_types_into_the_filter() {
    let mut m = model();
    m.on_key(key(KeyCode::Char('/')));
    for c in "wor".chars() {
        assert_eq!(m.on_key(key(KeyCode::Char(c))), None);
    }
    m.on_key(key(KeyCode::Char('q')));
    assert_eq!(m.filter, "worq", "q while filtering is text");
    m.on_key(key(KeyCode::Backspace));
    m.on_key(key(KeyCode::Enter));
    assert_eq!(m.visible().len(), 1);
    assert_eq!(m.selected.as_deref(), Some("worker"));
    let s = screen(&m, 80, 24);
    assert!(s.contains("instances (1 of 4)"), "{s}");
    assert!(!s.contains("api.1"), "{s}");
    m.on_key(key(KeyCode::Char('/')));
    m.on_key(key(KeyCode::Esc));
    assert_eq!(m.visible().len(), 4, "Esc clears the filter");
}

#[test]
fn no_color_draws_no_colour() {
    let m = model();
    let mut t = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    t.draw(|f| render(f, &m)).expect("draw");
    let buf = t.backend().buffer();
    let coloured = buf
        .content()
        .iter()
        .filter(|c| c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset)
        .count();
    assert_eq!(coloured, 0, "NO_COLOR: no cell has a colour");
    let mut m = model();
    m.color = true;
    t.draw(|f| render(f, &m)).expect("draw");
    let coloured = t
        .backend()
        .buffer()
        .content()
        .iter()
        .filter(|c| c.fg != ratatui::style::Color::Reset)
        .count();
    assert!(coloured > 0, "with colour, states are coloured");
}

#[test]
fn sparklines_put_the_newest_sample_on_the_right() {
    assert_eq!(
        sparkline(&[Some(0.0), Some(50.0), Some(100.0)], 5, 100.0),
        "  ▁▅█"
    );
    assert_eq!(sparkline(&[Some(1.0), None, Some(2.0)], 2, 0.0), " █");
    assert_eq!(sparkline(&[], 3, 0.0), "   ");
}
