//! The server-name index of one segment's `toFQDNs` rules, built at configure time so that a
//! request costs a few hash lookups however many names and patterns the policies list (spec
//! §6.2): `matchName`s and star-free patterns by their normalised name, `*.suffix` by the text
//! after the first label, `**.suffix` by the text after each run of whole labels, all-star
//! patterns always; only irregular patterns (a star anywhere else) are matched one by one.
//! [`NameIndex::matching`] selects exactly the rules [`NameMatcher::matches`] would.

use crate::fasthash::FastMap;

use crate::config::FqdnSelector;
use crate::fqdn::{normalise, NameMatcher};

/// Rule indices (ascending) by the names they select.
#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    /// Normalised name → rules (`matchName`, or `matchPattern` without a star).
    exact: FastMap<String, Vec<u32>>,
    /// `*.suffix`: suffix → rules.
    one_label: FastMap<String, Vec<u32>>,
    /// `**.suffix`: suffix → rules.
    labels: FastMap<String, Vec<u32>>,
    /// All-star patterns: every name.
    any: Vec<u32>,
    irregular: Vec<(u32, NameMatcher)>,
}

/// Where a selector goes in the index.
enum Shape {
    Exact(String),
    OneLabel(String),
    Labels(String),
    Any,
    Irregular,
}

/// What `*` matches (spec §6.2): `[-a-z0-9_]` on a normalised name.
fn label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

fn shape(selector: &FqdnSelector, matcher: &NameMatcher) -> Shape {
    let pattern = match (selector, matcher) {
        (_, NameMatcher::Any) => return Shape::Any,
        (_, NameMatcher::Exact(name)) => return Shape::Exact(name.clone()),
        (FqdnSelector::MatchName(name), NameMatcher::Pattern(_)) => {
            return Shape::Exact(normalise(name))
        }
        (FqdnSelector::MatchPattern(p), NameMatcher::Pattern(_)) => normalise(p),
    };
    if !pattern.contains('*') {
        return Shape::Exact(pattern);
    }
    let stars = pattern.bytes().take_while(|b| *b == b'*').count();
    match pattern.get(stars..).and_then(|rest| rest.strip_prefix('.')) {
        Some(suffix) if !suffix.contains('*') && stars == 1 => Shape::OneLabel(suffix.to_string()),
        Some(suffix) if !suffix.contains('*') && stars >= 2 => Shape::Labels(suffix.to_string()),
        _ => Shape::Irregular,
    }
}

impl NameIndex {
    /// Adds one selector of rule `rule`; rules must be added in ascending order.
    pub fn add(&mut self, rule: u32, selector: &FqdnSelector, matcher: &NameMatcher) {
        let push = |list: &mut Vec<u32>| {
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        };
        match shape(selector, matcher) {
            Shape::Exact(name) => push(self.exact.entry(name).or_default()),
            Shape::OneLabel(suffix) => push(self.one_label.entry(suffix).or_default()),
            Shape::Labels(suffix) => push(self.labels.entry(suffix).or_default()),
            Shape::Any => push(&mut self.any),
            Shape::Irregular => self.irregular.push((rule, matcher.clone())),
        }
    }

    /// The rules (ascending, each once) with a selector matching `name`, normalised with
    /// [`normalise`]. Costs one lookup per label of the name, plus the irregular patterns.
    pub fn matching(&self, name: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut take = |ids: Option<&Vec<u32>>| out.extend(ids.into_iter().flatten().copied());
        take(self.exact.get(name));
        take(Some(&self.any));
        // `*.suffix`: the first label (maybe empty) is made of label characters.
        if let Some((_, rest)) =
            name.split_once('.').filter(|(first, _)| first.bytes().all(label_char))
        {
            take(self.one_label.get(rest));
        }
        // `**.suffix`: one or more whole, non-empty labels.
        let mut rest = name;
        while let Some((label, after)) = rest.split_once('.') {
            if self.labels.is_empty() || label.is_empty() || !label.bytes().all(label_char) {
                break;
            }
            take(self.labels.get(after));
            rest = after;
        }
        out.extend(self.irregular.iter().filter(|(_, m)| m.matches(name)).map(|(rule, _)| *rule));
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SELECTORS: &[&str] = &[
        "*.example.com",
        "*example.com",
        "api-*.example.com",
        "sub*.example.com",
        "*.*.example.com",
        "**.example.com",
        "api.**.example.com",
        "*",
        "**.",
        "***",
        "*.",
        "example.com.",
        "a*b*c.example.com",
        "api.example.*",
        "***.example.com",
        "*.",
        "*..",
        "**..",
        "API.Example.COM",
        "*.Example.com.",
    ];
    const NAMES: &[&str] = &[
        "api.example.com",
        "API.Example.COM.",
        "example.com",
        "a.b.example.com",
        "evil-example.com",
        "example.com.evil.net",
        ".example.com",
        "..example.com",
        "a..example.com",
        "x!.example.com",
        "myexample.com",
        "api-v2.example.com",
        "sub.way.example.com",
        "abc.example.com",
        "a-b-c.example.com",
        "api.example.org",
        "api.x.example.com",
        "single",
        "x..",
        "..",
        ".",
        "a.b",
        "com",
        "api.-.example.com",
        "é.example.com",
        "a.é.example.com",
    ];

    /// Every selector shape against every name: the index selects exactly what the matcher does.
    #[test]
    fn index_agrees_with_matchers() {
        let mut index = NameIndex::default();
        let mut matchers = Vec::new();
        for (rule, text) in SELECTORS.iter().enumerate() {
            let rule = u32::try_from(rule).unwrap();
            for selector in [
                FqdnSelector::MatchPattern(text.to_string()),
                FqdnSelector::MatchName(text.to_string()),
            ] {
                let matcher = NameMatcher::compile(&selector).unwrap();
                index.add(rule, &selector, &matcher);
                matchers.push((rule, matcher));
            }
        }
        assert!(
            index.irregular.len() < matchers.len() / 4,
            "most shapes are indexed: {} irregular",
            index.irregular.len()
        );
        for name in NAMES {
            let name = normalise(name);
            let mut want: Vec<u32> =
                matchers.iter().filter(|(_, m)| m.matches(&name)).map(|(r, _)| *r).collect();
            want.dedup();
            assert_eq!(index.matching(&name), want, "{name}");
        }
    }

    /// Ten thousand entries: a name selects exactly the rules that list it, in rule order, and
    /// the irregular list holds only the irregular patterns.
    #[test]
    fn large_index() {
        let mut index = NameIndex::default();
        for rule in 0..10_000u32 {
            let text = match rule % 4 {
                0 => format!("host-{rule}.example.org"),
                1 => format!("*.svc-{rule}.example.net"),
                2 => format!("**.zone-{rule}.example.io"),
                _ => format!("api-*.team-{rule}.example.dev"),
            };
            let selector = FqdnSelector::MatchPattern(text);
            index.add(rule, &selector, &NameMatcher::compile(&selector).unwrap());
        }
        let shared = FqdnSelector::MatchPattern("*.svc-1.example.net".into());
        index.add(10_000, &shared, &NameMatcher::compile(&shared).unwrap());
        assert_eq!(index.irregular.len(), 2_500);
        assert_eq!(index.matching("host-4.example.org."), vec![4]);
        assert_eq!(index.matching("x.svc-1.example.net."), vec![1, 10_000]);
        assert_eq!(index.matching("a.b.zone-9998.example.io."), vec![9998]);
        assert_eq!(index.matching("api-v1.team-7.example.dev."), vec![7]);
        assert!(index.matching("a.b.svc-1.example.net.").is_empty());
        assert!(index.matching("host-5.example.org.").is_empty());
    }

    #[test]
    fn shapes() {
        let shape_of = |p: &str| {
            let selector = FqdnSelector::MatchPattern(p.into());
            match shape(&selector, &NameMatcher::compile(&selector).unwrap()) {
                Shape::Exact(n) => format!("exact {n}"),
                Shape::OneLabel(s) => format!("one {s}"),
                Shape::Labels(s) => format!("labels {s}"),
                Shape::Any => "any".into(),
                Shape::Irregular => "irregular".into(),
            }
        };
        assert_eq!(shape_of("API.example.com"), "exact api.example.com.");
        assert_eq!(shape_of("*.Example.com"), "one example.com.");
        assert_eq!(shape_of("***.example.com."), "labels example.com.");
        assert_eq!(shape_of("**"), "any");
        assert_eq!(shape_of("*example.com"), "irregular");
        assert_eq!(shape_of("*.*.example.com"), "irregular");
    }
}
