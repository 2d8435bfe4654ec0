//! The policy engine: `Engine::compile` turns a [`Config`] into indexed, precompiled rules once
//! (at configure time); `Engine::decide` evaluates one connection or request (spec §4.4) with a
//! segment lookup and a hash lookup that yield the merged deny / L3-L4 allow / HTTP outcome of
//! every rule for that port and peer, then runs only the HTTP matchers whose path literal the
//! request's path starts with. Attribution goes to the first qualifying rule in config order.
//! A direction may carry an audit view (spec §8), compiled the same way and consulted only for
//! requests the enforced rules allow: its denials become `audit` verdicts.

mod http;
mod index;
mod ipcache;
mod l7set;
mod names;
mod pathform;
mod pattern;
mod rewrite;
mod verdict;

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use crate::config::{
    is_outside, Action, Config, DirectionPolicy, EndpointRef, FqdnSelector, Identity, Origin,
    Peers, Protocol, Rule, HOST,
};
use crate::fqdn::NameMatcher;

pub use http::Headers;
pub use pattern::full_match_regex;
pub use rewrite::Rewrite;
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
    /// The TLS SNI, normalised, when the connection is TLS and sends one: rules with
    /// `serverNames` count only when it matches (`None` for plain HTTP).
    pub sni: Option<&'a str>,
}

/// A rule ready for evaluation.
#[derive(Debug, Clone)]
struct CompiledRule {
    origin: Origin,
    /// Its HTTP elements in [`CompiledDirection::elements`]; `None`: no L7 restriction.
    http: Option<Range<u32>>,
    /// Its `serverNames`; `None`: any connection, TLS or not.
    server_names: Option<Vec<NameMatcher>>,
}

#[derive(Debug, Clone)]
struct CompiledDirection {
    enforced: bool,
    rules: Vec<CompiledRule>,
    /// Every rule's HTTP elements, in configuration order.
    elements: Vec<Element>,
    index: DirectionIndex,
    /// Whether an element has header actions (spec §5.5): only then are they looked for.
    rewrites: bool,
    /// The audit view (spec §8), consulted for requests this view allows.
    audit: Option<Box<CompiledDirection>>,
}

impl CompiledDirection {
    fn origin(&self, rule: u32) -> Option<&Origin> {
        self.rules.get(rule as usize).map(|r| &r.origin)
    }

    /// The header actions of every element of these candidates whose other fields match the
    /// request (spec §5.5), in configuration order; nothing is read unless one has actions.
    fn rewrites_for<'e>(
        &'e self,
        sides: &[Option<&'e Side>],
        named: &[u32],
        headers: &dyn Headers,
    ) -> Vec<Rewrite<'e>> {
        let acting =
            |o: &u32| self.elements.get(*o as usize).is_some_and(|e| !e.matcher.actions.is_empty());
        let mut ordinals: Vec<u32> =
            sides.iter().flatten().flat_map(|s| s.rewriting.iter().copied()).collect();
        for rule in named.iter().filter_map(|i| self.rules.get(*i as usize)) {
            ordinals.extend(rule.http.clone().into_iter().flatten().filter(acting));
        }
        if ordinals.is_empty() {
            return Vec::new();
        }
        ordinals.sort_unstable();
        ordinals.dedup();
        let line = RequestLine::new(headers);
        let mut out = Vec::new();
        for e in ordinals.iter().filter_map(|o| self.elements.get(*o as usize)) {
            let Some(origin) = self.origin(e.rule) else { continue };
            if e.matcher.matches(&line) {
                out.extend(
                    e.matcher.actions.iter().filter_map(|a| a.apply(&line, origin, e.index)),
                );
            }
        }
        out
    }

    /// Whether rule `rule` counts for a connection with this SNI (spec §4.4 step 4).
    fn sni_allows(&self, rule: u32, sni: Option<&str>) -> bool {
        match self.rules.get(rule as usize).map(|r| &r.server_names) {
            Some(None) => true,
            Some(Some(names)) => sni.is_some_and(|sni| names.iter().any(|m| m.matches(sni))),
            None => false,
        }
    }
}

/// A compiled configuration for one endpoint.
#[derive(Debug)]
pub struct Engine {
    /// The compiled rules of both directions, or why nothing is allowed when there is no
    /// usable configuration (fail closed).
    directions: Result<Directions, String>,
    endpoint: Option<EndpointRef>,
    ipcache: IpCache,
    /// The endpoint's own host addresses, and the ranges declared outside ([`Config::local`]).
    local: IpCache,
    names: HashMap<Identity, String>,
}

/// The rules of a configured engine.
#[derive(Debug, Clone)]
struct Directions {
    ingress: CompiledDirection,
    egress: CompiledDirection,
}

impl Engine {
    /// An engine that denies everything, saying why (no or unusable configuration).
    pub fn unconfigured(reason: impl Into<String>) -> Engine {
        Engine {
            directions: Err(reason.into()),
            endpoint: None,
            ipcache: IpCache::default(),
            local: IpCache::default(),
            names: HashMap::new(),
        }
    }

    /// Validates and precompiles a configuration. Every regex, CIDR and name pattern is compiled
    /// here, so a config that compiles cannot fail per request.
    pub fn compile(config: &Config) -> Result<Engine, String> {
        Ok(Engine {
            directions: Ok(Directions {
                ingress: compile_direction("ingress", &config.ingress)?,
                egress: compile_direction("egress", &config.egress)?,
            }),
            endpoint: Some(config.endpoint.clone()),
            ipcache: IpCache::build(&config.ipcache)?,
            local: IpCache::build(&config.local).map_err(|e| format!("local {e}"))?,
            names: config.identities.iter().map(|i| (i.id, i.name.clone())).collect(),
        })
    }

    pub fn endpoint(&self) -> Option<&EndpointRef> {
        self.endpoint.as_ref()
    }

    /// The identity of a peer address (longest-prefix match; unknown → world).
    pub fn identity_of(&self, addr: IpAddr) -> Identity {
        self.ipcache.lookup(addr)
    }

    /// Whether an egress destination is one of the endpoint's own local addresses (loopback,
    /// unspecified, link-local; [`Config::local`]): never a destination of the egress proxy,
    /// which forwards outbound traffic only. The workload reaches its own host directly; through
    /// the proxy such an address would be the proxy's own host (its admin interface, its own
    /// listeners). An IP literal there is denied before any rule ([`Engine::decide_to`]), and a
    /// DNS answer there is dropped ([`Engine::is_outside_address`]).
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.local.lookup(addr) == HOST
    }

    /// The denial of an egress destination that is a local address, if it is one.
    fn refuse_local(&self, addr: IpAddr) -> Option<Verdict<'static>> {
        self.is_local(addr).then(|| Verdict::deny(Reason::LocalDestination, None))
    }

    /// Whether a DNS answer may be connected to for a name: an address outside the cluster
    /// (world or a CIDR identity) that is not local, never a pod's, a node's or the endpoint's
    /// own host's (spec §6.1: `toFQDNs` never selects them; Cilium's datapath would judge the
    /// address by its own identity, which the egress proxy cannot: the answer carries no port).
    pub fn is_outside_address(&self, addr: IpAddr) -> bool {
        self.directions.is_ok() && !self.is_local(addr) && is_outside(self.identity_of(addr))
    }

    /// Whether `source` may use the endpoint's egress listeners: only the endpoint itself, by
    /// its own address (identity) or from one of its own local addresses that is no other
    /// endpoint's (a caller in its network namespace). Any other process would borrow the
    /// endpoint's egress rights.
    pub fn serves_caller(&self, source: IpAddr) -> bool {
        let Some(own) = self.endpoint.as_ref().map(|e| e.identity) else { return false };
        let id = self.ipcache.lookup(source);
        id == own || (is_outside(id) && self.is_local(source))
    }

    /// A readable name for an identity, for logs and traces.
    pub fn identity_name(&self, id: Identity) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("identity {id}"))
    }

    /// Number of rules per direction (ingress, egress).
    pub fn rule_counts(&self) -> (usize, usize) {
        self.directions.as_ref().map_or((0, 0), |d| (d.ingress.rules.len(), d.egress.rules.len()))
    }

    /// Decides a request as [`Engine::decide`], given the destination's address when it is known
    /// (an IP literal; ingress requests ignore it): an egress destination in the endpoint's local
    /// ranges is refused before any rule
    /// ([`Engine::is_local`]; the `cluster` entity's `host` would otherwise allow it).
    pub fn decide_to<'e>(
        &'e self,
        req: &Request<'_>,
        addr: Option<IpAddr>,
        headers: Option<&dyn Headers>,
    ) -> Verdict<'e> {
        let local = addr.filter(|_| req.direction == Direction::Egress);
        local.and_then(|a| self.refuse_local(a)).unwrap_or_else(|| self.decide(req, headers))
    }

    /// Decides a request (spec §4.4). `headers` is read only when an HTTP rule must be checked,
    /// and then only the fields the candidate rules name. Pass `None` for a connection that is
    /// not HTTP (L3/L4 only): rules with HTTP rules then do not allow it. With an audit view
    /// (spec §8), a request the enforced rules allow but the audit view denies is let through
    /// as [`Verdict::audited`]; the audit view is consulted only for requests already allowed.
    pub fn decide<'e>(&'e self, req: &Request<'_>, headers: Option<&dyn Headers>) -> Verdict<'e> {
        let directions = match &self.directions {
            Ok(d) => d,
            Err(reason) => return Verdict::deny(Reason::Unconfigured(reason.clone()), None),
        };
        let direction = match req.direction {
            Direction::Ingress => &directions.ingress,
            Direction::Egress => &directions.egress,
        };
        let verdict = direction.decide(req, headers);
        match &direction.audit {
            Some(audit) if verdict.allowed => {
                let would = audit.decide(req, headers);
                if would.allowed {
                    verdict
                } else {
                    Verdict::audited(would, verdict.rewrites)
                }
            }
            _ => verdict,
        }
    }
}

impl CompiledDirection {
    /// This view's verdict (spec §4.4), without its audit view.
    fn decide<'e>(&'e self, req: &Request<'_>, headers: Option<&dyn Headers>) -> Verdict<'e> {
        if !self.enforced {
            return Verdict::allow(Reason::NotEnforced, None);
        }
        let Some(segment) = self.index.lookup(req.protocol, req.port) else {
            return Verdict::deny(Reason::NoAllowRule, None);
        };
        let candidates = [Some(&segment.any), segment.by_identity.get(&req.peer)];
        let sides = candidates.iter().flatten();
        let lowest = |a: Option<u32>, b: Option<u32>| a.into_iter().chain(b).min();

        // spec §4.2: deny wins over any allow (toFQDNs rules are never deny rules).
        if let Some(deny) = sides.clone().filter_map(|s| s.deny).min() {
            return Verdict::deny(Reason::DenyRule, self.origin(deny));
        }
        // spec §4.3 items 2-4: any allowing rule without HTTP rules allows every request.
        // Name-selected (toFQDNs) rules that select the request's server name, from the index.
        let named = req.server_name.map(|n| segment.by_name.matching(n)).unwrap_or_default();
        // An allowed HTTP request carries the header actions of every matching element.
        let rewritten = |mut v: Verdict<'e>| {
            if let (true, Some(h)) = (self.rewrites, headers) {
                v.rewrites = self.rewrites_for(&candidates, &named, h);
            }
            v
        };
        let named = || named.iter().filter_map(|i| self.rules.get(*i as usize).map(|r| (*i, r)));
        // spec §4.4 step 4: a rule with serverNames counts only for a matching SNI.
        let sni_rules = || sides.clone().flat_map(|s| s.sni.iter().copied());
        let named_l4 = || named().filter(|(_, r)| r.http.is_none()).map(|(i, _)| i);
        let named_l7 = || named().filter(|(_, r)| r.http.is_some()).map(|(i, _)| i);
        let allow_l4 = lowest(
            lowest(
                sides.clone().filter_map(|s| s.allow_l4).min(),
                sni_rules().filter(|i| self.sni_allows(*i, req.sni)).min(),
            ),
            named_l4().find(|i| self.sni_allows(*i, req.sni)),
        );
        if let Some(allow) = allow_l4 {
            return rewritten(Verdict::allow(Reason::AllowedL3L4, self.origin(allow)));
        }
        let refused_sni = lowest(sni_rules().min(), named_l4().next());
        let l7_sets = sides.filter_map(|s: &&Side| s.l7.as_ref());
        let first_l7 = lowest(l7_sets.clone().map(|s| s.first_rule).min(), named_l7().next());
        let Some(first_l7) = first_l7 else {
            return match refused_sni {
                Some(rule) => Verdict::deny(Reason::ServerNameNotAllowed, self.origin(rule)),
                None => Verdict::deny(Reason::NoAllowRule, None),
            };
        };
        let Some(headers) = headers else {
            return Verdict::deny(Reason::L7NotMatched, self.origin(first_l7));
        };
        let line = RequestLine::new(headers);
        if line.path().is_some_and(|p| pathform::ambiguous(p.bytes())) {
            return Verdict::deny(Reason::AmbiguousPath, self.origin(first_l7));
        }
        // spec §5.1: one matching element of any candidate rule allows.
        let mut best = None;
        for set in l7_sets {
            set.best_match(&line, &self.elements, &mut best);
        }
        for (_, rule) in named() {
            first_match(rule.http.clone().into_iter().flatten(), &line, &self.elements, &mut best);
        }
        match best.and_then(|b| self.elements.get(b as usize)) {
            Some(e) => rewritten(Verdict::allow(
                Reason::AllowedL7 { http_rule: e.index },
                self.origin(e.rule),
            )),
            None => Verdict::deny(Reason::L7NotMatched, self.origin(first_l7)),
        }
    }
}

/// Compiles a direction and its audit view, if any.
fn compile_direction(name: &str, policy: &DirectionPolicy) -> Result<CompiledDirection, String> {
    let audit = match &policy.audit {
        Some(view) if view.audit.is_some() => {
            return Err(format!("{name}: an audit view cannot have an audit view"))
        }
        Some(view) => Some(Box::new(compile_view(
            &format!("{name} audit view"),
            view.enforced,
            &view.rules,
            None,
        )?)),
        None => None,
    };
    compile_view(name, policy.enforced, &policy.rules, audit)
}

fn compile_view(
    name: &str,
    enforced: bool,
    rules: &[Rule],
    audit: Option<Box<CompiledDirection>>,
) -> Result<CompiledDirection, String> {
    let mut compiled = Vec::with_capacity(rules.len());
    let mut names_of_rule = Vec::with_capacity(rules.len());
    let mut elements = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let context = |e: String| {
            format!("{name} rule {i} ({} {}): {e}", rule.origin.policy, rule.origin.rule)
        };
        for range in rule.ports.iter().flatten() {
            index::check_range(range).map_err(context)?;
        }
        if rule.action == Action::Deny
            && (rule.http.is_some()
                || rule.server_names.is_some()
                || matches!(rule.peers, Peers::Fqdns(_)))
        {
            return Err(context(
                "deny rules cannot have HTTP rules, server names or FQDN peers".into(),
            ));
        }
        if rule.http.is_some() && rule.server_names.is_some() {
            return Err(context("a rule cannot have both HTTP rules and server names".into()));
        }
        let server_names = rule
            .server_names
            .as_ref()
            .map(|names| {
                names
                    .iter()
                    .map(|n| NameMatcher::compile(&FqdnSelector::MatchPattern(n.clone())))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(context)?;
        let names = match &rule.peers {
            Peers::Fqdns(selectors) => {
                selectors.iter().map(NameMatcher::compile).collect::<Result<_, _>>()
            }
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
                let range =
                    |n: usize| u32::try_from(n).map_err(|_| context("too many HTTP rules".into()));
                Some(range(start)?..range(elements.len())?)
            }
        };
        compiled.push(CompiledRule { origin: rule.origin.clone(), http, server_names });
        names_of_rule.push(names);
    }
    let of_rule: Vec<Option<Range<u32>>> = compiled.iter().map(|r| r.http.clone()).collect();
    let index = DirectionIndex::build(
        rules,
        &Elements { all: &elements, of_rule: &of_rule, names: &names_of_rule },
    );
    let rewrites = elements.iter().any(|e| !e.matcher.actions.is_empty());
    Ok(CompiledDirection { enforced, rules: compiled, elements, index, rewrites, audit })
}

// The reference evaluator serves the differential test, which runs natively only.
#[cfg(test)]
mod audit_tests;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod differential;
#[cfg(test)]
mod fixtures;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod reference;
#[cfg(test)]
mod tests;
