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
//!
//! This file owns the virtual source and the merge of the files; `include.rs` reads the files,
//! `profiles.rs` and `extends.rs` lay profiles and parent apps over the merged table, and
//! `plain.rs` turns it back into plain TOML for `pypm config`.

mod extends;
mod include;
mod plain;
mod profiles;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::diagnostic::{Diagnostic, line_col};

pub use extends::apply_extends;
pub use include::gather;
pub use plain::{leaves, to_value};
pub use profiles::apply_profiles;

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
    if by == 0 {
        return t; // the main file: its spans are already the right ones
    }
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

/// The key of a table entry by name.
fn entry<'a, 's>(
    t: &'a DeTable<'s>,
    name: &str,
) -> Option<(&'a Spanned<toml::de::DeString<'s>>, &'a Val<'s>)> {
    // A map lookup, not a scan: `extends` and the merge look up every app (O(N²) at 3,000 apps).
    t.get_key_value(name)
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
