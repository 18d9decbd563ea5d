//! placeholder until merged
pub fn write_starter(_dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    Err(std::io::Error::other("not yet"))
}
