//! [`PdpClient`]: checks over a load-balanced channel, with deadlines, retries of what is
//! safe to retry, a circuit breaker, a concurrency limit, a failure policy, and the local
//! decision cache kept fresh by the PDP's Watch stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, Status as SpanStatus, TraceContextExt as _, Tracer as _};
use opentelemetry::KeyValue;
use pdp_proto::v1 as pb;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tower::ServiceExt as _;

use crate::cache::{self, Cache};
use crate::stack::{self, Call, Reply, Rpc};
use crate::{ClientError, Decision, Plan};

/// What a call site does when the PDP cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Deny (the default).
    #[default]
    FailClosed,
    /// Allow, marked [`Decision::is_fail_open`] and logged. Only where a call site chooses it.
    FailOpen,
}

/// Retries of calls that failed before anything was decided (`UNAVAILABLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub max_attempts: u32,
    /// The first backoff; doubled after each attempt, with ±50 % jitter.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The whole call, retries included, ends within this.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            budget: Duration::from_secs(2),
        }
    }
}

/// The circuit breaker: after `failures` PDP failures in a row it opens for `open_for`
/// (calls fail at once with [`ClientError::CircuitOpen`]); then one probe call may go, and
/// its outcome closes or reopens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures in a row that open it.
    pub failures: u32,
    /// How long it stays open.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            open_for: Duration::from_secs(2),
        }
    }
}

/// Builds a [`PdpClient`].
#[derive(Debug, Clone)]
pub struct PdpClientBuilder {
    endpoints: Vec<String>,
    tls: Option<ClientTlsConfig>,
    connect_timeout: Duration,
    call_timeout: Duration,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    concurrency: usize,
    cache: Option<(u64, Duration)>,
    watch: bool,
    watch_stale_after: Duration,
    failure_policy: FailurePolicy,
}

impl Default for PdpClientBuilder {
    fn default() -> Self {
        PdpClientBuilder {
            endpoints: Vec::new(),
            tls: None,
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_millis(500),
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            concurrency: 1024,
            cache: Some((100_000, Duration::from_secs(60))),
            watch: true,
            watch_stale_after: Duration::from_secs(5),
            failure_policy: FailurePolicy::FailClosed,
        }
    }
}

impl PdpClientBuilder {
    /// Adds an endpoint (`http://host:port`, or `https://…` with [`Self::tls`]); calls are
    /// balanced over all of them.
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints.push(url.into());
        self
    }

    /// TLS (and mutual TLS with a client identity) for every endpoint.
    #[must_use]
    pub fn tls(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long connecting may take [default: 1 s].
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The deadline of one attempt [default: 500 ms].
    #[must_use]
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    /// Retries [default: 3 attempts, 20 ms to 500 ms backoff, 2 s in all].
    #[must_use]
    pub fn retries(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The circuit breaker [default: 5 failures, open 2 s].
    #[must_use]
    pub fn circuit_breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.breaker = breaker;
        self
    }

    /// Calls in flight at once; more wait (within their deadline) [default: 1024].
    #[must_use]
    pub fn concurrency_limit(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The local decision cache: at most `max_entries` decisions, each kept as long as the
    /// PDP's `ttl` and at most `max_ttl` [default: 100,000 and 60 s].
    #[must_use]
    pub fn cache(mut self, max_entries: u64, max_ttl: Duration) -> Self {
        self.cache = Some((max_entries, max_ttl));
        self
    }

    /// No local cache: every check asks the PDP.
    #[must_use]
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Follow the PDP's Watch stream to invalidate cached decisions [default: on]. The
    /// stream needs a caller the PDP trusts (loopback or a trusted client certificate); when
    /// the PDP refuses it, cached decisions live out their `ttl`.
    #[must_use]
    pub fn watch(mut self, on: bool) -> Self {
        self.watch = on;
        self
    }

    /// With the Watch stream down this long, the cache is emptied and not used until the
    /// stream is back [default: 5 s].
    #[must_use]
    pub fn watch_stale_after(mut self, d: Duration) -> Self {
        self.watch_stale_after = d;
        self
    }

    /// What [`PdpClient::check`] answers when the PDP cannot [default: fail closed].
    #[must_use]
    pub fn failure_policy(mut self, p: FailurePolicy) -> Self {
        self.failure_policy = p;
        self
    }

    /// The client. Connects lazily: building succeeds while the PDP is down. The Watch
    /// stream is followed when built inside a Tokio runtime.
    pub fn build(self) -> Result<PdpClient, ClientError> {
        if self.endpoints.is_empty() {
            return Err(ClientError::Config("no endpoint".into()));
        }
        let mut endpoints = Vec::with_capacity(self.endpoints.len());
        for url in &self.endpoints {
            let mut e = Endpoint::from_shared(url.clone())
                .map_err(|e| ClientError::Config(format!("endpoint `{url}`: {e}")))?
                .connect_timeout(self.connect_timeout)
                .tcp_nodelay(true);
            if let Some(tls) = &self.tls {
                e = e
                    .tls_config(tls.clone())
                    .map_err(|e| ClientError::Config(format!("TLS for `{url}`: {e}")))?;
            }
            endpoints.push(e);
        }
        let channel = match endpoints.as_slice() {
            [one] => one.connect_lazy(),
            _ => Channel::balance_list(endpoints.into_iter()),
        };
        let cache = self.cache.map(|(n, ttl)| Cache::new(n, ttl));
        let inner = Arc::new(Inner {
            stack: stack::stack(
                channel.clone(),
                self.call_timeout,
                self.retry,
                self.breaker,
                self.concurrency,
            ),
            signals: pb::signal_service_client::SignalServiceClient::new(channel),
            cache,
            config: self,
        });
        if inner.cache.is_some() && inner.config.watch {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(watch(Arc::downgrade(&inner)));
            }
        }
        Ok(PdpClient { inner })
    }
}

#[derive(Debug)]
struct Inner {
    /// The middleware of a call (`stack.rs`: retry, breaker, concurrency limit, RPC).
    stack: stack::Stack,
    signals: pb::signal_service_client::SignalServiceClient<Channel>,
    cache: Option<Cache>,
    config: PdpClientBuilder,
}

/// A client of the PDP. Cheap to clone; clones share the channel, cache and breaker.
#[derive(Debug, Clone)]
pub struct PdpClient {
    inner: Arc<Inner>,
}

impl PdpClient {
    /// A builder.
    pub fn builder() -> PdpClientBuilder {
        PdpClientBuilder::default()
    }

    /// The decision for `request`: from the local cache while it is fresh, else from the
    /// PDP. When the PDP cannot answer (unreachable, overloaded, too slow, breaker open),
    /// the client's failure policy answers. Errors are only for requests the PDP refuses
    /// (malformed, or a client it does not admit).
    pub async fn check(&self, request: pb::CheckRequest) -> Result<Decision, ClientError> {
        self.check_with(request, self.inner.config.failure_policy)
            .await
    }

    /// [`Self::check`] with this call site's failure policy.
    pub async fn check_with(
        &self,
        request: pb::CheckRequest,
        policy: FailurePolicy,
    ) -> Result<Decision, ClientError> {
        match self.try_check(request).await {
            Ok(d) => Ok(d),
            Err(e) if e.is_pdp_failure() || e == ClientError::CircuitOpen => {
                Ok(unavailable(policy, &e))
            }
            Err(e) => Err(e),
        }
    }

    /// The decision, or why the PDP did not give one (no failure policy applied). A request
    /// with a `min_signal_generation` is always asked of the PDP (a cached decision may
    /// predate those signals); its answer is cached for later requests without one. An
    /// explained request (`explain`) is always asked, and its answer not cached.
    pub async fn try_check(&self, request: pb::CheckRequest) -> Result<Decision, ClientError> {
        let key = self.inner.cache.as_ref().map(|_| cache::key(&request));
        if let (Some(c), Some(k)) = (&self.inner.cache, &key) {
            if request.min_signal_generation == 0 && !request.explain {
                if let Some(hit) = c.get(k) {
                    return Ok(hit);
                }
            }
        }
        let response = match self
            .call(
                "pdp.v1.AuthorizationService/Check",
                Rpc::Check(request.clone()),
            )
            .await?
        {
            Reply::Check(r) => r,
            Reply::CheckBatch(_) | Reply::Plan(_) => return Err(mismatched()),
        };
        let decision = Decision::from_response(&response);
        if let (Some(c), Some(k)) = (&self.inner.cache, key) {
            if !request.explain {
                c.insert(k, &request, &decision);
            }
        }
        Ok(decision)
    }

    /// Several decisions in one call, in request order (fewer when the semantic stops
    /// early). Not cached. When the PDP cannot answer, every item gets the client's failure
    /// policy's answer.
    pub async fn check_batch(
        &self,
        request: pb::CheckBatchRequest,
    ) -> Result<Vec<Decision>, ClientError> {
        let items = request.items.len();
        match self
            .call(
                "pdp.v1.AuthorizationService/CheckBatch",
                Rpc::CheckBatch(request),
            )
            .await
        {
            Ok(Reply::CheckBatch(r)) => {
                Ok(r.responses.iter().map(Decision::from_response).collect())
            }
            Ok(Reply::Check(_) | Reply::Plan(_)) => Err(mismatched()),
            Err(e) if e.is_pdp_failure() || e == ClientError::CircuitOpen => {
                Ok(vec![
                    unavailable(self.inner.config.failure_policy, &e);
                    items
                ])
            }
            Err(e) => Err(e),
        }
    }

    /// Which resources the subject may do the action on (`PlanResources`): through the same
    /// deadline, retries, breaker and concurrency limit as [`Self::check`], never from the
    /// decision cache. When the PDP cannot answer (unreachable, overloaded, too slow,
    /// breaker open) the plan allows nothing ([`Plan::is_unavailable`]), whatever the
    /// failure policy: failing open would list every resource. Errors are only for
    /// requests the PDP refuses (malformed, or a client it does not admit).
    pub async fn plan(&self, request: pb::PlanResourcesRequest) -> Result<Plan, ClientError> {
        match self.try_plan(request).await {
            Ok(p) => Ok(p),
            Err(e) if e.is_pdp_failure() || e == ClientError::CircuitOpen => {
                Ok(Plan::unavailable(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// The plan, or why the PDP did not give one (nothing made up in its place).
    pub async fn try_plan(&self, request: pb::PlanResourcesRequest) -> Result<Plan, ClientError> {
        match self
            .call(
                "pdp.v1.AuthorizationService/PlanResources",
                Rpc::Plan(request),
            )
            .await?
        {
            Reply::Plan(r) => Ok(Plan::from_response(&r)),
            Reply::Check(_) | Reply::CheckBatch(_) => Err(mismatched()),
        }
    }

    /// Drops every cached decision.
    pub fn clear_cache(&self) {
        if let Some(c) = &self.inner.cache {
            c.clear();
        }
    }

    /// One RPC through the middleware stack (`stack.rs`), inside the client span.
    async fn call(&self, method: &'static str, rpc: Rpc) -> Result<Reply, ClientError> {
        let tracer = opentelemetry::global::tracer("pdp-client");
        let parent = opentelemetry::Context::current();
        let span = tracer
            .span_builder(method)
            .with_kind(SpanKind::Client)
            .with_attributes(vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.method", method),
            ])
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        let call = Call::new(rpc, cx.clone());
        let attempts = call.attempts.clone();
        let result = self.inner.stack.clone().oneshot(call).await;
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "pdp.attempts",
            i64::from(attempts.load(Ordering::Relaxed)),
        ));
        if let Err(e) = &result {
            span.set_status(SpanStatus::error(e.to_string()));
        }
        span.end();
        result
    }
}

/// An answer of another RPC than the one sent: cannot happen (`Grpc` answers each RPC with
/// its own reply); fails closed as an internal error if it ever did.
fn mismatched() -> ClientError {
    ClientError::Other {
        code: tonic::Code::Internal,
        message: "the client's middleware answered another RPC".into(),
    }
}

fn unavailable(policy: FailurePolicy, e: &ClientError) -> Decision {
    match policy {
        FailurePolicy::FailClosed => Decision::unavailable(false, e.to_string()),
        FailurePolicy::FailOpen => {
            tracing::warn!("the PDP could not answer ({e}): allowing, as this call site's fail-open policy says");
            Decision::unavailable(true, e.to_string())
        }
    }
}

/// Follows the Watch stream while the client lives: invalidations prune the cache; a reset,
/// or a stream down past the bound, empties it.
async fn watch(inner: std::sync::Weak<Inner>) {
    let mut cursor = String::new();
    let mut down_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let mut signals = strong.signals.clone();
        let stale_after = strong.config.watch_stale_after;
        drop(strong);
        let opened = signals
            .watch(pb::WatchRequest {
                cursor: cursor.clone(),
            })
            .await;
        match opened {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                while let Ok(Some(i)) = stream.message().await {
                    let Some(strong) = inner.upgrade() else {
                        return;
                    };
                    if let Some(c) = &strong.cache {
                        c.invalidate(&i);
                        down_since = None;
                        c.suspended.store(false, Ordering::Release);
                    }
                    cursor = i.cursor;
                    backoff = Duration::from_millis(50);
                }
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unimplemented | tonic::Code::PermissionDenied
                ) =>
            {
                tracing::info!(
                    "the PDP offers no Watch stream to this client ({}): cached decisions live out their ttl",
                    status.message()
                );
                return;
            }
            Err(_) => {}
        }
        let since = *down_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= stale_after {
            if let Some(strong) = inner.upgrade() {
                if let Some(c) = &strong.cache {
                    if !c.suspended.swap(true, Ordering::AcqRel) {
                        tracing::warn!("the PDP's Watch stream has been down for {stale_after:?}: local decision cache emptied and off until it is back");
                        c.clear();
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
