//! Hot reload: the policy directory is watched (and SIGHUP asks for a reload); a changed set
//! is compiled off the async runtime and swapped in whole. A set with any problem is rejected
//! with every problem reported, and the set already serving keeps serving.
//!
//! Only events that can change what is read count (a file created, written, renamed or
//! removed; not one opened, read or closed unwritten, which the reload itself causes), a
//! burst of them is left to settle, and a reload whose inputs have the same digest as the
//! last one is skipped. SIGHUP and the admin service reload whatever the digest.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use pdp_engine::PolicySet;
use tokio::sync::mpsc;

use crate::state::State;

/// How long a burst of file events is left to settle before reloading (editors and
/// deployment tools write several files, or one file several times): a reload waits until
/// no event came for this long.
pub const SETTLE: Duration = Duration::from_millis(200);

/// The longest a reload waits for a burst to settle.
pub const MAX_SETTLE: Duration = Duration::from_secs(2);

/// Reload outcomes, for operators (the admin service) and tests.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Sets swapped in.
    pub reloads: AtomicU64,
    /// Sets rejected.
    pub failures: AtomicU64,
    /// Reloads skipped: file events, but the inputs' digest had not changed.
    pub unchanged: AtomicU64,
    /// The last reload tried.
    pub last: std::sync::Mutex<Option<Outcome>>,
    /// Whether a set with no statements (which denies everything) may be swapped in.
    pub allow_empty: AtomicBool,
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the set was swapped in (or was unchanged).
    pub accepted: bool,
    /// The revision now serving.
    pub revision: String,
    /// Every problem of a rejected set.
    pub problems: Vec<String>,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Why reloading could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The directory cannot be watched.
    #[error("cannot watch `{dir}`: {source}")]
    Watch {
        /// The directory.
        dir: String,
        /// The cause.
        source: notify::Error,
    },
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// A file event: reload only if the inputs changed.
    Files,
    /// SIGHUP: reload.
    Signal,
}

/// Whether a watcher event can change what a reload reads.
fn is_change(event: &notify::Event) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Any
        | EventKind::Other => true,
    }
}

/// Starts reloading `dir` into `state` on changes (when `watch`) and on SIGHUP; runs until
/// the runtime stops.
pub fn spawn(dir: PathBuf, state: Arc<State>, watch: bool) -> Result<(), ReloadError> {
    // Events only need to say "something changed": a full channel already says so (a
    // signal waits for room, so it is never lost).
    let (tx, mut rx) = mpsc::channel::<Trigger>(1);
    let watcher = if watch {
        let events = tx.clone();
        let mut w = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // An error may hide a change: count it as one (the digest tells).
            if !matches!(&event, Ok(e) if !is_change(e)) {
                let _ = events.try_send(Trigger::Files);
            }
        })
        .map_err(|source| ReloadError::Watch {
            dir: dir.display().to_string(),
            source,
        })?;
        w.watch(&dir, notify::RecursiveMode::NonRecursive)
            .map_err(|source| ReloadError::Watch {
                dir: dir.display().to_string(),
                source,
            })?;
        Some(w)
    } else {
        None
    };
    #[cfg(unix)]
    {
        let hup = tx.clone();
        tokio::spawn(async move {
            let Ok(mut signal) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP; reloads follow file changes only");
                return;
            };
            while signal.recv().await.is_some() {
                let _ = hup.send(Trigger::Signal).await;
            }
        });
    }
    drop(tx);
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        // The digest of the inputs of the last reload; none yet: the set serving was
        // loaded before the watch began, so the first change always reloads.
        let mut last: Option<[u8; 32]> = None;
        while let Some(first) = rx.recv().await {
            let mut forced = first == Trigger::Signal;
            let started = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(SETTLE).await;
                let mut more = false;
                while let Ok(t) = rx.try_recv() {
                    more = true;
                    forced |= t == Trigger::Signal;
                }
                if !more || started.elapsed() >= MAX_SETTLE {
                    break;
                }
            }
            let path = dir.clone();
            let digest = tokio::task::spawn_blocking(move || inputs_digest(&path))
                .await
                .ok()
                .flatten();
            if !forced && digest.is_some() && digest == last {
                state.reloads.unchanged.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(dir = %dir.display(), "policy files unchanged, no reload");
                continue;
            }
            last = digest;
            reload(&dir, &state, &state.reloads).await;
        }
    });
    Ok(())
}

/// A digest of what a reload reads: the name and content of every file of the directory
/// with a policy extension (policies, bindings, routes), read as the loader reads them, and
/// of the inventory's files.
/// `None` when the directory cannot be read (a reload then reports why).
fn inputs_digest(dir: &Path) -> Option<[u8; 32]> {
    use sha2::Digest;
    use std::io::Read;
    let canonical = dir.canonicalize().ok()?;
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
                || is_inventory_file(p)
        })
        .collect();
    names.sort();
    let mut hash = sha2::Sha256::new();
    let mut text = Vec::new();
    for path in names {
        let name = path.file_name()?.as_encoded_bytes();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name);
        text.clear();
        match pdp_engine::contained_file(&canonical, &path) {
            Ok(Some(target)) => {
                let file = std::fs::File::open(target).ok()?;
                let max = if is_inventory_file(&path) {
                    crate::search::inventory::MAX_RESOURCES_BYTES
                } else {
                    pdp_engine::MAX_DOCUMENT_BYTES as u64
                };
                file.take(max + 1).read_to_end(&mut text).ok()?;
                hash.update([1]);
            }
            Ok(None) => hash.update([0]),
            Err(_) => hash.update([2]),
        }
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(&text);
    }
    Some(hash.finalize().into())
}

/// Loads the policy set of `dir`: every policy document and the bindings, not the route
/// table beside them ([`crate::extauthz::routes::ROUTES_FILE`]). How `pdp serve` and every
/// CLI command read a policy directory.
pub fn load_policies(dir: &Path) -> Result<PolicySet, pdp_engine::LoadError> {
    let options = pdp_engine::LoadOptions::new().skip(crate::extauthz::routes::ROUTES_FILE);
    PolicySet::load_dir_with(dir, &options)
}

/// Whether `path` is one of the inventory's files (read whole, not as a policy).
fn is_inventory_file(path: &Path) -> bool {
    use crate::search::inventory::{ACTIONS_FILE, RESOURCES_FILE};
    path.file_name()
        .is_some_and(|n| n == RESOURCES_FILE || n == ACTIONS_FILE)
}

/// Why a set with no statements is refused (unless `--allow-empty-policies`).
pub fn empty_set_problem(dir: &Path) -> String {
    format!(
        "`{}` holds no policy statements, so every request would be denied; \
         pass --allow-empty-policies (or `allow_empty_policies = true`) if that is intended",
        dir.display()
    )
}

/// Compiles `dir` off the runtime and swaps it in, or reports why not.
pub async fn reload(dir: &std::path::Path, state: &State, stats: &ReloadStats) -> Outcome {
    let path = dir.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || {
        load_policies(&path).map(|set| {
            let routes = crate::extauthz::routes::RouteTable::load_dir(&path).and_then(|routes| {
                crate::search::inventory::Inventory::load_dir(&path)
                    .map(|inventory| (routes, inventory))
                    .map_err(|e| e.0)
            });
            (set, routes)
        })
    })
    .await;
    let serving = || state.snapshot().set.revision().to_owned();
    let outcome = match loaded {
        Ok(Ok((_, Err(problems)))) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                dir = %dir.display(),
                serving = %serving(),
                "routes or inventory rejected, the serving set, routes and inventory stay: {}",
                problems.join("; ")
            );
            Outcome {
                accepted: false,
                revision: serving(),
                problems,
                at: chrono::Utc::now(),
            }
        }
        Ok(Ok((set, Ok(_))))
            if set.statement_count() == 0 && !stats.allow_empty.load(Ordering::Relaxed) =>
        {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            let problem = empty_set_problem(dir);
            tracing::error!(
                dir = %dir.display(),
                serving = %serving(),
                "policy set rejected, the serving set stays: {problem}"
            );
            Outcome {
                accepted: false,
                revision: serving(),
                problems: vec![problem],
                at: chrono::Utc::now(),
            }
        }
        Ok(Ok((set, Ok((routes, inventory))))) => {
            let old = serving();
            let serving_now = state.snapshot();
            let routes_changed = serving_now.routes != routes;
            let inventory_changed = serving_now.inventory.revision() != inventory.revision();
            // Unchanged, the inventory serving is kept (and its index with it).
            let inventory = if inventory_changed {
                Arc::new(inventory)
            } else {
                serving_now.inventory.clone()
            };
            drop(serving_now);
            let set_changed = set.revision() != old;
            if routes_changed {
                tracing::info!(dir = %dir.display(), routes = routes.len(), "routes reloaded");
            }
            if inventory_changed {
                tracing::info!(
                    dir = %dir.display(),
                    resources = inventory.resource_count(),
                    actions = inventory.actions().len(),
                    revision = %inventory.revision(),
                    "inventory reloaded"
                );
            }
            if set_changed {
                tracing::info!(
                    dir = %dir.display(),
                    from = %old,
                    to = %set.revision(),
                    statements = set.statement_count(),
                    "policy set reloaded"
                );
            }
            if set_changed || routes_changed || inventory_changed {
                let revision = set.revision().to_owned();
                let statements = set.statement_count();
                // The set, its routes and the inventory go out together: no call sees one
                // without the others.
                state.publish(crate::state::Snapshot::new(set, routes).with_inventory(inventory));
                if set_changed {
                    crate::metrics::metrics().policy_serving(&revision, statements);
                    state.signals.store.policy_changed(&revision);
                    stats.reloads.fetch_add(1, Ordering::Relaxed);
                }
                Outcome {
                    accepted: true,
                    revision,
                    problems: Vec::new(),
                    at: chrono::Utc::now(),
                }
            } else {
                Outcome {
                    accepted: true,
                    revision: old,
                    problems: Vec::new(),
                    at: chrono::Utc::now(),
                }
            }
        }
        Ok(Err(e)) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                dir = %dir.display(),
                serving = %serving(),
                "policy set rejected, the serving set stays: {e}"
            );
            let problems = match e {
                pdp_engine::LoadError::Compile(errors) => {
                    errors.0.iter().map(ToString::to_string).collect()
                }
                other => vec![other.to_string()],
            };
            Outcome {
                accepted: false,
                revision: serving(),
                problems,
                at: chrono::Utc::now(),
            }
        }
        Err(e) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(dir = %dir.display(), "policy reload failed: {e}");
            Outcome {
                accepted: false,
                revision: serving(),
                problems: vec![e.to_string()],
                at: chrono::Utc::now(),
            }
        }
    };
    crate::metrics::metrics()
        .reloads
        .get_or_create(&crate::metrics::ResultLabel {
            result: if outcome.accepted {
                "accepted"
            } else {
                "rejected"
            },
        })
        .inc();
    if let Ok(mut last) = stats.last.lock() {
        *last = Some(outcome.clone());
    }
    outcome
}
