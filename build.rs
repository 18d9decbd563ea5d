//! Build information for `pypm --version`: the git commit when built from a checkout, and the
//! target triple (`pypm 0.2.0 (abc1234, x86_64-unknown-linux-musl)`).
//!
//! The commit is read only when the package itself is a checkout (its directory has `.git`): a
//! crate unpacked by `cargo install` into a directory that happens to sit inside another
//! repository must not report that repository's commit.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown-target".into());
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let commit = if Path::new(&dir).join(".git").exists() {
        git_commit(Path::new(&dir))
    } else {
        None
    };
    let info = match commit {
        Some(commit) => format!("{commit}, {target}"),
        None => target,
    };
    println!("cargo:rustc-env=PYPM_BUILD_INFO={info}");
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn git_commit(dir: &Path) -> Option<String> {
    let commit = git(dir, &["rev-parse", "--short=7", "HEAD"])?;
    // Rebuild when HEAD moves: `logs/HEAD` is appended on every commit, checkout and reset
    // (in a worktree too, where `.git` is a file naming the real git directory).
    if let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) {
        let git_dir = Path::new(&git_dir);
        for f in ["HEAD", "logs/HEAD"] {
            if git_dir.join(f).exists() {
                println!("cargo:rerun-if-changed={}", git_dir.join(f).display());
            }
        }
    }
    Some(commit)
}
