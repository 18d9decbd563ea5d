//! Attacks on the supervisor's two doors: the control socket and the HTTP API. Under each, the
//! supervisor keeps answering `status` in under a second, and its threads, descriptors and memory
//! stay bounded (src/control/gate.rs; limits in docs/reliability.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::{raise_nofile, timed_status, vitals};

const APPS: &str = r#"
[apps.a]
command = "sleep 1000"

[apps.b]
command = "sleep 1000"
instances = 2
"#;

/// A running supervisor with three instances (and the HTTP API on `port`, when given).
fn supervisor(port: Option<u16>) -> (Project, i32) {
    let p = Project::new();
    let http = port
        .map(|port| format!("[pypm]\nhttp = \"127.0.0.1:{port}\"\n"))
        .unwrap_or_default();
    p.write_config(&format!("{http}{APPS}"));
    p.up_d();
    let pid = p.supervisor_pid().expect("supervisor pid");
    (p, pid)
}

/// Sends `bytes` as a request on a new connection and returns what comes back (or the error).
fn control_exchange(sock: &std::path::Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    s.set_write_timeout(Some(Duration::from_secs(15))).ok();
    let _ = s.write_all(bytes);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn control_socket_abuse_leaves_status_answering_and_the_supervisor_bounded() {
    raise_nofile(4096);
    let (p, pid) = supervisor(None);
    let sock = p.state_dir().join("pypm.sock");
    let (threads0, fds0, rss0) = vitals(pid);

    // Garbage, a line of deep nesting, a version from the future: each an error frame, quickly.
    assert!(control_exchange(&sock, b"\x00\xffnot json at all\n").contains("malformed request"));
    let deep = format!("{}\n", "[".repeat(50_000));
    assert!(control_exchange(&sock, deep.as_bytes()).contains("malformed request"));
    assert!(control_exchange(&sock, b"{\"v\": 99, \"kind\": \"status\"}\n").contains("version"));

    // A 100 MB line: refused once it passes the request limit, the rest never read.
    let big = std::thread::spawn({
        let sock = sock.clone();
        move || {
            let mut s = UnixStream::connect(&sock).expect("connect");
            s.set_write_timeout(Some(Duration::from_secs(15))).ok();
            s.set_read_timeout(Some(Duration::from_secs(15))).ok();
            let chunk = vec![b'x'; 1 << 20];
            let mut sent = 0usize;
            for _ in 0..100 {
                match s.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            (sent, out)
        }
    });

    // Answered before the flood below: 500 new connections evict the longest-waiting one, and
    // on a slow machine that could be this one before its first 64 KiB arrived.
    let (sent, answer) = big.join().expect("join");

    // 500 idle connections, and 20 clients that ask and never read.
    let idle: Vec<UnixStream> = (0..500)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    let deaf: Vec<UnixStream> = (0..20)
        .filter_map(|_| {
            let mut s = UnixStream::connect(&sock).ok()?;
            s.write_all(b"{\"v\":1,\"kind\":\"status\"}\n").ok()?;
            Some(s)
        })
        .collect();

    // Another uid cannot reach the socket at all (state_dir is 0700). Only root can become
    // another uid to try it.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let foreign = std::process::Command::new("python3")
            .args([
                "-c",
                "import os, socket, sys\nos.setgid(65534); os.setuid(65534)\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1]); print('connected')\nexcept OSError as e:\n    print('refused', e.errno)",
            ])
            .arg(&sock)
            .output()
            .expect("python3");
        let said = String::from_utf8_lossy(&foreign.stdout);
        assert!(said.starts_with("refused"), "another uid: {said}");
    }

    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        worst = worst.max(timed_status(&p));
    }
    let (threads1, fds1, rss1) = vitals(pid);
    assert!(
        answer.contains("request larger than"),
        "100 MB line: {answer}"
    );
    assert!(
        sent < 50 << 20,
        "the supervisor read {sent} bytes of the 100 MB line"
    );
    assert!(
        worst < Duration::from_secs(1),
        "status took {worst:?} under attack"
    );
    assert!(
        threads1 <= threads0 + 25,
        "threads {threads0} -> {threads1}"
    );
    assert!(rss1 < rss0 + 64 * 1024, "RSS {rss0} -> {rss1} KiB");
    println!(
        "chaos: control socket abuse (garbage, 50k-deep nesting, 100 MB line, 500 idle + 20 deaf connections, foreign uid): status worst {:.0} ms; threads {threads0} -> {threads1}; fds {fds0} -> {fds1}; RSS {rss0} -> {rss1} KiB",
        worst.as_secs_f64() * 1000.0
    );
    drop(idle);
    drop(deaf);
    // Back to the baseline once the attackers go (the deaf ones time out).
    assert!(
        wait_until(Duration::from_secs(20), || vitals(pid).1 <= fds0 + 2),
        "descriptors did not come back: {} (was {fds0})",
        vitals(pid).1
    );
}

/// Sends raw bytes to the HTTP API and reads the answer's status line (0: no answer).
fn http_raw(port: u16, bytes: &[u8]) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    s.set_write_timeout(Some(Duration::from_secs(15))).ok();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn token(p: &Project) -> String {
    std::fs::read_to_string(p.state_dir().join("token"))
        .expect("token")
        .trim()
        .to_string()
}

#[test]
fn http_abuse_leaves_the_api_answering_and_bounded() {
    raise_nofile(4096);
    let port = free_port();
    let (p, pid) = supervisor(Some(port));
    let token = token(&p);
    let host = format!("127.0.0.1:{port}");
    let get = |path: &str, extra: &str| {
        http_raw(
            port,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n{extra}\r\n").as_bytes(),
        )
    };
    let status_over_http = || {
        let began = Instant::now();
        let code = get("/api/status", "");
        (code, began.elapsed())
    };
    assert_eq!(status_over_http().0, 200);
    let (threads0, fds0, rss0) = vitals(pid);

    // Every mutating route refused without the token, with a foreign Host, with a foreign Origin.
    for route in ["/api/restart", "/api/reload", "/api/apps/a/restart"] {
        let bare = format!("POST {route} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            http_raw(port, bare.as_bytes()),
            401,
            "{route} without token"
        );
        let foreign_host = format!(
            "POST {route} HTTP/1.1\r\nHost: evil.example:{port}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            http_raw(port, foreign_host.as_bytes()),
            403,
            "{route} foreign Host"
        );
        let foreign_origin = format!(
            "POST {route} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            http_raw(port, foreign_origin.as_bytes()),
            403,
            "{route} foreign Origin"
        );
    }
    // Traversal in app names reaches no file.
    for path in [
        "/api/logs/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/logs/../../etc/passwd",
        "/api/apps/..%2Fa",
    ] {
        let code = get(path, "");
        assert!(matches!(code, 400 | 404), "{path}: {code}");
    }
    // A 10 MB header and a 100 MB body: 413 once past the limit.
    let huge_header = format!("X-Big: {}\r\n", "a".repeat(10 << 20));
    assert_eq!(get("/api/status", &huge_header), 413);
    let body_sender = std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return (0usize, 0u16);
        };
        s.set_write_timeout(Some(Duration::from_secs(15))).ok();
        s.set_read_timeout(Some(Duration::from_secs(15))).ok();
        let head = format!(
            "POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n",
            100 << 20
        );
        let _ = s.write_all(head.as_bytes());
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0;
        for _ in 0..100 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let code = String::from_utf8_lossy(&out)
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (sent, code)
    });

    // Answered before the crowd below, which evicts the longest-waiting connections.
    let (sent, code) = body_sender.join().expect("join");

    // Slowloris: 100 connections sending a header byte now and then.
    let mut slow: Vec<TcpStream> = (0..100)
        .filter_map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.write_all(b"GET /api/status HTTP/1.1\r\nX-Slow: ").ok()?;
            Some(s)
        })
        .collect();
    // 1,000 connections at once, each asking for the status.
    let crowd: Vec<TcpStream> = (0..1000)
        .filter_map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            let req = format!("GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n");
            s.write_all(req.as_bytes()).ok()?;
            Some(s)
        })
        .collect();
    let mut worst = Duration::ZERO;
    let mut peak_threads = 0;
    for _ in 0..5 {
        for s in slow.iter_mut() {
            let _ = s.write_all(b"a");
        }
        let (code, took) = status_over_http();
        assert_eq!(code, 200, "status over HTTP under attack");
        worst = worst.max(took);
        worst = worst.max(crate::timed_status(&p));
        peak_threads = peak_threads.max(vitals(pid).0);
    }
    let (_, fds1, rss1) = vitals(pid);
    assert_eq!(code, 413, "100 MB body");
    assert!(
        sent < 50 << 20,
        "the server read {sent} bytes of the 100 MB body"
    );
    assert!(
        worst < Duration::from_secs(1),
        "status took {worst:?} under attack"
    );
    assert!(
        peak_threads <= threads0 + 100,
        "threads {threads0} -> {peak_threads}"
    );
    assert!(rss1 < rss0 + 64 * 1024, "RSS {rss0} -> {rss1} KiB");
    println!(
        "chaos: HTTP abuse (no token / foreign Host / foreign Origin on every mutating route, traversal, 10 MB header, 100 MB body, 100 slowloris, 1,000 concurrent): status worst {:.0} ms; threads {threads0} -> peak {peak_threads}; fds {fds0} -> {fds1}; RSS {rss0} -> {rss1} KiB; {} of 1,000 connected",
        worst.as_secs_f64() * 1000.0,
        crowd.len()
    );
    drop(crowd);
    drop(slow);
    assert!(
        wait_until(Duration::from_secs(20), || vitals(pid).1 <= fds0 + 2),
        "descriptors did not come back: {} (was {fds0})",
        vitals(pid).1
    );
}
