//! Dependencies as the planner sees them: whether a `depends_on` condition holds, and the
//! reason a dependent shows while it does not.
use indexmap::IndexMap;

use super::{Observed, Want};
use crate::config::Condition;
use crate::supervisor::state::{Instance, State};

/// Whether a dependency's condition holds, and if not, the reason its dependents show.
pub fn dependency_met(dep: &Want, cond: Condition, obs: &Observed) -> Result<(), String> {
    let name = &dep.name;
    if !dep.enabled {
        return Err(format!("waiting for `{name}` (disabled)"));
    }
    let insts: Vec<Option<&Instance>> = (0..dep.instances)
        .map(|i| obs.instances.get(&(name.clone(), i)))
        .collect();
    if insts.iter().flatten().any(|i| i.state() == State::Failed) {
        return Err(format!("waiting for `{name}`, which failed"));
    }
    let ok = insts.iter().all(|i| match (cond, i) {
        (_, None) => false,
        (Condition::Started, Some(i)) => i.ever_started(),
        (Condition::Ready, Some(i)) => {
            (i.state() == State::Running && i.ready()) || i.state() == State::Completed
        }
        (Condition::Completed, Some(i)) => i.state() == State::Completed,
    });
    if ok {
        Ok(())
    } else {
        let what = match cond {
            Condition::Started => "to start",
            Condition::Ready => "to be ready",
            Condition::Completed => "to complete",
        };
        Err(format!("waiting for `{name}` {what}"))
    }
}

/// When `dep` has not started because something it depends on (directly or further down)
/// failed: "waiting for `dep`, which waits for `root`, which failed", so the reason names the
/// app to fix and `up -d` knows the wait is over (SPEC §4).
pub(super) fn blocked_by_failure(
    desired: &IndexMap<String, Want>,
    dep: &Want,
    obs: &Observed,
) -> Option<String> {
    /// The observed instances of a wanted app.
    fn of<'o>(w: &'o Want, obs: &'o Observed) -> impl Iterator<Item = &'o Instance> {
        (0..w.instances).filter_map(move |i| obs.instances.get(&(w.name.clone(), i)))
    }
    fn failed_below(
        desired: &IndexMap<String, Want>,
        want: &Want,
        obs: &Observed,
        depth: usize,
    ) -> Option<String> {
        // The file's dependency graph has no cycles; the depth bound is only a guard.
        if depth > 64 {
            return None;
        }
        want.depends_on.iter().find_map(|(name, _)| {
            let d = desired.get(name)?;
            if of(d, obs).any(|i| i.state() == State::Failed) {
                Some(name.clone())
            } else if of(d, obs).any(|i| i.ever_started()) {
                None
            } else {
                failed_below(desired, d, obs, depth + 1)
            }
        })
    }
    if of(dep, obs).any(|i| i.ever_started() || i.state() == State::Failed) {
        return None;
    }
    let root = failed_below(desired, dep, obs, 0)?;
    Some(format!(
        "waiting for `{}`, which waits for `{root}`, which failed",
        dep.name
    ))
}
