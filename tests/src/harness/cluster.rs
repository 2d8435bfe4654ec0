//! The seed cluster: for every inventory endpoint that serves a port named `http`, an upstream
//! application plus an l7gate sidecar listening on the endpoint's address and port, configured
//! with what `l7gate::compile_endpoint` makes of the manifests (an ECDS file per sidecar), or,
//! with [`Cluster::start_ads`], by a real `l7gate serve` over ADS. Clusters bind fixed addresses
//! (127.0.0.x:8080), so only one runs at a time on the machine: a file lock serialises them
//! across threads and processes.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::harness::client::{self, Protocol, Request};
use crate::harness::control::{ControlPlane, ServeSpec};
use crate::harness::envoy::{AdsSidecarSpec, Envoy, SidecarSpec};
use l7gate::inventory::{Endpoint, Inventory};

use crate::harness::tools::{repo_root, Tools};
use crate::harness::upstream::Upstream;

/// One workload with its sidecar.
pub struct Sidecar {
    pub endpoint: Endpoint,
    /// Declared before `upstream` so Envoy stops before its application does.
    pub envoy: Envoy,
    pub upstream: Upstream,
}

/// A running cluster; everything stops when it is dropped.
pub struct Cluster {
    pub manifests: PathBuf,
    pub inventory: Inventory,
    pub sidecars: Vec<Sidecar>,
    /// The `l7gate serve` the sidecars get their config from ([`Cluster::start_ads`]).
    pub control: Option<ControlPlane>,
    _lock: ClusterLock,
}

/// The stat that counts filter configs Envoy accepted through ECDS.
pub const ECDS_UPDATE_SUCCESS: &str =
    "extension_config_discovery.http_filter.l7gate.update_success";

impl Cluster {
    /// The seed cluster from the repository's `manifests/`.
    pub fn start_seed() -> Result<Cluster, String> {
        Cluster::start(&repo_root().join("manifests"))
    }

    /// Starts a cluster from `<manifests>/endpoints.yaml` and `<manifests>/policies/`.
    pub fn start(manifests: &Path) -> Result<Cluster, String> {
        let tools = Tools::discover()?;
        let lock = ClusterLock::acquire()?;
        let endpoints_file = manifests.join("endpoints.yaml");
        let policies = manifests.join("policies");
        let loaded = l7gate::load(&policies, &endpoints_file).map_err(|e| e.to_string())?;
        let control = loaded.cluster;
        // Spawn every sidecar first and wait afterwards: they boot in parallel.
        let mut starting = Vec::new();
        for endpoint in &control.inventory.endpoints {
            let (Some(port), Some(ip)) = (endpoint.ports.get("http"), endpoint.ips.first()) else {
                continue;
            };
            let config = control
                .compile(endpoint)
                .map_err(|e| format!("compiling the policy of {}: {e}", endpoint.name))?;
            let upstream = Upstream::start(&endpoint.name)
                .map_err(|e| format!("upstream for {}: {e}", endpoint.name))?;
            let spec = SidecarSpec {
                name: endpoint.name.clone(),
                listen: SocketAddr::new(*ip, *port),
                upstream: upstream.addr(),
                filter_config_json: config.to_json().map_err(|e| e.to_string())?,
            };
            let envoy = Envoy::spawn(&tools, &spec).map_err(|e| e.to_string())?;
            starting.push(Sidecar { endpoint: endpoint.clone(), envoy, upstream });
        }
        for sidecar in &mut starting {
            sidecar
                .envoy
                .wait_ready()
                .map_err(|e| format!("sidecar {}: {e}", sidecar.endpoint.name))?;
        }
        Ok(Cluster {
            manifests: manifests.to_path_buf(),
            inventory: control.inventory,
            sidecars: starting,
            control: None,
            _lock: lock,
        })
    }

    /// Starts `l7gate serve` on `<manifests>/policies/` and `<manifests>/endpoints.yaml`, and one
    /// ADS sidecar per server endpoint (node id = endpoint name); returns once every sidecar
    /// accepted its first config.
    pub fn start_ads(manifests: &Path) -> Result<Cluster, String> {
        let tools = Tools::discover()?;
        let lock = ClusterLock::acquire()?;
        let endpoints_file = manifests.join("endpoints.yaml");
        let inventory = l7gate::inventory::load(&endpoints_file).map_err(|e| e.to_string())?;
        let control = ControlPlane::start(ServeSpec {
            policies: manifests.join("policies"),
            endpoints: endpoints_file,
            wasm: tools.wasm.clone(),
            egress: false,
            kubeconfig: None,
            plaintext: false,
        })?;
        let mut starting = Vec::new();
        for endpoint in &inventory.endpoints {
            let (Some(port), Some(ip)) = (endpoint.ports.get("http"), endpoint.ips.first()) else {
                continue;
            };
            let upstream = Upstream::start(&endpoint.name)
                .map_err(|e| format!("upstream for {}: {e}", endpoint.name))?;
            let spec = AdsSidecarSpec {
                name: endpoint.name.clone(),
                listen: SocketAddr::new(*ip, *port),
                upstream: upstream.addr(),
                xds: control.xds(),
            };
            let envoy = Envoy::spawn_ads(&tools, &spec).map_err(|e| e.to_string())?;
            starting.push(Sidecar { endpoint: endpoint.clone(), envoy, upstream });
        }
        for sidecar in &mut starting {
            let name = sidecar.endpoint.name.clone();
            sidecar.envoy.wait_ready().map_err(|e| format!("sidecar {name}: {e}"))?;
            // LIVE also comes after the initial fetch timeout, without a config: insist on one.
            if sidecar.envoy.wait_for_stat(ECDS_UPDATE_SUCCESS, |n| n >= 1) < Some(1) {
                return Err(format!(
                    "sidecar {name} got no config from l7gate serve:\n{}\n{}",
                    sidecar.envoy.log_tail(20),
                    control.log()
                ));
            }
        }
        Ok(Cluster {
            manifests: manifests.to_path_buf(),
            inventory,
            sidecars: starting,
            control: Some(control),
            _lock: lock,
        })
    }

    /// The status `from` gets for `method path` on `to`'s sidecar, over a fresh HTTP/1.1
    /// connection (`Host: to:port`); panics if no response comes back.
    pub async fn status_from(&self, from: IpAddr, to: &str, method: &str, path: &str) -> u16 {
        let listener =
            self.sidecar(to).unwrap_or_else(|| panic!("no sidecar {to}")).envoy.listener();
        let authority = format!("{to}:{}", listener.port());
        let req = Request { from, to: listener, authority: &authority, method, path };
        client::send(Protocol::Http1, &req)
            .await
            .unwrap_or_else(|e| panic!("{method} {to}{path}: {e}"))
            .status
    }

    /// The sidecar of endpoint `name`.
    pub fn sidecar(&self, name: &str) -> Option<&Sidecar> {
        self.sidecars.iter().find(|s| s.endpoint.name == name)
    }

    /// One more sidecar with endpoint `name`'s config, listening on `listen` (keep the
    /// endpoint's port: rules name it) in front of another application at `upstream`; ready
    /// when returned, stopped when dropped.
    pub fn extra_sidecar(
        &self,
        name: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
    ) -> Result<Envoy, String> {
        let tools = Tools::discover()?;
        let loaded =
            l7gate::load(&self.manifests.join("policies"), &self.manifests.join("endpoints.yaml"))
                .map_err(|e| e.to_string())?;
        let endpoint =
            self.inventory.endpoint(name).ok_or(format!("{name} is not in the inventory"))?;
        let config =
            loaded.cluster.compile(endpoint).map_err(|e| format!("compiling {name}: {e}"))?;
        let spec = SidecarSpec {
            name: format!("{name}-extra"),
            listen,
            upstream,
            filter_config_json: config.to_json().map_err(|e| e.to_string())?,
        };
        Envoy::start(&tools, &spec).map_err(|e| e.to_string())
    }
}

/// Machine-wide exclusive use of the cluster addresses (an advisory `flock` on a temp file).
struct ClusterLock {
    _file: File,
}

impl ClusterLock {
    fn acquire() -> Result<ClusterLock, String> {
        let path = std::env::temp_dir().join("l7gate-e2e-cluster.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // Each open file description is locked separately, so this also serialises threads.
        file.lock().map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(ClusterLock { _file: file })
    }
}
