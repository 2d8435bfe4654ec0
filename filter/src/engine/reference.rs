//! The reference evaluator (test only): spec §4.4 read literally, as a linear scan over the
//! configuration's rules with every regex compiled on the spot. Slow and obviously correct; the
//! differential test holds the indexed [`super::Engine`] to it. Attribution is the first
//! qualifying rule (and HTTP element) in configuration order. Audit (spec §8): the enforced
//! rules decide; a request they allow that the audit view denies is `audit`, with the audit
//! view's reason and rule.

use super::pathform::ambiguous;
use super::{Direction, Headers, Reason, Request};
use crate::config::{Action, Config, DirectionPolicy, FqdnSelector, HttpRule, Peers, Rule};
use crate::engine::full_match_regex;
use crate::fqdn::NameMatcher;

/// The verdict as (label: `allowed`/`denied`/`audit`, reason, deciding rule's `origin.rule`).
pub type Outcome = (&'static str, Reason, Option<String>);

pub fn decide(config: &Config, req: &Request<'_>, headers: Option<&dyn Headers>) -> Outcome {
    let policy = match req.direction {
        Direction::Ingress => &config.ingress,
        Direction::Egress => &config.egress,
    };
    let (allowed, reason, rule) = view(policy, req, headers);
    if !allowed {
        return ("denied", reason, rule);
    }
    match policy.audit.as_deref().map(|audit| view(audit, req, headers)) {
        Some((false, would, by)) => ("audit", would, by),
        _ => ("allowed", reason, rule),
    }
}

/// One view's verdict as (allowed, reason, rule).
fn view(
    policy: &DirectionPolicy,
    req: &Request<'_>,
    headers: Option<&dyn Headers>,
) -> (bool, Reason, Option<String>) {
    // 1. A direction no policy speaks about allows everything.
    if !policy.enforced {
        return (true, Reason::NotEnforced, None);
    }
    let origin = |r: &Rule| Some(r.origin.rule.clone());
    let selecting =
        |action: Action| policy.rules.iter().filter(move |r| r.action == action && selects(r, req));
    // 2. Deny wins.
    if let Some(deny) = selecting(Action::Deny).next() {
        return (false, Reason::DenyRule, origin(deny));
    }
    // 3. No allow rule for this peer and port: default deny.
    if selecting(Action::Allow).next().is_none() {
        return (false, Reason::NoAllowRule, None);
    }
    // 4. A rule without HTTP rules allows everything, but one with serverNames only for a TLS
    // connection with a matching SNI; otherwise one HTTP element must match.
    let l4 = || selecting(Action::Allow).filter(|r| r.http.is_none());
    if let Some(l4) = l4().find(|r| sni_matches(r, req)) {
        return (true, Reason::AllowedL3L4, origin(l4));
    }
    let Some(first) = selecting(Action::Allow).find(|r| r.http.is_some()) else {
        return (false, Reason::ServerNameNotAllowed, l4().next().and_then(origin));
    };
    let Some(headers) = headers else {
        return (false, Reason::L7NotMatched, origin(first));
    };
    // 6. A path the application could resolve elsewhere is judged by nobody.
    if headers.get(":path").is_some_and(|p| ambiguous(&p)) {
        return (false, Reason::AmbiguousPath, origin(first));
    }
    for rule in selecting(Action::Allow) {
        for (i, http) in rule.http.iter().flatten().enumerate() {
            if http_matches(http, headers) {
                return (true, Reason::AllowedL7 { http_rule: i }, origin(rule));
            }
        }
    }
    (false, Reason::L7NotMatched, origin(first))
}

fn selects(rule: &Rule, req: &Request<'_>) -> bool {
    let port = match &rule.ports {
        None => true,
        Some(ranges) => ranges
            .iter()
            .any(|p| p.protocol == req.protocol && p.first <= req.port && req.port <= p.last),
    };
    let peer = match &rule.peers {
        Peers::Any => true,
        Peers::Identities(ids) => ids.contains(&req.peer),
        Peers::Fqdns(selectors) => req.server_name.is_some_and(|name| {
            selectors.iter().any(|s| NameMatcher::compile(s).is_ok_and(|m| m.matches(name)))
        }),
    };
    port && peer
}

fn sni_matches(rule: &Rule, req: &Request<'_>) -> bool {
    match &rule.server_names {
        None => true,
        Some(names) => req.sni.is_some_and(|sni| {
            names.iter().any(|n| {
                NameMatcher::compile(&FqdnSelector::MatchPattern(n.clone()))
                    .is_ok_and(|m| m.matches(sni))
            })
        }),
    }
}

fn http_matches(rule: &HttpRule, headers: &dyn Headers) -> bool {
    let regex =
        |pattern: &Option<String>, header: &str| match pattern.as_deref().filter(|p| !p.is_empty())
        {
            None => true,
            Some(p) => headers
                .get(header)
                .and_then(|v| String::from_utf8(v.into_owned()).ok())
                .is_some_and(|v| full_match_regex(p).is_ok_and(|re| re.is_match(&v))),
        };
    regex(&rule.method, ":method")
        && regex(&rule.path, ":path")
        && regex(&rule.host, ":authority")
        && rule.headers.iter().filter(|h| h.mismatch.is_none()).all(|h| {
            match (headers.get(&h.name.to_ascii_lowercase()), &h.value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(got), Some(want)) => *got == *want.as_bytes(),
            }
        })
}
