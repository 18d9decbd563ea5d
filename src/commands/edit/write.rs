//! Writing the edited file atomically: a temp file in the same directory, flushed, given the
//! original's mode and owner, then renamed over it. A symlinked `pypm.toml` is followed: the file
//! it points to is replaced and the link stays a link.

use crate::process::ext::fs::OpenOptionsExt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// The file a write to `path` really replaces: the end of its symlink chain.
pub fn real_target(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        // A new file: its directory must exist, the file need not.
        Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(path).is_err() => {
            Ok(path.to_path_buf())
        }
        Err(e) => Err(e),
    }
}

/// Replaces the file at `path` (following symlinks) with `text`. An existing file keeps its
/// permission bits and, where this process may set them, its owner and group; a new file gets
/// 0644 less the umask.
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let target = real_target(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pypm.toml".into());
    let old = fs::metadata(&target).ok();
    let nonce = crate::process::random_bytes(6)
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .unwrap_or_else(|_| std::process::id().to_string());
    let tmp = dir.join(format!(".{name}.{nonce}.tmp"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Some(m) = &old {
            crate::process::ext::fs::copy_mode_and_owner(&f, m)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // The rename is durable once the directory is synced.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

// Unix file modes, owners and symlinks.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::process::ext::fs::{MetadataExt, PermissionsExt};

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn keeps_the_mode_and_leaves_no_temp_file() {
        let d = tmp();
        let p = d.path().join("pypm.toml");
        fs::write(&p, "old\n").unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640))
            .unwrap_or_else(|e| panic!("{e}"));
        write_atomic(&p, "new\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string(&p).unwrap_or_default(), "new\n");
        let m = fs::metadata(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.mode() & 0o777, 0o640);
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn follows_a_symlink_and_keeps_it() {
        let d = tmp();
        let real = d.path().join("real.toml");
        let link = d.path().join("pypm.toml");
        fs::write(&real, "old\n").unwrap_or_else(|e| panic!("{e}"));
        crate::process::ext::fs::symlink("real.toml", &link).unwrap_or_else(|e| panic!("{e}"));
        write_atomic(&link, "new\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
        assert_eq!(fs::read_to_string(&real).unwrap_or_default(), "new\n");
    }

    #[test]
    fn creates_a_new_file() {
        let d = tmp();
        let p = d.path().join("pypm.toml");
        write_atomic(&p, "x = 1\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string(&p).unwrap_or_default(), "x = 1\n");
    }
}
