//! Log files: separate streams, rotation without loss or duplication, long lines, partial lines,
//! and `pypm logs`.

use std::time::Duration;

use crate::basics::IDLE;
use crate::support::*;

fn read(p: &Project, name: &str) -> String {
    String::from_utf8_lossy(&std::fs::read(p.log_dir().join(name)).unwrap_or_default()).into_owned()
}

#[test]
fn rotation_keeps_lines_contiguous_and_keeps_log_max_files() {
    let p = Project::new();
    let count = p.sh(
        "count",
        &format!("seq 1 200000\necho count-err >&2\n{IDLE}"),
    );
    p.write_config(&format!(
        "[apps.count]\ncommand = {count}\nlog_max_size = \"256K\"\nlog_max_files = 3\n"
    ));
    p.up_d();
    let done = wait_until(Duration::from_secs(30), || {
        read(&p, "count.out.log").ends_with("200000\n")
    });
    assert!(done, "the last line never reached count.out.log");

    for n in 1..=3 {
        assert!(
            p.log_dir().join(format!("count.out.log.{n}")).exists(),
            "count.out.log.{n} missing"
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(p.log_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("count.out"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "count.out.log",
            "count.out.log.1",
            "count.out.log.2",
            "count.out.log.3"
        ],
        "exactly log_max_files rotated files"
    );
    let mut all = String::new();
    for name in [
        "count.out.log.3",
        "count.out.log.2",
        "count.out.log.1",
        "count.out.log",
    ] {
        let text = read(&p, name);
        assert!(
            text.len() as u64 <= 256 * 1024 + 16,
            "{name} is {} bytes, over log_max_size",
            text.len()
        );
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends mid-line"
        );
        all.push_str(&text);
    }
    let nums: Vec<u64> = all
        .lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("a line was split or mangled: {l:?}"))
        })
        .collect();
    assert_eq!(*nums.last().unwrap(), 200_000);
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "lines lost or doubled around {}", w[0]);
    }
    // Four files of at most 256 KiB cannot hold all 1.3 MB: rotation really dropped old files.
    assert!(nums[0] > 1, "nothing was rotated away");

    assert_eq!(read(&p, "count.err.log"), "count-err\n");
    assert!(
        !all.contains("count-err"),
        "stderr leaked into the stdout log"
    );
}

#[test]
fn long_lines_and_a_missing_final_newline_are_kept() {
    let p = Project::new();
    let long = p.sh(
        "long",
        "head -c 100000 /dev/zero | tr '\\0' x\necho\nprintf 'no-newline-at-end'\n",
    );
    p.write_config(&format!("[apps.long]\ncommand = {long}\nkind = \"task\"\n"));
    p.up_d();
    p.wait_state("long", "completed", Duration::from_secs(10));
    let ok = wait_until(Duration::from_secs(5), || {
        read(&p, "long.out.log").contains("no-newline-at-end")
    });
    let text = read(&p, "long.out.log");
    assert!(
        ok,
        "output without a final newline was lost: {} bytes",
        text.len()
    );
    assert_eq!(
        text.bytes().filter(|&b| b == b'x').count(),
        100_000,
        "bytes of the long line were lost or doubled"
    );
    let x_lines: Vec<&str> = text.lines().filter(|l| l.starts_with('x')).collect();
    assert!(
        x_lines.len() >= 2,
        "a 100000-byte line should be written in pieces of at most 64 KiB"
    );
    for l in &x_lines {
        assert!(l.len() <= 64 * 1024, "a piece of {} bytes", l.len());
        assert!(l.bytes().all(|b| b == b'x'), "a piece holds other bytes");
    }
}

#[test]
fn logs_prints_the_last_lines_of_each_stream() {
    let p = Project::new();
    let talk = p.sh(
        "talk",
        &format!("for i in $(seq 1 50); do echo out-$i; done\nfor i in 1 2 3; do echo err-$i >&2; done\n{IDLE}"),
    );
    p.write_config(&format!("[apps.talk]\ncommand = {talk}\n"));
    p.up_d();
    assert!(wait_until(Duration::from_secs(5), || {
        read(&p, "talk.out.log").contains("out-50\n")
            && read(&p, "talk.err.log").contains("err-3\n")
    }));

    let picked = |text: &str, prefix: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.find(prefix).map(|i| l[i..].trim().to_string()))
            .collect()
    };
    let both = p.pypm_ok(&["logs", "talk", "-n", "5"], 0);
    assert_eq!(
        picked(&both, "out-"),
        ["out-46", "out-47", "out-48", "out-49", "out-50"],
        "{both}"
    );
    assert_eq!(picked(&both, "err-"), ["err-1", "err-2", "err-3"], "{both}");

    let err = p.pypm_ok(&["logs", "talk", "-n", "2", "--err"], 0);
    assert_eq!(picked(&err, "err-"), ["err-2", "err-3"], "{err}");
    assert!(
        picked(&err, "out-").is_empty(),
        "--err printed stdout: {err}"
    );

    let out = p.pypm_ok(&["logs", "talk", "-n", "1", "--out"], 0);
    assert_eq!(picked(&out, "out-"), ["out-50"], "{out}");
    assert!(
        picked(&out, "err-").is_empty(),
        "--out printed stderr: {out}"
    );
}

/// A full disk stops nothing: the supervisor keeps running, reports it once (event and status),
/// and resumes writing — without losing a line — when space returns.
#[test]
fn a_full_disk_is_reported_once_and_writing_resumes() {
    let p = Project::new();
    let mnt = p.path("logs");
    let Some(_unmount) = tmpfs(&mnt, "4m") else {
        return;
    };
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 4 * 1024 * 1024 - 64 * 1024]).ok();
    let chatty = p.sh("chatty", &format!("seq 1 300000\n{IDLE}"));
    p.write_config(&format!(
        "[pypm]\nlog_dir = \"logs\"\n\n[apps.chatty]\ncommand = {chatty}\nlog_max_size = \"1G\"\n"
    ));
    p.up_d();
    wait_disk_full(&p, "chatty");
    assert_eq!(p.state_of("chatty"), "running");
    std::fs::remove_file(&filler).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(mnt.join("chatty.out.log"))
                .is_ok_and(|t| t.ends_with("\n300000\n"))
        }),
        "writing did not resume after space returned"
    );
    let text = std::fs::read_to_string(mnt.join("chatty.out.log")).unwrap();
    let expected: String = (1..=300_000).map(|i| format!("{i}\n")).collect();
    assert!(text == expected, "lines were lost or doubled");
    assert!(
        wait_until(Duration::from_secs(5), || p.row("chatty")["reason"]
            .is_null()),
        "the disk-full reason stayed after writing resumed: {:#}",
        p.status_json()
    );
    let full = p
        .events()
        .iter()
        .filter(|e| e["event"] == "log_error" && e["app"] == "chatty")
        .count();
    assert_eq!(full, 1, "reported once");
    p.pypm_ok(&["down"], 0);
}

#[test]
fn an_instance_kept_through_a_scale_across_one_writes_the_file_its_new_name_says() {
    let p = Project::new();
    let tick = p.sh(
        "tick",
        "n=0\nwhile :; do n=$((n+1)); echo \"tick-$PYPM_INSTANCE-$n\"; sleep 0.05; done\n",
    );
    let config = |instances: u32| {
        format!(
            "[pypm]\nwatch_config = false\n\n[apps.t]\ncommand = {tick}\ninstances = {instances}\n"
        )
    };
    p.write_config(&config(2));
    p.up_d();
    assert!(wait_until(Duration::from_secs(10), || read(
        &p,
        "t.0.out.log"
    )
    .contains("tick-0-")));
    let pid = p.pid_of("t.0").unwrap();

    p.write_config(&config(1));
    p.pypm_ok(&["reload"], 0);
    assert!(
        wait_until(Duration::from_secs(10), || read(&p, "t.out.log")
            .contains("tick-0-")),
        "instance 0 still writes only t.0.out.log"
    );
    assert_eq!(
        p.pid_of("t"),
        Some(pid),
        "scaling down restarted instance 0"
    );
    let out = p.pypm_ok(&["logs", "t", "-n", "3"], 0);
    assert!(out.contains("tick-0-"), "pypm logs t: {out}");

    let before = read(&p, "t.0.out.log").len();
    p.write_config(&config(2));
    p.pypm_ok(&["reload"], 0);
    assert!(
        wait_until(Duration::from_secs(10), || read(&p, "t.0.out.log").len()
            > before),
        "instance 0 did not move back to t.0.out.log"
    );
    // No line is split or lost across the moves: every file holds whole lines.
    for name in ["t.out.log", "t.0.out.log"] {
        let text = read(&p, name);
        for line in text.lines() {
            assert!(line.starts_with("tick-0-"), "{name}: {line:?}");
        }
    }
}

#[test]
fn deleting_the_live_log_file_on_a_full_disk_frees_the_space_and_writing_goes_on() {
    let p = Project::new();
    let mnt = p.path("logs");
    let Some(_unmount) = tmpfs(&mnt, "1m") else {
        return;
    };
    // ~1.3 MB of numbered lines into a 1 MB disk.
    let chatty = p.sh("chatty", &format!("seq 1 200000\n{IDLE}"));
    p.write_config(&format!(
        "[pypm]\nlog_dir = \"logs\"\n\n[apps.chatty]\ncommand = {chatty}\nlog_max_size = \"1G\"\n"
    ));
    p.up_d();
    wait_disk_full(&p, "chatty");
    let live = mnt.join("chatty.out.log");
    std::fs::remove_file(&live).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(&live).is_ok_and(|t| t.ends_with("\n200000\n"))
        }),
        "writing did not go on into a new file after the full one was deleted"
    );
    // The new file holds whole, consecutive lines up to the last (the deleted one had the rest).
    let text = std::fs::read_to_string(&live).unwrap();
    let nums: Vec<u64> = text
        .lines()
        .map(|l| l.parse().expect("a whole number line"))
        .collect();
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "lines in the new file are not consecutive: {:?}",
        nums.windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    p.pypm_ok(&["down"], 0);
}

/// Unmounts a test's tmpfs when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A tmpfs of `size` at `dir` (a small full disk), or `None` (said on stderr) where this
/// process may not mount one (not root).
fn tmpfs(dir: &std::path::Path, size: &str) -> Option<Unmount> {
    std::fs::create_dir_all(dir).ok()?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
        return None;
    }
    Some(Unmount(dir.to_path_buf()))
}

/// Waits until `app`'s status reason says its disk is full.
fn wait_disk_full(p: &Project, app: &str) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            p.row(app)["reason"]
                .as_str()
                .is_some_and(|r| r.contains("disk full"))
        }),
        "status never showed the full disk: {:#}",
        p.status_json()
    );
}
