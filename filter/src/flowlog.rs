//! The flow record of one decision: the JSON members (`"direction":"ingress","verdict":...`)
//! the filter publishes as filter state and Envoy's access log wraps into one JSON line with its
//! own `time` and `response_code` (`envoy/sidecar*.yaml`; fields in docs/observability.md).
//! Everything that depends only on the configuration (the endpoint, each identity's name,
//! namespace and key labels) is escaped once at configure time; a request appends its own
//! values to one reused buffer.

use crate::fasthash::FastMap;
use std::fmt::Write;
use std::net::IpAddr;

use crate::config::{Config, Identity, IdentityInfo, Protocol};
use crate::engine::{Direction, Verdict};

/// The filter-state key the record is published under (`set_property`); Envoy stores it as
/// `wasm.l7gate_verdict`, which the access log reads with `%FILTER_STATE(wasm.l7gate_verdict:PLAIN)%`.
pub const FILTER_STATE_KEY: &str = "l7gate_verdict";

/// The namespace label of a pod identity.
const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace=";

/// One decision's request-specific values.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub direction: Direction,
    pub verdict: &'a Verdict<'a>,
    /// The peer's identity (source for ingress, destination for egress).
    pub peer: Option<Identity>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
    pub method: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub sni: Option<&'a str>,
}

/// The configuration-dependent parts of every record, escaped once.
#[derive(Debug, Default)]
pub struct FlowLog {
    /// `"endpoint":"default/inventory-api"` or empty when unconfigured.
    endpoint: String,
    /// The endpoint's own identity fields (`"identity":258,...`), as the local side.
    local: String,
    /// Per identity: `"identity":257,"name":"default/frontend","namespace":"default","labels":[...]`.
    parties: FastMap<Identity, String>,
}

impl FlowLog {
    /// Precomputes the record parts of `config`. `local` is the endpoint's own identity, if the
    /// ipcache knows it.
    pub fn new(config: &Config) -> FlowLog {
        let parties: FastMap<Identity, String> =
            config.identities.iter().map(|i| (i.id, party(i))).collect();
        let own = format!("{}/{}", config.endpoint.namespace, config.endpoint.name);
        let local =
            config.identities.iter().find(|i| i.name == own).map(party).unwrap_or_else(|| {
                let mut s = String::from("\"name\":");
                push_str(&mut s, own.as_bytes());
                s.push_str(",\"namespace\":");
                push_str(&mut s, config.endpoint.namespace.as_bytes());
                s
            });
        let mut endpoint = String::from("\"endpoint\":");
        push_str(&mut endpoint, own.as_bytes());
        FlowLog { endpoint, local, parties }
    }

    /// Writes the record members of `d` into `out` (cleared first).
    pub fn write(&self, d: &Decision<'_>, out: &mut String) {
        out.clear();
        out.push_str("\"direction\":\"");
        out.push_str(match d.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        });
        out.push_str("\",\"verdict\":\"");
        out.push_str(d.verdict.label());
        out.push_str("\",\"reason\":\"");
        out.push_str(d.verdict.reason.code());
        out.push('"');
        if !self.endpoint.is_empty() {
            out.push(',');
            out.push_str(&self.endpoint);
        }
        if let Some(o) = d.verdict.origin {
            for (key, value) in
                [(",\"policy\":", &o.policy), (",\"kind\":", &o.kind), (",\"rule\":", &o.rule)]
            {
                out.push_str(key);
                push_str(out, value.as_bytes());
            }
        }
        let peer = d.peer.map(|id| (id, self.parties.get(&id)));
        let (src, dst) = match d.direction {
            Direction::Ingress => (peer, None),
            Direction::Egress => (None, peer),
        };
        self.party(out, ",\"src\":{", d.src_ip, src);
        self.party(out, ",\"dst\":{", d.dst_ip, dst);
        let protocol = match d.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        out.push_str(",\"port\":");
        push_number(out, u64::from(d.port));
        out.push_str(",\"protocol\":\"");
        out.push_str(protocol);
        out.push('"');
        for (key, value) in [
            (",\"method\":", d.method),
            (",\"path\":", d.path),
            (",\"host\":", d.host),
            (",\"sni\":", d.sni.map(str::as_bytes)),
        ] {
            if let Some(v) = value {
                out.push_str(key);
                push_str(out, v);
            }
        }
        // spec §5.5: the header actions applied (LOG: recorded only), with the rule of each.
        for (i, r) in d.verdict.rewrites.iter().enumerate() {
            out.push_str(if i == 0 { ",\"headers\":[{\"name\":" } else { ",{\"name\":" });
            push_str(out, r.name.as_bytes());
            out.push_str(",\"action\":\"");
            out.push_str(r.action.name());
            out.push_str("\",\"value\":");
            push_str(out, r.value);
            out.push_str(",\"policy\":");
            push_str(out, r.origin.policy.as_bytes());
            out.push_str(",\"rule\":");
            push_str(out, format!("{}.rules.http[{}]", r.origin.rule, r.http_rule).as_bytes());
            out.push('}');
            if i + 1 == d.verdict.rewrites.len() {
                out.push(']');
            }
        }
    }

    /// `,"src":{...}` (`open` is `,"src":{`): the peer's identity fields, or the endpoint's own
    /// for the local side.
    fn party(
        &self,
        out: &mut String,
        open: &str,
        ip: Option<IpAddr>,
        peer: Option<(Identity, Option<&String>)>,
    ) {
        out.push_str(open);
        let mut sep = "";
        if let Some(ip) = ip {
            out.push_str("\"ip\":\"");
            push_ip(out, ip);
            out.push('"');
            sep = ",";
        }
        let fields = match peer {
            Some((_, Some(known))) => Some(known.as_str()),
            Some((id, None)) => {
                let _ = write!(out, "{sep}\"identity\":{id}");
                None
            }
            None => Some(self.local.as_str()),
        };
        if let Some(fields) = fields.filter(|f| !f.is_empty()) {
            out.push_str(sep);
            out.push_str(fields);
        }
        out.push('}');
    }
}

/// The fields of one identity: numeric id, name, namespace (pods) and key labels (the
/// identity's labels without Kubernetes' and Cilium's bookkeeping labels).
fn party(info: &IdentityInfo) -> String {
    let mut s = format!("\"identity\":{},\"name\":", info.id);
    push_str(&mut s, info.name.as_bytes());
    if let Some(ns) = info.labels.iter().find_map(|l| l.strip_prefix(NAMESPACE_LABEL)) {
        s.push_str(",\"namespace\":");
        push_str(&mut s, ns.as_bytes());
    }
    s.push_str(",\"labels\":[");
    let key =
        |l: &&String| !l.starts_with("k8s:io.kubernetes.") && !l.starts_with("k8s:io.cilium.");
    for (i, label) in info.labels.iter().filter(key).enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_str(&mut s, label.as_bytes());
    }
    s.push(']');
    s
}

/// Appends a decimal number without the formatting machinery (this runs per request).
fn push_number(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.extend(digits.iter().skip(at).map(|d| char::from(*d)));
}

/// Appends an address as `Display` writes it; IPv4 without the formatting machinery.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_number(out, u64::from(octet));
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// Appends `bytes` as a JSON string (quoted; invalid UTF-8 replaced, control characters escaped).
pub fn push_str(out: &mut String, bytes: &[u8]) {
    out.push('"');
    // The common case, copied whole: valid UTF-8 with nothing to escape.
    let plain = |s: &str| !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    if let Some(s) = std::str::from_utf8(bytes).ok().filter(|s| plain(s)) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DirectionPolicy, EndpointRef, Origin, SCHEMA_VERSION};
    use crate::engine::Reason;

    fn config() -> Config {
        let info = |id, name: &str, labels: &[&str]| IdentityInfo {
            id,
            name: name.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        };
        Config {
            version: SCHEMA_VERSION,
            endpoint: EndpointRef {
                name: "inventory-api".into(),
                namespace: "default".into(),
                identity: 0,
            },
            identities: vec![
                info(
                    257,
                    "default/frontend",
                    &["k8s:app=frontend-app", "k8s:io.kubernetes.pod.namespace=default"],
                ),
                info(
                    258,
                    "default/inventory-api",
                    &["k8s:app=inventory-api", "k8s:io.kubernetes.pod.namespace=default"],
                ),
            ],
            ipcache: vec![],
            local: vec![],
            ingress: DirectionPolicy { enforced: true, rules: vec![], audit: None },
            egress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
        }
    }

    fn record(log: &FlowLog, d: &Decision<'_>) -> serde_json::Value {
        let mut out = String::from("stale");
        log.write(d, &mut out);
        serde_json::from_str(&format!("{{{out}}}")).expect("the record members form a JSON object")
    }

    #[test]
    fn an_ingress_record_names_both_sides_the_rule_and_the_request() {
        let origin = Origin {
            kind: "CiliumNetworkPolicy".into(),
            policy: "default/inventory-api-l7".into(),
            rule: "spec.ingress[0].toPorts[0]".into(),
        };
        let verdict = Verdict::deny(Reason::L7NotMatched, Some(&origin));
        let d = Decision {
            direction: Direction::Ingress,
            verdict: &verdict,
            peer: Some(257),
            src_ip: "127.0.0.2".parse().ok(),
            dst_ip: "127.0.0.10".parse().ok(),
            port: 8080,
            protocol: Protocol::Tcp,
            method: Some(b"DELETE"),
            path: Some(b"/api/\"x\"\\\n\xff"),
            host: Some(b"inventory-api:8080"),
            sni: None,
        };
        let v = record(&FlowLog::new(&config()), &d);
        assert_eq!(
            v,
            serde_json::json!({
                "direction": "ingress", "verdict": "denied", "reason": "denied-l7-no-rule-matched",
                "endpoint": "default/inventory-api",
                "policy": "default/inventory-api-l7", "kind": "CiliumNetworkPolicy", "rule": "spec.ingress[0].toPorts[0]",
                "src": {"ip": "127.0.0.2", "identity": 257, "name": "default/frontend", "namespace": "default", "labels": ["k8s:app=frontend-app"]},
                "dst": {"ip": "127.0.0.10", "identity": 258, "name": "default/inventory-api", "namespace": "default", "labels": ["k8s:app=inventory-api"]},
                "port": 8080, "protocol": "TCP", "method": "DELETE", "path": "/api/\"x\"\\\n\u{fffd}", "host": "inventory-api:8080"
            })
        );
    }

    #[test]
    fn numbers_and_addresses_are_written_as_display_writes_them() {
        for n in [0u64, 7, 10, 255, 8080, 65535, u64::MAX] {
            let mut s = String::new();
            push_number(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.10",
            "255.255.255.255",
            "10.1.20.3",
            "::1",
            "fd00::5",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn unknown_peers_and_missing_addresses_still_give_valid_records() {
        let verdict = Verdict::deny(Reason::NoAllowRule, None);
        let d = Decision {
            direction: Direction::Ingress,
            verdict: &verdict,
            peer: Some(2),
            src_ip: None,
            dst_ip: None,
            port: 0,
            protocol: Protocol::Tcp,
            method: None,
            path: None,
            host: None,
            sni: None,
        };
        let v = record(&FlowLog::new(&config()), &d);
        assert_eq!(v["src"], serde_json::json!({"identity": 2}));
        assert_eq!(v["dst"]["name"], "default/inventory-api");
        assert_eq!((v["verdict"].as_str(), v.get("policy")), (Some("denied"), None));
        assert_eq!(record(&FlowLog::default(), &d).get("endpoint"), None);
    }
}
