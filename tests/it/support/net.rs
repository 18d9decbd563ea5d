//! HTTP from the test side: free ports, one classified `GET`, and a load of clients.

use std::time::{Duration, Instant};

use super::wait_for_showing;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released; the kernel
/// hands ephemeral ports out in sequence, so it is not soon reused).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The outcome of one HTTP request made by [`http_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 200 with this body.
    Ok(String),
    Refused,
    Reset,
    /// The connection closed before a complete response.
    Eof,
    Timeout,
    /// Any other error or a non-200 answer.
    Failed(String),
}

/// `GET PATH` over a new HTTP/1.0 connection to 127.0.0.1:`port`, classified.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Outcome {
    use std::io::{ErrorKind, Read, Write};
    let classify = |e: std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused => Outcome::Refused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            Outcome::Reset
        }
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::Timeout,
        ErrorKind::UnexpectedEof => Outcome::Eof,
        _ => Outcome::Failed(e.to_string()),
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = match std::net::TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return classify(e),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        return classify(e);
    }
    let mut buf = Vec::new();
    if let Err(e) = s.read_to_end(&mut buf) {
        return classify(e);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return if text.is_empty() {
            Outcome::Eof
        } else {
            Outcome::Failed(format!("incomplete response {text:?}"))
        };
    };
    if !head.starts_with("HTTP/1.") || head.split(' ').nth(1) != Some("200") {
        return Outcome::Failed(format!("not a 200: {head:?}"));
    }
    // A response cut short by a close is an EOF, not a success.
    let want = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    if want.is_some_and(|n| body.len() < n) {
        return Outcome::Eof;
    }
    Outcome::Ok(body.to_string())
}

/// Counts of [`Outcome`]s by kind, and the successful bodies.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub ok: u64,
    pub refused: u64,
    pub reset: u64,
    pub eof: u64,
    pub timeout: u64,
    pub failed: u64,
    /// The first few unexpected outcomes, for messages.
    pub samples: Vec<String>,
    pub bodies: std::collections::BTreeMap<String, u64>,
    /// The slowest successful request.
    pub slowest: Duration,
}

impl Counts {
    pub fn add(&mut self, o: Outcome, took: Duration) {
        match &o {
            Outcome::Ok(body) => {
                self.ok += 1;
                self.slowest = self.slowest.max(took);
                *self.bodies.entry(body.trim().to_string()).or_default() += 1;
                return;
            }
            Outcome::Refused => self.refused += 1,
            Outcome::Reset => self.reset += 1,
            Outcome::Eof => self.eof += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::Failed(_) => self.failed += 1,
        }
        if self.samples.len() < 10 {
            self.samples.push(format!("{o:?} after {took:?}"));
        }
    }

    pub fn merge(&mut self, other: Counts) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.reset += other.reset;
        self.eof += other.eof;
        self.timeout += other.timeout;
        self.failed += other.failed;
        self.samples.extend(other.samples);
        self.slowest = self.slowest.max(other.slowest);
        for (k, v) in other.bodies {
            *self.bodies.entry(k).or_default() += v;
        }
    }

    pub fn errors(&self) -> u64 {
        self.refused + self.reset + self.eof + self.timeout + self.failed
    }

    pub fn summary(&self) -> String {
        format!(
            "ok {} refused {} reset {} eof {} timeout {} failed {} slowest {:?} samples {:?}",
            self.ok,
            self.refused,
            self.reset,
            self.eof,
            self.timeout,
            self.failed,
            self.slowest,
            self.samples
        )
    }
}

/// Client threads requesting `GET /` from 127.0.0.1:`port` over a new connection each time, until
/// [`Hammer::stop`].
pub struct Hammer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Requests sent and finished, whatever their outcome.
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Counts>>,
}

impl Hammer {
    pub fn start(port: u16, threads: usize, timeout: Duration) -> Hammer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, done) = (stop.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut c = Counts::default();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let o = http_get(port, "/", timeout);
                        c.add(o, t0.elapsed());
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    c
                })
            })
            .collect();
        Hammer {
            stop,
            done,
            threads,
        }
    }

    /// Waits until `n` more requests have finished (the load is flowing), at most `within`.
    pub fn wait_requests(&self, n: u64, within: Duration) {
        let count = || self.done.load(std::sync::atomic::Ordering::Relaxed);
        let goal = count() + n;
        wait_for_showing(
            &format!("the load to finish {n} more requests"),
            within,
            || (count() >= goal).then_some(()),
            || format!("{} of them finished", count() + n - goal),
        );
    }

    /// Stops the clients and sums their counts.
    pub fn stop(mut self) -> Counts {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Counts::default();
        for t in std::mem::take(&mut self.threads) {
            all.merge(t.join().expect("client thread panicked"));
        }
        all
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        // A test that panics mid-roll must not leave clients running.
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
