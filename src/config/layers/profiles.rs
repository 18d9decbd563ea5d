//! The active `[profiles.NAME]` laid over the merged file: `[pypm]` keys and apps merged, an app
//! with `enabled = false` in a profile removed.

use toml::de::{DeTable, DeValue};

use super::{entry, merge_entry};
use crate::diagnostic::{Diagnostic, did_you_mean};

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
