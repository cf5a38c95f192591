//! The middleware of one PDP call, composed from tower layers. Outermost first:
//!
//! 1. `tower::retry::Retry` with [`Backoff`]: retries what nothing was decided on
//!    (`UNAVAILABLE`), with exponential backoff, jitter and a budget. Outermost, so that
//!    each attempt passes the breaker and the concurrency limit anew: a retry counts
//!    towards the breaker, and no permit is held while backing off.
//! 2. [`Breaker`] (ours; tower has none): refuses attempts at once while open and records
//!    every attempt's outcome. Above the limit, so that the outcome it records is the PDP's
//!    and a call it refuses never waits for a permit it would not use.
//! 3. [`ReadyTimeout`]: bounds the wait for the layer below to be ready by the call
//!    timeout (a call waits for a permit within its deadline, not forever).
//! 4. `tower::limit::ConcurrencyLimit`: at most `concurrency_limit` attempts in flight;
//!    the permit is held until the answer is in.
//! 5. [`Grpc`]: the RPC itself, with the per-attempt deadline and the trace context in its
//!    metadata, over tonic's balanced `Channel`. With several endpoints that channel is
//!    tower's power-of-two-choices balancer (`tower::balance::p2c`) over one connection per
//!    endpoint, whose readiness follows that connection's state, so that an endpoint that is
//!    down is not picked; a balancer over whole per-endpoint channels would lose that
//!    signal (a channel is always ready), and one that fails fast would draw the traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry::propagation::Injector;
use pdp_proto::v1 as pb;
use tonic::transport::Channel;
use tower::limit::ConcurrencyLimitLayer;
use tower::retry::RetryLayer;
use tower::{Layer, Service, ServiceBuilder};

use crate::client::{BreakerPolicy, RetryPolicy};
use crate::ClientError;

/// The RPCs the stack sends.
#[derive(Debug, Clone)]
pub(crate) enum Rpc {
    Check(pb::CheckRequest),
    CheckBatch(pb::CheckBatchRequest),
    Plan(pb::PlanResourcesRequest),
}

/// Their answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Check(pb::CheckResponse),
    CheckBatch(pb::CheckBatchResponse),
    Plan(pb::PlanResourcesResponse),
}

/// One call through the stack: the RPC, the client span's context (injected into each
/// attempt's metadata), when the call began (for the retry budget) and how many attempts
/// it took.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub rpc: Rpc,
    pub cx: opentelemetry::Context,
    pub started: Instant,
    pub attempts: Arc<AtomicU32>,
}

impl Call {
    pub(crate) fn new(rpc: Rpc, cx: opentelemetry::Context) -> Self {
        Call {
            rpc,
            cx,
            started: Instant::now(),
            attempts: Arc::new(AtomicU32::new(1)),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Reply, ClientError>> + Send>>;

/// The stack, outermost first (see the module documentation for why in this order).
pub(crate) type Stack<S = Grpc> =
    tower::retry::Retry<Backoff, Breaker<ReadyTimeout<tower::limit::ConcurrencyLimit<S>>>>;

/// Composes the stack over `channel`.
pub(crate) fn stack(
    channel: Channel,
    call_timeout: Duration,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    concurrency: usize,
) -> Stack {
    let rpc = Grpc {
        authz: pb::authorization_service_client::AuthorizationServiceClient::new(channel),
        call_timeout,
    };
    layered(rpc, call_timeout, retry, breaker, concurrency)
}

/// The layers, outermost first, over any RPC service.
fn layered<S>(
    rpc: S,
    call_timeout: Duration,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    concurrency: usize,
) -> Stack<S> {
    ServiceBuilder::new()
        .layer(RetryLayer::new(Backoff::new(retry)))
        .layer(BreakerLayer::new(breaker))
        .layer(ReadyTimeoutLayer(call_timeout))
        .layer(ConcurrencyLimitLayer::new(concurrency))
        .service(rpc)
}

/// The retry policy: [`RetryPolicy`] as a `tower::retry::Policy`. Each call gets its own
/// copy (tower clones the policy per request), so the state below is per call.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    backoff: Duration,
}

impl Backoff {
    fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            attempt: 1,
            backoff: policy.initial_backoff,
        }
    }
}

impl tower::retry::Policy<Call, Reply, ClientError> for Backoff {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        call: &mut Call,
        result: &mut Result<Reply, ClientError>,
    ) -> Option<Self::Future> {
        match result {
            Err(e)
                if e.is_retryable()
                    && self.attempt < self.policy.max_attempts
                    && call.started.elapsed() + self.backoff < self.policy.budget =>
            {
                let jitter = 0.5 + fastrand::f64();
                let sleep = tokio::time::sleep(self.backoff.mul_f64(jitter));
                self.attempt += 1;
                self.backoff = (self.backoff * 2).min(self.policy.max_backoff);
                call.attempts.store(self.attempt, Ordering::Relaxed);
                Some(sleep)
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        Some(call.clone())
    }
}

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// Adds [`Breaker`]; its clones share one breaker.
#[derive(Debug, Clone)]
pub(crate) struct BreakerLayer {
    state: Arc<Mutex<BreakerState>>,
    policy: BreakerPolicy,
}

impl BreakerLayer {
    fn new(policy: BreakerPolicy) -> Self {
        BreakerLayer {
            state: Arc::default(),
            policy,
        }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            shared: self.clone(),
        }
    }
}

/// The circuit breaker ([`BreakerPolicy`]): after `failures` PDP failures in a row it
/// opens for `open_for` (attempts fail at once with [`ClientError::CircuitOpen`]); then one
/// probe may go, and its outcome closes or reopens it.
#[derive(Debug, Clone)]
pub(crate) struct Breaker<S> {
    inner: S,
    shared: BreakerLayer,
}

impl<S> Service<Call> for Breaker<S>
where
    S: Service<Call, Response = Reply, Error = ClientError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = ClientError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> BoxFuture {
        if let Err(e) = self.shared.admit() {
            return Box::pin(std::future::ready(Err(e)));
        }
        let sent = self.inner.call(call);
        let shared = self.shared.clone();
        Box::pin(async move {
            let result = sent.await;
            shared.record(result.as_ref().err());
            result
        })
    }
}

impl BreakerLayer {
    /// Whether the breaker lets an attempt go.
    fn admit(&self) -> Result<(), ClientError> {
        let Ok(mut b) = self.state.lock() else {
            return Ok(());
        };
        match b.open_until {
            Some(until) if Instant::now() < until => Err(ClientError::CircuitOpen),
            Some(_) if b.probing => Err(ClientError::CircuitOpen),
            Some(_) => {
                b.probing = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record(&self, error: Option<&ClientError>) {
        let Ok(mut b) = self.state.lock() else {
            return;
        };
        let policy = self.policy;
        match error.filter(|e| e.is_pdp_failure()) {
            None => *b = BreakerState::default(),
            Some(e) => {
                b.failures += 1;
                if b.probing || b.failures >= policy.failures {
                    if b.open_until.is_none() || b.probing {
                        tracing::warn!("PDP circuit breaker opens for {:?}: {e}", policy.open_for);
                    }
                    b.open_until = Some(Instant::now() + policy.open_for);
                    b.probing = false;
                }
            }
        }
    }
}

/// Adds [`ReadyTimeout`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyTimeoutLayer(Duration);

impl<S> Layer<S> for ReadyTimeoutLayer {
    type Service = ReadyTimeout<S>;

    fn layer(&self, inner: S) -> ReadyTimeout<S> {
        ReadyTimeout {
            inner,
            within: self.0,
            waiting: None,
        }
    }
}

/// Fails with [`ClientError::DeadlineExceeded`] when the inner service is not ready within
/// `within` (`tower::timeout` bounds only the response, not the wait for readiness).
#[derive(Debug)]
pub(crate) struct ReadyTimeout<S> {
    inner: S,
    within: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: Clone> Clone for ReadyTimeout<S> {
    fn clone(&self) -> Self {
        ReadyTimeout {
            inner: self.inner.clone(),
            within: self.within,
            waiting: None,
        }
    }
}

impl<S> Service<Call> for ReadyTimeout<S>
where
    S: Service<Call, Error = ClientError>,
{
    type Response = S::Response;
    type Error = ClientError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        if let Poll::Ready(ready) = self.inner.poll_ready(cx) {
            self.waiting = None;
            return Poll::Ready(ready);
        }
        let within = self.within;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(within)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.waiting = None;
                Poll::Ready(Err(ClientError::DeadlineExceeded))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, call: Call) -> S::Future {
        self.waiting = None;
        self.inner.call(call)
    }
}

/// The RPC: one attempt, within the call timeout, with the trace context in its metadata.
#[derive(Debug, Clone)]
pub(crate) struct Grpc {
    authz: pb::authorization_service_client::AuthorizationServiceClient<Channel>,
    call_timeout: Duration,
}

/// Writes trace context into gRPC metadata.
struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

fn request<T>(message: T, cx: &opentelemetry::Context, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut Metadata(r.metadata_mut()));
    });
    r
}

impl Service<Call> for Grpc {
    type Response = Reply;
    type Error = ClientError;
    type Future = BoxFuture;

    /// Always ready: the generated client waits for the channel itself.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> BoxFuture {
        let mut authz = self.authz.clone();
        let timeout = self.call_timeout;
        let Call { rpc, cx, .. } = call;
        Box::pin(async move {
            let sent = tokio::time::timeout(timeout, async {
                match rpc {
                    Rpc::Check(r) => authz
                        .check(request(r, &cx, timeout))
                        .await
                        .map(|r| Reply::Check(r.into_inner())),
                    Rpc::CheckBatch(r) => authz
                        .check_batch(request(r, &cx, timeout))
                        .await
                        .map(|r| Reply::CheckBatch(r.into_inner())),
                    Rpc::Plan(r) => authz
                        .plan_resources(request(r, &cx, timeout))
                        .await
                        .map(|r| Reply::Plan(r.into_inner())),
                }
            })
            .await;
            match sent {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(status)) => Err(ClientError::from_status(&status)),
                Err(_) => Err(ClientError::DeadlineExceeded),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tower::ServiceExt as _;

    use super::*;

    /// An RPC service that answers each attempt with `answer(n)` (`n`: attempts so far,
    /// from 0) after `delay`, counting the attempts.
    fn fake(
        delay: Duration,
        answer: fn(usize) -> Result<(), ClientError>,
    ) -> (
        Arc<AtomicUsize>,
        impl Service<Call, Response = Reply, Error = ClientError, Future = BoxFuture> + Clone,
    ) {
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let service = tower::service_fn(move |_: Call| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                answer(n).map(|()| Reply::Check(pb::CheckResponse::default()))
            }) as BoxFuture
        });
        (sent, service)
    }

    fn call() -> Call {
        Call::new(
            Rpc::Check(pb::CheckRequest::default()),
            opentelemetry::Context::new(),
        )
    }

    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        budget: Duration::from_secs(2),
    };
    const NO_BREAKER: BreakerPolicy = BreakerPolicy {
        failures: 1000,
        open_for: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn unavailable_is_retried_up_to_the_attempts_and_counted() {
        let (sent, rpc) = fake(Duration::ZERO, |n| match n {
            0 | 1 => Err(ClientError::Unavailable("down".into())),
            _ => Ok(()),
        });
        let stack = layered(rpc, Duration::from_secs(1), RETRY, NO_BREAKER, 8);
        let c = call();
        let attempts = c.attempts.clone();
        assert!(stack.clone().oneshot(c).await.is_ok());
        assert_eq!(sent.load(Ordering::SeqCst), 3);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);

        let (sent, rpc) = fake(Duration::ZERO, |_| {
            Err(ClientError::Unavailable("down".into()))
        });
        let stack = layered(rpc, Duration::from_secs(1), RETRY, NO_BREAKER, 8);
        assert!(matches!(
            stack.oneshot(call()).await,
            Err(ClientError::Unavailable(_))
        ));
        assert_eq!(sent.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn only_unavailable_is_retried() {
        let (sent, rpc) = fake(Duration::ZERO, |_| {
            Err(ClientError::Overloaded("busy".into()))
        });
        let stack = layered(rpc, Duration::from_secs(1), RETRY, NO_BREAKER, 8);
        assert!(matches!(
            stack.oneshot(call()).await,
            Err(ClientError::Overloaded(_))
        ));
        assert_eq!(sent.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_retry_starts_past_the_budget() {
        let (sent, rpc) = fake(Duration::from_millis(30), |_| {
            Err(ClientError::Unavailable("down".into()))
        });
        let budget = RetryPolicy {
            max_attempts: 10,
            budget: Duration::from_millis(50),
            ..RETRY
        };
        let stack = layered(rpc, Duration::from_secs(1), budget, NO_BREAKER, 8);
        assert!(stack.oneshot(call()).await.is_err());
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_breaker_opens_on_retried_failures_and_then_sends_nothing() {
        let (sent, rpc) = fake(Duration::ZERO, |_| {
            Err(ClientError::Unavailable("down".into()))
        });
        let breaker = BreakerPolicy {
            failures: 2,
            open_for: Duration::from_secs(60),
        };
        let stack = layered(rpc, Duration::from_secs(1), RETRY, breaker, 8);
        // The second attempt opens it; the third is refused without being sent.
        assert_eq!(
            stack.clone().oneshot(call()).await.err(),
            Some(ClientError::CircuitOpen)
        );
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        assert_eq!(
            stack.oneshot(call()).await.err(),
            Some(ClientError::CircuitOpen)
        );
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_call_waits_for_a_permit_only_within_the_call_timeout() {
        let (sent, rpc) = fake(Duration::from_millis(500), |_| Ok(()));
        let stack = layered(rpc, Duration::from_millis(100), RETRY, NO_BREAKER, 1);
        let first = tokio::spawn(stack.clone().oneshot(call()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        assert_eq!(
            stack.clone().oneshot(call()).await.err(),
            Some(ClientError::DeadlineExceeded)
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_millis(400),
            "{waited:?}"
        );
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        assert!(matches!(first.await, Ok(Ok(_))));
        // The permit is back: the next call goes.
        assert!(stack.oneshot(call()).await.is_ok());
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }
}
