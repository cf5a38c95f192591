//! `pdp serve`: the gRPC service on one port, with `grpc.health.v1.Health` and server
//! reflection beside `pdp.v1.AuthorizationService`.

use std::future::Future;
use std::sync::Arc;

use pdp_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::grpc::Authorizer;
use crate::state::State;

/// Largest request message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Largest HTTP request body accepted (AuthZEN, SSF push), in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be set up.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Transport limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Calls served at once on one connection; more are refused with `RESOURCE_EXHAUSTED`
    /// at once, never queued.
    pub concurrency_per_connection: usize,
    /// A call still running after this is cancelled.
    pub call_timeout: std::time::Duration,
    /// HTTP/2 streams a client may open at once on one connection (advertised in SETTINGS
    /// as `MAX_CONCURRENT_STREAMS`).
    pub max_streams: u32,
    /// Calls in flight in the whole process, both ports; more are refused at once
    /// (`RESOURCE_EXHAUSTED`, HTTP 503).
    pub max_in_flight: usize,
    /// Connections open at once on the gRPC port; more are closed as they are accepted.
    pub max_connections: usize,
    /// Connections open at once on the HTTP port.
    pub http_max_connections: usize,
    /// A new connection's first bytes (TLS handshake, HTTP/2 preface, HTTP/1 request
    /// headers) must arrive within this.
    pub handshake_timeout: std::time::Duration,
    /// A connection whose peer sends nothing for this long is closed.
    pub idle_timeout: std::time::Duration,
}

impl ServeLimits {
    /// The gate for the gRPC port's connections.
    pub fn grpc_gate(&self) -> crate::conn::Gate {
        crate::conn::Gate::new(
            self.max_connections,
            self.handshake_timeout,
            self.idle_timeout,
        )
    }

    /// The gate for the HTTP port's connections.
    pub fn http_gate(&self) -> crate::conn::Gate {
        crate::conn::Gate::new(
            self.http_max_connections,
            self.handshake_timeout,
            self.idle_timeout,
        )
    }

    /// The gate for the metrics port's connections: a scraper or two, so at most
    /// [`METRICS_MAX_CONNECTIONS`].
    pub fn metrics_gate(&self) -> crate::conn::Gate {
        crate::conn::Gate::new(
            self.http_max_connections.min(METRICS_MAX_CONNECTIONS),
            self.handshake_timeout,
            self.idle_timeout,
        )
    }

    /// How often an HTTP/2 connection is pinged, and how long an answer may take: a third
    /// of the idle timeout each, so that a live peer's answers keep it open.
    pub fn keepalive(&self) -> std::time::Duration {
        (self.idle_timeout / 3).max(std::time::Duration::from_millis(100))
    }
}

/// TLS for the listener: the server's certificate chain and key, and when client
/// certificates are required (mutual TLS), the CA that signs them (all PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: Vec<u8>,
    /// Private key.
    pub key: Vec<u8>,
    /// CA for client certificates; `None`: no client certificate asked.
    pub client_ca: Option<Vec<u8>>,
}

/// Most connections open at once on the metrics port.
pub const METRICS_MAX_CONNECTIONS: usize = 32;

/// The limits `pdp serve` applies unless configured otherwise.
pub const DEFAULT_SERVE_LIMITS: ServeLimits = ServeLimits {
    concurrency_per_connection: 256,
    call_timeout: std::time::Duration::from_secs(2),
    max_streams: 100,
    max_in_flight: 1024,
    max_connections: 512,
    http_max_connections: 256,
    handshake_timeout: std::time::Duration::from_secs(10),
    idle_timeout: std::time::Duration::from_secs(60),
};

/// Serves on `listener` until `shutdown` completes, then drains in-flight calls.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    limits: ServeLimits,
    tls: Option<&TlsFiles>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::authorization_service_server::AuthorizationServiceServer<Authorizer>>()
        .await;
    // Both reflection versions: grpcurl and ghz releases still ask v1alpha. Each lists
    // every service served, both reflection services and Envoy's ext_authz included.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pdp_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(pdp_proto::ENVOY_EXT_AUTHZ_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    // `pdp.v1.SignalService` is NOT_SERVING while the shared signal store is stale.
    let signals = state.signals.clone();
    let reporter = health_reporter.clone();
    tokio::spawn(async move {
        let mut was_stale = None;
        loop {
            let stale = signals.stale();
            crate::metrics::metrics()
                .signals_stale
                .set(i64::from(stale));
            if was_stale != Some(stale) {
                if stale {
                    reporter
                        .set_not_serving::<pb::signal_service_server::SignalServiceServer<
                            crate::grpc::signals::SignalService,
                        >>()
                        .await;
                } else {
                    reporter
                        .set_serving::<pb::signal_service_server::SignalServiceServer<
                            crate::grpc::signals::SignalService,
                        >>()
                        .await;
                }
                was_stale = Some(stale);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let admin = pb::admin_service_server::AdminServiceServer::new(crate::grpc::admin::Admin::new(
        state.clone(),
    ));
    let ext_authz = envoy_types::ext_authz::v3::pb::AuthorizationServer::new(
        crate::extauthz::ExtAuthz::new(state.clone()),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let signal_service = pb::signal_service_server::SignalServiceServer::new(
        crate::grpc::signals::SignalService::new(state.clone()),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let in_flight = state.in_flight.clone();
    let callers = crate::caller::CallerLayer::new(state.trust.clone());
    let authorization =
        pb::authorization_service_server::AuthorizationServiceServer::new(Authorizer::new(state))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
    // Answers go out at once: without TCP_NODELAY, a response of more than one segment can
    // wait for the client's delayed ACK (tens of milliseconds). Connections over the cap are
    // closed here, before TLS or HTTP/2 spend anything on them.
    let gate = limits.grpc_gate();
    let incoming = tokio_stream::StreamExt::filter_map(
        TcpListenerStream::new(listener),
        move |conn| match conn {
            Ok(c) => {
                if let Err(e) = c.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY not set: {e}");
                }
                gate.admit(c).map(Ok)
            }
            Err(e) => Some(Err(e)),
        },
    );
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_streams)
        .http2_keepalive_interval(Some(limits.keepalive()))
        .http2_keepalive_timeout(Some(limits.keepalive()));
    if let Some(tls) = tls {
        let mut config = tonic::transport::ServerTlsConfig::new()
            .timeout(limits.handshake_timeout)
            .identity(tonic::transport::Identity::from_pem(&tls.cert, &tls.key));
        if let Some(ca) = &tls.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config)?;
    }
    builder
        .timeout(limits.call_timeout)
        // Shed, don't queue: a call over the connection's or the server's limit is refused
        // at once (RESOURCE_EXHAUSTED).
        .layer(crate::shed::ShedLayer::new(
            limits.concurrency_per_connection,
            in_flight,
        ))
        // Unreadable requests are the caller's fault: INVALID_ARGUMENT / RESOURCE_EXHAUSTED.
        .layer(crate::decode_errors::DecodeErrorsLayer)
        // Who is calling, once per request, for every service below (innermost: only calls
        // that were admitted pay for it).
        .layer(callers)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(authorization)
        .add_service(admin)
        .add_service(signal_service)
        .add_service(ext_authz)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
