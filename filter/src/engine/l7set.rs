//! The HTTP rule elements that may allow one (port segment, peer) pair, indexed by the literal
//! their path pattern starts with, so a request only runs the matchers whose literal its path
//! starts with (plus those without a usable literal); within each such bucket, by one header
//! condition of theirs (name and exact value, or name alone), so a request only runs the
//! matchers whose header it carries with the value they want. The answer is the lowest element
//! ordinal that matches: the first rule, and the first element of it, in configuration order.

use crate::fasthash::FastMap;

use super::http::{HttpMatcher, RequestLine};

/// Below this many elements a linear scan beats hashing path prefixes.
const INDEX_FROM: usize = 8;

/// One compiled HTTP rule element, in configuration order (the direction keeps them in a flat
/// list; an element's position there is its ordinal).
#[derive(Debug, Clone)]
pub struct Element {
    /// Index of the rule in the direction.
    pub rule: u32,
    /// Index of the element in the rule's `http` list.
    pub index: usize,
    pub matcher: HttpMatcher,
}

#[derive(Debug, Clone, Default)]
pub struct L7Set {
    /// Elements by the literal every path they match starts with (a token of a literal
    /// alternation counts as such a literal).
    by_literal: FastMap<Box<[u8]>, Bucket>,
    /// The distinct literal lengths of `by_literal`, ascending.
    lengths: Vec<usize>,
    /// The elements without a path literal.
    rest: Bucket,
    /// The lowest rule index among the set's rules (attribution of an L7 denial).
    pub first_rule: u32,
}

/// Element ordinals that share a path literal (or have none), by their header key
/// ([`HttpMatcher::header_key`](super::http::HttpMatcher::header_key)); every list ascending.
#[derive(Debug, Clone, Default)]
struct Bucket {
    /// Elements without a header condition (all of them in a bucket below [`INDEX_FROM`]).
    plain: Vec<u32>,
    /// The others, by the name of their key condition.
    by_header: FastMap<Box<str>, HeaderGroup>,
}

/// The elements whose key condition names one header.
#[derive(Debug, Clone, Default)]
struct HeaderGroup {
    /// The key condition asks for presence only.
    present: Vec<u32>,
    /// By the exact value the key condition wants.
    by_value: FastMap<Box<[u8]>, Vec<u32>>,
}

impl Bucket {
    /// Files `ordinals` (ascending) of elements of `elements`.
    fn build(ordinals: Vec<u32>, elements: &[Element]) -> Bucket {
        let mut bucket = Bucket::default();
        if ordinals.len() < INDEX_FROM {
            bucket.plain = ordinals;
            return bucket;
        }
        for ordinal in ordinals {
            let key = elements.get(ordinal as usize).and_then(|e| e.matcher.header_key());
            let Some((name, want)) = key else {
                bucket.plain.push(ordinal);
                continue;
            };
            let group = bucket.by_header.entry(name.into()).or_default();
            match want {
                None => group.present.push(ordinal),
                Some(value) => group.by_value.entry(value.into()).or_default().push(ordinal),
            }
        }
        bucket
    }

    /// Lowers `best` to the lowest ordinal of this bucket that matches the request, if lower.
    fn best_match<'h>(
        &'h self,
        line: &RequestLine<'h>,
        elements: &'h [Element],
        best: &mut Option<u32>,
    ) {
        first_match(self.plain.iter().copied(), line, elements, best);
        for (name, group) in &self.by_header {
            // Outer None: the header is absent, no element of the group can match.
            let Some(exact) = line.header(name, |got| got.map(|v| group.by_value.get(v))) else {
                continue;
            };
            first_match(group.present.iter().copied(), line, elements, best);
            if let Some(list) = exact {
                first_match(list.iter().copied(), line, elements, best);
            }
        }
    }
}

impl L7Set {
    /// Indexes `ordinals` (ascending) of elements of `elements`.
    pub fn build(ordinals: Vec<u32>, elements: &[Element], first_rule: u32) -> L7Set {
        let mut set = L7Set { first_rule, ..L7Set::default() };
        if ordinals.len() < INDEX_FROM {
            set.rest = Bucket::build(ordinals, elements);
            return set;
        }
        let mut rest = Vec::new();
        let mut by_literal: FastMap<Box<[u8]>, Vec<u32>> = FastMap::default();
        for ordinal in ordinals {
            let path = elements.get(ordinal as usize).and_then(|e| e.matcher.path.as_ref());
            let literals: Vec<&[u8]> = match path {
                Some(p) => match (p.tokens(), p.prefix()) {
                    (Some(tokens), _) => tokens.iter().map(|t| &**t).collect(),
                    (None, Some(prefix)) if !prefix.is_empty() => vec![prefix],
                    _ => vec![],
                },
                None => vec![],
            };
            if literals.is_empty() {
                rest.push(ordinal);
            }
            for literal in literals {
                let list = by_literal.entry(literal.into()).or_default();
                if list.last() != Some(&ordinal) {
                    list.push(ordinal);
                }
            }
        }
        set.rest = Bucket::build(rest, elements);
        set.by_literal =
            by_literal.into_iter().map(|(k, list)| (k, Bucket::build(list, elements))).collect();
        set.lengths = set.by_literal.keys().map(|k| k.len()).collect();
        set.lengths.sort_unstable();
        set.lengths.dedup();
        set
    }

    /// Lowers `best` to the lowest ordinal of this set that matches the request, if lower.
    pub fn best_match<'h>(
        &'h self,
        line: &RequestLine<'h>,
        elements: &'h [Element],
        best: &mut Option<u32>,
    ) {
        self.rest.best_match(line, elements, best);
        if self.lengths.is_empty() {
            return;
        }
        let Some(path) = line.path() else { return };
        let path = path.bytes();
        for len in self.lengths.iter().take_while(|l| **l <= path.len()) {
            if let Some(bucket) = path.get(..*len).and_then(|p| self.by_literal.get(p)) {
                bucket.best_match(line, elements, best);
            }
        }
    }
}

/// Lowers `best` to the first ordinal of the ascending `ordinals` whose element matches.
pub fn first_match<'h>(
    ordinals: impl Iterator<Item = u32>,
    line: &RequestLine<'h>,
    elements: &'h [Element],
    best: &mut Option<u32>,
) {
    let bound = *best;
    for ordinal in ordinals.take_while(|o| bound.is_none_or(|b| *o < b)) {
        if elements.get(ordinal as usize).is_some_and(|e| e.matcher.matches(line)) {
            *best = Some(ordinal);
            return;
        }
    }
}
