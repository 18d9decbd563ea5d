//! SPEC §6: `memory_max` and `cpu_max` kernel-enforced through a cgroup where pypm may create one
//! (root here). Where it cannot, these tests say so and stop: the sampling fallback is tested in
//! `restarts.rs`.

use std::time::Duration;

use crate::support::*;

/// Whether the supervisor of `p` enforces `app`'s limits with a cgroup (per `inspect`).
fn kernel_enforced(p: &Project, app: &str, key: &str) -> bool {
    let text = p.pypm_ok(&["inspect", app], 0);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_default()
        .to_string();
    if line.contains("kernel-enforced by cgroup") {
        return true;
    }
    eprintln!("no cgroup can be created here ({line}); skipping the kernel-enforced checks");
    false
}

fn cgroup_dirs_of(supervisor: i32) -> Vec<String> {
    let name = format!("pypm-{supervisor}");
    let mut found = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()) {
                if e.file_name().to_str() == Some(name.as_str()) {
                    found.push(e.path().display().to_string());
                } else if d.components().count() < 8 {
                    stack.push(e.path());
                }
            }
        }
    }
    found
}

#[test]
fn memory_max_in_a_cgroup_ooms_the_hog_and_restarts_it_with_a_memory_limit_event() {
    let p = Project::new();
    let hog = p.write_script(
        "hog.py",
        "import time\nb = []\nfor i in range(60):\n    b.append(bytearray(5 << 20))\n    time.sleep(0.02)\ntime.sleep(1000)\n",
    );
    p.write_config(&format!(
        "[apps.hog]\ncommand = [\"python3\", {}]\nmemory_max = \"40M\"\nmax_restarts = 1\nrestart_delay = \"100ms\"\n\n[apps.calm]\ncommand = \"sleep 300\"\n",
        serde_json::to_string(&hog).unwrap()
    ));
    p.up_d();
    if !kernel_enforced(&p, "hog", "memory_max") {
        p.pypm_ok(&["down"], 0);
        return;
    }
    let supervisor = p.supervisor_pid().expect("supervisor pid");
    // Restarted once, then failed: two OOM kills, each reported.
    let row = p.wait_state("hog", "failed", Duration::from_secs(30));
    assert!(
        row["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("memory limit"),
        "{row:#}"
    );
    assert_eq!(row["last_exit"]["signal"], "SIGKILL", "{row:#}");
    let events = p.events();
    let hits = events_of(&events, "memory_limit", "hog", Some(0));
    assert_eq!(hits.len(), 2, "{events:#?}");
    assert!(
        hits[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("OOM")
    );
    // The app without limits was never touched.
    assert_eq!(p.state_of("calm"), "running");
    assert!(!cgroup_dirs_of(supervisor).is_empty());
    p.pypm_ok(&["down"], 0);
    assert!(
        wait_until(Duration::from_secs(5), || cgroup_dirs_of(supervisor)
            .is_empty()),
        "cgroups left behind: {:?}",
        cgroup_dirs_of(supervisor)
    );
}

#[test]
fn cpu_max_in_a_cgroup_caps_a_busy_loop() {
    let p = Project::new();
    let spin = p.write_script("spin.py", "while True:\n    pass\n");
    p.write_config(&format!(
        "[apps.spin]\ncommand = [\"python3\", {}]\ncpu_max = 0.2\n",
        serde_json::to_string(&spin).unwrap()
    ));
    p.up_d();
    if !kernel_enforced(&p, "spin", "cpu_max") {
        p.pypm_ok(&["down"], 0);
        return;
    }
    let pid = p.pid_of("spin").expect("spin runs");
    let ticks = |pid: i32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = after.split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (t(11) + t(12)) / 100.0 // utime + stime, in seconds (USER_HZ = 100)
    };
    let c0 = ticks(pid);
    let t0 = std::time::Instant::now();
    // A measuring window, not a wait: the CPU used over it is the figure.
    std::thread::sleep(Duration::from_secs(2));
    let used = ticks(pid) - c0;
    let wall = t0.elapsed().as_secs_f64();
    // 0.2 cores over ~2 s is 0.4 s of CPU; uncapped it would be close to 2 s.
    assert!(
        used < 0.35 * wall,
        "the busy loop used {used:.2} s of CPU in {wall:.2} s"
    );
    p.pypm_ok(&["down"], 0);
}
