//! Every test builds its own tree in a tempdir and injects a `HostEnv`; the real process
//! environment is only read to find the machine's python3 (for `python -m venv` and symlinks).

use super::*;
use crate::process::ext::fs::PermissionsExt;
use std::process::Command;
use std::sync::OnceLock;
use tempfile::TempDir;

mod conda;
mod windows_layout;

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// An executable file (never run: resolution only looks at the filesystem).
fn exe(path: &Path) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "#!/bin/sh\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

fn fake_venv(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    exe(&dir.join("bin/python"))
}

/// The machine's real interpreter (not a shim), found once.
fn system_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by these tests");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn real_venv(dir: &Path) {
    let status = Command::new(system_python())
        .args(["-m", "venv", "--without-pip"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "python3 -m venv {}", dir.display());
}

/// A conda prefix: `conda-meta/` and `bin/python` symlinked to the system python.
fn fake_conda(prefix: &Path) -> PathBuf {
    fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    fs::create_dir_all(prefix.join("bin")).unwrap();
    crate::process::ext::fs::symlink(system_python(), prefix.join("bin/python")).unwrap();
    prefix.to_path_buf()
}

fn host(vars: &[(&str, &str)], home: Option<&Path>) -> HostEnv {
    HostEnv::new(vars.iter().copied(), home.map(Path::to_path_buf))
}

fn var<'e>(env: &'e PythonEnv, key: &str) -> Option<&'e str> {
    env.vars
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn app<'a>(cwd: &'a Path) -> AppLaunch<'a> {
    AppLaunch {
        command: None,
        script: None,
        module: None,
        args: &[],
        interpreter: None,
        environment: None,
        cwd,
        config_dir: cwd,
    }
}

fn err(result: Result<impl fmt::Debug, EnvError>) -> String {
    result.expect_err("expected an error").to_string()
}

#[test]
fn declared_real_venv_is_activated_without_leaving_it() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join(".venv");
    real_venv(&dir);
    let h = host(
        &[("PATH", "/usr/bin:/bin"), ("PYTHONHOME", "/elsewhere")],
        None,
    );
    let env = resolve_declared("web", &EnvDecl::Venv(dir.clone()), &h).unwrap();
    assert_eq!(env.interpreter, dir.join("bin/python"));
    assert_eq!(env.prefix.as_deref(), Some(dir.as_path()));
    assert_eq!(var(&env, "VIRTUAL_ENV"), Some(s(&dir).as_str()));
    assert_eq!(
        var(&env, "PATH"),
        Some(format!("{}:/usr/bin:/bin", s(&dir.join("bin"))).as_str())
    );
    assert_eq!(env.unset, ["PYTHONHOME"]);
    assert_eq!(
        env.rule.to_string(),
        format!("environment `web` (venv {})", dir.display())
    );
    // The symlink was kept: running the interpreter really lands in the venv.
    let out = Command::new(&env.interpreter)
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), s(&dir));
}

#[test]
fn declared_venv_errors_say_what_was_looked_for() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("env");
    exe(&dir.join("bin/python"));
    let h = HostEnv::default();
    assert_eq!(
        err(resolve_declared("web", &EnvDecl::Venv(dir.clone()), &h)),
        format!(
            "environment `web`: {} is not a virtualenv; looked for {}/pyvenv.cfg",
            dir.display(),
            dir.display()
        )
    );
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    fs::write(empty.join("pyvenv.cfg"), "").unwrap();
    let e = empty.display();
    assert_eq!(
        err(resolve_declared("web", &EnvDecl::Venv(empty.clone()), &h)),
        format!(
            "environment `web`: virtualenv {e} has no python; looked for {e}/bin/python, {e}/bin/python3"
        )
    );
}

#[test]
fn automatic_venv_prefers_dot_venv_then_venv() {
    let tmp = TempDir::new().unwrap();
    let cwd = tmp.path();
    real_venv(&cwd.join(".venv"));
    real_venv(&cwd.join("venv"));
    let a = AppLaunch {
        script: Some("app.py"),
        ..app(cwd)
    };
    let h = host(&[("PATH", "/nowhere")], None);
    let launch = resolve_launch(&a, &h).unwrap();
    let env = launch.python.unwrap();
    assert_eq!(env.rule, Rule::AutoVenv(cwd.join(".venv")));
    assert_eq!(
        env.rule.to_string(),
        format!("automatic: {}", cwd.join(".venv").display())
    );
    assert_eq!(
        launch.argv,
        [s(&cwd.join(".venv/bin/python")), "app.py".to_string()]
    );
    assert!(launch.is_python);

    // A `.venv` that is not a virtualenv (no pyvenv.cfg) is passed over.
    fs::remove_file(cwd.join(".venv/pyvenv.cfg")).unwrap();
    let env = resolve_launch(&a, &h).unwrap().python.unwrap();
    assert_eq!(env.rule, Rule::AutoVenv(cwd.join("venv")));
    assert_eq!(
        var(&env, "VIRTUAL_ENV"),
        Some(s(&cwd.join("venv")).as_str())
    );
}

#[test]
fn automatic_venv_in_cwd_beats_the_config_dir() {
    let tmp = TempDir::new().unwrap();
    let config_dir = tmp.path();
    let cwd = config_dir.join("services/api");
    real_venv(&config_dir.join(".venv"));
    real_venv(&cwd.join("venv"));
    let a = AppLaunch {
        module: Some("api"),
        config_dir,
        ..app(&cwd)
    };
    let h = HostEnv::default();
    let env = resolve_launch(&a, &h).unwrap().python.unwrap();
    assert_eq!(env.rule, Rule::AutoVenv(cwd.join("venv")));

    fs::remove_dir_all(cwd.join("venv")).unwrap();
    let env = resolve_launch(&a, &h).unwrap().python.unwrap();
    assert_eq!(env.rule, Rule::AutoVenv(config_dir.join(".venv")));
    assert_eq!(env.interpreter, config_dir.join(".venv/bin/python"));
}

#[test]
fn declared_python_by_name_path_or_venv_interpreter() {
    let tmp = TempDir::new().unwrap();
    let t = tmp.path();
    let py311 = exe(&t.join("b/python3.11"));
    let h = host(
        &[(
            "PATH",
            &format!("{}:relative:{}", s(&t.join("a")), s(&t.join("b"))),
        )],
        None,
    );
    let env = resolve_declared("legacy", &EnvDecl::Python("python3.11".into()), &h).unwrap();
    assert_eq!(
        (
            env.interpreter.as_path(),
            env.bin_dir.as_ref(),
            env.vars.len()
        ),
        (py311.as_path(), None, 0)
    );
    assert_eq!(
        env.rule.to_string(),
        format!("environment `legacy` (python {})", py311.display())
    );
    assert_eq!(
        err(resolve_declared(
            "legacy",
            &EnvDecl::Python("python3.9".into()),
            &h
        )),
        format!(
            "environment `legacy`: python `python3.9` not found; looked for {}, {}",
            t.join("a/python3.9").display(),
            t.join("b/python3.9").display()
        )
    );
    let missing = s(&t.join("opt/python"));
    assert!(
        err(resolve_declared("l", &EnvDecl::Python(missing.clone()), &h))
            .ends_with(&format!("looked for {missing}"))
    );

    // A venv's interpreter given by path activates the venv.
    let venv_python = fake_venv(&t.join("v"));
    let env = resolve_declared("l", &EnvDecl::Python(s(&venv_python)), &h).unwrap();
    assert_eq!(var(&env, "VIRTUAL_ENV"), Some(s(&t.join("v")).as_str()));
    assert_eq!(env.bin_dir, Some(t.join("v/bin")));
}

#[test]
fn fallbacks_follow_spec_order() {
    let tmp = TempDir::new().unwrap();
    let t = tmp.path();
    let cwd = t.join("app");
    fs::create_dir_all(&cwd).unwrap();
    fake_venv(&t.join("active"));
    let conda = fake_conda(&t.join("root/envs/ds"));
    let python3 = exe(&t.join("bin/python3"));
    let a = AppLaunch {
        script: Some("main.py"),
        ..app(&cwd)
    };
    let mut vars = vec![
        ("PATH", s(&t.join("bin"))),
        ("VIRTUAL_ENV", s(&t.join("active"))),
        ("CONDA_PREFIX", s(&conda)),
    ];
    let rule = |vars: &[(&str, String)]| {
        let h = HostEnv::new(vars.iter().cloned(), None);
        resolve_launch(&a, &h).map(|l| l.python.unwrap().rule)
    };
    // An automatic venv (rule 2) comes before the supervisor's environment (rule 3).
    fake_venv(&cwd.join(".venv"));
    assert_eq!(rule(&vars), Ok(Rule::AutoVenv(cwd.join(".venv"))));
    fs::remove_dir_all(cwd.join(".venv")).unwrap();
    assert_eq!(rule(&vars), Ok(Rule::VirtualEnvVar(t.join("active"))));
    vars[1].1 = String::new(); // set but empty counts as unset
    assert_eq!(rule(&vars), Ok(Rule::CondaPrefixVar(conda.clone())));
    let h = HostEnv::new(vars.iter().cloned(), None);
    let env = resolve_launch(&a, &h).unwrap().python.unwrap();
    assert_eq!(var(&env, "CONDA_DEFAULT_ENV"), Some("ds"));
    vars.pop();
    assert_eq!(rule(&vars), Ok(Rule::SystemPython(python3.clone())));
    assert_eq!(
        Rule::SystemPython(python3.clone()).to_string(),
        format!("system python3 on PATH ({})", python3.display())
    );

    fs::remove_file(&python3).unwrap();
    vars[1].1 = s(&t.join("gone"));
    let c = cwd.display();
    assert_eq!(
        err(rule(&vars)),
        format!(
            "no python found; looked for {c}/.venv, {c}/venv, $VIRTUAL_ENV (virtualenv {g} has no python; \
             looked for {g}/bin/python, {g}/bin/python3), $CONDA_PREFIX (unset), python3 on PATH ({p})",
            g = t.join("gone").display(),
            p = python3.display()
        )
    );
}

#[test]
fn script_interpreter_follows_the_extension() {
    let tmp = TempDir::new().unwrap();
    let cwd = tmp.path();
    let venv_python = fake_venv(&cwd.join(".venv"));
    let node = exe(&cwd.join("usr/bin/node"));
    let bash = exe(&cwd.join("usr/bin/bash"));
    let h = host(&[("PATH", &s(&cwd.join("usr/bin")))], None);
    let args = strings(&["--port", "8000"]);
    let cases: [(&str, Vec<String>, bool); 4] = [
        ("app.py", vec![s(&venv_python), "app.py".into()], true),
        ("server.js", vec![s(&node), "server.js".into()], false),
        ("run.sh", vec![s(&bash), "run.sh".into()], false),
        ("bin/tool", vec![s(&cwd.join("bin/tool"))], false),
    ];
    for (script, mut argv, python) in cases {
        let launch = resolve_launch(
            &AppLaunch {
                script: Some(script),
                args: &args,
                ..app(cwd)
            },
            &h,
        )
        .unwrap();
        argv.extend(args.iter().cloned());
        assert_eq!(launch.argv, argv, "{script}");
        assert_eq!(
            (launch.python.is_some(), launch.is_python),
            (python, python),
            "{script}"
        );
    }
}

#[test]
fn interpreter_overrides_the_extension() {
    let tmp = TempDir::new().unwrap();
    let cwd = tmp.path();
    fake_venv(&cwd.join(".venv"));
    let venv_py311 = exe(&cwd.join(".venv/bin/python3.11"));
    exe(&cwd.join("usr/bin/python3.11"));
    let sh = exe(&cwd.join("usr/bin/sh"));
    let h = host(&[("PATH", &s(&cwd.join("usr/bin")))], None);
    let run = |script, interpreter| {
        let a = AppLaunch {
            script: Some(script),
            interpreter: Some(interpreter),
            ..app(cwd)
        };
        resolve_launch(&a, &h).unwrap()
    };
    // `none` runs the file itself; a .py file still gets its environment (for `#!/usr/bin/env python`).
    let launch = run("app.py", "none");
    assert_eq!(launch.argv, [s(&cwd.join("app.py"))]);
    assert!(launch.python.is_some() && launch.is_python);
    assert_eq!(run("run.sh", "sh").argv, [s(&sh), "run.sh".into()]);
    assert_eq!(
        run("x.rb", "./tools/ruby").argv,
        [s(&cwd.join("tools/ruby")), "x.rb".into()]
    );
    // A named python is looked up in the environment's bin before PATH.
    let launch = run("worker", "python3.11");
    assert_eq!(launch.argv, [s(&venv_py311), "worker".into()]);
    assert!(launch.is_python);
}

#[test]
fn module_runs_with_python_dash_m() {
    let tmp = TempDir::new().unwrap();
    let cwd = tmp.path();
    let decl = EnvDecl::Venv(cwd.join("env"));
    let python = fake_venv(&cwd.join("env"));
    let args = strings(&["--once"]);
    let a = AppLaunch {
        module: Some("api.worker"),
        args: &args,
        environment: Some(("w", &decl)),
        ..app(cwd)
    };
    let launch = resolve_launch(&a, &HostEnv::default()).unwrap();
    assert_eq!(
        launch.argv,
        [
            s(&python),
            "-m".into(),
            "api.worker".into(),
            "--once".into()
        ]
    );
    assert!(launch.is_python);
    let node = AppLaunch {
        interpreter: Some("node"),
        ..a
    };
    assert_eq!(
        err(resolve_launch(&node, &HostEnv::default())),
        "`module` runs with python, not with interpreter `node`"
    );
}

#[test]
fn command_words_are_looked_up_in_the_environment_first() {
    let tmp = TempDir::new().unwrap();
    let cwd = tmp.path();
    let decl = EnvDecl::Venv(cwd.join("env"));
    let python = fake_venv(&cwd.join("env"));
    let venv_gunicorn = exe(&cwd.join("env/bin/gunicorn"));
    exe(&cwd.join("usr/bin/gunicorn"));
    let celery = exe(&cwd.join("usr/bin/celery"));
    let h = host(&[("PATH", &s(&cwd.join("usr/bin")))], None);
    let run = |words: &[&str]| {
        let words = strings(words);
        resolve_launch(
            &AppLaunch {
                command: Some(&words),
                environment: Some(("web", &decl)),
                ..app(cwd)
            },
            &h,
        )
        .unwrap()
    };
    let launch = run(&["gunicorn", "app:app"]);
    assert_eq!(launch.argv, [s(&venv_gunicorn), "app:app".into()]);
    assert!(launch.is_python && launch.python.is_some());
    assert_eq!(
        run(&["celery", "worker"]).argv,
        [s(&celery), "worker".into()]
    );
    assert_eq!(
        run(&["python3", "-m", "http.server"]).argv,
        [s(&python), "-m".into(), "http.server".into()]
    );
    assert_eq!(run(&["./bin/serve"]).argv, [s(&cwd.join("bin/serve"))]);
    // Not found anywhere: kept as written, so the spawn reports the OS's reason.
    let launch = run(&["nosuchprog", "-x"]);
    assert_eq!(launch.argv, strings(&["nosuchprog", "-x"]));
    assert!(!launch.is_python && launch.python.is_some());
}

#[test]
fn command_environment_without_declaration() {
    let tmp = TempDir::new().unwrap();
    let cwd = tmp.path();
    let python = fake_venv(&cwd.join(".venv"));
    let uvicorn = exe(&cwd.join(".venv/bin/uvicorn"));
    let redis = exe(&cwd.join("usr/bin/redis-server"));
    let h = host(&[("PATH", &s(&cwd.join("usr/bin")))], None);
    let run = |words: &[&str], interpreter| {
        let words = strings(words);
        resolve_launch(
            &AppLaunch {
                command: Some(&words),
                interpreter,
                ..app(cwd)
            },
            &h,
        )
        .unwrap()
    };
    // Found in the automatic venv's bin: the app runs in that venv.
    let launch = run(&["uvicorn", "main:app"], None);
    assert_eq!(launch.argv[0], s(&uvicorn));
    assert_eq!(
        launch.python.map(|p| p.rule),
        Some(Rule::AutoVenv(cwd.join(".venv")))
    );
    assert!(launch.is_python);
    let launch = run(&[".venv/bin/uvicorn"], None);
    assert!(launch.python.is_some());
    // Not Python, not in the venv: no environment at all.
    let launch = run(&["redis-server", "--port", "6380"], None);
    assert_eq!(launch.argv[0], s(&redis));
    assert!(launch.python.is_none() && !launch.is_python);
    // `pythonX.Y` and `interpreter = "python"` make it a Python app.
    let launch = run(&["python3.12", "x.py"], None);
    assert_eq!(launch.argv[0], "python3.12");
    assert!(launch.python.is_some() && launch.is_python);
    let launch = run(&["python", "x.py"], Some("python"));
    assert_eq!(launch.argv[0], s(&python));
}

#[test]
fn rule_display() {
    let p = PathBuf::from("/x/.venv");
    let declared = |kind| Rule::Declared {
        name: "web".into(),
        kind,
        path: p.clone(),
    };
    assert_eq!(
        declared(DeclKind::Venv).to_string(),
        "environment `web` (venv /x/.venv)"
    );
    assert_eq!(
        declared(DeclKind::Conda).to_string(),
        "environment `web` (conda /x/.venv)"
    );
    assert_eq!(
        Rule::VirtualEnvVar(p.clone()).to_string(),
        "$VIRTUAL_ENV (/x/.venv)"
    );
    assert_eq!(
        Rule::CondaPrefixVar(p.clone()).to_string(),
        "$CONDA_PREFIX (/x/.venv)"
    );
}

#[test]
fn python_names() {
    for yes in [
        "python",
        "python3",
        "python3.11",
        "python2.7",
        "/usr/bin/python3.12",
    ] {
        assert!(names_python(yes), "{yes}");
    }
    for no in [
        "pythonw",
        "python3.",
        "python3.1.2",
        "ipython",
        "py",
        "python3-config",
        "/usr/bin/pip",
    ] {
        assert!(!names_python(no), "{no}");
    }
}

#[test]
fn nothing_to_run() {
    let empty: Vec<String> = Vec::new();
    let a = AppLaunch {
        command: Some(&empty),
        ..app(Path::new("/"))
    };
    assert_eq!(
        resolve_launch(&a, &HostEnv::default()),
        Err(EnvError::NothingToRun)
    );
}
