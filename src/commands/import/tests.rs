use std::path::Path;

use super::*;

/// Converts `text` named `name` and returns the printed file parsed back, and the notes.
fn run(name: &str, text: &str) -> (toml::Table, Vec<String>) {
    let imported = convert(name, text, Path::new("/srv/proj")).unwrap_or_else(|e| panic!("{e:?}"));
    let out = render(&imported, name);
    let doc: toml::Table = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let apps = doc["apps"].as_table().cloned().unwrap_or_default();
    (apps, imported.notes)
}

/// Imports a file on disk (its directory matters: includes, `.env`).
fn run_at(path: &Path) -> (toml::Table, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let imported = convert(&name, &text, dir).unwrap_or_else(|e| panic!("{e:?}"));
    let out = render(&imported, &name);
    let doc: toml::Table = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let apps = doc["apps"].as_table().cloned().unwrap_or_default();
    (apps, imported.notes)
}

fn has_note(notes: &[String], part: &str) -> bool {
    notes.iter().any(|n| n.contains(part))
}

#[test]
fn formats_are_detected_by_name_then_content() {
    let cases = [
        (
            "ecosystem.config.js",
            "module.exports = {}",
            Some(Format::Pm2),
        ),
        ("pm2.json", "{}", Some(Format::Pm2)),
        ("apps", "{\"apps\": []}", Some(Format::Pm2)),
        ("Procfile", "web: x", Some(Format::Procfile)),
        ("Procfile.dev", "web: x", Some(Format::Procfile)),
        ("procs", "# c\nweb: x\nworker: y\n", Some(Format::Procfile)),
        ("supervisord.conf", "", Some(Format::Supervisord)),
        (
            "x",
            "; c\n[program:a]\ncommand=a\n",
            Some(Format::Supervisord),
        ),
        ("x", "[supervisord]\n", Some(Format::Supervisord)),
        ("notes.txt", "hello world\n", None),
        ("empty", "", None),
    ];
    for (name, text, want) in cases {
        assert_eq!(detect(name, text), want, "{name}: {text:?}");
    }
}

#[test]
fn pm2_interpreters_map_to_script_or_command() {
    let eco = r#"{"apps": [
        {"name": "a", "script": "app.py"},
        {"name": "b", "script": "app.py", "interpreter": "python3"},
        {"name": "c", "script": "run", "interpreter": "/opt/venv/bin/python", "args": ["x"]},
        {"name": "d", "script": "srv.js", "interpreter": "none"},
        {"name": "e", "script": "job.rb"},
        {"name": "f", "script": "app.py", "interpreter": "python", "interpreter_args": "-u -X dev", "args": "--a 1"},
        {"name": "g", "script": "gunicorn", "args": "app:app -w 2"},
        {"name": "h", "script": "./bin/server"},
        {"name": "i", "script": "tool.sh", "interpreter": "sh"}
    ]}"#;
    let (apps, _) = run("eco.json", eco);
    // Every PM2 app stops as PM2 stops it (checked in `pm2_stop_semantics`); left out here.
    let keys = |n: &str| -> Vec<(String, String)> {
        apps[n]
            .as_table()
            .unwrap()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "stop_signal" | "stop_timeout"))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    };
    let kv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(keys("a"), kv(&[("script", "\"app.py\"")]));
    assert_eq!(keys("b"), kv(&[("script", "\"app.py\"")]));
    assert_eq!(
        keys("c"),
        kv(&[
            ("script", "\"run\""),
            ("interpreter", "\"/opt/venv/bin/python\""),
            ("args", "[\"x\"]")
        ])
    );
    assert_eq!(
        keys("d"),
        kv(&[("script", "\"srv.js\""), ("interpreter", "\"none\"")])
    );
    assert_eq!(keys("e"), kv(&[("command", "[\"ruby\", \"job.rb\"]")]));
    assert_eq!(
        keys("f"),
        kv(&[(
            "command",
            "[\"python\", \"-u\", \"-X\", \"dev\", \"app.py\", \"--a\", \"1\"]"
        )])
    );
    assert_eq!(
        keys("g"),
        kv(&[("command", "[\"gunicorn\", \"app:app\", \"-w\", \"2\"]")])
    );
    assert_eq!(keys("h"), kv(&[("script", "\"./bin/server\"")]));
    assert_eq!(
        keys("i"),
        kv(&[("script", "\"tool.sh\""), ("interpreter", "\"sh\"")])
    );
}

#[test]
fn pm2_settings_map_and_the_rest_is_noted() {
    let eco = r#"{"apps": [{
        "name": "web app", "script": "app.py", "cwd": "srv",
        "env": {"A": "x$y", "N": 3, "B": true}, "env_production": {"A": "p"},
        "instances": 4, "exec_mode": "cluster_mode", "autorestart": false, "autostart": false,
        "max_restarts": 7, "min_uptime": 2000, "restart_delay": 250, "kill_timeout": "5s",
        "max_memory_restart": "300m", "watch": ["src", "*.cfg"], "stop_exit_codes": [0, 3],
        "time": true, "user": "www", "cron_restart": "0 0 * * *", "wait_ready": true, "foo": 1
    }]}"#;
    let (apps, notes) = run("eco.json", eco);
    let a = apps["web-app"].as_table().unwrap();
    assert_eq!(a["cwd"].as_str(), Some("srv"));
    assert_eq!(a["env"]["A"].as_str(), Some("x$$y"));
    assert_eq!(a["env"]["N"].as_str(), Some("3"));
    assert_eq!(a["env"]["B"].as_str(), Some("true"));
    assert_eq!(a["instances"].as_integer(), Some(4));
    assert_eq!(a["restart"].as_str(), Some("never"));
    assert_eq!(a["enabled"].as_bool(), Some(false));
    assert_eq!(a["max_restarts"].as_integer(), Some(7));
    assert_eq!(a["min_uptime"].as_str(), Some("2s"));
    assert_eq!(a["restart_delay"].as_str(), Some("250ms"));
    assert_eq!(a["stop_timeout"].as_str(), Some("5s"));
    assert_eq!(a["memory_max"].as_str(), Some("300M"));
    assert_eq!(
        a["watch"].as_array().unwrap(),
        &vec![toml::Value::from("src/**"), toml::Value::from("*.cfg")]
    );
    assert_eq!(
        a["success_exit_codes"].as_array().unwrap(),
        &vec![toml::Value::from(0), toml::Value::from(3)]
    );
    assert_eq!(a["log_timestamps"].as_bool(), Some(true));
    assert_eq!(a["user"].as_str(), Some("www"));
    assert_eq!(a["restart_schedule"].as_str(), Some("0 0 * * *"));
    assert!(
        !has_note(&notes, "env_production"),
        "a profile now: {notes:#?}"
    );
    for part in [
        "renamed from `web app`",
        "cluster",
        "`wait_ready = true`",
        "`foo = 1` has no pypm equivalent",
    ] {
        assert!(has_note(&notes, part), "no note {part:?} in {notes:#?}");
    }
}

#[test]
fn pm2_instances_max_uses_the_cpu_count() {
    let (apps, notes) = run(
        "e.json",
        r#"{"apps": [{"name": "a", "script": "a.py", "instances": "max"}, {"name": "b", "script": "b.py", "instances": -1}]}"#,
    );
    let cpus = i64::from(cpu_count());
    let got = |n: &str| {
        apps[n]
            .get("instances")
            .and_then(|v| v.as_integer())
            .unwrap_or(1)
    };
    assert_eq!(got("a"), cpus);
    assert_eq!(got("b"), (cpus - 1).max(1));
    assert!(
        has_note(&notes, "`instances = \"max\"` (one per CPU)"),
        "{notes:#?}"
    );
    assert!(
        has_note(&notes, "`instances = -1` (the CPU count minus 1)"),
        "{notes:#?}"
    );
}

#[test]
fn pm2_errors_say_what_is_wrong() {
    let dir = Path::new("/srv");
    let err = |name: &str, text: &str| convert(name, text, dir).unwrap_err().0;
    assert!(err("e.json", "{ nope").starts_with("`e.json` is not valid JSON"));
    assert!(err("e.json", "{\"x\": 1}").starts_with("no `apps` in `e.json`"));
    assert!(err("e.json", "{\"apps\": [{\"name\": \"a\"}]}").contains("no `script`; skipped"));
    let js = err(
        "conf/ecosystem.config.js",
        "module.exports = { apps: [{ script: process.env.APP }] }",
    );
    let first = js.lines().next().unwrap_or_default();
    assert!(first.contains("is not a plain object literal"), "{js}");
    assert!(
        js.contains("node -e 'console.log(JSON.stringify(require(\"./conf/ecosystem.config.js\")))' > eco.json"),
        "{js}"
    );
}

#[test]
fn procfile_lines_become_apps() {
    let (apps, notes) = run(
        "Procfile",
        "web: gunicorn app:app -b :$PORT\nworker: celery worker && echo done\nrelease: ./migrate\n",
    );
    assert_eq!(
        apps["web"]["command"].as_str(),
        Some("gunicorn app:app -b :${PORT}")
    );
    assert_eq!(apps["web"]["env"]["PORT"].as_str(), Some("5000"));
    assert_eq!(
        apps["web"]["depends_on"]["release"].as_str(),
        Some("completed")
    );
    assert_eq!(
        apps["worker"]["command"].as_array().map(Vec::len),
        Some(3),
        "{apps:#?}"
    );
    assert_eq!(apps["release"]["kind"].as_str(), Some("task"));
    // foreman: PORT for every process type, 5000 + 100 each, in the file's order.
    assert_eq!(apps["worker"]["env"]["PORT"].as_str(), Some("5100"));
    assert_eq!(apps["release"]["env"]["PORT"].as_str(), Some("5200"));
    assert!(
        has_note(&notes, "`PORT` is set for every process"),
        "{notes:#?}"
    );
}

#[test]
fn procfile_lines_that_need_a_shell_run_in_one() {
    let (apps, _) = run(
        "Procfile",
        "web: WEB_CONCURRENCY=2 gunicorn app:app -b 0.0.0.0:${PORT:-5000}
clock: python clock.py
bin: ~/bin/run
",
    );
    let web: Vec<&str> = apps["web"]["command"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    // The line as written, `$` escaped for pypm: the shell expands `${PORT:-5000}`; a simple
    // command is `exec`ed so the program itself gets the stop signal.
    assert_eq!(
        web,
        [
            "sh",
            "-c",
            "WEB_CONCURRENCY=2 exec gunicorn app:app -b 0.0.0.0:$${PORT:-5000}"
        ]
    );
    assert_eq!(apps["clock"]["command"].as_str(), Some("python clock.py"));
    assert_eq!(apps["bin"]["command"].as_array().map(Vec::len), Some(3));
}

#[test]
fn supervisord_environment_values_are_read_like_supervisord() {
    assert_eq!(
        supervisord_env("A=\"1,2\",B='x y', C=plain ,\n D=\"\""),
        Some(vec![
            ("A".into(), "1,2".into()),
            ("B".into(), "x y".into()),
            ("C".into(), "plain".into()),
            ("D".into(), String::new()),
        ])
    );
    assert_eq!(supervisord_env("A=\"unterminated"), None);
}

fn supervisord_env(s: &str) -> Option<Vec<(String, String)>> {
    supervisord::parse_environment_for_tests(s)
}

#[test]
fn supervisord_programs_map() {
    let conf = "\
[supervisord]
logfile=/tmp/x.log

[program:web]
command=gunicorn app:app -b 127.0.0.1:80%(process_num)02d ; a comment
numprocs=3
directory=%(here)s/web
autorestart=false
startsecs=3
stopsignal=QUIT
environment=NAME=\"%(program_name)s\",H=\"%(ENV_HOME)s\",P=\"100%%\"
priority=5

[program:job]
command=python3 job.py
autorestart=true
";
    let (apps, notes) = run("supervisord.conf", conf);
    let web = apps["web"].as_table().unwrap();
    assert_eq!(
        web["command"].as_array().unwrap(),
        &vec![
            toml::Value::from("sh"),
            toml::Value::from("-c"),
            // `%(process_num)02d` keeps its padding: 8000, 8001 as supervisord numbers them.
            toml::Value::from(
                "exec gunicorn app:app -b 127.0.0.1:80$$(printf '%02d' $$PYPM_INSTANCE)"
            )
        ]
    );
    assert_eq!(web["instances"].as_integer(), Some(3));
    assert_eq!(web["cwd"].as_str(), Some("./web"));
    assert_eq!(web["restart"].as_str(), Some("never"));
    assert_eq!(web["min_uptime"].as_str(), Some("3s"));
    assert_eq!(web["stop_signal"].as_str(), Some("SIGQUIT"));
    assert_eq!(web["env"]["NAME"].as_str(), Some("web"));
    assert_eq!(web["env"]["H"].as_str(), Some("${HOME}"));
    assert_eq!(web["env"]["P"].as_str(), Some("100%"));
    // supervisord's default autorestart is `unexpected`; `true` is pypm's default.
    let job = apps["job"].as_table().unwrap();
    assert_eq!(job.get("restart"), None);
    assert_eq!(job["command"].as_str(), Some("python3 job.py"));
    assert!(has_note(&notes, "`priority = 5`"), "{notes:#?}");
    assert!(has_note(&notes, "[supervisord]"), "{notes:#?}");
}

#[test]
fn names_are_sanitized_and_unique() {
    let (apps, notes) = run("Procfile", "a.b: x\na-b: y\n");
    let names: Vec<&String> = apps.keys().collect();
    assert_eq!(names, ["a-b", "a-b-2"]);
    assert!(has_note(&notes, "a-b: renamed from `a.b`"), "{notes:#?}");
    assert!(has_note(&notes, "a-b-2: renamed from `a-b`"), "{notes:#?}");
}

#[test]
fn rendered_values_survive_quoting() {
    let mut app = AppOut {
        name: "a".into(),
        keys: Vec::new(),
    };
    app.set("command", "say \"hi\" \\ \u{7}\n");
    let mut env = toml::Table::new();
    env.insert("weird key.x".into(), "v".into());
    app.set("env", env);
    let imported = Imported {
        format: Format::Procfile,
        apps: vec![app],
        profiles: Vec::new(),
        notes: vec!["multi\nline".into()],
    };
    let out = render(&imported, "Proc\nfile");
    let doc: toml::Table = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(
        doc["apps"]["a"]["command"].as_str(),
        Some("say \"hi\" \\ \u{7}\n")
    );
    assert_eq!(doc["apps"]["a"]["env"]["weird key.x"].as_str(), Some("v"));
}

#[test]
fn pm2_stop_semantics() {
    let eco = r#"{"apps": [
        {"name": "a", "script": "app.py"},
        {"name": "b", "script": "app.py", "kill_timeout": 5000, "kill_signal": "SIGTERM"}
    ]}"#;
    let (apps, _) = run("eco.json", eco);
    assert_eq!(apps["a"]["stop_signal"].as_str(), Some("SIGINT"));
    assert_eq!(apps["a"]["stop_timeout"].as_str(), Some("1600ms"));
    assert_eq!(apps["b"]["stop_signal"].as_str(), Some("SIGTERM"));
    assert_eq!(apps["b"]["stop_timeout"].as_str(), Some("5s"));
}

#[test]
fn pm2_bare_programs_empty_interpreters_and_env_blocks() {
    let eco = r#"{"apps": [
        {"name": "u", "script": "uvicorn", "args": "app:app", "interpreter": "python3"},
        {"name": "n", "script": "npm", "args": "start", "node_args": "--max-old-space-size=512"},
        {"name": "e", "script": "app.py", "interpreter": ""},
        {"name": "p", "script": "app.py", "env_production": {"NODE_ENV": "production"}},
        {"name": "l", "script": "app.py", "out_file": "a.log", "error_file": "b.log", "log_file": "c.log", "instances": 2}
    ]}"#;
    let (apps, notes) = run("eco.json", eco);
    let argv = |n: &str| -> Vec<String> {
        apps[n]["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Looked up on PATH as PM2 does, not a file `uvicorn` in cwd run by python3.
    assert_eq!(argv("u"), ["uvicorn", "app:app"]);
    assert!(has_note(&notes, "program on PATH"), "{notes:#?}");
    assert_eq!(argv("n"), ["npm", "start"]);
    assert!(has_note(&notes, "NODE_OPTIONS"), "{notes:#?}");
    // `interpreter: ""` is unset: pypm infers python from .py, no empty program.
    assert_eq!(apps["e"]["script"].as_str(), Some("app.py"));
    assert!(apps["e"].get("interpreter").is_none(), "{apps:#?}");
    // The only env block is used rather than leaving the app without its environment.
    assert_eq!(apps["p"]["env"]["NODE_ENV"].as_str(), Some("production"));
    // Three log keys, one note; the instance variable is named.
    let log_notes = notes.iter().filter(|n| n.contains("log_dir")).count();
    assert_eq!(log_notes, 1, "{notes:#?}");
    assert!(has_note(&notes, "NODE_APP_INSTANCE"), "{notes:#?}");
}

#[test]
fn supervisord_includes_directory_logs_and_quoting() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("conf.d/worker.conf"),
        "[program:worker]\ncommand=python worker.py\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let main = "[supervisord]\ndirectory=/srv/app\n\n[include]\nfiles = conf.d/*.conf missing/*.conf\n\n[program:web]\ncommand=gunicorn app:app\n\n[program:bad]\ncommand=python -c \"print(1)\n\n[eventlistener:memmon]\ncommand=memmon -p web=200MB\n";
    let path = dir.path().join("supervisord.conf");
    std::fs::write(&path, main).unwrap_or_else(|e| panic!("{e}"));
    let (apps, notes) = run_at(&path);
    assert_eq!(
        apps["worker"]["command"].as_str(),
        Some("python worker.py"),
        "{apps:#?}"
    );
    assert_eq!(apps["web"]["cwd"].as_str(), Some("/srv/app"));
    assert!(
        apps.get("bad").is_none(),
        "a quoting error is not another command: {apps:#?}"
    );
    assert!(has_note(&notes, "cannot be split into words"), "{notes:#?}");
    assert!(has_note(&notes, "missing/*.conf"), "{notes:#?}");
    assert!(has_note(&notes, "supervisord's own"), "{notes:#?}");
    assert!(has_note(&notes, "never rotate"), "{notes:#?}");
    assert!(has_note(&notes, "memory_max"), "{notes:#?}");
    assert!(
        apps["worker"].get("log_max_size").is_none(),
        "rotation never turned off"
    );
}

/// A fuzzing finding (fuzz/artifacts/import_pm2): control characters in a name reached a note
/// and made the output invalid TOML.
#[test]
fn control_characters_in_the_source_never_break_the_output() {
    let eco = "module.exports = {\n  apps: [{ name: 'meg\u{0}\u{7}x', script: 'a.js', out_file: 'o\u{1b}.log' }]\n};";
    let imported = convert("ecosystem.config.js", eco, std::path::Path::new("/tmp"))
        .unwrap_or_else(|e| panic!("{}", e.0));
    let out = render(&imported, "eco\u{0}system.config.js");
    out.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{out}"));
    assert!(out.contains("\\u{0000}"), "{out}");
}

/// A fuzzing finding: an env key with a newline was written as a multi-line string key.
#[test]
fn odd_env_keys_stay_one_line_keys() {
    let eco = r#"{"apps": [{"name": "w", "script": "a.js", "env": {"A\nB": "1", "q\"k": "2", "\u0001\u007f": "3"}}]}"#;
    let imported = convert("ecosystem.json", eco, std::path::Path::new("/tmp"))
        .unwrap_or_else(|e| panic!("{}", e.0));
    let out = render(&imported, "ecosystem.json");
    let doc: toml::Table = out
        .parse()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{out}"));
    let env = doc["apps"]["w"]["env"]
        .as_table()
        .cloned()
        .unwrap_or_default();
    assert_eq!(env.get("A\nB").and_then(|v| v.as_str()), Some("1"), "{out}");
    assert_eq!(env.get("q\"k").and_then(|v| v.as_str()), Some("2"), "{out}");
}

/// A fuzzing finding: `[include] files=` naming a device (or anything not a regular file) was
/// read to its end; `/dev/zero` never ends.
#[test]
fn supervisord_includes_read_regular_files_only() {
    let conf = "[include]\nfiles=/dev/zero /dev/null\n\n[program:w]\ncommand=sleep 1\n";
    let imported = convert("supervisord.conf", conf, std::path::Path::new("/tmp"))
        .unwrap_or_else(|e| panic!("{}", e.0));
    assert_eq!(imported.apps.len(), 1);
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("/dev/zero") && n.contains("not a regular file")),
        "{:#?}",
        imported.notes
    );
}
