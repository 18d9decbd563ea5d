//! Reload as a diff: what applying a new file changes against the running one, per app, with the
//! keys that changed (SPEC §2 `plan`, §5). Pure.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::Value;

use crate::control::protocol::{PlanChange, PlanVerb};
use crate::desired::environ::Environ;
use crate::desired::resolve::AppSpec;

/// What to do with one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Start {
        reason: String,
    },
    Stop {
        reason: String,
    },
    /// Roll every instance (the reason names the changed keys).
    Restart {
        reason: String,
    },
    Scale {
        from: u32,
        to: u32,
    },
    /// Only when it runs changed (`schedule`, `timezone`, `concurrency`, `catch_up`, `jitter`,
    /// `restart_schedule`): nothing is restarted, the next run is counted afresh.
    Reschedule {
        reason: String,
    },
}

impl Change {
    pub fn to_plan(&self, app: &str) -> PlanChange {
        let (verb, reason) = match self {
            Change::Start { reason } => (PlanVerb::Start, reason.clone()),
            Change::Stop { reason } => (PlanVerb::Stop, reason.clone()),
            Change::Restart { reason } => (PlanVerb::Restart, reason.clone()),
            Change::Reschedule { reason } => (PlanVerb::Reschedule, reason.clone()),
            Change::Scale { from, to } => (
                PlanVerb::Scale {
                    from: *from,
                    to: *to,
                },
                "instances changed".to_string(),
            ),
        };
        PlanChange {
            app: app.to_string(),
            verb,
            reason,
        }
    }
}

/// Keys that change nothing about a running process (besides [`SCHEDULE_KEYS`]).
const NOT_EFFECTIVE: &[&str] = &["name", "instances", "enabled", "env", "env_file_vars"];

/// Keys that say when an app runs (a [`Change::Reschedule`]), not how: they do not roll it.
const SCHEDULE_KEYS: &[&str] = &[
    "schedule",
    "timezone",
    "concurrency",
    "catch_up",
    "jitter",
    "restart_schedule",
];

/// A key whose change does not make a running process stale.
fn not_effective(key: &str) -> bool {
    NOT_EFFECTIVE.contains(&key) || SCHEDULE_KEYS.contains(&key)
}

/// The schedule keys whose values differ, as `schedule changed`, ….
pub fn changed_schedule_keys(old: &AppSpec, new: &AppSpec) -> Vec<String> {
    let a = serde_json::to_value(&old.app).unwrap_or(Value::Null);
    let b = serde_json::to_value(&new.app).unwrap_or(Value::Null);
    SCHEDULE_KEYS
        .iter()
        .filter(|k| a.get(**k) != b.get(**k))
        .map(|k| format!("{k} changed"))
        .collect()
}

/// The keys whose values differ between two specs of one app, for the reason text.
pub fn changed_keys(old: &AppSpec, new: &AppSpec) -> Vec<String> {
    let mut out = Vec::new();
    // The effective environment: name each variable that changed.
    let old_env: IndexMap<&str, &str> = old
        .app
        .env_file_vars
        .iter()
        .chain(old.app.env.iter())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let new_env: IndexMap<&str, &str> = new
        .app
        .env_file_vars
        .iter()
        .chain(new.app.env.iter())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let names: BTreeSet<&str> = old_env.keys().chain(new_env.keys()).copied().collect();
    for k in names {
        match (old_env.get(k), new_env.get(k)) {
            (Some(a), Some(b)) if a != b => out.push(format!("env {k} changed")),
            (Some(_), None) => out.push(format!("env {k} removed")),
            (None, Some(_)) => out.push(format!("env {k} added")),
            _ => {}
        }
    }
    let a = serde_json::to_value(&old.app).unwrap_or(Value::Null);
    let b = serde_json::to_value(&new.app).unwrap_or(Value::Null);
    if let (Value::Object(a), Value::Object(b)) = (&a, &b) {
        for (k, va) in a {
            if not_effective(k) {
                continue;
            }
            if b.get(k) != Some(va) {
                let name = match k.as_str() {
                    "program" => "command",
                    other => other,
                };
                out.push(format!("{name} changed"));
            }
        }
    }
    if out.is_empty() && old.argv != new.argv {
        out.push("command changed".into());
    }
    // The environment as a set: SPEC §5, reordering the keys of `env` (or of an env_file)
    // changes nothing about a process, so it must not roll the app.
    if out.is_empty() && !same_environ(&old.environ, &new.environ) {
        out.push("environment changed".into());
    }
    out
}

/// The hash of everything about a spec that its running process depends on, as [`diff`] sees
/// it: what `changed_keys` compares, with maps (and the environment) hashed as sets, so
/// reordering keys changes nothing (SPEC §5). Each process records the hash it was started with;
/// the planner rolls an instance whose hash is not the desired one.
pub fn spec_hash(s: &AppSpec) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same spec hashes alike for the supervisor's whole life.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    if let Ok(Value::Object(m)) = serde_json::to_value(&s.app) {
        let mut keys: Vec<&String> = m.keys().filter(|k| !not_effective(k)).collect();
        keys.sort();
        for k in keys {
            k.hash(&mut h);
            hash_value(&m[k], &mut h);
        }
    }
    s.argv.hash(&mut h);
    // Pairs of `&str` hash as the pairs of `String` they replaced: the hashes did not change.
    let env: BTreeSet<(&str, &str)> = s.environ.iter().collect();
    env.hash(&mut h);
    h.finish()
}

/// A JSON value into a hasher, objects with their keys sorted.
fn hash_value(v: &Value, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.to_string()).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for x in a {
                hash_value(x, h);
            }
        }
        Value::Object(m) => {
            (5u8, m.len()).hash(h);
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                k.hash(h);
                hash_value(&m[k], h);
            }
        }
    }
}

fn same_environ(a: &Environ, b: &Environ) -> bool {
    a == b || a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

/// Every change, in the new file's order, then removed apps.
pub fn diff(
    old: &IndexMap<String, AppSpec>,
    new: &IndexMap<String, AppSpec>,
) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    for (name, n) in new {
        let Some(o) = old.get(name) else {
            if n.app.enabled {
                out.push((
                    name.clone(),
                    Change::Start {
                        reason: "new".into(),
                    },
                ));
            }
            continue;
        };
        match (o.app.enabled, n.app.enabled) {
            (true, false) => {
                out.push((
                    name.clone(),
                    Change::Stop {
                        reason: "disabled".into(),
                    },
                ));
                continue;
            }
            (false, true) => {
                out.push((
                    name.clone(),
                    Change::Start {
                        reason: "enabled".into(),
                    },
                ));
                continue;
            }
            (false, false) => continue,
            (true, true) => {}
        }
        // The common case of a reload: the app did not change at all (no serialising).
        if o == n {
            continue;
        }
        let keys = changed_keys(o, n);
        let schedule = changed_schedule_keys(o, n);
        if !keys.is_empty() {
            let mut reason = keys
                .iter()
                .chain(&schedule)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if o.app.instances != n.app.instances {
                reason.push_str(&format!(
                    ", instances {} → {}",
                    o.app.instances, n.app.instances
                ));
            }
            out.push((name.clone(), Change::Restart { reason }));
        } else if o.app.instances != n.app.instances {
            out.push((
                name.clone(),
                Change::Scale {
                    from: o.app.instances,
                    to: n.app.instances,
                },
            ));
        } else if !schedule.is_empty() {
            out.push((
                name.clone(),
                Change::Reschedule {
                    reason: schedule.join(", "),
                },
            ));
        }
    }
    for (name, o) in old {
        if !new.contains_key(name) && o.app.enabled {
            out.push((
                name.clone(),
                Change::Stop {
                    reason: "removed".into(),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::python_env::HostEnv;

    fn specs(src: &str) -> IndexMap<String, AppSpec> {
        let dir = std::env::temp_dir();
        // Written once: tests run in parallel and a rewrite truncates it under another's read.
        static ENV_FILE: std::sync::Once = std::sync::Once::new();
        ENV_FILE.call_once(|| {
            std::fs::write(dir.join("pypm-diff-test.env"), "FROM_FILE=1\n")
                .unwrap_or_else(|e| panic!("{e}"));
        });
        let host = HostEnv::new([("PATH", "/usr/bin:/bin")], None);
        match crate::desired::resolve::from_source(src, &dir.join("pypm.toml"), "pypm.toml", &host)
        {
            Ok(d) => d.apps,
            Err(e) => panic!("{}", e.render()),
        }
    }

    fn plan_lines(old: &str, new: &str) -> Vec<String> {
        diff(&specs(old), &specs(new))
            .iter()
            .map(|(a, c)| c.to_plan(a).to_string())
            .collect()
    }

    const BASE: &str = "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"0\" }\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 2\n";

    #[test]
    fn a_schedule_change_is_a_reschedule_not_a_restart() {
        let old = "[apps.job]\ncommand = \"sleep 1\"\nkind = \"task\"\nschedule = \"0 3 * * *\"\n[apps.web]\ncommand = \"sleep 9\"\nrestart_schedule = \"0 4 * * *\"\n";
        let new = "[apps.job]\ncommand = \"sleep 1\"\nkind = \"task\"\nschedule = \"0 5 * * *\"\ntimezone = \"UTC\"\n[apps.web]\ncommand = \"sleep 9\"\nrestart_schedule = \"0 6 * * *\"\n";
        assert_eq!(
            plan_lines(old, new),
            [
                "job: reschedule (schedule changed, timezone changed)",
                "web: reschedule (restart_schedule changed)"
            ]
        );
        let hash = |src: &str| -> Vec<u64> { specs(src).values().map(spec_hash).collect() };
        assert_eq!(hash(old), hash(new), "no process runs another spec");
        let both = new.replace("sleep 9", "sleep 8");
        assert_eq!(
            plan_lines(old, &both),
            [
                "job: reschedule (schedule changed, timezone changed)",
                "web: restart (command changed, restart_schedule changed)"
            ]
        );
    }

    #[test]
    fn spec_hash_agrees_with_diff() {
        let hash = |src: &str| -> Vec<u64> { specs(src).values().map(spec_hash).collect() };
        let a = "[apps.w]\ncommand = \"sleep 1\"\nenv = { ALPHA = \"1\", BETA = \"2\" }\n";
        let b = "[apps.w]\ncommand = \"sleep 1\"\nenv = { BETA = \"2\", ALPHA = \"1\" }\n";
        let c = "[apps.w]\ncommand = \"sleep 1\"\nenv = { BETA = \"3\", ALPHA = \"1\" }\n";
        let d = "[apps.w]\ncommand = \"sleep 1\"\nenv = { ALPHA = \"1\", BETA = \"2\" }\ninstances = 3\n";
        assert_eq!(hash(a), hash(b), "reordered env");
        assert_ne!(hash(a), hash(c), "changed env");
        assert_eq!(hash(a), hash(d), "scaling is not a roll");
        let e = "[apps.w]\ncommand = \"sleep 2\"\nenv = { ALPHA = \"1\", BETA = \"2\" }\n";
        assert_ne!(hash(a), hash(e), "command");
        let f = "[apps.w]\ncommand = \"sleep 1\"\nenv = { ALPHA = \"1\", BETA = \"2\" }\nstop_signal = \"INT\"\n";
        assert_ne!(hash(a), hash(f), "stop_signal");
    }

    #[test]
    fn reordering_env_keys_changes_nothing() {
        let old = "[apps.w]\ncommand = \"sleep 1\"\nenv = { ALPHA = \"1\", BETA = \"2\" }\n";
        let new = "[apps.w]\ncommand = \"sleep 1\"\nenv = { BETA = \"2\", ALPHA = \"1\" }\n";
        assert!(
            plan_lines(old, new).is_empty(),
            "{:?}",
            plan_lines(old, new)
        );
        let changed = "[apps.w]\ncommand = \"sleep 1\"\nenv = { BETA = \"3\", ALPHA = \"1\" }\n";
        assert_eq!(plan_lines(old, changed).len(), 1);
    }

    #[test]
    fn each_kind_of_change() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("same file", BASE, &[]),
            (
                "env value",
                "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"1\" }\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 2\n",
                &["api: restart (env DEBUG changed)"],
            ),
            (
                "scale",
                "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"0\" }\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 4\n",
                &["worker: scale 2 → 4 (instances changed)"],
            ),
            (
                "removed and new",
                "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"0\" }\n[apps.web]\ncommand = \"sleep 3\"\n",
                &["web: start (new)", "worker: stop (removed)"],
            ),
            (
                "disabled",
                "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"0\" }\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 2\nenabled = false\n",
                &["worker: stop (disabled)"],
            ),
            (
                "revision",
                "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"0\" }\nrevision = \"2\"\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 2\n",
                &["api: restart (revision changed)"],
            ),
            (
                "command",
                "[apps.api]\ncommand = \"sleep 5\"\nenv = { DEBUG = \"0\" }\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 2\n",
                &["api: restart (command changed)"],
            ),
            (
                "env_file contents",
                "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"0\" }\nenv_file = \"pypm-diff-test.env\"\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 2\n",
                &["api: restart (env FROM_FILE added, env_file changed)"],
            ),
            (
                "stop_signal",
                "[apps.api]\ncommand = \"sleep 1\"\nenv = { DEBUG = \"0\" }\nstop_signal = \"INT\"\n[apps.worker]\ncommand = \"sleep 2\"\ninstances = 2\n",
                &["api: restart (stop_signal changed)"],
            ),
        ];
        for (what, new, want) in cases {
            assert_eq!(plan_lines(BASE, new), *want, "{what}");
        }
    }
}
