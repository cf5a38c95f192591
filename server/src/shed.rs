//! Load shedding: at most `limit` calls of one connection are in flight, and at most
//! [`InFlight`]'s limit in the whole process (both ports); a call over either limit is
//! refused at once with `RESOURCE_EXHAUSTED` (never queued) and counted in
//! `pdp_load_shed_total`. Connections are told apart by their peer address. Health checks
//! are never refused for the process-wide limit: an overloaded server is still alive.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

type PerPeer = Arc<Mutex<HashMap<SocketAddr, usize>>>;

/// The process-wide bound on calls in flight, shared by the gRPC and HTTP ports.
#[derive(Debug, Clone)]
pub struct InFlight {
    permits: Arc<tokio::sync::Semaphore>,
    limit: usize,
}

impl InFlight {
    /// At most `limit` calls in flight (at least one).
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        InFlight {
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            limit,
        }
    }

    /// A slot for one call, held until dropped; `None` (counted as shed) when all are taken.
    pub fn try_take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            crate::metrics::metrics().load_shed.inc();
        }
        permit
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Calls exempt from the process-wide limit: the health service.
fn exempt<B>(request: &http::Request<B>) -> bool {
    request.uri().path().starts_with("/grpc.health.v1.Health/")
}

/// The layer.
#[derive(Debug, Clone)]
pub struct ShedLayer {
    limit: usize,
    in_flight: PerPeer,
    total: InFlight,
}

impl ShedLayer {
    /// At most `limit` calls in flight per connection, and `total`'s limit in all.
    pub fn new(limit: usize, total: InFlight) -> Self {
        ShedLayer {
            limit,
            in_flight: PerPeer::default(),
            total,
        }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            limit: self.limit,
            in_flight: self.in_flight.clone(),
            total: self.total.clone(),
        }
    }
}

/// The service.
#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    limit: usize,
    in_flight: PerPeer,
    total: InFlight,
}

/// One call counted against its connection until dropped.
struct Slot {
    in_flight: PerPeer,
    peer: SocketAddr,
}

impl Slot {
    fn take(in_flight: &PerPeer, peer: SocketAddr, limit: usize) -> Option<Slot> {
        let mut map = in_flight.lock().ok()?;
        let n = map.entry(peer).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            in_flight: in_flight.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.in_flight.lock() {
            if let Some(n) = map.get_mut(&self.peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.peer);
                }
            }
        }
    }
}

fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let ext = request.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Shed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let slot = match peer(&request) {
            Some(p) => match Slot::take(&self.in_flight, p, self.limit) {
                Some(slot) => Some(slot),
                None => {
                    crate::metrics::metrics().load_shed.inc();
                    let refused = tonic::Status::resource_exhausted(format!(
                        "more than {} calls in flight on this connection",
                        self.limit
                    ))
                    .into_http();
                    return Box::pin(std::future::ready(Ok(refused)));
                }
            },
            None => None,
        };
        let total = if exempt(&request) {
            None
        } else {
            match self.total.try_take() {
                Some(permit) => Some(permit),
                None => {
                    let refused = tonic::Status::resource_exhausted(format!(
                        "more than {} calls in flight on this server",
                        self.total.limit()
                    ))
                    .into_http();
                    return Box::pin(std::future::ready(Ok(refused)));
                }
            }
        };
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = inner.call(request);
        Box::pin(async move {
            let response = call.await;
            drop((slot, total));
            response
        })
    }
}
