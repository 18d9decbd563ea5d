//! `state_dir/token` (SPEC §7, §8): the secret every HTTP request but `/metrics` must carry.
//! Created 0600 by the supervisor the first time it starts, and kept across restarts so a
//! dashboard URL stays valid.

use std::io;
use std::path::{Path, PathBuf};

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("token")
}

/// The token of `state_dir`, created (48 hex digits from the kernel's random source) if there is
/// none yet.
pub fn ensure(state_dir: &Path) -> io::Result<String> {
    if let Some(t) = read(state_dir) {
        return Ok(t);
    }
    let bytes = crate::process::random_bytes(24)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::store::write_atomic(&path(state_dir), format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// The token, if the file exists and holds one.
pub fn read(state_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path(state_dir)).ok()?;
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Compares in time independent of where the strings differ.
pub fn matches(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ext::fs::PermissionsExt;

    #[test]
    fn created_private_once_and_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let t = ensure(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.len(), 48);
        let mode = std::fs::metadata(path(dir.path()))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert_eq!(ensure(dir.path()).ok(), Some(t.clone()));
        assert!(matches(&t, &t));
        assert!(!matches("x", &t));
        assert!(!matches(&t[..47], &t));
    }
}
