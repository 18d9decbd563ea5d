//! The server and client together, over a real socket in a temporary directory.

use crate::process::ext::fs::PermissionsExt;
use crate::process::ext::net::UnixStream;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::client::{self, ClientError};
use super::protocol::{
    ErrorKind, MAX_FRAME, Request, Response, ResponseFrame, StatusReport, VERSION,
};
use super::server::{Server, Stopper, peer_allowed, socket_path};

const T: Duration = Duration::from_secs(5);

fn fake_handler(req: Request) -> Response {
    match req {
        Request::Ping => Response::Pong {
            pid: 42,
            config_file: "pypm.toml".into(),
            http: None,
        },
        Request::Status { app, .. } => Response::Status(StatusReport {
            profiles: Vec::new(),
            config_file: format!("for {}", app.unwrap_or_default()),
            config_error: None,
            instances: vec![],
        }),
        _ => Response::error(ErrorKind::Failed, "not in this test"),
    }
}

struct Running {
    stopper: Stopper,
    done: std::sync::mpsc::Receiver<()>,
}

impl Running {
    fn start(state_dir: &Path) -> Running {
        let server = Server::bind(state_dir).unwrap_or_else(|e| panic!("bind: {e}"));
        let stopper = server.stopper();
        let handle = server
            .serve(
                std::path::PathBuf::from("/nonexistent/pypm.toml"),
                Arc::new(fake_handler),
            )
            .unwrap_or_else(|e| panic!("serve: {e}"));
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = handle.join();
            let _ = tx.send(());
        });
        Running { stopper, done }
    }

    /// Stops the accept thread and checks it ended.
    fn stop(self) {
        self.stopper.stop();
        assert!(
            self.done.recv_timeout(T).is_ok(),
            "accept thread did not stop"
        );
    }
}

fn raw_exchange(state_dir: &Path, bytes: Vec<u8>) -> ResponseFrame {
    let stream = UnixStream::connect(socket_path(state_dir)).unwrap_or_else(|e| panic!("{e}"));
    stream.set_read_timeout(Some(T)).unwrap_or_default();
    stream.set_write_timeout(Some(T)).unwrap_or_default();
    let mut writer = stream.try_clone().unwrap_or_else(|e| panic!("{e}"));
    // The server may answer before reading everything: write on the side.
    let w = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = w.join();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// An error answer as the CLI shows it (the one place that writes `error: `).
fn error_message(f: ResponseFrame) -> String {
    match f.response {
        Response::Error { message, code, .. } => {
            assert_eq!(code, 1);
            assert!(
                !message.starts_with("error"),
                "prefixed on the wire: {message}"
            );
            crate::commands::Failure::from_response(message, code).to_string()
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn socket_is_private_and_answers() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = tmp.path().join("nested").join(".pypm");
    let running = Running::start(&state);

    let dir_mode = std::fs::metadata(&state).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(dir_mode.ok(), Some(0o700));
    let sock_mode = std::fs::metadata(socket_path(&state)).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(sock_mode.ok(), Some(0o600));

    let pong = client::request(&state, Request::Ping, T).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pong,
        Response::Pong {
            pid: 42,
            config_file: "pypm.toml".into(),
            http: None,
        }
    );
    let status = client::request(
        &state,
        Request::Status {
            app: Some("api".into()),
            light: false,
        },
        T,
    );
    assert!(matches!(status, Ok(Response::Status(r)) if r.config_file == "for api"));
    assert!(client::is_running(&state));

    running.stop();
    assert!(!socket_path(&state).exists(), "stop removes the socket");
    assert!(!client::is_running(&state));
}

#[test]
fn existing_wide_dir_is_made_private() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::bind(&state).unwrap_or_else(|e| panic!("{e}"));
    let mode = std::fs::metadata(&state).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o700));
    drop(server);
}

#[test]
fn version_mismatch_is_refused_with_both_versions() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let running = Running::start(tmp.path());
    let reply = raw_exchange(tmp.path(), b"{\"v\":99,\"cmd\":\"ping\"}\n".to_vec());
    assert_eq!(reply.v, VERSION);
    assert_eq!(
        error_message(reply),
        format!("error: protocol version 99, supervisor speaks {VERSION}")
    );
    running.stop();
}

#[test]
fn another_files_request_gets_exit_code_3() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let running = Running::start(tmp.path());
    let reply = raw_exchange(
        tmp.path(),
        format!("{{\"v\":{VERSION},\"config\":\"/elsewhere/pypm.toml\",\"cmd\":\"ping\"}}\n")
            .into_bytes(),
    );
    let Response::Error {
        message,
        code,
        cause,
    } = reply.response
    else {
        panic!("expected an error, got {:?}", reply.response);
    };
    assert_eq!((code, cause), (3, ErrorKind::OtherFile));
    let failure = crate::commands::Failure::from_response(message, code);
    assert_eq!(failure.exit_code(), 3);
    assert_eq!(
        failure.to_string(),
        "error: no supervisor is running for `/elsewhere/pypm.toml`: the one in this state_dir \
         runs `/nonexistent/pypm.toml`\n\ngive each file its own `state_dir` in [pypm]"
    );
    running.stop();
}

#[test]
fn oversize_and_malformed_frames_get_an_error_frame() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let running = Running::start(tmp.path());

    let huge = vec![b'a'; MAX_FRAME + 10];
    let msg = error_message(raw_exchange(tmp.path(), huge));
    assert!(msg.contains("larger than"), "{msg}");

    let msg = error_message(raw_exchange(tmp.path(), b"not json\n".to_vec()));
    assert!(msg.starts_with("error: malformed request"), "{msg}");

    let msg = error_message(raw_exchange(
        tmp.path(),
        format!("{{\"v\":{VERSION},\"cmd\":\"fly\"}}\n").into_bytes(),
    ));
    assert!(msg.starts_with("error: malformed request"), "{msg}");

    // The server is still serving after bad peers.
    assert!(client::request(tmp.path(), Request::Ping, T).is_ok());
    running.stop();
}

#[test]
fn missing_or_stale_socket_is_not_running() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = client::request(&tmp.path().join("absent"), Request::Ping, T);
    assert!(matches!(r, Err(ClientError::NotRunning)), "{r:?}");
    let r = client::request(tmp.path(), Request::Ping, T);
    assert!(matches!(r, Err(ClientError::NotRunning)), "{r:?}");

    // A socket left by a supervisor that died: refused, and replaced by the next bind.
    let stale = Server::bind(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    drop(stale);
    assert!(socket_path(tmp.path()).exists());
    let r = client::request(tmp.path(), Request::Ping, T);
    assert!(matches!(r, Err(ClientError::NotRunning)), "{r:?}");
    let running = Running::start(tmp.path());
    assert!(client::request(tmp.path(), Request::Ping, T).is_ok());
    running.stop();
}

#[test]
fn live_supervisor_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let running = Running::start(tmp.path());
    let second = Server::bind(tmp.path());
    assert!(
        matches!(&second, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse),
        "{:?}",
        second.err()
    );
    assert!(client::request(tmp.path(), Request::Ping, T).is_ok());
    running.stop();
}

#[test]
fn silent_supervisor_times_out() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Bound but never accepting: the request is queued and never answered.
    let server = Server::bind(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    let r = client::request(tmp.path(), Request::Ping, Duration::from_millis(100));
    assert!(matches!(r, Err(ClientError::Timeout(_))), "{r:?}");
    drop(server);
}

#[test]
fn only_our_uid_and_root_may_connect() {
    assert!(peer_allowed(1000, 1000));
    assert!(peer_allowed(0, 1000));
    assert!(peer_allowed(0, 0));
    assert!(!peer_allowed(1001, 1000));
    assert!(!peer_allowed(1000, 0));
}
