//! A tiny authoritative DNS server on loopback, speaking DNS over TCP (RFC 1035 §4.2.2) as the
//! egress Envoy's DNS guard does, so Envoy's resolver finds the test upstreams by name without
//! touching the machine's resolver configuration: it answers `A` queries from a name → IPv4 list
//! (every address of a name, in the order given), `NXDOMAIN` for names it does not know, and an
//! empty answer for other record types. It records every name asked, so a test can prove a
//! denied name was never even resolved.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_FORMERR: u8 = 1;
const TTL_SECONDS: u32 = 60;

type Records = HashMap<String, Vec<Ipv4Addr>>;

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `records` (names in any case, with or without trailing dot; a name given twice has
    /// two addresses) on `127.0.0.1:<any>`.
    pub fn start(records: &[(&str, Ipv4Addr)]) -> std::io::Result<DnsServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut map = Records::new();
        for (name, ip) in records {
            map.entry(canonical(name)).or_default().push(*ip);
        }
        let (records, queries) = (Arc::new(map), Arc::new(Mutex::new(Vec::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name("dns".into()).spawn({
            let (queries, stop) = (Arc::clone(&queries), Arc::clone(&stop));
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (records, queries) = (Arc::clone(&records), Arc::clone(&queries));
                    if let Ok(stream) = stream {
                        std::thread::spawn(move || serve(stream, &records, &queries));
                    }
                }
            }
        })?;
        Ok(DnsServer { addr, queries, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every name asked so far (lower-case, no trailing dot), oldest first, any record type.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `name` was asked for (compared case- and trailing-dot-insensitively).
    pub fn was_asked(&self, name: &str) -> bool {
        self.queries().contains(&canonical(name))
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Answers the queries of one connection, each behind its two-byte length, until it closes.
fn serve(mut stream: TcpStream, records: &Records, queries: &Mutex<Vec<String>>) {
    loop {
        let mut prefix = [0u8; 2];
        if stream.read_exact(&mut prefix).is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        let Some(reply) = answer(&query, records, queries) else {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        let Ok(length) = u16::try_from(reply.len()) else { return };
        if stream.write_all(&[&length.to_be_bytes()[..], &reply].concat()).is_err() {
            return;
        }
    }
}

/// One question of a query: name (canonical), type, class, and where the question ends.
struct Question {
    name: String,
    qtype: u16,
    qclass: u16,
    end: usize,
}

fn parse_question(query: &[u8]) -> Option<Question> {
    let u16_at = |at: usize| query.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if u16_at(4)? != 1 {
        return None; // QDCOUNT must be 1
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // no compression in questions
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).into_owned());
        at += len;
    }
    Some(Question {
        name: canonical(&labels.join(".")),
        qtype: u16_at(at)?,
        qclass: u16_at(at + 2)?,
        end: at + 4,
    })
}

/// The response to one query; `None` for a message too short to answer at all.
fn answer(query: &[u8], records: &Records, queries: &Mutex<Vec<String>>) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let (id, rd) = (header.get(..2)?, header.get(2)? & 0x01);
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(id);
    let Some(question) = parse_question(query) else {
        reply.extend_from_slice(&[0x80 | rd, 0x80 | RCODE_FORMERR, 0, 0, 0, 0, 0, 0, 0, 0]);
        return Some(reply);
    };
    queries.lock().unwrap_or_else(|e| e.into_inner()).push(question.name.clone());
    let addresses = records.get(&question.name);
    let answered: &[Ipv4Addr] = match addresses {
        Some(ips) if question.qtype == TYPE_A && question.qclass == CLASS_IN => ips,
        _ => &[],
    };
    let answers = u16::try_from(answered.len()).ok()?;
    let rcode = if addresses.is_none() { RCODE_NXDOMAIN } else { 0 };
    // QR + opcode QUERY + AA + RD as asked; RA; rcode. One question echoed, `answers` answers.
    reply.extend_from_slice(&[0x84 | rd, 0x80 | rcode, 0, 1]);
    reply.extend_from_slice(&answers.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question.end)?);
    for ip in answered {
        reply.extend_from_slice(&[0xc0, 0x0c]); // the name: a pointer to the question
        reply.extend_from_slice(&TYPE_A.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&TTL_SECONDS.to_be_bytes());
        reply.extend_from_slice(&4u16.to_be_bytes());
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.').filter(|l| !l.is_empty()) {
            q.push(u8::try_from(label.len()).unwrap());
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    // The server over a real TCP connection (several queries on one): an A answer for a known
    // name (any case), every address of a name given twice, NXDOMAIN for an unknown one, no
    // answer for AAAA; every name recorded.
    #[test]
    fn answers_a_queries_from_its_map_and_records_names() {
        let dns = DnsServer::start(&[
            ("Api.Example.com.", Ipv4Addr::new(127, 0, 0, 50)),
            ("two.example.com", Ipv4Addr::new(127, 0, 0, 51)),
            ("two.example.com", Ipv4Addr::new(127, 0, 0, 52)),
        ])
        .unwrap();
        let mut client = TcpStream::connect(dns.addr()).unwrap();
        let mut ask = |name: &str, qtype: u16| {
            let q = query(name, qtype);
            client.write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat()).unwrap();
            let mut prefix = [0u8; 2];
            client.read_exact(&mut prefix).unwrap();
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            client.read_exact(&mut reply).unwrap();
            reply
        };
        let a = ask("API.example.COM", TYPE_A);
        assert_eq!(
            (&a[..2], a[3] & 0x0f, u16::from_be_bytes([a[6], a[7]])),
            (&[0xab, 0xcd][..], 0, 1)
        );
        assert_eq!(&a[a.len() - 4..], &[127, 0, 0, 50]);
        let two = ask("two.example.com", TYPE_A);
        assert_eq!(u16::from_be_bytes([two[6], two[7]]), 2);
        assert_eq!(&two[two.len() - 20..two.len() - 16], &[127, 0, 0, 51]);
        assert_eq!(&two[two.len() - 4..], &[127, 0, 0, 52]);
        let aaaa = ask("api.example.com", 28);
        assert_eq!((aaaa[3] & 0x0f, u16::from_be_bytes([aaaa[6], aaaa[7]])), (0, 0));
        let unknown = ask("evil.net", TYPE_A);
        assert_eq!(
            (unknown[3] & 0x0f, u16::from_be_bytes([unknown[6], unknown[7]])),
            (RCODE_NXDOMAIN, 0)
        );
        assert_eq!(
            dns.queries(),
            ["api.example.com", "two.example.com", "api.example.com", "evil.net"]
        );
        assert!(dns.was_asked("EVIL.net.") && !dns.was_asked("example.com"));
    }
}
