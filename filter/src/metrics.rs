//! Verdict counters and configuration gauges, named so that Envoy's `stats_config.stats_tags`
//! (in `envoy/sidecar*.yaml`) turn the `.key=value` segments into Prometheus labels:
//!
//! * `l7gate.rule_verdicts.direction=D.verdict=V.policy=P.rule=R`: decisions attributed to a
//!   rule (P is `namespace/name`, the CCNP name, or `l7gate` for rules the control plane adds;
//!   R is the rule's field path, or the added rule's name);
//! * `l7gate.default_verdicts.direction=D.verdict=V.reason=C`: decisions no rule made
//!   (`policy-not-enforced`, `default-deny`, `no-configuration`, `no-address`,
//!   `denied-foreign-caller`, `denied-local-destination`);
//! * `l7gate.header_actions.direction=D.action=A.policy=P.rule=R`: header actions applied
//!   (spec §5.5; A is `LOG`, `ADD`, `DELETE` or `REPLACE`; R is the element's field path,
//!   `….rules.http[N]`);
//! * gauges `l7gate.config_hash`, `l7gate.config_generation`, `l7gate.rules.direction=D`
//!   (and `l7gate.vm_memory_bytes`, set by the glue).
//!
//! Every name is known at configure time (at most two per rule, counting the audit view's
//! rules, plus a fixed set per direction): no request value (path, address) ever becomes part of a name. Ids are resolved
//! here once per configuration; a request only looks its counter up.

use crate::fasthash::FastMap;

use crate::config::{Action, Config, DirectionPolicy, Mismatch, Origin};
use crate::engine::{Direction, Rewrite, Verdict};

/// The verdicts, in the order of [`Ids`].
const VERDICTS: [&str; 3] = ["allowed", "denied", "audit"];
/// The reason code of a denial the filter makes before the engine (no peer address or port).
pub const NO_ADDRESS: &str = "no-address";
/// Decisions without a deciding rule: (verdict, reason code).
const DEFAULTS: [(&str, &str); 7] = [
    ("allowed", "policy-not-enforced"),
    ("denied", "default-deny"),
    ("audit", "default-deny"),
    ("denied", "no-configuration"),
    ("denied", NO_ADDRESS),
    ("denied", "denied-foreign-caller"),
    ("denied", "denied-local-destination"),
];

/// Counter ids per verdict (index as in [`VERDICTS`]); `None` where the verdict cannot occur or
/// the host refused the metric.
type Ids = [Option<u32>; 3];

/// Counter ids of one rule's header actions, by (HTTP element index, action).
type ActionIds = FastMap<(usize, Mismatch), u32>;

#[derive(Debug, Default)]
struct DirectionMetrics {
    /// policy → rule → ids.
    rules: FastMap<String, FastMap<String, Ids>>,
    /// reason code → ids.
    defaults: FastMap<&'static str, Ids>,
    /// policy → rule → HTTP element index → action → id (spec §5.5).
    actions: FastMap<String, FastMap<String, ActionIds>>,
}

/// The counters of one configuration.
#[derive(Debug, Default)]
pub struct Metrics {
    ingress: DirectionMetrics,
    egress: DirectionMetrics,
}

/// Defines metrics through the host, once per name for the life of the VM.
pub trait Host {
    /// Defines (or finds) a counter; `None` if the host refuses.
    fn counter(&mut self, name: &str) -> Option<u32>;
}

impl Metrics {
    /// Defines every counter `config` can increment.
    pub fn define(config: &Config, host: &mut dyn Host) -> Metrics {
        let mut m = Metrics::defaults(host);
        define_direction(&mut m.ingress, Direction::Ingress, &config.ingress, host);
        define_direction(&mut m.egress, Direction::Egress, &config.egress, host);
        m
    }

    /// Defines the counters of decisions without a rule (all there is without a configuration).
    pub fn defaults(host: &mut dyn Host) -> Metrics {
        let mut m = Metrics::default();
        for (direction, dm) in
            [(Direction::Ingress, &mut m.ingress), (Direction::Egress, &mut m.egress)]
        {
            for (verdict, reason) in DEFAULTS {
                let name = format!("l7gate.default_verdicts.direction={direction}.verdict={verdict}.reason={reason}");
                let ids = dm.defaults.entry(reason).or_default();
                set(ids, verdict, host.counter(&name));
            }
        }
        m
    }

    /// The counter of a decision, if it has one.
    pub fn counter(&self, direction: Direction, verdict: &Verdict<'_>) -> Option<u32> {
        let dm = self.direction(direction);
        let index = VERDICTS.iter().position(|v| *v == verdict.label())?;
        let ids = match verdict.origin {
            Some(o) => {
                let (policy, rule) = labels(o);
                dm.rules.get(policy)?.get(rule)?
            }
            None => dm.defaults.get(verdict.reason.code())?,
        };
        ids.get(index).copied().flatten()
    }

    /// The counter of a header action, if it has one.
    pub fn action_counter(&self, direction: Direction, r: &Rewrite<'_>) -> Option<u32> {
        let (policy, rule) = labels(r.origin);
        let dm = self.direction(direction);
        dm.actions.get(policy)?.get(rule)?.get(&(r.http_rule, r.action)).copied()
    }

    /// The counter of a request denied before the engine could decide ([`NO_ADDRESS`]).
    pub fn no_address(&self, direction: Direction) -> Option<u32> {
        self.direction(direction)
            .defaults
            .get(NO_ADDRESS)
            .and_then(|ids| ids.get(1).copied().flatten())
    }

    fn direction(&self, direction: Direction) -> &DirectionMetrics {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// Defines the counters of every rule of `policy`: allow rules count `allowed`, and `denied`
/// when they have HTTP rules (an L7 denial names the rule whose HTTP rules were tried); deny
/// rules count `denied`. Rules of the audit view only ever attribute a would-be denial, so they
/// count `audit` where the enforced rules would count `denied`.
fn define_direction(
    dm: &mut DirectionMetrics,
    direction: Direction,
    policy: &DirectionPolicy,
    host: &mut dyn Host,
) {
    let enforced = policy.rules.iter().map(|r| (r, false));
    let audit = policy.audit.iter().flat_map(|a| a.rules.iter()).map(|r| (r, true));
    for (rule, audit) in enforced.chain(audit) {
        let can_deny = rule.action == Action::Deny || rule.http.is_some();
        let possible =
            [rule.action == Action::Allow && !audit, can_deny && !audit, can_deny && audit];
        let (p, r) = labels(&rule.origin);
        let ids = dm.rules.entry(p.to_string()).or_default().entry(r.to_string()).or_default();
        for (i, verdict) in VERDICTS.iter().enumerate() {
            if possible.get(i).copied().unwrap_or(false) && ids.get(i).copied().flatten().is_none()
            {
                let name = format!("l7gate.rule_verdicts.direction={direction}.verdict={verdict}.policy={p}.rule={r}");
                set(ids, verdict, host.counter(&name));
            }
        }
        if audit {
            continue; // the audit view's rewrites are never applied
        }
        for (index, http) in rule.http.iter().flatten().enumerate() {
            for action in http.headers.iter().filter_map(|h| h.mismatch) {
                let of_rule = dm.actions.entry(p.to_string()).or_default();
                let slots = of_rule.entry(r.to_string()).or_default();
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    slots.entry((index, action))
                {
                    let name = format!(
                        "l7gate.header_actions.direction={direction}.action={}.policy={p}.rule={r}.rules.http[{index}]",
                        action.name()
                    );
                    if let Some(id) = host.counter(&name) {
                        slot.insert(id);
                    }
                }
            }
        }
    }
}

fn set(ids: &mut Ids, verdict: &str, id: Option<u32>) {
    if let Some(slot) = VERDICTS.iter().position(|v| *v == verdict).and_then(|i| ids.get_mut(i)) {
        *slot = id;
    }
}

/// The `policy` and `rule` labels of a rule: for rules the control plane adds (kind `l7gate`,
/// whose `rule` is prose) the policy is `l7gate` and the rule its name.
fn labels(o: &Origin) -> (&str, &str) {
    if o.kind == "l7gate" {
        ("l7gate", o.policy.as_str())
    } else {
        (o.policy.as_str(), o.rule.as_str())
    }
}

/// FNV-1a (32 bit) of the configuration bytes: the `l7gate.config_hash` gauge, equal on every
/// Envoy that runs the same configuration.
pub fn config_hash(bytes: &[u8]) -> u64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    u64::from(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EndpointRef, HttpRule, Peers, PortRange, Protocol, Rule, SCHEMA_VERSION};
    use crate::engine::{Engine, Request};

    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Host for Recorder {
        fn counter(&mut self, name: &str) -> Option<u32> {
            self.0.push(name.to_string());
            u32::try_from(self.0.len() - 1).ok()
        }
    }

    fn rule(action: Action, policy: &str, path: &str, http: bool) -> Rule {
        Rule {
            action,
            origin: Origin {
                kind: "CiliumNetworkPolicy".into(),
                policy: policy.into(),
                rule: path.into(),
            },
            peers: Peers::Identities(vec![257]),
            ports: Some(vec![PortRange { protocol: Protocol::Tcp, first: 8080, last: 8080 }]),
            http: http
                .then(|| vec![HttpRule { method: Some("GET".into()), ..HttpRule::default() }]),
            server_names: None,
        }
    }

    fn config() -> Config {
        let localhost = Rule {
            action: Action::Allow,
            origin: Origin {
                kind: "l7gate".into(),
                policy: "allow-localhost".into(),
                rule: "the local node may always reach its pods".into(),
            },
            peers: Peers::Identities(vec![1]),
            ports: None,
            http: None,
            server_names: None,
        };
        let block = Rule {
            peers: Peers::Identities(vec![300]),
            ..rule(Action::Deny, "block", "spec.ingressDeny[0].toPorts[0]", false)
        };
        Config {
            version: SCHEMA_VERSION,
            endpoint: EndpointRef {
                name: "inventory-api".into(),
                namespace: "default".into(),
                identity: 0,
            },
            identities: vec![],
            ipcache: vec![crate::config::IpCacheEntry {
                cidr: "127.0.0.2/32".into(),
                identity: 257,
            }],
            local: vec![],
            ingress: DirectionPolicy {
                enforced: true,
                rules: vec![
                    rule(Action::Allow, "default/inv", "spec.ingress[0].toPorts[0]", true),
                    block,
                    localhost,
                ],
                audit: None,
            },
            egress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
        }
    }

    #[test]
    fn names_carry_labels_and_their_number_is_bounded_by_the_rules() {
        let mut host = Recorder::default();
        Metrics::define(&config(), &mut host);
        let rules: Vec<&str> = host
            .0
            .iter()
            .filter(|n| n.starts_with("l7gate.rule_verdicts"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            rules,
            [
                "l7gate.rule_verdicts.direction=ingress.verdict=allowed.policy=default/inv.rule=spec.ingress[0].toPorts[0]",
                "l7gate.rule_verdicts.direction=ingress.verdict=denied.policy=default/inv.rule=spec.ingress[0].toPorts[0]",
                "l7gate.rule_verdicts.direction=ingress.verdict=denied.policy=block.rule=spec.ingressDeny[0].toPorts[0]",
                "l7gate.rule_verdicts.direction=ingress.verdict=allowed.policy=l7gate.rule=allow-localhost",
            ]
        );
        // Five per direction for decisions without a rule, whatever the configuration.
        assert_eq!(host.0.len(), rules.len() + 2 * DEFAULTS.len());
        assert!(host
            .0
            .iter()
            .any(|n| n
                == "l7gate.default_verdicts.direction=egress.verdict=denied.reason=default-deny"));
    }

    #[test]
    fn every_verdict_the_engine_gives_has_its_counter() {
        let mut host = Recorder::default();
        let config = config();
        let metrics = Metrics::define(&config, &mut host);
        let engine = Engine::compile(&config).expect("compiles");
        let name = |v: &Verdict<'_>, d| {
            metrics.counter(d, v).and_then(|id| host.0.get(id as usize)).cloned()
        };
        let request = |peer, port| Request {
            direction: Direction::Ingress,
            peer,
            port,
            protocol: Protocol::Tcp,
            server_name: None,
            sni: None,
        };
        struct Method(&'static str);
        impl crate::engine::Headers for Method {
            fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
                let value: &[u8] = match name {
                    ":method" => self.0.as_bytes(),
                    ":path" => b"/",
                    _ => return None,
                };
                Some(value.into())
            }
        }
        let cases = [
            (request(257, 8080), Method("GET"), "verdict=allowed.policy=default/inv"),
            (request(257, 8080), Method("POST"), "verdict=denied.policy=default/inv"),
            (
                request(300, 8080),
                Method("GET"),
                "verdict=denied.policy=block.rule=spec.ingressDeny[0]",
            ),
            (request(2, 8080), Method("GET"), "verdict=denied.reason=default-deny"),
            (request(1, 9), Method("GET"), "verdict=allowed.policy=l7gate.rule=allow-localhost"),
        ];
        for (req, headers, want) in cases {
            let v = engine.decide(&req, Some(&headers));
            let got = name(&v, Direction::Ingress).unwrap_or_default();
            assert!(got.contains(want), "{v:?}: {got}");
        }
        let egress = Request { direction: Direction::Egress, ..request(2, 1) };
        let v = engine.decide(&egress, None);
        assert_eq!(name(&v, Direction::Egress).as_deref(), Some("l7gate.default_verdicts.direction=egress.verdict=allowed.reason=policy-not-enforced"));
        let unconfigured = Engine::unconfigured("none");
        let v = unconfigured.decide(&request(257, 8080), None);
        assert_eq!(
            name(&v, Direction::Ingress).as_deref(),
            Some(
                "l7gate.default_verdicts.direction=ingress.verdict=denied.reason=no-configuration"
            )
        );
        assert_eq!(
            metrics
                .no_address(Direction::Ingress)
                .and_then(|id| host.0.get(id as usize))
                .map(String::as_str),
            Some("l7gate.default_verdicts.direction=ingress.verdict=denied.reason=no-address")
        );
    }

    /// spec §8: the audit view's rules count `audit` only, and an audit verdict finds its counter
    /// (rule or default deny) while the request is let through.
    #[test]
    fn audit_verdicts_have_their_counters() {
        let mut host = Recorder::default();
        let mut config = config();
        let enforced = std::mem::replace(
            &mut config.ingress,
            DirectionPolicy { enforced: false, rules: vec![], audit: None },
        );
        config.ingress.audit = Some(Box::new(enforced));
        let metrics = Metrics::define(&config, &mut host);
        let rules: Vec<&str> = host
            .0
            .iter()
            .filter(|n| n.starts_with("l7gate.rule_verdicts"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            rules,
            [
                "l7gate.rule_verdicts.direction=ingress.verdict=audit.policy=default/inv.rule=spec.ingress[0].toPorts[0]",
                "l7gate.rule_verdicts.direction=ingress.verdict=audit.policy=block.rule=spec.ingressDeny[0].toPorts[0]",
            ]
        );
        let engine = Engine::compile(&config).expect("compiles");
        let name = |peer| {
            let v = engine.decide(
                &Request {
                    direction: Direction::Ingress,
                    peer,
                    port: 8080,
                    protocol: Protocol::Tcp,
                    server_name: None,
                    sni: None,
                },
                None,
            );
            assert!(v.allowed && v.audit, "{v:?}");
            metrics
                .counter(Direction::Ingress, &v)
                .and_then(|id| host.0.get(id as usize))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(name(300), "l7gate.rule_verdicts.direction=ingress.verdict=audit.policy=block.rule=spec.ingressDeny[0].toPorts[0]");
        assert_eq!(name(257), "l7gate.rule_verdicts.direction=ingress.verdict=audit.policy=default/inv.rule=spec.ingress[0].toPorts[0]");
        assert_eq!(
            name(2),
            "l7gate.default_verdicts.direction=ingress.verdict=audit.reason=default-deny"
        );
    }

    #[test]
    fn the_config_hash_is_fnv1a() {
        assert_eq!(config_hash(b""), 0x811c_9dc5);
        assert_eq!(config_hash(b"a"), 0xe40c_292c);
    }
}
