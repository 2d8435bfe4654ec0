//! Audit semantics (spec §8): the enforced rules decide; what they allow but the audit view (the
//! direction resolved with the audit-mode policies) denies passes as `audit`, attributed to the
//! audit view's denial. Nothing an audit view says ever denies.

use super::fixtures::*;
use super::*;
use crate::config::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn rule(action: Action, policy: &str, peer: Identity, http: Option<&str>) -> Rule {
    Rule {
        action,
        origin: Origin {
            kind: "CiliumNetworkPolicy".into(),
            policy: policy.into(),
            rule: "spec.ingress[0]".into(),
        },
        peers: Peers::Identities(vec![peer]),
        ports: Some(vec![PortRange { protocol: Protocol::Tcp, first: 8080, last: 8080 }]),
        http: http.map(|m| vec![HttpRule { method: Some(m.into()), ..HttpRule::default() }]),
        server_names: None,
    }
}
fn view(enforced: bool, rules: Vec<Rule>) -> DirectionPolicy {
    DirectionPolicy { enforced, rules, audit: None }
}
fn engine(enforced: DirectionPolicy, audit: DirectionPolicy) -> Engine {
    let config = Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef {
            name: "inventory-api".into(),
            namespace: "default".into(),
            identity: 0,
        },
        identities: vec![],
        ipcache: vec![],
        local: vec![],
        ingress: DirectionPolicy { audit: Some(Box::new(audit)), ..enforced },
        egress: view(false, vec![]),
    };
    Engine::compile(&config).unwrap()
}
/// (label, reason@policy) of an ingress request on port 8080.
fn decide(e: &Engine, peer: Identity, req: Option<&Req>) -> (&'static str, String) {
    let request = Request {
        direction: Direction::Ingress,
        peer,
        port: 8080,
        protocol: Protocol::Tcp,
        server_name: None,
        sni: None,
    };
    let v = e.decide(&request, req.map(|r| r as &dyn Headers));
    assert_eq!(
        v.allowed,
        v.label() != "denied",
        "an audit verdict always lets the request through"
    );
    (v.label(), format!("{}@{}", v.reason.code(), v.origin.map_or("-", |o| o.policy.as_str())))
}

/// spec §8: a direction enforced only by audit policies is not enforced: it allows everything,
/// and what the audit policies' default deny would drop is `audit`, never denied.
#[test]
fn default_deny_from_audit_policies_only_audits() {
    let e = engine(
        view(false, vec![]),
        view(true, vec![rule(Action::Allow, "audit/p", FRONTEND, Some("GET"))]),
    );
    assert_eq!(
        decide(&e, FRONTEND, Some(&http("GET", "/"))),
        ("allowed", "policy-not-enforced@-".into())
    );
    assert_eq!(decide(&e, BATCH, Some(&http("GET", "/"))), ("audit", "default-deny@-".into()));
    assert_eq!(
        decide(&e, FRONTEND, Some(&http("DELETE", "/"))),
        ("audit", "denied-l7-no-rule-matched@audit/p".into())
    );
    assert_eq!(
        decide(&e, FRONTEND, None),
        ("audit", "denied-l7-no-rule-matched@audit/p".into()),
        "an L4 connection too"
    );
}

/// spec §8: an audit policy's deny rule reports what it would drop and drops nothing; what the
/// enforced rules deny stays denied, attributed to them.
#[test]
fn audit_deny_rules_let_traffic_through_and_enforced_denials_stay() {
    let allow = rule(Action::Allow, "default/p", FRONTEND, Some("GET"));
    let block = rule(Action::Deny, "audit/block", FRONTEND, None);
    let e = engine(view(true, vec![allow.clone()]), view(true, vec![allow, block]));
    assert_eq!(
        decide(&e, FRONTEND, Some(&http("GET", "/"))),
        ("audit", "denied-by-deny-rule@audit/block".into())
    );
    assert_eq!(
        decide(&e, FRONTEND, Some(&http("POST", "/"))),
        ("denied", "denied-l7-no-rule-matched@default/p".into())
    );
    assert_eq!(decide(&e, BATCH, Some(&http("GET", "/"))), ("denied", "default-deny@-".into()));
}

/// spec §8: an audit policy never allows either: the enforced rules alone decide what passes,
/// and a request both views allow is `allowed` with the enforced attribution.
#[test]
fn audit_allows_grant_nothing() {
    let get = rule(Action::Allow, "default/p", FRONTEND, Some("GET"));
    let e = engine(
        view(true, vec![get.clone()]),
        view(true, vec![get, rule(Action::Allow, "audit/batch", BATCH, None)]),
    );
    assert_eq!(decide(&e, BATCH, Some(&http("GET", "/"))), ("denied", "default-deny@-".into()));
    assert_eq!(
        decide(&e, FRONTEND, Some(&http("GET", "/"))),
        ("allowed", "allowed-l7@default/p".into())
    );
}

/// The audit view is part of the configuration contract: it is compiled (and refused) with the
/// rest, and cannot nest.
#[test]
fn audit_views_are_checked_at_compile_time() {
    let bad = Rule {
        ports: Some(vec![PortRange { protocol: Protocol::Tcp, first: 9, last: 8 }]),
        ..rule(Action::Allow, "audit/p", BATCH, None)
    };
    let config = |audit: DirectionPolicy| Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef { name: "x".into(), namespace: "default".into(), identity: 0 },
        identities: vec![],
        ipcache: vec![],
        local: vec![],
        ingress: DirectionPolicy { audit: Some(Box::new(audit)), ..view(true, vec![]) },
        egress: view(false, vec![]),
    };
    let e = Engine::compile(&config(view(true, vec![bad]))).unwrap_err();
    assert!(e.contains("ingress audit view") && e.contains("audit/p"), "{e}");
    let nested =
        DirectionPolicy { audit: Some(Box::new(view(true, vec![]))), ..view(true, vec![]) };
    assert!(Engine::compile(&config(nested)).is_err());
}
