//! The text of the service units: a systemd `.service` file and a launchd property list. Pure:
//! everything they depend on is in [`UnitSpec`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which systemd instance a unit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

/// What a unit runs.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitSpec {
    /// The pypm binary (absolute).
    pub pypm: PathBuf,
    /// The configuration file (absolute).
    pub config: PathBuf,
    /// The file's directory: the working directory.
    pub dir: PathBuf,
    /// Environment variables captured at install time (`PATH` first), in order.
    pub env: Vec<(String, String)>,
    /// How long the service manager waits for `pypm up` to stop its apps after SIGTERM.
    pub stop_timeout: Duration,
}

/// The variables a unit captures from the installing shell, when set: `PATH` so commands and
/// interpreters resolve as they did there; the ones pypm's Python resolution reads (SPEC §3, §8)
/// so an activated venv or conda env keeps being the one chosen.
pub const CAPTURED_VARS: &[&str] = &[
    "PATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_EXE",
    "CONDA_ROOT",
    "CONDA_ENVS_PATH",
    "MAMBA_ROOT_PREFIX",
];

/// `pypm-DIR` (plus `-STEM` when the file is not `pypm.toml`): the unit's name without suffix.
/// DIR is the file's directory name with every run of characters other than ASCII letters, digits,
/// `_` and `-` turned into one `-`, and no `-` at either end (`root` when nothing is left).
pub fn unit_stem(config: &Path) -> String {
    let dir = config
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = format!("pypm-{}", sanitize(&dir, "root"));
    let file_stem = config
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if config.file_name().is_some_and(|n| n != "pypm.toml") {
        let _ = write!(stem, "-{}", sanitize(&file_stem, "config"));
    }
    stem
}

fn sanitize(raw: &str, empty: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(64).collect();
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        empty.to_string()
    } else {
        out.to_string()
    }
}

/// Quotes one word of a systemd command line: `%` → `%%` (specifiers), `$` → `$$` (variable
/// substitution), and double quotes around words with spaces, quotes or backslashes.
fn systemd_word(s: &str) -> String {
    quote_systemd(s.replace('%', "%%").replace('$', "$$"))
}

/// One `Environment=` assignment: `%` → `%%`; `$` stays (systemd expands no variables there).
fn systemd_env(assignment: &str) -> String {
    quote_systemd(assignment.replace('%', "%%"))
}

fn quote_systemd(escaped: String) -> String {
    if escaped.is_empty() || escaped.contains([' ', '\t', '"', '\'', '\\', ';']) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// A path for a systemd setting that takes one path (`WorkingDirectory=`): `%` escaped.
fn systemd_path(p: &Path) -> String {
    p.display().to_string().replace('%', "%%")
}

/// The systemd unit.
pub fn systemd(spec: &UnitSpec, scope: Scope, name: &str) -> String {
    let mut out = String::new();
    let config = spec.config.display();
    let _ = writeln!(
        out,
        "# {name}: runs `pypm up` for {config}\n\
         # Written by `pypm service`; remove it with `pypm service uninstall` (same --config).\n\
         # Regenerate it after moving pypm or the file, or raising a `stop_timeout` a lot."
    );
    let _ = writeln!(out, "\n[Unit]");
    let _ = writeln!(
        out,
        "Description=pypm: the apps of {}",
        systemd_path(&spec.config)
    );
    if scope == Scope::System {
        // The apps usually serve or call the network.
        out.push_str("Wants=network-online.target\nAfter=network-online.target\n");
    }
    let _ = writeln!(out, "\n[Service]");
    // pypm does not send sd_notify READY itself: it is up once it runs.
    out.push_str("Type=simple\n");
    let exec: Vec<String> = [
        spec.pypm.display().to_string(),
        "--config".into(),
        spec.config.display().to_string(),
        "up".into(),
    ]
    .iter()
    .map(|w| systemd_word(w))
    .collect();
    let _ = writeln!(out, "ExecStart={}", exec.join(" "));
    let _ = writeln!(out, "WorkingDirectory={}", systemd_path(&spec.dir));
    for (k, v) in &spec.env {
        let _ = writeln!(out, "Environment={}", systemd_env(&format!("{k}={v}")));
    }
    out.push_str("Restart=on-failure\nRestartSec=2s\n");
    // SIGTERM goes to pypm alone, which stops its apps in reverse dependency order; whatever is
    // left when the timeout ends is killed by systemd.
    out.push_str("KillMode=mixed\n");
    // The unit's cgroup is pypm's to divide: a cgroup per app process for memory_max / cpu_max.
    out.push_str("Delegate=yes\n");
    let _ = writeln!(out, "TimeoutStopSec={}", spec.stop_timeout.as_secs().max(1));
    let _ = writeln!(out, "\n[Install]");
    let target = match scope {
        Scope::System => "multi-user.target",
        Scope::User => "default.target",
    };
    let _ = writeln!(out, "WantedBy={target}");
    out
}

/// Escapes text for XML.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd property list (a LaunchAgent, or a LaunchDaemon when installed as root).
pub fn launchd(spec: &UnitSpec, label: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
    );
    let _ = writeln!(
        out,
        "<!-- {label}: runs `pypm up` for {}; written by `pypm service` -->",
        xml(&spec.config.display().to_string()).replace("--", "- -")
    );
    out.push_str("<plist version=\"1.0\">\n<dict>\n");
    let _ = writeln!(out, "  <key>Label</key>\n  <string>{}</string>", xml(label));
    out.push_str("  <key>ProgramArguments</key>\n  <array>\n");
    for word in [
        spec.pypm.display().to_string(),
        "--config".into(),
        spec.config.display().to_string(),
        "up".into(),
    ] {
        let _ = writeln!(out, "    <string>{}</string>", xml(&word));
    }
    out.push_str("  </array>\n");
    let _ = writeln!(
        out,
        "  <key>WorkingDirectory</key>\n  <string>{}</string>",
        xml(&spec.dir.display().to_string())
    );
    if !spec.env.is_empty() {
        out.push_str("  <key>EnvironmentVariables</key>\n  <dict>\n");
        for (k, v) in &spec.env {
            let _ = writeln!(
                out,
                "    <key>{}</key>\n    <string>{}</string>",
                xml(k),
                xml(v)
            );
        }
        out.push_str("  </dict>\n");
    }
    out.push_str("  <key>RunAtLoad</key>\n  <true/>\n");
    // Restarted when it fails, like systemd's Restart=on-failure.
    out.push_str("  <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n");
    let _ = writeln!(
        out,
        "  <key>ExitTimeOut</key>\n  <integer>{}</integer>",
        spec.stop_timeout.as_secs().max(1)
    );
    out.push_str("</dict>\n</plist>\n");
    out
}

/// The `--config` file a unit written by us runs, read back from its text.
pub fn config_of(unit_text: &str) -> Option<String> {
    // systemd: the ExecStart line; launchd: the string after `--config`.
    if let Some(line) = unit_text.lines().find(|l| l.starts_with("ExecStart=")) {
        let words = shell_words::split(&line["ExecStart=".len()..]).ok()?;
        let i = words.iter().position(|w| w == "--config")?;
        return words
            .get(i + 1)
            .map(|w| w.replace("$$", "$").replace("%%", "%"));
    }
    let mut strings = unit_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<string>")?.strip_suffix("</string>"));
    strings.find(|s| *s == "--config")?;
    strings.next().map(|s| {
        s.replace("&quot;", "\"")
            .replace("&gt;", ">")
            .replace("&lt;", "<")
            .replace("&amp;", "&")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec {
            pypm: PathBuf::from("/opt/pypm/bin/pypm"),
            config: PathBuf::from("/srv/my app/pypm.toml"),
            dir: PathBuf::from("/srv/my app"),
            env: vec![("PATH".into(), "/srv/my app/.venv/bin:/usr/bin".into())],
            stop_timeout: Duration::from_secs(25),
        }
    }

    #[test]
    fn unit_names_follow_the_directory() {
        let cases = [
            ("/srv/api/pypm.toml", "pypm-api"),
            ("/srv/my app.v2/pypm.toml", "pypm-my-app-v2"),
            ("/srv/-x-/pypm.toml", "pypm-x"),
            ("/srv/api/staging.toml", "pypm-api-staging"),
            ("/pypm.toml", "pypm-root"),
            ("/srv/été/pypm.toml", "pypm-t"),
        ];
        for (path, want) in cases {
            assert_eq!(unit_stem(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn systemd_unit_quotes_paths_and_escapes_specifiers() {
        let mut s = spec();
        s.env.push(("VIRTUAL_ENV".into(), "/a%b$c".into()));
        let text = systemd(&s, Scope::User, "pypm-my-app.service");
        let has = |l: &str| text.lines().any(|x| x == l);
        assert!(
            has("ExecStart=/opt/pypm/bin/pypm --config \"/srv/my app/pypm.toml\" up"),
            "{text}"
        );
        assert!(has("WorkingDirectory=/srv/my app"), "{text}");
        assert!(
            has("Environment=\"PATH=/srv/my app/.venv/bin:/usr/bin\""),
            "{text}"
        );
        assert!(has("Environment=VIRTUAL_ENV=/a%%b$c"), "{text}");
        assert!(has("Delegate=yes"), "{text}");
        assert!(has("TimeoutStopSec=25"), "{text}");
        assert!(has("WantedBy=default.target"), "{text}");
        assert!(!text.contains("User="), "{text}");
        assert!(!text.contains("network-online"), "{text}");
        assert_eq!(config_of(&text).as_deref(), Some("/srv/my app/pypm.toml"));

        let system = systemd(&s, Scope::System, "pypm-my-app.service");
        assert!(system.lines().any(|l| l == "WantedBy=multi-user.target"));
        assert!(system.contains("After=network-online.target"));
    }

    #[test]
    fn launchd_plist_runs_up_in_the_directory() {
        let text = launchd(&spec(), "pypm.my-app");
        assert!(text.contains("<string>/opt/pypm/bin/pypm</string>\n    <string>--config</string>\n    <string>/srv/my app/pypm.toml</string>\n    <string>up</string>"), "{text}");
        assert!(text.contains("<key>WorkingDirectory</key>\n  <string>/srv/my app</string>"));
        assert!(text.contains("<key>Label</key>\n  <string>pypm.my-app</string>"));
        assert!(text.contains("<integer>25</integer>"));
        assert_eq!(config_of(&text).as_deref(), Some("/srv/my app/pypm.toml"));
    }
}
