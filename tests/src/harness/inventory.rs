//! Reads the parts of `manifests/endpoints.yaml` the harness needs: each endpoint's name,
//! address and named ports. Policy semantics stay in the control plane; this is only "where
//! does workload X live".

use std::net::IpAddr;
use std::path::Path;

use saphyr::{LoadableYamlNode, Yaml};

/// One workload of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub namespace: String,
    /// The first address listed: where its sidecar listens, and what it binds as a client.
    pub ip: IpAddr,
    /// Named ports (`http: 8080`); empty for pure clients.
    pub ports: Vec<(String, u16)>,
}

impl Endpoint {
    /// The port named `http`, which the seed policies and sidecars use.
    pub fn http_port(&self) -> Option<u16> {
        self.ports
            .iter()
            .find(|(name, _)| name == "http")
            .map(|(_, port)| *port)
    }
}

/// The endpoints of an inventory file.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub endpoints: Vec<Endpoint>,
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Inventory::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Inventory, String> {
        let docs = Yaml::load_from_str(text).map_err(|e| e.to_string())?;
        let root = docs.first().ok_or("empty inventory")?;
        let list = root
            .as_mapping_get("endpoints")
            .and_then(Yaml::as_vec)
            .ok_or("`endpoints` must be a list")?;
        let endpoints = list
            .iter()
            .enumerate()
            .map(|(i, node)| endpoint(node).map_err(|e| format!("endpoints[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inventory { endpoints })
    }

    /// The endpoint called `name`.
    pub fn get(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

fn endpoint(node: &Yaml) -> Result<Endpoint, String> {
    let text = |key: &str| -> Result<String, String> {
        node.as_mapping_get(key)
            .and_then(Yaml::as_str)
            .map(str::to_string)
            .ok_or(format!("`{key}` must be a string"))
    };
    let name = text("name")?;
    let namespace = text("namespace")?;
    let ip = node
        .as_mapping_get("ips")
        .and_then(|ips| ips.as_sequence_get(0))
        .and_then(Yaml::as_str)
        .ok_or("`ips` must list at least one address")?;
    let ip: IpAddr = ip.parse().map_err(|e| format!("ips[0] {ip:?}: {e}"))?;
    let mut ports = Vec::new();
    if let Some(map) = node.as_mapping_get("ports").and_then(Yaml::as_mapping) {
        for (key, value) in map {
            let port_name = key.as_str().ok_or("port names must be strings")?;
            let number = value
                .as_integer()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or(format!("ports.{port_name} must be a port number"))?;
            ports.push((port_name.to_string(), number));
        }
    }
    Ok(Endpoint {
        name,
        namespace,
        ip,
        ports,
    })
}

#[cfg(test)]
mod tests {
    use super::Inventory;
    use crate::harness::tools::repo_root;

    #[test]
    fn reads_the_demo_inventory() {
        let inv = Inventory::load(&repo_root().join("manifests/endpoints.yaml")).unwrap();
        let api = inv.get("inventory-api").unwrap();
        assert_eq!(api.ip.to_string(), "127.0.0.10");
        assert_eq!(api.http_port(), Some(8080));
        assert_eq!(inv.get("frontend").unwrap().http_port(), None);
        assert_eq!(inv.endpoints.len(), 5);
    }
}
