//! Waiting for a condition with a deadline, never a fixed sleep (the way pueue's
//! `tests/helper/wait.rs` does it): the wait returns what it waited for, and a timeout names it.

use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(10);

/// Polls `f` until it returns `Some`, and returns that value; after `timeout`, panics with
/// "timed out after {timeout:?} waiting for {what}".
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    wait_for_showing(what, timeout, f, String::new)
}

/// [`wait_for`] whose timeout message ends with `last()`: what the test saw last (a status, a
/// log tail), looked at once, after the deadline.
pub fn wait_for_showing<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    last: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            let last = last();
            let sep = if last.is_empty() {
                ""
            } else {
                "; last seen:\n"
            };
            panic!("timed out after {timeout:?} waiting for {what}{sep}{last}");
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `cond` until it holds (true) or `within` passes (false), for a caller that words its own
/// failure; [`wait_for`] names what it waited for by itself.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}
