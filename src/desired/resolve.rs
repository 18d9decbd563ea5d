//! From a validated [`Config`] to the desired state the supervisor runs: each app's final argv,
//! complete environment and the rule that chose its interpreter.
//!
//! Owns: SPEC §3 environment checks (as positioned diagnostics) and the environment precedence of
//! SPEC §8. Runs nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Serialize;

use crate::config::{self, App, Config, ConfigError, Program};
use crate::desired::environ::{self, Environ};
use crate::desired::python_env::{self, AppLaunch, EnvError, HostEnv};
use crate::diagnostic::Diagnostic;

/// The whole desired state: the file plus what each app resolves to.
#[derive(Debug, Clone)]
pub struct Desired {
    pub config: Config,
    pub apps: IndexMap<String, AppSpec>,
}

/// One app, ready to spawn (per-instance variables are added at spawn time).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppSpec {
    #[serde(flatten)]
    /// Shared with the file's [`Config`] (one copy per app).
    pub app: Arc<App>,
    pub argv: Vec<String>,
    /// The complete environment (SPEC §8 precedence applied), sharing the supervisor's variables
    /// with every other app.
    pub environ: Environ,
    pub is_python: bool,
    pub interpreter: Option<PathBuf>,
    /// How the interpreter was chosen (SPEC §3), for `check -v` and `inspect`.
    pub rule: Option<String>,
}

/// Reads, validates and resolves the file.
pub fn load(path: &Path, display: &str, host: &HostEnv) -> Result<Desired, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    from_source(&source, &abs, display, host)
}

pub fn from_source(
    source: &str,
    path: &Path,
    display: &str,
    host: &HostEnv,
) -> Result<Desired, ConfigError> {
    let config = config::parse(source, path, display, &host.vars)?;
    let sources = config.sources.clone();
    resolve(config, host).map_err(|diagnostics| ConfigError {
        file: display.to_string(),
        source: sources.text,
        diagnostics,
        files: sources.files,
    })
}

pub fn resolve(config: Config, host: &HostEnv) -> Result<Desired, Vec<Diagnostic>> {
    python_env::with_path_memo(|| resolve_all(config, host))
}

fn resolve_all(config: Config, host: &HostEnv) -> Result<Desired, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut env_ok = HashMap::new();
    for (name, env) in &config.environments {
        let ok = match python_env::resolve_declared(name, &env.decl, host) {
            Ok(_) => true,
            Err(e) => {
                diags.push(Diagnostic::new(e.to_string(), Some(env.span.clone())));
                false
            }
        };
        env_ok.insert(name.clone(), ok);
    }
    // The supervisor's variables, sorted once and shared by every app.
    let base = environ::base(host.vars.iter());
    let mut apps = IndexMap::new();
    for (name, app) in &config.apps {
        let environment = app.environment.as_ref().and_then(|e| {
            config
                .environments
                .get(e)
                .map(|env| (e.as_str(), &env.decl))
        });
        if let Some((e, _)) = environment
            && !env_ok.get(e).copied().unwrap_or(false)
        {
            // Already reported at the environment's declaration.
            continue;
        }
        let (command, script, module) = match &app.program {
            Program::Command(words) => (Some(words.as_slice()), None, None),
            Program::Script(s) => (None, Some(s.as_str()), None),
            Program::Module(m) => (None, None, Some(m.as_str())),
        };
        let launch = AppLaunch {
            command,
            script,
            module,
            args: &app.args,
            interpreter: app.interpreter.as_deref(),
            environment,
            cwd: &app.cwd,
            config_dir: &config.dir,
        };
        match python_env::resolve_launch(&launch, host) {
            Ok(l) => {
                apps.insert(name.clone(), spec_for(app, l, &base));
            }
            Err(e) => {
                let key = match e {
                    EnvError::ModuleInterpreter { .. } => "interpreter",
                    _ if app.environment.is_some() => "environment",
                    _ => "",
                };
                diags.push(Diagnostic::new(
                    format!("app `{name}`: {e}"),
                    Some(app.spans.of(key)),
                ));
            }
        }
    }
    if diags.is_empty() {
        Ok(Desired { config, apps })
    } else {
        Err(diags)
    }
}

fn spec_for(app: &Arc<App>, launch: python_env::Launch, base: &environ::Base) -> AppSpec {
    // SPEC §8 precedence, lowest first: supervisor, Python environment, env_file(s), env, PYPM_*.
    let mut environ = Environ::new(base.clone());
    if let Some(py) = &launch.python {
        for k in &py.unset {
            environ.unset(k);
        }
        for (k, v) in &py.vars {
            environ.set(k.clone(), v.clone());
        }
    }
    for (k, v) in app.env_file_vars.iter().chain(app.env.iter()) {
        environ.set(k.clone(), v.clone());
    }
    let user_set_unbuffered = app
        .env_file_vars
        .iter()
        .chain(app.env.iter())
        .any(|(k, _)| k == "PYTHONUNBUFFERED");
    if launch.is_python && !user_set_unbuffered {
        environ.set("PYTHONUNBUFFERED", "1");
    }
    environ.set("PYPM_APP", app.name.clone());
    AppSpec {
        app: app.clone(),
        argv: launch.argv,
        environ,
        is_python: launch.is_python,
        interpreter: launch.python.as_ref().map(|p| p.interpreter.clone()),
        rule: launch.python.as_ref().map(|p| p.rule.to_string()),
    }
}

/// Keys whose values are masked in output (SPEC §8).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "PASSWD", "TOKEN", "KEY", "CREDENTIAL"]
        .iter()
        .any(|s| k.contains(s))
}

/// `value`, or `***` when `key` looks secret.
pub fn masked<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_key(key) { "***" } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_masked() {
        for k in [
            "API_KEY",
            "db_password",
            "GITHUB_TOKEN",
            "AWS_SECRET",
            "CREDENTIALS",
            "PASSWD",
        ] {
            assert_eq!(masked(k, "v"), "***", "{k}");
        }
        for k in ["PATH", "DEBUG", "PORT"] {
            assert_eq!(masked(k, "v"), "v", "{k}");
        }
    }

    #[test]
    fn environment_precedence() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("a.env"), "X=file\nY=file\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let host = HostEnv::new(
            [
                ("X", "host"),
                ("Y", "host"),
                ("Z", "host"),
                ("PATH", "/usr/bin:/bin"),
            ],
            None,
        );
        let d = from_source(
            "[apps.a]\nscript = \"a.py\"\nenv_file = \"a.env\"\nenv = { Y = \"env\", PYPM_APP = \"spoof\" }\n",
            &dir.path().join("pypm.toml"),
            "pypm.toml",
            &host,
        )
        .unwrap_or_else(|e| panic!("{}", e.render()));
        let env: HashMap<_, _> = d.apps["a"].environ.iter().collect();
        assert_eq!(env["Z"], "host");
        assert_eq!(env["X"], "file");
        assert_eq!(env["Y"], "env");
        assert_eq!(env["PYPM_APP"], "a");
        assert_eq!(env["PYTHONUNBUFFERED"], "1");
    }

    #[test]
    fn missing_declared_environment_is_positioned() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let host = HostEnv::new([("PATH", "/usr/bin:/bin")], None);
        let err = from_source(
            "[environments.web]\nvenv = \".venv\"\n[apps.a]\nscript = \"a.py\"\nenvironment = \"web\"\n",
            &dir.path().join("pypm.toml"),
            "pypm.toml",
            &host,
        )
        .err()
        .map(|e| e.render())
        .unwrap_or_default();
        assert!(err.contains("pypm.toml:1:15"), "{err}");
        assert!(err.contains(".venv"), "{err}");
        assert_eq!(err.matches("error:").count(), 1, "{err}");
    }
}
