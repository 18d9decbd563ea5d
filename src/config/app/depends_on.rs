//! An app's `depends_on`: a list of app names (condition `started`) or a table of app name →
//! condition, each naming an app of the file. Cycles are checked once all apps are read.

use std::collections::{HashMap, HashSet};

use toml::de::DeValue;

use crate::config::Condition;
use crate::config::keys;
use crate::config::table::{Cx, Table, type_name};
use crate::diagnostic::{Span, did_you_mean};

/// `depends_on` as (app, condition) in declared order, each dependency once, and where each
/// dependency's name is.
pub(super) fn read_depends_on(
    cx: &mut Cx,
    t: &Table,
    name: &str,
    app_names: &[&str],
) -> (Vec<(String, Condition)>, HashMap<String, Span>) {
    let deps = read_dependencies(cx, t, name, app_names);
    let conditions = deps.iter().map(|(n, c, _)| (n.clone(), *c)).collect();
    let spans = deps.into_iter().map(|(n, _, s)| (n, s)).collect();
    (conditions, spans)
}

fn read_dependencies(
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
