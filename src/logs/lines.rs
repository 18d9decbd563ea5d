//! Cutting a pipe's byte stream into whole lines and formatting them for a log file.
//!
//! Pure and allocation-bounded: the only state is one partial line of at most [`MAX_LINE`] bytes.

use super::MAX_LINE;
use super::timestamp::TS_LEN;

/// A line observer for one pipe, called on the pump thread with every complete line (without
/// timestamp or newline). It must be quick: the pump waits for it.
pub type Tap = Box<dyn FnMut(&str) + Send>;

/// How each line is written: an optional timestamp prefix, and an optional tap that sees the
/// line (without prefix or newline), e.g. for a `log` readiness probe.
pub(crate) struct LineFormat<'a> {
    pub prefix: Option<&'a [u8; TS_LEN + 1]>,
    pub tap: Option<&'a mut Tap>,
}

impl LineFormat<'_> {
    fn is_plain(&self) -> bool {
        self.prefix.is_none() && self.tap.is_none()
    }

    /// Appends one line (`line` has no newline and is at most [`MAX_LINE`] long).
    fn line(&mut self, out: &mut Vec<u8>, line: &[u8]) {
        if let Some(p) = self.prefix {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        if let Some(tap) = self.tap.as_mut() {
            tap(&String::from_utf8_lossy(line));
        }
    }

    /// Appends one line of any length, in pieces of at most [`MAX_LINE`].
    fn long_line(&mut self, out: &mut Vec<u8>, line: &[u8]) {
        if line.is_empty() {
            self.line(out, line);
        }
        for piece in line.chunks(MAX_LINE) {
            self.line(out, piece);
        }
    }

    /// Appends whole lines (`bulk` ends with a newline).
    fn bulk(&mut self, out: &mut Vec<u8>, bulk: &[u8]) {
        // Fast path: nothing to add per line, and no line in `bulk` longer than MAX_LINE (checked
        // with SIMD newline search): the bytes go out as they came.
        if self.is_plain() && no_long_line(bulk) {
            out.extend_from_slice(bulk);
            return;
        }
        out.reserve(bulk.len());
        let mut rest = bulk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            match (self.prefix, &self.tap) {
                (Some(p), None) if i <= MAX_LINE => {
                    out.extend_from_slice(p);
                    out.extend_from_slice(&rest[..=i]);
                }
                _ => self.long_line(out, &rest[..i]),
            }
            rest = &rest[i + 1..];
        }
    }
}

/// Whether every line of `bulk` (which ends with a newline) fits in [`MAX_LINE`].
fn no_long_line(bulk: &[u8]) -> bool {
    if bulk.len() <= MAX_LINE + 1 {
        return true;
    }
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', bulk) {
        if nl - start > MAX_LINE {
            return false;
        }
        start = nl + 1;
    }
    true
}

/// One pipe's line assembler: the partial line carried between reads.
#[derive(Default)]
pub(crate) struct LineSplitter {
    carry: Vec<u8>,
}

impl LineSplitter {
    /// Bytes of a partial line held back until its newline arrives.
    pub fn carried(&self) -> usize {
        self.carry.len()
    }

    /// Appends every line completed by `data` to `out`, keeping the unfinished rest.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>, fmt: &mut LineFormat<'_>) {
        while let Some(i) = memchr::memchr(b'\n', data) {
            if self.carry.is_empty() {
                let last = memchr::memrchr(b'\n', data).unwrap_or(i);
                fmt.bulk(out, &data[..=last]);
                data = &data[last + 1..];
                break;
            }
            self.push_partial(&data[..i], out, fmt);
            fmt.line(out, &self.carry);
            self.carry.clear();
            data = &data[i + 1..];
        }
        self.push_partial(data, out, fmt);
    }

    /// Writes out the unfinished line, if any (end of file, or shutdown).
    pub fn finish(&mut self, out: &mut Vec<u8>, fmt: &mut LineFormat<'_>) {
        if !self.carry.is_empty() {
            fmt.line(out, &self.carry);
            self.carry.clear();
        }
    }

    fn push_partial(&mut self, mut data: &[u8], out: &mut Vec<u8>, fmt: &mut LineFormat<'_>) {
        while self.carry.len() + data.len() > MAX_LINE {
            let take = MAX_LINE - self.carry.len();
            self.carry.extend_from_slice(&data[..take]);
            fmt.line(out, &self.carry);
            self.carry.clear();
            data = &data[take..];
        }
        self.carry.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], prefix: Option<&[u8; TS_LEN + 1]>) -> (Vec<u8>, Vec<String>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let mut tap: Tap = Box::new(move |l: &str| seen2.lock().unwrap().push(l.to_owned()));
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        {
            let mut fmt = LineFormat {
                prefix,
                tap: Some(&mut tap),
            };
            for c in chunks {
                s.feed(c, &mut out, &mut fmt);
                assert!(s.carried() <= MAX_LINE);
            }
            s.finish(&mut out, &mut fmt);
        }
        let seen = seen.lock().unwrap().clone();
        (out, seen)
    }

    #[test]
    fn lines_across_chunks() {
        let (out, seen) = run(&[b"a\nb", b"c\n\nd", b"e"], None);
        assert_eq!(out, b"a\nbc\n\nde\n");
        assert_eq!(seen, ["a", "bc", "", "de"]);
    }

    #[test]
    fn prefix_on_every_line() {
        let p = b"2026-11-27T03:50:01.123Z ";
        let (out, _) = run(&[b"x\ny", b"\n"], Some(p));
        let want = "2026-11-27T03:50:01.123Z x\n2026-11-27T03:50:01.123Z y\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn long_lines_are_cut_in_pieces() {
        for len in [
            MAX_LINE - 1,
            MAX_LINE,
            MAX_LINE + 1,
            2 * MAX_LINE,
            3 * MAX_LINE + 7,
        ] {
            let line = vec![b'x'; len];
            // Fed in one piece, in odd-sized chunks, and whole with a newline.
            let whole: Vec<u8> = [&line[..], b"\nz\n"].concat();
            let chunked: Vec<&[u8]> = whole.chunks(10_000).collect();
            for chunks in [vec![&whole[..]], chunked] {
                let (out, seen) = run(&chunks, None);
                let lens: Vec<usize> = seen.iter().map(String::len).collect();
                let mut want: Vec<usize> = line.chunks(MAX_LINE).map(<[u8]>::len).collect();
                want.push(1);
                assert_eq!(lens, want, "len={len}");
                // Every piece gets a newline, plus "z\n".
                assert_eq!(out.len(), len + want.len() + 1, "len={len}");
            }
        }
    }
}
