//! `pypm monit` as a person uses it: in a real terminal (tmux), against a real supervisor.
//! `send-keys` presses keys, `capture-pane` reads the screen.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A tmux server of its own (its socket in the project's dir), killed when the test ends.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A tmux server of the project's running `pypm monit` in an 80×24 session `monit`, with
    /// `env` set for it.
    fn monit(p: &Project, env: &[(&str, &str)]) -> Tmux {
        let tmux = Tmux {
            socket: p.path("tmux.sock"),
        };
        let vars: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let cmd = format!(
            "{vars}{} --config {} monit",
            env!("CARGO_BIN_EXE_pypm"),
            p.config.display()
        );
        let started = Command::new("tmux")
            .arg("-S")
            .arg(&tmux.socket)
            .args(["new-session", "-d", "-x", "80", "-y", "24", "-s", "monit"])
            .arg(&cmd)
            .env(MARKER_VAR, p.marker())
            .env_remove("PYPM_CONFIG")
            .stdin(Stdio::null())
            .status()
            .expect("tmux is installed (apt-get install tmux; .ci/run does)");
        assert!(started.success(), "tmux new-session");
        tmux
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux is installed (apt-get install tmux; .ci/run does)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "monit"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "monit"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "tmux send-keys {keys:?}");
    }

    /// Waits until the screen shows `what` (and returns it), or fails showing the screen.
    fn wait_screen(&self, what: &str, within: Duration, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        if wait_until(within, || {
            last = self.screen();
            cond(&last)
        }) {
            return last;
        }
        panic!("the monit screen never showed {what} within {within:?}; it shows:\n{last}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Whether tmux is there; without it the tests say so and skip, except where
/// `PYPM_REQUIRE_TMUX` is set (`.ci/run` installs tmux and sets it).
fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("PYPM_REQUIRE_TMUX").is_none(),
            "PYPM_REQUIRE_TMUX is set but tmux is not installed"
        );
        eprintln!("skipped: no tmux (apt-get install tmux)");
    }
    ok
}

/// The row of `name` on the screen (`│›api   running   1234 …`), split into cells.
fn row_cells(screen: &str, name: &str) -> Option<Vec<String>> {
    screen.lines().find_map(|l| {
        let cells: Vec<String> = l
            .trim_matches(|c| c == '│' || c == ' ')
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let first = cells.first()?.trim_start_matches('›');
        (first == name).then_some(cells)
    })
}

#[test]
fn monit_in_a_terminal_shows_the_apps_restarts_the_selected_one_and_follows_its_log() {
    if !have_tmux() {
        return;
    }
    let p = Project::new();
    let api = p.sh("api", "echo api up\nexec sleep 1000\n");
    let worker = p.sh("worker", "echo \"worker started $$\"\nexec sleep 1000\n");
    p.write_config(&format!(
        "[apps.api]\ncommand = {api}\n\n[apps.worker]\ncommand = {worker}\n"
    ));
    p.up_d();
    let api_pid = p.pid_of("api").expect("api runs");
    let worker_pid = p.pid_of("worker").expect("worker runs");

    let tmux = Tmux::monit(&p, &[]);

    // Both apps show, running, with their pids.
    let s = tmux.wait_screen("both apps running", Duration::from_secs(20), |s| {
        row_cells(s, "api").is_some_and(|c| c.get(1).is_some_and(|st| st == "running"))
            && row_cells(s, "worker").is_some_and(|c| c.get(1).is_some_and(|st| st == "running"))
    });
    assert_eq!(row_cells(&s, "api").unwrap()[2], api_pid.to_string(), "{s}");
    assert_eq!(
        row_cells(&s, "worker").unwrap()[2],
        worker_pid.to_string(),
        "{s}"
    );
    assert!(s.contains("›api"), "the first app is selected: {s}");
    assert!(s.contains("logs: api"), "the log pane follows it: {s}");
    tmux.wait_screen("api's log line", Duration::from_secs(10), |s| {
        s.contains("api out │ api up")
    });

    // ↓ selects the worker; its log pane shows what it printed.
    tmux.keys(&["Down"]);
    tmux.wait_screen(
        "the worker selected, its log shown",
        Duration::from_secs(10),
        |s| s.contains("›worker") && s.contains(&format!("worker started {worker_pid}")),
    );

    // `r` restarts the selected app only: a new pid, on the screen and in `status`.
    tmux.keys(&["r"]);
    let new_pid = p.wait_new_pid("worker", worker_pid, Duration::from_secs(20));
    assert_eq!(
        p.pid_of("api"),
        Some(api_pid),
        "the other app is left alone"
    );
    // The log pane shows the line the new process just printed.
    tmux.wait_screen(
        "the new pid and its log line",
        Duration::from_secs(10),
        |s| {
            row_cells(s, "worker").is_some_and(|c| c.get(2) == Some(&new_pid.to_string()))
                && s.contains(&format!("worker started {new_pid}"))
        },
    );

    // The screen as text, for docs/monitoring.md.
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    if std::fs::create_dir_all(&shots).is_ok() {
        let _ = std::fs::write(shots.join("monit.txt"), tmux.screen());
    }

    // `q` quits: the pane's command ends, and with it the session.
    tmux.keys(&["q"]);
    assert!(
        wait_until(Duration::from_secs(10), || !tmux
            .run(&["has-session", "-t", "monit"])
            .status
            .success()),
        "monit did not quit on q: {}",
        tmux.screen()
    );
}

#[test]
fn monit_says_when_the_supervisor_goes_away_and_picks_up_the_next_one() {
    if !have_tmux() {
        return;
    }
    let p = Project::new();
    let api = p.sh("api", "exec sleep 1000\n");
    p.write_config(&format!("[apps.api]\ncommand = {api}\n"));
    p.up_d();
    let tmux = Tmux::monit(&p, &[("NO_COLOR", "1")]);
    tmux.wait_screen("api running", Duration::from_secs(20), |s| {
        row_cells(s, "api").is_some_and(|c| c.get(1).is_some_and(|st| st == "running"))
    });

    p.pypm_ok(&["down"], 0);
    let s = tmux.wait_screen("the no-supervisor banner", Duration::from_secs(10), |s| {
        s.contains("no supervisor is running")
    });
    assert!(row_cells(&s, "api").is_none(), "no stale rows: {s}");

    // The next supervisor is picked up; a file then broken shows in a banner.
    p.up_d();
    let pid = p.pid_of("api").expect("api runs again");
    tmux.wait_screen("the new supervisor's app", Duration::from_secs(20), |s| {
        row_cells(s, "api").is_some_and(|c| c.get(2) == Some(&pid.to_string()))
    });
    p.write_config("[apps.api]\ncommand = \n");
    tmux.wait_screen("the file's error", Duration::from_secs(20), |s| {
        s.contains("the file is invalid")
    });
    tmux.keys(&["q"]);
}
