//! Observed HTTP paths generalised into Cilium path regexes for `l7gate suggest`: segments that
//! hold identifiers (numbers, UUIDs, hashes, names with digits) or that take many values under
//! the same prefix become `[^/?]+`; literal segments are kept, so prefixes stay exact; a query
//! string seen on a path allows any query on it. Every generalisation says why, with counts.

use std::collections::{BTreeMap, BTreeSet};

/// How many distinct literal values at one position, all else equal, make it a variable.
pub const MANY_VALUES: usize = 5;

/// What a variable segment held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Number,
    Uuid,
    Hash,
    /// Letters with digits (`item123`, `sku-4411`).
    Identifier,
    /// Plain words, but many of them under the same prefix.
    ManyValues,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Number => "numbers",
            Kind::Uuid => "UUIDs",
            Kind::Hash => "hashes",
            Kind::Identifier => "identifiers",
            Kind::ManyValues => "names",
        }
    }
}

/// One segment of a pattern: a literal, or `None` for a variable.
type Segment = Option<String>;

/// A generalised path and what it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The Cilium path regex (anchored by Cilium: it must match the whole path and query).
    pub regex: String,
    /// How many observations it covers.
    pub count: usize,
    /// One line per generalisation: `segment 3: 12 distinct numbers (1, 7, 42, …)`.
    pub why: Vec<String>,
    /// A few of the paths it covers, for the comment.
    pub examples: Vec<String>,
}

/// The class of one segment on its own, `None` for a literal.
fn classify(segment: &str) -> Option<Kind> {
    let is_hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    let has_digit = segment.chars().any(|c| c.is_ascii_digit());
    let has_letter = segment.chars().any(|c| c.is_ascii_alphabetic());
    let uuid_shape = [8, 4, 4, 4, 12];
    let parts: Vec<&str> = segment.split('-').collect();
    if !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()) {
        Some(Kind::Number)
    } else if parts.len() == 5
        && parts.iter().zip(uuid_shape).all(|(p, n)| p.len() == n && is_hex(p))
    {
        Some(Kind::Uuid)
    } else if segment.len() >= 16 && is_hex(segment) {
        Some(Kind::Hash)
    } else if has_digit && has_letter && !is_version(segment) {
        Some(Kind::Identifier)
    } else {
        None
    }
}

/// `v1`, `v2`, `v1beta1`, `v2alpha3`: API versions, kept literal.
fn is_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else { return false };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    let letters = rest.chars().take_while(char::is_ascii_lowercase).count();
    rest.is_empty()
        || (letters > 0
            && !rest[letters..].is_empty()
            && rest[letters..].chars().all(|c| c.is_ascii_digit()))
}

/// One observation: a path split into segments and whether it had a query.
struct Observed {
    segments: Vec<String>,
    query: bool,
    path: String,
}

/// Generalises the paths (each with its query, as Envoy hands `:path` on) into patterns, the
/// most used first.
pub fn generalise<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<Pattern> {
    let observed: Vec<Observed> = paths
        .into_iter()
        .map(|p| {
            let (path, query) = match p.split_once('?') {
                Some((path, _)) => (path, true),
                None => (p, false),
            };
            let segments = path.split('/').skip(1).map(str::to_string).collect();
            Observed { segments, query, path: p.to_string() }
        })
        .collect();
    let mut shapes: Vec<Vec<Segment>> = observed
        .iter()
        .map(|o| o.segments.iter().map(|s| classify(s).is_none().then(|| s.clone())).collect())
        .collect();
    many_values(&mut shapes);

    // Group the observations by their shape.
    let mut groups: BTreeMap<Vec<Segment>, Vec<usize>> = BTreeMap::new();
    for (i, shape) in shapes.into_iter().enumerate() {
        groups.entry(shape).or_default().push(i);
    }
    let mut patterns: Vec<Pattern> =
        groups.into_iter().map(|(shape, members)| pattern(&shape, &members, &observed)).collect();
    patterns.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.regex.cmp(&b.regex)));
    patterns
}

/// Marks as variables the positions that take at least [`MANY_VALUES`] literal values among
/// shapes that agree everywhere else, until nothing changes.
fn many_values(shapes: &mut [Vec<Segment>]) {
    loop {
        let mut changed = false;
        let longest = shapes.iter().map(Vec::len).max().unwrap_or(0);
        for position in 0..longest {
            // Shapes keyed by everything but this position.
            let mut values: BTreeMap<Vec<Option<&Segment>>, BTreeSet<&str>> = BTreeMap::new();
            for shape in shapes.iter().filter(|s| s.len() > position) {
                if let Some(value) = &shape[position] {
                    let key =
                        (0..shape.len()).map(|i| (i != position).then_some(&shape[i])).collect();
                    values.entry(key).or_default().insert(value);
                }
            }
            let wide: BTreeSet<Vec<Option<Segment>>> = values
                .into_iter()
                .filter(|(_, v)| v.len() >= MANY_VALUES)
                .map(|(k, _)| k.into_iter().map(Option::<&Segment>::cloned).collect())
                .collect();
            for shape in shapes.iter_mut().filter(|s| s.len() > position) {
                let key: Vec<Option<Segment>> =
                    (0..shape.len()).map(|i| (i != position).then(|| shape[i].clone())).collect();
                if shape[position].is_some() && wide.contains(&key) {
                    shape[position] = None;
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// `text` as a regex matching it literally (RE2 syntax: only metacharacters are escaped).
fn escape_into(regex: &mut String, text: &str) {
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            regex.push('\\');
        }
        regex.push(c);
    }
}

/// One pattern from its shape (`None`: a variable segment) and the observations it covers.
fn pattern(shape: &[Segment], members: &[usize], observed: &[Observed]) -> Pattern {
    let mut regex = String::new();
    let mut why = Vec::new();
    for (i, segment) in shape.iter().enumerate() {
        regex.push('/');
        match segment {
            Some(literal) => escape_into(&mut regex, literal),
            None => {
                regex.push_str("[^/?]+");
                let seen: BTreeSet<&str> =
                    members.iter().map(|&m| observed[m].segments[i].as_str()).collect();
                let kinds: BTreeSet<Kind> =
                    seen.iter().map(|s| classify(s).unwrap_or(Kind::ManyValues)).collect();
                let kinds: Vec<&str> = kinds.into_iter().map(Kind::describe).collect();
                let shown: Vec<&str> = seen.iter().take(3).copied().collect();
                let more = if seen.len() > 3 { ", …" } else { "" };
                why.push(format!(
                    "segment {}: {} distinct {} ({}{more})",
                    i + 1,
                    seen.len(),
                    kinds.join(" and "),
                    shown.join(", ")
                ));
            }
        }
    }
    if shape.is_empty() {
        regex.push('/');
    }
    let with_query = members.iter().filter(|&&m| observed[m].query).count();
    if with_query > 0 {
        regex.push_str("(\\?.*)?");
        why.push(format!(
            "{with_query} of {} with a query string: any query is allowed",
            members.len()
        ));
    }
    let examples: BTreeSet<&str> = members.iter().map(|&m| observed[m].path.as_str()).collect();
    Pattern {
        regex,
        count: members.len(),
        why,
        examples: examples.into_iter().take(3).map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regexes(paths: &[&str]) -> Vec<String> {
        generalise(paths.iter().copied()).into_iter().map(|p| p.regex).collect()
    }

    #[test]
    fn identifiers_become_segments_and_literals_stay() {
        assert_eq!(
            regexes(&[
                "/api/inventory/items/42",
                "/api/inventory/items/7",
                "/api/inventory/items/9f0c2a64-3b1e-4f5a-9d7e-0123456789ab",
                "/api/inventory/sku-4411/stock",
                "/api/v1/status",
                "/files/0123456789abcdef0123",
            ]),
            [
                "/api/inventory/items/[^/?]+",
                "/api/inventory/[^/?]+/stock",
                "/api/v1/status",
                "/files/[^/?]+",
            ]
        );
    }

    #[test]
    fn many_names_under_one_prefix_become_a_segment_few_stay_literal() {
        let users: Vec<String> = ["alice", "bob", "carol", "dave", "erin"]
            .iter()
            .map(|u| format!("/users/{u}/profile"))
            .collect();
        let mut paths: Vec<&str> = users.iter().map(String::as_str).collect();
        paths.extend(["/health", "/ready"]);
        assert_eq!(regexes(&paths), ["/users/[^/?]+/profile", "/health", "/ready"]);
        assert_eq!(regexes(&["/users/alice/profile", "/users/bob/profile"]).len(), 2);
    }

    #[test]
    fn queries_and_special_characters() {
        let p = generalise(["/search?q=1", "/search", "/a.b+c"]);
        let r: Vec<&str> = p.iter().map(|p| p.regex.as_str()).collect();
        assert_eq!(r, ["/search(\\?.*)?", "/a\\.b\\+c"]);
        assert_eq!(p[0].count, 2);
        assert_eq!(p[0].why, ["1 of 2 with a query string: any query is allowed"]);
        assert_eq!(regexes(&["/"]), ["/"]);
    }

    #[test]
    fn versions_stay_literal() {
        for v in ["v1", "v2", "v1beta1", "v10alpha2"] {
            assert_eq!(classify(v), None, "{v}");
        }
        for id in ["item123", "v1x", "a1", "vbeta1"] {
            assert_eq!(classify(id), Some(Kind::Identifier), "{id}");
        }
    }
}
