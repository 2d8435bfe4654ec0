//! Per-direction rule index built at configure time: for each protocol, the port space is cut into
//! segments at every rule boundary, and each segment keeps its allow and deny rules keyed by peer
//! identity. A request finds its segment by binary search and its candidate rules by one hash
//! lookup, so its cost does not grow with the number of rules for other ports or peers.

use std::collections::HashMap;

use crate::config::{Action, Identity, Peers, PortRange, Protocol, Rule};

/// Indices into the direction's rule list, grouped by how the rule selects its peers.
#[derive(Debug, Default, Clone)]
pub struct PeerIndex {
    pub any: Vec<u32>,
    pub by_identity: HashMap<Identity, Vec<u32>>,
    /// Rules whose peers are DNS names (toFQDNs): checked against the request's server name.
    pub by_name: Vec<u32>,
}

impl PeerIndex {
    fn add(&mut self, peers: &Peers, rule: u32) {
        match peers {
            Peers::Any => self.any.push(rule),
            Peers::Identities(ids) => {
                for id in ids {
                    let list = self.by_identity.entry(*id).or_default();
                    if list.last() != Some(&rule) {
                        list.push(rule);
                    }
                }
            }
            Peers::Fqdns(_) => self.by_name.push(rule),
        }
    }

    /// Rules that select `peer` by identity (name-selected rules are filtered by the caller).
    pub fn for_identity(&self, peer: Identity) -> impl Iterator<Item = u32> + '_ {
        self.by_identity.get(&peer).into_iter().flatten().chain(self.any.iter()).copied()
    }
}

#[derive(Debug, Default, Clone)]
pub struct Segment {
    pub allow: PeerIndex,
    pub deny: PeerIndex,
}

/// One protocol's port space: `starts[i]` is the first port of `segments[i]`; `starts[0] == 0`.
#[derive(Debug, Clone)]
struct PortTable {
    starts: Vec<u16>,
    segments: Vec<Segment>,
}

impl PortTable {
    fn build(protocol: Protocol, rules: &[Rule]) -> PortTable {
        let mut starts = vec![0u16];
        for range in rules.iter().flat_map(|r| r.ports.iter().flatten()).filter(|p| p.protocol == protocol) {
            starts.push(range.first);
            if let Some(next) = range.last.checked_add(1) {
                starts.push(next);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut table = PortTable { segments: vec![Segment::default(); starts.len()], starts };
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match &rule.ports {
                None => table.add(0, u16::MAX, rule, i),
                Some(ranges) => {
                    for range in ranges.iter().filter(|p| p.protocol == protocol) {
                        table.add(range.first, range.last, rule, i);
                    }
                }
            }
        }
        table
    }

    fn add(&mut self, first: u16, last: u16, rule: &Rule, index: u32) {
        let from = self.segment_of(first);
        let to = self.segment_of(last);
        for segment in self.segments.iter_mut().take(to + 1).skip(from) {
            let side = match rule.action {
                Action::Allow => &mut segment.allow,
                Action::Deny => &mut segment.deny,
            };
            side.add(&rule.peers, index);
        }
    }

    fn segment_of(&self, port: u16) -> usize {
        self.starts.partition_point(|s| *s <= port).saturating_sub(1)
    }

    fn lookup(&self, port: u16) -> Option<&Segment> {
        self.segments.get(self.segment_of(port))
    }
}

/// The index of one direction.
#[derive(Debug, Clone)]
pub struct DirectionIndex {
    tables: [PortTable; 3],
}

impl DirectionIndex {
    pub fn build(rules: &[Rule]) -> DirectionIndex {
        DirectionIndex {
            tables: [
                PortTable::build(Protocol::Tcp, rules),
                PortTable::build(Protocol::Udp, rules),
                PortTable::build(Protocol::Sctp, rules),
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
