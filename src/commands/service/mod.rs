//! `pypm service install|uninstall|print`: an OS service unit that runs `pypm up` for the file at
//! boot (SPEC §2). Docs: `docs/service.md`.
//!
//! Owns choosing the unit's scope, name and place, writing and removing it, and running the service
//! manager (`systemctl`, or `launchctl` on macOS). The unit text itself is in [`unit`], pure.

mod unit;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Failure, locate};
use crate::cli::{ServiceAction, ServiceScope};
use unit::{Scope, UnitSpec};

/// The stop timeout used when the file cannot be read: systemd's own default.
const FALLBACK_STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// Added to the computed stop time: pypm's own shutdown after its apps are gone.
const STOP_MARGIN: Duration = Duration::from_secs(10);

pub fn service(config: Option<&Path>, action: &ServiceAction) -> Result<(), Failure> {
    let (ServiceAction::Install(scope)
    | ServiceAction::Uninstall(scope)
    | ServiceAction::Print(scope)) = action;
    let scope = choose_scope(*scope);
    let located = locate(config)?;
    let config_path = std::fs::canonicalize(&located.path)
        .map_err(|e| Failure::Error(format!("cannot resolve `{}`: {e}", located.path.display())))?;
    let target = Target::new(&config_path, scope);
    match action {
        ServiceAction::Print(_) => {
            let spec = unit_spec(&config_path, &located.display)?;
            print!("{}", target.text(&spec));
            Ok(())
        }
        ServiceAction::Install(_) => {
            let spec = unit_spec(&config_path, &located.display)?;
            install(&target, &target.text(&spec), &config_path)
        }
        ServiceAction::Uninstall(_) => uninstall(&target, &config_path),
    }
}

/// `--user` / `--system`, else system when running as root, else user.
fn choose_scope(flags: ServiceScope) -> Scope {
    if flags.user {
        Scope::User
    } else if flags.system || crate::process::is_root() {
        Scope::System
    } else {
        Scope::User
    }
}

/// Everything the unit says, from the file and this process.
fn unit_spec(config: &Path, display: &str) -> Result<UnitSpec, Failure> {
    let pypm = std::env::current_exe()
        .map_err(|e| Failure::Error(format!("cannot find the pypm binary: {e}")))?;
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let env = unit::CAPTURED_VARS
        .iter()
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (k.to_string(), v))
        })
        .collect();
    Ok(UnitSpec {
        pypm,
        config: config.to_path_buf(),
        dir,
        env,
        stop_timeout: stop_timeout(config, display),
    })
}

/// How long `pypm up` may take to stop: apps stop in reverse dependency order, one wave after
/// another, so the sum over the waves of each wave's longest `stop_timeout`, plus a margin.
fn stop_timeout(config: &Path, display: &str) -> Duration {
    let host: std::collections::HashMap<String, String> = std::env::vars().collect();
    let cfg = match crate::config::load(config, display, &host) {
        Ok(cfg) => cfg,
        Err(e) => {
            let (first, _) = e.summary();
            eprintln!(
                "warning: {first}\nthe unit gets TimeoutStopSec={}; fix the file and run this again",
                FALLBACK_STOP_TIMEOUT.as_secs()
            );
            return FALLBACK_STOP_TIMEOUT;
        }
    };
    let names: Vec<String> = cfg.apps.keys().cloned().collect();
    let edges: Vec<(String, String)> = cfg
        .apps
        .iter()
        .flat_map(|(n, a)| {
            a.depends_on
                .iter()
                .map(move |(d, _)| (n.clone(), d.clone()))
        })
        .collect();
    let total: Duration = crate::desired::graph::waves(&names, &edges)
        .iter()
        .map(|wave| {
            wave.iter()
                .filter_map(|n| cfg.apps.get(n))
                .map(|a| a.stop_timeout)
                .max()
                .unwrap_or_default()
        })
        .sum();
    // Round up to whole seconds.
    let secs = total.as_secs() + u64::from(total.subsec_nanos() > 0);
    Duration::from_secs(secs) + STOP_MARGIN
}

/// Where a unit goes and how the service manager is driven.
struct Target {
    scope: Scope,
    /// The unit's file name (`pypm-api.service`, or `pypm.api.plist` on macOS).
    file_name: String,
    /// The launchd label (macOS only).
    #[cfg_attr(not(target_os = "macos"), allow(dead_code))]
    label: String,
    /// Where the unit goes; `None` when the directory cannot be known (no `$HOME`).
    dir: Result<PathBuf, String>,
}

impl Target {
    fn new(config: &Path, scope: Scope) -> Target {
        let stem = unit::unit_stem(config);
        if cfg!(target_os = "macos") {
            let label = stem.replacen("pypm-", "pypm.", 1);
            let dir = match scope {
                Scope::System => Ok(PathBuf::from("/Library/LaunchDaemons")),
                Scope::User => home().map(|h| h.join("Library/LaunchAgents")),
            };
            Target {
                scope,
                file_name: format!("{label}.plist"),
                label,
                dir,
            }
        } else {
            let dir = match scope {
                Scope::System => Ok(PathBuf::from("/etc/systemd/system")),
                Scope::User => match std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                {
                    Some(x) => Ok(x.join("systemd/user")),
                    None => home().map(|h| h.join(".config/systemd/user")),
                },
            };
            Target {
                scope,
                file_name: format!("{stem}.service"),
                label: stem,
                dir,
            }
        }
    }

    fn text(&self, spec: &UnitSpec) -> String {
        if cfg!(target_os = "macos") {
            unit::launchd(spec, &self.label)
        } else {
            unit::systemd(spec, self.scope, &self.file_name)
        }
    }

    fn path(&self) -> Result<PathBuf, Failure> {
        match &self.dir {
            Ok(d) => Ok(d.join(&self.file_name)),
            Err(e) => Err(Failure::Error(e.clone())),
        }
    }

    /// The manager commands that enable and start the unit, as argv lists.
    fn enable_commands(&self, path: &Path) -> Vec<Vec<String>> {
        if cfg!(target_os = "macos") {
            vec![words(&["launchctl", "load", "-w"], path)]
        } else {
            vec![
                self.systemctl(&["daemon-reload"]),
                self.systemctl(&["enable", "--now", &self.file_name]),
            ]
        }
    }

    /// The manager command that stops and disables the unit (run before removing it).
    fn disable_command(&self, path: &Path) -> Vec<String> {
        if cfg!(target_os = "macos") {
            words(&["launchctl", "unload", "-w"], path)
        } else {
            self.systemctl(&["disable", "--now", &self.file_name])
        }
    }

    /// What to run once the unit is removed.
    fn after_remove_commands(&self) -> Vec<Vec<String>> {
        if cfg!(target_os = "macos") {
            Vec::new()
        } else {
            vec![self.systemctl(&["daemon-reload"])]
        }
    }

    fn systemctl(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec!["systemctl".to_string()];
        if self.scope == Scope::User {
            argv.push("--user".into());
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }
}

fn words(argv: &[&str], path: &Path) -> Vec<String> {
    let mut v: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
    v.push(path.display().to_string());
    v
}

fn home() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .ok_or_else(|| {
            "$HOME is not set, so the user unit directory is unknown\n\nset HOME, or pass `--system` (as root)".to_string()
        })
}

/// Runs one manager command; `Err` says what went wrong, in a few words.
fn run(argv: &[String]) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    match Command::new(program).args(args).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(match s.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("`{program}` not found on PATH"))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn shown(argv: &[String]) -> String {
    shell_words::join(argv)
}

/// Refuses to touch an existing unit file that runs another configuration file.
fn check_ours(path: &Path, target: &Target, config: &Path) -> Result<(), Failure> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    match unit::config_of(&text) {
        Some(t) if Path::new(&t) != config => Err(Failure::Error(format!(
            "`{}` already exists and runs another file, `{t}`\n\n\
             two directories named alike give the same unit name `{}`; uninstall that one \
             (`pypm --config {t} service uninstall`) or rename a directory",
            path.display(),
            target.file_name
        ))),
        _ => Ok(()),
    }
}

fn install(target: &Target, text: &str, config: &Path) -> Result<(), Failure> {
    let path = target.path()?;
    check_ours(&path, target, config)?;
    write_atomically(&path, text)?;
    println!("wrote {}", path.display());
    let commands = target.enable_commands(&path);
    for (i, argv) in commands.iter().enumerate() {
        if let Err(why) = run(argv) {
            let rest: Vec<String> = commands[i..]
                .iter()
                .map(|c| format!("  {}", shown(c)))
                .collect();
            return Err(Failure::Error(format!(
                "the unit is written, but `{}` failed ({why})\n\n\
                 the unit is at {}; to enable and start it, run:\n{}",
                shown(argv),
                path.display(),
                rest.join("\n")
            )));
        }
    }
    println!("enabled and started {}", target.file_name);
    if cfg!(target_os = "macos") {
        println!("see it with: launchctl list | grep {}", target.label);
    } else {
        let user = if target.scope == Scope::User {
            " --user"
        } else {
            ""
        };
        println!(
            "see it with: systemctl{user} status {0}; its log: journalctl{user} -u {0}",
            target.file_name
        );
        if target.scope == Scope::User {
            println!(
                "a user unit starts at boot only with lingering on: loginctl enable-linger $USER"
            );
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> Result<(), Failure> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Failure::Error(format!("cannot {what} `{}`: {e}", p.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    std::fs::write(&tmp, text).map_err(|e| fail("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("write", path, e)
    })
}

fn uninstall(target: &Target, config: &Path) -> Result<(), Failure> {
    let path = target.path()?;
    if !path.exists() {
        println!(
            "no unit {} is installed (looked for {}); nothing to do",
            target.file_name,
            path.display()
        );
        return Ok(());
    }
    check_ours(&path, target, config)?;
    let disable = target.disable_command(&path);
    if let Err(why) = run(&disable) {
        return Err(Failure::Error(format!(
            "`{}` failed ({why}); the unit is kept at {}\n\n\
             stop and disable it yourself, then remove the file:\n  {}\n  rm {}{}",
            shown(&disable),
            path.display(),
            shown(&disable),
            shell_words::quote(&path.display().to_string()),
            target
                .after_remove_commands()
                .iter()
                .map(|c| format!("\n  {}", shown(c)))
                .collect::<String>()
        )));
    }
    std::fs::remove_file(&path)
        .map_err(|e| Failure::Error(format!("cannot remove `{}`: {e}", path.display())))?;
    println!("stopped, disabled and removed {}", path.display());
    for argv in target.after_remove_commands() {
        if let Err(why) = run(&argv) {
            return Err(Failure::Error(format!(
                "the unit is removed, but `{}` failed ({why})\n\nrun it yourself: {}",
                shown(&argv),
                shown(&argv)
            )));
        }
    }
    Ok(())
}
