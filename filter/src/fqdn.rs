//! DNS name matching for `toFQDNs` (spec §6.2, §6.4): `matchName` is exact, `matchPattern` turns
//! `*` into "zero or more of `[-a-zA-Z0-9_]`" (never crossing a dot), a leading `**.` into "one or
//! more whole labels", and a pattern of only stars into "any name". Case- and
//! trailing-dot-insensitive.

use regex_lite::Regex;

use crate::config::FqdnSelector;

/// A compiled `toFQDNs` selector.
#[derive(Debug, Clone)]
pub enum NameMatcher {
    /// Normalised name (lower-case, trailing dot).
    Exact(String),
    Pattern(Regex),
    Any,
}

const LABEL_CHAR: &str = "[-a-z0-9_]";

impl NameMatcher {
    pub fn compile(selector: &FqdnSelector) -> Result<NameMatcher, String> {
        match selector {
            FqdnSelector::MatchName(name) => Ok(NameMatcher::Exact(normalise(name))),
            FqdnSelector::MatchPattern(pattern) => compile_pattern(pattern),
        }
    }

    /// Whether a normalised name (see [`normalise`]) matches.
    pub fn matches(&self, normalised: &str) -> bool {
        match self {
            NameMatcher::Exact(name) => name == normalised,
            NameMatcher::Pattern(re) => re.is_match(normalised),
            NameMatcher::Any => true,
        }
    }
}

/// Lower-cases a DNS name and gives it exactly one trailing dot.
pub fn normalise(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// The name part of an HTTP `:authority` (port removed), normalised; `None` for an IP literal,
/// which no name selector may match (spec §6.4).
pub fn name_of_authority(authority: &str) -> Option<String> {
    let host = if authority.starts_with('[') {
        return None; // bracketed IPv6 literal
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(normalise(host))
}

fn compile_pattern(pattern: &str) -> Result<NameMatcher, String> {
    let p = normalise(pattern);
    let body = p.trim_end_matches('.');
    if !body.is_empty() && body.bytes().all(|b| b == b'*') {
        return Ok(NameMatcher::Any);
    }
    if let Some(bad) = p.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.*".contains(*c))) {
        return Err(format!("invalid character {bad:?} in matchPattern {pattern:?}"));
    }
    let mut re = String::from("^");
    let mut rest = p.as_str();
    // A leading run of two or more stars followed by a dot: one or more whole labels.
    let stars = rest.bytes().take_while(|b| *b == b'*').count();
    if stars >= 2 && rest.as_bytes().get(stars) == Some(&b'.') {
        re.push_str(&format!("(?:{LABEL_CHAR}+\\.)+"));
        rest = rest.get(stars + 1..).unwrap_or_default();
    }
    let mut prev_star = false;
    for c in rest.chars() {
        match c {
            '*' if prev_star => {}
            '*' => re.push_str(&format!("{LABEL_CHAR}*")),
            '.' => re.push_str("\\."),
            c => re.push(c),
        }
        prev_star = c == '*';
    }
    re.push('$');
    Regex::new(&re)
        .map(NameMatcher::Pattern)
        .map_err(|e| format!("matchPattern {pattern:?} does not compile: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn pattern(p: &str) -> NameMatcher {
        NameMatcher::compile(&FqdnSelector::MatchPattern(p.into())).unwrap()
    }

    /// spec §6.2 table, row by row, plus the normalisation rules.
    #[test]
    fn match_pattern_table() {
        let rows: &[(&str, &[&str], &[&str])] = &[
            ("*.example.com", &["api.example.com", "API.Example.COM", "api.example.com."], &["example.com", "a.b.example.com", "evilexample.com", "evil-example.com", "example.com.evil.net"]),
            ("*example.com", &["example.com", "myexample.com", "my-example.com"], &["www.example.com"]),
            ("api-*.example.com", &["api-.example.com", "api-v2.example.com"], &["api-v2.eu.example.com", "api.example.com"]),
            ("sub*.example.com", &["sub.example.com", "subway.example.com"], &["www.example.com"]),
            ("*.*.example.com", &["a.b.example.com"], &["a.example.com"]),
            ("**.example.com", &["a.example.com", "a.b.c.example.com"], &["example.com", "aexample.com"]),
            ("api.**.example.com", &["api.x.example.com"], &["api.x.y.example.com"]),
            ("*", &["anything.at.all", "com"], &[]),
            ("**.", &["a.b"], &[]),
            ("***", &["x.y.z"], &[]),
            ("example.com.", &["example.com", "EXAMPLE.com."], &["www.example.com"]),
        ];
        for (p, yes, no) in rows {
            let m = pattern(p);
            for name in *yes {
                assert!(m.matches(&normalise(name)), "{p} should match {name}");
            }
            for name in *no {
                assert!(!m.matches(&normalise(name)), "{p} should not match {name}");
            }
        }
    }

    /// spec §6.2: matchName is exact after normalisation, no wildcards.
    #[test]
    fn match_name_is_exact() {
        let m = NameMatcher::compile(&FqdnSelector::MatchName("Api.Example.com".into())).unwrap();
        assert!(m.matches(&normalise("api.example.com.")));
        assert!(!m.matches(&normalise("x.api.example.com")));
    }

    /// spec §6.4: the Host port is stripped; IP literals carry no name.
    #[test]
    fn authority_names() {
        assert_eq!(name_of_authority("API.example.com:8443").as_deref(), Some("api.example.com."));
        assert_eq!(name_of_authority("api.example.com.").as_deref(), Some("api.example.com."));
        assert_eq!(name_of_authority("10.0.0.1:80"), None);
        assert_eq!(name_of_authority("[::1]:80"), None);
        assert_eq!(name_of_authority(""), None);
    }

    #[test]
    fn bad_pattern_characters_are_refused() {
        assert!(NameMatcher::compile(&FqdnSelector::MatchPattern("a(b).com".into())).is_err());
    }
}
