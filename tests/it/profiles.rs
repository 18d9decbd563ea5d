//! `include`, profiles and `extends` with real processes: `--profile` at `up`, kept by reloads and
//! saves, switched by `up -d`, previewed by `plan`; included files followed by the watcher.

use std::time::Duration;

use crate::support::*;

const FILE: &str = r#"
[apps.web]
command = WEB
env = { MODE = "dev" }

[apps.extra]
command = "sleep 300"

[profiles.production.apps.web]
instances = 2
env = { MODE = "prod" }

[profiles.production.apps.extra]
enabled = false

[profiles.staging.apps.web]
env = { MODE = "staging" }
"#;

#[test]
fn a_profile_applies_at_up_is_kept_by_reloads_and_is_switched_by_up_d() {
    let p = Project::new();
    let web = p.sh("web", "exec sleep 300\n");
    let text = FILE.replace("WEB", &web);
    p.write_config(&text);
    p.pypm_ok(&["--profile", "production", "up", "-d", "--wait", "20s"], 0);

    let s = p.status_json();
    assert_eq!(s["profiles"], serde_json::json!(["production"]), "{s:#}");
    let names: Vec<&str> = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["web.0", "web.1"],
        "2 instances, `extra` removed: {s:#}"
    );
    let pid = p.pid_of("web.0").expect("web.0 runs");
    assert_eq!(environ_of(pid, "MODE").as_deref(), Some("prod"));
    let state = std::fs::read_to_string(p.state_dir().join("state.json")).expect("state.json");
    assert!(state.contains("\"profiles\""), "{state}");
    assert!(
        p.pypm_ok(&["status"], 0)
            .starts_with("profiles: production\n")
    );

    // A save without --profile: the supervisor still applies production.
    p.write_config(&format!("{text}\n# a comment\n"));
    p.pypm_ok(&["reload"], 0);
    assert_eq!(
        p.status_json()["instances"].as_array().map(Vec::len),
        Some(2)
    );

    // `plan --profile staging` previews the switch (exit 2: changes) without making it.
    let out = p.pypm(&["--profile", "staging", "plan", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan --json");
    let verbs: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["app"].as_str().unwrap_or(""),
                c["verb"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(verbs.contains(&"web restart".to_string()), "{plan:#}");
    assert!(verbs.contains(&"extra start".to_string()), "{plan:#}");
    assert_eq!(
        p.status_json()["profiles"],
        serde_json::json!(["production"])
    );

    // Switching is `up -d` with the other profile: applied as a reload.
    let out = p.pypm_ok(&["--profile", "staging", "up", "-d", "--wait", "20s"], 0);
    assert!(out.contains("applied"), "{out}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = p.status_json();
            s["profiles"] == serde_json::json!(["staging"])
                && p.state_of("extra") == "running"
                && p.pid_of("web")
                    .is_some_and(|pid| environ_of(pid, "MODE").as_deref() == Some("staging"))
        }),
        "switched to staging: {:#}",
        p.status_json()
    );
    p.pypm_ok(&["down"], 0);
}

#[test]
fn an_included_file_is_merged_checked_with_its_own_positions_and_watched() {
    let p = Project::new();
    let worker = p.sh("worker", "exec sleep 300\n");
    std::fs::create_dir_all(p.path("services")).expect("mkdir");
    let svc = |mode: &str| {
        format!(
            "[apps.worker]\ncommand = {worker}\nenv = {{ MODE = \"{mode}\" }}\n\n[apps.second]\nextends = \"worker\"\n"
        )
    };
    std::fs::write(p.path("services/worker.toml"), svc("one")).expect("write");
    p.write_config("include = [\"services/*.toml\"]\n\n[apps.web]\ncommand = \"sleep 300\"\n");
    let out = p.pypm_ok(&["check"], 0);
    assert!(out.contains("(3 apps)"), "{out}");
    p.up_d();
    let pid = p.pid_of("worker").expect("worker runs");
    assert_eq!(environ_of(pid, "MODE").as_deref(), Some("one"));
    assert!(
        p.pid_of("second").is_some(),
        "extends gave `second` the worker's command"
    );

    // Editing the included file is a save of the file: the watcher reloads, the app rolls.
    std::fs::write(p.path("services/worker.toml"), svc("two")).expect("write");
    let new = p.wait_new_pid("worker", pid, Duration::from_secs(20));
    assert_eq!(environ_of(new, "MODE").as_deref(), Some("two"));

    // A mistake in the included file is reported there.
    std::fs::write(
        p.path("services/worker.toml"),
        "[apps.worker]\ncomand = \"x\"\n",
    )
    .expect("write");
    let out = p.pypm(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--> services/worker.toml:2:1"), "{err}");
    p.pypm_ok(&["down"], 0);
}
