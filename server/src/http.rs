//! The HTTP port: AuthZEN, SSF push delivery (RFC 8935) at `POST /ssf/push`, Prometheus
//! metrics at `/metrics` (or on a port of their own), and `/healthz`, `/readyz`. HTTP/1.1
//! only; connections are bounded like the gRPC port's (see [`crate::conn`]), and calls
//! count against the process-wide in-flight limit (a `503` over it; health and metrics are
//! exempt).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::signals::shared::PublishError;
use crate::signals::ssf::{Delivery, SsfError};
use crate::state::State;

pub use crate::serve::MAX_BODY_BYTES;

/// The HTTP routes over `state`; `/metrics` among them when `with_metrics`.
pub fn router(state: Arc<State>, with_metrics: bool) -> Router {
    // Calls that do work count against the process-wide limit; probes and metrics do not.
    let limited = Router::new()
        .route("/ssf/push", post(push))
        .merge(crate::authzen::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), shed));
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(limited);
    if with_metrics {
        router = router.route("/metrics", get(metrics));
    }
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Who is calling, once per request (the gRPC port's `CallerLayer` does the same).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            identify,
        ))
        .with_state(state)
}

/// Puts the request's [`crate::caller::Caller`] in its extensions: the connection's
/// address under the trust policy (this port takes no client certificates, and grants no
/// admin access).
async fn identify(
    Extract(state): Extract<Arc<State>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let caller = crate::caller::Caller::identify(&state.trust, peer, Vec::new());
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The metrics port's routes: `/metrics` only.
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics))
}

/// `503` when the process-wide in-flight limit is reached.
async fn shed(
    Extract(state): Extract<Arc<State>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(permit) = state.in_flight.try_take() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            format!(
                "more than {} calls in flight on this server\n",
                state.in_flight.limit()
            ),
        )
            .into_response();
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// Serves `router` on `listener` until `shutdown` completes, each connection through
/// `gate`, with HTTP/1 request headers due within `limits.handshake_timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: crate::serve::ServeLimits,
    gate: crate::conn::Gate,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to be freed.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set: {e}");
        }
        let Some(io) = gate.admit(tcp) else {
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(router.clone(), request)
            },
        );
        let connection = http1.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection closed: {e}");
            }
        });
    }
}

/// An RFC 8935 error answer.
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::json!({ "err": code, "description": description });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refused(e: &SsfError) -> Response {
    tracing::info!(code = e.code(), "SSF delivery refused: {}", e.description());
    error(StatusCode::BAD_REQUEST, e.code(), e.description())
}

async fn push(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // The transmitter's trace, continued when tracing is on.
    let traced = state.telemetry.as_ref().and_then(|t| {
        t.call("POST /ssf/push", &t.from_headers(&headers), || {
            vec![
                opentelemetry::KeyValue::new("http.request.method", "POST"),
                opentelemetry::KeyValue::new("http.route", "/ssf/push"),
            ]
        })
    });
    let response = receive(&state, &headers, &body).await;
    if let Some(t) = traced {
        t.set([opentelemetry::KeyValue::new(
            "http.response.status_code",
            i64::from(response.status().as_u16()),
        )]);
    }
    response
}

async fn receive(state: &Arc<State>, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(verifier) = &state.ssf else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "this PDP accepts no SSF push deliveries: no transmitter is configured",
        );
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/secevent+jwt") {
        return refused(&SsfError::InvalidRequest(format!(
            "the content type must be `application/secevent+jwt`, not `{media}`"
        )));
    }
    let now = chrono::Utc::now().timestamp();
    let signals = match verifier.verify(body, now) {
        Ok(Delivery::Verification { issuer, state: st }) => {
            tracing::info!(%issuer, "SSF verification event received");
            state
                .signals
                .verifications
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut last) = state.signals.last_verification.lock() {
                *last = st.unwrap_or_default();
            }
            return StatusCode::ACCEPTED.into_response();
        }
        Ok(Delivery::Signals(signals)) => signals,
        Err(e) => return refused(&e),
    };
    for s in &signals {
        tracing::info!(
            kind = s.kind.as_str(),
            subject = %s.subject,
            session = %s.session,
            device = %s.device,
            "signal received by SSF push"
        );
    }
    match state.signals.publish(&signals, "ssf").await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(PublishError::Full(f)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &f.to_string(),
        ),
        Err(PublishError::Unavailable(e)) => {
            // In force here; the SET's jti is spent, so keep trying to share it rather than
            // asking the transmitter to send it again.
            tracing::warn!("an SSF delivery is not shared yet: {e}");
            let shared = state.signals.clone();
            tokio::spawn(async move {
                let mut wait = Duration::from_millis(200);
                for _ in 0..40 {
                    tokio::time::sleep(wait).await;
                    if shared.share(&signals).await.is_ok() {
                        return;
                    }
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
                tracing::error!("an SSF delivery could not be shared with the other replicas");
            });
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// The metrics: OpenMetrics 1.0 to a scraper that asks for it (Prometheus does), else the
/// Prometheus 0.0.4 text format.
async fn metrics(headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let m = crate::metrics::metrics();
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            m.render(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            m.render_prometheus_text(),
        )
            .into_response()
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready unless the shared signal store is stale.
async fn readyz(Extract(state): Extract<Arc<State>>) -> Response {
    if state.signals.stale() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "signals stale: the shared signal store is out of reach\n",
        )
            .into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}
