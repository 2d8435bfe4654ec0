//! Keeps the served state in step with the input files: watches the policies path and the
//! endpoint inventory (their directories, because editors and `kubectl cp`-style tools replace
//! files by rename), coalesces bursts of events, then reloads, validates and compiles everything.
//! A good state is published to the cache (only endpoints whose snapshot changed are pushed); any
//! error is logged with the same located diagnostics `l7gate validate` prints, recorded in the
//! status, and nothing is pushed: the last good state stays in force.
//!
//! When: [`DEBOUNCE`] after the last relevant change, but never later than [`DEADLINE`] after the
//! first one, however busy the directories are (events for other files do not count at all).
//! A file that is still open for writing is never read: a change counts as complete once the
//! writer closed the file (inotify's close-write), renamed it into place or removed it, so a file
//! written in place in several writes (scp, a slow pipe) is applied whole or not at all; and what
//! was read while a file was written in place is dropped and read again after that write.
//! Writing to a temporary name and renaming it into place is still the way to publish a policy:
//! it is never held back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::xds::cache::Cache;
use crate::xds::report::Reloads;
use crate::xds::snapshot;

/// Quiet time after the last relevant change before reloading: one editor save or `cp -r` of
/// several files is one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(40);
/// The longest a relevant change waits for quiet: a reload starts at most this long after it
/// (plus the time a writer still holds a changed file open).
pub const DEADLINE: Duration = Duration::from_millis(250);
/// How often a reload held back by a file still open for writing says so in the log.
const STILL_WRITING_EVERY: Duration = Duration::from_secs(10);

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
        .map(|s| (s, loaded.warnings, loaded.notes))
    });
    let mut status = reloads.lock().unwrap_or_else(|e| e.into_inner());
    match built {
        Ok((snapshots, warnings, notes)) => {
            for w in &warnings {
                warn!(warning = %w, "policy warning");
            }
            for n in &notes {
                info!(note = %n, "skipped");
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
    drop(status);
    release_freed_memory();
}

/// Returns the memory of the inputs just decoded (freed by now) to the system: glibc keeps freed
/// heap in the reloading thread's arena otherwise, and a 50 MB policy file left `serve` holding
/// 710 MiB after a reload instead of what it serves.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
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
    let mut carried = None;
    loop {
        if !wait_for_burst(&mut rx, &relevant, carried.take()).await {
            return Err("file watcher stopped".into());
        }
        let loading = inputs.clone();
        let loaded =
            tokio::task::spawn_blocking(move || crate::load(&loading.policies, &loading.endpoints))
                .await
                .map_err(|e| format!("reload task failed: {e}"))?;
        // A file written in place while it was read may have been read half-written: drop what
        // was read and reload once that write is complete. (Renames are safe: whole either way.)
        let during = drain(&mut rx, &relevant);
        if during.as_ref().is_some_and(|b| b.in_place) {
            warn!("inputs were written while being read: reloading once the writes are complete");
        } else {
            let (settings, cache, reloads) =
                (settings.clone(), Arc::clone(&cache), Arc::clone(&reloads));
            tokio::task::spawn_blocking(move || publish(loaded, &settings, &cache, &reloads))
                .await
                .map_err(|e| format!("reload task failed: {e}"))?;
        }
        carried = during;
    }
}

/// The relevant changes among the events already queued, without waiting.
fn drain(
    rx: &mut mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    relevant: &Relevance,
) -> Option<Burst> {
    let mut burst = None;
    while let Ok(event) = rx.try_recv() {
        note(&mut burst, event, relevant);
    }
    burst
}

/// Adds an event's relevant changes to `burst` (starting one if need be).
fn note(burst: &mut Option<Burst>, event: notify::Result<notify::Event>, relevant: &Relevance) {
    match event {
        Err(e) => warn!(error = %e, "file watch error"),
        Ok(e) => {
            for path in e.paths.iter().filter(|p| relevant.concerns(p)) {
                if let Some(change) = Change::of(&e.kind) {
                    burst.get_or_insert_with(Burst::new).note(path, change, Instant::now());
                }
            }
        }
    }
}

/// Waits for a relevant change and the end of its burst (see the module doc); false when the
/// watcher stopped.
async fn wait_for_burst(
    rx: &mut mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    relevant: &Relevance,
    mut burst: Option<Burst>,
) -> bool {
    let mut warned = None;
    loop {
        let event = match &burst {
            None => rx.recv().await,
            Some(b) => {
                let wake = match b.writing.is_empty() {
                    true => b.due(),
                    false => *warned.get_or_insert_with(Instant::now) + STILL_WRITING_EVERY,
                };
                match tokio::time::timeout_at(wake, rx.recv()).await {
                    Ok(event) => event,
                    Err(_) if b.writing.is_empty() => return true,
                    Err(_) => {
                        warned = Some(Instant::now());
                        warn!(files = ?b.writing, "reload held back: files still open for writing");
                        continue;
                    }
                }
            }
        };
        match event {
            None => return false,
            Some(event) => note(&mut burst, event, relevant),
        }
    }
}

/// What an event says about a file of the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Created or written: the writer may still be at it.
    Writing,
    /// Closed after writing, renamed or removed: this change of the file is complete.
    Done,
    /// Anything else that may change what is read (permissions, say).
    Other,
}

impl Change {
    /// `None` for events that change nothing: reads, opens (ours included).
    fn of(kind: &EventKind) -> Option<Change> {
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Done),
            EventKind::Access(_) => None,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                Some(Change::Writing)
            }
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(Change::Done),
            _ => Some(Change::Other),
        }
    }
}

/// The relevant changes since the last reload.
#[derive(Debug)]
struct Burst {
    first: Instant,
    last: Instant,
    /// Files created or written and not closed since.
    writing: BTreeSet<PathBuf>,
    /// Whether some file was written in place (not only renamed or removed).
    in_place: bool,
}

impl Burst {
    fn new() -> Burst {
        let now = Instant::now();
        Burst { first: now, last: now, writing: BTreeSet::new(), in_place: false }
    }

    fn note(&mut self, path: &Path, change: Change, at: Instant) {
        self.last = at;
        match change {
            Change::Writing => {
                self.writing.insert(path.to_path_buf());
                self.in_place = true;
            }
            Change::Done => {
                self.writing.remove(path);
            }
            Change::Other => {}
        }
    }

    /// When to reload if nothing else happens (and no file is still being written).
    fn due(&self) -> Instant {
        (self.last + DEBOUNCE).min(self.first + DEADLINE)
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

    /// Whether `path` is one of the inputs: the inventory, the policy file, or a `*.yaml` /
    /// `*.yml` file directly in the policies directory.
    fn concerns(&self, p: &Path) -> bool {
        *p == self.endpoints
            || *p == self.policies
            || (self.policies_is_dir
                && p.parent() == Some(self.policies.as_path())
                && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};

    #[test]
    fn only_the_inputs_are_relevant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).expect("mkdir");
        let inputs =
            Inputs { policies: policies.clone(), endpoints: dir.path().join("endpoints.yaml") };
        let r = Relevance::new(&inputs);
        assert_eq!(r.dirs(), vec![dir.path().to_path_buf(), policies.clone()]);
        assert!(r.concerns(&policies.join("a.yaml")));
        assert!(r.concerns(&policies.join("b.yml")));
        assert!(r.concerns(&dir.path().join("endpoints.yaml")));
        assert!(!r.concerns(&policies.join(".a.yaml.swp")), "editor swap file");
        assert!(!r.concerns(&dir.path().join("other.yaml")), "sibling of the inventory");
        assert!(!r.concerns(&policies.join("sub/c.yaml")), "not directly in the directory");
    }

    #[test]
    fn events_say_whether_a_change_is_complete() {
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(Change::of(&EventKind::Create(CreateKind::File)), Some(Change::Writing));
        assert_eq!(Change::of(&write), Some(Change::Writing));
        assert_eq!(Change::of(&closed), Some(Change::Done));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(Change::of(&renamed), Some(Change::Done));
        assert_eq!(Change::of(&EventKind::Remove(RemoveKind::File)), Some(Change::Done));
        for ours in [AccessKind::Open(AccessMode::Any), AccessKind::Close(AccessMode::Read)] {
            assert_eq!(Change::of(&EventKind::Access(ours)), None, "{ours:?}");
        }
    }

    #[test]
    fn a_burst_is_due_after_quiet_or_at_the_deadline_and_never_mid_write() {
        let a = Path::new("/p/a.yaml");
        let mut burst = Burst::new();
        let t0 = burst.first;
        burst.note(a, Change::Writing, t0);
        assert!(!burst.writing.is_empty(), "a file being written holds the reload back");
        burst.note(a, Change::Done, t0 + Duration::from_millis(5));
        assert!(burst.writing.is_empty());
        assert_eq!(burst.due(), t0 + Duration::from_millis(5) + DEBOUNCE);
        // Changes every 30 ms (under DEBOUNCE) cannot postpone it past the deadline.
        for n in 1..20 {
            burst.note(a, Change::Other, t0 + Duration::from_millis(30 * n));
        }
        assert_eq!(burst.due(), t0 + DEADLINE);
    }
}
