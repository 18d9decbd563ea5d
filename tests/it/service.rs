//! `pypm service`: the systemd unit `print` writes, the unit name rule, and `install`/`uninstall`
//! driving a fake `systemctl` (first on PATH) with HOME in a temp dir, always as a `--user` unit so
//! no test writes into this machine's /etc/systemd/system.
#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CONFIG: &str = "\
[apps.db]
command = \"sleep 100\"
stop_timeout = \"40s\"

[apps.web]
command = \"sleep 100\"
depends_on = [\"db\"]
stop_timeout = \"2500ms\"
";

struct Env {
    _tmp: tempfile::TempDir,
    /// The project directory (its name has a space and a dot).
    project: PathBuf,
    home: PathBuf,
    bin: PathBuf,
    log: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("pypm-service-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let root = tmp
            .path()
            .canonicalize()
            .unwrap_or_else(|e| panic!("canonicalize: {e}"));
        let project = root.join("my app.v2");
        let home = root.join("home");
        let bin = root.join("bin");
        for d in [&project, &home, &bin] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        fs::write(project.join("pypm.toml"), CONFIG).unwrap_or_else(|e| panic!("write: {e}"));
        let log = root.join("systemctl.log");
        Env {
            _tmp: tmp,
            project,
            home,
            bin,
            log,
        }
    }

    /// Puts a fake `systemctl` in `bin` that logs its arguments and exits with `code`.
    fn fake_systemctl(&self, code: i32) {
        let path = self.bin.join("systemctl");
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexit {code}\n",
            self.log.display()
        );
        fs::write(&path, script).unwrap_or_else(|e| panic!("write fake systemctl: {e}"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
    }

    fn path_var(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin.display())
    }

    fn pypm(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pypm"))
            .args(args)
            .current_dir(&self.project)
            .env("HOME", &self.home)
            .env("PATH", self.path_var())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("PYPM_CONFIG")
            .env_remove("VIRTUAL_ENV")
            .env_remove("CONDA_PREFIX")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("spawn pypm: {e}"))
    }

    fn unit_path(&self) -> PathBuf {
        self.home
            .join(".config/systemd/user/pypm-my-app-v2.service")
    }

    fn systemctl_calls(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    text(&out.stdout)
}

fn has_line(unit: &str, line: &str) -> bool {
    unit.lines().any(|l| l == line)
}

fn binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pypm"))
        .canonicalize()
        .unwrap_or_else(|e| panic!("canonicalize pypm: {e}"))
}

#[test]
fn print_writes_a_unit_that_runs_up_for_this_file() {
    let env = Env::new();
    // A relative --config still gives absolute paths in the unit.
    let unit = ok(env.pypm(&["service", "print", "--user", "--config", "pypm.toml"]));
    let config = env.project.join("pypm.toml");
    let want_exec = format!(
        "ExecStart={} --config \"{}\" up",
        binary().display(),
        config.display()
    );
    for line in [
        want_exec.as_str(),
        &format!("WorkingDirectory={}", env.project.display()),
        &format!("Environment=PATH={}", env.path_var()),
        "Type=simple",
        "Restart=on-failure",
        "KillMode=mixed",
        // db and web stop one after the other: 40 s + 2.5 s (rounded up) + 10 s of margin.
        "TimeoutStopSec=53",
        "WantedBy=default.target",
        "[Install]",
    ] {
        assert!(has_line(&unit, line), "no line {line:?} in\n{unit}");
    }
    assert!(!unit.contains("User="), "{unit}");
    assert!(
        unit.starts_with("# pypm-my-app-v2.service: runs `pypm up` for "),
        "{unit}"
    );
    // Printing writes nothing and runs nothing.
    assert!(!env.unit_path().exists());
    assert!(env.systemctl_calls().is_empty());

    let system = ok(env.pypm(&["service", "print", "--system"]));
    assert!(has_line(&system, "WantedBy=multi-user.target"), "{system}");
    assert!(has_line(&system, &want_exec), "{system}");
}

#[test]
fn install_then_uninstall_drive_systemctl_for_a_user_unit() {
    let env = Env::new();
    env.fake_systemctl(0);
    let printed = ok(env.pypm(&["service", "print", "--user"]));

    let out = ok(env.pypm(&["service", "install", "--user"]));
    let path = env.unit_path();
    assert!(out.contains(&path.display().to_string()), "{out}");
    let written = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read unit: {e}"));
    assert_eq!(written, printed);
    assert_eq!(
        env.systemctl_calls(),
        [
            "--user daemon-reload",
            "--user enable --now pypm-my-app-v2.service"
        ]
    );

    // Installing again updates the unit in place.
    ok(env.pypm(&["service", "install", "--user"]));
    assert!(path.exists());

    let out = ok(env.pypm(&["service", "uninstall", "--user"]));
    assert!(!path.exists(), "{out}");
    assert_eq!(
        env.systemctl_calls()[4..],
        [
            "--user disable --now pypm-my-app-v2.service",
            "--user daemon-reload"
        ]
    );

    // Nothing installed: said so, exit 0, systemctl not run.
    let out = ok(env.pypm(&["service", "uninstall", "--user"]));
    assert!(
        out.contains("no unit pypm-my-app-v2.service is installed"),
        "{out}"
    );
    assert_eq!(env.systemctl_calls().len(), 6);
}

#[test]
fn install_reports_where_the_unit_is_when_systemctl_fails() {
    let env = Env::new();
    env.fake_systemctl(1);
    let out = env.pypm(&["service", "install", "--user"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = text(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("`systemctl --user daemon-reload` failed"),
        "{err}"
    );
    assert!(
        err.contains(&env.unit_path().display().to_string())
            && err.contains("systemctl --user enable --now pypm-my-app-v2.service"),
        "{err}"
    );
    assert!(env.unit_path().exists());

    // A failing `disable` keeps the unit and says what to run.
    let out = env.pypm(&["service", "uninstall", "--user"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(env.unit_path().exists());
    assert!(text(&out.stderr).contains("rm "), "{}", describe(&out));
}

#[test]
fn install_without_systemctl_exits_1_and_keeps_the_unit() {
    let env = Env::new();
    let out = Command::new(env!("CARGO_BIN_EXE_pypm"))
        .args(["service", "install", "--user"])
        .current_dir(&env.project)
        .env("HOME", &env.home)
        .env("PATH", &env.bin) // empty: no systemctl
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("PYPM_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn pypm: {e}"));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("`systemctl` not found on PATH"),
        "{}",
        describe(&out)
    );
    assert!(env.unit_path().exists());
}

#[test]
fn a_unit_of_another_file_with_the_same_name_is_not_overwritten() {
    let env = Env::new();
    env.fake_systemctl(0);
    let path = env.unit_path();
    let other = "[Service]\nExecStart=/usr/bin/pypm --config /elsewhere/my-app-v2/pypm.toml up\n";
    fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
        .unwrap_or_else(|e| panic!("mkdir: {e}"));
    fs::write(&path, other).unwrap_or_else(|e| panic!("write: {e}"));
    for action in ["install", "uninstall"] {
        let out = env.pypm(&["service", action, "--user"]);
        assert_eq!(out.status.code(), Some(1), "{action}: {}", describe(&out));
        assert!(
            text(&out.stderr).contains("runs another file, `/elsewhere/my-app-v2/pypm.toml`"),
            "{}",
            describe(&out)
        );
        assert_eq!(fs::read_to_string(&path).unwrap_or_default(), other);
    }
    assert!(env.systemctl_calls().is_empty());
}

#[test]
fn actions_are_subcommands() {
    let env = Env::new();
    let out = env.pypm(&["service", "bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let help = ok(env.pypm(&["service", "--help"]));
    for action in ["install", "uninstall", "print"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(action)),
            "{help}"
        );
    }
    let out = env.pypm(&["service", "print", "--user", "--system"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn print_without_a_file_fails() {
    let env = Env::new();
    let out = env.pypm(&["service", "print", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        describe(&out)
    );
}
