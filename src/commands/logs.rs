//! `pypm logs [APP] [-f] [-n N] [--out|--err]`: read the log files directly (no supervisor needed).

use std::path::Path;
use std::time::Duration;

use super::{Failure, locate};
use crate::cli::LogsArgs;
use crate::logs::{FOLLOW_INTERVAL, Follower, Stream, sources, tail_follow};

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
                    "no app named `{a}` in `{}`{hint}",
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
    let read_err =
        |p: &Path, e: std::io::Error| Failure::Error(format!("cannot read `{}`: {e}", p.display()));
    let mut followers: Vec<(String, Follower)> = Vec::new();
    for s in &srcs {
        if args.follow {
            for st in &streams {
                let path = s.path(*st);
                let (lines, f) = tail_follow(path, args.lines).map_err(|e| read_err(path, e))?;
                for l in lines {
                    show(&s.label, &l);
                }
                followers.push((s.label.clone(), f));
            }
        } else {
            let lines = s
                .last_lines(&streams, args.lines)
                .map_err(|(p, e)| read_err(&p, e))?;
            for (_, l) in lines {
                show(&s.label, &l);
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
