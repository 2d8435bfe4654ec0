//! The policy engine: `Engine::compile` turns a [`Config`] into indexed, precompiled rules once
//! (at configure time); `Engine::decide` evaluates one connection or request (spec §4.4) with a
//! segment lookup and a hash lookup, then only the candidate rules for that port and peer.

mod http;
mod index;
mod ipcache;
mod verdict;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::{Action, Config, EndpointRef, Identity, Origin, Peers, Protocol, Rule};
use crate::fqdn::NameMatcher;

pub use http::{full_match_regex, Headers};
pub use verdict::{Direction, Reason, Verdict};

use http::{HttpMatcher, RequestLine};
use index::DirectionIndex;
use ipcache::IpCache;

/// What is being decided: one request (or connection) in one direction.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub direction: Direction,
    /// The peer's identity (source for ingress, destination for egress): see [`Engine::identity_of`].
    pub peer: Identity,
    pub port: u16,
    pub protocol: Protocol,
    /// The DNS name the client asked for (TLS SNI or HTTP Host), normalised with
    /// [`crate::fqdn::normalise`]; only `toFQDNs` rules look at it.
    pub server_name: Option<&'a str>,
}

/// A rule ready for evaluation.
#[derive(Debug, Clone)]
struct CompiledRule {
    origin: Origin,
    names: Vec<NameMatcher>,
    /// `None`: no L7 restriction.
    http: Option<Vec<HttpMatcher>>,
}

#[derive(Debug, Clone)]
struct CompiledDirection {
    enforced: bool,
    rules: Vec<CompiledRule>,
    index: DirectionIndex,
}

/// A compiled configuration for one endpoint.
#[derive(Debug)]
pub struct Engine {
    /// Why nothing is allowed, when there is no usable configuration (fail closed).
    unconfigured: Option<String>,
    endpoint: Option<EndpointRef>,
    ipcache: IpCache,
    names: HashMap<Identity, String>,
    ingress: Option<CompiledDirection>,
    egress: Option<CompiledDirection>,
}

impl Engine {
    /// An engine that denies everything, saying why (no or unusable configuration).
    pub fn unconfigured(reason: impl Into<String>) -> Engine {
        Engine {
            unconfigured: Some(reason.into()),
            endpoint: None,
            ipcache: IpCache::default(),
            names: HashMap::new(),
            ingress: None,
            egress: None,
        }
    }

    /// Validates and precompiles a configuration. Every regex, CIDR and name pattern is compiled
    /// here, so a config that compiles cannot fail per request.
    pub fn compile(config: &Config) -> Result<Engine, String> {
        Ok(Engine {
            unconfigured: None,
            endpoint: Some(config.endpoint.clone()),
            ipcache: IpCache::build(&config.ipcache)?,
            names: config.identities.iter().map(|i| (i.id, i.name.clone())).collect(),
            ingress: Some(compile_direction("ingress", config.ingress.enforced, &config.ingress.rules)?),
            egress: Some(compile_direction("egress", config.egress.enforced, &config.egress.rules)?),
        })
    }

    pub fn endpoint(&self) -> Option<&EndpointRef> {
        self.endpoint.as_ref()
    }

    /// The identity of a peer address (longest-prefix match; unknown → world).
    pub fn identity_of(&self, addr: IpAddr) -> Identity {
        self.ipcache.lookup(addr)
    }

    /// A readable name for an identity, for logs and traces.
    pub fn identity_name(&self, id: Identity) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("identity {id}"))
    }

    /// Number of rules per direction (ingress, egress).
    pub fn rule_counts(&self) -> (usize, usize) {
        let count = |d: &Option<CompiledDirection>| d.as_ref().map_or(0, |d| d.rules.len());
        (count(&self.ingress), count(&self.egress))
    }

    /// Decides a request (spec §4.4). `headers` is read only when an HTTP rule must be checked,
    /// and then only the fields the candidate rules name. Pass `None` for a connection that is
    /// not HTTP (L3/L4 only): rules with HTTP rules then do not allow it.
    pub fn decide<'e>(&'e self, req: &Request<'_>, headers: Option<&dyn Headers>) -> Verdict<'e> {
        if let Some(reason) = &self.unconfigured {
            return Verdict::deny(Reason::Unconfigured(reason.clone()), None);
        }
        let direction = match req.direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        };
        let Some(direction) = direction else {
            return Verdict::deny(Reason::Unconfigured("no rules compiled".into()), None);
        };
        if !direction.enforced {
            return Verdict::allow(Reason::NotEnforced, None);
        }
        let Some(segment) = direction.index.lookup(req.protocol, req.port) else {
            return Verdict::deny(Reason::NoAllowRule, None);
        };
        let rule = |i: u32| direction.rules.get(i as usize);
        let by_name = |i: &u32| {
            rule(*i).is_some_and(|r| req.server_name.is_some_and(|n| r.names.iter().any(|m| m.matches(n))))
        };
        let candidates = |side: &'e index::PeerIndex| {
            side.for_identity(req.peer).chain(side.by_name.iter().filter(|i| by_name(i)).copied()).filter_map(rule)
        };

        // spec §4.2: deny wins over any allow.
        if let Some(deny) = candidates(&segment.deny).next() {
            return Verdict::deny(Reason::DenyRule, Some(&deny.origin));
        }
        // spec §4.3 items 2-4: any allowing rule without HTTP rules allows every request.
        let mut first_l7 = None;
        for allow in candidates(&segment.allow) {
            match &allow.http {
                None => return Verdict::allow(Reason::AllowedL3L4, Some(&allow.origin)),
                Some(_) => first_l7 = first_l7.or(Some(allow)),
            }
        }
        let Some(first_l7) = first_l7 else {
            return Verdict::deny(Reason::NoAllowRule, None);
        };
        let Some(headers) = headers else {
            return Verdict::deny(Reason::L7NotMatched, Some(&first_l7.origin));
        };
        // spec §5.1: one matching element of any candidate rule allows.
        let line = RequestLine::read(headers);
        for allow in candidates(&segment.allow) {
            for (i, m) in allow.http.iter().flatten().enumerate() {
                if m.matches(&line, headers) {
                    return Verdict::allow(Reason::AllowedL7 { http_rule: i }, Some(&allow.origin));
                }
            }
        }
        Verdict::deny(Reason::L7NotMatched, Some(&first_l7.origin))
    }
}

fn compile_direction(name: &str, enforced: bool, rules: &[Rule]) -> Result<CompiledDirection, String> {
    let mut compiled = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let context = |e: String| format!("{name} rule {i} ({} {}): {e}", rule.origin.policy, rule.origin.rule);
        for range in rule.ports.iter().flatten() {
            index::check_range(range).map_err(context)?;
        }
        if rule.action == Action::Deny && (rule.http.is_some() || matches!(rule.peers, Peers::Fqdns(_))) {
            return Err(context("deny rules cannot have HTTP rules or FQDN peers".into()));
        }
        let names = match &rule.peers {
            Peers::Fqdns(selectors) => selectors.iter().map(NameMatcher::compile).collect::<Result<_, _>>(),
            _ => Ok(Vec::new()),
        }
        .map_err(context)?;
        let http = match &rule.http {
            None => None,
            Some(rules) => Some(rules.iter().map(HttpMatcher::compile).collect::<Result<Vec<_>, _>>().map_err(context)?),
        };
        compiled.push(CompiledRule { origin: rule.origin.clone(), names, http });
    }
    Ok(CompiledDirection { enforced, rules: compiled, index: DirectionIndex::build(rules) })
}

#[cfg(test)]
mod tests;
