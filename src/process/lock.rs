//! Advisory whole-file locks (`flock(2)`), for CLI commands that edit `pypm.toml`: two `pypm set`
//! at once take turns instead of one overwriting the other's edit.

use super::ext::fs::OpenOptionsExt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// An exclusive lock on a file; released when dropped (or when the process ends, however it ends:
/// a crashed editor never leaves a stale lock behind).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// Opens (creating, mode 0600) `path` and waits until this process holds the exclusive `flock` on
/// it. The lock file's content is never read or written: it exists only to be locked, so it can
/// live beside the state it guards without being replaced by an atomic rename.
pub fn lock_exclusive(path: &Path) -> io::Result<FileLock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    // std's `File::lock` is `flock(fd, LOCK_EX)` on unix; it retries on EINTR.
    file.lock()?;
    Ok(FileLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("edit.lock");
        let first = lock_exclusive(&path).unwrap_or_else(|e| panic!("{e}"));
        let got = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (p, g) = (path.clone(), got.clone());
        let t = std::thread::spawn(move || {
            // A separate open file description: flock treats it as another holder.
            let l = lock_exclusive(&p);
            g.store(true, Ordering::SeqCst);
            let _ = tx.send(());
            l.is_ok()
        });
        // Not acquired while the first is held (checked over a bounded window).
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert!(!got.load(Ordering::SeqCst));
        drop(first);
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok());
        assert!(t.join().unwrap_or(false));
    }
}
