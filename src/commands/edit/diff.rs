//! A short unified diff of two texts, by lines, for printing what an edit changed.
//!
//! Edits touch a few lines of a file, so the common head and tail are cut first and the LCS table
//! only covers the changed middle.

use std::fmt::Write as _;

/// Lines of context around each change.
const CONTEXT: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Del,
    Add,
}

/// `--- a/NAME` / `+++ b/NAME` and `@@` hunks; empty when the texts are equal.
pub fn unified(name: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = line_ops(&a, &b);
    let mut out = format!("--- a/{name}\n+++ b/{name}\n");
    // Positions (old index, new index) before each op.
    let mut pos = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0usize, 0usize);
    for op in &ops {
        pos.push((i, j));
        match op {
            Op::Keep => {
                i += 1;
                j += 1;
            }
            Op::Del => i += 1,
            Op::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Keep).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let (oi, nj) = pos[start];
        let old_len = ops[start..end].iter().filter(|o| **o != Op::Add).count();
        let new_len = ops[start..end].iter().filter(|o| **o != Op::Del).count();
        let _ = writeln!(out, "@@ -{} +{} @@", range(oi, old_len), range(nj, new_len));
        for (idx, op) in ops.iter().enumerate().take(end).skip(start) {
            let (oi, nj) = pos[idx];
            let (mark, line) = match op {
                Op::Keep => (' ', a[oi]),
                Op::Del => ('-', a[oi]),
                Op::Add => ('+', b[nj]),
            };
            out.push(mark);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

fn range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}

fn line_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    // LCS lengths of suffixes: lcs[i][j] = LCS(ma[i..], mb[j..]).
    let (n, m) = (ma.len(), mb.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if ma[i] == mb[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = vec![Op::Keep; head];
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && ma[i] == mb[j] {
            ops.push(Op::Keep);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(Op::Add);
            j += 1;
        } else {
            ops.push(Op::Del);
            i += 1;
        }
    }
    // Deletions before additions within a change reads better: `-old` then `+new`.
    let mut k = head;
    while k < ops.len() {
        let s = k;
        while k < ops.len() && ops[k] != Op::Keep {
            k += 1;
        }
        ops[s..k].sort_by_key(|o| *o == Op::Add);
        k += 1;
    }
    ops.extend(std::iter::repeat_n(Op::Keep, tail));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("f", "a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn one_changed_line_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n";
        let new = "1\n2\n3\nfour\n5\n6\n7\n";
        assert_eq!(
            unified("pypm.toml", old, new),
            "--- a/pypm.toml\n+++ b/pypm.toml\n@@ -2,5 +2,5 @@\n 2\n 3\n-4\n+four\n 5\n 6\n"
        );
    }

    #[test]
    fn additions_at_the_end_and_a_new_file() {
        assert_eq!(
            unified("f", "a\n", "a\nb\n"),
            "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n a\n+b\n"
        );
        assert_eq!(
            unified("f", "", "x\n"),
            "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+x\n"
        );
    }

    #[test]
    fn distant_changes_make_two_hunks() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new = old
            .replace("\n3\n", "\nthree\n")
            .replace("17\n", "seventeen\n");
        let d = unified("f", &old, &new);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(
            d.contains("-3\n+three\n") && d.contains("-17\n+seventeen\n"),
            "{d}"
        );
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let d = unified("f", "a", "b");
        assert!(
            d.ends_with("-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n"),
            "{d}"
        );
    }
}
