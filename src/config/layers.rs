//! The effective file (issue 20): the main file with the files it `include`s, the active
//! `[profiles.NAME]` laid over them, and each app's `extends`, merged into one spanned TOML
//! table before the reader sees it.
//!
//! Every file's text is kept in one virtual source (the main file first, at offset 0, so a file
//! without includes reads exactly as before), and the spans of each file's values are shifted
//! to where its text sits there: a diagnostic about any value still points at the file, line
//! and column it came from ([`Sources::locate`], [`super::ConfigError::render`]).
//!
//! Merging: tables merge key by key, arrays and scalars replace, `env` (a table) merges; an app
//! (or environment) defined in two files is an error naming both places; a profile may add keys
//! and apps, and `enabled = false` in a profile removes the app from that environment.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::diagnostic::{Diagnostic, did_you_mean, line_col};

/// One file of the virtual source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The path as shown in messages.
    pub display: String,
    pub start: usize,
    pub len: usize,
}

/// The texts of the main file and of everything it includes, end to end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    pub text: String,
    pub files: Vec<SourceFile>,
}

impl Sources {
    /// The file holding byte `offset` of the virtual source, and the offset within it.
    pub fn file_of(&self, offset: usize) -> Option<(&SourceFile, usize)> {
        self.files
            .iter()
            .find(|f| offset >= f.start && offset <= f.start + f.len)
            .map(|f| (f, offset - f.start))
    }

    /// `FILE:LINE:COL` of a virtual offset.
    pub fn locate(&self, offset: usize) -> String {
        match self.file_of(offset) {
            Some((f, local)) => {
                let text = &self.text[f.start..f.start + f.len];
                let (l, c) = line_col(text, local);
                format!("{}:{l}:{c}", f.display)
            }
            None => "?".into(),
        }
    }
}

type Val<'s> = Spanned<DeValue<'s>>;

fn shifted(r: Range<usize>, by: usize) -> Range<usize> {
    r.start + by..r.end + by
}

fn shift_value(v: Val<'_>, by: usize) -> Val<'_> {
    let span = shifted(v.span(), by);
    let inner = match v.into_inner() {
        DeValue::Array(a) => {
            let mut n = DeArray::new();
            for x in a.iter().cloned() {
                n.push(shift_value(x, by));
            }
            DeValue::Array(n)
        }
        DeValue::Table(t) => DeValue::Table(shift_table(t, by)),
        other => other,
    };
    Spanned::new(span, inner)
}

fn shift_table(t: DeTable<'_>, by: usize) -> DeTable<'_> {
    let mut n = DeTable::new();
    for (k, v) in t {
        let ks = shifted(k.span(), by);
        n.insert(Spanned::new(ks, k.into_inner()), shift_value(v, by));
    }
    n
}

/// `over` laid over `base`: tables merge key by key, anything else replaces.
pub fn deep_merge<'s>(base: &mut DeTable<'s>, over: DeTable<'s>) {
    for (k, v) in over {
        merge_entry(base, k, v);
    }
}

/// One entry of [`deep_merge`]: a table into a table merges, anything else replaces (taking
/// the new key's span, so errors point at the value that won).
fn merge_entry<'s>(base: &mut DeTable<'s>, k: Spanned<toml::de::DeString<'s>>, v: Val<'s>) {
    if let Some(b) = base.get_mut(k.get_ref().as_ref())
        && let (DeValue::Table(bt), DeValue::Table(_)) = (b.get_mut(), v.get_ref())
    {
        if let DeValue::Table(ot) = v.into_inner() {
            deep_merge(bt, ot);
        }
        return;
    }
    base.remove(k.get_ref().as_ref());
    base.insert(k, v);
}

/// A diagnostic found while gathering files, before their offsets are known.
struct Pending {
    file: usize,
    span: Option<Range<usize>>,
    message: String,
}

/// The include entries of a file: (text, local span).
fn includes_of(text: &str) -> Vec<(String, Range<usize>)> {
    let Ok(root) = DeTable::parse(text) else {
        return Vec::new();
    };
    let Some(v) = root.get_ref().get("include") else {
        return Vec::new();
    };
    match v.get_ref() {
        DeValue::String(s) => vec![(s.to_string(), v.span())],
        DeValue::Array(a) => a
            .iter()
            .filter_map(|x| match x.get_ref() {
                DeValue::String(s) => Some((s.to_string(), x.span())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

struct Gather {
    texts: Vec<(PathBuf, String, String)>,
    /// Files in merge order: each file's includes (recursively) before the file itself.
    order: Vec<usize>,
    pending: Vec<Pending>,
    main_dir: PathBuf,
    main_display_dir: PathBuf,
}

impl Gather {
    fn display_of(&self, path: &Path) -> String {
        match path.strip_prefix(&self.main_dir) {
            Ok(rel) => self.main_display_dir.join(rel).display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    /// Adds `path`'s includes (depth first), then `path` itself (already in `texts` as `idx`).
    fn visit(&mut self, idx: usize, stack: &mut Vec<PathBuf>) {
        let (path, text) = (self.texts[idx].0.clone(), self.texts[idx].2.clone());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (entry, span) in includes_of(&text) {
            let pattern = dir.join(&entry);
            let globbed = entry.contains(['*', '?', '[']);
            let mut found: Vec<PathBuf> = if globbed {
                glob::glob(&pattern.to_string_lossy())
                    .map(|g| g.filter_map(Result::ok).filter(|p| p.is_file()).collect())
                    .unwrap_or_default()
            } else {
                vec![pattern.clone()]
            };
            found.sort();
            if found.is_empty() {
                self.pending.push(Pending {
                    file: idx,
                    span: Some(span.clone()),
                    message: format!("`include = \"{entry}\"` matches no file"),
                });
            }
            for f in found {
                let canon = f.canonicalize().unwrap_or_else(|_| f.clone());
                if stack.contains(&canon) {
                    let chain: Vec<String> = stack
                        .iter()
                        .chain(std::iter::once(&canon))
                        .map(|p| self.display_of(p))
                        .collect();
                    self.pending.push(Pending {
                        file: idx,
                        span: Some(span.clone()),
                        message: format!("include cycle: {}", chain.join(" → ")),
                    });
                    continue;
                }
                if self.texts.iter().any(|(p, _, _)| *p == canon) {
                    continue; // included twice (a diamond): once is enough
                }
                // A device or FIFO would be read forever (`include = ["/dev/zero"]`).
                if !std::fs::metadata(&f).is_ok_and(|m| m.is_file()) && f.exists() {
                    self.pending.push(Pending {
                        file: idx,
                        span: Some(span.clone()),
                        message: format!(
                            "included `{}` is not a regular file",
                            self.display_of(&f)
                        ),
                    });
                    continue;
                }
                let text = match std::fs::read_to_string(&f) {
                    Ok(t) => t,
                    Err(e) => {
                        self.pending.push(Pending {
                            file: idx,
                            span: Some(span.clone()),
                            message: format!(
                                "cannot read included file `{}`: {e}",
                                self.display_of(&f)
                            ),
                        });
                        continue;
                    }
                };
                let display = self.display_of(&canon);
                self.texts.push((canon.clone(), display, text));
                let child = self.texts.len() - 1;
                stack.push(canon);
                self.visit(child, stack);
                stack.pop();
            }
        }
        self.order.push(idx);
    }
}

/// Reads the main file's includes and builds the virtual source. Returns it with the merge
/// order and the problems met (missing files, cycles) as diagnostics on virtual spans.
pub fn gather(
    main_src: &str,
    path: &Path,
    display: &str,
) -> (Sources, Vec<usize>, Vec<Diagnostic>) {
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut g = Gather {
        texts: vec![(canon.clone(), display.to_string(), main_src.to_string())],
        order: Vec::new(),
        pending: Vec::new(),
        main_dir: canon.parent().map(Path::to_path_buf).unwrap_or_default(),
        main_display_dir: Path::new(display)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut stack = vec![canon];
    g.visit(0, &mut stack);
    let mut sources = Sources::default();
    for (p, d, t) in &g.texts {
        let start = sources.text.len();
        sources.text.push_str(t);
        sources.files.push(SourceFile {
            path: p.clone(),
            display: d.clone(),
            start,
            len: t.len(),
        });
        // A separator, so that no file's span touches the next one's first byte.
        sources.text.push('\n');
    }
    let diags = g
        .pending
        .into_iter()
        .map(|p| {
            let by = sources.files[p.file].start;
            Diagnostic::new(p.message, p.span.map(|s| shifted(s, by)))
        })
        .collect();
    (sources, g.order, diags)
}

/// The key of a table entry by name.
fn entry<'a, 's>(
    t: &'a DeTable<'s>,
    name: &str,
) -> Option<(&'a Spanned<toml::de::DeString<'s>>, &'a Val<'s>)> {
    t.iter().find(|(k, _)| k.get_ref().as_ref() == name)
}

/// Merges the files (in `order`) into one table; apps and environments defined twice are
/// errors naming both places.
pub fn merge<'s>(
    sources: &'s Sources,
    order: &[usize],
    diags: &mut Vec<Diagnostic>,
) -> Option<DeTable<'s>> {
    let mut parsed: Vec<Option<DeTable<'s>>> = vec![None; sources.files.len()];
    for (i, f) in sources.files.iter().enumerate() {
        let text = &sources.text[f.start..f.start + f.len];
        match DeTable::parse(text) {
            Ok(t) => parsed[i] = Some(shift_table(t.into_inner(), f.start)),
            Err(e) => {
                let msg = e.message().trim().replace('\n', "; ");
                diags.push(Diagnostic::new(
                    format!("invalid TOML: {msg}"),
                    e.span().map(|s| shifted(s, f.start)),
                ));
            }
        }
    }
    if parsed.iter().any(Option::is_none) {
        return None;
    }
    let mut root = DeTable::new();
    for &i in order {
        let Some(t) = parsed[i].take() else { continue };
        for (k, v) in t {
            let name = k.get_ref().as_ref().to_string();
            match name.as_str() {
                // The main file's `include` stays for the reader (which checks its type); the
                // others' have done their work.
                "include" if i != 0 => {}
                "apps" | "environments" => merge_named(&mut root, k, v, sources, diags),
                "notify" => match (root.get_mut("notify"), v.get_ref()) {
                    (Some(base), DeValue::Array(more)) => {
                        if let DeValue::Array(b) = base.get_mut() {
                            for x in more.iter().cloned() {
                                b.push(x);
                            }
                        }
                    }
                    _ => {
                        root.remove("notify");
                        root.insert(k, v);
                    }
                },
                _ => merge_entry(&mut root, k, v),
            }
        }
    }
    Some(root)
}

/// `[apps]` or `[environments]` of one more file: each name once.
fn merge_named<'s>(
    root: &mut DeTable<'s>,
    key: Spanned<toml::de::DeString<'s>>,
    v: Val<'s>,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) {
    let what = if key.get_ref().as_ref() == "apps" {
        "app"
    } else {
        "environment"
    };
    let DeValue::Table(more) = v.get_ref() else {
        root.insert(key, v);
        return;
    };
    let Some(base) = root.get_mut(key.get_ref().as_ref()) else {
        root.insert(key, v);
        return;
    };
    let DeValue::Table(bt) = base.get_mut() else {
        return;
    };
    for (name, val) in more.clone() {
        if let Some((first, _)) = entry(bt, name.get_ref().as_ref()) {
            diags.push(
                Diagnostic::new(
                    format!("{what} `{}` is defined twice", name.get_ref().as_ref()),
                    Some(name.span()),
                )
                .with_help(format!(
                    "it is also defined at {}; to change it per environment, use `[profiles.NAME.apps.{}]`",
                    sources.locate(first.span().start),
                    name.get_ref().as_ref()
                )),
            );
            continue;
        }
        bt.insert(name, val);
    }
}

/// Lays the active profiles over the merged file, in order, and removes `profiles` from it.
pub fn apply_profiles<'s>(root: &mut DeTable<'s>, active: &[String], diags: &mut Vec<Diagnostic>) {
    let profiles = root.remove("profiles");
    let defined: Vec<String> = match profiles.as_ref().map(|p| p.get_ref()) {
        Some(DeValue::Table(t)) => t.keys().map(|k| k.get_ref().as_ref().to_string()).collect(),
        _ => Vec::new(),
    };
    for name in active {
        let Some(DeValue::Table(all)) = profiles.as_ref().map(|p| p.get_ref()) else {
            diags.push(Diagnostic::new(
                format!("no profile `{name}`: the file defines no `[profiles]`"),
                None,
            ));
            continue;
        };
        let Some((_, p)) = entry(all, name) else {
            let mut d = Diagnostic::new(
                format!("no profile `{name}`; the file defines {}", list(&defined)),
                profiles.as_ref().map(|p| p.span()),
            );
            if let Some(h) = did_you_mean(name, defined.iter().map(String::as_str)) {
                d = d.with_help(h);
            }
            diags.push(d);
            continue;
        };
        let DeValue::Table(p) = p.get_ref() else {
            diags.push(Diagnostic::new(
                format!("`[profiles.{name}]` must be a table"),
                Some(p.span()),
            ));
            continue;
        };
        for (k, v) in p.clone() {
            match k.get_ref().as_ref() {
                "pypm" => merge_entry(root, k, v),
                "apps" => {
                    let DeValue::Table(apps) = v.get_ref() else {
                        diags.push(Diagnostic::new(
                            format!("`[profiles.{name}.apps]` must be a table"),
                            Some(v.span()),
                        ));
                        continue;
                    };
                    let removed: Vec<String> = apps
                        .iter()
                        .filter(|(_, a)| {
                            matches!(a.get_ref(), DeValue::Table(t) if t.get("enabled").is_some_and(|e| matches!(e.get_ref(), DeValue::Boolean(false))))
                        })
                        .map(|(n, _)| n.get_ref().as_ref().to_string())
                        .collect();
                    merge_entry(root, k, v.clone());
                    // `enabled = false` in a profile: not part of this environment at all.
                    if let Some(DeValue::Table(all)) = root.get_mut("apps").map(|a| a.get_mut()) {
                        for r in removed {
                            all.remove(r.as_str());
                        }
                    }
                }
                other => diags.push(
                    Diagnostic::new(
                        format!("unknown key `{other}` in `[profiles.{name}]`"),
                        Some(k.span()),
                    )
                    .with_help(
                        "a profile holds `[profiles.NAME.pypm]` and `[profiles.NAME.apps.APP]`",
                    ),
                ),
            }
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Each app's `extends = "other"`: it starts from the other app's keys (itself extended first),
/// its own keys laid over them. Unknown names and cycles are errors at the `extends` value.
pub fn apply_extends(root: &mut DeTable<'_>, diags: &mut Vec<Diagnostic>) {
    let Some(DeValue::Table(apps)) = root.get_mut("apps").map(|a| a.get_mut()) else {
        return;
    };
    let names: Vec<String> = apps
        .keys()
        .map(|k| k.get_ref().as_ref().to_string())
        .collect();
    let mut done: Vec<String> = Vec::new();
    for name in &names {
        resolve_extends(apps, name, &names, &mut Vec::new(), &mut done, diags);
    }
}

fn extends_of<'s>(apps: &DeTable<'s>, name: &str) -> Option<(String, Range<usize>)> {
    let (_, a) = entry(apps, name)?;
    let DeValue::Table(t) = a.get_ref() else {
        return None;
    };
    let (_, e) = entry(t, "extends")?;
    match e.get_ref() {
        DeValue::String(s) => Some((s.to_string(), e.span())),
        _ => None, // the reader reports the type
    }
}

fn resolve_extends(
    apps: &mut DeTable<'_>,
    name: &str,
    names: &[String],
    stack: &mut Vec<String>,
    done: &mut Vec<String>,
    diags: &mut Vec<Diagnostic>,
) {
    if done.iter().any(|d| d == name) {
        return;
    }
    let Some((parent, span)) = extends_of(apps, name) else {
        done.push(name.to_string());
        return;
    };
    if stack.iter().any(|s| s == name) || parent == name {
        let mut chain = stack.clone();
        chain.push(name.to_string());
        diags.push(Diagnostic::new(
            format!("`extends` cycle: {}", chain.join(" → ")),
            Some(span),
        ));
        done.push(name.to_string());
        return;
    }
    if !names.contains(&parent) {
        let d = Diagnostic::new(
            format!("app `{name}` extends `{parent}`, which is not an app of the file"),
            Some(span),
        )
        .with_help_opt(did_you_mean(&parent, names.iter().map(String::as_str)));
        diags.push(d);
        done.push(name.to_string());
        return;
    }
    stack.push(name.to_string());
    resolve_extends(apps, &parent, names, stack, done, diags);
    stack.pop();
    let Some((_, p)) = entry(apps, &parent) else {
        return;
    };
    let DeValue::Table(mut base) = p.get_ref().clone() else {
        return;
    };
    // Its own place, not the parent's: `enabled` and `instances` are inherited like the rest.
    base.remove("extends");
    if let Some(child) = apps.get_mut(name)
        && let DeValue::Table(own) = child.get_mut()
    {
        let mut own_table = std::mem::take(own);
        own_table.remove("extends");
        deep_merge(&mut base, own_table);
        *own = base;
    }
    done.push(name.to_string());
}

/// A merged value as a plain TOML value (for `pypm config`).
pub fn to_value(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            let digits = digits
                .trim_start_matches("0x")
                .trim_start_matches("0o")
                .trim_start_matches("0b");
            toml::Value::Integer(i64::from_str_radix(digits, i.radix()).unwrap_or_default())
        }
        DeValue::Float(f) => {
            let t = f.as_str().replace('_', "");
            let x = match t.as_str() {
                "inf" | "+inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" | "+nan" | "-nan" => f64::NAN,
                other => other.parse().unwrap_or_default(),
            };
            toml::Value::Float(x)
        }
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_value(x.get_ref())).collect()),
        DeValue::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, v)| (k.get_ref().as_ref().to_string(), to_value(v.get_ref())))
                .collect(),
        ),
    }
}

/// Every leaf of the merged table: (dotted key, value, span start), for `pypm config -v`.
pub fn leaves(t: &DeTable<'_>) -> Vec<(String, toml::Value, usize)> {
    fn bare(k: &str) -> String {
        if !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            k.to_string()
        } else {
            format!("{k:?}")
        }
    }
    fn walk(prefix: &str, t: &DeTable<'_>, out: &mut Vec<(String, toml::Value, usize)>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                bare(k.get_ref().as_ref())
            } else {
                format!("{prefix}.{}", bare(k.get_ref().as_ref()))
            };
            match v.get_ref() {
                DeValue::Table(inner) if !inner.is_empty() => walk(&key, inner, out),
                other => out.push((key, to_value(other), v.span().start)),
            }
        }
    }
    let mut out = Vec::new();
    walk("", t, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (what, files as (name, text), active profiles, expected merged table or first error)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

    fn merged(files: &[(&str, &str)], profiles: &[&str]) -> (String, Vec<String>) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            let p = dir.path().join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&p, text).expect("write");
        }
        let main = dir.path().join(files[0].0);
        let (sources, order, mut diags) = gather(files[0].1, &main, files[0].0);
        let root = merge(&sources, &order, &mut diags);
        let out = match root {
            Some(mut r) => {
                let active: Vec<String> = profiles.iter().map(|s| s.to_string()).collect();
                apply_profiles(&mut r, &active, &mut diags);
                apply_extends(&mut r, &mut diags);
                to_toml(&r)
            }
            None => String::new(),
        };
        let msgs = diags
            .iter()
            .map(|d| {
                let at = d
                    .span
                    .as_ref()
                    .map(|s| sources.locate(s.start))
                    .unwrap_or_default();
                format!(
                    "{at}: {}{}",
                    d.message,
                    d.help
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        (out, msgs)
    }

    /// The merged table as compact TOML-ish text, for the assertions.
    fn to_toml(t: &DeTable<'_>) -> String {
        fn val(v: &DeValue<'_>) -> String {
            match v {
                DeValue::String(s) => format!("{:?}", s.as_ref()),
                DeValue::Integer(i) => i.as_str().to_string(),
                DeValue::Float(f) => f.as_str().to_string(),
                DeValue::Boolean(b) => b.to_string(),
                DeValue::Datetime(d) => d.to_string(),
                DeValue::Array(a) => format!(
                    "[{}]",
                    a.iter()
                        .map(|x| val(x.get_ref()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                DeValue::Table(t) => format!(
                    "{{{}}}",
                    t.iter()
                        .map(|(k, v)| format!("{} = {}", k.get_ref().as_ref(), val(v.get_ref())))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        val(&DeValue::Table(t.clone()))
    }

    #[test]
    fn merge_rules() {
        // (what, files, profiles, expected merged table or the first error)
        let cases: &[Case] = &[
            (
                "an include adds apps",
                &[
                    (
                        "pypm.toml",
                        "include = [\"more.toml\"]\n[apps.a]\ncommand = \"x\"\n",
                    ),
                    ("more.toml", "[apps.b]\ncommand = \"y\"\n"),
                ],
                &[],
                "{apps = {b = {command = \"y\"}, a = {command = \"x\"}}, include = [\"more.toml\"]}",
            ),
            (
                "[pypm] merges key by key, the including file last",
                &[
                    (
                        "pypm.toml",
                        "include = [\"base.toml\"]\n[pypm]\nlog_dir = \"l\"\n",
                    ),
                    (
                        "base.toml",
                        "[pypm]\nstate_dir = \"s\"\nlog_dir = \"old\"\n",
                    ),
                ],
                &[],
                "{pypm = {state_dir = \"s\", log_dir = \"l\"}, include = [\"base.toml\"]}",
            ),
            (
                "globs are sorted",
                &[
                    ("pypm.toml", "include = [\"svc/*.toml\"]\n"),
                    ("svc/b.toml", "[apps.b]\ncommand = \"b\"\n"),
                    ("svc/a.toml", "[apps.a]\ncommand = \"a\"\n"),
                ],
                &[],
                "{apps = {a = {command = \"a\"}, b = {command = \"b\"}}, include = [\"svc/*.toml\"]}",
            ),
            (
                "a profile: tables merge, arrays and scalars replace, env merges",
                &[(
                    "pypm.toml",
                    "[apps.api]\ncommand = \"x\"\ninstances = 1\nwatch = [\"*.py\"]\nenv = { A = \"1\", B = \"2\" }\n[profiles.prod.apps.api]\ninstances = 4\nwatch = []\nenv = { B = \"3\" }\n",
                )],
                &["prod"],
                "{apps = {api = {command = \"x\", env = {A = \"1\", B = \"3\"}, instances = 4, watch = []}}}",
            ),
            (
                "profiles apply in order",
                &[(
                    "pypm.toml",
                    "[apps.api]\ncommand = \"x\"\n[profiles.a.apps.api]\ninstances = 2\n[profiles.b.apps.api]\ninstances = 3\n",
                )],
                &["b", "a"],
                "{apps = {api = {command = \"x\", instances = 2}}}",
            ),
            (
                "enabled = false in a profile removes the app",
                &[(
                    "pypm.toml",
                    "[apps.api]\ncommand = \"x\"\n[apps.dev]\ncommand = \"y\"\n[profiles.prod.apps.dev]\nenabled = false\n",
                )],
                &["prod"],
                "{apps = {api = {command = \"x\"}}}",
            ),
            (
                "a profile may add an app and [pypm] keys",
                &[(
                    "pypm.toml",
                    "[apps.api]\ncommand = \"x\"\n[profiles.ci.pypm]\nlog_dir = \"ci-logs\"\n[profiles.ci.apps.tests]\ncommand = \"pytest\"\nkind = \"task\"\n",
                )],
                &["ci"],
                "{apps = {api = {command = \"x\"}, tests = {command = \"pytest\", kind = \"task\"}}, pypm = {log_dir = \"ci-logs\"}}",
            ),
            (
                "an inactive profile changes nothing",
                &[(
                    "pypm.toml",
                    "[apps.api]\ncommand = \"x\"\n[profiles.prod.apps.api]\ninstances = 4\n",
                )],
                &[],
                "{apps = {api = {command = \"x\"}}}",
            ),
            (
                "extends: chained, own keys win, tables merge",
                &[(
                    "pypm.toml",
                    "[apps.base]\ncommand = \"w\"\nenv = { A = \"1\" }\n[apps.mid]\nextends = \"base\"\nargs_like = 1\n[apps.leaf]\nextends = \"mid\"\ncommand = \"v\"\nenv = { B = \"2\" }\n",
                )],
                &[],
                "{apps = {base = {command = \"w\", env = {A = \"1\"}}, mid = {command = \"w\", env = {A = \"1\"}, args_like = 1}, leaf = {env = {A = \"1\", B = \"2\"}, args_like = 1, command = \"v\"}}}",
            ),
        ];
        for (what, files, profiles, want) in cases {
            let (got, errs) = merged(files, profiles);
            assert!(errs.is_empty(), "{what}: {errs:?}");
            assert_eq!(&got, want, "{what}");
        }
    }

    #[test]
    fn errors_name_the_file_line_and_column_they_come_from() {
        let cases: &[Case] = &[
            (
                "an app defined twice",
                &[
                    (
                        "pypm.toml",
                        "include = [\"a.toml\"]\n\n[apps.api]\ncommand = \"x\"\n",
                    ),
                    ("a.toml", "[apps.api]\ncommand = \"y\"\n"),
                ],
                &[],
                "pypm.toml:3:7: app `api` is defined twice (it is also defined at a.toml:1:7; to change it per environment, use `[profiles.NAME.apps.api]`)",
            ),
            (
                "a cycle",
                &[
                    ("pypm.toml", "include = [\"a.toml\"]\n"),
                    ("a.toml", "include = [\"pypm.toml\"]\n"),
                ],
                &[],
                "a.toml:1:12: include cycle: pypm.toml → a.toml → pypm.toml",
            ),
            (
                "a missing file",
                &[("pypm.toml", "include = [\"nope.toml\"]\n")],
                &[],
                "pypm.toml:1:12: cannot read included file `nope.toml`: No such file or directory (os error 2)",
            ),
            (
                "a syntax error in an included file",
                &[
                    ("pypm.toml", "include = [\"a.toml\"]\n"),
                    ("a.toml", "\n[apps.x\n"),
                ],
                &[],
                "a.toml:2:8: invalid TOML: unclosed table, expected `]`",
            ),
            (
                "an unknown profile",
                &[(
                    "pypm.toml",
                    "[apps.api]\ncommand = \"x\"\n[profiles.production.apps.api]\ninstances = 2\n",
                )],
                &["prodution"],
                "pypm.toml:3:2: no profile `prodution`; the file defines `production` (did you mean `production`?)",
            ),
            (
                "a device is not a file",
                &[("pypm.toml", "include = [\"/dev/zero\"]\n")],
                &[],
                "pypm.toml:1:12: included `/dev/zero` is not a regular file",
            ),
            (
                "an extends cycle",
                &[(
                    "pypm.toml",
                    "[apps.a]\nextends = \"b\"\n[apps.b]\nextends = \"a\"\n",
                )],
                &[],
                "pypm.toml:2:11: `extends` cycle: a → b → a",
            ),
        ];
        for (what, files, profiles, want) in cases {
            let (_, errs) = merged(files, profiles);
            assert_eq!(
                errs.first().map(String::as_str),
                Some(*want),
                "{what}: {errs:?}"
            );
        }
    }
}
