//! `pypm stop`, `delete` (`rm`), `scale`, `set` and `unset`: each changes keys of one app in
//! `pypm.toml` (see `edit`), then the running supervisor applies the file.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Value};

use super::Failure;
use super::edit::{self, apply, doc, value};
use crate::cli::{DeleteArgs, EditArgs, ScaleArgs, SetArgs, StopArgs, UnsetArgs};
use crate::config::units::parse_duration;

fn opts(e: &EditArgs) -> Result<apply::ApplyOpts, Failure> {
    let wait =
        parse_duration(&e.wait).map_err(|err| Failure::Usage(format!("invalid --wait: {err}")))?;
    Ok(apply::ApplyOpts {
        start_supervisor: false,
        wait,
        restart: false,
    })
}

/// The app's table, or "no app named" with a hint.
fn app_table<'d>(
    d: &'d mut DocumentMut,
    app: &str,
    display: &str,
) -> Result<&'d mut Item, Failure> {
    if doc::app(d, app).is_none() {
        return Err(edit::unknown_app(d, app, display));
    }
    doc::app_mut(d, app)
        .ok_or_else(|| Failure::Error(format!("cannot edit app `{app}` in `{display}`")))
}

/// Runs `change` on the app `app` of the file and applies the result.
fn edit_app(
    config: Option<&Path>,
    app: &str,
    e: &EditArgs,
    change: impl FnOnce(&mut Item) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let opts = opts(e)?;
    let target = edit::target(config, false)?;
    let display = target.located.display.clone();
    let edited = edit::edit(target, e.quiet, |d| change(app_table(d, app, &display)?))?;
    apply::apply(&edited, &[app.to_string()], opts)
}

pub fn stop(config: Option<&Path>, args: &StopArgs) -> Result<(), Failure> {
    let disable = |t: &mut Item| {
        if t.get("enabled").and_then(Item::as_bool) != Some(false) {
            doc::set_path(t, &["enabled".into()], Value::from(false));
        }
        Ok(())
    };
    match &args.app {
        Some(app) if !args.all => edit_app(config, app, &args.edit, disable),
        _ => {
            let opts = opts(&args.edit)?;
            let target = edit::target(config, false)?;
            let mut names = Vec::new();
            let edited = edit::edit(target, args.edit.quiet, |d| {
                names = doc::app_names(d);
                for n in &names {
                    if let Some(t) = doc::app_mut(d, n) {
                        disable(t)?;
                    }
                }
                Ok(())
            })?;
            apply::apply(&edited, &names, opts)
        }
    }
}

pub fn delete(config: Option<&Path>, args: &DeleteArgs) -> Result<(), Failure> {
    let opts = opts(&args.edit)?;
    let target = edit::target(config, false)?;
    let display = target.located.display.clone();
    let app = args.app.clone();
    let edited = edit::edit(target, args.edit.quiet, |d| {
        if doc::remove_app(d, &app) {
            Ok(())
        } else {
            Err(edit::unknown_app(d, &app, &display))
        }
    })?;
    let running = edited.running;
    apply::apply(&edited, std::slice::from_ref(&app), opts)?;
    if running {
        println!("stopped and removed `{app}`");
    } else {
        println!("removed `{app}` from `{display}`");
    }
    Ok(())
}

pub fn scale(config: Option<&Path>, args: &ScaleArgs) -> Result<(), Failure> {
    let n = i64::from(args.instances);
    edit_app(config, &args.app, &args.edit, |t: &mut Item| {
        doc::set_path(t, &["instances".into()], Value::from(n));
        Ok(())
    })
}

pub fn set(config: Option<&Path>, args: &SetArgs) -> Result<(), Failure> {
    let mut assignments = Vec::new();
    for a in &args.assignments {
        let (path, raw) = value::split_assignment(a).map_err(Failure::Usage)?;
        let v = value::typed(&path, &raw);
        assignments.push((path, v));
    }
    edit_app(config, &args.app, &args.edit, |t: &mut Item| {
        for (path, v) in assignments {
            if path.len() == 2 && path[0] == "depends_on" {
                dependency_list_to_table(t);
            }
            doc::set_path(t, &path, v);
        }
        Ok(())
    })
}

/// `depends_on = ["db"]` as `depends_on = { db = "started" }`, so `depends_on.cache=ready` adds
/// to it instead of replacing it (a list means condition `started` for each).
pub(super) fn dependency_list_to_table(t: &mut Item) {
    let Some(list) = t.get("depends_on").and_then(Item::as_array) else {
        return;
    };
    let names: Vec<String> = list
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if names.len() != list.len() {
        return;
    }
    let table: toml_edit::InlineTable = names
        .into_iter()
        .map(|n| (n, Value::from("started")))
        .collect();
    doc::set_path(t, &["depends_on".into()], Value::InlineTable(table));
}

pub fn unset(config: Option<&Path>, args: &UnsetArgs) -> Result<(), Failure> {
    let mut paths = Vec::new();
    for k in &args.keys {
        paths.push(value::split_key(k).map_err(Failure::Usage)?);
    }
    let app = args.app.clone();
    edit_app(config, &args.app, &args.edit, |t: &mut Item| {
        for p in &paths {
            if !doc::remove_path(t, p) {
                eprintln!("note: `{}` is not set for `{app}`", p.join("."));
            }
        }
        Ok(())
    })
}
