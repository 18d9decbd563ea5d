//! `pypm init`: a commented starter file for the current directory (`crate::init`).

use super::Failure;

pub fn init() -> Result<(), Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::Error(format!("error: cannot read the current directory: {e}")))?;
    match crate::init::write_starter(&cwd) {
        Ok(path) => {
            println!("wrote {}", path.display());
            println!("check it with `pypm check -v`, then run it with `pypm up`");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Failure::Error(
            "error: `pypm.toml` already exists here; not overwriting it".into(),
        )),
        Err(e) => Err(Failure::Error(format!(
            "error: cannot write pypm.toml: {e}"
        ))),
    }
}
