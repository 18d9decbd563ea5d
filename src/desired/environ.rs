//! An app's complete environment, stored as the supervisor's variables (one copy, shared by every
//! app of a resolve) and the app's own changes over them.
//!
//! Each app used to hold a full copy of the supervisor's environment: with 35 variables that was
//! ≈ 6 KB per app, a third of the supervisor's memory at 1,000 apps (heaptrack,
//! docs/benchmarks.md). Now an app holds only what differs: its `env`, `env_file`, its Python
//! environment's variables and `PYPM_APP`.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::Serialize;

/// The supervisor's variables, sorted by name, shared by every app of one resolve.
pub type Base = Arc<Vec<(String, String)>>;

/// Sorts the supervisor's variables once for every app (a later duplicate wins).
pub fn base<'a>(vars: impl IntoIterator<Item = (&'a String, &'a String)>) -> Base {
    let mut map: IndexMap<String, String> = vars
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    map.sort_keys();
    Arc::new(map.into_iter().collect())
}

/// The base with an app's changes: iterated, it yields the base's variables in their order (a
/// changed one with its new value, an unset one left out), then the app's new ones in the order
/// they were first set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Environ {
    base: Base,
    /// The final word on each variable the app changed: `Some` sets it, `None` unsets it.
    own: Vec<(String, Option<String>)>,
}

impl Environ {
    pub fn new(base: Base) -> Self {
        Environ {
            base,
            own: Vec::new(),
        }
    }

    /// Sets `key` (the last setting wins).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.change(key.into(), Some(value.into()));
    }

    /// Unsets `key` (a later [`set`](Self::set) brings it back).
    pub fn unset(&mut self, key: &str) {
        self.change(key.to_string(), None);
    }

    fn change(&mut self, key: String, value: Option<String>) {
        match self.own.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.own.push((key, value)),
        }
    }

    fn own(&self, key: &str) -> Option<&Option<String>> {
        self.own.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn in_base(&self, key: &str) -> bool {
        self.base
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .is_ok()
    }

    /// Every variable with its value, as the app's processes get them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let from_base = self.base.iter().filter_map(|(k, v)| match self.own(k) {
            Some(Some(new)) => Some((k.as_str(), new.as_str())),
            Some(None) => None,
            None => Some((k.as_str(), v.as_str())),
        });
        let added = self
            .own
            .iter()
            .filter(|(k, _)| !self.in_base(k))
            .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)));
        from_base.chain(added)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.own(key) {
            Some(v) => v.as_deref(),
            None => self
                .base
                .binary_search_by(|(k, _)| k.as_str().cmp(key))
                .ok()
                .map(|i| self.base[i].1.as_str()),
        }
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// An owned copy, for a process's spawn.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Serialize for Environ {
    /// As a list of `[name, value]` pairs, like the `Vec` it replaces.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn changes_apply_over_the_shared_base_in_order() {
        let host = strings(&[("Z", "1"), ("A", "1"), ("M", "1"), ("A", "2")]);
        let b = base(host.iter().map(|(k, v)| (k, v)));
        assert_eq!(*b, strings(&[("A", "2"), ("M", "1"), ("Z", "1")]));
        let mut e = Environ::new(b.clone());
        e.set("NEW", "x");
        e.unset("M");
        e.set("Z", "2");
        e.set("GONE", "y");
        e.unset("GONE");
        e.set("LAST", "z");
        let got: Vec<_> = e.iter().collect();
        assert_eq!(got, [("A", "2"), ("Z", "2"), ("NEW", "x"), ("LAST", "z")]);
        assert_eq!(e.len(), 4);
        assert_eq!(e.get("Z"), Some("2"));
        assert_eq!(e.get("A"), Some("2"));
        assert_eq!(e.get("M"), None);
        assert_eq!(e.get("GONE"), None);
        // Unset then set again: back, with the new value.
        e.set("M", "3");
        assert_eq!(e.get("M"), Some("3"));
        // The base is shared, not copied.
        assert_eq!(Arc::strong_count(&b), 2);
    }

    #[test]
    fn serializes_as_pairs() {
        let host = strings(&[("A", "1")]);
        let mut e = Environ::new(base(host.iter().map(|(k, v)| (k, v))));
        e.set("B", "2");
        let json = serde_json::to_string(&e).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(json, r#"[["A","1"],["B","2"]]"#);
    }
}
