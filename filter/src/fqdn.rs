//! DNS name matching for `toFQDNs` (spec §6.2, §6.4): `matchName` is exact, `matchPattern` turns
//! `*` into "zero or more of `[-a-zA-Z0-9_]`" (never crossing a dot), a leading `**.` into "one or
//! more whole labels", and a pattern of only stars into "any name". Case- and
//! trailing-dot-insensitive.

use regex_lite::Regex;

use crate::config::{FqdnSelector, Identity, WORLD};

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

/// Where a client asked to go, as the egress filter judges it (spec §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A DNS name, normalised: decided by `toFQDNs` rules (and by rules for `world`).
    Name(String),
    /// An IP literal: carries no name, so only IP-based rules (identities, CIDRs) can allow it.
    Ip(std::net::IpAddr),
}

impl Destination {
    /// The destination a TLS server name (SNI) asks for; `None` when it is empty. RFC 6066
    /// forbids IP literals in SNI, but a client may send one anyway: it is treated as an address.
    pub fn of_server_name(sni: &str) -> Option<Destination> {
        Destination::of_host(sni.trim())
    }

    /// The destination of an HTTP `:authority` (the port, if any, removed); `None` when empty.
    pub fn of_authority(authority: &str) -> Option<Destination> {
        split_authority(authority).and_then(|(host, _)| Destination::of_host(host))
    }

    /// The destination and port of an HTTP `:authority`, with `default_port` when it names none;
    /// `None` when it names no host or a port that is not a number from 1 to 65535.
    pub fn of_authority_with_port(
        authority: &str,
        default_port: u16,
    ) -> Option<(Destination, u16)> {
        let (host, port) = split_authority(authority)?;
        let port = match port {
            None => default_port,
            Some(p) => p.parse().ok().filter(|p| *p != 0)?,
        };
        Some((Destination::of_host(host)?, port))
    }

    fn of_host(host: &str) -> Option<Destination> {
        if host.is_empty() {
            return None;
        }
        Some(match host.parse() {
            Ok(ip) => Destination::Ip(ip),
            Err(_) => Destination::Name(normalise(host)),
        })
    }

    /// The peer identity egress rules see: a name is judged by name, so its peer is `world`
    /// (spec §2.4: everything outside the cluster); an IP literal has its ipcache identity.
    pub fn peer(&self, identity_of: impl Fn(std::net::IpAddr) -> Identity) -> Identity {
        match self {
            Destination::Name(_) => WORLD,
            Destination::Ip(ip) => identity_of(*ip),
        }
    }

    /// The normalised name, if the destination is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Destination::Name(n) => Some(n),
            Destination::Ip(_) => None,
        }
    }
}

/// An `:authority` split into host and port text: `[v6]:port`, `[v6]`, `host:port` or `host`.
/// `None` for brackets around anything but an IPv6 address.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .filter(|(inner, _)| inner.parse::<std::net::Ipv6Addr>().is_ok())?;
        return match after.strip_prefix(':') {
            Some(port) => Some((inner, Some(port))),
            None if after.is_empty() => Some((inner, None)),
            None => None,
        };
    }
    Some(match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (h, Some(port)),
        _ => (authority, None),
    })
}

/// The name part of an HTTP `:authority` (port removed), normalised; `None` for an IP literal,
/// which no name selector may match (spec §6.4).
pub fn name_of_authority(authority: &str) -> Option<String> {
    match Destination::of_authority(authority)? {
        Destination::Name(n) => Some(n),
        Destination::Ip(_) => None,
    }
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
            (
                "*.example.com",
                &[
                    "api.example.com",
                    "API.Example.COM",
                    "api.example.com.",
                    "a-b_c.example.com",
                    "x.example.com",
                    "0.example.com",
                ],
                &[
                    "example.com",
                    "a.b.example.com",
                    "evilexample.com",
                    "evil-example.com",
                    "example.com.evil.net",
                    "api.example.com.evil.net",
                    "api.example.org",
                    "example.com.example.net",
                ],
            ),
            (
                "*example.com",
                &["example.com", "myexample.com", "my-example.com", "my_example.com"],
                &["www.example.com", "a.myexample.com"],
            ),
            (
                "api-*.example.com",
                &["api-.example.com", "api-v2.example.com", "API-V2.example.com."],
                &["api-v2.eu.example.com", "api.example.com", "xapi-v2.example.com"],
            ),
            (
                "sub*.example.com",
                &["sub.example.com", "subway.example.com"],
                &["www.example.com", "sub.way.example.com"],
            ),
            (
                "*.*.example.com",
                &["a.b.example.com", ".b.example.com"],
                &["a.example.com", "a.b.c.example.com"],
            ),
            (
                "**.example.com",
                &["a.example.com", "a.b.c.example.com", "A.B.Example.Com."],
                &["example.com", "aexample.com", "a.example.org"],
            ),
            (
                "api.**.example.com",
                &["api.x.example.com", "api.-.example.com"],
                &["api.x.y.example.com", "www.x.example.com", "api.example.com"],
            ),
            ("*", &["anything.at.all", "com", "a.b.c.d.e"], &[]),
            ("**.", &["a.b"], &[]),
            ("***", &["x.y.z"], &[]),
            ("*.", &["single", "x.y"], &[]),
            ("example.com.", &["example.com", "EXAMPLE.com."], &["www.example.com", "example.co"]),
            (
                "a*b*c.example.com",
                &["abc.example.com", "a-b-c.example.com", "axxbyyc.example.com"],
                &["ab.example.com", "a.b.c.example.com"],
            ),
            (
                "api.example.*",
                &["api.example.com", "api.example.org"],
                &["api.example.co.uk", "api.example."],
            ),
        ];
        let names: usize = rows.iter().map(|(_, yes, no)| yes.len() + no.len()).sum();
        assert!(names >= 40, "the table checks {names} names");
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

    /// spec §6.4: what an SNI or a Host asks for; IP literals are addresses, not names.
    #[test]
    fn destinations() {
        let name = |n: &str| Some(Destination::Name(n.into()));
        let ip = |a: &str| Some(Destination::Ip(a.parse().unwrap()));
        assert_eq!(Destination::of_server_name("API.Example.com"), name("api.example.com."));
        assert_eq!(Destination::of_server_name("api.example.com."), name("api.example.com."));
        assert_eq!(Destination::of_server_name("10.1.2.3"), ip("10.1.2.3"));
        assert_eq!(Destination::of_server_name(""), None);
        assert_eq!(Destination::of_authority("api.example.com:80"), name("api.example.com."));
        assert_eq!(Destination::of_authority("127.0.0.10:8080"), ip("127.0.0.10"));
        assert_eq!(Destination::of_authority("[::1]:80"), ip("::1"));
        assert_eq!(Destination::of_authority("[::1]"), ip("::1"));
        assert_eq!(Destination::of_authority("[bogus]:80"), None);
        assert_eq!(Destination::of_authority(":80"), None);
        assert_eq!(Destination::of_authority("[::1]x"), None);
        let with_port = |a: &str| Destination::of_authority_with_port(a, 80);
        assert_eq!(with_port("api.example.com"), name("api.example.com.").map(|d| (d, 80)));
        assert_eq!(with_port("api.example.com:8080"), name("api.example.com.").map(|d| (d, 8080)));
        assert_eq!(with_port("[::1]:443"), ip("::1").map(|d| (d, 443)));
        assert_eq!(with_port("api.example.com:0"), None);
        assert_eq!(with_port("api.example.com:65536"), None);
        assert_eq!(name("x.").and_then(|d| d.name().map(str::to_owned)).as_deref(), Some("x."));
        assert_eq!(ip("::1").and_then(|d| d.name().map(str::to_owned)), None);
        let identity_of = |_| 300;
        assert_eq!(name("x.").map(|d| d.peer(identity_of)), Some(WORLD));
        assert_eq!(ip("10.0.0.1").map(|d| d.peer(identity_of)), Some(300));
    }

    #[test]
    fn bad_pattern_characters_are_refused() {
        assert!(NameMatcher::compile(&FqdnSelector::MatchPattern("a(b).com".into())).is_err());
    }
}
