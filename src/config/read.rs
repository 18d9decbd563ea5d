//! The reader: walks the parsed TOML tree (with spans), checks every key against the registry,
//! converts values to typed fields with the SPEC §8 defaults, and collects every error.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::expand::{self, Vars};
use super::keys::{self, Key, Ty};
use super::units::{parse_duration, parse_size};
use super::*;
use crate::diagnostic::{Diagnostic, Span, did_you_mean};

type Val<'i> = Spanned<DeValue<'i>>;

static APP_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(keys::APP_NAME_PATTERN).unwrap_or_else(|_| unreachable!("constant pattern"))
});

pub const SIGNALS: &[&str] = &[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// Collected errors plus the source, for precise positions inside strings.
struct Cx<'s> {
    src: &'s str,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::new(msg, Some(span)));
    }

    fn err_help(&mut self, span: Span, msg: impl Into<String>, help: Option<String>) {
        self.diags
            .push(Diagnostic::new(msg, Some(span)).with_help_opt(help));
    }

    /// The span of `${NAME}` inside the string at `span`, when it can be found.
    fn var_span(&self, span: &Span, name: &str) -> Span {
        let needle = format!("${{{name}}}");
        self.src
            .get(span.clone())
            .and_then(|raw| raw.find(&needle))
            .map(|i| span.start + i..span.start + i + needle.len())
            .unwrap_or(span.clone())
    }

    fn expand(&mut self, value: &str, span: &Span, vars: &Vars, what: &str) -> String {
        match expand::expand(value, vars) {
            Ok(v) => v,
            Err(u) => {
                let at = self.var_span(span, &u.name);
                self.err_help(
                    at,
                    format!("undefined variable `{}` in {what}", u.name),
                    Some("set it in the environment, in `env` or an `env_file`, or write `$$` for a literal `$`".into()),
                );
                value.to_string()
            }
        }
    }
}

fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn int_of(v: &DeValue) -> Option<i64> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// The text of a number or boolean, as a user would write it.
fn scalar_text(v: &DeValue) -> Option<String> {
    match v {
        DeValue::Integer(_) => int_of(v).map(|i| i.to_string()),
        DeValue::Float(f) => Some(f.as_str().to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::String(s) => Some(s.to_string()),
        _ => None,
    }
}

fn float_of(v: &DeValue) -> Option<f64> {
    match v {
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        DeValue::Integer(_) => int_of(v).map(|i| i as f64),
        _ => None,
    }
}

/// One table being read: checks its keys against the registry and hands out typed values.
struct Table<'a, 'i> {
    t: &'a DeTable<'i>,
    /// e.g. "app `api`", for messages.
    ctx: String,
    keys: &'static [Key],
}

impl<'a, 'i> Table<'a, 'i> {
    fn new(cx: &mut Cx, t: &'a DeTable<'i>, ctx: String, keys: &'static [Key]) -> Self {
        for (k, _) in t.iter() {
            let name: &str = k.get_ref();
            if !keys.iter().any(|key| key.name == name) {
                cx.err_help(
                    k.span(),
                    format!("unknown key `{name}` in {ctx}"),
                    did_you_mean(name, keys::names(keys)),
                );
            }
        }
        Table { t, ctx, keys }
    }

    fn get(&self, name: &str) -> Option<&'a Val<'i>> {
        debug_assert!(
            self.keys.iter().any(|k| k.name == name),
            "key `{name}` read but not registered"
        );
        self.t.get(name)
    }

    fn span_of(&self, name: &str) -> Option<Span> {
        self.get(name).map(|v| v.span())
    }

    fn wrong(&self, cx: &mut Cx, name: &str, expected: &str, v: &Val) {
        cx.err(
            v.span(),
            format!(
                "`{name}` in {} must be {expected}, found {}",
                self.ctx,
                type_name(v.get_ref())
            ),
        );
    }

    fn str(&self, cx: &mut Cx, name: &str) -> Option<(String, Span)> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            _ => {
                self.wrong(cx, name, "a string", v);
                None
            }
        }
    }

    /// A string, `${VAR}`-expanded.
    fn estr(&self, cx: &mut Cx, name: &str, vars: &Vars) -> Option<(String, Span)> {
        let (s, span) = self.str(cx, name)?;
        let what = format!("`{name}` of {}", self.ctx);
        Some((cx.expand(&s, &span, vars, &what), span))
    }

    fn bool(&self, cx: &mut Cx, name: &str) -> Option<bool> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong(cx, name, "true or false", v);
                None
            }
        }
    }

    fn int(&self, cx: &mut Cx, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        let Some(Ty::Int { min, max }) = self.keys.iter().find(|k| k.name == name).map(|k| k.ty)
        else {
            return None;
        };
        match int_of(v.get_ref()) {
            Some(i) if (min..=max).contains(&i) => Some(i),
            Some(i) => {
                cx.err(
                    v.span(),
                    format!(
                        "`{name}` in {} must be between {min} and {max}, found {i}",
                        self.ctx
                    ),
                );
                None
            }
            None => {
                self.wrong(cx, name, "an integer", v);
                None
            }
        }
    }

    fn duration(&self, cx: &mut Cx, name: &str) -> Option<Duration> {
        let v = self.get(name)?;
        let parsed = match v.get_ref() {
            DeValue::String(s) => parse_duration(s),
            DeValue::Integer(_) | DeValue::Float(_) => match float_of(v.get_ref()) {
                Some(f) if f >= 0.0 && f.is_finite() && f < 1.0e9 => Ok(Duration::from_secs_f64(f)),
                _ => Err(format!(
                    "invalid duration `{}`",
                    scalar_text(v.get_ref()).unwrap_or_default()
                )),
            },
            _ => {
                self.wrong(
                    cx,
                    name,
                    "a duration (\"500ms\", \"10s\", \"5m\", \"1h\" or seconds)",
                    v,
                );
                return None;
            }
        };
        match parsed {
            Ok(d) => Some(d),
            Err(e) => {
                cx.err(v.span(), format!("{e} for `{name}` in {}", self.ctx));
                None
            }
        }
    }

    fn size(&self, cx: &mut Cx, name: &str) -> Option<u64> {
        let v = self.get(name)?;
        let parsed = match v.get_ref() {
            DeValue::String(s) => parse_size(s),
            DeValue::Integer(_) => match int_of(v.get_ref()) {
                Some(i) if i >= 0 => Ok(i as u64),
                _ => Err("invalid size".to_string()),
            },
            _ => {
                self.wrong(cx, name, "a size (\"512K\", \"10M\", \"1G\" or bytes)", v);
                return None;
            }
        };
        match parsed {
            Ok(b) => Some(b),
            Err(e) => {
                cx.err(v.span(), format!("{e} for `{name}` in {}", self.ctx));
                None
            }
        }
    }

    fn number(&self, cx: &mut Cx, name: &str) -> Option<f64> {
        let v = self.get(name)?;
        match float_of(v.get_ref()) {
            Some(f) if f > 0.0 && f.is_finite() => Some(f),
            Some(f) => {
                cx.err(
                    v.span(),
                    format!("`{name}` in {} must be positive, found {f}", self.ctx),
                );
                None
            }
            None => {
                self.wrong(cx, name, "a number", v);
                None
            }
        }
    }

    /// A list of strings (each expanded when `vars` is given), with each element's span.
    fn str_list(
        &self,
        cx: &mut Cx,
        name: &str,
        vars: Option<&Vars>,
    ) -> Option<Vec<(String, Span)>> {
        let v = self.get(name)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(cx, name, "an array of strings", v);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => {
                    let s = match vars {
                        Some(vars) => {
                            let what = format!("`{name}` of {}", self.ctx);
                            cx.expand(s, &item.span(), vars, &what)
                        }
                        None => s.to_string(),
                    };
                    out.push((s, item.span()));
                }
                other => cx.err(
                    item.span(),
                    format!(
                        "`{name}` in {} must contain only strings, found {}",
                        self.ctx,
                        type_name(other)
                    ),
                ),
            }
        }
        Some(out)
    }

    fn str_or_list(&self, cx: &mut Cx, name: &str, vars: &Vars) -> Option<Vec<(String, Span)>> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::String(_) => self.estr(cx, name, vars).map(|s| vec![s]),
            DeValue::Array(_) => self.str_list(cx, name, Some(vars)),
            _ => {
                self.wrong(cx, name, "a string or an array of strings", v);
                None
            }
        }
    }

    /// A command: a string split like a POSIX shell, or an array; each word expanded.
    fn command(&self, cx: &mut Cx, name: &str, vars: &Vars) -> Option<Vec<String>> {
        let v = self.get(name)?;
        let words: Vec<String> = match v.get_ref() {
            DeValue::String(s) => match shell_words::split(s) {
                Ok(w) => w
                    .into_iter()
                    .map(|w| {
                        let what = format!("`{name}` of {}", self.ctx);
                        cx.expand(&w, &v.span(), vars, &what)
                    })
                    .collect(),
                Err(e) => {
                    cx.err(
                        v.span(),
                        format!("cannot split `{name}` of {}: {e}", self.ctx),
                    );
                    return None;
                }
            },
            DeValue::Array(_) => self
                .str_list(cx, name, Some(vars))?
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            _ => {
                self.wrong(cx, name, "a string or an array of strings", v);
                return None;
            }
        };
        if words.is_empty() {
            cx.err(v.span(), format!("`{name}` of {} is empty", self.ctx));
            return None;
        }
        Some(words)
    }

    fn enumerated(
        &self,
        cx: &mut Cx,
        name: &str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let (s, span) = self.str(cx, name)?;
        match allowed.iter().find(|a| **a == s) {
            Some(a) => Some(a),
            None => {
                let list = allowed.join(", ");
                cx.err_help(
                    span,
                    format!(
                        "invalid `{name}` `{s}` in {} (expected one of {list})",
                        self.ctx
                    ),
                    did_you_mean(&s, allowed.iter().copied()),
                );
                None
            }
        }
    }

    fn sub_table(&self, cx: &mut Cx, name: &str) -> Option<(&'a DeTable<'i>, Span)> {
        let v = self.get(name)?;
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            _ => {
                self.wrong(cx, name, "a table", v);
                None
            }
        }
    }
}

/// Reads the whole document.
pub(super) fn read(
    source: &str,
    path: &Path,
    dir: &Path,
    host: &HashMap<String, String>,
) -> Result<Config, Vec<Diagnostic>> {
    let root = match DeTable::parse(source) {
        Ok(t) => t,
        Err(e) => {
            let msg = e.message().trim().replace('\n', "; ");
            return Err(vec![Diagnostic::new(
                format!("invalid TOML: {msg}"),
                e.span(),
            )]);
        }
    };
    let mut cx = Cx {
        src: source,
        diags: Vec::new(),
    };
    let root = root.get_ref();
    for (k, _) in root.iter() {
        let name: &str = k.get_ref();
        if !keys::TOP_KEYS.contains(&name) {
            cx.err_help(
                k.span(),
                format!("unknown top-level key `{name}`"),
                did_you_mean(name, keys::TOP_KEYS.iter().copied()),
            );
        }
    }
    let host_vars = Vars::new(host);
    let pypm = read_settings(&mut cx, root.get("pypm"), dir, &host_vars);
    let environments = read_environments(&mut cx, root.get("environments"), dir, &host_vars);
    let apps = read_apps(&mut cx, root.get("apps"), dir, host, &environments);
    let notify = read_notifiers(&mut cx, root.get("notify"), &host_vars);
    check_graph(&mut cx, &apps);
    check_listen(&mut cx, &apps);
    if cx.diags.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            pypm,
            environments,
            apps: apps.into_iter().map(|(k, (a, _))| (k, a)).collect(),
            notify,
        })
    } else {
        Err(cx.diags)
    }
}

fn as_table<'a, 'i>(cx: &mut Cx, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            cx.err(
                v.span(),
                format!("{what} must be a table, found {}", type_name(other)),
            );
            None
        }
    }
}

fn read_settings(cx: &mut Cx, v: Option<&Val>, dir: &Path, vars: &Vars) -> Settings {
    let empty = DeTable::new();
    let t = v
        .and_then(|v| as_table(cx, v, "`[pypm]`"))
        .unwrap_or(&empty);
    let t = Table::new(cx, t, "`[pypm]`".into(), keys::PYPM_KEYS);
    let state_dir = dir.join(
        t.estr(cx, "state_dir", vars)
            .map_or(".pypm".into(), |(s, _)| s),
    );
    let log_dir = t
        .estr(cx, "log_dir", vars)
        .map_or_else(|| state_dir.join("logs"), |(s, _)| dir.join(s));
    let http_public = t.bool(cx, "http_public").unwrap_or(false);
    let http = t.estr(cx, "http", vars).map(|(addr, span)| {
        match parse_host_port(&addr) {
            Err(e) => cx.err(span, format!("invalid `http` address `{addr}`: {e}")),
            Ok((host, _)) if !is_loopback(&host) && !http_public => cx.err_help(
                span,
                format!("`http` binds the non-loopback address `{addr}` but `http_public` is not true"),
                Some("set `http_public = true` to serve the dashboard beyond this machine, or use 127.0.0.1".into()),
            ),
            Ok(_) => {}
        }
        addr
    });
    let statsd = t.estr(cx, "statsd", vars).map(|(addr, span)| {
        if let Err(e) = parse_host_port(&addr) {
            cx.err(span, format!("invalid `statsd` address `{addr}`: {e}"));
        }
        addr
    });
    Settings {
        state_dir,
        log_dir,
        http,
        http_public,
        statsd,
        watch_config: t.bool(cx, "watch_config").unwrap_or(true),
    }
}

/// Splits `HOST:PORT` (`[::1]:80` for IPv6).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "expected HOST:PORT".to_string())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("missing host".into());
    }
    let port: u16 = port.parse().map_err(|_| format!("invalid port `{port}`"))?;
    Ok((host.to_string(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn check_name(cx: &mut Cx, name: &str, span: Span, what: &str) -> bool {
    if APP_NAME.is_match(name) {
        return true;
    }
    cx.err_help(
        span,
        format!("invalid {what} name `{name}`"),
        Some(
            "names are 1 to 64 letters, digits, `_` or `-`, starting with a letter or digit".into(),
        ),
    );
    false
}

fn relative_path(dir: &Path, s: &str) -> PathBuf {
    dir.join(s)
}

fn read_environments(
    cx: &mut Cx,
    v: Option<&Val>,
    dir: &Path,
    vars: &Vars,
) -> IndexMap<String, Environment> {
    let mut out = IndexMap::new();
    let Some(t) = v.and_then(|v| as_table(cx, v, "`[environments]`")) else {
        return out;
    };
    for (k, v) in t.iter() {
        let name: &str = k.get_ref();
        let ctx = format!("environment `{name}`");
        check_name(cx, name, k.span(), "environment");
        let Some(body) = as_table(cx, v, &ctx) else {
            continue;
        };
        let t = Table::new(cx, body, ctx.clone(), keys::ENVIRONMENT_KEYS);
        let present: Vec<&str> = keys::ENVIRONMENT_KINDS
            .iter()
            .copied()
            .filter(|k| t.get(k).is_some())
            .collect();
        let decl = match present.as_slice() {
            [] => {
                cx.err(
                    k.span(),
                    format!("{ctx} needs exactly one of `venv`, `conda` or `python`"),
                );
                None
            }
            [one] => {
                let (s, _) = t.estr(cx, one, vars).unwrap_or_default();
                match *one {
                    "venv" => Some(EnvDecl::Venv(relative_path(dir, &s))),
                    "conda" if s.contains('/') => {
                        Some(EnvDecl::Conda(relative_path(dir, &s).display().to_string()))
                    }
                    "conda" => Some(EnvDecl::Conda(s)),
                    _ if s.contains('/') => Some(EnvDecl::Python(
                        relative_path(dir, &s).display().to_string(),
                    )),
                    _ => Some(EnvDecl::Python(s)),
                }
            }
            [_, second, ..] => {
                let span = t.span_of(second).unwrap_or(k.span());
                cx.err(
                    span,
                    format!(
                        "{ctx} has more than one of `venv`, `conda`, `python` ({}); keep one",
                        present.join(", ")
                    ),
                );
                None
            }
        };
        if let Some(decl) = decl {
            out.insert(
                name.to_string(),
                Environment {
                    name: name.to_string(),
                    decl,
                    span: k.span(),
                },
            );
        }
    }
    out
}

type AppEntry = (App, HashMap<String, Span>);

fn read_apps(
    cx: &mut Cx,
    v: Option<&Val>,
    dir: &Path,
    host: &HashMap<String, String>,
    environments: &IndexMap<String, Environment>,
) -> IndexMap<String, AppEntry> {
    let mut out = IndexMap::new();
    let Some(t) = v.and_then(|v| as_table(cx, v, "`[apps]`")) else {
        return out;
    };
    let app_names: Vec<&str> = t.iter().map(|(k, _)| -> &str { k.get_ref() }).collect();
    for (k, v) in t.iter() {
        let name: &str = k.get_ref();
        check_name(cx, name, k.span(), "app");
        let ctx = format!("app `{name}`");
        let Some(body) = as_table(cx, v, &ctx) else {
            continue;
        };
        let app = read_app(
            cx,
            name,
            k.span(),
            body,
            dir,
            host,
            environments,
            &app_names,
        );
        out.insert(name.to_string(), app);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn read_app(
    cx: &mut Cx,
    name: &str,
    name_span: Span,
    body: &DeTable,
    dir: &Path,
    host: &HashMap<String, String>,
    environments: &IndexMap<String, Environment>,
    app_names: &[&str],
) -> AppEntry {
    let ctx = format!("app `{name}`");
    let t = Table::new(cx, body, ctx.clone(), keys::APP_KEYS);
    let host_vars = Vars::new(host);

    // env_file first: its contents are visible to every later expansion.
    let mut env_file = Vec::new();
    let mut file_vars: Vec<(String, String)> = Vec::new();
    for (f, span) in t
        .str_or_list(cx, "env_file", &host_vars)
        .unwrap_or_default()
    {
        let p = dir.join(&f);
        match std::fs::read_to_string(&p) {
            Ok(text) => match expand::parse_env_file(&text) {
                Ok(vars) => file_vars.extend(vars),
                Err(e) => cx.err(
                    span,
                    format!("env_file `{f}` of {ctx}, line {}: {}", e.line, e.message),
                ),
            },
            Err(e) => cx.err(span, format!("cannot read env_file `{f}` of {ctx}: {e}")),
        }
        env_file.push(p);
    }
    let file_map: HashMap<String, String> = file_vars.iter().cloned().collect();
    let with_files = host_vars.with(&file_map);

    let mut env = Vec::new();
    if let Some((tbl, _)) = t.sub_table(cx, "env") {
        for (k, v) in tbl.iter() {
            let key: &str = k.get_ref();
            let raw = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                    scalar_text(v.get_ref()).unwrap_or_default()
                }
                other => {
                    cx.err(
                        v.span(),
                        format!(
                            "`env.{key}` in {ctx} must be a string, number or boolean, found {}",
                            type_name(other)
                        ),
                    );
                    continue;
                }
            };
            let what = format!("`env.{key}` of {ctx}");
            let value = cx.expand(&raw, &v.span(), &with_files, &what);
            env.push((key.to_string(), value));
        }
    }
    let env_map: HashMap<String, String> = env.iter().cloned().collect();
    let vars = with_files.with(&env_map);

    let present: Vec<&str> = keys::PROGRAM_KEYS
        .iter()
        .copied()
        .filter(|k| t.get(k).is_some())
        .collect();
    // A misspelt `command` is already reported as an unknown key with its suggestion.
    let misspelt_program = body.iter().any(|(k, _)| {
        let k: &str = k.get_ref();
        !keys::APP_KEYS.iter().any(|key| key.name == k)
            && did_you_mean(k, keys::PROGRAM_KEYS.iter().copied()).is_some()
    });
    let program = match present.as_slice() {
        [] if misspelt_program => None,
        [] => {
            cx.err_help(
                name_span.clone(),
                format!("{ctx} has none of `command`, `script` or `module`"),
                Some("add one, e.g. `command = \"python3 app.py\"`".into()),
            );
            None
        }
        ["command"] => t.command(cx, "command", &vars).map(Program::Command),
        ["script"] => t.estr(cx, "script", &vars).map(|(s, _)| Program::Script(s)),
        ["module"] => t.estr(cx, "module", &vars).map(|(s, _)| Program::Module(s)),
        [_] => None,
        [_, second, ..] => {
            cx.err_help(
                t.span_of(second).unwrap_or(name_span.clone()),
                format!(
                    "{ctx} has more than one of `command`, `script`, `module` ({}); keep one",
                    present.join(", ")
                ),
                None,
            );
            None
        }
    };

    let args = t
        .str_list(cx, "args", Some(&vars))
        .map(|v| v.into_iter().map(|(s, _)| s).collect())
        .unwrap_or_default();
    if !args_allowed(&program) && t.get("args").is_some() {
        let span = t.span_of("args").unwrap_or(name_span.clone());
        cx.err_help(
            span,
            format!("`args` of {ctx} applies only to `script` and `module`"),
            Some("put the arguments in `command`".into()),
        );
    }

    let environment = t.str(cx, "environment").map(|(e, span)| {
        if !environments.contains_key(&e) {
            cx.err_help(
                span,
                format!("{ctx} uses environment `{e}`, which is not declared in `[environments]`"),
                did_you_mean(&e, environments.keys().map(String::as_str)),
            );
        }
        e
    });

    let cwd = match t.estr(cx, "cwd", &vars) {
        Some((c, span)) => {
            let p = dir.join(c);
            if !p.is_dir() {
                cx.err(
                    span,
                    format!("`cwd` of {ctx} is not a directory: `{}`", p.display()),
                );
            }
            p
        }
        None => dir.to_path_buf(),
    };

    let kind = match t.enumerated(cx, "kind", keys::KINDS) {
        Some("task") => Kind::Task,
        _ => Kind::Service,
    };
    let restart = match t.enumerated(cx, "restart", keys::RESTART_POLICIES) {
        Some("always") => RestartPolicy::Always,
        Some("on-failure") => RestartPolicy::OnFailure,
        Some("never") => RestartPolicy::Never,
        _ if kind == Kind::Task => RestartPolicy::Never,
        _ => RestartPolicy::Always,
    };

    let listen = read_listen(cx, &t, dir, &vars);
    let depends_on = read_depends_on(cx, &t, name, app_names);

    let restart_delay = t
        .duration(cx, "restart_delay")
        .unwrap_or(Duration::from_millis(100));
    let restart_delay_max = t
        .duration(cx, "restart_delay_max")
        .unwrap_or(Duration::from_secs(30));
    if restart_delay_max < restart_delay
        && let Some(span) = t.span_of("restart_delay_max")
    {
        cx.err(
            span,
            format!("`restart_delay_max` of {ctx} is shorter than `restart_delay`"),
        );
    }

    let success_exit_codes = match t.get("success_exit_codes") {
        Some(v) => match v.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .filter_map(|i| match int_of(i.get_ref()) {
                    Some(c) if (0..=255).contains(&c) => Some(c as i32),
                    _ => {
                        cx.err(
                            i.span(),
                            format!(
                                "`success_exit_codes` of {ctx} must contain integers from 0 to 255"
                            ),
                        );
                        None
                    }
                })
                .collect(),
            _ => {
                t.wrong(cx, "success_exit_codes", "an array of integers", v);
                vec![0]
            }
        },
        None => vec![0],
    };

    let stop_signal = match t.str(cx, "stop_signal") {
        Some((s, span)) => {
            let upper = s.trim().to_ascii_uppercase();
            let canon = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            if SIGNALS.contains(&canon.as_str()) {
                canon
            } else {
                cx.err_help(
                    span,
                    format!("unknown signal `{s}` for `stop_signal` of {ctx}"),
                    did_you_mean(&canon, SIGNALS.iter().copied()),
                );
                "SIGTERM".into()
            }
        }
        None => "SIGTERM".into(),
    };

    let revision = t.get("revision").and_then(|v| match v.get_ref() {
        DeValue::String(s) => {
            let what = format!("`revision` of {ctx}");
            Some(cx.expand(s, &v.span(), &vars, &what))
        }
        DeValue::Integer(_) | DeValue::Float(_) => scalar_text(v.get_ref()),
        _ => {
            t.wrong(cx, "revision", "a string or a number", v);
            None
        }
    });

    let ready = t
        .sub_table(cx, "ready")
        .and_then(|(tb, span)| read_probe(cx, tb, span, &ctx, true, &vars));
    let health = t
        .sub_table(cx, "health")
        .and_then(|(tb, span)| read_probe(cx, tb, span, &ctx, false, &vars));

    let mut spans = HashMap::new();
    for (k, v) in body.iter() {
        spans.insert(k.get_ref().to_string(), v.span());
    }

    let app = App {
        name: name.to_string(),
        program: program.unwrap_or(Program::Command(Vec::new())),
        args,
        interpreter: t.estr(cx, "interpreter", &vars).map(|(s, _)| s),
        environment,
        cwd,
        env,
        env_file,
        env_file_vars: file_vars,
        kind,
        enabled: t.bool(cx, "enabled").unwrap_or(true),
        instances: t.int(cx, "instances").unwrap_or(1) as u32,
        listen: listen.into_iter().map(|(l, _)| l).collect(),
        depends_on: depends_on.iter().map(|(n, c, _)| (n.clone(), *c)).collect(),
        restart,
        restart_delay,
        restart_delay_max,
        max_restarts: t.int(cx, "max_restarts").unwrap_or(10) as u32,
        restart_window: t
            .duration(cx, "restart_window")
            .unwrap_or(Duration::from_secs(60)),
        min_uptime: t
            .duration(cx, "min_uptime")
            .unwrap_or(Duration::from_secs(1)),
        success_exit_codes,
        stop_signal,
        stop_timeout: t
            .duration(cx, "stop_timeout")
            .unwrap_or(Duration::from_secs(10)),
        memory_max: t.size(cx, "memory_max"),
        cpu_max: t.number(cx, "cpu_max"),
        nofile: t.int(cx, "nofile").map(|n| n as u64),
        nice: t.int(cx, "nice").unwrap_or(0) as i32,
        user: t.estr(cx, "user", &vars).map(|(s, _)| s),
        watch: t
            .str_list(cx, "watch", Some(&vars))
            .map(|v| v.into_iter().map(|(s, _)| s).collect())
            .unwrap_or_default(),
        revision,
        log_timestamps: t.bool(cx, "log_timestamps").unwrap_or(false),
        log_max_size: t.size(cx, "log_max_size").unwrap_or(10 * 1024 * 1024),
        log_max_files: t.int(cx, "log_max_files").unwrap_or(5) as u32,
        ready,
        health,
        spans: AppSpans {
            name: name_span,
            keys: spans,
        },
    };
    let dep_spans = depends_on
        .into_iter()
        .map(|(n, _, s)| (n, s))
        .collect::<HashMap<_, _>>();
    (app, dep_spans)
}

fn args_allowed(program: &Option<Program>) -> bool {
    !matches!(program, Some(Program::Command(_)))
}

fn read_listen(cx: &mut Cx, t: &Table, dir: &Path, vars: &Vars) -> Vec<(Listen, Span)> {
    let mut out = Vec::new();
    for (addr, span) in t.str_list(cx, "listen", Some(vars)).unwrap_or_default() {
        if let Some(rest) = addr.strip_prefix("tcp://") {
            match parse_host_port(rest) {
                Ok(_) => out.push((Listen::Tcp(rest.to_string()), span)),
                Err(e) => cx.err(span, format!("invalid listen address `{addr}`: {e}")),
            }
        } else if let Some(rest) = addr.strip_prefix("unix:") {
            let rest = rest.trim_start_matches("//");
            if rest.is_empty() {
                cx.err(
                    span,
                    format!("invalid listen address `{addr}`: missing path"),
                );
            } else {
                out.push((Listen::Unix(dir.join(rest)), span));
            }
        } else {
            cx.err_help(
                span,
                format!("invalid listen address `{addr}`"),
                Some("use `tcp://HOST:PORT` or `unix:/path.sock`".into()),
            );
        }
    }
    out
}

fn read_depends_on(
    cx: &mut Cx,
    t: &Table,
    name: &str,
    app_names: &[&str],
) -> Vec<(String, Condition, Span)> {
    let Some(v) = t.get("depends_on") else {
        return Vec::new();
    };
    let mut raw: Vec<(String, Condition, Span)> = Vec::new();
    match v.get_ref() {
        DeValue::Array(items) => {
            for item in items {
                match item.get_ref() {
                    DeValue::String(s) => {
                        raw.push((s.to_string(), Condition::Started, item.span()))
                    }
                    other => cx.err(
                        item.span(),
                        format!(
                            "`depends_on` of app `{name}` must list app names, found {}",
                            type_name(other)
                        ),
                    ),
                }
            }
        }
        DeValue::Table(tbl) => {
            for (k, v) in tbl.iter() {
                let cond = match v.get_ref() {
                    DeValue::String(s) => match s.as_ref() {
                        "started" => Some(Condition::Started),
                        "ready" => Some(Condition::Ready),
                        "completed" => Some(Condition::Completed),
                        other => {
                            cx.err_help(
                                v.span(),
                                format!("invalid condition `{other}` for dependency `{}` of app `{name}` (expected started, ready or completed)", k.get_ref()),
                                did_you_mean(other, keys::CONDITIONS.iter().copied()),
                            );
                            None
                        }
                    },
                    other => {
                        cx.err(
                            v.span(),
                            format!(
                                "condition for dependency `{}` of app `{name}` must be a string, found {}",
                                k.get_ref(),
                                type_name(other)
                            ),
                        );
                        None
                    }
                };
                if let Some(c) = cond {
                    raw.push((k.get_ref().to_string(), c, k.span()));
                }
            }
        }
        _ => t.wrong(
            cx,
            "depends_on",
            "an array of app names or a table of app = condition",
            v,
        ),
    }
    let mut seen = HashSet::new();
    raw.into_iter()
        .filter(|(dep, _, span)| {
            if !app_names.contains(&dep.as_str()) {
                cx.err_help(
                    span.clone(),
                    format!("app `{name}` depends on `{dep}`, which is not an app in this file"),
                    did_you_mean(dep, app_names.iter().copied().filter(|n| *n != name)),
                );
                return false;
            }
            seen.insert(dep.clone())
        })
        .collect()
}

fn read_probe(
    cx: &mut Cx,
    body: &DeTable,
    span: Span,
    app_ctx: &str,
    ready: bool,
    vars: &Vars,
) -> Option<Probe> {
    let which = if ready { "ready" } else { "health" };
    let ctx = format!("`{which}` probe of {app_ctx}");
    let keys = if ready {
        keys::READY_KEYS
    } else {
        keys::HEALTH_KEYS
    };
    let t = Table::new(cx, body, ctx.clone(), keys);
    let present: Vec<&str> = keys::PROBE_KINDS
        .iter()
        .copied()
        .filter(|k| match t.get(k) {
            Some(v) => !matches!(v.get_ref(), DeValue::Boolean(false)),
            None => false,
        })
        .collect();
    let check = match present.as_slice() {
        [] => {
            cx.err_help(
                span,
                format!("{ctx} has no probe kind"),
                Some("add exactly one of `http`, `tcp`, `exec`, `log` or `notify`".into()),
            );
            None
        }
        [kind] => match *kind {
            "http" => t.estr(cx, "http", vars).and_then(|(u, span)| {
                if u.starts_with("http://") {
                    Some(ProbeCheck::Http(u))
                } else {
                    cx.err(
                        span,
                        format!("`http` of {ctx} must be an http:// URL, found `{u}`"),
                    );
                    None
                }
            }),
            "tcp" => t
                .estr(cx, "tcp", vars)
                .and_then(|(a, span)| match parse_host_port(&a) {
                    Ok(_) => Some(ProbeCheck::Tcp(a)),
                    Err(e) => {
                        cx.err(span, format!("invalid `tcp` address `{a}` of {ctx}: {e}"));
                        None
                    }
                }),
            "exec" => t.command(cx, "exec", vars).map(ProbeCheck::Exec),
            "log" => t
                .str(cx, "log")
                .and_then(|(re, span)| match regex::Regex::new(&re) {
                    Ok(_) => Some(ProbeCheck::Log(re)),
                    Err(e) => {
                        let first = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        cx.err(span, format!("invalid regex in `log` of {ctx}: {first}"));
                        None
                    }
                }),
            _ => t.bool(cx, "notify").map(|_| ProbeCheck::Notify),
        },
        [_, second, ..] => {
            cx.err_help(
                t.span_of(second).unwrap_or(span),
                format!(
                    "{ctx} has more than one probe kind ({}); keep one",
                    present.join(", ")
                ),
                None,
            );
            None
        }
    };
    let interval = t.duration(cx, "interval").unwrap_or(if ready {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    });
    let timeout = t.duration(cx, "timeout").unwrap_or(if ready {
        Duration::from_secs(60)
    } else {
        interval.min(Duration::from_secs(5))
    });
    let failures = if ready {
        1
    } else {
        t.int(cx, "failures").unwrap_or(3) as u32
    };
    Some(Probe {
        check: check?,
        interval,
        timeout,
        failures,
    })
}

fn read_notifiers(cx: &mut Cx, v: Option<&Val>, vars: &Vars) -> Vec<Notifier> {
    let Some(v) = v else {
        return Vec::new();
    };
    let DeValue::Array(items) = v.get_ref() else {
        cx.err(
            v.span(),
            format!(
                "`notify` must be an array of tables (`[[notify]]`), found {}",
                type_name(v.get_ref())
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ctx = format!("notifier #{}", i + 1);
        let Some(body) = as_table(cx, item, &ctx) else {
            continue;
        };
        let t = Table::new(cx, body, ctx.clone(), keys::NOTIFY_KEYS);
        let present: Vec<&str> = keys::NOTIFY_KINDS
            .iter()
            .copied()
            .filter(|k| t.get(k).is_some())
            .collect();
        let smtp = t.estr(cx, "smtp", vars);
        let kind = match present.as_slice() {
            ["webhook"] => t
                .estr(cx, "webhook", vars)
                .map(|(u, _)| NotifierKind::Webhook(u)),
            ["email"] => {
                let to = t.estr(cx, "email", vars);
                match (to, smtp) {
                    (Some((to, _)), Some((smtp, span))) => {
                        if let Err(e) = parse_host_port(&smtp) {
                            cx.err(
                                span,
                                format!("invalid `smtp` address `{smtp}` of {ctx}: {e}"),
                            );
                        }
                        Some(NotifierKind::Email { to, smtp })
                    }
                    (Some((_, span)), None) => {
                        cx.err_help(
                            span,
                            format!("{ctx} sends email but has no `smtp` server"),
                            Some("add `smtp = \"HOST:PORT\"`".into()),
                        );
                        None
                    }
                    _ => None,
                }
            }
            ["exec"] => t.command(cx, "exec", vars).map(NotifierKind::Exec),
            [_] => None,
            [] => {
                cx.err(
                    item.span(),
                    format!("{ctx} needs exactly one of `webhook`, `email` or `exec`"),
                );
                None
            }
            [_, second, ..] => {
                cx.err(
                    t.span_of(second).unwrap_or(item.span()),
                    format!(
                        "{ctx} has more than one of `webhook`, `email`, `exec` ({}); keep one",
                        present.join(", ")
                    ),
                );
                None
            }
        };
        let events = t
            .str_list(cx, "events", None)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(e, span)| {
                if keys::EVENT_NAMES.contains(&e.as_str()) {
                    Some(e)
                } else {
                    cx.err_help(
                        span,
                        format!("unknown event `{e}` in {ctx}"),
                        did_you_mean(&e, keys::EVENT_NAMES.iter().copied()),
                    );
                    None
                }
            })
            .collect();
        if let Some(kind) = kind {
            out.push(Notifier { kind, events });
        }
    }
    out
}

/// Dependency cycles: each reported once, listing the whole cycle.
fn check_graph(cx: &mut Cx, apps: &IndexMap<String, AppEntry>) {
    let edges: Vec<(String, String)> = apps
        .iter()
        .flat_map(|(name, (app, _))| {
            app.depends_on
                .iter()
                .map(move |(dep, _)| (name.clone(), dep.clone()))
        })
        .collect();
    for cycle in crate::graph::cycles(apps.keys().map(String::as_str), &edges) {
        let Some(first) = cycle.first() else { continue };
        let second = cycle.get(1).unwrap_or(first);
        let span = apps
            .get(first)
            .and_then(|(_, deps)| deps.get(second).cloned())
            .unwrap_or_default();
        let mut path = cycle.clone();
        path.push(first.clone());
        cx.err_help(
            span,
            format!("dependency cycle: {}", path.join(" → ")),
            Some("remove one of these `depends_on` entries".into()),
        );
    }
}

fn check_listen(cx: &mut Cx, apps: &IndexMap<String, AppEntry>) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for (name, (app, _)) in apps {
        for (i, l) in app.listen.iter().enumerate() {
            let key = normalize_listen(l);
            if let Some(owner) = seen.get(&key) {
                let span = cx_listen_span(cx, app, i);
                let whose = if owner == name {
                    "earlier in the same app".to_string()
                } else {
                    format!("by app `{owner}`")
                };
                cx.err(
                    span,
                    format!("duplicate listen address `{l}`: already used {whose}"),
                );
            } else {
                seen.insert(key, name.clone());
            }
        }
    }
}

/// The span of the i-th `listen` element, found in the source.
fn cx_listen_span(cx: &Cx, app: &App, i: usize) -> Span {
    let whole = app.spans.of("listen");
    // Elements are strings in an array; find the i-th quoted string inside the array's span.
    let Some(raw) = cx.src.get(whole.clone()) else {
        return whole;
    };
    let mut idx = 0;
    let mut pos = 0;
    while let Some(start) = raw[pos..].find('"').map(|s| s + pos) {
        let Some(end) = raw[start + 1..].find('"').map(|e| e + start + 1) else {
            break;
        };
        if idx == i {
            return whole.start + start..whole.start + end + 1;
        }
        idx += 1;
        pos = end + 1;
    }
    whole
}

fn normalize_listen(l: &Listen) -> String {
    match l {
        Listen::Tcp(a) => match parse_host_port(a) {
            Ok((h, p)) if h == "localhost" => format!("tcp:127.0.0.1:{p}"),
            Ok((h, p)) => format!("tcp:{h}:{p}"),
            Err(_) => format!("tcp:{a}"),
        },
        Listen::Unix(p) => format!("unix:{}", p.display()),
    }
}
