//! Located YAML decoding shared by every input format (policies, inventory): saphyr's marked
//! nodes, typed accessors that record an error with file, line, column and field path and carry
//! on, and field checks against a declared shape, so one run reports every error of a file.

use std::path::{Path, PathBuf};

use saphyr::{MarkedYamlOwned, ScalarOwned, ScanError, YamlDataOwned, YamlLoader};
use saphyr_parser::{Event, Parser, SpannedEventReceiver};

use crate::diag::{Diagnostic, Span};

pub(crate) type Node = MarkedYamlOwned;
type Data = YamlDataOwned<MarkedYamlOwned>;

/// How deep mappings and lists may nest in one document. Cilium policies need under 15 levels
/// and `kubectl get -o yaml` lists a few more; the limit exists because deeper input is an attack
/// (each level costs stack in any recursive consumer), not a policy.
pub(crate) const MAX_DEPTH: usize = 64;

/// The largest input file read (policies or inventory): far above any real one (a 50 MB file of
/// 92,000 policies validates in 4 s and 413 MiB), low enough that memory stays bounded.
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The most YAML documents one input file may hold: above any real file (a 50 MB file holds
/// about 92,000 policies), low enough that a file of empty documents (`---` repeated: 4 bytes
/// each) is refused at once instead of being walked for seconds.
pub(crate) const MAX_DOCUMENTS: usize = 100_000;

/// Reads an input file, refusing one larger than [`MAX_FILE_BYTES`] before reading it; the error
/// says what to do.
pub(crate) fn read_input(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let mut text = String::new();
    // Read one byte past the limit, so a file that grows while being read is caught as well.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "the file is larger than {} MiB, the limit for one input file: split it into \
             several files",
            MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    Ok(text)
}

/// Every `*.yaml` / `*.yml` file directly in the directory `path` (sorted by name), or the
/// single file `path`; `holding` names what the directory should hold, for the error.
pub(crate) fn yaml_files(path: &Path, holding: &str) -> Result<Vec<PathBuf>, Diagnostic> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let unreadable =
        |e: std::io::Error| file_error(path, format!("cannot read the directory: {e}"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(unreadable)? {
        let file = entry.map_err(unreadable)?.path();
        let is_yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if is_yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(file_error(
            path,
            format!(
                "no *.yaml or *.yml file in this directory: point to the directory holding {holding}"
            ),
        ));
    }
    Ok(files)
}

/// An error about a whole file (located at its start).
pub(crate) fn file_error(file: &Path, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(file, Span { line: 1, col: 1 }, "", message)
}

/// Why a text did not load.
enum LoadError {
    Syntax(ScanError),
    /// A mapping or list opened at this position is nested deeper than [`MAX_DEPTH`].
    TooDeep(saphyr::Marker),
    /// The document starting here is one more than [`MAX_DOCUMENTS`].
    TooMany(saphyr::Marker),
}

/// Hands each document of a text to `visit` as soon as it is complete, built from the parser's
/// events one at a time (never recursively) and dropped after the visit, so memory holds one
/// document's tree at a time; refuses nesting past [`MAX_DEPTH`] and documents past
/// [`MAX_DOCUMENTS`] as soon as they are reached.
fn load(text: &str, mut visit: impl FnMut(Node)) -> Result<(), LoadError> {
    let mut loader = YamlLoader::<Node>::default();
    let mut depth = 0usize;
    let mut documents = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(LoadError::Syntax)?;
        let document_end = event == Event::DocumentEnd;
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(LoadError::TooDeep(span.start));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > MAX_DOCUMENTS {
                    return Err(LoadError::TooMany(span.start));
                }
            }
            _ => {}
        }
        loader.on_event(event, span);
        if let Some(e) = loader.error() {
            return Err(LoadError::Syntax(e.clone()));
        }
        if document_end {
            std::mem::take(&mut loader).into_documents().into_iter().for_each(&mut visit);
        }
    }
    loader.into_documents().into_iter().for_each(visit);
    Ok(())
}

/// The fields an object accepts, and how to treat the others.
pub(crate) struct Shape {
    /// What the object is, for messages ("an ingress rule").
    pub(crate) what: &'static str,
    /// Fields l7gate understands.
    pub(crate) fields: &'static [&'static str],
    /// Cilium fields l7gate refuses (`reject` gives the message); an empty list is harmless and
    /// accepted.
    pub(crate) unenforced: &'static [&'static str],
    /// Fields skipped without a look (kubectl output noise).
    pub(crate) ignored: &'static [&'static str],
    pub(crate) reject: fn(&str) -> String,
}

impl Shape {
    /// A shape with no refused and no ignored fields.
    pub(crate) const fn plain(what: &'static str, fields: &'static [&'static str]) -> Shape {
        Shape { what, fields, unenforced: &[], ignored: &[], reject: unsupported }
    }
}

fn unsupported(field: &str) -> String {
    format!("{field} is not supported")
}

/// A mapping's entries with the path of the mapping.
pub(crate) struct Fields<'n> {
    pub(crate) path: String,
    pub(crate) node: &'n Node,
    pub(crate) entries: Vec<(String, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// Key and value of `name`; a null value counts as absent (Kubernetes semantics).
    pub(crate) fn entry(&self, name: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries.iter().find(|(k, _, v)| k == name && !is_null(v)).map(|&(_, k, v)| (k, v))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'n Node> {
        self.entry(name).map(|(_, v)| v)
    }

    pub(crate) fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }
}

/// The payload of a node, through any tags.
pub(crate) fn data(node: &Node) -> &Data {
    let mut node = node;
    while let YamlDataOwned::Tagged(_, inner) = &node.data {
        node = inner;
    }
    &node.data
}

pub(crate) fn span_of(node: &Node) -> Span {
    Span { line: node.span.start.line().max(1), col: node.span.start.col() + 1 }
}

pub(crate) fn is_null(node: &Node) -> bool {
    matches!(data(node), YamlDataOwned::Value(ScalarOwned::Null))
}

/// What to do about a syntax error, by what the parser said.
fn syntax_fix(info: &str) -> &'static str {
    if info.contains("duplicated key") {
        "remove or rename one of the two entries"
    } else if info.contains("tab") {
        "indent with spaces, never tabs"
    } else if info.contains("recursion limit") {
        "flow collections ([...] and {...}) nest too deep; flatten the document"
    } else if info.contains("alias expansion") {
        "anchors and aliases (&name, *name) expand to too many nodes; write the values out"
    } else {
        "fix the YAML syntax at this position"
    }
}

/// The string at the path `keys` of nested mappings under `node`, when it is there; looking never
/// records an error (for naming an object that is not read further).
pub(crate) fn peek_str<'n>(node: &'n Node, keys: &[&str]) -> Option<&'n str> {
    let Some((first, rest)) = keys.split_first() else {
        return match data(node) {
            YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s),
            _ => None,
        };
    };
    let YamlDataOwned::Mapping(map) = data(node) else { return None };
    let value = map.iter().find(
        |(k, _)| matches!(data(k), YamlDataOwned::Value(ScalarOwned::String(s)) if s == first),
    )?;
    peek_str(value.1, rest)
}

pub(crate) fn seq_len(node: &Node) -> Option<usize> {
    match data(node) {
        YamlDataOwned::Sequence(items) => Some(items.len()),
        _ => None,
    }
}

pub(crate) fn is_empty_seq(node: &Node) -> bool {
    seq_len(node) == Some(0)
}

/// The text of a non-string scalar (`8080`, `true`).
pub(crate) fn scalar_text(node: &Node) -> Option<String> {
    match data(node) {
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(b.to_string()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(format!("{:?}", f.0)),
        _ => None,
    }
}

pub(crate) fn describe(node: &Node) -> String {
    match data(node) {
        YamlDataOwned::Value(ScalarOwned::Null) => "an empty value".into(),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => format!("the boolean {b}"),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => format!("the number {i}"),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => format!("the number {:?}", f.0),
        YamlDataOwned::Value(ScalarOwned::String(s)) => format!("the string {s:?}"),
        YamlDataOwned::Sequence(_) => "a list".into(),
        YamlDataOwned::Mapping(_) => "a mapping".into(),
        _ => "an unreadable value".into(),
    }
}

/// Decoder of one file: every problem is recorded and decoding goes on.
pub(crate) struct Decoder<'f> {
    pub(crate) file: &'f Path,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// What was read and deliberately left aside (e.g. a Deployment beside the policies).
    pub(crate) notes: Vec<Diagnostic>,
}

impl<'f> Decoder<'f> {
    pub(crate) fn new(file: &'f Path) -> Self {
        Decoder { file, errors: Vec::new(), warnings: Vec::new(), notes: Vec::new() }
    }

    /// Decodes the documents of a (multi-document) YAML text one at a time with `visit`, and
    /// returns how many were not empty; `None` after recording a syntax error (the documents
    /// before it were visited: their errors are reported too, and nothing is accepted).
    pub(crate) fn each_document(
        &mut self,
        text: &str,
        mut visit: impl FnMut(&mut Self, &Node),
    ) -> Option<usize> {
        let mut real = 0;
        let loaded = load(text, |doc| {
            if !is_null(&doc) {
                real += 1;
                visit(self, &doc);
            }
        });
        let (marker, message) = match loaded {
            Ok(()) => return Some(real),
            Err(LoadError::Syntax(e)) => {
                (*e.marker(), format!("invalid YAML: {}: {}", e.info(), syntax_fix(e.info())))
            }
            Err(LoadError::TooDeep(marker)) => (
                marker,
                format!(
                    "mappings and lists nest deeper than {MAX_DEPTH} levels here: no policy or \
                     inventory needs that many; flatten the document"
                ),
            ),
            Err(LoadError::TooMany(marker)) => (
                marker,
                format!(
                    "more than {MAX_DOCUMENTS} YAML documents in one file (the limit): split it \
                     into several files of a directory"
                ),
            ),
        };
        let span = Span { line: marker.line().max(1), col: marker.col() + 1 };
        self.error_at(span, "", message);
        None
    }

    pub(crate) fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.error_at(span_of(node), path, message);
    }

    pub(crate) fn error_at(&mut self, span: Span, path: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(self.file, span, path, message));
    }

    pub(crate) fn warn(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(self.file, span_of(node), path, message));
    }

    pub(crate) fn note(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.notes.push(Diagnostic::new(self.file, span_of(node), path, message));
    }

    /// Records the error of a validation result.
    pub(crate) fn check<T>(
        &mut self,
        node: &Node,
        path: &str,
        result: Result<T, String>,
    ) -> Option<T> {
        result.map_err(|message| self.error(node, path, message)).ok()
    }

    /// A mapping checked against `shape`: unknown fields and refused fields are errors.
    pub(crate) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        shape: &Shape,
    ) -> Option<Fields<'n>> {
        let f = self.mapping(node, path, shape.what)?;
        self.check_fields(&f, shape);
        Some(f)
    }

    pub(crate) fn check_fields(&mut self, f: &Fields, shape: &Shape) {
        for (name, key, value) in &f.entries {
            let name = name.as_str();
            if shape.fields.contains(&name) || shape.ignored.contains(&name) {
                continue;
            }
            let message = if shape.unenforced.contains(&name) {
                if is_null(value) || is_empty_seq(value) {
                    continue;
                }
                (shape.reject)(name)
            } else {
                format!(
                    "unknown field {name:?} in {}: valid fields are {}",
                    shape.what,
                    shape.fields.join(", ")
                )
            };
            self.error(key, &f.path(name), message);
        }
    }

    pub(crate) fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> Option<Fields<'n>> {
        match data(node) {
            YamlDataOwned::Mapping(map) => {
                let mut entries = Vec::new();
                for (key, value) in map {
                    let name = match data(key) {
                        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
                        _ => scalar_text(key),
                    };
                    match name {
                        Some(name) => entries.push((name, key, value)),
                        None => {
                            let message = format!(
                                "expected a field name, found {}: write a plain string key",
                                describe(key)
                            );
                            self.error(key, path, message);
                        }
                    }
                }
                Some(Fields { path: path.to_string(), node, entries })
            }
            _ => {
                let message =
                    format!("expected {what} (a mapping of fields), found {}", describe(node));
                self.error(node, path, message);
                None
            }
        }
    }

    /// Each element decoded by `item`; `None` (with an error) when `node` is not a list.
    pub(crate) fn list<'n, T>(
        &mut self,
        node: &'n Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &'n Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        match data(node) {
            YamlDataOwned::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| item(self, n, &format!("{path}[{i}]")))
                    .collect(),
            ),
            _ => {
                let message = format!(
                    "expected a list, found {}: write the entries as a YAML list (- entry)",
                    describe(node)
                );
                self.error(node, path, message);
                None
            }
        }
    }

    pub(crate) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        if let YamlDataOwned::Value(ScalarOwned::String(s)) = data(node) {
            return Some(s.clone());
        }
        let fix = match scalar_text(node) {
            Some(text) => format!(": quote it, \"{text}\""),
            None => String::new(),
        };
        self.error(node, path, format!("expected a string, found {}{fix}", describe(node)));
        None
    }

    pub(crate) fn required_string(&mut self, f: &Fields, name: &str, fix: &str) -> Option<String> {
        match f.get(name) {
            Some(node) => self.string(node, &f.path(name)),
            None => {
                self.error(f.node, &f.path(name), format!("missing required field {name}: {fix}"));
                None
            }
        }
    }

    pub(crate) fn string_map(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let map = self.mapping(node, path, "a map of strings")?;
        Some(
            map.entries
                .iter()
                .filter_map(|(k, _, v)| Some((k.clone(), self.string(v, &map.path(k))?)))
                .collect(),
        )
    }

    /// A YAML 1.2 boolean; `yes`/`on` (YAML 1.1) are strings and refused by name.
    pub(crate) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        let message = match data(node) {
            YamlDataOwned::Value(ScalarOwned::Boolean(b)) => return Some(*b),
            YamlDataOwned::Value(ScalarOwned::String(s)) => format!(
                "expected true or false, found the string {s:?}: YAML 1.1 spellings such as \
                 yes/no/on/off are strings here; write true or false without quotes"
            ),
            _ => format!("expected true or false, found {}", describe(node)),
        };
        self.error(node, path, message);
        None
    }
}
