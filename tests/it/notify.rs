//! SPEC §7, §8: notifiers (`exec`, `webhook`, `email`) and StatsD get every event they ask for,
//! and a slow one never delays supervision.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

fn lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn exec_notifier_gets_the_event_on_stdin_with_its_variables() {
    let p = Project::new();
    let crasher = p.sh("crasher", "sleep 0.3\nexit 3\n");
    let sink = p.path("notified");
    let script = p.write_script(
        "notify.sh",
        &format!(
            "#!/bin/sh\nread -r json\nprintf '%s|%s|%s|%s\\n' \"$PYPM_EVENT\" \"$PYPM_APP\" \"$PYPM_INSTANCE\" \"$json\" >> {}\n",
            sink.display()
        ),
    );
    p.write_config(&format!(
        "[apps.crasher]\ncommand = {crasher}\nrestart = \"never\"\n\n[[notify]]\nexec = \"{script}\"\nevents = [\"failed\"]\n"
    ));
    p.up_d();
    let ok = wait_until(Duration::from_secs(20), || !lines_of(&sink).is_empty());
    assert!(ok, "the notifier never ran\n{}", p.supervisor_log_tail());
    let lines = lines_of(&sink);
    assert_eq!(lines.len(), 1, "only `failed` was asked for: {lines:?}");
    let parts: Vec<&str> = lines[0].splitn(4, '|').collect();
    assert_eq!(parts[..3], ["failed", "crasher", "0"]);
    let e: Value = serde_json::from_str(parts[3]).expect("the event as JSON on stdin");
    assert_eq!(e["event"], "failed");
    assert_eq!(e["app"], "crasher");
    assert_eq!(e["instance"], 0);
    for k in ["ts", "pid", "detail"] {
        assert!(e.get(k).is_some(), "`{k}` missing from {e}");
    }
    p.pypm_ok(&["down"], 0);
}

#[test]
fn a_slow_notifier_never_delays_a_restart() {
    let p = Project::new();
    let started = p.path("started");
    let script = p.write_script(
        "slow.sh",
        &format!(
            "#!/bin/sh\necho x >> {}\nexec sleep 30\n",
            started.display()
        ),
    );
    p.write_config(&format!(
        "[apps.idle]\ncommand = \"sleep 300\"\n\n[[notify]]\nexec = \"{script}\"\n"
    ));
    p.up_d();
    assert!(wait_until(Duration::from_secs(10), || started.exists()));
    // The notifier is now stuck in its first event; kill the app: it is back at once.
    let old = p.pid_of("idle").expect("idle runs");
    kill(old, libc::SIGKILL);
    let t0 = Instant::now();
    p.wait_new_pid("idle", old, Duration::from_secs(5));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "restart took {:?}",
        t0.elapsed()
    );
    let down = Instant::now();
    p.pypm_ok(&["down"], 0);
    assert!(
        down.elapsed() < Duration::from_secs(15),
        "down waited on the notifier: {:?}",
        down.elapsed()
    );
}

/// A one-shot HTTP server: the first request's (head, body), answered 200.
fn one_request_server() -> (u16, mpsc::Receiver<(String, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut r = BufReader::new(conn);
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let mut w = r.into_inner();
            let _ =
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx
                .send((head, String::from_utf8_lossy(&body).into_owned()))
                .is_err()
            {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
fn webhook_receives_the_event_as_a_json_post() {
    let (port, rx) = one_request_server();
    let p = Project::new();
    p.write_config(&format!(
        "[apps.idle]\ncommand = \"sleep 300\"\n\n[[notify]]\nwebhook = \"http://127.0.0.1:{port}/hook\"\nevents = [\"started\"]\n"
    ));
    p.up_d();
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no POST arrived\n{}", p.supervisor_log_tail()));
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let e: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(e["event"], "started");
    assert_eq!(e["app"], "idle");
    p.pypm_ok(&["down"], 0);
}

#[test]
fn email_goes_through_the_smtp_server() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let Some(conn) = l.incoming().flatten().next() else {
            return;
        };
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut w = conn.try_clone().expect("clone");
        let mut r = BufReader::new(conn);
        let mut said = String::new();
        let _ = w.write_all(b"220 test ESMTP\r\n");
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            said.push_str(&line);
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    let _ = w.write_all(b"250 queued\r\n");
                }
                continue;
            }
            let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                "EHLO" => b"250-test\r\n250 OK\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go on\r\n"
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                }
                _ => b"250 OK\r\n",
            };
            let _ = w.write_all(reply);
        }
        let _ = tx.send(said);
    });
    let p = Project::new();
    p.write_config(&format!(
        "[apps.idle]\ncommand = \"sleep 300\"\n\n[[notify]]\nemail = \"ops@example.com\"\nsmtp = \"127.0.0.1:{port}\"\nevents = [\"started\"]\n"
    ));
    p.up_d();
    let said = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no mail\n{}", p.supervisor_log_tail()));
    assert!(said.contains("RCPT TO:<ops@example.com>"), "{said}");
    assert!(said.contains("Subject: pypm: started idle.0"), "{said}");
    assert!(said.contains("\"event\": \"started\""), "{said}");
    p.pypm_ok(&["down"], 0);
}

#[test]
fn statsd_gets_gauges_and_a_restart_counter() {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    sock.set_read_timeout(Some(Duration::from_millis(500))).ok();
    let port = sock.local_addr().expect("addr").port();
    let p = Project::new();
    p.write_config(&format!(
        "[pypm]\nstatsd = \"127.0.0.1:{port}\"\n\n[apps.idle]\ncommand = \"sleep 300\"\nrestart_delay = \"100ms\"\n"
    ));
    p.up_d();
    let mut got = String::new();
    let mut buf = [0u8; 2048];
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
            got.push('\n');
        }
        if got.contains("pypm.idle.0.up:1|g") && !killed {
            // Gauges are there; now a crash must count a restart.
            if let Some(pid) = p.pid_of("idle") {
                kill(pid, libc::SIGKILL);
                killed = true;
            }
        }
        if killed && got.contains("pypm.idle.restarts:1|c") {
            break;
        }
    }
    for want in [
        "pypm.idle.0.up:1|g",
        "pypm.idle.0.cpu_percent:",
        "pypm.idle.0.memory_bytes:",
        "pypm.idle.restarts:1|c",
    ] {
        assert!(got.contains(want), "`{want}` missing from:\n{got}");
    }
    p.pypm_ok(&["down"], 0);
}
