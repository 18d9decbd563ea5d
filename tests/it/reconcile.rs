//! Hot reload by saving files (no `pypm reload`): rename-style saves, quick successive saves,
//! env_file edits, `revision`, `enabled = false`, `watch_config = false`, invalid files, and `watch`
//! globs. SIGHUP and reverse stop order are covered in `reload.rs` and `stop.rs`.

use std::fs;
use std::time::Duration;

use crate::basics::IDLE;
use crate::support::*;

/// Longer than the 100 ms debounce plus a loaded machine's scheduling slack: a save not applied by
/// then is not going to be. The only fixed sleeps here, each proving that something does NOT
/// happen (a change applied); what does happen is waited for with a deadline.
const QUIET: Duration = Duration::from_millis(800);
const APPLY: Duration = Duration::from_secs(10);

#[test]
fn a_rename_style_save_applies_and_of_two_quick_saves_the_last_wins() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    let b = p.sh("b", IDLE);
    let c = p.sh("c", IDLE);
    let base = format!("[apps.a]\ncommand = {a}\n");
    p.write_config(&base);
    p.up_d();
    let a_pid = p.pid_of("a").unwrap();

    // Saved by rename: the watch must follow the new inode, twice in a row.
    p.write_config_by_rename(&format!(
        "{base}\n[apps.b]\ncommand = {b}\nenv = {{ X = \"1\" }}\n"
    ));
    p.wait_state("b", "running", APPLY);
    let b_pid = p.pid_of("b").unwrap();
    assert_eq!(environ_of(b_pid, "X").as_deref(), Some("1"));

    // Two saves in quick succession: the first adds `c`, the second drops it again.
    p.write_config_by_rename(&format!(
        "{base}\n[apps.b]\ncommand = {b}\nenv = {{ X = \"2\" }}\n\n[apps.c]\ncommand = {c}\n"
    ));
    p.write_config_by_rename(&format!(
        "{base}\n[apps.b]\ncommand = {b}\nenv = {{ X = \"3\" }}\n"
    ));
    let new_b = p.wait_new_pid("b", b_pid, APPLY);
    // The roll may pass through X=2 only if the saves were not coalesced; the end state is X=3.
    let settled = wait_until(APPLY, || {
        p.pid_of("b")
            .is_some_and(|pid| environ_of(pid, "X").as_deref() == Some("3"))
    });
    assert!(
        settled,
        "the last save did not win: b pid {new_b} X={:?}; {:#}",
        environ_of(new_b, "X"),
        p.status_json()
    );
    // The overwritten save is never applied: an absence, so a sleep.
    std::thread::sleep(QUIET);
    assert!(
        p.pids().iter().all(|(n, _)| n != "c"),
        "`c` from the overwritten save is still declared: {:#}",
        p.status_json()
    );
    assert!(p.procs_with("c.sh").is_empty(), "`c` runs");
    assert!(
        events_of(&p.events(), "started", "c", None).is_empty(),
        "two saves 1 ms apart were not debounced into one: `c` was started"
    );
    assert_eq!(p.pid_of("a"), Some(a_pid), "`a` was touched");

    // A file briefly missing or empty mid-save is not applied as "no apps".
    let pids = p.pids();
    // The supervisor says when it declines one (in its log): waited for, then nothing changed.
    let declined = |n: usize| {
        wait_for_showing(
            &format!("the supervisor to decline incomplete file #{n}"),
            APPLY,
            || {
                let log = fs::read_to_string(p.state_dir().join("pypm.log")).unwrap_or_default();
                (log.matches("is missing or empty (mid-save?)").count() >= n).then_some(())
            },
            // Not the status: `pypm status` needs the file.
            || p.supervisor_log_tail(),
        )
    };
    fs::remove_file(&p.config).unwrap();
    declined(1);
    fs::write(&p.config, "").unwrap();
    declined(2);
    assert_eq!(p.pids(), pids, "a missing or empty file was applied");
    for pid in pids.iter().filter_map(|(_, pid)| *pid) {
        assert!(alive(pid), "pid {pid} was stopped");
    }
}

#[test]
fn an_env_file_edit_restarts_only_its_app() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    let b = p.sh("b", IDLE);
    let c = p.sh("c", IDLE);
    fs::write(p.path("a.env"), "COLOR=red\n").unwrap();
    fs::write(p.path("b.env"), "COLOR=blue\n").unwrap();
    p.write_config(&format!(
        "[apps.a]\ncommand = {a}\nenv_file = \"a.env\"\n\n\
         [apps.b]\ncommand = {b}\nenv_file = \"b.env\"\n\n[apps.c]\ncommand = {c}\n"
    ));
    p.up_d();
    let (a_pid, b_pid, c_pid) = (
        p.pid_of("a").unwrap(),
        p.pid_of("b").unwrap(),
        p.pid_of("c").unwrap(),
    );
    assert_eq!(environ_of(a_pid, "COLOR").as_deref(), Some("red"));

    fs::write(p.path("a.env"), "COLOR=green\n").unwrap();
    let new_a = p.wait_new_pid("a", a_pid, APPLY);
    assert_eq!(environ_of(new_a, "COLOR").as_deref(), Some("green"));
    p.assert_pid_kept("b", b_pid, QUIET);
    assert_eq!(p.pid_of("c"), Some(c_pid), "`c` was touched");
    assert_eq!(p.pid_of("a"), Some(new_a), "`a` was restarted twice");
}

#[test]
fn a_revision_change_restarts_only_that_app() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    let b = p.sh("b", IDLE);
    let conf = |rev: &str| {
        format!(
            "[apps.a]\ncommand = {a}\nrevision = \"{rev}\"\n\n\
             [apps.b]\ncommand = {b}\nrevision = \"same\"\n"
        )
    };
    p.write_config(&conf("1"));
    p.up_d();
    let (a_pid, b_pid) = (p.pid_of("a").unwrap(), p.pid_of("b").unwrap());
    p.write_config(&conf("2"));
    p.wait_new_pid("a", a_pid, APPLY);
    p.assert_pid_kept("b", b_pid, QUIET);
}

#[test]
fn enabled_false_stops_only_that_app() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    let b = p.sh("b", IDLE);
    let conf = |enabled: bool| {
        format!("[apps.a]\ncommand = {a}\nenabled = {enabled}\n\n[apps.b]\ncommand = {b}\n")
    };
    p.write_config(&conf(true));
    p.up_d();
    let (a_pid, b_pid) = (p.pid_of("a").unwrap(), p.pid_of("b").unwrap());
    p.write_config(&conf(false));
    let row = p.wait_state("a", "stopped", APPLY);
    assert_eq!(row["pid"], serde_json::Value::Null, "{row:#}");
    assert!(
        wait_until(Duration::from_secs(5), || !alive(a_pid)),
        "`a` still runs"
    );
    p.assert_pid_kept("b", b_pid, QUIET);
    assert_eq!(p.state_of("a"), "stopped", "a disabled app came back");
}

#[test]
fn with_watch_config_false_a_save_changes_nothing_until_reload() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    let b = p.sh("b", IDLE);
    let head = "[pypm]\nwatch_config = false\n\n";
    p.write_config(&format!(
        "{head}[apps.a]\ncommand = {a}\nenv = {{ V = \"1\" }}\n"
    ));
    p.up_d();
    let a_pid = p.pid_of("a").unwrap();
    p.write_config(&format!(
        "{head}[apps.a]\ncommand = {a}\nenv = {{ V = \"2\" }}\n\n[apps.b]\ncommand = {b}\n"
    ));
    p.assert_pid_kept("a", a_pid, QUIET);
    assert!(
        p.pids().iter().all(|(n, _)| n != "b"),
        "a save was applied with watch_config = false: {:#}",
        p.status_json()
    );
    p.pypm_ok(&["reload"], 0);
    p.wait_state("b", "running", APPLY);
    let new_a = p.wait_new_pid("a", a_pid, APPLY);
    assert_eq!(environ_of(new_a, "V").as_deref(), Some("2"));
}

#[test]
fn saving_an_invalid_file_keeps_every_pid_and_shows_the_error_until_fixed() {
    let p = Project::new();
    let a = p.sh("a", IDLE);
    let b = p.sh("b", IDLE);
    let good = format!("[apps.a]\ncommand = {a}\n\n[apps.b]\ncommand = {b}\n");
    p.write_config(&good);
    p.up_d();
    let pids = p.pids();

    // Line 5 has a key that does not exist; the app `b` is also gone in this version.
    let bad = format!("[apps.a]\ncommand = {a}\nenv = {{ V = \"2\" }}\n\nrestrat = \"always\"\n");
    p.write_config(&bad);
    let mut status = serde_json::Value::Null;
    let shown = wait_until(APPLY, || {
        status = p.status_json();
        !status["config_error"].is_null()
    });
    assert!(
        shown,
        "no config_error after saving an invalid file: {status:#}"
    );
    let err = &status["config_error"];
    assert_eq!(err["line"].as_u64(), Some(5), "{err:#}");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("restrat")),
        "{err:#}"
    );
    assert!(
        p.events().iter().any(|e| e["event"] == "config_error"),
        "no config_error event"
    );
    // Reported, and then nothing changes: an absence, so a sleep.
    std::thread::sleep(QUIET);
    assert_eq!(p.pids(), pids, "an invalid file changed what runs");
    for pid in pids.iter().filter_map(|(_, pid)| *pid) {
        assert!(alive(pid), "pid {pid} was stopped");
    }

    // A fixed file applies (here: `a` gets V=2, `b` is removed) and clears the error.
    let fixed = bad.replace("restrat = \"always\"\n", "");
    p.write_config(&fixed);
    let a_pid = pids.iter().find(|(n, _)| n == "a").unwrap().1.unwrap();
    let new_a = p.wait_new_pid("a", a_pid, APPLY);
    assert_eq!(environ_of(new_a, "V").as_deref(), Some("2"));
    assert!(
        wait_until(APPLY, || p.pids().iter().all(|(n, _)| n != "b")),
        "`b` was not removed: {:#}",
        p.status_json()
    );
    assert_eq!(p.status_json()["config_error"], serde_json::Value::Null);
}

#[test]
fn watch_globs_restart_on_matching_files_but_not_on_pyc_or_pycache() {
    let p = Project::new();
    fs::write(p.path("app.py"), "print('v1')\n").unwrap();
    fs::create_dir(p.path("__pycache__")).unwrap();
    let w = p.sh("w", IDLE);
    let other = p.sh("other", IDLE);
    p.write_config(&format!(
        "[apps.w]\ncommand = {w}\nwatch = [\"**/*.py\"]\n\n[apps.other]\ncommand = {other}\n"
    ));
    p.up_d();
    let (w_pid, other_pid) = (p.pid_of("w").unwrap(), p.pid_of("other").unwrap());

    fs::write(p.path("x.pyc"), "bytecode").unwrap();
    fs::write(p.path("__pycache__/y.py"), "print('cached')\n").unwrap();
    p.assert_pid_kept("w", w_pid, QUIET);

    fs::write(p.path("app.py"), "print('v2')\n").unwrap();
    p.wait_new_pid("w", w_pid, APPLY);
    assert_eq!(p.pid_of("other"), Some(other_pid), "`other` was restarted");
}
