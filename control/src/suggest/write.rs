//! The text `l7gate suggest` writes: CiliumNetworkPolicy YAML with a comment on every rule
//! saying which flows it stands for and why it is as general as it is, and a `PolicyTest` of
//! the observed requests. Every scalar is written double-quoted (JSON escapes are YAML's), so
//! no recorded value can change the document's structure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{generalise, Observed, Peer, Traffic, Workload, SIBLINGS};
use crate::compile::Cluster;
use crate::flow::{Flow, Party};
use crate::identity::{qualified, NAMESPACE_LABEL};
use crate::policy_test::{API_VERSION, KIND};

/// The policies' text and counts.
pub struct Written {
    pub yaml: String,
    pub policies: usize,
    pub rules: usize,
}

/// A scalar as YAML: plain when it cannot be read as anything but this string (`app`,
/// `inventory-api`, `GET`), single-quoted when printable (regexes stay legible), else
/// double-quoted with JSON's escapes (which are YAML's).
pub(super) fn quote(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else if s.chars().all(|c| !c.is_control()) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "''".into())
    }
}

/// `n flow` or `n flows`.
fn flows(n: usize) -> String {
    if n == 1 {
        "1 flow".into()
    } else {
        format!("{n} flows")
    }
}

/// An example for a comment: one line, at most 80 characters.
fn example(s: &str) -> String {
    let line = c(s);
    match line.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Text safe inside a `#` comment: one line, no control characters.
fn c(s: &str) -> String {
    s.chars().map(|ch| if ch.is_control() { '?' } else { ch }).collect()
}

/// A DNS-1123 policy name from a workload: its naming label's value, else its labels joined.
fn base_name(w: &Workload) -> String {
    let raw: Vec<&str> = w.labels.values().map(String::as_str).collect();
    let mut name: String = raw
        .join("-")
        .to_ascii_lowercase()
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' { ch } else { '-' })
        .collect();
    name.truncate(200);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "workload".into()
    } else {
        name
    }
}

/// Every policy, in workload order; names avoid the existing policies'.
pub fn policies(
    observed: &Observed,
    flows: usize,
    mut taken: BTreeSet<(Option<String>, String)>,
) -> Written {
    let mut out = String::new();
    let (mut policies, mut rules) = (0, 0);
    for (workload, directions) in observed {
        let base = format!("{}-suggested", base_name(workload));
        let mut name = base.clone();
        for n in 2.. {
            if taken.insert((Some(workload.namespace.clone()), name.clone())) {
                break;
            }
            name = format!("{base}-{n}");
        }
        if policies > 0 {
            out.push_str("---\n");
        }
        let _ = writeln!(
            out,
            "# Suggested by `l7gate suggest` from {flows} recorded flows: what the pods selected \
             below were seen doing.\n# Review it, test it (`l7gate test`), then enforce it."
        );
        let _ = writeln!(
            out,
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: {}\n  \
             namespace: {}\nspec:\n  endpointSelector:\n    matchLabels:",
            quote(&name),
            quote(&workload.namespace)
        );
        for (k, v) in &workload.labels {
            let _ = writeln!(out, "      {}: {}", quote(k), quote(v));
        }
        for (direction, traffic) in directions {
            let _ = writeln!(out, "  {direction}:");
            rules += direction_rules(&mut out, workload, direction, traffic);
        }
        policies += 1;
    }
    Written { yaml: out, policies, rules }
}

/// The rules of one direction; returns how many.
fn direction_rules(
    out: &mut String,
    subject: &Workload,
    direction: &str,
    traffic: &BTreeMap<(Peer, u16, String), Traffic>,
) -> usize {
    let (from_to, verb) = if direction == "ingress" { ("from", "from") } else { ("to", "to") };
    let mut rules = 0;
    // Names are grouped per port into one toFQDNs rule, siblings collapsed.
    let mut names: BTreeMap<(u16, &str), Vec<(&str, &Traffic)>> = BTreeMap::new();
    for ((peer, port, protocol), t) in traffic {
        let peer_yaml = match peer {
            Peer::Name(name) => {
                names.entry((*port, protocol.as_str())).or_default().push((name, t));
                continue;
            }
            Peer::Entity(entity) => {
                let _ = writeln!(out, "  # {} {verb} the entity {}", flows(t.flows), c(entity));
                format!("  - {from_to}Entities:\n    - {}\n", quote(entity))
            }
            Peer::Workload(w) => {
                let seen: Vec<&str> = t.seen.iter().map(String::as_str).take(5).collect();
                let _ = writeln!(out, "  # {} {verb} {}", flows(t.flows), c(&seen.join(", ")));
                let mut labels = w.labels.clone();
                if w.namespace != subject.namespace {
                    labels.insert(format!("k8s:{NAMESPACE_LABEL}"), w.namespace.clone());
                }
                let mut s = format!("  - {from_to}Endpoints:\n    - matchLabels:\n");
                for (k, v) in &labels {
                    let _ = writeln!(s, "        {}: {}", quote(k), quote(v));
                }
                s
            }
        };
        out.push_str(&peer_yaml);
        ports(out, *port, protocol);
        http_rules(out, t);
        rules += 1;
    }
    for ((port, protocol), list) in names {
        let all: BTreeSet<&str> = list.iter().map(|(n, _)| *n).collect();
        let count: usize = list.iter().map(|(_, t)| t.flows).sum();
        let _ = writeln!(
            out,
            "  # {} to {} names outside the cluster (from the TLS SNI or the HTTP Host); names \
             only, no HTTP rules",
            flows(count),
            all.len()
        );
        out.push_str("  - toFQDNs:\n");
        for (pattern, covered) in collapse(&all) {
            match covered {
                Some(names) => {
                    let shown: Vec<&str> = names.iter().take(3).copied().collect();
                    let more = if names.len() > 3 { ", …" } else { "" };
                    let _ = writeln!(
                        out,
                        "    # {} sibling names seen: {}{more}",
                        names.len(),
                        c(&shown.join(", "))
                    );
                    let _ = writeln!(out, "    - matchPattern: {}", quote(&pattern));
                }
                None => {
                    let _ = writeln!(out, "    - matchName: {}", quote(&pattern));
                }
            }
        }
        ports(out, port, protocol);
        rules += 1;
    }
    rules
}

/// Names, with one-label siblings under a parent collapsed to `*.parent` once there are
/// [`SIBLINGS`] of them: (pattern, the names it stands for) or (name, None).
fn collapse<'a>(names: &BTreeSet<&'a str>) -> Vec<(String, Option<Vec<&'a str>>)> {
    let mut by_parent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in names {
        if let Some((_, parent)) = name.split_once('.').filter(|(_, p)| p.contains('.')) {
            by_parent.entry(parent).or_default().push(name);
        }
    }
    let mut out = Vec::new();
    let mut collapsed = BTreeSet::new();
    for (parent, children) in by_parent.into_iter().filter(|(_, c)| c.len() >= SIBLINGS) {
        collapsed.extend(children.iter().copied());
        out.push((format!("*.{parent}"), Some(children)));
    }
    out.extend(names.iter().filter(|n| !collapsed.contains(*n)).map(|n| (n.to_string(), None)));
    out
}

fn ports(out: &mut String, port: u16, protocol: &str) {
    let _ = writeln!(
        out,
        "    toPorts:\n    - ports:\n      - port: {}\n        protocol: {}",
        quote(&port.to_string()),
        quote(protocol)
    );
}

/// The HTTP rules of one peer and port, one per method and generalised path.
fn http_rules(out: &mut String, t: &Traffic) {
    if t.opaque > 0 || t.http.is_empty() {
        if t.opaque > 0 && !t.http.is_empty() {
            let _ = writeln!(
                out,
                "      # {} of these flows carried no HTTP request, so the port is allowed at L4",
                t.opaque
            );
        }
        return;
    }
    out.push_str("      rules:\n        http:\n");
    for (method, paths) in &t.http {
        for p in generalise(paths.iter().map(String::as_str)) {
            let examples: Vec<String> = p.examples.iter().take(2).map(|e| example(e)).collect();
            let _ = writeln!(out, "        # {}, e.g. {}", flows(p.count), examples.join(", "));
            for why in &p.why {
                let _ = writeln!(out, "        # {}", example(why));
            }
            let _ = writeln!(
                out,
                "        - method: {}\n          path: {}",
                quote(method),
                quote(&p.regex)
            );
        }
    }
}

/// A `PolicyTest` with one case per distinct observed request, each expected to be allowed.
pub fn tests(cluster: &Cluster, flows: &[&Flow]) -> String {
    let who = |p: &Party| {
        let ip = p.ip.as_deref().and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        let endpoint =
            ip.and_then(|ip| cluster.inventory.endpoints.iter().find(|e| e.ips.contains(&ip)));
        endpoint.map(qualified).or_else(|| p.ip.clone())
    };
    let mut cases: BTreeMap<String, String> = BTreeMap::new();
    for f in flows {
        let (Some(from), Some(mut to)) = (who(&f.src), who(&f.dst)) else { continue };
        let in_cluster = f.dst.ip.as_deref().is_some_and(|ip| {
            ip.parse()
                .is_ok_and(|ip| cluster.inventory.endpoints.iter().any(|e| e.ips.contains(&ip)))
        });
        let mut name_host = None;
        if f.direction == "egress" && !in_cluster {
            let name = f
                .sni
                .clone()
                .or_else(|| f.host.as_deref().and_then(l7gate_filter::fqdn::name_of_authority))
                .map(|n| n.trim_end_matches('.').to_string());
            if let Some(name) = name {
                name_host = f.host.clone();
                to = name;
            }
        }
        let mut case = format!(
            "    from: {}\n    to: {}\n    port: {}\n    at: {}\n",
            quote(&from),
            quote(&to),
            f.port,
            quote(&f.direction)
        );
        if f.protocol != "TCP" {
            let _ = writeln!(case, "    protocol: {}", quote(&f.protocol));
        }
        let title = match (&f.sni, &f.method, &f.path) {
            (Some(sni), _, _) => {
                let _ = writeln!(case, "    sni: {}", quote(sni));
                format!("{from} -> {to}:{} (TLS {sni})", f.port)
            }
            (None, Some(m), Some(p)) => {
                let _ = writeln!(case, "    method: {}\n    path: {}", quote(m), quote(p));
                if let Some(host) = name_host {
                    let _ = writeln!(case, "    host: {}", quote(&host));
                }
                if !p.is_ascii() {
                    case.push_str("    http2: true\n");
                }
                format!("{from} {m} {to}:{}{p}", f.port)
            }
            _ => format!("{from} -> {to}:{}/{}", f.port, f.protocol),
        };
        case.push_str("    expect: allow\n");
        cases.entry(format!("{title} (at {})", f.direction)).or_insert(case);
    }
    let mut out = format!(
        "# The requests `l7gate suggest` saw, each expected to be allowed by the sidecar that \
         recorded it (at):\n#   l7gate test \
         --policies DIR --endpoints FILE THIS-FILE\napiVersion: {API_VERSION}\nkind: {KIND}\n\
         metadata:\n  name: observed\nspec:\n  cases:\n"
    );
    for (title, case) in cases {
        let _ = write!(out, "  - name: {}\n{case}", quote(&title));
    }
    out
}
