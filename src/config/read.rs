//! The reader: walks the parsed TOML tree (with spans), checks every key against the registry,
//! converts values to typed fields with the SPEC §8 defaults, and collects every error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use toml::de::{DeTable, DeValue};

use super::expand::Vars;
use super::keys::{self};
use super::*;
use crate::desired::python_env::is_path_like;
use crate::diagnostic::{Diagnostic, Span, did_you_mean};

use super::app::*;
use super::table::*;

/// Reads the whole document.
pub(super) fn read(
    source: &str,
    path: &Path,
    dir: &Path,
    display: &str,
    host: &HashMap<String, String>,
) -> Result<Config, (super::layers::Sources, Vec<Diagnostic>)> {
    use super::layers;
    // The effective document: includes merged, the active profiles laid over, `extends` done.
    let (sources, order, mut diags) = layers::gather(source, path, display);
    let Some(mut root) = layers::merge(&sources, &order, &mut diags) else {
        return Err((sources.clone(), diags));
    };
    let profiles = active_profiles(host);
    layers::apply_profiles(&mut root, &profiles, &mut diags);
    layers::apply_extends(&mut root, &mut diags);
    let mut cx = Cx {
        src: &sources.text,
        diags,
    };
    let root = &root;
    for (k, v) in root.iter() {
        let name: &str = k.get_ref();
        if !keys::TOP_KEYS.contains(&name) {
            cx.err_help(
                k.span(),
                format!("unknown top-level key `{name}`"),
                did_you_mean(name, keys::TOP_KEYS.iter().copied()),
            );
        }
        if name == "include" {
            let ok = match v.get_ref() {
                DeValue::String(_) => true,
                DeValue::Array(a) => a.iter().all(|x| matches!(x.get_ref(), DeValue::String(_))),
                _ => false,
            };
            if !ok {
                cx.err(
                    v.span(),
                    "`include` must be a file name or an array of file names (globs allowed)",
                );
            }
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
            apps: apps
                .into_iter()
                .map(|(k, (a, _))| (k, std::sync::Arc::new(a)))
                .collect(),
            notify,
            profiles,
            sources,
        })
    } else {
        let diags = cx.diags;
        Err((sources, diags))
    }
}

/// The effective file as `pypm config` prints it: the merged document as TOML, and under
/// `verbose` each key on its own line with the place it came from. `Err` on a file that does
/// not merge (syntax, includes, profiles, extends); the keys' values are not validated here.
pub fn effective(
    source: &str,
    path: &Path,
    display: &str,
    host: &HashMap<String, String>,
    verbose: bool,
) -> Result<String, (super::layers::Sources, Vec<Diagnostic>)> {
    use super::layers;
    let (sources, order, mut diags) = layers::gather(source, path, display);
    let Some(mut root) = layers::merge(&sources, &order, &mut diags) else {
        return Err((sources.clone(), diags));
    };
    layers::apply_profiles(&mut root, &active_profiles(host), &mut diags);
    layers::apply_extends(&mut root, &mut diags);
    if !diags.is_empty() {
        return Err((sources.clone(), diags));
    }
    root.remove("include");
    if verbose {
        let mut out = String::new();
        for (k, v, at) in layers::leaves(&root) {
            out.push_str(&format!("{k} = {v}  # {}\n", sources.locate(at)));
        }
        return Ok(out);
    }
    let table = match layers::to_value(&DeValue::Table(root)) {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    };
    Ok(toml::to_string_pretty(&table).unwrap_or_default())
}

/// The profiles to apply, in order: `$PYPM_PROFILE` (comma-separated; `pypm --profile X`
/// sets it for the supervisor it starts).
pub fn active_profiles(host: &HashMap<String, String>) -> Vec<String> {
    host.get("PYPM_PROFILE")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Only `[pypm] state_dir` (expanded, absolute): what a client needs to find the supervisor of
/// the file. The apps are not read, so it is cheap and works while an app has errors. `None` when
/// the document or its `[pypm]` table is invalid.
pub(super) fn read_state_dir(
    source: &str,
    dir: &Path,
    host: &HashMap<String, String>,
) -> Option<PathBuf> {
    let root = DeTable::parse(source).ok()?;
    let mut cx = Cx {
        src: source,
        diags: Vec::new(),
    };
    let settings = read_settings(&mut cx, root.get_ref().get("pypm"), dir, &Vars::new(host));
    cx.diags.is_empty().then_some(settings.state_dir)
}

pub(super) fn as_table<'a, 'i>(cx: &mut Cx, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
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

pub(super) fn read_settings(cx: &mut Cx, v: Option<&Val>, dir: &Path, vars: &Vars) -> Settings {
    let empty = DeTable::new();
    let t = v
        .and_then(|v| as_table(cx, v, "`[pypm]`"))
        .unwrap_or(&empty);
    let t = Table::new(cx, t, "`[pypm]`".into(), keys::PYPM_KEYS);
    let from_file = t.estr(cx, "state_dir", vars).map(|(s, _)| s);
    // `$PYPM_STATE_DIR` overrides the file's (the Python client's test fixture runs a file's
    // apps in a private directory that way); relative to the file's directory like the key.
    let state_dir = dir.join(
        vars.get("PYPM_STATE_DIR")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or(from_file)
            .unwrap_or_else(|| ".pypm".into()),
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
        events_max_size: t.size(cx, "events_max_size").unwrap_or(10 * 1024 * 1024),
        events_max_files: t.int(cx, "events_max_files").unwrap_or(3) as u32,
    }
}

/// Splits `HOST:PORT` (`[::1]:80` for IPv6).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "expected HOST:PORT".to_string())?;
    if host.contains("://") {
        return Err(format!(
            "`{s}` names a scheme: write HOST:PORT, like `127.0.0.1:8000`"
        ));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.parse::<std::net::IpAddr>().is_err() && !is_host_name(host) {
        return Err(format!(
            "invalid host `{host}`: expected an IP address or a host name"
        ));
    }
    let port: u16 = port.parse().map_err(|_| format!("invalid port `{port}`"))?;
    Ok((host.to_string(), port))
}

/// A DNS name: dot-separated labels of letters, digits, `-` (and `_`, which container networks
/// use in service names), none empty or longer than 63, at most 253 in all.
fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub(super) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn check_name(cx: &mut Cx, name: &str, span: Span, what: &str) -> bool {
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

pub(super) fn relative_path(dir: &Path, s: &str) -> PathBuf {
    dir.join(s)
}

pub(super) fn read_environments(
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
                    "conda" if is_path_like(&s) => {
                        Some(EnvDecl::Conda(relative_path(dir, &s).display().to_string()))
                    }
                    "conda" => Some(EnvDecl::Conda(s)),
                    _ if is_path_like(&s) => Some(EnvDecl::Python(
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

pub(super) fn read_notifiers(cx: &mut Cx, v: Option<&Val>, vars: &Vars) -> Vec<Notifier> {
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
pub(super) fn check_graph(cx: &mut Cx, apps: &IndexMap<String, AppEntry>) {
    let edges: Vec<(String, String)> = apps
        .iter()
        .flat_map(|(name, (app, _))| {
            app.depends_on
                .iter()
                .map(move |(dep, _)| (name.clone(), dep.clone()))
        })
        .collect();
    for cycle in crate::desired::graph::cycles(apps.keys().map(String::as_str), &edges) {
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

pub(super) fn check_listen(cx: &mut Cx, apps: &IndexMap<String, AppEntry>) {
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
pub(super) fn cx_listen_span(cx: &Cx, app: &App, i: usize) -> Span {
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

pub(super) fn normalize_listen(l: &Listen) -> String {
    match l {
        Listen::Tcp(a) => match parse_host_port(a) {
            Ok((h, p)) if h == "localhost" => format!("tcp:127.0.0.1:{p}"),
            Ok((h, p)) => format!("tcp:{h}:{p}"),
            Err(_) => format!("tcp:{a}"),
        },
        Listen::Unix(p) => format!("unix:{}", lexically_normal(p).display()),
    }
}

/// `path` made absolute, without `.` parts and with `..` taking away the part before it: two
/// spellings of one socket compare equal. Symlinks are not followed (the socket may not exist).
pub(super) fn lexically_normal(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                // `/..` is `/`.
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
