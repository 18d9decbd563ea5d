//! Where and with what an app runs: `environment` (a declared `[environments]` entry), `cwd` and
//! `interpreter` (a known name, a Python by version, or an executable path relative to `cwd`).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::config::Environment;
use crate::config::expand::Vars;
use crate::config::keys;
use crate::config::table::{Cx, Table};
use crate::diagnostic::{Span, did_you_mean};

/// Where and with what the program runs.
pub(super) struct Runtime {
    pub(super) environment: Option<String>,
    pub(super) cwd: PathBuf,
    pub(super) interpreter: Option<String>,
}

/// `environment` (declared in `[environments]`), `cwd` (a directory) and `interpreter`
/// (a path in it is relative to `cwd`).
pub(super) fn read_runtime(
    cx: &mut Cx,
    t: &Table,
    dir: &Path,
    environments: &IndexMap<String, Environment>,
    ctx: &str,
    vars: &Vars,
) -> Runtime {
    let environment = t.str(cx, "environment").map(|(e, span)| {
        if !environments.contains_key(&e) {
            cx.err_help(
                span,
                format!("{ctx} uses environment `{e}`, which is not declared in `[environments]`"),
                did_you_mean(&e, environments.keys().map(String::as_str)),
            );
        }
        e
    });
    let cwd = match t.estr(cx, "cwd", vars) {
        Some((c, span)) => {
            let p = dir.join(c);
            if !p.is_dir() {
                cx.err(
                    span,
                    format!("`cwd` of {ctx} is not a directory: `{}`", p.display()),
                );
            }
            p
        }
        None => dir.to_path_buf(),
    };
    let interpreter = t.str(cx, "interpreter").map(|(raw, span)| {
        let what = format!("`interpreter` of {ctx}");
        match cx.try_expand(&raw, &span, vars, &what) {
            Some(i) => {
                check_interpreter(cx, &i, span, &cwd, ctx);
                i
            }
            None => raw,
        }
    });
    Runtime {
        environment,
        cwd,
        interpreter,
    }
}

/// `python | node | bash | sh | none`, a Python by version (`python3`, `python3.12`), or a path
/// (it contains `/`; relative to `cwd`) to an executable file.
fn check_interpreter(cx: &mut Cx, value: &str, span: Span, cwd: &Path, ctx: &str) {
    if value.contains('/') {
        // As the launcher resolves it.
        let path = crate::desired::python_env::path_in(cwd, value);
        let problem = match std::fs::metadata(&path) {
            // A missing `cwd` is reported on its own.
            Err(_) if !cwd.is_dir() => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
            Err(_) => Some("cannot be read"),
            Ok(m) if !m.is_file() => Some("is not a file"),
            Ok(m) if !crate::process::ext::fs::is_executable(&m) => Some("is not executable"),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            cx.err(
                span,
                format!("`interpreter` of {ctx} {problem}: `{}`", path.display()),
            );
        }
        return;
    }
    if keys::INTERPRETERS.contains(&value) || crate::desired::python_env::is_python_name(value) {
        return;
    }
    let expected = "expected python, node, bash, sh, none or a path";
    let msg = if value.is_empty() {
        format!("`interpreter` of {ctx} is empty ({expected})")
    } else {
        format!("unknown `interpreter` `{value}` in {ctx} ({expected})")
    };
    let help =
        did_you_mean(value, keys::INTERPRETERS.iter().copied()).or_else(|| {
            (!value.is_empty()).then(|| format!(
            "to run another program, give its path (e.g. `/usr/bin/{value}`) or use `command`"
        ))
        });
    cx.err_help(span, msg, help);
}
