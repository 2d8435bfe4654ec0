//! The request headers as the proxy-wasm host hands them over in one hostcall
//! (`proxy_get_header_map_pairs`, the cheapest way to read more than one header): a count,
//! (name length, value length) pairs, then every name and value NUL-terminated. The buffer is
//! validated once and read in place: the request line and the connection header are found in
//! one pass, and every value borrows from the buffer (only a repeated header, joined with `,`
//! as Cilium compares it, spec §5.4, is copied).
//!
//! The connection header is how a sidecar tells the filter who the peer is without a property
//! read per request: Envoy's `header_mutation` filter, placed before l7gate, overwrites it with
//! `%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%`, the same addresses the
//! `source.address` and `destination.address` properties give (envoy/sidecar.yaml).

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::engine::Headers;

/// Serialised request headers, validated, with the fields every request needs found.
#[derive(Debug)]
pub struct HeaderMap<'a> {
    /// The data part: names and values, each followed by a NUL.
    data: &'a [u8],
    /// (name length, value length) of each header, in the host's order.
    sizes: &'a [u8],
    pub method: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub authority: Option<&'a [u8]>,
    /// The value of the connection header, if one was asked for and present.
    pub connection: Option<&'a [u8]>,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(b)).ok()
}

impl<'a> HeaderMap<'a> {
    /// Validates `bytes` and finds the request line and `connection_header` (lower-case);
    /// `None` if the encoding is malformed (the caller denies).
    pub fn parse(bytes: &'a [u8], connection_header: Option<&str>) -> Option<HeaderMap<'a>> {
        let count = u32_at(bytes, 0)?;
        let sizes = bytes.get(4..4usize.checked_add(count.checked_mul(8)?)?)?;
        let data = bytes.get(4 + sizes.len()..)?;
        let mut map = HeaderMap { data, sizes, method: None, path: None, authority: None, connection: None };
        let mut at = 0usize;
        for i in 0..count {
            let (name_len, value_len) = (u32_at(sizes, i * 8)?, u32_at(sizes, i * 8 + 4)?);
            let name = data.get(at..at.checked_add(name_len)?)?;
            at = at.checked_add(name_len + 1)?;
            let value = data.get(at..at.checked_add(value_len)?)?;
            at = at.checked_add(value_len + 1)?;
            let slot = match name {
                b":method" => &mut map.method,
                b":path" => &mut map.path,
                b":authority" => &mut map.authority,
                _ if connection_header.is_some_and(|c| c.as_bytes() == name) => &mut map.connection,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        (at <= data.len()).then_some(map)
    }

    /// Every (name, value) in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let (data, sizes) = (self.data, self.sizes);
        let mut at = 0usize;
        sizes.chunks_exact(8).map_while(move |pair| {
            let (name_len, value_len) = (u32_at(pair, 0)?, u32_at(pair, 4)?);
            let name = data.get(at..at + name_len)?;
            at += name_len + 1;
            let value = data.get(at..at + value_len)?;
            at += value_len + 1;
            Some((name, value))
        })
    }
}

impl Headers for HeaderMap<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let found = match name {
            ":method" => self.method,
            ":path" => self.path,
            ":authority" => self.authority,
            _ => {
                let mut values = self.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v);
                let first = values.next()?;
                let Some(second) = values.next() else {
                    return Some(Cow::Borrowed(first));
                };
                let mut joined = [first, second].join(&b","[..]);
                for v in values {
                    joined.push(b',');
                    joined.extend_from_slice(v);
                }
                return Some(Cow::Owned(joined));
            }
        };
        found.map(Cow::Borrowed)
    }
}

/// The (peer, local) addresses of a connection header value: `ip:port ip:port` (IPv6 in
/// brackets). `None` for anything else, which the filter denies.
pub fn connection_addresses(value: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let text = std::str::from_utf8(value).ok()?;
    let (peer, local) = text.split_once(' ')?;
    Some((peer.parse().ok()?, local.parse().ok()?))
}

/// The ABI's map encoding of `pairs` (what the host sends, and what the filter sends with a
/// local reply).
pub fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>());
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const PEER: &str = "x-l7gate-peer";

    fn map(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        serialize(&pairs.iter().map(|(k, v)| (k.as_bytes(), *v)).collect::<Vec<_>>())
    }

    #[test]
    fn finds_the_request_line_and_the_connection_header_in_one_pass() {
        let bytes = map(&[
            (":authority", b"inventory:8080"),
            (":path", b"/api/x"),
            (":method", b"GET"),
            (PEER, b"127.0.0.2:40000 127.0.0.10:8080"),
            ("x-forwarded-for", b"127.0.0.2"),
        ]);
        let m = HeaderMap::parse(&bytes, Some(PEER)).unwrap();
        assert_eq!((m.method, m.path, m.authority), (Some(&b"GET"[..]), Some(&b"/api/x"[..]), Some(&b"inventory:8080"[..])));
        let (peer, local) = connection_addresses(m.connection.unwrap()).unwrap();
        assert_eq!((peer.to_string().as_str(), local.port()), ("127.0.0.2:40000", 8080));
        assert_eq!(m.get("x-forwarded-for").as_deref(), Some(&b"127.0.0.2"[..]));
        assert!(matches!(m.get(":path"), Some(Cow::Borrowed(_))), "values borrow from the host's buffer");
        assert_eq!(m.get("x-missing"), None);
        assert_eq!(HeaderMap::parse(&bytes, None).unwrap().connection, None, "only the configured header is trusted");
    }

    /// spec §5.4: a repeated header is compared as its values joined with ",".
    #[test]
    fn repeated_headers_are_joined_in_order() {
        let bytes = map(&[(":method", b"GET"), ("x-tenant", b"blue"), ("X-Tenant", b"red"), ("x-tenant", b"\xff")]);
        let m = HeaderMap::parse(&bytes, None).unwrap();
        assert_eq!(m.get("x-tenant").as_deref(), Some(&b"blue,red,\xff"[..]));
        assert_eq!(m.iter().count(), 4);
    }

    /// Truncated or inconsistent buffers are refused, never read past their end.
    #[test]
    fn malformed_buffers_are_refused() {
        let good = map(&[(":method", b"GET"), (":path", b"/")]);
        for cut in 0..good.len() - 1 {
            assert!(HeaderMap::parse(good.get(..cut).unwrap(), None).is_none(), "cut at {cut}");
        }
        let mut huge = good.clone();
        huge.get_mut(0..4).unwrap().copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderMap::parse(&huge, None).is_none());
        let mut long_name = good.clone();
        long_name.get_mut(4..8).unwrap().copy_from_slice(&1000u32.to_le_bytes());
        assert!(HeaderMap::parse(&long_name, None).is_none());
        assert!(HeaderMap::parse(&map(&[]), None).is_some_and(|m| m.method.is_none()));
    }

    #[test]
    fn connection_header_values() {
        let (peer, local) = connection_addresses(b"[::1]:5000 [fd00::10]:8080").unwrap();
        assert_eq!((peer.ip().to_string().as_str(), local.port()), ("::1", 8080));
        for bad in [&b""[..], b"127.0.0.2:1", b"127.0.0.2 127.0.0.3:80", b"127.0.0.2:1  127.0.0.3:80", b"x:1 127.0.0.3:80", b"\xff"] {
            assert_eq!(connection_addresses(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
