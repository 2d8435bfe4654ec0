//! One compiled policy regex (method, path or host; full-match semantics), with fast paths that
//! give exactly the regex's answer without running it: a plain alternation of literal tokens
//! (`GET|HEAD`, `/healthz`) is a set of byte strings, and `literal.*` is a prefix test. Every
//! other pattern keeps its literal prefix (used by the HTTP rule index and as a quick reject) and
//! confirms with the regex.

use std::borrow::Cow;

use regex_lite::Regex;

/// The request value a pattern looks at, read once per request. Regexes (and their fast paths)
/// only ever match UTF-8 values.
/// Borrowed from the host's header buffer when possible, so a request allocates nothing.
pub enum Value<'a> {
    Text(Cow<'a, str>),
    Binary(Cow<'a, [u8]>),
}

impl<'a> Value<'a> {
    pub fn new(bytes: Cow<'a, [u8]>) -> Value<'a> {
        match bytes {
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(text) => Value::Text(Cow::Borrowed(text)),
                Err(_) => Value::Binary(Cow::Borrowed(b)),
            },
            Cow::Owned(v) => match String::from_utf8(v) {
                Ok(text) => Value::Text(Cow::Owned(text)),
                Err(e) => Value::Binary(Cow::Owned(e.into_bytes())),
            },
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Text(t) => t.as_bytes(),
            Value::Binary(b) => b,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            Value::Binary(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Pattern {
    /// The value equals one of these (the pattern was `a|b|c` of literal tokens).
    Tokens(Vec<Box<[u8]>>),
    /// The value starts with this and the rest has no newline (the pattern was `literal.*`;
    /// `.` matches anything but `\n`).
    PrefixAny(Box<[u8]>),
    /// The value starts with `prefix` and the regex matches it whole.
    Regex { prefix: Box<[u8]>, regex: Regex },
}

impl Pattern {
    /// Compiles `pattern` with Envoy's full-match semantics; the regex is always compiled, so an
    /// invalid pattern is refused even when a fast path would not need it.
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        let regex = full_match_regex(pattern)?;
        if let Some(tokens) = literal_tokens(pattern) {
            return Ok(Pattern::Tokens(tokens.into_iter().map(|t| t.as_bytes().into()).collect()));
        }
        let (prefix, rest) = literal_prefix(pattern);
        if rest == ".*" {
            return Ok(Pattern::PrefixAny(prefix.into_bytes().into()));
        }
        Ok(Pattern::Regex { prefix: prefix.into_bytes().into(), regex })
    }

    /// The literal every matching value starts with (empty when there is none), for indexing.
    /// `None` for a token set, which is indexed by its tokens instead.
    pub fn prefix(&self) -> Option<&[u8]> {
        match self {
            Pattern::Tokens(_) => None,
            Pattern::PrefixAny(prefix) | Pattern::Regex { prefix, .. } => Some(prefix),
        }
    }

    pub fn tokens(&self) -> Option<&[Box<[u8]>]> {
        match self {
            Pattern::Tokens(tokens) => Some(tokens),
            _ => None,
        }
    }

    pub fn matches(&self, value: &Value<'_>) -> bool {
        match self {
            Pattern::Tokens(tokens) => tokens.iter().any(|t| **t == *value.bytes()),
            Pattern::PrefixAny(prefix) => {
                value.text().is_some()
                    && value
                        .bytes()
                        .strip_prefix(&**prefix)
                        .is_some_and(|rest| !rest.contains(&b'\n'))
            }
            Pattern::Regex { prefix, regex } => {
                value.bytes().starts_with(prefix) && value.text().is_some_and(|t| regex.is_match(t))
            }
        }
    }
}

/// Compiles a policy regex with Envoy's full-match semantics.
pub fn full_match_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        // regex-lite's message is multi-line; the last line says what is wrong.
        let detail = e.to_string();
        let detail = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid");
        format!("invalid regex {pattern:?}: {}", detail.trim().trim_start_matches("error: "))
    })
}

/// Characters that stand for themselves anywhere in a regex (outside classes).
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '_' | '-'
                | '/'
                | '='
                | ','
                | ':'
                | ';'
                | '@'
                | '%'
                | '!'
                | '~'
                | '\''
                | '"'
                | '<'
                | '>'
                | '`'
                | '&'
        )
}

/// `GET|HEAD`: non-empty alternatives of plain characters only.
fn literal_tokens(pattern: &str) -> Option<Vec<&str>> {
    let tokens: Vec<&str> = pattern.split('|').collect();
    tokens.iter().all(|t| !t.is_empty() && t.chars().all(is_plain)).then_some(tokens)
}

/// Escapes that denote a literal punctuation character.
fn is_escapable(c: char) -> bool {
    matches!(
        c,
        '.' | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '\\'
            | '/'
            | '-'
    )
}

/// Splits a pattern into the literal text every match starts with and the pattern text after it.
/// Conservative: a pattern with a top-level alternation has no prefix, and a literal directly
/// followed by a quantifier is left to the rest.
fn literal_prefix(pattern: &str) -> (String, &str) {
    if has_top_level_alternation(pattern) {
        return (String::new(), pattern);
    }
    let mut prefix = String::new();
    let mut rest = pattern;
    loop {
        let mut chars = rest.chars();
        let (literal, after) = match chars.next() {
            Some('\\') => match chars.next() {
                Some(c) if is_escapable(c) => (c, chars.as_str()),
                _ => break,
            },
            Some(c) if is_plain(c) || (!c.is_ascii() && !c.is_whitespace()) => (c, chars.as_str()),
            _ => break,
        };
        if after.starts_with(['*', '?', '+', '{']) {
            break;
        }
        prefix.push(literal);
        rest = after;
    }
    (prefix, rest)
}

/// Whether `|` may occur outside every group and class. Conservative: a pattern with both a
/// `|` and a character class counts as one, because where a class ends depends on syntax the
/// engines read differently (`]` first in a class is literal, `[:alpha:]` inside one, nested
/// classes in some engines and a literal `[` in RE2); a wrong answer here would give a prefix
/// the alternation's other branches do not have, and deny what the regex matches.
fn has_top_level_alternation(pattern: &str) -> bool {
    if !pattern.contains('|') {
        return false;
    }
    if pattern.contains('[') {
        return true;
    }
    let (mut depth, mut escaped) = (0usize, false);
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn kind(p: &str) -> String {
        match Pattern::compile(p).unwrap() {
            Pattern::Tokens(t) => format!(
                "tokens {}",
                t.iter()
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Pattern::PrefixAny(p) => format!("prefix-any {}", String::from_utf8_lossy(&p)),
            Pattern::Regex { prefix, .. } => format!("regex {}", String::from_utf8_lossy(&prefix)),
        }
    }

    /// The fast paths are chosen only where they are exact.
    #[test]
    fn classification() {
        assert_eq!(kind("GET|HEAD"), "tokens GET,HEAD");
        assert_eq!(kind("/healthz"), "tokens /healthz");
        assert_eq!(kind("/api/inventory/.*"), "prefix-any /api/inventory/");
        assert_eq!(kind("/api/v1\\.0/.*"), "prefix-any /api/v1.0/");
        assert_eq!(kind("/api/v1.0/.*"), "regex /api/v1");
        assert_eq!(kind("/items/[0-9]+"), "regex /items/");
        assert_eq!(kind("/ab*"), "regex /a");
        assert_eq!(kind("/a|/b.*"), "regex ");
        assert_eq!(kind("(?i)get"), "regex ");
        assert_eq!(kind("GET|"), "regex ");
        assert_eq!(kind("/x(a|b)"), "regex /x");
        assert_eq!(kind("/\\d+"), "regex /");
        // A class makes the alternation's extent uncertain: no prefix (finding: `/ab[](]|/c`).
        assert_eq!(kind("/ab[](]|/c"), "regex ");
        assert_eq!(kind("/ab[[:alpha:](]|/c"), "regex ");
        assert_eq!(kind("/ab[0-9]+"), "regex /ab");
        assert_eq!(kind("/x\\(|/y"), "regex ");
    }

    /// Each fast path agrees with the regex it replaces, including on non-UTF-8 and newlines.
    #[test]
    fn fast_paths_agree_with_the_regex() {
        let values: &[&[u8]] = &[
            b"GET",
            b"HEAD",
            b"GETHEAD",
            b"",
            b"/api/inventory/",
            b"/api/inventory/x\ny",
            b"/api/inventory",
            b"/api/inventory/\xff",
            b"/healthz",
            b"/healthz/",
            b"/api/v1.0/a",
            b"/c",
            b"/ab(",
            b"/abq",
        ];
        for p in [
            "GET|HEAD",
            "/healthz",
            "/api/inventory/.*",
            "/api/v1\\.0/.*",
            "/api/v1.0/.*",
            "/a|/b.*",
            "/ab[](]|/c",
            "/ab[[:alpha:]]|/c",
        ] {
            let compiled = Pattern::compile(p).unwrap();
            let regex = full_match_regex(p).unwrap();
            for v in values {
                let want = std::str::from_utf8(v).is_ok_and(|t| regex.is_match(t));
                assert_eq!(
                    compiled.matches(&Value::new(Cow::Borrowed(v))),
                    want,
                    "{p} on {:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }

    #[test]
    fn invalid_regex_message() {
        let e = Pattern::compile("(").unwrap_err();
        assert!(e.starts_with("invalid regex \"(\": "), "{e}");
    }
}
