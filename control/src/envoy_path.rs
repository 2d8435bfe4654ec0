//! The path the filter sees: Envoy's own request-path handling, as the sidecar and egress
//! templates configure it (`normalize_path`, `merge_slashes`,
//! `path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT`; envoy/sidecar.yaml), so `trace`
//! and `diff` judge what the data plane judges. In Envoy's order (Envoy 1.40,
//! `ConnectionManagerUtility::maybeNormalizePath`), on the part of the path before `?`:
//!
//! 1. the codec refuses control characters and spaces (400); HTTP/1.1 also refuses bytes
//!    outside ASCII and a target not starting with `/` (400), while HTTP/2 passes them on; the
//!    connection manager answers a path not starting with `/` with 404 and one holding `#`
//!    with 400;
//! 2. `%2F`/`%5C` (any case) are decoded to `/` and `\`, and if there were any the client is
//!    sent a 307 to the final path instead of being forwarded;
//! 3. a segment starting `..;` or `.;` loses its parameters (runtime feature
//!    `strip_dotdot_segments_with_parameters`, on by default);
//! 4. RFC 3986 dot segments are removed the way Chromium's `CanonicalizePath` does it (Envoy
//!    ships a snapshot of it): `\` is a separator, `%2e` is a dot, unreserved `%xx` are
//!    decoded, characters outside the path set are `%`-encoded, `%00` fails (400);
//! 5. runs of `/` are merged.
//!
//! The query is left as sent. `tests/tests/trace_vs_envoy.rs` holds this against a real Envoy.

/// The HTTP version a request arrives in: the codecs refuse different targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    Http1,
    Http2,
}

/// What Envoy does with a request path before any filter runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handling {
    /// The request goes on with this path: the filter and the application see it.
    Forward(String),
    /// Envoy answers `307 Temporary Redirect` with this `Location` (the path had `%2F` or
    /// `%5C`); the filter sees the request only when the client follows it.
    Redirect(String),
    /// Envoy answers with this status (400 or 404) itself: no filter, no application.
    Reject { status: u16, why: &'static str },
}

impl Handling {
    /// The path a request carries past Envoy's handling (after following a redirect).
    pub fn path(&self) -> Option<&str> {
        match self {
            Handling::Forward(p) | Handling::Redirect(p) => Some(p),
            Handling::Reject { .. } => None,
        }
    }
}

/// Envoy's handling of `:path` as the l7gate templates configure it.
pub fn handle(path: &str, version: Version) -> Handling {
    let reject = |status, why| Handling::Reject { status, why };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return reject(400, "the HTTP codec refuses control characters and spaces in a target");
    }
    if version == Version::Http1 && !path.is_ascii() {
        return reject(400, "the HTTP/1.1 codec refuses bytes outside ASCII in a target");
    }
    if !path.starts_with('/') {
        return match version {
            Version::Http1 => reject(400, "the HTTP/1.1 codec takes only a target starting '/'"),
            Version::Http2 => reject(404, "Envoy serves only paths starting with '/'"),
        };
    }
    if path.contains('#') {
        return reject(400, "Envoy refuses a path with a fragment ('#')");
    }
    let (path, query) = path.split_at(path.find('?').unwrap_or(path.len()));
    let unescaped = unescape_slashes(path);
    let redirect = unescaped.len() != path.len();
    let stripped = strip_dot_parameters(&unescaped);
    let Some(canonical) = canonicalize(stripped.as_bytes()) else {
        return reject(400, "Envoy's path normalisation refuses it (%00 or a NUL byte)");
    };
    let merged = merge_slashes(&canonical);
    let out = format!("{merged}{query}");
    if redirect {
        Handling::Redirect(out)
    } else {
        Handling::Forward(out)
    }
}

/// `%2F`/`%2f` → `/` and `%5C`/`%5c` → `\` (Envoy's `PathUtil::unescapeSlashes`).
fn unescape_slashes(path: &str) -> String {
    if !path.contains('%') {
        return path.to_string();
    }
    [("%2F", "/"), ("%2f", "/"), ("%5C", "\\"), ("%5c", "\\")]
        .iter()
        .fold(path.to_string(), |p, (from, to)| p.replace(from, to))
}

/// `..;x` → `..` and `.;x` → `.` for every such segment (Envoy's
/// `PathUtil::stripParametersFromDotSegments`), so they resolve as dot segments.
fn strip_dot_parameters(path: &str) -> String {
    if !path.contains(".;") {
        return path.to_string();
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| match s {
            s if s.starts_with("..;") => "..",
            s if s.starts_with(".;") => ".",
            s => s,
        })
        .collect();
    segments.join("/")
}

/// Consecutive `/` merged into one (Envoy's `PathUtil::mergeSlashes`): the leading and a
/// trailing `/` are kept, empty segments dropped.
fn merge_slashes(path: &str) -> String {
    if !path.contains("//") {
        return path.to_string();
    }
    let prefix = if path.starts_with('/') { "/" } else { "" };
    let suffix = if path.ends_with('/') { "/" } else { "" };
    let middle: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("{prefix}{}{suffix}", middle.join("/"))
}

/// How the canonicaliser treats a byte of the path (Chromium's `kPathCharLookup`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Copied as is, and kept escaped when it arrives `%`-encoded.
    Pass,
    /// Copied as is, and decoded when it arrives `%`-encoded (unreserved characters).
    Unescape,
    /// `%`-encoded in the output (and kept encoded).
    Escape,
    /// A dot: dot-segment handling.
    Dot,
    /// NUL: normalisation fails.
    Invalid,
}

fn class(b: u8) -> Class {
    match b {
        0 => Class::Invalid,
        b'.' => Class::Dot,
        b'-' | b'_' | b'~' => Class::Unescape,
        b if b.is_ascii_alphanumeric() => Class::Unescape,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'/' | b':' | b';'
        | b'=' | b'@' | b'[' | b']' => Class::Pass,
        _ => Class::Escape,
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The byte `%xy` at `at` in `s` stands for, if it is a valid escape.
fn escaped_at(s: &[u8], at: usize) -> Option<u8> {
    match (s.get(at), s.get(at + 1).copied().and_then(hex), s.get(at + 2).copied().and_then(hex)) {
        (Some(b'%'), Some(hi), Some(lo)) => Some(hi << 4 | lo),
        _ => None,
    }
}

/// Length of the dot at `at` (`.` is 1, `%2e` is 3), 0 if none.
fn dot_at(s: &[u8], at: usize) -> usize {
    match s.get(at..) {
        Some([b'.', ..]) => 1,
        Some([b'%', b'2', b'e' | b'E', ..]) => 3,
        _ => 0,
    }
}

fn is_slash(b: Option<&u8>) -> bool {
    matches!(b, Some(b'/' | b'\\'))
}

/// What a dot that follows a `/` in the output means, and how many input bytes after the dot
/// that reading consumes (Chromium's `ClassifyAfterDot`).
enum Dots {
    Name,
    Current(usize),
    Up(usize),
}

fn after_dot(s: &[u8], at: usize) -> Dots {
    if at == s.len() {
        return Dots::Current(0);
    }
    if is_slash(s.get(at)) {
        return Dots::Current(1);
    }
    let second = dot_at(s, at);
    if second > 0 {
        let next = at + second;
        if next == s.len() {
            return Dots::Up(second);
        }
        if is_slash(s.get(next)) {
            return Dots::Up(second + 1);
        }
    }
    Dots::Name
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(format!("%{b:02X}").as_bytes());
}

/// Chromium's `CanonicalizePath` (Envoy's `source/common/chromium_url`), on bytes; `None` when
/// it fails. The output is ASCII.
fn canonicalize(s: &[u8]) -> Option<String> {
    let mut out: Vec<u8> = Vec::with_capacity(s.len() + 8);
    if !is_slash(s.first()) {
        out.push(b'/');
    }
    let mut ok = true;
    // Where in `out` a `%` that began no valid escape was written (see `nested_escape`).
    let mut lone_percent: Option<usize> = None;
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        let dot = dot_at(s, i);
        if dot > 0 {
            if out.last() == Some(&b'/') {
                match after_dot(s, i + dot) {
                    Dots::Name => {
                        out.push(b'.');
                        i += dot;
                    }
                    Dots::Current(n) => i += dot + n,
                    Dots::Up(n) => {
                        back_up_to_previous_slash(&mut out);
                        i += dot + n;
                    }
                }
            } else {
                out.push(b'.');
                i += dot;
            }
            continue;
        }
        match (b, class(b)) {
            (b'\\', _) => out.push(b'/'),
            (b'%', _) => match escaped_at(s, i) {
                Some(value) if class(value) == Class::Unescape => {
                    out.push(value);
                    i += 2;
                    if lone_percent.is_some_and(|at| at + 3 >= out.len()) {
                        nested_escape(s.get(i + 1).copied(), lone_percent, &mut out);
                    }
                }
                Some(value) => {
                    out.extend_from_slice(s.get(i..i + 3).unwrap_or_default());
                    i += 2;
                    ok &= class(value) != Class::Invalid;
                }
                None => {
                    lone_percent = Some(out.len());
                    out.push(b'%');
                }
            },
            (_, Class::Invalid) => {
                push_escaped(&mut out, b);
                ok = false;
            }
            (_, Class::Escape) => push_escaped(&mut out, b),
            _ => out.push(b),
        }
        i += 1;
    }
    ok.then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Drops the last segment of `out`, which ends with `/`, never going above the first `/`.
fn back_up_to_previous_slash(out: &mut Vec<u8>) {
    let Some(last) = out.len().checked_sub(1) else { return };
    let keep =
        out.get(..last).and_then(|o| o.iter().rposition(|&b| b == b'/')).map_or(1, |p| p + 1);
    if last > 0 {
        out.truncate(keep);
    }
}

/// A `%` that began no valid escape, followed by characters just decoded, may now read as a
/// valid escape (`%%30` → `%0`): Chromium then writes that `%` as `%25`, so decoding the output
/// again cannot change it (Chromium's `CheckForNestedEscapes`). `next` is the next input byte.
fn nested_escape(next: Option<u8>, lone_percent: Option<usize>, out: &mut Vec<u8>) {
    let Some(at) = lone_percent else { return };
    let length = out.len();
    let Some(&last) = out.last() else { return };
    let append_next = at + 2 == length;
    if append_next {
        match next {
            Some(n) if n.is_ascii() => out.push(n),
            _ => return,
        }
    }
    if escaped_at(out, at).is_some() {
        if !append_next {
            let second = out.get(at + 1).copied().unwrap_or_default();
            out.push(second);
        }
        if let Some(digits) = out.get_mut(at + 1..at + 3) {
            digits.copy_from_slice(b"25");
        }
        out.push(last);
    } else if append_next {
        out.truncate(length);
    }
}

#[cfg(test)]
mod tests {
    use super::{handle as handle_in, Handling, Version};

    fn handle(path: &str) -> Handling {
        handle_in(path, Version::Http1)
    }

    fn forward(p: &str) -> Handling {
        Handling::Forward(p.into())
    }

    /// Envoy's own expectations (test/common/http/path_utility_test.cc and the Chromium
    /// snapshot's), and the spellings envoy/sidecar.yaml documents.
    #[test]
    fn paths_come_out_as_envoy_forwards_them() {
        for (input, want) in [
            ("/", "/"),
            ("/api/inventory/../admin", "/api/admin"),
            ("/api/inventory/%2e%2e/admin", "/api/admin"),
            ("/api/inventory/%2E./admin", "/api/admin"),
            ("/api/%69nventory/x", "/api/inventory/x"),
            ("//api/inventory/x", "/api/inventory/x"),
            ("/api//inventory///x//", "/api/inventory/x/"),
            ("/a/./b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/../../a", "/a"),
            ("/a/b/../../..", "/"),
            ("/a\\b", "/a/b"),
            ("/a/..\\b", "/b"),
            ("/api/inventory/%2e%2e;/admin", "/api/inventory/..;/admin"),
            ("/api/inventory/..;/admin", "/api/admin"),
            ("/api/inventory/.;x=1/admin", "/api/inventory/admin"),
            ("/a/...;x/..x;/b", "/a/...;x/..x;/b"),
            ("/a/.b/..c/...", "/a/.b/..c/..."),
            ("/a/%7e%41%5f%2d", "/a/~A_-"),
            ("/a/%3b%3F%25%2B", "/a/%3b%3F%25%2B"),
            ("/a/%zz%", "/a/%zz%"),
            ("/a/%%30", "/a/%0"),
            ("/a/%%30%30", "/a/%2500"),
            ("/a/%%3030", "/a/%25030"),
            ("/a\"<>^`{|}", "/a%22%3C%3E%5E%60%7B%7C%7D"),
            ("/a/b?x=/../c&y=%2e", "/a/b?x=/../c&y=%2e"),
            ("/a/../b?q", "/b?q"),
        ] {
            assert_eq!(handle(input), forward(want), "{input}");
        }
    }

    #[test]
    fn escaped_slashes_redirect_to_the_normalised_path() {
        for (input, want) in [
            ("/api/inventory%2Fx", "/api/inventory/x"),
            ("/api/inventory%5cx", "/api/inventory/x"),
            ("/api/x/..%2Fadmin", "/api/admin"),
            ("/a%2F%2Fb?q=%2F", "/a/b?q=%2F"),
        ] {
            assert_eq!(handle(input), Handling::Redirect(want.into()), "{input}");
        }
        assert_eq!(handle("/a?q=%2F"), forward("/a?q=%2F"), "the query is not the path");
    }

    #[test]
    fn envoy_answers_some_paths_itself() {
        for (input, status) in [
            ("api/x", 400),
            ("*", 400),
            ("/caf\u{e9}", 400),
            ("/a#b", 400),
            ("/a?q#b", 400),
            ("/a/%00", 400),
            ("/a/.%00./b", 400),
            ("/a b", 400),
            ("/a\tb", 400),
            ("/a\u{7f}", 400),
        ] {
            assert!(
                matches!(handle(input), Handling::Reject { status: s, .. } if s == status),
                "{input}: {:?}",
                handle(input)
            );
        }
        assert_eq!(handle_in("/caf\u{e9}", Version::Http2), forward("/caf%C3%A9"));
        assert!(matches!(handle_in("*", Version::Http2), Handling::Reject { status: 404, .. }));
    }
}
