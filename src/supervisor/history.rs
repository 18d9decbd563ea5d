//! Recent CPU, memory and state per instance, for `pypm monit` and the dashboard's charts.
//!
//! Kept only while someone looks: a `history` request (the TUI, `GET /api/history`) opens a
//! [`WATCH_WINDOW`], and a StatsD outlet (which samples anyway) keeps it open. While open, the
//! loop samples every [`SAMPLE_INTERVAL`] as one more deadline it sleeps until; once it closes
//! the rings are dropped and the supervisor goes back to sleeping in `recv` with no timer, so an
//! idle supervisor with no viewer does no periodic work. This module owns the rings and the
//! timing only; the samples come from the supervisor's own status rows.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::state::State;
use crate::control::protocol::{HistoryReport, HistorySample, HistorySeries, Row};

/// One sample every 2 s ...
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// ... for the last 15 minutes.
pub const CAPACITY: usize = 450;
/// A `history` request keeps sampling on for this long (a viewer asks again well within it).
pub const WATCH_WINDOW: Duration = Duration::from_secs(60);

/// One sample: 16 bytes (see `sample_is_16_bytes`), so a full ring is 7,200 bytes per instance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    /// Unix time, seconds.
    t: u32,
    /// RSS in KiB; `u32::MAX` = not running / unknown.
    rss_kib: u32,
    /// NaN = unknown.
    cpu: f32,
    state: State,
}

#[derive(Debug, Default)]
pub struct History {
    rings: HashMap<(String, u32), VecDeque<Sample>>,
    /// Sampling stays on until then (the last `history` request + [`WATCH_WINDOW`]).
    watched_until: Option<Instant>,
    /// The next sample is due then; `None` while nobody watches.
    next_at: Option<Instant>,
}

impl History {
    /// The deadline the loop must wake for, if any.
    pub fn wake_at(&self) -> Option<Instant> {
        self.next_at
    }

    /// A viewer asked: keep sampling until `now + WATCH_WINDOW`. True when a sample should be
    /// taken right away (sampling was off).
    pub fn watch(&mut self, now: Instant) -> bool {
        self.watched_until = Some(now + WATCH_WINDOW);
        self.next_at.is_none()
    }

    /// Whether a sample is due at `now`. When nobody watches any more (and `keep` is false: no
    /// outlet needs it) sampling stops and the rings are freed.
    pub fn due(&mut self, now: Instant, keep: bool) -> bool {
        let Some(at) = self.next_at else {
            return false;
        };
        if at > now {
            return false;
        }
        if !keep && self.watched_until.is_none_or(|w| w <= now) {
            self.stop();
            return false;
        }
        true
    }

    /// Starts sampling for an outlet that needs it (no viewer window).
    pub fn keep_on(&mut self, now: Instant) -> bool {
        if self.next_at.is_some() {
            return false;
        }
        self.next_at = Some(now);
        true
    }

    fn stop(&mut self) {
        self.next_at = None;
        self.watched_until = None;
        self.rings = HashMap::new();
    }

    /// Records one sample per row taken at `wall`, and schedules the next.
    pub fn record(&mut self, rows: &[Row], now: Instant, wall: SystemTime) {
        let t = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        for r in rows {
            let key = (r.app.clone(), r.instance);
            let ring = self
                .rings
                .entry(key.clone())
                .or_insert_with(|| VecDeque::with_capacity(CAPACITY));
            if ring.len() == CAPACITY {
                ring.pop_front();
            }
            ring.push_back(Sample {
                t,
                rss_kib: r.memory_bytes.map_or(u32::MAX, |b| {
                    u32::try_from(b / 1024).unwrap_or(u32::MAX - 1)
                }),
                cpu: r.cpu_percent.map_or(f32::NAN, |c| c as f32),
                state: r.state,
            });
            seen.insert(key);
        }
        // Instances that are gone (removed apps, scaled down) take their rings with them.
        self.rings.retain(|k, _| seen.contains(k));
        self.next_at = Some(now + SAMPLE_INTERVAL);
    }

    /// The rings of `rows`' instances (in their order), oldest sample first.
    pub fn report(&self, rows: &[Row]) -> HistoryReport {
        HistoryReport {
            interval_secs: SAMPLE_INTERVAL.as_secs_f64(),
            capacity: CAPACITY as u32,
            instances: rows
                .iter()
                .map(|r| HistorySeries {
                    name: r.name.clone(),
                    app: r.app.clone(),
                    instance: r.instance,
                    samples: self
                        .rings
                        .get(&(r.app.clone(), r.instance))
                        .map(|ring| ring.iter().copied().map(Sample::to_protocol).collect())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Bytes held by the rings (for the docs' memory bound and the tests).
    #[cfg(test)]
    pub fn ring_bytes(&self) -> usize {
        self.rings
            .values()
            .map(|r| r.capacity() * std::mem::size_of::<Sample>())
            .sum()
    }
}

impl Sample {
    fn to_protocol(self) -> HistorySample {
        HistorySample {
            t: f64::from(self.t),
            cpu_percent: (!self.cpu.is_nan()).then_some(f64::from(self.cpu)),
            memory_bytes: (self.rss_kib != u32::MAX).then_some(u64::from(self.rss_kib) * 1024),
            state: self.state.as_str().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, idx: u32, state: &str, cpu: Option<f64>, mem: Option<u64>) -> Row {
        Row {
            name: app.into(),
            app: app.into(),
            instance: idx,
            state: state.into(),
            pid: None,
            uptime_secs: None,
            restarts: 0,
            cpu_percent: cpu,
            memory_bytes: mem,
            ready: false,
            reason: None,
            last_exit: None,
        }
    }

    #[test]
    fn sample_is_16_bytes() {
        // docs/monitoring.md states the bound: 450 samples x 16 bytes = 7,200 bytes per instance.
        assert_eq!(std::mem::size_of::<Sample>(), 16);
    }

    #[test]
    fn idle_without_a_viewer_has_no_deadline() {
        let h = History::default();
        assert_eq!(h.wake_at(), None);
    }

    #[test]
    fn a_viewer_starts_sampling_and_it_stops_after_the_window() {
        let t0 = Instant::now();
        let mut h = History::default();
        assert!(h.watch(t0), "first request samples at once");
        let rows = [row("api", 0, "running", Some(12.5), Some(10 * 1024 * 1024))];
        h.record(
            &rows,
            t0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        );
        assert_eq!(h.wake_at(), Some(t0 + SAMPLE_INTERVAL));
        assert!(!h.watch(t0), "already sampling");
        assert!(!h.due(t0 + Duration::from_secs(1), false));
        assert!(h.due(t0 + SAMPLE_INTERVAL, false));
        let r = h.report(&rows);
        assert_eq!(r.instances[0].samples.len(), 1);
        let s = &r.instances[0].samples[0];
        assert_eq!(s.t, 1000.0);
        assert_eq!(s.cpu_percent, Some(12.5));
        assert_eq!(s.memory_bytes, Some(10 * 1024 * 1024));
        assert_eq!(s.state, "running");
        // Nobody asked again: the next due time after the window frees everything.
        h.record(&rows, t0 + SAMPLE_INTERVAL, SystemTime::UNIX_EPOCH);
        let late = t0 + WATCH_WINDOW + SAMPLE_INTERVAL;
        assert!(!h.due(late, false));
        assert_eq!(h.wake_at(), None);
        assert_eq!(h.ring_bytes(), 0);
        assert!(h.report(&rows).instances[0].samples.is_empty());
    }

    #[test]
    fn an_outlet_keeps_sampling_without_a_viewer() {
        let t0 = Instant::now();
        let mut h = History::default();
        assert!(h.keep_on(t0));
        assert!(h.due(t0 + WATCH_WINDOW * 2, true));
    }

    #[test]
    fn the_ring_is_bounded_and_unknowns_stay_unknown() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.watch(t0);
        for k in 0..(CAPACITY as u64 + 50) {
            let rows = [row("w", 1, "backoff", None, None)];
            h.record(&rows, t0, SystemTime::UNIX_EPOCH + Duration::from_secs(k));
        }
        let r = h.report(&[row("w", 1, "backoff", None, None)]);
        let s = &r.instances[0].samples;
        assert_eq!(s.len(), CAPACITY);
        assert_eq!(s[0].t, 50.0, "oldest dropped first");
        assert_eq!(s[0].cpu_percent, None);
        assert_eq!(s[0].memory_bytes, None);
        assert!(h.ring_bytes() <= CAPACITY * 16 + 64 * 16);
        // A removed instance loses its ring.
        h.record(
            &[row("other", 0, "running", None, None)],
            t0,
            SystemTime::UNIX_EPOCH,
        );
        assert!(
            h.report(&[row("w", 1, "backoff", None, None)]).instances[0]
                .samples
                .is_empty()
        );
    }
}
