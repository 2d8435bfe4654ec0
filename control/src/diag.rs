//! Located diagnostics: every error about user input names the file, line, column and field path,
//! and says what to do. One renderer: `file:line:col: path: message`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a source file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

/// One problem in one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub span: Span,
    /// Field path, e.g. `spec.ingress[0].toPorts[0].rules.http[0].path`; empty for the document.
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        file: &Path,
        span: Span,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = shorten_quoted(&message.into());
        Diagnostic { file: file.to_path_buf(), span, path: path.into(), message }
    }
}

/// Quoted values longer than this many characters are cut in messages.
pub const QUOTE_LIMIT: usize = 100;

/// `message` with every quoted value (`"..."`, as `{:?}` writes it) longer than [`QUOTE_LIMIT`]
/// characters cut there, with a marker saying how much was left out: a 1 MB regex must not make
/// a 1 MB error, and the field path and position already say where the value is.
fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4 * QUOTE_LIMIT));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        let (mut kept, mut dropped, mut escaped) = (0usize, 0usize, false);
        for c in chars.by_ref() {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            if closes {
                break;
            }
            if kept < QUOTE_LIMIT {
                out.push(c);
                kept += 1;
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            // Not a dangling half of an escape.
            if out.ends_with('\\') {
                out.pop();
                dropped += 1;
            }
            out.push_str(&format!("…\" ({dropped} more characters)"));
        } else {
            out.push('"');
        }
    }
    out
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.span.line, self.span.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// All diagnostics of a failed load, sorted by file and position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    /// Sorts by file, then position, so output is stable.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| (&a.file, a.span, &a.path).cmp(&(&b.file, b.span, &b.path)));
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut_with_a_marker() {
        let long = "a".repeat(1_000_000);
        let d = Diagnostic::new(
            Path::new("p.yaml"),
            Span::default(),
            "x",
            format!("invalid regex {long:?}: fix it"),
        );
        assert_eq!(
            d.message,
            format!("invalid regex \"{}…\" (999900 more characters): fix it", "a".repeat(100))
        );
        let short =
            Diagnostic::new(Path::new("p.yaml"), Span::default(), "x", "bad \"a\\\"b\" here");
        assert_eq!(
            short.message, "bad \"a\\\"b\" here",
            "short values and escapes stay as they are"
        );
    }
}
