//! The schema is in sync with the parser, and every example passes both the schema and
//! `pypm check`; a broken copy fails with every error listed.

use std::path::{Path, PathBuf};
use std::process::Command;

use pypm::desired::python_env::HostEnv;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let pattern = root().join("examples/**/pypm.toml");
    for p in glob::glob(&pattern.to_string_lossy()).unwrap_or_else(|e| panic!("{e}")) {
        out.push(p.unwrap_or_else(|e| panic!("{e}")));
    }
    out.sort();
    assert!(
        out.len() >= 3,
        "expected the bundled examples, found {out:?}"
    );
    out
}

/// A fake conda installation holding an env named `ml` (for `examples/conda`).
fn fake_conda() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let env = dir.path().join("envs/ml");
    std::fs::create_dir_all(env.join("conda-meta")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(env.join("bin")).unwrap_or_else(|e| panic!("{e}"));
    let python = which("python3");
    std::os::unix::fs::symlink(python, env.join("bin/python")).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn which(name: &str) -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not on PATH"))
}

#[test]
fn checked_in_schema_matches_the_registry() {
    let on_disk = std::fs::read_to_string(root().join("schema/pypm.schema.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        on_disk,
        pypm::config::keys::json_schema_text(),
        "schema/pypm.schema.json is stale: run `cargo run -- schema > schema/pypm.schema.json`"
    );
}

#[test]
fn every_example_passes_the_schema_and_the_parser() {
    let schema = pypm::config::keys::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"));
    let conda = fake_conda();
    let mut host = HostEnv::from_process();
    host.vars.insert(
        "CONDA_ENVS_PATH".into(),
        conda.path().join("envs").display().to_string(),
    );
    // examples/pytest takes its port from the pytest plugin's `PYPM_PORT`.
    host.vars.insert("PYPM_PORT".into(), "8765".into());
    for path in examples() {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let value: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_value(&value).unwrap_or_else(|e| panic!("{e}"));
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        if let Err(e) = pypm::desired::resolve::from_source(&text, &path, "pypm.toml", &host) {
            panic!("{}:\n{}", path.display(), e.render());
        }
    }
}

#[test]
fn schema_rejects_what_the_parser_rejects() {
    let schema = pypm::config::keys::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"));
    let bad = [
        "[apps.api]\ncomand = \"x\"\n",
        "[apps.api]\ncommand = \"x\"\nscript = \"y\"\n",
        "[apps.api]\ncommand = \"x\"\ninstances = \"two\"\n",
        "[apps.api]\ncommand = \"x\"\nrestart_delay = \"5 parsecs\"\n",
        "[apps.api]\ncommand = \"x\"\nrestart = \"sometimes\"\n",
        "[apps.\"bad name\"]\ncommand = \"x\"\n",
        "[pypm]\nstate_dri = \"x\"\n",
        "[environments.web]\nvenv = \".venv\"\nconda = \"ml\"\n",
    ];
    for src in bad {
        let value: toml::Value = toml::from_str(src).unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_value(&value).unwrap_or_else(|e| panic!("{e}"));
        assert!(!validator.is_valid(&json), "schema accepted:\n{src}");
        let parsed = pypm::config::parse(
            src,
            Path::new("/tmp/pypm.toml"),
            "pypm.toml",
            &Default::default(),
        );
        assert!(parsed.is_err(), "parser accepted:\n{src}");
    }
}

#[test]
fn pypm_check_passes_on_every_example() {
    let conda = fake_conda();
    for path in examples() {
        let out = Command::new(env!("CARGO_BIN_EXE_pypm"))
            .arg("--config")
            .arg(&path)
            .args(["check", "-v"])
            .env("CONDA_ENVS_PATH", conda.path().join("envs"))
            .env("PYPM_PORT", "8765")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("start order:"), "{stdout}");
    }
}

#[test]
fn pypm_check_lists_every_error_of_a_broken_copy() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = std::fs::read_to_string(root().join("examples/quickstart/pypm.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let broken = src
        .replacen("script = \"web.py\"", "scrip = \"web.py\"", 1)
        .replacen("stop_timeout = \"5s\"", "stop_timeout = \"5 seconds\"", 1)
        .replacen(
            "depends_on = { migrate = \"completed\" }",
            "depends_on = { migrat = \"completed\" }",
            1,
        );
    assert_ne!(broken, src);
    std::fs::write(dir.path().join("pypm.toml"), broken).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_pypm"))
        .arg("check")
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: `pypm.toml` is invalid (3 errors)"),
        "{stderr}"
    );
    for needle in [
        "unknown key `scrip` in app `web`",
        "did you mean `script`?",
        "invalid duration",
        "depends on `migrat`",
        "did you mean `migrate`?",
        "--> pypm.toml:",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn config_discovery_uses_env_then_nearest_parent() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("pypm.toml"),
        "[apps.a]\ncommand = \"sleep 1\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("other.toml"),
        "[apps.b]\ncommand = \"sleep 1\"\n[apps.c]\ncommand = \"sleep 1\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let nested = dir.path().join("x/y");
    std::fs::create_dir_all(&nested).unwrap_or_else(|e| panic!("{e}"));
    let run = |env: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pypm"));
        c.arg("check")
            .current_dir(&nested)
            .env_remove("PYPM_CONFIG");
        if let Some(e) = env {
            c.env("PYPM_CONFIG", e);
        }
        let out = c.output().unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(run(None).contains("(1 app)"), "{}", run(None));
    let other = dir.path().join("other.toml");
    assert!(run(Some(&other.to_string_lossy())).contains("(2 apps)"));
}

#[test]
fn help_is_there_for_every_command() {
    for cmd in [
        "up", "down", "check", "plan", "reload", "status", "logs", "inspect", "restart", "schema",
        "init", "start", "stop", "delete", "rm", "scale", "set", "unset", "ls", "list",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pypm"))
            .args([cmd, "--help"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{cmd} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: pypm"));
    }
}

#[test]
fn pypm_init_writes_a_file_that_checks() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("empty", &[]),
        ("app", &[("app.py", "print('hi')\n")]),
        ("django", &[("manage.py", "print('hi')\n")]),
        (
            "procfile",
            &[(
                "Procfile",
                "release: python3 manage.py migrate\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker: python3 worker.py\n",
            )],
        ),
    ];
    for (name, files) in cases {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (f, text) in *files {
            std::fs::write(dir.path().join(f), text).unwrap_or_else(|e| panic!("{e}"));
        }
        let out = Command::new(env!("CARGO_BIN_EXE_pypm"))
            .arg("init")
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let again = Command::new(env!("CARGO_BIN_EXE_pypm"))
            .arg("init")
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            again.status.code(),
            Some(1),
            "{name}: init must not overwrite"
        );
        let check = Command::new(env!("CARGO_BIN_EXE_pypm"))
            .arg("check")
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            check.status.success(),
            "{name}: generated file fails check:\n{}\n{}",
            String::from_utf8_lossy(&check.stderr),
            std::fs::read_to_string(dir.path().join("pypm.toml")).unwrap_or_default()
        );
    }
}
