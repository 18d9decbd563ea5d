//! The unix names the rest of pypm uses (`crate::process::ext`), with their Windows meaning, so
//! callers keep one spelling on every system:
//!
//! - `fs`: permission bits do not exist (a file is executable by its extension, private by the
//!   ACL it inherits from the user's directories): modes are accepted and ignored, `mode()`
//!   reads `0o700` for a directory and `0o600`/`0o700` for a file, owners are the current
//!   user's. A file's identity (`dev`, `ino`) is its creation time and size class, see
//!   [`fs::MetadataExt`].
//! - `fd`: descriptors are handles; sockets are what the servers' front polls ([`super::wait_readable`]).
//! - `net`: the control channel's "unix socket", see [`super::net`].

/// Files.
pub mod fs {
    use std::io;
    use std::path::Path;

    /// `mode()` of a file's permissions: no permission bits on Windows.
    pub trait PermissionsExt {
        fn mode(&self) -> u32;
    }
    impl PermissionsExt for std::fs::Permissions {
        fn mode(&self) -> u32 {
            if self.readonly() { 0o500 } else { 0o700 }
        }
    }

    /// The unix fields of a file's metadata, as far as Windows has them.
    pub trait MetadataExt {
        /// The volume: constant (one identity space per path is all callers compare).
        fn dev(&self) -> u64;
        /// The file's identity across renames: its creation time (100 ns ticks). A file
        /// created under the name of one just renamed may inherit its creation time ("file
        /// tunnelling", within 15 s): callers that detect rotation also check the size.
        fn ino(&self) -> u64;
        fn uid(&self) -> u32;
        fn gid(&self) -> u32;
        fn mode(&self) -> u32;
    }
    impl MetadataExt for std::fs::Metadata {
        fn dev(&self) -> u64 {
            0
        }
        fn ino(&self) -> u64 {
            std::os::windows::fs::MetadataExt::creation_time(self)
        }
        fn uid(&self) -> u32 {
            crate::process::euid()
        }
        fn gid(&self) -> u32 {
            0
        }
        fn mode(&self) -> u32 {
            if self.is_dir() {
                0o700
            } else {
                PermissionsExt::mode(&self.permissions()) & 0o600
            }
        }
    }

    /// `mode` when creating a file: ignored (the file inherits its directory's ACL).
    pub trait OpenOptionsExt {
        fn mode(&mut self, mode: u32) -> &mut Self;
    }
    impl OpenOptionsExt for std::fs::OpenOptions {
        fn mode(&mut self, _mode: u32) -> &mut Self {
            self
        }
    }

    /// `mode` when creating a directory: ignored, like [`OpenOptionsExt::mode`].
    pub trait DirBuilderExt {
        fn mode(&mut self, mode: u32) -> &mut Self;
    }
    impl DirBuilderExt for std::fs::DirBuilder {
        fn mode(&mut self, _mode: u32) -> &mut Self {
            self
        }
    }

    /// Positional reads. Unlike `pread`, Windows' moves the file position too; callers read
    /// only at offsets.
    pub trait FileExt {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
        fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
            while !buf.is_empty() {
                match self.read_at(buf, offset) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => {
                        buf = &mut buf[n..];
                        offset += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }
    impl FileExt for std::fs::File {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            std::os::windows::fs::FileExt::seek_read(self, buf, offset)
        }
    }

    /// A symlink to a file (needs the privilege, or developer mode).
    pub fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
        std::os::windows::fs::symlink_file(original, link)
    }

    /// Permission bits: none on Windows.
    pub fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    /// Executable by extension (`PATHEXT`), not by a bit: any regular file counts, the launcher
    /// reports what cannot run.
    pub fn is_executable(m: &std::fs::Metadata) -> bool {
        m.is_file()
    }

    /// Keeps the read-only attribute of `like`; owners are not changed.
    pub fn copy_mode_and_owner(f: &std::fs::File, like: &std::fs::Metadata) -> io::Result<()> {
        f.set_permissions(like.permissions())
    }
}

/// Handles, spelled as descriptors.
pub mod fd {
    use std::os::windows::io::{AsRawHandle, AsSocket};

    pub use std::os::windows::io::BorrowedSocket as BorrowedFd;
    pub use std::os::windows::io::OwnedHandle as OwnedFd;

    /// A handle's value, as pypm passes it around (`SpawnSpec::stdin`, the `listen` sockets).
    pub type RawFd = usize;

    /// What the servers' front polls: a socket.
    pub trait AsFd {
        fn as_fd(&self) -> BorrowedFd<'_>;
    }
    impl<T: AsSocket> AsFd for T {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.as_socket()
        }
    }

    /// A handle's or socket's value.
    pub trait AsRawFd {
        fn as_raw_fd(&self) -> RawFd;
    }
    impl<T: AsRawHandle> AsRawFd for T {
        fn as_raw_fd(&self) -> RawFd {
            self.as_raw_handle() as RawFd
        }
    }
}

/// Local sockets.
pub mod net {
    pub use crate::process::windows::net::{UnixDatagram, UnixListener, UnixStream};
}
