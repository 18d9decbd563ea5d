//! Conda environments by name (SPEC §8 "Conda names") and the variables a conda env implies.
//! Filesystem lookups only: `conda` itself is never run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{EnvError, HostEnv, PythonEnv, Rule, is_executable, prepend_paths};

/// Finds a conda env by name, in the order of SPEC §8 "Conda names". `base` names a root itself.
pub fn find_conda_env(name: &str, host: &HostEnv) -> Result<PathBuf, EnvError> {
    let mut candidates = Vec::new();
    if name == "base" {
        candidates.extend(conda_roots(host));
    } else {
        if let Some(dirs) = host.var("CONDA_ENVS_PATH") {
            let dirs = dirs
                .split(host.layout.path_separator())
                .filter(|d| !d.is_empty());
            candidates.extend(dirs.map(|d| host.expand_home(d).join(name)));
        }
        candidates.extend(
            conda_roots(host)
                .iter()
                .map(|root| root.join("envs").join(name)),
        );
    }
    let mut looked = Vec::new();
    for candidate in candidates {
        if is_conda_prefix(&candidate) {
            return Ok(candidate);
        }
        push_unique(&mut looked, candidate);
    }
    let listed = host
        .home
        .as_ref()
        .map(|h| h.join(".conda/environments.txt"));
    let listed_prefixes = listed
        .as_ref()
        .map(|txt| read_environments_txt(txt))
        .unwrap_or_default();
    if let Some(prefix) = listed_prefixes
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == name) && is_conda_prefix(p))
    {
        return Ok(prefix.clone());
    }
    looked.extend(listed);
    let did_you_mean = nearest_conda_name(name, &looked, &listed_prefixes);
    Err(EnvError::CondaNotFound {
        name: name.to_string(),
        looked,
        did_you_mean,
    })
}

/// Conda roots in the order of SPEC §8, without duplicates.
fn conda_roots(host: &HostEnv) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for var in ["MAMBA_ROOT_PREFIX", "CONDA_ROOT"] {
        roots.extend(host.var(var).map(PathBuf::from));
    }
    // CONDA_EXE is ROOT/bin/conda (or ROOT/condabin/conda).
    let exe_root = host
        .var("CONDA_EXE")
        .and_then(|exe| Path::new(exe).parent()?.parent());
    roots.extend(exe_root.map(Path::to_path_buf));
    if let Some(prefix) = host.var("CONDA_PREFIX").map(Path::new) {
        let parent = prefix
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "envs"));
        match parent.and_then(Path::parent) {
            Some(root) => roots.push(root.to_path_buf()),
            None => roots.push(prefix.to_path_buf()),
        }
    }
    if let Some(home) = &host.home {
        let dirs = [
            "miniforge3",
            "mambaforge",
            "miniconda3",
            "anaconda3",
            ".conda",
        ];
        roots.extend(dirs.iter().map(|d| home.join(d)));
    }
    let mut unique = Vec::new();
    for root in roots {
        push_unique(&mut unique, root);
    }
    unique
}

fn push_unique(paths: &mut Vec<PathBuf>, path: PathBuf) {
    if !paths.contains(&path) {
        paths.push(path);
    }
}

fn read_environments_txt(path: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    lines.map(PathBuf::from).collect()
}

/// The closest existing env name (in the directories that were searched), if one is near.
fn nearest_conda_name(name: &str, looked: &[PathBuf], listed: &[PathBuf]) -> Option<String> {
    let mut names = Vec::new();
    for dir in looked.iter().filter_map(|c| c.parent()) {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if is_conda_prefix(&entry.path()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.extend(
        listed
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned())),
    );
    let limit = (name.chars().count() / 3).max(1);
    names
        .into_iter()
        .map(|n| (edit_distance(name, &n), n))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

pub(super) fn is_conda_prefix(path: &Path) -> bool {
    path.join("conda-meta").is_dir()
}
pub(super) fn conda_env(
    prefix: &Path,
    env_name: &str,
    host: &HostEnv,
    rule: Rule,
) -> Result<PythonEnv, EnvError> {
    let interpreter = host.layout.conda_python(prefix);
    if !is_executable(&interpreter) {
        return Err(EnvError::CondaNoPython {
            prefix: prefix.to_path_buf(),
            looked: interpreter,
        });
    }
    let bins = host.layout.conda_bins(prefix);
    // A program the app names is looked for in the first (`bin`; on Windows the prefix itself).
    let bin = bins[0].clone();
    let mut vars = vec![
        (
            "CONDA_PREFIX".to_string(),
            prefix.to_string_lossy().into_owned(),
        ),
        ("CONDA_DEFAULT_ENV".to_string(), env_name.to_string()),
        ("PATH".to_string(), prepend_paths(&bins, host)),
    ];
    vars.extend(conda_env_vars(prefix)?);
    Ok(PythonEnv {
        interpreter,
        interpreter_args: Vec::new(),
        prefix: Some(prefix.to_path_buf()),
        bin_dir: Some(bin),
        vars,
        unset: Vec::new(),
        rule,
    })
}

/// `CONDA_DEFAULT_ENV` for an env activated by prefix, as `conda activate PREFIX` sets it: `base`
/// for a root, the name for `ROOT/envs/NAME`, else the prefix itself.
pub(super) fn conda_default_env(prefix: &Path) -> String {
    let in_envs = prefix
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "envs");
    match prefix.file_name() {
        Some(name) if in_envs => name.to_string_lossy().into_owned(),
        _ if prefix.join("condabin").is_dir() => "base".to_string(),
        _ => prefix.to_string_lossy().into_owned(),
    }
}

/// `conda env config vars` live in `PREFIX/conda-meta/state` as `{"env_vars": {...}}`.
fn conda_env_vars(prefix: &Path) -> Result<Vec<(String, String)>, EnvError> {
    let path = prefix.join("conda-meta/state");
    let fail = |reason: String| EnvError::CondaState {
        path: path.clone(),
        reason,
    };
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(e.to_string())),
    };
    let state: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    match state.get("env_vars") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(fail(format!("`env_vars.{k}` is not a string"))),
            })
            .collect(),
        Some(_) => Err(fail("`env_vars` is not an object".to_string())),
    }
}
