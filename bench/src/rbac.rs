//! The same policy as Envoy's native RBAC filter, translated from the compiled l7gate config so
//! both enforce one rule set: a DENY filter for deny rules, then an ALLOW filter (default deny)
//! with one policy per allow rule. Principals are the peers' addresses (`direct_remote_ip`: the
//! TCP peer, as l7gate's `source.address`); permissions are the ports AND any one HTTP element,
//! each element an AND of `:method`/`:path`/`:authority` full-match regexes and header matchers.

use std::collections::HashMap;

use l7gate_filter::config::{Action, Config, HttpRule, Identity, Peers, Protocol, Rule, WORLD};
use serde_json::{json, Value};

/// The two RBAC HTTP filters (deny, then allow), as Envoy bootstrap JSON.
pub fn filters(config: &Config) -> Result<Vec<Value>, String> {
    if !config.ingress.enforced || !config.egress.rules.is_empty() {
        return Err("the RBAC translation covers an enforced ingress only".into());
    }
    let mut cidrs: HashMap<Identity, Vec<Value>> = HashMap::new();
    for entry in &config.ipcache {
        let (addr, len) = entry
            .cidr
            .split_once('/')
            .ok_or_else(|| format!("bad ipcache entry {}", entry.cidr))?;
        let len: u32 = len.parse().map_err(|_| format!("bad ipcache entry {}", entry.cidr))?;
        cidrs
            .entry(entry.identity)
            .or_default()
            .push(json!({"direct_remote_ip": {"address_prefix": addr, "prefix_len": len}}));
    }
    let mut allow = serde_json::Map::new();
    let mut deny = serde_json::Map::new();
    for (i, rule) in config.ingress.rules.iter().enumerate() {
        let principals = principals(rule, &cidrs)?;
        if principals.is_empty() {
            continue; // no address has the rule's identities: it can select no peer
        }
        let policy = json!({"principals": principals, "permissions": [permission(rule)]});
        let name = format!("r{i:05}");
        match rule.action {
            Action::Allow => allow.insert(name, policy),
            Action::Deny => deny.insert(name, policy),
        };
    }
    let filter = |action: &str, policies: serde_json::Map<String, Value>| {
        json!({"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": action, "policies": policies}}})
    };
    let mut filters = Vec::new();
    if !deny.is_empty() {
        filters.push(filter("DENY", deny));
    }
    filters.push(filter("ALLOW", allow));
    Ok(filters)
}

fn principals(rule: &Rule, cidrs: &HashMap<Identity, Vec<Value>>) -> Result<Vec<Value>, String> {
    match &rule.peers {
        Peers::Any => Ok(vec![json!({"any": true})]),
        Peers::Identities(ids) => {
            let mut out = Vec::new();
            for id in ids {
                // World is every address the ipcache does not know: not a list of prefixes.
                if *id == WORLD {
                    return Err(format!(
                        "rule {}: world has no RBAC principal here",
                        rule.origin.rule
                    ));
                }
                // Any other identity the ipcache does not map is held by no address.
                out.extend(cidrs.get(id).into_iter().flatten().cloned());
            }
            Ok(out)
        }
        Peers::Fqdns(_) => Err("toFQDNs rules have no RBAC equivalent at ingress".into()),
    }
}

fn permission(rule: &Rule) -> Value {
    let ports: Vec<Value> = match &rule.ports {
        None => vec![json!({"any": true})],
        Some(ranges) => ranges
            .iter()
            .filter(|r| r.protocol == Protocol::Tcp)
            .map(|r| json!({"destination_port_range": {"start": r.first, "end": u32::from(r.last) + 1}}))
            .collect(),
    };
    let ports = json!({"or_rules": {"rules": ports}});
    match &rule.http {
        None => ports,
        Some(elements) => {
            let http: Vec<Value> = elements.iter().map(element).collect();
            json!({"and_rules": {"rules": [ports, {"or_rules": {"rules": http}}]}})
        }
    }
}

fn element(http: &HttpRule) -> Value {
    let regex = |header: &str, pattern: &Option<String>| {
        pattern.as_deref().filter(|p| !p.is_empty()).map(
            |p| json!({"header": {"name": header, "string_match": {"safe_regex": {"regex": p}}}}),
        )
    };
    let mut all: Vec<Value> = [
        regex(":method", &http.method),
        regex(":path", &http.path),
        regex(":authority", &http.host),
    ]
    .into_iter()
    .flatten()
    .collect();
    for h in &http.headers {
        all.push(match &h.value {
            None => json!({"header": {"name": h.name, "present_match": true}}),
            Some(v) => json!({"header": {"name": h.name, "string_match": {"exact": v}}}),
        });
    }
    if all.is_empty() {
        json!({"any": true})
    } else {
        json!({"and_rules": {"rules": all}})
    }
}
