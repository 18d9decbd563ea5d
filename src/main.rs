use clap::Parser;

fn main() {
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
