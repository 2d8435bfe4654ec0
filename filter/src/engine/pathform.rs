//! Paths an application could still resolve to somewhere else. Envoy's normalisation (RFC 3986
//! dot segments, unreserved `%xx` decoded, merged slashes; envoy/sidecar.yaml) runs before the
//! filter, but applications and further hops normalise more: Tomcat, Jetty and Spring cut `;`
//! path parameters before resolving dot segments, some decode twice, IIS reads `%u002e` and
//! overlong UTF-8, frameworks apply NFKC (fullwidth dots), Windows treats `\` as a separator and
//! `...` as `..`. Envoy decodes `%2e%2e;` to `..;` *after* removing dot segments, so
//! `/api/inventory/%2e%2e;/admin` arrives as `/api/inventory/..;/admin`: allowed by
//! `/api/inventory/.*`, served as `/api/admin`.
//!
//! A path the filter judges must be a fixed point of all of those: [`ambiguous`] says whether any
//! segment of the path (query aside) is made only of dots once every such reading is applied,
//! and the engine denies such a request at L7 (`denied-ambiguous-path`) instead of guessing which
//! reading the application takes. No legitimate client sends such a path.

use std::borrow::Cow;

/// Rounds of percent-decoding applied: more than any server decodes (twice is the known case).
const DECODE_ROUNDS: usize = 3;

/// Whether some segment of `path` (up to `?` or `#`) could be a dot segment to the application:
/// after repeated `%xx` and `%uxxxx` decoding, with overlong UTF-8 and compatibility forms of `.`,
/// `/` and `\` read as those characters, `\` as a separator, `;` parameters cut and trailing
/// spaces trimmed, the segment is one or more dots only.
pub fn ambiguous(path: &[u8]) -> bool {
    let end = path.iter().position(|b| matches!(b, b'?' | b'#')).unwrap_or(path.len());
    let path = path.get(..end).unwrap_or(path);
    // Every dot-like spelling needs a '.', a '%' or a non-ASCII byte.
    if !path.iter().any(|b| *b == b'.' || *b == b'%' || !b.is_ascii()) {
        return false;
    }
    // Plain ASCII paths without '%' (most of them) are read in place, allocating nothing.
    let mut decoded = Cow::Borrowed(path);
    for _ in 0..DECODE_ROUNDS {
        match percent_decode(&decoded) {
            Some(next) => decoded = Cow::Owned(next),
            None => break,
        }
    }
    let canonical = fold_lookalikes(decoded);
    canonical.split(|b| matches!(b, b'/' | b'\\')).any(dots_only)
}

/// A segment that resolves like `.` or `..`: dots only, once its `;` parameters are cut and
/// trailing spaces trimmed (Windows).
fn dots_only(segment: &[u8]) -> bool {
    let segment = segment.split(|b| *b == b';').next().unwrap_or_default();
    let end = segment.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(0, |i| i + 1);
    let segment = segment.get(..end).unwrap_or_default();
    !segment.is_empty() && segment.iter().all(|b| *b == b'.')
}

/// One round of `%xx` and `%uxxxx` decoding; `None` when nothing was decoded.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    if !input.contains(&b'%') {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%' {
            if let Some(byte) = hex_byte(input.get(i + 1..i + 3)) {
                out.push(byte);
                i += 3;
                changed = true;
                continue;
            }
            let wide = input.get(i + 1).is_some_and(|u| matches!(u, b'u' | b'U'));
            if let Some(c) = wide.then(|| hex_char(input.get(i + 2..i + 6))).flatten() {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                changed = true;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

fn hex_byte(digits: Option<&[u8]>) -> Option<u8> {
    let digits = std::str::from_utf8(digits?).ok()?;
    u8::from_str_radix(digits, 16).ok().filter(|_| digits.bytes().all(|d| d.is_ascii_hexdigit()))
}

fn hex_char(digits: Option<&[u8]>) -> Option<char> {
    let digits = std::str::from_utf8(digits?).ok()?;
    if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, 16).ok()?)
}

/// Byte sequences applications read as `.`, `/` or `\`: overlong UTF-8 (old decoders) and the
/// NFKC compatibility forms (fullwidth, small and leader dots).
const LOOKALIKES: &[(&[u8], &[u8])] = &[
    (b"\xc0\xae", b"."),
    (b"\xe0\x80\xae", b"."),
    (b"\xc0\xaf", b"/"),
    (b"\xe0\x80\xaf", b"/"),
    (b"\xc1\x9c", b"\\"),
    (b"\xe0\x81\x9c", b"\\"),
    ("\u{ff0e}".as_bytes(), b"."),
    ("\u{fe52}".as_bytes(), b"."),
    ("\u{2024}".as_bytes(), b"."),
    ("\u{2025}".as_bytes(), b".."),
    ("\u{2026}".as_bytes(), b"..."),
    ("\u{ff0f}".as_bytes(), b"/"),
    ("\u{ff3c}".as_bytes(), b"\\"),
];

/// `input` with every [`LOOKALIKES`] sequence replaced by the ASCII it stands for.
fn fold_lookalikes(input: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    if input.is_ascii() {
        return input;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut rest = &*input;
    while let Some((&b, tail)) = rest.split_first() {
        match LOOKALIKES.iter().find(|(from, _)| rest.starts_with(from)) {
            Some((from, to)) => {
                out.extend_from_slice(to);
                rest = rest.get(from.len()..).unwrap_or_default();
            }
            None => {
                out.push(b);
                rest = tail;
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::ambiguous;

    #[test]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn dot_segments_in_every_spelling_are_ambiguous() {
        for path in [
            "/api/inventory/..;/admin",
            "/api/inventory/..;x=1/admin",
            "/api/inventory/.;/admin",
            "/api/inventory/..",
            "/api/inventory/../admin",
            "/api/inventory/%2e%2e;/admin",
            "/api/inventory/.%2E;jsessionid=1/admin",
            "/api/inventory/..%3b/admin",
            "/api/inventory/%252e%252e/admin",
            "/api/inventory/%25252e%25252e/admin",
            "/api/inventory/..%252fadmin",
            "/api/inventory/%u002e%u002e/admin",
            "/api/inventory/%U002E./admin",
            "/api/inventory/%c0%ae%c0%ae/admin",
            "/api/inventory/\u{ff0e}\u{ff0e}/admin",
            "/api/inventory/%ef%bc%8e%ef%bc%8e/admin",
            "/api/inventory/\u{2025}/admin",
            "/api/inventory/x/..\\admin",
            "/api/inventory/..%5cadmin",
            "/api/inventory/..%c0%afadmin",
            "/api/inventory/...;/admin",
            "/api/inventory/..%20/admin",
            "/api/inventory/..%09;/admin",
        ] {
            assert!(ambiguous(path.as_bytes()), "{path} should be ambiguous");
        }
    }

    #[test]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn ordinary_paths_are_not() {
        for path in [
            "/",
            "",
            "/api/inventory/item123",
            "/api/inventory/item;v=1",
            "/api/inventory/a.b",
            "/api/inventory/.well-known",
            "/api/inventory/..x/admin",
            "/api/inventory/x..",
            "/api/inventory/%2e%2ex",
            "/api/inventory/100%",
            "/api/inventory/%zz%2",
            "/api/inventory/%u00",
            "/api/inventory/x?next=/../admin",
            "/api/inventory/x#/../admin",
            "/api/inventory/caf\u{e9}",
            "/api/inventory/\u{ff0e}x",
        ] {
            assert!(!ambiguous(path.as_bytes()), "{path} should not be ambiguous");
        }
    }

    #[test]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn arbitrary_bytes_are_answered() {
        for path in [&b"/\xff\xfe%"[..], b"%", b"%u", b"%uD800", b"/\xc0", b"/\xe0\x80", b";;;"] {
            let _ = ambiguous(path);
        }
        assert!(!ambiguous(b"/%uD800/x"), "an unpaired surrogate decodes to nothing dot-like");
    }
}
