//! Keeps the served state in step with the input files: watches the policies path and the
//! endpoint inventory (their directories, because editors and `kubectl cp`-style tools replace
//! files by rename), debounces bursts of events, then reloads, validates and compiles everything.
//! A good state is published to the cache (only endpoints whose snapshot changed are pushed); any
//! error is logged with the same located diagnostics `l7gate validate` prints, recorded in the
//! status, and nothing is pushed: the last good state stays in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::xds::cache::Cache;
use crate::xds::snapshot;
use crate::xds::status::Reloads;

/// Quiet time after the last file event before reloading: one editor save or `cp -r` of several
/// files is one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// The files the served state is made from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// A policy file or a directory of `*.yaml`/`*.yml` policies.
    pub policies: PathBuf,
    /// The endpoint inventory.
    pub endpoints: PathBuf,
}

/// How every served state is compiled, wherever its inputs come from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The filter module path, as the Envoys see it.
    pub wasm: PathBuf,
    /// Every policy in audit mode (`l7gate serve --audit-mode`).
    pub audit_mode: bool,
    /// The filter roles served (`l7gate serve --egress` adds the egress filters).
    pub roles: Vec<crate::ecds::Role>,
}

/// Loads, validates and compiles the input files and publishes the result ([`publish`]).
pub fn reload(inputs: &Inputs, settings: &Settings, cache: &Cache, reloads: &Reloads) {
    publish(crate::load(&inputs.policies, &inputs.endpoints), settings, cache, reloads);
}

/// Compiles loaded inputs (from files, or from the Kubernetes API) and publishes the result; on
/// error records it and leaves the cache alone.
pub fn publish(
    loaded: Result<crate::Loaded, crate::Error>,
    settings: &Settings,
    cache: &Cache,
    reloads: &Reloads,
) {
    let built = loaded.map_err(|e| e.to_string()).and_then(|loaded| {
        snapshot::build(
            &loaded.cluster.with_audit_mode(settings.audit_mode),
            &settings.wasm,
            &settings.roles,
        )
        .map(|s| (s, loaded.warnings))
    });
    let mut status = reloads.lock().unwrap_or_else(|e| e.into_inner());
    match built {
        Ok((snapshots, warnings)) => {
            for w in &warnings {
                warn!(warning = %w, "policy warning");
            }
            let endpoints = snapshots.keys().filter(|k| k.contains('/')).count();
            let changed = cache.publish(snapshots);
            status.generation += 1;
            status.error = None;
            info!(generation = status.generation, endpoints, changed = %changed.join(","), "reload ok");
            status.last_changed = changed;
        }
        Err(e) => {
            error!(error = ?e, "reload failed: inputs rejected, the last good state stays in force");
            status.error = Some(e);
        }
    }
}

/// Watches the inputs until the process ends, reloading after each debounced burst of changes.
pub async fn run(
    inputs: Inputs,
    settings: Settings,
    cache: Arc<Cache>,
    reloads: Reloads,
) -> Result<(), String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let relevant = Relevance::new(&inputs);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let _ = tx.send(event);
    })
    .map_err(|e| format!("cannot watch files: {e}"))?;
    for dir in relevant.dirs() {
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    }
    loop {
        // Wait for a relevant change, then for DEBOUNCE of quiet.
        if !wait_for_change(&mut rx, &relevant, None).await {
            return Err("file watcher stopped".into());
        }
        while wait_for_change(&mut rx, &relevant, Some(DEBOUNCE)).await {}
        let (inputs, settings, cache, reloads) =
            (inputs.clone(), settings.clone(), Arc::clone(&cache), Arc::clone(&reloads));
        tokio::task::spawn_blocking(move || reload(&inputs, &settings, &cache, &reloads))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
    }
}

/// True when a relevant event arrived (within `quiet`, if given).
async fn wait_for_change(
    rx: &mut mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    relevant: &Relevance,
    quiet: Option<Duration>,
) -> bool {
    loop {
        let event = match quiet {
            None => rx.recv().await,
            Some(d) => match tokio::time::timeout(d, rx.recv()).await {
                Ok(e) => e,
                Err(_) => return false,
            },
        };
        match event {
            None => return false,
            Some(Err(e)) => warn!(error = %e, "file watch error"),
            Some(Ok(e)) if relevant.matches(&e) => return true,
            Some(Ok(_)) => {}
        }
    }
}

/// Which file events concern the inputs.
struct Relevance {
    policies: PathBuf,
    policies_is_dir: bool,
    endpoints: PathBuf,
}

impl Relevance {
    fn new(inputs: &Inputs) -> Relevance {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Relevance {
            policies_is_dir: inputs.policies.is_dir(),
            policies: abs(&inputs.policies),
            endpoints: abs(&inputs.endpoints),
        }
    }

    /// The directories to watch: the policies directory (or a policy file's directory) and the
    /// inventory's directory.
    fn dirs(&self) -> Vec<PathBuf> {
        let parent =
            |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        let mut dirs =
            vec![if self.policies_is_dir { self.policies.clone() } else { parent(&self.policies) }];
        dirs.push(parent(&self.endpoints));
        dirs.sort();
        dirs.dedup();
        dirs
    }

    fn matches(&self, event: &notify::Event) -> bool {
        // Our own reads show up as access events: never a reason to reload.
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        event.paths.iter().any(|p| {
            *p == self.endpoints
                || *p == self.policies
                || (self.policies_is_dir
                    && p.parent() == Some(self.policies.as_path())
                    && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};

    fn event(kind: EventKind, path: &Path) -> notify::Event {
        notify::Event::new(kind).add_path(path.to_path_buf())
    }

    #[test]
    fn only_changes_to_the_inputs_are_relevant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).expect("mkdir");
        let inputs =
            Inputs { policies: policies.clone(), endpoints: dir.path().join("endpoints.yaml") };
        let r = Relevance::new(&inputs);
        assert_eq!(r.dirs(), vec![dir.path().to_path_buf(), policies.clone()]);
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(r.matches(&event(renamed, &policies.join("a.yaml"))));
        assert!(r.matches(&event(EventKind::Create(CreateKind::File), &policies.join("b.yml"))));
        assert!(r.matches(&event(renamed, &dir.path().join("endpoints.yaml"))));
        assert!(!r.matches(&event(renamed, &policies.join(".a.yaml.swp"))), "editor swap file");
        assert!(
            !r.matches(&event(renamed, &dir.path().join("other.yaml"))),
            "sibling of the inventory"
        );
        assert!(
            !r.matches(&event(EventKind::Access(AccessKind::Any), &policies.join("a.yaml"))),
            "our own reads"
        );
    }
}
