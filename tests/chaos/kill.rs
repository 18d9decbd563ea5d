//! Supervisor SIGKILL, with 50 apps and in the middle of a roll. What happens is decided (and
//! documented in docs/reliability.md): every app dies with the supervisor (`PR_SET_PDEATHSIG`),
//! and the next `up` starts exactly one process per instance.

use std::time::Duration;

use crate::support::*;

/// The project's app processes (the marker is in the supervisor's environment too, and in the
/// CLI's: those are left out).
fn apps(p: &Project) -> Vec<i32> {
    marked_processes(&p.marker())
        .into_iter()
        .filter(|pid| !cmdline(*pid).contains(env!("CARGO_BIN_EXE_pypm")))
        .collect()
}

/// Waits until exactly `n` processes carry the project's marker, and says how many there were.
fn settle_at(p: &Project, n: usize, within: Duration) -> usize {
    let mut last = 0;
    wait_until(within, || {
        last = apps(p).len();
        last == n
    });
    last
}

fn sigkill_supervisor(p: &Project) {
    let sup = p.supervisor_pid().expect("pypm.pid");
    kill(sup, libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(5), || supervisor_gone(p, sup)),
        "the supervisor survived SIGKILL"
    );
}

#[test]
fn after_sigkill_with_50_apps_the_next_up_runs_one_process_per_instance() {
    let p = Project::new();
    let mut file = String::new();
    for i in 0..50 {
        file.push_str(&format!("[apps.a{i:02}]\ncommand = \"sleep 1000\"\n\n"));
    }
    p.write_config(&file);
    p.up_d();
    assert_eq!(settle_at(&p, 50, Duration::from_secs(10)), 50);
    let before: Vec<i32> = apps(&p);
    sigkill_supervisor(&p);
    let left = settle_at(&p, 0, Duration::from_secs(5));
    assert_eq!(left, 0, "{left} apps outlived the supervisor's SIGKILL");

    p.up_d();
    let now = settle_at(&p, 50, Duration::from_secs(10));
    assert_eq!(now, 50, "after the next up");
    assert!(
        apps(&p).iter().all(|pid| !before.contains(pid)),
        "an old process is still counted"
    );
    // Still exactly one each a moment later (nothing adopted late, nothing doubled).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(apps(&p).len(), 50);
    println!(
        "chaos: supervisor SIGKILL with 50 apps: 0 survivors, next up 50 processes for 50 instances"
    );
}

#[test]
fn after_sigkill_mid_roll_the_next_up_runs_one_process_per_instance() {
    let p = Project::new();
    p.write_config(
        r#"
[apps.web]
command = "sh -c 'sleep 1; echo up; exec sleep 1000'"
instances = 3

[apps.web.ready]
log = "^up$"
interval = "100ms"
"#,
    );
    p.up_d();
    assert_eq!(settle_at(&p, 3, Duration::from_secs(15)), 3);
    let old = apps(&p);
    // A roll: each new instance takes a second to become ready, so the roll lasts ~3 s.
    let mut roll = p
        .command(&["restart", "web"])
        .spawn()
        .expect("pypm restart");
    assert!(
        wait_until(Duration::from_secs(10), || apps(&p).len() > 3),
        "the roll did not start a new instance"
    );
    sigkill_supervisor(&p);
    let _ = wait_child(&mut roll, Duration::from_secs(10));
    assert_eq!(
        settle_at(&p, 0, Duration::from_secs(5)),
        0,
        "processes outlived the SIGKILL mid-roll"
    );

    p.up_d();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let rows = p.status_json()["instances"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            rows.len() == 3 && rows.iter().all(|r| r["state"] == "running")
        }),
        "not 3 running instances after the next up: {}",
        p.status_json()
    );
    assert_eq!(
        settle_at(&p, 3, Duration::from_secs(10)),
        3,
        "one process per instance"
    );
    assert!(apps(&p).iter().all(|pid| !old.contains(pid)));
    println!(
        "chaos: supervisor SIGKILL mid-roll (3 instances, 1 s to ready): 0 survivors, next up 3 processes for 3 instances"
    );
}
