//! Per-direction rule index built at configure time: for each protocol, the port space is cut into
//! segments at every rule boundary, and each segment holds, for "any peer" and for each identity
//! its rules name, the merged outcome of those rules: the first deny rule, the first L3/L4 allow
//! rule, and the indexed HTTP elements of the allow rules with HTTP rules. A request finds its
//! segment by binary search and its identity's entry by one hash lookup; name-selected (toFQDNs)
//! rules are found through the segment's [`NameIndex`]. Allow rules with `serverNames` are kept
//! apart (they count only for a TLS connection with a matching SNI).

use crate::fasthash::FastMap;

use super::l7set::{Element, L7Set};
use super::names::NameIndex;
use crate::config::{Action, Identity, Peers, PortRange, Protocol, Rule};
use crate::fqdn::NameMatcher;

/// The merged outcome of the rules that select one kind of peer in one segment. Rule indices are
/// the lowest that qualify (attribution goes to the first rule in configuration order).
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub deny: Option<u32>,
    pub allow_l4: Option<u32>,
    /// L3/L4 allow rules with `serverNames` (ascending): they count only for a matching SNI.
    pub sni: Vec<u32>,
    /// Ordinals (ascending) of the HTTP elements with header actions (spec §5.5).
    pub rewriting: Vec<u32>,
    pub l7: Option<L7Set>,
}

#[derive(Debug, Clone, Default)]
pub struct Segment {
    /// Rules with `Peers::Any`.
    pub any: Side,
    /// Rules naming the identity (rules for any peer are not repeated here).
    pub by_identity: FastMap<Identity, Side>,
    /// Rules whose peers are DNS names (toFQDNs), by the names they select.
    pub by_name: NameIndex,
}

/// Rule indices of one segment while it is built, before they are merged into [`Side`]s.
#[derive(Default, Clone)]
struct Pending {
    any: Vec<u32>,
    by_identity: FastMap<Identity, Vec<u32>>,
    by_name: Vec<u32>,
}

impl Pending {
    fn add(&mut self, peers: &Peers, rule: u32) {
        let push = |list: &mut Vec<u32>| {
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        };
        match peers {
            Peers::Any => push(&mut self.any),
            Peers::Identities(ids) => {
                ids.iter().for_each(|id| push(self.by_identity.entry(*id).or_default()))
            }
            Peers::Fqdns(_) => push(&mut self.by_name),
        }
    }

    fn finish(self, rules: &[Rule], elements: &Elements<'_>) -> Segment {
        Segment {
            any: side(&self.any, rules, elements),
            by_identity: self
                .by_identity
                .iter()
                .map(|(id, list)| (*id, side(list, rules, elements)))
                .collect(),
            by_name: names(&self.by_name, rules, elements),
        }
    }
}

/// The flat element list with, per rule, the range of its elements (`None`: no HTTP rules) and
/// its compiled `toFQDNs` selectors.
pub struct Elements<'a> {
    pub all: &'a [Element],
    pub of_rule: &'a [Option<std::ops::Range<u32>>],
    pub names: &'a [Vec<NameMatcher>],
}

/// Indexes the name selectors of the rules `list` (ascending rule indices).
fn names(list: &[u32], rules: &[Rule], elements: &Elements<'_>) -> NameIndex {
    let mut index = NameIndex::default();
    for &i in list {
        let (Some(Peers::Fqdns(selectors)), Some(matchers)) =
            (rules.get(i as usize).map(|r| &r.peers), elements.names.get(i as usize))
        else {
            continue;
        };
        for (selector, matcher) in selectors.iter().zip(matchers) {
            index.add(i, selector, matcher);
        }
    }
    index
}

/// Merges the rules `list` (ascending rule indices) into a [`Side`].
fn side(list: &[u32], rules: &[Rule], elements: &Elements<'_>) -> Side {
    let mut side = Side::default();
    let mut l7 = Vec::new();
    let mut first_l7 = None;
    for &i in list {
        let Some(rule) = rules.get(i as usize) else { continue };
        match (rule.action, elements.of_rule.get(i as usize).cloned().flatten()) {
            (Action::Deny, _) => side.deny = side.deny.or(Some(i)),
            (Action::Allow, None) if rule.server_names.is_some() => side.sni.push(i),
            (Action::Allow, None) => side.allow_l4 = side.allow_l4.or(Some(i)),
            (Action::Allow, Some(range)) => {
                first_l7 = first_l7.or(Some(i));
                let acting = |o: &u32| {
                    elements.all.get(*o as usize).is_some_and(|e| !e.matcher.actions.is_empty())
                };
                side.rewriting.extend(range.clone().filter(acting));
                l7.extend(range);
            }
        }
    }
    side.l7 = first_l7.map(|first| L7Set::build(l7, elements.all, first));
    side
}

/// One protocol's port space: `starts[i]` is the first port of `segments[i]`; `starts[0] == 0`.
#[derive(Debug, Clone)]
struct PortTable {
    starts: Vec<u16>,
    segments: Vec<Segment>,
}

impl PortTable {
    fn build(protocol: Protocol, rules: &[Rule], elements: &Elements<'_>) -> PortTable {
        let mut starts = vec![0u16];
        for range in
            rules.iter().flat_map(|r| r.ports.iter().flatten()).filter(|p| p.protocol == protocol)
        {
            starts.push(range.first);
            if let Some(next) = range.last.checked_add(1) {
                starts.push(next);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let segment_of = |port: u16| starts.partition_point(|s| *s <= port).saturating_sub(1);
        let mut pending = vec![Pending::default(); starts.len()];
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let ranges: Vec<(u16, u16)> = match &rule.ports {
                None => vec![(0, u16::MAX)],
                Some(ranges) => ranges
                    .iter()
                    .filter(|p| p.protocol == protocol)
                    .map(|p| (p.first, p.last))
                    .collect(),
            };
            for (first, last) in ranges {
                for segment in pending.iter_mut().take(segment_of(last) + 1).skip(segment_of(first))
                {
                    segment.add(&rule.peers, i);
                }
            }
        }
        let segments = pending.into_iter().map(|p| p.finish(rules, elements)).collect();
        PortTable { starts, segments }
    }

    fn lookup(&self, port: u16) -> Option<&Segment> {
        self.segments.get(self.starts.partition_point(|s| *s <= port).saturating_sub(1))
    }
}

/// The index of one direction.
#[derive(Debug, Clone)]
pub struct DirectionIndex {
    tables: [PortTable; 3],
}

impl DirectionIndex {
    pub fn build(rules: &[Rule], elements: &Elements<'_>) -> DirectionIndex {
        DirectionIndex {
            tables: [
                PortTable::build(Protocol::Tcp, rules, elements),
                PortTable::build(Protocol::Udp, rules, elements),
                PortTable::build(Protocol::Sctp, rules, elements),
            ],
        }
    }

    pub fn lookup(&self, protocol: Protocol, port: u16) -> Option<&Segment> {
        let table = match protocol {
            Protocol::Tcp => &self.tables[0],
            Protocol::Udp => &self.tables[1],
            Protocol::Sctp => &self.tables[2],
        };
        table.lookup(port)
    }
}

/// Checks a port range for sense (first ≤ last).
pub fn check_range(range: &PortRange) -> Result<(), String> {
    if range.first > range.last {
        return Err(format!("port range {}-{} is inverted", range.first, range.last));
    }
    Ok(())
}
