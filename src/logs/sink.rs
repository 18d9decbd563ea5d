//! One log file: formatted lines waiting to be written, the open file, and rotation.

use super::rotated_path;
use crate::process::ext::fs::OpenOptionsExt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};

/// Mode of new log files (before the umask); see the module doc.
const FILE_MODE: u32 = 0o640;

pub(crate) struct LogFile {
    pub path: PathBuf,
    pub max_size: u64,
    pub max_files: u32,
    pub timestamps: bool,
    file: Option<File>,
    size: u64,
    /// Whole formatted lines not yet (completely) written.
    pub pending: Vec<u8>,
    /// How much of `pending` is already in the file.
    written: usize,
    /// End of the run of lines being written to the current file: a run is chosen to fit before
    /// writing starts and is finished (even after an error) before any rotation, so a line is
    /// never split across files.
    run_end: usize,
}

impl LogFile {
    pub fn new(path: PathBuf, max_size: u64, max_files: u32, timestamps: bool) -> LogFile {
        LogFile {
            path,
            max_size,
            max_files,
            timestamps,
            file: None,
            size: 0,
            pending: Vec::new(),
            written: 0,
            run_end: 0,
        }
    }

    pub fn has_pending(&self) -> bool {
        self.written < self.pending.len()
    }

    /// Writes everything pending, rotating as needed. On error, what is not written stays pending
    /// and a later call continues exactly where this one stopped.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.written < self.pending.len() {
            if self.written == self.run_end {
                self.next_run()?;
                continue;
            }
            let file = self.file.as_mut().expect("open while a run is in progress");
            match file.write(&self.pending[self.written..self.run_end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    self.size += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A full disk whose live file was deleted (to free space) or moved away:
                    // retrying into the open, unlinked file would never free anything. The
                    // next flush opens the path anew and continues there.
                    if self.replaced() {
                        self.file = None;
                        // A line cut by the failed write is written whole into the new file
                        // (its start went with the old one).
                        self.written = self.pending[..self.written]
                            .iter()
                            .rposition(|b| *b == b'\n')
                            .map_or(0, |k| k + 1);
                        self.run_end = self.written;
                    }
                    return Err(e);
                }
            }
        }
        self.pending.clear();
        self.written = 0;
        self.run_end = 0;
        Ok(())
    }

    /// Writes whole lines (the concatenation of `parts`) straight from the caller's buffers when
    /// nothing is pending and they fit the current file: the common case, one `writev` and no
    /// copy. Otherwise, or for what a short or failed write leaves, the bytes wait in `pending`
    /// for [`Self::flush`], which also reports errors.
    pub fn append(&mut self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let fits = self.max_size == 0 || self.size + total as u64 <= self.max_size;
        if self.has_pending() || !fits || (self.file.is_none() && self.open().is_err()) {
            for p in parts {
                self.pending.extend_from_slice(p);
            }
            return;
        }
        let file = self.file.as_mut().expect("opened above");
        let mut done = 0;
        while done < total {
            let slices: Vec<IoSlice<'_>> = after(parts, done).map(IoSlice::new).collect();
            match file.write_vectored(&slices) {
                Ok(n) if n > 0 => {
                    done += n;
                    self.size += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The rest fits the current file, so flush writes it there: no line is split
                // across a rotation.
                _ => {
                    // Pending keeps the whole line the write stopped in (from its start), with
                    // its written part marked done: flush finishes it in this file, and a file
                    // replaced meanwhile gets it whole (see `flush`).
                    let all: Vec<u8> = parts.concat();
                    let line_start = all[..done]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |k| k + 1);
                    self.pending.clear();
                    self.pending.extend_from_slice(&all[line_start..]);
                    self.written = done - line_start;
                    self.run_end = self.pending.len();
                    return;
                }
            }
        }
    }

    /// Chooses the lines that go into the current file next, rotating first if not even one fits.
    fn next_run(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        let rest = &self.pending[self.written..];
        let room = self.max_size.saturating_sub(self.size);
        if self.max_size == 0 || rest.len() as u64 <= room {
            self.run_end = self.pending.len();
            return Ok(());
        }
        let room = room as usize; // < rest.len()
        if let Some(k) = rest[..room].iter().rposition(|b| *b == b'\n') {
            self.run_end = self.written + k + 1;
        } else if self.size == 0 {
            // One line larger than max_size: it gets a file of its own.
            let k = rest
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(rest.len() - 1);
            self.run_end = self.written + k + 1;
        } else {
            self.rotate()?;
        }
        Ok(())
    }

    /// The open file is no longer the one at `path` (deleted, or another file there).
    fn replaced(&self) -> bool {
        use crate::process::ext::fs::MetadataExt;
        let Some(f) = &self.file else {
            return false;
        };
        match (f.metadata(), fs::metadata(&self.path)) {
            (Ok(open), Ok(at_path)) => (open.dev(), open.ino()) != (at_path.dev(), at_path.ino()),
            (Ok(_), Err(_)) => true,
            _ => false,
        }
    }

    fn open(&mut self) -> io::Result<()> {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(FILE_MODE)
                .open(&self.path)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent() {
                    fs::create_dir_all(dir)?;
                }
                open()?
            }
            r => r?,
        };
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// `X.log.(N-1)` → `X.log.N` … `X.log` → `X.log.1`, then a new `X.log`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let live = &self.path;
        if self.max_files == 0 {
            remove_if_exists(live)?;
        } else {
            remove_if_exists(&rotated_path(live, self.max_files))?;
            for k in (1..self.max_files).rev() {
                rename_if_exists(&rotated_path(live, k), &rotated_path(live, k + 1))?;
            }
            rename_if_exists(live, &rotated_path(live, 1))?;
        }
        // Files beyond max_files left over from a larger setting.
        let mut k = self.max_files + 1;
        while remove_if_exists(&rotated_path(live, k))? {
            k += 1;
        }
        self.open()
    }
}

/// What is left of the concatenation of `parts` after its first `done` bytes, as pieces.
fn after<'a>(parts: &'a [&'a [u8]], mut done: usize) -> impl Iterator<Item = &'a [u8]> {
    parts.iter().filter_map(move |p| {
        let skip = done.min(p.len());
        done -= skip;
        (skip < p.len()).then(|| &p[skip..])
    })
}

fn remove_if_exists(p: &Path) -> io::Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn rotates_at_line_boundaries_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("sub/a.log");
        let mut f = LogFile::new(live.clone(), 10, 2, false);
        for chunk in ["aaaa\nbbbb\n", "cc\n", "dddddddddddddd\n", "e\n"] {
            f.pending.extend_from_slice(chunk.as_bytes());
            f.flush().unwrap();
        }
        // "aaaa\nbbbb\n" | "cc\n" | long line alone | "e\n"; the first file was deleted.
        assert_eq!(read(&rotated_path(&live, 2)), "cc\n");
        assert_eq!(read(&rotated_path(&live, 1)), "dddddddddddddd\n");
        assert_eq!(read(&live), "e\n");
        assert!(!rotated_path(&live, 3).exists());
    }

    #[test]
    fn a_deleted_or_replaced_live_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("a.log");
        let mut f = LogFile::new(path.clone(), 0, 1, false);
        f.append(&[b"one\n"]);
        assert!(!f.replaced());
        fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.replaced(), "deleted");
        f.file = None;
        f.append(&[b"two\n"]);
        assert_eq!(read(&path), "two\n", "a new file at the path");
        fs::rename(&path, dir.path().join("moved")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(&path, "other\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(f.replaced(), "another file at the path");
    }

    #[test]
    fn after_skips_whole_and_partial_pieces() {
        let parts: [&[u8]; 3] = [b"ab", b"", b"cde"];
        let rest = |done| after(&parts, done).collect::<Vec<_>>().concat();
        assert_eq!(rest(0), b"abcde");
        assert_eq!(rest(1), b"bcde");
        assert_eq!(rest(2), b"cde");
        assert_eq!(rest(4), b"e");
        assert!(after(&parts, 5).next().is_none());
    }

    #[test]
    fn append_writes_directly_and_rotates_through_pending() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("a.log");
        let mut f = LogFile::new(live.clone(), 10, 2, false);
        f.append(&[b"aa", b"aa\n", b"bb\n"]);
        assert!(!f.has_pending(), "fits: written at once");
        assert_eq!(read(&live), "aaaa\nbb\n");
        // Does not fit the 10-byte file: waits in pending, and flush rotates before it.
        f.append(&[b"", b"cccc\n"]);
        assert!(f.has_pending());
        f.flush().unwrap();
        assert_eq!(read(&rotated_path(&live, 1)), "aaaa\nbb\n");
        assert_eq!(read(&live), "cccc\n");
        // While something is pending, appended lines queue behind it (order kept).
        f.pending.extend_from_slice(b"d\n");
        f.append(&[b"e\n"]);
        f.flush().unwrap();
        assert_eq!(read(&live), "cccc\nd\ne\n");
    }
}
