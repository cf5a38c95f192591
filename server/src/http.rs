//! The HTTP port: SSF push delivery (RFC 8935) at `POST /ssf/push`, Prometheus metrics at
//! `/metrics`, and `/healthz`, `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::grpc::State;
use crate::signals::shared::PublishError;
use crate::signals::ssf::{Delivery, SsfError};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The HTTP routes over `state`.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/ssf/push", post(push))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::authzen::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set: {e}");
        }
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
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

/// The Prometheus text exposition.
async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::metrics().render(),
    )
        .into_response()
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
