//! Each app's `extends`: the parent's keys (itself extended first) under the app's own; unknown
//! parents and cycles reported at the `extends` value.

use std::collections::HashSet;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::{deep_merge, entry};
use crate::diagnostic::{Diagnostic, did_you_mean};

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
    let mut done: HashSet<String> = HashSet::new();
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
    done: &mut HashSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    if done.contains(name) {
        return;
    }
    let Some((parent, span)) = extends_of(apps, name) else {
        done.insert(name.to_string());
        return;
    };
    if stack.iter().any(|s| s == name) || parent == name {
        let mut chain = stack.clone();
        chain.push(name.to_string());
        diags.push(Diagnostic::new(
            format!("`extends` cycle: {}", chain.join(" → ")),
            Some(span),
        ));
        done.insert(name.to_string());
        return;
    }
    if !apps.contains_key(parent.as_str()) {
        let d = Diagnostic::new(
            format!("app `{name}` extends `{parent}`, which is not an app of the file"),
            Some(span),
        )
        .with_help_opt(did_you_mean(&parent, names.iter().map(String::as_str)));
        diags.push(d);
        done.insert(name.to_string());
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
    done.insert(name.to_string());
}
