//! `pypm import FILE`: a PM2 ecosystem file, a Procfile or a supervisord.conf, converted into a
//! `pypm.toml` printed on stdout (SPEC §2).
//!
//! Owns format detection, the three converters and the rendering of the result. It reads the one
//! file it is given (and, for a Procfile, whether a `.env` lies beside it) and writes nothing.
//!
//! What had no equivalent is said twice: each item as a comment at the top of the printed file
//! (so it travels with the file) and a one-line count on stderr (so a terminal user sees it).
//! Mapping tables: `docs/import.md`.

mod js;
mod pm2;
mod procfile;
mod supervisord;

use std::fmt::Write as _;
use std::path::Path;

use super::Failure;

/// The formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pm2,
    Procfile,
    Supervisord,
}

impl Format {
    fn label(self) -> &'static str {
        match self {
            Format::Pm2 => "PM2 ecosystem file",
            Format::Procfile => "Procfile",
            Format::Supervisord => "supervisord config",
        }
    }
}

/// The accepted formats, for messages.
const ACCEPTED: &str = "pypm import reads a PM2 ecosystem file (`ecosystem.config.js` or `.json`), \
a `Procfile` (`name: command` lines) or a `supervisord.conf` (`[program:NAME]` sections)";

/// One converted app: its pypm name and its keys, in output order.
#[derive(Debug, Clone, PartialEq)]
pub struct AppOut {
    pub name: String,
    pub keys: Vec<(String, toml::Value)>,
}

impl AppOut {
    fn set(&mut self, key: &str, value: impl Into<toml::Value>) {
        let value = value.into();
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.keys.push((key.to_string(), value)),
        }
    }

    fn get(&self, key: &str) -> Option<&toml::Value> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// One `[profiles.PROFILE.apps.APP]` table: (profile, app, keys).
pub type ProfileApp = (String, String, Vec<(String, toml::Value)>);

/// The result of a conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub format: Format,
    pub apps: Vec<AppOut>,
    /// `[profiles.PROFILE.apps.APP]` tables: PM2's `env_<name>` blocks (profile, app, keys).
    pub profiles: Vec<ProfileApp>,
    /// What had no equivalent (or was approximated), one sentence each.
    pub notes: Vec<String>,
}

/// Why a file could not be converted (the message's first line stands alone).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportError(pub String);

pub fn import(file: &Path) -> Result<(), Failure> {
    // A device or FIFO would be read forever; a config file is a regular file.
    if let Ok(m) = std::fs::metadata(file)
        && !m.is_file()
    {
        return Err(Failure::Error(format!(
            "`{}` is not a regular file\n\n{ACCEPTED}",
            file.display()
        )));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Error(format!("cannot read `{}`: {e}", file.display())))?;
    let dir = std::path::absolute(file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let shown = file.display().to_string();
    let imported = convert(&shown, &text, &dir).map_err(|e| Failure::Error(e.0))?;
    print!("{}", render(&imported, &shown));
    let n = imported.apps.len();
    let apps = if n == 1 { "app" } else { "apps" };
    let notes = match imported.notes.len() {
        0 => "everything had a pypm equivalent".to_string(),
        1 => "1 note on what had no exact equivalent, in the comments at the top".to_string(),
        k => format!("{k} notes on what had no exact equivalent, in the comments at the top"),
    };
    eprintln!(
        "imported {n} {apps} from `{shown}` ({}); {notes}",
        imported.format.label()
    );
    Ok(())
}

/// Detects the format of `text` (named `name`, in directory `dir`) and converts it.
pub fn convert(name: &str, text: &str, dir: &Path) -> Result<Imported, ImportError> {
    let format = detect(name, text).ok_or_else(|| {
        ImportError(format!(
            "cannot tell what kind of file `{name}` is\n\n{ACCEPTED}"
        ))
    })?;
    let mut b = Builder::default();
    match format {
        Format::Pm2 => pm2::convert(name, text, dir, &mut b)?,
        Format::Procfile => procfile::convert(text, dir, &mut b),
        Format::Supervisord => supervisord::convert(text, dir, &mut b),
    }
    if b.apps.is_empty() {
        let mut msg = format!("no apps found in `{name}` ({})", format.label());
        if !b.notes.is_empty() {
            msg.push_str("\n\n");
            msg.push_str(&b.notes.join("\n"));
        }
        return Err(ImportError(msg));
    }
    Ok(Imported {
        format,
        apps: b.apps,
        profiles: b.profiles,
        notes: b.notes,
    })
}

/// The format, from the file name first, then from the content.
fn detect(name: &str, text: &str) -> Option<Format> {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name)
        .to_ascii_lowercase();
    let trimmed = text.trim_start();
    let has_program = text
        .lines()
        .any(|l| l.trim_start().starts_with("[program:"));
    if base.ends_with(".json") || base.ends_with(".js") || base.ends_with(".cjs") {
        return Some(Format::Pm2);
    }
    if base.starts_with("procfile") || base.ends_with("procfile") {
        return Some(Format::Procfile);
    }
    let first_line = trimmed.lines().next().unwrap_or("").trim();
    let ini_header = first_line.starts_with('[')
        && first_line.ends_with(']')
        && !first_line.contains(['{', '"', '\'', ',']);
    if has_program || ini_header || base.ends_with(".conf") || base.ends_with(".ini") {
        return Some(Format::Supervisord);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') || text.contains("module.exports") {
        return Some(Format::Pm2);
    }
    if procfile::looks_like(text) {
        return Some(Format::Procfile);
    }
    None
}

/// Collects the apps and notes of one conversion.
#[derive(Default)]
struct Builder {
    apps: Vec<AppOut>,
    profiles: Vec<ProfileApp>,
    notes: Vec<String>,
}

impl Builder {
    /// A new app named after `raw` (sanitized and made unique, with a note when it changed).
    fn app(&mut self, raw: &str) -> AppOut {
        let base = crate::commands::init::starter::sanitize_name(raw);
        let mut name = base.clone();
        let mut n = 2;
        while self.apps.iter().any(|a| a.name == name) {
            let suffix = format!("-{n}");
            let keep = base.len().min(64 - suffix.len());
            name = format!("{}{suffix}", &base[..keep]);
            n += 1;
        }
        if name != raw {
            self.notes.push(format!(
                "{name}: renamed from `{raw}` (app names are letters, digits, `_` and `-`)"
            ));
        }
        AppOut {
            name,
            keys: Vec::new(),
        }
    }

    fn note(&mut self, app: &str, text: impl AsRef<str>) {
        self.notes.push(format!("{app}: {}", text.as_ref()));
    }
}

/// A literal string for a key pypm expands `${VAR}` in: `$` becomes `$$`.
pub(super) fn lit(s: &str) -> String {
    s.replace('$', "$$")
}

/// `n` milliseconds as a pypm duration.
fn millis(n: u64) -> String {
    if n.is_multiple_of(1000) {
        format!("{}s", n / 1000)
    } else {
        format!("{n}ms")
    }
}

/// The CPU count, for PM2's `instances = "max"`.
fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .clamp(1, 1024)
}

/// A bare TOML key, or a quoted one when it needs quotes.
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        // A key is a one-line basic string: JSON's escapes are TOML's (a fuzzed key held a
        // newline, which a multi-line string cannot carry as a key).
        crate::commands::init::starter::toml_str(k)
    }
}

/// One value, inline.
fn toml_value(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect();
            if items.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", items.join(", "))
            }
        }
        toml::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::String(s) => crate::commands::init::starter::toml_str(s),
        other => other.to_string(),
    }
}

/// The printed `pypm.toml`: a header, what had no equivalent, then one table per app.
/// `s` as the text of a TOML comment: one line, no control characters (which TOML forbids in
/// comments), those shown as `\u{…}` escapes. Found by fuzzing (fuzz/, `import_pm2`).
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' => " ".to_string(),
            '\t' => "\t".to_string(),
            c if c.is_control() => format!("\\u{{{:04x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

pub fn render(imported: &Imported, source: &str) -> String {
    let mut out = String::new();
    let one_line = comment_text(source);
    let _ = writeln!(
        out,
        "# pypm.toml imported by `pypm import` from `{one_line}` ({}).",
        imported.format.label()
    );
    out.push_str(
        "# Relative paths are relative to this file: save it beside the imported file.\n\
         # Check it with `pypm check`, then run it with `pypm up`.\n#\n",
    );
    if imported.notes.is_empty() {
        out.push_str("# Everything in the imported file had a pypm equivalent.\n");
    } else {
        out.push_str("# Not imported, or only approximated (review these):\n");
        for note in &imported.notes {
            let _ = writeln!(out, "# - {}", comment_text(note));
        }
    }
    for app in &imported.apps {
        let _ = writeln!(out, "\n[apps.{}]", app.name);
        for (k, v) in &app.keys {
            let _ = writeln!(out, "{} = {}", toml_key(k), toml_value(v));
        }
    }
    for (profile, app, keys) in &imported.profiles {
        let _ = writeln!(out, "\n[profiles.{}.apps.{app}]", toml_key(profile));
        for (k, v) in keys {
            let _ = writeln!(out, "{} = {}", toml_key(k), toml_value(v));
        }
    }
    out
}

#[cfg(test)]
mod tests;
