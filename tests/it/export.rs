//! `pypm export`, checked by the engines' own tools: every example and a file that uses every
//! app key (tests/fixtures/export/pypm.toml) export to all four targets, and the output passes
//! `kubernetes-validate --strict`, `docker-compose config -q`, python-hcl2 plus a field-by-field
//! check against Nomad 1.9's job specification, and `systemd-analyze verify`. Each export holds
//! exactly the file's apps.
//!
//! The validators live in `target/export-tools` (or `$PYPM_EXPORT_TOOLS`): `k8s/` a venv with
//! kubernetes-validate and python-hcl2, `compose/` one with docker-compose (they need
//! incompatible jsonschema versions). `.ci/run` installs them and sets
//! `PYPM_REQUIRE_VALIDATORS=1`; elsewhere a missing tool skips the test with what is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

struct Tools {
    kubernetes_validate: PathBuf,
    /// A python with `hcl2`.
    hcl_python: PathBuf,
    docker_compose: PathBuf,
    /// A python with `yaml` (the compose venv's).
    yaml_python: PathBuf,
}

fn tools() -> Result<Tools, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("PYPM_EXPORT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/export-tools"));
    let t = Tools {
        kubernetes_validate: dir.join("k8s/bin/kubernetes-validate"),
        hcl_python: dir.join("k8s/bin/python"),
        docker_compose: dir.join("compose/bin/docker-compose"),
        yaml_python: dir.join("compose/bin/python"),
    };
    for p in [&t.kubernetes_validate, &t.docker_compose] {
        if !p.is_file() {
            return Err(format!(
                "no {} (see .ci/run: export validators)",
                p.display()
            ));
        }
    }
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|o| o.status.success()) {
        return Err("no `systemd-analyze` on PATH (apt-get install systemd)".into());
    }
    Ok(t)
}

fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Bounded: read on threads, wait with a deadline.
    let out = child.stdout.take();
    let err = child.stderr.take();
    let read = |r: Option<std::process::ChildStdout>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = std::io::Read::read_to_end(&mut r, &mut buf);
            }
            buf
        })
    };
    let out_t = read(out);
    let err_t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = err {
            let _ = std::io::Read::read_to_end(&mut r, &mut buf);
        }
        buf
    });
    let status = wait_child(&mut child, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("{cmd:?} did not finish within 120 s"));
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

fn ok(cmd: &mut Command, what: &str) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{what}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files to export: every example, and the every-key fixture.
fn sources() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .filter_map(|e| Some(e.ok()?.path().join("pypm.toml")))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v.push(root.join("tests/fixtures/export/pypm.toml"));
    v
}

fn pypm(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pypm"));
    c.arg("--config")
        .arg(config)
        .env("PYPM_PORT", "8000")
        .env_remove("PYPM_CONFIG");
    c
}

/// The apps of the effective file (includes merged), as `pypm config` prints it.
fn app_names(config: &Path) -> BTreeSet<String> {
    let text = ok(pypm(config).arg("config"), "pypm config");
    let t: toml::Table = text.parse().expect("TOML");
    t.get("apps")
        .and_then(|a| a.as_table())
        .map(|a| a.keys().cloned().collect())
        .unwrap_or_default()
}

fn dns(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn yaml_docs(t: &Tools, file: &Path) -> Vec<Value> {
    let code = "import yaml, json, sys; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))";
    let text = ok(
        Command::new(&t.yaml_python).arg("-c").arg(code).arg(file),
        "read YAML",
    );
    serde_json::from_str::<Vec<Value>>(&text).expect("JSON from python")
}

#[test]
fn every_example_and_every_key_exports_to_all_four_engines_and_passes_their_validators() {
    let t = match tools() {
        Ok(t) => t,
        Err(why) if std::env::var_os("PYPM_REQUIRE_VALIDATORS").is_none() => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(why) => panic!("PYPM_REQUIRE_VALIDATORS is set but {why}"),
    };
    let out = tempfile::tempdir().expect("temp dir");
    for (k, src) in sources().iter().enumerate() {
        let apps = app_names(src);
        let dns_apps: BTreeSet<String> = apps.iter().map(|a| dns(a)).collect();
        let dir = |target: &str| out.path().join(format!("{k}-{target}"));
        for target in ["kubernetes", "nomad", "compose", "systemd"] {
            let d = dir(target);
            ok(
                pypm(src)
                    .args(["export", target, "--image", "registry.example/shop:1", "-o"])
                    .arg(&d),
                &format!("export {target} of {}", src.display()),
            );
        }
        let what = src.display();

        // Kubernetes: strict schema validation; one workload (or init container) per app.
        let k8s = dir("kubernetes").join("kubernetes.yaml");
        ok(
            Command::new(&t.kubernetes_validate)
                .arg("--strict")
                .arg(&k8s),
            &format!("kubernetes-validate of {what}"),
        );
        let mut seen = BTreeSet::new();
        for d in yaml_docs(&t, &k8s) {
            let kind = d["kind"].as_str().unwrap_or_default();
            let pod = match kind {
                "Deployment" | "Job" => &d["spec"]["template"]["spec"],
                "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                _ => continue,
            };
            seen.insert(
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            for c in pod["initContainers"].as_array().into_iter().flatten() {
                seen.insert(c["name"].as_str().unwrap_or_default().to_string());
            }
        }
        assert_eq!(seen, dns_apps, "Kubernetes workloads of {what}");

        // compose: docker-compose's own validation; one service per app.
        let compose = dir("compose").join("compose.yaml");
        ok(
            Command::new(&t.docker_compose)
                .arg("-f")
                .arg(&compose)
                .args(["config", "-q"]),
            &format!("docker-compose config of {what}"),
        );
        let doc = &yaml_docs(&t, &compose)[0];
        let services: BTreeSet<String> = doc["services"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(services, dns_apps, "compose services of {what}");

        // Nomad: python-hcl2 parses it; the structure follows the job specification.
        let mut nomad_apps = BTreeSet::new();
        for f in std::fs::read_dir(dir("nomad")).expect("nomad dir") {
            let path = f.expect("entry").path();
            let code = "import hcl2, json, sys; print(json.dumps(hcl2.load(open(sys.argv[1]))))";
            let text = ok(
                Command::new(&t.hcl_python).arg("-c").arg(code).arg(&path),
                &format!("python-hcl2 of {}", path.display()),
            );
            let v: Value = serde_json::from_str(&text).expect("JSON from python");
            nomad_apps.extend(check_nomad_job(&v, &path.display().to_string()));
        }
        assert_eq!(nomad_apps, dns_apps, "Nomad tasks of {what}");

        // systemd: `systemd-analyze verify` on every unit; one service unit per app.
        let units: Vec<PathBuf> = std::fs::read_dir(dir("systemd"))
            .expect("systemd dir")
            .map(|e| e.expect("entry").path())
            .collect();
        let verify = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(&units)
            .current_dir(dir("systemd")));
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "systemd-analyze verify of {what}: {}",
            describe(&verify)
        );
        let services: BTreeSet<String> = units
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .filter_map(|n| {
                let stem = n.strip_suffix(".service")?.trim_end_matches('@');
                let (_, app) = stem.split_once('-')?;
                Some(app.to_string())
            })
            .collect();
        assert_eq!(services, apps, "systemd services of {what}");

        // The round trip that exists: the source still checks, with the same apps.
        if !src.to_string_lossy().contains("conda") {
            let out = ok(pypm(src).arg("check"), &format!("check of {what}"));
            assert!(
                out.contains(&format!("({} app", apps.len())),
                "{what}: {out}"
            );
        }
    }
}

/// An HCL string as python-hcl2 8 returns it (`"\"text\""`), unquoted.
fn unq(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    Some(s.strip_prefix('"')?.strip_suffix('"')?.to_string())
}

/// The one labelled block of `kind` in `v[kind]`: (label, body).
fn labelled<'a>(v: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    v[kind]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b.as_object().into_iter().flatten())
        .filter(|(k, _)| k.starts_with('"'))
        .map(|(k, body)| (k.trim_matches('"').to_string(), body))
        .collect()
}

fn blocks<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v[kind]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Go duration syntax (`1m30s`, `500ms`) in milliseconds.
fn duration_ms(s: &str) -> Option<u64> {
    let mut total = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                1
            }
            ('h', _) => 3_600_000,
            ('m', _) => 60_000,
            ('s', _) => 1000,
            _ => return None,
        };
        total += n * unit;
    }
    num.is_empty().then_some(total)
}

/// Checks one job against Nomad 1.9's job specification, field by field, and returns the apps
/// it runs (group tasks).
fn check_nomad_job(v: &Value, file: &str) -> BTreeSet<String> {
    let jobs = labelled(v, "job");
    assert_eq!(jobs.len(), 1, "{file}: one job per file");
    let (_, job) = &jobs[0];
    let kind = unq(&job["type"]).unwrap_or_default();
    assert!(
        ["service", "batch", "system", "sysbatch"].contains(&kind.as_str()),
        "{file}: job type {kind}"
    );
    assert!(
        job["datacenters"].as_array().is_some_and(|d| !d.is_empty()),
        "{file}: datacenters"
    );
    for p in blocks(job, "periodic") {
        assert_eq!(kind, "batch", "{file}: periodic only in batch jobs");
        assert!(
            p["crons"].as_array().is_some_and(|c| !c.is_empty()),
            "{file}: crons"
        );
        assert!(
            p["prohibit_overlap"].is_boolean(),
            "{file}: prohibit_overlap"
        );
    }
    let mut apps = BTreeSet::new();
    let groups = labelled(job, "group");
    assert!(!groups.is_empty(), "{file}: a job has groups");
    for (gname, g) in groups {
        let at = format!("{file}: group {gname}");
        assert!(g["count"].as_u64().is_some(), "{at}: count");
        for r in blocks(g, "restart") {
            let attempts = r["attempts"].as_u64().expect("attempts");
            let interval = unq(&r["interval"])
                .and_then(|d| duration_ms(&d))
                .expect("interval");
            let delay = unq(&r["delay"])
                .and_then(|d| duration_ms(&d))
                .expect("delay");
            let mode = unq(&r["mode"]).unwrap_or_default();
            assert!(
                ["fail", "delay"].contains(&mode.as_str()),
                "{at}: restart mode {mode}"
            );
            assert!(
                interval >= attempts * delay,
                "{at}: interval >= attempts × delay"
            );
        }
        let mut ports = BTreeSet::new();
        for n in blocks(g, "network") {
            for (label, p) in labelled(n, "port") {
                let port = p["static"].as_u64().expect("static port");
                assert!((1..=65535).contains(&port), "{at}: port {port}");
                ports.insert(label);
            }
        }
        let tasks = labelled(g, "task");
        let task_names: BTreeSet<String> = tasks.iter().map(|(n, _)| n.clone()).collect();
        for s in blocks(g, "service") {
            assert!(unq(&s["name"]).is_some(), "{at}: service name");
            let provider = unq(&s["provider"]).unwrap_or_default();
            assert!(
                ["consul", "nomad"].contains(&provider.as_str()),
                "{at}: provider"
            );
            if let Some(p) = unq(&s["port"]) {
                assert!(
                    ports.contains(&p),
                    "{at}: service port {p} is a network port"
                );
            }
            for c in blocks(s, "check") {
                let ty = unq(&c["type"]).unwrap_or_default();
                assert!(
                    ["http", "tcp", "script", "grpc"].contains(&ty.as_str()),
                    "{at}: check type {ty}"
                );
                let interval = unq(&c["interval"])
                    .and_then(|d| duration_ms(&d))
                    .expect("interval");
                let timeout = unq(&c["timeout"])
                    .and_then(|d| duration_ms(&d))
                    .expect("timeout");
                assert!(
                    interval >= 1000 && timeout >= 1000,
                    "{at}: check interval/timeout >= 1s"
                );
                match ty.as_str() {
                    "http" => {
                        assert!(
                            unq(&c["path"]).is_some_and(|p| p.starts_with('/')),
                            "{at}: path"
                        );
                        let p = unq(&c["port"]).expect("http check port");
                        assert!(ports.contains(&p), "{at}: check port {p}");
                    }
                    "tcp" => {
                        let p = unq(&c["port"]).expect("tcp check port");
                        assert!(ports.contains(&p), "{at}: check port {p}");
                    }
                    "script" => {
                        assert!(unq(&c["command"]).is_some(), "{at}: script command");
                        let task = unq(&c["task"]).expect("script check task");
                        assert!(task_names.contains(&task), "{at}: script check task {task}");
                    }
                    _ => {}
                }
            }
        }
        assert!(!tasks.is_empty(), "{at}: tasks");
        for (tname, task) in tasks {
            let at = format!("{at} task {tname}");
            let driver = unq(&task["driver"]).unwrap_or_default();
            assert!(
                ["raw_exec", "docker", "exec"].contains(&driver.as_str()),
                "{at}: driver"
            );
            let config = blocks(task, "config");
            assert_eq!(config.len(), 1, "{at}: one config block");
            assert!(unq(&config[0]["command"]).is_some(), "{at}: config.command");
            assert!(config[0]["args"].is_array(), "{at}: config.args");
            if driver == "docker" {
                assert!(unq(&config[0]["image"]).is_some(), "{at}: docker image");
            }
            assert!(
                unq(&task["kill_timeout"])
                    .and_then(|d| duration_ms(&d))
                    .is_some(),
                "{at}: kill_timeout"
            );
            assert!(
                unq(&task["kill_signal"]).is_some_and(|s| s.starts_with("SIG")),
                "{at}: kill_signal"
            );
            for l in blocks(task, "lifecycle") {
                let hook = unq(&l["hook"]).unwrap_or_default();
                assert!(
                    ["prestart", "poststart", "poststop"].contains(&hook.as_str()),
                    "{at}: hook"
                );
            }
            for r in blocks(task, "resources") {
                if let Some(cpu) = r["cpu"].as_u64() {
                    assert!(cpu >= 1, "{at}: cpu MHz");
                }
                if let Some(mem) = r["memory"].as_u64() {
                    assert!(mem >= 10, "{at}: memory MB (Nomad's minimum is 10)");
                }
            }
            for e in blocks(task, "env") {
                for (k, val) in e.as_object().into_iter().flatten() {
                    if k != "__is_block__" {
                        assert!(unq(val).is_some(), "{at}: env {k} is a string");
                    }
                }
            }
            apps.insert(tname);
        }
    }
    apps
}
