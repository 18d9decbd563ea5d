use clap::Parser;

/// The static musl build's allocator: see `pypm::process::alloc`.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: pypm::process::alloc::Hybrid = pypm::process::alloc::Hybrid;

fn main() {
    // A process that will supervise takes no block from the command allocator at all, not even
    // while its arguments are parsed (`supervisor::run` says so again, for any other way in).
    // A wrong guess (an app named `up`) only costs speed.
    #[cfg(target_env = "musl")]
    {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let detach = args.iter().any(|a| a == "-d" || a == "--detach");
        if args.iter().any(|a| a == "daemon" || (a == "up" && !detach)) {
            pypm::process::alloc::supervising();
        }
    }
    pypm::process::restrict_static_name_lookups();
    // `PYPM_COMPLETE=bash pypm -- WORDS` (from the scripts of `pypm completions`) answers TAB.
    pypm::commands::complete_if_asked();
    let cli = pypm::cli::Cli::parse();
    if let Err(failure) = pypm::commands::run(cli) {
        let msg = failure.to_string();
        if !msg.is_empty() {
            eprintln!("{}", msg.trim_end());
        }
        std::process::exit(failure.exit_code());
    }
}
