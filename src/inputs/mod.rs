//! What tells the supervisor something happened besides exits and requests: `probes`
//! (readiness and health checks, one thread each), `watch` (the file and the apps' `watch`
//! globs) and `schedule` (cron expressions to due times). Each reports into the supervisor's
//! inbox; none decides anything.
pub mod probes;
pub mod schedule;
pub mod watch;
