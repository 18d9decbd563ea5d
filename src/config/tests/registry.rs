//! The reader agrees with the key registry and with the JSON Schema generated from it.

use super::*;

/// A file using the registered keys: all but `extends`, `module`, `events_max_size`,
/// `events_max_files` and the `tcp`, `log` and `notify` probe kinds.
const EVERY_KEY: &str = r#"
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

#[test]
fn every_key_is_read() {
    // A file using every registered key parses, so the reader and the registry agree.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::write(dir.path().join(".env"), "A=1\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(dir.path().join("svc")).unwrap_or_else(|e| panic!("{e}"));
    let c = match parse_in(dir.path(), EVERY_KEY) {
        Ok(c) => c,
        Err(e) => panic!("{}", e.render()),
    };
    assert_api_values(&c.apps["api"], dir.path());
    assert_schedule_values(&c.apps["nightly"]);
    assert_eq!(c.notify.len(), 3);
    assert_eq!(c.pypm.log_dir, dir.path().join("logs"));
    assert_eq!(
        c.environments["web"].decl,
        EnvDecl::Venv(dir.path().join(".venv"))
    );
}

/// The values of `[apps.api]` in [`EVERY_KEY`], as read.
fn assert_api_values(a: &App, dir: &Path) {
    assert_eq!(a.args, vec!["--port", "8000"]);
    assert_eq!(a.cwd, dir.join("svc"));
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
            Listen::Unix(dir.join("api.sock"))
        ]
    );
    assert_eq!(a.stop_signal.as_str(), "SIGINT");
    assert_eq!(a.memory_max, Some(512 * 1024 * 1024));
    assert_eq!(a.cpu_max, Some(1.5));
    assert_eq!(a.revision.as_deref(), Some("7"));
    assert_eq!(a.success_exit_codes, vec![0, 3]);
    assert_eq!(a.restart_schedule.as_deref(), Some("@daily"));
}

/// The schedule keys of `[apps.nightly]` in [`EVERY_KEY`], as read.
fn assert_schedule_values(n: &App) {
    assert_eq!(n.schedule.as_deref(), Some("0 30 2 * * *"));
    assert_eq!(n.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(n.concurrency, Concurrency::Replace);
    assert!(n.catch_up);
    assert_eq!(n.jitter, Duration::from_secs(30));
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
