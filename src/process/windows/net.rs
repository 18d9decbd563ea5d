//! The control channel's "unix socket" on Windows: a loopback TCP listener whose address and a
//! random 128-bit token are written to the socket's path (`state_dir/pypm.sock`).
//!
//! AF_UNIX exists since Windows 10 1803 but not in Wine (8.0 answers `WSAEAFNOSUPPORT`), and a
//! named pipe cannot be polled by the servers' front (`control::gate`). A loopback socket can,
//! with `WSAPoll`, so the protocol and its server are the same code as on Unix. Who may connect:
//! whoever can read the file, which is the current user only (a protected DACL with the user's
//! SID alone, given when the file is created, see [`super::acl`]), because a connection must
//! send the token before anything else; a connection that sends another is closed before its
//! request is read.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::windows::io::{AsSocket, BorrowedSocket};
use std::path::Path;
use std::time::Duration;

const TOKEN_LEN: usize = 32;

/// A listening control socket.
#[derive(Debug)]
pub struct UnixListener {
    inner: TcpListener,
    token: [u8; TOKEN_LEN],
}

/// One end of a control connection. Accepted ends check the peer's token on the first reads.
#[derive(Debug)]
pub struct UnixStream {
    inner: TcpStream,
    /// Accepted ends: the token still expected and how much of it arrived.
    expect: Option<([u8; TOKEN_LEN], usize)>,
}

fn new_token() -> io::Result<[u8; TOKEN_LEN]> {
    let bytes = super::random_bytes(TOKEN_LEN / 2)?;
    let mut token = [0u8; TOKEN_LEN];
    for (i, b) in bytes.iter().enumerate() {
        let hex = format!("{b:02x}");
        token[2 * i..2 * i + 2].copy_from_slice(hex.as_bytes());
    }
    Ok(token)
}

impl UnixListener {
    /// Listens on 127.0.0.1 (a port the system picks) and writes `ADDRESS TOKEN` to `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let inner = TcpListener::bind(("127.0.0.1", 0))?;
        let token = new_token()?;
        let addr = inner.local_addr()?;
        let text = format!("{addr} {}\n", String::from_utf8_lossy(&token));
        super::acl::write_private_atomic(path.as_ref(), text.as_bytes())?;
        Ok(UnixListener { inner, token })
    }

    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.inner.accept()?;
        let _ = s.set_nodelay(true);
        Ok((
            UnixStream {
                inner: s,
                expect: Some((self.token, 0)),
            },
            addr,
        ))
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.inner.set_nonblocking(on)
    }
}

impl UnixStream {
    /// Connects to the listener whose address and token are in `path`. A file that names no
    /// listener (a stale one) is `ConnectionRefused`, a missing one `NotFound`, as with a socket.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let text = std::fs::read_to_string(path.as_ref())?;
        let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, "not a pypm socket");
        let (addr, token) = text.trim().split_once(' ').ok_or_else(refused)?;
        let addr: SocketAddr = addr.parse().map_err(|_| refused())?;
        if token.len() != TOKEN_LEN || !addr.ip().is_loopback() {
            return Err(refused());
        }
        let mut inner = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        let _ = inner.set_nodelay(true);
        inner.write_all(token.as_bytes())?;
        Ok(UnixStream {
            inner,
            expect: None,
        })
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.inner.set_nonblocking(on)
    }
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: self.inner.try_clone()?,
            expect: self.expect,
        })
    }
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(t)
    }
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(t)
    }
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Reads the rest of the peer's token; `Ok(true)` once it is whole and right.
    fn check_token(&mut self) -> io::Result<bool> {
        let Some((want, got)) = &mut self.expect else {
            return Ok(true);
        };
        while *got < TOKEN_LEN {
            let mut buf = [0u8; TOKEN_LEN];
            let n = self.inner.read(&mut buf[..TOKEN_LEN - *got])?;
            if n == 0 {
                return Ok(false);
            }
            if buf[..n] != want[*got..*got + n] {
                let _ = self.inner.shutdown(Shutdown::Both);
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "control socket: a peer without the token",
                ));
            }
            *got += n;
        }
        self.expect = None;
        Ok(true)
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.check_token()? {
            return Ok(0);
        }
        self.inner.read(buf)
    }
}

/// Reads of a shared reference: for connecting ends (the client); an accepted end must be read
/// through `&mut` until its token is checked.
impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.expect.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "control socket: the token is not checked yet",
            ));
        }
        (&self.inner).read(buf)
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl AsSocket for UnixStream {
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.inner.as_socket()
    }
}
impl AsSocket for UnixListener {
    fn as_socket(&self) -> BorrowedSocket<'_> {
        self.inner.as_socket()
    }
}

/// Datagram sockets (`NOTIFY_SOCKET`, the `notify` probe): not on Windows; `pypm check` refuses
/// the keys that need one, so these calls only fail.
#[derive(Debug)]
pub struct UnixDatagram {
    _private: (),
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "unix datagram sockets are not available on Windows",
    )
}

impl UnixDatagram {
    pub fn bind(_path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        Err(unsupported())
    }
    pub fn unbound() -> io::Result<UnixDatagram> {
        Err(unsupported())
    }
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Err(unsupported())
    }
    pub fn set_read_timeout(&self, _t: Option<Duration>) -> io::Result<()> {
        Err(unsupported())
    }
    pub fn recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(unsupported())
    }
    pub fn send_to(&self, _buf: &[u8], _path: impl AsRef<Path>) -> io::Result<usize> {
        Err(unsupported())
    }
}
