//! The CLI's side of the control socket: one request, one answer, per connection.

use crate::process::ext::net::UnixStream;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{MAX_FRAME, Request, RequestFrame, Response, ResponseFrame, VERSION};
use super::server::socket_path;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or nobody listening on it.
    #[error("no supervisor is running")]
    NotRunning,
    #[error("cannot talk to the supervisor on `{path}`: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, #[source] io::Error),
    #[error("no answer from the supervisor within {}s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("the supervisor sent something this pypm does not understand: {0}")]
    Protocol(String),
}

/// Sends `req` to the supervisor of `state_dir` and waits at most `timeout` for its answer.
pub fn request(state_dir: &Path, req: Request, timeout: Duration) -> Result<Response, ClientError> {
    request_for(state_dir, None, req, timeout)
}

/// [`request`] on behalf of the configuration file `config`: a supervisor in `state_dir` that
/// runs another file answers `Error { code: 3 }` (see [`RequestFrame::config`]).
pub fn request_for(
    state_dir: &Path,
    config: Option<&Path>,
    req: Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let path = socket_path(state_dir);
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout(timeout),
        _ => ClientError::Io(path.clone(), e),
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) if is_not_running(&e) => return Err(ClientError::NotRunning),
        Err(e) => return Err(ClientError::Io(path.clone(), e)),
    };
    // A zero timeout means "none" to the OS; never wait forever.
    let timeout = timeout.max(Duration::from_millis(1));
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;

    let frame = RequestFrame {
        v: VERSION,
        // Absolute, so the supervisor (whose working directory may differ) resolves it alike.
        config: config.map(|c| c.canonicalize().unwrap_or_else(|_| c.to_path_buf())),
        request: req,
    };
    let mut text = serde_json::to_vec(&frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
    text.push(b'\n');
    stream.write_all(&text).map_err(io_err)?;
    stream.flush().map_err(io_err)?;

    let mut line = Vec::new();
    BufReader::new((&stream).take(MAX_FRAME as u64 + 1))
        .read_until(b'\n', &mut line)
        .map_err(io_err)?;
    if line.is_empty() {
        return Err(ClientError::Protocol(
            "the connection closed without an answer".into(),
        ));
    }
    if line.len() > MAX_FRAME {
        return Err(ClientError::Protocol(format!(
            "an answer larger than {MAX_FRAME} bytes"
        )));
    }
    decode(&line)
}

fn is_not_running(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    ) || crate::process::is_not_a_directory(e)
}

/// An error frame is understood whatever its version (it explains a mismatch); anything else must
/// be our version.
fn decode(line: &[u8]) -> Result<Response, ClientError> {
    // The common case in one pass; only an answer that does not parse is looked at again, to
    // tell a version mismatch from garbage.
    if let Ok(f) = serde_json::from_slice::<ResponseFrame>(line)
        && (f.v == VERSION || matches!(f.response, Response::Error { .. }))
    {
        return Ok(f.response);
    }
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let v = value.get("v").and_then(serde_json::Value::as_u64);
    match serde_json::from_value::<ResponseFrame>(value) {
        Ok(f) if f.v == VERSION || matches!(f.response, Response::Error { .. }) => Ok(f.response),
        _ if v != Some(u64::from(VERSION)) => Err(ClientError::Protocol(format!(
            "the supervisor speaks protocol version {}, this pypm speaks {VERSION}; restart it with `pypm down` then `pypm up -d`",
            v.map_or_else(|| "(none)".to_string(), |v| v.to_string())
        ))),
        Ok(f) => Ok(f.response),
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

/// Whether a supervisor answers on the control socket of `state_dir`. Only a real answer
/// counts: a socket still held by a supervisor that is dying accepts connections but never
/// answers.
pub fn is_running(state_dir: &Path) -> bool {
    matches!(
        request(state_dir, Request::Ping, Duration::from_secs(2)),
        Ok(Response::Pong { .. })
    )
}

/// Whether the socket accepts a connection at all (cheaper than [`is_running`]; for waiting on a
/// supervisor to go away).
pub fn accepts(state_dir: &Path) -> bool {
    UnixStream::connect(socket_path(state_dir)).is_ok()
}
