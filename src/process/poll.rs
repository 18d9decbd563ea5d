//! Waiting for file descriptors: the one `poll(2)` the log pump and the servers' front share.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Waits until one of `fds` is readable, hung up or in error, at most `timeout` (`None`: for as
/// long as it takes). Returns which ones are; all `false` when the wait timed out or a signal
/// interrupted it (the caller loops).
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut polled: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = match timeout {
        None => PollTimeout::NONE,
        // Rounded up, so what the caller waits for is due when the wait returns.
        Some(t) => {
            PollTimeout::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
        }
    };
    match nix::poll::poll(&mut polled, timeout) {
        Ok(_) => Ok(polled
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect()),
        Err(nix::errno::Errno::EINTR) => Ok(vec![false; fds.len()]),
        Err(e) => Err(e.into()),
    }
}

/// A pipe: (read end, write end). Children never inherit it: spawning closes every descriptor
/// it does not pass on.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_written_pipe_is_readable_and_an_empty_one_times_out() {
        let (r, w) = pipe().unwrap_or_else(|e| panic!("{e}"));
        let t = Some(Duration::from_millis(1));
        assert_eq!(wait_readable(&[r.as_fd()], t).ok(), Some(vec![false]));
        std::fs::File::from(w)
            .write_all(b"x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wait_readable(&[r.as_fd()], None).ok(), Some(vec![true]));
    }
}
