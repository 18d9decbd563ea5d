//! File watching: a thin adapter over `notify` that only reports changed paths, plus the pure
//! rules for what a changed path means (the config file, an `env_file`, or an app's `watch` glob).
//!
//! Directories are watched, not files: editors that save by rename or write-then-replace give the
//! file a new inode, which a watch on the old inode would miss.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::desired::resolve::Desired;

/// How long after the last change of an app's `watch` files its restart happens (a checkout or
/// a build touches many files over a while).
pub const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long after the last save of the file (or an `env_file`, an `include`) it is applied. An
/// editor's save is one write or one rename, which this covers many times over; a save that is
/// still half written when it runs out is invalid, keeps the last valid version running and is
/// followed by its completion's own reload.
pub const CONFIG_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(25);

/// During a storm of saves (each one restarting the debounce), the newest version is applied at
/// least this often.
pub const RELOAD_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Path parts and suffixes that never trigger a `watch` restart.
const IGNORED_PARTS: &[&str] = &[
    "__pycache__",
    ".git",
    ".pypm",
    "node_modules",
    ".venv",
    "venv",
];

/// What to watch for a desired state: (directory, recursive).
pub fn watch_list(d: &Desired) -> Vec<(PathBuf, bool)> {
    let mut dirs: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
    if d.config.pypm.watch_config {
        if let Some(dir) = d.config.path.parent() {
            dirs.insert((dir.to_path_buf(), false));
        }
        // The files it includes.
        for f in d.config.sources.files.iter().skip(1) {
            if let Some(dir) = f.path.parent() {
                dirs.insert((dir.to_path_buf(), false));
            }
        }
        for spec in d.apps.values() {
            for f in &spec.app.env_file {
                if let Some(dir) = f.parent() {
                    dirs.insert((dir.to_path_buf(), false));
                }
            }
        }
    }
    for spec in d.apps.values() {
        if !spec.app.watch.is_empty() {
            dirs.insert((spec.app.cwd.clone(), true));
        }
    }
    // A recursive watch covers the same directory's non-recursive one.
    let recursive: Vec<PathBuf> = dirs
        .iter()
        .filter(|(_, r)| *r)
        .map(|(p, _)| p.clone())
        .collect();
    dirs.into_iter()
        .filter(|(p, r)| *r || !recursive.contains(p))
        .collect()
}

/// What a changed path means.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Meaning {
    /// The config file or one of its env files changed: reload.
    pub reload: bool,
    /// Apps whose `watch` globs match: restart them.
    pub apps: Vec<String>,
}

pub fn classify(d: &Desired, path: &Path) -> Meaning {
    let mut m = Meaning::default();
    if d.config.pypm.watch_config
        && (path == d.config.path
            || d.config
                .sources
                .files
                .iter()
                .skip(1)
                .any(|f| f.path == path)
            || d.apps
                .values()
                .any(|s| s.app.env_file.iter().any(|f| f == path)))
    {
        m.reload = true;
    }
    let state_dir = &d.config.pypm.state_dir;
    let log_dir = &d.config.pypm.log_dir;
    if path.starts_with(state_dir) || path.starts_with(log_dir) || ignored(path) {
        return m;
    }
    for (name, spec) in &d.apps {
        let Ok(rel) = path.strip_prefix(&spec.app.cwd) else {
            continue;
        };
        let hit = spec.app.watch.iter().any(|g| {
            glob::Pattern::new(g).is_ok_and(|p| {
                p.matches_path_with(
                    rel,
                    glob::MatchOptions {
                        require_literal_separator: true,
                        ..Default::default()
                    },
                )
            })
        });
        if hit {
            m.apps.push(name.clone());
        }
    }
    m
}

fn ignored(path: &Path) -> bool {
    path.components().any(|c| {
        let s = c.as_os_str().to_string_lossy();
        IGNORED_PARTS.contains(&s.as_ref())
    }) || path
        .extension()
        .is_some_and(|e| e == "pyc" || e == "pyo" || e == "swp")
        || path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with('~'))
}

/// Starts watching; `on_change` gets every changed path (on notify's thread; it must not block).
pub fn start(
    dirs: &[(PathBuf, bool)],
    on_change: impl Fn(PathBuf) + Send + 'static,
) -> notify::Result<RecommendedWatcher> {
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            for p in ev.paths {
                on_change(p);
            }
        }
        Err(e) => log::warn!("file watch: {e}"),
    })?;
    for (dir, recursive) in dirs {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(e) = w.watch(dir, mode) {
            log::warn!("cannot watch `{}`: {e}", dir.display());
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::python_env::HostEnv;

    #[test]
    fn classify_config_env_files_and_globs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("a.env"), "X=1\n").unwrap_or_else(|e| panic!("{e}"));
        let src = "[apps.api]\ncommand = \"sleep 1\"\nenv_file = \"a.env\"\nwatch = [\"**/*.py\", \"conf/*.yaml\"]\n[apps.other]\ncommand = \"sleep 1\"\n";
        let host = HostEnv::new([("PATH", "/usr/bin:/bin")], None);
        let d = crate::desired::resolve::from_source(
            src,
            &dir.path().join("pypm.toml"),
            "pypm.toml",
            &host,
        )
        .unwrap_or_else(|e| panic!("{}", e.render()));
        let p = |s: &str| dir.path().join(s);
        assert!(classify(&d, &p("pypm.toml")).reload);
        assert!(classify(&d, &p("a.env")).reload);
        assert_eq!(classify(&d, &p("src/app.py")).apps, vec!["api"]);
        assert_eq!(classify(&d, &p("conf/x.yaml")).apps, vec!["api"]);
        for quiet in [
            "src/__pycache__/app.cpython-311.py",
            "src/app.pyc",
            ".git/HEAD",
            ".pypm/logs/api.out.log",
            "README.md",
            "conf/deep/x.yaml",
        ] {
            assert_eq!(classify(&d, &p(quiet)), Meaning::default(), "{quiet}");
        }
        let dirs = watch_list(&d);
        assert_eq!(dirs, vec![(dir.path().to_path_buf(), true)]);
    }
}
