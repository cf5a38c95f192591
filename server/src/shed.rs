//! Load shedding per connection: at most `limit` calls of one connection are in flight; a
//! call over the limit is refused at once with `RESOURCE_EXHAUSTED` (never queued) and
//! counted in `pdp_load_shed_total`. Connections are told apart by their peer address.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

type InFlight = Arc<Mutex<HashMap<SocketAddr, usize>>>;

/// The layer.
#[derive(Debug, Clone)]
pub struct ShedLayer {
    limit: usize,
    in_flight: InFlight,
}

impl ShedLayer {
    /// At most `limit` calls in flight per connection.
    pub fn new(limit: usize) -> Self {
        ShedLayer {
            limit,
            in_flight: InFlight::default(),
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
        }
    }
}

/// The service.
#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    limit: usize,
    in_flight: InFlight,
}

/// One call counted against its connection until dropped.
struct Slot {
    in_flight: InFlight,
    peer: SocketAddr,
}

impl Slot {
    fn take(in_flight: &InFlight, peer: SocketAddr, limit: usize) -> Option<Slot> {
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
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = inner.call(request);
        Box::pin(async move {
            let response = call.await;
            drop(slot);
            response
        })
    }
}
