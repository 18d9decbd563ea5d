//! Tests of the reader, by topic in `tests/`; here the shared helpers and the snapshot tests of
//! rendered diagnostics (their snapshots are in `snapshots/`, named after this module).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

mod defaults;
mod env;
mod files;
mod registry;
mod values;

fn host() -> HashMap<String, String> {
    HashMap::from([
        ("HOME".to_string(), "/home/u".to_string()),
        ("PORT".to_string(), "8000".to_string()),
    ])
}

fn parse_in(dir: &Path, src: &str) -> Result<Config, ConfigError> {
    parse(src, &dir.join("pypm.toml"), "pypm.toml", &host())
}

fn ok(src: &str) -> Config {
    let dir = std::env::temp_dir();
    match parse_in(&dir, src) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid file, got:\n{}", e.render()),
    }
}

fn errors(src: &str) -> String {
    let dir = std::env::temp_dir();
    match parse_in(&dir, src) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.render(),
    }
}

fn error_count(out: &str) -> usize {
    out.matches("error: ").count()
}

/// One (snapshot name, file) per error kind: the whole rendered diagnostic is snapshotted.
fn assert_each_renders(cases: &[(&str, &str)]) {
    for (name, src) in cases {
        insta::assert_snapshot!(*name, errors(src), src);
    }
}

/// Unknown keys and values of the wrong type, unit, range or spelling.
#[test]
fn unknown_keys_and_bad_values_render_with_position_and_hint() {
    assert_each_renders(&[
        ("unknown_key", "[apps.api]\ncomand = \"python3 app.py\"\n"),
        ("unknown_top_level", "[app.api]\ncommand = \"x\"\n"),
        ("unknown_pypm_key", "[pypm]\nstate_dri = \"x\"\n"),
        (
            "wrong_type",
            "[apps.api]\ncommand = \"x\"\ninstances = \"two\"\n",
        ),
        (
            "bad_duration",
            "[apps.api]\ncommand = \"x\"\nrestart_delay = \"5 parsecs\"\n",
        ),
        (
            "bad_size",
            "[apps.api]\ncommand = \"x\"\nmemory_max = \"10X\"\n",
        ),
        ("invalid_app_name", "[apps.\"my app\"]\ncommand = \"x\"\n"),
        (
            "bad_enum",
            "[apps.api]\ncommand = \"x\"\nrestart = \"on-failur\"\n",
        ),
        (
            "bad_signal",
            "[apps.api]\ncommand = \"x\"\nstop_signal = \"SIGTREM\"\n",
        ),
        ("out_of_range", "[apps.api]\ncommand = \"x\"\nnice = 40\n"),
        ("invalid_toml", "[apps.api]\ncommand = \"x\n"),
        (
            "zero_probe_interval",
            "[apps.api]\ncommand = \"x\"\n[apps.api.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"0ms\"\n",
        ),
        (
            "unknown_interpreter",
            "[apps.api]\nscript = \"app.py\"\ninterpreter = \"pyhton\"\n",
        ),
    ]);
}

/// Rules across keys and apps: programs, environments, dependencies, sockets and probes.
#[test]
fn app_structure_errors_render_with_position_and_hint() {
    assert_each_renders(&[
        (
            "two_programs",
            "[apps.api]\ncommand = \"x\"\nscript = \"app.py\"\n",
        ),
        ("no_program", "[apps.api]\ncwd = \".\"\n"),
        (
            "unknown_environment",
            "[environments.web]\nvenv = \".venv\"\n[apps.api]\ncommand = \"x\"\nenvironment = \"wbe\"\n",
        ),
        (
            "unknown_dependency",
            "[apps.api]\ncommand = \"x\"\ndepends_on = [\"migrat\"]\n[apps.migrate]\ncommand = \"y\"\n",
        ),
        (
            "dependency_cycle",
            "[apps.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n[apps.b]\ncommand = \"x\"\ndepends_on = [\"c\"]\n[apps.c]\ncommand = \"x\"\ndepends_on = [\"a\"]\n",
        ),
        (
            "duplicate_listen",
            "[apps.a]\ncommand = \"x\"\nlisten = [\"tcp://127.0.0.1:8000\"]\n[apps.b]\ncommand = \"x\"\nlisten = [\"tcp://127.0.0.1:9000\", \"tcp://127.0.0.1:8000\"]\n",
        ),
        (
            "probe_without_kind",
            "[apps.api]\ncommand = \"x\"\n[apps.api.ready]\ninterval = \"1s\"\n",
        ),
        (
            "probe_with_two_kinds",
            "[apps.api]\ncommand = \"x\"\n[apps.api.health]\nhttp = \"http://127.0.0.1:1/\"\ntcp = \"127.0.0.1:1\"\n",
        ),
        (
            "environment_with_two_kinds",
            "[environments.web]\nvenv = \".venv\"\nconda = \"ml\"\n",
        ),
        (
            "bad_listen",
            "[apps.api]\ncommand = \"x\"\nlisten = [\"http://127.0.0.1:80\"]\n",
        ),
        (
            "bad_condition",
            "[apps.a]\ncommand = \"x\"\ndepends_on = { b = \"healthy\" }\n[apps.b]\ncommand = \"x\"\n",
        ),
    ]);
}

/// Variables, env files, `[pypm]` settings and notifiers.
#[test]
fn environment_and_settings_errors_render_with_position_and_hint() {
    assert_each_renders(&[
        (
            "undefined_variable",
            "[apps.api]\ncommand = \"python3 app.py --port ${NO_SUCH_PORT}\"\n",
        ),
        (
            "unreadable_env_file",
            "[apps.api]\ncommand = \"x\"\nenv_file = \"missing.env\"\n",
        ),
        ("public_http", "[pypm]\nhttp = \"0.0.0.0:9615\"\n"),
        (
            "unknown_notify_event",
            "[[notify]]\nexec = \"cat\"\nevents = [\"faild\"]\n",
        ),
        (
            "env_reference_cycle",
            "[apps.api]\ncommand = \"x\"\nenv = { X1 = \"${X2}\", X2 = \"${X1}\" }\n",
        ),
        (
            "invalid_env_name",
            "[apps.api]\ncommand = \"x\"\nenv = { \"A=B\" = \"x\" }\n",
        ),
    ]);
}

/// With `include`, each error is shown in the file it is in, with that file's line and column;
/// `summary` (status, events) names the same place.
#[test]
fn errors_in_included_files_point_into_them() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join("services")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("services/worker.toml"),
        "# the worker\n[apps.worker]\ncommand = \"sleep 1\"\nrestart = \"sometimes\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let main =
        "include = [\"services/*.toml\"]\n\n[apps.web]\ncommand = \"sleep 1\"\ninstances = 0\n";
    let path = dir.path().join("pypm.toml");
    std::fs::write(&path, main).unwrap_or_else(|e| panic!("{e}"));
    let host = HashMap::new();
    let err = match load(&path, "pypm.toml", &host) {
        Err(e) => e,
        Ok(_) => panic!("the file has errors"),
    };
    insta::assert_snapshot!(err.render());
    let (summary, pos) = err.summary();
    assert!(
        summary.starts_with("services/worker.toml:4:11: "),
        "{summary}"
    );
    assert_eq!(pos, Some((4, 11)));
}
