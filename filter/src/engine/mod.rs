//! The policy engine: `Engine::compile` turns a [`Config`] into indexed, precompiled rules once
//! (at configure time); `Engine::decide` evaluates one connection or request (spec §4.4) with a
//! segment lookup and a hash lookup that yield the merged deny / L3-L4 allow / HTTP outcome of
//! every rule for that port and peer, then runs only the HTTP matchers whose path literal the
//! request's path starts with. Attribution goes to the first qualifying rule in config order.

mod http;
mod index;
mod ipcache;
mod l7set;
mod pattern;
mod verdict;

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use crate::config::{Action, Config, EndpointRef, Identity, Origin, Peers, Protocol, Rule};
use crate::fqdn::NameMatcher;

pub use http::Headers;
pub use pattern::full_match_regex;
pub use verdict::{Direction, Reason, Verdict};

use http::{HttpMatcher, RequestLine};
use index::{DirectionIndex, Elements, Side};
use ipcache::IpCache;
use l7set::{first_match, Element};

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
    /// Its HTTP elements in [`CompiledDirection::elements`]; `None`: no L7 restriction.
    http: Option<Range<u32>>,
}

#[derive(Debug, Clone)]
struct CompiledDirection {
    enforced: bool,
    rules: Vec<CompiledRule>,
    /// Every rule's HTTP elements, in configuration order.
    elements: Vec<Element>,
    index: DirectionIndex,
}

impl CompiledDirection {
    fn origin(&self, rule: u32) -> Option<&Origin> {
        self.rules.get(rule as usize).map(|r| &r.origin)
    }

    /// Name-selected (toFQDNs) rules of the segment that select the request's server name.
    fn by_name<'a>(&'a self, ids: &'a [u32], name: Option<&'a str>) -> impl Iterator<Item = (u32, &'a CompiledRule)> + 'a {
        ids.iter()
            .filter_map(|i| self.rules.get(*i as usize).map(|r| (*i, r)))
            .filter(move |(_, r)| name.is_some_and(|n| r.names.iter().any(|m| m.matches(n))))
    }
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
        let sides = [Some(&segment.any), segment.by_identity.get(&req.peer)];
        let sides = sides.iter().flatten();
        let lowest = |a: Option<u32>, b: Option<u32>| a.into_iter().chain(b).min();

        // spec §4.2: deny wins over any allow (toFQDNs rules are never deny rules).
        if let Some(deny) = sides.clone().filter_map(|s| s.deny).min() {
            return Verdict::deny(Reason::DenyRule, direction.origin(deny));
        }
        // spec §4.3 items 2-4: any allowing rule without HTTP rules allows every request.
        let named = || direction.by_name(&segment.by_name, req.server_name);
        let allow_l4 = lowest(sides.clone().filter_map(|s| s.allow_l4).min(), named().find(|(_, r)| r.http.is_none()).map(|(i, _)| i));
        if let Some(allow) = allow_l4 {
            return Verdict::allow(Reason::AllowedL3L4, direction.origin(allow));
        }
        let l7_sets = sides.filter_map(|s: &&Side| s.l7.as_ref());
        let first_l7 = lowest(l7_sets.clone().map(|s| s.first_rule).min(), named().map(|(i, _)| i).next());
        let Some(first_l7) = first_l7 else {
            return Verdict::deny(Reason::NoAllowRule, None);
        };
        let Some(headers) = headers else {
            return Verdict::deny(Reason::L7NotMatched, direction.origin(first_l7));
        };
        // spec §5.1: one matching element of any candidate rule allows.
        let line = RequestLine::new(headers);
        let mut best = None;
        for set in l7_sets {
            set.best_match(&line, &direction.elements, &mut best);
        }
        for (_, rule) in named() {
            first_match(rule.http.clone().into_iter().flatten(), &line, &direction.elements, &mut best);
        }
        match best.and_then(|b| direction.elements.get(b as usize)) {
            Some(e) => Verdict::allow(Reason::AllowedL7 { http_rule: e.index }, direction.origin(e.rule)),
            None => Verdict::deny(Reason::L7NotMatched, direction.origin(first_l7)),
        }
    }
}

fn compile_direction(name: &str, enforced: bool, rules: &[Rule]) -> Result<CompiledDirection, String> {
    let mut compiled = Vec::with_capacity(rules.len());
    let mut elements = Vec::new();
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
        let rule_index = u32::try_from(i).map_err(|_| context("too many rules".into()))?;
        let http = match &rule.http {
            None => None,
            Some(list) => {
                let start = elements.len();
                for (index, http) in list.iter().enumerate() {
                    let matcher = HttpMatcher::compile(http).map_err(context)?;
                    elements.push(Element { rule: rule_index, index, matcher });
                }
                let range = |n: usize| u32::try_from(n).map_err(|_| context("too many HTTP rules".into()));
                Some(range(start)?..range(elements.len())?)
            }
        };
        compiled.push(CompiledRule { origin: rule.origin.clone(), names, http });
    }
    let of_rule: Vec<Option<Range<u32>>> = compiled.iter().map(|r| r.http.clone()).collect();
    let index = DirectionIndex::build(rules, &Elements { all: &elements, of_rule: &of_rule });
    Ok(CompiledDirection { enforced, rules: compiled, elements, index })
}

#[cfg(test)]
mod reference;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod differential;
#[cfg(test)]
mod tests;
