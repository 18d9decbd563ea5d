//! `pypm check`.

use std::fmt::Write as _;
use std::path::Path;

use super::{Failure, locate};
use crate::python_env::HostEnv;
use crate::resolve::{self, Desired};

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
    for (i, wave) in crate::graph::waves(&names, &edges(d)).iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, wave.join(", "));
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
