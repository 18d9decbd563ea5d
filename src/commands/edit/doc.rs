//! Format-preserving changes to the parsed file (`toml_edit`): only the keys an edit names are
//! touched; comments, blank lines, spacing and the order of everything else stay as written.
//!
//! An app may be written as a `[apps.NAME]` section (with `[apps.NAME.ready]` sub-sections), as an
//! inline table (`NAME = { ... }` under `[apps]`, or `apps = { NAME = { ... } }`), or with dotted
//! keys (`apps.NAME.command = ...`, `NAME.env.DEBUG = ...`); every form is edited in place, in its
//! own form. New sub-tables (`env`, `ready`) are written inline, on the app's own lines.

use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// Names of the apps in file order.
pub fn app_names(doc: &DocumentMut) -> Vec<String> {
    doc.get("apps")
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default()
}

/// The app's table (a section, an inline table or a dotted table) as an item.
pub fn app_mut<'d>(doc: &'d mut DocumentMut, name: &str) -> Option<&'d mut Item> {
    doc.get_mut("apps")?
        .as_table_like_mut()?
        .get_mut(name)
        .filter(|i| i.is_table_like())
}

pub fn app<'d>(doc: &'d DocumentMut, name: &str) -> Option<&'d dyn TableLike> {
    doc.get("apps")?.as_table_like()?.get(name)?.as_table_like()
}

/// Adds an empty `[apps.NAME]` section after the last app's tables (the file's end when it has
/// none), or an inline `NAME = {}` when the apps are one inline table (`apps = { ... }`).
pub fn add_app<'d>(doc: &'d mut DocumentMut, name: &str) -> Option<&'d mut Item> {
    let has_content =
        doc.iter().next().is_some() || !doc.trailing().as_str().unwrap_or("").is_empty();
    if let Some(Item::Value(Value::InlineTable(apps))) = doc.get_mut("apps") {
        insert_inline(apps, name, Value::InlineTable(InlineTable::new()));
        return doc.get_mut("apps")?.get_mut(name);
    }
    if doc.get("apps").is_none() {
        let mut apps = Table::new();
        apps.set_implicit(true);
        doc.insert("apps", Item::Table(apps));
    }
    let apps = doc.get_mut("apps")?.as_table_mut()?;
    let mut t = Table::new();
    if has_content {
        t.decor_mut().set_prefix("\n");
    }
    // Right after the last table under `apps`: a new table otherwise follows whichever table was
    // visited last, which may be an app's sub-section.
    let last = last_position(apps);
    t.set_position(last);
    apps.insert(name, Item::Table(t));
    apps.get_mut(name)
}

/// The largest document position of `t` and the tables under it.
fn last_position(t: &Table) -> Option<isize> {
    let mut best = t.position();
    for (_, item) in t.iter() {
        let sub = match item {
            Item::Table(sub) => last_position(sub),
            Item::ArrayOfTables(a) => a.iter().filter_map(last_position).max(),
            _ => None,
        };
        best = best.max(sub);
    }
    best
}

/// Inserts into an inline table in the table's own spacing: the space before `}` stays before
/// `}` (`{ a = 1, b = 2 }`, `{a=1, b = 2}`).
fn insert_inline(t: &mut InlineTable, key: &str, value: Value) {
    // Only an explicit suffix (from the parsed file) moves; a default one renders as " ".
    let closing = t.iter_mut().last().and_then(|(_, v)| {
        let s = v.decor().suffix()?.as_str()?.to_string();
        v.decor_mut().set_suffix("");
        Some(s)
    });
    t.insert(key, value);
    if let (Some(s), Some(v)) = (closing, t.get_mut(key)) {
        v.decor_mut().set_suffix(s);
    }
}

fn insert(item: &mut Item, key: &str, value: Value) {
    if let Some(it) = item.as_inline_table_mut() {
        insert_inline(it, key, value);
    } else if let Some(t) = item.as_table_like_mut() {
        t.insert(key, Item::Value(value));
    }
}

/// Sets `path` (`["instances"]`, `["env", "DEBUG"]`) in the table `item` to `value`. An existing
/// value keeps its surrounding spacing and trailing comment; missing intermediate tables are
/// created inline.
pub fn set_path(item: &mut Item, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(table) = item.as_table_like_mut() else {
        return;
    };
    if rest.is_empty() {
        match table.get_mut(first) {
            Some(Item::Value(old)) => {
                let decor = old.decor().clone();
                *old = value;
                *old.decor_mut() = decor;
            }
            Some(other) => *other = Item::Value(value),
            None => insert(item, first, value),
        }
        return;
    }
    if !table.get(first).is_some_and(Item::is_table_like) {
        table.remove(first);
        insert(item, first, Value::InlineTable(InlineTable::new()));
    }
    if let Some(sub) = item.as_table_like_mut().and_then(|t| t.get_mut(first)) {
        set_path(sub, rest, value);
    }
}

/// Removes `path` from the table `item`; true when something was there. An inline or dotted
/// sub-table left empty is removed too (`env = {}` says nothing).
pub fn remove_path(item: &mut Item, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(table) = item.as_table_like_mut() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(first).is_some();
    }
    let Some(sub) = table.get_mut(first) else {
        return false;
    };
    let removed = remove_path(sub, rest);
    let empty = sub.as_table_like().is_some_and(|t| t.is_empty());
    if removed && empty && (sub.is_inline_table() || is_dotted_table(sub)) {
        table.remove(first);
    }
    removed
}

fn is_dotted_table(i: &Item) -> bool {
    i.as_table().is_some_and(Table::is_dotted)
}

/// Removes the app and only its table (with its sub-sections and the comment lines above its
/// header); true when it was there.
pub fn remove_app(doc: &mut DocumentMut, name: &str) -> bool {
    let Some(removed) = doc
        .get_mut("apps")
        .and_then(Item::as_table_like_mut)
        .and_then(|apps| apps.remove(name))
    else {
        return false;
    };
    // The comment block right above the header is the app's; what is separated from the header
    // by a blank line (a file's header, a comment about the next section) is not, and moves to
    // whatever follows.
    if let Item::Table(t) = &removed {
        let prefix = t.decor().prefix().and_then(|p| p.as_str()).unwrap_or("");
        let kept = kept_comments(prefix);
        if !kept.is_empty() {
            let after = t.position().unwrap_or(isize::MAX);
            match next_table(doc.as_table_mut(), after) {
                Some(next) => {
                    let own = next
                        .decor()
                        .prefix()
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .to_string();
                    next.decor_mut().set_prefix(format!("{kept}{own}"));
                }
                None => {
                    let trailing = doc.trailing().as_str().unwrap_or("").to_string();
                    doc.set_trailing(format!("{kept}{trailing}"));
                }
            }
        }
    }
    true
}

/// The part of a table's prefix that is not its own comment block: everything up to the last
/// blank line, without that line. Empty when only whitespace would remain.
fn kept_comments(prefix: &str) -> &str {
    let lines: Vec<&str> = prefix.split_inclusive('\n').collect();
    let Some(last_blank) = lines
        .iter()
        .rposition(|l| l.trim().is_empty() && l.ends_with('\n'))
    else {
        return "";
    };
    let len: usize = lines[..last_blank].iter().map(|l| l.len()).sum();
    let kept = &prefix[..len];
    if kept.trim().is_empty() { "" } else { kept }
}

/// The table rendered first after document position `after`.
fn next_table(root: &mut Table, after: isize) -> Option<&mut Table> {
    fn walk<'t>(t: &'t mut Table, after: isize, best: &mut Option<(isize, &'t mut Table)>) {
        for (_, item) in t.iter_mut() {
            match item {
                Item::Table(sub) => {
                    let pos = sub.position();
                    walk_then_consider(sub, pos, after, best);
                }
                Item::ArrayOfTables(a) => {
                    for sub in a.iter_mut() {
                        let pos = sub.position();
                        walk_then_consider(sub, pos, after, best);
                    }
                }
                _ => {}
            }
        }
    }
    fn walk_then_consider<'t>(
        sub: &'t mut Table,
        pos: Option<isize>,
        after: isize,
        best: &mut Option<(isize, &'t mut Table)>,
    ) {
        let better = pos.is_some_and(|p| p > after && best.as_ref().is_none_or(|(b, _)| p < *b));
        if better && !sub.is_implicit() && !sub.is_dotted() {
            if let Some(p) = pos {
                *best = Some((p, sub));
            }
        } else {
            walk(sub, after, best);
        }
    }
    let mut best = None;
    walk(root, after, &mut best);
    best.map(|(_, t)| t)
}

/// The name of an `[environments.NAME]` entry declaring `kind = value` (`venv = ".venv"`), else a
/// new entry named after `app` (made unique). Returns the name.
pub fn ensure_environment(doc: &mut DocumentMut, kind: &str, value: &str, app: &str) -> String {
    let existing = doc
        .get("environments")
        .and_then(Item::as_table_like)
        .and_then(|envs| {
            envs.iter().find_map(|(name, e)| {
                let e = e.as_table_like()?;
                let same = e.len() == 1 && e.get(kind).and_then(Item::as_str) == Some(value);
                same.then(|| name.to_string())
            })
        });
    if let Some(name) = existing {
        return name;
    }
    if doc.get("environments").is_none() {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("environments", Item::Table(t));
    }
    let Some(envs) = doc
        .get_mut("environments")
        .and_then(Item::as_table_like_mut)
    else {
        return app.to_string();
    };
    let mut name = app.to_string();
    let mut n = 2;
    while envs.contains_key(&name) {
        name = format!("{app}-{n}");
        n += 1;
    }
    let mut t = Table::new();
    t.decor_mut().set_prefix("\n");
    t.insert(kind, toml_edit::value(value));
    envs.insert(&name, Item::Table(t));
    place_environment(doc, &name);
    name
}

/// Puts a new `[environments.NAME]` after the other environments, or, the first one, before the
/// first app: positions are sort keys, so doubling them all makes room without moving anything.
fn place_environment(doc: &mut DocumentMut, name: &str) {
    fn double(t: &mut Table) {
        if let Some(p) = t.position() {
            t.set_position(Some(p.saturating_mul(2)));
        }
        for (_, item) in t.iter_mut() {
            match item {
                Item::Table(sub) => double(sub),
                Item::ArrayOfTables(a) => a.iter_mut().for_each(double),
                _ => {}
            }
        }
    }
    fn first_position(t: &Table) -> Option<isize> {
        let mut best = if t.is_implicit() { None } else { t.position() };
        for (_, item) in t.iter() {
            if let Item::Table(sub) = item {
                best = match (best, first_position(sub)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        best
    }
    double(doc.as_table_mut());
    let others = doc
        .get("environments")
        .and_then(Item::as_table)
        .map(|envs| {
            envs.iter()
                .filter(|(k, _)| *k != name)
                .filter_map(|(_, v)| v.as_table().and_then(last_position))
                .max()
        })
        .unwrap_or(None);
    let first_app = doc
        .get("apps")
        .and_then(Item::as_table)
        .and_then(first_position);
    let mut env_prefix = None;
    let pos = match (others, first_app) {
        (Some(p), _) => Some(p + 1),
        (None, Some(a)) => {
            // Before the first app: what above its header is not its own (a file header) stays
            // on top, above the new table; its own comment block stays with it.
            if let Some(first) = doc
                .get_mut("apps")
                .and_then(Item::as_table_mut)
                .and_then(|t| next_table(t, a - 1))
            {
                let p = first
                    .decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .unwrap_or("")
                    .to_string();
                let kept = kept_comments(&p).to_string();
                let own = p[kept.len()..].to_string();
                let (env_p, app_p) = if !kept.is_empty() {
                    (format!("{kept}\n"), own)
                } else if own.trim().is_empty() {
                    (own, "\n".to_string())
                } else if own.starts_with('\n') {
                    ("\n".to_string(), own)
                } else {
                    ("\n".to_string(), format!("\n{own}"))
                };
                first.decor_mut().set_prefix(app_p);
                env_prefix = Some(env_p);
            }
            Some(a - 1)
        }
        (None, None) => None,
    };
    if let Some(t) = doc
        .get_mut("environments")
        .and_then(|e| e.get_mut(name))
        .and_then(Item::as_table_mut)
    {
        t.set_position(pos);
        if let Some(p) = env_prefix {
            t.decor_mut().set_prefix(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> DocumentMut {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn finds_apps_in_every_form() {
        let d = doc("apps.a.command = \"x\"\n[apps.b]\ncommand = \"y\"\n");
        assert_eq!(app_names(&d), ["a", "b"]);
        let d = doc("apps = { a = { command = \"x\" } }\n");
        assert_eq!(app_names(&d), ["a"]);
        let d = doc("[apps]\na = { command = \"x\" }\nb.command = \"y\"\n");
        assert_eq!(app_names(&d), ["a", "b"]);
    }

    #[test]
    fn set_and_remove_nested() {
        let mut d = doc("[apps.a]\ncommand = \"x\"\n");
        let a = app_mut(&mut d, "a").unwrap_or_else(|| panic!("no app"));
        set_path(a, &p("env.DEBUG"), Value::from("1"));
        assert_eq!(
            d.to_string(),
            "[apps.a]\ncommand = \"x\"\nenv = { DEBUG = \"1\" }\n"
        );
        let a = app_mut(&mut d, "a").unwrap_or_else(|| panic!("no app"));
        assert!(remove_path(a, &p("env.DEBUG")));
        assert_eq!(d.to_string(), "[apps.a]\ncommand = \"x\"\n");
        let a = app_mut(&mut d, "a").unwrap_or_else(|| panic!("no app"));
        assert!(!remove_path(a, &p("env.NOPE")));
    }
}
