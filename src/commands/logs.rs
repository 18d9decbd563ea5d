//! `pypm logs [APP] [-f] [-n N] [--out|--err]`: read the log files directly (no supervisor needed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Failure, locate};
use crate::cli::LogsArgs;
use crate::logs::{
    FOLLOW_INTERVAL, Follower, Stream, log_file_name, tail, tail_follow, tail_merged,
};

struct Source {
    /// Shown before each line when several instances are shown.
    label: String,
    out: PathBuf,
    err: PathBuf,
    timestamps: bool,
}

fn sources(log_dir: &Path, apps: &[(String, u32, bool)]) -> Vec<Source> {
    let mut out = Vec::new();
    for (app, instances, timestamps) in apps {
        for idx in 0..*instances {
            let inst = (*instances > 1).then_some(idx);
            let label = match inst {
                Some(i) => format!("{app}.{i}"),
                None => app.clone(),
            };
            out.push(Source {
                label,
                out: log_dir.join(log_file_name(app, inst, Stream::Out)),
                err: log_dir.join(log_file_name(app, inst, Stream::Err)),
                timestamps: *timestamps,
            });
        }
    }
    out
}

pub fn logs(config: Option<&Path>, args: &LogsArgs) -> Result<(), Failure> {
    let located = locate(config)?;
    let host: std::collections::HashMap<String, String> = std::env::vars().collect();
    let cfg =
        crate::config::load(&located.path, &located.display, &host).map_err(Failure::Config)?;
    let apps: Vec<(String, u32, bool)> = match &args.app {
        Some(a) => match cfg.apps.get(a) {
            Some(app) => vec![(a.clone(), app.instances, app.log_timestamps)],
            None => {
                let hint = crate::diagnostic::did_you_mean(a, cfg.apps.keys().map(String::as_str))
                    .map(|h| format!("\n\n{h}"))
                    .unwrap_or_default();
                return Err(Failure::Error(format!(
                    "error: no app named `{a}` in `{}`{hint}",
                    located.display
                )));
            }
        },
        None => cfg
            .apps
            .values()
            .map(|a| (a.name.clone(), a.instances, a.log_timestamps))
            .collect(),
    };
    let srcs = sources(&cfg.pypm.log_dir, &apps);
    let prefix = args.app.is_none() || srcs.len() > 1;
    let show = |label: &str, line: &str| {
        if prefix {
            println!("{label} | {line}");
        } else {
            println!("{line}");
        }
    };
    let streams: Vec<Stream> = match (args.out, args.err) {
        (true, _) => vec![Stream::Out],
        (_, true) => vec![Stream::Err],
        _ => vec![Stream::Out, Stream::Err],
    };
    let read_err = |p: &Path, e: std::io::Error| {
        Failure::Error(format!("error: cannot read `{}`: {e}", p.display()))
    };
    let mut followers: Vec<(String, Follower)> = Vec::new();
    for s in &srcs {
        if args.follow {
            for st in &streams {
                let path = if *st == Stream::Out { &s.out } else { &s.err };
                let (lines, f) = tail_follow(path, args.lines).map_err(|e| read_err(path, e))?;
                for l in lines {
                    show(&s.label, &l);
                }
                followers.push((s.label.clone(), f));
            }
        } else if s.timestamps && streams.len() == 2 {
            let lines = tail_merged(&s.out, &s.err, args.lines).map_err(|e| read_err(&s.out, e))?;
            for (_, l) in lines {
                show(&s.label, &l);
            }
        } else {
            for st in &streams {
                let path = if *st == Stream::Out { &s.out } else { &s.err };
                for l in tail(path, args.lines).map_err(|e| read_err(path, e))? {
                    show(&s.label, &l);
                }
            }
        }
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        let mut any = false;
        for (label, f) in followers.iter_mut() {
            let lines = f.next_lines(Duration::ZERO).unwrap_or_default();
            any |= !lines.is_empty();
            for l in lines {
                show(label, &l);
            }
        }
        if !any {
            std::thread::sleep(FOLLOW_INTERVAL);
        }
    }
}
