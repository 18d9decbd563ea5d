//! `pypm export kubernetes|nomad|compose|systemd`: the file's apps handed to an engine that runs
//! them beyond one machine (issue 17).
//!
//! Owns the mapping of an app to each engine's objects and the rendering of the result. It reads
//! the file like `check` (an invalid file exports nothing) and writes only the output. Whatever
//! has no equivalent in the target is said twice, as `import` does: as comments at the top of
//! the output (so it travels with it) and as a count on stderr. Mapping tables: docs/export.md.

mod compose;
mod kubernetes;
mod nomad;
mod systemd;
mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Failure, locate};
use crate::cli::{ExportArgs, ExportTarget};
use crate::config::{App, Config, Kind, Program};
use crate::desired::python_env::HostEnv;

/// What every target reads: the file, the apps chosen, the options.
pub struct Export<'a> {
    pub config: &'a Config,
    /// The apps to export, in file order.
    pub apps: Vec<&'a App>,
    pub image: Option<String>,
    pub namespace: Option<String>,
    /// The project's name (the file's directory), as a DNS label.
    pub project: String,
    /// Each app's command as pypm would run it here (interpreters resolved), when the Python
    /// environments resolve on this machine.
    host_argv: HashMap<String, Vec<String>>,
}

/// One file of the output.
pub struct File {
    pub name: String,
    pub body: String,
    /// What had no equivalent (shown as comments at its top).
    pub notes: Vec<String>,
}

impl Export<'_> {
    /// The command inside a container: a script or module runs with the image's `python`.
    pub fn container_argv(&self, a: &App) -> Vec<String> {
        let mut argv = match &a.program {
            Program::Command(v) => v.clone(),
            Program::Script(s) => vec!["python".into(), s.clone()],
            Program::Module(m) => vec!["python".into(), "-m".into(), m.clone()],
        };
        argv.extend(a.args.iter().cloned());
        argv
    }

    /// The command on a host (systemd, Nomad's `raw_exec`): as pypm resolves it here, else
    /// found on `PATH` through `/usr/bin/env` (with the project's `.venv/bin` first, as pypm
    /// looks there first).
    pub fn host_argv(&self, a: &App) -> Vec<String> {
        let argv = match self.host_argv.get(&a.name) {
            Some(v) if v.first().is_some_and(|p| Path::new(p).is_absolute()) => return v.clone(),
            Some(v) => v.clone(),
            None => self.container_argv(a),
        };
        match argv.first() {
            Some(first) if first.contains('/') => {
                let mut v = argv.clone();
                v[0] = a.cwd.join(first).display().to_string();
                v
            }
            _ => {
                let mut v = vec!["/usr/bin/env".to_string()];
                v.extend(argv.into_iter().enumerate().map(|(i, s)| {
                    if i == 0 && s == "python" {
                        "python3".into()
                    } else {
                        s
                    }
                }));
                v
            }
        }
    }

    /// Whether [`Self::host_argv`] falls back to `PATH` for `a` (its `PATH` must then hold
    /// the program: the unit sets one with the project's `.venv/bin` first).
    pub fn host_needs_path(&self, a: &App) -> bool {
        self.host_argv(a).first().map(String::as_str) == Some("/usr/bin/env")
    }

    /// `PATH` for a host command found through `/usr/bin/env`.
    pub fn host_path(&self, a: &App) -> String {
        format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            a.cwd.join(".venv/bin").display()
        )
    }

    /// The app's environment as pypm gives it: `env_file` contents, then `env` over them, then
    /// `PYPM_APP`.
    pub fn env(&self, a: &App) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| {
            if let Some(e) = out.iter_mut().find(|(ek, _)| ek == k) {
                e.1 = v.to_string();
            } else {
                out.push((k.to_string(), v.to_string()));
            }
        };
        for (k, v) in a.env_file_vars.iter().chain(a.env.iter()) {
            set(k, v);
        }
        set("PYPM_APP", &a.name);
        out
    }

    /// The apps that depend on `task` with `completed`, among those exported.
    pub fn completed_dependents(&self, task: &str) -> Vec<&App> {
        self.apps
            .iter()
            .filter(|a| {
                a.depends_on
                    .iter()
                    .any(|(d, c)| d == task && *c == crate::config::Condition::Completed)
            })
            .copied()
            .collect()
    }

    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name).copied()
    }
}

/// An app name as a DNS-1123 label (Kubernetes object names, compose service names).
pub fn dns_name(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s = s.trim_matches('-').to_string();
    s.truncate(63);
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() { "app".into() } else { s }
}

/// Whole seconds, rounded up (engines count in seconds).
pub fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// One check's timeout in whole seconds (1..=60): a `ready` probe's `timeout` is the start's
/// whole budget, so one check of it gets at most 5 s; a `health` probe's is per check.
pub fn check_timeout(p: &crate::config::Probe, ready: bool) -> u64 {
    let t = if ready {
        p.timeout.min(Duration::from_secs(5))
    } else {
        p.timeout
    };
    secs(t).clamp(1, 60)
}

/// `10s`, `1m30s`, `500ms` (Go duration syntax: compose, Nomad).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// The keys every target ignores the same way, with why (per app).
pub fn common_notes(a: &App, target: &str) -> Vec<String> {
    let mut n = Vec::new();
    let app = &a.name;
    if !a.watch.is_empty() {
        n.push(format!(
            "{app}: `watch` (restart on file change) has no {target} equivalent: redeploy instead"
        ));
    }
    if a.revision.is_some() {
        n.push(format!(
            "{app}: `revision` has no {target} equivalent: a new image or unit is the new revision"
        ));
    }
    if a.log_timestamps || a.log_max_size != 10 * 1024 * 1024 {
        n.push(format!(
            "{app}: pypm's log files (`log_timestamps`, `log_max_size`, `log_max_files`) are not exported: {target} keeps the output itself"
        ));
    }
    n
}

pub fn export(config: Option<&Path>, args: &ExportArgs) -> Result<(), Failure> {
    let located = locate(config)?;
    let host = HostEnv::from_process();
    let cfg = crate::config::load(&located.path, &located.display, &host.vars)
        .map_err(Failure::Config)?;
    for name in &args.app {
        if !cfg.apps.contains_key(name) {
            let hint = crate::diagnostic::did_you_mean(name, cfg.apps.keys().map(String::as_str))
                .map(|h| format!("\n\n{h}"))
                .unwrap_or_default();
            return Err(Failure::Error(format!(
                "no app named `{name}` in `{}`{hint}",
                located.display
            )));
        }
    }
    if args.target == ExportTarget::Kubernetes && args.image.is_none() {
        return Err(Failure::Usage(
            "`pypm export kubernetes` needs `--image IMAGE`: the container image the commands run in\n\nbuild one with your code and its Python environment, e.g. `--image registry.example/shop:1.4`".into(),
        ));
    }
    // Interpreters as pypm resolves them here, for host targets; a file whose environments do
    // not resolve on this machine still exports (commands then go through PATH).
    let host_argv = crate::desired::resolve::resolve(cfg.clone(), &host)
        .map(|d| {
            d.apps
                .into_iter()
                .map(|(name, spec)| (name, spec.argv))
                .collect()
        })
        .unwrap_or_default();
    let project = located
        .path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent()?.file_name()?.to_str().map(dns_name))
        .unwrap_or_else(|| "pypm".into());
    let x = Export {
        config: &cfg,
        apps: cfg
            .apps
            .values()
            .filter(|a| args.app.is_empty() || args.app.contains(&a.name))
            .map(|a| &**a)
            .collect(),
        image: args.image.clone(),
        namespace: args.namespace.clone(),
        project,
        host_argv,
    };
    // `--app` left out something an exported app depends on: said, not dropped silently.
    let mut missing = Vec::new();
    for a in &x.apps {
        for (d, c) in &a.depends_on {
            if x.app(d).is_none() {
                missing.push(format!(
                    "{}: `depends_on = {{ {d} = \"{}\" }}`: `{d}` is not part of this export (`--app`)",
                    a.name,
                    c.as_str()
                ));
            }
        }
    }
    let (label, mut files) = match args.target {
        ExportTarget::Kubernetes => ("Kubernetes", kubernetes::export(&x)),
        ExportTarget::Nomad => ("Nomad", nomad::export(&x)),
        ExportTarget::Compose => ("docker compose", compose::export(&x)),
        ExportTarget::Systemd => ("systemd", systemd::export(&x)),
    };
    if let Some(first) = files.first_mut() {
        first.notes.splice(0..0, missing);
    }
    write(&files, &args.output, label)
}

/// The header of a file: where it came from, then what had no equivalent.
fn render(f: &File, label: &str) -> String {
    let mut out = format!(
        "# Generated by `pypm export` ({label}) from pypm.toml; edit the file and export again.\n"
    );
    if !f.notes.is_empty() {
        out.push_str("#\n# Not exported (no equivalent):\n");
        for n in &f.notes {
            out.push_str(&format!("#   - {n}\n"));
        }
    }
    out.push_str(&f.body);
    out
}

fn write(files: &[File], output: &Option<PathBuf>, label: &str) -> Result<(), Failure> {
    let notes: usize = files.iter().map(|f| f.notes.len()).sum();
    match output.as_deref().filter(|p| *p != Path::new("-")) {
        None => {
            let mut text = String::new();
            for (i, f) in files.iter().enumerate() {
                if files.len() > 1 {
                    if i > 0 {
                        text.push('\n');
                    }
                    text.push_str(&format!("# ==> {} <==\n", f.name));
                }
                text.push_str(&render(f, label));
            }
            print!("{text}");
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::Error(format!("cannot create `{}`: {e}", dir.display())))?;
            for f in files {
                let path = dir.join(&f.name);
                crate::store::write_atomic(&path, render(f, label).as_bytes()).map_err(|e| {
                    Failure::Error(format!("cannot write `{}`: {e}", path.display()))
                })?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    if notes > 0 {
        eprintln!(
            "{notes} setting{} had no {label} equivalent; listed at the top of the output",
            if notes == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The apps of a file given as text (for the targets' unit tests).
#[cfg(test)]
pub fn parse_for_test(toml: &str) -> Config {
    let dir = std::env::temp_dir().join("pypm-export-tests");
    let _ = std::fs::create_dir_all(&dir);
    let host: HashMap<String, String> = HashMap::new();
    match crate::config::parse(toml, &dir.join("pypm.toml"), "pypm.toml", &host) {
        Ok(c) => c,
        Err(e) => panic!("{}", e.render()),
    }
}

#[cfg(test)]
pub fn for_test<'a>(cfg: &'a Config, image: Option<&str>) -> Export<'a> {
    Export {
        config: cfg,
        apps: cfg.apps.values().map(|a| &**a).collect(),
        image: image.map(str::to_string),
        namespace: None,
        project: "shop".into(),
        host_argv: HashMap::new(),
    }
}

/// A task's kind, for the targets' `match`es.
pub fn is_task(a: &App) -> bool {
    a.kind == Kind::Task
}
