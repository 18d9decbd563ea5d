//! `pypm init`: a commented starter file for the current directory (`crate::commands::init::starter`).

pub mod starter;

use super::Failure;

pub fn init(config: Option<&std::path::Path>) -> Result<(), Failure> {
    // Where the file goes: `--config FILE`, else `$PYPM_CONFIG`, else `pypm.toml` here.
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("PYPM_CONFIG").filter(|v| !v.is_empty()) {
            Some(p) => std::path::PathBuf::from(p),
            None => std::path::PathBuf::from(crate::commands::init::starter::FILE_NAME),
        },
    };
    match crate::commands::init::starter::write_starter_at(&path) {
        Ok(path) => {
            println!("wrote {}", path.display());
            println!("check it with `pypm check -v`, then run it with `pypm up`");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Failure::Error(format!(
            "`{}` already exists; not overwriting it",
            path.display()
        ))),
        Err(e) => Err(Failure::Error(format!(
            "cannot write {}: {e}",
            path.display()
        ))),
    }
}
