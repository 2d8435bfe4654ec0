//! The request headers as the proxy-wasm host hands them over in one hostcall
//! (`proxy_get_header_map_pairs`, the cheapest way to read more than one header): a count,
//! (name length, value length) pairs, then every name and value NUL-terminated. The buffer is
//! validated once and read in place: the request line and the connection header are found in
//! one pass, and every value borrows from the buffer (only a repeated header, joined with `,`
//! as Cilium compares it, spec §5.4, is copied).
//!
//! The connection header is how a sidecar tells the filter who the peer is without a property
//! read per request: the HCM's early header mutation overwrites it, before any filter runs,
//! with `%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%`, the same addresses the
//! `source.address` and `destination.address` properties give, and the node metadata key
//! [`CONNECTION_HEADER_KEY`] names it (envoy/sidecar.yaml).

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::engine::Headers;

/// The node metadata key that names the connection header (`node.metadata` in the bootstraps).
pub const CONNECTION_HEADER_KEY: &str = "l7gate.connection_header";
/// The connection header the bootstraps in `envoy/` set.
pub const CONNECTION_HEADER: &str = "x-l7gate-connection";

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

/// Walks the (name, value) pairs: `None` for a pair that does not fit, NUL terminators included.
fn pairs<'a>(
    data: &'a [u8],
    sizes: &'a [u8],
) -> impl Iterator<Item = Option<(&'a [u8], &'a [u8])>> {
    let mut at = 0usize;
    let mut field = move |len: usize| -> Option<&'a [u8]> {
        let end = at.checked_add(len)?;
        data.get(end)?; // its NUL
        let field = data.get(at..end)?;
        at = end + 1;
        Some(field)
    };
    sizes
        .chunks_exact(8)
        .map(move |pair| Some((field(u32_at(pair, 0)?)?, field(u32_at(pair, 4)?)?)))
}

impl<'a> HeaderMap<'a> {
    /// Validates `bytes` and finds the request line and `connection_header` (lower-case);
    /// `None` if the encoding is malformed (the caller denies).
    pub fn parse(bytes: &'a [u8], connection_header: Option<&str>) -> Option<HeaderMap<'a>> {
        let count = u32_at(bytes, 0)?;
        let sizes = bytes.get(4..4usize.checked_add(count.checked_mul(8)?)?)?;
        let data = bytes.get(4 + sizes.len()..)?;
        let mut map =
            HeaderMap { data, sizes, method: None, path: None, authority: None, connection: None };
        for pair in pairs(data, sizes) {
            let (name, value) = pair?;
            let slot = match name {
                b":method" => &mut map.method,
                b":path" => &mut map.path,
                b":authority" => &mut map.authority,
                _ if connection_header.is_some_and(|c| c.as_bytes() == name) => &mut map.connection,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        Some(map)
    }

    /// Every (name, value) in the host's order (all of them: [`HeaderMap::parse`] checked).
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        pairs(self.data, self.sizes).map_while(|pair| pair)
    }
}

impl Headers for HeaderMap<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let found = match name {
            ":method" => self.method,
            ":path" => self.path,
            ":authority" => self.authority,
            _ => {
                let mut values = self
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v);
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
    let mut out = Vec::with_capacity(
        4 + pairs.len() * 8 + pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>(),
    );
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

    const PEER: &str = CONNECTION_HEADER;

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
        assert_eq!(
            (m.method, m.path, m.authority),
            (Some(&b"GET"[..]), Some(&b"/api/x"[..]), Some(&b"inventory:8080"[..]))
        );
        let (peer, local) = connection_addresses(m.connection.unwrap()).unwrap();
        assert_eq!((peer.to_string().as_str(), local.port()), ("127.0.0.2:40000", 8080));
        assert_eq!(m.get("x-forwarded-for").as_deref(), Some(&b"127.0.0.2"[..]));
        assert!(
            matches!(m.get(":path"), Some(Cow::Borrowed(_))),
            "values borrow from the host's buffer"
        );
        assert_eq!(m.get("x-missing"), None);
        assert_eq!(
            HeaderMap::parse(&bytes, None).unwrap().connection,
            None,
            "only the configured header is trusted"
        );
    }

    /// spec §5.4: a repeated header is compared as its values joined with ",".
    #[test]
    fn repeated_headers_are_joined_in_order() {
        let bytes = map(&[
            (":method", b"GET"),
            ("x-tenant", b"blue"),
            ("X-Tenant", b"red"),
            ("x-tenant", b"\xff"),
        ]);
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
        for bad in [
            &b""[..],
            b"127.0.0.2:1",
            b"127.0.0.2 127.0.0.3:80",
            b"127.0.0.2:1  127.0.0.3:80",
            b"x:1 127.0.0.3:80",
            b"\xff",
        ] {
            assert_eq!(connection_addresses(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
