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
    pub fn is_plain(&self) -> bool {
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
    // A run of MAX_LINE - 1 bytes or more without a newline covers one of the aligned blocks of
    // MAX_LINE / 2 bytes whole, so when every block holds a newline no line is long: one short
    // search per block instead of one per line.
    if bulk
        .chunks(MAX_LINE / 2)
        .all(|block| memchr::memchr(b'\n', block).is_some())
    {
        return true;
    }
    no_long_line_exact(bulk)
}

/// [`no_long_line`] measuring each line: one newline search per line.
fn no_long_line_exact(bulk: &[u8]) -> bool {
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

    /// For a caller that writes plain lines itself, without copying them: `Some((head, end))`
    /// when [`Self::carried`] + `data[..head]` is the line that was unfinished (`head` is 0 when
    /// none was) and `data[head..end]` are whole lines, none longer than [`MAX_LINE`]. The caller
    /// writes those three pieces in that order, calls [`Self::clear`], and feeds `data[end..]`.
    /// `None` when there is no complete line, or the first one is too long for a single line.
    pub fn plain_split(&self, data: &[u8]) -> Option<(usize, usize)> {
        let head = if self.carry.is_empty() {
            0
        } else {
            let i = memchr::memchr(b'\n', data)?;
            if self.carry.len() + i > MAX_LINE {
                return None;
            }
            i + 1
        };
        let end = match memchr::memrchr(b'\n', &data[head..]) {
            Some(last) if no_long_line(&data[head..=head + last]) => head + last + 1,
            _ => head,
        };
        (end > 0).then_some((head, end))
    }

    /// The unfinished line carried between reads.
    pub fn carry(&self) -> &[u8] {
        &self.carry
    }

    /// Forgets the carried partial line (the caller wrote it, see [`Self::plain_split`]).
    pub fn clear(&mut self) {
        self.carry.clear();
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

    /// Lines of the given lengths ("x" repeated), each with its newline.
    fn text(lens: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for &n in lens {
            out.extend(std::iter::repeat_n(b'x', n));
            out.push(b'\n');
        }
        out
    }

    /// Lengths around the interesting boundaries (MAX_LINE, and the MAX_LINE / 2 blocks).
    fn line_len() -> impl proptest::strategy::Strategy<Value = usize> {
        use proptest::prelude::*;
        prop_oneof![
            0..200usize,
            (MAX_LINE / 2 - 3)..(MAX_LINE / 2 + 3),
            (MAX_LINE - 3)..(MAX_LINE + 3),
            (2 * MAX_LINE - 3)..(2 * MAX_LINE + 3),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        #[test]
        fn block_check_agrees_with_the_exact_scan(
            lens in proptest::collection::vec(line_len(), 1..12),
        ) {
            let bulk = text(&lens);
            proptest::prop_assert_eq!(no_long_line(&bulk), no_long_line_exact(&bulk));
        }

        /// Writing `plain_split`'s pieces directly and feeding only the rest gives the same
        /// bytes as feeding everything, however the stream is cut into reads.
        #[test]
        fn plain_split_writes_what_feed_would(
            lens in proptest::collection::vec(line_len(), 1..10),
            tail in 0..100usize,
            cuts in proptest::collection::vec(1..(3 * MAX_LINE), 1..8),
        ) {
            let mut stream = text(&lens);
            stream.extend(std::iter::repeat_n(b'y', tail));
            let (want, _) = {
                let mut out = Vec::new();
                let mut s = LineSplitter::default();
                let mut fmt = LineFormat { prefix: None, tap: None };
                s.feed(&stream, &mut out, &mut fmt);
                s.finish(&mut out, &mut fmt);
                (out, ())
            };
            let mut out = Vec::new();
            let mut s = LineSplitter::default();
            let mut fmt = LineFormat { prefix: None, tap: None };
            let mut rest = &stream[..];
            let mut k = 0;
            while !rest.is_empty() {
                let n = cuts[k % cuts.len()].min(rest.len());
                k += 1;
                let mut data = &rest[..n];
                rest = &rest[n..];
                if let Some((head, end)) = s.plain_split(data) {
                    out.extend_from_slice(s.carry());
                    out.extend_from_slice(&data[..end]);
                    proptest::prop_assert!(head <= end);
                    s.clear();
                    data = &data[end..];
                }
                s.feed(data, &mut out, &mut fmt);
            }
            s.finish(&mut out, &mut fmt);
            proptest::prop_assert!(out == want, "outputs differ");
        }
    }
}
