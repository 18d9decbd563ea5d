//! Facts about the running process and OS errors that the rest of pypm asks about, so that no
//! `libc`/`nix` call lives outside `process/`.

use std::io;

/// The effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Whether the process runs as root (it may then switch `user`, use system scopes, …).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A write failed because the file system (or the user's quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// A path had a component that is not a directory (`ENOTDIR`).
pub fn is_not_a_directory(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_recognised_by_their_os_code() {
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(is_not_a_directory(&io::Error::from_raw_os_error(
            libc::ENOTDIR
        )));
        assert!(!is_not_a_directory(&io::Error::other("x")));
        assert_eq!(is_root(), euid() == 0);
    }
}
