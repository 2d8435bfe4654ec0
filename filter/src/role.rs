//! Which filter a plugin instance is. One `.wasm` serves four filters; Envoy tells them apart
//! only by `PluginConfig.root_id` (property `plugin_root_id`), which the control plane sets from
//! [`Role::root_id`] and the filter reads back with [`Role::from_root_id`].

use crate::engine::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP filter in front of the endpoint: ingress, the peer is the TCP source.
    Ingress,
    /// HTTP filter on the endpoint's outbound plain-HTTP listener: egress, the destination is
    /// the request's `:authority`.
    EgressHttp,
    /// Network filter on the endpoint's outbound TLS listener: egress, the destination is the
    /// ClientHello's SNI.
    EgressTls,
    /// Network filter between the egress forward proxies' resolver and the real one (DNS over
    /// TCP): drops every answer that is not an address outside the cluster ([`crate::dns`]).
    EgressDns,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingress, Role::EgressHttp, Role::EgressTls, Role::EgressDns];

    /// The `root_id` naming this role.
    pub fn root_id(self) -> &'static str {
        match self {
            Role::Ingress => "ingress",
            Role::EgressHttp => "egress_http",
            Role::EgressTls => "egress_tls",
            Role::EgressDns => "egress_dns",
        }
    }

    /// The role a `root_id` names. An empty root id is the ingress filter, and so is `l7gate`,
    /// the root id of ECDS resources rendered before the egress filters existed. Anything else
    /// is unknown: the plugin refuses its configuration.
    pub fn from_root_id(root_id: &str) -> Option<Role> {
        match root_id {
            "" | "l7gate" => Some(Role::Ingress),
            _ => Role::ALL.into_iter().find(|r| r.root_id() == root_id),
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Role::Ingress => Direction::Ingress,
            Role::EgressHttp | Role::EgressTls | Role::EgressDns => Direction::Egress,
        }
    }

    /// Whether the role is an HTTP filter (else a network filter).
    pub fn is_http(self) -> bool {
        matches!(self, Role::Ingress | Role::EgressHttp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn root_ids_round_trip_and_unknown_ones_are_refused() {
        for role in Role::ALL {
            assert_eq!(Role::from_root_id(role.root_id()), Some(role));
        }
        assert_eq!(Role::from_root_id(""), Some(Role::Ingress));
        assert_eq!(Role::from_root_id("l7gate"), Some(Role::Ingress));
        assert_eq!(Role::from_root_id("egress"), None);
        assert_eq!(Role::from_root_id("EGRESS_TLS"), None);
        assert_eq!(Role::EgressTls.direction(), Direction::Egress);
        assert!(!Role::EgressTls.is_http() && Role::EgressHttp.is_http());
        assert!(!Role::EgressDns.is_http() && Role::EgressDns.direction() == Direction::Egress);
    }
}
