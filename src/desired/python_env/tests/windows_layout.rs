//! The Windows layout of Python environments, checked on Linux through `HostEnv::layout`:
//! `Scripts\python.exe` in a venv, `python.exe` at a conda prefix's root, `PATH` split by `;`,
//! bare names tried with the `PATHEXT` extensions. (The paths here are Linux temp dirs; the
//! layout only decides which names are looked for and how `PATH` is read and written.)

use super::*;

fn win(vars: &[(&str, &str)]) -> HostEnv {
    HostEnv {
        layout: Layout::Windows,
        ..host(vars, None)
    }
}

fn win_venv(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("pyvenv.cfg"), "home = C:\\Python312\n").unwrap();
    exe(&dir.join("Scripts").join("python.exe"))
}

#[test]
fn a_venv_is_scripts_python_exe_and_its_scripts_come_first_on_path() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join(".venv");
    let python = win_venv(&dir);
    let h = win(&[("PATH", "C:\\Windows\\system32;C:\\Windows")]);
    let env = resolve_declared("web", &EnvDecl::Venv(dir.clone()), &h).unwrap();
    assert_eq!(env.interpreter, python);
    assert_eq!(env.bin_dir, Some(dir.join("Scripts")));
    let want = format!(
        "{};C:\\Windows\\system32;C:\\Windows",
        s(&dir.join("Scripts"))
    );
    assert_eq!(var(&env, "PATH"), Some(want.as_str()));

    // A Unix `bin/python` is not a Windows venv's interpreter.
    let unix = tmp.path().join("unix");
    fake_venv(&unix);
    let e = err(resolve_declared("web", &EnvDecl::Venv(unix.clone()), &h));
    assert!(e.contains("python.exe"), "{e}");
}

#[test]
fn a_program_of_the_automatic_venv_is_found_with_pathext() {
    let tmp = TempDir::new().unwrap();
    win_venv(&tmp.path().join(".venv"));
    let gunicorn = exe(&tmp.path().join(".venv/Scripts/gunicorn.exe"));
    let h = win(&[("PATH", "C:\\Windows"), ("PATHEXT", ".COM;.EXE;.BAT")]);
    let words = strings(&["gunicorn", "app:wsgi"]);
    let launch = resolve_launch(
        &AppLaunch {
            command: Some(&words),
            ..app(tmp.path())
        },
        &h,
    )
    .unwrap();
    assert_eq!(launch.argv, [s(&gunicorn), "app:wsgi".to_string()]);
    assert!(launch.python.is_some(), "gunicorn runs in the venv");
}

#[test]
fn a_conda_prefix_is_python_exe_at_its_root_with_library_bin_and_scripts_on_path() {
    let tmp = TempDir::new().unwrap();
    let prefix = tmp.path().join("envs").join("ml");
    fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    let python = exe(&prefix.join("python.exe"));
    let h = win(&[("CONDA_PREFIX", &s(&prefix)), ("PATH", "C:\\Windows")]);
    let script = "main.py";
    let launch = resolve_launch(
        &AppLaunch {
            script: Some(script),
            ..app(tmp.path())
        },
        &h,
    )
    .unwrap();
    assert_eq!(launch.argv[0], s(&python));
    let env = launch.python.expect("the conda env");
    let want = [
        s(&prefix),
        s(&prefix.join("Library").join("bin")),
        s(&prefix.join("Scripts")),
        "C:\\Windows".to_string(),
    ]
    .join(";");
    assert_eq!(var(&env, "PATH"), Some(want.as_str()));
}

#[test]
fn without_an_environment_python_exe_is_looked_up_on_a_semicolon_path() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("Python312");
    let python = exe(&dir.join("python.exe"));
    // A relative entry is skipped; `C:\…` and `\\server\…` count as absolute.
    let path = format!("relative;C:\\nowhere;\\\\server\\share;{}", s(&dir));
    let h = win(&[("PATH", &path)]);
    let launch = resolve_launch(
        &AppLaunch {
            script: Some("main.py"),
            ..app(tmp.path())
        },
        &h,
    )
    .unwrap();
    assert_eq!(launch.argv, [s(&python), "main.py".to_string()]);

    let nothing = win(&[("PATH", "C:\\nowhere")]);
    let e = err(resolve_launch(
        &AppLaunch {
            script: Some("main.py"),
            ..app(tmp.path())
        },
        &nothing,
    ));
    assert!(e.contains("python on PATH"), "{e}");
    assert!(e.contains("python.exe"), "{e}");
}

#[test]
fn without_python_on_path_the_py_launcher_runs_as_py_dash_3() {
    let tmp = TempDir::new().unwrap();
    let launcher_dir = tmp.path().join("Windows");
    let py = exe(&launcher_dir.join("py.exe"));
    let h = win(&[
        ("PATH", &format!("C:\\nowhere;{}", s(&launcher_dir))),
        ("PATHEXT", ".COM;.EXE"),
    ]);
    let script = AppLaunch {
        script: Some("main.py"),
        ..app(tmp.path())
    };
    let launch = resolve_launch(&script, &h).unwrap();
    assert_eq!(launch.argv, [s(&py), "-3".into(), "main.py".into()]);
    let env = launch.python.expect("an environment");
    assert_eq!(env.rule, Rule::PyLauncher(py.clone()));
    assert!(env.rule.to_string().contains("py launcher"), "{}", env.rule);
    assert!(launch.is_python);

    // `module` and a `python …` command get the same two words.
    let module = AppLaunch {
        module: Some("http.server"),
        ..app(tmp.path())
    };
    let argv = resolve_launch(&module, &h).unwrap().argv;
    assert_eq!(
        argv,
        [s(&py), "-3".into(), "-m".into(), "http.server".into()]
    );
    let words = strings(&["python", "-u", "main.py"]);
    let command = AppLaunch {
        command: Some(&words),
        ..app(tmp.path())
    };
    let argv = resolve_launch(&command, &h).unwrap().argv;
    assert_eq!(argv, [s(&py), "-3".into(), "-u".into(), "main.py".into()]);

    // A `python` on PATH wins over the launcher.
    let python = exe(&tmp.path().join("Python312").join("python.exe"));
    let both = win(&[(
        "PATH",
        &format!("{};{}", s(&launcher_dir), s(python.parent().unwrap())),
    )]);
    assert_eq!(
        resolve_launch(&script, &both).unwrap().argv,
        [s(&python), "main.py".to_string()]
    );

    // Neither: the error names both places.
    let nothing = win(&[("PATH", "C:\\nowhere")]);
    let e = err(resolve_launch(&script, &nothing));
    assert!(e.contains("python on PATH"), "{e}");
    assert!(e.contains("py launcher on PATH"), "{e}");
    assert!(e.contains("py.exe"), "{e}");

    // Unix has no launcher: a `py` on PATH is not used.
    let unix = host(&[("PATH", &s(&launcher_dir))], None);
    assert!(resolve_launch(&script, &unix).is_err());
}

#[test]
fn an_environment_value_with_a_backslash_or_a_drive_letter_is_a_path() {
    for path in [
        "C:\\envs\\ml",
        "c:envs",
        "D:/x/.venv",
        ".\\venv",
        "..\\envs\\ml",
        "\\\\server\\envs\\ml",
        "envs/ml",
        ".",
        "..",
    ] {
        assert!(is_path_like(path), "{path}");
    }
    for name in ["ml", "base", "my-env.2", "python3.11", ""] {
        assert!(!is_path_like(name), "{name}");
    }
    // Resolved as a prefix (not a conda env name) and as an interpreter file (not a PATH name).
    let h = win(&[("PATH", "C:\\nowhere")]);
    let e = err(resolve_declared(
        "ml",
        &EnvDecl::Conda("C:\\envs\\ml".into()),
        &h,
    ));
    assert!(e.contains("is not a conda environment"), "{e}");
    let e = err(resolve_declared(
        "old",
        &EnvDecl::Python("C:\\Python312\\python.exe".into()),
        &h,
    ));
    assert!(e.contains("looked for C:\\Python312\\python.exe"), "{e}");
}

#[test]
fn scripts_run_by_their_extension_on_windows() {
    use ScriptRunner::*;
    let w = Layout::Windows;
    assert_eq!(w.script_runner("deploy.ps1"), Some(PowerShell));
    assert_eq!(w.script_runner("tools\\Deploy.PS1"), Some(PowerShell));
    assert_eq!(w.script_runner("run.bat"), Some(Cmd));
    assert_eq!(w.script_runner("C:\\x\\run.CMD"), Some(Cmd));
    assert_eq!(w.script_runner("main.py"), Some(Python));
    assert_eq!(w.script_runner("app.exe"), None);
    assert_eq!(w.script_runner("gunicorn"), None);
    assert_eq!(Layout::Unix.script_runner("deploy.ps1"), None);
    assert_eq!(Layout::Unix.script_runner("run.bat"), None);

    let tmp = TempDir::new().unwrap();
    let ps_dir = tmp.path().join("WindowsPowerShell");
    let powershell = exe(&ps_dir.join("powershell.exe"));
    let python = exe(&tmp.path().join("Python312").join("python.exe"));
    let path = format!("{};{}", s(&ps_dir), s(python.parent().unwrap()));
    let h = win(&[("PATH", path.as_str()), ("PATHEXT", ".COM;.EXE;.BAT;.CMD")]);
    let ps = |rest: &[&str]| {
        let mut v = vec![
            s(&powershell),
            "-NoProfile".into(),
            "-ExecutionPolicy".into(),
            "Bypass".into(),
            "-File".into(),
        ];
        v.extend(rest.iter().map(|w| w.to_string()));
        v
    };
    let run = |command: &[&str], script: Option<&str>| {
        let words = strings(command);
        let a = AppLaunch {
            command: script.is_none().then_some(words.as_slice()),
            script,
            args: &[],
            ..app(tmp.path())
        };
        resolve_launch(&a, &h).unwrap()
    };

    // `.ps1`: PowerShell's `-File`, the script's words after it, as a command or a `script`.
    let l = run(&["deploy.ps1", "-Name", "a b"], None);
    assert_eq!(l.argv, ps(&["deploy.ps1", "-Name", "a b"]));
    assert!(l.python.is_none(), "not a Python app");
    assert_eq!(
        run(&[], Some("tools\\deploy.ps1")).argv,
        ps(&["tools\\deploy.ps1"])
    );
    // `.py` as a command: through the app's python (no `#!` on Windows).
    let l = run(&["serve.py", "--port", "8000"], None);
    assert_eq!(
        l.argv,
        [
            s(&python),
            "serve.py".into(),
            "--port".into(),
            "8000".into()
        ]
    );
    assert!(l.is_python);
    // `.bat`/`.cmd` stay as they are: the spawn runs them through `cmd.exe /c`.
    let bat = exe(&tmp.path().join("run.bat"));
    let l = run(&[&s(&bat), "x&y"], None);
    assert_eq!(l.argv, [s(&bat), "x&y".to_string()]);

    // The same command on Unix runs the file itself.
    let unix = host(&[("PATH", "/usr/bin")], None);
    let words = strings(&["./deploy.ps1"]);
    let a = AppLaunch {
        command: Some(&words),
        ..app(tmp.path())
    };
    assert_eq!(
        resolve_launch(&a, &unix).unwrap().argv,
        [s(&tmp.path().join("deploy.ps1"))]
    );
}
