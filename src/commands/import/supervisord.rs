//! supervisord configuration: the `[program:NAME]` sections of an INI file.

use std::path::Path;

use super::{Builder, lit};

/// One INI section: its name and its `key = value` pairs in order (continuation lines joined).
struct Section {
    name: String,
    pairs: Vec<(String, String)>,
}

/// Reads INI as supervisord's parser does: `;`/`#` comment lines, ` ;` inline comments, `=` or `:`
/// between key and value, indented lines continuing the previous value.
fn parse_ini(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        let line = strip_inline_comment(trimmed);
        if raw.starts_with([' ', '\t'])
            && let Some(last) = sections.last_mut().and_then(|s| s.pairs.last_mut())
        {
            last.1.push('\n');
            last.1.push_str(line);
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section {
                name: name.trim().to_string(),
                pairs: Vec::new(),
            });
            continue;
        }
        let Some(cut) = line.find(['=', ':']) else {
            continue;
        };
        if let Some(section) = sections.last_mut() {
            let key = line[..cut].trim().to_ascii_lowercase();
            section
                .pairs
                .push((key, line[cut + 1..].trim().to_string()));
        }
    }
    sections
}

/// Drops a `;` comment that follows whitespace.
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b';' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return line[..i].trim_end();
        }
    }
    line
}

/// What `%(...)s` expands to for one program.
struct Expansions<'a> {
    program: &'a str,
    here: &'a str,
    numprocs: u32,
    numprocs_start: u32,
}

/// The result of expanding one value.
struct Expanded {
    /// The value as a pypm string (`$` already escaped as `$$`; `%(ENV_X)s` → `${X}`).
    text: String,
    uses_process_num: bool,
    unknown: Vec<String>,
}

impl Expansions<'_> {
    /// Expands `%(name)s` / `%(name)d` (with optional width flags) and `%%`.
    fn expand(&self, value: &str) -> Expanded {
        let mut out = Expanded {
            text: String::new(),
            uses_process_num: false,
            unknown: Vec::new(),
        };
        let mut rest = value;
        while let Some(pos) = rest.find('%') {
            out.text.push_str(&lit(&rest[..pos]));
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                out.text.push('%');
                rest = tail;
                continue;
            }
            let parsed = after.strip_prefix('(').and_then(|inner| {
                let close = inner.find(')')?;
                let key = &inner[..close];
                let spec = &inner[close + 1..];
                let conv = spec.find(['s', 'd'])?;
                spec[..conv]
                    .chars()
                    .all(|c| c.is_ascii_digit() || "-#0 +".contains(c))
                    .then_some((key, 1 + close + 1 + conv + 1))
            });
            let Some((key, consumed)) = parsed else {
                out.text.push('%');
                rest = after;
                continue;
            };
            match key {
                "program_name" | "group_name" => out.text.push_str(&lit(self.program)),
                "here" => out.text.push_str(&lit(self.here)),
                "numprocs" => out.text.push_str(&self.numprocs.to_string()),
                "process_num" => {
                    out.uses_process_num = true;
                    if self.numprocs_start == 0 {
                        out.text.push_str("$$PYPM_INSTANCE");
                    } else {
                        out.text
                            .push_str(&format!("$$((PYPM_INSTANCE + {}))", self.numprocs_start));
                    }
                }
                k if k.starts_with("ENV_") && k.len() > 4 => {
                    out.text.push_str(&format!("${{{}}}", &k[4..]));
                }
                k => {
                    out.unknown.push(k.to_string());
                    out.text.push_str(&lit(&rest[pos..pos + 1 + consumed]));
                }
            }
            rest = &after[consumed..];
        }
        out.text.push_str(&lit(rest));
        out
    }
}

pub fn convert(text: &str, dir: &Path, b: &mut Builder) {
    let here = dir.display().to_string();
    let mut skipped: Vec<String> = Vec::new();
    for section in parse_ini(text) {
        if let Some(name) = section.name.strip_prefix("program:") {
            program(name.trim(), &section.pairs, &here, b);
        } else if section.name.starts_with("group:") {
            b.notes.push(format!(
                "[{}]: pypm has no groups; `pypm restart APP` acts per app, `depends_on` orders them",
                section.name
            ));
        } else if section.name == "include" {
            b.notes.push(
                "[include]: included files are not read; import each one and merge the apps"
                    .to_string(),
            );
        } else if section.name.starts_with("eventlistener:")
            || section.name.starts_with("fcgi-program:")
        {
            b.notes.push(format!(
                "[{}]: not imported (no pypm equivalent)",
                section.name
            ));
        } else {
            skipped.push(format!("[{}]", section.name));
        }
    }
    if !skipped.is_empty() {
        b.notes.push(format!(
            "{}: supervisord's own settings, not imported (pypm's are in [pypm])",
            skipped.join(", ")
        ));
    }
}

fn program(raw_name: &str, pairs: &[(String, String)], here: &str, b: &mut Builder) {
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(command) = get("command") else {
        b.notes
            .push(format!("[program:{raw_name}]: no `command`; skipped"));
        return;
    };
    let mut app = b.app(raw_name);
    let name = app.name.clone();
    let mut notes: Vec<String> = Vec::new();
    let numprocs = get("numprocs")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1);
    let numprocs_start = get("numprocs_start")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    let x = Expansions {
        program: raw_name,
        here,
        numprocs,
        numprocs_start,
    };
    let expand = |key: &str, value: &str, notes: &mut Vec<String>| {
        let e = x.expand(value);
        for k in &e.unknown {
            notes.push(format!(
                "`{key}` uses `%({k})s`, which pypm cannot expand; left as is"
            ));
        }
        if e.uses_process_num && key != "command" {
            notes.push(format!(
                "`{key}` uses `%(process_num)d`; pypm sets it only as $PYPM_INSTANCE in the environment"
            ));
        }
        e
    };

    let cmd = expand("command", command, &mut notes);
    if cmd.uses_process_num {
        // The instance number is known only at run time: let a shell substitute it.
        app.set(
            "command",
            vec!["sh".to_string(), "-c".into(), format!("exec {}", cmd.text)],
        );
        notes.push(
            "`%(process_num)d` in `command` became $PYPM_INSTANCE, through `sh -c`".to_string(),
        );
    } else {
        app.set("command", cmd.text);
    }
    if let Some(d) = get("directory") {
        app.set("cwd", expand("directory", d, &mut notes).text);
    }
    if numprocs > 1 {
        app.set("instances", i64::from(numprocs.min(1024)));
    }

    // supervisord's default `autorestart` is `unexpected`, pypm's is `always`: say it.
    let restart = match get("autorestart").map(str::to_ascii_lowercase).as_deref() {
        Some("true") => Some("always"),
        Some("false") => Some("never"),
        Some("unexpected") | None => Some("on-failure"),
        Some(other) => {
            notes.push(format!(
                "`autorestart = {other}` is not true, false or unexpected; not imported"
            ));
            None
        }
    };
    if let Some(r) = restart.filter(|r| *r != "always") {
        app.set("restart", r);
    }

    for (key, value) in pairs {
        let key = key.as_str();
        let value = value.trim();
        match key {
            "command" | "directory" | "numprocs" | "autorestart" | "process_name" => {}
            "numprocs_start" => {}
            "environment" => match parse_environment(value) {
                Some(vars) => {
                    let mut env = toml::Table::new();
                    for (k, v) in vars {
                        let v = expand("environment", &v, &mut notes).text;
                        env.insert(k, toml::Value::String(v));
                    }
                    app.set("env", env);
                }
                None => notes.push(format!("`environment = {value}` could not be read; not imported")),
            },
            "autostart" => match bool_value(value) {
                Some(false) => app.set("enabled", false),
                Some(true) => {}
                None => notes.push(format!("`autostart = {value}` is not a boolean; not imported")),
            },
            "startsecs" | "stopwaitsecs" => match value.parse::<u64>() {
                Ok(n) => app.set(
                    if key == "startsecs" { "min_uptime" } else { "stop_timeout" },
                    format!("{n}s"),
                ),
                Err(_) => notes.push(format!("`{key} = {value}` is not a number of seconds; not imported")),
            },
            "startretries" => match value.parse::<i64>() {
                Ok(n) if (0..=1_000_000).contains(&n) => app.set("max_restarts", n),
                _ => notes.push(format!("`startretries = {value}` is not a count; not imported")),
            },
            "exitcodes" => {
                let codes: Result<Vec<i64>, _> =
                    value.split(',').map(|c| c.trim().parse::<i64>()).collect();
                match codes {
                    Ok(c) if c.iter().all(|n| (0..=255).contains(n)) => {
                        if c != [0] {
                            app.set("success_exit_codes", c);
                        }
                    }
                    _ => notes.push(format!("`exitcodes = {value}` not imported")),
                }
            }
            "stopsignal" => {
                let upper = value.to_ascii_uppercase();
                let sig = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
                if sig != "SIGTERM" {
                    app.set("stop_signal", sig);
                }
            }
            "stopasgroup" | "killasgroup" => {} // pypm always signals the whole process group
            "user" => app.set("user", expand("user", value, &mut notes).text),
            "priority" => notes.push(format!(
                "`priority = {value}` has no equivalent: to order starts, use `depends_on`"
            )),
            "stdout_logfile_maxbytes" | "stderr_logfile_maxbytes" | "logfile_maxbytes" => {
                match size(value) {
                    Some(s) if key.starts_with("stdout") || app.get("log_max_size").is_none() => {
                        app.set("log_max_size", s);
                    }
                    Some(_) => {}
                    None => notes.push(format!("`{key} = {value}` is not a size; not imported")),
                }
            }
            "stdout_logfile_backups" | "stderr_logfile_backups" => match value.parse::<i64>() {
                Ok(n) if (0..=1000).contains(&n)
                    && (key.starts_with("stdout") || app.get("log_max_files").is_none()) =>
                {
                    app.set("log_max_files", n);
                }
                Ok(_) => {}
                Err(_) => notes.push(format!("`{key} = {value}` is not a count; not imported")),
            },
            "stdout_logfile" | "stderr_logfile" | "redirect_stderr" => notes.push(format!(
                "`{key} = {value}` not imported: logs go to `log_dir` as {name}.out.log and {name}.err.log"
            )),
            k => notes.push(format!("`{k} = {value}` has no pypm equivalent")),
        }
    }
    for n in notes {
        b.note(&name, n);
    }
    b.apps.push(app);
}

fn bool_value(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A supervisord size (`50MB`, `1KB`, `1GB`, bytes) as a pypm size.
fn size(v: &str) -> Option<String> {
    let upper = v.trim().to_ascii_uppercase();
    let text = upper.strip_suffix('B').unwrap_or(&upper);
    crate::config::units::parse_size(text).ok()?;
    Some(text.to_string())
}

/// `KEY="val",KEY2=val2` (quotes allow commas; whitespace and newlines between pairs ignored).
fn parse_environment(value: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains([',', '"', '\'']) {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let val;
        if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let end = rest[1..].find(q)?;
            val = rest[1..1 + end].to_string();
            rest = rest[end + 2..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            val = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        out.push((key.to_string(), val));
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
pub fn parse_environment_for_tests(value: &str) -> Option<Vec<(String, String)>> {
    parse_environment(value)
}
