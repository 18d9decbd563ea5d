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
                    .then_some((key, &spec[..=conv], 1 + close + 1 + conv + 1))
            });
            let Some((key, format, consumed)) = parsed else {
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
                    let n = if self.numprocs_start == 0 {
                        "$$PYPM_INSTANCE".to_string()
                    } else {
                        format!("$$((PYPM_INSTANCE + {}))", self.numprocs_start)
                    };
                    if format.len() > 1 {
                        // `%(process_num)02d` keeps its padding: printf formats it the same way.
                        let f = format.replace('s', "d");
                        out.text.push_str(&format!("$$(printf '%{f}' {n})"));
                    } else {
                        out.text.push_str(&n);
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

/// The largest included file read (supervisord configs are a few KiB).
const MAX_INCLUDE: u64 = 4 << 20;

pub fn convert(text: &str, dir: &Path, b: &mut Builder) {
    let mut sections = parse_ini(text);
    // `[include] files = a.conf conf.d/*.conf`: globs relative to the including file, read as
    // supervisord does (their sections join the main file's).
    let includes: Vec<String> = sections
        .iter()
        .filter(|s| s.name == "include")
        .flat_map(|s| s.pairs.iter().filter(|(k, _)| k == "files"))
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for pattern in includes {
        let full = if Path::new(&pattern).is_absolute() {
            std::path::PathBuf::from(&pattern)
        } else {
            dir.join(&pattern)
        };
        let mut found: Vec<std::path::PathBuf> = glob::glob(&full.to_string_lossy())
            .map(|g| g.filter_map(Result::ok).collect())
            .unwrap_or_default();
        found.sort();
        if found.is_empty() {
            b.notes.push(format!(
                "[include] `{pattern}`: no such file here; its programs are not imported"
            ));
        }
        for f in found {
            // Regular files of a sane size only: a pattern that names `/dev/zero`, a FIFO or a
            // huge file must not hang or exhaust the importer (a fuzzing finding).
            let meta = std::fs::metadata(&f);
            if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                b.notes.push(format!(
                    "[include] `{}` is not a regular file; not read",
                    f.display()
                ));
                continue;
            }
            if meta.as_ref().is_ok_and(|m| m.len() > MAX_INCLUDE) {
                b.notes.push(format!(
                    "[include] `{}` is larger than {} MiB; not read",
                    f.display(),
                    MAX_INCLUDE >> 20
                ));
                continue;
            }
            match std::fs::read_to_string(&f) {
                Ok(t) => sections.extend(parse_ini(&t).into_iter().filter(|s| s.name != "include")),
                Err(e) => b.notes.push(format!("[include] `{}`: {e}", f.display())),
            }
        }
    }
    // `[supervisord] directory =` is where supervisord chdirs before starting programs.
    let base_dir = sections
        .iter()
        .filter(|s| s.name == "supervisord")
        .flat_map(|s| s.pairs.iter())
        .rev()
        .find(|(k, _)| k == "directory")
        .map(|(_, v)| v.clone());
    // `%(here)s` is the config file's directory: pypm's paths are relative to pypm.toml, written
    // beside it, so it stays relative (`.`) rather than this machine's absolute path.
    let here = ".".to_string();
    let _ = dir;
    let mut skipped: Vec<String> = Vec::new();
    let mut said_here = false;
    for section in &sections {
        if let Some(name) = section.name.strip_prefix("program:") {
            if !said_here && section.pairs.iter().any(|(_, v)| v.contains("%(here)s")) {
                b.notes.push("`%(here)s` became `.`: the directory of pypm.toml, written next to the supervisord file".into());
                said_here = true;
            }
            program(name.trim(), &section.pairs, &here, base_dir.as_deref(), b);
        } else if section.name.starts_with("group:") {
            b.notes.push(format!(
                "[{}]: pypm has no groups; `pypm restart APP` acts per app, `depends_on` orders them",
                section.name
            ));
        } else if section.name == "include" {
        } else if section.name.starts_with("eventlistener:") {
            let memmon = section
                .pairs
                .iter()
                .find(|(k, _)| k == "command")
                .is_some_and(|(_, v)| v.contains("memmon"));
            if memmon {
                b.notes.push(format!(
                    "[{}]: superlance memmon restarts programs over a memory size: set `memory_max` on those apps (pypm enforces it itself)",
                    section.name
                ));
            } else {
                b.notes.push(format!(
                    "[{}]: not imported (no pypm equivalent)",
                    section.name
                ));
            }
        } else if section.name.starts_with("fcgi-program:") {
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

fn program(
    raw_name: &str,
    pairs: &[(String, String)],
    here: &str,
    base_dir: Option<&str>,
    b: &mut Builder,
) {
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
    if let Err(e) = shell_words::split(&cmd.text) {
        // supervisord refuses such a program too; never import a different command.
        b.notes.push(format!(
            "[program:{raw_name}]: `command` cannot be split into words ({e}); skipped"
        ));
        return;
    }
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
    if let Some(d) = get("directory").or(base_dir) {
        app.set("cwd", expand("directory", d, &mut notes).text);
    }
    let mut log_notes: Vec<String> = Vec::new();
    let mut log_keys: Vec<String> = Vec::new();
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
                    Some(s) if s == "0" => log_notes.push(format!(
                        "`{key} = 0` (never rotate) not imported: pypm always rotates (`log_max_size`, default 10M)"
                    )),
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
            "stdout_logfile" | "stderr_logfile"
                if matches!(value, "/dev/stdout" | "/dev/fd/1" | "/dev/stderr" | "/dev/fd/2") =>
            {
                log_notes.push(format!(
                    "`{key} = {value}` sent the output to supervisord's own; pypm has no such mode: it goes to `log_dir` (follow it with `pypm logs -f {name}`)"
                ));
            }
            "stdout_logfile" | "stderr_logfile" | "redirect_stderr" => {
                log_keys.push(format!("`{key}`"));
            }
            k => notes.push(format!("`{k} = {value}` has no pypm equivalent")),
        }
    }
    // One note for the log file keys of a program.
    if !log_keys.is_empty() {
        notes.push(format!(
            "{} not imported: logs go to `log_dir` as {name}.out.log and {name}.err.log",
            log_keys.join(", ")
        ));
    }
    notes.extend(log_notes);
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
