//! The supervisor's side of the control socket (SPEC §4): `state_dir` is 0700, `pypm.sock` is
//! created 0600 (umask set around bind, never chmod after), and a peer whose uid is neither ours
//! nor root's is refused.
//!
//! One request per connection, each answered on its own short-lived thread once it has arrived
//! whole (the bounded front of [`super::gate`]); the handler decides everything. This module owns the socket file and the framing, nothing about supervision.

use crate::process::ext::fs::MetadataExt;
use crate::process::ext::net::{UnixListener, UnixStream};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::gate;
use super::protocol::{
    ErrorKind, MAX_FRAME, Request, RequestFrame, Response, ResponseFrame, VERSION,
};

/// The request handler: called once per request, from a connection thread.
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// How long a connected peer may take to send its request, and to take our answer.
const PEER_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The control socket of a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("pypm.sock")
}

/// A bound, not yet serving, control socket.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

/// Stops a serving [`Server`]: the socket file is removed and the accept thread ends.
#[derive(Clone)]
pub struct Stopper {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Stopper {
    /// Idempotent. Connections already accepted finish on their own threads. The file is gone
    /// when this returns (the process may exit right after; a thread left to remove it could
    /// lose that race, or, later, remove the socket of the next supervisor).
    pub fn stop(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            // Wakes the blocking accept; the accept thread sees the flag and ends.
            let _ = UnixStream::connect(&self.path);
            if let Err(e) = std::fs::remove_file(&self.path)
                && e.kind() != io::ErrorKind::NotFound
            {
                log::warn!("cannot remove `{}`: {e}", self.path.display());
            }
        }
    }
}

impl Server {
    /// Creates `state_dir` (0700), replaces a stale socket, and binds `state_dir/pypm.sock` (0600).
    ///
    /// Fails with [`io::ErrorKind::AddrInUse`] when a live supervisor answers on the socket.
    pub fn bind(state_dir: &Path) -> io::Result<Server> {
        ensure_private_dir(state_dir)?;
        let path = socket_path(state_dir);
        if std::fs::symlink_metadata(&path).is_ok() {
            match UnixStream::connect(&path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("a supervisor is already listening on `{}`", path.display()),
                    ));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                    ) =>
                {
                    std::fs::remove_file(&path).map_err(|e| {
                        annotate(
                            e,
                            &format!("cannot remove stale socket `{}`", path.display()),
                        )
                    })?;
                }
                Err(e) => {
                    return Err(annotate(
                        e,
                        &format!("cannot check existing socket `{}`", path.display()),
                    ));
                }
            }
        }
        let listener = crate::process::bind_private(&path)
            .map_err(|e| annotate(e, &format!("cannot bind `{}`", path.display())))?;
        Ok(Server {
            listener,
            path,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle that stops the accept thread started by [`Server::serve`].
    pub fn stopper(&self) -> Stopper {
        Stopper {
            path: self.path.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Serves on a thread until stopped, through the bounded front of [`super::gate`]: each
    /// request is answered on its own short-lived thread. A request made for another file than
    /// `config` (the file this supervisor runs) gets an `Error` of code 3 and does not reach
    /// `handler`.
    pub fn serve(self, config: PathBuf, handler: Handler) -> io::Result<JoinHandle<()>> {
        let service = Arc::new(Control {
            owner: Owner::new(config),
            handler,
        });
        std::thread::Builder::new()
            .name("pypm-control".into())
            .spawn(move || {
                gate::run(self.listener, service, LIMITS, &self.stop);
            })
    }
}

/// The control socket's limits (docs/reliability.md).
const LIMITS: gate::Limits = gate::Limits {
    max_pending: 128,
    max_request: MAX_REQUEST,
    deadline: PEER_IO_TIMEOUT,
    max_workers: 64,
    max_queued: 128,
    name: "pypm-control-conn",
};

/// The largest request line: requests are small (an app name, a file path, profile names).
pub const MAX_REQUEST: usize = 64 * 1024;

struct Control {
    owner: Owner,
    handler: Handler,
}

impl gate::Service for Control {
    type Conn = UnixStream;

    fn frame(&self, buf: &[u8]) -> gate::Framing {
        if memchr::memchr(b'\n', buf).is_some() {
            gate::Framing::Complete
        } else if buf.len() > MAX_REQUEST {
            gate::Framing::TooLarge
        } else {
            gate::Framing::Incomplete
        }
    }

    fn screen(&self, conn: &UnixStream) -> Option<Vec<u8>> {
        authorize(conn).err().map(frame_bytes)
    }

    fn refusal(&self, why: gate::Refusal) -> Vec<u8> {
        frame_bytes(match why {
            gate::Refusal::TooLarge => error(format!("request larger than {MAX_REQUEST} bytes")),
            gate::Refusal::Busy => Response::error(
                ErrorKind::Unavailable,
                format!(
                    "the supervisor is answering {} requests already; try again",
                    LIMITS.max_workers
                ),
            ),
        })
    }

    fn serve(&self, mut conn: UnixStream, request: Vec<u8>) {
        let response = match parse_request(&request) {
            Ok(frame) => match frame.config {
                Some(file) if !self.owner.owns(&file) => Response::error(
                    ErrorKind::OtherFile,
                    format!(
                        "no supervisor is running for `{}`: the one in this state_dir runs `{}`\n\ngive each file its own `state_dir` in [pypm]",
                        file.display(),
                        self.owner.given.display()
                    ),
                ),
                _ => (self.handler)(frame.request),
            },
            Err(refusal) => refusal,
        };
        let _ = conn.write_all(&frame_bytes(response));
        let _ = conn.flush();
    }
}

fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// `dir` exists, is a directory we own, and has mode 0700.
fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    use crate::process::ext::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| annotate(e, &format!("cannot create `{}`", dir.display())))?;
    }
    let meta = std::fs::metadata(dir)
        .map_err(|e| annotate(e, &format!("cannot read `{}`", dir.display())))?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("`{}` is not a directory", dir.display()),
        ));
    }
    let me = crate::process::euid();
    if meta.uid() != me && me != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "`{}` belongs to uid {}, not to this user (uid {me})",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o777 != 0o700 {
        crate::process::ext::fs::set_mode(dir, 0o700)
            .map_err(|e| annotate(e, &format!("cannot make `{}` private", dir.display())))?;
    }
    Ok(())
}

fn error(message: impl Into<String>) -> Response {
    Response::error(ErrorKind::Failed, message)
}

/// The file a supervisor runs, as given and as the file system resolves it.
struct Owner {
    given: PathBuf,
    canonical: Option<PathBuf>,
}

impl Owner {
    fn new(given: PathBuf) -> Owner {
        let canonical = given.canonicalize().ok();
        Owner { given, canonical }
    }

    fn owns(&self, file: &Path) -> bool {
        file == self.given
            || (self.canonical.is_some() && file.canonicalize().ok() == self.canonical)
    }
}

/// SPEC §4: our own uid, or root's.
pub(crate) fn peer_allowed(peer: u32, me: u32) -> bool {
    peer == me || peer == 0
}

// The error is the answer sent back at once; a boxed one would buy nothing on this cold path.
#[allow(clippy::result_large_err)]
fn authorize(stream: &UnixStream) -> Result<(), Response> {
    let me = crate::process::euid();
    match crate::process::peer_uid(stream) {
        Ok(Some(uid)) if peer_allowed(uid, me) => Ok(()),
        Ok(None) => Ok(()),
        Ok(Some(uid)) => {
            log::warn!("control socket: refused a peer with uid {uid}");
            Err(error(format!(
                "permission denied: uid {uid} may not control this supervisor (uid {me})"
            )))
        }
        Err(e) => Err(error(format!("cannot read the peer's credentials: {e}"))),
    }
}

/// Parses one request line, checking its version before its shape.
#[allow(clippy::result_large_err)]
fn parse_request(line: &[u8]) -> Result<RequestFrame, Response> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| error(format!("malformed request: {e}")))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(error(format!(
                "protocol version {v}, supervisor speaks {VERSION}"
            )));
        }
        None => return Err(error("malformed request: no protocol version `v`")),
    }
    serde_json::from_value::<RequestFrame>(value)
        .map_err(|e| error(format!("malformed request: {e}")))
}

/// A response as one line of the protocol.
fn frame_bytes(response: Response) -> Vec<u8> {
    let encode = |response| {
        serde_json::to_vec(&ResponseFrame {
            v: VERSION,
            response,
        })
    };
    let mut text = match encode(response) {
        Ok(t) if t.len() <= MAX_FRAME => t,
        Ok(_) => encode(error("the answer is larger than the protocol allows")).unwrap_or_default(),
        Err(e) => encode(error(format!("cannot encode the answer: {e}"))).unwrap_or_default(),
    };
    text.push(b'\n');
    text
}
