//! Spawn failures leave no zombie. Its own test binary, without a reaper, so that only `spawn`
//! itself can have collected the failed children (and no other test's children are about).
// Real processes, signals and unix sockets: the Windows subset is tests/windows.
#![cfg(unix)]

use pypm::process::{SpawnSpec, spawn};

/// Children of this process, from /proc (zombies included).
fn children() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?;
            (ppid == me).then(|| e.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

#[test]
fn failed_spawns_leave_no_zombie() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("app.py");
    std::fs::write(&not_executable, "print('hi')\n").unwrap();
    let mut bad_cwd = SpawnSpec::new("/bin/true", &[]);
    bad_cwd.cwd = "/nope".into();
    for spec in [
        SpawnSpec::new("/nonexistent/app.py", &[]),
        SpawnSpec::new(&not_executable, &[]),
        bad_cwd,
    ] {
        assert!(spawn(&spec).is_err());
    }
    let pid = spawn(&SpawnSpec::new("/bin/true", &[])).unwrap().pid;
    // Only the successful child may remain (a zombie: there is no reaper in this binary).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while children() != [pid] {
        assert!(
            std::time::Instant::now() < deadline,
            "children: {:?}",
            children()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
