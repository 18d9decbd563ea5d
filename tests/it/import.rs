//! `pypm import`: the real binary converts each accepted format into a file `pypm check` accepts,
//! says what had no equivalent, and fails clearly on what it cannot read.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `pypm ARGS` in `dir`, with the literal JS reader (`PYPM_IMPORT_NODE=0`); [`pypm_env`] without
/// it lets node evaluate ecosystem files.
fn pypm(dir: &Path, args: &[&str]) -> Output {
    pypm_env(dir, args, &[("PYPM_IMPORT_NODE", "0")])
}

fn pypm_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pypm"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .current_dir(dir)
        .env_remove("PYPM_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn pypm: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A temp project dir holding `files`; returns it and its canonical path.
fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("pypm-import-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let root = dir
        .path()
        .canonicalize()
        .unwrap_or_else(|e| panic!("canonicalize: {e}"));
    for (name, body) in files {
        let path = root.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        fs::write(&path, body).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
    (dir, root)
}

/// Imports `file` in `root`, saves stdout as `pypm.toml` there, runs `pypm check` on it (exit 0),
/// and returns the imported text and stderr.
fn import_and_check(root: &Path, file: &str) -> (String, String) {
    let out = pypm(root, &["import", file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "import {file}: {}",
        describe(&out)
    );
    let toml_text = text(&out.stdout);
    fs::write(root.join("pypm.toml"), &toml_text).unwrap_or_else(|e| panic!("save: {e}"));
    let check = pypm(root, &["check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "check of the import of {file}:\n{toml_text}\n{}",
        describe(&check)
    );
    (toml_text, text(&out.stderr))
}

fn apps(toml_text: &str) -> toml::Table {
    let doc: toml::Table = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    doc["apps"].as_table().cloned().unwrap_or_default()
}

#[test]
fn pm2_ecosystem_js_imports_and_checks() {
    let eco = r#"// PM2 ecosystem file
module.exports = {
  apps: [
    {
      name: 'api server',
      script: 'app.py',
      interpreter: 'python3',
      args: ['--port', '8000'],
      cwd: 'svc',
      instances: 2,
      exec_mode: 'cluster',
      env: { DEBUG: '0', PRICE: '$5' },
      max_memory_restart: '300M',
      restart_delay: 1500,
      kill_timeout: 3000,
      autorestart: false,
      cron_restart: '0 3 * * *',
    },
    { name: 'worker', script: 'worker.sh', max_restarts: 3, },
  ],
};
"#;
    let (_d, root) = project(&[
        ("ecosystem.config.js", eco),
        ("svc/app.py", ""),
        ("worker.sh", "sleep 1\n"),
    ]);
    let (toml_text, stderr) = import_and_check(&root, "ecosystem.config.js");
    let apps = apps(&toml_text);
    let api = apps["api-server"]
        .as_table()
        .unwrap_or_else(|| panic!("{toml_text}"));
    assert_eq!(api["script"].as_str(), Some("app.py"));
    assert_eq!(api["cwd"].as_str(), Some("svc"));
    assert_eq!(api["instances"].as_integer(), Some(2));
    assert_eq!(api["env"]["PRICE"].as_str(), Some("$$5"));
    assert_eq!(api["memory_max"].as_str(), Some("300M"));
    assert_eq!(api["restart_delay"].as_str(), Some("1500ms"));
    assert_eq!(api["stop_timeout"].as_str(), Some("3s"));
    assert_eq!(api["restart"].as_str(), Some("never"));
    assert_eq!(apps["worker"]["max_restarts"].as_integer(), Some(3));
    // What had no equivalent: comments at the top, and a count on stderr.
    let comments: Vec<&str> = toml_text
        .lines()
        .take_while(|l| l.starts_with('#') || l.is_empty())
        .collect();
    assert!(
        apps.values().any(|a| a.get("restart_schedule").is_some()),
        "cron_restart → restart_schedule:\n{toml_text}"
    );
    for part in ["cluster", "renamed from `api server`"] {
        assert!(
            comments.iter().any(|l| l.contains(part)),
            "no comment about {part}:\n{toml_text}"
        );
    }
    assert!(
        stderr.starts_with("imported 2 apps from `ecosystem.config.js`")
            && stderr.contains("4 notes"),
        "{stderr}"
    );
    assert_eq!(
        api["stop_signal"].as_str(),
        Some("SIGINT"),
        "PM2 stops with SIGINT"
    );
}

#[test]
fn pm2_json_imports_and_checks() {
    let eco = r#"{"apps": [{"name": "web", "script": "gunicorn", "args": "app:app -b 127.0.0.1:8000",
        "env": {"N": 1}, "min_uptime": "5s", "watch": ["src"]}]}"#;
    let (_d, root) = project(&[("ecosystem.json", eco), ("src/x.py", "")]);
    let (toml_text, _) = import_and_check(&root, "ecosystem.json");
    let apps = apps(&toml_text);
    assert_eq!(
        apps["web"]["command"].as_array().map(Vec::len),
        Some(4),
        "{toml_text}"
    );
    assert_eq!(apps["web"]["min_uptime"].as_str(), Some("5s"));
    assert_eq!(apps["web"]["env"]["N"].as_str(), Some("1"));
}

#[test]
fn procfile_imports_and_checks() {
    let procfile = "\
# Heroku
web: python3 -m http.server $PORT --bind 127.0.0.1
worker.1: sh -c 'echo $WORKERS' | cat
release: python3 -c 'print(1)'
";
    let (_d, root) = project(&[("Procfile", procfile), (".env", "WORKERS=2\n")]);
    let (toml_text, stderr) = import_and_check(&root, "Procfile");
    let apps = apps(&toml_text);
    assert_eq!(
        apps["web"]["command"].as_str(),
        Some("python3 -m http.server ${PORT} --bind 127.0.0.1")
    );
    assert_eq!(apps["web"]["env"]["PORT"].as_str(), Some("5000"));
    assert_eq!(apps["web"]["env_file"].as_str(), Some(".env"));
    assert_eq!(apps["release"]["kind"].as_str(), Some("task"));
    assert!(apps.contains_key("worker-1"), "{toml_text}");
    assert!(stderr.contains("(Procfile)"), "{stderr}");
}

#[test]
fn supervisord_conf_imports_and_checks() {
    let conf = "\
[supervisord]
logfile=/tmp/supervisord.log

[program:web]
command=python3 -m http.server 80%(process_num)02d
directory=%(here)s
numprocs=2
process_name=%(program_name)s_%(process_num)02d
autostart=false
autorestart=unexpected
exitcodes=0,2
startsecs=2
startretries=5
stopsignal=INT
stopwaitsecs=15
environment=GREETING=\"hello, world\",HOME_COPY=\"%(ENV_HOME)s\"
priority=10
stdout_logfile=/var/log/web.log

[program:queue worker]
command=sleep 100
autorestart=true
";
    let (_d, root) = project(&[("supervisord.conf", conf)]);
    let (toml_text, _) = import_and_check(&root, "supervisord.conf");
    let apps = apps(&toml_text);
    let web = apps["web"]
        .as_table()
        .unwrap_or_else(|| panic!("{toml_text}"));
    // `%(here)s` stays relative to the file (pypm.toml is written beside it).
    assert_eq!(web["cwd"].as_str(), Some("."));
    assert_eq!(web["instances"].as_integer(), Some(2));
    assert_eq!(web["enabled"].as_bool(), Some(false));
    assert_eq!(web["restart"].as_str(), Some("on-failure"));
    assert_eq!(web["min_uptime"].as_str(), Some("2s"));
    assert_eq!(web["max_restarts"].as_integer(), Some(5));
    assert_eq!(web["stop_signal"].as_str(), Some("SIGINT"));
    assert_eq!(web["stop_timeout"].as_str(), Some("15s"));
    assert_eq!(web["env"]["GREETING"].as_str(), Some("hello, world"));
    assert_eq!(web["env"]["HOME_COPY"].as_str(), Some("${HOME}"));
    assert!(apps.contains_key("queue-worker"), "{toml_text}");
    assert!(
        toml_text.contains("# - web: `priority = 10`"),
        "{toml_text}"
    );
    assert!(toml_text.contains("stdout_logfile"), "{toml_text}");
}

#[test]
fn unreadable_inputs_fail_with_exit_1_and_one_line_first() {
    let (_d, root) = project(&[
        ("notes.txt", "just some words\n"),
        (
            "ecosystem.config.js",
            "const path = require('path');\nmodule.exports = { apps: [{ name: 'a', script: path.join(__dirname, 'a.py') }] };\n",
        ),
    ]);
    let cases = [
        ("missing.json", "cannot read `missing.json`"),
        ("notes.txt", "cannot tell what kind of file"),
        ("ecosystem.config.js", "is not a plain object literal"),
    ];
    for (file, want) in cases {
        let out = pypm(&root, &["import", file]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", describe(&out));
        assert!(out.stdout.is_empty(), "{file}: {}", describe(&out));
        let err = text(&out.stderr);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(want),
            "{file}: {err}"
        );
    }
    let unknown = text(&pypm(&root, &["import", "notes.txt"]).stderr);
    for name in ["PM2", "Procfile", "supervisord.conf"] {
        assert!(unknown.contains(name), "{unknown}");
    }
    let js = text(&pypm(&root, &["import", "ecosystem.config.js"]).stderr);
    assert!(
        js.contains(
            "node -e 'console.log(JSON.stringify(require(\"./ecosystem.config.js\")))' > eco.json"
        ),
        "{js}"
    );
}

#[test]
fn computed_ecosystem_files_are_evaluated_with_node() {
    let has_node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_node {
        eprintln!("node not installed: the evaluation path is not tested");
        return;
    }
    let (_d, root) = project(&[
        (
            "ecosystem.config.js",
            "const base = { script: 'app.py', env: { MODE: process.env.PYPM_T_MODE || 'dev' } };\n\
             module.exports = { apps: [1, 2].map(i => ({ ...base, name: `w${i}` })) };\n",
        ),
        ("app.py", ""),
        (
            "plain.config.js",
            "module.exports = { apps: [ { name: 'a', script: 'a.py' } ] };\n",
        ),
    ]);
    let out = pypm_env(
        &root,
        &["import", "ecosystem.config.js"],
        &[("PYPM_T_MODE", "prod")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let toml_text = text(&out.stdout);
    let apps = apps(&toml_text);
    assert_eq!(
        apps["w1"]["env"]["MODE"].as_str(),
        Some("prod"),
        "{toml_text}"
    );
    assert!(apps.contains_key("w2"), "{toml_text}");
    assert!(toml_text.contains("evaluated with node"), "{toml_text}");
    // node fails (here: an option it refuses): the literal reader takes over, and says so.
    let out = pypm_env(
        &root,
        &["import", "plain.config.js"],
        &[("NODE_OPTIONS", "--no-such-node-option")],
    );
    let toml_text = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        toml_text.contains("node could not evaluate it"),
        "{toml_text}"
    );
    assert!(self::apps(&toml_text).contains_key("a"), "{toml_text}");
}

#[test]
fn import_without_a_file_is_a_usage_error() {
    let (_d, root) = project(&[]);
    let out = pypm(&root, &["import"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn pm2_env_blocks_become_profiles_that_check_and_config_apply() {
    let eco = r#"{"apps": [{
        "name": "api",
        "script": "app.py",
        "interpreter": "python3",
        "env": {"MODE": "dev", "PORT": "8000"},
        "env_production": {"MODE": "prod"},
        "env_staging": {"MODE": "staging"}
    }]}"#;
    let (_dir, root) = project(&[("ecosystem.json", eco), ("app.py", "print('hi')\n")]);
    let (out, _) = import_and_check(&root, "ecosystem.json");
    assert!(out.contains("[profiles.production.apps.api]"), "{out}");
    assert!(out.contains("[profiles.staging.apps.api]"), "{out}");
    assert!(!out.contains("env_production` not imported"), "{out}");
    let check = pypm(&root, &["--profile", "production", "check"]);
    assert!(check.status.success(), "{}", describe(&check));
    let effective = pypm(&root, &["--profile", "production", "config"]);
    let t: toml::Table = text(&effective.stdout).parse().expect("config prints TOML");
    let env = &t["apps"]["api"]["env"];
    assert_eq!(
        env["MODE"].as_str(),
        Some("prod"),
        "the profile wins: {t:#?}"
    );
    assert_eq!(env["PORT"].as_str(), Some("8000"), "env merges: {t:#?}");
}
