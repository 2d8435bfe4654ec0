//! Peer IP → identity (Cilium's ipcache): longest-prefix match over the control plane's table.
//! One hash map per prefix length present, probed from the longest; an unknown address is world.

use std::net::IpAddr;

use crate::cidr::{mask, Cidr};
use crate::config::{Identity, IpCacheEntry, WORLD};
use crate::fasthash::FastMap;

#[derive(Debug, Default)]
pub struct IpCache {
    /// (prefix length, masked address → identity), longest prefix first; IPv4 and IPv6 apart.
    v4: Vec<(u8, FastMap<IpAddr, Identity>)>,
    v6: Vec<(u8, FastMap<IpAddr, Identity>)>,
}

impl IpCache {
    pub fn build(entries: &[IpCacheEntry]) -> Result<IpCache, String> {
        let mut cache = IpCache::default();
        for entry in entries {
            let cidr = Cidr::parse(&entry.cidr).map_err(|e| format!("ipcache: {e}"))?;
            let table = if cidr.is_ipv4() { &mut cache.v4 } else { &mut cache.v6 };
            let slot = match table.iter().position(|(len, _)| *len == cidr.prefix_len()) {
                Some(i) => i,
                None => {
                    table.push((cidr.prefix_len(), FastMap::default()));
                    table.len() - 1
                }
            };
            if let Some((_, map)) = table.get_mut(slot) {
                if let Some(previous) = map.insert(cidr.addr(), entry.identity) {
                    if previous != entry.identity {
                        return Err(format!(
                            "ipcache: {} is mapped to both identity {previous} and {}",
                            entry.cidr, entry.identity
                        ));
                    }
                }
            }
        }
        cache.v4.sort_by_key(|t| std::cmp::Reverse(t.0));
        cache.v6.sort_by_key(|t| std::cmp::Reverse(t.0));
        Ok(cache)
    }

    /// The identity of `addr`: the entry with the longest prefix containing it, else world.
    pub fn lookup(&self, addr: IpAddr) -> Identity {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        let table = if addr.is_ipv4() { &self.v4 } else { &self.v6 };
        table.iter().find_map(|(len, map)| map.get(&mask(addr, *len)).copied()).unwrap_or(WORLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn entry(cidr: &str, identity: Identity) -> IpCacheEntry {
        IpCacheEntry { cidr: cidr.into(), identity }
    }

    /// spec §9: peers resolve through the ipcache, unknown → world; spec §3.4: a pod's /32 wins
    /// over any CIDR containing it.
    #[test]
    fn longest_prefix_wins_and_unknown_is_world() {
        let cache = IpCache::build(&[
            entry("10.0.0.0/8", 16777216),
            entry("10.1.0.0/16", 16777217),
            entry("10.1.2.3/32", 300),
            entry("fd00::/64", 16777218),
        ])
        .unwrap();
        assert_eq!(cache.lookup("10.1.2.3".parse().unwrap()), 300);
        assert_eq!(cache.lookup("10.1.9.9".parse().unwrap()), 16777217);
        assert_eq!(cache.lookup("10.200.0.1".parse().unwrap()), 16777216);
        assert_eq!(cache.lookup("192.0.2.1".parse().unwrap()), WORLD);
        assert_eq!(cache.lookup("fd00::5".parse().unwrap()), 16777218);
        assert_eq!(cache.lookup("::ffff:10.1.2.3".parse().unwrap()), 300, "v4-mapped v6 is v4");
    }

    #[test]
    fn conflicting_entries_are_refused() {
        assert!(IpCache::build(&[entry("10.0.0.1/32", 1), entry("10.0.0.1/32", 2)]).is_err());
        assert!(IpCache::build(&[entry("10.0.0.1", 1)]).is_err());
    }
}
