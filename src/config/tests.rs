//! Table-driven tests of the reader: defaults, values, and one rendered diagnostic per error kind.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

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

#[test]
fn defaults_are_spec_section_8() {
    let c = ok("[apps.api]\ncommand = \"python3 app.py\"\n");
    let a = &c.apps["api"];
    assert_eq!(a.kind, Kind::Service);
    assert!(a.enabled);
    assert_eq!(a.instances, 1);
    assert_eq!(a.cwd, c.dir);
    assert_eq!(a.restart, RestartPolicy::Always);
    assert_eq!(a.restart_delay, Duration::from_millis(100));
    assert_eq!(a.restart_delay_max, Duration::from_secs(30));
    assert_eq!(a.max_restarts, 10);
    assert_eq!(a.restart_window, Duration::from_secs(60));
    assert_eq!(a.min_uptime, Duration::from_secs(1));
    assert_eq!(a.success_exit_codes, vec![0]);
    assert_eq!(a.stop_signal.as_str(), "SIGTERM");
    assert_eq!(a.stop_timeout, Duration::from_secs(10));
    assert!(!a.log_timestamps);
    assert_eq!(a.log_max_size, 10 * 1024 * 1024);
    assert_eq!(a.log_max_files, 5);
    assert_eq!(a.nice, 0);
    assert_eq!(
        a.program,
        Program::Command(vec!["python3".into(), "app.py".into()])
    );
    assert_eq!(c.pypm.state_dir, c.dir.join(".pypm"));
    assert_eq!(c.pypm.log_dir, c.dir.join(".pypm").join("logs"));
    assert!(c.pypm.watch_config);
    assert!(!c.pypm.http_public);

    let t = ok("[apps.m]\nkind = \"task\"\nscript = \"m.py\"\n");
    assert_eq!(t.apps["m"].restart, RestartPolicy::Never);
}

#[test]
fn probe_defaults() {
    let c = ok(r#"
[apps.api]
command = "x"
[apps.api.ready]
tcp = "127.0.0.1:8000"
[apps.api.health]
http = "http://127.0.0.1:8000/health"
"#);
    let a = &c.apps["api"];
    let ready = a.ready.as_ref().map(|p| (p.interval, p.timeout));
    assert_eq!(
        ready,
        Some((Duration::from_millis(500), Duration::from_secs(60)))
    );
    let health = a
        .health
        .as_ref()
        .map(|p| (p.interval, p.timeout, p.failures));
    assert_eq!(
        health,
        Some((Duration::from_secs(10), Duration::from_secs(5), 3))
    );
}

#[test]
fn every_key_is_read() {
    // A file using every registered key parses, so the reader and the registry agree.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join(".env"), "A=1\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(dir.path().join("svc")).unwrap_or_else(|e| panic!("{e}"));
    let src = r#"
[pypm]
state_dir = ".st"
log_dir = "logs"
http = "127.0.0.1:9615"
http_public = false
statsd = "127.0.0.1:8125"
watch_config = false

[environments.web]
venv = ".venv"
[environments.ml]
conda = "ml"
[environments.legacy]
python = "python3.11"

[apps.db]
command = ["sleep", "100"]

[apps.nightly]
command = "true"
kind = "task"
schedule = "0 30 2 * * *"
timezone = "Europe/Paris"
concurrency = "replace"
catch_up = true
jitter = "30s"

[apps.api]
script = "app.py"
args = ["--port", "${PORT}"]
interpreter = "python"
environment = "web"
cwd = "svc"
env = { DEBUG = "0", N = 3, FLAG = true }
env_file = ".env"
kind = "service"
enabled = true
instances = 2
listen = ["tcp://127.0.0.1:8000", "unix:api.sock"]
depends_on = { db = "ready" }
restart = "on-failure"
restart_delay = "1s"
restart_delay_max = "30s"
max_restarts = 10
restart_window = "60s"
min_uptime = "1s"
success_exit_codes = [0, 3]
stop_signal = "INT"
stop_timeout = "10s"
memory_max = "512M"
cpu_max = 1.5
nofile = 65536
nice = 5
user = "www-data"
watch = ["**/*.py"]
revision = 7
restart_schedule = "@daily"
log_timestamps = true
log_max_size = "1M"
log_max_files = 3

[apps.api.ready]
http = "http://127.0.0.1:8000/health"
interval = "200ms"
timeout = "30s"

[apps.api.health]
exec = "true"
interval = "5s"
failures = 2
timeout = "1s"

[[notify]]
webhook = "https://hooks.example.com/pypm"
events = ["failed", "unhealthy"]
[[notify]]
email = "ops@example.com"
smtp = "127.0.0.1:25"
[[notify]]
exec = "notify-send pypm"
"#;
    let c = match parse_in(dir.path(), src) {
        Ok(c) => c,
        Err(e) => panic!("{}", e.render()),
    };
    let a = &c.apps["api"];
    assert_eq!(a.args, vec!["--port", "8000"]);
    assert_eq!(a.cwd, dir.path().join("svc"));
    assert_eq!(
        a.env,
        vec![
            ("DEBUG".into(), "0".into()),
            ("N".into(), "3".into()),
            ("FLAG".into(), "true".into())
        ]
    );
    assert_eq!(a.env_file_vars, vec![("A".into(), "1".into())]);
    assert_eq!(a.depends_on, vec![("db".into(), Condition::Ready)]);
    assert_eq!(
        a.listen,
        vec![
            Listen::Tcp("127.0.0.1:8000".into()),
            Listen::Unix(dir.path().join("api.sock"))
        ]
    );
    assert_eq!(a.stop_signal.as_str(), "SIGINT");
    assert_eq!(a.memory_max, Some(512 * 1024 * 1024));
    assert_eq!(a.cpu_max, Some(1.5));
    assert_eq!(a.revision.as_deref(), Some("7"));
    assert_eq!(a.success_exit_codes, vec![0, 3]);
    assert_eq!(a.restart_schedule.as_deref(), Some("@daily"));
    let n = &c.apps["nightly"];
    assert_eq!(n.schedule.as_deref(), Some("0 30 2 * * *"));
    assert_eq!(n.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(n.concurrency, Concurrency::Replace);
    assert!(n.catch_up);
    assert_eq!(n.jitter, Duration::from_secs(30));
    assert_eq!(c.notify.len(), 3);
    assert_eq!(c.pypm.log_dir, dir.path().join("logs"));
    assert_eq!(
        c.environments["web"].decl,
        EnvDecl::Venv(dir.path().join(".venv"))
    );
}

#[test]
fn expansion_uses_env_file_and_env() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join("a.env"), "NAME=from-file\n").unwrap_or_else(|e| panic!("{e}"));
    let c = parse_in(
        dir.path(),
        r#"
[apps.x]
command = "echo ${NAME} ${GREETING} $$HOME ${HOME}"
env_file = "a.env"
env = { GREETING = "hi-${NAME}" }
"#,
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(
        c.apps["x"].program,
        Program::Command(vec![
            "echo".into(),
            "from-file".into(),
            "hi-from-file".into(),
            "$HOME".into(),
            "/home/u".into()
        ])
    );
}

/// One case per error kind: the whole rendered diagnostic is snapshotted.
#[test]
fn each_error_kind_renders_with_position_and_hint() {
    let cases: &[(&str, &str)] = &[
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
            "undefined_variable",
            "[apps.api]\ncommand = \"python3 app.py --port ${NO_SUCH_PORT}\"\n",
        ),
        (
            "unreadable_env_file",
            "[apps.api]\ncommand = \"x\"\nenv_file = \"missing.env\"\n",
        ),
        ("public_http", "[pypm]\nhttp = \"0.0.0.0:9615\"\n"),
        (
            "environment_with_two_kinds",
            "[environments.web]\nvenv = \".venv\"\nconda = \"ml\"\n",
        ),
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
            "bad_listen",
            "[apps.api]\ncommand = \"x\"\nlisten = [\"http://127.0.0.1:80\"]\n",
        ),
        (
            "bad_condition",
            "[apps.a]\ncommand = \"x\"\ndepends_on = { b = \"healthy\" }\n[apps.b]\ncommand = \"x\"\n",
        ),
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
        (
            "zero_probe_interval",
            "[apps.api]\ncommand = \"x\"\n[apps.api.health]\ntcp = \"127.0.0.1:1\"\ninterval = \"0ms\"\n",
        ),
        (
            "unknown_interpreter",
            "[apps.api]\nscript = \"app.py\"\ninterpreter = \"pyhton\"\n",
        ),
    ];
    for (name, src) in cases {
        insta::assert_snapshot!(*name, errors(src), src);
    }
}

#[test]
fn all_errors_are_collected_at_once() {
    let out = errors(
        r#"
[apps.api]
comand = "x"
restart_delay = "soon"

[apps.web]
command = "y"
depends_on = ["nope"]
"#,
    );
    assert_eq!(out.matches("error: ").count(), 3, "{out}");
    assert!(out.contains("unknown key `comand`"));
    assert!(out.contains("invalid duration"));
    assert!(out.contains("depends on `nope`"));
}

#[test]
fn discovery_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("pypm.toml"), "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        discover(None, None, &nested),
        Some(dir.path().join("pypm.toml"))
    );
    assert_eq!(
        discover(None, Some("other.toml"), &nested),
        Some(nested.join("other.toml"))
    );
    assert_eq!(
        discover(Some(Path::new("/x/y.toml")), Some("other.toml"), &nested),
        Some("/x/y.toml".into())
    );
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // Only finds files above a directory that has none if some ancestor has one; a fresh temp dir
    // under /tmp has none.
    if !Path::new("/tmp/pypm.toml").exists() && !Path::new("/pypm.toml").exists() {
        assert_eq!(discover(None, None, empty.path()), None);
    }
}

#[test]
fn state_dir_alone_is_read_while_an_app_is_invalid() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("pypm.toml");
    let src = "[pypm]\nstate_dir = \"${STATE}/x\"\n[apps.web]\nnot_a_key = 1\n";
    std::fs::write(&path, src).unwrap_or_else(|e| panic!("{e}"));
    let mut host = host();
    host.insert("STATE".into(), "st".into());
    assert!(super::load(&path, "pypm.toml", &host).is_err());
    assert_eq!(
        super::state_dir(&path, &host),
        Some(dir.path().join("st/x"))
    );
    // An invalid `[pypm]` table gives nothing (the caller falls back to a lenient read).
    std::fs::write(&path, "[pypm]\nstate_dir = 3\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(super::state_dir(&path, &host), None);
}

#[test]
fn pypm_state_dir_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("pypm.toml");
    std::fs::write(&path, "[pypm]\nstate_dir = \"st\"\n").unwrap_or_else(|e| panic!("{e}"));
    let mut host = host();
    assert_eq!(super::state_dir(&path, &host), Some(dir.path().join("st")));
    host.insert("PYPM_STATE_DIR".into(), "/tmp/private".into());
    assert_eq!(
        super::state_dir(&path, &host),
        Some(PathBuf::from("/tmp/private"))
    );
    let c = super::load(&path, "pypm.toml", &host).unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(c.pypm.state_dir, PathBuf::from("/tmp/private"));
    assert_eq!(c.pypm.log_dir, PathBuf::from("/tmp/private/logs"));
}

fn error_count(out: &str) -> usize {
    out.matches("error: ").count()
}

#[test]
fn env_values_reference_other_env_keys_in_any_order() {
    let want = vec![
        ("B".to_string(), "b".to_string()),
        ("A".into(), "b-a".into()),
    ];
    for src in [
        "[apps.a]\ncommand = \"x\"\nenv = { B = \"b\", A = \"${B}-a\" }\n",
        "[apps.a]\ncommand = \"x\"\n[apps.a.env]\nB = \"b\"\nA = \"${B}-a\"\n",
    ] {
        assert_eq!(ok(src).apps["a"].env, want, "{src}");
    }
    // Declared before the key it uses, through a chain, and visible to `command`.
    let c = ok(
        "[apps.a]\ncommand = \"echo ${A}\"\nenv = { A = \"${B}/a\", B = \"${C}/b\", C = \"c\" }\n",
    );
    assert_eq!(
        c.apps["a"].env,
        vec![
            ("A".to_string(), "c/b/a".to_string()),
            ("B".into(), "c/b".into()),
            ("C".into(), "c".into())
        ]
    );
    assert_eq!(
        c.apps["a"].program,
        Program::Command(vec!["echo".into(), "c/b/a".into()])
    );
}

#[test]
fn env_references_follow_the_environment_precedence() {
    // supervisor env < env_file < env; a key naming itself gets the next lower value.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join("a.env"), "PORT=9000\nF=file\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = parse_in(
        dir.path(),
        r#"
[apps.a]
command = "x"
env_file = "a.env"
env = { HOME = "/x:${HOME}", SEE_HOME = "${HOME}", PORT = "${PORT}1", SEE_PORT = "${PORT}", SEE_F = "${F}" }
"#,
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    let env: HashMap<_, _> = c.apps["a"].env.iter().cloned().collect();
    assert_eq!(env["HOME"], "/x:/home/u");
    assert_eq!(env["SEE_HOME"], "/x:/home/u");
    assert_eq!(env["PORT"], "90001");
    assert_eq!(env["SEE_PORT"], "90001");
    assert_eq!(env["SEE_F"], "file");
}

#[test]
fn env_reference_cycle_is_an_error_naming_it() {
    let out = errors("[apps.a]\ncommand = \"x\"\nenv = { X1 = \"${X2}\", X2 = \"${X1}\" }\n");
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("reference cycle in `env` of app `a`: X1 → X2 → X1"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:15"), "{out}");
    assert!(!out.contains("undefined"), "{out}");
    // A key using the cycle fails without an error of its own; an undefined name is reported
    // once, where it is written.
    let out = errors(
        "[apps.a]\ncommand = \"x\"\nenv = { Y = \"${X1}${U}\", X1 = \"${X2}\", X2 = \"${X1}\", U = \"${NOPE}\" }\n",
    );
    assert_eq!(error_count(&out), 2, "{out}");
    assert!(
        out.contains("undefined variable `NOPE` in `env.U` of app `a`"),
        "{out}"
    );
}

#[test]
fn env_file_path_expands_from_env() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join("prod.env"), "DB=prod-db\n").unwrap_or_else(|e| panic!("{e}"));
    let c = parse_in(
        dir.path(),
        "[apps.a]\ncommand = \"echo ${DB}\"\nenv_file = \"${STAGE}.env\"\nenv = { STAGE = \"prod\" }\n",
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(c.apps["a"].env_file, vec![dir.path().join("prod.env")]);
    assert_eq!(
        c.apps["a"].env_file_vars,
        vec![("DB".to_string(), "prod-db".to_string())]
    );
    assert_eq!(
        c.apps["a"].program,
        Program::Command(vec!["echo".into(), "prod-db".into()])
    );
}

#[test]
fn env_file_path_that_cannot_expand_is_one_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let render = |src: &str| match parse_in(dir.path(), src) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.render(),
    };
    let out = render("[apps.a]\ncommand = \"x\"\nenv_file = \"${STAGE}.env\"\n");
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("undefined variable `STAGE` in `env_file` of app `a`"),
        "{out}"
    );
    assert!(!out.contains("cannot read"), "{out}");
    // Through an `env` value that fails on its own: reported there only.
    let out = render(
        "[apps.a]\ncommand = \"x\"\nenv_file = \"${STAGE}.env\"\nenv = { STAGE = \"${NOPE}\" }\n",
    );
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("undefined variable `NOPE` in `env.STAGE`"),
        "{out}"
    );
    // Through an `env` value that needs the env files being read.
    std::fs::write(dir.path().join("base.env"), "S=prod\n").unwrap_or_else(|e| panic!("{e}"));
    let out = render(
        "[apps.a]\ncommand = \"x\"\nenv_file = [\"base.env\", \"${STAGE}.env\"]\nenv = { STAGE = \"${S}\" }\n",
    );
    assert_eq!(error_count(&out), 1, "{out}");
    assert!(
        out.contains("uses `env.STAGE`, whose value needs a variable from an env_file"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:26"), "{out}");
}

#[test]
fn probe_interval_and_timeout_must_be_at_least_1ms() {
    let cases = [
        (
            "ready",
            "interval = 0",
            "`interval` in `ready` probe of app `a` must be at least 1ms",
        ),
        ("ready", "interval = \"0ms\"", "`interval` in `ready` probe"),
        (
            "health",
            "interval = \"0s\"",
            "`interval` in `health` probe",
        ),
        ("health", "interval = 0.0", "`interval` in `health` probe"),
        ("ready", "timeout = \"0ms\"", "`timeout` in `ready` probe"),
        ("health", "timeout = 0", "`timeout` in `health` probe"),
        ("ready", "interval = \"0.5ms\"", "found `0.5ms`"),
        (
            "health",
            "failures = 0",
            "`failures` in `health` probe of app `a` must be between 1 and 1000, found 0",
        ),
    ];
    for (probe, line, want) in cases {
        let src =
            format!("[apps.a]\ncommand = \"x\"\n[apps.a.{probe}]\ntcp = \"127.0.0.1:1\"\n{line}\n");
        let out = errors(&src);
        assert_eq!(error_count(&out), 1, "{out}");
        assert!(out.contains(want), "{src}\n{out}");
        assert!(out.contains("--> pypm.toml:5:"), "{out}");
    }
    let c = ok(
        "[apps.a]\ncommand = \"x\"\n[apps.a.ready]\ntcp = \"127.0.0.1:1\"\ninterval = \"1ms\"\ntimeout = 0.001\n",
    );
    let ready = c.apps["a"].ready.as_ref().map(|p| (p.interval, p.timeout));
    assert_eq!(
        ready,
        Some((Duration::from_millis(1), Duration::from_millis(1)))
    );
}

#[test]
fn env_names_cannot_be_empty_or_hold_equals_or_nul() {
    let out = errors(
        "[apps.a]\ncommand = \"x\"\nenv = { \"A=B\" = \"x\", \"\" = \"y\", \"C\\u0000\" = \"z\", OK = \"1\" }\n",
    );
    assert_eq!(error_count(&out), 3, "{out}");
    assert!(
        out.contains("invalid variable name `A=B` in `env` of app `a`"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:9"), "{out}");
    assert!(
        out.contains("empty variable name in `env` of app `a`"),
        "{out}"
    );
    assert!(out.contains("--> pypm.toml:3:22"), "{out}");
    assert!(out.contains("invalid variable name `C\\0`"), "{out}");
    let out = errors("[apps.a]\ncommand = \"x\"\n[apps.a.env]\n\"X=1\" = \"x\"\n");
    assert!(out.contains("--> pypm.toml:4:1"), "{out}");
}

#[test]
fn interpreter_is_a_known_name_or_an_existing_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let bin = dir.path().join("svc/bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
    for (name, mode) in [("run", 0o755), ("plain", 0o644)] {
        std::fs::write(bin.join(name), "#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let app = |interp: &str| {
        format!("[apps.a]\nscript = \"app.py\"\ncwd = \"svc\"\ninterpreter = \"{interp}\"\n")
    };
    for good in [
        "python",
        "node",
        "bash",
        "sh",
        "none",
        "python3",
        "python3.12",
        "./bin/run",
        "bin/run",
    ] {
        let c =
            parse_in(dir.path(), &app(good)).unwrap_or_else(|e| panic!("{good}: {}", e.render()));
        assert_eq!(c.apps["a"].interpreter.as_deref(), Some(good));
    }
    let abs = bin.join("run").display().to_string();
    assert!(parse_in(dir.path(), &app(&abs)).is_ok());
    let missing = bin.join("nope").display().to_string();
    let cases = [
        (
            "pyhton",
            "unknown `interpreter` `pyhton` in app `a`",
            "did you mean `python`?",
        ),
        (
            "ruby",
            "unknown `interpreter` `ruby` in app `a`",
            "give its path",
        ),
        (
            "",
            "`interpreter` of app `a` is empty",
            "expected python, node",
        ),
        (
            "./bin/nope",
            "`interpreter` of app `a` does not exist",
            &missing,
        ),
        (
            "bin/plain",
            "`interpreter` of app `a` is not executable",
            "svc/bin/plain",
        ),
        (
            "./bin",
            "`interpreter` of app `a` is not a file",
            "svc/bin`",
        ),
    ];
    for (interp, want, also) in cases {
        let out = match parse_in(dir.path(), &app(interp)) {
            Ok(_) => panic!("`{interp}` accepted"),
            Err(e) => e.render(),
        };
        assert_eq!(error_count(&out), 1, "{out}");
        assert!(out.contains(want), "{interp}: {out}");
        assert!(out.contains(also), "{interp}: {out}");
        assert!(out.contains("--> pypm.toml:4:15"), "{out}");
    }
}

#[test]
fn unix_listen_paths_are_compared_normalised() {
    let dup = [
        ("unix:rel.sock", "unix:./rel.sock"),
        ("unix:rel.sock", "unix:sub/../rel.sock"),
        ("unix:./a/./b.sock", "unix:a/b.sock"),
    ];
    for (a, b) in dup {
        let src = format!(
            "[apps.a]\ncommand = \"x\"\nlisten = [\"{a}\"]\n[apps.b]\ncommand = \"x\"\nlisten = [\"{b}\"]\n"
        );
        let out = errors(&src);
        assert!(out.contains("duplicate listen address"), "{src}\n{out}");
        assert!(out.contains("already used by app `a`"), "{out}");
    }
    let abs = std::env::temp_dir().join("rel.sock").display().to_string();
    let out = errors(&format!(
        "[apps.a]\ncommand = \"x\"\nlisten = [\"unix:rel.sock\", \"unix://{abs}\"]\n"
    ));
    assert!(
        out.contains("already used earlier in the same app"),
        "{out}"
    );
    ok(
        "[apps.a]\ncommand = \"x\"\nlisten = [\"unix:a/rel.sock\", \"unix:rel.sock\", \"tcp://127.0.0.1:1\"]\n",
    );
    let out = errors(
        "[apps.a]\ncommand = \"x\"\nlisten = [\"tcp://localhost:1\", \"tcp://127.0.0.1:1\"]\n",
    );
    assert!(out.contains("duplicate listen address"), "{out}");
}

/// The schema rejects what the reader rejects for rules that span keys, and accepts what it
/// accepts.
#[test]
fn schema_agrees_with_the_reader() {
    let schema = keys::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"));
    let valid = |src: &str| {
        let value: toml::Value = toml::from_str(src).unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_value(&value).unwrap_or_else(|e| panic!("{e}"));
        validator.is_valid(&json)
    };
    let probe = "[apps.a]\ncommand = \"x\"\n[apps.a.ready]\n";
    let bad = [
        format!("{probe}http = \"http://127.0.0.1:1/\"\ntcp = \"127.0.0.1:1\"\n"),
        format!("{probe}log = \"up\"\nnotify = true\n"),
        format!("{probe}interval = \"1s\"\n"),
        format!("{probe}notify = false\n"),
        format!("{probe}tcp = \"127.0.0.1:1\"\ninterval = 0\n"),
        format!("{probe}tcp = \"127.0.0.1:1\"\ninterval = \"0ms\"\n"),
        format!("{probe}tcp = \"127.0.0.1:1\"\ntimeout = \"0s\"\n"),
        "[apps.a]\ncommand = \"x\"\n[apps.a.health]\ntcp = \"127.0.0.1:1\"\nfailures = 0\n".into(),
        "[[notify]]\nemail = \"ops@example.com\"\n".into(),
        "[apps.a]\ncommand = \"x\"\nargs = [\"-v\"]\n".into(),
        "[apps.a]\nscript = \"a.py\"\ninterpreter = \"pyhton\"\n".into(),
        "[apps.a]\nscript = \"a.py\"\ninterpreter = \"\"\n".into(),
        "[apps.a]\ncommand = \"x\"\nenv = { \"A=B\" = \"x\" }\n".into(),
        "[apps.a]\ncommand = \"x\"\nenv = { \"\" = \"x\" }\n".into(),
    ];
    for src in &bad {
        assert!(!valid(src), "schema accepted:\n{src}");
        assert!(
            parse_in(&std::env::temp_dir(), src).is_err(),
            "reader accepted:\n{src}"
        );
    }
    let good = [
        format!("{probe}http = \"http://127.0.0.1:1/\"\nnotify = false\n"),
        format!("{probe}notify = true\ninterval = \"1ms\"\n"),
        "[[notify]]\nemail = \"ops@example.com\"\nsmtp = \"127.0.0.1:25\"\n".into(),
        "[apps.a]\nscript = \"a.py\"\nargs = [\"-v\"]\ninterpreter = \"python3.12\"\n".into(),
        "[apps.a]\nmodule = \"a\"\nargs = [\"-v\"]\n".into(),
        "[apps.a]\nscript = \"a.sh\"\ninterpreter = \"/bin/sh\"\n".into(),
        "[apps.a]\ncommand = \"x\"\nenv = { A = \"${B}\", B = 1, C = true }\n".into(),
    ];
    for src in &good {
        assert!(valid(src), "schema rejected:\n{src}");
        if let Err(e) = parse_in(&std::env::temp_dir(), src) {
            panic!("reader rejected:\n{src}\n{}", e.render());
        }
    }
    // The default of `log_dir` depends on `state_dir`: stated in the description, not as a value.
    let log_dir = &schema["properties"]["pypm"]["properties"]["log_dir"];
    assert!(log_dir.get("default").is_none(), "{log_dir}");
    assert!(
        log_dir["description"]
            .as_str()
            .is_some_and(|d| d.contains("STATE_DIR/logs"))
    );
}

#[test]
fn host_port_values_name_a_host_without_a_scheme() {
    for good in [
        "127.0.0.1:80",
        "[::1]:80",
        "localhost:1",
        "db_1:5432",
        "mail.example.com:25",
    ] {
        assert!(read::parse_host_port(good).is_ok(), "{good}");
    }
    for (bad, says) in [
        ("http://127.0.0.1:80", "names a scheme"),
        ("not a host!:9000", "invalid host"),
        ("-bad:1", "invalid host"),
        ("a..b:1", "invalid host"),
    ] {
        let e = read::parse_host_port(bad).err().unwrap_or_default();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let e = errors("[pypm]\nstatsd = \"udp://127.0.0.1:8125\"\n");
    assert!(e.contains("names a scheme"), "{e}");
    let e = errors("[apps.a]\ncommand = \"x\"\n[apps.a.ready]\ntcp = \"http://127.0.0.1:80\"\n");
    assert!(e.contains("names a scheme"), "{e}");
    let e = errors("[apps.a]\ncommand = \"x\"\nlisten = [\"tcp://not a host!:9000\"]\n");
    assert!(e.contains("invalid host"), "{e}");
}

#[test]
fn an_empty_variable_name_says_so() {
    let e = errors("[apps.a]\ncommand = \"echo ${}\"\n");
    assert!(e.contains("empty variable name `${}`"), "{e}");
}

#[test]
fn schedule_defaults_and_errors() {
    let c = ok("[apps.t]\ncommand = \"true\"\nkind = \"task\"\nschedule = \"*/5 * * * *\"\n");
    let t = &c.apps["t"];
    assert_eq!(t.concurrency, Concurrency::Forbid);
    assert!(!t.catch_up);
    assert_eq!(t.jitter, Duration::ZERO);
    assert_eq!(t.timezone, None);
    assert!(t.parsed_schedule().is_some());

    // (file, a fragment of the rendered errors)
    let table = [
        (
            "[apps.t]\ncommand = \"true\"\nkind = \"task\"\nschedule = \"61 * * * *\"\n",
            "pypm.toml:4:12",
        ),
        (
            "[apps.t]\ncommand = \"true\"\nkind = \"task\"\nschedule = \"* * *\"\n",
            "5 fields",
        ),
        (
            "[apps.t]\ncommand = \"true\"\nkind = \"task\"\nschedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\n",
            "unknown time zone `Mars/Olympus`",
        ),
        (
            "[apps.s]\ncommand = \"true\"\nschedule = \"@daily\"\n",
            "needs `kind = \"task\"`",
        ),
        (
            "[apps.t]\ncommand = \"true\"\nkind = \"task\"\nrestart_schedule = \"@daily\"\n",
            "is for services",
        ),
        (
            "[apps.t]\ncommand = \"true\"\nkind = \"task\"\njitter = \"5s\"\n",
            "no effect without `schedule`",
        ),
        (
            "[apps.t]\ncommand = \"true\"\nkind = \"task\"\nschedule = \"@daily\"\nconcurrency = \"forbidd\"\n",
            "forbid",
        ),
    ];
    for (src, want) in table {
        let e = errors(src);
        assert!(e.contains(want), "{src}\n---\n{e}");
    }
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
