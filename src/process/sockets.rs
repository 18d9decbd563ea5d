//! Sockets: the `listen` sockets the supervisor binds once and passes to every instance (SPEC §5),
//! and the OS side of the private control socket (umask at bind, peer credentials).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Mutex;

/// Binds a listening TCP socket (SO_REUSEADDR, as std does) with `TCP_NODELAY` set: Linux
/// copies it to every accepted connection, as systemd's `NoDelay=` does. Servers that adopt an
/// inherited socket without knowing its family (uvicorn `--fd`) never set it themselves, and
/// without it every keep-alive response waits for the client's delayed ACK (~40 ms).
pub fn bind_tcp(addr: &str) -> io::Result<OwnedFd> {
    let listener = std::net::TcpListener::bind(addr)?;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `one` (a c_int of the size given) on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::warn!(
            "cannot set TCP_NODELAY on {addr}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(OwnedFd::from(listener))
}

/// Binds a listening unix socket, replacing a socket file left by an earlier run (never any
/// other kind of file).
pub fn bind_unix(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
    std::os::unix::net::UnixListener::bind(path).map(OwnedFd::from)
}

/// The umask is process-wide: serialise our changes so two binds never restore each other's.
static UMASK_LOCK: Mutex<()> = Mutex::new(());

/// Binds with umask 0177 so the socket is born 0600; there is no window where it is wider.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use nix::sys::stat::{Mode, umask};
    let _guard = UMASK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    bound
}

/// The uid of the process on the other end, where the OS tells us.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn peer_uid(stream: &UnixStream) -> io::Result<Option<u32>> {
    use nix::sys::socket::{getsockopt, sockopt};
    let cred = getsockopt(stream, sockopt::PeerCredentials).map_err(io::Error::from)?;
    Ok(Some(cred.uid()))
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
pub fn peer_uid(stream: &UnixStream) -> io::Result<Option<u32>> {
    let (uid, _) = nix::unistd::getpeereid(stream).map_err(io::Error::from)?;
    Ok(Some(uid.as_raw()))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)))]
pub fn peer_uid(_stream: &UnixStream) -> io::Result<Option<u32>> {
    // No way to ask; the 0700 directory and 0600 socket are the protection.
    Ok(None)
}

/// An HTTP(S) client for webhooks and `http` probes: `timeout` for the whole request, a non-2xx
/// status an answer rather than an error. Its TLS is the platform's choice: rustls with the
/// Mozilla roots compiled in on Linux (a static binary cannot rely on the system's OpenSSL),
/// Security.framework (native-tls) on macOS.
pub fn http_agent(timeout: std::time::Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false);
    #[cfg(target_os = "macos")]
    let config = config.tls_config(
        ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .build(),
    );
    config.build().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_listener_has_nodelay() {
        let fd = bind_tcp("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((rc, v != 0), (0, true));
    }
}
