//! Hot reload: the policy directory is watched (and SIGHUP asks for a reload); a changed set
//! is compiled off the async runtime and swapped in whole. A set with any problem is rejected
//! with every problem reported, and the set already serving keeps serving.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use pdp_engine::PolicySet;
use tokio::sync::mpsc;

use crate::grpc::State;

/// How long a burst of file events is left to settle before reloading (editors and
/// deployment tools write several files, or one file several times).
pub const SETTLE: Duration = Duration::from_millis(200);

/// Reload outcomes, for operators (the admin service) and tests.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Sets swapped in.
    pub reloads: AtomicU64,
    /// Sets rejected.
    pub failures: AtomicU64,
    /// The last reload tried.
    pub last: std::sync::Mutex<Option<Outcome>>,
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

/// Starts reloading `dir` into `state` on changes (when `watch`) and on SIGHUP; runs until
/// the runtime stops.
pub fn spawn(dir: PathBuf, state: Arc<State>, watch: bool) -> Result<(), ReloadError> {
    // Events only need to say "something changed": a full channel already says so.
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = if watch {
        let events = tx.clone();
        let mut w = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = events.try_send(());
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
                let _ = hup.send(()).await;
            }
        });
    }
    drop(tx);
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            reload(&dir, &state, &state.reloads).await;
        }
    });
    Ok(())
}

/// Compiles `dir` off the runtime and swaps it in, or reports why not.
pub async fn reload(dir: &std::path::Path, state: &State, stats: &ReloadStats) -> Outcome {
    let path = dir.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || {
        PolicySet::load_dir(&path)
            .map(|set| (set, crate::extauthz::routes::RouteTable::load_dir(&path)))
    })
    .await;
    let serving = || state.set.load().revision().to_owned();
    let outcome = match loaded {
        Ok(Ok((_, Err(problems)))) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                dir = %dir.display(),
                serving = %serving(),
                "routes rejected, the serving set and routes stay: {}",
                problems.join("; ")
            );
            Outcome {
                accepted: false,
                revision: serving(),
                problems,
                at: chrono::Utc::now(),
            }
        }
        Ok(Ok((set, Ok(routes)))) => {
            if **state.routes.load() != routes {
                tracing::info!(dir = %dir.display(), routes = routes.len(), "routes reloaded");
                state.routes.store(Arc::new(routes));
            }
            let old = serving();
            if set.revision() != old {
                tracing::info!(
                    dir = %dir.display(),
                    from = %old,
                    to = %set.revision(),
                    statements = set.statement_count(),
                    "policy set reloaded"
                );
                let revision = set.revision().to_owned();
                crate::metrics::metrics().policy_serving(&revision, set.statement_count());
                state.set_policies(set);
                state.signals.store.policy_changed(&revision);
                stats.reloads.fetch_add(1, Ordering::Relaxed);
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
