//! Finding the file (`discover`) and reading `state_dir` alone, before and without the apps.

use super::*;

#[test]
fn discovery_order() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("pypm.toml"), "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        discover(None, None, &nested),
        Some(dir.path().join("pypm.toml"))
    );
    assert_eq!(
        discover(None, Some("other.toml"), &nested),
        Some(nested.join("other.toml"))
    );
    assert_eq!(
        discover(Some(Path::new("/x/y.toml")), Some("other.toml"), &nested),
        Some("/x/y.toml".into())
    );
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // Only finds files above a directory that has none if some ancestor has one; a fresh temp dir
    // under /tmp has none.
    if !Path::new("/tmp/pypm.toml").exists() && !Path::new("/pypm.toml").exists() {
        assert_eq!(discover(None, None, empty.path()), None);
    }
}

#[test]
fn state_dir_alone_is_read_while_an_app_is_invalid() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("pypm.toml");
    let src = "[pypm]\nstate_dir = \"${STATE}/x\"\n[apps.web]\nnot_a_key = 1\n";
    std::fs::write(&path, src).unwrap_or_else(|e| panic!("{e}"));
    let mut host = host();
    host.insert("STATE".into(), "st".into());
    assert!(super::load(&path, "pypm.toml", &host).is_err());
    assert_eq!(
        super::state_dir(&path, &host),
        Some(dir.path().join("st/x"))
    );
    // An invalid `[pypm]` table gives nothing (the caller falls back to a lenient read).
    std::fs::write(&path, "[pypm]\nstate_dir = 3\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(super::state_dir(&path, &host), None);
}

#[test]
fn pypm_state_dir_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("pypm.toml");
    std::fs::write(&path, "[pypm]\nstate_dir = \"st\"\n").unwrap_or_else(|e| panic!("{e}"));
    let mut host = host();
    assert_eq!(super::state_dir(&path, &host), Some(dir.path().join("st")));
    host.insert("PYPM_STATE_DIR".into(), "/tmp/private".into());
    assert_eq!(
        super::state_dir(&path, &host),
        Some(PathBuf::from("/tmp/private"))
    );
    let c = super::load(&path, "pypm.toml", &host).unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(c.pypm.state_dir, PathBuf::from("/tmp/private"));
    assert_eq!(c.pypm.log_dir, PathBuf::from("/tmp/private/logs"));
}
