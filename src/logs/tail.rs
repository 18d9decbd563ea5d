//! The last lines of a log, read backwards in blocks from the live file and then its rotated files.

use super::timestamp::{TS_LEN, has_timestamp};
use super::{Stream, rotated_path};
use crate::process::ext::fs::FileExt;
use std::fs::File;
use std::io;
use std::path::Path;

const BLOCK: u64 = 64 * 1024;

/// The last `n` lines of the log whose live file is `path`, oldest first. When the live file has
/// fewer, the rest comes from `path.1`, `path.2` … (up to the first missing one). A missing live
/// file counts as empty. Bytes that are not UTF-8 are replaced (lossy).
pub fn tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let live = match File::open(path) {
        Ok(f) => {
            let len = f.metadata()?.len();
            Some((f, len))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    tail_open(path, live.as_ref().map(|(f, len)| (f, *len)), n)
}

/// [`tail`] where the live file is already open and read up to `len` (so a follower can go on
/// from exactly there).
pub(crate) fn tail_open(
    path: &Path,
    live: Option<(&File, u64)>,
    n: usize,
) -> io::Result<Vec<String>> {
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut have = 0;
    if let Some((f, len)) = live {
        let lines = tail_file(f, len, n)?;
        have += lines.len();
        chunks.push(lines);
    }
    let mut k = 1;
    while have < n {
        let f = match File::open(rotated_path(path, k)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let lines = tail_file(&f, len, n - have)?;
        have += lines.len();
        chunks.push(lines);
        k += 1;
    }
    Ok(chunks.into_iter().rev().flatten().collect())
}

/// The last `n` lines of the first `len` bytes of `f`, reading backwards in blocks.
fn tail_file(f: &File, len: u64, n: usize) -> io::Result<Vec<String>> {
    if n == 0 || len == 0 {
        return Ok(Vec::new());
    }
    // `data` holds bytes [pos, len) of the file; a final newline ends the last line, it does not
    // start another.
    let mut data: Vec<u8> = Vec::new();
    let mut pos = len;
    let mut newlines = 0; // in `data`, not counting a final one
    while pos > 0 && newlines < n {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0; (pos - start) as usize];
        f.read_exact_at(&mut block, start)?;
        let last_is_final = pos == len && block.last() == Some(&b'\n');
        newlines += block.iter().filter(|b| **b == b'\n').count() - usize::from(last_is_final);
        block.extend_from_slice(&data);
        data = block;
        pos = start;
    }
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let mut lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    if pos > 0 || lines.len() > n {
        // The first piece may be the end of an earlier line: drop it unless it is wanted whole.
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok(lines
        .into_iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect())
}

/// The last `n` lines of an app's stdout (`out`) and stderr (`err`) logs, interleaved in time
/// order by their timestamp prefix (for `log_timestamps = true`; without timestamps callers show
/// stdout's lines, then stderr's). A line without a timestamp keeps its place after the line
/// before it in the same file. On equal times stdout comes first.
pub fn tail_merged(out: &Path, err: &Path, n: usize) -> io::Result<Vec<(Stream, String)>> {
    let a = tail(out, n)?;
    let b = tail(err, n)?;
    let ka = sort_keys(&a);
    let kb = sort_keys(&b);
    let (mut i, mut j) = (0, 0);
    let mut merged = Vec::with_capacity(a.len() + b.len());
    while i < ka.len() || j < kb.len() {
        let take_out = j == kb.len() || (i < ka.len() && ka[i] <= kb[j]);
        if take_out {
            merged.push((Stream::Out, a[i].clone()));
            i += 1;
        } else {
            merged.push((Stream::Err, b[j].clone()));
            j += 1;
        }
    }
    let skip = merged.len().saturating_sub(n);
    merged.drain(..skip);
    Ok(merged)
}

fn sort_keys(lines: &[String]) -> Vec<&str> {
    let mut last = "";
    lines
        .iter()
        .map(|l| {
            if has_timestamp(l.as_bytes()) {
                last = &l[..TS_LEN];
            }
            last
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_file_edges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let cases: &[(&str, usize, &[&str])] = &[
            ("", 3, &[]),
            ("a\nb\nc\n", 2, &["b", "c"]),
            ("a\nb\nc\n", 5, &["a", "b", "c"]),
            ("a\nb\nc", 2, &["b", "c"]),
            ("\n\nx\n", 3, &["", "", "x"]),
            ("a\n", 0, &[]),
        ];
        for (content, n, want) in cases {
            std::fs::write(&p, content).unwrap();
            assert_eq!(&tail(&p, *n).unwrap(), want, "{content:?} n={n}");
        }
    }

    #[test]
    fn tail_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        for n in [1, 9_000, 100_000, 200_000] {
            let got = tail(&p, n).unwrap();
            let want: Vec<String> = (100_000usize.saturating_sub(n)..100_000)
                .map(|i| format!("line {i}"))
                .collect();
            assert_eq!(got, want, "n={n}");
        }
    }
}
