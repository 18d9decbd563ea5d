//! Every recorded event: `journal` writes `events.jsonl` and hands each written batch to the
//! `bus`, which fans it out, never blocking the supervisor, to the `notifiers` (webhook, email,
//! exec, StatsD) and the HTTP API's event streams.
pub mod bus;
pub mod journal;
pub mod notifiers;
