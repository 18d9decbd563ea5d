//! Rules on single values and between keys: probe timings, interpreters, listen addresses,
//! host:port values and schedules, and that every error is reported at once.

use super::*;

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

// Unix permission bits decide "executable".
#[cfg(unix)]
#[test]
fn interpreter_is_a_known_name_or_an_existing_path() {
    use crate::process::ext::fs::PermissionsExt;
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

/// A `conda` or `python` value written the Windows way (backslashes, a drive letter, `.\`) is a
/// path, read relative to the file's directory like a `/` one; a bare word stays a name.
#[test]
fn windows_style_environment_paths_are_paths_not_names() {
    let c = ok(r#"
[environments.drive]
conda = 'C:\envs\ml'
[environments.dot]
conda = '.\envs\ml'
[environments.forward]
conda = 'C:/envs/ml'
[environments.name]
conda = "ml"
[environments.venv]
venv = 'D:\x\.venv'
[environments.interp]
python = 'C:\Python312\python.exe'
[environments.byname]
python = "python3.11"
"#);
    let dir = std::env::temp_dir();
    let path = |s: &str| dir.join(s).display().to_string();
    let decl = |n: &str| c.environments[n].decl.clone();
    assert_eq!(decl("drive"), EnvDecl::Conda(path("C:\\envs\\ml")));
    assert_eq!(decl("dot"), EnvDecl::Conda(path(".\\envs\\ml")));
    assert_eq!(decl("forward"), EnvDecl::Conda(path("C:/envs/ml")));
    assert_eq!(decl("name"), EnvDecl::Conda("ml".into()));
    assert_eq!(decl("venv"), EnvDecl::Venv(dir.join("D:\\x\\.venv")));
    assert_eq!(
        decl("interp"),
        EnvDecl::Python(path("C:\\Python312\\python.exe"))
    );
    assert_eq!(decl("byname"), EnvDecl::Python("python3.11".into()));
}
