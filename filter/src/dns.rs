//! The DNS guard: rewrites the DNS answers the egress forward proxies resolve names with, so that
//! a name can only ever lead to an address outside the cluster (spec §6.1: `toFQDNs` never selects
//! pods, nodes or the endpoint's own host). An allowed name whose record an attacker controls
//! would otherwise take the egress proxy to a pod, a node or a loopback service (the Envoy admin
//! interface, the egress listeners themselves).
//!
//! It runs on DNS over TCP (RFC 1035 §4.2.2: each message behind a two-byte length), between
//! Envoy's resolver and the real one, so every answer Envoy caches went through it, refreshes
//! included, and Envoy's fallback to the next address of an answer only ever meets addresses
//! that were kept. A response is rebuilt, not patched: its questions and the kept `A`, `AAAA`
//! and `CNAME` records are written out with names uncompressed (a compression pointer could
//! point into a dropped record); authority and additional records (glue, `OPT`) are left out.
//! Anything that is not a well-formed response is an error: the connection is closed and the
//! resolution fails, which denies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The largest DNS message (the TCP length prefix is 16 bits).
pub const MAX_MESSAGE: usize = 65535;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// A name is at most 255 bytes on the wire (RFC 1035 §3.1).
const MAX_NAME: usize = 255;
/// Compression pointers followed while reading one name; more is a loop.
const MAX_POINTERS: usize = 64;

/// One rewritten response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The message to pass on.
    pub message: Vec<u8>,
    /// The first question's name (dotted, as sent), for logs.
    pub name: String,
    /// The addresses taken out of the answer.
    pub dropped: Vec<IpAddr>,
}

/// Rewrites one response, keeping the `A`/`AAAA` records whose address `keep` accepts.
pub fn rewrite(message: &[u8], keep: impl Fn(IpAddr) -> bool) -> Result<Rewritten, String> {
    let mut reader = Reader { message, at: 0 };
    let header: [u8; 12] = reader.array().map_err(|_| "a DNS message shorter than its header")?;
    if header[2] & 0x80 == 0 {
        return Err("a DNS query where a response was expected".into());
    }
    let (questions, answers) =
        (u16::from_be_bytes([header[4], header[5]]), u16::from_be_bytes([header[6], header[7]]));
    let mut out = Vec::with_capacity(message.len());
    // Id, flags and question count as received; the answer count is set below; no authority
    // and additional records.
    out.extend_from_slice(&[header[0], header[1], header[2], header[3], header[4], header[5]]);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut name = String::new();
    for i in 0..questions {
        let qname = reader.name()?;
        if i == 0 {
            name = dotted(&qname);
        }
        out.extend_from_slice(&qname);
        out.extend_from_slice(reader.take(4)?);
    }
    let (mut kept, mut dropped) = (0u16, Vec::new());
    for _ in 0..answers {
        let owner = reader.name()?;
        let fixed: [u8; 10] = reader.array()?;
        let (rtype, class) =
            (u16::from_be_bytes([fixed[0], fixed[1]]), u16::from_be_bytes([fixed[2], fixed[3]]));
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata_at = reader.at;
        let rdata = reader.take(rdlength)?;
        let rdata: Vec<u8> = match (rtype, class, address(rtype, rdata)) {
            (TYPE_A | TYPE_AAAA, CLASS_IN, Some(ip)) if keep(ip) => rdata.to_vec(),
            (TYPE_A | TYPE_AAAA, CLASS_IN, Some(ip)) => {
                dropped.push(ip);
                continue;
            }
            (TYPE_A | TYPE_AAAA, CLASS_IN, None) => {
                return Err("an address record of the wrong size".into())
            }
            (TYPE_CNAME, CLASS_IN, _) => Reader { message, at: rdata_at }.name()?,
            // Nothing else takes Envoy to an address; its data could hold compressed names.
            _ => continue,
        };
        let length = u16::try_from(rdata.len()).map_err(|_| "a record too long")?;
        out.extend_from_slice(&owner);
        out.extend_from_slice(&fixed[..8]); // type, class, TTL
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&rdata);
        kept += 1;
    }
    if let Some(count) = out.get_mut(6..8) {
        count.copy_from_slice(&kept.to_be_bytes());
    }
    if out.len() > MAX_MESSAGE {
        return Err("the rewritten response does not fit a DNS message".into());
    }
    Ok(Rewritten { message: out, name, dropped })
}

/// A rewritten DNS-over-TCP stream and each of its responses.
pub type RewrittenStream = (Vec<u8>, Vec<Rewritten>);

/// Rewrites a DNS-over-TCP stream from its start: `Ok(None)` while the last message is still
/// incomplete (more bytes will come), else the rewritten stream and every response's result.
pub fn rewrite_stream(
    stream: &[u8],
    keep: impl Fn(IpAddr) -> bool,
) -> Result<Option<RewrittenStream>, String> {
    let mut at = 0;
    let mut messages = Vec::new();
    while at < stream.len() {
        let Some(&[high, low]) = stream.get(at..at + 2) else { return Ok(None) };
        let length = usize::from(u16::from_be_bytes([high, low]));
        let Some(message) = stream.get(at + 2..at + 2 + length) else { return Ok(None) };
        messages.push(rewrite(message, &keep)?);
        at += 2 + length;
    }
    let mut out = Vec::with_capacity(stream.len());
    for m in &messages {
        // `rewrite` never returns a message over MAX_MESSAGE bytes.
        out.extend_from_slice(&(m.message.len() as u16).to_be_bytes());
        out.extend_from_slice(&m.message);
    }
    Ok(Some((out, messages)))
}

fn address(rtype: u16, rdata: &[u8]) -> Option<IpAddr> {
    match rtype {
        TYPE_A => <[u8; 4]>::try_from(rdata).ok().map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        TYPE_AAAA => <[u8; 16]>::try_from(rdata).ok().map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    }
}

/// A name in wire form (uncompressed), dotted: `api.example.com.`.
fn dotted(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        let label = wire.get(at + 1..at + 1 + usize::from(len)).unwrap_or_default();
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        at += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

struct Reader<'m> {
    message: &'m [u8],
    at: usize,
}

impl<'m> Reader<'m> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| "a truncated DNS message".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'m [u8], String> {
        let bytes = self.message.get(self.at..self.at + n).ok_or("a truncated DNS message")?;
        self.at += n;
        Ok(bytes)
    }

    /// Reads a name at the cursor, following compression pointers, and returns it in
    /// uncompressed wire form; the cursor ends after the name's bytes at its first place.
    fn name(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut at = self.at;
        let mut jumps = 0;
        loop {
            let len = *self.message.get(at).ok_or("a truncated DNS name")?;
            match len {
                0 => {
                    out.push(0);
                    if jumps == 0 {
                        self.at = at + 1;
                    }
                    return Ok(out);
                }
                1..=63 => {
                    let label = self
                        .message
                        .get(at..at + 1 + usize::from(len))
                        .ok_or("a truncated DNS label")?;
                    out.extend_from_slice(label);
                    if out.len() + 1 > MAX_NAME {
                        return Err("a DNS name over 255 bytes".into());
                    }
                    at += 1 + usize::from(len);
                }
                0xc0..=0xff => {
                    let low = *self.message.get(at + 1).ok_or("a truncated DNS pointer")?;
                    if jumps == 0 {
                        self.at = at + 2;
                    }
                    jumps += 1;
                    if jumps > MAX_POINTERS {
                        return Err("a DNS name whose pointers loop".into());
                    }
                    at = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                }
                _ => return Err(format!("a DNS label of unknown kind (0x{len:02x})")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A response to `name` with `records` (type, rdata) in its answer, every owner a pointer to
    /// the question, and one additional record.
    fn response(name: &str, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&(records.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 1]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        for (rtype, rdata) in records {
            m.extend_from_slice(&[0xc0, 0x0c]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]); // OPT
        m
    }

    fn a(ip: &str) -> (u16, Vec<u8>) {
        (TYPE_A, ip.parse::<Ipv4Addr>().unwrap().octets().to_vec())
    }

    /// The addresses of a rewritten message's answer, read back by the reader itself.
    fn answer_addresses(message: &[u8]) -> Vec<IpAddr> {
        let mut r = Reader { message, at: 12 };
        r.name().unwrap();
        r.take(4).unwrap();
        let count = u16::from_be_bytes([message[6], message[7]]);
        let mut out = Vec::new();
        for _ in 0..count {
            r.name().unwrap();
            let fixed = r.take(10).unwrap();
            let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            if let Some(ip) = address(rtype, r.take(len).unwrap()) {
                out.push(ip);
            }
        }
        out
    }

    fn outside(ip: IpAddr) -> bool {
        !ip.to_string().starts_with("10.")
    }

    #[test]
    fn in_cluster_answers_are_dropped_and_the_rest_kept_in_order() {
        let m = response("api.example.com", &[a("10.0.0.5"), a("192.0.2.1"), a("10.0.0.6")]);
        let r = rewrite(&m, outside).unwrap();
        assert_eq!(r.name, "api.example.com.");
        assert_eq!(r.dropped, ["10.0.0.5".parse::<IpAddr>().unwrap(), "10.0.0.6".parse().unwrap()]);
        assert_eq!(answer_addresses(&r.message), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(&r.message[..6], &m[..6], "id, flags and question count are kept");
        assert_eq!(&r.message[8..12], &[0, 0, 0, 0], "authority and additional records go");
    }

    #[test]
    fn an_answer_of_only_in_cluster_addresses_becomes_empty() {
        let r = rewrite(&response("x.example.com", &[a("10.1.2.3")]), outside).unwrap();
        assert_eq!((r.dropped.len(), answer_addresses(&r.message).len()), (1, 0));
        let six = (TYPE_AAAA, "::1".parse::<Ipv6Addr>().unwrap().octets().to_vec());
        let r = rewrite(&response("x.example.com", &[six]), |ip| !ip.is_loopback()).unwrap();
        assert_eq!(r.dropped, ["::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn cname_targets_are_written_uncompressed_and_other_records_dropped() {
        // The CNAME's target is a pointer to the question name's `example.com` part (offset 16).
        let target = vec![3, b'w', b'w', b'w', 0xc0, 16];
        let txt = (16, vec![3, b'a', b'b', b'c']);
        let m = response("api.example.com", &[(TYPE_CNAME, target), txt, a("192.0.2.9")]);
        let r = rewrite(&m, outside).unwrap();
        assert_eq!(u16::from_be_bytes([r.message[6], r.message[7]]), 2, "CNAME and A kept");
        assert!(r.message.windows(17).any(|w| w == b"\x03www\x07example\x03com\x00"), "{r:?}");
        assert!(!r.message.windows(2).any(|w| w == [0xc0, 16]), "no pointer left");
        assert_eq!(answer_addresses(&r.message), ["192.0.2.9".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn malformed_messages_are_errors_never_passed_on() {
        let good = response("api.example.com", &[a("192.0.2.1")]);
        let mut query = good.clone();
        query[2] &= 0x7f;
        let mut looping = good.clone();
        let at = good.len() - 11 - 16; // the answer's owner pointer
        looping[at..at + 2].copy_from_slice(&[0xc0, at as u8]);
        let mut wrong_size = good.clone();
        let len_at = good.len() - 11 - 6;
        wrong_size[len_at + 1] = 3;
        for (what, m) in [
            ("short", good[..11].to_vec()),
            ("query", query),
            ("truncated", good[..good.len() - 14].to_vec()),
            ("pointer loop", looping),
            ("A of 3 bytes", wrong_size),
            ("label kind 0x40", [&good[..12], &[0x40]].concat()),
        ] {
            assert!(rewrite(&m, outside).is_err(), "{what} was accepted");
        }
    }

    #[test]
    fn a_tcp_stream_is_rewritten_once_every_message_is_whole() {
        let one = response("a.example.com", &[a("10.0.0.1"), a("192.0.2.1")]);
        let two = response("b.example.com", &[a("192.0.2.2")]);
        let mut stream = Vec::new();
        for m in [&one, &two] {
            stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
            stream.extend_from_slice(m);
        }
        for cut in [1, 2, 10, one.len() + 3, one.len() + 5, stream.len() - 1] {
            assert_eq!(rewrite_stream(&stream[..cut], outside), Ok(None), "cut at {cut}");
        }
        let (out, results) = rewrite_stream(&stream, outside).unwrap().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].dropped, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
        let first = usize::from(u16::from_be_bytes([out[0], out[1]]));
        assert_eq!(answer_addresses(&out[2..2 + first]), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(out.len(), 4 + results[0].message.len() + results[1].message.len());
    }
}
