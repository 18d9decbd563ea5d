//! Loop tests of the file and its watchers: debounces, save storms, watched files, reorders.
use super::*;
#[cfg(windows)]
use crate::process::signal_hook;

#[test]
fn reordering_the_keys_of_env_does_not_roll_the_app() {
    let mut h =
        Harness::new("[apps.web]\ncommand = \"/bin/sleep 100\"\nenv = { A = \"1\", B = \"2\" }\n");
    h.take();
    h.edit("[apps.web]\ncommand = \"/bin/sleep 100\"\nenv = { B = \"2\", A = \"1\" }\n");
    assert_eq!(h.take(), []);
    h.edit("[apps.web]\ncommand = \"/bin/sleep 100\"\nenv = { B = \"2\", A = \"9\" }\n");
    // Without a surge the change rolls stop-first.
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)]);
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(h.take(), [spawn("web", 1002)]);
}

#[test]
fn state_is_written_when_it_changed_not_on_every_wakeup() {
    let mut h = Harness::new(WEB);
    let after_start = lock(&h.world).states_written;
    assert!(after_start >= 1);
    h.advance(Duration::from_secs(30));
    assert_eq!(lock(&h.world).states_written, after_start);
    h.exit(1001, Some(1), None);
    assert_eq!(lock(&h.world).states_written, after_start + 1);
}

impl Harness {
    /// The file is saved (the watcher's event), without reloading it.
    fn save(&mut self, toml: &str) {
        let path = self.dir.path().join("pypm.toml");
        std::fs::write(&path, toml).expect("write pypm.toml");
        let path = self.sup.desired.config.path.clone();
        self.send(Event::FileChanged(path));
    }
}

#[test]
fn a_saved_file_is_applied_once_its_debounce_is_over() {
    let mut h = Harness::new(WEB);
    h.take();
    h.save(&format!("{WEB}[apps.db]\ncommand = \"/bin/sleep 100\"\n"));
    h.advance(crate::inputs::watch::CONFIG_DEBOUNCE - Duration::from_millis(1));
    assert_eq!(h.take(), [], "applied before the debounce");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.take(), [spawn("db", 1002)]);
}

#[test]
fn a_storm_of_saves_is_applied_at_least_every_reload_max_wait() {
    let mut h = Harness::new(WEB);
    h.take();
    let step = crate::inputs::watch::CONFIG_DEBOUNCE / 2;
    let mut waited = Duration::ZERO;
    let mut n = 0;
    while h.sup.desired.apps.len() == 1 {
        n += 1;
        h.save(&format!("{WEB}[apps.db]\ncommand = \"/bin/sleep {n}\"\n"));
        h.advance(step);
        waited += step;
        assert!(
            waited <= crate::inputs::watch::RELOAD_MAX_WAIT + step,
            "not applied after {waited:?} of saves"
        );
    }
    assert!(
        waited >= crate::inputs::watch::RELOAD_MAX_WAIT,
        "a save every {step:?} is still coalesced (applied after {waited:?})"
    );
    assert_eq!(
        h.take(),
        [spawn("db", 1002)],
        "one reload for the whole storm"
    );
}

#[test]
fn a_watched_file_restarts_its_app_after_the_debounce() {
    let mut h = Harness::new(&format!("{WEB}watch = [\"*.py\"]\n"));
    h.take();
    let cwd = h.sup.desired.apps["web"].app.cwd.clone();
    for _ in 0..3 {
        h.send(Event::FileChanged(cwd.join("app.py")));
        h.advance(crate::inputs::watch::DEBOUNCE / 4);
    }
    h.send(Event::FileChanged(cwd.join("notes.txt")));
    assert_eq!(h.take(), [], "a burst of changes waits for its debounce");
    h.advance(crate::inputs::watch::DEBOUNCE);
    assert_eq!(h.take(), [signal(1001, Signal::SIGTERM)], "restarted once");
    h.exit(1001, None, Some(Signal::SIGTERM));
    assert_eq!(h.take(), [spawn("web", 1002)]);
}

#[test]
fn sighup_reloads_the_file_at_once() {
    let mut h = Harness::new(WEB);
    h.take();
    let path = h.dir.path().join("pypm.toml");
    std::fs::write(
        &path,
        format!("{WEB}[apps.db]\ncommand = \"/bin/sleep 100\"\n"),
    )
    .expect("write pypm.toml");
    h.send(Event::Signal(signal_hook::consts::SIGHUP));
    assert_eq!(h.take(), [spawn("db", 1002)]);
}
