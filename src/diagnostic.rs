//! One renderer for every configuration error: `error: …`, `--> FILE:LINE:COL`, the source line
//! and a caret under the offending span, then an optional `help:` hint.
//!
//! Owns positions (byte spans → line/column) and the "did you mean" suggestion; knows nothing about
//! what the keys mean.

use std::fmt::Write as _;
use std::ops::Range;

/// A byte range into the configuration source.
pub type Span = Range<usize>;

/// One problem found in a file, located by a byte span of that file's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Span>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Option<Span>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders diagnostics of one file in the house format.
pub struct Renderer<'a> {
    pub file: &'a str,
    pub source: &'a str,
}

impl Renderer<'_> {
    pub fn render(&self, d: &Diagnostic) -> String {
        let mut out = format!("error: {}\n", d.message);
        match &d.span {
            Some(span) => {
                let (line, col) = line_col(self.source, span.start);
                let text = self.source.lines().nth(line - 1).unwrap_or("");
                let gutter = line.to_string().len();
                let pad = " ".repeat(gutter);
                let _ = writeln!(out, "{pad}--> {}:{line}:{col}", self.file);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{line} | {text}");
                // The caret covers the span, limited to the first line it touches.
                let start = floor_char_boundary(self.source, span.start.min(self.source.len()));
                let end = floor_char_boundary(self.source, span.end.min(self.source.len()));
                let rest_of_line = self.source[start..].split('\n').next().unwrap_or("");
                let width = self.source[start..end.max(start)]
                    .split('\n')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .count()
                    .clamp(1, rest_of_line.chars().count().max(1));
                let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width));
                if let Some(help) = &d.help {
                    let _ = writeln!(out, "{pad} = help: {help}");
                }
            }
            None => {
                let _ = writeln!(out, " --> {}", self.file);
                if let Some(help) = &d.help {
                    let _ = writeln!(out, "  = help: {help}");
                }
            }
        }
        out
    }

    pub fn render_all(&self, ds: &[Diagnostic]) -> String {
        ds.iter()
            .map(|d| self.render(d))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The closest candidate to `word`, if it is near enough to be a plausible typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= limit || (c.len() > 3 && c.eq_ignore_ascii_case(word)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 4));
    }

    #[test]
    fn renders_caret_under_span() {
        let src = "[apps.api]\ncomand = \"x\"\n";
        let r = Renderer {
            file: "pypm.toml",
            source: src,
        };
        let d = Diagnostic::new("unknown key `comand` in app `api`", Some(11..17))
            .with_help("did you mean `command`?");
        assert_eq!(
            r.render(&d),
            "error: unknown key `comand` in app `api`\n --> pypm.toml:2:1\n  |\n2 | comand = \"x\"\n  | ^^^^^^\n  = help: did you mean `command`?\n"
        );
    }

    #[test]
    fn suggestions_only_when_near() {
        let keys = ["command", "script", "module"];
        assert_eq!(
            did_you_mean("comand", keys).as_deref(),
            Some("did you mean `command`?")
        );
        assert_eq!(did_you_mean("zzzzzz", keys), None);
    }
}
