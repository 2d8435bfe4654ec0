//! The ECDS resource that carries a filter configuration to Envoy ([`resource`], built in one
//! place, [`plugin_config`]), and its delivery from a file ([`render`], [`write_atomically`]); the
//! ADS server (`xds`) serves the same resource over gRPC.
//!
//! One `.wasm` is four filters, told apart by [`Role`] (the plugin's `root_id`): the ingress
//! HTTP filter of `envoy/sidecar*.yaml` ([`resource`], [`render`]), and the egress HTTP, TLS and
//! DNS guard (network) filters of `envoy/egress.yaml` ([`resource_for`], [`render_for`]). Each has its own
//! ECDS resource name ([`filter_name`]) and filter type ([`type_url`]).
//!
//! The file-based sidecar bootstrap (`envoy/sidecar.yaml`) declares the HTTP filter `l7gate` with
//! `config_discovery.config_source.path_config_source` pointing at one file. That file holds an
//! xDS `DiscoveryResponse` with exactly one `TypedExtensionConfig` named `l7gate` whose
//! `typed_config` is an `envoy.extensions.filters.http.wasm.v3.Wasm`; [`render`] produces it and
//! [`write_atomically`] installs it.
//!
//! Behaviour verified against Envoy 1.40 (V8 runtime):
//! * Envoy watches the file's directory for a *rename onto* the file name. Writing a temp file and
//!   renaming it over the target reloads the filter live (well under a second); rewriting the file
//!   in place is **not** picked up. Deleting the file changes nothing.
//! * An update that fails to parse, names another resource, points at a missing `.wasm`, or whose
//!   `on_configure` returns `false` is rejected and the previous configuration stays active
//!   (stats `extension_config_discovery.http_filter.l7gate.update_rejected` / `update_failure`).
//! * At startup a missing file stops Envoy from starting; an invalid file (or `on_configure`
//!   returning `false`) leaves the filter without a config and every request gets a local 500
//!   (response flag `NFCF`) until a valid file is renamed into place: fail closed.
//! * The file is parsed as JSON or YAML regardless of its extension (JSON is valid YAML).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::{
    async_data_source, data_source, AsyncDataSource, DataSource, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm as HttpWasm;
use envoy_types::pb::envoy::extensions::filters::network::wasm::v3::Wasm as NetworkWasm;
use envoy_types::pb::envoy::extensions::wasm::v3::{
    plugin_config, FailurePolicy, PluginConfig, VmConfig,
};
use envoy_types::pb::google::protobuf::StringValue;
use envoy_types::util::pack_any;
pub use l7gate_filter::role::Role;
use prost::Message;

/// The filter name in the bootstrap, which is also the ECDS resource name (they must match).
pub fn filter_name(role: Role) -> &'static str {
    match role {
        Role::Ingress => "l7gate",
        Role::EgressHttp => "l7gate-egress-http",
        Role::EgressTls => "l7gate-egress-tls",
        Role::EgressDns => "l7gate-egress-dns",
    }
}

/// The filter type a role's resource carries (the bootstrap's `type_urls` lists it).
pub fn type_url(role: Role) -> &'static str {
    if role.is_http() {
        HTTP_WASM_TYPE
    } else {
        NETWORK_WASM_TYPE
    }
}

/// `PluginConfig.name` (stats prefix `wasm.l7gate.`, property `plugin_name`).
pub const PLUGIN_NAME: &str = "l7gate";
/// `VmConfig.vm_id` (property `plugin_vm_id`; also the key of shared data).
pub const VM_ID: &str = "l7gate";

/// Type URL of an ECDS resource.
pub const TYPED_EXTENSION_CONFIG_TYPE: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
/// Type URL of the HTTP Wasm filter config (listed in the bootstrap's `type_urls`).
pub const HTTP_WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// Type URL of the network Wasm filter config (the egress TLS and DNS listeners' `type_urls`).
pub const NETWORK_WASM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm";

/// `PluginConfig.failure_policy`. Observed on Envoy 1.40 after a panic (Wasm trap) in the filter:
/// * `FAIL_CLOSED`: that request and **every later one** on the worker get a local 503
///   (`wasm_fail_stream`) until the plugin config changes: one crashing request is a lasting outage.
/// * `FAIL_RELOAD`: also 503 (never lets traffic through unfiltered), but Envoy rebuilds the VM
///   after a backoff of about a second (`wasm.l7gate.vm_reload_success`), so it heals by itself.
/// * `FAIL_OPEN`: later requests skip the filter and reach the upstream unchecked. Never.
/// * Omitted/`UNSPECIFIED` behaves like `FAIL_CLOSED`, and a misspelled value is *ignored* with
///   only a warning (`server.dynamic_unknown_fields`), so the value is always set explicitly.
///
/// Hence `FAIL_RELOAD`: fail closed, without handing an attacker a kill switch for the worker.
pub const FAILURE_POLICY: FailurePolicy = FailurePolicy::FailReload;
/// `VmConfig.runtime`: V8, the runtime Envoy's release builds ship.
pub const RUNTIME: &str = "envoy.wasm.runtime.v8";

/// The l7gate plugin as Envoy runs it in the filter `role`: the module at `wasm_path` (should be
/// absolute: Envoy resolves it against its own cwd) with `config_json` as its plugin
/// configuration (delivered to `on_configure` byte for byte). The one place where the plugin's
/// names, root id, runtime and failure policy are chosen; the ECDS file ([`render_for`]) and the
/// ADS server ([`resource`]) both use it.
pub fn plugin_config(role: Role, config_json: &str, wasm_path: &Path) -> PluginConfig {
    let code = AsyncDataSource {
        specifier: Some(async_data_source::Specifier::Local(DataSource {
            specifier: Some(data_source::Specifier::Filename(
                wasm_path.to_string_lossy().into_owned(),
            )),
            ..Default::default()
        })),
    };
    PluginConfig {
        name: PLUGIN_NAME.to_string(),
        root_id: role.root_id().to_string(),
        vm: Some(plugin_config::Vm::VmConfig(VmConfig {
            vm_id: VM_ID.to_string(),
            runtime: RUNTIME.to_string(),
            code: Some(code),
            ..Default::default()
        })),
        configuration: Some(pack_any(StringValue { value: config_json.to_string() })),
        failure_policy: FAILURE_POLICY as i32,
        ..Default::default()
    }
}

/// The ingress filter's ECDS resource (what `envoy/sidecar*.yaml` subscribe to).
pub fn resource(config_json: &str, wasm_path: &Path) -> TypedExtensionConfig {
    resource_for(Role::Ingress, config_json, wasm_path)
}

/// The ECDS resource of the filter `role`: a `TypedExtensionConfig` named [`filter_name`]
/// wrapping the HTTP or network Wasm filter with [`plugin_config`].
pub fn resource_for(role: Role, config_json: &str, wasm_path: &Path) -> TypedExtensionConfig {
    let config = Some(plugin_config(role, config_json, wasm_path));
    let typed_config = if role.is_http() {
        pack_any(HttpWasm { config })
    } else {
        pack_any(NetworkWasm { config })
    };
    TypedExtensionConfig { name: filter_name(role).to_string(), typed_config: Some(typed_config) }
}

/// Content version of a resource: FNV-1a 64 over its protobuf encoding (prost encodes fields in
/// tag order, so equal resources give equal bytes; stable across runs and platforms, unlike
/// `DefaultHasher`). Shown by Envoy as `extension_config_discovery.http_filter.l7gate.version_text`.
pub fn version(resource_bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in resource_bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("l7gate-{h:016x}")
}

/// Renders the ingress filter's ECDS file (see [`render_for`]).
pub fn render(config_json: &str, wasm_path: &Path) -> String {
    render_for(Role::Ingress, config_json, wasm_path)
}

/// Renders the ECDS file content for the filter `role`: a `DiscoveryResponse` (pretty JSON, the
/// proto3 JSON mapping of [`resource_for`]) for Envoy's file-based config source.
pub fn render_for(role: Role, config_json: &str, wasm_path: &Path) -> String {
    let resource = resource_for(role, config_json, wasm_path);
    let doc = serde_json::json!({
        "version_info": version(&resource.encode_to_vec()),
        "resources": [{
            "@type": TYPED_EXTENSION_CONFIG_TYPE,
            "name": resource.name,
            "typed_config": {
                "@type": type_url(role),
                "config": plugin_json(&plugin_config(role, config_json, wasm_path)),
            },
        }],
    });
    format!("{doc:#}\n")
}

/// The proto3 JSON mapping of the fields [`plugin_config`] sets.
fn plugin_json(plugin: &PluginConfig) -> serde_json::Value {
    let vm = match &plugin.vm {
        Some(plugin_config::Vm::VmConfig(vm)) => vm.clone(),
        None => VmConfig::default(),
    };
    let filename = match vm.code.and_then(|c| c.specifier) {
        Some(async_data_source::Specifier::Local(DataSource {
            specifier: Some(data_source::Specifier::Filename(f)),
            ..
        })) => f,
        _ => String::new(),
    };
    let configuration = plugin.configuration.clone().unwrap_or_default();
    let value = StringValue::decode(configuration.value.as_slice()).unwrap_or_default().value;
    let failure_policy = FailurePolicy::try_from(plugin.failure_policy)
        .unwrap_or(FailurePolicy::Unspecified)
        .as_str_name();
    serde_json::json!({
        "name": plugin.name,
        "root_id": plugin.root_id,
        "vm_config": {
            "vm_id": vm.vm_id,
            "runtime": vm.runtime,
            "code": { "local": { "filename": filename } },
        },
        "configuration": { "@type": configuration.type_url, "value": value },
        "failure_policy": failure_policy,
    })
}

/// Replaces `path` with `contents` so that Envoy's file watch sees exactly one complete update:
/// writes a temp file in the same directory (same filesystem), syncs it, renames it over `path`.
/// Concurrent writers never share a temp file; on error the temp file is removed.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn render_is_a_discovery_response_for_the_l7gate_wasm_filter() {
        let config = r#"{"rules":[{"method":"GET","path":"/a\"b"}],"note":"ünï"}"#;
        let wasm = Path::new("/opt/l7gate/l7gate_filter.wasm");
        let text = render(config, wasm);
        let doc: Value = serde_json::from_str(&text).expect("valid JSON");

        let resources = doc["resources"].as_array().expect("resources array");
        assert_eq!(resources.len(), 1, "ECDS needs exactly one resource per subscription");
        let r = &resources[0];
        assert_eq!(r["@type"], TYPED_EXTENSION_CONFIG_TYPE);
        assert_eq!(r["@type"], "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig");
        assert_eq!(r["name"], "l7gate");
        let tc = &r["typed_config"];
        assert_eq!(tc["@type"], "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
        let pc = &tc["config"];
        assert_eq!(pc["name"], "l7gate");
        assert_eq!(pc["root_id"], "ingress");
        assert_eq!(pc["failure_policy"], "FAIL_RELOAD");
        assert_eq!(pc["vm_config"]["vm_id"], "l7gate");
        assert_eq!(pc["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(pc["vm_config"]["code"]["local"]["filename"], "/opt/l7gate/l7gate_filter.wasm");
        assert_eq!(pc["configuration"]["@type"], "type.googleapis.com/google.protobuf.StringValue");
        assert_eq!(
            pc["configuration"]["value"].as_str(),
            Some(config),
            "config must arrive verbatim"
        );
        assert!(doc["version_info"].as_str().is_some_and(|v| v.starts_with("l7gate-")));
    }

    /// The egress filters: own resource names (the names `envoy/egress.yaml` and
    /// `envoy/egress-ads.yaml` subscribe to),
    /// root ids and filter types; the rendered file says the same as the ADS resource.
    #[test]
    fn egress_resources_name_their_filter_root_id_and_type() {
        let wasm = Path::new("/w.wasm");
        for (role, name, root_id, type_url) in [
            (Role::EgressHttp, "l7gate-egress-http", "egress_http", HTTP_WASM_TYPE),
            (Role::EgressTls, "l7gate-egress-tls", "egress_tls", NETWORK_WASM_TYPE),
            (Role::EgressDns, "l7gate-egress-dns", "egress_dns", NETWORK_WASM_TYPE),
        ] {
            let doc: Value = serde_json::from_str(&render_for(role, "{}", wasm)).expect("json");
            let r = &doc["resources"][0];
            assert_eq!(
                (r["name"].as_str(), r["typed_config"]["@type"].as_str()),
                (Some(name), Some(type_url))
            );
            assert_eq!(r["typed_config"]["config"]["root_id"], root_id);
            let resource = resource_for(role, "{}", wasm);
            assert_eq!(resource.name, name);
            assert_eq!(resource.typed_config.as_ref().map(|a| a.type_url.as_str()), Some(type_url));
            for (file, template) in [
                ("egress.yaml", include_str!("../../envoy/egress.yaml")),
                ("egress-ads.yaml", include_str!("../../envoy/egress-ads.yaml")),
            ] {
                assert!(
                    template.contains(&format!("- name: {name}\n")),
                    "envoy/{file} has no filter {name}"
                );
            }
        }
        assert_eq!(
            NETWORK_WASM_TYPE,
            "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
        );
    }

    #[test]
    fn version_is_deterministic_and_tracks_content() {
        let wasm = Path::new("/w.wasm");
        let v = |c: &str, w: &Path| -> Value {
            serde_json::from_str::<Value>(&render(c, w)).expect("json")["version_info"].clone()
        };
        assert_eq!(v("{}", wasm), v("{}", wasm));
        assert_ne!(v("{}", wasm), v("{\"a\":1}", wasm));
        assert_ne!(v("{}", wasm), v("{}", Path::new("/other.wasm")));
        assert_eq!(render("{}", wasm), render("{}", wasm));
    }

    #[test]
    fn write_atomically_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("l7gate-filter.json");
        write_atomically(&path, "first").expect("write 1");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first");
        write_atomically(&path, "second").expect("write 2");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("l7gate-filter.json")]);
    }

    #[test]
    fn write_atomically_fails_cleanly_for_a_missing_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope").join("f.json");
        assert!(write_atomically(&path, "x").is_err());
        assert!(write_atomically(Path::new("/"), "x").is_err());
    }
}
