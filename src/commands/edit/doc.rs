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

/// The app's table, in whichever form it is written.
pub fn app_mut<'d>(doc: &'d mut DocumentMut, name: &str) -> Option<&'d mut dyn TableLike> {
    doc.get_mut("apps")?
        .as_table_like_mut()?
        .get_mut(name)?
        .as_table_like_mut()
}

pub fn app<'d>(doc: &'d DocumentMut, name: &str) -> Option<&'d dyn TableLike> {
    doc.get("apps")?.as_table_like()?.get(name)?.as_table_like()
}

/// Adds an empty `[apps.NAME]` section after the last app (the file's end when it has none), or an
/// inline `NAME = {}` when the apps are one inline table (`apps = { ... }`).
pub fn add_app<'d>(doc: &'d mut DocumentMut, name: &str) -> Option<&'d mut dyn TableLike> {
    let has_content = doc.iter().next().is_some();
    let inline = doc.get("apps").is_some_and(Item::is_inline_table);
    if doc.get("apps").is_none() {
        let mut apps = Table::new();
        apps.set_implicit(true);
        doc.insert("apps", Item::Table(apps));
    }
    let item = if inline {
        Item::Value(Value::InlineTable(InlineTable::new()))
    } else {
        let mut t = Table::new();
        if has_content {
            t.decor_mut().set_prefix("\n");
        }
        Item::Table(t)
    };
    let apps = doc.get_mut("apps")?.as_table_like_mut()?;
    apps.insert(name, item);
    apps.get_mut(name)?.as_table_like_mut()
}

/// Sets `path` (`["instances"]`, `["env", "DEBUG"]`) in `table` to `value`. An existing value keeps
/// its surrounding spacing and trailing comment; missing intermediate tables are created inline.
pub fn set_path(table: &mut dyn TableLike, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
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
            None => {
                table.insert(first, Item::Value(value));
            }
        }
        return;
    }
    let is_sub = table.get(first).is_some_and(Item::is_table_like);
    if !is_sub {
        table.insert(first, Item::Value(Value::InlineTable(InlineTable::new())));
    }
    if let Some(sub) = table.get_mut(first).and_then(Item::as_table_like_mut) {
        set_path(sub, rest, value);
    }
}

/// Removes `path` from `table`; true when something was there. An inline sub-table left empty
/// is removed too (`env = {}` says nothing).
pub fn remove_path(table: &mut dyn TableLike, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(first).is_some();
    }
    let Some(sub) = table.get_mut(first).and_then(Item::as_table_like_mut) else {
        return false;
    };
    let removed = remove_path(sub, rest);
    if removed
        && sub.is_empty()
        && table.get(first).is_some_and(|i| i.is_inline_table() || is_dotted_table(i))
    {
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
    doc.get_mut("apps")
        .and_then(Item::as_table_like_mut)
        .and_then(|apps| apps.remove(name))
        .is_some()
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
    name
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
        assert_eq!(d.to_string(), "[apps.a]\ncommand = \"x\"\nenv = { DEBUG = \"1\" }\n");
        let a = app_mut(&mut d, "a").unwrap_or_else(|| panic!("no app"));
        assert!(remove_path(a, &p("env.DEBUG")));
        assert_eq!(d.to_string(), "[apps.a]\ncommand = \"x\"\n");
        let a = app_mut(&mut d, "a").unwrap_or_else(|| panic!("no app"));
        assert!(!remove_path(a, &p("env.NOPE")));
    }
}
