//! Gathering the files: the main file's `include`s (globs sorted, depth first, each file once,
//! cycles and unreadable files reported) end to end in one virtual source.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::{SourceFile, Sources, shifted};
use crate::diagnostic::Diagnostic;

/// A diagnostic found while gathering files, before their offsets are known.
struct Pending {
    file: usize,
    span: Option<Range<usize>>,
    message: String,
}

/// The include entries of a file: (text, local span).
fn includes_of(text: &str) -> Vec<(String, Range<usize>)> {
    // Most files include nothing: no second parse of a large file to learn that.
    if !text.contains("include") {
        return Vec::new();
    }
    let Ok(root) = DeTable::parse(text) else {
        return Vec::new();
    };
    let Some(v) = root.get_ref().get("include") else {
        return Vec::new();
    };
    match v.get_ref() {
        DeValue::String(s) => vec![(s.to_string(), v.span())],
        DeValue::Array(a) => a
            .iter()
            .filter_map(|x| match x.get_ref() {
                DeValue::String(s) => Some((s.to_string(), x.span())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

struct Gather {
    texts: Vec<(PathBuf, String, String)>,
    /// Files in merge order: each file's includes (recursively) before the file itself.
    order: Vec<usize>,
    pending: Vec<Pending>,
    main_dir: PathBuf,
    main_display_dir: PathBuf,
}

impl Gather {
    fn display_of(&self, path: &Path) -> String {
        match path.strip_prefix(&self.main_dir) {
            Ok(rel) => self.main_display_dir.join(rel).display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    /// Adds `path`'s includes (depth first), then `path` itself (already in `texts` as `idx`).
    fn visit(&mut self, idx: usize, stack: &mut Vec<PathBuf>) {
        let (path, text) = (self.texts[idx].0.clone(), self.texts[idx].2.clone());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (entry, span) in includes_of(&text) {
            let pattern = dir.join(&entry);
            let globbed = entry.contains(['*', '?', '[']);
            let mut found: Vec<PathBuf> = if globbed {
                glob::glob(&pattern.to_string_lossy())
                    .map(|g| g.filter_map(Result::ok).filter(|p| p.is_file()).collect())
                    .unwrap_or_default()
            } else {
                vec![pattern.clone()]
            };
            found.sort();
            if found.is_empty() {
                self.pending.push(Pending {
                    file: idx,
                    span: Some(span.clone()),
                    message: format!("`include = \"{entry}\"` matches no file"),
                });
            }
            for f in found {
                let canon = f.canonicalize().unwrap_or_else(|_| f.clone());
                if stack.contains(&canon) {
                    let chain: Vec<String> = stack
                        .iter()
                        .chain(std::iter::once(&canon))
                        .map(|p| self.display_of(p))
                        .collect();
                    self.pending.push(Pending {
                        file: idx,
                        span: Some(span.clone()),
                        message: format!("include cycle: {}", chain.join(" → ")),
                    });
                    continue;
                }
                if self.texts.iter().any(|(p, _, _)| *p == canon) {
                    continue; // included twice (a diamond): once is enough
                }
                // A device or FIFO would be read forever (`include = ["/dev/zero"]`).
                if !std::fs::metadata(&f).is_ok_and(|m| m.is_file()) && f.exists() {
                    self.pending.push(Pending {
                        file: idx,
                        span: Some(span.clone()),
                        message: format!(
                            "included `{}` is not a regular file",
                            self.display_of(&f)
                        ),
                    });
                    continue;
                }
                let text = match std::fs::read_to_string(&f) {
                    Ok(t) => t,
                    Err(e) => {
                        self.pending.push(Pending {
                            file: idx,
                            span: Some(span.clone()),
                            message: format!(
                                "cannot read included file `{}`: {e}",
                                self.display_of(&f)
                            ),
                        });
                        continue;
                    }
                };
                let display = self.display_of(&canon);
                self.texts.push((canon.clone(), display, text));
                let child = self.texts.len() - 1;
                stack.push(canon);
                self.visit(child, stack);
                stack.pop();
            }
        }
        self.order.push(idx);
    }
}

/// Reads the main file's includes and builds the virtual source. Returns it with the merge
/// order and the problems met (missing files, cycles) as diagnostics on virtual spans.
pub fn gather(
    main_src: &str,
    path: &Path,
    display: &str,
) -> (Sources, Vec<usize>, Vec<Diagnostic>) {
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut g = Gather {
        texts: vec![(canon.clone(), display.to_string(), main_src.to_string())],
        order: Vec::new(),
        pending: Vec::new(),
        main_dir: canon.parent().map(Path::to_path_buf).unwrap_or_default(),
        main_display_dir: Path::new(display)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut stack = vec![canon];
    g.visit(0, &mut stack);
    let mut sources = Sources::default();
    for (p, d, t) in &g.texts {
        let start = sources.text.len();
        sources.text.push_str(t);
        sources.files.push(SourceFile {
            path: p.clone(),
            display: d.clone(),
            start,
            len: t.len(),
        });
        // A separator, so that no file's span touches the next one's first byte.
        sources.text.push('\n');
    }
    let diags = g
        .pending
        .into_iter()
        .map(|p| {
            let by = sources.files[p.file].start;
            Diagnostic::new(p.message, p.span.map(|s| shifted(s, by)))
        })
        .collect();
    (sources, g.order, diags)
}
