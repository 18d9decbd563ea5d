//! Defaults (SPEC §8): what the reader gives for keys left out, and that the registry states the
//! same values (its defaults are what the schema and docs show).

use super::*;

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

/// The file with `key = DEFAULT` written out for every key the registry gives a default reads the
/// same as the file without it, so app.rs and the registry cannot drift apart.
#[test]
fn registry_defaults_are_the_readers_defaults() {
    // A script (so `args` may be set) and a `restart_schedule` (so the schedule keys may).
    let file = |pypm: &str, app: &str, ready: &str, health: &str| {
        format!(
            "[pypm]\n{pypm}[apps.a]\nscript = \"app.py\"\nrestart_schedule = \"@daily\"\n{app}\
             [apps.a.ready]\ntcp = \"127.0.0.1:1\"\n{ready}[apps.a.health]\ntcp = \"127.0.0.1:1\"\n{health}"
        )
    };
    let app_of = |c: &Config| App {
        spans: AppSpans::default(),
        ..(*c.apps["a"]).clone()
    };
    let base = ok(&file("", "", "", ""));
    let tables = [
        ("pypm", keys::PYPM_KEYS),
        ("app", keys::APP_KEYS),
        ("ready", keys::READY_KEYS),
        ("health", keys::HEALTH_KEYS),
    ];
    let mut checked = 0;
    for (table, keys) in tables {
        for k in keys {
            let Some(default) = k.default else { continue };
            let line = format!("{} = {}\n", k.name, toml_literal(default));
            let src = match table {
                "pypm" => file(&line, "", "", ""),
                "app" => file("", &line, "", ""),
                "ready" => file("", "", &line, ""),
                _ => file("", "", "", &line),
            };
            let c = ok(&src);
            assert_eq!(c.pypm, base.pypm, "{table}.{}", k.name);
            assert_eq!(app_of(&c), app_of(&base), "{table}.{}", k.name);
            checked += 1;
        }
    }
    // The registry states 32 defaults today; fewer means the loop lost a table.
    assert!(checked >= 32, "{checked}");
}

/// A registry default (a JSON literal) as a TOML value.
fn toml_literal(json: &str) -> String {
    let v: toml::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    v.to_string()
}
