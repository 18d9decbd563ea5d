//! What an imported file runs is what its source tool would have run: a sample of each format
//! imported, started with stub programs on PATH that record their argv, cwd, environment and the
//! signal that stops them, and compared with the source tool's semantics (PM2, foreman,
//! supervisord). docs/import.md has the mapping table.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// A stub named `name` in `ROOT/bin`: records what it was run with into
/// `ROOT/dump/APP.INSTANCE.run` and the signal that stopped it into `….sig`.
fn stub(p: &Project, name: &str) {
    let dump = p.path("dump");
    std::fs::create_dir_all(&dump).expect("mkdir dump");
    std::fs::create_dir_all(p.path("bin")).expect("mkdir bin");
    let body = format!(
        r#"#!/bin/sh
f="{dump}/$PYPM_APP.$PYPM_INSTANCE"
# The traps first: once the .run file exists, a stop signal is recorded.
for s in TERM INT QUIT HUP; do trap "echo $s > '$f.sig'; exit 0" $s; done
{{ printf 'argv %s' "$(basename "$0")"; for a in "$@"; do printf ' %s' "$a"; done; echo; echo "cwd $(pwd)"; env | sort; }} > "$f.tmp" && mv "$f.tmp" "$f.run"
while :; do sleep 0.05; done
"#,
        dump = dump.display()
    );
    let path = p.path(&format!("bin/{name}"));
    std::fs::write(&path, body).expect("write stub");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `argv`, `cwd` and the environment a stub recorded for `app.instance`.
fn ran(p: &Project, key: &str) -> (String, String, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(p.path(&format!("dump/{key}.run")))
        .unwrap_or_else(|e| panic!("{key} did not run: {e}"));
    let mut lines = text.lines();
    let argv = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("argv ")
        .to_string();
    let cwd = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("cwd ")
        .to_string();
    let env = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (argv, cwd, env)
}

fn import_and_run(p: &Project, file: &str, expect_runs: &[&str]) {
    let out = p.pypm(&["import", file]);
    assert!(out.status.success(), "import: {}", describe(&out));
    std::fs::write(&p.config, &out.stdout).expect("save pypm.toml");
    let path = format!(
        "{}:{}",
        p.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let up = p
        .command(&["up", "-d", "--wait", "20s"])
        .env("PATH", &path)
        .output()
        .expect("up -d");
    assert!(
        up.status.success(),
        "up: {}\n{}",
        describe(&up),
        String::from_utf8_lossy(&out.stdout)
    );
    for k in expect_runs {
        let f = p.path(&format!("dump/{k}.run"));
        assert!(
            wait_until(Duration::from_secs(10), || f.exists()),
            "{k} never ran:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            p.supervisor_log_tail()
        );
    }
    // Down: each stub records the signal it was stopped with.
    p.pypm_ok(&["down"], 0);
}

fn sig(p: &Project, key: &str) -> String {
    std::fs::read_to_string(p.path(&format!("dump/{key}.sig")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_pm2_ecosystem_runs_what_pm2_would() {
    let p = Project::new();
    stub(&p, "python3");
    std::fs::write(p.path("app.py"), "").expect("app.py");
    std::fs::write(
        p.path("ecosystem.json"),
        r#"{"apps": [{"name": "api", "script": "app.py", "interpreter": "python3",
            "args": "--port 9 --debug", "env": {"MODE": "prod"}, "instances": 2}]}"#,
    )
    .expect("ecosystem.json");
    import_and_run(&p, "ecosystem.json", &["api.0", "api.1"]);
    for i in 0..2 {
        let (argv, cwd, env) = ran(&p, &format!("api.{i}"));
        // PM2: `interpreter script args...`, in the file's directory, with `env`; it stops with
        // SIGINT.
        let abs = format!("python3 {} --port 9 --debug", p.path("app.py").display());
        assert!(
            argv == "python3 app.py --port 9 --debug" || argv == abs,
            "{argv}"
        );
        assert_eq!(cwd, p.root.display().to_string());
        assert_eq!(env.get("MODE").map(String::as_str), Some("prod"));
        assert_eq!(sig(&p, &format!("api.{i}")), "INT", "PM2 stops with SIGINT");
    }
}

#[test]
fn a_procfile_runs_what_foreman_would() {
    let p = Project::new();
    stub(&p, "python");
    std::fs::write(
        p.path("Procfile"),
        "web: LEVEL=debug python app.py --port $PORT\nworker: python worker.py --queue ${QUEUE:-default}\n",
    )
    .expect("Procfile");
    import_and_run(&p, "Procfile", &["web.0", "worker.0"]);
    let (argv, cwd, env) = ran(&p, "web.0");
    // foreman: a shell runs the line; PORT is 5000 for the first process type, +100 after.
    assert_eq!(argv, "python app.py --port 5000");
    assert_eq!(cwd, p.root.display().to_string());
    assert_eq!(env.get("LEVEL").map(String::as_str), Some("debug"));
    assert_eq!(env.get("PORT").map(String::as_str), Some("5000"));
    let (argv, _, env) = ran(&p, "worker.0");
    assert_eq!(argv, "python worker.py --queue default");
    assert_eq!(env.get("PORT").map(String::as_str), Some("5100"));
    assert_eq!(sig(&p, "web.0"), "TERM", "foreman stops with SIGTERM");
}

#[test]
fn a_supervisord_program_runs_what_supervisord_would() {
    let p = Project::new();
    stub(&p, "python");
    std::fs::create_dir_all(p.path("srv")).expect("mkdir srv");
    std::fs::write(
        p.path("supervisord.conf"),
        "[program:w]\ncommand=python w.py --n %(process_num)02d\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)02d\ndirectory=%(here)s/srv\nenvironment=K=\"v 1\",J=2\nstopsignal=QUIT\n",
    )
    .expect("supervisord.conf");
    let out = p.pypm(&["import", "supervisord.conf"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let name = if text.contains("[apps.w]") {
        "w"
    } else {
        "w_00"
    };
    let keys: Vec<String> = if name == "w" {
        vec!["w.0".into(), "w.1".into()]
    } else {
        vec!["w_00.0".into(), "w_01.0".into()]
    };
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    import_and_run(&p, "supervisord.conf", &refs);
    for (k, n) in keys.iter().zip(["00", "01"]) {
        let (argv, cwd, env) = ran(&p, k);
        // supervisord: `command` with %(process_num)02d padded, in `directory`, with
        // `environment`, stopped with `stopsignal`.
        assert_eq!(argv, format!("python w.py --n {n}"), "{k}:\n{text}");
        assert_eq!(Path::new(&cwd), p.path("srv"), "{k}");
        assert_eq!(env.get("K").map(String::as_str), Some("v 1"), "{k}");
        assert_eq!(env.get("J").map(String::as_str), Some("2"), "{k}");
        assert_eq!(sig(&p, k), "QUIT", "{k}: stopsignal");
    }
}
