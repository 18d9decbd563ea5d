//! Cron schedules (`schedule`, `restart_schedule`) and the pure "when is the next run" function.
//!
//! Owns parsing and evaluation only: no clock is read here (`after` is an argument), so the
//! planner and the tests decide what "now" is.
//!
//! Expressions: five fields (`min hour dom month dow`), or six with a leading seconds field, the
//! shorthands `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`, and
//! `@reboot` (once when the supervisor starts; it has no next time). Day-of-month and day-of-week
//! combine with OR when both are restricted, as in vixie cron and cronie.
//!
//! Daylight saving time, as cronie does: a wall-clock time that falls in a spring-forward gap
//! (02:30 on the night clocks jump 02:00 → 03:00) runs once, at the first instant after the gap;
//! a time repeated by a fall-back (01:30 twice) runs once, at its first occurrence. Expressions
//! with a wildcard or a step in the seconds, minutes or hours field follow the real clock: they
//! run in both halves of a repeated hour and not in a skipped one. (croner implements these rules
//! as the Open Cron Pattern Specification states them.)

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A validated schedule expression.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// `@reboot`: once when the supervisor starts.
    Reboot,
    Cron(Box<Cron>),
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Schedule {
    /// Parses a schedule; the error is a lowercase message for a diagnostic.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("@reboot") {
            return Ok(Schedule::Reboot);
        }
        let t = if t.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            t
        };
        if t.starts_with('@')
            && ![
                "@yearly",
                "@annually",
                "@monthly",
                "@weekly",
                "@daily",
                "@hourly",
            ]
            .iter()
            .any(|n| t.eq_ignore_ascii_case(n))
        {
            return Err(format!(
                "unknown shorthand `{t}` (expected @yearly, @monthly, @weekly, @daily, @hourly or @reboot)"
            ));
        }
        if !t.starts_with('@') {
            let n = t.split_whitespace().count();
            if n != 5 && n != 6 {
                return Err(format!(
                    "a cron expression has 5 fields (minute hour day month weekday) or 6 with seconds first, not {n}"
                ));
            }
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        parser
            .parse(t)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| {
                let e = e.to_string().to_lowercase();
                format!("invalid cron expression: {}", e.trim_end_matches('.'))
            })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Schedule::Reboot => "@reboot",
            Schedule::Cron(c) => c.as_str(),
        }
    }

    pub fn is_reboot(&self) -> bool {
        matches!(self, Schedule::Reboot)
    }
}

/// Parses an IANA time zone name (`Europe/Paris`).
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}` (expected an IANA name such as `Europe/Paris`)")
    })
}

/// The system's time zone: `$TZ`, else `/etc/localtime`'s IANA name, else UTC.
pub fn system_timezone() -> Tz {
    if let Ok(tz) = std::env::var("TZ")
        && let Ok(z) = tz.trim_start_matches(':').parse::<Tz>()
    {
        return z;
    }
    iana_time_zone::get_timezone()
        .ok()
        .and_then(|n| n.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// The first run strictly after `after`, or `None` for `@reboot` or an expression that never
/// matches again (`0 0 30 2 *`).
pub fn next_run(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Reboot => None,
        Schedule::Cron(c) => {
            let local = tz.from_utc_datetime(&after.naive_utc());
            c.find_next_occurrence(&local, false)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }
    }
}

/// The next `n` runs after `after` (for `pypm check -v`).
pub fn next_runs(
    schedule: &Schedule,
    tz: Tz,
    after: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut t = after;
    while out.len() < n {
        match next_run(schedule, tz, t) {
            Some(next) => {
                out.push(next);
                t = next;
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn next_run_table() {
        // (expression, zone, after, expected next, all RFC 3339 in UTC)
        let table: &[(&str, &str, &str, Option<&str>)] = &[
            (
                "*/15 * * * *",
                "UTC",
                "2026-01-01T00:07:00Z",
                Some("2026-01-01T00:15:00Z"),
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2026-01-01T00:15:00Z",
                Some("2026-01-01T00:30:00Z"),
            ),
            (
                "* * * * * *",
                "UTC",
                "2026-01-01T00:00:00.400Z",
                Some("2026-01-01T00:00:01Z"),
            ),
            (
                "*/5 * * * * *",
                "UTC",
                "2026-01-01T00:00:03Z",
                Some("2026-01-01T00:00:05Z"),
            ),
            (
                "@hourly",
                "UTC",
                "2026-01-01T10:59:59Z",
                Some("2026-01-01T11:00:00Z"),
            ),
            (
                "@daily",
                "Europe/Paris",
                "2026-01-01T12:00:00Z",
                Some("2026-01-01T23:00:00Z"),
            ),
            (
                "@weekly",
                "UTC",
                "2026-12-02T00:00:00Z",
                Some("2026-12-06T00:00:00Z"),
            ),
            (
                "@monthly",
                "UTC",
                "2026-01-31T12:00:00Z",
                Some("2026-02-01T00:00:00Z"),
            ),
            (
                "@yearly",
                "UTC",
                "2026-06-01T00:00:00Z",
                Some("2027-01-01T00:00:00Z"),
            ),
            ("@reboot", "UTC", "2026-06-01T00:00:00Z", None),
            // Month ends: the 31st skips the months that have none.
            (
                "0 0 31 * *",
                "UTC",
                "2026-04-01T00:00:00Z",
                Some("2026-05-31T00:00:00Z"),
            ),
            (
                "0 0 L * *",
                "UTC",
                "2026-02-01T00:00:00Z",
                Some("2026-02-28T00:00:00Z"),
            ),
            // Leap days: Feb 29 only in leap years.
            (
                "0 0 29 2 *",
                "UTC",
                "2026-03-01T00:00:00Z",
                Some("2028-02-29T00:00:00Z"),
            ),
            (
                "0 0 L 2 *",
                "UTC",
                "2028-01-01T00:00:00Z",
                Some("2028-02-29T00:00:00Z"),
            ),
            (
                "0 12 28-29 2 *",
                "UTC",
                "2027-02-28T13:00:00Z",
                Some("2028-02-28T12:00:00Z"),
            ),
            // DST, Europe/Paris: 2026-03-29 02:00 CET → 03:00 CEST (02:30 does not exist).
            // A fixed time in the gap runs once, right after the gap (cronie).
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-03-28T23:00:00Z",
                Some("2026-03-29T01:00:00Z"),
            ),
            // The day after, it is 02:30 CEST again.
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-03-29T02:00:00Z",
                Some("2026-03-30T00:30:00Z"),
            ),
            // 2026-10-25 03:00 CEST → 02:00 CET: 02:30 happens twice, runs once (the first).
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-10-24T22:00:00Z",
                Some("2026-10-25T00:30:00Z"),
            ),
            (
                "30 2 * * *",
                "Europe/Paris",
                "2026-10-25T00:30:00Z",
                Some("2026-10-26T01:30:00Z"),
            ),
            // An hourly pattern follows the real clock: both halves of the repeated hour.
            (
                "30 * * * *",
                "Europe/Paris",
                "2026-10-25T00:30:00Z",
                Some("2026-10-25T01:30:00Z"),
            ),
            // DST, America/New_York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-08T05:00:00Z",
                Some("2026-03-08T07:00:00Z"),
            ),
            (
                "0 9 * * *",
                "America/New_York",
                "2026-03-07T15:00:00Z",
                Some("2026-03-08T13:00:00Z"),
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2026-11-01T04:00:00Z",
                Some("2026-11-01T05:30:00Z"),
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2026-11-01T05:30:00Z",
                Some("2026-11-02T06:30:00Z"),
            ),
            (
                "0 9 * * *",
                "America/New_York",
                "2026-10-31T14:00:00Z",
                Some("2026-11-01T14:00:00Z"),
            ),
            // Weekday names, and dom OR dow as vixie cron.
            (
                "0 8 * * MON-FRI",
                "UTC",
                "2026-12-05T00:00:00Z",
                Some("2026-12-07T08:00:00Z"),
            ),
            (
                "0 0 13 * 5",
                "UTC",
                "2026-12-01T00:00:00Z",
                Some("2026-12-04T00:00:00Z"),
            ),
            // Never again.
            ("0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z", None),
        ];
        for (expr, zone, after, want) in table {
            let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let tz = parse_timezone(zone).expect("zone");
            let got = next_run(&s, tz, utc(after));
            assert_eq!(got, want.map(utc), "{expr} in {zone} after {after}");
        }
    }

    #[test]
    fn next_runs_gives_three_increasing_times() {
        let s = Schedule::parse("0 4 * * *").expect("parse");
        let runs = next_runs(&s, Tz::UTC, utc("2026-01-01T05:00:00Z"), 3);
        let want: Vec<_> = [
            "2026-01-02T04:00:00Z",
            "2026-01-03T04:00:00Z",
            "2026-01-04T04:00:00Z",
        ]
        .iter()
        .map(|t| utc(t))
        .collect();
        assert_eq!(runs, want);
    }

    #[test]
    fn invalid_expressions_are_rejected_with_a_reason() {
        for (expr, needle) in [
            ("* * * *", "5 fields"),
            ("* * * * * * *", "5 fields"),
            ("61 * * * *", "invalid"),
            ("@sometimes", "unknown shorthand"),
            ("", "5 fields"),
            ("* * 32 * *", "invalid"),
        ] {
            let err = Schedule::parse(expr).expect_err(expr);
            assert!(err.contains(needle), "{expr}: {err}");
        }
        assert!(parse_timezone("Europe/Pariss").is_err());
        assert!(parse_timezone("Europe/Paris").is_ok());
    }
}
