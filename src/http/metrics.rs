//! `/metrics`: the Prometheus text exposition format (version 0.0.4) of a [`MetricsReport`].

use crate::control::protocol::State;
use std::fmt::Write;

use crate::control::protocol::MetricsReport;

/// A label value, escaped as the format requires (`\`, `"`, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(m: &MetricsReport) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, lines: &mut dyn Iterator<Item = String>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for l in lines {
                out.push_str(name);
                out.push_str(&l);
                out.push('\n');
            }
        };
    let ids: Vec<String> = m
        .instances
        .iter()
        .map(|r| format!("app=\"{}\",instance=\"{}\"", label(&r.app), r.instance))
        .collect();
    let rows = || m.instances.iter().zip(&ids);
    family(
        "pypm_instance_up",
        "gauge",
        "1 when the instance is running (ready), else 0.",
        &mut rows().map(|(r, id)| format!("{{{id}}} {}", u8::from(r.state == State::Running))),
    );
    family(
        "pypm_instance_state",
        "gauge",
        "1 for the instance's current state, 0 for the others.",
        &mut rows().flat_map(|(r, id)| {
            // Every state (SPEC §2) has a series, 1 for the current one, so a query never
            // meets a series that vanished.
            State::ALL
                .iter()
                .map(move |s| format!("{{{id},state=\"{s}\"}} {}", u8::from(r.state == *s)))
        }),
    );
    family(
        "pypm_instance_restarts_total",
        "counter",
        "Restarts of the instance since the supervisor started.",
        &mut rows().map(|(r, id)| format!("{{{id}}} {}", r.restarts)),
    );
    family(
        "pypm_instance_cpu_seconds_total",
        "counter",
        "CPU time (user + system) of the instance's process tree.",
        &mut rows().filter_map(|(r, id)| r.cpu_seconds.map(|c| format!("{{{id}}} {c}"))),
    );
    family(
        "pypm_instance_memory_bytes",
        "gauge",
        "Resident memory (RSS) of the instance's process tree.",
        &mut rows().filter_map(|(r, id)| r.memory_bytes.map(|b| format!("{{{id}}} {b}"))),
    );
    family(
        "pypm_instance_start_time_seconds",
        "gauge",
        "Unix time the instance's running process started.",
        &mut rows().filter_map(|(r, id)| r.start_time_seconds.map(|t| format!("{{{id}}} {t:.3}"))),
    );
    family(
        "pypm_task_last_success_timestamp_seconds",
        "gauge",
        "Unix time a task's last successful run ended.",
        &mut rows().filter_map(|(r, id)| {
            r.task_last_success_seconds
                .map(|t| format!("{{{id}}} {t:.3}"))
        }),
    );
    family(
        "pypm_task_last_duration_seconds",
        "gauge",
        "How long a task's last run took.",
        &mut rows().filter_map(|(r, id)| {
            r.task_last_duration_seconds
                .map(|t| format!("{{{id}}} {t:.3}"))
        }),
    );
    family(
        "pypm_config_error",
        "gauge",
        "1 while the configuration file on disk is invalid (the last valid one is applied).",
        &mut std::iter::once(format!(" {}", u8::from(m.config_error))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::MetricsRow;

    #[test]
    fn every_family_with_app_and_instance_labels() {
        let m = MetricsReport {
            config_error: false,
            instances: vec![
                MetricsRow {
                    app: "api".into(),
                    instance: 0,
                    state: "running".into(),
                    restarts: 2,
                    cpu_seconds: Some(1.5),
                    memory_bytes: Some(4096),
                    start_time_seconds: Some(1_800_000_000.25),
                    task_last_success_seconds: None,
                    task_last_duration_seconds: None,
                },
                MetricsRow {
                    app: "worker".into(),
                    instance: 1,
                    state: "backoff".into(),
                    restarts: 7,
                    cpu_seconds: None,
                    memory_bytes: None,
                    start_time_seconds: None,
                    task_last_success_seconds: Some(1_800_000_100.5),
                    task_last_duration_seconds: Some(2.25),
                },
            ],
        };
        let text = render(&m);
        for line in [
            "# TYPE pypm_instance_up gauge",
            "pypm_instance_up{app=\"api\",instance=\"0\"} 1",
            "pypm_instance_up{app=\"worker\",instance=\"1\"} 0",
            "pypm_instance_state{app=\"api\",instance=\"0\",state=\"running\"} 1",
            "pypm_instance_state{app=\"api\",instance=\"0\",state=\"failed\"} 0",
            "pypm_instance_state{app=\"worker\",instance=\"1\",state=\"backoff\"} 1",
            "# TYPE pypm_instance_restarts_total counter",
            "pypm_instance_restarts_total{app=\"worker\",instance=\"1\"} 7",
            "pypm_instance_cpu_seconds_total{app=\"api\",instance=\"0\"} 1.5",
            "pypm_instance_memory_bytes{app=\"api\",instance=\"0\"} 4096",
            "pypm_instance_start_time_seconds{app=\"api\",instance=\"0\"} 1800000000.250",
            "pypm_task_last_success_timestamp_seconds{app=\"worker\",instance=\"1\"} 1800000100.500",
            "pypm_task_last_duration_seconds{app=\"worker\",instance=\"1\"} 2.250",
            "pypm_config_error 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        // No sample for what a stopped instance does not have.
        assert!(!text.contains("pypm_instance_memory_bytes{app=\"worker\""));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
