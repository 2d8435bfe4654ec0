//! Cilium's `sanitize` rules (spec §7) and l7gate's own refusals, as checks on written values.
//! Each function checks one value (or one cross-field condition) and returns the typed result or
//! a message saying what is wrong and how to fix it; the decoder in `parse` adds file, position
//! and field path.

use l7gate_filter::cidr::Cidr;
use l7gate_filter::config::Mismatch;
use l7gate_filter::engine::full_match_regex;
use regex_lite::Regex;

use super::model::{Entity, L4Protocol, Operator, Port, PortProtocol};

/// Cilium's `maxPorts`: entries of one `toPorts[].ports` list.
pub const MAX_PORTS: usize = 40;
/// Longest `log.value` (CRD `maxLength`).
const MAX_LOG_LEN: usize = 32;
/// Longest `matchName` / `matchPattern`.
const MAX_FQDN_LEN: usize = 255;
/// Longest label value and label name part (Kubernetes).
const MAX_LABEL_LEN: usize = 63;
/// Longest label key prefix (a DNS subdomain).
const MAX_LABEL_PREFIX_LEN: usize = 253;

const ENTITIES: &str =
    "world, cluster, host, remote-node, kube-apiserver, ingress, health, init, unmanaged, none, all";

pub const EMPTY_POLICY: &str =
    "empty policy: write the rule under spec, or a list of rules under specs";
pub const NO_SECTIONS: &str = "rule must have at least one of ingress, ingressDeny, egress, \
     egressDeny with at least one element: add the traffic this rule allows or denies";
pub const NO_ENDPOINT_SELECTOR: &str =
    "missing endpointSelector: write endpointSelector: {} to select every pod, or matchLabels for some";
pub const SERVER_NAMES_WITH_L7: &str = "ServerNames are not allowed with L7 rules without TLS \
     termination: l7gate does not terminate TLS, so HTTP rules cannot see inside it; put the \
     serverNames and the rules in separate toPorts entries";
pub const SERVER_NAMES_EMPTY: &str =
    "serverNames needs at least one name: list the allowed TLS server names, or remove it";
pub const SERVER_NAMES_ON_INGRESS: &str = "serverNames on ingress: the sidecar's ingress \
     listener is plain HTTP, so a connection there carries no TLS server name and this rule \
     allows nothing (as in Cilium, serverNames require TLS); remove serverNames to allow the port";
pub const DNS_ON_INGRESS: &str =
    "L7 protocol DNS is not supported on ingress yet: DNS rules belong \
     to egress rules towards the DNS server";
pub const DNS_WITHOUT_PORTS: &str =
    "port 53 must be specified for DNS rules: add ports: [{port: \"53\", protocol: ANY}]";
pub const DNS_NOT_ENFORCED: &str = "DNS rules are accepted, but l7gate does not filter DNS query \
     names: the port is allowed to the rule's peers as a plain L4 rule";
pub const MULTIPLE_L7: &str = "multiple L7 protocol rule types specified in single rule: split \
     http and dns into two toPorts entries";
pub const ICMPS_WITH_TO_PORTS: &str = "the ICMPs block may only be present without ToPorts: move \
     icmps into a rule of its own";
pub const FQDN_BOTH: &str = "only one of MatchName or MatchPattern is allowed in an FQDNSelector: \
     split it into two entries";
pub const FQDN_NEITHER: &str = "an FQDN selector needs matchName or matchPattern: add one of them";
pub const CIDR_MISSING: &str =
    "one of cidr, cidrGroupRef, or cidrGroupSelector is required: write cidr: <address>/<length>";
pub const HEADER_NAME_MISSING: &str = "Header name missing: add name: <header name>";

/// Message for a field l7gate does not enforce (or Cilium removed); `field` is its YAML name.
pub fn unenforced(field: &str) -> String {
    let advice = match field {
        "nodeSelector" => {
            "host firewall policies are out of scope; select pods with endpointSelector instead"
        }
        "fromGroups" | "toGroups" => {
            "cloud security groups cannot be resolved; list their addresses with CIDR rules instead"
        }
        "fromNodes" | "toNodes" => {
            "node selectors are out of scope; use the entities host / remote-node or node CIDRs instead"
        }
        "fromRequires" | "toRequires" => {
            "it was removed in Cilium 1.19; add the required labels to each endpoint selector \
             instead (an empty list is accepted)"
        }
        "icmps" => "the filter only sees TCP traffic through Envoy; remove the icmps block",
        "listener" => {
            "custom Envoy listeners are out of scope; remove it and restrict requests with rules.http"
        }
        "terminatingTLS" | "originatingTLS" => {
            "TLS interception is not implemented, so HTTP rules cannot see inside TLS; remove it \
             and the HTTP rules for TLS traffic"
        }
        "kafka" => "Kafka L7 (deprecated in Cilium 1.19) is out of scope; remove it to allow the port at L4",
        "l7proto" | "l7" => "proxylib parsers are out of scope; remove it to allow the port at L4",
        "secret" => "Kubernetes secrets are not read; write the expected header in value instead",
        "cidrGroupRef" | "cidrGroupSelector" => {
            "CiliumCIDRGroups cannot be resolved; write the prefixes in cidr instead"
        }
        "toFQDNs" => {
            return "toFQDNs is not allowed in egressDeny: Cilium deny rules cannot match DNS \
                    names; deny the addresses with toCIDR/toCIDRSet, or allow only the wanted \
                    names with toFQDNs in egress"
                .to_string()
        }
        _ => "remove it",
    };
    format!("{field} is not enforced by l7gate: {advice}")
}

/// Message for a field other than `ports` in a deny rule's `toPorts` entry (spec §3.8).
pub fn deny_port_field(field: &str) -> String {
    format!(
        "{field} is not allowed in ingressDeny/egressDeny toPorts: deny rules match ports only; \
         deny the whole port, or restrict requests with rules.http in an allow rule"
    )
}

/// Spec §3.1: at most one L3 field may be non-empty in one rule.
pub fn l3_combination(first: &str, second: &str) -> String {
    format!("combining {first} and {second} is not supported yet: write them as two separate rules")
}

pub fn too_many_ports(n: usize) -> String {
    format!("too many ports, the max is {MAX_PORTS} (found {n}): split them over several toPorts entries")
}

/// `authentication.mode`: only `disabled` can be honoured (spec §3.7).
pub fn authentication_mode(mode: &str) -> Result<(), String> {
    match mode {
        "disabled" => Ok(()),
        "required" | "test-always-fail" => Err(format!(
            "authentication mode {mode} (mutual authentication) is not enforced by l7gate: \
             remove authentication or set mode: disabled"
        )),
        _ => Err(format!(
            "invalid authentication mode {mode:?}: use disabled, required or test-always-fail"
        )),
    }
}

/// A selector key (spec §2.1): optional `source:` prefix, then a Kubernetes qualified name.
/// `$host` is the short form of `reserved:host`. Returns the key to store.
pub fn label_key(key: &str) -> Result<String, String> {
    let (key, source, name) = match key.strip_prefix('$') {
        Some(name) => (format!("reserved:{name}"), Some("reserved"), name),
        None => match key.split_once(':') {
            Some((source, name)) => (key.to_string(), Some(source), name),
            None => (key.to_string(), None, key),
        },
    };
    if let Some(source) = source {
        if source.is_empty()
            || !source.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "invalid label key {key:?}: the source before ':' must be a word such as k8s, \
                 reserved or any"
            ));
        }
    }
    qualified_name(name).map_err(|why| format!("invalid label key {key:?}: {why}"))?;
    Ok(key)
}

/// Kubernetes qualified name: `[prefix/]name`, prefix a DNS subdomain.
fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if name.is_empty() {
        return Err("the name part is empty".into());
    }
    label_name(name)?;
    if let Some(prefix) = prefix {
        if !is_dns_subdomain(prefix) {
            return Err(format!(
                "the prefix {prefix:?} must be a lower-case DNS subdomain of at most \
                 {MAX_LABEL_PREFIX_LEN} characters, e.g. app.kubernetes.io"
            ));
        }
    }
    Ok(())
}

/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, at most 63 characters.
fn label_name(s: &str) -> Result<(), String> {
    let edge_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    if s.len() > MAX_LABEL_LEN
        || !s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || !edge_ok(s.chars().next())
        || !edge_ok(s.chars().last())
    {
        return Err(format!(
            "must be at most {MAX_LABEL_LEN} characters of letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn is_dns_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !s.is_empty() && s.len() <= MAX_LABEL_PREFIX_LEN && s.split('.').all(label_ok)
}

/// A label value (spec §2.2).
pub fn label_value(value: &str) -> Result<(), String> {
    label_name(value).map_err(|why| format!("invalid label value {value:?}: {why}"))
}

/// `matchExpressions[].operator` (case-sensitive).
pub fn operator(op: &str) -> Result<Operator, String> {
    match op {
        "In" => Ok(Operator::In),
        "NotIn" => Ok(Operator::NotIn),
        "Exists" => Ok(Operator::Exists),
        "DoesNotExist" => Ok(Operator::DoesNotExist),
        _ => Err(format!("invalid operator {op:?}: use In, NotIn, Exists or DoesNotExist")),
    }
}

/// `In`/`NotIn` need values, `Exists`/`DoesNotExist` must not have any (spec §2.2).
pub fn requirement_values(op: Operator, count: usize) -> Result<(), String> {
    match (op, count) {
        (Operator::In | Operator::NotIn, 0) => Err(format!(
            "operator {op:?} needs a non-empty values list: add the label values to match"
        )),
        (Operator::Exists | Operator::DoesNotExist, 1..) => {
            Err(format!("operator {op:?} must not have values: remove values"))
        }
        _ => Ok(()),
    }
}

/// An entity name (spec §2.4).
pub fn entity(name: &str) -> Result<Entity, String> {
    if let Some(entity) = Entity::parse(name) {
        return Ok(entity);
    }
    Err(match name {
        "world-ipv4" | "world-ipv6" => format!(
            "entity {name} is not accepted by the CiliumNetworkPolicy CRD: use world, or a \
             toCIDR/fromCIDR of 0.0.0.0/0 or ::/0"
        ),
        _ => format!("unsupported entity: {name}: use one of {ENTITIES}"),
    })
}

/// A prefix of `fromCIDR`/`toCIDR`/`cidr`/`except` (spec §3.4).
/// An IPv4-mapped IPv6 prefix (`::ffff:10.0.0.0/104`) is refused: Cilium matches it against IPv6
/// packets only, which never carry an IPv4 peer, while l7gate reads a mapped peer address as the
/// IPv4 address it is; either way the rule would look effective and match nothing.
pub fn cidr(s: &str) -> Result<Cidr, String> {
    let cidr = Cidr::parse(s).map_err(|why| format!("unable to parse CIDR: {why}"))?;
    let mapped = match cidr.addr() {
        std::net::IpAddr::V6(v6) if cidr.prefix_len() >= 96 => v6.to_ipv4_mapped(),
        _ => None,
    };
    match mapped {
        Some(v4) => Err(format!(
            "{s:?} is an IPv4-mapped IPv6 prefix, which matches no peer (IPv4 peers are matched \
             as IPv4): write the IPv4 prefix {v4}/{}",
            cidr.prefix_len() - 96
        )),
        None => Ok(cidr),
    }
}

/// An `except` entry must lie inside its `cidr` and be of the same family (spec §3.4).
pub fn except(cidr: &Cidr, except: &Cidr) -> Result<(), String> {
    if cidr.contains(except) {
        return Ok(());
    }
    Err(format!(
        "allow CIDR prefix {cidr} does not contain exclude CIDR prefix {except}: write an except \
         prefix inside {cidr}, of the same IP family"
    ))
}

/// `matchName` (spec §6.2): `[-a-zA-Z0-9_.]`, no leading dot, no empty label, ≤255 characters.
pub fn match_name(name: &str) -> Result<(), String> {
    fqdn_syntax(name, "").map_err(|why| format!("invalid matchName {name:?}: {why}"))
}

/// `matchPattern` (spec §6.2): like a name plus `*`; trimmed of spaces. Returns the trimmed pattern.
pub fn match_pattern(pattern: &str) -> Result<String, String> {
    let trimmed = pattern.trim();
    fqdn_syntax(trimmed, "*").map_err(|why| format!("invalid matchPattern {pattern:?}: {why}"))?;
    Ok(trimmed.to_string())
}

/// `headerMatches[].mismatch` (spec §5.5), case-sensitive as Cilium's CRD enum.
pub fn mismatch(action: &str) -> Result<Mismatch, String> {
    match action {
        "LOG" => Ok(Mismatch::Log),
        "ADD" => Ok(Mismatch::Add),
        "DELETE" => Ok(Mismatch::Delete),
        "REPLACE" => Ok(Mismatch::Replace),
        _ => Err(format!("Invalid header action: {action}: write LOG, ADD, DELETE or REPLACE")),
    }
}

/// A `serverNames` entry (spec §3.8; Cilium 1.19's CRD pattern): a DNS name, optionally after
/// `*.` (one more label) or `**.` (one or more); lower-cased.
pub fn server_name(name: &str) -> Result<String, String> {
    let why = |why: &str| Err(format!("invalid server name {name:?}: {why}"));
    if name.is_empty() {
        return Err("empty server name is not allowed: remove the entry".into());
    }
    if name.ends_with('.') {
        return why("write it without the trailing dot (cilium-envoy rejects it)");
    }
    let body = name.strip_prefix("**.").or_else(|| name.strip_prefix("*.")).unwrap_or(name);
    let label = |l: &str| {
        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > MAX_FQDN_LEN {
        return why(&format!("Must be <= {MAX_FQDN_LEN} characters long"));
    }
    if !body.split('.').all(label) {
        return why(
            "write a DNS name, optionally starting with *. (one more label) or **. (one or more \
             labels); a * anywhere else is not a serverNames pattern",
        );
    }
    Ok(name.to_ascii_lowercase())
}

fn fqdn_syntax(s: &str, extra: &str) -> Result<(), String> {
    if s.len() > MAX_FQDN_LEN {
        return Err(format!("Must be <= {MAX_FQDN_LEN} characters long"));
    }
    if let Some(bad) =
        s.chars().find(|&c| !(c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(c)))
    {
        let hint = if bad == '*' { " (use matchPattern for wildcards)" } else { "" };
        return Err(format!("Invalid characters: {bad:?} is not allowed{hint}"));
    }
    if s.is_empty() || s.starts_with('.') || s.contains("..") {
        return Err("write dot-separated non-empty labels, e.g. api.example.com".into());
    }
    Ok(())
}

/// `toPorts[].ports[].port` (spec §3.8): a 16-bit number or an IANA service name (lower-cased).
pub fn port(s: &str) -> Result<Port, String> {
    if s.is_empty() {
        return Err(
            "port must be specified: write a number such as \"8080\" or a named port".into()
        );
    }
    if is_service_name(s) {
        return Ok(Port::Named(s.to_ascii_lowercase()));
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        if s.len() > 1 && s.starts_with('0') {
            return Err(format!(
                "unable to parse port {s:?}: Cilium reads a leading 0 as octal; write the port \
                 without leading zeros"
            ));
        }
        if let Ok(n) = s.parse::<u16>() {
            return Ok(Port::Number(n));
        }
    }
    Err(format!(
        "unable to parse port {s:?}: write a number from 0 to 65535, or a named port (1 to 15 \
         letters, digits and single inner dashes, with at least one letter)"
    ))
}

/// IANA service name (RFC 6335): 1–15 chars, letters/digits/non-consecutive inner dashes, ≥1 letter.
fn is_service_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// `endPort` (spec §3.8): ignored for named ports; `0` or `<= port` mean no range, except that
/// `0 < endPort < port` is refused (cilium-envoy rejects inverted ranges).
pub fn end_port(port: &Port, end: i64) -> Result<Option<u16>, String> {
    let end = u16::try_from(end)
        .map_err(|_| format!("endPort {end} is out of range: write a number from 0 to 65535"))?;
    match *port {
        Port::Named(_) => Ok(None),
        Port::Number(start) if end != 0 && end < start => Err(format!(
            "endPort {end} is below port {start}: write an endPort above the port, or remove it"
        )),
        Port::Number(start) => Ok((end > start).then_some(end)),
    }
}

/// `protocol` (spec §3.8): the CRD enum is case-sensitive.
pub fn protocol(s: &str) -> Result<L4Protocol, String> {
    match s {
        "TCP" => Ok(L4Protocol::Tcp),
        "UDP" => Ok(L4Protocol::Udp),
        "SCTP" => Ok(L4Protocol::Sctp),
        "ANY" => Ok(L4Protocol::Any),
        _ => {
            let upper = s.to_ascii_uppercase();
            let hint = match upper.as_str() {
                "TCP" | "UDP" | "SCTP" | "ANY" => {
                    format!("protocols are upper-case: write {upper}")
                }
                "ICMP" | "ICMPV6" => {
                    "ICMP is written with icmps, which l7gate does not enforce".into()
                }
                _ => "use TCP, UDP, SCTP or ANY".into(),
            };
            Err(format!("invalid protocol {s:?}: {hint}"))
        }
    }
}

/// The L7 protocol of a `rules` block with at least one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L7Kind {
    Http,
    Dns,
}

/// Cilium's per-port checks of a port rule that carries L7 rules (spec §3.8).
pub fn l7_port(pp: &PortProtocol, kind: L7Kind) -> Result<(), String> {
    if pp.port == Port::Number(0) {
        return Err(
            "L7 rules can not be used when a port is 0: list the ports the rules apply to".into()
        );
    }
    match kind {
        L7Kind::Http if pp.protocol != L4Protocol::Tcp => Err(format!(
            "L7 rules can only apply to TCP (not {}) except for DNS rules: add protocol: TCP \
             (an omitted protocol means ANY)",
            protocol_name(pp.protocol)
        )),
        L7Kind::Dns if pp.end_port.is_some() => {
            Err("DNS rules do not support port ranges: remove endPort".into())
        }
        _ => Ok(()),
    }
}

fn protocol_name(p: L4Protocol) -> &'static str {
    match p {
        L4Protocol::Tcp => "TCP",
        L4Protocol::Udp => "UDP",
        L4Protocol::Sctp => "SCTP",
        L4Protocol::Any => "ANY",
    }
}

/// An HTTP `method`/`path`/`host` regex (spec §5.2): RE2 syntax, matched against the whole value.
/// It must compile on its own (as Cilium checks it) and anchored (as the filter runs it).
/// Its per-request cost is bounded too ([`MAX_OPEN_REPETITIONS`]).
pub fn regex(pattern: &str) -> Result<(), String> {
    Regex::new(pattern)
        .map_err(|e| format!("invalid regex {pattern:?}: {e}"))
        .and_then(|_| full_match_regex(pattern).map(drop))
        .map_err(|e| {
            if e.contains("size limit") {
                // The regex engine's own program-size limit (10 MiB, the filter's too).
                format!(
                    "{e}: counted repetitions multiply (x{{100}}{{100}} is 10,000 copies of x); \
                     use fewer or smaller {{n}}, or .* where the count does not matter"
                )
            } else {
                format!(
                    "{e}: write an RE2 pattern (it must match the whole value; escape literal \
                     characters such as . ( ) with \\)"
                )
            }
        })?;
    match open_repetitions(pattern) {
        n if n > MAX_OPEN_REPETITIONS => Err(format!(
            "regex {pattern:?} has {n} unbounded repetitions (*, +, {{n,}}) once counted \
             repetitions are expanded; more than {MAX_OPEN_REPETITIONS} make every request cost \
             milliseconds on a long path (each can keep a match attempt alive per input byte): \
             use fewer .* and no .* inside {{n}}"
        )),
        _ => Ok(()),
    }
}

/// The most unbounded repetitions an HTTP regex may have, counted with the multiplicity of the
/// counted repetitions around them. The filter's regex engine runs in time proportional to the
/// input times the match attempts alive at once, and each unbounded repetition of a broad class
/// can keep one alive for the rest of the input: measured natively on a 60 KB path (Envoy's
/// default header limit), about 1.5 ms each (`(.*a){25}`: 39 ms; `/api/.*/x/.*`: 2 of them).
pub const MAX_OPEN_REPETITIONS: u64 = 6;

/// [`MAX_OPEN_REPETITIONS`]'s measure of `pattern`; 0 when the syntax parser does not read the
/// pattern (the regex engine, which accepted it, is the authority on syntax).
fn open_repetitions(pattern: &str) -> u64 {
    use regex_syntax::hir::{Hir, HirKind};
    fn count(hir: &Hir, times: u64) -> u64 {
        match hir.kind() {
            HirKind::Repetition(r) => {
                let own = if r.max.is_none() { times } else { 0 };
                let inner = times.saturating_mul(u64::from(r.max.unwrap_or(r.min).max(1)));
                own.saturating_add(count(&r.sub, inner))
            }
            HirKind::Capture(c) => count(&c.sub, times),
            HirKind::Concat(all) | HirKind::Alternation(all) => {
                all.iter().fold(0, |n, h| n.saturating_add(count(h, times)))
            }
            HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => 0,
        }
    }
    // Structure is what counts: ASCII classes and bytes read every pattern without Unicode tables.
    let mut parser = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .nest_limit(MAX_REGEX_NESTING)
        .build();
    parser.parse(pattern).map(|hir| count(&hir, 1)).unwrap_or(0)
}

/// How deep groups and repetitions may nest in a regex (the syntax parser's own guard).
const MAX_REGEX_NESTING: u32 = 100;

/// `log.value` (spec §1.2): at most 32 printable characters.
pub fn log_value(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_LOG_LEN {
        return Err(format!(
            "log value {value:?} is longer than {MAX_LOG_LEN} characters: shorten it"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("log value {value:?} contains non-printable characters: remove them"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(port: u16, protocol: L4Protocol, end_port: Option<u16>) -> PortProtocol {
        PortProtocol { port: Port::Number(port), end_port, protocol }
    }

    #[test]
    fn label_keys() {
        // spec §2.1: source prefixes, `$host` as reserved:host, Kubernetes qualified names.
        assert_eq!(label_key("app").as_deref(), Ok("app"));
        assert_eq!(label_key("k8s:app").as_deref(), Ok("k8s:app"));
        assert_eq!(label_key("$host").as_deref(), Ok("reserved:host"));
        assert_eq!(label_key("app.kubernetes.io/name").as_deref(), Ok("app.kubernetes.io/name"));
        assert_eq!(
            label_key("k8s:io.cilium.k8s.namespace.labels.team").as_deref(),
            Ok("k8s:io.cilium.k8s.namespace.labels.team")
        );
        for bad in ["", "-app", "app-", ":app", "k8s:", "Bad_Prefix/app", "a/b/c", &"x".repeat(64)]
        {
            assert!(label_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn label_values() {
        // spec §2.2: ≤63 chars, (([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?
        for ok in ["", "a", "frontend-app", "v1.2_3"] {
            assert_eq!(label_value(ok), Ok(()), "{ok:?}");
        }
        for bad in ["-a", "a-", "a b", "ä", &"x".repeat(64)] {
            assert!(label_value(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn operators_and_values() {
        // spec §2.2: In/NotIn need values, Exists/DoesNotExist must have none; case-sensitive.
        assert_eq!(operator("NotIn"), Ok(Operator::NotIn));
        assert!(operator("in").is_err());
        assert!(requirement_values(Operator::In, 0).is_err());
        assert!(requirement_values(Operator::Exists, 1).is_err());
        assert_eq!(requirement_values(Operator::DoesNotExist, 0), Ok(()));
    }

    #[test]
    fn entities() {
        // spec §2.4: world-ipv4/world-ipv6 are not in the CRD enum; unknown names are refused.
        assert_eq!(entity("remote-node"), Ok(Entity::RemoteNode));
        assert!(entity("world-ipv4").unwrap_err().contains("CRD"));
        assert!(entity("everything").unwrap_err().starts_with("unsupported entity: everything"));
    }

    #[test]
    fn cidrs_and_excepts() {
        // spec §3.4: prefix form required; except inside cidr and of the same family.
        let net = cidr("10.0.0.0/8").unwrap();
        assert!(cidr("10.0.0.1").is_err());
        let mapped = cidr("::ffff:127.0.0.0/104").unwrap_err();
        assert!(mapped.contains("write the IPv4 prefix 127.0.0.0/8"), "{mapped}");
        assert!(cidr("::ffff:0:0/96").is_err());
        assert!(cidr("::/0").is_ok(), "an IPv6 prefix around the mapped range is plain IPv6");
        assert_eq!(except(&net, &cidr("10.1.0.0/16").unwrap()), Ok(()));
        assert!(except(&net, &cidr("11.0.0.0/16").unwrap())
            .unwrap_err()
            .contains("does not contain"));
        assert!(except(&net, &cidr("fd00::/64").unwrap()).is_err());
    }

    #[test]
    fn fqdn_names_and_patterns() {
        // spec §6.2: character sets, no empty labels, 255 characters.
        assert_eq!(match_name("api.example.com."), Ok(()));
        assert!(match_name("*.example.com").unwrap_err().contains("use matchPattern"));
        assert!(match_name(".example.com").is_err());
        assert!(match_name("a..b").is_err());
        assert!(match_name("").is_err());
        assert_eq!(match_pattern(" *.example.com ").as_deref(), Ok("*.example.com"));
        assert_eq!(match_pattern("**.example.com").as_deref(), Ok("**.example.com"));
        assert!(match_pattern("exa$mple.com").unwrap_err().contains("Invalid characters"));
        assert!(match_pattern(&"a".repeat(256)).unwrap_err().contains("<= 255"));
    }

    #[test]
    fn ports() {
        // spec §3.8: numbers, IANA service names (lower-cased), empty and garbage refused.
        assert_eq!(port("8080"), Ok(Port::Number(8080)));
        assert_eq!(port("0"), Ok(Port::Number(0)));
        assert_eq!(port("HTTP-alt"), Ok(Port::Named("http-alt".into())));
        assert!(port("").unwrap_err().starts_with("port must be specified"));
        for bad in ["65536", "080", "a--b", "-http", "this-name-is-too-long", "80/tcp", "8 0"] {
            assert!(port(bad).unwrap_err().contains("unable to parse port"), "{bad:?}");
        }
    }

    #[test]
    fn end_ports() {
        // spec §3.8: 0 < endPort < port refused; endPort <= port means no range; named ports ignore it.
        let p = Port::Number(8080);
        assert_eq!(end_port(&p, 0), Ok(None));
        assert_eq!(end_port(&p, 8080), Ok(None));
        assert_eq!(end_port(&p, 8090), Ok(Some(8090)));
        assert!(end_port(&p, 80).unwrap_err().contains("below port"));
        assert!(end_port(&p, 70000).is_err());
        assert_eq!(end_port(&Port::Named("http".into()), 9000), Ok(None));
    }

    #[test]
    fn protocols() {
        // spec §3.8: the CRD enum is case-sensitive.
        assert_eq!(protocol("SCTP"), Ok(L4Protocol::Sctp));
        assert!(protocol("tcp").unwrap_err().contains("write TCP"));
        assert!(protocol("ICMP").unwrap_err().contains("icmps"));
    }

    #[test]
    fn l7_ports() {
        // spec §3.8: L7 rules need TCP (omitted = ANY), never port 0; DNS takes no ranges.
        assert_eq!(l7_port(&num(80, L4Protocol::Tcp, Some(90)), L7Kind::Http), Ok(()));
        assert!(l7_port(&num(80, L4Protocol::Any, None), L7Kind::Http)
            .unwrap_err()
            .contains("not ANY"));
        assert!(l7_port(&num(0, L4Protocol::Tcp, None), L7Kind::Http)
            .unwrap_err()
            .contains("port is 0"));
        assert_eq!(l7_port(&num(53, L4Protocol::Any, None), L7Kind::Dns), Ok(()));
        assert!(l7_port(&num(53, L4Protocol::Udp, Some(60)), L7Kind::Dns)
            .unwrap_err()
            .contains("ranges"));
    }

    #[test]
    fn regexes() {
        // spec §5.2: RE2 syntax, compiled on its own and anchored.
        assert_eq!(regex("/api/.*"), Ok(()));
        assert_eq!(regex("GET|HEAD"), Ok(()));
        assert!(regex("(").unwrap_err().starts_with("invalid regex \"(\": "));
        assert!(regex("a)|(b").is_err(), "must not be accepted only thanks to the wrapper");
        assert!(regex(r"\p{Greek}").is_err(), "regex-lite lacks Unicode classes");
        // Per-request cost: unbounded repetitions, counted repetitions expanded.
        assert_eq!(open_repetitions("/api/inventory/.*"), 1);
        assert_eq!(open_repetitions("(.*a){25}"), 25);
        assert_eq!(open_repetitions("(.*){20}b"), 20);
        assert_eq!(open_repetitions("(a*)*b"), 2);
        assert_eq!(open_repetitions("/items/[0-9]{1,8}"), 0);
        assert_eq!(open_repetitions("(\\w*a){9}/caf\u{e9}"), 9, "classes and non-ASCII parse too");
        assert_eq!(regex("/api/.*/v1/.*/items/.*"), Ok(()));
        for slow in ["(.*a){25}", "(.*){20}b", "(.*/){7}x", ".*.*.*.*.*.*.*"] {
            let e = regex(slow).unwrap_err();
            assert!(
                e.contains("unbounded repetitions") && e.contains("more than 6"),
                "{slow}: {e}"
            );
        }
    }

    #[test]
    fn log_values() {
        // spec §1.2: at most 32 printable characters.
        assert_eq!(log_value("checkout-allow"), Ok(()));
        assert!(log_value(&"x".repeat(33)).is_err());
        assert!(log_value("a\tb").is_err());
    }

    #[test]
    fn authentication_modes() {
        // spec §3.7: only mode disabled can be honoured.
        assert_eq!(authentication_mode("disabled"), Ok(()));
        assert!(authentication_mode("required").unwrap_err().contains("not enforced"));
        assert!(authentication_mode("on").unwrap_err().contains("invalid"));
    }
}
