//! SPEC §7: the HTTP API, `/metrics`, the token, the DNS-rebinding checks, `pypm dashboard`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// One HTTP/1.1 exchange on a new connection: (status, head, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP API");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked bodies: keep only the payload lines (our bodies are JSON or text).
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn token_of(p: &Project) -> String {
    std::fs::read_to_string(p.state_dir().join("token"))
        .expect("state_dir/token")
        .trim()
        .to_string()
}

#[test]
fn the_api_needs_the_token_and_answers_like_the_cli() {
    let p = Project::new();
    let port = free_port();
    let talker = p.sh(
        "talker",
        "echo first line\necho second line\necho to stderr >&2\nexec sleep 300\n",
    );
    let apps = format!(
        "[pypm]\nhttp = \"127.0.0.1:{port}\"\n\n[apps.talker]\ncommand = {talker}\n\n[apps.idle]\ncommand = \"sleep 300\"\ninstances = 2\n"
    );
    p.write_config(&apps);
    p.up_d();
    let token = token_of(&p);

    assert_eq!(file_mode(&p.state_dir().join("token")), 0o600);
    let url = p.pypm_ok(&["dashboard"], 0);
    assert_eq!(
        url.trim(),
        format!("http://127.0.0.1:{port}/?token={token}")
    );

    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];

    // No token, a wrong one: 401. /metrics needs none.
    assert_eq!(http(port, "GET", "/api/status", &[]).0, 401);
    assert_eq!(
        http(
            port,
            "GET",
            "/api/status",
            &[("Authorization", "Bearer nope")]
        )
        .0,
        401
    );
    let (code, _, page) = http(port, "GET", "/", &[]);
    assert_eq!(code, 401);
    assert!(
        page.contains("pypm dashboard"),
        "says how to get the URL: {page}"
    );

    // The status is `status --json`'s shape.
    let (code, _, body) = http(port, "GET", "/api/status", &auth);
    assert_eq!(code, 200, "{body}");
    let s = json(&body);
    assert!(s["config_error"].is_null());
    let names: Vec<&str> = s["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["talker", "idle.0", "idle.1"]);
    let (code, _, _) = http(port, "GET", &format!("/api/status?token={token}"), &[]);
    assert_eq!(code, 200, "the token as a query parameter");

    // The dashboard, opened with ?token=, sets the cookie the page's requests then carry.
    let (code, head, page) = http(port, "GET", &format!("/?token={token}"), &[]);
    assert_eq!(code, 200);
    assert!(page.contains("<title>pypm</title>"));
    assert!(head.contains("pypm_token="), "{head}");
    let cookie = format!("pypm_token={token}");
    assert_eq!(
        http(port, "GET", "/api/status", &[("Cookie", cookie.as_str())]).0,
        200
    );

    // DNS rebinding: a foreign Host or Origin is refused even with the token.
    let foreign = [
        ("Authorization", bearer.as_str()),
        ("Host", "evil.example:80"),
    ];
    assert_eq!(http(port, "GET", "/api/status", &foreign).0, 403);
    let origin = [
        ("Authorization", bearer.as_str()),
        ("Origin", "http://evil.example"),
    ];
    assert_eq!(http(port, "GET", "/api/status", &origin).0, 403);
    assert_eq!(
        http(port, "GET", "/metrics", &[("Host", "evil.example")]).0,
        403
    );
    let local = format!("localhost:{port}");
    let host_ok = [("Authorization", bearer.as_str()), ("Host", local.as_str())];
    assert_eq!(http(port, "GET", "/api/status", &host_ok).0, 200);

    // /metrics: every family of SPEC §8, labelled app and instance.
    let (code, head, text) = http(port, "GET", "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain")
    );
    for family in [
        "pypm_instance_up",
        "pypm_instance_state",
        "pypm_instance_restarts_total",
        "pypm_instance_cpu_seconds_total",
        "pypm_instance_memory_bytes",
        "pypm_instance_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(
        text.contains("pypm_instance_up{app=\"idle\",instance=\"1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pypm_instance_state{app=\"talker\",instance=\"0\",state=\"running\"} 1")
    );
    assert!(text.lines().any(|l| l == "pypm_config_error 0"));

    // One app, as `inspect --json`; an unknown app is a 404.
    let (code, _, body) = http(port, "GET", "/api/apps/idle", &auth);
    assert_eq!(code, 200, "{body}");
    let a = json(&body);
    assert_eq!(a["app"], "idle");
    assert_eq!(a["instances"].as_array().map(Vec::len), Some(2));
    assert_eq!(http(port, "GET", "/api/apps/nope", &auth).0, 404);
    assert_eq!(http(port, "GET", "/api/nothing", &auth).0, 404);
    assert_eq!(http(port, "GET", "/api/reload", &auth).0, 405);

    // Logs: the order of `pypm logs APP` (stdout's lines, then stderr's).
    let ok = wait_until(Duration::from_secs(10), || {
        let (_, _, body) = http(port, "GET", "/api/logs/talker?n=5", &auth);
        json(&body)["lines"].as_array().map(Vec::len) == Some(3)
    });
    assert!(ok, "the talker's three lines never showed");
    let (_, _, body) = http(port, "GET", "/api/logs/talker?n=1", &auth);
    let lines = json(&body)["lines"].clone();
    assert_eq!(
        lines,
        serde_json::json!([
            {"instance": "talker", "stream": "out", "line": "second line"},
            {"instance": "talker", "stream": "err", "line": "to stderr"},
        ])
    );

    // Plan, reload and restart through the API.
    let (code, _, body) = http(port, "GET", "/api/plan", &auth);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["changes"], serde_json::json!([]));
    let old = p.pid_of("idle.0").expect("idle.0 runs");
    let (code, _, body) = http(port, "POST", "/api/apps/idle/restart", &auth);
    assert_eq!(code, 200, "{body}");
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap_or("")
            .contains("restarting")
    );
    p.wait_new_pid("idle.0", old, Duration::from_secs(20));
    p.write_config(&format!("{apps}\n[apps.extra]\ncommand = \"sleep 301\"\n"));
    let (code, _, body) = http(port, "GET", "/api/plan", &auth);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["changes"][0]["app"], "extra");
    let (code, _, body) = http(port, "POST", "/api/reload", &auth);
    assert_eq!(code, 200, "{body}");
    p.wait_state("extra", "running", Duration::from_secs(10));
    // An invalid file: 422, nothing changes.
    p.write_config("[apps.broken\n");
    let (code, _, body) = http(port, "POST", "/api/reload", &auth);
    assert_eq!(code, 422, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap_or("")
            .contains("invalid")
    );
    let (_, _, text) = http(port, "GET", "/metrics", &[]);
    assert!(text.lines().any(|l| l == "pypm_config_error 1"), "{text}");
    p.pypm_ok(&["down"], 0);
}

#[test]
fn events_and_logs_stream_as_server_sent_events() {
    let p = Project::new();
    let port = free_port();
    let ticker = p.sh(
        "ticker",
        "i=0\nwhile true; do i=$((i+1)); echo tick $i; sleep 0.2; done\n",
    );
    p.write_config(&format!(
        "[pypm]\nhttp = \"127.0.0.1:{port}\"\n\n[apps.ticker]\ncommand = {ticker}\n\n[apps.idle]\ncommand = \"sleep 300\"\n"
    ));
    p.up_d();
    let token = token_of(&p);

    let open = |path: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("send");
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut h = String::new();
            r.read_line(&mut h).expect("header");
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if h.to_ascii_lowercase().starts_with("content-type") {
                assert!(h.contains("text/event-stream"), "{h}");
            }
        }
        r
    };
    let next_data = |r: &mut BufReader<TcpStream>| -> Value {
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).expect("read an event") == 0 {
                panic!("the stream ended");
            }
            if let Some(d) = l.strip_prefix("data: ") {
                return json(d.trim_end());
            }
        }
    };

    // Events: a restart shows up as it happens.
    let mut ev = open("/api/events");
    let old = p.pid_of("idle").expect("idle runs");
    p.pypm_ok(&["restart", "idle"], 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let e = next_data(&mut ev);
        let started = e["event"] == "started" && e["app"] == "idle";
        seen.push(e);
        if started {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|e| e["event"] == "exited" && e["pid"] == old),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|e| e["event"] == "started" && e["app"] == "idle")
    );

    // Logs: the last lines, then new ones as they are written.
    let mut lg = open("/api/logs/ticker?n=2&follow=1&stream=out");
    let first = next_data(&mut lg);
    assert_eq!(first["stream"], "out");
    assert!(first["line"].as_str().unwrap_or("").starts_with("tick "));
    let n = |v: &Value| -> u64 {
        v["line"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("tick ")
            .parse()
            .unwrap_or(0)
    };
    let mut last = n(&first);
    for _ in 0..4 {
        let e = next_data(&mut lg);
        assert_eq!(n(&e), last + 1, "lines in order, none skipped: {e}");
        last = n(&e);
    }
    // The followed status: now, then again after a restart (an event), with the new pid.
    let mut st = open("/api/status?follow=1&app=idle");
    let now = next_data(&mut st);
    let idle_pid = p.pid_of("idle").expect("idle runs");
    assert_eq!(now["instances"][0]["pid"], idle_pid, "{now}");
    assert!(now["config_error"].is_null(), "{now}");
    p.pypm_ok(&["restart", "idle"], 0);
    let new_pid = p.pid_of("idle").expect("idle runs again");
    assert_ne!(new_pid, idle_pid);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut latest = now;
    while Instant::now() < deadline && latest["instances"][0]["pid"] != new_pid {
        latest = next_data(&mut st);
    }
    assert_eq!(latest["instances"][0]["pid"], new_pid, "{latest}");
    assert_eq!(
        latest["instances"].as_array().map(Vec::len),
        Some(1),
        "only `idle`"
    );
    drop(ev);
    drop(lg);
    drop(st);
    p.pypm_ok(&["down"], 0);
}

#[test]
fn dashboard_command_prints_the_running_servers_url_or_says_why_not() {
    let p = Project::new();
    p.write_config("[apps.a]\ncommand = \"sleep 300\"\n");
    let out = p.pypm(&["dashboard"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "no supervisor: {}",
        describe(&out)
    );
    p.up_d();
    let out = p.pypm(&["dashboard"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http ="));
    let port = free_port();
    p.write_config(&format!(
        "[pypm]\nhttp = \"127.0.0.1:{port}\"\n[apps.a]\ncommand = \"sleep 300\"\n"
    ));
    p.pypm_ok(&["reload"], 0);
    let url = format!("http://127.0.0.1:{port}/?token={}", token_of(&p));
    assert_eq!(p.pypm_ok(&["dashboard"], 0).trim(), url);
    // The URL is the running server's, whatever the file says now.
    p.write_config("[pypm]\nhttp = \"127.0.0.1:1\"\n[apps.a\n");
    assert_eq!(p.pypm_ok(&["dashboard"], 0).trim(), url);
    p.pypm_ok(&["down"], 0);
}

#[test]
fn a_port_in_use_fails_the_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let p = Project::new();
    p.write_config(&format!(
        "[pypm]\nhttp = \"127.0.0.1:{port}\"\n[apps.a]\ncommand = \"sleep 300\"\n"
    ));
    let out = p.pypm(&["up", "-d", "--wait", "10s"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &p.supervisor_log_tail();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(p.procs_with("sleep 300").is_empty(), "no app started");
}
