//! Who is calling, decided once per request: [`CallerLayer`] on the gRPC port and the HTTP
//! server (per connection) put a [`Caller`] in the request's extensions, and every front
//! end asks it, never the transport, whether the caller may ask for decisions, may assert
//! identity, or may administer. The trust rules themselves are [`crate::trust`]'s; this
//! module only applies them to one request. It decides nothing about policies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::decider::ServiceError;
use crate::trust::{AdminRefusal, TrustPolicy};

/// One request's caller and what it may do.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The peer's address, when known.
    pub addr: Option<SocketAddr>,
    /// The URI and DNS names of its client certificate (mutual TLS); empty without one.
    pub sans: Vec<String>,
    /// It may ask for decisions at all (`trust.check_callers`).
    pub may_check: bool,
    /// It may assert subjects' identity without a token (loopback, or a trusted
    /// certificate).
    pub trusted: bool,
    /// What the admin grant is decided from when a service asks
    /// ([`Caller::require_admin`]), so that a decision pays nothing for it; `None` where
    /// none can be held (the HTTP port).
    admin: Option<AdminClaim>,
}

/// The request's claim to the admin grant: its bearer token, if any (the address and
/// certificate names are the caller's).
#[derive(Debug, Clone)]
struct AdminClaim {
    bearer: Option<String>,
}

impl Caller {
    /// The caller at `addr` with client certificate names `sans`, under `trust`. It holds
    /// no admin grant; see [`Caller::claiming_admin`].
    pub fn identify(trust: &TrustPolicy, addr: Option<SocketAddr>, sans: Vec<String>) -> Caller {
        Caller {
            addr,
            may_check: trust.may_check(addr, &sans),
            trusted: trust.trusts(addr, &sans),
            sans,
            admin: None,
        }
    }

    /// The caller, whose admin grant is decided (when asked) from its address, certificate
    /// and bearer token `bearer` (the `authorization: Bearer` header, if any).
    pub fn claiming_admin(mut self, bearer: Option<&str>) -> Caller {
        self.admin = Some(AdminClaim {
            bearer: bearer.map(str::to_owned),
        });
        self
    }

    /// A caller nothing is known of: it may do nothing (a request that did not pass through
    /// the layer is refused, never trusted).
    pub fn unknown() -> Caller {
        Caller {
            addr: None,
            sans: Vec::new(),
            may_check: false,
            trusted: false,
            admin: None,
        }
    }

    /// The caller of a gRPC request.
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::unknown)
    }

    /// `PERMISSION_DENIED` unless it may ask for decisions.
    pub fn require_check(&self) -> Result<(), ServiceError> {
        if self.may_check {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(
                "this caller may not ask for decisions".into(),
            ))
        }
    }

    /// `PERMISSION_DENIED` unless it is trusted; `what` says what it may not do.
    pub fn require_trusted(&self, what: &str) -> Result<(), ServiceError> {
        if self.trusted {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(format!(
                "only trusted callers may {what}"
            )))
        }
    }

    /// `PERMISSION_DENIED` unless it holds the admin grant, `UNAUTHENTICATED` for a wrong
    /// bearer token; `what` says what it may not do.
    pub fn require_admin(&self, trust: &TrustPolicy, what: &str) -> Result<(), ServiceError> {
        let granted = self.admin.as_ref().map_or(Err(AdminRefusal::NoGrant), |c| {
            trust.may_administer(self.addr, &self.sans, c.bearer.as_deref())
        });
        match granted {
            Ok(()) => Ok(()),
            Err(AdminRefusal::BadToken) => {
                tracing::info!(peer = ?self.addr, "admin call refused: wrong bearer token");
                Err(ServiceError::Unauthenticated(
                    "the bearer token is not the admin token".into(),
                ))
            }
            Err(AdminRefusal::NoGrant) => Err(ServiceError::PermissionDenied(format!(
                "only callers granted admin access may {what} (the admin token as \
                 `authorization: Bearer`, or a client certificate listed in `trust.admin_callers`)"
            ))),
        }
    }

    /// Its certificate names as the decision log shows them: each after a space.
    pub fn sans_field(&self) -> String {
        let mut out = String::new();
        for san in self.sans.iter() {
            out.push(' ');
            out.push_str(san);
        }
        out
    }
}

/// The token of an `authorization: Bearer <token>` header value.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Puts the [`Caller`] of each gRPC request in its extensions, from the connection's
/// address and client certificate and the request's `authorization` header.
#[derive(Debug, Clone)]
pub struct CallerLayer {
    trust: Arc<TrustPolicy>,
}

impl CallerLayer {
    /// The layer applying `trust`.
    pub fn new(trust: TrustPolicy) -> Self {
        CallerLayer {
            trust: Arc::new(trust),
        }
    }
}

impl<S> tower::Layer<S> for CallerLayer {
    type Service = Identify<S>;

    fn layer(&self, inner: S) -> Identify<S> {
        Identify {
            inner,
            trust: self.trust.clone(),
        }
    }
}

/// The service [`CallerLayer`] makes.
#[derive(Debug, Clone)]
pub struct Identify<S> {
    inner: S,
    trust: Arc<TrustPolicy>,
}

impl<S, B> tower::Service<http::Request<B>> for Identify<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let ext = request.extensions();
        let tls = ext.get::<TlsConnectInfo<TcpConnectInfo>>();
        let addr = ext
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .or_else(|| tls.and_then(|i| i.get_ref().remote_addr()));
        // Certificate names are parsed once per request, only when there is a certificate.
        let sans = tls
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|certs| certs.first().map(crate::trust::sans_of))
            .unwrap_or_default();
        let bearer = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let caller = Caller::identify(&self.trust, addr, sans).claiming_admin(bearer);
        request.extensions_mut().insert(caller);
        self.inner.call(request)
    }
}
