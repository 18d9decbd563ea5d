//! The unix names the rest of pypm uses for files, descriptors and local sockets, re-exported
//! from std so callers import them from one place (`crate::process::ext`) on every system; on
//! Windows the same names come from `windows/ext.rs`.

/// File permission bits, owners, positional reads, symlinks.
pub mod fs {
    pub use std::os::unix::fs::{
        DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt, fchown, symlink,
    };

    /// Sets `path`'s permission bits.
    pub fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    /// Whether `m` describes a file someone may execute.
    pub fn is_executable(m: &std::fs::Metadata) -> bool {
        m.permissions().mode() & 0o111 != 0
    }

    /// Gives `f` the permission bits and (where this process may) the owner and group of
    /// `like`.
    pub fn copy_mode_and_owner(f: &std::fs::File, like: &std::fs::Metadata) -> std::io::Result<()> {
        f.set_permissions(std::fs::Permissions::from_mode(like.mode() & 0o7777))?;
        // Only root may give a file away; anyone may keep their own uid and change to a group
        // they are in. Failing that the file is still written, owned by us.
        if fchown(f, Some(like.uid()), Some(like.gid())).is_err() {
            let _ = fchown(f, None, Some(like.gid()));
        }
        Ok(())
    }
}

/// Descriptors.
pub mod fd {
    pub use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
}

/// Local sockets.
pub mod net {
    pub use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
}
