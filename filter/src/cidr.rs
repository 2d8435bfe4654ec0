//! IP prefixes (`10.0.0.0/8`, `fd00::/64`): parsing, containment, and the canonical form shared
//! by the control plane's validator and the filter's ipcache.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP prefix in canonical form (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `addr/len`. A bare address is refused (spec §3.4: the CRD requires prefix form).
    /// Host bits set below the prefix are an error too (`10.0.0.1/8` is ambiguous).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, len) = s.split_once('/').ok_or_else(|| {
            format!("{s:?} is not a CIDR prefix: write address/length, e.g. {s}/32")
        })?;
        let addr =
            IpAddr::from_str(addr).map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
        let max = Self::max_len(addr);
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{s:?}: prefix length must be a number from 0 to {max}"))?;
        let cidr = Cidr { addr: mask(addr, len), len };
        if cidr.addr != addr {
            return Err(format!("{s:?} has host bits set below /{len}: did you mean {cidr}?"));
        }
        Ok(cidr)
    }

    /// The single-address prefix of `addr`.
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr { addr, len: Self::max_len(addr) }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4() && mask(addr, self.len) == self.addr
    }

    /// Whether `other` lies entirely inside this prefix (same family, equal or longer).
    pub fn contains(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.contains_addr(other.addr)
    }

    fn max_len(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }
}

/// Clears the bits of `addr` below a prefix of `len` bits.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn parses_and_contains() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains_addr("10.1.2.3".parse().unwrap()));
        assert!(!net.contains_addr("11.0.0.1".parse().unwrap()));
        let inner = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(&inner));
        assert!(!inner.contains(&net));
        let v6 = Cidr::parse("fd00::/64").unwrap();
        assert!(!net.contains(&v6), "families never contain each other");
    }

    #[test]
    fn rejects_bare_addresses_host_bits_and_bad_lengths() {
        assert!(Cidr::parse("10.0.0.1").is_err());
        let e = Cidr::parse("10.0.0.1/8").unwrap_err();
        assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("zz/8").is_err());
        assert_eq!(Cidr::parse("0.0.0.0/0").map(|c| c.prefix_len()), Ok(0));
    }
}
