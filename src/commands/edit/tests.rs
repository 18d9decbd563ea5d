//! Snapshot tests of edits: the unified diff of each one shows every line it changed, so a
//! snapshot also proves the rest of the file is kept byte for byte (comments, blank lines, odd
//! spacing, inline tables and dotted keys).

use clap::Parser as _;
use toml_edit::{DocumentMut, Value};

use super::{diff, doc, value};
use crate::cli::{Cli, Command};

const FILE: &str = r#"#:schema ./schema/pypm.schema.json
# My services.

[pypm]
state_dir   =   ".state"      # odd spacing

[apps.api]   # the API
command = "python3 -m http.server"    # serves files
instances=2
env = {DEBUG="0",   LEVEL = "info"}   # inline, tight


# The worker, with dotted keys
[apps.worker]
command = ["sh", "-c", "sleep 100"]
ready.tcp = "127.0.0.1:1"
ready.interval = "1s"

[apps.api.health]
http = "http://127.0.0.1:8000/h"

# Where events go.
[[notify]]
exec = "true"
"#;

const INLINE: &str = r#"# Apps as one inline table, and dotted at the root.
apps = { a = { command = "x", instances = 1 }, b = { command = "y" } }   # compact
"#;

const DOTTED: &str = r#"apps.a.command = "x"   # a
apps.a.env.K = "v"

[pypm]
log_dir = "logs"
"#;

fn parse(src: &str) -> DocumentMut {
    src.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// Applies `f` to `src` and returns the diff.
fn edited(src: &str, f: impl FnOnce(&mut DocumentMut)) -> String {
    let mut d = parse(src);
    f(&mut d);
    let out = d.to_string();
    // Whatever the edit, the result is still TOML.
    let _ = parse(&out);
    diff::unified("pypm.toml", src, &out)
}

fn set(d: &mut DocumentMut, app: &str, assign: &str) {
    let (path, raw) = value::split_assignment(assign).unwrap_or_else(|e| panic!("{e}"));
    let t = doc::app_mut(d, app).unwrap_or_else(|| panic!("no app {app}"));
    doc::set_path(t, &path, value::typed(&path, &raw));
}

fn unset(d: &mut DocumentMut, app: &str, key: &str) -> bool {
    let path = value::split_key(key).unwrap_or_else(|e| panic!("{e}"));
    let t = doc::app_mut(d, app).unwrap_or_else(|| panic!("no app {app}"));
    doc::remove_path(t, &path)
}

#[test]
fn set_replaces_values_in_place() {
    insta::assert_snapshot!(edited(FILE, |d| {
        set(d, "api", "instances=3");
        set(d, "api", "command=gunicorn app:app");
    }));
}

#[test]
fn set_inside_a_tight_inline_table() {
    insta::assert_snapshot!(edited(FILE, |d| {
        set(d, "api", "env.DEBUG=1");
        set(d, "api", "env.NEW=x");
    }));
}

#[test]
fn set_dotted_keys_and_new_keys_in_a_section() {
    insta::assert_snapshot!(edited(FILE, |d| {
        set(d, "worker", "ready.tcp=127.0.0.1:2");
        set(d, "worker", "memory_max=512M");
        set(d, "worker", "env.A=1");
    }));
}

#[test]
fn set_in_a_sub_section() {
    insta::assert_snapshot!(edited(FILE, |d| set(d, "api", "health.failures=5")));
}

#[test]
fn unset_keys() {
    insta::assert_snapshot!(edited(FILE, |d| {
        assert!(unset(d, "api", "env.LEVEL"));
        assert!(unset(d, "worker", "ready.interval"));
        assert!(!unset(d, "worker", "nice"));
    }));
}

#[test]
fn unset_the_last_key_of_an_inline_table_removes_it() {
    insta::assert_snapshot!(edited(FILE, |d| {
        assert!(unset(d, "api", "env.LEVEL"));
        assert!(unset(d, "api", "env.DEBUG"));
    }));
}

#[test]
fn delete_an_app_with_its_sub_sections_and_comment() {
    insta::assert_snapshot!(edited(FILE, |d| assert!(doc::remove_app(d, "api"))));
}

#[test]
fn delete_keeps_comments_that_are_not_the_apps() {
    insta::assert_snapshot!(edited(FILE, |d| assert!(doc::remove_app(d, "worker"))));
}

#[test]
fn delete_the_only_app_keeps_the_file_header() {
    let src = "#:schema x.json\n# header\n\n[apps.app]\nscript = \"app.py\"\n";
    let mut d = parse(src);
    assert!(doc::remove_app(&mut d, "app"));
    assert_eq!(d.to_string(), "#:schema x.json\n# header\n");
}

#[test]
fn stop_writes_enabled_false() {
    insta::assert_snapshot!(edited(FILE, |d| {
        let t = doc::app_mut(d, "worker").unwrap_or_else(|| panic!("no worker"));
        doc::set_path(t, &["enabled".into()], Value::from(false));
    }));
}

#[test]
fn inline_apps_stay_inline() {
    insta::assert_snapshot!(edited(INLINE, |d| {
        set(d, "a", "instances=2");
        set(d, "b", "env.X=1");
        let c = doc::add_app(d, "c").unwrap_or_else(|| panic!("no apps"));
        doc::set_path(c, &["script".into()], Value::from("c.py"));
    }));
}

#[test]
fn delete_from_inline_apps() {
    insta::assert_snapshot!(edited(INLINE, |d| assert!(doc::remove_app(d, "a"))));
}

#[test]
fn dotted_apps_at_the_root() {
    insta::assert_snapshot!(edited(DOTTED, |d| {
        set(d, "a", "env.K=w");
        set(d, "a", "instances=2");
        assert!(unset(d, "a", "env.K"));
    }));
}

fn start_args(argv: &[&str]) -> crate::cli::StartArgs {
    let mut full = vec!["pypm", "start"];
    full.extend_from_slice(argv);
    match Cli::try_parse_from(full).map(|c| c.command) {
        Ok(Command::Start(a)) => *a,
        other => panic!("{other:?}"),
    }
}

fn start(src: &str, argv: &[&str]) -> Result<(String, String), crate::commands::Failure> {
    let args = start_args(argv);
    let dir = std::env::temp_dir();
    let mut d = parse(src);
    let name = crate::commands::start::write_app(&mut d, &args, &dir, &dir, "pypm.toml")?;
    Ok((name, diff::unified("pypm.toml", src, &d.to_string())))
}

#[test]
fn start_adds_an_app_after_the_last_one() {
    let (name, d) = start(
        FILE,
        &[
            "app.py",
            "-i",
            "2",
            "--listen",
            "tcp://127.0.0.1:8000",
            "--env",
            "A=1",
            "--ready-http",
            "http://127.0.0.1:8000/",
            "--restart",
            "on-failure",
            "--memory-max",
            "256M",
            "--watch",
            "**/*.py",
            "--",
            "--port",
            "8000",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(name, "app");
    insta::assert_snapshot!(d);
}

#[test]
fn start_an_existing_app_enables_and_updates_it() {
    let src = FILE.replace("instances=2\n", "instances=2\nenabled = false   # parked\n");
    let (name, d) = start(&src, &["api", "-i", "4", "--ready-tcp", "127.0.0.1:8000"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(name, "api");
    insta::assert_snapshot!(d);
}

#[test]
fn start_with_a_venv_declares_an_environment() {
    let (_, d) = start(
        "[apps.x]\ncommand = \"y\"\n",
        &["-m", "api.main", "--venv", ".venv"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(d);
}

#[test]
fn start_refuses_a_name_taken_by_another_program() {
    let err = start(FILE, &["api.py", "--name", "api"]).err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("runs something else")),
        "{err:?}"
    );
}

#[test]
fn a_new_environment_goes_above_the_apps_below_the_file_header() {
    let src = "#:schema x.json\n# header\n\n# the api\n[apps.api]\ncommand = \"y\"\n";
    let (_, d) = start(src, &["app.py", "--venv", ".venv"]).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(d);
    let src = "[environments.ml]\nconda = \"ml\"\n\n[apps.api]\ncommand = \"y\"\n";
    let (_, d) = start(src, &["app.py", "--venv", ".venv"]).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!("a_new_environment_after_the_others", d);
    let src = "[environments.v]\nvenv = \".venv\"\n\n[apps.api]\ncommand = \"y\"\n";
    let (_, d) = start(src, &["app.py", "--venv", ".venv"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        d.contains("+environment = \"v\""),
        "an equal environment is reused: {d}"
    );
}

#[test]
fn set_a_dependency_condition_keeps_the_listed_ones() {
    let src = "[apps.db]\ncommand = \"x\"\n[apps.c]\ncommand = \"y\"\n[apps.api]\ncommand = \"z\"\ndepends_on = [\"db\"]\n";
    let mut d = parse(src);
    let t = doc::app_mut(&mut d, "api").unwrap_or_else(|| panic!("no api"));
    crate::commands::app_verbs::dependency_list_to_table(t);
    set(&mut d, "api", "depends_on.c=ready");
    assert!(
        d.to_string()
            .contains("depends_on = { db = \"started\", c = \"ready\" }\n"),
        "{d}"
    );
}
