//! What the packages ship besides the binary: `--version`, the completion scripts (run in a real
//! bash, which calls the binary back for app names) and the man pages.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pypm");

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn version_names_the_version_the_commit_and_the_target() {
    let out = run(Command::new(BIN).arg("--version"));
    assert!(out.status.success());
    let line = stdout(&out);
    let line = line.trim_end();
    let inner = line
        .strip_prefix(&format!("pypm {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`{line}`"));
    let parts: Vec<&str> = inner.split(", ").collect();
    let target = parts.last().copied().unwrap_or_default();
    assert!(
        target.split('-').count() >= 3,
        "the last part is a target triple: `{line}`"
    );
    #[cfg(target_os = "linux")]
    assert!(target.contains("-linux-"), "`{line}`");
    let root = env!("CARGO_MANIFEST_DIR");
    if Path::new(root).join(".git").exists() && has("git") {
        let head = run(Command::new("git")
            .args(["rev-parse", "--short=7", "HEAD"])
            .current_dir(root));
        let head = stdout(&head).trim().to_string();
        assert_eq!(
            parts.len(),
            2,
            "a checkout build names its commit: `{line}`"
        );
        assert_eq!(parts[0], head, "`{line}`");
    }
}

#[test]
fn completion_scripts_parse_in_their_shells() {
    for (shell, checker) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let out = run(Command::new(BIN).args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = stdout(&out);
        assert!(script.contains("PYPM_COMPLETE"), "{shell}: {script}");
        if !has(checker) {
            eprintln!("{checker} not installed: its script is not parsed");
            continue;
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("script");
        std::fs::write(&file, &script).unwrap_or_else(|e| panic!("{e}"));
        let check = run(Command::new(checker).arg("-n").arg(&file));
        assert!(check.status.success(), "{checker} -n: {check:?}\n{script}");
    }
    let bad = run(Command::new(BIN).args(["completions", "tcsh"]));
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

/// Presses TAB after `line` in a real bash that sourced `pypm completions bash`, with the binary
/// first on PATH, in `cwd`; returns what bash would offer.
fn bash_complete(line: &str, cwd: &Path, extra_env: &[(&str, &str)]) -> Vec<String> {
    let bin_dir = Path::new(BIN)
        .parent()
        .unwrap_or_else(|| panic!("{BIN} has no parent"));
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "source <(pypm completions bash)\n\
         COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
         read -ra COMP_WORDS <<< \"$COMP_LINE\"\n\
         case \"$COMP_LINE\" in *' ') COMP_WORDS+=(''); esac\n\
         COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMP_TYPE=9\n\
         _clap_complete_pypm pypm \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "-c", &script])
        .current_dir(cwd)
        .env("PATH", path)
        .env_remove("PYPM_CONFIG");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "{line}: {out:?}");
    stdout(&out)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn tab_completes_app_names_from_the_nearest_file() {
    if !has("bash") {
        eprintln!("bash not installed: completion not tested");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("pypm.toml"),
        "# apps\n[apps.api]\ncommand = \"sleep 1\"\n\n[apps.worker]\ncommand = \"sleep 1\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sub = dir.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
    for verb in ["logs", "restart", "inspect", "status"] {
        let got = bash_complete(&format!("pypm {verb} "), &sub, &[]);
        assert!(
            got.iter().any(|c| c == "api") && got.iter().any(|c| c == "worker"),
            "pypm {verb} <TAB> offers {got:?}"
        );
    }
    let got = bash_complete("pypm logs w", &sub, &[]);
    assert_eq!(got, ["worker"], "pypm logs w<TAB>");
    let got = bash_complete("pypm insp", &sub, &[]);
    assert_eq!(got, ["inspect"], "pypm insp<TAB>");

    // Another file on the line, or in $PYPM_CONFIG, is the one read.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "[apps.billing]\ncommand = \"sleep 1\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let elsewhere = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let line = format!("pypm --config {} restart ", other.display());
    let apps = |got: Vec<String>| -> Vec<String> {
        got.into_iter().filter(|c| !c.starts_with('-')).collect()
    };
    assert_eq!(
        apps(bash_complete(&line, elsewhere.path(), &[])),
        ["billing"]
    );
    let env = other.display().to_string();
    let got = bash_complete("pypm inspect ", elsewhere.path(), &[("PYPM_CONFIG", &env)]);
    assert_eq!(apps(got), ["billing"]);
    // No file: nothing to offer, and no error.
    let got = bash_complete("pypm logs ", elsewhere.path(), &[]);
    assert!(!got.iter().any(|c| c == "api" || c == "billing"), "{got:?}");
}

#[test]
fn man_pages_for_pypm_and_every_subcommand() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out_dir = dir.path().join("man1");
    let out = run(Command::new(BIN).arg("manpages").arg(&out_dir));
    assert!(out.status.success(), "{out:?}");
    let main = std::fs::read_to_string(out_dir.join("pypm.1")).unwrap_or_else(|e| panic!("{e}"));
    assert!(main.contains(".TH pypm 1"), "{main}");
    for sub in [
        "up",
        "down",
        "check",
        "plan",
        "reload",
        "status",
        "logs",
        "inspect",
        "restart",
        "completions",
        "service",
    ] {
        let page = out_dir.join(format!("pypm-{sub}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains(&format!(".TH pypm-{sub} 1")), "{text}");
        assert!(main.contains(sub), "pypm.1 lists {sub}");
    }
    assert!(out_dir.join("pypm-service-install.1").is_file());
    assert!(
        !out_dir.join("pypm-daemon.1").exists(),
        "hidden subcommands get no page"
    );
    if has("man") {
        let render = run(Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(out_dir.join("pypm-logs.1"))
            .env("MANWIDTH", "80"));
        assert!(render.status.success(), "{render:?}");
        assert!(stdout(&render).contains("--follow"), "{render:?}");
    }
}
