//! Editing `pypm.toml` from the command line (`start`, `stop`, `delete`, `scale`, `set`,
//! `unset`): the file stays the one source of truth, and the running supervisor applies the
//! change as it applies any save.
//!
//! One edit: take the lock ([`crate::process::lock_exclusive`] on `STATE_DIR/edit.lock`), read the
//! file, change only the keys concerned ([`doc`], typed by [`value`]), validate the edited text with
//! the reader `pypm check` uses, write it atomically ([`write`]), print a unified diff ([`diff`]),
//! release the lock; then [`apply`] asks the supervisor to reload and waits until the apps
//! concerned have settled. An edit that would make the file invalid writes nothing.
//!
//! Owns no policy about what a verb means; the verbs (`commands::start`, `commands::app_verbs`)
//! say which keys change.

pub mod apply;
pub mod diff;
pub mod doc;
pub mod value;
pub mod write;

use crate::process::ext::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::DocumentMut;

use super::{Failure, Located, locate, state_dir_for};
use crate::control::client;
use crate::control::protocol::{Request, Response, Row};
use crate::desired::python_env::HostEnv;
use crate::desired::resolve::Desired;

/// The first line of a file `pypm start` creates: editors with TOML support (taplo, Even Better
/// TOML) use the schema for completion and checks. The schema's own `$id`.
pub const SCHEMA_LINE: &str = "#:schema https://pypm.dev/schema/pypm.schema.json";

/// The lock file in `state_dir` that edits take turns on.
pub const LOCK_FILE: &str = "edit.lock";

/// The file an edit works on.
pub struct Target {
    pub located: Located,
    /// False when `start` is about to create it.
    pub exists: bool,
    pub state_dir: PathBuf,
}

/// The file for this invocation (SPEC §1 lookup). With `create`, a missing file is not an error:
/// it is the `--config` / `$PYPM_CONFIG` path, else `pypm.toml` in the current directory.
pub fn target(config: Option<&Path>, create: bool) -> Result<Target, Failure> {
    match locate(config) {
        Ok(located) => {
            let state_dir = state_dir_for(&located);
            Ok(Target {
                located,
                exists: true,
                state_dir,
            })
        }
        Err(e) if !create => Err(e),
        Err(e) => {
            let cwd = std::env::current_dir()
                .map_err(|e| Failure::Error(format!("cannot read the current directory: {e}")))?;
            let env_config = std::env::var("PYPM_CONFIG").ok();
            let path = crate::config::discover(config, env_config.as_deref(), &cwd)
                .unwrap_or_else(|| cwd.join(crate::commands::init::starter::FILE_NAME));
            // Something in the way (a directory, a dangling link): the lookup's own message.
            if path.exists() || std::fs::symlink_metadata(&path).is_ok() {
                return Err(e);
            }
            let display = path
                .strip_prefix(&cwd)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| path.display().to_string());
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok(Target {
                located: Located { path, display },
                exists: false,
                state_dir: dir.join(".pypm"),
            })
        }
    }
}

/// What an edit did.
pub struct Edited {
    pub target: Target,
    /// The file before the edit, when it was valid.
    pub before: Option<Desired>,
    pub after: Desired,
    /// The supervisor's rows just before the write; empty when none runs.
    pub pre_rows: Vec<Row>,
    pub running: bool,
}

/// The comment block a file created by `pypm start` begins with.
fn new_file_header() -> String {
    format!(
        "{SCHEMA_LINE}\n\
         #\n\
         # pypm.toml: the apps pypm keeps running for this directory. Written by `pypm start`;\n\
         # edit it freely. `pypm start`, `stop`, `scale`, `set`, `unset` and `delete` change it in\n\
         # place (comments and formatting kept) and the running supervisor follows.\n\
         # `pypm check` validates it.\n"
    )
}

/// Runs one edit under the lock. `mutate` changes the document (it may refuse with a failure,
/// and then nothing is written). Prints the diff unless `quiet`.
pub fn edit(
    target: Target,
    quiet: bool,
    mutate: impl FnOnce(&mut DocumentMut) -> Result<(), Failure>,
) -> Result<Edited, Failure> {
    let io = |what: String, e: std::io::Error| Failure::Error(format!("{what}: {e}"));
    let sd = &target.state_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(sd)
        .map_err(|e| io(format!("cannot create `{}`", sd.display()), e))?;
    let lock_path = sd.join(LOCK_FILE);
    let lock = crate::process::lock_exclusive(&lock_path)
        .map_err(|e| io(format!("cannot lock `{}`", lock_path.display()), e))?;

    let path = &target.located.path;
    let display = target.located.display.clone();
    // Read under the lock: another edit may have just written (or created) the file.
    let old_text = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !target.exists => None,
        Err(e) => return Err(io(format!("cannot read `{display}`"), e)),
    };
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
    let host = HostEnv::from_process();
    let source = old_text.as_deref().unwrap_or("");
    let mut doc: DocumentMut = match source.parse() {
        Ok(d) => d,
        Err(_) => {
            // The reader words TOML syntax errors the way `check` does, with the position.
            return Err(
                match crate::desired::resolve::from_source(source, &abs, &display, &host) {
                    Err(e) => Failure::Config(e),
                    Ok(_) => Failure::Error(format!("`{display}` is not valid TOML")),
                },
            );
        }
    };
    mutate(&mut doc)?;
    let mut new_text = doc.to_string();
    if old_text.is_none() {
        new_text = format!(
            "{}\n{}",
            new_file_header(),
            new_text.trim_start_matches('\n')
        );
    }
    let before = old_text
        .as_deref()
        .and_then(|t| crate::desired::resolve::from_source(t, &abs, &display, &host).ok());
    let after =
        crate::desired::resolve::from_source(&new_text, &abs, &display, &host).map_err(|e| {
            Failure::Error(format!(
                "this change would make `{display}` invalid; nothing was written\n\n{}",
                e.render().trim_end()
            ))
        })?;
    let running = client::is_running(sd);
    let pre_rows = if running { rows(sd, path) } else { Vec::new() };
    let changed = old_text.as_deref() != Some(new_text.as_str());
    if changed {
        write::write_atomic(path, &new_text)
            .map_err(|e| io(format!("cannot write `{display}`"), e))?;
        if !quiet {
            print!(
                "{}",
                diff::unified(&display, old_text.as_deref().unwrap_or(""), &new_text)
            );
        }
    }
    drop(lock);
    Ok(Edited {
        target,
        before,
        after,
        pre_rows,
        running,
    })
}

/// Every instance row of the supervisor of `state_dir` (empty when it does not answer).
pub fn rows(state_dir: &Path, config: &Path) -> Vec<Row> {
    match client::request_for(
        state_dir,
        Some(config),
        Request::Status {
            app: None,
            light: true,
        },
        Duration::from_secs(30),
    ) {
        Ok(Response::Status(s)) => s.instances,
        _ => Vec::new(),
    }
}

/// "no app named `x`" with a `did you mean` among the file's apps.
pub fn unknown_app(doc: &DocumentMut, app: &str, display: &str) -> Failure {
    let names = doc::app_names(doc);
    let mut msg = format!("no app named `{app}` in `{display}`");
    if let Some(hint) = crate::diagnostic::did_you_mean(app, names.iter().map(String::as_str)) {
        msg.push_str(&format!("\n\n{hint}"));
    }
    Failure::Error(msg)
}

#[cfg(test)]
mod tests;
