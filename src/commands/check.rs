//! `pypm check`.

use std::fmt::Write as _;
use std::path::Path;

use super::{Failure, locate};
use crate::desired::python_env::HostEnv;
use crate::desired::resolve::{self, Desired};

pub fn check(config: Option<&Path>, verbose: bool) -> Result<(), Failure> {
    let located = locate(config)?;
    let desired = resolve::load(&located.path, &located.display, &HostEnv::from_process())
        .map_err(Failure::Config)?;
    let n = desired.apps.len();
    println!(
        "`{}` is valid ({n} app{})",
        located.display,
        if n == 1 { "" } else { "s" }
    );
    if verbose {
        print!("{}", describe(&desired));
        print!("{}", describe_schedules(&desired, chrono::Utc::now()));
    }
    Ok(())
}

/// The `check -v` report: each app's resolved command line, interpreter and rule, and the start
/// order in waves.
pub fn describe(d: &Desired) -> String {
    let mut out = String::new();
    for (name, spec) in &d.apps {
        let a = &spec.app;
        let _ = writeln!(out, "\n{name}");
        let argv = shell_words::join(&spec.argv);
        let _ = writeln!(out, "  command:     {argv}");
        match (&spec.interpreter, &spec.rule) {
            (Some(i), Some(rule)) => {
                let _ = writeln!(out, "  interpreter: {}", i.display());
                let _ = writeln!(out, "  chosen by:   {rule}");
            }
            _ => {
                let _ = writeln!(out, "  interpreter: none (runs directly)");
            }
        }
        let _ = writeln!(out, "  cwd:         {}", a.cwd.display());
        let mut facts = vec![format!("{:?}", a.kind).to_lowercase()];
        if a.instances > 1 {
            facts.push(format!("{} instances", a.instances));
        }
        if !a.enabled {
            facts.push("disabled".into());
        }
        if !a.depends_on.is_empty() {
            let deps: Vec<String> = a
                .depends_on
                .iter()
                .map(|(d, c)| format!("{d} ({})", c.as_str()))
                .collect();
            facts.push(format!("after {}", deps.join(", ")));
        }
        let _ = writeln!(out, "  runs as:     {}", facts.join(", "));
    }
    let names: Vec<String> = d.apps.keys().cloned().collect();
    let _ = writeln!(out, "\nstart order:");
    for (i, wave) in crate::desired::graph::waves(&names, &edges(d))
        .iter()
        .enumerate()
    {
        let _ = writeln!(out, "  {}. {}", i + 1, wave.join(", "));
    }
    out
}

/// The `check -v` schedule report: for each scheduled app, its expression, zone and next three
/// runs (in the schedule's zone), counted from `now`.
pub fn describe_schedules(d: &Desired, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = String::new();
    for (name, spec) in &d.apps {
        let a = &spec.app;
        let Some(s) = a.parsed_schedule() else {
            continue;
        };
        if out.is_empty() {
            let _ = writeln!(out, "\nschedules:");
        }
        let tz = a.schedule_tz();
        let what = match a.kind {
            crate::config::Kind::Task => "runs",
            crate::config::Kind::Service => "restarts",
        };
        let _ = writeln!(out, "  {name}: `{}` ({tz})", s.as_str());
        if s.is_reboot() {
            let _ = writeln!(out, "    {what} once when the supervisor starts");
            continue;
        }
        let runs = crate::inputs::schedule::next_runs(&s, tz, now, 3);
        if runs.is_empty() {
            let _ = writeln!(out, "    never {what} again");
        }
        for r in runs {
            let local = r.with_timezone(&tz);
            let _ = writeln!(
                out,
                "    next {what} at {}",
                local.format("%Y-%m-%d %H:%M:%S %Z (%:z)")
            );
        }
    }
    out
}

pub fn edges(d: &Desired) -> Vec<(String, String)> {
    d.apps
        .iter()
        .flat_map(|(n, s)| {
            s.app
                .depends_on
                .iter()
                .map(move |(dep, _)| (n.clone(), dep.clone()))
        })
        .collect()
}
