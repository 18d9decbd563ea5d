//! Load that goes on: a crash loop (the supervisor flat), a log storm across rotations (no line
//! lost), a reload storm (the last valid file runs, exactly).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::{pick, vitals};

/// Children of `pid` that are zombies (exited, not yet reaped).
fn zombies_of(pid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or_default();
            let mut f = after.split_whitespace();
            let state = f.next();
            let ppid = f.next().and_then(|p| p.parse::<i32>().ok());
            state == Some("Z") && ppid == Some(pid)
        })
        .count()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_crash_loop_leaves_the_supervisor_flat() {
    let soak = pick(Duration::from_secs(20), Duration::from_secs(600));
    let p = Project::new();
    let crash = p.sh("crash", "exit 1\n");
    p.write_config(&format!(
        "[pypm]\nevents_max_size = \"64K\"\nevents_max_files = 2\n\n[apps.crash]\ncommand = {crash}\nrestart_delay = \"10ms\"\nrestart_delay_max = \"20ms\"\nmax_restarts = 100000\n"
    ));
    let _ = p.pypm(&["up", "-d", "--wait", "1s"]);
    let mut pid = None;
    wait_until(Duration::from_secs(10), || {
        pid = p.supervisor_pid();
        pid.is_some()
    });
    let pid = pid.expect("supervisor pid");
    std::thread::sleep(Duration::from_secs(3)); // warm-up: buffers and files reach their size
    let (threads0, fds0, rss0) = vitals(pid);
    let began = Instant::now();
    let restarts = |p: &Project| p.row("crash")["restarts"].as_u64().unwrap_or(0);
    let r0 = restarts(&p);
    let mut samples = Vec::new();
    let (mut zombies, mut state_bytes) = (0usize, 0u64);
    while began.elapsed() < soak {
        std::thread::sleep(Duration::from_millis(500));
        samples.push(vitals(pid));
        zombies = zombies.max(zombies_of(pid));
        state_bytes = state_bytes.max(dir_bytes(&p.state_dir()));
    }
    let r1 = restarts(&p);
    let rate = (r1 - r0) as f64 / began.elapsed().as_secs_f64();
    p.pypm_ok(&["down"], 0);
    assert!(r1 - r0 > 100, "only {} restarts in {soak:?}", r1 - r0);
    // A sample can land in the middle of a spawn (its pipes open, a thread busy): a leak shows
    // as the floor rising, so the last samples' lowest is compared with the warm-up figure.
    let tail = &samples[samples.len().saturating_sub(4)..];
    let floor = |f: fn(&(usize, usize, u64)) -> u64| tail.iter().map(f).min().unwrap_or(0);
    let peak = |f: fn(&(usize, usize, u64)) -> u64| samples.iter().map(f).max().unwrap_or(0);
    let (threads1, fds1, rss1) = (floor(|v| v.0 as u64), floor(|v| v.1 as u64), floor(|v| v.2));
    assert!(
        threads1 <= threads0 as u64 + 1,
        "threads {threads0} -> {threads1}"
    );
    assert!(fds1 <= fds0 as u64 + 2, "fds {fds0} -> {fds1}");
    assert!(rss1 <= rss0 + 2048, "RSS {rss0} -> {rss1} KiB");
    assert!(
        peak(|v| v.1 as u64) <= fds0 as u64 + 16,
        "fds peaked at {}",
        peak(|v| v.1 as u64)
    );
    assert!(zombies <= 1, "{zombies} zombies at once");
    // events.jsonl and pypm.log: at most 3 files of 64K each, plus state.json and the token.
    assert!(
        state_bytes <= 512 * 1024,
        "state_dir grew to {state_bytes} bytes"
    );
    let worst = (threads1, fds1, rss1, zombies, state_bytes);
    println!(
        "chaos: crash loop {:.0} s at {rate:.0} restarts/s: threads {threads0} -> {}, fds {fds0} -> {}, RSS {rss0} -> {} KiB, zombies at most {}, state_dir at most {} KiB",
        soak.as_secs_f64(),
        worst.0,
        worst.1,
        worst.2,
        worst.3,
        worst.4 / 1024
    );
}

#[test]
fn a_log_storm_across_rotations_loses_no_line() {
    let lines: u64 = pick(1_000_000, 20_000_000);
    let p = Project::new();
    let count = p.write_script(
        "count.py",
        &format!(
            "import sys\nw = sys.stdout.write\nfor i in range({lines}):\n    w('%d\\n' % i)\nsys.stdout.flush()\n"
        ),
    );
    // Enough files kept that every line is still on disk at the end.
    p.write_config(&format!(
        "[apps.count]\ncommand = \"python3 {count}\"\nrestart = \"never\"\nlog_max_size = \"1M\"\nlog_max_files = 1000\n"
    ));
    let began = Instant::now();
    p.up_d();
    let last = format!("{}\n", lines - 1);
    let done = wait_until(
        pick(Duration::from_secs(120), Duration::from_secs(1800)),
        || {
            std::fs::read_to_string(p.log_dir().join("count.out.log"))
                .is_ok_and(|t| t.ends_with(&last))
        },
    );
    assert!(done, "the last line never arrived");
    let took = began.elapsed();
    p.pypm_ok(&["down"], 0);
    // Oldest first: count.out.log.N … count.out.log.1, count.out.log.
    let mut files: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(p.log_dir())
        .expect("log_dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = match name.strip_prefix("count.out.log") {
                Some("") => 0,
                Some(rest) => rest.strip_prefix('.')?.parse().ok()?,
                None => return None,
            };
            Some((n, e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut next = 0u64;
    for (_, f) in &files {
        let text = std::fs::read_to_string(f).expect("read log");
        for line in text.lines() {
            assert_eq!(
                line.parse::<u64>().ok(),
                Some(next),
                "in {}: expected {next}",
                f.display()
            );
            next += 1;
        }
    }
    assert_eq!(next, lines, "lines on disk");
    println!(
        "chaos: log storm {lines} numbered lines through {} rotations in {:.1} s: 0 lost, 0 reordered, 0 doubled",
        files.len() - 1,
        took.as_secs_f64()
    );
}

/// Version `k` of the reload storm's file: `k % 4 + 1` apps, each with `V = k` in its env.
fn version(k: usize) -> String {
    let mut s = String::new();
    for j in 0..k % 4 + 1 {
        s.push_str(&format!(
            "[apps.s{j}]\ncommand = \"sleep 1000\"\nenv = {{ V = \"{k}\" }}\n\n"
        ));
    }
    s
}

#[test]
fn after_a_reload_storm_the_last_valid_file_runs_exactly() {
    let (writes, over) = pick(
        (200usize, Duration::from_secs(10)),
        (500, Duration::from_secs(30)),
    );
    let p = Project::new();
    p.write_config(&version(0));
    p.up_d();
    let gap = over / writes as u32;
    let mut last_valid = 0;
    for k in 1..=writes {
        let text = if k % 10 == 0 {
            "[apps.broken\ncommand = ".to_string()
        } else {
            last_valid = k;
            version(k)
        };
        if k % 2 == 0 {
            p.write_config_by_rename(&text);
        } else {
            // In place: truncate, then write (a reader can see it empty or half written).
            p.write_config(&text);
        }
        std::thread::sleep(gap);
    }
    // The storm ends on a valid file either way (the last write, or the one before it).
    let want_apps = last_valid % 4 + 1;
    let want_v = last_valid.to_string();
    let settled = wait_until(Duration::from_secs(20), || {
        let pids = p.pids();
        pids.len() == want_apps
            && pids.iter().all(|(_, pid)| {
                pid.is_some_and(|pid| environ_of(pid, "V").as_deref() == Some(want_v.as_str()))
            })
    });
    assert!(
        settled,
        "expected {want_apps} apps with V={want_v}: {:?}",
        p.pids()
    );
    // One process per instance, no orphan: the marked processes are the apps and the supervisor.
    let sup = p.supervisor_pid().expect("supervisor pid");
    let mut seen: BTreeMap<i32, String> = BTreeMap::new();
    for pid in marked_processes(&p.marker()) {
        if pid != sup {
            seen.insert(pid, cmdline(pid));
        }
    }
    assert_eq!(seen.len(), want_apps, "processes: {seen:?}");
    let names: Vec<String> = p.pids().into_iter().map(|(n, _)| n).collect();
    let expected: Vec<String> = (0..want_apps).map(|j| format!("s{j}")).collect();
    assert_eq!(names, expected);
    let reloads = p
        .events()
        .iter()
        .filter(|e| e["event"] == "config_applied")
        .count();
    println!(
        "chaos: reload storm {writes} writes in {:.0} s (rename and in-place alternating, every 10th invalid): the last valid version (V={want_v}, {want_apps} apps) runs exactly, {} processes, {reloads} config_applied events",
        over.as_secs_f64(),
        seen.len()
    );
}

#[test]
fn down_writes_every_line_the_apps_had_written() {
    let (apps, lines) = (10usize, 50_000u64);
    let p = Project::new();
    let burst = p.write_script(
        "burst.py",
        &format!(
            "import os, sys, time\nw = sys.stdout.write\nfor i in range({lines}):\n    w('%d\\n' % i)\nsys.stdout.flush()\nopen(sys.argv[1], 'w').close()\ntime.sleep(1000)\n"
        ),
    );
    let mut file = String::new();
    for i in 0..apps {
        let mark = p.path(&format!("done.{i}"));
        file.push_str(&format!(
            "[apps.b{i}]\ncommand = \"python3 {burst} {}\"\n\n",
            mark.display()
        ));
    }
    p.write_config(&file);
    p.up_d();
    // Each app has handed all its lines to its pipe (they may still be in the pipe or the pump).
    assert!(
        wait_until(Duration::from_secs(60), || (0..apps)
            .all(|i| p.path(&format!("done.{i}")).exists())),
        "the apps did not finish writing"
    );
    p.pypm_ok(&["down"], 0);
    let mut lost = 0u64;
    for i in 0..apps {
        let text =
            std::fs::read_to_string(p.log_dir().join(format!("b{i}.out.log"))).unwrap_or_default();
        let got = text.lines().count() as u64;
        assert!(
            text.lines()
                .enumerate()
                .all(|(n, l)| l.parse::<usize>().ok() == Some(n)),
            "b{i}: lines out of order"
        );
        lost += lines - got;
    }
    assert_eq!(lost, 0, "lines lost at down");
    println!(
        "chaos: down right after {apps} apps wrote {lines} lines each: {} lines on disk, 0 lost",
        apps as u64 * lines
    );
}
