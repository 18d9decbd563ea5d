//! `pypm init`: a commented starter `pypm.toml` for a directory (SPEC §2).
//!
//! Owns only detection and text generation. [`starter_toml`] is pure apart from reading the
//! directory; [`write_starter`] is the one place that writes, and it never overwrites.
//!
//! Detection, in order of precedence for the apps:
//! - a `Procfile`: one app per `name: command` line (a `release` line becomes a task the others
//!   wait for);
//! - `manage.py`: Django's development server as app `web`;
//! - `app.py`, else `main.py`: a `script` app;
//! - nothing: an `http.server` example app, so `pypm up` works at once.
//!
//! Independently, a `.venv/` (else `venv/`) directory becomes `[environments.app]`, used by every
//! app.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Name of the environment `init` declares when it finds a virtualenv.
const ENV_NAME: &str = "app";

/// The file `init` writes.
pub const FILE_NAME: &str = "pypm.toml";

/// Returns the text of a starter `pypm.toml` for `dir`.
pub fn starter_toml(dir: &Path) -> String {
    let venv = [".venv", "venv"]
        .into_iter()
        .find(|name| dir.join(name).is_dir());
    let procfile = fs::read_to_string(dir.join("Procfile"))
        .ok()
        .map(|text| parse_procfile(&text))
        .filter(|entries| !entries.is_empty());

    let mut detected = Vec::new();
    if let Some(v) = venv {
        detected.push(format!("virtualenv `{v}`"));
    }
    let apps = if let Some(entries) = procfile {
        detected.push(format!("`Procfile` ({} process types)", entries.len()));
        Apps::Procfile(entries)
    } else if dir.join("manage.py").is_file() {
        detected.push("Django `manage.py`".to_string());
        Apps::Django
    } else if let Some(script) = ["app.py", "main.py"]
        .into_iter()
        .find(|f| dir.join(f).is_file())
    {
        detected.push(format!("`{script}`"));
        Apps::Script(script)
    } else {
        Apps::Example
    };

    let mut out = String::new();
    header(&mut out, &detected);
    if let Some(v) = venv {
        out.push_str(
            "# The virtualenv the apps below run in: pypm sets VIRTUAL_ENV and puts its\n",
        );
        out.push_str("# bin/ first on PATH, so `python`, `gunicorn` etc. resolve inside it.\n");
        let _ = writeln!(out, "[environments.{ENV_NAME}]\nvenv = {}\n", toml_str(v));
    }
    let env_line = venv.map(|_| format!("environment = {}\n", toml_str(ENV_NAME)));
    let env_line = env_line.as_deref().unwrap_or("");
    match apps {
        Apps::Procfile(entries) => procfile_apps(&mut out, &entries, env_line),
        Apps::Django => django_app(&mut out, env_line),
        Apps::Script(script) => {
            let name = script.trim_end_matches(".py");
            let _ = writeln!(
                out,
                "# Runs `python {script}` with the interpreter pypm resolves."
            );
            let _ = write!(
                out,
                "[apps.{name}]\nscript = {}\n{env_line}",
                toml_str(script)
            );
            hints(&mut out);
        }
        Apps::Example => {
            out.push_str("# An example app: serves this directory on http://127.0.0.1:8000.\n");
            out.push_str("# Replace `command` with your own, or use `script = \"app.py\"` or\n");
            out.push_str("# `module = \"package.module\"` instead.\n");
            let _ = write!(
                out,
                "[apps.web]\ncommand = {}\n{env_line}",
                toml_str("python3 -m http.server 8000 --bind 127.0.0.1")
            );
            hints(&mut out);
            out.push_str("\n# Counts as ready once a TCP connection succeeds.\n");
            out.push_str("[apps.web.ready]\ntcp = \"127.0.0.1:8000\"\n");
        }
    }
    out
}

/// Writes [`starter_toml`] to `dir/pypm.toml` and returns that path. An existing file is never
/// overwritten: the error then has kind [`io::ErrorKind::AlreadyExists`].
pub fn write_starter(dir: &Path) -> Result<PathBuf, io::Error> {
    write_starter_at(&dir.join(FILE_NAME))
}

/// Like [`write_starter`], to the file `path` (what is detected is looked for in its directory).
pub fn write_starter_at(path: &Path) -> Result<PathBuf, io::Error> {
    let path = path.to_path_buf();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let text = starter_toml(&dir);
    // create_new: the existence check and the creation are one atomic step.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.write_all(text.as_bytes())?;
    Ok(path)
}

enum Apps {
    Procfile(Vec<ProcEntry>),
    Django,
    Script(&'static str),
    Example,
}

struct ProcEntry {
    name: String,
    command: String,
}

fn header(out: &mut String, detected: &[String]) {
    out.push_str("# pypm.toml: the apps pypm keeps running for this directory.\n");
    out.push_str("# Generated by `pypm init`");
    if detected.is_empty() {
        out.push_str(" (nothing detected: an example app).\n");
    } else {
        let _ = writeln!(out, "; detected {}.", detected.join(", "));
    }
    out.push_str(
        "#
# pypm check   validate this file (exit 0 valid, 1 invalid)
# pypm up      run everything in the foreground; Ctrl-C stops it all (-d: detach)
# pypm status  one row per instance; `pypm logs APP -f` follows its output
#
# Relative paths are relative to this file. Editor completion: run
# `pypm schema > pypm.schema.json` and make `#:schema ./pypm.schema.json`
# the first line of this file.

# Supervisor-wide settings; all optional, the defaults are shown.
# [pypm]
# state_dir = \".pypm\"           # control socket, state, pid file
# log_dir = \".pypm/logs\"        # APP.out.log and APP.err.log per app
# watch_config = true           # apply this file whenever it is saved

",
    );
}

/// Commented hints for common keys, placed inside the app table they apply to.
fn hints(out: &mut String) {
    out.push_str(
        "# Common keys (uncomment to use):
# cwd = \"src\"                   # working directory (default: this file's directory)
# env = { DEBUG = \"0\" }         # extra environment variables
# env_file = \".env\"             # KEY=VALUE lines, loaded before `env`
# instances = 2                 # N copies, each with PYPM_INSTANCE=0..N-1
# restart = \"on-failure\"        # always (default for services) | on-failure | never
# depends_on = [\"db\"]           # start after these apps, or { db = \"ready\" }
# stop_timeout = \"10s\"          # SIGTERM, then SIGKILL to the process group
# log_timestamps = true         # prefix each log line with an RFC 3339 time
# revision = \"1\"                # change it to restart the app (a deploy trigger)
",
    );
}

fn django_app(out: &mut String, env_line: &str) {
    out.push_str(
        "# Django's development server. --noreload because pypm supervises the process
# (to restart on code changes, use `watch = [\"**/*.py\"]`). In production run
# gunicorn or uvicorn instead.
[apps.web]
script = \"manage.py\"
args = [\"runserver\", \"127.0.0.1:8000\", \"--noreload\"]
",
    );
    out.push_str(env_line);
    out.push_str("# depends_on = { migrate = \"completed\" }   # with [apps.migrate] below\n");
    hints(out);
    out.push_str(
        "
# Counts as ready once a TCP connection succeeds.
[apps.web.ready]
tcp = \"127.0.0.1:8000\"

# Apply migrations before the server starts: uncomment this app and the
# depends_on line in [apps.web].
# [apps.migrate]
# script = \"manage.py\"
# args = [\"migrate\", \"--noinput\"]
",
    );
    if !env_line.is_empty() {
        let _ = write!(out, "# {env_line}");
    }
    out.push_str("# kind = \"task\"\n");
}

fn procfile_apps(out: &mut String, entries: &[ProcEntry], env_line: &str) {
    let has_release = entries.iter().any(|e| e.name == "release");
    let mut port_index = 0;
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (command, vars) = brace_vars(&entry.command);
        let _ = writeln!(out, "# Procfile: {}", entry.command.replace('\n', " "));
        let _ = writeln!(out, "[apps.{}]", entry.name);
        if needs_shell(&command) {
            out.push_str("# run through sh: the Procfile line uses shell syntax\n");
            let _ = writeln!(out, "command = [\"sh\", \"-c\", {}]", toml_str(&command));
        } else {
            let _ = writeln!(out, "command = {}", toml_str(&command));
        }
        out.push_str(env_line);
        if entry.name == "release" {
            out.push_str(
                "kind = \"task\"                 # runs once; the other apps wait for it\n",
            );
        } else if has_release {
            out.push_str("depends_on = { release = \"completed\" }\n");
        }
        if vars.iter().any(|v| v == "PORT") {
            // Like foreman: 5000, 5100, ... for each process type that uses $PORT.
            let port = 5000 + 100 * port_index;
            port_index += 1;
            let _ = writeln!(out, "env = {{ PORT = \"{port}\" }}");
        }
        for var in vars.iter().filter(|v| *v != "PORT") {
            let _ = writeln!(
                out,
                "# ${{{var}}} must be set: in pypm's environment, `env` or an `env_file`"
            );
        }
        if i == 0 {
            hints(out);
        }
    }
}

/// `name: command` lines; blank lines and `#` comments skipped; names sanitized and made unique.
fn parse_procfile(text: &str) -> Vec<ProcEntry> {
    let mut entries: Vec<ProcEntry> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = line.split_once(':') else {
            continue;
        };
        let command = command.trim();
        if command.is_empty() {
            continue;
        }
        let base = sanitize_name(name.trim());
        let mut name = base.clone();
        let mut n = 2;
        while entries.iter().any(|e| e.name == name) {
            let suffix = format!("-{n}");
            let keep = base.len().min(64 - suffix.len());
            name = format!("{}{suffix}", &base[..keep]);
            n += 1;
        }
        entries.push(ProcEntry {
            name,
            command: command.to_string(),
        });
    }
    entries
}

/// Maps a name onto `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`: other characters become `-`, leading
/// characters that are not alphanumeric are dropped, the rest is cut at 64; empty gives `app`.
pub(crate) fn sanitize_name(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let name: String = trimmed.chars().take(64).collect();
    if name.is_empty() {
        "app".to_string()
    } else {
        name
    }
}

/// Procfile commands use `$VAR`; pypm expands `${VAR}` and reads a lone `$` as `$$`. Returns the
/// rewritten command and the variable names it refers to.
pub(crate) fn brace_vars(command: &str) -> (String, Vec<String>) {
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(command.len());
    let mut vars: Vec<String> = Vec::new();
    let mut rest = command;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) if !inner[..end].is_empty() && inner[..end].chars().all(is_name) => {
                    (Some(&inner[..end]), end + 2)
                }
                _ => (None, 0),
            }
        } else if after.starts_with(is_start) {
            let end = after.find(|c| !is_name(c)).unwrap_or(after.len());
            (Some(&after[..end]), end)
        } else {
            (None, 0)
        };
        match name {
            Some(name) => {
                let _ = write!(out, "${{{name}}}");
                if !vars.iter().any(|v| v == name) {
                    vars.push(name.to_string());
                }
            }
            None => out.push_str("$$"),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    (out, vars)
}

/// Whether a command needs a shell: pypm runs commands without one.
pub(crate) fn needs_shell(command: &str) -> bool {
    command.contains(['|', '&', ';', '<', '>', '`']) || command.contains("$(")
}

/// A TOML basic string.
pub(crate) fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)], dirs: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in dirs {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    /// Parses the output as TOML and returns the `apps` table.
    fn apps(text: &str) -> toml::Table {
        let doc: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        doc["apps"].as_table().expect("an [apps] table").clone()
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l.trim_end() == line)
    }

    #[test]
    fn empty_dir_gets_example_app_and_commented_sections() {
        let dir = dir_with(&[], &[]);
        let text = starter_toml(dir.path());
        assert!(has_line(
            &text,
            "command = \"python3 -m http.server 8000 --bind 127.0.0.1\""
        ));
        assert!(has_line(&text, "# [pypm]"));
        assert!(has_line(
            &text,
            "# env_file = \".env\"             # KEY=VALUE lines, loaded before `env`"
        ));
        assert!(!text.contains("[environments"));
        let apps = apps(&text);
        assert_eq!(apps.keys().collect::<Vec<_>>(), ["web"]);
        assert_eq!(apps["web"]["ready"]["tcp"].as_str(), Some("127.0.0.1:8000"));
    }

    #[test]
    fn dot_venv_declares_environment_used_by_apps() {
        let dir = dir_with(&[("app.py", "")], &[".venv", "venv"]);
        let text = starter_toml(dir.path());
        assert!(has_line(&text, "[environments.app]"));
        assert!(has_line(&text, "venv = \".venv\""));
        let apps = apps(&text);
        assert_eq!(apps["app"]["script"].as_str(), Some("app.py"));
        assert_eq!(apps["app"]["environment"].as_str(), Some("app"));
    }

    #[test]
    fn plain_venv_dir_is_detected() {
        let dir = dir_with(&[("main.py", "")], &["venv"]);
        let text = starter_toml(dir.path());
        assert!(has_line(&text, "venv = \"venv\""));
        let apps = apps(&text);
        assert_eq!(apps["main"]["script"].as_str(), Some("main.py"));
        assert_eq!(apps["main"]["environment"].as_str(), Some("app"));
    }

    #[test]
    fn app_py_wins_over_main_py() {
        let dir = dir_with(&[("app.py", ""), ("main.py", "")], &[]);
        let text = starter_toml(dir.path());
        let apps = apps(&text);
        assert_eq!(apps.keys().collect::<Vec<_>>(), ["app"]);
        assert!(!text.contains("environment = "));
    }

    #[test]
    fn manage_py_gives_django_web_app() {
        let dir = dir_with(&[("manage.py", ""), ("app.py", "")], &[".venv"]);
        let text = starter_toml(dir.path());
        assert!(has_line(&text, "script = \"manage.py\""));
        assert!(has_line(
            &text,
            "args = [\"runserver\", \"127.0.0.1:8000\", \"--noreload\"]"
        ));
        assert!(has_line(&text, "# [apps.migrate]"));
        let apps = apps(&text);
        assert_eq!(apps.keys().collect::<Vec<_>>(), ["web"]);
        assert_eq!(apps["web"]["environment"].as_str(), Some("app"));
    }

    #[test]
    fn procfile_gives_one_app_per_line() {
        let procfile = "\
# comment
web: gunicorn app:app --bind 0.0.0.0:$PORT
worker.1: celery -A proj worker

_odd name!: python3 x.py
release: python3 manage.py migrate && echo done
broken line without colon
empty:
";
        let dir = dir_with(&[("Procfile", procfile), ("app.py", "")], &[]);
        let text = starter_toml(dir.path());
        assert!(has_line(
            &text,
            "command = \"gunicorn app:app --bind 0.0.0.0:${PORT}\""
        ));
        assert!(has_line(&text, "env = { PORT = \"5000\" }"));
        assert!(has_line(
            &text,
            "command = [\"sh\", \"-c\", \"python3 manage.py migrate && echo done\"]"
        ));
        let apps = apps(&text);
        assert_eq!(
            apps.keys().collect::<Vec<_>>(),
            ["web", "worker-1", "odd-name-", "release"]
        );
        assert_eq!(apps["release"]["kind"].as_str(), Some("task"));
        assert_eq!(
            apps["web"]["depends_on"]["release"].as_str(),
            Some("completed")
        );
        assert!(apps["release"].get("depends_on").is_none());
    }

    #[test]
    fn sanitized_names_are_valid_and_unique() {
        let re = regex::Regex::new("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$").unwrap();
        let long = "x".repeat(80);
        let procfile = format!("{long}: a\n{long}: b\n---: c\n---: d\nweb/api: e\n");
        let entries = parse_procfile(&procfile);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        for name in &names {
            assert!(re.is_match(name), "{name}");
        }
        assert_eq!(names[1], format!("{}-2", "x".repeat(62)));
        assert_eq!(names[2..], ["app", "app-2", "web-api"]);
    }

    #[test]
    fn dollar_forms_are_rewritten_for_pypm() {
        assert_eq!(
            brace_vars("a $X ${Y} $ $1 ${} b$"),
            (
                "a ${X} ${Y} $$ $$1 $${} b$$".to_string(),
                vec!["X".to_string(), "Y".to_string()]
            )
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }

    #[test]
    fn write_starter_creates_once_then_refuses() {
        let dir = dir_with(&[("main.py", "")], &[]);
        let path = write_starter(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("pypm.toml"));
        let first = fs::read_to_string(&path).unwrap();
        assert!(has_line(&first, "script = \"main.py\""));

        fs::write(&path, "# mine\n").unwrap();
        let err = write_starter(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "# mine\n");
    }
}
