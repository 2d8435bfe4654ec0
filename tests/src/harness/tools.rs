//! Where the Envoy binary, the wasm filter and the repository's files are: `L7GATE_ENVOY` and
//! `L7GATE_WASM` from the environment, else the exports `scripts/bootstrap.sh` writes to
//! `<repo>/.l7gate/env`.

use std::path::{Path, PathBuf};

/// The repository root (the workspace this crate is built from).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A private copy of `manifests/` (`endpoints.yaml` and `policies/`) a test may edit.
pub fn seed_copy() -> Result<tempfile::TempDir, String> {
    let io = |e: std::io::Error| format!("copying manifests/: {e}");
    let dir = tempfile::Builder::new().prefix("l7gate-manifests-").tempdir().map_err(io)?;
    let from = repo_root().join("manifests");
    std::fs::copy(from.join("endpoints.yaml"), dir.path().join("endpoints.yaml")).map_err(io)?;
    std::fs::create_dir(dir.path().join("policies")).map_err(io)?;
    for entry in std::fs::read_dir(from.join("policies")).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, dir.path().join("policies").join(name)).map_err(io)?;
        }
    }
    Ok(dir)
}

/// The two artefacts every sidecar needs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The Envoy 1.40 binary.
    pub envoy: PathBuf,
    /// The l7gate filter, built for wasm32.
    pub wasm: PathBuf,
}

impl Tools {
    /// Finds the tools, or explains how to get them.
    pub fn discover() -> Result<Tools, String> {
        let env_file = repo_root().join(".l7gate/env");
        let from_file = std::fs::read_to_string(&env_file)
            .map(|text| parse_env_file(&text))
            .unwrap_or_default();
        let lookup = |name: &str| -> Option<PathBuf> {
            std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
                from_file.iter().find(|(k, _)| k == name).map(|(_, v)| PathBuf::from(v))
            })
        };
        let hint = format!(
            "run scripts/bootstrap.sh (it installs Envoy 1.40, builds the wasm filter and writes {}), \
             or set L7GATE_ENVOY and L7GATE_WASM",
            env_file.display()
        );
        let envoy = lookup("L7GATE_ENVOY").ok_or_else(|| {
            format!("L7GATE_ENVOY is not set and not in {}: {hint}", env_file.display())
        })?;
        let wasm = lookup("L7GATE_WASM").ok_or_else(|| {
            format!("L7GATE_WASM is not set and not in {}: {hint}", env_file.display())
        })?;
        for (what, path) in [("Envoy binary", &envoy), ("wasm filter", &wasm)] {
            if !path.is_file() {
                return Err(format!("{what} {} does not exist: {hint}", path.display()));
            }
        }
        Ok(Tools { envoy, wasm })
    }

    /// Like [`Tools::discover`], panicking with its explanation: for tests and the demo.
    pub fn require() -> Tools {
        Tools::discover().unwrap_or_else(|e| panic!("l7gate e2e: {e}"))
    }
}

/// Reads `export NAME=value` / `NAME=value` lines (values optionally quoted); ignores the rest.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line).trim();
            let (name, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// Polls `check` until it returns `Some`, within a generous bound that only guards
/// against hanging; `None` at the end is a failure the caller reports.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_env_file;

    #[test]
    fn env_file_exports_quoted_and_bare() {
        let parsed = parse_env_file(
            "# written by scripts/bootstrap.sh\nexport L7GATE_ENVOY=\"/a b/envoy\"\nL7GATE_WASM='/w.wasm'\n\nnoise\n",
        );
        assert_eq!(
            parsed,
            vec![
                ("L7GATE_ENVOY".to_string(), "/a b/envoy".to_string()),
                ("L7GATE_WASM".to_string(), "/w.wasm".to_string()),
            ]
        );
    }
}
