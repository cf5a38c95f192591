//! `pdp serve`'s wiring, as a list of steps: read what the configuration names (policies
//! and routes, keys, TLS files, signals, transmitters, the decision log), start the runtime,
//! bind the ports, build the [`State`], start the side tasks (HTTP and metrics ports, key
//! refresh, reloads), serve until stopped, then close the log and flush traces. Each step
//! says what failed and exits with the code `pdp serve` documents; none decides anything.

use std::path::Path;
use std::sync::Arc;

use crate::cli::{EXIT_POLICIES, EXIT_SERVE, EXIT_USAGE};
use crate::config::{JwksUrl, ServeConfig};
use crate::state::{Snapshot, State};

/// How long a graceful stop waits for connections to close.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why `pdp serve` stopped before serving: its exit code and what to print (`None`: printed
/// already).
struct Stop {
    code: u8,
    message: Option<String>,
}

fn stop(code: u8) -> impl FnOnce(String) -> Stop {
    move |message| Stop {
        code,
        message: Some(message),
    }
}

/// Runs `pdp serve` with `config`; the process's exit code.
pub fn serve(config: &ServeConfig) -> u8 {
    crate::metrics::metrics().set_enabled(config.metrics);
    match start(config) {
        Ok(()) => 0,
        Err(Stop { code, message }) => {
            if let Some(m) = message {
                eprintln!("error: {m}");
            }
            code
        }
    }
}

/// What is read before the runtime starts.
struct Prepared {
    snapshot: Snapshot,
    verifier: Option<crate::identity::Verifier>,
    tls: Option<crate::serve::TlsFiles>,
    signals: Arc<crate::signals::shared::Signals>,
    ssf: Option<crate::signals::ssf::SetVerifier>,
    audit: Option<crate::audit::DecisionLog>,
}

fn start(config: &ServeConfig) -> Result<(), Stop> {
    let prepared = Prepared {
        snapshot: policies(&config.policies, config.allow_empty_policies)?,
        verifier: file_verifier(config)?,
        tls: tls_files(config)?,
        signals: crate::signals::shared::Signals::new(&config.signals)
            .map(Arc::new)
            .map_err(|e| stop(EXIT_USAGE)(e.to_string()))?,
        ssf: ssf_verifier(config)?,
        audit: config
            .decision_log
            .clone()
            .map(crate::audit::DecisionLog::open)
            .transpose()
            .map_err(|e| stop(EXIT_USAGE)(format!("the decision log: {e}")))?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| stop(EXIT_SERVE)(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(config, prepared))
}

/// The policy set, its routes and the inventory, all from `dir`; the set refused when
/// empty unless allowed.
fn policies(dir: &Path, allow_empty: bool) -> Result<Snapshot, Stop> {
    let set = crate::cli::load(dir).map_err(|code| Stop {
        code,
        message: None,
    })?;
    if set.statement_count() == 0 && !allow_empty {
        return Err(stop(EXIT_POLICIES)(crate::reload::empty_set_problem(dir)));
    }
    let routes = crate::extauthz::routes::RouteTable::load_dir(dir).map_err(|problems| {
        for p in &problems {
            eprintln!("error: {p}");
        }
        Stop {
            code: EXIT_POLICIES,
            message: None,
        }
    })?;
    let inventory = crate::search::inventory::Inventory::load_dir(dir).map_err(|problems| {
        for p in &problems.0 {
            eprintln!("error: {p}");
        }
        Stop {
            code: EXIT_POLICIES,
            message: None,
        }
    })?;
    Ok(Snapshot::new(set, routes).with_inventory(Arc::new(inventory)))
}

/// The verifier of a JWKS file, when tokens are checked with fixed keys.
fn file_verifier(config: &ServeConfig) -> Result<Option<crate::identity::Verifier>, Stop> {
    config
        .jwks
        .as_ref()
        .map(|jwks| crate::identity::Verifier::from_jwks_file(jwks, config.identity.clone()))
        .transpose()
        .map_err(|e| stop(EXIT_USAGE)(e.to_string()))
}

/// The verifier of a JWKS URL's keys, fetched once before serving.
async fn fetched_verifier(
    jwks: &JwksUrl,
    config: &ServeConfig,
) -> Result<crate::identity::Verifier, Stop> {
    let set = crate::jwks::fetch(&jwks.url).await;
    set.and_then(|set| {
        crate::identity::Verifier::new(&set, config.identity.clone()).map_err(|e| e.to_string())
    })
    .map_err(|e| stop(EXIT_USAGE)(format!("cannot load the signing keys: {e}")))
}

/// The TLS files' contents.
fn tls_files(config: &ServeConfig) -> Result<Option<crate::serve::TlsFiles>, Stop> {
    let Some(paths) = &config.tls else {
        return Ok(None);
    };
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()));
    let files = (|| -> Result<crate::serve::TlsFiles, String> {
        Ok(crate::serve::TlsFiles {
            cert: read(&paths.cert)?,
            key: read(&paths.key)?,
            client_ca: paths.client_ca.as_deref().map(read).transpose()?,
        })
    })();
    files.map(Some).map_err(stop(EXIT_USAGE))
}

/// The verifier of SSF push deliveries, when transmitters are configured.
fn ssf_verifier(config: &ServeConfig) -> Result<Option<crate::signals::ssf::SetVerifier>, Stop> {
    if config.transmitters.is_empty() {
        return Ok(None);
    }
    let mut transmitters = Vec::new();
    for t in &config.transmitters {
        let keys = std::fs::read_to_string(&t.jwks)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .map_err(|e| {
                stop(EXIT_USAGE)(format!(
                    "transmitter `{}`: cannot read the keys `{}`: {e}",
                    t.issuer,
                    t.jwks.display()
                ))
            })?;
        transmitters.push(crate::signals::ssf::Transmitter {
            issuer: t.issuer.clone(),
            audience: t.audience.clone(),
            keys,
        });
    }
    let verifier = crate::signals::ssf::SetVerifier::new(
        transmitters,
        config.set_max_age,
        config.identity.roles_claims.clone(),
        config.identity.tags_claim.clone(),
    )
    .map_err(|e| stop(EXIT_USAGE)(format!("`signals.transmitters`: {e}")))?;
    Ok(Some(
        verifier.with_claims_authorities(
            config
                .transmitters
                .iter()
                .filter(|t| t.claims_authoritative)
                .map(|t| t.issuer.clone()),
        ),
    ))
}

/// A listener on `addr`; `what` names the port in the error (e.g. `for HTTP `).
async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<tokio::net::TcpListener, Stop> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| stop(EXIT_SERVE)(format!("cannot listen {what}on {addr}: {e}")))
}

async fn run(config: &ServeConfig, prepared: Prepared) -> Result<(), Stop> {
    let Prepared {
        snapshot,
        mut verifier,
        tls,
        signals,
        ssf,
        audit,
    } = prepared;
    let limits = config.limits;
    if let Some(jwks) = &config.jwks_url {
        verifier = Some(fetched_verifier(jwks, config).await?);
    }
    let listener = bind(config.listen, "").await?;
    let http = match config.http_listen {
        Some(a) => Some(bind(a, "for HTTP ").await?),
        None => None,
    };
    let metrics_port = match config.metrics_listen {
        Some(a) => Some(bind(a, "for metrics ").await?),
        None => None,
    };
    signals.start(std::time::Duration::from_secs(2)).await;
    let telemetry = config
        .tracing
        .as_ref()
        .map(crate::telemetry::Telemetry::start)
        .transpose()
        .map_err(|e| stop(EXIT_USAGE)(format!("tracing: {e}")))?;
    // The banner stays the first line; warnings follow it.
    eprintln!(
        "pdp: serving pdp.v1 on {}{} (policies `{}`, revision {}, {} statements; signals {}){}{}",
        listener
            .local_addr()
            .map_or_else(|_| config.listen.to_string(), |a| a.to_string()),
        if tls.is_some() { " over TLS" } else { "" },
        config.policies.display(),
        snapshot.set.revision(),
        snapshot.set.statement_count(),
        signals.kind(),
        port_note(metrics_port.as_ref(), "metrics"),
        port_note(http.as_ref(), "HTTP"),
    );
    warn_exposure(config, tls.is_some());
    let state = Arc::new(State {
        verifier,
        cache: config
            .cache
            .map(|c| crate::cache::DecisionCache::new(c.max_bytes, c.ttl)),
        trust: config.trust.clone(),
        policies: Some(config.policies.clone()),
        signals,
        ssf,
        claims: crate::identity::ClaimNames {
            roles: config.identity.roles_claims.clone(),
            tags: config.identity.tags_claim.clone(),
        },
        audit,
        telemetry,
        authzen_base_url: config.authzen_base_url.clone(),
        in_flight: crate::shed::InFlight::new(limits.max_in_flight),
        ..State::serving(snapshot, config.max_batch_items)
    });
    if let Some(listener) = http {
        let router = crate::http::router(state.clone(), metrics_port.is_none());
        spawn_http(listener, router, limits, limits.http_gate(), "HTTP");
    }
    if let Some(listener) = metrics_port {
        let router = crate::http::metrics_router();
        spawn_http(listener, router, limits, limits.metrics_gate(), "metrics");
    }
    if let Some(jwks) = &config.jwks_url {
        crate::jwks::spawn_refresher(state.clone(), jwks.url.clone(), jwks.refresh, jwks.min_gap);
    }
    state.reloads.allow_empty.store(
        config.allow_empty_policies,
        std::sync::atomic::Ordering::Relaxed,
    );
    crate::reload::spawn(config.policies.clone(), state.clone(), config.watch)
        .map_err(|e| stop(EXIT_SERVE)(e.to_string()))?;
    let serving = serve_until_stopped(listener, state.clone(), limits, tls.as_ref()).await;
    close(&state).await;
    match serving {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(())
        }
        Err(e) => Err(stop(EXIT_SERVE)(e.to_string())),
    }
}

/// `, NAME on ADDR` for a port that is open.
fn port_note(listener: Option<&tokio::net::TcpListener>, name: &str) -> String {
    listener
        .and_then(|l| l.local_addr().ok())
        .map(|a| format!(", {name} on {a}"))
        .unwrap_or_default()
}

/// Serves `router` on `listener` in a task of its own; `name` names the port in the log.
fn spawn_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: crate::serve::ServeLimits,
    gate: crate::conn::Gate,
    name: &'static str,
) {
    tokio::spawn(async move {
        if let Err(e) =
            crate::http::serve(listener, router, limits, gate, std::future::pending()).await
        {
            tracing::error!("the {name} port stopped: {e}");
        }
    });
}

/// Serves the gRPC port until Ctrl-C or SIGTERM, then drains for at most
/// [`SHUTDOWN_GRACE`].
async fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    limits: crate::serve::ServeLimits,
    tls: Option<&crate::serve::TlsFiles>,
) -> Result<(), crate::serve::ServeError> {
    let (stopping, mut stop_seen) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    };
    let grace = async move {
        let _ = stop_seen.changed().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        r = crate::serve::serve(listener, state, limits, tls, shutdown) => r,
        () = grace => {
            tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after the stop signal: stopping anyway");
            Ok(())
        }
    }
}

/// The last decision log records with a closing checkpoint, and the buffered spans.
async fn close(state: &Arc<State>) {
    if let Some(log) = &state.audit {
        log.close(std::time::Duration::from_secs(5));
    }
    if state.telemetry.is_some() {
        // Blocking export: off the async threads.
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(t) = &state.telemetry {
                t.shutdown();
            }
        })
        .await;
    }
}

/// Warns about settings that expose the server: plaintext beyond loopback, and the
/// development-only admin grant.
fn warn_exposure(config: &crate::config::ServeConfig, tls: bool) {
    if !tls && !config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.listen,
            "serving gRPC beyond loopback without TLS: tokens, subjects and decisions travel in clear (set `tls.cert` and `tls.key`)"
        );
    }
    if let Some(a) = config.http_listen.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            http_listen = %a,
            "serving HTTP beyond loopback, where it has no TLS: put it behind a TLS proxy or keep it on loopback"
        );
    }
    if config.trust.admin.loopback {
        tracing::warn!(
            "every loopback caller may use the admin service and publish signals (`trust.admin_loopback`): for development only"
        );
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
