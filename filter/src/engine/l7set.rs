//! The HTTP rule elements that may allow one (port segment, peer) pair, indexed by the literal
//! their path pattern starts with, so a request only runs the matchers whose literal its path
//! starts with (plus those without a usable literal). The answer is the lowest element ordinal
//! that matches: the first rule, and the first element of it, in configuration order.

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
    /// Element ordinals by the literal every path they match starts with (a token of a literal
    /// alternation counts as such a literal); each list ascending.
    by_literal: FastMap<Box<[u8]>, Vec<u32>>,
    /// The distinct literal lengths of `by_literal`, ascending.
    lengths: Vec<usize>,
    /// Ordinals of the elements that are not indexed, ascending.
    rest: Vec<u32>,
    /// The lowest rule index among the set's rules (attribution of an L7 denial).
    pub first_rule: u32,
}

impl L7Set {
    /// Indexes `ordinals` (ascending) of elements of `elements`.
    pub fn build(ordinals: Vec<u32>, elements: &[Element], first_rule: u32) -> L7Set {
        let mut set = L7Set { first_rule, ..L7Set::default() };
        if ordinals.len() < INDEX_FROM {
            set.rest = ordinals;
            return set;
        }
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
                set.rest.push(ordinal);
            }
            for literal in literals {
                let list = set.by_literal.entry(literal.into()).or_default();
                if list.last() != Some(&ordinal) {
                    list.push(ordinal);
                }
            }
        }
        set.lengths = set.by_literal.keys().map(|k| k.len()).collect();
        set.lengths.sort_unstable();
        set.lengths.dedup();
        set
    }

    /// Lowers `best` to the lowest ordinal of this set that matches the request, if lower.
    pub fn best_match(&self, line: &RequestLine<'_>, elements: &[Element], best: &mut Option<u32>) {
        first_match(self.rest.iter().copied(), line, elements, best);
        if self.lengths.is_empty() {
            return;
        }
        let Some(path) = line.path() else { return };
        let path = path.bytes();
        for len in self.lengths.iter().take_while(|l| **l <= path.len()) {
            if let Some(list) = path.get(..*len).and_then(|p| self.by_literal.get(p)) {
                first_match(list.iter().copied(), line, elements, best);
            }
        }
    }
}

/// Lowers `best` to the first ordinal of the ascending `ordinals` whose element matches.
pub fn first_match(
    ordinals: impl Iterator<Item = u32>,
    line: &RequestLine<'_>,
    elements: &[Element],
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
