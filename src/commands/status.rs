//! `pypm status [APP] [--json]`, and the small formatters other verbs share (uptime, memory,
//! tables).

use std::path::Path;

use super::Failure;
use super::client_cmds::{QUICK, Target, ask, target, unexpected};
use crate::control::protocol::{ConfigErrorInfo, Request, Response, Row, StatusReport};

pub fn status(config: Option<&Path>, app: Option<String>, json: bool) -> Result<(), Failure> {
    let t = target(config)?;
    let mut report = fetch(&t, app.clone())?;
    if let Some(app) = &app {
        // Whether or not the supervisor filtered, show only this app.
        report.instances.retain(|r| &r.app == app);
        if report.instances.is_empty() {
            let known = fetch(&t, None)?;
            return Err(unknown_app(app, &known.instances));
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Error(format!("cannot encode the status: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

fn fetch(t: &Target, app: Option<String>) -> Result<StatusReport, Failure> {
    match ask(t, Request::Status { app, light: false }, QUICK)? {
        Response::Status(r) => Ok(r),
        other => Err(unexpected("status", &other)),
    }
}

pub(super) fn unknown_app(app: &str, rows: &[Row]) -> Failure {
    let mut names: Vec<&str> = rows.iter().map(|r| r.app.as_str()).collect();
    names.dedup();
    let mut msg = format!("no app named `{app}`");
    if let Some(hint) = crate::diagnostic::did_you_mean(app, names) {
        msg.push_str(&format!("\n\n{hint}"));
    }
    Failure::Error(msg)
}

/// The human status: a config error line when the file is broken, then the table.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    if !report.profiles.is_empty() {
        out.push_str(&format!("profiles: {}\n", report.profiles.join(", ")));
    }
    if let Some(e) = &report.config_error {
        out.push_str(&config_error_line(e));
        out.push('\n');
    }
    if report.instances.is_empty() {
        out.push_str("no apps\n");
        return out;
    }
    let with_reason = report.instances.iter().any(|r| r.reason.is_some());
    let mut header = vec![
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "MEM", "READY",
    ];
    if with_reason {
        header.push("REASON");
    }
    let rows: Vec<Vec<String>> = report
        .instances
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.name.clone(),
                r.state.as_str().to_string(),
                opt(r.pid),
                r.uptime_secs.map_or_else(dash, uptime),
                r.restarts.to_string(),
                r.cpu_percent.map_or_else(dash, |c| format!("{c:.1}%")),
                r.memory_bytes.map_or_else(dash, memory),
                if r.ready { "yes" } else { "no" }.to_string(),
            ];
            if with_reason {
                cells.push(r.reason.clone().unwrap_or_else(dash));
            }
            cells
        })
        .collect();
    out.push_str(&table(&header, &rows));
    out
}

pub(super) fn config_error_line(e: &ConfigErrorInfo) -> String {
    let at = match (e.line, e.column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    };
    format!(
        "config error: {}{at} — still running the last valid file",
        e.message
    )
}

fn dash() -> String {
    "-".to_string()
}

pub(super) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(dash, |v| v.to_string())
}

/// `3s`, `5m12s`, `2h03m`, `4d01h`.
pub fn uptime(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `512B`, `4.0K`, `12.3M`, `1.5G` (powers of 1024, like the file's sizes).
pub fn memory(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// Left-aligned columns two spaces apart; no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    // Character counts once per cell (3,000 rows: no second pass, no line buffers).
    let count = |s: &str| {
        if s.is_ascii() {
            s.len()
        } else {
            s.chars().count()
        }
    };
    let mut widths: Vec<usize> = header.iter().map(|h| count(h)).collect();
    let mut total = 0;
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(count(cell));
            }
        }
    }
    for w in &widths {
        total += w + 2;
    }
    let mut out = String::with_capacity(total * (rows.len() + 1));
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let start = out.len();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0);
            for _ in count(cell)..pad {
                out.push(' ');
            }
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::LastExit;

    fn row(name: &str, state: &str) -> Row {
        Row {
            name: name.into(),
            app: name.split('.').next().unwrap_or(name).into(),
            instance: 0,
            state: state.into(),
            pid: None,
            uptime_secs: None,
            restarts: 0,
            cpu_percent: None,
            memory_bytes: None,
            ready: false,
            reason: None,
            last_exit: None,
        }
    }

    #[test]
    fn uptimes() {
        let cases = [
            (0.0, "0s"),
            (3.7, "3s"),
            (59.9, "59s"),
            (60.0, "1m00s"),
            (312.0, "5m12s"),
            (3600.0, "1h00m"),
            (7380.0, "2h03m"),
            (86400.0 * 4.0 + 3600.0, "4d01h"),
            (-1.0, "0s"),
            (f64::NAN, "0s"),
        ];
        for (secs, want) in cases {
            assert_eq!(uptime(secs), want, "{secs}");
        }
    }

    #[test]
    fn memories() {
        let cases = [
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1.0K"),
            (12_897_485, "12.3M"),
            (1536 * 1024 * 1024, "1.5G"),
        ];
        for (bytes, want) in cases {
            assert_eq!(memory(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn table_without_reasons() {
        let mut api = row("api.0", "running");
        api.pid = Some(4242);
        api.uptime_secs = Some(312.4);
        api.restarts = 1;
        api.cpu_percent = Some(2.04);
        api.memory_bytes = Some(12_897_485);
        api.ready = true;
        let report = StatusReport {
            profiles: Vec::new(),
            config_file: "pypm.toml".into(),
            config_error: None,
            instances: vec![api, row("worker", "waiting")],
        };
        insta::assert_snapshot!(render(&report), @r"
        NAME    STATE    PID   UPTIME  RESTARTS  CPU   MEM    READY
        api.0   running  4242  5m12s   1         2.0%  12.3M  yes
        worker  waiting  -     -       0         -     -      no
        ");
    }

    #[test]
    fn table_with_reason_and_config_error() {
        let mut web = row("web", "failed");
        web.restarts = 10;
        web.reason = Some("max_restarts reached (exit 1)".into());
        web.last_exit = Some(LastExit {
            code: Some(1),
            signal: None,
            at: "2026-01-01T00:00:00Z".into(),
        });
        let report = StatusReport {
            profiles: Vec::new(),
            config_file: "pypm.toml".into(),
            config_error: Some(ConfigErrorInfo {
                message: "unknown key `comand`".into(),
                line: Some(3),
                column: Some(1),
            }),
            instances: vec![web, row("db", "running")],
        };
        insta::assert_snapshot!(render(&report), @r"
        config error: unknown key `comand` (line 3, column 1) — still running the last valid file
        NAME  STATE    PID  UPTIME  RESTARTS  CPU  MEM  READY  REASON
        web   failed   -    -       10        -    -    no     max_restarts reached (exit 1)
        db    running  -    -       0         -    -    no     -
        ");
    }

    #[test]
    fn table_pads_by_characters_and_trims_line_ends() {
        let rows = vec![
            vec!["é".to_string(), "x".to_string()],
            vec!["ab".to_string(), "y ".to_string()],
        ];
        assert_eq!(table(&["A", "B"], &rows), "A   B\né   x\nab  y\n");
    }

    #[test]
    fn unknown_app_suggests_a_near_name() {
        let f = unknown_app("wrker", &[row("api", "running"), row("worker", "running")]);
        assert_eq!(f.exit_code(), 1);
        assert_eq!(
            f.to_string(),
            "error: no app named `wrker`\n\ndid you mean `worker`?"
        );
    }

    #[test]
    fn json_keeps_spec_key_order() {
        let report = StatusReport {
            profiles: Vec::new(),
            config_file: "pypm.toml".into(),
            config_error: None,
            instances: vec![row("api", "stopped")],
        };
        let text = serde_json::to_string(&report).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"config_file":"pypm.toml","config_error":null,"instances":[{"name":"api","app":"api","instance":0,"state":"stopped","pid":null,"uptime_secs":null,"restarts":0,"cpu_percent":null,"memory_bytes":null,"ready":false,"reason":null,"last_exit":null}]}"#
        );
    }
}
