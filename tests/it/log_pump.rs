//! The log module (`pypm::logs`, the library, not the `pypm logs` verb: that is `logs.rs`) against
//! real pipes, real files and a real child process.

#[cfg(target_os = "linux")]
use pypm::logs::RETRY_INTERVAL;
use pypm::logs::{
    Follower, LogNotice, LogPump, LogTarget, MAX_LINE, Stream, format_rfc3339_millis, rotated_path,
    tail, tail_follow, tail_merged,
};
use std::fs;
use std::io::{self, Write};
#[cfg(target_os = "linux")]
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::support::wait_for;

const DEADLINE: Duration = Duration::from_secs(30);

/// A pump whose notices are recorded.
fn pump() -> (LogPump, Arc<Mutex<Vec<LogNotice>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let n = notices.clone();
    let pump = LogPump::start(move |x| n.lock().unwrap().push(x)).unwrap();
    (pump, notices)
}

fn count(notices: &Mutex<Vec<LogNotice>>, f: impl Fn(&LogNotice) -> bool) -> usize {
    notices.lock().unwrap().iter().filter(|n| f(n)).count()
}

fn wait_closed(notices: &Mutex<Vec<LogNotice>>, id: pypm::logs::PipeId) {
    wait_for("pipe closed", DEADLINE, || {
        (count(notices, |n| *n == LogNotice::Closed { id }) == 1).then_some(())
    });
}

fn target(path: &Path, max_size: u64, max_files: u32, timestamps: bool) -> LogTarget {
    LogTarget {
        path: path.to_path_buf(),
        max_size,
        max_files,
        timestamps,
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

/// Greedy packing of whole lines into files of at most `max` bytes: what rotation must produce.
fn pack(lines: impl Iterator<Item = String>, max: usize) -> Vec<String> {
    let mut files = vec![String::new()];
    for l in lines {
        let cur = files.last_mut().unwrap();
        if !cur.is_empty() && cur.len() + l.len() + 1 > max {
            files.push(String::new());
        }
        let cur = files.last_mut().unwrap();
        cur.push_str(&l);
        cur.push('\n');
    }
    files
}

#[test]
fn child_output_rotates_without_loss_or_duplication() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("logs/api.out.log");
    let (max_size, max_files) = (64 * 1024, 3);
    let (pump, notices) = pump();
    let mut child = Command::new("sh")
        .args(["-c", "exec seq 1 200000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let fd: OwnedFd = child.stdout.take().unwrap().into();
    let id = pump
        .add(fd, target(&live, max_size, max_files, false), None)
        .unwrap();
    wait_closed(&notices, id);
    assert!(child.wait().unwrap().success());

    let want = pack((1..=200_000).map(|i| i.to_string()), max_size as usize);
    assert!(want.len() > max_files as usize + 10, "rotates many times");
    let kept = &want[want.len() - 1 - max_files as usize..];
    for (k, content) in (1..=max_files).rev().zip(kept) {
        assert_eq!(&read(&rotated_path(&live, k)), content, "file .{k}");
    }
    assert_eq!(&read(&live), want.last().unwrap());
    assert!(!rotated_path(&live, max_files + 1).exists());
    let mode = fs::metadata(&live).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7002, 0);

    // tail reads on into the rotated files when the live one is short.
    let in_live = read(&live).lines().count();
    let n = in_live + 100;
    let got = tail(&live, n).unwrap();
    let expect: Vec<String> = (200_001 - n..=200_000).map(|i| i.to_string()).collect();
    assert_eq!(got, expect);
    pump.shutdown();
}

/// A pipe the pump found full grows to 1 MiB; a quiet one keeps its 128 KiB.
#[cfg(target_os = "linux")]
#[test]
fn only_a_chatty_pipe_grows() {
    use nix::fcntl::{FcntlArg, fcntl};
    let dir = tempfile::tempdir().unwrap();
    let (pump, notices) = pump();
    let (quiet_r, mut quiet_w) = io::pipe().unwrap();
    let (chatty_r, mut chatty_w) = io::pipe().unwrap();
    pump.add(
        quiet_r.into(),
        target(&dir.path().join("q.log"), 0, 5, false),
        None,
    )
    .unwrap();
    let live = dir.path().join("c.log");
    let id = pump
        .add(chatty_r.into(), target(&live, 0, 5, false), None)
        .unwrap();
    quiet_w.write_all(b"hello\n").unwrap();
    // ~32 MiB in 1 MiB writes through a 128 KiB pipe: the writer fills it over and over.
    let chunk: Vec<u8> = [[b'y'; 99].as_slice(), b"\n"].concat().repeat(10 << 10);
    for _ in 0..32 {
        chatty_w.write_all(&chunk).unwrap();
    }
    let size = |w: &io::PipeWriter| fcntl(w, FcntlArg::F_GETPIPE_SZ).unwrap();
    assert_eq!(size(&chatty_w), 1 << 20);
    assert_eq!(size(&quiet_w), 128 << 10);
    drop(chatty_w);
    wait_closed(&notices, id);
    assert_eq!(fs::metadata(&live).unwrap().len(), 32 * 100 * (10 << 10));
    pump.shutdown();
}

#[test]
fn long_lines_are_split_and_unterminated_output_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("a.err.log");
    let (pump, notices) = pump();
    let (r, mut w) = io::pipe().unwrap();
    let id = pump
        .add(r.into(), target(&live, 0, 5, false), None)
        .unwrap();
    let long = 3 * MAX_LINE + 123;
    let writer = std::thread::spawn(move || {
        w.write_all(&vec![b'x'; long]).unwrap();
        w.write_all(b"\nshort\nno newline at end").unwrap();
    });
    writer.join().unwrap();
    wait_closed(&notices, id);
    let text = read(&live);
    let lens: Vec<usize> = text.lines().map(str::len).collect();
    assert_eq!(lens, [MAX_LINE, MAX_LINE, MAX_LINE, 123, 5, 17]);
    assert!(text.ends_with("\nshort\nno newline at end\n"));
    assert_eq!(text.bytes().filter(|b| *b == b'x').count(), long);
    pump.shutdown();
}

#[test]
fn timestamps_prefix_every_line_and_tap_sees_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("t.out.log");
    let (pump, notices) = pump();
    let tapped = Arc::new(Mutex::new(Vec::new()));
    let t = tapped.clone();
    let tap = Box::new(move |l: &str| t.lock().unwrap().push(l.to_owned()));
    let (r, mut w) = io::pipe().unwrap();
    let before = format_rfc3339_millis(SystemTime::now());
    let id = pump
        .add(r.into(), target(&live, 0, 1, true), Some(tap))
        .unwrap();
    w.write_all(b"one\ntwo\nthr").unwrap();
    w.write_all(b"ee\n").unwrap();
    drop(w);
    wait_closed(&notices, id);
    let after = format_rfc3339_millis(SystemTime::now());
    let re =
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (one|two|three)$").unwrap();
    let text = read(&live);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert!(re.is_match(l), "{l:?}");
        assert!(
            before.as_str() <= &l[..24] && &l[..24] <= after.as_str(),
            "{l:?}"
        );
    }
    assert_eq!(*tapped.lock().unwrap(), ["one", "two", "three"]);
    pump.shutdown();
}

#[test]
fn two_pipes_to_one_file_never_interleave_within_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("shared.out.log");
    let (pump, notices) = pump();
    let per_writer = 20_000;
    let mut ids = Vec::new();
    let mut writers = Vec::new();
    for name in ["A", "B"] {
        let (r, mut w) = io::pipe().unwrap();
        ids.push(
            pump.add(r.into(), target(&live, 0, 1, false), None)
                .unwrap(),
        );
        writers.push(std::thread::spawn(move || {
            for i in 0..per_writer {
                let line = format!("{name}-{i}-{}\n", name.repeat(100));
                // Two writes per line, so the pump often sees half a line.
                let (a, b) = line.as_bytes().split_at(line.len() / 2);
                w.write_all(a).unwrap();
                w.write_all(b).unwrap();
            }
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    for id in ids {
        wait_closed(&notices, id);
    }
    let mut next = [0usize; 2];
    for l in read(&live).lines() {
        let (name, rest) = l.split_once('-').unwrap();
        let (i, pad) = rest.split_once('-').unwrap();
        assert_eq!(pad, name.repeat(100), "interleaved line {l:?}");
        let w = usize::from(name == "B");
        assert_eq!(i.parse::<usize>().unwrap(), next[w], "{name} out of order");
        next[w] += 1;
    }
    assert_eq!(next, [per_writer, per_writer]);
    pump.shutdown();
}

#[cfg(target_os = "linux")]
fn set_nonblocking(fd: impl AsFd, on: bool) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let mut flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap());
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags)).unwrap();
}

#[cfg(target_os = "linux")]
/// The most one pump read takes (its pipes are enlarged to the same size).
const READ_LIMIT: usize = 1024 * 1024;

#[cfg(target_os = "linux")]
/// Writes as much of `data[*at..]` as the pipe takes without blocking.
fn write_until_full(w: &mut io::PipeWriter, data: &[u8], at: &mut usize) {
    while *at < data.len() {
        match w.write(&data[*at..]) {
            Ok(n) => *at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("write: {e}"),
        }
    }
    panic!("the pump took everything: no backpressure");
}

// Linux: the pipe's capacity is read with F_GETPIPE_SZ.
#[cfg(target_os = "linux")]
#[test]
fn unwritable_file_blocks_the_writer_with_bounded_memory_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The log directory's place is taken by a file: opening the log fails (ENOTDIR) until the
    // file is removed.
    let blocker = dir.path().join("logs");
    fs::write(&blocker, "not a directory").unwrap();
    let live = blocker.join("b.out.log");
    let (pump, notices) = pump();
    let (r, mut w) = io::pipe().unwrap();
    set_nonblocking(&w, true);
    let id = pump
        .add(r.into(), target(&live, 0, 1, false), None)
        .unwrap();
    // The pump enlarges the pipe (best effort): measure it after `add`.
    let pipe_cap = nix::fcntl::fcntl(w.as_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap();

    let data: String = (0..600_000).map(|i| format!("line {i}\n")).collect();
    let data = data.as_bytes();
    let mut at = 0;
    write_until_full(&mut w, data, &mut at);
    wait_for("error notice", DEADLINE, || {
        (count(&notices, |n| matches!(n, LogNotice::Error { .. })) == 1).then_some(())
    });
    write_until_full(&mut w, data, &mut at);
    let accepted = at;
    // Absence of reads can only be observed over time: let a retry pass and check the pipe is
    // still full and the pump took nothing more.
    std::thread::sleep(RETRY_INTERVAL + RETRY_INTERVAL / 2);
    assert!(matches!(w.write(&data[at..]), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
    assert!(
        accepted <= pipe_cap as usize + READ_LIMIT + 64 * 1024,
        "accepted {accepted} bytes with a {pipe_cap}-byte pipe"
    );
    let held = pump.buffered_bytes();
    assert!(
        held > 0 && held <= (READ_LIMIT + 64 * 1024) as u64,
        "pump holds {held} bytes"
    );
    assert_eq!(count(&notices, |n| matches!(n, LogNotice::Error { .. })), 1);

    fs::remove_file(&blocker).unwrap();
    wait_for("resumed", DEADLINE, || {
        (count(&notices, |n| matches!(n, LogNotice::Resumed { .. })) == 1).then_some(())
    });
    set_nonblocking(&w, false);
    w.write_all(&data[at..]).unwrap();
    drop(w);
    wait_closed(&notices, id);
    assert_eq!(read(&live).as_bytes(), data);
    pump.shutdown();
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_is_reported_once_and_resumes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mnt) = Tmpfs::mount(&dir.path().join("mnt"), "8m") else {
        eprintln!("SKIPPED disk_full test: cannot mount a tmpfs (needs root)");
        return;
    };
    let filler = mnt.0.join("filler");
    fs::write(&filler, vec![0u8; (8192 - 64) * 1024]).unwrap();
    let live = mnt.0.join("d.out.log");
    let (pump, notices) = pump();
    let (r, mut w) = io::pipe().unwrap();
    let id = pump
        .add(r.into(), target(&live, 0, 1, false), None)
        .unwrap();
    // More than the pump reads at once plus an enlarged pipe holds: the writer must block.
    let data: String = (0..400_000).map(|i| format!("line {i}\n")).collect(); // ~4.4 MB
    let expected = data.clone();
    let writer = std::thread::spawn(move || w.write_all(data.as_bytes()).unwrap());

    wait_for("disk full notice", DEADLINE, || {
        (count(&notices, |n| matches!(n, LogNotice::DiskFull { .. })) == 1).then_some(())
    });
    assert!(
        !writer.is_finished(),
        "the writer is blocked while the disk is full"
    );
    fs::remove_file(&filler).unwrap();
    writer.join().unwrap();
    wait_closed(&notices, id);
    assert_eq!(read(&live), expected);
    let kinds: Vec<&'static str> = notices
        .lock()
        .unwrap()
        .iter()
        .map(|n| match n {
            LogNotice::DiskFull { .. } => "full",
            LogNotice::Resumed { .. } => "resumed",
            LogNotice::Error { .. } => "error",
            LogNotice::Closed { .. } => "closed",
        })
        .collect();
    assert_eq!(kinds, ["full", "resumed", "closed"]);
    pump.shutdown();
}

#[test]
fn tail_crosses_rotated_files_and_tolerates_a_missing_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("x.out.log");
    fs::write(rotated_path(&live, 2), "1\n2\n3\n").unwrap();
    fs::write(rotated_path(&live, 1), "4\n5\n6\n").unwrap();
    assert_eq!(tail(&live, 4).unwrap(), ["3", "4", "5", "6"]);
    fs::write(&live, "7\n8\n").unwrap();
    assert_eq!(tail(&live, 2).unwrap(), ["7", "8"]);
    assert_eq!(tail(&live, 5).unwrap(), ["4", "5", "6", "7", "8"]);
    assert_eq!(tail(&live, 100).unwrap().len(), 8);
    assert!(tail(&dir.path().join("none.log"), 3).unwrap().is_empty());
}

#[test]
fn tail_merged_orders_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.out.log");
    let err = dir.path().join("m.err.log");
    let ts = |s: u32| format!("2026-11-27T03:50:{s:02}.000Z");
    fs::write(rotated_path(&out, 1), format!("{} a\n", ts(1))).unwrap();
    fs::write(&out, format!("{} c\ncontinued\n{} e\n", ts(3), ts(5))).unwrap();
    fs::write(&err, format!("{} b\n{} d\n{} e2\n", ts(2), ts(4), ts(5))).unwrap();
    let got = tail_merged(&out, &err, 10).unwrap();
    let tags: Vec<(Stream, &str)> = got
        .iter()
        .map(|(s, l)| (*s, &l[l.len().min(25)..]))
        .collect();
    use Stream::{Err, Out};
    let want = [
        (Out, "a"),
        (Err, "b"),
        (Out, "c"),
        (Out, ""), // "continued" is shorter than a timestamp
        (Err, "d"),
        (Out, "e"),
        (Err, "e2"),
    ];
    assert_eq!(tags, want);
    assert_eq!(got[3].1, "continued");
    let last3 = tail_merged(&out, &err, 3).unwrap();
    assert_eq!(last3, got[4..]);
}

#[test]
fn follower_sees_every_line_once_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("f.out.log");
    fs::write(&live, "old 1\nold 2\n").unwrap();
    let (before, mut follower) = tail_follow(&live, 1).unwrap();
    assert_eq!(before, ["old 2"]);
    let mut follower: Follower = {
        follower = follower.with_interval(Duration::from_millis(10));
        follower
    };
    let (pump, notices) = pump();
    let (r, mut w) = io::pipe().unwrap();
    // ~190 KB into 4 KiB files: dozens of rotations, several within one follow interval.
    let id = pump
        .add(r.into(), target(&live, 4096, 100, false), None)
        .unwrap();
    let total = 20_000;
    let writer = std::thread::spawn(move || {
        for i in 0..total {
            writeln!(w, "new {i}").unwrap();
            // Pacing, not waiting: rotations then happen while the follower reads, as well as
            // several within one of its intervals.
            if i % 500 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while seen.len() < total && Instant::now() < deadline {
        seen.extend(follower.next_lines(Duration::from_millis(200)).unwrap());
    }
    writer.join().unwrap();
    wait_closed(&notices, id);
    assert!(rotated_path(&live, 30).exists(), "rotated many times");
    let want: Vec<String> = (0..total).map(|i| format!("new {i}")).collect();
    assert_eq!(seen.len(), want.len());
    assert!(seen == want, "lines missing, doubled or out of order");
    assert!(
        follower
            .next_lines(Duration::from_millis(50))
            .unwrap()
            .is_empty()
    );
    pump.shutdown();
}

/// CPU time (user + system) of this process's thread named `name`, from /proc.
fn thread_cpu(name: &str) -> Option<Duration> {
    let tick = 100.0; // USER_HZ on Linux
    for t in fs::read_dir("/proc/self/task").ok()? {
        let t = t.ok()?.path();
        if fs::read_to_string(t.join("comm")).ok()?.trim() == name {
            let stat = fs::read_to_string(t.join("stat")).ok()?;
            let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: u64 = f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?;
            return Some(Duration::from_secs_f64(ticks as f64 / tick));
        }
    }
    None
}

/// `cargo test --test it -- --ignored --nocapture log_pump::throughput`
#[test]
#[ignore = "throughput measurement; run explicitly"]
fn throughput() {
    for timestamps in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("tp.out.log");
        let (pump, notices) = pump();
        let (r, mut w) = io::pipe().unwrap();
        let total: usize = 200 << 20;
        let block: String = (0..10_000)
            .map(|i| format!("a short log line {i:06}\n"))
            .collect();
        let id = pump
            .add(r.into(), target(&live, 10 << 20, 5, timestamps), None)
            .unwrap();
        let cpu0 = thread_cpu("pypm-logs").unwrap_or_default();
        let start = Instant::now();
        let writer = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < total {
                w.write_all(block.as_bytes()).unwrap();
                sent += block.len();
            }
            sent
        });
        let sent = writer.join().unwrap();
        wait_closed(&notices, id);
        let wall = start.elapsed();
        let cpu = thread_cpu("pypm-logs")
            .unwrap_or_default()
            .saturating_sub(cpu0);
        let mib = sent as f64 / (1 << 20) as f64;
        println!(
            "timestamps={timestamps}: {mib:.0} MiB in {wall:.2?} wall = {:.0} MiB/s; pump CPU {cpu:.2?}",
            mib / wall.as_secs_f64()
        );
        pump.shutdown();
    }
}
