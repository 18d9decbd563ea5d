//! Python environments and app command lines (SPEC §3, §8 "Conda names").
//!
//! Owns: which apps get a Python environment, finding that environment on disk (a declared venv,
//! conda env or interpreter; an automatic `.venv`/`venv`; `$VIRTUAL_ENV`; `$CONDA_PREFIX`; `python3`
//! on `PATH`), the variables it implies, and the final argv of an app.
//!
//! Must not: execute anything (no `conda`, no shell), read the real process environment outside
//! [`HostEnv::from_process`], or depend on other pypm modules. Only filesystem lookups, so that
//! `pypm check` can call it and tests can inject a [`HostEnv`]. Paths are never canonicalized: a
//! venv's `bin/python` is a symlink to the base interpreter, and following it would leave the venv.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

mod conda;
// Unix environments (`bin/python`, symlinks, modes).
#[cfg(all(test, unix))]
mod tests;

pub use conda::find_conda_env;
use conda::{conda_default_env, conda_env, is_conda_prefix};

/// Used by `which` when the host has no `PATH` at all (the same fallback as `execvp`).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How Python environments are laid out on disk, which differs by platform (the lookups are the
/// same code, and a test on Linux can ask for the Windows layout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// `VENV/bin/python`, `PREFIX/bin/python`, `PATH` split by `:`, `python3` on `PATH`.
    #[default]
    Unix,
    /// `VENV\Scripts\python.exe`, `PREFIX\python.exe` (conda), `PATH` split by `;`, a bare name
    /// tried with each `PATHEXT` extension, `python` on `PATH`.
    Windows,
}

impl Layout {
    /// The layout of the platform pypm runs on.
    pub fn native() -> Layout {
        if crate::process::WINDOWS {
            Layout::Windows
        } else {
            Layout::Unix
        }
    }

    fn path_separator(self) -> char {
        match self {
            Layout::Unix => ':',
            Layout::Windows => ';',
        }
    }

    /// A `PATH` entry that does not depend on the current directory.
    fn is_absolute_dir(self, d: &str) -> bool {
        let b = d.as_bytes();
        match self {
            Layout::Unix => d.starts_with('/'),
            Layout::Windows => {
                d.starts_with('/')
                    || d.starts_with("\\\\")
                    || (b.len() >= 3
                        && b[0].is_ascii_alphabetic()
                        && b[1] == b':'
                        && (b[2] == b'\\' || b[2] == b'/'))
            }
        }
    }

    /// A venv's directory of programs: `bin`, `Scripts`.
    fn venv_bin(self, dir: &Path) -> PathBuf {
        match self {
            Layout::Unix => dir.join("bin"),
            Layout::Windows => dir.join("Scripts"),
        }
    }

    /// The interpreters a venv may have, in order.
    fn venv_pythons(self, dir: &Path) -> Vec<PathBuf> {
        let bin = self.venv_bin(dir);
        match self {
            Layout::Unix => vec![bin.join("python"), bin.join("python3")],
            Layout::Windows => vec![bin.join("python.exe")],
        }
    }

    /// A conda prefix's interpreter: `bin/python`, `python.exe` at the prefix's root.
    fn conda_python(self, prefix: &Path) -> PathBuf {
        match self {
            Layout::Unix => prefix.join("bin/python"),
            Layout::Windows => prefix.join("python.exe"),
        }
    }

    /// The directories `conda activate` puts first on `PATH`, in order.
    fn conda_bins(self, prefix: &Path) -> Vec<PathBuf> {
        match self {
            Layout::Unix => vec![prefix.join("bin")],
            Layout::Windows => vec![
                prefix.to_path_buf(),
                prefix.join("Library").join("bin"),
                prefix.join("Scripts"),
            ],
        }
    }

    /// The interpreter looked up on `PATH` when no environment is found.
    fn system_python(self) -> &'static str {
        match self {
            Layout::Unix => "python3",
            Layout::Windows => "python",
        }
    }

    /// The file names a bare program `word` may have in a directory: itself; on Windows, when it
    /// has no extension, `word` plus each `PATHEXT` extension first.
    fn exe_names(self, word: &str, host: &HostEnv) -> Vec<String> {
        match self {
            Layout::Unix => vec![word.to_string()],
            Layout::Windows if Path::new(word).extension().is_some() => vec![word.to_string()],
            Layout::Windows => {
                let exts = host.var("PATHEXT").unwrap_or(".COM;.EXE;.BAT;.CMD");
                let mut names: Vec<String> = exts
                    .split(';')
                    .filter(|e| e.starts_with('.'))
                    .map(|e| format!("{word}{}", e.to_ascii_lowercase()))
                    .collect();
                names.push(word.to_string());
                names
            }
        }
    }
}

/// What runs a script that Windows cannot start by itself (`CreateProcessW` runs `.exe` and
/// `.com` files only; `.bat`/`.cmd` through `cmd.exe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptRunner {
    /// `.py`: the app's Python (its environment's interpreter).
    Python,
    /// `.ps1`: `powershell -NoProfile -ExecutionPolicy Bypass -File SCRIPT ARGS…`.
    PowerShell,
    /// `.bat`, `.cmd`: `cmd.exe /c`. The argv is left as is: the spawn passes the script itself
    /// to std's `Command`, which runs it through `cmd.exe /d /c` with cmd's own quoting (a
    /// plain `cmd /c` argv would be quoted for `CommandLineToArgvW`, which cmd does not parse).
    Cmd,
}

/// The words before a `.ps1` script's path (after `powershell`).
pub const POWERSHELL_ARGS: [&str; 4] = ["-NoProfile", "-ExecutionPolicy", "Bypass", "-File"];

impl Layout {
    /// How a program named `program` runs when it is a script: on Windows by its extension
    /// (any case); on Unix never (the kernel reads the `#!` line).
    pub fn script_runner(self, program: &str) -> Option<ScriptRunner> {
        if self == Layout::Unix {
            return None;
        }
        let ext = Path::new(program)
            .extension()?
            .to_str()?
            .to_ascii_lowercase();
        match ext.as_str() {
            "py" => Some(ScriptRunner::Python),
            "ps1" => Some(ScriptRunner::PowerShell),
            "bat" | "cmd" => Some(ScriptRunner::Cmd),
            _ => None,
        }
    }
}

/// `powershell -NoProfile -ExecutionPolicy Bypass -File`, `powershell` looked up as any program.
fn powershell(env: Option<&PythonEnv>, host: &HostEnv) -> Vec<String> {
    let mut words = vec![lookup("powershell", env, host)];
    words.extend(POWERSHELL_ARGS.iter().map(|w| w.to_string()));
    words
}

/// A snapshot of the supervisor's (or `pypm check`'s) environment, injectable for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostEnv {
    pub vars: HashMap<String, String>,
    pub home: Option<PathBuf>,
    /// [`Layout::native`] from the process; [`Layout::Unix`] unless a test says otherwise.
    pub layout: Layout,
}

impl HostEnv {
    /// The current process's variables (those that are valid UTF-8) and home directory.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        HostEnv {
            vars,
            home: std::env::home_dir(),
            layout: Layout::native(),
        }
    }

    pub fn new<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
        home: Option<PathBuf>,
    ) -> Self {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        HostEnv {
            vars,
            home,
            layout: Layout::default(),
        }
    }

    /// A variable's value; set-but-empty counts as unset, as in conda's and venv's activate scripts.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `PATH` as absolute directories: empty and relative entries are skipped, as they would
    /// depend on the directory pypm happens to run in.
    fn path_dirs(&self) -> Vec<PathBuf> {
        let path = self.var("PATH").unwrap_or(DEFAULT_PATH);
        path.split(self.layout.path_separator())
            .filter(|d| self.layout.is_absolute_dir(d))
            .map(PathBuf::from)
            .collect()
    }

    /// `~/x` → `HOME/x`, as conda does for `CONDA_ENVS_PATH` entries.
    fn expand_home(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), &self.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(path),
        }
    }
}

/// Whether a `conda` or `python` value of `[environments.NAME]` is a path rather than a name:
/// it has a `/` or a `\`, starts with a drive letter (`C:`), or is `.`/`..`. The same rule on
/// every platform (what it reads does not depend on where pypm runs), so `conda = 'C:\envs\ml'`
/// and `python = '.\venv\Scripts\python.exe'` are paths wherever the file is checked.
pub fn is_path_like(value: &str) -> bool {
    let b = value.as_bytes();
    value.contains(['/', '\\'])
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        || value == "."
        || value == ".."
}

/// A declared `[environments.NAME]`, with paths already absolute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvDecl {
    /// A virtualenv directory (has `pyvenv.cfg`).
    Venv(PathBuf),
    /// A conda/mamba env name, or a prefix path ([`is_path_like`]).
    Conda(String),
    /// An interpreter: a path ([`is_path_like`]), else a name looked up on `PATH`.
    Python(String),
}

/// What an app runs, as far as this module needs to know (exactly one of command/script/module).
#[derive(Debug, Clone, Copy)]
pub struct AppLaunch<'a> {
    /// Already split into words.
    pub command: Option<&'a [String]>,
    /// Relative to `cwd`.
    pub script: Option<&'a str>,
    pub module: Option<&'a str>,
    /// Extra arguments, appended after the script/module (or the command's words).
    pub args: &'a [String],
    /// `python | node | bash | sh | none`, a path (relative to `cwd`), or a program name.
    pub interpreter: Option<&'a str>,
    pub environment: Option<(&'a str, &'a EnvDecl)>,
    /// Absolute.
    pub cwd: &'a Path,
    /// The directory of `pypm.toml`, absolute.
    pub config_dir: &'a Path,
}

/// The resolved command line of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `argv[0]` is an absolute path when it could be found; otherwise the word as written, so
    /// the spawn fails with the OS's reason.
    pub argv: Vec<String>,
    /// Some when the app gets a Python environment (SPEC §3).
    pub python: Option<PythonEnv>,
    /// The app is Python, or runs a program from its environment's `bin`: the caller sets
    /// `PYTHONUNBUFFERED=1` so its logs are not block-buffered.
    pub is_python: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonEnv {
    /// E.g. `/x/.venv/bin/python` (not canonicalized).
    pub interpreter: PathBuf,
    /// Words that follow the interpreter in argv before anything else: `-3` for the Windows
    /// `py` launcher ([`Rule::PyLauncher`]), else none.
    pub interpreter_args: Vec<String>,
    /// The venv directory or conda prefix.
    pub prefix: Option<PathBuf>,
    /// Where `command` words are looked up before `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// Variables the environment implies, to apply in order over the supervisor's environment.
    pub vars: Vec<(String, String)>,
    /// Variables to remove from the supervisor's environment (a venv clears `PYTHONHOME`).
    pub unset: Vec<String>,
    /// Which rule chose the interpreter (for `inspect` and `check -v`).
    pub rule: Rule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclKind {
    Venv,
    Conda,
    Python,
}

/// Which rule of SPEC §3 chose the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `environment = NAME`; `path` is the venv dir, the conda prefix, or the interpreter.
    Declared {
        name: String,
        kind: DeclKind,
        path: PathBuf,
    },
    /// A `.venv`/`venv` in the app's cwd or the config file's directory.
    AutoVenv(PathBuf),
    VirtualEnvVar(PathBuf),
    CondaPrefixVar(PathBuf),
    SystemPython(PathBuf),
    /// Windows, when no `python` is on `PATH` either: the `py` launcher, run as `py -3`.
    PyLauncher(PathBuf),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Declared { name, kind, path } => {
                let kind = match kind {
                    DeclKind::Venv => "venv",
                    DeclKind::Conda => "conda",
                    DeclKind::Python => "python",
                };
                write!(f, "environment `{name}` ({kind} {})", path.display())
            }
            Rule::AutoVenv(dir) => write!(f, "automatic: {}", dir.display()),
            Rule::VirtualEnvVar(dir) => write!(f, "$VIRTUAL_ENV ({})", dir.display()),
            Rule::CondaPrefixVar(dir) => write!(f, "$CONDA_PREFIX ({})", dir.display()),
            Rule::SystemPython(path) => write!(f, "system python3 on PATH ({})", path.display()),
            Rule::PyLauncher(path) => write!(f, "py launcher on PATH ({} -3)", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Wraps what went wrong with `[environments.NAME]`.
    #[error("environment `{name}`: {error}")]
    Declared { name: String, error: Box<EnvError> },
    #[error("{} is not a virtualenv; looked for {}", dir.display(), dir.join("pyvenv.cfg").display())]
    NotAVenv { dir: PathBuf },
    #[error("virtualenv {} has no python; looked for {}", dir.display(), list(looked))]
    VenvNoPython { dir: PathBuf, looked: Vec<PathBuf> },
    #[error(
        "conda environment `{name}` not found; looked in {}{}",
        list(looked),
        hint(did_you_mean)
    )]
    CondaNotFound {
        name: String,
        looked: Vec<PathBuf>,
        did_you_mean: Option<String>,
    },
    #[error("{} is not a conda environment; looked for {}", prefix.display(), prefix.join("conda-meta").display())]
    NotACondaPrefix { prefix: PathBuf },
    #[error("conda environment {} has no python; looked for {}", prefix.display(), looked.display())]
    CondaNoPython { prefix: PathBuf, looked: PathBuf },
    #[error("cannot read the conda environment's variables from {}: {reason}", path.display())]
    CondaState { path: PathBuf, reason: String },
    #[error("python `{python}` not found; looked for {}", list(looked))]
    PythonNotFound {
        python: String,
        looked: Vec<PathBuf>,
    },
    /// Rules 2–4 of SPEC §3 all failed; `looked` describes each place tried.
    #[error("no python found; looked for {}", looked.join(", "))]
    NoPython { looked: Vec<String> },
    #[error("`module` runs with python, not with interpreter `{interpreter}`")]
    ModuleInterpreter { interpreter: String },
    #[error("nothing to run: no command, script or module")]
    NothingToRun,
}

fn list(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if shown.is_empty() {
        "nothing".to_string()
    } else {
        shown.join(", ")
    }
}

fn hint(did_you_mean: &Option<String>) -> String {
    did_you_mean
        .as_ref()
        .map(|n| format!(" (did you mean `{n}`?)"))
        .unwrap_or_default()
}

/// Resolves `[environments.NAME]` (rule 1 of SPEC §3).
pub fn resolve_declared(name: &str, decl: &EnvDecl, host: &HostEnv) -> Result<PythonEnv, EnvError> {
    let wrap = |error| EnvError::Declared {
        name: name.to_string(),
        error: Box::new(error),
    };
    let rule = |kind, path: &Path| Rule::Declared {
        name: name.to_string(),
        kind,
        path: path.to_path_buf(),
    };
    match decl {
        EnvDecl::Venv(dir) => {
            if !dir.join("pyvenv.cfg").is_file() {
                return Err(wrap(EnvError::NotAVenv { dir: dir.clone() }));
            }
            let interpreter = venv_python(dir, host.layout).map_err(wrap)?;
            Ok(venv_env(dir, interpreter, host, rule(DeclKind::Venv, dir)))
        }
        EnvDecl::Conda(spec) => {
            let (prefix, env_name) = if is_path_like(spec) {
                let prefix = PathBuf::from(spec);
                if !is_conda_prefix(&prefix) {
                    return Err(wrap(EnvError::NotACondaPrefix { prefix }));
                }
                let env_name = conda_default_env(&prefix);
                (prefix, env_name)
            } else {
                (find_conda_env(spec, host).map_err(wrap)?, spec.clone())
            };
            conda_env(&prefix, &env_name, host, rule(DeclKind::Conda, &prefix)).map_err(wrap)
        }
        EnvDecl::Python(python) => {
            let interpreter = if is_path_like(python) {
                let path = PathBuf::from(python);
                if !is_executable(&path) {
                    let looked = vec![path];
                    return Err(wrap(EnvError::PythonNotFound {
                        python: python.clone(),
                        looked,
                    }));
                }
                path
            } else {
                which(python, host).map_err(|looked| {
                    wrap(EnvError::PythonNotFound {
                        python: python.clone(),
                        looked,
                    })
                })?
            };
            let rule = rule(DeclKind::Python, &interpreter);
            // `python = ".venv/bin/python"` is a venv in all but name: activate it.
            let bin_dir = interpreter.parent().filter(|_| is_path_like(python));
            let venv = bin_dir
                .and_then(Path::parent)
                .filter(|d| d.join("pyvenv.cfg").is_file());
            match venv.map(Path::to_path_buf) {
                Some(venv) => Ok(venv_env(&venv, interpreter, host, rule)),
                None => Ok(PythonEnv {
                    bin_dir: bin_dir.map(Path::to_path_buf),
                    interpreter,
                    interpreter_args: Vec::new(),
                    prefix: None,
                    vars: Vec::new(),
                    unset: Vec::new(),
                    rule,
                }),
            }
        }
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && crate::process::ext::fs::is_executable(&m))
}

type Found = Result<PathBuf, Vec<PathBuf>>;

thread_local! {
    /// `which` answers during one [`with_path_memo`]: one search of `PATH` per program and
    /// `PATH` value, not one per app (3,000 `sleep` apps stat `PATH` 3,000 times otherwise).
    static PATH_MEMO: std::cell::RefCell<Option<HashMap<(String, String), Found>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `PATH` lookups remembered, then forgets them: the next resolve (a reload)
/// looks again, since programs may have been installed in between.
pub(crate) fn with_path_memo<T>(f: impl FnOnce() -> T) -> T {
    let outer = PATH_MEMO.with(|m| m.borrow_mut().replace(HashMap::new()));
    let out = f();
    PATH_MEMO.with(|m| *m.borrow_mut() = outer);
    out
}

/// `word` on the host's `PATH`, or every path that was tried.
fn which(word: &str, host: &HostEnv) -> Found {
    let key = (
        word.to_string(),
        host.var("PATH").unwrap_or(DEFAULT_PATH).to_string(),
    );
    if let Some(found) = PATH_MEMO.with(|m| m.borrow().as_ref().and_then(|m| m.get(&key).cloned()))
    {
        return found;
    }
    let names = host.layout.exe_names(word, host);
    let tried: Vec<PathBuf> = host
        .path_dirs()
        .iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .collect();
    let found = tried
        .iter()
        .find(|p| is_executable(p))
        .cloned()
        .ok_or(tried);
    PATH_MEMO.with(|m| {
        if let Some(m) = m.borrow_mut().as_mut() {
            m.insert(key, found.clone());
        }
    });
    found
}

/// `word` in directory `dir`, as the layout names programs (`PATHEXT` on Windows).
fn exe_in(dir: &Path, word: &str, host: &HostEnv) -> Option<PathBuf> {
    host.layout
        .exe_names(word, host)
        .iter()
        .map(|n| dir.join(n))
        .find(|p| is_executable(p))
}

fn venv_python(dir: &Path, layout: Layout) -> Result<PathBuf, EnvError> {
    let looked = layout.venv_pythons(dir);
    match looked.iter().find(|p| is_executable(p)) {
        Some(python) => Ok(python.clone()),
        None => Err(EnvError::VenvNoPython {
            dir: dir.to_path_buf(),
            looked,
        }),
    }
}

/// `bin` first on the host's `PATH` (once: not again when it already comes first).
fn prepend_path(bin: &Path, host: &HostEnv) -> String {
    prepend_paths(std::slice::from_ref(&bin.to_path_buf()), host)
}

/// `bins` first on the host's `PATH`, in order (not again when they already come first).
fn prepend_paths(bins: &[PathBuf], host: &HostEnv) -> String {
    let sep = host.layout.path_separator();
    let first: Vec<String> = bins
        .iter()
        .map(|b| b.to_string_lossy().into_owned())
        .collect();
    let first = first.join(&sep.to_string());
    match host.var("PATH") {
        None => first,
        Some(path)
            if path.starts_with(&first)
                && path[first.len()..].chars().next().is_none_or(|c| c == sep) =>
        {
            path.to_string()
        }
        Some(path) => format!("{first}{sep}{path}"),
    }
}

fn venv_env(dir: &Path, interpreter: PathBuf, host: &HostEnv, rule: Rule) -> PythonEnv {
    let bin = host.layout.venv_bin(dir);
    PythonEnv {
        vars: vec![
            (
                "VIRTUAL_ENV".to_string(),
                dir.to_string_lossy().into_owned(),
            ),
            ("PATH".to_string(), prepend_path(&bin, host)),
        ],
        // What `bin/activate` does: a PYTHONHOME from outside would break the venv's python.
        unset: vec!["PYTHONHOME".to_string()],
        interpreter,
        interpreter_args: Vec::new(),
        prefix: Some(dir.to_path_buf()),
        bin_dir: Some(bin),
        rule,
    }
}

/// `python`, `python3`, `python3.11`, …
/// `python`, `python3`, `python3.12`: a word that names a Python interpreter.
pub(crate) fn is_python_name(word: &str) -> bool {
    let Some(version) = word.strip_prefix("python") else {
        return false;
    };
    version.is_empty()
        || (version.split('.').count() <= 2
            && version
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
}

/// A word that names a Python: `python…`, or a path to one.
fn names_python(word: &str) -> bool {
    let base = Path::new(word).file_name().map(|n| n.to_string_lossy());
    base.is_some_and(|b| is_python_name(&b))
}

/// The first automatically detected virtualenv (rule 2), and every directory tried.
fn auto_venv(app: &AppLaunch, layout: Layout) -> (Option<(PathBuf, PathBuf)>, Vec<PathBuf>) {
    let mut tried = Vec::new();
    let bases = if app.cwd == app.config_dir {
        vec![app.cwd]
    } else {
        vec![app.cwd, app.config_dir]
    };
    for base in bases {
        for name in [".venv", "venv"] {
            let dir = base.join(name);
            if dir.join("pyvenv.cfg").is_file()
                && let Ok(python) = venv_python(&dir, layout)
            {
                return (Some((dir, python)), tried);
            }
            tried.push(dir);
        }
    }
    (None, tried)
}

/// Rules 2–4 of SPEC §3, for a Python app without a declared environment.
fn resolve_automatic(app: &AppLaunch, host: &HostEnv) -> Result<PythonEnv, EnvError> {
    let (found, tried) = auto_venv(app, host.layout);
    if let Some((dir, python)) = found {
        return Ok(venv_env(&dir, python, host, Rule::AutoVenv(dir.clone())));
    }
    let mut looked: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
    match host.var("VIRTUAL_ENV").map(PathBuf::from) {
        Some(dir) => match venv_python(&dir, host.layout) {
            Ok(python) => {
                return Ok(venv_env(
                    &dir,
                    python,
                    host,
                    Rule::VirtualEnvVar(dir.clone()),
                ));
            }
            Err(e) => looked.push(format!("$VIRTUAL_ENV ({e})")),
        },
        None => looked.push("$VIRTUAL_ENV (unset)".to_string()),
    }
    match host.var("CONDA_PREFIX").map(PathBuf::from) {
        Some(prefix) => {
            let name = host
                .var("CONDA_DEFAULT_ENV")
                .map_or_else(|| conda_default_env(&prefix), str::to_string);
            match conda_env(&prefix, &name, host, Rule::CondaPrefixVar(prefix.clone())) {
                Ok(env) => return Ok(env),
                Err(e) => looked.push(format!("$CONDA_PREFIX ({e})")),
            }
        }
        None => looked.push("$CONDA_PREFIX (unset)".to_string()),
    }
    let system = host.layout.system_python();
    let bare = |rule, interpreter, interpreter_args| PythonEnv {
        rule,
        interpreter,
        interpreter_args,
        prefix: None,
        bin_dir: None,
        vars: Vec::new(),
        unset: Vec::new(),
    };
    match which(system, host) {
        Ok(python) => return Ok(bare(Rule::SystemPython(python.clone()), python, Vec::new())),
        Err(tried) => looked.push(format!("{system} on PATH ({})", list(&tried))),
    }
    // The python.org installer for Windows puts `py.exe` on `PATH`, not always `python.exe`.
    if host.layout == Layout::Windows {
        match which("py", host) {
            Ok(py) => {
                return Ok(bare(Rule::PyLauncher(py.clone()), py, vec!["-3".into()]));
            }
            Err(tried) => looked.push(format!("the py launcher on PATH ({})", list(&tried))),
        }
    }
    Err(EnvError::NoPython { looked })
}

/// A program word: the environment's `bin` first, then the host's `PATH`, else the word itself.
fn lookup(word: &str, env: Option<&PythonEnv>, host: &HostEnv) -> String {
    let in_env = env
        .and_then(|e| e.bin_dir.as_ref())
        .and_then(|b| exe_in(b, word, host));
    match in_env.or_else(|| which(word, host).ok()) {
        Some(path) => path.to_string_lossy().into_owned(),
        None => word.to_string(),
    }
}

/// `path` relative to the app's cwd, without `./` (for `inspect` to read well).
fn in_cwd(app: &AppLaunch, path: &str) -> String {
    path_in(app.cwd, path).to_string_lossy().into_owned()
}

/// Where a path an app names (a script, an interpreter, a program with a `/`) is: relative to
/// the app's `cwd`, `./` parts dropped.
pub(crate) fn path_in(cwd: &Path, path: &str) -> PathBuf {
    let path: PathBuf = Path::new(path)
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    cwd.join(path)
}

/// A program the app names: `python`/`python3` is the environment's interpreter; a path is
/// relative to cwd; any other word is looked up. Several words for the `py` launcher
/// (`py.exe -3`).
fn program(word: &str, app: &AppLaunch, env: Option<&PythonEnv>, host: &HostEnv) -> Vec<String> {
    match env {
        Some(env) if word == "python" || word == "python3" => env.argv(),
        _ if word.contains('/') => vec![in_cwd(app, word)],
        _ => vec![lookup(word, env, host)],
    }
}

impl PythonEnv {
    /// The interpreter and the words that go with it (`py.exe -3`).
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.interpreter.to_string_lossy().into_owned()];
        argv.extend(self.interpreter_args.iter().cloned());
        argv
    }
}

/// Resolves an app's environment and argv (SPEC §3).
pub fn resolve_launch(app: &AppLaunch, host: &HostEnv) -> Result<Launch, EnvError> {
    let interpreter = app.interpreter;
    let python_interpreter = interpreter.is_some_and(names_python);
    let first_word = app.command.and_then(|c| c.first()).map(String::as_str);
    let wants_python = if app.module.is_some() {
        match interpreter {
            Some(i) if !python_interpreter && matches!(i, "node" | "bash" | "sh" | "none") => {
                return Err(EnvError::ModuleInterpreter {
                    interpreter: i.to_string(),
                });
            }
            _ => true,
        }
    } else if let Some(script) = app.script {
        python_interpreter
            || (matches!(interpreter, None | Some("none")) && script.ends_with(".py"))
    } else {
        // A path to a python is the user's explicit choice of interpreter: no environment for it.
        python_interpreter
            || first_word.is_some_and(|w| {
                is_python_name(w) || host.layout.script_runner(w) == Some(ScriptRunner::Python)
            })
    };

    let python = match app.environment {
        Some((name, decl)) => Some(resolve_declared(name, decl, host)?),
        None if wants_python => Some(resolve_automatic(app, host)?),
        // A command found in the automatic venv's `bin` (e.g. `gunicorn`) runs in that venv.
        None => match (auto_venv(app, host.layout).0, first_word) {
            (Some((dir, python)), Some(word)) => {
                let bin = host.layout.venv_bin(&dir);
                let owned = if word.contains('/') {
                    app.cwd.join(word).parent() == Some(bin.as_path())
                } else {
                    exe_in(&bin, word, host).is_some()
                };
                owned.then(|| venv_env(&dir, python, host, Rule::AutoVenv(dir.clone())))
            }
            _ => None,
        },
    };
    let env = python.as_ref();

    let mut argv = Vec::new();
    if let Some(module) = app.module {
        let python = match (interpreter, env) {
            (Some(i), _) if i != "python" => program(i, app, env, host),
            (_, Some(env)) => env.argv(),
            // Unreachable (a module always gets an environment), but harmless.
            (_, None) => vec![lookup("python3", None, host)],
        };
        argv.extend(python);
        argv.extend(["-m".to_string(), module.to_string()]);
    } else if let Some(script) = app.script {
        let ext = Path::new(script).extension().and_then(|e| e.to_str());
        let runner = match (interpreter, ext) {
            (None, _) if host.layout.script_runner(script) == Some(ScriptRunner::PowerShell) => {
                Some(powershell(env, host))
            }
            (Some("none"), _) => None,
            (Some(i), _) => Some(program(i, app, env, host)),
            (None, Some("py")) => Some(program("python", app, env, host)),
            (None, Some("js")) => Some(program("node", app, env, host)),
            (None, Some("sh")) => Some(program("bash", app, env, host)),
            (None, _) => None,
        };
        match runner {
            Some(runner) => {
                argv.extend(runner);
                argv.push(script.to_string());
            }
            None => argv.push(in_cwd(app, script)),
        }
    } else if let Some(words) = app.command.filter(|w| !w.is_empty()) {
        let first = &words[0];
        match host.layout.script_runner(first) {
            Some(ScriptRunner::Python) => {
                argv.extend(program("python", app, env, host));
                argv.push(first.clone());
            }
            Some(ScriptRunner::PowerShell) => {
                argv.extend(powershell(env, host));
                argv.push(first.clone());
            }
            Some(ScriptRunner::Cmd) | None => argv.extend(program(first, app, env, host)),
        }
        argv.extend(words[1..].iter().cloned());
    } else {
        return Err(EnvError::NothingToRun);
    }
    argv.extend(app.args.iter().cloned());

    let from_env_bin = env
        .and_then(|e| e.bin_dir.as_deref())
        .is_some_and(|bin| Path::new(&argv[0]).parent() == Some(bin));
    let is_python = wants_python || from_env_bin || names_python(&argv[0]);
    Ok(Launch {
        argv,
        python,
        is_python,
    })
}
