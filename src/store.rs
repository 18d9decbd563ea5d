//! Private files: created 0600, replaced atomically (state.json, the HTTP token, exported
//! manifests), so no reader ever sees half a file and no other user reads them.
use crate::process::ext::fs::OpenOptionsExt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Opens (creating it 0600) `path` for writing: appended to, or truncated.
pub fn private_file(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    o.open(path)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then rename, so a
/// reader (or a supervisor started after a crash) sees the old file or the new one, never half.
/// No fsync: the state describes live processes, which a power loss ends anyway, and syncing on
/// every state change would put disk latency on the restart path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = private_file(&tmp, false)?;
        f.write_all(bytes)?;
    }
    std::fs::rename(&tmp, path)
}
