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
        Diagnostic { file: file.to_path_buf(), span, path: path.into(), message: message.into() }
    }
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
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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
