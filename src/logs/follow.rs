//! Following a log file as it grows and rotates (`pypm logs -f`).
//!
//! Polls (default every 100 ms) instead of using inotify: it is one stat and one read per
//! interval, works on every file system (including network mounts), and needs no extra
//! dependency; the latency is the interval.

use super::rotated_path;
use super::tail::tail_open;
use crate::process::ext::fs::MetadataExt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default poll interval of a [`Follower`].
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// How many rotated files are searched for the file a follower was reading.
const MAX_SCAN: u32 = 1000;

type FileId = (u64, u64);

fn id_of(m: &fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

/// Yields the complete lines appended to a log file, across rotations: when the path names
/// another file (rotation) the old file is read to its end, then any rotated file it missed
/// (several rotations within one interval), then the new file from its start; when the file
/// shrinks (truncated by someone else) it is read again from the start.
pub struct Follower {
    path: PathBuf,
    current: Option<(File, FileId)>,
    carry: Vec<u8>,
    interval: Duration,
}

/// The last `n` lines of the log at `path` (as [`super::tail`]) and a [`Follower`] that goes on
/// exactly after them: no line is missed or repeated between the two.
pub fn tail_follow(path: &Path, n: usize) -> io::Result<(Vec<String>, Follower)> {
    let live = match File::open(path) {
        Ok(f) => {
            let m = f.metadata()?;
            Some((f, id_of(&m), m.len()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let lines = tail_open(path, live.as_ref().map(|(f, _, len)| (f, *len)), n)?;
    let current = match live {
        Some((mut f, id, len)) => {
            f.seek(SeekFrom::Start(len))?;
            Some((f, id))
        }
        None => None,
    };
    let follower = Follower {
        path: path.to_path_buf(),
        current,
        carry: Vec::new(),
        interval: FOLLOW_INTERVAL,
    };
    Ok((lines, follower))
}

impl Follower {
    /// Follows `path` from its current end (from the start of the file once it exists, if it
    /// does not yet).
    pub fn new(path: &Path) -> io::Result<Follower> {
        Ok(tail_follow(path, 0)?.1)
    }

    /// Checks for new lines every `interval` instead of [`FOLLOW_INTERVAL`].
    pub fn with_interval(mut self, interval: Duration) -> Follower {
        self.interval = interval;
        self
    }

    /// Waits up to `timeout` for new complete lines and returns them (empty on timeout).
    pub fn next_lines(&mut self, timeout: Duration) -> io::Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut out = Vec::new();
            self.poll(&mut out)?;
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            std::thread::sleep(self.interval.min(deadline - now));
        }
    }

    /// One look at the file: new lines, then rotation or truncation.
    fn poll(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        if self.current.is_none() {
            match File::open(&self.path) {
                Ok(f) => {
                    let id = id_of(&f.metadata()?);
                    self.current = Some((f, id));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let (file, id) = self.current.as_mut().expect("opened above");
        read_lines(file, &mut self.carry, out)?;
        let id = *id;
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            // Between the rename and the new file: look again next time.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if id_of(&meta) != id {
            // Lines written between our read and the rename are still in the old file.
            let (file, _) = self.current.as_mut().expect("opened above");
            read_lines(file, &mut self.carry, out)?;
            self.advance(id, out)?;
        } else {
            let (file, _) = self.current.as_mut().expect("opened above");
            if meta.len() < file.stream_position()? {
                file.seek(SeekFrom::Start(0))?;
                self.carry.clear();
            }
        }
        Ok(())
    }

    /// The file we read (`old`, already read to its end) was rotated away: read the rotated
    /// files newer than it, oldest first, then switch to the live file. Each file read to its
    /// end becomes `current`, so stopping early loses nothing.
    fn advance(&mut self, mut old: FileId, out: &mut Vec<String>) -> io::Result<()> {
        self.finish_line(out);
        let mut misses = 0;
        loop {
            let chain = self.chain();
            let next = match chain.iter().position(|c| *c == Some(old)) {
                Some(0) => return Ok(()),
                Some(k) => k - 1,
                // Not seen, perhaps because rotations moved it while we looked: look again.
                None if misses < 3 => {
                    misses += 1;
                    continue;
                }
                // Deleted (more rotations than `max_files`): go on with the live file.
                None => 0,
            };
            let p = if next == 0 {
                self.path.clone()
            } else {
                rotated_path(&self.path, next as u32)
            };
            let mut f = match File::open(&p) {
                Ok(f) => f,
                // Mid-rotation (or the writer could not create the new file): `current` is the
                // last file read completely, so the next poll goes on from there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            let id = id_of(&f.metadata()?);
            if Some(id) != chain[next] {
                continue; // rotated again while we looked
            }
            read_lines(&mut f, &mut self.carry, out)?;
            self.current = Some((f, id));
            if next == 0 {
                return Ok(());
            }
            // A rotated file is complete.
            self.finish_line(out);
            old = id;
        }
    }

    /// Identities of the live file and the rotated files `.1`, `.2` …, up to two missing in a
    /// row: while a rotation shifts the files, one of them is briefly missing.
    fn chain(&self) -> Vec<Option<FileId>> {
        let id = |p: &Path| fs::metadata(p).ok().map(|m| id_of(&m));
        let mut chain = vec![id(&self.path)];
        for k in 1..=MAX_SCAN {
            let this = id(&rotated_path(&self.path, k));
            if this.is_none() && chain.len() > 1 && chain.last() == Some(&None) {
                chain.pop();
                break;
            }
            chain.push(this);
        }
        chain
    }

    /// A finished file's last line needs no newline.
    fn finish_line(&mut self, out: &mut Vec<String>) {
        if !self.carry.is_empty() {
            out.push(String::from_utf8_lossy(&self.carry).into_owned());
            self.carry.clear();
        }
    }
}

/// Reads `f` to its current end, appending complete lines to `out` and keeping a partial one.
fn read_lines(f: &mut File, carry: &mut Vec<u8>, out: &mut Vec<String>) -> io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut data = &buf[..n];
        while let Some(i) = data.iter().position(|b| *b == b'\n') {
            carry.extend_from_slice(&data[..i]);
            out.push(String::from_utf8_lossy(carry).into_owned());
            carry.clear();
            data = &data[i + 1..];
        }
        carry.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    /// What the pump does: shift `.k` → `.k+1`, live → `.1`.
    fn rotate(p: &Path, files: u32) {
        for k in (1..files).rev() {
            let _ = fs::rename(rotated_path(p, k), rotated_path(p, k + 1));
        }
        fs::rename(p, rotated_path(p, 1)).unwrap();
    }

    fn poll(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        f.poll(&mut out).unwrap();
        out
    }

    #[test]
    fn follows_several_rotations_between_looks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        append(&p, "seen before\n");
        let mut f = Follower::new(&p).unwrap();
        append(&p, "a1\npart");
        assert_eq!(poll(&mut f), ["a1"]);
        append(&p, "ial\na2\n");
        rotate(&p, 5);
        // Between the rename and the new file: nothing is lost, nothing is skipped.
        assert_eq!(poll(&mut f), ["partial", "a2"]);
        assert!(poll(&mut f).is_empty());
        append(&p, "b1\n");
        rotate(&p, 5);
        append(&p, "c1\n");
        rotate(&p, 5);
        append(&p, "d1\nd2\n");
        assert_eq!(poll(&mut f), ["b1", "c1", "d1", "d2"]);
        append(&p, "d3\n");
        assert_eq!(poll(&mut f), ["d3"]);
        // Truncated in place: read again from the start.
        fs::write(&p, "").unwrap();
        assert!(poll(&mut f).is_empty());
        append(&p, "e1\n");
        assert_eq!(poll(&mut f), ["e1"]);
    }
}
