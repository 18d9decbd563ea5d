//! The import corpus: real PM2 ecosystem files, Procfiles and supervisord.conf files from public
//! repositories (tests/fixtures/import/, listed with their origin in SOURCES). Every file that is a
//! valid config of its tool must import, and its output must pass the reader `pypm check` uses,
//! with placeholders for what only existed on the original machine (directories, env files,
//! variables). A semantic lint then looks for the defect classes of issue 21 in every output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

/// SOURCES: `local-path \t repo \t path \t commit [\t invalid: why]`.
fn entries() -> Vec<(PathBuf, Option<String>)> {
    let text = std::fs::read_to_string(corpus().join("SOURCES")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let invalid = cols
                .get(4)
                .and_then(|c| c.strip_prefix("invalid:"))
                .map(|w| w.trim().to_string());
            (corpus().join(cols[0]), invalid)
        })
        .collect()
}

fn kind(path: &Path) -> &'static str {
    let s = path.to_string_lossy();
    if s.contains("/pm2/") {
        "pm2"
    } else if s.contains("/procfile/") {
        "procfile"
    } else {
        "supervisord"
    }
}

/// Imports `file` from a scratch copy in `root` (so its directory is the scratch one).
fn import(file: &Path, root: &Path) -> Result<String, String> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::copy(file, root.join(&name)).map_err(|e| e.to_string())?;
    let out = Command::new(env!("CARGO_BIN_EXE_pypm"))
        .args(["import", &name])
        .current_dir(root)
        .env_remove("PYPM_CONFIG")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let first = err.lines().next().unwrap_or_default().to_string();
        if !first.starts_with("error: ") {
            return Err(format!("a failure must start with `error: `: {err}"));
        }
        return Err(first);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every `${NAME}` in the text (the variables the original machine had).
fn vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            rest = after;
            continue;
        }
        let end = after.find('}').unwrap_or(0);
        let name = &after[..end];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(name.to_string());
        }
        rest = &after[end..];
    }
    out
}

/// Placeholders under `root` for the paths an app names: absolute ones are moved under `root`.
fn place(doc: &mut toml::Table, root: &Path) {
    let Some(apps) = doc.get_mut("apps").and_then(toml::Value::as_table_mut) else {
        return;
    };
    for (_, app) in apps.iter_mut() {
        let Some(app) = app.as_table_mut() else {
            continue;
        };
        let moved = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                root.join(p.strip_prefix("/").unwrap_or(p))
            } else {
                root.join(p)
            }
        };
        let mut cwd = root.to_path_buf();
        if let Some(toml::Value::String(c)) = app.get("cwd").cloned() {
            let dir = moved(&c.replace("$$", "$"));
            let _ = std::fs::create_dir_all(&dir);
            app.insert(
                "cwd".into(),
                dir.display().to_string().replace('$', "$$").into(),
            );
            cwd = dir;
        }
        let files: Vec<String> = match app.get("env_file") {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        if !files.is_empty() {
            let mut placed = Vec::new();
            for f in files {
                let p = moved(&f);
                if let Some(d) = p.parent() {
                    let _ = std::fs::create_dir_all(d);
                }
                let _ = std::fs::write(&p, "");
                placed.push(toml::Value::String(p.display().to_string()));
            }
            app.insert("env_file".into(), toml::Value::Array(placed));
        }
        if let Some(toml::Value::String(i)) = app.get("interpreter").cloned()
            && Path::new(&i).is_absolute()
        {
            // An interpreter of the original machine (`/home/u/.nvm/.../node`): a stand-in.
            let p = moved(&i);
            if let Some(d) = p.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            let _ = std::fs::write(&p, "#!/bin/sh\n");
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            app.insert("interpreter".into(), p.display().to_string().into());
        }
        if let Some(toml::Value::String(s)) = app.get("script").cloned() {
            let p = if Path::new(&s).is_absolute() {
                moved(&s)
            } else {
                cwd.join(&s)
            };
            if let Some(d) = p.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            if !p.exists() {
                let _ = std::fs::write(&p, "");
            }
            app.insert("script".into(), p.display().to_string().into());
        }
    }
}

/// The defect classes of issue 21 that can be seen in an output.
fn lint(kind: &str, doc: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    let Some(apps) = doc.get("apps").and_then(toml::Value::as_table) else {
        return vec!["no apps".into()];
    };
    for (name, app) in apps {
        let first_word = match app.get("command") {
            Some(toml::Value::String(s)) => shell_words::split(s)
                .ok()
                .and_then(|w| w.first().cloned())
                .unwrap_or_default(),
            Some(toml::Value::Array(a)) => a
                .first()
                .and_then(toml::Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => "-".into(),
        };
        if first_word.is_empty() {
            out.push(format!("{name}: an empty program name"));
        }
        if app.get("interpreter").and_then(toml::Value::as_str) == Some("") {
            out.push(format!("{name}: interpreter = \"\""));
        }
        match kind {
            "pm2"
                if app
                    .get("stop_signal")
                    .and_then(toml::Value::as_str)
                    .is_none() =>
            {
                out.push(format!(
                    "{name}: PM2 stops with SIGINT, no stop_signal written"
                ));
            }
            "procfile" if app.get("env").and_then(|e| e.get("PORT")).is_none() => {
                out.push(format!("{name}: foreman sets PORT for every process"));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_corpus_file_imports_and_passes_check() {
    let list = entries();
    if list.is_empty() {
        eprintln!("no corpus in tests/fixtures/import (SOURCES missing)");
        return;
    }
    let mut failures = Vec::new();
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for (file, invalid) in &list {
        let k = kind(file);
        counts.entry(k).or_default().0 += 1;
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let toml_text = match import(file, root.path()) {
            Ok(t) => t,
            Err(e) if invalid.is_some() => {
                let _ = e;
                continue;
            }
            Err(e) => {
                failures.push(format!("{}: import failed: {e}", file.display()));
                continue;
            }
        };
        let mut doc: toml::Table = match toml::from_str(&toml_text) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: output is not TOML: {e}", file.display()));
                continue;
            }
        };
        for problem in lint(k, &doc) {
            failures.push(format!("{}: {problem}", file.display()));
        }
        place(&mut doc, root.path());
        let placed = toml::to_string(&doc).unwrap_or_default();
        let mut host: HashMap<String, String> = std::env::vars().collect();
        for v in vars(&placed) {
            host.entry(v).or_insert_with(|| "1".into());
        }
        let path = root.path().join("pypm.toml");
        match pypm::config::parse(&placed, &path, "pypm.toml", &host) {
            Ok(_) => counts.entry(k).or_default().1 += 1,
            Err(e) if invalid.is_some() => {
                let _ = e;
            }
            Err(e) => failures.push(format!(
                "{}: the output fails check:\n{}\n--- output\n{placed}",
                file.display(),
                e.render()
            )),
        }
    }
    eprintln!("corpus: {counts:?} (files, imported and checked)");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
