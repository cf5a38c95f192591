//! [`AuthorizeLayer`]: the policy enforcement point inside an application, as a tower
//! middleware in front of an axum or tonic service (or any `http` service).
//!
//! Every request is turned into a [`pb::CheckRequest`] by a [`CheckMapper`] (a closure, or
//! the ready-made [`RouteMapper`]), checked with [`PdpClient::check`], and then:
//!
//! - allowed: the obligation handlers run, the [`Decision`] is inserted into the request's
//!   extensions, and the inner service is called;
//! - denied: the inner service is never called. HTTP callers get a 403 with a JSON body
//!   `{"decision":"deny","decision_id":…,"reason":…}`; gRPC callers (`content-type:
//!   application/grpc…`) get a trailers-only response with `grpc-status: 7`
//!   (`PERMISSION_DENIED`);
//! - a `step-up` obligation (with an allow or a deny): 401 with `WWW-Authenticate: Bearer
//!   error="insufficient_user_authentication", acr_values="…"` (RFC 9470); gRPC:
//!   `grpc-status: 16` (`UNAUTHENTICATED`) with the same `www-authenticate` metadata;
//! - a token the PDP could not verify: 401 with `WWW-Authenticate: Bearer
//!   error="invalid_token"` (gRPC: `UNAUTHENTICATED`);
//! - an obligation of a type no handler was registered for: denied (the AuthZEN rule: a PEP
//!   that cannot carry out an obligation must not allow);
//! - a request that could not be checked at all ([`ClientError`]) or a PDP that could not
//!   answer: denied (fail closed).
//!
//! Every response comes back with a [`ResponseBody`] (tonic's body type), which both tonic's
//! server and axum's `Router::layer` accept: the inner service's body is wrapped, not copied.
//!
//! The file keeps tower's anatomy in three parts: the layer, the service, the future.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use pdp_proto::v1 as pb;
pub use pdp_routes::PathOptions;
use pdp_routes::{fill, match_path, normalize_path, parse_path, parse_template, Piece, Segment};

use crate::{Check, ClientError, Decision, Obligation, ObligationKind, PdpClient, Reason};

/// The body of every response [`Authorize`] answers with: the inner service's body wrapped,
/// or a denial's (a JSON document for HTTP, empty for gRPC).
pub type ResponseBody = tonic::body::Body;

/// The error type an inner service's response body may fail with (it must convert into it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The `x-pdp-decision-id` header on denials (and gRPC metadata), for support requests.
const DECISION_ID_HEADER: HeaderName = HeaderName::from_static("x-pdp-decision-id");

// ----------------------------------------------------------------------------------------
// Mapping a request to a check
// ----------------------------------------------------------------------------------------

/// Turns an HTTP request into the PDP's check request, or refuses it outright.
///
/// Closures `Fn(&http::Request<B>) -> Result<pb::CheckRequest, Rejection>` are mappers; so is
/// [`RouteMapper`].
pub trait CheckMapper<B>: Clone + Send + Sync + 'static {
    /// The check request for `request`, or the [`Rejection`] to answer without asking the
    /// PDP (no token, no route).
    fn map(&self, request: &http::Request<B>) -> Result<pb::CheckRequest, Rejection>;
}

impl<B, F> CheckMapper<B> for F
where
    F: Fn(&http::Request<B>) -> Result<pb::CheckRequest, Rejection> + Clone + Send + Sync + 'static,
{
    fn map(&self, request: &http::Request<B>) -> Result<pb::CheckRequest, Rejection> {
        self(request)
    }
}

/// The token of the request's `Authorization: Bearer <token>` header (the scheme is matched
/// case-insensitively). `None` when there is no such header, when it is empty, or when the
/// request carries more than one `Authorization` header (ambiguous, so refused).
pub fn bearer_token<B>(request: &http::Request<B>) -> Option<&str> {
    let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// A refusal: the answer to a request the layer will not let through. A mapper returns one
/// for a request that cannot even be checked; the layer makes its own for denials. It is
/// rendered for the caller's protocol: an HTTP status with a JSON body
/// `{"decision":"deny","reason":…}`, or a gRPC trailers-only response whose `grpc-status`
/// follows the HTTP status (401 → `UNAUTHENTICATED`, 403 → `PERMISSION_DENIED`, 400 →
/// `INVALID_ARGUMENT`, 404 → `NOT_FOUND`, 429 → `RESOURCE_EXHAUSTED`, 503 → `UNAVAILABLE`,
/// other 5xx → `INTERNAL`, anything else → `PERMISSION_DENIED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    reason: Cow<'static, str>,
    challenge: Option<String>,
    decision_id: Option<String>,
    acr_values: Option<String>,
}

impl Rejection {
    /// A refusal with `status` and a short machine-readable `reason` (`snake_case`; it is
    /// shown to the caller, so no internals).
    pub fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            status,
            reason: reason.into(),
            challenge: None,
            decision_id: None,
            acr_values: None,
        }
    }

    /// 401 `missing_token`, with `WWW-Authenticate: Bearer`: the request has no Bearer token.
    pub fn missing_token() -> Rejection {
        Rejection::new(StatusCode::UNAUTHORIZED, "missing_token").with_challenge("Bearer")
    }

    /// 400 `invalid_path`: the path cannot be normalized unambiguously (a `.` or `..`
    /// segment, an encoded `/`, a `;` path parameter, …; see [`RouteMapper`]), so no route
    /// is consulted.
    pub fn invalid_path() -> Rejection {
        Rejection::new(StatusCode::BAD_REQUEST, "invalid_path")
    }

    /// 403 `unmapped_route`: no route says what the request is (so it is denied).
    pub fn unmapped_route() -> Rejection {
        Rejection::new(StatusCode::FORBIDDEN, "unmapped_route")
    }

    /// Adds a `WWW-Authenticate` challenge (sent as `www-authenticate` metadata to gRPC
    /// callers).
    #[must_use]
    pub fn with_challenge(mut self, www_authenticate: impl Into<String>) -> Rejection {
        self.challenge = Some(www_authenticate.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason shown to the caller.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The `WWW-Authenticate` challenge, if any.
    pub fn challenge(&self) -> Option<&str> {
        self.challenge.as_deref()
    }

    /// The PDP's decision id, when the PDP decided.
    pub fn decision_id(&self) -> Option<&str> {
        self.decision_id.as_deref()
    }

    /// The response for a caller speaking `protocol`.
    fn into_response(self, protocol: Protocol) -> http::Response<ResponseBody> {
        match protocol {
            Protocol::Http => self.into_http(),
            Protocol::Grpc => self.into_grpc(),
        }
    }

    fn into_http(self) -> http::Response<ResponseBody> {
        let mut body = serde_json::Map::new();
        body.insert("decision".into(), "deny".into());
        if let Some(id) = &self.decision_id {
            body.insert("decision_id".into(), id.as_str().into());
        }
        body.insert("reason".into(), self.reason.as_ref().into());
        if let Some(acr) = &self.acr_values {
            body.insert("acr_values".into(), acr.as_str().into());
        }
        let mut response = http::Response::new(ResponseBody::new(
            serde_json::Value::Object(body).to_string(),
        ));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.add_headers(headers);
        response
    }

    fn into_grpc(self) -> http::Response<ResponseBody> {
        let code = grpc_code(self.status);
        let mut response =
            tonic::Status::new(code, self.reason.clone().into_owned()).into_http::<ResponseBody>();
        self.add_headers(response.headers_mut());
        response
    }

    fn add_headers(&self, headers: &mut http::HeaderMap) {
        if let Some(challenge) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(id) = self
            .decision_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert(DECISION_ID_HEADER, id);
        }
    }
}

/// The gRPC code a refusal's HTTP status stands for.
fn grpc_code(status: StatusCode) -> tonic::Code {
    match status {
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
        StatusCode::NOT_FOUND => tonic::Code::NotFound,
        StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        s if s.is_server_error() => tonic::Code::Internal,
        _ => tonic::Code::PermissionDenied,
    }
}

/// A route table: method and path template → action and resource template, with the subject
/// proven by the request's Bearer token (`subject.token`, verified by the PDP).
///
/// Path templates are those of the PDP's `routes.yaml`: `{name}` captures one non-empty
/// segment, `{name*}` (last only) the rest of the path; the resource template is filled from
/// the captures of the path in normal form, exactly as the PDP's ext_authz front end does
/// ([`pdp_routes::normalize_path`]: escapes of unreserved characters decoded, slashes merged,
/// the query dropped). The first matching route wins. A path that cannot be normalized
/// unambiguously (a `.` or `..` segment, raw or encoded; `\`; an encoded `/`, `\`, `?` or
/// `#`; a `;` path parameter; a double encoding) is refused before any route is consulted;
/// [`RouteMapper::path_options`] may keep encoded slashes and path parameters. The check
/// carries the context keys `http:Method`, `http:Path` (normalized) and `http:Route` (the
/// matched template) and, behind a tonic server, `aws:SourceIp` (the peer's address) and
/// `aws:SecureTransport`.
///
/// As a [`CheckMapper`] it refuses such a path with [`Rejection::invalid_path`], a request
/// without a token with [`Rejection::missing_token`] and one no route matches with
/// [`Rejection::unmapped_route`];
/// closure mappers use [`RouteMapper::check`] and add what they know:
///
/// ```
/// # fn routes() -> Result<(), pdp_client::ClientError> {
/// use pdp_client::layer::{Rejection, RouteMapper};
/// let routes = RouteMapper::new().route(
///     http::Method::GET,
///     "/data/{key*}",
///     "s3:GetObject",
///     "arn:aws:s3:::my-bucket/data/{key}",
/// )?;
/// let mapper = move |request: &http::Request<String>| {
///     let tenant = request
///         .headers()
///         .get("x-tenant")
///         .and_then(|v| v.to_str().ok())
///         .unwrap_or_default();
///     Ok::<_, Rejection>(routes.check(request)?.context("app:Tenant", tenant).build())
/// };
/// # let _ = mapper; Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouteMapper {
    routes: Arc<Vec<Route>>,
    path_options: PathOptions,
}

#[derive(Debug, Clone)]
struct Route {
    method: Option<Method>,
    template: String,
    segments: Vec<Segment>,
    action: String,
    resource: Vec<Piece>,
}

impl RouteMapper {
    /// An empty table (every request is unmapped until routes are added).
    pub fn new() -> RouteMapper {
        RouteMapper::default()
    }

    /// Adds a route for `method` requests to `path` (e.g. `/data/{key*}`), checked as
    /// `action` on `resource` (e.g. `arn:aws:s3:::my-bucket/data/{key}`). Errors name the
    /// template's problem: a path not starting with `/`, a capture that is not a whole
    /// segment, a bad or repeated capture name, `{name*}` not last, or a resource template
    /// naming a capture the path does not have.
    pub fn route(
        self,
        method: Method,
        path: &str,
        action: &str,
        resource: &str,
    ) -> Result<RouteMapper, ClientError> {
        self.add(Some(method), path, action, resource)
    }

    /// How request paths are normalized: by default encoded slashes (`%2F`, `%5C`) and `;`
    /// path parameters are refused, as in `routes.yaml`.
    #[must_use]
    pub fn path_options(mut self, options: PathOptions) -> RouteMapper {
        self.path_options = options;
        self
    }

    /// [`Self::route`] for any method.
    pub fn route_any(
        self,
        path: &str,
        action: &str,
        resource: &str,
    ) -> Result<RouteMapper, ClientError> {
        self.add(None, path, action, resource)
    }

    fn add(
        mut self,
        method: Option<Method>,
        path: &str,
        action: &str,
        resource: &str,
    ) -> Result<RouteMapper, ClientError> {
        let problem = |e: String| ClientError::Config(format!("route `{path}`: {e}"));
        let segments = parse_path(path).map_err(problem)?;
        let resource = parse_template(resource).map_err(problem)?;
        if action.is_empty() {
            return Err(problem("the action is empty".into()));
        }
        for piece in &resource {
            if let Piece::Capture(name) = piece {
                let known = segments.iter().any(|s| s.capture() == Some(name));
                if !known {
                    return Err(problem(format!(
                        "the resource names `{{{name}}}`, which the path does not capture"
                    )));
                }
            }
        }
        Arc::make_mut(&mut self.routes).push(Route {
            method,
            template: path.to_owned(),
            segments,
            action: action.to_owned(),
            resource,
        });
        Ok(self)
    }

    /// The check for `request` (token, route, context), still open to more context, or why
    /// it cannot be checked.
    pub fn check<B>(&self, request: &http::Request<B>) -> Result<Check, Rejection> {
        let path = normalize_path(request.uri().path(), self.path_options)
            .map_err(|_| Rejection::invalid_path())?;
        let token = bearer_token(request).ok_or_else(Rejection::missing_token)?;
        let (route, resource) = self
            .find(request.method(), &path)
            .ok_or_else(Rejection::unmapped_route)?;
        let mut check = Check::for_token(token, &route.action, &resource)
            .context("http:Method", request.method().as_str())
            .context("http:Path", path.as_str())
            .context("http:Route", route.template.as_str());
        let extensions = request.extensions();
        let tls = extensions.get::<tonic::transport::server::TlsConnectInfo<
            tonic::transport::server::TcpConnectInfo,
        >>();
        let peer = tls
            .map(|t| t.get_ref())
            .or_else(|| extensions.get::<tonic::transport::server::TcpConnectInfo>())
            .and_then(tonic::transport::server::TcpConnectInfo::remote_addr);
        if let Some(peer) = peer {
            check = check.context("aws:SourceIp", source_ip(peer));
        }
        if peer.is_some() {
            check = check.context("aws:SecureTransport", tls.is_some());
        }
        Ok(check)
    }

    /// The first route matching, with its resource filled in.
    fn find(&self, method: &Method, path: &pdp_routes::NormalizedPath) -> Option<(&Route, String)> {
        let parts = path.segments();
        self.routes.iter().find_map(|r| {
            if r.method.as_ref().is_some_and(|m| m != method) {
                return None;
            }
            let captures = match_path(&r.segments, &parts)?;
            Some((r, fill(&r.resource, &captures)))
        })
    }
}

impl<B> CheckMapper<B> for RouteMapper {
    fn map(&self, request: &http::Request<B>) -> Result<pb::CheckRequest, Rejection> {
        self.check(request).map(Check::build)
    }
}

/// The peer's address as `aws:SourceIp` (an IPv4-mapped IPv6 address as IPv4).
fn source_ip(peer: SocketAddr) -> String {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        ip @ std::net::IpAddr::V4(_) => ip.to_string(),
    }
}

// ----------------------------------------------------------------------------------------
// The layer
// ----------------------------------------------------------------------------------------

type Handler = Arc<dyn Fn(&Obligation) + Send + Sync>;

/// The obligation handlers, by obligation type.
#[derive(Clone, Default)]
struct ObligationHandlers {
    by_type: HashMap<String, Vec<Handler>>,
}

impl ObligationHandlers {
    fn handles(&self, kind: &ObligationKind) -> bool {
        self.by_type.contains_key(kind.as_str())
    }

    fn run(&self, obligation: &Obligation) {
        for handler in self
            .by_type
            .get(obligation.kind.as_str())
            .into_iter()
            .flatten()
        {
            handler(obligation);
        }
    }
}

impl fmt::Debug for ObligationHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&str> = self.by_type.keys().map(String::as_str).collect();
        types.sort_unstable();
        f.debug_struct("ObligationHandlers")
            .field("types", &types)
            .finish()
    }
}

/// Enforces the PDP's decisions in front of a service: see the [module docs](self).
///
/// ```no_run
/// # fn layer() -> Result<(), pdp_client::ClientError> {
/// use pdp_client::layer::{AuthorizeLayer, RouteMapper};
/// let pdp = pdp_client::PdpClient::builder().endpoint("http://127.0.0.1:50051").build()?;
/// let routes = RouteMapper::new().route(
///     http::Method::GET,
///     "/orders/{id}",
///     "orders:GetOrder",
///     "arn:app:orders:::order/{id}",
/// )?;
/// let layer = AuthorizeLayer::new(pdp, routes)
///     .on_obligation("audit", |o| tracing::info!(obligation = %o.id, "audited access"));
/// // axum: `Router::new().route(…).layer(layer)`;
/// // tonic: `Server::builder().layer(layer).add_service(…)`.
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthorizeLayer<M> {
    client: PdpClient,
    mapper: M,
    handlers: Arc<ObligationHandlers>,
}

impl<M> AuthorizeLayer<M> {
    /// Checks every request `mapper` maps with `client`. No obligation handlers yet: until
    /// some are registered, any decision with an obligation (other than `step-up`) denies.
    pub fn new(client: PdpClient, mapper: M) -> AuthorizeLayer<M> {
        AuthorizeLayer {
            client,
            mapper,
            handlers: Arc::new(ObligationHandlers::default()),
        }
    }

    /// Registers `handler` for obligations of type `kind` (`notification`, `audit`,
    /// `session_termination`, `custom`, or any other type the PDP's policies use). Handlers
    /// run, in the order of the decision's obligations, before the inner service is called
    /// for an allowed request; a type may have several, run in the order registered. An
    /// allowed request carrying an obligation with no handler is denied. `step-up` is
    /// always answered by the layer itself (401 with the challenge), so a handler for it is
    /// never called.
    #[must_use]
    pub fn on_obligation(
        mut self,
        kind: &str,
        handler: impl Fn(&Obligation) + Send + Sync + 'static,
    ) -> AuthorizeLayer<M> {
        Arc::make_mut(&mut self.handlers)
            .by_type
            .entry(kind.to_owned())
            .or_default()
            .push(Arc::new(handler));
        self
    }
}

impl<M> fmt::Debug for AuthorizeLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeLayer")
            .field("client", &self.client)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl<S, M: Clone> tower::Layer<S> for AuthorizeLayer<M> {
    type Service = Authorize<S, M>;

    fn layer(&self, inner: S) -> Authorize<S, M> {
        Authorize {
            inner,
            client: self.client.clone(),
            mapper: self.mapper.clone(),
            handlers: self.handlers.clone(),
        }
    }
}

// ----------------------------------------------------------------------------------------
// The service
// ----------------------------------------------------------------------------------------

/// The service [`AuthorizeLayer`] makes: calls the inner service only for requests the PDP
/// allows, with the [`Decision`] in the request's extensions.
#[derive(Clone)]
pub struct Authorize<S, M> {
    inner: S,
    client: PdpClient,
    mapper: M,
    handlers: Arc<ObligationHandlers>,
}

impl<S: fmt::Debug, M> fmt::Debug for Authorize<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("inner", &self.inner)
            .field("client", &self.client)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

/// How the caller speaks, which decides how a refusal is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Grpc,
}

impl Protocol {
    /// gRPC when the content type is `application/grpc` or one of its variants.
    fn of<B>(request: &http::Request<B>) -> Protocol {
        let grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.as_bytes().get(..16))
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"application/grpc"));
        if grpc {
            Protocol::Grpc
        } else {
            Protocol::Http
        }
    }
}

impl<S, M, B, ResBody> tower::Service<http::Request<B>> for Authorize<S, M>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    M: CheckMapper<B>,
    B: Send + 'static,
    ResBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> ResponseFuture<S::Error> {
        // The service that was polled ready serves this request; the clone waits for the
        // next `poll_ready`.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let protocol = Protocol::of(&request);
        let check = match self.mapper.map(&request) {
            Ok(check) => check,
            Err(rejection) => {
                tracing::debug!(
                    status = rejection.status().as_u16(),
                    reason = rejection.reason(),
                    "request refused before the check"
                );
                let response = rejection.into_response(protocol);
                return ResponseFuture::new(async move { Ok(response) });
            }
        };
        let client = self.client.clone();
        let handlers = self.handlers.clone();
        ResponseFuture::new(async move {
            let decision = match client.check(check).await {
                Ok(decision) => decision,
                Err(error) => {
                    tracing::warn!(%error, "the request could not be checked: denied");
                    return Ok(Rejection::new(StatusCode::FORBIDDEN, "check_failed")
                        .into_response(protocol));
                }
            };
            if let Some(refusal) = enforce(&decision, &handlers) {
                return Ok(refusal.into_response(protocol));
            }
            request.extensions_mut().insert(decision);
            let response = inner.call(request).await?;
            Ok(response.map(ResponseBody::new))
        })
    }
}

/// What the decision requires: `None` to go on (the handlers have run), or the refusal.
fn enforce(decision: &Decision, handlers: &ObligationHandlers) -> Option<Rejection> {
    let denial = |status: StatusCode, reason: &'static str| Rejection {
        decision_id: Some(decision.decision_id().to_owned()),
        ..Rejection::new(status, reason)
    };
    if decision.reason() == Reason::InvalidIdentity {
        tracing::debug!(
            decision_id = decision.decision_id(),
            "denied: the token could not be verified"
        );
        return Some(
            denial(StatusCode::UNAUTHORIZED, reason_label(decision.reason()))
                .with_challenge("Bearer error=\"invalid_token\""),
        );
    }
    if let Some(step_up) = decision.step_up() {
        let acr = step_up.property("acr").unwrap_or_default();
        tracing::debug!(
            decision_id = decision.decision_id(),
            acr,
            "step-up authentication required"
        );
        let mut refusal = denial(StatusCode::UNAUTHORIZED, reason_label(decision.reason()))
            .with_challenge(format!(
                "Bearer error=\"insufficient_user_authentication\", acr_values=\"{}\"",
                quoted(acr)
            ));
        refusal.acr_values = Some(acr.to_owned());
        return Some(refusal);
    }
    if !decision.is_allowed() {
        tracing::debug!(
            decision_id = decision.decision_id(),
            reason = reason_label(decision.reason()),
            "denied"
        );
        return Some(denial(
            StatusCode::FORBIDDEN,
            reason_label(decision.reason()),
        ));
    }
    if let Some(unhandled) = decision
        .obligations()
        .iter()
        .find(|o| !handlers.handles(&o.kind))
    {
        tracing::warn!(
            decision_id = decision.decision_id(),
            obligation = unhandled.id.as_str(),
            obligation_type = unhandled.kind.as_str(),
            "an allow with an obligation no handler carries out: denied"
        );
        return Some(denial(StatusCode::FORBIDDEN, "unfulfilled_obligation"));
    }
    for obligation in decision.obligations() {
        handlers.run(obligation);
    }
    None
}

/// `s` for the inside of an RFC 9110 quoted-string (quotes and backslashes escaped, control
/// characters dropped).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The `reason` shown to callers (the PDP's labels, plus `pdp_unavailable`).
fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::Allowed => "allowed",
        Reason::ExplicitDeny => "explicit_deny",
        Reason::ImplicitDeny => "implicit_deny",
        Reason::InvalidIdentity => "invalid_identity",
        Reason::SessionRevoked => "session_revoked",
        Reason::CredentialChanged => "credential_changed",
        Reason::SignalsStale => "signals_stale",
        Reason::AuditUnavailable => "audit_unavailable",
        Reason::PdpUnavailable => "pdp_unavailable",
        Reason::Other(_) => "denied",
    }
}

// ----------------------------------------------------------------------------------------
// The future
// ----------------------------------------------------------------------------------------

/// The response future of [`Authorize`].
pub struct ResponseFuture<E> {
    inner: Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, E>> + Send>>,
}

impl<E> ResponseFuture<E> {
    fn new(
        future: impl Future<Output = Result<http::Response<ResponseBody>, E>> + Send + 'static,
    ) -> ResponseFuture<E> {
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<http::Response<ResponseBody>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, token: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        builder.body(()).unwrap_or_default()
    }

    fn routes() -> Result<RouteMapper, ClientError> {
        RouteMapper::new()
            .route(
                Method::GET,
                "/data/{key*}",
                "s3:GetObject",
                "arn:aws:s3:::my-bucket/data/{key}",
            )?
            .route_any("/orders/{id}", "orders:Any", "arn:app:orders:::order/{id}")
    }

    #[test]
    fn templates_fill_the_resource_and_the_token_is_the_subject() -> Result<(), ClientError> {
        let r = routes()?;
        let check = r
            .map(&request(Method::GET, "/data/a/b.csv?x=1", Some("tok")))
            .map_err(|e| ClientError::Config(e.reason().to_owned()))?;
        assert_eq!(check.action, "s3:GetObject");
        assert_eq!(
            check.resource.map(|r| r.id).unwrap_or_default(),
            "arn:aws:s3:::my-bucket/data/a/b.csv"
        );
        assert_eq!(check.subject.map(|s| s.token).unwrap_or_default(), "tok");
        let fields = check.context.map(|c| c.fields).unwrap_or_default();
        assert!(fields.contains_key("http:Route"));
        assert!(fields.contains_key("http:Path"));
        Ok(())
    }

    #[test]
    fn unmapped_and_tokenless_requests_are_rejected() -> Result<(), ClientError> {
        let r = routes()?;
        let reject = |req: http::Request<()>| r.map(&req).err().map(|e| e.reason().to_owned());
        assert_eq!(
            reject(request(Method::POST, "/data/x", Some("t"))).as_deref(),
            Some("unmapped_route")
        );
        for path in [
            "/data/../admin",
            "/data/%2E%2e/admin",
            "/data/.%2e/admin",
            "/data/..%2Fadmin",
            "/data/..;/admin",
            "/data/a%3F",
        ] {
            assert_eq!(
                reject(request(Method::GET, path, Some("t"))).as_deref(),
                Some("invalid_path"),
                "{path}"
            );
        }
        assert_eq!(
            reject(request(Method::DELETE, "/orders/", Some("t"))).as_deref(),
            Some("unmapped_route")
        );
        assert_eq!(
            reject(request(Method::GET, "/data/x", None)).as_deref(),
            Some("missing_token")
        );
        assert!(reject(request(Method::DELETE, "/orders/7", Some("t"))).is_none());
        Ok(())
    }

    #[test]
    fn paths_are_matched_in_normal_form() -> Result<(), ClientError> {
        let r = routes()?;
        let resource = |path: &str| {
            r.map(&request(Method::GET, path, Some("t")))
                .ok()
                .and_then(|c| c.resource)
                .map(|r| r.id)
        };
        for path in ["/data//secret/x", "/data/%73ecret/x", "//data/secret//x"] {
            assert_eq!(
                resource(path).as_deref(),
                Some("arn:aws:s3:::my-bucket/data/secret/x"),
                "{path}"
            );
        }
        let kept = routes()?.path_options(PathOptions {
            keep_encoded_slashes: true,
            keep_path_parameters: false,
        });
        let check = kept
            .map(&request(Method::GET, "/data/a%2fb", Some("t")))
            .map_err(|e| ClientError::Config(e.reason().to_owned()))?;
        assert_eq!(
            check.resource.map(|r| r.id).unwrap_or_default(),
            "arn:aws:s3:::my-bucket/data/a%2Fb"
        );
        Ok(())
    }

    #[test]
    fn bad_templates_are_reported() {
        for (path, resource) in [
            ("data/{k}", "r"),
            ("/data/{k*}/x", "r/{k}"),
            ("/data/x{k}", "r"),
            ("/data/{k}/{k}", "r"),
            ("/data/{k}", "r/{other}"),
            ("/data/{k}", "r/{k"),
        ] {
            assert!(
                RouteMapper::new()
                    .route(Method::GET, path, "a:B", resource)
                    .is_err(),
                "{path} {resource}"
            );
        }
    }

    #[test]
    fn a_bearer_token_needs_one_header_and_the_scheme() {
        let ok = request(Method::GET, "/", Some("abc"));
        assert_eq!(bearer_token(&ok), Some("abc"));
        let mut two = request(Method::GET, "/", Some("abc"));
        two.headers_mut()
            .append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(bearer_token(&two), None);
        let mut basic = request(Method::GET, "/", None);
        basic
            .headers_mut()
            .insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&basic), None);
    }

    #[test]
    fn challenges_quote_their_values() {
        assert_eq!(quoted(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
